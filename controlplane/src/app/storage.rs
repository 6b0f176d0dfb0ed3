//! A storage failure as the application hands it to an adapter: the store's error, classified
//! once here, so adapters map it without knowing the store (docs/design.md §9).

use std::fmt;

use crate::store::StoreError;

/// What a failed store operation means to whoever asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFailure {
    /// What was named does not exist.
    NotFound,
    /// It clashes with what exists (a duplicate, a changed row).
    Conflict,
    /// Anything else: the store is unavailable or broken.
    Other,
}

/// A failed store operation: its meaning and its message.
#[derive(Debug)]
pub struct Storage(StoreError);

impl StorageFailure {
    /// The meaning of `err`.
    pub fn of(err: &StoreError) -> StorageFailure {
        match err {
            StoreError::NotFound { .. } => StorageFailure::NotFound,
            StoreError::Conflict { .. } => StorageFailure::Conflict,
            _ => StorageFailure::Other,
        }
    }
}

impl Storage {
    pub fn failure(&self) -> StorageFailure {
        StorageFailure::of(&self.0)
    }
}

impl From<StoreError> for Storage {
    fn from(err: StoreError) -> Storage {
        Storage(err)
    }
}

impl fmt::Display for Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Storage {}
