//! The request extractors of the API: path segments, the page query and JSON bodies, each
//! parsed into a domain type or answered with the contract's error (docs/api.md, Errors).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Query, RawPathParams, Request};
use axum::http::request::Parts;

use crate::app::state::{PAGE_DEFAULT, PAGE_LIMIT_MAX};
use crate::domain::call::{CallId, Party, SupervisionId};
use crate::domain::ids::quote;
use crate::http::bodies::FromBody;
use crate::http::error::ApiError;

/// A JSON request body parsed into a domain type.
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: FromBody> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // An object first: serde would otherwise take `[…]` for a struct's fields in order;
        // and one whose keys are unique at every depth (crate::http::json).
        let Json(crate::http::json::UniqueKeysObject(object)) =
            Json::<crate::http::json::UniqueKeysObject>::from_request(req, state)
                .await
                .map_err(|e: JsonRejection| ApiError::from(e))?;
        let raw = serde_path_to_error::deserialize(serde_json::Value::Object(object))
            .map_err(|e| ApiError::invalid_body(format!("invalid body: {e}")))?;
        T::parse(raw).map(Body)
    }
}

pub(crate) async fn path_params(parts: &mut Parts) -> Result<RawPathParams, ApiError> {
    RawPathParams::from_request_parts(parts, &())
        .await
        .map_err(|_| ApiError::not_found("no such resource (the path is not valid UTF-8)"))
}

pub(crate) fn param<'a>(params: &'a RawPathParams, name: &str) -> Result<&'a str, ApiError> {
    params
        .iter()
        .find_map(|(key, value)| (key == name).then_some(value))
        .ok_or_else(|| ApiError::internal(format!("route has no {name} parameter")))
}

/// `{call}` in the path.
pub struct CallPath(pub CallId);

impl<S: Send + Sync> FromRequestParts<S> for CallPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let params = path_params(parts).await?;
        Ok(CallPath(param(&params, "call")?.parse()?))
    }
}

/// `{call}/legs/{party}` in the path.
pub struct LegPath(pub CallId, pub Party);

impl<S: Send + Sync> FromRequestParts<S> for LegPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let params = path_params(parts).await?;
        let call = param(&params, "call")?.parse()?;
        let party = param(&params, "party")?;
        let party = party.parse().map_err(|()| {
            ApiError::not_found(format!(
                "no leg {} (legs are customer and agent)",
                quote(party)
            ))
        })?;
        Ok(LegPath(call, party))
    }
}

/// `{supervision}` in the path.
pub struct SupervisionPath(pub SupervisionId);

impl<S: Send + Sync> FromRequestParts<S> for SupervisionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let params = path_params(parts).await?;
        Ok(SupervisionPath(param(&params, "supervision")?.parse()?))
    }
}

/// `?after=ID&limit=N` of the log listings.
pub struct Page {
    pub after: i64,
    pub limit: u32,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPage {
    after: Option<String>,
    limit: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Query(raw) = Query::<RawPage>::from_request_parts(parts, state).await?;
        let after = match raw.after.as_deref() {
            None => 0,
            Some(s) => log_id("after", s)?,
        };
        let limit = match raw.limit.as_deref() {
            None => PAGE_DEFAULT,
            Some(s) => s
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=PAGE_LIMIT_MAX).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_query(format!(
                        "limit: {} is not in 1..={PAGE_LIMIT_MAX}",
                        quote(s)
                    ))
                })?,
        };
        Ok(Page { after, limit })
    }
}

/// A position in an append-only log (`?after=`, `Last-Event-ID`): a non-negative integer.
pub(crate) fn log_id(what: &str, s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        ApiError::invalid_query(format!(
            "{what}: {} is not a non-negative integer",
            quote(s)
        ))
    })
}
