//! The rows of the event log and of the webhooks it is delivered to (docs/api.md, Events and
//! Webhooks).

use rusqlite::{Row, ToSql, params};

use super::{Db, Sql, json, ms, opt_ms, page, run, to_json};
use crate::store::{
    DeliveryRecord, Event, EventId, EventReads, EventScope, EventWrites, NewEvent, Result,
    WebhookRecord,
};

// --- Rows --------------------------------------------------------------------------------------

fn event_row(row: &Row<'_>) -> Sql<Event> {
    Ok(Event {
        id: EventId(row.get(0)?),
        at: ms(row, 1)?,
        event_type: row.get(2)?,
        payload: json(row, 3, "events.payload")?,
        scope: json::<EventScope>(row, 4, "events.scope")?,
    })
}

macro_rules! webhook_cols {
    () => {
        "id, url, secret, event_types, enabled, consecutive_failures, disabled_at_ms, \
         created_at_ms"
    };
}

fn webhook_row(row: &Row<'_>) -> Sql<WebhookRecord> {
    Ok(WebhookRecord {
        id: row.get(0)?,
        url: row.get(1)?,
        secret: row.get(2)?,
        event_types: json(row, 3, "webhooks.event_types")?,
        enabled: row.get(4)?,
        consecutive_failures: row.get(5)?,
        disabled_at: opt_ms(row, 6)?,
        created_at: ms(row, 7)?,
    })
}

macro_rules! delivery_cols {
    () => {
        "event_id, webhook_id, attempts, next_attempt_at_ms, last_status, last_error"
    };
}

/// A delivery's values in `delivery_cols!()` order (?1 … ?6), for its INSERT and its UPDATE.
fn delivery_params<R>(d: &DeliveryRecord, f: impl FnOnce(&[&dyn ToSql]) -> Sql<R>) -> Sql<R> {
    f(params![
        d.event_id.0,
        d.webhook_id,
        d.attempts,
        d.next_attempt_at.map(|at| at.0),
        d.last_status,
        d.last_error
    ])
}

fn delivery_row(row: &Row<'_>) -> Sql<DeliveryRecord> {
    Ok(DeliveryRecord {
        event_id: EventId(row.get(0)?),
        webhook_id: row.get(1)?,
        attempts: row.get(2)?,
        next_attempt_at: opt_ms(row, 3)?,
        last_status: row.get(4)?,
        last_error: row.get(5)?,
    })
}

impl EventReads for Db<'_> {
    fn events_after(&self, after: EventId, limit: u32) -> Result<Vec<Event>> {
        run("listing events", || {
            self.all(
                "SELECT id, at_ms, event_type, payload, scope FROM events WHERE id > ?1 \
                 ORDER BY id LIMIT ?2",
                [after.0, page(limit)],
                event_row,
            )
        })
    }

    fn last_event_id(&self) -> Result<Option<EventId>> {
        run("reading the last event id", || {
            let id: Option<i64> = self
                .conn
                .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))?;
            Ok(id.map(EventId))
        })
    }

    fn webhook(&self, id: &str) -> Result<Option<WebhookRecord>> {
        run("reading a webhook", || {
            self.one(
                concat!("SELECT ", webhook_cols!(), " FROM webhooks WHERE id = ?1"),
                [id],
                webhook_row,
            )
        })
    }

    fn webhooks(&self) -> Result<Vec<WebhookRecord>> {
        run("listing webhooks", || {
            self.all(
                concat!("SELECT ", webhook_cols!(), " FROM webhooks ORDER BY id"),
                [],
                webhook_row,
            )
        })
    }

    fn delivery(&self, event_id: EventId, webhook_id: &str) -> Result<Option<DeliveryRecord>> {
        run("reading a webhook delivery", || {
            self.one(
                concat!(
                    "SELECT ",
                    delivery_cols!(),
                    " FROM webhook_deliveries WHERE event_id = ?1 AND webhook_id = ?2"
                ),
                params![event_id.0, webhook_id],
                delivery_row,
            )
        })
    }

    fn next_delivery(&self, webhook_id: &str) -> Result<Option<DeliveryRecord>> {
        run("reading a webhook's next delivery", || {
            self.one(
                concat!(
                    "SELECT ",
                    delivery_cols!(),
                    " FROM webhook_deliveries WHERE webhook_id = ?1 \
                     AND next_attempt_at_ms IS NOT NULL ORDER BY event_id LIMIT 1"
                ),
                [webhook_id],
                delivery_row,
            )
        })
    }

    fn webhook_cursor(&self) -> Result<EventId> {
        run("reading the webhook cursor", || {
            let after: Option<i64> = self.one(
                "SELECT after_event_id FROM webhook_cursor WHERE id = 1",
                [],
                |r| Ok(r.get(0)?),
            )?;
            // The migration inserts the row; without it, nothing was fanned out yet.
            Ok(EventId(after.unwrap_or(0)))
        })
    }
}

impl EventWrites for Db<'_> {
    fn append_event(&mut self, e: &NewEvent) -> Result<EventId> {
        // AUTOINCREMENT: ids never reused; and writers are serialised (one connection, IMMEDIATE
        // transactions), so ids also become visible in increasing order — an SSE reader never
        // skips an id that commits later. (PostgreSQL sequences do not give the second property;
        // that backend must serialise event appends.)
        run("appending an event", || {
            let payload = to_json(&e.payload, "events.payload")?;
            let scope = to_json(&e.scope, "events.scope")?;
            self.insert_returning_id(
                "INSERT INTO events (at_ms, event_type, payload, scope) VALUES (?1, ?2, ?3, ?4)",
                params![e.at.0, e.event_type, payload, scope],
            )
            .map(EventId)
        })
    }

    fn create_webhook(&mut self, w: &WebhookRecord) -> Result<()> {
        run("creating a webhook", || {
            let event_types = to_json(&w.event_types, "webhooks.event_types")?;
            self.exec(
                concat!(
                    "INSERT INTO webhooks (",
                    webhook_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ),
                params![
                    w.id,
                    w.url,
                    w.secret,
                    event_types,
                    w.enabled,
                    w.consecutive_failures,
                    w.disabled_at.map(|at| at.0),
                    w.created_at.0
                ],
            )?;
            Ok(())
        })
    }

    fn update_webhook(&mut self, w: &WebhookRecord) -> Result<()> {
        run("updating a webhook", || {
            let event_types = to_json(&w.event_types, "webhooks.event_types")?;
            self.exec_found(
                "UPDATE webhooks SET url = ?2, secret = ?3, event_types = ?4, enabled = ?5, \
                 consecutive_failures = ?6, disabled_at_ms = ?7 WHERE id = ?1",
                params![
                    w.id,
                    w.url,
                    w.secret,
                    event_types,
                    w.enabled,
                    w.consecutive_failures,
                    w.disabled_at.map(|at| at.0)
                ],
                || format!("no webhook {:?}", w.id),
            )
        })
    }

    fn delete_webhook(&mut self, id: &str) -> Result<()> {
        run("deleting a webhook", || {
            self.exec_found("DELETE FROM webhooks WHERE id = ?1", [id], || {
                format!("no webhook {id:?}")
            })
        })
    }

    fn enqueue_delivery(&mut self, d: &DeliveryRecord) -> Result<()> {
        run("enqueueing a webhook delivery", || {
            delivery_params(d, |p| {
                self.exec(
                    concat!(
                        "INSERT INTO webhook_deliveries (",
                        delivery_cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                    ),
                    p,
                )
            })?;
            Ok(())
        })
    }

    fn update_delivery(&mut self, d: &DeliveryRecord) -> Result<()> {
        run("updating a webhook delivery", || {
            delivery_params(d, |p| {
                self.exec_found(
                    "UPDATE webhook_deliveries SET attempts = ?3, next_attempt_at_ms = ?4, \
                     last_status = ?5, last_error = ?6 WHERE event_id = ?1 AND webhook_id = ?2",
                    p,
                    || {
                        format!(
                            "no delivery of event {} to webhook {:?}",
                            d.event_id.0, d.webhook_id
                        )
                    },
                )
            })
        })
    }

    fn cancel_deliveries(&mut self, webhook_id: &str, reason: &str) -> Result<u64> {
        run("cancelling a webhook's deliveries", || {
            let n = self.exec(
                "UPDATE webhook_deliveries SET next_attempt_at_ms = NULL, last_error = ?2 \
                 WHERE webhook_id = ?1 AND next_attempt_at_ms IS NOT NULL",
                params![webhook_id, reason],
            )?;
            Ok(u64::try_from(n).unwrap_or(u64::MAX))
        })
    }

    fn set_webhook_cursor(&mut self, after: EventId) -> Result<()> {
        run("moving the webhook cursor", || {
            self.exec(
                "INSERT INTO webhook_cursor (id, after_event_id) VALUES (1, ?1) \
                 ON CONFLICT (id) DO UPDATE SET \
                 after_event_id = MAX(after_event_id, excluded.after_event_id)",
                [after.0],
            )?;
            Ok(())
        })
    }
}
