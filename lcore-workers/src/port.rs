//! The one place where a DPDK port id becomes a router port id.
//!
//! The daemon numbers the router's ports as DPDK numbers its ports, so the two ids are equal
//! (see `router_core::ids::PortId`); they stay two types because router-core, pure Rust, does
//! not depend on the DPDK bindings. The workers index their TX queues by router port, and each
//! queue already knows its DPDK port, so no conversion the other way is needed.

use dpdk_bindings::PortId as DpdkPortId;
use router_core::ids::PortId;

/// The router port of DPDK port `port`.
#[inline]
pub fn router_port(port: DpdkPortId) -> PortId {
    PortId::new(port.0)
}
