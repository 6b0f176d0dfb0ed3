//! One call's media: its legs, what each hears, and the packets that follow (SPEC §1).
//!
//! A [`Call`] is sans-IO (STYLE.md 1, 3). The engine hands it every datagram that arrived on
//! one of its legs with [`Call::handle_datagram`], and calls [`Call::tick`] every 20 ms; the
//! call answers through an [`Output`]: datagrams to transmit from one of its legs, and
//! [`CallEvent`]s for the control plane. It never reads a clock and, once admitted, never
//! allocates: every leg, jitter buffer and scratch buffer is sized when the call or the
//! supervisor leg is created.
//!
//! Each output (what one leg is sent) is planned from the hearing matrix:
//! - **relay** when it hears exactly one leg with the same codec: each packet is forwarded as it
//!   arrives, with only its header rewritten (no decode, no buffering);
//! - **mix** otherwise (two or more sources, a transcode, a tone, or nothing at all, which is
//!   sent as silence): on every tick, one 20 ms frame from each source's jitter buffer is summed
//!   with saturation and encoded.
//!
//! Whatever the plan, every output is one RTP stream of its own: one SSRC, sequence numbers
//! without gaps of our making, and timestamps that follow wall-clock time across every
//! relay ⇄ mix switch ([`OutputStream`]).

use std::net::SocketAddr;

use crate::media::jitter::{JitterBuffer, JitterConfig};
use crate::media::matrix::{LegId, LegSet, MAX_LEGS, MAX_SUPERVISORS, Matrix, Mode};
use crate::media::mixer::mix_into;
use crate::media::seq::{SeqTracker, SeqUpdate};
use crate::media::tone::{SUPERVISION_BEEP, Tone};
use crate::media::{CLOCK_RATE_HZ, FRAME_SAMPLES, Frame};
use crate::time::{Duration, Instant};
use crate::wire::g711::Codec;
use crate::wire::rtcp::validate_compound;
use crate::wire::rtp::{RtpHeader, RtpPacket, SeqNo, Ssrc, is_rtcp};
use crate::wire::telephone_event::{TelephoneEvent, dtmf_digit};

/// The largest datagram a leg accepts and the largest it emits. Ethernet MTU-sized.
pub const MAX_DATAGRAM: usize = 1500;
/// The most samples one inbound packet may carry into a jitter buffer (120 ms of G.711).
const MAX_PACKET_SAMPLES: usize = 960;
/// RFC 3389 comfort noise: relayed as is, treated as silence when mixed.
const COMFORT_NOISE_PT: u8 = 13;

/// What a call needs to know that is the same for all its legs.
#[derive(Debug, Clone, Copy)]
pub struct CallConfig {
    /// A leg that receives no RTP for this long is reported with [`CallEvent::MediaTimeout`].
    pub media_timeout: Duration,
    /// The same for a held leg ([`Call::set_held`]), which may rightly send nothing for as long
    /// as the hold lasts (`a=inactive` / `sendonly` phones): only a leg silent this long is
    /// taken to have vanished (rtpengine's `--silent-timeout`). Not shorter than
    /// `media_timeout`.
    pub silent_timeout: Duration,
    /// The RTP payload type of RFC 4733 telephone-events.
    pub telephone_event_pt: u8,
    pub jitter: JitterConfig,
}

impl Default for CallConfig {
    fn default() -> Self {
        CallConfig {
            media_timeout: Duration::from_secs(60),
            silent_timeout: Duration::from_secs(3600),
            telephone_event_pt: 101,
            jitter: JitterConfig::default(),
        }
    }
}

/// How a leg decides which source addresses it accepts (RTP Bleed, CVE-2017-14099 class).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourcePolicy {
    /// The remote is known (from signalling): only it is accepted.
    Strict(SocketAddr),
    /// The remote is not known: the first source is latched and then locked.
    Latching(Option<SocketAddr>),
}

impl SourcePolicy {
    pub fn from_remote(remote: Option<SocketAddr>) -> SourcePolicy {
        remote.map_or(SourcePolicy::Latching(None), SourcePolicy::Strict)
    }

    /// Where this leg's output goes, once known.
    pub fn destination(self) -> Option<SocketAddr> {
        match self {
            SourcePolicy::Strict(addr) => Some(addr),
            SourcePolicy::Latching(latched) => latched,
        }
    }

    /// Accepts `src` (latching it if nothing is latched yet) or refuses it.
    fn admit(&mut self, src: SocketAddr) -> bool {
        match self {
            SourcePolicy::Strict(addr) => *addr == src,
            SourcePolicy::Latching(Some(addr)) => *addr == src,
            SourcePolicy::Latching(latched @ None) => {
                *latched = Some(src);
                true
            }
        }
    }
}

/// Why a datagram was dropped. Counted per call and exported by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// From an address the leg does not accept.
    WrongSource,
    /// Not a valid RTP or RTCP packet.
    Malformed,
    /// An RTP payload type the leg does not carry.
    UnknownPayloadType,
    /// A packet seen before.
    Duplicate,
    /// Too old to be of use: before a relay's switch point, or a sequence jump RFC 3550 §A.1
    /// says to discard.
    Stale,
    /// For a leg that is not (or no longer) part of the call.
    InactiveLeg,
    /// Not relayed or mixed into an output at a relay ⇄ mix switch, where it would have left
    /// less than half a frame after the previous packet (see `OutputStream::segment_start_ts`).
    Realign,
}

impl DropReason {
    pub const ALL: [DropReason; 7] = [
        DropReason::WrongSource,
        DropReason::Malformed,
        DropReason::UnknownPayloadType,
        DropReason::Duplicate,
        DropReason::Stale,
        DropReason::InactiveLeg,
        DropReason::Realign,
    ];
    pub const COUNT: usize = Self::ALL.len();

    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::WrongSource => "wrong_source",
            DropReason::Malformed => "malformed",
            DropReason::UnknownPayloadType => "unknown_payload_type",
            DropReason::Duplicate => "duplicate",
            DropReason::Stale => "stale",
            DropReason::InactiveLeg => "inactive_leg",
            DropReason::Realign => "realign",
        }
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// What a call tells the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallEvent {
    /// A supervisor pressed a key (RFC 4733), reported once per key press.
    Dtmf { leg: LegId, digit: char },
    /// A leg received no RTP for the media timeout (the silent timeout while it is held).
    /// Reported once, until RTP flows again or its hold changes.
    MediaTimeout { leg: LegId },
    /// A latching leg locked to its first source (SPEC §1 source checking): from now on it
    /// accepts packets only from `remote`, and sends there. Reported once per leg.
    Latched { leg: LegId, remote: SocketAddr },
}

/// Where a call's packets and events go. Implemented by the engine (and by tests).
pub trait Output {
    /// Sends `datagram` from `leg`'s local address to `dst`. Called with a borrowed buffer: an
    /// implementation copies what it keeps.
    fn transmit(&mut self, leg: LegId, dst: SocketAddr, datagram: &[u8]);
    /// Reports an event to the control plane.
    fn event(&mut self, event: CallEvent);
}

/// Counters of one leg, owned by the call and published by the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegCounters {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_dropped: u64,
    pub rtcp_in: u64,
}

/// How an output is produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Forward `from`'s packets with a rewritten header.
    Relay { from: LegId },
    /// Mix one frame of every source (and the tone, if any) on each tick.
    Mix,
}

/// The RTP stream the appliance sends to one leg (SPEC §1: its own SSRC, continuous sequence
/// numbers and timestamps across every mode change).
#[derive(Debug, Clone, Copy)]
struct OutputStream {
    ssrc: Ssrc,
    /// The sequence number of the next packet of our making.
    next_seq: u16,
    /// The timestamp of the newest packet sent.
    last_ts: u32,
    /// The stream's first packet: the media clock when it was sent, and its timestamp. From
    /// it, the timestamp that wall-clock time says a packet sent now should carry
    /// ([`OutputStream::clock_ts`]). `None` until a packet has been sent.
    anchor: Option<(u32, u32)>,
    /// The next packet starts a new segment (after a switch): rebase and set the marker.
    rebase: bool,
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

impl OutputStream {
    fn new(ssrc: Ssrc, initial_seq: u16, initial_ts: u32) -> Self {
        OutputStream {
            ssrc,
            next_seq: initial_seq,
            last_ts: initial_ts,
            anchor: None,
            rebase: true,
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

    /// Header fields for the next mixed (or generated) frame, or `None` to skip this tick
    /// (see [`OutputStream::segment_start_ts`]). Within a mixed segment each frame advances by
    /// the whole frames of wall-clock time since the last one: one, unless ticks were missed
    /// under load, which then shows as a gap rather than as a slowed clock.
    fn next_mixed(&mut self, now: Instant, payload_type: u8) -> Option<RtpHeader> {
        let (ts, marker) = if self.rebase || self.anchor.is_none() {
            let ts = self.segment_start_ts(now)?;
            self.rebase = false;
            (ts, true)
        } else {
            let frames = self.frames_to_clock(now).map_or(1, |f| f.max(1));
            (self.frames_after_last(frames), false)
        };
        Some(self.emit(now, payload_type, marker, self.next_seq, ts))
    }

    /// Header fields for a relayed packet, or why it is not relayed: it predates the current
    /// segment, or it is skipped to keep the stream in step (see `segment_start_ts`).
    fn next_relayed(
        &mut self,
        now: Instant,
        input: &RtpPacket<&[u8]>,
        ext_seq: u64,
    ) -> Result<RtpHeader, DropReason> {
        let in_seq = input.sequence_number().0;
        let mut marker = input.marker();
        if self.rebase {
            let start = self.segment_start_ts(now).ok_or(DropReason::Realign)?;
            self.rebase = false;
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
    fn next_event(&mut self, now: Instant, input: &RtpPacket<&[u8]>) -> RtpHeader {
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

/// One leg of a call: the party's source policy and inbound state, and the stream we send it.
pub struct Leg {
    codec: Codec,
    source: SourcePolicy,
    /// The SSRC the inbound stream currently has; a change restarts sequence tracking.
    in_ssrc: Option<Ssrc>,
    seq: SeqTracker,
    jitter: JitterBuffer,
    /// This tick's frame from the jitter buffer, when the leg feeds a mix.
    frame: Frame,
    /// When the leg last received RTP, or its hold changed: where its silence is counted from.
    last_rx: Instant,
    timed_out: bool,
    /// The party is on hold: its silence is judged by the silent timeout, not the media one.
    held: bool,
    /// The timestamp of the last supervisor key press reported (RFC 4733 event start).
    last_key_ts: Option<u32>,
    out: OutputStream,
    plan: Plan,
    /// A tone played into this leg's output (the supervision beep).
    tone: Option<Tone>,
    /// The supervision mode, for supervisor legs.
    mode: Option<Mode>,
    counters: LegCounters,
}

impl Leg {
    /// A leg, with every buffer it will ever need. `ssrc` and the initial sequence number and
    /// timestamp of its output should be random (RFC 3550 §5.1).
    pub fn new(
        codec: Codec,
        remote: Option<SocketAddr>,
        ssrc: Ssrc,
        initial_seq: u16,
        initial_ts: u32,
        jitter: JitterConfig,
        now: Instant,
    ) -> Box<Leg> {
        Box::new(Leg {
            codec,
            source: SourcePolicy::from_remote(remote),
            in_ssrc: None,
            seq: SeqTracker::new(),
            jitter: JitterBuffer::new(jitter),
            frame: [0; FRAME_SAMPLES],
            last_rx: now,
            timed_out: false,
            held: false,
            last_key_ts: None,
            out: OutputStream::new(ssrc, initial_seq, initial_ts),
            plan: Plan::Mix,
            tone: None,
            mode: None,
            counters: LegCounters::default(),
        })
    }

    pub fn codec(&self) -> Codec {
        self.codec
    }

    pub fn source(&self) -> SourcePolicy {
        self.source
    }

    pub fn counters(&self) -> LegCounters {
        self.counters
    }

    /// Cumulative packets lost (RFC 3550 §A.3).
    pub fn packets_lost(&self) -> i64 {
        self.seq.lost()
    }

    /// Interarrival jitter (RFC 3550 §A.8), milliseconds.
    pub fn jitter_ms(&self) -> f64 {
        self.seq.jitter_ms()
    }

    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Whether the party is on hold ([`Call::set_held`]).
    pub fn held(&self) -> bool {
        self.held
    }

    /// How long this leg may stay silent before it is reported ([`CallEvent::MediaTimeout`]).
    fn silence_limit(&self, config: &CallConfig) -> Duration {
        if self.held {
            config.silent_timeout
        } else {
            config.media_timeout
        }
    }

    /// The SSRC of the stream sent to this leg.
    pub fn output_ssrc(&self) -> Ssrc {
        self.out.ssrc
    }
}

/// A call's media state. See the module documentation.
pub struct Call {
    config: CallConfig,
    legs: [Option<Box<Leg>>; MAX_LEGS],
    matrix: Matrix,
    /// Legs whose audio feeds at least one mixed output this tick (their jitter buffers run).
    mixed_sources: LegSet,
    drops: [u64; DropReason::COUNT],
    /// Scratch for building one outgoing datagram.
    datagram: [u8; MAX_DATAGRAM],
    /// Scratch for decoding one inbound packet.
    pcm: [i16; MAX_PACKET_SAMPLES],
}

impl Call {
    /// A call between `customer` and `agent`, relaying both ways.
    pub fn new(config: CallConfig, customer: Box<Leg>, agent: Box<Leg>) -> Box<Call> {
        let mut call = Box::new(Call {
            config,
            legs: Default::default(),
            matrix: Matrix::default(),
            mixed_sources: LegSet::EMPTY,
            drops: [0; DropReason::COUNT],
            datagram: [0; MAX_DATAGRAM],
            pcm: [0; MAX_PACKET_SAMPLES],
        });
        call.legs[LegId::CUSTOMER.index()] = Some(customer);
        call.legs[LegId::AGENT.index()] = Some(agent);
        call.replan();
        call
    }

    /// The first free supervisor slot, if any.
    pub fn free_supervisor_slot(&self) -> Option<LegId> {
        (2..MAX_LEGS)
            .map(|i| LegId(i as u8))
            .find(|l| self.legs[l.index()].is_none())
    }

    /// Adds a supervisor leg at `slot` in [`Mode::Listen`]; with `beep`, the agent hears the
    /// supervision tone. Returns the leg back if `slot` is not a free supervisor slot.
    pub fn add_supervisor(
        &mut self,
        slot: LegId,
        mut leg: Box<Leg>,
        beep: bool,
    ) -> Result<(), Box<Leg>> {
        if !slot.is_supervisor() || slot.index() >= MAX_LEGS || self.legs[slot.index()].is_some() {
            return Err(leg);
        }
        leg.mode = Some(Mode::Listen);
        self.legs[slot.index()] = Some(leg);
        if beep && let Some(agent) = self.legs[LegId::AGENT.index()].as_deref_mut() {
            agent.tone = Some(Tone::from_spec(SUPERVISION_BEEP));
        }
        self.replan();
        Ok(())
    }

    /// Removes a supervisor leg, returning it (the engine frees it off the packet path).
    pub fn remove_supervisor(&mut self, slot: LegId) -> Option<Box<Leg>> {
        if !slot.is_supervisor() || slot.index() >= MAX_LEGS {
            return None;
        }
        let leg = self.legs[slot.index()].take();
        self.replan();
        leg
    }

    /// Changes a supervisor's mode. Returns false if `slot` holds no supervisor.
    pub fn set_mode(&mut self, slot: LegId, mode: Mode) -> bool {
        match self.supervisor_mut(slot) {
            Some(leg) => {
                leg.mode = Some(mode);
                self.replan();
                true
            }
            None => false,
        }
    }

    /// Sets a leg's remote address: the leg becomes strict-source toward it.
    pub fn set_remote(&mut self, leg: LegId, remote: SocketAddr) -> bool {
        match self.leg_mut(leg) {
            Some(l) => {
                l.source = SourcePolicy::Strict(remote);
                true
            }
            None => false,
        }
    }

    /// Puts a leg's party on hold (`held`) or takes it off: a held leg may stay silent for the
    /// silent timeout instead of the media timeout. Either way its silence is counted afresh
    /// from `now`, so a party that resumes has the whole media timeout to send again, and a
    /// leg already reported may be reported again. Setting the state it has changes nothing.
    /// Returns false if there is no such leg.
    pub fn set_held(&mut self, leg: LegId, held: bool, now: Instant) -> bool {
        match self.leg_mut(leg) {
            Some(l) => {
                if l.held != held {
                    l.held = held;
                    l.last_rx = l.last_rx.max(now);
                    l.timed_out = false;
                }
                true
            }
            None => false,
        }
    }

    pub fn leg(&self, leg: LegId) -> Option<&Leg> {
        self.legs.get(leg.index()).and_then(|l| l.as_deref())
    }

    pub fn matrix(&self) -> &Matrix {
        &self.matrix
    }

    /// Drops by reason since the last call, resetting them.
    pub fn take_drops(&mut self) -> [u64; DropReason::COUNT] {
        core::mem::replace(&mut self.drops, [0; DropReason::COUNT])
    }

    fn leg_mut(&mut self, leg: LegId) -> Option<&mut Leg> {
        self.legs
            .get_mut(leg.index())
            .and_then(|l| l.as_deref_mut())
    }

    fn supervisor_mut(&mut self, slot: LegId) -> Option<&mut Leg> {
        if slot.is_supervisor() {
            self.leg_mut(slot)
        } else {
            None
        }
    }

    fn active(&self) -> LegSet {
        (0..MAX_LEGS as u8)
            .map(LegId)
            .filter(|l| self.legs[l.index()].is_some())
            .fold(LegSet::EMPTY, LegSet::with)
    }

    /// Recomputes the matrix and every output's plan. Called on every change of legs, modes
    /// or tones; an output whose plan changes starts a new segment of its stream.
    fn replan(&mut self) {
        let mut modes = [None; MAX_SUPERVISORS];
        for (i, mode) in modes.iter_mut().enumerate() {
            *mode = self.legs[2 + i].as_ref().and_then(|l| l.mode);
        }
        self.matrix = Matrix::from_modes(&modes);
        let active = self.active();
        let mut mixed_sources = LegSet::EMPTY;
        for listener in active.iter() {
            let hears = self.hears(listener, active);
            let codec = self.legs[listener.index()].as_ref().map(|l| l.codec);
            let relay_from = hears.single().filter(|from| {
                self.legs[from.index()].as_ref().map(|l| l.codec) == codec
                    && self.legs[listener.index()]
                        .as_ref()
                        .is_some_and(|l| l.tone.is_none())
            });
            let plan = match relay_from {
                Some(from) => Plan::Relay { from },
                None => {
                    for source in hears.iter() {
                        mixed_sources = mixed_sources.with(source);
                    }
                    Plan::Mix
                }
            };
            if let Some(leg) = self.legs[listener.index()].as_deref_mut()
                && leg.plan != plan
            {
                leg.plan = plan;
                leg.out.rebase = true;
            }
        }
        // A leg that starts feeding a mix starts from an empty jitter buffer, anchored on its
        // next packet.
        for leg in active.iter() {
            if mixed_sources.contains(leg)
                && !self.mixed_sources.contains(leg)
                && let Some(l) = self.legs[leg.index()].as_deref_mut()
            {
                l.jitter.reset();
            }
        }
        self.mixed_sources = mixed_sources;
    }

    /// Whom `listener` hears among the active legs.
    fn hears(&self, listener: LegId, active: LegSet) -> LegSet {
        self.matrix
            .hears(listener)
            .iter()
            .filter(|l| active.contains(*l))
            .fold(LegSet::EMPTY, LegSet::with)
    }

    fn drop_packet(&mut self, leg: LegId, reason: DropReason) {
        self.drops[reason.index()] += 1;
        if let Some(l) = self.leg_mut(leg) {
            l.counters.packets_dropped += 1;
        }
    }

    /// Handles one datagram that arrived on `leg`'s local address from `src`.
    pub fn handle_datagram(
        &mut self,
        leg: LegId,
        src: SocketAddr,
        datagram: &[u8],
        now: Instant,
        out: &mut impl Output,
    ) {
        let te_pt = self.config.telephone_event_pt;
        let Some(l) = self.leg_mut(leg) else {
            self.drops[DropReason::InactiveLeg.index()] += 1;
            return;
        };
        let latching = l.source == SourcePolicy::Latching(None);
        if !l.source.admit(src) {
            return self.drop_packet(leg, DropReason::WrongSource);
        }
        if latching {
            out.event(CallEvent::Latched { leg, remote: src });
        }
        // RTCP multiplexed on the RTP port (RFC 5761 §4): consumed here, never forwarded: each
        // output is a stream of our own, so the peer's reports are not the receivers' business.
        if is_rtcp(datagram) {
            return match validate_compound(datagram) {
                Ok(()) => l.counters.rtcp_in += 1,
                Err(_) => self.drop_packet(leg, DropReason::Malformed),
            };
        }
        let Ok(packet) = RtpPacket::new_checked(datagram) else {
            return self.drop_packet(leg, DropReason::Malformed);
        };
        let pt = packet.payload_type();
        let audio = Codec::from_payload_type(pt);
        if audio.is_none() && pt != te_pt && pt != COMFORT_NOISE_PT {
            return self.drop_packet(leg, DropReason::UnknownPayloadType);
        }
        l.counters.packets_in += 1;
        l.counters.bytes_in += datagram.len() as u64;
        l.last_rx = now;
        l.timed_out = false;

        if l.in_ssrc != Some(packet.ssrc()) {
            // A new source (first packet, or the phone restarted its stream): start tracking
            // afresh and let every relay of it start a new segment.
            l.in_ssrc = Some(packet.ssrc());
            l.seq = SeqTracker::new();
            l.jitter.reset();
            self.rebase_relays_from(leg);
        }
        let Some(l) = self.leg_mut(leg) else { return };
        let arrival = now.to_media_clock(CLOCK_RATE_HZ);
        let ext_seq = match l
            .seq
            .update(packet.sequence_number().0, packet.timestamp(), arrival)
        {
            SeqUpdate::Accepted { extended } | SeqUpdate::Late { extended } => extended,
            SeqUpdate::Duplicate => return self.drop_packet(leg, DropReason::Duplicate),
            SeqUpdate::Rejected => return self.drop_packet(leg, DropReason::Stale),
            // The first packets of a source, or a confirmed restart: relay from here on.
            _ => {
                self.rebase_relays_from(leg);
                u64::from(packet.sequence_number().0)
            }
        };

        if pt == te_pt {
            return self.handle_telephone_event(leg, &packet, ext_seq, now, out);
        }
        if let Some(codec) = audio
            && self.mixed_sources.contains(leg)
        {
            let n = codec.decode(packet.payload(), &mut self.pcm);
            if let Some(l) = self.legs[leg.index()].as_deref_mut() {
                l.jitter.insert(now, packet.timestamp(), &self.pcm[..n]);
            }
        }
        self.relay(leg, &packet, ext_seq, now, out);
    }

    /// Every output relaying `from` starts a new segment on its next packet.
    fn rebase_relays_from(&mut self, from: LegId) {
        for leg in self.legs.iter_mut().flatten() {
            if leg.plan == (Plan::Relay { from }) {
                leg.out.rebase = true;
            }
        }
    }

    /// Forwards `packet` (from `from`) to every output that relays it.
    fn relay(
        &mut self,
        from: LegId,
        packet: &RtpPacket<&[u8]>,
        ext_seq: u64,
        now: Instant,
        out: &mut impl Output,
    ) {
        for i in 0..MAX_LEGS {
            let Some(dst) = self.legs[i].as_deref_mut() else {
                continue;
            };
            if dst.plan != (Plan::Relay { from }) {
                continue;
            }
            let header = match dst.out.next_relayed(now, packet, ext_seq) {
                Ok(header) => header,
                Err(reason) => {
                    self.drops[reason.index()] += 1;
                    continue;
                }
            };
            send(
                dst,
                LegId(i as u8),
                header,
                packet.payload(),
                &mut self.datagram,
                out,
            );
        }
    }

    /// RFC 4733 events: relayed customer ⇄ agent (never mixed), never sent to a supervisor
    /// (PCI), and a supervisor's keys are reported to the control plane, never forwarded.
    fn handle_telephone_event(
        &mut self,
        from: LegId,
        packet: &RtpPacket<&[u8]>,
        ext_seq: u64,
        now: Instant,
        out: &mut impl Output,
    ) {
        if from.is_supervisor() {
            let Ok(event) = TelephoneEvent::new_checked(packet.payload()) else {
                return self.drop_packet(from, DropReason::Malformed);
            };
            let Some(l) = self.leg_mut(from) else { return };
            // Every packet of one key press carries the same timestamp (RFC 4733 §2.5.1.2):
            // report the press once, on its first packet.
            if l.last_key_ts != Some(packet.timestamp()) {
                l.last_key_ts = Some(packet.timestamp());
                if let Some(digit) = dtmf_digit(event.event()) {
                    out.event(CallEvent::Dtmf { leg: from, digit });
                }
            }
            return;
        }
        let to = if from == LegId::CUSTOMER {
            LegId::AGENT
        } else {
            LegId::CUSTOMER
        };
        let active = self.active();
        if !self.hears(to, active).contains(from) {
            return;
        }
        let Some(dst) = self.legs[to.index()].as_deref_mut() else {
            return;
        };
        let header = match dst.plan {
            Plan::Relay { from: f } if f == from => {
                match dst.out.next_relayed(now, packet, ext_seq) {
                    Ok(h) => h,
                    Err(reason) => {
                        self.drops[reason.index()] += 1;
                        return;
                    }
                }
            }
            _ => dst.out.next_event(now, packet),
        };
        send(dst, to, header, packet.payload(), &mut self.datagram, out);
    }

    /// The 20 ms tick: pops one frame from every jitter buffer that feeds a mix, sends every
    /// mixed output one frame, advances tones, and reports media timeouts.
    pub fn tick(&mut self, now: Instant, out: &mut impl Output) {
        for leg in self.mixed_sources.iter() {
            if let Some(l) = self.legs[leg.index()].as_deref_mut() {
                l.jitter.pop_frame(now, &mut l.frame);
            }
        }
        let active = self.active();
        let mut tone_ended = false;
        for listener in active.iter() {
            let hears = self.hears(listener, active);
            let Some(dst) = self.legs[listener.index()].as_deref() else {
                continue;
            };
            if dst.plan != Plan::Mix {
                continue;
            }
            let mut tone_frame: Frame = [0; FRAME_SAMPLES];
            let mut sources: [&Frame; MAX_LEGS + 1] = [&tone_frame; MAX_LEGS + 1];
            let mut n = 0;
            for source in hears.iter() {
                if let Some(s) = self.legs[source.index()].as_deref() {
                    sources[n] = &s.frame;
                    n += 1;
                }
            }
            let mut mixed: Frame = [0; FRAME_SAMPLES];
            mix_into(&sources[..n], &mut mixed);
            let Some(dst) = self.legs[listener.index()].as_deref_mut() else {
                continue;
            };
            if let Some(tone) = dst.tone.as_mut() {
                let active = tone.fill(&mut tone_frame);
                let current = mixed;
                mix_into(&[&current, &tone_frame], &mut mixed);
                if !active {
                    dst.tone = None;
                    tone_ended = true;
                }
            }
            let mut payload = [0u8; FRAME_SAMPLES];
            dst.codec.encode(&mixed, &mut payload);
            match dst.out.next_mixed(now, dst.codec.payload_type()) {
                Some(header) => send(dst, listener, header, &payload, &mut self.datagram, out),
                None => self.drops[DropReason::Realign.index()] += 1,
            }
        }
        if tone_ended {
            self.replan();
        }
        for (i, slot) in self.legs.iter_mut().enumerate() {
            if let Some(l) = slot.as_deref_mut()
                && !l.timed_out
                && now.saturating_since(l.last_rx) >= l.silence_limit(&self.config)
            {
                l.timed_out = true;
                out.event(CallEvent::MediaTimeout {
                    leg: LegId(i as u8),
                });
            }
        }
    }
}

/// Builds one datagram (our header, the given payload) into `scratch` and transmits it to the
/// leg's destination, if it has one yet.
fn send(
    leg: &mut Leg,
    id: LegId,
    header: RtpHeader,
    payload: &[u8],
    scratch: &mut [u8; MAX_DATAGRAM],
    out: &mut impl Output,
) {
    let Some(dst) = leg.source.destination() else {
        return;
    };
    let len = RtpHeader::LEN + payload.len();
    if len > scratch.len() || header.emit(&mut scratch[..]).is_err() {
        return;
    }
    scratch[RtpHeader::LEN..len].copy_from_slice(payload);
    leg.counters.packets_out += 1;
    leg.counters.bytes_out += len as u64;
    out.transmit(id, dst, &scratch[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::g711::ulaw_encode;

    const CUSTOMER: LegId = LegId::CUSTOMER;
    const AGENT: LegId = LegId::AGENT;
    const SUP: LegId = LegId(2);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 1], port))
    }
    const C_ADDR: u16 = 4000;
    const A_ADDR: u16 = 5000;
    const S_ADDR: u16 = 6000;

    #[derive(Default)]
    struct Recorder {
        sent: Vec<(LegId, SocketAddr, Vec<u8>)>,
        /// When each of `sent` was sent (the time of the call that sent it).
        sent_at: Vec<Instant>,
        now: Instant,
        events: Vec<CallEvent>,
    }

    impl Output for Recorder {
        fn transmit(&mut self, leg: LegId, dst: SocketAddr, datagram: &[u8]) {
            self.sent.push((leg, dst, datagram.to_vec()));
            self.sent_at.push(self.now);
        }
        fn event(&mut self, event: CallEvent) {
            self.events.push(event);
        }
    }

    impl Recorder {
        fn to(&self, leg: LegId) -> Vec<RtpPacket<&[u8]>> {
            self.sent
                .iter()
                .filter(|(l, _, _)| *l == leg)
                .map(|(_, _, d)| RtpPacket::new_checked(d.as_slice()).unwrap())
                .collect()
        }
    }

    fn leg(remote: Option<u16>, ssrc: u32) -> Box<Leg> {
        Leg::new(
            Codec::Pcmu,
            remote.map(addr),
            Ssrc(ssrc),
            1000,
            50_000,
            JitterConfig::default(),
            Instant::ZERO,
        )
    }

    fn call() -> Box<Call> {
        Call::new(
            CallConfig::default(),
            leg(Some(C_ADDR), 0xC),
            leg(Some(A_ADDR), 0xA),
        )
    }

    /// A PCMU packet whose samples all carry `level`.
    fn packet(seq: u16, ts: u32, ssrc: u32, level: i16) -> Vec<u8> {
        let mut buf = vec![0u8; RtpHeader::LEN + FRAME_SAMPLES];
        RtpHeader {
            marker: false,
            payload_type: 0,
            sequence_number: SeqNo(seq),
            timestamp: ts,
            ssrc: Ssrc(ssrc),
        }
        .emit(&mut buf)
        .unwrap();
        buf[RtpHeader::LEN..].fill(ulaw_encode(level));
        buf
    }

    fn dtmf_packet(seq: u16, ts: u32, ssrc: u32, event: u8, end: bool) -> Vec<u8> {
        let mut buf = vec![0u8; RtpHeader::LEN + 4];
        RtpHeader {
            marker: !end,
            payload_type: 101,
            sequence_number: SeqNo(seq),
            timestamp: ts,
            ssrc: Ssrc(ssrc),
        }
        .emit(&mut buf)
        .unwrap();
        crate::wire::telephone_event::emit(&mut buf[RtpHeader::LEN..], event, end, 10, 800)
            .unwrap();
        buf
    }

    /// Runs `ms` of time: every leg in `senders` sends one packet per 20 ms, and the call ticks
    /// every 20 ms. Returns the next frame index.
    fn run(
        call: &mut Call,
        out: &mut Recorder,
        start_frame: u32,
        frames: u32,
        senders: &[(LegId, u16, u32, i16)],
    ) -> u32 {
        for k in start_frame..start_frame + frames {
            let now = Instant::from_millis(u64::from(k) * 20);
            out.now = now + Duration::from_millis(1);
            for &(leg, port, ssrc, level) in senders {
                let p = packet(k as u16, k * 160, ssrc, level);
                call.handle_datagram(leg, addr(port), &p, out.now, out);
            }
            out.now = now + Duration::from_millis(10);
            call.tick(out.now, out);
        }
        start_frame + frames
    }

    fn level_of(p: &RtpPacket<&[u8]>) -> i32 {
        let mut pcm = [0i16; FRAME_SAMPLES];
        Codec::Pcmu.decode(p.payload(), &mut pcm);
        pcm.iter().map(|s| i32::from(*s)).sum::<i32>() / FRAME_SAMPLES as i32
    }

    fn all_three() -> [(LegId, u16, u32, i16); 3] {
        [
            (CUSTOMER, C_ADDR, 1, 1000),
            (AGENT, A_ADDR, 2, 3000),
            (SUP, S_ADDR, 3, 9000),
        ]
    }

    #[test]
    fn relays_both_ways_with_our_own_streams() {
        let mut call = call();
        let mut out = Recorder::default();
        run(&mut call, &mut out, 0, 10, &all_three()[..2]);
        let to_agent = out.to(AGENT);
        assert_eq!(to_agent.len(), 10);
        for (i, p) in to_agent.iter().enumerate() {
            assert_eq!(
                p.ssrc(),
                Ssrc(0xA),
                "the agent's stream has the agent output's SSRC"
            );
            assert_eq!(p.sequence_number().0, 1000 + i as u16);
            assert_eq!(
                level_of(p),
                level_of(&RtpPacket::new_checked(&packet(0, 0, 1, 1000)[..]).unwrap())
            );
        }
        assert!(
            out.sent
                .iter()
                .all(|(l, dst, _)| (*l == AGENT && *dst == addr(A_ADDR))
                    || (*l == CUSTOMER && *dst == addr(C_ADDR)))
        );
        assert_eq!(out.to(CUSTOMER).len(), 10);
    }

    #[test]
    fn strict_source_drops_and_counts_anything_else() {
        let mut call = call();
        let mut out = Recorder::default();
        call.handle_datagram(
            CUSTOMER,
            addr(4001),
            &packet(1, 160, 9, 500),
            Instant::ZERO,
            &mut out,
        );
        assert!(out.sent.is_empty(), "a wrong source is never forwarded");
        assert_eq!(call.leg(CUSTOMER).unwrap().counters().packets_dropped, 1);
        assert_eq!(call.take_drops()[DropReason::WrongSource.index()], 1);
    }

    #[test]
    fn latching_leg_locks_to_its_first_source() {
        let mut call = Call::new(
            CallConfig::default(),
            leg(None, 0xC),
            leg(Some(A_ADDR), 0xA),
        );
        let mut out = Recorder::default();
        call.handle_datagram(
            CUSTOMER,
            addr(7000),
            &packet(1, 160, 9, 500),
            Instant::ZERO,
            &mut out,
        );
        call.handle_datagram(
            CUSTOMER,
            addr(7001),
            &packet(2, 320, 9, 500),
            Instant::ZERO,
            &mut out,
        );
        assert_eq!(out.to(AGENT).len(), 1);
        assert_eq!(
            call.leg(CUSTOMER).unwrap().source(),
            SourcePolicy::Latching(Some(addr(7000)))
        );
        assert_eq!(call.take_drops()[DropReason::WrongSource.index()], 1);
        // The agent's audio now goes to the latched address.
        call.handle_datagram(
            AGENT,
            addr(A_ADDR),
            &packet(1, 160, 8, 500),
            Instant::ZERO,
            &mut out,
        );
        assert_eq!(out.sent.last().unwrap().1, addr(7000));
        assert_eq!(
            out.events,
            [CallEvent::Latched {
                leg: CUSTOMER,
                remote: addr(7000)
            }],
            "the latch is reported once, the strict agent leg reports nothing"
        );
    }

    #[test]
    fn each_mode_delivers_its_matrix_row() {
        // Levels are distinct powers so a mix reveals its sources: customer 1000, agent 3000,
        // supervisor 9000 (µ-law keeps them within a few percent).
        let expect = |sources: &[i16]| sources.iter().map(|s| i32::from(*s)).sum::<i32>();
        let cases: [(Mode, i32, i32, i32); 5] = [
            (
                Mode::Listen,
                expect(&[3000]),
                expect(&[1000]),
                expect(&[1000, 3000]),
            ),
            (
                Mode::Whisper,
                expect(&[3000]),
                expect(&[1000, 9000]),
                expect(&[1000, 3000]),
            ),
            (
                Mode::Barge,
                expect(&[3000, 9000]),
                expect(&[1000, 9000]),
                expect(&[1000, 3000]),
            ),
            (Mode::Takeover, expect(&[9000]), 0, expect(&[1000])),
            (
                Mode::TakeoverListen,
                expect(&[9000]),
                expect(&[1000, 9000]),
                expect(&[1000]),
            ),
        ];
        for (mode, customer, agent, supervisor) in cases {
            let mut call = call();
            let mut out = Recorder::default();
            call.add_supervisor(SUP, leg(Some(S_ADDR), 0x5), false)
                .ok()
                .unwrap();
            assert!(call.set_mode(SUP, mode));
            run(&mut call, &mut out, 0, 20, &all_three());
            for (listener, want) in [(CUSTOMER, customer), (AGENT, agent), (SUP, supervisor)] {
                let got = out.to(listener);
                let last = got
                    .last()
                    .unwrap_or_else(|| panic!("{listener:?} receives in {mode}"));
                let level = level_of(last);
                assert!(
                    (level - want).abs() <= want / 20 + 40,
                    "{listener:?} in {mode}: level {level}, expected {want}"
                );
            }
        }
    }

    #[test]
    fn customer_never_gets_supervisor_audio_in_listen_or_whisper() {
        let mut call = call();
        let mut out = Recorder::default();
        call.add_supervisor(SUP, leg(Some(S_ADDR), 0x5), true)
            .ok()
            .unwrap();
        let senders = [
            (CUSTOMER, C_ADDR, 1, 0),
            (AGENT, A_ADDR, 2, 0),
            (SUP, S_ADDR, 3, 9000),
        ];
        let mut k = run(&mut call, &mut out, 0, 10, &senders);
        call.set_mode(SUP, Mode::Whisper);
        k = run(&mut call, &mut out, k, 10, &senders);
        call.set_mode(SUP, Mode::Listen);
        run(&mut call, &mut out, k, 10, &senders);
        assert!(
            out.to(CUSTOMER).iter().all(|p| level_of(p) == 0),
            "customer hears silence only"
        );
        assert!(
            out.to(AGENT).iter().any(|p| level_of(p) > 8000),
            "agent heard the whisper"
        );
    }

    #[test]
    fn every_output_keeps_one_ssrc_and_continuous_numbering_across_switches() {
        let mut call = call();
        let mut out = Recorder::default();
        let mut k = run(&mut call, &mut out, 0, 5, &all_three()[..2]);
        call.add_supervisor(SUP, leg(Some(S_ADDR), 0x5), true)
            .ok()
            .unwrap();
        for mode in [
            Mode::Whisper,
            Mode::Barge,
            Mode::Takeover,
            Mode::TakeoverListen,
            Mode::Listen,
        ] {
            call.set_mode(SUP, mode);
            k = run(&mut call, &mut out, k, 7, &all_three());
        }
        call.remove_supervisor(SUP);
        run(&mut call, &mut out, k, 5, &all_three()[..2]);
        for listener in [CUSTOMER, AGENT] {
            let stream: Vec<(Instant, RtpPacket<&[u8]>)> = out
                .sent
                .iter()
                .zip(&out.sent_at)
                .filter(|((l, _, _), _)| *l == listener)
                .map(|((_, _, d), t)| (*t, RtpPacket::new_checked(d.as_slice()).unwrap()))
                .collect();
            assert!(stream.len() > 30);
            let (t0, ts0) = (stream[0].0, stream[0].1.timestamp());
            for pair in stream.windows(2) {
                let ((_, a), (t, b)) = (&pair[0], &pair[1]);
                assert_eq!(a.ssrc(), b.ssrc());
                assert_eq!(
                    b.sequence_number().0,
                    a.sequence_number().0.wrapping_add(1),
                    "{listener:?}"
                );
                let dts = b.timestamp().wrapping_sub(a.timestamp()) as i32;
                assert!(dts > 0, "{listener:?}: timestamps only move forward");
                assert_eq!(
                    dts % 160,
                    0,
                    "{listener:?}: timestamps stay on the frame grid"
                );
                // Timestamps follow wall-clock time within half a frame, however many
                // switches there were.
                let elapsed = (t.as_micros() - t0.as_micros()) as i64 * 8 / 1000;
                let lead = i64::from(b.timestamp().wrapping_sub(ts0) as i32) - elapsed;
                assert!(
                    (-80..=80).contains(&lead),
                    "{listener:?}: {lead} samples off the clock"
                );
            }
        }
    }

    #[test]
    fn supervisor_keys_are_reported_once_and_never_forwarded() {
        let mut call = call();
        let mut out = Recorder::default();
        call.add_supervisor(SUP, leg(Some(S_ADDR), 0x5), false)
            .ok()
            .unwrap();
        for (i, end) in [false, false, true, true, true].into_iter().enumerate() {
            call.handle_datagram(
                SUP,
                addr(S_ADDR),
                &dtmf_packet(10 + i as u16, 8000, 3, 5, end),
                Instant::ZERO,
                &mut out,
            );
        }
        call.handle_datagram(
            SUP,
            addr(S_ADDR),
            &dtmf_packet(20, 16000, 3, 11, false),
            Instant::ZERO,
            &mut out,
        );
        assert_eq!(
            out.events,
            [
                CallEvent::Dtmf {
                    leg: SUP,
                    digit: '5'
                },
                CallEvent::Dtmf {
                    leg: SUP,
                    digit: '#'
                }
            ]
        );
        assert!(out.sent.is_empty(), "supervisor DTMF goes nowhere");
    }

    #[test]
    fn customer_dtmf_reaches_the_agent_but_no_supervisor() {
        let mut call = call();
        let mut out = Recorder::default();
        call.add_supervisor(SUP, leg(Some(S_ADDR), 0x5), false)
            .ok()
            .unwrap();
        for mode in [Mode::Listen, Mode::Whisper] {
            call.set_mode(SUP, mode);
            out.sent.clear();
            call.handle_datagram(
                CUSTOMER,
                addr(C_ADDR),
                &dtmf_packet(1, 800, 1, 3, false),
                Instant::ZERO,
                &mut out,
            );
            let to_agent = out.to(AGENT);
            assert_eq!(to_agent.len(), 1, "in {mode}");
            assert_eq!(to_agent[0].payload_type(), 101);
            assert!(out.to(SUP).is_empty(), "in {mode}");
        }
        assert!(out.events.is_empty());
    }

    #[test]
    fn media_timeout_is_reported_once_per_silent_leg() {
        let config = CallConfig {
            media_timeout: Duration::from_secs(2),
            ..CallConfig::default()
        };
        let mut call = Call::new(config, leg(Some(C_ADDR), 1), leg(Some(A_ADDR), 2));
        let mut out = Recorder::default();
        for k in 0..150u32 {
            let now = Instant::from_millis(u64::from(k) * 20);
            call.handle_datagram(
                AGENT,
                addr(A_ADDR),
                &packet(k as u16, k * 160, 2, 0),
                now,
                &mut out,
            );
            call.tick(now, &mut out);
        }
        assert_eq!(out.events, [CallEvent::MediaTimeout { leg: CUSTOMER }]);
    }

    /// Ticks the call every 20 ms from `from_ms` up to (not including) `to_ms`, the agent
    /// sending all along and the customer silent; returns the events reported, with when.
    fn silent_customer(call: &mut Call, from_ms: u64, to_ms: u64) -> Vec<(u64, CallEvent)> {
        let mut out = Recorder::default();
        let mut events = Vec::new();
        for ms in (from_ms..to_ms).step_by(20) {
            let now = Instant::from_millis(ms);
            let k = (ms / 20) as u32;
            call.handle_datagram(
                AGENT,
                addr(A_ADDR),
                &packet(k as u16, k * 160, 2, 0),
                now,
                &mut out,
            );
            call.tick(now, &mut out);
            events.extend(out.events.drain(..).map(|e| (ms, e)));
        }
        events
    }

    fn timeouts(media_s: u64, silent_s: u64) -> CallConfig {
        CallConfig {
            media_timeout: Duration::from_secs(media_s),
            silent_timeout: Duration::from_secs(silent_s),
            ..CallConfig::default()
        }
    }

    #[test]
    fn held_leg_outlasts_the_media_timeout_until_the_silent_timeout() {
        let mut call = Call::new(timeouts(2, 10), leg(Some(C_ADDR), 1), leg(Some(A_ADDR), 2));
        assert!(call.set_held(CUSTOMER, true, Instant::ZERO));
        assert!(call.set_held(AGENT, true, Instant::ZERO));
        assert!(call.leg(CUSTOMER).unwrap().held());
        // Silent far past the media timeout: nothing. The agent, held too, keeps sending.
        assert_eq!(silent_customer(&mut call, 0, 9_980), []);
        // Past the silent timeout the held party is taken to have vanished, once.
        assert_eq!(
            silent_customer(&mut call, 9_980, 30_000),
            [(10_000, CallEvent::MediaTimeout { leg: CUSTOMER })]
        );
    }

    #[test]
    fn resumed_leg_gets_a_whole_media_timeout_from_the_resume() {
        let mut call = Call::new(timeouts(2, 10), leg(Some(C_ADDR), 1), leg(Some(A_ADDR), 2));
        call.set_held(CUSTOMER, true, Instant::ZERO);
        assert_eq!(silent_customer(&mut call, 0, 5_000), []);
        // Resumed after 5 s of silence: not an instant hang-up, the media timeout counts from
        // the resume.
        assert!(call.set_held(CUSTOMER, false, Instant::from_millis(5_000)));
        assert!(!call.leg(CUSTOMER).unwrap().held());
        assert_eq!(
            silent_customer(&mut call, 5_000, 20_000),
            [(7_000, CallEvent::MediaTimeout { leg: CUSTOMER })]
        );
    }

    #[test]
    fn hold_after_a_timeout_rearms_it_and_repeating_a_state_changes_nothing() {
        let mut call = Call::new(timeouts(2, 4), leg(Some(C_ADDR), 1), leg(Some(A_ADDR), 2));
        assert_eq!(
            silent_customer(&mut call, 0, 3_000),
            [(2_000, CallEvent::MediaTimeout { leg: CUSTOMER })]
        );
        call.set_held(CUSTOMER, true, Instant::from_millis(3_000));
        // A second hold does not restart the count.
        call.set_held(CUSTOMER, true, Instant::from_millis(5_000));
        assert_eq!(
            silent_customer(&mut call, 3_000, 10_000),
            [(7_000, CallEvent::MediaTimeout { leg: CUSTOMER })]
        );
        // RTP ends a hold's silence like any other: a held party that sends is alive.
        let mut out = Recorder::default();
        let now = Instant::from_millis(10_000);
        call.handle_datagram(CUSTOMER, addr(C_ADDR), &packet(1, 160, 1, 0), now, &mut out);
        assert_eq!(silent_customer(&mut call, 10_000, 13_980), []);
        assert!(!call.set_held(LegId(3), true, now), "no such leg");
    }

    #[test]
    fn garbage_is_dropped_not_fatal() {
        let mut call = call();
        let mut out = Recorder::default();
        for bad in [
            &[][..],
            &[0x80][..],
            &[0x40; 12][..],
            &[0x80, 0x7F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0][..],
        ] {
            call.handle_datagram(CUSTOMER, addr(C_ADDR), bad, Instant::ZERO, &mut out);
        }
        assert!(out.sent.is_empty());
        assert_eq!(call.leg(CUSTOMER).unwrap().counters().packets_dropped, 4);
    }
}
