//! The product's core promise (docs/design.md §1.2): the customer never hears a supervisor in
//! `listen` or `whisper`, in any transition, under loss or reordering. Every sender's output goes
//! through 5 % loss and 5 % reordering (reproducible, so a failure reproduces).

use std::time::Duration;

use crate::scenario::{Mode, PARTIES, Rig, RigOptions, Step};
use crate::setup::Setup;
use crate::verdict::{Report, check_continuity_lossy, check_matrix, check_privacy};

const DWELL: Duration = Duration::from_millis(800);

fn impaired(case: u64) -> RigOptions {
    RigOptions {
        impairment_case: Some(case),
        ..RigOptions::default()
    }
}

pub fn customer_never_hears_supervisor_under_loss_and_reordering(setup: &Setup) {
    let mut rig = Rig::start_in(setup, impaired(0x5eed_0001));
    rig.run(&[
        (Step::Supervise, DWELL),
        (Step::Mode(Mode::Whisper), DWELL),
        (Step::Mode(Mode::Barge), DWELL),
        (Step::Mode(Mode::Listen), DWELL),
        (Step::Mode(Mode::Whisper), DWELL),
    ]);
    let stats: Vec<String> = [&rig.customer, &rig.agent, &rig.supervisor]
        .iter()
        .map(|e| {
            let s = e.sender_stats();
            format!(
                "{}: {} generated, {} dropped, {} reordered",
                e.name, s.generated, s.dropped, s.reordered
            )
        })
        .collect();
    let rec = rig.finish();
    let mut report = Report::for_recording(&rec);
    report.note(format!("impairment: {}", stats.join("; ")));
    check_privacy(&mut report, &rec);
    // The supervisor must still be heard where the matrix says so (the agent in whisper, the
    // customer in barge): otherwise the privacy figures would prove nothing.
    check_matrix(&mut report, &rec);
    for party in PARTIES {
        check_continuity_lossy(&mut report, party.name(), rec.of(party));
    }
    report.finish();
}

/// Quick cycles listen → whisper → barge under loss: each private stretch starts one guard
/// after barge ends and runs until the next barge is requested, so every listen⇄whisper switch
/// and every exit from barge is inside the judged audio.
pub fn rapid_transitions_never_leak_supervisor_to_customer(setup: &Setup) {
    let mut rig = Rig::start_in(setup, impaired(0x5eed_0002));
    rig.run(&[(Step::Supervise, Duration::from_millis(300))]);
    for _ in 0..5 {
        rig.run(&[
            (Step::Mode(Mode::Whisper), Duration::from_millis(250)),
            (Step::Mode(Mode::Barge), Duration::from_millis(150)),
            (Step::Mode(Mode::Listen), Duration::from_millis(250)),
        ]);
    }
    rig.run(&[(Step::Mode(Mode::Whisper), Duration::from_millis(250))]);
    let rec = rig.finish();
    let mut report = Report::for_recording(&rec);
    check_privacy(&mut report, &rec);
    for party in PARTIES {
        check_continuity_lossy(&mut report, party.name(), rec.of(party));
    }
    report.finish();
}
