//! Request bodies as JSON objects in which no object repeats a key (docs/api.md, Requests).
//! serde_json keeps the last of duplicate keys silently, so `{"mode":"listen","mode":"barge"}`
//! would mean whatever the last one says while a proxy or a log reader sees the first; RFC 8259
//! §4 leaves duplicates' meaning undefined, so they are refused.

use core::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A JSON object, every nested object's keys unique.
pub struct UniqueKeysObject(pub Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueKeysObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(UniqueKeys)? {
            Value::Object(map) => Ok(UniqueKeysObject(map)),
            other => Err(de::Error::invalid_type(
                unexpected(&other),
                &"a JSON object",
            )),
        }
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Number(_) => de::Unexpected::Other("a number"),
        Value::String(s) => de::Unexpected::Str(s),
        Value::Array(_) => de::Unexpected::Seq,
        Value::Object(_) => de::Unexpected::Map,
    }
}

/// A `u32` as JSON Schema counts integers (2020-12 §6.1.1 via OpenAPI 3.1): `3` and `3.0` alike,
/// so a schema-valid `"integer"` is never refused for its spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonU32(pub u32);

impl<'de> Deserialize<'de> for JsonU32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = serde_json::Number::deserialize(d)?;
        let whole = match (n.as_u64(), n.as_f64()) {
            (Some(n), _) => Some(n),
            // Exact: an f64 with no fraction below 2^32 converts without loss.
            (None, Some(f)) if f.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&f) => {
                Some(f as u64)
            }
            _ => None,
        };
        whole
            .and_then(|n| u32::try_from(n).ok())
            .map(JsonU32)
            .ok_or_else(|| {
                de::Error::custom(format_args!("{n} is not an integer in 0..=4294967295"))
            })
    }
}

/// Any JSON value, refusing a repeated key in any object.
struct UniqueKeysValue(Value);

impl<'de> Deserialize<'de> for UniqueKeysValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(UniqueKeys).map(UniqueKeysValue)
    }
}

struct UniqueKeys;

impl<'de> Visitor<'de> for UniqueKeys {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON has no NaN or infinity, so serde_json never hands one over.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeysValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key {}",
                    crate::domain::ids::quote(&key)
                )));
            }
            let UniqueKeysValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Map<String, Value>, String> {
        serde_json::from_str::<UniqueKeysObject>(s)
            .map(|o| o.0)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        let err = parse(r#"{"mode":"listen","mode":"barge"}"#).unwrap_err();
        assert!(err.contains("duplicate key \"mode\""), "{err}");
        let err = parse(r#"{"a":{"b":1,"b":2}}"#).unwrap_err();
        assert!(err.contains("duplicate key \"b\""), "{err}");
        let err = parse(r#"{"a":[{"c":1},{"c":1,"c":1}]}"#).unwrap_err();
        assert!(err.contains("duplicate key \"c\""), "{err}");
    }

    #[test]
    fn everything_else_is_as_serde_json_reads_it() {
        let text =
            r#"{"a":[1,-2,3.5,"x",null,true,{"b":{}}],"c":{"a":1},"d":18446744073709551615}"#;
        assert_eq!(
            Value::Object(parse(text).unwrap()),
            serde_json::from_str::<Value>(text).unwrap()
        );
        assert!(parse("[1]").unwrap_err().contains("a JSON object"));
        assert!(parse("{\"a\":1} x").is_err());
    }

    #[test]
    fn an_integer_may_be_spelled_as_a_whole_float() {
        let n = |s: &str| serde_json::from_str::<JsonU32>(s).map(|n| n.0);
        assert_eq!(n("3").unwrap(), 3);
        assert_eq!(n("3.0").unwrap(), 3);
        assert_eq!(n("4294967295").unwrap(), u32::MAX);
        assert_eq!(n("4294967295.0").unwrap(), u32::MAX);
        for bad in ["3.5", "-1", "4294967296", "4294967296.0", "1e300", "\"3\""] {
            assert!(n(bad).is_err(), "{bad}");
        }
    }
}
