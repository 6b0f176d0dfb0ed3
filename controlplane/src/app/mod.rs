//! The use cases over domain, store and engine: every business rule and every write
//! (docs/design.md §9). It knows no HTTP.

pub mod center;
pub mod engine;
pub mod feed;
pub mod random;
pub mod state;
pub mod webhooks;
