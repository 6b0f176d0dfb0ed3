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

/// What the API shows of the center: the group and agent ag-1, every field of them (the app
/// answers plain values; their `Debug` spells each field out).
fn shown(c: &Center, store: &dyn Store) -> String {
    let group = c.group(store, &GroupId::parse("aid").unwrap()).unwrap();
    let agent = c.agent(store, &id("ag-1"), T0_MS).unwrap();
    format!("{group:?}\n{agent:?}")
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
    let rights = crate::domain::auth::GroupRights {
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
