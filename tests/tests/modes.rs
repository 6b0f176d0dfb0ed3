//! The hearing matrix (SPEC.md §1), mode by mode and across mode sequences: the scenarios of
//! [`earshot_tests::suite::modes`] on loopback with the io_uring backend (`afxdp.rs` runs them over
//! a veth pair with both backends).

use earshot_tests::setup::Setup;
use earshot_tests::suite::modes;

#[test]
fn unsupervised_call_relays_customer_and_agent() {
    modes::unsupervised_call_relays_customer_and_agent(&Setup::loopback());
}

#[test]
fn listen_supervisor_hears_both_and_agent_gets_the_beep() {
    modes::listen_supervisor_hears_both_and_agent_gets_the_beep(&Setup::loopback());
}

#[test]
fn no_beep_when_the_supervision_asks_for_none() {
    modes::no_beep_when_the_supervision_asks_for_none(&Setup::loopback());
}

#[test]
fn whisper_agent_hears_customer_and_supervisor() {
    modes::whisper_agent_hears_customer_and_supervisor(&Setup::loopback());
}

#[test]
fn barge_everyone_hears_everyone_else() {
    modes::barge_everyone_hears_everyone_else(&Setup::loopback());
}

#[test]
fn takeover_customer_and_supervisor_only() {
    modes::takeover_customer_and_supervisor_only(&Setup::loopback());
}

#[test]
fn takeover_listen_agent_hears_customer_and_supervisor() {
    modes::takeover_listen_agent_hears_customer_and_supervisor(&Setup::loopback());
}

#[test]
fn listen_whisper_barge_listen_in_one_call() {
    modes::listen_whisper_barge_listen_in_one_call(&Setup::loopback());
}

#[test]
fn takeover_then_back_to_listen() {
    modes::takeover_then_back_to_listen(&Setup::loopback());
}

#[test]
fn takeover_listen_then_back_to_listen() {
    modes::takeover_listen_then_back_to_listen(&Setup::loopback());
}

#[test]
fn latching_legs_hear_the_matrix_in_whisper_and_barge() {
    modes::latching_legs_hear_the_matrix_in_whisper_and_barge(&Setup::loopback());
}

#[test]
fn whisper_is_audible_while_the_customer_sends_nothing() {
    modes::whisper_is_audible_while_the_customer_sends_nothing(&Setup::loopback());
}

#[test]
fn barge_and_whisper_across_pcmu_and_pcma() {
    modes::barge_and_whisper_across_pcmu_and_pcma(&Setup::loopback());
}
