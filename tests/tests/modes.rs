//! The hearing matrix (SPEC.md §1), mode by mode and across mode sequences: every endpoint
//! sends its own tone and must hear exactly the tones of its matrix row.

use std::time::Duration;

use earshot_tests::rtp::{PT_PCMA, PT_PCMU};
use earshot_tests::scenario::{LegOptions, Mode, PARTIES, Party, Recording, Rig, RigOptions, Step};
use earshot_tests::verdict::{Report, check_beep, check_matrix, check_privacy};

/// Time spent in each judged phase: 150 ms guard + ~650 ms (≈ 32 packets) judged.
const DWELL: Duration = Duration::from_millis(800);
/// Time left between supervision start and the PATCH in single-mode tests.
const BRIEF: Duration = Duration::from_millis(50);

fn scenario(options: RigOptions, steps: &[(Step, Duration)]) -> Recording {
    let mut rig = Rig::start(options);
    rig.run(steps);
    rig.finish()
}

/// Matrix and privacy for every phase of `rec`.
fn judge(rec: &Recording) -> Report {
    let mut report = Report::for_recording(rec);
    check_matrix(&mut report, rec);
    check_privacy(&mut report, rec);
    report
}

/// A supervision switched to `mode` right after it starts, then held.
fn single_mode(mode: Mode) {
    let rec = scenario(
        RigOptions::default(),
        &[
            (
                Step::Supervise,
                if mode == Mode::Listen { DWELL } else { BRIEF },
            ),
            (Step::Mode(mode), DWELL),
        ],
    );
    judge(&rec).finish();
}

#[test]
fn unsupervised_call_relays_customer_and_agent() {
    let mut rig = Rig::start(RigOptions::default());
    rig.dwell(DWELL);
    let rec = rig.finish();
    judge(&rec).finish();
}

#[test]
fn listen_supervisor_hears_both_and_agent_gets_the_beep() {
    let mut rig = Rig::start(RigOptions {
        beep: Some(true),
        ..RigOptions::default()
    });
    rig.dwell(Duration::from_millis(300));
    rig.run(&[(Step::Supervise, DWELL)]);
    let rec = rig.finish();
    let mut report = judge(&rec);
    check_beep(&mut report, &rec, true);
    report.finish();
}

#[test]
fn no_beep_when_the_supervision_asks_for_none() {
    let mut rig = Rig::start(RigOptions {
        beep: Some(false),
        ..RigOptions::default()
    });
    rig.dwell(Duration::from_millis(300));
    rig.run(&[(Step::Supervise, DWELL)]);
    let rec = rig.finish();
    let mut report = judge(&rec);
    check_beep(&mut report, &rec, false);
    report.finish();
}

#[test]
fn whisper_agent_hears_customer_and_supervisor() {
    single_mode(Mode::Whisper);
}

#[test]
fn barge_everyone_hears_everyone_else() {
    single_mode(Mode::Barge);
}

#[test]
fn takeover_customer_and_supervisor_only() {
    single_mode(Mode::Takeover);
}

#[test]
fn takeover_listen_agent_hears_customer_and_supervisor() {
    single_mode(Mode::TakeoverListen);
}

#[test]
fn listen_whisper_barge_listen_in_one_call() {
    let rec = scenario(
        RigOptions::default(),
        &[
            (Step::Supervise, DWELL),
            (Step::Mode(Mode::Whisper), DWELL),
            (Step::Mode(Mode::Barge), DWELL),
            (Step::Mode(Mode::Listen), DWELL),
        ],
    );
    judge(&rec).finish();
}

#[test]
fn takeover_then_back_to_listen() {
    let rec = scenario(
        RigOptions::default(),
        &[
            (Step::Supervise, DWELL),
            (Step::Mode(Mode::Takeover), DWELL),
            (Step::Mode(Mode::Listen), DWELL),
        ],
    );
    judge(&rec).finish();
}

#[test]
fn takeover_listen_then_back_to_listen() {
    let rec = scenario(
        RigOptions::default(),
        &[
            (Step::Supervise, DWELL),
            (Step::Mode(Mode::TakeoverListen), DWELL),
            (Step::Mode(Mode::Listen), DWELL),
        ],
    );
    judge(&rec).finish();
}

/// Every leg latching (no `remote`): the appliance learns each party's address from its first
/// packet, and the matrix holds as with strict legs.
#[test]
fn latching_legs_hear_the_matrix_in_whisper_and_barge() {
    let latching = LegOptions {
        strict: false,
        ..LegOptions::default()
    };
    let rec = scenario(
        RigOptions {
            customer: latching,
            agent: latching,
            supervisor: latching,
            ..RigOptions::default()
        },
        &[
            (Step::Supervise, BRIEF),
            (Step::Mode(Mode::Whisper), DWELL),
            (Step::Mode(Mode::Barge), DWELL),
        ],
    );
    judge(&rec).finish();
}

/// SPEC.md §1: a whisper is audible even when the customer sends nothing at all (the tick, not
/// the customer's packets, drives the agent's mix).
#[test]
fn whisper_is_audible_while_the_customer_sends_nothing() {
    let silent = LegOptions {
        sends: false,
        ..LegOptions::default()
    };
    let rec = scenario(
        RigOptions {
            customer: silent,
            ..RigOptions::default()
        },
        &[(Step::Supervise, BRIEF), (Step::Mode(Mode::Whisper), DWELL)],
    );
    judge(&rec).finish();
}

/// Mixed legs of different codecs: the agent and supervisor use A-law, the customer µ-law.
/// Every leg must receive its own codec and the matrix must hold.
#[test]
fn barge_and_whisper_across_pcmu_and_pcma() {
    let alaw = LegOptions {
        pt: PT_PCMA,
        ..LegOptions::default()
    };
    let options = RigOptions {
        agent: alaw,
        supervisor: alaw,
        ..RigOptions::default()
    };
    let rec = scenario(
        options,
        &[
            (Step::Supervise, DWELL),
            (Step::Mode(Mode::Whisper), DWELL),
            (Step::Mode(Mode::Barge), DWELL),
        ],
    );
    let mut report = judge(&rec);
    for party in PARTIES {
        let want = if party == Party::Customer {
            PT_PCMU
        } else {
            PT_PCMA
        };
        let wrong = rec.of(party).iter().filter(|p| p.pt != want).count();
        report.check(wrong == 0, || {
            format!(
                "{} leg is {} but {wrong} of {} received packets carry another payload type",
                party.name(),
                if want == PT_PCMA {
                    "pcma (PT 8)"
                } else {
                    "pcmu (PT 0)"
                },
                rec.of(party).len()
            )
        });
    }
    report.finish();
}
