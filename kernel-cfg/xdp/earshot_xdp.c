// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
//
// earshot's XDP program: steer media RTP/RTCP into the AF_XDP sockets, hand everything else to
// the kernel untouched.
//
// A frame is redirected to the AF_XDP socket of its RX queue (XSKMAP `xsks`) only when it is
//   Ethernet (no VLAN tag) → IPv4 (not a fragment, options allowed) or IPv6 (UDP as the very next
//   header) → UDP whose destination address is one of the appliance's media addresses
//   (`media_v4` / `media_v6`) and whose destination port is inside the media range (`config`).
// Everything else is XDP_PASS: SSH, ARP, IPv6 neighbour discovery, ICMP, the control API, the NG
// protocol, other UDP. The program never drops: a frame it does not understand is the kernel's
// business. Each decision is counted in the per-CPU array `stats`, indexed by `enum stat`, so
// tests and metrics see what the program decided (the loader sums the CPUs).
//
// Self-contained on purpose: only kernel UAPI headers, no libbpf headers, so a machine with clang
// and linux-libc-dev can build it. The few libbpf macros it needs are defined below.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

// ---- What bpf/bpf_helpers.h and bpf/bpf_endian.h would give us ------------------------------

#define SEC(name) __attribute__((section(name), used))
// One program, no BPF-to-BPF calls: every helper function is inlined.
#define INLINE static inline __attribute__((always_inline))
// BTF-defined map attributes, read by libbpf (and iproute2's libbpf loader) from the debug info.
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define bpf_htons(x) __builtin_bswap16(x)
#define bpf_ntohs(x) __builtin_bswap16(x)
#else
#define bpf_htons(x) (x)
#define bpf_ntohs(x) (x)
#endif

// Helper calls: the kernel resolves the constant "address" to the helper of that number.
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)BPF_FUNC_map_lookup_elem;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)BPF_FUNC_redirect_map;

// IPv4 fragment bits of `frag_off` (host order); not in the UAPI headers.
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

// ---- Maps (the loader in dataplane/src/engine/xdp.rs relies on these names and layouts) ------

// RX queue index → AF_XDP socket. A queue without a socket makes bpf_redirect_map fall back to
// XDP_PASS (its flags argument), so media to a queue no worker owns still reaches the kernel.
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// The appliance's IPv4 media addresses, key in network byte order; the value is unused.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u8);
} media_v4 SEC(".maps");

struct in6_key {
	__u8 addr[16];
};

// The appliance's IPv6 media addresses; the value is unused.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct in6_key);
	__type(value, __u8);
} media_v6 SEC(".maps");

// The media UDP port range, inclusive, host byte order.
struct config {
	__u16 port_min;
	__u16 port_max;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} config SEC(".maps");

// One counter per decision. The numbering is shared with `XdpStats` in the loader.
enum stat {
	STAT_REDIRECT = 0,               // media: redirect attempted (see below)
	STAT_NOT_IP = 1,                 // not IPv4/IPv6 (ARP, VLAN-tagged, LLDP, ...)
	STAT_NOT_UDP = 2,                // TCP, ICMP, ICMPv6 (neighbour discovery), ...
	STAT_FRAGMENT_OR_EXT_HEADER = 3, // IPv4 fragment, IPv6 extension header
	STAT_TRUNCATED = 4,              // a header runs past the end of the frame, or IHL < 5
	STAT_NOT_MEDIA_ADDRESS = 5,      // UDP to an address that is not a media address
	STAT_PORT_OUT_OF_RANGE = 6,      // UDP to a media address, port outside the media range
	STAT_COUNT = 7,
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// Counts `stat` and returns `verdict`, so each decision below is one line.
INLINE int decide(__u32 stat, int verdict)
{
	__u64 *count = bpf_map_lookup_elem(&stats, &stat);

	// Per-CPU slot: no other CPU writes it, a plain increment is enough.
	if (count)
		*count += 1;
	return verdict;
}

// Called with the UDP header in bounds and the destination address known to be a media address.
INLINE int media_port(struct xdp_md *ctx, const struct udphdr *udp)
{
	__u32 zero = 0;
	const struct config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u16 port = bpf_ntohs(udp->dest);

	// An ARRAY lookup of index 0 cannot fail; the check is for the verifier.
	if (!cfg)
		return XDP_PASS;
	// Another port on a media address (the NG protocol, a local resolver reply, ...): kernel.
	if (port < cfg->port_min || port > cfg->port_max)
		return decide(STAT_PORT_OUT_OF_RANGE, XDP_PASS);
	// Media. The counter counts the attempt: if no socket is registered for this queue,
	// bpf_redirect_map returns its fallback XDP_PASS and the kernel gets the frame.
	decide(STAT_REDIRECT, XDP_PASS);
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

INLINE int ipv4(struct xdp_md *ctx, void *l3, void *data_end)
{
	struct iphdr *ip = l3;
	struct udphdr *udp;
	__u32 daddr;

	if ((void *)(ip + 1) > data_end)
		return decide(STAT_TRUNCATED, XDP_PASS);
	// EtherType IPv4 but not a version-4 header: not something we parse.
	if (ip->version != 4)
		return decide(STAT_NOT_IP, XDP_PASS);
	// IHL counts 32-bit words; below 5 the header is malformed. The kernel drops it.
	if (ip->ihl < 5)
		return decide(STAT_TRUNCATED, XDP_PASS);
	if (ip->protocol != IPPROTO_UDP)
		return decide(STAT_NOT_UDP, XDP_PASS);
	// A fragment (more fragments follow, or a non-first piece without a UDP header): the kernel
	// reassembles; media is never fragmented in practice.
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return decide(STAT_FRAGMENT_OR_EXT_HEADER, XDP_PASS);
	// Honour IHL: options sit between the fixed header and UDP.
	udp = l3 + ip->ihl * 4;
	if ((void *)(udp + 1) > data_end)
		return decide(STAT_TRUNCATED, XDP_PASS);
	daddr = ip->daddr;
	if (!bpf_map_lookup_elem(&media_v4, &daddr))
		return decide(STAT_NOT_MEDIA_ADDRESS, XDP_PASS);
	return media_port(ctx, udp);
}

INLINE int ipv6(struct xdp_md *ctx, void *l3, void *data_end)
{
	struct ipv6hdr *ip6 = l3;
	struct udphdr *udp = (void *)(ip6 + 1);
	struct in6_key daddr;

	if ((void *)(ip6 + 1) > data_end)
		return decide(STAT_TRUNCATED, XDP_PASS);
	if (ip6->version != 6)
		return decide(STAT_NOT_IP, XDP_PASS);
	switch (ip6->nexthdr) {
	case IPPROTO_UDP:
		break;
	// Extension headers (hop-by-hop, routing, fragment, ESP, AH, destination options,
	// mobility, HIP, shim6): media never carries them; walking them is not worth the
	// complexity here. The kernel handles them.
	case IPPROTO_HOPOPTS:
	case IPPROTO_ROUTING:
	case IPPROTO_FRAGMENT:
	case IPPROTO_ESP:
	case IPPROTO_AH:
	case IPPROTO_DSTOPTS:
	case IPPROTO_MH:
	case 139: // HIP
	case 140: // shim6
		return decide(STAT_FRAGMENT_OR_EXT_HEADER, XDP_PASS);
	// TCP, ICMPv6 (neighbour discovery, echo), no-next-header, ...
	default:
		return decide(STAT_NOT_UDP, XDP_PASS);
	}
	if ((void *)(udp + 1) > data_end)
		return decide(STAT_TRUNCATED, XDP_PASS);
	__builtin_memcpy(daddr.addr, ip6->daddr.in6_u.u6_addr8, sizeof(daddr.addr));
	if (!bpf_map_lookup_elem(&media_v6, &daddr))
		return decide(STAT_NOT_MEDIA_ADDRESS, XDP_PASS);
	return media_port(ctx, udp);
}

// The program's name is how a later run recognises a leftover of ours (the kernel keeps the
// first 15 characters): keep it in step with PROGRAM_NAME in the loader.
SEC("xdp")
int earshot_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return decide(STAT_TRUNCATED, XDP_PASS);
	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		return ipv4(ctx, eth + 1, data_end);
	case bpf_htons(ETH_P_IPV6):
		return ipv6(ctx, eth + 1, data_end);
	// ARP, VLAN-tagged frames (the appliance's media interface is untagged), LLDP, ...
	default:
		return decide(STAT_NOT_IP, XDP_PASS);
	}
}

// GPL-compatible: the kernel only offers some helpers to GPL programs.
char _license[] SEC("license") = "Dual BSD/GPL";
