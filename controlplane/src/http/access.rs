//! Access control at the HTTP boundary (docs/design.md §4): the bearer-token [`Principal`]
//! extractor, the per-route endpoint-class guard [`Authorized`], and the 401/403 answers. The
//! rules are [`crate::domain::auth`]'s (pure); tokens and rights are looked up by
//! [`crate::app::tokens`] and [`crate::app::rights`].
//!
//! Every handler but `/healthz` and `/metrics` takes an [`Authorized<C>`] first, `C` naming its
//! [`EndpointClass`]: a route without one is unauthenticated, so the route table of
//! `tests/authz.rs` checks that every route answers 401 without a token.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::rights;
use crate::app::state::AppState;
use crate::app::storage::Storage;
pub use crate::app::tokens::Standing;
pub use crate::domain::auth::Principal;
use crate::domain::auth::{self, EndpointClass};
use crate::http::error::ApiError;

/// A 401: the error body and `WWW-Authenticate: Bearer` (RFC 6750 §3).
#[derive(Debug)]
pub struct Unauthorized(ApiError);

impl IntoResponse for Unauthorized {
    fn into_response(self) -> Response {
        let error = match self.0.code {
            "invalid_token" => r#"Bearer error="invalid_token""#,
            _ => "Bearer",
        };
        let mut response = self.0.into_response();
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(error));
        response
    }
}

/// Why a request was not let through: 401 or 403.
#[derive(Debug)]
pub enum Rejection {
    Unauthenticated(Unauthorized),
    Forbidden(ApiError),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Unauthenticated(e) => e.into_response(),
            Rejection::Forbidden(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = Unauthorized;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Unauthorized> {
        let value = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                Unauthorized(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    auth::Unauthenticated::Malformed.to_string(),
                ))
            })?),
        };
        let hash = auth::bearer(value).map_err(|e| {
            Unauthorized(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                e.to_string(),
            ))
        })?;
        match state.tokens().lookup(&hash) {
            Some(t) if !t.revoked => Ok(Principal {
                user_id: t.user_id,
                roles: vec![t.role],
                token_id: t.id,
            }),
            Some(_) => Err(Unauthorized(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token has been revoked",
            ))),
            None => Err(Unauthorized(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "unknown token",
            ))),
        }
    }
}

/// A route's endpoint class, as a type: `Authorized<Signalling>`.
pub trait Class: Send + Sync {
    const CLASS: EndpointClass;
}

macro_rules! classes {
    ($($name:ident),+) => {$(
        #[doc = concat!("[`EndpointClass::", stringify!($name), "`].")]
        pub struct $name;
        impl Class for $name {
            const CLASS: EndpointClass = EndpointClass::$name;
        }
    )+};
}
classes!(
    Administration,
    Signalling,
    Supervision,
    Console,
    AgentSelf,
    Read
);

/// The guard of a route of class `C`: an authenticated principal one of whose roles may call
/// `C` (else 403 `forbidden`).
pub struct Authorized<C>(pub Principal, pub PhantomData<C>);

impl<C: Class> FromRequestParts<AppState> for Authorized<C> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Rejection> {
        let principal = Principal::from_request_parts(parts, state)
            .await
            .map_err(Rejection::Unauthenticated)?;
        if principal.roles.iter().any(|r| auth::allowed(*r, C::CLASS)) {
            Ok(Authorized(principal, PhantomData))
        } else {
            let roles: Vec<&str> = principal.roles.iter().map(|r| r.as_str()).collect();
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "role {} may not call this endpoint ({:?} endpoints)",
                    roles.join(", "),
                    C::CLASS
                ),
            );
            if C::CLASS == EndpointClass::Supervision {
                // docs/design.md §4: every denial of a supervision is audited, this one too.
                let detail = format!(
                    "forbidden: role {}; {} {}",
                    roles.join(", "),
                    parts.method,
                    parts.uri.path()
                );
                let who = principal.clone();
                crate::http::api::blocking_api(state.clone(), move |s| {
                    Ok(rights::audit(s, &who, None, detail).map_err(Storage::from)?)
                })
                .await
                .map_err(Rejection::Forbidden)?;
            }
            Err(Rejection::Forbidden(error))
        }
    }
}
