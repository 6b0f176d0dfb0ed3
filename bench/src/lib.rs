//! earshot's benchmarks (`benches/media.rs`, criterion) and its load generator
//! (`src/bin/loadgen.rs`); see `bench/README.md`. This library holds what the load generator
//! needs below the application level: batched UDP I/O and a latency histogram.

pub mod hist;
pub mod mmsg;
