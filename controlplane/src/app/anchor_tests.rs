//! The NG use cases (docs/ng.md) over the recording media double of `tests.rs`: what the media
//! was told, what the records and the store hold, and what each command answers.

use std::net::SocketAddr;
use std::sync::Arc;

use dataplane::media::matrix::LegId;
use dataplane::wire::g711::Codec;

use crate::app::anchors::{AnchorError, Anchored};
use crate::app::engine::Media as _;
use crate::app::snapshots::CallState;
use crate::app::state::{AppState, Settings};
use crate::app::tests::{Command, RecordingMedia, state};
use crate::clock::ManualClock;
use crate::config::Config;
use crate::domain::anchor::{AnchorRefusal, NgId, Signal};
use crate::domain::call::{LegRequest, NewSupervision, Party};
use crate::domain::lifecycle::{Direction, SupervisionState, validate_supervisor_number};
use crate::metrics::Metrics;
use crate::store::SqliteStore;

const CALL: &str = "1-28469@127.0.0.1";
const CALLER: &str = "28469SIPpTag091";
const CALLEE: &str = "28075SIPpTag012";

fn id(s: &str) -> NgId {
    NgId::parse("tag", s).unwrap()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// An offer or answer of `CALL` from `from` (to `to`), its SDP at `remote`.
fn signal(from: &str, to: Option<&str>, remote: &str, codecs: &[Codec]) -> Signal {
    Signal {
        call_id: id(CALL),
        from_tag: id(from),
        to_tag: to.map(id),
        remote: Some(addr(remote)),
        codecs: codecs.to_vec(),
        label: None,
        metadata: None,
    }
}

fn offer() -> Signal {
    signal(CALLER, None, "127.0.0.1:6100", &[Codec::Pcma, Codec::Pcmu])
}

fn answer() -> Signal {
    signal(CALLEE, None, "127.0.0.1:6000", &[Codec::Pcma]).answering(CALLER, CALLEE)
}

trait Answering {
    /// The answer's tags: `from` the offer's sender, `to` the answerer.
    fn answering(self, from: &str, to: &str) -> Signal;
}

impl Answering for Signal {
    fn answering(mut self, from: &str, to: &str) -> Signal {
        self.from_tag = id(from);
        self.to_tag = Some(id(to));
        self
    }
}

fn commands(media: &RecordingMedia) -> Vec<Command> {
    media.commands.lock().unwrap().clone()
}

/// docs/ng.md, Parties: the first offer anchors an inbound call, the offerer (the customer by
/// default) strict on its SDP's address, the agent latching; the answer to write into the SDP
/// passed on is the agent's leg. The call is a call like any other.
#[test]
fn a_first_offer_anchors_a_call_and_answers_the_other_legs_address() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);

    let anchored = state.ng_offer(offer()).unwrap();

    let call = state.call(anchored.call).unwrap();
    assert_eq!(anchored.sender, Party::Customer);
    assert_eq!(anchored.local, call.agent.local.unwrap());
    assert_ne!(call.customer.local, call.agent.local);
    assert_eq!(anchored.codec, Codec::Pcma, "the first G.711 law offered");
    assert_eq!(call.direction, Direction::Inbound);
    assert_eq!(call.customer.remote, Some(addr("127.0.0.1:6100")));
    assert!(!call.customer.latched);
    assert_eq!(
        call.agent.remote, None,
        "the agent latches until the answer"
    );
    assert_eq!(
        (call.customer.codec, call.agent.codec),
        (Codec::Pcma, Codec::Pcma)
    );
    assert_eq!(
        commands(&media),
        [Command::CreateCall(state.engine_call(call.id).unwrap())]
    );
    // Supervisable over HTTP: listed, and found by its NG call-id.
    assert!(state.calls().iter().any(|c| c.id == call.id));
    let found = state.calls_by_ng_call_id(CALL);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, call.id);
    assert!(state.calls_by_ng_call_id("other@host").is_empty());
}

/// docs/ng.md, Retransmissions: the same offer again (another SIP worker, or the module's
/// retransmission after the answer) keeps the ports; a re-offer with a new address moves
/// only that leg's remote.
#[test]
fn re_offers_keep_the_ports_and_update_the_senders_remote() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let first = state.ng_offer(offer()).unwrap();
    let engine_call = state.engine_call(first.call).unwrap();

    assert_eq!(
        state.ng_offer(offer()).unwrap(),
        first,
        "the same offer again"
    );
    state.ng_answer(answer()).unwrap();
    assert_eq!(
        state.ng_offer(offer()).unwrap(),
        first,
        "the first offer retransmitted after the answer"
    );
    let moved = signal(CALLER, Some(CALLEE), "127.0.0.1:6200", &[Codec::Pcma]);
    assert_eq!(state.ng_offer(moved).unwrap(), first, "same local address");

    let call = state.call(first.call).unwrap();
    assert_eq!(call.customer.remote, Some(addr("127.0.0.1:6200")));
    assert_eq!(
        commands(&media),
        [
            Command::CreateCall(engine_call),
            Command::SetRemote(engine_call, LegId::AGENT, addr("127.0.0.1:6000")),
            Command::SetRemote(engine_call, LegId::CUSTOMER, addr("127.0.0.1:6200")),
        ],
        "one call; each remote set once"
    );
}

/// research: an INVITE retransmission picked up by another worker can arrive with a tag the
/// call does not know while it is unanswered: the same answer, nothing changed.
#[test]
fn an_unknown_tag_before_the_answer_gets_the_first_offers_answer() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let first = state.ng_offer(offer()).unwrap();
    let other = signal("worker-2", None, "127.0.0.1:7000", &[Codec::Pcmu]);
    assert_eq!(state.ng_offer(other).unwrap(), first);
    assert_eq!(media.calls(), 1);
    assert_eq!(
        state.call(first.call).unwrap().customer.remote,
        Some(addr("127.0.0.1:6100")),
        "unchanged"
    );

    // Once answered, an unknown tag is refused.
    state.ng_answer(answer()).unwrap();
    let stranger = signal("stranger", None, "127.0.0.1:7000", &[Codec::Pcma]);
    assert!(matches!(
        state.ng_offer(stranger),
        Err(AnchorError::Refused(AnchorRefusal::UnknownTag { .. }))
    ));
}

/// The answer: the answerer's remote; answers the offerer's local address; a repeated answer
/// (a 200 OK retransmission) answers the same and changes nothing.
#[test]
fn the_answer_sets_the_answerers_remote_and_repeats_idempotently() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let offered = state.ng_offer(offer()).unwrap();

    let answered = state.ng_answer(answer()).unwrap();
    let call = state.call(offered.call).unwrap();
    assert_eq!(answered.call, offered.call);
    assert_eq!(answered.sender, Party::Agent);
    assert_eq!(answered.local, call.customer.local.unwrap());
    assert_eq!(call.agent.remote, Some(addr("127.0.0.1:6000")));
    assert!(!call.agent.latched);

    let before = commands(&media).len();
    assert_eq!(state.ng_answer(answer()).unwrap(), answered);
    assert_eq!(
        commands(&media).len(),
        before,
        "nothing more told to the media"
    );

    let q = state.ng_query(&id(CALL), Some(&id(CALLEE))).unwrap();
    assert_eq!(
        q.tags,
        vec![(id(CALLER), Party::Customer), (id(CALLEE), Party::Agent)]
    );
}

#[test]
fn an_answer_to_an_unknown_call_is_refused() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    assert!(matches!(
        state.ng_answer(answer()),
        Err(AnchorError::UnknownCall(c)) if c.as_str() == CALL
    ));
    assert!(commands(&media).is_empty());
}

/// docs/ng.md, Parties: `label=agent` on the offer makes the offerer the agent (an outbound
/// call); `metadata=agent:<id>` on the answer names the agent, as `agent_id` does over HTTP.
#[test]
fn labels_choose_the_party_and_metadata_names_the_agent() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let mut agent_offers = offer();
    agent_offers.label = Some("agent".to_owned());
    let offered = state.ng_offer(agent_offers).unwrap();
    let call = state.call(offered.call).unwrap();
    assert_eq!(offered.sender, Party::Agent);
    assert_eq!(call.direction, Direction::Outbound);
    assert_eq!(call.agent.remote, Some(addr("127.0.0.1:6100")));
    assert_eq!(offered.local, call.customer.local.unwrap());
    assert_eq!(call.agent_id, None);

    let mut customer_answers = answer();
    customer_answers.label = Some("agent".to_owned());
    customer_answers.metadata = Some("queue=7|agent:1234".to_owned());
    let answered = state.ng_answer(customer_answers).unwrap();
    assert_eq!(answered.sender, Party::Customer);
    assert_eq!(answered.warnings.len(), 1, "{:?}", answered.warnings);
    let call = state.call(offered.call).unwrap();
    assert_eq!(call.agent_id.as_deref(), Some("1234"));
    assert_eq!(call.customer.remote, Some(addr("127.0.0.1:6000")));

    // Another agent id later is a warning, not a change.
    let mut again = offer();
    again.metadata = Some("agent:999".to_owned());
    let reoffer = state.ng_offer(again).unwrap();
    assert_eq!(reoffer.warnings.len(), 1);
    assert_eq!(
        state.call(offered.call).unwrap().agent_id.as_deref(),
        Some("1234")
    );

    let mut bad = offer();
    bad.metadata = Some("agent:no spaces".to_owned());
    assert!(matches!(
        state.ng_offer(bad),
        Err(AnchorError::Refused(AnchorRefusal::InvalidAgent { .. }))
    ));
}

/// docs/ng.md, delete: by either party's tag (a BYE from the callee carries the callee's),
/// the whole call as `DELETE /v1/calls/{id}`, its supervisions aborted; the answer carries the
/// call as it ended. Afterwards the call-id names nothing.
#[test]
fn delete_by_either_tag_tears_down_the_call_and_its_supervisions() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let offered = state.ng_offer(offer()).unwrap();
    state.ng_answer(answer()).unwrap();
    let number = "+15550100";
    let sup = state
        .create_supervision(
            offered.call,
            NewSupervision {
                supervisor: LegRequest::default(),
                supervisor_id: Some("sup-1".to_owned()),
                registered_number: Some(validate_supervisor_number(number).unwrap()),
                answered: Some(number.to_owned()),
                ..NewSupervision::default()
            },
            &crate::app::rights::Requester::Admin,
        )
        .unwrap();
    assert_eq!(sup.state, SupervisionState::Active);

    assert!(matches!(
        state.ng_delete(&id(CALL), Some(&id("stranger"))),
        Err(AnchorError::UnknownCall(_))
    ));
    let deleted = state.ng_delete(&id(CALL), Some(&id(CALLEE))).unwrap();

    assert_eq!(deleted.call.id, offered.call);
    assert_eq!(deleted.call.state, CallState::Ended);
    assert_eq!(deleted.tags.len(), 2);
    let sup = state.supervision(sup.id).unwrap();
    assert_eq!(sup.state, SupervisionState::Aborted);
    assert_eq!(sup.abort.as_deref(), Some("call_deleted"));
    assert!(media.held.lock().unwrap().is_empty(), "no media left held");
    for lookup in [
        state.ng_query(&id(CALL), None).map(|_| ()),
        state.ng_delete(&id(CALL), None).map(|_| ()),
    ] {
        assert!(matches!(lookup, Err(AnchorError::UnknownCall(_))));
    }
    assert!(state.call(offered.call).is_err(), "deleted as over HTTP");
    // The call-id may be used again: a new call.
    let again = state.ng_offer(offer()).unwrap();
    assert_ne!(again.call, offered.call);
}

/// A call deleted over HTTP is gone for NG too.
#[test]
fn an_ng_call_deleted_over_http_is_unknown_to_ng() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let offered = state.ng_offer(offer()).unwrap();
    state.delete_call(offered.call).unwrap();
    assert!(matches!(
        state.ng_answer(answer()),
        Err(AnchorError::UnknownCall(_))
    ));
    assert!(state.ng_list(32).is_empty());
}

#[test]
fn query_and_list_show_the_live_ng_calls() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let clock_start = state.clock().now_ms();
    state.ng_offer(offer()).unwrap();
    let mut second = offer();
    second.call_id = id("2@host");
    state.ng_offer(second).unwrap();
    state.create_call(Default::default()).unwrap();

    assert_eq!(state.ng_list(32), vec![id(CALL), id("2@host")]);
    assert_eq!(state.ng_list(1), vec![id(CALL)]);
    assert!(state.ng_list(0).is_empty());

    let q = state.ng_query(&id(CALL), None).unwrap();
    assert_eq!(q.ng_call_id, id(CALL));
    assert_eq!(q.tags, vec![(id(CALLER), Party::Customer)]);
    assert_eq!(q.call.state, CallState::Active);
    assert_eq!(q.call.created_at_ms, clock_start);
    assert_eq!(q.last_signal_ms, clock_start);
    assert!(matches!(
        state.ng_query(&id("nope"), None),
        Err(AnchorError::UnknownCall(_))
    ));
}

/// docs/design.md §7: over capacity is its own error (the adapter answers `load limit`), and
/// the calls already anchored keep their media.
#[test]
fn over_capacity_is_its_own_error() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let first = state.ng_offer(offer()).unwrap();
    *media.capacity.lock().unwrap() = Some(1);
    let mut second = offer();
    second.call_id = id("2@host");
    assert!(matches!(
        state.ng_offer(second),
        Err(AnchorError::OverCapacity(_))
    ));
    assert_eq!(state.ng_list(32), vec![id(CALL)]);
    assert_eq!(state.ng_answer(answer()).unwrap().call, first.call);
}

/// docs/design.md §1 codecs: the engine relays and mixes G.711 only; a call without it is
/// refused before any media is taken, and a leg keeps its law.
#[test]
fn calls_without_g711_are_refused_and_a_leg_keeps_its_law() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let g722_only = signal(CALLER, None, "127.0.0.1:6100", &[]);
    assert!(matches!(
        state.ng_offer(g722_only),
        Err(AnchorError::Refused(AnchorRefusal::NoMixableCodec))
    ));
    assert!(commands(&media).is_empty());

    state.ng_offer(offer()).unwrap();
    let pcmu_only =
        signal(CALLEE, None, "127.0.0.1:6000", &[Codec::Pcmu]).answering(CALLER, CALLEE);
    assert!(matches!(
        state.ng_answer(pcmu_only),
        Err(AnchorError::Refused(AnchorRefusal::CodecChange { .. }))
    ));
}

fn file_state(media: &Arc<RecordingMedia>, path: &std::path::Path, at_ms: u64) -> AppState {
    let registry = prometheus::Registry::new();
    AppState::new(
        media.clone(),
        Metrics::new(&registry).unwrap(),
        Settings::from_config(&Config::default()),
        Arc::new(SqliteStore::open(path).unwrap()),
        Arc::new(ManualClock::new(at_ms)),
    )
    .unwrap()
}

/// docs/design.md §7: after a restart the NG calls are found again by call-id and tags (ended:
/// their media did not survive), so a late `delete` or `query` is answered; the call-id can
/// anchor a new call.
#[test]
fn ng_calls_are_reloaded_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    let media = Arc::new(RecordingMedia::default());
    let before: Anchored;
    {
        let state = file_state(&media, &path, 1_700_000_000_000);
        before = state.ng_offer(offer()).unwrap();
        state.ng_answer(answer()).unwrap();
    }

    let media = Arc::new(RecordingMedia::default());
    let state = file_state(&media, &path, 1_700_000_060_000);
    let q = state.ng_query(&id(CALL), Some(&id(CALLER))).unwrap();
    assert_eq!(q.call.id, before.call);
    assert_eq!(q.call.state, CallState::Ended);
    assert_eq!(
        q.tags,
        vec![(id(CALLER), Party::Customer), (id(CALLEE), Party::Agent)]
    );
    assert_eq!(q.last_signal_ms, 1_700_000_000_000);
    assert_eq!(state.calls_by_ng_call_id(CALL).len(), 1);
    assert!(state.ng_list(32).is_empty(), "no live NG call");
    assert!(matches!(
        state.ng_answer(answer()),
        Err(AnchorError::UnknownCall(_))
    ));

    let deleted = state.ng_delete(&id(CALL), Some(&id(CALLEE))).unwrap();
    assert_eq!(deleted.call.id, before.call);
    let again = state.ng_offer(offer()).unwrap();
    assert_ne!(again.call, before.call);
    assert_eq!(state.ng_list(32), vec![id(CALL)]);
}

/// docs/ng.md, Retransmissions: SIP workers send the same offer in parallel (the INVITE
/// retransmission picked up while the first offer runs); decided one after the other under the
/// records lock, they anchor one call and all get its answer.
#[test]
fn parallel_offers_of_one_call_anchor_it_once() {
    let media = Arc::new(RecordingMedia::default());
    let state = state(&media);
    let start = Arc::new(std::sync::Barrier::new(8));
    let answers: Vec<Anchored> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let (state, start) = (state.clone(), start.clone());
                s.spawn(move || {
                    start.wait();
                    state.ng_offer(offer()).unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    assert_eq!(media.calls(), 1);
    assert_eq!(state.calls().len(), 1);
}
