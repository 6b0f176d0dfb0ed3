//! The HTTP boundary's one error type (docs/design.md §9.7): a status, a stable machine code and a
//! human message, rendered as `{"error": {"code": …, "message": …}}` (docs/api.md, Errors). Every
//! lower error (engine, state, JSON rejection) is mapped to it here, once.

use axum::extract::Request;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use dataplane::engine::EngineError;

use crate::app::center::CenterError;
use crate::app::events::EventsError;
use crate::app::random::RandomError;
use crate::app::rights::RightsError;
use crate::app::state::StateError;
use crate::app::storage::{Storage, StorageFailure};
use crate::app::tokens::TokenError;
use crate::app::webhooks::WebhookError;
use crate::domain::call::InputError;
use crate::domain::groups::GroupError;
use crate::domain::ids::IdError;
use crate::domain::lifecycle::Refused;
use crate::domain::lifecycle::ValidationAlert;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid_body(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    pub fn invalid_address(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_address", message)
    }

    pub fn invalid_mode(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_mode", message)
    }

    pub fn invalid_event(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_event", message)
    }

    pub fn invalid_query(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(code = self.code, message = %self.message, "request failed");
        }
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> ApiError {
        let message = err.to_string();
        match err {
            EngineError::PortsExhausted => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ports_exhausted", message)
            }
            EngineError::LoadLimit => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "load_limit", message)
            }
            EngineError::Busy => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "engine_busy", message)
            }
            EngineError::TooManySupervisors => {
                ApiError::new(StatusCode::CONFLICT, "too_many_supervisors", message)
            }
            // The control plane validated the ids against its own state first, so these mean the
            // two planes disagree: a bug, not the client's fault.
            EngineError::UnknownCall | EngineError::UnknownLeg => {
                ApiError::internal(format!("data plane: {message}"))
            }
            EngineError::Config(_) | EngineError::AfXdp(_) | EngineError::Io { .. } => {
                ApiError::internal(format!("data plane: {message}"))
            }
        }
    }
}

impl From<IdError> for ApiError {
    /// An id not of the form the appliance hands out names nothing.
    fn from(err: IdError) -> ApiError {
        ApiError::not_found(err.to_string())
    }
}

impl From<InputError> for ApiError {
    fn from(err: InputError) -> ApiError {
        let message = err.to_string();
        match err {
            InputError::Body(_) => ApiError::invalid_body(message),
            InputError::Address(_) => ApiError::invalid_address(message),
            InputError::Mode(_) => ApiError::invalid_mode(message),
            InputError::Event(_) => ApiError::invalid_event(message),
            // docs/design.md §2 `validation`: its own code, the rule's words.
            InputError::Validation(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, ValidationAlert::CODE, message)
            }
            InputError::Id(err) => ApiError::from(err),
        }
    }
}

impl From<RandomError> for ApiError {
    fn from(err: RandomError) -> ApiError {
        ApiError::internal(err.to_string())
    }
}

impl From<StateError> for ApiError {
    fn from(err: StateError) -> ApiError {
        let message = err.to_string();
        match err {
            StateError::CallNotFound(_) | StateError::SupervisionNotFound(_) => {
                ApiError::not_found(message)
            }
            StateError::CallEnded(_) => ApiError::new(StatusCode::CONFLICT, "call_ended", message),
            // The lifecycle's own code: `supervision_ended`, `not_legal_now`, `web_call`, …
            // Denials (docs/design.md §4.5): the caller may not, whatever the session's state.
            StateError::Refused {
                refused: refused @ Refused::PersistentWithoutGrant,
                ..
            } => ApiError::new(StatusCode::FORBIDDEN, refused.code(), message),
            StateError::Refused { refused, .. } => {
                ApiError::new(StatusCode::CONFLICT, refused.code(), message)
            }
            StateError::TooManySupervisors { .. } => {
                ApiError::new(StatusCode::CONFLICT, "too_many_supervisors", message)
            }
            StateError::AddressFamily { .. } => ApiError::invalid_address(message),
            StateError::MonitorLimit { .. } => {
                ApiError::new(StatusCode::CONFLICT, "monitor_limit", message)
            }
            StateError::Denied(denied) => {
                ApiError::new(StatusCode::FORBIDDEN, denied.code(), message)
            }
            StateError::Engine(err) => ApiError::from(err),
            StateError::Store(_) | StateError::Random(_) | StateError::Internal(_) => {
                ApiError::internal(message)
            }
        }
    }
}

/// The status and code a store error answers with: a missing row is not found, a taken key a
/// conflict, anything else the server's fault.
fn store_status(failure: StorageFailure) -> (StatusCode, &'static str) {
    match failure {
        StorageFailure::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        StorageFailure::Conflict => (StatusCode::CONFLICT, "conflict"),
        StorageFailure::Other => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<Storage> for ApiError {
    fn from(err: Storage) -> ApiError {
        let (status, code) = store_status(err.failure());
        ApiError::new(status, code, err.to_string())
    }
}

impl From<CenterError> for ApiError {
    fn from(err: CenterError) -> ApiError {
        let (status, code) = match &err {
            CenterError::Group(e) => {
                let status = match e {
                    GroupError::InvalidValue(_) => StatusCode::BAD_REQUEST,
                    GroupError::UnknownGroup { .. }
                    | GroupError::UnknownUser { .. }
                    | GroupError::UnknownCall { .. }
                    | GroupError::NotAMember { .. }
                    | GroupError::NotASupervisor { .. } => StatusCode::NOT_FOUND,
                    GroupError::AdminRightRequired { .. }
                    | GroupError::NotYourGroup { .. }
                    | GroupError::GroupNotSupervised { .. }
                    | GroupError::WebCallNotSupervisable { .. } => StatusCode::FORBIDDEN,
                    _ => StatusCode::CONFLICT,
                };
                (status, e.code())
            }
            CenterError::Agent(e) => (StatusCode::CONFLICT, e.code()),
            CenterError::Chat(e) => (StatusCode::BAD_REQUEST, e.code()),
            CenterError::Invalid(e) => (StatusCode::BAD_REQUEST, e.code()),
            CenterError::UnknownAgent(_) => (StatusCode::NOT_FOUND, "unknown_agent"),
            CenterError::UnknownUser(_) => (StatusCode::NOT_FOUND, "unknown_user"),
            CenterError::NotYourAgent(_) => (StatusCode::FORBIDDEN, "not_your_group"),
            CenterError::Store(e) => store_status(StorageFailure::of(e)),
        };
        ApiError::new(status, code, err.to_string())
    }
}

impl From<EventsError> for ApiError {
    fn from(err: EventsError) -> ApiError {
        match err {
            EventsError::Sync(e) => ApiError::from(Storage::from(e)),
            e @ (EventsError::Read(_) | EventsError::Task(_)) => ApiError::internal(e.to_string()),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> ApiError {
        match err {
            TokenError::UnknownToken(_) => ApiError::not_found(err.to_string()),
            TokenError::Random(_) => ApiError::internal(err.to_string()),
            TokenError::Store(e) => ApiError::from(Storage::from(e)),
        }
    }
}

impl From<WebhookError> for ApiError {
    fn from(err: WebhookError) -> ApiError {
        let message = err.to_string();
        match err {
            WebhookError::NotFound(_) => ApiError::not_found(message),
            WebhookError::TooMany => {
                ApiError::new(StatusCode::CONFLICT, "too_many_webhooks", message)
            }
            WebhookError::Random(_) => ApiError::internal(message),
            WebhookError::Store(e) => ApiError::from(Storage::from(e)),
        }
    }
}

/// A denial answers 403 with the [`crate::domain::auth::Denied`] code (docs/api.md, Errors).
impl From<RightsError> for ApiError {
    fn from(err: RightsError) -> ApiError {
        match err {
            RightsError::Denied(denied) => {
                ApiError::new(StatusCode::FORBIDDEN, denied.code(), denied.to_string())
            }
            RightsError::Store(e) => ApiError::from(Storage::from(e)),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_) => {
                ApiError::invalid_body(rejection.body_text())
            }
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be JSON, with content-type: application/json",
            ),
            JsonRejection::BytesRejection(_) if timed_out(&rejection) => request_timeout(),
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "the body exceeds the limit of {} bytes",
                        crate::http::api::BODY_LEN_MAX
                    ),
                )
            }
            // The body could not be read at all (client went away, transport error).
            _ => ApiError::invalid_body(rejection.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::invalid_query(format!("invalid query: {}", rejection.body_text()))
    }
}

/// Longest request target answered (docs/api.md, Errors: 414 `uri_too_long`).
pub const URI_LEN_MAX: usize = 8 * 1024;
/// Most bytes of header fields (names and values) answered (431 `headers_too_large`).
pub const HEADERS_LEN_MAX: usize = 16 * 1024;
/// Most bytes of a non-JSON error body kept as the JSON error's message.
const ERROR_TEXT_MAX: usize = 1024;

/// Whether a body rejection was the server's body timeout (tower-http's, see
/// [`crate::http::api::app_with_limits`]) rather than the client's transport failing.
fn timed_out(rejection: &JsonRejection) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(err) = source {
        if err.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn request_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "the request did not arrive in time (docs/api.md, Connection limits)",
    )
}

/// Wraps `router` so that every error answer has the JSON error shape: answers the HTTP
/// layers make themselves (axum's rejections, tower-http's timeout) carry plain text or
/// nothing, and a client should not have to parse two shapes. Request heads over
/// [`URI_LEN_MAX`] or [`HEADERS_LEN_MAX`] are refused here, before routing; a `408` closes its
/// connection (the rest of a late body may still be on its way).
pub fn with_json_errors(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(json_errors))
}

async fn json_errors(req: Request, next: Next) -> Response {
    if let Some(err) = head_too_large(&req) {
        return err.into_response();
    }
    let response = next.run(req).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let mut response = if is_json {
        response
    } else {
        let (parts, body) = response.into_parts();
        let text = axum::body::to_bytes(body, ERROR_TEXT_MAX)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        let message = if text.is_empty() {
            status
                .canonical_reason()
                .unwrap_or("request refused")
                .to_owned()
        } else {
            text
        };
        let err = match status {
            StatusCode::REQUEST_TIMEOUT => request_timeout(),
            _ => ApiError::new(status, status_code(status), message),
        };
        let mut json = err.into_response();
        // Keep what the answer said besides its body (Allow, WWW-Authenticate, Retry-After).
        for (name, value) in &parts.headers {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                json.headers_mut().insert(name.clone(), value.clone());
            }
        }
        json
    };
    if status == StatusCode::REQUEST_TIMEOUT {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The machine code of an error answer the crate did not make itself.
fn status_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
        s if s.is_server_error() => "internal",
        _ => "bad_request",
    }
}

fn head_too_large(req: &Request) -> Option<ApiError> {
    let uri_len = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > URI_LEN_MAX {
        return Some(ApiError::new(
            StatusCode::URI_TOO_LONG,
            "uri_too_long",
            format!("the request target is {uri_len} bytes, over the limit of {URI_LEN_MAX}"),
        ));
    }
    let headers_len: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    (headers_len > HEADERS_LEN_MAX).then(|| {
        ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the header fields are {headers_len} bytes, over the limit of {HEADERS_LEN_MAX}"
            ),
        )
    })
}
