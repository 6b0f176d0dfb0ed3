//! RFC 4733 key presses: the supervisor's switch modes in-band (`5` whisper, `6` barge,
//! `4` listen) and are never forwarded; the customer's and agent's are relayed to each other
//! and never reach a supervisor (docs/api.md, "In-band control by the supervisor").

use std::collections::BTreeMap;
use std::time::Duration;

use crate::endpoint::Received;
use crate::rtp::PT_TELEPHONE_EVENT;
use crate::scenario::{Mode, PARTIES, Party, Rig, RigOptions, Step};
use crate::setup::Setup;
use crate::verdict::{Report, check_matrix, check_privacy};

const DWELL: Duration = Duration::from_millis(800);
/// How long the daemon may take to act on a supervisor's key.
const KEY_TO_MODE: Duration = Duration::from_secs(2);

/// Presses `digit` on the supervisor's phone, waits for the supervision to show `mode`, and
/// records the phase (effective once both the mode is visible and the key press is over, as
/// the supervisor's tone resumes only then).
fn press(rig: &mut Rig, report: &mut Report, digit: char, mode: Mode) {
    let sent = rig.supervisor.send_dtmf(digit);
    match rig.wait_for_mode(mode, KEY_TO_MODE) {
        Ok(seen) => {
            report.note(format!(
                "supervisor key {digit}: mode {} seen {:.0} ms after the key press started",
                mode.name(),
                seen.duration_since(sent.started).as_secs_f64() * 1000.0
            ));
            rig.record_phase(mode, sent.started, seen.max(sent.finished));
        }
        Err(e) => {
            report.fail(format!(
                "supervisor key {digit} must switch to {} within {KEY_TO_MODE:?}: {e}",
                mode.name()
            ));
            rig.record_phase(mode, sent.started, sent.finished);
        }
    }
}

/// Key presses found in a received stream, by event code: (packets, end packets, distinct
/// timestamps).
fn key_presses(rx: &[Received]) -> BTreeMap<u8, (usize, usize, usize)> {
    let mut out: BTreeMap<u8, (usize, usize, Vec<u32>)> = BTreeMap::new();
    for p in rx {
        if let Some(ev) = p.telephone_event() {
            let e = out.entry(ev.event).or_default();
            e.0 += 1;
            e.1 += usize::from(ev.end);
            if !e.2.contains(&p.ts) {
                e.2.push(p.ts);
            }
        }
    }
    out.into_iter()
        .map(|(k, (n, end, ts))| (k, (n, end, ts.len())))
        .collect()
}

fn events_in(rx: &[Received]) -> usize {
    rx.iter().filter(|p| p.pt == PT_TELEPHONE_EVENT).count()
}

pub fn supervisor_keys_switch_to_whisper_barge_and_back_to_listen(setup: &Setup) {
    let mut rig = Rig::start_in(setup, RigOptions::default());
    rig.run(&[(Step::Supervise, DWELL)]);
    let mut report = Report::new(rig.t0);
    press(&mut rig, &mut report, '5', Mode::Whisper);
    rig.dwell(DWELL);
    press(&mut rig, &mut report, '6', Mode::Barge);
    rig.dwell(DWELL);
    press(&mut rig, &mut report, '4', Mode::Listen);
    rig.dwell(DWELL);
    let rec = rig.finish();
    report.note(rec.health.clone());

    check_matrix(&mut report, &rec);
    check_privacy(&mut report, &rec);
    for party in [Party::Customer, Party::Agent] {
        let n = events_in(rec.of(party));
        report.check(n == 0, || {
            format!(
                "supervisor DTMF must not be forwarded: {} received {n} telephone-event packets: {:?}",
                party.name(),
                key_presses(rec.of(party))
            )
        });
    }
    report.finish();
}

pub fn customer_and_agent_keys_are_relayed_to_each_other_never_to_the_supervisor(setup: &Setup) {
    let mut rig = Rig::start_in(setup, RigOptions::default());
    rig.run(&[(Step::Supervise, Duration::from_millis(500))]);
    let mut report = Report::new(rig.t0);

    // In listen the agent's output relays the customer.
    rig.customer.send_dtmf('5');
    rig.dwell(Duration::from_millis(300));
    let mode = rig.supervision_state()["mode"].clone();
    report.check(mode == "listen", || {
        format!("a customer's key 5 must not change the supervision: mode is now {mode}")
    });
    rig.agent.send_dtmf('1');
    rig.dwell(Duration::from_millis(300));
    // In whisper the agent's output is mixed; telephone-events are still relayed, never mixed.
    rig.run(&[(Step::Mode(Mode::Whisper), Duration::from_millis(300))]);
    rig.customer.send_dtmf('7');
    rig.dwell(Duration::from_millis(400));
    let rec = rig.finish();
    report.note(rec.health.clone());

    let to_agent = key_presses(rec.of(Party::Agent));
    let to_customer = key_presses(rec.of(Party::Customer));
    for (who, got, key, when) in [
        ("agent", &to_agent, 5u8, "listen (relayed output)"),
        ("agent", &to_agent, 7, "whisper (mixed output)"),
        ("customer", &to_customer, 1, "listen (relayed output)"),
    ] {
        let entry = got.get(&key).copied();
        report.check(entry.is_some_and(|(n, end, _)| n >= 3 && end >= 1), || {
            format!(
                "the {who} must receive key {key} pressed in {when} as telephone-events (≥ 3 packets, ≥ 1 with \
                 the end bit); received (packets, end packets, timestamps) by key: {got:?}"
            )
        });
        report.check(entry.is_none_or(|(_, _, ts)| ts == 1), || {
            format!("key {key} relayed to the {who} must keep one timestamp for the whole event (RFC 4733 §2.5.1): {got:?}")
        });
    }
    let n = events_in(rec.of(Party::Supervisor));
    report.check(n == 0, || {
        format!(
            "customer/agent DTMF must never reach a supervisor: it received {n} telephone-event packets {:?}",
            key_presses(rec.of(Party::Supervisor))
        )
    });
    for party in PARTIES {
        report.note(format!(
            "{} received key presses {:?}",
            party.name(),
            key_presses(rec.of(party))
        ));
    }
    check_privacy(&mut report, &rec);
    report.finish();
}
