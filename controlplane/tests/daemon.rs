//! The whole daemon in-process, over real sockets: several at once, each on its own ports.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};

use controlplane::spawn;
use serde_json::Value;

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let body_headers = match body {
        Some(b) => format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            b.len()
        ),
        None => String::new(),
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\
         authorization: Bearer {}\r\n{body_headers}\r\n{}",
        common::ADMIN_TOKEN,
        body.unwrap_or("")
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[test]
fn daemons_run_side_by_side_and_shut_down() {
    let daemons: Vec<_> = (0..3).map(|_| spawn(common::config()).unwrap()).collect();
    for d in &daemons {
        assert_ne!(d.http_addr.port(), 0);
        let (status, body) = http(d.http_addr, "GET", "/healthz", None);
        assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
        let (status, body) = http(d.http_addr, "POST", "/v1/calls", Some("{}"));
        assert_eq!(status, 201, "{body}");
        let call: Value = serde_json::from_str(&body).unwrap();
        let (status, body) = http(d.http_addr, "GET", "/metrics", None);
        assert_eq!(status, 200);
        assert!(body.contains("earshot_calls 1\n"), "{body}");
        assert_eq!(d.state().engine().calls(), 1);
        let (status, _) = http(
            d.http_addr,
            "DELETE",
            &format!("/v1/calls/{}", call["id"].as_str().unwrap()),
            None,
        );
        assert_eq!(status, 204);
    }
    let addrs: Vec<SocketAddr> = daemons.iter().map(|d| d.http_addr).collect();
    let mut daemons = daemons.into_iter();
    daemons.next().unwrap().shutdown().unwrap();
    assert!(
        TcpStream::connect(addrs[0]).is_err(),
        "still accepting after shutdown"
    );
    // The others keep serving; dropping one shuts it down too.
    assert_eq!(http(addrs[1], "GET", "/healthz", None).0, 200);
    drop(daemons);
    assert!(TcpStream::connect(addrs[1]).is_err());
    assert!(TcpStream::connect(addrs[2]).is_err());
}

#[test]
fn bad_config_and_busy_port_are_errors() {
    let mut config = common::config();
    config.media.port_max = config.media.port_min - 2;
    let err = spawn(config).err().unwrap();
    assert!(format!("{err:#}").contains("port_min"), "{err:#}");

    let first = spawn(common::config()).unwrap();
    let mut config = common::config();
    config.http.listen = first.http_addr;
    let err = spawn(config).err().unwrap();
    assert!(
        format!("{err:#}").contains("cannot listen for HTTP"),
        "{err:#}"
    );
    first.shutdown().unwrap();
}

/// Polls `GET path` until `done` holds of the JSON body (the pump runs every 5 ms; the bound is
/// only there so a broken pump fails instead of hanging).
fn wait_for(addr: SocketAddr, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, body) = http(addr, "GET", path, None);
        let value: Value = serde_json::from_str(&body).unwrap();
        if done(&value) {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "gave up waiting on {path}: {value}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// An RFC 4733 telephone-event packet (PT 101): `event`, not ended, 20 ms in.
fn key_packet(seq: u16, timestamp: u32, event: u8) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 0x80;
    p[1] = 0x80 | 101;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&timestamp.to_be_bytes());
    p[8..12].copy_from_slice(&0x5eed_u32.to_be_bytes());
    p[12] = event;
    p[13] = 10;
    p[14..16].copy_from_slice(&160u16.to_be_bytes());
    p
}

#[test]
fn supervisor_keys_switch_modes_through_the_pump() {
    let daemon = spawn(common::config()).unwrap();
    let addr = daemon.http_addr;
    let (_, call) = http(addr, "POST", "/v1/calls", Some("{}"));
    let call: Value = serde_json::from_str(&call).unwrap();
    let phone = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let body = serde_json::json!({
        "supervisor": {"remote": phone.local_addr().unwrap().to_string()},
        "registered_number": common::NUMBER,
        "answered": {"calling_number": common::NUMBER},
    });
    let (status, sup) = http(
        addr,
        "POST",
        &format!("/v1/calls/{}/supervisions", call["id"].as_str().unwrap()),
        Some(&body.to_string()),
    );
    assert_eq!(status, 201, "{sup}");
    let sup: Value = serde_json::from_str(&sup).unwrap();
    let local: SocketAddr = sup["leg"]["local"].as_str().unwrap().parse().unwrap();
    let path = format!("/v1/supervisions/{}", sup["id"].as_str().unwrap());

    // '5' whisper, '6' barge, '#' (event 11) stop; three packets per press, as phones send.
    let mut seq = 1;
    for (i, (event, done)) in [(5u8, "whisper"), (6, "barge"), (11, "stop")]
        .into_iter()
        .enumerate()
    {
        for _ in 0..3 {
            phone
                .send_to(&key_packet(seq, 8000 * (i as u32 + 1), event), local)
                .unwrap();
            seq += 1;
        }
        let got = if done == "stop" {
            wait_for(addr, &path, |s| s["state"] == "stopped")
        } else {
            wait_for(addr, &path, |s| s["mode"] == done)
        };
        assert_eq!(
            (&got["failure"], &got["abort"]),
            (&Value::Null, &Value::Null),
            "{got}"
        );
    }
    daemon.shutdown().unwrap();
}

#[test]
fn silent_legs_time_out_as_hangups() {
    let mut config = common::config();
    config.media.timeout_secs = 1;
    let daemon = spawn(config).unwrap();
    let addr = daemon.http_addr;
    let (_, call) = http(addr, "POST", "/v1/calls", Some("{}"));
    let call: Value = serde_json::from_str(&call).unwrap();
    let id = call["id"].as_str().unwrap();
    let (_, sup) = http(
        addr,
        "POST",
        &format!("/v1/calls/{id}/supervisions"),
        Some(&common::answered_body()),
    );
    let sup: Value = serde_json::from_str(&sup).unwrap();
    wait_for(addr, &format!("/v1/calls/{id}"), |c| c["state"] == "ended");
    // Every leg fell silent together; the customer's comes first, then the agent's, which
    // ends the (inbound) call and the supervision as the caller's hang-up.
    let sup = wait_for(
        addr,
        &format!("/v1/supervisions/{}", sup["id"].as_str().unwrap()),
        |s| s["state"] != "active",
    );
    assert_eq!(
        (&sup["state"], &sup["abort"]),
        (&Value::from("aborted"), &Value::from("caller_hung_up"))
    );
    assert_eq!(daemon.state().engine().calls(), 0);
    daemon.shutdown().unwrap();
}

#[test]
fn the_timer_fires_the_answer_timeout_on_the_system_clock() {
    let mut config = common::config();
    config.supervision.answer_timeout_secs = 1;
    let daemon = spawn(config).unwrap();
    let addr = daemon.http_addr;
    let (_, call) = http(addr, "POST", "/v1/calls", Some("{}"));
    let call: Value = serde_json::from_str(&call).unwrap();
    let body = serde_json::json!({"registered_number": common::NUMBER}).to_string();
    let (status, sup) = http(
        addr,
        "POST",
        &format!("/v1/calls/{}/supervisions", call["id"].as_str().unwrap()),
        Some(&body),
    );
    assert_eq!(status, 201, "{sup}");
    let sup: Value = serde_json::from_str(&sup).unwrap();
    assert_eq!(sup["state"], "requested");
    let path = format!("/v1/supervisions/{}", sup["id"].as_str().unwrap());
    let got = wait_for(addr, &path, |s| s["state"] != "requested");
    assert_eq!(
        (&got["state"], &got["failure"]),
        (
            &Value::from("failed"),
            &Value::from("supervisor_didnt_answer")
        ),
        "{got}"
    );
    daemon.shutdown().unwrap();
}
