//! The end-to-end test harness for earshot: real UDP endpoints on loopback against a daemon
//! started in-process, and the analysis that judges what each endpoint heard.
//!
//! - [`endpoint`]: a phone on a UDP socket: sends a tone as G.711 at 50 packets/s (optionally
//!   with seeded loss and reordering, and RFC 4733 key presses) and records what it receives.
//! - [`audio`]: the test tones and per-packet Goertzel measurement.
//! - [`rtp`]: an independent RTP / RFC 4733 codec, so the tests do not share the daemon's.
//! - [`api`], [`daemon`]: the HTTP client and the in-process daemon.
//! - [`scenario`]: a supervised call driven through its modes and recorded as phases.
//! - [`verdict`]: hearing-matrix, privacy and continuity checks that report every failure with
//!   a table of measured levels.

pub mod api;
pub mod audio;
pub mod daemon;
pub mod endpoint;
pub mod rtp;
pub mod scenario;
pub mod verdict;
