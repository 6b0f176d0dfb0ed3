//! The XDP program's loader: steers media UDP into the AF_XDP sockets, leaves the rest to the
//! kernel.
//!
//! The program itself is `kernel-cfg/xdp/earshot_xdp.c`, compiled by `build.rs` and embedded
//! here ([`OBJECT`]). It redirects to the XSKMAP entry of the frame's RX queue only UDP to one of
//! the appliance's media addresses inside the media port range; everything else (SSH, ARP/ND,
//! ICMP, the control API, NG, other UDP) is `XDP_PASS`. Every decision is counted
//! ([`XdpStats`]).
//!
//! Lifetime: [`XdpFilter::attach`] attaches through a bpf_link in native (driver) mode, so the
//! kernel detaches the program when the process dies, even by `kill -9`. Generic (SKB) mode —
//! asked for, or the fallback when the driver refuses native XDP — is attached through netlink
//! (libbpf-rs 0.25 cannot give a link a mode without `unsafe`), and that attachment outlives a
//! killed process: the next [`XdpFilter::attach`] (or [`remove_stale`]) recognises the leftover by
//! its program name ([`PROGRAM_NAME`]) and removes it. A program that is not earshot's is never
//! touched ([`XdpError::ForeignProgram`]).
//!
//! Network namespaces: the interface lookup and attachment follow the calling thread's network
//! namespace (netlink and bpf syscalls), so a thread that has `setns`'d works.
//! [`queue_count`] reads `/sys/class/net`, which shows the namespace `/sys` was mounted in:
//! enter a namespace with `ip netns exec` (which remounts `/sys`) when the queue count matters.

use std::fs::File;
use std::io::{self, Read as _};
use std::net::IpAddr;
use std::os::fd::{AsFd, RawFd};
use std::sync::Once;
use std::time::Duration;

use libbpf_rs::query::ProgInfoIter;
use libbpf_rs::{
    ErrorKind, Link, MapCore as _, MapFlags, MapHandle, Object, ObjectBuilder, PrintLevel, Program,
    ProgramInput, ProgramMut, Xdp, XdpFlags,
};
use socket2::{Domain, Protocol, Socket, Type};

/// The compiled XDP program (ELF), 8-byte aligned as libelf likes it.
pub const OBJECT: &[u8] = {
    #[repr(C, align(8))]
    struct Aligned<B: ?Sized>(B);
    const ALIGNED: &Aligned<[u8]> =
        &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/earshot_xdp.o")));
    &ALIGNED.0
};

/// The program's name in the kernel (its C function name), by which a leftover is recognised.
pub const PROGRAM_NAME: &str = "earshot_xdp";

/// Media addresses per family the program's maps hold (`media_v4`, `media_v6`).
pub const MAX_MEDIA_ADDRESSES: usize = 16;

/// Entries of the XSKMAP: the highest RX queue index a socket can be registered for, plus one.
pub const MAX_QUEUES: u32 = 64;

/// Bounds the wait for the kernel's answer to an interface lookup.
const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver, before any socket buffer is allocated (zero-copy capable).
    Native,
    /// In the generic networking path, after the socket buffer is built (copy mode only):
    /// works on any interface, slower.
    Generic,
}

/// What [`XdpFilter::attach_with`] does when native mode was asked for and the driver refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpFallback {
    /// Attach in generic mode instead, with one warning in the log.
    ToGeneric,
    /// Fail with [`XdpError::Attach`].
    Never,
}

/// The program's decision counters, summed over CPUs (the `stats` map, `enum stat` in the C).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// Media frames handed to `bpf_redirect_map`. Counts the attempt: a frame for a queue with no
    /// registered socket falls back to `XDP_PASS` and is counted here all the same.
    pub redirect: u64,
    /// Not IPv4/IPv6 (ARP, VLAN-tagged, ...): passed.
    pub not_ip: u64,
    /// IP but not UDP (TCP, ICMP, ICMPv6 / neighbour discovery, ...): passed.
    pub not_udp: u64,
    /// IPv4 fragment or IPv6 extension header: passed.
    pub fragment_or_ext_header: u64,
    /// A header past the end of the frame, or IPv4 IHL < 5: passed (the kernel drops it).
    pub truncated: u64,
    /// UDP to an address that is not a media address: passed.
    pub not_media_address: u64,
    /// UDP to a media address outside the media port range (NG, ...): passed.
    pub port_out_of_range: u64,
}

impl XdpStats {
    /// Every frame the program has seen.
    pub fn total(&self) -> u64 {
        self.redirect
            + self.not_ip
            + self.not_udp
            + self.fragment_or_ext_header
            + self.truncated
            + self.not_media_address
            + self.port_out_of_range
    }
}

/// The program's return value, as [`XdpProgram::test_run`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpVerdict {
    Aborted,
    Drop,
    Pass,
    Tx,
    Redirect,
    Other(u32),
}

impl From<u32> for XdpVerdict {
    fn from(code: u32) -> Self {
        // enum xdp_action, include/uapi/linux/bpf.h
        match code {
            0 => Self::Aborted,
            1 => Self::Drop,
            2 => Self::Pass,
            3 => Self::Tx,
            4 => Self::Redirect,
            other => Self::Other(other),
        }
    }
}

/// Why the XDP program could not be loaded, attached or used. Each message names the interface
/// and what to do, on one line.
#[derive(Debug, thiserror::Error)]
pub enum XdpError {
    #[error("interface {0} not found (see `ip link`)")]
    NoSuchInterface(String),
    /// Missing capabilities; the message says which.
    #[error("{0}")]
    NotPermitted(String),
    /// Another tool's XDP program is attached: earshot refuses to replace it.
    #[error(
        "interface {ifname} already has XDP program {name:?} (id {id}) from another tool; earshot \
         will not replace it: detach it (`ip link set dev {ifname} xdp off`, or `xdpgeneric off`) \
         or use another interface"
    )]
    ForeignProgram {
        ifname: String,
        id: u32,
        name: String,
    },
    #[error("{0}")]
    Load(String),
    #[error("{0}")]
    Attach(String),
    #[error("{0}")]
    Map(String),
    /// Media addresses or port range the program cannot filter on.
    #[error("{0}")]
    InvalidConfig(String),
    /// Reading the system's state (netlink, /sys, /proc) failed.
    #[error("{0}")]
    Io(String),
}

/// The loaded and configured program, not attached to any interface: what [`XdpFilter`] attaches,
/// and what tests run frames through ([`XdpProgram::test_run`]).
pub struct XdpProgram {
    /// Owns the program; its maps are reached through the handles below.
    object: Object,
    /// The kernel's id of the program, as interface queries report it.
    id: u32,
    xsks: MapHandle,
    stats: MapHandle,
}

impl std::fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpProgram")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads the embedded program into the kernel (the verifier checks it here) and fills its
    /// maps: `media_ips` (at most [`MAX_MEDIA_ADDRESSES`] per family, no wildcard) and the
    /// inclusive media port range.
    pub fn load(media_ips: &[IpAddr], port_min: u16, port_max: u16) -> Result<Self, XdpError> {
        validate(media_ips, port_min, port_max)?;
        check_capabilities("loading the XDP program")?;
        route_libbpf_log();

        let open = ObjectBuilder::default().open_memory(OBJECT).map_err(|e| {
            XdpError::Load(format!("opening the embedded XDP object failed: {e:#}"))
        })?;
        let object = open.load().map_err(|e| {
            if e.kind() == ErrorKind::PermissionDenied {
                XdpError::NotPermitted(format!(
                    "loading the XDP program was refused ({e:#}): it needs CAP_BPF and \
                     CAP_NET_ADMIN (run as root or via the systemd unit)"
                ))
            } else {
                XdpError::Load(format!(
                    "loading the XDP program into the kernel failed: {e:#} (the verifier's log is \
                     in the warn-level log)"
                ))
            }
        })?;

        let id = {
            let prog = program(&object)?;
            Program::id_from_fd(prog.as_fd())
                .map_err(|e| XdpError::Load(format!("reading the XDP program's id: {e:#}")))?
        };
        let handle = |name: &str| -> Result<MapHandle, XdpError> {
            let map = object.maps().find(|m| m.name() == name).ok_or_else(|| {
                XdpError::Load(format!(
                    "the XDP object has no map {name:?} (build mismatch)"
                ))
            })?;
            MapHandle::try_from(&map)
                .map_err(|e| XdpError::Map(format!("duplicating map {name:?}: {e:#}")))
        };
        let xsks = handle("xsks")?;
        let stats = handle("stats")?;

        let media_v4 = handle("media_v4")?;
        let media_v6 = handle("media_v6")?;
        for ip in media_ips {
            let (map, key) = match ip {
                // Network byte order: the octets as they sit in the header.
                IpAddr::V4(v4) => (&media_v4, v4.octets().to_vec()),
                IpAddr::V6(v6) => (&media_v6, v6.octets().to_vec()),
            };
            map.update(&key, &[1], MapFlags::ANY)
                .map_err(|e| XdpError::Map(format!("adding media address {ip}: {e:#}")))?;
        }
        // struct config { __u16 port_min; __u16 port_max; }, host byte order.
        let mut range = [0u8; 4];
        range[..2].copy_from_slice(&port_min.to_ne_bytes());
        range[2..].copy_from_slice(&port_max.to_ne_bytes());
        handle("config")?
            .update(&0u32.to_ne_bytes(), &range, MapFlags::ANY)
            .map_err(|e| XdpError::Map(format!("setting the media port range: {e:#}")))?;

        Ok(Self {
            object,
            id,
            xsks,
            stats,
        })
    }

    /// The kernel's id of the loaded program (as `ip link` and `bpftool` show it).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Puts an AF_XDP socket (bound to `queue` of the interface) in the XSKMAP for `queue`.
    pub fn register_xsk(&self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        self.register(queue, fd, "the XDP program")
    }

    /// Removes the socket of `queue` from the XSKMAP; no socket there is not an error.
    pub fn unregister_xsk(&self, queue: u32) -> Result<(), XdpError> {
        self.unregister(queue, "the XDP program")
    }

    /// The decision counters, summed over CPUs.
    pub fn stats(&self) -> Result<XdpStats, XdpError> {
        let mut counts = [0u64; 7];
        for (index, count) in counts.iter_mut().enumerate() {
            let key = u32::try_from(index).unwrap_or(u32::MAX).to_ne_bytes();
            let per_cpu = self
                .stats
                .lookup_percpu(&key, MapFlags::ANY)
                .map_err(|e| XdpError::Map(format!("reading XDP counter {index}: {e:#}")))?
                .unwrap_or_default();
            *count = per_cpu
                .iter()
                .filter_map(|value| value.get(..8)?.try_into().ok().map(u64::from_ne_bytes))
                .sum();
        }
        let [
            redirect,
            not_ip,
            not_udp,
            fragment_or_ext_header,
            truncated,
            not_media_address,
            port_out_of_range,
        ] = counts;
        Ok(XdpStats {
            redirect,
            not_ip,
            not_udp,
            fragment_or_ext_header,
            truncated,
            not_media_address,
            port_out_of_range,
        })
    }

    /// Runs the program once on `frame` in the kernel (BPF_PROG_TEST_RUN), as if received on RX
    /// queue 0, and returns its verdict; the counters move as for a real frame. A media frame
    /// returns [`XdpVerdict::Pass`] here (the XSKMAP fallback: no socket can be registered for a
    /// test run) while the `redirect` counter moves. The kernel refuses frames shorter than an
    /// Ethernet header (14 bytes) or longer than a page less XDP's head- and tailroom.
    pub fn test_run(&self, frame: &[u8]) -> Result<XdpVerdict, XdpError> {
        let prog = program(&self.object)?;
        let input = ProgramInput {
            data_in: Some(frame),
            repeat: 1,
            ..ProgramInput::default()
        };
        let output = prog.test_run(input).map_err(|e| {
            XdpError::Load(format!(
                "test run of the XDP program on a {}-byte frame: {e:#}",
                frame.len()
            ))
        })?;
        Ok(XdpVerdict::from(output.return_value))
    }

    fn register(&self, queue: u32, fd: RawFd, target: &str) -> Result<(), XdpError> {
        if queue >= MAX_QUEUES {
            return Err(XdpError::Map(format!(
                "queue {queue} of {target} is beyond the XSKMAP's {MAX_QUEUES} entries"
            )));
        }
        let fd = u32::try_from(fd).map_err(|_| {
            XdpError::Map(format!("invalid AF_XDP socket fd {fd} for queue {queue}"))
        })?;
        self.xsks.update(&queue.to_ne_bytes(), &fd.to_ne_bytes(), MapFlags::ANY).map_err(|e| {
            XdpError::Map(format!(
                "registering AF_XDP socket fd {fd} for queue {queue} of {target}: {e:#} (is it an \
                 AF_XDP socket bound to that queue with an RX ring?)"
            ))
        })
    }

    fn unregister(&self, queue: u32, target: &str) -> Result<(), XdpError> {
        match self.xsks.delete(&queue.to_ne_bytes()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(XdpError::Map(format!(
                "removing the AF_XDP socket of queue {queue} of {target}: {e:#}"
            ))),
        }
    }
}

/// How the program is attached.
enum Attachment {
    /// A bpf_link (native mode, or generic where the driver has no native XDP): the kernel
    /// detaches when the link's last fd closes (drop, exit, kill -9).
    Link(Link),
    /// Generic mode, through netlink: detached explicitly (or as a leftover by the next start).
    Netlink,
    /// Already detached by [`XdpFilter::detach`].
    Detached,
}

/// The XDP program, loaded and attached to an interface. Dropping it detaches the program.
pub struct XdpFilter {
    program: XdpProgram,
    attachment: Attachment,
    ifname: String,
    ifindex: u32,
    mode: XdpMode,
}

impl std::fmt::Debug for XdpFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpFilter")
            .field("ifname", &self.ifname)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("program_id", &self.program.id)
            .finish_non_exhaustive()
    }
}

// The data plane moves the filter to the thread that owns it.
const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<XdpFilter>();
};

impl XdpFilter {
    /// Loads the embedded program, sets the media addresses and port range, removes an earshot
    /// program a crashed run left attached (by program name), and attaches in `mode`. Native
    /// mode falls back to generic if the driver refuses (see [`XdpFilter::attach_with`] to
    /// forbid that); [`XdpFilter::mode`] tells which mode it got.
    pub fn attach(
        ifname: &str,
        media_ips: &[IpAddr],
        port_min: u16,
        port_max: u16,
        mode: XdpMode,
    ) -> Result<XdpFilter, XdpError> {
        Self::attach_with(
            ifname,
            media_ips,
            port_min,
            port_max,
            mode,
            XdpFallback::ToGeneric,
        )
    }

    /// [`XdpFilter::attach`], choosing what happens when native mode is refused.
    pub fn attach_with(
        ifname: &str,
        media_ips: &[IpAddr],
        port_min: u16,
        port_max: u16,
        mode: XdpMode,
        fallback: XdpFallback,
    ) -> Result<XdpFilter, XdpError> {
        validate(media_ips, port_min, port_max)?;
        let ifindex = ifindex(ifname)?;
        check_capabilities(&format!("attaching XDP to {ifname}"))?;
        let program = XdpProgram::load(media_ips, port_min, port_max)?;
        remove_stale_at(ifname, ifindex)?;

        let mut filter = XdpFilter {
            program,
            attachment: Attachment::Detached,
            ifname: ifname.to_owned(),
            ifindex,
            mode,
        };
        if mode == XdpMode::Native {
            match filter.attach_link() {
                Ok(XdpMode::Native) => return Ok(filter),
                // The driver has no native XDP at all: the kernel attached the link in generic
                // mode by itself, which is still the kill-proof kind of attachment.
                Ok(XdpMode::Generic) if fallback == XdpFallback::ToGeneric => {
                    tracing::warn!(
                        ifname,
                        "the driver of {ifname} has no native XDP; the program runs in generic (SKB) mode"
                    );
                    filter.mode = XdpMode::Generic;
                    return Ok(filter);
                }
                Ok(XdpMode::Generic) => {
                    filter.detach_inner()?;
                    return Err(XdpError::Attach(format!(
                        "the driver of {ifname} has no native XDP (the kernel would run it in \
                         generic mode); allow the generic fallback or use another interface"
                    )));
                }
                Err(AttachFailure::DriverRefused(reason)) if fallback == XdpFallback::ToGeneric => {
                    tracing::warn!(
                        ifname,
                        "native XDP on {ifname} refused by the driver ({reason}); falling back to generic (SKB) mode"
                    );
                }
                Err(AttachFailure::Fatal(err)) => return Err(err),
                Err(AttachFailure::DriverRefused(reason)) => {
                    return Err(XdpError::Attach(format!(
                        "native XDP on {ifname} refused by the driver: {reason}; use generic mode \
                         or allow the fallback"
                    )));
                }
            }
        }
        filter.attach_generic()?;
        Ok(filter)
    }

    /// The interface's index (in the namespace it was attached from).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The mode the program actually runs in.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The loaded program (its id, test runs).
    pub fn program(&self) -> &XdpProgram {
        &self.program
    }

    /// Puts an AF_XDP socket's fd (bound to this interface's `queue`) in the XSKMAP for `queue`.
    pub fn register_xsk(&self, queue: u32, fd: RawFd) -> Result<(), XdpError> {
        self.program.register(queue, fd, &self.ifname)
    }

    /// Removes the socket of `queue` from the XSKMAP; no socket there is not an error.
    pub fn unregister_xsk(&self, queue: u32) -> Result<(), XdpError> {
        self.program.unregister(queue, &self.ifname)
    }

    /// The program's decision counters, summed over CPUs.
    pub fn stats(&self) -> Result<XdpStats, XdpError> {
        self.program.stats()
    }

    /// Detaches the program, reporting a failure (dropping detaches too, logging one).
    pub fn detach(mut self) -> Result<(), XdpError> {
        self.detach_inner()
    }

    /// Native attach through a bpf_link; reports the mode the kernel chose.
    fn attach_link(&mut self) -> Result<XdpMode, AttachFailure> {
        let prog = program(&self.program.object).map_err(AttachFailure::Fatal)?;
        let ifindex = i32::try_from(self.ifindex).unwrap_or(i32::MAX);
        let link = match prog.attach_xdp(ifindex) {
            Ok(link) => link,
            Err(e) => return Err(classify_attach_error(&self.ifname, &e)),
        };
        self.attachment = Attachment::Link(link);
        let ids = query(self.ifindex).map_err(AttachFailure::Fatal)?;
        Ok(if ids.skb == self.program.id {
            XdpMode::Generic
        } else {
            XdpMode::Native
        })
    }

    fn attach_generic(&mut self) -> Result<(), XdpError> {
        let prog = program(&self.program.object)?;
        let ifindex = i32::try_from(self.ifindex).unwrap_or(i32::MAX);
        Xdp::new(prog.as_fd())
            .attach(ifindex, XdpFlags::SKB_MODE | XdpFlags::UPDATE_IF_NOEXIST)
            .map_err(|e| match classify_attach_error(&self.ifname, &e) {
                AttachFailure::Fatal(err) => err,
                AttachFailure::DriverRefused(reason) => XdpError::Attach(format!(
                    "attaching XDP to {} in generic mode failed: {reason}",
                    self.ifname
                )),
            })?;
        self.attachment = Attachment::Netlink;
        self.mode = XdpMode::Generic;
        Ok(())
    }

    fn detach_inner(&mut self) -> Result<(), XdpError> {
        match std::mem::replace(&mut self.attachment, Attachment::Detached) {
            Attachment::Detached => Ok(()),
            // Detach explicitly (it also covers a link fd some child process inherited), then
            // close the link.
            Attachment::Link(link) => link.detach().map_err(|e| {
                XdpError::Attach(format!("detaching XDP from {}: {e:#}", self.ifname))
            }),
            Attachment::Netlink => {
                // Only if it is still ours: someone may have replaced it meanwhile.
                let ids = query(self.ifindex)?;
                if ids.skb != self.program.id {
                    return Ok(());
                }
                let prog = program(&self.program.object)?;
                let ifindex = i32::try_from(self.ifindex).unwrap_or(i32::MAX);
                Xdp::new(prog.as_fd())
                    .detach(ifindex, XdpFlags::SKB_MODE)
                    .map_err(|e| {
                        XdpError::Attach(format!(
                            "detaching generic XDP from {}: {e:#}",
                            self.ifname
                        ))
                    })
            }
        }
    }
}

impl Drop for XdpFilter {
    fn drop(&mut self) {
        if let Err(err) = self.detach_inner() {
            tracing::warn!(ifname = %self.ifname, "{err}");
        }
    }
}

/// Removes an earshot XDP program left attached to `ifname` (e.g. after `kill -9` of a run that
/// attached through netlink); `Ok(true)` if it removed one. A program that is not earshot's is
/// never touched: [`XdpError::ForeignProgram`]. An earshot program held by a live bpf_link
/// (another earshot running on the interface) is not removed either: [`XdpError::Attach`].
pub fn remove_stale(ifname: &str) -> Result<bool, XdpError> {
    let ifindex = ifindex(ifname)?;
    check_capabilities(&format!("removing a stale XDP program from {ifname}"))?;
    remove_stale_at(ifname, ifindex)
}

/// An XDP program attached to an interface, as [`attached_programs`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedProgram {
    pub id: u32,
    /// The kernel's name of the program (at most 15 characters).
    pub name: String,
    pub mode: XdpMode,
}

/// The XDP programs attached to `ifname` in native and generic mode (hardware-offloaded ones are
/// not listed): for diagnostics and tests.
pub fn attached_programs(ifname: &str) -> Result<Vec<AttachedProgram>, XdpError> {
    let ids = query(ifindex(ifname)?)?;
    Ok([(ids.drv, XdpMode::Native), (ids.skb, XdpMode::Generic)]
        .into_iter()
        .filter(|&(id, _)| id != 0)
        .filter_map(|(id, mode)| {
            Some(AttachedProgram {
                id,
                name: program_name(id)?,
                mode,
            })
        })
        .collect())
}

/// The RX queues (combined channels) the interface has now, from `/sys/class/net/<if>/queues`
/// (mind the namespace note in the module docs).
pub fn queue_count(ifname: &str) -> Result<u32, XdpError> {
    check_name(ifname)?;
    let dir = format!("/sys/class/net/{ifname}/queues");
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            // Distinguish a missing interface from a /sys of another network namespace.
            ifindex(ifname)?;
            return Err(XdpError::Io(format!(
                "interface {ifname} exists but {dir} does not: /sys belongs to another network \
                 namespace (enter it with `ip netns exec`, which remounts /sys)"
            )));
        }
        Err(err) => return Err(XdpError::Io(format!("reading {dir}: {err}"))),
    };
    let mut count = 0u32;
    for entry in entries {
        let entry = entry.map_err(|e| XdpError::Io(format!("reading {dir}: {e}")))?;
        if entry.file_name().to_string_lossy().starts_with("rx-") {
            count += 1;
        }
    }
    Ok(count)
}

/// The interface's index in the calling thread's network namespace (rtnetlink RTM_GETLINK by
/// name; unlike /sys this follows a `setns`).
pub fn ifindex(ifname: &str) -> Result<u32, XdpError> {
    check_name(ifname)?;
    // Constants from include/uapi/linux/{netlink,rtnetlink,if_link}.h.
    const NETLINK_ROUTE: i32 = 0;
    const NLM_F_REQUEST: u16 = 1;
    const NLMSG_ERROR: u16 = 2;
    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;
    const IFLA_IFNAME: u16 = 3;
    const ENODEV: i32 = 19;

    let io_err = |e: io::Error| XdpError::Io(format!("looking up interface {ifname}: {e}"));
    let sock = Socket::new(
        Domain::from(libc::AF_NETLINK),
        Type::DGRAM, // netlink takes SOCK_DGRAM or SOCK_RAW alike
        Some(Protocol::from(NETLINK_ROUTE)),
    )
    .map_err(io_err)?;
    sock.set_read_timeout(Some(NETLINK_TIMEOUT))
        .map_err(io_err)?;

    // nlmsghdr (16) + ifinfomsg (16, all zero: look up by name) + rtattr IFLA_IFNAME.
    let attr_len = 4 + ifname.len() + 1;
    let total = 16 + 16 + attr_len.next_multiple_of(4);
    let mut req = Vec::with_capacity(total);
    req.extend_from_slice(&u32::try_from(total).unwrap_or(u32::MAX).to_ne_bytes());
    req.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence number
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    req.extend_from_slice(&[0u8; 16]);
    req.extend_from_slice(&u16::try_from(attr_len).unwrap_or(u16::MAX).to_ne_bytes());
    req.extend_from_slice(&IFLA_IFNAME.to_ne_bytes());
    req.extend_from_slice(ifname.as_bytes());
    req.resize(total, 0);
    sock.send(&req).map_err(io_err)?;

    let mut reply = vec![0u8; 64 * 1024];
    let len = (&sock).read(&mut reply).map_err(io_err)?;
    let reply = &reply[..len];
    let u16_at = |at: usize| {
        reply
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let i32_at = |at: usize| {
        reply
            .get(at..at + 4)
            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let malformed = || {
        XdpError::Io(format!(
            "looking up interface {ifname}: malformed netlink reply"
        ))
    };
    match u16_at(4).ok_or_else(malformed)? {
        RTM_NEWLINK => {
            let index = i32_at(16 + 4).ok_or_else(malformed)?;
            u32::try_from(index).map_err(|_| malformed())
        }
        NLMSG_ERROR => match i32_at(16).ok_or_else(malformed)? {
            err if err == -ENODEV => Err(XdpError::NoSuchInterface(ifname.to_owned())),
            err => Err(io_err(io::Error::from_raw_os_error(-err))),
        },
        _ => Err(malformed()),
    }
}

/// Refuses names the kernel could never have (and that would make odd paths in /sys).
fn check_name(ifname: &str) -> Result<(), XdpError> {
    // IFNAMSIZ is 16 with the terminating NUL.
    let valid = !ifname.is_empty()
        && ifname.len() < 16
        && ifname != "."
        && ifname != ".."
        && !ifname
            .bytes()
            .any(|b| b == b'/' || b == 0 || b.is_ascii_whitespace());
    if valid {
        Ok(())
    } else {
        Err(XdpError::NoSuchInterface(ifname.to_owned()))
    }
}

fn validate(media_ips: &[IpAddr], port_min: u16, port_max: u16) -> Result<(), XdpError> {
    if port_min > port_max {
        return Err(XdpError::InvalidConfig(format!(
            "media port range {port_min}-{port_max} is empty"
        )));
    }
    if media_ips.is_empty() {
        return Err(XdpError::InvalidConfig(
            "no media address: the XDP program would redirect nothing".to_owned(),
        ));
    }
    if let Some(ip) = media_ips.iter().find(|ip| ip.is_unspecified()) {
        return Err(XdpError::InvalidConfig(format!(
            "media address {ip} is a wildcard: AF_XDP needs the interface's own address"
        )));
    }
    let v4 = media_ips.iter().filter(|ip| ip.is_ipv4()).count();
    let v6 = media_ips.len() - v4;
    if v4 > MAX_MEDIA_ADDRESSES || v6 > MAX_MEDIA_ADDRESSES {
        return Err(XdpError::InvalidConfig(format!(
            "{v4} IPv4 and {v6} IPv6 media addresses: the XDP program holds at most \
             {MAX_MEDIA_ADDRESSES} of each"
        )));
    }
    Ok(())
}

fn program(object: &Object) -> Result<ProgramMut<'_>, XdpError> {
    // Mutable handle: libbpf-rs offers attaching and test runs only on it.
    object
        .progs_mut()
        .find(|p| p.name() == PROGRAM_NAME)
        .ok_or_else(|| XdpError::Load(format!("the XDP object has no program {PROGRAM_NAME}")))
}

/// Why an attach failed: the driver said no (a generic fallback may help), or anything else.
enum AttachFailure {
    DriverRefused(String),
    Fatal(XdpError),
}

fn classify_attach_error(ifname: &str, err: &libbpf_rs::Error) -> AttachFailure {
    const EPERM: i32 = 1;
    const EACCES: i32 = 13;
    const EBUSY: i32 = 16;
    const EEXIST: i32 = 17;
    match os_error(err) {
        Some(EPERM | EACCES) => AttachFailure::Fatal(XdpError::NotPermitted(format!(
            "attaching XDP to {ifname} was refused: it needs CAP_NET_ADMIN and CAP_BPF (run as \
             root or via the systemd unit)"
        ))),
        // Someone attached a program between our check and our attach.
        Some(EBUSY | EEXIST) => AttachFailure::Fatal(XdpError::Attach(format!(
            "another XDP program got attached to {ifname} meanwhile ({err:#}); see `ip link show {ifname}`"
        ))),
        _ => AttachFailure::DriverRefused(format!("{err:#}")),
    }
}

/// The errno in a libbpf-rs error chain. libbpf-rs keeps the `io::Error` private, so this reads
/// std's stable `(os error N)` rendering.
fn os_error(err: &libbpf_rs::Error) -> Option<i32> {
    let text = format!("{err:#}");
    let start = text.rfind("(os error ")? + "(os error ".len();
    let end = start + text[start..].find(')')?;
    text[start..end].parse().ok()
}

/// The XDP program ids attached to an interface, per mode (0: none).
#[derive(Debug, Clone, Copy)]
struct AttachedIds {
    drv: u32,
    skb: u32,
    hw: u32,
}

fn query(ifindex: u32) -> Result<AttachedIds, XdpError> {
    // libbpf-rs hangs the query off an `Xdp` made from a program fd it does not use: any fd does.
    let devnull = File::open("/dev/null").map_err(|e| XdpError::Io(format!("/dev/null: {e}")))?;
    let ifindex_i32 = i32::try_from(ifindex).unwrap_or(i32::MAX);
    let opts = Xdp::new(devnull.as_fd())
        .query(ifindex_i32, XdpFlags::NONE)
        .map_err(|e| {
            XdpError::Io(format!(
                "querying the XDP programs of interface index {ifindex}: {e:#}"
            ))
        })?;
    Ok(AttachedIds {
        drv: opts.drv_prog_id,
        skb: opts.skb_prog_id,
        hw: opts.hw_prog_id,
    })
}

/// The name of the loaded program `id`, or `None` if it has gone meanwhile.
fn program_name(id: u32) -> Option<String> {
    ProgInfoIter::default()
        .find(|info| info.id == id)
        .map(|info| info.name.to_string_lossy().into_owned())
}

fn remove_stale_at(ifname: &str, ifindex: u32) -> Result<bool, XdpError> {
    let ids = query(ifindex)?;
    let attached: Vec<(u32, XdpFlags)> = [
        (ids.drv, XdpFlags::DRV_MODE),
        (ids.skb, XdpFlags::SKB_MODE),
        (ids.hw, XdpFlags::HW_MODE),
    ]
    .into_iter()
    .filter(|&(id, _)| id != 0)
    .collect();
    // Look at everything first: nothing is removed if anything foreign is there.
    let mut ours = Vec::new();
    for (id, flags) in attached {
        match program_name(id) {
            Some(name) if name == PROGRAM_NAME => ours.push((id, flags)),
            Some(name) => {
                return Err(XdpError::ForeignProgram {
                    ifname: ifname.to_owned(),
                    id,
                    name,
                });
            }
            None => {}
        }
    }
    let devnull = File::open("/dev/null").map_err(|e| XdpError::Io(format!("/dev/null: {e}")))?;
    let ifindex_i32 = i32::try_from(ifindex).unwrap_or(i32::MAX);
    let mut removed = false;
    for (id, flags) in ours {
        if let Err(e) = Xdp::new(devnull.as_fd()).detach(ifindex_i32, flags) {
            return Err(match classify_attach_error(ifname, &e) {
                AttachFailure::Fatal(XdpError::Attach(_)) => XdpError::Attach(format!(
                    "earshot's XDP program (id {id}) on {ifname} is held by a live bpf_link: \
                     another earshot is running on {ifname}; stop it first"
                )),
                AttachFailure::Fatal(err) => err,
                AttachFailure::DriverRefused(reason) => XdpError::Attach(format!(
                    "removing the stale earshot XDP program (id {id}) from {ifname}: {reason}"
                )),
            });
        }
        tracing::warn!(
            ifname,
            id,
            "removed a stale earshot XDP program left attached to {ifname}"
        );
        removed = true;
    }
    Ok(removed)
}

/// Fails with a message naming the missing capabilities, when /proc tells. Without CAP_BPF the
/// program does not load; without CAP_NET_ADMIN the XSKMAP cannot be created nor XDP attached.
/// CAP_SYS_ADMIN covers both.
fn check_capabilities(what: &str) -> Result<(), XdpError> {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let Some(effective) = effective_capabilities() else {
        return Ok(()); // No /proc: the kernel will say.
    };
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    let mut missing = Vec::new();
    if !has(CAP_NET_ADMIN) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(XdpError::NotPermitted(format!(
        "{what} needs CAP_NET_ADMIN and CAP_BPF, and this process lacks {} (run as root or via \
         the systemd unit)",
        missing.join(" and ")
    )))
}

fn effective_capabilities() -> Option<u64> {
    // Capabilities are per thread: ask about this one.
    let status = std::fs::read_to_string("/proc/thread-self/status")
        .or_else(|_| std::fs::read_to_string("/proc/self/status"))
        .ok()?;
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// libbpf prints to stderr by default; the appliance logs through tracing. Set once per process
/// (it also covers libxdp's use of libbpf).
fn route_libbpf_log() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        fn print(level: PrintLevel, msg: String) {
            let msg = msg.trim_end();
            match level {
                PrintLevel::Warn => tracing::warn!(target: "libbpf", "{msg}"),
                PrintLevel::Info => tracing::debug!(target: "libbpf", "{msg}"),
                PrintLevel::Debug => tracing::trace!(target: "libbpf", "{msg}"),
            }
        }
        libbpf_rs::set_print(Some((PrintLevel::Debug, print)));
    });
}
