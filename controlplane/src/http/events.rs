//! `GET /v1/events`: the event log as Server-Sent Events (docs/api.md, Events).
//!
//! The stream itself (the feed, each stream's cursor over the log, who sees what) is
//! [`crate::app::events`]'; this adapter parses where it starts and ends it when the caller's
//! authority is withdrawn ([`Standing`]: revoking the token ends it).

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse as _, Response};

use crate::app::events::{Cursor, EventId, Viewer};
use crate::app::state::AppState;
use crate::http::access::{Authorized, Read, Standing};
use crate::http::error::ApiError;

/// The `Last-Event-ID` request header.
const LAST_EVENT_ID: &str = "last-event-id";

/// Where a stream starts: after `Last-Event-ID` (the header wins, as a reconnecting
/// `EventSource` sends it), else after `?after=`, else at the live tail.
pub struct Resume(pub Option<EventId>);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResume {
    after: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Resume {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(raw) = Query::<RawResume>::from_request_parts(parts, state).await?;
        if let Some(value) = parts.headers.get(LAST_EVENT_ID) {
            let text = value
                .to_str()
                .map_err(|_| ApiError::invalid_query("Last-Event-ID: not visible ASCII"))?;
            return Ok(Resume(Some(event_id("Last-Event-ID", text)?)));
        }
        match raw.after.as_deref() {
            Some(s) => Ok(Resume(Some(event_id("after", s)?))),
            None => Ok(Resume(None)),
        }
    }
}

fn event_id(what: &str, s: &str) -> Result<EventId, ApiError> {
    crate::http::api::log_id(what, s.trim()).map(EventId)
}

/// `GET /v1/events`.
#[utoipa::path(
    get, path = "/v1/events", tag = "Events", operation_id = "events",
    summary = "Stream the event log (Server-Sent Events)",
    description = "Typed events, logged in the same transaction as each state change, as `id: <n>` / `event: <type>` / `data: <json>` messages, in id order with no gaps or duplicates; a keep-alive comment every 15 s. Types: `call.created`, `call.updated`, `call.ended`, `call.deleted`; `supervision.created`, `supervision.<state>`, `supervision.mode_changed`, `supervision.aborted`; `alert.raised`; `group.<type>` (see GroupEvent) and `group.updated`; `agent.state_changed`, `agent.updated`, `agent.message`, `agent.on_service_call`; `webhook.disabled`. Without `Last-Event-ID` or `after` it starts at the live tail. Visibility: admins and softswitches see everything; a supervisor the events naming them or a group they supervise or belong to; an agent the events naming them.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    params(
        crate::http::openapi::params::EventsAfterParam,
        crate::http::openapi::params::LastEventIdParam
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`.", content_type = "text/event-stream", body = ref("#/components/schemas/EventStream")),
        (status = 400, description = "`invalid_query`: a query parameter out of range, or an unknown one.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_query"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
pub async fn stream(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    Resume(after): Resume,
) -> Result<Response, ApiError> {
    let viewer = Viewer::of(
        &principal.roles,
        principal.user_id.as_ref().map(|u| u.as_str()),
    );
    let cursor = Cursor::open(state.clone(), viewer, after).await?;
    let standing = Standing::new(state, principal);
    let frames =
        futures_util::stream::unfold((cursor, standing), |(mut c, mut standing)| async move {
            if !standing.holds() {
                return None;
            }
            let frame = tokio::select! {
                biased;
                () = standing.withdrawn() => None,
                frame = c.next() => frame,
            }?;
            Some((Ok::<_, Infallible>(frame), (c, standing)))
        });
    // The frames are rendered once by the feed for every stream (docs/api.md, Events), so
    // the body is written as is rather than through axum's `Sse`, which renders per stream.
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(frames),
    )
        .into_response())
}
