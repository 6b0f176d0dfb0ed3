//! The real-Kamailio rig (docs/ng.md, Kamailio test rig): Debian's Kamailio 5.6 on loopback
//! with its `rtpengine` module pointed at an NG media relay, sipp placing calls through it, and
//! the test's own RTP endpoints on both sides of every call.
//!
//! - [`relay`]: the relay under test behind [`MediaRelay`]: [`Rtpengine`] (the reference, the
//!   rig's proof) or [`Earshot`]; swapping one for the other is the only difference.
//! - [`sipp`]: the caller (UAC) and callee (UAS) processes and their scenarios (`tests/ng/`).
//! - [`ng_proxy`]: between Kamailio and the relay, loses the first answer to every `offer`, so
//!   the relay must answer Kamailio's resend of the cookie from its cache.
//! - [`Kamailio`]: the proxy, from the template `tests/ng/kamailio.cfg`, its stderr kept for
//!   the `RTPSTAT` lines that `$rtpstat` writes at each BYE.
//! - [`run_calls`]: one run of a [`CallPlan`]: start Kamailio (the relay is already up:
//!   Kamailio 5.6 disables a relay that misses its start-up ping), the callee, then the caller;
//!   as each call is answered, start RTP both ways to the addresses the two SDPs name; stop it
//!   when the call ends; then ask the relay which calls it still holds.
//!
//! Everything listens on 127.0.0.1 on OS-chosen ports ([`crate::ports`]), and every process is
//! killed when its guard drops, also when a test fails.

pub mod ng_proxy;
pub mod relay;
pub mod sipp;

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub use ng_proxy::{LostOffer, NgProxy};
pub use relay::{Earshot, LegStats, MediaRelay, Rtpengine};
pub use sipp::{Hangup, Logged, Sipp, SippRun, SippStats};

use crate::audio::{AGENT_TONE, CUSTOMER_TONE, MEASURED, Tone, measured_index};
use crate::endpoint::{Endpoint, SendSpec};
use crate::ports;
use crate::process::DaemonProcess;

/// A scratch directory of the rig (Kamailio's configuration and runtime files, sipp's logs),
/// removed on drop unless a test is failing (then its path is printed, to read the logs).
pub struct RigDir {
    pub path: PathBuf,
}

impl RigDir {
    pub fn new(label: &str) -> RigDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "earshot-{label}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        RigDir { path }
    }
}

impl Drop for RigDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("rig files kept in {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Kamailio (Debian's `kamailio`) running `tests/ng/kamailio.cfg`: in the foreground with its
/// workers (`-DD`), logging to stderr (`-E`), its pid file and runtime directory in the rig's
/// directory (`-P`, `-Y`). In a process group of its own, which its drop terminates whole.
pub struct Kamailio {
    process: DaemonProcess,
    pub sip: SocketAddr,
}

/// How long Kamailio has to bind its SIP port.
const KAMAILIO_START: Duration = Duration::from_secs(20);

impl Kamailio {
    /// Starts it on an OS-chosen loopback SIP port, forwarding every call to the callee on
    /// `uas_port`, its `rtpengine_sock` at `ng`.
    pub fn start(dir: &Path, ng: SocketAddr, uas_port: u16) -> Kamailio {
        let binary = relay::require_binary("kamailio", "kamailio");
        let sip = relay::free_udp_addr();
        let template = std::fs::read_to_string(Path::new(sipp::NG_DIR).join("kamailio.cfg"))
            .expect("read tests/ng/kamailio.cfg");
        let config = render(&template, sip.port(), ng, uas_port);
        let config_path = dir.join("kamailio.cfg");
        std::fs::write(&config_path, config).expect("write kamailio.cfg");
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir).expect("create Kamailio's runtime directory");
        let mut command = Command::new(binary);
        command.args(["-DD", "-E", "-f"]).arg(&config_path);
        command.arg("-P").arg(dir.join("kamailio.pid"));
        command.arg("-Y").arg(&run_dir);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut process = DaemonProcess::spawn("kamailio", command);
        let deadline = Instant::now() + KAMAILIO_START;
        // Bound: a bind of its address fails once Kamailio holds it.
        while UdpSocket::bind(sip).is_ok() {
            if let Some(status) = process.try_wait() {
                panic!(
                    "kamailio exited ({status}) at start; its output:\n{}",
                    process.output()
                );
            }
            assert!(
                Instant::now() < deadline,
                "kamailio did not bind {sip} within {KAMAILIO_START:?}; its output:\n{}",
                process.output()
            );
            thread::sleep(Duration::from_millis(20));
        }
        Kamailio { process, sip }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.process.output()
    }

    /// The `RTPSTAT` lines it logged so far (one per BYE: the script logs `$rtpstat`).
    pub fn rtpstats(&self) -> Vec<RtpStat> {
        self.log().lines().filter_map(RtpStat::parse).collect()
    }

    /// Signals its whole process group (the main process and its workers).
    fn signal_group(&self, signal: &str) {
        // Quiet: the group may be gone already.
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.process.pid())])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if self.process.try_wait().is_none() {
            // The main process stops its workers on SIGTERM; SIGKILL whatever is left.
            self.signal_group("-TERM");
            self.process.wait_exit(Duration::from_secs(5));
        }
        self.signal_group("-KILL");
    }
}

/// The configuration template with its placeholders filled in.
pub fn render(template: &str, sip_port: u16, ng: SocketAddr, uas_port: u16) -> String {
    template
        .replace("@SIP_PORT@", &sip_port.to_string())
        .replace("@NG_ADDR@", &ng.to_string())
        .replace("@UAS_PORT@", &uas_port.to_string())
}

/// One call's `$rtpstat`, as the rig's Kamailio script logs it at the BYE:
/// `RTPSTAT call-id=<id> RTP: <n> bytes, <n> packets, <n> errors; RTCP: …` (the relay's
/// `totals` of its `query` answer, docs/ng.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpStat {
    pub call_id: String,
    pub rtp_bytes: u64,
    pub rtp_packets: u64,
    pub rtp_errors: u64,
    pub rtcp_packets: u64,
}

impl RtpStat {
    pub fn parse(line: &str) -> Option<RtpStat> {
        let (_, rest) = line.split_once("RTPSTAT call-id=")?;
        let (call_id, rest) = rest.split_once(' ')?;
        let (rtp, rtcp) = rest.split_once("; RTCP: ")?;
        let rtp = rtp.strip_prefix("RTP: ")?;
        let counts = |s: &str| -> Option<[u64; 3]> {
            let mut it = s.split(", ").map(|part| {
                part.split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
            });
            Some([it.next()??, it.next()??, it.next()??])
        };
        let [rtp_bytes, rtp_packets, rtp_errors] = counts(rtp)?;
        let [_, rtcp_packets, _] = counts(rtcp.trim_end())?;
        Some(RtpStat {
            call_id: call_id.to_owned(),
            rtp_bytes,
            rtp_packets,
            rtp_errors,
            rtcp_packets,
        })
    }
}

/// What [`run_calls`] places.
#[derive(Debug, Clone, Copy)]
pub struct CallPlan {
    pub calls: usize,
    pub rate_cps: u32,
    /// How long each call lasts before `hangup` sends the BYE.
    pub hold_ms: u64,
    pub hangup: Hangup,
}

/// What one party's endpoint did during its call.
#[derive(Debug, Clone, Copy, Default)]
pub struct PartyCount {
    /// RTP packets it sent to the relay.
    pub sent: u64,
    /// RTP packets it received, from anywhere.
    pub received: u64,
    /// Of those, the ones from the relay address its SDP named.
    pub from_relay: u64,
    /// Of those, the G.711 ones whose loudest measured tone is the other party's.
    pub other_party_tone: u64,
}

/// One call of a run.
#[derive(Debug)]
pub struct CallRecord {
    pub index: usize,
    pub call_id: Option<String>,
    /// The relay address the caller's SDP (the 200 OK) named.
    pub caller_relay: Option<SocketAddr>,
    /// The relay address the callee's SDP (the INVITE) named.
    pub callee_relay: Option<SocketAddr>,
    pub ended_by: Option<Hangup>,
    pub caller: PartyCount,
    pub callee: PartyCount,
    /// The relay's own counters of (the caller's leg, the callee's leg), sampled while media
    /// flowed, when it shows them ([`MediaRelay::legs`]).
    pub relay_legs: Option<(LegStats, LegStats)>,
}

/// The outcome of [`run_calls`].
pub struct Run {
    pub plan: CallPlan,
    pub calls: Vec<CallRecord>,
    pub uac_status: Option<ExitStatus>,
    pub uas_status: Option<ExitStatus>,
    pub uac_stats: Option<SippStats>,
    pub uas_stats: Option<SippStats>,
    pub rtpstats: Vec<RtpStat>,
    /// The relay's answer to `list` after the last call ended.
    pub listed_after: Result<Vec<u8>, String>,
    /// Kamailio's and sipp's output, for reports.
    pub logs: String,
}

impl Run {
    /// One line per call, for failure messages and the test's printed figures.
    pub fn table(&self) -> String {
        let mut s = format!(
            "{} calls at {} cps, {} ms each, {} hangs up; uac {:?} {:?}, uas {:?} {:?}\n\
             call  caller-leg         callee-leg         caller sent/recv/from-relay/tone  \
             callee sent/recv/from-relay/tone  relay legs (in/out)  ended-by  rtpstat\n",
            self.plan.calls,
            self.plan.rate_cps,
            self.plan.hold_ms,
            self.plan.hangup,
            self.uac_status,
            self.uac_stats,
            self.uas_status,
            self.uas_stats,
        );
        for c in &self.calls {
            let stat = c
                .call_id
                .as_ref()
                .and_then(|id| self.rtpstats.iter().find(|r| &r.call_id == id));
            let show = |p: &PartyCount| {
                format!(
                    "{}/{}/{}/{}",
                    p.sent, p.received, p.from_relay, p.other_party_tone
                )
            };
            s.push_str(&format!(
                "{:>4}  {:<18} {:<18} {:<33} {:<33} {:<20} {:<9} {}\n",
                c.index,
                c.caller_relay.map_or("-".into(), |a| a.to_string()),
                c.callee_relay.map_or("-".into(), |a| a.to_string()),
                show(&c.caller),
                show(&c.callee),
                c.relay_legs.map_or("-".into(), |(a, b)| format!(
                    "{}/{} {}/{}",
                    a.packets_in, a.packets_out, b.packets_in, b.packets_out
                )),
                c.ended_by.map_or("-".into(), |h| h.to_string()),
                stat.map_or("-".into(), |r| format!(
                    "{} packets {} bytes",
                    r.rtp_packets, r.rtp_bytes
                )),
            ));
        }
        s
    }
}

/// One party of a call in flight.
struct Party {
    endpoint: Endpoint,
    relay: Option<SocketAddr>,
    tone: Tone,
    heard: Tone,
}

impl Party {
    fn count(&self) -> PartyCount {
        let received = self.endpoint.received();
        let from_relay: Vec<_> = received
            .iter()
            .filter(|r| Some(r.from) == self.relay)
            .collect();
        let heard = measured_index(self.heard);
        let other_party_tone = from_relay
            .iter()
            .filter_map(|r| r.powers)
            .filter(|p| (0..MEASURED.len()).all(|i| i == heard || p[i] < p[heard]))
            .count();
        PartyCount {
            sent: self.endpoint.sender_stats().sent,
            received: received.len() as u64,
            from_relay: from_relay.len() as u64,
            other_party_tone: other_party_tone as u64,
        }
    }
}

/// Packets each endpoint must have received before the relay's per-leg counters are sampled.
const SAMPLE_AFTER_PACKETS: usize = 25;

/// How often the relay's per-leg counters are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Places `plan`'s calls through a Kamailio in front of `relay` (already running) and records
/// what each call did; the caller checks the outcome. Kamailio, sipp and the endpoints are
/// stopped before it returns (or when it panics).
pub fn run_calls(relay: &dyn MediaRelay, plan: CallPlan) -> Run {
    run_calls_via(relay, plan, relay.ng_addr())
}

/// As [`run_calls`], Kamailio's `rtpengine_sock` pointing at `ng` (e.g. an [`NgProxy`] in
/// front of the relay).
pub fn run_calls_via(relay: &dyn MediaRelay, plan: CallPlan, ng: SocketAddr) -> Run {
    relay::require_binary("sipp", "sip-tester");
    let dir = RigDir::new("kamailio");
    let (uas_port, _) = ports::udp_range(2);
    let (uac_port, _) = ports::udp_range(2);
    let kamailio = Kamailio::start(&dir.path, ng, uas_port);

    let mut callers: Vec<Party> = (0..plan.calls)
        .map(|_| Party {
            endpoint: Endpoint::bind("caller"),
            relay: None,
            tone: CUSTOMER_TONE,
            heard: AGENT_TONE,
        })
        .collect();
    let mut callees: Vec<Party> = (0..plan.calls)
        .map(|_| Party {
            endpoint: Endpoint::bind("callee"),
            relay: None,
            tone: AGENT_TONE,
            heard: CUSTOMER_TONE,
        })
        .collect();
    let rtp_ports: Vec<(u16, u16)> = callers
        .iter()
        .zip(&callees)
        .map(|(a, b)| {
            (
                a.endpoint.local_addr().port(),
                b.endpoint.local_addr().port(),
            )
        })
        .collect();
    let calls_csv = dir.path.join("calls.csv");
    std::fs::write(&calls_csv, Sipp::calls_csv(&rtp_ports)).expect("write calls.csv");

    let (uac_scenario, uas_scenario) = sipp::scenarios(plan.hangup);
    let mut uas = Sipp::uas(&SippRun {
        dir: &dir.path,
        role: "uas",
        scenario: uas_scenario,
        sip_port: uas_port,
        calls: plan.calls,
        hold_ms: plan.hold_ms,
    });
    let mut uac = Sipp::uac(
        &SippRun {
            dir: &dir.path,
            role: "uac",
            scenario: uac_scenario,
            sip_port: uac_port,
            calls: plan.calls,
            hold_ms: plan.hold_ms,
        },
        kamailio.sip,
        plan.rate_cps,
        &calls_csv,
    );

    let mut records: Vec<CallRecord> = (0..plan.calls)
        .map(|index| CallRecord {
            index,
            call_id: None,
            caller_relay: None,
            callee_relay: None,
            ended_by: None,
            caller: PartyCount::default(),
            callee: PartyCount::default(),
            relay_legs: None,
        })
        .collect();
    let mut sending = vec![false; plan.calls];
    let mut stopped = vec![false; plan.calls];
    let mut sampled_at: Option<Instant> = None;
    // Every call placed, held and hung up, with room for a loaded machine.
    let placing = Duration::from_millis(1000 * plan.calls as u64 / u64::from(plan.rate_cps.max(1)));
    let deadline = Instant::now()
        + placing
        + Duration::from_millis(plan.hold_ms) * 2
        + Duration::from_secs(30);
    loop {
        for event in uac.logged().into_iter().chain(uas.logged()) {
            match event {
                Logged::Answered {
                    call,
                    call_id,
                    relay,
                } if call < plan.calls => {
                    records[call].call_id = Some(call_id);
                    records[call].caller_relay = Some(relay);
                }
                Logged::Offered { call, relay } if call < plan.calls => {
                    records[call].callee_relay = Some(relay);
                }
                Logged::Ended { call, by } if call < plan.calls => {
                    records[call].ended_by = Some(by);
                }
                _ => {}
            }
        }
        for (i, record) in records.iter_mut().enumerate() {
            let (caller, callee) = (&mut callers[i], &mut callees[i]);
            if !sending[i]
                && let (Some(a), Some(b)) = (record.caller_relay, record.callee_relay)
            {
                // The caller's answer is in: the relay knows both parties' addresses.
                caller.relay = Some(a);
                callee.relay = Some(b);
                caller
                    .endpoint
                    .start_sending(SendSpec::tone(a, caller.tone));
                callee
                    .endpoint
                    .start_sending(SendSpec::tone(b, callee.tone));
                sending[i] = true;
            }
            if sending[i] && !stopped[i] && record.ended_by.is_some() {
                caller.endpoint.stop_sending();
                callee.endpoint.stop_sending();
                stopped[i] = true;
            }
        }
        // One read of the relay's counters for every call in full flow, every SAMPLE_EVERY.
        let in_flow: Vec<usize> = (0..plan.calls)
            .filter(|&i| {
                sending[i]
                    && !stopped[i]
                    && callers[i].endpoint.received_count() >= SAMPLE_AFTER_PACKETS
                    && callees[i].endpoint.received_count() >= SAMPLE_AFTER_PACKETS
            })
            .collect();
        if !in_flow.is_empty() && sampled_at.is_none_or(|t| t.elapsed() >= SAMPLE_EVERY) {
            sampled_at = Some(Instant::now());
            if let Some(legs) = relay.legs() {
                for i in in_flow {
                    let record = &mut records[i];
                    let leg = |addr: Option<SocketAddr>| addr.and_then(|a| legs.get(&a)).copied();
                    if let (Some(a), Some(b)) = (leg(record.caller_relay), leg(record.callee_relay))
                    {
                        record.relay_legs = Some((a, b));
                    }
                }
            }
        }
        let all_ended = records.iter().all(|r| r.ended_by.is_some());
        if (all_ended && uac.process.try_wait().is_some()) || Instant::now() >= deadline {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    let uac_status = uac.wait_exit(Duration::from_secs(10));
    let uas_status = uas.wait_exit(Duration::from_secs(10));
    for (caller, callee) in callers.iter_mut().zip(callees.iter_mut()) {
        caller.endpoint.stop_sending();
        callee.endpoint.stop_sending();
    }
    for (record, (caller, callee)) in records.iter_mut().zip(callers.iter().zip(&callees)) {
        record.caller = caller.count();
        record.callee = callee.count();
    }
    let listed_after = relay::ng_list(relay.ng_addr());
    let logs = format!(
        "--- kamailio ---\n{}--- sipp uac ---\n{}--- sipp uas ---\n{}--- {} ---\n{}",
        kamailio.log(),
        uac.process.output(),
        uas.process.output(),
        relay.name(),
        relay.output()
    );
    Run {
        plan,
        calls: records,
        uac_status,
        uas_status,
        uac_stats: uac.stats(),
        uas_stats: uas.stats(),
        rtpstats: kamailio.rtpstats(),
        listed_after,
        logs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpstat_lines_parse() {
        let line = " 2(18989) NOTICE: <script>: RTPSTAT call-id=1-28469@127.0.0.1 RTP: 67856 \
                    bytes, 288 packets, 0 errors; RTCP: 0 bytes, 3 packets, 0 errors";
        assert_eq!(
            RtpStat::parse(line),
            Some(RtpStat {
                call_id: "1-28469@127.0.0.1".into(),
                rtp_bytes: 67856,
                rtp_packets: 288,
                rtp_errors: 0,
                rtcp_packets: 3,
            })
        );
        // `$rtpstat` failed (the relay's answer had no totals): Kamailio logs `<null>`.
        assert_eq!(
            RtpStat::parse("NOTICE: <script>: RTPSTAT call-id=1-2@127.0.0.1 <null>"),
            None
        );
    }

    #[test]
    fn the_template_gets_every_port() {
        let template =
            std::fs::read_to_string(Path::new(sipp::NG_DIR).join("kamailio.cfg")).unwrap();
        let config = render(&template, 5060, "127.0.0.1:2223".parse().unwrap(), 5090);
        for placeholder in ["@SIP_PORT@", "@NG_ADDR@", "@UAS_PORT@"] {
            assert!(
                !config.contains(placeholder),
                "{placeholder} is left:\n{config}"
            );
        }
        assert!(config.contains("listen=udp:127.0.0.1:5060"));
        assert!(config.contains(r#""rtpengine_sock", "udp:127.0.0.1:2223""#));
        assert!(config.contains(r#"$du = "sip:127.0.0.1:5090";"#));
    }
}
