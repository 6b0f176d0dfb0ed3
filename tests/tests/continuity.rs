//! One continuous RTP stream per output across every mode change (SPEC.md §1): the scenarios of
//! [`earshot_tests::suite::continuity`] on loopback with the io_uring backend (`afxdp.rs` runs them
//! over a veth pair with both backends).

use earshot_tests::setup::Setup;
use earshot_tests::suite::continuity;

#[test]
fn every_output_keeps_one_ssrc_and_continuous_seq_and_ts_across_all_modes() {
    continuity::every_output_keeps_one_ssrc_and_continuous_seq_and_ts_across_all_modes(
        &Setup::loopback(),
    );
}

#[test]
fn timestamps_stay_in_step_with_wall_clock_over_many_switches() {
    continuity::timestamps_stay_in_step_with_wall_clock_over_many_switches(&Setup::loopback());
}
