//! What a session is told: the start request with the facts of the call, and every later input
//! (docs/design.md §2).

use dataplane::media::matrix::Mode;
use serde::Serialize;

use crate::domain::agents::UserId;
use crate::domain::call::CallId;

use super::alerts::AbortCause;
use super::state::State;

/// A grant of persistent supervision, as the caller recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct GrantId(pub u64);

/// What a session is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionScope {
    /// One call: the session ends with it.
    Call,
    /// An agent: the session follows the agent to the next calls until stopped. Needs a grant;
    /// `None` is refused at start ([`Refused::PersistentWithoutGrant`]).
    Agent { grant_id: Option<GrantId> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    Business,
    /// Never supervised (docs/design.md §2).
    Web,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub const fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The state of a call when a session attaches to it, as the softswitch reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallFacts {
    pub call: CallId,
    pub kind: CallKind,
    pub direction: Direction,
    /// The agent put the customer on hold (a consult does too).
    pub on_hold: bool,
    /// The agent takes part in a consult (consulting, with the customer on hold, or consulted).
    pub in_consult: bool,
    /// The customer is in a secure-payment (PCI) segment.
    pub secure_payment: bool,
    pub conference: bool,
    /// Outbound: the agent answered. Inbound calls reach the agent answered: ignored.
    pub agent_answered: bool,
}

impl CallFacts {
    /// An established business call with no flag set.
    pub const fn business(call: CallId, direction: Direction) -> CallFacts {
        CallFacts {
            call,
            kind: CallKind::Business,
            direction,
            on_hold: false,
            in_consult: false,
            secure_payment: false,
            conference: false,
            agent_answered: true,
        }
    }

    pub(super) const fn agent_not_answered(&self) -> bool {
        matches!(self.direction, Direction::Outbound) && !self.agent_answered
    }
}

/// How long the supervisor's phone may ring before `failed_supervisor_didnt_answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnswerTimeout(u64);

impl AnswerTimeout {
    /// docs/design.md §2: 30 s.
    pub const DEFAULT: AnswerTimeout = AnswerTimeout(30_000);
    pub const MS_MIN: u64 = 1_000;
    pub const MS_MAX: u64 = 600_000;

    /// `MS_MIN..=MS_MAX`, else `Err` with the bounds in the message.
    pub fn from_ms(ms: u64) -> Result<AnswerTimeout, AnswerTimeoutOutOfRange> {
        if (Self::MS_MIN..=Self::MS_MAX).contains(&ms) {
            Ok(AnswerTimeout(ms))
        } else {
            Err(AnswerTimeoutOutOfRange { ms })
        }
    }

    pub const fn ms(self) -> u64 {
        self.0
    }
}

impl Default for AnswerTimeout {
    fn default() -> AnswerTimeout {
        AnswerTimeout::DEFAULT
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "answer timeout {ms} ms is out of range ({}..={} ms)",
    AnswerTimeout::MS_MIN,
    AnswerTimeout::MS_MAX
)]
pub struct AnswerTimeoutOutOfRange {
    pub ms: u64,
}

/// The request that creates a session: who watches whom, on which call, with which rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    /// The supervisor; `None` when an admin starts a session naming nobody (docs/api.md).
    pub supervisor: Option<UserId>,
    /// The call's agent; `None` when the softswitch named none.
    pub agent: Option<UserId>,
    pub scope: SessionScope,
    pub call: CallFacts,
    /// The caller decided that the supervisor has the listen right over this agent (docs/design.md §4).
    /// Whisper, barge and takeover rights are the caller's to check before [`Input::SetMode`].
    pub supervisor_may_listen: bool,
    /// The supervisor's registered number as stored; validated here, so an empty one (none
    /// registered) or one stored before validation existed fails the session.
    pub registered_number: String,
    /// `None`: the default given to [`Session::new`].
    pub answer_timeout: Option<AnswerTimeout>,
}

/// A party whose leg ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HangupParty {
    Customer,
    Agent,
    Supervisor,
}

impl HangupParty {
    pub const fn as_str(self) -> &'static str {
        match self {
            HangupParty::Customer => "customer",
            HangupParty::Agent => "agent",
            HangupParty::Supervisor => "supervisor",
        }
    }
}

/// What happens to a session. Each variant says when it is legal; anything else is refused
/// ([`Refused`]) and changes nothing. No input is legal once the session has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Creates the session. Legal only in [`State::New`].
    Start(Start),
    /// The supervisor's phone rings. Legal in [`State::Requested`], once.
    SupervisorRinging,
    /// The supervisor's phone answered, from `calling_number`. Legal in [`State::Requested`].
    SupervisorAnswered { calling_number: String },
    /// The supervisor rejected the call. Legal in [`State::Requested`].
    SupervisorRejected,
    /// The supervisor's phone is in do-not-disturb. Legal in [`State::Requested`].
    SupervisorDnd,
    /// The supervisor changes mode. Legal in [`State::Active`]; the current mode is a no-op.
    SetMode(Mode),
    /// The supervisor clicks stop, or the API deletes the supervision. Legal in
    /// [`State::Requested`], [`State::Active`], [`State::NoCall`].
    Stop,
    /// The agent puts the customer on hold. Legal while a call is attached: in
    /// [`State::Requested`] unless it vanished, and in [`State::Active`]. Same for the next four.
    CallHeld,
    /// The agent starts a consult (the customer is put on hold).
    ConsultStarted,
    /// The agent transfers the customer to the secure-payment system.
    SecurePaymentStarted,
    /// The call becomes a conference.
    ConferenceStarted,
    /// The agent releases the call (it ends for everyone).
    CallReleasedByAgent,
    /// A party's leg ended: BYE reported, or media timeout reported by the data plane.
    /// Customer / agent: legal while a call is attached and that party has not left.
    /// Supervisor: legal in [`State::Requested`], [`State::Active`], [`State::NoCall`].
    Hangup { party: HangupParty },
    /// Outbound: the agent answered. Legal in [`State::Requested`] while waiting for it.
    AgentAnswered,
    /// The agent's next call, for an [`SessionScope::Agent`] session waiting in
    /// [`State::NoCall`]. `supervisor_may_listen` is decided again by the caller.
    AgentNextCall {
        call: CallFacts,
        supervisor_may_listen: bool,
    },
    /// The session is ended from outside its call's story: its call was deleted, the daemon
    /// restarted (docs/design.md §2, §7). Legal in every started state that has not ended: the
    /// session ends `aborted` with the cause's alert, audited as the system's act.
    Abort { reason: AbortCause },
}

impl Input {
    /// The input's name in refusals and logs.
    pub const fn name(&self) -> &'static str {
        match self {
            Input::Start(_) => "start",
            Input::SupervisorRinging => "supervisor_ringing",
            Input::SupervisorAnswered { .. } => "supervisor_answered",
            Input::SupervisorRejected => "supervisor_rejected",
            Input::SupervisorDnd => "supervisor_dnd",
            Input::SetMode(_) => "set_mode",
            Input::Stop => "stop",
            Input::CallHeld => "call_held",
            Input::ConsultStarted => "consult_started",
            Input::SecurePaymentStarted => "secure_payment_started",
            Input::ConferenceStarted => "conference_started",
            Input::CallReleasedByAgent => "call_released_by_agent",
            Input::Hangup { .. } => "hangup",
            Input::AgentAnswered => "agent_answered",
            Input::AgentNextCall { .. } => "agent_next_call",
            Input::Abort { .. } => "abort",
        }
    }
}

/// Why an input was refused. Nothing changed and nothing was output.
///
/// `WebCall` and `PersistentWithoutGrant` refuse a request: the edge answers it with a 4xx and,
/// being a denial (docs/design.md §4), records the audit itself, as it does for a mode change it refuses
/// for want of an intervention right. The others are reports that do not fit the session's
/// state (duplicates, late or out-of-order events): answer or log them and carry on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the session has not started: only start is legal")]
    NotStarted,
    #[error("the session has already started")]
    AlreadyStarted,
    #[error("the session has ended ({state})")]
    Ended { state: &'static str },
    #[error("web calls are never supervised")]
    WebCall,
    #[error("persistent supervision of an agent requires a grant")]
    PersistentWithoutGrant,
    #[error("{input} is not legal while the session is {state}")]
    NotLegal {
        input: &'static str,
        state: &'static str,
    },
    #[error("the {party} has already left the call")]
    PartyGone { party: &'static str },
    #[error("only a session following an agent takes the agent's next call")]
    NotAgentScope,
    #[error("report the agent's next call once the agent answered it")]
    AgentNotAnswered,
    #[error("the answer deadline ({deadline_ms} ms) is due: call on_timeout first")]
    TimeoutDue { deadline_ms: u64 },
}

impl Refused {
    /// The stable machine code the HTTP API answers a refusal with (409).
    pub const fn code(&self) -> &'static str {
        match self {
            Refused::NotStarted => "supervision_not_started",
            Refused::AlreadyStarted => "supervision_already_started",
            Refused::Ended { .. } => "supervision_ended",
            Refused::WebCall => "web_call",
            Refused::PersistentWithoutGrant => "grant_required",
            Refused::NotLegal { .. } => "not_legal_now",
            Refused::PartyGone { .. } => "party_gone",
            Refused::NotAgentScope => "not_agent_scope",
            Refused::AgentNotAnswered => "agent_not_answered",
            Refused::TimeoutDue { .. } => "timeout_due",
        }
    }
}

/// What [`super::Session::restored`] rebuilds a session from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub supervisor: Option<UserId>,
    pub agent: Option<UserId>,
    pub scope: SessionScope,
    pub call: CallFacts,
    /// Not [`State::New`], not terminal.
    pub state: State,
}
