//! `/v1/console…` and `/v1/ringing…`: a supervisor's console (members, ringing calls,
//! subscriptions, settings, joining mutual-aid groups) and the platform's ringing reports
//! (docs/design.md §2, §3).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::state::AppState;
use crate::app::storage::Storage;
use crate::http::api::{Body, blocking_api as blocking};
use crate::http::center::{ApiResult, Events, Segments, acting_user, center, join_or_leave, now};
use crate::http::error::ApiError;
use axum::extract::Query;

use crate::domain::call::parse_registered_number;
use crate::domain::groups::{MemberFilter, MemberView, RingingCallView};
use crate::domain::ids::UserId;
use crate::domain::ids::quote;
use crate::http::access::{Authorized, Console, Principal, Signalling};
use crate::http::bodies::PlainBody;

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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    filter: Option<String>,
    search: Option<String>,
}

#[derive(serde::Serialize)]
pub struct Members {
    members: Vec<MemberView>,
}

pub(crate) async fn console_members(
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
pub struct RingingCalls {
    count: usize,
    calls: Vec<RingingCallView>,
}

pub(crate) async fn console_ringing(
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

pub(crate) async fn take_call(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let me = acting_user(&principal)?;
    let call = seg.raw("call")?.to_owned();
    center(state, move |s, now| {
        s.center().take_call(s.store(), &call, &me, now)
    })
    .await
    .map(Events::json)
}

pub(crate) async fn cancel_forwarding(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let me = acting_user(&principal)?;
    let member = seg.raw("user")?.to_owned();
    center(state, move |s, now| {
        s.center().cancel_forwarding(s.store(), &me, &member, now)
    })
    .await
    .map(Events::json)
}

#[derive(serde::Serialize)]
pub struct Subscriptions {
    agents: Vec<UserId>,
}

pub(crate) async fn list_subscriptions(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
) -> ApiResult<Json<Subscriptions>> {
    let me = acting_user(&principal)?;
    let agents = blocking(state, move |s| Ok(s.center().subscriptions_of(&me))).await?;
    Ok(Json(Subscriptions { agents }))
}

pub(crate) async fn subscription(
    principal: Principal,
    state: AppState,
    seg: Segments,
    on: bool,
) -> ApiResult<Json<serde_json::Value>> {
    let me = acting_user(&principal)?;
    let agent = seg.raw("user")?.to_owned();
    let changed = center(state, move |s, now| {
        s.center().subscription(s.store(), &me, &agent, on, now)
    })
    .await?;
    Ok(Json(
        serde_json::json!({"subscribed": on, "changed": changed}),
    ))
}

pub(crate) async fn subscribe(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<serde_json::Value>> {
    subscription(principal, state, seg, true).await
}

pub(crate) async fn unsubscribe(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<serde_json::Value>> {
    subscription(principal, state, seg, false).await
}

pub(crate) async fn get_settings(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = acting_user(&principal)?;
    let number = blocking(state, move |s| {
        Ok(crate::app::center::settings(s.store(), &me).map_err(Storage::from)?)
    })
    .await?;
    Ok(Json(serde_json::json!({"registered_number": number})))
}

/// docs/design.md §2 `validation`: "the supervisor telephone number must be a number".
pub(crate) async fn put_settings(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    Body(req): Body<Settings>,
) -> ApiResult<Json<serde_json::Value>> {
    let me = acting_user(&principal)?;
    let digits = parse_registered_number(&req.registered_number)?
        .digits()
        .to_owned();
    let digits = blocking(state, move |s| {
        Ok(
            crate::app::center::set_settings(s.store(), &me, digits, now(s))
                .map_err(Storage::from)?,
        )
    })
    .await?;
    Ok(Json(serde_json::json!({"registered_number": digits})))
}

pub(crate) async fn console_join(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, true).await
}

pub(crate) async fn console_leave(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, false).await
}

pub(crate) async fn post_ringing(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    Body(req): Body<Ringing>,
) -> ApiResult<(StatusCode, Json<Events>)> {
    let events = center(state, move |s, now| {
        s.center().report_ringing(
            s.store(),
            &req.member,
            &req.call_id,
            &req.caller,
            req.web,
            now,
        )
    })
    .await?;
    Ok((StatusCode::CREATED, Events::json(events)))
}

pub(crate) async fn delete_ringing(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let call = seg.raw("call")?.to_owned();
    center(state, move |s, now| {
        s.center().report_ringing_ended(s.store(), &call, now)
    })
    .await
    .map(Events::json)
}
