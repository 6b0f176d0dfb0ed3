//! AF_XDP frames: the Ethernet, IPv4, IPv6 and UDP views, `parse_udp` as the receive path
//! calls it, and `emit_udp_headers` rebuilding what it parsed (with valid checksums).
//! The checks themselves are shared with the property tests (dataplane/tests/exercise).

#![no_main]

#[path = "../../tests/exercise/mod.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| exercise::frame(data));
