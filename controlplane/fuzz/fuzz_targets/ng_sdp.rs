//! An offer's or answer's SDP through the NG adapter's path: parse → audio → rewrite → parse.
//! Any bytes are an anchored stream that reads back the same at the appliance's address, or
//! one clear, one-line error, never a panic. The checks are shared with the tests that replay
//! this target's corpus and run its properties (controlplane/tests/ng_sdp.rs).

#![no_main]

#[path = "../../tests/exercise/ng_sdp.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = exercise::ng_sdp(data);
});
