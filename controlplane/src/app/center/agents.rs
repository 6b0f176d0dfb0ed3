//! Agents: their state, settings, dashboard and messages (docs/design.md §3).

use super::*;

impl Center {
    // ----- agents -----

    /// The agent `id`, created (disconnected) on first use for a user with the agent role.
    pub(super) fn ensure_agent(
        &self,
        store: &dyn Store,
        id: &UserId,
        now_ms: u64,
    ) -> Result<(), CenterError> {
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

    pub(super) fn agent_snapshot(
        model: &Model,
        id: &UserId,
        now_ms: u64,
    ) -> Result<AgentSnapshot, CenterError> {
        let agent = model.agent(id)?;
        Ok(AgentSnapshot {
            dashboard: agent.dashboard(now_ms),
            groups: model.member_groups(id).map(|g| g.id().clone()).collect(),
        })
    }

    pub(super) fn agent(
        &self,
        store: &dyn Store,
        id: &UserId,
        now_ms: u64,
    ) -> Result<AgentSnapshot, CenterError> {
        self.ensure_agent(store, id, now_ms)?;
        Self::agent_snapshot(&relock(&self.model), id, now_ms)
    }

    /// Every agent `visible` lets through, by id.
    pub(super) fn agents(
        &self,
        store: &dyn Store,
        visible: impl Fn(&UserId) -> bool,
        now_ms: u64,
    ) -> Result<Vec<AgentSnapshot>, CenterError> {
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
    /// same rules (docs/design.md §3). Who may force is the caller's check.
    pub(super) fn change_state(
        &self,
        store: &dyn Store,
        id: &UserId,
        to: AgentState,
        forced_by: Option<UserId>,
        now_ms: u64,
    ) -> Result<AgentSnapshot, CenterError> {
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

    pub(super) fn update_agent(
        &self,
        store: &dyn Store,
        id: &UserId,
        change: AgentChange,
        now_ms: u64,
    ) -> Result<AgentSnapshot, CenterError> {
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
    pub(super) fn send_message(
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
