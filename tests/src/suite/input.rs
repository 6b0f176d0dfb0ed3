//! Media input the appliance refuses (docs/media.md, Bad input: dropped and counted, and never at
//! the cost of a genuine packet, even when it comes from the leg's own source, as a spoofer's
//! would): datagrams over the data plane's 1,500-byte limit, the other G.711 law than the leg's
//! codec, RFC 4733 payloads of the wrong length, and malformed RTCP. Each is counted on its leg
//! (`stats.dropped.<reason>`) and in `/metrics` (`earshot_packets_dropped_total{reason}`).
//!
//! The test sends both parties' packets itself (the endpoints' own senders stay off), so it
//! knows exactly which genuine packets each side must receive.

use std::fs;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::api::metric_sum;
use crate::endpoint::{Endpoint, PTIME, Received};
use crate::rtp::{self, PT_PCMA, PT_PCMU, PT_TELEPHONE_EVENT};
use crate::scenario::{LegOptions, Rig, RigOptions};
use crate::setup::Setup;
use crate::verdict::Report;

/// The data plane's limit on a datagram (`MAX_DATAGRAM`).
const MAX_DATAGRAM: usize = 1500;
/// The largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
const MAX_UDP_PAYLOAD: usize = 65_507;
/// How long the counters may take to show what was sent (statistics are published within a
/// second, see docs/api.md).
const SETTLE: Duration = Duration::from_secs(5);

/// A call whose two parties send nothing of their own: the scenario sends for them.
fn silent_call(setup: &Setup) -> Rig {
    let quiet = LegOptions {
        sends: false,
        ..LegOptions::default()
    };
    Rig::start_in(
        setup,
        RigOptions {
            customer: quiet,
            agent: quiet,
            ..RigOptions::default()
        },
    )
}

/// `legs.<leg>.stats.dropped.<reason>` of the call.
fn leg_dropped(call: &Value, leg: &str, reason: &str) -> u64 {
    let pointer = format!("/legs/{leg}/stats/dropped/{reason}");
    call.pointer(&pointer)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("no {pointer} in {call}"))
}

/// Polls (bounded by [`SETTLE`]) until `done` holds; returns whether it did.
fn settle(mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + SETTLE;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// One party's genuine stream as the test sends it: one SSRC, consecutive numbers and
/// timestamps one 20 ms frame apart.
struct Stream {
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl Stream {
    fn new(ssrc: u32) -> Stream {
        Stream {
            ssrc,
            seq: (ssrc >> 8) as u16,
            ts: ssrc.rotate_left(7),
        }
    }

    /// The header of the next genuine packet, in `pt` (what a spoofer would copy).
    fn next_header(&self, pt: u8) -> Vec<u8> {
        rtp::build(pt, false, self.seq, self.ts, self.ssrc, &[])
    }

    /// The next genuine packet (µ-law silence), and the stream moved past it.
    fn take_packet(&mut self) -> Vec<u8> {
        let p = rtp::build(PT_PCMU, false, self.seq, self.ts, self.ssrc, &[0xFF; 160]);
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        p
    }
}

/// What the kernel holds for a UDP socket bound to `port` on this namespace's loopback:
/// (bytes queued for reading, datagrams dropped), from `/proc/net/udp`. Read for the report
/// only: it takes a scan of the kernel's whole UDP table.
fn udp_socket_queue(port: u16) -> Option<(u64, u64)> {
    let table = fs::read_to_string("/proc/net/udp").ok()?;
    let local = format!(":{port:04X}");
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if !f.get(1)?.ends_with(&local) {
            return None;
        }
        let rx_queue = u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
        let drops = f.last()?.parse().ok()?;
        Some((rx_queue, drops))
    })
}

/// Socket memory the daemon's leg socket may be asked to hold at once: below the kernel's
/// default 208 KiB receive buffer (`net.core.rmem_default`), which admits one more datagram
/// beyond it. A loss in the kernel would be no test of the daemon.
const SOCKET_BUDGET: usize = 180 * 1024;

/// What one datagram of `len` bytes costs its socket (the kernel's `truesize`), generously:
/// below 16 KiB its buffer is one allocation, rounded up to a power of two with room for the
/// headers and the shared info; above, it is held in pages.
fn socket_cost(len: usize) -> usize {
    if len < 16 * 1024 {
        (len + 1024).next_power_of_two() + 1024
    } else {
        len + len / 8 + 4096
    }
}

/// Sends from `from` to `dest` every size of `sizes` as an oversized datagram that carries the
/// header of `stream`'s next genuine packet (its SSRC, sequence number and timestamp: the
/// spoof that used to silence the leg), and a genuine packet after as many of them as the
/// daemon's socket holds at once (from about 30 of the smallest to 2 of the largest). Each
/// genuine packet is the pace: the next bunch goes once `to` has received it relayed, so the
/// daemon has read everything before it. Returns the genuine packets sent.
fn spray(
    from: &Endpoint,
    dest: SocketAddr,
    to: &Endpoint,
    stream: &mut Stream,
    sizes: &[usize],
) -> usize {
    let mut big = vec![0x55u8; MAX_UDP_PAYLOAD];
    let header_len = stream.next_header(PT_PCMU).len();
    let mut genuine = 0;
    let mut queued = 0;
    let send_genuine = |stream: &mut Stream, genuine: &mut usize| {
        from.send_raw(dest, &stream.take_packet())
            .expect("send a genuine packet");
        *genuine += 1;
        assert!(
            to.wait_received(*genuine, SETTLE),
            "genuine packet {} from {} was not relayed within {SETTLE:?}",
            *genuine,
            from.name
        );
    };
    for &size in sizes {
        if queued + socket_cost(size) > SOCKET_BUDGET {
            send_genuine(stream, &mut genuine);
            queued = 0;
        }
        if queued == 0 {
            big[..header_len].copy_from_slice(&stream.next_header(PT_PCMU));
        }
        from.send_raw(dest, &big[..size])
            .unwrap_or_else(|e| panic!("send {size} bytes: {e}"));
        queued += socket_cost(size);
    }
    send_genuine(stream, &mut genuine);
    genuine
}

/// Checks that `rx` holds exactly `sent` relayed packets, numbered one apart.
fn check_all_relayed(report: &mut Report, name: &str, rx: &[Received], sent: usize) {
    report.check(rx.len() == sent, || {
        format!("{name} received {} of the {sent} genuine packets", rx.len())
    });
    let gaps = rx
        .windows(2)
        .filter(|w| w[1].seq != w[0].seq.wrapping_add(1))
        .count();
    report.check(gaps == 0, || {
        format!("{name}: {gaps} sequence steps of its output are not +1")
    });
}

/// Issue 10, point 1: every oversize from 1,501 to 65,507 bytes (64,007 sizes), from each
/// party's own address and carrying the number of its next genuine packet, interleaved with
/// that party's genuine packets on a relayed call (see [`spray`]): no genuine packet is lost either way, and
/// each oversized datagram is counted `oversized` on its leg and in `/metrics`. Loopback only:
/// over a 1,500-byte MTU the kernel fragments such datagrams before the appliance sees them.
pub fn oversized_datagrams_from_the_right_source_cost_no_genuine_packet(setup: &Setup) {
    let rig = silent_call(setup);
    let sizes: Vec<usize> = (MAX_DATAGRAM + 1..=MAX_UDP_PAYLOAD).collect();
    assert_eq!(sizes.len(), 64_007);
    let started = Instant::now();
    let mut from_customer = Stream::new(0xC0FF_EE01);
    let mut from_agent = Stream::new(0xA6E7_0002);
    // Both directions at once: each waits on its own round trips.
    let (to_agent, to_customer) = thread::scope(|scope| {
        let to_agent = scope.spawn(|| {
            spray(
                &rig.customer,
                rig.call.customer_local,
                &rig.agent,
                &mut from_customer,
                &sizes,
            )
        });
        let to_customer = spray(
            &rig.agent,
            rig.call.agent_local,
            &rig.customer,
            &mut from_agent,
            &sizes,
        );
        (to_agent.join().expect("customer's sprayer"), to_customer)
    });
    let spraying = started.elapsed();

    let oversized = sizes.len() as u64;
    let mut call = rig.call_state();
    let counted = settle(|| {
        call = rig.call_state();
        leg_dropped(&call, "customer", "oversized") >= oversized
            && leg_dropped(&call, "agent", "oversized") >= oversized
            && rig.agent.received_count() >= to_agent
            && rig.customer.received_count() >= to_customer
    });
    let mut report = Report::new(rig.t0);
    report.check(counted, || {
        "the counters and the relayed packets did not reach what was sent".into()
    });
    check_all_relayed(&mut report, "agent", &rig.agent.received(), to_agent);
    check_all_relayed(
        &mut report,
        "customer",
        &rig.customer.received(),
        to_customer,
    );
    for leg in ["customer", "agent"] {
        let n = leg_dropped(&call, leg, "oversized");
        report.check(n == oversized, || {
            format!("{leg} leg: stats.dropped.oversized = {n}, sent {oversized}")
        });
        let all = call
            .pointer(&format!("/legs/{leg}/stats/packets_dropped"))
            .and_then(Value::as_u64);
        report.check(all == Some(oversized), || {
            format!(
                "{leg} leg: stats.packets_dropped = {all:?}, want only the {oversized} oversized"
            )
        });
    }
    let metrics = rig.daemon.api.metrics();
    let total = metric_sum(
        &metrics,
        "earshot_packets_dropped_total",
        &[("reason", "oversized")],
    );
    report.check(total == Some(2.0 * oversized as f64), || {
        format!(
            "/metrics: earshot_packets_dropped_total{{reason=\"oversized\"}} = {total:?}, sent {}",
            2 * oversized
        )
    });
    let kernel_drops: Vec<_> = [rig.call.customer_local, rig.call.agent_local]
        .iter()
        .map(|a| udp_socket_queue(a.port()).map(|(_, d)| d))
        .collect();
    let summary = format!(
        "{oversized} oversized datagrams each way, interleaved with {to_agent} + {to_customer} \
         genuine packets, sent in {spraying:?}; kernel drops on the legs' sockets \
         {kernel_drops:?}; {}",
        rig.daemon.health()
    );
    eprintln!("{summary}");
    report.note(summary);
    report.finish();
}

/// The kinds of bad input [`malformed_media_is_dropped_and_counted_per_leg`] interleaves, with
/// the drop reason each must be counted under.
fn bad_input(kind: usize, stream: &Stream) -> (Vec<u8>, &'static str) {
    let header = stream.next_header(PT_PCMA);
    let te = |payload: &[u8]| {
        let mut p = stream.next_header(PT_TELEPHONE_EVENT);
        p.extend_from_slice(payload);
        p
    };
    match kind % 7 {
        // The other G.711 law than the leg's (PCMU): payload_type_mismatch.
        0 => {
            let mut p = header;
            p.extend_from_slice(&[0xD5; 160]);
            (p, "payload_type_mismatch")
        }
        // RFC 4733 §2.3: an event is 4 bytes; empty, 3 and 5 bytes are malformed.
        1 => (te(&[]), "malformed"),
        2 => (te(&[5, 10, 0]), "malformed"),
        3 => (te(&[5, 10, 0, 160, 1]), "malformed"),
        // RTCP (RFC 5761 multiplexing): an RR claiming a report block it does not carry…
        4 => (vec![0x81, 201, 0, 1, 0, 0, 0, 1], "malformed"),
        // …an SR too short for its sender info…
        5 => (vec![0x80, 200, 0, 1, 0, 0, 0, 1], "malformed"),
        // …and a compound whose length field overruns the datagram.
        _ => (vec![0x80, 201, 0, 7, 0, 0, 0, 1], "malformed"),
    }
}

/// Issue 10, point 9: from the customer's own address, each genuine packet is followed by one
/// bad input carrying the next genuine number: the other G.711 law, a telephone-event of the
/// wrong length, malformed RTCP. The agent receives every genuine packet and nothing else, and
/// each bad input is counted on the customer's leg under its reason and in `/metrics`.
pub fn malformed_media_is_dropped_and_counted_per_leg(setup: &Setup) {
    let rig = silent_call(setup);
    let mut stream = Stream::new(0x5EED_0003);
    let (mut genuine, mut mismatched, mut malformed) = (0usize, 0u64, 0u64);
    let start = Instant::now();
    for k in 0..70 {
        // Paced as a phone sends, so nothing here is a burst.
        let due = start + PTIME * k as u32;
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let packet = stream.take_packet();
        rig.customer
            .send_raw(rig.call.customer_local, &packet)
            .expect("send");
        genuine += 1;
        let (bad, reason) = bad_input(k, &stream);
        rig.customer
            .send_raw(rig.call.customer_local, &bad)
            .expect("send");
        match reason {
            "payload_type_mismatch" => mismatched += 1,
            _ => malformed += 1,
        }
    }
    let mut call = rig.call_state();
    let counted = settle(|| {
        call = rig.call_state();
        leg_dropped(&call, "customer", "payload_type_mismatch") >= mismatched
            && leg_dropped(&call, "customer", "malformed") >= malformed
            && rig.agent.received_count() >= genuine
    });
    let mut report = Report::new(rig.t0);
    report.check(counted, || {
        "the counters and the relayed packets did not reach what was sent".into()
    });
    let rx = rig.agent.received();
    check_all_relayed(&mut report, "agent", &rx, genuine);
    let foreign = rx.iter().filter(|p| p.pt != PT_PCMU).count();
    report.check(foreign == 0, || {
        format!("the agent received {foreign} packets that are not the customer's µ-law")
    });
    let others = rig.agent.rtcp_packets() + rig.agent.other_packets();
    report.check(others == 0, || {
        format!("the agent received {others} RTCP or other datagrams")
    });
    for (reason, want) in [
        ("payload_type_mismatch", mismatched),
        ("malformed", malformed),
    ] {
        let got = leg_dropped(&call, "customer", reason);
        report.check(got == want, || {
            format!("customer leg: stats.dropped.{reason} = {got}, sent {want}")
        });
    }
    let metrics = rig.daemon.api.metrics();
    for (reason, want) in [
        ("payload_type_mismatch", mismatched),
        ("malformed", malformed),
    ] {
        let total = metric_sum(
            &metrics,
            "earshot_packets_dropped_total",
            &[("reason", reason)],
        );
        report.check(total == Some(want as f64), || {
            format!("/metrics: earshot_packets_dropped_total{{reason=\"{reason}\"}} = {total:?}, sent {want}")
        });
    }
    report.note(format!(
        "{genuine} genuine, {mismatched} PCMA, {malformed} malformed; {}",
        rig.daemon.health()
    ));
    report.finish();
}
