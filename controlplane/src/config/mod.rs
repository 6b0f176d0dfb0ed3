//! The daemon's configuration: built-in defaults (docs/design.md §5.5), then a TOML file, then
//! environment variables (`EARSHOT_*`), then command-line flags, each overriding the one before;
//! then [`Config::validate`].

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dataplane::engine::{Backend, EngineConfig, WorkerConfig};
use dataplane::media::matrix::{MAX_SUPERVISORS, Mode};
use dataplane::time::Duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::lifecycle::{AnswerTimeout, AnswerTimeoutOutOfRange};

mod cli;
mod ng;

pub use cli::{Cli, LogFormat, Overrides};
pub use ng::{Listen, Network, NgIdentity, NgSection, Offerer};

/// Most data-plane workers one daemon runs; far above any real machine's core count, it only
/// catches typos.
const WORKERS_MAX: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        var: &'static str,
        value: String,
        message: String,
    },
    #[error("invalid configuration: {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

fn invalid(key: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

/// The whole configuration. `Config::default()` is the embedded default of docs/design.md §5.5;
/// every field is public so tests can adjust it before [`crate::daemon::spawn`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSection,
    pub media: MediaSection,
    pub engine: EngineSection,
    pub store: StoreSection,
    pub supervision: SupervisionSection,
    pub auth: AuthSection,
    pub ng: NgSection,
}

/// `[auth]`
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSection {
    /// The bootstrap admin token (at least 32 printable characters), stored (as its hash) as
    /// an admin token at start. `None`: the daemon generates one at first start, when the
    /// database holds no admin token, and logs it once. Never serialized (the effective
    /// configuration is logged).
    #[serde(skip_serializing)]
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for AuthSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSection")
            .field("admin_token", &self.admin_token.as_ref().map(|_| "…"))
            .finish()
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// The SQLite database file (created if absent), relative to the working directory unless
    /// absolute; `:memory:` keeps a private in-memory database (nothing survives the process).
    pub path: PathBuf,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            path: PathBuf::from(crate::store::SqliteStore::DEFAULT_PATH),
        }
    }
}

/// `[supervision]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionSection {
    /// How long the supervisor's phone may ring before the session fails with
    /// `failed_supervisor_didnt_answer` (docs/design.md §2.4: 30 s).
    pub answer_timeout_secs: u64,
}

impl Default for SupervisionSection {
    fn default() -> Self {
        SupervisionSection {
            answer_timeout_secs: AnswerTimeout::DEFAULT.ms() / 1000,
        }
    }
}

impl SupervisionSection {
    /// The answer timeout, if in range (validated by [`Config::validate`]).
    pub fn answer_timeout(&self) -> Result<AnswerTimeout, ConfigError> {
        self.answer_timeout_secs
            .checked_mul(1000)
            .ok_or(AnswerTimeoutOutOfRange { ms: u64::MAX })
            .and_then(AnswerTimeout::from_ms)
            .map_err(|e| invalid("supervision.answer_timeout_secs", e.to_string()))
    }
}

/// Longest HTTP timeout the configuration accepts (an hour): beyond it a typo, not a policy.
const HTTP_TIMEOUT_SECS_MAX: u64 = 3600;
/// Most HTTP connections the configuration accepts; far above what the fd limit allows on any
/// host, it only catches typos.
const HTTP_CONNECTIONS_MAX: usize = 1 << 20;

/// `[http]`: the listener and its limits against slow and idle clients (docs/api.md,
/// Connection limits: they never lock out an operator).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// The HTTP API, `/metrics` and `/healthz`. Port 0 binds any free port.
    pub listen: SocketAddr,
    /// How long a connection may take, from the moment the server waits for a request (a new
    /// connection, or a kept-alive one after its last answer), to send that request's whole
    /// head: it bounds both idle keep-alive connections and slowly sent headers.
    pub header_read_timeout_secs: u64,
    /// Longest wait for the next piece of a request body (a declared body that does not come).
    pub body_timeout_secs: u64,
    /// Longest time from a request's head to its answer's head, body included (a body sent a
    /// byte at a time). Streams (`GET /v1/events`) answer at once and are not cut by it.
    pub request_timeout_secs: u64,
    /// Connections served at once; more wait in the listen backlog until one closes. The
    /// daemon lowers it at start when its file-descriptor limit could not hold this many
    /// besides the media ports.
    pub max_connections: usize,
}

impl Default for HttpSection {
    fn default() -> Self {
        HttpSection {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            header_read_timeout_secs: 10,
            body_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 4096,
        }
    }
}

impl HttpSection {
    pub fn header_read_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.header_read_timeout_secs)
    }

    pub fn body_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.body_timeout_secs)
    }

    pub fn request_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_timeout_secs)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        for (key, secs) in [
            (
                "http.header_read_timeout_secs",
                self.header_read_timeout_secs,
            ),
            ("http.body_timeout_secs", self.body_timeout_secs),
            ("http.request_timeout_secs", self.request_timeout_secs),
        ] {
            if !(1..=HTTP_TIMEOUT_SECS_MAX).contains(&secs) {
                return Err(invalid(
                    key,
                    format!("{secs} is not in 1..={HTTP_TIMEOUT_SECS_MAX}"),
                ));
            }
        }
        if !(1..=HTTP_CONNECTIONS_MAX).contains(&self.max_connections) {
            return Err(invalid(
                "http.max_connections",
                format!(
                    "{} is not in 1..={HTTP_CONNECTIONS_MAX}",
                    self.max_connections
                ),
            ));
        }
        Ok(())
    }
}

/// `[media]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// The local address of every media leg; it goes into the SDP, so it cannot be a wildcard.
    pub ip: IpAddr,
    /// The media UDP port range, inclusive. Legs take even ports.
    pub port_min: u16,
    pub port_max: u16,
    /// A leg that sends no RTP for this long counts as hung up.
    pub timeout_secs: u64,
    /// The same for a party on hold (`hold` call event), which may rightly send nothing: only
    /// this long a silence means it vanished (rtpengine's `--silent-timeout`). At least
    /// `timeout_secs`.
    pub silent_timeout_secs: u64,
    /// The RTP payload type of RFC 4733 telephone-events.
    pub telephone_event_pt: u8,
    pub max_supervisors_per_call: usize,
    /// Whether a supervision beeps to the agent when its request does not say.
    pub agent_beep: bool,
    /// Calls admitted at once; beyond it new calls get `load_limit`.
    pub max_calls: usize,
    /// The supervisor's in-band keys.
    pub dtmf: DtmfKeys,
}

impl Default for MediaSection {
    fn default() -> Self {
        MediaSection {
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port_min: 20000,
            port_max: 29999,
            timeout_secs: 60,
            silent_timeout_secs: 3600,
            telephone_event_pt: 101,
            max_supervisors_per_call: MAX_SUPERVISORS,
            agent_beep: true,
            max_calls: 10_000,
            dtmf: DtmfKeys::default(),
        }
    }
}

/// `[media.dtmf]`: which RFC 4733 key does what when a supervisor presses it (Asterisk's
/// convention by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DtmfKeys {
    pub listen: char,
    pub whisper: char,
    pub barge: char,
    pub stop: char,
}

impl Default for DtmfKeys {
    fn default() -> Self {
        DtmfKeys {
            listen: '4',
            whisper: '5',
            barge: '6',
            stop: '#',
        }
    }
}

/// What a supervisor's key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfAction {
    Mode(Mode),
    Stop,
}

impl DtmfKeys {
    /// The action of a key, if it has one (letters in either case).
    pub fn action(&self, digit: char) -> Option<DtmfAction> {
        [
            (self.listen, DtmfAction::Mode(Mode::Listen)),
            (self.whisper, DtmfAction::Mode(Mode::Whisper)),
            (self.barge, DtmfAction::Mode(Mode::Barge)),
            (self.stop, DtmfAction::Stop),
        ]
        .into_iter()
        .find_map(|(key, action)| key.eq_ignore_ascii_case(&digit).then_some(action))
    }

    fn validate(&self) -> Result<(), ConfigError> {
        // The sixteen RFC 4733 §3.2 DTMF events.
        const KEYS: &str = "0123456789*#ABCD";
        let keys = [
            ("listen", self.listen),
            ("whisper", self.whisper),
            ("barge", self.barge),
            ("stop", self.stop),
        ];
        for (i, (name, key)) in keys.iter().enumerate() {
            if !KEYS.contains(key.to_ascii_uppercase()) {
                return Err(invalid(
                    "media.dtmf",
                    format!("{name} = {key:?} is not a DTMF key (expected one of 0-9, *, #, A-D)"),
                ));
            }
            if let Some((other, _)) = keys[..i].iter().find(|(_, k)| k.eq_ignore_ascii_case(key)) {
                return Err(invalid(
                    "media.dtmf",
                    format!("{other} and {name} are both {key:?}"),
                ));
            }
        }
        Ok(())
    }
}

/// `[engine]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// uring, afxdp, or auto (AF_XDP where it can be had, else io_uring).
    pub backend: BackendKind,
    /// The interface AF_XDP binds to; absent: the one holding `media.ip`.
    pub interface: Option<String>,
    /// Ask the kernel to busy-poll the AF_XDP sockets where it offers it.
    pub busy_poll: bool,
    /// Data-plane worker threads.
    pub workers: usize,
    /// The core each worker is pinned to, one per worker; absent: not pinned.
    pub cores: Option<Vec<usize>>,
}

impl Default for EngineSection {
    fn default() -> Self {
        EngineSection {
            backend: BackendKind::Uring,
            interface: None,
            busy_poll: true,
            workers: 1,
            cores: None,
        }
    }
}

/// The data plane's packet I/O, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendKind {
    /// io_uring UDP sockets.
    #[default]
    Uring,
    /// AF_XDP sockets fed by the XDP program.
    AfXdp,
    /// AF_XDP, falling back to io_uring (with a log line saying why).
    Auto,
}

impl BackendKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            BackendKind::Uring => "uring",
            BackendKind::AfXdp => "afxdp",
            BackendKind::Auto => "auto",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<BackendKind, String> {
        match s {
            "uring" => Ok(BackendKind::Uring),
            "afxdp" => Ok(BackendKind::AfXdp),
            "auto" => Ok(BackendKind::Auto),
            _ => Err(format!(
                "unknown backend {s:?} (available: uring, afxdp, auto)"
            )),
        }
    }
}

impl Serialize for BackendKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for BackendKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<BackendKind, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Config {
    /// Parses a TOML document (no validation).
    pub fn from_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|err| {
            // One line: the key and the line number, not toml's multi-line snippet.
            let message = match err.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    format!("line {line}: {}", err.message().trim_end())
                }
                None => err.message().trim_end().to_owned(),
            };
            ConfigError::Parse {
                path: path.to_owned(),
                message: message.replace('\n', " "),
            }
        })
    }

    /// Reads and parses a TOML file (no validation).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::from_toml(&text, path)
    }

    /// Defaults, then the file (if any), then `env`, then `cli`; validated.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        cli: &Overrides,
    ) -> Result<Config, ConfigError> {
        let mut config = match file {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        Overrides::from_env(env)?.apply(&mut config);
        cli.apply(&mut config);
        config.validate()?;
        Ok(config)
    }

    /// [`Config::load`] from the command line and the process environment.
    pub fn from_cli(cli: &Cli) -> Result<Config, ConfigError> {
        Config::load(
            cli.config.as_deref(),
            |var| std::env::var_os(var).map(|v| v.to_string_lossy().into_owned()),
            &cli.overrides,
        )
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.auth.admin_token {
            crate::domain::auth::Token::from_config(token)
                .map_err(|e| invalid("auth.admin_token", e.to_string()))?;
        }
        self.http.validate()?;
        self.ng.validate()?;
        let m = &self.media;
        if m.ip.is_unspecified() || m.ip.is_multicast() {
            return Err(invalid(
                "media.ip",
                format!(
                    "{} cannot be a leg's local address (it is announced in SDP)",
                    m.ip
                ),
            ));
        }
        if m.port_min < 1024 {
            return Err(invalid(
                "media.port_min",
                format!("{} is below 1024", m.port_min),
            ));
        }
        if m.port_min > m.port_max {
            return Err(invalid(
                "media.port_min",
                format!("port_min {} is above port_max {}", m.port_min, m.port_max),
            ));
        }
        let even_ports = (m.port_min..=m.port_max)
            .filter(|p| p % 2 == 0)
            .take(2)
            .count();
        if even_ports < 2 {
            return Err(invalid(
                "media.port_max",
                format!(
                    "the range {}..={} has fewer than 2 even ports, and a call needs two",
                    m.port_min, m.port_max
                ),
            ));
        }
        if m.timeout_secs == 0 {
            return Err(invalid("media.timeout_secs", "must be at least 1"));
        }
        if m.silent_timeout_secs < m.timeout_secs {
            return Err(invalid(
                "media.silent_timeout_secs",
                format!(
                    "{} is shorter than media.timeout_secs ({}): a held party would be hung up \
                     sooner than one that is not",
                    m.silent_timeout_secs, m.timeout_secs
                ),
            ));
        }
        if !(96..=127).contains(&m.telephone_event_pt) {
            return Err(invalid(
                "media.telephone_event_pt",
                format!(
                    "{} is not a dynamic payload type (96..=127)",
                    m.telephone_event_pt
                ),
            ));
        }
        if !(1..=MAX_SUPERVISORS).contains(&m.max_supervisors_per_call) {
            return Err(invalid(
                "media.max_supervisors_per_call",
                format!(
                    "{} is not in 1..={MAX_SUPERVISORS}",
                    m.max_supervisors_per_call
                ),
            ));
        }
        if m.max_calls == 0 {
            return Err(invalid("media.max_calls", "must be at least 1"));
        }
        m.dtmf.validate()?;
        if self.store.path.as_os_str().is_empty() {
            return Err(invalid(
                "store.path",
                "must name a database file (or :memory:)",
            ));
        }
        self.supervision.answer_timeout()?;
        let e = &self.engine;
        if !(1..=WORKERS_MAX).contains(&e.workers) {
            return Err(invalid(
                "engine.workers",
                format!("{} is not in 1..={WORKERS_MAX}", e.workers),
            ));
        }
        if let Some(cores) = &e.cores {
            if cores.len() != e.workers {
                return Err(invalid(
                    "engine.cores",
                    format!(
                        "{} cores listed for {} workers (one core per worker)",
                        cores.len(),
                        e.workers
                    ),
                ));
            }
            if let Some((i, core)) = cores
                .iter()
                .enumerate()
                .find(|(i, c)| cores[..*i].contains(c))
            {
                return Err(invalid(
                    "engine.cores",
                    format!("core {core} is listed twice (entry {})", i + 1),
                ));
            }
        }
        Ok(())
    }

    /// The data plane's part of the configuration.
    pub fn engine_config(&self) -> EngineConfig {
        let workers = match &self.engine.cores {
            Some(cores) => cores
                .iter()
                .map(|&core| WorkerConfig { core: Some(core) })
                .collect(),
            None => vec![WorkerConfig { core: None }; self.engine.workers],
        };
        EngineConfig {
            media_ip: self.media.ip,
            port_min: self.media.port_min,
            port_max: self.media.port_max,
            workers,
            backend: match self.engine.backend {
                BackendKind::Uring => Backend::Uring,
                BackendKind::AfXdp => Backend::AfXdp,
                BackendKind::Auto => Backend::Auto,
            },
            interface: self.engine.interface.clone(),
            busy_poll: self.engine.busy_poll,
            media_timeout: Duration::from_secs(self.media.timeout_secs),
            silent_timeout: Duration::from_secs(self.media.silent_timeout_secs),
            max_calls: self.media.max_calls,
            telephone_event_pt: self.media.telephone_event_pt,
        }
    }
}

#[cfg(test)]
mod tests;
