//! JSON bodies (docs/ng.md, The wire: JSON): the same dictionary as bencode, so one parser
//! reads both.

use super::NgError;
use crate::ng::bencode::{self, Value};

/// How deep a JSON body may nest: the same bound as bencode's.
const JSON_DEPTH_MAX: usize = bencode::DEPTH_MAX;

pub(super) fn from_json(body: &[u8]) -> Result<Value, NgError> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| NgError::BAD_JSON.with_detail(e.to_string()))?;
    if !json.is_object() {
        return Err(NgError::JSON_NOT_DICT);
    }
    json_value(&json, 1)?.ok_or(NgError::JSON_NOT_DICT)
}

/// JSON into the bencode model: strings are byte strings, integers and booleans integers;
/// `null` is left out (a key with it is absent); a number with a fraction is kept as its text.
fn json_value(json: &serde_json::Value, depth: usize) -> Result<Option<Value>, NgError> {
    use serde_json::Value as J;
    let too_deep =
        || NgError::BAD_JSON.with_detail(format!("nesting deeper than {JSON_DEPTH_MAX} levels"));
    Ok(Some(match json {
        J::Null => return Ok(None),
        J::Bool(b) => Value::Int(i64::from(*b)),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::str(&n.to_string()),
        },
        J::String(s) => Value::str(s),
        J::Array(items) => {
            if depth > JSON_DEPTH_MAX {
                return Err(too_deep());
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                out.extend(json_value(item, depth + 1)?);
            }
            Value::List(out)
        }
        J::Object(map) => {
            if depth > JSON_DEPTH_MAX {
                return Err(too_deep());
            }
            let mut out = Vec::with_capacity(map.len());
            for (k, v) in map {
                if let Some(v) = json_value(v, depth + 1)? {
                    out.push((k.as_bytes().to_vec(), v));
                }
            }
            Value::Dict(out)
        }
    }))
}
