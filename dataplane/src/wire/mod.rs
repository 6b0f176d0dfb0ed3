//! Zero-copy views over the bytes of the media protocols (docs/design.md §9.2).
//!
//! Every view borrows its buffer (`T: AsRef<[u8]>`), validates lengths once in `new_checked`,
//! and has cheap accessors after that. Panic contract: accessors never panic on a view built by
//! `new_checked`; `new_unchecked` exists only where the caller has already validated the buffer.

pub mod checksum;
pub mod ethernet;
pub mod frame;
pub mod g711;
pub mod ip;
pub mod rtcp;
pub mod rtp;
pub mod telephone_event;
pub mod udp;

/// Why a buffer is not a valid packet of the expected kind. Tiny and `Copy`: decoders run per
/// packet and an error is counted and dropped, never allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the fixed header or than a length field says.
    #[error("truncated packet")]
    Truncated,
    /// The version field is not 2 (RFC 3550 §5.1).
    #[error("unsupported RTP/RTCP version")]
    BadVersion,
    /// A length or count field is inconsistent with the buffer.
    #[error("inconsistent length field")]
    BadLength,
    /// The padding bit is set but the padding count is zero or exceeds the payload.
    #[error("invalid padding")]
    BadPadding,
    /// A field holds a value the protocol forbids.
    #[error("malformed field")]
    Malformed,
    /// A well-formed packet of a protocol the media path does not carry (not UDP over IPv4
    /// or IPv6, e.g. ARP, TCP, an IPv6 extension header).
    #[error("unsupported protocol")]
    Unsupported,
}

pub type WireResult<T> = Result<T, WireError>;
