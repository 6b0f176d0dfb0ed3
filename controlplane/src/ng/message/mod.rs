//! NG requests and replies (docs/ng.md, The wire): a datagram's cookie and body, the body's
//! dictionary as a typed [`Request`], and a [`Reply`] back to bytes. Pure: no I/O, no state.
//!
//! Reading follows what rtpengine's clients send (docs/ng.md, The wire: commands):
//! - keys and flag words are normalised (`-`, `_` and space are one character, and case does
//!   not matter), so `call-id`, `call_id`, `Call ID` are one key; values are kept as sent;
//! - a scalar key given twice counts once, the first (as [`Value::get`]); a list key
//!   (`flags`, `replace`, …) given twice, or also inside `rtpp-flags`, collects every entry;
//! - a list key may also be a comma-separated string (rtpengine accepts both);
//! - a known key with a value of the wrong type is a clear error naming the key; an unknown
//!   key is ignored, and kept in `extra` when its value is a string, so that `agent-id=…`
//!   and similar `key=value` flags reach the command layer;
//! - error reasons are rtpengine's own strings, which the softswitch modules log or match
//!   (Kamailio fails over to another relay on `Parallel session limit reached`).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use super::bencode::{self, Value};

mod json;
mod reply;

pub use reply::Reply;

/// `list`'s default limit (rtpengine's, which also keeps the answer well inside a datagram).
pub const LIST_LIMIT_DEFAULT: usize = 32;

/// Splits a datagram into its cookie and its body at the first space. `None` when there is no
/// cookie (no space, or a space first): such a datagram gets no reply, as from rtpengine.
pub fn split(datagram: &[u8]) -> Option<(&[u8], &[u8])> {
    let space = datagram.iter().position(|&b| b == b' ')?;
    if space == 0 {
        return None;
    }
    Some((&datagram[..space], &datagram[space + 1..]))
}

/// The body's encoding; a reply is written in the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Bencode,
    Json,
}

impl Format {
    /// JSON when the body starts with `{`, else bencode (whose errors then explain).
    pub fn of(body: &[u8]) -> Format {
        if body.first() == Some(&b'{') {
            Format::Json
        } else {
            Format::Bencode
        }
    }
}

/// An NG error: `error-reason` as rtpengine words it, and for the log what exactly was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgError {
    reason: Cow<'static, str>,
    detail: Option<String>,
}

impl NgError {
    pub const NO_PAYLOAD: NgError = NgError::fixed("Invalid data (no payload)");
    pub const BAD_FORMAT: NgError = NgError::fixed("Invalid NG data format");
    pub const BAD_BENCODE: NgError = NgError::fixed("Could not decode bencode dictionary");
    pub const BAD_JSON: NgError = NgError::fixed("Failed to parse JSON document");
    pub const JSON_NOT_DICT: NgError = NgError::fixed("Could not decode JSON dictionary");
    pub const NO_COMMAND: NgError = NgError::fixed("Dictionary contains no key \"command\"");
    pub const UNKNOWN_COMMAND: NgError = NgError::fixed("Unrecognized command");
    pub const NO_SDP: NgError = NgError::fixed("No SDP body in message");
    pub const NO_CALL_ID: NgError = NgError::fixed("No call-id in message");
    pub const NO_FROM_TAG: NgError = NgError::fixed("No from-tag in message");
    pub const NO_TO_TAG: NgError = NgError::fixed("No to-tag in message");
    pub const NO_SOURCE_TAG: NgError = NgError::fixed("No source-tag in message");
    pub const NO_PARTY: NgError = NgError::fixed("No participant party specified");
    pub const BAD_LIMIT: NgError = NgError::fixed("invalid limit, must be >= 0");
    /// For the SDP and command layers (docs/ng.md, The wire: errors).
    pub const BAD_SDP: NgError = NgError::fixed("Failed to parse SDP");
    /// `offer`/`answer` on a call that does not exist.
    pub const UNKNOWN_CALL_ID: NgError = NgError::fixed("Unknown call-id");
    /// The other commands on a call that does not exist.
    pub const UNKNOWN_CALL_ID_OTHER: NgError = NgError::fixed("Unknown call-ID");
    /// `delete` of a call that does not exist (a warning unless `fatal`).
    pub const DELETE_NOT_FOUND: NgError = NgError::fixed("Call-ID not found or tags didn't match");
    /// Over capacity, to a client that does not `support` `load limit`: Kamailio then tries
    /// another relay.
    pub const SESSION_LIMIT: NgError = NgError::fixed("Parallel session limit reached");
    pub const OUT_OF_PORTS: NgError = NgError::fixed("Ran out of ports");

    const fn fixed(reason: &'static str) -> NgError {
        NgError {
            reason: Cow::Borrowed(reason),
            detail: None,
        }
    }

    /// An error with a reason of our own (rtpengine has none for the case).
    pub fn new(reason: impl Into<Cow<'static, str>>) -> NgError {
        NgError {
            reason: reason.into(),
            detail: None,
        }
    }

    /// The same reason, with what exactly was wrong for the log.
    pub fn with_detail(mut self, detail: impl Into<String>) -> NgError {
        self.detail = Some(detail.into());
        self
    }

    /// The `error-reason` to send.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// The error as a reply.
    pub fn reply(&self) -> Reply {
        Reply::Error(self.reason.to_string())
    }
}

impl fmt::Display for NgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{} ({d})", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for NgError {}

/// A parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub command: Command,
    /// The body's encoding, for the reply.
    pub format: Format,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ping,
    Offer(Offer),
    /// An answer: an [`Offer`] whose `to_tag` is always present (the answerer's).
    Answer(Offer),
    Delete(Delete),
    Query(Target),
    List {
        limit: usize,
    },
    SubscribeRequest(Subscribe),
    SubscribeAnswer(SubscribeAnswer),
    Unsubscribe(Unsubscribe),
    Connect(Connect),
    BlockMedia(MediaControl),
    UnblockMedia(MediaControl),
    SilenceMedia(MediaControl),
    UnsilenceMedia(MediaControl),
}

impl Command {
    /// The command's name as rtpengine spells it (a bounded metric label).
    pub fn name(&self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::Offer(_) => "offer",
            Command::Answer(_) => "answer",
            Command::Delete(_) => "delete",
            Command::Query(_) => "query",
            Command::List { .. } => "list",
            Command::SubscribeRequest(_) => "subscribe request",
            Command::SubscribeAnswer(_) => "subscribe answer",
            Command::Unsubscribe(_) => "unsubscribe",
            Command::Connect(_) => "connect",
            Command::BlockMedia(_) => "block media",
            Command::UnblockMedia(_) => "unblock media",
            Command::SilenceMedia(_) => "silence media",
            Command::UnsilenceMedia(_) => "unsilence media",
        }
    }
}

/// Bare flag words (`flags` and the bare words of `rtpp-flags`), as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags(Vec<String>);

impl Flags {
    /// Whether `word` was given, comparing normalised (`delete-delay` = `delete delay`).
    pub fn has(&self, word: &str) -> bool {
        let word = normalise(word);
        self.0.iter().any(|w| normalise(w) == word)
    }

    /// What follows `prefix` in the words that start with it (`from-tags-<tag>`): the prefix
    /// is compared normalised, the rest is returned as sent (a tag is case-sensitive).
    pub fn suffixes<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = normalise(prefix);
        self.0.iter().filter_map(move |w| {
            let head = w.get(..prefix.len())?;
            (normalise(head) == prefix).then(|| &w[prefix.len()..])
        })
    }

    pub fn words(&self) -> &[String] {
        &self.0
    }
}

/// `offer` and `answer` (docs/ng.md, The wire: commands).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offer {
    pub call_id: String,
    /// The offerer's tag.
    pub from_tag: String,
    /// The answerer's tag: always in an answer, in a re-offer.
    pub to_tag: Option<String>,
    pub via_branch: Option<String>,
    pub sdp: Vec<u8>,
    pub flags: Flags,
    /// Normalised `replace` words: `origin`, `session-connection`, …
    pub replace: Vec<String>,
    /// `direction`, normalised (`internal`, `external`, or interface names).
    pub direction: Vec<String>,
    /// The label of the party sending this SDP (the offerer on an offer, the answerer on an
    /// answer), as rtpengine applies it.
    pub label: Option<String>,
    pub to_label: Option<String>,
    pub metadata: Option<String>,
    /// The client can take `result: load limit` (Kamailio always sends this).
    pub supports_load_limit: bool,
    /// The SIP message's source address (`received-from: [family, address]`).
    pub received_from: Option<IpAddr>,
    pub transport_protocol: Option<String>,
    /// `ICE` (`remove`, `force`, …), normalised.
    pub ice: Option<String>,
    pub rtcp_mux: Vec<String>,
    /// Other string-valued keys, normalised key first (`agent-id` → `1234`).
    pub extra: Vec<(String, String)>,
}

/// `delete` (docs/ng.md, The wire: commands).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delete {
    pub call_id: String,
    /// Either party's tag (a BYE carries its sender's From tag).
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub via_branch: Option<String>,
    pub flags: Flags,
    /// An unknown call is an error, not a warning.
    pub fatal: bool,
    /// Answer without the call's statistics.
    pub fast: bool,
    /// `delete delay` in seconds, when given.
    pub delete_delay_s: Option<i64>,
    pub label: Option<String>,
    pub extra: Vec<(String, String)>,
}

/// What `query` names: a call, optionally a party.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    pub call_id: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
}

/// `subscribe request`: a new party (a supervisor) receiving the media of the sources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscribe {
    pub call_id: String,
    /// The source parties' tags (`from-tag`, `from-tags`, flags `from-tags-<tag>`).
    pub from_tags: Vec<String>,
    /// Every party of the call is a source (flag or key `all`).
    pub all: bool,
    /// The subscription's own tag, when the client chooses it.
    pub to_tag: Option<String>,
    /// A source selected by label.
    pub label: Option<String>,
    /// The label to give the new party (`set-label`, or `to-label`).
    pub set_label: Option<String>,
    /// `sendrecv` instead of `sendonly`, so that a later whisper needs no re-INVITE.
    pub bidirectional: bool,
    pub sdp: Option<Vec<u8>>,
    pub flags: Flags,
    pub metadata: Option<String>,
    pub extra: Vec<(String, String)>,
}

/// `subscribe answer`: the subscriber's SDP answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeAnswer {
    pub call_id: String,
    /// The subscription's tag, from the `subscribe request` reply.
    pub to_tag: String,
    pub sdp: Vec<u8>,
    pub flags: Flags,
}

/// `unsubscribe`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unsubscribe {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: Option<String>,
    pub flags: Flags,
}

/// `connect`: media from the source parties to `to_tag`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connect {
    pub call_id: String,
    pub from_tags: Vec<String>,
    pub all: bool,
    pub to_tag: String,
    pub to_call_id: Option<String>,
    /// Only from the sources to `to_tag`, not back.
    pub directional: bool,
    pub bidirectional: bool,
    pub flags: Flags,
}

/// `block media`, `unblock media`, `silence media`, `unsilence media`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MediaControl {
    pub call_id: String,
    pub from_tag: Option<String>,
    pub from_tags: Vec<String>,
    /// One flow: from `from_tag` to this party only.
    pub to_tag: Option<String>,
    pub label: Option<String>,
    pub to_label: Option<String>,
    pub directional: bool,
    pub all: bool,
    pub flags: Flags,
}

/// Parses a request body (after the cookie).
pub fn parse(body: &[u8]) -> Result<Request, NgError> {
    let format = Format::of(body);
    let document = match (body.first(), format) {
        (None, _) => return Err(NgError::NO_PAYLOAD),
        (_, Format::Json) => json::from_json(body)?,
        (Some(b'd'), Format::Bencode) => {
            bencode::decode(body).map_err(|e| NgError::BAD_BENCODE.with_detail(e.to_string()))?
        }
        (Some(_), Format::Bencode) => return Err(NgError::BAD_FORMAT),
    };
    let args = Args::new(&document)?;
    let command = args.command()?;
    Ok(Request { command, format })
}

/// The dictionary with its keys normalised, `rtpp-flags` expanded after the explicit keys.
struct Args {
    pairs: Vec<(String, Value)>,
}

/// Keys whose values are lists of words; every occurrence contributes.
const LIST_KEYS: [&str; 7] = [
    "flags",
    "replace",
    "direction",
    "supports",
    "rtcp-mux",
    "from-tags",
    "sdes",
];

/// Keys read by some command, so never `extra`.
const KNOWN_KEYS: [&str; 28] = [
    "command",
    "call-id",
    "from-tag",
    "to-tag",
    "via-branch",
    "sdp",
    "flags",
    "replace",
    "direction",
    "label",
    "to-label",
    "set-label",
    "metadata",
    "supports",
    "received-from",
    "transport-protocol",
    "ice",
    "rtcp-mux",
    "delete-delay",
    "limit",
    "from-tags",
    "all",
    "to-call-id",
    "rtpp-flags",
    "sdes",
    "codec",
    "tos",
    "address",
];

impl Args {
    fn new(document: &Value) -> Result<Args, NgError> {
        let Value::Dict(dict) = document else {
            return Err(NgError::BAD_BENCODE.with_detail(format!("{} at the top", document.kind())));
        };
        let mut pairs: Vec<(String, Value)> = dict
            .iter()
            .map(|(k, v)| (normalise(&String::from_utf8_lossy(k)), v.clone()))
            .collect();
        let rtpp = pairs
            .iter()
            .find(|(k, _)| k == "rtpp-flags")
            .map(|(_, v)| v.clone());
        if let Some(v) = rtpp {
            let text = text("rtpp-flags", &v)?;
            pairs.extend(expand_rtpp_flags(&text));
        }
        Ok(Args { pairs })
    }

    fn first(&self, key: &str) -> Option<&Value> {
        self.pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// A string value; an empty one counts as absent (rtpengine's `No call-id` for `""`).
    fn string(&self, key: &str) -> Result<Option<String>, NgError> {
        match self.first(key) {
            None => Ok(None),
            Some(v) => Ok(Some(text(key, v)?).filter(|s| !s.is_empty())),
        }
    }

    fn required(&self, key: &str, missing: NgError) -> Result<String, NgError> {
        self.string(key)?.ok_or(missing)
    }

    /// A byte string (SDP), which need not be UTF-8.
    fn bytes(&self, key: &str) -> Result<Option<Vec<u8>>, NgError> {
        match self.first(key) {
            None => Ok(None),
            Some(Value::Bytes(b)) if b.is_empty() => Ok(None),
            Some(Value::Bytes(b)) => Ok(Some(b.clone())),
            Some(other) => Err(wrong_type(key, "a string", other)),
        }
    }

    /// An integer, also as decimal text (JSON clients and flag strings send text).
    fn int(&self, key: &str) -> Result<Option<i64>, NgError> {
        match self.first(key) {
            None => Ok(None),
            Some(Value::Int(i)) => Ok(Some(*i)),
            Some(v @ Value::Bytes(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .map(Some)
                .ok_or_else(|| wrong_type(key, "an integer", v)),
            Some(other) => Err(wrong_type(key, "an integer", other)),
        }
    }

    /// Every word under a list key, in order.
    fn list(&self, key: &str) -> Result<Vec<String>, NgError> {
        let mut out = Vec::new();
        for (_, v) in self.pairs.iter().filter(|(k, _)| k == key) {
            match v {
                Value::List(items) => {
                    for item in items {
                        out.push(text(key, item)?);
                    }
                }
                Value::Bytes(_) => out.extend(
                    text(key, v)?
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                ),
                other => return Err(wrong_type(key, "a list of strings", other)),
            }
        }
        Ok(out)
    }

    fn normalised_list(&self, key: &str) -> Result<Vec<String>, NgError> {
        Ok(self.list(key)?.iter().map(|w| normalise(w)).collect())
    }

    fn flags(&self) -> Result<Flags, NgError> {
        Ok(Flags(self.list("flags")?))
    }

    /// A flag given as a bare word or as a key (`"all": "all"`, `"fatal": 1`).
    fn switch(&self, flags: &Flags, word: &str) -> bool {
        flags.has(word)
            || self.first(word).is_some_and(|v| match v {
                Value::Int(i) => *i != 0,
                Value::Bytes(b) => !matches!(
                    normalise(&String::from_utf8_lossy(b)).as_str(),
                    "none" | "no" | "off" | "false" | "0"
                ),
                _ => true,
            })
    }

    /// String-valued keys that no command reads (`agent-id`, `record-call`, …).
    fn extra(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.pairs {
            if KNOWN_KEYS.contains(&k.as_str()) || out.iter().any(|(seen, _)| seen == k) {
                continue;
            }
            if let Value::Bytes(b) = v
                && let Ok(s) = std::str::from_utf8(b)
            {
                out.push((k.clone(), s.to_owned()));
            }
        }
        out
    }

    /// The source tags of `subscribe request`, `connect` and the media commands.
    fn source_tags(&self, flags: &Flags) -> Result<Vec<String>, NgError> {
        let mut tags: Vec<String> = self.string("from-tag")?.into_iter().collect();
        tags.extend(self.list("from-tags")?);
        tags.extend(flags.suffixes("from-tags-").map(str::to_owned));
        tags.retain(|t| !t.is_empty());
        let mut seen = Vec::new();
        tags.retain(|t| {
            let new = !seen.contains(t);
            seen.push(t.clone());
            new
        });
        Ok(tags)
    }

    fn received_from(&self) -> Result<Option<IpAddr>, NgError> {
        let Some(v) = self.first("received-from") else {
            return Ok(None);
        };
        let bad = || wrong_type("received-from", "a list [family, address]", v);
        let Value::List(items) = v else {
            return Err(bad());
        };
        let [_, address] = items.as_slice() else {
            return Err(bad());
        };
        let address = text("received-from", address)?;
        address.parse().map(Some).map_err(|_| {
            NgError::new(format!(
                "Invalid value for key \"received-from\": {address:?} is not an IP address"
            ))
        })
    }

    fn command(&self) -> Result<Command, NgError> {
        let name = match self.first("command") {
            None => return Err(NgError::NO_COMMAND),
            Some(v) => normalise(&text("command", v)?),
        };
        Ok(match name.as_str() {
            "ping" => Command::Ping,
            "offer" => Command::Offer(self.offer(false)?),
            "answer" => Command::Answer(self.offer(true)?),
            "delete" => Command::Delete(self.delete()?),
            "query" => Command::Query(Target {
                call_id: self.required("call-id", NgError::NO_CALL_ID)?,
                from_tag: self.string("from-tag")?,
                to_tag: self.string("to-tag")?,
            }),
            "list" => Command::List {
                limit: match self.int("limit")? {
                    None => LIST_LIMIT_DEFAULT,
                    Some(n) if n < 0 => return Err(NgError::BAD_LIMIT),
                    Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
                },
            },
            "subscribe-request" => Command::SubscribeRequest(self.subscribe()?),
            "subscribe-answer" => Command::SubscribeAnswer(SubscribeAnswer {
                call_id: self.required("call-id", NgError::NO_CALL_ID)?,
                sdp: self.bytes("sdp")?.ok_or(NgError::NO_SDP)?,
                to_tag: self.required("to-tag", NgError::NO_TO_TAG)?,
                flags: self.flags()?,
            }),
            "unsubscribe" => Command::Unsubscribe(Unsubscribe {
                call_id: self.required("call-id", NgError::NO_CALL_ID)?,
                to_tag: self.required("to-tag", NgError::NO_TO_TAG)?,
                from_tag: self.string("from-tag")?,
                flags: self.flags()?,
            }),
            "connect" => Command::Connect(self.connect()?),
            "block-media" => Command::BlockMedia(self.media_control()?),
            "unblock-media" => Command::UnblockMedia(self.media_control()?),
            "silence-media" => Command::SilenceMedia(self.media_control()?),
            "unsilence-media" => Command::UnsilenceMedia(self.media_control()?),
            _ => return Err(NgError::UNKNOWN_COMMAND.with_detail(format!("command {name:?}"))),
        })
    }

    /// rtpengine's checks, in its order: SDP, call-id, from-tag, and an answer's to-tag.
    fn offer(&self, answer: bool) -> Result<Offer, NgError> {
        let sdp = self.bytes("sdp")?.ok_or(NgError::NO_SDP)?;
        let call_id = self.required("call-id", NgError::NO_CALL_ID)?;
        let from_tag = self.required("from-tag", NgError::NO_FROM_TAG)?;
        let to_tag = self.string("to-tag")?;
        if answer && to_tag.is_none() {
            return Err(NgError::NO_TO_TAG);
        }
        let supports = self.normalised_list("supports")?;
        Ok(Offer {
            call_id,
            from_tag,
            to_tag,
            via_branch: self.string("via-branch")?,
            sdp,
            flags: self.flags()?,
            replace: self.normalised_list("replace")?,
            direction: self.normalised_list("direction")?,
            label: self.string("label")?,
            to_label: self.string("to-label")?,
            metadata: self.string("metadata")?,
            supports_load_limit: supports.iter().any(|s| s == "load-limit"),
            received_from: self.received_from()?,
            transport_protocol: self.string("transport-protocol")?,
            ice: self.string("ice")?.map(|s| normalise(&s)),
            rtcp_mux: self.normalised_list("rtcp-mux")?,
            extra: self.extra(),
        })
    }

    fn delete(&self) -> Result<Delete, NgError> {
        let call_id = self.required("call-id", NgError::NO_CALL_ID)?;
        let flags = self.flags()?;
        Ok(Delete {
            call_id,
            from_tag: self.string("from-tag")?,
            to_tag: self.string("to-tag")?,
            via_branch: self.string("via-branch")?,
            fatal: self.switch(&flags, "fatal"),
            fast: self.switch(&flags, "fast"),
            delete_delay_s: self.int("delete-delay")?,
            label: self.string("label")?,
            extra: self.extra(),
            flags,
        })
    }

    fn subscribe(&self) -> Result<Subscribe, NgError> {
        let call_id = self.required("call-id", NgError::NO_CALL_ID)?;
        let flags = self.flags()?;
        let from_tags = self.source_tags(&flags)?;
        let all = self.switch(&flags, "all");
        let label = self.string("label")?;
        if from_tags.is_empty() && !all && label.is_none() {
            return Err(NgError::NO_PARTY);
        }
        Ok(Subscribe {
            call_id,
            from_tags,
            all,
            to_tag: self.string("to-tag")?,
            label,
            set_label: match self.string("set-label")? {
                Some(l) => Some(l),
                None => self.string("to-label")?,
            },
            bidirectional: self.switch(&flags, "bidirectional"),
            sdp: self.bytes("sdp")?,
            metadata: self.string("metadata")?,
            extra: self.extra(),
            flags,
        })
    }

    /// rtpengine's checks, in its order: call-id, to-tag, a source.
    fn connect(&self) -> Result<Connect, NgError> {
        let call_id = self.required("call-id", NgError::NO_CALL_ID)?;
        let to_tag = self.required("to-tag", NgError::NO_TO_TAG)?;
        let flags = self.flags()?;
        let from_tags = self.source_tags(&flags)?;
        let all = self.switch(&flags, "all");
        if from_tags.is_empty() && !all {
            return Err(NgError::NO_SOURCE_TAG);
        }
        Ok(Connect {
            call_id,
            from_tags,
            all,
            to_tag,
            to_call_id: self.string("to-call-id")?,
            directional: self.switch(&flags, "directional"),
            bidirectional: self.switch(&flags, "bidirectional"),
            flags,
        })
    }

    fn media_control(&self) -> Result<MediaControl, NgError> {
        let call_id = self.required("call-id", NgError::NO_CALL_ID)?;
        let flags = self.flags()?;
        let from_tag = self.string("from-tag")?;
        let mut from_tags = self.list("from-tags")?;
        from_tags.extend(flags.suffixes("from-tags-").map(str::to_owned));
        Ok(MediaControl {
            call_id,
            from_tag,
            from_tags,
            to_tag: self.string("to-tag")?,
            label: self.string("label")?,
            to_label: self.string("to-label")?,
            directional: self.switch(&flags, "directional"),
            all: self.switch(&flags, "all"),
            flags,
        })
    }
}

/// `-`, `_` and space are one character and case does not matter, in key names and flag words
/// (rtpengine accepts each spelling; Kamailio sends `call-id` but `delete delay`).
pub fn normalise(word: &str) -> String {
    word.chars()
        .map(|c| match c {
            '_' | ' ' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// A value as text: a byte string in UTF-8, or an integer's digits.
fn text(key: &str, v: &Value) -> Result<String, NgError> {
    match v {
        Value::Bytes(b) => String::from_utf8(b.clone())
            .map_err(|_| NgError::new(format!("Invalid value for key \"{key}\": not UTF-8"))),
        Value::Int(i) => Ok(i.to_string()),
        other => Err(wrong_type(key, "a string", other)),
    }
}

fn wrong_type(key: &str, expected: &str, got: &Value) -> NgError {
    NgError::new(format!(
        "Invalid value for key \"{key}\": expected {expected}, got {}",
        got.kind()
    ))
}

/// Kamailio ≥ 6 sends the whole flag string as `rtpp-flags` for the relay to parse, as the
/// module itself does for older versions (docs/ng.md, The wire: keys and flag words):
/// `key=value` is a key, a `replace-…`, `rtcp-mux-…` or `direction=…` word feeds that list, a
/// word with a `/` is the transport protocol, any other word is a flag.
fn expand_rtpp_flags(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut words = Vec::new();
    for token in text.split_ascii_whitespace() {
        let key_of = |k: &str| normalise(k);
        if let Some((k, v)) = token.split_once('=') {
            let key = key_of(k);
            let value = Value::str(v);
            if LIST_KEYS.contains(&key.as_str()) {
                out.push((key, Value::List(vec![value])));
            } else {
                out.push((key, value));
            }
            continue;
        }
        let word = key_of(token);
        if let Some(what) = word.strip_prefix("replace-") {
            out.push(("replace".to_owned(), Value::List(vec![Value::str(what)])));
        } else if let Some(what) = word.strip_prefix("rtcp-mux-") {
            out.push(("rtcp-mux".to_owned(), Value::List(vec![Value::str(what)])));
        } else if token.contains('/') {
            out.push(("transport-protocol".to_owned(), Value::str(token)));
        } else {
            words.push(Value::str(token));
        }
    }
    if !words.is_empty() {
        out.push(("flags".to_owned(), Value::List(words)));
    }
    out
}
