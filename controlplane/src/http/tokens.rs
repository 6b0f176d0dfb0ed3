//! Tokens as the API shows and takes them (docs/api.md, Authentication): the views (never the
//! secret, except once in `POST /v1/tokens`'s answer) and the request body, over
//! [`crate::app::tokens`].

use crate::app::state::AppState;
use crate::app::tokens::{self, TokenRecord, role_from_store};
use crate::domain::auth::{self, Role};
use crate::domain::ids::UserId;
use crate::domain::ids::quote;
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
