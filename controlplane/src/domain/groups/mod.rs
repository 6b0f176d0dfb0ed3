//! Supervision groups, their members and the ringing business calls supervisors may take
//! (docs/design.md §3), as a pure state machine: no I/O, no clock (docs/design.md §9.3).
//!
//! Everything lives in one [`Directory`] so that every rule that spans groups (a user in several
//! groups, "a supervisor of a group the member belongs to", search across a supervisor's groups,
//! first taker of a ringing call wins) is checked and applied in *one* `&mut self` call. A caller
//! that wraps the directory in a `Mutex` therefore gets each check-and-set atomically.
//!
//! Every mutating method applies the change and returns the [`GroupEvent`]s it caused, or
//! refuses with a [`GroupError`] (a stable [`GroupError::code`] and a human message) and leaves
//! the directory exactly as it was. Who may call which method is partly the caller's business:
//! - *configuration* (`create_group`, `add_member`, `set_can_leave`, …) is the company
//!   admin's; these methods take no actor and the API checks the role;
//! - *supervisor actions* take the acting supervisor and check that the member is in a group
//!   they supervise (`not_your_group`); forced logon/logoff also takes the actor's [`Rights`]
//!   over the group, which the caller looks up;
//! - *member actions* (`join`, `leave`) take the member, who the caller authenticated;
//! - *platform reports* (presence, ringing, forwarding) are facts and take no actor.
//!
//! Model. Presence, the ringing call and the forwarding are facts about a user's phone, not
//! about a membership, so they are stored once per user ([`Directory::upsert_user`]); a
//! membership only holds `can_leave` and `logged_in`. A member's [`Availability`] in a group is
//! derived from both, so it can never disagree between two groups of the same user:
//! logged out of the group → `logged_out` (docs/design.md §3.2: "no longer part of the group");
//! else forwarded → `forwarded`; else ringing (business or web) → `ringing`; else `logged_in`, with
//! `offline_warning` when the presence is `offline`.
//!
//! A supervisor is a full member (docs/design.md §3.1): being a supervisor of a group does not make
//! a user a member of it, but the same user may be added to both `supervisors` and `members`, and
//! is then supervised by the group's other supervisors and may join/leave like any member.
//!
//! A ringing call is *supervised* by supervisor `S` when it is a business call (web calls are
//! never supervised, docs/design.md §2.10) ringing a user who is logged in to at least one group
//! `S` supervises; those are the calls `S` sees, counts and may take.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

mod calls;
mod config;
mod members;

use crate::domain::agents::check_label;
pub use crate::domain::ids::{GroupId, InvalidValue, UserId};

/// Groups in a directory.
pub const GROUPS_MAX: usize = 10_000;
/// Users (supervisors and members) known to a directory.
pub const USERS_MAX: usize = 100_000;
/// Members of one group.
pub const MEMBERS_PER_GROUP_MAX: usize = 1_000;
/// Supervisors of one group.
pub const SUPERVISORS_PER_GROUP_MAX: usize = 100;
/// Taken calls remembered after the take, so that a late taker still hears who won
/// (`already_taken`) rather than `unknown_call`. Oldest forgotten first.
pub const TAKEN_CALLS_REMEMBERED_MAX: usize = 1_024;
/// Longest group name, display name, phone number, caller, forwarding destination or call id,
/// in characters.
pub const LABEL_LEN_MAX: usize = 128;

const LABEL_TOO_LONG: &str = "must be at most 128 characters";

/// `standard`: members are always in the group when connected and cannot join or leave;
/// `mutual_aid`: members join and leave at will, within the admin's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    Standard,
    MutualAid,
}

/// Presence as the platform reports it, shown as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    Online,
    Busy,
    Away,
    DoNotDisturb,
    Offline,
}

/// A member's availability in one group, as a supervisor sees it (derived; see the module
/// docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    LoggedOut,
    /// `offline_warning`: logged in to the group but the presence is offline — calls for the
    /// group would go unanswered, so the console warns.
    LoggedIn {
        offline_warning: bool,
    },
    /// An incoming call rings; `web` calls are shown but can be neither taken nor supervised.
    Ringing {
        caller: String,
        call_id: String,
        web: bool,
    },
    Forwarded {
        destination: String,
    },
}

/// What the acting supervisor may do over a group beyond supervising it; looked up by the
/// caller (docs/design.md §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rights {
    /// Group administration: force members to log on or off.
    pub group_admin: bool,
}

/// A user's membership of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// Mutual-aid only: whether the member may leave at will (docs/design.md §3.1: the admin
    /// decides).
    pub can_leave: bool,
    /// Logged in to the group: part of it, ready for its business calls.
    pub logged_in: bool,
}

/// A supervision group: its configuration and memberships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    id: GroupId,
    name: String,
    kind: GroupKind,
    lock_last_member: bool,
    /// Never emptied once a supervisor is named (see [`Directory::create_unsupervised_group`]).
    supervisors: BTreeSet<UserId>,
    members: BTreeMap<UserId, Membership>,
}

impl Group {
    pub fn id(&self) -> &GroupId {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> GroupKind {
        self.kind
    }

    /// Whether the last logged-in member is kept from leaving (docs/design.md §3.1: "no empty
    /// group").
    pub fn lock_last_member(&self) -> bool {
        self.lock_last_member
    }

    pub fn supervisors(&self) -> &BTreeSet<UserId> {
        &self.supervisors
    }

    pub fn members(&self) -> &BTreeMap<UserId, Membership> {
        &self.members
    }

    pub fn is_supervised_by(&self, user: &UserId) -> bool {
        self.supervisors.contains(user)
    }

    /// Members currently logged in.
    pub fn logged_in_count(&self) -> usize {
        self.members.values().filter(|m| m.logged_in).count()
    }

    /// Whether `user` is a member logged in to the group.
    fn has_logged_in(&self, user: &UserId) -> bool {
        self.members.get(user).is_some_and(|m| m.logged_in)
    }

    /// `user`'s membership, or `not_a_member`.
    fn membership(&self, user: &UserId) -> Result<&Membership, GroupError> {
        self.members
            .get(user)
            .ok_or_else(|| GroupError::NotAMember {
                group: self.id.clone(),
                user: user.clone(),
            })
    }

    /// Refuses to log member `user` in (`logged_in`) or out when they already are.
    fn check_not_already(&self, user: &UserId, logged_in: bool) -> Result<(), GroupError> {
        if self.has_logged_in(user) != logged_in {
            return Ok(());
        }
        let (group, user) = (self.id.clone(), user.clone());
        Err(if logged_in {
            GroupError::AlreadyLoggedIn { group, user }
        } else {
            GroupError::AlreadyLoggedOut { group, user }
        })
    }

    /// Refuses to log out `user` if they are the last logged-in member of a locked group.
    fn check_not_last_locked(&self, user: &UserId) -> Result<(), GroupError> {
        if self.lock_last_member && self.has_logged_in(user) && self.logged_in_count() == 1 {
            return Err(GroupError::LastMemberLocked {
                group: self.id.clone(),
                user: user.clone(),
            });
        }
        Ok(())
    }
}

/// A user's phone line as the platform reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    Idle,
    /// The call's details are in [`Directory::ringing`].
    Ringing {
        call_id: String,
    },
    Forwarded {
        destination: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct User {
    display_name: String,
    /// `None` until the platform registers one.
    number: Option<String>,
    presence: Presence,
    line: Line,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RingingCall {
    member: UserId,
    caller: String,
    web: bool,
}

/// Which members a supervisor's member list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemberFilter {
    #[default]
    All,
    /// Members whose availability is `ringing` (web calls included, flagged).
    Ringing,
}

/// One member of one group, as a supervisor's list shows it. A user in two supervised groups is
/// listed once per group: their availability may differ. The API renders it (docs/api.md
/// "Groups and agents").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedMember {
    pub group: GroupId,
    pub group_name: String,
    pub user: UserId,
    pub display_name: String,
    pub number: Option<String>,
    /// Also a supervisor of this group (docs/design.md §3.1: a supervisor is a full member).
    pub is_supervisor: bool,
    pub can_leave: bool,
    pub availability: Availability,
    pub presence: Presence,
}

/// A ringing supervised call, as a supervisor's "Supervised calls" list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupervisedCall {
    pub call_id: String,
    pub member: UserId,
    pub display_name: String,
    pub number: Option<String>,
    pub caller: String,
    /// The groups, among the supervisor's, that the member is logged in to.
    pub groups: Vec<GroupId>,
}

/// What a change did (also logged as a `group.<type>` event).
// Its JSON is both the API's answer (`GroupEvents`) and the event log's stored payload, so the
// one definition of the shape is here, its schema included (docs/api.md "Groups and agents").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GroupEvent {
    GroupCreated {
        group: GroupId,
        #[schema(inline)]
        kind: GroupKind,
    },
    GroupRemoved {
        group: GroupId,
    },
    LockLastMemberChanged {
        group: GroupId,
        enabled: bool,
    },
    SupervisorAdded {
        group: GroupId,
        user: UserId,
    },
    SupervisorRemoved {
        group: GroupId,
        user: UserId,
    },
    MemberAdded {
        group: GroupId,
        user: UserId,
        can_leave: bool,
        logged_in: bool,
    },
    MemberRemoved {
        group: GroupId,
        user: UserId,
    },
    CanLeaveChanged {
        group: GroupId,
        user: UserId,
        can_leave: bool,
    },
    /// `forced_by`: the supervisor who forced the logon; null when the member joined, or when
    /// the configuration logged them in.
    MemberLoggedIn {
        group: GroupId,
        user: UserId,
        #[schema(required = true)]
        forced_by: Option<UserId>,
    },
    MemberLoggedOut {
        group: GroupId,
        user: UserId,
        #[schema(required = true)]
        forced_by: Option<UserId>,
    },
    PresenceChanged {
        user: UserId,
        #[schema(inline)]
        presence: Presence,
    },
    CallRinging {
        call_id: String,
        member: UserId,
        caller: String,
        web: bool,
    },
    /// The member's phone stopped ringing without a take (answered, missed, caller gave up).
    RingingEnded {
        call_id: String,
        member: UserId,
    },
    /// `taken_by` won the call: the platform routes it to them, the member's phone stops.
    CallTaken {
        call_id: String,
        member: UserId,
        caller: String,
        taken_by: UserId,
    },
    /// `destination` null when forwarding stopped; `cancelled_by` when a supervisor cancelled
    /// it rather than the platform reporting it.
    ForwardingChanged {
        user: UserId,
        #[schema(required = true)]
        destination: Option<String>,
        #[schema(required = true)]
        cancelled_by: Option<UserId>,
    },
}

/// A refused directory operation. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    InvalidValue(#[from] InvalidValue),
    #[error("no group {group}")]
    UnknownGroup { group: GroupId },
    #[error("a group {group} already exists")]
    GroupExists { group: GroupId },
    #[error("no user {user}")]
    UnknownUser { user: UserId },
    #[error("no call {call_id} is ringing")]
    UnknownCall { call_id: String },
    #[error("call {call_id} is already known")]
    DuplicateCall { call_id: String },
    #[error("{user} is not a member of group {group}")]
    NotAMember { group: GroupId, user: UserId },
    #[error("{user} is already a member of group {group}")]
    AlreadyMember { group: GroupId, user: UserId },
    #[error("{user} is not a supervisor of group {group}")]
    NotASupervisor { group: GroupId, user: UserId },
    #[error("{user} is already a supervisor of group {group}")]
    AlreadySupervisor { group: GroupId, user: UserId },
    #[error("{user} is the last supervisor of group {group}: a group needs at least one")]
    LastSupervisor { group: GroupId, user: UserId },
    #[error("members of standard group {group} cannot join or leave it")]
    StandardGroup { group: GroupId },
    #[error("{user} is not allowed to leave group {group}")]
    MemberCannotLeave { group: GroupId, user: UserId },
    #[error(
        "{user} is the last member logged in to group {group}, which must not be left empty: \
         another member must log in first"
    )]
    LastMemberLocked { group: GroupId, user: UserId },
    #[error("{user} is already logged in to group {group}")]
    AlreadyLoggedIn { group: GroupId, user: UserId },
    #[error("{user} is already logged out of group {group}")]
    AlreadyLoggedOut { group: GroupId, user: UserId },
    #[error("forcing a member to log on or off needs the group-admin right over group {group}")]
    AdminRightRequired { group: GroupId },
    #[error("{user} is not a member of any group you supervise")]
    NotYourGroup { user: UserId },
    /// The same refusal (`not_your_group`) when the operation names the group.
    #[error("you do not supervise group {group}")]
    GroupNotSupervised { group: GroupId },
    #[error("call {call_id} was already taken by {taken_by}")]
    AlreadyTaken { call_id: String, taken_by: UserId },
    #[error("call {call_id} is a web call: web calls are not supervised")]
    WebCallNotSupervisable { call_id: String },
    #[error("the line of {user} is {line}")]
    LineBusy { user: UserId, line: &'static str },
    #[error("the line of {user} is not forwarded")]
    NotForwarded { user: UserId },
    #[error("too many {what}: at most {max}")]
    LimitReached { what: &'static str, max: usize },
}

impl GroupError {
    /// The stable machine code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            GroupError::InvalidValue(e) => e.code(),
            GroupError::UnknownGroup { .. } => "unknown_group",
            GroupError::GroupExists { .. } => "group_exists",
            GroupError::UnknownUser { .. } => "unknown_user",
            GroupError::UnknownCall { .. } => "unknown_call",
            GroupError::DuplicateCall { .. } => "duplicate_call",
            GroupError::NotAMember { .. } => "not_a_member",
            GroupError::AlreadyMember { .. } => "already_member",
            GroupError::NotASupervisor { .. } => "not_a_supervisor",
            GroupError::AlreadySupervisor { .. } => "already_supervisor",
            GroupError::LastSupervisor { .. } => "last_supervisor",
            GroupError::StandardGroup { .. } => "standard_group",
            GroupError::MemberCannotLeave { .. } => "member_cannot_leave",
            GroupError::LastMemberLocked { .. } => "last_member_locked",
            GroupError::AlreadyLoggedIn { .. } => "already_logged_in",
            GroupError::AlreadyLoggedOut { .. } => "already_logged_out",
            GroupError::AdminRightRequired { .. } => "admin_right_required",
            GroupError::NotYourGroup { .. } | GroupError::GroupNotSupervised { .. } => {
                "not_your_group"
            }
            GroupError::AlreadyTaken { .. } => "already_taken",
            GroupError::WebCallNotSupervisable { .. } => "web_call_not_supervisable",
            GroupError::LineBusy { .. } => "line_busy",
            GroupError::NotForwarded { .. } => "not_forwarded",
            GroupError::LimitReached { .. } => "limit_reached",
        }
    }
}

fn label(field: &'static str, s: &str) -> Result<String, InvalidValue> {
    check_label(field, s, LABEL_LEN_MAX, LABEL_TOO_LONG)
}

/// All groups, the users in them, the calls ringing them and supervisors' subscriptions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    groups: BTreeMap<GroupId, Group>,
    users: BTreeMap<UserId, User>,
    /// Untaken calls ringing a user, by call id; at most one per user.
    ringing: BTreeMap<String, RingingCall>,
    /// (call id, winner), newest last; at most [`TAKEN_CALLS_REMEMBERED_MAX`].
    taken: VecDeque<(String, UserId)>,
    /// (agent, supervisor): "notify me whenever this agent is on a service call".
    subscriptions: BTreeSet<(UserId, UserId)>,
}

impl Directory {
    pub fn new() -> Directory {
        Directory::default()
    }

    // ----- reading -----

    pub fn group(&self, id: &GroupId) -> Option<&Group> {
        self.groups.get(id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// The groups `supervisor` supervises, in id order.
    pub fn groups_supervised_by<'a>(
        &'a self,
        supervisor: &'a UserId,
    ) -> impl Iterator<Item = &'a Group> + 'a {
        self.groups
            .values()
            .filter(move |g| g.is_supervised_by(supervisor))
    }

    /// `user`'s availability in `group`; `None` if they are not a member of it.
    pub fn availability(&self, group: &GroupId, user: &UserId) -> Option<Availability> {
        let membership = self.groups.get(group)?.members.get(user)?;
        let u = self.users.get(user)?;
        Some(self.derive_availability(membership, u))
    }

    pub fn presence(&self, user: &UserId) -> Option<Presence> {
        self.users.get(user).map(|u| u.presence)
    }

    fn derive_availability(&self, membership: &Membership, user: &User) -> Availability {
        if !membership.logged_in {
            return Availability::LoggedOut;
        }
        match &user.line {
            Line::Forwarded { destination } => Availability::Forwarded {
                destination: destination.clone(),
            },
            Line::Ringing { call_id } => match self.ringing.get(call_id) {
                Some(call) => Availability::Ringing {
                    caller: call.caller.clone(),
                    call_id: call_id.clone(),
                    web: call.web,
                },
                // Unreachable while the invariants hold; shown as plain logged-in rather than
                // panicking (docs/design.md §9.8).
                None => Availability::LoggedIn {
                    offline_warning: user.presence == Presence::Offline,
                },
            },
            Line::Idle => Availability::LoggedIn {
                offline_warning: user.presence == Presence::Offline,
            },
        }
    }

    /// Whether `supervisor` supervises a group `user` is a member of (logged in or not): the
    /// scope of cancelling forwarding, forcing logon/logoff and subscribing.
    pub fn supervises_member(&self, supervisor: &UserId, user: &UserId) -> bool {
        self.groups_supervised_by(supervisor)
            .any(|g| g.members.contains_key(user))
    }

    /// Whether `supervisor` supervises a group `user` is logged in to: the scope of ringing
    /// calls (a logged-out member is "no longer part of the group", docs/design.md §3.2).
    fn supervises_logged_in(&self, supervisor: &UserId, user: &UserId) -> bool {
        self.groups_supervised_by(supervisor)
            .any(|g| g.has_logged_in(user))
    }

    /// Members of every group `supervisor` supervises, by group id then user id, filtered and,
    /// if `search` is not blank, restricted to display names or numbers containing it
    /// (case-insensitive substring).
    pub fn members_view(
        &self,
        supervisor: &UserId,
        filter: MemberFilter,
        search: Option<&str>,
    ) -> Vec<ListedMember> {
        let needle = search
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_lowercase);
        let mut views = Vec::new();
        for group in self.groups_supervised_by(supervisor) {
            for (user_id, membership) in &group.members {
                let Some(user) = self.users.get(user_id) else {
                    continue;
                };
                let missed = needle.as_ref().is_some_and(|n| {
                    !user.display_name.to_lowercase().contains(n)
                        && !user
                            .number
                            .as_ref()
                            .is_some_and(|number| number.to_lowercase().contains(n))
                });
                if missed {
                    continue;
                }
                let availability = self.derive_availability(membership, user);
                if filter == MemberFilter::Ringing
                    && !matches!(availability, Availability::Ringing { .. })
                {
                    continue;
                }
                views.push(ListedMember {
                    group: group.id.clone(),
                    group_name: group.name.clone(),
                    user: user_id.clone(),
                    display_name: user.display_name.clone(),
                    number: user.number.clone(),
                    is_supervisor: group.supervisors.contains(user_id),
                    can_leave: membership.can_leave,
                    availability,
                    presence: user.presence,
                });
            }
        }
        views
    }

    /// The business calls ringing members logged in to `supervisor`'s groups, by call id: the
    /// "Supervised calls" list. Web calls are left out (docs/design.md §2.10).
    pub fn ringing_calls(&self, supervisor: &UserId) -> Vec<SupervisedCall> {
        self.ringing
            .iter()
            .filter(|(_, call)| !call.web)
            .filter_map(|(call_id, call)| {
                let groups: Vec<GroupId> = self
                    .groups_supervised_by(supervisor)
                    .filter(|g| g.has_logged_in(&call.member))
                    .map(|g| g.id.clone())
                    .collect();
                if groups.is_empty() {
                    return None;
                }
                let user = self.users.get(&call.member)?;
                Some(SupervisedCall {
                    call_id: call_id.clone(),
                    member: call.member.clone(),
                    display_name: user.display_name.clone(),
                    number: user.number.clone(),
                    caller: call.caller.clone(),
                    groups,
                })
            })
            .collect()
    }

    /// How many calls [`Directory::ringing_calls`] lists.
    pub fn ringing_call_count(&self, supervisor: &UserId) -> usize {
        self.ringing
            .values()
            .filter(|call| !call.web && self.supervises_logged_in(supervisor, &call.member))
            .count()
    }

    /// The agents `supervisor` subscribed to, in id order.
    pub fn subscriptions_of(&self, supervisor: &UserId) -> Vec<UserId> {
        self.subscriptions
            .iter()
            .filter(|(_, s)| s == supervisor)
            .map(|(agent, _)| agent.clone())
            .collect()
    }

    /// The supervisors to notify when `agent` is on a service call.
    pub fn subscribers_of(&self, agent: &UserId) -> Vec<UserId> {
        self.subscriptions
            .iter()
            .filter(|(a, _)| a == agent)
            .map(|(_, s)| s.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests;
