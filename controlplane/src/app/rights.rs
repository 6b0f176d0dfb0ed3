//! Who may supervise whom (docs/design.md §2, §4): a supervisor's rights over an agent, looked
//! up in the store; the audited denial; and the start's decision.
//!
//! The group rights are handed to the lifecycle as an input of the start
//! ([`crate::domain::lifecycle::Start::supervisor_may_listen`]): a supervisor of one of the
//! agent's groups who lacks the listen right gets a session that fails at once with
//! `failed_no_permission` (their own alert, audited as a denial by the lifecycle). Someone
//! who supervises none of the agent's groups is refused before any session exists, so that
//! nothing about the agent's calls is revealed; that refusal is audited here. The rule itself
//! is [`auth::may_supervise`] (pure).

use dataplane::media::matrix::Mode;

use crate::app::audit::{Audit, AuditAction, AuditOutcome};
use crate::app::state::AppState;
use crate::clock::to_unix_ms;
use crate::domain::agents::UserId;
use crate::domain::auth::{self, Denied, GroupRights, Principal};
use crate::store::{Reads, Store, StoreError, StoreExt as _, UnixMs};

/// Why a supervision was refused (its denial already audited), or the store failed.
#[derive(Debug, thiserror::Error)]
pub enum RightsError {
    #[error(transparent)]
    Denied(#[from] Denied),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who asks for a supervision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requester {
    /// Admins hold every right (docs/design.md §4).
    Admin,
    /// Anyone else: the rights of `user` over the agent's groups (none without a user).
    /// `actor` names them in the audit log (`user:<id>`, `token:<id>`).
    Supervisor { user: Option<UserId>, actor: String },
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
    let rights = match (principal.user_id.as_ref().map(UserId::as_str), agent) {
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

/// Why a start is refused before any session exists.
#[derive(Debug)]
pub enum StartRefused {
    /// Audited already.
    Denied(Denied),
    Store(StoreError),
}

/// Whether `requester` may listen to `agent`'s call `call_id` (the start's
/// `supervisor_may_listen`), or is refused outright: a supervisor of none of the agent's groups
/// (or a call with no agent) is refused and the refusal audited, as every denial is
/// (docs/design.md §4).
pub fn may_listen(
    store: &dyn Store,
    requester: &Requester,
    agent: Option<&str>,
    call_id: &str,
    now: UnixMs,
) -> Result<bool, StartRefused> {
    let Requester::Supervisor { user, actor } = requester else {
        return Ok(true);
    };
    let rights = match (user, agent) {
        (Some(user), Some(agent)) => store
            .read(|r| rights_over(r, user.as_str(), agent))
            .map_err(StartRefused::Store)?,
        _ => None,
    };
    match auth::may_supervise(rights, Mode::Listen) {
        Ok(()) => Ok(true),
        // In one of the agent's groups: the session is created, and fails (its own alert).
        Err(Denied::NoListenRight) => Ok(false),
        Err(denied) => {
            let record = Audit::new(
                now,
                actor.clone(),
                AuditAction::SupervisionDenial,
                AuditOutcome::Denied,
            )
            .call(Some(call_id))
            .mode(Some(Mode::Listen))
            .detail(Some(format!(
                "start: {}; agent {}",
                denied.code(),
                agent.unwrap_or("(none)")
            )))
            .record();
            store
                .write(|w| w.append_audit(&record))
                .map_err(StartRefused::Store)?;
            Err(StartRefused::Denied(denied))
        }
    }
}
