//! Bencode, the NG protocol's body encoding (docs/ng.md, The wire), as rtpengine's clients
//! write it rather than as BitTorrent's BEP 3 demands of a canonical document.
//!
//! Our own small codec instead of a crate: Kamailio emits dictionary keys in insertion order
//! (`supports`, `sdp`, …, `command` last), which the strict crates refuse, and the lenient ones
//! recurse without a bound, so a datagram of a few thousand `l`s overflows the stack and aborts
//! the process (docs/design.md §7: bad input is refused, never a crash).
//!
//! Decisions, each tested below:
//! - keys in any order; a dictionary keeps its pairs in the order they came, duplicates
//!   included, and [`Value::get`] returns the **first** (rtpengine's dictionary lookup finds
//!   the first key inserted);
//! - nesting deeper than [`DEPTH_MAX`] is an error, checked before descending;
//! - a string's length is checked against the bytes left before anything is allocated;
//! - integers are BEP 3's: no leading zeros, no `-0`, no `+`, and a value outside `i64` is an
//!   error, not a wrapped or saturated number; string lengths have no leading zeros either;
//! - byte strings are bytes (SDP, tags and call-ids need not be UTF-8 here);
//! - anything after the top-level value is an error.

use std::fmt;

/// How deep lists and dictionaries may nest. NG documents need about 6 (`codec` →
/// `transcode` list; a `query` answer's `tags` → tag → `medias` → stream → `stats`); 32
/// leaves room while keeping the recursion small.
pub const DEPTH_MAX: usize = 32;

/// A bencoded value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    /// Pairs in the order they were decoded or built; keys need not be sorted or unique.
    Dict(Vec<(Vec<u8>, Value)>),
}

impl Value {
    /// A byte string from text.
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// The first value under `key`, when this is a dictionary.
    pub fn get(&self, key: &[u8]) -> Option<&Value> {
        match self {
            Value::Dict(pairs) => pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// What kind of value this is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Bytes(_) => "a string",
            Value::List(_) => "a list",
            Value::Dict(_) => "a dictionary",
        }
    }
}

/// Why a document is not bencode: what was wrong and at which byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    pub offset: usize,
    pub reason: DecodeReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeReason {
    /// The document ended inside a value.
    Truncated,
    /// A byte that cannot start a value here (`e` outside a container, a letter, …).
    UnexpectedByte(u8),
    /// An integer that is not `i<digits>e` in BEP 3's canonical form.
    BadInteger,
    /// An integer outside `i64`.
    IntegerOverflow,
    /// A string length that is not canonical digits followed by `:`.
    BadLength,
    /// A string longer than the bytes left.
    LengthPastEnd,
    /// A dictionary key that is not a byte string.
    KeyNotString,
    /// Nesting deeper than [`DEPTH_MAX`].
    TooDeep,
    /// Bytes after the top-level value.
    TrailingBytes,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.offset;
        match self.reason {
            DecodeReason::Truncated => write!(f, "bencode truncated at byte {at}"),
            DecodeReason::UnexpectedByte(b) => {
                write!(f, "unexpected byte {:?} at byte {at}", char::from(b))
            }
            DecodeReason::BadInteger => write!(f, "malformed integer at byte {at}"),
            DecodeReason::IntegerOverflow => {
                write!(f, "integer out of the 64-bit range at byte {at}")
            }
            DecodeReason::BadLength => write!(f, "malformed string length at byte {at}"),
            DecodeReason::LengthPastEnd => {
                write!(f, "string at byte {at} is longer than the document")
            }
            DecodeReason::KeyNotString => {
                write!(f, "dictionary key at byte {at} is not a string")
            }
            DecodeReason::TooDeep => {
                write!(f, "nesting deeper than {DEPTH_MAX} levels at byte {at}")
            }
            DecodeReason::TrailingBytes => {
                write!(f, "trailing bytes after the document at byte {at}")
            }
        }
    }
}

impl std::error::Error for DecodeError {}

/// Decodes one whole document: a single value and nothing after it.
pub fn decode(input: &[u8]) -> Result<Value, DecodeError> {
    let mut decoder = Decoder { input, pos: 0 };
    let value = decoder.value(1)?;
    if decoder.pos != input.len() {
        return Err(decoder.error(DecodeReason::TrailingBytes));
    }
    Ok(value)
}

/// Encodes in the value's own order (dictionary keys are not sorted: NG peers do not care,
/// and a decoded request re-encodes to the same bytes).
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends the encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(items) => {
            out.push(b'l');
            for item in items {
                encode_into(item, out);
            }
            out.push(b'e');
        }
        Value::Dict(pairs) => {
            out.push(b'd');
            for (k, v) in pairs {
                encode_bytes(k, out);
                encode_into(v, out);
            }
            out.push(b'e');
        }
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn error(&self, reason: DecodeReason) -> DecodeError {
        DecodeError {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or_else(|| self.error(DecodeReason::Truncated))
    }

    /// One value at nesting level `depth` (the top level is 1). The recursion is bounded by
    /// [`DEPTH_MAX`], checked before a container is entered.
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        match self.peek()? {
            b'i' => self.int().map(Value::Int),
            b'0'..=b'9' => self.bytes().map(Value::Bytes),
            b'l' => {
                self.enter(depth)?;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.enter(depth)?;
                let mut pairs = Vec::new();
                loop {
                    match self.peek()? {
                        b'e' => break,
                        b'0'..=b'9' => {}
                        _ => return Err(self.error(DecodeReason::KeyNotString)),
                    }
                    let key = self.bytes()?;
                    let value = self.value(depth + 1)?;
                    pairs.push((key, value));
                }
                self.pos += 1;
                Ok(Value::Dict(pairs))
            }
            other => Err(self.error(DecodeReason::UnexpectedByte(other))),
        }
    }

    fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth > DEPTH_MAX {
            return Err(self.error(DecodeReason::TooDeep));
        }
        self.pos += 1;
        Ok(())
    }

    /// `i<canonical decimal>e`: BEP 3 forbids `i-0e` and leading zeros; a value outside
    /// `i64` is refused rather than saturated (rtpengine's `strtoll` would saturate).
    fn int(&mut self) -> Result<i64, DecodeError> {
        let start = self.pos;
        self.pos += 1; // 'i'
        let rest = &self.input[self.pos..];
        let Some(len) = rest.iter().position(|&b| b == b'e') else {
            self.pos = self.input.len();
            return Err(self.error(DecodeReason::Truncated));
        };
        let text = &rest[..len];
        let bad = DecodeError {
            offset: start,
            reason: DecodeReason::BadInteger,
        };
        let (negative, digits) = match text {
            [b'-', digits @ ..] => (true, digits),
            digits => (false, digits),
        };
        if digits.is_empty()
            || !digits.iter().all(u8::is_ascii_digit)
            || (digits[0] == b'0' && (digits.len() > 1 || negative))
        {
            return Err(bad);
        }
        // Accumulate negatively so that i64::MIN fits.
        let mut n: i64 = 0;
        for &d in digits {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_sub(i64::from(d - b'0')))
                .ok_or(DecodeError {
                    offset: start,
                    reason: DecodeReason::IntegerOverflow,
                })?;
        }
        let n = if negative {
            n
        } else {
            n.checked_neg().ok_or(DecodeError {
                offset: start,
                reason: DecodeReason::IntegerOverflow,
            })?
        };
        self.pos += len + 1;
        Ok(n)
    }

    /// `<length>:<bytes>`, the length checked against what is left before copying.
    fn bytes(&mut self) -> Result<Vec<u8>, DecodeError> {
        let start = self.pos;
        let bad = DecodeError {
            offset: start,
            reason: DecodeReason::BadLength,
        };
        let rest = &self.input[self.pos..];
        let Some(colon) = rest.iter().position(|&b| !b.is_ascii_digit()) else {
            self.pos = self.input.len();
            return Err(self.error(DecodeReason::Truncated));
        };
        let digits = &rest[..colon];
        if rest[colon] != b':' || digits.is_empty() || (digits[0] == b'0' && digits.len() > 1) {
            return Err(bad);
        }
        let mut len: usize = 0;
        for &d in digits {
            len = len
                .checked_mul(10)
                .and_then(|n| n.checked_add(usize::from(d - b'0')))
                .ok_or(DecodeError {
                    offset: start,
                    reason: DecodeReason::LengthPastEnd,
                })?;
        }
        let body = self.pos + colon + 1;
        if len > self.input.len() - body {
            return Err(DecodeError {
                offset: start,
                reason: DecodeReason::LengthPastEnd,
            });
        }
        self.pos = body + len;
        Ok(self.input[body..self.pos].to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(pairs: &[(&str, Value)]) -> Value {
        Value::Dict(
            pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        )
    }

    fn reason(input: &[u8]) -> DecodeReason {
        decode(input).expect_err("malformed").reason
    }

    #[test]
    fn decodes_every_kind_and_keeps_key_order() {
        let v = decode(b"d7:command4:ping1:ai-12e1:bl1:xi0eee").unwrap();
        assert_eq!(
            v,
            d(&[
                ("command", Value::str("ping")),
                ("a", Value::Int(-12)),
                ("b", Value::List(vec![Value::str("x"), Value::Int(0)])),
            ])
        );
        // Unsorted keys encode back to the same bytes.
        assert_eq!(encode(&v), b"d7:command4:ping1:ai-12e1:bl1:xi0eee");
    }

    #[test]
    fn the_first_of_duplicate_keys_wins() {
        let v = decode(b"d7:command4:ping7:command5:offere").unwrap();
        assert_eq!(v.get(b"command"), Some(&Value::str("ping")));
        // Both pairs are kept, so the document re-encodes unchanged.
        assert_eq!(encode(&v), b"d7:command4:ping7:command5:offere");
    }

    #[test]
    fn byte_strings_need_not_be_utf8() {
        let v = decode(b"d3:sdp3:\xff\x00\xfee").unwrap();
        assert_eq!(
            v.get(b"sdp").unwrap().as_bytes(),
            Some(&b"\xff\x00\xfe"[..])
        );
        assert_eq!(decode(b"0:").unwrap(), Value::Bytes(vec![]));
    }

    #[test]
    fn integers_are_canonical_and_bounded() {
        assert_eq!(decode(b"i0e").unwrap(), Value::Int(0));
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap(),
            Value::Int(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap(),
            Value::Int(i64::MIN)
        );
        for bad in [
            &b"i-0e"[..],
            b"i007e",
            b"i-01e",
            b"ie",
            b"i-e",
            b"i+1e",
            b"i1.5e",
            b"i 1e",
        ] {
            assert_eq!(reason(bad), DecodeReason::BadInteger, "{bad:?}");
        }
        for big in [
            &b"i9223372036854775808e"[..],
            b"i-9223372036854775809e",
            b"i99999999999999999999999e",
        ] {
            assert_eq!(reason(big), DecodeReason::IntegerOverflow, "{big:?}");
        }
        assert_eq!(reason(b"i12"), DecodeReason::Truncated);
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        assert_eq!(reason(b"5:abc"), DecodeReason::LengthPastEnd);
        // A length near usize::MAX, or past it, is refused without allocating.
        assert_eq!(
            reason(b"18446744073709551615:x"),
            DecodeReason::LengthPastEnd
        );
        assert_eq!(
            reason(b"99999999999999999999999999:x"),
            DecodeReason::LengthPastEnd
        );
        assert_eq!(reason(b"01:a"), DecodeReason::BadLength);
        assert_eq!(reason(b"3x"), DecodeReason::BadLength);
        assert_eq!(reason(b"12"), DecodeReason::Truncated);
    }

    #[test]
    fn structure_errors_are_named() {
        assert_eq!(reason(b""), DecodeReason::Truncated);
        assert_eq!(reason(b"d3:foo"), DecodeReason::Truncated);
        assert_eq!(reason(b"l"), DecodeReason::Truncated);
        assert_eq!(reason(b"d1:a"), DecodeReason::Truncated);
        assert_eq!(reason(b"di1ei2ee"), DecodeReason::KeyNotString);
        assert_eq!(reason(b"dlee"), DecodeReason::KeyNotString);
        assert_eq!(reason(b"e"), DecodeReason::UnexpectedByte(b'e'));
        assert_eq!(reason(b"d1:aee"), DecodeReason::UnexpectedByte(b'e'));
        assert_eq!(reason(b"x"), DecodeReason::UnexpectedByte(b'x'));
        assert_eq!(reason(b"dei1e"), DecodeReason::TrailingBytes);
        assert_eq!(reason(b"de "), DecodeReason::TrailingBytes);
    }

    #[test]
    fn nesting_is_limited() {
        let nested = |n: usize| {
            let mut v = vec![b'l'; n];
            v.extend(std::iter::repeat_n(b'e', n));
            v
        };
        assert!(decode(&nested(DEPTH_MAX)).is_ok());
        let e = decode(&nested(DEPTH_MAX + 1)).unwrap_err();
        assert_eq!(e.reason, DecodeReason::TooDeep);
        assert_eq!(e.offset, DEPTH_MAX);
        // A whole UDP datagram of openers is an error, not a stack overflow.
        assert_eq!(reason(&vec![b'l'; 65_507]), DecodeReason::TooDeep);
        assert_eq!(reason(&b"d1:a".repeat(16_000)), DecodeReason::TooDeep);
    }

    #[test]
    fn errors_say_what_and_where() {
        let e = decode(b"d3:sdp99:xe").unwrap_err();
        assert_eq!(
            e.to_string(),
            "string at byte 6 is longer than the document"
        );
        assert_eq!(
            decode(b"i-0e").unwrap_err().to_string(),
            "malformed integer at byte 0"
        );
    }
}
