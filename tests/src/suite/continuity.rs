//! Every output is its own RTP stream (SPEC.md §1): one SSRC, continuous sequence numbers and
//! timestamps across every mode change, while each output switches between relayed (one
//! source, possibly a different one) and mixed:
//!
//! | phase           | customer            | agent               | supervisor          |
//! |-----------------|---------------------|---------------------|---------------------|
//! | unsupervised    | relay agent         | relay customer      | —                   |
//! | listen          | relay agent         | relay customer*     | mix customer+agent  |
//! | whisper         | relay agent         | mix cust.+sup.      | mix customer+agent  |
//! | barge           | mix agent+sup.      | mix cust.+sup.      | mix customer+agent  |
//! | takeover        | relay supervisor    | nothing             | relay customer      |
//! | takeover_listen | relay supervisor    | mix cust.+sup.      | relay customer      |
//! | listen          | relay agent         | relay customer      | mix customer+agent  |
//!
//! (*) mixed with the beep while it plays.

use std::time::Duration;

use crate::scenario::{Mode, PARTIES, Rig, RigOptions, Step};
use crate::setup::Setup;
use crate::verdict::{Report, check_continuity_strict, check_matrix, note_ts_lead_per_phase};

const DWELL: Duration = Duration::from_millis(700);

pub fn every_output_keeps_one_ssrc_and_continuous_seq_and_ts_across_all_modes(setup: &Setup) {
    let mut rig = Rig::start_in(setup, RigOptions::default());
    rig.dwell(Duration::from_millis(400));
    rig.run(&[
        (Step::Supervise, DWELL),
        (Step::Mode(Mode::Whisper), DWELL),
        (Step::Mode(Mode::Barge), DWELL),
        (Step::Mode(Mode::Takeover), DWELL),
        (Step::Mode(Mode::TakeoverListen), DWELL),
        (Step::Mode(Mode::Listen), DWELL),
    ]);
    let rec = rig.finish();
    let mut report = Report::for_recording(&rec);
    for party in PARTIES {
        check_continuity_strict(&mut report, party.name(), rec.of(party));
    }
    note_ts_lead_per_phase(&mut report, &rec);
    // The switches must really have happened for continuity to mean anything.
    check_matrix(&mut report, &rec);
    report.finish();
}

/// Ten quick cycles listen → whisper → barge: the customer's output switches relay → mix →
/// relay and the agent's relay → mix → mix → relay each cycle. Every switch may shift arrival
/// times by a mixing delay (bounded by a tick plus the jitter buffer), but the timestamps must
/// not drift further and further from wall-clock time as switches accumulate.
pub fn timestamps_stay_in_step_with_wall_clock_over_many_switches(setup: &Setup) {
    let mut rig = Rig::start_in(setup, RigOptions::default());
    rig.run(&[(Step::Supervise, Duration::from_millis(300))]);
    for _ in 0..10 {
        rig.run(&[
            (Step::Mode(Mode::Whisper), Duration::from_millis(200)),
            (Step::Mode(Mode::Barge), Duration::from_millis(120)),
            (Step::Mode(Mode::Listen), Duration::from_millis(200)),
        ]);
    }
    let rec = rig.finish();
    let mut report = Report::for_recording(&rec);
    for party in PARTIES {
        check_continuity_strict(&mut report, party.name(), rec.of(party));
    }
    note_ts_lead_per_phase(&mut report, &rec);
    report.finish();
}
