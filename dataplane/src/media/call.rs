//! One call's media: its legs, what each hears, and the packets that follow (docs/media.md, Output
//! streams).
//!
//! A [`Call`] is sans-IO (docs/design.md §9.1, §9.3). The engine hands it every datagram that
//! arrived on one of its legs with [`Call::handle_datagram`], and calls [`Call::tick`] every 20 ms;
//! the call answers through an [`Output`]: datagrams to transmit from one of its legs, and
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
use crate::media::stream::{InputTimeline, OutputStream};
use crate::media::tone::{SUPERVISION_BEEP, Tone};
use crate::media::{CLOCK_RATE_HZ, FRAME_SAMPLES, Frame};
use crate::time::{Duration, Instant};
use crate::wire::g711::Codec;
use crate::wire::rtcp::validate_compound;
use crate::wire::rtp::{RtpHeader, RtpPacket, Ssrc, is_rtcp};
use crate::wire::telephone_event::{TelephoneEvent, dtmf_digit};

/// The largest datagram a leg accepts and the largest it emits. Ethernet MTU-sized. The one
/// limit of the whole data plane: the media core refuses anything longer
/// ([`DropReason::Oversized`]) and every backend sizes its buffers and checks by it.
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
    /// Longer than [`MAX_DATAGRAM`], or cut by a backend's receive buffer (which is always
    /// longer than it). Refused before anything else, so it costs the leg nothing.
    Oversized,
    /// An audio payload type the leg does not carry: PCMA on a PCMU leg or the reverse. The
    /// leg's codec comes from signalling; relaying the other one unchanged would hand the
    /// listener audio it decodes as noise.
    PayloadTypeMismatch,
}

impl DropReason {
    pub const ALL: [DropReason; 9] = [
        DropReason::WrongSource,
        DropReason::Malformed,
        DropReason::UnknownPayloadType,
        DropReason::Duplicate,
        DropReason::Stale,
        DropReason::InactiveLeg,
        DropReason::Realign,
        DropReason::Oversized,
        DropReason::PayloadTypeMismatch,
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
            DropReason::Oversized => "oversized",
            DropReason::PayloadTypeMismatch => "payload_type_mismatch",
        }
    }

    pub const fn index(self) -> usize {
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
    /// A latching leg locked to its first source (docs/media.md, Source checking): from now on it
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
    /// `packets_dropped` by reason, indexed by [`DropReason::index`].
    pub dropped: [u64; DropReason::COUNT],
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

/// One leg of a call: the party's source policy and inbound state, and the stream we send it.
pub struct Leg {
    codec: Codec,
    source: SourcePolicy,
    /// The SSRC the inbound stream currently has; a change restarts sequence tracking.
    in_ssrc: Option<Ssrc>,
    seq: SeqTracker,
    /// Breaks in the inbound stream's timeline that sequence tracking does not report.
    timeline: InputTimeline,
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
            timeline: InputTimeline::default(),
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
                leg.out.switch();
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
            l.counters.dropped[reason.index()] += 1;
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
        // First of all, so that an oversized datagram (spoofable: UDP) neither latches the leg
        // nor takes a sequence number that would make the genuine packet a duplicate.
        if datagram.len() > MAX_DATAGRAM {
            return self.drop_packet(leg, DropReason::Oversized);
        }
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
        // Every check of the packet's content comes before sequence tracking, for the same
        // reason as the size check above.
        let pt = packet.payload_type();
        let audio = Codec::from_payload_type(pt);
        if let Some(codec) = audio
            && codec != l.codec
        {
            return self.drop_packet(leg, DropReason::PayloadTypeMismatch);
        }
        if audio.is_none() && pt != te_pt && pt != COMFORT_NOISE_PT {
            return self.drop_packet(leg, DropReason::UnknownPayloadType);
        }
        // RFC 4733 §2.3: an event payload is one or more 4-byte blocks, never empty.
        if pt == te_pt && TelephoneEvent::new_checked(packet.payload()).is_err() {
            return self.drop_packet(leg, DropReason::Malformed);
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
            l.timeline.reset();
            l.jitter.reset();
            self.rebase_relays_from(leg);
        }
        let Some(l) = self.leg_mut(leg) else { return };
        let arrival = now.to_media_clock(CLOCK_RATE_HZ);
        let ext_seq = match l
            .seq
            .update(packet.sequence_number().0, packet.timestamp(), arrival)
        {
            SeqUpdate::Accepted { extended } => {
                // G.711 carries one sample per byte; comfort noise, one frame's worth.
                let samples = if audio.is_some() {
                    packet.payload().len() as u32
                } else {
                    FRAME_SAMPLES as u32
                };
                if pt != te_pt
                    && l.timeline
                        .observe(extended, packet.timestamp(), arrival, samples)
                {
                    // The sender's clock or numbering jumped (docs/media.md, Output streams:
                    // no output shows it): relays of this leg resynchronise, a mix re-anchors
                    // its jitter buffer.
                    l.jitter.reset();
                    l.seq.forget_transit();
                    self.rebase_relays_from(leg);
                }
                extended
            }
            SeqUpdate::Late { extended } => extended,
            SeqUpdate::Duplicate => return self.drop_packet(leg, DropReason::Duplicate),
            SeqUpdate::Rejected => return self.drop_packet(leg, DropReason::Stale),
            // The first packets of a source, or a confirmed restart: relay from here on.
            _ => {
                l.timeline.reset();
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

    /// `from`'s inbound stream broke its timeline: every output relaying it starts a new segment on
    /// its next packet, so the break never reaches the output (docs/media.md, Output streams).
    fn rebase_relays_from(&mut self, from: LegId) {
        for leg in self.legs.iter_mut().flatten() {
            if leg.plan == (Plan::Relay { from }) {
                leg.out.resync();
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
    use crate::wire::rtp::SeqNo;

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

    /// A PCMU packet of `payload` bytes with the given header fields.
    fn packet_with(seq: u16, ts: u32, ssrc: u32, pt: u8, payload: usize) -> Vec<u8> {
        let mut buf = vec![0xFFu8; RtpHeader::LEN + payload];
        RtpHeader {
            marker: false,
            payload_type: pt,
            sequence_number: SeqNo(seq),
            timestamp: ts,
            ssrc: Ssrc(ssrc),
        }
        .emit(&mut buf)
        .unwrap();
        buf
    }

    /// Oversized datagrams from the leg's own source, carrying the sequence number of the next
    /// genuine packet, are refused before anything else: every genuine packet is relayed, and
    /// each oversized one is counted `oversized`, per leg and per call.
    #[test]
    fn oversized_datagrams_cost_no_genuine_packet() {
        let mut call = call();
        let mut out = Recorder::default();
        let sizes = [MAX_DATAGRAM + 1, MAX_DATAGRAM + 2, 2048, 2049, 9000, 65_507];
        let mut sent_oversized = 0;
        for k in 0..50u32 {
            let now = Instant::from_millis(u64::from(k) * 20);
            for size in sizes {
                let spoof = packet_with(k as u16, k * 160, 1, 0, size - RtpHeader::LEN);
                call.handle_datagram(CUSTOMER, addr(C_ADDR), &spoof, now, &mut out);
                sent_oversized += 1;
            }
            let genuine = packet(k as u16, k * 160, 1, 500);
            call.handle_datagram(CUSTOMER, addr(C_ADDR), &genuine, now, &mut out);
        }
        // At the limit is not oversized.
        let at_limit = packet_with(50, 50 * 160, 1, 0, MAX_DATAGRAM - RtpHeader::LEN);
        call.handle_datagram(
            CUSTOMER,
            addr(C_ADDR),
            &at_limit,
            Instant::from_millis(1000),
            &mut out,
        );
        let relayed = out.to(AGENT);
        assert_eq!(relayed.len(), 51, "every genuine packet is relayed");
        for pair in relayed.windows(2) {
            assert_eq!(
                pair[1].sequence_number().0,
                pair[0].sequence_number().0.wrapping_add(1)
            );
        }
        let c = call.leg(CUSTOMER).unwrap().counters();
        assert_eq!(c.dropped[DropReason::Oversized.index()], sent_oversized);
        assert_eq!(c.packets_dropped, sent_oversized);
        assert_eq!(c.packets_in, 51);
        assert_eq!(
            call.take_drops()[DropReason::Oversized.index()],
            sent_oversized
        );
        // From a wrong source, or on a latching leg, oversized still comes first and latches
        // nothing.
        let mut latching = Call::new(
            CallConfig::default(),
            leg(None, 0xC),
            leg(Some(A_ADDR), 0xA),
        );
        let big = packet_with(1, 160, 1, 0, 2000);
        latching.handle_datagram(CUSTOMER, addr(7000), &big, Instant::ZERO, &mut out);
        assert_eq!(
            latching.leg(CUSTOMER).unwrap().source(),
            SourcePolicy::Latching(None)
        );
        assert_eq!(latching.take_drops()[DropReason::Oversized.index()], 1);
    }

    /// PCMA on a PCMU leg (and PCMU on a PCMA leg) is dropped and counted, never relayed, and
    /// takes no sequence number from the genuine stream.
    #[test]
    fn the_other_g711_law_is_dropped_not_relayed() {
        let pcma_agent = Leg::new(
            Codec::Pcma,
            Some(addr(A_ADDR)),
            Ssrc(0xA),
            1000,
            50_000,
            JitterConfig::default(),
            Instant::ZERO,
        );
        let mut call = Call::new(CallConfig::default(), leg(Some(C_ADDR), 0xC), pcma_agent);
        let mut out = Recorder::default();
        for k in 0..10u32 {
            let now = Instant::from_millis(u64::from(k) * 20);
            let wrong = packet_with(k as u16, k * 160, 1, 8, 160);
            call.handle_datagram(CUSTOMER, addr(C_ADDR), &wrong, now, &mut out);
            let wrong = packet_with(k as u16, k * 160, 2, 0, 160);
            call.handle_datagram(AGENT, addr(A_ADDR), &wrong, now, &mut out);
        }
        assert!(out.sent.is_empty(), "{} sent", out.sent.len());
        for l in [CUSTOMER, AGENT] {
            let c = call.leg(l).unwrap().counters();
            assert_eq!(
                c.dropped[DropReason::PayloadTypeMismatch.index()],
                10,
                "{l:?}"
            );
            assert_eq!(c.packets_in, 0, "{l:?}");
        }
        // The right law still flows (the customer→agent path transcodes through a mix).
        run(&mut call, &mut out, 10, 5, &[(CUSTOMER, C_ADDR, 1, 500)]);
        assert!(!out.to(AGENT).is_empty());
        assert!(out.to(AGENT).iter().all(|p| p.payload_type() == 8));
        assert_eq!(call.leg(CUSTOMER).unwrap().counters().packets_in, 5);
    }

    /// RFC 4733 §2.3: an event payload is 4-byte blocks. Empty or ragged ones are dropped as
    /// malformed from every leg, never relayed nor reported, and take no sequence number.
    #[test]
    fn telephone_events_of_the_wrong_length_are_dropped() {
        let mut call = call();
        let mut out = Recorder::default();
        call.add_supervisor(SUP, leg(Some(S_ADDR), 0x5), false)
            .ok()
            .unwrap();
        let lens = [0usize, 1, 2, 3, 5, 6, 7, 9, 13];
        for (i, len) in lens.into_iter().enumerate() {
            for (l, port) in [(CUSTOMER, C_ADDR), (SUP, S_ADDR)] {
                let mut p = packet_with(i as u16, 800, 1, 101, len);
                if len > 0 {
                    p[RtpHeader::LEN] = 5; // event "5"
                }
                call.handle_datagram(l, addr(port), &p, Instant::ZERO, &mut out);
            }
        }
        assert!(out.sent.is_empty());
        assert!(out.events.is_empty());
        for l in [CUSTOMER, SUP] {
            let c = call.leg(l).unwrap().counters();
            assert_eq!(c.dropped[DropReason::Malformed.index()], lens.len() as u64);
        }
        // A well-formed event with the first sequence number is still relayed: the bad ones
        // took none.
        call.handle_datagram(
            CUSTOMER,
            addr(C_ADDR),
            &dtmf_packet(0, 800, 1, 3, false),
            Instant::ZERO,
            &mut out,
        );
        assert_eq!(out.to(AGENT).len(), 1);
        // Two events in one payload (8 bytes) are well formed.
        let mut two = packet_with(1, 800, 1, 101, 8);
        two[RtpHeader::LEN..].copy_from_slice(&[3, 10, 0, 80, 3, 10, 0, 160]);
        call.handle_datagram(CUSTOMER, addr(C_ADDR), &two, Instant::ZERO, &mut out);
        assert_eq!(out.to(AGENT).len(), 2);
    }

    /// Malformed RTCP on the RTP port (RFC 5761) is counted malformed on its leg; valid RTCP
    /// is counted as RTCP; neither is forwarded.
    #[test]
    fn malformed_rtcp_is_counted() {
        let mut call = call();
        let mut out = Recorder::default();
        // RR, RC=0, the reporter's SSRC: valid.
        let rr = [0x80, 201, 0, 1, 0, 0, 0, 1];
        let bad: [&[u8]; 6] = [
            &[0x81, 201, 0, 1, 0, 0, 0, 1],               // RC=1, no report block
            &[0x80, 202, 0, 1, 0, 0, 0, 1],               // first packet not SR/RR
            &[0x40, 201, 0, 1, 0, 0, 0, 1],               // version 1
            &[0x80, 201, 0, 2, 0, 0, 0, 1],               // length overruns the datagram
            &[0x80, 201, 0, 1, 0, 0, 0, 1, 0x80, 201, 0], // trailing bytes
            &[0xA0, 201, 0, 1, 0, 0, 0, 0],               // padding count 0
        ];
        call.handle_datagram(CUSTOMER, addr(C_ADDR), &rr, Instant::ZERO, &mut out);
        for b in bad {
            call.handle_datagram(CUSTOMER, addr(C_ADDR), b, Instant::ZERO, &mut out);
        }
        assert!(out.sent.is_empty());
        let c = call.leg(CUSTOMER).unwrap().counters();
        assert_eq!(c.rtcp_in, 1);
        assert_eq!(c.dropped[DropReason::Malformed.index()], bad.len() as u64);
        assert_eq!(c.packets_dropped, bad.len() as u64);
    }

    /// Sends the customer's packets `seqs`/`tss` (one per 20 ms of virtual time from frame
    /// `k0`, SSRC `ssrc`) and returns the agent's relayed output with each packet's send time.
    fn relay_run(call: &mut Call, out: &mut Recorder, k0: u64, inputs: &[(u16, u32, u32)]) -> u64 {
        for (i, &(seq, ts, ssrc)) in inputs.iter().enumerate() {
            let now = Instant::from_millis((k0 + i as u64) * 20);
            out.now = now;
            call.handle_datagram(
                CUSTOMER,
                addr(C_ADDR),
                &packet(seq, ts, ssrc, 500),
                now,
                out,
            );
        }
        k0 + inputs.len() as u64
    }

    /// The agent's output is one stream: one SSRC, sequence numbers one apart, timestamps
    /// within half a frame of the time elapsed since its first packet; returns the markers.
    fn assert_continuous(out: &Recorder, to: LegId) -> Vec<bool> {
        let stream: Vec<(Instant, RtpPacket<&[u8]>)> = out
            .sent
            .iter()
            .zip(&out.sent_at)
            .filter(|((l, _, _), _)| *l == to)
            .map(|((_, _, d), t)| (*t, RtpPacket::new_checked(d.as_slice()).unwrap()))
            .collect();
        let (t0, ts0) = (stream[0].0, stream[0].1.timestamp());
        for pair in stream.windows(2) {
            let ((_, a), (t, b)) = (&pair[0], &pair[1]);
            assert_eq!(a.ssrc(), b.ssrc());
            assert_eq!(b.sequence_number().0, a.sequence_number().0.wrapping_add(1));
            let elapsed = (t.as_micros() - t0.as_micros()) as i64 * 8 / 1000;
            let lead = i64::from(b.timestamp().wrapping_sub(ts0) as i32) - elapsed;
            assert!(
                (-80..=160).contains(&lead),
                "{lead} samples off the clock at {t:?}"
            );
        }
        stream.iter().map(|(_, p)| p.marker()).collect()
    }

    /// An input timestamp step (2^31, and a smaller one of 10 s, either way), a sequence jump
    /// (within and beyond RFC 3550's MAX_DROPOUT) and an SSRC change never reach a relayed
    /// output: it keeps one SSRC, numbers one apart, and timestamps that follow real time,
    /// with the marker set where the input broke (RFC 3550 §5.1).
    #[test]
    fn relayed_output_stays_continuous_across_input_breaks() {
        let mut call = call();
        let mut out = Recorder::default();
        let frames = |seq0: u16, ts0: u32, ssrc: u32, n: u16| -> Vec<(u16, u32, u32)> {
            (0..n)
                .map(|i| {
                    (
                        seq0.wrapping_add(i),
                        ts0.wrapping_add(u32::from(i) * 160),
                        ssrc,
                    )
                })
                .collect()
        };
        let mut k = relay_run(&mut call, &mut out, 0, &frames(100, 1_000, 7, 20));
        let steps: [(u16, u32, u32); 6] = [
            (120, 1_000 + 20 * 160 + (1 << 31), 7), // timestamp step of 2^31
            (140, 1_000 + 40 * 160 + (1 << 31) - 80_000, 7), // back 10 s
            (1_160, 1_000 + 60 * 160 + (1 << 31) - 80_000, 7), // sequence jump of 1,000
            (41_160, 1_000 + 80 * 160 + (1 << 31) - 80_000, 7), // beyond MAX_DROPOUT
            (5, 77, 8),                             // new SSRC
            (25, 77 + 20 * 160 + 1_000_000, 8),     // and a forward step of 125 s
        ];
        let mut breaks = Vec::new();
        for (seq, ts, ssrc) in steps {
            let sent_before = out.to(AGENT).len();
            k = relay_run(&mut call, &mut out, k, &frames(seq, ts, ssrc, 20));
            breaks.push(sent_before);
        }
        let markers = assert_continuous(&out, AGENT);
        // The first packet after a restart beyond MAX_DROPOUT is held back by RFC 3550 §A.1
        // (counted `stale`); every other packet is relayed.
        assert_eq!(markers.len(), 20 * 7 - 1);
        for (i, at) in breaks.into_iter().enumerate() {
            assert!(markers[at], "break {i}: marker at output packet {at}");
        }
        assert_eq!(markers.iter().filter(|m| **m).count(), 7, "{markers:?}");
    }

    /// What the relay must not mistake for a break: loss (a gap as long as the time it took),
    /// silence suppression (timestamps advancing with the clock over a pause), and a network
    /// stall delivering a burst. The output shows the loss as a gap and sets no marker.
    #[test]
    fn loss_silence_and_bursts_are_not_breaks() {
        let mut call = call();
        let mut out = Recorder::default();
        let mut inputs = Vec::new();
        // 0..50 in time; 50..100 lost (1 s); 100..150 on time.
        for i in (0..50u32).chain(100..150) {
            inputs.push((u64::from(i) * 20, i as u16, i * 160));
        }
        // A 3 s pause with no packets and timestamps advancing with it (VAD).
        for i in 0..20u32 {
            inputs.push((
                (150 + 150 + u64::from(i)) * 20,
                150 + i as u16,
                (300 + i) * 160,
            ));
        }
        // A 2 s stall: 100 packets arrive in one burst.
        for i in 0..100u32 {
            let t = (320 + 100) * 20;
            inputs.push((t, 170 + i as u16, (320 + i) * 160));
        }
        for &(ms, seq, ts) in &inputs {
            let now = Instant::from_millis(ms);
            out.now = now;
            call.handle_datagram(
                CUSTOMER,
                addr(C_ADDR),
                &packet(seq, ts, 1, 500),
                now,
                &mut out,
            );
        }
        let relayed = out.to(AGENT);
        assert_eq!(relayed.len(), 220);
        assert_eq!(
            relayed.iter().filter(|p| p.marker()).count(),
            1,
            "only the first"
        );
        for (pair, sent) in relayed.windows(2).zip(inputs.windows(2)) {
            let dseq = pair[1]
                .sequence_number()
                .0
                .wrapping_sub(pair[0].sequence_number().0);
            let dts = pair[1].timestamp().wrapping_sub(pair[0].timestamp());
            let want = (
                sent[1].1.wrapping_sub(sent[0].1),
                sent[1].2.wrapping_sub(sent[0].2),
            );
            assert_eq!((dseq, dts), want, "relayed as sent, gaps included");
        }
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
