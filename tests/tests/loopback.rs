//! The whole suite of [`earshot_tests::suite`] on loopback with the io_uring backend, one test
//! per scenario (`afxdp.rs` runs the same scenarios over a veth pair with both backends):
//!
//! - `modes`: the hearing matrix (docs/design.md §1.2), mode by mode and across mode sequences;
//! - `privacy`: the customer never hears a supervisor, under loss and reordering;
//! - `continuity`: one continuous RTP stream per output across every mode change;
//! - `source`: strict and latching legs drop and count a wrong source;
//! - `dtmf`: RFC 4733 key presses, supervisor keys switch modes, party keys are relayed;
//! - `input`: bad media input (other G.711 law, RFC 4733 lengths, malformed RTCP) is dropped
//!   and counted per leg; and, on loopback only (a veth's MTU fragments them), every
//!   oversized datagram size costs no genuine packet.

/// One test per scenario of the suite, each with a daemon of its own on loopback.
macro_rules! scenarios_on_loopback {
    (; $($group:ident :: $name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                earshot_tests::suite::$group::$name(&earshot_tests::setup::Setup::loopback());
            }
        )*
    };
}

earshot_tests::each_scenario!(scenarios_on_loopback,);

/// Every oversize from 1,501 to 65,507 bytes, both ways (issue 10, point 1). Loopback only:
/// see the scenario's documentation.
#[test]
fn oversized_datagrams_from_the_right_source_cost_no_genuine_packet() {
    earshot_tests::suite::input::oversized_datagrams_from_the_right_source_cost_no_genuine_packet(
        &earshot_tests::setup::Setup::loopback(),
    );
}
