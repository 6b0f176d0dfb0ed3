//! Ringing business calls, taking them, forwarding, subscriptions and the platform's reports
//! (docs/design.md §3).

use super::*;

impl Directory {
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
    /// `logged_in` (no admin right needed, docs/design.md §3).
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
