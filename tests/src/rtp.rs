//! A small, independent RTP and RFC 4733 codec for the test endpoints.
//!
//! Deliberately not the data plane's `wire` module: the end-to-end tests judge the daemon with
//! their own reading of the RFCs, so a shared bug cannot make both sides agree.

/// µ-law, RFC 3551 §6 Table 4.
pub const PT_PCMU: u8 = 0;
/// A-law, RFC 3551 §6 Table 4.
pub const PT_PCMA: u8 = 8;
/// The dynamic payload type the appliance uses for RFC 4733 telephone-events.
pub const PT_TELEPHONE_EVENT: u8 = 101;

/// RTP fixed header length (RFC 3550 §5.1).
const HEADER_LEN: usize = 12;

/// The fields of an RTP packet the tests look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpView<'a> {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

/// Serialises an RTP packet with no CSRC, extension or padding (RFC 3550 §5.1).
pub fn build(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.push(0x80); // V=2, P=0, X=0, CC=0
    out.push((u8::from(marker) << 7) | (pt & 0x7f));
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// True for RTCP multiplexed on the RTP port: second octet 192..=223 (RFC 5761 §4).
pub fn is_rtcp(buf: &[u8]) -> bool {
    buf.len() >= 2 && (192..=223).contains(&buf[1])
}

/// Parses an RTP packet, skipping CSRCs and a header extension and removing padding
/// (RFC 3550 §5.1, §5.3.1). `None` for anything that is not version 2 or is truncated.
pub fn parse(buf: &[u8]) -> Option<RtpView<'_>> {
    if buf.len() < HEADER_LEN || buf[0] >> 6 != 2 {
        return None;
    }
    let csrc_count = usize::from(buf[0] & 0x0f);
    let mut start = HEADER_LEN + 4 * csrc_count;
    if buf[0] & 0x10 != 0 {
        let ext = buf.get(start..start + 4)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        start += 4 + 4 * words;
    }
    let mut end = buf.len();
    if buf[0] & 0x20 != 0 {
        let pad = usize::from(*buf.last()?);
        end = end.checked_sub(pad)?;
    }
    let payload = buf.get(start..end)?;
    Some(RtpView {
        pt: buf[1] & 0x7f,
        marker: buf[1] & 0x80 != 0,
        seq: u16::from_be_bytes([buf[2], buf[3]]),
        ts: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        ssrc: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload,
    })
}

/// One RFC 4733 §2.3 telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    pub event: u8,
    pub end: bool,
    /// Power level in -dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn encode(self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d[0],
            d[1],
        ]
    }

    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let p = payload.get(..4)?;
        Some(TelephoneEvent {
            event: p[0],
            end: p[1] & 0x80 != 0,
            volume: p[1] & 0x3f,
            duration: u16::from_be_bytes([p[2], p[3]]),
        })
    }
}

/// The RFC 4733 §3.2 event code of a DTMF key.
pub fn dtmf_event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        _ => None,
    }
}

/// The packets of one key press as a sender emits them, in order, one per packet interval
/// (RFC 4733 §2.5.1): `updates` packets with growing duration, the first with the marker bit,
/// then the end packet three times (§2.5.1.4). All carry the event's start timestamp; each is
/// its own RTP packet with its own sequence number.
pub fn dtmf_packets(
    event: u8,
    samples_per_packet: u16,
    updates: u16,
) -> Vec<(bool, TelephoneEvent)> {
    let mut out = Vec::new();
    for i in 1..=updates {
        let ev = TelephoneEvent {
            event,
            end: false,
            volume: 10,
            duration: samples_per_packet * i,
        };
        out.push((i == 1, ev));
    }
    let last = TelephoneEvent {
        event,
        end: true,
        volume: 10,
        duration: samples_per_packet * updates,
    };
    out.extend(std::iter::repeat_n((false, last), 3));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_then_parse_round_trips() {
        let b = build(PT_PCMU, true, 65535, 0xdead_beef, 0x1234_5678, &[1, 2, 3]);
        let v = parse(&b).unwrap();
        assert_eq!(
            v,
            RtpView {
                pt: 0,
                marker: true,
                seq: 65535,
                ts: 0xdead_beef,
                ssrc: 0x1234_5678,
                payload: &[1, 2, 3]
            }
        );
        assert!(!is_rtcp(&b));
    }

    #[test]
    fn parse_skips_csrc_extension_and_padding() {
        let mut b = vec![0x80 | 0x20 | 0x10 | 1, 8, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        b.extend_from_slice(&[9, 9, 9, 9]); // one CSRC
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 7, 7, 7, 7]); // extension, one word
        b.extend_from_slice(&[42, 43]); // payload
        b.extend_from_slice(&[0, 0, 3]); // three octets of padding
        let v = parse(&b).unwrap();
        assert_eq!(
            (v.pt, v.seq, v.ts, v.ssrc, v.payload),
            (8, 1, 2, 3, &[42u8, 43][..])
        );
        assert!(parse(&b[..11]).is_none());
    }

    #[test]
    fn telephone_event_round_trips_and_key_press_shape() {
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(TelephoneEvent::parse(&ev.encode()), Some(ev));
        let packets = dtmf_packets(dtmf_event_code('5').unwrap(), 160, 5);
        assert_eq!(packets.len(), 8);
        assert!(packets[0].0 && packets[1..].iter().all(|p| !p.0));
        assert_eq!(packets.iter().filter(|p| p.1.end).count(), 3);
        assert_eq!(packets[4].1.duration, 800);
        assert_eq!(dtmf_event_code('#'), Some(11));
    }
}
