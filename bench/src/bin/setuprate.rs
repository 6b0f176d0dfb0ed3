//! Control-plane setup rate (SPEC §6: "supervised-call setups (call + supervision) ≥ 1,000/s,
//! p99 ≤ 10 ms"): `--clients` threads each loop creating a call for an agent and starting a
//! supervision on it whose supervisor's leg is already answered (`POST /v1/calls`, then
//! `POST /v1/calls/{id}/supervisions`: media connects in listen), timing the pair, then
//! deleting the call (not timed) so the appliance's ports are not exhausted. Prints a table and
//! a JSON line.
//!
//! ```text
//! setuprate --api http://127.0.0.1:18080 --clients 8 --duration-secs 10
//! ```
//! The admin token is `--token` or `EARSHOT_ADMIN_TOKEN`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::{Value, json};

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
}

/// One client's results: setup latencies and failures.
#[derive(Default)]
struct Tally {
    setups: Vec<Duration>,
    failures: u64,
    first_error: Option<String>,
}

fn request(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    token: &str,
    body: Option<&Value>,
) -> Result<Value, String> {
    let auth = format!("Bearer {token}");
    let result = match (method, body) {
        ("POST", Some(b)) => agent
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .send(b.to_string()),
        ("DELETE", _) => agent.delete(url).header("Authorization", &auth).call(),
        _ => return Err(format!("unsupported request {method} {url}")),
    };
    let mut resp = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{method} {url}: {e}"))?;
    if text.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).map_err(|e| format!("{method} {url}: not JSON ({e})"))
}

/// One setup: the call, then the answered supervision; the call's id for the teardown.
fn setup(agent: &ureq::Agent, args: &Args, client: usize) -> Result<String, String> {
    let call = request(
        agent,
        "POST",
        &format!("{}/v1/calls", args.api),
        &args.token,
        Some(&json!({"agent_id": format!("agent-{client}")})),
    )?;
    let id = call["id"]
        .as_str()
        .ok_or_else(|| format!("no call id in {call}"))?
        .to_owned();
    let sup = request(
        agent,
        "POST",
        &format!("{}/v1/calls/{id}/supervisions", args.api),
        &args.token,
        Some(&json!({
            "supervisor_id": format!("sup-{client}"),
            "registered_number": "+15550100",
            "answered": {"calling_number": "+15550100"},
        })),
    )?;
    if sup["state"] != "active" {
        return Err(format!("supervision not active: {sup}"));
    }
    Ok(id)
}

fn client(
    args: &Args,
    client: usize,
    start: &Barrier,
    measuring: &AtomicBool,
    stop: &AtomicBool,
) -> Tally {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(true)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut tally = Tally::default();
    start.wait();
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let result = setup(&agent, args, client);
        let took = t0.elapsed();
        let counted = measuring.load(Ordering::Relaxed);
        match result {
            Ok(id) => {
                if counted {
                    tally.setups.push(took);
                }
                let url = format!("{}/v1/calls/{id}", args.api);
                if let Err(e) = request(&agent, "DELETE", &url, &args.token, None)
                    && counted
                {
                    tally.failures += 1;
                    tally.first_error.get_or_insert(e);
                }
            }
            Err(e) => {
                if counted {
                    tally.failures += 1;
                    tally.first_error.get_or_insert(e);
                }
            }
        }
    }
    tally
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn main() -> ExitCode {
    let args = Arc::new(Args::parse());
    if args.clients == 0 || args.duration_secs == 0 {
        eprintln!("setuprate: --clients and --duration-secs must be at least 1");
        return ExitCode::from(2);
    }
    let start = Arc::new(Barrier::new(args.clients + 1));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..args.clients)
        .map(|i| {
            let (args, start, measuring, stop) =
                (args.clone(), start.clone(), measuring.clone(), stop.clone());
            std::thread::spawn(move || client(&args, i, &start, &measuring, &stop))
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
    let mut all = Vec::new();
    let mut failures = 0;
    let mut first_error = None;
    for h in handles {
        match h.join() {
            Ok(t) => {
                all.extend(t.setups);
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
    all.sort_unstable();
    let rate = all.len() as f64 / elapsed;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (p50, p99, max) = (
        percentile(&all, 50.0),
        percentile(&all, 99.0),
        all.last().copied().unwrap_or_default(),
    );
    println!("clients  setups  setups/s  p50 ms  p99 ms  max ms  failures");
    println!(
        "{:>7}  {:>6}  {:>8.0}  {:>6.2}  {:>6.2}  {:>6.2}  {:>8}",
        args.clients,
        all.len(),
        rate,
        ms(p50),
        ms(p99),
        ms(max),
        failures
    );
    println!(
        "{}",
        json!({
            "clients": args.clients,
            "setups": all.len(),
            "setups_per_s": rate,
            "p50_ms": ms(p50),
            "p99_ms": ms(p99),
            "max_ms": ms(max),
            "failures": failures,
        })
    );
    if let Some(e) = first_error {
        eprintln!("setuprate: first failure: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
