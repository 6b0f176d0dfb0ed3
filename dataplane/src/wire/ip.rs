//! IPv4 (RFC 791) and IPv6 (RFC 8200) headers: views of the fixed headers the media path
//! reads, and emitters of the headers it sends (no options, no extension headers).
//!
//! ```text
//! IPv4: |V=4|IHL| TOS | total length | id | flags+frag | TTL | proto | checksum | src | dst |
//! IPv6: |V=6| class+flow | payload length | next header | hop limit | src (16) | dst (16) |
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{WireError, WireResult, checksum};

/// The IP protocol number of UDP (RFC 768), in IPv4's protocol and IPv6's next header.
pub const PROTOCOL_UDP: u8 = 17;
/// The hop limit (TTL) of what we send: Linux's default.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// A view of an IPv4 packet.
///
/// Panic contract: after [`Ipv4Packet::new_checked`] no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// The length of a header without options.
    pub const MIN_HEADER_LEN: usize = 20;

    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer holding an IPv4 packet (possibly followed by link-layer padding),
    /// validating it once: at least 20 bytes, else `Truncated`; version 4, else `BadVersion`;
    /// a header length (IHL) of at least 20 bytes and a total length of at least the header,
    /// else `BadLength`; the header and the total length within the buffer, else `Truncated`.
    /// The header checksum is not checked here (see [`Self::verify_checksum`]).
    pub fn new_checked(buffer: T) -> WireResult<Self> {
        let packet = Self::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < Self::MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if packet.version() != 4 {
            return Err(WireError::BadVersion);
        }
        let (header, total) = (packet.header_len(), usize::from(packet.total_len()));
        if header < Self::MIN_HEADER_LEN || total < header {
            return Err(WireError::BadLength);
        }
        if len < total {
            return Err(WireError::Truncated);
        }
        Ok(packet)
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The header length in bytes, options included (IHL × 4).
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[0] & 0x0F) * 4
    }

    /// The length of the packet, header and payload, in bytes.
    pub fn total_len(&self) -> u16 {
        be_u16(self.buffer.as_ref(), 2)
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[8]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[9]
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }

    /// Whether the header checksum verifies (RFC 791 §3.1).
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(checksum::sum(&[&self.buffer.as_ref()[..self.header_len()]])) == 0
    }
}

impl<'a> Ipv4Packet<&'a [u8]> {
    /// The payload: after the header, up to the total length (link-layer padding excluded).
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[self.header_len()..usize::from(self.total_len())]
    }
}

/// Writes a 20-byte IPv4 header (no options, don't fragment, its checksum filled in) for a
/// payload of `payload_len` bytes and returns its length: `Truncated` if `buf` is shorter,
/// `BadLength` if the packet would exceed 65,535 bytes.
pub fn emit_ipv4(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    protocol: u8,
    payload_len: usize,
) -> WireResult<usize> {
    const LEN: usize = Ipv4Packet::<&[u8]>::MIN_HEADER_LEN;
    let total = u16::try_from(LEN + payload_len).map_err(|_| WireError::BadLength)?;
    let h = buf.get_mut(..LEN).ok_or(WireError::Truncated)?;
    h.fill(0);
    h[0] = 0x45; // version 4, IHL 5 words
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[6] = 0x40; // don't fragment
    h[8] = DEFAULT_HOP_LIMIT;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src.octets());
    h[16..20].copy_from_slice(&dst.octets());
    let csum = checksum::finish(checksum::sum(&[h]));
    h[10..12].copy_from_slice(&csum.to_be_bytes());
    Ok(LEN)
}

/// A view of an IPv6 packet's fixed header and payload.
///
/// Panic contract: after [`Ipv6Packet::new_checked`] no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// The length of the fixed header (RFC 8200 §3).
    pub const HEADER_LEN: usize = 40;

    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer holding an IPv6 packet (possibly followed by link-layer padding),
    /// validating it once: the 40-byte header, else `Truncated`; version 6, else
    /// `BadVersion`; the payload length within the buffer, else `Truncated`.
    pub fn new_checked(buffer: T) -> WireResult<Self> {
        let packet = Self::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if packet.version() != 6 {
            return Err(WireError::BadVersion);
        }
        if len < Self::HEADER_LEN + usize::from(packet.payload_len()) {
            return Err(WireError::Truncated);
        }
        Ok(packet)
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// The length of what follows the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        be_u16(self.buffer.as_ref(), 4)
    }

    /// The type of the header after the fixed one: an upper-layer protocol or an extension.
    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[6]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[7]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr16(&self.buffer.as_ref()[8..24]))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(addr16(&self.buffer.as_ref()[24..40]))
    }
}

impl<'a> Ipv6Packet<&'a [u8]> {
    /// The payload: after the fixed header, up to the payload length.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[Self::HEADER_LEN..Self::HEADER_LEN + usize::from(self.payload_len())]
    }
}

fn addr16(b: &[u8]) -> [u8; 16] {
    let mut a = [0; 16];
    a.copy_from_slice(b);
    a
}

/// Writes a 40-byte IPv6 header (traffic class and flow label zero) for a payload of
/// `payload_len` bytes and returns its length: `Truncated` if `buf` is shorter, `BadLength`
/// if the payload exceeds 65,535 bytes (no jumbograms).
pub fn emit_ipv6(
    buf: &mut [u8],
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    payload_len: usize,
) -> WireResult<usize> {
    const LEN: usize = Ipv6Packet::<&[u8]>::HEADER_LEN;
    let payload_len = u16::try_from(payload_len).map_err(|_| WireError::BadLength)?;
    let h = buf.get_mut(..LEN).ok_or(WireError::Truncated)?;
    h.fill(0);
    h[0] = 0x60; // version 6
    h[4..6].copy_from_slice(&payload_len.to_be_bytes());
    h[6] = next_header;
    h[7] = DEFAULT_HOP_LIMIT;
    h[8..24].copy_from_slice(&src.octets());
    h[24..40].copy_from_slice(&dst.octets());
    Ok(LEN)
}
