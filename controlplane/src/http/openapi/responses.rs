//! The error responses many operations share (`response = …` in their `#[utoipa::path]`):
//! each with the codes it may carry (`x-error-codes`, docs/api.md, Errors).

use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{PartialSchema, ToResponse, ToSchema};

use super::ErrorBody;

/// An error response: `description`, the [`ErrorBody`] and its codes.
fn error(description: &str, codes: &[&str]) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                .build(),
        )
        .extensions(Some(
            ExtensionsBuilder::new()
                .add("x-error-codes", serde_json::json!(codes))
                .build(),
        ))
}

macro_rules! shared_response {
    ($(#[$doc:meta])* $name:ident, $description:expr, [$($code:expr),+ $(,)?]) => {
        $(#[$doc])*
        pub struct $name;

        impl<'s> ToResponse<'s> for $name {
            fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
                (stringify!($name), error($description, &[$($code),+]).build().into())
            }
        }
    };
}

/// `401`: no token, or one the appliance does not know; with the RFC 6750 challenge.
pub struct Unauthorized;

impl<'s> ToResponse<'s> for Unauthorized {
    fn response() -> (&'s str, RefOr<utoipa::openapi::Response>) {
        let response = error(
            "`unauthenticated`: no `Authorization` header, or not `Bearer <token>`; \
             `invalid_token`: a token the appliance does not know, or one that was revoked.",
            &["unauthenticated", "invalid_token"],
        )
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .description(Some("`Bearer`, or `Bearer error=\"invalid_token\"`."))
                .schema(<String as PartialSchema>::schema())
                .build(),
        );
        ("Unauthorized", response.build().into())
    }
}

shared_response!(
    /// `413`: the body is over 64 KiB.
    PayloadTooLarge,
    "`payload_too_large`: the body exceeds 64 KiB.",
    ["payload_too_large"]
);
shared_response!(
    /// `415`: the body is not JSON.
    UnsupportedMediaType,
    "`unsupported_media_type`: the body is not sent as `application/json`.",
    ["unsupported_media_type"]
);
shared_response!(
    /// `500`: the appliance's own fault.
    Internal,
    "`internal`: a fault of the appliance itself (never the request's).",
    ["internal"]
);
shared_response!(
    /// `503`: no room for another call's media now.
    Unavailable,
    "`ports_exhausted`: no free media port; `load_limit`: the data plane is at its configured \
     call capacity; `engine_busy`: the data plane's command ring is full (retry).",
    ["ports_exhausted", "load_limit", "engine_busy"]
);
shared_response!(
    /// `403` of an admin endpoint (docs/design.md §4).
    ForbiddenAdminOnly,
    "`forbidden`: the token's role may not call this endpoint (admin only).",
    ["forbidden"]
);
shared_response!(
    /// `403` of a softswitch endpoint (docs/design.md §4).
    ForbiddenAdminOrSoftswitch,
    "`forbidden`: the token's role may not call this endpoint (admin, softswitch only).",
    ["forbidden"]
);
shared_response!(
    /// `403` of a console endpoint, which acts as the token's user (docs/design.md §4).
    ForbiddenConsole,
    "`forbidden`: the token's role may not call this endpoint (admin, supervisor only); \
     `forbidden`: the token names no user (this endpoint acts as one).",
    ["forbidden"]
);
shared_response!(
    /// `403` of an agent's own endpoint (docs/design.md §4).
    ForbiddenAgentSelf,
    "`forbidden`: the token's role may not call this endpoint (agent only); `forbidden`: the \
     token names no user.",
    ["forbidden"]
);
shared_response!(
    /// `400` of a body the parser refuses (docs/api.md, Bodies).
    InvalidBody,
    "`invalid_body`: malformed JSON, not an object, an unknown field, a wrong type, a missing required field or a value out of range.",
    ["invalid_body"]
);
shared_response!(
    /// `400` of a path whose user segment is not a user id (docs/design.md §4).
    InvalidUserId,
    "`invalid_value`: not a user id.",
    ["invalid_value"]
);
shared_response!(
    /// `404` of a supervision path.
    SupervisionNotFound,
    "`not_found`: no such supervision.",
    ["not_found"]
);
