//! The use cases over domain, store and engine: every business rule and every write
//! (docs/design.md §9). It knows no HTTP.

pub mod audit;
pub mod center;
pub mod feed;
pub mod rights;
pub mod state;
pub mod tokens;
pub mod webhooks;
