//! docs/design.md §7.3: after `kill -9` and a restart, nothing acknowledged (groups, grants, audit,
//! alerts) is lost, and sessions live before the crash are closed, not resumed.
//!
//! The test re-runs its own binary as a writer process (selected by an environment variable):
//! the writer commits records one transaction at a time and prints each id to stdout only
//! after the commit has returned. The parent kills it with SIGKILL mid-stream, reopens the
//! database (the WAL is recovered), and checks that every id it was told about is there, and
//! that multi-record transactions are all-or-nothing.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use controlplane::app::recovery::recover_after_restart;
use controlplane::store::{
    AlertId, AuditId, AuditRecord, BeepPolicy, CallDirection, CallFlags, CallRecord, CallState,
    EventId, GrantId, GroupKind, GroupRecord, NewAlert, NewAudit, NewGrant, PAGE_LIMIT_MAX,
    RESTART_REASON, Reads, Role, SqliteStore, StoreError, StoreExt, SupervisionRecord,
    SupervisionScope, SupervisionState, UnixMs, UserRecord,
};

/// Selects the writer role in the child process; its value is the database path.
const WRITER_ENV: &str = "EARSHOT_STORE_DURABILITY_WRITER_DB";
/// Records of each kind the parent waits to see acknowledged before it kills the writer.
const ACKED_BEFORE_KILL: usize = 15;
/// The writer's bound: it never writes more than this many rounds (then idles until killed).
const ROUNDS_MAX: u32 = 100_000;
/// How long the parent waits for the writer's acknowledgements at most.
const ACK_TIMEOUT: Duration = Duration::from_secs(20);

/// The child side. In a normal test run (no environment variable) it does nothing.
#[test]
fn writer_process() {
    let Some(path) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let store = SqliteStore::open(Path::new(&path)).expect("writer: open");
    let mut out = std::io::stdout().lock();
    let mut ack = |line: String| {
        // Straight to the pipe (not the test harness's capture), flushed: the parent sees the
        // line only after the commit it reports has returned.
        writeln!(out, "ACK {line}")
            .and_then(|()| out.flush())
            .expect("writer: stdout");
    };
    let now = UnixMs(1_700_000_000_000);

    store
        .write(|w| {
            for (id, role) in [("sup", Role::Supervisor), ("agent", Role::Agent)] {
                w.create_user(&UserRecord {
                    id: id.to_owned(),
                    display_name: id.to_owned(),
                    phone_number: None,
                    roles: vec![role],
                })?;
            }
            w.create_call(&CallRecord {
                id: "c_0000000000001111".to_owned(),
                external_id: None,
                agent_id: Some("agent".to_owned()),
                state: CallState::Active,
                flags: CallFlags::default(),
                web: false,
                created_at: now,
                ended_at: None,
                direction: CallDirection::Inbound,
                agent_answered: true,
                customer_hung_up: false,
                agent_hung_up: false,
                deleted_at: None,
                media: serde_json::json!({}),
            })?;
            w.create_supervision(&SupervisionRecord {
                id: "s_0000000000001111".to_owned(),
                call_id: Some("c_0000000000001111".to_owned()),
                supervisor_id: Some("sup".to_owned()),
                agent_id: Some("agent".to_owned()),
                state: SupervisionState::Active,
                mode: Default::default(),
                end_reason: None,
                scope: SupervisionScope::Call,
                created_at: now,
                started_at: Some(now),
                ended_at: None,
                media: serde_json::json!({}),
            })
        })
        .expect("writer: populate");
    ack("populate".to_owned());

    for round in 0..ROUNDS_MAX {
        let group_id = format!("g{round}");
        store
            .write(|w| {
                w.create_group(&GroupRecord {
                    id: group_id.clone(),
                    name: format!("Group {round}"),
                    kind: GroupKind::Standard,
                    lock_last_member: false,
                    agent_beep: BeepPolicy::AgentBeep,
                    max_monitors_per_agent: None,
                    created_at: now,
                })
            })
            .expect("writer: group");
        ack(format!("group {group_id}"));

        let grant = store
            .write(|w| {
                let id = w.create_grant(&NewGrant {
                    supervisor_id: "sup".to_owned(),
                    agent_id: "agent".to_owned(),
                    granted_by: format!("round {round}"),
                    created_at: now,
                })?;
                // Revoked at once so the next round can grant the pair again.
                w.revoke_grant(id, now)?;
                Ok(id)
            })
            .expect("writer: grant");
        ack(format!("grant {}", grant.0));

        let audit = store
            .write(|w| w.append_audit(&audit_record(&format!("round {round}"))))
            .expect("writer: audit");
        ack(format!("audit {}", audit.0));

        let alert = store
            .write(|w| {
                w.append_alert(&NewAlert {
                    supervision_id: Some("s_0000000000001111".to_owned()),
                    kind: "monitoring_initiated".to_owned(),
                    text: format!("round {round}"),
                    at: now,
                    call_id: None,
                    reason: None,
                })
            })
            .expect("writer: alert");
        ack(format!("alert {}", alert.0));

        // A transaction of an audit record and an alert: after the kill, both or neither.
        store
            .write(|w| {
                let mut pair = audit_record("pair");
                pair.detail = Some(format!("pair {round}"));
                w.append_audit(&pair)?;
                w.append_alert(&NewAlert {
                    supervision_id: None,
                    kind: "pair".to_owned(),
                    text: format!("pair {round}"),
                    at: now,
                    call_id: None,
                    reason: None,
                })
            })
            .expect("writer: pair");
    }
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// The whole audit log, page by page.
fn all_audit(r: &dyn Reads) -> Result<Vec<AuditRecord>, StoreError> {
    let mut all = Vec::new();
    let mut last = AuditId::ZERO;
    loop {
        let page = r.audit_after(last, PAGE_LIMIT_MAX)?;
        let Some(tail) = page.last() else {
            return Ok(all);
        };
        last = tail.id;
        all.extend(page);
    }
}

fn audit_record(detail: &str) -> NewAudit {
    NewAudit {
        at: UnixMs(1_700_000_000_000),
        actor: "user:sup".to_owned(),
        action: "supervision.mode".to_owned(),
        supervision_id: Some("s_0000000000001111".to_owned()),
        call_id: Some("c_0000000000001111".to_owned()),
        mode: None,
        outcome: "ok".to_owned(),
        detail: Some(detail.to_owned()),
    }
}

#[derive(Default)]
struct Acked {
    populated: bool,
    groups: BTreeSet<String>,
    grants: BTreeSet<i64>,
    audit: BTreeSet<i64>,
    alerts: BTreeSet<i64>,
}

impl Acked {
    fn take(&mut self, line: &str) {
        // The harness's own output ("test writer_process ... ") may precede the first line.
        let Some(at) = line.find("ACK ") else {
            return;
        };
        let rest = &line[at + 4..];
        let (kind, value) = rest.split_once(' ').unwrap_or((rest, ""));
        let number = || value.parse::<i64>().expect("acknowledged id");
        match kind {
            "populate" => self.populated = true,
            "group" => {
                self.groups.insert(value.to_owned());
            }
            "grant" => {
                self.grants.insert(number());
            }
            "audit" => {
                self.audit.insert(number());
            }
            "alert" => {
                self.alerts.insert(number());
            }
            other => panic!("unknown acknowledgement {other:?}"),
        }
    }

    fn enough(&self) -> bool {
        self.populated && self.alerts.len() >= ACKED_BEFORE_KILL
    }
}

#[test]
fn acknowledged_writes_survive_kill_9_and_live_sessions_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("earshot.db");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the writer");
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut acked = Acked::default();
    while !acked.enough() {
        match lines.recv_timeout(ACK_TIMEOUT) {
            Ok(line) => acked.take(&line),
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "the writer stopped acknowledging ({e:?}) after {} alerts",
                    acked.alerts.len()
                );
            }
        }
    }
    child.kill().expect("SIGKILL the writer"); // Child::kill is SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the writer was killed, not finished: {status:?}"
    );
    // Acknowledgements already in the pipe when it died count too.
    reader.join().unwrap();
    for line in lines.try_iter() {
        acked.take(&line);
    }
    assert!(
        dir.path().join("earshot.db-wal").exists(),
        "the writer died with a WAL for the reopen to recover"
    );

    let store = SqliteStore::open(&db).expect("the database reopens cleanly after kill -9");
    store
        .read(|r| {
            for id in &acked.groups {
                assert!(r.group(id)?.is_some(), "acknowledged group {id} lost");
            }
            for &id in &acked.grants {
                let grant = r.grant(GrantId(id))?;
                assert!(
                    grant.is_some_and(|g| g.revoked_at.is_some()),
                    "acknowledged grant {id} lost"
                );
            }
            let audit = all_audit(r)?;
            let audit_ids: BTreeSet<i64> = audit.iter().map(|a| a.id.0).collect();
            let missing: Vec<_> = acked.audit.difference(&audit_ids).collect();
            assert!(
                missing.is_empty(),
                "acknowledged audit records lost: {missing:?}"
            );
            for &id in &acked.alerts {
                let page = r.alerts_after(AlertId(id - 1), 1)?;
                assert!(
                    page.first().is_some_and(|a| a.id.0 == id),
                    "acknowledged alert {id} lost"
                );
            }

            // Atomicity: every "pair" transaction left both records or neither.
            let pair_audit: BTreeSet<String> = audit
                .into_iter()
                .filter_map(|a| a.detail.filter(|d| d.starts_with("pair ")))
                .collect();
            let mut pair_alerts = BTreeSet::new();
            let mut last = AlertId::ZERO;
            loop {
                let page = r.alerts_after(last, 500)?;
                let Some(tail) = page.last() else { break };
                last = tail.id;
                pair_alerts.extend(
                    page.into_iter()
                        .filter(|a| a.kind == "pair")
                        .map(|a| a.text),
                );
            }
            assert_eq!(
                pair_audit, pair_alerts,
                "a transaction was torn by the kill"
            );
            Ok(())
        })
        .unwrap();

    // The session live at the crash is closed with an alert, an audit record and an event.
    let before = store
        .read(|r| r.last_event_id())
        .unwrap()
        .unwrap_or(EventId::ZERO);
    let recovery = recover_after_restart(&store, UnixMs(1_800_000_000_000)).unwrap();
    assert_eq!(recovery.sessions.len(), 1);
    let closed = &recovery.sessions[0];
    assert_eq!(closed.supervision.id, "s_0000000000001111");
    assert_eq!(closed.supervision.state, SupervisionState::Aborted);
    assert_eq!(
        closed.supervision.end_reason.as_deref(),
        Some(RESTART_REASON)
    );
    assert_eq!(recovery.calls.len(), 1);
    drop(store);

    // And that, too, is durable: a second restart finds nothing live and the records there.
    let store = SqliteStore::open(&db).unwrap();
    assert_eq!(
        recover_after_restart(&store, UnixMs(1_800_000_000_001)).unwrap(),
        Default::default()
    );
    store
        .read(|r| {
            assert!(r.open_sessions()?.is_empty());
            let alerts = r.alerts_of_supervision("s_0000000000001111")?;
            assert!(
                alerts
                    .iter()
                    .any(|a| a.id == closed.alert_id && a.kind == "aborted")
            );
            let audit = r.audit_of_supervision("s_0000000000001111")?;
            assert!(
                audit
                    .iter()
                    .any(|a| a.id == closed.audit_id && a.actor == "system")
            );
            let events = r.events_after(before, 10)?;
            assert!(
                events
                    .iter()
                    .any(|e| e.id == closed.event_id && e.event_type == "supervision.aborted")
            );
            Ok(())
        })
        .unwrap();
}
