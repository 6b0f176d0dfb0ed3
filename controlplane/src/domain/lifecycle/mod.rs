//! A supervision session's lifecycle and its alerts (SPEC §2, audit of SPEC §4), as a sans-IO
//! state machine.
//!
//! # Contract with the driver
//!
//! A [`Session`] never reads a clock and does no I/O (STYLE.md 1, 3): time is an input. The
//! driver (HTTP API, softswitch reports, data-plane events, a timer wheel):
//!
//! 1. creates it with [`Session::new`] and feeds [`Input::Start`] to [`Session::handle`];
//! 2. feeds every later [`Input`] to [`Session::handle`] with the current `now_ms`;
//! 3. arms a timer for [`Session::next_deadline`] and calls [`Session::on_timeout`] when it
//!    fires (an early or spurious call does nothing). An input handed in at or after a due
//!    deadline is refused with [`Refused::TimeoutDue`]: fire the timeout first, so that the
//!    session sees events in the order of time;
//! 4. acts on the returned [`Output`]s **in order**. One input's outputs always come in this
//!    order: [`Output::Audit`], then the media command ([`Output::ConnectMedia`],
//!    [`Output::SetMedia`] or [`Output::DisconnectMedia`]), then [`Output::AnnounceNoCall`], then
//!    [`Output::Alert`], then [`Output::Ended`]. **The driver must durably commit an `Audit`
//!    output before acting on the outputs after it**: that is how "the audit record is written
//!    before supervisor media flows" (SPEC §4) holds.
//!
//! A refused input ([`Refused`]) changes nothing and produces no output, so the driver may answer
//! it with an error and carry on. `now_ms` earlier than a time the session already accepted is
//! taken as that time (a session's time never runs backwards). Replaying the accepted inputs
//! with their `now_ms` (and the timeouts that fired) into a new session rebuilds it exactly.
//!
//! # Lifecycle
//!
//! ```text
//!        Start                answered                  stop
//!  New ─────────▶ Requested ─────────────▶ Active(mode) ────────▶ Stopped
//!   │ checks fail   │  │ (call vanished     │    ▲  call or supervisor leg ends
//!   │               │  │  while ringing)    │    │  ─────────────────▶ Aborted(reason)
//!   │               │  ▼                    ▼    │ AgentNextCall
//!   │               │ NoCall ◀────── (Agent scope: call ends)
//!   ▼               ▼  │ stop / leg ends
//!  Failed(reason) ◀────┘  (or Stopped / Aborted once a call was monitored)
//! ```
//!
//! # Alert rules (SPEC §2 table, scenarios of `reference/seeds/002`)
//!
//! Checks at [`Input::Start`], first match wins:
//! 1. *Refused* (typed error, no alert: a bad request, not a session): a web call; an
//!    [`SessionScope::Agent`] session without a grant.
//! 2. The supervisor has no listen right over the agent → `failed_no_permission`.
//! 3. The call is a conference → `failed_no_permission`.
//! 4. The registered supervisor number is not valid ([`validate_supervisor_number`]; empty =
//!    none registered) → `failed_supervisor_number_invalid`.
//! 5. The customer is in a secure-payment (PCI) segment → `failed_agent_not_ready`.
//! 6. The customer is on hold, consult or not → `monitoring_failed`. A consult with the
//!    customer on hold means the watched agent is the *consulting* one (seed: "attempts to
//!    listen … while the agent is in a consult (the customer is also on hold)").
//! 7. A consult with no customer on hold → `failed_agent_not_ready`: the watched agent is the
//!    *consulted* one, whose call holds no customer (seed: "tries to listen to the consulted
//!    agent during a consult").
//! 8. Outbound and the agent has not answered: not a failure yet. The session is requested and
//!    waits for [`Input::AgentAnswered`]; if the supervisor answers first →
//!    `failed_no_call_to_monitor` (seed: "the agent has not yet answered their phone").
//!
//! While the supervisor's phone rings ([`State::Requested`]):
//! - hold or consult start → `monitoring_failed`; secure payment → `failed_agent_not_ready`;
//!   conference → `failed_no_permission` (the start checks still apply until media flows);
//! - the agent releases, the agent hangs up, or the customer hangs up → the call *vanished*; no
//!   alert yet. Answering then emits `monitoring_initiated` (the driver plays the "no call to
//!   supervise" message, [`Output::AnnounceNoCall`]) and the session waits in [`State::NoCall`]
//!   until the supervisor stops or their leg ends → `failed_no_call_to_monitor`. One exception,
//!   the seed's "(Outbound only.)": when the agent of an **inbound** call hung up, that end is
//!   `aborted_agent_hung_up` instead;
//! - not answered within the answer timeout (30 s by default; per session or global) →
//!   `failed_supervisor_didnt_answer`, also when the call vanished meanwhile; the supervisor leg
//!   ending unanswered (not a rejection) is the same;
//! - rejected, do-not-disturb, or answered from a calling number that is not the registered one
//!   → `failed_supervisor_number_invalid`;
//! - stop → `monitoring_stopped` (a cancelled request; the table is silent), or the no-call end
//!   above if the call vanished.
//!
//! While [`State::Active`]:
//! - stop → `monitoring_stopped`;
//! - hold, consult start, release by the agent, transfer to the payment system →
//!   `aborted_agent_held_call`; conference start → `failed_no_permission` (a conference may not
//!   be listened to; the table has no abort for it);
//! - the supervisor's leg ends → `aborted_supervisor_hung_up`, whatever happened before;
//! - **inbound**: the agent hanging up ends the session → `aborted_agent_hung_up`, or
//!   `aborted_caller_hung_up` if the customer had hung up first (the agent stays on the line
//!   after the caller left, wrap-up, and is still monitored until then);
//! - **outbound**: the first of customer and agent to hang up leaves the session running (the
//!   other party remains: "the customer remains on the call"); the second ends it →
//!   `aborted_agent_hung_up` (an outbound call is the agent's call: its end is the agent's).
//!
//! "BYE reported" and "media timeout" are the same [`Input::Hangup`]: the driver maps both.
//!
//! # Audit (SPEC §4)
//!
//! `start` right before every [`Output::ConnectMedia`] (so not when the supervisor answers a
//! vanished call: no media flows), `mode_change` right before every [`Output::SetMedia`], and
//! one record with every ending alert: `stop`, `denial` (`failed_no_permission`), `failure`
//! (the other `failed_*` and `monitoring_failed`), `abort`.
//!
//! # Persistent supervision
//!
//! A [`SessionScope::Agent`] session (granted by the caller) behaves exactly like a call-scoped
//! one until the supervisor's leg is up. After that, whatever ends the monitoring *because of
//! the call* (hang-ups, release, hold, consult, payment, conference) emits its alert and audit,
//! disconnects the media and waits in [`State::NoCall`] for [`Input::AgentNextCall`] instead of
//! ending. The next call gets the start checks again: a web call is refused, an outbound call
//! must be reported once the agent answered; a lost listen right ends the session
//! (`failed_no_permission`); a call that cannot be monitored now (conference, payment, hold,
//! consult) is reported with its alert and audit and skipped. Stop, or the supervisor's leg
//! ending, ends the session: `monitoring_stopped` / `aborted_supervisor_hung_up` once a call
//! was monitored, the no-call end otherwise.

use core::fmt;
use core::str::FromStr;

use dataplane::media::matrix::Mode;
use serde::{Serialize, Serializer};

use crate::domain::ids::{CallId, SupervisionId, quote};

// ---------------------------------------------------------------------------------------------
// Supervisor number
// ---------------------------------------------------------------------------------------------

/// Fewest digits of a supervisor number (shortest internal extensions).
pub const SUPERVISOR_NUMBER_DIGITS_MIN: usize = 3;
/// Most digits of a supervisor number (E.164 allows 15; room for an access prefix).
pub const SUPERVISOR_NUMBER_DIGITS_MAX: usize = 20;

/// A registered supervisor number, normalised to its digits (a leading `+` is dropped).
///
/// Normalisation: `+441632960000` and `441632960000` are the same number. No other
/// character is accepted, and no numbering-plan translation is done (`0` national prefixes are
/// kept): the softswitch must present the calling number in the form the supervisor registered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SupervisorNumber(String);

impl SupervisorNumber {
    /// The number's digits.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// Whether a calling number reported by the softswitch is this number: an optional leading
    /// `+`, then exactly these digits. Anything else (spaces, a SIP URI, another number) does
    /// not match.
    pub fn matches_calling_number(&self, calling_number: &str) -> bool {
        calling_number.strip_prefix('+').unwrap_or(calling_number) == self.0
    }
}

impl fmt::Display for SupervisorNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for SupervisorNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// What is wrong with a supervisor number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberProblem {
    /// No digits at all (`""` or `"+"`).
    Empty,
    /// A character other than a digit (besides one leading `+`): letters, spaces, dashes…
    NotADigit,
    TooShort {
        digits: usize,
    },
    TooLong {
        digits: usize,
    },
}

impl fmt::Display for NumberProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NumberProblem::Empty => f.write_str("it has no digits"),
            NumberProblem::NotADigit => {
                f.write_str("only digits are allowed, with an optional leading '+'")
            }
            NumberProblem::TooShort { digits } => write!(
                f,
                "it has {digits} digits, at least {SUPERVISOR_NUMBER_DIGITS_MIN} are needed"
            ),
            NumberProblem::TooLong { digits } => write!(
                f,
                "it has {digits} digits, at most {SUPERVISOR_NUMBER_DIGITS_MAX} are allowed"
            ),
        }
    }
}

/// The SPEC §2 `validation` alert: not a session alert, the answer to setting a supervisor
/// number that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the supervisor telephone number must be a number ({problem})")]
pub struct ValidationAlert {
    pub problem: NumberProblem,
}

impl ValidationAlert {
    /// The alert's stable code.
    pub const CODE: &'static str = "validation";
    /// The alert's human text (SPEC §2), without the detail of [`ValidationAlert::problem`].
    pub const TEXT: &'static str = "the supervisor telephone number must be a number";
}

/// Validates a supervisor number as typed by the supervisor: an optional leading `+`, then
/// 3 to 20 ASCII digits, nothing else (no spaces, dashes or trimming: SPEC "must be a number").
pub fn validate_supervisor_number(s: &str) -> Result<SupervisorNumber, ValidationAlert> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    let problem = if digits.is_empty() {
        Some(NumberProblem::Empty)
    } else if !digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(NumberProblem::NotADigit)
    } else if digits.len() < SUPERVISOR_NUMBER_DIGITS_MIN {
        Some(NumberProblem::TooShort {
            digits: digits.len(),
        })
    } else if digits.len() > SUPERVISOR_NUMBER_DIGITS_MAX {
        Some(NumberProblem::TooLong {
            digits: digits.len(),
        })
    } else {
        None
    };
    match problem {
        Some(problem) => Err(ValidationAlert { problem }),
        None => Ok(SupervisorNumber(digits.to_owned())),
    }
}

// ---------------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------------

/// A supervisor, as the caller names them (opaque here).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct SupervisorId(pub String);

/// An agent, as the caller names them (opaque here).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AgentId(pub String);

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
    /// Never supervised (SPEC §2).
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

    const fn agent_not_answered(&self) -> bool {
        matches!(self.direction, Direction::Outbound) && !self.agent_answered
    }
}

/// How long the supervisor's phone may ring before `failed_supervisor_didnt_answer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AnswerTimeout(u64);

impl AnswerTimeout {
    /// SPEC §2: 30 s.
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
    pub supervisor: SupervisorId,
    pub agent: AgentId,
    pub scope: SessionScope,
    pub call: CallFacts,
    /// The caller decided that the supervisor has the listen right over this agent (SPEC §4).
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
        }
    }
}

/// Why an input was refused. Nothing changed and nothing was output.
///
/// `WebCall` and `PersistentWithoutGrant` refuse a request: the edge answers it with a 4xx and,
/// being a denial (SPEC §4), records the audit itself, as it does for a mode change it refuses
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

// ---------------------------------------------------------------------------------------------
// States
// ---------------------------------------------------------------------------------------------

/// How a call went away while the supervisor's phone rang.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vanished {
    AgentReleased,
    AgentHungUp,
    CustomerHungUp,
}

impl Vanished {
    const fn describe(self) -> &'static str {
        match self {
            Vanished::AgentReleased => "the agent released the call",
            Vanished::AgentHungUp => "the agent hung up",
            Vanished::CustomerHungUp => "the customer hung up",
        }
    }
}

/// The call of a requested session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallLink {
    Present,
    /// Outbound, the agent has not answered yet.
    AwaitingAgent,
    Vanished(Vanished),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    AgentNotReady,
    NoCallToMonitor,
    SupervisorDidntAnswer,
    SupervisorNumberInvalid,
    NoPermission,
    MonitoringFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    AgentHeldCall,
    AgentHungUp,
    CallerHungUp,
    SupervisorHungUp,
}

/// A session's state. [`State::Stopped`], [`State::Failed`], [`State::Aborted`] are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Created, waiting for [`Input::Start`].
    New,
    /// The supervisor's leg is being connected.
    Requested {
        supervisor_ringing: bool,
        call: CallLink,
    },
    /// Media flows. `customer_gone` / `agent_gone`: that party hung up and the session goes on
    /// (see the module docs for when).
    Active {
        mode: Mode,
        customer_gone: bool,
        agent_gone: bool,
    },
    /// The supervisor's leg is up with no call attached: the call vanished while the phone
    /// rang (`vanished`), or an [`SessionScope::Agent`] session waits for the next call.
    NoCall {
        vanished: Option<Vanished>,
    },
    Stopped,
    Failed(FailReason),
    Aborted(AbortReason),
}

impl State {
    /// The state's stable name.
    pub const fn code(&self) -> &'static str {
        match self {
            State::New => "new",
            State::Requested { .. } => "requested",
            State::Active { .. } => "active",
            State::NoCall { .. } => "no_call",
            State::Stopped => "stopped",
            State::Failed(_) => "failed",
            State::Aborted(_) => "aborted",
        }
    }

    pub const fn is_terminal(&self) -> bool {
        matches!(self, State::Stopped | State::Failed(_) | State::Aborted(_))
    }

    /// The mode while media flows.
    pub const fn mode(&self) -> Option<Mode> {
        match self {
            State::Active { mode, .. } => Some(*mode),
            _ => None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outputs
// ---------------------------------------------------------------------------------------------

/// A session alert (SPEC §2 table). Codes are stable; texts are the SPEC's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlertKind {
    MonitoringInitiated,
    MonitoringStopped,
    FailedAgentNotReady,
    FailedNoCallToMonitor,
    FailedSupervisorDidntAnswer,
    FailedSupervisorNumberInvalid,
    FailedNoPermission,
    MonitoringFailed,
    AbortedAgentHeldCall,
    AbortedAgentHungUp,
    AbortedCallerHungUp,
    AbortedSupervisorHungUp,
}

impl AlertKind {
    pub const ALL: [AlertKind; 12] = [
        AlertKind::MonitoringInitiated,
        AlertKind::MonitoringStopped,
        AlertKind::FailedAgentNotReady,
        AlertKind::FailedNoCallToMonitor,
        AlertKind::FailedSupervisorDidntAnswer,
        AlertKind::FailedSupervisorNumberInvalid,
        AlertKind::FailedNoPermission,
        AlertKind::MonitoringFailed,
        AlertKind::AbortedAgentHeldCall,
        AlertKind::AbortedAgentHungUp,
        AlertKind::AbortedCallerHungUp,
        AlertKind::AbortedSupervisorHungUp,
    ];

    /// The stable machine code.
    pub const fn code(self) -> &'static str {
        match self {
            AlertKind::MonitoringInitiated => "monitoring_initiated",
            AlertKind::MonitoringStopped => "monitoring_stopped",
            AlertKind::FailedAgentNotReady => "failed_agent_not_ready",
            AlertKind::FailedNoCallToMonitor => "failed_no_call_to_monitor",
            AlertKind::FailedSupervisorDidntAnswer => "failed_supervisor_didnt_answer",
            AlertKind::FailedSupervisorNumberInvalid => "failed_supervisor_number_invalid",
            AlertKind::FailedNoPermission => "failed_no_permission",
            AlertKind::MonitoringFailed => "monitoring_failed",
            AlertKind::AbortedAgentHeldCall => "aborted_agent_held_call",
            AlertKind::AbortedAgentHungUp => "aborted_agent_hung_up",
            AlertKind::AbortedCallerHungUp => "aborted_caller_hung_up",
            AlertKind::AbortedSupervisorHungUp => "aborted_supervisor_hung_up",
        }
    }

    /// The human text of the SPEC §2 table.
    pub const fn text(self) -> &'static str {
        match self {
            AlertKind::MonitoringInitiated => "monitoring initiated",
            AlertKind::MonitoringStopped => "monitoring stopped",
            AlertKind::FailedAgentNotReady => "failed – agent not ready",
            AlertKind::FailedNoCallToMonitor => "failed – no call to monitor",
            AlertKind::FailedSupervisorDidntAnswer => "failed – supervisor didn't answer",
            AlertKind::FailedSupervisorNumberInvalid => "failed – supervisor number invalid",
            AlertKind::FailedNoPermission => "failed – no permission",
            AlertKind::MonitoringFailed => "monitoring failed",
            AlertKind::AbortedAgentHeldCall => "aborted – agent held call",
            AlertKind::AbortedAgentHungUp => "aborted – agent hung up",
            AlertKind::AbortedCallerHungUp => "aborted – caller hung up",
            AlertKind::AbortedSupervisorHungUp => "aborted – supervisor hung up",
        }
    }
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A string that is no alert code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown alert code")]
pub struct UnknownAlertCode;

impl FromStr for AlertKind {
    type Err = UnknownAlertCode;
    fn from_str(s: &str) -> Result<AlertKind, UnknownAlertCode> {
        AlertKind::ALL
            .into_iter()
            .find(|k| k.code() == s)
            .ok_or(UnknownAlertCode)
    }
}

impl Serialize for AlertKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl FailReason {
    /// The stable machine code (the API's `failure`).
    pub const fn code(self) -> &'static str {
        match self {
            FailReason::AgentNotReady => "agent_not_ready",
            FailReason::NoCallToMonitor => "no_call_to_monitor",
            FailReason::SupervisorDidntAnswer => "supervisor_didnt_answer",
            FailReason::SupervisorNumberInvalid => "supervisor_number_invalid",
            FailReason::NoPermission => "no_permission",
            FailReason::MonitoringFailed => "monitoring_failed",
        }
    }

    pub const fn alert(self) -> AlertKind {
        match self {
            FailReason::AgentNotReady => AlertKind::FailedAgentNotReady,
            FailReason::NoCallToMonitor => AlertKind::FailedNoCallToMonitor,
            FailReason::SupervisorDidntAnswer => AlertKind::FailedSupervisorDidntAnswer,
            FailReason::SupervisorNumberInvalid => AlertKind::FailedSupervisorNumberInvalid,
            FailReason::NoPermission => AlertKind::FailedNoPermission,
            FailReason::MonitoringFailed => AlertKind::MonitoringFailed,
        }
    }
}

impl AbortReason {
    /// The stable machine code (the API's `abort`).
    pub const fn code(self) -> &'static str {
        match self {
            AbortReason::AgentHeldCall => "agent_held_call",
            AbortReason::AgentHungUp => "agent_hung_up",
            AbortReason::CallerHungUp => "caller_hung_up",
            AbortReason::SupervisorHungUp => "supervisor_hung_up",
        }
    }

    pub const fn alert(self) -> AlertKind {
        match self {
            AbortReason::AgentHeldCall => AlertKind::AbortedAgentHeldCall,
            AbortReason::AgentHungUp => AlertKind::AbortedAgentHungUp,
            AbortReason::CallerHungUp => AlertKind::AbortedCallerHungUp,
            AbortReason::SupervisorHungUp => AlertKind::AbortedSupervisorHungUp,
        }
    }
}

/// An alert: an event to show and a durable record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub at_ms: u64,
    pub session: SupervisionId,
    pub call: CallId,
    /// What happened, in words (the kind's text is [`AlertKind::text`]).
    pub reason: String,
}

/// SPEC §4: every start, mode change, stop, denial and failure is audited; so is every abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// Media is about to flow to the supervisor.
    Start,
    ModeChange,
    Stop,
    /// `failed_no_permission`.
    Denial,
    /// Every other `failed_*` and `monitoring_failed`.
    Failure,
    Abort,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditRecord {
    pub action: AuditAction,
    pub session: SupervisionId,
    pub supervisor: SupervisorId,
    pub agent: AgentId,
    pub call: CallId,
    /// Start and mode change: the new mode. Stop, abort, failure: the mode media was in, if any.
    #[serde(serialize_with = "serialize_mode")]
    pub mode: Option<Mode>,
    /// The alert this record goes with (none for start and mode change).
    pub alert: Option<AlertKind>,
    pub at_ms: u64,
}

fn serialize_mode<S: Serializer>(mode: &Option<Mode>, s: S) -> Result<S::Ok, S::Error> {
    match mode {
        Some(mode) => s.serialize_some(mode.as_str()),
        None => s.serialize_none(),
    }
}

/// What the driver must do, in order (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Commit durably before acting on any later output.
    Audit(AuditRecord),
    /// Data plane: attach the supervisor's leg to `call` in `mode` (always listen).
    ConnectMedia { call: CallId, mode: Mode },
    /// Data plane: change the supervisor's mode on `call`.
    SetMedia { call: CallId, mode: Mode },
    /// Data plane: detach the supervisor's leg from `call`.
    DisconnectMedia { call: CallId },
    /// Play the "no call available to supervise" message on the supervisor's leg.
    AnnounceNoCall,
    /// Publish and record.
    Alert(Alert),
    /// The session is over: release the supervisor's leg, if any.
    Ended { state: State },
}

// ---------------------------------------------------------------------------------------------
// Session
// ---------------------------------------------------------------------------------------------

/// What a started session is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    supervisor: SupervisorId,
    agent: AgentId,
    scope: SessionScope,
    /// The call attached, or last attached (or skipped).
    call: CallFacts,
    /// `None`: the registered number was not valid (the session failed at start).
    number: Option<SupervisorNumber>,
    answer_timeout: AnswerTimeout,
    answer_deadline_ms: u64,
}

/// How a session ends, or how an [`SessionScope::Agent`] session leaves a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Stopped,
    Failed(FailReason),
    Aborted(AbortReason),
}

impl Ending {
    const fn alert(self) -> AlertKind {
        match self {
            Ending::Stopped => AlertKind::MonitoringStopped,
            Ending::Failed(r) => r.alert(),
            Ending::Aborted(r) => r.alert(),
        }
    }

    const fn audit_action(self) -> AuditAction {
        match self {
            Ending::Stopped => AuditAction::Stop,
            Ending::Failed(FailReason::NoPermission) => AuditAction::Denial,
            Ending::Failed(_) => AuditAction::Failure,
            Ending::Aborted(_) => AuditAction::Abort,
        }
    }

    const fn state(self) -> State {
        match self {
            Ending::Stopped => State::Stopped,
            Ending::Failed(r) => State::Failed(r),
            Ending::Aborted(r) => State::Aborted(r),
        }
    }
}

/// A call-state event the softswitch reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallEvent {
    Held,
    Consult,
    SecurePayment,
    Conference,
    Released,
}

/// One supervision session. See the module docs for the contract and the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    id: SupervisionId,
    answer_timeout_default: AnswerTimeout,
    state: State,
    /// `Some` from [`Input::Start`] on.
    binding: Option<Binding>,
    /// The latest time the session accepted.
    last_ms: u64,
}

impl Session {
    /// A session in [`State::New`]; `answer_timeout_default` is the global setting, which a
    /// [`Start`] may override.
    pub fn new(id: SupervisionId, answer_timeout_default: AnswerTimeout) -> Session {
        Session {
            id,
            answer_timeout_default,
            state: State::New,
            binding: None,
            last_ms: 0,
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    /// The call attached, or last attached, once started.
    pub fn call(&self) -> Option<CallId> {
        self.binding.as_ref().map(|b| b.call.call)
    }

    /// When [`Session::on_timeout`] has something to do: the answer deadline while requested.
    pub fn next_deadline(&self) -> Option<u64> {
        match (&self.state, &self.binding) {
            (State::Requested { .. }, Some(b)) => Some(b.answer_deadline_ms),
            _ => None,
        }
    }

    /// Fires a due deadline. Before it, or with none pending, does nothing.
    pub fn on_timeout(&mut self, now_ms: u64) -> Vec<Output> {
        let at_ms = now_ms.max(self.last_ms);
        match (self.next_deadline(), &self.binding) {
            (Some(deadline_ms), Some(b)) if at_ms >= deadline_ms => {
                let reason = format!(
                    "the supervisor's phone was not answered within {} ms",
                    b.answer_timeout.ms()
                );
                self.last_ms = at_ms;
                self.finish(
                    at_ms,
                    Ending::Failed(FailReason::SupervisorDidntAnswer),
                    reason,
                )
            }
            _ => Vec::new(),
        }
    }

    /// Applies one input at `now_ms`. `Err`: refused, nothing changed.
    pub fn handle(&mut self, now_ms: u64, input: Input) -> Result<Vec<Output>, Refused> {
        let at_ms = now_ms.max(self.last_ms);
        if self.state.is_terminal() {
            return Err(Refused::Ended {
                state: self.state.code(),
            });
        }
        if let Some(deadline_ms) = self.next_deadline()
            && at_ms >= deadline_ms
        {
            return Err(Refused::TimeoutDue { deadline_ms });
        }
        let outputs = self.step(at_ms, input)?;
        self.last_ms = at_ms;
        Ok(outputs)
    }

    /// Every branch checks legality before it changes anything.
    fn step(&mut self, at_ms: u64, input: Input) -> Result<Vec<Output>, Refused> {
        let not_legal = Refused::NotLegal {
            input: input.name(),
            state: self.state.code(),
        };
        if let Input::Start(start) = input {
            return self.start(at_ms, start);
        }
        if self.state == State::New {
            return Err(Refused::NotStarted);
        }
        match input {
            Input::Start(_) => Err(Refused::AlreadyStarted),
            Input::SupervisorRinging => match self.state {
                State::Requested {
                    supervisor_ringing: false,
                    call,
                } => {
                    self.state = State::Requested {
                        supervisor_ringing: true,
                        call,
                    };
                    Ok(Vec::new())
                }
                _ => Err(not_legal),
            },
            Input::SupervisorAnswered { calling_number } => {
                self.supervisor_answered(at_ms, &calling_number, not_legal)
            }
            Input::SupervisorRejected => self.requested_fails(
                at_ms,
                FailReason::SupervisorNumberInvalid,
                "the supervisor rejected the call",
                not_legal,
            ),
            Input::SupervisorDnd => self.requested_fails(
                at_ms,
                FailReason::SupervisorNumberInvalid,
                "the supervisor's phone is in do-not-disturb",
                not_legal,
            ),
            Input::SetMode(mode) => self.set_mode(at_ms, mode, not_legal),
            Input::Stop => self.stop(at_ms),
            Input::CallHeld => self.call_event(at_ms, CallEvent::Held, not_legal),
            Input::ConsultStarted => self.call_event(at_ms, CallEvent::Consult, not_legal),
            Input::SecurePaymentStarted => {
                self.call_event(at_ms, CallEvent::SecurePayment, not_legal)
            }
            Input::ConferenceStarted => self.call_event(at_ms, CallEvent::Conference, not_legal),
            Input::CallReleasedByAgent => self.call_event(at_ms, CallEvent::Released, not_legal),
            Input::Hangup { party } => self.hangup(at_ms, party, not_legal),
            Input::AgentAnswered => match self.state {
                State::Requested {
                    supervisor_ringing,
                    call: CallLink::AwaitingAgent,
                } => {
                    self.state = State::Requested {
                        supervisor_ringing,
                        call: CallLink::Present,
                    };
                    Ok(Vec::new())
                }
                _ => Err(not_legal),
            },
            Input::AgentNextCall {
                call,
                supervisor_may_listen,
            } => self.agent_next_call(at_ms, call, supervisor_may_listen, not_legal),
        }
    }

    fn start(&mut self, at_ms: u64, start: Start) -> Result<Vec<Output>, Refused> {
        if self.state != State::New {
            return Err(Refused::AlreadyStarted);
        }
        if start.call.kind == CallKind::Web {
            return Err(Refused::WebCall);
        }
        if let SessionScope::Agent { grant_id: None } = start.scope {
            return Err(Refused::PersistentWithoutGrant);
        }
        let answer_timeout = start.answer_timeout.unwrap_or(self.answer_timeout_default);
        let number = validate_supervisor_number(&start.registered_number);
        let number_problem = number.as_ref().err().map(|e| e.problem);
        let call = start.call;
        self.binding = Some(Binding {
            supervisor: start.supervisor,
            agent: start.agent,
            scope: start.scope,
            call,
            number: number.ok(),
            answer_timeout,
            answer_deadline_ms: at_ms.saturating_add(answer_timeout.ms()),
        });
        let failure = if let Some(denied) = check_rights(&call, start.supervisor_may_listen) {
            Some(denied)
        } else if let Some(problem) = number_problem {
            Some((
                FailReason::SupervisorNumberInvalid,
                format!("the registered supervisor number is not valid: {problem}"),
            ))
        } else {
            check_call_state(&call)
        };
        if let Some((reason, why)) = failure {
            return Ok(self.finish(at_ms, Ending::Failed(reason), why));
        }
        self.state = State::Requested {
            supervisor_ringing: false,
            call: if call.agent_not_answered() {
                CallLink::AwaitingAgent
            } else {
                CallLink::Present
            },
        };
        Ok(Vec::new())
    }

    fn supervisor_answered(
        &mut self,
        at_ms: u64,
        calling_number: &str,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        let State::Requested { call, .. } = self.state else {
            return Err(not_legal);
        };
        let number_matches = self
            .binding
            .as_ref()
            .and_then(|b| b.number.as_ref())
            .is_some_and(|n| n.matches_calling_number(calling_number));
        if !number_matches {
            let why = format!(
                "the supervisor's leg was answered from {}, not the registered number",
                quote(calling_number)
            );
            return Ok(self.finish(
                at_ms,
                Ending::Failed(FailReason::SupervisorNumberInvalid),
                why,
            ));
        }
        Ok(match call {
            CallLink::Present => self.connect(at_ms),
            CallLink::AwaitingAgent => self.finish(
                at_ms,
                Ending::Failed(FailReason::NoCallToMonitor),
                "the agent has not answered the outbound call".to_owned(),
            ),
            CallLink::Vanished(vanished) => {
                self.state = State::NoCall {
                    vanished: Some(vanished),
                };
                let why = format!(
                    "the supervisor answered, but {} while the phone rang",
                    vanished.describe()
                );
                let mut outputs = vec![Output::AnnounceNoCall];
                outputs.extend(self.alert(at_ms, AlertKind::MonitoringInitiated, why));
                outputs
            }
        })
    }

    /// Rejection and do-not-disturb: legal while requested.
    fn requested_fails(
        &mut self,
        at_ms: u64,
        reason: FailReason,
        why: &str,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        match self.state {
            State::Requested { .. } => Ok(self.finish(at_ms, Ending::Failed(reason), why.into())),
            _ => Err(not_legal),
        }
    }

    fn set_mode(
        &mut self,
        at_ms: u64,
        mode: Mode,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        let State::Active {
            mode: current,
            customer_gone,
            agent_gone,
        } = self.state
        else {
            return Err(not_legal);
        };
        if mode == current {
            return Ok(Vec::new());
        }
        let Some(b) = &self.binding else {
            return Err(not_legal);
        };
        let outputs = vec![
            Output::Audit(self.audit(b, at_ms, AuditAction::ModeChange, Some(mode), None)),
            Output::SetMedia {
                call: b.call.call,
                mode,
            },
        ];
        self.state = State::Active {
            mode,
            customer_gone,
            agent_gone,
        };
        Ok(outputs)
    }

    fn stop(&mut self, at_ms: u64) -> Result<Vec<Output>, Refused> {
        let (ending, why) = match self.state {
            State::Requested {
                call: CallLink::Vanished(vanished),
                ..
            }
            | State::NoCall {
                vanished: Some(vanished),
            } => self.no_call_ending(vanished, "stopped"),
            State::Requested { .. } => (
                Ending::Stopped,
                "stopped by the supervisor before their phone answered".to_owned(),
            ),
            State::Active { .. } | State::NoCall { vanished: None } => {
                (Ending::Stopped, "stopped by the supervisor".to_owned())
            }
            State::New | State::Stopped | State::Failed(_) | State::Aborted(_) => {
                return Err(Refused::NotLegal {
                    input: "stop",
                    state: self.state.code(),
                });
            }
        };
        Ok(self.finish(at_ms, ending, why))
    }

    /// How a session whose call vanished while the phone rang ends (`how`: "stopped", "the
    /// supervisor hung up"): no call to monitor, except the seed's inbound agent hang-up.
    fn no_call_ending(&self, vanished: Vanished, how: &str) -> (Ending, String) {
        let inbound = self
            .binding
            .as_ref()
            .is_some_and(|b| b.call.direction == Direction::Inbound);
        let ending = if inbound && vanished == Vanished::AgentHungUp {
            Ending::Aborted(AbortReason::AgentHungUp)
        } else {
            Ending::Failed(FailReason::NoCallToMonitor)
        };
        (
            ending,
            format!(
                "{how}; {} while the supervisor's phone rang",
                vanished.describe()
            ),
        )
    }

    fn call_event(
        &mut self,
        at_ms: u64,
        event: CallEvent,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        match self.state {
            State::Requested {
                supervisor_ringing,
                call: CallLink::Present | CallLink::AwaitingAgent,
            } => {
                let (reason, why) = match event {
                    CallEvent::Held => (
                        FailReason::MonitoringFailed,
                        "the agent put the customer on hold",
                    ),
                    CallEvent::Consult => (
                        FailReason::MonitoringFailed,
                        "the agent started a consult (the customer is on hold)",
                    ),
                    CallEvent::SecurePayment => (
                        FailReason::AgentNotReady,
                        "the customer is in the secure-payment system",
                    ),
                    CallEvent::Conference => {
                        (FailReason::NoPermission, "the call became a conference")
                    }
                    CallEvent::Released => {
                        self.state = State::Requested {
                            supervisor_ringing,
                            call: CallLink::Vanished(Vanished::AgentReleased),
                        };
                        return Ok(Vec::new());
                    }
                };
                let why = format!("{why} while the supervisor's phone rang");
                Ok(self.finish(at_ms, Ending::Failed(reason), why))
            }
            State::Active { .. } => {
                let (ending, why) = match event {
                    CallEvent::Held => (
                        Ending::Aborted(AbortReason::AgentHeldCall),
                        "the agent put the customer on hold",
                    ),
                    CallEvent::Consult => (
                        Ending::Aborted(AbortReason::AgentHeldCall),
                        "the agent started a consult (the customer is on hold)",
                    ),
                    CallEvent::SecurePayment => (
                        Ending::Aborted(AbortReason::AgentHeldCall),
                        "the agent transferred the customer to the secure-payment system",
                    ),
                    CallEvent::Released => (
                        Ending::Aborted(AbortReason::AgentHeldCall),
                        "the agent released the call",
                    ),
                    CallEvent::Conference => (
                        Ending::Failed(FailReason::NoPermission),
                        "the call became a conference, which may not be monitored",
                    ),
                };
                Ok(self.call_ends(at_ms, ending, why.to_owned()))
            }
            _ => Err(not_legal),
        }
    }

    fn hangup(
        &mut self,
        at_ms: u64,
        party: HangupParty,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        let direction = match &self.binding {
            Some(b) => b.call.direction,
            None => return Err(Refused::NotStarted),
        };
        match (self.state, party) {
            (State::Requested { .. }, HangupParty::Supervisor) => Ok(self.finish(
                at_ms,
                Ending::Failed(FailReason::SupervisorDidntAnswer),
                "the supervisor's leg ended before it was answered".to_owned(),
            )),
            (
                State::Requested {
                    supervisor_ringing,
                    call: CallLink::Present | CallLink::AwaitingAgent,
                },
                HangupParty::Customer | HangupParty::Agent,
            ) => {
                let vanished = if party == HangupParty::Customer {
                    Vanished::CustomerHungUp
                } else {
                    Vanished::AgentHungUp
                };
                self.state = State::Requested {
                    supervisor_ringing,
                    call: CallLink::Vanished(vanished),
                };
                Ok(Vec::new())
            }
            (State::Active { .. }, HangupParty::Supervisor) => Ok(self.finish(
                at_ms,
                Ending::Aborted(AbortReason::SupervisorHungUp),
                "the supervisor hung up".to_owned(),
            )),
            (
                State::Active {
                    mode,
                    customer_gone,
                    agent_gone,
                },
                HangupParty::Customer | HangupParty::Agent,
            ) => {
                let customer = party == HangupParty::Customer;
                if (customer && customer_gone) || (!customer && agent_gone) {
                    return Err(Refused::PartyGone {
                        party: party.as_str(),
                    });
                }
                let ending = match (direction, customer) {
                    (Direction::Inbound, false) if customer_gone => Some((
                        AbortReason::CallerHungUp,
                        "the customer hung up, then the agent",
                    )),
                    (Direction::Inbound, false) => {
                        Some((AbortReason::AgentHungUp, "the agent hung up"))
                    }
                    (Direction::Inbound, true) => None,
                    (Direction::Outbound, true) if agent_gone => Some((
                        AbortReason::AgentHungUp,
                        "the agent hung up, then the customer",
                    )),
                    (Direction::Outbound, false) if customer_gone => Some((
                        AbortReason::AgentHungUp,
                        "the customer hung up, then the agent",
                    )),
                    (Direction::Outbound, _) => None,
                };
                match ending {
                    Some((reason, why)) => {
                        Ok(self.call_ends(at_ms, Ending::Aborted(reason), why.to_owned()))
                    }
                    None => {
                        self.state = State::Active {
                            mode,
                            customer_gone: customer_gone || customer,
                            agent_gone: agent_gone || !customer,
                        };
                        Ok(Vec::new())
                    }
                }
            }
            (State::NoCall { vanished }, HangupParty::Supervisor) => {
                let (ending, why) = match vanished {
                    Some(vanished) => self.no_call_ending(vanished, "the supervisor hung up"),
                    None => (
                        Ending::Aborted(AbortReason::SupervisorHungUp),
                        "the supervisor hung up between calls".to_owned(),
                    ),
                };
                Ok(self.finish(at_ms, ending, why))
            }
            _ => Err(not_legal),
        }
    }

    fn agent_next_call(
        &mut self,
        at_ms: u64,
        call: CallFacts,
        supervisor_may_listen: bool,
        not_legal: Refused,
    ) -> Result<Vec<Output>, Refused> {
        let Some(b) = &self.binding else {
            return Err(Refused::NotStarted);
        };
        if b.scope == SessionScope::Call {
            return Err(Refused::NotAgentScope);
        }
        if !matches!(self.state, State::NoCall { .. }) {
            return Err(not_legal);
        }
        if call.kind == CallKind::Web {
            return Err(Refused::WebCall);
        }
        if call.agent_not_answered() {
            return Err(Refused::AgentNotAnswered);
        }
        if let Some(b) = &mut self.binding {
            b.call = call;
        }
        if !supervisor_may_listen {
            // A right over the agent, not a fact of this call: following the agent is over.
            return Ok(self.finish(
                at_ms,
                Ending::Failed(FailReason::NoPermission),
                "the supervisor no longer has the listen right over this agent".to_owned(),
            ));
        }
        match check_rights(&call, true).or_else(|| check_call_state(&call)) {
            // Skipped: reported and audited, the session waits for the next call.
            Some((reason, why)) => Ok(self.report(at_ms, Ending::Failed(reason), why)),
            None => Ok(self.connect(at_ms)),
        }
    }

    /// The call is answered and present: media flows, in listen.
    fn connect(&mut self, at_ms: u64) -> Vec<Output> {
        let Some(b) = &self.binding else {
            return Vec::new();
        };
        let call = b.call.call;
        let mut outputs = vec![
            Output::Audit(self.audit(b, at_ms, AuditAction::Start, Some(Mode::Listen), None)),
            Output::ConnectMedia {
                call,
                mode: Mode::Listen,
            },
        ];
        self.state = State::Active {
            mode: Mode::Listen,
            customer_gone: false,
            agent_gone: false,
        };
        outputs.extend(self.alert(
            at_ms,
            AlertKind::MonitoringInitiated,
            "the supervisor answered; media flows".to_owned(),
        ));
        outputs
    }

    /// Monitoring of the current call ends because of the call: the session ends, or, following
    /// an agent, waits for the next call.
    fn call_ends(&mut self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
        let follows_agent = self
            .binding
            .as_ref()
            .is_some_and(|b| matches!(b.scope, SessionScope::Agent { .. }));
        if follows_agent {
            let outputs = self.report(at_ms, ending, why);
            self.state = State::NoCall { vanished: None };
            outputs
        } else {
            self.finish(at_ms, ending, why)
        }
    }

    /// The session ends.
    fn finish(&mut self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
        let terminal = ending.state();
        let mut outputs = self.report(at_ms, ending, why);
        self.state = terminal;
        outputs.push(Output::Ended { state: terminal });
        outputs
    }

    /// Audit, disconnect if media flows, alert. Changes no state.
    fn report(&self, at_ms: u64, ending: Ending, why: String) -> Vec<Output> {
        let Some(b) = &self.binding else {
            return Vec::new();
        };
        let mode = self.state.mode();
        let kind = ending.alert();
        let mut outputs = Vec::with_capacity(4);
        outputs.push(Output::Audit(self.audit(
            b,
            at_ms,
            ending.audit_action(),
            mode,
            Some(kind),
        )));
        if mode.is_some() {
            outputs.push(Output::DisconnectMedia { call: b.call.call });
        }
        outputs.extend(self.alert(at_ms, kind, why));
        outputs
    }

    fn audit(
        &self,
        b: &Binding,
        at_ms: u64,
        action: AuditAction,
        mode: Option<Mode>,
        alert: Option<AlertKind>,
    ) -> AuditRecord {
        AuditRecord {
            action,
            session: self.id,
            supervisor: b.supervisor.clone(),
            agent: b.agent.clone(),
            call: b.call.call,
            mode,
            alert,
            at_ms,
        }
    }

    fn alert(&self, at_ms: u64, kind: AlertKind, reason: String) -> Option<Output> {
        self.binding.as_ref().map(|b| {
            Output::Alert(Alert {
                kind,
                at_ms,
                session: self.id,
                call: b.call.call,
                reason,
            })
        })
    }
}

/// Rules 2–3 of the module docs: rights over the agent, and conferences.
fn check_rights(call: &CallFacts, supervisor_may_listen: bool) -> Option<(FailReason, String)> {
    if !supervisor_may_listen {
        Some((
            FailReason::NoPermission,
            "the supervisor has no listen right over this agent".to_owned(),
        ))
    } else if call.conference {
        Some((
            FailReason::NoPermission,
            "the call is a conference, which may not be monitored".to_owned(),
        ))
    } else {
        None
    }
}

/// Rules 5–7 of the module docs: the call's state.
fn check_call_state(call: &CallFacts) -> Option<(FailReason, String)> {
    let (reason, why) = if call.secure_payment {
        (
            FailReason::AgentNotReady,
            "the customer is in the secure-payment system",
        )
    } else if call.on_hold && call.in_consult {
        (
            FailReason::MonitoringFailed,
            "the agent is in a consult and the customer is on hold",
        )
    } else if call.on_hold {
        (FailReason::MonitoringFailed, "the customer is on hold")
    } else if call.in_consult {
        (
            FailReason::AgentNotReady,
            "the agent is the consulted party of a consult",
        )
    } else {
        return None;
    };
    Some((reason, why.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use AlertKind as K;

    const NUMBER: &str = "+441632960000";

    fn session_id() -> SupervisionId {
        "s_00000000000000a1"
            .parse()
            .expect("a valid supervision id")
    }

    fn call_id(n: u64) -> CallId {
        format!("c_{n:016x}").parse().expect("a valid call id")
    }

    fn inbound() -> CallFacts {
        CallFacts::business(call_id(1), Direction::Inbound)
    }

    fn outbound() -> CallFacts {
        CallFacts::business(call_id(1), Direction::Outbound)
    }

    fn start(call: CallFacts) -> Start {
        Start {
            supervisor: SupervisorId("sup-1".into()),
            agent: AgentId("agent-7".into()),
            scope: SessionScope::Call,
            call,
            supervisor_may_listen: true,
            registered_number: NUMBER.into(),
            answer_timeout: None,
        }
    }

    fn persistent(call: CallFacts) -> Start {
        Start {
            scope: SessionScope::Agent {
                grant_id: Some(GrantId(9)),
            },
            ..start(call)
        }
    }

    fn active(mode: Mode) -> State {
        State::Active {
            mode,
            customer_gone: false,
            agent_gone: false,
        }
    }

    /// One step of a scenario on the virtual clock.
    enum Step {
        In(u64, Input),
        Tick(u64),
    }
    use Step::{In, Tick};

    fn ringing(at_ms: u64) -> Step {
        In(at_ms, Input::SupervisorRinging)
    }

    fn answered(at_ms: u64) -> Step {
        answered_from(at_ms, NUMBER)
    }

    fn answered_from(at_ms: u64, calling_number: &str) -> Step {
        In(
            at_ms,
            Input::SupervisorAnswered {
                calling_number: calling_number.into(),
            },
        )
    }

    fn hangup(at_ms: u64, party: HangupParty) -> Step {
        In(at_ms, Input::Hangup { party })
    }

    fn stop(at_ms: u64) -> Step {
        In(at_ms, Input::Stop)
    }

    use HangupParty::{Agent, Customer, Supervisor};

    /// A scenario of the seed, with the alerts it must raise and the state it must end in.
    struct Case {
        name: &'static str,
        start: Start,
        steps: Vec<Step>,
        alerts: &'static [AlertKind],
        end: State,
    }

    fn new_session() -> Session {
        Session::new(session_id(), AnswerTimeout::DEFAULT)
    }

    /// Runs a scenario from `Start` at t = 0; every step must be accepted.
    fn run(start: Start, steps: Vec<Step>) -> (Session, Vec<Output>) {
        let mut session = new_session();
        let mut outputs = session
            .handle(0, Input::Start(start))
            .expect("start accepted");
        assert_order(&outputs);
        for step in steps {
            let more = match step {
                In(at_ms, input) => {
                    let name = input.name();
                    session
                        .handle(at_ms, input)
                        .unwrap_or_else(|e| panic!("{name} at {at_ms} ms refused: {e}"))
                }
                Tick(at_ms) => session.on_timeout(at_ms),
            };
            assert_order(&more);
            outputs.extend(more);
        }
        (session, outputs)
    }

    fn alerts(outputs: &[Output]) -> Vec<AlertKind> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::Alert(a) => Some(a.kind),
                _ => None,
            })
            .collect()
    }

    /// The calls the supervisor's media was connected to.
    fn connected(outputs: &[Output]) -> Vec<CallId> {
        outputs
            .iter()
            .filter_map(|o| match o {
                Output::ConnectMedia { call, .. } => Some(*call),
                _ => None,
            })
            .collect()
    }

    /// The documented order of one input's outputs.
    fn rank(output: &Output) -> u8 {
        match output {
            Output::Audit(_) => 0,
            Output::ConnectMedia { .. }
            | Output::SetMedia { .. }
            | Output::DisconnectMedia { .. } => 1,
            Output::AnnounceNoCall => 2,
            Output::Alert(_) => 3,
            Output::Ended { .. } => 4,
        }
    }

    fn assert_order(outputs: &[Output]) {
        assert!(
            outputs.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])),
            "outputs out of order: {outputs:?}"
        );
        for (i, output) in outputs.iter().enumerate() {
            if let Output::ConnectMedia { call, mode } = output {
                let audited = i > 0
                    && matches!(&outputs[i - 1], Output::Audit(r)
                        if r.action == AuditAction::Start && r.call == *call && r.mode == Some(*mode));
                assert!(
                    audited,
                    "ConnectMedia without the audit right before it: {outputs:?}"
                );
            }
        }
    }

    fn check(cases: Vec<Case>) {
        assert!(!cases.is_empty());
        for case in cases {
            let (session, outputs) = run(case.start, case.steps);
            assert_eq!(alerts(&outputs), case.alerts, "{}: alerts", case.name);
            assert_eq!(session.state(), case.end, "{}: final state", case.name);
            let ended: Vec<State> = outputs
                .iter()
                .filter_map(|o| match o {
                    Output::Ended { state } => Some(*state),
                    _ => None,
                })
                .collect();
            let expected_ended = if case.end.is_terminal() {
                vec![case.end]
            } else {
                Vec::new()
            };
            assert_eq!(ended, expected_ended, "{}: Ended outputs", case.name);
            assert_eq!(
                session.next_deadline().is_some(),
                matches!(case.end, State::Requested { .. })
            );
        }
    }

    // --- One test per row of the SPEC §2 alert table, one entry per seed scenario -------------

    #[test]
    fn row_monitoring_initiated() {
        check(vec![
            Case {
                name: "supervisor answers a call in progress (inbound)",
                start: start(inbound()),
                steps: vec![ringing(1_000), answered(5_000)],
                alerts: &[K::MonitoringInitiated],
                end: active(Mode::Listen),
            },
            Case {
                name: "supervisor answers a call in progress (outbound)",
                start: start(outbound()),
                steps: vec![ringing(1_000), answered(5_000)],
                alerts: &[K::MonitoringInitiated],
                end: active(Mode::Listen),
            },
            Case {
                name: "agent releases while the phone rings; answered: no call, waits",
                start: start(inbound()),
                steps: vec![
                    ringing(1_000),
                    In(2_000, Input::CallReleasedByAgent),
                    answered(5_000),
                ],
                alerts: &[K::MonitoringInitiated],
                end: State::NoCall {
                    vanished: Some(Vanished::AgentReleased),
                },
            },
            Case {
                name: "agent releases while the phone rings; answered; stop",
                start: start(inbound()),
                steps: vec![
                    ringing(1_000),
                    In(2_000, Input::CallReleasedByAgent),
                    answered(5_000),
                    stop(9_000),
                ],
                alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
            Case {
                name: "agent hangs up while the phone rings (outbound); answered; the leg ends",
                start: start(outbound()),
                steps: vec![
                    ringing(1_000),
                    hangup(2_000, Agent),
                    answered(5_000),
                    hangup(8_000, Supervisor),
                ],
                alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
            Case {
                name: "agent hangs up while the phone rings (inbound); answered; stop",
                start: start(inbound()),
                steps: vec![
                    ringing(1_000),
                    hangup(2_000, Agent),
                    answered(5_000),
                    stop(8_000),
                ],
                alerts: &[K::MonitoringInitiated, K::AbortedAgentHungUp],
                end: State::Aborted(AbortReason::AgentHungUp),
            },
            Case {
                name: "customer hangs up while the phone rings; answered; stop",
                start: start(inbound()),
                steps: vec![
                    ringing(1_000),
                    hangup(2_000, Customer),
                    answered(5_000),
                    stop(8_000),
                ],
                alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
            Case {
                name: "customer hangs up while the phone rings; not answered",
                start: start(inbound()),
                steps: vec![ringing(1_000), hangup(2_000, Customer), Tick(30_000)],
                alerts: &[K::FailedSupervisorDidntAnswer],
                end: State::Failed(FailReason::SupervisorDidntAnswer),
            },
        ]);
    }

    #[test]
    fn row_monitoring_stopped() {
        check(vec![
            Case {
                name: "listens, then stops",
                start: start(inbound()),
                steps: vec![answered(5_000), stop(60_000)],
                alerts: &[K::MonitoringInitiated, K::MonitoringStopped],
                end: State::Stopped,
            },
            Case {
                name: "escalates through every mode, then stops",
                start: start(outbound()),
                steps: vec![
                    answered(5_000),
                    In(6_000, Input::SetMode(Mode::Whisper)),
                    In(7_000, Input::SetMode(Mode::Barge)),
                    In(8_000, Input::SetMode(Mode::Takeover)),
                    In(9_000, Input::SetMode(Mode::TakeoverListen)),
                    In(10_000, Input::SetMode(Mode::Listen)),
                    stop(11_000),
                ],
                alerts: &[K::MonitoringInitiated, K::MonitoringStopped],
                end: State::Stopped,
            },
            Case {
                name: "the caller left (inbound), the agent is still monitored; stop",
                start: start(inbound()),
                steps: vec![answered(5_000), hangup(6_000, Customer), stop(7_000)],
                alerts: &[K::MonitoringInitiated, K::MonitoringStopped],
                end: State::Stopped,
            },
        ]);
    }

    #[test]
    fn row_failed_agent_not_ready() {
        check(vec![
            Case {
                name: "listens to the consulted agent during a consult",
                start: start(CallFacts {
                    in_consult: true,
                    ..inbound()
                }),
                steps: vec![],
                alerts: &[K::FailedAgentNotReady],
                end: State::Failed(FailReason::AgentNotReady),
            },
            Case {
                name: "the customer is in the mid-call payment system",
                start: start(CallFacts {
                    secure_payment: true,
                    ..inbound()
                }),
                steps: vec![],
                alerts: &[K::FailedAgentNotReady],
                end: State::Failed(FailReason::AgentNotReady),
            },
            Case {
                name: "payment segment wins over hold",
                start: start(CallFacts {
                    secure_payment: true,
                    on_hold: true,
                    ..outbound()
                }),
                steps: vec![],
                alerts: &[K::FailedAgentNotReady],
                end: State::Failed(FailReason::AgentNotReady),
            },
            Case {
                name: "the customer goes to the payment system while the phone rings",
                start: start(inbound()),
                steps: vec![ringing(1_000), In(2_000, Input::SecurePaymentStarted)],
                alerts: &[K::FailedAgentNotReady],
                end: State::Failed(FailReason::AgentNotReady),
            },
        ]);
    }

    #[test]
    fn row_failed_no_call_to_monitor() {
        check(vec![
            Case {
                name: "agent releases while ringing; answered; stop",
                start: start(outbound()),
                steps: vec![
                    In(2_000, Input::CallReleasedByAgent),
                    answered(5_000),
                    stop(8_000),
                ],
                alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
            Case {
                name: "agent hangs up while ringing (outbound); answered; stop",
                start: start(outbound()),
                steps: vec![hangup(2_000, Agent), answered(5_000), stop(8_000)],
                alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
            Case {
                name: "customer hangs up while ringing (outbound); answered; stop",
                start: start(outbound()),
                steps: vec![hangup(2_000, Customer), answered(5_000), stop(8_000)],
                alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
            Case {
                name: "the agent has not answered yet (outbound); supervisor answers",
                start: start(CallFacts {
                    agent_answered: false,
                    ..outbound()
                }),
                steps: vec![ringing(1_000), answered(5_000)],
                alerts: &[K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
            Case {
                name: "stopped while ringing after the call vanished",
                start: start(inbound()),
                steps: vec![hangup(2_000, Customer), stop(3_000)],
                alerts: &[K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
        ]);
    }

    #[test]
    fn agent_answering_first_lets_an_outbound_session_start() {
        check(vec![Case {
            name: "outbound: the agent answers, then the supervisor",
            start: start(CallFacts {
                agent_answered: false,
                ..outbound()
            }),
            steps: vec![
                ringing(1_000),
                In(3_000, Input::AgentAnswered),
                answered(5_000),
            ],
            alerts: &[K::MonitoringInitiated],
            end: active(Mode::Listen),
        }]);
    }

    #[test]
    fn row_failed_supervisor_didnt_answer() {
        check(vec![
            Case {
                name: "the phone rings 30 s",
                start: start(inbound()),
                steps: vec![ringing(1_000), Tick(29_999), Tick(30_000)],
                alerts: &[K::FailedSupervisorDidntAnswer],
                end: State::Failed(FailReason::SupervisorDidntAnswer),
            },
            Case {
                name: "the supervisor's leg ends unanswered (no rejection)",
                start: start(inbound()),
                steps: vec![ringing(1_000), hangup(20_000, Supervisor)],
                alerts: &[K::FailedSupervisorDidntAnswer],
                end: State::Failed(FailReason::SupervisorDidntAnswer),
            },
            Case {
                name: "outbound, neither the agent nor the supervisor answers",
                start: start(CallFacts {
                    agent_answered: false,
                    ..outbound()
                }),
                steps: vec![Tick(30_000)],
                alerts: &[K::FailedSupervisorDidntAnswer],
                end: State::Failed(FailReason::SupervisorDidntAnswer),
            },
        ]);
    }

    #[test]
    fn row_failed_supervisor_number_invalid() {
        check(vec![
            Case {
                name: "the supervisor rejects the call",
                start: start(inbound()),
                steps: vec![ringing(1_000), In(3_000, Input::SupervisorRejected)],
                alerts: &[K::FailedSupervisorNumberInvalid],
                end: State::Failed(FailReason::SupervisorNumberInvalid),
            },
            Case {
                name: "the supervisor's phone is in do-not-disturb",
                start: start(inbound()),
                steps: vec![In(500, Input::SupervisorDnd)],
                alerts: &[K::FailedSupervisorNumberInvalid],
                end: State::Failed(FailReason::SupervisorNumberInvalid),
            },
            Case {
                name: "the registered number is not a number",
                start: Start {
                    registered_number: "44 16x".into(),
                    ..start(inbound())
                },
                steps: vec![],
                alerts: &[K::FailedSupervisorNumberInvalid],
                end: State::Failed(FailReason::SupervisorNumberInvalid),
            },
            Case {
                name: "no number registered",
                start: Start {
                    registered_number: String::new(),
                    ..start(inbound())
                },
                steps: vec![],
                alerts: &[K::FailedSupervisorNumberInvalid],
                end: State::Failed(FailReason::SupervisorNumberInvalid),
            },
            Case {
                name: "answered from another number",
                start: start(inbound()),
                steps: vec![ringing(1_000), answered_from(5_000, "+441632960001")],
                alerts: &[K::FailedSupervisorNumberInvalid],
                end: State::Failed(FailReason::SupervisorNumberInvalid),
            },
            Case {
                name: "answered from an anonymous calling number",
                start: start(outbound()),
                steps: vec![answered_from(5_000, "anonymous")],
                alerts: &[K::FailedSupervisorNumberInvalid],
                end: State::Failed(FailReason::SupervisorNumberInvalid),
            },
            Case {
                name: "the number is checked before the vanished call",
                start: start(inbound()),
                steps: vec![hangup(1_000, Customer), answered_from(5_000, "+1555")],
                alerts: &[K::FailedSupervisorNumberInvalid],
                end: State::Failed(FailReason::SupervisorNumberInvalid),
            },
        ]);
    }

    #[test]
    fn row_failed_no_permission() {
        check(vec![
            Case {
                name: "listens to a conference",
                start: start(CallFacts {
                    conference: true,
                    ..inbound()
                }),
                steps: vec![],
                alerts: &[K::FailedNoPermission],
                end: State::Failed(FailReason::NoPermission),
            },
            Case {
                name: "no listen right over this agent",
                start: Start {
                    supervisor_may_listen: false,
                    ..start(inbound())
                },
                steps: vec![],
                alerts: &[K::FailedNoPermission],
                end: State::Failed(FailReason::NoPermission),
            },
            Case {
                name: "the right is checked first (invalid number, call on hold)",
                start: Start {
                    supervisor_may_listen: false,
                    registered_number: "x".into(),
                    ..start(CallFacts {
                        on_hold: true,
                        ..inbound()
                    })
                },
                steps: vec![],
                alerts: &[K::FailedNoPermission],
                end: State::Failed(FailReason::NoPermission),
            },
            Case {
                name: "the call becomes a conference while the phone rings",
                start: start(inbound()),
                steps: vec![ringing(1_000), In(2_000, Input::ConferenceStarted)],
                alerts: &[K::FailedNoPermission],
                end: State::Failed(FailReason::NoPermission),
            },
            Case {
                name: "the call becomes a conference while listening",
                start: start(inbound()),
                steps: vec![answered(5_000), In(9_000, Input::ConferenceStarted)],
                alerts: &[K::MonitoringInitiated, K::FailedNoPermission],
                end: State::Failed(FailReason::NoPermission),
            },
        ]);
    }

    #[test]
    fn row_monitoring_failed() {
        check(vec![
            Case {
                name: "the customer is on hold",
                start: start(CallFacts {
                    on_hold: true,
                    ..inbound()
                }),
                steps: vec![],
                alerts: &[K::MonitoringFailed],
                end: State::Failed(FailReason::MonitoringFailed),
            },
            Case {
                name: "the agent is in a consult (the customer on hold)",
                start: start(CallFacts {
                    on_hold: true,
                    in_consult: true,
                    ..inbound()
                }),
                steps: vec![],
                alerts: &[K::MonitoringFailed],
                end: State::Failed(FailReason::MonitoringFailed),
            },
            Case {
                name: "the customer is put on hold while the phone rings",
                start: start(outbound()),
                steps: vec![ringing(1_000), In(2_000, Input::CallHeld)],
                alerts: &[K::MonitoringFailed],
                end: State::Failed(FailReason::MonitoringFailed),
            },
            Case {
                name: "the agent starts a consult while the phone rings",
                start: start(inbound()),
                steps: vec![ringing(1_000), In(2_000, Input::ConsultStarted)],
                alerts: &[K::MonitoringFailed],
                end: State::Failed(FailReason::MonitoringFailed),
            },
        ]);
    }

    #[test]
    fn row_aborted_agent_held_call() {
        let held = |name, input: Input| Case {
            name,
            start: start(inbound()),
            steps: vec![
                answered(5_000),
                In(6_000, Input::SetMode(Mode::Whisper)),
                In(9_000, input),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedAgentHeldCall],
            end: State::Aborted(AbortReason::AgentHeldCall),
        };
        check(vec![
            held("the agent puts the customer on hold", Input::CallHeld),
            held("the agent starts a consult", Input::ConsultStarted),
            held("the agent releases the call", Input::CallReleasedByAgent),
            held(
                "the agent transfers to the payment system",
                Input::SecurePaymentStarted,
            ),
        ]);
    }

    #[test]
    fn row_aborted_agent_hung_up() {
        check(vec![
            Case {
                name: "inbound: the agent hangs up",
                start: start(inbound()),
                steps: vec![answered(5_000), hangup(9_000, Agent)],
                alerts: &[K::MonitoringInitiated, K::AbortedAgentHungUp],
                end: State::Aborted(AbortReason::AgentHungUp),
            },
            Case {
                name: "outbound: the customer hangs up, then the agent",
                start: start(outbound()),
                steps: vec![
                    answered(5_000),
                    hangup(8_000, Customer),
                    hangup(9_000, Agent),
                ],
                alerts: &[K::MonitoringInitiated, K::AbortedAgentHungUp],
                end: State::Aborted(AbortReason::AgentHungUp),
            },
            Case {
                name: "outbound: the agent hangs up, then the customer (the agent's call)",
                start: start(outbound()),
                steps: vec![
                    answered(5_000),
                    hangup(8_000, Agent),
                    hangup(9_000, Customer),
                ],
                alerts: &[K::MonitoringInitiated, K::AbortedAgentHungUp],
                end: State::Aborted(AbortReason::AgentHungUp),
            },
        ]);
    }

    #[test]
    fn row_aborted_caller_hung_up() {
        check(vec![Case {
            name: "inbound: the customer hangs up, then the agent",
            start: start(inbound()),
            steps: vec![
                answered(5_000),
                hangup(8_000, Customer),
                hangup(9_000, Agent),
            ],
            alerts: &[K::MonitoringInitiated, K::AbortedCallerHungUp],
            end: State::Aborted(AbortReason::CallerHungUp),
        }]);
    }

    #[test]
    fn row_aborted_supervisor_hung_up() {
        check(vec![
            Case {
                name: "the supervisor hangs up while listening",
                start: start(inbound()),
                steps: vec![answered(5_000), hangup(9_000, Supervisor)],
                alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
                end: State::Aborted(AbortReason::SupervisorHungUp),
            },
            Case {
                name: "the supervisor hangs up while barging",
                start: start(outbound()),
                steps: vec![
                    answered(5_000),
                    In(6_000, Input::SetMode(Mode::Barge)),
                    hangup(9_000, Supervisor),
                ],
                alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
                end: State::Aborted(AbortReason::SupervisorHungUp),
            },
            Case {
                name: "the agent hangs up (outbound: the customer remains), then the supervisor",
                start: start(outbound()),
                steps: vec![
                    answered(5_000),
                    hangup(8_000, Agent),
                    hangup(9_000, Supervisor),
                ],
                alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
                end: State::Aborted(AbortReason::SupervisorHungUp),
            },
            Case {
                name: "inbound: the customer hangs up, then the supervisor",
                start: start(inbound()),
                steps: vec![
                    answered(5_000),
                    hangup(8_000, Customer),
                    hangup(9_000, Supervisor),
                ],
                alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
                end: State::Aborted(AbortReason::SupervisorHungUp),
            },
            Case {
                name: "outbound: the customer hangs up, then the supervisor",
                start: start(outbound()),
                steps: vec![
                    answered(5_000),
                    hangup(8_000, Customer),
                    hangup(9_000, Supervisor),
                ],
                alerts: &[K::MonitoringInitiated, K::AbortedSupervisorHungUp],
                end: State::Aborted(AbortReason::SupervisorHungUp),
            },
        ]);
    }

    #[test]
    fn row_validation() {
        use NumberProblem::*;
        let table: [(&str, Result<&str, NumberProblem>); 17] = [
            ("441632960000", Ok("441632960000")),
            ("+441632960000", Ok("441632960000")),
            ("123", Ok("123")),
            ("+123", Ok("123")),
            ("12345678901234567890", Ok("12345678901234567890")),
            ("", Err(Empty)),
            ("+", Err(Empty)),
            ("12", Err(TooShort { digits: 2 })),
            ("123456789012345678901", Err(TooLong { digits: 21 })),
            ("44 1632 960000", Err(NotADigit)),
            (" 441632960000", Err(NotADigit)),
            ("441632960000\n", Err(NotADigit)),
            ("44-1632-960000", Err(NotADigit)),
            ("supervisor", Err(NotADigit)),
            ("++441632960000", Err(NotADigit)),
            ("4416+32960000", Err(NotADigit)),
            ("٤٤١٦٣٢", Err(NotADigit)),
        ];
        for (input, expected) in table {
            let got = validate_supervisor_number(input);
            match expected {
                Ok(digits) => assert_eq!(
                    got.as_ref().map(SupervisorNumber::digits),
                    Ok(digits),
                    "{input:?}"
                ),
                Err(problem) => assert_eq!(got, Err(ValidationAlert { problem }), "{input:?}"),
            }
        }
        let alert = validate_supervisor_number("12ab").expect_err("not a number");
        assert_eq!(ValidationAlert::CODE, "validation");
        assert!(alert.to_string().starts_with(ValidationAlert::TEXT));
        assert_eq!(
            ValidationAlert::TEXT,
            "the supervisor telephone number must be a number"
        );
    }

    // --- Timeouts ------------------------------------------------------------------------------

    #[test]
    fn answer_timeout_defaults_to_30_s() {
        let mut session = new_session();
        session
            .handle(0, Input::Start(start(inbound())))
            .expect("start");
        assert_eq!(session.next_deadline(), Some(30_000));
        assert_eq!(session.on_timeout(29_999), Vec::new());
        assert!(matches!(session.state(), State::Requested { .. }));

        // Answered at 29.999 s: in time.
        let mut in_time = session.clone();
        in_time
            .handle(
                29_999,
                Input::SupervisorAnswered {
                    calling_number: NUMBER.into(),
                },
            )
            .expect("in time");
        assert_eq!(in_time.state(), active(Mode::Listen));
        assert_eq!(in_time.next_deadline(), None);
        assert_eq!(in_time.on_timeout(40_000), Vec::new());

        // At 30 s the answer is refused until the timeout fires, then the session has failed.
        let before = session.clone();
        let late = session.handle(
            30_000,
            Input::SupervisorAnswered {
                calling_number: NUMBER.into(),
            },
        );
        assert_eq!(
            late,
            Err(Refused::TimeoutDue {
                deadline_ms: 30_000
            })
        );
        assert_eq!(session, before);
        let outputs = session.on_timeout(30_000);
        assert_eq!(alerts(&outputs), [K::FailedSupervisorDidntAnswer]);
        assert!(
            matches!(&outputs[0], Output::Audit(r) if r.action == AuditAction::Failure && r.at_ms == 30_000 && r.mode.is_none())
        );
        assert_eq!(
            outputs.last(),
            Some(&Output::Ended {
                state: State::Failed(FailReason::SupervisorDidntAnswer)
            })
        );
        assert_eq!(outputs.len(), 3, "{outputs:?}");
        assert_eq!(session.next_deadline(), None);
        assert_eq!(session.on_timeout(60_000), Vec::new());
    }

    #[test]
    fn answer_timeout_is_configurable_per_session_and_globally() {
        let per_session = Start {
            answer_timeout: Some(AnswerTimeout::from_ms(10_000).expect("in range")),
            ..start(inbound())
        };
        let mut session = new_session();
        session
            .handle(2_000, Input::Start(per_session))
            .expect("start");
        assert_eq!(session.next_deadline(), Some(12_000));
        assert_eq!(session.on_timeout(11_999), Vec::new());
        assert_eq!(
            alerts(&session.on_timeout(12_000)),
            [K::FailedSupervisorDidntAnswer]
        );

        let global = AnswerTimeout::from_ms(45_000).expect("in range");
        let mut session = Session::new(session_id(), global);
        session
            .handle(0, Input::Start(start(inbound())))
            .expect("start");
        assert_eq!(session.next_deadline(), Some(45_000));
        assert_eq!(session.on_timeout(44_999), Vec::new());
        assert_eq!(
            alerts(&session.on_timeout(45_000)),
            [K::FailedSupervisorDidntAnswer]
        );

        assert_eq!(AnswerTimeout::default().ms(), 30_000);
        assert_eq!(
            AnswerTimeout::from_ms(999),
            Err(AnswerTimeoutOutOfRange { ms: 999 })
        );
        assert!(AnswerTimeout::from_ms(1_000).is_ok());
        assert!(AnswerTimeout::from_ms(600_000).is_ok());
        assert_eq!(
            AnswerTimeout::from_ms(600_001),
            Err(AnswerTimeoutOutOfRange { ms: 600_001 })
        );
    }

    #[test]
    fn time_never_runs_backwards_in_a_session() {
        let (mut session, _) = run(start(inbound()), vec![answered(5_000)]);
        let outputs = session.handle(1_000, Input::Stop).expect("stop");
        assert!(outputs.iter().all(|o| match o {
            Output::Audit(r) => r.at_ms == 5_000,
            Output::Alert(a) => a.at_ms == 5_000,
            _ => true,
        }));
    }

    // --- Audit and media --------------------------------------------------------------------------

    #[test]
    fn the_start_is_audited_before_media_connects() {
        let (mut session, _) = run(start(inbound()), vec![ringing(1_000)]);
        let outputs = session
            .handle(
                5_000,
                Input::SupervisorAnswered {
                    calling_number: NUMBER.into(),
                },
            )
            .expect("answered");
        let audit = AuditRecord {
            action: AuditAction::Start,
            session: session_id(),
            supervisor: SupervisorId("sup-1".into()),
            agent: AgentId("agent-7".into()),
            call: call_id(1),
            mode: Some(Mode::Listen),
            alert: None,
            at_ms: 5_000,
        };
        assert_eq!(outputs.len(), 3, "{outputs:?}");
        assert_eq!(outputs[0], Output::Audit(audit));
        assert_eq!(
            outputs[1],
            Output::ConnectMedia {
                call: call_id(1),
                mode: Mode::Listen
            }
        );
        assert!(matches!(&outputs[2], Output::Alert(a)
            if a.kind == K::MonitoringInitiated && a.at_ms == 5_000 && a.session == session_id() && a.call == call_id(1)));
    }

    #[test]
    fn no_audit_and_no_media_when_the_call_vanished() {
        let (mut session, setup) = run(start(inbound()), vec![hangup(1_000, Customer)]);
        assert!(connected(&setup).is_empty());
        let outputs = session
            .handle(
                5_000,
                Input::SupervisorAnswered {
                    calling_number: NUMBER.into(),
                },
            )
            .expect("answered");
        assert_eq!(outputs.len(), 2, "{outputs:?}");
        assert_eq!(outputs[0], Output::AnnounceNoCall);
        assert_eq!(alerts(&outputs), [K::MonitoringInitiated]);
        let outputs = session.handle(6_000, Input::Stop).expect("stop");
        assert!(
            matches!(&outputs[0], Output::Audit(r) if r.action == AuditAction::Failure && r.alert == Some(K::FailedNoCallToMonitor))
        );
        assert!(
            !outputs
                .iter()
                .any(|o| matches!(o, Output::DisconnectMedia { .. }))
        );
        assert!(connected(&outputs).is_empty());
    }

    #[test]
    fn mode_changes_while_active_emit_audit_then_set_media() {
        let (mut session, _) = run(start(inbound()), vec![answered(5_000)]);
        let mut at_ms = 6_000;
        for mode in [
            Mode::Whisper,
            Mode::Barge,
            Mode::Takeover,
            Mode::TakeoverListen,
            Mode::Listen,
        ] {
            let outputs = session
                .handle(at_ms, Input::SetMode(mode))
                .expect("mode change");
            assert_eq!(outputs.len(), 2, "{outputs:?}");
            assert!(matches!(&outputs[0], Output::Audit(r)
                if r.action == AuditAction::ModeChange && r.mode == Some(mode) && r.at_ms == at_ms && r.alert.is_none()));
            assert_eq!(
                outputs[1],
                Output::SetMedia {
                    call: call_id(1),
                    mode
                }
            );
            assert_eq!(session.state(), active(mode));
            at_ms += 1_000;
        }
        // The current mode: nothing changes, nothing is audited.
        assert_eq!(
            session.handle(at_ms, Input::SetMode(Mode::Listen)),
            Ok(Vec::new())
        );

        session
            .handle(at_ms, Input::SetMode(Mode::Whisper))
            .expect("whisper");
        let outputs = session.handle(at_ms + 1, Input::Stop).expect("stop");
        assert!(matches!(&outputs[0], Output::Audit(r)
            if r.action == AuditAction::Stop && r.mode == Some(Mode::Whisper) && r.alert == Some(K::MonitoringStopped)));
        assert_eq!(outputs[1], Output::DisconnectMedia { call: call_id(1) });
        assert_eq!(alerts(&outputs), [K::MonitoringStopped]);
        assert_eq!(
            outputs.last(),
            Some(&Output::Ended {
                state: State::Stopped
            })
        );
    }

    #[test]
    fn every_ending_has_its_audit_action() {
        let cases: [(Start, Vec<Step>, AuditAction); 5] = [
            (
                start(inbound()),
                vec![answered(1), stop(2)],
                AuditAction::Stop,
            ),
            (
                start(CallFacts {
                    conference: true,
                    ..inbound()
                }),
                vec![],
                AuditAction::Denial,
            ),
            (
                start(CallFacts {
                    on_hold: true,
                    ..inbound()
                }),
                vec![],
                AuditAction::Failure,
            ),
            (start(inbound()), vec![Tick(30_000)], AuditAction::Failure),
            (
                start(inbound()),
                vec![answered(1), hangup(2, Agent)],
                AuditAction::Abort,
            ),
        ];
        for (start, steps, action) in cases {
            let (_, outputs) = run(start, steps);
            let last_audit = outputs.iter().rev().find_map(|o| match o {
                Output::Audit(r) => Some(r.action),
                _ => None,
            });
            assert_eq!(last_audit, Some(action));
        }
    }

    // --- Refusals --------------------------------------------------------------------------------

    #[test]
    fn illegal_inputs_are_refused_without_outputs_or_change() {
        let set_mode = || Input::SetMode(Mode::Whisper);
        let not_legal = |input, state| Refused::NotLegal { input, state };
        let next_call = || Input::AgentNextCall {
            call: CallFacts::business(call_id(2), Direction::Inbound),
            supervisor_may_listen: true,
        };
        let ended = |state| Refused::Ended { state };
        // (setup, illegal input, refusal); the setup is `None` for a session never started.
        let table: Vec<(Option<Vec<Step>>, Input, Refused)> = vec![
            (None, set_mode(), Refused::NotStarted),
            (None, Input::Stop, Refused::NotStarted),
            (
                None,
                Input::Hangup { party: Supervisor },
                Refused::NotStarted,
            ),
            (
                Some(vec![]),
                Input::Start(start(inbound())),
                Refused::AlreadyStarted,
            ),
            (Some(vec![]), set_mode(), not_legal("set_mode", "requested")),
            (
                Some(vec![]),
                Input::AgentAnswered,
                not_legal("agent_answered", "requested"),
            ),
            (Some(vec![]), next_call(), Refused::NotAgentScope),
            (
                Some(vec![ringing(1)]),
                Input::SupervisorRinging,
                not_legal("supervisor_ringing", "requested"),
            ),
            (
                Some(vec![hangup(1, Customer)]),
                Input::CallHeld,
                not_legal("call_held", "requested"),
            ),
            (
                Some(vec![hangup(1, Customer)]),
                Input::Hangup { party: Agent },
                not_legal("hangup", "requested"),
            ),
            (
                Some(vec![answered(1)]),
                Input::SupervisorAnswered {
                    calling_number: NUMBER.into(),
                },
                not_legal("supervisor_answered", "active"),
            ),
            (
                Some(vec![answered(1)]),
                Input::SupervisorRejected,
                not_legal("supervisor_rejected", "active"),
            ),
            (
                Some(vec![answered(1)]),
                Input::SupervisorDnd,
                not_legal("supervisor_dnd", "active"),
            ),
            (
                Some(vec![answered(1)]),
                Input::SupervisorRinging,
                not_legal("supervisor_ringing", "active"),
            ),
            (
                Some(vec![answered(1)]),
                Input::AgentAnswered,
                not_legal("agent_answered", "active"),
            ),
            (
                Some(vec![answered(1), hangup(2, Customer)]),
                Input::Hangup { party: Customer },
                Refused::PartyGone { party: "customer" },
            ),
            (
                Some(vec![hangup(1, Agent), answered(2)]),
                set_mode(),
                not_legal("set_mode", "no_call"),
            ),
            (
                Some(vec![hangup(1, Agent), answered(2)]),
                Input::CallHeld,
                not_legal("call_held", "no_call"),
            ),
            (
                Some(vec![hangup(1, Agent), answered(2)]),
                Input::Hangup { party: Customer },
                not_legal("hangup", "no_call"),
            ),
            (
                Some(vec![hangup(1, Agent), answered(2)]),
                next_call(),
                Refused::NotAgentScope,
            ),
            (
                Some(vec![answered(1), stop(2)]),
                Input::Stop,
                ended("stopped"),
            ),
            (
                Some(vec![answered(1), stop(2)]),
                set_mode(),
                ended("stopped"),
            ),
            (
                Some(vec![answered(1), stop(2)]),
                Input::Start(start(inbound())),
                ended("stopped"),
            ),
            (
                Some(vec![Tick(30_000)]),
                Input::SupervisorAnswered {
                    calling_number: NUMBER.into(),
                },
                ended("failed"),
            ),
            (
                Some(vec![answered(1), hangup(2, Supervisor)]),
                Input::Hangup { party: Supervisor },
                ended("aborted"),
            ),
        ];
        for (setup, input, refusal) in table {
            let name = input.name();
            let mut session = match setup {
                None => new_session(),
                Some(steps) => run(start(inbound()), steps).0,
            };
            let before = session.clone();
            assert_eq!(session.handle(20_000, input), Err(refusal), "{name}");
            assert_eq!(session, before, "{name}: the session changed");
        }
    }

    #[test]
    fn web_calls_are_refused() {
        let mut session = new_session();
        let web = start(CallFacts {
            kind: CallKind::Web,
            ..inbound()
        });
        assert_eq!(session.handle(0, Input::Start(web)), Err(Refused::WebCall));
        assert_eq!(session.state(), State::New);
        assert_eq!(session.next_deadline(), None);
        // Refusal changed nothing: a business call can still start the session.
        assert_eq!(
            session.handle(0, Input::Start(start(inbound()))),
            Ok(Vec::new())
        );
    }

    #[test]
    fn persistent_supervision_without_a_grant_is_refused() {
        let mut session = new_session();
        let ungranted = Start {
            scope: SessionScope::Agent { grant_id: None },
            ..start(inbound())
        };
        assert_eq!(
            session.handle(0, Input::Start(ungranted)),
            Err(Refused::PersistentWithoutGrant)
        );
        assert_eq!(session, new_session());
    }

    // --- Persistent supervision ---------------------------------------------------------------

    fn next_call(n: u64, facts: impl FnOnce(CallFacts) -> CallFacts) -> Input {
        Input::AgentNextCall {
            call: facts(CallFacts::business(call_id(n), Direction::Inbound)),
            supervisor_may_listen: true,
        }
    }

    #[test]
    fn a_granted_session_follows_the_agent_to_the_next_call() {
        let (mut session, first) = run(persistent(inbound()), vec![answered(5_000)]);
        assert_eq!(connected(&first), [call_id(1)]);

        // The first call ends: reported, media disconnected, no end of the session.
        let outputs = session
            .handle(9_000, Input::Hangup { party: Agent })
            .expect("hangup");
        assert!(
            matches!(&outputs[0], Output::Audit(r) if r.action == AuditAction::Abort && r.call == call_id(1))
        );
        assert_eq!(outputs[1], Output::DisconnectMedia { call: call_id(1) });
        assert_eq!(alerts(&outputs), [K::AbortedAgentHungUp]);
        assert_eq!(outputs.len(), 3, "{outputs:?}");
        assert_eq!(session.state(), State::NoCall { vanished: None });

        // The next call: the same checks, then audit, connect in listen, alert.
        let outputs = session
            .handle(20_000, next_call(2, |c| c))
            .expect("next call");
        assert!(
            matches!(&outputs[0], Output::Audit(r) if r.action == AuditAction::Start && r.call == call_id(2))
        );
        assert_eq!(
            outputs[1],
            Output::ConnectMedia {
                call: call_id(2),
                mode: Mode::Listen
            }
        );
        assert_eq!(alerts(&outputs), [K::MonitoringInitiated]);
        assert_eq!(session.state(), active(Mode::Listen));
        assert_eq!(session.call(), Some(call_id(2)));
        assert_eq!(connected(&outputs), [call_id(2)]);

        // Held: reported, then the third call; then stop ends it.
        let outputs = session.handle(21_000, Input::CallHeld).expect("held");
        assert_eq!(alerts(&outputs), [K::AbortedAgentHeldCall]);
        assert_eq!(session.state(), State::NoCall { vanished: None });
        session
            .handle(30_000, next_call(3, |c| c))
            .expect("third call");
        let outputs = session.handle(31_000, Input::Stop).expect("stop");
        assert_eq!(alerts(&outputs), [K::MonitoringStopped]);
        assert_eq!(session.state(), State::Stopped);
    }

    #[test]
    fn a_granted_session_checks_each_next_call() {
        let (session, _) = run(
            persistent(inbound()),
            vec![answered(5_000), hangup(6_000, Agent)],
        );

        // Not monitorable now: reported with its alert and skipped.
        let skips: [(Input, AlertKind, AuditAction); 4] = [
            (
                next_call(2, |c| CallFacts { on_hold: true, ..c }),
                K::MonitoringFailed,
                AuditAction::Failure,
            ),
            (
                next_call(2, |c| CallFacts {
                    in_consult: true,
                    ..c
                }),
                K::FailedAgentNotReady,
                AuditAction::Failure,
            ),
            (
                next_call(2, |c| CallFacts {
                    secure_payment: true,
                    ..c
                }),
                K::FailedAgentNotReady,
                AuditAction::Failure,
            ),
            (
                next_call(2, |c| CallFacts {
                    conference: true,
                    ..c
                }),
                K::FailedNoPermission,
                AuditAction::Denial,
            ),
        ];
        for (input, kind, action) in skips {
            let mut session = session.clone();
            let outputs = session.handle(7_000, input).expect("next call");
            assert_eq!(alerts(&outputs), [kind]);
            assert!(
                matches!(&outputs[0], Output::Audit(r) if r.action == action && r.call == call_id(2))
            );
            assert_eq!(outputs.len(), 2, "{outputs:?}");
            assert_eq!(session.state(), State::NoCall { vanished: None });
        }

        // Refused: a web call; an outbound call the agent has not answered.
        for (facts, refusal) in [
            (
                CallFacts {
                    kind: CallKind::Web,
                    ..inbound()
                },
                Refused::WebCall,
            ),
            (
                CallFacts {
                    agent_answered: false,
                    ..outbound()
                },
                Refused::AgentNotAnswered,
            ),
        ] {
            let mut session = session.clone();
            let before = session.clone();
            let input = Input::AgentNextCall {
                call: facts,
                supervisor_may_listen: true,
            };
            assert_eq!(session.handle(7_000, input), Err(refusal));
            assert_eq!(session, before);
        }

        // The right over the agent is gone: the session ends.
        let mut revoked = session.clone();
        let input = Input::AgentNextCall {
            call: CallFacts::business(call_id(2), Direction::Inbound),
            supervisor_may_listen: false,
        };
        let outputs = revoked.handle(7_000, input).expect("next call");
        assert_eq!(alerts(&outputs), [K::FailedNoPermission]);
        assert_eq!(revoked.state(), State::Failed(FailReason::NoPermission));

        // The supervisor hangs up between calls.
        let mut hung_up = session.clone();
        let outputs = hung_up
            .handle(7_000, Input::Hangup { party: Supervisor })
            .expect("hangup");
        assert_eq!(alerts(&outputs), [K::AbortedSupervisorHungUp]);
        assert_eq!(
            hung_up.state(),
            State::Aborted(AbortReason::SupervisorHungUp)
        );

        // A next call while one is attached is refused.
        let (mut attached, _) = run(persistent(inbound()), vec![answered(5_000)]);
        assert_eq!(
            attached.handle(7_000, next_call(2, |c| c)),
            Err(Refused::NotLegal {
                input: "agent_next_call",
                state: "active"
            })
        );
    }

    #[test]
    fn a_granted_session_whose_first_call_vanished_takes_the_next() {
        check(vec![
            Case {
                name: "vanished, next call, stop",
                start: persistent(outbound()),
                steps: vec![
                    hangup(1_000, Customer),
                    answered(5_000),
                    In(9_000, next_call(2, |c| c)),
                    stop(12_000),
                ],
                alerts: &[
                    K::MonitoringInitiated,
                    K::MonitoringInitiated,
                    K::MonitoringStopped,
                ],
                end: State::Stopped,
            },
            Case {
                name: "vanished, stop: no call to monitor",
                start: persistent(outbound()),
                steps: vec![hangup(1_000, Customer), answered(5_000), stop(12_000)],
                alerts: &[K::MonitoringInitiated, K::FailedNoCallToMonitor],
                end: State::Failed(FailReason::NoCallToMonitor),
            },
            Case {
                name: "while ringing, a persistent session fails like a call-scoped one",
                start: persistent(inbound()),
                steps: vec![In(1_000, Input::CallHeld)],
                alerts: &[K::MonitoringFailed],
                end: State::Failed(FailReason::MonitoringFailed),
            },
        ]);
    }

    // --- Codes and numbers ------------------------------------------------------------------------

    #[test]
    fn reason_codes_name_their_alerts_and_refusals_have_codes() {
        use FailReason as F;
        for reason in [
            F::AgentNotReady,
            F::NoCallToMonitor,
            F::SupervisorDidntAnswer,
            F::SupervisorNumberInvalid,
            F::NoPermission,
        ] {
            assert_eq!(reason.alert().code(), format!("failed_{}", reason.code()));
        }
        assert_eq!(
            F::MonitoringFailed.alert().code(),
            F::MonitoringFailed.code()
        );
        use AbortReason as A;
        for reason in [
            A::AgentHeldCall,
            A::AgentHungUp,
            A::CallerHungUp,
            A::SupervisorHungUp,
        ] {
            assert_eq!(reason.alert().code(), format!("aborted_{}", reason.code()));
        }
        assert_eq!(
            Refused::Ended { state: "stopped" }.code(),
            "supervision_ended"
        );
        assert_eq!(Refused::WebCall.code(), "web_call");
    }

    #[test]
    fn alert_codes_are_stable_and_unique() {
        let codes: Vec<&str> = AlertKind::ALL.iter().map(|k| k.code()).collect();
        let mut unique = codes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), codes.len());
        for kind in AlertKind::ALL {
            assert_eq!(kind.code().parse(), Ok(kind));
            assert!(
                kind.code()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert!(!kind.text().is_empty());
        }
        assert_eq!("validation".parse::<AlertKind>(), Err(UnknownAlertCode));
        let alert = Alert {
            kind: K::FailedSupervisorDidntAnswer,
            at_ms: 30_000,
            session: session_id(),
            call: call_id(1),
            reason: "not answered".into(),
        };
        let json = serde_json::to_value(&alert).expect("serializes");
        assert_eq!(json["kind"], "failed_supervisor_didnt_answer");
        assert_eq!(json["session"], "s_00000000000000a1");
        let (_, outputs) = run(start(inbound()), vec![answered(5_000)]);
        let Some(Output::Audit(record)) = outputs.first() else {
            panic!("no audit first: {outputs:?}");
        };
        let json = serde_json::to_value(record).expect("serializes");
        assert_eq!(json["action"], "start");
        assert_eq!(json["mode"], "listen");
        assert_eq!(json["alert"], serde_json::Value::Null);
    }

    #[test]
    fn calling_numbers_compare_by_digits_ignoring_a_leading_plus() {
        let registered = validate_supervisor_number("+441632960000").expect("valid");
        assert!(registered.matches_calling_number("+441632960000"));
        assert!(registered.matches_calling_number("441632960000"));
        for other in [
            "0441632960000",
            "+44 1632960000",
            "++441632960000",
            "",
            "+",
            "sip:+441632960000@pbx",
        ] {
            assert!(!registered.matches_calling_number(other), "{other:?}");
        }
        let registered = validate_supervisor_number("441632960000").expect("valid");
        assert!(registered.matches_calling_number("+441632960000"));
    }

    // --- Fuzz: any input sequence, no panic, invariants hold ----------------------------------

    /// xorshift64 (Marsaglia 2003): deterministic, dependency-free.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn chance(&mut self, one_in: u64) -> bool {
            self.below(one_in) == 0
        }
    }

    fn random_facts(rng: &mut XorShift) -> CallFacts {
        CallFacts {
            call: call_id(1 + rng.below(4)),
            kind: if rng.chance(12) {
                CallKind::Web
            } else {
                CallKind::Business
            },
            direction: if rng.chance(2) {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
            on_hold: rng.chance(8),
            in_consult: rng.chance(8),
            secure_payment: rng.chance(10),
            conference: rng.chance(10),
            agent_answered: !rng.chance(6),
        }
    }

    fn random_input(rng: &mut XorShift, state: State) -> Input {
        let pick = if state == State::New && !rng.chance(5) {
            0
        } else {
            rng.below(16)
        };
        match pick {
            0 => Input::Start(Start {
                scope: match rng.below(4) {
                    0 => SessionScope::Agent { grant_id: None },
                    1 | 2 => SessionScope::Agent {
                        grant_id: Some(GrantId(rng.next())),
                    },
                    _ => SessionScope::Call,
                },
                supervisor_may_listen: !rng.chance(10),
                registered_number: ["+441632960000", "441632960000", "", "12a"]
                    [rng.below(4) as usize]
                    .into(),
                answer_timeout: rng
                    .chance(3)
                    .then(|| AnswerTimeout::from_ms(1_000 + rng.below(60_000)).unwrap_or_default()),
                ..start(random_facts(rng))
            }),
            1 => Input::SupervisorRinging,
            2 | 3 => Input::SupervisorAnswered {
                calling_number: ["+441632960000", "441632960000", "555", "x"]
                    [rng.below(4) as usize]
                    .into(),
            },
            4 => {
                if rng.chance(2) {
                    Input::SupervisorRejected
                } else {
                    Input::SupervisorDnd
                }
            }
            5 => Input::SetMode(Mode::ALL[rng.below(5) as usize]),
            6 => Input::Stop,
            7 => Input::CallHeld,
            8 => Input::ConsultStarted,
            9 => Input::SecurePaymentStarted,
            10 => Input::ConferenceStarted,
            11 => Input::CallReleasedByAgent,
            12 | 13 => Input::Hangup {
                party: [Customer, Agent, Supervisor][rng.below(3) as usize],
            },
            14 => Input::AgentAnswered,
            _ => Input::AgentNextCall {
                call: random_facts(rng),
                supervisor_may_listen: !rng.chance(8),
            },
        }
    }

    #[test]
    fn fuzz_random_input_sequences() {
        const SESSIONS: u64 = 3_000;
        const STEPS_MAX: u64 = 40;
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut steps = 0u64;
        let mut seen: Vec<AlertKind> = Vec::new();
        let mut seen_states: Vec<&'static str> = Vec::new();
        for _ in 0..SESSIONS {
            let mut session = new_session();
            let mut now_ms = 0u64;
            // The supervisor leg's media: connected to this call, or not.
            let mut connected: Option<CallId> = None;
            let mut ended = false;
            for _ in 0..1 + rng.below(STEPS_MAX) {
                steps += 1;
                // Sometimes time goes backwards: the session must take it as its latest time.
                now_ms = if rng.chance(20) {
                    now_ms.saturating_sub(rng.below(5_000))
                } else {
                    now_ms + rng.below(12_000)
                };
                let before = session.clone();
                let result = if rng.chance(6) {
                    Ok(session.on_timeout(now_ms))
                } else {
                    let input = random_input(&mut rng, session.state());
                    session.handle(now_ms, input)
                };
                if before.state().is_terminal() {
                    match &result {
                        Err(Refused::Ended { .. }) => {}
                        Ok(outputs) if outputs.is_empty() => {}
                        other => panic!("a terminal session answered {other:?}"),
                    }
                    assert_eq!(session, before, "a terminal session changed");
                    continue;
                }
                let outputs = match result {
                    Err(_) => {
                        assert_eq!(session, before, "a refused input changed the session");
                        continue;
                    }
                    Ok(outputs) => outputs,
                };
                assert_order(&outputs);
                let (old, new) = (before.state(), session.state());
                if !seen_states.contains(&new.code()) {
                    seen_states.push(new.code());
                }
                let phase_changed = old.code() != new.code();
                if phase_changed && old != State::New {
                    assert!(
                        !alerts(&outputs).is_empty(),
                        "{old:?} -> {new:?} without an alert: {outputs:?}"
                    );
                }
                if old == State::New && new != State::New {
                    assert!(matches!(new, State::Requested { .. }) || new.is_terminal());
                }
                for output in &outputs {
                    assert!(!ended, "output after Ended: {outputs:?}");
                    match output {
                        Output::ConnectMedia { call, mode } => {
                            assert_eq!(connected, None, "connected twice");
                            assert_eq!(*mode, Mode::Listen);
                            connected = Some(*call);
                        }
                        Output::SetMedia { call, .. } => assert_eq!(connected, Some(*call)),
                        Output::DisconnectMedia { call } => {
                            assert_eq!(connected, Some(*call));
                            connected = None;
                        }
                        Output::Ended { state } => {
                            assert_eq!(*state, new);
                            assert!(state.is_terminal());
                            assert_eq!(connected, None, "ended with media connected");
                            ended = true;
                        }
                        Output::Alert(alert) => {
                            if !seen.contains(&alert.kind) {
                                seen.push(alert.kind);
                            }
                        }
                        Output::Audit(_) | Output::AnnounceNoCall => {}
                    }
                }
                assert_eq!(new.is_terminal(), ended);
                assert_eq!(connected.is_some(), matches!(new, State::Active { .. }));
                assert_eq!(
                    session.next_deadline().is_some(),
                    matches!(new, State::Requested { .. })
                );
            }
        }
        assert!(steps > 50_000, "{steps} steps");
        for kind in AlertKind::ALL {
            assert!(seen.contains(&kind), "the fuzz loop never raised {kind}");
        }
        for state in [
            "requested",
            "active",
            "no_call",
            "stopped",
            "failed",
            "aborted",
        ] {
            assert!(
                seen_states.contains(&state),
                "the fuzz loop never reached {state}"
            );
        }
    }
}
