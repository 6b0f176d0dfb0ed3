//! Privacy under loss and reordering (SPEC.md §1): the scenarios of
//! [`earshot_tests::suite::privacy`] on loopback with the io_uring backend (`afxdp.rs` runs them
//! over a veth pair with both backends).

use earshot_tests::setup::Setup;
use earshot_tests::suite::privacy;

#[test]
fn customer_never_hears_supervisor_under_loss_and_reordering() {
    privacy::customer_never_hears_supervisor_under_loss_and_reordering(&Setup::loopback());
}

#[test]
fn rapid_transitions_never_leak_supervisor_to_customer() {
    privacy::rapid_transitions_never_leak_supervisor_to_customer(&Setup::loopback());
}
