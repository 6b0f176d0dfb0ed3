//! The data plane's tests that need root (XDP, network namespaces): without it they report
//! *ignored*, not *passed*, and under `CI=true` they fail instead, because CI must run every
//! test. The same policy as `earshot_tests::needs_root`, which this crate cannot use: that
//! crate depends on this one.

// `alloc.rs` uses only `verdict`: its own harness must not run tests on other threads.
#![allow(dead_code, unused_macros, unused_imports)]

use libtest_mimic::{Arguments, Completion, Failed, Trial};

/// Why a test is not run without root.
pub const REASON: &str = "needs root (CAP_BPF, CAP_NET_ADMIN: XDP, network namespaces)";

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether the environment says this is a CI run (`CI=true`), where nothing may be skipped.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// What happens to a test that needs root in this process: `Ok(None)` it runs, `Ok(Some(why))`
/// it is ignored, `Err(why)` it fails without running.
pub fn verdict() -> Result<Option<&'static str>, String> {
    match (is_root(), is_ci()) {
        (true, _) => Ok(None),
        (false, false) => Ok(Some(REASON)),
        (false, true) => Err(format!(
            "this test {REASON} and CI=true: CI runs every test, none may be skipped; run it \
             as root"
        )),
    }
}

/// A test that needs root: run as root, ignored without it, failed under `CI=true`.
pub fn trial(name: &str, body: fn()) -> Trial {
    Trial::ignorable_test(name, move || match verdict() {
        Ok(None) => {
            body();
            Ok(Completion::Completed)
        }
        Ok(Some(why)) => Ok(Completion::ignored_with(why)),
        Err(why) => Err(Failed::from(why)),
    })
}

/// A test that needs nothing special.
pub fn plain(name: &str, body: fn()) -> Trial {
    Trial::test(name, move || {
        body();
        Ok(())
    })
}

/// Runs `trials` as libtest would (a panic is a failure) and exits with its status.
pub fn main(trials: Vec<Trial>) -> ! {
    libtest_mimic::run(&Arguments::from_args(), trials).exit()
}

/// `vec![trial("name", name), …]`: tests that need root, named by their functions.
macro_rules! root_trials {
    ($($test:ident),* $(,)?) => {
        vec![$(needs_root::trial(stringify!($test), $test)),*]
    };
}
pub(crate) use root_trials;

/// `vec![plain("name", name), …]`: tests that need nothing special.
macro_rules! plain_trials {
    ($($test:ident),* $(,)?) => {
        vec![$(needs_root::plain(stringify!($test), $test)),*]
    };
}
pub(crate) use plain_trials;
