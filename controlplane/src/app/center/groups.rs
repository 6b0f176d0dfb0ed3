//! Groups: their configuration (the company admin), membership, the console's actions and
//! the platform's reports (docs/design.md §3), and the reads of the directory.

use super::*;

impl Center {
    // ----- groups (configuration: the company admin) -----

    pub(super) fn create_group(
        &self,
        store: &dyn Store,
        req: NewGroup,
        now_ms: u64,
    ) -> Result<GroupSnapshot, CenterError> {
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

    pub(super) fn update_group(
        &self,
        store: &dyn Store,
        id: &GroupId,
        change: GroupChange,
        now_ms: u64,
    ) -> Result<GroupSnapshot, CenterError> {
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

    pub(super) fn remove_group(
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
    pub(super) fn set_supervisor(
        &self,
        store: &dyn Store,
        group: &GroupId,
        user: &str,
        rights: crate::domain::auth::GroupRights,
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

    pub(super) fn remove_supervisor(
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
    pub(super) fn set_member(
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

    pub(super) fn remove_member(
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
    pub(super) fn join_or_leave(
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
    pub(super) fn force_login(
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

    pub(super) fn take_call(
        &self,
        store: &dyn Store,
        call_id: &str,
        supervisor: &UserId,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.directory(store, now_ms, |d| d.take_call(call_id, supervisor))
    }

    pub(super) fn cancel_forwarding(
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
    pub(super) fn subscription(
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

    pub(super) fn report_presence(
        &self,
        store: &dyn Store,
        user: &str,
        presence: Presence,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        let user = parse_user(user)?;
        self.directory(store, now_ms, |d| d.report_presence(&user, presence))
    }

    pub(super) fn report_forwarding(
        &self,
        store: &dyn Store,
        user: &str,
        destination: Option<&str>,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        let user = parse_user(user)?;
        self.directory(store, now_ms, |d| d.report_forwarding(&user, destination))
    }

    pub(super) fn report_ringing(
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

    pub(super) fn report_ringing_ended(
        &self,
        store: &dyn Store,
        call_id: &str,
        now_ms: u64,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.directory(store, now_ms, |d| d.report_ringing_ended(call_id))
    }

    // ----- reading -----

    pub(super) fn group_snapshot(
        model: &Model,
        store_sups: &[GroupSupervisor],
        id: &GroupId,
    ) -> Option<GroupSnapshot> {
        let g = model.dir.group(id)?;
        let policy = model.policies.get(id).copied().unwrap_or(Policy {
            agent_beep: BeepPolicy::None,
            max_monitors_per_agent: None,
        });
        Some(GroupSnapshot {
            id: id.clone(),
            name: g.name().to_owned(),
            kind: g.kind(),
            lock_last_member: g.lock_last_member(),
            policy,
            supervisors: store_sups
                .iter()
                .map(|s| SupervisorSnapshot {
                    user: s.user_id.clone(),
                    rights: GroupRights {
                        listen: s.listen_right,
                        intervene: s.intervene_right,
                        admin: s.group_admin,
                    },
                })
                .collect(),
            members: g
                .members()
                .keys()
                .filter_map(|user| {
                    Some(MemberSnapshot {
                        user: user.clone(),
                        can_leave: g.members().get(user)?.can_leave,
                        availability: model.dir.availability(id, user)?,
                        presence: model.dir.presence(user),
                    })
                })
                .collect(),
        })
    }

    pub(super) fn group(
        &self,
        store: &dyn Store,
        id: &GroupId,
    ) -> Result<GroupSnapshot, CenterError> {
        let sups = store.read(|r| r.group_supervisors(id.as_str()))?;
        let model = relock(&self.model);
        Self::group_snapshot(&model, &sups, id)
            .ok_or_else(|| CenterError::Group(GroupError::UnknownGroup { group: id.clone() }))
    }

    /// The groups `visible` lets through, in id order.
    pub(super) fn groups(
        &self,
        store: &dyn Store,
        visible: impl Fn(&Group) -> bool,
    ) -> Result<Vec<GroupSnapshot>, CenterError> {
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
            .filter_map(|(id, s)| Self::group_snapshot(&model, s, id))
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
    ) -> Vec<ListedMember> {
        relock(&self.model)
            .dir
            .members_view(supervisor, filter, search)
    }

    pub fn ringing_calls(&self, supervisor: &UserId) -> Vec<SupervisedCall> {
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
}

/// The rights over `group` a supervisor forcing a member's logon or logoff acts with: its
/// group-admin right, from the store (docs/design.md §3).
pub(super) fn supervisor_rights(
    store: &dyn Store,
    group: &GroupId,
    user: &UserId,
) -> Result<Rights, StoreError> {
    let sups = store.read(|r| r.group_supervisors(group.as_str()))?;
    Ok(Rights {
        group_admin: sups
            .iter()
            .any(|g| g.user_id == user.as_str() && g.group_admin),
    })
}
