//! Replays the `config` fuzz target's committed corpus (controlplane/fuzz/corpus/config,
//! docs/fuzzing.md) through the same checks as the fuzzer, so every starting input, and every crash
//! the fuzzer ever found (added to the corpus when fixed), is checked by the normal tests.

mod exercise;

use std::path::Path;

use controlplane::config::{Config, ConfigError};
use exercise::Outcome;

fn input(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus/config")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_input_is_a_config_or_a_one_line_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/config");
    let mut inputs = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus is committed") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = exercise::config(&data);
        inputs += 1;
    }
    assert!(inputs >= 5, "{inputs} inputs in {}", dir.display());
}

#[test]
fn inputs_are_what_their_names_say() {
    let valid = |name: &str| match exercise::config(&input(name)) {
        Outcome::Valid(config) => config,
        Outcome::Refused(e) => panic!("{name} is a valid configuration: {e}"),
    };
    assert_eq!(valid("readme-example.toml").media.max_calls, 10_000);
    assert_eq!(*valid("empty.toml"), Config::default());
    assert_eq!(valid("afxdp-pinned.toml").engine.cores, Some(vec![2, 3]));
    assert!(valid("ipv6-media.toml").media.ip.is_ipv6());
    for (name, key) in [("unknown-key.toml", "ports"), ("not-toml.toml", "line 1")] {
        match exercise::config(&input(name)) {
            Outcome::Refused(e @ ConfigError::Parse { .. }) => {
                assert!(e.to_string().contains(key), "{name}: {e}")
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    for (name, key) in [
        ("bad-values.toml", "media.port_min"),
        ("dtmf-and-token.toml", "auth.admin_token"),
    ] {
        match exercise::config(&input(name)) {
            Outcome::Refused(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key, "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
    assert!(matches!(
        exercise::config(b"\xff\xfe not UTF-8"),
        Outcome::Refused(ConfigError::Read { .. })
    ));
}
