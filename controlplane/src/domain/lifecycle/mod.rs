//! A supervision session's lifecycle and its alerts (docs/design.md §2, its audit §4), as a
//! sans-IO state machine. It is the only authority over a supervision: every alert and audit
//! record of a session comes out of it, and the recorded state is derived from its
//! [`State`] ([`State::record`]).
//!
//! Files: `inputs.rs` (the start and every later input), `state.rs` (the states),
//! `session.rs` (the transition function's dispatch) and `session/` (its transitions by concern:
//! starting, ringing, the call's events, ending), `checks.rs` (the start checks), `alerts.rs`
//! (alert kinds, texts, end reasons), `outputs.rs` (what the driver must do), `number.rs` (the
//! registered number's check).
//!
//! # Contract with the driver
//!
//! A [`Session`] never reads a clock and does no I/O (docs/design.md §9): time is an input. The
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
//!    before supervisor media flows" (docs/design.md §4) holds.
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
//! # Alert rules (docs/design.md §2)
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
//!    customer on hold means the watched agent is the *consulting* one (scenario: "attempts to
//!    listen … while the agent is in a consult (the customer is also on hold)").
//! 7. A consult with no customer on hold → `failed_agent_not_ready`: the watched agent is the
//!    *consulted* one, whose call holds no customer (scenario: "tries to listen to the consulted
//!    agent during a consult").
//! 8. Outbound and the agent has not answered: not a failure yet. The session is requested and
//!    waits for [`Input::AgentAnswered`]; if the supervisor answers first →
//!    `failed_no_call_to_monitor` (scenario: "the agent has not yet answered their phone").
//!
//! While the supervisor's phone rings ([`State::Requested`]):
//! - hold or consult start → `monitoring_failed`; secure payment → `failed_agent_not_ready`;
//!   conference → `failed_no_permission` (the start checks still apply until media flows);
//! - the agent releases, the agent hangs up, or the customer hangs up → the call *vanished*; no
//!   alert yet. Answering then emits `monitoring_initiated` (the driver plays the "no call to
//!   supervise" message, [`Output::AnnounceNoCall`]) and the session waits in [`State::NoCall`]
//!   until the supervisor stops or their leg ends → `failed_no_call_to_monitor`. One exception,
//!   the scenario's "(Outbound only.)": when the agent of an **inbound** call hung up, that end is
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
//! From outside the call's story ([`Input::Abort`], docs/design.md §7): the call deleted through
//! the API, the daemon restarted (the driver rebuilds the session with [`Session::restored`]),
//! later a lost node. In any open state → `aborted` (its [`AbortCause`] names the text:
//! "aborted – call deleted", "aborted – restart"), audited as the system's act
//! ([`AuditActor::System`]).
//!
//! # Audit (docs/design.md §4)
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

mod alerts;
mod checks;
mod inputs;
mod number;
mod outputs;
mod session;
mod state;

pub use alerts::{AbortCause, AbortReason, AlertKind, FailReason, UnknownAlertCode};
pub use inputs::{
    AnswerTimeout, AnswerTimeoutOutOfRange, CallFacts, CallKind, Direction, GrantId, HangupParty,
    Input, Refused, Restored, SessionScope, Start,
};
pub use number::{
    NumberProblem, SUPERVISOR_NUMBER_DIGITS_MAX, SUPERVISOR_NUMBER_DIGITS_MIN, SupervisorNumber,
    ValidationAlert, validate_supervisor_number,
};
pub use outputs::{Alert, AuditAction, AuditActor, AuditRecord, Output};
pub use session::Session;
pub use state::{CallLink, State, SupervisionState, Vanished};

#[cfg(test)]
mod tests;
