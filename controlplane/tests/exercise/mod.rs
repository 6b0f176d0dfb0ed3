//! The configuration file's exerciser, shared by the `config` fuzz target
//! (`controlplane/fuzz/`, docs/fuzzing.md) and the test that replays its corpus
//! (`config_corpus.rs`): any text goes through the daemon's own path (`Config::from_toml`,
//! `Config::validate`, `Config::engine_config`, as `Config::load` does) and is a
//! configuration or one clear, one-line error, never a panic (docs/fuzzing.md).
//!
//! [`ng`] is the NG datagram's exerciser (the `ng_datagram` target, `ng_wire.rs`).

pub mod ng;

use std::path::Path;

use controlplane::config::{Config, ConfigError};

/// What the text turned out to be.
// The fuzz target needs only the checks; the corpus test reads the outcome.
#[allow(dead_code)]
#[derive(Debug)]
pub enum Outcome {
    /// The daemon would refuse to start, with this error.
    Refused(ConfigError),
    /// A configuration the daemon would start with.
    Valid(Box<Config>),
}

/// Parses and validates `data` as a config file, asserting the invariants on the way.
pub fn config(data: &[u8]) -> Outcome {
    let path = Path::new("earshot.toml");
    // The daemon reads the file as UTF-8 (`read_to_string`); other bytes are its error.
    let Ok(text) = std::str::from_utf8(data) else {
        return Outcome::Refused(ConfigError::Read {
            path: path.to_owned(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        });
    };
    let config = match Config::from_toml(text, path).and_then(|c| c.validate().map(|()| c)) {
        Ok(config) => config,
        Err(e) => {
            let message = e.to_string();
            assert!(!message.contains('\n'), "an error is one line: {message:?}");
            return Outcome::Refused(e);
        }
    };
    // A valid configuration gives one data-plane worker per `engine.workers`.
    let engine = config.engine_config();
    assert_eq!(engine.workers.len(), config.engine.workers);
    // What parsed writes back as TOML that parses to the same configuration (the admin token
    // is never written out).
    if let Ok(written) = toml::to_string(&config) {
        let mut expected = config.clone();
        expected.auth.admin_token = None;
        let reread = Config::from_toml(&written, path).expect("our own TOML parses");
        assert_eq!(reread, expected, "round trip through {written:?}");
    }
    Outcome::Valid(Box::new(config))
}
