//! RTCP datagrams (RFC 3550 §6): one packet, the compound walk and §A.2 checks, SR/RR/SDES/BYE views.
//! The checks themselves are shared with the property tests (dataplane/tests/exercise).

#![no_main]

#[path = "../../tests/exercise/mod.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::rtcp(data));
