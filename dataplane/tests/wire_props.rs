//! Property tests of the wire views (docs/design.md §9.8): no input makes a checked constructor,
//! iterator, typed view or accessor panic, and whatever we emit parses back to what we meant.

mod exercise;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use dataplane::wire::ethernet::EthernetFrame;
use dataplane::wire::frame::{self, MAX_HEADERS_LEN};
use dataplane::wire::g711::Codec;
use dataplane::wire::ip::Ipv4Packet;
use dataplane::wire::rtcp::{
    self, Goodbye, ReceiverReport, ReportBlockFields, RtcpPacket, RtcpType, SenderReport,
    SourceDescription,
};
use dataplane::wire::rtp::{RtpHeader, RtpPacket, SeqNo, Ssrc, is_rtcp};
use dataplane::wire::telephone_event::{self, TelephoneEvent};
use dataplane::wire::udp::UdpDatagram;
use proptest::prelude::*;

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..256)
}

/// Random bytes with version 2 in the first octet, to get past the first check more often.
fn version_2_bytes() -> impl Strategy<Value = Vec<u8>> {
    bytes().prop_map(|mut v| {
        if let Some(b) = v.first_mut() {
            *b = (*b & 0x3F) | 0x80;
        }
        v
    })
}

fn report_block() -> impl Strategy<Value = ReportBlockFields> {
    (any::<[u32; 5]>(), any::<u8>(), -(1i32 << 23)..(1 << 23)).prop_map(|(w, fraction, lost)| {
        ReportBlockFields {
            ssrc: Ssrc(w[0]),
            fraction_lost: fraction,
            cumulative_lost: lost,
            extended_highest_seq: w[1],
            jitter: w[2],
            last_sr: w[3],
            delay_since_last_sr: w[4],
        }
    })
}

fn report_blocks() -> impl Strategy<Value = Vec<ReportBlockFields>> {
    prop::collection::vec(report_block(), 0..=rtcp::MAX_COUNT)
}

fn rtp_header() -> impl Strategy<Value = RtpHeader> {
    (
        any::<bool>(),
        0u8..128,
        any::<u16>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(marker, payload_type, seq, timestamp, ssrc)| RtpHeader {
            marker,
            payload_type,
            sequence_number: SeqNo(seq),
            timestamp,
            ssrc: Ssrc(ssrc),
        })
}

/// A valid RTP packet using every optional part: CSRCs, an extension, padding.
fn full_rtp() -> impl Strategy<Value = Vec<u8>> {
    (
        rtp_header(),
        prop::collection::vec(any::<u32>(), 0..=15),
        prop::option::of((any::<u16>(), 0usize..4)),
        bytes(),
        0u8..=8,
    )
        .prop_map(|(header, csrcs, extension, payload, padding)| {
            let mut buf = vec![0; RtpHeader::LEN];
            header.emit(&mut buf).unwrap();
            buf[0] |= csrcs.len() as u8;
            csrcs
                .iter()
                .for_each(|c| buf.extend_from_slice(&c.to_be_bytes()));
            if let Some((profile, words)) = extension {
                buf[0] |= 0x10;
                buf.extend_from_slice(&profile.to_be_bytes());
                buf.extend_from_slice(&(words as u16).to_be_bytes());
                buf.extend(std::iter::repeat_n(0xEE, 4 * words));
            }
            buf.extend_from_slice(&payload);
            if padding > 0 {
                buf[0] |= 0x20;
                buf.extend(std::iter::repeat_n(0, usize::from(padding) - 1));
                buf.push(padding);
            }
            buf
        })
}

/// A valid compound SR + SDES + BYE.
fn full_compound() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u32>(),
        any::<u64>(),
        report_blocks(),
        prop::collection::vec(any::<u8>(), 0..=255),
    )
        .prop_map(|(ssrc, ntp, blocks, cname)| {
            let mut buf = vec![0; 2048];
            let mut len =
                rtcp::emit_sender_report(&mut buf, Ssrc(ssrc), ntp, 1, 2, 3, &blocks).unwrap();
            len += rtcp::emit_sdes_cname(&mut buf[len..], Ssrc(ssrc), &cname).unwrap();
            len += rtcp::emit_bye(&mut buf[len..], &[Ssrc(ssrc)]).unwrap();
            buf.truncate(len);
            buf
        })
}

/// The two ends of a UDP flow, both IPv4 or both IPv6.
fn udp_ends() -> impl Strategy<Value = (SocketAddr, SocketAddr)> {
    let v4 = (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| {
        (
            IpAddr::from(Ipv4Addr::from(s)),
            IpAddr::from(Ipv4Addr::from(d)),
        )
    });
    let v6 = (any::<[u8; 16]>(), any::<[u8; 16]>()).prop_map(|(s, d)| {
        (
            IpAddr::from(Ipv6Addr::from(s)),
            IpAddr::from(Ipv6Addr::from(d)),
        )
    });
    (prop_oneof![v4, v6], any::<u16>(), any::<u16>())
        .prop_map(|((s, d), sp, dp)| (SocketAddr::new(s, sp), SocketAddr::new(d, dp)))
}

/// A frame as the AF_XDP sender builds it, with maybe some link-layer padding after it.
fn full_frame() -> impl Strategy<Value = Vec<u8>> {
    (udp_ends(), any::<[u8; 6]>(), bytes(), 0usize..8).prop_map(
        |((src, dst), mac, payload, padding)| {
            let mut headers = [0; MAX_HEADERS_LEN];
            let len =
                frame::emit_udp_headers(&mut headers, mac, [2; 6], src, dst, &payload).unwrap();
            let mut buf = headers[..len].to_vec();
            buf.extend_from_slice(&payload);
            buf.extend(std::iter::repeat_n(0, padding));
            buf
        },
    )
}

/// Overwrites bytes at random positions, then maybe cuts the buffer short.
fn mutate(mut buf: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    if !buf.is_empty() {
        let len = buf.len();
        edits.iter().for_each(|&(at, byte)| buf[at % len] = byte);
    }
    if let Some(cut) = cut {
        buf.truncate(cut % (buf.len() + 1));
    }
    buf
}

fn edits() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    (
        prop::collection::vec(any::<(usize, u8)>(), 1..8),
        prop::option::of(any::<usize>()),
    )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(buf in bytes()) {
        exercise::all(&buf);
    }

    #[test]
    fn arbitrary_version_2_bytes_never_panic(buf in version_2_bytes()) {
        exercise::all(&buf);
    }

    #[test]
    fn mutated_rtp_never_panics(buf in full_rtp(), (edits, cut) in edits()) {
        exercise::rtp(&buf);
        exercise::all(&mutate(buf, &edits, cut));
    }

    #[test]
    fn mutated_rtcp_never_panics(buf in full_compound(), (edits, cut) in edits()) {
        prop_assert_eq!(rtcp::validate_compound(&buf), Ok(()));
        exercise::all(&mutate(buf, &edits, cut));
    }

    #[test]
    fn mutated_frames_never_panic(buf in full_frame(), (edits, cut) in edits()) {
        exercise::frame(&buf);
        exercise::all(&mutate(buf, &edits, cut));
    }

    #[test]
    fn udp_frame_round_trip(
        (src, dst) in udp_ends(), src_mac: [u8; 6], dst_mac: [u8; 6], payload in bytes(),
    ) {
        let mut headers = [0; MAX_HEADERS_LEN];
        let len = frame::emit_udp_headers(&mut headers, src_mac, dst_mac, src, dst, &payload)
            .unwrap();
        prop_assert_eq!(len, if src.is_ipv4() { 14 + 20 + 8 } else { 14 + 40 + 8 });
        let mut buf = headers[..len].to_vec();
        buf.extend_from_slice(&payload);
        let inbound = frame::parse_udp(&buf).unwrap();
        prop_assert_eq!((inbound.src_mac, inbound.src, inbound.dst), (src_mac, src, dst));
        prop_assert_eq!(inbound.payload, &payload[..]);
        let eth = EthernetFrame::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(eth.dst_mac(), dst_mac);
        let udp = UdpDatagram::new_checked(&buf[len - 8..]).unwrap();
        prop_assert!(udp.verify_checksum(src.ip(), dst.ip()));
        prop_assert_ne!(udp.checksum(), 0, "a computed zero is sent as all ones (RFC 768)");
        if src.is_ipv4() {
            prop_assert!(Ipv4Packet::new_checked(eth.payload()).unwrap().verify_checksum());
        }
        // A flipped payload bit breaks the UDP checksum (a single-bit error always does).
        if !payload.is_empty() {
            let last = buf.len() - 1;
            buf[last] ^= 1;
            let udp = UdpDatagram::new_checked(&buf[len - 8..]).unwrap();
            prop_assert!(!udp.verify_checksum(src.ip(), dst.ip()));
        }
    }

    #[test]
    fn rtp_header_round_trip(header in rtp_header(), payload in bytes()) {
        let mut buf = vec![0; RtpHeader::LEN + payload.len()];
        prop_assert_eq!(header.emit(&mut buf), Ok(RtpHeader::LEN));
        buf[RtpHeader::LEN..].copy_from_slice(&payload);
        let p = RtpPacket::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(RtpHeader::parse(&p), header);
        prop_assert_eq!(p.payload(), &payload[..]);
        prop_assert!(!p.padding() && !p.extension() && p.csrc_count() == 0);
        prop_assert!(!is_rtcp(&buf) || (64..96).contains(&header.payload_type));
    }

    #[test]
    fn sender_report_round_trip(
        ssrc: u32, ntp: u64, rtp_ts: u32, packets: u32, octets: u32, blocks in report_blocks(),
    ) {
        let mut buf = [0; 1024];
        let ssrc = Ssrc(ssrc);
        let len = rtcp::emit_sender_report(
            &mut buf, ssrc, ntp, rtp_ts, packets, octets, &blocks,
        )
        .unwrap();
        prop_assert_eq!(rtcp::validate_compound(&buf[..len]), Ok(()));
        let p = RtcpPacket::new_checked(&buf[..len]).unwrap();
        prop_assert_eq!(p.len_bytes(), len);
        let sr = SenderReport::new(&p).unwrap();
        prop_assert_eq!((sr.ssrc(), sr.ntp_timestamp(), sr.rtp_timestamp()), (ssrc, ntp, rtp_ts));
        prop_assert_eq!((sr.packet_count(), sr.octet_count()), (packets, octets));
        prop_assert_eq!(sr.report_blocks().map(|b| b.fields()).collect::<Vec<_>>(), blocks);
    }

    #[test]
    fn receiver_report_round_trip(ssrc: u32, blocks in report_blocks()) {
        let mut buf = [0; 1024];
        let len = rtcp::emit_receiver_report(&mut buf, Ssrc(ssrc), &blocks).unwrap();
        prop_assert_eq!(rtcp::validate_compound(&buf[..len]), Ok(()));
        let p = RtcpPacket::new_checked(&buf[..len]).unwrap();
        let rr = ReceiverReport::new(&p).unwrap();
        prop_assert_eq!(rr.ssrc(), Ssrc(ssrc));
        prop_assert_eq!(rr.report_blocks().map(|b| b.fields()).collect::<Vec<_>>(), blocks);
    }

    #[test]
    fn sdes_cname_round_trip(ssrc: u32, cname in prop::collection::vec(any::<u8>(), 0..=255)) {
        let mut buf = [0xAA; 300];
        let len = rtcp::emit_sdes_cname(&mut buf, Ssrc(ssrc), &cname).unwrap();
        prop_assert_eq!(len % 4, 0);
        let p = RtcpPacket::new_checked(&buf[..len]).unwrap();
        prop_assert_eq!(p.len_bytes(), len);
        let sdes = SourceDescription::new(&p).unwrap();
        prop_assert_eq!(sdes.cname(), Some((Ssrc(ssrc), &cname[..])));
        prop_assert_eq!(sdes.chunks().map(|(_, items)| items.count()).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn bye_round_trip(ssrcs in prop::collection::vec(any::<u32>().prop_map(Ssrc), 0..=31)) {
        let mut buf = [0; 128];
        let len = rtcp::emit_bye(&mut buf, &ssrcs).unwrap();
        let p = RtcpPacket::new_checked(&buf[..len]).unwrap();
        let bye = Goodbye::new(&p).unwrap();
        prop_assert_eq!(bye.ssrcs().collect::<Vec<_>>(), ssrcs);
        prop_assert_eq!(bye.reason(), None);
    }

    #[test]
    fn compound_round_trip(buf in full_compound()) {
        let types: Vec<_> = rtcp::compound(&buf).map(|p| p.unwrap().packet_type()).collect();
        prop_assert_eq!(
            types,
            [RtcpType::SenderReport, RtcpType::SourceDescription, RtcpType::Goodbye]
        );
    }

    #[test]
    fn telephone_event_round_trip(event: u8, end: bool, volume in 0u8..64, duration: u16) {
        let mut buf = [0xFF; 4];
        prop_assert_eq!(telephone_event::emit(&mut buf, event, end, volume, duration), Ok(4));
        let ev = TelephoneEvent::new_checked(&buf[..]).unwrap();
        let fields = (ev.event(), ev.end(), ev.volume(), ev.duration());
        prop_assert_eq!(fields, (event, end, volume, duration));
        if let Some(digit) = telephone_event::dtmf_digit(event) {
            prop_assert_eq!(telephone_event::dtmf_event(digit), Some(event));
        }
    }

    #[test]
    fn codec_converts_the_shorter_length(
        pcm in prop::collection::vec(any::<i16>(), 0..64), out_len in 0usize..64,
    ) {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut codes = vec![0; out_len];
            let n = codec.encode(&pcm, &mut codes);
            prop_assert_eq!(n, pcm.len().min(out_len));
            let mut back = vec![0; n];
            prop_assert_eq!(codec.decode(&codes[..n], &mut back), n);
        }
    }
}

/// Replays each fuzz target's committed corpus (dataplane/fuzz/corpus/<target>,
/// docs/fuzzing.md) through the same checks as the fuzzer, so every starting input, and every crash
/// the fuzzer ever found (added to the corpus when fixed), is checked by the normal tests.
#[test]
fn fuzz_corpus_replays() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    type Check = fn(&[u8]);
    let targets: [(&str, Check); 4] = [
        ("rtp", exercise::rtp),
        ("rtcp", exercise::rtcp),
        ("telephone_event", exercise::telephone_event),
        ("frame", exercise::frame),
    ];
    for (target, check) in targets {
        let dir = corpus.join(target);
        let mut inputs = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus is committed") {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            check(&data);
            exercise::all(&data);
            inputs += 1;
        }
        assert!(inputs >= 5, "{inputs} inputs in {}", dir.display());
    }
}

/// The valid starting inputs are valid: the fuzzer starts from packets the views accept.
#[test]
fn fuzz_inputs_are_what_their_names_say() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let input = |path: &str| std::fs::read(corpus.join(path)).unwrap();
    for name in [
        "pcmu-20ms",
        "pcma-marker",
        "csrc-ext-padding",
        "dtmf-5",
        "header-only",
    ] {
        assert!(
            RtpPacket::new_checked(input(&format!("rtp/{name}"))).is_ok(),
            "{name}"
        );
    }
    for name in ["truncated-11", "version-1", "padding-zero", "ext-past-end"] {
        assert!(
            RtpPacket::new_checked(input(&format!("rtp/{name}"))).is_err(),
            "{name}"
        );
    }
    for name in [
        "sr-sdes-bye",
        "rr-empty",
        "rr-block-padded",
        "sdes-two-chunks",
        "app",
    ] {
        assert_eq!(
            rtcp::validate_compound(&input(&format!("rtcp/{name}"))),
            Ok(()),
            "{name}"
        );
    }
    for name in ["padding-not-last", "length-past-end"] {
        assert!(
            rtcp::validate_compound(&input(&format!("rtcp/{name}"))).is_err(),
            "{name}"
        );
    }
    // A sound compound whose SR claims 31 report blocks and carries one.
    let sr = input("rtcp/sr-count-too-big");
    let p = RtcpPacket::new_checked(&sr[..]).unwrap();
    assert_eq!(
        SenderReport::new(&p),
        Err(dataplane::wire::WireError::BadLength)
    );
    for name in [
        "digit-5-start",
        "digit-hash-end",
        "two-blocks",
        "reserved-bit",
    ] {
        assert!(TelephoneEvent::new_checked(input(&format!("telephone_event/{name}"))).is_ok());
    }
    for name in [
        "ipv4-rtp",
        "ipv6-rtp",
        "ipv4-min-frame-padded",
        "ipv4-options",
    ] {
        assert!(
            frame::parse_udp(&input(&format!("frame/{name}"))).is_ok(),
            "{name}"
        );
    }
    for name in ["ipv4-tcp", "ipv6-hop-by-hop", "arp", "udp-length-past-ip"] {
        assert!(
            frame::parse_udp(&input(&format!("frame/{name}"))).is_err(),
            "{name}"
        );
    }
    let rtp_frame = input("frame/ipv4-rtp");
    let inbound = frame::parse_udp(&rtp_frame).unwrap();
    assert_eq!(inbound.payload, &input("rtp/pcmu-20ms")[..]);
}
