/*
 * The DPDK headers the bindings are generated from. bindgen reads this file;
 * the C wrappers it generates for DPDK's static inline functions include it,
 * so it must stay self-contained (the build passes the full
 * `pkg-config --cflags libdpdk`, which already force-includes rte_config.h).
 */
#ifndef DVRB_WRAPPER_H
#define DVRB_WRAPPER_H

#include <rte_config.h>
#include <rte_version.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ether.h>
#include <rte_ethdev.h>
#include <rte_lpm.h>
#include <rte_fib.h>
#include <rte_telemetry.h>
#include <rte_pdump.h>

#include "shim.h"

#endif /* DVRB_WRAPPER_H */
