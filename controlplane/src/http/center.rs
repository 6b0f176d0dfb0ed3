//! The routes of groups, agents, the supervisor console and the platform's reports (SPEC §3,
//! docs/api.md "Groups and agents"), over [`crate::app::center::Center`].
//!
//! Endpoint classes (SPEC §4): configuration is `Administration`; a supervisor's actions are
//! `Console` (they act as the token's user, over members of groups they supervise); an agent's
//! own state is `AgentSelf`; the platform's reports (presence, ringing, forwarding) are
//! `Signalling`; reads are `Read`, filtered by what the caller may see.

use axum::extract::{FromRequestParts, Query, RawPathParams, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::app::center::{
    AgentChange, AgentView, Center, CenterError, Forcer, GroupChange, GroupView, NewGroup,
};
use crate::app::state::AppState;
use crate::clock::to_unix_ms;
use crate::domain::agents::{AgentState, PauseReason, Platform, UserId};
use crate::domain::auth::Role;
use crate::domain::call::parse_registered_number;
use crate::domain::groups::{
    GroupEvent, GroupId, GroupKind, MemberFilter, MemberView, Presence, RingingCallView,
};
use crate::domain::ids::quote;
use crate::http::access::{
    Administration, AgentSelf, Authorized, Console, Membership, Principal, Read, Rights, Signalling,
};
use crate::http::api::{Body, Visibility, blocking_api as blocking, token_user};
use crate::http::bodies::{FromBody, PlainBody};
use crate::http::error::ApiError;
use crate::http::json::JsonU32;
use crate::store::{self, ColumnEnum as _, Store, StoreExt as _};

type ApiResult<T> = Result<T, ApiError>;

pub fn routes() -> Router<AppState> {
    Router::new()
        // Configuration (admin).
        .route("/v1/groups", get(list_groups).post(create_group))
        .route(
            "/v1/groups/{group}",
            get(get_group).patch(patch_group).delete(delete_group),
        )
        .route(
            "/v1/groups/{group}/supervisors/{user}",
            put(put_supervisor).delete(delete_supervisor),
        )
        .route(
            "/v1/groups/{group}/members/{user}",
            put(put_member).delete(delete_member),
        )
        .route("/v1/users", get(list_users))
        .route("/v1/users/{user}", axum::routing::patch(patch_user))
        .route("/v1/grants", get(list_grants).post(create_grant))
        .route("/v1/grants/{grant}", delete(revoke_grant))
        // Supervisors (console).
        .route("/v1/groups/{group}/members/{user}/logon", post(force_logon))
        .route(
            "/v1/groups/{group}/members/{user}/logoff",
            post(force_logoff),
        )
        .route("/v1/console/members", get(console_members))
        .route("/v1/console/ringing-calls", get(console_ringing))
        .route("/v1/console/ringing-calls/{call}/take", post(take_call))
        .route(
            "/v1/console/members/{user}/cancel-forwarding",
            post(cancel_forwarding),
        )
        .route("/v1/console/subscriptions", get(list_subscriptions))
        .route(
            "/v1/console/subscriptions/{user}",
            put(subscribe).delete(unsubscribe),
        )
        .route("/v1/console/settings", get(get_settings).put(put_settings))
        .route("/v1/console/groups/{group}/join", post(console_join))
        .route("/v1/console/groups/{group}/leave", post(console_leave))
        .route("/v1/agents", get(list_agents))
        .route("/v1/agents/{user}", get(get_agent).patch(patch_agent))
        .route("/v1/agents/{user}/state", put(force_state))
        .route("/v1/agents/{user}/messages", post(send_message))
        // Agents themselves.
        .route("/v1/me", get(get_me).patch(patch_me))
        .route("/v1/me/state", put(put_my_state))
        .route("/v1/me/groups/{group}/join", post(me_join))
        .route("/v1/me/groups/{group}/leave", post(me_leave))
        // The platform's reports (softswitch).
        .route("/v1/users/{user}/presence", put(put_presence))
        .route("/v1/users/{user}/forwarding", put(put_forwarding))
        .route("/v1/ringing", post(post_ringing))
        .route("/v1/ringing/{call}", delete(delete_ringing))
}

// ---- extractors ----

/// The path's named segments.
pub struct Segments(RawPathParams);

impl<S: Send + Sync> FromRequestParts<S> for Segments {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        crate::http::api::path_params(parts).await.map(Segments)
    }
}

impl Segments {
    fn raw(&self, name: &str) -> ApiResult<&str> {
        crate::http::api::param(&self.0, name)
    }

    fn group(&self) -> ApiResult<GroupId> {
        let raw = self.raw("group")?;
        GroupId::parse(raw).map_err(|_| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_group",
                format!("no group {}", quote(raw)),
            )
        })
    }

    fn user(&self) -> ApiResult<UserId> {
        let raw = self.raw("user")?;
        UserId::parse(raw).map_err(|_| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_user",
                format!("no user {}", quote(raw)),
            )
        })
    }
}

/// The user a console or agent token acts as.
fn acting_user(principal: &Principal) -> ApiResult<UserId> {
    token_user(principal).ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this endpoint acts as a user, and the token names none: use a token with a \
             user_id",
        )
    })
}

/// Who is recorded as having forced a change: the token's user, else the token itself.
fn actor_id(principal: &Principal) -> ApiResult<UserId> {
    token_user(principal)
        .or_else(|| UserId::parse(&principal.token_id).ok())
        .ok_or_else(|| ApiError::internal("the token's id is not a user id"))
}

fn now(s: &AppState) -> u64 {
    s.clock().now_ms()
}

/// Runs a [`Center`] operation on the blocking pool, handed the store and the time.
async fn center<T: Send + 'static>(
    state: AppState,
    op: impl FnOnce(&Center, &dyn Store, u64) -> Result<T, CenterError> + Send + 'static,
) -> ApiResult<T> {
    blocking(state, move |s| Ok(op(s.center(), s.store(), now(s))?)).await
}

fn not_your_group(user: &UserId) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_your_group",
        format!("{user} is not a member of any group you supervise"),
    )
}

#[derive(serde::Serialize)]
struct Events {
    events: Vec<GroupEvent>,
}

impl Events {
    fn json(events: Vec<GroupEvent>) -> Json<Events> {
        Json(Events { events })
    }
}

// ---- bodies ----

/// `POST /v1/groups`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNewGroup {
    id: Option<String>,
    name: String,
    kind: Option<String>,
    lock_last_member: Option<bool>,
    agent_beep: Option<String>,
    max_monitors_per_agent: Option<JsonU32>,
}

fn parse_beep(s: &str) -> ApiResult<store::BeepPolicy> {
    store::BeepPolicy::parse(s).ok_or_else(|| {
        ApiError::invalid_body(format!(
            "agent_beep: {} is not none, agent_beep or periodic_notice",
            quote(s)
        ))
    })
}

fn parse_max_monitors(JsonU32(n): JsonU32) -> ApiResult<u32> {
    if n == 0 {
        return Err(ApiError::invalid_body(
            "max_monitors_per_agent: at least 1 (omit it, or send null, for no cap)",
        ));
    }
    Ok(n)
}

impl FromBody for NewGroup {
    type Raw = RawNewGroup;
    fn parse(raw: RawNewGroup) -> ApiResult<NewGroup> {
        let kind = match raw.kind.as_deref() {
            None | Some("standard") => GroupKind::Standard,
            Some("mutual_aid") => GroupKind::MutualAid,
            Some(other) => {
                return Err(ApiError::invalid_body(format!(
                    "kind: {} is not standard or mutual_aid",
                    quote(other)
                )));
            }
        };
        let id = match raw.id {
            Some(id) => GroupId::parse(&id)
                .map_err(|e| ApiError::invalid_body(format!("id: {}: {e}", quote(&id))))?,
            None => {
                let id = crate::app::random::random_id("grp-")?;
                GroupId::parse(&id).map_err(|e| ApiError::internal(e.to_string()))?
            }
        };
        Ok(NewGroup {
            id,
            name: raw.name,
            kind,
            lock_last_member: raw.lock_last_member.unwrap_or(false),
            agent_beep: raw
                .agent_beep
                .as_deref()
                .map(parse_beep)
                .transpose()?
                .unwrap_or(store::BeepPolicy::None),
            max_monitors_per_agent: raw
                .max_monitors_per_agent
                .map(parse_max_monitors)
                .transpose()?,
        })
    }
}

/// `PATCH /v1/groups/{id}`; `max_monitors_per_agent: null` removes the cap.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroupChange {
    lock_last_member: Option<bool>,
    agent_beep: Option<String>,
    #[serde(default, deserialize_with = "present")]
    max_monitors_per_agent: Option<Option<JsonU32>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

impl FromBody for GroupChange {
    type Raw = RawGroupChange;
    fn parse(raw: RawGroupChange) -> ApiResult<GroupChange> {
        Ok(GroupChange {
            lock_last_member: raw.lock_last_member,
            agent_beep: raw.agent_beep.as_deref().map(parse_beep).transpose()?,
            max_monitors_per_agent: match raw.max_monitors_per_agent {
                Some(Some(n)) => Some(Some(parse_max_monitors(n)?)),
                Some(None) => Some(None),
                None => None,
            },
        })
    }
}

/// `PATCH /v1/users/{id}`; `phone_number: null` clears it.
pub struct UserChange {
    display_name: Option<String>,
    phone_number: Option<Option<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUserChange {
    display_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    phone_number: Option<Option<String>>,
}

impl FromBody for UserChange {
    type Raw = RawUserChange;
    fn parse(raw: RawUserChange) -> ApiResult<UserChange> {
        if let Some(name) = &raw.display_name
            && (name.trim().is_empty()
                || name.chars().count() > 128
                || name.chars().any(char::is_control))
        {
            return Err(ApiError::invalid_body(
                "display_name: 1 to 128 characters, no control characters",
            ));
        }
        if let Some(Some(number)) = &raw.phone_number {
            let digits = number.strip_prefix('+').unwrap_or(number);
            if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ApiError::invalid_body(format!(
                    "phone_number: {} is not a number (an optional + then 1 to 20 digits)",
                    quote(number)
                )));
            }
        }
        Ok(UserChange {
            display_name: raw.display_name.map(|n| n.trim().to_owned()),
            phone_number: raw.phone_number,
        })
    }
}

/// `PUT /v1/me/state`, `PUT /v1/agents/{id}/state`.
pub struct StateChangeBody(AgentState);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    state: String,
    reason: Option<String>,
    case: Option<String>,
}

impl FromBody for StateChangeBody {
    type Raw = RawState;
    fn parse(raw: RawState) -> ApiResult<StateChangeBody> {
        let only = |field: &str, allowed: &str| {
            ApiError::invalid_body(format!("{field}: only with state {allowed}"))
        };
        if raw.reason.is_some() && raw.state != "pause" {
            return Err(only("reason", "pause"));
        }
        if raw.case.is_some() && raw.state != "busy" {
            return Err(only("case", "busy"));
        }
        let state = match raw.state.as_str() {
            "available" => AgentState::Available,
            "standby" => AgentState::Standby,
            "disconnected" => AgentState::Disconnected,
            "busy" => {
                if let Some(case) = &raw.case
                    && (case.trim().is_empty() || case.chars().count() > 128)
                {
                    return Err(ApiError::invalid_body("case: 1 to 128 characters"));
                }
                AgentState::Busy { case: raw.case }
            }
            "pause" => {
                let reason = raw
                    .reason
                    .ok_or_else(|| ApiError::invalid_body("reason: required with state pause"))?;
                AgentState::Pause {
                    reason: PauseReason::parse(&reason)
                        .map_err(|e| ApiError::invalid_body(format!("reason: {e}")))?,
                }
            }
            other => {
                return Err(ApiError::invalid_body(format!(
                    "state: {} is not available, busy, standby, pause or disconnected",
                    quote(other)
                )));
            }
        };
        Ok(StateChangeBody(state))
    }
}

/// `PATCH /v1/me`, `PATCH /v1/agents/{id}`; `campaign: null` clears it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentChange {
    auto_assignment: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    campaign: Option<Option<String>>,
    platform: Option<String>,
}

impl FromBody for AgentChange {
    type Raw = RawAgentChange;
    fn parse(raw: RawAgentChange) -> ApiResult<AgentChange> {
        if let Some(Some(c)) = &raw.campaign
            && (c.trim().is_empty() || c.chars().count() > 128 || c.chars().any(char::is_control))
        {
            return Err(ApiError::invalid_body(
                "campaign: 1 to 128 characters, no control characters (null for none)",
            ));
        }
        let platform = match raw.platform.as_deref() {
            None => None,
            Some("web") => Some(Platform::Web),
            Some("app") => Some(Platform::App),
            Some(other) => {
                return Err(ApiError::invalid_body(format!(
                    "platform: {} is not web or app",
                    quote(other)
                )));
            }
        };
        Ok(AgentChange {
            auto_assignment: raw.auto_assignment,
            campaign: raw.campaign,
            platform,
        })
    }
}

/// `POST /v1/agents/{id}/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    text: String,
}

impl PlainBody for Message {}

/// `PUT /v1/users/{id}/presence`.
pub struct PresenceBody(Presence);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPresence {
    presence: String,
}

impl FromBody for PresenceBody {
    type Raw = RawPresence;
    fn parse(raw: RawPresence) -> ApiResult<PresenceBody> {
        Ok(PresenceBody(match raw.presence.as_str() {
            "online" => Presence::Online,
            "busy" => Presence::Busy,
            "away" => Presence::Away,
            "do_not_disturb" => Presence::DoNotDisturb,
            "offline" => Presence::Offline,
            other => {
                return Err(ApiError::invalid_body(format!(
                    "presence: {} is not online, busy, away, do_not_disturb or offline",
                    quote(other)
                )));
            }
        }))
    }
}

/// `PUT /v1/users/{id}/forwarding`: `destination: null` (or absent) ends the forwarding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forwarding {
    destination: Option<String>,
}

impl PlainBody for Forwarding {}

/// `POST /v1/ringing`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ringing {
    call_id: String,
    member: String,
    caller: String,
    #[serde(default)]
    web: bool,
}

impl PlainBody for Ringing {}

/// `PUT /v1/console/settings`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    registered_number: String,
}

impl PlainBody for Settings {}

/// `POST /v1/grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    supervisor_id: String,
    agent_id: String,
}

impl FromBody for NewGrant {
    type Raw = NewGrant;
    fn parse(raw: NewGrant) -> ApiResult<NewGrant> {
        for (field, v) in [
            ("supervisor_id", &raw.supervisor_id),
            ("agent_id", &raw.agent_id),
        ] {
            UserId::parse(v).map_err(|e| ApiError::invalid_body(format!("{field}: {e}")))?;
        }
        Ok(raw)
    }
}

// ---- configuration (admin) ----

async fn create_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    Body(req): Body<NewGroup>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let group = center(state, move |c, store, now| c.create_group(store, req, now)).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

async fn patch_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(change): Body<GroupChange>,
) -> ApiResult<Json<GroupView>> {
    let group = seg.group()?;
    center(state, move |c, store, now| {
        c.update_group(store, &group, change, now)
    })
    .await
    .map(Json)
}

async fn delete_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let group = seg.group()?;
    center(state, move |c, store, now| {
        c.remove_group(store, &group, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_supervisor(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(rights): Body<Rights>,
) -> ApiResult<Json<Rights>> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |c, store, now| {
        c.set_supervisor(store, &group, &user, rights, now)
    })
    .await?;
    Ok(Json(rights))
}

async fn delete_supervisor(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |c, store, now| {
        c.remove_supervisor(store, &group, &user, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_member(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(membership): Body<Membership>,
) -> ApiResult<Json<Membership>> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |c, store, now| {
        c.set_member(store, &group, &user, membership.can_leave, now)
    })
    .await?;
    Ok(Json(membership))
}

async fn delete_member(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |c, store, now| {
        c.remove_member(store, &group, &user, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Serialize)]
struct UserView {
    id: String,
    display_name: String,
    phone_number: Option<String>,
    roles: Vec<&'static str>,
}

impl From<&store::UserRecord> for UserView {
    fn from(u: &store::UserRecord) -> UserView {
        UserView {
            id: u.id.clone(),
            display_name: u.display_name.clone(),
            phone_number: u.phone_number.clone(),
            roles: u.roles.iter().map(|r| r.as_str()).collect(),
        }
    }
}

#[derive(serde::Serialize)]
struct Users {
    users: Vec<UserView>,
}

async fn list_users(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
) -> ApiResult<Json<Users>> {
    let users = blocking(state, |s| Ok(s.store().read(|r| r.users())?)).await?;
    Ok(Json(Users {
        users: users.iter().map(UserView::from).collect(),
    }))
}

async fn patch_user(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(change): Body<UserChange>,
) -> ApiResult<Json<UserView>> {
    let user = seg.user()?;
    let record = blocking(state, move |s| {
        let record = s.store().write(|w| {
            let mut u = w
                .user(user.as_str())?
                .ok_or_else(|| store::StoreError::NotFound {
                    context: "user".to_owned(),
                    detail: format!("no user {user} (users come with their first token)"),
                })?;
            if let Some(name) = &change.display_name {
                u.display_name = name.clone();
            }
            if let Some(number) = &change.phone_number {
                u.phone_number = number.clone();
            }
            w.update_user(&u)?;
            Ok(u)
        })?;
        s.center().user_changed(&record);
        Ok(record)
    })
    .await?;
    Ok(Json(UserView::from(&record)))
}

#[derive(serde::Serialize)]
struct GrantView {
    id: i64,
    supervisor_id: String,
    agent_id: String,
    granted_by: String,
    created_at_ms: i64,
    revoked_at_ms: Option<i64>,
}

impl From<&store::GrantRecord> for GrantView {
    fn from(g: &store::GrantRecord) -> GrantView {
        GrantView {
            id: g.id.0,
            supervisor_id: g.supervisor_id.clone(),
            agent_id: g.agent_id.clone(),
            granted_by: g.granted_by.clone(),
            created_at_ms: g.created_at.0,
            revoked_at_ms: g.revoked_at.map(|t| t.0),
        }
    }
}

#[derive(serde::Serialize)]
struct Grants {
    grants: Vec<GrantView>,
}

async fn list_grants(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
) -> ApiResult<Json<Grants>> {
    let grants = blocking(state, |s| Ok(s.store().read(|r| r.grants())?)).await?;
    Ok(Json(Grants {
        grants: grants.iter().map(GrantView::from).collect(),
    }))
}

/// A persistent-supervision grant (SPEC §2): audited, committed durably.
async fn create_grant(
    Authorized(principal, _): Authorized<Administration>,
    State(state): State<AppState>,
    Body(req): Body<NewGrant>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let grant = blocking(state, move |s| {
        let at = to_unix_ms(now(s));
        let actor = principal.actor();
        Ok(s.store().write(|w| {
            for (what, id) in [("supervisor", &req.supervisor_id), ("agent", &req.agent_id)] {
                if w.user(id)?.is_none() {
                    return Err(store::StoreError::NotFound {
                        context: what.to_owned(),
                        detail: format!("no user {id}"),
                    });
                }
            }
            if w.active_grant(&req.supervisor_id, &req.agent_id)?.is_some() {
                return Err(store::StoreError::Conflict {
                    context: "grant".to_owned(),
                    detail: format!(
                        "{} already holds a grant over {}",
                        req.supervisor_id, req.agent_id
                    ),
                });
            }
            let id = w.create_grant(&store::NewGrant {
                supervisor_id: req.supervisor_id.clone(),
                agent_id: req.agent_id.clone(),
                granted_by: actor.clone(),
                created_at: at,
            })?;
            w.append_audit(&store::NewAudit {
                at,
                actor: actor.clone(),
                action: "grant.create".to_owned(),
                supervision_id: None,
                call_id: None,
                mode: None,
                outcome: "ok".to_owned(),
                detail: Some(format!(
                    "grant {}: {} may follow {}",
                    id.0, req.supervisor_id, req.agent_id
                )),
            })?;
            w.grant(id)?.ok_or_else(|| store::StoreError::NotFound {
                context: "grant".to_owned(),
                detail: format!("grant {} vanished", id.0),
            })
        })?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(GrantView::from(&grant))))
}

async fn revoke_grant(
    Authorized(principal, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<GrantView>> {
    let raw = seg.raw("grant")?.to_owned();
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(store::GrantId)
        .ok_or_else(|| ApiError::not_found(format!("no grant {}", quote(&raw))))?;
    let grant = blocking(state, move |s| {
        let at = to_unix_ms(now(s));
        Ok(s.store().write(|w| {
            w.revoke_grant(id, at)?;
            w.append_audit(&store::NewAudit {
                at,
                actor: principal.actor(),
                action: "grant.revoke".to_owned(),
                supervision_id: None,
                call_id: None,
                mode: None,
                outcome: "ok".to_owned(),
                detail: Some(format!("grant {}", id.0)),
            })?;
            w.grant(id)?.ok_or_else(|| store::StoreError::NotFound {
                context: "grant".to_owned(),
                detail: format!("no grant {}", id.0),
            })
        })?)
    })
    .await?;
    Ok(Json(GrantView::from(&grant)))
}

// ---- reads ----

#[derive(serde::Serialize)]
struct Groups {
    groups: Vec<GroupView>,
}

async fn list_groups(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
) -> ApiResult<Json<Groups>> {
    let groups = blocking(state, move |s| {
        let Visibility { all, me, .. } = Visibility::of(&principal);
        Ok(s.center().groups(s.store(), |g| {
            all || me
                .as_ref()
                .is_some_and(|u| g.is_supervised_by(u) || g.members().contains_key(u))
        })?)
    })
    .await?;
    Ok(Json(Groups { groups }))
}

async fn get_group(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<GroupView>> {
    let group = seg.group()?;
    blocking(state, move |s| {
        let view = s.center().group(s.store(), &group)?;
        let Visibility { all, me, .. } = Visibility::of(&principal);
        let visible = all || me.is_some_and(|u| s.center().belongs(&group, &u));
        if !visible {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "not_your_group",
                format!("you are neither a supervisor nor a member of group {group}"),
            ));
        }
        Ok(view)
    })
    .await
    .map(Json)
}

#[derive(serde::Serialize)]
struct Agents {
    agents: Vec<AgentView>,
}

async fn list_agents(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
) -> ApiResult<Json<Agents>> {
    let agents = blocking(state, move |s| {
        Ok(s.center().agents(
            s.store(),
            |a| Visibility::of(&principal).sees_agent(s, a),
            now(s),
        )?)
    })
    .await?;
    Ok(Json(Agents { agents }))
}

async fn get_agent(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<AgentView>> {
    let agent = seg.user()?;
    blocking(state, move |s| {
        if !Visibility::of(&principal).sees_agent(s, &agent) {
            return Err(not_your_group(&agent));
        }
        Ok(s.center().agent(s.store(), &agent, now(s))?)
    })
    .await
    .map(Json)
}

// ---- supervisors ----

/// The group-admin right of `user` over `group`, from the store.
fn group_rights(
    s: &AppState,
    group: &GroupId,
    user: &UserId,
) -> ApiResult<crate::domain::groups::Rights> {
    let sups = s.store().read(|r| r.group_supervisors(group.as_str()))?;
    Ok(crate::domain::groups::Rights {
        group_admin: sups
            .iter()
            .any(|g| g.user_id == user.as_str() && g.group_admin),
    })
}

async fn force(
    principal: Principal,
    state: AppState,
    seg: Segments,
    logged_in: bool,
) -> ApiResult<Json<Events>> {
    let (group, member) = (seg.group()?, seg.raw("user")?.to_owned());
    blocking(state, move |s| {
        let by = if principal.has(Role::Admin) {
            Forcer::Admin(actor_id(&principal)?)
        } else {
            let me = acting_user(&principal)?;
            let rights = group_rights(s, &group, &me)?;
            Forcer::Supervisor(me, rights)
        };
        Ok(s.center()
            .force_login(s.store(), &group, &by, &member, logged_in, now(s))?)
    })
    .await
    .map(Events::json)
}

async fn force_logon(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    force(principal, state, seg, true).await
}

async fn force_logoff(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    force(principal, state, seg, false).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MembersQuery {
    filter: Option<String>,
    search: Option<String>,
}

#[derive(serde::Serialize)]
struct Members {
    members: Vec<MemberView>,
}

async fn console_members(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    query: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Members>> {
    let Query(q) = query?;
    let filter = match q.filter.as_deref() {
        None | Some("all") => MemberFilter::All,
        Some("ringing") => MemberFilter::Ringing,
        Some(other) => {
            return Err(ApiError::invalid_query(format!(
                "filter: {} is not all or ringing",
                quote(other)
            )));
        }
    };
    let me = acting_user(&principal)?;
    let members = blocking(state, move |s| {
        Ok(s.center().members_view(&me, filter, q.search.as_deref()))
    })
    .await?;
    Ok(Json(Members { members }))
}

#[derive(serde::Serialize)]
struct RingingCalls {
    count: usize,
    calls: Vec<RingingCallView>,
}

async fn console_ringing(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
) -> ApiResult<Json<RingingCalls>> {
    let me = acting_user(&principal)?;
    let calls = blocking(state, move |s| Ok(s.center().ringing_calls(&me))).await?;
    Ok(Json(RingingCalls {
        count: calls.len(),
        calls,
    }))
}

async fn take_call(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let me = acting_user(&principal)?;
    let call = seg.raw("call")?.to_owned();
    center(state, move |c, store, now| {
        c.take_call(store, &call, &me, now)
    })
    .await
    .map(Events::json)
}

async fn cancel_forwarding(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let me = acting_user(&principal)?;
    let member = seg.raw("user")?.to_owned();
    center(state, move |c, store, now| {
        c.cancel_forwarding(store, &me, &member, now)
    })
    .await
    .map(Events::json)
}

#[derive(serde::Serialize)]
struct Subscriptions {
    agents: Vec<UserId>,
}

async fn list_subscriptions(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
) -> ApiResult<Json<Subscriptions>> {
    let me = acting_user(&principal)?;
    let agents = blocking(state, move |s| Ok(s.center().subscriptions_of(&me))).await?;
    Ok(Json(Subscriptions { agents }))
}

async fn subscription(
    principal: Principal,
    state: AppState,
    seg: Segments,
    on: bool,
) -> ApiResult<Json<serde_json::Value>> {
    let me = acting_user(&principal)?;
    let agent = seg.raw("user")?.to_owned();
    let changed = center(state, move |c, store, now| {
        c.subscription(store, &me, &agent, on, now)
    })
    .await?;
    Ok(Json(
        serde_json::json!({"subscribed": on, "changed": changed}),
    ))
}

async fn subscribe(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<serde_json::Value>> {
    subscription(principal, state, seg, true).await
}

async fn unsubscribe(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<serde_json::Value>> {
    subscription(principal, state, seg, false).await
}

async fn get_settings(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = acting_user(&principal)?;
    let number = blocking(state, move |s| {
        Ok(s.store()
            .read(|r| crate::app::center::registered_number(r, me.as_str()))?)
    })
    .await?;
    Ok(Json(serde_json::json!({"registered_number": number})))
}

/// SPEC §2 `validation`: "the supervisor telephone number must be a number".
async fn put_settings(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    Body(req): Body<Settings>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = acting_user(&principal)?;
    let digits = parse_registered_number(&req.registered_number)?
        .digits()
        .to_owned();
    let digits = blocking(state, move |s| {
        let at = now(s);
        s.store().write(|w| {
            if w.user(me.as_str())?.is_none() {
                return Err(store::StoreError::NotFound {
                    context: "user".to_owned(),
                    detail: format!("no user {me}"),
                });
            }
            crate::app::center::set_registered_number(w, me.as_str(), &digits, at)
        })?;
        Ok(digits)
    })
    .await?;
    Ok(Json(serde_json::json!({"registered_number": digits})))
}

async fn join_or_leave(
    principal: Principal,
    state: AppState,
    seg: Segments,
    join: bool,
) -> ApiResult<Json<Events>> {
    let me = acting_user(&principal)?;
    let group = seg.group()?;
    center(state, move |c, store, now| {
        c.join_or_leave(store, &group, &me, join, now)
    })
    .await
    .map(Events::json)
}

async fn console_join(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, true).await
}

async fn console_leave(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, false).await
}

/// A supervisor acts on an agent only if the agent is in a group they supervise (SPEC §4);
/// admins on any.
fn check_supervises(s: &AppState, principal: &Principal, agent: &UserId) -> ApiResult<()> {
    if principal.has(Role::Admin) {
        return Ok(());
    }
    let me = acting_user(principal)?;
    if s.center().supervises_member(&me, agent) {
        Ok(())
    } else {
        Err(not_your_group(agent))
    }
}

async fn force_state(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
    Body(StateChangeBody(to)): Body<StateChangeBody>,
) -> ApiResult<Json<AgentView>> {
    let agent = seg.user()?;
    blocking(state, move |s| {
        check_supervises(s, &principal, &agent)?;
        Ok(s.center()
            .change_state(s.store(), &agent, to, Some(actor_id(&principal)?), now(s))?)
    })
    .await
    .map(Json)
}

async fn patch_agent(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
    Body(change): Body<AgentChange>,
) -> ApiResult<Json<AgentView>> {
    let agent = seg.user()?;
    blocking(state, move |s| {
        check_supervises(s, &principal, &agent)?;
        Ok(s.center().update_agent(s.store(), &agent, change, now(s))?)
    })
    .await
    .map(Json)
}

async fn send_message(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
    Body(msg): Body<Message>,
) -> ApiResult<(StatusCode, Json<crate::domain::agents::ChatMessage>)> {
    let agent = seg.user()?;
    let message = blocking(state, move |s| {
        check_supervises(s, &principal, &agent)?;
        Ok(s.center()
            .send_message(s.store(), &actor_id(&principal)?, &agent, msg.text, now(s))?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(message)))
}

// ---- agents themselves ----

async fn get_me(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |c, store, now| c.agent(store, &me, now))
        .await
        .map(Json)
}

async fn patch_me(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    Body(change): Body<AgentChange>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |c, store, now| {
        c.update_agent(store, &me, change, now)
    })
    .await
    .map(Json)
}

async fn put_my_state(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    Body(StateChangeBody(to)): Body<StateChangeBody>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |c, store, now| {
        c.change_state(store, &me, to, None, now)
    })
    .await
    .map(Json)
}

async fn me_join(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, true).await
}

async fn me_leave(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, false).await
}

// ---- the platform's reports ----

async fn put_presence(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
    Body(PresenceBody(presence)): Body<PresenceBody>,
) -> ApiResult<Json<Events>> {
    let user = seg.raw("user")?.to_owned();
    center(state, move |c, store, now| {
        c.report_presence(store, &user, presence, now)
    })
    .await
    .map(Events::json)
}

async fn put_forwarding(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
    Body(req): Body<Forwarding>,
) -> ApiResult<Json<Events>> {
    let user = seg.raw("user")?.to_owned();
    center(state, move |c, store, now| {
        c.report_forwarding(store, &user, req.destination.as_deref(), now)
    })
    .await
    .map(Events::json)
}

async fn post_ringing(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    Body(req): Body<Ringing>,
) -> ApiResult<(StatusCode, Json<Events>)> {
    let events = center(state, move |c, store, now| {
        c.report_ringing(store, &req.member, &req.call_id, &req.caller, req.web, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Events::json(events)))
}

async fn delete_ringing(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let call = seg.raw("call")?.to_owned();
    center(state, move |c, store, now| {
        c.report_ringing_ended(store, &call, now)
    })
    .await
    .map(Events::json)
}
