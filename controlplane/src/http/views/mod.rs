//! The API's answer shapes (docs/api.md): the app's use cases answer plain values (domain types,
//! snapshots), and these views render them as JSON, each with its OpenAPI schema derived beside
//! it (docs/design.md §9).

pub mod calls;
pub mod center;
