//! The HTTP boundary's one error type (STYLE.md 7): a status, a stable machine code and a human
//! message, rendered as `{"error": {"code": …, "message": …}}` (docs/api.md, Errors). Every
//! lower error (engine, state, JSON rejection) is mapped to it here, once.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use dataplane::engine::EngineError;

use crate::center::CenterError;
use crate::groups::GroupError;
use crate::lifecycle::Refused;
use crate::state::StateError;
use crate::store::StoreError;

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

impl From<StateError> for ApiError {
    fn from(err: StateError) -> ApiError {
        let message = err.to_string();
        match err {
            StateError::CallNotFound(_) | StateError::SupervisionNotFound(_) => {
                ApiError::not_found(message)
            }
            StateError::CallEnded(_) => ApiError::new(StatusCode::CONFLICT, "call_ended", message),
            // The lifecycle's own code: `supervision_ended`, `not_legal_now`, `web_call`, …
            // Denials (SPEC §4): the caller may not, whatever the session's state.
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
            StateError::Engine(err) => ApiError::from(err),
            StateError::Store(_) | StateError::Random(_) | StateError::Internal(_) => {
                ApiError::internal(message)
            }
        }
    }
}

/// The status and code a store error answers with: a missing row is not found, a taken key a
/// conflict, anything else the server's fault.
fn store_status(err: &StoreError) -> (StatusCode, &'static str) {
    match err {
        StoreError::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
        StoreError::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        let (status, code) = store_status(&err);
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
            CenterError::Store(e) => store_status(e),
        };
        ApiError::new(status, code, err.to_string())
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
            JsonRejection::BytesRejection(_)
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!(
                        "the body exceeds the limit of {} bytes",
                        crate::api::BODY_LEN_MAX
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
