//! Group commit (`store` module, "Durability"): concurrent requests share their syncs, and still
//! every acknowledged write is durable. Many supervised-call setups at once through the HTTP
//! API over a database file: every one is acknowledged, and a fresh connection to the file
//! finds each call, supervision and audit record acknowledged.
//!
//! (`kill -9` is `daemon_durability.rs`'s; a power loss cannot be staged in a test: that the
//! WAL is synced before an answer is checked by the store's unit tests and `audit_first.rs`.)

mod common;

use axum::http::StatusCode;
use common::Harness;
use controlplane::store::{AuditId, PAGE_LIMIT_MAX, SqliteStore, StoreExt as _};
use serde_json::{Value, json};

/// Setups in flight at once, and how many each client makes.
const CLIENTS: usize = 8;
const SETUPS_PER_CLIENT: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_setups_are_all_acknowledged_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earshot.db");
    // 320 ports: room for the 3 legs (even ports) of every setup.
    let mut config = common::config_with_ports(320);
    config.store.path = path.clone();
    let h = std::sync::Arc::new(Harness::new(&config));

    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let h = h.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for _ in 0..SETUPS_PER_CLIENT {
                    let (status, call) = h
                        .post(
                            "/v1/calls",
                            &json!({"agent_id": format!("agent-{client}")}).to_string(),
                        )
                        .await;
                    assert_eq!(status, StatusCode::CREATED, "{call}");
                    let call = call["id"].as_str().unwrap().to_owned();
                    let sup = h.new_supervision(&call).await;
                    acknowledged.push((call, sup));
                }
                acknowledged
            })
        })
        .collect();
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    for client in clients {
        acknowledged.extend(client.await.unwrap());
    }
    assert_eq!(acknowledged.len(), CLIENTS * SETUPS_PER_CLIENT);

    // Another connection reads the file: what the daemon acknowledged is in it.
    let file = SqliteStore::open(&path).unwrap();
    file.read(|r| {
        let audit = r.audit_after(AuditId::ZERO, PAGE_LIMIT_MAX)?;
        for (call, sup) in &acknowledged {
            assert!(r.call(call)?.is_some(), "call {call} lost");
            let stored = r.supervision(sup)?;
            assert!(
                stored.is_some_and(|s| s.state == controlplane::store::SupervisionState::Active),
                "supervision {sup} lost or not active"
            );
            assert!(
                audit
                    .iter()
                    .any(|a| a.supervision_id.as_deref() == Some(sup.as_str())
                        && a.action == "supervision.start"),
                "supervision {sup}: no start audit record in {:?}",
                audit.iter().map(|a| &a.action).collect::<Vec<_>>()
            );
        }
        Ok(())
    })
    .unwrap();
    let (_, list): (StatusCode, Value) = h.get("/v1/supervisions").await;
    assert_eq!(
        list["supervisions"].as_array().map(Vec::len),
        Some(acknowledged.len())
    );
}
