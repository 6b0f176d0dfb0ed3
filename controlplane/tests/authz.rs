//! Access control through the HTTP API (docs/design.md §4, issue 4 acceptance): each role against
//! each endpoint class, the 401 cases, revocation taking effect at once, and the group-scoped
//! supervision rights with their audited denials.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ADMIN_TOKEN, Harness, NUMBER};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// A supervision body without `supervisor_id` (a supervisor supervises as themself), its leg
/// already answered.
fn own_supervision() -> String {
    json!({"registered_number": NUMBER, "answered": {"calling_number": NUMBER}}).to_string()
}

/// A call of `agent`, created by the admin.
async fn call_of(h: &Harness, agent: &str) -> String {
    let (status, call) = h
        .post("/v1/calls", &json!({"agent_id": agent}).to_string())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{call}");
    call["id"].as_str().unwrap().to_owned()
}

/// `POST /v1/calls/{call}/supervisions` with `token`.
async fn supervise_as(h: &Harness, token: &str, call: &str, body: &str) -> (StatusCode, Value) {
    let uri = format!("/v1/calls/{call}/supervisions");
    h.call_as(Some(token), Method::POST, &uri, Some(body)).await
}

/// Group `group` with `agent` as member and `supervisor` over it with `rights`.
async fn group(h: &Harness, group: &str, agent: &str, supervisor: &str, rights: Value) {
    let (s, g) = h
        .post(
            "/v1/groups",
            &json!({"id": group, "name": group}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let (s, m) = h
        .call(
            Method::PUT,
            &format!("/v1/groups/{group}/members/{agent}"),
            Some("{}"),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    let (s, r) = h
        .call(
            Method::PUT,
            &format!("/v1/groups/{group}/supervisors/{supervisor}"),
            Some(&rights.to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
}

/// The audit records whose outcome is `denied`.
async fn denials(h: &Harness) -> Vec<Value> {
    let (s, audit) = h.get("/v1/audit").await;
    assert_eq!(s, StatusCode::OK, "{audit}");
    audit["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "denied")
        .cloned()
        .collect()
}

/// Each role against one representative route per endpoint class: 2xx where `auth::allowed`
/// says so, else 403.
#[tokio::test]
async fn each_role_against_each_endpoint_class() {
    let h = Harness::start();
    let supervisor = h.token("supervisor", Some("sup-a")).await;
    let agent = h.token("agent", Some("ag-1")).await;
    let softswitch = h.token("softswitch", None).await;
    group(
        &h,
        "grp-a",
        "ag-1",
        "sup-a",
        json!({"listen": true, "intervene": true}),
    )
    .await;

    // (role, token, [Administration, Signalling, Supervision, Read, Console, AgentSelf])
    let table = [
        (
            "admin",
            ADMIN_TOKEN.to_owned(),
            [true, true, true, true, true, false],
        ),
        (
            "supervisor",
            supervisor,
            [false, false, true, true, true, false],
        ),
        ("agent", agent, [false, false, false, true, false, true]),
        (
            "softswitch",
            softswitch,
            [false, true, false, true, false, false],
        ),
    ];
    for (role, token, expected) in table {
        let call = call_of(&h, "ag-1").await;
        let supervisions = format!("/v1/calls/{call}/supervisions");
        let body = own_supervision();
        let routes: [(&str, Method, &str, Option<&str>); 6] = [
            ("administration", Method::GET, "/v1/tokens", None),
            ("signalling", Method::POST, "/v1/calls", Some("{}")),
            ("supervision", Method::POST, &supervisions, Some(&body)),
            ("read", Method::GET, "/v1/calls", None),
            (
                "console",
                Method::PATCH,
                "/v1/agents/ag-1",
                Some(r#"{"auto_assignment": true}"#),
            ),
            ("agent_self", Method::GET, "/v1/me", None),
        ];
        for ((class, method, uri, body), allowed) in routes.into_iter().zip(expected) {
            let (status, answer) = h.call_as(Some(&token), method, uri, body).await;
            if allowed {
                assert!(status.is_success(), "{role} on {class}: {status} {answer}");
            } else {
                assert_eq!(
                    (status, answer["error"]["code"].as_str()),
                    (StatusCode::FORBIDDEN, Some("forbidden")),
                    "{role} on {class}: {answer}"
                );
            }
        }
    }
    // The refused supervisions (agent, softswitch) are audited.
    let denied = denials(&h).await;
    assert_eq!(denied.len(), 2, "{denied:?}");
    assert_eq!(denied[0]["actor"], "user:ag-1", "{denied:?}");
    assert!(
        denied[1]["actor"]
            .as_str()
            .unwrap()
            .starts_with("token:tok-"),
        "{denied:?}"
    );
    for d in &denied {
        assert!(
            d["detail"].as_str().unwrap().starts_with("forbidden"),
            "{d}"
        );
    }
    // The audit log is the admin's.
    let supervisor = h.token("supervisor", Some("sup-b")).await;
    let (status, _) = h
        .call_as(Some(&supervisor), Method::GET, "/v1/audit", None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Every route but `/healthz` and `/metrics` refuses a request without credentials.
#[tokio::test]
async fn every_route_needs_a_token_and_says_so() {
    let h = Harness::start();
    let id = "00000000000000000000000000000001";
    let routes = [
        (Method::GET, "/v1/calls".to_owned()),
        (Method::POST, "/v1/calls".to_owned()),
        (Method::GET, format!("/v1/calls/{id}")),
        (Method::DELETE, format!("/v1/calls/{id}")),
        (Method::PATCH, format!("/v1/calls/{id}/legs/agent")),
        (Method::POST, format!("/v1/calls/{id}/events")),
        (Method::POST, format!("/v1/calls/{id}/supervisions")),
        (Method::GET, "/v1/supervisions".to_owned()),
        (Method::GET, format!("/v1/supervisions/{id}")),
        (Method::PATCH, format!("/v1/supervisions/{id}")),
        (Method::DELETE, format!("/v1/supervisions/{id}")),
        (Method::POST, format!("/v1/supervisions/{id}/events")),
        (Method::GET, format!("/v1/supervisions/{id}/alerts")),
        (Method::GET, "/v1/alerts".to_owned()),
        (Method::GET, "/v1/audit".to_owned()),
        (Method::GET, "/v1/tokens".to_owned()),
        (Method::POST, "/v1/tokens".to_owned()),
        (Method::DELETE, "/v1/tokens/tok-1".to_owned()),
        (Method::POST, "/v1/groups".to_owned()),
        (Method::PUT, "/v1/groups/g/supervisors/u".to_owned()),
        (Method::PUT, "/v1/groups/g/members/u".to_owned()),
        (Method::GET, "/v1/groups".to_owned()),
        (Method::GET, "/v1/groups/g".to_owned()),
        (Method::PATCH, "/v1/groups/g".to_owned()),
        (Method::DELETE, "/v1/groups/g".to_owned()),
        (Method::DELETE, "/v1/groups/g/supervisors/u".to_owned()),
        (Method::DELETE, "/v1/groups/g/members/u".to_owned()),
        (Method::POST, "/v1/groups/g/members/u/logon".to_owned()),
        (Method::POST, "/v1/groups/g/members/u/logoff".to_owned()),
        (Method::GET, "/v1/users".to_owned()),
        (Method::PATCH, "/v1/users/u".to_owned()),
        (Method::PUT, "/v1/users/u/presence".to_owned()),
        (Method::PUT, "/v1/users/u/forwarding".to_owned()),
        (Method::GET, "/v1/grants".to_owned()),
        (Method::POST, "/v1/grants".to_owned()),
        (Method::DELETE, "/v1/grants/1".to_owned()),
        (Method::GET, "/v1/console/members".to_owned()),
        (Method::GET, "/v1/console/ringing-calls".to_owned()),
        (Method::POST, "/v1/console/ringing-calls/c/take".to_owned()),
        (
            Method::POST,
            "/v1/console/members/u/cancel-forwarding".to_owned(),
        ),
        (Method::GET, "/v1/console/subscriptions".to_owned()),
        (Method::PUT, "/v1/console/subscriptions/u".to_owned()),
        (Method::DELETE, "/v1/console/subscriptions/u".to_owned()),
        (Method::GET, "/v1/console/settings".to_owned()),
        (Method::PUT, "/v1/console/settings".to_owned()),
        (Method::POST, "/v1/console/groups/g/join".to_owned()),
        (Method::POST, "/v1/console/groups/g/leave".to_owned()),
        (Method::GET, "/v1/agents".to_owned()),
        (Method::GET, "/v1/agents/u".to_owned()),
        (Method::PATCH, "/v1/agents/u".to_owned()),
        (Method::PUT, "/v1/agents/u/state".to_owned()),
        (Method::POST, "/v1/agents/u/messages".to_owned()),
        (Method::GET, "/v1/me".to_owned()),
        (Method::PATCH, "/v1/me".to_owned()),
        (Method::PUT, "/v1/me/state".to_owned()),
        (Method::POST, "/v1/me/groups/g/join".to_owned()),
        (Method::POST, "/v1/me/groups/g/leave".to_owned()),
        (Method::POST, "/v1/ringing".to_owned()),
        (Method::DELETE, "/v1/ringing/c".to_owned()),
    ];
    let cases: [(Option<&str>, &str); 5] = [
        (None, "unauthenticated"),
        (Some("Basic dXNlcjpwYXNz"), "unauthenticated"),
        (Some("Bearer"), "unauthenticated"),
        (
            Some("Bearer es_unknown-token-0000000000000000000000"),
            "invalid_token",
        ),
        (Some("Bearer a b"), "unauthenticated"),
    ];
    for (method, uri) in &routes {
        for (authorization, code) in cases {
            let mut req = Request::builder().method(method.clone()).uri(uri);
            if let Some(value) = authorization {
                req = req.header(header::AUTHORIZATION, value);
            }
            let req = req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{}"))
                .unwrap();
            let resp = h.app.clone().oneshot(req).await.unwrap();
            assert_eq!(
                resp.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {uri} {authorization:?}"
            );
            let challenge = resp.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(body["error"]["code"], code, "{method} {uri}: {body}");
        }
    }
    // Open: the health check and the metrics (the metrics helper sends no token).
    let (status, _) = h.call_as(None, Method::GET, "/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.metrics_text().await.contains("earshot_"));
}

#[tokio::test]
async fn a_revoked_token_is_refused_at_once_and_secrets_are_never_listed() {
    let h = Harness::start();
    let (status, minted) = h
        .post(
            "/v1/tokens",
            &json!({"role": "softswitch", "display_name": "sbc-1"}).to_string(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let token = minted["token"].as_str().unwrap().to_owned();
    let id = minted["id"].as_str().unwrap().to_owned();
    let (status, _) = h
        .call_as(Some(&token), Method::GET, "/v1/calls", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, listed) = h.get("/v1/tokens").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!listed.to_string().contains(&token), "{listed}");
    assert!(
        listed["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t.get("token").is_none())
    );

    let (status, revoked) = h.delete(&format!("/v1/tokens/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at_ms"].is_number(), "{revoked}");
    let (status, err) = h
        .call_as(Some(&token), Method::GET, "/v1/calls", None)
        .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        "{err}"
    );
    let (status, err) = h.delete("/v1/tokens/tok-nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    // Bad bodies.
    for body in [
        json!({"role": "root"}),
        json!({"role": "supervisor"}),
        json!({"role": "agent", "user_id": "a b"}),
        json!({"role": "admin", "extra": 1}),
    ] {
        let (status, err) = h.post("/v1/tokens", &body.to_string()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
    }
    // A token's user id is a user id of the groups (`agents::UserId`): any user can have one.
    let body = json!({"role": "agent", "user_id": "site:ag-1"});
    let (status, minted) = h.post("/v1/tokens", &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    assert_eq!(minted["user_id"], "site:ag-1", "{minted}");
}

#[tokio::test]
async fn a_supervisor_cannot_supervise_another_groups_agent() {
    let h = Harness::start();
    let sup_a = h.token("supervisor", Some("sup-a")).await;
    h.token("agent", Some("ag-1")).await;
    h.token("agent", Some("ag-2")).await;
    h.token("supervisor", Some("sup-b")).await;
    let full = json!({"listen": true, "intervene": true});
    group(&h, "grp-a", "ag-1", "sup-a", full.clone()).await;
    group(&h, "grp-b", "ag-2", "sup-b", full).await;

    let theirs = call_of(&h, "ag-2").await;
    let before = denials(&h).await.len();
    // A call sup-a cannot see answers exactly as an unknown one (no existence leak).
    let (status, err) = supervise_as(&h, &sup_a, &theirs, &own_supervision()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    let unknown = "c_00000000000000ff";
    let (unknown_status, unknown_err) = supervise_as(&h, &sup_a, unknown, &own_supervision()).await;
    assert_eq!(unknown_status, StatusCode::NOT_FOUND, "{unknown_err}");
    assert_eq!(
        err.to_string().replace(&theirs, "{id}"),
        unknown_err.to_string().replace(unknown, "{id}"),
        "another group's call and an unknown one answer alike"
    );
    let (_, sups) = h.get("/v1/supervisions").await;
    assert_eq!(sups["supervisions"], json!([]), "nothing created");
    let denied = denials(&h).await;
    assert_eq!(denied.len(), before + 1, "{denied:?}");
    let record = denied.last().unwrap();
    assert_eq!(record["actor"], "user:sup-a", "{record}");
    assert_eq!(record["action"], "supervision.denial", "{record}");
    assert_eq!(record["call_id"], theirs.as_str(), "{record}");
    assert!(
        record["detail"]
            .as_str()
            .unwrap()
            .contains("not_your_agent"),
        "{record}"
    );

    // Naming another supervisor is refused (and audited) too; the own group's agent is fine.
    let mine = call_of(&h, "ag-1").await;
    let (status, _) = supervise_as(&h, &sup_a, &mine, &common::answered_body()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(denials(&h).await.len(), before + 2);
    let (status, sup) = supervise_as(&h, &sup_a, &mine, &own_supervision()).await;
    assert_eq!(status, StatusCode::CREATED, "{sup}");
    assert_eq!(sup["supervisor_id"], "sup-a", "{sup}");
    // Admins supervise anyone.
    let (status, sup) = h
        .post(
            &format!("/v1/calls/{theirs}/supervisions"),
            &common::answered_body(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sup}");
    // …and sup-a may neither stop nor change sup-1's session on the other group's agent,
    // which answers exactly as an unknown supervision does (audited all the same).
    let id = sup["id"].as_str().unwrap();
    let unknown = "s_00000000000000ff";
    let before = denials(&h).await.len();
    for (method, body) in [
        (Method::DELETE, None),
        (Method::PATCH, Some(json!({"mode": "barge"}).to_string())),
    ] {
        let (theirs_uri, unknown_uri) = (
            format!("/v1/supervisions/{id}"),
            format!("/v1/supervisions/{unknown}"),
        );
        let answer = |uri| h.call_as(Some(&sup_a), method.clone(), uri, body.as_deref());
        let (status, err) = answer(&theirs_uri).await;
        let (unknown_status, unknown_err) = answer(&unknown_uri).await;
        assert_eq!(
            (status, unknown_status),
            (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
            "{method}: {err} / {unknown_err}"
        );
        assert_eq!(
            err.to_string().replace(id, "{id}"),
            unknown_err.to_string().replace(unknown, "{id}"),
            "{method}: another group's supervision and an unknown one answer alike"
        );
    }
    assert_eq!(
        denials(&h).await.len(),
        before + 2,
        "the attempts are audited"
    );
    let (_, still) = h.get(&format!("/v1/supervisions/{id}")).await;
    assert_eq!(still["state"], "active", "{still}");
}

#[tokio::test]
async fn listen_only_rights_allow_listening_and_refuse_whisper_audited() {
    let h = Harness::start();
    let sup = h.token("supervisor", Some("sup-l")).await;
    h.token("agent", Some("ag-1")).await;
    group(&h, "grp-a", "ag-1", "sup-l", json!({"listen": true})).await;

    let call = call_of(&h, "ag-1").await;
    let (status, session) = supervise_as(&h, &sup, &call, &own_supervision()).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(session["state"], "active", "{session}");
    assert_eq!(session["mode"], "listen", "{session}");
    let id = session["id"].as_str().unwrap().to_owned();

    let before = denials(&h).await.len();
    for mode in ["whisper", "barge", "takeover"] {
        let (status, err) = h
            .call_as(
                Some(&sup),
                Method::PATCH,
                &format!("/v1/supervisions/{id}"),
                Some(&json!({"mode": mode}).to_string()),
            )
            .await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("listen_only")),
            "{mode}: {err}"
        );
    }
    let denied = denials(&h).await;
    assert_eq!(denied.len(), before + 3, "{denied:?}");
    let whisper = &denied[before];
    assert_eq!(whisper["mode"], "whisper", "{whisper}");
    assert_eq!(whisper["supervision_id"], id.as_str(), "{whisper}");
    assert_eq!(whisper["actor"], "user:sup-l", "{whisper}");

    let (_, still) = h.get(&format!("/v1/supervisions/{id}")).await;
    assert_eq!(still["mode"], "listen", "{still}");
    // Their own session: they may stop it.
    let (status, stopped) = h
        .call_as(
            Some(&sup),
            Method::DELETE,
            &format!("/v1/supervisions/{id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stopped}");
    assert_eq!(stopped["state"], "stopped", "{stopped}");
}

/// Without a configured token the first start generates one (stored as a hash, shown once in
/// the log); later starts on the same store do not. A configured token is stored once, and a
/// revoked one stops the start.
#[test]
fn the_bootstrap_admin_token() {
    use controlplane::app::tokens::bootstrap_admin;
    use controlplane::store::{ColumnEnum as _, StoreExt as _};

    let mut cfg = common::config();
    cfg.auth.admin_token = None;
    let h = Harness::new(&cfg);
    let admins = |h: &Harness| {
        h.state
            .store()
            .read(|r| r.tokens())
            .unwrap()
            .into_iter()
            .filter(|t| t.is_active() && t.role.as_str() == "admin")
            .count()
    };
    assert_eq!(admins(&h), 1, "one generated at start");
    assert!(bootstrap_admin(&h.state, None).unwrap().is_none());
    assert_eq!(admins(&h), 1, "not generated again");

    let configured = "es_configured-admin-0123456789abcdefghijk";
    assert!(
        bootstrap_admin(&h.state, Some(configured))
            .unwrap()
            .is_none()
    );
    assert!(
        bootstrap_admin(&h.state, Some(configured))
            .unwrap()
            .is_none()
    );
    assert_eq!(admins(&h), 2, "the configured token, stored once");
    let replaced = "es_replaced-admin-0123456789abcdefghijkl";
    assert!(bootstrap_admin(&h.state, Some(replaced)).unwrap().is_none());
    assert_eq!(admins(&h), 3, "another configured token: stored too");
    assert!(bootstrap_admin(&h.state, Some("short")).is_err());

    let hash = controlplane::store::TokenHash(
        controlplane::domain::auth::Token::from_config(configured)
            .unwrap()
            .hash()
            .0,
    );
    let id = h
        .state
        .store()
        .read(|r| r.token_by_hash(&hash))
        .unwrap()
        .unwrap()
        .id;
    h.state
        .store()
        .write(|w| w.revoke_token(&id, controlplane::store::UnixMs(1)))
        .unwrap();
    let err = bootstrap_admin(&h.state, Some(configured)).unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err:#}");
}

#[test]
fn the_admin_token_comes_from_file_env_or_cli_and_is_never_serialized() {
    use clap::Parser as _;
    use controlplane::config::{Cli, Config};

    let strong = "es_from-env-0123456789abcdefghijklmnopqr";
    let env = |var: &str| (var == "EARSHOT_ADMIN_TOKEN").then(|| strong.to_owned());
    let c = Config::load(None, env, &Default::default()).unwrap();
    assert_eq!(c.auth.admin_token.as_deref(), Some(strong));
    assert!(!serde_json::to_string(&c).unwrap().contains(strong));
    assert!(!format!("{c:?}").contains(strong));

    let cli = Cli::try_parse_from(["earshotd", "--admin-token", "too-short"]).unwrap();
    let err = Config::load(None, |_| None, &cli.overrides).unwrap_err();
    assert!(err.to_string().contains("auth.admin_token"), "{err}");

    let file = Config::from_toml(
        &format!("[auth]\nadmin_token = \"{strong}\"\n"),
        std::path::Path::new("t.toml"),
    )
    .unwrap();
    assert_eq!(file.auth.admin_token.as_deref(), Some(strong));
}

/// docs/design.md §2, §4: the listen right is an input of the session's start. A supervisor of
/// the agent's group without it gets a supervision that fails `no_permission`, with its alert
/// on their own feed and the attempt audited as a denial; a supervisor of none of the agent's
/// groups is refused as before, learning nothing about the call.
#[tokio::test]
async fn without_the_listen_right_the_supervision_fails_and_outside_the_groups_it_is_refused() {
    let h = Harness::start();
    let sup = h.token("supervisor", Some("sup-n")).await;
    h.token("agent", Some("ag-1")).await;
    h.token("agent", Some("ag-2")).await;
    h.token("supervisor", Some("sup-o")).await;
    // Group admin and intervention rights, but not listening.
    group(
        &h,
        "grp-a",
        "ag-1",
        "sup-n",
        json!({"intervene": true, "admin": true}),
    )
    .await;
    group(&h, "grp-b", "ag-2", "sup-o", json!({"listen": true})).await;

    // In the agent's group, without the right: created, failed at once.
    let mine = call_of(&h, "ag-1").await;
    let before = denials(&h).await.len();
    let (status, session) = supervise_as(&h, &sup, &mine, &own_supervision()).await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    assert_eq!(
        (
            &session["state"],
            &session["failure"],
            &session["supervisor_id"]
        ),
        (&json!("failed"), &json!("no_permission"), &json!("sup-n")),
        "{session}"
    );
    assert_eq!(session["leg"]["local"], Value::Null, "no media: {session}");
    let id = session["id"].as_str().unwrap().to_owned();
    // The alert is on their own feed.
    let (status, feed) = h.call_as(Some(&sup), Method::GET, "/v1/alerts", None).await;
    assert_eq!(status, StatusCode::OK, "{feed}");
    let kinds: Vec<&Value> = feed["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["supervision_id"] == id.as_str())
        .map(|a| &a["kind"])
        .collect();
    assert_eq!(kinds, [&json!("failed_no_permission")], "{feed}");
    // Audited as a denial, once, naming the session.
    let denied = denials(&h).await;
    assert_eq!(denied.len(), before + 1, "{denied:?}");
    let record = denied.last().unwrap();
    assert_eq!(
        (
            &record["actor"],
            &record["action"],
            &record["supervision_id"],
            &record["call_id"]
        ),
        (
            &json!("user:sup-n"),
            &json!("supervision.denial"),
            &json!(id),
            &json!(mine)
        ),
        "{record}"
    );
    assert!(
        record["detail"]
            .as_str()
            .unwrap()
            .contains("failed_no_permission"),
        "{record}"
    );

    // Outside the agent's groups: today's refusal, exactly as for an unknown call.
    let theirs = call_of(&h, "ag-2").await;
    let (status, err) = supervise_as(&h, &sup, &theirs, &own_supervision()).await;
    let unknown = "c_00000000000000ff";
    let (unknown_status, unknown_err) = supervise_as(&h, &sup, unknown, &own_supervision()).await;
    assert_eq!(
        (status, unknown_status),
        (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND),
        "{err}"
    );
    assert_eq!(
        err.to_string().replace(&theirs, "{id}"),
        unknown_err.to_string().replace(unknown, "{id}"),
    );
    let denied = denials(&h).await;
    assert_eq!(denied.len(), before + 2, "{denied:?}");
    assert!(
        denied.last().unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("not_your_agent"),
        "{denied:?}"
    );
    let (_, sups) = h.get("/v1/supervisions").await;
    assert_eq!(
        sups["supervisions"].as_array().unwrap().len(),
        1,
        "only the failed one: {sups}"
    );
}

/// One rule for user ids (docs/design.md §3): a call accepts only an `agent_id` that access
/// control can name, so a call never vanishes from its agent's supervisors' view.
#[tokio::test]
async fn an_agent_id_a_call_accepts_is_one_its_supervisors_see() {
    let h = Harness::start();
    let too_long = "a".repeat(65);
    for bad in ["agent 7", "agent/7", "agent\u{e9}", too_long.as_str()] {
        let (status, err) = h
            .post("/v1/calls", &json!({"agent_id": bad}).to_string())
            .await;
        assert_eq!(
            (status, err["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_body")),
            "{bad}: {err}"
        );
    }
    let (_, calls) = h.get("/v1/calls").await;
    assert_eq!(calls["calls"], json!([]), "nothing created");

    let sup = h.token("supervisor", Some("sup-v")).await;
    h.token("agent", Some("ag.1@site")).await;
    group(&h, "grp-v", "ag.1@site", "sup-v", json!({"listen": true})).await;
    let call = call_of(&h, "ag.1@site").await;
    let (status, calls) = h.call_as(Some(&sup), Method::GET, "/v1/calls", None).await;
    assert_eq!(status, StatusCode::OK, "{calls}");
    let ids: Vec<&str> = calls["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [call.as_str()], "{calls}");
}

/// docs/ng.md, Parties: a call anchored over NG whose signalling names its agent
/// (`metadata=agent:<id>`) is that agent's call over HTTP, exactly as `agent_id` on
/// `POST /v1/calls`: `GET /v1/calls?ng_call_id=` finds it for whoever may see the agent, and
/// the agent's supervisor supervises it; another group's supervisor sees nothing.
#[tokio::test]
async fn an_ng_call_is_found_by_call_id_and_supervised_as_its_agents() {
    use controlplane::domain::anchor::{NgId, Signal};
    use dataplane::wire::g711::Codec;

    let h = Harness::start();
    let sup_a = h.token("supervisor", Some("sup-a")).await;
    let sup_b = h.token("supervisor", Some("sup-b")).await;
    h.token("agent", Some("ag-1")).await;
    h.token("agent", Some("ag-2")).await;
    let full = json!({"listen": true, "intervene": true});
    group(&h, "grp-a", "ag-1", "sup-a", full.clone()).await;
    group(&h, "grp-b", "ag-2", "sup-b", full).await;

    let ng_call_id = "1-28469@127.0.0.1";
    let anchored = h
        .state
        .ng_offer(Signal {
            call_id: NgId::parse("call-id", ng_call_id).unwrap(),
            from_tag: NgId::parse("from-tag", "28469SIPpTag091").unwrap(),
            to_tag: None,
            remote: Some("127.0.0.1:6100".parse().unwrap()),
            codecs: vec![Codec::Pcma],
            label: None,
            metadata: Some("agent:ag-1".to_owned()),
        })
        .unwrap();
    call_of(&h, "ag-1").await; // an HTTP call of the same agent, not found by the NG call-id

    let uri = format!("/v1/calls?ng_call_id={ng_call_id}");
    let (status, found) = h.call_as(Some(&sup_a), Method::GET, &uri, None).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let calls = found["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{found}");
    let call = calls[0]["id"].as_str().unwrap();
    assert_eq!(call, anchored.call.to_string());
    assert_eq!(calls[0]["agent_id"], "ag-1");
    assert_eq!(
        calls[0]["legs"]["agent"]["local"],
        anchored.local.to_string(),
        "the address the offer answered"
    );
    let (_, theirs) = h.call_as(Some(&sup_b), Method::GET, &uri, None).await;
    assert_eq!(theirs["calls"], json!([]), "another group's supervisor");
    let (_, none) = h.get("/v1/calls?ng_call_id=nope@host").await;
    assert_eq!(none["calls"], json!([]));
    let (status, err) = h.get("/v1/calls?ngcallid=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err["error"]["code"], "invalid_query", "{err}");

    let (status, _) = supervise_as(&h, &sup_b, call, &own_supervision()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not sup-b's agent");
    let (status, sup) = supervise_as(&h, &sup_a, call, &own_supervision()).await;
    assert_eq!(status, StatusCode::CREATED, "{sup}");
    assert_eq!(sup["state"], "active", "{sup}");
    assert_eq!(sup["agent_id"], "ag-1", "{sup}");
}
