//! sipp (Debian's `sip-tester`) as the rig's caller (UAC) and callee (UAS), running the
//! scenarios of `tests/ng/`. They carry the signalling only: the test's own endpoints send and
//! count the RTP. Each scenario `<log>`s what the test needs (where its SDP says to send RTP,
//! how the call ended) to a file the rig polls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::process::DaemonProcess;

/// The rig's scenarios and Kamailio configuration template.
pub const NG_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ng");

/// Which party sends the BYE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hangup {
    Caller,
    Callee,
}

impl Hangup {
    fn as_str(self) -> &'static str {
        match self {
            Hangup::Caller => "caller",
            Hangup::Callee => "callee",
        }
    }
}

/// A line a scenario logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logged {
    /// The caller got the 200 OK: `relay` is the media address its SDP names.
    Answered {
        call: usize,
        call_id: String,
        relay: SocketAddr,
    },
    /// The callee got the INVITE: `relay` is the media address its SDP names.
    Offered { call: usize, relay: SocketAddr },
    /// The BYE of `by` was answered (the caller's scenario) or received (the callee's).
    Ended { call: usize, by: Hangup },
}

impl Logged {
    /// One line of a scenario's `<log>` file (sipp may prefix it with a timestamp).
    pub fn parse(line: &str) -> Option<Logged> {
        let start = ["answered ", "offered ", "ended "]
            .iter()
            .filter_map(|w| line.find(w))
            .min()?;
        let mut words = line[start..].split_whitespace();
        let kind = words.next()?;
        let mut call = None;
        let mut call_id = None;
        let mut relay = None;
        let mut by = None;
        for word in words {
            let (key, value) = word.split_once('=')?;
            match key {
                "call" => call = value.parse().ok(),
                "call-id" => call_id = Some(value.to_owned()),
                "relay" => relay = value.parse().ok(),
                "by" => {
                    by = match value {
                        "caller" => Some(Hangup::Caller),
                        "callee" => Some(Hangup::Callee),
                        _ => None,
                    }
                }
                _ => {}
            }
        }
        let call = call?;
        match kind {
            "answered" => Some(Logged::Answered {
                call,
                call_id: call_id?,
                relay: relay?,
            }),
            "offered" => Some(Logged::Offered {
                call,
                relay: relay?,
            }),
            "ended" => Some(Logged::Ended { call, by: by? }),
            _ => None,
        }
    }
}

/// sipp's end-of-run counters (its `-trace_stat` file, last line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SippStats {
    pub successful: u64,
    pub failed: u64,
}

impl SippStats {
    /// The cumulative `SuccessfulCall(C)` and `FailedCall(C)` columns of the last row of a
    /// `-trace_stat` file (`;`-separated, a header line first).
    pub fn parse(csv: &str) -> Option<SippStats> {
        let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
        let header: Vec<&str> = lines.next()?.split(';').collect();
        let last: Vec<&str> = lines.next_back()?.split(';').collect();
        let column = |name: &str| -> Option<u64> {
            let i = header.iter().position(|h| *h == name)?;
            last.get(i)?.trim().parse().ok()
        };
        Some(SippStats {
            successful: column("SuccessfulCall(C)")?,
            failed: column("FailedCall(C)")?,
        })
    }
}

/// One sipp process; killed on drop.
pub struct Sipp {
    pub process: DaemonProcess,
    log_file: PathBuf,
    stat_file: PathBuf,
}

/// What the rig tells sipp besides its scenario.
pub struct SippRun<'a> {
    /// Its working directory (sipp writes its files there).
    pub dir: &'a Path,
    /// `uac` or `uas`, for file names and reports.
    pub role: &'static str,
    /// The scenario file in [`NG_DIR`].
    pub scenario: &'static str,
    pub sip_port: u16,
    /// The calls to place (UAC) or to take before exiting (UAS).
    pub calls: usize,
    /// Call length in ms, for the party that hangs up (`-d`).
    pub hold_ms: u64,
}

impl Sipp {
    fn spawn(run: &SippRun<'_>, extra: &[String]) -> Sipp {
        let log_file = run.dir.join(format!("{}_logs.log", run.role));
        let stat_file = run.dir.join(format!("{}_stat.csv", run.role));
        let scenario = Path::new(NG_DIR).join(run.scenario);
        let mut command = Command::new("sipp");
        command.current_dir(run.dir).args(extra).args([
            "-sf",
            &scenario.to_string_lossy(),
            "-i",
            "127.0.0.1",
            "-p",
            &run.sip_port.to_string(),
            "-m",
            &run.calls.to_string(),
            "-d",
            &run.hold_ms.to_string(),
            // No terminal: no keyboard control, no screen refresh.
            "-nostdin",
            "-trace_logs",
            "-log_file",
            &log_file.to_string_lossy(),
            "-trace_err",
            "-error_file",
            &run.dir
                .join(format!("{}_errors.log", run.role))
                .to_string_lossy(),
            "-trace_stat",
            "-stf",
            &stat_file.to_string_lossy(),
            // A statistics row every second, and the final one at exit.
            "-fd",
            "1",
        ]);
        Sipp {
            process: DaemonProcess::spawn(format!("sipp {}", run.role), command),
            log_file,
            stat_file,
        }
    }

    /// The callee: answers `run.calls` calls on `run.sip_port`, then exits; with
    /// [`Hangup::Callee`] it hangs up each call after `run.hold_ms`.
    pub fn uas(run: &SippRun<'_>) -> Sipp {
        Sipp::spawn(run, &[])
    }

    /// The caller: places `run.calls` calls at `rate_cps` through the proxy at `proxy`, one per
    /// line of the injection file `calls_csv` (the call's index, the caller's RTP port, the
    /// callee's: see `tests/ng/uac.xml`).
    pub fn uac(run: &SippRun<'_>, proxy: SocketAddr, rate_cps: u32, calls_csv: &Path) -> Sipp {
        Sipp::spawn(
            run,
            &[
                proxy.to_string(),
                "-s".into(),
                "service".into(),
                "-inf".into(),
                calls_csv.to_string_lossy().into_owned(),
                "-r".into(),
                rate_cps.to_string(),
            ],
        )
    }

    /// The injection file of [`Sipp::uac`] for calls whose caller and callee RTP ports are
    /// `ports[i]`.
    pub fn calls_csv(ports: &[(u16, u16)]) -> String {
        let mut csv = String::from("SEQUENTIAL\n");
        for (i, (caller, callee)) in ports.iter().enumerate() {
            csv.push_str(&format!("{i};{caller};{callee}\n"));
        }
        csv
    }

    /// Every line its scenario logged so far.
    pub fn logged(&self) -> Vec<Logged> {
        std::fs::read_to_string(&self.log_file)
            .unwrap_or_default()
            .lines()
            .filter_map(Logged::parse)
            .collect()
    }

    /// Its final counters, once it has exited.
    pub fn stats(&self) -> Option<SippStats> {
        SippStats::parse(&std::fs::read_to_string(&self.stat_file).ok()?)
    }

    /// The exit status, waiting up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        self.process.wait_exit(within)
    }
}

/// The scenario files for a hang-up direction: (caller's, callee's).
pub fn scenarios(hangup: Hangup) -> (&'static str, &'static str) {
    match hangup {
        Hangup::Caller => ("uac.xml", "uas.xml"),
        Hangup::Callee => ("uac_callee_bye.xml", "uas_bye.xml"),
    }
}

impl std::fmt::Display for Hangup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_log_lines_parse() {
        assert_eq!(
            Logged::parse(
                "2026-12-08 04:10:01.1 answered call=3 call-id=4-1913@127.0.0.1 relay=127.0.0.1:42310"
            ),
            Some(Logged::Answered {
                call: 3,
                call_id: "4-1913@127.0.0.1".into(),
                relay: "127.0.0.1:42310".parse().unwrap(),
            })
        );
        assert_eq!(
            Logged::parse("offered call=0 relay=127.0.0.1:42300"),
            Some(Logged::Offered {
                call: 0,
                relay: "127.0.0.1:42300".parse().unwrap()
            })
        );
        assert_eq!(
            Logged::parse("ended call=1 by=callee"),
            Some(Logged::Ended {
                call: 1,
                by: Hangup::Callee
            })
        );
        // An SDP that named no usable address (a relay that wrote garbage) logs no event.
        assert_eq!(Logged::parse("offered call=0 relay=:"), None);
        assert_eq!(Logged::parse("something else"), None);
    }

    #[test]
    fn the_last_statistics_row_gives_the_call_totals() {
        let csv = "StartTime;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);\n\
                   x;0;0;0;0;\n\
                   y;5;20;0;1;\n";
        assert_eq!(
            SippStats::parse(csv),
            Some(SippStats {
                successful: 20,
                failed: 1
            })
        );
        assert_eq!(SippStats::parse("StartTime;\n"), None);
    }

    #[test]
    fn the_injection_file_numbers_the_calls() {
        assert_eq!(
            Sipp::calls_csv(&[(4000, 4002), (4004, 4006)]),
            "SEQUENTIAL\n0;4000;4002\n1;4004;4006\n"
        );
    }
}
