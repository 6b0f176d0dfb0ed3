//! Source checking (docs/design.md §1.7, the RTP Bleed class): a strict leg accepts packets only
//! from its remote; a latching leg locks to its first source. Everything else is dropped and
//! counted, never forwarded or mixed. The intruder sends a 2500 Hz tone that nobody may hear.

use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::api::metric_sum;
use crate::audio::INTRUDER_TONE;
use crate::endpoint::{Endpoint, PTIME, SendSpec};
use crate::scenario::{LegOptions, Mode, Party, Rig, RigOptions, Step, addr_field};
use crate::setup::Setup;
use crate::verdict::{Report, between, check_matrix, phase_window};

const DWELL: Duration = Duration::from_millis(900);

fn customer_dropped(rig: &Rig) -> u64 {
    let call = rig.call_state();
    call.pointer("/legs/customer/stats/packets_dropped")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or_else(|| panic!("no legs.customer.stats.packets_dropped in {call}"))
}

/// The drop counters after the intruder stopped: the leg's own and the `/metrics` total.
fn check_drop_counters(report: &mut Report, rig: &Rig, intruder: &Endpoint, dropped_before: u64) {
    // Let the data plane count the last intruder packets.
    thread::sleep(Duration::from_millis(200));
    let sent = intruder.sender_stats().sent;
    let grown = customer_dropped(rig).saturating_sub(dropped_before);
    report.check(sent > 0 && grown * 10 >= sent * 9, || {
        format!("customer leg stats.packets_dropped grew by {grown} while the intruder sent {sent} packets (want ≥ 90 %)")
    });
    let metrics = rig.daemon.api.metrics();
    let wrong_source = metric_sum(
        &metrics,
        "earshot_packets_dropped_total",
        &[("reason", "wrong_source")],
    );
    report.check(wrong_source.is_some_and(|v| v > 0.0), || {
        let lines: Vec<&str> = metrics.lines().filter(|l| l.contains("earshot_packets_dropped_total")).collect();
        format!(
            "/metrics: earshot_packets_dropped_total{{reason=\"wrong_source\"}} = {wrong_source:?}, want > 0; \
             lines: {lines:?}"
        )
    });
    let back = intruder.received_count();
    report.check(back == 0, || {
        format!("the appliance sent {back} packets to the intruder's address")
    });
    report.note(format!(
        "intruder sent {sent}, customer packets_dropped +{grown}, wrong_source total {wrong_source:?}"
    ));
}

pub fn strict_leg_drops_and_counts_packets_from_a_wrong_source(setup: &Setup) {
    let mut rig = Rig::start_in(setup, RigOptions::default());
    rig.supervise();
    let dropped_before = customer_dropped(&rig);
    let mut intruder = rig.endpoint("intruder");
    intruder.start_sending(SendSpec::tone(rig.call.customer_local, INTRUDER_TONE));
    rig.dwell(DWELL);
    // In barge every output is mixed: an accepted intruder would be mixed into all of them.
    rig.run(&[(Step::Mode(Mode::Barge), DWELL)]);
    intruder.stop_sending();
    let rec = rig.finish();

    let mut report = Report::for_recording(&rec);
    check_matrix(&mut report, &rec); // 2500 Hz is judged absent everywhere
    // In listen the agent's output relays the customer leg alone: forwarding the intruder too
    // would double its packet rate.
    let listen = rec
        .phases
        .iter()
        .position(|p| p.mode == Mode::Listen)
        .expect("listen phase");
    let (from, to) = phase_window(&rec.phases, listen, Party::Agent);
    let n = between(rec.of(Party::Agent), from, to).count();
    let slots = to.duration_since(from).as_secs_f64() / PTIME.as_secs_f64();
    report.check((n as f64) <= slots * 1.25 + 2.0, || {
        format!("agent received {n} packets in {slots:.0} packet slots of listen: something besides the customer is relayed")
    });
    check_drop_counters(&mut report, &rig, &intruder, dropped_before);
    report.finish();
}

pub fn latching_leg_locks_to_its_first_source_and_drops_a_second(setup: &Setup) {
    let latching = LegOptions {
        strict: false,
        ..LegOptions::default()
    };
    let mut rig = Rig::start_in(
        setup,
        RigOptions {
            customer: latching,
            ..RigOptions::default()
        },
    );
    // The customer hears the agent once the leg has latched onto the customer's address.
    let deadline = Instant::now() + Duration::from_secs(2);
    while rig.customer.received_count() < 5 {
        assert!(
            Instant::now() < deadline,
            "the latching customer leg never sent to its first source"
        );
        thread::sleep(Duration::from_millis(20));
    }
    // The API shows the address the leg locked to, and that it was latched (the agent's was
    // configured), once the control plane has heard of the latch.
    let deadline = Instant::now() + Duration::from_secs(2);
    let legs = loop {
        let legs = rig.call_state()["legs"].clone();
        if !legs["customer"]["remote"].is_null() || Instant::now() >= deadline {
            break legs;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        (
            addr_field(&legs, "/customer/remote"),
            &legs["customer"]["remote_source"]
        ),
        (rig.customer.local_addr(), &json!("latched")),
        "{legs}"
    );
    assert_eq!(legs["agent"]["remote_source"], "configured", "{legs}");
    let dropped_before = customer_dropped(&rig);
    let mut intruder = rig.endpoint("intruder");
    intruder.start_sending(SendSpec::tone(rig.call.customer_local, INTRUDER_TONE));
    rig.dwell(DWELL);
    rig.run(&[
        (Step::Supervise, Duration::from_millis(100)),
        (Step::Mode(Mode::Barge), DWELL),
    ]);
    intruder.stop_sending();
    let rec = rig.finish();

    let mut report = Report::for_recording(&rec);
    check_matrix(&mut report, &rec);
    check_drop_counters(&mut report, &rig, &intruder, dropped_before);
    // The intruder did not move the lock.
    let customer = rig.call_state()["legs"]["customer"].clone();
    report.check(
        addr_field(&customer, "/remote") == rig.customer.local_addr(),
        || format!("after the intruder, the customer leg shows {customer}"),
    );
    report.finish();
}
