//! `/v1/agents…` and `/v1/me…`: agents' dashboards and settings, supervisors' forced changes
//! and messages, and an agent's own state (docs/design.md §3).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::center::AgentChange;
use crate::app::state::AppState;
use crate::domain::agents::{AgentState, PauseReason, Platform};
use crate::domain::ids::quote;
use crate::http::access::{AgentSelf, Authorized, Console, Read};
use crate::http::api::{Body, Visibility, blocking_api as blocking};
use crate::http::bodies::{FromBody, PlainBody};
use crate::http::center::{
    ApiResult, Events, Segments, acting_user, actor_id, center, join_or_leave, not_your_group,
    on_agent, present,
};
use crate::http::error::ApiError;
use crate::http::views::center::{AgentList, AgentView};

/// `PUT /v1/me/state`, `PUT /v1/agents/{id}/state`.
pub struct StateChangeBody(AgentState);

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AgentStateChange)]
pub struct RawState {
    #[schema(schema_with = crate::http::openapi::schemas::state_names)]
    state: String,
    /// With `pause` only, and required with it: a free label (1 to 64 characters, not blank, no
    /// control characters).
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 1,
        max_length = 64
    )]
    reason: Option<String>,
    /// With `busy` only: the case (ticket) handled (1 to 128 characters, not blank).
    #[schema(pattern = "\\S", min_length = 1, max_length = 128)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AgentChange, description = "Each field absent is left as it is.")]
pub struct RawAgentChange {
    auto_assignment: Option<bool>,
    /// 1 to 128 characters, not blank, no control characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$", min_length = 1, max_length = 128)]
    campaign: Option<Option<String>>,
    #[schema(schema_with = crate::http::openapi::schemas::platform_names_or_null)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Message)]
pub struct Message {
    /// 1 to 2000 characters, not blank.
    #[schema(pattern = "\\S", min_length = 1, max_length = 2000)]
    text: String,
}

impl PlainBody for Message {}

#[utoipa::path(
    get, path = "/v1/agents", tag = "Agents", operation_id = "list_agents",
    summary = "List agents",
    description = "Dashboards of the agents the caller may see: admins and softswitches all, a supervisor the members of their groups, an agent themself.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    responses(
        (status = 200, description = "The agents, by id.", body = AgentList),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
pub(crate) async fn list_agents(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
) -> ApiResult<Json<AgentList>> {
    let agents = center(state, move |s| {
        s.center()
            .agents(|a| Visibility::of(&principal).sees_agent(s, a))
    })
    .await?;
    Ok(Json(AgentList::new(agents)))
}

#[utoipa::path(
    get, path = "/v1/agents/{user}", tag = "Agents", operation_id = "get_agent",
    summary = "An agent's dashboard",
    description = "As the list.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    params(crate::http::openapi::params::UserParam),
    responses(
        (status = 200, description = "The agent.", body = AgentView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`not_your_group`: not an agent you may see.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_your_group"])))),
        (status = 404, description = "`unknown_user`, `unknown_agent`: not a user id; not a user with an agent token.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user", "unknown_agent"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
pub(crate) async fn get_agent(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<AgentView>> {
    let agent = seg.user()?;
    blocking(state, move |s| {
        if !Visibility::of(&principal).sees_agent(s, &agent) {
            return Err(not_your_group(&agent));
        }
        Ok(s.center().agent(&agent)?)
    })
    .await
    .map(|a| Json(a.into()))
}

#[utoipa::path(
    put, path = "/v1/agents/{user}/state", tag = "Agents", operation_id = "force_state",
    summary = "Force an agent's state",
    description = "The same transition rules as the agent's own change (docs/design.md §3).\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::UserParam),
    request_body = ref("#/components/schemas/AgentStateChange"),
    responses(
        (status = 200, description = "The agent.", body = AgentView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_group`: the token names no user; the agent is in no group you supervise.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_group"])))),
        (status = 404, description = "`unknown_user`, `unknown_agent`: not a user id; not a user with an agent token.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user", "unknown_agent"])))),
        (status = 409, description = "`transition_refused`, `state_unchanged`: the rules forbid it; already in that state.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["transition_refused", "state_unchanged"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn force_state(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
    Body(StateChangeBody(to)): Body<StateChangeBody>,
) -> ApiResult<Json<AgentView>> {
    on_agent(state, principal, seg.user()?, move |s, by, agent| {
        Ok(s.center().change_state(agent, to, Some(actor_id(by)?))?)
    })
    .await
    .map(|a| Json(a.into()))
}

#[utoipa::path(
    patch, path = "/v1/agents/{user}", tag = "Agents", operation_id = "patch_agent",
    summary = "Change an agent's settings",
    description = "Automatic case assignment, campaign, platform.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::UserParam),
    request_body = ref("#/components/schemas/AgentChange"),
    responses(
        (status = 200, description = "The agent.", body = AgentView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_group`: the token names no user; the agent is in no group you supervise.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_group"])))),
        (status = 404, description = "`unknown_user`, `unknown_agent`: not a user id; not a user with an agent token.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user", "unknown_agent"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn patch_agent(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
    Body(change): Body<AgentChange>,
) -> ApiResult<Json<AgentView>> {
    on_agent(state, principal, seg.user()?, move |s, _, agent| {
        Ok(s.center().update_agent(agent, change)?)
    })
    .await
    .map(|a| Json(a.into()))
}

#[utoipa::path(
    post, path = "/v1/agents/{user}/messages", tag = "Agents", operation_id = "send_message",
    summary = "Send an agent a private message",
    description = "An `agent.message` event only the agent (and admins) can see.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::UserParam),
    request_body = ref("#/components/schemas/Message"),
    responses(
        (status = 201, description = "The message.", body = crate::domain::agents::ChatMessage),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `chat_text_empty`, `chat_text_too_long`, `chat_to_self`: blank; over 2000 characters; to yourself.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "chat_text_empty", "chat_text_too_long", "chat_to_self"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_group`: the token names no user; the agent is in no group you supervise.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_group"])))),
        (status = 404, description = "`unknown_user`, `unknown_agent`: not a user id; not a user with an agent token.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user", "unknown_agent"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn send_message(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
    Body(msg): Body<Message>,
) -> ApiResult<(StatusCode, Json<crate::domain::agents::ChatMessage>)> {
    let message = on_agent(state, principal, seg.user()?, move |s, by, agent| {
        Ok(s.center().send_message(&actor_id(by)?, agent, msg.text)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(message)))
}

// ---- agents themselves ----

#[utoipa::path(
    get, path = "/v1/me", tag = "Agent self", operation_id = "get_me",
    summary = "My dashboard",
    description = "The calling agent's dashboard.\n\n**Who:** Agent-self endpoint: agents (acting as the token's user) only.",
    responses(
        (status = 200, description = "The agent.", body = AgentView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAgentSelf),
        (status = 404, description = "`unknown_agent`: the token's user is not an agent.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_agent"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("agent_self"))),
)]
pub(crate) async fn get_me(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |s| s.center().agent(&me))
        .await
        .map(|a| Json(a.into()))
}

#[utoipa::path(
    patch, path = "/v1/me", tag = "Agent self", operation_id = "patch_me",
    summary = "Change my settings",
    description = "Automatic case assignment, campaign, platform.\n\n**Who:** Agent-self endpoint: agents (acting as the token's user) only.",
    request_body = ref("#/components/schemas/AgentChange"),
    responses(
        (status = 200, description = "The agent.", body = AgentView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAgentSelf),
        (status = 404, description = "`unknown_agent`: the token's user is not an agent.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_agent"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("agent_self"))),
)]
pub(crate) async fn patch_me(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    Body(change): Body<AgentChange>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |s| s.center().update_agent(&me, change))
        .await
        .map(|a| Json(a.into()))
}

#[utoipa::path(
    put, path = "/v1/me/state", tag = "Agent self", operation_id = "put_my_state",
    summary = "Change my state",
    description = "available, busy (with a case), standby, pause (with a reason), disconnected — as the transition table allows (docs/design.md §3).\n\n**Who:** Agent-self endpoint: agents (acting as the token's user) only.",
    request_body = ref("#/components/schemas/AgentStateChange"),
    responses(
        (status = 200, description = "The agent.", body = AgentView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAgentSelf),
        (status = 404, description = "`unknown_agent`: the token's user is not an agent.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_agent"])))),
        (status = 409, description = "`transition_refused`, `state_unchanged`: the rules forbid it; already in that state.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["transition_refused", "state_unchanged"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("agent_self"))),
)]
pub(crate) async fn put_my_state(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    Body(StateChangeBody(to)): Body<StateChangeBody>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |s| s.center().change_state(&me, to, None))
        .await
        .map(|a| Json(a.into()))
}

#[utoipa::path(
    post, path = "/v1/me/groups/{group}/join", tag = "Agent self", operation_id = "me_join",
    summary = "Join a mutual-aid group",
    description = "Log in to a mutual-aid group one is a member of.\n\n**Who:** Agent-self endpoint: agents (acting as the token's user) only.",
    params(crate::http::openapi::params::GroupParam),
    responses(
        (status = 200, description = "What changed.", body = Events),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAgentSelf),
        (status = 404, description = "`unknown_group`, `not_a_member`: no such group; not a member of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "not_a_member"])))),
        (status = 409, description = "`standard_group`, `already_logged_in`: a standard group; already logged in.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["standard_group", "already_logged_in"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("agent_self"))),
)]
pub(crate) async fn me_join(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, true).await
}

#[utoipa::path(
    post, path = "/v1/me/groups/{group}/leave", tag = "Agent self", operation_id = "me_leave",
    summary = "Leave a mutual-aid group",
    description = "Log out of a mutual-aid group, if `can_leave` and not the last member of a locked group.\n\n**Who:** Agent-self endpoint: agents (acting as the token's user) only.",
    params(crate::http::openapi::params::GroupParam),
    responses(
        (status = 200, description = "What changed.", body = Events),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAgentSelf),
        (status = 404, description = "`unknown_group`, `not_a_member`: no such group; not a member of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "not_a_member"])))),
        (status = 409, description = "`standard_group`, `already_logged_out`, `member_cannot_leave`, `last_member_locked`: a standard group; already logged out; `can_leave` false; the last member logged in to a locked group.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["standard_group", "already_logged_out", "member_cannot_leave", "last_member_locked"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("agent_self"))),
)]
pub(crate) async fn me_leave(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, false).await
}
