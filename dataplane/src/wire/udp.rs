//! UDP datagrams (RFC 768) and their checksum over the IPv4 or IPv6 pseudo-header (RFC 768,
//! RFC 8200 §8.1).
//!
//! ```text
//! | source port (2) | destination port (2) | length (2) | checksum (2) | payload ...
//! ```

use std::net::IpAddr;

use super::ip::PROTOCOL_UDP;
use super::{WireError, WireResult, checksum};

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A view of a UDP datagram.
///
/// Panic contract: after [`UdpDatagram::new_checked`] no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// The length of the header.
    pub const HEADER_LEN: usize = 8;

    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpDatagram { buffer }
    }

    /// Wraps a buffer holding a UDP datagram (the IP payload), validating it once: the 8-byte
    /// header, else `Truncated`; a length field of at least 8, else `BadLength`; the length
    /// within the buffer, else `Truncated`. The checksum is not checked here (see
    /// [`Self::verify_checksum`]).
    pub fn new_checked(buffer: T) -> WireResult<Self> {
        let datagram = Self::new_unchecked(buffer);
        let len = datagram.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let claimed = usize::from(datagram.len());
        if claimed < Self::HEADER_LEN {
            return Err(WireError::BadLength);
        }
        if len < claimed {
            return Err(WireError::Truncated);
        }
        Ok(datagram)
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        be_u16(self.buffer.as_ref(), 0)
    }

    pub fn dst_port(&self) -> u16 {
        be_u16(self.buffer.as_ref(), 2)
    }

    /// The length field: header and payload, in bytes.
    #[allow(clippy::len_without_is_empty)] // a datagram always has its 8-byte header
    pub fn len(&self) -> u16 {
        be_u16(self.buffer.as_ref(), 4)
    }

    pub fn checksum(&self) -> u16 {
        be_u16(self.buffer.as_ref(), 6)
    }

    /// Whether the checksum verifies over the pseudo-header of `src` → `dst`. A zero
    /// checksum means "none" over IPv4 (RFC 768) and verifies; over IPv6 it is invalid
    /// (RFC 8200 §8.1). `false` if the addresses are of different families.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        if self.checksum() == 0 {
            return src.is_ipv4() && dst.is_ipv4();
        }
        let Some(pseudo) = pseudo_header_sum(src, dst, self.len()) else {
            return false;
        };
        let datagram = &self.buffer.as_ref()[..usize::from(self.len())];
        checksum::finish(pseudo + checksum::sum(&[datagram])) == 0
    }
}

impl<'a> UdpDatagram<&'a [u8]> {
    /// The payload, up to the length field (whatever follows it is not the datagram's).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[Self::HEADER_LEN..usize::from(self.len())]
    }
}

/// The checksum sum of the pseudo-header of a UDP datagram of `udp_len` bytes from `src` to
/// `dst` (RFC 768 for IPv4, RFC 8200 §8.1 for IPv6); `None` if the families differ.
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, udp_len: u16) -> Option<u32> {
    Some(match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => checksum::sum(&[
            &s.octets(),
            &d.octets(),
            &[0, PROTOCOL_UDP],
            &udp_len.to_be_bytes(),
        ]),
        (IpAddr::V6(s), IpAddr::V6(d)) => checksum::sum(&[
            &s.octets(),
            &d.octets(),
            &u32::from(udp_len).to_be_bytes(),
            &[0, 0, 0, PROTOCOL_UDP],
        ]),
        _ => return None,
    })
}

/// Writes the 8-byte header of a datagram carrying `payload` from `src` to `dst`, its
/// checksum computed over `payload` (which the caller places right after the header), and
/// returns its length: `Truncated` if `buf` is shorter, `BadLength` if the datagram would
/// exceed 65,535 bytes, `Malformed` if the addresses are of different families.
pub fn emit(
    buf: &mut [u8],
    src: std::net::SocketAddr,
    dst: std::net::SocketAddr,
    payload: &[u8],
) -> WireResult<usize> {
    const LEN: usize = UdpDatagram::<&[u8]>::HEADER_LEN;
    let udp_len = u16::try_from(LEN + payload.len()).map_err(|_| WireError::BadLength)?;
    let pseudo = pseudo_header_sum(src.ip(), dst.ip(), udp_len).ok_or(WireError::Malformed)?;
    let h = buf.get_mut(..LEN).ok_or(WireError::Truncated)?;
    h[0..2].copy_from_slice(&src.port().to_be_bytes());
    h[2..4].copy_from_slice(&dst.port().to_be_bytes());
    h[4..6].copy_from_slice(&udp_len.to_be_bytes());
    h[6..8].fill(0);
    let mut csum = checksum::finish(pseudo + checksum::sum(&[h, payload]));
    if csum == 0 {
        csum = 0xFFFF; // RFC 768: a computed zero is sent as all ones
    }
    h[6..8].copy_from_slice(&csum.to_be_bytes());
    Ok(LEN)
}
