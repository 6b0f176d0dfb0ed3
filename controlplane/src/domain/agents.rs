//! Contact-center agent states (docs/design.md §3.5), as a pure state machine: no I/O, no clock
//! reads (docs/design.md §9.3). Every method that changes something is handed `now_ms`
//! (milliseconds since the Unix epoch) and either applies the change and returns what happened
//! ([`StateChange`]), or refuses with a typed error and leaves the agent exactly as it was.
//!
//! The transition rules are the same for an agent's own change and a supervisor's forced change
//! (a forced change only records who forced it); the caller checks who may force what.
//! The table, `from` in rows, `to` in columns (`✓` allowed, `·` refused):
//!
//! | from \ to      | available | busy | standby | pause | disconnected |
//! |----------------|-----------|------|---------|-------|--------------|
//! | available      | ·         | ✓    | ✓       | ✓     | ✓            |
//! | busy           | ✓ (1)     | ·    | ·       | ·     | ✓ (1)        |
//! | standby        | ✓         | ·    | ·       | ·     | ✓            |
//! | pause          | ·         | ·    | ✓       | ·     | ✓            |
//! | disconnected   | ✓ (2)     | ·    | ✓ (2)   | ·     | ·            |
//!
//! (1) the agent is removed from its case ([`Effect::RemovedFromCase`]).
//! (2) a login ([`Effect::LoggedIn`]); every change to `disconnected` is a logout.
//!
//! docs/design.md §3.5 keeps the `busy`, `standby` and `pause` rows as contact centers have them.
//! The others follow what a supervisor expects: an available agent may take a case, pause, step
//! back to standby or log out; a disconnected agent logs in ready (`available`) or not yet
//! (`standby`), but cannot log in straight into a case or a pause. A change to the state the agent
//! is already in (including `pause(a)` → `pause(b)`, which the `pause` row forbids) is refused as
//! [`AgentError::Unchanged`], so that an API can tell "nothing to do" from "not allowed".
//!
//! The dashboard figures cover a *period* — from the agent's creation or the last
//! [`Agent::start_new_period`] (the caller knows the site's time zone and calls it at midnight,
//! so "of the day" means what the site means). Memory is bounded: per-state counts and sums,
//! never a list of transitions.

use core::fmt;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::domain::ids::{InvalidValue, USER_ID_LEN_MAX, UserId};

/// Longest [`PauseReason`], in characters: long enough for "training – new product", short
/// enough to be a dashboard label.
pub const PAUSE_REASON_LEN_MAX: usize = 64;
/// Distinct pause reasons tracked per period; pauses with further reasons are summed together
/// in [`Dashboard::pause_other_reasons_ms`], so a client cycling through made-up reasons cannot
/// grow an agent without bound.
pub const PAUSE_REASONS_TRACKED_MAX: usize = 16;
/// Longest [`ChatMessage`] text, in characters.
pub const CHAT_TEXT_LEN_MAX: usize = 2000;

/// Checks a human label: non-empty once trimmed, at most `len_max` characters, no control
/// characters (they would corrupt logs and consoles). Returns it trimmed.
pub(crate) fn check_label(
    field: &'static str,
    s: &str,
    len_max: usize,
    too_long: &'static str,
) -> Result<String, InvalidValue> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return Err(InvalidValue {
            field,
            reason: "must not be empty",
        });
    }
    if trimmed.chars().any(char::is_control) {
        return Err(InvalidValue {
            field,
            reason: "must not contain control characters",
        });
    }
    if trimmed.chars().count() > len_max {
        return Err(InvalidValue {
            field,
            reason: too_long,
        });
    }
    Ok(trimmed.to_owned())
}

/// Why an agent is on pause. A validated free label rather than a fixed enum, because each
/// campaign defines its own reasons ("lunch", "training", "coaching"…); 1 to
/// [`PAUSE_REASON_LEN_MAX`] characters, trimmed, no control characters. Reasons compare exactly
/// ("Lunch" and "lunch" are two reasons), as the campaign spelled them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PauseReason(String);

impl PauseReason {
    pub fn parse(s: &str) -> Result<PauseReason, InvalidValue> {
        check_label(
            "pause reason",
            s,
            PAUSE_REASON_LEN_MAX,
            "must be at most 64 characters",
        )
        .map(PauseReason)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PauseReason {
    type Error = InvalidValue;

    fn try_from(s: String) -> Result<PauseReason, InvalidValue> {
        PauseReason::parse(&s)
    }
}

impl From<PauseReason> for String {
    fn from(r: PauseReason) -> String {
        r.0
    }
}

impl fmt::Display for PauseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The five states without their data: what the transition table and the dashboard are
/// indexed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    Available,
    Busy,
    Standby,
    Pause,
    Disconnected,
}

impl StateKind {
    /// Every kind, in the order of the dashboard's [`Dashboard::states`].
    pub const ALL: [StateKind; 5] = [
        StateKind::Available,
        StateKind::Busy,
        StateKind::Standby,
        StateKind::Pause,
        StateKind::Disconnected,
    ];

    /// The wire name (`available`, `busy`, `standby`, `pause`, `disconnected`).
    pub fn as_str(self) -> &'static str {
        match self {
            StateKind::Available => "available",
            StateKind::Busy => "busy",
            StateKind::Standby => "standby",
            StateKind::Pause => "pause",
            StateKind::Disconnected => "disconnected",
        }
    }

    fn index(self) -> usize {
        match self {
            StateKind::Available => 0,
            StateKind::Busy => 1,
            StateKind::Standby => 2,
            StateKind::Pause => 3,
            StateKind::Disconnected => 4,
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an agent may go from `from` to `to` (the table of the module docs), the same for
/// their own change and a supervisor's forced change. A change to the same kind is never a
/// transition.
pub fn transition_allowed(from: StateKind, to: StateKind) -> bool {
    use StateKind::*;
    matches!(
        (from, to),
        (Available, Busy | Standby | Pause | Disconnected)
            | (Busy, Available | Disconnected)
            | (Standby, Available | Disconnected)
            | (Pause, Standby | Disconnected)
            | (Disconnected, Available | Standby)
    )
}

/// An agent's state. `Busy` carries the case (ticket) the agent handles, if the platform named
/// one; `Pause` its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum AgentState {
    Available,
    Busy { case: Option<String> },
    Standby,
    Pause { reason: PauseReason },
    Disconnected,
}

impl AgentState {
    pub fn kind(&self) -> StateKind {
        match self {
            AgentState::Available => StateKind::Available,
            AgentState::Busy { .. } => StateKind::Busy,
            AgentState::Standby => StateKind::Standby,
            AgentState::Pause { .. } => StateKind::Pause,
            AgentState::Disconnected => StateKind::Disconnected,
        }
    }

    /// Connected means logged in: any state but `disconnected` ("time connected",
    /// docs/design.md §3.6).
    pub fn is_connected(&self) -> bool {
        !matches!(self, AgentState::Disconnected)
    }
}

/// The device the agent is logged in from, shown on the dashboard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Web,
    App,
}

/// A refused state change. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// The table of the module docs forbids `from` → `to`.
    #[error("an agent cannot go from {from} to {to}")]
    TransitionRefused { from: StateKind, to: StateKind },
    /// The agent is already in that state (for `pause`, whatever the reason: a pause's reason is
    /// not changed in place).
    #[error("the agent is already {state}")]
    Unchanged { state: StateKind },
}

impl AgentError {
    /// The stable machine code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            AgentError::TransitionRefused { .. } => "transition_refused",
            AgentError::Unchanged { .. } => "state_unchanged",
        }
    }
}

/// A consequence of a state change that the rest of the system must act upon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "effect", rename_all = "snake_case")]
pub enum Effect {
    /// The agent left `disconnected`: a session starts.
    LoggedIn,
    /// The agent went to `disconnected`: the session is closed.
    LoggedOut,
    /// The agent left `busy` while holding this case: the case goes back to the queue.
    RemovedFromCase { case: String },
}

/// What an accepted state change did (the `agent.state_changed` event).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateChange {
    pub agent: UserId,
    pub from: AgentState,
    pub to: AgentState,
    /// When it took effect (never before the previous change; see [`Agent::change_state`]).
    pub at_ms: u64,
    /// The supervisor who forced it; `None` for the agent's own change.
    pub forced_by: Option<UserId>,
    /// In the order they happened: removal from the case before the logout.
    pub effects: Vec<Effect>,
}

/// Count and summed duration of the stints in one state (or one pause reason) in the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    /// Stints begun in the period, the current one included.
    entries: u64,
    /// Milliseconds of the *finished* part of those stints; the current stint is added at read
    /// time, so the stored figures never depend on a clock.
    total_ms: u64,
}

/// A contact-center agent: current state, settings and the period's aggregates.
///
/// Fields are private so the aggregates always agree with the state history. Serde is derived so
/// the store can persist an agent as is (the newtypes re-validate on the way in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    id: UserId,
    state: AgentState,
    /// When the current state began.
    since_ms: u64,
    /// Start of the part of the current stint not yet credited to the tallies: `since_ms`, or the
    /// period start if the stint began before it. Never decreases; it is the agent's clock floor.
    credited_until_ms: u64,
    auto_assignment: bool,
    campaign: Option<String>,
    platform: Platform,
    last_login_ms: Option<u64>,
    last_logout_ms: Option<u64>,
    period_start_ms: u64,
    /// Indexed by [`StateKind::index`].
    tallies: [Tally; 5],
    /// At most [`PAUSE_REASONS_TRACKED_MAX`] reasons; a reason is added when a pause with it
    /// begins, so the bucket a pause was counted in at its start is still there at its end.
    pauses_by_reason: BTreeMap<PauseReason, Tally>,
    pauses_other: Tally,
}

impl Agent {
    /// A new agent, disconnected since `now_ms`, with automatic case assignment enabled; its
    /// first period starts now.
    pub fn new(id: UserId, platform: Platform, now_ms: u64) -> Agent {
        let mut tallies = [Tally::default(); 5];
        tallies[StateKind::Disconnected.index()].entries = 1;
        Agent {
            id,
            state: AgentState::Disconnected,
            since_ms: now_ms,
            credited_until_ms: now_ms,
            auto_assignment: true,
            campaign: None,
            platform,
            last_login_ms: None,
            last_logout_ms: None,
            period_start_ms: now_ms,
            tallies,
            pauses_by_reason: BTreeMap::new(),
            pauses_other: Tally::default(),
        }
    }

    pub fn id(&self) -> &UserId {
        &self.id
    }

    pub fn state(&self) -> &AgentState {
        &self.state
    }

    /// When the current state began.
    pub fn since_ms(&self) -> u64 {
        self.since_ms
    }

    pub fn campaign(&self) -> Option<&str> {
        self.campaign.as_deref()
    }

    /// The campaign the agent works on; `None` for none (or all).
    pub fn set_campaign(&mut self, campaign: Option<String>) {
        self.campaign = campaign;
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The device the agent (re)logged in from.
    pub fn set_platform(&mut self, platform: Platform) {
        self.platform = platform;
    }

    pub fn auto_assignment(&self) -> bool {
        self.auto_assignment
    }

    /// Enables or disables automatic case assignment; returns whether that changed anything.
    /// Disabling keeps the agent's current case (and state): it only stops new ones.
    pub fn set_auto_assignment(&mut self, enabled: bool) -> bool {
        let changed = self.auto_assignment != enabled;
        self.auto_assignment = enabled;
        changed
    }

    /// Whether the case router may hand this agent a new case now: available, with automatic
    /// assignment enabled. (A manual assignment, `available` → `busy`, is not subject to the
    /// flag: the flag is about the router, not the state machine.)
    pub fn accepts_new_cases(&self) -> bool {
        self.auto_assignment && matches!(self.state, AgentState::Available)
    }

    /// The agent's own change of state.
    ///
    /// `now_ms` earlier than the current state's start (a clock step backwards between API
    /// nodes) is taken as that start: durations never go negative and nothing panics.
    pub fn change_state(&mut self, to: AgentState, now_ms: u64) -> Result<StateChange, AgentError> {
        self.apply(to, None, now_ms)
    }

    /// A supervisor's forced change: the same rules as [`Agent::change_state`], with
    /// `forced_by` recorded in the returned change. Whether `forced_by` may force is the
    /// caller's check (docs/design.md §4).
    pub fn force_state(
        &mut self,
        to: AgentState,
        forced_by: UserId,
        now_ms: u64,
    ) -> Result<StateChange, AgentError> {
        self.apply(to, Some(forced_by), now_ms)
    }

    fn apply(
        &mut self,
        to: AgentState,
        forced_by: Option<UserId>,
        now_ms: u64,
    ) -> Result<StateChange, AgentError> {
        let (from_kind, to_kind) = (self.state.kind(), to.kind());
        if from_kind == to_kind {
            return Err(AgentError::Unchanged { state: from_kind });
        }
        if !transition_allowed(from_kind, to_kind) {
            return Err(AgentError::TransitionRefused {
                from: from_kind,
                to: to_kind,
            });
        }
        // Accepted: from here on nothing can fail.
        let now_ms = now_ms.max(self.credited_until_ms);
        self.credit_current(now_ms);

        let mut effects = Vec::new();
        if let AgentState::Busy { case: Some(case) } = &self.state {
            effects.push(Effect::RemovedFromCase { case: case.clone() });
        }
        if !self.state.is_connected() {
            effects.push(Effect::LoggedIn);
            self.last_login_ms = Some(now_ms);
        }
        if !to.is_connected() {
            effects.push(Effect::LoggedOut);
            self.last_logout_ms = Some(now_ms);
        }

        let from = core::mem::replace(&mut self.state, to.clone());
        self.since_ms = now_ms;
        self.begin_stint();
        Ok(StateChange {
            agent: self.id.clone(),
            from,
            to,
            at_ms: now_ms,
            forced_by,
            effects,
        })
    }

    /// Starts a new dashboard period at `now_ms` (e.g. at the site's midnight): the tallies
    /// restart from the current state, counted from now. Last login and logout are kept: they
    /// are "of the current session" when a session spans the change of day.
    pub fn start_new_period(&mut self, now_ms: u64) {
        let now_ms = now_ms.max(self.credited_until_ms);
        self.period_start_ms = now_ms;
        self.credited_until_ms = now_ms;
        self.tallies = [Tally::default(); 5];
        self.pauses_by_reason.clear();
        self.pauses_other = Tally::default();
        self.begin_stint();
    }

    /// Counts the beginning of a stint in the current state (its duration is credited when it
    /// ends).
    fn begin_stint(&mut self) {
        let tally = &mut self.tallies[self.state.kind().index()];
        tally.entries = tally.entries.saturating_add(1);
        if let AgentState::Pause { reason } = &self.state {
            let bucket = if self.pauses_by_reason.contains_key(reason)
                || self.pauses_by_reason.len() < PAUSE_REASONS_TRACKED_MAX
            {
                self.pauses_by_reason.entry(reason.clone()).or_default()
            } else {
                &mut self.pauses_other
            };
            bucket.entries = bucket.entries.saturating_add(1);
        }
    }

    /// Credits the current stint's time up to `now_ms` to its tallies.
    fn credit_current(&mut self, now_ms: u64) {
        let elapsed_ms = now_ms.saturating_sub(self.credited_until_ms);
        self.credited_until_ms = now_ms;
        let tally = &mut self.tallies[self.state.kind().index()];
        tally.total_ms = tally.total_ms.saturating_add(elapsed_ms);
        if let AgentState::Pause { reason } = &self.state {
            let bucket = match self.pauses_by_reason.get_mut(reason) {
                Some(bucket) => bucket,
                None => &mut self.pauses_other,
            };
            bucket.total_ms = bucket.total_ms.saturating_add(elapsed_ms);
        }
    }

    /// The live dashboard figures at `now_ms` (docs/design.md §3.6): the current stint counts up to
    /// now.
    pub fn dashboard(&self, now_ms: u64) -> Dashboard {
        let now_ms = now_ms.max(self.credited_until_ms);
        let current_ms = now_ms - self.credited_until_ms;
        let current = self.state.kind();

        let states = StateKind::ALL.map(|kind| {
            let tally = self.tallies[kind.index()];
            let total_ms = if kind == current {
                tally.total_ms.saturating_add(current_ms)
            } else {
                tally.total_ms
            };
            StateFigures {
                state: kind,
                entries: tally.entries,
                total_ms,
                average_ms: total_ms.checked_div(tally.entries),
            }
        });
        let connected_ms = states
            .iter()
            .filter(|s| s.state != StateKind::Disconnected)
            .fold(0u64, |sum, s| sum.saturating_add(s.total_ms));

        let current_reason = match &self.state {
            AgentState::Pause { reason } => Some(reason),
            _ => None,
        };
        let pause_by_reason = self
            .pauses_by_reason
            .iter()
            .map(|(reason, tally)| PauseFigures {
                reason: reason.clone(),
                pauses: tally.entries,
                total_ms: if current_reason == Some(reason) {
                    tally.total_ms.saturating_add(current_ms)
                } else {
                    tally.total_ms
                },
            })
            .collect();
        let pause_other_reasons_ms = match current_reason {
            Some(reason) if !self.pauses_by_reason.contains_key(reason) => {
                self.pauses_other.total_ms.saturating_add(current_ms)
            }
            _ => self.pauses_other.total_ms,
        };

        Dashboard {
            agent: self.id.clone(),
            state: self.state.clone(),
            state_since_ms: self.since_ms,
            time_in_state_ms: now_ms.saturating_sub(self.since_ms),
            campaign: self.campaign.clone(),
            platform: self.platform,
            auto_assignment: self.auto_assignment,
            last_login_ms: self.last_login_ms,
            last_logout_ms: self.last_logout_ms,
            connected_ms,
            pause_ms: states[StateKind::Pause.index()].total_ms,
            pause_by_reason,
            pause_other_reasons_ms,
            period_start_ms: self.period_start_ms,
            states: states.to_vec(),
        }
    }
}

/// One state's figures in a [`Dashboard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateFigures {
    pub state: StateKind,
    /// Stints begun in the period, the current one included.
    pub entries: u64,
    /// Time spent in the state in the period, the current stint up to now included.
    pub total_ms: u64,
    /// `total_ms / entries` (integer division); `None` if the state was not entered.
    pub average_ms: Option<u64>,
}

/// One pause reason's figures in a [`Dashboard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PauseFigures {
    pub reason: PauseReason,
    /// Pauses begun with this reason in the period, the current one included.
    pub pauses: u64,
    pub total_ms: u64,
}

/// The per-agent live dashboard (docs/design.md §3.6); the API renders it (docs/api.md "Groups
/// and agents").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    pub agent: UserId,
    pub state: AgentState,
    pub state_since_ms: u64,
    pub time_in_state_ms: u64,
    /// One entry per [`StateKind::ALL`], in that order: the "average time per state".
    pub states: Vec<StateFigures>,
    pub campaign: Option<String>,
    pub platform: Platform,
    pub auto_assignment: bool,
    /// The latest login, if any (of the period, or of a session that began before it).
    pub last_login_ms: Option<u64>,
    /// The latest logout, if any.
    pub last_logout_ms: Option<u64>,
    /// Time in any state but `disconnected` in the period.
    pub connected_ms: u64,
    /// Time in `pause` in the period, all reasons.
    pub pause_ms: u64,
    /// By reason, in the reasons' order; at most [`PAUSE_REASONS_TRACKED_MAX`] entries.
    pub pause_by_reason: Vec<PauseFigures>,
    /// Pause time under reasons beyond the first [`PAUSE_REASONS_TRACKED_MAX`] of the period.
    pub pause_other_reasons_ms: u64,
    /// Start of the period these figures cover.
    pub period_start_ms: u64,
}

/// A refused chat message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("a chat message must not be empty")]
    TextEmpty,
    #[error("a chat message is at most 2000 characters; this one has {len_chars}")]
    TextTooLong { len_chars: usize },
    #[error("a supervisor cannot send a chat message to themselves")]
    ToSelf,
}

impl ChatError {
    /// The stable machine code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            ChatError::TextEmpty => "chat_text_empty",
            ChatError::TextTooLong { .. } => "chat_text_too_long",
            ChatError::ToSelf => "chat_to_self",
        }
    }
}

/// A supervisor's private message to one agent (docs/design.md §3.7: delivered to that agent only;
/// the delivery is the API's job). Validated once at construction, so a `ChatMessage` is always
/// sendable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(description = "A supervisor's private message to one agent.")]
pub struct ChatMessage {
    from: UserId,
    to: UserId,
    text: String,
    at_ms: u64,
}

impl ChatMessage {
    /// A message from `from` to the agent `to`. Taking the [`Agent`] itself (not an id) is how
    /// "the recipient must be an agent" is enforced: the caller must have found one. The text is
    /// kept as written (line breaks included); it must not be blank and is at most
    /// [`CHAT_TEXT_LEN_MAX`] characters.
    pub fn new(
        from: UserId,
        to: &Agent,
        text: String,
        at_ms: u64,
    ) -> Result<ChatMessage, ChatError> {
        if text.trim().is_empty() {
            return Err(ChatError::TextEmpty);
        }
        let len_chars = text.chars().count();
        if len_chars > CHAT_TEXT_LEN_MAX {
            return Err(ChatError::TextTooLong { len_chars });
        }
        if &from == to.id() {
            return Err(ChatError::ToSelf);
        }
        Ok(ChatMessage {
            from,
            to: to.id().clone(),
            text,
            at_ms,
        })
    }

    pub fn from(&self) -> &UserId {
        &self.from
    }

    pub fn to(&self) -> &UserId {
        &self.to
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn at_ms(&self) -> u64 {
        self.at_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a small, dependency-free generator for reproducible sequences.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_state(rng: &mut Rng) -> AgentState {
        match rng.below(5) {
            0 => AgentState::Available,
            1 => AgentState::Busy {
                case: (rng.below(2) == 0).then(|| format!("T-{}", rng.below(9))),
            },
            2 => AgentState::Standby,
            3 => AgentState::Pause {
                reason: PauseReason::parse(&format!("r{}", rng.below(24))).unwrap(),
            },
            _ => AgentState::Disconnected,
        }
    }

    #[test]
    fn no_state_transitions_to_itself() {
        for kind in StateKind::ALL {
            assert!(!transition_allowed(kind, kind), "{kind}");
        }
    }

    /// Against a reference model of the figures: over any sequence of changes, refused or
    /// accepted, with clock steps backwards and period restarts, every millisecond of the period
    /// is in exactly one state's total, pause reasons add up to the pause total, and a refusal
    /// changes nothing.
    #[test]
    fn time_is_conserved_over_random_sequences() {
        for case in 1..=200u64 {
            let mut rng = Rng(case.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut agent = Agent::new(UserId::parse("a").unwrap(), Platform::Web, 1_000);
            let mut clock_ms = 1_000u64;
            for _ in 0..300 {
                // Mostly forward, sometimes backwards (another node's clock).
                clock_ms = match rng.below(10) {
                    0 => clock_ms.saturating_sub(rng.below(5_000)),
                    _ => clock_ms + rng.below(600_000),
                };
                if rng.below(50) == 0 {
                    agent.start_new_period(clock_ms);
                    continue;
                }
                let before = agent.clone();
                let to = random_state(&mut rng);
                let result = if rng.below(2) == 0 {
                    agent.change_state(to.clone(), clock_ms)
                } else {
                    agent.force_state(to.clone(), UserId::parse("s").unwrap(), clock_ms)
                };
                match result {
                    Ok(change) => {
                        assert!(transition_allowed(before.state.kind(), to.kind()));
                        assert_eq!(change.at_ms, clock_ms.max(before.credited_until_ms));
                        assert_eq!(agent.state, to);
                    }
                    Err(_) => assert_eq!(agent, before),
                }
                let now_ms = clock_ms.max(agent.credited_until_ms);
                let d = agent.dashboard(now_ms);
                let all_ms: u64 = d.states.iter().map(|s| s.total_ms).sum();
                assert_eq!(all_ms, now_ms - d.period_start_ms, "case {case}");
                let reasons_ms: u64 = d.pause_by_reason.iter().map(|p| p.total_ms).sum();
                assert_eq!(
                    reasons_ms + d.pause_other_reasons_ms,
                    d.pause_ms,
                    "case {case}"
                );
                assert!(d.pause_by_reason.len() <= PAUSE_REASONS_TRACKED_MAX);
                assert_eq!(
                    d.connected_ms + d.states[StateKind::Disconnected.index()].total_ms,
                    all_ms
                );
                let current = &d.states[agent.state.kind().index()];
                assert!(current.entries >= 1, "the current stint is counted");
            }
        }
    }
}
