//! Packets the engine hands to the control thread, on a bounded channel.

use std::sync::Arc;

use crossbeam::channel::{bounded, Receiver, Sender};
use crossbeam::queue::ArrayQueue;
use dpdk_bindings::Mbuf;
use router_core::ids::PortId;
use router_core::reason::PuntReason;

/// Packets the punt channel holds. Workers never wait for the control thread: a packet that
/// finds the channel full is dropped and counted (`punt_queue_full`). 1024 absorbs a burst from
/// every worker while the control thread answers ARP.
pub const PUNT_CHANNEL_CAPACITY: usize = 1024;

/// A packet for the control thread. Dropping it frees the mbuf.
#[derive(Debug)]
pub struct Punted {
    /// The frame, as the engine left it (its window written back).
    pub mbuf: Mbuf,
    /// The DPDK port it was received on.
    pub port: PortId,
    /// Why the engine punted it.
    pub reason: PuntReason,
    /// The TSC just before the RX burst that received it.
    pub rx_tsc: u64,
}

/// Packets the control thread asks a worker to send, so that it needs no TX queue of its own
/// (virtual devices often have a single one). The worker drains the queue once per poll loop
/// into its TX buffers. A full queue refuses the packet; the control thread counts it.
pub const INJECT_QUEUE_CAPACITY: usize = 1024;

/// A packet the control thread sends through a worker.
#[derive(Debug)]
pub struct Injected {
    pub mbuf: Mbuf,
    /// The DPDK port to send it on.
    pub port: PortId,
}

/// The control thread's queue into a worker's TX path.
pub type InjectQueue = ArrayQueue<Injected>;

/// An inject queue, [`INJECT_QUEUE_CAPACITY`] packets deep.
pub fn inject_queue() -> Arc<InjectQueue> {
    Arc::new(ArrayQueue::new(INJECT_QUEUE_CAPACITY))
}

/// The workers' side of the punt channel (one clone per worker).
pub type PuntSender = Sender<Punted>;
/// The control thread's side of the punt channel.
pub type PuntReceiver = Receiver<Punted>;

/// The punt channel, [`PUNT_CHANNEL_CAPACITY`] packets deep.
pub fn punt_channel() -> (PuntSender, PuntReceiver) {
    punt_channel_with_capacity(PUNT_CHANNEL_CAPACITY)
}

/// A punt channel `capacity` packets deep (at least 1).
pub fn punt_channel_with_capacity(capacity: usize) -> (PuntSender, PuntReceiver) {
    bounded(capacity.max(1))
}
