//! The contact center's rows (docs/design.md §3): users and their roles and settings, groups,
//! agents, subscriptions.

use rusqlite::{Row, ToSql, params};

use super::{Db, Sql, json, ms, opt_text_enum, run, text_enum, to_json};
use crate::store::{
    AgentRecord, CenterReads, CenterWrites, ColumnEnum, GroupMember, GroupRecord, GroupSupervisor,
    Result, Role, Subscription, SupervisorSettings, UserRecord,
};

// --- Rows --------------------------------------------------------------------------------------

macro_rules! user_cols {
    () => {
        "id, display_name, phone_number"
    };
}

fn user_row(row: &Row<'_>) -> Sql<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        display_name: row.get(1)?,
        phone_number: row.get(2)?,
        roles: Vec::new(),
    })
}

fn settings_row(row: &Row<'_>) -> Sql<SupervisorSettings> {
    Ok(SupervisorSettings {
        user_id: row.get(0)?,
        registered_number: row.get(1)?,
        updated_at: ms(row, 2)?,
    })
}

macro_rules! group_cols {
    () => {
        "id, name, kind, lock_last_member, agent_beep, max_monitors_per_agent, created_at_ms"
    };
}

fn group_row(row: &Row<'_>) -> Sql<GroupRecord> {
    Ok(GroupRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: text_enum(row, 2, "groups.kind")?,
        lock_last_member: row.get(3)?,
        agent_beep: text_enum(row, 4, "groups.agent_beep")?,
        max_monitors_per_agent: row.get(5)?,
        created_at: ms(row, 6)?,
    })
}

macro_rules! group_supervisor_cols {
    () => {
        "group_id, user_id, group_admin, listen_right, intervene_right"
    };
}

fn group_supervisor_row(row: &Row<'_>) -> Sql<GroupSupervisor> {
    Ok(GroupSupervisor {
        group_id: row.get(0)?,
        user_id: row.get(1)?,
        group_admin: row.get(2)?,
        listen_right: row.get(3)?,
        intervene_right: row.get(4)?,
    })
}

macro_rules! group_member_cols {
    () => {
        "group_id, user_id, can_leave, logged_in"
    };
}

fn group_member_row(row: &Row<'_>) -> Sql<GroupMember> {
    Ok(GroupMember {
        group_id: row.get(0)?,
        user_id: row.get(1)?,
        can_leave: row.get(2)?,
        logged_in: row.get(3)?,
    })
}

macro_rules! agent_cols {
    () => {
        "user_id, state, state_since_ms, pause_reason, campaign, platform, auto_assignment, \
         aggregates"
    };
}

/// An agent's values in `agent_cols!()` order (?1 … ?8), for its INSERT and its UPDATE.
fn agent_params<R>(a: &AgentRecord, f: impl FnOnce(&[&dyn ToSql]) -> Sql<R>) -> Sql<R> {
    let aggregates = to_json(&a.aggregates, "agents.aggregates")?;
    f(params![
        a.user_id,
        a.state.as_str(),
        a.state_since.0,
        a.pause_reason,
        a.campaign,
        a.platform.map(ColumnEnum::as_str),
        a.auto_assignment,
        aggregates
    ])
}

fn agent_row(row: &Row<'_>) -> Sql<AgentRecord> {
    Ok(AgentRecord {
        user_id: row.get(0)?,
        state: text_enum(row, 1, "agents.state")?,
        state_since: ms(row, 2)?,
        pause_reason: row.get(3)?,
        campaign: row.get(4)?,
        platform: opt_text_enum(row, 5, "agents.platform")?,
        auto_assignment: row.get(6)?,
        aggregates: json(row, 7, "agents.aggregates")?,
    })
}

fn subscription_row(row: &Row<'_>) -> Sql<Subscription> {
    Ok(Subscription {
        supervisor_id: row.get(0)?,
        agent_id: row.get(1)?,
        created_at: ms(row, 2)?,
    })
}

impl Db<'_> {
    fn roles_of(&self, user_id: &str) -> Sql<Vec<Role>> {
        let mut roles = self.all(
            "SELECT role FROM user_roles WHERE user_id = ?1",
            [user_id],
            |r| text_enum(r, 0, "user_roles.role"),
        )?;
        roles.sort_unstable();
        Ok(roles)
    }

    fn with_roles(&self, mut user: UserRecord) -> Sql<UserRecord> {
        user.roles = self.roles_of(&user.id)?;
        Ok(user)
    }

    fn set_roles(&self, user: &UserRecord) -> Sql<()> {
        self.exec("DELETE FROM user_roles WHERE user_id = ?1", [&user.id])?;
        // Deduplicated here rather than with INSERT OR IGNORE, which would also skip a CHECK.
        let mut roles = user.roles.clone();
        roles.sort_unstable();
        roles.dedup();
        for role in roles {
            self.exec(
                "INSERT INTO user_roles (user_id, role) VALUES (?1, ?2)",
                params![user.id, role.as_str()],
            )?;
        }
        Ok(())
    }
}

impl CenterReads for Db<'_> {
    fn user(&self, id: &str) -> Result<Option<UserRecord>> {
        run("reading a user", || {
            self.one(
                concat!("SELECT ", user_cols!(), " FROM users WHERE id = ?1"),
                [id],
                user_row,
            )?
            .map(|u| self.with_roles(u))
            .transpose()
        })
    }

    fn users(&self) -> Result<Vec<UserRecord>> {
        run("listing users", || {
            self.all(
                concat!("SELECT ", user_cols!(), " FROM users ORDER BY id"),
                [],
                user_row,
            )?
            .into_iter()
            .map(|u| self.with_roles(u))
            .collect()
        })
    }

    fn supervisor_settings(&self, user_id: &str) -> Result<Option<SupervisorSettings>> {
        run("reading supervisor settings", || {
            self.one(
                "SELECT user_id, registered_number, updated_at_ms FROM supervisor_settings \
                 WHERE user_id = ?1",
                [user_id],
                settings_row,
            )
        })
    }

    fn group(&self, id: &str) -> Result<Option<GroupRecord>> {
        run("reading a group", || {
            self.one(
                concat!("SELECT ", group_cols!(), " FROM groups WHERE id = ?1"),
                [id],
                group_row,
            )
        })
    }

    fn groups(&self) -> Result<Vec<GroupRecord>> {
        run("listing groups", || {
            self.all(
                concat!("SELECT ", group_cols!(), " FROM groups ORDER BY name"),
                [],
                group_row,
            )
        })
    }

    fn group_supervisors(&self, group_id: &str) -> Result<Vec<GroupSupervisor>> {
        run("listing a group's supervisors", || {
            self.all(
                concat!(
                    "SELECT ",
                    group_supervisor_cols!(),
                    " FROM group_supervisors WHERE group_id = ?1 ORDER BY user_id"
                ),
                [group_id],
                group_supervisor_row,
            )
        })
    }

    fn group_members(&self, group_id: &str) -> Result<Vec<GroupMember>> {
        run("listing a group's members", || {
            self.all(
                concat!(
                    "SELECT ",
                    group_member_cols!(),
                    " FROM group_members WHERE group_id = ?1 ORDER BY user_id"
                ),
                [group_id],
                group_member_row,
            )
        })
    }

    fn supervised_groups(&self, user_id: &str) -> Result<Vec<GroupSupervisor>> {
        run("listing a supervisor's groups", || {
            self.all(
                concat!(
                    "SELECT ",
                    group_supervisor_cols!(),
                    " FROM group_supervisors WHERE user_id = ?1 ORDER BY group_id"
                ),
                [user_id],
                group_supervisor_row,
            )
        })
    }

    fn memberships(&self, user_id: &str) -> Result<Vec<GroupMember>> {
        run("listing a user's groups", || {
            self.all(
                concat!(
                    "SELECT ",
                    group_member_cols!(),
                    " FROM group_members WHERE user_id = ?1 ORDER BY group_id"
                ),
                [user_id],
                group_member_row,
            )
        })
    }

    fn agent(&self, user_id: &str) -> Result<Option<AgentRecord>> {
        run("reading an agent", || {
            self.one(
                concat!("SELECT ", agent_cols!(), " FROM agents WHERE user_id = ?1"),
                [user_id],
                agent_row,
            )
        })
    }

    fn agents(&self) -> Result<Vec<AgentRecord>> {
        run("listing agents", || {
            self.all(
                concat!("SELECT ", agent_cols!(), " FROM agents ORDER BY user_id"),
                [],
                agent_row,
            )
        })
    }

    fn subscriptions_of(&self, supervisor_id: &str) -> Result<Vec<Subscription>> {
        run("listing a supervisor's subscriptions", || {
            self.all(
                "SELECT supervisor_id, agent_id, created_at_ms FROM subscriptions \
                 WHERE supervisor_id = ?1 ORDER BY agent_id",
                [supervisor_id],
                subscription_row,
            )
        })
    }

    fn subscribers_of(&self, agent_id: &str) -> Result<Vec<Subscription>> {
        run("listing an agent's subscribers", || {
            self.all(
                "SELECT supervisor_id, agent_id, created_at_ms FROM subscriptions \
                 WHERE agent_id = ?1 ORDER BY supervisor_id",
                [agent_id],
                subscription_row,
            )
        })
    }
}

impl CenterWrites for Db<'_> {
    fn create_user(&mut self, u: &UserRecord) -> Result<()> {
        run("creating a user", || {
            self.exec(
                concat!("INSERT INTO users (", user_cols!(), ") VALUES (?1, ?2, ?3)"),
                params![u.id, u.display_name, u.phone_number],
            )?;
            self.set_roles(u)
        })
    }

    fn update_user(&mut self, u: &UserRecord) -> Result<()> {
        run("updating a user", || {
            self.exec_found(
                "UPDATE users SET display_name = ?2, phone_number = ?3 WHERE id = ?1",
                params![u.id, u.display_name, u.phone_number],
                || format!("no user {:?}", u.id),
            )?;
            self.set_roles(u)
        })
    }

    fn delete_user(&mut self, id: &str) -> Result<()> {
        run("deleting a user", || {
            self.exec_found("DELETE FROM users WHERE id = ?1", [id], || {
                format!("no user {id:?}")
            })
        })
    }

    fn set_supervisor_settings(&mut self, s: &SupervisorSettings) -> Result<()> {
        run("saving supervisor settings", || {
            self.exec(
                "INSERT INTO supervisor_settings (user_id, registered_number, updated_at_ms) \
                 VALUES (?1, ?2, ?3) \
                 ON CONFLICT (user_id) DO UPDATE SET registered_number = excluded.registered_number, \
                 updated_at_ms = excluded.updated_at_ms",
                params![s.user_id, s.registered_number, s.updated_at.0],
            )?;
            Ok(())
        })
    }

    fn create_group(&mut self, g: &GroupRecord) -> Result<()> {
        run("creating a group", || {
            self.exec(
                concat!(
                    "INSERT INTO groups (",
                    group_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
                ),
                params![
                    g.id,
                    g.name,
                    g.kind.as_str(),
                    g.lock_last_member,
                    g.agent_beep.as_str(),
                    g.max_monitors_per_agent,
                    g.created_at.0
                ],
            )?;
            Ok(())
        })
    }

    fn update_group(&mut self, g: &GroupRecord) -> Result<()> {
        run("updating a group", || {
            self.exec_found(
                "UPDATE groups SET name = ?2, kind = ?3, lock_last_member = ?4, agent_beep = ?5, \
                 max_monitors_per_agent = ?6 WHERE id = ?1",
                params![
                    g.id,
                    g.name,
                    g.kind.as_str(),
                    g.lock_last_member,
                    g.agent_beep.as_str(),
                    g.max_monitors_per_agent
                ],
                || format!("no group {:?}", g.id),
            )
        })
    }

    fn delete_group(&mut self, id: &str) -> Result<()> {
        run("deleting a group", || {
            self.exec_found("DELETE FROM groups WHERE id = ?1", [id], || {
                format!("no group {id:?}")
            })
        })
    }

    fn set_group_supervisor(&mut self, s: &GroupSupervisor) -> Result<()> {
        run("setting a group supervisor", || {
            self.exec(
                concat!(
                    "INSERT INTO group_supervisors (",
                    group_supervisor_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4, ?5) \
                     ON CONFLICT (group_id, user_id) DO UPDATE SET \
                     group_admin = excluded.group_admin, listen_right = excluded.listen_right, \
                     intervene_right = excluded.intervene_right"
                ),
                params![
                    s.group_id,
                    s.user_id,
                    s.group_admin,
                    s.listen_right,
                    s.intervene_right
                ],
            )?;
            Ok(())
        })
    }

    fn remove_group_supervisor(&mut self, group_id: &str, user_id: &str) -> Result<()> {
        run("removing a group supervisor", || {
            self.exec_found(
                "DELETE FROM group_supervisors WHERE group_id = ?1 AND user_id = ?2",
                [group_id, user_id],
                || format!("{user_id:?} does not supervise group {group_id:?}"),
            )
        })
    }

    fn add_group_member(&mut self, m: &GroupMember) -> Result<()> {
        run("adding a group member", || {
            self.exec(
                concat!(
                    "INSERT INTO group_members (",
                    group_member_cols!(),
                    ") VALUES (?1, ?2, ?3, ?4)"
                ),
                params![m.group_id, m.user_id, m.can_leave, m.logged_in],
            )?;
            Ok(())
        })
    }

    fn update_group_member(&mut self, m: &GroupMember) -> Result<()> {
        run("updating a group member", || {
            self.exec_found(
                "UPDATE group_members SET can_leave = ?3, logged_in = ?4 \
                 WHERE group_id = ?1 AND user_id = ?2",
                params![m.group_id, m.user_id, m.can_leave, m.logged_in],
                || format!("{:?} is not a member of group {:?}", m.user_id, m.group_id),
            )
        })
    }

    fn remove_group_member(&mut self, group_id: &str, user_id: &str) -> Result<()> {
        run("removing a group member", || {
            self.exec_found(
                "DELETE FROM group_members WHERE group_id = ?1 AND user_id = ?2",
                [group_id, user_id],
                || format!("{user_id:?} is not a member of group {group_id:?}"),
            )
        })
    }

    fn create_agent(&mut self, a: &AgentRecord) -> Result<()> {
        run("creating an agent", || {
            agent_params(a, |p| {
                self.exec(
                    concat!(
                        "INSERT INTO agents (",
                        agent_cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                    ),
                    p,
                )
            })?;
            Ok(())
        })
    }

    fn update_agent(&mut self, a: &AgentRecord) -> Result<()> {
        run("updating an agent", || {
            agent_params(a, |p| {
                self.exec_found(
                    "UPDATE agents SET state = ?2, state_since_ms = ?3, pause_reason = ?4, \
                     campaign = ?5, platform = ?6, auto_assignment = ?7, aggregates = ?8 \
                     WHERE user_id = ?1",
                    p,
                    || format!("no agent {:?}", a.user_id),
                )
            })
        })
    }

    fn delete_agent(&mut self, user_id: &str) -> Result<()> {
        run("deleting an agent", || {
            self.exec_found("DELETE FROM agents WHERE user_id = ?1", [user_id], || {
                format!("no agent {user_id:?}")
            })
        })
    }

    fn subscribe(&mut self, s: &Subscription) -> Result<()> {
        run("subscribing", || {
            self.exec(
                "INSERT INTO subscriptions (supervisor_id, agent_id, created_at_ms) \
                 VALUES (?1, ?2, ?3)",
                params![s.supervisor_id, s.agent_id, s.created_at.0],
            )?;
            Ok(())
        })
    }

    fn unsubscribe(&mut self, supervisor_id: &str, agent_id: &str) -> Result<()> {
        run("unsubscribing", || {
            self.exec_found(
                "DELETE FROM subscriptions WHERE supervisor_id = ?1 AND agent_id = ?2",
                [supervisor_id, agent_id],
                || format!("{supervisor_id:?} is not subscribed to {agent_id:?}"),
            )
        })
    }
}
