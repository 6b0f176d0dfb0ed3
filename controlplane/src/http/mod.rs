//! The HTTP adapter: router, extractors, access guard, views, the one `ApiError`, OpenAPI
//! (docs/design.md §9).

pub mod access;
pub mod agents;
pub mod alerts;
pub mod api;
pub mod bodies;
pub mod center;
pub mod console;
pub mod error;
pub mod events;
pub mod extract;
pub mod groups;
pub mod json;
pub mod listener;
pub mod openapi;
pub mod tokens;
pub mod users;
pub mod views;
pub mod webhooks;
