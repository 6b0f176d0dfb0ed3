//! Media port allocation. Each leg gets an even port (RFC 3550 §11: RTP on even, RTCP on the
//! odd port above it, which is left free for it). Ports are handed out round-robin through the
//! range so that a just-released port is not reused at once.

use std::collections::HashSet;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use super::EngineError;

pub struct PortAllocator {
    ip: IpAddr,
    first: u16,
    last: u16,
    next: u16,
    in_use: HashSet<u16>,
}

impl PortAllocator {
    /// A pool over the even ports of `min..=max`.
    pub fn new(ip: IpAddr, min: u16, max: u16) -> Result<PortAllocator, EngineError> {
        let first = min.checked_add(min % 2).filter(|f| *f <= max);
        let Some(first) = first else {
            return Err(EngineError::Config(format!(
                "media port range {min}-{max} holds no even port"
            )));
        };
        let last = max - (max - first) % 2;
        Ok(PortAllocator {
            ip,
            first,
            last,
            next: first,
            in_use: HashSet::new(),
        })
    }

    /// Ports in the pool.
    pub fn capacity(&self) -> usize {
        usize::from((self.last - self.first) / 2) + 1
    }

    /// Binds the next free port. A port some other process holds is skipped.
    pub fn allocate(&mut self) -> Result<(UdpSocket, SocketAddr), EngineError> {
        for _ in 0..self.capacity() {
            let port = self.next;
            self.next = if port >= self.last {
                self.first
            } else {
                port + 2
            };
            if self.in_use.contains(&port) {
                continue;
            }
            match UdpSocket::bind(SocketAddr::new(self.ip, port)) {
                Ok(socket) => {
                    self.in_use.insert(port);
                    return Ok((socket, SocketAddr::new(self.ip, port)));
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => continue,
                Err(source) => {
                    return Err(EngineError::Io {
                        context: "binding a media port",
                        source,
                    });
                }
            }
        }
        Err(EngineError::PortsExhausted)
    }

    pub fn release(&mut self, port: u16) {
        self.in_use.remove(&port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hands_out_even_ports_and_reports_exhaustion() {
        let ip = IpAddr::from([127, 0, 0, 1]);
        // A range of our own: find three free even ports in a high range.
        let mut pool = PortAllocator::new(ip, 41001, 41006).unwrap();
        assert_eq!(pool.capacity(), 3);
        let mut held = Vec::new();
        while let Ok((socket, addr)) = pool.allocate() {
            assert_eq!(addr.port() % 2, 0);
            assert!((41002..=41006).contains(&addr.port()));
            held.push((socket, addr));
        }
        assert!(matches!(pool.allocate(), Err(EngineError::PortsExhausted)));
        let (_, addr) = held.pop().unwrap();
        pool.release(addr.port());
        assert!(pool.allocate().is_ok());
    }

    #[test]
    fn a_range_without_even_ports_is_refused() {
        assert!(PortAllocator::new(IpAddr::from([127, 0, 0, 1]), 41001, 41001).is_err());
    }
}
