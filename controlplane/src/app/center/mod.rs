//! The contact center's groups and agents over the store (docs/design.md §3): the pure
//! [`Directory`] and the [`Agent`]s in memory behind one lock, every accepted change committed to
//! the store with its `group.*` / `agent.*` events before it is answered.
//!
//! Each operation locks, applies the rule on the in-memory model (which refuses, changing
//! nothing, or returns what happened), commits what happened, and only then lets go of the
//! lock. A commit that fails puts the model back as it was, so memory never holds a change the
//! store does not. Holding the lock across the check and the commit is what makes, for example,
//! "first taker of a ringing call wins" hold between concurrent requests.
//!
//! What is durable: groups and their policies, supervisors and rights, memberships with their
//! login, agents (state, settings and dashboard figures), subscriptions, supervisor settings
//! and grants. What is not: presence, ringing calls and forwarding, which are facts about
//! phones that the platform reports again (a restart ends every call anyway).
//!
//! Adapters call it through [`CenterUse`] (`AppState::center`), which holds the store and the
//! clock, and get plain values back (snapshots, domain types): rendering them is the adapter's
//! job (docs/design.md §9).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

mod agents;
mod groups;
mod handle;
mod users;

pub use handle::CenterUse;

pub use crate::store::{BeepPolicy, ColumnEnum, UserRecord};
pub use users::{
    GrantId, GrantRecord, UserChange, create_grant, grants, registered_number, revoke_grant,
    set_registered_number, update_user, users,
};

use crate::clock::to_unix_ms;
use crate::domain::agents::{
    Agent, AgentError, AgentState, ChatError, ChatMessage, Dashboard, InvalidValue, Platform,
    UserId,
};
use crate::domain::auth::GroupRights;
use crate::domain::groups::{
    Availability, Directory, Group, GroupError, GroupEvent, GroupId, GroupKind, ListedMember,
    MemberFilter, Membership, Presence, Rights, SupervisedCall,
};
use crate::store::{
    self, AgentRecord, GroupMember, GroupRecord, GroupSupervisor, NewEvent, Reads, Store,
    StoreError, StoreExt as _, SupervisorSettings, Writes,
};

/// Why a center operation was refused; nothing changed. Mapped to HTTP in `error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum CenterError {
    #[error(transparent)]
    Group(#[from] GroupError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Chat(#[from] ChatError),
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    #[error("no agent {0} (an agent is a user with an agent token)")]
    UnknownAgent(UserId),
    #[error("no user {0} (users come with their first token)")]
    UnknownUser(String),
    #[error("{0} is not a member of any group you supervise")]
    NotYourAgent(UserId),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// Who forces a member's logon or logoff: the company admin, or a supervisor of the group with
/// their rights over it (the group-admin right is required, docs/design.md §3.3).
#[derive(Debug, Clone)]
pub enum Forcer {
    Admin(UserId),
    Supervisor(UserId, Rights),
}

/// A group's supervision policies (docs/design.md §2.9), beside its membership rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub agent_beep: BeepPolicy,
    /// `None`: no cap on simultaneous monitors of one agent.
    pub max_monitors_per_agent: Option<u32>,
}

/// What a supervision of an agent must respect, from every group the agent is a member of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SupervisionPolicy {
    /// Some group asks for a beep to the agent (`agent_beep` or `periodic_notice`): the most
    /// transparent policy wins. `None`: no group says (the configured default applies).
    pub beep: Option<bool>,
    /// The smallest cap among the agent's groups.
    pub max_monitors: Option<u32>,
}

struct Model {
    dir: Directory,
    policies: BTreeMap<GroupId, Policy>,
    agents: BTreeMap<UserId, Agent>,
}

pub struct Center {
    model: Mutex<Model>,
    /// Who belongs to which groups, derived from the directory after every change of it: the
    /// event streams filter by it ([`Center::groups_seen_by`]) without taking `model`'s lock,
    /// which is held across commits.
    viewers: RwLock<Arc<Viewers>>,
}

/// Each user's groups (supervised or member of): the groups whose events they see.
pub type Viewers = HashMap<String, Arc<HashSet<String>>>;

/// Whether `a` and `b` have the same groups with the same supervisors and members (most
/// directory changes are logins, presence and ringing calls, which leave [`Viewers`] as is).
fn same_viewers(a: &Directory, b: &Directory) -> bool {
    a.groups().count() == b.groups().count()
        && a.groups().zip(b.groups()).all(|(x, y)| {
            x.id() == y.id()
                && x.supervisors() == y.supervisors()
                && x.members().keys().eq(y.members().keys())
        })
}

fn viewers(dir: &Directory) -> Viewers {
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for g in dir.groups() {
        for user in g.supervisors().iter().chain(g.members().keys()) {
            out.entry(user.to_string())
                .or_default()
                .insert(g.id().to_string());
        }
    }
    out.into_iter().map(|(u, g)| (u, Arc::new(g))).collect()
}

/// A group as the use cases answer it: the directory's group, its policy and its supervisors'
/// rights. The HTTP adapter renders it (docs/api.md "Groups and agents").
#[derive(Debug, Clone)]
pub struct GroupSnapshot {
    pub id: GroupId,
    pub name: String,
    pub kind: GroupKind,
    pub lock_last_member: bool,
    pub policy: Policy,
    /// In the store's order (by user id).
    pub supervisors: Vec<SupervisorSnapshot>,
    /// By user id.
    pub members: Vec<MemberSnapshot>,
}

/// A supervisor of a group and their rights over it.
#[derive(Debug, Clone)]
pub struct SupervisorSnapshot {
    pub user: String,
    pub rights: GroupRights,
}

/// A member of a group: their membership, availability in it, and presence if reported.
#[derive(Debug, Clone)]
pub struct MemberSnapshot {
    pub user: UserId,
    pub can_leave: bool,
    pub availability: Availability,
    pub presence: Option<Presence>,
}

/// An agent's live dashboard and the groups they are a member of.
#[derive(Debug, Clone)]
pub struct AgentSnapshot {
    pub dashboard: Dashboard,
    pub groups: Vec<GroupId>,
}

/// A change to a group's configuration (`PATCH /v1/groups/{id}`); `None`: unchanged.
#[derive(Debug, Clone, Default)]
pub struct GroupChange {
    pub lock_last_member: Option<bool>,
    pub agent_beep: Option<BeepPolicy>,
    /// `Some(None)`: remove the cap.
    pub max_monitors_per_agent: Option<Option<u32>>,
}

/// A new group (`POST /v1/groups`).
#[derive(Debug, Clone)]
pub struct NewGroup {
    pub id: GroupId,
    pub name: String,
    pub kind: GroupKind,
    pub lock_last_member: bool,
    pub agent_beep: BeepPolicy,
    pub max_monitors_per_agent: Option<u32>,
}

/// An agent's settings (`PATCH /v1/me`, `PATCH /v1/agents/{id}`); `None`: unchanged.
#[derive(Debug, Clone, Default)]
pub struct AgentChange {
    pub auto_assignment: Option<bool>,
    /// `Some(None)`: no campaign.
    pub campaign: Option<Option<String>>,
    pub platform: Option<Platform>,
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn kind_to_store(kind: GroupKind) -> store::GroupKind {
    match kind {
        GroupKind::Standard => store::GroupKind::Standard,
        GroupKind::MutualAid => store::GroupKind::MutualAid,
    }
}

fn kind_from_store(kind: store::GroupKind) -> GroupKind {
    match kind {
        store::GroupKind::Standard => GroupKind::Standard,
        store::GroupKind::MutualAid => GroupKind::MutualAid,
    }
}

fn platform_to_store(p: Platform) -> store::Platform {
    match p {
        Platform::Web => store::Platform::Web,
        Platform::App => store::Platform::App,
    }
}

fn state_to_store(state: &AgentState) -> store::AgentState {
    match state {
        AgentState::Available => store::AgentState::Available,
        AgentState::Busy { .. } => store::AgentState::Busy,
        AgentState::Standby => store::AgentState::Standby,
        AgentState::Pause { .. } => store::AgentState::Pause,
        AgentState::Disconnected => store::AgentState::Disconnected,
    }
}

/// The agent's row: the columns for queries, and the whole agent (its dashboard tallies) as
/// `aggregates`.
fn agent_record(agent: &Agent) -> Result<AgentRecord, StoreError> {
    let aggregates = serde_json::to_value(agent).map_err(|e| StoreError::Invalid {
        context: "agent".to_owned(),
        detail: e.to_string(),
    })?;
    Ok(AgentRecord {
        user_id: agent.id().to_string(),
        state: state_to_store(agent.state()),
        state_since: to_unix_ms(agent.since_ms()),
        pause_reason: match agent.state() {
            AgentState::Pause { reason } => Some(reason.to_string()),
            _ => None,
        },
        campaign: agent.campaign().map(str::to_owned),
        platform: Some(platform_to_store(agent.platform())),
        auto_assignment: agent.auto_assignment(),
        aggregates,
    })
}

impl Model {
    /// The groups `user` is a member of.
    fn member_groups<'a>(&'a self, user: &'a UserId) -> impl Iterator<Item = &'a Group> {
        self.dir
            .groups()
            .filter(move |g| g.members().contains_key(user))
    }

    /// The ids of the groups `user` is a member of (the scope of events about them).
    fn groups_of(&self, user: &UserId) -> Vec<String> {
        self.member_groups(user)
            .map(|g| g.id().to_string())
            .collect()
    }

    /// Who may see a directory event besides admins: the group's supervisors (by group) and the
    /// users it names.
    fn scope(&self, event: &GroupEvent) -> store::EventScope {
        use GroupEvent as E;
        let (groups, users): (Vec<String>, Vec<&UserId>) = match event {
            E::GroupCreated { group, .. }
            | E::GroupRemoved { group }
            | E::LockLastMemberChanged { group, .. } => (vec![group.to_string()], vec![]),
            E::SupervisorAdded { group, user }
            | E::SupervisorRemoved { group, user }
            | E::MemberAdded { group, user, .. }
            | E::MemberRemoved { group, user }
            | E::CanLeaveChanged { group, user, .. }
            | E::MemberLoggedIn { group, user, .. }
            | E::MemberLoggedOut { group, user, .. } => (vec![group.to_string()], vec![user]),
            E::PresenceChanged { user, .. } | E::ForwardingChanged { user, .. } => {
                (self.groups_of(user), vec![user])
            }
            E::CallRinging { member, .. } | E::RingingEnded { member, .. } => {
                (self.groups_of(member), vec![member])
            }
            E::CallTaken {
                member, taken_by, ..
            } => (self.groups_of(member), vec![member, taken_by]),
        };
        store::EventScope {
            groups,
            users: users.into_iter().map(ToString::to_string).collect(),
        }
    }

    /// Writes what `events` changed of the durable part (memberships, logins, group options),
    /// and appends each as an event.
    fn persist(
        &self,
        w: &mut dyn Writes,
        events: &[GroupEvent],
        now_ms: u64,
    ) -> Result<(), StoreError> {
        use GroupEvent as E;
        for event in events {
            match event {
                E::MemberAdded { group, user, .. }
                | E::CanLeaveChanged { group, user, .. }
                | E::MemberLoggedIn { group, user, .. }
                | E::MemberLoggedOut { group, user, .. } => {
                    let Some(m) = self.dir.group(group).and_then(|g| g.members().get(user)) else {
                        continue;
                    };
                    let row = GroupMember {
                        group_id: group.to_string(),
                        user_id: user.to_string(),
                        can_leave: m.can_leave,
                        logged_in: m.logged_in,
                    };
                    if matches!(event, E::MemberAdded { .. }) {
                        w.add_group_member(&row)?;
                    } else {
                        w.update_group_member(&row)?;
                    }
                }
                E::MemberRemoved { group, user } => {
                    w.remove_group_member(group.as_str(), user.as_str())?
                }
                E::LockLastMemberChanged { group, enabled } => {
                    if let Some(mut g) = w.group(group.as_str())? {
                        g.lock_last_member = *enabled;
                        w.update_group(&g)?;
                    }
                }
                E::GroupRemoved { group } => w.delete_group(group.as_str())?,
                // Written by their callers (they carry what the event does not: rights, the
                // group's record), or not durable (facts about phones).
                E::GroupCreated { .. }
                | E::SupervisorAdded { .. }
                | E::SupervisorRemoved { .. }
                | E::PresenceChanged { .. }
                | E::CallRinging { .. }
                | E::RingingEnded { .. }
                | E::CallTaken { .. }
                | E::ForwardingChanged { .. } => {}
            }
            // The event's serde tag names it: `group.member_logged_in`, …
            let payload = serde_json::to_value(event).unwrap_or(serde_json::Value::Null);
            let tag = payload.get("type").and_then(|t| t.as_str());
            w.append_event(&NewEvent {
                event_type: format!("group.{}", tag.unwrap_or("changed")),
                payload,
                scope: self.scope(event),
                at: to_unix_ms(now_ms),
            })?;
        }
        Ok(())
    }

    fn agent(&self, id: &UserId) -> Result<&Agent, CenterError> {
        self.agents
            .get(id)
            .ok_or_else(|| CenterError::UnknownAgent(id.clone()))
    }
}

/// Appends an `agent.*` event visible to the agent and their groups' supervisors.
fn agent_event(
    w: &mut dyn Writes,
    model: &Model,
    agent: &UserId,
    event_type: &str,
    payload: serde_json::Value,
    now_ms: u64,
) -> Result<(), StoreError> {
    w.append_event(&NewEvent {
        event_type: event_type.to_owned(),
        payload,
        scope: store::EventScope {
            groups: model.groups_of(agent),
            users: vec![agent.to_string()],
        },
        at: to_unix_ms(now_ms),
    })
    .map(|_| ())
}

fn parse_user(id: &str) -> Result<UserId, CenterError> {
    Ok(UserId::parse(id)?)
}

impl Center {
    /// Loads the durable part from the store.
    pub fn load(store: &dyn Store, now_ms: u64) -> anyhow::Result<Center> {
        // One read: a consistent snapshot of everything the model is built from.
        let (users, groups, agents, subs) = store.read(|r| {
            let groups = r
                .groups()?
                .into_iter()
                .map(|g| {
                    let sups = r.group_supervisors(&g.id)?;
                    let members = r.group_members(&g.id)?;
                    Ok((g, sups, members))
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            let users = r.users()?;
            let mut subs = Vec::new();
            for u in &users {
                subs.extend(r.subscriptions_of(&u.id)?);
            }
            Ok((users, groups, r.agents()?, subs))
        })?;
        let mut model = Model {
            dir: Directory::new(),
            policies: BTreeMap::new(),
            agents: BTreeMap::new(),
        };
        for u in &users {
            let Ok(id) = UserId::parse(&u.id) else {
                tracing::warn!(user = %u.id, "stored user id not of the directory's form; skipped");
                continue;
            };
            if let Err(e) = model
                .dir
                .upsert_user(id, &u.display_name, u.phone_number.as_deref())
            {
                tracing::warn!(user = %u.id, err = %e, "stored user skipped");
            }
        }
        for (g, sups, members) in groups {
            let Ok(id) = GroupId::parse(&g.id) else {
                tracing::warn!(group = %g.id, "stored group id not of the directory's form; skipped");
                continue;
            };
            model.dir.create_unsupervised_group(
                id.clone(),
                &g.name,
                kind_from_store(g.kind),
                g.lock_last_member,
            )?;
            model.policies.insert(
                id.clone(),
                Policy {
                    agent_beep: g.agent_beep,
                    max_monitors_per_agent: g.max_monitors_per_agent,
                },
            );
            for s in sups {
                if let Ok(user) = UserId::parse(&s.user_id) {
                    model.dir.add_supervisor(&id, user)?;
                }
            }
            for m in members {
                if let Ok(user) = UserId::parse(&m.user_id) {
                    model.dir.restore_member(
                        &id,
                        user,
                        Membership {
                            can_leave: m.can_leave,
                            logged_in: m.logged_in,
                        },
                    )?;
                }
            }
        }
        for a in agents {
            let agent = serde_json::from_value::<Agent>(a.aggregates.clone())
                .ok()
                .filter(|agent| agent.id().as_str() == a.user_id);
            match (agent, UserId::parse(&a.user_id)) {
                (Some(agent), _) => {
                    model.agents.insert(agent.id().clone(), agent);
                }
                (None, Ok(id)) => {
                    tracing::warn!(agent = %a.user_id, "stored agent figures unreadable; the agent starts over, disconnected");
                    model
                        .agents
                        .insert(id.clone(), Agent::new(id, Platform::Web, now_ms));
                }
                (None, Err(_)) => {}
            }
        }
        for s in subs {
            if let (Ok(sup), Ok(agent)) =
                (UserId::parse(&s.supervisor_id), UserId::parse(&s.agent_id))
                && let Err(e) = model.dir.subscribe(&sup, &agent)
            {
                tracing::warn!(supervisor = %sup, agent = %agent, err = %e, "stored subscription no longer applies");
            }
        }
        Ok(Center {
            viewers: RwLock::new(Arc::new(viewers(&model.dir))),
            model: Mutex::new(model),
        })
    }

    /// The groups `user` supervises or is a member of, as of the last directory change.
    pub fn groups_seen_by(&self, user: &str) -> Arc<HashSet<String>> {
        let viewers = self.viewers.read().unwrap_or_else(PoisonError::into_inner);
        viewers.get(user).cloned().unwrap_or_default()
    }

    /// Every user's groups, as of the last directory change: a new `Arc` after each change
    /// of groups (the event feed rebuilds its index of streams by group then).
    pub fn viewers(&self) -> Arc<Viewers> {
        self.viewers
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_viewers(&self, viewers: Arc<Viewers>) {
        *self.viewers.write().unwrap_or_else(PoisonError::into_inner) = viewers;
    }

    /// Runs `f` on the directory and the groups' policies, then commits what it returns with
    /// `persist`. A refused `f` changed nothing (the directory's methods refuse whole); a
    /// failed commit puts both back as they were. Only they are saved for that: a directory
    /// change may touch several of its maps, but never an agent.
    fn change<T>(
        &self,
        store: &dyn Store,
        f: impl FnOnce(&mut Directory, &mut BTreeMap<GroupId, Policy>) -> Result<T, CenterError>,
        mut persist: impl FnMut(&mut dyn Writes, &Model, &T) -> Result<(), StoreError>,
    ) -> Result<T, CenterError> {
        let mut guard = relock(&self.model);
        let model = &mut *guard;
        let before = (model.dir.clone(), model.policies.clone());
        let out = f(&mut model.dir, &mut model.policies)?;
        // Published before the commit, so a stream filtering an event of this commit (or a
        // later one) already sees the groups as they are with it.
        let previous = (!same_viewers(&before.0, &model.dir)).then(|| {
            let previous = self
                .viewers
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            self.set_viewers(Arc::new(viewers(&model.dir)));
            previous
        });
        if let Err(e) = store.write(|w| persist(w, model, &out)) {
            (model.dir, model.policies) = before;
            if let Some(previous) = previous {
                self.set_viewers(previous);
            }
            return Err(e.into());
        }
        Ok(out)
    }

    /// A directory change: its events are persisted and logged.
    fn directory(
        &self,
        store: &dyn Store,
        now_ms: u64,
        f: impl FnOnce(&mut Directory) -> Result<Vec<GroupEvent>, GroupError>,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.change(
            store,
            |dir, _| Ok(f(dir)?),
            |w, m, events| m.persist(w, events, now_ms),
        )
    }

    /// Runs `f` on a copy of agent `id`, commits the copy with `persist`, and only then puts
    /// it in the model: a refused `f` or a failed commit leaves the agent as it was. Answers
    /// the agent after the change.
    fn change_agent<T>(
        &self,
        store: &dyn Store,
        id: &UserId,
        now_ms: u64,
        f: impl FnOnce(&mut Agent) -> Result<T, CenterError>,
        mut persist: impl FnMut(&mut dyn Writes, &Model, &Agent, &T) -> Result<(), StoreError>,
    ) -> Result<AgentSnapshot, CenterError> {
        let mut model = relock(&self.model);
        let mut agent = model.agent(id)?.clone();
        let out = f(&mut agent)?;
        store.write(|w| persist(w, &model, &agent, &out))?;
        model.agents.insert(id.clone(), agent);
        Self::agent_snapshot(&model, id, now_ms)
    }

    // ----- users -----

    /// A user was created or renamed through the token or user endpoints: the directory shows
    /// the new name and number.
    pub fn user_changed(&self, user: &UserRecord) {
        let Ok(id) = UserId::parse(&user.id) else {
            return;
        };
        let mut model = relock(&self.model);
        if let Err(e) = model
            .dir
            .upsert_user(id, &user.display_name, user.phone_number.as_deref())
        {
            tracing::warn!(user = %user.id, err = %e, "user not shown in the directory");
        }
    }
}

/// A configuration naming a user the appliance does not know: users come with their tokens.
fn configured_user(e: CenterError) -> CenterError {
    match e {
        CenterError::Group(GroupError::UnknownUser { user }) => {
            CenterError::UnknownUser(user.to_string())
        }
        e => e,
    }
}

#[cfg(test)]
mod tests;
