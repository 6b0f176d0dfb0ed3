//! Access control's rows (docs/design.md §4): tokens, grants, the audit log.

use rusqlite::{Row, params};

use super::{Db, Sql, corrupt, ms, opt_ms, opt_text_enum, page, run, text_enum};
use crate::store::{
    AccessReads, AccessWrites, AuditId, AuditRecord, ColumnEnum as _, GrantId, GrantRecord,
    NewAudit, NewGrant, Result, TokenHash, TokenRecord, UnixMs,
};

// --- Rows --------------------------------------------------------------------------------------

macro_rules! token_cols {
    () => {
        "id, token_hash, role, user_id, created_at_ms, revoked_at_ms"
    };
}

fn token_row(row: &Row<'_>) -> Sql<TokenRecord> {
    let hash: Vec<u8> = row.get(1)?;
    let hash: [u8; 32] = hash
        .try_into()
        .map_err(|h: Vec<u8>| corrupt("tokens.token_hash", format!("{} bytes, not 32", h.len())))?;
    Ok(TokenRecord {
        id: row.get(0)?,
        token_hash: TokenHash(hash),
        role: text_enum(row, 2, "tokens.role")?,
        user_id: row.get(3)?,
        created_at: ms(row, 4)?,
        revoked_at: opt_ms(row, 5)?,
    })
}

macro_rules! grant_cols {
    () => {
        "id, supervisor_id, agent_id, granted_by, created_at_ms, revoked_at_ms"
    };
}

fn grant_row(row: &Row<'_>) -> Sql<GrantRecord> {
    Ok(GrantRecord {
        id: GrantId(row.get(0)?),
        supervisor_id: row.get(1)?,
        agent_id: row.get(2)?,
        granted_by: row.get(3)?,
        created_at: ms(row, 4)?,
        revoked_at: opt_ms(row, 5)?,
    })
}

macro_rules! audit_cols {
    () => {
        "id, at_ms, actor, action, supervision_id, call_id, mode, outcome, detail"
    };
}

fn audit_row(row: &Row<'_>) -> Sql<AuditRecord> {
    Ok(AuditRecord {
        id: AuditId(row.get(0)?),
        at: ms(row, 1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        supervision_id: row.get(4)?,
        call_id: row.get(5)?,
        mode: opt_text_enum(row, 6, "audit.mode")?,
        outcome: row.get(7)?,
        detail: row.get(8)?,
    })
}

impl AccessReads for Db<'_> {
    fn token(&self, id: &str) -> Result<Option<TokenRecord>> {
        run("reading a token", || {
            self.one(
                concat!("SELECT ", token_cols!(), " FROM tokens WHERE id = ?1"),
                [id],
                token_row,
            )
        })
    }

    fn token_by_hash(&self, token_hash: &TokenHash) -> Result<Option<TokenRecord>> {
        run("reading a token by hash", || {
            self.one(
                concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens WHERE token_hash = ?1"
                ),
                [&token_hash.0[..]],
                token_row,
            )
        })
    }

    fn tokens(&self) -> Result<Vec<TokenRecord>> {
        run("listing tokens", || {
            self.all(
                concat!(
                    "SELECT ",
                    token_cols!(),
                    " FROM tokens ORDER BY created_at_ms, id"
                ),
                [],
                token_row,
            )
        })
    }

    fn grant(&self, id: GrantId) -> Result<Option<GrantRecord>> {
        run("reading a grant", || {
            self.one(
                concat!("SELECT ", grant_cols!(), " FROM grants WHERE id = ?1"),
                [id.0],
                grant_row,
            )
        })
    }

    fn active_grant(&self, supervisor_id: &str, agent_id: &str) -> Result<Option<GrantRecord>> {
        run("reading an active grant", || {
            self.one(
                concat!(
                    "SELECT ",
                    grant_cols!(),
                    " FROM grants WHERE supervisor_id = ?1 AND agent_id = ?2 \
                     AND revoked_at_ms IS NULL"
                ),
                [supervisor_id, agent_id],
                grant_row,
            )
        })
    }

    fn grants(&self) -> Result<Vec<GrantRecord>> {
        run("listing grants", || {
            self.all(
                concat!("SELECT ", grant_cols!(), " FROM grants ORDER BY id"),
                [],
                grant_row,
            )
        })
    }

    fn audit_after(&self, after: AuditId, limit: u32) -> Result<Vec<AuditRecord>> {
        run("listing audit records", || {
            self.all(
                concat!(
                    "SELECT ",
                    audit_cols!(),
                    " FROM audit WHERE id > ?1 ORDER BY id LIMIT ?2"
                ),
                [after.0, page(limit)],
                audit_row,
            )
        })
    }

    fn audit_of_supervision(&self, supervision_id: &str) -> Result<Vec<AuditRecord>> {
        run("listing a supervision's audit records", || {
            self.all(
                concat!(
                    "SELECT ",
                    audit_cols!(),
                    " FROM audit WHERE supervision_id = ?1 ORDER BY id"
                ),
                [supervision_id],
                audit_row,
            )
        })
    }
}

impl AccessWrites for Db<'_> {
    fn create_token(&mut self, t: &TokenRecord) -> Result<()> {
        run("creating a token", || {
            self.exec(
                concat!(
                    "INSERT INTO tokens (",
                    token_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    t.id,
                    &t.token_hash.0[..],
                    t.role.as_str(),
                    t.user_id,
                    t.created_at.0,
                    t.revoked_at.map(|at| at.0)
                ],
            )?;
            Ok(())
        })
    }

    fn revoke_token(&mut self, id: &str, at: UnixMs) -> Result<()> {
        run("revoking a token", || {
            self.exec_found(
                "UPDATE tokens SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE id = ?1",
                params![id, at.0],
                || format!("no token {id:?}"),
            )
        })
    }

    fn create_grant(&mut self, g: &NewGrant) -> Result<GrantId> {
        run("creating a grant", || {
            self.insert_returning_id(
                "INSERT INTO grants (supervisor_id, agent_id, granted_by, created_at_ms) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![g.supervisor_id, g.agent_id, g.granted_by, g.created_at.0],
            )
            .map(GrantId)
        })
    }

    fn revoke_grant(&mut self, id: GrantId, at: UnixMs) -> Result<()> {
        run("revoking a grant", || {
            self.exec_found(
                "UPDATE grants SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE id = ?1",
                [id.0, at.0],
                || format!("no grant {}", id.0),
            )
        })
    }

    fn append_audit(&mut self, a: &NewAudit) -> Result<AuditId> {
        run("appending an audit record", || {
            self.insert_returning_id(
                "INSERT INTO audit (at_ms, actor, action, supervision_id, call_id, mode, \
                 outcome, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.at.0,
                    a.actor,
                    a.action,
                    a.supervision_id,
                    a.call_id,
                    a.mode.map(|m| m.as_str()),
                    a.outcome,
                    a.detail
                ],
            )
            .map(AuditId)
        })
    }
}
