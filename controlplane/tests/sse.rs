//! `GET /v1/events` (docs/api.md, Events): the stream delivers the logged events in order,
//! resumes with `Last-Event-ID` (or `?after=`) without gaps or duplicates, continues live,
//! filters by what the caller may see, refuses a caller without a token, and ends when its
//! token is revoked. Many streams share one feed: each gets every event once, in order, and
//! one too slow for the feed's ring catches up from the store.

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ADMIN_TOKEN, Harness, NUMBER};
use controlplane::app::feed::RING_PAGES;
use controlplane::store::{EventId, EventScope, NewEvent, StoreExt as _, UnixMs};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

/// One SSE message.
#[derive(Debug, Clone, PartialEq)]
struct Message {
    id: i64,
    event: String,
    data: Value,
}

/// An open stream, read frame by frame.
struct Stream {
    body: Body,
    buf: String,
}

impl Stream {
    /// Opens `/v1/events` + `query` with `token` and, if given, `Last-Event-ID`.
    async fn open(h: &Harness, token: &str, query: &str, last_id: Option<i64>) -> Stream {
        let mut req = Request::get(format!("/v1/events{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let resp = h
            .app
            .clone()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()[header::CONTENT_TYPE].to_str().unwrap(),
            "text/event-stream"
        );
        Stream {
            body: resp.into_body(),
            buf: String::new(),
        }
    }

    /// The next message, or `None` when none comes within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Message> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (None, None, None);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = Some(v.parse::<i64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str::<Value>(v).unwrap());
                    }
                }
                match (id, event, data) {
                    (Some(id), Some(event), Some(data)) => {
                        return Some(Message { id, event, data });
                    }
                    // A keep-alive comment.
                    (None, None, None) => continue,
                    other => panic!("incomplete SSE message {block:?}: {other:?}"),
                }
            }
            let frame = tokio::time::timeout(wait, self.body.frame()).await.ok()?;
            let frame = frame.expect("the stream ended").unwrap();
            if let Ok(data) = frame.into_data() {
                self.buf.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    /// Whether the stream ends (its body finishes) within `wait`, reading whatever comes
    /// before that.
    async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.body.frame()).await {
                Err(_) => return false,
                Ok(None) => return true,
                Ok(Some(frame)) => {
                    if let Ok(data) = frame.unwrap().into_data() {
                        self.buf.push_str(std::str::from_utf8(&data).unwrap());
                    }
                }
            }
        }
    }

    /// Every message until none comes for a while.
    async fn drain(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = self.next(Duration::from_millis(500)).await {
            out.push(m);
        }
        out
    }

    /// Exactly `n` messages (each within a few seconds).
    async fn take(&mut self, n: usize) -> Vec<Message> {
        let mut out = Vec::new();
        for _ in 0..n {
            let m = self.next(Duration::from_secs(5)).await;
            out.push(m.unwrap_or_else(|| panic!("only {} of {n} messages: {out:?}", out.len())));
        }
        out
    }
}

/// The store's log after `after`, as the stream should show it to an admin.
fn logged_after(h: &Harness, after: i64) -> Vec<Message> {
    h.state
        .store()
        .read(|r| r.events_after(EventId(after), 1000))
        .unwrap()
        .into_iter()
        .map(|e| Message {
            id: e.id.0,
            event: e.event_type,
            data: e.payload,
        })
        .collect()
}

fn last_logged(h: &Harness) -> i64 {
    h.state
        .store()
        .read(|r| r.last_event_id())
        .unwrap()
        .map_or(0, |id| id.0)
}

fn assert_increasing(messages: &[Message]) {
    for pair in messages.windows(2) {
        assert!(pair[0].id < pair[1].id, "ids not increasing: {messages:#?}");
    }
}

/// A call of `agent`; a supervision by `sup-1` answered at once; a mode change; hold (an
/// alert). Returns (call, supervision).
async fn scenario(h: &Harness, agent: &str) -> (String, String) {
    let (s, call) = h
        .post("/v1/calls", &json!({"agent_id": agent}).to_string())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let call = call["id"].as_str().unwrap().to_owned();
    let (s, sup) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &json!({"supervisor_id": "sup-1", "registered_number": NUMBER}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sup}");
    let sup = sup["id"].as_str().unwrap().to_owned();
    let events = format!("/v1/supervisions/{sup}/events");
    for body in [
        json!({"event": "ringing"}),
        json!({"event": "answered", "calling_number": NUMBER}),
    ] {
        let (s, v) = h.post(&events, &body.to_string()).await;
        assert_eq!(s, StatusCode::OK, "{body}: {v}");
    }
    let (s, v) = h
        .patch(
            &format!("/v1/supervisions/{sup}"),
            &json!({"mode": "whisper"}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h
        .post(
            &format!("/v1/calls/{call}/events"),
            &json!({"event": "hold"}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    (call, sup)
}

#[tokio::test]
async fn events_arrive_live_in_order() {
    let h = Harness::start();
    // Something logged before the stream opens is not replayed: it starts at the live tail.
    h.new_call().await;
    let tail = last_logged(&h);
    assert!(tail > 0);
    let mut stream = Stream::open(&h, ADMIN_TOKEN, "", None).await;

    let (call, sup) = scenario(&h, "ag-1").await;
    let logged = logged_after(&h, tail);
    let got = stream.take(logged.len()).await;
    assert_eq!(got, logged, "the stream is the log after the tail");
    assert_increasing(&got);
    assert!(stream.drain().await.is_empty(), "nothing more");

    let types: Vec<&str> = got.iter().map(|m| m.event.as_str()).collect();
    for prefix in ["call.", "supervision.", "alert."] {
        assert!(
            types.iter().any(|t| t.starts_with(prefix)),
            "no {prefix}* event in {types:?}"
        );
    }
    assert!(
        got.iter().any(
            |m| m.event.starts_with("call.") && m.data["call_id"] == call.as_str()
                || m.data["id"] == call.as_str()
        ),
        "no event of the call: {got:#?}"
    );
    assert!(
        got.iter().any(
            |m| m.event.starts_with("supervision.") && m.data["supervision_id"] == sup.as_str()
        ),
        "no event of the supervision: {got:#?}"
    );
    let supervision_first = types.iter().position(|t| t.starts_with("supervision."));
    let alert_first = types.iter().position(|t| t.starts_with("alert."));
    assert!(
        supervision_first < alert_first,
        "the hold alert comes after the supervision started: {types:?}"
    );
}

#[tokio::test]
async fn last_event_id_resumes_exactly_after_it() {
    let h = Harness::start();
    let (call, _) = scenario(&h, "ag-1").await;
    let all = logged_after(&h, 0);
    assert!(all.len() >= 4, "{all:#?}");
    let n = all[all.len() / 2].id;
    let expected: Vec<Message> = all.iter().filter(|m| m.id > n).cloned().collect();

    // Replayed from the store: exactly the events after n, in order, no duplicates…
    let mut stream = Stream::open(&h, ADMIN_TOKEN, "", Some(n)).await;
    let got = stream.take(expected.len()).await;
    assert_eq!(got, expected);
    assert!(stream.drain().await.is_empty(), "no duplicates");

    // …then live.
    let before = last_logged(&h);
    let (s, v) = h
        .post(
            &format!("/v1/calls/{call}/events"),
            r#"{"event": "resume"}"#,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let live = logged_after(&h, before);
    assert!(!live.is_empty());
    assert_eq!(stream.take(live.len()).await, live);

    // `?after=` is the same for clients that cannot set headers; the header wins over it.
    let mut by_query = Stream::open(&h, ADMIN_TOKEN, &format!("?after={n}"), None).await;
    let all_after_n = logged_after(&h, n);
    assert_eq!(by_query.take(all_after_n.len()).await, all_after_n);
    let last = all_after_n.last().unwrap().id;
    let mut both = Stream::open(&h, ADMIN_TOKEN, "?after=0", Some(last)).await;
    assert!(
        both.drain().await.is_empty(),
        "Last-Event-ID wins over ?after"
    );

    // Resuming at the very end replays nothing.
    let mut at_end = Stream::open(&h, ADMIN_TOKEN, "", Some(last_logged(&h))).await;
    assert!(at_end.drain().await.is_empty());
}

#[tokio::test]
async fn callers_see_only_their_events() {
    let h = Harness::start();
    let ag1 = h.token("agent", Some("ag-1")).await;
    let ag2 = h.token("agent", Some("ag-2")).await;
    let sup1 = h.token("supervisor", Some("sup-1")).await;
    let sup_other = h.token("supervisor", Some("sup-9")).await;
    let softswitch = h.token("softswitch", None).await;

    // A call of no agent, besides.
    h.new_call().await;
    let (s, own) = h
        .post("/v1/calls", &json!({"agent_id": "ag-1"}).to_string())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{own}");
    let own = own["id"].as_str().unwrap().to_owned();
    let (theirs, sup) = scenario(&h, "ag-2").await;
    let all = logged_after(&h, 0);

    let mentions = |m: &Message, id: &str| m.data.to_string().contains(id);

    // ag-1: its own call's events, nothing of ag-2's call or supervision.
    let seen = Stream::open(&h, &ag1, "?after=0", None).await.drain().await;
    assert!(seen.iter().any(|m| mentions(m, &own)), "{seen:#?}");
    assert!(
        !seen.iter().any(|m| mentions(m, &theirs)
            || mentions(m, &sup)
            || m.event.starts_with("supervision.")),
        "ag-1 sees another agent's events: {seen:#?}"
    );
    assert_increasing(&seen);

    // ag-2: the supervision of its call and its alerts.
    let seen = Stream::open(&h, &ag2, "?after=0", None).await.drain().await;
    assert!(
        seen.iter()
            .any(|m| m.event.starts_with("supervision.") && mentions(m, &sup))
    );
    assert!(
        seen.iter().any(|m| m.event.starts_with("alert.")),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|m| mentions(m, &own)), "{seen:#?}");

    // sup-1 sees its supervision; a supervisor with no scope over it sees none of it.
    let seen = Stream::open(&h, &sup1, "?after=0", None)
        .await
        .drain()
        .await;
    assert!(seen.iter().any(|m| mentions(m, &sup)), "{seen:#?}");
    let seen = Stream::open(&h, &sup_other, "?after=0", None)
        .await
        .drain()
        .await;
    assert!(!seen.iter().any(|m| mentions(m, &sup)), "{seen:#?}");

    // A softswitch sees everything, like the admin.
    let seen = Stream::open(&h, &softswitch, "?after=0", None)
        .await
        .take(all.len())
        .await;
    assert_eq!(seen, all);
}

#[tokio::test]
async fn a_supervisor_sees_the_events_of_their_groups() {
    let h = Harness::start();
    let sup_a = h.token("supervisor", Some("sup-a")).await;
    let ag_1 = h.token("agent", Some("ag-1")).await;
    let (s, g) = h
        .post(
            "/v1/groups",
            &json!({"id": "grp-a", "name": "grp-a"}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    for (uri, body) in [
        (
            "/v1/groups/grp-a/supervisors/sup-a",
            json!({"listen": true}),
        ),
        ("/v1/groups/grp-a/members/ag-1", json!({})),
    ] {
        let (s, r) = h.call(Method::PUT, uri, Some(&body.to_string())).await;
        assert_eq!(s, StatusCode::OK, "{uri}: {r}");
    }
    let mut sup_stream = Stream::open(&h, &sup_a, "", None).await;
    let mut agent_stream = Stream::open(&h, &ag_1, "", None).await;

    // The API scopes its events to users; group scopes come from the restart recovery. Append
    // such events directly (through the state's store: the streams wake up as for any commit).
    let append = |n: i64, groups: &[&str], users: &[&str]| {
        h.state
            .store()
            .write(|w| {
                w.append_event(&NewEvent {
                    event_type: "supervision.aborted".to_owned(),
                    payload: json!({"n": n}),
                    scope: EventScope {
                        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                        users: users.iter().map(|u| (*u).to_owned()).collect(),
                    },
                    at: UnixMs(0),
                })
            })
            .unwrap()
            .0
    };
    let in_group = append(1, &["grp-a"], &[]);
    append(2, &["grp-b"], &["sup-b"]);
    let to_sup = append(3, &[], &["sup-a"]);
    append(4, &[], &[]);
    let to_agent = append(5, &["grp-b"], &["ag-1"]);

    let seen: Vec<i64> = sup_stream.drain().await.iter().map(|m| m.id).collect();
    assert_eq!(seen, [in_group, to_sup]);
    // An agent sees only what names them, not their groups' events.
    let seen: Vec<i64> = agent_stream.drain().await.iter().map(|m| m.id).collect();
    assert_eq!(seen, [to_agent]);
}

/// The feed hands a supervisor's stream the events of the groups they see as the directory is
/// when the events go out: a stream opened before its user was given a group gets that group's
/// later events, and a stream passed over by pages it may see nothing of still gets what follows
/// them, in order and once.
#[tokio::test]
async fn a_supervisor_stream_follows_a_change_of_their_groups() {
    let h = Harness::start();
    let sup_c = h.token("supervisor", Some("sup-c")).await;
    let (s, g) = h
        .post(
            "/v1/groups",
            &json!({"id": "grp-c", "name": "grp-c"}).to_string(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{g}");
    let mut stream = Stream::open(&h, &sup_c, "", None).await;
    let mut admin = Stream::open(&h, ADMIN_TOKEN, "", None).await;
    let append = |n: i64, groups: &[&str], users: &[&str]| {
        h.state
            .store()
            .write(|w| {
                w.append_event(&NewEvent {
                    event_type: "supervision.aborted".to_owned(),
                    payload: json!({"n": n}),
                    scope: EventScope {
                        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                        users: users.iter().map(|u| (*u).to_owned()).collect(),
                    },
                    at: UnixMs(0),
                })
            })
            .unwrap()
            .0
    };
    let before = append(1, &["grp-c"], &[]);
    let marker = append(4, &[], &["sup-c"]);
    // Handed out (the admin's stream got it) before sup-c supervises grp-c; sup-c's stream is
    // past it once it has the event after it, and it did not get it.
    let handed: Vec<i64> = admin.take(2).await.iter().map(|m| m.id).collect();
    assert_eq!(handed, [before, marker]);
    let first: Vec<i64> = stream.take(1).await.iter().map(|m| m.id).collect();
    assert_eq!(first, [marker], "an event of a group not yet theirs");
    let (s, r) = h
        .call(
            Method::PUT,
            "/v1/groups/grp-c/supervisors/sup-c",
            Some(&json!({"listen": true}).to_string()),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{r}");
    let in_group = append(2, &["grp-c"], &[]);
    // Pages this stream may see nothing of.
    for n in 0..20 {
        append(10 + n, &["grp-other"], &["someone-else"]);
    }
    let to_sup = append(3, &[], &["sup-c"]);

    let seen: Vec<i64> = stream.drain().await.iter().map(|m| m.id).collect();
    assert!(
        !seen.contains(&before),
        "an event of a group not yet theirs"
    );
    assert!(seen.contains(&in_group), "{seen:?}");
    assert_eq!(seen.last(), Some(&to_sup), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "in order, once: {seen:?}"
    );
}

#[tokio::test]
async fn refused_without_a_token_or_with_a_bad_resume_point() {
    let h = Harness::start();
    // Sent as is (the harness's `send` would add the admin's token).
    let status_of = |token: Option<&str>, uri: &str, last_id: Option<&str>| {
        let mut req = Request::get(uri.to_owned());
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let app = h.app.clone();
        async move {
            let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            resp.status()
        }
    };
    assert_eq!(
        status_of(None, "/v1/events", None).await,
        StatusCode::UNAUTHORIZED
    );
    for (uri, last_id) in [
        ("/v1/events?after=-1", None),
        ("/v1/events?since=3", None),
        ("/v1/events", Some("abc")),
    ] {
        assert_eq!(
            status_of(Some(ADMIN_TOKEN), uri, last_id).await,
            StatusCode::BAD_REQUEST,
            "{uri} {last_id:?}"
        );
    }
}

/// Appends an event every stream may see, straight to the state's store (the feed wakes as for
/// any commit); returns its id.
fn append(h: &Harness, n: usize) -> i64 {
    append_to(&h.state, n)
}

fn append_to(state: &controlplane::AppState, n: usize) -> i64 {
    state
        .store()
        .write(|w| {
            w.append_event(&NewEvent {
                event_type: "test.burst".to_owned(),
                payload: json!({"n": n}),
                scope: EventScope::default(),
                at: UnixMs(0),
            })
        })
        .unwrap()
        .0
}

#[tokio::test]
async fn revoking_a_token_ends_its_streams_and_no_other() {
    let h = Harness::start();
    let (s, minted) = h
        .post("/v1/tokens", &json!({"role": "admin"}).to_string())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{minted}");
    let (revoked_id, revoked) = (
        minted["id"].as_str().unwrap().to_owned(),
        minted["token"].as_str().unwrap().to_owned(),
    );
    let sup = h.token("supervisor", Some("sup-1")).await;
    let mut doomed = Stream::open(&h, &revoked, "", None).await;
    let mut doomed_too = Stream::open(&h, &revoked, "?after=0", None).await;
    let mut other = Stream::open(&h, ADMIN_TOKEN, "", None).await;
    let mut other_sup = Stream::open(&h, &sup, "", None).await;

    // Both deliver while the token holds.
    let before = last_logged(&h);
    h.new_call().await;
    let logged = logged_after(&h, before);
    assert_eq!(doomed.take(logged.len()).await, logged);
    assert_eq!(other.take(logged.len()).await, logged);

    let (s, v) = h.delete(&format!("/v1/tokens/{revoked_id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Once the revocation is answered, its streams end (a bounded wait, not a speed check):
    // the one waiting at the live tail and the one still replaying the log.
    assert!(
        doomed.ends_within(Duration::from_secs(1)).await,
        "the revoked token's stream still open 1 s after the revocation"
    );
    assert!(
        doomed_too.ends_within(Duration::from_secs(1)).await,
        "the revoked token's replaying stream still open 1 s after the revocation"
    );

    // Another token's streams keep delivering.
    let before = last_logged(&h);
    let (s, call) = h
        .post("/v1/calls", &json!({"agent_id": "ag-1"}).to_string())
        .await;
    assert_eq!(s, StatusCode::CREATED, "{call}");
    let logged = logged_after(&h, before);
    assert_eq!(other.take(logged.len()).await, logged);
    assert!(!other.ends_within(Duration::from_millis(300)).await);
    // The supervisor's stream also saw the revocation go by without ending.
    assert!(!other_sup.ends_within(Duration::from_millis(300)).await);
    // A new request with the revoked token is refused.
    let resp = h
        .respond(Some(&revoked), Method::GET, "/v1/events", None)
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn many_streams_each_get_every_event_once_in_order() {
    const STREAMS: usize = 300;
    /// An RTP and an RTCP port per leg, two legs a call, one more per supervision (every
    /// third call): the harness has `common::PORTS` (40) ports.
    const CALLS: usize = 6;
    /// Events appended straight to the store meanwhile, from another thread.
    const APPENDED: usize = 200;
    let h = Harness::start();
    let sup = h.token("supervisor", Some("sup-1")).await;
    let tail = last_logged(&h);
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        streams.push(Stream::open(&h, ADMIN_TOKEN, "", None).await);
    }
    // A supervisor's stream among them sees only the events that name them.
    let mut sup_stream = Stream::open(&h, &sup, "", None).await;

    // A burst of concurrent writes: calls, and supervisions of some of them by sup-1, while
    // another thread appends events.
    let state = h.state.clone();
    let appender = tokio::task::spawn_blocking(move || {
        for n in 0..APPENDED {
            append_to(&state, n);
        }
    });
    let h = &h;
    let calls = futures_util::future::join_all((0..CALLS).map(|i| {
        let agent = format!("ag-{i}");
        async move {
            let (s, call) = h
                .post("/v1/calls", &json!({"agent_id": agent}).to_string())
                .await;
            assert_eq!(s, StatusCode::CREATED, "{call}");
            call["id"].as_str().unwrap().to_owned()
        }
    }))
    .await;
    futures_util::future::join_all(calls.iter().step_by(3).map(|call| h.new_supervision(call)))
        .await;
    appender.await.unwrap();

    let logged = logged_after(h, tail);
    assert!(logged.len() >= CALLS + APPENDED, "{}", logged.len());
    let got = futures_util::future::join_all(
        streams
            .iter_mut()
            .map(|s| async { s.take(logged.len()).await }),
    )
    .await;
    for (i, got) in got.iter().enumerate() {
        assert_eq!(got, &logged, "stream {i} differs from the log");
    }
    let extra = futures_util::future::join_all(streams.iter_mut().map(|s| s.drain())).await;
    assert!(
        extra.iter().all(Vec::is_empty),
        "a stream repeated an event"
    );
    // The supervisor's: the events whose scope names them, in order.
    let theirs: Vec<Message> = h
        .state
        .store()
        .read(|r| r.events_after(EventId(tail), 10_000))
        .unwrap()
        .into_iter()
        .filter(|e| e.scope.users.iter().any(|u| u == "sup-1"))
        .map(|e| Message {
            id: e.id.0,
            event: e.event_type,
            data: e.payload,
        })
        .collect();
    assert!(!theirs.is_empty());
    assert_eq!(
        sup_stream.drain().await,
        theirs,
        "the supervisor's stream is the log's events naming them"
    );
}

#[tokio::test]
async fn a_stream_left_behind_by_the_feed_catches_up_from_the_store() {
    let h = Harness::start();
    let tail = last_logged(&h);
    // Not read while the log grows past the feed's ring.
    let mut lagging = Stream::open(&h, ADMIN_TOKEN, "", None).await;
    let mut reader = Stream::open(&h, ADMIN_TOKEN, "", None).await;
    // One event at a time, each read by `reader` before the next is written, so each is a
    // page of its own: more pages than the ring holds go by while `lagging` sleeps.
    let count = RING_PAGES + 50;
    for n in 0..count {
        let id = append(&h, n);
        assert_eq!(reader.take(1).await[0].id, id);
    }
    let logged = logged_after(&h, tail);
    assert_eq!(logged.len(), count);
    let got = lagging.take(count).await;
    assert_eq!(got, logged, "the lagging stream lost or repeated events");
    // Then it takes the live feed again.
    let id = append(&h, count);
    let got = lagging.take(1).await;
    assert_eq!(got[0].id, id);
    assert!(lagging.drain().await.is_empty(), "no duplicates");
}
