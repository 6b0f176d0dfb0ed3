//! The rtpengine NG protocol adapter (docs/ng.md): a second adapter beside HTTP over the same
//! application layer (docs/design.md §9.11), so Kamailio's and OpenSIPS's `rtpengine` modules
//! anchor calls on earshot unmodified. Like `http`, it never imports `store`.

pub mod bencode;
pub mod message;
pub mod sdp;
