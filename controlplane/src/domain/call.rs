//! Domain types of calls and supervisions: what the softswitch asks for and reports, validated
//! (docs/design.md §9: request bodies become these values by parsing, so the use cases never
//! see raw strings). The JSON shapes they are parsed from live in the HTTP adapter.

use core::str::FromStr;
use std::net::SocketAddr;

use dataplane::media::matrix::Mode;
use dataplane::wire::g711::Codec;

use crate::domain::ids::quote;
pub use crate::domain::ids::{CallId, IdError, SupervisionId};
use crate::domain::lifecycle::{Direction, SupervisorNumber, validate_supervisor_number};

/// Longest calling number the softswitch may report (E.164 has 15 digits; room for a SIP user
/// part, which then does not match).
pub const CALLING_NUMBER_LEN_MAX: usize = 128;

/// Why a value the softswitch sent is not one the appliance accepts; each kind is its own
/// error code in docs/api.md (Errors), the message says which field and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// A field's value is not of its kind (`invalid_body`).
    #[error("{0}")]
    Body(String),
    /// An address no party can have (`invalid_address`).
    #[error("{0}")]
    Address(String),
    /// A supervision mode that does not exist (`invalid_mode`).
    #[error("{0}")]
    Mode(String),
    /// An event that does not exist, or with the wrong fields (`invalid_event`).
    #[error("{0}")]
    Event(String),
    /// A supervisor number refused by the validation rule (docs/design.md §2, `validation`).
    #[error("{0}")]
    Validation(String),
    /// An id that names nothing (`not_found`).
    #[error(transparent)]
    Id(#[from] IdError),
}

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
    /// A web call: never supervised (docs/design.md §2.10).
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
    /// The supervisor's registered number, validated (docs/design.md §2.8 `validation`); `None`:
    /// none registered, and the session fails (`failed_supervisor_number_invalid`).
    pub registered_number: Option<SupervisorNumber>,
    /// The supervisor's leg is already up, answered from this calling number: the session is
    /// created ringing and answered at once.
    pub answered: Option<String>,
    /// Follow the agent to their next calls until stopped (docs/design.md §2.7); needs a grant.
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

/// Parses `"ip:port"`; port 0 is refused (it names no endpoint a party can send from).
pub fn parse_address(field: &str, s: &str) -> Result<SocketAddr, InputError> {
    let addr: SocketAddr = s.parse().map_err(|_| {
        InputError::Address(format!(
            "{field}: {} is not an address of the form ip:port (IPv6: [addr]:port)",
            quote(s)
        ))
    })?;
    if addr.port() == 0 {
        return Err(InputError::Address(format!(
            "{field}: port 0 in {}",
            quote(s)
        )));
    }
    if let Some(kind) = not_a_party(addr.ip()) {
        return Err(InputError::Address(format!(
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

pub fn parse_codec(field: &str, s: &str) -> Result<Codec, InputError> {
    s.parse().map_err(|_| {
        InputError::Body(format!(
            "{field}: unknown codec {} (expected pcmu or pcma)",
            quote(s)
        ))
    })
}

/// A user id the softswitch or a client gave (a supervisor's or an agent's), checked by the one
/// rule for user ids, [`crate::domain::agents::UserId::parse`]: an agent id accepted on a call
/// is then one that access control, the groups and the event scopes can name too (an id they
/// could not parse would make the call vanish from its supervisors' view, docs/design.md §3).
pub fn parse_identity(field: &str, s: String) -> Result<String, InputError> {
    match crate::domain::agents::UserId::parse(&s) {
        Ok(_) => Ok(s),
        Err(e) => Err(InputError::Body(format!(
            "{field}: {} is not a user id: {}",
            quote(&s),
            e.reason
        ))),
    }
}

/// A calling number as reported: anything short without control characters (it is compared,
/// never trusted; but it is logged and shown).
pub fn parse_calling_number(field: &str, s: String) -> Result<String, InputError> {
    if s.chars().count() > CALLING_NUMBER_LEN_MAX {
        return Err(InputError::Body(format!(
            "{field}: longer than {CALLING_NUMBER_LEN_MAX} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(InputError::Body(format!(
            "{field}: {} contains control characters",
            quote(&s)
        )));
    }
    Ok(s)
}

/// A supervisor's `registered_number`. docs/design.md §2.8 `validation`: refused with its own code
/// and the alert's words.
pub fn parse_registered_number(s: &str) -> Result<SupervisorNumber, InputError> {
    validate_supervisor_number(s).map_err(|alert| {
        // Its code is the lifecycle's `ValidationAlert::CODE` (mapped in the HTTP adapter).
        InputError::Validation(format!("registered_number: {alert}"))
    })
}

pub fn parse_direction(s: &str) -> Result<Direction, InputError> {
    match s {
        "inbound" => Ok(Direction::Inbound),
        "outbound" => Ok(Direction::Outbound),
        _ => Err(InputError::Body(format!(
            "direction: unknown direction {} (expected inbound or outbound)",
            quote(s)
        ))),
    }
}

pub fn parse_mode(s: &str) -> Result<Mode, InputError> {
    s.parse().map_err(|_| {
        let valid: Vec<&str> = Mode::ALL.iter().map(|m| m.as_str()).collect();
        InputError::Mode(format!(
            "unknown mode {} (expected one of: {})",
            quote(s),
            valid.join(", ")
        ))
    })
}

impl SupervisorEvent {
    /// The event named `event`; `answered` needs the calling number, the others take none.
    pub fn parse(event: &str, calling_number: Option<String>) -> Result<Self, InputError> {
        let parsed = match event {
            "ringing" => SupervisorEvent::Ringing,
            "answered" => {
                let Some(calling_number) = calling_number else {
                    return Err(InputError::Event(
                        "answered needs the calling_number the supervisor's leg was answered from"
                            .to_owned(),
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
                return Err(InputError::Event(format!(
                    "unknown event {} (expected one of: ringing, answered, rejected, dnd, hangup)",
                    quote(other)
                )));
            }
        };
        if calling_number.is_some() {
            return Err(InputError::Event(format!(
                "event {event} takes no calling_number"
            )));
        }
        Ok(parsed)
    }
}

impl CallEvent {
    /// The event named `event`; a `hangup` names its party (and a supervisor's hangup, the
    /// supervision), the others take neither.
    pub fn parse(
        event: &str,
        party: Option<&str>,
        supervision_id: Option<&str>,
    ) -> Result<Self, InputError> {
        if event == "hangup" {
            return match (party, supervision_id) {
                (Some("supervisor"), Some(id)) => Ok(CallEvent::SupervisorHangup(id.parse()?)),
                (Some("supervisor"), None) => Err(InputError::Event(
                    "a hangup of party supervisor needs a supervision_id".to_owned(),
                )),
                (Some(party), None) => party.parse().map(CallEvent::Hangup).map_err(|()| {
                    InputError::Event(format!(
                        "hangup: unknown party {} (expected customer, agent or supervisor)",
                        quote(party)
                    ))
                }),
                (Some(_), Some(_)) => Err(InputError::Event(
                    "supervision_id goes only with a hangup of party supervisor".to_owned(),
                )),
                (None, _) => Err(InputError::Event(
                    "a hangup needs a party (customer, agent or supervisor)".to_owned(),
                )),
            };
        }
        let simple = match event {
            "release" => Some(CallEvent::Release),
            "agent_answered" => Some(CallEvent::AgentAnswered),
            _ => None,
        };
        let found = FLAG_EVENTS
            .iter()
            .find(|(name, _, _)| *name == event)
            .map(|&(_, flag, set)| CallEvent::Flag { flag, set });
        let Some(parsed) = simple.or(found) else {
            let mut valid: Vec<&str> = FLAG_EVENTS.iter().map(|(name, _, _)| *name).collect();
            valid.extend(["hangup", "release", "agent_answered"]);
            return Err(InputError::Event(format!(
                "unknown event {} (expected one of: {})",
                quote(event),
                valid.join(", ")
            )));
        };
        if party.is_some() || supervision_id.is_some() {
            return Err(InputError::Event(format!(
                "event {event} takes no party or supervision_id"
            )));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            assert!(
                matches!(parse_address("r", bad), Err(InputError::Address(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn modes_list_the_valid_ones() {
        let err = parse_mode("shout").unwrap_err();
        assert!(matches!(err, InputError::Mode(_)));
        assert!(err.to_string().contains("takeover_listen"), "{err}");
    }
}
