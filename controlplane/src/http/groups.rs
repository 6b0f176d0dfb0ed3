//! `/v1/groups…`: groups' configuration, supervisors and members (admins), reads, and the
//! forced logon and logoff of members (docs/design.md §3, docs/api.md "Groups and agents").

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::center::{BeepPolicy, ColumnEnum as _, Forcer, GroupChange, GroupView, NewGroup};
use crate::app::state::AppState;
use crate::app::storage::Storage;
use crate::domain::auth::{GroupRights, Role};
use crate::domain::groups::{GroupId, GroupKind};
use crate::domain::ids::quote;
use crate::http::access::{Administration, Authorized, Console, Principal, Read};
use crate::http::api::{Body, Visibility, blocking_api as blocking};
use crate::http::bodies::{FromBody, PlainBody};
use crate::http::center::{
    ApiResult, Events, Segments, acting_user, actor_id, center, now, present,
};
use crate::http::error::ApiError;
use crate::http::json::JsonU32;

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

fn parse_beep(s: &str) -> ApiResult<BeepPolicy> {
    BeepPolicy::parse(s).ok_or_else(|| {
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
                .unwrap_or(BeepPolicy::None),
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

// ---- configuration (admin) ----

pub(crate) async fn create_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    Body(req): Body<NewGroup>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let group = center(state, move |s, now| {
        s.center().create_group(s.store(), req, now)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(group)))
}

pub(crate) async fn patch_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(change): Body<GroupChange>,
) -> ApiResult<Json<GroupView>> {
    let group = seg.group()?;
    center(state, move |s, now| {
        s.center().update_group(s.store(), &group, change, now)
    })
    .await
    .map(Json)
}

pub(crate) async fn delete_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let group = seg.group()?;
    center(state, move |s, now| {
        s.center().remove_group(s.store(), &group, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn put_supervisor(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(rights): Body<Rights>,
) -> ApiResult<Json<Rights>> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |s, now| {
        let rights = GroupRights {
            listen: rights.listen,
            intervene: rights.intervene,
            admin: rights.admin,
        };
        s.center()
            .set_supervisor(s.store(), &group, &user, rights, now)
    })
    .await?;
    Ok(Json(rights))
}

pub(crate) async fn delete_supervisor(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |s, now| {
        s.center().remove_supervisor(s.store(), &group, &user, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn put_member(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(membership): Body<Membership>,
) -> ApiResult<Json<Membership>> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |s, now| {
        s.center()
            .set_member(s.store(), &group, &user, membership.can_leave, now)
    })
    .await?;
    Ok(Json(membership))
}

pub(crate) async fn delete_member(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |s, now| {
        s.center().remove_member(s.store(), &group, &user, now)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- reads ----

#[derive(serde::Serialize)]
pub struct Groups {
    groups: Vec<GroupView>,
}

pub(crate) async fn list_groups(
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

pub(crate) async fn get_group(
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

// ---- supervisors ----

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
            let rights = crate::app::center::supervisor_rights(s.store(), &group, &me)
                .map_err(Storage::from)?;
            Forcer::Supervisor(me, rights)
        };
        Ok(s.center()
            .force_login(s.store(), &group, &by, &member, logged_in, now(s))?)
    })
    .await
    .map(Events::json)
}

pub(crate) async fn force_logon(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    force(principal, state, seg, true).await
}

pub(crate) async fn force_logoff(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    force(principal, state, seg, false).await
}

/// `PUT /v1/groups/{id}/supervisors/{user}`: the rights (each `false` when absent).
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rights {
    #[serde(default)]
    pub listen: bool,
    #[serde(default)]
    pub intervene: bool,
    #[serde(default)]
    pub admin: bool,
}

impl PlainBody for Rights {}

/// `PUT /v1/groups/{id}/members/{user}`.
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    #[serde(default)]
    pub can_leave: bool,
}

impl PlainBody for Membership {}
