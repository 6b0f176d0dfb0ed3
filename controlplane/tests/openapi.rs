//! The OpenAPI document (`GET /openapi.json`) against the code (issue 4): it is OpenAPI
//! 3.1-shaped and every `$ref` resolves; every operation in it answers in the router; every
//! route of the source is in it (axum cannot list its routes, so the `.route(…)` calls are read
//! from the source); the roles it names per operation are exactly those the route's guard lets
//! through; what the API answers matches the documented statuses, schemas and error codes; and
//! `/docs` loads nothing from outside the appliance.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, Response, StatusCode, header};
use common::{ADMIN_TOKEN, Harness, NUMBER};
use controlplane::domain::auth::{self, EndpointClass, Role};
use controlplane::http::openapi::{DOCS_PAGE, DOCUMENT};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

// ---- the document ----

fn doc() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(&DOCUMENT).expect("openapi.json is JSON"))
}

/// The target of a local `$ref` (`#/components/…`).
fn pointer(reference: &str) -> Option<&'static Value> {
    doc().pointer(reference.strip_prefix('#')?)
}

/// `v`, its `$ref`s followed.
fn resolve(v: &'static Value) -> &'static Value {
    let mut v = v;
    for _ in 0..16 {
        match v.get("$ref").and_then(Value::as_str) {
            Some(r) => v = pointer(r).unwrap_or_else(|| panic!("{r} does not resolve")),
            None => return v,
        }
    }
    panic!("a $ref cycle at {v}")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// One operation of the document.
struct Op {
    method: Method,
    path: &'static str,
    op: &'static Value,
}

impl Op {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The roles that may call it; `None`: no token needed.
    fn roles(&self) -> Option<BTreeSet<&'static str>> {
        if self.op.get("security") == Some(&json!([])) {
            return None;
        }
        let roles = self.op["x-roles"]
            .as_array()
            .unwrap_or_else(|| panic!("{}: a secured operation without x-roles", self.name()));
        Some(roles.iter().map(|r| r.as_str().unwrap()).collect())
    }

    fn has_body(&self) -> bool {
        self.op.get("requestBody").is_some()
    }

    /// The path with each parameter replaced by its documented example.
    fn example_uri(&self) -> String {
        let mut uri = self.path.to_owned();
        for p in self.op["parameters"].as_array().into_iter().flatten() {
            let p = resolve(p);
            if p["in"] == "path" {
                let example = match &p["example"] {
                    Value::String(s) => s.clone(),
                    Value::Null => "x".to_owned(),
                    other => other.to_string(),
                };
                uri = uri.replace(&format!("{{{}}}", p["name"].as_str().unwrap()), &example);
            }
        }
        uri
    }
}

fn operations() -> Vec<Op> {
    let mut ops = Vec::new();
    for (path, item) in doc()["paths"].as_object().expect("paths is an object") {
        for (method, op) in item.as_object().expect("a path item is an object") {
            assert!(METHODS.contains(&method.as_str()), "{path}: {method}");
            ops.push(Op {
                method: method.to_uppercase().parse().unwrap(),
                path,
                op,
            });
        }
    }
    ops
}

/// Every value under `v` (itself included), with its JSON pointer.
fn walk<'a>(v: &'a Value, at: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                walk(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(items) => {
            for (i, x) in items.iter().enumerate() {
                walk(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push((at, v));
}

fn class_of(name: &str) -> EndpointClass {
    match name {
        "administration" => EndpointClass::Administration,
        "signalling" => EndpointClass::Signalling,
        "supervision" => EndpointClass::Supervision,
        "console" => EndpointClass::Console,
        "agent_self" => EndpointClass::AgentSelf,
        "read" => EndpointClass::Read,
        other => panic!("unknown x-endpoint-class {other}"),
    }
}

#[test]
fn the_document_is_openapi_3_1() {
    let d = doc();
    assert!(
        d["openapi"].as_str().is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        d["openapi"]
    );
    assert!(d["info"]["title"].is_string() && d["info"]["version"].is_string());
    assert!(d["components"]["schemas"].is_object());
    assert_eq!(
        d["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert_eq!(d["security"], json!([{"bearer": []}]));
    let tags: BTreeSet<&str> = d["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let ops = operations();
    assert!(ops.len() > 50, "only {} operations", ops.len());
    let mut ids = BTreeSet::new();
    for o in &ops {
        let name = o.name();
        let id = o.op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no operationId"));
        assert!(ids.insert(id), "{name}: operationId {id} twice");
        assert!(o.op["summary"].is_string(), "{name}: no summary");
        let tag = o.op["tags"][0]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no tag"));
        assert!(tags.contains(tag), "{name}: tag {tag} is not declared");
        // Path parameters: exactly the template's.
        let template: BTreeSet<&str> = o
            .path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = o.op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(resolve)
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{name}: path parameters are required");
                p["name"].as_str().unwrap()
            })
            .collect();
        assert_eq!(template, declared, "{name}: path parameters");
        // Responses: a success, and each error with the error body and its codes.
        let responses = o.op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{name}: no success response"
        );
        for (status, r) in responses {
            let r = resolve(r);
            assert!(
                r["description"].is_string(),
                "{name} {status}: no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    r["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/Error",
                    "{name} {status}"
                );
                let codes = r["x-error-codes"]
                    .as_array()
                    .unwrap_or_else(|| panic!("{name} {status}: no x-error-codes"));
                assert!(!codes.is_empty(), "{name} {status}");
            }
        }
        if o.has_body() {
            let media = &o.op["requestBody"]["content"]["application/json"]["schema"];
            assert_eq!(
                resolve(media)["type"],
                "object",
                "{name}: bodies are objects"
            );
            for status in ["400", "413", "415"] {
                assert!(
                    responses.contains_key(status),
                    "{name}: a body but no {status}"
                );
            }
        }
        // Security: a token (401) and the roles of the class, or none at all.
        match o.roles() {
            None => assert!(o.op.get("x-roles").is_none(), "{name}"),
            Some(roles) => {
                assert!(responses.contains_key("401"), "{name}: no 401");
                let class = class_of(o.op["x-endpoint-class"].as_str().unwrap());
                let expected: BTreeSet<&str> = Role::ALL
                    .into_iter()
                    .filter(|r| auth::allowed(*r, class))
                    .map(Role::as_str)
                    .collect();
                assert_eq!(roles, expected, "{name}: x-roles against auth::allowed");
                let may_forbid = Role::ALL.into_iter().any(|r| !auth::allowed(r, class));
                if may_forbid {
                    let codes = &resolve(&o.op["responses"]["403"])["x-error-codes"];
                    assert!(
                        codes
                            .as_array()
                            .is_some_and(|c| c.contains(&json!("forbidden"))),
                        "{name}: a role may be refused, so 403 forbidden"
                    );
                }
            }
        }
    }
}

#[test]
fn every_ref_resolves_and_every_component_is_used() {
    let mut all = Vec::new();
    walk(doc(), String::new(), &mut all);
    let mut used = BTreeSet::new();
    let mut refs = 0;
    for (at, v) in &all {
        let Some(r) = v.get("$ref") else { continue };
        let r = r
            .as_str()
            .unwrap_or_else(|| panic!("{at}: $ref is not a string"));
        assert!(r.starts_with("#/"), "{at}: {r} is not local");
        assert!(pointer(r).is_some(), "{at}: {r} does not resolve");
        used.insert(r.to_owned());
        refs += 1;
    }
    assert!(refs > 100, "{refs} refs");
    let mut unused = Vec::new();
    // Parameters are described in each operation (one Rust type each), so the document may have
    // no `components.parameters` at all.
    for kind in ["schemas", "parameters", "responses"] {
        let components = doc()["components"][kind].as_object();
        assert!(
            components.is_some() || kind == "parameters",
            "no components.{kind}"
        );
        for name in components.into_iter().flat_map(|c| c.keys()) {
            let r = format!("#/components/{kind}/{name}");
            if !used.contains(&r) {
                unused.push(r);
            }
        }
    }
    assert!(
        unused.is_empty(),
        "components nothing refers to: {unused:?}"
    );
}

/// An answer that shows a secret this once (`POST /v1/tokens`, `POST /v1/webhooks`) is its
/// view and the secret: the document states the same fields, rules and requirements as the
/// view's own schema, the secret required too, and nothing else.
#[test]
fn a_created_answer_is_its_view_and_its_secret() {
    let schemas = &doc()["components"]["schemas"];
    for (created, view, secret) in [
        ("NewTokenCreated", "Token", "token"),
        ("NewWebhookCreated", "Webhook", "secret"),
    ] {
        let (c, v) = (&schemas[created], &schemas[view]);
        assert_eq!(c["type"], "object", "{created}");
        assert_eq!(c["additionalProperties"], false, "{created}");
        let names = |s: &'static Value, key: &str| -> BTreeSet<&'static str> {
            match &s[key] {
                Value::Array(a) => a.iter().map(|n| n.as_str().unwrap()).collect(),
                Value::Object(o) => o.keys().map(String::as_str).collect(),
                other => panic!("{key}: {other}"),
            }
        };
        let mut expected = names(v, "properties");
        expected.insert(secret);
        assert_eq!(names(c, "properties"), expected, "{created}: properties");
        assert_eq!(names(c, "required"), expected, "{created}: required");
        for (name, property) in v["properties"].as_object().unwrap() {
            assert_eq!(&c["properties"][name], property, "{created}.{name}");
        }
        assert_eq!(c["properties"][secret]["type"], "string", "{created}");
    }
}

// ---- the routes of the source ----

/// The files whose `.route(…)` calls make up the router, by module name: `api.rs` (`app()`)
/// and each module it merges. A new merged module must be added here (checked below).
const SOURCES: [(&str, &str); 4] = [
    ("api", include_str!("../src/http/api.rs")),
    ("center", include_str!("../src/http/center.rs")),
    ("webhooks", include_str!("../src/http/webhooks.rs")),
    ("openapi", include_str!("../src/http/openapi.rs")),
];

/// The routing functions of `axum::routing` a `.route(…)` may chain.
const ROUTING_FNS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// A token of Rust source, as much as the route scan needs: comments, whitespace, character
/// literals and lifetimes are dropped; a string literal is one token, whatever it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    Punct(u8),
}

fn tokens(src: &str) -> Vec<Token> {
    let b = src.as_bytes();
    let is_ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    // A string literal from its opening quote at `i`: its text, and the index after it.
    let string = |mut i: usize| {
        let start = i + 1;
        i += 1;
        while b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        (src[start..i].to_owned(), i + 1)
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            // Block comments nest in Rust.
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == b'"' {
            let (text, next) = string(i);
            out.push(Token::Str(text));
            i = next;
        } else if c == b'\'' {
            // A character literal ('x', '\n', '"', '…'), or else a lifetime ('a: skip the quote).
            let len = match b.get(i + 1) {
                Some(b'\\') => {
                    let close = b[i + 2..].iter().position(|c| *c == b'\'').unwrap();
                    i += close + 3;
                    continue;
                }
                Some(c) if *c >= 0xf0 => 4,
                Some(c) if *c >= 0xe0 => 3,
                Some(c) if *c >= 0xc0 => 2,
                _ => 1,
            };
            i += if b.get(i + 1 + len) == Some(&b'\'') {
                2 + len
            } else {
                1
            };
        } else if is_ident(c) {
            let start = i;
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
            let ident = &src[start..i];
            let hashes = b[i..].iter().take_while(|c| **c == b'#').count();
            if matches!(ident, "r" | "br") && b.get(i + hashes) == Some(&b'"') {
                // A raw string: r"…", r#"…"#.
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                let text_start = i + hashes + 1;
                let len = b[text_start..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .unwrap();
                out.push(Token::Str(src[text_start..text_start + len].to_owned()));
                i = text_start + len + close.len();
            } else if ident == "b" && b.get(i) == Some(&b'"') {
                let (text, next) = string(i);
                out.push(Token::Str(text));
                i = next;
            } else {
                // A byte literal b'x' is left to the quote's case, as a character literal.
                out.push(Token::Ident(ident.to_owned()));
            }
        } else if c.is_ascii() {
            out.push(Token::Punct(c));
            i += 1;
        } else {
            i += 1;
        }
    }
    out
}

fn is(t: Option<&Token>, punct: u8) -> bool {
    t == Some(&Token::Punct(punct))
}

/// The indices just past each `.name(` of `toks`.
fn calls_of(toks: &[Token], name: &str) -> Vec<usize> {
    (0..toks.len().saturating_sub(2))
        .filter(|&i| {
            is(toks.get(i), b'.')
                && toks[i + 1] == Token::Ident(name.to_owned())
                && is(toks.get(i + 2), b'(')
        })
        .map(|i| i + 3)
        .collect()
}

/// The tokens from `start` to the bracket that closes the one opened just before it.
fn until_close(toks: &[Token], start: usize) -> &[Token] {
    let mut depth = 0;
    for (i, t) in toks[start..].iter().enumerate() {
        match t {
            Token::Punct(b'(' | b'[' | b'{') => depth += 1,
            Token::Punct(b')' | b']' | b'}') if depth == 0 => return &toks[start..start + i],
            Token::Punct(b')' | b']' | b'}') => depth -= 1,
            _ => {}
        }
    }
    panic!("unbalanced brackets after token {start}")
}

/// Every (method, path) of the `.route("path", get(..).post(..)…)` calls of `src`, whatever
/// rustfmt's line wrapping: the method router's top-level calls (not those inside its
/// parentheses) are the methods, `axum::routing::patch(…)` as well as `get(…).post(…)`.
fn routes_in(src: &str) -> Vec<(String, String)> {
    let toks = tokens(src);
    let mut out = Vec::new();
    for start in calls_of(&toks, "route") {
        let args = until_close(&toks, start);
        let (Some(Token::Str(path)), true) = (args.first(), is(args.get(1), b',')) else {
            panic!(".route( without a literal path first: {args:?}");
        };
        let mut depth = 0;
        let mut methods = 0;
        for (i, t) in args.iter().enumerate().skip(2) {
            match t {
                Token::Punct(b'(' | b'[' | b'{') => depth += 1,
                Token::Punct(b')' | b']' | b'}') => depth -= 1,
                Token::Ident(name) if depth == 0 && is(args.get(i + 1), b'(') => {
                    assert!(
                        ROUTING_FNS.contains(&name.as_str()),
                        "{path}: `{name}(…)` is not a method the scanner knows; teach it"
                    );
                    out.push((name.to_uppercase(), path.clone()));
                    methods += 1;
                }
                _ => {}
            }
        }
        assert!(methods > 0, "{path}: no method in {args:?}");
    }
    out
}

#[test]
fn the_route_scanner_reads_wrapped_routes_and_ignores_comments() {
    let src = r###"
        // .route("/commented", get(nothing))
        /* .route("/block", post(nothing)) /* nested */ still a comment */
        let s = ".route(\"/in-a-string\", get(x))";
        let r = r#".route("/in-a-raw-string", get(x))"#;
        let c = '"';
        let q = b'(';
        fn f<'a>(x: &'a str) {}
        Router::new()
            .route("/a", get(list).post(create))
            .route(
                "/a/{id}",
                get(show)
                    .patch(change) // a trailing comment
                    .delete(remove),
            )
            .route("/b/{id}", axum::routing::put(crate::m::handler))
            .route_layer(layer)
    "###;
    let routes: Vec<String> = routes_in(src)
        .into_iter()
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert_eq!(
        routes,
        [
            "GET /a",
            "POST /a",
            "GET /a/{id}",
            "PATCH /a/{id}",
            "DELETE /a/{id}",
            "PUT /b/{id}"
        ]
    );
}

/// The routes of the router, from the source.
fn source_routes() -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    for (module, src) in SOURCES {
        for (method, path) in routes_in(src) {
            assert!(
                all.insert(format!("{method} {path}")),
                "{method} {path} routed twice ({module})"
            );
        }
    }
    all
}

#[test]
fn every_route_is_documented_and_every_operation_is_routed() {
    // The router is api.rs's `.route`s and those of the modules it merges; nothing else adds
    // routes.
    let api = tokens(SOURCES[0].1);
    let known: BTreeSet<&str> = SOURCES.iter().map(|(m, _)| *m).collect();
    let merges = calls_of(&api, "merge");
    assert!(merges.len() >= 3, "the merges of api.rs were not found");
    for start in merges {
        let idents: Vec<&str> = until_close(&api, start)
            .iter()
            .filter_map(|t| match t {
                Token::Ident(i) => Some(i.as_str()),
                _ => None,
            })
            .collect();
        let ["crate", .., module, "routes"] = idents.as_slice() else {
            panic!("api.rs merges {idents:?}: scan it here too");
        };
        assert!(
            known.contains(module),
            "api.rs merges {module}: add its source to SOURCES"
        );
    }
    for (module, src) in SOURCES {
        let toks = tokens(src);
        for call in ["nest", "nest_service", "route_service", "fallback_service"] {
            assert!(
                calls_of(&toks, call).is_empty(),
                "{module} calls .{call}(…): scan it here too"
            );
        }
    }

    let routed = source_routes();
    let documented: BTreeSet<String> = operations().iter().map(Op::name).collect();
    let undocumented: Vec<&String> = routed.difference(&documented).collect();
    let unrouted: Vec<&String> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "the document and the router differ:\n  in the router, not in openapi.json: \
         {undocumented:#?}\n  in openapi.json, not in the router: {unrouted:#?}"
    );
}

// ---- against the router ----

async fn bytes(resp: Response<Body>) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

fn content_type(resp: &Response<Body>) -> String {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Each documented operation, called without a token, is refused with 401 and the error body
/// (or, open, answers 200); with each role's token, it is refused by its guard exactly when the
/// role is not in its `x-roles`. So every operation of the document exists in the router (an
/// unknown route is 404, an unknown method 405) with the guard the document names.
#[tokio::test]
async fn every_operation_answers_with_the_documented_guard() {
    let h = Harness::start();
    let tokens: BTreeMap<&str, String> = BTreeMap::from([
        ("admin", ADMIN_TOKEN.to_owned()),
        ("supervisor", h.token("supervisor", Some("sup-oa")).await),
        ("agent", h.token("agent", Some("ag-oa")).await),
        ("softswitch", h.token("softswitch", None).await),
    ]);
    check_served(&h).await;
    for o in operations() {
        let name = o.name();
        let uri = o.example_uri();
        let body = o.has_body().then_some("{}");
        let resp = h.respond(None, o.method.clone(), &uri, body).await;
        let status = resp.status();
        let Some(roles) = o.roles() else {
            assert_eq!(
                status,
                StatusCode::OK,
                "{name}: open, so 200 without a token"
            );
            continue;
        };
        let challenge = resp.headers().get(header::WWW_AUTHENTICATE).cloned();
        let answer: Value = serde_json::from_slice(&bytes(resp).await)
            .unwrap_or_else(|e| panic!("{name}: the 401 body is not JSON: {e}"));
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated")),
            "{name} without a token: {answer}"
        );
        assert!(answer["error"]["message"].is_string(), "{name}: {answer}");
        assert!(
            challenge.is_some_and(|c| c.to_str().unwrap().starts_with("Bearer")),
            "{name}: WWW-Authenticate"
        );

        for (role, token) in &tokens {
            let resp = h.respond(Some(token), o.method.clone(), &uri, body).await;
            // Only a 403 is read: an allowed `GET /v1/events` is an endless stream.
            let refused_by_guard = if resp.status() == StatusCode::FORBIDDEN {
                let answer: Value = serde_json::from_slice(&bytes(resp).await).unwrap();
                answer["error"]["code"] == "forbidden"
                    && answer["error"]["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("may not call this endpoint"))
            } else {
                false
            };
            assert_eq!(
                refused_by_guard,
                !roles.contains(role),
                "{name} as {role}: x-roles says {roles:?}"
            );
        }
    }
}

/// `/openapi.json` is the embedded document, `/docs` the page, both without a token.
async fn check_served(h: &Harness) {
    let resp = h.respond(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_type(&resp), "application/json");
    assert_eq!(bytes(resp).await, DOCUMENT.as_bytes());

    let resp = h.respond(None, Method::GET, "/docs", None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        content_type(&resp).starts_with("text/html"),
        "{}",
        content_type(&resp)
    );
    let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    assert_eq!(bytes(resp).await, DOCS_PAGE.as_bytes());
}

#[test]
fn the_docs_page_is_self_contained() {
    let page = DOCS_PAGE.to_lowercase();
    assert!(page.starts_with("<!doctype html>"), "not an HTML page");
    for external in [
        "http://", "https://", "//cdn", "src=", "<link", "@import", "url(",
    ] {
        assert!(
            !page.contains(external),
            "/docs contains {external:?}: it must load nothing"
        );
    }
    // It reads the document, lists operations by tag, and sends requests with the token.
    for needed in [
        "openapi.json",
        "fetch(",
        "authorization",
        "bearer",
        "tags",
        "textarea",
    ] {
        assert!(page.contains(needed), "/docs lacks {needed:?}");
    }
}

// ---- what the API answers, against the document ----

/// The errors of validating `value` against `schema` (JSON Schema 2020-12, the subset the
/// document uses: `$ref`, `type`, `enum`, `const`, `oneOf`, `properties`, `required`,
/// `additionalProperties: false`, `items`, `maxItems`, lengths, bounds; `pattern` and `format`
/// are not checked).
fn validate(schema: &'static Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(schema);
    let fail = |errors: &mut Vec<String>, what: String| errors.push(format!("{at}: {what}"));
    if let Some(c) = schema.get("const")
        && c != value
    {
        fail(errors, format!("{value} is not {c}"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        fail(errors, format!("{value} is not one of {allowed:?}"));
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            other => other
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap())
                .collect(),
        };
        let fits = types.iter().any(|t| match *t {
            "null" => value.is_null(),
            "boolean" => value.is_boolean(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "string" => value.is_string(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            other => panic!("type {other}"),
        });
        if !fits {
            fail(errors, format!("{value} is not of type {types:?}"));
            return;
        }
    }
    if let Some(variants) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = variants
            .iter()
            .filter(|v| {
                let mut e = Vec::new();
                validate(v, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            fail(
                errors,
                format!("{value} matches {matching} of the oneOf variants"),
            );
        }
    }
    match value {
        Value::Object(map) => {
            let props = schema.get("properties").and_then(Value::as_object);
            for name in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(name.as_str().unwrap()) {
                    fail(errors, format!("{name} is missing"));
                }
            }
            for (k, v) in map {
                match props.and_then(|p| p.get(k)) {
                    Some(sub) => validate(sub, v, &format!("{at}.{k}"), errors),
                    None if schema.get("additionalProperties") == Some(&json!(false)) => {
                        fail(errors, format!("{k:?} is not documented"))
                    }
                    None => {}
                }
            }
        }
        Value::Array(items) => {
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && items.len() as u64 > max
            {
                fail(errors, format!("more than {max} items"));
            }
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    validate(item, v, &format!("{at}[{i}]"), errors);
                }
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if schema
                .get("minLength")
                .and_then(Value::as_u64)
                .is_some_and(|m| len < m)
                || schema
                    .get("maxLength")
                    .and_then(Value::as_u64)
                    .is_some_and(|m| len > m)
            {
                fail(errors, format!("{s:?}: length out of bounds"));
            }
        }
        Value::Number(n) => {
            let n = n.as_f64().unwrap();
            if schema
                .get("minimum")
                .and_then(Value::as_f64)
                .is_some_and(|m| n < m)
                || schema
                    .get("maximum")
                    .and_then(Value::as_f64)
                    .is_some_and(|m| n > m)
            {
                fail(errors, format!("{n} out of bounds"));
            }
        }
        _ => {}
    }
}

/// Sends requests and checks each answer against the document: the status is documented for
/// the operation, the body has the documented media type and schema, an error's code is one of
/// the status's `x-error-codes`. Remembers which operations answered a success.
struct Checker {
    h: Harness,
    succeeded: BTreeSet<String>,
    problems: Vec<String>,
}

/// The documented operation a request is for: `"PATCH /v1/groups/aid"` is
/// `PATCH /v1/groups/{group}` (the template with the most literal segments, if several fit).
fn op_of(request: &str) -> Op {
    let (method, uri) = request.split_once(' ').unwrap();
    let method: Method = method.parse().unwrap();
    let path: Vec<&str> = uri.split('?').next().unwrap().split('/').collect();
    operations()
        .into_iter()
        .filter(|o| o.method == method)
        .filter_map(|o| {
            let template: Vec<&str> = o.path.split('/').collect();
            let fits = template.len() == path.len()
                && template
                    .iter()
                    .zip(&path)
                    .all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()));
            let literal = template.iter().filter(|t| !t.starts_with('{')).count();
            fits.then_some((literal, o))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, o)| o)
        .unwrap_or_else(|| panic!("{request}: no such operation in openapi.json"))
}

impl Checker {
    /// Sends `request` (`"METHOD /uri"`), checks the answer against the document and returns
    /// it.
    async fn call(
        &mut self,
        token: Option<&str>,
        request: &str,
        body: impl Into<Option<Value>>,
    ) -> (StatusCode, Value) {
        let op = op_of(request);
        let name = op.name();
        let uri = request.split_once(' ').unwrap().1;
        let body = body.into().map(|b| b.to_string());
        let resp = self
            .h
            .respond(token, op.method.clone(), uri, body.as_deref())
            .await;
        let status = resp.status();
        let media = content_type(&resp);
        let bytes = bytes(resp).await;
        let value = if media.starts_with("application/json") {
            serde_json::from_slice(&bytes).unwrap()
        } else {
            Value::String(String::from_utf8_lossy(&bytes).into_owned())
        };
        let Some(documented) = op.op["responses"].get(status.as_str()).map(resolve) else {
            self.problems.push(format!(
                "{name} ({uri}): status {status} is not documented: {value}"
            ));
            return (status, value);
        };
        match documented.get("content").and_then(Value::as_object) {
            None if bytes.is_empty() => {}
            None => self
                .problems
                .push(format!("{name}: {status} has a body: {value}")),
            Some(content) => {
                let key = media.split(';').next().unwrap_or_default();
                match content.get(key) {
                    None => self.problems.push(format!(
                        "{name}: {status} answered {media}, documented {:?}",
                        content.keys().collect::<Vec<_>>()
                    )),
                    Some(m) if key == "application/json" => {
                        let mut errors = Vec::new();
                        validate(&m["schema"], &value, "$", &mut errors);
                        self.problems.extend(
                            errors
                                .into_iter()
                                .map(|e| format!("{name} {status}: {e} (answer: {value})")),
                        );
                    }
                    Some(_) => {}
                }
            }
        }
        if status.is_client_error() || status.is_server_error() {
            let code = &value["error"]["code"];
            let listed = documented["x-error-codes"]
                .as_array()
                .is_some_and(|c| c.contains(code));
            if !listed {
                self.problems.push(format!(
                    "{name}: {status} {code} is not in its x-error-codes"
                ));
            }
        } else {
            self.succeeded.insert(name);
        }
        (status, value)
    }

    /// [`Checker::call`] with `token`, which must succeed.
    async fn ok(&mut self, token: &str, request: &str, body: impl Into<Option<Value>>) -> Value {
        let (status, value) = self.call(Some(token), request, body).await;
        assert!(status.is_success(), "{request}: {status} {value}");
        value
    }
}

/// A scenario that makes every operation succeed once, and a few fail, each answer checked
/// against the document.
#[tokio::test]
async fn the_answers_match_the_documented_responses() {
    let mut c = Checker {
        h: Harness::start(),
        succeeded: BTreeSet::new(),
        problems: Vec::new(),
    };
    let admin = ADMIN_TOKEN;
    for path in ["/healthz", "/metrics", "/openapi.json", "/docs"] {
        c.call(None, &format!("GET {path}"), None).await;
    }
    let mut token = BTreeMap::new();
    for (role, user) in [
        ("supervisor", Some("sup-1")),
        ("supervisor", Some("sup-2")),
        ("agent", Some("ag-1")),
        ("agent", Some("ag-2")),
        ("softswitch", None),
    ] {
        let name = user.map(|u| format!("User {u}"));
        let body = json!({"role": role, "user_id": user, "display_name": name});
        let t = c.ok(admin, "POST /v1/tokens", body).await;
        let secret = t["token"].as_str().unwrap().to_owned();
        token.insert(user.unwrap_or(role), secret);
    }
    let (sup, ag1, sw) = (&token["sup-1"], &token["ag-1"], &token["softswitch"]);
    let spare = c
        .ok(admin, "POST /v1/tokens", json!({"role": "admin"}))
        .await;
    let spare = format!("DELETE /v1/tokens/{}", spare["id"].as_str().unwrap());
    let temp = c
        .ok(admin, "POST /v1/groups", json!({"name": "Temp"}))
        .await;
    let temp = format!("/v1/groups/{}", temp["id"].as_str().unwrap());
    let grant = json!({"supervisor_id": "sup-1", "agent_id": "ag-1"});
    let grant = c.ok(admin, "POST /v1/grants", grant).await;
    let grant = format!("DELETE /v1/grants/{}", grant["id"]);
    let (temp_sup, temp_member) = (
        format!("PUT {temp}/supervisors/sup-2"),
        format!("PUT {temp}/members/ag-2"),
    );
    let (temp_remove, temp_delete) = (
        format!("DELETE {temp}/members/ag-2"),
        format!("DELETE {temp}"),
    );
    let no = Value::Null;
    let ringing = json!({"call_id": "sip-1", "member": "ag-1", "caller": "+15550123"});
    let web_call = json!({"call_id": "sip-2", "member": "ag-1", "caller": "web", "web": true});
    let rights = json!({"listen": true, "intervene": true, "admin": true});
    let aid =
        json!({"id": "aid", "name": "Aid", "kind": "mutual_aid", "max_monitors_per_agent": 3});
    // (token, request, body; null: none), in order: tokens, users, groups, grants, agents
    // themselves, the console, agents as supervisors see them, the platform's reports.
    #[rustfmt::skip]
    let steps: [(&str, &str, Value); 54] = [
        (admin, "GET /v1/tokens", no.clone()),
        (admin, &spare, no.clone()),
        (admin, "GET /v1/users", no.clone()),
        (admin, "PATCH /v1/users/ag-2", json!({"display_name": "Bob", "phone_number": "+15550111"})),
        (admin, "POST /v1/groups", aid),
        (admin, "PATCH /v1/groups/aid", json!({"agent_beep": "agent_beep"})),
        (admin, "PUT /v1/groups/aid/supervisors/sup-1", rights.clone()),
        (admin, "PUT /v1/groups/aid/supervisors/sup-2", rights),
        (admin, "PUT /v1/groups/aid/members/ag-1", json!({"can_leave": true})),
        (admin, "PUT /v1/groups/aid/members/ag-2", json!({"can_leave": true})),
        (admin, "PUT /v1/groups/aid/members/sup-1", json!({"can_leave": true})),
        (admin, "DELETE /v1/groups/aid/supervisors/sup-2", no.clone()),
        (sup, "GET /v1/groups", no.clone()),
        (sup, "GET /v1/groups/aid", no.clone()),
        (admin, &temp_sup, json!({})),
        (admin, &temp_member, json!({})),
        (admin, &temp_remove, no.clone()),
        (admin, &temp_delete, no.clone()),
        (admin, "GET /v1/grants", no.clone()),
        (admin, &grant, no.clone()),
        (ag1, "GET /v1/me", no.clone()),
        (ag1, "PATCH /v1/me", json!({"campaign": "Spring", "platform": "app"})),
        (ag1, "PUT /v1/me/state", json!({"state": "available"})),
        (ag1, "POST /v1/me/groups/aid/join", no.clone()),
        (ag1, "POST /v1/me/groups/aid/leave", no.clone()),
        (ag1, "POST /v1/me/groups/aid/join", no.clone()),
        (sup, "POST /v1/groups/aid/members/ag-2/logon", no.clone()),
        (sup, "POST /v1/groups/aid/members/ag-2/logoff", no.clone()),
        (sup, "POST /v1/console/groups/aid/join", no.clone()),
        (sup, "POST /v1/console/groups/aid/leave", no.clone()),
        (sup, "PUT /v1/console/subscriptions/ag-1", no.clone()),
        (sup, "GET /v1/console/subscriptions", no.clone()),
        (sup, "DELETE /v1/console/subscriptions/ag-1", no.clone()),
        (sup, "PUT /v1/console/settings", json!({"registered_number": NUMBER})),
        (sup, "GET /v1/console/settings", no.clone()),
        (sup, "GET /v1/agents", no.clone()),
        (sup, "GET /v1/agents/ag-1", no.clone()),
        (sup, "PATCH /v1/agents/ag-1", json!({"auto_assignment": false})),
        (sup, "PUT /v1/agents/ag-1/state", json!({"state": "busy", "case": "T-1"})),
        (ag1, "GET /v1/me", no.clone()),
        (sup, "PUT /v1/agents/ag-1/state", json!({"state": "available"})),
        (ag1, "PUT /v1/me/state", json!({"state": "pause", "reason": "lunch"})),
        (sup, "GET /v1/agents/ag-1", no.clone()),
        (sup, "POST /v1/agents/ag-1/messages", json!({"text": "Please call me"})),
        (sw, "PUT /v1/users/ag-1/presence", json!({"presence": "away"})),
        (sw, "PUT /v1/users/ag-2/forwarding", json!({"destination": "+15550999"})),
        (sup, "GET /v1/console/members", no.clone()),
        (sup, "POST /v1/console/members/ag-2/cancel-forwarding", no.clone()),
        (sw, "POST /v1/ringing", ringing),
        (sup, "GET /v1/console/members?filter=ringing&search=user", no.clone()),
        (sup, "GET /v1/console/ringing-calls", no.clone()),
        (sup, "POST /v1/console/ringing-calls/sip-1/take", no.clone()),
        (sw, "POST /v1/ringing", web_call),
        (sw, "DELETE /v1/ringing/sip-2", no.clone()),
    ];
    for (token, request, body) in steps {
        c.ok(token, request, (!body.is_null()).then_some(body))
            .await;
    }

    // Calls and supervisions.
    let leg = json!({"remote": "198.51.100.7:4000", "codec": "pcma"});
    let call = c
        .ok(
            sw,
            "POST /v1/calls",
            json!({"agent_id": "ag-1", "customer": leg}),
        )
        .await;
    let call = format!("/v1/calls/{}", call["id"].as_str().unwrap());
    #[rustfmt::skip]
    let steps: [(&str, String, Value); 5] = [
        (sw, "GET /v1/calls".into(), no.clone()),
        (sw, format!("GET {call}"), no.clone()),
        (sw, format!("PATCH {call}/legs/agent"), json!({"remote": "198.51.100.8:4002"})),
        (sw, format!("POST {call}/events"), json!({"event": "hold"})),
        (sw, format!("POST {call}/events"), json!({"event": "resume"})),
    ];
    for (token, request, body) in steps {
        c.ok(token, &request, (!body.is_null()).then_some(body))
            .await;
    }
    let request = json!({"registered_number": NUMBER});
    let sup_n = c
        .ok(sup, &format!("POST {call}/supervisions"), request)
        .await;
    let sup_n = format!("/v1/supervisions/{}", sup_n["id"].as_str().unwrap());
    // Ringing, then answered from the registered number: active, so the mode may change.
    let answered = json!({"event": "answered", "calling_number": NUMBER});
    #[rustfmt::skip]
    let steps: [(&str, String, Value); 11] = [
        (sw, format!("POST {sup_n}/events"), json!({"event": "ringing"})),
        (sw, format!("POST {sup_n}/events"), answered),
        (sup, format!("PATCH {sup_n}"), json!({"mode": "whisper"})),
        (sup, "GET /v1/supervisions".into(), no.clone()),
        (sup, format!("GET {sup_n}"), no.clone()),
        (sup, format!("GET {sup_n}/alerts"), no.clone()),
        (sup, format!("DELETE {sup_n}"), no.clone()),
        (sw, format!("GET {call}"), no.clone()),
        (sup, "GET /v1/alerts?after=0&limit=10".into(), no.clone()),
        (admin, "GET /v1/audit?limit=1000".into(), no.clone()),
        (sw, format!("DELETE {call}"), no.clone()),
    ];
    for (token, request, body) in steps {
        c.ok(token, &request, (!body.is_null()).then_some(body))
            .await;
    }

    // Webhooks.
    let hook = json!({"url": "http://127.0.0.1:9/hook", "event_types": ["call.*"]});
    let hook = c.ok(admin, "POST /v1/webhooks", hook).await;
    let hook = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    c.ok(admin, "GET /v1/webhooks", None).await;
    c.ok(admin, &format!("PATCH {hook}"), json!({"enabled": false}))
        .await;
    c.ok(admin, &format!("GET {hook}"), None).await;
    c.ok(admin, &format!("DELETE {hook}"), None).await;

    // The event stream: the replayed log, message by message.
    let resp =
        c.h.respond(Some(admin), Method::GET, "/v1/events?after=0", None)
            .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(content_type(&resp), "text/event-stream");
    let mut body = resp.into_body();
    let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the replay starts at once")
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    for field in ["id: ", "event: ", "data: {"] {
        assert!(
            text.contains(field),
            "an SSE message without {field:?}: {text}"
        );
    }
    c.succeeded.insert("GET /v1/events".to_owned());

    // Some refusals: each status and code must be documented for its operation.
    let big = json!({"name": "x".repeat(70_000)});
    let ringing_again = json!({"call_id": "sip-1", "member": "ag-1", "caller": "1"});
    #[rustfmt::skip]
    let refusals: [(Option<&str>, String, Value); 15] = [
        (None, "GET /v1/calls".into(), no.clone()),
        (Some(admin), "GET /v1/calls/c_0000000000000000".into(), no.clone()),
        (Some(admin), "POST /v1/groups".into(), json!({"name": 5})),
        (Some(admin), "POST /v1/groups".into(), json!({"id": "aid", "name": "again"})),
        (Some(admin), "POST /v1/groups".into(), big),
        (Some(ag1), "GET /v1/tokens".into(), no.clone()),
        (Some(admin), "GET /v1/alerts?limit=0".into(), no.clone()),
        (Some(ag1), "PUT /v1/me/state".into(), json!({"state": "pause"})),
        (Some(ag1), "PUT /v1/me/state".into(), json!({"state": "pause", "reason": "again"})),
        (Some(sup), "POST /v1/console/ringing-calls/sip-1/take".into(), no.clone()),
        (Some(sup), "GET /v1/agents/nobody".into(), no.clone()),
        (Some(admin), "GET /v1/console/settings".into(), no.clone()),
        (Some(sw), "POST /v1/ringing".into(), ringing_again),
        (Some(admin), format!("PATCH {sup_n}"), json!({"mode": "shout"})),
        (Some(admin), format!("DELETE {hook}"), no.clone()),
    ];
    for (token, request, body) in refusals {
        let body = (!body.is_null()).then_some(body);
        let (status, answer) = c.call(token, &request, body).await;
        assert!(status.is_client_error(), "{request}: {status} {answer}");
    }
    // Without a content type.
    let req = Request::post("/v1/groups")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .body(Body::from(r#"{"name": "x"}"#))
        .unwrap();
    let resp = c.h.app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let codes =
        &resolve(&doc()["paths"]["/v1/groups"]["post"]["responses"]["415"])["x-error-codes"];
    let answer: Value = serde_json::from_slice(&bytes(resp).await).unwrap();
    assert!(
        codes.as_array().unwrap().contains(&answer["error"]["code"]),
        "{answer}"
    );

    let never: Vec<String> = operations()
        .iter()
        .map(Op::name)
        .filter(|n| !c.succeeded.contains(n))
        .collect();
    assert!(
        never.is_empty(),
        "operations the scenario never ran to a success: {never:#?}"
    );
    assert!(
        c.problems.is_empty(),
        "answers that differ from the document:\n{}",
        c.problems.join("\n")
    );
}
