//! Domain types: identifiers, and request bodies parsed into values the handlers can trust
//! (STYLE.md 11). Each request body has a `Raw*` serde twin that only knows JSON shapes
//! (unknown fields refused); [`FromBody::parse`] turns it into the domain type, or into the
//! [`ApiError`] the contract (docs/api.md) names for that kind of bad value.

use core::fmt;
use core::str::FromStr;
use std::net::SocketAddr;

use dataplane::media::matrix::Mode;
use dataplane::wire::g711::Codec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::lifecycle::{
    Direction, SupervisorNumber, ValidationAlert, validate_supervisor_number,
};
use crate::http::error::ApiError;

/// Longest piece of client input quoted back in an error message.
const QUOTE_LEN_MAX: usize = 64;
/// Longest calling number the softswitch may report (E.164 has 15 digits; room for a SIP user
/// part, which then does not match).
pub const CALLING_NUMBER_LEN_MAX: usize = 128;

/// Client input as quoted in an error message: bounded, so an error never echoes a megabyte.
pub(crate) fn quote(s: &str) -> String {
    match s.char_indices().nth(QUOTE_LEN_MAX) {
        None => format!("{s:?}"),
        Some((end, _)) => format!("{:?}…", &s[..end]),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(u64);

        impl $name {
            /// A fresh random identifier from the OS random source.
            pub(crate) fn random() -> Result<$name, getrandom::Error> {
                getrandom::u64().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{:016x}"), self.0)
            }
        }

        impl FromStr for $name {
            type Err = ApiError;

            /// Only the exact form the appliance hands out (`prefix` + 16 lowercase hex digits);
            /// anything else names nothing, hence `not_found`.
            fn from_str(s: &str) -> Result<$name, ApiError> {
                s.strip_prefix($prefix)
                    .filter(|hex| {
                        hex.len() == 16
                            && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                    })
                    .and_then(|hex| u64::from_str_radix(hex, 16).ok())
                    .map($name)
                    .ok_or_else(|| ApiError::not_found(format!(concat!("no ", $what, " with id {}"), quote(s))))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

id_type!(
    /// A call as the API names it: `c_` and 16 hex digits.
    CallId, "c_", "call"
);
id_type!(
    /// A supervision as the API names it: `s_` and 16 hex digits.
    SupervisionId, "s_", "supervision"
);

/// The two parties of a call (the supervisors are addressed through their supervisions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Party {
    Customer,
    Agent,
}

impl Party {
    pub const fn as_str(self) -> &'static str {
        match self {
            Party::Customer => "customer",
            Party::Agent => "agent",
        }
    }
}

impl FromStr for Party {
    type Err = ();
    fn from_str(s: &str) -> Result<Party, ()> {
        match s {
            "customer" => Ok(Party::Customer),
            "agent" => Ok(Party::Agent),
            _ => Err(()),
        }
    }
}

/// A leg as requested: where the party sends from (if known) and its codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegRequest {
    pub remote: Option<SocketAddr>,
    pub codec: Codec,
}

impl Default for LegRequest {
    /// A latching µ-law leg (docs/api.md: every field is optional).
    fn default() -> Self {
        LegRequest {
            remote: None,
            codec: Codec::Pcmu,
        }
    }
}

/// `POST /v1/calls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall {
    pub customer: LegRequest,
    pub agent: LegRequest,
    pub direction: Direction,
    /// The agent's user id, as the softswitch names it.
    pub agent_id: Option<String>,
    /// Outbound: whether the agent has answered (inbound calls reach the agent answered).
    pub agent_answered: bool,
    /// A web call: never supervised (SPEC §2).
    pub web: bool,
}

impl Default for NewCall {
    /// An established inbound business call with two latching µ-law legs.
    fn default() -> NewCall {
        NewCall {
            customer: LegRequest::default(),
            agent: LegRequest::default(),
            direction: Direction::Inbound,
            agent_id: None,
            agent_answered: true,
            web: false,
        }
    }
}

/// `POST /v1/calls/{id}/supervisions`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewSupervision {
    pub supervisor: LegRequest,
    /// `None`: the configured default (`media.agent_beep`).
    pub beep: Option<bool>,
    /// Who supervises, as the softswitch names them.
    pub supervisor_id: Option<String>,
    /// The supervisor's registered number, validated (SPEC §2 `validation`); `None`: none
    /// registered, and the session fails (`failed_supervisor_number_invalid`).
    pub registered_number: Option<SupervisorNumber>,
    /// The supervisor's leg is already up, answered from this calling number: the session is
    /// created ringing and answered at once.
    pub answered: Option<String>,
    /// Follow the agent to their next calls until stopped (SPEC §2); needs a grant.
    pub persistent: bool,
}

/// `POST /v1/supervisions/{id}/events`: what the softswitch reports about the supervisor's leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupervisorEvent {
    Ringing,
    Answered { calling_number: String },
    Rejected,
    Dnd,
    Hangup,
}

/// `PATCH /v1/supervisions/{id}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModeChange {
    pub mode: Mode,
}

/// `PATCH /v1/calls/{id}/legs/{party}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteChange {
    pub remote: SocketAddr,
}

/// A flag of a call that makes it unsupervisable while set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flag {
    OnHold,
    Consult,
    SecurePayment,
    Conference,
}

impl Flag {
    pub const fn as_str(self) -> &'static str {
        match self {
            Flag::OnHold => "on_hold",
            Flag::Consult => "consult",
            Flag::SecurePayment => "secure_payment",
            Flag::Conference => "conference",
        }
    }
}

/// `POST /v1/calls/{id}/events`: what the softswitch reports about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEvent {
    /// `hold`, `consult_start`, … (`true`) and `resume`, `consult_end`, … (`false`).
    Flag { flag: Flag, set: bool },
    /// The customer or the agent hung up; the call ends when both have.
    Hangup(Party),
    /// A supervisor hung up: that supervision is aborted.
    SupervisorHangup(SupervisionId),
    /// The agent released the call: it ends for everyone.
    Release,
    /// Outbound: the agent answered.
    AgentAnswered,
}

/// The names of the flag events, in the order the error message lists them.
const FLAG_EVENTS: [(&str, Flag, bool); 8] = [
    ("hold", Flag::OnHold, true),
    ("resume", Flag::OnHold, false),
    ("consult_start", Flag::Consult, true),
    ("consult_end", Flag::Consult, false),
    ("secure_payment_start", Flag::SecurePayment, true),
    ("secure_payment_end", Flag::SecurePayment, false),
    ("conference_start", Flag::Conference, true),
    ("conference_end", Flag::Conference, false),
];

/// A request body: a JSON shape ([`FromBody::Raw`]) and its parse into a domain value.
pub trait FromBody: Sized {
    type Raw: DeserializeOwned;
    fn parse(raw: Self::Raw) -> Result<Self, ApiError>;
}

/// A body whose JSON shape is already its domain value (serde's types and
/// `deny_unknown_fields` say all there is to check).
pub trait PlainBody: DeserializeOwned {}

impl<T: PlainBody> FromBody for T {
    type Raw = T;
    fn parse(raw: T) -> Result<T, ApiError> {
        Ok(raw)
    }
}

/// A fresh identifier for a resource the appliance names: `prefix` + 16 lowercase hex digits
/// from the OS's random number generator.
pub(crate) fn random_id(prefix: &str) -> Result<String, ApiError> {
    getrandom::u64()
        .map(|n| format!("{prefix}{n:016x}"))
        .map_err(|e| ApiError::internal(format!("no random identifier from the OS: {e}")))
}

/// Parses `"ip:port"`; port 0 is refused (it names no endpoint a party can send from).
pub(crate) fn parse_address(field: &str, s: &str) -> Result<SocketAddr, ApiError> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        ApiError::invalid_address(format!(
            "{field}: {} is not an address of the form ip:port (IPv6: [addr]:port)",
            quote(s)
        ))
    })?;
    if addr.port() == 0 {
        return Err(ApiError::invalid_address(format!(
            "{field}: port 0 in {}",
            quote(s)
        )));
    }
    if let Some(kind) = not_a_party(addr.ip()) {
        return Err(ApiError::invalid_address(format!(
            "{field}: {} is {kind}, not one party's address",
            quote(s)
        )));
    }
    Ok(addr)
}

/// Why `ip` cannot be a party's media address, if it cannot: RTP to a leg goes to exactly one
/// host (RFC 3550 §11: unicast sessions), so broadcast, multicast, unspecified and the IPv4
/// "this network" and reserved blocks (RFC 1122 §3.2.1.3, RFC 1112 §4) are refused, also
/// written as IPv4-mapped IPv6. Loopback and private addresses are fine (a lab, a LAN).
fn not_a_party(ip: std::net::IpAddr) -> Option<&'static str> {
    use std::net::IpAddr;
    match ip.to_canonical() {
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the broadcast address"),
        IpAddr::V4(v4) if v4.is_multicast() => Some("a multicast address"),
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        // 0.0.0.0/8: "this host on this network", never a destination.
        IpAddr::V4(v4) if v4.octets()[0] == 0 => Some("a \"this network\" address (0.0.0.0/8)"),
        // 240.0.0.0/4: reserved (class E).
        IpAddr::V4(v4) if v4.octets()[0] >= 240 => Some("a reserved address (240.0.0.0/4)"),
        IpAddr::V6(v6) if v6.is_multicast() => Some("a multicast address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        _ => None,
    }
}

fn parse_codec(field: &str, s: &str) -> Result<Codec, ApiError> {
    s.parse().map_err(|_| {
        ApiError::invalid_body(format!(
            "{field}: unknown codec {} (expected pcmu or pcma)",
            quote(s)
        ))
    })
}

/// A user id the softswitch or a client gave (a supervisor's or an agent's), checked by the one
/// rule for user ids, [`crate::domain::agents::UserId::parse`]: an agent id accepted on a call
/// is then one that access control, the groups and the event scopes can name too (an id they
/// could not parse would make the call vanish from its supervisors' view, docs/design.md §3).
fn parse_identity(field: &str, s: String) -> Result<String, ApiError> {
    match crate::domain::agents::UserId::parse(&s) {
        Ok(_) => Ok(s),
        Err(e) => Err(ApiError::invalid_body(format!(
            "{field}: {} is not a user id: {}",
            quote(&s),
            e.reason
        ))),
    }
}

/// A calling number as reported: anything short without control characters (it is compared,
/// never trusted; but it is logged and shown).
fn parse_calling_number(field: &str, s: String) -> Result<String, ApiError> {
    if s.chars().count() > CALLING_NUMBER_LEN_MAX {
        return Err(ApiError::invalid_body(format!(
            "{field}: longer than {CALLING_NUMBER_LEN_MAX} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(ApiError::invalid_body(format!(
            "{field}: {} contains control characters",
            quote(&s)
        )));
    }
    Ok(s)
}

/// A supervisor's `registered_number`. SPEC §2 `validation`: refused with its own code and the
/// SPEC's words.
pub(crate) fn parse_registered_number(s: &str) -> Result<SupervisorNumber, ApiError> {
    validate_supervisor_number(s).map_err(|alert| {
        ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            ValidationAlert::CODE,
            format!("registered_number: {alert}"),
        )
    })
}

fn parse_direction(s: &str) -> Result<Direction, ApiError> {
    match s {
        "inbound" => Ok(Direction::Inbound),
        "outbound" => Ok(Direction::Outbound),
        _ => Err(ApiError::invalid_body(format!(
            "direction: unknown direction {} (expected inbound or outbound)",
            quote(s)
        ))),
    }
}

pub(crate) fn parse_mode(s: &str) -> Result<Mode, ApiError> {
    s.parse().map_err(|_| {
        let valid: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
        ApiError::invalid_mode(format!(
            "unknown mode {} (expected one of: {})",
            quote(s),
            valid.join(", ")
        ))
    })
}

/// Deserializes a nested object, refusing the sequence form serde's derive would also accept.
fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? {
        None => Ok(None),
        Some(map) => serde_path_to_error::deserialize(serde_json::Value::Object(map))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLeg {
    #[serde(default)]
    remote: Option<String>,
    #[serde(default)]
    codec: Option<String>,
}

impl RawLeg {
    fn parse(raw: Option<RawLeg>, field: &str) -> Result<LegRequest, ApiError> {
        let Some(raw) = raw else {
            return Ok(LegRequest::default());
        };
        let remote = match &raw.remote {
            None => None,
            Some(s) => Some(parse_address(&format!("{field}.remote"), s)?),
        };
        let codec = match &raw.codec {
            None => Codec::Pcmu,
            Some(s) => parse_codec(&format!("{field}.codec"), s)?,
        };
        Ok(LegRequest { remote, codec })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNewCall {
    #[serde(default, deserialize_with = "object")]
    customer: Option<RawLeg>,
    #[serde(default, deserialize_with = "object")]
    agent: Option<RawLeg>,
    #[serde(default)]
    direction: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    agent_answered: Option<bool>,
    #[serde(default)]
    web: Option<bool>,
}

impl FromBody for NewCall {
    type Raw = RawNewCall;
    fn parse(raw: RawNewCall) -> Result<NewCall, ApiError> {
        Ok(NewCall {
            customer: RawLeg::parse(raw.customer, "customer")?,
            agent: RawLeg::parse(raw.agent, "agent")?,
            direction: raw
                .direction
                .as_deref()
                .map_or(Ok(Direction::Inbound), parse_direction)?,
            agent_id: raw
                .agent_id
                .map(|id| parse_identity("agent_id", id))
                .transpose()?,
            agent_answered: raw.agent_answered.unwrap_or(true),
            web: raw.web.unwrap_or(false),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswered {
    calling_number: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNewSupervision {
    #[serde(default, deserialize_with = "object")]
    supervisor: Option<RawLeg>,
    #[serde(default)]
    beep: Option<bool>,
    #[serde(default)]
    supervisor_id: Option<String>,
    #[serde(default)]
    registered_number: Option<String>,
    #[serde(default, deserialize_with = "object")]
    answered: Option<RawAnswered>,
    #[serde(default)]
    persistent: Option<bool>,
}

impl FromBody for NewSupervision {
    type Raw = RawNewSupervision;
    fn parse(raw: RawNewSupervision) -> Result<NewSupervision, ApiError> {
        let registered_number = raw
            .registered_number
            .as_deref()
            .map(parse_registered_number)
            .transpose()?;
        Ok(NewSupervision {
            supervisor: RawLeg::parse(raw.supervisor, "supervisor")?,
            beep: raw.beep,
            supervisor_id: raw
                .supervisor_id
                .map(|id| parse_identity("supervisor_id", id))
                .transpose()?,
            registered_number,
            answered: raw
                .answered
                .map(|a| parse_calling_number("answered.calling_number", a.calling_number))
                .transpose()?,
            persistent: raw.persistent.unwrap_or(false),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSupervisorEvent {
    event: String,
    #[serde(default)]
    calling_number: Option<String>,
}

impl FromBody for SupervisorEvent {
    type Raw = RawSupervisorEvent;
    fn parse(raw: RawSupervisorEvent) -> Result<SupervisorEvent, ApiError> {
        let event = match raw.event.as_str() {
            "ringing" => SupervisorEvent::Ringing,
            "answered" => {
                let Some(calling_number) = raw.calling_number else {
                    return Err(ApiError::invalid_event(
                        "answered needs the calling_number the supervisor's leg was answered from",
                    ));
                };
                return Ok(SupervisorEvent::Answered {
                    calling_number: parse_calling_number("calling_number", calling_number)?,
                });
            }
            "rejected" => SupervisorEvent::Rejected,
            "dnd" => SupervisorEvent::Dnd,
            "hangup" => SupervisorEvent::Hangup,
            other => {
                return Err(ApiError::invalid_event(format!(
                    "unknown event {} (expected one of: ringing, answered, rejected, dnd, hangup)",
                    quote(other)
                )));
            }
        };
        if raw.calling_number.is_some() {
            return Err(ApiError::invalid_event(format!(
                "event {} takes no calling_number",
                raw.event
            )));
        }
        Ok(event)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModeChange {
    mode: String,
}

impl FromBody for ModeChange {
    type Raw = RawModeChange;
    fn parse(raw: RawModeChange) -> Result<ModeChange, ApiError> {
        Ok(ModeChange {
            mode: parse_mode(&raw.mode)?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemoteChange {
    remote: String,
}

impl FromBody for RemoteChange {
    type Raw = RawRemoteChange;
    fn parse(raw: RawRemoteChange) -> Result<RemoteChange, ApiError> {
        Ok(RemoteChange {
            remote: parse_address("remote", &raw.remote)?,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCallEvent {
    event: String,
    #[serde(default)]
    party: Option<String>,
    #[serde(default)]
    supervision_id: Option<String>,
}

impl FromBody for CallEvent {
    type Raw = RawCallEvent;
    fn parse(raw: RawCallEvent) -> Result<CallEvent, ApiError> {
        if raw.event == "hangup" {
            return match (raw.party.as_deref(), raw.supervision_id.as_deref()) {
                (Some("supervisor"), Some(id)) => Ok(CallEvent::SupervisorHangup(id.parse()?)),
                (Some("supervisor"), None) => Err(ApiError::invalid_event(
                    "a hangup of party supervisor needs a supervision_id",
                )),
                (Some(party), None) => party.parse().map(CallEvent::Hangup).map_err(|()| {
                    ApiError::invalid_event(format!(
                        "hangup: unknown party {} (expected customer, agent or supervisor)",
                        quote(party)
                    ))
                }),
                (Some(_), Some(_)) => Err(ApiError::invalid_event(
                    "supervision_id goes only with a hangup of party supervisor",
                )),
                (None, _) => Err(ApiError::invalid_event(
                    "a hangup needs a party (customer, agent or supervisor)",
                )),
            };
        }
        let simple = match raw.event.as_str() {
            "release" => Some(CallEvent::Release),
            "agent_answered" => Some(CallEvent::AgentAnswered),
            _ => None,
        };
        let found = FLAG_EVENTS
            .iter()
            .find(|(name, _, _)| *name == raw.event)
            .map(|&(_, flag, set)| CallEvent::Flag { flag, set });
        let Some(event) = simple.or(found) else {
            let mut valid: Vec<&str> = FLAG_EVENTS.iter().map(|(name, _, _)| *name).collect();
            valid.extend(["hangup", "release", "agent_answered"]);
            return Err(ApiError::invalid_event(format!(
                "unknown event {} (expected one of: {})",
                quote(&raw.event),
                valid.join(", ")
            )));
        };
        if raw.party.is_some() || raw.supervision_id.is_some() {
            return Err(ApiError::invalid_event(format!(
                "event {} takes no party or supervision_id",
                raw.event
            )));
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(json: &str) -> Result<CallEvent, ApiError> {
        CallEvent::parse(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn ids_round_trip_and_refuse_lookalikes() {
        let id = CallId(0x0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "c_0123456789abcdef");
        assert_eq!("c_0123456789abcdef".parse::<CallId>().unwrap(), id);
        for bad in [
            "c_0123456789ABCDEF",
            "c_+123456789abcdef",
            "c_0123",
            "s_0123456789abcdef",
            "",
            "c_",
        ] {
            let err = bad.parse::<CallId>().unwrap_err();
            assert_eq!(err.code, "not_found", "{bad}");
        }
        assert!("s_00000000000000ff".parse::<SupervisionId>().is_ok());
    }

    #[test]
    fn addresses() {
        assert_eq!(
            parse_address("r", "[::1]:4000").unwrap(),
            "[::1]:4000".parse().unwrap()
        );
        for bad in [
            "1.2.3.4",
            "1.2.3.4:0",
            "host:5",
            "1.2.3.4:70000",
            "::1:4000",
            "",
        ] {
            assert_eq!(
                parse_address("r", bad).unwrap_err().code,
                "invalid_address",
                "{bad}"
            );
        }
    }

    #[test]
    fn events() {
        assert_eq!(
            event(r#"{"event":"hold"}"#).unwrap(),
            CallEvent::Flag {
                flag: Flag::OnHold,
                set: true
            }
        );
        assert_eq!(
            event(r#"{"event":"hangup","party":"agent"}"#).unwrap(),
            CallEvent::Hangup(Party::Agent)
        );
        assert_eq!(
            event(
                r#"{"event":"hangup","party":"supervisor","supervision_id":"s_0000000000000001"}"#
            )
            .unwrap(),
            CallEvent::SupervisorHangup(SupervisionId(1))
        );
        for bad in [
            r#"{"event":"explode"}"#,
            r#"{"event":"hangup"}"#,
            r#"{"event":"hangup","party":"bystander"}"#,
            r#"{"event":"hangup","party":"supervisor"}"#,
            r#"{"event":"hangup","party":"agent","supervision_id":"s_0000000000000001"}"#,
            r#"{"event":"hold","party":"agent"}"#,
        ] {
            assert_eq!(event(bad).unwrap_err().code, "invalid_event", "{bad}");
        }
    }

    #[test]
    fn call_events_of_the_lifecycle() {
        assert_eq!(event(r#"{"event":"release"}"#).unwrap(), CallEvent::Release);
        assert_eq!(
            event(r#"{"event":"agent_answered"}"#).unwrap(),
            CallEvent::AgentAnswered
        );
        let err = event(r#"{"event":"explode"}"#).unwrap_err();
        assert!(err.message.contains("agent_answered"), "{}", err.message);
        assert_eq!(
            event(r#"{"event":"release","party":"agent"}"#)
                .unwrap_err()
                .code,
            "invalid_event"
        );
    }

    fn supervisor_event(json: &str) -> Result<SupervisorEvent, ApiError> {
        SupervisorEvent::parse(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn supervisor_events() {
        assert_eq!(
            supervisor_event(r#"{"event":"answered","calling_number":"+15550100"}"#).unwrap(),
            SupervisorEvent::Answered {
                calling_number: "+15550100".into()
            }
        );
        for (json, expected) in [
            (r#"{"event":"ringing"}"#, SupervisorEvent::Ringing),
            (r#"{"event":"rejected"}"#, SupervisorEvent::Rejected),
            (r#"{"event":"dnd"}"#, SupervisorEvent::Dnd),
            (r#"{"event":"hangup"}"#, SupervisorEvent::Hangup),
        ] {
            assert_eq!(supervisor_event(json).unwrap(), expected, "{json}");
        }
        for bad in [
            r#"{"event":"answered"}"#,
            r#"{"event":"ringing","calling_number":"1"}"#,
            r#"{"event":"Ringing"}"#,
        ] {
            assert_eq!(
                supervisor_event(bad).unwrap_err().code,
                "invalid_event",
                "{bad}"
            );
        }
        let long = format!(
            r#"{{"event":"answered","calling_number":"{}"}}"#,
            "1".repeat(CALLING_NUMBER_LEN_MAX + 1)
        );
        assert_eq!(supervisor_event(&long).unwrap_err().code, "invalid_body");
    }

    /// As the `Body` extractor does: a JSON shape error is `invalid_body` too.
    fn new_supervision(json: &str) -> Result<NewSupervision, ApiError> {
        let raw = serde_json::from_str(json).map_err(|e| ApiError::invalid_body(e.to_string()))?;
        NewSupervision::parse(raw)
    }

    #[test]
    fn supervision_requests() {
        let req = new_supervision(
            r#"{"supervisor_id":"sup-1","registered_number":"+441632960000",
                "answered":{"calling_number":"441632960000"}}"#,
        )
        .unwrap();
        assert_eq!(req.supervisor_id.as_deref(), Some("sup-1"));
        assert_eq!(
            req.registered_number.map(|n| n.digits().to_owned()),
            Some("441632960000".to_owned())
        );
        assert_eq!(req.answered.as_deref(), Some("441632960000"));
        assert_eq!(new_supervision("{}").unwrap(), NewSupervision::default());
        let err = new_supervision(r#"{"registered_number":"44 16"}"#).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "validation"));
        assert!(
            err.message
                .contains("the supervisor telephone number must be a number"),
            "{}",
            err.message
        );
        for bad in [
            r#"{"supervisor_id":""}"#,
            r#"{"supervisor_id":"a\nb"}"#,
            r#"{"answered":{}}"#,
            r#"{"answered":{"calling_number":"1","from":"x"}}"#,
        ] {
            assert_eq!(
                new_supervision(bad).unwrap_err().code,
                "invalid_body",
                "{bad}"
            );
        }
    }

    #[test]
    fn call_requests() {
        let call = NewCall::parse(
            serde_json::from_str(
                r#"{"direction":"outbound","agent_id":"agent-7","agent_answered":false,"web":true}"#,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (
                call.direction,
                call.agent_id.as_deref(),
                call.agent_answered,
                call.web
            ),
            (Direction::Outbound, Some("agent-7"), false, true)
        );
        let err = NewCall::parse(serde_json::from_str(r#"{"direction":"sideways"}"#).unwrap())
            .unwrap_err();
        assert_eq!(err.code, "invalid_body");
        // The one user id rule: what a call accepts, every other part can name.
        for bad in ["agent 7", "agent/7", "é", &"a".repeat(65)] {
            let body = serde_json::json!({ "agent_id": bad });
            let err = NewCall::parse(serde_json::from_value(body).unwrap()).unwrap_err();
            assert_eq!(err.code, "invalid_body", "{bad}");
            assert!(err.message.contains("not a user id"), "{}", err.message);
        }
        let longest = "a".repeat(64);
        let body = serde_json::json!({ "agent_id": longest });
        let call = NewCall::parse(serde_json::from_value(body).unwrap()).unwrap();
        assert!(crate::domain::agents::UserId::parse(call.agent_id.as_deref().unwrap()).is_ok());
    }

    #[test]
    fn modes_list_the_valid_ones() {
        let err = parse_mode("shout").unwrap_err();
        assert_eq!(err.code, "invalid_mode");
        assert!(err.message.contains("takeover_listen"), "{}", err.message);
    }

    #[test]
    fn quotes_are_bounded() {
        let long = "x".repeat(10_000);
        assert!(quote(&long).len() < 100);
    }
}
