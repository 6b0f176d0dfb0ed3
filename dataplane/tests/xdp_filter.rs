//! The XDP program and its loader (`dataplane::engine::xdp`, `kernel-cfg/xdp/earshot_xdp.c`).
//!
//! - Decision tests: hand-built frames through BPF_PROG_TEST_RUN, checking the verdict and which
//!   counter moved, for every decision class and every truncation point.
//! - Attach tests (docs/design.md §9.12): a pair of network namespaces joined by veth, the filter
//!   attached in one, ping / TCP / UDP from the other, detach on drop, leftovers and foreign
//!   programs.
//! - `kernel-cfg/nic-setup --dry-run`.
//!
//! Loading BPF needs root (CAP_BPF, CAP_NET_ADMIN): a plain binary (`harness = false`) runs the
//! tests through `needs_root`, so without root those report *ignored*, and fail under `CI=true`
//! (CI runs them as root). A test run cannot hand the program an AF_XDP socket, so a media frame
//! comes back `XDP_PASS` (the XSKMAP fallback) with the `redirect` counter moved; the veth test
//! with a real AF_XDP socket shows the redirect itself.

// setns(2) on a dedicated thread and the xsk-rs ring calls are unsafe; each block says why it
// is sound.
#![allow(unsafe_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

mod needs_root;

use dataplane::engine::xdp::{
    self, OBJECT, PROGRAM_NAME, XdpError, XdpFallback, XdpFilter, XdpMode, XdpProgram, XdpStats,
    XdpVerdict,
};

const MEDIA_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const OTHER_V4: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 9);
const MEDIA_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 1);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 2);
const OTHER_V6: Ipv6Addr = Ipv6Addr::new(0xfd77, 0, 0, 0, 0, 0, 0, 9);
const PORT_MIN: u16 = 20000;
const PORT_MAX: u16 = 29999;

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ICMPV6: u8 = 58;

// ---- Frames ----------------------------------------------------------------------------------

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x0a, 0x02, 0, 0, 0, 0, 0x0b];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 header (with `options`, a multiple of 4 bytes) and payload; `frag` is the
/// flags + fragment offset field.
fn ipv4(protocol: u8, dst: Ipv4Addr, options: &[u8], frag: u16, payload: &[u8]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let ihl = 5 + options.len() / 4;
    let total = (ihl * 4 + payload.len()) as u16;
    let mut h = vec![0x40 | ihl as u8, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, protocol, 0, 0]);
    h.extend_from_slice(&PEER_V4.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(options);
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&sum.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

fn ipv6(next_header: u8, dst: Ipv6Addr, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next_header, 64]);
    h.extend_from_slice(&PEER_V6.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

/// A UDP header (checksum 0: the program does not look at it) and a 12-byte RTP-ish payload.
fn udp(dst_port: u16) -> Vec<u8> {
    let payload = [0x80, 0, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
    let mut u = Vec::new();
    u.extend_from_slice(&40000u16.to_be_bytes());
    u.extend_from_slice(&dst_port.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(&payload);
    u
}

fn tcp_syn(dst_port: u16) -> Vec<u8> {
    let mut t = vec![0; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dst_port.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t
}

fn udp4_frame(dst: Ipv4Addr, port: u16) -> Vec<u8> {
    eth(ETH_P_IP, &ipv4(IPPROTO_UDP, dst, &[], 0, &udp(port)))
}

fn udp6_frame(dst: Ipv6Addr, port: u16) -> Vec<u8> {
    eth(ETH_P_IPV6, &ipv6(IPPROTO_UDP, dst, &udp(port)))
}

// ---- Decision tests --------------------------------------------------------------------------

fn program() -> XdpProgram {
    XdpProgram::load(&[MEDIA_V4.into(), MEDIA_V6.into()], PORT_MIN, PORT_MAX)
        .expect("load the XDP program")
}

/// Runs each frame through a fresh program: every verdict must be XDP_PASS (nothing is ever
/// dropped, and a test run has no socket to redirect to); returns the counters.
fn decide(frames: &[Vec<u8>]) -> XdpStats {
    let p = program();
    for frame in frames {
        assert_eq!(
            p.test_run(frame).unwrap(),
            XdpVerdict::Pass,
            "frame {frame:02x?}"
        );
    }
    let stats = p.stats().unwrap();
    assert_eq!(
        stats.total(),
        frames.len() as u64,
        "one decision per frame: {stats:?}"
    );
    stats
}

fn media_udp_inside_the_range_is_redirected() {
    let frames = vec![
        udp4_frame(MEDIA_V4, PORT_MIN),
        udp4_frame(MEDIA_V4, 20002),
        udp4_frame(MEDIA_V4, PORT_MAX),
        udp6_frame(MEDIA_V6, PORT_MIN),
        udp6_frame(MEDIA_V6, PORT_MAX),
    ];
    assert_eq!(
        decide(&frames),
        XdpStats {
            redirect: 5,
            ..XdpStats::default()
        }
    );
}

fn media_address_outside_the_port_range_passes() {
    let frames = vec![
        udp4_frame(MEDIA_V4, PORT_MIN - 1),
        udp4_frame(MEDIA_V4, PORT_MAX + 1),
        udp4_frame(MEDIA_V4, 2223), // NG
        udp4_frame(MEDIA_V4, 0),
        udp6_frame(MEDIA_V6, PORT_MIN - 1),
        udp6_frame(MEDIA_V6, u16::MAX),
    ];
    assert_eq!(
        decide(&frames),
        XdpStats {
            port_out_of_range: 6,
            ..XdpStats::default()
        }
    );
}

fn udp_to_another_address_passes() {
    let frames = vec![
        udp4_frame(OTHER_V4, 20002),
        udp4_frame(Ipv4Addr::BROADCAST, 20002),
        udp4_frame(Ipv4Addr::new(224, 0, 0, 251), 5353),
        udp6_frame(OTHER_V6, 20002),
        // The IPv4 media address as IPv4-mapped IPv6 is a different key.
        udp6_frame(MEDIA_V4.to_ipv6_mapped(), 20002),
    ];
    assert_eq!(
        decide(&frames),
        XdpStats {
            not_media_address: 5,
            ..XdpStats::default()
        }
    );
}

fn tcp_icmp_and_neighbour_discovery_pass() {
    let echo = [8, 0, 0xf7, 0xff, 0, 0, 0, 0];
    let neighbour_solicitation = [135, 0, 0, 0, 0, 0, 0, 0];
    let frames = vec![
        eth(ETH_P_IP, &ipv4(IPPROTO_TCP, MEDIA_V4, &[], 0, &tcp_syn(22))),
        eth(
            ETH_P_IP,
            &ipv4(IPPROTO_TCP, MEDIA_V4, &[], 0, &tcp_syn(20002)),
        ),
        eth(ETH_P_IP, &ipv4(IPPROTO_ICMP, MEDIA_V4, &[], 0, &echo)),
        eth(ETH_P_IPV6, &ipv6(IPPROTO_TCP, MEDIA_V6, &tcp_syn(8080))),
        eth(
            ETH_P_IPV6,
            &ipv6(IPPROTO_ICMPV6, MEDIA_V6, &neighbour_solicitation),
        ),
        eth(ETH_P_IPV6, &ipv6(59, MEDIA_V6, &[])), // no next header
    ];
    assert_eq!(
        decide(&frames),
        XdpStats {
            not_udp: 6,
            ..XdpStats::default()
        }
    );
}

fn non_ip_frames_pass() {
    let arp_request = {
        let mut a = vec![0, 1, 0x08, 0x00, 6, 4, 0, 1];
        a.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
        a.extend_from_slice(&PEER_V4.octets());
        a.extend_from_slice(&[0; 6]);
        a.extend_from_slice(&MEDIA_V4.octets());
        a
    };
    // A VLAN-tagged media frame: the appliance's media interface is untagged.
    let mut tagged = vec![0x00, 0x64];
    tagged.extend_from_slice(&ETH_P_IP.to_be_bytes());
    tagged.extend_from_slice(&ipv4(IPPROTO_UDP, MEDIA_V4, &[], 0, &udp(20002)));
    // EtherType IPv4 / IPv6 with the wrong version nibble.
    let mut v6_in_v4 = ipv4(IPPROTO_UDP, MEDIA_V4, &[], 0, &udp(20002));
    v6_in_v4[0] = 0x65;
    let mut v4_in_v6 = ipv6(IPPROTO_UDP, MEDIA_V6, &udp(20002));
    v4_in_v6[0] = 0x40;
    let frames = vec![
        eth(ETH_P_ARP, &arp_request),
        eth(ETH_P_8021Q, &tagged),
        eth(0x88cc, &[0; 32]), // LLDP
        eth(ETH_P_IP, &v6_in_v4),
        eth(ETH_P_IPV6, &v4_in_v6),
    ];
    assert_eq!(
        decide(&frames),
        XdpStats {
            not_ip: 5,
            ..XdpStats::default()
        }
    );
}

fn ipv4_fragments_pass() {
    const MF: u16 = 0x2000;
    const DF: u16 = 0x4000;
    let fragment = |frag: u16| {
        eth(
            ETH_P_IP,
            &ipv4(IPPROTO_UDP, MEDIA_V4, &[], frag, &udp(20002)),
        )
    };
    let frames = vec![
        fragment(MF),       // first fragment: has a UDP header, but the kernel must reassemble
        fragment(MF | 185), // middle
        fragment(185),      // last
        fragment(1),
    ];
    assert_eq!(
        decide(&frames),
        XdpStats {
            fragment_or_ext_header: 4,
            ..XdpStats::default()
        }
    );
    // Don't-fragment is not a fragment.
    assert_eq!(
        decide(&[fragment(DF)]),
        XdpStats {
            redirect: 1,
            ..XdpStats::default()
        }
    );
}

fn ipv4_options_are_skipped_by_ihl() {
    // Router alert (4 bytes), then 36 more bytes of NOPs + EOL: the largest header, IHL 15.
    let router_alert = [0x94, 0x04, 0, 0];
    let mut longest = vec![0x01; 39];
    longest.push(0);
    let frames = vec![
        eth(
            ETH_P_IP,
            &ipv4(IPPROTO_UDP, MEDIA_V4, &router_alert, 0, &udp(20002)),
        ),
        eth(
            ETH_P_IP,
            &ipv4(IPPROTO_UDP, MEDIA_V4, &longest, 0, &udp(20002)),
        ),
        eth(
            ETH_P_IP,
            &ipv4(IPPROTO_UDP, MEDIA_V4, &router_alert, 0, &udp(PORT_MAX + 1)),
        ),
    ];
    let stats = decide(&frames);
    assert_eq!(
        stats,
        XdpStats {
            redirect: 2,
            port_out_of_range: 1,
            ..XdpStats::default()
        }
    );
}

fn ipv6_extension_headers_pass() {
    // Each carries UDP to a media port behind the extension header: the program does not walk
    // the chain.
    let behind = |ext_len_units: u8| {
        let mut ext = vec![IPPROTO_UDP, ext_len_units];
        ext.resize(8 * (usize::from(ext_len_units) + 1), 0);
        ext.extend_from_slice(&udp(20002));
        ext
    };
    let fragment_header = {
        let mut f = vec![IPPROTO_UDP, 0, 0, 1, 0, 0, 0, 42];
        f.extend_from_slice(&udp(20002));
        f
    };
    let frames = vec![
        eth(ETH_P_IPV6, &ipv6(0, MEDIA_V6, &behind(0))), // hop-by-hop
        eth(ETH_P_IPV6, &ipv6(43, MEDIA_V6, &behind(0))), // routing
        eth(ETH_P_IPV6, &ipv6(44, MEDIA_V6, &fragment_header)),
        eth(ETH_P_IPV6, &ipv6(60, MEDIA_V6, &behind(1))), // destination options
        eth(ETH_P_IPV6, &ipv6(51, MEDIA_V6, &behind(1))), // AH
        eth(ETH_P_IPV6, &ipv6(50, MEDIA_V6, &[0; 24])),   // ESP
    ];
    assert_eq!(
        decide(&frames),
        XdpStats {
            fragment_or_ext_header: 6,
            ..XdpStats::default()
        }
    );
}

/// Every prefix of a media frame: shorter than the end of the UDP header is `truncated` (and
/// passed), from there on it is media. Exercises every bounds check against `data_end`.
fn assert_truncation(frame: &[u8], udp_end: usize) {
    let p = program();
    // The kernel refuses test runs shorter than an Ethernet header: the program's own
    // Ethernet-length check cannot be reached from here (nor by any frame a NIC delivers).
    assert!(matches!(p.test_run(&frame[..13]), Err(XdpError::Load(_))));
    for len in 14..=frame.len() {
        let before = p.stats().unwrap();
        assert_eq!(
            p.test_run(&frame[..len]).unwrap(),
            XdpVerdict::Pass,
            "length {len}"
        );
        let after = p.stats().unwrap();
        if len < udp_end {
            assert_eq!(
                after.truncated,
                before.truncated + 1,
                "length {len}: {after:?}"
            );
            assert_eq!(after.redirect, 0, "length {len}");
        } else {
            assert_eq!(
                after.redirect,
                before.redirect + 1,
                "length {len}: {after:?}"
            );
        }
        assert_eq!(after.total(), before.total() + 1, "length {len}");
    }
}

fn truncated_frames_pass_at_every_header_boundary() {
    assert_truncation(&udp4_frame(MEDIA_V4, 20002), 14 + 20 + 8);
    assert_truncation(&udp6_frame(MEDIA_V6, 20002), 14 + 40 + 8);
    let options = [0x01; 8];
    let with_options = eth(
        ETH_P_IP,
        &ipv4(IPPROTO_UDP, MEDIA_V4, &options, 0, &udp(20002)),
    );
    assert_truncation(&with_options, 14 + 28 + 8);
    // IHL 15 in a frame that ends right after the fixed header.
    let mut lying = ipv4(IPPROTO_UDP, MEDIA_V4, &[], 0, &udp(20002));
    lying[0] = 0x4f;
    assert_eq!(
        decide(&[eth(ETH_P_IP, &lying)]),
        XdpStats {
            truncated: 1,
            ..XdpStats::default()
        }
    );
}

fn ipv4_ihl_below_five_is_malformed() {
    let frames: Vec<_> = (0..5u8)
        .map(|ihl| {
            let mut ip = ipv4(IPPROTO_UDP, MEDIA_V4, &[], 0, &udp(20002));
            ip[0] = 0x40 | ihl;
            eth(ETH_P_IP, &ip)
        })
        .collect();
    assert_eq!(
        decide(&frames),
        XdpStats {
            truncated: 5,
            ..XdpStats::default()
        }
    );
}

fn addresses_and_range_are_configurable() {
    let p = XdpProgram::load(
        &[OTHER_V4.into(), MEDIA_V4.into(), OTHER_V6.into()],
        2000,
        2000,
    )
    .unwrap();
    for (frame, redirected) in [
        (udp4_frame(MEDIA_V4, 2000), true),
        (udp4_frame(OTHER_V4, 2000), true),
        (udp4_frame(MEDIA_V4, 2001), false),
        (udp6_frame(OTHER_V6, 2000), true),
        (udp6_frame(MEDIA_V6, 2000), false),
    ] {
        let before = p.stats().unwrap().redirect;
        p.test_run(&frame).unwrap();
        assert_eq!(
            p.stats().unwrap().redirect > before,
            redirected,
            "{frame:02x?}"
        );
    }
}

fn bad_configuration_is_refused_before_loading() {
    // No root needed: checked before anything reaches the kernel.
    let media = [IpAddr::from(MEDIA_V4)];
    let err = XdpProgram::load(&media, 30000, 20000).unwrap_err();
    assert!(matches!(err, XdpError::InvalidConfig(_)), "{err}");
    let err = XdpProgram::load(&[], PORT_MIN, PORT_MAX).unwrap_err();
    assert!(matches!(err, XdpError::InvalidConfig(_)), "{err}");
    let err = XdpProgram::load(&[Ipv4Addr::UNSPECIFIED.into()], PORT_MIN, PORT_MAX).unwrap_err();
    assert!(err.to_string().contains("wildcard"), "{err}");
    let many: Vec<IpAddr> = (1..=17)
        .map(|i| Ipv4Addr::new(10, 0, 0, i).into())
        .collect();
    let err = XdpProgram::load(&many, PORT_MIN, PORT_MAX).unwrap_err();
    assert!(matches!(err, XdpError::InvalidConfig(_)), "{err}");
    let err = XdpFilter::attach("eth0", &media, 30000, 20000, XdpMode::Native).unwrap_err();
    assert!(matches!(err, XdpError::InvalidConfig(_)), "{err}");
}

/// Drops `caps` from the calling thread's effective set (capabilities are per thread).
fn drop_effective_capabilities(caps: &[u32]) {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget(2) with a version-3 header and the two data words version 3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    for &cap in caps {
        data[(cap / 32) as usize].effective &= !(1 << (cap % 32));
    }
    // SAFETY: as above; lowering the effective set affects this thread only.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

fn missing_capabilities_are_named() {
    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    const CAP_BPF: u32 = 39;
    let err = thread::spawn(|| {
        drop_effective_capabilities(&[CAP_BPF, CAP_SYS_ADMIN]);
        XdpFilter::attach("lo", &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap_err()
    })
    .join()
    .unwrap();
    assert!(matches!(err, XdpError::NotPermitted(_)), "{err}");
    assert_eq!(
        err.to_string(),
        "attaching XDP to lo needs CAP_NET_ADMIN and CAP_BPF, and this process lacks CAP_BPF \
         (run as root or via the systemd unit)"
    );
    let err = thread::spawn(|| {
        drop_effective_capabilities(&[CAP_BPF, CAP_SYS_ADMIN, CAP_NET_ADMIN]);
        program_or_error()
    })
    .join()
    .unwrap();
    assert!(err.contains("lacks CAP_NET_ADMIN and CAP_BPF"), "{err}");
}

fn program_or_error() -> String {
    match XdpProgram::load(&media(), PORT_MIN, PORT_MAX) {
        Ok(_) => "loaded".to_owned(),
        Err(err) => err.to_string(),
    }
}

fn xskmap_refuses_what_is_not_a_bound_af_xdp_socket() {
    let p = program();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = p.register_xsk(0, udp.as_raw_fd()).unwrap_err();
    assert!(matches!(err, XdpError::Map(_)), "{err}");
    let err = p
        .register_xsk(xdp::MAX_QUEUES, udp.as_raw_fd())
        .unwrap_err();
    assert!(err.to_string().contains("beyond"), "{err}");
    // Removing what is not there is fine (shutdown after a failed start).
    p.unregister_xsk(0).unwrap();
}

// ---- Interfaces ------------------------------------------------------------------------------

fn a_missing_interface_is_named() {
    let media = [IpAddr::from(MEDIA_V4)];
    for name in ["earshot-nope0", "", "a/b", "much-too-long-interface-name"] {
        let err = XdpFilter::attach(name, &media, PORT_MIN, PORT_MAX, XdpMode::Native).unwrap_err();
        assert!(
            matches!(&err, XdpError::NoSuchInterface(n) if n == name),
            "{name}: {err}"
        );
        assert_eq!(
            err.to_string(),
            format!("interface {name} not found (see `ip link`)")
        );
        assert!(matches!(
            xdp::remove_stale(name),
            Err(XdpError::NoSuchInterface(_))
        ));
        assert!(matches!(
            xdp::queue_count(name),
            Err(XdpError::NoSuchInterface(_))
        ));
    }
}

fn loopback_has_a_queue() {
    assert!(xdp::queue_count("lo").unwrap() >= 1);
    assert_eq!(xdp::ifindex("lo").unwrap(), 1);
}

/// A pair of network namespaces joined by veth: `a` (the appliance side, `MEDIA_V4` /
/// `MEDIA_V6` on `veth_a`) and `b` (the peer). Removed on drop, panics included.
struct Netns {
    a: String,
    b: String,
    veth_a: String,
    veth_b: String,
}

fn ip(args: &[&str]) {
    ip_output(args);
}

fn ip_output(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("run ip (iproute2)");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Netns {
    fn new() -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "{}x{}",
            std::process::id() % 100_000,
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns {
            a: format!("esxdp-{id}-a"),
            b: format!("esxdp-{id}-b"),
            veth_a: format!("esa{id}"),
            veth_b: format!("esb{id}"),
        };
        ip(&["netns", "add", &ns.a]);
        // From here on, drop cleans up whatever was made.
        ip(&["netns", "add", &ns.b]);
        ip(&[
            "link", "add", &ns.veth_a, "netns", &ns.a, "type", "veth", "peer", "name", &ns.veth_b,
            "netns", &ns.b,
        ]);
        for (netns, dev, v4, v6) in [
            (&ns.a, &ns.veth_a, MEDIA_V4, MEDIA_V6),
            (&ns.b, &ns.veth_b, PEER_V4, PEER_V6),
        ] {
            ip(&["-n", netns, "addr", "add", &format!("{v4}/24"), "dev", dev]);
            ip(&[
                "-n",
                netns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ip(&["-n", netns, "link", "set", dev, "up"]);
            ip(&["-n", netns, "link", "set", "lo", "up"]);
        }
        ns
    }

    /// What `ip -d link show` says about the appliance side's veth.
    fn link_details(&self) -> String {
        ip_output(&["-n", &self.a, "-d", "link", "show", "dev", &self.veth_a])
    }

    /// Attaches the XDP program in `object` to the appliance side's veth through iproute2
    /// (netlink), in `mode` (`xdpgeneric` or `xdpdrv`): what another tool, or a run killed
    /// while attached through netlink, leaves behind.
    fn attach_with_ip(&self, mode: &str, object: &TempFile) {
        ip(&[
            "-n",
            &self.a,
            "link",
            "set",
            "dev",
            &self.veth_a,
            mode,
            "obj",
            object.path(),
            "sec",
            "xdp",
        ]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Runs `f` on a new thread that has entered network namespace `ns`, and returns its result
/// (re-raising its panic).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{ns}");
    let handle = thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: setns(2) with a valid namespace fd changes only this thread's network
        // namespace; the fd outlives the call and nothing on this thread depends on the old one.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    });
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// One ICMP echo from the calling thread's namespace to `to`; true if answered.
fn ping(to: Ipv4Addr) -> bool {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(
        Domain::IPV4,
        Type::from(libc::SOCK_RAW),
        Some(Protocol::ICMPV4),
    )
    .expect("raw ICMP socket");
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let id = (std::process::id() & 0xffff) as u16;
    let mut echo = vec![8, 0, 0, 0];
    echo.extend_from_slice(&id.to_be_bytes());
    echo.extend_from_slice(&[0, 1]);
    echo.extend_from_slice(b"earshot-xdp-ping");
    let sum = checksum(&echo);
    echo[2..4].copy_from_slice(&sum.to_be_bytes());
    sock.send_to(&echo, &SocketAddr::from((to, 0)).into())
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut buf = [0u8; 1500];
    while Instant::now() < deadline {
        let Ok(n) = (&sock).read(&mut buf) else {
            continue;
        };
        // A raw socket hands over the IPv4 header too.
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let icmp = &buf[ihl..n];
        if icmp.len() >= 8 && icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() {
            return true;
        }
    }
    false
}

/// A TCP connection from namespace `b` to a listener in the calling thread's namespace, with a
/// few bytes across; true if it worked.
fn tcp_works(b: &str, to: IpAddr) -> bool {
    let listener = TcpListener::bind((to, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    let client = thread::spawn({
        let b = b.to_owned();
        move || {
            in_netns(&b, move || {
                let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
                s.write_all(b"hello").ok()
            })
        }
    });
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while Instant::now() < deadline {
        if let Ok((mut s, _)) = listener.accept() {
            s.set_nonblocking(false).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let _ = s.read_to_end(&mut got);
            break;
        }
        thread::sleep(Duration::from_millis(10));
    }
    client.join().unwrap().is_some() && got == b"hello"
}

/// A UDP datagram from namespace `b` to a socket bound in the calling thread's namespace at
/// `to`; true if it arrived (through the kernel's stack, i.e. passed by the program).
fn udp_arrives(b: &str, to: SocketAddr) -> bool {
    let server = UdpSocket::bind(to).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    in_netns(b, move || {
        let unspecified: IpAddr = if to.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        let client = UdpSocket::bind((unspecified, 0)).unwrap();
        client.send_to(b"rtp", to).unwrap();
    });
    let mut buf = [0u8; 16];
    matches!(server.recv_from(&mut buf), Ok((3, _)))
}

fn media() -> Vec<IpAddr> {
    vec![MEDIA_V4.into(), MEDIA_V6.into()]
}

fn attached_on_veth_media_is_steered_and_everything_else_still_works() {
    let ns = Netns::new();
    let (a, b, veth) = (ns.a.clone(), ns.b.clone(), ns.veth_a.clone());
    let id = in_netns(&a, move || {
        let filter = XdpFilter::attach_with(
            &veth,
            &media(),
            PORT_MIN,
            PORT_MAX,
            XdpMode::Native,
            XdpFallback::Never,
        )
        .expect("native XDP on veth");
        assert_eq!(filter.mode(), XdpMode::Native);
        assert_eq!(filter.ifindex(), xdp::ifindex(&veth).unwrap());
        let attached = xdp::attached_programs(&veth).unwrap();
        assert_eq!(attached.len(), 1, "{attached:?}");
        let id = filter.program().id();
        assert_eq!(
            (attached[0].id, attached[0].name.as_str(), attached[0].mode),
            (id, PROGRAM_NAME, XdpMode::Native)
        );

        // ARP / neighbour discovery must pass for any of this to work.
        assert!(in_netns(&b, || ping(MEDIA_V4)), "ICMP echo across the veth");
        assert!(tcp_works(&b, MEDIA_V4.into()), "TCP over IPv4");
        assert!(tcp_works(&b, MEDIA_V6.into()), "TCP over IPv6");
        // Media with no AF_XDP socket registered falls back to the kernel: it still arrives.
        assert!(udp_arrives(&b, (MEDIA_V4, 20002).into()));
        assert!(udp_arrives(&b, (MEDIA_V6, 20004).into()));
        assert!(udp_arrives(&b, (MEDIA_V4, 2223).into()), "NG port");
        let stats = filter.stats().unwrap();
        assert!(stats.redirect >= 2, "{stats:?}");
        assert!(stats.port_out_of_range >= 1, "{stats:?}");
        assert!(stats.not_udp >= 4, "TCP segments and ICMP: {stats:?}");
        drop(filter);
        assert!(
            xdp::attached_programs(&veth).unwrap().is_empty(),
            "detached on drop"
        );
        id
    });
    assert!(
        !ns.link_details().contains(&format!("id {id} ")),
        "{}",
        ns.link_details()
    );

    // Attach twice in a row (the second after the first is gone), and explicitly detach.
    let veth = ns.veth_a.clone();
    in_netns(&a, move || {
        for _ in 0..2 {
            let filter =
                XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap();
            assert_eq!(filter.mode(), XdpMode::Native);
            filter.detach().unwrap();
            assert!(xdp::attached_programs(&veth).unwrap().is_empty());
        }
    });
}

fn a_registered_af_xdp_socket_receives_the_media_and_only_the_media() {
    use xsk_rs::config::{LibxdpFlags, SocketConfig, UmemConfig};
    use xsk_rs::{Socket, Umem};
    let ns = Netns::new();
    let (veth, b) = (ns.veth_a.clone(), ns.b.clone());
    in_netns(&ns.a, move || {
        let filter =
            XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap();
        let (umem, mut descs) =
            Umem::new(UmemConfig::default(), 64.try_into().unwrap(), false).expect("UMEM");
        // earshot attaches its own program: libxdp must not load its default one.
        let config = SocketConfig::builder()
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .build();
        // SAFETY: a fresh UMEM, not shared: the (interface, queue) pair is bound once.
        let (_tx, mut rx, rings) = unsafe { Socket::new(config, &umem, &veth.parse().unwrap(), 0) }
            .expect("AF_XDP socket");
        let (mut fill, _completion) = rings.expect("fill and completion rings of a new UMEM");
        let (to_fill, to_receive) = descs.split_at_mut(32);
        // SAFETY: these frames belong to this UMEM and are not in any other ring.
        assert_eq!(unsafe { fill.produce(to_fill) }, 32);
        filter.register_xsk(0, rx.fd().as_raw_fd()).unwrap();

        // The kernel's socket on the same port must not see the media any more.
        let kernel = UdpSocket::bind((MEDIA_V4, 20002)).unwrap();
        kernel
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        in_netns(&b, || {
            let client = UdpSocket::bind((PEER_V4, 0)).unwrap();
            client.send_to(b"media", (MEDIA_V4, 20002)).unwrap();
        });
        let mut received = 0;
        let deadline = Instant::now() + Duration::from_secs(3);
        while received == 0 && Instant::now() < deadline {
            // SAFETY: the descriptors come from this UMEM and are not in any ring.
            received = unsafe { rx.poll_and_consume(to_receive, 100) }.unwrap();
        }
        assert_eq!(received, 1, "the media datagram reached the AF_XDP socket");
        // SAFETY: the descriptor was just filled by the RX ring of this UMEM.
        let frame = unsafe { umem.data(&to_receive[0]) }.contents().to_vec();
        assert_eq!(&frame[12..14], &ETH_P_IP.to_be_bytes());
        assert_eq!(&frame[14 + 16..14 + 20], &MEDIA_V4.octets());
        assert_eq!(&frame[14 + 20 + 2..14 + 20 + 4], &20002u16.to_be_bytes());
        assert_eq!(&frame[14 + 28..], b"media");
        let mut buf = [0u8; 16];
        assert!(
            kernel.recv_from(&mut buf).is_err(),
            "redirected, not passed"
        );

        // Everything else still goes to the kernel.
        assert!(tcp_works(&b, MEDIA_V4.into()));
        assert!(udp_arrives(&b, (MEDIA_V4, 2223).into()));

        // Unregistered: the media falls back to the kernel.
        filter.unregister_xsk(0).unwrap();
        in_netns(&b, || {
            let client = UdpSocket::bind((PEER_V4, 0)).unwrap();
            client.send_to(b"media", (MEDIA_V4, 20002)).unwrap();
        });
        assert!(
            matches!(kernel.recv_from(&mut buf), Ok((5, _))),
            "passed once unregistered"
        );
        assert_eq!(filter.stats().unwrap().redirect, 2);
    });
}

fn a_second_filter_on_the_same_interface_is_refused_while_the_first_lives() {
    let ns = Netns::new();
    let veth = ns.veth_a.clone();
    in_netns(&ns.a, move || {
        let first =
            XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap();
        let err =
            XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap_err();
        assert!(matches!(err, XdpError::Attach(_)), "{err}");
        assert!(
            err.to_string().contains("another earshot is running"),
            "{err}"
        );
        assert!(
            xdp::remove_stale(&veth).is_err(),
            "a live link is not stale"
        );
        // The first one is untouched.
        assert_eq!(
            xdp::attached_programs(&veth).unwrap()[0].id,
            first.program().id()
        );
    });
}

fn generic_mode_attaches_and_detaches() {
    let ns = Netns::new();
    let (veth, b) = (ns.veth_a.clone(), ns.b.clone());
    in_netns(&ns.a, move || {
        let filter =
            XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Generic).unwrap();
        assert_eq!(filter.mode(), XdpMode::Generic);
        let attached = xdp::attached_programs(&veth).unwrap();
        assert_eq!(
            attached.iter().map(|p| p.mode).collect::<Vec<_>>(),
            [XdpMode::Generic]
        );
        assert!(udp_arrives(&b, (MEDIA_V4, 20002).into()));
        assert!(tcp_works(&b, MEDIA_V4.into()));
        assert_eq!(filter.stats().unwrap().redirect, 1);
        drop(filter);
        assert!(xdp::attached_programs(&veth).unwrap().is_empty());
    });
}

fn native_refused_by_the_driver_falls_back_to_generic_or_fails() {
    let ns = Netns::new();
    // veth refuses native XDP (for programs without multi-buffer support) when its peer's MTU
    // does not fit in a page.
    ip(&["-n", &ns.b, "link", "set", "dev", &ns.veth_b, "mtu", "9000"]);
    let (veth, b) = (ns.veth_a.clone(), ns.b.clone());
    in_netns(&ns.a, move || {
        let err = XdpFilter::attach_with(
            &veth,
            &media(),
            PORT_MIN,
            PORT_MAX,
            XdpMode::Native,
            XdpFallback::Never,
        )
        .unwrap_err();
        assert!(matches!(err, XdpError::Attach(_)), "{err}");
        assert!(
            err.to_string()
                .starts_with(&format!("native XDP on {veth} refused by the driver")),
            "{err}"
        );
        assert!(xdp::attached_programs(&veth).unwrap().is_empty());

        let filter =
            XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap();
        assert_eq!(filter.mode(), XdpMode::Generic);
        let attached = xdp::attached_programs(&veth).unwrap();
        assert_eq!(
            attached.iter().map(|p| p.mode).collect::<Vec<_>>(),
            [XdpMode::Generic]
        );
        assert!(udp_arrives(&b, (MEDIA_V4, 20002).into()));
        assert_eq!(filter.stats().unwrap().redirect, 1);
        drop(filter);
        assert!(xdp::attached_programs(&veth).unwrap().is_empty());
    });
}

/// Set in the environment of a child copy of this test binary: "NETNS VETH native|generic".
const CHILD_ENV: &str = "EARSHOT_XDP_TEST_CHILD";

/// Not a test of its own: the child that `kill -9` is tried on. It attaches as told by
/// `CHILD_ENV`, says so on stdout, and waits to be killed.
fn child_attach_and_wait() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let [netns, veth, mode] = spec.split(' ').collect::<Vec<_>>()[..] else {
        panic!("bad {CHILD_ENV}: {spec}");
    };
    let (veth, mode) = (
        veth.to_owned(),
        if mode == "native" {
            XdpMode::Native
        } else {
            XdpMode::Generic
        },
    );
    in_netns(netns, move || {
        let filter = XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, mode).unwrap();
        println!("EARSHOT-ATTACHED {}", filter.program().id());
        std::io::stdout().flush().unwrap();
        thread::sleep(Duration::from_secs(60));
    });
}

/// Starts a child that attaches in `mode`, and kills it with SIGKILL once attached; returns the
/// id of the program it attached.
fn attach_in_child_and_kill(ns: &Netns, mode: &str) -> u32 {
    use std::io::BufRead;
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_attach_and_wait",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_ENV, format!("{} {} {mode}", ns.a, ns.veth_a))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let id = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| line.strip_prefix("EARSHOT-ATTACHED ")?.parse().ok());
    child.kill().unwrap(); // SIGKILL: no destructor runs
    child.wait().unwrap();
    id.expect("the child attached")
}

fn a_killed_process_leaves_nothing_that_blocks_the_next_start() {
    let ns = Netns::new();

    // Native, through a bpf_link: the kernel detaches with the dead process's fds.
    let id = attach_in_child_and_kill(&ns, "native");
    let veth = ns.veth_a.clone();
    in_netns(&ns.a, move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !xdp::attached_programs(&veth).unwrap().is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        assert!(
            xdp::attached_programs(&veth).unwrap().is_empty(),
            "program {id} left attached"
        );
        XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap();
    });

    // Generic, through netlink: the program stays, and the next start removes it.
    let id = attach_in_child_and_kill(&ns, "generic");
    let veth = ns.veth_a.clone();
    in_netns(&ns.a, move || {
        let left = xdp::attached_programs(&veth).unwrap();
        assert_eq!(left.iter().map(|p| p.id).collect::<Vec<_>>(), [id]);
        let filter =
            XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Generic).unwrap();
        let now = xdp::attached_programs(&veth).unwrap();
        assert_eq!(
            now.iter().map(|p| p.id).collect::<Vec<_>>(),
            [filter.program().id()]
        );
        assert_ne!(filter.program().id(), id);
    });
}

/// A unique path in the temp directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "earshot-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Another tool's XDP program: passes everything, named `foreign_pass`.
fn foreign_object() -> TempFile {
    let source = TempFile::new(
        "foreign.c",
        b"__attribute__((section(\"xdp\"), used)) int foreign_pass(void *ctx) { return 2; }\n\
          __attribute__((section(\"license\"), used)) char _license[] = \"GPL\";\n",
    );
    let object = TempFile::new("foreign.o", b"");
    let out = Command::new("clang")
        .args([
            "-O2",
            "-target",
            "bpf",
            "-c",
            source.path(),
            "-o",
            object.path(),
        ])
        .output()
        .expect("run clang");
    assert!(
        out.status.success(),
        "clang: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    object
}

fn a_netlink_attached_leftover_is_removed_and_a_foreign_program_is_refused() {
    let ns = Netns::new();
    let object = TempFile::new("earshot_xdp.o", OBJECT);
    // What a run killed while attached through netlink (generic mode) leaves behind.
    for mode in ["xdpgeneric", "xdpdrv"] {
        ns.attach_with_ip(mode, &object);
        assert!(
            ns.link_details().contains(PROGRAM_NAME),
            "{}",
            ns.link_details()
        );
        let veth = ns.veth_a.clone();
        in_netns(&ns.a, move || {
            assert!(xdp::remove_stale(&veth).unwrap(), "removed");
            assert!(xdp::attached_programs(&veth).unwrap().is_empty());
            assert!(!xdp::remove_stale(&veth).unwrap(), "nothing left");
        });
    }
    // A start finds the leftover and removes it by itself.
    ns.attach_with_ip("xdpgeneric", &object);
    let veth = ns.veth_a.clone();
    in_netns(&ns.a, move || {
        let filter =
            XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap();
        assert_eq!(filter.mode(), XdpMode::Native);
        let attached = xdp::attached_programs(&veth).unwrap();
        assert_eq!(attached.len(), 1);
        assert_eq!(attached[0].id, filter.program().id());
    });

    // Another tool's program is neither replaced nor removed.
    ns.attach_with_ip("xdpgeneric", &foreign_object());
    let veth = ns.veth_a.clone();
    in_netns(&ns.a, move || {
        let err =
            XdpFilter::attach(&veth, &media(), PORT_MIN, PORT_MAX, XdpMode::Native).unwrap_err();
        match &err {
            XdpError::ForeignProgram { ifname, name, id } => {
                assert_eq!(
                    (ifname.as_str(), name.as_str()),
                    (veth.as_str(), "foreign_pass")
                );
                assert!(*id > 0);
            }
            other => panic!("expected ForeignProgram, got {other}"),
        }
        assert!(err.to_string().contains("will not replace it"), "{err}");
        assert!(matches!(
            xdp::remove_stale(&veth),
            Err(XdpError::ForeignProgram { .. })
        ));
        let attached = xdp::attached_programs(&veth).unwrap();
        assert_eq!(
            attached.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["foreign_pass"]
        );
    });
}

// ---- kernel-cfg/nic-setup --------------------------------------------------------------------

fn nic_setup() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-cfg/nic-setup")
}

fn run_nic_setup(args: &[&str]) -> (bool, String, String) {
    run_nic_setup_with_path(args, &std::env::var("PATH").unwrap_or_default())
}

fn run_nic_setup_with_path(args: &[&str], path: &str) -> (bool, String, String) {
    let out = Command::new("bash")
        .arg(nic_setup())
        .args(args)
        .env("PATH", path)
        .output()
        .expect("run bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn nic_setup_dry_run_prints_the_commands() {
    let (ok, stdout, stderr) = run_nic_setup(&[
        "lo",
        "--queues",
        "2",
        "--cores",
        "0,1",
        "--ports",
        "20000-29999",
        "--dry-run",
    ]);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("ethtool -L lo combined 2"), "{stdout}");
    // Loopback has neither IRQs nor ntuple filters: said, and skipped.
    assert!(stderr.contains("no IRQs"), "{stderr}");
    assert!(stderr.contains("ntuple"), "{stderr}");
}

fn nic_setup_refuses_bad_arguments() {
    // A command line that is accepted, and variants of it that each get one thing wrong.
    let valid = [
        "lo",
        "--queues",
        "2",
        "--cores",
        "1",
        "--ports",
        "20000-29999",
        "--dry-run",
    ];
    let (ok, stdout, stderr) = run_nic_setup(&valid);
    assert!(
        ok,
        "{valid:?} refused: stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let with = |at: usize, value: &'static str| {
        let mut args = valid.to_vec();
        args[at] = value;
        args
    };
    for args in [
        vec![],
        vec!["lo"],
        with(2, "0"),             // no queues
        with(4, "x"),             // cores that are not CPU numbers
        with(6, "29999-20000"),   // an empty port range
        with(6, "20000"),         // a port, not a range
        with(7, "--bogus"),       // an unknown option
        with(0, "earshot-nope0"), // no such interface
    ] {
        let (ok, _, stderr) = run_nic_setup(&args);
        assert!(!ok, "{args:?} accepted");
        assert!(stderr.contains("nic-setup:"), "{args:?}: {stderr}");
    }
    let (ok, stdout, _) = run_nic_setup(&["--help"]);
    assert!(ok && stdout.contains("--dry-run"));
}

/// A NIC with 8 combined channels and ntuple filters, one old earshot rule in place: an
/// `ethtool` stand-in (first on PATH) that answers the queries nic-setup makes.
const FAKE_ETHTOOL: &str = r#"#!/bin/sh
case "$1" in
-l) printf 'Channel parameters for %s:\nPre-set maximums:\nRX:\t\tn/a\nCombined:\t8\nCurrent hardware settings:\nRX:\t\tn/a\nCombined:\t1\n' "$2" ;;
-k) printf 'Features for %s:\nntuple-filters: off\n' "$2" ;;
-n) printf '8 RX rings available\nTotal 2 rules\n\nFilter: 1022\n\tRule Type: TCP over IPv4\n\tDest port: 22 mask: 0x0\n\nFilter: 1023\n\tRule Type: UDP over IPv4\n\tDest port: 20000 mask: 0x1f\n\tAction: Direct to queue 0\n' ;;
*) echo "unexpected: $*" >&2; exit 1 ;;
esac
"#;

fn nic_setup_steers_port_shares_to_queues_where_ntuple_is_supported() {
    use std::os::unix::fs::PermissionsExt;
    let fake = TempFile::new("ethtool-dir", b"");
    std::fs::remove_file(&fake.0).unwrap();
    std::fs::create_dir(&fake.0).unwrap();
    let ethtool = fake.0.join("ethtool");
    std::fs::write(&ethtool, FAKE_ETHTOOL).unwrap();
    std::fs::set_permissions(&ethtool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        fake.path(),
        std::env::var("PATH").unwrap_or_default()
    );
    let args = [
        "lo",
        "--queues",
        "2",
        "--cores",
        "0",
        "--ports",
        "20000-29999",
        "--ipv6",
        "--dry-run",
    ];
    let (ok, stdout, stderr) = run_nic_setup_with_path(&args, &path);
    let _ = std::fs::remove_dir_all(&fake.0);
    assert!(ok, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "ethtool -L lo combined 2");
    assert_eq!(lines[1], "ethtool -K lo ntuple on");
    // Only the old UDP rule inside the media range goes.
    assert_eq!(lines[2], "ethtool -N lo delete 1023");
    // The rules cover the range exactly, each port once per family: the first half to queue 0,
    // the rest to queue 1.
    let mut owner = std::collections::BTreeMap::new();
    for rule in &lines[3..] {
        let words: Vec<&str> = rule.split_whitespace().collect();
        let [
            _,
            "-N",
            "lo",
            "flow-type",
            flow,
            "dst-port",
            base,
            "m",
            mask,
            "action",
            queue,
        ] = words[..]
        else {
            panic!("unexpected line {rule}");
        };
        let base: u32 = base.parse().unwrap();
        let mask = u32::from_str_radix(mask.trim_start_matches("0x"), 16).unwrap();
        assert_eq!(base & mask, 0, "{rule}: an aligned block");
        for port in base..=base + mask {
            assert!(
                owner
                    .insert((flow.to_owned(), port), queue.to_owned())
                    .is_none(),
                "{rule}"
            );
        }
    }
    for flow in ["udp4", "udp6"] {
        let ports: Vec<_> = owner
            .keys()
            .filter(|(f, _)| f == flow)
            .map(|(_, p)| *p)
            .collect();
        assert_eq!(ports, (20000..=29999).collect::<Vec<_>>(), "{flow}");
        assert_eq!(owner[&(flow.to_owned(), 24999)], "0");
        assert_eq!(owner[&(flow.to_owned(), 25000)], "1");
        assert_eq!(owner[&(flow.to_owned(), 29999)], "1");
    }
    assert!(stderr.contains("ntuple rules"), "{stderr}");
}

// ---- kernel-cfg/sysctl.d ---------------------------------------------------------------------

fn sysctl_file_sets_keys_this_kernel_has() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../kernel-cfg/sysctl.d/90-earshot.conf");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut keys = 0;
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not key = value: {line}"));
        let proc_path = Path::new("/proc/sys").join(key.trim().replace('.', "/"));
        assert!(proc_path.exists(), "{key}: no {}", proc_path.display());
        assert!(!value.trim().is_empty(), "{line}");
        keys += 1;
    }
    assert!(text.contains("net.ipv4.ip_local_reserved_ports = 20000-29999"));
    assert!(keys >= 5);
}

fn main() {
    let mut trials = needs_root::root_trials![
        media_udp_inside_the_range_is_redirected,
        media_address_outside_the_port_range_passes,
        udp_to_another_address_passes,
        tcp_icmp_and_neighbour_discovery_pass,
        non_ip_frames_pass,
        ipv4_fragments_pass,
        ipv4_options_are_skipped_by_ihl,
        ipv6_extension_headers_pass,
        truncated_frames_pass_at_every_header_boundary,
        ipv4_ihl_below_five_is_malformed,
        addresses_and_range_are_configurable,
        missing_capabilities_are_named,
        xskmap_refuses_what_is_not_a_bound_af_xdp_socket,
        attached_on_veth_media_is_steered_and_everything_else_still_works,
        a_registered_af_xdp_socket_receives_the_media_and_only_the_media,
        a_second_filter_on_the_same_interface_is_refused_while_the_first_lives,
        generic_mode_attaches_and_detaches,
        native_refused_by_the_driver_falls_back_to_generic_or_fails,
        a_killed_process_leaves_nothing_that_blocks_the_next_start,
        a_netlink_attached_leftover_is_removed_and_a_foreign_program_is_refused,
    ];
    trials.extend(needs_root::plain_trials![
        bad_configuration_is_refused_before_loading,
        a_missing_interface_is_named,
        loopback_has_a_queue,
        nic_setup_dry_run_prints_the_commands,
        nic_setup_refuses_bad_arguments,
        nic_setup_steers_port_shares_to_queues_where_ntuple_is_supported,
        sysctl_file_sets_keys_this_kernel_has,
    ]);
    // Not a test of its own: the child that
    // `a_killed_process_leaves_nothing_that_blocks_the_next_start` starts with `--exact
    // child_attach_and_wait --ignored`.
    trials.push(
        needs_root::plain("child_attach_and_wait", child_attach_and_wait).with_ignored_flag(true),
    );
    needs_root::main(trials);
}
