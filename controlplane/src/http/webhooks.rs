//! The admin routes of `/v1/webhooks` (docs/api.md, Webhooks): bodies parsed, one use case of
//! [`crate::app::webhooks`] called, its webhook rendered (never its secret but once).

use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::get;
use axum::{Json, Router};

use crate::app::state::AppState;
use crate::app::webhooks::{
    self, EVENT_TYPES_MAX, NewWebhook, URL_LEN_MAX, WebhookChange, WebhookRecord,
};
use crate::domain::ids::quote;
use crate::domain::webhooks::{Secret, is_event_type_pattern};
use crate::http::access::{Administration, Authorized};
use crate::http::api::{Body, blocking_api as blocking};
use crate::http::bodies::FromBody;
use crate::http::error::ApiError;

// ---- request bodies ----

fn parse_url(field: &str, s: &str) -> Result<String, ApiError> {
    if s.len() > URL_LEN_MAX {
        return Err(ApiError::invalid_body(format!(
            "{field}: longer than {URL_LEN_MAX} characters"
        )));
    }
    let url = reqwest::Url::parse(s).map_err(|e| {
        ApiError::invalid_body(format!(
            "{field}: {} is not an absolute http:// or https:// URL ({e})",
            quote(s)
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ApiError::invalid_body(format!(
            "{field}: {} is not an http:// or https:// URL",
            quote(s)
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ApiError::invalid_body(format!(
            "{field}: {} has no host",
            quote(s)
        )));
    }
    // Stored as parsed (normalised: `http://h` becomes `http://h/`), which may be longer.
    let url = url.to_string();
    if url.len() > URL_LEN_MAX {
        return Err(ApiError::invalid_body(format!(
            "{field}: longer than {URL_LEN_MAX} characters once normalised"
        )));
    }
    Ok(url)
}

fn parse_event_types(types: Vec<String>) -> Result<Vec<String>, ApiError> {
    if types.len() > EVENT_TYPES_MAX {
        return Err(ApiError::invalid_body(format!(
            "event_types: at most {EVENT_TYPES_MAX} entries"
        )));
    }
    let mut out: Vec<String> = Vec::with_capacity(types.len());
    for (i, t) in types.into_iter().enumerate() {
        if !is_event_type_pattern(&t) {
            return Err(ApiError::invalid_body(format!(
                "event_types[{i}]: {} is not an event type (\"call.created\") or a prefix of \
                 one (\"call.*\"); omit event_types, or give [], for every event",
                quote(&t)
            )));
        }
        if !out.contains(&t) {
            out.push(t);
        }
    }
    Ok(out)
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewWebhook)]
pub struct RawNewWebhook {
    /// An absolute `http://` or `https://` URL, at most 2048 characters once normalised
    /// (`http://h` becomes `http://h/`); 2000 leaves room for that.
    #[schema(
        max_length = 2000,
        format = "uri",
        pattern = "^https?://[A-Za-z0-9\\[]"
    )]
    url: String,
    /// Absent, null or `[]`: every event.
    #[schema(schema_with = crate::http::openapi::schemas::new_event_types)]
    event_types: Option<Vec<String>>,
    /// `whsec_` then base64 of at least 16 bytes (default: generated).
    #[schema(
        pattern = "^whsec_(?:[A-Za-z0-9+/]{4}){5}(?:(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==)?|(?:[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=|[A-Za-z0-9+/][AQgw]==))$"
    )]
    secret: Option<String>,
}

impl FromBody for NewWebhook {
    type Raw = RawNewWebhook;
    fn parse(raw: RawNewWebhook) -> Result<NewWebhook, ApiError> {
        let url = parse_url("url", &raw.url)?;
        let event_types = parse_event_types(raw.event_types.unwrap_or_default())?;
        let secret = raw
            .secret
            .map(|s| Secret::parse(&s).map_err(|e| ApiError::invalid_body(format!("secret: {e}"))))
            .transpose()?;
        Ok(NewWebhook {
            url,
            event_types,
            secret,
        })
    }
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = WebhookChange, description = "Each field absent is left as it is.")]
pub struct RawWebhookChange {
    /// An absolute `http://` or `https://` URL, at most 2048 characters once normalised
    /// (`http://h` becomes `http://h/`); 2000 leaves room for that.
    #[schema(
        max_length = 2000,
        format = "uri",
        pattern = "^https?://[A-Za-z0-9\\[]"
    )]
    url: Option<String>,
    #[schema(schema_with = crate::http::openapi::schemas::changed_event_types)]
    event_types: Option<Vec<String>>,
    /// Re-enabling resets the failures; disabling drops pending deliveries.
    enabled: Option<bool>,
}

impl FromBody for WebhookChange {
    type Raw = RawWebhookChange;
    fn parse(raw: RawWebhookChange) -> Result<WebhookChange, ApiError> {
        Ok(WebhookChange {
            url: raw.url.map(|u| parse_url("url", &u)).transpose()?,
            event_types: raw.event_types.map(parse_event_types).transpose()?,
            enabled: raw.enabled,
        })
    }
}

/// `{webhook}` in the path.
pub struct WebhookPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for WebhookPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let params = crate::http::api::path_params(parts).await?;
        Ok(WebhookPath(
            crate::http::api::param(&params, "webhook")?.to_owned(),
        ))
    }
}

// ---- views ----

/// A webhook as the API shows it: never its secret.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Webhook, description = "A webhook: never its secret.")]
pub struct WebhookView {
    #[schema(examples("wh_0123456789abcdef"))]
    pub id: String,
    pub url: String,
    /// Empty: every event.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Deliveries given up in a row (reset by a delivered one, or by re-enabling).
    pub consecutive_failures: u32,
    /// When the appliance disabled it after repeated failure (`null` otherwise).
    #[schema(minimum = 0, required = true)]
    pub disabled_at_ms: Option<i64>,
    #[schema(minimum = 0)]
    pub created_at_ms: i64,
}

impl From<&WebhookRecord> for WebhookView {
    fn from(w: &WebhookRecord) -> WebhookView {
        WebhookView {
            id: w.id.clone(),
            url: w.url.clone(),
            event_types: w.event_types.clone(),
            enabled: w.enabled,
            consecutive_failures: w.consecutive_failures,
            disabled_at_ms: w.disabled_at.map(|at| at.0),
            created_at_ms: w.created_at.0,
        }
    }
}

/// `POST /v1/webhooks`'s answer: the secret, this once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewWebhookView {
    #[serde(flatten)]
    pub meta: WebhookView,
    pub secret: String,
}

/// The `Webhook` schema and `secret`: utoipa would state a flattened field as an `allOf`,
/// which cannot say `additionalProperties: false` of the whole.
impl utoipa::PartialSchema for NewWebhookView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        crate::http::openapi::schemas::with_secret(
            <WebhookView as utoipa::PartialSchema>::schema(),
            "secret",
            "`whsec_…`: shown this once.",
            "A new webhook, and the secret that signs its deliveries (Standard Webhooks): \
             this once.",
        )
    }
}

impl utoipa::ToSchema for NewWebhookView {
    fn name() -> std::borrow::Cow<'static, str> {
        "NewWebhookCreated".into()
    }
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = WebhookList)]
struct Webhooks {
    webhooks: Vec<WebhookView>,
}

// ---- routes ----

type ApiResult<T> = Result<T, ApiError>;

/// The admin routes of `/v1/webhooks`, merged into [`crate::http::api::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/v1/webhooks/{webhook}",
            get(get_webhook).patch(patch_webhook).delete(delete_webhook),
        )
}

#[utoipa::path(
    post, path = "/v1/webhooks", tag = "Webhooks", operation_id = "create_webhook",
    summary = "Create a webhook",
    description = "It gets the events committed from now on, signed (Standard Webhooks) with its secret, in event order, retried until delivered or given up.\n\n**Who:** Administration endpoint: admins only.",
    request_body = RawNewWebhook,
    responses(
        (status = 201, description = "The webhook, with its secret this once.", body = NewWebhookView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 409, description = "`too_many_webhooks`: 100 webhooks already.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["too_many_webhooks"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
async fn create_webhook(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    Body(req): Body<NewWebhook>,
) -> ApiResult<(StatusCode, Json<NewWebhookView>)> {
    let created = blocking(state, move |s| Ok(webhooks::create(s, req)?)).await?;
    Ok((
        StatusCode::CREATED,
        Json(NewWebhookView {
            meta: WebhookView::from(&created.webhook),
            secret: created.secret,
        }),
    ))
}

#[utoipa::path(
    get, path = "/v1/webhooks", tag = "Webhooks", operation_id = "list_webhooks",
    summary = "List webhooks",
    description = "Never their secrets.\n\n**Who:** Administration endpoint: admins only.",
    responses(
        (status = 200, description = "The webhooks.", body = Webhooks),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
async fn list_webhooks(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
) -> ApiResult<Json<Webhooks>> {
    let hooks = blocking(state, |s| Ok(webhooks::list(s)?)).await?;
    Ok(Json(Webhooks {
        webhooks: hooks.iter().map(WebhookView::from).collect(),
    }))
}

#[utoipa::path(
    get, path = "/v1/webhooks/{webhook}", tag = "Webhooks", operation_id = "get_webhook",
    summary = "Show a webhook",
    description = "Never its secret.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::WebhookParam),
    responses(
        (status = 200, description = "The webhook.", body = WebhookView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`not_found`: no such webhook.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
async fn get_webhook(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    WebhookPath(id): WebhookPath,
) -> ApiResult<Json<WebhookView>> {
    let hook = blocking(state, move |s| Ok(webhooks::show(s, &id)?)).await?;
    Ok(Json(WebhookView::from(&hook)))
}

#[utoipa::path(
    patch, path = "/v1/webhooks/{webhook}", tag = "Webhooks", operation_id = "patch_webhook",
    summary = "Change a webhook",
    description = "A new filter or state applies to the events committed from now on.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::WebhookParam),
    request_body = RawWebhookChange,
    responses(
        (status = 200, description = "The webhook.", body = WebhookView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`not_found`: no such webhook.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
async fn patch_webhook(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    WebhookPath(id): WebhookPath,
    Body(req): Body<WebhookChange>,
) -> ApiResult<Json<WebhookView>> {
    let hook = blocking(state, move |s| Ok(webhooks::change(s, &id, req)?)).await?;
    Ok(Json(WebhookView::from(&hook)))
}

#[utoipa::path(
    delete, path = "/v1/webhooks/{webhook}", tag = "Webhooks", operation_id = "delete_webhook",
    summary = "Delete a webhook",
    description = "With its deliveries.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::WebhookParam),
    responses(
        (status = 204, description = "Deleted."),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`not_found`: no such webhook.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
async fn delete_webhook(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    WebhookPath(id): WebhookPath,
) -> ApiResult<StatusCode> {
    blocking(state, move |s| Ok(webhooks::remove(s, &id)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_strictly() {
        assert_eq!(
            parse_url("url", "HTTPS://Example.COM:443/a?b=c").unwrap(),
            "https://example.com/a?b=c"
        );
        assert_eq!(
            parse_url("url", "http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080/"
        );
        for bad in [
            "",
            "/hook",
            "ftp://example.com",
            "http://",
            "file:///etc/passwd",
        ] {
            let err = parse_url("url", bad).unwrap_err();
            assert_eq!(err.code, "invalid_body", "{bad:?}");
            assert!(err.message.starts_with("url: "), "{bad:?}: {}", err.message);
        }
    }
}
