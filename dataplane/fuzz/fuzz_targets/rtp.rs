//! RTP packets (RFC 3550 §5.1): the checked view, every accessor, the setters.
//! The checks themselves are shared with the property tests (dataplane/tests/exercise).

#![no_main]

#[path = "../../tests/exercise/mod.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::rtp(data));
