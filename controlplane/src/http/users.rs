//! `/v1/users…` and `/v1/grants…`: the user directory and persistent-supervision grants
//! (admins), and the platform's presence and forwarding reports (docs/design.md §2, §3).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use crate::app::center::{
    self as app, ColumnEnum as _, GrantId, GrantRecord, UserChange, UserRecord,
};
use crate::app::state::AppState;
use crate::app::storage::Storage;
use crate::domain::groups::Presence;
use crate::domain::ids::UserId;
use crate::domain::ids::quote;
use crate::http::access::{Administration, Authorized, Signalling};
use crate::http::api::{Body, blocking_api as blocking};
use crate::http::bodies::{FromBody, PlainBody};
use crate::http::center::{ApiResult, Events, Segments, center, now, present};
use crate::http::error::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUserChange {
    display_name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    phone_number: Option<Option<String>>,
}

impl FromBody for UserChange {
    type Raw = RawUserChange;
    fn parse(raw: RawUserChange) -> ApiResult<UserChange> {
        if let Some(name) = &raw.display_name
            && (name.trim().is_empty()
                || name.chars().count() > 128
                || name.chars().any(char::is_control))
        {
            return Err(ApiError::invalid_body(
                "display_name: 1 to 128 characters, no control characters",
            ));
        }
        if let Some(Some(number)) = &raw.phone_number {
            let digits = number.strip_prefix('+').unwrap_or(number);
            if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(ApiError::invalid_body(format!(
                    "phone_number: {} is not a number (an optional + then 1 to 20 digits)",
                    quote(number)
                )));
            }
        }
        Ok(UserChange {
            display_name: raw.display_name.map(|n| n.trim().to_owned()),
            phone_number: raw.phone_number,
        })
    }
}

/// `PUT /v1/users/{id}/presence`.
pub struct PresenceBody(Presence);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPresence {
    presence: String,
}

impl FromBody for PresenceBody {
    type Raw = RawPresence;
    fn parse(raw: RawPresence) -> ApiResult<PresenceBody> {
        Ok(PresenceBody(match raw.presence.as_str() {
            "online" => Presence::Online,
            "busy" => Presence::Busy,
            "away" => Presence::Away,
            "do_not_disturb" => Presence::DoNotDisturb,
            "offline" => Presence::Offline,
            other => {
                return Err(ApiError::invalid_body(format!(
                    "presence: {} is not online, busy, away, do_not_disturb or offline",
                    quote(other)
                )));
            }
        }))
    }
}

/// `PUT /v1/users/{id}/forwarding`: `destination: null` (or absent) ends the forwarding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forwarding {
    destination: Option<String>,
}

impl PlainBody for Forwarding {}

/// `POST /v1/grants`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewGrant {
    supervisor_id: String,
    agent_id: String,
}

/// [`NewGrant`], its ids parsed.
pub struct GrantRequest {
    supervisor_id: UserId,
    agent_id: UserId,
}

impl FromBody for GrantRequest {
    type Raw = NewGrant;
    fn parse(raw: NewGrant) -> ApiResult<GrantRequest> {
        let id = |field: &str, v: &str| {
            UserId::parse(v).map_err(|e| ApiError::invalid_body(format!("{field}: {e}")))
        };
        Ok(GrantRequest {
            supervisor_id: id("supervisor_id", &raw.supervisor_id)?,
            agent_id: id("agent_id", &raw.agent_id)?,
        })
    }
}

#[derive(serde::Serialize)]
pub struct UserView {
    id: String,
    display_name: String,
    phone_number: Option<String>,
    roles: Vec<&'static str>,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> UserView {
        UserView {
            id: u.id.clone(),
            display_name: u.display_name.clone(),
            phone_number: u.phone_number.clone(),
            roles: u.roles.iter().map(|r| r.as_str()).collect(),
        }
    }
}

#[derive(serde::Serialize)]
pub struct Users {
    users: Vec<UserView>,
}

pub(crate) async fn list_users(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
) -> ApiResult<Json<Users>> {
    let users = blocking(state, |s| Ok(app::users(s.store()).map_err(Storage::from)?)).await?;
    Ok(Json(Users {
        users: users.iter().map(UserView::from).collect(),
    }))
}

pub(crate) async fn patch_user(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(change): Body<UserChange>,
) -> ApiResult<Json<UserView>> {
    let user = seg.user()?;
    let record = blocking(state, move |s| {
        Ok(s.center()
            .update_user(s.store(), &user, change)
            .map_err(Storage::from)?)
    })
    .await?;
    Ok(Json(UserView::from(&record)))
}

#[derive(serde::Serialize)]
pub struct GrantView {
    id: i64,
    supervisor_id: String,
    agent_id: String,
    granted_by: String,
    created_at_ms: i64,
    revoked_at_ms: Option<i64>,
}

impl From<&GrantRecord> for GrantView {
    fn from(g: &GrantRecord) -> GrantView {
        GrantView {
            id: g.id.0,
            supervisor_id: g.supervisor_id.clone(),
            agent_id: g.agent_id.clone(),
            granted_by: g.granted_by.clone(),
            created_at_ms: g.created_at.0,
            revoked_at_ms: g.revoked_at.map(|t| t.0),
        }
    }
}

#[derive(serde::Serialize)]
pub struct Grants {
    grants: Vec<GrantView>,
}

pub(crate) async fn list_grants(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
) -> ApiResult<Json<Grants>> {
    let grants = blocking(
        state,
        |s| Ok(app::grants(s.store()).map_err(Storage::from)?),
    )
    .await?;
    Ok(Json(Grants {
        grants: grants.iter().map(GrantView::from).collect(),
    }))
}

/// A persistent-supervision grant (docs/design.md §2): audited, committed durably.
pub(crate) async fn create_grant(
    Authorized(principal, _): Authorized<Administration>,
    State(state): State<AppState>,
    Body(req): Body<GrantRequest>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let grant = blocking(state, move |s| {
        Ok(app::create_grant(
            s.store(),
            principal.actor(),
            &req.supervisor_id,
            &req.agent_id,
            now(s),
        )
        .map_err(Storage::from)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(GrantView::from(&grant))))
}

pub(crate) async fn revoke_grant(
    Authorized(principal, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
) -> ApiResult<Json<GrantView>> {
    let raw = seg.raw("grant")?.to_owned();
    let id = raw
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(GrantId)
        .ok_or_else(|| ApiError::not_found(format!("no grant {}", quote(&raw))))?;
    let grant = blocking(state, move |s| {
        Ok(app::revoke_grant(s.store(), principal.actor(), id, now(s)).map_err(Storage::from)?)
    })
    .await?;
    Ok(Json(GrantView::from(&grant)))
}

// ---- the platform's reports ----

pub(crate) async fn put_presence(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
    Body(PresenceBody(presence)): Body<PresenceBody>,
) -> ApiResult<Json<Events>> {
    let user = seg.raw("user")?.to_owned();
    center(state, move |s, now| {
        s.center().report_presence(s.store(), &user, presence, now)
    })
    .await
    .map(Events::json)
}

pub(crate) async fn put_forwarding(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
    Body(req): Body<Forwarding>,
) -> ApiResult<Json<Events>> {
    let user = seg.raw("user")?.to_owned();
    center(state, move |s, now| {
        s.center()
            .report_forwarding(s.store(), &user, req.destination.as_deref(), now)
    })
    .await
    .map(Events::json)
}
