//! The end-to-end scenarios, each a function of the [`Setup`](crate::setup::Setup) it runs on,
//! so the same assertions judge every backend and network: `tests/tests/loopback.rs` runs them
//! on loopback with io_uring, `tests/tests/afxdp.rs` on a veth pair with AF_XDP and with
//! io_uring, both through [`each_scenario!`](crate::each_scenario).

pub mod continuity;
pub mod dtmf;
pub mod input;
pub mod modes;
pub mod privacy;
pub mod source;

/// Calls `$m! { $($args)*; group::scenario, … }` with every scenario of the suite, so a test
/// file can make one test per scenario without listing them again.
#[macro_export]
macro_rules! each_scenario {
    ($m:ident, $($args:tt)*) => {
        $m! {
            $($args)*;
            modes::unsupervised_call_relays_customer_and_agent,
            modes::listen_supervisor_hears_both_and_agent_gets_the_beep,
            modes::no_beep_when_the_supervision_asks_for_none,
            modes::whisper_agent_hears_customer_and_supervisor,
            modes::barge_everyone_hears_everyone_else,
            modes::takeover_customer_and_supervisor_only,
            modes::takeover_listen_agent_hears_customer_and_supervisor,
            modes::listen_whisper_barge_listen_in_one_call,
            modes::takeover_then_back_to_listen,
            modes::takeover_listen_then_back_to_listen,
            modes::latching_legs_hear_the_matrix_in_whisper_and_barge,
            modes::whisper_is_audible_while_the_customer_sends_nothing,
            modes::barge_and_whisper_across_pcmu_and_pcma,
            privacy::customer_never_hears_supervisor_under_loss_and_reordering,
            privacy::rapid_transitions_never_leak_supervisor_to_customer,
            continuity::every_output_keeps_one_ssrc_and_continuous_seq_and_ts_across_all_modes,
            continuity::timestamps_stay_in_step_with_wall_clock_over_many_switches,
            continuity::relayed_outputs_stay_continuous_across_input_jumps_and_an_ssrc_change,
            source::strict_leg_drops_and_counts_packets_from_a_wrong_source,
            source::latching_leg_locks_to_its_first_source_and_drops_a_second,
            dtmf::supervisor_keys_switch_to_whisper_barge_and_back_to_listen,
            dtmf::customer_and_agent_keys_are_relayed_to_each_other_never_to_the_supervisor,
            input::malformed_media_is_dropped_and_counted_per_leg,
        }
    };
}
