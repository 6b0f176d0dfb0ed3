//! Input the API documents as refused is refused, with the crate's JSON error shape (issue 10
//! point 8; docs/api.md, Errors): users' names, repeated JSON keys, and the answers the HTTP
//! layers make themselves.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{ADMIN_TOKEN, Harness};
use serde_json::{Value, json};

const BAD: StatusCode = StatusCode::BAD_REQUEST;

/// The error's code, after checking the whole answer has the crate's shape: a JSON object
/// `{"error": {"code", "message"}}` with a non-empty message.
fn code(status: StatusCode, body: &Value) -> (StatusCode, &str) {
    let message = body["error"]["message"].as_str().unwrap_or("");
    assert!(
        !message.is_empty(),
        "{status}: not the JSON error shape: {body}"
    );
    (status, body["error"]["code"].as_str().unwrap_or(""))
}

#[tokio::test]
async fn a_name_the_directory_would_refuse_is_refused_where_it_is_given() {
    let h = Harness::start();
    let long = "n".repeat(129);
    for bad in ["Bob\u{7}Smith", "Bob\nSmith", "   ", long.as_str()] {
        let body = json!({"role": "agent", "user_id": "ag-1", "display_name": bad}).to_string();
        let (status, err) = h.post("/v1/tokens", &body).await;
        assert_eq!(code(status, &err), (BAD, "invalid_body"), "{bad:?}");
        let (status, err) = h
            .patch("/v1/users/ag-1", &json!({"display_name": bad}).to_string())
            .await;
        assert!(
            status == BAD || status == StatusCode::NOT_FOUND,
            "{bad:?}: {status} {err}"
        );
    }
    // 128 characters (not bytes) is fine, and the user is then in the directory.
    let name = "é".repeat(128);
    let body = json!({"role": "agent", "user_id": "ag-1", "display_name": name}).to_string();
    let (status, t) = h.post("/v1/tokens", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let (status, users) = h.get("/v1/users").await;
    assert_eq!(status, StatusCode::OK, "{users}");
    assert!(
        users["users"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["id"] == "ag-1" && u["display_name"] == name.as_str()),
        "{users}"
    );
    // A calling number with control characters is refused too (it is logged and shown).
    let call = h.new_call().await;
    let body =
        json!({"registered_number": common::NUMBER, "answered": {"calling_number": "+1555\u{0}"}})
            .to_string();
    let (status, err) = h
        .post(&format!("/v1/calls/{call}/supervisions"), &body)
        .await;
    assert_eq!(code(status, &err), (BAD, "invalid_body"), "{err}");
}

#[tokio::test]
async fn repeated_json_keys_are_refused_at_any_depth() {
    let h = Harness::start();
    let call = h.new_call().await;
    let (status, sup) = h
        .post(
            &format!("/v1/calls/{call}/supervisions"),
            &common::answered_body(),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sup}");
    let sup = sup["id"].as_str().unwrap().to_owned();
    for (method, uri, body) in [
        (
            Method::PATCH,
            format!("/v1/supervisions/{sup}"),
            r#"{"mode":"listen","mode":"barge"}"#,
        ),
        (
            Method::POST,
            "/v1/calls".to_owned(),
            r#"{"customer":{"codec":"pcmu","codec":"pcma"}}"#,
        ),
        (
            Method::POST,
            "/v1/tokens".to_owned(),
            r#"{"role":"agent","user_id":"ag-1","role":"admin"}"#,
        ),
    ] {
        let err = h
            .refused(method, &uri, Some(body), BAD, "invalid_body")
            .await;
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains("duplicate key"),
            "{err}"
        );
    }
    let (_, still) = h.get(&format!("/v1/supervisions/{sup}")).await;
    assert_eq!(still["mode"], "listen", "{still}");
}

#[tokio::test]
async fn the_http_layers_own_refusals_have_the_json_error_shape() {
    let h = Harness::start();
    let send = |req: Request<Body>| h.send(req);
    let auth = format!("Bearer {ADMIN_TOKEN}");

    // 414: a request target over 8 KiB.
    let uri = format!("/v1/calls?{}", "a".repeat(9 * 1024));
    let (status, err) = send(Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(
        code(status, &err),
        (StatusCode::URI_TOO_LONG, "uri_too_long")
    );

    // 431: header fields over 16 KiB.
    let req = Request::get("/v1/calls")
        .header(header::AUTHORIZATION, &auth)
        .header("x-big", "b".repeat(17 * 1024))
        .body(Body::empty())
        .unwrap();
    let (status, err) = send(req).await;
    assert_eq!(
        code(status, &err),
        (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large"
        )
    );

    // 413: a body over 64 KiB.
    let big = json!({"agent_id": "a".repeat(70 * 1024)}).to_string();
    let (status, err) = h.post("/v1/calls", &big).await;
    assert_eq!(
        code(status, &err),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    // 415: not JSON.
    let req = Request::post("/v1/calls")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let (status, err) = send(req).await;
    assert_eq!(
        code(status, &err),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
    );

    // 405 and 404.
    let (status, err) = send(Request::put("/v1/calls").body(Body::empty()).unwrap()).await;
    assert_eq!(
        code(status, &err),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (status, err) = send(Request::get("/v2/nothing").body(Body::empty()).unwrap()).await;
    assert_eq!(code(status, &err), (StatusCode::NOT_FOUND, "not_found"));

    // 400 from axum's own extractors (a query that is not one).
    let (status, err) = send(
        Request::get("/v1/alerts?limit=lots")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, BAD, "{err}");
    code(status, &err);
}
