//! The identifiers the appliance hands out, each parsed by one rule (docs/design.md §9): the
//! exact form it was handed out in, anything else naming nothing.

use core::fmt;
use core::str::FromStr;

use serde::{Serialize, Serializer};

/// Longest piece of client input quoted back in an error message.
const QUOTE_LEN_MAX: usize = 64;

/// Client input as quoted in an error message: bounded, so an error never echoes a megabyte.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LEN_MAX) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}…", &s[..end]),
    }
}

/// A string that is not an identifier of kind `what`: it names nothing (HTTP `not_found`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no {what} with id {quoted}")]
pub struct IdError {
    /// The kind of thing the id would name (`call`, `supervision`).
    pub what: &'static str,
    /// The input, quoted and bounded.
    pub quoted: String,
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// The identifier of number `n` (the app draws `n` from the OS random source).
            pub const fn from_u64(n: u64) -> $name {
                $name(n)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{:016x}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            /// Only the exact form the appliance hands out (`prefix` + 16 lowercase hex digits);
            /// anything else names nothing.
            fn from_str(s: &str) -> Result<$name, IdError> {
                s.strip_prefix($prefix)
                    .filter(|hex| {
                        hex.len() == 16
                            && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    })
                    .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                    .map($name)
                    .ok_or_else(|| IdError { what: $what, quoted: quote(s) })
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

id_type!(
    /// A call as the API names it: `c_` and 16 hex digits.
    CallId, "c_", "call"
);
id_type!(
    /// A supervision as the API names it: `s_` and 16 hex digits.
    SupervisionId, "s_", "supervision"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_refuse_lookalikes() {
        let id = CallId(0x0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "c_0123456789abcdef");
        assert_eq!("c_0123456789abcdef".parse::<CallId>().unwrap(), id);
        for bad in [
            "c_0123456789ABCDEF",
            "c_+123456789abcdef",
            "c_0123",
            "s_0123456789abcdef",
            "",
            "c_",
        ] {
            let err = bad.parse::<CallId>().unwrap_err();
            assert_eq!(err.what, "call", "{bad}");
            assert_eq!(err.to_string(), format!("no call with id {bad:?}"));
        }
        assert!("s_00000000000000ff".parse::<SupervisionId>().is_ok());
    }

    #[test]
    fn quotes_are_bounded() {
        let long = "x".repeat(10_000);
        assert!(quote(&long).len() < 100);
    }
}
