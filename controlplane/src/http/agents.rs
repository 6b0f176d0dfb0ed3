//! `/v1/agents…` and `/v1/me…`: agents' dashboards and settings, supervisors' forced changes
//! and messages, and an agent's own state (docs/design.md §3).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::center::{AgentChange, AgentView};
use crate::app::state::AppState;
use crate::domain::agents::{AgentState, PauseReason, Platform};
use crate::domain::ids::quote;
use crate::http::access::{AgentSelf, Authorized, Console, Read};
use crate::http::api::{Body, Visibility, blocking_api as blocking};
use crate::http::bodies::{FromBody, PlainBody};
use crate::http::center::{
    ApiResult, Events, Segments, acting_user, actor_id, center, check_supervises, join_or_leave,
    not_your_group, now, present,
};
use crate::http::error::ApiError;

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

#[derive(serde::Serialize)]
pub struct Agents {
    agents: Vec<AgentView>,
}

pub(crate) async fn list_agents(
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
        Ok(s.center().agent(s.store(), &agent, now(s))?)
    })
    .await
    .map(Json)
}

pub(crate) async fn force_state(
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

pub(crate) async fn patch_agent(
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

pub(crate) async fn send_message(
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

pub(crate) async fn get_me(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |s, now| s.center().agent(s.store(), &me, now))
        .await
        .map(Json)
}

pub(crate) async fn patch_me(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    Body(change): Body<AgentChange>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |s, now| {
        s.center().update_agent(s.store(), &me, change, now)
    })
    .await
    .map(Json)
}

pub(crate) async fn put_my_state(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    Body(StateChangeBody(to)): Body<StateChangeBody>,
) -> ApiResult<Json<AgentView>> {
    let me = acting_user(&principal)?;
    center(state, move |s, now| {
        s.center().change_state(s.store(), &me, to, None, now)
    })
    .await
    .map(Json)
}

pub(crate) async fn me_join(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, true).await
}

pub(crate) async fn me_leave(
    Authorized(principal, _): Authorized<AgentSelf>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, false).await
}
