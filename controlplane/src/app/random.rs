//! Fresh identifiers from the OS's random number generator: reading it is I/O, so it lives in
//! the app layer, not in the domain's id types (docs/design.md §9).

/// The OS had no random number to give.
#[derive(Debug, thiserror::Error)]
#[error("no random identifier from the OS: {0}")]
pub struct RandomError(#[from] getrandom::Error);

/// A random number for an identifier.
pub(crate) fn random_u64() -> Result<u64, RandomError> {
    Ok(getrandom::u64()?)
}

/// A fresh identifier for a resource the appliance names: `prefix` + 16 lowercase hex digits
/// from the OS's random number generator.
pub(crate) fn random_id(prefix: &str) -> Result<String, RandomError> {
    random_u64().map(|n| format!("{prefix}{n:016x}"))
}
