//! An NG control datagram through the listener's own path (docs/ng.md, The wire): split at
//! the cookie, the body parsed as bencode or JSON into a request, the reply encoded: any bytes
//! are a request, a one-line error reply or no reply, never a panic, and whatever bencode
//! decodes re-encodes to the same bytes. The checks are shared with the test that replays this
//! target's corpus (controlplane/tests/ng_wire.rs).

#![no_main]

#[path = "../../tests/exercise/mod.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = exercise::ng::datagram(data);
});
