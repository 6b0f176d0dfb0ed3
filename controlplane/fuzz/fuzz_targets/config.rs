//! The TOML configuration file through the daemon's own path: any text is a configuration
//! or one clear, one-line error, never a panic. The checks themselves are shared with the
//! test that replays this target's corpus (controlplane/tests/exercise).

#![no_main]

#[path = "../../tests/exercise/mod.rs"]
mod exercise;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = exercise::config(data);
});
