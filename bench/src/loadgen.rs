//! The load generator (`loadgen`, `src/bin/loadgen.rs` is its `main`): offers RTP load to a
//! running `earshotd` and measures what comes back.
//!
//! It creates calls (and one supervision per call in the chosen mode) through the HTTP API,
//! with every customer leg's remote set to one local customer socket, every agent leg's to one
//! agent socket and every supervisor leg's to one supervisor socket. It then sends paced PCMU
//! (50 packets/s per stream, the streams spread evenly over the 20 ms period, absolute
//! deadlines, `sendmmsg`) from those sockets, receives with `recvmmsg` on one thread per
//! socket (polling it every `--rx-poll-us`, by default, so that no thread waits on a socket and
//! the appliance's sends wake no one: on loopback it would pay for that wakeup), and sorts what
//! arrives by the appliance's source port (each leg's local port).
//!
//! Over the window after warm-up it reports offered and received packets/s, loss (per stream,
//! from the sequence-number range of the appliance's output against what arrived), the added
//! latency of relayed flows (each payload starts with its send time, which a relay carries
//! unchanged), the interarrival jitter of mixed flows (a mix cannot carry that stamp), and the
//! appliance's CPU per packet. Safety: it only ever sends to loopback addresses the appliance
//! returned, runs for a bounded time, and deletes its calls when it is done.
//!
//! With `--smoke` it is a correctness check instead (CI's smoke run, `tests/tests/loadgen_smoke.rs`
//! calls [`run`] in-process): it fails, with one line saying why, on any lost packet, any
//! relayed packet still missing at the end of the drain, any mixed frame missing, any stray
//! datagram, or any call or supervision it could not set up; it never judges speed (latency,
//! CPU, whether the load generator kept up).
//!
//! Over a veth pair between network namespaces (`bench/netns.sh`), it may also load an
//! appliance at a private address, but only inside a namespace of its own: with
//! `--netns-subnet` (a private IPv4 range, e.g. `10.99.0.0/24`), and only while this process
//! runs in a network namespace other than pid 1's, does it accept addresses of that range (the
//! API, `--bind-ip` and the legs the appliance returns); anything else is refused.
//!
//! With `--target rtpengine` it offers the same relay load to rtpengine instead, setting calls
//! up over rtpengine's NG protocol (`--ng`; module `rtpengine`), for the side-by-side
//! comparison of `bench/compare-rtpengine.sh`.

mod probe;
mod rtpengine;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};

use crate::hist::Histogram;
use crate::http;
use crate::mmsg::{self, RecvBatch, SendBatch};
use crate::ng::NgClient;

/// Packets per second per stream (20 ms PCMU).
const PPS_PER_STREAM: u64 = 50;
const PERIOD_NS: u64 = 1_000_000_000 / PPS_PER_STREAM;
const SAMPLES_PER_PACKET: u32 = 160;
/// One RTP timestamp unit at 8 kHz, in nanoseconds.
const NS_PER_SAMPLE: i64 = 125_000;
const RTP_HEADER_LEN: usize = 12;
const PACKET_LEN: usize = RTP_HEADER_LEN + SAMPLES_PER_PACKET as usize;
/// Datagrams per `sendmmsg`: small, because a batch's packets all carry the send time taken
/// just before the call, so the last ones' latency is overstated by the time the kernel takes
/// to send those before them (tens of µs for 32).
const SEND_BATCH: usize = 32;
/// Datagrams per `recvmmsg` (each carries its own kernel timestamp).
const RECV_BATCH: usize = 256;
/// Sends due within this much of now go out in the current batch (about the kernel's default
/// timer slack, below which sleeping is pointless).
const SEND_SLACK_NS: u64 = 50_000;
/// Socket buffers: a second of 2,000 whisper calls' worth of output fits.
const SOCKET_BUFFER_BYTES: usize = 32 << 20;
/// How long a blocking receiver (`--rx-poll-us 0`) waits before checking whether to stop.
const RECV_TIMEOUT: Duration = Duration::from_millis(100);
/// What one queued datagram costs a socket's receive buffer: its `skb`'s truesize, 832 bytes
/// for our 172-byte datagrams on loopback (Linux 6.x), rounded up.
const RECV_TRUESIZE_BYTES: usize = 1024;
/// The most one socket receives, packets/s: above what one core of load generator offers
/// (about 125,000 packets/s each way, bench/README.md).
const MAX_SOCKET_RECV_PPS: u64 = 150_000;
/// A polling receiver's buffer must hold this many intervals of [`MAX_SOCKET_RECV_PPS`]: its
/// sleep may overrun while the sender holds the shared core.
const POLL_BUFFER_MARGIN: u64 = 20;
/// Sending goes on this long past the window (so its last packets are not counted lost), and
/// receiving this long past that.
const SEND_TAIL: Duration = Duration::from_millis(100);
const RECV_TAIL: Duration = Duration::from_millis(200);
/// With `--smoke`, receiving goes on this long after the last send instead: a relayed packet
/// not back by then is stuck (a backlog) or lost, not in flight (a relay takes microseconds,
/// a debug build on a busy machine milliseconds).
const SMOKE_DRAIN: Duration = Duration::from_secs(1);
/// A stamp older than this is not one of ours (a mixed or corrupted payload).
const MAX_PLAUSIBLE_LATENCY_NS: u64 = 10_000_000_000;
/// Relayed arrivals kept per receiver thread for latency (24 bytes each).
const MAX_LATENCY_SAMPLES: usize = 1 << 23;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LoadMode {
    /// A plain call, no supervision: two relayed streams.
    Relay,
    Listen,
    Whisper,
    Barge,
    /// The calls take the four modes in turn (relay, listen, whisper, barge, relay, …): every
    /// path of the media plane, relays and mixes, in one load (the smoke run's choice).
    Mixed,
}

impl LoadMode {
    fn as_str(self) -> &'static str {
        match self {
            LoadMode::Relay => "relay",
            LoadMode::Listen => "listen",
            LoadMode::Whisper => "whisper",
            LoadMode::Barge => "barge",
            LoadMode::Mixed => "mixed",
        }
    }

    /// The mode of the `k`-th call (from 0): this one, or with [`LoadMode::Mixed`] the `k`-th
    /// of the others in turn.
    fn of_call(self, k: usize) -> LoadMode {
        const TURN: [LoadMode; 4] = [
            LoadMode::Relay,
            LoadMode::Listen,
            LoadMode::Whisper,
            LoadMode::Barge,
        ];
        match self {
            LoadMode::Mixed => TURN[k % TURN.len()],
            mode => mode,
        }
    }

    fn supervised(self) -> bool {
        self != LoadMode::Relay
    }

    /// Is what `role` is sent a relay of one input (else a mix)? docs/design.md §1's matrix. The
    /// mode of one call (not [`LoadMode::Mixed`]).
    fn relayed_to(self, role: Role) -> bool {
        !matches!(
            (self, role),
            (_, Role::Supervisor) | (LoadMode::Barge, _) | (LoadMode::Whisper, Role::Agent)
        )
    }
}

/// What is loaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Target {
    /// earshotd, calls set up over its HTTP API (`--api`).
    Earshot,
    /// rtpengine, calls set up over its NG protocol (`--ng`); relay mode only.
    Rtpengine,
}

impl Target {
    fn as_str(self) -> &'static str {
        match self {
            Target::Earshot => "earshot",
            Target::Rtpengine => "rtpengine",
        }
    }

    /// The process name `--pid` defaults to.
    fn process_name(self) -> &'static str {
        match self {
            Target::Earshot => "earshotd",
            Target::Rtpengine => "rtpengine",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Customer = 0,
    Agent = 1,
    Supervisor = 2,
}

const ROLES: [Role; 3] = [Role::Customer, Role::Agent, Role::Supervisor];

#[derive(Debug, Clone, Copy)]
struct Ramp {
    start: u32,
    step: u32,
    max: u32,
}

/// An IPv4 network: address and prefix length, host bits zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Subnet {
    net: Ipv4Addr,
    len: u8,
}

impl Subnet {
    fn mask(len: u8) -> u32 {
        u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
    }

    fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & Subnet::mask(self.len) == u32::from(self.net)
    }

    /// A unicast host address of the network: in it, and neither its network nor its
    /// broadcast address.
    fn holds_host(self, ip: Ipv4Addr) -> bool {
        let host = u32::from(ip) & !Subnet::mask(self.len);
        self.contains(ip) && host != 0 && host != !Subnet::mask(self.len)
    }

    /// Wholly inside one of RFC 1918's private ranges.
    fn is_private(self) -> bool {
        [
            Subnet {
                net: Ipv4Addr::new(10, 0, 0, 0),
                len: 8,
            },
            Subnet {
                net: Ipv4Addr::new(172, 16, 0, 0),
                len: 12,
            },
            Subnet {
                net: Ipv4Addr::new(192, 168, 0, 0),
                len: 16,
            },
        ]
        .iter()
        .any(|r| self.len >= r.len && r.contains(self.net))
    }
}

fn parse_subnet(s: &str) -> Result<Subnet, String> {
    let (ip, len) = s.split_once('/').ok_or("expected A.B.C.D/LEN")?;
    let net: Ipv4Addr = ip.parse().map_err(|e| format!("{ip}: {e}"))?;
    let len: u8 = len.parse().map_err(|e| format!("{len}: {e}"))?;
    if !(8..=30).contains(&len) {
        return Err(format!("prefix length {len}: need 8 to 30"));
    }
    if u32::from(net) & !Subnet::mask(len) != 0 {
        return Err(format!("{s}: host bits set (the network is {})", {
            Ipv4Addr::from(u32::from(net) & Subnet::mask(len))
        }));
    }
    let subnet = Subnet { net, len };
    if !subnet.is_private() {
        return Err(format!(
            "{s} is not a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)"
        ));
    }
    Ok(subnet)
}

/// Where this process may send, and whom it may take for the appliance: IPv4 loopback, and the
/// host addresses of `--netns-subnet` once [`Scope::new`] has checked that this process runs in
/// a network namespace of its own.
#[derive(Debug, Clone, Copy)]
struct Scope {
    subnet: Option<Subnet>,
}

impl Scope {
    fn new(subnet: Option<Subnet>) -> Result<Scope> {
        let Some(subnet) = subnet else {
            return Ok(Scope { subnet: None });
        };
        match in_initial_netns() {
            Ok(false) => Ok(Scope {
                subnet: Some(subnet),
            }),
            Ok(true) => Err(format!(
                "--netns-subnet {}/{}: this process runs in the machine's initial network \
                 namespace (pid 1's, kthreadd's), where such addresses may lead off the machine: \
                 refusing; run it inside a namespace of its own (`ip netns exec esb-gen …`, see bench/netns.sh)",
                subnet.net, subnet.len
            )),
            Err(e) => Err(format!(
                "--netns-subnet: cannot tell which network namespace this process runs in \
                 ({e}): refusing"
            )),
        }
    }

    fn allows(self, ip: Ipv4Addr) -> bool {
        ip.is_loopback() || self.subnet.is_some_and(|s| s.holds_host(ip))
    }

    /// A control endpoint (the API, rtpengine's NG): [`Scope::allows`], or IPv6 loopback.
    fn allows_control(self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(ip) => self.allows(ip),
            IpAddr::V6(ip) => ip.is_loopback(),
        }
    }

    /// A leg's address, where media is sent: [`Scope::allows`] its address, and a real port.
    fn allows_media(self, addr: SocketAddrV4) -> bool {
        self.allows(*addr.ip()) && addr.port() != 0
    }

    /// What [`Scope::allows`], in words, for error messages.
    fn describe(self) -> String {
        match self.subnet {
            None => "IPv4 loopback only (other addresses need --netns-subnet, in a network \
                     namespace of its own)"
                .to_owned(),
            Some(s) => format!("IPv4 loopback or a host address of {}/{}", s.net, s.len),
        }
    }
}

/// Whether this process shares the machine's own network namespace: compares the nsfs inode
/// of its namespace, as `ip netns identify` does, with pid 1's and with that of `kthreadd`
/// (pid 2, a kernel thread, and kernel threads all live in the initial namespace). Pid 1's
/// may be unreadable even to root (a sandbox that hides its init): then `kthreadd` alone
/// decides. An error if neither can be read, or if pid 2 is not `kthreadd` (a pid namespace).
fn in_initial_netns() -> Result<bool> {
    use std::os::unix::fs::MetadataExt as _;
    let id = |path: &str| {
        std::fs::metadata(path)
            .map(|m| (m.dev(), m.ino()))
            .map_err(|e| format!("{path}: {e}"))
    };
    let ours = id("/proc/self/ns/net")?;
    let init = id("/proc/1/ns/net");
    let kthreadd = if is_kthreadd(2) {
        id("/proc/2/ns/net")
    } else {
        Err("pid 2 is not the kernel's kthreadd".to_owned())
    };
    match (init, kthreadd) {
        (Err(a), Err(b)) => Err(format!("{a}; {b}")),
        (a, b) => Ok(a.iter().chain(b.iter()).any(|r| *r == ours)),
    }
}

/// Whether `pid` is the kernel thread `kthreadd` (`PF_KTHREAD` in the flags of its stat).
fn is_kthreadd(pid: u32) -> bool {
    const PF_KTHREAD: u64 = 0x0020_0000;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((name, rest)) = stat.split_once(") ") else {
        return false;
    };
    // `rest` starts at field 3 (state): field 9 (flags) is at index 6.
    let flags = rest
        .split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok());
    name.ends_with("(kthreadd") && flags.is_some_and(|f| f & PF_KTHREAD != 0)
}

fn parse_ramp(s: &str) -> Result<Ramp, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [start, step, max] = parts[..] else {
        return Err("expected START:STEP:MAX".into());
    };
    let num = |v: &str| v.parse::<u32>().map_err(|e| format!("{v}: {e}"));
    let ramp = Ramp {
        start: num(start)?,
        step: num(step)?,
        max: num(max)?,
    };
    if ramp.start == 0 || ramp.step == 0 || ramp.max < ramp.start {
        return Err("need START ≥ 1, STEP ≥ 1, MAX ≥ START".into());
    }
    Ok(ramp)
}

/// Offers RTP load to a running earshotd over loopback (or a veth pair between network
/// namespaces) and measures loss, latency and CPU; with --smoke, checks that nothing is lost.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version)]
pub struct Args {
    /// What to load: earshotd (over its HTTP API) or rtpengine (over NG, relay mode only).
    #[arg(long, value_enum, default_value_t = Target::Earshot)]
    target: Target,
    /// rtpengine's NG control address, with --target rtpengine (loopback, or an address of
    /// --netns-subnet).
    #[arg(long, default_value = "127.0.0.1:2223")]
    ng: SocketAddr,
    /// The appliance's HTTP API (loopback, or an address of --netns-subnet).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The address the load generator's three sockets are bound to (the legs' remotes):
    /// loopback, or an address of --netns-subnet.
    #[arg(long, default_value_t = Ipv4Addr::LOCALHOST)]
    bind_ip: Ipv4Addr,
    /// A private IPv4 range (10/8, 172.16/12, 192.168/16; e.g. 10.99.0.0/24) whose addresses
    /// may be loaded besides loopback. Accepted only when this process runs in a network
    /// namespace other than pid 1's (`ip netns exec`, bench/netns.sh), where that range can
    /// only lead into namespaces made for the purpose.
    #[arg(long, value_parser = parse_subnet, value_name = "A.B.C.D/LEN")]
    netns_subnet: Option<Subnet>,
    /// Number of concurrent calls.
    #[arg(long, conflicts_with = "ramp", required_unless_present = "ramp")]
    calls: Option<u32>,
    /// Successive loads START, START+STEP, … up to MAX calls; stops at the first load that
    /// loses too much and reports the largest that did not.
    #[arg(long, value_parser = parse_ramp, value_name = "START:STEP:MAX")]
    ramp: Option<Ramp>,
    /// What each call carries: relay (no supervision) or one supervisor in this mode.
    #[arg(long, value_enum, default_value_t = LoadMode::Whisper)]
    mode: LoadMode,
    /// Length of the measurement window of each load.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    duration_secs: u64,
    /// Traffic before the window, not measured.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=120))]
    warmup_secs: u64,
    /// Pin the load generator (all its threads) to this core.
    #[arg(long)]
    core: Option<usize>,
    /// The earshotd (or rtpengine) process, for its CPU time; found by name when absent.
    #[arg(long)]
    pid: Option<u32>,
    /// Loss (percent) below which a load passes.
    #[arg(long, default_value_t = 0.01)]
    max_loss_pct: f64,
    /// Relayed-flow p99 latency (ms) a load must also stay under to count as "within
    /// docs/design.md §6.1".
    #[arg(long, default_value_t = 5.0)]
    max_p99_ms: f64,
    /// Relayed-latency sampling: the kernel stamps the transmission of one datagram in this
    /// many per stream (each stamp costs the load generator an error-queue read).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..))]
    tx_stamp_every: u16,
    /// How the receiver threads wait for the appliance's output. N > 0: poll: drain each
    /// socket with non-blocking `recvmmsg` until it is empty, then sleep N µs. 0: block in
    /// `recvmmsg` as datagrams come. On loopback the kernel charges the wakeup of a receiver
    /// blocked on a socket to the sender, so blocking bills the appliance for waking this
    /// tool's threads (perf: ~18 % of its CPU at 100 kpps); with nobody waiting, a delivery
    /// wakes no one. Latency and jitter come from kernel arrival stamps, taken before a
    /// datagram is queued, in either mode.
    #[arg(long, default_value_t = 250, value_name = "US",
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    rx_poll_us: u32,
    /// Measure a failing load again up to this many times before giving up on it.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=5))]
    retries: u8,
    /// Also print one JSON line with every result.
    #[arg(long)]
    json: bool,
    /// A correctness check, not a measurement (CI's smoke run): fail, with one line saying why,
    /// if any packet is lost, any relayed packet has not come back by the end of a 1 s drain
    /// (a backlog), any mixed frame is missing, a datagram comes from an unknown source, or any
    /// call or supervision cannot be set up (or a call deleted). Never judges speed: latency,
    /// CPU and whether the load generator kept up are reported, not checked. One load only
    /// (--calls).
    #[arg(long, conflicts_with_all = ["ramp", "retries"], requires = "calls")]
    smoke: bool,
    /// The token to present, set by in-process callers ([`Args::with_token`]); the command
    /// line takes it from the environment only (an argument is visible to every user in
    /// `/proc`).
    #[arg(skip)]
    token: Option<String>,
}

impl Args {
    /// Parses a command line, `argv[0]` first, as the binary does; clap's message (usage
    /// included) on error.
    pub fn from_argv<I, T>(argv: I) -> Result<Args>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        Args::try_parse_from(argv).map_err(|e| e.to_string())
    }

    /// How the receivers wait (`--rx-poll-us`).
    fn rx_wait(&self) -> RxWait {
        match self.rx_poll_us {
            0 => RxWait::Block,
            us => RxWait::Poll(Duration::from_micros(u64::from(us))),
        }
    }

    /// Presents `token` (`Authorization: Bearer …`) instead of `$EARSHOT_TOKEN` or
    /// `$EARSHOT_ADMIN_TOKEN`.
    pub fn with_token(mut self, token: &str) -> Args {
        self.token = Some(token.to_owned());
        self
    }
}

/// The binary: parses the command line, runs, and exits 1 with one line on stderr if the run
/// failed (with `--smoke`: if the check failed).
pub fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T, E = String> = std::result::Result<T, E>;

/// How a receiver thread waits for datagrams (`--rx-poll-us`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RxWait {
    /// In `recvmmsg` (`MSG_WAITFORONE`), up to [`RECV_TIMEOUT`]: each datagram that finds the
    /// thread asleep wakes it, at the sender's expense on loopback.
    Block,
    /// Takes what is queued without blocking (`MSG_DONTWAIT`) until the socket is empty, then
    /// sleeps this long: nothing waits on the socket, so a delivery wakes no one.
    Poll(Duration),
}

impl RxWait {
    fn describe(self) -> String {
        match self {
            RxWait::Block => "blocking".to_owned(),
            RxWait::Poll(d) => format!("polled every {} µs", d.as_micros()),
        }
    }
}

/// One run, as the binary does it: sets the calls up, offers each load, prints the table (and
/// with `--json` the JSON line), deletes the calls. Returns what the JSON line holds; an error
/// if the run could not be done, or with `--smoke` if the check failed (one line, every
/// reason).
pub fn run(args: &Args) -> Result<Value> {
    if let Some(core) = args.core {
        // Threads spawned later inherit this affinity.
        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
            return Err(format!("cannot pin to core {core}"));
        }
    }
    let scope = Scope::new(args.netns_subnet)?;
    if !scope.allows(args.bind_ip) {
        return Err(format!(
            "--bind-ip {}: not allowed here: {}",
            args.bind_ip,
            scope.describe()
        ));
    }
    let mut api = Api::new(&args.api, scope, args.token.as_deref())?;
    let mut ng = None;
    match args.target {
        Target::Earshot => {
            api.client.expect("GET", "/healthz", None, 200)?;
        }
        Target::Rtpengine => {
            if args.mode != LoadMode::Relay {
                return Err("--target rtpengine: only --mode relay".into());
            }
            if !scope.allows_control(args.ng.ip()) {
                return Err(format!(
                    "--ng {}: not allowed here: {}",
                    args.ng,
                    scope.describe()
                ));
            }
            let mut client = NgClient::connect(args.ng).map_err(|e| e.to_string())?;
            client
                .ping()
                .map_err(|e| format!("{e} (is rtpengine listening on {}?)", args.ng))?;
            ng = Some(rtpengine::Rtpengine::new(client));
            // No HTTP API: no /metrics to read.
            api.serves_metrics = false;
        }
    }
    let process = args.target.process_name();
    let pid = match args.pid {
        Some(pid) => Some(pid),
        None => match find_pid(process) {
            Ok(found) => found,
            // Only CPU figures need the process, and a smoke check reports them without
            // judging them: several daemons on the machine must not fail it.
            Err(e) if args.smoke => {
                eprintln!("loadgen: {e}");
                None
            }
            Err(e) => return Err(e),
        },
    };
    if pid.is_none() {
        eprintln!("loadgen: no {process} process found (use --pid); appliance CPU is not reported");
    }
    let sockets = Arc::new(Sockets::open(args.bind_ip, args.rx_wait())?);
    let loads: Vec<u32> = match (args.calls, args.ramp) {
        (Some(n), _) => vec![n],
        (None, Some(r)) => (r.start..=r.max).step_by(r.step as usize).collect(),
        (None, None) => unreachable!("clap requires --calls or --ramp"),
    };
    let mut fleet = Fleet {
        api: &api,
        scope,
        calls: Vec::new(),
        streams: Vec::new(),
        ng,
    };
    let mut results = Vec::new();
    let mut stopped_by = None;
    // With --smoke: every reason the check fails.
    let mut smoke_failures = Vec::new();
    for &n in &loads {
        if let Err(e) = fleet.grow(n, args.mode, &sockets) {
            let why = format!("setup of {n} calls: {e}");
            smoke_failures.push(why.clone());
            stopped_by = Some(why);
            break;
        }
        // A failed load is measured again up to `--retries` times (same calls): on a shared
        // machine a compile on the appliance's core can sink one window. Every attempt is
        // reported; the load passes if any attempt did.
        let mut passed = false;
        let mut limited = false;
        for attempt in 0..=args.retries {
            let r = run_load(args, &mut fleet, &sockets, pid)?;
            let pass = r.passes(args.max_loss_pct);
            eprintln!(
                "{} calls{}: offered {:.0} pps, received {:.0} pps, loss {:.4} %, mixed shortfall {} %{}",
                r.calls,
                if attempt > 0 {
                    format!(" (retry {attempt})")
                } else {
                    String::new()
                },
                r.offered_pps,
                r.received_pps,
                r.loss_pct,
                opt(r.mixed_shortfall_pct, 3),
                // A smoke check's verdict is its own (below), not the measurement's.
                if pass || args.smoke { "" } else { " — fails" }
            );
            passed |= pass;
            limited = r.loadgen_limited;
            if args.smoke {
                smoke_failures.extend(r.smoke_failures());
            }
            results.push(r);
            if pass || limited {
                break;
            }
        }
        if limited {
            stopped_by = Some(format!(
                "the load generator could not offer {n} calls' worth"
            ));
            break;
        }
        if !passed {
            stopped_by = Some(format!("loss over {} % at {n} calls", args.max_loss_pct));
            break;
        }
    }
    let set_up = fleet.call_count();
    let deleted = fleet.delete_all();
    if args.smoke && deleted < set_up {
        smoke_failures.push(format!("only {deleted} of {set_up} calls deleted"));
    }
    print_table(args, &results);
    let best = results
        .iter()
        .filter(|r| r.passes(args.max_loss_pct))
        .map(|r| r.calls)
        .max();
    let best_spec = results
        .iter()
        .filter(|r| {
            r.passes(args.max_loss_pct)
                && r.relay_latency_us[1].is_none_or(|p99| p99 < args.max_p99_ms * 1000.0)
        })
        .map(|r| r.calls)
        .max();
    if args.smoke {
        let offered: u64 = results.iter().map(|r| r.relayed_offered).sum();
        println!(
            "smoke check {}: {} {} calls, {} relayed packets offered{}",
            if smoke_failures.is_empty() {
                "passed"
            } else {
                "FAILED"
            },
            args.calls.unwrap_or(0),
            args.mode.as_str(),
            offered,
            if smoke_failures.is_empty() {
                String::new()
            } else {
                format!(": {}", smoke_failures.join("; "))
            }
        );
    } else {
        print_summary(args, best, best_spec, stopped_by.as_deref());
    }
    let smoke = args.smoke.then(|| {
        json!({
            "passed": smoke_failures.is_empty(),
            "failures": smoke_failures,
        })
    });
    let line = json!({
        "target": args.target.as_str(),
        "mode": args.mode.as_str(),
        "duration_secs": args.duration_secs,
        "warmup_secs": args.warmup_secs,
        "rx_poll_us": args.rx_poll_us,
        "max_loss_pct": args.max_loss_pct,
        "largest_calls_within_loss": best,
        "largest_calls_within_loss_and_p99": best_spec,
        "stopped_by": stopped_by,
        "calls_deleted": deleted,
        "smoke": smoke,
        "results": results.iter().map(|r| r.to_json(args.max_loss_pct)).collect::<Vec<_>>(),
    });
    if args.json {
        println!("{line}");
    }
    if args.smoke && !smoke_failures.is_empty() {
        return Err(format!("smoke check failed: {}", smoke_failures.join("; ")));
    }
    Ok(line)
}

/// The ramp's outcome, one line.
fn print_summary(args: &Args, best: Option<u32>, best_spec: Option<u32>, stopped_by: Option<&str>) {
    println!(
        "largest load with loss < {} %: {}; and relayed p99 < {} ms: {}{}",
        args.max_loss_pct,
        best.map_or("none".into(), |n| format!(
            "{n} {} calls",
            args.mode.as_str()
        )),
        args.max_p99_ms,
        best_spec.map_or("none".into(), |n| format!("{n} calls")),
        stopped_by.map_or(String::new(), |s| format!(" (stopped: {s})")),
    );
}

// ---------------------------------------------------------------------------------------------
// HTTP

struct Api {
    client: http::Client,
    /// Whether `/metrics` is read (not when loading rtpengine).
    serves_metrics: bool,
}

impl Api {
    /// A client of the appliance at `url` (refused unless `scope` allows its address),
    /// presenting `token`, else `$EARSHOT_TOKEN`, else `$EARSHOT_ADMIN_TOKEN` (the daemon's
    /// configured admin token).
    fn new(url: &str, scope: Scope, token: Option<&str>) -> Result<Api> {
        let addr = http::api_addr(url)?;
        if !scope.allows_control(addr.ip()) {
            return Err(format!(
                "--api {addr}: refusing to load an appliance there: {}",
                scope.describe()
            ));
        }
        let token = token.map_or_else(
            || {
                std::env::var("EARSHOT_TOKEN")
                    .or_else(|_| std::env::var("EARSHOT_ADMIN_TOKEN"))
                    .unwrap_or_default()
            },
            str::to_owned,
        );
        Ok(Api {
            client: http::Client::new(addr, Some(&token)),
            serves_metrics: true,
        })
    }

    /// Every sample of `GET /metrics`, keyed by name and labels as written.
    fn metrics(&self) -> Option<HashMap<String, f64>> {
        if !self.serves_metrics {
            return None;
        }
        let reply = self
            .client
            .exchange("GET", "/metrics", None)
            .ok()
            .filter(|r| r.status == 200)?;
        Some(
            reply
                .text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.rsplit_once(' '))
                .filter_map(|(k, v)| Some((k.to_owned(), v.parse().ok()?)))
                .collect(),
        )
    }
}

/// A leg's local address from a call or supervision object; refused unless `scope` allows it
/// (IPv4 loopback, or an address of `--netns-subnet` inside our own namespaces: the only places
/// this tool sends media).
fn local_addr(leg: &Value, scope: Scope) -> Result<SocketAddrV4> {
    let s = leg
        .get("local")
        .and_then(Value::as_str)
        .ok_or("no leg.local in the answer")?;
    match s.parse::<SocketAddr>() {
        Ok(SocketAddr::V4(a)) if scope.allows_media(a) => Ok(a),
        _ => Err(format!(
            "leg address {s}: refusing to send there: {}",
            scope.describe()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Calls and streams

/// The three local sockets every stream of one role shares.
struct Sockets {
    by_role: [UdpSocket; 3],
    /// The `OPT_ID` the kernel gives the next datagram sent on each socket (it counts from 0,
    /// one per datagram sent); only the sender touches it.
    next_tx_id: [AtomicU32; 3],
    /// Whether the kernel stamps what we send (`SO_TIMESTAMPING`).
    tx_stamped: bool,
}

impl Sockets {
    fn open(ip: Ipv4Addr, wait: RxWait) -> Result<Sockets> {
        let open = || -> io::Result<UdpSocket> {
            let s = UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), 0))?;
            mmsg::set_buffer_sizes(&s, SOCKET_BUFFER_BYTES);
            mmsg::enable_rx_timestamps(&s)?;
            s.set_read_timeout(Some(RECV_TIMEOUT))?;
            Ok(s)
        };
        let by_role = (|| Ok::<_, io::Error>([open()?, open()?, open()?]))()
            .map_err(|e| format!("cannot open the local UDP sockets on {ip}: {e}"))?;
        if let RxWait::Poll(interval) = wait {
            // Between two polls the socket alone holds what arrives; without CAP_NET_ADMIN
            // (SO_RCVBUFFORCE) the buffer is capped by net.core.rmem_max.
            let needed =
                MAX_SOCKET_RECV_PPS * interval.as_micros() as u64 / 1_000_000 * POLL_BUFFER_MARGIN;
            let held = by_role
                .iter()
                .map(|s| mmsg::receive_buffer_bytes(s).unwrap_or(0) / RECV_TRUESIZE_BYTES)
                .min()
                .unwrap_or(0) as u64;
            if held < needed {
                eprintln!(
                    "loadgen: the receive buffers hold about {held} datagrams, less than {POLL_BUFFER_MARGIN} \
                     polls' worth at {MAX_SOCKET_RECV_PPS} packets/s ({needed}): raise \
                     net.core.rmem_max, run as root, or lower --rx-poll-us"
                );
            }
        }
        let tx_stamped = by_role
            .iter()
            .all(|s| mmsg::enable_tx_timestamps(s).is_ok());
        if !tx_stamped {
            eprintln!(
                "loadgen: no kernel transmit timestamps; latency uses the user-space send time"
            );
        }
        Ok(Sockets {
            by_role,
            next_tx_id: Default::default(),
            tx_stamped,
        })
    }

    fn addr(&self, role: Role) -> SocketAddrV4 {
        match self.by_role[role as usize].local_addr() {
            Ok(SocketAddr::V4(a)) => a,
            _ => SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
        }
    }

    fn ports(&self) -> [u16; 3] {
        ROLES.map(|r| self.addr(r).port())
    }
}

/// One leg we send to and receive from: it is both one of our streams to the appliance and one
/// of the appliance's streams to us (from the same local port).
#[derive(Debug, Clone, Copy)]
struct Stream {
    role: Role,
    local: SocketAddrV4,
    /// Our outgoing RTP stream's state, continued across loads.
    ssrc: u32,
    seq: u16,
    ts: u32,
    /// When what the appliance sends this leg is a relay: the stream it relays (the other
    /// party's, by index). `None`: a mix.
    relay_of: Option<usize>,
    /// The streams of this stream's call (its own included), by index: `start..end`.
    call: (usize, usize),
}

/// The supervisor number the load tool registers and answers from (any valid one).
const SUPERVISOR_NUMBER: &str = "+15550100";

struct Fleet<'a> {
    api: &'a Api,
    scope: Scope,
    calls: Vec<String>,
    streams: Vec<Stream>,
    /// With `--target rtpengine`: its NG client and calls (`calls` stays empty).
    ng: Option<rtpengine::Rtpengine>,
}

impl Stream {
    /// The stream toward one leg, with its SSRC, first sequence number and timestamp derived
    /// from its index (distinct per stream, reproducible across runs and targets).
    fn new(index: usize, role: Role, local: SocketAddrV4) -> Stream {
        let r = (index as u32).wrapping_mul(2_654_435_761);
        Stream {
            role,
            local,
            ssrc: r ^ 0x5eed_0000,
            seq: r as u16,
            ts: r.rotate_left(7),
            relay_of: None,
            call: (index, index + 1),
        }
    }

    /// Adds one call's streams, in `mode` (one call's, not [`LoadMode::Mixed`]): each leg's
    /// stream notes whose input the appliance relays to it (docs/design.md §1.1: the customer is
    /// sent the agent's, the agent the customer's, when `mode` relays to them), so that what comes
    /// back can be counted against what was offered.
    fn push_call(streams: &mut Vec<Stream>, mode: LoadMode, legs: &[(Role, SocketAddrV4)]) {
        let base = streams.len();
        let index_of = |role| legs.iter().position(|(r, _)| *r == role).map(|i| base + i);
        let call = (base, base + legs.len());
        for &(role, local) in legs {
            let mut stream = Stream::new(streams.len(), role, local);
            stream.call = call;
            stream.relay_of = match role {
                _ if !mode.relayed_to(role) => None,
                Role::Customer => index_of(Role::Agent),
                Role::Agent => index_of(Role::Customer),
                Role::Supervisor => None,
            };
            streams.push(stream);
        }
    }
}

impl Fleet<'_> {
    /// Adds calls (and their supervisions) until there are `n`.
    fn grow(&mut self, n: u32, mode: LoadMode, sockets: &Sockets) -> Result<()> {
        if self.ng.is_some() {
            return self.grow_ng(n, sockets);
        }
        let leg = |role| json!({"remote": sockets.addr(role).to_string(), "codec": "pcmu"});
        while self.calls.len() < n as usize {
            let mode = mode.of_call(self.calls.len());
            let body = json!({"customer": leg(Role::Customer), "agent": leg(Role::Agent)});
            let call = self
                .api
                .client
                .expect("POST", "/v1/calls", Some(&body), 201)?;
            let id = call
                .get("id")
                .and_then(Value::as_str)
                .ok_or("no call id")?
                .to_owned();
            self.calls.push(id.clone());
            let leg_of = |path| call.pointer(path).unwrap_or(&Value::Null);
            let customer = local_addr(leg_of("/legs/customer"), self.scope)?;
            let agent = local_addr(leg_of("/legs/agent"), self.scope)?;
            let mut legs = vec![(Role::Customer, customer), (Role::Agent, agent)];
            if mode.supervised() {
                // The supervisor's leg is up already (the load tool is its phone): answered at
                // creation, so media flows at once.
                let body = json!({
                    "supervisor": leg(Role::Supervisor),
                    "beep": false,
                    "supervisor_id": "loadgen",
                    "registered_number": SUPERVISOR_NUMBER,
                    "answered": {"calling_number": SUPERVISOR_NUMBER},
                });
                let sup = self.api.client.expect(
                    "POST",
                    &format!("/v1/calls/{id}/supervisions"),
                    Some(&body),
                    201,
                )?;
                let sid = sup
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or("no supervision id")?;
                legs.push((
                    Role::Supervisor,
                    local_addr(sup.get("leg").unwrap_or(&Value::Null), self.scope)?,
                ));
                if mode != LoadMode::Listen {
                    let body = json!({"mode": mode.as_str()});
                    self.api.client.expect(
                        "PATCH",
                        &format!("/v1/supervisions/{sid}"),
                        Some(&body),
                        200,
                    )?;
                }
            }
            Stream::push_call(&mut self.streams, mode, &legs);
        }
        Ok(())
    }

    /// Deletes every call; returns how many the appliance acknowledged.
    fn delete_all(&mut self) -> usize {
        if self.ng.is_some() {
            return self.delete_all_ng();
        }
        let mut deleted = 0;
        for id in self.calls.drain(..) {
            match self
                .api
                .client
                .expect("DELETE", &format!("/v1/calls/{id}"), None, 204)
            {
                Ok(_) => deleted += 1,
                Err(e) => eprintln!("loadgen: {e}"),
            }
        }
        self.streams.clear();
        deleted
    }
}

impl Drop for Fleet<'_> {
    fn drop(&mut self) {
        self.delete_all();
    }
}

// ---------------------------------------------------------------------------------------------
// One load

fn realtime_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The measurement window, on `CLOCK_REALTIME` (the clock of the kernel's receive timestamps).
#[derive(Debug, Clone, Copy)]
struct Window {
    start_ns: u64,
    end_ns: u64,
}

impl Window {
    fn contains(self, t: u64) -> bool {
        (self.start_ns..self.end_ns).contains(&t)
    }
}

#[derive(Debug, Default)]
struct SenderReport {
    sent_in_window: u64,
    send_errors: u64,
    /// How far behind its deadline the worst send of the window went out.
    max_lag_ns: u64,
    /// Probes sent (mixed-flow latency, [`probe`]): stream index and send time.
    probes: Vec<(usize, u64)>,
}

/// When and how the sender sends.
#[derive(Debug, Clone, Copy)]
struct SendPlan {
    /// Time zero of the schedule, and of its deadlines.
    epoch: Instant,
    window: Window,
    window_start: Instant,
    stop_at: Instant,
    tx_stamp_every: u16,
}

/// Sends every stream one packet per 20 ms until `stop_at`, stream `j` of `S` at offset
/// `j × 20 ms / S` within each period. Allocates nothing once sending has begun: the probe
/// lists are sized for the whole run up front.
fn send_loop(
    streams: &mut [Stream],
    sockets: &Sockets,
    plan: SendPlan,
    payload: &[u8; 160],
) -> SenderReport {
    let SendPlan {
        epoch,
        window,
        window_start,
        stop_at,
        tx_stamp_every,
    } = plan;
    let s = streams.len() as u64;
    if s == 0 {
        return SenderReport::default();
    }
    // The last deadline served is within `SEND_SLACK_NS` of `stop_at`.
    let rounds = (stop_at.saturating_duration_since(epoch).as_nanos() as u64 + SEND_SLACK_NS)
        / PERIOD_NS
        + 1;
    let mut report = SenderReport {
        probes: Vec::with_capacity((s * probe::max_probes(rounds)) as usize),
        ..SenderReport::default()
    };
    let mut batches = [
        SendBatch::new(SEND_BATCH),
        SendBatch::new(SEND_BATCH),
        SendBatch::new(SEND_BATCH),
    ];
    let deadline = |round: u64, j: u64| round * PERIOD_NS + j * PERIOD_NS / s;
    let (mut round, mut j) = (0u64, 0u64);
    // Probes queued in the batches, sent (and timed) at the next flush: at most what the
    // batches hold.
    let mut probes: Vec<usize> = Vec::with_capacity(3 * SEND_BATCH);
    let flush = |batches: &mut [SendBatch; 3],
                 report: &mut SenderReport,
                 probes: &mut Vec<usize>| {
        let now = realtime_ns();
        report.probes.extend(probes.drain(..).map(|i| (i, now)));
        for (role, batch) in batches.iter_mut().enumerate() {
            if batch.is_empty() {
                continue;
            }
            let n = batch.len() as u64;
            batch.stamp_all(RTP_HEADER_LEN, &now.to_le_bytes());
            let outcome = batch.send(&sockets.by_role[role]);
            let sent = outcome.sent as u64;
            report.send_errors += n - sent;
            if window.contains(now) {
                report.sent_in_window += sent;
            }
            // The kernel numbers only the stamped datagrams it sent: take back the ids of the
            // rest, so the next ones match its count again.
            sockets.next_tx_id[role].fetch_sub(outcome.unsent_stamped as u32, Ordering::Relaxed);
        }
    };
    loop {
        let now = Instant::now();
        if now >= stop_at {
            break;
        }
        let now_ns = now.duration_since(epoch).as_nanos() as u64;
        while deadline(round, j) <= now_ns + SEND_SLACK_NS {
            if now >= window_start {
                report.max_lag_ns = report
                    .max_lag_ns
                    .max(now_ns.saturating_sub(deadline(round, j)));
            }
            let st = &mut streams[j as usize];
            if batches[st.role as usize].is_full() {
                flush(&mut batches, &mut report, &mut probes);
            }
            let probe = probe::is_probe(round, st.role as usize);
            if probe {
                probes.push(j as usize);
            }
            let marker = round == 0;
            let stamped = sockets.tx_stamped && st.seq.is_multiple_of(tx_stamp_every);
            let tx_id = if stamped {
                sockets.next_tx_id[st.role as usize].fetch_add(1, Ordering::Relaxed)
            } else {
                0
            };
            let role = st.role as u8;
            batches[st.role as usize].push(st.local, stamped, |buf| {
                buf[0] = 0x80;
                buf[1] = if marker { 0x80 } else { 0 };
                buf[2..4].copy_from_slice(&st.seq.to_be_bytes());
                buf[4..8].copy_from_slice(&st.ts.to_be_bytes());
                buf[8..12].copy_from_slice(&st.ssrc.to_be_bytes());
                buf[RTP_HEADER_LEN..PACKET_LEN].copy_from_slice(payload);
                // The payload starts with our marks (a relay carries them unchanged): bytes
                // 0..8 the send time (filled in just before the system call), 8..12 the
                // kernel's id for this datagram on its socket, 12 the sending role, 13 whether
                // the kernel stamps its transmission.
                let marks = &mut buf[RTP_HEADER_LEN..];
                marks[8..12].copy_from_slice(&tx_id.to_le_bytes());
                marks[12] = role;
                marks[13] = u8::from(stamped);
                if probe {
                    probe::make_probe(&mut buf[RTP_HEADER_LEN..PACKET_LEN]);
                }
                PACKET_LEN
            });
            st.seq = st.seq.wrapping_add(1);
            st.ts = st.ts.wrapping_add(SAMPLES_PER_PACKET);
            j += 1;
            if j == s {
                j = 0;
                round += 1;
            }
        }
        flush(&mut batches, &mut report, &mut probes);
        let next = epoch + Duration::from_nanos(deadline(round, j));
        let now = Instant::now();
        if next > now {
            thread::sleep((next - now).min(stop_at.saturating_duration_since(now)));
        }
    }
    report
}

/// What arrived on one appliance output (one leg's local port) within the window.
#[derive(Debug, Clone, Copy, Default)]
struct StreamRecord {
    received: u64,
    /// Extended sequence numbers: the range seen in the window and the newest seen at all.
    min_seq: i64,
    max_seq: i64,
    last_seq: Option<i64>,
    /// The previous packet's arrival and RTP timestamp (RFC 3550 §A.8), and the smoothed jitter.
    prev: Option<(u64, u32)>,
    jitter_ns: f64,
    /// Arrival times of the first and last packets in the window.
    first_at: u64,
    last_at: u64,
    /// Every arrival, in the window or not (warm-up, tail, drain), and the range of their RTP
    /// timestamps, relative to the first one's.
    total: u64,
    ts_first: u32,
    ts_min: i64,
    ts_max: i64,
    /// When the last probe was heard on this (mixed) output.
    last_probe_at: u64,
}

/// The marks a relayed payload carries back: our send time, and which datagram it was.
#[derive(Debug, Clone, Copy)]
struct Marks {
    user_sent_ns: u64,
    /// The kernel's transmit-stamp id, when it stamped this datagram.
    tx_id: Option<u32>,
    role: u8,
}

impl Marks {
    fn read(payload: &[u8]) -> Option<Marks> {
        let m = payload.get(..14)?;
        let user_sent_ns = u64::from_le_bytes(m[..8].try_into().ok()?);
        let tx_id = u32::from_le_bytes(m[8..12].try_into().ok()?);
        (user_sent_ns != 0 && m[12] < 3 && m[13] < 2).then_some(Marks {
            user_sent_ns,
            tx_id: (m[13] == 1).then_some(tx_id),
            role: m[12],
        })
    }
}

#[derive(Default)]
struct ReceiverReport {
    records: Vec<(usize, StreamRecord)>,
    /// Relayed datagrams that arrived in the window: arrival and marks. Their latency is worked
    /// out once every thread's transmit stamps are in.
    relayed: Vec<(u64, Marks)>,
    /// (OPT_ID, kernel send time) of the datagrams sent on this thread's socket.
    tx_stamps: Vec<(u32, u64)>,
    samples_capped: u64,
    jitter: Histogram,
    unknown_source: u64,
    unstamped: u64,
    user_timestamps: u64,
    /// Mixed outputs' first loud frame after each probe: output stream, arrival.
    probes_heard: Vec<(usize, u64)>,
}

/// Which of our streams an appliance output is: its source address is the leg's local address.
struct Sources {
    /// By source port: the stream's index + 1 (0: none).
    by_port: Vec<u32>,
    /// By stream: the leg's local address.
    ip: Vec<Ipv4Addr>,
}

impl Sources {
    fn new(streams: &[Stream]) -> Sources {
        let mut by_port = vec![0u32; 1 << 16];
        for (i, s) in streams.iter().enumerate() {
            by_port[s.local.port() as usize] = i as u32 + 1;
        }
        Sources {
            by_port,
            ip: streams.iter().map(|s| *s.local.ip()).collect(),
        }
    }

    fn stream_of(&self, src: SocketAddrV4) -> Option<usize> {
        let i = (self.by_port[src.port() as usize] as usize).checked_sub(1)?;
        (self.ip[i] == *src.ip()).then_some(i)
    }
}

/// Receives on one role's socket until `stop` (then takes what is still queued), recording
/// in-window arrivals per stream.
fn recv_loop(
    socket: &UdpSocket,
    sources: &Sources,
    relayed: &[bool],
    window: Window,
    wait: RxWait,
    stop: &AtomicBool,
) -> ReceiverReport {
    let mut report = ReceiverReport::default();
    let mut records = vec![StreamRecord::default(); relayed.len()];
    let mut touched = vec![false; relayed.len()];
    let mut batch = RecvBatch::new(RECV_BATCH);
    let mut tx_batch = RecvBatch::new(RECV_BATCH);
    let detector = probe::Detector::new();
    // Transmit stamps worth keeping: of datagrams whose relayed copies may arrive in the window.
    let keep_tx = (window.start_ns.saturating_sub(1_000_000_000))..(window.end_ns + 1_000_000_000);
    loop {
        // Once stopped, what is still queued is taken (without waiting), then the loop ends.
        let stopping = stop.load(Ordering::Relaxed);
        // Our transmit stamps share the socket's receive buffer: take them as they come.
        while let Ok(n) = tx_batch.recv_tx_timestamps(socket) {
            for i in 0..n {
                if let Some((id, ns)) = tx_batch.tx_timestamp(i)
                    && keep_tx.contains(&ns)
                {
                    report.tx_stamps.push((id, ns));
                }
            }
            if n < RECV_BATCH {
                break;
            }
        }
        let received = match wait {
            RxWait::Block if !stopping => batch.recv(socket),
            _ => batch.try_recv(socket),
        };
        // A full batch may have left more behind: take it at once, without sleeping.
        let more = match received {
            Ok(n) => n == RECV_BATCH,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                false
            }
            Err(_) => break,
        };
        // The user-space time, only for a datagram the kernel did not stamp: late by up to a
        // poll interval when polling (counted in `user_timestamps`).
        let user_now = realtime_ns();
        for i in 0..batch.len() {
            let (src, data) = batch.datagram(i);
            let Some(idx) = sources
                .stream_of(src)
                .filter(|_| data.len() >= RTP_HEADER_LEN && data[0] >> 6 == 2)
            else {
                report.unknown_source += 1;
                continue;
            };
            let at = batch.kernel_ns(i).unwrap_or_else(|| {
                report.user_timestamps += 1;
                user_now
            });
            let seq = u16::from_be_bytes([data[2], data[3]]);
            let ts = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
            let rec = &mut records[idx];
            touched[idx] = true;
            if rec.total == 0 {
                rec.ts_first = ts;
            }
            rec.total += 1;
            let ts_rel = i64::from(ts.wrapping_sub(rec.ts_first) as i32);
            rec.ts_min = rec.ts_min.min(ts_rel);
            rec.ts_max = rec.ts_max.max(ts_rel);
            let ext = match rec.last_seq {
                None => i64::from(seq),
                Some(last) => last + i64::from(seq.wrapping_sub(last as u16) as i16),
            };
            rec.last_seq = Some(rec.last_seq.map_or(ext, |l| l.max(ext)));
            let prev = rec.prev.replace((at, ts));
            if !window.contains(at) {
                continue;
            }
            if rec.received == 0 {
                (rec.min_seq, rec.max_seq) = (ext, ext);
                rec.first_at = at;
            }
            rec.last_at = at;
            rec.received += 1;
            rec.min_seq = rec.min_seq.min(ext);
            rec.max_seq = rec.max_seq.max(ext);
            if relayed[idx] {
                match Marks::read(&data[RTP_HEADER_LEN..]) {
                    Some(marks) if report.relayed.len() < MAX_LATENCY_SAMPLES => {
                        report.relayed.push((at, marks));
                    }
                    Some(_) => report.samples_capped += 1,
                    None => report.unstamped += 1,
                }
            } else {
                if let Some((prev_at, prev_ts)) = prev {
                    let d = (at as i64 - prev_at as i64)
                        - i64::from(ts.wrapping_sub(prev_ts) as i32) * NS_PER_SAMPLE;
                    let d = d.unsigned_abs();
                    report.jitter.record(d);
                    rec.jitter_ns += (d as f64 - rec.jitter_ns) / 16.0;
                }
                if detector.is_probe_frame(&data[RTP_HEADER_LEN..])
                    && at.saturating_sub(rec.last_probe_at) > probe::SAME_PROBE_NS
                {
                    rec.last_probe_at = at;
                    report.probes_heard.push((idx, at));
                }
            }
        }
        if more {
            continue;
        }
        if stopping {
            break;
        }
        if let RxWait::Poll(interval) = wait {
            thread::sleep(interval);
        }
    }
    report.records = touched
        .iter()
        .enumerate()
        .filter(|(_, t)| **t)
        .map(|(i, _)| (i, records[i]))
        .collect();
    report
}

#[derive(Debug, Clone, Default)]
struct LoadResult {
    calls: u32,
    streams: usize,
    offered_pps: f64,
    received_pps: f64,
    expected: u64,
    lost: u64,
    loss_pct: f64,
    silent_streams: usize,
    /// p50, p99, max in µs; `None` when there is no such flow.
    relay_latency_us: [Option<f64>; 3],
    relay_samples: u64,
    mixed_jitter_us: [Option<f64>; 3],
    /// Added latency of mixed flows (probe to loud frame, [`probe`]): p50, p99, max in µs,
    /// the samples, and the loud frames attributed to no probe.
    mixed_latency_us: [Option<f64>; 3],
    mixed_latency_samples: u64,
    mixed_probes_unmatched: u64,
    /// Mean over mixed streams of the RFC 3550 §A.8 smoothed jitter at the end, µs.
    mixed_rfc3550_jitter_us: Option<f64>,
    appliance_cpu_pct: Option<f64>,
    appliance_cpu_us_per_packet_in: Option<f64>,
    appliance_socket_drops: Option<u64>,
    loadgen_socket_drops: Option<u64>,
    /// Mixed outputs are paced by the appliance's tick, and their sequence numbers have no gap
    /// for a tick that never happened: how far short of 50 packets/s per mixed stream they came.
    mixed_shortfall_pct: Option<f64>,
    /// Frames missing from the mixed outputs over the whole run (warm-up to drain, so a stall
    /// across an end of the window counts too), by their own timestamps: a mix advances one
    /// frame per tick, and a tick skipped (the worker too far behind) leaves a timestamp gap
    /// with no sequence gap; a tick merely late does not count, as the arrival-time shortfall
    /// does.
    mixed_missing_frames: u64,
    /// Relayed outputs over the whole run (warm-up, window, tail and drain): the packets the
    /// streams they relay were sent, what came back, and how many of the former had not come
    /// back by the end (summed per output, so a duplicate cannot hide a loss).
    relayed_offered: u64,
    relayed_delivered: u64,
    relayed_missing: u64,
    /// How long receiving went on after the last send.
    drain: Duration,
    /// The load generator offered less than 99.5 % of the nominal rate: the figures say more
    /// about it than about the appliance.
    loadgen_limited: bool,
    loadgen_cpu_pct: Option<f64>,
    /// The 1-minute load average at the end of the window: other work on the machine shows
    /// there. (Per-core busy time from /proc/stat is tick-sampled, and wrong for short bursty
    /// threads like these on this kind of VM, so it is not used.)
    loadavg: Option<f64>,
    /// CPU used over the window by every other process alive at its end, in % of one core:
    /// other work on this machine perturbs the figures. Processes that ended within the window
    /// (a compiler) are missed: `processes_started` shows that kind of activity.
    other_cpu_pct: Option<f64>,
    processes_started: Option<u64>,
    /// From the appliance's /metrics over the window.
    tick_overruns: Option<u64>,
    tick_mean_us: Option<f64>,
    ticks_per_sec: Option<f64>,
    engine_drops: Vec<(String, u64)>,
    sender_max_lag_us: f64,
    send_errors: u64,
    unknown_source: u64,
    unstamped: u64,
    user_timestamps: u64,
    /// Latency samples whose send time is the kernel's (the rest use the user-space stamp).
    latency_kernel_tx: u64,
    /// Stamped datagrams whose transmit stamp never came back (not sampled).
    tx_stamp_missing: u64,
    samples_capped: u64,
}

fn us(ns: Option<u64>) -> Option<f64> {
    ns.map(|v| v as f64 / 1000.0)
}

fn run_load(
    args: &Args,
    fleet: &mut Fleet<'_>,
    sockets: &Arc<Sockets>,
    pid: Option<u32>,
) -> Result<LoadResult> {
    let mut streams = fleet.streams.clone();
    let sources = Arc::new(Sources::new(&streams));
    let relayed: Arc<Vec<bool>> = Arc::new(streams.iter().map(|s| s.relay_of.is_some()).collect());
    let mut payload = [0u8; 160];
    for (i, b) in payload.iter_mut().enumerate() {
        // A 500 Hz tone at about −12 dBFS: audio to mix, not silence.
        let phase = i as f64 * 2.0 * std::f64::consts::PI * 500.0 / 8000.0;
        *b = dataplane::wire::g711::ulaw_encode((phase.sin() * 8000.0) as i16);
    }

    let epoch = Instant::now();
    let start_ns = realtime_ns();
    let warmup = Duration::from_secs(args.warmup_secs);
    let duration = Duration::from_secs(args.duration_secs);
    let window = Window {
        start_ns: start_ns + warmup.as_nanos() as u64,
        end_ns: start_ns + (warmup + duration).as_nanos() as u64,
    };
    let window_start = epoch + warmup;
    let window_end = window_start + duration;
    let stop = Arc::new(AtomicBool::new(false));
    let rx_wait = args.rx_wait();

    let receivers: Vec<_> = ROLES
        .iter()
        .map(|&role| {
            let (sockets, map, relayed, stop) = (
                sockets.clone(),
                sources.clone(),
                relayed.clone(),
                stop.clone(),
            );
            thread::Builder::new()
                .name(format!("recv-{role:?}"))
                .spawn(move || {
                    recv_loop(
                        &sockets.by_role[role as usize],
                        &map,
                        &relayed,
                        window,
                        rx_wait,
                        &stop,
                    )
                })
                .map_err(|e| format!("spawning a receiver: {e}"))
        })
        .collect::<Result<_>>()?;
    let sender = {
        let sockets = sockets.clone();
        let stop_at = window_end + SEND_TAIL;
        let tx_stamp_every = args.tx_stamp_every;
        thread::Builder::new()
            .name("send".into())
            .spawn(move || {
                let plan = SendPlan {
                    epoch,
                    window,
                    window_start,
                    stop_at,
                    tx_stamp_every,
                };
                let report = send_loop(&mut streams, &sockets, plan, &payload);
                (report, streams)
            })
            .map_err(|e| format!("spawning the sender: {e}"))?
    };

    let appliance_ports: Vec<u16> = fleet.streams.iter().map(|s| s.local.port()).collect();
    let mut appliance_ips: Vec<Ipv4Addr> = fleet.streams.iter().map(|s| *s.local.ip()).collect();
    appliance_ips.sort_unstable();
    appliance_ips.dedup();
    let loadgen_ports = sockets.ports();
    let udp = UdpTables {
        pid,
        appliance_ips: &appliance_ips,
        own_ip: args.bind_ip,
    };
    sleep_until(window_start);
    let snap0 = Snapshot::take(pid, fleet.api, &udp);
    let t0 = Instant::now();
    sleep_until(window_end);
    let snap1 = Snapshot::take(pid, fleet.api, &udp);
    let measured = t0.elapsed().as_secs_f64();
    let drain = if args.smoke { SMOKE_DRAIN } else { RECV_TAIL };
    // The sender sends nothing after `window_end + SEND_TAIL` (its last sleep ends there).
    sleep_until(window_end + SEND_TAIL + drain);
    stop.store(true, Ordering::Relaxed);

    let (sent, sent_streams) = sender.join().map_err(|_| "the sender panicked")?;
    let mut r = LoadResult {
        calls: fleet.call_count() as u32,
        streams: sent_streams.len(),
        sender_max_lag_us: sent.max_lag_ns as f64 / 1000.0,
        send_errors: sent.send_errors,
        drain,
        ..LoadResult::default()
    };
    let mut records = vec![StreamRecord::default(); sent_streams.len()];
    let (mut latency, mut jitter) = (Histogram::default(), Histogram::default());
    let mut tx_stamps: [Vec<(u32, u64)>; 3] = Default::default();
    let mut relayed_arrivals = Vec::new();
    let mut probes_heard = Vec::new();
    // Receivers were spawned in `ROLES` order: the n-th owns role n's socket.
    for (role, handle) in receivers.into_iter().enumerate() {
        let mut rep = handle.join().map_err(|_| "a receiver panicked")?;
        for (i, rec) in rep.records {
            records[i] = rec;
        }
        rep.tx_stamps.sort_unstable();
        tx_stamps[role] = rep.tx_stamps;
        relayed_arrivals.append(&mut rep.relayed);
        probes_heard.append(&mut rep.probes_heard);
        r.samples_capped += rep.samples_capped;
        jitter.merge(&rep.jitter);
        r.unknown_source += rep.unknown_source;
        r.unstamped += rep.unstamped;
        r.user_timestamps += rep.user_timestamps;
    }
    // One way through the appliance: the kernel's send time of our datagram to the kernel's
    // arrival time of its relayed copy, both stamped in the kernel's loopback path, so neither
    // the load generator's scheduling nor its batching counts (sampled: 1 datagram in
    // `--tx-stamp-every`). Without transmit stamps, every datagram counts, from the send time
    // written into the payload just before `sendmmsg` (an overstatement by up to one batch's
    // send time, and by any preemption of the sender in between).
    for (at, marks) in relayed_arrivals {
        let sent = match marks.tx_id {
            _ if !sockets.tx_stamped => marks.user_sent_ns,
            None => continue,
            Some(id) => {
                let stamps = &tx_stamps[usize::from(marks.role)];
                match stamps.binary_search_by_key(&id, |&(id, _)| id) {
                    Ok(i) => {
                        r.latency_kernel_tx += 1;
                        stamps[i].1
                    }
                    Err(_) => {
                        r.tx_stamp_missing += 1;
                        continue;
                    }
                }
            }
        };
        if sent <= at && at - sent < MAX_PLAUSIBLE_LATENCY_NS {
            latency.record(at - sent);
        } else {
            r.unstamped += 1;
        }
    }
    // Mixed flows: each probe heard, against the probe of the call that caused it.
    let mut probes_sent = vec![Vec::new(); sent_streams.len()];
    for &(i, at) in &sent.probes {
        probes_sent[i].push(at);
    }
    let (mixed_latency, unmatched) = probe::latencies(&probes_heard, &probes_sent, |i| {
        sent_streams[i].call.0..sent_streams[i].call.1
    });
    r.mixed_probes_unmatched = unmatched;
    r.mixed_latency_samples = mixed_latency.count();
    r.mixed_latency_us = [
        us(mixed_latency.quantile(0.5)),
        us(mixed_latency.quantile(0.99)),
        us((mixed_latency.count() > 0).then(|| mixed_latency.max())),
    ];
    let secs = duration.as_secs_f64();
    let nominal = PPS_PER_STREAM * args.duration_secs;
    let mut received = 0;
    let mut mixed_jitter = Vec::new();
    // Mixed outputs are paced by the appliance's tick alone: a tick that never ran leaves no gap
    // in their sequence numbers, only a missing 20 ms. Count those from arrival times: what
    // 50 packets/s over each stream's span would have been (a late frame at either end of the
    // window counts too: this is what a listener lives through).
    let (mut mixed_by_time, mut mixed_short) = (0u64, 0i64);
    // Packets each stream was sent over the whole run (every one advanced its timestamp).
    let offered = |i: usize| {
        u64::from(sent_streams[i].ts.wrapping_sub(fleet.streams[i].ts) / SAMPLES_PER_PACKET)
    };
    for (i, rec) in records.iter().enumerate() {
        if let Some(source) = sent_streams[i].relay_of {
            r.relayed_offered += offered(source);
            r.relayed_delivered += rec.total;
            r.relayed_missing += offered(source).saturating_sub(rec.total);
        } else if rec.total > 0 {
            // The mixer's timestamps advance by one frame per tick run, by more over ticks it
            // skipped: the frames they span, against the frames that came.
            let spanned = (rec.ts_max - rec.ts_min) as u64 / u64::from(SAMPLES_PER_PACKET) + 1;
            r.mixed_missing_frames += spanned.saturating_sub(rec.total);
        }
        received += rec.received;
        let expected = if rec.received == 0 {
            r.silent_streams += 1;
            nominal
        } else {
            (rec.max_seq - rec.min_seq + 1) as u64
        };
        r.expected += expected;
        r.lost += expected.saturating_sub(rec.received);
        if !relayed[i] && rec.received > 0 {
            let by_time = (rec.last_at - rec.first_at + PERIOD_NS / 2) / PERIOD_NS + 1;
            mixed_by_time += by_time;
            mixed_short += by_time as i64 - rec.received as i64;
            mixed_jitter.push(rec.jitter_ns);
        }
    }
    if mixed_by_time > 0 {
        r.mixed_shortfall_pct = Some(mixed_short as f64 * 100.0 / mixed_by_time as f64);
    }
    let nominal_pps = (r.streams as u64 * PPS_PER_STREAM) as f64;
    r.loadgen_limited = sent.sent_in_window as f64 / secs < nominal_pps * 0.995;
    r.offered_pps = sent.sent_in_window as f64 / secs;
    r.received_pps = received as f64 / secs;
    r.loss_pct = if r.expected == 0 {
        100.0
    } else {
        r.lost as f64 * 100.0 / r.expected as f64
    };
    r.relay_samples = latency.count();
    r.relay_latency_us = [
        us(latency.quantile(0.5)),
        us(latency.quantile(0.99)),
        us((latency.count() > 0).then(|| latency.max())),
    ];
    r.mixed_jitter_us = [
        us(jitter.quantile(0.5)),
        us(jitter.quantile(0.99)),
        us((jitter.count() > 0).then(|| jitter.max())),
    ];
    r.mixed_rfc3550_jitter_us = (!mixed_jitter.is_empty())
        .then(|| mixed_jitter.iter().sum::<f64>() / mixed_jitter.len() as f64 / 1000.0);
    if let (Some(c0), Some(c1)) = (snap0.appliance_ticks, snap1.appliance_ticks) {
        let cpu_s = c1.saturating_sub(c0) as f64 / mmsg::clock_ticks_per_sec() as f64;
        r.appliance_cpu_pct = Some(cpu_s * 100.0 / measured);
        if sent.sent_in_window > 0 {
            r.appliance_cpu_us_per_packet_in =
                Some(cpu_s * 1e6 / (sent.sent_in_window as f64 * measured / secs));
        }
    }
    if let (Some(s0), Some(s1)) = (snap0.self_ticks, snap1.self_ticks) {
        r.loadgen_cpu_pct = Some(
            s1.saturating_sub(s0) as f64 / mmsg::clock_ticks_per_sec() as f64 * 100.0 / measured,
        );
    }
    r.loadavg = snap1.loadavg;
    r.processes_started = snap0
        .forks
        .zip(snap1.forks)
        .map(|(a, b)| b.saturating_sub(a));
    let others: u64 = snap1
        .all_ticks
        .iter()
        .filter(|(p, _)| Some(**p) != pid && **p != std::process::id())
        .map(|(p, t)| t.saturating_sub(*snap0.all_ticks.get(p).unwrap_or(&0)))
        .sum();
    r.other_cpu_pct = Some(others as f64 / mmsg::clock_ticks_per_sec() as f64 * 100.0 / measured);
    if let (Some(m0), Some(m1)) = (&snap0.metrics, &snap1.metrics) {
        let sum_of = |prefix: &str| {
            m1.iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| v - m0.get(k).unwrap_or(&0.0))
                .sum::<f64>()
        };
        r.tick_overruns = Some(sum_of("earshot_tick_overruns_total") as u64);
        let ticks = sum_of("earshot_mix_tick_duration_seconds_count");
        if ticks > 0.0 {
            r.tick_mean_us = Some(sum_of("earshot_mix_tick_duration_seconds_sum") * 1e6 / ticks);
            r.ticks_per_sec = Some(ticks / measured);
        }
        let mut drops: Vec<(String, u64)> = m1
            .iter()
            .filter(|(k, _)| k.starts_with("earshot_packets_dropped_total{"))
            .map(|(k, v)| (k.clone(), (v - m0.get(k).unwrap_or(&0.0)) as u64))
            .filter(|(_, d)| *d > 0)
            .collect();
        drops.sort();
        r.engine_drops = drops;
    }
    let delta = |d0: &Option<HashMap<u16, u64>>, d1: &Option<HashMap<u16, u64>>, ports: &[u16]| {
        let (d0, d1) = (d0.as_ref()?, d1.as_ref()?);
        Some(
            ports
                .iter()
                .map(|p| {
                    d1.get(p)
                        .unwrap_or(&0)
                        .saturating_sub(*d0.get(p).unwrap_or(&0))
                })
                .sum(),
        )
    };
    r.appliance_socket_drops = delta(
        &snap0.appliance_udp_drops,
        &snap1.appliance_udp_drops,
        &appliance_ports,
    );
    r.loadgen_socket_drops = delta(&snap0.own_udp_drops, &snap1.own_udp_drops, &loadgen_ports);
    // Our streams' sequence numbers and timestamps carry on into the next load.
    fleet.streams = sent_streams;
    Ok(r)
}

/// What is read at both ends of the window.
struct Snapshot {
    appliance_ticks: Option<u64>,
    self_ticks: Option<u64>,
    /// Processes created since boot (`/proc/stat`).
    forks: Option<u64>,
    /// Every process's CPU ticks, by pid.
    all_ticks: HashMap<u32, u64>,
    loadavg: Option<f64>,
    /// Receive drops of the appliance's sockets and of ours, by local port.
    appliance_udp_drops: Option<HashMap<u16, u64>>,
    own_udp_drops: Option<HashMap<u16, u64>>,
    metrics: Option<HashMap<String, f64>>,
}

/// Where to read the sockets' receive drops: each side's UDP table is that of its own network
/// namespace, `/proc/<pid>/net/udp` for the appliance's (`/proc/self/net/udp` without a pid, as
/// when both run in one namespace) and `/proc/self/net/udp` for ours.
struct UdpTables<'a> {
    pid: Option<u32>,
    appliance_ips: &'a [Ipv4Addr],
    own_ip: Ipv4Addr,
}

impl Snapshot {
    fn take(pid: Option<u32>, api: &Api, udp: &UdpTables<'_>) -> Snapshot {
        let appliance_table = udp.pid.map_or_else(
            || "/proc/self/net/udp".to_owned(),
            |p| format!("/proc/{p}/net/udp"),
        );
        Snapshot {
            appliance_ticks: pid.and_then(cpu_ticks),
            self_ticks: cpu_ticks(std::process::id()),
            all_ticks: all_cpu_ticks(),
            forks: std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("processes ")?.trim().parse().ok())
            }),
            loadavg: std::fs::read_to_string("/proc/loadavg")
                .ok()
                .and_then(|l| l.split_whitespace().next()?.parse().ok()),
            appliance_udp_drops: udp_drops(&appliance_table, udp.appliance_ips),
            own_udp_drops: udp_drops("/proc/self/net/udp", &[udp.own_ip]),
            metrics: api.metrics(),
        }
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

/// utime + stime of a process, in clock ticks (`/proc/<pid>/stat` fields 14 and 15).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields are counted after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// utime + stime of every process, by pid.
fn all_cpu_ticks() -> HashMap<u32, u64> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return HashMap::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, cpu_ticks(pid)?)))
        .collect()
}

/// The process called `name`, if exactly one runs; an error if several do.
fn find_pid(name: &str) -> Result<Option<u32>> {
    let mut found = Vec::new();
    let dir = std::fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))?;
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if std::fs::read_to_string(entry.path().join("comm")).is_ok_and(|c| c.trim_end() == name) {
            found.push(pid);
        }
    }
    match found[..] {
        [] => Ok(None),
        [pid] => Ok(Some(pid)),
        _ => Err(format!(
            "several {name} processes ({found:?}): pick one with --pid"
        )),
    }
}

/// Per local port on one of `ips` (or the wildcard), the socket's receive drops (the last column
/// of `table`, a `/proc/…/net/udp`).
fn udp_drops(table: &str, ips: &[Ipv4Addr]) -> Option<HashMap<u16, u64>> {
    let text = std::fs::read_to_string(table).ok()?;
    // The table writes an address as the hex of its 32 bits in memory order.
    let hex: Vec<String> = ips
        .iter()
        .chain([&Ipv4Addr::UNSPECIFIED])
        .map(|ip| format!("{:08X}", u32::from_ne_bytes(ip.octets())))
        .collect();
    let mut drops = HashMap::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(local), Some(last)) = (fields.get(1), fields.last()) else {
            continue;
        };
        let Some((ip, port)) = local.split_once(':') else {
            continue;
        };
        if !hex.iter().any(|h| h == ip) {
            continue;
        }
        let (Ok(port), Ok(d)) = (u16::from_str_radix(port, 16), last.parse::<u64>()) else {
            continue;
        };
        *drops.entry(port).or_insert(0) += d;
    }
    Some(drops)
}

// ---------------------------------------------------------------------------------------------
// Output

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

fn print_table(args: &Args, results: &[LoadResult]) {
    println!(
        "{}, mode {} — window {} s after {} s warm-up; receivers {}; latency = relayed flows (one way through the appliance), \
         mix = added latency of mixed flows (probe to mixed output), jitter = |D| of RFC 3550 on mixed flows; µs",
        args.target.as_str(),
        args.mode.as_str(),
        args.duration_secs,
        args.warmup_secs,
        args.rx_wait().describe()
    );
    println!(
        "{:>6} {:>6} {:>9} {:>9} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7} {:>8} {:>8}",
        "calls",
        "strms",
        "offer/s",
        "recv/s",
        "loss%",
        "silent",
        "lat p50",
        "lat p99",
        "lat max",
        "mix p50",
        "mix p99",
        "jit p50",
        "jit p99",
        "jit max",
        "cpu%",
        "µs/pkt",
        "drops ap",
        "drops lg"
    );
    for r in results {
        println!(
            "{:>6} {:>6} {:>9.0} {:>9.0} {:>8.4} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>7} {:>8} {:>8}",
            r.calls,
            r.streams,
            r.offered_pps,
            r.received_pps,
            r.loss_pct,
            r.silent_streams,
            opt(r.relay_latency_us[0], 0),
            opt(r.relay_latency_us[1], 0),
            opt(r.relay_latency_us[2], 0),
            opt(r.mixed_latency_us[0], 0),
            opt(r.mixed_latency_us[1], 0),
            opt(r.mixed_jitter_us[0], 0),
            opt(r.mixed_jitter_us[1], 0),
            opt(r.mixed_jitter_us[2], 0),
            opt(r.appliance_cpu_pct, 1),
            opt(r.appliance_cpu_us_per_packet_in, 2),
            r.appliance_socket_drops
                .map_or("-".into(), |d| d.to_string()),
            r.loadgen_socket_drops.map_or("-".into(), |d| d.to_string()),
        );
        println!(
            "       appliance: ticks/s {}, mean tick {} µs, overruns {}, mixed shortfall {} % ({} frames missing), \
             relayed {} of {} back after the drain, drops {:?}; \
             loadgen cpu {} %; others: cpu {} %, processes started {}, load average {}",
            opt(r.ticks_per_sec, 1),
            opt(r.tick_mean_us, 0),
            r.tick_overruns.map_or("-".into(), |o| o.to_string()),
            opt(r.mixed_shortfall_pct, 3),
            r.mixed_missing_frames,
            r.relayed_offered - r.relayed_missing,
            r.relayed_offered,
            r.engine_drops,
            opt(r.loadgen_cpu_pct, 1),
            opt(r.other_cpu_pct, 1),
            r.processes_started.map_or("-".into(), |n| n.to_string()),
            opt(r.loadavg, 2),
        );
        if r.sender_max_lag_us > 5_000.0
            || r.send_errors > 0
            || r.unstamped > 0
            || r.unknown_source > 0
            || r.latency_kernel_tx < r.relay_samples
            || r.samples_capped > 0
            || r.loadgen_limited
        {
            println!(
                "       note: {}sender max lag {:.0} µs, send errors {}, unstamped relayed packets {}, unknown sources {}, \
                 latency samples with a kernel send stamp {} of {} (capped {})",
                if r.loadgen_limited {
                    "LOAD GENERATOR SATURATED (offered < 99.5 % of nominal); "
                } else {
                    ""
                },
                r.sender_max_lag_us,
                r.send_errors,
                r.unstamped,
                r.unknown_source,
                r.latency_kernel_tx,
                r.relay_samples,
                r.samples_capped
            );
        }
    }
}

impl LoadResult {
    /// Within the loss limit, counting the mixed outputs' missing ticks as loss, and with the
    /// load generator keeping up.
    fn passes(&self, max_loss_pct: f64) -> bool {
        self.loss_pct < max_loss_pct
            && self.mixed_shortfall_pct.unwrap_or(0.0) < max_loss_pct
            && !self.loadgen_limited
    }

    /// `--smoke`'s verdict on this load: every way it lost or mangled traffic, none about
    /// speed (latency, CPU, the arrival-time shortfall of mixes, whether the load generator
    /// kept up are left out). Empty: it passes.
    fn smoke_failures(&self) -> Vec<String> {
        let mut why = Vec::new();
        let calls = self.calls;
        if self.streams == 0 {
            why.push(format!("{calls} calls: no stream to measure"));
        }
        if self.send_errors > 0 {
            why.push(format!(
                "{} datagrams the load generator could not send (nothing else can be accounted for)",
                self.send_errors
            ));
        }
        if self.lost > 0 {
            why.push(format!(
                "{} of {} packets lost in the window ({} of {} outputs silent)",
                self.lost, self.expected, self.silent_streams, self.streams
            ));
        }
        if self.relayed_missing > 0 {
            why.push(format!(
                "{} of {} relayed packets not back {} ms after the last send (relayed {} < offered {}: a backlog or a loss)",
                self.relayed_missing,
                self.relayed_offered,
                self.drain.as_millis(),
                self.relayed_delivered,
                self.relayed_offered
            ));
        }
        if self.mixed_missing_frames > 0 {
            why.push(format!(
                "{} mixed frames missing (timestamp gaps; the appliance counted {} tick overruns)",
                self.mixed_missing_frames,
                self.tick_overruns.map_or("?".into(), |o| o.to_string())
            ));
        }
        if self.unknown_source > 0 {
            why.push(format!(
                "{} datagrams from no leg of ours, or not RTP",
                self.unknown_source
            ));
        }
        if !why.is_empty() && !self.engine_drops.is_empty() {
            why.push(format!("appliance drops {:?}", self.engine_drops));
        }
        why
    }

    fn to_json(&self, max_loss_pct: f64) -> Value {
        json!({
            "calls": self.calls,
            "streams": self.streams,
            "offered_pps": self.offered_pps,
            "received_pps": self.received_pps,
            "expected_packets": self.expected,
            "lost_packets": self.lost,
            "loss_pct": self.loss_pct,
            "silent_streams": self.silent_streams,
            "relay_latency_us": {"p50": self.relay_latency_us[0], "p99": self.relay_latency_us[1],
                                 "max": self.relay_latency_us[2], "samples": self.relay_samples},
            "mixed_latency_us": {"p50": self.mixed_latency_us[0], "p99": self.mixed_latency_us[1],
                                 "max": self.mixed_latency_us[2], "samples": self.mixed_latency_samples,
                                 "unattributed_loud_frames": self.mixed_probes_unmatched},
            "mixed_jitter_us": {"p50": self.mixed_jitter_us[0], "p99": self.mixed_jitter_us[1],
                                "max": self.mixed_jitter_us[2], "rfc3550_mean": self.mixed_rfc3550_jitter_us},
            "appliance_cpu_pct": self.appliance_cpu_pct,
            "appliance_cpu_us_per_packet_in": self.appliance_cpu_us_per_packet_in,
            "appliance_socket_drops": self.appliance_socket_drops,
            "loadgen_socket_drops": self.loadgen_socket_drops,
            "mixed_shortfall_pct": self.mixed_shortfall_pct,
            "mixed_missing_frames": self.mixed_missing_frames,
            "relayed_offered_packets": self.relayed_offered,
            "relayed_delivered_packets": self.relayed_delivered,
            "relayed_missing_packets": self.relayed_missing,
            "drain_ms": self.drain.as_millis() as u64,
            "loadgen_limited": self.loadgen_limited,
            "passes": self.passes(max_loss_pct),
            "loadgen_cpu_pct": self.loadgen_cpu_pct,
            "loadavg_1min": self.loadavg,
            "other_processes_cpu_pct": self.other_cpu_pct,
            "processes_started": self.processes_started,
            "appliance_tick_overruns": self.tick_overruns,
            "appliance_tick_mean_us": self.tick_mean_us,
            "appliance_ticks_per_sec": self.ticks_per_sec,
            "appliance_drops": self.engine_drops.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "sender_max_lag_us": self.sender_max_lag_us,
            "send_errors": self.send_errors,
            "unknown_source_packets": self.unknown_source,
            "unstamped_relayed_packets": self.unstamped,
            "user_space_rx_timestamps": self.user_timestamps,
            "latency_samples_with_kernel_tx_stamp": self.latency_kernel_tx,
            "latency_samples_capped": self.samples_capped,
            "latency_tx_stamps_missing": self.tx_stamp_missing,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_must_be_private_and_clean() {
        let s = parse_subnet("10.99.0.0/24").unwrap();
        assert!(s.holds_host(Ipv4Addr::new(10, 99, 0, 1)));
        assert!(s.holds_host(Ipv4Addr::new(10, 99, 0, 254)));
        assert!(
            !s.holds_host(Ipv4Addr::new(10, 99, 0, 0)),
            "network address"
        );
        assert!(!s.holds_host(Ipv4Addr::new(10, 99, 0, 255)), "broadcast");
        assert!(!s.holds_host(Ipv4Addr::new(10, 99, 1, 1)));
        assert!(parse_subnet("192.168.7.0/24").is_ok());
        assert!(parse_subnet("172.20.0.0/16").is_ok());
        for bad in [
            "8.8.8.0/24",
            "172.32.0.0/16",
            "10.0.0.0/7",
            "0.0.0.0/8",
            "10.99.0.1/24",
            "10.99.0.0/31",
            "10.99.0.0",
            "10.99.0.0/x",
        ] {
            assert!(parse_subnet(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn without_a_subnet_only_loopback_is_allowed() {
        let scope = Scope::new(None).unwrap();
        assert!(scope.allows(Ipv4Addr::LOCALHOST));
        assert!(scope.allows(Ipv4Addr::new(127, 0, 0, 5)));
        assert!(!scope.allows(Ipv4Addr::new(10, 99, 0, 1)));
        assert!(Api::new("http://10.99.0.1:18080", scope, None).is_err());
        assert!(Api::new("http://[::1]:18080", scope, None).is_ok());
        assert!(Api::new("http://127.0.0.1:18080", scope, None).is_ok());
    }

    #[test]
    fn a_subnet_is_refused_in_the_initial_namespace() {
        let subnet = parse_subnet("10.99.0.0/24").unwrap();
        match in_initial_netns() {
            // Tests normally run in the machine's own namespace: the range must be refused.
            Ok(true) | Err(_) => assert!(Scope::new(Some(subnet)).is_err()),
            Ok(false) => {
                let scope = Scope::new(Some(subnet)).unwrap();
                assert!(scope.allows(Ipv4Addr::new(10, 99, 0, 1)));
                assert!(!scope.allows(Ipv4Addr::new(10, 98, 0, 1)));
            }
        }
    }

    #[test]
    fn relayed_outputs_know_whose_stream_they_carry() {
        let addr = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        let legs = |k: u16| {
            [
                (Role::Customer, addr(20_000 + 6 * k)),
                (Role::Agent, addr(20_002 + 6 * k)),
                (Role::Supervisor, addr(20_004 + 6 * k)),
            ]
        };
        let mut streams = Vec::new();
        // The calls of `--mode mixed`, in turn; a relay call has no supervisor.
        for k in 0..4 {
            let mode = LoadMode::Mixed.of_call(k);
            let n = if mode.supervised() { 3 } else { 2 };
            Stream::push_call(&mut streams, mode, &legs(k as u16)[..n]);
        }
        let relay_of: Vec<Option<usize>> = streams.iter().map(|s| s.relay_of).collect();
        #[rustfmt::skip]
        assert_eq!(relay_of, [
            Some(1), Some(0),          // relay: customer ⇄ agent
            Some(3), Some(2), None,    // listen: both relayed, the supervisor hears a mix
            Some(6), None, None,       // whisper: the agent hears customer + supervisor
            None, None, None,          // barge: everyone hears a mix
        ]);
        assert_eq!(LoadMode::Mixed.of_call(4), LoadMode::Relay);
        assert_eq!(LoadMode::Whisper.of_call(3), LoadMode::Whisper);
    }

    #[test]
    fn the_smoke_verdict_judges_losses_and_never_speed() {
        let clean = LoadResult {
            calls: 4,
            streams: 11,
            expected: 1_100,
            relayed_offered: 400,
            relayed_delivered: 400,
            drain: SMOKE_DRAIN,
            ..LoadResult::default()
        };
        assert_eq!(clean.smoke_failures(), Vec::<String>::new());
        // Slow, late, or a load generator that fell behind: all passes.
        let slow = LoadResult {
            relay_latency_us: [Some(90_000.0), Some(400_000.0), Some(900_000.0)],
            mixed_jitter_us: [Some(20_000.0), Some(60_000.0), Some(90_000.0)],
            mixed_shortfall_pct: Some(3.0),
            appliance_cpu_pct: Some(100.0),
            loadgen_limited: true,
            sender_max_lag_us: 80_000.0,
            tick_overruns: Some(40),
            ..clean.clone()
        };
        assert_eq!(slow.smoke_failures(), Vec::<String>::new());
        let fails = |r: LoadResult, what: &str| {
            let why = r.smoke_failures();
            assert!(why.iter().any(|w| w.contains(what)), "{what}: {why:?}");
        };
        fails(
            LoadResult {
                lost: 1,
                ..clean.clone()
            },
            "1 of 1100 packets lost",
        );
        fails(
            LoadResult {
                silent_streams: 1,
                lost: 100,
                ..clean.clone()
            },
            "1 of 11 outputs silent",
        );
        // Nothing lost in the window, but the appliance is behind: relayed < offered.
        fails(
            LoadResult {
                relayed_delivered: 380,
                relayed_missing: 20,
                ..clean.clone()
            },
            "20 of 400 relayed packets not back 1000 ms after the last send",
        );
        fails(
            LoadResult {
                mixed_missing_frames: 5,
                ..clean.clone()
            },
            "5 mixed frames missing",
        );
        fails(
            LoadResult {
                unknown_source: 2,
                ..clean.clone()
            },
            "2 datagrams from no leg of ours",
        );
        fails(
            LoadResult {
                send_errors: 3,
                ..clean.clone()
            },
            "3 datagrams the load generator could not send",
        );
        fails(
            LoadResult {
                streams: 0,
                ..clean
            },
            "no stream to measure",
        );
    }

    #[test]
    fn receivers_poll_by_default_and_block_on_request() {
        let base = ["loadgen", "--calls", "4"];
        let wait = |extra: &[&str]| Args::from_argv(base.iter().chain(extra)).map(|a| a.rx_wait());
        assert_eq!(wait(&[]), Ok(RxWait::Poll(Duration::from_micros(250))));
        assert_eq!(wait(&["--rx-poll-us", "0"]), Ok(RxWait::Block));
        assert_eq!(
            wait(&["--rx-poll-us", "1000"]),
            Ok(RxWait::Poll(Duration::from_millis(1)))
        );
        for bad in ["10001", "-1", "x"] {
            assert!(wait(&["--rx-poll-us", bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn smoke_is_one_load_of_calls() {
        let base = ["loadgen", "--smoke", "--api", "http://127.0.0.1:1"];
        assert!(Args::from_argv(base.iter().chain(&["--calls", "4"])).is_ok());
        assert!(Args::from_argv(base).is_err(), "--calls required");
        assert!(Args::from_argv(base.iter().chain(&["--ramp", "1:1:4"])).is_err());
        assert!(
            Args::from_argv(base.iter().chain(&["--calls", "4", "--retries", "2"])).is_err(),
            "a failed check is not measured again"
        );
    }
}
