//! Tokens as the API shows and takes them (docs/api.md, Authentication): the views (never the
//! secret, except once in `POST /v1/tokens`'s answer) and the request body, over
//! [`crate::app::tokens`].

use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::app::state::AppState;
use crate::app::tokens::{self, TokenRecord, role_from_store};
use crate::domain::auth::{self, Role};
use crate::domain::ids::UserId;
use crate::domain::ids::quote;
use crate::http::access::{Administration, Authorized};
use crate::http::api::{Body, blocking_api};
use crate::http::bodies::FromBody;
use crate::http::error::ApiError;

/// A token as `GET /v1/tokens` shows it: never the secret.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    #[schema(examples("tok-0123456789abcdef"))]
    pub id: String,
    #[schema(schema_with = crate::http::openapi::schemas::role_names)]
    pub role: &'static str,
    #[schema(required = true)]
    pub user_id: Option<String>,
    #[schema(minimum = 0)]
    pub created_at_ms: i64,
    #[schema(minimum = 0, required = true)]
    pub revoked_at_ms: Option<i64>,
}

impl From<&TokenRecord> for TokenView {
    fn from(t: &TokenRecord) -> TokenView {
        TokenView {
            id: t.id.clone(),
            role: role_from_store(t.role).as_str(),
            user_id: t.user_id.clone(),
            created_at_ms: t.created_at.0,
            revoked_at_ms: t.revoked_at.map(|at| at.0),
        }
    }
}

/// `POST /v1/tokens`'s answer: the token in the clear, this once.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewTokenView {
    #[serde(flatten)]
    pub meta: TokenView,
    pub token: String,
}

/// The `Token` schema and `token`: utoipa would state a flattened field as an `allOf`, which
/// cannot say `additionalProperties: false` of the whole.
impl utoipa::PartialSchema for NewTokenView {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        crate::http::openapi::schemas::with_secret(
            <TokenView as utoipa::PartialSchema>::schema(),
            "token",
            "The bearer token in the clear (`es_…`): shown this once, never again.",
            "A new token as `GET /v1/tokens` shows it, and the token itself in the clear: \
             this once.",
        )
    }
}

impl utoipa::ToSchema for NewTokenView {
    fn name() -> std::borrow::Cow<'static, str> {
        "NewTokenCreated".into()
    }
}

/// [`tokens::create_token`], rendered.
pub fn create_token(
    state: &AppState,
    role: Role,
    user_id: Option<UserId>,
    display_name: Option<String>,
) -> Result<NewTokenView, ApiError> {
    let made = tokens::create_token(state, role, user_id, display_name)?;
    Ok(NewTokenView {
        meta: TokenView::from(&made.record),
        token: made.token.expose().to_owned(),
    })
}

/// [`tokens::tokens`], rendered.
pub fn tokens(state: &AppState) -> Result<Vec<TokenView>, ApiError> {
    Ok(tokens::tokens(state)?.iter().map(TokenView::from).collect())
}

/// [`tokens::revoke_token`], rendered.
pub fn revoke_token(state: &AppState, id: &str) -> Result<TokenView, ApiError> {
    Ok(TokenView::from(&tokens::revoke_token(state, id)?))
}

/// `POST /v1/tokens`.
pub struct NewToken {
    pub role: Role,
    pub user_id: Option<UserId>,
    pub display_name: Option<String>,
}

#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewToken)]
pub struct RawNewToken {
    #[schema(schema_with = crate::http::openapi::schemas::role_names)]
    role: String,
    /// Required for `supervisor` and `agent` tokens; optional for `admin` and `softswitch`
    /// (service) tokens. The user is created if new, or given the role.
    #[schema(pattern = "^[A-Za-z0-9._:@-]{1,64}$")]
    user_id: Option<String>,
    /// The user's name (default: the id): 1 to 128 characters, not blank, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 1,
        max_length = 128
    )]
    display_name: Option<String>,
}

impl FromBody for NewToken {
    type Raw = RawNewToken;
    fn parse(raw: RawNewToken) -> Result<NewToken, ApiError> {
        let role: Role = raw
            .role
            .parse()
            .map_err(|e: auth::UnknownRole| ApiError::invalid_body(format!("role: {e}")))?;
        let user_id = raw
            .user_id
            .map(|u| {
                UserId::parse(&u)
                    .map_err(|e| ApiError::invalid_body(format!("user_id: {}: {e}", quote(&u))))
            })
            .transpose()?;
        if user_id.is_none() && matches!(role, Role::Supervisor | Role::Agent) {
            return Err(ApiError::invalid_body(format!(
                "user_id: required for a {role} token"
            )));
        }
        // The directory's own rule for a user's name (docs/api.md, Users): a name it would
        // refuse would make the user vanish from it.
        let display_name = raw
            .display_name
            .map(|name| {
                crate::domain::agents::check_label(
                    "display_name",
                    &name,
                    crate::domain::groups::LABEL_LEN_MAX,
                    "must be at most 128 characters",
                )
                .map_err(|e| ApiError::invalid_body(e.to_string()))
            })
            .transpose()?;
        Ok(NewToken {
            role,
            user_id,
            display_name,
        })
    }
}

// ---- handlers (docs/api.md, Authentication) ----

type ApiResult<T> = Result<T, ApiError>;

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = TokenList)]
pub struct Tokens {
    tokens: Vec<TokenView>,
}

#[utoipa::path(
    post, path = "/v1/tokens", tag = "Tokens", operation_id = "create_token",
    summary = "Create a token",
    description = "A random bearer token (`es_…`, 256 bits), shown this once; only its SHA-256 is kept. The user is created with the token if new (with `display_name`), or given the role.\n\n**Who:** Administration endpoint: admins only.",
    request_body = ref("#/components/schemas/NewToken"),
    responses(
        (status = 201, description = "The token, in the clear this once.", body = NewTokenView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 409, description = "`conflict`: a clash in the store.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["conflict"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub async fn post_token(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    Body(req): Body<NewToken>,
) -> ApiResult<(StatusCode, Json<NewTokenView>)> {
    let token = blocking_api(state, move |s| {
        create_token(s, req.role, req.user_id, req.display_name)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(token)))
}

#[utoipa::path(
    get, path = "/v1/tokens", tag = "Tokens", operation_id = "list_tokens",
    summary = "List tokens",
    description = "Every token's metadata, revoked ones included; never a token's secret.\n\n**Who:** Administration endpoint: admins only.",
    responses(
        (status = 200, description = "The tokens.", body = Tokens),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub async fn list_tokens(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
) -> ApiResult<Json<Tokens>> {
    let tokens = blocking_api(state, tokens).await?;
    Ok(Json(Tokens { tokens }))
}

/// `{token}` in the path.
pub struct TokenPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for TokenPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let params = crate::http::api::path_params(parts).await?;
        Ok(TokenPath(
            crate::http::api::param(&params, "token")?.to_owned(),
        ))
    }
}

#[utoipa::path(
    delete, path = "/v1/tokens/{token}", tag = "Tokens", operation_id = "revoke_token",
    summary = "Revoke a token",
    description = "Refused (`401 invalid_token`) from this answer on. Revoking again changes nothing.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::TokenParam),
    responses(
        (status = 200, description = "The token, `revoked_at_ms` set.", body = TokenView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`not_found`: no such token.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub async fn delete_token(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    TokenPath(id): TokenPath,
) -> ApiResult<Json<TokenView>> {
    Ok(Json(
        blocking_api(state, move |s| revoke_token(s, &id)).await?,
    ))
}
