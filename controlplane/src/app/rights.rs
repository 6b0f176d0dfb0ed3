//! Who may start a supervision, and what a refusal looks like (docs/design.md §2, §4).
//!
//! The group rights are looked up here and handed to the lifecycle as an input of the start
//! ([`crate::domain::lifecycle::Start::supervisor_may_listen`]): a supervisor of one of the
//! agent's groups who lacks the listen right gets a session that fails at once with
//! `failed_no_permission` (their own alert, audited as a denial by the lifecycle). Someone
//! who supervises none of the agent's groups is refused before any session exists, so that
//! nothing about the agent's calls is revealed; that refusal is audited here.

use dataplane::media::matrix::Mode;

use crate::domain::agents::UserId;
use crate::domain::auth::{self, Denied, GroupRights};
use crate::store::{NewAudit, Reads, Store, StoreError, StoreExt as _, UnixMs};

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
            let record = NewAudit {
                at: now,
                actor: actor.clone(),
                action: "supervision.denial".to_owned(),
                supervision_id: None,
                call_id: Some(call_id.to_owned()),
                mode: Some(Mode::Listen),
                outcome: "denied".to_owned(),
                detail: Some(format!(
                    "start: {}; agent {}",
                    denied.code(),
                    agent.unwrap_or("(none)")
                )),
            };
            store
                .write(|w| w.append_audit(&record))
                .map_err(StartRefused::Store)?;
            Err(StartRefused::Denied(denied))
        }
    }
}
