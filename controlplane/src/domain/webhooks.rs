//! Webhook signing and delivery policy (docs/design.md §5.2), pure: no I/O, time as an input.
//!
//! Signatures follow the Standard Webhooks scheme: the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`, signed with HMAC-SHA256 under the endpoint's
//! secret (`whsec_` + base64 of the key bytes), sent as `webhook-signature: v1,{base64}`
//! beside `webhook-id` and `webhook-timestamp` (Unix seconds). Receivers verify with any
//! Standard Webhooks library.
//!
//! Delivery: a failed attempt is retried with exponential backoff; an endpoint that fails
//! [`DISABLE_AFTER`] deliveries in a row is disabled, and says so in its state.
//!
//! Messages: [`body`] is the JSON an event is delivered as, [`message_id`] its stable
//! `webhook-id`, and [`wants`] says whether an endpoint's event-type filter takes it. The I/O
//! (the store, HTTP, the OS's randomness for new secrets) is the app layer's
//! (docs/design.md §9).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The secret prefix of the scheme.
const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a generated secret's key.
pub const KEY_LEN: usize = 24;
/// Delivery attempts of one event before it is given up (the first try and the retries).
pub const MAX_ATTEMPTS: u32 = 8;
/// Consecutive failed deliveries (each after all its attempts) that disable an endpoint.
pub const DISABLE_AFTER: u32 = 5;
/// Backoff of the first retry, doubling each time up to [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: u64 = 5_000;
const MAX_BACKOFF_MS: u64 = 60 * 60 * 1000;

/// An endpoint's signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A secret string that is not `whsec_` followed by base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a webhook secret is \"whsec_\" followed by base64 of at least 16 bytes")]
pub struct InvalidSecret;

impl Secret {
    /// A new secret of `key`, which the caller drew from the OS's random number generator.
    pub fn from_key(key: [u8; KEY_LEN]) -> Secret {
        Secret { key: key.to_vec() }
    }

    /// Parses `whsec_…`.
    pub fn parse(s: &str) -> Result<Secret, InvalidSecret> {
        let encoded = s.strip_prefix(SECRET_PREFIX).ok_or(InvalidSecret)?;
        let key = B64.decode(encoded).map_err(|_| InvalidSecret)?;
        if key.len() < 16 {
            return Err(InvalidSecret);
        }
        Ok(Secret { key })
    }

    /// The `whsec_…` form, to show the endpoint's owner once and to store.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.key))
    }

    /// The `webhook-signature` header value for one message.
    pub fn sign(&self, id: &str, timestamp_secs: u64, body: &[u8]) -> String {
        let mac = self.mac(id, timestamp_secs, body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Whether `header` (space-separated `v1,…` signatures, as the scheme allows during a
    /// secret rotation) holds a valid signature of the message. Constant-time comparison.
    pub fn verify(&self, id: &str, timestamp_secs: u64, body: &[u8], header: &str) -> bool {
        let mac = self.mac(id, timestamp_secs, body);
        header
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .filter_map(|sig| B64.decode(sig).ok())
            .any(|sig| mac.clone().verify_slice(&sig).is_ok())
    }

    /// The HMAC of the signed content, `{id}.{timestamp}.{body}`.
    fn mac(&self, id: &str, timestamp_secs: u64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

/// What to do after a delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Delivered; the endpoint's failure streak is over.
    Delivered,
    /// Try again at this time.
    RetryAt { at_ms: u64 },
    /// This event is given up; the endpoint stays enabled.
    GiveUp,
    /// This event is given up and the endpoint is disabled (too many failures in a row).
    Disable,
}

/// The outcome of one attempt: an HTTP status, or a transport failure (timeout, refused).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Status(u16),
    TransportError,
}

impl Attempt {
    /// 2xx is success; anything else (including redirects, which are not followed) fails.
    pub fn succeeded(self) -> bool {
        matches!(self, Attempt::Status(200..=299))
    }
}

/// Decides what follows attempt number `attempt` (1-based) of one event, made at `now_ms`, for
/// an endpoint whose previous deliveries failed `failures_in_a_row` times in a row.
pub fn next(attempt: u32, outcome: Attempt, now_ms: u64, failures_in_a_row: u32) -> Next {
    if outcome.succeeded() {
        return Next::Delivered;
    }
    if attempt < MAX_ATTEMPTS {
        return Next::RetryAt {
            at_ms: now_ms.saturating_add(backoff_ms(attempt)),
        };
    }
    if failures_in_a_row + 1 >= DISABLE_AFTER {
        Next::Disable
    } else {
        Next::GiveUp
    }
}

/// The wait after failed attempt number `attempt` (1-based): 5 s, 10 s, 20 s, … capped at 1 h.
pub fn backoff_ms(attempt: u32) -> u64 {
    FIRST_BACKOFF_MS
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(20))
        .min(MAX_BACKOFF_MS)
}

/// The `webhook-id` of an event's message: the same for every attempt and every endpoint, so
/// a receiver can drop a message it has already processed (delivery is at least once).
pub fn message_id(event_id: i64) -> String {
    format!("evt_{event_id}")
}

/// Longest event type or pattern an endpoint's filter may hold.
pub const EVENT_TYPE_LEN_MAX: usize = 64;

/// Whether `s` is an event type (`call.created`: dot-separated segments of `a-z 0-9 _`) or a
/// prefix pattern (`call.*`: such a type, then `.*`), as an endpoint's filter lists them.
pub fn is_event_type_pattern(s: &str) -> bool {
    let name = s.strip_suffix(".*").unwrap_or(s);
    s.len() <= EVENT_TYPE_LEN_MAX
        && name.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Whether an endpoint whose filter is `event_types` (empty: every event) takes an event of
/// `event_type`: an exact match, or a `prefix.*` pattern whose prefix is the type's start at a
/// dot (`call.*` takes `call.created`, not `callback.x` nor `call` itself).
pub fn wants(event_types: &[String], event_type: &str) -> bool {
    event_types.is_empty()
        || event_types
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => pattern == event_type,
            })
}

/// `unix_ms` as RFC 3339 in UTC with milliseconds (`2025-11-21T04:40:00.123Z`). Times before
/// 1970 read as the epoch (the store's clock never gives one).
pub fn rfc3339_ms(unix_ms: i64) -> String {
    let ms = unix_ms.max(0);
    let (days, ms_of_day) = (ms / 86_400_000, ms % 86_400_000);
    let (year, month, day) = civil_from_days(days);
    let secs = ms_of_day / 1000;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        ms_of_day % 1000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant, "chrono-Compatible
/// Low-Level Date Algorithms", `civil_from_days`), for days ≥ 0.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The request body an event is delivered as (the Standard Webhooks payload shape, plus the
/// event's id in the log): `{"type", "timestamp" (RFC 3339, the event's time), "data" (the
/// event's payload), "id"}`.
pub fn body(event_id: i64, event_type: &str, at_ms: i64, data: &serde_json::Value) -> Vec<u8> {
    let message = serde_json::json!({
        "type": event_type,
        "timestamp": rfc3339_ms(at_ms),
        "data": data,
        "id": event_id,
    });
    // A `Value` always serialises.
    serde_json::to_vec(&message).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_in_utc() {
        // Expected values from Python's datetime.
        for (ms, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_763_700_000_123, "2025-11-21T04:40:00.123Z"),
            (1_735_689_599_999, "2024-12-31T23:59:59.999Z"),
            (4_102_444_800_000, "2100-01-01T00:00:00.000Z"),
            (-5, "1970-01-01T00:00:00.000Z"),
        ] {
            assert_eq!(rfc3339_ms(ms), text, "{ms}");
        }
    }

    #[test]
    fn filters_take_exact_types_and_prefixes_at_a_dot() {
        let filter = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(wants(&[], "anything.at_all"));
        let f = filter(&["call.*", "alert.raised"]);
        for (event_type, taken) in [
            ("call.created", true),
            ("call.media.updated", true),
            ("alert.raised", true),
            ("alert.cleared", false),
            ("callback.created", false),
            ("call", false),
            ("supervision.active", false),
        ] {
            assert_eq!(wants(&f, event_type), taken, "{event_type}");
        }
        for good in ["call.created", "call.*", "a", "a.b_c.d9", "webhook.*"] {
            assert!(is_event_type_pattern(good), "{good}");
        }
        let long = format!("{}.*", "a".repeat(EVENT_TYPE_LEN_MAX));
        for bad in [
            "",
            "*",
            ".*",
            "call.",
            "call..x",
            "Call.created",
            "call.*.x",
            "call*",
            "call.x-y",
            " call",
            &long,
        ] {
            assert!(!is_event_type_pattern(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_message_is_the_event_as_standard_webhooks_json() {
        let body = body(
            42,
            "call.created",
            1_763_700_000_123,
            &serde_json::json!({"call_id": "c_1"}),
        );
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "type": "call.created",
                "timestamp": "2025-11-21T04:40:00.123Z",
                "data": {"call_id": "c_1"},
                "id": 42,
            })
        );
        assert_eq!(message_id(42), "evt_42");
    }

    /// A signature computed independently (Python's `hmac` over the same content) for the
    /// Standard Webhooks example message.
    #[test]
    fn signs_as_the_standard_webhooks_scheme() {
        let secret = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let (id, ts, body) = (
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        let sig = secret.sign(id, ts, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(secret.verify(id, ts, body, &sig));
        assert!(
            secret.verify(id, ts, body, &format!("v1,bm90IGl0 {sig}")),
            "rotation: any one may match"
        );
        assert!(
            !secret.verify(id, ts + 1, body, &sig),
            "the timestamp is signed"
        );
        assert!(
            !secret.verify(id, ts, br#"{"test": 2432232315}"#, &sig),
            "the body is signed"
        );
        assert!(
            !secret.verify("msg_other", ts, body, &sig),
            "the id is signed"
        );
        assert!(!secret.verify(id, ts, body, "v1,!!!not base64"));
    }

    #[test]
    fn secrets_round_trip_and_bad_ones_are_refused() {
        let s = Secret::from_key([7; KEY_LEN]);
        assert_eq!(Secret::parse(&s.expose()).unwrap(), s);
        assert_ne!(Secret::from_key([8; KEY_LEN]), s);
        for bad in [
            "",
            "whsec_",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_***",
            "whsec_AAAA",
        ] {
            assert_eq!(Secret::parse(bad), Err(InvalidSecret), "{bad:?}");
        }
        assert!(
            !format!("{s:?}").contains(&s.expose()),
            "Debug never shows the secret"
        );
    }

    #[test]
    fn retries_back_off_then_give_up_and_disable_after_repeated_failure() {
        assert_eq!(next(1, Attempt::Status(204), 0, 3), Next::Delivered);
        assert_eq!(
            next(1, Attempt::Status(500), 1_000, 0),
            Next::RetryAt { at_ms: 6_000 }
        );
        assert_eq!(
            next(2, Attempt::TransportError, 0, 0),
            Next::RetryAt { at_ms: 10_000 }
        );
        assert_eq!(
            next(3, Attempt::Status(302), 0, 0),
            Next::RetryAt { at_ms: 20_000 },
            "redirects fail"
        );
        assert_eq!(next(MAX_ATTEMPTS, Attempt::Status(500), 0, 0), Next::GiveUp);
        assert_eq!(
            next(MAX_ATTEMPTS, Attempt::Status(500), 0, DISABLE_AFTER - 1),
            Next::Disable
        );
        assert_eq!(backoff_ms(40), MAX_BACKOFF_MS);
        let waits: Vec<u64> = (1..MAX_ATTEMPTS).map(backoff_ms).collect();
        assert!(
            waits
                .windows(2)
                .all(|w| w[0] < w[1] || w[1] == MAX_BACKOFF_MS)
        );
    }
}
