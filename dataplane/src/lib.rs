//! The earshot data plane, in three layers (docs/design.md §9.1):
//!
//! - [`wire`]: zero-copy views over RTP, RTCP and RFC 4733 telephone-event bytes, and G.711.
//! - [`media`]: the sans-IO media core. A [`media::call::Call`] takes packets and `now`
//!   and returns packets and events; it never touches a socket or a clock.
//! - [`engine`]: worker threads pinned to cores, each owning its calls and sockets, driving the
//!   media core from an io_uring UDP backend on a 20 ms tick, talking to the control plane only
//!   through SPSC rings.
//!
//! `unsafe` is denied everywhere except the I/O backend modules that must hand buffers to the
//! kernel; each such block carries a `// SAFETY:` comment.

pub mod engine;
pub mod media;
pub mod time;
pub mod wire;
