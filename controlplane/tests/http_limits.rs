//! docs/api.md, Connection limits, through the real daemon (the `earshotd` binary): slow and idle
//! HTTP clients, however many, never lock out an operator.
//!
//! Each test runs its own daemon on loopback ports the OS chose (HTTP on port 0, 20 media ports
//! from [`earshot_tests::ports`]), with short timeouts so that a slow client is closed in about
//! a second. Every wait is a bounded poll.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use earshot_tests::api::{ADMIN_TOKEN, Api};
use earshot_tests::process::DaemonProcess;
use serde_json::Value;

const EARSHOTD: &str = env!("CARGO_BIN_EXE_earshotd");
/// How long a start may take to answer `/healthz` (a debug build, a loaded machine).
const START_MAX: Duration = Duration::from_secs(20);
/// The bound of every poll for something the daemon does after a 1–2 s timeout.
const WAIT_MAX: Duration = Duration::from_secs(15);

/// Starts `earshotd` on an HTTP port and 20 media ports the OS chose, with `args` after those,
/// through `wrapper` (e.g. `prlimit …`) when not empty; returns it with its HTTP address.
fn start(wrapper: &[&str], args: &[&str]) -> (DaemonProcess, SocketAddr) {
    let (port_min, port_max) = earshot_tests::ports::udp_range(20);
    let (program, wrapper_args) = match wrapper.split_first() {
        Some((program, rest)) => (*program, rest),
        None => (EARSHOTD, &[][..]),
    };
    let mut command = Command::new(program);
    if !wrapper.is_empty() {
        command.args(wrapper_args).arg(EARSHOTD);
    }
    command
        .args(["--http-listen", "127.0.0.1:0", "--media-ip", "127.0.0.1"])
        // NG is not what these tests exercise: off, so parallel daemons never share its port.
        .args(["--ng-listen", ""])
        .args(["--port-min", &port_min.to_string()])
        .args(["--port-max", &port_max.to_string()])
        .args(["--admin-token", ADMIN_TOKEN, "--db", ":memory:"])
        .args(args);
    let mut daemon = DaemonProcess::spawn("earshotd", command);
    let http = daemon
        .wait_listening(START_MAX)
        .unwrap_or_else(|e| panic!("start: {e}"));
    if let Err(e) = daemon.wait_healthy(&Api::new(http), START_MAX) {
        panic!("start: {e}");
    }
    (daemon, http)
}

fn connect(http: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    stream
}

/// Whether the server has closed `stream`: a read returns end of file or a reset. Data the
/// server sent before closing is appended to `got`.
fn is_closed(stream: &mut TcpStream, got: &mut Vec<u8>) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// Polls until the server closes `stream` (calling `between` between polls, e.g. to trickle
/// more bytes); returns what it sent first. Panics after [`WAIT_MAX`].
fn wait_closed(
    stream: &mut TcpStream,
    what: &str,
    mut between: impl FnMut(&mut TcpStream),
) -> Vec<u8> {
    let deadline = Instant::now() + WAIT_MAX;
    let mut got = Vec::new();
    while !is_closed(stream, &mut got) {
        assert!(
            Instant::now() < deadline,
            "{what}: still open after {WAIT_MAX:?}; got {:?}",
            String::from_utf8_lossy(&got)
        );
        between(stream);
    }
    got
}

/// The status and the JSON body of a raw HTTP/1.1 answer.
fn parse_answer(raw: &[u8], what: &str) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{what}: no HTTP answer in {text:?}"));
    let status = head[9..12].parse().unwrap();
    let body = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{what}: body is not JSON ({e}): {text:?}"));
    (status, body)
}

/// Reads one answer with a `content-length` from a kept-alive connection.
fn read_answer(stream: &mut TcpStream, what: &str) -> (u16, Value) {
    let deadline = Instant::now() + WAIT_MAX;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or_else(|| panic!("{what}: no content-length in {head:?}"));
            if body.len() >= len {
                return parse_answer(&got, what);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{what}: no answer within {WAIT_MAX:?}; got {text:?}"
        );
        match stream.read(&mut buf) {
            Ok(0) => panic!("{what}: closed before answering; got {text:?}"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{what}: {e}; got {text:?}"),
        }
    }
}

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nhost: earshot\r\n\r\n";

#[test]
fn idle_slow_header_and_slow_body_connections_are_closed_after_their_timeouts() {
    let (_daemon, http) = start(
        &[],
        &[
            "--http-header-read-timeout-secs",
            "1",
            "--http-body-timeout-secs",
            "1",
            "--http-request-timeout-secs",
            "2",
        ],
    );

    // An event stream, open across every timeout below: it must outlive them all.
    let mut events = connect(http);
    write!(
        events,
        "GET /v1/events HTTP/1.1\r\nhost: earshot\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    )
    .unwrap();

    // Connected, never a byte sent.
    let mut idle = connect(http);
    let got = wait_closed(&mut idle, "idle connection", |_| {});
    assert!(got.is_empty(), "idle connection got {got:?}");

    // One request answered, then idle on keep-alive.
    let mut kept = connect(http);
    kept.write_all(HEALTHZ).unwrap();
    assert_eq!(read_answer(&mut kept, "kept-alive healthz").0, 200);
    wait_closed(&mut kept, "kept-alive idle connection", |_| {});

    // Slowloris: a header line every 100 ms, never the end of the head.
    let mut slow_head = connect(http);
    slow_head
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: earshot\r\n")
        .unwrap();
    let mut sent = 0;
    wait_closed(&mut slow_head, "slow header", |s| {
        sent += 1;
        let _ = write!(s, "x-slow-{sent}: 1\r\n");
    });

    // A declared 10 MB body that never comes: 408 in the JSON error shape, then closed.
    let mut no_body = connect(http);
    write!(
        no_body,
        "POST /v1/calls HTTP/1.1\r\nhost: earshot\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 10000000\r\n\r\n{{"
    )
    .unwrap();
    let got = wait_closed(&mut no_body, "declared body never sent", |_| {});
    let (status, body) = parse_answer(&got, "declared body never sent");
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");

    // A body trickled a byte every 100 ms (never 1 s apart): the request timeout ends it.
    let mut trickle = connect(http);
    write!(
        trickle,
        "POST /v1/calls HTTP/1.1\r\nhost: earshot\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: 1000\r\n\r\n"
    )
    .unwrap();
    let got = wait_closed(&mut trickle, "trickled body", |s| {
        let _ = s.write_all(b" ");
    });
    let (status, body) = parse_answer(&got, "trickled body");
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout", "{body}");

    // The stream, open for longer than every timeout, still delivers.
    let api = Api::new(http);
    let call = api
        .post("/v1/calls", &serde_json::json!({}))
        .expect(201, "POST /v1/calls");
    let id = call["id"].as_str().unwrap().to_owned();
    let deadline = Instant::now() + WAIT_MAX;
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains(&id) {
        assert!(
            !is_closed(&mut events, &mut got),
            "the event stream was closed: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            Instant::now() < deadline,
            "the event stream did not deliver {id}: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
}

#[test]
fn with_the_connection_cap_reached_an_operator_gets_in_once_a_slot_frees() {
    const CAP: usize = 20;
    let (daemon, http) = start(
        &[],
        &[
            "--http-max-connections",
            &CAP.to_string(),
            "--http-header-read-timeout-secs",
            "60",
        ],
    );
    // Each slow client is first served (so it holds a slot, not a place in the backlog), then
    // starts a next request's head and never finishes it.
    let mut slow: Vec<TcpStream> = (0..CAP)
        .map(|i| {
            let mut s = connect(http);
            s.write_all(HEALTHZ).unwrap();
            assert_eq!(read_answer(&mut s, &format!("slow client {i}")).0, 200);
            s.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ").unwrap();
            s
        })
        .collect();

    // Every slot is held: the operator's connection waits in the backlog, unanswered.
    let mut operator = connect(http);
    write!(
        operator,
        "GET /v1/calls HTTP/1.1\r\nhost: earshot\r\nauthorization: Bearer {ADMIN_TOKEN}\r\n\r\n"
    )
    .unwrap();
    thread::sleep(Duration::from_millis(500));
    let mut early = Vec::new();
    assert!(
        !is_closed(&mut operator, &mut early) && early.is_empty(),
        "served beyond the cap of {CAP}: {:?}",
        String::from_utf8_lossy(&early)
    );

    // One slow client leaves: the operator is served.
    drop(slow.pop());
    let (status, body) = read_answer(&mut operator, "operator's GET /v1/calls");
    assert_eq!(status, 200, "{body}");
    assert!(body["calls"].is_array(), "{body}");
    assert!(
        daemon.output().contains(&format!("max_connections={CAP}")),
        "the effective cap is not logged:\n{}",
        daemon.output()
    );
}

#[test]
fn a_low_fd_limit_caps_connections_and_the_daemon_never_runs_out() {
    const FDS: usize = 200;
    // 20 media ports and the reserve of 64 leave 116 connections of the configured 4,096.
    let (daemon, http) = start(
        &["prlimit", &format!("--nofile={FDS}:{FDS}"), "--"],
        &["--http-header-read-timeout-secs", "1"],
    );
    assert!(
        daemon.output().contains("max_connections=116"),
        "the cap was not fitted to {FDS} descriptors:\n{}",
        daemon.output()
    );
    // More slow clients than the daemon has descriptors; those beyond the cap and the backlog
    // may not even connect.
    let slow: Vec<TcpStream> = (0..FDS + 100)
        .filter_map(|_| {
            let mut s = TcpStream::connect_timeout(&http, Duration::from_millis(300)).ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ").ok()?;
            Some(s)
        })
        .collect();
    assert!(
        slow.len() > 116,
        "only {} slow clients connected",
        slow.len()
    );

    // The slow ones are closed a second after they are served; the operator gets in.
    let api = Api::new(http);
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        match api.try_request("GET", "/v1/calls", None) {
            Ok(r) if r.status == 200 => break,
            other => assert!(
                Instant::now() < deadline,
                "the operator was locked out: {other:?}"
            ),
        }
    }
    drop(slow);
    assert_eq!(api.get("/healthz").status, 200);
    let output = daemon.output();
    assert!(
        !output.contains("Too many open files"),
        "the daemon ran out of descriptors:\n{output}"
    );
}
