/*
 * Thread-local accessors and compile-time checks that the constants the Rust
 * side writes out by hand (DPDK defines them with function-like macros that
 * bindgen cannot evaluate) match the headers.
 */
#include "wrapper.h"

int dvrb_errno(void)
{
	return rte_errno;
}

void dvrb_set_errno(int value)
{
	rte_errno = value;
}

_Static_assert(RTE_ETH_RX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "rx ipv4 cksum bit");
_Static_assert(RTE_ETH_RX_OFFLOAD_UDP_CKSUM == (1ULL << 2), "rx udp cksum bit");
_Static_assert(RTE_ETH_RX_OFFLOAD_TCP_CKSUM == (1ULL << 3), "rx tcp cksum bit");
_Static_assert(RTE_ETH_RX_OFFLOAD_RSS_HASH == (1ULL << 19), "rx rss hash bit");
_Static_assert(RTE_ETH_TX_OFFLOAD_IPV4_CKSUM == (1ULL << 1), "tx ipv4 cksum bit");
_Static_assert(RTE_ETH_TX_OFFLOAD_UDP_CKSUM == (1ULL << 2), "tx udp cksum bit");
_Static_assert(RTE_ETH_TX_OFFLOAD_TCP_CKSUM == (1ULL << 3), "tx tcp cksum bit");
_Static_assert(RTE_ETH_TX_OFFLOAD_MULTI_SEGS == (1ULL << 15), "tx multi segs bit");
_Static_assert(RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE == (1ULL << 16), "tx fast free bit");
_Static_assert((RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP) == 0x3afbcULL,
	       "rss ip/udp/tcp hash functions");
_Static_assert(RTE_MBUF_F_EXTERNAL == (1ULL << 61), "external buffer flag");
_Static_assert(RTE_MBUF_F_INDIRECT == (1ULL << 62), "indirect mbuf flag");
_Static_assert(RTE_MBUF_PORT_INVALID == UINT16_MAX, "invalid port marker");
