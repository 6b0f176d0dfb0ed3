//! The records the repository takes and returns: plain values, no database types, so a second
//! backend (PostgreSQL) implements the same traits over the same records.
//!
//! Identifiers of entities the API names (users, groups, tokens, calls, supervisions, webhooks)
//! are chosen by the caller as strings (the API mints `c_…`, `s_…`); identifiers of append-only
//! logs (events, audit, alerts) and of grants are assigned by the store, monotonic.
//!
//! Times are inputs (docs/design.md §9.3): every record carries the times the caller read from its
//! clock, as [`UnixMs`]; the store never reads the clock for domain data.

use dataplane::media::matrix::Mode;
use serde::{Deserialize, Serialize};

pub use crate::domain::log::{
    AlertId, AlertRecord, AuditId, AuditRecord, EventId, GrantId, UnixMs,
};

/// A closed set of values stored as text (the schema has a `CHECK` listing the same strings).
pub trait ColumnEnum: Sized + Copy + 'static {
    /// Every value, in declaration order.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
    /// The value `s` names, if any: never panics on unknown text.
    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.as_str() == s)
    }
}

macro_rules! column_enum {
    ($(#[$doc:meta])* pub enum $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl ColumnEnum for $name {
            const ALL: &'static [$name] = &[$($name::$variant,)+];
            fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }
    };
}

column_enum!(
    /// docs/design.md §4.1 roles.
    pub enum Role {
        Admin = "admin",
        Supervisor = "supervisor",
        Agent = "agent",
        /// A service account (the softswitch driving calls).
        Softswitch = "softswitch",
    }
);

column_enum!(
    /// docs/design.md §3.1: `standard` members cannot leave; `mutual_aid` members join and leave at
    /// will.
    pub enum GroupKind {
        Standard = "standard",
        MutualAid = "mutual_aid",
    }
);

column_enum!(
    /// What the parties hear when supervision starts (docs/design.md §1.2, per group).
    pub enum BeepPolicy {
        None = "none",
        AgentBeep = "agent_beep",
        PeriodicNotice = "periodic_notice",
    }
);

column_enum!(
    /// docs/design.md §3.5 agent states (the pause reason is a separate column).
    pub enum AgentState {
        Available = "available",
        Busy = "busy",
        Standby = "standby",
        Pause = "pause",
        Disconnected = "disconnected",
    }
);

column_enum!(
    /// Where an agent is logged in from.
    pub enum Platform {
        Web = "web",
        App = "app",
    }
);

column_enum!(
    pub enum CallState {
        Active = "active",
        Ended = "ended",
    }
);

column_enum!(
    /// Who placed the call: the lifecycle's hang-up rules differ (docs/design.md §2).
    pub enum CallDirection {
        /// The customer called in.
        Inbound = "inbound",
        /// The agent (or a dialer for the agent) called the customer.
        Outbound = "outbound",
    }
);

column_enum!(
    /// docs/design.md §2.2 lifecycle; `active` carries its mode in [`SupervisionRecord::mode`].
    pub enum SupervisionState {
        Requested = "requested",
        Active = "active",
        /// The supervisor's leg is up with no call (docs/design.md §2). Versions before
        /// migration 5 stored it as `active`.
        NoCall = "no_call",
        Stopped = "stopped",
        Failed = "failed",
        Aborted = "aborted",
    }
);

impl SupervisionState {
    /// `stopped`, `failed` and `aborted` are final; the schema requires `ended_at_ms` on them.
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            SupervisionState::Stopped | SupervisionState::Failed | SupervisionState::Aborted
        )
    }
}

column_enum!(
    /// What a supervision is bound to (docs/design.md §2.1).
    pub enum SupervisionScope {
        /// One call.
        Call = "call",
        /// An agent: re-attaches to the agent's next calls until cancelled (needs a grant).
        Persistent = "persistent",
    }
);

impl ColumnEnum for Mode {
    const ALL: &'static [Mode] = &Mode::ALL;
    fn as_str(self) -> &'static str {
        Mode::as_str(self)
    }
}

/// The SHA-256 (or other 32-byte digest) of a bearer token. The store never sees the token:
/// the caller hashes it (the crate has no digest of its own to offer here), stores the hash, and
/// looks tokens up by the hash of what a client presented.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl core::fmt::Debug for TokenHash {
    /// Only a prefix: enough to tell two hashes apart in a log, not a lookup key.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "TokenHash({:02x}{:02x}{:02x}{:02x}…)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A bearer token (docs/design.md §4). Revoked tokens are kept (the audit log may name them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    pub id: String,
    pub token_hash: TokenHash,
    pub role: Role,
    /// The user the token acts as; `None` for service tokens (softswitch) and bootstrap admins.
    pub user_id: Option<String>,
    pub created_at: UnixMs,
    pub revoked_at: Option<UnixMs>,
}

impl TokenRecord {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    pub id: String,
    pub display_name: String,
    pub phone_number: Option<String>,
    /// Read back sorted and without duplicates.
    pub roles: Vec<Role>,
}

/// A supervisor's registered phone number (docs/design.md §2.8: the supervisor leg's calling number
/// must match it). The store keeps what it is given; validation ("must be a number") is the API's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisorSettings {
    pub user_id: String,
    pub registered_number: String,
    pub updated_at: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: String,
    /// Unique across groups.
    pub name: String,
    pub kind: GroupKind,
    /// Mutual aid: the last logged-in member cannot leave.
    pub lock_last_member: bool,
    pub agent_beep: BeepPolicy,
    /// `None`: no cap on simultaneous monitors of one agent.
    pub max_monitors_per_agent: Option<u32>,
    pub created_at: UnixMs,
}

/// A supervisor's rights over one group (docs/design.md §4.3: listen is distinct from intervening).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSupervisor {
    pub group_id: String,
    pub user_id: String,
    /// Force members to log on/off, set `can_leave`.
    pub group_admin: bool,
    pub listen_right: bool,
    /// Whisper, barge, takeover.
    pub intervene_right: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    pub group_id: String,
    pub user_id: String,
    pub can_leave: bool,
    pub logged_in: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgentRecord {
    pub user_id: String,
    pub state: AgentState,
    pub state_since: UnixMs,
    /// Only with [`AgentState::Pause`] (the schema refuses it otherwise).
    pub pause_reason: Option<String>,
    pub campaign: Option<String>,
    pub platform: Option<Platform>,
    pub auto_assignment: bool,
    /// The dashboard figures (time per state, pause time by reason, last login/logout, …),
    /// shaped by the agents module; the store only requires valid JSON.
    pub aggregates: serde_json::Value,
}

/// A persistent-supervision grant: `supervisor_id` may follow `agent_id` across calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRecord {
    pub id: GrantId,
    pub supervisor_id: String,
    pub agent_id: String,
    pub granted_by: String,
    pub created_at: UnixMs,
    pub revoked_at: Option<UnixMs>,
}

/// A grant to create: at most one unrevoked grant per (supervisor, agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGrant {
    pub supervisor_id: String,
    pub agent_id: String,
    pub granted_by: String,
    pub created_at: UnixMs,
}

/// "Notify me whenever this agent is on a service call" (docs/design.md §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub supervisor_id: String,
    pub agent_id: String,
    pub created_at: UnixMs,
}

/// The flags that make a call unsupervisable while set (docs/api.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CallFlags {
    pub on_hold: bool,
    pub consult: bool,
    pub secure_payment: bool,
    pub conference: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    pub id: String,
    /// The softswitch's call id (SIP Call-ID); unique when present.
    pub external_id: Option<String>,
    /// The agent's user id, when the softswitch names it (persistent supervision follows it).
    pub agent_id: Option<String>,
    pub state: CallState,
    pub flags: CallFlags,
    /// A web call: never supervised (docs/design.md §2.10).
    pub web: bool,
    pub created_at: UnixMs,
    /// Present exactly when `state` is `ended`.
    pub ended_at: Option<UnixMs>,
    pub direction: CallDirection,
    /// Outbound: the agent answered (inbound calls reach the agent answered).
    pub agent_answered: bool,
    pub customer_hung_up: bool,
    pub agent_hung_up: bool,
    /// When the API forgot the call (`DELETE`); the row stays as history.
    pub deleted_at: Option<UnixMs>,
    /// The media legs as the API shows them, shaped by the control plane; valid JSON.
    pub media: serde_json::Value,
}

column_enum!(
    /// The party an NG call's offerer is (docs/ng.md, Parties).
    pub enum NgParty {
        Customer = "customer",
        Agent = "agent",
    }
);

/// The NG side of a call anchored over the NG protocol (docs/ng.md): what the softswitch
/// names it by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgCallRecord {
    /// The call (`calls.id`).
    pub call_id: String,
    /// The softswitch's call-id; not unique over time (a call-id may be reused once deleted).
    pub ng_call_id: String,
    pub offerer_tag: String,
    pub offerer: NgParty,
    /// Known once the first answer came.
    pub answerer_tag: Option<String>,
    /// The last offer or answer (NG `query`: `last signal`).
    pub last_signal: UnixMs,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisionRecord {
    pub id: String,
    /// `None` only for a persistent supervision between calls.
    pub call_id: Option<String>,
    pub supervisor_id: Option<String>,
    pub agent_id: Option<String>,
    pub state: SupervisionState,
    /// The current (or, once ended, the last) mode.
    pub mode: Mode,
    /// Why a supervision failed or was aborted (`agent_held_call`, `restart`, …).
    pub end_reason: Option<String>,
    pub scope: SupervisionScope,
    pub created_at: UnixMs,
    /// When it became active (supervisor leg answered).
    pub started_at: Option<UnixMs>,
    /// Present exactly when `state` is terminal.
    pub ended_at: Option<UnixMs>,
    /// The supervisor's leg and options as the API shows them, shaped by the control plane;
    /// valid JSON.
    pub media: serde_json::Value,
}

/// An alert to append (docs/design.md §2.6 table); append-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub supervision_id: Option<String>,
    /// Machine name of the alert kind, docs/design.md §2.6 (`monitoring_initiated`,
    /// `failed_no_permission`, …).
    pub kind: String,
    /// The human text of the alert.
    pub text: String,
    pub at: UnixMs,
    /// The call the supervision watched (or was asked to), if any.
    pub call_id: Option<String>,
    /// What happened, in words.
    pub reason: Option<String>,
}

/// An audit record to append (docs/design.md §4.5); append-only (the schema refuses UPDATE and
/// DELETE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAudit {
    pub at: UnixMs,
    /// Who: `user:<id>`, `token:<id>`, `softswitch`, `system`.
    pub actor: String,
    /// What: `supervision.start`, `supervision.mode`, `supervision.stop`, `grant.create`, …
    pub action: String,
    pub supervision_id: Option<String>,
    pub call_id: Option<String>,
    pub mode: Option<Mode>,
    /// `ok`, `denied`, `failed`, `aborted`.
    pub outcome: String,
    pub detail: Option<String>,
}

/// Who may see an event on the SSE stream. Admins see every event; a user sees it if listed in
/// `users`, or if they supervise one of `groups`. Both empty: admins only. The store keeps it;
/// the SSE layer filters.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EventScope {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub users: Vec<String>,
}

/// An event to append to the SSE log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// `call.*`, `supervision.*`, `alert.*`, `group.*`, `agent.*`.
    pub event_type: String,
    pub payload: serde_json::Value,
    pub scope: EventScope,
    pub at: UnixMs,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub at: UnixMs,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub scope: EventScope,
}

/// A webhook endpoint (Standard Webhooks). The secret is stored as given: it signs requests,
/// so it cannot be hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    pub id: String,
    pub url: String,
    pub secret: String,
    /// Event types delivered; empty: all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    pub consecutive_failures: u32,
    /// When it was disabled after repeated failure.
    pub disabled_at: Option<UnixMs>,
    pub created_at: UnixMs,
}

/// One event's delivery to one webhook, with its retry state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub event_id: EventId,
    pub webhook_id: String,
    pub attempts: u32,
    /// `None`: finished (delivered or given up).
    pub next_attempt_at: Option<UnixMs>,
    /// The last HTTP status; `None` before the first attempt or when no response came.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
}

/// A session closed by the start-up recovery (`app::recovery`), with the records written for
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSession {
    /// As it is now (aborted).
    pub supervision: SupervisionRecord,
    pub previous_state: SupervisionState,
    pub alert_id: AlertId,
    pub audit_id: AuditId,
    pub event_id: EventId,
}

/// What the start-up recovery (`app::recovery`) closed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recovery {
    pub sessions: Vec<ClosedSession>,
    pub calls: Vec<CallRecord>,
}
