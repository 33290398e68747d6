// SPDX-License-Identifier: MIT OR Apache-2.0
//
// xipsec XDP classifier. For every frame on a gateway interface it decides, without touching the
// frame, whether the data plane (an AF_XDP socket on the receiving queue) or the kernel gets it:
//
//   ESP (IP protocol 50)                        -> XSK of ctx->rx_queue_index   (esp_to_xsk)
//   plaintext to an outbound-policy destination -> XSK                          (policy_to_xsk)
//   fragments (IPv4 MF/offset, IPv6 Fragment)   -> kernel                       (fragment_pass)
//   UDP to the NAT-T port (RFC 3948):
//       one 0xFF byte: NAT keepalive            -> XDP_DROP                     (keepalive_drop)
//       first word zero: non-ESP marker, IKE    -> kernel                       (ike_pass)
//       otherwise ESP-in-UDP                    -> XSK                          (esp_in_udp_to_xsk)
//   UDP to 500 (IKE)                            -> kernel                       (ike_pass)
//   anything else                               -> kernel                       (pass_other)
//   truncated or invalid L2/L3/L4 headers       -> kernel                       (malformed_pass)
//
// Order of the checks: unfragmented ESP first (the hot inbound path pays no policy lookup), then
// the policy lookup (so that no plaintext bound for a protected destination, fragment or IKE-like
// UDP included, can leak through the kernel), then fragments, then UDP.
//
// A redirect to a queue with no socket in the XSKMAP falls back to XDP_PASS (and is counted once
// more, in xsk_fallback_pass). The section is "xdp.frags": the program only reads headers from
// the linear part of the frame, so it is correct on multi-buffer frames and may attach to a veth
// or NIC whose MTU exceeds one page (MTU 9000).
//
// The counter indices below are ABI shared with ../counters.rs: change both together.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

enum verdict_counter {
	CNT_ESP_TO_XSK = 0,
	CNT_ESP_IN_UDP_TO_XSK = 1,
	CNT_POLICY_TO_XSK = 2,
	CNT_IKE_PASS = 3,
	CNT_KEEPALIVE_DROP = 4,
	CNT_FRAGMENT_PASS = 5,
	CNT_PASS_OTHER = 6,
	CNT_MALFORMED_PASS = 7,
	CNT_XSK_FALLBACK_PASS = 8,
	CNT_MAX = 9,
};

#define IKE_PORT 500
#define ESP_HDR_LEN 8 /* SPI and sequence number */
#define MAX_VLAN_TAGS 2
#define MAX_IPV6_EXT_HDRS 6
#define IPV4_MF 0x2000
#define IPV4_OFFSET 0x1fff

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

/* The NAT-T port in host byte order. Set by the loader before the program is loaded. */
const volatile __u16 natt_port = 4500;

struct vlan_hdr {
	__be16 tci;
	__be16 encap_proto;
};

/* LPM-trie keys: prefix length in bits, then the address in network byte order. */
struct policy_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct policy_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Queue index -> AF_XDP socket. Size set by the loader. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} xipsec_xsks SEC(".maps");

/* Outbound-policy destination prefixes. The value is reserved (user space writes 1). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_v4_key);
	__type(value, __u32);
} xipsec_pol_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct policy_v6_key);
	__type(value, __u32);
} xipsec_pol_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} xipsec_counts SEC(".maps");

static __always_inline void count(__u32 index)
{
	__u64 *value = bpf_map_lookup_elem(&xipsec_counts, &index);

	if (value)
		*value += 1; /* per-CPU: no atomic needed */
}

static __always_inline int pass(__u32 counter)
{
	count(counter);
	return XDP_PASS;
}

static __always_inline int to_xsk(struct xdp_md *ctx, __u32 counter)
{
	int action;

	count(counter);
	action = bpf_redirect_map(&xipsec_xsks, ctx->rx_queue_index, XDP_PASS);
	if (action != XDP_REDIRECT)
		count(CNT_XSK_FALLBACK_PASS);
	return action;
}

/* UDP after an unfragmented IP header whose destination matched no policy. */
static __always_inline int classify_udp(struct xdp_md *ctx, void *l4, void *data_end)
{
	struct udphdr *udp = l4;
	__u8 *payload;
	__u16 dport, ulen, plen;

	if ((void *)(udp + 1) > data_end)
		return pass(CNT_MALFORMED_PASS);
	dport = bpf_ntohs(udp->dest);

	if (dport == natt_port) {
		/* The UDP length, not the frame length: short frames may carry Ethernet padding. */
		ulen = bpf_ntohs(udp->len);
		if (ulen < sizeof(*udp))
			return pass(CNT_MALFORMED_PASS);
		plen = ulen - sizeof(*udp);
		payload = (__u8 *)(udp + 1);

		if (plen == 1) {
			if ((void *)(payload + 1) > data_end)
				return pass(CNT_MALFORMED_PASS);
			if (payload[0] == 0xff) {
				count(CNT_KEEPALIVE_DROP);
				return XDP_DROP;
			}
			return pass(CNT_MALFORMED_PASS);
		}
		/* Neither a keepalive, a non-ESP marker nor an ESP header fits. */
		if (plen < 4)
			return pass(CNT_MALFORMED_PASS);
		if ((void *)(payload + 4) > data_end)
			return pass(CNT_MALFORMED_PASS);
		if ((payload[0] | payload[1] | payload[2] | payload[3]) == 0)
			return pass(CNT_IKE_PASS);
		if (plen < ESP_HDR_LEN || (void *)(payload + ESP_HDR_LEN) > data_end)
			return pass(CNT_MALFORMED_PASS);
		return to_xsk(ctx, CNT_ESP_IN_UDP_TO_XSK);
	}
	if (dport == IKE_PORT)
		return pass(CNT_IKE_PASS);
	return pass(CNT_PASS_OTHER);
}

static __always_inline int classify_ipv4(struct xdp_md *ctx, void *l3, void *data_end)
{
	struct iphdr *ip = l3;
	struct policy_v4_key key = { .prefixlen = 32 };
	void *l4;
	int fragment;

	if ((void *)(ip + 1) > data_end)
		return pass(CNT_MALFORMED_PASS);
	if (ip->version != 4 || ip->ihl < 5)
		return pass(CNT_MALFORMED_PASS);
	l4 = l3 + ip->ihl * 4;
	if (l4 > data_end)
		return pass(CNT_MALFORMED_PASS);
	fragment = (ip->frag_off & bpf_htons(IPV4_MF | IPV4_OFFSET)) != 0;

	if (ip->protocol == IPPROTO_ESP && !fragment) {
		if (l4 + ESP_HDR_LEN > data_end)
			return pass(CNT_MALFORMED_PASS);
		return to_xsk(ctx, CNT_ESP_TO_XSK);
	}

	__builtin_memcpy(key.addr, &ip->daddr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&xipsec_pol_v4, &key))
		return to_xsk(ctx, CNT_POLICY_TO_XSK);

	if (fragment)
		return pass(CNT_FRAGMENT_PASS);
	if (ip->protocol == IPPROTO_UDP)
		return classify_udp(ctx, l4, data_end);
	return pass(CNT_PASS_OTHER);
}

static __always_inline int classify_ipv6(struct xdp_md *ctx, void *l3, void *data_end)
{
	struct ipv6hdr *ip6 = l3;
	struct policy_v6_key key = { .prefixlen = 128 };
	void *l4;
	__u8 next;
	int fragment = 0;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return pass(CNT_MALFORMED_PASS);
	if (ip6->version != 6)
		return pass(CNT_MALFORMED_PASS);
	next = ip6->nexthdr;
	l4 = ip6 + 1;

	/*
	 * A bounded walk over hop-by-hop, routing and destination options headers; a Fragment
	 * header ends it. A longer chain leaves `next` at an extension header, which is then
	 * neither ESP nor UDP: the frame passes as "other" (after the policy lookup).
	 */
#pragma unroll
	for (i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
		struct ipv6_opt_hdr *ext = l4;

		if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING &&
		    next != IPPROTO_DSTOPTS && next != IPPROTO_FRAGMENT)
			break;
		/* Every extension header is at least 8 bytes long. */
		if (l4 + 8 > data_end)
			return pass(CNT_MALFORMED_PASS);
		if (next == IPPROTO_FRAGMENT) {
			fragment = 1;
			next = ext->nexthdr;
			l4 += 8;
			break;
		}
		next = ext->nexthdr;
		l4 += (ext->hdrlen + 1) * 8;
	}

	if (next == IPPROTO_ESP && !fragment) {
		if (l4 + ESP_HDR_LEN > data_end)
			return pass(CNT_MALFORMED_PASS);
		return to_xsk(ctx, CNT_ESP_TO_XSK);
	}

	__builtin_memcpy(key.addr, &ip6->daddr, sizeof(key.addr));
	if (bpf_map_lookup_elem(&xipsec_pol_v6, &key))
		return to_xsk(ctx, CNT_POLICY_TO_XSK);

	if (fragment)
		return pass(CNT_FRAGMENT_PASS);
	if (next == IPPROTO_UDP)
		return classify_udp(ctx, l4, data_end);
	return pass(CNT_PASS_OTHER);
}

SEC("xdp.frags")
int xipsec_classify(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	void *l3;
	__be16 proto;
	int i;

	if ((void *)(eth + 1) > data_end)
		return pass(CNT_MALFORMED_PASS);
	proto = eth->h_proto;
	l3 = eth + 1;

	/* 802.1Q and 802.1ad (QinQ): skip up to two tags. */
#pragma unroll
	for (i = 0; i < MAX_VLAN_TAGS; i++) {
		struct vlan_hdr *vlan = l3;

		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		if ((void *)(vlan + 1) > data_end)
			return pass(CNT_MALFORMED_PASS);
		proto = vlan->encap_proto;
		l3 = vlan + 1;
	}

	if (proto == bpf_htons(ETH_P_IP))
		return classify_ipv4(ctx, l3, data_end);
	if (proto == bpf_htons(ETH_P_IPV6))
		return classify_ipv6(ctx, l3, data_end);
	return pass(CNT_PASS_OTHER);
}

/*
 * The project's licence. The program calls no GPL-only helper; if one is ever needed, the
 * string must become GPL-compatible ("Dual MIT/GPL") and that is a licensing decision.
 */
char LICENSE[] SEC("license") = "MIT OR Apache-2.0";
