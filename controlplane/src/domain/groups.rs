//! Supervision groups, their members and the ringing business calls supervisors may take
//! (SPEC §3, seed 000), as a pure state machine: no I/O, no clock (STYLE.md 3).
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
//! logged out of the group → `logged_out` (seed 000: "no longer part of the group"); else
//! forwarded → `forwarded`; else ringing (business or web) → `ringing`; else `logged_in`, with
//! `offline_warning` when the presence is `offline`.
//!
//! A supervisor is a full member (seed 000): being a supervisor of a group does not make a user
//! a member of it, but the same user may be added to both `supervisors` and `members`, and is
//! then supervised by the group's other supervisors and may join/leave like any member.
//!
//! A ringing call is *supervised* by supervisor `S` when it is a business call (web calls are
//! never supervised, SPEC §2) ringing a user who is logged in to at least one group `S`
//! supervises; those are the calls `S` sees, counts and may take.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupKind {
    Standard,
    MutualAid,
}

/// Presence as the platform reports it, shown as is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "availability", rename_all = "snake_case")]
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
/// caller (SPEC §4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rights {
    /// Group administration: force members to log on or off.
    pub group_admin: bool,
}

/// A user's membership of one group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Membership {
    /// Mutual-aid only: whether the member may leave at will (seed 000: the admin decides).
    pub can_leave: bool,
    /// Logged in to the group: part of it, ready for its business calls.
    pub logged_in: bool,
}

/// A supervision group: its configuration and memberships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

    /// Whether the last logged-in member is kept from leaving (seed 000: "no empty group").
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
/// listed once per group: their availability may differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub group: GroupId,
    pub group_name: String,
    pub user: UserId,
    pub display_name: String,
    pub number: Option<String>,
    /// Also a supervisor of this group (seed 000: a supervisor is a full member).
    pub is_supervisor: bool,
    pub can_leave: bool,
    #[serde(flatten)]
    pub availability: Availability,
    pub presence: Presence,
}

/// A ringing supervised call, as a supervisor's "Supervised calls" list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RingingCallView {
    pub call_id: String,
    pub member: UserId,
    pub display_name: String,
    pub number: Option<String>,
    pub caller: String,
    /// The groups, among the supervisor's, that the member is logged in to.
    pub groups: Vec<GroupId>,
}

/// What a change did, for the event stream (`group.*`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum GroupEvent {
    GroupCreated {
        group: GroupId,
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
    /// `forced_by`: the supervisor who forced the logon; `None` when the member joined, or when
    /// the configuration logged them in.
    MemberLoggedIn {
        group: GroupId,
        user: UserId,
        forced_by: Option<UserId>,
    },
    MemberLoggedOut {
        group: GroupId,
        user: UserId,
        forced_by: Option<UserId>,
    },
    PresenceChanged {
        user: UserId,
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
    /// `destination: None` when forwarding stopped; `cancelled_by` when a supervisor cancelled
    /// it rather than the platform reporting it.
    ForwardingChanged {
        user: UserId,
        destination: Option<String>,
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
                // panicking (STYLE.md 8).
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
    /// calls (a logged-out member is "no longer part of the group", seed 000).
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
    ) -> Vec<MemberView> {
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
                views.push(MemberView {
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
    /// "Supervised calls" list. Web calls are left out (SPEC §2).
    pub fn ringing_calls(&self, supervisor: &UserId) -> Vec<RingingCallView> {
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
                Some(RingingCallView {
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

    // ----- configuration (company admin) -----

    /// Adds a user or updates their display name and number (seed 000: members are shown and
    /// searched by both; `None`: no number registered). A new user is `offline` with an idle
    /// line.
    pub fn upsert_user(
        &mut self,
        user: UserId,
        display_name: &str,
        number: Option<&str>,
    ) -> Result<(), GroupError> {
        let display_name = label("display name", display_name)?;
        let number = number.map(|n| label("number", n)).transpose()?;
        match self.users.get_mut(&user) {
            Some(u) => {
                u.display_name = display_name;
                u.number = number;
            }
            None => {
                if self.users.len() >= USERS_MAX {
                    return Err(GroupError::LimitReached {
                        what: "users",
                        max: USERS_MAX,
                    });
                }
                self.users.insert(
                    user,
                    User {
                        display_name,
                        number,
                        presence: Presence::Offline,
                        line: Line::Idle,
                    },
                );
            }
        }
        Ok(())
    }

    fn check_user(&self, user: &UserId) -> Result<(), GroupError> {
        if self.users.contains_key(user) {
            Ok(())
        } else {
            Err(GroupError::UnknownUser { user: user.clone() })
        }
    }

    fn group_ref(&self, group: &GroupId) -> Result<&Group, GroupError> {
        self.groups
            .get(group)
            .ok_or_else(|| GroupError::UnknownGroup {
                group: group.clone(),
            })
    }

    /// Call only after [`Directory::group_ref`] succeeded for `group` in the same method: the
    /// error branch then never runs, but costs nothing to keep panic-free.
    fn group_mut(&mut self, group: &GroupId) -> Result<&mut Group, GroupError> {
        self.groups
            .get_mut(group)
            .ok_or_else(|| GroupError::UnknownGroup {
                group: group.clone(),
            })
    }

    /// Creates a group with its first supervisor (a group always has one).
    pub fn create_group(
        &mut self,
        id: GroupId,
        name: &str,
        kind: GroupKind,
        lock_last_member: bool,
        supervisor: UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        self.insert_group(id, name, kind, lock_last_member, Some(supervisor))
    }

    /// Creates a group before its supervisors are named (the API configures a group, then its
    /// supervisors): until [`Directory::add_supervisor`] names one, nobody supervises it.
    pub fn create_unsupervised_group(
        &mut self,
        id: GroupId,
        name: &str,
        kind: GroupKind,
        lock_last_member: bool,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        self.insert_group(id, name, kind, lock_last_member, None)
    }

    fn insert_group(
        &mut self,
        id: GroupId,
        name: &str,
        kind: GroupKind,
        lock_last_member: bool,
        supervisor: Option<UserId>,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let name = label("group name", name)?;
        if self.groups.contains_key(&id) {
            return Err(GroupError::GroupExists { group: id });
        }
        if let Some(s) = &supervisor {
            self.check_user(s)?;
        }
        if self.groups.len() >= GROUPS_MAX {
            return Err(GroupError::LimitReached {
                what: "groups",
                max: GROUPS_MAX,
            });
        }
        self.groups.insert(
            id.clone(),
            Group {
                id: id.clone(),
                name,
                kind,
                lock_last_member,
                supervisors: supervisor.iter().cloned().collect(),
                members: BTreeMap::new(),
            },
        );
        let mut events = vec![GroupEvent::GroupCreated {
            group: id.clone(),
            kind,
        }];
        events.extend(supervisor.map(|user| GroupEvent::SupervisorAdded { group: id, user }));
        Ok(events)
    }

    /// Puts back a membership as it was stored, login included, without the join rules: the
    /// start-up load of what earlier, accepted changes left.
    pub fn restore_member(
        &mut self,
        group: &GroupId,
        user: UserId,
        membership: Membership,
    ) -> Result<(), GroupError> {
        self.group_ref(group)?;
        self.check_user(&user)?;
        self.group_mut(group)?.members.insert(user, membership);
        Ok(())
    }

    /// Removes a group; subscriptions it alone justified are dropped.
    pub fn remove_group(&mut self, id: &GroupId) -> Result<Vec<GroupEvent>, GroupError> {
        self.group_ref(id)?;
        self.groups.remove(id);
        self.prune_subscriptions();
        Ok(vec![GroupEvent::GroupRemoved { group: id.clone() }])
    }

    pub fn set_lock_last_member(
        &mut self,
        group: &GroupId,
        enabled: bool,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let g = self.group_mut(group)?;
        if g.lock_last_member == enabled {
            return Ok(Vec::new());
        }
        g.lock_last_member = enabled;
        Ok(vec![GroupEvent::LockLastMemberChanged {
            group: group.clone(),
            enabled,
        }])
    }

    pub fn add_supervisor(
        &mut self,
        group: &GroupId,
        user: UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let g = self.group_ref(group)?;
        self.check_user(&user)?;
        if g.supervisors.contains(&user) {
            return Err(GroupError::AlreadySupervisor {
                group: group.clone(),
                user,
            });
        }
        if g.supervisors.len() >= SUPERVISORS_PER_GROUP_MAX {
            return Err(GroupError::LimitReached {
                what: "supervisors in a group",
                max: SUPERVISORS_PER_GROUP_MAX,
            });
        }
        self.group_mut(group)?.supervisors.insert(user.clone());
        Ok(vec![GroupEvent::SupervisorAdded {
            group: group.clone(),
            user,
        }])
    }

    /// Removes a supervisor; refused for the last one. Their subscriptions to agents they no
    /// longer supervise are dropped.
    pub fn remove_supervisor(
        &mut self,
        group: &GroupId,
        user: &UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let g = self.group_ref(group)?;
        if !g.supervisors.contains(user) {
            return Err(GroupError::NotASupervisor {
                group: group.clone(),
                user: user.clone(),
            });
        }
        if g.supervisors.len() == 1 {
            return Err(GroupError::LastSupervisor {
                group: group.clone(),
                user: user.clone(),
            });
        }
        self.group_mut(group)?.supervisors.remove(user);
        self.prune_subscriptions();
        Ok(vec![GroupEvent::SupervisorRemoved {
            group: group.clone(),
            user: user.clone(),
        }])
    }

    /// Adds a member. A member starts logged in when they could not log in themselves: every
    /// member of a standard group ("always supervised when connected"), and a mutual-aid member
    /// who may not leave ("always in the group"); other mutual-aid members join when they wish.
    pub fn add_member(
        &mut self,
        group: &GroupId,
        user: UserId,
        can_leave: bool,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let g = self.group_ref(group)?;
        self.check_user(&user)?;
        if g.members.contains_key(&user) {
            return Err(GroupError::AlreadyMember {
                group: group.clone(),
                user,
            });
        }
        if g.members.len() >= MEMBERS_PER_GROUP_MAX {
            return Err(GroupError::LimitReached {
                what: "members in a group",
                max: MEMBERS_PER_GROUP_MAX,
            });
        }
        let logged_in = g.kind == GroupKind::Standard || !can_leave;
        self.group_mut(group)?.members.insert(
            user.clone(),
            Membership {
                can_leave,
                logged_in,
            },
        );
        Ok(vec![GroupEvent::MemberAdded {
            group: group.clone(),
            user,
            can_leave,
            logged_in,
        }])
    }

    /// Removes a member. A configuration change by the admin, so not subject to
    /// `lock_last_member` (which guards members' and supervisors' actions).
    pub fn remove_member(
        &mut self,
        group: &GroupId,
        user: &UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        self.group_ref(group)?.membership(user)?;
        self.group_mut(group)?.members.remove(user);
        self.prune_subscriptions();
        Ok(vec![GroupEvent::MemberRemoved {
            group: group.clone(),
            user: user.clone(),
        }])
    }

    /// Sets whether a mutual-aid member may leave. Forbidding it logs a logged-out member in:
    /// such a member "will always be in the group".
    pub fn set_can_leave(
        &mut self,
        group: &GroupId,
        user: &UserId,
        can_leave: bool,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let g = self.group_mut(group)?;
        let Some(m) = g.members.get_mut(user) else {
            return Err(GroupError::NotAMember {
                group: group.clone(),
                user: user.clone(),
            });
        };
        if m.can_leave == can_leave {
            return Ok(Vec::new());
        }
        m.can_leave = can_leave;
        let mut events = vec![GroupEvent::CanLeaveChanged {
            group: group.clone(),
            user: user.clone(),
            can_leave,
        }];
        if !can_leave && !m.logged_in {
            m.logged_in = true;
            events.push(GroupEvent::MemberLoggedIn {
                group: group.clone(),
                user: user.clone(),
                forced_by: None,
            });
        }
        Ok(events)
    }

    /// Drops subscriptions whose supervisor no longer supervises the agent.
    fn prune_subscriptions(&mut self) {
        let stale: Vec<(UserId, UserId)> = self
            .subscriptions
            .iter()
            .filter(|(agent, sup)| !self.supervises_member(sup, agent))
            .cloned()
            .collect();
        for s in stale {
            self.subscriptions.remove(&s);
        }
    }

    // ----- members' own actions -----

    /// `user` joins (logs in to) a mutual-aid group.
    pub fn join(&mut self, group: &GroupId, user: &UserId) -> Result<Vec<GroupEvent>, GroupError> {
        self.check_own_login(group, user, true)?;
        self.set_logged_in(group, user, true, None)
    }

    /// `user` leaves (logs out of) a mutual-aid group: refused if the admin forbade it for them,
    /// or if they are the last logged-in member of a group with `lock_last_member`.
    pub fn leave(&mut self, group: &GroupId, user: &UserId) -> Result<Vec<GroupEvent>, GroupError> {
        let (g, m) = self.check_own_login(group, user, false)?;
        if !m.can_leave {
            return Err(GroupError::MemberCannotLeave {
                group: group.clone(),
                user: user.clone(),
            });
        }
        g.check_not_last_locked(user)?;
        self.set_logged_in(group, user, false, None)
    }

    /// The checks a member's own join (`logged_in`) or leave starts with: a member, of a
    /// mutual-aid group, not already in (or out).
    fn check_own_login(
        &self,
        group: &GroupId,
        user: &UserId,
        logged_in: bool,
    ) -> Result<(&Group, &Membership), GroupError> {
        let g = self.group_ref(group)?;
        let m = g.membership(user)?;
        if g.kind == GroupKind::Standard {
            return Err(GroupError::StandardGroup {
                group: group.clone(),
            });
        }
        g.check_not_already(user, logged_in)?;
        Ok((g, m))
    }

    /// Call only after the membership was checked in the same method.
    fn set_logged_in(
        &mut self,
        group: &GroupId,
        user: &UserId,
        logged_in: bool,
        forced_by: Option<UserId>,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let g = self.group_mut(group)?;
        let m = g
            .members
            .get_mut(user)
            .ok_or_else(|| GroupError::NotAMember {
                group: group.clone(),
                user: user.clone(),
            })?;
        m.logged_in = logged_in;
        let (group, user) = (group.clone(), user.clone());
        Ok(vec![if logged_in {
            GroupEvent::MemberLoggedIn {
                group,
                user,
                forced_by,
            }
        } else {
            GroupEvent::MemberLoggedOut {
                group,
                user,
                forced_by,
            }
        }])
    }

    // ----- supervisors' actions -----

    /// Checks that `actor` supervises `group` and holds the group-admin right over it: what a
    /// supervisor's forced logon or logoff needs beyond the company admin's.
    fn check_force(
        &self,
        group: &GroupId,
        actor: &UserId,
        rights: Rights,
    ) -> Result<(), GroupError> {
        if !self.group_ref(group)?.is_supervised_by(actor) {
            return Err(GroupError::GroupNotSupervised {
                group: group.clone(),
            });
        }
        if !rights.group_admin {
            return Err(GroupError::AdminRightRequired {
                group: group.clone(),
            });
        }
        Ok(())
    }

    /// A supervisor with the group-admin right logs `member` in to `group`, whatever the group's
    /// kind (the admin right is exactly the power to override the member's choice).
    pub fn force_logon(
        &mut self,
        group: &GroupId,
        actor: &UserId,
        rights: Rights,
        member: &UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        self.check_force(group, actor, rights)?;
        self.admin_set_logged_in(group, member, true, actor)
    }

    /// A supervisor with the group-admin right logs `member` out of `group`. `can_leave` does
    /// not apply (it limits the member's own choice), but `lock_last_member` does: it keeps the
    /// group from being empty whoever asks.
    pub fn force_logoff(
        &mut self,
        group: &GroupId,
        actor: &UserId,
        rights: Rights,
        member: &UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        self.check_force(group, actor, rights)?;
        self.admin_set_logged_in(group, member, false, actor)
    }

    /// The company admin logs `member` in to (`true`) or out of `group`: the forced change
    /// without the supervisor scope (the admin configures every group). `lock_last_member`
    /// still applies to a logoff.
    pub fn admin_set_logged_in(
        &mut self,
        group: &GroupId,
        member: &UserId,
        logged_in: bool,
        actor: &UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let g = self.group_ref(group)?;
        g.membership(member)?;
        g.check_not_already(member, logged_in)?;
        if !logged_in {
            g.check_not_last_locked(member)?;
        }
        self.set_logged_in(group, member, logged_in, Some(actor.clone()))
    }

    /// `supervisor` takes ringing call `call_id` on behalf of its member: the first taker wins,
    /// every later attempt gets `already_taken` naming the winner. Refused for web calls and for
    /// a supervisor of no group the member is logged in to. The check and the take are this one
    /// call, so under the caller's lock exactly one of several racing supervisors wins.
    pub fn take_call(
        &mut self,
        call_id: &str,
        supervisor: &UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        if let Some((_, winner)) = self.taken.iter().find(|(id, _)| id == call_id) {
            return Err(GroupError::AlreadyTaken {
                call_id: call_id.to_owned(),
                taken_by: winner.clone(),
            });
        }
        let call = self
            .ringing
            .get(call_id)
            .ok_or_else(|| GroupError::UnknownCall {
                call_id: call_id.to_owned(),
            })?;
        if call.web {
            return Err(GroupError::WebCallNotSupervisable {
                call_id: call_id.to_owned(),
            });
        }
        if !self.supervises_logged_in(supervisor, &call.member) {
            return Err(GroupError::NotYourGroup {
                user: call.member.clone(),
            });
        }
        // Accepted: from here on nothing can fail.
        let Some((call_id, call)) = self.ringing.remove_entry(call_id) else {
            return Err(GroupError::UnknownCall {
                call_id: call_id.to_owned(),
            });
        };
        if let Some(user) = self.users.get_mut(&call.member) {
            user.line = Line::Idle;
        }
        if self.taken.len() >= TAKEN_CALLS_REMEMBERED_MAX {
            self.taken.pop_front();
        }
        self.taken.push_back((call_id.clone(), supervisor.clone()));
        Ok(vec![GroupEvent::CallTaken {
            call_id,
            member: call.member,
            caller: call.caller,
            taken_by: supervisor.clone(),
        }])
    }

    /// A supervisor of one of `member`'s groups cancels their forwarding: `forwarded` becomes
    /// `logged_in` (no admin right needed, SPEC §3).
    pub fn cancel_forwarding(
        &mut self,
        actor: &UserId,
        member: &UserId,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        if !self.supervises_member(actor, member) {
            return Err(GroupError::NotYourGroup {
                user: member.clone(),
            });
        }
        let user = self
            .users
            .get_mut(member)
            .ok_or_else(|| GroupError::UnknownUser {
                user: member.clone(),
            })?;
        if !matches!(user.line, Line::Forwarded { .. }) {
            return Err(GroupError::NotForwarded {
                user: member.clone(),
            });
        }
        user.line = Line::Idle;
        Ok(vec![GroupEvent::ForwardingChanged {
            user: member.clone(),
            destination: None,
            cancelled_by: Some(actor.clone()),
        }])
    }

    /// `supervisor` asks to be notified whenever `agent` is on a service call. Only for agents
    /// in a group they supervise. Returns whether the subscription is new (subscribing twice is
    /// not an error: the outcome the supervisor wants holds).
    pub fn subscribe(&mut self, supervisor: &UserId, agent: &UserId) -> Result<bool, GroupError> {
        if !self.supervises_member(supervisor, agent) {
            return Err(GroupError::NotYourGroup {
                user: agent.clone(),
            });
        }
        Ok(self
            .subscriptions
            .insert((agent.clone(), supervisor.clone())))
    }

    /// Returns whether there was such a subscription.
    pub fn unsubscribe(&mut self, supervisor: &UserId, agent: &UserId) -> bool {
        self.subscriptions
            .remove(&(agent.clone(), supervisor.clone()))
    }

    // ----- platform reports -----

    pub fn report_presence(
        &mut self,
        user: &UserId,
        presence: Presence,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let u = self
            .users
            .get_mut(user)
            .ok_or_else(|| GroupError::UnknownUser { user: user.clone() })?;
        if u.presence == presence {
            return Ok(Vec::new());
        }
        u.presence = presence;
        Ok(vec![GroupEvent::PresenceChanged {
            user: user.clone(),
            presence,
        }])
    }

    /// An incoming call rings `member`'s phone. Refused while their line already rings or is
    /// forwarded (a forwarded phone does not ring), and for a call id already seen.
    pub fn report_ringing(
        &mut self,
        member: &UserId,
        call_id: &str,
        caller: &str,
        web: bool,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let call_id = label("call id", call_id)?;
        let caller = label("caller", caller)?;
        if self.ringing.contains_key(&call_id) || self.taken.iter().any(|(id, _)| *id == call_id) {
            return Err(GroupError::DuplicateCall { call_id });
        }
        let u = self
            .users
            .get_mut(member)
            .ok_or_else(|| GroupError::UnknownUser {
                user: member.clone(),
            })?;
        match u.line {
            Line::Idle => {}
            Line::Ringing { .. } => {
                return Err(GroupError::LineBusy {
                    user: member.clone(),
                    line: "ringing",
                });
            }
            Line::Forwarded { .. } => {
                return Err(GroupError::LineBusy {
                    user: member.clone(),
                    line: "forwarded",
                });
            }
        }
        u.line = Line::Ringing {
            call_id: call_id.clone(),
        };
        self.ringing.insert(
            call_id.clone(),
            RingingCall {
                member: member.clone(),
                caller: caller.clone(),
                web,
            },
        );
        Ok(vec![GroupEvent::CallRinging {
            call_id,
            member: member.clone(),
            caller,
            web,
        }])
    }

    /// The call stopped ringing (answered by the member, missed, caller gone). For a call a
    /// supervisor took, nothing is left to do: no event.
    pub fn report_ringing_ended(&mut self, call_id: &str) -> Result<Vec<GroupEvent>, GroupError> {
        if self.taken.iter().any(|(id, _)| id == call_id) {
            return Ok(Vec::new());
        }
        let Some(call) = self.ringing.remove(call_id) else {
            return Err(GroupError::UnknownCall {
                call_id: call_id.to_owned(),
            });
        };
        if let Some(user) = self.users.get_mut(&call.member) {
            user.line = Line::Idle;
        }
        Ok(vec![GroupEvent::RingingEnded {
            call_id: call_id.to_owned(),
            member: call.member,
        }])
    }

    /// `user` set (`Some`) or removed (`None`) a forwarding of their phone. Refused while it
    /// rings: the platform reports the end of the ringing first.
    pub fn report_forwarding(
        &mut self,
        user: &UserId,
        destination: Option<&str>,
    ) -> Result<Vec<GroupEvent>, GroupError> {
        let destination = destination
            .map(|d| label("forwarding destination", d))
            .transpose()?;
        let u = self
            .users
            .get_mut(user)
            .ok_or_else(|| GroupError::UnknownUser { user: user.clone() })?;
        if matches!(u.line, Line::Ringing { .. }) {
            return Err(GroupError::LineBusy {
                user: user.clone(),
                line: "ringing",
            });
        }
        let line = match &destination {
            Some(d) => Line::Forwarded {
                destination: d.clone(),
            },
            None => Line::Idle,
        };
        if u.line == line {
            return Ok(Vec::new());
        }
        u.line = line;
        Ok(vec![GroupEvent::ForwardingChanged {
            user: user.clone(),
            destination,
            cancelled_by: None,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: a seeded, dependency-free generator for reproducible sequences.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn coin(&mut self) -> bool {
            self.next() & 1 == 0
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[(self.next() % items.len() as u64) as usize]
        }
    }

    fn id(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    /// The structural invariants every operation must keep.
    fn check_invariants(d: &Directory) {
        for g in d.groups.values() {
            assert!(
                !g.supervisors.is_empty(),
                "group {} lost its supervisors",
                g.id
            );
            for u in g.supervisors.iter().chain(g.members.keys()) {
                assert!(d.users.contains_key(u));
            }
        }
        for (uid, u) in &d.users {
            if let Line::Ringing { call_id } = &u.line {
                assert_eq!(d.ringing.get(call_id).map(|c| &c.member), Some(uid));
            }
        }
        for (call_id, call) in &d.ringing {
            assert_eq!(
                d.users[&call.member].line,
                Line::Ringing {
                    call_id: call_id.clone()
                }
            );
            assert!(d.taken.iter().all(|(t, _)| t != call_id));
        }
        assert!(d.taken.len() <= TAKEN_CALLS_REMEMBERED_MAX);
        for (agent, sup) in &d.subscriptions {
            assert!(d.supervises_member(sup, agent));
        }
    }

    /// Random operations from random actors: no panic, invariants kept, refusals change nothing,
    /// a locked group that had a logged-in member never becomes empty through leave or logoff.
    #[test]
    fn random_operations_keep_the_invariants() {
        let users = ["s1", "s2", "s3", "m1", "m2", "m3", "m4"].map(id);
        let groups = ["g1", "g2", "g3"].map(|g| GroupId::parse(g).unwrap());
        let calls = ["c1", "c2", "c3", "c4"];
        for seed in 1..=300u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut d = Directory::new();
            for u in &users {
                d.upsert_user(u.clone(), u.as_str(), Some("100")).unwrap();
            }
            for _ in 0..200 {
                let (g, a, b) = (
                    rng.pick(&groups).clone(),
                    rng.pick(&users).clone(),
                    rng.pick(&users).clone(),
                );
                let call = *rng.pick(&calls);
                let flag = rng.coin();
                let rights = Rights {
                    group_admin: rng.coin(),
                };
                let before = d.clone();
                let locked_nonempty = d
                    .group(&g)
                    .is_some_and(|g| g.lock_last_member && g.logged_in_count() > 0);
                let result = match rng.next() % 18 {
                    0 => {
                        let kind = if flag {
                            GroupKind::Standard
                        } else {
                            GroupKind::MutualAid
                        };
                        d.create_group(g.clone(), "G", kind, rng.coin(), a)
                    }
                    1 => d.add_supervisor(&g, a),
                    2 => d.remove_supervisor(&g, &a),
                    3 | 4 => d.add_member(&g, a, flag),
                    5 => d.remove_member(&g, &a),
                    6 => d.set_can_leave(&g, &a, flag),
                    7 => d.join(&g, &a),
                    8 => d.leave(&g, &a),
                    9 => d.force_logon(&g, &a, rights, &b),
                    10 => d.force_logoff(&g, &a, rights, &b),
                    11 => d.take_call(call, &a),
                    12 => d.report_ringing(&b, call, "caller", flag),
                    13 => d.report_ringing_ended(call),
                    14 => d.report_forwarding(&b, flag.then_some("0600")),
                    15 => d.cancel_forwarding(&a, &b),
                    16 => d.subscribe(&a, &b).map(|_| Vec::new()),
                    _ => d.set_lock_last_member(&g, flag),
                };
                match result {
                    Err(_) => assert_eq!(d, before, "seed {seed}: a refusal changed something"),
                    Ok(events) => {
                        let emptied = events
                            .iter()
                            .any(|e| matches!(e, GroupEvent::MemberLoggedOut { .. }));
                        if locked_nonempty && emptied {
                            assert!(d.group(&g).unwrap().logged_in_count() > 0, "seed {seed}");
                        }
                    }
                }
                check_invariants(&d);
                for s in &users {
                    assert_eq!(d.ringing_call_count(s), d.ringing_calls(s).len());
                }
            }
        }
    }
}
