//! Pure rules and types: no I/O, no clock reads, no HTTP or store types (docs/design.md §9).

pub mod agents;
pub mod anchor;
pub mod audit;
pub mod auth;
pub mod call;
pub mod groups;
pub mod ids;
pub mod lifecycle;
pub mod log;
pub mod webhooks;
