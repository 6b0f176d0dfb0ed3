//! Source checking: strict and latching legs drop and count a wrong source (SPEC.md §1): the
//! scenarios of [`earshot_tests::suite::source`] on loopback with the io_uring backend (`afxdp.rs`
//! runs them over a veth pair with both backends).

use earshot_tests::setup::Setup;
use earshot_tests::suite::source;

#[test]
fn strict_leg_drops_and_counts_packets_from_a_wrong_source() {
    source::strict_leg_drops_and_counts_packets_from_a_wrong_source(&Setup::loopback());
}

#[test]
fn latching_leg_locks_to_its_first_source_and_drops_a_second() {
    source::latching_leg_locks_to_its_first_source_and_drops_a_second(&Setup::loopback());
}
