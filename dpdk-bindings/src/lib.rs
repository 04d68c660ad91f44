//! Bindings to the system DPDK 22.11 and a small safe layer over them.
//!
//! [`sys`] is the bindgen output (generated at build time from `csrc/wrapper.h`, with C
//! wrappers for DPDK's static inline functions). Above it, one small type per DPDK object, with
//! ownership in the type:
//!
//! - [`Eal`]: process-wide initialisation (once per process) and cleanup; [`tsc`],
//!   [`lcore_id`], [`thread_register`] for threads that EAL did not launch.
//! - [`Mempool`]: a pool of packet buffers; [`Mbuf`]: one owned packet buffer (dropping frees
//!   it); [`MbufBurst`]: up to [`BURST_SIZE`] of them, what RX and TX move.
//! - [`Port`]: an Ethernet device; [`RxQueue`], [`TxQueue`]: its queues, one per thread.
//! - [`RteLpm`], [`RteFib`]: DPDK's LPM tables, as benchmark references.
//! - [`advise_hugepages`]: transparent huge pages for large tables outside DPDK.
//! - [`telemetry`]: commands this process answers on DPDK's telemetry socket, as Rust
//!   closures behind one C callback; [`Pdump`]: the capture server `dpdk-dumpcap` talks to.
//!
//! Errors cross the boundary once, as [`Error`] (operation, errno, `rte_strerror` text).
//!
//! # Lifetimes and drop order
//!
//! `rte_eal_cleanup` unmaps all DPDK memory. Every mempool, port (queues included) and LPM
//! table registers itself while alive, and [`Eal::cleanup`] refuses while any is registered.
//! Tear down in this order: stop the workers (dropping their queues and bursts), drop or close
//! the ports (a port keeps the pool its RX queues use), drop mbufs and pools (a pool with mbufs
//! still out is leaked, never freed), drop LPM tables, then call [`Eal::cleanup`].
//!
//! # Threads
//!
//! [`Mempool`], [`RteLpm`] and [`RteFib`] are `Send + Sync` (clone a pool handle per thread).
//! [`Mbuf`], [`MbufBurst`], [`RxQueue`] and [`TxQueue`] are `Send`: each lives on one thread at
//! a time. A queue is not `Clone`, so no two threads poll one queue:
//!
//! ```compile_fail
//! fn cloned<T: Clone>() {}
//! cloned::<dpdk_bindings::RxQueue>();
//! ```
//!
//! [`Port`] is `Send` but not `Sync`: DPDK's control functions are not thread-safe.
//!
//! ```compile_fail
//! fn shared<T: Sync>() {}
//! shared::<dpdk_bindings::Port>();
//! ```
//!
//! Threads that EAL did not launch call [`thread_register`] so that the per-lcore mempool
//! caches serve them. This crate installs no signal handlers.

pub mod sys;

mod burst;
mod eal;
mod error;
mod hugepage;
mod lpm;
mod mbuf;
mod mempool;
mod pdump;
mod port;
pub mod telemetry;

pub use burst::{Drain, MbufBurst, BURST_SIZE};
pub use eal::{lcore_id, thread_register, thread_unregister, tsc, Eal};
pub use error::{Error, Result};
pub use hugepage::advise_hugepages;
pub use lpm::{RteFib, RteLpm, LPM_MISS, RTE_FIB_MAX_NEXT_HOP, RTE_LPM_MAX_NEXT_HOP};
pub use mbuf::{Mbuf, PacketWindow};
pub use mempool::{Mempool, DEFAULT_DATA_ROOM, HEADROOM};
pub use pdump::Pdump;
pub use port::{
    offload, Link, Port, PortConfig, PortId, PortInfo, PortStats, Queue, Rx, RxQueue, Tx, TxQueue,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}

    #[test]
    fn thread_traits() {
        send_sync::<Mempool>();
        send_sync::<RteLpm>();
        send_sync::<RteFib>();
        send_sync::<Eal>();
        send_sync::<Error>();
        send::<Mbuf>();
        send::<MbufBurst>();
        send::<RxQueue>();
        send::<TxQueue>();
        send::<Port>();
        send_sync::<Pdump>();
    }
}
