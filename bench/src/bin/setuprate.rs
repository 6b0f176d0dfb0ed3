//! Control-plane setup rate (docs/design.md §6.1: supervised-call setups (call + supervision) ≥
//! 1,000/s, p99 ≤ 10 ms): `--clients` threads each loop creating a call for an agent and starting a
//! supervision on it whose supervisor's leg is already answered (`POST /v1/calls`, then
//! `POST /v1/calls/{id}/supervisions`: media connects in listen), timing the pair, then
//! deleting the call (not timed) so the appliance's ports are not exhausted. The `POST
//! /v1/calls` alone is timed too. With `--streams N`, N `GET /v1/events` streams are held open
//! (and drained) throughout, as live panels would be: an admin's (every event), a
//! supervisor's whom no setup names (none), or spread over `--panels` supervisors, each with a
//! group of their own, whom the setups name in turn (each stream gets its supervisor's share
//! of the supervisions' events). Prints a table and a JSON line.
//!
//! ```text
//! setuprate --api http://127.0.0.1:18080 --clients 8 --duration-secs 10 --streams 1000
//! ```
//! The admin token is `--token` or `EARSHOT_ADMIN_TOKEN`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use earshot_bench::hist::Histogram;
use earshot_bench::http::{self, Client};
use earshot_bench::streams::Streams;
use serde_json::json;

#[derive(Parser, Debug)]
#[command(about = "Measures supervised-call setups per second through the HTTP API")]
struct Args {
    /// The appliance's API base URL (loopback).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The admin bearer token.
    #[arg(long, env = "EARSHOT_ADMIN_TOKEN")]
    token: String,
    /// Concurrent clients (threads, each with one keep-alive connection).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// How long to measure, after a one-second warm-up.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Event streams (`GET /v1/events`) held open during the run.
    #[arg(long, default_value_t = 0)]
    streams: usize,
    /// Whose streams: `admin` (each gets every event), `supervisor` (a supervisor no setup
    /// names: each gets none) or `panels` (spread over `--panels` supervisors whom the setups
    /// name in turn).
    #[arg(long, value_enum, default_value_t = Viewer::Admin)]
    stream_viewer: Viewer,
    /// With `--stream-viewer panels`: how many supervisors (`panel-0`…, each supervising a
    /// group `panel-group-<n>` of their own) the streams are spread over.
    #[arg(long, default_value_t = 100)]
    panels: usize,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Viewer {
    Admin,
    Supervisor,
    Panels,
}

/// A new supervisor token for `user`.
fn supervisor_token(admin: &Client, user: &str) -> Result<String, String> {
    let minted = admin.expect(
        "POST",
        "/v1/tokens",
        Some(&json!({"role": "supervisor", "user_id": user})),
        201,
    )?;
    minted["token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no token in {minted}"))
}

/// The tokens the streams present, in turn: the admin's, a supervisor's for a panel user, or
/// one for each of `--panels` supervisors, each given a group to supervise.
fn stream_tokens(args: &Args, api: SocketAddr) -> Result<Vec<String>, String> {
    let admin = Client::new(api, Some(&args.token));
    match args.stream_viewer {
        Viewer::Admin => Ok(vec![args.token.clone()]),
        Viewer::Supervisor => Ok(vec![supervisor_token(&admin, "setuprate-panel")?]),
        Viewer::Panels => (0..args.panels)
            .map(|p| {
                let user = format!("panel-{p}");
                let token = supervisor_token(&admin, &user)?;
                let group = format!("panel-group-{p}");
                admin.expect(
                    "POST",
                    "/v1/groups",
                    Some(&json!({"id": group, "name": group, "kind": "standard"})),
                    201,
                )?;
                admin.expect(
                    "PUT",
                    &format!("/v1/groups/{group}/supervisors/{user}"),
                    Some(&json!({"listen": true, "intervene": false, "admin": false})),
                    200,
                )?;
                Ok(token)
            })
            .collect(),
    }
}

/// The supervisor of a client's `n`th setup: its own (`sup-<client>`), or with panels, the
/// panels in turn across all clients.
fn supervisor_of(args: &Args, client: usize, n: usize) -> String {
    if args.stream_viewer == Viewer::Panels && args.panels > 0 {
        format!("panel-{}", (client + n * args.clients) % args.panels)
    } else {
        format!("sup-{client}")
    }
}

/// One client's results: setup and `POST /v1/calls` latencies (ns) and failures.
#[derive(Default)]
struct Tally {
    setups: Histogram,
    calls: Histogram,
    failures: u64,
    first_error: Option<String>,
}

/// One setup: the call, then the answered supervision; the call's id for the teardown, and
/// how long the call's creation took.
fn setup(client: &Client, id: usize, supervisor: &str) -> Result<(String, Duration), String> {
    let t0 = Instant::now();
    let call = client.expect(
        "POST",
        "/v1/calls",
        Some(&json!({"agent_id": format!("agent-{id}")})),
        201,
    )?;
    let call_took = t0.elapsed();
    let call_id = call["id"]
        .as_str()
        .ok_or_else(|| format!("no call id in {call}"))?
        .to_owned();
    let sup = client.expect(
        "POST",
        &format!("/v1/calls/{call_id}/supervisions"),
        Some(&json!({
            "supervisor_id": supervisor,
            "registered_number": "+15550100",
            "answered": {"calling_number": "+15550100"},
        })),
        201,
    )?;
    if sup["state"] != "active" {
        return Err(format!("supervision not active: {sup}"));
    }
    Ok((call_id, call_took))
}

fn run_client(
    args: &Args,
    api: SocketAddr,
    id: usize,
    start: &Barrier,
    measuring: &AtomicBool,
    stop: &AtomicBool,
) -> Tally {
    let client = Client::new(api, Some(&args.token));
    let mut tally = Tally::default();
    start.wait();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let supervisor = supervisor_of(args, id, n);
        n += 1;
        let t0 = Instant::now();
        let result = setup(&client, id, &supervisor);
        let took = t0.elapsed();
        let counted = measuring.load(Ordering::Relaxed);
        let result = result.and_then(|(call_id, call_took)| {
            if counted {
                tally.setups.record(took.as_nanos() as u64);
                tally.calls.record(call_took.as_nanos() as u64);
            }
            client
                .expect("DELETE", &format!("/v1/calls/{call_id}"), None, 204)
                .map(drop)
        });
        if let Err(e) = result
            && counted
        {
            tally.failures += 1;
            tally.first_error.get_or_insert(e);
        }
    }
    tally
}

fn main() -> ExitCode {
    let args = Arc::new(Args::parse());
    if args.clients == 0 || args.duration_secs == 0 {
        eprintln!("setuprate: --clients and --duration-secs must be at least 1");
        return ExitCode::from(2);
    }
    let api = match http::api_addr(&args.api) {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("setuprate: {e}");
            return ExitCode::from(2);
        }
    };
    let streams = if args.streams > 0 {
        match stream_tokens(&args, api).and_then(|t| Streams::open(api, &t, args.streams)) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("setuprate: cannot open the event streams: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let start = Arc::new(Barrier::new(args.clients + 1));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..args.clients)
        .map(|i| {
            let (args, start, measuring, stop) =
                (args.clone(), start.clone(), measuring.clone(), stop.clone());
            std::thread::spawn(move || run_client(&args, api, i, &start, &measuring, &stop))
        })
        .collect();
    start.wait();
    std::thread::sleep(Duration::from_secs(1));
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(args.duration_secs));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let received = streams.as_ref().map(Streams::received).unwrap_or_default();
    drop(streams);
    let mut all = Histogram::default();
    let mut calls = Histogram::default();
    let mut failures = 0;
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(t) => {
                all.merge(&t.setups);
                calls.merge(&t.calls);
                failures += t.failures;
                if first_error.is_none() {
                    first_error = t.first_error;
                }
            }
            Err(_) => {
                eprintln!("setuprate: a client thread panicked");
                return ExitCode::FAILURE;
            }
        }
    }
    let setups = all.count();
    let rate = setups as f64 / elapsed;
    let ms = |ns: Option<u64>| ns.unwrap_or(0) as f64 / 1e6;
    let (p50, p99, max) = (
        ms(all.quantile(0.5)),
        ms(all.quantile(0.99)),
        ms(Some(all.max())),
    );
    let (call_p50, call_p99) = (ms(calls.quantile(0.5)), ms(calls.quantile(0.99)));
    println!(
        "clients  streams  setups  setups/s  p50 ms  p99 ms  max ms  call p50  call p99  failures"
    );
    println!(
        "{:>7}  {:>7}  {:>6}  {:>8.0}  {:>6.2}  {:>6.2}  {:>6.2}  {:>8.2}  {:>8.2}  {:>8}",
        args.clients, args.streams, setups, rate, p50, p99, max, call_p50, call_p99, failures
    );
    println!(
        "{}",
        json!({
            "clients": args.clients,
            "streams": args.streams,
            "stream_viewer": format!("{:?}", args.stream_viewer).to_lowercase(),
            "stream_bytes": received.bytes,
            "streams_ended": received.ended,
            "setups": setups,
            "setups_per_s": rate,
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": max,
            "call_p50_ms": call_p50,
            "call_p99_ms": call_p99,
            "failures": failures,
        })
    );
    if received.ended > 0 {
        eprintln!(
            "setuprate: {} event streams ended during the run",
            received.ended
        );
        return ExitCode::FAILURE;
    }
    if let Some(e) = first_error {
        eprintln!("setuprate: first failure: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
