//! The frames of the AF_XDP data path: UDP over IPv4 or IPv6 over Ethernet II, read with the
//! [`ethernet`], [`ip`] and [`udp`] views and built with their emitters by the AF_XDP
//! backend (`engine::afxdp`). The XDP program redirects only such frames, but a frame is
//! input and is checked again here.

use std::net::{IpAddr, SocketAddr};

use super::ethernet::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, EthernetFrame, MacAddr};
use super::ip::{self, Ipv4Packet, Ipv6Packet, PROTOCOL_UDP};
use super::udp::{self, UdpDatagram};
use super::{WireError, WireResult};

/// The longest headers [`emit_udp_headers`] writes: Ethernet, IPv6, UDP.
pub const MAX_HEADERS_LEN: usize = EthernetFrame::<&[u8]>::HEADER_LEN
    + Ipv6Packet::<&[u8]>::HEADER_LEN
    + UdpDatagram::<&[u8]>::HEADER_LEN;

/// A UDP datagram received in an Ethernet frame: who sent it, to which address, and its
/// payload (borrowed from the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame<'a> {
    /// The link-layer source: the next hop toward `src`.
    pub src_mac: MacAddr,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub payload: &'a [u8],
}

/// Parses Ethernet II / IPv4 or IPv6 / UDP. `Unsupported` for another EtherType, an IP
/// protocol other than UDP or an IPv6 extension header; the views' own errors for anything
/// truncated or inconsistent. IP and UDP checksums are not verified (the payload is RTP,
/// which is checked on its own; a NIC or the kernel verified them where it could).
pub fn parse_udp(frame: &[u8]) -> WireResult<UdpFrame<'_>> {
    let eth = EthernetFrame::new_checked(frame)?;
    let (src_ip, dst_ip, ip_payload): (IpAddr, IpAddr, &[u8]) = match eth.ethertype() {
        ETHERTYPE_IPV4 => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            if ip.protocol() != PROTOCOL_UDP {
                return Err(WireError::Unsupported);
            }
            (ip.src_addr().into(), ip.dst_addr().into(), ip.payload())
        }
        ETHERTYPE_IPV6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            if ip.next_header() != PROTOCOL_UDP {
                return Err(WireError::Unsupported);
            }
            (ip.src_addr().into(), ip.dst_addr().into(), ip.payload())
        }
        _ => return Err(WireError::Unsupported),
    };
    let udp = UdpDatagram::new_checked(ip_payload)?;
    Ok(UdpFrame {
        src_mac: eth.src_mac(),
        src: SocketAddr::new(src_ip, udp.src_port()),
        dst: SocketAddr::new(dst_ip, udp.dst_port()),
        payload: udp.payload(),
    })
}

/// Writes the Ethernet, IP and UDP headers of a frame carrying `payload` from `src` to `dst`
/// (IPv4 with its header checksum, or IPv6; the UDP checksum over `payload`) into `out` and
/// returns their length; the payload goes right after them. `Malformed` if `src` and `dst`
/// are of different families, `BadLength` if the datagram would not fit in an IP packet.
pub fn emit_udp_headers(
    out: &mut [u8; MAX_HEADERS_LEN],
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> WireResult<usize> {
    let udp_len = UdpDatagram::<&[u8]>::HEADER_LEN + payload.len();
    let ethertype = match (src.ip(), dst.ip()) {
        (IpAddr::V4(_), IpAddr::V4(_)) => ETHERTYPE_IPV4,
        (IpAddr::V6(_), IpAddr::V6(_)) => ETHERTYPE_IPV6,
        _ => return Err(WireError::Malformed),
    };
    let mut at = ethernet::emit(out, dst_mac, src_mac, ethertype)?;
    at += match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            ip::emit_ipv4(&mut out[at..], s, d, PROTOCOL_UDP, udp_len)?
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ip::emit_ipv6(&mut out[at..], s, d, PROTOCOL_UDP, udp_len)?
        }
        _ => return Err(WireError::Malformed),
    };
    at += udp::emit(&mut out[at..], src, dst, payload)?;
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;

    /// Builds a whole frame the way the AF_XDP sender does.
    fn build(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let mut headers = [0u8; MAX_HEADERS_LEN];
        let hlen = emit_udp_headers(&mut headers, [2; 6], [4; 6], src, dst, payload).unwrap();
        let mut frame = headers[..hlen].to_vec();
        frame.extend_from_slice(payload);
        frame
    }

    fn round_trip(src: SocketAddr, dst: SocketAddr) {
        let payload = b"\x80\x00\x00\x01hello rtp";
        let frame = build(src, dst, payload);
        let inbound = parse_udp(&frame).expect("our own frame parses");
        assert_eq!((inbound.src, inbound.dst), (src, dst));
        assert_eq!(inbound.src_mac, [2; 6]);
        assert_eq!(inbound.payload, payload);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.dst_mac(), [4; 6]);
        let ip_payload = match src {
            SocketAddr::V4(_) => {
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                assert!(ip.verify_checksum());
                assert_eq!(ip.hop_limit(), 64);
                ip.payload()
            }
            SocketAddr::V6(_) => Ipv6Packet::new_checked(eth.payload()).unwrap().payload(),
        };
        // The UDP checksum over pseudo-header, header and payload verifies to zero (RFC 768).
        let udp = UdpDatagram::new_checked(ip_payload).unwrap();
        assert!(udp.verify_checksum(src.ip(), dst.ip()));
        let pseudo = udp::pseudo_header_sum(src.ip(), dst.ip(), udp.len()).unwrap();
        assert_eq!(checksum::finish(pseudo + checksum::sum(&[ip_payload])), 0);
    }

    #[test]
    fn frames_we_build_parse_back_with_valid_checksums() {
        round_trip(
            "10.1.2.3:20000".parse().unwrap(),
            "10.1.2.4:4000".parse().unwrap(),
        );
        round_trip(
            "[fd00::1]:20002".parse().unwrap(),
            "[fd00::2]:4002".parse().unwrap(),
        );
    }

    #[test]
    fn parse_refuses_what_is_not_udp_over_ip_and_never_panics() {
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // ARP
        assert_eq!(parse_udp(&frame), Err(WireError::Unsupported));
        for (src, dst) in [("10.0.0.1:1", "10.0.0.2:2"), ("[fd00::1]:1", "[fd00::2]:2")] {
            let f = build(src.parse().unwrap(), dst.parse().unwrap(), &[0; 16]);
            // Every prefix short of the whole datagram is refused, without a panic.
            for len in 0..=f.len() {
                assert_eq!(parse_udp(&f[..len]).is_ok(), len == f.len(), "length {len}");
            }
            // Link-layer padding after the datagram is not payload.
            let mut padded = f.clone();
            padded.extend_from_slice(&[0xEE; 10]);
            assert_eq!(parse_udp(&padded).unwrap().payload, &[0; 16]);
        }
    }

    #[test]
    fn parse_refuses_inconsistent_lengths_and_other_protocols() {
        let good = build(
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:2".parse().unwrap(),
            &[7; 8],
        );
        // The outcome of parsing `good` with `bytes` written at `at`, with the payload owned.
        let edit = |at: usize, bytes: &[u8]| {
            let mut f = good.clone();
            f[at..at + bytes.len()].copy_from_slice(bytes);
            parse_udp(&f).map(|inbound| inbound.payload.to_vec())
        };
        assert_eq!(edit(14, &[0x55]), Err(WireError::BadVersion));
        assert_eq!(edit(14, &[0x44]), Err(WireError::BadLength)); // IHL below 5 words
        assert_eq!(edit(16, &[0, 19]), Err(WireError::BadLength)); // total below the header
        assert_eq!(edit(16, &[0, 200]), Err(WireError::Truncated)); // total past the frame
        assert_eq!(edit(23, &[6]), Err(WireError::Unsupported)); // TCP
        assert_eq!(edit(38, &[0, 7]), Err(WireError::BadLength)); // UDP length below 8
        assert_eq!(edit(38, &[0, 17]), Err(WireError::Truncated)); // UDP length past the IP
        assert_eq!(edit(38, &[0, 12]), Ok(vec![7; 4]));
    }

    #[test]
    fn emit_refuses_mixed_families_and_oversized_datagrams() {
        let mut out = [0; MAX_HEADERS_LEN];
        let (v4, v6) = (
            "10.0.0.1:1".parse().unwrap(),
            "[fd00::1]:1".parse().unwrap(),
        );
        assert_eq!(
            emit_udp_headers(&mut out, [0; 6], [0; 6], v4, v6, &[]),
            Err(WireError::Malformed)
        );
        let big = vec![0; 65_535 - 8 - 20 + 1];
        assert_eq!(
            emit_udp_headers(&mut out, [0; 6], [0; 6], v4, v4, &big),
            Err(WireError::BadLength)
        );
        assert!(emit_udp_headers(&mut out, [0; 6], [0; 6], v4, v4, &big[1..]).is_ok());
        assert!(emit_udp_headers(&mut out, [0; 6], [0; 6], v6, v6, &big).is_ok());
    }
}
