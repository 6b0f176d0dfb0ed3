//! Unit tests of the SQLite store: migrations, every repository method's round trip, the error
//! mapping, the event log, the restart recovery. In-memory databases unless a file matters.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use dataplane::media::matrix::Mode;
use serde_json::json;

use super::{MIGRATIONS, Migration, SqliteStore};
use crate::store::*;
use std::result::Result;

fn mem() -> SqliteStore {
    SqliteStore::open_in_memory().expect("in-memory store")
}

fn user(id: &str, roles: &[Role]) -> UserRecord {
    UserRecord {
        id: id.to_owned(),
        display_name: format!("User {id}"),
        phone_number: Some("+3312345678".to_owned()),
        roles: roles.to_vec(),
    }
}

fn group(id: &str, name: &str) -> GroupRecord {
    GroupRecord {
        id: id.to_owned(),
        name: name.to_owned(),
        kind: GroupKind::MutualAid,
        lock_last_member: true,
        agent_beep: BeepPolicy::AgentBeep,
        max_monitors_per_agent: Some(2),
        created_at: UnixMs(1_000),
    }
}

fn call(id: &str) -> CallRecord {
    CallRecord {
        id: id.to_owned(),
        external_id: Some(format!("sip-{id}")),
        agent_id: Some("agent".to_owned()),
        state: CallState::Active,
        flags: CallFlags::default(),
        web: false,
        created_at: UnixMs(2_000),
        ended_at: None,
        direction: CallDirection::Inbound,
        agent_answered: true,
        customer_hung_up: false,
        agent_hung_up: false,
        deleted_at: None,
        media: serde_json::json!({}),
    }
}

fn supervision(id: &str, call_id: &str, state: SupervisionState) -> SupervisionRecord {
    SupervisionRecord {
        id: id.to_owned(),
        call_id: Some(call_id.to_owned()),
        supervisor_id: Some("sup".to_owned()),
        agent_id: Some("agent".to_owned()),
        state,
        mode: Mode::Whisper,
        end_reason: state.is_terminal().then(|| "agent_hung_up".to_owned()),
        scope: SupervisionScope::Call,
        created_at: UnixMs(3_000),
        started_at: Some(UnixMs(3_100)),
        ended_at: state.is_terminal().then_some(UnixMs(3_500)),
        media: serde_json::json!({}),
    }
}

fn audit(action: &str, supervision_id: Option<&str>) -> NewAudit {
    NewAudit {
        at: UnixMs(4_000),
        actor: "user:sup".to_owned(),
        action: action.to_owned(),
        supervision_id: supervision_id.map(str::to_owned),
        call_id: Some("c1".to_owned()),
        mode: Some(Mode::Listen),
        outcome: "ok".to_owned(),
        detail: None,
    }
}

fn event(n: u32) -> NewEvent {
    NewEvent {
        event_type: "supervision.started".to_owned(),
        payload: json!({ "n": n }),
        scope: EventScope {
            groups: vec!["g1".to_owned()],
            users: vec!["sup".to_owned()],
        },
        at: UnixMs(5_000 + i64::from(n)),
    }
}

/// The users, group and call most tests hang records on.
fn populated() -> SqliteStore {
    let store = mem();
    store
        .write(|w| {
            w.create_user(&user("sup", &[Role::Supervisor]))?;
            w.create_user(&user("agent", &[Role::Agent]))?;
            w.create_group(&group("g1", "Sales"))?;
            w.add_group_member(&GroupMember {
                group_id: "g1".to_owned(),
                user_id: "agent".to_owned(),
                can_leave: true,
                logged_in: true,
            })?;
            w.create_call(&call("c1"))
        })
        .expect("populate");
    store
}

#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Conflict { .. })), "{r:?}");
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::NotFound { .. })), "{r:?}");
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    assert!(matches!(r, Err(StoreError::Invalid { .. })), "{r:?}");
}

// --- Opening and migrations --------------------------------------------------------------------

fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// A database at schema version 1 only, for the tests that stage their own migrations after it.
fn open_at_version_1(path: &std::path::Path) {
    drop(SqliteStore::open_with(path, &MIGRATIONS[..1]).unwrap());
}

#[test]
fn migrations_apply_once_and_reopening_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        store
            .write(|w| w.create_group(&group("g1", "Sales")))
            .unwrap();
    }
    for _ in 0..2 {
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), latest_version());
        let rows: i64 = {
            let guard = store.lock().unwrap();
            guard
                .conn
                .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(rows, MIGRATIONS.len() as i64);
        assert!(store.read(|r| r.group("g1")).unwrap().is_some());
    }
}

#[test]
fn file_database_uses_wal_normal_sync_and_foreign_keys() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("x.db")).unwrap();
    let guard = store.lock().unwrap();
    let pragma = |name: &str| -> String {
        guard
            .conn
            .query_row(&format!("PRAGMA {name}"), [], |r| {
                r.get::<_, rusqlite::types::Value>(0)
            })
            .map(|v| format!("{v:?}"))
            .unwrap()
    };
    assert_eq!(pragma("journal_mode"), "Text(\"wal\")");
    // NORMAL: the WAL is synced by the store's group commit, not in each commit.
    assert_eq!(pragma("synchronous"), "Integer(1)");
    assert_eq!(pragma("foreign_keys"), "Integer(1)");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .raw_execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future')")
            .unwrap();
    }
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("999") && message.contains("newer"),
        "{message}"
    );
}

#[test]
fn a_migration_recorded_under_another_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    open_at_version_1(&path);
    let other = [Migration {
        version: 1,
        name: "something_else",
        sql: "CREATE TABLE t (x INTEGER)",
    }];
    let err = SqliteStore::open_with(&path, &other).unwrap_err();
    assert!(
        matches!(&err, StoreError::Schema(m) if m.contains("another build")),
        "{err:?}"
    );
}

#[test]
fn a_failed_migration_rolls_back_the_whole_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    let broken = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "broken",
            sql: "CREATE TABLE ok_so_far (x INTEGER); THIS IS NOT SQL;",
        },
    ];
    let err = SqliteStore::open_with(&path, &broken).unwrap_err();
    assert!(
        matches!(&err, StoreError::Schema(m) if m.contains("migration 2 (broken) failed")),
        "{err:?}"
    );
    // Nothing of version 1 stayed either: applying the real ones succeeds from scratch.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_version());
}

#[test]
fn migrations_are_applied_in_order_and_only_the_missing_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    open_at_version_1(&path);
    let next = [
        MIGRATIONS[0],
        Migration {
            version: 2,
            name: "add_t",
            sql: "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);",
        },
        Migration {
            version: 3,
            name: "fill_t",
            sql: "INSERT INTO t SELECT x + 1 FROM t;",
        },
    ];
    let store = SqliteStore::open_with(&path, &next).unwrap();
    assert_eq!(store.schema_version().unwrap(), 3);
    drop(store);
    let store = SqliteStore::open_with(&path, &next).unwrap();
    let guard = store.lock().unwrap();
    let rows: Vec<i64> = guard
        .conn
        .prepare("SELECT x FROM t ORDER BY x")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, [1, 2], "3 ran after 2, each once");
}

#[test]
fn an_out_of_order_migration_list_is_refused() {
    let swapped = [
        Migration {
            version: 2,
            name: "b",
            sql: "",
        },
        Migration {
            version: 1,
            name: "a",
            sql: "",
        },
    ];
    let err = SqliteStore::open_with(std::path::Path::new(":memory:"), &swapped).unwrap_err();
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
}

#[test]
fn the_known_migrations_are_strictly_increasing_from_1() {
    assert_eq!(MIGRATIONS[0].version, 1);
    assert!(MIGRATIONS.windows(2).all(|w| w[0].version < w[1].version));
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    std::fs::write(&path, vec![0xA5u8; 8192]).unwrap();
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("earshot.db") && message.contains("not a database"),
        "{message}"
    );
}

#[test]
fn a_truncated_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store
            .write(|w| w.create_group(&group("g1", "Sales")))
            .unwrap();
    }
    // Keep the 100-byte header, damage every page after it.
    let mut bytes = std::fs::read(&path).unwrap();
    assert!(bytes.len() > 4096);
    bytes[100..].fill(0xFF);
    std::fs::write(&path, &bytes).unwrap();
    let _ = std::fs::remove_file(dir.path().join("earshot.db-wal"));
    let err = SqliteStore::open(&path)
        .and_then(|s| s.read(|r| r.groups()))
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
}

#[test]
fn an_unopenable_path_names_the_path() {
    let err = SqliteStore::open("/nonexistent-earshot-dir/sub/earshot.db").unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent-earshot-dir/sub/earshot.db"),
        "{message}"
    );
}

// --- Round trips -------------------------------------------------------------------------------

#[test]
fn tokens_round_trip_and_revoke_once() {
    let store = populated();
    let token = TokenRecord {
        id: "t1".to_owned(),
        token_hash: TokenHash([7; 32]),
        role: Role::Supervisor,
        user_id: Some("sup".to_owned()),
        created_at: UnixMs(10),
        revoked_at: None,
    };
    let service = TokenRecord {
        id: "t2".to_owned(),
        token_hash: TokenHash([8; 32]),
        role: Role::Softswitch,
        user_id: None,
        ..token.clone()
    };
    store
        .write(|w| {
            w.create_token(&token)?;
            w.create_token(&service)
        })
        .unwrap();
    assert_eq!(store.read(|r| r.token("t1")).unwrap(), Some(token.clone()));
    assert_eq!(
        store
            .read(|r| r.token_by_hash(&TokenHash([8; 32])))
            .unwrap(),
        Some(service.clone())
    );
    assert_eq!(
        store
            .read(|r| r.token_by_hash(&TokenHash([9; 32])))
            .unwrap(),
        None
    );
    assert_eq!(store.read(|r| r.tokens()).unwrap().len(), 2);

    store.write(|w| w.revoke_token("t1", UnixMs(20))).unwrap();
    store.write(|w| w.revoke_token("t1", UnixMs(30))).unwrap();
    let revoked = store.read(|r| r.token("t1")).unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(UnixMs(20)));
    assert!(!revoked.is_active());
    assert_not_found(store.write(|w| w.revoke_token("nope", UnixMs(1))));

    // The hash is unique, and so is the id.
    let same_hash = TokenRecord {
        id: "t3".to_owned(),
        ..token.clone()
    };
    assert_conflict(store.write(|w| w.create_token(&same_hash)));
    let same_id = TokenRecord {
        token_hash: TokenHash([9; 32]),
        ..token.clone()
    };
    assert_conflict(store.write(|w| w.create_token(&same_id)));
    // A token for an unknown user.
    let orphan = TokenRecord {
        id: "t4".to_owned(),
        token_hash: TokenHash([10; 32]),
        user_id: Some("ghost".to_owned()),
        ..token
    };
    assert_not_found(store.write(|w| w.create_token(&orphan)));
}

#[test]
fn users_round_trip_with_every_role_and_cascade_on_delete() {
    let store = populated();
    let mut admin = user("adm", &[Role::Softswitch, Role::Admin, Role::Admin]);
    admin.phone_number = None;
    store.write(|w| w.create_user(&admin)).unwrap();
    let read = store.read(|r| r.user("adm")).unwrap().unwrap();
    assert_eq!(
        read.roles,
        [Role::Admin, Role::Softswitch],
        "sorted, deduplicated"
    );
    assert_eq!(read.phone_number, None);

    let mut everything = user("all", Role::ALL);
    store.write(|w| w.create_user(&everything)).unwrap();
    assert_eq!(
        store.read(|r| r.user("all")).unwrap().unwrap().roles,
        Role::ALL
    );
    everything.display_name = "Renamed".to_owned();
    everything.roles = vec![Role::Agent];
    store.write(|w| w.update_user(&everything)).unwrap();
    assert_eq!(store.read(|r| r.user("all")).unwrap(), Some(everything));
    assert_eq!(
        store
            .read(|r| r.users())
            .unwrap()
            .iter()
            .map(|u| u.id.as_str())
            .collect::<Vec<_>>(),
        ["adm", "agent", "all", "sup"]
    );
    assert_conflict(store.write(|w| w.create_user(&user("sup", &[]))));
    assert_not_found(store.write(|w| w.update_user(&user("ghost", &[]))));

    // Deleting the agent takes its membership, agent record, grant and subscription with it.
    store
        .write(|w| {
            w.create_agent(&agent_record("agent"))?;
            w.create_grant(&NewGrant {
                supervisor_id: "sup".to_owned(),
                agent_id: "agent".to_owned(),
                granted_by: "adm".to_owned(),
                created_at: UnixMs(1),
            })?;
            w.subscribe(&Subscription {
                supervisor_id: "sup".to_owned(),
                agent_id: "agent".to_owned(),
                created_at: UnixMs(1),
            })
        })
        .unwrap();
    store.write(|w| w.delete_user("agent")).unwrap();
    store
        .read(|r| {
            assert!(r.user("agent")?.is_none());
            assert!(r.group_members("g1")?.is_empty());
            assert!(r.agent("agent")?.is_none());
            assert!(r.grants()?.is_empty());
            assert!(r.subscriptions_of("sup")?.is_empty());
            Ok(())
        })
        .unwrap();
    assert_not_found(store.write(|w| w.delete_user("agent")));
}

#[test]
fn supervisor_settings_are_upserted() {
    let store = populated();
    let mut settings = SupervisorSettings {
        user_id: "sup".to_owned(),
        registered_number: "0123456789".to_owned(),
        updated_at: UnixMs(1),
    };
    store
        .write(|w| w.set_supervisor_settings(&settings))
        .unwrap();
    settings.registered_number = "0987654321".to_owned();
    settings.updated_at = UnixMs(2);
    store
        .write(|w| w.set_supervisor_settings(&settings))
        .unwrap();
    assert_eq!(
        store.read(|r| r.supervisor_settings("sup")).unwrap(),
        Some(settings.clone())
    );
    assert_eq!(
        store.read(|r| r.supervisor_settings("agent")).unwrap(),
        None
    );
    settings.user_id = "ghost".to_owned();
    assert_not_found(store.write(|w| w.set_supervisor_settings(&settings)));
}

#[test]
fn groups_supervisors_and_members_round_trip() {
    let store = populated();
    // Every kind and beep policy, no cap.
    for (i, (kind, beep)) in GroupKind::ALL
        .iter()
        .flat_map(|k| BeepPolicy::ALL.iter().map(move |b| (*k, *b)))
        .enumerate()
    {
        let g = GroupRecord {
            kind,
            agent_beep: beep,
            max_monitors_per_agent: None,
            lock_last_member: false,
            ..group(&format!("x{i}"), &format!("X{i}"))
        };
        store.write(|w| w.create_group(&g)).unwrap();
        assert_eq!(store.read(|r| r.group(&g.id)).unwrap(), Some(g));
    }
    let mut g1 = store.read(|r| r.group("g1")).unwrap().unwrap();
    assert_eq!(g1, group("g1", "Sales"));
    g1.name = "Sales EMEA".to_owned();
    g1.kind = GroupKind::Standard;
    g1.max_monitors_per_agent = Some(1);
    store.write(|w| w.update_group(&g1)).unwrap();
    assert_eq!(store.read(|r| r.group("g1")).unwrap(), Some(g1.clone()));
    assert_eq!(store.read(|r| r.groups()).unwrap().len(), 7);
    assert_conflict(store.write(|w| w.create_group(&group("g2", "Sales EMEA"))));
    assert_conflict(store.write(|w| w.create_group(&group("g1", "Other"))));
    assert_not_found(store.write(|w| w.update_group(&group("ghost", "Ghost"))));
    let zero_cap = GroupRecord {
        max_monitors_per_agent: Some(0),
        ..group("g3", "Zero")
    };
    assert_invalid(store.write(|w| w.create_group(&zero_cap)));

    let mut rights = GroupSupervisor {
        group_id: "g1".to_owned(),
        user_id: "sup".to_owned(),
        group_admin: false,
        listen_right: true,
        intervene_right: false,
    };
    store.write(|w| w.set_group_supervisor(&rights)).unwrap();
    rights.intervene_right = true;
    rights.group_admin = true;
    store.write(|w| w.set_group_supervisor(&rights)).unwrap();
    assert_eq!(
        store.read(|r| r.group_supervisors("g1")).unwrap(),
        [rights.clone()]
    );
    assert_eq!(
        store.read(|r| r.supervised_groups("sup")).unwrap(),
        [rights.clone()]
    );

    // A supervisor is a full member too.
    let mut member = GroupMember {
        group_id: "g1".to_owned(),
        user_id: "sup".to_owned(),
        can_leave: false,
        logged_in: false,
    };
    store.write(|w| w.add_group_member(&member)).unwrap();
    assert_conflict(store.write(|w| w.add_group_member(&member)));
    member.logged_in = true;
    store.write(|w| w.update_group_member(&member)).unwrap();
    assert_eq!(
        store.read(|r| r.memberships("sup")).unwrap(),
        [member.clone()]
    );
    assert_eq!(store.read(|r| r.group_members("g1")).unwrap().len(), 2);
    let stranger = GroupMember {
        user_id: "ghost".to_owned(),
        ..member.clone()
    };
    assert_not_found(store.write(|w| w.add_group_member(&stranger)));
    assert_not_found(store.write(|w| w.update_group_member(&stranger)));

    store.write(|w| w.remove_group_member("g1", "sup")).unwrap();
    assert_not_found(store.write(|w| w.remove_group_member("g1", "sup")));
    store
        .write(|w| w.remove_group_supervisor("g1", "sup"))
        .unwrap();
    assert_not_found(store.write(|w| w.remove_group_supervisor("g1", "sup")));

    // Deleting a group takes its rights and members with it; the users stay.
    store.write(|w| w.set_group_supervisor(&rights)).unwrap();
    store.write(|w| w.delete_group("g1")).unwrap();
    store
        .read(|r| {
            assert!(r.group("g1")?.is_none());
            assert!(r.memberships("agent")?.is_empty());
            assert!(r.supervised_groups("sup")?.is_empty());
            assert!(r.user("agent")?.is_some());
            Ok(())
        })
        .unwrap();
    assert_not_found(store.write(|w| w.delete_group("g1")));
}

fn agent_record(user_id: &str) -> AgentRecord {
    AgentRecord {
        user_id: user_id.to_owned(),
        state: AgentState::Available,
        state_since: UnixMs(100),
        pause_reason: None,
        campaign: Some("spring".to_owned()),
        platform: Some(Platform::App),
        auto_assignment: true,
        aggregates: json!({ "time_in_state_ms": { "available": 1200 }, "last_login_ms": 5 }),
    }
}

#[test]
fn agents_round_trip_in_every_state() {
    let store = populated();
    let mut a = agent_record("agent");
    store.write(|w| w.create_agent(&a)).unwrap();
    assert_eq!(store.read(|r| r.agent("agent")).unwrap(), Some(a.clone()));
    assert_conflict(store.write(|w| w.create_agent(&a)));
    for &state in AgentState::ALL {
        a.state = state;
        a.pause_reason = (state == AgentState::Pause).then(|| "lunch".to_owned());
        a.platform = Platform::ALL.get(state as usize % 3).copied();
        a.auto_assignment = !a.auto_assignment;
        a.state_since.0 += 1;
        a.campaign = (state != AgentState::Busy).then(|| format!("campaign {state:?}"));
        a.aggregates = json!({ "last_state": state.as_str() });
        store.write(|w| w.update_agent(&a)).unwrap();
        assert_eq!(store.read(|r| r.agent("agent")).unwrap(), Some(a.clone()));
    }
    assert_eq!(store.read(|r| r.agents()).unwrap(), [a.clone()]);

    // A pause reason outside `pause` is refused by the schema.
    a.state = AgentState::Busy;
    a.pause_reason = Some("lunch".to_owned());
    assert_invalid(store.write(|w| w.update_agent(&a)));
    assert_not_found(store.write(|w| w.create_agent(&agent_record("ghost"))));
    assert_not_found(store.write(|w| w.update_agent(&agent_record("ghost"))));
    store.write(|w| w.delete_agent("agent")).unwrap();
    assert_not_found(store.write(|w| w.delete_agent("agent")));
}

#[test]
fn grants_allow_one_active_per_pair() {
    let store = populated();
    let new = NewGrant {
        supervisor_id: "sup".to_owned(),
        agent_id: "agent".to_owned(),
        granted_by: "user:adm".to_owned(),
        created_at: UnixMs(10),
    };
    let id = store.write(|w| w.create_grant(&new)).unwrap();
    let expected = GrantRecord {
        id,
        supervisor_id: "sup".to_owned(),
        agent_id: "agent".to_owned(),
        granted_by: "user:adm".to_owned(),
        created_at: UnixMs(10),
        revoked_at: None,
    };
    assert_eq!(store.read(|r| r.grant(id)).unwrap(), Some(expected.clone()));
    assert_eq!(
        store.read(|r| r.active_grant("sup", "agent")).unwrap(),
        Some(expected)
    );
    assert_conflict(store.write(|w| w.create_grant(&new)));

    store.write(|w| w.revoke_grant(id, UnixMs(20))).unwrap();
    store.write(|w| w.revoke_grant(id, UnixMs(30))).unwrap();
    assert_eq!(
        store.read(|r| r.grant(id)).unwrap().unwrap().revoked_at,
        Some(UnixMs(20))
    );
    assert_eq!(
        store.read(|r| r.active_grant("sup", "agent")).unwrap(),
        None
    );
    // Once revoked, the pair can be granted again; history is kept.
    let again = store.write(|w| w.create_grant(&new)).unwrap();
    assert!(again > id);
    assert_eq!(store.read(|r| r.grants()).unwrap().len(), 2);
    assert_not_found(store.write(|w| w.revoke_grant(GrantId(999), UnixMs(1))));
    let orphan = NewGrant {
        agent_id: "ghost".to_owned(),
        ..new
    };
    assert_not_found(store.write(|w| w.create_grant(&orphan)));
}

#[test]
fn subscriptions_round_trip() {
    let store = populated();
    let s = Subscription {
        supervisor_id: "sup".to_owned(),
        agent_id: "agent".to_owned(),
        created_at: UnixMs(5),
    };
    store.write(|w| w.subscribe(&s)).unwrap();
    assert_conflict(store.write(|w| w.subscribe(&s)));
    assert_eq!(
        store.read(|r| r.subscriptions_of("sup")).unwrap(),
        std::slice::from_ref(&s)
    );
    assert_eq!(store.read(|r| r.subscribers_of("agent")).unwrap(), [s]);
    store.write(|w| w.unsubscribe("sup", "agent")).unwrap();
    assert_not_found(store.write(|w| w.unsubscribe("sup", "agent")));
}

#[test]
fn calls_round_trip() {
    let store = populated();
    let mut c = store.read(|r| r.call("c1")).unwrap().unwrap();
    assert_eq!(c, call("c1"));
    assert_eq!(
        store.read(|r| r.call_by_external_id("sip-c1")).unwrap(),
        Some(c.clone())
    );
    // Every column but the id and the creation time changes.
    c = CallRecord {
        id: c.id,
        external_id: Some("sip-c1-bis".to_owned()),
        agent_id: Some("sup".to_owned()),
        state: CallState::Active,
        flags: CallFlags {
            on_hold: true,
            consult: true,
            secure_payment: true,
            conference: true,
        },
        web: true,
        created_at: c.created_at,
        ended_at: None,
        direction: CallDirection::Outbound,
        agent_answered: false,
        customer_hung_up: true,
        agent_hung_up: true,
        deleted_at: Some(UnixMs(2_900)),
        media: json!({ "customer": { "codec": "PCMA" } }),
    };
    let moved = CallRecord {
        created_at: UnixMs(1),
        ..c.clone()
    };
    store.write(|w| w.update_call(&moved)).unwrap();
    assert_eq!(
        store.read(|r| r.call("c1")).unwrap(),
        Some(c.clone()),
        "an update keeps created_at"
    );
    c.agent_id = Some("agent".to_owned());
    c.external_id = Some("sip-c1".to_owned());
    store.write(|w| w.update_call(&c)).unwrap();

    let mut c2 = call("c2");
    c2.created_at = UnixMs(9_000);
    c2.external_id = None;
    store.write(|w| w.create_call(&c2)).unwrap();
    assert_eq!(store.read(|r| r.open_calls()).unwrap().len(), 2);
    assert_eq!(
        store
            .read(|r| r.recent_calls(1))
            .unwrap()
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>(),
        ["c2"]
    );
    c2.state = CallState::Ended;
    c2.ended_at = Some(UnixMs(9_500));
    store.write(|w| w.update_call(&c2)).unwrap();
    assert_eq!(store.read(|r| r.open_calls()).unwrap(), [c]);

    // Unique external id, unique id, and an end time exactly when ended.
    let mut dup = call("c3");
    dup.external_id = Some("sip-c1".to_owned());
    assert_conflict(store.write(|w| w.create_call(&dup)));
    assert_conflict(store.write(|w| w.create_call(&call("c1"))));
    let mut inconsistent = call("c4");
    inconsistent.ended_at = Some(UnixMs(1));
    assert_invalid(store.write(|w| w.create_call(&inconsistent)));
    assert_not_found(store.write(|w| w.update_call(&call("ghost"))));
}

/// The rows an UPDATE statement of the connection changed, all statements together.
fn total_changes(store: &SqliteStore) -> u64 {
    store.lock().unwrap().conn.total_changes()
}

/// An update assigns the indexed columns (and rewrites their index pages) only when they
/// change: otherwise one statement changes one row.
#[test]
fn an_update_writes_indexed_columns_only_when_they_change() {
    let store = populated();
    let mut c = store.read(|r| r.call("c1")).unwrap().unwrap();
    c.flags.on_hold = true;
    let before = total_changes(&store);
    store.write(|w| w.update_call(&c)).unwrap();
    assert_eq!(
        total_changes(&store) - before,
        1,
        "external id and state unchanged"
    );
    c.external_id = None;
    (c.state, c.ended_at) = (CallState::Ended, Some(UnixMs(2_500)));
    let before = total_changes(&store);
    store.write(|w| w.update_call(&c)).unwrap();
    assert_eq!(total_changes(&store) - before, 3);
    assert_eq!(store.read(|r| r.call("c1")).unwrap(), Some(c));

    let mut s = supervision("s1", "c1", SupervisionState::Active);
    store.write(|w| w.create_supervision(&s)).unwrap();
    s.mode = Mode::Barge;
    let before = total_changes(&store);
    store.write(|w| w.update_supervision(&s)).unwrap();
    assert_eq!(
        total_changes(&store) - before,
        1,
        "call, scope and state unchanged"
    );
    (s.call_id, s.scope) = (None, SupervisionScope::Persistent);
    (s.state, s.ended_at) = (SupervisionState::Stopped, Some(UnixMs(3_600)));
    let before = total_changes(&store);
    store.write(|w| w.update_supervision(&s)).unwrap();
    assert_eq!(total_changes(&store) - before, 3);
    assert_eq!(store.read(|r| r.supervision("s1")).unwrap(), Some(s));
}

#[test]
fn supervisions_round_trip_in_every_state_mode_and_scope() {
    let store = populated();
    let mut n = 0;
    let mut with_call = 0;
    for &state in SupervisionState::ALL {
        for &mode in Mode::ALL.iter() {
            for &scope in SupervisionScope::ALL {
                n += 1;
                let mut s = supervision(&format!("s{n:03}"), "c1", state);
                s.mode = mode;
                s.scope = scope;
                if scope == SupervisionScope::Persistent && n % 4 == 0 {
                    s.call_id = None;
                } else {
                    with_call += 1;
                }
                store.write(|w| w.create_supervision(&s)).unwrap();
                assert_eq!(store.read(|r| r.supervision(&s.id)).unwrap(), Some(s));
            }
        }
    }
    // Open: requested, active and no_call.
    assert_eq!(
        store.read(|r| r.open_sessions()).unwrap().len(),
        3 * Mode::ALL.len() * 2
    );
    assert_eq!(store.read(|r| r.recent_supervisions(5)).unwrap().len(), 5);
    assert_eq!(
        store.read(|r| r.supervisions_of_call("c1")).unwrap().len(),
        with_call
    );

    let s = store.read(|r| r.supervision("s001")).unwrap().unwrap();
    assert_eq!(
        (s.state, s.mode, s.scope),
        (
            SupervisionState::Requested,
            Mode::ALL[0],
            SupervisionScope::Call
        )
    );
    // Every column but the id and the creation time changes.
    let mut s = SupervisionRecord {
        id: s.id,
        call_id: None,
        supervisor_id: Some("agent".to_owned()),
        agent_id: Some("sup".to_owned()),
        state: SupervisionState::Stopped,
        mode: Mode::ALL[1],
        end_reason: Some("operator".to_owned()),
        scope: SupervisionScope::Persistent,
        created_at: s.created_at,
        started_at: Some(UnixMs(6_000)),
        ended_at: Some(UnixMs(7_000)),
        media: json!({ "leg": { "codec": "PCMU" } }),
    };
    let moved = SupervisionRecord {
        created_at: UnixMs(1),
        ..s.clone()
    };
    store.write(|w| w.update_supervision(&moved)).unwrap();
    assert_eq!(
        store.read(|r| r.supervision("s001")).unwrap(),
        Some(s.clone()),
        "an update keeps created_at"
    );
    s.call_id = Some("c1".to_owned());
    s.scope = SupervisionScope::Call;

    // The schema's own rules: an end time exactly when terminal; a call unless persistent; a
    // call that exists.
    s.ended_at = None;
    assert_invalid(store.write(|w| w.update_supervision(&s)));
    let mut no_call = supervision("x1", "c1", SupervisionState::Active);
    no_call.call_id = None;
    assert_invalid(store.write(|w| w.create_supervision(&no_call)));
    assert_not_found(
        store
            .write(|w| w.create_supervision(&supervision("x2", "ghost", SupervisionState::Active))),
    );
    assert_conflict(
        store.write(|w| w.create_supervision(&supervision("s001", "c1", SupervisionState::Active))),
    );
    assert_not_found(
        store
            .write(|w| w.update_supervision(&supervision("ghost", "c1", SupervisionState::Active))),
    );
}

#[test]
fn alerts_and_audit_are_append_only_logs() {
    let store = populated();
    let alert = NewAlert {
        supervision_id: Some("s1".to_owned()),
        kind: "monitoring_initiated".to_owned(),
        text: "monitoring initiated".to_owned(),
        at: UnixMs(1),
        call_id: None,
        reason: None,
    };
    let a1 = store.write(|w| w.append_alert(&alert)).unwrap();
    let a2 = store
        .write(|w| {
            w.append_alert(&NewAlert {
                supervision_id: None,
                kind: "validation".to_owned(),
                text: "the supervisor telephone number must be a number".to_owned(),
                at: UnixMs(2),
                call_id: None,
                reason: None,
            })
        })
        .unwrap();
    assert!(a2 > a1);
    let alerts = store.read(|r| r.alerts_after(AlertId::ZERO, 10)).unwrap();
    assert_eq!(alerts.len(), 2);
    assert_eq!(
        alerts[0],
        AlertRecord {
            id: a1,
            supervision_id: alert.supervision_id.clone(),
            kind: alert.kind.clone(),
            text: alert.text.clone(),
            at: alert.at,
            call_id: None,
            reason: None,
        }
    );
    assert_eq!(store.read(|r| r.alerts_after(a1, 10)).unwrap().len(), 1);
    assert_eq!(
        store.read(|r| r.alerts_of_supervision("s1")).unwrap().len(),
        1
    );

    let mut full = audit("supervision.start", Some("s1"));
    full.detail = Some("rights: listen".to_owned());
    let mut bare = audit("token.create", None);
    bare.mode = None;
    bare.call_id = None;
    let (u1, u2) = store
        .write(|w| Ok((w.append_audit(&full)?, w.append_audit(&bare)?)))
        .unwrap();
    assert!(u2 > u1);
    let records = store.read(|r| r.audit_after(AuditId::ZERO, 10)).unwrap();
    assert_eq!(
        records[0],
        AuditRecord {
            id: u1,
            at: full.at,
            actor: full.actor.clone(),
            action: full.action.clone(),
            supervision_id: full.supervision_id.clone(),
            call_id: full.call_id.clone(),
            mode: full.mode,
            outcome: full.outcome.clone(),
            detail: full.detail.clone(),
        }
    );
    assert_eq!(records[1].mode, None);
    assert_eq!(
        store.read(|r| r.audit_of_supervision("s1")).unwrap().len(),
        1
    );

    // Neither log can be rewritten, even by hand.
    for sql in [
        "UPDATE audit SET outcome = 'forged'",
        "DELETE FROM audit",
        "UPDATE alerts SET text = 'forged'",
        "DELETE FROM alerts",
    ] {
        assert_invalid(store.raw_execute(sql));
    }
    assert_eq!(
        store
            .read(|r| r.audit_after(AuditId::ZERO, 10))
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn events_are_monotonic_and_resume_after_an_id() {
    let store = mem();
    assert_eq!(store.read(|r| r.last_event_id()).unwrap(), None);
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(store.write(|w| w.append_event(&event(n))).unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(
        store.read(|r| r.last_event_id()).unwrap(),
        ids.last().copied()
    );

    // Page through from the start, as an SSE client resuming with Last-Event-ID would.
    let mut seen = Vec::new();
    let mut last = EventId::ZERO;
    loop {
        let page = store.read(|r| r.events_after(last, 3)).unwrap();
        let Some(tail) = page.last() else { break };
        last = tail.id;
        seen.extend(page);
    }
    assert_eq!(seen.iter().map(|e| e.id).collect::<Vec<_>>(), ids);
    assert_eq!(seen[4].payload, json!({ "n": 4 }));
    assert_eq!(seen[4].event_type, "supervision.started");
    assert_eq!(seen[4].scope, event(4).scope);
    assert_eq!(seen[4].at, UnixMs(5_004));
    let resumed = store.read(|r| r.events_after(ids[6], 100)).unwrap();
    assert_eq!(resumed.iter().map(|e| e.id).collect::<Vec<_>>(), ids[7..]);

    // A rolled-back event leaves a hole at most, never a reused or smaller id.
    let _ = store.write(|w| {
        w.append_event(&event(99))?;
        Err::<(), _>(StoreError::Schema("caller gave up".to_owned()))
    });
    let next = store.write(|w| w.append_event(&event(10))).unwrap();
    assert!(next > ids[9]);
}

#[test]
fn pages_are_clamped_to_the_limit() {
    let store = mem();
    store
        .write(|w| {
            for n in 0..PAGE_LIMIT_MAX + 5 {
                w.append_event(&event(n))?;
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(
        store
            .read(|r| r.events_after(EventId::ZERO, u32::MAX))
            .unwrap()
            .len(),
        PAGE_LIMIT_MAX as usize
    );
}

#[test]
fn webhooks_and_deliveries_round_trip() {
    let store = mem();
    let mut hook = WebhookRecord {
        id: "w1".to_owned(),
        url: "https://example.net/hook".to_owned(),
        secret: "whsec_abc".to_owned(),
        event_types: vec!["alert.raised".to_owned()],
        enabled: true,
        consecutive_failures: 0,
        disabled_at: None,
        created_at: UnixMs(1),
    };
    store.write(|w| w.create_webhook(&hook)).unwrap();
    assert_conflict(store.write(|w| w.create_webhook(&hook)));
    assert_eq!(store.read(|r| r.webhook("w1")).unwrap(), Some(hook.clone()));
    hook.enabled = false;
    hook.consecutive_failures = 5;
    hook.disabled_at = Some(UnixMs(9));
    hook.event_types.clear();
    store.write(|w| w.update_webhook(&hook)).unwrap();
    assert_eq!(store.read(|r| r.webhooks()).unwrap(), [hook.clone()]);

    let e1 = store.write(|w| w.append_event(&event(1))).unwrap();
    let e2 = store.write(|w| w.append_event(&event(2))).unwrap();
    let mut d1 = DeliveryRecord {
        event_id: e1,
        webhook_id: "w1".to_owned(),
        attempts: 0,
        next_attempt_at: Some(UnixMs(100)),
        last_status: None,
        last_error: None,
    };
    let d2 = DeliveryRecord {
        event_id: e2,
        next_attempt_at: Some(UnixMs(50)),
        ..d1.clone()
    };
    store
        .write(|w| {
            w.enqueue_delivery(&d1)?;
            w.enqueue_delivery(&d2)
        })
        .unwrap();
    assert_conflict(store.write(|w| w.enqueue_delivery(&d1)));
    assert_eq!(
        store.read(|r| r.delivery(e2, "w1")).unwrap(),
        Some(d2.clone())
    );
    assert_eq!(
        store.read(|r| r.next_delivery("w1")).unwrap(),
        Some(d1.clone())
    );

    d1.attempts = 1;
    d1.last_status = Some(503);
    d1.last_error = Some("service unavailable".to_owned());
    d1.next_attempt_at = None;
    store.write(|w| w.update_delivery(&d1)).unwrap();
    assert_eq!(
        store.read(|r| r.delivery(e1, "w1")).unwrap(),
        Some(d1.clone())
    );
    assert_eq!(
        store.read(|r| r.next_delivery("w1")).unwrap(),
        Some(d2),
        "a finished delivery is no longer pending"
    );

    let to_nowhere = DeliveryRecord {
        webhook_id: "ghost".to_owned(),
        ..d1.clone()
    };
    assert_not_found(store.write(|w| w.enqueue_delivery(&to_nowhere)));
    assert_not_found(store.write(|w| w.update_delivery(&to_nowhere)));

    store.write(|w| w.delete_webhook("w1")).unwrap();
    assert_eq!(store.read(|r| r.delivery(e1, "w1")).unwrap(), None);
    assert_not_found(store.write(|w| w.delete_webhook("w1")));
    assert_not_found(store.write(|w| w.update_webhook(&hook)));
}

#[test]
fn a_webhooks_next_delivery_is_its_oldest_unfinished_and_the_cursor_only_moves_on() {
    let store = mem();
    assert_eq!(store.read(|r| r.webhook_cursor()).unwrap(), EventId::ZERO);
    let hook = WebhookRecord {
        id: "w1".to_owned(),
        url: "https://example.net/hook".to_owned(),
        secret: "whsec_abc".to_owned(),
        event_types: Vec::new(),
        enabled: true,
        consecutive_failures: 0,
        disabled_at: None,
        created_at: UnixMs(1),
    };
    store.write(|w| w.create_webhook(&hook)).unwrap();
    assert_eq!(store.read(|r| r.next_delivery("w1")).unwrap(), None);
    let ids: Vec<EventId> = (0..3)
        .map(|n| store.write(|w| w.append_event(&event(n))).unwrap())
        .collect();
    let pending = |event_id: EventId, at: i64| DeliveryRecord {
        event_id,
        webhook_id: "w1".to_owned(),
        attempts: 0,
        next_attempt_at: Some(UnixMs(at)),
        last_status: None,
        last_error: None,
    };
    // Enqueued out of order, the later ones due sooner: the oldest event still comes first.
    store
        .write(|w| {
            w.enqueue_delivery(&pending(ids[2], 10))?;
            w.enqueue_delivery(&pending(ids[1], 10))?;
            w.enqueue_delivery(&pending(ids[0], 500))
        })
        .unwrap();
    assert_eq!(
        store.read(|r| r.next_delivery("w1")).unwrap(),
        Some(pending(ids[0], 500))
    );
    let done = DeliveryRecord {
        attempts: 1,
        next_attempt_at: None,
        last_status: Some(204),
        ..pending(ids[0], 500)
    };
    store.write(|w| w.update_delivery(&done)).unwrap();
    assert_eq!(
        store.read(|r| r.next_delivery("w1")).unwrap(),
        Some(pending(ids[1], 10))
    );
    assert_eq!(store.read(|r| r.next_delivery("w2")).unwrap(), None);

    assert_eq!(
        store
            .write(|w| w.cancel_deliveries("w1", "the webhook is disabled"))
            .unwrap(),
        2
    );
    assert_eq!(store.read(|r| r.next_delivery("w1")).unwrap(), None);
    let cancelled = store.read(|r| r.delivery(ids[2], "w1")).unwrap().unwrap();
    assert_eq!(cancelled.next_attempt_at, None);
    assert_eq!(
        cancelled.last_error.as_deref(),
        Some("the webhook is disabled")
    );
    assert_eq!(
        store.read(|r| r.delivery(ids[0], "w1")).unwrap(),
        Some(done),
        "a finished delivery keeps its outcome"
    );

    store.write(|w| w.set_webhook_cursor(ids[1])).unwrap();
    assert_eq!(store.read(|r| r.webhook_cursor()).unwrap(), ids[1]);
    store.write(|w| w.set_webhook_cursor(ids[0])).unwrap();
    assert_eq!(
        store.read(|r| r.webhook_cursor()).unwrap(),
        ids[1],
        "never back"
    );

    // `next_delivery` goes through the partial index of the pending deliveries, in event order
    // (no sort); the index by due time, which nothing reads any more, is gone.
    let plan = query_plan(
        &store,
        "SELECT event_id FROM webhook_deliveries WHERE webhook_id = 'w1' \
         AND next_attempt_at_ms IS NOT NULL ORDER BY event_id LIMIT 1",
    );
    assert!(
        plan.contains("webhook_deliveries_pending") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
    assert!(!index_names(&store).contains(&"webhook_deliveries_due".to_owned()));
}

#[test]
fn the_webhook_cursor_starts_at_the_tail_of_an_upgraded_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    let store = SqliteStore::open_with(&path, &MIGRATIONS[..2]).unwrap();
    let last = store
        .write(|w| {
            w.append_event(&event(1))?;
            w.append_event(&event(2))
        })
        .unwrap();
    drop(store);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.read(|r| r.webhook_cursor()).unwrap(), last);
}

/// The names of the database's indexes.
fn index_names(store: &SqliteStore) -> Vec<String> {
    let guard = store.lock().unwrap();
    guard
        .conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// SQLite's plan for `sql`, its steps' details joined.
fn query_plan(store: &SqliteStore, sql: &str) -> String {
    let guard = store.lock().unwrap();
    guard
        .conn
        .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
        .unwrap()
        .query_map([], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .join("; ")
}

/// Version 4 swaps the state indexes for partial ones over the open rows: an upgraded database
/// keeps its calls and supervisions, finds the same open ones, through the new indexes.
#[test]
fn an_upgrade_to_the_open_indexes_keeps_the_rows_and_finds_the_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    let store = SqliteStore::open_with(&path, &MIGRATIONS[..3]).unwrap();
    assert!(index_names(&store).contains(&"calls_by_state".to_owned()));
    let mut ended = call("c2");
    (ended.state, ended.ended_at) = (CallState::Ended, Some(UnixMs(2_500)));
    let mut early = call("c0");
    early.created_at = UnixMs(1_500);
    let calls = [call("c1"), ended, early];
    let sessions = [
        supervision("s1", "c1", SupervisionState::Active),
        supervision("s2", "c1", SupervisionState::Stopped),
        supervision("s3", "c1", SupervisionState::Requested),
        supervision("s4", "c2", SupervisionState::Aborted),
    ];
    store
        .write(|w| {
            for c in &calls {
                w.create_call(c)?;
            }
            for s in &sessions {
                w.create_supervision(s)?;
            }
            Ok(())
        })
        .unwrap();
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_version());
    let indexes = index_names(&store);
    for gone in ["calls_by_state", "supervisions_by_state"] {
        assert!(!indexes.contains(&gone.to_owned()), "{indexes:?}");
    }
    store
        .read(|r| {
            for c in &calls {
                assert_eq!(r.call(&c.id)?.as_ref(), Some(c));
            }
            for s in &sessions {
                assert_eq!(r.supervision(&s.id)?.as_ref(), Some(s));
            }
            let open: Vec<_> = r.open_calls()?.into_iter().map(|c| c.id).collect();
            assert_eq!(open, ["c0", "c1"], "open only, oldest first");
            let open: Vec<_> = r.open_sessions()?.into_iter().map(|s| s.id).collect();
            assert_eq!(open, ["s1", "s3"]);
            Ok(())
        })
        .unwrap();
    // Ending a row takes it out of the index.
    let mut c1 = calls[0].clone();
    (c1.state, c1.ended_at) = (CallState::Ended, Some(UnixMs(3_000)));
    store.write(|w| w.update_call(&c1)).unwrap();
    assert_eq!(store.read(|r| r.open_calls()).unwrap(), [calls[2].clone()]);

    // The restart's queries go through the partial indexes, in order (no sort).
    let plan = query_plan(
        &store,
        "SELECT id FROM calls WHERE state <> 'ended' ORDER BY created_at_ms, id",
    );
    assert!(
        plan.contains("calls_open") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
    let plan = query_plan(
        &store,
        "SELECT id FROM supervisions WHERE state IN ('requested', 'active', 'no_call') \
         ORDER BY created_at_ms, id",
    );
    assert!(
        plan.contains("supervisions_open") && !plan.contains("TEMP B-TREE"),
        "{plan}"
    );
}

/// Version 5 lets `no_call` be stored (docs/design.md §2): a database of version 4 keeps its
/// rows (an `active` row stays `active`, open), and a `no_call` row then round-trips and is
/// open; nothing else may be stored as a state.
#[test]
fn an_upgrade_to_no_call_keeps_the_rows_and_stores_no_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    let store = SqliteStore::open_with(&path, &MIGRATIONS[..4]).unwrap();
    let sessions = [
        supervision("s1", "c1", SupervisionState::Active),
        supervision("s2", "c1", SupervisionState::Stopped),
        supervision("s3", "c1", SupervisionState::Requested),
    ];
    store
        .write(|w| {
            w.create_call(&call("c1"))?;
            for s in &sessions {
                w.create_supervision(s)?;
            }
            Ok(())
        })
        .unwrap();
    let mut no_call = supervision("s4", "c1", SupervisionState::NoCall);
    no_call.media = json!({"beep": true});
    assert!(
        store.write(|w| w.create_supervision(&no_call)).is_err(),
        "version 4 has no no_call"
    );
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.schema_version().unwrap(), latest_version());
    store.write(|w| w.create_supervision(&no_call)).unwrap();
    store
        .read(|r| {
            for s in sessions.iter().chain([&no_call]) {
                assert_eq!(r.supervision(&s.id)?.as_ref(), Some(s));
            }
            let open: Vec<_> = r.open_sessions()?.into_iter().map(|s| s.id).collect();
            assert_eq!(open, ["s1", "s3", "s4"]);
            Ok(())
        })
        .unwrap();
    let guard = store.lock().unwrap();
    let refused = guard.conn.execute(
        "UPDATE supervisions SET state = 'paused' WHERE id = 's1'",
        [],
    );
    assert!(refused.is_err(), "the CHECK still holds");
    drop(guard);
    let indexes = index_names(&store);
    for kept in [
        "supervisions_by_call",
        "supervisions_by_created",
        "supervisions_open",
    ] {
        assert!(indexes.contains(&kept.to_owned()), "{indexes:?}");
    }
}

// --- Transactions ------------------------------------------------------------------------------

#[test]
fn a_failed_transaction_changes_nothing() {
    let store = populated();
    let err = store
        .write(|w| {
            w.append_audit(&audit("supervision.start", Some("s1")))?;
            w.create_group(&group("g2", "Support"))?;
            w.create_group(&group("g3", "Sales")) // name taken: the whole write fails
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    store
        .read(|r| {
            assert!(r.group("g2")?.is_none());
            assert!(r.audit_after(AuditId::ZERO, 10)?.is_empty());
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_nested_transaction_is_an_error_not_a_deadlock() {
    let store = populated();
    let err = store.write(|_| store.read(|r| r.groups())).unwrap_err();
    assert!(err.to_string().contains("nested transaction"), "{err}");
    // The store is still usable.
    assert_eq!(store.read(|r| r.groups()).unwrap().len(), 1);
}

#[test]
fn a_panicking_transaction_is_rolled_back_and_the_store_stays_usable() {
    let store = populated();
    let result = catch_unwind(AssertUnwindSafe(|| {
        store.write(|w| -> Result<(), StoreError> {
            w.create_group(&group("g2", "Support"))?;
            panic!("bug in the caller");
        })
    }));
    assert!(result.is_err());
    assert_eq!(store.read(|r| r.group("g2")).unwrap(), None);
    store
        .write(|w| w.create_group(&group("g2", "Support")))
        .unwrap();
}

#[test]
fn the_store_is_usable_as_a_trait_object_from_many_threads() {
    let store: Arc<dyn Store> = Arc::new(populated());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for n in 0..25 {
                    store
                        .write(|w| w.append_event(&event(t * 100 + n)))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let events = store.read(|r| r.events_after(EventId::ZERO, 1000)).unwrap();
    assert_eq!(events.len(), 100);
    assert!(events.windows(2).all(|w| w[0].id < w[1].id));
}

#[test]
fn two_stores_on_one_file_interleave_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    let a = Arc::new(SqliteStore::open(&path).unwrap());
    let b = Arc::new(SqliteStore::open(&path).unwrap());
    let threads: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(t, store)| {
            std::thread::spawn(move || {
                (0..20)
                    .map(|n| {
                        store
                            .write(|w| w.append_event(&event(t as u32 * 100 + n)))
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut ids: Vec<EventId> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40);
    assert_eq!(
        a.read(|r| r.events_after(EventId::ZERO, 100))
            .unwrap()
            .len(),
        40
    );
}

// --- Bad data ----------------------------------------------------------------------------------

#[test]
fn a_column_that_does_not_parse_is_corrupt_not_a_panic() {
    let store = populated();
    store
        .write(|w| w.create_agent(&agent_record("agent")))
        .unwrap();
    store.write(|w| w.append_event(&event(1))).unwrap();
    store
        .raw_execute("PRAGMA ignore_check_constraints = ON")
        .unwrap();
    store
        .raw_execute("UPDATE agents SET aggregates = '{not json'")
        .unwrap();
    store
        .raw_execute("UPDATE events SET scope = '[1, 2]'")
        .unwrap();
    store
        .raw_execute("UPDATE calls SET state = 'teleported'")
        .unwrap();
    store
        .raw_execute("UPDATE groups SET max_monitors_per_agent = -1")
        .unwrap();

    for (what, result) in [
        ("agent", store.read(|r| r.agent("agent").map(|_| ()))),
        (
            "events",
            store.read(|r| r.events_after(EventId::ZERO, 10).map(|_| ())),
        ),
        ("call", store.read(|r| r.call("c1").map(|_| ()))),
        ("group", store.read(|r| r.group("g1").map(|_| ()))),
    ] {
        match result {
            Err(StoreError::Corrupt { context, detail }) => {
                assert!(!context.is_empty() && !detail.is_empty(), "{what}")
            }
            other => panic!("{what}: {other:?}"),
        }
    }
    let message = store.read(|r| r.call("c1")).unwrap_err().to_string();
    assert!(
        message.contains("calls.state") && message.contains("teleported"),
        "{message}"
    );
}

#[test]
fn every_enum_value_parses_back() {
    fn check<T: ColumnEnum + PartialEq + std::fmt::Debug>() {
        for &v in T::ALL {
            assert_eq!(T::parse(v.as_str()), Some(v));
        }
        assert_eq!(T::parse("nonsense"), None);
        assert_eq!(T::parse(""), None);
    }
    check::<Role>();
    check::<GroupKind>();
    check::<BeepPolicy>();
    check::<AgentState>();
    check::<Platform>();
    check::<CallState>();
    check::<SupervisionState>();
    check::<SupervisionScope>();
    check::<Mode>();
}

// --- Group commit ------------------------------------------------------------------------------

/// The store's commit and sync marks: (last commit, last commit durable).
fn marks(store: &SqliteStore) -> (u64, u64) {
    let s = super::relock(&store.wal.state);
    (s.committed, s.synced)
}

#[test]
fn a_write_is_durable_when_it_returns_and_a_deferred_one_after_sync() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("earshot.db")).unwrap();
    let (opened, synced) = marks(&store);
    assert_eq!(synced, opened, "the schema is durable when open returns");

    store.write(|w| w.create_call(&call("c1"))).unwrap();
    let (committed, synced) = marks(&store);
    assert_eq!((committed, synced), (opened + 1, opened + 1));

    // Deferred: committed (visible) at once, durable only after `sync`.
    deferring(|| store.write(|w| w.create_call(&call("c2")))).unwrap();
    assert_eq!(marks(&store), (opened + 2, opened + 1));
    assert!(store.read(|r| r.call("c2")).unwrap().is_some());
    // Nested scopes defer to the outermost.
    deferring(|| deferring(|| store.write(|w| w.create_call(&call("c3"))))).unwrap();
    assert_eq!(marks(&store), (opened + 3, opened + 1));
    store.sync().unwrap();
    assert_eq!(marks(&store), (opened + 3, opened + 3));
    // Nothing new: a sync is a no-op.
    store.sync().unwrap();
    assert_eq!(marks(&store), (opened + 3, opened + 3));
    // Out of the scope again (even after a panic inside one), writes sync themselves.
    let panicked = catch_unwind(AssertUnwindSafe(|| deferring(|| panic!("boom"))));
    assert!(panicked.is_err());
    assert!(!is_deferring());
    store.write(|w| w.create_call(&call("c4"))).unwrap();
    assert_eq!(marks(&store), (opened + 4, opened + 4));
}

/// Writers on many threads, each acknowledging its rows only after `sync` (as the HTTP API
/// does), some of whose transactions fail: every acknowledged row is in the database when it
/// is opened again, no row of a failed transaction is, and the failures cost the others
/// nothing.
#[test]
fn concurrent_deferred_writers_are_all_durable_and_a_failure_loses_no_one_else() {
    const THREADS: usize = 8;
    const ROUNDS: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    let store = Arc::new(SqliteStore::open(&path).unwrap());
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut acknowledged = Vec::new();
                for round in 0..ROUNDS {
                    let id = format!("c{t}-{round}");
                    // Every fifth transaction fails after writing its row.
                    let fails = round % 5 == 4;
                    let written = deferring(|| {
                        store.write(|w| {
                            w.create_call(&call(&id))?;
                            if fails {
                                return Err(StoreError::Schema("a later step failed".to_owned()));
                            }
                            Ok(())
                        })
                    });
                    store.sync().unwrap();
                    assert_eq!(written.is_err(), fails, "{id}: {written:?}");
                    if written.is_ok() {
                        acknowledged.push(id);
                    }
                }
                acknowledged
            })
        })
        .collect();
    let acknowledged: Vec<String> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    assert_eq!(acknowledged.len(), THREADS * ROUNDS * 4 / 5);
    let (committed, synced) = marks(&store);
    assert_eq!(synced, committed);
    drop(store);

    let reopened = SqliteStore::open(&path).unwrap();
    reopened
        .read(|r| {
            for id in &acknowledged {
                assert!(r.call(id)?.is_some(), "acknowledged {id} lost");
            }
            assert_eq!(r.recent_calls(PAGE_LIMIT_MAX)?.len(), acknowledged.len());
            Ok(())
        })
        .unwrap();
}

/// After a failed sync nothing more is acknowledged: the failing write answers an error, and so
/// does every later write and sync (what reached the disk is unknown); reads go on.
#[test]
fn a_failed_sync_refuses_every_later_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = SqliteStore::open(dir.path().join("earshot.db")).unwrap();
    store.write(|w| w.create_call(&call("c1"))).unwrap();
    // As if the device had gone: the WAL cannot be synced.
    store.wal.path = Some(dir.path().join("gone").join("earshot.db-wal"));
    assert!(store.write(|w| w.create_call(&call("c2"))).is_err());
    assert!(store.sync().is_err());
    assert!(store.write(|w| w.create_call(&call("c3"))).is_err());
    assert!(deferring(|| store.write(|w| w.create_call(&call("c4")))).is_err());
    store
        .read(|r| {
            assert!(r.call("c1")?.is_some());
            assert!(r.call("c3")?.is_none() && r.call("c4")?.is_none());
            Ok(())
        })
        .unwrap();
}

#[test]
fn an_in_memory_store_syncs_nothing() {
    let store = mem();
    deferring(|| store.write(|w| w.create_call(&call("c1")))).unwrap();
    store.sync().unwrap();
    let (committed, synced) = marks(&store);
    assert_eq!(synced, committed);
}

// --- NG calls (docs/ng.md) ---------------------------------------------------------------------

fn ng_call(call_id: &str, ng_call_id: &str) -> NgCallRecord {
    NgCallRecord {
        call_id: call_id.to_owned(),
        ng_call_id: ng_call_id.to_owned(),
        offerer_tag: "caller-tag".to_owned(),
        offerer: NgParty::Customer,
        answerer_tag: None,
        last_signal: UnixMs(2_100),
    }
}

/// The NG side of a call is created, replaced (the answer's tag, the last signal), survives a
/// reopen, and is listed newest call first; a call-id may name several calls over time; a row
/// for a call that does not exist is refused.
#[test]
fn ng_calls_round_trip_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    let store = SqliteStore::open(&path).unwrap();
    let mut older = call("c1");
    older.created_at = UnixMs(1_000);
    let newer = call("c2");
    let mut first = ng_call("c1", "1-28469@127.0.0.1");
    let second = NgCallRecord {
        offerer: NgParty::Agent,
        ..ng_call("c2", "1-28469@127.0.0.1")
    };
    store
        .write(|w| {
            w.create_call(&older)?;
            w.create_call(&newer)?;
            w.set_ng_call(&first)?;
            w.set_ng_call(&second)
        })
        .unwrap();
    first.answerer_tag = Some("callee-tag".to_owned());
    first.last_signal = UnixMs(2_500);
    store.write(|w| w.set_ng_call(&first)).unwrap();
    assert_not_found(store.write(|w| w.set_ng_call(&ng_call("c9", "x@y"))));
    drop(store);

    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        store.read(|r| r.ng_call("c1")).unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.read(|r| r.ng_call("c9")).unwrap(), None);
    assert_eq!(
        store.read(|r| r.recent_ng_calls(10)).unwrap(),
        vec![second.clone(), first]
    );
    assert_eq!(store.read(|r| r.recent_ng_calls(1)).unwrap(), vec![second]);
}
