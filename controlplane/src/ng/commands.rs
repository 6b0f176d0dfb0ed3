//! NG command dispatch (docs/ng.md, Commands): a request body, parsed by [`message`], runs the
//! application's NG use cases (`AppState::ng_offer` …) and their answers become a [`Reply`],
//! offers' and answers' SDP rewritten by [`sdp`] toward the appliance. No rule lives here: the
//! use cases decide, this module translates (docs/design.md §9).

use std::net::IpAddr;
use std::sync::Arc;

use crate::app::anchors::{AnchorError, NgCallSnapshot};
use crate::app::snapshots::LegSnapshot;
use crate::app::state::AppState;
use crate::app::storage::Storage;
use crate::domain::anchor::{NgId, Signal, other};
use crate::domain::call::Party;
use crate::ng::bencode::Value;
use crate::ng::listener::{Answer, Dispatch};
use crate::ng::message::{self, Command, Delete, Format, NgError, Offer, Reply, Target};
use crate::ng::sdp::{self, Rewrite};

/// The `command` label of a request that could not be read (no command, bad bencode, …).
const UNREAD: &str = "invalid";

/// The dispatch the NG listener runs for each request, over `state`.
pub fn dispatcher(state: AppState) -> Dispatch {
    Arc::new(move |body: &[u8]| handle(&state, body))
}

/// A store commit that could not be made durable: the answer is an error, as over HTTP.
struct NotDurable(Storage);

impl From<Storage> for NotDurable {
    fn from(err: Storage) -> NotDurable {
        NotDurable(err)
    }
}

/// Runs one request body and answers it (blocking: the listener calls it on the blocking
/// pool). The answer waits until the commits it made are durable (group commit,
/// [`AppState::deferred`]), like an HTTP answer.
pub fn handle(state: &AppState, body: &[u8]) -> Answer {
    let request = match message::parse(body) {
        Ok(request) => request,
        Err(err) => {
            tracing::debug!(%err, "unreadable NG request");
            let reply = err.reply();
            return Answer {
                body: reply.encode_as(Format::of(body)),
                command: UNREAD,
                result: reply.result(),
            };
        }
    };
    let command = request.command.name();
    let reply = match state.deferred(|s| Ok::<_, NotDurable>(run(s, request.command))) {
        Ok(reply) => reply,
        Err(NotDurable(err)) => {
            tracing::error!(%err, command, "an NG command's commit is not durable");
            Reply::Error(format!("storage: {err}"))
        }
    };
    Answer {
        body: reply.encode_as(request.format),
        command,
        result: reply.result(),
    }
}

fn run(state: &AppState, command: Command) -> Reply {
    match command {
        Command::Ping => Reply::Pong,
        Command::Offer(offer) => signal(state, offer, false),
        Command::Answer(answer) => signal(state, answer, true),
        Command::Delete(delete) => self::delete(state, delete),
        Command::Query(target) => query(state, target),
        Command::List { limit } => list(state, limit),
        other => Reply::Error(format!(
            "{} is not supported by this relay yet (docs/ng.md, Commands)",
            other.name()
        )),
    }
}

/// An NG id from the request, or rtpengine's error for a missing one.
fn ng_id(field: &'static str, value: &str, missing: NgError) -> Result<NgId, Reply> {
    if value.is_empty() {
        return Err(missing.reply());
    }
    NgId::parse(field, value).map_err(|e| Reply::Error(e.to_string()))
}

fn optional_id(field: &'static str, value: Option<&str>) -> Result<Option<NgId>, Reply> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| NgId::parse(field, v).map_err(|e| Reply::Error(e.to_string())))
        .transpose()
}

/// `offer` and `answer`: the SDP read, the use case run, the SDP rewritten to the leg the
/// other party sends to.
fn signal(state: &AppState, request: Offer, is_answer: bool) -> Reply {
    match try_signal(state, &request, is_answer) {
        Ok(reply) | Err(reply) => reply,
    }
}

fn try_signal(state: &AppState, request: &Offer, is_answer: bool) -> Result<Reply, Reply> {
    if request.sdp.is_empty() {
        return Err(NgError::NO_SDP.reply());
    }
    let call_id = ng_id("call-id", &request.call_id, NgError::NO_CALL_ID)?;
    let from_tag = ng_id("from-tag", &request.from_tag, NgError::NO_FROM_TAG)?;
    let to_tag = optional_id("to-tag", request.to_tag.as_deref())?;
    // SDP errors are one line starting with rtpengine's `Failed to parse SDP` for syntax, or
    // naming what is refused (docs/ng.md, SDP).
    let parsed = sdp::parse(&request.sdp).map_err(|e| Reply::Error(e.to_string()))?;
    let audio = parsed.audio().map_err(|e| Reply::Error(e.to_string()))?;
    let remote = audio.remote;
    let signal = Signal {
        call_id,
        from_tag,
        to_tag,
        // `c=0.0.0.0` (hold, RFC 3264 §8.4) or port 0 names no address to send to.
        remote: (!remote.ip().is_unspecified() && remote.port() != 0).then_some(remote),
        codecs: audio.codecs(),
        label: request.label.clone(),
        metadata: request.metadata.clone(),
    };
    let anchored = if is_answer {
        state.ng_answer(signal)
    } else {
        state.ng_offer(signal)
    };
    let anchored = anchored.map_err(|e| refusal(e, request.supports_load_limit, true))?;
    // The other party is offered the sender leg's law only (plus telephone-event): the leg's
    // codec is fixed for the call (docs/ng.md, Codecs), so a compliant answer must pick it.
    let how = Rewrite {
        codec: Some(anchored.codec),
        ..Rewrite::from_replace(&request.replace)
    };
    let rewritten = parsed.rewrite(anchored.local, &how);
    let mut reply = Reply::Ok(vec![("sdp", Value::Bytes(rewritten))]);
    if !anchored.warnings.is_empty() {
        reply = reply.with_warning(anchored.warnings.join("; "));
    }
    Ok(reply)
}

/// A use case's refusal as NG words it. Over capacity is `load limit` for a client that takes
/// it (docs/design.md §7), else rtpengine's `Ran out of ports`, on which Kamailio fails over
/// too; an unknown call is `Unknown call-id` on offer and answer, `Unknown call-ID` elsewhere
/// (rtpengine's two spellings).
fn refusal(err: AnchorError, supports_load_limit: bool, offer_path: bool) -> Reply {
    match err {
        AnchorError::UnknownCall(_) if offer_path => NgError::UNKNOWN_CALL_ID.reply(),
        AnchorError::UnknownCall(_) => NgError::UNKNOWN_CALL_ID_OTHER.reply(),
        AnchorError::OverCapacity(e) => {
            tracing::info!(err = %e, "NG call refused: over capacity");
            if supports_load_limit {
                Reply::LoadLimit
            } else {
                NgError::OUT_OF_PORTS.reply()
            }
        }
        AnchorError::Refused(e) => Reply::Error(e.to_string()),
        AnchorError::State(e) => {
            tracing::warn!(err = %e, "NG command failed");
            Reply::Error(e.to_string())
        }
        AnchorError::Storage(e) => {
            tracing::error!(err = %e, "an NG command's commit is not durable");
            Reply::Error(format!("storage: {e}"))
        }
    }
}

/// `delete`: the whole call, by call-id and either party's tag. An unknown call is `ok` with a
/// warning, or an error with `fatal`; the call's statistics follow unless `fast`.
fn delete(state: &AppState, request: Delete) -> Reply {
    let ids = ng_id("call-id", &request.call_id, NgError::NO_CALL_ID).and_then(|call_id| {
        // rtpengine honours the to-tag only with the `to-tag` flag; the from-tag names the
        // party that hung up, caller or callee, and either deletes the whole call.
        let tag = optional_id("from-tag", request.from_tag.as_deref())?;
        Ok((call_id, tag))
    });
    let (call_id, tag) = match ids {
        Ok(ids) => ids,
        Err(reply) => return reply,
    };
    match state.ng_delete(&call_id, tag.as_ref()) {
        Ok(_) if request.fast => Reply::Ok(Vec::new()),
        Ok(snapshot) => Reply::Ok(statistics(&snapshot)),
        Err(AnchorError::UnknownCall(_)) if request.fatal => NgError::DELETE_NOT_FOUND.reply(),
        Err(AnchorError::UnknownCall(_)) => Reply::warning(NgError::DELETE_NOT_FOUND.reason()),
        Err(err) => refusal(err, false, false),
    }
}

/// `query`: the call's statistics, the shape Kamailio's `$rtpstat` reads.
fn query(state: &AppState, request: Target) -> Reply {
    let call_id = match ng_id("call-id", &request.call_id, NgError::NO_CALL_ID) {
        Ok(id) => id,
        Err(reply) => return reply,
    };
    let tag = match optional_id("from-tag", request.from_tag.as_deref()) {
        Ok(tag) => tag,
        Err(reply) => return reply,
    };
    match state.ng_query(&call_id, tag.as_ref()) {
        Ok(snapshot) => Reply::Ok(statistics(&snapshot)),
        Err(err) => refusal(err, false, false),
    }
}

/// `list`: the active NG calls' call-ids.
fn list(state: &AppState, limit: usize) -> Reply {
    let calls = state
        .ng_list(limit)
        .into_iter()
        .map(|id| Value::Bytes(id.as_str().as_bytes().to_vec()))
        .collect();
    Reply::Ok(vec![("calls", Value::List(calls))])
}

fn int(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn text(s: &str) -> Value {
    Value::Bytes(s.as_bytes().to_vec())
}

fn dict(pairs: Vec<(&str, Value)>) -> Value {
    Value::Dict(
        pairs
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
    )
}

/// `bytes`, `packets`, `errors`: what `$rtpstat` prints for RTP and RTCP.
fn counters(bytes: u64, packets: u64, errors: u64) -> Value {
    dict(vec![
        ("bytes", int(bytes)),
        ("packets", int(packets)),
        ("errors", int(errors)),
    ])
}

/// The keys of a `query` (and `delete`) answer, in rtpengine's spelling (clients look them up
/// literally): `created`, `last signal` (Unix seconds), `tags` with each party's media stream
/// (local port, endpoint, what it sent us), and `totals` with `RTP` and `RTCP`, both required
/// by Kamailio's `$rtpstat`. RTP counts what the parties sent to the appliance; RTCP is
/// terminated per leg (docs/media.md) and not counted here, so its counters are zero.
fn statistics(snapshot: &NgCallSnapshot) -> Vec<(&'static str, Value)> {
    let call = &snapshot.call;
    let created_s = call.created_at_ms / 1000;
    let leg = |party: Party| match party {
        Party::Customer => &call.customer,
        Party::Agent => &call.agent,
    };
    let tag_of = |party: Party| {
        snapshot
            .tags
            .iter()
            .find(|(_, p)| *p == party)
            .map(|(t, _)| t.as_str())
    };
    let mut tags = Vec::with_capacity(snapshot.tags.len());
    for (tag, party) in &snapshot.tags {
        let mut entry = vec![
            ("tag", text(tag.as_str())),
            ("label", text(party.as_str())),
            ("created", int(created_s)),
        ];
        if let Some(peer) = tag_of(other(*party)) {
            entry.push(("in dialogue with", text(peer)));
        }
        entry.push((
            "medias",
            Value::List(vec![dict(vec![
                ("index", Value::Int(1)),
                ("type", text("audio")),
                ("protocol", text("RTP/AVP")),
                ("streams", Value::List(vec![stream(leg(*party))])),
            ])]),
        ));
        tags.push((tag.as_str().as_bytes().to_vec(), dict(entry)));
    }
    let (bytes, packets, errors) =
        [&call.customer, &call.agent]
            .iter()
            .fold((0, 0, 0), |(b, p, e), l| {
                (
                    b + l.stats.bytes_in,
                    p + l.stats.packets_in,
                    e + l.stats.packets_dropped,
                )
            });
    vec![
        ("created", int(created_s)),
        ("last signal", int(snapshot.last_signal_ms / 1000)),
        ("tags", Value::Dict(tags)),
        (
            "totals",
            dict(vec![
                ("RTP", counters(bytes, packets, errors)),
                ("RTCP", counters(0, 0, 0)),
            ]),
        ),
    ]
}

/// One party's stream: the appliance's port it sends to, its address, what it sent.
fn stream(leg: &LegSnapshot) -> Value {
    let mut pairs = Vec::new();
    if let Some(local) = leg.local {
        pairs.push(("local port", int(u64::from(local.port()))));
    }
    if let Some(remote) = leg.remote {
        let family = match remote.ip() {
            IpAddr::V4(_) => "IPv4",
            IpAddr::V6(_) => "IPv6",
        };
        pairs.push((
            "endpoint",
            dict(vec![
                ("family", text(family)),
                ("address", text(&remote.ip().to_string())),
                ("port", int(u64::from(remote.port()))),
            ]),
        ));
    }
    let mut flags = vec![text("RTP")];
    if leg.stats.packets_in > 0 {
        flags.push(text("confirmed"));
    }
    pairs.push(("flags", Value::List(flags)));
    pairs.push((
        "stats",
        counters(
            leg.stats.bytes_in,
            leg.stats.packets_in,
            leg.stats.packets_dropped,
        ),
    ));
    dict(pairs)
}
