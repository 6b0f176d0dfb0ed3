//! The AF_XDP backend end to end (issue 3, acceptance): the daemon runs in a network namespace
//! on one end of a veth pair, its phones in another namespace on the other end, and the whole
//! suite of `earshot_tests::suite` runs with `backend = afxdp` and, over the same kind of veth,
//! with io_uring: the same scenarios, the same assertions, both backends.
//!
//! Besides the suite: non-media traffic to the same interface while the XDP program is attached
//! (TCP to the API, ICMP echo, UDP outside the media range), the program attached for the
//! daemon's life only, backend selection (`auto`), clear errors for a missing interface or too
//! few queues, and two workers on a two-queue veth.
//!
//! Every test makes namespaces of its own (deleted when it ends, also on failure), so they run
//! in parallel. They need root: a plain binary (`harness = false`) runs them through
//! `earshot_tests::needs_root`, so without root each reports *ignored*, and fails under
//! `CI=true`.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use controlplane::config::BackendKind;
use dataplane::engine::Backend;
use earshot_tests::api::Api;
use earshot_tests::daemon::TestDaemon;
use earshot_tests::needs_root;
use earshot_tests::scenario::{Mode, Rig, RigOptions, Step};
use earshot_tests::setup::{Setup, on_veth, on_veth_with};
use earshot_tests::verdict::{Report, check_matrix, check_privacy};

/// One test per scenario of the suite, each on a veth pair of its own with `$backend`, named
/// `$prefix::<scenario>`.
macro_rules! scenarios_on_veth {
    ($backend:expr, $prefix:literal; $($group:ident :: $name:ident),* $(,)?) => {
        vec![$(
            needs_root::trial(concat!($prefix, "::", stringify!($name)), || {
                on_veth($backend, earshot_tests::suite::$group::$name)
            })
        ),*]
    };
}

fn main() {
    // The suite with AF_XDP, then with io_uring over the same kind of veth: both backends
    // judged in namespaces.
    let mut trials = earshot_tests::each_scenario!(scenarios_on_veth, BackendKind::AfXdp, "afxdp");
    trials.extend(earshot_tests::each_scenario!(
        scenarios_on_veth,
        BackendKind::Uring,
        "uring_on_veth"
    ));
    trials.extend(earshot_tests::root_trials![
        the_xdp_program_is_attached_for_the_daemons_life_only,
        non_media_traffic_reaches_the_kernel_while_calls_run,
        auto_chooses_afxdp_where_it_can,
        a_missing_interface_is_an_error_with_afxdp_and_a_fallback_with_auto,
        too_few_queues_is_an_error_with_afxdp_and_a_fallback_with_auto,
        two_workers_on_a_two_queue_veth,
    ]);
    needs_root::main(trials);
}

const DWELL: Duration = Duration::from_millis(800);

/// The backend the daemon runs, with the setup in the message.
fn assert_backend(daemon: &TestDaemon, setup: &Setup, want: Backend) {
    assert_eq!(
        daemon.backend(),
        want,
        "the engine runs {:?} ({})",
        daemon.backend(),
        setup.describe()
    );
}

fn the_xdp_program_is_attached_for_the_daemons_life_only() {
    on_veth(BackendKind::AfXdp, |setup| {
        let veth = setup.veth().expect("a veth setup");
        assert!(
            !veth.xdp_attached(),
            "XDP attached before the daemon started:\n{}",
            veth.appliance_link()
        );
        let daemon = TestDaemon::start_in(setup, |_| {});
        assert_backend(&daemon, setup, Backend::AfXdp);
        assert!(
            veth.xdp_attached(),
            "no XDP program on {} while the daemon runs:\n{}",
            veth.appliance_if,
            veth.appliance_link()
        );
        drop(daemon);
        assert!(
            !veth.xdp_attached(),
            "XDP program left on {} after shutdown:\n{}",
            veth.appliance_if,
            veth.appliance_link()
        );
        // And the next start is not blocked by anything the first left behind.
        let again = TestDaemon::start_in(setup, |_| {});
        assert_backend(&again, setup, Backend::AfXdp);
    });
}

/// While calls run over AF_XDP, everything that is not media reaches the kernel as usual: the
/// API over TCP, ICMP echo, UDP to a port outside the media range (and ARP, without which none
/// of it would work); and the media keeps flowing.
fn non_media_traffic_reaches_the_kernel_while_calls_run() {
    on_veth(BackendKind::AfXdp, |setup| {
        let veth = setup.veth().expect("a veth setup");
        let daemon = TestDaemon::start_in(setup, |_| {});
        assert_backend(&daemon, setup, Backend::AfXdp);
        // A kernel UDP socket of the appliance's, below the media range.
        let port_min = controlplane::Config::default().media.port_min;
        let kernel_udp = veth
            .in_appliance(|| UdpSocket::bind(SocketAddr::from((veth.appliance_ip, port_min - 7))))
            .expect("bind a kernel UDP socket in the appliance namespace");
        kernel_udp
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();

        let mut rig = Rig::start_on(setup, daemon, RigOptions::default());
        rig.run(&[(Step::Supervise, DWELL), (Step::Mode(Mode::Whisper), DWELL)]);
        let mut report = Report::new(rig.t0);

        assert!(
            veth.xdp_attached(),
            "the XDP program must be attached for this test to mean anything:\n{}",
            veth.appliance_link()
        );
        for _ in 0..3 {
            // A client of its own each time: a new TCP connection, handshake included.
            let fresh = Api::confined(rig.daemon.http_addr, vec![veth.peer_id()]);
            let r = fresh.get("/healthz");
            report.check(r.status == 200, || {
                format!(
                    "GET /healthz over TCP from the peer: HTTP {} {}",
                    r.status, r.text
                )
            });
        }
        match veth.ping_appliance(2, Duration::from_secs(1)) {
            Ok(n) => report.check(n == 2, || {
                format!("ICMP echo to {}: {n} of 2 answered", veth.appliance_ip)
            }),
            Err(e) => report.fail(format!("ICMP echo to {}: {e}", veth.appliance_ip)),
        }
        let sender = UdpSocket::bind(SocketAddr::from((veth.peer_ip, 0))).unwrap();
        let kernel_addr = kernel_udp.local_addr().unwrap();
        sender.send_to(b"not media", kernel_addr).unwrap();
        let mut buf = [0u8; 64];
        match kernel_udp.recv_from(&mut buf) {
            Ok((n, from)) => report.check(&buf[..n] == b"not media", || {
                format!("the kernel socket received {:?} from {from}", &buf[..n])
            }),
            Err(e) => report.fail(format!(
                "UDP to {kernel_addr} (outside the media range) never reached the kernel's socket: {e}"
            )),
        }

        rig.dwell(DWELL);
        let rec = rig.finish();
        report.note(rec.health.clone());
        check_matrix(&mut report, &rec);
        check_privacy(&mut report, &rec);
        report.finish();
    });
}

/// `auto` on an interface that can do AF_XDP runs AF_XDP.
fn auto_chooses_afxdp_where_it_can() {
    on_veth(BackendKind::Auto, |setup| {
        let daemon = TestDaemon::start_in(setup, |_| {});
        assert_backend(&daemon, setup, Backend::AfXdp);
        assert!(setup.veth().unwrap().xdp_attached());
    });
}

/// `afxdp` on an interface that does not exist: an error naming it, not a panic; `auto`: io_uring,
/// and the calls work.
fn a_missing_interface_is_an_error_with_afxdp_and_a_fallback_with_auto() {
    on_veth(BackendKind::AfXdp, |setup| {
        let nope = |c: &mut controlplane::Config| c.engine.interface = Some("nope0".into());
        match TestDaemon::try_start_in(setup, nope) {
            Ok(d) => panic!(
                "backend afxdp on interface nope0 started ({:?})",
                d.backend()
            ),
            Err(e) => {
                let text = format!("{e:#}");
                assert!(text.contains("nope0"), "the error must name nope0: {text}");
                assert!(!text.contains('\n'), "one line: {text:?}");
            }
        }
        let auto = Setup {
            backend: BackendKind::Auto,
            ..setup.clone()
        };
        let daemon = TestDaemon::start_in(&auto, nope);
        assert_backend(&daemon, &auto, Backend::Uring);
        assert!(!setup.veth().unwrap().xdp_attached());
        relay_check(&auto, daemon);
    });
}

/// Two workers on a one-queue veth: AF_XDP needs a queue per worker, so `afxdp` is an error
/// that says so and `auto` falls back to io_uring.
fn too_few_queues_is_an_error_with_afxdp_and_a_fallback_with_auto() {
    on_veth(BackendKind::AfXdp, |setup| {
        let two = Setup {
            workers: 2,
            ..setup.clone()
        };
        match TestDaemon::try_start_in(&two, |_| {}) {
            Ok(d) => panic!(
                "2 afxdp workers on a 1-queue veth started ({:?})",
                d.backend()
            ),
            Err(e) => {
                let text = format!("{e:#}");
                let veth = setup.veth().unwrap();
                assert!(
                    text.contains(&veth.appliance_if) && text.contains("queue"),
                    "the error must name the interface and its queues: {text}"
                );
            }
        }
        assert!(!setup.veth().unwrap().xdp_attached(), "left attached");
        let auto = Setup {
            backend: BackendKind::Auto,
            ..two
        };
        let daemon = TestDaemon::start_in(&auto, |_| {});
        assert_backend(&daemon, &auto, Backend::Uring);
        relay_check(&auto, daemon);
    });
}

/// Two workers, each owning one queue of a two-queue veth. The peer's flows spread over both
/// queues, so frames for one worker's call also arrive on the other's queue and are handed
/// over: the matrix must hold across whisper and barge all the same.
fn two_workers_on_a_two_queue_veth() {
    on_veth_with(2, BackendKind::AfXdp, |setup| {
        let daemon = TestDaemon::start_in(setup, |_| {});
        assert_backend(&daemon, setup, Backend::AfXdp);
        // Calls go to the least loaded worker: a first, silent call takes worker 0, so the
        // rig's call runs on worker 1.
        daemon
            .api
            .post("/v1/calls", &serde_json::json!({}))
            .expect(201, "POST /v1/calls (the first worker's call)");
        let mut rig = Rig::start_on(setup, daemon, RigOptions::default());
        rig.run(&[
            (Step::Supervise, Duration::from_millis(50)),
            (Step::Mode(Mode::Whisper), DWELL),
            (Step::Mode(Mode::Barge), DWELL),
        ]);
        let rec = rig.finish();
        let mut report = Report::for_recording(&rec);
        let metrics = rig.daemon.api.metrics();
        report.note(format!(
            "per-worker and per-queue counters: {:?}",
            metrics
                .lines()
                .filter(|l| !l.starts_with('#')
                    && (l.contains("worker=\"") || l.contains("queue=\""))
                    && !l.ends_with(" 0"))
                .collect::<Vec<_>>()
        ));
        check_matrix(&mut report, &rec);
        check_privacy(&mut report, &rec);
        report.finish();
    });
}

/// A short unsupervised call on `daemon`: both parties hear each other.
fn relay_check(setup: &Setup, daemon: TestDaemon) {
    let mut rig = Rig::start_on(setup, daemon, RigOptions::default());
    rig.dwell(DWELL);
    let rec = rig.finish();
    let mut report = Report::for_recording(&rec);
    check_matrix(&mut report, &rec);
    report.finish();
}
