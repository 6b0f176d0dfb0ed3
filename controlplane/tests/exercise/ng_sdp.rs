//! The NG SDP exerciser, shared by the `ng_sdp` fuzz target (`controlplane/fuzz/`,
//! docs/fuzzing.md) and the tests that replay its corpus and run its properties
//! (`ng_sdp.rs`): any bytes go through what the NG adapter does with an offer or answer body
//! (`sdp::parse`, `Sdp::audio`, `Sdp::rewrite`) and come out as one clear, one-line error or
//! an SDP that reads back with the same stream and the appliance's address, never a panic.

use std::net::SocketAddr;

use controlplane::ng::sdp::{self, Audio, Rewrite, SdpError};

/// The media address the exerciser rewrites toward (TEST-NET-3, RFC 5737).
pub const LOCAL: &str = "203.0.113.7:30000";

/// What the bytes turned out to be.
// The fuzz target needs only the checks; the tests read the outcome.
#[allow(dead_code)]
#[derive(Debug)]
pub enum Outcome {
    /// Not an SDP, or one the appliance cannot anchor, with this error.
    Refused(SdpError),
    /// An SDP the appliance anchors: its audio stream, and the rewritten SDP.
    Anchored { audio: Audio, rewritten: Vec<u8> },
}

/// An attribute as the tests compare them: (name, value).
pub type Attr = (String, Option<String>);

/// The attributes of the session (`None`) or of `m=` section `index` of an SDP, as written.
pub fn attributes(body: &[u8], index: Option<usize>) -> Vec<Attr> {
    let session = sdp_types::Session::parse(body).expect("the SDP parses");
    let attributes = match index {
        None => &session.attributes,
        Some(i) => &session.medias[i].attributes,
    };
    attributes
        .iter()
        .map(|a| (a.attribute.clone(), a.value.clone()))
        .collect()
}

/// The ports of every `m=` section of an SDP.
pub fn ports(body: &[u8]) -> Vec<u16> {
    let session = sdp_types::Session::parse(body).expect("the SDP parses");
    session.medias.iter().map(|m| m.port).collect()
}

/// Whether the rewrite drops an attribute (ICE, SDES/DTLS keying, `rtcp`, BUNDLE groups).
pub fn dropped(attr: &Attr) -> bool {
    let name = attr.0.to_ascii_lowercase();
    name.starts_with("ice-")
        || [
            "candidate",
            "end-of-candidates",
            "remote-candidates",
            "crypto",
            "fingerprint",
            "setup",
            "tls-id",
            "rtcp",
        ]
        .contains(&name.as_str())
        || (name == "group"
            && attr
                .1
                .as_deref()
                .is_some_and(|v| v.to_ascii_uppercase().starts_with("BUNDLE")))
}

fn one_line(e: &SdpError) {
    let message = e.to_string();
    assert!(
        !message.contains(['\n', '\r']),
        "an error is one line: {message:?}"
    );
}

/// Parses `data` as an offer's SDP and rewrites it toward [`LOCAL`] with `replace: origin`,
/// asserting the invariants on the way.
pub fn ng_sdp(data: &[u8]) -> Outcome {
    let local: SocketAddr = LOCAL.parse().unwrap();
    let parsed = match sdp::parse(data) {
        Ok(parsed) => parsed,
        Err(e) => {
            one_line(&e);
            return Outcome::Refused(e);
        }
    };
    let how = Rewrite {
        origin: true,
        ..Rewrite::default()
    };
    let rewritten = parsed.rewrite(local, &how);
    let again = sdp::parse(&rewritten).expect("the appliance's own SDP parses");
    assert_eq!(again.media_count(), parsed.media_count());
    let audio = match parsed.audio() {
        Ok(audio) => audio,
        Err(e) => {
            one_line(&e);
            // Nothing anchored: every stream is refused, none names the party's address.
            assert!(
                ports(&rewritten).iter().all(|&p| p == 0),
                "{}",
                String::from_utf8_lossy(&rewritten)
            );
            return Outcome::Refused(e);
        }
    };
    let after = again
        .audio()
        .expect("the rewritten SDP anchors the same stream");
    assert_eq!(after.remote, local);
    assert_eq!(after.payloads, audio.payloads);
    assert_eq!(after.mixable, audio.mixable);
    assert_eq!(after.g711, audio.g711);
    assert_eq!(after.telephone_event_pt, audio.telephone_event_pt);
    assert_eq!(after.direction, audio.direction);
    assert_eq!(after.ptime_ms, audio.ptime_ms);

    // One stream keeps a port, the appliance's; the others are refused.
    let ports = ports(&rewritten);
    let index = ports
        .iter()
        .position(|&p| p == local.port())
        .expect("the anchored stream");
    assert!(ports.iter().enumerate().all(|(i, &p)| i == index || p == 0));
    // Its attributes are the party's, in order, less the dropped ones, after `a=rtcp`.
    let before: Vec<Attr> = attributes(data, Some(index))
        .into_iter()
        .filter(|a| !dropped(a))
        .collect();
    let written = attributes(&rewritten, Some(index));
    assert_eq!(written.first().map(|a| a.0.as_str()), Some("rtcp"));
    assert_eq!(written[1..], before[..]);
    let session_before: Vec<Attr> = attributes(data, None)
        .into_iter()
        .filter(|a| !dropped(a))
        .collect();
    assert_eq!(attributes(&rewritten, None), session_before);
    // No address of the party is left in any c= line or the o= line.
    let text = String::from_utf8_lossy(&rewritten);
    for line in text.lines() {
        if line.starts_with("c=") || line.starts_with("o=") {
            assert!(line.ends_with(&local.ip().to_string()), "{line:?}");
        }
    }
    // Narrowed to each offered law (`Rewrite::codec`): exactly that law's formats and
    // telephone-event/8000 remain, in order, and read back the same.
    for law in audio.codecs() {
        let how = Rewrite {
            codec: Some(law),
            ..Rewrite::default()
        };
        let narrowed = parsed.rewrite(local, &how);
        let after = sdp::parse(&narrowed)
            .and_then(|s| s.audio())
            .expect("the narrowed SDP anchors");
        let expected: Vec<&sdp::Payload> = audio
            .payloads
            .iter()
            .filter(|p| {
                audio.g711.iter().any(|m| m.codec == law && m.pt == p.pt)
                    || audio.telephone_event_pt == Some(p.pt)
            })
            .collect();
        assert_eq!(after.payloads.iter().collect::<Vec<_>>(), expected);
        assert_eq!(after.codecs(), [law]);
    }
    Outcome::Anchored { audio, rewritten }
}
