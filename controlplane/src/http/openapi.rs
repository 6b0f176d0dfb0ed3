//! The API's own description: `GET /openapi.json`, the OpenAPI 3.1 document of every route
//! (hand-written, `controlplane/openapi.json`), and `GET /docs`, an interactive page over it.
//! Neither needs a token, like `/healthz`.
//!
//! The page is one self-contained file (`docs.html`: plain HTML, CSS and JavaScript) because the
//! appliance may run air-gapped: it loads nothing but `openapi.json` and the requests the user
//! sends from it, and its `Content-Security-Policy` tells the browser to refuse anything else.
//!
//! `tests/openapi.rs` keeps the document honest: every operation in it answers in the router,
//! every `.route(…)` of the source is in it, and the roles it names are the ones the guards let
//! through.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

use crate::app::state::AppState;

/// The OpenAPI document, as served.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// The interactive documentation page.
pub const DOCS_PAGE: &str = include_str!("docs.html");

/// The page's scripts and styles are inline; it may connect to this appliance only.
const DOCS_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
                        style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
                        base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /openapi.json` and `GET /docs`, merged into [`crate::http::api::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/openapi.json", get(document))
        .route("/docs", get(docs))
}

async fn document() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT,
    )
}

async fn docs() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(DOCS_CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        DOCS_PAGE,
    )
}
