//! RTP data packets (RFC 3550 §5.1) and RTP/RTCP demultiplexing on one port (RFC 5761 §4).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! |                           timestamp                           |
//! |           synchronization source (SSRC) identifier            |
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use core::slice::ChunksExact;

use super::{WireError, WireResult};

/// The only RTP/RTCP version in use (RFC 3550 §5.1).
pub const VERSION: u8 = 2;

/// A synchronization source identifier (RFC 3550 §3, §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ssrc(pub u32);

/// An RTP sequence number (RFC 3550 §5.1). It wraps; ordering on the raw value is only
/// meaningful within a window, which `media::seq` handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqNo(pub u16);

mod field {
    pub const FLAGS: usize = 0; // V(2) P(1) X(1) CC(4)
    pub const M_PT: usize = 1; // M(1) PT(7)
    pub const SEQUENCE: usize = 2;
    pub const TIMESTAMP: usize = 4;
    pub const SSRC: usize = 8;
    pub const CSRCS: usize = 12;
}

pub(super) fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(super) fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A list of 32-bit source identifiers: RTP CSRCs (RFC 3550 §5.1) or RTCP BYE SSRCs (§6.6).
#[derive(Debug, Clone)]
pub struct Ssrcs<'a>(ChunksExact<'a, u8>);

impl<'a> Ssrcs<'a> {
    /// Iterates over `bytes` in 4-byte big-endian identifiers; a trailing partial one is ignored.
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Ssrcs(bytes.chunks_exact(4))
    }
}

impl Iterator for Ssrcs<'_> {
    type Item = Ssrc;

    fn next(&mut self) -> Option<Ssrc> {
        self.0.next().map(|b| Ssrc(be_u32(b, 0)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for Ssrcs<'_> {}

/// A view of an RTP packet.
///
/// Panic contract: after [`RtpPacket::new_checked`] no accessor panics. A view made with
/// [`RtpPacket::new_unchecked`] may panic on a buffer that would not have passed the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RtpPacket<T> {
    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        RtpPacket { buffer }
    }

    /// Wraps a buffer holding exactly one RTP packet (a UDP payload), validating it once:
    ///
    /// - at least the 12-byte fixed header, else `Truncated`; version 2, else `BadVersion`;
    /// - the CSRC list and the header extension (RFC 3550 §5.3.1), if the X bit is set, within
    ///   the buffer, else `Truncated`;
    /// - if the P bit is set, a padding count of at least 1 (it counts itself) and no more than
    ///   the bytes after the header (RFC 3550 §5.1), else `BadPadding`.
    pub fn new_checked(buffer: T) -> WireResult<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    fn check(&self) -> WireResult<()> {
        let b = self.buffer.as_ref();
        if b.len() < RtpHeader::LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != VERSION {
            return Err(WireError::BadVersion);
        }
        let mut header_len = field::CSRCS + 4 * usize::from(self.csrc_count());
        if self.extension() {
            if b.len() < header_len + 4 {
                return Err(WireError::Truncated);
            }
            header_len += 4 + 4 * usize::from(be_u16(b, header_len + 2));
        }
        if b.len() < header_len {
            return Err(WireError::Truncated);
        }
        if self.padding() {
            let count = usize::from(b[b.len() - 1]);
            if count == 0 || count > b.len() - header_len {
                return Err(WireError::BadPadding);
            }
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The whole packet, header to padding.
    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS] >> 6
    }

    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & 0x20 != 0
    }

    /// Whether a header extension follows the CSRC list (RFC 3550 §5.3.1).
    pub fn extension(&self) -> bool {
        self.buffer.as_ref()[field::FLAGS] & 0x10 != 0
    }

    pub fn csrc_count(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS] & 0x0F
    }

    pub fn marker(&self) -> bool {
        self.buffer.as_ref()[field::M_PT] & 0x80 != 0
    }

    pub fn payload_type(&self) -> u8 {
        self.buffer.as_ref()[field::M_PT] & 0x7F
    }

    pub fn sequence_number(&self) -> SeqNo {
        SeqNo(be_u16(self.buffer.as_ref(), field::SEQUENCE))
    }

    /// The sampling instant of the first payload octet, in media clock units (RFC 3550 §5.1).
    pub fn timestamp(&self) -> u32 {
        be_u32(self.buffer.as_ref(), field::TIMESTAMP)
    }

    pub fn ssrc(&self) -> Ssrc {
        Ssrc(be_u32(self.buffer.as_ref(), field::SSRC))
    }

    /// The contributing sources, as many as [`RtpPacket::csrc_count`] says.
    pub fn csrcs(&self) -> Ssrcs<'_> {
        let end = field::CSRCS + 4 * usize::from(self.csrc_count());
        Ssrcs::new(&self.buffer.as_ref()[field::CSRCS..end])
    }

    /// The header extension as (profile-defined 16 bits, extension data), if the X bit is set
    /// (RFC 3550 §5.3.1). The data excludes the 4-byte extension header.
    pub fn extension_header(&self) -> Option<(u16, &[u8])> {
        if !self.extension() {
            return None;
        }
        let b = self.buffer.as_ref();
        let at = field::CSRCS + 4 * usize::from(self.csrc_count());
        Some((be_u16(b, at), &b[at + 4..self.header_len()]))
    }

    /// The length of the fixed header, the CSRC list and the header extension, in bytes.
    pub fn header_len(&self) -> usize {
        let at = field::CSRCS + 4 * usize::from(self.csrc_count());
        if self.extension() {
            at + 4 + 4 * usize::from(be_u16(self.buffer.as_ref(), at + 2))
        } else {
            at
        }
    }

    /// The padding at the end of the packet, including its count octet (RFC 3550 §5.1).
    pub fn padding_len(&self) -> usize {
        let b = self.buffer.as_ref();
        if self.padding() {
            usize::from(b[b.len() - 1])
        } else {
            0
        }
    }

    /// The payload, without the header and without padding.
    pub fn payload(&self) -> &[u8] {
        let b = self.buffer.as_ref();
        &b[self.header_len()..b.len() - self.padding_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> RtpPacket<T> {
    pub fn set_marker(&mut self, marker: bool) {
        let b = &mut self.buffer.as_mut()[field::M_PT];
        *b = (*b & 0x7F) | (u8::from(marker) << 7);
    }

    /// Sets the payload type; only its low 7 bits are kept, so the marker bit is never touched.
    pub fn set_payload_type(&mut self, payload_type: u8) {
        let b = &mut self.buffer.as_mut()[field::M_PT];
        *b = (*b & 0x80) | (payload_type & 0x7F);
    }

    pub fn set_sequence_number(&mut self, seq: SeqNo) {
        self.buffer.as_mut()[field::SEQUENCE..][..2].copy_from_slice(&seq.0.to_be_bytes());
    }

    pub fn set_timestamp(&mut self, timestamp: u32) {
        self.buffer.as_mut()[field::TIMESTAMP..][..4].copy_from_slice(&timestamp.to_be_bytes());
    }

    pub fn set_ssrc(&mut self, ssrc: Ssrc) {
        self.buffer.as_mut()[field::SSRC..][..4].copy_from_slice(&ssrc.0.to_be_bytes());
    }

    /// The payload, mutably, without the header and without padding.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, end) = (
            self.header_len(),
            self.as_bytes().len() - self.padding_len(),
        );
        &mut self.buffer.as_mut()[start..end]
    }
}

/// The fields of a minimal RTP header: version 2, no padding, no extension, no CSRCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence_number: SeqNo,
    pub timestamp: u32,
    pub ssrc: Ssrc,
}

impl RtpHeader {
    /// The length of the fixed header (RFC 3550 §5.1).
    pub const LEN: usize = 12;

    /// The fixed-header fields of a packet (its CSRCs, extension and padding are not kept).
    pub fn parse<T: AsRef<[u8]>>(packet: &RtpPacket<T>) -> Self {
        RtpHeader {
            marker: packet.marker(),
            payload_type: packet.payload_type(),
            sequence_number: packet.sequence_number(),
            timestamp: packet.timestamp(),
            ssrc: packet.ssrc(),
        }
    }

    /// Writes the 12-byte header at the start of `buf` and returns its length; the payload goes
    /// right after it. `Truncated` if `buf` is shorter than 12 bytes, `Malformed` if the payload
    /// type does not fit in 7 bits.
    pub fn emit(&self, buf: &mut [u8]) -> WireResult<usize> {
        if self.payload_type > 0x7F {
            return Err(WireError::Malformed);
        }
        let h = buf.get_mut(..Self::LEN).ok_or(WireError::Truncated)?;
        h[field::FLAGS] = VERSION << 6;
        h[field::M_PT] = (u8::from(self.marker) << 7) | self.payload_type;
        h[field::SEQUENCE..][..2].copy_from_slice(&self.sequence_number.0.to_be_bytes());
        h[field::TIMESTAMP..][..4].copy_from_slice(&self.timestamp.to_be_bytes());
        h[field::SSRC..][..4].copy_from_slice(&self.ssrc.0.to_be_bytes());
        Ok(Self::LEN)
    }
}

/// Whether a datagram on a multiplexed RTP/RTCP port is RTCP (RFC 5761 §4): its second octet,
/// the RTCP packet type, is 192..=223, which as an RTP marker bit and payload type would be the
/// payload types 64..=95 that RFC 5761 keeps free for this purpose.
pub fn is_rtcp(buf: &[u8]) -> bool {
    matches!(buf.get(1), Some(192..=223))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: [u8; 12] = [
        0x80, 0x08, 0x12, 0x34, // V=2, PT 8, seq 0x1234
        0xDE, 0xAD, 0xBE, 0xEF, // timestamp
        0x01, 0x02, 0x03, 0x04, // SSRC
    ];

    /// V=2 P X CC=2, M, PT 0; 2 CSRCs; extension 0xBEDE with one word; 3 payload bytes; 2 bytes
    /// of padding.
    fn full_packet() -> Vec<u8> {
        let mut p = vec![0xB2, 0x80, 0x00, 0x07, 0, 0, 0, 160, 0xAA, 0xBB, 0xCC, 0xDD];
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
        p.extend_from_slice(&[0xBE, 0xDE, 0x00, 0x01, 0x10, 0x20, 0x30, 0x40]);
        p.extend_from_slice(&[7, 8, 9]);
        p.extend_from_slice(&[0, 2]);
        p
    }

    #[test]
    fn minimal_packet() {
        let mut bytes = HEADER.to_vec();
        bytes.extend_from_slice(&[0xD5; 160]);
        let p = RtpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.version(), 2);
        assert!(!p.padding() && !p.extension() && !p.marker());
        assert_eq!(p.csrc_count(), 0);
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.sequence_number(), SeqNo(0x1234));
        assert_eq!(p.timestamp(), 0xDEAD_BEEF);
        assert_eq!(p.ssrc(), Ssrc(0x0102_0304));
        assert_eq!(p.csrcs().count(), 0);
        assert_eq!(p.extension_header(), None);
        assert_eq!((p.header_len(), p.padding_len()), (12, 0));
        assert_eq!(p.payload(), &[0xD5; 160][..]);
        assert_eq!(p.as_bytes(), &bytes[..]);
    }

    #[test]
    fn csrcs_extension_and_padding() {
        let bytes = full_packet();
        let p = RtpPacket::new_checked(&bytes).unwrap();
        assert!(p.padding() && p.extension() && p.marker());
        assert_eq!(p.payload_type(), 0);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), [Ssrc(1), Ssrc(2)]);
        assert_eq!(
            p.extension_header(),
            Some((0xBEDE, &[0x10, 0x20, 0x30, 0x40][..]))
        );
        assert_eq!(p.header_len(), 28);
        assert_eq!(p.padding_len(), 2);
        assert_eq!(p.payload(), &[7, 8, 9]);
    }

    #[test]
    fn empty_payload_all_padding() {
        let mut bytes = HEADER.to_vec();
        bytes[0] |= 0x20;
        bytes.extend_from_slice(&[0, 0, 0, 4]);
        let p = RtpPacket::new_checked(&bytes).unwrap();
        assert_eq!(p.payload(), &[] as &[u8]);
    }

    #[test]
    fn malformed() {
        let check = |b: &[u8]| RtpPacket::new_checked(b).map(|_| ());
        assert_eq!(check(&[]), Err(WireError::Truncated));
        assert_eq!(check(&HEADER[..11]), Err(WireError::Truncated));

        let mut v1 = HEADER;
        v1[0] = 0x40;
        assert_eq!(check(&v1), Err(WireError::BadVersion));

        let bytes = full_packet();
        // Cut inside the CSRC list, inside the extension header, inside the extension data.
        for cut in [16, 22, 24, 27] {
            assert_eq!(
                check(&bytes[..cut]),
                Err(WireError::Truncated),
                "cut at {cut}"
            );
        }
        let mut long_ext = bytes.clone();
        long_ext[22..24].copy_from_slice(&[0x00, 0x04]);
        assert_eq!(check(&long_ext), Err(WireError::Truncated));
        let mut many_csrcs = HEADER;
        many_csrcs[0] = 0x8F;
        assert_eq!(check(&many_csrcs), Err(WireError::Truncated));

        let mut zero_pad = bytes.clone();
        *zero_pad.last_mut().unwrap() = 0;
        assert_eq!(check(&zero_pad), Err(WireError::BadPadding));
        let mut long_pad = bytes.clone();
        *long_pad.last_mut().unwrap() = 6; // 5 bytes follow the header
        assert_eq!(check(&long_pad), Err(WireError::BadPadding));
        let mut header_only = HEADER;
        header_only[0] |= 0x20;
        assert_eq!(check(&header_only), Err(WireError::BadPadding));
    }

    #[test]
    fn setters() {
        let mut bytes = full_packet();
        let mut p = RtpPacket::new_checked(&mut bytes[..]).unwrap();
        p.set_marker(false);
        p.set_payload_type(0xFF);
        assert!(!p.marker());
        assert_eq!(p.payload_type(), 0x7F);
        p.set_marker(true);
        p.set_payload_type(8);
        p.set_sequence_number(SeqNo(65535));
        p.set_timestamp(u32::MAX - 1);
        p.set_ssrc(Ssrc(42));
        p.payload_mut().copy_from_slice(&[1, 2, 3]);
        assert!(p.marker());
        assert_eq!(p.payload_type(), 8);
        assert_eq!(p.sequence_number(), SeqNo(65535));
        assert_eq!(p.timestamp(), u32::MAX - 1);
        assert_eq!(p.ssrc(), Ssrc(42));
        assert_eq!(p.payload(), &[1, 2, 3]);
        assert_eq!(p.csrcs().collect::<Vec<_>>(), [Ssrc(1), Ssrc(2)]);
        assert_eq!(p.padding_len(), 2);
    }

    #[test]
    fn emit_round_trip() {
        let header = RtpHeader {
            marker: true,
            payload_type: 0,
            sequence_number: SeqNo(7),
            timestamp: 160,
            ssrc: Ssrc(0xCAFE_F00D),
        };
        let mut buf = [0xEE; 16];
        assert_eq!(header.emit(&mut buf), Ok(12));
        assert_eq!(
            &buf[..12],
            &[0x80, 0x80, 0, 7, 0, 0, 0, 160, 0xCA, 0xFE, 0xF0, 0x0D]
        );
        let p = RtpPacket::new_checked(&buf[..]).unwrap();
        assert_eq!(RtpHeader::parse(&p), header);
        assert_eq!(p.payload(), &[0xEE; 4]);

        assert_eq!(header.emit(&mut buf[..11]), Err(WireError::Truncated));
        let bad_pt = RtpHeader {
            payload_type: 128,
            ..header
        };
        assert_eq!(bad_pt.emit(&mut buf), Err(WireError::Malformed));
    }

    #[test]
    fn demultiplex() {
        assert!(!is_rtcp(&[]));
        assert!(!is_rtcp(&[0x80]));
        assert!(!is_rtcp(&HEADER));
        assert!(!is_rtcp(&[0x80, 0x80 | 8]));
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x80, 224]));
        for pt in 192..=223 {
            assert!(is_rtcp(&[0x80, pt]));
        }
        assert!(is_rtcp(&[0x81, 200, 0, 6]));
    }
}
