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
use crate::domain::groups::Presence;
use crate::domain::ids::UserId;
use crate::domain::ids::quote;
use crate::http::access::{Administration, Authorized, Signalling};
use crate::http::api::{Body, blocking_api as blocking};
use crate::http::bodies::{FromBody, PlainBody};
use crate::http::center::{ApiResult, Events, Segments, center, present};
use crate::http::error::ApiError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserChange, description = "Each field absent is left as it is.")]
pub struct RawUserChange {
    /// 1 to 128 characters, not blank, no control characters.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 1,
        max_length = 128
    )]
    display_name: Option<String>,
    /// An optional `+` then 1 to 20 digits; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = "^\\+?[0-9]{1,20}$")]
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PresenceReport)]
pub struct RawPresence {
    #[schema(schema_with = crate::http::openapi::schemas::presence_names)]
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
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ForwardingReport)]
pub struct Forwarding {
    /// Where the phone forwards to (not blank, no control characters); `null` or absent: forwarding
    /// ended.
    #[schema(
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
        min_length = 1,
        max_length = 128
    )]
    destination: Option<String>,
}

impl PlainBody for Forwarding {}

/// `POST /v1/grants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewGrant)]
pub struct NewGrant {
    #[schema(schema_with = crate::http::openapi::schemas::user_id)]
    supervisor_id: String,
    #[schema(schema_with = crate::http::openapi::schemas::user_id)]
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

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView {
    id: String,
    display_name: String,
    #[schema(required = true)]
    phone_number: Option<String>,
    #[schema(schema_with = crate::http::openapi::schemas::role_name_list)]
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

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = UserList)]
pub struct Users {
    users: Vec<UserView>,
}

#[utoipa::path(
    get, path = "/v1/users", tag = "Users and grants", operation_id = "list_users",
    summary = "List users",
    description = "Every user (users come with their first token).\n\n**Who:** Administration endpoint: admins only.",
    responses(
        (status = 200, description = "The users.", body = Users),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn list_users(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
) -> ApiResult<Json<Users>> {
    let users = blocking(state, |s| Ok(app::users(s)?)).await?;
    Ok(Json(Users {
        users: users.iter().map(UserView::from).collect(),
    }))
}

#[utoipa::path(
    patch, path = "/v1/users/{user}", tag = "Users and grants", operation_id = "patch_user",
    summary = "Change a user's name or phone number",
    description = "The console shows the new name and number at once.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::UserParam),
    request_body = ref("#/components/schemas/UserChange"),
    responses(
        (status = 200, description = "The user.", body = UserView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`unknown_user`, `not_found`: not a user id; no such user.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user", "not_found"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn patch_user(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    seg: Segments,
    Body(change): Body<UserChange>,
) -> ApiResult<Json<UserView>> {
    let user = seg.user()?;
    let record = blocking(state, move |s| Ok(app::update_user(s, &user, change)?)).await?;
    Ok(Json(UserView::from(&record)))
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = Grant)]
pub struct GrantView {
    #[schema(minimum = 1)]
    id: i64,
    supervisor_id: String,
    agent_id: String,
    /// The admin's actor: `user:<id>` or `token:<id>`.
    granted_by: String,
    #[schema(minimum = 0)]
    created_at_ms: i64,
    #[schema(minimum = 0, required = true)]
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

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = GrantList)]
pub struct Grants {
    grants: Vec<GrantView>,
}

#[utoipa::path(
    get, path = "/v1/grants", tag = "Users and grants", operation_id = "list_grants",
    summary = "List grants",
    description = "Persistent-supervision grants, revoked ones included.\n\n**Who:** Administration endpoint: admins only.",
    responses(
        (status = 200, description = "The grants.", body = Grants),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn list_grants(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
) -> ApiResult<Json<Grants>> {
    let grants = blocking(state, |s| Ok(app::grants(s)?)).await?;
    Ok(Json(Grants {
        grants: grants.iter().map(GrantView::from).collect(),
    }))
}

/// A persistent-supervision grant (docs/design.md §2): audited, committed durably.
#[utoipa::path(
    post, path = "/v1/grants", tag = "Users and grants", operation_id = "create_grant",
    summary = "Grant persistent supervision",
    description = "The supervisor may follow the agent (docs/design.md §2). Audited (`grant.create`), committed durably.\n\n**Who:** Administration endpoint: admins only.",
    request_body = ref("#/components/schemas/NewGrant"),
    responses(
        (status = 201, description = "The grant.", body = GrantView),
        (status = 400, response = crate::http::openapi::responses::InvalidBody),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`not_found`: no such supervisor or agent user.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 409, description = "`conflict`: the supervisor already holds an active grant over the agent.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["conflict"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub(crate) async fn create_grant(
    Authorized(principal, _): Authorized<Administration>,
    State(state): State<AppState>,
    Body(req): Body<GrantRequest>,
) -> ApiResult<(StatusCode, Json<GrantView>)> {
    let grant = blocking(state, move |s| {
        Ok(app::create_grant(
            s,
            principal.actor(),
            &req.supervisor_id,
            &req.agent_id,
        )?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(GrantView::from(&grant))))
}

#[utoipa::path(
    delete, path = "/v1/grants/{grant}", tag = "Users and grants", operation_id = "revoke_grant",
    summary = "Revoke a grant",
    description = "Audited (`grant.revoke`). Revoking again changes nothing.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::GrantParam),
    responses(
        (status = 200, description = "The grant, `revoked_at_ms` set.", body = GrantView),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 404, description = "`not_found`: no such grant.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["not_found"])))),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
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
        Ok(app::revoke_grant(s, principal.actor(), id)?)
    })
    .await?;
    Ok(Json(GrantView::from(&grant)))
}

// ---- the platform's reports ----

#[utoipa::path(
    put, path = "/v1/users/{user}/presence",
    tag = "Platform reports", operation_id = "put_presence",
    summary = "Report a user's presence",
    description = "Shown as is on the console; the same presence again is no change.\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    params(crate::http::openapi::params::UserParam),
    request_body = ref("#/components/schemas/PresenceReport"),
    responses(
        (status = 200, description = "What changed.", body = ref("#/components/schemas/GroupEvents")),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_value`: not a user id.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_value"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 404, description = "`unknown_user`: no such user (users come with their first token).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
pub(crate) async fn put_presence(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
    Body(PresenceBody(presence)): Body<PresenceBody>,
) -> ApiResult<Json<Events>> {
    let user = seg.raw("user")?.to_owned();
    center(state, move |s| s.center().report_presence(&user, presence))
        .await
        .map(Events::json)
}

#[utoipa::path(
    put, path = "/v1/users/{user}/forwarding",
    tag = "Platform reports", operation_id = "put_forwarding",
    summary = "Report a user's call forwarding",
    description = "Set (`destination`) or ended (`null`); refused while the phone rings.\n\n**Who:** Signalling endpoint: softswitches (and admins).",
    params(crate::http::openapi::params::UserParam),
    request_body = ref("#/components/schemas/ForwardingReport"),
    responses(
        (status = 200, description = "What changed.", body = ref("#/components/schemas/GroupEvents")),
        (status = 400, description = "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range; `invalid_value`: not a user id; a blank or too long destination.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_body", "invalid_value"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOrSoftswitch),
        (status = 404, description = "`unknown_user`: no such user (users come with their first token).", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["unknown_user"])))),
        (status = 409, description = "`line_busy`: the phone is ringing.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["line_busy"])))),
        (status = 413, response = crate::http::openapi::responses::PayloadTooLarge),
        (status = 415, response = crate::http::openapi::responses::UnsupportedMediaType),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("signalling"))),
)]
pub(crate) async fn put_forwarding(
    Authorized(_, _): Authorized<Signalling>,
    State(state): State<AppState>,
    seg: Segments,
    Body(req): Body<Forwarding>,
) -> ApiResult<Json<Events>> {
    let user = seg.raw("user")?.to_owned();
    center(state, move |s| {
        s.center()
            .report_forwarding(&user, req.destination.as_deref())
    })
    .await
    .map(Events::json)
}
