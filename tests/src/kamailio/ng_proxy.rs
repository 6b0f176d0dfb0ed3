//! A UDP proxy between Kamailio and the relay's NG listener that loses the first answer to
//! every `offer`, so Kamailio's `rtpengine` module resends the same cookie after
//! `rtpengine_tout_ms` (docs/ng.md): the relay must answer the resend from its cookie cache.
//!
//! Kamailio's sockets are connected to the proxy's address, so answers leave from it; each
//! Kamailio socket gets an upstream socket of its own, so the relay's answer to it comes back
//! to the right one. Threads stop when the proxy drops.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long a proxy thread blocks on a read before it looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

/// A request's cookie: `(Kamailio's socket, cookie)`.
type Key = (SocketAddr, Vec<u8>);

#[derive(Default)]
struct Log {
    /// The command of each request seen, and how many times it came (resends included).
    requests: HashMap<Key, (Vec<u8>, u32)>,
    /// The answers the proxy lost.
    lost: HashMap<Key, Vec<u8>>,
    /// The answers to resends of a cookie whose first answer was lost.
    resent: HashMap<Key, Vec<u8>>,
}

/// What the proxy saw of one `offer` whose answer it lost.
#[derive(Debug, Clone)]
pub struct LostOffer {
    pub cookie: String,
    /// How many times Kamailio sent this cookie.
    pub sent: u32,
    /// The lost answer, and the answer to the resend (`None`: never answered).
    pub lost_answer: Vec<u8>,
    pub resend_answer: Option<Vec<u8>>,
}

pub struct NgProxy {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Log>>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl NgProxy {
    /// Listens on an OS-chosen loopback port, forwarding to `relay`.
    pub fn start(relay: SocketAddr) -> NgProxy {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind the NG proxy"));
        front.set_read_timeout(Some(POLL)).expect("set timeout");
        let addr = front.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Log::default()));
        let threads = Arc::new(Mutex::new(Vec::new()));
        let front_thread = {
            let (stop, log, threads) = (Arc::clone(&stop), Arc::clone(&log), Arc::clone(&threads));
            thread::spawn(move || forward_requests(&front, relay, &stop, &log, &threads))
        };
        threads.lock().expect("threads").push(front_thread);
        NgProxy {
            addr,
            stop,
            log,
            threads,
        }
    }

    /// Every `offer` whose first answer was lost.
    pub fn lost_offers(&self) -> Vec<LostOffer> {
        let log = self.log.lock().expect("log");
        log.lost
            .iter()
            .map(|(key, answer)| LostOffer {
                cookie: String::from_utf8_lossy(&key.1).into_owned(),
                sent: log.requests.get(key).map_or(0, |(_, n)| *n),
                lost_answer: answer.clone(),
                resend_answer: log.resent.get(key).cloned(),
            })
            .collect()
    }
}

impl Drop for NgProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads"));
        for t in threads {
            let _ = t.join();
        }
    }
}

/// The cookie and the body of an NG datagram.
fn split(datagram: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = datagram.iter().position(|&b| b == b' ')?;
    Some((&datagram[..space], &datagram[space + 1..]))
}

/// The value of the top-level `command` key, found textually (the rig's requests come from
/// Kamailio, which always sends it as `7:command<len>:<word>`).
fn command(body: &[u8]) -> Vec<u8> {
    const KEY: &[u8] = b"7:command";
    let Some(at) = body.windows(KEY.len()).position(|w| w == KEY) else {
        return Vec::new();
    };
    let rest = &body[at + KEY.len()..];
    let Some(colon) = rest.iter().position(|&b| b == b':') else {
        return Vec::new();
    };
    let len: usize = std::str::from_utf8(&rest[..colon])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    rest.get(colon + 1..colon + 1 + len)
        .unwrap_or_default()
        .to_vec()
}

fn forward_requests(
    front: &Arc<UdpSocket>,
    relay: SocketAddr,
    stop: &Arc<AtomicBool>,
    log: &Arc<Mutex<Log>>,
    threads: &Arc<Mutex<Vec<JoinHandle<()>>>>,
) {
    let mut upstreams: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, kamailio)) = front.recv_from(&mut buf) else {
            continue;
        };
        let datagram = &buf[..len];
        if let Some((cookie, body)) = split(datagram) {
            let mut log = log.lock().expect("log");
            let entry = log
                .requests
                .entry((kamailio, cookie.to_vec()))
                .or_insert_with(|| (command(body), 0));
            entry.1 += 1;
        }
        let upstream = upstreams.entry(kamailio).or_insert_with(|| {
            let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").expect("bind an upstream"));
            socket.set_read_timeout(Some(POLL)).expect("set timeout");
            let (socket2, front, stop, log) = (
                Arc::clone(&socket),
                Arc::clone(front),
                Arc::clone(stop),
                Arc::clone(log),
            );
            let handle =
                thread::spawn(move || forward_answers(&socket2, &front, kamailio, &stop, &log));
            threads.lock().expect("threads").push(handle);
            socket
        });
        let _ = upstream.send_to(datagram, relay);
    }
}

fn forward_answers(
    upstream: &UdpSocket,
    front: &UdpSocket,
    kamailio: SocketAddr,
    stop: &AtomicBool,
    log: &Mutex<Log>,
) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let Ok((len, _)) = upstream.recv_from(&mut buf) else {
            continue;
        };
        let datagram = &buf[..len];
        let Some((cookie, body)) = split(datagram) else {
            continue;
        };
        let key = (kamailio, cookie.to_vec());
        {
            let mut log = log.lock().expect("log");
            let is_offer = log
                .requests
                .get(&key)
                .is_some_and(|(command, _)| command == b"offer");
            if is_offer && !log.lost.contains_key(&key) {
                log.lost.insert(key, body.to_vec());
                continue;
            }
            if log.lost.contains_key(&key) {
                log.resent.entry(key).or_insert_with(|| body.to_vec());
            }
        }
        let _ = front.send_to(datagram, kamailio);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_read_from_kamailios_dictionary() {
        let body = b"d8:supportsl10:load limite3:sdp3:v=07:call-id3:a@b7:command5:offere";
        assert_eq!(command(body), b"offer");
        assert_eq!(command(b"d7:command4:pinge"), b"ping");
        assert_eq!(command(b"d7:command99:x"), b"");
        assert_eq!(command(b"de"), b"");
        assert_eq!(
            split(b"1_2_3 d7:command4:pinge"),
            Some((&b"1_2_3"[..], &b"d7:command4:pinge"[..]))
        );
        assert_eq!(split(b"nocookie"), None);
    }
}
