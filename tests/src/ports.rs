//! Media port ranges for test daemons, chosen by the OS instead of by arithmetic.
//!
//! The io_uring engine binds each leg's port when the leg is created, from the configured range
//! (even ports, docs/media.md), and skips a port some other socket holds; the AF_XDP backend
//! binds no socket at all, and the tests that run it do so inside a namespace of their own, where
//! nothing else can hold a port. So a loopback test needs a range that is free when its daemon
//! starts and that no other daemon of the same test process is also given.
//!
//! [`udp_range`] asks the kernel for a free port (a bind to port 0 lands in the ephemeral range,
//! where the OS hands out only ports nobody holds), then checks that every following port of the
//! range can be bound on the media address too, and releases them all: the daemon binds them
//! itself. Ranges handed out are remembered for the life of the process, so no two daemons of one
//! test binary ever share a port. Another process may still bind one of these ports later (a
//! socket of its own on port 0); the engine then skips that port, which costs a test only if it
//! needs every port of its range.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::ops::RangeInclusive;
use std::sync::Mutex;

/// Ranges handed out by this process so far.
static HANDED_OUT: Mutex<Vec<RangeInclusive<u16>>> = Mutex::new(Vec::new());

/// How many candidate ranges [`udp_range`] tries before it gives up.
const ATTEMPTS: usize = 1000;

/// A range of `len` UDP ports (from an even port, as the engine hands out even ports) that the
/// OS had free on `ip` a moment ago and that this process has not handed out before, as
/// `(port_min, port_max)`. Panics, saying why, if none is found (`len` of 0, or a machine
/// whose ephemeral ports are nearly all taken).
pub fn udp_range_on(ip: IpAddr, len: u16) -> (u16, u16) {
    assert!(len > 0, "a media port range of no ports");
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..ATTEMPTS {
        let first = UdpSocket::bind(SocketAddr::new(ip, 0))
            .and_then(|s| s.local_addr())
            .unwrap_or_else(|e| panic!("cannot bind a UDP socket on {ip}: {e}"))
            .port();
        if let Some(range) = free_from(ip, first - first % 2, len, &handed_out) {
            handed_out.push(range.clone());
            return (*range.start(), *range.end());
        }
    }
    panic!("no {len} consecutive free UDP ports on {ip} in {ATTEMPTS} tries")
}

/// `len` ports from `first` when every one of them binds on `ip` and none overlaps a range in
/// `handed_out`.
fn free_from(
    ip: IpAddr,
    first: u16,
    len: u16,
    handed_out: &[RangeInclusive<u16>],
) -> Option<RangeInclusive<u16>> {
    let range = first..=first.checked_add(len - 1)?;
    if handed_out
        .iter()
        .any(|r| r.start() <= range.end() && range.start() <= r.end())
    {
        return None;
    }
    // Bound one at a time and closed at once: a range of thousands of ports must not need
    // thousands of descriptors.
    range
        .clone()
        .all(|port| UdpSocket::bind(SocketAddr::new(ip, port)).is_ok())
        .then_some(range)
}

/// [`udp_range_on`] on 127.0.0.1, the tests' media address on loopback.
pub fn udp_range(len: u16) -> (u16, u16) {
    udp_range_on(IpAddr::V4(Ipv4Addr::LOCALHOST), len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_free_even_disjoint_and_of_the_length_asked() {
        let ranges: Vec<_> = (0..20).map(|_| udp_range(40)).collect();
        for (i, &(min, max)) in ranges.iter().enumerate() {
            assert_eq!(min % 2, 0, "{min}");
            assert_eq!(max - min + 1, 40);
            for &(other_min, other_max) in &ranges[i + 1..] {
                assert!(max < other_min || other_max < min, "{ranges:?}");
            }
            // Free: the daemon will bind them.
            let held: Vec<_> = (min..=max)
                .map(|p| UdpSocket::bind(("127.0.0.1", p)).unwrap())
                .collect();
            assert_eq!(held.len(), 40);
        }
    }

    #[test]
    fn a_range_over_a_held_port_or_a_handed_out_range_is_refused() {
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let held = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let first = port - port % 2;
        assert_eq!(free_from(ip, first, 4, &[]), None);
        drop(held);
        assert_eq!(free_from(ip, first, 4, &[]), Some(first..=first + 3));
        assert_eq!(free_from(ip, first, 4, &[first + 3..=first + 5]), None);
        assert_eq!(
            free_from(ip, u16::MAX - 1, 4, &[]),
            None,
            "past the last port"
        );
    }
}
