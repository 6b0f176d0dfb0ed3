//! earshot's benchmarks (`benches/media.rs`, criterion) and its load generator ([`loadgen`],
//! whose `main` is `src/bin/loadgen.rs`); see `bench/README.md`. The load generator lives in the
//! library so that the end-to-end tests can run its smoke check in-process
//! (`tests/tests/loadgen_smoke.rs`), built by the same cargo invocation as the test itself.
//! Below it: batched UDP I/O, a latency histogram, a client of earshotd's HTTP API (also the
//! end-to-end tests' and `setuprate`'s), open event streams held during a run
//! (`setuprate --streams`), and a client of rtpengine's NG control protocol (to drive rtpengine
//! with the same load, for comparison).

pub mod hist;
pub mod http;
pub mod loadgen;
pub mod mmsg;
pub mod ng;
pub mod streams;
