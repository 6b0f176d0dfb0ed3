//! The listener with raw datagrams over loopback and a dispatch of the test's own (the real
//! commands are exercised end to end in tests/ng.rs).

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use super::*;

/// Bodies starting with `block` wait for the gate to open.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    fn wait(&self) {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.opened.notify_all();
    }
}

struct Fixture {
    addr: SocketAddr,
    metrics: Metrics,
    runs: Arc<AtomicUsize>,
    gate: Arc<Gate>,
    stop: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// A listener on 127.0.0.1 whose dispatch answers `run <n>: <body>` and counts its runs.
fn start(allow: &[&str], in_flight_max: usize) -> Fixture {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Gate::default());
    let dispatch: Dispatch = {
        let (runs, gate) = (Arc::clone(&runs), Arc::clone(&gate));
        Arc::new(move |body: &[u8]| {
            let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
            if body.starts_with(b"block") {
                gate.wait();
            }
            let mut out = format!("run {n}: ").into_bytes();
            out.extend_from_slice(body);
            Answer {
                body: out,
                command: "ping",
                result: "pong",
            }
        })
    };
    let options = Options {
        allow: allow.iter().map(|n| n.parse().unwrap()).collect(),
        in_flight_max,
    };
    let (stop, stopped) = oneshot::channel();
    let served = tokio::spawn(serve(socket, options, dispatch, metrics.clone(), stopped));
    Fixture {
        addr,
        metrics,
        runs,
        gate,
        stop: Some(stop),
        served,
    }
}

/// A client socket on `ip`, connected to the listener like the rtpengine modules' sockets: it
/// only receives datagrams from the address it sent to.
async fn client(ip: [u8; 4], listener: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::from(ip), 0)))
        .await
        .unwrap();
    socket.connect(listener).await.unwrap();
    socket
}

/// The next datagram, waited for at most 10 s (a bound, not a timing claim).
async fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    let len = tokio::time::timeout(Duration::from_secs(10), socket.recv(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    buf.truncate(len);
    buf
}

async fn ask(socket: &UdpSocket, datagram: &[u8]) -> String {
    socket.send(datagram).await.unwrap();
    String::from_utf8(recv(socket).await).unwrap()
}

/// Polls `cond` every 5 ms for up to 10 s.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..2000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what}: not reached within 10 s");
}

const LOOPBACK: &[&str] = &["127.0.0.0/8", "::1"];

#[tokio::test]
async fn the_answer_carries_the_cookie_and_comes_from_the_address_asked() {
    let f = start(LOOPBACK, IN_FLIGHT_MAX);
    // Connected: a reply from any other address would not be received at all.
    let c = client([127, 0, 0, 1], f.addr).await;
    assert_eq!(
        ask(&c, b"0_123_7 d7:command4:pinge").await,
        "0_123_7 run 1: d7:command4:pinge"
    );
    // Only the first space separates: the body keeps its own.
    assert_eq!(ask(&c, b"x  two spaces").await, "x run 2:  two spaces");
    assert_eq!(f.metrics.ng_requests("ping", "pong"), 2);
    assert!(
        f.metrics
            .render()
            .unwrap()
            .contains("earshot_ng_answer_duration_seconds_count{command=\"ping\"} 2"),
        "the latency histogram counts every answer"
    );
}

#[tokio::test]
async fn a_resent_cookie_gets_the_first_answer_without_a_second_run() {
    let f = start(LOOPBACK, IN_FLIGHT_MAX);
    let c = client([127, 0, 0, 1], f.addr).await;
    let first = ask(&c, b"0_1_1 offer one").await;
    assert_eq!(first, "0_1_1 run 1: offer one");
    // The same cookie with another body: still the first answer, and no run.
    assert_eq!(ask(&c, b"0_1_1 offer two").await, first);
    assert_eq!(ask(&c, b"0_1_1 offer one").await, first);
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
    assert_eq!(f.metrics.ng_replays(), 2);
    assert_eq!(
        f.metrics.ng_requests("ping", "pong"),
        1,
        "replays are not runs"
    );
    // A new cookie runs; the same cookie from another source (another proxy) runs too.
    assert_eq!(ask(&c, b"0_1_2 offer one").await, "0_1_2 run 2: offer one");
    let other = client([127, 0, 0, 2], f.addr).await;
    assert_eq!(
        ask(&other, b"0_1_1 offer one").await,
        "0_1_1 run 3: offer one"
    );
}

#[tokio::test]
async fn a_resend_while_the_original_runs_gets_its_answer_when_ready() {
    let f = start(LOOPBACK, IN_FLIGHT_MAX);
    let c = client([127, 0, 0, 1], f.addr).await;
    c.send(b"0_2_1 block offer").await.unwrap();
    until("the original runs", || f.runs.load(Ordering::SeqCst) == 1).await;
    c.send(b"0_2_1 block offer").await.unwrap();
    // Datagrams are read in order: once a later one is answered, the resend has been seen.
    assert_eq!(ask(&c, b"0_2_2 ping").await, "0_2_2 run 2: ping");
    f.gate.open();
    let answer = "0_2_1 run 1: block offer";
    assert_eq!(String::from_utf8(recv(&c).await).unwrap(), answer);
    assert_eq!(String::from_utf8(recv(&c).await).unwrap(), answer);
    assert_eq!(f.runs.load(Ordering::SeqCst), 2, "the resend did not run");
    assert_eq!(f.metrics.ng_replays(), 1);
}

#[tokio::test]
async fn strangers_and_cookieless_datagrams_are_dropped_and_counted() {
    let f = start(&["127.0.0.2/32", "10.0.0.0/8"], IN_FLIGHT_MAX);
    let stranger = client([127, 0, 0, 3], f.addr).await;
    stranger.send(b"0_3_1 ping").await.unwrap();
    let friend = client([127, 0, 0, 2], f.addr).await;
    friend.send(b"no-cookie-here").await.unwrap();
    friend.send(b" empty cookie").await.unwrap();
    // Loopback delivers in send order: the first answer the friend gets is this one's.
    assert_eq!(ask(&friend, b"0_3_2 ping").await, "0_3_2 run 1: ping");
    assert_eq!(f.metrics.ng_drops("not_allowed"), 1);
    assert_eq!(f.metrics.ng_drops("no_cookie"), 2);
    assert_eq!(f.runs.load(Ordering::SeqCst), 1);
    let mut buf = [0u8; 64];
    assert!(
        stranger.try_recv(&mut buf).is_err(),
        "the stranger got no answer"
    );
}

#[tokio::test]
async fn beyond_the_commands_in_flight_a_datagram_is_dropped_and_the_resend_served() {
    let f = start(LOOPBACK, 1);
    let c = client([127, 0, 0, 1], f.addr).await;
    c.send(b"0_4_1 block").await.unwrap();
    until("the first runs", || f.runs.load(Ordering::SeqCst) == 1).await;
    c.send(b"0_4_2 ping").await.unwrap();
    until("the second is dropped", || f.metrics.ng_drops("busy") == 1).await;
    // A resend of the running one is not a new command: it waits, it is not dropped.
    c.send(b"0_4_1 block").await.unwrap();
    f.gate.open();
    assert_eq!(
        String::from_utf8(recv(&c).await).unwrap(),
        "0_4_1 run 1: block"
    );
    assert_eq!(
        String::from_utf8(recv(&c).await).unwrap(),
        "0_4_1 run 1: block"
    );
    assert_eq!(f.metrics.ng_drops("busy"), 1);
    // The module resends the dropped one: now it runs.
    assert_eq!(ask(&c, b"0_4_2 ping").await, "0_4_2 run 2: ping");
}

#[tokio::test]
async fn stopping_answers_the_commands_already_running() {
    let mut f = start(LOOPBACK, IN_FLIGHT_MAX);
    let c = client([127, 0, 0, 1], f.addr).await;
    c.send(b"0_5_1 block").await.unwrap();
    until("it runs", || f.runs.load(Ordering::SeqCst) == 1).await;
    f.stop.take().unwrap().send(()).unwrap();
    f.gate.open();
    assert_eq!(
        String::from_utf8(recv(&c).await).unwrap(),
        "0_5_1 run 1: block"
    );
    tokio::time::timeout(Duration::from_secs(10), &mut f.served)
        .await
        .expect("the listener stops")
        .unwrap()
        .unwrap();
}

#[test]
fn answers_are_kept_at_least_one_generation() {
    let t0 = Instant::now();
    let key = |cookie: &str| -> Key {
        (
            SocketAddr::from((IpAddr::from([127, 0, 0, 1]), 40000)),
            cookie.as_bytes().to_vec(),
        )
    };
    let answer: Arc<[u8]> = Arc::from(&b"a d6:result2:oke"[..]);
    let mut cache = Cache::new(t0);
    let late = t0 + CACHE_GENERATION - Duration::from_millis(1);
    assert_eq!(cache.arrive(key("a"), late), Seen::New);
    assert_eq!(cache.arrive(key("a"), late), Seen::Running);
    assert_eq!(cache.finish(key("a"), Some(Arc::clone(&answer)), late), 1);
    // Answered just before the cache aged: still there a whole generation later.
    for at in [late, t0 + CACHE_GENERATION, late + CACHE_GENERATION] {
        assert_eq!(
            cache.arrive(key("a"), at),
            Seen::Done(Arc::clone(&answer)),
            "{at:?}"
        );
    }
    // Two generations on, forgotten: it would run again.
    assert_eq!(cache.arrive(key("a"), t0 + 2 * CACHE_GENERATION), Seen::New);
    // A command that failed without an answer is forgotten at once.
    assert_eq!(cache.arrive(key("b"), t0), Seen::New);
    assert_eq!(cache.finish(key("b"), None, t0), 0);
    assert_eq!(cache.arrive(key("b"), t0), Seen::New);
}
