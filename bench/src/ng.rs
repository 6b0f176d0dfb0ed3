//! A minimal client of rtpengine's NG control protocol, for driving rtpengine with the same
//! relay load as earshot (`loadgen --target rtpengine`, `bench/compare-rtpengine.sh`).
//!
//! The protocol (rtpengine `docs/ng_control_protocol.md`): each UDP datagram is a cookie, one
//! space and a bencoded dictionary; the reply carries the same cookie and a dictionary whose
//! `result` is `ok` (`pong` for a ping) or `error` with an `error-reason`. The SDP travels as a
//! byte string under `sdp`. rtpengine caches its replies by cookie, so a request is resent
//! unchanged (same cookie) when its reply is late, without doing the work twice.
//!
//! Only what the benchmark needs: `ping`, `offer`, `answer`, `delete`, and one-audio-stream
//! SDP (`m=audio <port> RTP/AVP 0`, PCMU) in and out. Decoding never panics on malformed
//! input: lengths are checked against what is left, integers with overflow checks, and nesting
//! is bounded.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// Nesting deeper than this is refused (an NG reply nests three or four levels).
const MAX_DEPTH: usize = 32;
/// The largest reply read (a `delete` reply carries per-stream statistics).
const MAX_DATAGRAM: usize = 65_536;

/// A bencoded value (BEP 3): integer, byte string, list, or dictionary with byte-string keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    /// Written in key order (as BEP 3 requires); read in any order (rtpengine writes its
    /// replies in insertion order). A repeated key keeps its last value.
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

/// Where and why decoding stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the input.
    pub at: usize,
    pub what: &'static str,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bencode: {} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for DecodeError {}

impl Bencode {
    pub fn str(s: &str) -> Bencode {
        Bencode::Bytes(s.as_bytes().to_vec())
    }

    pub fn list_of_str(items: &[&str]) -> Bencode {
        Bencode::List(items.iter().map(|s| Bencode::str(s)).collect())
    }

    pub fn dict<'a>(entries: impl IntoIterator<Item = (&'a str, Bencode)>) -> Bencode {
        Bencode::Dict(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    /// A dictionary's value under `key`.
    pub fn get(&self, key: &str) -> Option<&Bencode> {
        match self {
            Bencode::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Bencode::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Bencode::Bytes(b) => encode_bytes(b, out),
            Bencode::List(items) => {
                out.push(b'l');
                for item in items {
                    item.encode(out);
                }
                out.push(b'e');
            }
            Bencode::Dict(entries) => {
                out.push(b'd');
                for (k, v) in entries {
                    encode_bytes(k, out);
                    v.encode(out);
                }
                out.push(b'e');
            }
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// Decodes exactly one value filling all of `input`.
    pub fn decode(input: &[u8]) -> Result<Bencode, DecodeError> {
        let mut d = Decoder { input, pos: 0 };
        let value = d.value(0)?;
        if d.pos != input.len() {
            return Err(d.error("trailing bytes"));
        }
        Ok(value)
    }
}

fn encode_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn error(&self, what: &'static str) -> DecodeError {
        DecodeError { at: self.pos, what }
    }

    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(self.error("truncated"))
    }

    fn value(&mut self, depth: usize) -> Result<Bencode, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nested too deep"));
        }
        match self.peek()? {
            b'i' => {
                self.pos += 1;
                let v = self.integer(b'e')?;
                Ok(Bencode::Int(v))
            }
            b'0'..=b'9' => Ok(Bencode::Bytes(self.bytes()?.to_vec())),
            b'l' => {
                self.pos += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Ok(Bencode::List(items))
            }
            b'd' => {
                self.pos += 1;
                let mut entries = BTreeMap::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(self.error("dictionary key is not a byte string"));
                    }
                    let key = self.bytes()?.to_vec();
                    let value = self.value(depth + 1)?;
                    entries.insert(key, value);
                }
                self.pos += 1;
                Ok(Bencode::Dict(entries))
            }
            _ => Err(self.error("unexpected byte")),
        }
    }

    /// A decimal integer up to `end` (consumed): optional `-`, digits, no leading zero, no `-0`.
    fn integer(&mut self, end: u8) -> Result<i64, DecodeError> {
        let start = self.pos;
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_at = self.pos;
        let mut v: i64 = 0;
        loop {
            let b = self.peek()?;
            if b == end {
                break;
            }
            if !b.is_ascii_digit() {
                return Err(self.error("bad digit"));
            }
            let d = i64::from(b - b'0');
            v = v
                .checked_mul(10)
                .and_then(|v| {
                    if negative {
                        v.checked_sub(d)
                    } else {
                        v.checked_add(d)
                    }
                })
                .ok_or(self.error("integer overflow"))?;
            self.pos += 1;
        }
        let digits = &self.input[digits_at..self.pos];
        if digits.is_empty()
            || (digits.len() > 1 && digits[0] == b'0')
            || (negative && digits == b"0")
        {
            return Err(DecodeError {
                at: start,
                what: "malformed integer",
            });
        }
        self.pos += 1;
        Ok(v)
    }

    /// `<length>:<bytes>`, the length checked against what is left.
    fn bytes(&mut self) -> Result<&[u8], DecodeError> {
        let len = self.integer(b':')?;
        let len = usize::try_from(len).map_err(|_| self.error("negative length"))?;
        let rest = &self.input[self.pos..];
        if len > rest.len() {
            return Err(self.error("byte string runs past the end"));
        }
        let start = self.pos;
        self.pos += len;
        Ok(&self.input[start..start + len])
    }
}

/// Splits one NG datagram into its cookie and its dictionary.
pub fn parse_message(datagram: &[u8]) -> Result<(&[u8], Bencode), NgError> {
    let space = datagram
        .iter()
        .position(|&b| b == b' ')
        .ok_or(NgError::Protocol("no cookie".into()))?;
    let (cookie, body) = (&datagram[..space], &datagram[space + 1..]);
    let dict = Bencode::decode(body).map_err(NgError::Decode)?;
    if !matches!(dict, Bencode::Dict(_)) {
        return Err(NgError::Protocol("the body is not a dictionary".into()));
    }
    Ok((cookie, dict))
}

/// One NG datagram: the cookie, a space, the bencoded dictionary.
pub fn build_message(cookie: &[u8], dict: &Bencode) -> Vec<u8> {
    let mut out = cookie.to_vec();
    out.push(b' ');
    dict.encode(&mut out);
    out
}

#[derive(Debug)]
pub enum NgError {
    Io(io::Error),
    /// No reply within the time allowed, after every retransmission.
    Timeout {
        command: String,
    },
    Decode(DecodeError),
    /// A reply of the wrong shape.
    Protocol(String),
    /// `result: error`, with rtpengine's `error-reason`.
    Refused {
        command: String,
        reason: String,
    },
}

impl fmt::Display for NgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NgError::Io(e) => write!(f, "NG: {e}"),
            NgError::Timeout { command } => write!(f, "NG {command}: no reply"),
            NgError::Decode(e) => write!(f, "NG reply: {e}"),
            NgError::Protocol(s) => write!(f, "NG reply: {s}"),
            NgError::Refused { command, reason } => write!(f, "NG {command}: error: {reason}"),
        }
    }
}

impl std::error::Error for NgError {}

impl From<io::Error> for NgError {
    fn from(e: io::Error) -> Self {
        NgError::Io(e)
    }
}

/// A blocking NG client over one connected UDP socket, one request in flight at a time.
pub struct NgClient {
    socket: UdpSocket,
    /// Makes cookies unique across runs sharing a daemon (rtpengine caches replies by cookie).
    cookie_prefix: String,
    next_cookie: u64,
    /// Wait for a reply this long before resending, `attempts` times in all.
    resend_after: Duration,
    attempts: u32,
    buf: Vec<u8>,
}

impl NgClient {
    pub fn connect(server: SocketAddr) -> Result<NgClient, NgError> {
        let local: SocketAddr = match server.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => (Ipv4Addr::LOCALHOST, 0).into(),
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local)?;
        socket.connect(server)?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(NgClient {
            socket,
            cookie_prefix: format!("{:x}-{:x}-", std::process::id(), nanos),
            next_cookie: 0,
            resend_after: Duration::from_millis(500),
            attempts: 6,
            buf: vec![0; MAX_DATAGRAM],
        })
    }

    /// Sends `command` with `args` and waits for its reply: the reply's dictionary when its
    /// `result` is `ok` or `pong`, else the error.
    pub fn request(
        &mut self,
        command: &str,
        mut args: Vec<(&str, Bencode)>,
    ) -> Result<Bencode, NgError> {
        args.push(("command", Bencode::str(command)));
        let cookie = format!("{}{}", self.cookie_prefix, self.next_cookie);
        self.next_cookie += 1;
        let message = build_message(cookie.as_bytes(), &Bencode::dict(args));
        for _ in 0..self.attempts {
            self.socket.send(&message)?;
            let deadline = Instant::now() + self.resend_after;
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                if left.is_zero() {
                    break;
                }
                self.socket.set_read_timeout(Some(left))?;
                let n = match self.socket.recv(&mut self.buf) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                        ) =>
                    {
                        break;
                    }
                    Err(e) => return Err(e.into()),
                };
                let (got, reply) = parse_message(&self.buf[..n])?;
                if got != cookie.as_bytes() {
                    // A late reply to an earlier request's retransmission.
                    continue;
                }
                return check_result(command, reply);
            }
        }
        Err(NgError::Timeout {
            command: command.to_owned(),
        })
    }

    pub fn ping(&mut self) -> Result<(), NgError> {
        self.request("ping", Vec::new()).map(drop)
    }

    /// `offer`: the caller's SDP in, rtpengine's rewritten SDP (its address for the callee)
    /// out.
    pub fn offer(&mut self, call_id: &str, from_tag: &str, sdp: &str) -> Result<String, NgError> {
        let tags = vec![
            ("call-id", Bencode::str(call_id)),
            ("from-tag", Bencode::str(from_tag)),
        ];
        self.rewrite_sdp("offer", tags, sdp)
    }

    /// `answer`: the callee's SDP in, rtpengine's rewritten SDP (its address for the caller)
    /// out.
    pub fn answer(
        &mut self,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
    ) -> Result<String, NgError> {
        let tags = vec![
            ("call-id", Bencode::str(call_id)),
            ("from-tag", Bencode::str(from_tag)),
            ("to-tag", Bencode::str(to_tag)),
        ];
        self.rewrite_sdp("answer", tags, sdp)
    }

    /// `offer` or `answer` of `sdp` for the call and tags in `args`, without ICE and with
    /// rtpengine's own origin and connection lines: the SDP it returns.
    fn rewrite_sdp(
        &mut self,
        command: &str,
        mut args: Vec<(&str, Bencode)>,
        sdp: &str,
    ) -> Result<String, NgError> {
        args.extend([
            ("sdp", Bencode::str(sdp)),
            ("ICE", Bencode::str("remove")),
            (
                "replace",
                Bencode::list_of_str(&["origin", "session-connection"]),
            ),
        ]);
        let reply = self.request(command, args)?;
        reply_sdp(command, &reply)
    }

    /// `delete` of the whole call (no `to-tag`).
    pub fn delete(&mut self, call_id: &str, from_tag: &str) -> Result<(), NgError> {
        self.request(
            "delete",
            vec![
                ("call-id", Bencode::str(call_id)),
                ("from-tag", Bencode::str(from_tag)),
            ],
        )
        .map(drop)
    }
}

fn check_result(command: &str, reply: Bencode) -> Result<Bencode, NgError> {
    match reply.get("result").and_then(Bencode::as_str) {
        Some("ok" | "pong") => Ok(reply),
        Some("error") => Err(NgError::Refused {
            command: command.to_owned(),
            reason: reply
                .get("error-reason")
                .and_then(Bencode::as_str)
                .unwrap_or("(no reason given)")
                .to_owned(),
        }),
        Some(other) => Err(NgError::Protocol(format!(
            "{command}: unexpected result {other:?}"
        ))),
        None => Err(NgError::Protocol(format!("{command}: no result"))),
    }
}

fn reply_sdp(command: &str, reply: &Bencode) -> Result<String, NgError> {
    reply
        .get("sdp")
        .and_then(Bencode::as_str)
        .map(str::to_owned)
        .ok_or(NgError::Protocol(format!("{command}: no sdp in the reply")))
}

/// A one-stream PCMU SDP offering `addr` (RFC 4566; payload type 0 is PCMU/8000, RFC 3551).
pub fn audio_sdp(addr: SocketAddrV4, session_id: u64) -> String {
    let ip = addr.ip();
    format!(
        "v=0\r\n\
         o=- {session_id} 1 IN IP4 {ip}\r\n\
         s=loadgen\r\n\
         c=IN IP4 {ip}\r\n\
         t=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\n\
         a=rtpmap:0 PCMU/8000\r\n\
         a=ptime:20\r\n\
         a=sendrecv\r\n",
        port = addr.port()
    )
}

/// The address of the first audio stream of `sdp`: the `m=audio` port, and the `c=` address in
/// that media section, else the session's. `None` if either is missing or not IPv4.
pub fn sdp_audio_addr(sdp: &str) -> Option<SocketAddrV4> {
    let mut session_ip = None;
    let mut media: Option<(u16, Option<Ipv4Addr>)> = None;
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            if media.is_some() {
                break;
            }
            let mut fields = m.split_whitespace();
            if fields.next() == Some("audio") {
                // The port may carry a count (`port/2`).
                let port = fields.next()?.split('/').next()?.parse().ok()?;
                media = Some((port, None));
            }
        } else if let Some(c) = line.strip_prefix("c=") {
            let mut fields = c.split_whitespace();
            let ip = match (fields.next(), fields.next(), fields.next()) {
                (Some("IN"), Some("IP4"), Some(addr)) => addr.split('/').next()?.parse().ok(),
                _ => None,
            };
            match &mut media {
                Some((_, media_ip)) => *media_ip = ip,
                None => session_ip = ip,
            }
        }
    }
    let (port, media_ip) = media?;
    Some(SocketAddrV4::new(media_ip.or(session_ip)?, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &[u8]) -> Result<Bencode, DecodeError> {
        Bencode::decode(s)
    }

    #[test]
    fn encodes_in_key_order() {
        let d = Bencode::dict([
            ("sdp", Bencode::str("v=0")),
            ("command", Bencode::str("offer")),
            ("n", Bencode::Int(-42)),
            ("replace", Bencode::list_of_str(&["origin", ""])),
        ]);
        assert_eq!(
            d.to_bytes(),
            b"d7:command5:offer1:ni-42e7:replacel6:origin0:e3:sdp3:v=0e"
        );
        assert_eq!(Bencode::Int(0).to_bytes(), b"i0e");
        assert_eq!(Bencode::Dict(BTreeMap::new()).to_bytes(), b"de");
    }

    #[test]
    fn decodes_what_it_encodes() {
        let d = Bencode::dict([
            ("a", Bencode::Int(i64::MIN)),
            ("b", Bencode::Int(i64::MAX)),
            ("c", Bencode::Bytes(vec![0, 255, b' ', b':'])),
            (
                "d",
                Bencode::List(vec![
                    Bencode::List(vec![]),
                    Bencode::dict([("x", Bencode::Int(1))]),
                ]),
            ),
        ]);
        assert_eq!(dec(&d.to_bytes()).unwrap(), d);
    }

    #[test]
    fn reads_rtpengine_replies_in_any_key_order() {
        let reply = b"d6:result2:ok3:sdp5:v=0\r\n7:warning3:hmm7:call-id1:xe";
        let d = dec(reply).unwrap();
        assert_eq!(d.get("result").and_then(Bencode::as_str), Some("ok"));
        assert_eq!(d.get("sdp").and_then(Bencode::as_str), Some("v=0\r\n"));
        let (cookie, d) = parse_message(b"5213_1 d6:result4:ponge").unwrap();
        assert_eq!(cookie, b"5213_1");
        assert!(check_result("ping", d).is_ok());
        let (_, d) = parse_message(b"c d6:result5:error12:error-reason12:Unknown calle").unwrap();
        match check_result("delete", d) {
            Err(NgError::Refused { reason, .. }) => assert_eq!(reason, "Unknown call"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            &b""[..],
            b"i",
            b"ie",
            b"i-e",
            b"i-0e",
            b"i03e",
            b"i1x2e",
            b"i9223372036854775808e",
            b"i-9223372036854775809e",
            b"i99999999999999999999999e",
            b"5:abc",
            b"-1:a",
            b"01:a",
            b"99999999999999999999999:a",
            b"18446744073709551616:a",
            b"3abc",
            b"l",
            b"li1e",
            b"d",
            b"d1:a",
            b"di1ei2ee",
            b"dlee",
            b"x",
            b"i1ei2e",
            b"de ",
            b"e",
        ] {
            assert!(dec(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = [vec![b'l'; 10_000], vec![b'e'; 10_000]].concat();
        assert_eq!(dec(&deep).unwrap_err().what, "nested too deep");
        let ok_depth = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        assert!(dec(&ok_depth).is_ok());
        assert!(parse_message(b"d6:result2:oke").is_err(), "no cookie");
        assert!(parse_message(b"c i1e").is_err(), "not a dictionary");
        assert!(parse_message(b"c d6:result2:ok").is_err(), "truncated");
    }

    /// Random bytes and random mutations of a valid reply: decoding returns, never panics.
    #[test]
    fn survives_random_and_mutated_input() {
        let valid = b"d6:result2:ok3:sdp18:v=0\r\nm=audio 2 RTP7:streamsld1:ai-3eeee";
        assert!(dec(valid).is_ok());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64*
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let alphabet = b"0123456789:idle-x ";
        for _ in 0..200_000 {
            let mut input = if next() % 2 == 0 {
                valid.to_vec()
            } else {
                let len = (next() % 40) as usize;
                (0..len)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            for _ in 0..(next() % 4) {
                if input.is_empty() {
                    break;
                }
                let i = (next() % input.len() as u64) as usize;
                match next() % 3 {
                    0 => input[i] = alphabet[(next() % alphabet.len() as u64) as usize],
                    1 => {
                        input.remove(i);
                    }
                    _ => input.truncate(i),
                }
            }
            if let Ok(v) = dec(&input) {
                // Whatever decodes re-encodes to something that decodes to the same value.
                assert_eq!(dec(&v.to_bytes()).unwrap(), v);
            }
            let _ = parse_message(&input);
        }
    }

    #[test]
    fn sdp_round_trip_and_rtpengine_shapes() {
        let a = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 40_002);
        assert_eq!(sdp_audio_addr(&audio_sdp(a, 7)), Some(a));
        // A media-level c= wins over the session's; a port count is allowed.
        let sdp = "v=0\r\nc=IN IP4 10.0.0.1\r\nm=audio 30000/2 RTP/AVP 0\r\nc=IN IP4 127.0.0.1\r\n\
                   m=audio 9 RTP/AVP 0\r\nc=IN IP4 127.0.0.2\r\n";
        assert_eq!(
            sdp_audio_addr(sdp),
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30_000))
        );
        for bad in [
            "",
            "v=0\r\nm=audio 1 RTP/AVP 0\r\n",
            "c=IN IP6 ::1\r\nm=audio 1 RTP/AVP 0\r\n",
            "c=IN IP4 127.0.0.1\r\nm=audio x RTP/AVP 0\r\n",
            "c=IN IP4 127.0.0.1\r\nm=video 1 RTP/AVP 96\r\n",
            "c=IN IP4 127.0.0.1\r\nm=audio 70000 RTP/AVP 0\r\n",
        ] {
            assert_eq!(sdp_audio_addr(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn requests_carry_the_command_and_time_out_without_a_daemon() {
        // A bound socket nobody answers on: the request is sent, then times out.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut client = NgClient::connect(silent.local_addr().unwrap()).unwrap();
        client.resend_after = Duration::from_millis(20);
        client.attempts = 2;
        let err = client.ping().unwrap_err();
        assert!(matches!(err, NgError::Timeout { .. }), "{err}");
        let mut buf = [0u8; 256];
        let n = silent.recv(&mut buf).unwrap();
        let (cookie, dict) = parse_message(&buf[..n]).unwrap();
        assert!(!cookie.is_empty());
        assert_eq!(dict.get("command").and_then(Bencode::as_str), Some("ping"));
    }

    #[test]
    fn a_reply_is_matched_by_cookie() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut client = NgClient::connect(server.local_addr().unwrap()).unwrap();
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            let (n, from) = server.recv_from(&mut buf).unwrap();
            let (cookie, req) = parse_message(&buf[..n]).unwrap();
            assert_eq!(req.get("command").and_then(Bencode::as_str), Some("offer"));
            assert_eq!(req.get("ICE").and_then(Bencode::as_str), Some("remove"));
            let sdp = audio_sdp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30_000), 1);
            // A stale reply first, then garbage-free real one.
            let stale = build_message(b"other", &Bencode::dict([("result", Bencode::str("ok"))]));
            server.send_to(&stale, from).unwrap();
            let reply =
                Bencode::dict([("result", Bencode::str("ok")), ("sdp", Bencode::str(&sdp))]);
            server
                .send_to(&build_message(cookie, &reply), from)
                .unwrap();
        });
        let sdp = client
            .offer(
                "call",
                "tag",
                &audio_sdp(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 5), 1),
            )
            .unwrap();
        assert_eq!(
            sdp_audio_addr(&sdp),
            Some(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 30_000))
        );
        t.join().unwrap();
    }
}
