//! The hearing matrix (docs/design.md §1.2), mode by mode and across mode sequences: every endpoint
//! sends its own tone and must hear exactly the tones of its matrix row.

use std::time::Duration;

use crate::rtp::{PT_PCMA, PT_PCMU};
use crate::scenario::{LegOptions, Mode, PARTIES, Party, Recording, Rig, RigOptions, Step};
use crate::setup::Setup;
use crate::verdict::{Report, check_beep, check_matrix, check_privacy};

/// Time spent in each judged phase: 150 ms guard + ~650 ms (≈ 32 packets) judged.
const DWELL: Duration = Duration::from_millis(800);
/// Time left between supervision start and the PATCH in single-mode tests.
const BRIEF: Duration = Duration::from_millis(50);

fn scenario(setup: &Setup, options: RigOptions, steps: &[(Step, Duration)]) -> Recording {
    let mut rig = Rig::start_in(setup, options);
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
fn single_mode(setup: &Setup, mode: Mode) {
    let rec = scenario(
        setup,
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

pub fn unsupervised_call_relays_customer_and_agent(setup: &Setup) {
    let mut rig = Rig::start_in(setup, RigOptions::default());
    rig.dwell(DWELL);
    let rec = rig.finish();
    judge(&rec).finish();
}

pub fn listen_supervisor_hears_both_and_agent_gets_the_beep(setup: &Setup) {
    let mut rig = Rig::start_in(
        setup,
        RigOptions {
            beep: Some(true),
            ..RigOptions::default()
        },
    );
    rig.dwell(Duration::from_millis(300));
    rig.run(&[(Step::Supervise, DWELL)]);
    let rec = rig.finish();
    let mut report = judge(&rec);
    check_beep(&mut report, &rec, true);
    report.finish();
}

pub fn no_beep_when_the_supervision_asks_for_none(setup: &Setup) {
    let mut rig = Rig::start_in(
        setup,
        RigOptions {
            beep: Some(false),
            ..RigOptions::default()
        },
    );
    rig.dwell(Duration::from_millis(300));
    rig.run(&[(Step::Supervise, DWELL)]);
    let rec = rig.finish();
    let mut report = judge(&rec);
    check_beep(&mut report, &rec, false);
    report.finish();
}

pub fn whisper_agent_hears_customer_and_supervisor(setup: &Setup) {
    single_mode(setup, Mode::Whisper);
}

pub fn barge_everyone_hears_everyone_else(setup: &Setup) {
    single_mode(setup, Mode::Barge);
}

pub fn takeover_customer_and_supervisor_only(setup: &Setup) {
    single_mode(setup, Mode::Takeover);
}

pub fn takeover_listen_agent_hears_customer_and_supervisor(setup: &Setup) {
    single_mode(setup, Mode::TakeoverListen);
}

pub fn listen_whisper_barge_listen_in_one_call(setup: &Setup) {
    let rec = scenario(
        setup,
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

pub fn takeover_then_back_to_listen(setup: &Setup) {
    let rec = scenario(
        setup,
        RigOptions::default(),
        &[
            (Step::Supervise, DWELL),
            (Step::Mode(Mode::Takeover), DWELL),
            (Step::Mode(Mode::Listen), DWELL),
        ],
    );
    judge(&rec).finish();
}

pub fn takeover_listen_then_back_to_listen(setup: &Setup) {
    let rec = scenario(
        setup,
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
pub fn latching_legs_hear_the_matrix_in_whisper_and_barge(setup: &Setup) {
    let latching = LegOptions {
        strict: false,
        ..LegOptions::default()
    };
    let rec = scenario(
        setup,
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

/// docs/design.md §1.3: a whisper is audible even when the customer sends nothing at all (the tick,
/// not the customer's packets, drives the agent's mix).
pub fn whisper_is_audible_while_the_customer_sends_nothing(setup: &Setup) {
    let silent = LegOptions {
        sends: false,
        ..LegOptions::default()
    };
    let rec = scenario(
        setup,
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
pub fn barge_and_whisper_across_pcmu_and_pcma(setup: &Setup) {
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
        setup,
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
