//! Why a worker could not start, or how it ended badly.

use std::time::Duration;

use router_core::ids::PortId;
use router_core::qsbr::QsbrError;

/// Errors of [`WorkerConfig::validate`](crate::WorkerConfig::validate), [`spawn`](crate::spawn)
/// and [`WorkerHandle::join`](crate::WorkerHandle::join).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The burst size is not one of [`BURST_SIZES`](crate::BURST_SIZES).
    #[error("burst size {burst_size} is not one of {:?}", crate::BURST_SIZES)]
    BurstSize { burst_size: usize },
    /// The TSC frequency is zero.
    #[error("TSC frequency must be above 0 Hz")]
    TscHz,
    /// The adaptive idle sleeps are zero or in the wrong order.
    #[error("adaptive idle: sleep_min {sleep_min:?} must be above 0 and at most sleep_max {sleep_max:?}")]
    IdleSleep {
        sleep_min: Duration,
        sleep_max: Duration,
    },
    /// The core to pin to is not one this process may run on.
    #[error(
        "core {core} does not exist or is not allowed for this process (allowed: {available:?})"
    )]
    NoSuchCore { core: usize, available: Vec<usize> },
    /// Pinning the thread failed.
    #[error("could not pin worker thread to core {core}")]
    Pin { core: usize },
    /// The worker was given no RX queue.
    #[error("worker {index} has no RX queue")]
    NoRxQueue { index: usize },
    /// A port id beyond the per-port tables.
    #[error("port {port} is beyond the {max_ports} ports a worker can serve")]
    PortOutOfRange { port: PortId, max_ports: usize },
    /// Two TX queues of the same port.
    #[error("two TX queues for port {port}: a worker sends on one queue per port")]
    DuplicateTxPort { port: PortId },
    /// `rte_thread_register` failed (no lcore id left, or EAL not running).
    #[error("worker thread could not register with EAL: {0}")]
    Register(#[source] dpdk_bindings::Error),
    /// No QSBR reader slot was free.
    #[error("worker could not register as a QSBR reader: {0}")]
    Qsbr(#[source] QsbrError),
    /// The operating system refused to start the thread.
    #[error("could not start the worker thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The worker thread panicked.
    #[error("worker {index} panicked: {message}")]
    Panicked { index: usize, message: String },
}
