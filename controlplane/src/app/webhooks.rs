//! Webhook delivery (docs/api.md, Webhooks): the use cases behind the admin routes of
//! `/v1/webhooks` (the HTTP adapter parses and renders) and the task that delivers the event log
//! to them. Signing, the message and the retry policy are [`crate::domain::webhooks`]' (pure);
//! this module is the I/O around them (docs/design.md §9).
//!
//! # Fan-out: a durable cursor
//!
//! The store's event log is the only source. A cursor in the store
//! ([`crate::store::EventReads::webhook_cursor`]) says how far the log has been *fanned out*: every
//! event up to it has a delivery row for each webhook that was enabled and wanted it at the time.
//! [`fan_out`] moves the cursor in the transaction that writes those rows, so a restart neither
//! fans an event out twice nor skips one. A change of the webhooks (create, patch) first fans out
//! the log up to its tail in its own transaction: the events committed before the change go to the
//! webhooks as they were, those after it to the webhooks as they are. So a new webhook gets exactly
//! the events committed after its creation.
//!
//! # Delivery: per webhook, in event order
//!
//! A webhook's next delivery is its unfinished one with the lowest event id
//! ([`crate::store::EventReads::next_delivery`]). The task attempts it when it is due, and only it:
//! a webhook's events arrive in order, each retried until delivered or given up before the next is
//! sent (head-of-line blocking is the price of order). Webhooks are served in parallel, one attempt
//! each at a time and at most [`IN_FLIGHT_MAX`] in all. An attempt's outcome and what follows it
//! ([`webhooks::next`]: done, retry at, give up, disable the webhook) are written in one
//! transaction. Delivery is at least once: an attempt cut short by a shutdown is made again after
//! the restart, under the same `webhook-id`.
//!
//! The task sleeps on the state's clock until the soonest due delivery, and wakes on every
//! store commit (new events, a changed webhook): tests drive it with a manual clock.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::header;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::app::state::AppState;
use crate::clock::{from_unix_ms, to_unix_ms};
use crate::domain::ids::quote;
use crate::domain::webhooks::{self, Attempt, Next, Secret};
use crate::store::{
    DeliveryRecord, Event, EventId, EventScope, NewEvent, Reads, StoreError, StoreExt as _, UnixMs,
    Writes,
};

/// A webhook as stored (the HTTP adapter renders it, never its secret).
pub use crate::store::WebhookRecord;

/// Longest webhook URL accepted.
pub const URL_LEN_MAX: usize = 2048;
/// Most entries of a webhook's `event_types`.
pub const EVENT_TYPES_MAX: usize = 32;
/// Most webhooks (each costs a lookup per scheduling round and may hold an attempt in flight).
pub const WEBHOOKS_MAX: usize = 100;
/// How long one attempt may take, from connecting to the response's status.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most attempts in flight at once, over all webhooks (one per webhook at most).
pub const IN_FLIGHT_MAX: usize = 16;
/// Events fanned out per transaction.
const FAN_OUT_PAGE: u32 = 100;
/// Longest error text kept with a delivery.
const ERROR_LEN_MAX: usize = 200;
/// How long the task waits before reading again a store that failed.
const STORE_RETRY: Duration = Duration::from_secs(1);
/// The last error of the deliveries a disabled webhook will not get.
const DISABLED: &str = "the webhook is disabled";
/// The event appended when a webhook is disabled after repeated failure.
pub const EVENT_DISABLED: &str = "webhook.disabled";

// ---- use cases (blocking: they commit) ----

/// `POST /v1/webhooks`, parsed.
pub struct NewWebhook {
    pub url: String,
    /// Empty: every event.
    pub event_types: Vec<String>,
    /// `None`: generate one.
    pub secret: Option<Secret>,
}

/// `PATCH /v1/webhooks/{id}`, parsed: each field absent is left as it is.
pub struct WebhookChange {
    pub url: Option<String>,
    pub event_types: Option<Vec<String>>,
    pub enabled: Option<bool>,
}

/// Why a webhook use case failed.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The webhook, or a row it needs, does not exist (the detail alone is the message).
    #[error("{0}")]
    NotFound(String),
    /// [`WEBHOOKS_MAX`] exist already.
    #[error("there are {WEBHOOKS_MAX} webhooks already, the most there may be")]
    TooMany,
    #[error("no random identifier from the OS: {0}")]
    Random(getrandom::Error),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for WebhookError {
    /// A missing row's message is its detail alone ("no webhook with id …").
    fn from(e: StoreError) -> WebhookError {
        match e {
            StoreError::NotFound { detail, .. } => WebhookError::NotFound(detail),
            e => WebhookError::Store(e),
        }
    }
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        context: "webhook".to_owned(),
        detail: format!("no webhook with id {}", quote(id)),
    }
}

/// A created webhook and its secret, which is shown this once.
pub struct Created {
    pub webhook: WebhookRecord,
    pub secret: String,
}

fn now(state: &AppState) -> UnixMs {
    to_unix_ms(state.clock().now_ms())
}

/// A fresh webhook id: `wh_` and 16 hex digits from the OS's random number generator.
fn new_id() -> Result<String, WebhookError> {
    getrandom::u64()
        .map(|n| format!("wh_{n:016x}"))
        .map_err(WebhookError::Random)
}

/// A new random secret. No OS randomness is a broken host: the request fails rather than take
/// a predictable key.
fn new_secret() -> Result<Secret, WebhookError> {
    let mut key = [0u8; webhooks::KEY_LEN];
    getrandom::fill(&mut key).map_err(WebhookError::Random)?;
    Ok(Secret::from_key(key))
}

/// Creates a webhook: it gets the events committed from now on.
pub fn create(state: &AppState, req: NewWebhook) -> Result<Created, WebhookError> {
    let secret = match req.secret {
        Some(secret) => secret,
        None => new_secret()?,
    };
    let at = now(state);
    let record = WebhookRecord {
        id: new_id()?,
        url: req.url,
        secret: secret.expose(),
        event_types: req.event_types,
        enabled: true,
        consecutive_failures: 0,
        disabled_at: None,
        created_at: at,
    };
    let created = state.store().write(|w| {
        if w.webhooks()?.len() >= WEBHOOKS_MAX {
            return Ok(false);
        }
        // The events before it go to the webhooks as they were.
        catch_up(w, at)?;
        w.create_webhook(&record)?;
        Ok(true)
    })?;
    if !created {
        return Err(WebhookError::TooMany);
    }
    let secret = record.secret.clone();
    Ok(Created {
        webhook: record,
        secret,
    })
}

pub fn list(state: &AppState) -> Result<Vec<WebhookRecord>, WebhookError> {
    Ok(state.store().read(|r| r.webhooks())?)
}

pub fn show(state: &AppState, id: &str) -> Result<WebhookRecord, WebhookError> {
    Ok(state
        .store()
        .read(|r| r.webhook(id)?.ok_or_else(|| not_found(id)))?)
}

/// Changes a webhook. Re-enabling one resets its failures; disabling one drops its pending
/// deliveries (a disabled webhook is sent nothing). A new filter or state applies to the events
/// committed from now on.
pub fn change(
    state: &AppState,
    id: &str,
    req: WebhookChange,
) -> Result<WebhookRecord, WebhookError> {
    let at = now(state);
    Ok(state.store().write(|w| {
        let mut hook = w.webhook(id)?.ok_or_else(|| not_found(id))?;
        catch_up(w, at)?;
        if let Some(url) = &req.url {
            hook.url.clone_from(url);
        }
        if let Some(types) = &req.event_types {
            hook.event_types.clone_from(types);
        }
        match req.enabled {
            Some(true) if !hook.enabled => {
                hook.enabled = true;
                hook.consecutive_failures = 0;
                hook.disabled_at = None;
            }
            Some(false) if hook.enabled => {
                hook.enabled = false;
                w.cancel_deliveries(id, DISABLED)?;
            }
            _ => {}
        }
        w.update_webhook(&hook)?;
        Ok(hook)
    })?)
}

/// Deletes a webhook and its deliveries (an attempt in flight finishes unrecorded).
pub fn remove(state: &AppState, id: &str) -> Result<(), WebhookError> {
    Ok(state.store().write(|w| {
        w.webhook(id)?.ok_or_else(|| not_found(id))?;
        w.delete_webhook(id)
    })?)
}

// ---- fan-out ----

/// Fans out one page of the log after the cursor: a delivery row, due at `now`, for each
/// enabled webhook that wants the event; then moves the cursor past the page. With no enabled
/// webhook there is nothing to write but the cursor, which jumps to the tail. Returns whether
/// the log is now fanned out to its tail.
pub fn fan_out(w: &mut dyn Writes, now: UnixMs) -> Result<bool, StoreError> {
    let after = w.webhook_cursor()?;
    let enabled: Vec<WebhookRecord> = w.webhooks()?.into_iter().filter(|h| h.enabled).collect();
    if enabled.is_empty() {
        if let Some(last) = w.last_event_id()?
            && last > after
        {
            w.set_webhook_cursor(last)?;
        }
        return Ok(true);
    }
    let page = w.events_after(after, FAN_OUT_PAGE)?;
    let Some(last) = page.last().map(|e| e.id) else {
        return Ok(true);
    };
    for event in &page {
        for hook in enabled
            .iter()
            .filter(|h| webhooks::wants(&h.event_types, &event.event_type))
        {
            w.enqueue_delivery(&DeliveryRecord {
                event_id: event.id,
                webhook_id: hook.id.clone(),
                attempts: 0,
                next_attempt_at: Some(now),
                last_status: None,
                last_error: None,
            })?;
        }
    }
    w.set_webhook_cursor(last)?;
    Ok(page.len() < FAN_OUT_PAGE as usize)
}

/// [`fan_out`] to the tail, in the caller's transaction (before a change of the webhooks).
fn catch_up(w: &mut dyn Writes, now: UnixMs) -> Result<(), StoreError> {
    while !fan_out(w, now)? {}
    Ok(())
}

/// Fans out the log to its tail, a page per transaction; writes nothing when there is nothing
/// to fan out (a write wakes the task again: it must settle).
fn fan_out_all(state: &AppState) -> Result<(), StoreError> {
    let store = state.store();
    let needed = store.read(|r| {
        let cursor = r.webhook_cursor()?;
        let behind = r.last_event_id()?.is_some_and(|last| last > cursor);
        Ok(behind && r.webhooks()?.iter().any(|h| h.enabled))
    })?;
    if !needed {
        return Ok(());
    }
    loop {
        let at = now(state);
        if store.write(|w| fan_out(w, at))? {
            return Ok(());
        }
    }
}

/// Each enabled webhook's next delivery, if it has one.
fn heads(r: &dyn Reads) -> Result<Vec<(WebhookRecord, DeliveryRecord)>, StoreError> {
    let mut out = Vec::new();
    for hook in r.webhooks()?.into_iter().filter(|h| h.enabled) {
        if let Some(delivery) = r.next_delivery(&hook.id)? {
            out.push((hook, delivery));
        }
    }
    Ok(out)
}

// ---- the delivery task ----

/// Delivers the event log to the webhooks until `stop` (see the module's documentation).
/// Attempts in flight at `stop` are abandoned unrecorded: they are made again after a restart.
pub async fn run(state: AppState, mut stop: oneshot::Receiver<()>) {
    let client = match client() {
        Ok(client) => client,
        Err(err) => {
            tracing::error!(%err, "webhooks are not delivered: cannot build the HTTP client");
            let _ = stop.await;
            return;
        }
    };
    // Subscribed before the first read: a commit after it is never missed.
    let mut commits = state.commits();
    let mut in_flight = JoinSet::new();
    // The webhook of each attempt in flight (one each, so its deliveries keep their order).
    let mut busy: HashMap<tokio::task::Id, String> = HashMap::new();
    loop {
        // Marked seen before reading, so a commit after the read wakes `changed`.
        commits.borrow_and_update();
        let (next_due_ms, failed) = match schedule(&state, &client, &mut in_flight, &mut busy).await
        {
            Ok(next) => (next, false),
            Err(err) => {
                tracing::warn!(%err, "webhook delivery: cannot read the store; trying again");
                (None, true)
            }
        };
        let due = async {
            match next_due_ms {
                Some(at_ms) => state.clock().sleep_until(at_ms).await,
                None => std::future::pending().await,
            }
        };
        let retry = async {
            if failed {
                tokio::time::sleep(STORE_RETRY).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            Some(done) = in_flight.join_next_with_id() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(err) => {
                        tracing::error!(%err, "a webhook delivery attempt failed");
                        err.id()
                    }
                };
                busy.remove(&id);
            }
            changed = commits.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            () = due => {}
            () = retry => {}
        }
    }
    in_flight.shutdown().await;
}

fn client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(ATTEMPT_TIMEOUT)
        // A redirect fails the attempt (`Attempt::succeeded`): the URL is the admin's to fix.
        .redirect(reqwest::redirect::Policy::none())
        // Deliveries go where the URL says, whatever the daemon's environment holds.
        .no_proxy()
        .user_agent(concat!("earshot/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Fans out, then starts an attempt for each webhook whose next delivery is due and that has
/// none in flight. Returns when the soonest delivery not yet due is.
async fn schedule(
    state: &AppState,
    client: &reqwest::Client,
    in_flight: &mut JoinSet<()>,
    busy: &mut HashMap<tokio::task::Id, String>,
) -> Result<Option<u64>, String> {
    let heads = on_store(state, |s| {
        fan_out_all(s)?;
        s.store().read(heads)
    })
    .await?;
    let now_ms = state.clock().now_ms();
    let mut next_due_ms: Option<u64> = None;
    for (hook, delivery) in heads {
        if busy.values().any(|id| *id == hook.id) {
            continue;
        }
        let at_ms = delivery.next_attempt_at.map_or(0, from_unix_ms);
        if at_ms > now_ms {
            next_due_ms = Some(next_due_ms.map_or(at_ms, |n| n.min(at_ms)));
            continue;
        }
        // Full: a finished attempt wakes the loop, which comes back for this one.
        if in_flight.len() >= IN_FLIGHT_MAX {
            continue;
        }
        let webhook_id = hook.id.clone();
        let handle = in_flight.spawn(attempt(state.clone(), client.clone(), hook, delivery));
        busy.insert(handle.id(), webhook_id);
    }
    Ok(next_due_ms)
}

/// What an attempt led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    /// The delivery or its webhook went away meanwhile (deleted, disabled): nothing recorded.
    Gone,
    Delivered,
    Retry,
    GivenUp,
    /// Given up, and the webhook disabled after `failures` deliveries given up in a row.
    Disabled {
        failures: u32,
    },
}

/// One attempt of `delivery` to `hook`, and its outcome recorded.
async fn attempt(
    state: AppState,
    client: reqwest::Client,
    hook: WebhookRecord,
    delivery: DeliveryRecord,
) {
    let event_id = delivery.event_id;
    let event = on_store(&state, move |s| {
        s.store().read(|r| {
            let page = r.events_after(EventId(event_id.0.saturating_sub(1)), 1)?;
            Ok(page.into_iter().next().filter(|e| e.id == event_id))
        })
    })
    .await;
    let event = match event {
        Ok(event) => event,
        Err(err) => return store_failed(&hook, &err).await,
    };
    let (outcome, error) = match &event {
        Some(event) => send(&state, &client, &hook, event).await,
        // Events are never deleted: a bug, but it must not hold the webhook's queue forever.
        None => (
            Attempt::TransportError,
            Some("the event is not in the log".to_owned()),
        ),
    };
    let webhook_id = hook.id.clone();
    let recorded = on_store(&state, move |s| {
        let at = now(s);
        s.store()
            .write(|w| record(w, &webhook_id, event_id, outcome, error.clone(), at))
    })
    .await;
    let recorded = match recorded {
        Ok(recorded) => recorded,
        Err(err) => return store_failed(&hook, &err).await,
    };
    let metrics = state.metrics();
    match recorded {
        Recorded::Gone => {}
        Recorded::Delivered => metrics.webhook_delivery("delivered"),
        Recorded::Retry => metrics.webhook_delivery("failed"),
        Recorded::GivenUp => {
            metrics.webhook_delivery("given_up");
            tracing::info!(
                webhook = %hook.id,
                event = event_id.0,
                "webhook delivery given up after {} attempts",
                webhooks::MAX_ATTEMPTS
            );
        }
        Recorded::Disabled { failures } => {
            metrics.webhook_delivery("given_up");
            tracing::warn!(
                webhook = %hook.id,
                url = %redacted(&hook.url),
                failures,
                "webhook disabled: {failures} deliveries failed in a row; re-enable it with \
                 PATCH /v1/webhooks/{} {{\"enabled\": true}}",
                hook.id
            );
        }
    }
}

/// Runs `f` on the blocking pool (it takes the store's lock) with its writes deferred, then
/// syncs (`crate::store`, "Durability"), as an API request does: `f`'s writes are synced
/// together after it and what it read is durable when it returns, so an event is never sent
/// before it is durable. A failure, the store's or the pool's, as text for the log.
async fn on_store<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let out = crate::store::deferring(|| f(&state));
        state.store().sync()?;
        out
    })
    .await
    .map_err(|e| format!("the task failed: {e}"))?
    .map_err(|e| e.to_string())
}

/// Logs a store failure of an attempt, then holds the webhook for [`STORE_RETRY`]: its delivery
/// is still due, and must not be tried again at once (the store may refuse writes for a while).
async fn store_failed(hook: &WebhookRecord, err: &str) {
    tracing::warn!(%err, webhook = %hook.id, "webhook delivery: the store failed; trying again");
    tokio::time::sleep(STORE_RETRY).await;
}

/// POSTs `event` to `hook`, signed; the outcome and, for a failure, why.
async fn send(
    state: &AppState,
    client: &reqwest::Client,
    hook: &WebhookRecord,
    event: &Event,
) -> (Attempt, Option<String>) {
    let secret = match Secret::parse(&hook.secret) {
        Ok(secret) => secret,
        Err(err) => {
            return (
                Attempt::TransportError,
                Some(format!("the stored secret: {err}")),
            );
        }
    };
    let body = webhooks::body(event.id.0, &event.event_type, event.at.0, &event.payload);
    let message_id = webhooks::message_id(event.id.0);
    // The time of sending, not of the event: receivers refuse stale timestamps (replays).
    let timestamp_secs = state.clock().now_ms() / 1000;
    let signature = secret.sign(&message_id, timestamp_secs, &body);
    let sent = client
        .post(&hook.url)
        .header(header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &message_id)
        .header("webhook-timestamp", timestamp_secs.to_string())
        .header("webhook-signature", signature)
        .body(body)
        .send()
        .await;
    match sent {
        Ok(response) => {
            let status = response.status().as_u16();
            let outcome = Attempt::Status(status);
            let error = (!outcome.succeeded()).then(|| format!("HTTP {status}"));
            (outcome, error)
        }
        Err(err) => (Attempt::TransportError, Some(error_text(&err))),
    }
}

/// `url` without its user name and password, if it has any: for the log and the
/// `webhook.disabled` event, which other webhooks receive too.
fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            // Only fails for URLs that cannot have credentials, which then have none.
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.to_string()
        }
        Err(_) => String::new(),
    }
}

/// An error and its causes, on one bounded line ("error sending request …: connection
/// refused").
fn error_text(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    match text.char_indices().nth(ERROR_LEN_MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Records an attempt of the delivery of `event_id` to `webhook_id` made until `now`, and what
/// follows it, in one transaction.
fn record(
    w: &mut dyn Writes,
    webhook_id: &str,
    event_id: EventId,
    outcome: Attempt,
    error: Option<String>,
    now: UnixMs,
) -> Result<Recorded, StoreError> {
    let (Some(mut delivery), Some(mut hook)) =
        (w.delivery(event_id, webhook_id)?, w.webhook(webhook_id)?)
    else {
        return Ok(Recorded::Gone);
    };
    if delivery.next_attempt_at.is_none() || !hook.enabled {
        return Ok(Recorded::Gone);
    }
    delivery.attempts += 1;
    // The schema keeps real HTTP statuses only.
    delivery.last_status = match outcome {
        Attempt::Status(status @ 100..=599) => Some(status),
        _ => None,
    };
    delivery.last_error = error;
    let recorded = match webhooks::next(
        delivery.attempts,
        outcome,
        from_unix_ms(now),
        hook.consecutive_failures,
    ) {
        Next::Delivered => {
            delivery.next_attempt_at = None;
            if hook.consecutive_failures != 0 {
                hook.consecutive_failures = 0;
                w.update_webhook(&hook)?;
            }
            Recorded::Delivered
        }
        Next::RetryAt { at_ms } => {
            delivery.next_attempt_at = Some(to_unix_ms(at_ms));
            Recorded::Retry
        }
        Next::GiveUp => {
            delivery.next_attempt_at = None;
            hook.consecutive_failures += 1;
            w.update_webhook(&hook)?;
            Recorded::GivenUp
        }
        Next::Disable => {
            delivery.next_attempt_at = None;
            hook.consecutive_failures += 1;
            hook.enabled = false;
            hook.disabled_at = Some(now);
            w.update_webhook(&hook)?;
            w.update_delivery(&delivery)?;
            w.cancel_deliveries(webhook_id, DISABLED)?;
            w.append_event(&NewEvent {
                event_type: EVENT_DISABLED.to_owned(),
                payload: serde_json::json!({
                    "webhook_id": hook.id,
                    "url": redacted(&hook.url),
                    "consecutive_failures": hook.consecutive_failures,
                    "disabled_at_ms": now.0,
                    "last_event_id": event_id.0,
                    "last_status": delivery.last_status,
                    "last_error": delivery.last_error,
                }),
                // Admins only: it names an endpoint of the appliance's configuration.
                scope: EventScope::default(),
                at: now,
            })?;
            return Ok(Recorded::Disabled {
                failures: hook.consecutive_failures,
            });
        }
    };
    w.update_delivery(&delivery)?;
    Ok(recorded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_secrets_are_random() {
        let s = new_secret().unwrap();
        assert_eq!(Secret::parse(&s.expose()).unwrap(), s);
        assert_ne!(new_secret().unwrap(), s);
    }

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redacted("https://user:pw@example.com/hook"),
            "https://example.com/hook"
        );
        assert_eq!(redacted("https://example.com/h"), "https://example.com/h");
    }

    #[test]
    fn error_texts_carry_their_causes_and_are_bounded() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("error sending request")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(
            error_text(&refused),
            "error sending request: connection refused"
        );
        let long = Outer(std::io::Error::other("x".repeat(1000)));
        assert_eq!(error_text(&long).chars().count(), ERROR_LEN_MAX + 1);
    }
}
