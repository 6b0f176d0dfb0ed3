//! Schemas the derives cannot state: a string field whose values a parser checks (named from
//! the domain's own lists), a reference to a shared schema, the schema of a type whose
//! `Serialize` is written by hand ([`DroppedView`]) or flattens another ([`with_secret`]), the
//! shared schemas no Rust type of ours has ([`built`]).

use dataplane::media::call::DropReason;
use dataplane::media::matrix::Mode;
use dataplane::wire::g711::Codec;
use serde_json::{Map, Value, json};
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};
use utoipa::openapi::{Ref, RefOr, Schema};

use crate::app::webhooks::EVENT_TYPES_MAX;
use crate::domain::agents::StateKind;
use crate::domain::auth::Role;
use crate::domain::ids::{CallId, GroupId, SupervisionId, USER_ID_LEN_MAX, UserId};
use crate::domain::lifecycle::SupervisionState;
use crate::domain::webhooks::EVENT_TYPE_LEN_MAX;
use crate::http::views::calls::DroppedView;

/// The shared schemas built here, by component name: those of types that are not ours (a
/// codec is the data plane's) or no type at all (a party's address is a `SocketAddr` the
/// parser narrows; an event stream is text). Added after the views are closed
/// (`additionalProperties: false`), as they are complete as built.
pub fn built() -> Vec<(&'static str, RefOr<Schema>)> {
    vec![
        ("Codec", codec()),
        ("RemoteAddress", remote_address_schema()),
        ("EventStream", event_stream()),
    ]
}

/// A leg's codec: the data plane's codecs ([`Codec::ALL`]), by the names `parse_codec`
/// accepts, each with its static payload type (RFC 3551 §6).
fn codec() -> RefOr<Schema> {
    let each: Vec<String> = Codec::ALL
        .into_iter()
        .map(|c| format!("`{c}` (G.711 {}, PT {})", g711_law(c), c.payload_type()))
        .collect();
    described(
        one_of(Codec::ALL.map(Codec::name)),
        &format!("{}.", each.join(" or ")),
    )
    .into()
}

/// The companding law of a G.711 codec (ITU-T G.711 §3).
fn g711_law(codec: Codec) -> &'static str {
    match codec {
        Codec::Pcmu => "µ-law",
        Codec::Pcma => "A-law",
    }
}

/// The IPv4 `ip:port` forms `domain::call::parse_address` accepts, as a JSON Schema pattern
/// (ECMA-262 syntax, JSON Schema 2020-12 §6.3.3). A first octet of 1 to 223: not `0.0.0.0/8`
/// ("this network"), `224.0.0.0/4` (multicast), `240.0.0.0/4` (reserved) or the broadcast
/// address, which the parser refuses (RFC 1122 §3.2.1.3, RFC 1112 §4).
const ADDRESS_FIRST_OCTET: &str = "(?:22[0-3]|2[01][0-9]|1[0-9]{2}|[1-9][0-9]?)";
/// Any other octet, 0 to 255, without leading zeros (std's `Ipv4Addr` parser refuses them).
const ADDRESS_OCTET: &str = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
/// A port of 1 to 65535: the parser refuses port 0, which names no endpoint.
const ADDRESS_PORT: &str =
    "(?:[1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])";

/// A party's address, from the documentation block (RFC 5737 §3: TEST-NET-2).
const ADDRESS_EXAMPLE: &str = "198.51.100.7:4000";

/// The pattern of `RemoteAddress`: an IPv4 address `parse_address` takes, and its port.
pub fn remote_address_pattern() -> String {
    format!(
        "^{ADDRESS_FIRST_OCTET}\\.{ADDRESS_OCTET}\\.{ADDRESS_OCTET}\\.{ADDRESS_OCTET}:{ADDRESS_PORT}$"
    )
}

/// A party's media address (`RemoteAddress`), as `domain::call::parse_address` checks it
/// (docs/api.md, Calls).
fn remote_address_schema() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(remote_address_pattern()))
        .examples([ADDRESS_EXAMPLE])
        .description(Some(
            "A party's media address, `ip:port` (IPv6: `[addr]:port`), of the media address's \
             IP family, port 1 to 65535. Not broadcast, multicast, unspecified, `0.0.0.0/8` or \
             `240.0.0.0/4` (`400 invalid_address`). The pattern states the IPv4 form; an \
             appliance whose media address is IPv6 takes IPv6 ones.",
        ))
        .into()
}

/// `GET /v1/events`'s body: Server-Sent Events (docs/api.md, Events; the WHATWG HTML
/// standard's `text/event-stream`), described by the fields of one message.
fn event_stream() -> RefOr<Schema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Server-Sent Events: each event has an `id`, an `event` (its type) and a `data` \
             line holding a JSON object; comment lines keep the connection alive.",
        ))
        .property("id", string())
        .property("event", string())
        .property("data", string())
        .required("data")
        .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
        .into()
}

/// `base`, a view's derived object schema, with one more required string property, `field`:
/// a secret an answer shows this once, beside the view (`#[serde(flatten)]`), as in
/// `POST /v1/tokens` and `POST /v1/webhooks` (docs/api.md). `description` is the answer's.
pub fn with_secret(
    base: RefOr<Schema>,
    field: &str,
    field_description: &str,
    description: &str,
) -> RefOr<Schema> {
    let RefOr::T(Schema::Object(mut object)) = base else {
        panic!("a view with a secret ({field}) has an object schema")
    };
    object.properties.insert(
        field.to_owned(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(field_description))
            .into(),
    );
    object.required.push(field.to_owned());
    object.description = Some(description.to_owned());
    object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    RefOr::T(Schema::Object(object))
}

/// A string, one of `names`.
fn one_of(names: impl IntoIterator<Item = &'static str>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names))
        .build()
        .into()
}

/// A token's role (`POST /v1/tokens`).
pub fn role_names() -> Schema {
    one_of(Role::ALL.map(Role::as_str))
}

/// An agent state (`PUT /v1/me/state`, `PUT /v1/agents/{user}/state`).
pub fn state_names() -> Schema {
    one_of(StateKind::ALL.map(StateKind::as_str))
}

/// A presence the platform reports (`PUT /v1/users/{user}/presence`): the names its body parser
/// accepts.
pub fn presence_names() -> Schema {
    one_of(["online", "busy", "away", "do_not_disturb", "offline"])
}

/// A user id (the shared `UserId` schema).
pub fn user_id() -> RefOr<Schema> {
    Ref::from_schema_name("UserId").into()
}

/// The rules between fields of a body that its parser enforces and a derive cannot state, as
/// `oneOf` alternatives added to the derived schema (so a client, or a fuzzer, that follows the
/// document sends only bodies the API accepts).
pub fn cross_field_rules() -> Map<String, Value> {
    let person: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| matches!(r, Role::Supervisor | Role::Agent))
        .map(Role::as_str)
        .collect();
    let service: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| !matches!(r, Role::Supervisor | Role::Agent))
        .map(Role::as_str)
        .collect();
    let mut rules = Map::new();
    // A supervisor's or agent's token names its user (docs/design.md §4).
    rules.insert(
        "NewToken".into(),
        json!([
            {"properties": {"role": {"enum": person}, "user_id": {"type": "string"}},
             "required": ["user_id"]},
            {"properties": {"role": {"enum": service}}},
        ]),
    );
    // `reason` goes with `pause` (and is required there), `case` with `busy` (docs/design.md §3).
    let others: Vec<&str> = StateKind::ALL
        .into_iter()
        .filter(|s| !matches!(s, StateKind::Pause | StateKind::Busy))
        .map(StateKind::as_str)
        .collect();
    rules.insert(
        "AgentStateChange".into(),
        json!([
            {"properties": {"state": {"const": "pause"}, "reason": {"type": "string"},
                            "case": {"type": "null"}},
             "required": ["reason"]},
            {"properties": {"state": {"const": "busy"}, "reason": {"type": "null"}}},
            {"properties": {"state": {"enum": others}, "reason": {"type": "null"},
                            "case": {"type": "null"}}},
        ]),
    );
    // `calling_number` goes with `answered`, and only with it (docs/api.md, Supervisions).
    rules.insert(
        "SupervisorEvent".into(),
        json!([
            {"properties": {"event": {"const": "answered"}, "calling_number": {"type": "string"}},
             "required": ["calling_number"]},
            {"properties": {"event": {"not": {"const": "answered"}}, "calling_number": {"type": "null"}}},
        ]),
    );
    // `party` goes with `hangup`, and `supervision_id` with a supervisor's hangup (docs/api.md,
    // Calls).
    rules.insert(
        "CallEvent".into(),
        json!([
            {"properties": {"event": {"const": "hangup"}, "party": {"enum": ["customer", "agent"]},
                            "supervision_id": {"type": "null"}},
             "required": ["party"]},
            {"properties": {"event": {"const": "hangup"}, "party": {"const": "supervisor"},
                            "supervision_id": {"type": "string"}},
             "required": ["party", "supervision_id"]},
            {"properties": {"event": {"not": {"const": "hangup"}}, "party": {"type": "null"},
                            "supervision_id": {"type": "null"}}},
        ]),
    );
    rules
}

/// The values of a view's string fields that are the domain's names, by schema and property:
/// the views are the app's (docs/design.md §9), whose derives cannot name the HTTP adapter's
/// schema helpers, so the names are set here, replacing the derived plain string.
pub fn property_rules() -> Map<String, Value> {
    let mut modes: Vec<Value> = Mode::ALL.map(|m| Value::from(m.as_str())).to_vec();
    modes.push(Value::Null);
    let mode_names: Vec<&str> = Mode::ALL.map(Mode::as_str).to_vec();
    let states: Vec<&str> = [
        SupervisionState::Requested,
        SupervisionState::Active,
        SupervisionState::NoCall,
        SupervisionState::Stopped,
        SupervisionState::Failed,
        SupervisionState::Aborted,
    ]
    .map(SupervisionState::as_str)
    .to_vec();
    let mut rules = Map::new();
    rules.insert(
        "AuditRecord".into(),
        json!({"mode": {"type": ["string", "null"], "enum": modes}}),
    );
    rules.insert(
        "Leg".into(),
        json!({
            "remote_source": {
                "type": ["string", "null"], "enum": ["configured", "latched", null],
                "description": "How `remote` was learnt: `configured` (given in the request or by \
                    `PATCH …/legs/{party}`: strict source) or `latched` (the first source the \
                    leg heard, which it is locked to); `null` while `remote` is."
            },
            "codec": {"$ref": "#/components/schemas/Codec"},
        }),
    );
    // JSON Schema's `const` (2020-12 §6.1.3), which utoipa's builders do not write.
    rules.insert(
        "Health".into(),
        json!({"status": {"type": "string", "const": crate::http::api::Health::OK}}),
    );
    rules.insert(
        "Call".into(),
        json!({"direction": {"type": "string", "enum": ["inbound", "outbound"]}}),
    );
    rules.insert(
        "Supervision".into(),
        json!({
            "state": {"type": "string", "enum": states},
            "mode": {
                "type": "string", "enum": mode_names,
                "description": "The current mode (`listen` until media connects), or the last \
                    one once ended."
            },
        }),
    );
    rules
}

/// A string, one of `names`, or `null` (an optional field of a body).
fn one_of_or_null(names: impl IntoIterator<Item = &'static str>) -> Schema {
    let mut values: Vec<Value> = names.into_iter().map(Value::from).collect();
    values.push(Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
        .build()
        .into()
}

/// A group's kind (`POST /v1/groups`; docs/design.md §3).
pub fn group_kind_names_or_null() -> Schema {
    one_of_or_null(["standard", "mutual_aid"])
}

/// A group's beep policy: the names `BeepPolicy::parse` accepts (docs/design.md §3).
pub fn beep_names_or_null() -> Schema {
    one_of_or_null(["none", "agent_beep", "periodic_notice"])
}

/// The platform an agent works on (`PATCH /v1/me`).
pub fn platform_names_or_null() -> Schema {
    one_of_or_null(["web", "app"])
}

/// A list of role names (a user's roles).
pub fn role_name_list() -> Schema {
    ArrayBuilder::new()
        .items(RefOr::T(role_names()))
        .build()
        .into()
}

/// A list of user ids.
pub fn user_id_list() -> Schema {
    ArrayBuilder::new().items(user_id()).build().into()
}

/// A webhook's event types (`POST /v1/webhooks`): each an event type or a prefix pattern, as
/// `is_event_type_pattern` accepts.
pub fn new_event_types() -> Schema {
    event_types_or_null(Some("Absent, null or `[]`: every event."))
}

/// A webhook's new event types (`PATCH /v1/webhooks/{webhook}`; absent or null: unchanged).
pub fn changed_event_types() -> Schema {
    event_types_or_null(None)
}

/// A list of event types or prefix patterns, or `null`.
fn event_types_or_null(description: Option<&str>) -> Schema {
    let pattern = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(r"^[a-z0-9_]+(\.[a-z0-9_]+)*(\.\*)?$"))
        .max_length(Some(EVENT_TYPE_LEN_MAX))
        .description(Some(
            "An event type (`call.created`) or a prefix pattern (`call.*`).",
        ))
        .build();
    ArrayBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .items(pattern)
        .max_items(Some(EVENT_TYPES_MAX))
        .description(description)
        .build()
        .into()
}

/// A supervision mode (`PATCH /v1/supervisions/{supervision}`).
pub fn mode_names() -> Schema {
    one_of(Mode::ALL.map(Mode::as_str))
}

/// A party's media address (the shared `RemoteAddress` schema).
pub fn remote_address() -> RefOr<Schema> {
    Ref::from_schema_name("RemoteAddress").into()
}

/// A leg's media address (`LegRequest.remote`), or `null` (a leg that latches).
pub fn leg_remote() -> Schema {
    OneOfBuilder::new()
        .item(remote_address())
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .examples([ADDRESS_EXAMPLE])
        .description(Some(
            "The party's media address from its SDP (`ip:port`): only packets from it are \
             accepted (strict). Absent or null: the leg latches to the first source.",
        ))
        .build()
        .into()
}

/// A leg's codec (`parse_codec`'s names), or `null`.
pub fn leg_codec() -> Schema {
    described(
        one_of_or_null(Codec::ALL.map(Codec::name)),
        "Default `pcmu`.",
    )
}

/// A call's direction (`parse_direction`'s names), or `null`.
pub fn call_direction() -> Schema {
    described(
        one_of_or_null(["inbound", "outbound"]),
        "`inbound` (default: the customer called) or `outbound`.",
    )
}

/// `schema` with `description` (a field whose schema comes from `schema_with` loses its doc
/// comment).
fn described(schema: Schema, description: &str) -> Schema {
    match schema {
        Schema::Object(mut object) => {
            object.description = Some(description.to_owned());
            Schema::Object(object)
        }
        other => other,
    }
}

/// What the softswitch may report about the supervisor's leg (`SupervisorEvent::parse`).
pub fn supervisor_event_names() -> Schema {
    one_of(["ringing", "answered", "rejected", "dnd", "hangup"])
}

/// What the softswitch may report about a call (`CallEvent::parse`).
pub fn call_event_names() -> Schema {
    described(
        one_of([
            "hold",
            "resume",
            "consult_start",
            "consult_end",
            "secure_payment_start",
            "secure_payment_end",
            "conference_start",
            "conference_end",
            "hangup",
            "release",
            "agent_answered",
        ]),
        "`hold` / `resume` also set / clear `held` on the customer's and the agent's legs: a \
         held party's silence is a hang-up only after `media.silent_timeout_secs`.",
    )
}

/// Who hung up (`hangup` only, and required with it), or `null`.
pub fn hangup_party() -> Schema {
    described(
        one_of_or_null(["customer", "agent", "supervisor"]),
        "`hangup` only, and required with it.",
    )
}

/// A leg's drops by reason: one count per media drop reason, every reason present (its
/// `Serialize` writes them all).
impl utoipa::PartialSchema for DroppedView {
    fn schema() -> RefOr<Schema> {
        let mut object = ObjectBuilder::new().schema_type(Type::Object);
        for reason in DropReason::ALL {
            object = object
                .property(reason.as_str(), u64::schema())
                .required(reason.as_str());
        }
        object
            .additional_properties(Some(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ))
            .into()
    }
}

impl utoipa::ToSchema for DroppedView {}

/// An identifier as `domain::ids` checks it (one rule for users and groups).
fn identifier() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^[A-Za-z0-9._:@-]{{1,{USER_ID_LEN_MAX}}}$")))
        .description(Some(format!(
            "1 to {USER_ID_LEN_MAX} of `A-Z a-z 0-9 . _ - : @`."
        )))
        .into()
}

impl utoipa::PartialSchema for UserId {
    fn schema() -> RefOr<Schema> {
        identifier()
    }
}

impl utoipa::ToSchema for UserId {
    fn name() -> std::borrow::Cow<'static, str> {
        "UserId".into()
    }
}

impl utoipa::PartialSchema for GroupId {
    fn schema() -> RefOr<Schema> {
        identifier()
    }
}

impl utoipa::ToSchema for GroupId {
    fn name() -> std::borrow::Cow<'static, str> {
        "GroupId".into()
    }
}

/// A prefixed id of this appliance (`domain::ids`): `prefix` and 16 hex digits.
fn prefixed_id(prefix: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(format!("^{prefix}[0-9a-f]{{16}}$")))
        .description(Some(format!("`{prefix}` and 16 hex digits.")))
        .into()
}

impl utoipa::PartialSchema for CallId {
    fn schema() -> RefOr<Schema> {
        prefixed_id("c_")
    }
}

impl utoipa::ToSchema for CallId {}

impl utoipa::PartialSchema for SupervisionId {
    fn schema() -> RefOr<Schema> {
        prefixed_id("s_")
    }
}

impl utoipa::ToSchema for SupervisionId {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::call::{parse_address, parse_codec};

    /// `RemoteAddress`'s pattern takes an IPv4 `ip:port` exactly when the parser does: every
    /// value of each octet and of the port, around one address the parser takes.
    #[test]
    fn the_address_pattern_takes_what_the_parser_takes() {
        let pattern = regex::Regex::new(&remote_address_pattern()).expect("a valid regex");
        let agree = |s: &str| {
            assert_eq!(
                pattern.is_match(s),
                parse_address("remote", s).is_ok(),
                "{s}: the pattern and parse_address disagree"
            );
        };
        for n in 0..=255 {
            agree(&format!("{n}.51.100.7:4000"));
            agree(&format!("198.{n}.100.7:4000"));
            agree(&format!("198.51.{n}.7:4000"));
            agree(&format!("198.51.100.{n}:4000"));
        }
        for port in 0..=65_535 {
            agree(&format!("198.51.100.7:{port}"));
        }
        for refused in [
            "198.51.100.7:65536",
            "198.51.100.7",
            "198.51.100:4000",
            "198.51.100.256:4000",
            "198.51.100.07:4000",
            "198.51.100.7:-1",
            " 198.51.100.7:4000",
            "198.51.100.7:4000 ",
            "host:4000",
        ] {
            agree(refused);
        }
    }

    /// `Codec` names every codec the parser takes, and nothing else.
    #[test]
    fn the_codec_schema_names_what_the_parser_takes() {
        let schema = serde_json::to_value(codec()).expect("a schema serialises");
        let names: Vec<&str> = schema["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .map(|n| n.as_str().expect("a name"))
            .collect();
        assert_eq!(names, ["pcmu", "pcma"]);
        for name in &names {
            assert_eq!(parse_codec("codec", name).expect("a codec").name(), *name);
        }
        assert!(parse_codec("codec", "g722").is_err());
        assert_eq!(
            schema["description"],
            "`pcmu` (G.711 µ-law, PT 0) or `pcma` (G.711 A-law, PT 8)."
        );
    }
}
