//! Two network namespaces joined by a veth pair, for tests on a real interface
//! (docs/design.md §9.12): the appliance runs in one, its peers (phones, the API client, ping) in
//! the other, and nothing they send can leave the pair.
//!
//! [`Veth::create`] creates `es-a-<pid>-<n>` and `es-p-<pid>-<n>` with `iproute2`, joins them by
//! a veth pair (`es<pid>a<n>` / `es<pid>p<n>`, pid in hex, at most 15 characters) addressed
//! `10.77.<n>.1/24` (appliance) and `.2` (peer), with the links and `lo` up; dropping it deletes
//! both namespaces, which destroys the pair. A [`Veth`] is also made before anything is
//! created, so a half-built fixture is cleaned up by the same `Drop`.
//!
//! Code runs inside a namespace on a thread of its own ([`Veth::in_appliance`],
//! [`Veth::in_peer`]), which enters it the way `ip netns exec` does: `setns(CLONE_NEWNET)`,
//! then a private mount namespace with `/sys` remounted, so `/sys/class/net` shows the
//! namespace's interfaces (the engine reads it). Sockets keep the namespace they were created
//! in, and threads start in the namespaces of the thread that spawns them, so a daemon started
//! from such a thread lives entirely in the namespace.
//!
//! This is the one module of the harness with `unsafe`: `setns(2)`, `unshare(2)`, `mount(2)`.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd as _;
use std::os::unix::fs::MetadataExt as _;
use std::panic;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// Fixtures made by this process so far; numbers the names and the /24.
static FIXTURES: AtomicU32 = AtomicU32::new(0);

/// Whether this process may create namespaces (it runs as root). Test binaries that need them
/// run their tests through [`crate::needs_root`].
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Panics, saying why, when this process may not create namespaces: a test that needs them and
/// was not made with [`crate::needs_root::trial`] fails instead of passing without running.
pub fn assert_root() {
    assert!(
        is_root(),
        "{}: run this test through earshot_tests::needs_root::trial",
        crate::needs_root::REASON
    );
}

/// A network namespace, by the identity of its nsfs inode (what `ip netns identify` compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NsId {
    dev: u64,
    ino: u64,
}

impl NsId {
    /// The network namespace of the calling thread.
    pub fn current() -> NsId {
        NsId::of_path("/proc/thread-self/ns/net")
    }

    fn of_path(path: &str) -> NsId {
        let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {path}: {e}"));
        NsId {
            dev: m.dev(),
            ino: m.ino(),
        }
    }
}

/// The appliance and peer namespaces and the veth pair between them. Deleted on drop.
#[derive(Debug)]
pub struct Veth {
    /// The namespace the appliance runs in.
    pub appliance: String,
    /// The namespace of everything that talks to the appliance.
    pub peer: String,
    /// The appliance's end of the pair (in `appliance`).
    pub appliance_if: String,
    /// The peer's end (in `peer`).
    pub peer_if: String,
    pub appliance_ip: Ipv4Addr,
    pub peer_ip: Ipv4Addr,
    /// Receive and transmit queues of each end.
    pub queues: u32,
}

impl Veth {
    /// A fresh pair with one queue per end. Panics (after cleaning up) if `ip` fails.
    pub fn create() -> Veth {
        Veth::with_queues(1)
    }

    /// A fresh pair whose ends have `queues` receive and transmit queues each.
    pub fn with_queues(queues: u32) -> Veth {
        let n = FIXTURES.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Only unique within this process, and that is enough: each pair lives in namespaces
        // of its own, so equal subnets of two processes never meet.
        let subnet = (n % 254 + 1) as u8;
        let veth = Veth {
            appliance: format!("es-a-{pid}-{n}"),
            peer: format!("es-p-{pid}-{n}"),
            appliance_if: format!("es{pid:x}a{n}"),
            peer_if: format!("es{pid:x}p{n}"),
            appliance_ip: Ipv4Addr::new(10, 77, subnet, 1),
            peer_ip: Ipv4Addr::new(10, 77, subnet, 2),
            queues,
        };
        assert!(
            veth.appliance_if.len() <= 15 && veth.peer_if.len() <= 15,
            "interface names longer than IFNAMSIZ: {veth:?}"
        );
        if let Err(e) = veth.build() {
            // `veth` drops here and deletes whatever was made.
            panic!("creating the test namespaces {veth:?}: {e}");
        }
        veth
    }

    fn build(&self) -> Result<(), String> {
        for ns in [&self.appliance, &self.peer] {
            // A leftover of a dead process that had our pid would be in the way.
            if File::open(format!("/var/run/netns/{ns}")).is_ok() {
                let _ = ip(&["netns", "del", ns]);
            }
            ip(&["netns", "add", ns])?;
        }
        let q = self.queues.to_string();
        ip(&[
            "link",
            "add",
            &self.appliance_if,
            "netns",
            &self.appliance,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
            "type",
            "veth",
            "peer",
            "name",
            &self.peer_if,
            "netns",
            &self.peer,
            "numrxqueues",
            &q,
            "numtxqueues",
            &q,
        ])?;
        for (ns, dev, ip_addr) in [
            (&self.appliance, &self.appliance_if, self.appliance_ip),
            (&self.peer, &self.peer_if, self.peer_ip),
        ] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip_addr}/24"),
                "dev",
                dev,
            ])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        Ok(())
    }

    /// The appliance namespace's identity.
    pub fn appliance_id(&self) -> NsId {
        NsId::of_path(&format!("/var/run/netns/{}", self.appliance))
    }

    /// The peer namespace's identity.
    pub fn peer_id(&self) -> NsId {
        NsId::of_path(&format!("/var/run/netns/{}", self.peer))
    }

    /// Runs `f` on a thread inside the appliance namespace and returns what it returns; a
    /// panic in `f` is resumed on the caller.
    pub fn in_appliance<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        run_in(&self.appliance, f)
    }

    /// Runs `f` on a thread inside the peer namespace, as [`Veth::in_appliance`].
    pub fn in_peer<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        run_in(&self.peer, f)
    }

    /// Moves the calling thread into the appliance namespace for good (for threads made for
    /// that alone).
    pub fn enter_appliance(&self) -> io::Result<()> {
        enter(&self.appliance)
    }

    /// Moves the calling thread into the peer namespace for good.
    pub fn enter_peer(&self) -> io::Result<()> {
        enter(&self.peer)
    }

    /// Panics unless the calling thread is in one of the pair's namespaces: the guard in
    /// front of anything that connects to the pair's addresses, which would otherwise be
    /// routed out of the machine.
    pub fn assert_inside(&self) {
        let here = NsId::current();
        assert!(
            here == self.peer_id() || here == self.appliance_id(),
            "this thread is not in {} or {}: refusing to send to {}",
            self.peer,
            self.appliance,
            self.appliance_ip
        );
    }

    /// Pings the appliance's address from the calling thread, which must be in the pair's
    /// namespaces: `count` ICMP echo requests, one at a time, each waiting up to `timeout`
    /// for its reply. Returns how many were answered.
    pub fn ping_appliance(&self, count: u16, timeout: Duration) -> io::Result<u16> {
        self.assert_inside();
        icmp_echo(self.appliance_ip, count, timeout)
    }

    /// `ip -d link show` of the appliance's end, as text.
    pub fn appliance_link(&self) -> String {
        ip(&[
            "-n",
            &self.appliance,
            "-d",
            "link",
            "show",
            "dev",
            &self.appliance_if,
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether an XDP program is attached to the appliance's end (in any mode).
    pub fn xdp_attached(&self) -> bool {
        xdp_in_link_details(&self.appliance_link())
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for ns in [&self.appliance, &self.peer] {
            if File::open(format!("/var/run/netns/{ns}")).is_ok()
                && let Err(e) = ip(&["netns", "del", ns])
            {
                // Not a panic: a drop may run while a failed test is already unwinding.
                eprintln!("cleaning up the test namespaces: {e}");
            }
        }
    }
}

/// Whether `ip -d link show` output shows an XDP program: the `xdp`/`xdpgeneric`/`xdpdrv`
/// flag or a `prog/xdp` line.
pub fn xdp_in_link_details(details: &str) -> bool {
    details
        .split_whitespace()
        .any(|word| word.starts_with("xdp") || word.starts_with("prog/xdp"))
}

/// Runs `ip args…`; its stdout, or an error with its stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out: Output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `ip` (is iproute2 installed?): {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn run_in<R: Send>(ns: &str, f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|scope| {
        let handle = thread::Builder::new()
            .name(format!("in {ns}"))
            .spawn_scoped(scope, || {
                enter(ns).unwrap_or_else(|e| panic!("entering network namespace {ns}: {e}"));
                f()
            })
            .expect("spawn a thread");
        match handle.join() {
            Ok(r) => r,
            Err(payload) => panic::resume_unwind(payload),
        }
    })
}

fn check(ret: libc::c_int, what: &str) -> io::Result<()> {
    if ret == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    }
}

/// Moves the calling thread into network namespace `ns` and a mount namespace of its own
/// whose `/sys` shows `ns` (what `ip netns exec` does for a process).
fn enter(ns: &str) -> io::Result<()> {
    let file = File::open(format!("/var/run/netns/{ns}"))?;
    // SAFETY: `file` is an open nsfs file for the duration of the call; setns only changes
    // the calling thread's network namespace (other threads keep theirs).
    check(
        unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) },
        "setns(CLONE_NEWNET)",
    )?;
    // SAFETY: unshare(CLONE_NEWNS) gives the calling thread a copy of its mount namespace
    // (and of its filesystem attributes); no memory is involved.
    check(
        unsafe { libc::unshare(libc::CLONE_NEWNS) },
        "unshare(CLONE_NEWNS)",
    )?;
    // Everything below stays in the copy: make every mount a slave first, so nothing
    // propagates back to the machine's own mount namespace. Only then touch /sys.
    // SAFETY: the path is a NUL-terminated literal; a propagation change reads no source,
    // type or data (null is allowed for them).
    check(
        unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_SLAVE | libc::MS_REC,
                std::ptr::null(),
            )
        },
        "making / a slave mount",
    )?;
    // SAFETY: the path is a NUL-terminated literal. An error only means nothing was mounted on
    // /sys, which the mount below then covers anyway.
    unsafe { libc::umount2(c"/sys".as_ptr(), libc::MNT_DETACH) };
    let source = CString::new(ns).map_err(|_| io::Error::other("namespace name has a NUL"))?;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; sysfs takes no
    // data. A sysfs mounted from this thread shows this thread's network namespace.
    check(
        unsafe {
            libc::mount(
                source.as_ptr(),
                c"/sys".as_ptr(),
                c"sysfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        },
        "mounting sysfs on /sys",
    )
}

/// ICMP echo: sends `count` echo requests to `dst` from the calling thread's namespace, one at
/// a time, each waiting up to `timeout` for its reply; returns how many were answered.
/// (`ping` itself is not installed everywhere; this needs only a raw socket, i.e. root.)
fn icmp_echo(dst: Ipv4Addr, count: u16, timeout: Duration) -> io::Result<u16> {
    let socket = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))?;
    let to = SockAddr::from(SocketAddr::from((dst, 0)));
    // The raw socket sees every ICMP packet of the namespace: tell ours by identifier.
    let id = (std::process::id() as u16) ^ 0xe5e5;
    let mut answered = 0;
    for seq in 0..count {
        let mut request = [0u8; 16];
        request[0] = 8; // echo request (RFC 792)
        request[4..6].copy_from_slice(&id.to_be_bytes());
        request[6..8].copy_from_slice(&seq.to_be_bytes());
        request[8..].copy_from_slice(b"earshot!");
        let sum = internet_checksum(&request);
        request[2..4].copy_from_slice(&sum.to_be_bytes());
        socket.send_to(&request, &to)?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 1500];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            socket.set_read_timeout(Some(left))?;
            let n = match (&socket).read(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break;
                }
                Err(e) => return Err(e),
            };
            // A raw IPv4 socket receives the IP header too.
            let ihl = usize::from(buf[0] & 0x0f) * 4;
            let Some(icmp) = buf[..n].get(ihl..) else {
                continue;
            };
            let from = Ipv4Addr::new(buf[12], buf[13], buf[14], buf[15]);
            if icmp.len() >= 8
                && icmp[0] == 0 // echo reply
                && from == dst
                && icmp[4..6] == id.to_be_bytes()
                && icmp[6..8] == seq.to_be_bytes()
            {
                answered += 1;
                break;
            }
        }
    }
    Ok(answered)
}

/// The Internet checksum (RFC 1071).
fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_rfc_1071_example() {
        // RFC 1071 §3: 0001 f203 f4f5 f6f7 sums to ddf2 (one's complement 220d).
        assert_eq!(
            internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0x220d
        );
    }

    #[test]
    fn xdp_is_found_in_link_details() {
        let without = "2: esa@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue\n    \
                       link/ether 2e:19:10:29:f1:17 brd ff:ff:ff:ff:ff:ff link-netns es-p-1-0\n    \
                       veth addrgenmode eui64 numtxqueues 1 numrxqueues 1";
        let with = "2: esa@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 xdp qdisc noqueue\n    \
                    link/ether 2e:19:10:29:f1:17 brd ff:ff:ff:ff:ff:ff link-netns es-p-1-0\n    \
                    prog/xdp id 42 name earshot_xdp tag 0123456789abcdef jited";
        assert!(!xdp_in_link_details(without));
        assert!(xdp_in_link_details(with));
        assert!(xdp_in_link_details("mtu 1500 xdpgeneric qdisc"));
    }
}
