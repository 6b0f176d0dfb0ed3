//! Test binaries whose tests need root (network namespaces, XDP), run with `libtest-mimic`
//! (`harness = false`): libtest on stable Rust cannot ignore a test at run time, so a test that
//! returned early without root would report *passed*, which it did not.
//!
//! A test made with [`trial`] runs as usual as root. Without root it reports *ignored*, with the
//! reason, unless the environment has `CI=true`: then it fails and says why, because CI must
//! run every test and a skipped one would hide a regression. Tests that need nothing are made
//! with [`plain`]. [`main`] parses libtest's command line (filters, `--exact`, `--nocapture`,
//! `--test-threads`, `--list`, …) and prints libtest's report, so `cargo test` and the CI total
//! read these binaries like any other.

pub use libtest_mimic::Trial;
use libtest_mimic::{Arguments, Completion, Failed};

/// Why a test is not run without root.
pub const REASON: &str = "needs root (network namespaces, XDP)";

/// Whether this process runs as root.
pub fn is_root() -> bool {
    crate::netns::is_root()
}

/// Whether the environment says this is a CI run (`CI=true`), where nothing may be skipped.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// What happens to a test that needs root, in this process: `Ok(None)` it runs, `Ok(Some(why))`
/// it is ignored, `Err(why)` it fails without running.
pub fn verdict(root: bool, ci: bool) -> Result<Option<&'static str>, String> {
    match (root, ci) {
        (true, _) => Ok(None),
        (false, false) => Ok(Some(REASON)),
        (false, true) => Err(format!(
            "this test {REASON} and CI=true: CI runs every test, none may be skipped; run it \
             as root"
        )),
    }
}

/// A test that needs root: see the module documentation.
pub fn trial(name: impl Into<String>, body: impl FnOnce() + Send + 'static) -> Trial {
    Trial::ignorable_test(name, move || match verdict(is_root(), is_ci()) {
        Ok(None) => {
            body();
            Ok(Completion::Completed)
        }
        Ok(Some(why)) => Ok(Completion::ignored_with(why)),
        Err(why) => Err(Failed::from(why)),
    })
}

/// A test that needs nothing special.
pub fn plain(name: impl Into<String>, body: impl FnOnce() + Send + 'static) -> Trial {
    Trial::test(name, move || {
        body();
        Ok(())
    })
}

/// Runs `trials` as libtest would (a panic is a failure) and exits with its status.
pub fn main(trials: Vec<Trial>) -> ! {
    libtest_mimic::run(&Arguments::from_args(), trials).exit()
}

/// `vec![trial("name", name), …]` for functions named by their paths.
#[macro_export]
macro_rules! root_trials {
    ($($test:ident),* $(,)?) => {
        vec![$($crate::needs_root::trial(stringify!($test), $test)),*]
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_runs_a_user_is_ignored_and_ci_fails() {
        assert_eq!(verdict(true, false), Ok(None));
        assert_eq!(verdict(true, true), Ok(None));
        assert_eq!(verdict(false, false), Ok(Some(REASON)));
        let err = verdict(false, true).unwrap_err();
        assert!(err.contains("CI=true") && err.contains("root"), "{err}");
    }
}
