//! The NG media relay under the Kamailio rig: rtpengine (the reference the rig is proven
//! against) or earshot, behind one trait so the calls and their checks are the same for both.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::Api;
use crate::daemon::TestDaemon;
use crate::ports;
use crate::process::DaemonProcess;

/// A relay's own counters of one of its legs (what it received from that party, what it sent
/// to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegStats {
    pub packets_in: u64,
    pub packets_out: u64,
}

/// A media relay that Kamailio's `rtpengine` module drives over NG.
pub trait MediaRelay {
    /// Its name in reports.
    fn name(&self) -> &str;
    /// Where its NG listener is (`rtpengine_sock`).
    fn ng_addr(&self) -> SocketAddr;
    /// The media ports it allocates legs from: the SDPs Kamailio forwards must name one of them.
    fn media_ports(&self) -> RangeInclusive<u16>;
    /// Its own counters of every leg it holds, by the leg's local address, when it shows
    /// per-leg statistics outside NG (earshot's HTTP API); `None` when it shows none
    /// (rtpengine: its totals reach the test through Kamailio's `$rtpstat`).
    fn legs(&self) -> Option<HashMap<SocketAddr, LegStats>>;
    /// How old its counters may be when it answers (a `query`, an API read).
    fn counters_lag(&self) -> Duration;
    /// What it logged, for a failing test's report.
    fn output(&self) -> String;
}

/// How many media ports a relay of the rig gets: two legs (RTP and RTCP each) per call, for
/// more calls than any rig test places at once.
const MEDIA_PORTS: u16 = 400;

/// How long a relay has to answer the rig's first NG `ping`.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A free loopback UDP address for an NG listener, chosen by the OS (see [`crate::ports`]).
pub fn free_udp_addr() -> SocketAddr {
    let (port, _) = ports::udp_range(2);
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One NG exchange (`<cookie> <bencoded dictionary>`, docs/ng.md) from a socket of its own:
/// the answer's dictionary, or why there is none. `body` is sent as is; the rig needs only
/// fixed requests (`ping`, `list`), so it carries no bencode codec of its own.
pub fn ng_exchange(ng: SocketAddr, body: &[u8], within: Duration) -> Result<Vec<u8>, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    socket
        .set_read_timeout(Some(within))
        .map_err(|e| format!("set timeout: {e}"))?;
    let cookie = format!("rig{}", std::process::id());
    let mut datagram = format!("{cookie} ").into_bytes();
    datagram.extend_from_slice(body);
    socket
        .send_to(&datagram, ng)
        .map_err(|e| format!("send to {ng}: {e}"))?;
    let mut buf = vec![0u8; 65_536];
    let (len, from) = socket
        .recv_from(&mut buf)
        .map_err(|e| format!("no answer from {ng}: {e}"))?;
    if from != ng {
        return Err(format!("answer from {from}, not {ng}"));
    }
    buf.truncate(len);
    buf.strip_prefix(format!("{cookie} ").as_bytes())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| {
            format!(
                "answer without the cookie: {}",
                String::from_utf8_lossy(&buf)
            )
        })
}

/// Sends `ping` until the relay answers `pong` or `within` passes. Kamailio 5.6 disables a
/// relay that does not answer its start-up ping (docs/ng.md), so the rig waits for this before
/// it starts Kamailio.
pub fn wait_pong(ng: SocketAddr, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    loop {
        let last = match ng_exchange(ng, b"d7:command4:pinge", Duration::from_millis(200)) {
            Ok(answer) if answer == b"d6:result4:ponge" => return Ok(()),
            Ok(answer) => format!("answered {}", String::from_utf8_lossy(&answer)),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!("no pong from {ng} within {within:?}: {last}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The relay's answer to `list` (its calls' ids, docs/ng.md), raw: the rig only asks whether a
/// call-id is still in it.
pub fn ng_list(ng: SocketAddr) -> Result<Vec<u8>, String> {
    ng_exchange(
        ng,
        b"d7:command4:list5:limiti1000ee",
        Duration::from_secs(2),
    )
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Debian's `rtpengine` (package `rtpengine-daemon`) in userspace-only mode on loopback, the
/// reference NG relay; killed on drop.
pub struct Rtpengine {
    process: DaemonProcess,
    ng: SocketAddr,
    ports: RangeInclusive<u16>,
}

impl Rtpengine {
    /// Starts it on an OS-chosen NG port and media range and waits for its `pong`.
    pub fn start() -> Rtpengine {
        let binary = require_binary("rtpengine", "rtpengine-daemon");
        let ng = free_udp_addr();
        let (port_min, port_max) = ports::udp_range(MEDIA_PORTS);
        let mut command = Command::new(binary);
        command.args([
            // Not the package's /etc/rtpengine/rtpengine.conf: everything is on this line.
            "--config-file=none",
            "--interface=127.0.0.1",
            &format!("--listen-ng={ng}"),
            "--foreground",
            "--log-stderr",
            // No kernel forwarding table: userspace relaying only.
            "--table=-1",
            &format!("--port-min={port_min}"),
            &format!("--port-max={port_max}"),
            // A deleted call leaves `list` at once (by default it lingers 30 s).
            "--delete-delay=0",
            "--log-level=5",
        ]);
        let mut process = DaemonProcess::spawn("rtpengine", command);
        if let Err(e) = wait_pong(ng, START_TIMEOUT) {
            let _ = process.try_wait();
            panic!(
                "rtpengine did not start: {e}; its output:\n{}",
                process.output()
            );
        }
        Rtpengine {
            process,
            ng,
            ports: port_min..=port_max,
        }
    }
}

impl MediaRelay for Rtpengine {
    fn name(&self) -> &str {
        "rtpengine"
    }

    fn ng_addr(&self) -> SocketAddr {
        self.ng
    }

    fn media_ports(&self) -> RangeInclusive<u16> {
        self.ports.clone()
    }

    fn legs(&self) -> Option<HashMap<SocketAddr, LegStats>> {
        None
    }

    /// Its counters are the packet path's own.
    fn counters_lag(&self) -> Duration {
        Duration::ZERO
    }

    fn output(&self) -> String {
        self.process.output()
    }
}

/// earshot, in-process ([`TestDaemon`]) with its NG listener on an OS-chosen port.
pub struct Earshot {
    daemon: TestDaemon,
    ng: SocketAddr,
    ports: RangeInclusive<u16>,
}

impl Earshot {
    /// Starts the daemon with the test defaults and `[ng] listen` set, and waits for its `pong`.
    pub fn start() -> Earshot {
        let ng = free_udp_addr();
        let mut ports = 0..=0;
        let daemon = TestDaemon::start_with(|config| {
            // The test defaults' own range (`crate::setup`), OS-chosen.
            ports = config.media.port_min..=config.media.port_max;
            // Through the configuration's own (de)serialisation, as the `[ng]` section of a
            // file would set it: `[ng] listen = "127.0.0.1:<port>"` (docs/ng.md). The admin
            // token is never serialised: carried over by hand. (With the `[ng]` section in
            // `Config`, this is `config.ng.listen.0 = Some(ng)`.)
            let auth = config.auth.clone();
            let mut document = serde_json::to_value(&*config).expect("the config serialises");
            document["ng"]["listen"] = json!(ng.to_string());
            *config = serde_json::from_value(document)
                .unwrap_or_else(|e| panic!("earshot's configuration has no [ng] listen: {e}"));
            config.auth = auth;
        });
        if let Err(e) = wait_pong(ng, START_TIMEOUT) {
            panic!("earshot's NG listener did not answer: {e}");
        }
        Earshot { daemon, ng, ports }
    }
}

impl MediaRelay for Earshot {
    fn name(&self) -> &str {
        "earshot"
    }

    fn ng_addr(&self) -> SocketAddr {
        self.ng
    }

    fn media_ports(&self) -> RangeInclusive<u16> {
        self.ports.clone()
    }

    fn legs(&self) -> Option<HashMap<SocketAddr, LegStats>> {
        Some(earshot_legs(&self.daemon.api))
    }

    /// Its data plane publishes each call's counters once every 50 ticks of 20 ms (a fiftieth
    /// of the calls per tick), so the control plane's figures are up to 1 s old.
    fn counters_lag(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn output(&self) -> String {
        self.daemon.health()
    }
}

/// earshot's counters of every leg of its calls, by local address, from `GET /v1/calls`
/// (docs/api.md, Calls).
pub fn earshot_legs(api: &Api) -> HashMap<SocketAddr, LegStats> {
    let calls = api.get("/v1/calls").expect(200, "list calls");
    let mut legs = HashMap::new();
    for call in calls["calls"].as_array().into_iter().flatten() {
        for party in ["customer", "agent"] {
            let leg = &call["legs"][party];
            if let Some(local) = leg["local"].as_str().and_then(|s| s.parse().ok()) {
                let stats = LegStats {
                    packets_in: leg["stats"]["packets_in"].as_u64().unwrap_or(0),
                    packets_out: leg["stats"]["packets_out"].as_u64().unwrap_or(0),
                };
                legs.insert(local, stats);
            }
        }
    }
    legs
}

/// Where `binary` is: on the `PATH`, or in /usr/sbin or /sbin (Kamailio's place, not on every
/// user's `PATH`). Panics, saying how to install it, when it is nowhere. `deploy/test` (the
/// README's test command) installs `package` through deploy/common.sh.
pub fn require_binary(binary: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(binary))
        .find(|candidate| is_executable(candidate))
        .unwrap_or_else(|| {
            panic!(
                "`{binary}` is not installed: run deploy/test (it installs the Debian package \
                 `{package}`), or `apt-get install {package}`"
            )
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
