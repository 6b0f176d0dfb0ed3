//! A media endpoint: a phone, as far as the appliance can tell.
//!
//! One UDP socket on `127.0.0.1:0`, or on the peer address of a test namespace pair (bound by
//! a thread in that namespace). A receiver thread records every packet that arrives; a
//! sender thread (started once the endpoint knows where to send) emits a tone as G.711 at
//! 50 packets/s, paced to absolute deadlines so it never drifts, optionally through a reproducible
//! loss-and-reorder impairment, and can interleave RFC 4733 key presses.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::audio::{self, FRAME_SAMPLES, MEASURED, TONE_AMPLITUDE, Tone};
use crate::rtp::{self, PT_PCMU, PT_TELEPHONE_EVENT, TelephoneEvent};

/// One packet interval (ptime).
pub const PTIME: Duration = Duration::from_millis(20);
/// How far the impairment moves a packet: a held packet goes out right after the next one.
pub const REORDER_DISTANCE: u16 = 1;
/// Key-press updates before the three end packets (5 × 20 ms = 100 ms of tone).
const DTMF_UPDATES: u16 = 5;

/// A small deterministic PRNG (SplitMix64) so an impaired run is reproducible from its case number.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(case: u64) -> Rng {
        Rng(case)
    }

    /// A fresh unpredictable case number: std's randomly keyed hasher over the time and a
    /// process-wide counter, so endpoints created at the same instant still differ.
    pub fn entropy() -> u64 {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.finish()
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.next_u64() % 100 < u64::from(percent)
    }
}

/// Network damage applied to an endpoint's own output before it reaches the appliance.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub case: u64,
    /// Packets dropped, in percent.
    pub loss_percent: u32,
    /// Packets held back and sent right after the next one, in percent.
    pub reorder_percent: u32,
}

impl Impairment {
    /// The acceptance criteria's impairment: 5 % loss and 5 % reordering.
    pub fn standard(case: u64) -> Impairment {
        Impairment {
            case,
            loss_percent: 5,
            reorder_percent: 5,
        }
    }
}

/// What the sender emits while no key press is under way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Tone(Tone),
    /// Digital silence (zero samples), still 50 packets/s.
    Silence,
}

/// Where and what an endpoint sends.
#[derive(Debug, Clone, Copy)]
pub struct SendSpec {
    pub dest: SocketAddr,
    pub signal: Signal,
    /// 0 (µ-law) or 8 (A-law).
    pub pt: u8,
    pub impairment: Option<Impairment>,
}

impl SendSpec {
    pub fn tone(dest: SocketAddr, tone: Tone) -> SendSpec {
        SendSpec {
            dest,
            signal: Signal::Tone(tone),
            pt: PT_PCMU,
            impairment: None,
        }
    }
}

/// A packet as received, with the tone powers of its audio (when it is G.711).
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    pub from: SocketAddr,
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload: Vec<u8>,
    /// Goertzel power of each [`MEASURED`] tone in this packet alone; `None` unless PT 0 or 8.
    pub powers: Option<[f64; MEASURED.len()]>,
}

impl Received {
    pub fn is_audio(&self) -> bool {
        self.powers.is_some()
    }

    pub fn telephone_event(&self) -> Option<TelephoneEvent> {
        (self.pt == PT_TELEPHONE_EVENT)
            .then(|| TelephoneEvent::parse(&self.payload))
            .flatten()
    }
}

/// What the sender did, for the record.
#[derive(Debug, Clone, Copy, Default)]
pub struct SenderStats {
    /// Packet slots produced (one per 20 ms).
    pub generated: u64,
    /// Packets put on the wire.
    pub sent: u64,
    /// Packets the impairment dropped.
    pub dropped: u64,
    /// Packets the impairment sent out of order.
    pub reordered: u64,
    /// Sends that failed (e.g. ICMP port unreachable reported on a later send).
    pub send_errors: u64,
}

/// When a key press went out.
#[derive(Debug, Clone, Copy)]
pub struct DtmfSent {
    pub started: Instant,
    pub finished: Instant,
}

enum SenderCommand {
    Dtmf {
        event: u8,
        ack: mpsc::Sender<DtmfSent>,
    },
}

struct Shared {
    stop_receiver: AtomicBool,
    stop_sender: AtomicBool,
    received: Mutex<Vec<Received>>,
    /// Signalled whenever `received` grows.
    arrived: Condvar,
    rtcp_packets: AtomicU64,
    other_packets: AtomicU64,
    sender_stats: Mutex<SenderStats>,
}

pub struct Endpoint {
    pub name: &'static str,
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    shared: Arc<Shared>,
    receiver: Option<JoinHandle<()>>,
    sender: Option<(JoinHandle<()>, mpsc::Sender<SenderCommand>)>,
}

impl Endpoint {
    /// Binds `127.0.0.1:0` and starts recording whatever arrives.
    pub fn bind(name: &'static str) -> Endpoint {
        Endpoint::bind_on(name, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Binds `ip:0` in the calling thread's network namespace (the socket stays there) and
    /// starts recording whatever arrives.
    pub fn bind_on(name: &'static str, ip: IpAddr) -> Endpoint {
        let socket = Arc::new(
            UdpSocket::bind(SocketAddr::new(ip, 0))
                .unwrap_or_else(|e| panic!("bind the {name} endpoint's socket on {ip}: {e}")),
        );
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("set read timeout");
        let local = socket.local_addr().expect("endpoint local address");
        let shared = Arc::new(Shared {
            stop_receiver: AtomicBool::new(false),
            stop_sender: AtomicBool::new(false),
            received: Mutex::new(Vec::with_capacity(1024)),
            arrived: Condvar::new(),
            rtcp_packets: AtomicU64::new(0),
            other_packets: AtomicU64::new(0),
            sender_stats: Mutex::new(SenderStats::default()),
        });
        let receiver = {
            let (socket, shared) = (Arc::clone(&socket), Arc::clone(&shared));
            thread::Builder::new()
                .name(format!("{name}-rx"))
                .spawn(move || receive_loop(&socket, &shared))
                .expect("spawn receiver")
        };
        Endpoint {
            name,
            socket,
            local,
            shared,
            receiver: Some(receiver),
            sender: None,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Starts the sender thread. Panics if it is already sending.
    pub fn start_sending(&mut self, spec: SendSpec) {
        assert!(self.sender.is_none(), "{} is already sending", self.name);
        let (tx, rx) = mpsc::channel();
        let (socket, shared) = (Arc::clone(&self.socket), Arc::clone(&self.shared));
        let handle = thread::Builder::new()
            .name(format!("{}-tx", self.name))
            .spawn(move || send_loop(&socket, &shared, spec, &rx))
            .expect("spawn sender");
        self.sender = Some((handle, tx));
    }

    /// Sends one RFC 4733 key press in place of the audio of the next 8 packet slots, and
    /// returns once its last end packet is on the wire.
    pub fn send_dtmf(&self, digit: char) -> DtmfSent {
        let event =
            rtp::dtmf_event_code(digit).unwrap_or_else(|| panic!("not a DTMF key: {digit:?}"));
        let (_, tx) = self
            .sender
            .as_ref()
            .unwrap_or_else(|| panic!("{} is not sending", self.name));
        let (ack, done) = mpsc::channel();
        tx.send(SenderCommand::Dtmf { event, ack })
            .expect("sender thread alive");
        done.recv_timeout(Duration::from_secs(5))
            .expect("key press sent within 5 s")
    }

    /// Sends one datagram of the test's making from this endpoint's address (what a spoofer
    /// of this party, or a faulty phone, would send), beside or instead of the sender thread.
    pub fn send_raw(&self, dest: SocketAddr, datagram: &[u8]) -> std::io::Result<usize> {
        self.socket.send_to(datagram, dest)
    }

    /// Stops the sender (the receiver keeps recording).
    pub fn stop_sending(&mut self) {
        self.shared.stop_sender.store(true, Ordering::Relaxed);
        if let Some((handle, _)) = self.sender.take() {
            handle.join().expect("sender thread panicked");
        }
        self.shared.stop_sender.store(false, Ordering::Relaxed);
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().expect("received lock").clone()
    }

    /// How many packets have been received so far.
    pub fn received_count(&self) -> usize {
        self.shared.received.lock().expect("received lock").len()
    }

    /// Waits until at least `n` packets have been received, or `within` passed; returns
    /// whether they were.
    pub fn wait_received(&self, n: usize, within: Duration) -> bool {
        let received = self.shared.received.lock().expect("received lock");
        let (received, _) = self
            .shared
            .arrived
            .wait_timeout_while(received, within, |r| r.len() < n)
            .expect("received lock");
        received.len() >= n
    }

    pub fn sender_stats(&self) -> SenderStats {
        *self.shared.sender_stats.lock().expect("stats lock")
    }

    /// RTCP packets that arrived on the RTP port (not recorded as media).
    pub fn rtcp_packets(&self) -> u64 {
        self.shared.rtcp_packets.load(Ordering::Relaxed)
    }

    /// Datagrams that were neither RTP nor RTCP.
    pub fn other_packets(&self) -> u64 {
        self.shared.other_packets.load(Ordering::Relaxed)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shared.stop_sender.store(true, Ordering::Relaxed);
        self.shared.stop_receiver.store(true, Ordering::Relaxed);
        if let Some((handle, _)) = self.sender.take() {
            let _ = handle.join();
        }
        if let Some(handle) = self.receiver.take() {
            let _ = handle.join();
        }
    }
}

fn receive_loop(socket: &UdpSocket, shared: &Shared) {
    let mut buf = [0u8; 2048];
    while !shared.stop_receiver.load(Ordering::Relaxed) {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            // Timeouts, and ICMP port-unreachable reported for an earlier send.
            Err(_) => continue,
        };
        let at = Instant::now();
        let bytes = &buf[..len];
        if rtp::is_rtcp(bytes) {
            shared.rtcp_packets.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let Some(p) = rtp::parse(bytes) else {
            shared.other_packets.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let powers = audio::decode(p.pt, p.payload).map(|pcm| audio::frame_powers(&pcm));
        let r = Received {
            at,
            from,
            pt: p.pt,
            marker: p.marker,
            seq: p.seq,
            ts: p.ts,
            ssrc: p.ssrc,
            payload: p.payload.to_vec(),
            powers,
        };
        shared.received.lock().expect("received lock").push(r);
        shared.arrived.notify_all();
    }
}

fn send_loop(
    socket: &UdpSocket,
    shared: &Shared,
    spec: SendSpec,
    commands: &mpsc::Receiver<SenderCommand>,
) {
    let mut ids = Rng::new(Rng::entropy());
    let ssrc = ids.next_u64() as u32;
    let seq0 = ids.next_u64() as u16;
    let ts0 = ids.next_u64() as u32;
    let mut damage = spec.impairment.map(|i| (i, Rng::new(i.case)));
    let samples_per_packet = FRAME_SAMPLES as u16;

    let mut key_press: VecDeque<(bool, TelephoneEvent)> = VecDeque::new();
    let mut key_ts = 0u32;
    let mut key_ack: Option<(mpsc::Sender<DtmfSent>, Instant)> = None;
    let mut held: Option<Vec<u8>> = None;
    let mut stats = SenderStats::default();

    let start = Instant::now();
    for slot in 0u64.. {
        // Absolute deadlines: a late wake-up never shifts the following packets.
        let deadline = start + PTIME * u32::try_from(slot).expect("slot fits u32");
        loop {
            if shared.stop_sender.load(Ordering::Relaxed) {
                return;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
        let command = if key_press.is_empty() {
            commands.try_recv().ok()
        } else {
            None
        };
        if let Some(SenderCommand::Dtmf { event, ack }) = command {
            key_press.extend(rtp::dtmf_packets(event, samples_per_packet, DTMF_UPDATES));
            key_ts = ts0.wrapping_add((slot as u32).wrapping_mul(u32::from(samples_per_packet)));
            key_ack = Some((ack, Instant::now()));
        }

        let seq = seq0.wrapping_add(slot as u16);
        let ts = ts0.wrapping_add((slot as u32).wrapping_mul(u32::from(samples_per_packet)));
        let packet = if let Some((marker, ev)) = key_press.pop_front() {
            rtp::build(PT_TELEPHONE_EVENT, marker, seq, key_ts, ssrc, &ev.encode())
        } else {
            let pcm = match spec.signal {
                Signal::Tone(t) => audio::tone_frame(t.freq_hz, TONE_AMPLITUDE, slot),
                Signal::Silence => [0i16; FRAME_SAMPLES],
            };
            rtp::build(
                spec.pt,
                slot == 0,
                seq,
                ts,
                ssrc,
                &audio::encode(spec.pt, &pcm),
            )
        };
        stats.generated += 1;

        let mut out: [Option<Vec<u8>>; 2] = [None, None];
        let (drop, hold) = match damage.as_mut() {
            Some((imp, rng)) => {
                let drop = rng.chance(imp.loss_percent);
                (
                    drop,
                    !drop && held.is_none() && rng.chance(imp.reorder_percent),
                )
            }
            None => (false, false),
        };
        if drop {
            stats.dropped += 1;
        } else if hold {
            stats.reordered += 1;
            held = Some(packet);
        } else {
            out = [Some(packet), held.take()];
        }
        for p in out.into_iter().flatten() {
            match socket.send_to(&p, spec.dest) {
                Ok(_) => stats.sent += 1,
                Err(_) => stats.send_errors += 1,
            }
        }
        *shared.sender_stats.lock().expect("stats lock") = stats;

        if let Some((ack, started)) = key_ack.take_if(|_| key_press.is_empty()) {
            let _ = ack.send(DtmfSent {
                started,
                finished: Instant::now(),
            });
        }
    }
}
