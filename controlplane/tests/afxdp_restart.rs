//! Start, stop, `kill -9` and restart of the real `earshotd` with `backend = afxdp` on a veth
//! in a network namespace (issue 3, acceptance): the XDP program is attached while the daemon
//! runs and gone after a graceful stop, and nothing a killed daemon leaves behind blocks the
//! next start, which serves calls with media end to end.
//!
//! Needs root (namespaces, XDP): a plain binary (`harness = false`) runs the test through
//! `earshot_tests::needs_root`, so without root it reports *ignored*, and fails under `CI=true`.

use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use earshot_tests::api::Api;
use earshot_tests::audio::{AGENT_TONE, CUSTOMER_TONE};
use earshot_tests::endpoint::{Endpoint, SendSpec};
use earshot_tests::netns::{self, Veth};
use earshot_tests::process::{DaemonProcess, HTTP_PORT, earshotd, earshotd_api};
use earshot_tests::scenario::addr_field;
use earshot_tests::verdict::Levels;
use serde_json::json;

const EARSHOTD: &str = env!("CARGO_BIN_EXE_earshotd");
/// How long a start may take to answer `/healthz` (a debug build, a loaded machine).
const START_MAX: Duration = Duration::from_secs(15);
/// How long a graceful stop may take (it waits up to 5 s for open HTTP connections).
const STOP_MAX: Duration = Duration::from_secs(10);

fn start(veth: &Veth, api: &Api, which: &str) -> DaemonProcess {
    let mut d = earshotd(
        EARSHOTD,
        veth,
        &[],
        &["--backend", "afxdp", "--interface", &veth.appliance_if],
    );
    if let Err(e) = d.wait_healthy(api, START_MAX) {
        panic!("{which} start: {e}");
    }
    assert!(
        veth.xdp_attached(),
        "{which} start: healthy but no XDP program on {}:\n{}",
        veth.appliance_if,
        veth.appliance_link()
    );
    assert!(
        d.output().contains(r#"backend="afxdp""#),
        "{which} start: the daemon does not say it runs afxdp:\n{}",
        d.output()
    );
    d
}

/// SIGTERM: the daemon exits 0 within [`STOP_MAX`] and takes its XDP program with it.
fn stop(mut d: DaemonProcess, veth: &Veth, which: &str) {
    d.terminate();
    let status = d.wait_exit(STOP_MAX);
    assert!(
        status.is_some_and(|s| s.success()),
        "{which}: SIGTERM must end the daemon with status 0, got {status:?}:\n{}",
        d.output()
    );
    assert!(
        !veth.xdp_attached(),
        "{which}: XDP program still on {} after a graceful stop:\n{}",
        veth.appliance_if,
        veth.appliance_link()
    );
}

/// A call whose parties, in the peer namespace, send tones for a while: each must receive the
/// other's tone, relayed from the call's local addresses.
fn media_flows(veth: &Veth, api: &Api) {
    let ip = veth.peer_ip.into();
    let mut customer = Endpoint::bind_on("customer", ip);
    let mut agent = Endpoint::bind_on("agent", ip);
    let call = api
        .post(
            "/v1/calls",
            &json!({
                "customer": {"remote": customer.local_addr().to_string()},
                "agent": {"remote": agent.local_addr().to_string()},
            }),
        )
        .expect(201, "POST /v1/calls");
    let customer_local = addr_field(&call, "/legs/customer/local");
    let agent_local = addr_field(&call, "/legs/agent/local");
    customer.start_sending(SendSpec::tone(customer_local, CUSTOMER_TONE));
    agent.start_sending(SendSpec::tone(agent_local, AGENT_TONE));
    // 25 packets each way (half a second of audio), or give up after 5 s.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (customer.received_count() < 25 || agent.received_count() < 25)
        && Instant::now() < deadline
    {
        thread::sleep(Duration::from_millis(20));
    }
    customer.stop_sending();
    agent.stop_sending();
    for (who, endpoint, from, tone, sent) in [
        ("agent", &agent, agent_local, CUSTOMER_TONE, &customer),
        ("customer", &customer, customer_local, AGENT_TONE, &agent),
    ] {
        let got = endpoint.received();
        let from_call = got.iter().filter(|p| p.from == from).count();
        let level = Levels::of(&got).db(tone);
        assert!(
            from_call >= 25 && level.abs() < 10.0,
            "the {who} received {} packets ({from_call} from {from}) with {} at {level:.1} dB while \
             the other party sent {:?}; call {call}",
            got.len(),
            tone.name,
            sent.sender_stats()
        );
    }
}

fn main() {
    earshot_tests::needs_root::main(earshot_tests::root_trials![
        start_stop_kill_9_and_restart_leave_nothing_in_the_way
    ]);
}

fn start_stop_kill_9_and_restart_leave_nothing_in_the_way() {
    netns::assert_root();
    let veth = Veth::create();
    veth.in_peer(|| {
        let api = earshotd_api(&veth);

        let first = start(&veth, &api, "first");
        api.post("/v1/calls", &json!({}))
            .expect(201, "POST /v1/calls on the first daemon");
        stop(first, &veth, "first");

        let mut second = start(&veth, &api, "second");
        let status = second.kill9();
        assert!(!status.success(), "kill -9 status {status}");
        // A native attachment is a bpf_link, released with the process; a generic one stays
        // until the next start cleans it up. Either way the next start must succeed.
        println!(
            "after kill -9 the interface shows an XDP program: {}",
            veth.xdp_attached()
        );
        assert_no_daemon(&veth);

        let third = start(&veth, &api, "third (right after kill -9)");
        media_flows(&veth, &api);
        stop(third, &veth, "third");
    });
}

/// Nothing answers on the daemon's port any more: the killed daemon is really gone.
fn assert_no_daemon(veth: &Veth) {
    let addr = SocketAddr::from((veth.appliance_ip, HTTP_PORT));
    veth.assert_inside();
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "something still accepts on {addr} after kill -9"
    );
}
