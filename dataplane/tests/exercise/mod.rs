//! Exercisers of the wire views, shared by the property tests (`wire_props.rs`) and the fuzz
//! targets (`dataplane/fuzz/`, docs/fuzzing.md): each takes any bytes, runs the checked
//! constructor, reads every accessor of what it returns and asserts the invariants that are
//! cheap to check. A panic here, on any input, is a bug in a view (docs/fuzzing.md).

// Each includer uses only some of these.
#![allow(dead_code)]

use std::net::IpAddr;

use dataplane::wire::ethernet::EthernetFrame;
use dataplane::wire::frame::{self, MAX_HEADERS_LEN};
use dataplane::wire::ip::{Ipv4Packet, Ipv6Packet};
use dataplane::wire::rtcp::{
    self, Goodbye, ReceiverReport, RtcpPacket, RtcpType, SenderReport, SourceDescription,
};
use dataplane::wire::rtp::{RtpHeader, RtpPacket, SeqNo, Ssrc, is_rtcp};
use dataplane::wire::telephone_event::{self, TelephoneEvent};
use dataplane::wire::udp::UdpDatagram;

/// Reads every field of whatever RTP view `buf` makes, checks the lengths add up, and checks
/// that the setters keep a valid packet valid.
pub fn rtp(buf: &[u8]) {
    let _ = is_rtcp(buf);
    let Ok(p) = RtpPacket::new_checked(buf) else {
        return;
    };
    let _ = (
        p.version(),
        p.padding(),
        p.marker(),
        p.payload_type(),
        p.sequence_number(),
    );
    let _ = (p.timestamp(), p.ssrc(), p.as_bytes());
    assert_eq!(p.csrcs().count(), usize::from(p.csrc_count()));
    if let Some((_, ext)) = p.extension_header() {
        assert!(ext.len() + 4 <= p.header_len());
    }
    assert_eq!(
        p.header_len() + p.payload().len() + p.padding_len(),
        buf.len()
    );
    if let Ok(ev) = TelephoneEvent::new_checked(p.payload()) {
        event(&ev);
    }

    let payload = p.payload().to_vec();
    let mut owned = buf.to_vec();
    let mut q = RtpPacket::new_checked(&mut owned[..]).unwrap();
    q.set_marker(true);
    q.set_payload_type(101);
    q.set_sequence_number(SeqNo(1));
    q.set_timestamp(2);
    q.set_ssrc(Ssrc(3));
    assert_eq!(q.payload_mut(), &payload[..]);
    let q = RtpPacket::new_checked(&owned[..]).expect("setters keep a packet valid");
    let header = RtpHeader::parse(&q);
    assert!(header.marker && header.payload_type == 101 && header.ssrc == Ssrc(3));
    assert_eq!(header.sequence_number, SeqNo(1));
    assert_eq!(header.timestamp, 2);
    // Only the header fields changed: everything after the fixed header is as received.
    assert_eq!(&owned[RtpHeader::LEN..], &buf[RtpHeader::LEN..]);
}

/// Reads every field of every RTCP packet and typed view `buf` makes, and checks that the
/// packets of a compound add up to the datagram (or the walk stops at its one error).
pub fn rtcp(buf: &[u8]) {
    let valid = rtcp::validate_compound(buf).is_ok();
    if let Ok(p) = RtcpPacket::new_checked(buf) {
        rtcp_packet(&p);
    }
    let (mut len, mut errors) = (0, 0);
    for item in rtcp::compound(buf) {
        assert_eq!(errors, 0, "the iterator ends after its first error");
        match item {
            Ok(p) => {
                len += p.len_bytes();
                rtcp_packet(&p);
            }
            Err(_) => errors += 1,
        }
    }
    assert!(errors == 1 || len == buf.len());
    assert!(!valid || (errors == 0 && len == buf.len()));
}

fn rtcp_packet(p: &RtcpPacket<&[u8]>) {
    let _ = (p.version(), p.as_bytes());
    assert_eq!(4 + p.body().len() + p.padding_len(), p.len_bytes());
    let count = usize::from(p.count());
    match p.packet_type() {
        RtcpType::SenderReport => {
            if let Ok(sr) = SenderReport::new(p) {
                let _ = (
                    sr.ssrc(),
                    sr.ntp_timestamp(),
                    sr.rtp_timestamp(),
                    sr.packet_count(),
                );
                let _ = (sr.octet_count(), sr.profile_extension());
                assert_eq!(sr.report_blocks().len(), count);
                sr.report_blocks().for_each(|b| _ = b.fields());
            }
        }
        RtcpType::ReceiverReport => {
            if let Ok(rr) = ReceiverReport::new(p) {
                let _ = (rr.ssrc(), rr.profile_extension());
                assert_eq!(rr.report_blocks().len(), count);
                rr.report_blocks().for_each(|b| _ = b.fields());
            }
        }
        RtcpType::SourceDescription => {
            if let Ok(sdes) = SourceDescription::new(p) {
                let _ = sdes.cname();
                let mut chunks = 0;
                for (_, items) in sdes.chunks() {
                    items.for_each(|(_, text)| assert!(text.len() <= 255));
                    chunks += 1;
                }
                assert_eq!(chunks, count);
            }
        }
        RtcpType::Goodbye => {
            if let Ok(bye) = Goodbye::new(p) {
                let _ = bye.reason();
                assert_eq!(bye.ssrcs().count(), count);
            }
        }
        RtcpType::App | RtcpType::Other(_) => {}
    }
    // Every typed view rejects the wrong type without panicking.
    let _ = (SenderReport::new(p), ReceiverReport::new(p));
    let _ = (SourceDescription::new(p), Goodbye::new(p));
}

/// Reads every field of every event block of a telephone-event view.
pub fn event(ev: &TelephoneEvent<&[u8]>) {
    let _ = (ev.event(), ev.end(), ev.volume(), ev.duration());
    assert_eq!(ev.events().count(), ev.len_events());
    assert_eq!(
        ev.len_events() * telephone_event::BLOCK_LEN,
        ev.as_bytes().len()
    );
    for e in ev.events() {
        if let Some(digit) = telephone_event::dtmf_digit(e.event()) {
            assert_eq!(telephone_event::dtmf_event(digit), Some(e.event()));
        }
    }
}

/// An RFC 4733 payload: the view's accessors, and its setters writing back what they read.
pub fn telephone_event(buf: &[u8]) {
    let Ok(ev) = TelephoneEvent::new_checked(buf) else {
        return;
    };
    event(&ev);
    let (code, end, volume, duration) = (ev.event(), ev.end(), ev.volume(), ev.duration());
    let mut owned = buf.to_vec();
    let mut w = TelephoneEvent::new_checked(&mut owned[..]).unwrap();
    w.set_event(code);
    w.set_end(end);
    w.set_volume(volume);
    w.set_duration(duration);
    assert_eq!(owned, buf, "setting what was read changes nothing");
    let mut block = [0; telephone_event::BLOCK_LEN];
    assert_eq!(
        telephone_event::emit(&mut block, code, end, volume, duration),
        Ok(telephone_event::BLOCK_LEN)
    );
    // The emitted block differs from the received one at most in the reserved bit.
    assert_eq!(block[0], buf[0]);
    assert_eq!(block[1], buf[1] & 0xBF);
    assert_eq!(block[2..], buf[2..4]);
}

/// Whether `part` lies within `whole` (a view never hands out bytes past its buffer).
fn within(part: &[u8], whole: &[u8]) -> bool {
    let (p, w) = (part.as_ptr_range(), whole.as_ptr_range());
    w.start <= p.start && p.end <= w.end
}

/// An AF_XDP frame: the Ethernet, IPv4, IPv6 and UDP views, each over the bytes as they come
/// and over what the layer below hands it, then the composite parse, whose result must agree
/// with the layers and rebuild into a frame that parses to the same.
pub fn frame(buf: &[u8]) {
    ip_and_udp(buf);
    if let Ok(eth) = EthernetFrame::new_checked(buf) {
        let _ = (eth.dst_mac(), eth.src_mac(), eth.ethertype());
        assert_eq!(
            eth.payload().len() + EthernetFrame::<&[u8]>::HEADER_LEN,
            buf.len()
        );
        ip_and_udp(eth.payload());
    }
    let Ok(inbound) = frame::parse_udp(buf) else {
        return;
    };
    assert!(within(inbound.payload, buf));
    assert_eq!(inbound.src.is_ipv4(), inbound.dst.is_ipv4());
    let eth = EthernetFrame::new_checked(buf).expect("a parsed frame has an Ethernet header");
    assert_eq!(inbound.src_mac, eth.src_mac());
    let mut headers = [0; MAX_HEADERS_LEN];
    let len = frame::emit_udp_headers(
        &mut headers,
        inbound.src_mac,
        eth.dst_mac(),
        inbound.src,
        inbound.dst,
        inbound.payload,
    )
    .expect("what was received fits in a frame");
    let mut rebuilt = headers[..len].to_vec();
    rebuilt.extend_from_slice(inbound.payload);
    let again = frame::parse_udp(&rebuilt).expect("a rebuilt frame parses");
    assert_eq!(
        (again.src_mac, again.src, again.dst, again.payload),
        (inbound.src_mac, inbound.src, inbound.dst, inbound.payload)
    );
    let udp_at = len - UdpDatagram::<&[u8]>::HEADER_LEN;
    let udp = UdpDatagram::new_checked(&rebuilt[udp_at..]).unwrap();
    assert!(udp.verify_checksum(inbound.src.ip(), inbound.dst.ip()));
    if inbound.src.is_ipv4() {
        let ip = EthernetFrame::new_checked(&rebuilt[..]).unwrap();
        assert!(
            Ipv4Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum()
        );
    }
}

/// The IP views over `buf`, and the UDP view over `buf` and over each IP payload.
fn ip_and_udp(buf: &[u8]) {
    udp(buf, None);
    if let Ok(ip) = Ipv4Packet::new_checked(buf) {
        let _ = (
            ip.version(),
            ip.hop_limit(),
            ip.protocol(),
            ip.verify_checksum(),
        );
        assert!(ip.header_len() >= Ipv4Packet::<&[u8]>::MIN_HEADER_LEN);
        assert_eq!(
            ip.header_len() + ip.payload().len(),
            usize::from(ip.total_len())
        );
        assert!(within(ip.payload(), buf));
        udp(
            ip.payload(),
            Some((ip.src_addr().into(), ip.dst_addr().into())),
        );
    }
    if let Ok(ip) = Ipv6Packet::new_checked(buf) {
        let _ = (ip.version(), ip.hop_limit(), ip.next_header());
        assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
        assert!(within(ip.payload(), buf));
        udp(
            ip.payload(),
            Some((ip.src_addr().into(), ip.dst_addr().into())),
        );
    }
}

fn udp(buf: &[u8], addrs: Option<(IpAddr, IpAddr)>) {
    let Ok(udp) = UdpDatagram::new_checked(buf) else {
        return;
    };
    let _ = (udp.src_port(), udp.dst_port(), udp.checksum());
    assert_eq!(udp.payload().len() + 8, usize::from(udp.len()));
    assert!(within(udp.payload(), buf));
    if let Some((src, dst)) = addrs {
        let _ = udp.verify_checksum(src, dst);
        // Mixed families never verify, and never panic.
        let other: IpAddr = if src.is_ipv4() {
            "::1".parse().unwrap()
        } else {
            "127.0.0.1".parse().unwrap()
        };
        assert!(!udp.verify_checksum(src, other));
    }
}

/// Every view over the same bytes.
pub fn all(buf: &[u8]) {
    rtp(buf);
    rtcp(buf);
    telephone_event(buf);
    frame(buf);
}
