//! Request bodies: the JSON shapes of docs/api.md and their parse into domain values
//! (docs/design.md §9). Each body has a `Raw*` serde twin that only knows the JSON shape
//! (unknown fields refused); [`FromBody::parse`] turns it into the domain type, or into the
//! [`ApiError`] the contract (docs/api.md) names for that kind of bad value.

use dataplane::wire::g711::Codec;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use crate::domain::call::{
    CallEvent, LegRequest, ModeChange, NewCall, NewSupervision, RemoteChange, SupervisorEvent,
    parse_address, parse_calling_number, parse_codec, parse_direction, parse_identity, parse_mode,
    parse_registered_number,
};
use crate::domain::lifecycle::Direction;
use crate::http::error::ApiError;

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

/// Deserializes a nested object, refusing the sequence form serde's derive would also accept.
fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Option<T>, D::Error> {
    match Option::<serde_json::Map<String, serde_json::Value>>::deserialize(d)? {
        None => Ok(None),
        Some(map) => serde_path_to_error::deserialize(serde_json::Value::Object(map))
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LegRequest, description = "A media leg as requested.")]
pub struct RawLeg {
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::schemas::leg_remote)]
    remote: Option<String>,
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::schemas::leg_codec)]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = NewCall,
    description = "`POST /v1/calls`: every field is optional; `{}` is an established inbound \
                   call with two latching µ-law legs."
)]
pub struct RawNewCall {
    /// The customer's leg (default: latching µ-law).
    #[serde(default, deserialize_with = "object")]
    customer: Option<RawLeg>,
    /// The agent's leg (default: latching µ-law).
    #[serde(default, deserialize_with = "object")]
    agent: Option<RawLeg>,
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::schemas::call_direction)]
    direction: Option<String>,
    /// The agent's user id as the softswitch names it (the one rule for user ids: 1 to 64 of
    /// `A-Z a-z 0-9 . _ - : @`).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    agent_id: Option<String>,
    /// Outbound only (default true): false while the agent's phone still rings, until the
    /// `agent_answered` event.
    #[serde(default)]
    agent_answered: Option<bool>,
    /// A web call (default false): never supervised.
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAnswered {
    #[schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    calling_number: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = NewSupervision,
    description = "`POST /v1/calls/{call}/supervisions`: every field is optional."
)]
pub struct RawNewSupervision {
    /// The supervisor's media leg.
    #[serde(default, deserialize_with = "object")]
    supervisor: Option<RawLeg>,
    /// A short 1400 Hz beep to the agent when media connects (default: the groups' policy, else
    /// `media.agent_beep`).
    #[serde(default)]
    beep: Option<bool>,
    /// Who supervises (a user id). A supervisor may omit it (it is then theirs) and may not
    /// name anyone else; admins may name anyone.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    supervisor_id: Option<String>,
    /// The supervisor's registered number: optional `+` then 3 to 20 digits (else `400
    /// validation`). Absent: the console's setting, if any.
    #[serde(default)]
    #[schema(pattern = "^\\+?[0-9]{3,20}$")]
    registered_number: Option<String>,
    /// The supervisor's leg is already up, answered from this number.
    #[serde(default, deserialize_with = "object")]
    #[schema(inline)]
    answered: Option<RawAnswered>,
    /// Follow the agent to their next calls until stopped (docs/design.md §2; default false):
    /// needs the supervisor's active grant over the agent (`POST /v1/grants`), else `403
    /// grant_required`.
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = SupervisorEvent,
    description = "What the softswitch reports about the supervisor's leg."
)]
pub struct RawSupervisorEvent {
    #[schema(schema_with = crate::http::openapi::schemas::supervisor_event_names)]
    event: String,
    /// `answered` only, and required with it: up to 128 characters, no control characters.
    #[serde(default)]
    #[schema(max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    calling_number: Option<String>,
}

impl FromBody for SupervisorEvent {
    type Raw = RawSupervisorEvent;
    fn parse(raw: RawSupervisorEvent) -> Result<SupervisorEvent, ApiError> {
        Ok(SupervisorEvent::parse(&raw.event, raw.calling_number)?)
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ModeChange)]
pub struct RawModeChange {
    #[schema(schema_with = crate::http::openapi::schemas::mode_names)]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = RemoteChange,
    description = "Sets or changes a leg's remote address; the leg becomes strict."
)]
pub struct RawRemoteChange {
    #[schema(schema_with = crate::http::openapi::schemas::remote_address)]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CallEvent, description = "What the softswitch reports about a call.")]
pub struct RawCallEvent {
    #[schema(schema_with = crate::http::openapi::schemas::call_event_names)]
    event: String,
    #[serde(default)]
    #[schema(schema_with = crate::http::openapi::schemas::hangup_party)]
    party: Option<String>,
    /// `hangup` of party `supervisor` only, and required with it.
    #[serde(default)]
    #[schema(pattern = "^s_[0-9a-f]{16}$")]
    supervision_id: Option<String>,
}

impl FromBody for CallEvent {
    type Raw = RawCallEvent;
    fn parse(raw: RawCallEvent) -> Result<CallEvent, ApiError> {
        Ok(CallEvent::parse(
            &raw.event,
            raw.party.as_deref(),
            raw.supervision_id.as_deref(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::call::{CALLING_NUMBER_LEN_MAX, CallId, Flag, Party, SupervisionId};
    use crate::domain::ids::quote;

    fn event(json: &str) -> Result<CallEvent, ApiError> {
        <CallEvent as FromBody>::parse(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn ids_round_trip_and_refuse_lookalikes() {
        let id = CallId::from_u64(0x0123_4567_89ab_cdef);
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
            let err = ApiError::from(bad.parse::<CallId>().unwrap_err());
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
                ApiError::from(parse_address("r", bad).unwrap_err()).code,
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
            CallEvent::SupervisorHangup(SupervisionId::from_u64(1))
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
        <SupervisorEvent as FromBody>::parse(serde_json::from_str(json).unwrap())
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
        let err = ApiError::from(parse_mode("shout").unwrap_err());
        assert_eq!(err.code, "invalid_mode");
        assert!(err.message.contains("takeover_listen"), "{}", err.message);
    }

    #[test]
    fn quotes_are_bounded() {
        let long = "x".repeat(10_000);
        assert!(quote(&long).len() < 100);
    }
}
