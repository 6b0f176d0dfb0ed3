//! earshot's control plane: the HTTP API of `docs/api.md` over the data-plane engine, as a
//! library (STYLE.md 11) with the `earshotd` binary on top.
//!
//! - [`clock`]: the time source (system clock; a manual one for tests).
//! - [`config`]: defaults, TOML file, `EARSHOT_*` environment, CLI flags; validation.
//! - [`domain`]: identifiers and request bodies parsed into domain types.
//! - [`state`]: calls and supervisions and their rules; the engine-event handling.
//! - [`api`]: `app(state) -> Router`, every route of the contract.
//! - [`error`]: the one HTTP error type.
//! - [`events`]: `GET /v1/events`, the event log as Server-Sent Events.
//! - [`metrics`]: the control plane's gauges in a per-daemon registry.
//! - [`daemon`]: [`daemon::spawn`] runs a whole daemon in-process.
//! - [`agents`], [`groups`]: the contact-center rules (SPEC §3) as pure state machines.
//! - [`center`], [`center_api`]: groups and agents over the store, and their routes.
//! - [`lifecycle`]: a supervision session's lifecycle and its alerts (SPEC §2), sans-IO.
//! - [`store`]: durable state (SQLite), behind a repository shaped for PostgreSQL.
//! - [`auth`], [`webhooks`]: tokens, roles and rights; webhook signing and retry policy.
//! - [`webhook_delivery`]: the `/v1/webhooks` routes and the task delivering the event log.
//! - [`access`]: access control at the HTTP boundary (principal, endpoint classes, rights).
//! - [`openapi`]: `GET /openapi.json`, the OpenAPI 3.1 document, and `GET /docs`, a page over it.

#![forbid(unsafe_code)]

pub mod access;
pub mod agents;
pub mod api;
pub mod auth;
pub mod center;
pub mod center_api;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod error;
pub mod events;
pub mod groups;
pub mod json;
pub mod lifecycle;
pub mod listener;
pub mod metrics;
pub mod openapi;
pub mod state;
pub mod store;
pub mod webhook_delivery;
pub mod webhooks;

pub use api::app;
pub use config::Config;
pub use daemon::{RunningDaemon, spawn};
pub use error::ApiError;
pub use state::AppState;
