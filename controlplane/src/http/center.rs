//! The routes of groups, agents, the supervisor console, users and grants, and the platform's
//! reports (docs/design.md §3, docs/api.md "Groups and agents"), over
//! [`crate::app::center::Center`]: the route table and what their handlers share. The handlers
//! are one file per resource: [`super::groups`], [`super::agents`], [`super::console`],
//! [`super::users`].
//!
//! Endpoint classes (docs/design.md §4): configuration is `Administration`; a supervisor's
//! actions are `Console` (they act as the token's user, over members of groups they supervise);
//! an agent's own state is `AgentSelf`; the platform's reports (presence, ringing, forwarding)
//! are `Signalling`; reads are `Read`, filtered by what the caller may see.

use axum::extract::{FromRequestParts, RawPathParams};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use serde::Deserialize;

use crate::app::center::CenterError;
use crate::app::state::AppState;
use crate::domain::auth::Role;
use crate::domain::groups::GroupId;
use crate::domain::ids::UserId;
use crate::domain::ids::quote;
use crate::http::access::Principal;
use crate::http::agents::*;
use crate::http::api::{blocking_api as blocking, token_user};
use crate::http::console::*;
use crate::http::error::ApiError;
use crate::http::groups::*;
use crate::http::users::*;
use crate::http::views::center::GroupEvents;

pub(super) type ApiResult<T> = Result<T, ApiError>;

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
    pub(super) fn raw(&self, name: &str) -> ApiResult<&str> {
        crate::http::api::param(&self.0, name)
    }

    pub(super) fn group(&self) -> ApiResult<GroupId> {
        let raw = self.raw("group")?;
        GroupId::parse(raw).map_err(|_| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_group",
                format!("no group {}", quote(raw)),
            )
        })
    }

    pub(super) fn user(&self) -> ApiResult<UserId> {
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
pub(super) fn acting_user(principal: &Principal) -> ApiResult<UserId> {
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
pub(super) fn actor_id(principal: &Principal) -> ApiResult<UserId> {
    token_user(principal)
        .or_else(|| UserId::parse(&principal.token_id).ok())
        .ok_or_else(|| ApiError::internal("the token's id is not a user id"))
}

/// Runs a contact-center use case ([`AppState::center`]) on the blocking pool: it reads and
/// writes the store, and may wait for its commit to be durable.
pub(super) async fn center<T: Send + 'static>(
    state: AppState,
    op: impl FnOnce(&AppState) -> Result<T, CenterError> + Send + 'static,
) -> ApiResult<T> {
    blocking(state, move |s| Ok(op(s)?)).await
}

pub(super) fn not_your_group(user: &UserId) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_your_group",
        format!("{user} is not a member of any group you supervise"),
    )
}

/// What a change did, as the center's handlers answer it.
pub type Events = GroupEvents;

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value.
pub(super) fn present<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

pub(super) async fn join_or_leave(
    principal: Principal,
    state: AppState,
    seg: Segments,
    join: bool,
) -> ApiResult<Json<Events>> {
    let me = acting_user(&principal)?;
    let group = seg.group()?;
    center(state, move |s| s.center().join_or_leave(&group, &me, join))
        .await
        .map(Events::json)
}

/// Runs a supervisor's (or an admin's) action on `agent` on the blocking pool, once
/// [`check_supervises`] lets the caller act on them; `op` is handed the caller.
pub(super) async fn on_agent<T: Send + 'static>(
    state: AppState,
    principal: Principal,
    agent: UserId,
    op: impl FnOnce(&AppState, &Principal, &UserId) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    blocking(state, move |s| {
        check_supervises(s, &principal, &agent)?;
        op(s, &principal, &agent)
    })
    .await
}

/// A supervisor acts on an agent only if the agent is in a group they supervise
/// (docs/design.md §4); admins on any.
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
