//! The NG protocol end to end: a real daemon, NG datagrams over loopback UDP from a connected
//! socket (as the rtpengine modules send them), RTP endpoints on the legs the SDPs name.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use controlplane::ng::bencode::{self, Value};
use controlplane::ng::sdp;
use earshot_tests::api::{Api, metric_sum};
use earshot_tests::audio::{AGENT_TONE, CUSTOMER_TONE};
use earshot_tests::endpoint::{Endpoint, SendSpec};

/// An NG client like a Kamailio worker's: its own connected socket, so it only hears answers
/// sent from the address it asked.
struct Ng {
    socket: UdpSocket,
}

impl Ng {
    fn connect(addr: SocketAddr) -> Ng {
        Ng::connect_from("127.0.0.1", addr)
    }

    fn connect_from(ip: &str, addr: SocketAddr) -> Ng {
        let socket = UdpSocket::bind((ip, 0)).unwrap();
        socket.connect(addr).unwrap();
        // A bound on the wait, not a timing claim.
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Ng { socket }
    }

    /// Sends `<cookie> <bencoded request>` and returns the answer's dictionary, checking it
    /// carries the cookie.
    fn ask(&self, cookie: &str, request: &[(&str, Value)]) -> Value {
        let body = bencode::encode(&dict(request));
        self.raw(cookie, &body)
    }

    fn raw(&self, cookie: &str, body: &[u8]) -> Value {
        let mut datagram = format!("{cookie} ").into_bytes();
        datagram.extend_from_slice(body);
        self.socket.send(&datagram).unwrap();
        let mut buf = vec![0u8; 65_535];
        let len = self
            .socket
            .recv(&mut buf)
            .expect("an NG answer within 10 s");
        let answer = &buf[..len];
        let (got, doc) = controlplane::ng::message::split(answer).expect("a cookie");
        assert_eq!(
            got,
            cookie.as_bytes(),
            "the answer carries the request's cookie"
        );
        bencode::decode(doc).unwrap()
    }
}

fn s(v: &str) -> Value {
    Value::str(v)
}

fn dict(pairs: &[(&str, Value)]) -> Value {
    Value::Dict(
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect(),
    )
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    std::str::from_utf8(
        v.get(key.as_bytes())
            .and_then(Value::as_bytes)
            .unwrap_or_else(|| panic!("no {key:?} in {v:?}")),
    )
    .unwrap()
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| {
        v.get(k.as_bytes())
            .unwrap_or_else(|| panic!("no {k:?} on the way to {path:?} in {v:?}"))
    })
}

/// A phone's SDP: PCMU and telephone-event on `rtp`.
fn phone_sdp(rtp: SocketAddr, session: u64) -> String {
    format!(
        "v=0\r\no=phone {session} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
        ip = rtp.ip(),
        port = rtp.port()
    )
}

/// An offer or answer as Kamailio 5.6 sends it (docs/ng.md, The wire), keys in its order.
fn signal(
    command: &str,
    call_id: &str,
    from: &str,
    to: Option<&str>,
    sdp: &str,
) -> Vec<(&'static str, Value)> {
    let mut request = vec![
        ("supports", Value::List(vec![s("load limit")])),
        ("sdp", s(sdp)),
        ("ICE", s("remove")),
        (
            "replace",
            Value::List(vec![s("origin"), s("session-connection")]),
        ),
        ("transport-protocol", s("RTP/AVP")),
        ("call-id", s(call_id)),
        ("received-from", Value::List(vec![s("IP4"), s("127.0.0.1")])),
        ("from-tag", s(from)),
    ];
    if let Some(to) = to {
        request.push(("to-tag", s(to)));
    }
    request.push(("command", s(command)));
    request
}

/// The audio address an answer's SDP names.
fn media_of(answer: &Value) -> SocketAddr {
    assert_eq!(text(answer, "result"), "ok", "{answer:?}");
    let sdp = sdp::parse(text(answer, "sdp").as_bytes()).unwrap();
    sdp.audio().unwrap().remote
}

/// [`common::config`] with the token [`Api`] presents.
fn config() -> controlplane::Config {
    let mut config = common::config();
    config.auth.admin_token = Some(earshot_tests::api::ADMIN_TOKEN.to_owned());
    config
}

fn metric(api: &Api, name: &str, labels: &[(&str, &str)]) -> f64 {
    metric_sum(&api.metrics(), name, labels).unwrap_or(0.0)
}

#[test]
fn a_call_over_ng_relays_rtp_both_ways_and_answers_ping_query_list_delete() {
    let daemon = controlplane::spawn(config()).unwrap();
    let ng_addr = daemon.ng_addr.expect("NG is on by default");
    let api = Api::new(daemon.http_addr);
    let media_ip = config().media.ip;
    let ng = Ng::connect(ng_addr);

    // Kamailio's start-up ping.
    let pong = ng.ask("0_100_0", &[("command", s("ping"))]);
    assert_eq!(text(&pong, "result"), "pong");

    let mut caller = Endpoint::bind("caller");
    let mut callee = Endpoint::bind("callee");
    let call_id = "1-28469@127.0.0.1";
    let offer = ng.ask(
        "0_100_1",
        &signal(
            "offer",
            call_id,
            "caller-tag",
            None,
            &phone_sdp(caller.local_addr(), 1),
        ),
    );
    // The callee is told to send to earshot, on an even port with its RTCP port after it.
    let to_callee = media_of(&offer);
    assert_eq!(to_callee.ip(), media_ip);
    assert_eq!(to_callee.port() % 2, 0);
    let offered = text(&offer, "sdp");
    assert!(
        offered.contains(&format!("a=rtcp:{}", to_callee.port() + 1)),
        "{offered}"
    );
    assert!(
        offered.contains("m=audio") && offered.contains("RTP/AVP 0 101"),
        "payload order kept: {offered}"
    );
    assert!(
        offered.contains(&format!("o=phone 1 1 IN IP4 {media_ip}")),
        "replace origin: {offered}"
    );

    let answer = ng.ask(
        "0_100_2",
        &signal(
            "answer",
            call_id,
            "caller-tag",
            Some("callee-tag"),
            &phone_sdp(callee.local_addr(), 2),
        ),
    );
    let to_caller = media_of(&answer);
    assert_eq!(to_caller.ip(), media_ip);
    assert_ne!(to_caller, to_callee, "one leg per party");

    // RTP both ways through the legs.
    caller.start_sending(SendSpec::tone(to_caller, CUSTOMER_TONE));
    callee.start_sending(SendSpec::tone(to_callee, AGENT_TONE));
    assert!(
        callee.wait_received(50, Duration::from_secs(10)),
        "caller → callee through earshot"
    );
    assert!(
        caller.wait_received(50, Duration::from_secs(10)),
        "callee → caller through earshot"
    );
    assert!(
        callee.received().iter().all(|p| p.from == to_callee),
        "the callee hears earshot's leg"
    );
    assert!(caller.received().iter().all(|p| p.from == to_caller));

    // query, as $rtpstat reads it, with the tags swapped as when the callee sends the BYE;
    // polled until the legs' published statistics have caught up with what the endpoints got.
    let mut n = 0;
    let query = loop {
        n += 1;
        let query = ng.ask(
            &format!("0_100_3_{n}"),
            &[
                ("call-id", s(call_id)),
                ("from-tag", s("callee-tag")),
                ("to-tag", s("caller-tag")),
                ("command", s("query")),
            ],
        );
        let packets = query
            .get(b"totals")
            .and_then(|t| t.get(b"RTP"))
            .and_then(|r| r.get(b"packets"))
            .and_then(Value::as_int);
        if packets.is_some_and(|p| p >= 100) || n == 200 {
            break query;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(text(&query, "result"), "ok", "{query:?}");
    let rtp_packets = at(&query, &["totals", "RTP", "packets"]).as_int().unwrap();
    assert!(
        rtp_packets >= 100,
        "both parties' packets counted: {query:?}"
    );
    assert!(at(&query, &["totals", "RTP", "bytes"]).as_int().unwrap() > rtp_packets * 160);
    for key in ["bytes", "packets", "errors"] {
        assert!(
            at(&query, &["totals", "RTCP", key]).as_int().is_some(),
            "$rtpstat needs RTCP.{key}"
        );
    }
    let caller_tag = at(&query, &["tags", "caller-tag"]);
    assert_eq!(
        text(caller_tag, "label"),
        "customer",
        "the offerer is the customer by default"
    );
    assert_eq!(text(caller_tag, "in dialogue with"), "callee-tag");
    let Value::List(medias) = at(caller_tag, &["medias"]) else {
        panic!("medias")
    };
    let Value::List(streams) = at(&medias[0], &["streams"]) else {
        panic!("streams")
    };
    assert_eq!(
        at(&streams[0], &["local port"]).as_int(),
        Some(i64::from(to_caller.port())),
        "the caller's stream is the leg it sends to"
    );
    assert_eq!(text(at(&streams[0], &["endpoint"]), "address"), "127.0.0.1");
    assert_eq!(
        at(&streams[0], &["endpoint", "port"]).as_int(),
        Some(i64::from(caller.local_addr().port()))
    );
    assert!(at(&streams[0], &["stats", "packets"]).as_int().unwrap() >= 50);
    assert!(
        at(&query, &["created"]).as_int().unwrap() > 1_700_000_000,
        "Unix seconds"
    );

    // The same call over HTTP: one call, both legs counting.
    let calls = api
        .get(&format!("/v1/calls?ng_call_id={call_id}"))
        .expect(200, "calls by NG call-id");
    assert_eq!(calls["calls"].as_array().unwrap().len(), 1, "{calls}");

    let list = ng.ask("0_100_4", &[("command", s("list"))]);
    assert_eq!(at(&list, &["calls"]), &Value::List(vec![s(call_id)]));

    // delete by the callee's tag alone (a callee BYE): the whole call, with its statistics.
    let deleted = ng.ask(
        "0_100_5",
        &[
            ("call-id", s(call_id)),
            ("from-tag", s("callee-tag")),
            ("command", s("delete")),
        ],
    );
    assert_eq!(text(&deleted, "result"), "ok", "{deleted:?}");
    assert!(
        at(&deleted, &["totals", "RTP", "packets"])
            .as_int()
            .unwrap()
            >= rtp_packets
    );
    let list = ng.ask("0_100_6", &[("command", s("list"))]);
    assert_eq!(at(&list, &["calls"]), &Value::List(vec![]));

    // Deleting it again: ok with a warning; fatal makes it an error.
    let again = ng.ask(
        "0_100_7",
        &[
            ("call-id", s(call_id)),
            ("from-tag", s("caller-tag")),
            ("command", s("delete")),
        ],
    );
    assert_eq!(text(&again, "result"), "ok");
    assert!(!text(&again, "warning").is_empty());
    let fatal = ng.ask(
        "0_100_8",
        &[
            ("call-id", s("never-was")),
            ("from-tag", s("x")),
            ("flags", Value::List(vec![s("fatal")])),
            ("command", s("delete")),
        ],
    );
    assert_eq!(text(&fatal, "result"), "error");

    // An answer or a query for a call that does not exist.
    let unknown = ng.ask(
        "0_100_9",
        &signal(
            "answer",
            "nobody",
            "a",
            Some("b"),
            &phone_sdp(callee.local_addr(), 3),
        ),
    );
    assert_eq!(text(&unknown, "result"), "error");
    assert_eq!(text(&unknown, "error-reason"), "Unknown call-id");
    let unknown = ng.ask(
        "0_100_10",
        &[("call-id", s("nobody")), ("command", s("query"))],
    );
    assert_eq!(text(&unknown, "error-reason"), "Unknown call-ID");

    // What cannot be read is a clear error, with the cookie.
    let bad = ng.raw("0_100_11", b"d4:callli1eee");
    assert_eq!(
        text(&bad, "error-reason"),
        "Dictionary contains no key \"command\""
    );
    let bad = ng.ask("0_100_12", &[("command", s("dance"))]);
    assert_eq!(text(&bad, "error-reason"), "Unrecognized command");
    let no_sdp = ng.ask(
        "0_100_13",
        &[
            ("call-id", s("c")),
            ("from-tag", s("f")),
            ("command", s("offer")),
        ],
    );
    assert_eq!(text(&no_sdp, "error-reason"), "No SDP body in message");

    // Counted by command and result; the answer latency histogram has every run.
    assert_eq!(
        metric(
            &api,
            "earshot_ng_requests_total",
            &[("command", "offer"), ("result", "ok")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &api,
            "earshot_ng_requests_total",
            &[("command", "ping"), ("result", "pong")]
        ),
        1.0
    );
    assert_eq!(
        metric(
            &api,
            "earshot_ng_requests_total",
            &[("command", "invalid"), ("result", "error")]
        ),
        3.0,
        "no command, an unknown one, an offer the parser refused (no SDP)"
    );
    assert_eq!(
        metric(
            &api,
            "earshot_ng_answer_duration_seconds_count",
            &[("command", "delete")]
        ),
        3.0
    );
    daemon.shutdown().unwrap();
}

#[test]
fn a_resent_cookie_gets_the_first_answer_without_a_second_run() {
    let daemon = controlplane::spawn(config()).unwrap();
    let api = Api::new(daemon.http_addr);
    let ng = Ng::connect(daemon.ng_addr.unwrap());
    let first_phone = "127.0.0.1:6000".parse().unwrap();
    let first = ng.ask(
        "0_200_1",
        &signal("offer", "resent-1", "a", None, &phone_sdp(first_phone, 1)),
    );
    assert_eq!(text(&first, "result"), "ok");
    // The module's resend: same cookie. Here with another SDP, which a second run would answer
    // differently (another origin) or refuse: the answer is the first one, byte for byte.
    let second = ng.ask(
        "0_200_1",
        &signal(
            "offer",
            "resent-1",
            "a",
            None,
            &phone_sdp("127.0.0.1:7000".parse().unwrap(), 9),
        ),
    );
    assert_eq!(second, first);
    assert_eq!(
        metric(&api, "earshot_ng_requests_total", &[("command", "offer")]),
        1.0,
        "one run"
    );
    assert_eq!(metric(&api, "earshot_ng_replayed_total", &[]), 1.0);
    // The call kept the first SDP's address.
    let query = ng.ask(
        "0_200_2",
        &[("call-id", s("resent-1")), ("command", s("query"))],
    );
    let Value::List(medias) = at(&query, &["tags", "a", "medias"]) else {
        panic!("medias")
    };
    let Value::List(streams) = at(&medias[0], &["streams"]) else {
        panic!("streams")
    };
    assert_eq!(at(&streams[0], &["endpoint", "port"]).as_int(), Some(6000));
    // A SIP retransmission seen by another worker: same offer, new cookie, another socket. It
    // runs, and the idempotent offer answers the same SDP.
    let other_worker = Ng::connect(daemon.ng_addr.unwrap());
    let again = other_worker.ask(
        "0_201_1",
        &signal("offer", "resent-1", "a", None, &phone_sdp(first_phone, 1)),
    );
    assert_eq!(text(&again, "sdp"), text(&first, "sdp"));
    assert_eq!(
        metric(&api, "earshot_ng_requests_total", &[("command", "offer")]),
        2.0
    );
    daemon.shutdown().unwrap();
}

#[test]
fn json_bodies_get_json_answers_and_strangers_get_none() {
    let mut config = config();
    config.ng.allow = vec!["127.0.0.2".parse().unwrap()];
    let daemon = controlplane::spawn(config).unwrap();
    let api = Api::new(daemon.http_addr);
    let ng_addr = daemon.ng_addr.unwrap();
    let stranger = Ng::connect_from("127.0.0.1", ng_addr);
    stranger.socket.send(b"0_400_1 d7:command4:pinge").unwrap();
    let friend = Ng::connect_from("127.0.0.2", ng_addr);
    friend
        .socket
        .send(br#"0_400_2 {"command": "ping"}"#)
        .unwrap();
    let mut buf = [0u8; 1024];
    let len = friend.socket.recv(&mut buf).unwrap();
    let answer: serde_json::Value = serde_json::from_slice(
        buf[..len]
            .strip_prefix(b"0_400_2 ")
            .expect("the cookie, then the document"),
    )
    .unwrap();
    assert_eq!(answer, serde_json::json!({"result": "pong"}));
    // Loopback delivers in order: the stranger's datagram was read (and dropped) first.
    assert_eq!(
        metric(
            &api,
            "earshot_ng_dropped_total",
            &[("reason", "not_allowed")]
        ),
        1.0
    );
    stranger.socket.set_nonblocking(true).unwrap();
    assert!(
        stranger.socket.recv(&mut buf).is_err(),
        "no answer to a stranger"
    );
    daemon.shutdown().unwrap();
}

#[test]
fn over_capacity_an_offer_gets_load_limit_and_the_call_in_place_keeps_its_media() {
    let mut config = self::config();
    config.media.max_calls = 1;
    let daemon = controlplane::spawn(config).unwrap();
    let ng = Ng::connect(daemon.ng_addr.unwrap());
    let mut caller = Endpoint::bind("caller");
    let mut callee = Endpoint::bind("callee");
    let to_callee = media_of(&ng.ask(
        "0_300_1",
        &signal(
            "offer",
            "full-1",
            "a",
            None,
            &phone_sdp(caller.local_addr(), 1),
        ),
    ));
    let to_caller = media_of(&ng.ask(
        "0_300_2",
        &signal(
            "answer",
            "full-1",
            "a",
            Some("b"),
            &phone_sdp(callee.local_addr(), 2),
        ),
    ));
    let refused = ng.ask(
        "0_300_3",
        &signal(
            "offer",
            "full-2",
            "c",
            None,
            &phone_sdp(caller.local_addr(), 3),
        ),
    );
    assert_eq!(text(&refused, "result"), "load limit", "{refused:?}");
    // A client that does not take `load limit` gets the error Kamailio also fails over on.
    let mut plain = signal(
        "offer",
        "full-3",
        "d",
        None,
        &phone_sdp(caller.local_addr(), 4),
    );
    plain.retain(|(k, _)| *k != "supports");
    let refused = ng.ask("0_300_4", &plain);
    assert_eq!(text(&refused, "error-reason"), "Ran out of ports");
    // The call in place still relays.
    caller.start_sending(SendSpec::tone(to_caller, CUSTOMER_TONE));
    callee.start_sending(SendSpec::tone(to_callee, AGENT_TONE));
    assert!(callee.wait_received(25, Duration::from_secs(10)));
    assert!(caller.wait_received(25, Duration::from_secs(10)));
    daemon.shutdown().unwrap();
}

#[test]
fn ng_off_binds_nothing_and_a_taken_port_is_a_clear_start_error() {
    let mut config = self::config();
    config.ng.listen.0 = None;
    let daemon = controlplane::spawn(config).unwrap();
    assert_eq!(daemon.ng_addr, None);
    daemon.shutdown().unwrap();

    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut config = self::config();
    config.ng.listen.0 = Some(taken.local_addr().unwrap());
    let err = controlplane::spawn(config)
        .err()
        .expect("the port is taken");
    assert!(
        format!("{err:#}").contains("cannot listen for NG"),
        "{err:#}"
    );
}

#[test]
fn the_sdp_passed_on_offers_only_the_legs_law_and_telephone_event() {
    let daemon = controlplane::spawn(config()).unwrap();
    let ng = Ng::connect(daemon.ng_addr.unwrap());
    // A-law first, then µ-law: the leg carries A-law (docs/ng.md, Codecs).
    let sdp = "v=0\r\no=phone 5 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
               m=audio 6100 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
               a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n";
    let offer = ng.ask("0_500_1", &signal("offer", "laws-1", "a", None, sdp));
    let passed_on = text(&offer, "sdp");
    let audio = sdp::parse(passed_on.as_bytes()).unwrap().audio().unwrap();
    let pts: Vec<u8> = audio.payloads.iter().map(|p| p.pt).collect();
    assert_eq!(pts, [8, 101], "{passed_on}");
    assert!(!passed_on.contains("PCMU"), "{passed_on}");
    daemon.shutdown().unwrap();
}
