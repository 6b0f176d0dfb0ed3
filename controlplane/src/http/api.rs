//! The HTTP API of docs/api.md, as a [`Router`] tests can call in-process (docs/design.md §9.11).
//!
//! Handlers are thin: the extractors below turn path segments and bodies into domain types (or
//! the contract's error), and [`AppState`] does the rest, off the async runtime
//! (`spawn_blocking`: its methods take the records lock, the engine's ring and the store's
//! commits, which may block).

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};

use crate::app::rights::{self, Requester};
use crate::app::snapshots::{CallSnapshot, SupervisionSnapshot};
use crate::app::state::{AppState, StateError};
use crate::app::storage::Storage;
use crate::domain::call::{
    CallEvent, ModeChange, NewCall, NewSupervision, RemoteChange, SupervisionId, SupervisorEvent,
};
use crate::domain::ids::quote;
use crate::http::access::{Authorized, Principal, Read, Signalling, Supervision};
use crate::http::alerts::{self, Alerts};
use crate::http::error::ApiError;
use crate::http::tokens;
use crate::http::views::calls::{AlertView, CallView, LegView, SupervisionView};
use dataplane::media::matrix::Mode;

/// Largest request body accepted (docs/api.md: 64 KiB).
pub const BODY_LEN_MAX: usize = 64 * 1024;

/// The API with the JSON error shape on every answer (docs/api.md, Errors), for tests calling
/// it in-process.
pub fn app(state: AppState) -> Router {
    crate::http::error::with_json_errors(routes(state))
}

/// [`app`] with the server's request timeouts of `http` (docs/api.md, Connection limits): a
/// body whose next piece does not come within `body_timeout`, or a request not answered within
/// `request_timeout` (a body trickled in), is answered `408 request_timeout` and its connection
/// closed. Streams answer at once, so the request timeout never cuts them.
pub fn app_with_limits(state: AppState, http: &crate::config::HttpSection) -> Router {
    let routes = routes(state)
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            http.body_timeout(),
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            http.request_timeout(),
        ));
    crate::http::error::with_json_errors(routes)
}

fn routes(state: AppState) -> Router {
    Router::new()
        .route("/v1/calls", get(list_calls).post(create_call))
        .route("/v1/calls/{call}", get(get_call).delete(delete_call))
        .route("/v1/calls/{call}/legs/{party}", patch(patch_leg))
        .route("/v1/calls/{call}/events", post(call_event))
        .route("/v1/calls/{call}/supervisions", post(create_supervision))
        .route("/v1/supervisions", get(list_supervisions))
        .route(
            "/v1/supervisions/{supervision}",
            get(get_supervision)
                .patch(patch_supervision)
                .delete(delete_supervision),
        )
        .route(
            "/v1/supervisions/{supervision}/events",
            post(supervisor_event),
        )
        .route(
            "/v1/supervisions/{supervision}/alerts",
            get(supervision_alerts),
        )
        .route("/v1/alerts", get(alerts::list_alerts))
        .route("/v1/audit", get(alerts::list_audit))
        .route("/v1/events", get(crate::http::events::stream))
        .route(
            "/v1/tokens",
            get(tokens::list_tokens).post(tokens::post_token),
        )
        .route("/v1/tokens/{token}", delete(tokens::delete_token))
        .merge(crate::http::center::routes())
        .merge(crate::http::webhooks::routes())
        .merge(crate::http::openapi::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        // After routing, so the route template is known (MatchedPath).
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            track_request,
        ))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(BODY_LEN_MAX))
        .with_state(state)
}

/// Counts each request and its latency by route template.
async fn track_request(
    State(state): State<AppState>,
    matched: axum::extract::MatchedPath,
    req: Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let response = next.run(req).await;
    state.metrics().api_request(
        matched.as_str(),
        method.as_str(),
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

pub use crate::http::extract::{Body, CallPath, LegPath, Page, SupervisionPath};
pub(crate) use crate::http::extract::{log_id, param, path_params};

// ---- handlers ----

type ApiResult<T> = Result<T, ApiError>;

/// Runs an operation on the blocking pool (it may take the records lock, the engine's ring
/// and the store's commits). Operations of [`AppState`] answer in [`StateError`]: `Ok(op?)`.
///
/// Group commit ([`AppState::deferred`]): the answer, success or error, waits until every
/// commit made before the operation ended is durable. The operation has released the records
/// lock by then, so concurrent requests wait for their syncs together and share them.
pub(crate) async fn blocking_api<T: Send + 'static>(
    state: AppState,
    f: impl FnOnce(&AppState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(move || state.deferred(f))
        .await
        .map_err(|e| ApiError::internal(format!("the request's task failed: {e}")))?
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = CallList)]
struct Calls {
    calls: Vec<CallView>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = SupervisionList)]
struct Supervisions {
    supervisions: Vec<SupervisionView>,
}

/// What a caller may read (docs/design.md §4.4): admins and the softswitch everything; a supervisor
/// the calls of agents in the groups they supervise and the supervisions of those agents or their
/// own; an agent their own calls and the supervisions of them. What is not visible answers as
/// if it did not exist.
pub(crate) struct Visibility {
    /// Admins and the softswitch: everything.
    pub(crate) all: bool,
    /// The user the token names.
    pub(crate) me: Option<crate::domain::agents::UserId>,
    supervisor: bool,
}

/// The user a token names, if any.
pub(crate) fn token_user(p: &Principal) -> Option<crate::domain::agents::UserId> {
    p.user_id.clone()
}

impl Visibility {
    pub(crate) fn of(p: &Principal) -> Visibility {
        use crate::domain::auth::Role;
        Visibility {
            all: p.has(Role::Admin) || p.has(Role::Softswitch),
            me: token_user(p),
            supervisor: p.has(Role::Supervisor),
        }
    }

    /// Whether agent `agent` (and what is theirs) is visible: to everyone who sees all, to
    /// the agent, and to a supervisor of one of their groups.
    pub(crate) fn sees_agent(&self, s: &AppState, agent: &crate::domain::agents::UserId) -> bool {
        self.all
            || self.me.as_ref().is_some_and(|me| {
                me == agent || (self.supervisor && s.center().supervises_member(me, agent))
            })
    }

    fn agent(&self, s: &AppState, agent: Option<&str>) -> bool {
        self.all
            || agent
                .and_then(|a| crate::domain::agents::UserId::parse(a).ok())
                .is_some_and(|a| self.sees_agent(s, &a))
    }

    fn call(&self, s: &AppState, c: &CallSnapshot) -> bool {
        self.agent(s, c.agent_id.as_deref())
    }

    pub(crate) fn supervision(&self, s: &AppState, v: &SupervisionSnapshot) -> bool {
        let own = self
            .me
            .as_ref()
            .is_some_and(|me| v.supervisor_id.as_deref() == Some(me.as_str()));
        own || self.agent(s, v.agent_id.as_deref())
    }
}

/// `GET /v1/calls`'s query.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CallsQuery {
    ng_call_id: Option<String>,
}

#[utoipa::path(
    get, path = "/v1/calls", tag = "Calls", operation_id = "list_calls",
    summary = "List calls",
    description = "The calls since start and the 1,000 most recent before it, oldest first; with `ng_call_id`, only the calls anchored over the NG protocol under that call-id (docs/ng.md).\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    params(crate::http::openapi::params::CallsParams),
    responses(
        (status = 200, description = "The calls.", body = Calls),
        (status = 400, description = "`invalid_query`: an unknown query parameter.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_query"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
async fn list_calls(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    query: Result<axum::extract::Query<CallsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Calls>> {
    let axum::extract::Query(q) = query?;
    let seen = Visibility::of(&principal);
    let calls = blocking_api(state, move |s| {
        let calls = match q.ng_call_id.as_deref() {
            Some(ng) => s.calls_by_ng_call_id(ng),
            None => s.calls(),
        };
        Ok(calls
            .into_iter()
            .filter(|c| seen.call(s, c))
            .map(CallView::from)
            .collect())
    })
    .await?;
    Ok(Json(Calls { calls }))
}

#[utoipa::path(
    post, path = "/v1/calls", tag = "Calls", operation_id = "create_call",
    summary = "Create a call",
    description = "Anchors the media of a customer and an agent: each leg gets a local media address on the appliance, for the softswitch to put in the SDP it sends to that party.\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    request_body = crate::http::bodies::RawNewCall,
    responses(
        (status = 201, description = "The call.", body = CallView),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_address`: a `remote` that is not `ip:port`, port 0, or not of the media address's IP family.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_address"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
        (status = 503, response = crate::http::openapi::responses::Unavailable),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
async fn create_call(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    Body(req): Body<NewCall>,
) -> ApiResult<(StatusCode, Json<CallView>)> {
    let call = blocking_api(state, move |s| Ok(s.create_call(req)?)).await?;
    Ok((StatusCode::CREATED, Json(CallView::from(call))))
}

#[utoipa::path(
    get, path = "/v1/calls/{call}", tag = "Calls", operation_id = "get_call",
    summary = "Show a call",
    description = "A call, older ones too (from the database).\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    params(crate::http::openapi::params::CallParam),
    responses(
        (status = 200, description = "The call.", body = CallView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 404, description = "`not_found`: no such call (or not of the form `c_` + 16 hex digits).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
async fn get_call(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    CallPath(id): CallPath,
) -> ApiResult<Json<CallView>> {
    let seen = Visibility::of(&principal);
    Ok(Json(
        blocking_api(state, move |s| {
            let call = s.call(id)?;
            if seen.call(s, &call) {
                Ok(CallView::from(call))
            } else {
                Err(StateError::CallNotFound(id).into())
            }
        })
        .await?,
    ))
}

#[utoipa::path(
    delete, path = "/v1/calls/{call}", tag = "Calls", operation_id = "delete_call",
    summary = "Delete a call",
    description = "Its open supervisions end `aborted` (`call_deleted`), its media is released, and the API forgets it (the database keeps it as history).\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    params(crate::http::openapi::params::CallParam),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 404, description = "`not_found`: no such call (or not of the form `c_` + 16 hex digits).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
async fn delete_call(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    CallPath(id): CallPath,
) -> ApiResult<StatusCode> {
    blocking_api(state, move |s| Ok(s.delete_call(id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(
    patch, path = "/v1/calls/{call}/legs/{party}", tag = "Calls", operation_id = "patch_leg",
    summary = "Set a leg's remote address",
    description = "Sets or changes the party's media address (e.g. when the answer SDP arrives); the leg becomes strict.\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    params(crate::http::openapi::params::CallParam, crate::http::openapi::params::PartyParam),
    request_body = crate::http::bodies::RawRemoteChange,
    responses(
        (status = 200, description = "The leg.", body = LegView),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_address`: not `ip:port`, port 0, or not of the media address's IP family.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_address"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 404, description = "`not_found`: no such call, or a party other than `customer` and `agent`.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 409, description = "`call_ended`: the call has ended.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["call_ended"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
async fn patch_leg(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    LegPath(id, party): LegPath,
    Body(req): Body<RemoteChange>,
) -> ApiResult<Json<LegView>> {
    Ok(Json(
        blocking_api(state, move |s| {
            Ok(LegView::from(s.set_remote(id, party, req.remote)?))
        })
        .await?,
    ))
}

#[utoipa::path(
    post, path = "/v1/calls/{call}/events", tag = "Calls", operation_id = "call_event",
    summary = "Report a call event",
    description = "What the softswitch reports about a call: hold and resume, consult, secure payment, conference, hang-ups, release, the outbound agent's answer. Each event is also handed to the call's open supervisions (docs/api.md, Call events).\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    params(crate::http::openapi::params::CallParam),
    request_body = crate::http::bodies::RawCallEvent,
    responses(
        (status = 200, description = "The call.", body = CallView),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_event`: an unknown event, a `hangup` without a valid `party`, `party` or `supervision_id` with another event.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_event"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 404, description = "`not_found`: no such call; a `supervision_id` that is not a supervision of it.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 409, description = "`call_ended`, `party_gone`: the call has ended; the party has already left.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["call_ended", "party_gone"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
        (status = 503, response = crate::http::openapi::responses::Unavailable),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
async fn call_event(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    CallPath(id): CallPath,
    Body(event): Body<CallEvent>,
) -> ApiResult<Json<CallView>> {
    Ok(Json(
        blocking_api(state, move |s| Ok(CallView::from(s.call_event(id, event)?))).await?,
    ))
}

#[utoipa::path(
    post, path = "/v1/calls/{call}/supervisions",
    tag = "Supervisions", operation_id = "create_supervision",
    summary = "Start a supervision",
    description = "Binds a supervisor to the call's agent. A request the call's state refuses (docs/design.md §2) is not an error but a supervision that is `failed` at once, with its alert. Media flows once the supervisor's leg answered from the registered number and the audit record is durable.\n\n**Who:** Supervision endpoint: supervisors, within their group rights, and admins.",
    params(crate::http::openapi::params::CallParam),
    request_body = crate::http::bodies::RawNewSupervision,
    responses(
        (status = 201, description = "The supervision.", body = SupervisionView),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_address`: a bad supervisor leg `remote`; `validation`: a `registered_number` that is not a number (\"the supervisor telephone number must be a number\").", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_address", "validation"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `forbidden`, `not_your_agent`, `no_listen_right`: a supervisor naming another `supervisor_id`; the call's agent is in no group they supervise; no `listen` right; `grant_required`: `persistent` without the supervisor's grant over the agent (every denial is audited).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_agent", "no_listen_right", "grant_required"])))),
        (status = 404, description = "`not_found`: no such call (or not of the form `c_` + 16 hex digits).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 409, description = "`call_ended`, `web_call`, `too_many_supervisors`, `monitor_limit`: the call has ended; a web call (never supervised); the per-call cap of open supervisions; a group's `max_monitors_per_agent`.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["call_ended", "web_call", "too_many_supervisors", "monitor_limit"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
        (status = 503, response = crate::http::openapi::responses::Unavailable),
    ),
    extensions(("x-endpoint-class" = json!("supervision"))),
)]
async fn create_supervision(
    Authorized(principal, _): Authorized<Supervision>,
    State(state): State<AppState>,
    CallPath(id): CallPath,
    Body(mut req): Body<NewSupervision>,
) -> ApiResult<(StatusCode, Json<SupervisionView>)> {
    if !principal.is_admin() {
        // A supervisor supervises as themself.
        match (&req.supervisor_id, &principal.user_id) {
            (Some(named), Some(user)) if named != user.as_str() => {
                let detail = format!("forbidden: supervisor_id {named} is not the caller");
                let who = principal.clone();
                blocking_api(state, move |s| {
                    Ok(rights::audit(s, &who, Some(&id.to_string()), detail)
                        .map_err(Storage::from)?)
                })
                .await?;
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!(
                        "supervisor_id: {} is not you ({}); only admins supervise on behalf of \
                         another",
                        quote(named),
                        quote(user.as_str())
                    ),
                ));
            }
            (None, Some(user)) => req.supervisor_id = Some(user.to_string()),
            _ => {}
        }
    }
    let requester = if principal.is_admin() {
        Requester::Admin
    } else {
        Requester::Supervisor {
            user: token_user(&principal),
            actor: principal.actor(),
        }
    };
    let sup = blocking_api(state, move |s| {
        let call = s.call(id)?;
        match s.create_supervision(id, req, &requester) {
            // A call the caller cannot read answers as an unknown one (docs/api.md, Read
            // scoping): a 403 would tell that it exists. The denial is audited all the same.
            Err(StateError::Denied(_)) if !Visibility::of(&principal).call(s, &call) => {
                Err(StateError::CallNotFound(id).into())
            }
            created => Ok(created?),
        }
    })
    .await?;
    Ok((StatusCode::CREATED, Json(SupervisionView::from(sup))))
}

/// Refuses, audited, a supervisor without the rights over a supervision's agent for `mode`.
fn check_existing(
    s: &AppState,
    principal: &Principal,
    id: SupervisionId,
    mode: Option<Mode>,
    action: &str,
) -> ApiResult<()> {
    if principal.is_admin() {
        return Ok(());
    }
    let sup = s.supervision(id)?;
    // Stopping needs some right over the agent, or to be the session's supervisor.
    if mode.is_none()
        && sup.supervisor_id.is_some()
        && sup.supervisor_id.as_deref() == principal.user_id.as_ref().map(|u| u.as_str())
    {
        return Ok(());
    }
    let mode = mode.unwrap_or(Mode::Listen);
    let checked = rights::check_supervision(
        s,
        principal,
        sup.agent_id.as_deref(),
        mode,
        &sup.call_id.to_string(),
        Some(&id.to_string()),
        action,
    );
    // A supervision the caller cannot read answers as an unknown one (docs/api.md, Read
    // scoping); one it can read but lacks the right for (listen-only asking for barge) is a
    // 403. The denial is audited either way.
    if checked.is_err() && !Visibility::of(principal).supervision(s, &sup) {
        return Err(StateError::SupervisionNotFound(id).into());
    }
    Ok(checked?)
}

#[utoipa::path(
    get, path = "/v1/supervisions", tag = "Supervisions", operation_id = "list_supervisions",
    summary = "List supervisions",
    description = "Open and ended, since start and the 1,000 most recent before it.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    responses(
        (status = 200, description = "The supervisions.", body = Supervisions),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
async fn list_supervisions(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
) -> ApiResult<Json<Supervisions>> {
    let seen = Visibility::of(&principal);
    let supervisions = blocking_api(state, move |s| {
        Ok(s.supervisions()
            .into_iter()
            .filter(|v| seen.supervision(s, v))
            .map(SupervisionView::from)
            .collect())
    })
    .await?;
    Ok(Json(Supervisions { supervisions }))
}

/// The supervision `id` if `seen` lets the caller read it.
fn visible_supervision(
    s: &AppState,
    seen: &Visibility,
    id: SupervisionId,
) -> ApiResult<SupervisionSnapshot> {
    let sup = s.supervision(id)?;
    if seen.supervision(s, &sup) {
        Ok(sup)
    } else {
        Err(StateError::SupervisionNotFound(id).into())
    }
}

#[utoipa::path(
    get, path = "/v1/supervisions/{supervision}",
    tag = "Supervisions", operation_id = "get_supervision",
    summary = "Show a supervision",
    description = "A supervision.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    params(crate::http::openapi::params::SupervisionParam),
    responses(
        (status = 200, description = "The supervision.", body = SupervisionView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 404, response = crate::http::openapi::responses::SupervisionNotFound),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
async fn get_supervision(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    SupervisionPath(id): SupervisionPath,
) -> ApiResult<Json<SupervisionView>> {
    let seen = Visibility::of(&principal);
    Ok(Json(
        blocking_api(state, move |s| {
            visible_supervision(s, &seen, id).map(SupervisionView::from)
        })
        .await?,
    ))
}

#[utoipa::path(
    patch, path = "/v1/supervisions/{supervision}",
    tag = "Supervisions", operation_id = "patch_supervision",
    summary = "Change a supervision's mode",
    description = "Only while `active`; the current mode is a no-op. Needs the right for the new mode. Audited.\n\n**Who:** Supervision endpoint: supervisors, within their group rights, and admins.",
    params(crate::http::openapi::params::SupervisionParam),
    request_body = crate::http::bodies::RawModeChange,
    responses(
        (status = 200, description = "The supervision.", body = SupervisionView),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_mode`: not one of the five modes.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_mode"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `not_your_agent`, `no_listen_right`, `listen_only`: no rights over the agent; no `listen` right; whisper, barge or takeover with the `listen` right only.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_agent", "no_listen_right", "listen_only"])))),
        (status = 404, response = crate::http::openapi::responses::SupervisionNotFound),
        (status = 409, description = "`supervision_ended`, `not_legal_now`: the supervision has ended; not `active`.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["supervision_ended", "not_legal_now"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
        (status = 503, response = crate::http::openapi::responses::Unavailable),
    ),
    extensions(("x-endpoint-class" = json!("supervision"))),
)]
async fn patch_supervision(
    Authorized(principal, _): Authorized<Supervision>,
    State(state): State<AppState>,
    SupervisionPath(id): SupervisionPath,
    Body(req): Body<ModeChange>,
) -> ApiResult<Json<SupervisionView>> {
    Ok(Json(
        blocking_api(state, move |s| {
            check_existing(s, &principal, id, Some(req.mode), "mode_change")?;
            Ok(SupervisionView::from(s.set_mode(id, req.mode)?))
        })
        .await?,
    ))
}

#[utoipa::path(
    delete, path = "/v1/supervisions/{supervision}",
    tag = "Supervisions", operation_id = "delete_supervision",
    summary = "Stop a supervision",
    description = "Now `stopped` (or `failed` `no_call_to_monitor`); its media leg is released. On one that has ended it changes nothing. Needs to be the session's supervisor or some right over its agent.\n\n**Who:** Supervision endpoint: supervisors, within their group rights, and admins.",
    params(crate::http::openapi::params::SupervisionParam),
    responses(
        (status = 200, description = "The supervision, as it is now.", body = SupervisionView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, description = "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); `not_your_agent`, `no_listen_right`: no rights over the agent.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["forbidden", "not_your_agent", "no_listen_right"])))),
        (status = 404, response = crate::http::openapi::responses::SupervisionNotFound),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("supervision"))),
)]
async fn delete_supervision(
    Authorized(principal, _): Authorized<Supervision>,
    State(state): State<AppState>,
    SupervisionPath(id): SupervisionPath,
) -> ApiResult<Json<SupervisionView>> {
    Ok(Json(
        blocking_api(state, move |s| {
            check_existing(s, &principal, id, None, "stop")?;
            Ok(SupervisionView::from(s.stop_supervision(id)?))
        })
        .await?,
    ))
}

#[utoipa::path(
    post, path = "/v1/supervisions/{supervision}/events",
    tag = "Supervisions", operation_id = "supervisor_event",
    summary = "Report a supervisor-leg event",
    description = "The softswitch reports the supervisor's leg: ringing, answered (from a calling number), rejected, do-not-disturb, hung up.\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    params(crate::http::openapi::params::SupervisionParam),
    request_body = crate::http::bodies::RawSupervisorEvent,
    responses(
        (status = 200, description = "The supervision.", body = SupervisionView),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_event`: an unknown event; `answered` without `calling_number`, or `calling_number` with another event.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_event"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 404, response = crate::http::openapi::responses::SupervisionNotFound),
        (status = 409, description = "`supervision_ended`, `not_legal_now`: the supervision has ended; a report that does not fit its state.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["supervision_ended", "not_legal_now"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
        (status = 503, response = crate::http::openapi::responses::Unavailable),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
async fn supervisor_event(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    SupervisionPath(id): SupervisionPath,
    Body(event): Body<SupervisorEvent>,
) -> ApiResult<Json<SupervisionView>> {
    Ok(Json(
        blocking_api(state, move |s| {
            Ok(SupervisionView::from(s.supervisor_event(id, event)?))
        })
        .await?,
    ))
}

#[utoipa::path(
    get, path = "/v1/supervisions/{supervision}/alerts",
    tag = "Supervisions", operation_id = "supervision_alerts",
    summary = "A supervision's alerts",
    description = "Oldest first.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    params(crate::http::openapi::params::SupervisionParam),
    responses(
        (status = 200, description = "The alerts.", body = Alerts),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 404, response = crate::http::openapi::responses::SupervisionNotFound),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
async fn supervision_alerts(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    SupervisionPath(id): SupervisionPath,
) -> ApiResult<Json<Alerts>> {
    let seen = Visibility::of(&principal);
    let alerts = blocking_api(state, move |s| {
        visible_supervision(s, &seen, id)?;
        Ok(s.alerts_of(id)?.into_iter().map(AlertView::from).collect())
    })
    .await?;
    Ok(Json(Alerts { alerts }))
}

#[utoipa::path(
    get, path = "/healthz", tag = "Operations", operation_id = "healthz",
    summary = "Health check",
    description = "No token needed.",
    responses(
        (status = 200, description = "The control plane answers.", body = Health),
    ),
    security(()),
)]
async fn healthz() -> Json<Health> {
    Json(Health { status: Health::OK })
}

/// `GET /healthz`'s answer: the control plane answers (`status` is always `ok`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    status: &'static str,
}

impl Health {
    /// The control plane answers.
    pub const OK: &'static str = "ok";
}

#[utoipa::path(
    get, path = "/metrics", tag = "Operations", operation_id = "metrics",
    summary = "Prometheus metrics",
    description = "The control plane's and the data plane's metrics (docs/api.md, Operations). No token needed.",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4.", content_type = "text/plain", body = String),
    ),
    security(()),
)]
async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics().render() {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(err) => ApiError::internal(format!("cannot render metrics: {err}")).into_response(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", quote(uri.path())),
    )
}

async fn no_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", quote(uri.path())))
}
