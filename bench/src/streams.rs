//! Open `GET /v1/events` streams held while a benchmark runs (`setuprate --streams`): the load
//! of live panels on the control plane. One thread drains every stream (epoll, then
//! non-blocking reads of those that have data), as a browser would read them, and counts what each
//! received; a stream the daemon ends is counted too.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// The drain's longest wait for data, so it notices the end of the run.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// The drain's read buffer.
const READ_BUF: usize = 64 * 1024;

/// What the streams received, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub struct Received {
    pub bytes: u64,
    /// Streams the daemon closed (or that failed) while held.
    pub ended: u64,
}

pub struct Streams {
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    ended: Arc<AtomicU64>,
    drain: Option<JoinHandle<()>>,
}

impl Streams {
    /// Opens `n` streams to the daemon at `addr`, the `i`th with `tokens[i % tokens.len()]`,
    /// each answered `200` before the next is opened, then drains them on a thread of their own.
    pub fn open(addr: SocketAddr, tokens: &[String], n: usize) -> Result<Streams, String> {
        if tokens.is_empty() {
            return Err("no token for the streams".to_owned());
        }
        let mut sockets = Vec::with_capacity(n);
        for i in 0..n {
            let token = &tokens[i % tokens.len()];
            let mut s = TcpStream::connect(addr).map_err(|e| format!("stream {i}: {e}"))?;
            let request = format!(
                "GET /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Accept: text/event-stream\r\n\r\n"
            );
            s.write_all(request.as_bytes())
                .map_err(|e| format!("stream {i}: {e}"))?;
            s.set_read_timeout(Some(crate::http::TIMEOUT))
                .map_err(|e| format!("stream {i}: {e}"))?;
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let got = s.read(&mut buf).map_err(|e| format!("stream {i}: {e}"))?;
                if got == 0 {
                    return Err(format!("stream {i}: closed before its answer"));
                }
                head.extend_from_slice(&buf[..got]);
            }
            if !head.starts_with(b"HTTP/1.1 200") {
                let line = String::from_utf8_lossy(&head);
                let line = line.lines().next().unwrap_or("");
                return Err(format!("stream {i}: {line}"));
            }
            s.set_nonblocking(true)
                .map_err(|e| format!("stream {i}: {e}"))?;
            sockets.push(s);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let ended = Arc::new(AtomicU64::new(0));
        let drain = {
            let (stop, bytes, ended) = (stop.clone(), bytes.clone(), ended.clone());
            std::thread::spawn(move || drain(sockets, &stop, &bytes, &ended))
        };
        Ok(Streams {
            stop,
            bytes,
            ended,
            drain: Some(drain),
        })
    }

    /// What was received so far.
    pub fn received(&self) -> Received {
        Received {
            bytes: self.bytes.load(Ordering::Relaxed),
            ended: self.ended.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(d) = self.drain.take() {
            let _ = d.join();
        }
    }
}

fn drain(sockets: Vec<TcpStream>, stop: &AtomicBool, bytes: &AtomicU64, ended: &AtomicU64) {
    // Waits in epoll for the streams that have something, rather than reading each in turn:
    // an idle stream costs the benchmark's core nothing.
    let Ok(mut poll) = mio::Poll::new() else {
        ended.fetch_add(sockets.len() as u64, Ordering::Relaxed);
        return;
    };
    let mut open: Vec<Option<mio::net::TcpStream>> = Vec::with_capacity(sockets.len());
    for (i, s) in sockets.into_iter().enumerate() {
        let mut s = mio::net::TcpStream::from_std(s);
        if poll
            .registry()
            .register(&mut s, mio::Token(i), mio::Interest::READABLE)
            .is_err()
        {
            ended.fetch_add(1, Ordering::Relaxed);
            open.push(None);
            continue;
        }
        open.push(Some(s));
    }
    let mut events = mio::Events::with_capacity(open.len().max(1));
    let mut buf = vec![0u8; READ_BUF];
    while !stop.load(Ordering::Relaxed) {
        if poll.poll(&mut events, Some(POLL_TIMEOUT)).is_err() {
            continue;
        }
        for event in &events {
            let slot = &mut open[event.token().0];
            let Some(s) = slot else { continue };
            // Edge-triggered: read until there is nothing more.
            let keep = loop {
                match s.read(&mut buf) {
                    Ok(0) => break false,
                    Ok(n) => {
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(_) => break false,
                }
            };
            if !keep {
                ended.fetch_add(1, Ordering::Relaxed);
                *slot = None;
            }
        }
    }
}
