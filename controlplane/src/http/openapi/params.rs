//! The path, query and header parameters the operations name (`params(…)` of each handler's
//! `#[utoipa::path]`): one type per parameter, so each is described once. Schema-only types:
//! the handlers parse the real values (docs/api.md).

#![allow(dead_code, reason = "schema-only types: never built, only described")]

use utoipa::{IntoParams, ToSchema};

/// A call id.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct CallParam {
    /// A call id (`c_` and 16 lowercase hex digits); any other form is `404 not_found`.
    #[param(pattern = "^c_[0-9a-f]{16}$", example = "c_0123456789abcdef")]
    call: String,
}

/// Which leg of a call.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PartyName {
    Customer,
    Agent,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PartyParam {
    /// The leg: `customer` or `agent`.
    #[param(inline, example = "customer")]
    party: PartyName,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SupervisionParam {
    /// A supervision id (`s_` and 16 lowercase hex digits).
    #[param(pattern = "^s_[0-9a-f]{16}$", example = "s_0123456789abcdef")]
    supervision: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenParam {
    /// A token's id (`tok-…`), not the token itself.
    #[param(example = "tok-0123456789abcdef")]
    token: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GroupParam {
    /// A group id.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,64}$", example = "sales")]
    group: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct UserParam {
    /// A user id.
    #[param(pattern = "^[A-Za-z0-9._:@-]{1,64}$", example = "agent-7")]
    user: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct GrantParam {
    /// A grant's id.
    #[param(minimum = 1, example = 1)]
    grant: i64,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WebhookParam {
    /// A webhook's id (`wh_…`).
    #[param(example = "wh_0123456789abcdef")]
    webhook: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PlatformCallParam {
    /// The platform's call id, as reported to `POST /v1/ringing`.
    #[param(min_length = 1, max_length = 128, example = "sip-123")]
    call: String,
}

/// `GET /v1/calls`'s filter.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsParams {
    /// Only the calls anchored over the NG protocol under this call-id (the SIP Call-ID the
    /// softswitch's `rtpengine` module sent, docs/ng.md).
    #[param(
        required = false,
        min_length = 1,
        max_length = 256,
        example = "1-28469@127.0.0.1"
    )]
    ng_call_id: String,
}

/// A page of a log by id (docs/api.md, Paging).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Only records with an id above this (default 0). Page on with the last id.
    #[param(required = false, minimum = 0, maximum = 9223372036854775807_i64)]
    after: u64,
    /// At most this many records (1 to 1000, default 100).
    #[param(required = false, minimum = 1, maximum = 1000, default = 100)]
    limit: u32,
}

/// Where the event stream starts: after this id.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsAfterParam {
    /// Replay the events with an id above this, then continue live (`Last-Event-ID` wins when
    /// both are given; `0`: the whole log).
    #[param(required = false, minimum = 0, maximum = 9223372036854775807_i64)]
    after: u64,
}

/// Where a reconnecting event stream resumes (the Server-Sent Events header).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub struct LastEventIdParam {
    /// What a reconnecting `EventSource` sends: resume after this id.
    #[param(
        rename = "Last-Event-ID",
        required = false,
        minimum = 0,
        maximum = 9223372036854775807_i64
    )]
    last_event_id: u64,
}

/// Which members the console lists.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum MembersFilter {
    All,
    Ringing,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MembersParams {
    /// `all` (default) or `ringing` (members whose availability is `ringing`).
    #[param(inline, required = false)]
    filter: MembersFilter,
    /// Case-insensitive substring of the member's display name or number.
    #[param(required = false)]
    search: String,
}
