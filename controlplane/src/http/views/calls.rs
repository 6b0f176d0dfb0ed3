//! What the API shows of calls, supervisions, alerts and audit records (docs/api.md, Calls,
//! Supervisions, Alerts and audit): the JSON of the use cases' snapshots and records, and the
//! schemas the OpenAPI document names `Call`, `Leg`, `Stats`, `Supervision`, `Alert` and
//! `AuditRecord`.

use std::net::SocketAddr;

use dataplane::engine::LegStats;
use dataplane::media::call::DropReason;
use dataplane::media::matrix::Mode;
use serde::Serialize;

use crate::app::snapshots::{self, CallSnapshot, LegSnapshot, SupervisionSnapshot};
use crate::domain::call::{CallId, SupervisionId};
use crate::domain::lifecycle::SupervisionState;
use crate::domain::log::{AlertRecord, AuditRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    Active,
    Ended,
}

impl From<snapshots::CallState> for CallState {
    fn from(state: snapshots::CallState) -> CallState {
        match state {
            snapshots::CallState::Active => CallState::Active,
            snapshots::CallState::Ended => CallState::Ended,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct Flags {
    pub on_hold: bool,
    pub consult: bool,
    pub secure_payment: bool,
    pub conference: bool,
}

impl From<snapshots::Flags> for Flags {
    fn from(f: snapshots::Flags) -> Flags {
        Flags {
            on_hold: f.on_hold,
            consult: f.consult,
            secure_payment: f.secure_payment,
            conference: f.conference,
        }
    }
}

/// Which parties of a call have hung up (the call ends when both have).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
pub struct HungUp {
    pub customer: bool,
    pub agent: bool,
}

impl From<snapshots::HungUp> for HungUp {
    fn from(h: snapshots::HungUp) -> HungUp {
        HungUp {
            customer: h.customer,
            agent: h.agent,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, utoipa::ToSchema)]
#[schema(as = Stats)]
pub struct StatsView {
    pub packets_in: u64,
    pub bytes_in: u64,
    pub packets_out: u64,
    pub bytes_out: u64,
    /// RFC 3550 cumulative loss (may be negative with duplicates).
    pub packets_lost: i64,
    /// RFC 3550 §A.8 interarrival jitter.
    pub jitter_ms: f64,
    pub packets_dropped: u64,
    /// `packets_dropped` by reason (docs/api.md, "Metrics": the media reasons).
    #[serde(default)]
    #[schema(inline, required = true)]
    pub dropped: DroppedView,
}

/// A leg's drops by reason, as a JSON object with one count per media drop reason (every
/// reason present, zero included, so clients need no defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DroppedView(pub [u64; DropReason::COUNT]);

impl DroppedView {
    /// The count for `reason`.
    pub fn of(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }
}

impl Serialize for DroppedView {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(DropReason::COUNT))?;
        for reason in DropReason::ALL {
            map.serialize_entry(reason.as_str(), &self.of(reason))?;
        }
        map.end()
    }
}

impl From<LegStats> for StatsView {
    fn from(s: LegStats) -> StatsView {
        StatsView {
            packets_in: s.packets_in,
            bytes_in: s.bytes_in,
            packets_out: s.packets_out,
            bytes_out: s.bytes_out,
            packets_lost: s.packets_lost,
            jitter_ms: s.jitter_ms,
            packets_dropped: s.packets_dropped,
            dropped: DroppedView(s.dropped),
        }
    }
}

/// Where a leg's remote address came from (docs/media.md, Source checking).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteSource {
    /// Given by the softswitch (the create request, or `PATCH …/legs/{party}`): strict source.
    Configured,
    /// Not given: the leg latched to the first source it heard and is locked to it.
    Latched,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Leg)]
pub struct LegView {
    /// The appliance's media address for this party; `null` for a supervisor's leg whose media
    /// is not connected (yet, or ever).
    #[schema(value_type = Option<String>, required = true)]
    pub local: Option<SocketAddr>,
    /// The party's address: configured, or latched; `null` while a latching leg has heard
    /// nothing.
    #[schema(value_type = Option<String>, required = true)]
    pub remote: Option<SocketAddr>,
    /// How `remote` was learnt; `null` with it.
    #[schema(value_type = Option<String>, required = true)]
    pub remote_source: Option<RemoteSource>,
    pub codec: &'static str,
    /// The party is on hold (`hold` call event): its silence is judged by
    /// `media.silent_timeout_secs`, not `media.timeout_secs`.
    pub held: bool,
    pub stats: StatsView,
}

impl From<LegSnapshot> for LegView {
    fn from(leg: LegSnapshot) -> LegView {
        LegView {
            local: leg.local,
            remote: leg.remote,
            remote_source: leg.remote.map(|_| {
                if leg.latched {
                    RemoteSource::Latched
                } else {
                    RemoteSource::Configured
                }
            }),
            codec: leg.codec.name(),
            held: leg.held,
            stats: StatsView::from(leg.stats),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LegsView {
    pub customer: LegView,
    pub agent: LegView,
}

/// A call as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Call)]
pub struct CallView {
    #[schema(inline)]
    pub id: CallId,
    #[schema(inline)]
    pub state: CallState,
    pub direction: &'static str,
    #[schema(required = true)]
    pub agent_id: Option<String>,
    pub web: bool,
    pub agent_answered: bool,
    #[schema(inline)]
    pub flags: Flags,
    #[schema(inline)]
    pub hung_up: HungUp,
    #[schema(inline)]
    pub legs: LegsView,
    /// Every supervision of the call, open and ended, oldest first.
    #[schema(inline)]
    pub supervisions: Vec<SupervisionId>,
    pub created_at_ms: u64,
    #[schema(required = true)]
    pub ended_at_ms: Option<u64>,
}

impl From<CallSnapshot> for CallView {
    fn from(c: CallSnapshot) -> CallView {
        CallView {
            id: c.id,
            state: c.state.into(),
            direction: c.direction.as_str(),
            agent_id: c.agent_id,
            web: c.web,
            agent_answered: c.agent_answered,
            flags: c.flags.into(),
            hung_up: c.hung_up.into(),
            legs: LegsView {
                customer: c.customer.into(),
                agent: c.agent.into(),
            },
            supervisions: c.supervisions,
            created_at_ms: c.created_at_ms,
            ended_at_ms: c.ended_at_ms,
        }
    }
}

/// A supervision as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Supervision)]
pub struct SupervisionView {
    #[schema(inline)]
    pub id: SupervisionId,
    #[schema(inline)]
    pub call_id: CallId,
    #[schema(value_type = String)]
    pub state: SupervisionState,
    /// The current mode (`listen` until media connects), or the last one once ended.
    pub mode: &'static str,
    /// Why it failed (state `failed`): `agent_not_ready`, `no_call_to_monitor`,
    /// `supervisor_didnt_answer`, `supervisor_number_invalid`, `no_permission`,
    /// `monitoring_failed`.
    #[schema(required = true)]
    pub failure: Option<String>,
    /// Why it was aborted (state `aborted`): `agent_held_call`, `agent_hung_up`,
    /// `caller_hung_up`, `supervisor_hung_up`, `call_deleted`, `restart`.
    #[schema(required = true)]
    pub abort: Option<String>,
    #[schema(required = true)]
    pub supervisor_id: Option<String>,
    #[schema(required = true)]
    pub agent_id: Option<String>,
    /// Its digits, without `+`.
    #[schema(required = true)]
    pub registered_number: Option<String>,
    pub beep: bool,
    /// Follows the agent to their next calls; `call_id` is the call attached last.
    pub persistent: bool,
    pub leg: LegView,
    pub created_at_ms: u64,
    /// When the supervisor's leg was answered (media connected, or the no-call message).
    #[schema(required = true)]
    pub started_at_ms: Option<u64>,
    #[schema(required = true)]
    pub ended_at_ms: Option<u64>,
}

impl From<SupervisionSnapshot> for SupervisionView {
    fn from(s: SupervisionSnapshot) -> SupervisionView {
        SupervisionView {
            id: s.id,
            call_id: s.call_id,
            state: s.state,
            mode: s.mode.as_str(),
            failure: s.failure,
            abort: s.abort,
            supervisor_id: s.supervisor_id,
            agent_id: s.agent_id,
            registered_number: s.registered_number,
            beep: s.beep,
            persistent: s.persistent,
            leg: s.leg.into(),
            created_at_ms: s.created_at_ms,
            started_at_ms: s.started_at_ms,
            ended_at_ms: s.ended_at_ms,
        }
    }
}

/// An alert record (docs/design.md §2.6) as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = Alert, description = "An alert record.")]
pub struct AlertView {
    #[schema(minimum = 1)]
    pub id: i64,
    /// `monitoring_initiated`, `monitoring_stopped`, `failed_*`, `monitoring_failed`, `aborted_*`,
    /// `aborted` (docs/api.md).
    pub kind: String,
    pub text: String,
    #[schema(required = true)]
    pub reason: Option<String>,
    #[schema(required = true)]
    pub supervision_id: Option<String>,
    #[schema(required = true)]
    pub call_id: Option<String>,
    #[schema(minimum = 0)]
    pub at_ms: i64,
}

impl From<AlertRecord> for AlertView {
    fn from(a: AlertRecord) -> AlertView {
        AlertView {
            id: a.id.0,
            kind: a.kind,
            text: a.text,
            reason: a.reason,
            supervision_id: a.supervision_id,
            call_id: a.call_id,
            at_ms: a.at.0,
        }
    }
}

/// An audit record (docs/design.md §4.5) as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = AuditRecord, description = "An audit record.")]
pub struct AuditView {
    #[schema(minimum = 1)]
    pub id: i64,
    #[schema(minimum = 0)]
    pub at_ms: i64,
    /// `user:<id>`, `token:<id>`, `api` or `system`.
    pub actor: String,
    /// `supervision.start`, `.mode_change`, `.stop`, `.denial`, `.failure`, `.abort`;
    /// `grant.create`, `grant.revoke`.
    pub action: String,
    #[schema(required = true)]
    pub supervision_id: Option<String>,
    #[schema(required = true)]
    pub call_id: Option<String>,
    /// The supervision mode, if the action has one.
    #[schema(required = true)]
    pub mode: Option<&'static str>,
    /// `ok`, `denied`, `failed` or `aborted`.
    pub outcome: String,
    #[schema(required = true)]
    pub detail: Option<String>,
}

impl From<AuditRecord> for AuditView {
    fn from(a: AuditRecord) -> AuditView {
        AuditView {
            id: a.id.0,
            at_ms: a.at.0,
            actor: a.actor,
            action: a.action,
            supervision_id: a.supervision_id,
            call_id: a.call_id,
            mode: a.mode.map(Mode::as_str),
            outcome: a.outcome,
            detail: a.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use dataplane::wire::g711::Codec;
    use serde_json::json;

    use super::*;
    use crate::app::snapshots::{Flags as CallFlags, HungUp as CallHungUp};
    use crate::domain::lifecycle::Direction;
    use crate::domain::log::{AuditId, UnixMs};

    fn leg(remote: Option<&str>, latched: bool) -> LegSnapshot {
        let mut stats = LegStats {
            packets_in: 3,
            packets_dropped: 2,
            ..LegStats::default()
        };
        stats.dropped[DropReason::WrongSource.index()] = 2;
        LegSnapshot {
            local: Some("127.0.0.1:20000".parse().unwrap()),
            remote: remote.map(|r| r.parse().unwrap()),
            latched,
            codec: Codec::Pcma,
            held: true,
            stats,
        }
    }

    /// docs/api.md, Calls: every field of a call, nulls included, and where each leg's remote
    /// came from (docs/media.md, Source checking).
    #[test]
    fn a_call_renders_every_documented_field() {
        let call = CallSnapshot {
            id: CallId::from_u64(0xab),
            state: snapshots::CallState::Ended,
            direction: Direction::Outbound,
            agent_id: None,
            web: false,
            agent_answered: true,
            flags: CallFlags {
                consult: true,
                ..CallFlags::default()
            },
            hung_up: CallHungUp {
                customer: true,
                agent: false,
            },
            customer: leg(Some("198.51.100.7:4000"), false),
            agent: leg(Some("198.51.100.8:4002"), true),
            supervisions: vec![SupervisionId::from_u64(1)],
            created_at_ms: 1_000,
            ended_at_ms: None,
        };
        let json = serde_json::to_value(CallView::from(call)).unwrap();
        let mut dropped: serde_json::Map<String, serde_json::Value> = DropReason::ALL
            .iter()
            .map(|r| (r.as_str().to_owned(), json!(0)))
            .collect();
        dropped.insert("wrong_source".to_owned(), json!(2));
        let stats = json!({"packets_in": 3, "bytes_in": 0, "packets_out": 0, "bytes_out": 0,
                           "packets_lost": 0, "jitter_ms": 0.0, "packets_dropped": 2,
                           "dropped": dropped});
        assert_eq!(
            json,
            json!({
                "id": CallId::from_u64(0xab).to_string(), "state": "ended",
                "direction": "outbound", "agent_id": null, "web": false, "agent_answered": true,
                "flags": {"on_hold": false, "consult": true, "secure_payment": false,
                          "conference": false},
                "hung_up": {"customer": true, "agent": false},
                "legs": {
                    "customer": {"local": "127.0.0.1:20000", "remote": "198.51.100.7:4000",
                                 "remote_source": "configured", "codec": "pcma", "held": true,
                                 "stats": stats},
                    "agent": {"local": "127.0.0.1:20000", "remote": "198.51.100.8:4002",
                              "remote_source": "latched", "codec": "pcma", "held": true,
                              "stats": stats},
                },
                "supervisions": [SupervisionId::from_u64(1).to_string()],
                "created_at_ms": 1_000, "ended_at_ms": null,
            })
        );
    }

    /// docs/api.md, Supervisions: the mode by name, a leg not connected shows `null` addresses.
    #[test]
    fn a_supervision_renders_every_documented_field() {
        let sup = SupervisionSnapshot {
            id: SupervisionId::from_u64(7),
            call_id: CallId::from_u64(8),
            state: SupervisionState::Failed,
            mode: Mode::Listen,
            failure: Some("no_permission".to_owned()),
            abort: None,
            supervisor_id: Some("sup-1".to_owned()),
            agent_id: Some("agent-1".to_owned()),
            registered_number: None,
            beep: true,
            persistent: false,
            leg: LegSnapshot {
                local: None,
                remote: None,
                latched: false,
                codec: Codec::Pcmu,
                held: false,
                stats: LegStats::default(),
            },
            created_at_ms: 5,
            started_at_ms: None,
            ended_at_ms: Some(6),
        };
        let json = serde_json::to_value(SupervisionView::from(sup)).unwrap();
        let leg = &json["leg"];
        assert_eq!(
            (
                &leg["local"],
                &leg["remote"],
                &leg["remote_source"],
                &leg["codec"]
            ),
            (&json!(null), &json!(null), &json!(null), &json!("pcmu"))
        );
        let mut rest = json.as_object().unwrap().clone();
        rest.remove("leg");
        assert_eq!(
            serde_json::Value::Object(rest),
            json!({
                "id": SupervisionId::from_u64(7).to_string(),
                "call_id": CallId::from_u64(8).to_string(), "state": "failed", "mode": "listen",
                "failure": "no_permission", "abort": null, "supervisor_id": "sup-1",
                "agent_id": "agent-1", "registered_number": null, "beep": true,
                "persistent": false, "created_at_ms": 5, "started_at_ms": null,
                "ended_at_ms": 6,
            })
        );
    }

    /// docs/api.md, Audit: the mode by name, `null` when the action has none.
    #[test]
    fn an_audit_entry_names_its_mode() {
        let entry = AuditRecord {
            id: AuditId(1),
            at: UnixMs(2),
            actor: "user:sup-1".to_owned(),
            action: "supervision.mode_change".to_owned(),
            supervision_id: Some("s_1".to_owned()),
            call_id: None,
            mode: Some(Mode::Barge),
            outcome: "ok".to_owned(),
            detail: None,
        };
        let json = serde_json::to_value(AuditView::from(entry.clone())).unwrap();
        assert_eq!(
            json,
            json!({"id": 1, "at_ms": 2, "actor": "user:sup-1",
                   "action": "supervision.mode_change", "supervision_id": "s_1",
                   "call_id": null, "mode": "barge", "outcome": "ok", "detail": null})
        );
        let none = AuditRecord {
            mode: None,
            ..entry
        };
        assert_eq!(
            serde_json::to_value(AuditView::from(none)).unwrap()["mode"],
            json!(null)
        );
    }
}
