//! The rows of calls and supervisions (docs/design.md §2), with their alerts.

use rusqlite::{Row, ToSql, params};

use super::{Db, Sql, json, ms, opt_ms, page, run, text_enum, to_json};
use crate::store::{
    AlertId, AlertRecord, CallFlags, CallReads, CallRecord, CallWrites, ColumnEnum as _, NewAlert,
    NgCallRecord, Result, SupervisionRecord,
};

// --- Rows --------------------------------------------------------------------------------------

macro_rules! call_cols {
    () => {
        "id, external_id, agent_id, state, on_hold, consult, secure_payment, conference, web, \
         created_at_ms, ended_at_ms, direction, agent_answered, customer_hung_up, agent_hung_up, \
         deleted_at_ms, media"
    };
}

/// A call's values in `call_cols!()` order (?1 … ?17), for its INSERT.
fn call_params<R>(c: &CallRecord, f: impl FnOnce(&[&dyn ToSql]) -> Sql<R>) -> Sql<R> {
    let media = to_json(&c.media, "calls.media")?;
    f(params![
        c.id,
        c.external_id,
        c.agent_id,
        c.state.as_str(),
        c.flags.on_hold,
        c.flags.consult,
        c.flags.secure_payment,
        c.flags.conference,
        c.web,
        c.created_at.0,
        c.ended_at.map(|at| at.0),
        c.direction.as_str(),
        c.agent_answered,
        c.customer_hung_up,
        c.agent_hung_up,
        c.deleted_at.map(|at| at.0),
        media
    ])
}

fn call_row(row: &Row<'_>) -> Sql<CallRecord> {
    Ok(CallRecord {
        id: row.get(0)?,
        external_id: row.get(1)?,
        agent_id: row.get(2)?,
        state: text_enum(row, 3, "calls.state")?,
        flags: CallFlags {
            on_hold: row.get(4)?,
            consult: row.get(5)?,
            secure_payment: row.get(6)?,
            conference: row.get(7)?,
        },
        web: row.get(8)?,
        created_at: ms(row, 9)?,
        ended_at: opt_ms(row, 10)?,
        direction: text_enum(row, 11, "calls.direction")?,
        agent_answered: row.get(12)?,
        customer_hung_up: row.get(13)?,
        agent_hung_up: row.get(14)?,
        deleted_at: opt_ms(row, 15)?,
        media: json(row, 16, "calls.media")?,
    })
}

macro_rules! supervision_cols {
    () => {
        "id, call_id, supervisor_id, agent_id, state, mode, end_reason, scope, created_at_ms, \
         started_at_ms, ended_at_ms, media"
    };
}

/// A supervision's values in `supervision_cols!()` order (?1 … ?12), for its INSERT.
fn supervision_params<R>(s: &SupervisionRecord, f: impl FnOnce(&[&dyn ToSql]) -> Sql<R>) -> Sql<R> {
    let media = to_json(&s.media, "supervisions.media")?;
    f(params![
        s.id,
        s.call_id,
        s.supervisor_id,
        s.agent_id,
        s.state.as_str(),
        s.mode.as_str(),
        s.end_reason,
        s.scope.as_str(),
        s.created_at.0,
        s.started_at.map(|at| at.0),
        s.ended_at.map(|at| at.0),
        media
    ])
}

fn supervision_row(row: &Row<'_>) -> Sql<SupervisionRecord> {
    Ok(SupervisionRecord {
        id: row.get(0)?,
        call_id: row.get(1)?,
        supervisor_id: row.get(2)?,
        agent_id: row.get(3)?,
        state: text_enum(row, 4, "supervisions.state")?,
        mode: text_enum(row, 5, "supervisions.mode")?,
        end_reason: row.get(6)?,
        scope: text_enum(row, 7, "supervisions.scope")?,
        created_at: ms(row, 8)?,
        started_at: opt_ms(row, 9)?,
        ended_at: opt_ms(row, 10)?,
        media: json(row, 11, "supervisions.media")?,
    })
}

macro_rules! ng_call_cols {
    () => {
        "ng.call_id, ng.ng_call_id, ng.offerer_tag, ng.offerer, ng.answerer_tag, \
         ng.last_signal_ms"
    };
}

fn ng_call_row(row: &Row<'_>) -> Sql<NgCallRecord> {
    Ok(NgCallRecord {
        call_id: row.get(0)?,
        ng_call_id: row.get(1)?,
        offerer_tag: row.get(2)?,
        offerer: text_enum(row, 3, "ng_calls.offerer")?,
        answerer_tag: row.get(4)?,
        last_signal: ms(row, 5)?,
    })
}

macro_rules! alert_cols {
    () => {
        "id, supervision_id, kind, text, at_ms, call_id, reason"
    };
}

fn alert_row(row: &Row<'_>) -> Sql<AlertRecord> {
    Ok(AlertRecord {
        id: AlertId(row.get(0)?),
        supervision_id: row.get(1)?,
        kind: row.get(2)?,
        text: row.get(3)?,
        at: ms(row, 4)?,
        call_id: row.get(5)?,
        reason: row.get(6)?,
    })
}

impl CallReads for Db<'_> {
    fn call(&self, id: &str) -> Result<Option<CallRecord>> {
        run("reading a call", || {
            self.one(
                concat!("SELECT ", call_cols!(), " FROM calls WHERE id = ?1"),
                [id],
                call_row,
            )
        })
    }

    fn call_by_external_id(&self, external_id: &str) -> Result<Option<CallRecord>> {
        run("reading a call by external id", || {
            self.one(
                concat!(
                    "SELECT ",
                    call_cols!(),
                    " FROM calls WHERE external_id = ?1"
                ),
                [external_id],
                call_row,
            )
        })
    }

    fn open_calls(&self) -> Result<Vec<CallRecord>> {
        run("listing open calls", || {
            self.all(
                concat!(
                    "SELECT ",
                    call_cols!(),
                    " FROM calls WHERE state <> 'ended' ORDER BY created_at_ms, id"
                ),
                [],
                call_row,
            )
        })
    }

    fn recent_calls(&self, limit: u32) -> Result<Vec<CallRecord>> {
        run("listing recent calls", || {
            self.all(
                concat!(
                    "SELECT ",
                    call_cols!(),
                    " FROM calls ORDER BY created_at_ms DESC, id DESC LIMIT ?1"
                ),
                [page(limit)],
                call_row,
            )
        })
    }

    fn supervision(&self, id: &str) -> Result<Option<SupervisionRecord>> {
        run("reading a supervision", || {
            self.one(
                concat!(
                    "SELECT ",
                    supervision_cols!(),
                    " FROM supervisions WHERE id = ?1"
                ),
                [id],
                supervision_row,
            )
        })
    }

    fn open_sessions(&self) -> Result<Vec<SupervisionRecord>> {
        run("listing open supervisions", || {
            self.all(
                concat!(
                    "SELECT ",
                    supervision_cols!(),
                    " FROM supervisions WHERE state IN ('requested', 'active', 'no_call') \
                     ORDER BY created_at_ms, id"
                ),
                [],
                supervision_row,
            )
        })
    }

    fn supervisions_of_call(&self, call_id: &str) -> Result<Vec<SupervisionRecord>> {
        run("listing a call's supervisions", || {
            self.all(
                concat!(
                    "SELECT ",
                    supervision_cols!(),
                    " FROM supervisions WHERE call_id = ?1 ORDER BY created_at_ms, id"
                ),
                [call_id],
                supervision_row,
            )
        })
    }

    fn recent_supervisions(&self, limit: u32) -> Result<Vec<SupervisionRecord>> {
        run("listing recent supervisions", || {
            self.all(
                concat!(
                    "SELECT ",
                    supervision_cols!(),
                    " FROM supervisions ORDER BY created_at_ms DESC, id DESC LIMIT ?1"
                ),
                [page(limit)],
                supervision_row,
            )
        })
    }

    fn ng_call(&self, call_id: &str) -> Result<Option<NgCallRecord>> {
        run("reading a call's NG side", || {
            self.one(
                concat!(
                    "SELECT ",
                    ng_call_cols!(),
                    " FROM ng_calls ng WHERE ng.call_id = ?1"
                ),
                [call_id],
                ng_call_row,
            )
        })
    }

    fn recent_ng_calls(&self, limit: u32) -> Result<Vec<NgCallRecord>> {
        run("listing recent NG calls", || {
            self.all(
                concat!(
                    "SELECT ",
                    ng_call_cols!(),
                    " FROM ng_calls ng JOIN calls c ON c.id = ng.call_id \
                     ORDER BY c.created_at_ms DESC, c.id DESC LIMIT ?1"
                ),
                [page(limit)],
                ng_call_row,
            )
        })
    }

    fn alerts_after(&self, after: AlertId, limit: u32) -> Result<Vec<AlertRecord>> {
        run("listing alerts", || {
            self.all(
                concat!(
                    "SELECT ",
                    alert_cols!(),
                    " FROM alerts WHERE id > ?1 ORDER BY id LIMIT ?2"
                ),
                [after.0, page(limit)],
                alert_row,
            )
        })
    }

    fn alerts_of_supervision(&self, supervision_id: &str) -> Result<Vec<AlertRecord>> {
        run("listing a supervision's alerts", || {
            self.all(
                concat!(
                    "SELECT ",
                    alert_cols!(),
                    " FROM alerts WHERE supervision_id = ?1 ORDER BY id"
                ),
                [supervision_id],
                alert_row,
            )
        })
    }
}

impl CallWrites for Db<'_> {
    fn create_call(&mut self, c: &CallRecord) -> Result<()> {
        run("creating a call", || {
            call_params(c, |p| {
                self.exec(
                    concat!(
                        "INSERT INTO calls (",
                        call_cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
                         ?15, ?16, ?17)"
                    ),
                    p,
                )
            })?;
            Ok(())
        })
    }

    fn update_call(&mut self, c: &CallRecord) -> Result<()> {
        run("updating a call", || {
            // The indexed columns (`external_id`, `state`) apart, each set by a statement that
            // matches no row when they are unchanged: an UPDATE that assigns an indexed column
            // rewrites its index entry, one more page in the WAL, even to the same value. The
            // state goes with `ended_at_ms`, which its CHECK ties to it.
            let media = to_json(&c.media, "calls.media")?;
            self.exec_found(
                "UPDATE calls SET agent_id = ?2, on_hold = ?3, consult = ?4, secure_payment = ?5, \
                 conference = ?6, web = ?7, direction = ?8, agent_answered = ?9, \
                 customer_hung_up = ?10, agent_hung_up = ?11, deleted_at_ms = ?12, media = ?13 \
                 WHERE id = ?1",
                params![
                    c.id,
                    c.agent_id,
                    c.flags.on_hold,
                    c.flags.consult,
                    c.flags.secure_payment,
                    c.flags.conference,
                    c.web,
                    c.direction.as_str(),
                    c.agent_answered,
                    c.customer_hung_up,
                    c.agent_hung_up,
                    c.deleted_at.map(|at| at.0),
                    media
                ],
                || format!("no call {:?}", c.id),
            )?;
            self.exec(
                "UPDATE calls SET external_id = ?2 WHERE id = ?1 AND external_id IS NOT ?2",
                params![c.id, c.external_id],
            )?;
            self.exec(
                "UPDATE calls SET state = ?2, ended_at_ms = ?3 \
                 WHERE id = ?1 AND (state IS NOT ?2 OR ended_at_ms IS NOT ?3)",
                params![c.id, c.state.as_str(), c.ended_at.map(|at| at.0)],
            )?;
            Ok(())
        })
    }

    fn create_supervision(&mut self, s: &SupervisionRecord) -> Result<()> {
        run("creating a supervision", || {
            supervision_params(s, |p| {
                self.exec(
                    concat!(
                        "INSERT INTO supervisions (",
                        supervision_cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
                    ),
                    p,
                )
            })?;
            Ok(())
        })
    }

    fn update_supervision(&mut self, s: &SupervisionRecord) -> Result<()> {
        run("updating a supervision", || {
            // As `update_call`: the indexed columns (`call_id`, `state`) apart, unwritten when
            // unchanged; each with the column its CHECK ties it to (`scope`, `ended_at_ms`).
            let media = to_json(&s.media, "supervisions.media")?;
            self.exec_found(
                "UPDATE supervisions SET supervisor_id = ?2, agent_id = ?3, mode = ?4, \
                 end_reason = ?5, started_at_ms = ?6, media = ?7 WHERE id = ?1",
                params![
                    s.id,
                    s.supervisor_id,
                    s.agent_id,
                    s.mode.as_str(),
                    s.end_reason,
                    s.started_at.map(|at| at.0),
                    media
                ],
                || format!("no supervision {:?}", s.id),
            )?;
            self.exec(
                "UPDATE supervisions SET call_id = ?2, scope = ?3 \
                 WHERE id = ?1 AND (call_id IS NOT ?2 OR scope IS NOT ?3)",
                params![s.id, s.call_id, s.scope.as_str()],
            )?;
            self.exec(
                "UPDATE supervisions SET state = ?2, ended_at_ms = ?3 \
                 WHERE id = ?1 AND (state IS NOT ?2 OR ended_at_ms IS NOT ?3)",
                params![s.id, s.state.as_str(), s.ended_at.map(|at| at.0)],
            )?;
            Ok(())
        })
    }

    fn set_ng_call(&mut self, ng: &NgCallRecord) -> Result<()> {
        run("recording a call's NG side", || {
            self.exec(
                "INSERT INTO ng_calls (call_id, ng_call_id, offerer_tag, offerer, answerer_tag, \
                 last_signal_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                 ON CONFLICT (call_id) DO UPDATE SET ng_call_id = ?2, offerer_tag = ?3, \
                 offerer = ?4, answerer_tag = ?5, last_signal_ms = ?6",
                params![
                    ng.call_id,
                    ng.ng_call_id,
                    ng.offerer_tag,
                    ng.offerer.as_str(),
                    ng.answerer_tag,
                    ng.last_signal.0
                ],
            )?;
            Ok(())
        })
    }

    fn append_alert(&mut self, a: &NewAlert) -> Result<AlertId> {
        run("appending an alert", || {
            self.insert_returning_id(
                "INSERT INTO alerts (supervision_id, kind, text, at_ms, call_id, reason) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    a.supervision_id,
                    a.kind,
                    a.text,
                    a.at.0,
                    a.call_id,
                    a.reason
                ],
            )
            .map(AlertId)
        })
    }
}
