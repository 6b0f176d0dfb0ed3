//! earshot's benchmarks (`benches/media.rs`, criterion) and its load generator
//! (`src/bin/loadgen.rs`); see `bench/README.md`. This library holds what the load generator
//! needs below the application level: batched UDP I/O, a latency histogram, and a client of
//! rtpengine's NG control protocol (to drive rtpengine with the same load, for comparison).

pub mod hist;
pub mod mmsg;
pub mod ng;
