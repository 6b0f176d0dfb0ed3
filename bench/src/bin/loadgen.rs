//! `loadgen`: offers RTP load to a running `earshotd` and measures what comes back; with
//! `--smoke`, checks that nothing is lost instead. Everything lives in the library
//! ([`earshot_bench::loadgen`]), so that tests can run it in-process; see `bench/README.md`.

use std::process::ExitCode;

fn main() -> ExitCode {
    earshot_bench::loadgen::main()
}
