//! `/v1/groups…`: groups' configuration, supervisors and members (admins), reads, and the
//! forced logon and logoff of members (docs/design.md §3, docs/api.md "Groups and agents").

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::center::{BeepPolicy, ColumnEnum as _, Forcer, GroupChange, NewGroup};
use crate::app::state::AppState;
use crate::app::storage::Storage;
use crate::domain::auth::{GroupRights, Role};
use crate::domain::groups::{GroupId, GroupKind};
use crate::domain::ids::quote;
use crate::http::access::{Administration, Authorized, Console, Principal, Read};
use crate::http::api::{Body, Visibility, blocking_api as blocking};
use crate::http::bodies::{FromBody, PlainBody};
use crate::http::center::{ApiResult, Events, Segments, acting_user, actor_id, center, present};
use crate::http::error::ApiError;
use crate::http::json::JsonU32;
use crate::http::views::center::{GroupList, GroupView};

// ---- bodies ----

/// `POST /v1/groups`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewGroup)]
pub struct RawNewGroup {
    /// Default: generated (`grp-…`).
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    id: Option<String>,
    /// 1 to 128 characters, not blank, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 1,
        max_length = 128
    )]
    name: String,
    /// `standard` (default): members are always in it when connected; `mutual_aid`: members join
    /// and leave at will, within the admin's limits.
    #[schema(schema_with = crate::http::openapi::schemas::group_kind_names_or_null)]
    kind: Option<String>,
    /// The last logged-in member may not leave (default false).
    lock_last_member: Option<bool>,
    /// The beep policy to the group's agents when supervised (default `none`).
    #[schema(schema_with = crate::http::openapi::schemas::beep_names_or_null)]
    agent_beep: Option<String>,
    /// Cap of simultaneous monitors of one agent (default: none).
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4294967295_u64)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GroupChange, description = "Each field absent (or, but for `max_monitors_per_agent`, null) is left as it is.")]
pub struct RawGroupChange {
    lock_last_member: Option<bool>,
    #[schema(schema_with = crate::http::openapi::schemas::beep_names_or_null)]
    agent_beep: Option<String>,
    /// `null` removes the cap.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 4294967295_u64)]
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

#[utoipa::path(
    post, path = "/v1/groups", tag = "Groups", operation_id = "create_group",
    summary = "Create a group",
    description = "A group without supervisors yet; add them with `PUT /v1/groups/{group}/supervisors/{user}`.\n\n**Who:** Administration endpoint: admins only.",
    request_body = ref("#/components/schemas/NewGroup"),
    responses(
        (status = 201, description = "The group.", body = GroupView),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_value`: a `name` that is blank, too long or has control characters.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_value"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 409, description = "`group_exists`, `conflict`, `limit_reached`: the id is taken; the name is taken; 10,000 groups already.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["group_exists", "conflict", "limit_reached"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn create_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    Body(req): Body<NewGroup>,
) -> ApiResult<(StatusCode, Json<GroupView>)> {
    let group = center(state, move |s| s.center().create_group(req)).await?;
    Ok((StatusCode::CREATED, Json(group.into())))
}

#[utoipa::path(
    patch, path = "/v1/groups/{group}", tag = "Groups", operation_id = "patch_group",
    summary = "Change a group's options",
    description = "`lock_last_member`, the beep policy and the monitors cap.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::GroupParam),
    request_body = ref("#/components/schemas/GroupChange"),
    responses(
        (status = 200, description = "The group.", body = GroupView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`unknown_group`: no such group (or not a group id).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn patch_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(change): Body<GroupChange>,
) -> ApiResult<Json<GroupView>> {
    let group = seg.group()?;
    let group = center(state, move |s| s.center().update_group(&group, change)).await?;
    Ok(Json(group.into()))
}

#[utoipa::path(
    delete, path = "/v1/groups/{group}", tag = "Groups", operation_id = "delete_group",
    summary = "Remove a group",
    description = "With its memberships and supervisors.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::GroupParam),
    responses(
        (status = 204, description = "Removed."),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`unknown_group`: no such group (or not a group id).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn delete_group(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let group = seg.group()?;
    center(state, move |s| s.center().remove_group(&group)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put, path = "/v1/groups/{group}/supervisors/{user}",
    tag = "Groups", operation_id = "put_supervisor",
    summary = "Set a supervisor's rights",
    description = "Names the user a supervisor of the group with these rights, or replaces their rights.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::GroupParam, crate::http::openapi::params::UserParam),
    request_body = ref("#/components/schemas/Rights"),
    responses(
        (status = 200, description = "The rights (absent ones false).", body = ref("#/components/schemas/Rights")),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_value`: not a user id.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_value"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`unknown_group`: no such group (or not a group id); `unknown_user`: no such user (users come with their first token).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "unknown_user"])))),
        (status = 409, description = "`limit_reached`: 100 supervisors already.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["limit_reached"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn put_supervisor(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(rights): Body<Rights>,
) -> ApiResult<Json<Rights>> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    let granted = GroupRights {
        listen: rights.listen,
        intervene: rights.intervene,
        admin: rights.admin,
    };
    center(state, move |s| {
        s.center().set_supervisor(&group, &user, granted)
    })
    .await?;
    Ok(Json(rights))
}

#[utoipa::path(
    delete, path = "/v1/groups/{group}/supervisors/{user}",
    tag = "Groups", operation_id = "delete_supervisor",
    summary = "Remove a supervisor",
    description = "A group keeps at least one supervisor.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::GroupParam, crate::http::openapi::params::UserParam),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, response = crate::http::openapi::responses::InvalidUserId),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`unknown_group`, `not_a_supervisor`: no such group; not a supervisor of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "not_a_supervisor"])))),
        (status = 409, description = "`last_supervisor`: the group's last supervisor.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["last_supervisor"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn delete_supervisor(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |s| s.center().remove_supervisor(&group, &user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    put, path = "/v1/groups/{group}/members/{user}", tag = "Groups", operation_id = "put_member",
    summary = "Add a member, or set whether they may leave",
    description = "Adds the user as a member (logged in at once to a standard group, or when they may not leave), or updates `can_leave`.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::GroupParam, crate::http::openapi::params::UserParam),
    request_body = ref("#/components/schemas/Membership"),
    responses(
        (status = 200, description = "The membership as set.", body = ref("#/components/schemas/Membership")),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_value`: not a user id.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_value"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`unknown_group`: no such group (or not a group id); `unknown_user`: no such user (users come with their first token).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "unknown_user"])))),
        (status = 409, description = "`limit_reached`: 1,000 members already.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["limit_reached"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn put_member(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(membership): Body<Membership>,
) -> ApiResult<Json<Membership>> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |s| {
        s.center().set_member(&group, &user, membership.can_leave)
    })
    .await?;
    Ok(Json(membership))
}

#[utoipa::path(
    delete, path = "/v1/groups/{group}/members/{user}",
    tag = "Groups", operation_id = "delete_member",
    summary = "Remove a member",
    description = "Removes the membership.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::GroupParam, crate::http::openapi::params::UserParam),
    responses(
        (status = 204, description = "Removed."),
        (status = 400, response = crate::http::openapi::responses::InvalidUserId),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`unknown_group`, `not_a_member`: no such group; not a member of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "not_a_member"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn delete_member(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<StatusCode> {
    let (group, user) = (seg.group()?, seg.raw("user")?.to_owned());
    center(state, move |s| s.center().remove_member(&group, &user)).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- reads ----

#[utoipa::path(
    get, path = "/v1/groups", tag = "Groups", operation_id = "list_groups",
    summary = "List groups",
    description = "Admins and softswitches see every group; others the groups they supervise or are a member of. In id order.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    responses(
        (status = 200, description = "The groups.", body = GroupList),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
pub(crate) async fn list_groups(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
) -> ApiResult<Json<GroupList>> {
    let groups = center(state, move |s| {
        let Visibility { all, me, .. } = Visibility::of(&principal);
        s.center().groups(|g| {
            all || me
                .as_ref()
                .is_some_and(|u| g.is_supervised_by(u) || g.members().contains_key(u))
        })
    })
    .await?;
    Ok(Json(GroupList::new(groups)))
}

#[utoipa::path(
    get, path = "/v1/groups/{group}", tag = "Groups", operation_id = "get_group",
    summary = "Show a group",
    description = "Admins and softswitches see any group; others a group they supervise or are a member of.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    params(crate::http::openapi::params::GroupParam),
    responses(
        (status = 200, description = "The group.", body = GroupView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`not_your_group`: neither a supervisor nor a member of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_your_group"])))),
        (status = 404, description = "`unknown_group`: no such group (or not a group id).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
pub(crate) async fn get_group(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<GroupView>> {
    let group = seg.group()?;
    blocking(state, move |s| {
        let view = s.center().group(&group)?;
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
    .map(|g| Json(g.into()))
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
            let rights = s
                .center()
                .supervisor_rights(&group, &me)
                .map_err(Storage::from)?;
            Forcer::Supervisor(me, rights)
        };
        Ok(s.center().force_login(&group, &by, &member, logged_in)?)
    })
    .await
    .map(Events::json)
}

#[utoipa::path(
    post, path = "/v1/groups/{group}/members/{user}/logon",
    tag = "Console", operation_id = "force_logon",
    summary = "Force a member's logon",
    description = "A supervisor with the group-admin right over the group (or an admin) logs the member in to it, whatever the group's kind.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::GroupParam, crate::http::openapi::params::UserParam),
    responses(
        (status = 200, description = "What changed.", body = Events),
        (status = 400, response = crate::http::openapi::responses::InvalidUserId),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_group`, `admin_right_required`: a supervisor token without a user; a group you do not supervise; without the group-admin right.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_group", "admin_right_required"])))),
        (status = 404, description = "`unknown_group`, `not_a_member`: no such group; the user is not a member of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "not_a_member"])))),
        (status = 409, description = "`already_logged_in`: already logged in.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["already_logged_in"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn force_logon(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    force(principal, state, seg, true).await
}

#[utoipa::path(
    post, path = "/v1/groups/{group}/members/{user}/logoff",
    tag = "Console", operation_id = "force_logoff",
    summary = "Force a member's logoff",
    description = "As logon; `can_leave` does not apply but `lock_last_member` does.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::GroupParam, crate::http::openapi::params::UserParam),
    responses(
        (status = 200, description = "What changed.", body = Events),
        (status = 400, response = crate::http::openapi::responses::InvalidUserId),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_group`, `admin_right_required`: a supervisor token without a user; a group you do not supervise; without the group-admin right.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_group", "admin_right_required"])))),
        (status = 404, description = "`unknown_group`, `not_a_member`: no such group; the user is not a member of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "not_a_member"])))),
        (status = 409, description = "`already_logged_out`, `last_member_locked`: already logged out; the last member logged in to a locked group.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["already_logged_out", "last_member_locked"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn force_logoff(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    force(principal, state, seg, false).await
}

/// `PUT /v1/groups/{id}/supervisors/{user}`: the rights (each `false` when absent).
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Rights, description = "A supervisor's rights over one group; each absent is false.")]
pub struct Rights {
    /// May listen to the group's agents.
    #[serde(default)]
    #[schema(default = false)]
    pub listen: bool,
    /// May whisper, barge and take over.
    #[serde(default)]
    #[schema(default = false)]
    pub intervene: bool,
    /// Group administration: forced logon and logoff of members.
    #[serde(default)]
    #[schema(default = false)]
    pub admin: bool,
}

impl PlainBody for Rights {}

/// `PUT /v1/groups/{id}/members/{user}`.
#[derive(Debug, Clone, Copy, serde::Deserialize, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Membership)]
pub struct Membership {
    /// Mutual aid: the member may leave at will.
    #[serde(default)]
    #[schema(default = false)]
    pub can_leave: bool,
}

impl PlainBody for Membership {}
