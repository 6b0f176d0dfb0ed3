//! The identifiers of the control plane, each parsed by one rule (docs/design.md §9): the ids
//! the appliance hands out ([`CallId`], [`SupervisionId`]) in the exact form they were handed
//! out in, anything else naming nothing; a [`UserId`] names an agent, a supervisor, an admin or
//! a token's owner everywhere, with one parse rule; a [`GroupId`] a supervision group
//! (docs/design.md §3).

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

/// Longest [`UserId`], in bytes (ASCII only).
pub const USER_ID_LEN_MAX: usize = 64;

/// A client-supplied value that is not acceptable (stable code `invalid_value`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct InvalidValue {
    /// What was being parsed, e.g. `"user id"`.
    pub field: &'static str,
    /// Why it was refused, in words a client can act on.
    pub reason: &'static str,
}

impl InvalidValue {
    /// The stable machine code the API reports.
    pub fn code(&self) -> &'static str {
        "invalid_value"
    }
}

/// Whether `c` may appear in an identifier: ASCII letters, digits and `. _ - : @`, so an id is
/// safe to log, to put in a URL path and to compare byte-wise.
fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@')
}

/// Checks an identifier: 1 to [`USER_ID_LEN_MAX`] characters of [`is_id_char`]. The one rule
/// of every id of this module.
pub(crate) fn check_id(field: &'static str, s: &str) -> Result<(), InvalidValue> {
    if s.is_empty() || s.len() > USER_ID_LEN_MAX || !s.chars().all(is_id_char) {
        return Err(InvalidValue {
            field,
            reason: "must be 1 to 64 characters among A-Z a-z 0-9 . _ - : @",
        });
    }
    Ok(())
}

/// Defines an identifier newtype over `String`, checked by [`check_id`] on every way in
/// (`parse`, `TryFrom`, serde), named `$field` in its errors.
macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize,
            ::serde::Deserialize,
        )]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// 1 to [`USER_ID_LEN_MAX`](crate::domain::ids::USER_ID_LEN_MAX) characters among
            /// `A-Z a-z 0-9 . _ - : @`.
            pub fn parse(s: &str) -> Result<$name, $crate::domain::ids::InvalidValue> {
                $crate::domain::ids::check_id($field, s)?;
                Ok($name(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = $crate::domain::ids::InvalidValue;

            fn try_from(s: String) -> Result<$name, $crate::domain::ids::InvalidValue> {
                $crate::domain::ids::check_id($field, &s)?;
                Ok($name(s))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A user of the appliance (agent, supervisor, admin, a token's owner) as the whole control
    /// plane names them. A newtype so an agent id is never confused with a case or a call id
    /// (docs/design.md §9).
    UserId,
    "user id"
);

text_id!(
    /// A supervision group's identifier; the same alphabet as a [`UserId`].
    GroupId,
    "group id"
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

    #[test]
    fn one_rule_for_every_user_id() {
        for bad in ["", "a b", "é", &"x".repeat(65), "a/b", "a\nb"] {
            assert_eq!(UserId::parse(bad).unwrap_err().code(), "invalid_value");
            assert!(UserId::try_from(bad.to_owned()).is_err());
            assert!(serde_json::from_value::<UserId>(serde_json::json!(bad)).is_err());
        }
        let id = UserId::parse("sup.1@site-a:7_x").unwrap();
        assert_eq!(id.as_str(), "sup.1@site-a:7_x");
        assert!(UserId::parse(&"x".repeat(64)).is_ok());
        assert_eq!(serde_json::to_value(&id).unwrap(), "sup.1@site-a:7_x");
    }
}
