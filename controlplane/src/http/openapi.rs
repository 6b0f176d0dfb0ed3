//! The API's own description: `GET /openapi.json`, the OpenAPI 3.1 document of every route, and
//! `GET /docs`, an interactive page over it. Neither needs a token, like `/healthz`.
//!
//! The document is generated from the code (docs/api.md): each handler carries a
//! `#[utoipa::path(…)]` attribute (method, path, parameters, body, responses with their error
//! codes, endpoint class), the body and view types their schemas, and [`ApiDoc`] lists them.
//! It is built and serialised once, at the first request. The roles of each operation
//! (`x-roles`) are not written by hand: they are computed from its endpoint class with
//! [`auth::allowed`], the rule the access guard applies (docs/design.md §4).
//!
//! The page is one self-contained file (`docs.html`: plain HTML, CSS and JavaScript) because the
//! appliance may run air-gapped: it loads nothing but `openapi.json` and the requests the user
//! sends from it, and its `Content-Security-Policy` tells the browser to refuse anything else.
//!
//! `tests/openapi.rs` keeps the document honest: every operation in it answers in the router,
//! every `.route(…)` of the source is in it, and the roles it names are the ones the guards let
//! through.

use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::app::state::AppState;
use crate::domain::auth::{self, EndpointClass, Role};

pub mod params;
pub mod responses;
pub mod schemas;

/// The OpenAPI document, as served: generated from [`ApiDoc`] once.
pub static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string_pretty(&document_value()).expect("a JSON value serialises")
});

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

/// The API's description: every operation (each handler's `#[utoipa::path]`), the schemas they
/// name, the shared responses, the tags in the order the page lists them.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "earshot control plane API",
        version = "1",
        description = INFO_DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "/", description = "The appliance that serves this document.")),
    security(("bearer" = [])),
    modifiers(&BearerScheme),
    components(
        schemas(
            ErrorBody,
            crate::domain::ids::UserId,
            crate::domain::ids::GroupId,
            crate::http::views::calls::StatsView,
            crate::http::groups::Rights,
            crate::http::groups::Membership,
            crate::http::tokens::RawNewToken,
            crate::http::users::NewGrant,
            crate::http::agents::Message,
            crate::http::console::Settings,
            crate::http::users::Forwarding,
            crate::http::console::Ringing,
            crate::http::users::RawPresence,
            crate::http::agents::RawState,
            crate::http::groups::RawNewGroup,
            crate::http::groups::RawGroupChange,
            crate::http::users::RawUserChange,
            crate::http::agents::RawAgentChange,
            crate::http::views::center::GroupList,
            crate::http::views::center::GroupEvents,
            crate::http::views::center::AgentList,
            crate::http::views::center::MemberList,
        ),
        responses(
            responses::Unauthorized,
            responses::PayloadTooLarge,
            responses::UnsupportedMediaType,
            responses::Internal,
            responses::Unavailable,
            responses::ForbiddenAdminOnly,
            responses::ForbiddenAdminOrSoftswitch,
            responses::ForbiddenConsole,
            responses::ForbiddenAgentSelf,
            responses::InvalidBody,
            responses::InvalidUserId,
            responses::SupervisionNotFound,
        ),
    ),
    tags(
        (name = "Calls", description = "A call anchors the media of a customer and an agent."),
        (name = "Supervisions", description = "A supervisor listening to, whispering to, barging into or taking over a call."),
        (name = "Alerts and audit", description = "The alert and audit logs, paged by id."),
        (name = "Events", description = "The event log as Server-Sent Events."),
        (name = "Tokens", description = "Bearer tokens (admin)."),
        (name = "Groups", description = "Supervision groups: configuration (admin)."),
        (name = "Users and grants", description = "Users and persistent-supervision grants (admin)."),
        (name = "Console", description = "The supervisor console: members, ringing calls, forced logon and logoff, subscriptions, settings."),
        (name = "Agents", description = "Agents' dashboards, as supervisors see and change them."),
        (name = "Agent self", description = "An agent's own state, settings and groups."),
        (name = "Platform reports", description = "What the telephony platform (softswitch) reports: presence, forwarding, ringing."),
        (name = "Webhooks", description = "Webhooks that receive the event log (admin)."),
        (name = "Operations", description = "Health, metrics and this documentation: no token."),
    ),
    paths(
        crate::http::api::list_calls,
        crate::http::api::create_call,
        crate::http::api::get_call,
        crate::http::api::delete_call,
        crate::http::api::patch_leg,
        crate::http::api::call_event,
        crate::http::api::create_supervision,
        crate::http::api::list_supervisions,
        crate::http::api::get_supervision,
        crate::http::api::patch_supervision,
        crate::http::api::delete_supervision,
        crate::http::api::supervisor_event,
        crate::http::api::supervision_alerts,
        crate::http::alerts::list_alerts,
        crate::http::alerts::list_audit,
        crate::http::events::stream,
        crate::http::tokens::list_tokens,
        crate::http::tokens::post_token,
        crate::http::tokens::delete_token,
        crate::http::groups::list_groups,
        crate::http::groups::create_group,
        crate::http::groups::get_group,
        crate::http::groups::patch_group,
        crate::http::groups::delete_group,
        crate::http::groups::put_supervisor,
        crate::http::groups::delete_supervisor,
        crate::http::groups::put_member,
        crate::http::groups::delete_member,
        crate::http::users::list_users,
        crate::http::users::patch_user,
        crate::http::users::list_grants,
        crate::http::users::create_grant,
        crate::http::users::revoke_grant,
        crate::http::groups::force_logon,
        crate::http::groups::force_logoff,
        crate::http::console::console_members,
        crate::http::console::console_ringing,
        crate::http::console::take_call,
        crate::http::console::cancel_forwarding,
        crate::http::console::list_subscriptions,
        crate::http::console::subscribe,
        crate::http::console::unsubscribe,
        crate::http::console::get_settings,
        crate::http::console::put_settings,
        crate::http::console::console_join,
        crate::http::console::console_leave,
        crate::http::agents::list_agents,
        crate::http::agents::get_agent,
        crate::http::agents::patch_agent,
        crate::http::agents::force_state,
        crate::http::agents::send_message,
        crate::http::agents::get_me,
        crate::http::agents::patch_me,
        crate::http::agents::put_my_state,
        crate::http::agents::me_join,
        crate::http::agents::me_leave,
        crate::http::users::put_presence,
        crate::http::users::put_forwarding,
        crate::http::console::post_ringing,
        crate::http::console::delete_ringing,
        crate::http::webhooks::list_webhooks,
        crate::http::webhooks::create_webhook,
        crate::http::webhooks::get_webhook,
        crate::http::webhooks::patch_webhook,
        crate::http::webhooks::delete_webhook,
        crate::http::api::healthz,
        crate::http::api::metrics,
        document,
        docs,
    )
)]
pub struct ApiDoc;

/// What the document says before its first operation.
const INFO_DESCRIPTION: &str = "earshot's control plane: JSON over HTTP on the control address (default `127.0.0.1:8080`). The prose contract is `docs/api.md`; this document is checked against the router by `controlplane/tests/openapi.rs`.\n\n**Bodies.** Request bodies are JSON objects sent with `Content-Type: application/json`, at most 64 KiB; unknown fields are refused (`400 invalid_body`). Times are milliseconds since the Unix epoch (`*_at_ms`).\n\n**Authentication.** Every request carries `Authorization: Bearer <token>` (RFC 6750) except `/healthz`, `/metrics`, `/openapi.json` and `/docs`. Each token has one role — `admin`, `supervisor`, `agent` or `softswitch` — and each route an endpoint class (`x-endpoint-class`); the roles that may call it are in `x-roles`. A role outside the class is `403 forbidden`. Without a valid token: `401 unauthenticated` or `401 invalid_token`, with `WWW-Authenticate: Bearer`.\n\n**Errors.** Every error is `{\"error\": {\"code\": \"…\", \"message\": \"…\"}}` with a stable code; each response lists its codes in `x-error-codes`. Any route answers `405 method_not_allowed` to a method it does not have, and an unknown path is `404 not_found`.\n\n**Durability.** Every change is committed to the database before it is answered.";

/// One line above the description.
const INFO_SUMMARY: &str =
    "Calls, supervisions, groups, agents, events and webhooks of the earshot appliance.";

/// The bearer token scheme (RFC 6750) every secured operation names.
struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("es_…")
                    .description(Some(
                        "A token minted by `POST /v1/tokens` (or the bootstrap admin token).",
                    ))
                    .build(),
            ),
        );
    }
}

/// The error body every 4xx and 5xx answer has (docs/api.md, Errors; `http::error::ApiError`
/// renders it).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(
    as = Error,
    description = "Every error: a stable code and a message. A refused request changed nothing \
                   (an audit record may say it was refused)."
)]
pub struct ErrorBody {
    #[schema(inline)]
    error: ErrorDetail,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ErrorDetail {
    /// Stable machine code (see the operation's responses).
    code: String,
    /// Human-readable explanation; never parse it.
    message: String,
}

/// The name of `class` as `x-endpoint-class` spells it.
fn class_name(class: EndpointClass) -> &'static str {
    match class {
        EndpointClass::Administration => "administration",
        EndpointClass::Signalling => "signalling",
        EndpointClass::Supervision => "supervision",
        EndpointClass::Console => "console",
        EndpointClass::AgentSelf => "agent_self",
        EndpointClass::Read => "read",
    }
}

/// [`ApiDoc`] as JSON, completed with what its attributes cannot say: OpenAPI 3.1's
/// `info.summary`, each secured operation's `x-roles` (from its `x-endpoint-class`, by
/// [`auth::allowed`]), the rules between a body's fields ([`schemas::cross_field_rules`]), the
/// names a view's string field takes ([`schemas::property_rules`]), the shared schemas built in
/// code ([`schemas::built`]).
fn document_value() -> Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
    doc["info"]["summary"] = json!(INFO_SUMMARY);
    for item in doc["paths"].as_object_mut().expect("paths").values_mut() {
        for op in item.as_object_mut().expect("a path item").values_mut() {
            // `security(())` is one empty requirement, `[{}]`: OpenAPI says "no token" as `[]`.
            if op.get("security") == Some(&json!([{}])) {
                op["security"] = json!([]);
            }
            // Every body the API takes is required (docs/api.md, Bodies).
            if let Some(body) = op.get_mut("requestBody") {
                body["required"] = json!(true);
            }
            let Some(name) = op.get("x-endpoint-class").and_then(Value::as_str) else {
                continue;
            };
            let class = EndpointClass::ALL
                .into_iter()
                .find(|c| class_name(*c) == name)
                .unwrap_or_else(|| panic!("x-endpoint-class {name} is not an endpoint class"));
            let roles: Vec<&str> = Role::ALL
                .into_iter()
                .filter(|r| auth::allowed(*r, class))
                .map(Role::as_str)
                .collect();
            op["x-roles"] = json!(roles);
        }
    }
    let all = doc["components"]["schemas"]
        .as_object_mut()
        .expect("components.schemas");
    // The API answers no field a view's schema does not name (docs/api.md), and the bodies it
    // takes refuse unknown fields already (`deny_unknown_fields`): say so of the views too, so
    // a field added to a view without its schema is caught by `tests/openapi.rs`. Objects
    // inlined in a view (a call's `flags`, `legs`) are closed the same way.
    for schema in all.values_mut() {
        close_objects(schema);
    }
    for (name, schema) in schemas::built() {
        all.insert(
            name.to_owned(),
            serde_json::to_value(schema).expect("a schema serialises"),
        );
    }
    for (name, alternatives) in schemas::cross_field_rules() {
        let schema = all
            .get_mut(&name)
            .unwrap_or_else(|| panic!("a rule for {name}, a schema the document lacks"));
        schema["oneOf"] = alternatives;
    }
    for (name, properties) in schemas::property_rules() {
        let schema = all
            .get_mut(&name)
            .unwrap_or_else(|| panic!("a rule for {name}, a schema the document lacks"));
        for (property, rule) in properties.as_object().expect("properties").clone() {
            assert!(
                schema["properties"].get(&property).is_some(),
                "a rule for {name}.{property}, a property the schema lacks"
            );
            schema["properties"][&property] = rule;
        }
    }
    doc
}

/// Sets `additionalProperties: false` on `schema` and the objects nested in it (properties,
/// items, alternatives) that name their properties and say nothing of others.
fn close_objects(schema: &mut Value) {
    if schema["type"] == "object"
        && schema.get("properties").is_some()
        && schema.get("additionalProperties").is_none()
    {
        schema["additionalProperties"] = json!(false);
    }
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.values_mut().for_each(close_objects);
    }
    if let Some(items) = schema.get_mut("items") {
        close_objects(items);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(alternatives) = schema.get_mut(key).and_then(Value::as_array_mut) {
            alternatives.iter_mut().for_each(close_objects);
        }
    }
}

#[utoipa::path(
    get, path = "/openapi.json", tag = "Operations", operation_id = "openapi",
    summary = "This document",
    description = "The OpenAPI 3.1 document of the HTTP API. No token needed.",
    responses(
        (status = 200, description = "The document.", body = Object),
    ),
    security(()),
)]
async fn document() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        DOCUMENT.as_str(),
    )
}

#[utoipa::path(
    get, path = "/docs", tag = "Operations", operation_id = "docs",
    summary = "Interactive API documentation",
    description = "A self-contained page over this document (no external resources): every operation, and a form to try it with a bearer token. No token needed to load it.",
    responses(
        (status = 200, description = "The page.", content_type = "text/html", body = String),
    ),
    security(()),
)]
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
