//! Logins: a member's own join and leave of a mutual-aid group, and the forced logon and
//! logoff by a supervisor with the group-admin right or by the company admin (docs/design.md §3).

use super::*;

impl Directory {
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
    pub(super) fn check_own_login(
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
    pub(super) fn set_logged_in(
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
    pub(super) fn check_force(
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
}
