//! The adaptive jitter buffer of a mixed path (docs/design.md §1.3: adaptive, capped at 60 ms, with
//! loss concealment that fades to silence). One per input leg; relayed paths have none.
//!
//! # Storage
//!
//! Decoded linear PCM sits in a ring of 1,024 samples (128 ms) indexed by RTP timestamp
//! modulo 1,024, with one validity bit per sample. 1,024 divides 2^32, so the index stays
//! continuous across the wrap of the 32-bit timestamp; per-sample validity accepts packets of
//! any ptime (10, 20, 30 ms …) at any alignment. Everything is inline: constructing a buffer
//! allocates nothing, and neither does anything after.
//!
//! # Playout
//!
//! The *playout point* is the timestamp of the next sample [`JitterBuffer::pop_frame`] plays;
//! each pop, once per 20 ms tick, plays the 160 samples from there and normally advances it by
//! 160. The *depth* is the audio lined up from the playout point to the end of the newest
//! packet received, including the frame the next pop takes.
//!
//! - **Cap.** A packet is accepted only if it ends within one frame plus `max_delay` of the
//!   playout point. So the depth never exceeds `max_delay + 20 ms`, and right after a pop it
//!   never exceeds `max_delay`: no sample waits in the buffer longer than `max_delay` beyond
//!   the frame being played (plus the wait for the next tick, which no buffer can avoid).
//! - **Anchoring.** The first packet (after [`JitterBuffer::new`], [`JitterBuffer::reset`]
//!   or a second with nothing to play) is placed the target delay beyond the playout point.
//!   A steady 20 ms stream without jitter then settles at exactly the target after each pop
//!   (20 ms by default), one frame more just before it.
//! - **New timelines.** A timestamp more than a second from the playout point either way, or
//!   four late packets in a row, mean the sender changed its timestamp base. The packet goes
//!   right after the audio still buffered (renumbered onto the new timeline, so it still
//!   plays), or the target delay ahead if that is later.
//! - **Talkspurts.** When the buffer is empty and a packet arrives ahead of the playout point
//!   (the sender paused, or a loss burst ended), the playout point moves forward to meet it
//!   at the target delay rather than playing the gap out and keeping its length as delay.
//!   A source that simply stops sending (DTX; comfort noise is handled upstream) costs
//!   `conceal_frames` concealed frames and then plain silence, not loss or delay.
//!
//! # Adaptation, at frame boundaries only
//!
//! - **Running dry.** When a frame is missing and nothing at all is buffered behind it, its
//!   audio is more likely late than lost: the pop conceals without advancing, which grows the
//!   delay by a frame. A sender slower than the tick costs one such frame per 20 ms of drift.
//! - **Per second**, the least and greatest depth left after each pop are examined. If even
//!   the greatest was below the target, the next missing frame is held (the delay grows a
//!   frame without discarding anything). If the least was a frame or more (a frame of delay
//!   never needed) and the greatest at least a frame above the target, the next missing
//!   frame is skipped, its successor played at once; if no frame goes missing for another
//!   second with the same verdict, a frame of audio is dropped ([`JitterBuffer::dropped_frames`]).
//!   This bounds the delay a sender faster than the tick builds up.
//!
//! # Target
//!
//! The interarrival jitter is estimated as RFC 3550 §A.8 does (arrival `now` against the RTP
//! timestamp), and the target delay is three times it, rounded up to whole frames, clamped to
//! `[min_delay, max_delay - 20 ms]`: a frame of headroom under the cap absorbs packets that
//! bunch after a late one. The target rises as soon as the estimate exceeds it and falls only
//! when the estimate is more than a frame and a half below it, so it does not flap.
//!
//! # Concealment
//!
//! A missing frame is the last frame played, repeated with a linear fade that reaches exact
//! silence at the end of the `conceal_frames`-th concealed frame; after that the output is
//! zeros. Missing samples inside a partly received frame are filled the same way.

use super::{CLOCK_RATE_HZ, FRAME_SAMPLES, Frame};
use crate::time::{Duration, Instant};

const RING_SAMPLES: usize = 1024;
const RING_MASK: u32 = RING_SAMPLES as u32 - 1;
const VALID_WORDS: usize = RING_SAMPLES / 64;
const FRAME: u32 = FRAME_SAMPLES as u32;
const SAMPLES_PER_MS: u32 = CLOCK_RATE_HZ / 1000;
/// The largest usable `max_delay`: the accept window (a frame plus `max_delay`) must fit in
/// the ring, so no two live samples share a slot. 108 ms.
const MAX_DELAY_LIMIT: u32 = RING_SAMPLES as u32 - FRAME;
/// A timestamp more than this far from the playout point either way starts a new timeline:
/// 1 s.
const JUMP_SAMPLES: i64 = CLOCK_RATE_HZ as i64;
/// This many late packets in a row, none in time, mean the timeline went back (by less
/// than [`JUMP_SAMPLES`]) rather than a few stragglers: re-anchor on the last.
const LATE_STREAK_REANCHOR: u32 = 4;
/// Pops over which the depth is watched before the delay is adapted: 1 s.
const ADAPT_WINDOW_FRAMES: u32 = 50;
/// With nothing buffered and no packet for this long, the playout point is forgotten.
const IDLE_FORGET: Duration = Duration::from_secs(1);
/// Target delay in multiples of the estimated interarrival jitter.
const JITTER_MULTIPLE: u32 = 3;

/// Delay bounds and concealment length of one buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JitterConfig {
    /// Cap on the delay beyond the frame being played (see the module docs). At most 108.
    pub max_delay_ms: u32,
    /// Floor of the target delay. Clamped to `max_delay_ms - 20`.
    pub min_delay_ms: u32,
    /// Frames of faded concealment before a gap becomes silence.
    pub conceal_frames: u32,
}

impl Default for JitterConfig {
    fn default() -> Self {
        JitterConfig {
            max_delay_ms: 60,
            min_delay_ms: 20,
            conceal_frames: 3,
        }
    }
}

/// What [`JitterBuffer::pop_frame`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// Every sample was received.
    Audio,
    /// Some samples were received, the rest concealed.
    Partial,
    /// Nothing was received: a faded repeat of the last audio.
    Concealed,
    /// Zeros: nothing to play or conceal.
    Silence,
}

/// A delay change decided at the end of an adaptation window, made at the next missing frame
/// (where it costs no audio).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    None,
    /// Hold the playout point for a frame.
    Grow,
    /// Skip a frame.
    Shed,
}

/// A timestamp-indexed, adaptive playout buffer of linear PCM at 8 kHz.
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    cfg: JitterConfig,
    /// `cfg.max_delay_ms` in samples, at most [`MAX_DELAY_LIMIT`].
    max_delay: u32,
    /// Bounds of the target, in samples: `min_delay_ms`, and `max_delay_ms` less the frame
    /// of headroom that keeps a jittery stream's bunched arrivals under the cap.
    min_target: u32,
    max_target: u32,
    ring: [i16; RING_SAMPLES],
    /// Bit `n` of the ring: sample `n` holds received audio. Only samples in the accept
    /// window `[playout, playout + FRAME + max_delay)` are ever valid.
    valid: [u64; VALID_WORDS],
    /// False until the first packet: there is no playout point.
    anchored: bool,
    playout: u32,
    /// End of the newest audio received; never behind `playout`.
    head: u32,
    /// Target delay beyond the current frame, in samples.
    target: u32,
    /// Interarrival jitter × 16, in samples (RFC 3550 §A.8 fixed point).
    jitter_q4: u32,
    /// Relative transit time of the previous packet.
    transit: Option<u32>,
    last_arrival: Instant,
    /// The last frame played that held received audio: the source of concealment.
    last_good: Frame,
    /// Concealed frames left before silence; reset by every frame with received audio.
    conceal_left: u32,
    /// Least and greatest depth after a pop in the current adaptation window, and its pops.
    window_min: u32,
    window_max: u32,
    window_pops: u32,
    /// What the last window decided, to be done at the next missing frame.
    pending: Pending,
    late_streak: u32,
    late_discards: u64,
    overflow_discards: u64,
    concealed_frames: u64,
    dropped_frames: u64,
}

impl JitterBuffer {
    pub fn new(cfg: JitterConfig) -> Self {
        let max_delay = cfg
            .max_delay_ms
            .saturating_mul(SAMPLES_PER_MS)
            .min(MAX_DELAY_LIMIT);
        let max_target = max_delay.saturating_sub(FRAME);
        let min_target = cfg
            .min_delay_ms
            .saturating_mul(SAMPLES_PER_MS)
            .min(max_target);
        JitterBuffer {
            cfg,
            max_delay,
            min_target,
            max_target,
            ring: [0; RING_SAMPLES],
            valid: [0; VALID_WORDS],
            anchored: false,
            playout: 0,
            head: 0,
            target: min_target,
            jitter_q4: 0,
            transit: None,
            last_arrival: Instant::ZERO,
            last_good: [0; FRAME_SAMPLES],
            conceal_left: 0,
            window_min: u32::MAX,
            window_max: 0,
            window_pops: 0,
            pending: Pending::None,
            late_streak: 0,
            late_discards: 0,
            overflow_discards: 0,
            concealed_frames: 0,
            dropped_frames: 0,
        }
    }

    /// Back to the state of [`JitterBuffer::new`], statistics included.
    pub fn reset(&mut self) {
        *self = JitterBuffer::new(self.cfg);
    }

    /// Adds the decoded payload of one packet with RTP timestamp `rtp_ts`, received at `now`.
    /// At most a frame plus `max_delay` of it is kept; the rest is ignored.
    pub fn insert(&mut self, now: Instant, rtp_ts: u32, pcm: &[i16]) {
        let pcm = &pcm[..pcm.len().min(self.window() as usize)];
        if pcm.is_empty() {
            return;
        }
        let len = pcm.len() as i64;
        self.last_arrival = now;
        let transit = now.to_media_clock(CLOCK_RATE_HZ).wrapping_sub(rtp_ts);

        let mut start = match self.anchored.then(|| offset(self.playout, rtp_ts)) {
            Some(start) if start.abs() <= JUMP_SAMPLES => start,
            // The first packet, or a new timestamp base (the sender restarted, or resumed
            // after a long silence).
            _ => self.anchor(rtp_ts, len),
        };
        if start + len <= 0 {
            self.late_streak += 1;
            if self.late_streak < LATE_STREAK_REANCHOR {
                self.late_discards += 1;
                self.observe_transit(transit);
                return;
            }
            start = self.anchor(rtp_ts, len);
        }
        self.late_streak = 0;
        if self.depth() == 0 && start > 0 {
            // Nothing buffered and this packet is ahead: meet it at the target depth instead
            // of playing the gap out (see "Talkspurts" in the module docs).
            let skip = (start - i64::from(self.target)).max(0);
            self.advance(skip as u32);
            start -= skip;
        }
        if start + len > i64::from(self.window()) {
            self.overflow_discards += 1;
            self.observe_transit(transit);
            return;
        }
        // Samples already behind the playout point are of no use.
        let behind = (-start).max(0) as usize;
        let ts = rtp_ts.wrapping_add(behind as u32);
        let pcm = &pcm[behind..];
        if self.valid_count(ts, pcm.len() as u32) == pcm.len() as u32 {
            // A duplicate: the same audio again, and no news about the network's timing.
            return;
        }
        self.observe_transit(transit);
        self.write(ts, pcm);
        let end = rtp_ts.wrapping_add(len as u32);
        if offset(self.head, end) > 0 {
            self.head = end;
        }
    }

    /// Writes the next 160 samples to `out` and says what they are. Call exactly once per
    /// 20 ms tick.
    pub fn pop_frame(&mut self, now: Instant, out: &mut Frame) -> FrameKind {
        if !self.anchored {
            out.fill(0);
            return FrameKind::Silence;
        }
        let mut received = self.valid_count(self.playout, FRAME);
        if received == 0 && self.depth() > FRAME && self.pending == Pending::Shed {
            // Shed delay where it costs no audio: skip the missing frame, play the next now.
            self.advance(FRAME);
            self.pending = Pending::None;
            self.window_reset();
            received = self.valid_count(self.playout, FRAME);
        }
        let kind = self.render(received, out);
        let beyond = self.depth().saturating_sub(FRAME);
        if received == 0 && (beyond == 0 || self.pending == Pending::Grow) {
            // Run dry (the audio is more likely late than lost), or below target: wait a
            // frame for it, which grows the delay by one frame.
            self.pending = Pending::None;
            self.window_reset();
        } else {
            self.advance(FRAME);
            self.observe_depth(beyond);
        }
        if self.depth() == 0 && now.saturating_since(self.last_arrival) >= IDLE_FORGET {
            self.anchored = false;
            self.conceal_left = 0;
        }
        kind
    }

    /// Audio lined up from the playout point, including the frame the next pop takes.
    /// At most `max_delay_ms + 20`.
    pub fn depth_ms(&self) -> u32 {
        self.depth() / SAMPLES_PER_MS
    }

    pub fn target_delay_ms(&self) -> u32 {
        self.target / SAMPLES_PER_MS
    }

    /// The interarrival jitter estimate the target follows (RFC 3550 §A.8).
    pub fn jitter_ms(&self) -> f64 {
        f64::from(self.jitter_q4) / 16.0 / f64::from(SAMPLES_PER_MS)
    }

    /// Packets that arrived after their audio's turn to play.
    pub fn late_discards(&self) -> u64 {
        self.late_discards
    }

    /// Packets that would have pushed the depth past the cap.
    pub fn overflow_discards(&self) -> u64 {
        self.overflow_discards
    }

    /// Frames of faded concealment played (silence is not counted).
    pub fn concealed_frames(&self) -> u64 {
        self.concealed_frames
    }

    /// Frames of received audio dropped to shed delay (see "Shrinking"); missing frames
    /// skipped for the same reason cost nothing and are not counted.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// One frame plus `max_delay`: how far past the playout point audio is accepted.
    fn window(&self) -> u32 {
        FRAME + self.max_delay
    }

    fn depth(&self) -> u32 {
        if self.anchored {
            offset(self.playout, self.head).max(0) as u32
        } else {
            0
        }
    }

    /// Starts a new timeline on a packet of `len` samples at `ts`: it goes right after the
    /// audio still buffered, which keeps playing, or at the target delay from the playout
    /// point if that is later (or if there is no room for both). Returns the packet's offset
    /// from the (new) playout point.
    fn anchor(&mut self, ts: u32, len: i64) -> i64 {
        let (depth, target) = (i64::from(self.depth()), i64::from(self.target));
        let window = i64::from(self.window());
        let start = if depth > 0 && depth.max(target) + len <= window {
            let start = depth.max(target);
            self.rebase(ts.wrapping_sub(start as u32));
            start
        } else {
            let start = target.min(window - len);
            self.valid = [0; VALID_WORDS];
            self.playout = ts.wrapping_sub(start as u32);
            self.head = self.playout;
            self.anchored = true;
            start
        };
        // Transit across timelines says nothing about the network.
        self.transit = None;
        self.late_streak = 0;
        self.window_reset();
        start
    }

    /// Renumbers the buffered audio so the playout point becomes `playout`. Rare (a new
    /// timeline), so a whole-ring rotation is fine.
    fn rebase(&mut self, playout: u32) {
        let delta = playout.wrapping_sub(self.playout);
        let shift = (delta & RING_MASK) as usize;
        self.ring.rotate_right(shift);
        let old = self.valid;
        self.valid = [0; VALID_WORDS];
        for pos in (0..RING_SAMPLES).filter(|&pos| old[pos / 64] >> (pos % 64) & 1 != 0) {
            let moved = (pos + shift) % RING_SAMPLES;
            self.valid[moved / 64] |= 1 << (moved % 64);
        }
        self.playout = playout;
        self.head = self.head.wrapping_add(delta);
    }

    /// Moves the playout point `n` samples on, forgetting the audio passed over.
    fn advance(&mut self, n: u32) {
        self.set_valid(self.playout, n, false);
        self.playout = self.playout.wrapping_add(n);
        if offset(self.playout, self.head) < 0 {
            self.head = self.playout;
        }
    }

    /// Fills `out` from the frame at the playout point, of which `received` samples arrived.
    fn render(&mut self, received: u32, out: &mut Frame) -> FrameKind {
        let run = self.cfg.conceal_frames - self.conceal_left;
        let kind = if received == FRAME {
            self.read(self.playout, out);
            FrameKind::Audio
        } else if received > 0 {
            self.read(self.playout, out);
            for (i, o) in out.iter_mut().enumerate() {
                if !self.is_valid(self.playout.wrapping_add(i as u32)) {
                    *o = self.concealment(run, i);
                }
            }
            FrameKind::Partial
        } else if self.conceal_left > 0 {
            for (i, o) in out.iter_mut().enumerate() {
                *o = self.concealment(run, i);
            }
            self.conceal_left -= 1;
            self.concealed_frames += 1;
            FrameKind::Concealed
        } else {
            out.fill(0);
            FrameKind::Silence
        };
        if received > 0 {
            self.last_good = *out;
            self.conceal_left = self.cfg.conceal_frames;
        }
        kind
    }

    /// Accounts for the depth left after a pop (`beyond` the frame played) and, once per
    /// window, decides whether the delay should grow or shrink (see the module docs).
    fn observe_depth(&mut self, beyond: u32) {
        self.window_min = self.window_min.min(beyond);
        self.window_max = self.window_max.max(beyond);
        self.window_pops += 1;
        if self.window_pops < ADAPT_WINDOW_FRAMES {
            return;
        }
        let slack = self.window_min >= FRAME;
        let above = self.window_max >= self.target + FRAME;
        self.pending = if self.window_max < self.target {
            Pending::Grow
        } else if slack && above && self.pending == Pending::Shed {
            // A second window with slack and no missing frame to skip: drop one of audio.
            self.advance(FRAME);
            self.dropped_frames += 1;
            Pending::None
        } else if slack && above {
            Pending::Shed
        } else {
            Pending::None
        };
        self.window_reset();
    }

    fn window_reset(&mut self) {
        self.window_min = u32::MAX;
        self.window_max = 0;
        self.window_pops = 0;
    }

    /// RFC 3550 §A.8 on the packet's transit time, then the target that follows from it.
    fn observe_transit(&mut self, transit: u32) {
        if let Some(previous) = self.transit {
            let d = offset(previous, transit).unsigned_abs();
            // A change of a second or more is a discontinuity, not jitter.
            if d < JUMP_SAMPLES as u64 {
                self.jitter_q4 = self.jitter_q4 + d as u32 - ((self.jitter_q4 + 8) >> 4);
            }
        }
        self.transit = Some(transit);

        let spread = JITTER_MULTIPLE * ((self.jitter_q4 + 8) >> 4);
        let up = spread.next_multiple_of(FRAME);
        let down = (spread + FRAME / 2).next_multiple_of(FRAME);
        if up > self.target {
            self.target = up;
        } else if down < self.target {
            self.target = down;
        }
        self.target = self.target.clamp(self.min_target, self.max_target);
    }

    /// Sample `i` of the `run`-th consecutive concealed frame: the last good frame under a
    /// linear fade that reaches zero after `conceal_frames` frames.
    fn concealment(&self, run: u32, i: usize) -> i16 {
        let total = u64::from(self.cfg.conceal_frames) * u64::from(FRAME);
        let position = u64::from(run) * u64::from(FRAME) + i as u64;
        if position >= total {
            return 0;
        }
        (i64::from(self.last_good[i]) * (total - position) as i64 / total as i64) as i16
    }

    fn write(&mut self, ts: u32, pcm: &[i16]) {
        let pos = (ts & RING_MASK) as usize;
        let (first, second) = pcm.split_at(pcm.len().min(RING_SAMPLES - pos));
        self.ring[pos..pos + first.len()].copy_from_slice(first);
        self.ring[..second.len()].copy_from_slice(second);
        self.set_valid(ts, pcm.len() as u32, true);
    }

    fn read(&self, ts: u32, out: &mut Frame) {
        let pos = (ts & RING_MASK) as usize;
        let (first, second) = out.split_at_mut(FRAME_SAMPLES.min(RING_SAMPLES - pos));
        first.copy_from_slice(&self.ring[pos..pos + first.len()]);
        second.copy_from_slice(&self.ring[..second.len()]);
    }

    fn is_valid(&self, ts: u32) -> bool {
        let pos = (ts & RING_MASK) as usize;
        self.valid[pos / 64] >> (pos % 64) & 1 != 0
    }

    fn valid_count(&self, ts: u32, len: u32) -> u32 {
        ring_words(ts, len)
            .map(|(word, mask)| (self.valid[word] & mask).count_ones())
            .sum()
    }

    fn set_valid(&mut self, ts: u32, len: u32, valid: bool) {
        for (word, mask) in ring_words(ts, len) {
            if valid {
                self.valid[word] |= mask;
            } else {
                self.valid[word] &= !mask;
            }
        }
    }
}

/// Signed distance from timestamp `from` to `to`, across the wrap.
fn offset(from: u32, to: u32) -> i64 {
    i64::from(to.wrapping_sub(from) as i32)
}

/// The validity words and bit masks covering `len` ring samples from timestamp `ts`
/// (at most the whole ring; wrapping round its end).
fn ring_words(ts: u32, len: u32) -> impl Iterator<Item = (usize, u64)> {
    let mut pos = (ts & RING_MASK) as usize;
    let mut left = (len as usize).min(RING_SAMPLES);
    core::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let bit = pos % 64;
        let n = left.min(64 - bit);
        let item = (pos / 64, (u64::MAX >> (64 - n)) << bit);
        left -= n;
        pos = (pos + n) % RING_SAMPLES;
        Some(item)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};
    use rand_pcg::Pcg32;

    const TICK_US: u64 = 20_000;

    /// Frame `k` of a test stream: recognisable and never all zeros.
    fn content(k: u32) -> Frame {
        core::array::from_fn(|i| (1 + k % 20_000 + i as u32) as i16)
    }

    /// Which frame `f` is exactly, if any.
    fn identify(f: &Frame) -> Option<u32> {
        let k = u32::try_from(i32::from(f[0]) - 1).ok()?;
        (*f == content(k)).then_some(k)
    }

    /// One packet on the wire: frame `k` at `ts`, arriving at `at_us`.
    #[derive(Debug, Clone, Copy)]
    struct Delivery {
        at_us: u64,
        ts: u32,
        k: u32,
    }

    /// A sender of 20 ms frames `first..first + frames` from `ts0`, one every `period_us`,
    /// through a channel with reproducible loss, duplication, jitter (uniform in `jitter_us`) and
    /// reordering (an extra 20–25 ms). The first packet is neither lost nor delayed.
    #[derive(Clone)]
    struct Channel {
        first: u32,
        frames: u32,
        ts0: u32,
        t0_us: u64,
        period_us: u64,
        loss: f64,
        dup: f64,
        reorder: f64,
        jitter_us: core::ops::RangeInclusive<u64>,
    }

    impl Channel {
        fn clean(frames: u32) -> Self {
            Channel {
                first: 0,
                frames,
                ts0: 0x1234_5678,
                t0_us: 1_003_000,
                period_us: TICK_US,
                loss: 0.0,
                dup: 0.0,
                reorder: 0.0,
                jitter_us: 0..=0,
            }
        }

        fn deliveries(&self, case: u64) -> Vec<Delivery> {
            let mut rng = StdRng::from_rng(&mut Pcg32::new(case, 0));
            let mut out = Vec::new();
            for n in 0..self.frames {
                if n > 0 && rng.random_bool(self.loss) {
                    continue;
                }
                let copies = if rng.random_bool(self.dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let mut at_us = self.t0_us + u64::from(n) * self.period_us;
                    if n > 0 {
                        at_us += rng.random_range(self.jitter_us.clone());
                        if rng.random_bool(self.reorder) {
                            at_us += rng.random_range(20_000..=25_000);
                        }
                    }
                    let ts = self.ts0.wrapping_add(n * FRAME);
                    out.push(Delivery {
                        at_us,
                        ts,
                        k: self.first + n,
                    });
                }
            }
            out.sort_by_key(|d| d.at_us);
            out
        }
    }

    /// What a run produced: every pop, and the frames the buffer accepted (a copy of them
    /// arrived neither late nor over the cap).
    struct Outcome {
        pops: Vec<(FrameKind, Frame)>,
        accepted: Vec<u32>,
    }

    /// Delivers `deliveries` (sorted by time) and pops on `ticks` ticks from `first_tick_us`,
    /// checking the cap throughout.
    fn run(
        jb: &mut JitterBuffer,
        deliveries: &[Delivery],
        first_tick_us: u64,
        ticks: u32,
    ) -> Outcome {
        let mut next = deliveries.iter().peekable();
        let mut outcome = Outcome {
            pops: Vec::new(),
            accepted: Vec::new(),
        };
        for m in 0..u64::from(ticks) {
            let now = first_tick_us + m * TICK_US;
            while let Some(d) = next.next_if(|d| d.at_us <= now) {
                let discards = jb.late_discards() + jb.overflow_discards();
                jb.insert(Instant::from_micros(d.at_us), d.ts, &content(d.k));
                if jb.late_discards() + jb.overflow_discards() == discards {
                    outcome.accepted.push(d.k);
                }
                assert!(jb.depth_ms() <= 80, "cap: {} ms", jb.depth_ms());
            }
            let mut frame = [0x7777; FRAME_SAMPLES];
            let kind = jb.pop_frame(Instant::from_micros(now), &mut frame);
            assert!(jb.depth_ms() <= 60, "cap after a pop: {} ms", jb.depth_ms());
            outcome.pops.push((kind, frame));
        }
        outcome.accepted.sort_unstable();
        outcome.accepted.dedup();
        outcome
    }

    /// Checks pops against the ordered model and returns the frames played, in order: audio
    /// is exactly one frame's content, each frame at most once and in increasing order; a gap
    /// is at most `conceal` concealed frames (never a frame's exact content), then exact
    /// silence.
    fn check_model(pops: &[(FrameKind, Frame)], conceal: u32) -> Vec<u32> {
        let mut played: Vec<u32> = Vec::new();
        let mut run = conceal;
        for (n, (kind, frame)) in pops.iter().enumerate() {
            match kind {
                FrameKind::Audio => {
                    let k = identify(frame).unwrap_or_else(|| panic!("pop {n}: not a frame"));
                    assert!(
                        played.last().is_none_or(|&p| p < k),
                        "pop {n}: {k} after {played:?}"
                    );
                    played.push(k);
                    run = 0;
                }
                FrameKind::Partial => panic!("pop {n}: frames are aligned, nothing is partial"),
                FrameKind::Concealed => {
                    assert!(
                        identify(frame).is_none(),
                        "pop {n}: concealment replays a frame"
                    );
                    assert!(run < conceal, "pop {n}: concealment past {conceal} frames");
                    run += 1;
                }
                FrameKind::Silence => {
                    assert_eq!(frame, &[0; FRAME_SAMPLES], "pop {n}: silence is zeros");
                    run = conceal;
                }
            }
        }
        played
    }

    /// Runs `channel` and checks the model: every accepted frame is played exactly, in order,
    /// once, except the frames of audio the buffer says it dropped to shed delay.
    fn check_channel(channel: &Channel, cfg: JitterConfig, case: u64, ticks: u32) -> JitterBuffer {
        let deliveries = channel.deliveries(case);
        let mut jb = JitterBuffer::new(cfg);
        let outcome = run(&mut jb, &deliveries, 1_000_000 + case % 20 * 1_000, ticks);
        let played = check_model(&outcome.pops, cfg.conceal_frames);
        assert!(
            played
                .iter()
                .all(|k| outcome.accepted.binary_search(k).is_ok())
        );
        assert_eq!(
            outcome.accepted.len() - played.len(),
            jb.dropped_frames() as usize,
            "case {case}"
        );
        jb
    }

    #[test]
    fn steady_stream_settles_at_the_target() {
        let deliveries = Channel::clean(500).deliveries(0);
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let outcome = run(&mut jb, &deliveries, 1_010_000, 500);
        // Frame 0 arrives at 1.003 s, waits through the 1.010 s tick, and plays at 1.030 s:
        // 27 ms after arrival, 20 ms of it the target.
        assert_eq!(outcome.pops[0].0, FrameKind::Silence);
        assert!(
            outcome.pops[1..]
                .iter()
                .enumerate()
                .all(|(k, p)| identify(&p.1) == Some(k as u32))
        );
        assert_eq!((jb.depth_ms(), jb.target_delay_ms()), (20, 20));
        assert_eq!(
            jb.concealed_frames() + jb.late_discards() + jb.overflow_discards(),
            0
        );
    }

    #[test]
    fn matches_the_model_under_loss_duplication_and_bounded_jitter() {
        // Jitter within the depth: nothing may be discarded or dropped.
        let lossy = Channel {
            loss: 0.08,
            dup: 0.05,
            ..Channel::clean(1500)
        };
        let jittery = Channel {
            jitter_us: 1_000..=15_000,
            ..lossy.clone()
        };
        for case in 0..4 {
            for channel in [&lossy, &jittery] {
                let jb = check_channel(channel, JitterConfig::default(), case, 1550);
                assert_eq!(
                    jb.late_discards() + jb.overflow_discards() + jb.dropped_frames(),
                    0
                );
            }
        }
    }

    #[test]
    fn matches_the_model_under_reordering_and_heavy_jitter() {
        // Reordering and jitter beyond the depth: frames may be discarded, but what plays is
        // still exact, ordered, and accounted for.
        let reordered = Channel {
            loss: 0.05,
            dup: 0.05,
            reorder: 0.05,
            jitter_us: 1_000..=15_000,
            ..Channel::clean(1500)
        };
        let heavy = Channel {
            jitter_us: 1_000..=35_000,
            reorder: 0.0,
            ..reordered.clone()
        };
        for case in 0..4 {
            for channel in [&reordered, &heavy] {
                let jb = check_channel(channel, JitterConfig::default(), case, 1550);
                assert!(
                    jb.late_discards() + jb.overflow_discards() <= 30,
                    "case {case}: {jb:?}"
                );
            }
        }
        // The target follows the jitter.
        let jb = check_channel(&heavy, JitterConfig::default(), 9, 1550);
        assert_eq!(jb.target_delay_ms(), 40);
    }

    #[test]
    fn a_fast_sender_never_pushes_the_depth_past_the_cap() {
        // 1 % fast for a minute: 30 frames too many, shed one at a time; `run` checks the cap.
        let fast = Channel {
            period_us: 19_800,
            ..Channel::clean(3030)
        };
        let jb = check_channel(&fast, JitterConfig::default(), 0, 3050);
        assert!((28..=30).contains(&jb.dropped_frames()), "{jb:?}");
        assert_eq!(jb.late_discards() + jb.overflow_discards(), 0);
    }

    #[test]
    fn a_slow_sender_costs_one_concealed_frame_per_frame_of_drift() {
        // 1 % slow for a minute: 30 frames too few; every frame sent is played.
        let slow = Channel {
            period_us: 20_200,
            ..Channel::clean(2970)
        };
        let deliveries = slow.deliveries(0);
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let outcome = run(&mut jb, &deliveries, 1_000_000, 3000);
        assert_eq!(check_model(&outcome.pops, 3).len(), 2970);
        assert!(jb.concealed_frames() <= 30, "{jb:?}");
        assert_eq!(
            jb.late_discards() + jb.overflow_discards() + jb.dropped_frames(),
            0
        );
    }

    #[test]
    fn timestamps_wrap_around_u32_max() {
        let channel = Channel {
            ts0: u32::MAX - 40 * FRAME + 17,
            loss: 0.05,
            ..Channel::clean(200)
        };
        let jb = check_channel(&channel, JitterConfig::default(), 1, 220);
        assert_eq!(
            jb.late_discards() + jb.overflow_discards() + jb.dropped_frames(),
            0
        );
    }

    #[test]
    fn starts_mid_stream_at_any_phase() {
        for phase_us in [0, 1, 7_000, 19_999] {
            let channel = Channel {
                first: 777,
                ts0: 98_765,
                t0_us: 5_000_000 + phase_us,
                jitter_us: 0..=9_000,
                ..Channel::clean(100)
            };
            let deliveries = channel.deliveries(phase_us);
            let mut jb = JitterBuffer::new(JitterConfig::default());
            let played = check_model(&run(&mut jb, &deliveries, 4_000_000, 400).pops, 3);
            assert_eq!(played, (777..877).collect::<Vec<_>>());
        }
    }

    /// Runs two streams back to back (the second's timestamps re-based by `ts_jump`) and
    /// returns the pops and the buffer.
    fn two_streams(ts_jump: u32, pause_us: u64) -> (Vec<(FrameKind, Frame)>, JitterBuffer) {
        let a = Channel::clean(100);
        let b = Channel {
            first: 100,
            ts0: a.ts0.wrapping_add(100 * FRAME).wrapping_add(ts_jump),
            t0_us: a.t0_us + 100 * TICK_US + pause_us,
            ..Channel::clean(100)
        };
        let mut deliveries = a.deliveries(0);
        deliveries.extend(b.deliveries(0));
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let ticks = 230 + (pause_us / TICK_US) as u32;
        let outcome = run(&mut jb, &deliveries, 1_010_000, ticks);
        (outcome.pops, jb)
    }

    /// Non-audio pops between the two streams' frames.
    fn gap(pops: &[(FrameKind, Frame)]) -> usize {
        let last_a = pops
            .iter()
            .position(|p| identify(&p.1) == Some(99))
            .expect("frame 99");
        let first_b = pops
            .iter()
            .position(|p| identify(&p.1) == Some(100))
            .expect("frame 100");
        first_b - last_a - 1
    }

    #[test]
    fn a_timestamp_jump_re_anchors() {
        // A new timestamp base more than a second away, either way: no gap at all beyond the
        // pre-roll of the new anchor (one frame).
        for jump in [
            3_000_000,
            3_000_000u32.wrapping_neg(),
            10_000,
            10_000u32.wrapping_neg(),
        ] {
            let (pops, jb) = two_streams(jump, 0);
            assert_eq!(
                check_model(&pops, 3),
                (0..200).collect::<Vec<_>>(),
                "jump {jump}"
            );
            assert!(gap(&pops) <= 1, "jump {jump}: {}", gap(&pops));
            assert_eq!(jb.late_discards() + jb.overflow_discards(), 0);
        }
        // Half a second back: the first few packets look late, then the buffer re-anchors.
        let (pops, jb) = two_streams(4_000u32.wrapping_neg(), 0);
        let played = check_model(&pops, 3);
        assert_eq!(jb.late_discards(), u64::from(LATE_STREAK_REANCHOR) - 1);
        assert_eq!(played.len(), 200 - jb.late_discards() as usize);
    }

    #[test]
    fn a_source_that_stops_is_silence_not_loss() {
        // 2 s and 200 ms pauses with the timestamp following the clock (RFC 3550 §5.1): three
        // faded frames, then exact zeros, then the next talkspurt at the target depth.
        for pause_us in [2_000_000, 200_000] {
            let (pops, jb) = two_streams((pause_us / 125) as u32, pause_us);
            assert_eq!(check_model(&pops, 3), (0..200).collect::<Vec<_>>());
            let g = gap(&pops);
            assert!(
                g.abs_diff((pause_us / TICK_US) as usize) <= 1,
                "pause {pause_us}: gap {g}"
            );
            assert_eq!(jb.concealed_frames(), 6, "3 per silence, the end included");
            assert_eq!(
                jb.late_discards() + jb.overflow_discards() + jb.dropped_frames(),
                0
            );
            assert_eq!(jb.target_delay_ms(), 20);
        }
    }

    #[test]
    fn concealment_fades_to_exact_silence() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let loud = [10_000; FRAME_SAMPLES];
        let mut out = [0; FRAME_SAMPLES];
        let t = |ms| Instant::from_millis(ms);
        jb.insert(t(0), 0, &loud);
        jb.insert(t(1), FRAME, &loud);
        let kinds = [10, 30, 50].map(|ms| jb.pop_frame(t(ms), &mut out));
        assert_eq!(
            kinds,
            [FrameKind::Silence, FrameKind::Audio, FrameKind::Audio]
        );
        let mut previous_end = 10_000;
        for n in 0..3 {
            assert_eq!(jb.pop_frame(t(70 + 20 * n), &mut out), FrameKind::Concealed);
            assert!(out[0] <= previous_end && out.windows(2).all(|w| w[1] <= w[0]));
            previous_end = out[FRAME_SAMPLES - 1];
        }
        assert!(previous_end < 100);
        assert_eq!(jb.pop_frame(t(130), &mut out), FrameKind::Silence);
        assert_eq!(out, [0; FRAME_SAMPLES]);
        assert_eq!(jb.concealed_frames(), 3);
    }

    #[test]
    fn other_ptimes_and_partial_frames() {
        // 30 ms packets (240 samples) straddle frames; 10 ms packets with one missing give a
        // partial frame whose gap is concealed from the previous frame.
        let ramp = |ts: u32| -> Vec<i16> { (0..240).map(|i| ((ts + i) % 30_000) as i16).collect() };
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let mut played = Vec::new();
        let mut out = [0; FRAME_SAMPLES];
        // Packet n holds 30n..30n+30 ms and arrives when complete; ticks every 20 ms.
        for ms in 0..1_200u32 {
            if ms % 30 == 0 {
                let ts = ms / 30 * 240;
                jb.insert(Instant::from_millis(u64::from(ms) + 30), ts, &ramp(ts));
            }
            if ms % 20 == 5 {
                match jb.pop_frame(Instant::from_millis(u64::from(ms) + 30), &mut out) {
                    FrameKind::Silence if played.is_empty() => {}
                    kind => {
                        assert_eq!(kind, FrameKind::Audio, "at {ms} ms");
                        played.extend_from_slice(&out);
                    }
                }
            }
        }
        assert!(played.iter().zip(0..).all(|(&x, t)| x as u32 == t));
        assert!(played.len() >= 55 * FRAME_SAMPLES);

        let mut jb = JitterBuffer::new(JitterConfig::default());
        for (n, ts) in [0, 80, 160, 320, 400].into_iter().enumerate() {
            jb.insert(Instant::from_millis(n as u64), ts, &[1000; 80]);
        }
        let kinds = [10, 30, 50].map(|ms| jb.pop_frame(Instant::from_millis(ms), &mut out));
        assert_eq!(
            kinds,
            [FrameKind::Silence, FrameKind::Audio, FrameKind::Partial]
        );
        assert_eq!(out[..80], [1000; 80]); // the received half
        assert!(out[80..].iter().all(|&x| x > 0 && x <= 1000)); // the concealed half
    }

    #[test]
    fn reset_forgets_everything() {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        jb.insert(Instant::from_millis(0), 5, &[1; 160]);
        jb.insert(Instant::from_millis(0), 5u32.wrapping_sub(8000), &[1; 160]);
        jb.reset();
        let mut out = [1; FRAME_SAMPLES];
        assert_eq!(
            jb.pop_frame(Instant::from_millis(20), &mut out),
            FrameKind::Silence
        );
        assert_eq!(out, [0; FRAME_SAMPLES]);
        assert_eq!(
            (jb.depth_ms(), jb.late_discards(), jb.target_delay_ms()),
            (0, 0, 20)
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// A packet `dts` from the previous one's timestamp, or at `ts` if `dts` is `None`.
        Insert {
            dt_us: u64,
            ts: u32,
            dts: Option<i32>,
            len: usize,
        },
        Pop {
            dt_us: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        let dts = prop::option::weighted(0.9, -2_000..3_000i32);
        prop_oneof![
            (0..30_000u64, any::<u32>(), dts, 0..1_500usize).prop_map(|(dt_us, ts, dts, len)| {
                Op::Insert {
                    dt_us,
                    ts,
                    dts,
                    len,
                }
            }),
            prop_oneof![Just(20_000u64), 0..3_000_000u64].prop_map(|dt_us| Op::Pop { dt_us }),
        ]
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_the_cap(
            ops in prop::collection::vec(op(), 1..300),
            max_delay_ms in 0..200u32,
            min_delay_ms in 0..200u32,
            conceal_frames in 0..6u32,
        ) {
            let cfg = JitterConfig { max_delay_ms, min_delay_ms, conceal_frames };
            let mut jb = JitterBuffer::new(cfg);
            let cap = max_delay_ms.min(108);
            let pcm: Vec<i16> = (0..1_500).map(|i| i as i16 - 700).collect();
            let (mut now, mut last_ts) = (0u64, 0u32);
            for op in ops {
                match op {
                    Op::Insert { dt_us, ts, dts, len } => {
                        now += dt_us;
                        last_ts = dts.map_or(ts, |d| last_ts.wrapping_add_signed(d));
                        jb.insert(Instant::from_micros(now), last_ts, &pcm[..len]);
                        prop_assert!(jb.depth_ms() <= cap + 20);
                    }
                    Op::Pop { dt_us } => {
                        now += dt_us;
                        let mut out = [0x5555; FRAME_SAMPLES];
                        let kind = jb.pop_frame(Instant::from_micros(now), &mut out);
                        prop_assert!(jb.depth_ms() <= cap);
                        if kind == FrameKind::Silence {
                            prop_assert_eq!(out, [0; FRAME_SAMPLES]);
                        }
                    }
                }
            }
        }
    }
}
