//! NG replies (docs/ng.md, The wire: replies), in the request's encoding.

use super::{Format, NgError};
use crate::ng::bencode::{self, Value};

/// A reply's dictionary (docs/ng.md, The wire: replies): `result` first, then the command's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `result: ok` and these keys (`sdp`, `warning`, the statistics, …).
    Ok(Vec<(&'static str, Value)>),
    /// `result: pong`, the answer to `ping`.
    Pong,
    /// `result: error` with this `error-reason`, and nothing else.
    Error(String),
    /// `result: load limit`: the client tries another relay.
    LoadLimit,
}

impl Reply {
    /// `result: ok` with only a `warning` (a non-fatal problem, e.g. deleting an unknown call).
    pub fn warning(message: impl Into<String>) -> Reply {
        Reply::Ok(Vec::new()).with_warning(message)
    }

    /// Adds a `warning` to an `ok` reply; other replies are unchanged.
    pub fn with_warning(self, message: impl Into<String>) -> Reply {
        match self {
            Reply::Ok(mut pairs) => {
                pairs.push(("warning", Value::Bytes(message.into().into_bytes())));
                Reply::Ok(pairs)
            }
            other => other,
        }
    }

    /// The `result` word, for metrics and logs.
    pub fn result(&self) -> &'static str {
        match self {
            Reply::Ok(_) => "ok",
            Reply::Pong => "pong",
            Reply::Error(_) => "error",
            Reply::LoadLimit => "load limit",
        }
    }

    /// The reply as a dictionary.
    pub fn to_value(&self) -> Value {
        let mut pairs = vec![(b"result".to_vec(), Value::str(self.result()))];
        match self {
            Reply::Ok(keys) => {
                pairs.extend(keys.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.clone())))
            }
            Reply::Pong => {}
            Reply::Error(reason) => {
                pairs.push((b"error-reason".to_vec(), Value::str(reason)));
            }
            Reply::LoadLimit => pairs.push((
                b"message".to_vec(),
                Value::str(NgError::SESSION_LIMIT.reason()),
            )),
        }
        Value::Dict(pairs)
    }

    /// The reply's body, bencoded.
    pub fn encode(&self) -> Vec<u8> {
        bencode::encode(&self.to_value())
    }

    /// The reply's body in `format` (a JSON request gets a JSON reply, as from rtpengine).
    pub fn encode_as(&self, format: Format) -> Vec<u8> {
        match format {
            Format::Bencode => self.encode(),
            Format::Json => to_json(&self.to_value()).to_string().into_bytes(),
        }
    }

    /// A whole datagram: `<cookie> <body>`.
    pub fn datagram(&self, cookie: &[u8], format: Format) -> Vec<u8> {
        let body = self.encode_as(format);
        let mut out = Vec::with_capacity(cookie.len() + 1 + body.len());
        out.extend_from_slice(cookie);
        out.push(b' ');
        out.extend_from_slice(&body);
        out
    }
}

/// A value as JSON: byte strings as (lossy) UTF-8 text; of duplicate keys, the first.
fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Int(i) => J::from(*i),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Dict(pairs) => {
            let mut map = serde_json::Map::new();
            for (k, v) in pairs {
                let k = String::from_utf8_lossy(k).into_owned();
                if !map.contains_key(&k) {
                    map.insert(k, to_json(v));
                }
            }
            J::Object(map)
        }
    }
}
