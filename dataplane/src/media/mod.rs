//! The sans-IO media core (docs/design.md §9.1, §9.3, §9.4): legs, sequence tracking, jitter
//! buffers, the hearing matrix, mixing, tones and DTMF. Inputs are packets and `now`; outputs are
//! packets (through a sink the caller provides) and events. Nothing here reads a clock, touches a
//! socket, or allocates once a call has been admitted.

pub mod call;
pub mod jitter;
pub mod matrix;
pub mod mixer;
pub mod seq;
mod stream;
pub mod tone;

/// The media clock of G.711 (ITU-T G.711; RFC 3551 §4.5.14): 8,000 samples per second.
pub const CLOCK_RATE_HZ: u32 = 8000;
/// The mixing period, and the packetisation of every mixed output.
pub const PTIME_MS: u32 = 20;
/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
/// One frame of linear 16-bit PCM.
pub type Frame = [i16; FRAME_SAMPLES];
