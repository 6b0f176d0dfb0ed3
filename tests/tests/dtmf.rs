//! RFC 4733 key presses: supervisor keys switch modes, party keys are relayed: the scenarios of
//! [`earshot_tests::suite::dtmf`] on loopback with the io_uring backend (`afxdp.rs` runs them over
//! a veth pair with both backends).

use earshot_tests::setup::Setup;
use earshot_tests::suite::dtmf;

#[test]
fn supervisor_keys_switch_to_whisper_barge_and_back_to_listen() {
    dtmf::supervisor_keys_switch_to_whisper_barge_and_back_to_listen(&Setup::loopback());
}

#[test]
fn customer_and_agent_keys_are_relayed_to_each_other_never_to_the_supervisor() {
    dtmf::customer_and_agent_keys_are_relayed_to_each_other_never_to_the_supervisor(
        &Setup::loopback(),
    );
}
