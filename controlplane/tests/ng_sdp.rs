//! The NG adapter's SDP handling (docs/ng.md, SDP) on real session descriptions (sipp's,
//! Kamailio's, a softphone's with ICE, a browser's with DTLS, SDES-SRTP, audio + video), the
//! replay of the `ng_sdp` fuzz target's corpus (docs/fuzzing.md) through the fuzzer's own
//! checks, and property tests: any bytes give an SDP or a one-line error, and a rewritten SDP
//! reads back with the same payloads and attributes at the appliance's address.

#[path = "exercise/ng_sdp.rs"]
mod exercise;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use controlplane::ng::sdp::{
    self, MediaDirection, Mixable, Payload, Rewrite, SdpError, SessionInfo, subscription_offer,
};
use dataplane::wire::g711::Codec;
use exercise::{Outcome, attributes, ng_sdp, ports};
use proptest::prelude::*;

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/ng_sdp")
}

fn input(name: &str) -> Vec<u8> {
    let path = corpus().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn anchored(name: &str) -> (sdp::Audio, Vec<u8>) {
    match ng_sdp(&input(name)) {
        Outcome::Anchored { audio, rewritten } => (audio, rewritten),
        Outcome::Refused(e) => panic!("{name} is anchored: {e}"),
    }
}

fn refused(name: &str) -> SdpError {
    match ng_sdp(&input(name)) {
        Outcome::Refused(e) => e,
        Outcome::Anchored { .. } => panic!("{name} is refused"),
    }
}

fn text(sdp: &[u8]) -> &str {
    std::str::from_utf8(sdp).expect("the appliance writes UTF-8 for UTF-8 input")
}

fn pl(pt: u8, encoding: &str, clock_rate_hz: u32) -> Payload {
    Payload {
        pt,
        encoding: Some(encoding.to_owned()),
        clock_rate_hz: Some(clock_rate_hz),
    }
}

fn local() -> SocketAddr {
    exercise::LOCAL.parse().unwrap()
}

#[test]
fn every_corpus_input_is_anchored_or_a_one_line_error() {
    let mut inputs = 0;
    for entry in std::fs::read_dir(corpus()).expect("the corpus is committed") {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = ng_sdp(&data);
        inputs += 1;
    }
    assert!(inputs >= 15, "{inputs} inputs");
}

/// sipp's default UAC offer becomes exactly what rtpengine answers Kamailio with: the port and
/// `a=rtcp` of the leg, the media address in `c=` and `o=`, the rest untouched.
#[test]
fn sipp_offer_is_rewritten_as_rtpengine_does() {
    let (audio, rewritten) = anchored("sipp-uac.sdp");
    assert_eq!(audio.remote, SocketAddr::from((Ipv4Addr::LOCALHOST, 6000)));
    assert_eq!(audio.payloads, [pl(0, "PCMU", 8000)]);
    assert_eq!(
        audio.mixable,
        Some(Mixable {
            codec: Codec::Pcmu,
            pt: 0
        })
    );
    assert_eq!(audio.direction, MediaDirection::SendRecv);
    assert!(!audio.held());
    assert_eq!(
        text(&rewritten),
        "v=0\r\no=user1 53655765 2353687637 IN IP4 203.0.113.7\r\ns=-\r\n\
         c=IN IP4 203.0.113.7\r\nt=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtcp:30001\r\n\
         a=rtpmap:0 PCMU/8000\r\n"
    );
}

/// Kamailio's captured offer and answer (PCMA with telephone-event; PCMA, PCMU, events, ptime,
/// sendrecv): payload order, rtpmap, fmtp, ptime and direction all survive, byte for byte.
#[test]
fn kamailio_captures_keep_codecs_events_ptime_and_direction() {
    let (offer, rewritten) = anchored("kamailio-offer.sdp");
    assert_eq!(
        offer.payloads,
        [pl(8, "PCMA", 8000), pl(101, "telephone-event", 8000)]
    );
    assert_eq!(offer.mixable.map(|m| m.codec), Some(Codec::Pcma));
    assert_eq!(offer.telephone_event_pt, Some(101));
    assert_eq!(offer.ptime_ms, None);
    assert!(text(&rewritten).ends_with(
        "m=audio 30000 RTP/AVP 8 101\r\na=rtcp:30001\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-11,16\r\n"
    ));

    let (answer, rewritten) = anchored("kamailio-answer.sdp");
    assert_eq!(
        answer.payloads,
        [
            pl(8, "PCMA", 8000),
            pl(0, "PCMU", 8000),
            pl(101, "telephone-event", 8000)
        ]
    );
    // PCMA comes first: the answerer's preference.
    assert_eq!(answer.mixable.map(|m| m.codec), Some(Codec::Pcma));
    assert_eq!(answer.ptime_ms, Some(20));
    assert!(text(&rewritten).ends_with(
        "m=audio 30000 RTP/AVP 8 0 101\r\na=rtcp:30001\r\na=rtpmap:8 PCMA/8000\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
         a=ptime:20\r\na=sendrecv\r\n"
    ));
}

/// A softphone offering ICE and RTCP multiplexing: every ICE line goes (session and media),
/// the party's own `a=rtcp` is replaced, `a=rtcp-mux` stays and RTCP then shares the RTP port;
/// the vendor attribute and bandwidths stay.
#[test]
fn ice_is_stripped_and_rtcp_mux_passed_through() {
    let (audio, rewritten) = anchored("softphone-ice.sdp");
    assert_eq!(
        audio.remote,
        "192.168.1.20:40000".parse::<SocketAddr>().unwrap()
    );
    // G.722 is preferred, PCMA is the first format the appliance can mix.
    assert_eq!(audio.payloads[0], pl(9, "G722", 8000));
    assert_eq!(
        audio.mixable,
        Some(Mixable {
            codec: Codec::Pcma,
            pt: 8
        })
    );
    let text = text(&rewritten);
    for gone in [
        "ice-",
        "candidate",
        "192.168.1.20",
        "198.51.100.9",
        "rtcp:40001",
    ] {
        assert!(!text.contains(gone), "{gone} left in {text}");
    }
    for kept in [
        "a=X-nat:0",
        "a=X-vendor:keep-me",
        "b=AS:84",
        "b=TIAS:64000",
        "a=rtcp-mux",
    ] {
        assert!(text.contains(kept), "{kept} lost from {text}");
    }
    // The original offer's `o=` address stays unless `replace: origin`.
    let plain = sdp::parse(&input("softphone-ice.sdp"))
        .unwrap()
        .rewrite(local(), &Rewrite::default());
    let plain = String::from_utf8(plain).unwrap();
    assert!(plain.contains("o=- 3912345678 3912345679 IN IP4 192.168.1.20\r\n"));
    assert!(plain.contains("c=IN IP4 203.0.113.7\r\n"));
    assert_eq!(
        attributes(&rewritten, Some(0))[0],
        ("rtcp".into(), Some("30000".into()))
    );
}

/// SRTP is refused with the profile named, whether SDES (`RTP/SAVP`) or a browser's DTLS
/// (`UDP/TLS/RTP/SAVPF`).
#[test]
fn srtp_and_dtls_profiles_are_refused() {
    assert_eq!(refused("srtp-sdes.sdp"), SdpError::Srtp("RTP/SAVP".into()));
    assert_eq!(
        refused("srtp-sdes.sdp").to_string(),
        "refused: SRTP profile RTP/SAVP"
    );
    assert_eq!(
        refused("webrtc-dtls.sdp"),
        SdpError::Srtp("UDP/TLS/RTP/SAVPF".into())
    );
}

/// Audio + video + a second audio stream: the first audio is anchored, the others get port 0
/// (and the appliance's address, never the party's).
#[test]
fn other_streams_are_refused_with_port_zero() {
    let (audio, rewritten) = anchored("audio-video.sdp");
    assert_eq!(audio.remote.port(), 49170);
    assert_eq!(audio.payloads[2], pl(97, "iLBC", 8000));
    assert_eq!(ports(&rewritten), [30000, 0, 0]);
    let text = text(&rewritten);
    assert!(!text.contains("198.51.100"), "{text}");
    assert!(text.contains("m=video 0 RTP/AVP 31 32\r\n"));
    assert!(text.contains("a=fmtp:97 mode=30\r\n"));

    assert_eq!(refused("video-only.sdp"), SdpError::NoAudio);
    assert_eq!(refused("video-only.sdp").to_string(), "no audio stream");
}

/// Hold is reported, session-level `a=sendonly` and the old `c=0.0.0.0` alike, and the
/// direction is kept in the rewritten SDP.
#[test]
fn hold_is_reported_and_kept() {
    let (audio, rewritten) = anchored("hold-sendonly.sdp");
    assert_eq!(audio.direction, MediaDirection::SendOnly);
    assert!(audio.held());
    assert_eq!(attributes(&rewritten, None), [("sendonly".into(), None)]);

    let (audio, _) = anchored("hold-zero-address.sdp");
    assert_eq!(audio.direction, MediaDirection::SendRecv);
    assert!(audio.held());
    // A static payload type without rtpmap is named from RFC 3551's table.
    assert_eq!(audio.payloads, [pl(0, "PCMU", 8000)]);

    let (audio, _) = anchored("opus-then-pcma.sdp");
    assert_eq!(audio.direction, MediaDirection::Inactive);
    assert!(audio.held());
    assert_eq!(audio.ptime_ms, Some(30));
    assert_eq!(audio.mixable.map(|m| m.pt), Some(8));
    // Only an 8 kHz telephone-event goes with G.711.
    assert_eq!(audio.telephone_event_pt, None);
}

/// A codec the appliance cannot mix is still anchored (relayed), with no mixable format.
#[test]
fn unmixable_codecs_are_relayed_without_a_mixable_format() {
    let (audio, rewritten) = anchored("g729-only.sdp");
    assert_eq!(audio.mixable, None);
    assert_eq!(audio.telephone_event_pt, Some(101));
    assert!(text(&rewritten).contains("a=fmtp:18 annexb=no\r\n"));
}

#[test]
fn what_cannot_be_anchored_says_why() {
    assert_eq!(refused("ipv6.sdp").to_string(), "IPv6 not supported");
    assert_eq!(refused("no-connection.sdp"), SdpError::NoConnection);
    assert_eq!(
        refused("multicast.sdp"),
        SdpError::Multicast(Ipv4Addr::new(224, 2, 1, 1))
    );
    assert_eq!(
        refused("hostname.sdp").to_string(),
        "connection address \"pbx.example.com\" is not an IPv4 address"
    );
    assert_eq!(
        refused("bad-payload-type.sdp").to_string(),
        "payload type \"300\" is not a number from 0 to 127"
    );
    for name in ["bad-port.sdp", "not-sdp.bin", "bare-cr.sdp"] {
        let e = refused(name);
        assert!(matches!(e, SdpError::Syntax(_)), "{name}: {e:?}");
        assert!(e.to_string().starts_with("Failed to parse SDP: "), "{e}");
    }
    assert!(refused("bad-port.sdp").to_string().contains("line 6"));
    assert_eq!(
        refused("bare-cr.sdp").to_string(),
        "Failed to parse SDP: NUL or bare CR in line 7"
    );
    // A long profile is quoted cut short, so the error stays a short line.
    let long = format!(
        "v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio 6000 {} 0\r\n",
        "X".repeat(5000)
    );
    let e = sdp::parse(long.as_bytes()).unwrap().audio().unwrap_err();
    assert!(e.to_string().len() < 100, "{e}");
    // So is a parser's message that quotes the line.
    let long = format!("v={}\r\n", "9".repeat(5000));
    let e = sdp::parse(long.as_bytes()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("Failed to parse SDP: Invalid version at line 1: 999")
    );
    assert!(e.to_string().len() < 200, "{e}");
}

/// The anchored stream is the first plain-RTP audio stream with a port; with `a=rtcp-mux`
/// its RTCP shares the RTP port (RFC 5761 §5.1.3, RFC 8858 §4.2).
#[test]
fn first_plain_audio_with_a_port_is_anchored_and_mux_keeps_rtcp_on_it() {
    let (audio, rewritten) = anchored("disabled-then-active.sdp");
    assert_eq!(audio.remote.port(), 7002);
    assert_eq!(ports(&rewritten), [0, 0, 30000]);
    assert_eq!(
        attributes(&rewritten, Some(2)),
        [
            ("rtcp".into(), Some("30000".into())),
            ("rtcp-mux-only".into(), None),
            ("rtcp-mux".into(), None),
        ]
    );
}

/// Mixable means G.711 at 8 kHz, mono; a dynamic payload type named PCMU counts, with its
/// type reported so the caller can tell it from the static one.
#[test]
fn mixable_is_mono_8khz_g711_by_name_or_static_type() {
    let (audio, _) = anchored("dynamic-pcmu-stereo.sdp");
    assert_eq!(audio.payloads[0], pl(96, "PCMA", 8000));
    assert_eq!(
        audio.mixable,
        Some(Mixable {
            codec: Codec::Pcmu,
            pt: 97
        })
    );
}

/// Every SDP line kind (i=, u=, e=, p=, b=, r=, z=, k=, a port count, a TTL) goes through the
/// rewrite; keys go, the stream's own c= wins over the session's, a bad ptime is no ptime.
#[test]
fn every_line_kind_survives_the_rewrite() {
    let (audio, rewritten) = anchored("times-zones-ports.sdp");
    assert_eq!(
        audio.remote,
        "192.0.2.9:6000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(audio.direction, MediaDirection::RecvOnly);
    assert_eq!(audio.ptime_ms, None);
    let written = text(&rewritten);
    for kept in [
        "i=info\r\n",
        "u=http://example.com/",
        "e=ops@example.com",
        "b=CT:128",
        "r=",
        "z=",
        "i=audio title",
        "a=ptime:abc",
    ] {
        assert!(written.contains(kept), "{kept} lost from {written}");
    }
    assert!(!written.contains("k="), "{written}");
    assert!(written.contains("m=audio 30000 RTP/AVP 0\r\n"), "{written}");

    // An SDP without o= gets one at the appliance's address with `replace: origin`.
    let (_, rewritten) = anchored("no-origin.sdp");
    assert!(text(&rewritten).contains("IN IP4 203.0.113.7\r\n"));
    // An m= line without formats is a syntax error (RFC 8866 §5.14).
    assert_eq!(
        refused("empty-formats.sdp").to_string(),
        "Failed to parse SDP: Missing field Media fmt in line 6"
    );
}

/// With a leg's codec chosen, the SDP passed on offers only that law and telephone-event
/// (docs/ng.md, Codecs), in the party's order, with the other formats' lines gone.
#[test]
fn rewrite_can_offer_only_the_legs_codec() {
    let (audio, _) = anchored("kamailio-answer.sdp");
    assert_eq!(audio.codecs(), [Codec::Pcma, Codec::Pcmu]);
    let only = |name: &str, codec| {
        let how = Rewrite {
            codec: Some(codec),
            ..Rewrite::default()
        };
        let rewritten = sdp::parse(&input(name)).unwrap().rewrite(local(), &how);
        String::from_utf8(rewritten).unwrap()
    };
    assert!(only("kamailio-answer.sdp", Codec::Pcmu).ends_with(
        "m=audio 30000 RTP/AVP 0 101\r\na=rtcp:30001\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n"
    ));
    let softphone = only("softphone-ice.sdp", Codec::Pcma);
    assert!(
        softphone.contains("m=audio 30000 RTP/AVP 8 101\r\n"),
        "{softphone}"
    );
    for gone in ["rtpmap:9 ", "rtpmap:0 "] {
        assert!(!softphone.contains(gone), "{gone} left in {softphone}");
    }
    assert!(softphone.contains("a=X-vendor:keep-me"));
    // A stream without the law is left as it is.
    let g729 = only("g729-only.sdp", Codec::Pcmu);
    assert!(g729.contains("m=audio 30000 RTP/AVP 18 101\r\n"), "{g729}");
    // A dynamic PCMU keeps its own payload type and rtpmap; rtcp-fb:* stays.
    let dynamic = only("dynamic-pcmu-stereo.sdp", Codec::Pcmu);
    assert!(
        dynamic.ends_with(
            "m=audio 30000 RTP/AVPF 97\r\na=rtcp:30001\r\na=rtpmap:97 pcmu/8000/1\r\n\
             a=rtcp-fb:* nack\r\n"
        ),
        "{dynamic}"
    );
}

/// LF-only line ends are read (lenient); the appliance writes CRLF (RFC 8866 §5).
#[test]
fn lf_only_input_is_read_and_crlf_written() {
    let (audio, rewritten) = anchored("lf-only.sdp");
    assert_eq!(audio.remote.port(), 6000);
    let text = text(&rewritten);
    assert_eq!(text.matches("\r\n").count(), text.matches('\n').count());
}

/// `replace` words: `-`, `_` and space alike, case-insensitive, unknown ones ignored.
#[test]
fn replace_words_choose_the_origin_rewrite() {
    let how = Rewrite::from_replace(["Origin", "session_connection", "SDP-version", "what"]);
    assert_eq!(
        how,
        Rewrite {
            origin: true,
            ..Rewrite::default()
        }
    );
    let full = Rewrite::from_replace(["origin full", "session-name"]);
    assert!(full.origin_full && full.session_name && !full.origin);
    let rewritten = sdp::parse(&input("kamailio-offer.sdp"))
        .unwrap()
        .rewrite(local(), &full);
    assert!(
        text(&rewritten).starts_with(
            "v=0\r\no=earshot 53655765 2353687637 IN IP4 203.0.113.7\r\ns=earshot\r\n"
        )
    );
}

/// The supervisor leg's offer: listen only (`sendonly`), or `sendrecv` with telephone-event
/// when bidirectional; it parses back to the leg's own address and codec.
#[test]
fn subscription_offer_is_listen_only_or_bidirectional() {
    let session = SessionInfo {
        session_id: 42,
        version: 1,
    };
    let offer = subscription_offer(local(), Codec::Pcma, false, &session);
    assert_eq!(
        text(&offer),
        "v=0\r\no=earshot 42 1 IN IP4 203.0.113.7\r\ns=earshot\r\nc=IN IP4 203.0.113.7\r\n\
         t=0 0\r\nm=audio 30000 RTP/AVP 8\r\na=rtcp:30001\r\na=rtpmap:8 PCMA/8000\r\n\
         a=ptime:20\r\na=sendonly\r\n"
    );
    let audio = sdp::parse(&offer).unwrap().audio().unwrap();
    assert_eq!(audio.direction, MediaDirection::SendOnly);

    let offer = subscription_offer(local(), Codec::Pcmu, true, &session);
    let audio = sdp::parse(&offer).unwrap().audio().unwrap();
    assert_eq!(audio.remote, local());
    assert_eq!(audio.direction, MediaDirection::SendRecv);
    assert_eq!(
        audio.payloads,
        [pl(0, "PCMU", 8000), pl(101, "telephone-event", 8000)]
    );
    assert_eq!(audio.mixable.map(|m| m.codec), Some(Codec::Pcmu));
    assert_eq!(audio.telephone_event_pt, Some(101));
}

/// A rewrite toward an IPv6 media address writes `IN IP6` lines that parse again.
#[test]
fn rewrite_toward_ipv6_writes_ip6() {
    let v6: SocketAddr = "[2001:db8::7]:30000".parse().unwrap();
    let rewritten = sdp::parse(&input("kamailio-offer.sdp"))
        .unwrap()
        .rewrite(v6, &Rewrite::default());
    assert!(text(&rewritten).contains("c=IN IP6 2001:db8::7\r\n"));
    assert_eq!(sdp::parse(&rewritten).unwrap().audio(), Err(SdpError::Ipv6));
}

/// Attributes a generated SDP may carry on its audio stream: ones the rewrite keeps and ones
/// it drops, in any order.
fn media_attribute() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a=ptime:20".to_owned()),
        Just("a=maxptime:40".to_owned()),
        Just("a=sendonly".to_owned()),
        Just("a=recvonly".to_owned()),
        Just("a=inactive".to_owned()),
        Just("a=rtcp-mux".to_owned()),
        Just("a=rtcp:7001".to_owned()),
        Just("a=ice-ufrag:abcd".to_owned()),
        Just("a=ice-pwd:0123456789abcdefghijklmn".to_owned()),
        Just("a=candidate:1 1 UDP 2130706431 10.1.2.3 7000 typ host".to_owned()),
        Just("a=end-of-candidates".to_owned()),
        Just("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:abc".to_owned()),
        Just("a=fmtp:101 0-15".to_owned()),
        "[a-zA-Z][a-zA-Z0-9-]{0,12}(:[ -~]{0,20})?".prop_map(|a| format!("a=X-{a}")),
    ]
}

/// A payload type with, maybe, its rtpmap.
fn payload() -> impl Strategy<Value = (u8, Option<String>)> {
    prop_oneof![
        Just((0, Some("PCMU/8000".to_owned()))),
        Just((0, None)),
        Just((8, Some("PCMA/8000".to_owned()))),
        Just((8, None)),
        Just((18, Some("G729/8000".to_owned()))),
        Just((101, Some("telephone-event/8000".to_owned()))),
        (96u8..=127, "[A-Za-z0-9]{1,8}/(8000|16000|48000)(/2)?").prop_map(|(pt, m)| (pt, Some(m))),
    ]
}

prop_compose! {
    /// An offer: session c= or media c=, an optional video stream before or after the audio,
    /// payloads and attributes drawn from the strategies above.
    fn offer()(
        ip in any::<[u8; 4]>().prop_filter("unicast", |ip| !Ipv4Addr::from(*ip).is_multicast()),
        port in 1u16..,
        session_level_c in any::<bool>(),
        video_first in any::<bool>(),
        payloads in prop::collection::vec(payload(), 1..6),
        attrs in prop::collection::vec(media_attribute(), 0..8),
        session_attrs in prop::collection::vec(media_attribute(), 0..3),
    ) -> (String, SocketAddr, Vec<u8>) {
        let ip = Ipv4Addr::from(ip);
        let mut s = format!("v=0\r\no=- 1 2 IN IP4 {ip}\r\ns=-\r\n");
        if session_level_c {
            s += &format!("c=IN IP4 {ip}\r\n");
        }
        s += "t=0 0\r\n";
        for a in &session_attrs {
            s += &format!("{a}\r\n");
        }
        let video = "m=video 9000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\na=ice-ufrag:x\r\n";
        if video_first {
            s += video;
        }
        let fmt: Vec<String> = payloads.iter().map(|(pt, _)| pt.to_string()).collect();
        s += &format!("m=audio {port} RTP/AVP {}\r\n", fmt.join(" "));
        if !session_level_c {
            s += &format!("c=IN IP4 {ip}\r\n");
        }
        for (pt, map) in &payloads {
            if let Some(map) = map {
                s += &format!("a=rtpmap:{pt} {map}\r\n");
            }
        }
        for a in &attrs {
            s += &format!("{a}\r\n");
        }
        if !video_first {
            s += video;
        }
        (s, SocketAddr::from((ip, port)), payloads.iter().map(|(pt, _)| *pt).collect())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any bytes: an anchored SDP or a one-line error, never a panic.
    #[test]
    fn any_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = ng_sdp(&data);
    }

    /// Any line-shaped text: the same (more of it gets past the parser than random bytes).
    #[test]
    fn any_sdp_shaped_text_never_panics(
        lines in prop::collection::vec("[vosctmab]=[ -~]{0,40}", 0..12)
    ) {
        let _ = ng_sdp(lines.join("\r\n").as_bytes());
    }

    /// Every SRTP and DTLS-SRTP profile, in any letter case, is refused and named, and the
    /// rewrite then anchors nothing (every port 0).
    #[test]
    fn srtp_profiles_are_refused_in_any_case(
        profile in prop_oneof![
            Just("RTP/SAVP"), Just("RTP/SAVPF"), Just("UDP/TLS/RTP/SAVP"), Just("UDP/TLS/RTP/SAVPF")
        ],
        lower in prop::collection::vec(any::<bool>(), 17),
    ) {
        let profile: String = profile
            .chars()
            .zip(&lower)
            .map(|(c, &l)| if l { c.to_ascii_lowercase() } else { c })
            .collect();
        let text = format!(
            "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
             m=audio 6000 {profile} 0\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:x\r\n"
        );
        match ng_sdp(text.as_bytes()) {
            Outcome::Refused(e) => prop_assert_eq!(e, SdpError::Srtp(profile)),
            Outcome::Anchored { .. } => panic!("{text} is refused"),
        }
    }

    /// Rewrite → parse again: the same payloads and attributes (less ICE and keying), at the
    /// appliance's address, and narrowed to each law offered; the exerciser checks the
    /// details.
    #[test]
    fn rewrite_keeps_payloads_and_attributes_at_a_new_address(
        (text, remote, pts) in offer()
    ) {
        let audio = match ng_sdp(text.as_bytes()) {
            Outcome::Anchored { audio, .. } => audio,
            Outcome::Refused(e) => panic!("{e}: {text}"),
        };
        prop_assert_eq!(audio.remote, remote);
        prop_assert_eq!(audio.payloads.iter().map(|p| p.pt).collect::<Vec<_>>(), pts);
    }
}
