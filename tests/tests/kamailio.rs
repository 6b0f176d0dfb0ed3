//! A real Kamailio drives the media relay over NG (docs/ng.md, Kamailio test rig): Debian's
//! Kamailio 5.6 with its `rtpengine` module, sipp placing calls through it to a callee that
//! answers with SDP, and the test's own endpoints sending RTP both ways through the relay.
//!
//! The same calls and checks run against rtpengine (`rtpengine-daemon`, the reference that
//! proves the rig) and against earshot; the relay is the only difference.

use earshot_tests::kamailio::{
    self, CallPlan, Earshot, Hangup, MediaRelay, NgProxy, Rtpengine, Run,
};

/// 20 calls at 10 calls/s, 3 s each: several at once.
fn plan(hangup: Hangup) -> CallPlan {
    CallPlan {
        calls: 20,
        rate_cps: 10,
        hold_ms: 3000,
        hangup,
    }
}

/// Packets each party must receive from the relay in a 3 s call (50 per second are sent):
/// over a second's worth, leaving the call's first and last moments to a loaded machine.
const MIN_RECEIVED: u64 = 50;

/// Packets per party the relay may relay between the `query` of `$rtpstat` and the `delete`
/// that follows it in the BYE's route: half a second's worth, for a loaded machine.
const QUERY_TO_DELETE_PACKETS: u64 = 25;

/// Every acceptance check of a run: each call completed; both SDPs name the relay (loopback,
/// a port of its media range, one address per leg); RTP went both ways through it, counted at
/// both endpoints (from the relay address their SDP named, carrying the other party's tone);
/// the relay's own per-leg counters saw it when `leg_stats` is expected (earshot's API); the BYE came from the
/// side the plan says and released the call (`list` no longer names it); `$rtpstat` gave each
/// call's totals.
fn check(relay: &dyn MediaRelay, run: &Run, leg_stats: bool) {
    let mut failures = Vec::new();
    let plan = run.plan;
    let n = plan.calls as u64;
    if !run.uac_status.is_some_and(|s| s.success()) {
        failures.push(format!(
            "the caller (sipp UAC) did not succeed: {:?}",
            run.uac_status
        ));
    }
    if !run.uas_status.is_some_and(|s| s.success()) {
        failures.push(format!(
            "the callee (sipp UAS) did not succeed: {:?}",
            run.uas_status
        ));
    }
    match run.uac_stats {
        Some(s) if s.successful == n && s.failed == 0 => {}
        other => failures.push(format!(
            "sipp's caller counted {other:?}, expected {n} successful calls"
        )),
    }
    let ports = relay.media_ports();
    // 50 packets a second each way.
    let lag_packets = relay.counters_lag().as_millis() as u64 / 20;
    for c in &run.calls {
        let call = format!("call {} ({:?})", c.index, c.call_id);
        for (side, addr) in [("caller", c.caller_relay), ("callee", c.callee_relay)] {
            match addr {
                Some(a) if a.ip().is_loopback() && ports.contains(&a.port()) => {}
                other => failures.push(format!(
                    "{call}: the {side}'s SDP names {other:?}, not the relay ({}: 127.0.0.1:{ports:?})",
                    relay.name()
                )),
            }
        }
        if c.caller_relay.is_some() && c.caller_relay == c.callee_relay {
            failures.push(format!("{call}: both legs have the same relay address"));
        }
        for (side, p) in [("caller", &c.caller), ("callee", &c.callee)] {
            if p.from_relay < MIN_RECEIVED {
                failures.push(format!(
                    "{call}: the {side} received {} packets from the relay (fewer than {MIN_RECEIVED})",
                    p.from_relay
                ));
            }
            if p.received != p.from_relay {
                failures.push(format!(
                    "{call}: the {side} received {} packets from elsewhere than its relay address",
                    p.received - p.from_relay
                ));
            }
            if p.other_party_tone < p.from_relay * 9 / 10 {
                failures.push(format!(
                    "{call}: the {side} heard the other party's tone in only {} of {} packets",
                    p.other_party_tone, p.from_relay
                ));
            }
        }
        if leg_stats {
            match c.relay_legs {
                Some((a, b))
                    if a.packets_in > 0
                        && a.packets_out > 0
                        && b.packets_in > 0
                        && b.packets_out > 0 => {}
                other => failures.push(format!(
                    "{call}: the relay's per-leg counters did not show media both ways: {other:?}"
                )),
            }
        }
        if c.ended_by != Some(plan.hangup) {
            failures.push(format!(
                "{call}: ended by {:?}, expected the {}",
                c.ended_by, plan.hangup
            ));
        }
        let Some(id) = &c.call_id else {
            failures.push(format!("{call}: never answered"));
            continue;
        };
        match &run.listed_after {
            Ok(list) if !kamailio::relay::contains(list, id.as_bytes()) => {}
            Ok(_) => failures.push(format!("{call}: the relay still lists it after the BYE")),
            Err(e) => failures.push(format!("{call}: `list` failed after the calls: {e}")),
        }
        let sent = c.caller.sent + c.callee.sent;
        let delivered = c.caller.from_relay + c.callee.from_relay;
        match run.rtpstats.iter().find(|s| &s.call_id == id) {
            // The relay counts what it received (rtpengine), maybe also what it sent: at least
            // what it delivered to the endpoints, less what it may have relayed between the
            // `query` and the `delete` of the BYE and what its counters may lag behind; at
            // most twice what they sent.
            Some(s)
                if s.rtp_packets + 2 * (QUERY_TO_DELETE_PACKETS + lag_packets) >= delivered
                    && s.rtp_packets <= 2 * sent
                    && s.rtp_bytes > 0 => {}
            other => failures.push(format!(
                "{call}: $rtpstat gave {other:?} ({delivered} packets delivered to the endpoints, \
                 {sent} sent by them)"
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} ({}):\n{}\n{}\n{}",
        relay.name(),
        failures.len(),
        failures.join("\n"),
        run.table(),
        run.logs
    );
    // The figures, for the closing note (`--nocapture`).
    println!("{}:\n{}", relay.name(), run.table());
}

#[test]
fn rtpengine_relays_calls_from_kamailio_the_caller_hanging_up() {
    let relay = Rtpengine::start();
    let run = kamailio::run_calls(&relay, plan(Hangup::Caller));
    check(&relay, &run, false);
}

#[test]
fn rtpengine_relays_calls_from_kamailio_the_callee_hanging_up() {
    let relay = Rtpengine::start();
    let run = kamailio::run_calls(&relay, plan(Hangup::Callee));
    check(&relay, &run, false);
}

#[test]
fn earshot_relays_calls_from_kamailio_the_caller_hanging_up() {
    let relay = Earshot::start();
    let run = kamailio::run_calls(&relay, plan(Hangup::Caller));
    check(&relay, &run, true);
}

#[test]
fn earshot_relays_calls_from_kamailio_the_callee_hanging_up() {
    let relay = Earshot::start();
    let run = kamailio::run_calls(&relay, plan(Hangup::Callee));
    check(&relay, &run, true);
}

/// Every `offer` whose first answer the proxy lost was sent again by Kamailio with the same
/// cookie and answered, byte for byte, as the first time (from the relay's cookie cache).
fn check_resends(relay: &dyn MediaRelay, proxy: &NgProxy, plan: CallPlan) {
    let lost = proxy.lost_offers();
    assert!(
        lost.len() >= plan.calls,
        "{}: {} offer answers lost for {} calls",
        relay.name(),
        lost.len(),
        plan.calls
    );
    for offer in &lost {
        assert!(
            offer.sent >= 2,
            "{}: {offer:?} was not resent",
            relay.name()
        );
        assert_eq!(
            offer.resend_answer.as_deref(),
            Some(offer.lost_answer.as_slice()),
            "{}: the resend of cookie {} got another answer",
            relay.name(),
            offer.cookie
        );
    }
    println!(
        "{}: {} offer answers lost, each resent and answered alike",
        relay.name(),
        lost.len()
    );
}

/// Kamailio resends an unanswered cookie after `rtpengine_tout_ms` (1 s): with the first answer
/// to every offer lost on the way, every call still completes, with its media, and each resend
/// gets the lost answer.
fn calls_survive_lost_offer_answers(relay: &dyn MediaRelay, leg_stats: bool) {
    let proxy = NgProxy::start(relay.ng_addr());
    let plan = CallPlan {
        calls: 10,
        ..plan(Hangup::Caller)
    };
    let run = kamailio::run_calls_via(relay, plan, proxy.addr);
    check(relay, &run, leg_stats);
    check_resends(relay, &proxy, plan);
}

#[test]
fn rtpengine_answers_kamailios_resent_offers_alike() {
    calls_survive_lost_offer_answers(&Rtpengine::start(), false);
}

#[test]
fn earshot_answers_kamailios_resent_offers_alike() {
    calls_survive_lost_offer_answers(&Earshot::start(), true);
}

/// The earshot relay's per-leg counters (what `check` reads while calls are up) are the call
/// API's: a call made over HTTP, RTP into its customer leg, and the counters follow.
#[test]
fn earshot_per_leg_counters_come_from_the_call_api() {
    use earshot_tests::daemon::TestDaemon;
    use earshot_tests::kamailio::relay::earshot_legs;
    use std::net::{SocketAddr, UdpSocket};
    use std::time::{Duration, Instant};

    let daemon = TestDaemon::start();
    let call = daemon
        .api
        .post("/v1/calls", &serde_json::json!({}))
        .expect(201, "create a call");
    let leg = |party: &str| -> SocketAddr {
        call["legs"][party]["local"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no {party} leg address in {call}"))
    };
    let (customer, agent) = (leg("customer"), leg("agent"));
    let idle = kamailio::LegStats {
        packets_in: 0,
        packets_out: 0,
    };
    let legs = earshot_legs(&daemon.api);
    assert_eq!(
        (legs.get(&customer), legs.get(&agent)),
        (Some(&idle), Some(&idle))
    );
    let phone = UdpSocket::bind("127.0.0.1:0").unwrap();
    for seq in 0..5u16 {
        let packet =
            earshot_tests::rtp::build(0, false, seq, u32::from(seq) * 160, 7, &[0xff; 160]);
        phone.send_to(&packet, customer).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let stats = loop {
        let stats = earshot_legs(&daemon.api)[&customer];
        if stats.packets_in >= 5 || Instant::now() >= deadline {
            break stats;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(stats.packets_in, 5, "{stats:?}");
    assert!(!earshot_legs(&daemon.api).contains_key(&phone.local_addr().unwrap()));
}
