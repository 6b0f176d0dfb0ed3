//! The contact center's answers (docs/api.md "Groups and agents", docs/design.md §3): groups,
//! the console's member list and ringing calls, agents' dashboards, and what a change did.
//!
//! A member's availability and an agent's state are written flat, the variant's name in one
//! field and its data in fields beside it (`{"availability": "ringing", "caller": …}`,
//! `{"state": "pause", "reason": …}`): each view spells those fields out, present only with
//! their variant, so the derived schema names them all.

use serde::Serialize;
use utoipa::openapi::Schema;
use utoipa::openapi::schema::{ObjectBuilder, SchemaType, Type};

use crate::app::center::{
    AgentSnapshot, ColumnEnum as _, GroupSnapshot, MemberSnapshot, SupervisorSnapshot,
};
use crate::domain::agents::{AgentState, Dashboard, PauseFigures, Platform, StateFigures};
use crate::domain::groups::{
    Availability, GroupEvent, GroupId, GroupKind, ListedMember, Presence, SupervisedCall,
};
use crate::domain::ids::UserId;

// ---- names ----

fn kind_name(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::Standard => "standard",
        GroupKind::MutualAid => "mutual_aid",
    }
}

fn presence_name(presence: Presence) -> &'static str {
    match presence {
        Presence::Online => "online",
        Presence::Busy => "busy",
        Presence::Away => "away",
        Presence::DoNotDisturb => "do_not_disturb",
        Presence::Offline => "offline",
    }
}

fn platform_name(platform: Platform) -> &'static str {
    match platform {
        Platform::Web => "web",
        Platform::App => "app",
    }
}

const PRESENCE_NAMES: [&str; 5] = ["online", "busy", "away", "do_not_disturb", "offline"];

/// A string, one of `names`, with `description` if any.
fn names(names: &[&'static str], description: Option<&str>) -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(names.iter().copied()))
        .description(description)
        .build()
        .into()
}

fn group_kind_names() -> Schema {
    names(&["standard", "mutual_aid"], None)
}

/// The names `BeepPolicy::parse` accepts (docs/design.md §2.9).
fn beep_names() -> Schema {
    names(&["none", "agent_beep", "periodic_notice"], None)
}

fn presence_names() -> Schema {
    names(&PRESENCE_NAMES, None)
}

/// A presence, or `null` while the platform has reported none.
fn presence_names_or_null() -> Schema {
    let mut values: Vec<serde_json::Value> = PRESENCE_NAMES.map(Into::into).to_vec();
    values.push(serde_json::Value::Null);
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
        .enum_values(Some(values))
        .build()
        .into()
}

fn availability_names() -> Schema {
    names(
        &["logged_out", "logged_in", "ringing", "forwarded"],
        Some(
            "In this group: `logged_out`, `logged_in`, `ringing` (with `caller`, `call_id`, \
             `web`) or `forwarded` (with `destination`).",
        ),
    )
}

fn platform_names() -> Schema {
    names(&["web", "app"], None)
}

// ---- availability, flat ----

/// A member's availability in one group, flat: its name and the fields of its variant.
#[derive(Debug, Clone, Default)]
struct Flat {
    availability: &'static str,
    offline_warning: Option<bool>,
    caller: Option<String>,
    call_id: Option<String>,
    web: Option<bool>,
    destination: Option<String>,
}

impl From<Availability> for Flat {
    fn from(a: Availability) -> Flat {
        match a {
            Availability::LoggedOut => Flat {
                availability: "logged_out",
                ..Flat::default()
            },
            Availability::LoggedIn { offline_warning } => Flat {
                availability: "logged_in",
                offline_warning: Some(offline_warning),
                ..Flat::default()
            },
            Availability::Ringing {
                caller,
                call_id,
                web,
            } => Flat {
                availability: "ringing",
                caller: Some(caller),
                call_id: Some(call_id),
                web: Some(web),
                ..Flat::default()
            },
            Availability::Forwarded { destination } => Flat {
                availability: "forwarded",
                destination: Some(destination),
                ..Flat::default()
            },
        }
    }
}

// ---- groups ----

/// A group: its configuration, supervisors with their rights, and members with their
/// availability in it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Group)]
pub struct GroupView {
    id: GroupId,
    name: String,
    #[schema(schema_with = group_kind_names)]
    kind: &'static str,
    lock_last_member: bool,
    #[schema(schema_with = beep_names)]
    agent_beep: &'static str,
    #[schema(value_type = Option<u64>, minimum = 1, required = true)]
    max_monitors_per_agent: Option<u32>,
    #[schema(inline)]
    supervisors: Vec<SupervisorView>,
    #[schema(inline)]
    members: Vec<GroupMemberView>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SupervisorView {
    user: String,
    listen: bool,
    intervene: bool,
    admin: bool,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupMemberView {
    user: UserId,
    can_leave: bool,
    #[schema(schema_with = availability_names)]
    availability: &'static str,
    /// `logged_in` only: logged in, but the presence is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    offline_warning: Option<bool>,
    /// `ringing` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    caller: Option<String>,
    /// `ringing` only: the platform's call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    call_id: Option<String>,
    /// `ringing` only: a web call (neither taken nor supervised).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    web: Option<bool>,
    /// `forwarded` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    destination: Option<String>,
    #[schema(schema_with = presence_names_or_null, required = true)]
    presence: Option<&'static str>,
}

impl From<GroupSnapshot> for GroupView {
    fn from(g: GroupSnapshot) -> GroupView {
        GroupView {
            id: g.id,
            name: g.name,
            kind: kind_name(g.kind),
            lock_last_member: g.lock_last_member,
            agent_beep: g.policy.agent_beep.as_str(),
            max_monitors_per_agent: g.policy.max_monitors_per_agent,
            supervisors: g
                .supervisors
                .into_iter()
                .map(SupervisorView::from)
                .collect(),
            members: g.members.into_iter().map(GroupMemberView::from).collect(),
        }
    }
}

impl From<SupervisorSnapshot> for SupervisorView {
    fn from(s: SupervisorSnapshot) -> SupervisorView {
        SupervisorView {
            user: s.user,
            listen: s.rights.listen,
            intervene: s.rights.intervene,
            admin: s.rights.admin,
        }
    }
}

impl From<MemberSnapshot> for GroupMemberView {
    fn from(m: MemberSnapshot) -> GroupMemberView {
        let flat = Flat::from(m.availability);
        GroupMemberView {
            user: m.user,
            can_leave: m.can_leave,
            availability: flat.availability,
            offline_warning: flat.offline_warning,
            caller: flat.caller,
            call_id: flat.call_id,
            web: flat.web,
            destination: flat.destination,
            presence: m.presence.map(presence_name),
        }
    }
}

/// The groups the caller may see, in id order.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = GroupList)]
pub struct GroupList {
    groups: Vec<GroupView>,
}

impl GroupList {
    pub fn new(groups: Vec<GroupSnapshot>) -> GroupList {
        GroupList {
            groups: groups.into_iter().map(GroupView::from).collect(),
        }
    }
}

/// What a change did: the `group.*` events it logged.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = GroupEvents)]
pub struct GroupEvents {
    /// What changed; empty when nothing did.
    events: Vec<GroupEvent>,
}

impl GroupEvents {
    pub fn json(events: Vec<GroupEvent>) -> axum::Json<GroupEvents> {
        axum::Json(GroupEvents { events })
    }
}

// ---- the console ----

/// One member of one supervised group (a user in two groups is listed twice).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Member)]
pub struct MemberView {
    group: GroupId,
    group_name: String,
    user: UserId,
    display_name: String,
    #[schema(required = true)]
    number: Option<String>,
    /// Also a supervisor of this group.
    is_supervisor: bool,
    can_leave: bool,
    #[schema(schema_with = availability_names)]
    availability: &'static str,
    /// `logged_in` only: logged in, but the presence is offline.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    offline_warning: Option<bool>,
    /// `ringing` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    caller: Option<String>,
    /// `ringing` only: the platform's call id.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    call_id: Option<String>,
    /// `ringing` only: a web call (neither taken nor supervised).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = bool, required = false)]
    web: Option<bool>,
    /// `forwarded` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    destination: Option<String>,
    #[schema(schema_with = presence_names)]
    presence: &'static str,
}

impl From<ListedMember> for MemberView {
    fn from(m: ListedMember) -> MemberView {
        let flat = Flat::from(m.availability);
        MemberView {
            group: m.group,
            group_name: m.group_name,
            user: m.user,
            display_name: m.display_name,
            number: m.number,
            is_supervisor: m.is_supervisor,
            can_leave: m.can_leave,
            availability: flat.availability,
            offline_warning: flat.offline_warning,
            caller: flat.caller,
            call_id: flat.call_id,
            web: flat.web,
            destination: flat.destination,
            presence: presence_name(m.presence),
        }
    }
}

/// The members of the supervisor's groups, by group then user.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = MemberList)]
pub struct MemberList {
    members: Vec<MemberView>,
}

impl MemberList {
    pub fn new(members: Vec<ListedMember>) -> MemberList {
        MemberList {
            members: members.into_iter().map(MemberView::from).collect(),
        }
    }
}

/// A ringing supervised call, as a supervisor's "Supervised calls" list shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = RingingCall)]
pub struct RingingCallView {
    call_id: String,
    member: UserId,
    display_name: String,
    #[schema(required = true)]
    number: Option<String>,
    caller: String,
    /// The groups, among the supervisor's, that the member is logged in to.
    groups: Vec<GroupId>,
}

impl From<SupervisedCall> for RingingCallView {
    fn from(c: SupervisedCall) -> RingingCallView {
        RingingCallView {
            call_id: c.call_id,
            member: c.member,
            display_name: c.display_name,
            number: c.number,
            caller: c.caller,
            groups: c.groups,
        }
    }
}

// ---- agents ----

/// An agent's live dashboard (docs/design.md §3) and their groups.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = Agent)]
pub struct AgentView {
    agent: UserId,
    #[schema(schema_with = crate::http::openapi::schemas::state_names)]
    state: &'static str,
    /// State `pause` only: its reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String, required = false)]
    reason: Option<String>,
    /// State `busy` only: the case, if named.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, required = false)]
    case: Option<Option<String>>,
    state_since_ms: u64,
    time_in_state_ms: u64,
    /// One entry per state, in the order available, busy, standby, pause, disconnected.
    #[schema(inline)]
    states: Vec<StateFiguresView>,
    #[schema(required = true)]
    campaign: Option<String>,
    #[schema(schema_with = platform_names)]
    platform: &'static str,
    auto_assignment: bool,
    #[schema(required = true)]
    last_login_ms: Option<u64>,
    #[schema(required = true)]
    last_logout_ms: Option<u64>,
    /// Time in any state but `disconnected` in the period.
    connected_ms: u64,
    pause_ms: u64,
    /// At most 16 reasons.
    #[schema(inline)]
    pause_by_reason: Vec<PauseFiguresView>,
    pause_other_reasons_ms: u64,
    period_start_ms: u64,
    /// The groups the agent is a member of.
    groups: Vec<GroupId>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct StateFiguresView {
    #[schema(schema_with = crate::http::openapi::schemas::state_names)]
    state: &'static str,
    entries: u64,
    total_ms: u64,
    #[schema(required = true)]
    average_ms: Option<u64>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PauseFiguresView {
    reason: String,
    pauses: u64,
    total_ms: u64,
}

impl From<StateFigures> for StateFiguresView {
    fn from(f: StateFigures) -> StateFiguresView {
        StateFiguresView {
            state: f.state.as_str(),
            entries: f.entries,
            total_ms: f.total_ms,
            average_ms: f.average_ms,
        }
    }
}

impl From<PauseFigures> for PauseFiguresView {
    fn from(f: PauseFigures) -> PauseFiguresView {
        PauseFiguresView {
            reason: f.reason.to_string(),
            pauses: f.pauses,
            total_ms: f.total_ms,
        }
    }
}

impl AgentView {
    /// The agent's dashboard and the groups they are a member of.
    pub fn new(d: Dashboard, groups: Vec<GroupId>) -> AgentView {
        let (reason, case) = match &d.state {
            AgentState::Pause { reason } => (Some(reason.to_string()), None),
            AgentState::Busy { case } => (None, Some(case.clone())),
            _ => (None, None),
        };
        AgentView {
            agent: d.agent,
            state: d.state.kind().as_str(),
            reason,
            case,
            state_since_ms: d.state_since_ms,
            time_in_state_ms: d.time_in_state_ms,
            states: d.states.into_iter().map(StateFiguresView::from).collect(),
            campaign: d.campaign,
            platform: platform_name(d.platform),
            auto_assignment: d.auto_assignment,
            last_login_ms: d.last_login_ms,
            last_logout_ms: d.last_logout_ms,
            connected_ms: d.connected_ms,
            pause_ms: d.pause_ms,
            pause_by_reason: d
                .pause_by_reason
                .into_iter()
                .map(PauseFiguresView::from)
                .collect(),
            pause_other_reasons_ms: d.pause_other_reasons_ms,
            period_start_ms: d.period_start_ms,
            groups,
        }
    }
}

impl From<AgentSnapshot> for AgentView {
    fn from(a: AgentSnapshot) -> AgentView {
        AgentView::new(a.dashboard, a.groups)
    }
}

/// The agents the caller may see, by id.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = AgentList)]
pub struct AgentList {
    agents: Vec<AgentView>,
}

impl AgentList {
    pub fn new(agents: Vec<AgentSnapshot>) -> AgentList {
        AgentList {
            agents: agents.into_iter().map(AgentView::from).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::domain::agents::{Agent, PauseReason};

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn listed(availability: Availability) -> Value {
        let m = ListedMember {
            group: GroupId::parse("std").unwrap(),
            group_name: "Standard".to_owned(),
            user: user("bob"),
            display_name: "Bob".to_owned(),
            number: None,
            is_supervisor: false,
            can_leave: true,
            availability,
            presence: Presence::DoNotDisturb,
        };
        serde_json::to_value(MemberView::from(m)).unwrap()
    }

    /// Each availability is its name and its variant's fields, and no other variant's: the
    /// answers clients parse (docs/api.md "Groups and agents").
    #[test]
    fn a_members_availability_is_flat_with_its_variants_fields_only() {
        let base = json!({
            "group": "std", "group_name": "Standard", "user": "bob", "display_name": "Bob",
            "number": null, "is_supervisor": false, "can_leave": true,
            "presence": "do_not_disturb",
        });
        let with = |extra: Value| {
            let mut v = base.clone();
            v.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            v
        };
        assert_eq!(
            listed(Availability::LoggedOut),
            with(json!({"availability": "logged_out"}))
        );
        assert_eq!(
            listed(Availability::LoggedIn {
                offline_warning: true
            }),
            with(json!({"availability": "logged_in", "offline_warning": true}))
        );
        assert_eq!(
            listed(Availability::Ringing {
                caller: "+33 6 12".to_owned(),
                call_id: "call-1".to_owned(),
                web: false,
            }),
            with(json!({"availability": "ringing", "caller": "+33 6 12",
                        "call_id": "call-1", "web": false}))
        );
        assert_eq!(
            listed(Availability::Forwarded {
                destination: "+33 1 00".to_owned()
            }),
            with(json!({"availability": "forwarded", "destination": "+33 1 00"}))
        );
    }

    /// A group's member shows its presence, `null` while none was reported.
    #[test]
    fn a_group_members_presence_is_null_until_reported() {
        let m = MemberSnapshot {
            user: user("bob"),
            can_leave: false,
            availability: Availability::LoggedOut,
            presence: None,
        };
        assert_eq!(
            serde_json::to_value(GroupMemberView::from(m)).unwrap(),
            json!({"user": "bob", "can_leave": false, "availability": "logged_out",
                   "presence": null})
        );
    }

    /// The document states, of each center answer, the fields always present (`null` ones
    /// included), those present with one variant only, and their names: what the schemas
    /// written by hand before them stated (docs/api.md "Groups and agents").
    #[test]
    fn the_documented_schemas_state_required_fields_and_names() {
        let doc: Value = serde_json::from_str(&crate::http::openapi::DOCUMENT).unwrap();
        let schema = |name: &str| doc["components"]["schemas"][name].clone();
        let required = |s: &Value| -> Vec<String> {
            let mut r: Vec<String> = serde_json::from_value(s["required"].clone()).unwrap();
            r.sort();
            r
        };
        let sorted = |names: &[&str]| {
            let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            v.sort();
            v
        };
        let group = schema("Group");
        assert_eq!(
            required(&group),
            sorted(&[
                "id",
                "name",
                "kind",
                "lock_last_member",
                "agent_beep",
                "max_monitors_per_agent",
                "supervisors",
                "members"
            ])
        );
        assert_eq!(group["additionalProperties"], false);
        assert_eq!(
            group["properties"]["max_monitors_per_agent"]["type"],
            json!(["integer", "null"])
        );
        assert_eq!(
            group["properties"]["agent_beep"]["enum"],
            json!(["none", "agent_beep", "periodic_notice"])
        );
        let member = &group["properties"]["members"]["items"];
        assert_eq!(
            required(member),
            sorted(&["user", "can_leave", "availability", "presence"])
        );
        assert_eq!(member["additionalProperties"], false);
        assert_eq!(
            member["properties"]["presence"]["type"],
            json!(["string", "null"])
        );

        let listed = schema("Member");
        assert_eq!(listed["additionalProperties"], false);
        assert_eq!(
            listed["properties"]["availability"]["enum"],
            json!(["logged_out", "logged_in", "ringing", "forwarded"])
        );
        for variant_only in ["offline_warning", "caller", "call_id", "web", "destination"] {
            assert!(
                listed["properties"].get(variant_only).is_some(),
                "{variant_only}"
            );
            assert!(!required(&listed).contains(&variant_only.to_owned()));
        }
        assert_eq!(
            listed["properties"]["number"]["type"],
            json!(["string", "null"])
        );
        assert!(required(&listed).contains(&"number".to_owned()));

        let agent = schema("Agent");
        assert_eq!(agent["additionalProperties"], false);
        let agent_required = required(&agent);
        for always in [
            "agent",
            "state",
            "campaign",
            "last_login_ms",
            "groups",
            "states",
        ] {
            assert!(agent_required.contains(&always.to_owned()), "{always}");
        }
        for variant_only in ["reason", "case"] {
            assert!(
                !agent_required.contains(&variant_only.to_owned()),
                "{variant_only}"
            );
        }
        assert_eq!(agent["properties"]["reason"]["type"], "string");
        assert_eq!(
            agent["properties"]["case"]["type"],
            json!(["string", "null"])
        );
        assert_eq!(
            agent["properties"]["state"]["enum"],
            json!(["available", "busy", "standby", "pause", "disconnected"])
        );

        // Every event names its type; a nullable field is still always present.
        let events = schema("GroupEvent")["oneOf"].as_array().unwrap().clone();
        assert_eq!(events.len(), 15);
        for e in &events {
            assert!(required(e).contains(&"type".to_owned()));
            assert_eq!(e["additionalProperties"], false);
        }
        let logged_in = events
            .iter()
            .find(|e| e["properties"]["type"]["enum"] == json!(["member_logged_in"]))
            .unwrap();
        assert_eq!(
            required(logged_in),
            sorted(&["type", "group", "user", "forced_by"])
        );
        for list in ["GroupList", "AgentList", "MemberList", "GroupEvents"] {
            assert_eq!(schema(list)["additionalProperties"], false, "{list}");
        }
    }

    /// An agent's state is flat: `reason` with `pause` only, `case` (maybe null) with `busy`
    /// only.
    #[test]
    fn an_agents_state_carries_its_own_fields_only() {
        const T0_MS: u64 = 1_700_000_000_000;
        let shown = |a: &Agent| {
            let v =
                serde_json::to_value(AgentView::new(a.dashboard(T0_MS + 10), Vec::new())).unwrap();
            let keys = ["state", "reason", "case"].map(|k| v.get(k).cloned());
            (keys, v)
        };
        let mut a = Agent::new(user("ag-1"), Platform::App, T0_MS);
        let (keys, v) = shown(&a);
        assert_eq!(keys, [Some(json!("disconnected")), None, None]);
        assert_eq!(v["platform"], "app");
        assert_eq!(v["groups"], json!([]));
        assert_eq!(v["states"].as_array().unwrap().len(), 5);
        assert_eq!(v["states"][4]["state"], "disconnected");
        assert_eq!(v["campaign"], Value::Null);
        assert_eq!(v["last_logout_ms"], Value::Null);

        a.change_state(AgentState::Available, T0_MS + 1).unwrap();
        a.change_state(AgentState::Busy { case: None }, T0_MS + 2)
            .unwrap();
        assert_eq!(shown(&a).0, [Some(json!("busy")), None, Some(Value::Null)]);
        a.change_state(AgentState::Available, T0_MS + 3).unwrap();
        let case = Some("T-42".to_owned());
        a.change_state(AgentState::Busy { case }, T0_MS + 4)
            .unwrap();
        assert_eq!(
            shown(&a).0,
            [Some(json!("busy")), None, Some(json!("T-42"))]
        );
        a.change_state(AgentState::Available, T0_MS + 5).unwrap();
        let reason = PauseReason::parse("lunch").unwrap();
        a.change_state(AgentState::Pause { reason }, T0_MS + 6)
            .unwrap();
        let (keys, v) = shown(&a);
        assert_eq!(keys, [Some(json!("pause")), Some(json!("lunch")), None]);
        assert_eq!(v["pause_by_reason"][0]["reason"], "lunch");
        assert_eq!(v["pause_by_reason"][0]["pauses"], 1);
    }
}
