//! The `earshotd` binary as a child process, for tests that need a real process (signals,
//! `kill -9`, exit codes, dropped capabilities). Only the control plane's integration tests
//! know where cargo built the binary, so they pass it in; [`earshotd`] runs it inside the
//! appliance namespace of a [`Veth`] with `ip netns exec`, as an operator would.
//!
//! Its stdout and stderr are collected as they come. Dropping a [`DaemonProcess`] kills the
//! process if it still runs, and prints everything it wrote when the test is failing.

use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::netns::Veth;

/// The HTTP port of a daemon started by [`earshotd`] (on the veth's appliance address, in a
/// namespace of its own: no other test competes for it).
pub const HTTP_PORT: u16 = 18080;

/// Starts `bin` (the `earshotd` binary) in `veth`'s appliance namespace through
/// `ip netns exec`, on the appliance address (`--media-ip`, `--http-listen` on [`HTTP_PORT`])
/// with an in-memory database (`--db :memory:`: nothing written to the working directory),
/// with `args` after those. `wrapper` (e.g. `setpriv …`) runs it, when not empty.
pub fn earshotd(bin: &str, veth: &Veth, wrapper: &[&str], args: &[&str]) -> DaemonProcess {
    let ip = veth.appliance_ip.to_string();
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &veth.appliance])
        .args(wrapper)
        .arg(bin)
        .args([
            "--media-ip",
            &ip,
            "--http-listen",
            &format!("{ip}:{HTTP_PORT}"),
            // NG off: these daemons are driven over HTTP only.
            "--ng-listen",
            "",
            "--db",
            ":memory:",
            "--admin-token",
            crate::api::ADMIN_TOKEN,
        ])
        .args(args);
    DaemonProcess::spawn(format!("earshotd in {}", veth.appliance), command)
}

/// A client of the daemon [`earshotd`] starts, usable from the pair's namespaces only.
pub fn earshotd_api(veth: &Veth) -> Api {
    Api::confined(
        std::net::SocketAddr::from((veth.appliance_ip, HTTP_PORT)),
        vec![veth.peer_id(), veth.appliance_id()],
    )
}

/// A running (or exited) daemon process.
pub struct DaemonProcess {
    label: String,
    child: Child,
    exited: Option<ExitStatus>,
    /// Everything it wrote, stdout and stderr interleaved by line.
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl DaemonProcess {
    /// Starts `command` with stdout and stderr collected, `RUST_LOG=info` and no colours
    /// unless the command sets them. `label` names it in reports.
    pub fn spawn(label: impl Into<String>, mut command: Command) -> DaemonProcess {
        let label = label.into();
        let mut child = command
            .env("NO_COLOR", "1")
            // `earshotd`'s own info lines stay in whatever the filter: the `listening` line
            // tells [`DaemonProcess::wait_listening`] the bound address.
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG")
                    .map_or_else(|_| "info".into(), |v| format!("{v},earshotd=info")),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {label} ({command:?}): {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for pipe in [stdout, stderr].into_iter().flatten() {
            let output = Arc::clone(&output);
            readers.push(thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    let mut out = output.lock().expect("output lock");
                    out.push_str(&line);
                    out.push('\n');
                }
            }));
        }
        DaemonProcess {
            label,
            child,
            exited: None,
            output,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far.
    pub fn output(&self) -> String {
        self.output.lock().expect("output lock").clone()
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("waitpid");
        }
        self.exited
    }

    /// Waits up to `within` for the process to exit; then waits for its output to be read.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        while self.try_wait().is_none() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        if self.exited.is_some() {
            for r in self.readers.drain(..) {
                let _ = r.join();
            }
        }
        self.exited
    }

    /// Sends SIGTERM (the graceful stop).
    pub fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-s", "TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s TERM {} failed", self.pid());
    }

    /// `kill -9`, and waits for the process to be gone.
    pub fn kill9(&mut self) -> ExitStatus {
        self.child.kill().expect("SIGKILL");
        let status = self.child.wait().expect("waitpid");
        self.exited = Some(status);
        status
    }

    /// The HTTP address the daemon bound, read from its `listening` log line (so a test can
    /// start it with `--http-listen 127.0.0.1:0` and let the OS choose the port). Polls its
    /// output every 20 ms; fails with that output if it exits first or `within` passes.
    pub fn wait_listening(&mut self, within: Duration) -> Result<SocketAddr, String> {
        let deadline = Instant::now() + within;
        loop {
            let output = self.output();
            if let Some(addr) = output.lines().find_map(listening_addr) {
                return Ok(addr);
            }
            if let Some(status) = self.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before listening; its output:\n{output}",
                    self.label
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not listening within {within:?}; its output:\n{output}",
                    self.label
                ));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `GET /healthz` through `api` every 50 ms until it answers 200. Fails with the
    /// process's output if it exits first or `within` passes.
    pub fn wait_healthy(&mut self, api: &Api, within: Duration) -> Result<(), String> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            if let Some(status) = self.try_wait() {
                return Err(format!(
                    "{} exited ({status}) before it was healthy; last probe: {last}; its output:\n{}",
                    self.label,
                    self.output()
                ));
            }
            match api.try_request("GET", "/healthz", None) {
                Ok(r) if r.status == 200 => return Ok(()),
                Ok(r) => last = format!("HTTP {}: {}", r.status, r.text),
                Err(e) => last = e,
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{} not healthy within {within:?}; last probe: {last}; its output:\n{}",
                    self.label,
                    self.output()
                ));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The `http=` field of `earshotd`'s `listening` line (text log format), if `line` is that line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let (_, fields) = line.split_once(" listening ")?;
    fields
        .split_whitespace()
        .find_map(|f| f.strip_prefix("http="))?
        .parse()
        .ok()
}

impl Drop for DaemonProcess {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            self.exited = self.child.wait().ok();
        }
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        if thread::panicking() {
            eprintln!(
                "--- {} (pid {}, {:?}) output ---\n{}--- end of {} output ---",
                self.label,
                self.child.id(),
                self.exited,
                self.output(),
                self.label
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_the_bound_address() {
        let line = "2026-12-08T00:40:01.123Z  INFO earshotd: listening http=127.0.0.1:41234 \
                    media_ip=127.0.0.1 media_ports=40000-40039 backend=io_uring workers=1 db=:memory:";
        assert_eq!(
            listening_addr(line),
            Some(SocketAddr::from(([127, 0, 0, 1], 41234)))
        );
        assert_eq!(listening_addr("INFO earshotd: HTTP connection cap"), None);
    }
}
