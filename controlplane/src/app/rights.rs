//! A supervisor's rights over an agent, looked up in the store, and the audited denial of a
//! supervision (docs/design.md §4: listen rights are distinct from intervening; every denial of
//! a supervision is audited). The rule itself is [`auth::may_supervise`] (pure).

use dataplane::media::matrix::Mode;

use crate::app::audit::{Audit, AuditAction, AuditOutcome};
use crate::app::state::AppState;
use crate::clock::to_unix_ms;
use crate::domain::auth::{self, Denied, GroupRights, Principal};
use crate::store::{Reads, StoreError, StoreExt as _};

/// Why a supervision was refused (its denial already audited), or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum RightsError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A supervisor's rights over an agent: the union over the groups they supervise that the
/// agent is a member of; `None`: no such group.
pub fn rights_over(
    r: &dyn Reads,
    supervisor: &str,
    agent: &str,
) -> Result<Option<GroupRights>, StoreError> {
    let groups: Vec<String> = r
        .memberships(agent)?
        .into_iter()
        .map(|m| m.group_id)
        .collect();
    let mut union: Option<GroupRights> = None;
    for s in r.supervised_groups(supervisor)? {
        if groups.contains(&s.group_id) {
            let u = union.get_or_insert_with(GroupRights::default);
            u.listen |= s.listen_right;
            u.intervene |= s.intervene_right;
            u.admin |= s.group_admin;
        }
    }
    Ok(union)
}

/// Appends a `supervision.denial` record of `principal` (docs/design.md §4: every denial is
/// audited).
pub fn audit(
    state: &AppState,
    principal: &Principal,
    call_id: Option<&str>,
    detail: String,
) -> Result<(), StoreError> {
    audit_denial(state, principal, None, call_id, None, detail)
}

/// [`audit`], with the supervision and the mode when the denial is of one.
fn audit_denial(
    state: &AppState,
    principal: &Principal,
    supervision_id: Option<&str>,
    call_id: Option<&str>,
    mode: Option<Mode>,
    detail: String,
) -> Result<(), StoreError> {
    let record = Audit::new(
        to_unix_ms(state.clock().now_ms()),
        principal.actor(),
        AuditAction::SupervisionDenial,
        AuditOutcome::Denied,
    )
    .supervision(supervision_id)
    .call(call_id)
    .mode(mode)
    .detail(Some(detail))
    .record();
    state.store().write(|w| w.append_audit(&record))?;
    Ok(())
}

/// Whether `principal` may supervise `agent` in `mode`: admins always; supervisors by their
/// group rights ([`auth::may_supervise`]). A denial is audited (docs/design.md §4), then
/// returned as [`RightsError::Denied`].
pub fn check_supervision(
    state: &AppState,
    principal: &Principal,
    agent: Option<&str>,
    mode: Mode,
    call_id: &str,
    supervision_id: Option<&str>,
    action: &str,
) -> Result<(), RightsError> {
    if principal.is_admin() {
        return Ok(());
    }
    let rights = match (principal.user_id.as_deref(), agent) {
        (Some(user), Some(agent)) => state.store().read(|r| rights_over(r, user, agent))?,
        _ => None,
    };
    let Err(denied) = auth::may_supervise(rights, mode) else {
        return Ok(());
    };
    let detail = format!(
        "{action}: {}; agent {}",
        denied.code(),
        agent.unwrap_or("(none)")
    );
    audit_denial(
        state,
        principal,
        supervision_id,
        Some(call_id),
        Some(mode),
        detail,
    )?;
    Err(RightsError::Denied(denied))
}
