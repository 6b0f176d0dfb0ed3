//! The contact center's groups and agents over the store (SPEC §3): the pure [`Directory`] and
//! the [`Agent`]s in memory behind one lock, every accepted change committed to the store with
//! its `group.*` / `agent.*` events before it is answered.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use serde::Serialize;

use crate::clock::to_unix_ms;
use crate::domain::agents::{
    Agent, AgentError, AgentState, ChatError, ChatMessage, Dashboard, InvalidValue, Platform,
    UserId,
};
use crate::domain::groups::{
    Availability, Directory, Group, GroupError, GroupEvent, GroupId, GroupKind, MemberFilter,
    MemberView, Membership, Presence, Rights, RingingCallView,
};
use crate::store::{
    self, AgentRecord, BeepPolicy, ColumnEnum as _, GroupMember, GroupRecord, GroupSupervisor,
    NewEvent, Reads, Store, StoreError, StoreExt as _, SupervisorSettings, UserRecord, Writes,
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
/// their rights over it (the group-admin right is required, SPEC §3).
#[derive(Debug, Clone)]
pub enum Forcer {
    Admin(UserId),
    Supervisor(UserId, Rights),
}

/// A group's supervision policies (SPEC §2), beside its membership rules.
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

/// A group as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct GroupView {
    pub id: GroupId,
    pub name: String,
    pub kind: GroupKind,
    pub lock_last_member: bool,
    pub agent_beep: &'static str,
    pub max_monitors_per_agent: Option<u32>,
    pub supervisors: Vec<SupervisorView>,
    pub members: Vec<GroupMemberView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupervisorView {
    pub user: String,
    pub listen: bool,
    pub intervene: bool,
    pub admin: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupMemberView {
    pub user: UserId,
    pub can_leave: bool,
    #[serde(flatten)]
    pub availability: Availability,
    pub presence: Option<Presence>,
}

/// An agent as the API shows it: the live dashboard and the groups they are in.
#[derive(Debug, Clone, Serialize)]
pub struct AgentView {
    #[serde(flatten)]
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
    /// the agent's view after the change.
    fn change_agent<T>(
        &self,
        store: &dyn Store,
        id: &UserId,
        now_ms: u64,
        f: impl FnOnce(&mut Agent) -> Result<T, CenterError>,
        mut persist: impl FnMut(&mut dyn Writes, &Model, &Agent, &T) -> Result<(), StoreError>,
    ) -> Result<AgentView, CenterError> {
        let mut model = relock(&self.model);
        let mut agent = model.agent(id)?.clone();
        let out = f(&mut agent)?;
        store.write(|w| persist(w, &model, &agent, &out))?;
        model.agents.insert(id.clone(), agent);
        Self::agent_view(&model, id, now_ms)
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

    // ----- groups (configuration: the company admin) -----

    pub fn create_group(
        &self,
        store: &dyn Store,
        req: NewGroup,
        now_ms: u64,
    ) -> Result<GroupView, CenterError> {
        let id = req.id.clone();
        self.change(
            store,
            |dir, policies| {
                let events = dir.create_unsupervised_group(
                    req.id.clone(),
                    &req.name,
                    req.kind,
                    req.lock_last_member,
                )?;
                policies.insert(
                    req.id.clone(),
                    Policy {
                        agent_beep: req.agent_beep,
                        max_monitors_per_agent: req.max_monitors_per_agent,
                    },
                );
                Ok(events)
            },
            |w, m, events| {
                let Some(g) = m.dir.group(&req.id) else {
                    return Ok(());
                };
                w.create_group(&GroupRecord {
                    id: req.id.to_string(),
                    name: g.name().to_owned(),
                    kind: kind_to_store(req.kind),
                    lock_last_member: req.lock_last_member,
                    agent_beep: req.agent_beep,
                    max_monitors_per_agent: req.max_monitors_per_agent,
                    created_at: to_unix_ms(now_ms),
                })?;
                m.persist(w, events, now_ms)
            },
        )?;
        self.group(store, &id)
    }

    pub fn update_group(
        &self,
        store: &dyn Store,
        id: &GroupId,
        change: GroupChange,
        now_ms: u64,
    ) -> Result<GroupView, CenterError> {
        self.change(
            store,
            |dir, policies| {
                let mut events = Vec::new();
                if let Some(lock) = change.lock_last_member {
                    events = dir.set_lock_last_member(id, lock)?;
                }
                let policy = policies
                    .get_mut(id)
                    .ok_or_else(|| GroupError::UnknownGroup { group: id.clone() })?;
                if let Some(beep) = change.agent_beep {
                    policy.agent_beep = beep;
                }
                if let Some(max) = change.max_monitors_per_agent {
                    policy.max_monitors_per_agent = max;
                }
                Ok(events)
            },
            |w, m, events| {
                m.persist(w, events, now_ms)?;
                let (Some(mut g), Some(p)) = (w.group(id.as_str())?, m.policies.get(id)) else {
                    return Ok(());
                };
                g.agent_beep = p.agent_beep;
                g.max_monitors_per_agent = p.max_monitors_per_agent;
                w.update_group(&g)?;
                w.append_event(&NewEvent {
                    event_type: "group.updated".to_owned(),
                    payload: serde_json::json!({
                        "group": id,
                        "lock_last_member": g.lock_last_member,
                        "agent_beep": g.agent_beep.as_str(),
                        "max_monitors_per_agent": g.max_monitors_per_agent,
                    }),
                    scope: store::EventScope {
                        groups: vec![id.to_string()],
                        users: Vec::new(),
                    },
                    at: to_unix_ms(now_ms),
                })
                .map(|_| ())
            },
        )?;
        self.group(store, id)
    }

    pub fn remove_group(
        &self,
        store: &dyn Store,
        id: &GroupId,
        now_ms: u64,
    ) -> Result<(), CenterError> {
        self.change(
            store,
            |dir, policies| {
                let events = dir.remove_group(id)?;
                policies.remove(id);
                Ok(events)
            },
            |w, m, events| m.persist(w, events, now_ms),
        )
        .map(|_| ())
    }

    /// Names `user` a supervisor of `group` with `rights`, or changes their rights.
    pub fn set_supervisor(
        &self,
        store: &dyn Store,
        group: &GroupId,
        user: &str,
        rights: crate::http::access::Rights,
        now_ms: u64,
    ) -> Result<(), CenterError> {
        let user = parse_user(user)?;
        self.change(
            store,
            |dir, _| {
                let g = dir.group(group).ok_or_else(|| GroupError::UnknownGroup {
                    group: group.clone(),
                })?;
                if g.is_supervised_by(&user) {
                    Ok(Vec::new())
                } else {
                    Ok(dir.add_supervisor(group, user.clone())?)
                }
            },
            |w, m, events| {
                w.set_group_supervisor(&GroupSupervisor {
                    group_id: group.to_string(),
                    user_id: user.to_string(),
                    group_admin: rights.admin,
                    listen_right: rights.listen,
                    intervene_right: rights.intervene,
                })?;
                m.persist(w, events, now_ms)
            },
        )
        .map_err(configured_user)
        .map(|_| ())
    }

    pub fn remove_supervisor(
        &self,
        store: &dyn Store,
        group: &GroupId,
        user: &str,
        now_ms: u64,
    ) -> Result<(), CenterError> {
        let user = parse_user(user)?;
        self.change(
            store,
            |dir, _| Ok(dir.remove_supervisor(group, &user)?),
            |w, m, events| {
                w.remove_group_supervisor(group.as_str(), user.as_str())?;
                m.persist(w, events, now_ms)
            },
        )
        .map(|_| ())
    }

    /// Adds `user` as a member of `group`, or changes whether they may leave.
    pub fn set_member(
        &self,
        store: &dyn Store,
        group: &GroupId,
        user: &str,
        can_leave: bool,
        now_ms: u64,
    ) -> Result<(), CenterError> {
        let user = parse_user(user)?;
        self.directory(store, now_ms, |d| {
            let g = d.group(group).ok_or_else(|| GroupError::UnknownGroup {
                group: group.clone(),
            })?;
            if g.members().contains_key(&user) {
                d.set_can_leave(group, &user, can_leave)
            } else {
                d.add_member(group, user.clone(), can_leave)
            }
        })
        .map_err(configured_user)
        .map(|_| ())
    }

    pub fn remove_member(
        &self,
        store: &dyn Store,
        group: &GroupId,
        user: &str,
        now_ms: u64,
    ) -> Result<(), CenterError> {
        let user = parse_user(user)?;
        self.directory(store, now_ms, |d| d.remove_member(group, &user))
            .map(|_| ())
    }

    // ----- members and supervisors -----

    /// The member's own join (`true`) or leave of a mutual-aid group.
    pub fn join_or_leave(
        &self,
        store: &dyn Store,
        group: &GroupId,
        user: &UserId,
        join: bool,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.directory(store, now_ms, |d| {
            if join {
                d.join(group, user)
            } else {
                d.leave(group, user)
            }
        })
    }

    /// A forced logon (`true`) or logoff of `member` in `group`.
    pub fn force_login(
        &self,
        store: &dyn Store,
        group: &GroupId,
        by: &Forcer,
        member: &str,
        logged_in: bool,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        let member = parse_user(member)?;
        self.directory(store, now_ms, |d| match (by, logged_in) {
            (Forcer::Admin(actor), _) => d.admin_set_logged_in(group, &member, logged_in, actor),
            (Forcer::Supervisor(actor, r), true) => d.force_logon(group, actor, *r, &member),
            (Forcer::Supervisor(actor, r), false) => d.force_logoff(group, actor, *r, &member),
        })
    }

    pub fn take_call(
        &self,
        store: &dyn Store,
        call_id: &str,
        supervisor: &UserId,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.directory(store, now_ms, |d| d.take_call(call_id, supervisor))
    }

    pub fn cancel_forwarding(
        &self,
        store: &dyn Store,
        actor: &UserId,
        member: &str,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        let member = parse_user(member)?;
        self.directory(store, now_ms, |d| d.cancel_forwarding(actor, &member))
    }

    /// Subscribes (`true`) or unsubscribes; answers whether anything changed.
    pub fn subscription(
        &self,
        store: &dyn Store,
        supervisor: &UserId,
        agent: &str,
        on: bool,
        now_ms: u64,
    ) -> Result<bool, CenterError> {
        let agent = parse_user(agent)?;
        self.change(
            store,
            |dir, _| {
                if on {
                    Ok(dir.subscribe(supervisor, &agent)?)
                } else {
                    Ok(dir.unsubscribe(supervisor, &agent))
                }
            },
            |w, _, changed| {
                if !*changed {
                    return Ok(());
                }
                if on {
                    w.subscribe(&store::Subscription {
                        supervisor_id: supervisor.to_string(),
                        agent_id: agent.to_string(),
                        created_at: to_unix_ms(now_ms),
                    })
                } else {
                    w.unsubscribe(supervisor.as_str(), agent.as_str())
                }
            },
        )
    }

    pub fn subscriptions_of(&self, supervisor: &UserId) -> Vec<UserId> {
        relock(&self.model).dir.subscriptions_of(supervisor)
    }

    // ----- platform reports (the softswitch) -----

    pub fn report_presence(
        &self,
        store: &dyn Store,
        user: &str,
        presence: Presence,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        let user = parse_user(user)?;
        self.directory(store, now_ms, |d| d.report_presence(&user, presence))
    }

    pub fn report_forwarding(
        &self,
        store: &dyn Store,
        user: &str,
        destination: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        let user = parse_user(user)?;
        self.directory(store, now_ms, |d| d.report_forwarding(&user, destination))
    }

    pub fn report_ringing(
        &self,
        store: &dyn Store,
        member: &str,
        call_id: &str,
        caller: &str,
        web: bool,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        let member = parse_user(member)?;
        self.directory(store, now_ms, |d| {
            d.report_ringing(&member, call_id, caller, web)
        })
    }

    pub fn report_ringing_ended(
        &self,
        store: &dyn Store,
        call_id: &str,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.directory(store, now_ms, |d| d.report_ringing_ended(call_id))
    }

    // ----- reading -----

    fn group_view(
        model: &Model,
        store_sups: &[GroupSupervisor],
        id: &GroupId,
    ) -> Option<GroupView> {
        let g = model.dir.group(id)?;
        let policy = model.policies.get(id).copied().unwrap_or(Policy {
            agent_beep: BeepPolicy::None,
            max_monitors_per_agent: None,
        });
        Some(GroupView {
            id: id.clone(),
            name: g.name().to_owned(),
            kind: g.kind(),
            lock_last_member: g.lock_last_member(),
            agent_beep: policy.agent_beep.as_str(),
            max_monitors_per_agent: policy.max_monitors_per_agent,
            supervisors: store_sups
                .iter()
                .map(|s| SupervisorView {
                    user: s.user_id.clone(),
                    listen: s.listen_right,
                    intervene: s.intervene_right,
                    admin: s.group_admin,
                })
                .collect(),
            members: g
                .members()
                .keys()
                .filter_map(|user| {
                    Some(GroupMemberView {
                        user: user.clone(),
                        can_leave: g.members().get(user)?.can_leave,
                        availability: model.dir.availability(id, user)?,
                        presence: model.dir.presence(user),
                    })
                })
                .collect(),
        })
    }

    pub fn group(&self, store: &dyn Store, id: &GroupId) -> Result<GroupView, CenterError> {
        let sups = store.read(|r| r.group_supervisors(id.as_str()))?;
        let model = relock(&self.model);
        Self::group_view(&model, &sups, id)
            .ok_or_else(|| CenterError::Group(GroupError::UnknownGroup { group: id.clone() }))
    }

    /// The groups `visible` lets through, in id order.
    pub fn groups(
        &self,
        store: &dyn Store,
        visible: impl Fn(&Group) -> bool,
    ) -> Result<Vec<GroupView>, CenterError> {
        let ids: Vec<GroupId> = {
            let model = relock(&self.model);
            model
                .dir
                .groups()
                .filter(|g| visible(g))
                .map(|g| g.id().clone())
                .collect()
        };
        let sups = store.read(|r| {
            ids.iter()
                .map(|id| r.group_supervisors(id.as_str()))
                .collect::<Result<Vec<_>, StoreError>>()
        })?;
        let model = relock(&self.model);
        Ok(ids
            .iter()
            .zip(&sups)
            .filter_map(|(id, s)| Self::group_view(&model, s, id))
            .collect())
    }

    /// Whether `user` is a member or a supervisor of `group`.
    pub fn belongs(&self, group: &GroupId, user: &UserId) -> bool {
        let model = relock(&self.model);
        model
            .dir
            .group(group)
            .is_some_and(|g| g.is_supervised_by(user) || g.members().contains_key(user))
    }

    pub fn supervises_member(&self, supervisor: &UserId, user: &UserId) -> bool {
        relock(&self.model).dir.supervises_member(supervisor, user)
    }

    pub fn members_view(
        &self,
        supervisor: &UserId,
        filter: MemberFilter,
        search: Option<&str>,
    ) -> Vec<MemberView> {
        relock(&self.model)
            .dir
            .members_view(supervisor, filter, search)
    }

    pub fn ringing_calls(&self, supervisor: &UserId) -> Vec<RingingCallView> {
        relock(&self.model).dir.ringing_calls(supervisor)
    }

    /// The policies of the groups `agent` is a member of.
    pub fn supervision_policy(&self, agent: &str) -> SupervisionPolicy {
        let Ok(agent) = UserId::parse(agent) else {
            return SupervisionPolicy::default();
        };
        let model = relock(&self.model);
        let mut out = SupervisionPolicy::default();
        for g in model.member_groups(&agent) {
            let Some(p) = model.policies.get(g.id()) else {
                continue;
            };
            let beep = !matches!(p.agent_beep, BeepPolicy::None);
            out.beep = Some(out.beep.unwrap_or(false) || beep);
            if let Some(max) = p.max_monitors_per_agent {
                out.max_monitors = Some(out.max_monitors.map_or(max, |m| m.min(max)));
            }
        }
        out
    }

    /// The supervisors to tell that `agent` is on a service call.
    pub fn subscribers_of(&self, agent: &str) -> Vec<UserId> {
        match UserId::parse(agent) {
            Ok(agent) => relock(&self.model).dir.subscribers_of(&agent),
            Err(_) => Vec::new(),
        }
    }

    // ----- agents -----

    /// The agent `id`, created (disconnected) on first use for a user with the agent role.
    fn ensure_agent(&self, store: &dyn Store, id: &UserId, now_ms: u64) -> Result<(), CenterError> {
        if relock(&self.model).agents.contains_key(id) {
            return Ok(());
        }
        let user = store.read(|r| r.user(id.as_str()))?;
        match user {
            Some(u) if u.roles.contains(&store::Role::Agent) => {}
            _ => return Err(CenterError::UnknownAgent(id.clone())),
        }
        let mut model = relock(&self.model);
        if !model.agents.contains_key(id) {
            let agent = Agent::new(id.clone(), Platform::Web, now_ms);
            store.write(|w| w.create_agent(&agent_record(&agent)?))?;
            model.agents.insert(id.clone(), agent);
        }
        Ok(())
    }

    fn agent_view(model: &Model, id: &UserId, now_ms: u64) -> Result<AgentView, CenterError> {
        let agent = model.agent(id)?;
        Ok(AgentView {
            dashboard: agent.dashboard(now_ms),
            groups: model.member_groups(id).map(|g| g.id().clone()).collect(),
        })
    }

    pub fn agent(
        &self,
        store: &dyn Store,
        id: &UserId,
        now_ms: u64,
    ) -> Result<AgentView, CenterError> {
        self.ensure_agent(store, id, now_ms)?;
        Self::agent_view(&relock(&self.model), id, now_ms)
    }

    /// Every agent `visible` lets through, by id.
    pub fn agents(
        &self,
        store: &dyn Store,
        visible: impl Fn(&UserId) -> bool,
        now_ms: u64,
    ) -> Result<Vec<AgentView>, CenterError> {
        let ids: Vec<String> = store.read(|r| {
            Ok(r.users()?
                .into_iter()
                .filter(|u| u.roles.contains(&store::Role::Agent))
                .map(|u| u.id)
                .collect())
        })?;
        let mut out = Vec::new();
        for id in ids {
            let Ok(id) = UserId::parse(&id) else { continue };
            if visible(&id) {
                out.push(self.agent(store, &id, now_ms)?);
            }
        }
        Ok(out)
    }

    /// A state change: the agent's own (`forced_by: None`) or a supervisor's forced one; the
    /// same rules (SPEC §3). Who may force is the caller's check.
    pub fn change_state(
        &self,
        store: &dyn Store,
        id: &UserId,
        to: AgentState,
        forced_by: Option<UserId>,
        now_ms: u64,
    ) -> Result<AgentView, CenterError> {
        self.ensure_agent(store, id, now_ms)?;
        self.change_agent(
            store,
            id,
            now_ms,
            |agent| {
                Ok(match forced_by {
                    Some(by) => agent.force_state(to, by, now_ms)?,
                    None => agent.change_state(to, now_ms)?,
                })
            },
            |w, m, agent, change| {
                w.update_agent(&agent_record(agent)?)?;
                let payload = serde_json::to_value(change).unwrap_or(serde_json::Value::Null);
                agent_event(w, m, id, "agent.state_changed", payload, now_ms)
            },
        )
    }

    pub fn update_agent(
        &self,
        store: &dyn Store,
        id: &UserId,
        change: AgentChange,
        now_ms: u64,
    ) -> Result<AgentView, CenterError> {
        self.ensure_agent(store, id, now_ms)?;
        self.change_agent(
            store,
            id,
            now_ms,
            |agent| {
                if let Some(on) = change.auto_assignment {
                    agent.set_auto_assignment(on);
                }
                if let Some(campaign) = change.campaign.clone() {
                    agent.set_campaign(campaign);
                }
                if let Some(platform) = change.platform {
                    agent.set_platform(platform);
                }
                Ok(())
            },
            |w, m, agent, ()| {
                w.update_agent(&agent_record(agent)?)?;
                let payload = serde_json::json!({
                    "agent": id,
                    "auto_assignment": agent.auto_assignment(),
                    "campaign": agent.campaign(),
                    "platform": agent.platform(),
                });
                agent_event(w, m, id, "agent.updated", payload, now_ms)
            },
        )
    }

    /// A supervisor's private message to an agent: an `agent.message` event only the agent
    /// (and admins) can see.
    pub fn send_message(
        &self,
        store: &dyn Store,
        from: &UserId,
        to: &UserId,
        text: String,
        now_ms: u64,
    ) -> Result<ChatMessage, CenterError> {
        self.ensure_agent(store, to, now_ms)?;
        // Nothing in the model changes: the lock is only held to find the agent.
        let message = ChatMessage::new(from.clone(), relock(&self.model).agent(to)?, text, now_ms)?;
        store.write(|w| {
            w.append_event(&NewEvent {
                event_type: "agent.message".to_owned(),
                payload: serde_json::json!({
                    "from": message.from(),
                    "to": message.to(),
                    "text": message.text(),
                    "at_ms": message.at_ms(),
                }),
                scope: store::EventScope {
                    groups: Vec::new(),
                    users: vec![to.to_string()],
                },
                at: to_unix_ms(now_ms),
            })
            .map(|_| ())
        })?;
        Ok(message)
    }

    /// Tells `agent`'s subscribers that they are on a service call (`agent.on_service_call`),
    /// in the caller's transaction.
    pub fn notify_service_call(
        &self,
        w: &mut dyn Writes,
        agent: &str,
        call_id: &str,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let subscribers = self.subscribers_of(agent);
        if subscribers.is_empty() {
            return Ok(());
        }
        w.append_event(&NewEvent {
            event_type: "agent.on_service_call".to_owned(),
            payload: serde_json::json!({
                "agent": agent,
                "call_id": call_id,
                "subscribers": subscribers,
            }),
            scope: store::EventScope {
                groups: Vec::new(),
                users: subscribers.iter().map(ToString::to_string).collect(),
            },
            at: to_unix_ms(now_ms),
        })
        .map(|_| ())
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

// ----- supervisor settings (SPEC §2) -----

/// A supervisor's registered number, if they set one.
pub fn registered_number(r: &dyn Reads, user: &str) -> Result<Option<String>, StoreError> {
    Ok(r.supervisor_settings(user)?.map(|s| s.registered_number))
}

pub fn set_registered_number(
    w: &mut dyn Writes,
    user: &str,
    number: &str,
    now_ms: u64,
) -> Result<(), StoreError> {
    w.set_supervisor_settings(&SupervisorSettings {
        user_id: user.to_owned(),
        registered_number: number.to_owned(),
        updated_at: to_unix_ms(now_ms),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::store::{Role, SqliteStore};

    const T0_MS: u64 = 1_700_000_000_000;

    /// A store whose commits fail while `failing` is set (a full disk).
    struct FailingStore {
        inner: SqliteStore,
        failing: AtomicBool,
    }

    impl Store for FailingStore {
        fn write_dyn(
            &self,
            f: &mut dyn FnMut(&mut dyn Writes) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            if self.failing.load(Ordering::SeqCst) {
                return Err(StoreError::Backend {
                    context: "committing".to_owned(),
                    cause: "disk full (test)".into(),
                });
            }
            self.inner.write_dyn(f)
        }

        fn read_dyn(
            &self,
            f: &mut dyn FnMut(&dyn Reads) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            self.inner.read_dyn(f)
        }

        fn sync(&self) -> Result<(), StoreError> {
            self.inner.sync()
        }
    }

    fn id(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    /// What the API shows of the center: the group and agent ag-1, as JSON.
    fn shown(c: &Center, store: &dyn Store) -> serde_json::Value {
        let group = c.group(store, &GroupId::parse("aid").unwrap()).unwrap();
        let agent = c.agent(store, &id("ag-1"), T0_MS).unwrap();
        serde_json::json!({"group": group, "agent": agent})
    }

    /// Each kind of change (directory and policies, one agent, a new agent) refused by the
    /// store leaves memory as it was: the same request then succeeds as if first made, and
    /// memory agrees with a center loaded afresh from the store.
    #[test]
    fn a_failed_commit_changes_nothing_in_memory() {
        let store = FailingStore {
            inner: SqliteStore::open_in_memory().unwrap(),
            failing: AtomicBool::new(false),
        };
        store
            .write(|w| {
                for (user, role) in [
                    ("sup-1", Role::Supervisor),
                    ("ag-1", Role::Agent),
                    ("ag-2", Role::Agent),
                ] {
                    w.create_user(&UserRecord {
                        id: user.to_owned(),
                        display_name: user.to_owned(),
                        phone_number: None,
                        roles: vec![role],
                    })?;
                }
                Ok(())
            })
            .unwrap();
        let c = Center::load(&store, T0_MS).unwrap();
        let aid = GroupId::parse("aid").unwrap();
        let new_group = NewGroup {
            id: aid.clone(),
            name: "Aid".to_owned(),
            kind: GroupKind::MutualAid,
            lock_last_member: false,
            agent_beep: BeepPolicy::None,
            max_monitors_per_agent: None,
        };
        c.create_group(&store, new_group, T0_MS).unwrap();
        let rights = crate::http::access::Rights {
            listen: true,
            intervene: false,
            admin: true,
        };
        c.set_supervisor(&store, &aid, "sup-1", rights, T0_MS)
            .unwrap();
        c.set_member(&store, &aid, "ag-1", true, T0_MS).unwrap();
        c.agent(&store, &id("ag-1"), T0_MS).unwrap();

        let lock_and_beep = || GroupChange {
            lock_last_member: Some(true),
            agent_beep: Some(BeepPolicy::AgentBeep),
            max_monitors_per_agent: Some(Some(2)),
        };
        store.failing.store(true, Ordering::SeqCst);
        let before = shown(&c, &store);
        let refused = [
            c.join_or_leave(&store, &aid, &id("ag-1"), true, T0_MS)
                .map(|_| ()),
            c.update_group(&store, &aid, lock_and_beep(), T0_MS)
                .map(|_| ()),
            c.subscription(&store, &id("sup-1"), "ag-1", true, T0_MS)
                .map(|_| ()),
            c.change_state(&store, &id("ag-1"), AgentState::Standby, None, T0_MS)
                .map(|_| ()),
            c.agent(&store, &id("ag-2"), T0_MS).map(|_| ()),
        ];
        for r in refused {
            assert!(matches!(r, Err(CenterError::Store(_))), "{r:?}");
        }
        assert_eq!(shown(&c, &store), before, "a failed commit changed memory");
        assert!(!relock(&c.model).agents.contains_key(&id("ag-2")));
        store.failing.store(false, Ordering::SeqCst);

        // As if first made: a join not yet applied, a subscription new, a state change allowed.
        let joined = c
            .join_or_leave(&store, &aid, &id("ag-1"), true, T0_MS)
            .unwrap();
        assert!(matches!(joined[..], [GroupEvent::MemberLoggedIn { .. }]));
        let view = c
            .update_group(&store, &aid, lock_and_beep(), T0_MS)
            .unwrap();
        assert!(view.lock_last_member);
        assert!(
            c.subscription(&store, &id("sup-1"), "ag-1", true, T0_MS)
                .unwrap()
        );
        c.change_state(&store, &id("ag-1"), AgentState::Standby, None, T0_MS)
            .unwrap();
        c.agent(&store, &id("ag-2"), T0_MS).unwrap();
        let reloaded = Center::load(&store, T0_MS).unwrap();
        assert_eq!(shown(&c, &store), shown(&reloaded, &store));
        assert_eq!(reloaded.subscriptions_of(&id("sup-1")), [id("ag-1")]);
    }
}
