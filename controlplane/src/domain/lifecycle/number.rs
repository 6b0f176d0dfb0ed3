//! The supervisor's registered number: the form it is stored in and the check the session runs
//! on it at start (rule 4 of the lifecycle, docs/design.md §2).

use core::fmt;

use serde::{Serialize, Serializer};

/// Fewest digits of a supervisor number (shortest internal extensions).
pub const SUPERVISOR_NUMBER_DIGITS_MIN: usize = 3;
/// Most digits of a supervisor number (E.164 allows 15; room for an access prefix).
pub const SUPERVISOR_NUMBER_DIGITS_MAX: usize = 20;

/// A registered supervisor number, normalised to its digits (a leading `+` is dropped).
///
/// Normalisation: `+441632960000` and `441632960000` are the same number. No other
/// character is accepted, and no numbering-plan translation is done (`0` national prefixes are
/// kept): the softswitch must present the calling number in the form the supervisor registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SupervisorNumber(String);

impl SupervisorNumber {
    /// The number's digits.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Whether a calling number reported by the softswitch is this number: an optional leading
    /// `+`, then exactly these digits. Anything else (spaces, a SIP URI, another number) does
    /// not match.
    pub fn matches_calling_number(&self, calling_number: &str) -> bool {
        calling_number.strip_prefix('+').unwrap_or(calling_number) == self.0
    }
}

impl fmt::Display for SupervisorNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SupervisorNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What is wrong with a supervisor number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberProblem {
    /// No digits at all (`""` or `"+"`).
    Empty,
    /// A character other than a digit (besides one leading `+`): letters, spaces, dashes…
    NotADigit,
    TooShort {
        digits: usize,
    },
    TooLong {
        digits: usize,
    },
}

impl fmt::Display for NumberProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberProblem::Empty => f.write_str("it has no digits"),
            NumberProblem::NotADigit => {
                f.write_str("only digits are allowed, with an optional leading '+'")
            }
            NumberProblem::TooShort { digits } => write!(
                f,
                "it has {digits} digits, at least {SUPERVISOR_NUMBER_DIGITS_MIN} are needed"
            ),
            NumberProblem::TooLong { digits } => write!(
                f,
                "it has {digits} digits, at most {SUPERVISOR_NUMBER_DIGITS_MAX} are allowed"
            ),
        }
    }
}

/// The docs/design.md §2 `validation` alert: not a session alert, the answer to setting a supervisor
/// number that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the supervisor telephone number must be a number ({problem})")]
pub struct ValidationAlert {
    pub problem: NumberProblem,
}

impl ValidationAlert {
    /// The alert's stable code.
    pub const CODE: &'static str = "validation";
    /// The alert's human text (docs/design.md §2), without the detail of [`ValidationAlert::problem`].
    pub const TEXT: &'static str = "the supervisor telephone number must be a number";
}

/// Validates a supervisor number as typed by the supervisor: an optional leading `+`, then
/// 3 to 20 ASCII digits, nothing else (no spaces, dashes or trimming: docs/design.md §2: "must be a number").
pub fn validate_supervisor_number(s: &str) -> Result<SupervisorNumber, ValidationAlert> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    let problem = if digits.is_empty() {
        Some(NumberProblem::Empty)
    } else if !digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(NumberProblem::NotADigit)
    } else if digits.len() < SUPERVISOR_NUMBER_DIGITS_MIN {
        Some(NumberProblem::TooShort {
            digits: digits.len(),
        })
    } else if digits.len() > SUPERVISOR_NUMBER_DIGITS_MAX {
        Some(NumberProblem::TooLong {
            digits: digits.len(),
        })
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ValidationAlert { problem }),
        None => Ok(SupervisorNumber(digits.to_owned())),
    }
}
