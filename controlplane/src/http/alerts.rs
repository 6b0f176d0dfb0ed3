//! The alert and audit logs (docs/api.md, Alerts and audit), paged by id: a caller reads the
//! alerts of the supervisions it may read (docs/design.md §4.4); the audit log is the admins'.

use axum::Json;
use axum::extract::State;

use crate::app::state::AppState;
use crate::http::access::{Administration, Authorized, Read};
use crate::http::api::{Page, Visibility, blocking_api};
use crate::http::error::ApiError;
use crate::http::views::calls::{AlertView, AuditView};

type ApiResult<T> = Result<T, ApiError>;

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = AlertList)]
pub struct Alerts {
    pub alerts: Vec<AlertView>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = AuditList)]
pub struct Audit {
    audit: Vec<AuditView>,
}

#[utoipa::path(
    get, path = "/v1/alerts", tag = "Alerts and audit", operation_id = "list_alerts",
    summary = "List alerts",
    description = "The alerts with an id above `after`, oldest first, at most `limit`.\n\n**Who:** Read endpoint: every role; what is shown depends on the caller.",
    params(crate::http::openapi::params::PageParams),
    responses(
        (status = 200, description = "A page of alerts.", body = Alerts),
        (status = 400, description = "`invalid_query`: a query parameter out of range, or an unknown one.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_query"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("read"))),
)]
pub async fn list_alerts(
    Authorized(principal, _): Authorized<Read>,
    State(state): State<AppState>,
    page: Page,
) -> ApiResult<Json<Alerts>> {
    let seen = Visibility::of(&principal);
    let alerts = blocking_api(state, move |s| {
        let alerts = s.alerts_after(page.after, page.limit)?;
        if seen.all {
            return Ok(alerts.into_iter().map(AlertView::from).collect());
        }
        // The alerts of the supervisions the caller may read (of the recent history).
        let visible: std::collections::HashSet<String> = s
            .supervisions()
            .into_iter()
            .filter(|v| seen.supervision(s, v))
            .map(|v| v.id.to_string())
            .collect();
        Ok(alerts
            .into_iter()
            .filter(|a| {
                a.supervision_id
                    .as_ref()
                    .is_some_and(|id| visible.contains(id))
            })
            .map(AlertView::from)
            .collect())
    })
    .await?;
    Ok(Json(Alerts { alerts }))
}

#[utoipa::path(
    get, path = "/v1/audit", tag = "Alerts and audit", operation_id = "list_audit",
    summary = "List the audit log",
    description = "Every supervision start, mode change, stop, denial, failure and abort (docs/design.md §4), and grant changes, each committed before what it announces.\n\n**Who:** Administration endpoint: admins only.",
    params(crate::http::openapi::params::PageParams),
    responses(
        (status = 200, description = "A page of audit records.", body = Audit),
        (status = 400, description = "`invalid_query`: a query parameter out of range, or an unknown one.", body = crate::http::openapi::ErrorBody, extensions(("x-error-codes" = json!(["invalid_query"])))),
        (status = 401, response = crate::http::openapi::responses::Unauthorized),
        (status = 403, response = crate::http::openapi::responses::ForbiddenAdminOnly),
        (status = 500, response = crate::http::openapi::responses::Internal),
    ),
    extensions(("x-endpoint-class" = json!("administration"))),
)]
pub async fn list_audit(
    Authorized(_, _): Authorized<Administration>,
    State(state): State<AppState>,
    page: Page,
) -> ApiResult<Json<Audit>> {
    let audit = blocking_api(state, move |s| {
        let audit = s.audit_after(page.after, page.limit)?;
        Ok(audit.into_iter().map(AuditView::from).collect())
    })
    .await?;
    Ok(Json(Audit { audit }))
}
