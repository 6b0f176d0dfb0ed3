//! The overrides of the file: `EARSHOT_*` environment variables and `earshotd`'s command line.

use core::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use super::ng::{Listen, Network, Offerer, parse_networks};
use super::{BackendKind, Config, ConfigError};

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
    /// UDP address of the rtpengine NG listener; an empty value turns it off [env:
    /// EARSHOT_NG_LISTEN] [default: 127.0.0.1:2223]
    #[arg(long, value_name = "IP:PORT")]
    pub ng_listen: Option<Listen>,
    /// Source networks the NG listener answers, e.g. 10.0.0.0/8,192.0.2.7 [env:
    /// EARSHOT_NG_ALLOW] [default: 127.0.0.0/8,::1]
    #[arg(long, value_name = "LIST", value_delimiter = ',', num_args = 1..)]
    pub ng_allow: Option<Vec<Network>>,
    /// Which NG party is the customer: the offerer's (customer) or the answerer's (agent)
    /// [env: EARSHOT_NG_OFFERER] [default: customer]
    #[arg(long, value_name = "PARTY")]
    pub ng_offerer: Option<Offerer>,
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
            // Empty is meaningful here: NG off.
            ng_listen: var(&env, "EARSHOT_NG_LISTEN")?,
            ng_allow: match env("EARSHOT_NG_ALLOW") {
                None => None,
                Some(value) if value.trim().is_empty() => None,
                Some(value) => {
                    Some(parse_networks(&value).map_err(|message| ConfigError::Env {
                        var: "EARSHOT_NG_ALLOW",
                        value: value.clone(),
                        message,
                    })?)
                }
            },
            ng_offerer: var(&env, "EARSHOT_NG_OFFERER")?,
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
            ng_listen,
            ng_allow,
            ng_offerer,
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
        if let Some(v) = ng_listen {
            config.ng.listen = v;
        }
        if let Some(v) = ng_allow {
            config.ng.allow = v;
        }
        if let Some(v) = ng_offerer {
            config.ng.offerer = v;
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
    /// [auth], [ng]; unknown keys are errors)
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub overrides: Overrides,
    /// Log line format
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}
