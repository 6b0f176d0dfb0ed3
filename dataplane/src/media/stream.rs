//! The RTP stream the appliance sends to one leg, and the check that keeps an input's
//! discontinuities out of it (docs/media.md, Output streams: every output has its own SSRC and
//! continuous sequence numbers and timestamps, across every mode change and whatever its inputs
//! do).

use crate::media::call::DropReason;
use crate::media::{CLOCK_RATE_HZ, FRAME_SAMPLES};
use crate::time::{Duration, Instant};
use crate::wire::rtp::{RtpHeader, RtpPacket, SeqNo, Ssrc};

/// The RTP stream the appliance sends to one leg (docs/media.md, Output streams: its own SSRC,
/// continuous sequence numbers and timestamps across every mode change).
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputStream {
    pub(crate) ssrc: Ssrc,
    /// The sequence number of the next packet of our making.
    next_seq: u16,
    /// The timestamp of the newest packet sent.
    last_ts: u32,
    /// The stream's first packet: the media clock when it was sent, and its timestamp. From
    /// it, the timestamp that wall-clock time says a packet sent now should carry
    /// ([`OutputStream::clock_ts`]). `None` until a packet has been sent.
    anchor: Option<(u32, u32)>,
    /// The next packet starts a new segment: rebase and set the marker. `None` within a
    /// segment.
    rebase: Option<Segment>,
    /// Relay mapping, valid after the first relayed packet of a segment: output = input + offset.
    seq_offset: u16,
    ts_offset: u32,
    /// The input's extended sequence number at which the current relay segment started;
    /// older input is not relayed (its output numbers would collide with what was sent).
    relay_base: u64,
    /// The last telephone-event forwarded into a mixed output: input timestamp → output one
    /// (RFC 4733 §2.5.1: every packet of one event carries the event's start timestamp).
    event_map: Option<(u32, u32)>,
}

/// Why an output starts a new segment, which decides how its first packet is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Segment {
    /// The output's plan changed (relay ⇄ mix, or another source): the two paths may bunch,
    /// so a packet that would leave less than half a frame after the last one is skipped
    /// ([`OutputStream::segment_start_ts`]).
    Switch,
    /// The relayed input broke its own timeline (a new SSRC, a restart, a timestamp step or a
    /// sequence jump, see [`InputTimeline`]): the same source goes on, so nothing is skipped
    /// ([`OutputStream::resync_start_ts`]).
    Resync,
}

impl OutputStream {
    pub(crate) fn new(ssrc: Ssrc, initial_seq: u16, initial_ts: u32) -> Self {
        OutputStream {
            ssrc,
            next_seq: initial_seq,
            last_ts: initial_ts,
            anchor: None,
            rebase: Some(Segment::Switch),
            seq_offset: 0,
            ts_offset: 0,
            relay_base: 0,
            event_map: None,
        }
    }

    /// The timestamp wall-clock time gives a packet sent at `now`: the anchor's plus the
    /// elapsed time at 8 kHz. `None` before the first packet.
    fn clock_ts(&self, now: Instant) -> Option<u32> {
        let (clock0, ts0) = self.anchor?;
        let samples = now.to_media_clock(CLOCK_RATE_HZ).wrapping_sub(clock0);
        Some(ts0.wrapping_add(samples))
    }

    /// The whole number of frames from the last packet's timestamp to the wall-clock one,
    /// rounded to the nearest (negative when the stream is ahead). `None` before the first
    /// packet.
    fn frames_to_clock(&self, now: Instant) -> Option<i64> {
        let frame = FRAME_SAMPLES as i64;
        let ahead = i64::from(self.clock_ts(now)?.wrapping_sub(self.last_ts) as i32);
        Some((ahead + frame / 2).div_euclid(frame))
    }

    /// The timestamp `frames` whole frames after the last packet's.
    fn frames_after_last(&self, frames: i64) -> u32 {
        self.last_ts
            .wrapping_add((frames * FRAME_SAMPLES as i64) as u32)
    }

    /// The timestamp a new segment (after a relay ⇄ mix switch) starts at: the whole number
    /// of frames after the last packet that is nearest the wall-clock timestamp, so the
    /// stream stays on its frame grid and never drifts more than half a frame from real time,
    /// however often the plan switches. `None` when that is no frame at all: two packets would
    /// leave less than half a frame apart across the switch (a relayed packet just after a
    /// mixed one), and this one is skipped rather than overlap the last or push the stream
    /// ahead of the clock; at most one frame per switch, only when the two paths bunch.
    fn segment_start_ts(&self, now: Instant) -> Option<u32> {
        match self.frames_to_clock(now) {
            None => Some(self.last_ts),
            Some(frames) => (frames >= 1).then(|| self.frames_after_last(frames)),
        }
    }

    /// The timestamp a relay resynchronised on its own input starts at: as
    /// [`OutputStream::segment_start_ts`], but at least one frame after the last packet, so a
    /// genuine packet is never skipped. The stream may then lead the clock by less than one
    /// frame, which the next rounding to the nearest frame takes back.
    fn resync_start_ts(&self, now: Instant) -> u32 {
        match self.frames_to_clock(now) {
            None => self.last_ts,
            Some(frames) => self.frames_after_last(frames.max(1)),
        }
    }

    /// The output's plan changed: its next packet starts a new segment.
    pub(crate) fn switch(&mut self) {
        self.rebase = Some(Segment::Switch);
    }

    /// The relayed input broke its timeline: the next relayed packet starts a new segment
    /// (unless a switch is pending, which places it as a switch does).
    pub(crate) fn resync(&mut self) {
        self.rebase.get_or_insert(Segment::Resync);
    }

    /// Header fields for the next mixed (or generated) frame, or `None` to skip this tick
    /// (see [`OutputStream::segment_start_ts`]). Within a mixed segment each frame advances by
    /// the whole frames of wall-clock time since the last one: one, unless ticks were missed
    /// under load, which then shows as a gap rather than as a slowed clock.
    pub(crate) fn next_mixed(&mut self, now: Instant, payload_type: u8) -> Option<RtpHeader> {
        let (ts, marker) = if self.rebase.is_some() || self.anchor.is_none() {
            let ts = self.segment_start_ts(now)?;
            self.rebase = None;
            (ts, true)
        } else {
            let frames = self.frames_to_clock(now).map_or(1, |f| f.max(1));
            (self.frames_after_last(frames), false)
        };
        Some(self.emit(now, payload_type, marker, self.next_seq, ts))
    }

    /// Header fields for a relayed packet, or why it is not relayed: it predates the current
    /// segment, or it is skipped to keep the stream in step (see `segment_start_ts`).
    pub(crate) fn next_relayed(
        &mut self,
        now: Instant,
        input: &RtpPacket<&[u8]>,
        ext_seq: u64,
    ) -> Result<RtpHeader, DropReason> {
        let in_seq = input.sequence_number().0;
        let mut marker = input.marker();
        if let Some(segment) = self.rebase {
            let start = match segment {
                Segment::Switch => self.segment_start_ts(now).ok_or(DropReason::Realign)?,
                Segment::Resync => self.resync_start_ts(now),
            };
            self.rebase = None;
            self.seq_offset = self.next_seq.wrapping_sub(in_seq);
            self.ts_offset = start.wrapping_sub(input.timestamp());
            self.relay_base = ext_seq;
            marker = true;
        } else if ext_seq < self.relay_base {
            return Err(DropReason::Stale);
        }
        let seq = in_seq.wrapping_add(self.seq_offset);
        let ts = input.timestamp().wrapping_add(self.ts_offset);
        Ok(self.emit(now, input.payload_type(), marker, seq, ts))
    }

    /// A telephone-event packet forwarded into a mixed output: our numbering, the event's
    /// start mapped once to the output's current time.
    pub(crate) fn next_event(&mut self, now: Instant, input: &RtpPacket<&[u8]>) -> RtpHeader {
        let in_ts = input.timestamp();
        let ts = match self.event_map {
            Some((seen, mapped)) if seen == in_ts => mapped,
            _ => {
                let mapped = if self.anchor.is_some() {
                    self.last_ts
                } else {
                    self.segment_start_ts(now).unwrap_or(self.last_ts)
                };
                self.event_map = Some((in_ts, mapped));
                mapped
            }
        };
        let header = RtpHeader {
            marker: input.marker(),
            payload_type: input.payload_type(),
            sequence_number: SeqNo(self.next_seq),
            timestamp: ts,
            ssrc: self.ssrc,
        };
        self.next_seq = self.next_seq.wrapping_add(1);
        header
    }

    /// Records a packet as sent, keeping `next_seq` / `last_ts` at the newest (RFC 1982-style
    /// comparisons, since both wrap).
    fn emit(
        &mut self,
        now: Instant,
        payload_type: u8,
        marker: bool,
        seq: u16,
        ts: u32,
    ) -> RtpHeader {
        if seq.wrapping_sub(self.next_seq) < 0x8000 {
            self.next_seq = seq.wrapping_add(1);
        }
        if ts_not_before(ts, self.last_ts) || self.anchor.is_none() {
            self.last_ts = ts;
        }
        if self.anchor.is_none() {
            self.anchor = Some((now.to_media_clock(CLOCK_RATE_HZ), ts));
        }
        RtpHeader {
            marker,
            payload_type,
            sequence_number: SeqNo(seq),
            timestamp: ts,
            ssrc: self.ssrc,
        }
    }
}

/// Whether RTP timestamp `a` is at or after `b`, modulo 2^32 (RFC 3550 timestamps wrap).
fn ts_not_before(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// How far an input's timestamp may stray from both what its sequence numbers and what its
/// arrival times say before it is read as a step of the sender's clock (a restart, a 2^31
/// jump) rather than as network jitter or silence suppression. Network jitter and a sender's
/// clock drift stay far below it; a relay that does cross it is resynchronised once.
pub(crate) const MAX_TIMELINE_SLIP: Duration = Duration::from_secs(1);
/// The shortest packetisation a sequence gap is read against (10 ms of G.711, the smallest
/// ptime phones use; RFC 3551 §4.5): a gap of more packets than that many could fill in the
/// time elapsed is a jump of the sender's numbering, not loss.
const MIN_PTIME_SAMPLES: i64 = 80;

/// Watches one input for breaks in its own timeline that RFC 3550 §A.1 does not report: a timestamp
/// step with continuing sequence numbers, or a sequence jump shorter than `MAX_DROPOUT` with
/// continuing timestamps. Either would otherwise pass through a relay's fixed offsets into the
/// output (docs/media.md, Output streams). Fed only the input's new highest audio or comfort noise
/// packets: RFC 4733 events keep their start timestamp for their whole duration (§2.5.1.2), so they
/// are no evidence of the sender's clock.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct InputTimeline {
    /// The newest packet seen: extended sequence number, timestamp, arrival on the media
    /// clock, and the samples it carried.
    last: Option<(u64, u32, u32, u32)>,
}

impl InputTimeline {
    /// Forgets the timeline (a new source or a restart of the numbering).
    pub(crate) fn reset(&mut self) {
        self.last = None;
    }

    /// Accounts for a packet that is the input's new highest (`ext_seq`), carrying `samples`
    /// from `ts`, that arrived at `arrival` (the 8 kHz media clock). True when it breaks the
    /// timeline:
    /// - a timestamp step: its timestamp is more than [`MAX_TIMELINE_SLIP`] from both the one
    ///   its sequence number predicts and the one its arrival time predicts (a network stall
    ///   explains a timestamp behind the arrival time, silence suppression one ahead of the
    ///   sequence number, never both);
    /// - a sequence jump: it skipped more packets than the time since the last arrival (plus
    ///   the slip) could have carried, which loss cannot explain whatever the timestamps say.
    pub(crate) fn observe(&mut self, ext_seq: u64, ts: u32, arrival: u32, samples: u32) -> bool {
        let Some((last_seq, last_ts, last_arrival, last_samples)) = self.last else {
            self.last = Some((ext_seq, ts, arrival, samples));
            return false;
        };
        // Only a new highest moves the timeline (anything else is not this check's business).
        let Some(packets) = ext_seq.checked_sub(last_seq).filter(|p| *p > 0) else {
            return false;
        };
        self.last = Some((ext_seq, ts, arrival, samples));
        let packets = i64::try_from(packets).unwrap_or(i64::MAX);
        let slip = MAX_TIMELINE_SLIP.as_millis() as i64 * i64::from(CLOCK_RATE_HZ) / 1000;
        let by_ts = i64::from(ts.wrapping_sub(last_ts) as i32);
        let by_arrival = i64::from(arrival.wrapping_sub(last_arrival) as i32);
        let by_seq = packets.saturating_mul(i64::from(last_samples));
        let step = (by_ts - by_seq).abs() > slip && (by_ts - by_arrival).abs() > slip;
        let jump = (packets - 1).saturating_mul(MIN_PTIME_SAMPLES) > by_arrival.max(0) + slip;
        step || jump
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(ext_seq, ts, arrival)` packets of 160 samples; returns which broke.
    fn breaks(packets: &[(u64, u32, u32)]) -> Vec<bool> {
        let mut t = InputTimeline::default();
        packets
            .iter()
            .map(|&(seq, ts, at)| t.observe(seq, ts, at, 160))
            .collect()
    }

    #[test]
    fn steps_beyond_the_slip_break_and_within_it_do_not() {
        let slip = 8000; // MAX_TIMELINE_SLIP at 8 kHz
        // Timestamp steps with the sequence and arrival both one frame on.
        for (step, broke) in [(slip, false), (slip + 161, true), (1u32 << 31, true)] {
            let got = breaks(&[(1, 0, 0), (2, 160u32.wrapping_add(step), 160)]);
            assert_eq!(got[1], broke, "step {step}");
        }
        // Backwards, the same.
        let got = breaks(&[(1, 100_000, 0), (2, 100_000 - slip - 1, 160)]);
        assert!(got[1]);
        // A timestamp that follows arrival (silence suppression) or the sequence (a burst
        // after a stall) is no step.
        assert_eq!(
            breaks(&[(1, 0, 0), (2, 80_000, 80_000), (3, 80_160, 80_000)]),
            [false, false, false]
        );
    }

    #[test]
    fn sequence_jumps_are_judged_against_arrival_time() {
        // 1,000 packets skipped in 20 ms: a jump, whatever the timestamp says.
        assert!(breaks(&[(1, 0, 0), (1_001, 160, 160)])[1]);
        assert!(breaks(&[(1, 0, 0), (1_001, 160_000, 160)])[1]);
        // 1,000 packets lost over the 20 s they took: loss.
        assert!(!breaks(&[(1, 0, 0), (1_001, 160_000, 160_000)])[1]);
        // 100 lost (1 s at 10 ms each) in a burst after a short stall: within the slip.
        assert!(!breaks(&[(1, 0, 0), (101, 16_000, 160)])[1]);
        // Late or repeated numbers are not this check's business, and leave the timeline be.
        assert_eq!(
            breaks(&[(5, 0, 0), (5, 0, 0), (4, 0, 0), (6, 160, 160)]),
            [false; 4]
        );
    }
}
