//! Users, supervisor settings and persistent-supervision grants (docs/design.md §2, §4).

use super::*;
use crate::app::audit::{Audit, AuditAction, AuditOutcome};
use crate::app::state::AppState;
use crate::app::storage::Storage;

pub use crate::store::{GrantId, GrantRecord};

// ----- supervisor settings (docs/design.md §2) -----

/// A supervisor's registered number, if they set one.
pub fn registered_number(r: &dyn Reads, user: &str) -> Result<Option<String>, StoreError> {
    Ok(r.supervisor_settings(user)?.map(|s| s.registered_number))
}

/// [`registered_number`], read from `store`.
pub(super) fn settings(store: &dyn Store, user: &UserId) -> Result<Option<String>, StoreError> {
    store.read(|r| registered_number(r, user.as_str()))
}

pub fn set_registered_number(
    w: &mut dyn Writes,
    user: &str,
    number: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    w.set_supervisor_settings(&SupervisorSettings {
        user_id: user.to_owned(),
        registered_number: number.to_owned(),
        updated_at: to_unix_ms(now_ms),
    })
}

/// A supervisor's registered number (`PUT /v1/console/settings`), for a known user; answers the
/// number as stored.
pub(super) fn set_settings(
    store: &dyn Store,
    user: &UserId,
    digits: String,
    now_ms: u64,
) -> Result<String, StoreError> {
    store.write(|w| {
        if w.user(user.as_str())?.is_none() {
            return Err(StoreError::NotFound {
                context: "user".to_owned(),
                detail: format!("no user {user}"),
            });
        }
        set_registered_number(w, user.as_str(), &digits, now_ms)
    })?;
    Ok(digits)
}

/// Every user of the appliance.
pub fn users(state: &AppState) -> Result<Vec<UserRecord>, Storage> {
    Ok(state.store().read(|r| r.users())?)
}

/// A change to a user (`PATCH /v1/users/{id}`); `None`: unchanged, `Some(None)`: cleared.
pub struct UserChange {
    pub display_name: Option<String>,
    pub phone_number: Option<Option<String>>,
}

/// Changes a user's name or number, in the store and in the directory (the console shows the
/// new name and number at once, docs/api.md).
pub fn update_user(
    state: &AppState,
    user: &UserId,
    change: UserChange,
) -> Result<UserRecord, Storage> {
    let record = state.store().write(|w| {
        let mut u = w.user(user.as_str())?.ok_or_else(|| StoreError::NotFound {
            context: "user".to_owned(),
            detail: format!("no user {user} (users come with their first token)"),
        })?;
        if let Some(name) = &change.display_name {
            u.display_name = name.clone();
        }
        if let Some(number) = &change.phone_number {
            u.phone_number = number.clone();
        }
        w.update_user(&u)?;
        Ok(u)
    })?;
    state.center().user_changed(&record);
    Ok(record)
}

// ----- persistent-supervision grants (docs/design.md §2) -----

/// Every grant, revoked ones too.
pub fn grants(state: &AppState) -> Result<Vec<GrantRecord>, Storage> {
    Ok(state.store().read(|r| r.grants())?)
}

/// A persistent-supervision grant of `supervisor` over `agent`, both known users, by `actor`:
/// one active grant per pair; audited in the same commit (docs/design.md §4).
pub fn create_grant(
    state: &AppState,
    actor: String,
    supervisor: &UserId,
    agent: &UserId,
) -> Result<GrantRecord, Storage> {
    let at = to_unix_ms(state.clock().now_ms());
    let (supervisor, agent) = (supervisor.as_str(), agent.as_str());
    let grant = state.store().write(|w| {
        for (what, id) in [("supervisor", supervisor), ("agent", agent)] {
            if w.user(id)?.is_none() {
                return Err(StoreError::NotFound {
                    context: what.to_owned(),
                    detail: format!("no user {id}"),
                });
            }
        }
        if w.active_grant(supervisor, agent)?.is_some() {
            return Err(StoreError::Conflict {
                context: "grant".to_owned(),
                detail: format!("{supervisor} already holds a grant over {agent}"),
            });
        }
        let id = w.create_grant(&store::NewGrant {
            supervisor_id: supervisor.to_owned(),
            agent_id: agent.to_owned(),
            granted_by: actor.clone(),
            created_at: at,
        })?;
        let detail = format!("grant {}: {supervisor} may follow {agent}", id.0);
        let audit = Audit::new(
            at,
            actor.clone(),
            AuditAction::GrantCreate,
            AuditOutcome::Ok,
        )
        .detail(Some(detail));
        w.append_audit(&audit.record())?;
        w.grant(id)?.ok_or_else(|| StoreError::NotFound {
            context: "grant".to_owned(),
            detail: format!("grant {} vanished", id.0),
        })
    })?;
    Ok(grant)
}

/// Revokes grant `id`, audited in the same commit (docs/design.md §4).
pub fn revoke_grant(state: &AppState, actor: String, id: GrantId) -> Result<GrantRecord, Storage> {
    let at = to_unix_ms(state.clock().now_ms());
    let grant = state.store().write(|w| {
        w.revoke_grant(id, at)?;
        let audit = Audit::new(
            at,
            actor.clone(),
            AuditAction::GrantRevoke,
            AuditOutcome::Ok,
        )
        .detail(Some(format!("grant {}", id.0)));
        w.append_audit(&audit.record())?;
        w.grant(id)?.ok_or_else(|| StoreError::NotFound {
            context: "grant".to_owned(),
            detail: format!("no grant {}", id.0),
        })
    })?;
    Ok(grant)
}
