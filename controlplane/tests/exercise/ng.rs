//! The NG datagram's exerciser, shared by the `ng_datagram` fuzz target
//! (`controlplane/fuzz/`, docs/fuzzing.md) and the tests that replay its corpus and run its
//! properties (`ng_wire.rs`): any bytes go through the listener's own path (`message::split`,
//! `message::parse`, a reply's encoding) and are a request, a clear one-line error, or no
//! reply at all, never a panic (docs/design.md §7).

// Each test binary that includes `exercise` uses only its own part.
#![allow(dead_code)]

use controlplane::ng::bencode::{self, Value};
use controlplane::ng::message::{self, Command, Format, Reply, Request};

/// What a datagram turned out to be.
#[derive(Debug)]
pub enum Outcome {
    /// No cookie: no reply is sent.
    Dropped,
    /// A request, with its cookie.
    Request(Vec<u8>, Box<Request>),
    /// An error reply's reason, with the cookie.
    Refused(Vec<u8>, String),
}

/// Runs `data` as the listener would, asserting the invariants on the way.
pub fn datagram(data: &[u8]) -> Outcome {
    // The codec on its own: whatever decodes was canonical, so it encodes back to the very
    // same bytes (the decoder accepts one spelling of each value).
    if let Ok(v) = bencode::decode(data) {
        assert_eq!(bencode::encode(&v), data, "round trip of {v:?}");
    }
    let Some((cookie, body)) = message::split(data) else {
        assert!(
            data.first() == Some(&b' ') || !data.contains(&b' '),
            "a datagram with a cookie was dropped"
        );
        return Outcome::Dropped;
    };
    assert!(!cookie.is_empty() && !cookie.contains(&b' '));
    assert_eq!(cookie.len() + 1 + body.len(), data.len());
    if let Ok(v) = bencode::decode(body) {
        assert_eq!(bencode::encode(&v), body);
    }
    let format = Format::of(body);
    match message::parse(body) {
        Ok(request) => {
            assert_eq!(request.format, format);
            check_request(&request);
            // A reply carrying a request's values encodes and decodes back.
            let reply = Reply::Ok(vec![("sdp", Value::Bytes(sdp_of(&request)))]);
            check_reply(&reply, cookie, format);
            Outcome::Request(cookie.to_vec(), Box::new(request))
        }
        Err(e) => {
            assert!(!e.reason().is_empty());
            assert!(!e.to_string().contains('\n'), "one line: {e}");
            check_reply(&e.reply(), cookie, format);
            Outcome::Refused(cookie.to_vec(), e.reason().to_owned())
        }
    }
}

/// What every parsed command guarantees its handler.
fn check_request(request: &Request) {
    let call_id = match &request.command {
        Command::Ping | Command::List { .. } => return,
        Command::Offer(o) | Command::Answer(o) => {
            assert!(!o.sdp.is_empty() && !o.from_tag.is_empty());
            if matches!(request.command, Command::Answer(_)) {
                assert!(o.to_tag.as_deref().is_some_and(|t| !t.is_empty()));
            }
            &o.call_id
        }
        Command::Delete(d) => &d.call_id,
        Command::Query(t) => &t.call_id,
        Command::SubscribeRequest(s) => {
            assert!(!s.from_tags.is_empty() || s.all || s.label.is_some());
            &s.call_id
        }
        Command::SubscribeAnswer(s) => {
            assert!(!s.sdp.is_empty() && !s.to_tag.is_empty());
            &s.call_id
        }
        Command::Unsubscribe(u) => {
            assert!(!u.to_tag.is_empty());
            &u.call_id
        }
        Command::Connect(c) => {
            assert!(!c.to_tag.is_empty() && (!c.from_tags.is_empty() || c.all));
            &c.call_id
        }
        Command::BlockMedia(m)
        | Command::UnblockMedia(m)
        | Command::SilenceMedia(m)
        | Command::UnsilenceMedia(m) => &m.call_id,
    };
    assert!(!call_id.is_empty(), "{request:?}");
}

fn sdp_of(request: &Request) -> Vec<u8> {
    match &request.command {
        Command::Offer(o) | Command::Answer(o) => o.sdp.clone(),
        Command::SubscribeAnswer(s) => s.sdp.clone(),
        _ => Vec::new(),
    }
}

/// A reply is `<cookie> <dictionary>` with `result` first, in the request's format.
fn check_reply(reply: &Reply, cookie: &[u8], format: Format) {
    let datagram = reply.datagram(cookie, format);
    let (c, body) = message::split(&datagram).expect("a reply has the cookie");
    assert_eq!(c, cookie);
    let result = match format {
        Format::Bencode => {
            let v = bencode::decode(body).expect("our reply decodes");
            assert_eq!(v, reply.to_value());
            let Value::Dict(pairs) = v else {
                panic!("a reply is a dictionary")
            };
            assert_eq!(pairs[0].0, b"result");
            pairs[0].1.as_bytes().unwrap().to_vec()
        }
        Format::Json => {
            let v: serde_json::Value = serde_json::from_slice(body).expect("our reply is JSON");
            v["result"].as_str().unwrap().as_bytes().to_vec()
        }
    };
    assert_eq!(result, reply.result().as_bytes());
}
