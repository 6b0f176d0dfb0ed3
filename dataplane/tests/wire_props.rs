//! Property tests of the wire views (STYLE.md 8): no input makes a checked constructor,
//! iterator, typed view or accessor panic, and whatever we emit parses back to what we meant.

use dataplane::wire::g711::Codec;
use dataplane::wire::rtcp::{
    self, Goodbye, ReceiverReport, ReportBlockFields, RtcpPacket, RtcpType, SenderReport,
    SourceDescription,
};
use dataplane::wire::rtp::{RtpHeader, RtpPacket, SeqNo, Ssrc, is_rtcp};
use dataplane::wire::telephone_event::{self, TelephoneEvent};
use proptest::prelude::*;

/// Reads every field of whatever RTP view `buf` makes, checks the lengths add up, and checks
/// that the setters keep a valid packet valid.
fn exercise_rtp(buf: &[u8]) {
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
        exercise_event(&ev);
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
}

/// Reads every field of every RTCP packet and typed view `buf` makes.
fn exercise_rtcp(buf: &[u8]) {
    let _ = rtcp::validate_compound(buf);
    if let Ok(p) = RtcpPacket::new_checked(buf) {
        exercise_rtcp_packet(&p);
    }
    let (mut len, mut errors) = (0, 0);
    for item in rtcp::compound(buf) {
        assert_eq!(errors, 0, "the iterator ends after its first error");
        match item {
            Ok(p) => {
                len += p.len_bytes();
                exercise_rtcp_packet(&p);
            }
            Err(_) => errors += 1,
        }
    }
    assert!(errors == 1 || len == buf.len());
}

fn exercise_rtcp_packet(p: &RtcpPacket<&[u8]>) {
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

fn exercise_event(ev: &TelephoneEvent<&[u8]>) {
    let _ = (ev.event(), ev.end(), ev.volume(), ev.duration());
    assert_eq!(ev.events().count(), ev.len_events());
    for e in ev.events() {
        let _ = telephone_event::dtmf_digit(e.event());
    }
}

fn exercise_all(buf: &[u8]) {
    exercise_rtp(buf);
    exercise_rtcp(buf);
    if let Ok(ev) = TelephoneEvent::new_checked(buf) {
        exercise_event(&ev);
    }
}

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
        exercise_all(&buf);
    }

    #[test]
    fn arbitrary_version_2_bytes_never_panic(buf in version_2_bytes()) {
        exercise_all(&buf);
    }

    #[test]
    fn mutated_rtp_never_panics(buf in full_rtp(), (edits, cut) in edits()) {
        exercise_rtp(&buf);
        exercise_all(&mutate(buf, &edits, cut));
    }

    #[test]
    fn mutated_rtcp_never_panics(buf in full_compound(), (edits, cut) in edits()) {
        prop_assert_eq!(rtcp::validate_compound(&buf), Ok(()));
        exercise_all(&mutate(buf, &edits, cut));
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
