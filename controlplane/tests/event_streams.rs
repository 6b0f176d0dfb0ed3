//! Many open `GET /v1/events` streams against the real `earshotd` process (docs/api.md,
//! Events): every stream gets the events of a burst of writes, and the daemon's thread count
//! stays under a fixed bound however many streams are open (one feed reads the log for all of
//! them; a stream never takes a thread of its own).
//!
//! The daemon runs with an in-memory database on loopback ports the OS chose (HTTP on port 0,
//! 100 media ports from [`earshot_tests::ports`]).

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use earshot_tests::api::{ADMIN_TOKEN, Api};
use earshot_tests::process::DaemonProcess;
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const EARSHOTD: &str = env!("CARGO_BIN_EXE_earshotd");
/// How long a start may take to answer `/healthz` (a debug build, a loaded machine).
const START_MAX: Duration = Duration::from_secs(20);
/// Open streams: more than the daemon would ever have threads.
const STREAMS: usize = 500;
/// Calls created while they are open (two media ports each, RTP and RTCP: within the range).
const CALLS: usize = 10;
/// The daemon's threads may not exceed this, whatever `STREAMS` is: the control plane's
/// runtime (2) and its blocking pool (the event feed, the streams' bounded store reads, the
/// requests), the data plane's workers and the process's main thread.
const THREADS_MAX: usize = 40;
/// How long every stream has to receive the burst (a debug build, 500 streams, 2 cores).
const DELIVERY_MAX: Duration = Duration::from_secs(60);

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the daemon's /proc entry")
        .count()
}

/// An open event stream: the raw bytes received so far (headers included).
struct Open {
    socket: TcpStream,
    received: Vec<u8>,
}

impl Open {
    async fn connect(addr: SocketAddr) -> Open {
        let mut socket = TcpStream::connect(addr).await.expect("connect");
        let request = format!(
            "GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n\
             Accept: text/event-stream\r\n\r\n"
        );
        socket.write_all(request.as_bytes()).await.expect("send");
        let mut open = Open {
            socket,
            received: Vec::new(),
        };
        open.read_until(b"\r\n\r\n", Duration::from_secs(30)).await;
        let head = String::from_utf8_lossy(&open.received).into_owned();
        assert!(
            head.starts_with("HTTP/1.1 200") && head.contains("text/event-stream"),
            "{head}"
        );
        open
    }

    /// Reads until `needle` has been received; panics after `wait`.
    async fn read_until(&mut self, needle: &[u8], wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 16 * 1024];
        while !self.received.windows(needle.len()).any(|w| w == needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = tokio::time::timeout(left, self.socket.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{:?} not received within {wait:?}",
                        String::from_utf8_lossy(needle)
                    )
                })
                .expect("read");
            assert!(n > 0, "the stream ended");
            self.received.extend_from_slice(&buf[..n]);
        }
    }
}

#[tokio::test(flavor = "current_thread")]
async fn open_streams_cost_no_threads_and_all_get_every_event() {
    let dir = tempfile::tempdir().unwrap();
    let (port_min, port_max) = earshot_tests::ports::udp_range(100);
    let mut command = Command::new(EARSHOTD);
    command.current_dir(dir.path()).args([
        "--http-listen",
        "127.0.0.1:0",
        // NG is not what this test exercises: off (parallel daemons never share its port).
        "--ng-listen",
        "",
        "--media-ip",
        "127.0.0.1",
        "--port-min",
        &port_min.to_string(),
        "--port-max",
        &port_max.to_string(),
        "--admin-token",
        ADMIN_TOKEN,
        "--db",
        ":memory:",
    ]);
    let mut daemon = DaemonProcess::spawn("earshotd (event streams)", command);
    let started = tokio::task::spawn_blocking(move || {
        let result = daemon.wait_listening(START_MAX).and_then(|addr| {
            daemon
                .wait_healthy(&Api::new(addr), START_MAX)
                .map(|()| addr)
        });
        (daemon, result)
    })
    .await
    .unwrap();
    let daemon = started.0;
    let addr = started.1.unwrap_or_else(|e| panic!("start: {e}"));
    let idle = threads(daemon.pid());

    let mut streams = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        streams.push(Open::connect(addr).await);
    }
    let open = threads(daemon.pid());

    // A burst of writes while every stream is open.
    let calls = tokio::task::spawn_blocking(move || {
        let api = Api::new(addr);
        (0..CALLS)
            .map(|i| {
                let call = api
                    .post("/v1/calls", &json!({"agent_id": format!("ag-{i}")}))
                    .expect(201, "POST /v1/calls");
                call["id"].as_str().unwrap().to_owned()
            })
            .collect::<Vec<String>>()
    })
    .await
    .unwrap();

    // Every stream gets every call's creation (the last one's last).
    let deadline = Instant::now() + DELIVERY_MAX;
    for stream in &mut streams {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .read_until(calls.last().unwrap().as_bytes(), left)
            .await;
        let text = String::from_utf8_lossy(&stream.received);
        for call in &calls {
            assert!(text.contains(call.as_str()), "{call} missing: {text}");
        }
    }
    let busy = threads(daemon.pid());
    eprintln!(
        "daemon threads: {idle} idle, {open} with {STREAMS} streams open, {busy} after the burst"
    );
    assert!(
        open.max(busy) <= THREADS_MAX,
        "{STREAMS} streams took the daemon from {idle} to {} threads (at most {THREADS_MAX})",
        open.max(busy)
    );
    drop(streams);
    drop(daemon);
}
