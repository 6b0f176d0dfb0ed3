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
use crate::http::center::{ApiResult, Events, Segments, acting_user, center, join_or_leave};
use crate::http::error::ApiError;
use axum::extract::Query;

use crate::domain::call::parse_registered_number;
use crate::domain::groups::MemberFilter;
use crate::domain::ids::UserId;
use crate::domain::ids::quote;
use crate::http::access::{Authorized, Console, Principal, Signalling};
use crate::http::bodies::PlainBody;
use crate::http::views::center::{MemberList, RingingCallView};

/// `POST /v1/ringing`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RingingReport)]
pub struct Ringing {
    /// The platform's call id (1 to 128 characters, not blank, no control characters); never seen
    /// before.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 1,
        max_length = 128
    )]
    call_id: String,
    #[schema(schema_with = crate::http::openapi::schemas::user_id)]
    member: String,
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 1,
        max_length = 128
    )]
    caller: String,
    /// A web call: shown, never taken or supervised.
    #[serde(default)]
    #[schema(default = false)]
    web: bool,
}

impl PlainBody for Ringing {}

/// `PUT /v1/console/settings`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConsoleSettingsChange)]
pub struct Settings {
    /// An optional `+` then 3 to 20 digits (docs/design.md §2).
    #[schema(pattern = "^\\+?[0-9]{3,20}$")]
    registered_number: String,
}

impl PlainBody for Settings {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MembersQuery {
    filter: Option<String>,
    search: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/console/members", tag = "Console", operation_id = "console_members",
    summary = "The members of the supervisor's groups",
    description = "One row per member per supervised group, with availability and presence.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::MembersParams),
    responses(
        (status = 200, description = "The members.", body = ref("#/components/schemas/MemberList")),
        (status = 400, description = "`invalid_query`: a query parameter out of range, or an unknown one.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_query"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenConsole),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn console_members(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    query: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<MemberList>> {
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
    Ok(Json(MemberList::new(members)))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = RingingCallList)]
pub struct RingingCalls {
    count: usize,
    calls: Vec<RingingCallView>,
}

#[utoipa::path(
    get, path = "/v1/console/ringing-calls", tag = "Console", operation_id = "console_ringing",
    summary = "Ringing supervised calls",
    description = "The business calls ringing members logged in to the supervisor's groups (web calls left out), by call id.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    responses(
        (status = 200, description = "The calls.", body = RingingCalls),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenConsole),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn console_ringing(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
) -> ApiResult<Json<RingingCalls>> {
    let me = acting_user(&principal)?;
    let calls = blocking(state, move |s| Ok(s.center().ringing_calls(&me))).await?;
    Ok(Json(RingingCalls {
        count: calls.len(),
        calls: calls.into_iter().map(RingingCallView::from).collect(),
    }))
}

#[utoipa::path(
    post, path = "/v1/console/ringing-calls/{call}/take",
    tag = "Console", operation_id = "take_call",
    summary = "Take a ringing call",
    description = "The first taker wins; the platform routes the call to them and the member's phone stops.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::PlatformCallParam),
    responses(
        (status = 200, description = "What changed.", body = ref("#/components/schemas/GroupEvents")),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_group`, `web_call_not_supervisable`: the token names no user; the member is logged in to no group you supervise; a web call.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_group", "web_call_not_supervisable"])))),
        (status = 404, description = "`unknown_call`: no such call is ringing.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_call"])))),
        (status = 409, description = "`already_taken`: another supervisor took it first.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["already_taken"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn take_call(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let me = acting_user(&principal)?;
    let call = seg.raw("call")?.to_owned();
    center(state, move |s| s.center().take_call(&call, &me))
        .await
        .map(Events::json)
}

#[utoipa::path(
    post, path = "/v1/console/members/{user}/cancel-forwarding",
    tag = "Console", operation_id = "cancel_forwarding",
    summary = "Cancel a member's forwarding",
    description = "`forwarded` becomes `logged_in` (no admin right needed).\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::UserParam),
    responses(
        (status = 200, description = "What changed.", body = ref("#/components/schemas/GroupEvents")),
        (status = 400, response = crate::http::openapi::responses::InvalidUserId),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_group`: the token names no user; the member is in no group you supervise.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_group"])))),
        (status = 404, description = "`unknown_user`: no such user (users come with their first token).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user"])))),
        (status = 409, description = "`not_forwarded`: the member's line is not forwarded.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_forwarded"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn cancel_forwarding(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let me = acting_user(&principal)?;
    let member = seg.raw("user")?.to_owned();
    center(state, move |s| s.center().cancel_forwarding(&me, &member))
        .await
        .map(Events::json)
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Subscriptions)]
pub struct Subscriptions {
    #[schema(schema_with = crate::http::openapi::schemas::user_id_list)]
    agents: Vec<UserId>,
}

#[utoipa::path(
    get, path = "/v1/console/subscriptions", tag = "Console", operation_id = "list_subscriptions",
    summary = "The agents the supervisor follows",
    description = "Agents whose service calls notify the supervisor (`agent.on_service_call`).\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    responses(
        (status = 200, description = "The agents.", body = Subscriptions),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenConsole),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn list_subscriptions(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
) -> ApiResult<Json<Subscriptions>> {
    let me = acting_user(&principal)?;
    let agents = blocking(state, move |s| Ok(s.center().subscriptions_of(&me))).await?;
    Ok(Json(Subscriptions { agents }))
}

/// Whether the supervisor follows the agent now (`PUT`/`DELETE /v1/console/subscriptions/…`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct SubscriptionResult {
    /// The state asked for.
    subscribed: bool,
    /// Whether anything changed (false: it already was so).
    changed: bool,
}

pub(crate) async fn subscription(
    principal: Principal,
    state: AppState,
    seg: Segments,
    on: bool,
) -> ApiResult<Json<SubscriptionResult>> {
    let me = acting_user(&principal)?;
    let agent = seg.raw("user")?.to_owned();
    let changed = center(state, move |s| s.center().subscription(&me, &agent, on)).await?;
    Ok(Json(SubscriptionResult {
        subscribed: on,
        changed,
    }))
}

#[utoipa::path(
    put, path = "/v1/console/subscriptions/{user}", tag = "Console", operation_id = "subscribe",
    summary = "Follow an agent",
    description = "Notify me whenever this agent is on a service call. Subscribing twice is no error. No body.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::UserParam),
    responses(
        (status = 200, description = "`subscribed: true`.", body = SubscriptionResult),
        (status = 400, response = crate::http::openapi::responses::InvalidUserId),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_group`: the token names no user; the agent is in no group you supervise.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_group"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn subscribe(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<SubscriptionResult>> {
    subscription(principal, state, seg, true).await
}

#[utoipa::path(
    delete, path = "/v1/console/subscriptions/{user}",
    tag = "Console", operation_id = "unsubscribe",
    summary = "Stop following an agent",
    description = "No body.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::UserParam),
    responses(
        (status = 200, description = "`subscribed: false`.", body = SubscriptionResult),
        (status = 400, response = crate::http::openapi::responses::InvalidUserId),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenConsole),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn unsubscribe(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<SubscriptionResult>> {
    subscription(principal, state, seg, false).await
}

#[utoipa::path(
    get, path = "/v1/console/settings", tag = "Console", operation_id = "get_settings",
    summary = "The supervisor's settings",
    description = "The registered number.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    responses(
        (status = 200, description = "The settings.", body = ConsoleSettings),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenConsole),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn get_settings(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
) -> ApiResult<Json<ConsoleSettings>> {
    let me = acting_user(&principal)?;
    let number = blocking(state, move |s| {
        Ok(s.center().settings(&me).map_err(Storage::from)?)
    })
    .await?;
    Ok(Json(ConsoleSettings {
        registered_number: number,
    }))
}

/// A supervisor's console settings (`GET` and `PUT /v1/console/settings`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ConsoleSettings {
    /// Digits, without `+`; `null`: none set.
    #[schema(required = true)]
    registered_number: Option<String>,
}

/// docs/design.md §2 `validation`: "the supervisor telephone number must be a number".
#[utoipa::path(
    put, path = "/v1/console/settings", tag = "Console", operation_id = "put_settings",
    summary = "Set the registered number",
    description = "Used by supervisions that name no `registered_number`.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    request_body = ref("#/components/schemas/ConsoleSettingsChange"),
    responses(
        (status = 200, description = "The settings (digits only).", body = ConsoleSettings),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `validation`: not a number (\"the supervisor telephone number must be a number\").", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "validation"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenConsole),
        (status = 404, description = "`not_found`: the token's user does not exist.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn put_settings(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    Body(req): Body<Settings>,
) -> ApiResult<Json<ConsoleSettings>> {
    let me = acting_user(&principal)?;
    let digits = parse_registered_number(&req.registered_number)?
        .digits()
        .to_owned();
    let digits = blocking(state, move |s| {
        Ok(s.center()
            .set_settings(&me, digits)
            .map_err(Storage::from)?)
    })
    .await?;
    Ok(Json(ConsoleSettings {
        registered_number: Some(digits),
    }))
}

#[utoipa::path(
    post, path = "/v1/console/groups/{group}/join", tag = "Console", operation_id = "console_join",
    summary = "Join a mutual-aid group (as a member)",
    description = "A supervisor who is also a member joins the group.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::GroupParam),
    responses(
        (status = 200, description = "What changed.", body = ref("#/components/schemas/GroupEvents")),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenConsole),
        (status = 404, description = "`unknown_group`, `not_a_member`: no such group; not a member of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "not_a_member"])))),
        (status = 409, description = "`standard_group`, `already_logged_in`: a standard group; already logged in.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["standard_group", "already_logged_in"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn console_join(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, true).await
}

#[utoipa::path(
    post, path = "/v1/console/groups/{group}/leave",
    tag = "Console", operation_id = "console_leave",
    summary = "Leave a mutual-aid group (as a member)",
    description = "As join.\n\n**Who:** Console endpoint: supervisors (acting as the token's user) and admins.",
    params(crate::http::openapi::params::GroupParam),
    responses(
        (status = 200, description = "What changed.", body = ref("#/components/schemas/GroupEvents")),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenConsole),
        (status = 404, description = "`unknown_group`, `not_a_member`: no such group; not a member of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_group", "not_a_member"])))),
        (status = 409, description = "`standard_group`, `already_logged_out`, `member_cannot_leave`, `last_member_locked`: a standard group; already logged out; `can_leave` false; the last member logged in to a locked group.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["standard_group", "already_logged_out", "member_cannot_leave", "last_member_locked"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("console"))),
)]
pub(crate) async fn console_leave(
    Authorized(principal, _): Authorized<Console>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    join_or_leave(principal, state, seg, false).await
}

#[utoipa::path(
    post, path = "/v1/ringing", tag = "Platform reports", operation_id = "post_ringing",
    summary = "Report a ringing call",
    description = "An incoming call rings a member's phone: supervisors of their groups see it and may take it.\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    request_body = ref("#/components/schemas/RingingReport"),
    responses(
        (status = 201, description = "What changed.", body = ref("#/components/schemas/GroupEvents")),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_value`: a blank or too long `call_id` or `caller`; not a user id.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_value"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 404, description = "`unknown_user`: no such user (users come with their first token).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user"])))),
        (status = 409, description = "`duplicate_call`, `line_busy`: the call id was seen before; the member's phone rings already or is forwarded.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["duplicate_call", "line_busy"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
pub(crate) async fn post_ringing(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    Body(req): Body<Ringing>,
) -> ApiResult<(StatusCode, Json<Events>)> {
    let events = center(state, move |s| {
        s.center()
            .report_ringing(&req.member, &req.call_id, &req.caller, req.web)
    })
    .await?;
    Ok((StatusCode::CREATED, Events::json(events)))
}

#[utoipa::path(
    delete, path = "/v1/ringing/{call}", tag = "Platform reports", operation_id = "delete_ringing",
    summary = "Report that a call stopped ringing",
    description = "Answered, missed or abandoned; for a call a supervisor took, nothing is left to do.\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    params(crate::http::openapi::params::PlatformCallParam),
    responses(
        (status = 200, description = "What changed.", body = ref("#/components/schemas/GroupEvents")),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 404, description = "`unknown_call`: no such call is ringing.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_call"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
pub(crate) async fn delete_ringing(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<Events>> {
    let call = seg.raw("call")?.to_owned();
    center(state, move |s| s.center().report_ringing_ended(&call))
        .await
        .map(Events::json)
}
