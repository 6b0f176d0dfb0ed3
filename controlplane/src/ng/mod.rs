//! The rtpengine NG protocol adapter (docs/ng.md): a second adapter beside HTTP over the same
//! application layer (docs/design.md §9.11).

pub mod sdp;
