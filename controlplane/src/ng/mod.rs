//! The rtpengine NG protocol adapter (docs/ng.md): a second adapter beside [`crate::http`] over the
//! same application layer (docs/design.md §9).

pub mod listener;
