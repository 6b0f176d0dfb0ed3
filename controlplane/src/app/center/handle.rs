//! [`CenterUse`]: the contact center's use cases as the adapters call them (docs/design.md §9),
//! with the store and the clock they need already in hand, so a handler parses, calls one
//! method with plain arguments, and renders what it answers.

use std::ops::Deref;

use super::*;
use crate::clock::Clock;

/// [`Center`] over the appliance's store, at the appliance's time: what
/// [`crate::app::state::AppState::center`] hands out. The reads that need neither (the
/// directory in memory: [`Center::belongs`], [`Center::members_view`], …) are [`Center`]'s own,
/// reached through `Deref`.
pub struct CenterUse<'a> {
    center: &'a Center,
    store: &'a dyn Store,
    clock: &'a dyn Clock,
}

impl Deref for CenterUse<'_> {
    type Target = Center;

    fn deref(&self) -> &Center {
        self.center
    }
}

impl<'a> CenterUse<'a> {
    pub fn new(center: &'a Center, store: &'a dyn Store, clock: &'a dyn Clock) -> CenterUse<'a> {
        CenterUse {
            center,
            store,
            clock,
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    // ----- groups (configuration: the company admin) -----

    pub fn create_group(&self, req: NewGroup) -> Result<GroupSnapshot, CenterError> {
        self.center.create_group(self.store, req, self.now_ms())
    }

    pub fn update_group(
        &self,
        id: &GroupId,
        change: GroupChange,
    ) -> Result<GroupSnapshot, CenterError> {
        self.center
            .update_group(self.store, id, change, self.now_ms())
    }

    pub fn remove_group(&self, id: &GroupId) -> Result<(), CenterError> {
        self.center.remove_group(self.store, id, self.now_ms())
    }

    /// Names `user` a supervisor of `group` with `rights`, or changes their rights.
    pub fn set_supervisor(
        &self,
        group: &GroupId,
        user: &str,
        rights: GroupRights,
    ) -> Result<(), CenterError> {
        self.center
            .set_supervisor(self.store, group, user, rights, self.now_ms())
    }

    pub fn remove_supervisor(&self, group: &GroupId, user: &str) -> Result<(), CenterError> {
        self.center
            .remove_supervisor(self.store, group, user, self.now_ms())
    }

    /// Adds `user` as a member of `group`, or changes whether they may leave.
    pub fn set_member(
        &self,
        group: &GroupId,
        user: &str,
        can_leave: bool,
    ) -> Result<(), CenterError> {
        self.center
            .set_member(self.store, group, user, can_leave, self.now_ms())
    }

    pub fn remove_member(&self, group: &GroupId, user: &str) -> Result<(), CenterError> {
        self.center
            .remove_member(self.store, group, user, self.now_ms())
    }

    pub fn group(&self, id: &GroupId) -> Result<GroupSnapshot, CenterError> {
        self.center.group(self.store, id)
    }

    /// The groups `visible` lets through, in id order.
    pub fn groups(
        &self,
        visible: impl Fn(&Group) -> bool,
    ) -> Result<Vec<GroupSnapshot>, CenterError> {
        self.center.groups(self.store, visible)
    }

    // ----- members and supervisors -----

    /// The member's own join (`true`) or leave of a mutual-aid group.
    pub fn join_or_leave(
        &self,
        group: &GroupId,
        user: &UserId,
        join: bool,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.center
            .join_or_leave(self.store, group, user, join, self.now_ms())
    }

    /// A forced logon (`true`) or logoff of `member` in `group`.
    pub fn force_login(
        &self,
        group: &GroupId,
        by: &Forcer,
        member: &str,
        logged_in: bool,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.center
            .force_login(self.store, group, by, member, logged_in, self.now_ms())
    }

    /// The rights over `group` a supervisor forcing a member's logon or logoff acts with: its
    /// group-admin right, from the store (docs/design.md §3).
    pub fn supervisor_rights(&self, group: &GroupId, user: &UserId) -> Result<Rights, StoreError> {
        groups::supervisor_rights(self.store, group, user)
    }

    pub fn take_call(
        &self,
        call_id: &str,
        supervisor: &UserId,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.center
            .take_call(self.store, call_id, supervisor, self.now_ms())
    }

    pub fn cancel_forwarding(
        &self,
        actor: &UserId,
        member: &str,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.center
            .cancel_forwarding(self.store, actor, member, self.now_ms())
    }

    /// Subscribes (`true`) or unsubscribes; answers whether anything changed.
    pub fn subscription(
        &self,
        supervisor: &UserId,
        agent: &str,
        on: bool,
    ) -> Result<bool, CenterError> {
        self.center
            .subscription(self.store, supervisor, agent, on, self.now_ms())
    }

    /// A supervisor's registered number, if they set one.
    pub fn settings(&self, user: &UserId) -> Result<Option<String>, StoreError> {
        users::settings(self.store, user)
    }

    /// A supervisor's registered number (`PUT /v1/console/settings`), for a known user;
    /// answers the number as stored.
    pub fn set_settings(&self, user: &UserId, digits: String) -> Result<String, StoreError> {
        users::set_settings(self.store, user, digits, self.now_ms())
    }

    // ----- platform reports (the softswitch) -----

    pub fn report_presence(
        &self,
        user: &str,
        presence: Presence,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.center
            .report_presence(self.store, user, presence, self.now_ms())
    }

    pub fn report_forwarding(
        &self,
        user: &str,
        destination: Option<&str>,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.center
            .report_forwarding(self.store, user, destination, self.now_ms())
    }

    pub fn report_ringing(
        &self,
        member: &str,
        call_id: &str,
        caller: &str,
        web: bool,
    ) -> Result<Vec<GroupEvent>, CenterError> {
        self.center
            .report_ringing(self.store, member, call_id, caller, web, self.now_ms())
    }

    pub fn report_ringing_ended(&self, call_id: &str) -> Result<Vec<GroupEvent>, CenterError> {
        self.center
            .report_ringing_ended(self.store, call_id, self.now_ms())
    }

    // ----- agents -----

    /// The agent `id` (created, disconnected, on first use for a user with the agent role).
    pub fn agent(&self, id: &UserId) -> Result<AgentSnapshot, CenterError> {
        self.center.agent(self.store, id, self.now_ms())
    }

    /// Every agent `visible` lets through, by id.
    pub fn agents(
        &self,
        visible: impl Fn(&UserId) -> bool,
    ) -> Result<Vec<AgentSnapshot>, CenterError> {
        self.center.agents(self.store, visible, self.now_ms())
    }

    /// A state change: the agent's own (`forced_by: None`) or a supervisor's forced one.
    pub fn change_state(
        &self,
        id: &UserId,
        to: AgentState,
        forced_by: Option<UserId>,
    ) -> Result<AgentSnapshot, CenterError> {
        self.center
            .change_state(self.store, id, to, forced_by, self.now_ms())
    }

    pub fn update_agent(
        &self,
        id: &UserId,
        change: AgentChange,
    ) -> Result<AgentSnapshot, CenterError> {
        self.center
            .update_agent(self.store, id, change, self.now_ms())
    }

    /// A supervisor's private message to an agent.
    pub fn send_message(
        &self,
        from: &UserId,
        to: &UserId,
        text: String,
    ) -> Result<ChatMessage, CenterError> {
        self.center
            .send_message(self.store, from, to, text, self.now_ms())
    }
}
