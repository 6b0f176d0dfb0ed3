//! The daemon under test, started in-process on free ports: on loopback, or in the appliance
//! namespace of a veth pair (see [`crate::setup`]).

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use controlplane::config::Config;
use controlplane::daemon::{self, RunningDaemon};
use dataplane::engine::Backend;

use crate::api::{Api, metric_sum};
use crate::netns::Veth;
use crate::setup::{Net, Setup};

/// A daemon of its own for one test; shut down on drop.
pub struct TestDaemon {
    running: Option<RunningDaemon>,
    pub http_addr: SocketAddr,
    pub api: Api,
    pub started_at: Instant,
    /// Where the daemon runs, when not on loopback: it is shut down from inside.
    veth: Option<Arc<Veth>>,
}

impl TestDaemon {
    /// A daemon with the test defaults: HTTP on an ephemeral loopback port, an in-memory
    /// database, and a media timeout far longer than any test so a deliberately silent leg is
    /// not hung up.
    pub fn start() -> TestDaemon {
        TestDaemon::start_with(|_| {})
    }

    /// As [`TestDaemon::start`], with `adjust` applied to the configuration last.
    pub fn start_with(adjust: impl FnOnce(&mut Config)) -> TestDaemon {
        TestDaemon::start_in(&Setup::loopback(), adjust)
    }

    /// A daemon with the test defaults on `setup`'s network and backend, `adjust` applied
    /// last. Panics with the setup and the error if it does not start.
    pub fn start_in(setup: &Setup, adjust: impl FnOnce(&mut Config)) -> TestDaemon {
        TestDaemon::try_start_in(setup, adjust)
            .unwrap_or_else(|e| panic!("the daemon did not start ({}): {e:#}", setup.describe()))
    }

    /// As [`TestDaemon::start_in`], returning the error instead.
    pub fn try_start_in(
        setup: &Setup,
        adjust: impl FnOnce(&mut Config),
    ) -> anyhow::Result<TestDaemon> {
        let mut config = Config::default();
        config.media.timeout_secs = 60;
        // A private database per daemon (several run in one test process).
        config.store.path = ":memory:".into();
        config.auth.admin_token = Some(crate::api::ADMIN_TOKEN.to_owned());
        setup.configure(&mut config);
        adjust(&mut config);
        let started_at = Instant::now();
        let (running, api) = match &setup.net {
            Net::Loopback => {
                let running = daemon::spawn(config)?;
                let api = Api::new(running.http_addr);
                (running, api)
            }
            Net::Veth(v) => {
                // Every thread of the daemon starts from this one, so all of them (the engine's
                // workers, the HTTP runtime) live in the appliance namespace.
                let running = v.in_appliance(move || daemon::spawn(config))?;
                let api = Api::confined(running.http_addr, vec![v.peer_id(), v.appliance_id()]);
                (running, api)
            }
        };
        Ok(TestDaemon {
            http_addr: running.http_addr,
            running: Some(running),
            api,
            started_at,
            veth: setup.veth().cloned(),
        })
    }

    /// The running daemon (its state, its engine).
    pub fn running(&self) -> &RunningDaemon {
        self.running.as_ref().expect("running until dropped")
    }

    /// The backend the engine runs (what `auto` chose).
    pub fn backend(&self) -> Backend {
        self.running().state().engine().backend()
    }

    /// The data plane's own account of its timing and drops, for failure reports: the
    /// backend, mix ticks run against ticks due since start (a starved worker skips ticks),
    /// tick overruns, and every non-zero drop counter and AF_XDP socket statistic.
    pub fn health(&self) -> String {
        let m = self.api.metrics();
        let sum = |name: &str| metric_sum(&m, name, &[]).unwrap_or(0.0);
        // Every worker ticks on its own.
        let workers = m
            .lines()
            .filter(|l| l.starts_with("earshot_mix_tick_duration_seconds_count"))
            .count()
            .max(1);
        let due = workers as f64 * self.started_at.elapsed().as_secs_f64() / 0.020;
        let mut s = format!(
            "daemon ({}): {:.0} mix ticks run of ~{due:.0} due, {:.0} tick overruns",
            self.backend().as_str(),
            sum("earshot_mix_tick_duration_seconds_count"),
            sum("earshot_tick_overruns_total")
        );
        for line in nonzero_samples(&m, "earshot_packets_dropped_total{") {
            s.push_str("; ");
            s.push_str(line.trim_start_matches("earshot_packets_"));
        }
        for line in nonzero_samples(&m, "earshot_xsk_") {
            s.push_str("; ");
            s.push_str(line);
        }
        s
    }
}

/// The samples of metrics starting with `prefix` whose value is not zero.
fn nonzero_samples<'a>(metrics: &'a str, prefix: &'a str) -> impl Iterator<Item = &'a str> {
    metrics.lines().filter(move |l| {
        l.starts_with(prefix)
            && l.rsplit(' ')
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .is_some_and(|v| v != 0.0)
    })
}

impl Drop for TestDaemon {
    fn drop(&mut self) {
        let Some(running) = self.running.take() else {
            return;
        };
        // From inside its namespace, like everything else it does (detaching the XDP program
        // talks netlink in the calling thread's namespace).
        // Not a panic: a drop may run while a failed test is already unwinding.
        let result = match &self.veth {
            Some(v) => panic::catch_unwind(AssertUnwindSafe(|| {
                v.in_appliance(move || running.shutdown())
            }))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("could not enter {}", v.appliance))),
            None => running.shutdown(),
        };
        if let Err(err) = result {
            eprintln!("daemon shutdown failed: {err:#}");
        }
    }
}
