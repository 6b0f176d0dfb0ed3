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
#[derive(Debug, Clone, serde::Serialize)]
pub struct TokenView {
    pub id: String,
    pub role: &'static str,
    pub user_id: Option<String>,
    pub created_at_ms: i64,
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

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNewToken {
    role: String,
    user_id: Option<String>,
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
