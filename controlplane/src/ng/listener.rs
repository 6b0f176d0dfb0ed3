//! The NG listener (docs/ng.md, Listener): one UDP socket, datagrams `<cookie> <document>`,
//! answers `<cookie> <document>` sent from that same socket, so they leave from the address the
//! request was sent to (the rtpengine modules' sockets are connected and drop anything else).
//!
//! - Sources outside `ng.allow` are dropped and counted (docs/design.md §4: NG has no tokens,
//!   its access control is the source address).
//! - The cookie cache: the modules resend the *same* datagram after their timeout (1 s, up to 5
//!   times). Each answer is kept by (source address, cookie) for at least [`CACHE_GENERATION`]
//!   and a resend gets it again without a second run; a resend arriving while the original is
//!   still running gets the answer when it is ready. The key has the source address: two
//!   proxies with the same `server_id` make the same cookies.
//! - The command itself (the records lock, the engine's ring, the store's commits) runs on the
//!   blocking pool, at most `in_flight_max` at once; beyond that a datagram is dropped and
//!   counted (the module resends it).
//! - Stopping: no new datagram is read; the commands already running finish and are answered
//!   (for up to [`DRAIN_MAX`]).
//!
//! The listener knows nothing of the document inside: a [`Dispatch`] turns a request body into
//! an [`Answer`] (ng/commands.rs in the daemon).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::config::Network;
use crate::metrics::Metrics;
use crate::ng::message::split;

/// Largest datagram read: a UDP payload cannot be longer, so nothing is ever truncated.
const DATAGRAM_MAX: usize = 65_535;
/// How long an answer stays in the cookie cache at least (rtpengine keeps its answers 30 to
/// 60 s; a module gives up after 5 resends 1 s apart).
pub const CACHE_GENERATION: Duration = Duration::from_secs(30);
/// Most answers one cache generation holds (at most two generations are kept): a bound on
/// memory should a client flood the listener with fresh cookies. A full generation ages
/// early, which only shortens how long the oldest answers can be replayed.
const CACHE_ENTRIES_MAX: usize = 65_536;
/// Commands running at once by default; more are dropped (`busy`) until one ends.
pub const IN_FLIGHT_MAX: usize = 256;
/// How long a stop waits for running commands to be answered.
pub const DRAIN_MAX: Duration = Duration::from_secs(5);
/// How long the loop pauses after a receive error, so a persistent one does not spin.
const RECV_RETRY: Duration = Duration::from_millis(10);

/// A request body's answer, from the [`Dispatch`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The answer's document (bencode), without the cookie.
    pub body: Vec<u8>,
    /// The command's name and the answer's result, for `earshot_ng_requests_total`: each from
    /// a fixed set, so the metric's labels stay bounded.
    pub command: &'static str,
    pub result: &'static str,
}

/// Runs one request body (blocking: it is called on the blocking pool) and answers it.
pub type Dispatch = Arc<dyn Fn(&[u8]) -> Answer + Send + Sync>;

/// What the listener is told.
#[derive(Clone)]
pub struct Options {
    /// Source networks answered; others are dropped.
    pub allow: Vec<Network>,
    /// Commands running at once; more are dropped until one ends.
    pub in_flight_max: usize,
}

/// A cache key: the source and its cookie.
type Key = (SocketAddr, Vec<u8>);

enum Entry {
    /// The command runs; `resends` more datagrams with its cookie arrived meanwhile, each owed
    /// the answer.
    Running { resends: usize },
    /// The whole answer datagram (cookie, space, document).
    Done(Arc<[u8]>),
}

/// What the cache says of an arriving datagram.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// New: run it.
    New,
    /// Its original is still running: the answer will be sent to it too.
    Running,
    /// Answered before: send this again.
    Done(Arc<[u8]>),
}

/// The cookie cache: two generations, the current one and the one before, swapped every
/// [`CACHE_GENERATION`]; an entry lives from one to two generations. Time is an input.
struct Cache {
    current: HashMap<Key, Entry>,
    previous: HashMap<Key, Entry>,
    aged_at: Instant,
}

impl Cache {
    fn new(now: Instant) -> Cache {
        Cache {
            current: HashMap::new(),
            previous: HashMap::new(),
            aged_at: now,
        }
    }

    fn age(&mut self, now: Instant) {
        if now.duration_since(self.aged_at) >= CACHE_GENERATION
            || self.current.len() >= CACHE_ENTRIES_MAX
        {
            self.previous = std::mem::take(&mut self.current);
            self.aged_at = now;
        }
    }

    fn contains(&self, key: &Key) -> bool {
        self.current.contains_key(key) || self.previous.contains_key(key)
    }

    /// Looks `key` up; a new key is recorded as running.
    fn arrive(&mut self, key: Key, now: Instant) -> Seen {
        self.age(now);
        let entry = match self.current.get_mut(&key) {
            Some(entry) => entry,
            None => match self.previous.get_mut(&key) {
                Some(entry) => entry,
                None => {
                    self.current.insert(key, Entry::Running { resends: 0 });
                    return Seen::New;
                }
            },
        };
        match entry {
            Entry::Running { resends } => {
                *resends += 1;
                Seen::Running
            }
            Entry::Done(answer) => Seen::Done(Arc::clone(answer)),
        }
    }

    /// Records `key`'s answer (`None`: it has none, forget it so a resend runs it again);
    /// returns how many resends arrived while it ran.
    fn finish(&mut self, key: Key, answer: Option<Arc<[u8]>>, now: Instant) -> usize {
        self.age(now);
        let resends = match self
            .current
            .remove(&key)
            .or_else(|| self.previous.remove(&key))
        {
            Some(Entry::Running { resends }) => resends,
            _ => 0,
        };
        if let Some(answer) = answer {
            self.current.insert(key, Entry::Done(answer));
        }
        resends
    }
}

/// A command that ended: its key, its answer datagram (`None`: it failed without one), when
/// its request arrived.
struct Finished {
    key: Key,
    answer: Option<(Arc<[u8]>, &'static str, &'static str)>,
    arrived: Instant,
}

/// Serves NG on `socket` until `stop`, then answers the commands still running (for up to
/// [`DRAIN_MAX`]) and returns.
pub async fn serve(
    socket: std::net::UdpSocket,
    options: Options,
    dispatch: Dispatch,
    metrics: Metrics,
    mut stop: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket)?;
    let in_flight_max = options.in_flight_max.max(1);
    // Never full: at most `in_flight_max` commands run, each sends once.
    let (done_tx, mut done_rx) = mpsc::channel::<Finished>(in_flight_max);
    let mut cache = Cache::new(Instant::now());
    let mut in_flight = 0usize;
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => break,
            Some(finished) = done_rx.recv() => {
                in_flight -= 1;
                answer(&socket, &mut cache, &metrics, finished).await;
            }
            received = socket.recv_from(&mut buf) => {
                let (len, source) = match received {
                    Ok(r) => r,
                    Err(err) => {
                        tracing::warn!(%err, "NG receive failed");
                        tokio::time::sleep(RECV_RETRY).await;
                        continue;
                    }
                };
                let arrived = Instant::now();
                if !options.allow.iter().any(|n| n.contains(source.ip())) {
                    metrics.ng_dropped("not_allowed");
                    tracing::debug!(%source, "NG datagram from a source outside ng.allow dropped");
                    continue;
                }
                let Some((cookie, body)) = split(&buf[..len]) else {
                    metrics.ng_dropped("no_cookie");
                    continue;
                };
                let key = (source, cookie.to_vec());
                if in_flight >= in_flight_max && !cache.contains(&key) {
                    metrics.ng_dropped("busy");
                    continue;
                }
                match cache.arrive(key.clone(), arrived) {
                    Seen::Running => {}
                    Seen::Done(datagram) => {
                        metrics.ng_replayed();
                        send(&socket, &datagram, source).await;
                    }
                    Seen::New => {
                        in_flight += 1;
                        let body = body.to_vec();
                        let dispatch = Arc::clone(&dispatch);
                        let done = done_tx.clone();
                        tokio::spawn(async move {
                            let ran = tokio::task::spawn_blocking(move || dispatch(&body)).await;
                            let answer = match ran {
                                Ok(a) => {
                                    let mut datagram = Vec::with_capacity(key.1.len() + 1 + a.body.len());
                                    datagram.extend_from_slice(&key.1);
                                    datagram.push(b' ');
                                    datagram.extend_from_slice(&a.body);
                                    Some((Arc::from(datagram), a.command, a.result))
                                }
                                Err(err) => {
                                    tracing::error!(%err, "an NG command failed without an answer");
                                    None
                                }
                            };
                            let _ = done.send(Finished { key, answer, arrived }).await;
                        });
                    }
                }
            }
        }
    }
    // Drain: answer what is running, read nothing new.
    let deadline = Instant::now() + DRAIN_MAX;
    while in_flight > 0 {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some(finished)) => {
                in_flight -= 1;
                answer(&socket, &mut cache, &metrics, finished).await;
            }
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    in_flight,
                    "NG commands still running after {DRAIN_MAX:?}; stopping without their answers"
                );
                break;
            }
        }
    }
    Ok(())
}

/// Sends a finished command's answer to its source, once for the request and once for each
/// resend that arrived meanwhile, and caches it.
async fn answer(socket: &UdpSocket, cache: &mut Cache, metrics: &Metrics, finished: Finished) {
    let Finished {
        key,
        answer,
        arrived,
    } = finished;
    let source = key.0;
    let now = Instant::now();
    match answer {
        Some((datagram, command, result)) => {
            let resends = cache.finish(key, Some(Arc::clone(&datagram)), now);
            for _ in 0..=resends {
                send(socket, &datagram, source).await;
            }
            metrics.ng_request(command, result, now.duration_since(arrived).as_secs_f64());
            for _ in 0..resends {
                metrics.ng_replayed();
            }
        }
        None => {
            cache.finish(key, None, now);
            metrics.ng_dropped("failed");
        }
    }
}

async fn send(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) {
    if let Err(err) = socket.send_to(datagram, to).await {
        // The client went away (or its buffer is full): it will resend.
        tracing::debug!(%err, %to, "cannot send an NG answer");
    }
}

#[cfg(test)]
#[path = "listener_tests.rs"]
mod tests;
