//! RTCP (RFC 3550 §6): the common header of one packet, compound packets (§6.1, §A.2), typed
//! views of SR, RR, SDES and BYE (§6.4–§6.6), and emitters for them.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|   count |      PT       |   length (32-bit words - 1)   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Error classes: `Truncated` when a length field claims more than the buffer holds;
//! `BadLength` when a count or inner length disagrees with the packet's own length field.

use core::iter::FusedIterator;
use core::slice::ChunksExact;

use super::rtp::{Ssrc, Ssrcs, VERSION, be_u16, be_u32};
use super::{WireError, WireResult};

/// The common header: version, padding, count, packet type, length (RFC 3550 §6.4.1).
const HEADER_LEN: usize = 4;
/// The largest report count, SDES chunk count or BYE source count: a 5-bit field.
pub const MAX_COUNT: usize = 31;
/// The SDES item type of the canonical name (RFC 3550 §6.5.1).
pub const SDES_CNAME: u8 = 1;

/// RTCP packet types (RFC 3550 §12.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RtcpType {
    /// SR, 200 (§6.4.1).
    SenderReport,
    /// RR, 201 (§6.4.2).
    ReceiverReport,
    /// SDES, 202 (§6.5).
    SourceDescription,
    /// BYE, 203 (§6.6).
    Goodbye,
    /// APP, 204 (§6.7).
    App,
    /// Any other type (feedback, XR, ...), carried through unparsed.
    Other(u8),
}

impl From<u8> for RtcpType {
    fn from(pt: u8) -> Self {
        match pt {
            200 => RtcpType::SenderReport,
            201 => RtcpType::ReceiverReport,
            202 => RtcpType::SourceDescription,
            203 => RtcpType::Goodbye,
            204 => RtcpType::App,
            other => RtcpType::Other(other),
        }
    }
}

impl From<RtcpType> for u8 {
    fn from(pt: RtcpType) -> u8 {
        match pt {
            RtcpType::SenderReport => 200,
            RtcpType::ReceiverReport => 201,
            RtcpType::SourceDescription => 202,
            RtcpType::Goodbye => 203,
            RtcpType::App => 204,
            RtcpType::Other(other) => other,
        }
    }
}

/// A view of one RTCP packet, possibly at the start of a compound packet.
///
/// The packet is the first [`RtcpPacket::len_bytes`] bytes of the buffer; bytes after them
/// (the rest of a compound) are ignored. Panic contract: after [`RtcpPacket::new_checked`] no
/// accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> RtcpPacket<T> {
    /// Wraps a buffer without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        RtcpPacket { buffer }
    }

    /// Wraps a buffer starting with an RTCP packet, validating it once: a 4-byte header, else
    /// `Truncated`; version 2, else `BadVersion`; the length field within the buffer, else
    /// `Truncated`; if the P bit is set, a padding count of at least 1 and within the packet
    /// body (RFC 3550 §6.4.1), else `BadPadding`.
    pub fn new_checked(buffer: T) -> WireResult<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    fn check(&self) -> WireResult<()> {
        let b = self.buffer.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if self.version() != VERSION {
            return Err(WireError::BadVersion);
        }
        let len = self.len_bytes();
        if b.len() < len {
            return Err(WireError::Truncated);
        }
        if self.padding() {
            let count = usize::from(b[len - 1]);
            if count == 0 || count > len - HEADER_LEN {
                return Err(WireError::BadPadding);
            }
        }
        Ok(())
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// The bytes of this packet, header to padding.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.len_bytes()]
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 6
    }

    pub fn padding(&self) -> bool {
        self.buffer.as_ref()[0] & 0x20 != 0
    }

    /// The 5-bit count: report blocks (RC) in SR/RR, chunks or sources (SC) in SDES/BYE.
    pub fn count(&self) -> u8 {
        self.buffer.as_ref()[0] & 0x1F
    }

    pub fn packet_type(&self) -> RtcpType {
        RtcpType::from(self.buffer.as_ref()[1])
    }

    /// The length of this packet including header and padding: (length field + 1) × 4 bytes.
    pub fn len_bytes(&self) -> usize {
        (usize::from(be_u16(self.buffer.as_ref(), 2)) + 1) * 4
    }

    /// The padding at the end of the packet, including its count octet.
    pub fn padding_len(&self) -> usize {
        if self.padding() {
            usize::from(self.buffer.as_ref()[self.len_bytes() - 1])
        } else {
            0
        }
    }

    /// The bytes after the common header, without padding.
    pub fn body(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..self.len_bytes() - self.padding_len()]
    }
}

impl<'a> RtcpPacket<&'a [u8]> {
    /// [`RtcpPacket::body`] with the lifetime of the buffer rather than of the view.
    fn body_of_buffer(&self) -> &'a [u8] {
        &self.buffer[HEADER_LEN..self.len_bytes() - self.padding_len()]
    }

    /// The body if the packet has type `expected`, else `Malformed`.
    fn body_if(&self, expected: RtcpType) -> WireResult<&'a [u8]> {
        if self.packet_type() == expected {
            Ok(self.body_of_buffer())
        } else {
            Err(WireError::Malformed)
        }
    }
}

/// The packets of a compound RTCP packet (RFC 3550 §6.1), in order. After the first error it
/// yields that error once, then ends.
#[derive(Debug, Clone)]
pub struct CompoundIter<'a> {
    rest: &'a [u8],
}

/// Iterates over the packets of a compound RTCP packet.
pub fn compound(buf: &[u8]) -> CompoundIter<'_> {
    CompoundIter { rest: buf }
}

impl<'a> Iterator for CompoundIter<'a> {
    type Item = WireResult<RtcpPacket<&'a [u8]>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match RtcpPacket::new_checked(self.rest) {
            Ok(packet) => {
                let (this, rest) = self.rest.split_at(packet.len_bytes());
                self.rest = rest;
                Some(Ok(RtcpPacket::new_unchecked(this)))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

impl FusedIterator for CompoundIter<'_> {}

/// Applies the header checks of RFC 3550 §A.2 to a compound packet: it is not empty, every
/// packet is valid version 2, the first is an SR or RR (else `Malformed`), only the last has
/// padding (else `BadPadding`), and the lengths add up to the buffer exactly. Beyond §A.2, the
/// count of every SR, RR, SDES and BYE must fit its length (else `BadLength`): a report that
/// claims more blocks, chunks or sources than it carries is as malformed as a bad length
/// field, and is refused rather than accepted as a report.
///
/// Reduced-size RTCP (RFC 5506), whose first packet may be of any type, is not accepted.
pub fn validate_compound(buf: &[u8]) -> WireResult<()> {
    if buf.is_empty() {
        return Err(WireError::Truncated);
    }
    let mut padded = false;
    for (i, packet) in compound(buf).enumerate() {
        let packet = packet?;
        let report = matches!(
            packet.packet_type(),
            RtcpType::SenderReport | RtcpType::ReceiverReport
        );
        if i == 0 && !report {
            return Err(WireError::Malformed);
        }
        // The previous packet had padding, yet it was not the last.
        if padded {
            return Err(WireError::BadPadding);
        }
        padded = packet.padding();
    }
    // The §A.2 checks passed, so every packet parses; now each one's own count.
    for packet in compound(buf).flatten() {
        match packet.packet_type() {
            RtcpType::SenderReport => SenderReport::new(&packet).map(drop)?,
            RtcpType::ReceiverReport => ReceiverReport::new(&packet).map(drop)?,
            RtcpType::SourceDescription => SourceDescription::new(&packet).map(drop)?,
            RtcpType::Goodbye => Goodbye::new(&packet).map(drop)?,
            RtcpType::App | RtcpType::Other(_) => {}
        }
    }
    Ok(())
}

/// Length of a report block (RFC 3550 §6.4.1).
const REPORT_BLOCK_LEN: usize = 24;
/// SSRC of sender plus sender info (RFC 3550 §6.4.1).
const SENDER_INFO_LEN: usize = 24;

/// A sender report, SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderReport<'a> {
    body: &'a [u8],
    count: u8,
}

impl<'a> SenderReport<'a> {
    /// `Malformed` unless the packet is an SR; `BadLength` unless the sender info and RC report
    /// blocks fit in it.
    pub fn new(packet: &RtcpPacket<&'a [u8]>) -> WireResult<Self> {
        let body = packet.body_if(RtcpType::SenderReport)?;
        let count = packet.count();
        if body.len() < SENDER_INFO_LEN + REPORT_BLOCK_LEN * usize::from(count) {
            return Err(WireError::BadLength);
        }
        Ok(SenderReport { body, count })
    }

    pub fn ssrc(&self) -> Ssrc {
        Ssrc(be_u32(self.body, 0))
    }

    /// The wallclock time of this report, NTP format: seconds since 1900 in the high 32 bits,
    /// fraction in the low 32 (RFC 3550 §4).
    pub fn ntp_timestamp(&self) -> u64 {
        (u64::from(be_u32(self.body, 4)) << 32) | u64::from(be_u32(self.body, 8))
    }

    /// The same instant in the RTP media clock.
    pub fn rtp_timestamp(&self) -> u32 {
        be_u32(self.body, 12)
    }

    pub fn packet_count(&self) -> u32 {
        be_u32(self.body, 16)
    }

    pub fn octet_count(&self) -> u32 {
        be_u32(self.body, 20)
    }

    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        ReportBlocks::new(&self.body[SENDER_INFO_LEN..], self.count)
    }

    /// Bytes after the report blocks: a profile-specific extension, if any (RFC 3550 §6.4.1).
    pub fn profile_extension(&self) -> &'a [u8] {
        &self.body[SENDER_INFO_LEN + REPORT_BLOCK_LEN * usize::from(self.count)..]
    }
}

/// A receiver report, RR (RFC 3550 §6.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverReport<'a> {
    body: &'a [u8],
    count: u8,
}

impl<'a> ReceiverReport<'a> {
    /// `Malformed` unless the packet is an RR; `BadLength` unless the reporter's SSRC and RC
    /// report blocks fit in it.
    pub fn new(packet: &RtcpPacket<&'a [u8]>) -> WireResult<Self> {
        let body = packet.body_if(RtcpType::ReceiverReport)?;
        let count = packet.count();
        if body.len() < 4 + REPORT_BLOCK_LEN * usize::from(count) {
            return Err(WireError::BadLength);
        }
        Ok(ReceiverReport { body, count })
    }

    pub fn ssrc(&self) -> Ssrc {
        Ssrc(be_u32(self.body, 0))
    }

    pub fn report_blocks(&self) -> ReportBlocks<'a> {
        ReportBlocks::new(&self.body[4..], self.count)
    }

    /// Bytes after the report blocks: a profile-specific extension, if any (RFC 3550 §6.4.2).
    pub fn profile_extension(&self) -> &'a [u8] {
        &self.body[4 + REPORT_BLOCK_LEN * usize::from(self.count)..]
    }
}

/// The report blocks of an SR or RR.
#[derive(Debug, Clone)]
pub struct ReportBlocks<'a>(ChunksExact<'a, u8>);

impl<'a> ReportBlocks<'a> {
    fn new(blocks_and_rest: &'a [u8], count: u8) -> Self {
        let len = (REPORT_BLOCK_LEN * usize::from(count)).min(blocks_and_rest.len());
        ReportBlocks(blocks_and_rest[..len].chunks_exact(REPORT_BLOCK_LEN))
    }
}

impl<'a> Iterator for ReportBlocks<'a> {
    type Item = ReportBlock<'a>;

    fn next(&mut self) -> Option<ReportBlock<'a>> {
        self.0.next().map(ReportBlock)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

impl ExactSizeIterator for ReportBlocks<'_> {}

/// One reception report block (RFC 3550 §6.4.1): exactly 24 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock<'a>(&'a [u8]);

impl ReportBlock<'_> {
    /// The source this block reports on.
    pub fn ssrc(&self) -> Ssrc {
        Ssrc(be_u32(self.0, 0))
    }

    /// Fraction of packets lost since the previous report, in 1/256 units.
    pub fn fraction_lost(&self) -> u8 {
        self.0[4]
    }

    /// Cumulative packets lost: a 24-bit signed count (negative with duplicates, §6.4.1).
    pub fn cumulative_lost(&self) -> i32 {
        i32::from_be_bytes([self.0[5], self.0[6], self.0[7], 0]) >> 8
    }

    /// Cycles of sequence-number wrap in the high 16 bits, highest sequence number in the low.
    pub fn extended_highest_seq(&self) -> u32 {
        be_u32(self.0, 8)
    }

    /// Interarrival jitter in timestamp units (RFC 3550 §6.4.1, §A.8).
    pub fn jitter(&self) -> u32 {
        be_u32(self.0, 12)
    }

    /// The middle 32 bits of the NTP timestamp of the last SR from this source, or 0.
    pub fn last_sr(&self) -> u32 {
        be_u32(self.0, 16)
    }

    /// Delay since that SR, in 1/65536 seconds.
    pub fn delay_since_last_sr(&self) -> u32 {
        be_u32(self.0, 20)
    }

    pub fn fields(&self) -> ReportBlockFields {
        ReportBlockFields {
            ssrc: self.ssrc(),
            fraction_lost: self.fraction_lost(),
            cumulative_lost: self.cumulative_lost(),
            extended_highest_seq: self.extended_highest_seq(),
            jitter: self.jitter(),
            last_sr: self.last_sr(),
            delay_since_last_sr: self.delay_since_last_sr(),
        }
    }
}

/// The fields of a report block to emit; see [`ReportBlock`] for their meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportBlockFields {
    pub ssrc: Ssrc,
    pub fraction_lost: u8,
    /// Clamped to the 24-bit range −2²³..2²³−1 when emitted (RFC 3550 §6.4.1).
    pub cumulative_lost: i32,
    pub extended_highest_seq: u32,
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

impl ReportBlockFields {
    fn write(&self, b: &mut [u8]) {
        let lost = self
            .cumulative_lost
            .clamp(-(1 << 23), (1 << 23) - 1)
            .to_be_bytes();
        b[0..4].copy_from_slice(&self.ssrc.0.to_be_bytes());
        b[4] = self.fraction_lost;
        b[5..8].copy_from_slice(&lost[1..]);
        b[8..12].copy_from_slice(&self.extended_highest_seq.to_be_bytes());
        b[12..16].copy_from_slice(&self.jitter.to_be_bytes());
        b[16..20].copy_from_slice(&self.last_sr.to_be_bytes());
        b[20..24].copy_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// A source description, SDES (RFC 3550 §6.5). Every chunk is validated by [`Self::new`], so
/// iterating is infallible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceDescription<'a> {
    body: &'a [u8],
    count: u8,
}

/// Splits the chunk at the start of `b` into its source, its items (up to, not including, the
/// terminating null octet) and the length of the chunk with its padding (RFC 3550 §6.5).
fn split_chunk(b: &[u8]) -> WireResult<(Ssrc, &[u8], usize)> {
    if b.len() < 4 {
        return Err(WireError::BadLength);
    }
    let mut at = 4;
    loop {
        match b.get(at) {
            None => return Err(WireError::BadLength),
            // The null item ends the list; null octets pad the chunk to a 32-bit boundary.
            Some(0) => {
                let end = (at + 4) & !3;
                return if end <= b.len() {
                    Ok((Ssrc(be_u32(b, 0)), &b[4..at], end))
                } else {
                    Err(WireError::BadLength)
                };
            }
            Some(_) => {
                let len = usize::from(*b.get(at + 1).ok_or(WireError::BadLength)?);
                at += 2 + len;
            }
        }
    }
}

impl<'a> SourceDescription<'a> {
    /// `Malformed` unless the packet is an SDES; `BadLength` unless its SC chunks, each with
    /// items whose lengths stay inside the packet and a null terminator, fit in it.
    pub fn new(packet: &RtcpPacket<&'a [u8]>) -> WireResult<Self> {
        let body = packet.body_if(RtcpType::SourceDescription)?;
        let count = packet.count();
        let mut rest = body;
        for _ in 0..count {
            let (_, _, len) = split_chunk(rest)?;
            rest = &rest[len..];
        }
        Ok(SourceDescription { body, count })
    }

    /// The chunks: each source with its items.
    pub fn chunks(&self) -> SdesChunks<'a> {
        SdesChunks {
            rest: self.body,
            left: self.count,
        }
    }

    /// The first CNAME item of any chunk, with its source (RFC 3550 §6.5.1).
    pub fn cname(&self) -> Option<(Ssrc, &'a [u8])> {
        self.chunks().find_map(|(ssrc, mut items)| {
            items
                .find(|&(kind, _)| kind == SDES_CNAME)
                .map(|(_, text)| (ssrc, text))
        })
    }
}

/// The chunks of a validated SDES packet.
#[derive(Debug, Clone)]
pub struct SdesChunks<'a> {
    rest: &'a [u8],
    left: u8,
}

impl<'a> Iterator for SdesChunks<'a> {
    type Item = (Ssrc, SdesItems<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // Cannot fail on a body that passed `SourceDescription::new`; ends iteration if it does.
        let (ssrc, items, len) = split_chunk(self.rest).ok()?;
        self.rest = &self.rest[len..];
        Some((ssrc, SdesItems { rest: items }))
    }
}

/// The items of one SDES chunk, as (item type, text); the text is not null-terminated and, for
/// the standard items, is UTF-8 (RFC 3550 §6.5).
#[derive(Debug, Clone)]
pub struct SdesItems<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SdesItems<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&kind, rest) = self.rest.split_first()?;
        let (&len, rest) = rest.split_first()?;
        let text = rest.get(..usize::from(len))?;
        self.rest = &rest[text.len()..];
        Some((kind, text))
    }
}

/// A goodbye, BYE (RFC 3550 §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Goodbye<'a> {
    body: &'a [u8],
    count: u8,
}

impl<'a> Goodbye<'a> {
    /// `Malformed` unless the packet is a BYE; `BadLength` unless its SC sources, and the
    /// reason if bytes follow them, fit in it.
    pub fn new(packet: &RtcpPacket<&'a [u8]>) -> WireResult<Self> {
        let body = packet.body_if(RtcpType::Goodbye)?;
        let count = packet.count();
        let sources_len = 4 * usize::from(count);
        let reason_fits = match body.get(sources_len) {
            None => body.len() == sources_len,
            Some(&len) => sources_len + 1 + usize::from(len) <= body.len(),
        };
        if !reason_fits {
            return Err(WireError::BadLength);
        }
        Ok(Goodbye { body, count })
    }

    /// The sources leaving.
    pub fn ssrcs(&self) -> Ssrcs<'a> {
        Ssrcs::new(&self.body[..4 * usize::from(self.count)])
    }

    /// The reason for leaving, if the packet carries one (UTF-8 per RFC 3550 §6.6).
    pub fn reason(&self) -> Option<&'a [u8]> {
        let at = 4 * usize::from(self.count);
        let len = usize::from(*self.body.get(at)?);
        self.body.get(at + 1..at + 1 + len)
    }
}

/// Writes a common header for a packet of `len` bytes (a multiple of 4, at least 4).
fn write_header(buf: &mut [u8], count: usize, packet_type: RtcpType, len: usize) {
    // The length field counts 32-bit words minus one in 16 bits.
    debug_assert!(
        count <= MAX_COUNT && len.is_multiple_of(4) && (HEADER_LEN..=1 << 18).contains(&len)
    );
    buf[0] = (VERSION << 6) | count as u8;
    buf[1] = packet_type.into();
    buf[2..4].copy_from_slice(&((len / 4 - 1) as u16).to_be_bytes());
}

/// `BadLength` if more than 31 items, `Truncated` if `buf` is shorter than `len`, else the
/// first `len` bytes of `buf`.
fn packet_buf(buf: &mut [u8], count: usize, len: usize) -> WireResult<&mut [u8]> {
    if count > MAX_COUNT {
        return Err(WireError::BadLength);
    }
    buf.get_mut(..len).ok_or(WireError::Truncated)
}

/// Writes a sender report (RFC 3550 §6.4.1) with up to 31 report blocks and returns its length.
pub fn emit_sender_report(
    buf: &mut [u8],
    ssrc: Ssrc,
    ntp: u64,
    rtp_ts: u32,
    packets: u32,
    octets: u32,
    blocks: &[ReportBlockFields],
) -> WireResult<usize> {
    let len = HEADER_LEN + SENDER_INFO_LEN + REPORT_BLOCK_LEN * blocks.len();
    let b = packet_buf(buf, blocks.len(), len)?;
    write_header(b, blocks.len(), RtcpType::SenderReport, len);
    b[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    b[8..16].copy_from_slice(&ntp.to_be_bytes());
    b[16..20].copy_from_slice(&rtp_ts.to_be_bytes());
    b[20..24].copy_from_slice(&packets.to_be_bytes());
    b[24..28].copy_from_slice(&octets.to_be_bytes());
    for (block, out) in blocks
        .iter()
        .zip(b[28..].chunks_exact_mut(REPORT_BLOCK_LEN))
    {
        block.write(out);
    }
    Ok(len)
}

/// Writes a receiver report (RFC 3550 §6.4.2) with up to 31 report blocks and returns its
/// length.
pub fn emit_receiver_report(
    buf: &mut [u8],
    ssrc: Ssrc,
    blocks: &[ReportBlockFields],
) -> WireResult<usize> {
    let len = HEADER_LEN + 4 + REPORT_BLOCK_LEN * blocks.len();
    let b = packet_buf(buf, blocks.len(), len)?;
    write_header(b, blocks.len(), RtcpType::ReceiverReport, len);
    b[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    for (block, out) in blocks.iter().zip(b[8..].chunks_exact_mut(REPORT_BLOCK_LEN)) {
        block.write(out);
    }
    Ok(len)
}

/// Writes an SDES packet with one chunk holding one CNAME item (RFC 3550 §6.5.1), terminated
/// by null octets up to the next 32-bit boundary, and returns its length. `BadLength` if the
/// CNAME is longer than 255 bytes.
pub fn emit_sdes_cname(buf: &mut [u8], ssrc: Ssrc, cname: &[u8]) -> WireResult<usize> {
    let cname_len = u8::try_from(cname.len()).map_err(|_| WireError::BadLength)?;
    // Header, SSRC, item type and length, text, at least one null octet, rounded up.
    let len = (HEADER_LEN + 4 + 2 + cname.len() + 1 + 3) & !3;
    let b = packet_buf(buf, 1, len)?;
    write_header(b, 1, RtcpType::SourceDescription, len);
    b[4..8].copy_from_slice(&ssrc.0.to_be_bytes());
    b[8] = SDES_CNAME;
    b[9] = cname_len;
    let (text, nulls) = b[10..].split_at_mut(cname.len());
    text.copy_from_slice(cname);
    nulls.fill(0);
    Ok(len)
}

/// Writes a BYE (RFC 3550 §6.6) for up to 31 sources, without a reason, and returns its length.
pub fn emit_bye(buf: &mut [u8], ssrcs: &[Ssrc]) -> WireResult<usize> {
    let len = HEADER_LEN + 4 * ssrcs.len();
    let b = packet_buf(buf, ssrcs.len(), len)?;
    write_header(b, ssrcs.len(), RtcpType::Goodbye, len);
    for (ssrc, out) in ssrcs.iter().zip(b[HEADER_LEN..].chunks_exact_mut(4)) {
        out.copy_from_slice(&ssrc.0.to_be_bytes());
    }
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u32) -> ReportBlockFields {
        ReportBlockFields {
            ssrc: Ssrc(0x1000 + n),
            fraction_lost: 25,
            cumulative_lost: -3,
            extended_highest_seq: 0x0001_FFFF,
            jitter: 40,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        }
    }

    /// SR with one block, SDES with a CNAME, BYE with a reason and 4 bytes of padding.
    fn compound_sr_sdes_bye() -> Vec<u8> {
        let mut buf = vec![0; 200];
        let mut len = emit_sender_report(
            &mut buf,
            Ssrc(0xAAAA),
            0x1122_3344_5566_7788,
            160,
            10,
            1600,
            &[block(1)],
        )
        .unwrap();
        len += emit_sdes_cname(&mut buf[len..], Ssrc(0xAAAA), b"leg@earshot").unwrap();
        // BYE: SC=1, SSRC, reason "bye" (4 bytes with its length), padding 4 → 16 bytes.
        buf[len..len + 16].copy_from_slice(&[
            0xA1, 203, 0, 3, 0, 0, 0xAA, 0xAA, 3, b'b', b'y', b'e', 0, 0, 0, 4,
        ]);
        buf.truncate(len + 16);
        buf
    }

    #[test]
    fn compound_packet() {
        let buf = compound_sr_sdes_bye();
        assert_eq!(validate_compound(&buf), Ok(()));
        let packets: Vec<_> = compound(&buf).collect::<Result<_, _>>().unwrap();
        let types: Vec<_> = packets.iter().map(RtcpPacket::packet_type).collect();
        assert_eq!(
            types,
            [
                RtcpType::SenderReport,
                RtcpType::SourceDescription,
                RtcpType::Goodbye
            ]
        );

        let sr = SenderReport::new(&packets[0]).unwrap();
        assert_eq!(sr.ssrc(), Ssrc(0xAAAA));
        assert_eq!(sr.ntp_timestamp(), 0x1122_3344_5566_7788);
        assert_eq!(
            (sr.rtp_timestamp(), sr.packet_count(), sr.octet_count()),
            (160, 10, 1600)
        );
        assert_eq!(
            sr.report_blocks().map(|b| b.fields()).collect::<Vec<_>>(),
            [block(1)]
        );
        assert_eq!(sr.profile_extension(), &[] as &[u8]);

        let sdes = SourceDescription::new(&packets[1]).unwrap();
        assert_eq!(sdes.cname(), Some((Ssrc(0xAAAA), &b"leg@earshot"[..])));
        // 4 header + 4 SSRC + 2 + 11 text + 1 null = 22, padded to 24.
        assert_eq!(packets[1].len_bytes(), 24);

        let bye = Goodbye::new(&packets[2]).unwrap();
        assert!(packets[2].padding());
        assert_eq!(packets[2].padding_len(), 4);
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), [Ssrc(0xAAAA)]);
        assert_eq!(bye.reason(), Some(&b"bye"[..]));

        assert_eq!(SenderReport::new(&packets[2]), Err(WireError::Malformed));
        assert_eq!(Goodbye::new(&packets[0]), Err(WireError::Malformed));
    }

    #[test]
    fn sdes_multiple_chunks_and_items() {
        #[rustfmt::skip]
        let buf = [
            0x82, 202, 0, 6,
            0, 0, 0, 1, 1, 2, b'a', b'b', 2, 1, b'n', 0, // CNAME "ab", NAME "n", end: 12 bytes
            0, 0, 0, 2, 0, 0, 0, 0,                      // no items: SSRC and 4 nulls
            0, 0, 0, 0,                                  // trailing bytes in the packet are allowed
        ];
        let packet = RtcpPacket::new_checked(&buf[..]).unwrap();
        let sdes = SourceDescription::new(&packet).unwrap();
        let chunks: Vec<_> = sdes
            .chunks()
            .map(|(ssrc, items)| (ssrc, items.collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            chunks,
            [
                (Ssrc(1), vec![(1, &b"ab"[..]), (2, &b"n"[..])]),
                (Ssrc(2), vec![])
            ]
        );
    }

    #[test]
    fn receiver_report_and_bye_round_trip() {
        let mut buf = [0; 128];
        let blocks = [
            block(1),
            ReportBlockFields {
                cumulative_lost: 1 << 30,
                ..block(2)
            },
        ];
        let len = emit_receiver_report(&mut buf, Ssrc(9), &blocks).unwrap();
        assert_eq!(len, 4 + 4 + 48);
        let packet = RtcpPacket::new_checked(&buf[..len]).unwrap();
        let rr = ReceiverReport::new(&packet).unwrap();
        assert_eq!(rr.ssrc(), Ssrc(9));
        let got: Vec<_> = rr.report_blocks().map(|b| b.fields()).collect();
        assert_eq!(got[0], blocks[0]);
        assert_eq!(got[1].cumulative_lost, (1 << 23) - 1, "clamped to 24 bits");

        let len = emit_bye(&mut buf, &[Ssrc(1), Ssrc(2)]).unwrap();
        let packet = RtcpPacket::new_checked(&buf[..len]).unwrap();
        let bye = Goodbye::new(&packet).unwrap();
        assert_eq!(bye.ssrcs().collect::<Vec<_>>(), [Ssrc(1), Ssrc(2)]);
        assert_eq!(bye.reason(), None);
        assert_eq!(validate_compound(&buf[..len]), Err(WireError::Malformed));
    }

    #[test]
    fn emit_limits() {
        let mut buf = [0; 1024];
        let too_many = [block(0); 32];
        assert_eq!(
            emit_receiver_report(&mut buf, Ssrc(1), &too_many),
            Err(WireError::BadLength)
        );
        assert_eq!(
            emit_receiver_report(&mut buf, Ssrc(1), &too_many[..31]),
            Ok(8 + 31 * 24)
        );
        assert_eq!(
            emit_sender_report(&mut buf[..51], Ssrc(1), 0, 0, 0, 0, &[block(0)]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            emit_bye(&mut buf, &[Ssrc(0); 32]),
            Err(WireError::BadLength)
        );
        assert_eq!(
            emit_bye(&mut buf[..7], &[Ssrc(0)]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            emit_sdes_cname(&mut buf, Ssrc(1), &[b'x'; 256]),
            Err(WireError::BadLength)
        );
        assert_eq!(emit_sdes_cname(&mut buf, Ssrc(1), b""), Ok(12));
        assert_eq!(emit_sdes_cname(&mut buf, Ssrc(1), b"a"), Ok(12));
        assert_eq!(emit_sdes_cname(&mut buf, Ssrc(1), b"ab"), Ok(16));
    }

    #[test]
    fn malformed_packets() {
        let check = |b: &[u8]| RtcpPacket::new_checked(b).map(|_| ());
        assert_eq!(check(&[0x80, 201, 0]), Err(WireError::Truncated));
        assert_eq!(check(&[0x40, 201, 0, 0]), Err(WireError::BadVersion));
        assert_eq!(
            check(&[0x80, 201, 0, 1, 0, 0, 0]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            check(&[0xA0, 201, 0, 1, 0, 0, 0, 0]),
            Err(WireError::BadPadding)
        );
        assert_eq!(
            check(&[0xA0, 201, 0, 1, 0, 0, 0, 5]),
            Err(WireError::BadPadding)
        );
        assert_eq!(check(&[0xA0, 201, 0, 1, 0, 0, 0, 4]), Ok(()));

        // Counts that overrun the packet.
        let rr = [0x81, 201, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            ReceiverReport::new(&RtcpPacket::new_checked(&rr[..]).unwrap()),
            Err(WireError::BadLength)
        );
        let sr = [
            0x80, 200, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(
            SenderReport::new(&RtcpPacket::new_checked(&sr[..]).unwrap()),
            Err(WireError::BadLength)
        );
        let bye = [0x82, 203, 0, 1, 0, 0, 0, 1];
        assert_eq!(
            Goodbye::new(&RtcpPacket::new_checked(&bye[..]).unwrap()),
            Err(WireError::BadLength)
        );
        let bye_reason = [0x81, 203, 0, 2, 0, 0, 0, 1, 4, b'a', b'b', b'c'];
        assert_eq!(
            Goodbye::new(&RtcpPacket::new_checked(&bye_reason[..]).unwrap()),
            Err(WireError::BadLength)
        );

        // SDES: item running past the packet, missing terminator, too few chunks.
        for sdes in [
            &[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 9, b'a', b'b'][..],
            &[0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, b'a', b'b'],
            &[0x82, 202, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0],
            &[0x81, 202, 0, 0],
        ] {
            let packet = RtcpPacket::new_checked(sdes).unwrap();
            assert_eq!(
                SourceDescription::new(&packet),
                Err(WireError::BadLength),
                "{sdes:?}"
            );
        }
    }

    #[test]
    fn compound_errors() {
        let good = compound_sr_sdes_bye();
        assert_eq!(validate_compound(&[]), Err(WireError::Truncated));

        // Trailing bytes that are not a whole packet: the iterator yields the error once.
        let mut trailing = good.clone();
        trailing.extend_from_slice(&[0x80, 201]);
        assert_eq!(validate_compound(&trailing), Err(WireError::Truncated));
        let items: Vec<_> = compound(&trailing).collect();
        assert_eq!(items.len(), 4);
        assert_eq!(items[3], Err(WireError::Truncated));

        // The last length overruns the buffer.
        assert_eq!(
            validate_compound(&good[..good.len() - 4]),
            Err(WireError::Truncated)
        );

        // Padding on a packet that is not the last.
        let mut padded_sr = good.clone();
        padded_sr[0] |= 0x20;
        let sr_len = 4 + 24 + 24;
        padded_sr[sr_len - 1] = 4;
        assert!(compound(&padded_sr).all(|p| p.is_ok()));
        assert_eq!(validate_compound(&padded_sr), Err(WireError::BadPadding));

        // First packet neither SR nor RR.
        assert_eq!(
            validate_compound(&good[sr_len..]),
            Err(WireError::Malformed)
        );

        // A count that overruns its packet's length, in each kind whose count we parse: the
        // SR claims a second report block, the SDES a second chunk, the BYE a third source
        // (with two, its reason reads as the second one, which fits).
        let sdes_at = sr_len;
        let bye_at = good.len() - 16;
        for (at, more, what) in [(0, 1, "SR"), (sdes_at, 1, "SDES"), (bye_at, 2, "BYE")] {
            let mut overrun = good.clone();
            overrun[at] += more;
            assert!(compound(&overrun).all(|p| p.is_ok()), "{what}");
            assert_eq!(
                validate_compound(&overrun),
                Err(WireError::BadLength),
                "{what}"
            );
        }
        let mut rr = vec![0u8; 8];
        rr[..4].copy_from_slice(&[0x81, 201, 0, 1]);
        assert_eq!(validate_compound(&rr), Err(WireError::BadLength), "RR");
        rr[0] = 0x80;
        assert_eq!(validate_compound(&rr), Ok(()), "RR");

        // Bad version in the middle stops iteration after the error.
        let mut bad_version = good.clone();
        bad_version[sr_len] = 0x41;
        let items: Vec<_> = compound(&bad_version).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(items[1], Err(WireError::BadVersion));
    }

    #[test]
    fn types_round_trip() {
        for pt in 0..=u8::MAX {
            assert_eq!(u8::from(RtcpType::from(pt)), pt);
        }
    }
}
