//! The API's answer shapes (docs/api.md), rendered from what the use cases return.

pub mod calls;
