//! Groups and agents through the HTTP API (docs/design.md §3, issue 4 acceptance): every group rule
//! and every agent-state transition as tables of requests, each refused request changing nothing;
//! the first of concurrent take-call requests wins; the supervisor console's views; the
//! supervision policies of groups; and the `group.*` / `agent.*` events.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::{ADMIN_TOKEN, Harness, NUMBER};
use serde_json::{Value, json};

/// Tokens of the fixture's users.
struct Fixture {
    h: Harness,
    sup1: String,
    sup2: String,
    softswitch: String,
    agents: std::collections::BTreeMap<&'static str, String>,
}

async fn put(h: &Harness, token: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    h.call_as(Some(token), Method::PUT, uri, Some(&body.to_string()))
        .await
}

async fn post(h: &Harness, token: &str, uri: &str, body: Value) -> (StatusCode, Value) {
    h.call_as(Some(token), Method::POST, uri, Some(&body.to_string()))
        .await
}

async fn get(h: &Harness, token: &str, uri: &str) -> (StatusCode, Value) {
    h.call_as(Some(token), Method::GET, uri, None).await
}

async fn ok(h: &Harness, method: Method, uri: &str, body: Value) -> Value {
    let (s, v) = h.call(method, uri, Some(&body.to_string())).await;
    assert!(s.is_success(), "{uri}: {s} {v}");
    v
}

/// Asserts that `answer` is the error `code` with `status`.
#[track_caller]
fn assert_error((s, v): &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(
        (*s, v["error"]["code"].as_str()),
        (status, Some(code)),
        "{v}"
    );
}

/// The `key` of every element of the array `v[list]`.
fn strings<'a>(v: &'a Value, list: &str, key: &str) -> Vec<&'a str> {
    v[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list}: {v}"))
        .iter()
        .map(|e| e[key].as_str().unwrap())
        .collect()
}

/// - `std` (standard): supervisor sup-1 (listen only, no group-admin right); member ag-1.
/// - `aid` (mutual aid, lock last member): sup-1 (group admin, all rights); ag-2 (may leave,
///   joined: the only one logged in), ag-3 (may leave, not joined).
/// - `fixed` (mutual aid): sup-1; ag-4 (may not leave, hence logged in).
/// - `other` (mutual aid): sup-2 (group admin); ag-5 (may leave, joined).
async fn fixture() -> Fixture {
    let h = Harness::start();
    let sup1 = h.token("supervisor", Some("sup-1")).await;
    let sup2 = h.token("supervisor", Some("sup-2")).await;
    let softswitch = h.token("softswitch", None).await;
    let mut agents = std::collections::BTreeMap::new();
    for a in ["ag-1", "ag-2", "ag-3", "ag-4", "ag-5"] {
        agents.insert(a, h.token("agent", Some(a)).await);
    }
    for (id, kind, lock) in [
        ("std", "standard", false),
        ("aid", "mutual_aid", true),
        ("fixed", "mutual_aid", false),
        ("other", "mutual_aid", false),
    ] {
        ok(
            &h,
            Method::POST,
            "/v1/groups",
            json!({"id": id, "name": format!("Group {id}"), "kind": kind, "lock_last_member": lock}),
        )
        .await;
    }
    for (group, sup, rights) in [
        ("std", "sup-1", json!({"listen": true})),
        (
            "aid",
            "sup-1",
            json!({"listen": true, "intervene": true, "admin": true}),
        ),
        ("fixed", "sup-1", json!({"listen": true})),
        ("other", "sup-2", json!({"listen": true, "admin": true})),
    ] {
        ok(
            &h,
            Method::PUT,
            &format!("/v1/groups/{group}/supervisors/{sup}"),
            rights,
        )
        .await;
    }
    for (group, member, can_leave) in [
        ("std", "ag-1", false),
        ("aid", "ag-2", true),
        ("aid", "ag-3", true),
        ("fixed", "ag-4", false),
        ("other", "ag-5", true),
    ] {
        ok(
            &h,
            Method::PUT,
            &format!("/v1/groups/{group}/members/{member}"),
            json!({"can_leave": can_leave}),
        )
        .await;
    }
    for (group, member) in [("aid", "ag-2"), ("other", "ag-5")] {
        let (s, v) = post(
            &h,
            &agents[member],
            &format!("/v1/me/groups/{group}/join"),
            json!({}),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{member} joins {group}: {v}");
    }
    Fixture {
        h,
        sup1,
        sup2,
        softswitch,
        agents,
    }
}

/// Every group as the admin sees it: what a refused request must leave unchanged.
async fn groups(h: &Harness) -> Value {
    let (s, v) = h.get("/v1/groups").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn availability(groups: &Value, group: &str, member: &str) -> String {
    groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == group)
        .and_then(|g| {
            g["members"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["user"] == member)
        })
        .map(|m| m["availability"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{member} not in {group}: {groups}"))
}

/// Who acts in a row.
#[derive(Clone, Copy, Debug)]
enum Who {
    Admin,
    Sup1,
    Sup2,
    Agent(&'static str),
}

fn token(f: &Fixture, who: Who) -> String {
    match who {
        Who::Admin => ADMIN_TOKEN.to_owned(),
        Who::Sup1 => f.sup1.clone(),
        Who::Sup2 => f.sup2.clone(),
        Who::Agent(a) => f.agents[a].clone(),
    }
}

#[tokio::test]
async fn every_group_rule_through_the_api() {
    // (what, who, path, expected status, expected code or availability after)
    type Row = (&'static str, Who, &'static str, StatusCode, &'static str);
    let rows: [Row; 17] = [
        // Standard members cannot leave or join.
        (
            "standard member leaves",
            Who::Agent("ag-1"),
            "/v1/me/groups/std/leave",
            StatusCode::CONFLICT,
            "standard_group",
        ),
        (
            "standard member joins",
            Who::Agent("ag-1"),
            "/v1/me/groups/std/join",
            StatusCode::CONFLICT,
            "standard_group",
        ),
        // can_leave = false.
        (
            "member who may not leave",
            Who::Agent("ag-4"),
            "/v1/me/groups/fixed/leave",
            StatusCode::CONFLICT,
            "member_cannot_leave",
        ),
        // Lock last member: ag-2 is the only one logged in to aid.
        (
            "last member of a locked group",
            Who::Agent("ag-2"),
            "/v1/me/groups/aid/leave",
            StatusCode::CONFLICT,
            "last_member_locked",
        ),
        (
            "joining twice",
            Who::Agent("ag-2"),
            "/v1/me/groups/aid/join",
            StatusCode::CONFLICT,
            "already_logged_in",
        ),
        (
            "joining a group one is not in",
            Who::Agent("ag-1"),
            "/v1/me/groups/aid/join",
            StatusCode::NOT_FOUND,
            "not_a_member",
        ),
        (
            "joining an unknown group",
            Who::Agent("ag-1"),
            "/v1/me/groups/nope/join",
            StatusCode::NOT_FOUND,
            "unknown_group",
        ),
        (
            "a mutual-aid member joins",
            Who::Agent("ag-3"),
            "/v1/me/groups/aid/join",
            StatusCode::OK,
            "logged_in",
        ),
        // Forced logon/logoff needs the group-admin right, over one's own groups.
        (
            "forced logoff without the admin right",
            Who::Sup1,
            "/v1/groups/std/members/ag-1/logoff",
            StatusCode::FORBIDDEN,
            "admin_right_required",
        ),
        (
            "forced logoff in another's group",
            Who::Sup1,
            "/v1/groups/other/members/ag-5/logoff",
            StatusCode::FORBIDDEN,
            "not_your_group",
        ),
        (
            "forced logoff of the last member of a locked group",
            Who::Sup1,
            "/v1/groups/aid/members/ag-2/logoff",
            StatusCode::CONFLICT,
            "last_member_locked",
        ),
        (
            "forced logon with the admin right",
            Who::Sup1,
            "/v1/groups/aid/members/ag-3/logon",
            StatusCode::OK,
            "logged_in",
        ),
        (
            "forced logoff with the admin right",
            Who::Sup2,
            "/v1/groups/other/members/ag-5/logoff",
            StatusCode::OK,
            "logged_out",
        ),
        (
            "forced logoff of a logged-out member",
            Who::Sup1,
            "/v1/groups/aid/members/ag-3/logoff",
            StatusCode::CONFLICT,
            "already_logged_out",
        ),
        (
            "the company admin forces a logon",
            Who::Admin,
            "/v1/groups/aid/members/ag-3/logon",
            StatusCode::OK,
            "logged_in",
        ),
        // Endpoint classes: agents do not force, supervisors do not use /v1/me.
        (
            "an agent forcing a logoff",
            Who::Agent("ag-3"),
            "/v1/groups/aid/members/ag-2/logoff",
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "a supervisor on the agent's own route",
            Who::Sup1,
            "/v1/me/groups/aid/join",
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ];
    for (what, who, path, status, expect) in rows {
        // Each row on a fresh fixture, so rows do not depend on each other.
        let f = fixture().await;
        let before = groups(&f.h).await;
        let (got, answer) = post(&f.h, &token(&f, who), path, json!({})).await;
        assert_eq!(got, status, "{what}: {answer}");
        let after = groups(&f.h).await;
        if status.is_success() {
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            let (group, member) = match parts.as_slice() {
                ["v1", "me", "groups", g, _] => (*g, who_user(who)),
                ["v1", "groups", g, "members", m, _] => (*g, *m),
                _ => panic!("{path}"),
            };
            assert_eq!(availability(&after, group, member), expect, "{what}");
        } else {
            assert_eq!(answer["error"]["code"], expect, "{what}: {answer}");
            assert_eq!(
                before, after,
                "{what}: a refused request changed the groups"
            );
        }
    }
}

fn who_user(who: Who) -> &'static str {
    match who {
        Who::Agent(a) => a,
        Who::Sup1 => "sup-1",
        Who::Sup2 => "sup-2",
        Who::Admin => "admin",
    }
}

#[tokio::test]
async fn concurrent_takes_of_a_ringing_call_have_exactly_one_winner() {
    let f = fixture().await;
    // A third supervisor over `aid` so that several supervisors race.
    let sup3 = f.h.token("supervisor", Some("sup-3")).await;
    ok(
        &f.h,
        Method::PUT,
        "/v1/groups/aid/supervisors/sup-3",
        json!({"listen": true}),
    )
    .await;
    let (s, v) = post(
        &f.h,
        &f.softswitch,
        "/v1/ringing",
        json!({"call_id": "sip-123", "member": "ag-2", "caller": "+441632960001"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, ringing) = get(&f.h, &f.sup1, "/v1/console/ringing-calls").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ringing["count"], 1, "{ringing}");
    assert_eq!(ringing["calls"][0]["caller"], "+441632960001");

    let h = Arc::new(f.h);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let h = h.clone();
        let t = if i % 2 == 0 {
            f.sup1.clone()
        } else {
            sup3.clone()
        };
        tasks.push(tokio::spawn(async move {
            post(&h, &t, "/v1/console/ringing-calls/sip-123/take", json!({})).await
        }));
    }
    let mut winners = 0;
    for t in tasks {
        let (s, v) = t.await.unwrap();
        match s {
            StatusCode::OK => winners += 1,
            StatusCode::CONFLICT => assert_eq!(v["error"]["code"], "already_taken", "{v}"),
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(winners, 1);
    let (_, ringing) = get(&h, &f.sup1, "/v1/console/ringing-calls").await;
    assert_eq!(ringing["count"], 0, "{ringing}");
    // A supervisor of another group may not take; a web call is never taken.
    post(
        &h,
        &f.softswitch,
        "/v1/ringing",
        json!({"call_id": "sip-124", "member": "ag-2", "caller": "1001"}),
    )
    .await;
    let refused = post(
        &h,
        &f.sup2,
        "/v1/console/ringing-calls/sip-124/take",
        json!({}),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "not_your_group");
    post(
        &h,
        &f.softswitch,
        "/v1/ringing",
        json!({"call_id": "web-1", "member": "ag-5", "caller": "web", "web": true}),
    )
    .await;
    let refused = post(
        &h,
        &f.sup2,
        "/v1/console/ringing-calls/web-1/take",
        json!({}),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "web_call_not_supervisable");
    let (_, ringing) = get(&h, &f.sup2, "/v1/console/ringing-calls").await;
    assert_eq!(ringing["count"], 0, "web calls are not listed: {ringing}");
}

#[tokio::test]
async fn the_console_shows_availability_presence_search_and_forwarding() {
    let f = fixture().await;
    let h = &f.h;
    ok(
        h,
        Method::PATCH,
        "/v1/users/ag-2",
        json!({"display_name": "Bob Smith", "phone_number": "+15550222"}),
    )
    .await;
    let (s, _) = put(
        h,
        &f.softswitch,
        "/v1/users/ag-2/presence",
        json!({"presence": "offline"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = put(
        h,
        &f.softswitch,
        "/v1/users/ag-4/forwarding",
        json!({"destination": "+15550999"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    post(
        h,
        &f.softswitch,
        "/v1/ringing",
        json!({"call_id": "c-1", "member": "ag-1", "caller": "+15550123"}),
    )
    .await;

    let (s, all) = get(h, &f.sup1, "/v1/console/members").await;
    assert_eq!(s, StatusCode::OK, "{all}");
    let rows = all["members"].as_array().unwrap();
    let row = |group: &str, user: &str| {
        rows.iter()
            .find(|m| m["group"] == group && m["user"] == user)
            .unwrap_or_else(|| panic!("{group}/{user}: {all}"))
            .clone()
    };
    assert_eq!(row("aid", "ag-2")["availability"], "logged_in");
    assert_eq!(row("aid", "ag-2")["offline_warning"], true);
    assert_eq!(row("aid", "ag-3")["availability"], "logged_out");
    assert_eq!(row("fixed", "ag-4")["availability"], "forwarded");
    assert_eq!(row("fixed", "ag-4")["destination"], "+15550999");
    assert_eq!(row("std", "ag-1")["availability"], "ringing");
    assert_eq!(row("std", "ag-1")["caller"], "+15550123");
    assert!(
        rows.iter().all(|m| m["user"] != "ag-5"),
        "another group's member shown: {all}"
    );

    let (_, ringing) = get(h, &f.sup1, "/v1/console/members?filter=ringing").await;
    assert_eq!(strings(&ringing, "members", "user"), ["ag-1"]);
    let (_, found) = get(h, &f.sup1, "/v1/console/members?search=smith").await;
    assert_eq!(strings(&found, "members", "user"), ["ag-2"]);
    let (_, found) = get(h, &f.sup1, "/v1/console/members?search=0222").await;
    assert_eq!(found["members"].as_array().unwrap().len(), 1, "{found}");
    let refused = get(h, &f.sup1, "/v1/console/members?filter=some").await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "invalid_query");

    // Cancelling forwarding: not another group's supervisor; then the member's supervisor.
    let refused = post(
        h,
        &f.sup2,
        "/v1/console/members/ag-4/cancel-forwarding",
        json!({}),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "not_your_group");
    let (s, v) = post(
        h,
        &f.sup1,
        "/v1/console/members/ag-4/cancel-forwarding",
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(availability(&groups(h).await, "fixed", "ag-4"), "logged_in");
    let refused = post(
        h,
        &f.sup1,
        "/v1/console/members/ag-4/cancel-forwarding",
        json!({}),
    )
    .await;
    assert_error(&refused, StatusCode::CONFLICT, "not_forwarded");
}

/// Reaches `kind` from `disconnected` by the agent's own allowed changes.
async fn bring_to(h: &Harness, token: &str, kind: &str) {
    let path: &[Value] = match kind {
        "disconnected" => &[],
        "available" => &[json!({"state": "available"})],
        "busy" => &[
            json!({"state": "available"}),
            json!({"state": "busy", "case": "T-1"}),
        ],
        "standby" => &[json!({"state": "standby"})],
        "pause" => &[
            json!({"state": "available"}),
            json!({"state": "pause", "reason": "lunch"}),
        ],
        _ => unreachable!(),
    };
    for step in path {
        let (s, v) = put(h, token, "/v1/me/state", step.clone()).await;
        assert_eq!(s, StatusCode::OK, "to {step}: {v}");
    }
}

fn body_of(kind: &str) -> Value {
    match kind {
        "busy" => json!({"state": "busy", "case": "T-2"}),
        "pause" => json!({"state": "pause", "reason": "training"}),
        k => json!({"state": k}),
    }
}

/// docs/design.md §3.5: the same table for the agent's own and the supervisor's forced changes.
#[tokio::test]
async fn every_agent_state_transition_own_and_forced() {
    const KINDS: [&str; 5] = ["available", "busy", "standby", "pause", "disconnected"];
    // from \ to: available, busy, standby, pause, disconnected ('=': same state).
    const TABLE: [[char; 5]; 5] = [
        ['=', 'y', 'y', 'y', 'y'], // available
        ['y', '=', 'n', 'n', 'y'], // busy
        ['y', 'n', '=', 'n', 'y'], // standby
        ['n', 'n', 'y', '=', 'y'], // pause
        ['y', 'n', 'y', 'n', '='], // disconnected
    ];
    let h = Harness::start();
    let sup = h.token("supervisor", Some("sup-t")).await;
    let outsider = h.token("supervisor", Some("sup-x")).await;
    ok(
        &h,
        Method::POST,
        "/v1/groups",
        json!({"id": "t", "name": "T"}),
    )
    .await;
    ok(
        &h,
        Method::PUT,
        "/v1/groups/t/supervisors/sup-t",
        json!({"listen": true}),
    )
    .await;
    let mut n = 0;
    for forced in [false, true] {
        for (i, from) in KINDS.iter().enumerate() {
            for (j, to) in KINDS.iter().enumerate() {
                n += 1;
                let agent = format!("ag-t{n}");
                let t = h.token("agent", Some(&agent)).await;
                ok(
                    &h,
                    Method::PUT,
                    &format!("/v1/groups/t/members/{agent}"),
                    json!({}),
                )
                .await;
                bring_to(&h, &t, from).await;
                let (_, before) = get(&h, &t, "/v1/me").await;
                let (s, v) = if forced {
                    put(&h, &sup, &format!("/v1/agents/{agent}/state"), body_of(to)).await
                } else {
                    put(&h, &t, "/v1/me/state", body_of(to)).await
                };
                let what = format!("{from} -> {to} (forced: {forced})");
                match TABLE[i][j] {
                    'y' => {
                        assert_eq!(s, StatusCode::OK, "{what}: {v}");
                        assert_eq!(v["state"], *to, "{what}: {v}");
                    }
                    c => {
                        let code = if c == '=' {
                            "state_unchanged"
                        } else {
                            "transition_refused"
                        };
                        assert_eq!(
                            (s, v["error"]["code"].as_str()),
                            (StatusCode::CONFLICT, Some(code)),
                            "{what}: {v}"
                        );
                        let (_, after) = get(&h, &t, "/v1/me").await;
                        assert_eq!(
                            before["state"], after["state"],
                            "{what}: changed on refusal"
                        );
                    }
                }
            }
        }
    }
    // A supervisor of no group of the agent may not force.
    let refused = put(
        &h,
        &outsider,
        "/v1/agents/ag-t1/state",
        json!({"state": "disconnected"}),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "not_your_group");
}

/// The events of `event_type` in the log.
fn logged(h: &Harness, event_type: &str) -> Vec<controlplane::store::Event> {
    use controlplane::store::{EventId, StoreExt as _};
    h.state
        .store()
        .read(|r| r.events_after(EventId(0), 10_000))
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == event_type)
        .collect()
}

#[tokio::test]
async fn dashboards_settings_and_private_chat() {
    let f = fixture().await;
    let h = &f.h;
    let ag2 = &f.agents["ag-2"];
    let (s, v) = put(h, ag2, "/v1/me/state", json!({"state": "available"})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.advance(90_000).await;
    let (s, v) = put(
        h,
        ag2,
        "/v1/me/state",
        json!({"state": "pause", "reason": "lunch"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    h.advance(30_000).await;

    let (s, d) = get(h, &f.sup1, "/v1/agents/ag-2").await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["state"], "pause");
    assert_eq!(d["reason"], "lunch");
    assert_eq!(d["time_in_state_ms"], 30_000);
    assert_eq!(d["connected_ms"], 120_000);
    assert_eq!(d["pause_by_reason"][0]["reason"], "lunch");
    assert_eq!(d["pause_by_reason"][0]["total_ms"], 30_000);
    assert_eq!(d["states"][0]["state"], "available");
    assert_eq!(d["states"][0]["average_ms"], 90_000);
    assert!(d["last_login_ms"].is_number(), "{d}");
    assert_eq!(d["groups"], json!(["aid"]));

    // Only the agent's supervisors (and the agent) see the dashboard.
    let refused = get(h, &f.sup2, "/v1/agents/ag-2").await;
    assert_error(&refused, StatusCode::FORBIDDEN, "not_your_group");
    let (s, _) = get(h, &f.agents["ag-3"], "/v1/agents/ag-2").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, list) = get(h, &f.sup2, "/v1/agents").await;
    assert_eq!(strings(&list, "agents", "agent"), ["ag-5"]);

    // Automatic case assignment, toggled by the supervisor.
    let (s, v) = h
        .call_as(
            Some(&f.sup1),
            Method::PATCH,
            "/v1/agents/ag-2",
            Some(r#"{"auto_assignment": false, "campaign": "Spring"}"#),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, me) = get(h, ag2, "/v1/me").await;
    assert_eq!(
        (me["auto_assignment"].as_bool(), me["campaign"].as_str()),
        (Some(false), Some("Spring"))
    );

    // Private chat: to the agent only.
    let (s, v) = post(
        h,
        &f.sup1,
        "/v1/agents/ag-2/messages",
        json!({"text": "Please call me"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let messages = logged(h, "agent.message");
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].payload["text"], "Please call me");
    assert_eq!(messages[0].scope.users, ["ag-2"]);
    assert!(
        messages[0].scope.groups.is_empty(),
        "a group's other supervisors would see it"
    );
    let refused = post(
        h,
        &f.sup2,
        "/v1/agents/ag-2/messages",
        json!({"text": "hi"}),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "not_your_group");
    let refused = post(
        h,
        &f.sup1,
        "/v1/agents/ag-2/messages",
        json!({"text": "  "}),
    )
    .await;
    assert_error(&refused, StatusCode::BAD_REQUEST, "chat_text_empty");
    assert_eq!(logged(h, "agent.message").len(), 1);

    // State changes are events, visible to the agent's groups.
    let changes = logged(h, "agent.state_changed");
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].payload["to"]["state"], "pause");
    assert_eq!(changes[1].scope.groups, ["aid"]);
}

#[tokio::test]
async fn subscriptions_notify_when_the_agent_is_on_a_service_call() {
    let f = fixture().await;
    let h = &f.h;
    let (s, v) = put(h, &f.sup1, "/v1/console/subscriptions/ag-2", json!({})).await;
    assert_eq!(
        (s, v["changed"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    let refused = put(h, &f.sup2, "/v1/console/subscriptions/ag-2", json!({})).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "not_your_group");
    let (_, subs) = get(h, &f.sup1, "/v1/console/subscriptions").await;
    assert_eq!(subs["agents"], json!(["ag-2"]));

    ok(
        h,
        Method::POST,
        "/v1/calls",
        json!({"agent_id": "ag-2", "web": true}),
    )
    .await;
    assert!(
        logged(h, "agent.on_service_call").is_empty(),
        "a web call is no service call"
    );
    let call = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    let notes = logged(h, "agent.on_service_call");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].payload["call_id"], call["id"]);
    assert_eq!(notes[0].scope.users, ["sup-1"]);

    let (s, v) = h
        .call_as(
            Some(&f.sup1),
            Method::DELETE,
            "/v1/console/subscriptions/ag-2",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    assert_eq!(logged(h, "agent.on_service_call").len(), 1);
}

#[tokio::test]
async fn groups_set_the_beep_and_the_monitors_per_agent() {
    let f = fixture().await;
    let h = &f.h;
    let v = ok(
        h,
        Method::PATCH,
        "/v1/groups/aid",
        json!({"agent_beep": "agent_beep", "max_monitors_per_agent": 1}),
    )
    .await;
    assert_eq!(
        (
            v["agent_beep"].as_str(),
            v["max_monitors_per_agent"].as_u64()
        ),
        (Some("agent_beep"), Some(1))
    );
    let call = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    let call = call["id"].as_str().unwrap();
    let (s, first) = post(
        h,
        &f.sup1,
        &format!("/v1/calls/{call}/supervisions"),
        json!({"registered_number": NUMBER, "answered": {"calling_number": NUMBER}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["beep"], true, "{first}");
    // A second monitor of the same agent, even on another call, is over the cap.
    let call2 = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    let refused = h
        .post(
            &format!("/v1/calls/{}/supervisions", call2["id"].as_str().unwrap()),
            &json!({"supervisor_id": "sup-9", "registered_number": NUMBER}).to_string(),
        )
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "monitor_limit");
    // Lifting the cap lets it through.
    ok(
        h,
        Method::PATCH,
        "/v1/groups/aid",
        json!({"max_monitors_per_agent": null}),
    )
    .await;
    let (s, v) = h
        .post(
            &format!("/v1/calls/{}/supervisions", call2["id"].as_str().unwrap()),
            &json!({"supervisor_id": "sup-9", "registered_number": NUMBER}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn the_registered_number_is_validated_and_used() {
    let f = fixture().await;
    let h = &f.h;
    let (s, v) = put(
        h,
        &f.sup1,
        "/v1/console/settings",
        json!({"registered_number": "555 0100"}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the supervisor telephone number must be a number"),
        "{v}"
    );
    let (_, v) = get(h, &f.sup1, "/v1/console/settings").await;
    assert_eq!(
        v["registered_number"],
        Value::Null,
        "a refused number was stored: {v}"
    );
    let (s, v) = put(
        h,
        &f.sup1,
        "/v1/console/settings",
        json!({"registered_number": NUMBER}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // No number in the request: the registered one. A matching calling number: active.
    let call = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    let (s, sup) = post(
        h,
        &f.sup1,
        &format!("/v1/calls/{}/supervisions", call["id"].as_str().unwrap()),
        json!({"answered": {"calling_number": NUMBER}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{sup}");
    assert_eq!(sup["state"], "active", "{sup}");
    // Another calling number: failed, supervisor number invalid.
    let call = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-3"})).await;
    let (s, sup) = post(
        h,
        &f.sup1,
        &format!("/v1/calls/{}/supervisions", call["id"].as_str().unwrap()),
        json!({"answered": {"calling_number": "+15550199"}}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{sup}");
    assert_eq!(sup["state"], "failed", "{sup}");
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let h = &f.h;
    let ag = &f.agents["ag-2"];
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(70_000));
    // (token, method, path, body, status, code)
    let rows: Vec<(&str, Method, &str, String, StatusCode, &str)> = vec![
        (
            ADMIN_TOKEN,
            Method::POST,
            "/v1/groups",
            r#"{"name": 5}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ADMIN_TOKEN,
            Method::POST,
            "/v1/groups",
            r#"{"name": "x", "colour": "red"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ADMIN_TOKEN,
            Method::POST,
            "/v1/groups",
            r#"{"name": "x", "kind": "club"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ADMIN_TOKEN,
            Method::POST,
            "/v1/groups",
            r#"{"name": "x""#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ADMIN_TOKEN,
            Method::POST,
            "/v1/groups",
            r#"{"id": "std", "name": "again"}"#.into(),
            StatusCode::CONFLICT,
            "group_exists",
        ),
        (
            ADMIN_TOKEN,
            Method::POST,
            "/v1/groups",
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            ADMIN_TOKEN,
            Method::PATCH,
            "/v1/groups/aid",
            r#"{"max_monitors_per_agent": 0}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ADMIN_TOKEN,
            Method::PATCH,
            "/v1/groups/aid",
            r#"{"agent_beep": "loud"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ADMIN_TOKEN,
            Method::PATCH,
            "/v1/groups/nope",
            r#"{"lock_last_member": true}"#.into(),
            StatusCode::NOT_FOUND,
            "unknown_group",
        ),
        (
            ADMIN_TOKEN,
            Method::PUT,
            "/v1/groups/aid/members/nobody",
            "{}".into(),
            StatusCode::NOT_FOUND,
            "unknown_user",
        ),
        (
            ADMIN_TOKEN,
            Method::PUT,
            "/v1/groups/aid/members/ag-1",
            r#"{"can_leave": "yes"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ADMIN_TOKEN,
            Method::DELETE,
            "/v1/groups/aid/supervisors/sup-1",
            String::new(),
            StatusCode::CONFLICT,
            "last_supervisor",
        ),
        (
            ADMIN_TOKEN,
            Method::PATCH,
            "/v1/users/ag-2",
            r#"{"phone_number": "12-34"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ag,
            Method::PUT,
            "/v1/me/state",
            r#"{"state": "sleeping"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ag,
            Method::PUT,
            "/v1/me/state",
            r#"{"state": "pause"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ag,
            Method::PUT,
            "/v1/me/state",
            r#"{"state": "available", "reason": "x"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            ag,
            Method::PATCH,
            "/v1/me",
            r#"{"platform": "fax"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            &f.softswitch,
            Method::PUT,
            "/v1/users/ag-2/presence",
            r#"{"presence": "asleep"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_body",
        ),
        (
            &f.softswitch,
            Method::PUT,
            "/v1/users/nobody/presence",
            r#"{"presence": "online"}"#.into(),
            StatusCode::NOT_FOUND,
            "unknown_user",
        ),
        (
            &f.softswitch,
            Method::PUT,
            "/v1/users/not%20an%20id/presence",
            r#"{"presence": "online"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_value",
        ),
        (
            &f.softswitch,
            Method::PUT,
            "/v1/users/not%20an%20id/forwarding",
            r#"{"destination": "0600000000"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_value",
        ),
        (
            &f.softswitch,
            Method::POST,
            "/v1/ringing",
            r#"{"call_id": "", "member": "ag-2", "caller": "1"}"#.into(),
            StatusCode::BAD_REQUEST,
            "invalid_value",
        ),
        (
            &f.softswitch,
            Method::DELETE,
            "/v1/ringing/never",
            String::new(),
            StatusCode::NOT_FOUND,
            "unknown_call",
        ),
        (
            &f.sup1,
            Method::POST,
            "/v1/console/ringing-calls/never/take",
            "{}".into(),
            StatusCode::NOT_FOUND,
            "unknown_call",
        ),
    ];
    for (token, method, path, body, status, code) in rows {
        let before = (groups(h).await, get(h, ag, "/v1/me").await.1);
        let body = (!body.is_empty()).then_some(body);
        let (s, v) = h
            .call_as(Some(token), method.clone(), path, body.as_deref())
            .await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{method} {path}: {v}"
        );
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
        let after = (groups(h).await, get(h, ag, "/v1/me").await.1);
        assert_eq!(before.0, after.0, "{method} {path} changed the groups");
        assert_eq!(
            before.1["state"], after.1["state"],
            "{method} {path} changed the agent"
        );
    }
}

/// Acknowledged group and agent changes are in the database: a new process on it sees them.
#[tokio::test]
async fn groups_and_agents_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::config();
    config.store.path = dir.path().join("earshot.db");
    let ag2;
    {
        let h = Harness::new(&config);
        h.token("supervisor", Some("sup-1")).await;
        ag2 = h.token("agent", Some("ag-2")).await;
        ok(
            &h,
            Method::POST,
            "/v1/groups",
            json!({"id": "aid", "name": "Aid", "kind": "mutual_aid", "max_monitors_per_agent": 2}),
        )
        .await;
        ok(
            &h,
            Method::PUT,
            "/v1/groups/aid/supervisors/sup-1",
            json!({"listen": true, "admin": true}),
        )
        .await;
        ok(
            &h,
            Method::PUT,
            "/v1/groups/aid/members/ag-2",
            json!({"can_leave": true}),
        )
        .await;
        let (s, _) = post(&h, &ag2, "/v1/me/groups/aid/join", json!({})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = put(&h, &ag2, "/v1/me/state", json!({"state": "standby"})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = h
            .call(Method::PUT, "/v1/console/subscriptions/ag-2", Some("{}"))
            .await;
        assert_eq!(
            s,
            StatusCode::FORBIDDEN,
            "the bootstrap admin names no user"
        );
    }
    let h = Harness::new(&config);
    let g = groups(&h).await;
    assert_eq!(availability(&g, "aid", "ag-2"), "logged_in", "{g}");
    assert_eq!(g["groups"][0]["max_monitors_per_agent"], 2);
    assert_eq!(g["groups"][0]["supervisors"][0]["admin"], true);
    let (s, me) = get(&h, &ag2, "/v1/me").await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["state"], "standby");
    assert!(me["last_login_ms"].is_number(), "{me}");
}

/// docs/design.md §2.7: a persistent supervision follows the agent to their next calls, only with a
/// grant; revoking the grant ends the following.
#[tokio::test]
async fn persistent_supervision_follows_the_agent_with_a_grant() {
    let f = fixture().await;
    let h = &f.h;
    let start = json!({"persistent": true, "registered_number": NUMBER,
                       "answered": {"calling_number": NUMBER}});
    let c1 = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    let c1 = c1["id"].as_str().unwrap();
    let refused = post(
        h,
        &f.sup1,
        &format!("/v1/calls/{c1}/supervisions"),
        start.clone(),
    )
    .await;
    assert_error(&refused, StatusCode::FORBIDDEN, "grant_required");
    let (_, audit) = h.get("/v1/audit").await;
    assert!(
        audit["audit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["outcome"] == "denied" && a["call_id"] == c1),
        "the refusal is audited: {audit}"
    );

    let grant = ok(
        h,
        Method::POST,
        "/v1/grants",
        json!({"supervisor_id": "sup-1", "agent_id": "ag-2"}),
    )
    .await;
    let refused = h
        .post(
            "/v1/grants",
            &json!({"supervisor_id": "sup-1", "agent_id": "ag-2"}).to_string(),
        )
        .await;
    assert_error(&refused, StatusCode::CONFLICT, "conflict");
    let (s, sup) = post(
        h,
        &f.sup1,
        &format!("/v1/calls/{c1}/supervisions"),
        start.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{sup}");
    assert_eq!(
        (sup["state"].as_str(), sup["persistent"].as_bool()),
        (Some("active"), Some(true)),
        "{sup}"
    );
    let id = sup["id"].as_str().unwrap().to_owned();

    // The call ends: the session waits for the agent's next call, its leg still up.
    ok(
        h,
        Method::POST,
        &format!("/v1/calls/{c1}/events"),
        json!({"event": "hangup", "party": "agent"}),
    )
    .await;
    let (_, sup) = h.get(&format!("/v1/supervisions/{id}")).await;
    assert_eq!(sup["state"], "no_call", "{sup}");
    // A web call is not followed; the next business call is.
    ok(
        h,
        Method::POST,
        "/v1/calls",
        json!({"agent_id": "ag-2", "web": true}),
    )
    .await;
    let (_, sup) = h.get(&format!("/v1/supervisions/{id}")).await;
    assert_eq!(sup["state"], "no_call", "{sup}");
    let c2 = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    let (_, sup) = h.get(&format!("/v1/supervisions/{id}")).await;
    assert_eq!(
        (sup["state"].as_str(), sup["call_id"].as_str()),
        (Some("active"), c2["id"].as_str()),
        "{sup}"
    );
    assert!(sup["leg"]["local"].is_string(), "{sup}");
    let (_, alerts) = h.get(&format!("/v1/supervisions/{id}/alerts")).await;
    let kinds = strings(&alerts, "alerts", "kind");
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "monitoring_initiated")
            .count(),
        2,
        "{kinds:?}"
    );

    // Revoked: the next call ends the following (no permission).
    let c2 = c2["id"].as_str().unwrap();
    ok(
        h,
        Method::POST,
        &format!("/v1/calls/{c2}/events"),
        json!({"event": "hangup", "party": "agent"}),
    )
    .await;
    ok(
        h,
        Method::DELETE,
        &format!("/v1/grants/{}", grant["id"]),
        json!(null),
    )
    .await;
    ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    let (_, sup) = h.get(&format!("/v1/supervisions/{id}")).await;
    assert_eq!(
        (sup["state"].as_str(), sup["failure"].as_str()),
        (Some("failed"), Some("no_permission")),
        "{sup}"
    );
}

/// docs/design.md §4.4: reads are scoped. A supervisor reads the calls and supervisions of the
/// agents in their groups (and their own supervisions), an agent their own; the rest answers 404.
#[tokio::test]
async fn reads_are_scoped_to_what_the_caller_may_see() {
    let f = fixture().await;
    let h = &f.h;
    let c2 = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-2"})).await;
    let c5 = ok(h, Method::POST, "/v1/calls", json!({"agent_id": "ag-5"})).await;
    let (c2, c5) = (c2["id"].as_str().unwrap(), c5["id"].as_str().unwrap());
    let sup = ok(
        h,
        Method::POST,
        &format!("/v1/calls/{c2}/supervisions"),
        json!({"supervisor_id": "sup-9", "registered_number": NUMBER,
               "answered": {"calling_number": NUMBER}}),
    )
    .await;
    let sup = sup["id"].as_str().unwrap();
    // (token, calls seen, may read the supervision)
    let rows = [
        (ADMIN_TOKEN.to_owned(), vec![c2, c5], true),
        (f.softswitch.clone(), vec![c2, c5], true),
        (f.sup1.clone(), vec![c2], true),
        (f.sup2.clone(), vec![c5], false),
        (f.agents["ag-2"].clone(), vec![c2], true),
        (f.agents["ag-5"].clone(), vec![c5], false),
    ];
    for (token, mut calls, sees_sup) in rows {
        let (_, list) = get(h, &token, "/v1/calls").await;
        let mut seen = strings(&list, "calls", "id");
        seen.sort();
        calls.sort();
        assert_eq!(seen, calls, "{list}");
        for c in [c2, c5] {
            let (s, _) = get(h, &token, &format!("/v1/calls/{c}")).await;
            let visible = calls.contains(&c);
            assert_eq!(s.is_success(), visible, "{c}: {s}");
            if !visible {
                assert_eq!(s, StatusCode::NOT_FOUND);
            }
        }
        let (_, sups) = get(h, &token, "/v1/supervisions").await;
        assert_eq!(
            strings(&sups, "supervisions", "id").len(),
            usize::from(sees_sup),
            "{sups}"
        );
        let (s, _) = get(h, &token, &format!("/v1/supervisions/{sup}")).await;
        assert_eq!(s.is_success(), sees_sup);
        let (s, _) = get(h, &token, &format!("/v1/supervisions/{sup}/alerts")).await;
        assert_eq!(s.is_success(), sees_sup);
        let (_, alerts) = get(h, &token, "/v1/alerts").await;
        assert_eq!(
            !alerts["alerts"].as_array().unwrap().is_empty(),
            sees_sup,
            "{alerts}"
        );
    }
}
