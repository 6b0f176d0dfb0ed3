//! The daemon under test, started in-process on free ports.

use std::net::SocketAddr;
use std::time::Instant;

use controlplane::config::Config;
use controlplane::daemon::{self, RunningDaemon};

use crate::api::{Api, metric_sum};

/// A daemon of its own for one test; shut down on drop.
pub struct TestDaemon {
    running: Option<RunningDaemon>,
    pub http_addr: SocketAddr,
    pub api: Api,
    pub started_at: Instant,
}

impl TestDaemon {
    /// A daemon with the test defaults: HTTP on an ephemeral loopback port, and a media
    /// timeout far longer than any test so a deliberately silent leg is not hung up.
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(|_| {})
    }

    /// As [`TestDaemon::start`], with `adjust` applied to the configuration last.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestDaemon {
        let mut config = Config::default();
        config.http.listen = "127.0.0.1:0".parse().expect("loopback address");
        config.media.timeout_secs = 60;
        adjust(&mut config);
        let started_at = Instant::now();
        let running = daemon::spawn(config).expect("daemon starts");
        let http_addr = running.http_addr;
        TestDaemon {
            running: Some(running),
            http_addr,
            api: Api::new(http_addr),
            started_at,
        }
    }
}

impl TestDaemon {
    /// The data plane's own account of its timing and drops, for failure reports: mix ticks
    /// run against ticks due since start (a starved worker skips ticks), tick overruns, and
    /// every non-zero drop counter.
    pub fn health(&self) -> String {
        let m = self.api.metrics();
        let sum = |name: &str| metric_sum(&m, name, &[]).unwrap_or(0.0);
        let due = self.started_at.elapsed().as_secs_f64() / 0.020;
        let mut s = format!(
            "daemon: {:.0} mix ticks run of ~{due:.0} due, {:.0} tick overruns",
            sum("earshot_mix_tick_duration_seconds_count"),
            sum("earshot_tick_overruns_total")
        );
        for line in m
            .lines()
            .filter(|l| l.starts_with("earshot_packets_dropped_total{"))
        {
            if line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v > 0.0)
            {
                s.push_str("; ");
                s.push_str(line.trim_start_matches("earshot_packets_"));
            }
        }
        s
    }
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        if let Some(Err(err)) = self.running.take().map(RunningDaemon::shutdown) {
            // Not a panic: a drop may run while a failed test is already unwinding.
            eprintln!("daemon shutdown failed: {err:#}");
        }
    }
}
