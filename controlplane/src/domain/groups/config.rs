//! The directory's configuration: users, groups, supervisors and members (the company admin's,
//! docs/design.md §3).

use super::*;

impl Directory {
    // ----- configuration (company admin) -----

    /// Adds a user or updates their display name and number (docs/design.md §3: members are
    /// shown and searched by both; `None`: no number registered). A new user is `offline` with
    /// an idle line.
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

    pub(super) fn check_user(&self, user: &UserId) -> Result<(), GroupError> {
        if self.users.contains_key(user) {
            Ok(())
        } else {
            Err(GroupError::UnknownUser { user: user.clone() })
        }
    }

    pub(super) fn group_ref(&self, group: &GroupId) -> Result<&Group, GroupError> {
        self.groups
            .get(group)
            .ok_or_else(|| GroupError::UnknownGroup {
                group: group.clone(),
            })
    }

    /// Call only after [`Directory::group_ref`] succeeded for `group` in the same method: the
    /// error branch then never runs, but costs nothing to keep panic-free.
    pub(super) fn group_mut(&mut self, group: &GroupId) -> Result<&mut Group, GroupError> {
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

    pub(super) fn insert_group(
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
    pub(super) fn prune_subscriptions(&mut self) {
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
}
