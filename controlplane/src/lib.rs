//! earshot's control plane: the HTTP API of `docs/api.md` over the data-plane engine, as a
//! library (docs/design.md §9.11) with the `earshotd` binary on top.
//!
//! The crate is in layers (docs/design.md §9), each importing only those below it:
//!
//! - [`domain`]: pure rules and types (ids, the supervision lifecycle, groups, agents, auth).
//! - [`app`]: the use cases over domain, store and engine; every business rule and write.
//! - [`http`]: the HTTP adapter (router, extractors, access guard, views, errors, OpenAPI).
//! - [`ng`]: the rtpengine NG adapter (docs/ng.md), a second adapter beside HTTP.
//! - [`store`]: durable state (SQLite), behind a repository shaped for PostgreSQL.
//! - [`daemon`]: the composition root; [`daemon::spawn`] runs a whole daemon in-process.
//! - [`config`], [`clock`], [`metrics`]: configuration, the time source, the gauges.

#![forbid(unsafe_code)]

pub mod app;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod ng;
pub mod store;

pub use app::state::AppState;
pub use config::Config;
pub use daemon::{RunningDaemon, spawn};
pub use http::api::app;
pub use http::error::ApiError;
