//! SDP for the NG adapter (docs/ng.md, SDP): reads the audio stream a party offers or answers,
//! and writes the SDP the other party gets, pointing at the appliance's media address.
//!
//! Parsing and writing are the `sdp-types` crate's (RFC 8866 syntax, every line kept in order,
//! unknown attributes included); this module adds what an RTP relay decides: which `m=` line
//! is anchored (the first IPv4 `RTP/AVP` audio stream with a port), which attributes no longer
//! hold once the appliance is in the path, and what it refuses (SRTP/DTLS, IPv6).
//!
//! Pure: no I/O, no state. Nothing here panics on input (docs/design.md §7.1); the parser is
//! fuzzed (`controlplane/fuzz`, target `ng_sdp`, docs/fuzzing.md) and property-tested.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dataplane::wire::g711::Codec;
use sdp_types::{Attribute, Connection, Media, Origin, RtpMap, Session, Time};

/// Why an SDP cannot be anchored. Each message is one line, fit for NG's `error-reason`
/// (docs/ng.md, SDP); values quoted from the SDP are cut to [`QUOTE_CHARS_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not an SDP at all (the `sdp-types` parser's error, with its line number).
    #[error("Failed to parse SDP: {0}")]
    Syntax(String),
    /// No audio `m=` line with a port: nothing to anchor.
    #[error("no audio stream")]
    NoAudio,
    /// The audio stream is encrypted (SDES or DTLS-SRTP): the appliance mixes and so must see
    /// the payload, and it relays plain RTP only.
    #[error("refused: SRTP profile {0}")]
    Srtp(String),
    /// The audio stream's transport is neither RTP/AVP nor SRTP (e.g. `udptl`, `TCP/RTP/AVP`).
    #[error("refused: transport profile {0} (only RTP/AVP is relayed)")]
    Profile(String),
    /// The audio stream's address is IPv6; the NG adapter anchors IPv4 calls only.
    #[error("IPv6 not supported")]
    Ipv6,
    /// Neither the audio `m=` section nor the session has a `c=` line (RFC 8866 §5.7).
    #[error("no connection address (c=) for the audio stream")]
    NoConnection,
    /// The `c=` address is not an IPv4 address (a host name, or garbage).
    #[error("connection address {0} is not an IPv4 address")]
    Address(String),
    /// A multicast `c=` address: a relay anchors unicast calls.
    #[error("multicast connection address {0} not supported")]
    Multicast(Ipv4Addr),
    /// The audio `m=` line lists no format (RFC 8866 §5.14 asks for at least one; the parser
    /// refuses such a line today, this keeps [`Audio::payloads`] non-empty whatever it does).
    #[error("audio stream lists no payload formats")]
    NoFormats,
    /// A format of the audio `m=` line is not an RTP payload type (RFC 3551 §6: 0 to 127).
    #[error("payload type {0} is not a number from 0 to 127")]
    PayloadType(String),
}

/// Characters of an SDP value an error message quotes at most.
pub const QUOTE_CHARS_MAX: usize = 40;

/// `value` in quotes, cut to [`QUOTE_CHARS_MAX`] characters, for an error message.
fn quote(value: &str) -> String {
    let cut: String = value.chars().take(QUOTE_CHARS_MAX).collect();
    if cut.len() < value.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// A parsed session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    session: Session,
}

/// Parses an SDP body. Only the syntax is checked here; [`Sdp::audio`] says whether the
/// appliance can anchor it.
pub fn parse(body: &[u8]) -> Result<Sdp, SdpError> {
    // RFC 8866 §5: no line holds NUL or CR (but the CR of its CRLF end). The parser lets them
    // through and the writer drops them, so a value could change meaning on the way through
    // the appliance (`PC\rMU` would turn into `PCMU`); refuse them instead.
    let bare = body
        .iter()
        .enumerate()
        .find(|&(i, &b)| b == 0 || (b == b'\r' && body.get(i + 1) != Some(&b'\n')));
    if let Some((i, _)) = bare {
        let line = 1 + body[..i].iter().filter(|&&b| b == b'\n').count();
        return Err(SdpError::Syntax(format!("NUL or bare CR in line {line}")));
    }
    Session::parse(body)
        .map(|session| Sdp { session })
        // The parser's message may quote a whole line (a bad `v=`): keep it short.
        .map_err(|e| SdpError::Syntax(e.to_string().chars().take(SYNTAX_CHARS_MAX).collect()))
}

/// Characters of the parser's message a [`SdpError::Syntax`] keeps at most.
pub const SYNTAX_CHARS_MAX: usize = 120;

/// One payload format of the audio stream, in the order the `m=` line lists it (the order is
/// the sender's preference, RFC 3264 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The RTP payload type (RFC 3551 §6).
    pub pt: u8,
    /// The encoding name, from `a=rtpmap` or, for a static payload type without one, from
    /// RFC 3551 Table 4; `None` for a dynamic type without `a=rtpmap`.
    pub encoding: Option<String>,
    /// The RTP clock rate, from the same source as `encoding`.
    pub clock_rate_hz: Option<u32>,
}

/// A G.711 format the appliance can mix (docs/design.md §1.3), and the payload type it is
/// offered under: the static one (0 or 8) as a rule, a dynamic one if the party named it so in
/// `a=rtpmap`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mixable {
    pub codec: Codec,
    pub pt: u8,
}

/// The media direction of a stream (RFC 8866 §6.7; RFC 3264 §5.1), from the stream's own
/// attribute or else the session's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaDirection {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl MediaDirection {
    fn from_attribute(name: &str) -> Option<MediaDirection> {
        [
            ("sendrecv", MediaDirection::SendRecv),
            ("sendonly", MediaDirection::SendOnly),
            ("recvonly", MediaDirection::RecvOnly),
            ("inactive", MediaDirection::Inactive),
        ]
        .into_iter()
        .find(|(n, _)| name.eq_ignore_ascii_case(n))
        .map(|(_, d)| d)
    }

    /// The attribute name (`sendrecv`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MediaDirection::SendRecv => "sendrecv",
            MediaDirection::SendOnly => "sendonly",
            MediaDirection::RecvOnly => "recvonly",
            MediaDirection::Inactive => "inactive",
        }
    }
}

/// What the anchored audio stream of an SDP says, for the use cases (plain values, no SDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audio {
    /// Where the party receives RTP: the stream's `c=` (or the session's) and its `m=` port.
    /// Always IPv4 ([`SdpError::Ipv6`] otherwise).
    pub remote: SocketAddr,
    /// Every payload format offered, in the `m=` line's order.
    pub payloads: Vec<Payload>,
    /// The first PCMU/PCMA format in that order, if any (docs/ng.md, Codecs: without one the
    /// call cannot be anchored).
    pub mixable: Option<Mixable>,
    /// Every PCMU/PCMA format, in that order (`mixable` is the first).
    pub g711: Vec<Mixable>,
    /// The payload type of `telephone-event/8000` (RFC 4733 §7.1.1), if offered.
    pub telephone_event_pt: Option<u8>,
    /// The stream's direction (`a=sendonly` and `a=inactive` signal hold, RFC 6337 §5.3).
    pub direction: MediaDirection,
    /// `a=ptime` (RFC 8866 §6.4), the stream's or else the session's, if it is a number.
    pub ptime_ms: Option<u32>,
}

impl Audio {
    /// The G.711 laws offered, in the SDP's order, each once: what the use cases choose a
    /// leg's codec from (docs/ng.md, Codecs).
    pub fn codecs(&self) -> Vec<Codec> {
        let mut codecs = Vec::new();
        for m in &self.g711 {
            if !codecs.contains(&m.codec) {
                codecs.push(m.codec);
            }
        }
        codecs
    }

    /// Whether the party puts the call on hold: it sends no media to us (`sendonly` from the
    /// holder's view means it only sends music, `inactive` nothing, RFC 6337 §5.3), or it uses
    /// the old `c=0.0.0.0` form (RFC 3264 §8.4).
    pub fn held(&self) -> bool {
        matches!(
            self.direction,
            MediaDirection::SendOnly | MediaDirection::Inactive
        ) || self.remote.ip().is_unspecified()
    }
}

/// How much of the `o=` and `s=` lines a rewrite replaces (NG's `replace` list; the `c=`
/// lines are always replaced, as rtpengine does for `session-connection`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    /// `origin`: the `o=` line's address becomes the media address.
    pub origin: bool,
    /// `origin-full`: the whole `o=` line becomes the appliance's (username `earshot` too).
    pub origin_full: bool,
    /// `session-name`: `s=` becomes `earshot`.
    pub session_name: bool,
    /// `Some(law)`: the anchored stream offers only that G.711 law and `telephone-event/8000`
    /// (their formats keep their order, the others' `rtpmap`, `fmtp` and `rtcp-fb` lines go),
    /// so that a compliant answer (RFC 3264 §6.1, a subset of the offer) picks the leg's codec
    /// (docs/ng.md, Codecs). A stream that does not offer the law is left as it is.
    pub codec: Option<Codec>,
}

impl Rewrite {
    /// The rewrite NG's `replace` words ask for. Words are compared with `-`, `_` and space
    /// alike and case-insensitively (docs/ng.md); `session-connection` is always done and other
    /// words are ignored, as rtpengine ignores what it does not know.
    pub fn from_replace<I, S>(words: I) -> Rewrite
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut rewrite = Rewrite::default();
        for word in words {
            let word: String = word
                .as_ref()
                .chars()
                .map(|c| match c {
                    '_' | ' ' => '-',
                    c => c.to_ascii_lowercase(),
                })
                .collect();
            match word.as_str() {
                "origin" => rewrite.origin = true,
                "origin-full" => rewrite.origin_full = true,
                "session-name" => rewrite.session_name = true,
                _ => {}
            }
        }
        rewrite
    }
}

/// The `o=` username and `s=` name the appliance writes for itself.
const OWN_NAME: &str = "earshot";

/// Whether a transport profile is the plain RTP the appliance relays (RFC 3551; AVPF is the
/// same packets with early feedback, RFC 4585 §4).
fn plain_rtp(proto: &str) -> bool {
    proto.eq_ignore_ascii_case("RTP/AVP") || proto.eq_ignore_ascii_case("RTP/AVPF")
}

/// Whether a transport profile is encrypted: SDES (`RTP/SAVP*`, RFC 3711, RFC 4568) or
/// DTLS-SRTP (`UDP/TLS/RTP/SAVP*`, RFC 5764).
fn srtp(proto: &str) -> bool {
    let proto = proto.to_ascii_uppercase();
    proto.starts_with("RTP/SAVP") || proto.starts_with("UDP/TLS/RTP/SAVP")
}

/// Attributes that stop being true once the appliance is in the media path, so a rewrite
/// drops them, at session and media level:
///
/// - ICE (RFC 8839 §5): the candidates are the party's addresses, which the other party must
///   not use, and the appliance runs no ICE agent (rtpengine's `ICE=remove`).
/// - SDES and DTLS keying (`crypto`, RFC 4568; `fingerprint`, `setup`, `tls-id`, RFC 8842):
///   only plain RTP is relayed, and a key offered beside `RTP/AVP` would let the parties
///   encrypt what the appliance must mix.
/// - `rtcp` (RFC 3605): the party's RTCP port; the rewrite writes the appliance's own.
fn stripped(attribute: &Attribute) -> bool {
    let name = attribute.attribute.to_ascii_lowercase();
    name.starts_with("ice-")
        || matches!(
            name.as_str(),
            "candidate"
                | "end-of-candidates"
                | "remote-candidates"
                | "crypto"
                | "fingerprint"
                | "setup"
                | "tls-id"
                | "rtcp"
        )
        // BUNDLE (RFC 9143) puts several m= sections on one port; a leg carries one stream.
        || (name == "group"
            && attribute
                .value
                .as_deref()
                .is_some_and(|v| v.get(..6).is_some_and(|w| w.eq_ignore_ascii_case("BUNDLE"))))
}

/// RTP/RTCP multiplexing (RFC 5761 §5.1.1; RFC 8858) is passed through as the party offered
/// or answered it, as rtpengine does by default, and never added. The appliance binds only
/// the RTP port of a leg, receives RTCP there (docs/design.md §1.9) and forwards none, so each
/// party's choice is a matter between it and the appliance alone: with `a=rtcp-mux` the
/// party's RTCP reaches the RTP port and is counted; without it, it goes to the port above,
/// which stays unused (docs/design.md §1.1). Stripping it would only push RTCP there.
fn muxes_rtcp(media: &Media) -> bool {
    media.has_attribute("rtcp-mux") || media.has_attribute("rtcp-mux-only")
}

/// Static audio payload types (RFC 3551 §6, Table 4): encoding name and clock rate.
fn static_format(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        _ => return None,
    })
}

impl Sdp {
    /// The index of the anchored `m=` section: the first audio stream with a port whose
    /// profile is plain RTP. Refusals name the first audio stream's problem.
    fn anchored(&self) -> Result<usize, SdpError> {
        let mut refusal = None;
        for (i, media) in self.session.medias.iter().enumerate() {
            if !media.media.eq_ignore_ascii_case("audio") || media.port == 0 {
                continue;
            }
            if plain_rtp(&media.proto) {
                return Ok(i);
            }
            refusal.get_or_insert_with(|| {
                if srtp(&media.proto) {
                    SdpError::Srtp(media.proto.chars().take(QUOTE_CHARS_MAX).collect())
                } else {
                    SdpError::Profile(quote(&media.proto))
                }
            });
        }
        Err(refusal.unwrap_or(SdpError::NoAudio))
    }

    /// The anchored audio stream, or why there is none the appliance can relay.
    pub fn audio(&self) -> Result<Audio, SdpError> {
        self.anchored_audio().map(|(_, audio)| audio)
    }

    /// [`Sdp::audio`] and the index of its `m=` section.
    fn anchored_audio(&self) -> Result<(usize, Audio), SdpError> {
        let index = self.anchored()?;
        let media = &self.session.medias[index];
        let connection = media
            .connections
            .first()
            .or(self.session.connection.as_ref())
            .ok_or(SdpError::NoConnection)?;
        let ip = remote_ip(connection)?;

        let mut payloads = Vec::new();
        for format in media.fmt.split_ascii_whitespace() {
            let pt = format
                .parse::<u8>()
                .ok()
                .filter(|pt| *pt <= 127)
                .ok_or_else(|| SdpError::PayloadType(quote(format)))?;
            payloads.push(payload(media, pt));
        }
        if payloads.is_empty() {
            return Err(SdpError::NoFormats);
        }
        let g711: Vec<Mixable> = payloads
            .iter()
            .filter_map(|p| {
                let codec = match p.encoding.as_deref() {
                    Some(name) if name.eq_ignore_ascii_case("PCMU") => Codec::Pcmu,
                    Some(name) if name.eq_ignore_ascii_case("PCMA") => Codec::Pcma,
                    _ => return None,
                };
                (p.clock_rate_hz == Some(8000) && mono(media, p.pt))
                    .then_some(Mixable { codec, pt: p.pt })
            })
            .collect();
        let telephone_event_pt = payloads
            .iter()
            .find(|p| {
                p.encoding
                    .as_deref()
                    .is_some_and(|n| n.eq_ignore_ascii_case("telephone-event"))
                    && p.clock_rate_hz == Some(8000)
            })
            .map(|p| p.pt);
        let direction = media_direction(&media.attributes)
            .or_else(|| media_direction(&self.session.attributes))
            .unwrap_or(MediaDirection::SendRecv);
        let ptime_ms = media
            .get_first_attribute_value("ptime")
            .or_else(|| self.session.get_first_attribute_value("ptime"))
            .flatten()
            .and_then(|v| v.trim().parse::<u32>().ok());
        let audio = Audio {
            remote: SocketAddr::from((ip, media.port)),
            payloads,
            mixable: g711.first().copied(),
            g711,
            telephone_event_pt,
            direction,
            ptime_ms,
        };
        Ok((index, audio))
    }

    /// The SDP the other party gets: every `c=` names `local`'s address, the anchored audio
    /// stream `local`'s port with `a=rtcp` (RFC 3605) first among its attributes, every other
    /// stream port 0 (rejected or disabled, RFC 3264 §6, §8.2), the [`stripped`] attributes
    /// gone, and `how`'s `o=`/`s=` replacements. Everything else (payload order, `rtpmap`,
    /// `fmtp`, direction, `ptime`, unknown attributes, bandwidths) stays as it was, in order.
    ///
    /// Meant for an SDP whose [`Sdp::audio`] succeeded; without it every stream gets port 0.
    pub fn rewrite(&self, local: SocketAddr, how: &Rewrite) -> Vec<u8> {
        let mut session = self.session.clone();
        let (anchored, audio) = match self.anchored_audio() {
            Ok((index, audio)) => (Some(index), Some(audio)),
            Err(_) => (None, None),
        };
        let ip = local.ip();

        if how.origin_full {
            session.origin.set_username(OWN_NAME);
            session.origin.set_unicast_ip_address(ip);
        } else if how.origin {
            session.origin.set_unicast_ip_address(ip);
        }
        if how.session_name {
            session.session_name = OWN_NAME.to_owned();
        }
        if let Some(connection) = session.connection.as_mut() {
            connection.set_connection_ip_address(ip);
        }
        session.key = None;
        session.attributes.retain(|a| !stripped(a));

        let session_has_connection = session.connection.is_some();
        for (i, media) in session.medias.iter_mut().enumerate() {
            media.num_ports = None;
            media.key = None;
            media.attributes.retain(|a| !stripped(a));
            for connection in &mut media.connections {
                connection.set_connection_ip_address(ip);
            }
            media.connections.truncate(1);
            if Some(i) != anchored {
                media.port = 0;
                continue;
            }
            media.port = local.port();
            if let Some((law, audio)) = how.codec.zip(audio.as_ref()) {
                only_law(media, law, audio);
            }
            if media.connections.is_empty() && !session_has_connection {
                media.connections.push(Connection::from_ip_addr(ip));
            }
            // RFC 3605 §2.1; with multiplexing, RTCP shares the RTP port (RFC 5761 §5.1.3,
            // RFC 8858 §4.2).
            let rtcp_port = if muxes_rtcp(media) {
                Some(local.port())
            } else {
                local.port().checked_add(1)
            };
            if let Some(port) = rtcp_port {
                media
                    .attributes
                    .insert(0, Attribute::with_value("rtcp", port));
            }
        }
        written(&session)
    }

    /// The number of `m=` sections, rejected ones included.
    pub fn media_count(&self) -> usize {
        self.session.medias.len()
    }
}

/// Narrows `media`, the anchored stream read as `audio`, to the formats of `law` and
/// `telephone-event/8000` ([`Rewrite::codec`]).
fn only_law(media: &mut Media, law: Codec, audio: &Audio) {
    if !audio.g711.iter().any(|m| m.codec == law) {
        return;
    }
    let kept: Vec<u8> = audio
        .payloads
        .iter()
        .map(|p| p.pt)
        .filter(|&pt| {
            audio.g711.iter().any(|m| m.codec == law && m.pt == pt)
                || audio.telephone_event_pt == Some(pt)
        })
        .collect();
    media.fmt = kept.iter().map(u8::to_string).collect::<Vec<_>>().join(" ");
    // `rtpmap`, `fmtp` and `rtcp-fb` name their format first (RFC 8866 §6.6, §6.15; RFC 4585
    // §4.2, where `*` means every format and stays).
    media.attributes.retain(|a| {
        let per_format = ["rtpmap", "fmtp", "rtcp-fb"]
            .iter()
            .any(|n| a.attribute.eq_ignore_ascii_case(n));
        let format = a
            .value
            .as_deref()
            .and_then(|v| v.split_ascii_whitespace().next())
            .and_then(|pt| pt.parse::<u8>().ok());
        match format {
            Some(pt) if per_format => kept.contains(&pt),
            _ => true,
        }
    });
}

/// The session's text (`\r\n` line ends, RFC 8866 §5).
fn written(session: &Session) -> Vec<u8> {
    let mut out = Vec::new();
    session
        .write(&mut out)
        .expect("writing into a Vec<u8> cannot fail");
    out
}

/// The IPv4 address of a `c=` line the appliance can send to.
fn remote_ip(connection: &Connection) -> Result<Ipv4Addr, SdpError> {
    match connection.addrtype {
        sdp_types::AddrType::Ip4 => {}
        sdp_types::AddrType::Ip6 => return Err(SdpError::Ipv6),
        sdp_types::AddrType::Other(_) => {
            return Err(SdpError::Address(quote(&connection.connection_address)));
        }
    }
    match connection.try_address().map(|a| a.ip) {
        Ok(IpAddr::V4(ip)) if ip.is_multicast() => Err(SdpError::Multicast(ip)),
        Ok(IpAddr::V4(ip)) => Ok(ip),
        Ok(IpAddr::V6(_)) => Err(SdpError::Ipv6),
        Err(_) => Err(SdpError::Address(quote(&connection.connection_address))),
    }
}

/// The format of payload type `pt` in `media`: its first valid `a=rtpmap`, else the static
/// table.
fn payload(media: &Media, pt: u8) -> Payload {
    let mapped = media
        .attributes_typed::<RtpMap>()
        .filter_map(Result::ok)
        .find(|m| m.payload_type == pt);
    match mapped {
        Some(m) => Payload {
            pt,
            encoding: Some(m.encoding_name),
            clock_rate_hz: Some(m.clock_rate),
        },
        None => Payload {
            pt,
            encoding: static_format(pt).map(|(name, _)| name.to_owned()),
            clock_rate_hz: static_format(pt).map(|(_, rate)| rate),
        },
    }
}

/// Whether `pt` is one channel: its `a=rtpmap` has no channel count, or 1 (RFC 8866 §6.6).
fn mono(media: &Media, pt: u8) -> bool {
    media
        .attributes_typed::<RtpMap>()
        .filter_map(Result::ok)
        .find(|m| m.payload_type == pt)
        .is_none_or(|m| m.encoding_params.as_deref().is_none_or(|c| c.trim() == "1"))
}

/// The last direction attribute among `attributes` (one is allowed, RFC 8866 §6.7).
fn media_direction(attributes: &[Attribute]) -> Option<MediaDirection> {
    attributes
        .iter()
        .rev()
        .find_map(|a| MediaDirection::from_attribute(&a.attribute))
}

/// What a supervisor leg's SDP says about its session (RFC 8866 §5.2: `o=`'s id and version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// `o=`'s sess-id: a number unique to this leg.
    pub session_id: u64,
    /// `o=`'s sess-version: raised whenever the leg's SDP changes (RFC 3264 §8).
    pub version: u64,
}

/// The payload type offered for RFC 4733 events (the usual dynamic one, RFC 3551 §3).
pub const TELEPHONE_EVENT_PT: u8 = 101;

/// The SDP a supervisor leg is offered in NG's `subscribe request` (docs/ng.md, SDP): one
/// audio stream at `local` in `codec`, `sendonly` (the supervisor listens), or `sendrecv` when
/// `bidirectional` (a later whisper or barge needs no re-INVITE; the supervisor's phone may
/// then send RFC 4733 events for the in-band mode keys, docs/design.md §1.5).
pub fn subscription_offer(
    local: SocketAddr,
    codec: Codec,
    bidirectional: bool,
    session: &SessionInfo,
) -> Vec<u8> {
    let ip = local.ip();
    let mut origin = Origin::with_ip_addr(session.session_id, session.version, ip);
    origin.set_username(OWN_NAME);
    let mut sdp = Session::new(origin, OWN_NAME);
    sdp.connection = Some(Connection::from_ip_addr(ip));
    sdp.times.push(Time::new(0, 0));
    let pt = codec.payload_type();
    let name = match codec {
        Codec::Pcmu => "PCMU",
        Codec::Pcma => "PCMA",
    };
    let fmt = if bidirectional {
        format!("{pt} {TELEPHONE_EVENT_PT}")
    } else {
        pt.to_string()
    };
    let mut media = Media::new(
        sdp_types::MediaType::Audio,
        local.port(),
        sdp_types::TransportProto::RtpAvp,
        fmt,
    );
    if let Some(rtcp) = local.port().checked_add(1) {
        media.add_attribute_with_value("rtcp", rtcp);
    }
    media.add_attribute(RtpMap::new(pt, name, 8000));
    if bidirectional {
        media.add_attribute(RtpMap::new(TELEPHONE_EVENT_PT, "telephone-event", 8000));
        media.add_attribute_with_value("fmtp", format!("{TELEPHONE_EVENT_PT} 0-15"));
    }
    // The data plane's tick and every output stream run at 20 ms (docs/design.md §1.3).
    media.add_attribute_with_value("ptime", 20);
    let direction = if bidirectional {
        MediaDirection::SendRecv
    } else {
        MediaDirection::SendOnly
    };
    media.add_attribute_from_str(direction.as_str());
    sdp.medias.push(media);
    written(&sdp)
}
