//! The RTP payload for named telephone events, DTMF in particular (RFC 4733 §2.3).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     event     |E|R| volume    |          duration             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A payload may carry several such blocks, e.g. the end of one event followed by the start of
//! the next (RFC 4733 §2.5.1.5).

use super::rtp::be_u16;
use super::{WireError, WireResult};

/// The length of one event block.
pub const BLOCK_LEN: usize = 4;

/// A view of a telephone-event RTP payload (after [`super::rtp::RtpPacket::payload`], so
/// without RTP padding). The accessors read the first event block; [`Self::events`] walks all.
///
/// Panic contract: after [`TelephoneEvent::new_checked`] no accessor panics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TelephoneEvent<T> {
    /// Wraps a payload without validating it.
    pub const fn new_unchecked(buffer: T) -> Self {
        TelephoneEvent { buffer }
    }

    /// Wraps a payload of one or more 4-byte event blocks: `Truncated` if shorter than one
    /// block, `BadLength` if not a whole number of blocks.
    pub fn new_checked(buffer: T) -> WireResult<Self> {
        let len = buffer.as_ref().len();
        if len < BLOCK_LEN {
            return Err(WireError::Truncated);
        }
        if !len.is_multiple_of(BLOCK_LEN) {
            return Err(WireError::BadLength);
        }
        Ok(Self::new_unchecked(buffer))
    }

    /// Unwraps the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The number of event blocks in the payload.
    pub fn len_events(&self) -> usize {
        self.buffer.as_ref().len() / BLOCK_LEN
    }

    /// Each event block, as a view of its own.
    pub fn events(&self) -> impl ExactSizeIterator<Item = TelephoneEvent<&[u8]>> {
        self.buffer
            .as_ref()
            .chunks_exact(BLOCK_LEN)
            .map(TelephoneEvent::new_unchecked)
    }

    /// The event code (RFC 4733 §3.2 for DTMF: 0–9, *, #, A–D are 0–15).
    pub fn event(&self) -> u8 {
        self.buffer.as_ref()[0]
    }

    /// The E bit: this is the end of the event (RFC 4733 §2.5.1.4).
    pub fn end(&self) -> bool {
        self.buffer.as_ref()[1] & 0x80 != 0
    }

    /// The power level in dBm0 with the sign dropped: 0 to 63, larger is quieter.
    pub fn volume(&self) -> u8 {
        self.buffer.as_ref()[1] & 0x3F
    }

    /// The duration so far, in RTP timestamp units, from the packet's timestamp (§2.5.1.2).
    pub fn duration(&self) -> u16 {
        be_u16(self.buffer.as_ref(), 2)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TelephoneEvent<T> {
    pub fn set_event(&mut self, event: u8) {
        self.buffer.as_mut()[0] = event;
    }

    pub fn set_end(&mut self, end: bool) {
        let b = &mut self.buffer.as_mut()[1];
        *b = (*b & 0x7F) | (u8::from(end) << 7);
    }

    /// Sets the volume; only its low 6 bits are kept.
    pub fn set_volume(&mut self, volume: u8) {
        let b = &mut self.buffer.as_mut()[1];
        *b = (*b & 0xC0) | (volume & 0x3F);
    }

    pub fn set_duration(&mut self, duration: u16) {
        self.buffer.as_mut()[2..4].copy_from_slice(&duration.to_be_bytes());
    }
}

/// Writes one event block at the start of `buf`, with the reserved bit zero (RFC 4733 §2.3),
/// and returns its length. `Truncated` if `buf` is shorter than 4 bytes, `Malformed` if the
/// volume does not fit in 6 bits.
pub fn emit(buf: &mut [u8], event: u8, end: bool, volume: u8, duration: u16) -> WireResult<usize> {
    if volume > 0x3F {
        return Err(WireError::Malformed);
    }
    let b = buf.get_mut(..BLOCK_LEN).ok_or(WireError::Truncated)?;
    b[0] = event;
    b[1] = (u8::from(end) << 7) | volume;
    b[2..4].copy_from_slice(&duration.to_be_bytes());
    Ok(BLOCK_LEN)
}

/// The DTMF digit of an event code (RFC 4733 §3.2, Table 7): 0–9, `*`, `#`, `A`–`D`.
pub fn dtmf_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// The event code of a DTMF digit; `a`–`d` are accepted as `A`–`D`.
pub fn dtmf_event(digit: char) -> Option<u8> {
    match digit {
        // The casts cannot truncate: the arms bound the digit to ASCII.
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_fields() {
        // '#', end, volume 10, duration 800 (100 ms at 8 kHz).
        let payload = [11, 0x8A, 0x03, 0x20];
        let ev = TelephoneEvent::new_checked(&payload[..]).unwrap();
        assert_eq!(
            (ev.event(), ev.end(), ev.volume(), ev.duration()),
            (11, true, 10, 800)
        );
        assert_eq!(ev.len_events(), 1);
        assert_eq!(dtmf_digit(ev.event()), Some('#'));

        // The reserved bit is ignored by receivers.
        let reserved = [5, 0x40 | 63, 0, 0];
        let ev = TelephoneEvent::new_checked(&reserved[..]).unwrap();
        assert_eq!((ev.end(), ev.volume()), (false, 63));
    }

    #[test]
    fn several_events() {
        // The end of '1' then the start of '2' (RFC 4733 §2.5.1.5).
        let payload = [1, 0x8A, 0x03, 0x20, 2, 0x0A, 0x00, 0xA0];
        let ev = TelephoneEvent::new_checked(&payload[..]).unwrap();
        assert_eq!(ev.len_events(), 2);
        assert_eq!(ev.event(), 1);
        let events: Vec<_> = ev
            .events()
            .map(|e| (e.event(), e.end(), e.duration()))
            .collect();
        assert_eq!(events, [(1, true, 800), (2, false, 160)]);
    }

    #[test]
    fn malformed() {
        assert_eq!(
            TelephoneEvent::new_checked(&[][..]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            TelephoneEvent::new_checked(&[1, 2, 3][..]),
            Err(WireError::Truncated)
        );
        assert_eq!(
            TelephoneEvent::new_checked(&[1, 2, 3, 4, 5][..]),
            Err(WireError::BadLength)
        );
    }

    #[test]
    fn emit_and_set() {
        let mut buf = [0xFF; 4];
        assert_eq!(emit(&mut buf, 9, false, 7, 320), Ok(4));
        assert_eq!(buf, [9, 7, 0x01, 0x40]);
        assert_eq!(
            emit(&mut buf[..3], 9, false, 7, 320),
            Err(WireError::Truncated)
        );
        assert_eq!(emit(&mut buf, 9, false, 64, 320), Err(WireError::Malformed));

        let mut ev = TelephoneEvent::new_checked(&mut buf[..]).unwrap();
        ev.set_end(true);
        ev.set_volume(0xFF);
        ev.set_event(15);
        ev.set_duration(u16::MAX);
        assert_eq!(
            (ev.event(), ev.end(), ev.volume(), ev.duration()),
            (15, true, 63, u16::MAX)
        );
        ev.set_end(false);
        ev.set_volume(0);
        assert_eq!(ev.into_inner(), &[15, 0, 0xFF, 0xFF]);
    }

    #[test]
    fn dtmf_table() {
        let digits = "0123456789*#ABCD";
        for (event, digit) in (0..).zip(digits.chars()) {
            assert_eq!(dtmf_digit(event), Some(digit));
            assert_eq!(dtmf_event(digit), Some(event));
            assert_eq!(dtmf_event(digit.to_ascii_lowercase()), Some(event));
        }
        assert!((16..=u8::MAX).all(|e| dtmf_digit(e).is_none()));
        assert_eq!(dtmf_event('E'), None);
        assert_eq!(dtmf_event('é'), None);
    }
}
