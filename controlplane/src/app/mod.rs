//! The use cases over domain, store and engine: every business rule and every write
//! (docs/design.md §9). It knows no HTTP.

pub mod anchors;
pub mod audit;
pub mod calls;
pub mod center;
pub mod engine;
pub mod events;
pub mod feed;
pub mod history;
pub mod pump;
pub mod random;
pub mod records;
pub mod recovery;
pub mod rights;
pub mod snapshots;
pub mod state;
pub mod storage;
pub mod supervisions;
pub mod tokens;
pub mod webhooks;

#[cfg(test)]
mod anchor_tests;
#[cfg(test)]
mod tests;
