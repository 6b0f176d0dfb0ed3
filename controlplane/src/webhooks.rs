//! Webhook signing and delivery policy (SPEC §5), pure: no I/O, time as an input.
//!
//! Signatures follow the Standard Webhooks scheme: the signed content is
//! `{webhook-id}.{webhook-timestamp}.{body}`, signed with HMAC-SHA256 under the endpoint's
//! secret (`whsec_` + base64 of the key bytes), sent as `webhook-signature: v1,{base64}`
//! beside `webhook-id` and `webhook-timestamp` (Unix seconds). Receivers verify with any
//! Standard Webhooks library.
//!
//! Delivery: a failed attempt is retried with exponential backoff; an endpoint that fails
//! [`DISABLE_AFTER`] deliveries in a row is disabled, and says so in its state.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The secret prefix of the scheme.
const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a generated secret's key.
const KEY_LEN: usize = 24;
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
    /// A new random secret.
    pub fn generate() -> Secret {
        let mut key = vec![0u8; KEY_LEN];
        // No OS randomness is a broken host; an all-zero key would be worse than failing.
        getrandom::fill(&mut key).expect("the OS random number generator is available");
        Secret { key }
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
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp_secs.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// Whether `header` (space-separated `v1,…` signatures, as the scheme allows during a
    /// secret rotation) holds a valid signature of the message. Constant-time comparison.
    pub fn verify(&self, id: &str, timestamp_secs: u64, body: &[u8], header: &str) -> bool {
        header
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .any(|sig| {
                let Ok(sig) = B64.decode(sig) else {
                    return false;
                };
                let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
                    .expect("HMAC takes keys of any length");
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp_secs.to_string().as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.verify_slice(&sig).is_ok()
            })
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = Secret::generate();
        assert_eq!(Secret::parse(&s.expose()).unwrap(), s);
        assert_ne!(Secret::generate(), s);
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
