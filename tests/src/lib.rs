//! The end-to-end test harness for earshot: real UDP endpoints against a daemon started
//! in-process, on loopback or across a veth pair between network namespaces, and the analysis
//! that judges what each endpoint heard.
//!
//! - [`endpoint`]: a phone on a UDP socket: sends a tone as G.711 at 50 packets/s (optionally
//!   with reproducible loss and reordering, and RFC 4733 key presses) and records what it receives.
//! - [`audio`]: the test tones and per-packet Goertzel measurement.
//! - [`rtp`]: an independent RTP / RFC 4733 codec, so the tests do not share the daemon's.
//! - [`api`], [`daemon`]: the HTTP client and the in-process daemon.
//! - [`needs_root`]: the harness of test binaries that need root: ignored without it, failed
//!   under `CI=true`.
//! - [`netns`]: two network namespaces joined by a veth pair, and running code inside them.
//! - [`setup`]: where a scenario runs: loopback, or a veth pair with either backend.
//! - [`ports`]: media port ranges for test daemons, chosen by the OS.
//! - [`process`]: the `earshotd` binary run in a namespace, for the control plane's tests.
//! - [`scenario`]: a supervised call driven through its modes and recorded as phases.
//! - [`verdict`]: hearing-matrix, privacy and continuity checks that report every failure with
//!   a table of measured levels.
//! - [`kamailio`]: the real-Kamailio rig: Kamailio and sipp on loopback in front of an NG media
//!   relay (rtpengine or earshot), with the test's endpoints carrying each call's RTP.
//! - [`suite`]: the end-to-end scenarios, each a function of its [`setup::Setup`].

pub mod api;
pub mod audio;
pub mod daemon;
pub mod endpoint;
pub mod kamailio;
pub mod needs_root;
pub mod netns;
pub mod ports;
pub mod process;
pub mod rtp;
pub mod scenario;
pub mod setup;
pub mod suite;
pub mod verdict;
