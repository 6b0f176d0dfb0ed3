//! Ethernet II frames (IEEE 802.3 with an EtherType): the link layer of AF_XDP frames.
//!
//! ```text
//! | destination MAC (6) | source MAC (6) | EtherType (2) | payload ...
//! ```

use super::{WireError, WireResult};

/// A 48-bit MAC address.
pub type MacAddr = [u8; 6];

/// EtherType of IPv4 (RFC 894).
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6 (RFC 2464).
pub const ETHERTYPE_IPV6: u16 = 0x86DD;

mod field {
    use core::ops::Range;
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
}

/// A view of an Ethernet II frame.
///
/// Panic contract: after [`EthernetFrame::new_checked`] no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// The length of the header: two addresses and the EtherType (no 802.1Q tag: the XDP
    /// program passes tagged frames to the kernel).
    pub const HEADER_LEN: usize = 14;

    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps a buffer holding at least the 14-byte header, else `Truncated`.
    pub fn new_checked(buffer: T) -> WireResult<Self> {
        if buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn dst_mac(&self) -> MacAddr {
        mac(&self.buffer.as_ref()[field::DESTINATION])
    }

    pub fn src_mac(&self) -> MacAddr {
        mac(&self.buffer.as_ref()[field::SOURCE])
    }

    pub fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }
}

impl<'a> EthernetFrame<&'a [u8]> {
    /// Everything after the header, including any link-layer padding of short frames.
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer[Self::HEADER_LEN..]
    }
}

fn mac(b: &[u8]) -> MacAddr {
    let mut m = [0; 6];
    m.copy_from_slice(b);
    m
}

/// Writes the 14-byte header at the start of `buf` and returns its length; `Truncated` if
/// `buf` is shorter.
pub fn emit(buf: &mut [u8], dst: MacAddr, src: MacAddr, ethertype: u16) -> WireResult<usize> {
    let h = buf
        .get_mut(..EthernetFrame::<&[u8]>::HEADER_LEN)
        .ok_or(WireError::Truncated)?;
    h[field::DESTINATION].copy_from_slice(&dst);
    h[field::SOURCE].copy_from_slice(&src);
    h[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    Ok(h.len())
}
