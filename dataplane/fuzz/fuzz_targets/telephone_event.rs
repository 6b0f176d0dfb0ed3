//! RFC 4733 telephone-event payloads: the checked view, every block, setters and emit.
//! The checks themselves are shared with the property tests (dataplane/tests/exercise).

#![no_main]

#[path = "../../tests/exercise/mod.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::telephone_event(data));
