//! The NG wire (docs/ng.md, The wire): Kamailio 5.6's own datagrams, captured on loopback,
//! parse into the commands they are; every command of the NG chapter parses, with rtpengine's
//! error reasons; replies encode as clients read them; and the properties of the codec hold
//! for any input (docs/design.md §7). The fuzz target's corpus is replayed through the same
//! checks (`exercise::ng`).

// Only the NG part of the shared exerciser.
#[allow(dead_code)]
mod exercise;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use controlplane::ng::bencode::{self, DEPTH_MAX, DecodeReason, Value};
use controlplane::ng::message::{self, Command, Format, NgError, Reply, Request};
use exercise::ng::Outcome;
use proptest::prelude::*;

fn corpus_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ng_datagram")
}

fn seed(name: &str) -> Vec<u8> {
    let path = corpus_dir().join(format!("{name}.ng"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The request in a corpus datagram, through the exerciser's checks.
fn request(name: &str) -> (Vec<u8>, Request) {
    match exercise::ng::datagram(&seed(name)) {
        Outcome::Request(cookie, request) => (cookie, *request),
        other => panic!("{name}: {other:?}"),
    }
}

/// The error reason a body gets.
fn refused(body: &[u8]) -> String {
    match message::parse(body) {
        Err(e) => e.reason().to_owned(),
        Ok(r) => panic!("{:?} parsed: {r:?}", String::from_utf8_lossy(body)),
    }
}

fn be(pairs: &[(&str, Value)]) -> Vec<u8> {
    bencode::encode(&Value::Dict(
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect(),
    ))
}

fn s(text: &str) -> Value {
    Value::str(text)
}

fn list(words: &[&str]) -> Value {
    Value::List(words.iter().map(|w| Value::str(w)).collect())
}

#[test]
fn every_corpus_input_is_a_request_an_error_or_dropped() {
    let mut inputs = 0;
    for entry in std::fs::read_dir(corpus_dir()).expect("the corpus is committed") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = exercise::ng::datagram(&data);
        inputs += 1;
    }
    assert!(inputs >= 20, "{inputs} inputs");
}

#[test]
fn kamailio_offer_is_an_offer_with_everything_it_carries() {
    let (cookie, req) = request("kamailio-caller-bye-offer");
    assert_eq!(cookie, b"0_27586_4");
    assert_eq!(req.format, Format::Bencode);
    let Command::Offer(o) = req.command else {
        panic!("{req:?}")
    };
    assert_eq!(o.call_id, "1-28469@127.0.0.1");
    assert_eq!(o.from_tag, "28469SIPpTag091");
    assert_eq!(o.to_tag, None);
    assert!(o.sdp.starts_with(b"v=0\r\no=user1 53655765"));
    assert!(o.sdp.ends_with(b"a=fmtp:101 0-11,16\r\n"));
    assert_eq!(o.label.as_deref(), Some("customer"));
    assert_eq!(o.replace, ["origin", "session-connection"]);
    assert_eq!(o.transport_protocol.as_deref(), Some("RTP/AVP"));
    assert_eq!(o.ice.as_deref(), Some("remove"));
    assert_eq!(o.received_from, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    assert!(o.supports_load_limit);
    assert!(o.flags.words().is_empty());
    assert_eq!(o.via_branch, None);
}

#[test]
fn kamailio_answer_carries_the_answerers_tag_and_label() {
    for (name, offerer, answerer) in [
        (
            "kamailio-caller-bye-answer",
            "28469SIPpTag091",
            "28075SIPpTag012",
        ),
        (
            "kamailio-callee-bye-answer",
            "28552SIPpTag091",
            "28547SIPpTag011",
        ),
    ] {
        let (_, req) = request(name);
        let Command::Answer(a) = req.command else {
            panic!("{name}: {req:?}")
        };
        assert_eq!(a.from_tag, offerer, "{name}");
        assert_eq!(a.to_tag.as_deref(), Some(answerer), "{name}");
        assert_eq!(a.label.as_deref(), Some("agent"), "{name}");
        assert!(a.sdp.starts_with(b"v=0\r\n"), "{name}");
    }
}

#[test]
fn kamailio_delete_carries_the_tag_of_whoever_hung_up() {
    // Caller's BYE: the caller's tag; callee's BYE: the callee's; never a to-tag.
    for (name, tag) in [
        ("kamailio-caller-bye-delete", "28469SIPpTag091"),
        ("kamailio-callee-bye-delete", "28547SIPpTag011"),
    ] {
        let (_, req) = request(name);
        let Command::Delete(d) = req.command else {
            panic!("{name}: {req:?}")
        };
        assert_eq!(d.from_tag.as_deref(), Some(tag), "{name}");
        assert_eq!(d.to_tag, None);
        assert!(!d.fatal && !d.fast);
        assert_eq!(d.delete_delay_s, None);
    }
}

#[test]
fn kamailio_query_and_ping() {
    let (_, req) = request("kamailio-callee-bye-query");
    assert_eq!(
        req.command,
        Command::Query(message::Target {
            call_id: "1-28552@127.0.0.1".into(),
            from_tag: Some("28547SIPpTag011".into()),
            to_tag: Some("28552SIPpTag091".into()),
        })
    );
    let (cookie, req) = request("kamailio-ping");
    assert_eq!(
        (cookie.as_slice(), req.command),
        (&b"0_27585_1"[..], Command::Ping)
    );
}

#[test]
fn replies_are_what_kamailio_reads() {
    // The exact bytes rtpengine and the captured relay answered a ping with.
    assert_eq!(
        Reply::Pong.datagram(b"0_27585_1", Format::Bencode),
        seed("reply-pong")
    );
    assert_eq!(
        Reply::Error(NgError::NO_SDP.reason().into()).encode(),
        b"d6:result5:error12:error-reason22:No SDP body in messagee"
    );
    assert_eq!(
        Reply::LoadLimit.encode(),
        b"d6:result10:load limit7:message30:Parallel session limit reachede"
    );
    let ok = Reply::Ok(vec![("sdp", s("v=0\r\n"))]).with_warning("late");
    assert_eq!(ok.encode(), b"d6:result2:ok3:sdp5:v=0\r\n7:warning4:latee");
    assert_eq!(
        Reply::warning(NgError::DELETE_NOT_FOUND.reason()).encode(),
        b"d6:result2:ok7:warning38:Call-ID not found or tags didn't matche"
    );
    // The captured query reply decodes into the `totals` that `$rtpstat` needs.
    let reply = seed("reply-query");
    let (_, body) = message::split(&reply).unwrap();
    let v = bencode::decode(body).unwrap();
    let rtp = v.get(b"totals").and_then(|t| t.get(b"RTP")).unwrap();
    assert_eq!(rtp.get(b"packets"), Some(&Value::Int(288)));
    // A JSON request gets a JSON reply.
    let json = Reply::Error("Unknown call-id".into()).encode_as(Format::Json);
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"result": "error", "error-reason": "Unknown call-id"})
    );
}

#[test]
fn datagrams_without_a_cookie_get_no_reply() {
    for data in [&b" d7:command4:pinge"[..], b"d7:command4:pinge", b"", b" "] {
        assert_eq!(message::split(data), None, "{data:?}");
    }
    assert_eq!(
        message::split(b"c1 d7:command4:pinge"),
        Some((&b"c1"[..], &b"d7:command4:pinge"[..]))
    );
    // The body may be empty: that is an error reply, with the cookie.
    assert_eq!(message::split(b"c1 "), Some((&b"c1"[..], &b""[..])));
    assert_eq!(refused(b""), "Invalid data (no payload)");
}

#[test]
fn malformed_bodies_get_rtpengines_reasons() {
    let bad_bencode = "Could not decode bencode dictionary";
    for body in [
        &b"d3:sdp99999:xe"[..],
        b"d7:command4:ping",
        b"d7:command4:pingei1e",
        b"d7:command4:list5:limiti-0ee",
        b"d7:command4:list5:limiti99999999999999999999ee",
        &[b'd'; 5000],
    ] {
        assert_eq!(refused(body), bad_bencode, "{body:?}");
    }
    assert_eq!(refused(b"hello"), "Invalid NG data format");
    assert_eq!(refused(b"li1ee"), "Invalid NG data format");
    assert_eq!(refused(b"{\"command\": "), "Failed to parse JSON document");
    assert_eq!(refused(b"de"), "Dictionary contains no key \"command\"");
    assert_eq!(
        refused(&be(&[("call-id", s("a"))])),
        "Dictionary contains no key \"command\""
    );
    assert_eq!(
        refused(&be(&[("command", s("start recording"))])),
        "Unrecognized command"
    );
    assert_eq!(
        refused(&be(&[("command", s("list")), ("limit", Value::Int(-3))])),
        "invalid limit, must be >= 0"
    );
    // The detail says what was wrong, for the log.
    let e = message::parse(b"d3:sdp99999:xe").unwrap_err();
    assert_eq!(
        e.detail(),
        Some("string at byte 6 is longer than the document")
    );
}

#[test]
fn missing_arguments_are_named_in_rtpengines_order() {
    let offer = |pairs: &[(&str, Value)]| {
        let mut all = vec![("command", s("offer"))];
        all.extend_from_slice(pairs);
        refused(&be(&all))
    };
    let sdp = ("sdp", s("v=0\r\n"));
    let call = ("call-id", s("c1"));
    let from = ("from-tag", s("f1"));
    assert_eq!(
        offer(&[call.clone(), from.clone()]),
        "No SDP body in message"
    );
    assert_eq!(offer(&[sdp.clone(), from.clone()]), "No call-id in message");
    assert_eq!(
        offer(&[sdp.clone(), call.clone()]),
        "No from-tag in message"
    );
    // An empty value is a missing one.
    assert_eq!(
        offer(&[sdp.clone(), ("call-id", s("")), from.clone()]),
        "No call-id in message"
    );
    let answer = be(&[
        ("command", s("answer")),
        sdp.clone(),
        call.clone(),
        from.clone(),
    ]);
    assert_eq!(refused(&answer), "No to-tag in message");
    for command in [
        "delete",
        "query",
        "block media",
        "silence media",
        "subscribe request",
    ] {
        assert_eq!(
            refused(&be(&[("command", s(command))])),
            "No call-id in message",
            "{command}"
        );
    }
    assert_eq!(
        refused(&be(&[("command", s("subscribe request")), call.clone()])),
        "No participant party specified"
    );
    assert_eq!(
        refused(&be(&[
            ("command", s("subscribe answer")),
            call.clone(),
            ("to-tag", s("t"))
        ])),
        "No SDP body in message"
    );
    assert_eq!(
        refused(&be(&[
            ("command", s("subscribe answer")),
            call.clone(),
            sdp.clone()
        ])),
        "No to-tag in message"
    );
    assert_eq!(
        refused(&be(&[("command", s("unsubscribe")), call.clone()])),
        "No to-tag in message"
    );
    assert_eq!(
        refused(&be(&[
            ("command", s("connect")),
            call.clone(),
            from.clone()
        ])),
        "No to-tag in message"
    );
    assert_eq!(
        refused(&be(&[
            ("command", s("connect")),
            call.clone(),
            ("to-tag", s("t"))
        ])),
        "No source-tag in message"
    );
}

#[test]
fn values_of_the_wrong_type_are_clear_errors() {
    let call = ("call-id", s("c1"));
    for (pairs, reason) in [
        (
            vec![("command", s("query")), ("call-id", list(&["a"]))],
            "Invalid value for key \"call-id\": expected a string, got a list",
        ),
        (
            vec![
                ("command", s("offer")),
                call.clone(),
                ("from-tag", s("f")),
                ("sdp", Value::Int(3)),
            ],
            "Invalid value for key \"sdp\": expected a string, got an integer",
        ),
        (
            vec![
                ("command", s("delete")),
                call.clone(),
                ("flags", Value::Dict(vec![])),
            ],
            "Invalid value for key \"flags\": expected a list of strings, got a dictionary",
        ),
        (
            vec![("command", s("list")), ("limit", s("many"))],
            "Invalid value for key \"limit\": expected an integer, got a string",
        ),
        (
            vec![("command", Value::List(vec![]))],
            "Invalid value for key \"command\": expected a string, got a list",
        ),
        (
            vec![
                ("command", s("query")),
                ("call-id", Value::Bytes(vec![0xff])),
            ],
            "Invalid value for key \"call-id\": not UTF-8",
        ),
        (
            vec![
                ("command", s("offer")),
                call.clone(),
                ("from-tag", s("f")),
                ("sdp", s("v=0")),
                ("received-from", list(&["IP4", "not-an-address"])),
            ],
            "Invalid value for key \"received-from\": \"not-an-address\" is not an IP address",
        ),
    ] {
        assert_eq!(refused(&be(&pairs)), reason);
    }
}

#[test]
fn keys_and_flag_words_are_normalised_and_unknown_keys_ignored() {
    // `-`, `_`, space and case: one key; unknown keys (record-call, DTLS, TOS, codec) ignored.
    let body = be(&[
        ("Command", s("Block_Media")),
        ("call id", s("c1")),
        ("From_Tag", s("AgentTag")),
        ("To Tag", s("CustTag")),
        ("flags", list(&["Directional"])),
        ("record-call", s("yes")),
        ("DTLS", s("off")),
        ("TOS", Value::Int(184)),
        (
            "codec",
            Value::Dict(vec![(b"strip".to_vec(), list(&["all"]))]),
        ),
    ]);
    let Command::BlockMedia(m) = message::parse(&body).unwrap().command else {
        panic!()
    };
    assert_eq!(m.call_id, "c1");
    // Values keep their case: a tag is case-sensitive.
    assert_eq!(m.from_tag.as_deref(), Some("AgentTag"));
    assert_eq!(m.to_tag.as_deref(), Some("CustTag"));
    assert!(m.directional && !m.all);
    // `delete delay` (Kamailio's spelling, with a space) and `delete-delay` are one key;
    // flags may come as a comma-separated string.
    let body = be(&[
        ("command", s("delete")),
        ("call-id", s("c1")),
        ("delete delay", Value::Int(0)),
        ("flags", s("FATAL, fast")),
    ]);
    let Command::Delete(d) = message::parse(&body).unwrap().command else {
        panic!()
    };
    assert_eq!(d.delete_delay_s, Some(0));
    assert!(d.fatal && d.fast && d.flags.has("fatal"));
}

#[test]
fn the_first_of_duplicate_keys_wins() {
    let body = b"d7:command4:ping7:command5:offere";
    assert_eq!(message::parse(body).unwrap().command, Command::Ping);
    // Also across spellings: `call-id` before `call_id`.
    let body = be(&[
        ("command", s("query")),
        ("call-id", s("first")),
        ("call_id", s("second")),
    ]);
    let Command::Query(t) = message::parse(&body).unwrap().command else {
        panic!()
    };
    assert_eq!(t.call_id, "first");
}

#[test]
fn supervision_commands_parse() {
    let (_, req) = request("subscribe-request");
    let Command::SubscribeRequest(sub) = req.command else {
        panic!("{req:?}")
    };
    assert_eq!(sub.call_id, "1-28469@127.0.0.1");
    assert_eq!(sub.from_tags, ["28469SIPpTag091", "28075SIPpTag012"]);
    assert!(sub.bidirectional && !sub.all);
    assert_eq!(sub.to_tag, None);
    assert_eq!(sub.label.as_deref(), Some("supervisor"));
    assert_eq!(
        sub.extra,
        [("supervisor-id".to_owned(), "sup-7".to_owned())]
    );

    let (_, req) = request("subscribe-request-all");
    let Command::SubscribeRequest(sub) = req.command else {
        panic!("{req:?}")
    };
    assert!(sub.all && !sub.bidirectional);
    assert_eq!(sub.from_tags, ["t1"]);

    let (_, req) = request("subscribe-answer");
    let Command::SubscribeAnswer(ans) = req.command else {
        panic!("{req:?}")
    };
    assert_eq!(ans.to_tag, "sup-tag-1");
    assert!(ans.sdp.starts_with(b"v=0\r\n"));

    let (_, req) = request("unsubscribe");
    assert!(matches!(req.command, Command::Unsubscribe(u) if u.to_tag == "sup-tag-1"));

    let (_, req) = request("connect-whisper");
    let Command::Connect(c) = req.command else {
        panic!("{req:?}")
    };
    assert_eq!(c.from_tags, ["sup-tag-1"]);
    assert_eq!(c.to_tag, "28075SIPpTag012");
    assert!(c.directional && !c.bidirectional && !c.all);

    let (_, req) = request("block-media-takeover");
    let Command::BlockMedia(m) = req.command else {
        panic!("{req:?}")
    };
    assert_eq!(m.from_tag.as_deref(), Some("28075SIPpTag012"));
    assert_eq!(m.to_tag.as_deref(), Some("28469SIPpTag091"));
    assert!(m.directional);

    for (name, which) in [
        ("unblock-media", "unblock media"),
        ("silence-media", "silence media"),
        ("unsilence-media", "unsilence media"),
    ] {
        let (_, req) = request(name);
        assert_eq!(req.command.name(), which);
    }
    let (_, req) = request("silence-media");
    assert!(matches!(req.command, Command::SilenceMedia(m) if m.directional));
    let (_, req) = request("list");
    assert_eq!(req.command, Command::List { limit: 5 });
    let body = be(&[("command", s("list"))]);
    assert_eq!(
        message::parse(&body).unwrap().command,
        Command::List { limit: 32 }
    );
}

#[test]
fn rtpp_flags_are_read_like_the_modules_flag_string() {
    // Kamailio >= 6 forwards the whole flag string for the relay to parse.
    let (_, req) = request("rtpp-flags-offer");
    let Command::Offer(o) = req.command else {
        panic!("{req:?}")
    };
    assert_eq!(o.replace, ["origin", "session-connection"]);
    assert_eq!(o.ice.as_deref(), Some("remove"));
    assert_eq!(o.transport_protocol.as_deref(), Some("RTP/AVP"));
    assert_eq!(o.label.as_deref(), Some("agent"));
    assert!(o.flags.has("trust-address"));
    assert!(
        o.extra
            .contains(&("agent-id".to_owned(), "1234".to_owned()))
    );
    assert!(o.supports_load_limit);
}

#[test]
fn json_bodies_parse_into_the_same_requests() {
    let (_, req) = request("json-offer");
    assert_eq!(req.format, Format::Json);
    let Command::Offer(o) = req.command else {
        panic!("{req:?}")
    };
    assert_eq!((o.call_id.as_str(), o.from_tag.as_str()), ("j-1", "jt"));
    assert!(o.sdp.starts_with(b"v=0\r\no=sup"));
    assert!(o.flags.has("trust_address") && o.supports_load_limit);
    // The same request in bencode parses to the same command.
    let json =
        br#"{"command":"delete","call-id":"c","from-tag":"f","flags":["fatal"],"delete delay":5}"#;
    let bencoded = be(&[
        ("command", s("delete")),
        ("call-id", s("c")),
        ("from-tag", s("f")),
        ("flags", list(&["fatal"])),
        ("delete delay", Value::Int(5)),
    ]);
    assert_eq!(
        message::parse(json).unwrap().command,
        message::parse(&bencoded).unwrap().command
    );
    assert_eq!(refused(b"[1]"), "Invalid NG data format");
    assert_eq!(refused(b"{\"command\": 1"), "Failed to parse JSON document");
    // Deep JSON is refused like deep bencode.
    let deep = format!(
        "{{\"command\":\"ping\",\"x\":{}{}}}",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(refused(deep.as_bytes()), "Failed to parse JSON document");
    // And a whole datagram of openers is an error from the JSON parser's own limit, not a
    // stack overflow.
    let deeper = format!("{{\"command\":{}", "[".repeat(65_000));
    assert_eq!(refused(deeper.as_bytes()), "Failed to parse JSON document");
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    // A whole datagram of openers: the decoder stops at its depth limit.
    let mut datagram = b"c1 d1:x".to_vec();
    datagram.extend(std::iter::repeat_n(b'l', 65_000));
    match exercise::ng::datagram(&datagram) {
        Outcome::Refused(_, reason) => assert_eq!(reason, "Could not decode bencode dictionary"),
        other => panic!("{other:?}"),
    }
    let e = bencode::decode(&datagram[3..]).unwrap_err();
    assert_eq!((e.reason, e.offset), (DecodeReason::TooDeep, DEPTH_MAX + 3));
}

/// Any value, nested at most `depth` deep.
fn value(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        any::<i64>().prop_map(Value::Int),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(Value::Bytes),
    ];
    leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
            proptest::collection::vec((proptest::collection::vec(any::<u8>(), 0..8), inner), 0..6)
                .prop_map(Value::Dict),
        ]
    })
}

proptest! {
    #[test]
    fn decode_inverts_encode(v in value(8)) {
        let bytes = bencode::encode(&v);
        prop_assert_eq!(bencode::decode(&bytes), Ok(v));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = exercise::ng::datagram(&data);
        let _ = message::parse(&data);
    }

    #[test]
    fn arbitrary_bencode_shaped_bytes_never_panic(
        data in proptest::collection::vec(
            prop_oneof![
                Just(b'd'), Just(b'l'), Just(b'e'), Just(b'i'), Just(b':'), Just(b'-'),
                b'0'..=b'9', any::<u8>(),
            ],
            0..256,
        )
    ) {
        let mut datagram = b"c ".to_vec();
        datagram.extend_from_slice(&data);
        let _ = exercise::ng::datagram(&datagram);
    }

    #[test]
    fn mutated_kamailio_datagrams_never_panic(
        index in 0usize..4096,
        byte in any::<u8>(),
        cut in 0usize..512,
    ) {
        let mut data = seed("kamailio-caller-bye-offer");
        let i = index % data.len();
        data[i] = byte;
        data.truncate(data.len() - cut.min(data.len()));
        let _ = exercise::ng::datagram(&data);
    }

    #[test]
    fn nesting_past_the_limit_is_refused(
        depth in (DEPTH_MAX + 1)..2_000usize,
        dict in any::<bool>(),
    ) {
        let opener: &[u8] = if dict { b"d1:x" } else { b"l" };
        let mut doc = opener.repeat(depth);
        doc.extend(std::iter::repeat_n(b'e', depth));
        if dict {
            // The innermost dictionary needs a value for its last key.
            doc.splice(opener.len() * depth..opener.len() * depth, b"i0e".iter().copied());
        }
        prop_assert_eq!(bencode::decode(&doc).unwrap_err().reason, DecodeReason::TooDeep);
    }
}
