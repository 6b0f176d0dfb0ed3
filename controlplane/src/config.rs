//! The daemon's configuration: built-in defaults (SPEC §5), then a TOML file, then environment
//! variables (`EARSHOT_*`), then command-line flags, each overriding the one before; then
//! [`Config::validate`].

use core::fmt;
use core::str::FromStr;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dataplane::engine::{Backend, EngineConfig, WorkerConfig};
use dataplane::media::matrix::{MAX_SUPERVISORS, Mode};
use dataplane::time::Duration;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::lifecycle::{AnswerTimeout, AnswerTimeoutOutOfRange};

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

/// The whole configuration. `Config::default()` is the embedded default of SPEC §5; every
/// field is public so tests can adjust it before [`crate::daemon::spawn`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub http: HttpSection,
    pub media: MediaSection,
    pub engine: EngineSection,
    pub store: StoreSection,
    pub supervision: SupervisionSection,
    pub auth: AuthSection,
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
    /// `failed_supervisor_didnt_answer` (SPEC §2: 30 s).
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

/// The settings the command line (and the environment) can override; `None`: not given.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct Overrides {
    /// Address of the HTTP API, /metrics and /healthz [env: EARSHOT_HTTP_LISTEN] [default:
    /// 127.0.0.1:8080]
    #[arg(long, value_name = "IP:PORT")]
    pub http_listen: Option<SocketAddr>,
    /// Seconds a connection has to send a request's head, counted from when the server waits
    /// for it (also the keep-alive idle limit) [env: EARSHOT_HTTP_HEADER_READ_TIMEOUT_SECS]
    /// [default: 10]
    #[arg(long, value_name = "SECS")]
    pub http_header_read_timeout_secs: Option<u64>,
    /// Longest wait in seconds for the next piece of a request body [env:
    /// EARSHOT_HTTP_BODY_TIMEOUT_SECS] [default: 10]
    #[arg(long, value_name = "SECS")]
    pub http_body_timeout_secs: Option<u64>,
    /// Longest time in seconds from a request's head to its answer [env:
    /// EARSHOT_HTTP_REQUEST_TIMEOUT_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    pub http_request_timeout_secs: Option<u64>,
    /// HTTP connections served at once (lowered to fit the fd limit) [env:
    /// EARSHOT_HTTP_MAX_CONNECTIONS] [default: 4096]
    #[arg(long, value_name = "N")]
    pub http_max_connections: Option<usize>,
    /// Local address of the media legs [env: EARSHOT_MEDIA_IP] [default: 127.0.0.1]
    #[arg(long, value_name = "IP")]
    pub media_ip: Option<IpAddr>,
    /// Lowest media UDP port [env: EARSHOT_PORT_MIN] [default: 20000]
    #[arg(long, value_name = "PORT")]
    pub port_min: Option<u16>,
    /// Highest media UDP port [env: EARSHOT_PORT_MAX] [default: 29999]
    #[arg(long, value_name = "PORT")]
    pub port_max: Option<u16>,
    /// Seconds a held party may send no RTP before it counts as hung up [env:
    /// EARSHOT_SILENT_TIMEOUT_SECS] [default: 3600]
    #[arg(long, value_name = "SECS")]
    pub silent_timeout_secs: Option<u64>,
    /// Data-plane worker threads [env: EARSHOT_WORKERS] [default: 1]
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// Cores to pin the workers to, one per worker, e.g. 1,2 [env: EARSHOT_CORES]
    #[arg(long, value_name = "LIST", value_delimiter = ',', num_args = 1..)]
    pub cores: Option<Vec<usize>>,
    /// Packet I/O backend: uring, afxdp or auto [env: EARSHOT_BACKEND] [default: uring]
    #[arg(long, value_name = "NAME")]
    pub backend: Option<BackendKind>,
    /// Interface for AF_XDP; default: the one holding the media IP [env: EARSHOT_INTERFACE]
    #[arg(long, value_name = "NAME")]
    pub interface: Option<String>,
    /// SQLite database file, or :memory: [env: EARSHOT_DB] [default: earshot.db in the working
    /// directory]
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
    /// The bootstrap admin token, at least 32 characters [env: EARSHOT_ADMIN_TOKEN] [default:
    /// generated at first start and logged once]
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
}

impl Overrides {
    /// Reads the `EARSHOT_*` variables through `env` (the process environment in the daemon;
    /// a map in tests).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Overrides, ConfigError> {
        fn var<T: FromStr>(
            env: &impl Fn(&str) -> Option<String>,
            var: &'static str,
        ) -> Result<Option<T>, ConfigError>
        where
            T::Err: fmt::Display,
        {
            let Some(value) = env(var) else {
                return Ok(None);
            };
            value
                .trim()
                .parse()
                .map(Some)
                .map_err(|e: T::Err| ConfigError::Env {
                    var,
                    value,
                    message: e.to_string(),
                })
        }
        let cores = match env("EARSHOT_CORES") {
            None => None,
            Some(value) if value.trim().is_empty() => None,
            Some(value) => Some(
                value
                    .split(',')
                    .map(|core| core.trim().parse::<usize>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| ConfigError::Env {
                        var: "EARSHOT_CORES",
                        value: value.clone(),
                        message: format!("{e} (expected a comma-separated list of core numbers)"),
                    })?,
            ),
        };
        Ok(Overrides {
            http_listen: var(&env, "EARSHOT_HTTP_LISTEN")?,
            http_header_read_timeout_secs: var(&env, "EARSHOT_HTTP_HEADER_READ_TIMEOUT_SECS")?,
            http_body_timeout_secs: var(&env, "EARSHOT_HTTP_BODY_TIMEOUT_SECS")?,
            http_request_timeout_secs: var(&env, "EARSHOT_HTTP_REQUEST_TIMEOUT_SECS")?,
            http_max_connections: var(&env, "EARSHOT_HTTP_MAX_CONNECTIONS")?,
            media_ip: var(&env, "EARSHOT_MEDIA_IP")?,
            port_min: var(&env, "EARSHOT_PORT_MIN")?,
            port_max: var(&env, "EARSHOT_PORT_MAX")?,
            silent_timeout_secs: var(&env, "EARSHOT_SILENT_TIMEOUT_SECS")?,
            workers: var(&env, "EARSHOT_WORKERS")?,
            cores,
            backend: var(&env, "EARSHOT_BACKEND")?,
            interface: env("EARSHOT_INTERFACE").filter(|v| !v.trim().is_empty()),
            db: env("EARSHOT_DB")
                .filter(|v| !v.trim().is_empty())
                .map(PathBuf::from),
            admin_token: env("EARSHOT_ADMIN_TOKEN").filter(|v| !v.trim().is_empty()),
        })
    }

    /// Sets every field given here in `config`.
    pub fn apply(&self, config: &mut Config) {
        let Overrides {
            http_listen,
            http_header_read_timeout_secs,
            http_body_timeout_secs,
            http_request_timeout_secs,
            http_max_connections,
            media_ip,
            port_min,
            port_max,
            silent_timeout_secs,
            workers,
            cores,
            backend,
            interface,
            db,
            admin_token,
        } = self.clone();
        if let Some(v) = http_listen {
            config.http.listen = v;
        }
        if let Some(v) = http_header_read_timeout_secs {
            config.http.header_read_timeout_secs = v;
        }
        if let Some(v) = http_body_timeout_secs {
            config.http.body_timeout_secs = v;
        }
        if let Some(v) = http_request_timeout_secs {
            config.http.request_timeout_secs = v;
        }
        if let Some(v) = http_max_connections {
            config.http.max_connections = v;
        }
        if let Some(v) = media_ip {
            config.media.ip = v;
        }
        if let Some(v) = port_min {
            config.media.port_min = v;
        }
        if let Some(v) = port_max {
            config.media.port_max = v;
        }
        if let Some(v) = silent_timeout_secs {
            config.media.silent_timeout_secs = v;
        }
        if let Some(v) = workers {
            config.engine.workers = v;
        }
        if let Some(v) = cores {
            config.engine.cores = Some(v);
        }
        if let Some(v) = backend {
            config.engine.backend = v;
        }
        if let Some(v) = interface {
            config.engine.interface = Some(v);
        }
        if let Some(v) = db {
            config.store.path = v;
        }
        if let Some(v) = admin_token {
            config.auth.admin_token = Some(v);
        }
    }
}

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// `earshotd`'s command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "earshotd",
    version,
    about = "earshot: RTP call-supervision media appliance (listen, whisper, barge, takeover)",
    long_about = "earshot: RTP call-supervision media appliance.\n\nRelays customer/agent RTP and lets \
                  supervisors listen, whisper, barge and take over, driven by an HTTP API.\n\n\
                  Settings come from the built-in defaults, then the --config TOML file, then the \
                  EARSHOT_* environment variables, then these flags, each overriding the one \
                  before. Logging is filtered by RUST_LOG (default: info)."
)]
pub struct Cli {
    /// TOML configuration file (sections [http], [media], [engine], [store], [supervision],
    /// [auth]; unknown keys are errors)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
    /// Log line format
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
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
mod tests {
    use std::collections::HashMap;

    use clap::Parser as _;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn toml(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    #[test]
    fn default_is_spec_default_and_valid() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.media.ip, IpAddr::from([127, 0, 0, 1]));
        assert_eq!((c.media.port_min, c.media.port_max), (20000, 29999));
        assert_eq!(c.engine.backend, BackendKind::Uring);
        assert_eq!(c.store.path, Path::new("earshot.db"));
        assert_eq!(
            c.supervision.answer_timeout().unwrap(),
            AnswerTimeout::DEFAULT
        );
        assert_eq!(toml("").unwrap(), c);
        let e = c.engine_config();
        assert_eq!(e.workers, vec![WorkerConfig { core: None }]);
        assert_eq!(e.media_timeout, Duration::from_secs(60));
        assert_eq!(e.silent_timeout, Duration::from_secs(3600));
        assert_eq!(e.telephone_event_pt, 101);
    }

    #[test]
    fn full_file() {
        let c = toml(
            r#"
            [http]
            listen = "0.0.0.0:9000"
            header_read_timeout_secs = 5
            body_timeout_secs = 6
            request_timeout_secs = 7
            max_connections = 100
            [media]
            ip = "::1"
            port_min = 30000
            port_max = 30099
            timeout_secs = 5
            silent_timeout_secs = 600
            telephone_event_pt = 96
            max_supervisors_per_call = 2
            agent_beep = false
            max_calls = 50
            dtmf = { listen = "1", whisper = "2", barge = "3", stop = "*" }
            [engine]
            backend = "uring"
            workers = 2
            cores = [0, 1]
            [store]
            path = "/var/lib/earshot/earshot.db"
            [supervision]
            answer_timeout_secs = 45
            "#,
        )
        .unwrap();
        c.validate().unwrap();
        assert_eq!(c.media.ip, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(c.media.dtmf.action('*'), Some(DtmfAction::Stop));
        assert_eq!(
            c.media.dtmf.action('2'),
            Some(DtmfAction::Mode(Mode::Whisper))
        );
        assert_eq!(c.media.dtmf.action('4'), None);
        let e = c.engine_config();
        assert_eq!(
            e.workers,
            vec![
                WorkerConfig { core: Some(0) },
                WorkerConfig { core: Some(1) }
            ]
        );
        assert_eq!((e.port_min, e.port_max, e.max_calls), (30000, 30099, 50));
        assert_eq!(
            (e.media_timeout, e.silent_timeout),
            (Duration::from_secs(5), Duration::from_secs(600))
        );
        assert_eq!(c.store.path, Path::new("/var/lib/earshot/earshot.db"));
        assert_eq!(c.supervision.answer_timeout().unwrap().ms(), 45_000);
        assert_eq!(
            (
                c.http.header_read_timeout(),
                c.http.body_timeout(),
                c.http.request_timeout(),
                c.http.max_connections
            ),
            (
                std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(6),
                std::time::Duration::from_secs(7),
                100
            )
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let err = toml("[media]\nprot_min = 3000\n").unwrap_err().to_string();
        assert!(err.contains("prot_min") && err.contains("line 2"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = toml("[nope]\n").unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        let err = toml("[media.dtmf]\nlisen = \"4\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lisen"), "{err}");
        assert_eq!(
            toml("[engine]\nbackend = \"afxdp\"\ninterface = \"eth0\"\n")
                .unwrap()
                .engine
                .backend,
            BackendKind::AfXdp
        );
        let err = toml("[engine]\nbackend = \"xdp\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("afxdp") && err.contains("uring"), "{err}");
        let err = toml("[engine]\nbackend = \"dpdk\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown backend"), "{err}");
        let err = toml("[media]\nport_max = 70000\n").unwrap_err().to_string();
        assert!(err.contains("70000"), "{err}");
        let err = toml("[media\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
    }

    #[test]
    fn validation() {
        let check = |f: &dyn Fn(&mut Config), key: &str| {
            let mut c = Config::default();
            f(&mut c);
            match c.validate() {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{key}: {other:?}"),
            }
        };
        check(&|c| c.media.port_min = 1000, "media.port_min");
        check(
            &|c| (c.media.port_min, c.media.port_max) = (30000, 20000),
            "media.port_min",
        );
        check(
            &|c| (c.media.port_min, c.media.port_max) = (30000, 30001),
            "media.port_max",
        );
        check(&|c| c.media.ip = "0.0.0.0".parse().unwrap(), "media.ip");
        check(&|c| c.media.timeout_secs = 0, "media.timeout_secs");
        check(
            &|c| c.media.silent_timeout_secs = 59,
            "media.silent_timeout_secs",
        );
        check(
            &|c| (c.media.timeout_secs, c.media.silent_timeout_secs) = (120, 90),
            "media.silent_timeout_secs",
        );
        check(
            &|c| c.media.telephone_event_pt = 8,
            "media.telephone_event_pt",
        );
        check(
            &|c| c.media.max_supervisors_per_call = MAX_SUPERVISORS + 1,
            "media.max_supervisors_per_call",
        );
        check(
            &|c| c.media.max_supervisors_per_call = 0,
            "media.max_supervisors_per_call",
        );
        check(&|c| c.media.max_calls = 0, "media.max_calls");
        check(&|c| c.media.dtmf.stop = 'x', "media.dtmf");
        check(&|c| c.media.dtmf.stop = '4', "media.dtmf");
        check(&|c| c.engine.workers = 0, "engine.workers");
        check(
            &|c| c.http.header_read_timeout_secs = 0,
            "http.header_read_timeout_secs",
        );
        check(
            &|c| c.http.body_timeout_secs = 3601,
            "http.body_timeout_secs",
        );
        check(
            &|c| c.http.request_timeout_secs = 0,
            "http.request_timeout_secs",
        );
        check(&|c| c.http.max_connections = 0, "http.max_connections");
        check(&|c| c.store.path = PathBuf::new(), "store.path");
        check(
            &|c| c.supervision.answer_timeout_secs = 0,
            "supervision.answer_timeout_secs",
        );
        check(
            &|c| c.supervision.answer_timeout_secs = 601,
            "supervision.answer_timeout_secs",
        );
        check(
            &|c| c.supervision.answer_timeout_secs = u64::MAX,
            "supervision.answer_timeout_secs",
        );
        check(&|c| c.engine.cores = Some(vec![1, 2]), "engine.cores");
        check(
            &|c| {
                c.engine.workers = 2;
                c.engine.cores = Some(vec![3, 3]);
            },
            "engine.cores",
        );
        let mut c = Config::default();
        (c.media.port_min, c.media.port_max) = (30000, 30002);
        c.validate().unwrap();
        (c.media.timeout_secs, c.media.silent_timeout_secs) = (60, 60);
        c.validate().unwrap();
    }

    #[test]
    fn precedence_file_then_env_then_cli() {
        let dir = std::env::temp_dir().join(format!("earshot-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("earshot.toml");
        std::fs::write(&path, "[media]\nport_min = 21000\nport_max = 21999\nip = \"127.0.0.2\"\n[engine]\nworkers = 3\n")
            .unwrap();

        let file_only = Config::load(Some(&path), env(&[]), &Overrides::default()).unwrap();
        assert_eq!(
            (file_only.media.port_min, file_only.media.port_max),
            (21000, 21999)
        );
        assert_eq!(file_only.engine.workers, 3);

        let environment = env(&[
            ("EARSHOT_PORT_MIN", "22000"),
            ("EARSHOT_PORT_MAX", "22999"),
            ("EARSHOT_WORKERS", "2"),
            ("EARSHOT_CORES", "0, 1"),
            ("EARSHOT_HTTP_LISTEN", "127.0.0.1:0"),
            ("EARSHOT_BACKEND", "uring"),
            ("EARSHOT_DB", "/tmp/from-env.db"),
            ("EARSHOT_HTTP_HEADER_READ_TIMEOUT_SECS", "3"),
            ("EARSHOT_HTTP_MAX_CONNECTIONS", "50"),
        ]);
        let cli = Cli::try_parse_from([
            "earshotd",
            "--port-max",
            "22500",
            "--media-ip",
            "127.0.0.3",
            "--http-max-connections",
            "60",
            "--http-body-timeout-secs",
            "4",
        ])
        .unwrap();
        let c = Config::load(Some(&path), environment, &cli.overrides).unwrap();
        assert_eq!(c.media.port_min, 22000, "env over file");
        assert_eq!(c.media.port_max, 22500, "cli over env");
        assert_eq!(
            c.media.ip,
            "127.0.0.3".parse::<IpAddr>().unwrap(),
            "cli over file"
        );
        assert_eq!(c.engine.workers, 2);
        assert_eq!(c.engine.cores, Some(vec![0, 1]));
        assert_eq!(c.http.listen.port(), 0);
        assert_eq!(c.http.header_read_timeout_secs, 3, "env over default");
        assert_eq!(c.http.max_connections, 60, "cli over env");
        assert_eq!(c.http.body_timeout_secs, 4);
        assert_eq!(c.http.request_timeout_secs, 30);
        assert_eq!(c.store.path, Path::new("/tmp/from-env.db"));
        let cli = Cli::try_parse_from(["earshotd", "--db", ":memory:"]).unwrap();
        let c = Config::load(
            Some(&path),
            env(&[("EARSHOT_DB", "/tmp/from-env.db")]),
            &cli.overrides,
        )
        .unwrap();
        assert_eq!(c.store.path, Path::new(":memory:"), "cli over env");
        let silent = |env_value: &str, args: &[&str]| {
            let cli = Cli::try_parse_from([&["earshotd"], args].concat()).unwrap();
            Config::load(
                Some(&path),
                env(&[("EARSHOT_SILENT_TIMEOUT_SECS", env_value)]),
                &cli.overrides,
            )
            .map(|c| c.media.silent_timeout_secs)
        };
        assert_eq!(silent("900", &[]).unwrap(), 900, "env over the default");
        assert_eq!(
            silent("900", &["--silent-timeout-secs", "7200"]).unwrap(),
            7200,
            "cli over env"
        );
        let err = silent("30", &[]).unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "media.silent_timeout_secs",
                    ..
                }
            ),
            "validated after the overrides: {err}"
        );
        assert!(silent("an hour", &[]).is_err());

        let err = Config::load(
            Some(&path),
            env(&[("EARSHOT_PORT_MIN", "lots")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("EARSHOT_PORT_MIN"), "{err}");
        let err = Config::load(
            Some(&path),
            env(&[("EARSHOT_BACKEND", "dpdk")]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown backend"), "{err}");
        let auto = Config::load(
            Some(&path),
            env(&[("EARSHOT_BACKEND", "auto"), ("EARSHOT_INTERFACE", "eth9")]),
            &Overrides::default(),
        )
        .unwrap();
        assert_eq!(auto.engine.backend, BackendKind::Auto);
        assert_eq!(auto.engine.interface.as_deref(), Some("eth9"));
        let err = Config::load(
            Some(&dir.join("missing.toml")),
            env(&[]),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
        // Validation runs after every layer.
        let err = Config::load(
            Some(&path),
            env(&[]),
            &Overrides {
                port_max: Some(20000),
                ..Overrides::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Invalid {
                    key: "media.port_min",
                    ..
                }
            ),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cli_flags() {
        let cli = Cli::try_parse_from([
            "earshotd",
            "--config",
            "/etc/earshot.toml",
            "--http-listen",
            "[::1]:8081",
            "--cores",
            "1,2",
            "--workers",
            "2",
            "--backend",
            "uring",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.config.as_deref(), Some(Path::new("/etc/earshot.toml")));
        assert_eq!(cli.overrides.cores, Some(vec![1, 2]));
        assert_eq!(
            cli.overrides.http_listen,
            Some("[::1]:8081".parse().unwrap())
        );
        assert_eq!(cli.log_format, LogFormat::Json);
        assert!(Cli::try_parse_from(["earshotd", "--backend", "dpdk"]).is_err());
        assert!(Cli::try_parse_from(["earshotd", "--port-min", "70000"]).is_err());
        let help = Cli::try_parse_from(["earshotd", "--help"])
            .unwrap_err()
            .to_string();
        assert!(
            help.contains("EARSHOT_PORT_MIN") && help.contains("--log-format"),
            "{help}"
        );
    }
}
