//! What one worker is given: its queues, its core, its burst size and how it idles.

use std::sync::Arc;
use std::time::Duration;

use crate::port::router_port;
use dpdk_bindings::{RxQueue, TxQueue, BURST_SIZE};
use router_core::dataplane::MAX_PORTS;
use router_core::engine::MAX_BURST;
use router_core::ids::PortId;

use crate::error::WorkerError;

/// Burst sizes a worker accepts: powers of two up to [`MAX_BURST`]. The RX burst array is a
/// const generic (no allocation, no bounds checks), and the bindings receive up to the array's
/// capacity, so each accepted size is one compiled copy of the poll loop.
pub const BURST_SIZES: [usize; 7] = [1, 2, 4, 8, 16, 32, 64];

const _: () = assert!(BURST_SIZES[BURST_SIZES.len() - 1] == MAX_BURST);
const _: () = assert!(BURST_SIZE <= MAX_BURST && BURST_SIZE.is_power_of_two());

/// Default number of consecutive empty poll loops before an adaptive worker first sleeps. At
/// roughly 50 to 200 ns per empty loop this is 25 to 100 µs of spinning: short pauses between
/// bursts never cost a sleep.
pub const IDLE_EMPTY_LOOPS_DEFAULT: u32 = 512;
/// Default first sleep of an adaptive worker. Linux adds its timer slack (50 µs by default) to
/// every sleep, so shorter values gain little.
pub const IDLE_SLEEP_MIN_DEFAULT: Duration = Duration::from_micros(20);
/// Default longest sleep of an adaptive worker: the worst added latency for the first packet
/// after an idle period.
pub const IDLE_SLEEP_MAX_DEFAULT: Duration = Duration::from_millis(1);

/// How a worker behaves when its RX queues are empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleMode {
    /// Spin on the RX queues without pause: lowest latency, one core at 100% whatever the
    /// load. For dedicated, isolated cores.
    Poll,
    /// Spin while traffic flows, sleep with exponential back-off when it stops (see
    /// [`AdaptiveIdle`]). Lets several router processes share a small machine.
    Adaptive(AdaptiveIdle),
}

impl IdleMode {
    /// Adaptive back-off with the default parameters.
    pub const fn adaptive() -> IdleMode {
        IdleMode::Adaptive(AdaptiveIdle::DEFAULT)
    }
}

impl Default for IdleMode {
    /// [`IdleMode::adaptive`]: a spinning worker on a shared machine starves everything else.
    fn default() -> Self {
        IdleMode::adaptive()
    }
}

/// Parameters of [`IdleMode::Adaptive`].
///
/// A poll loop in which every RX queue of the worker was empty is an *empty loop*. After
/// `empty_loops` consecutive empty loops the worker sleeps `sleep_min`; each further empty loop
/// sleeps twice as long as the previous one, up to `sleep_max`. The first loop that receives a
/// packet resets both the count and the sleep length, so the worker is back to full-speed
/// polling at once. While it sleeps the worker is offline for QSBR, so it never delays the
/// reclamation of table memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveIdle {
    /// Consecutive empty loops before the first sleep.
    pub empty_loops: u32,
    /// The first sleep.
    pub sleep_min: Duration,
    /// The longest sleep: also the worst added latency for the first packet after an idle
    /// period, and how long the worker may take to notice the stop flag.
    pub sleep_max: Duration,
}

impl AdaptiveIdle {
    /// [`IDLE_EMPTY_LOOPS_DEFAULT`], [`IDLE_SLEEP_MIN_DEFAULT`], [`IDLE_SLEEP_MAX_DEFAULT`].
    pub const DEFAULT: AdaptiveIdle = AdaptiveIdle {
        empty_loops: IDLE_EMPTY_LOOPS_DEFAULT,
        sleep_min: IDLE_SLEEP_MIN_DEFAULT,
        sleep_max: IDLE_SLEEP_MAX_DEFAULT,
    };
}

impl Default for AdaptiveIdle {
    fn default() -> Self {
        AdaptiveIdle::DEFAULT
    }
}

/// Everything one worker owns. Build it with [`WorkerConfig::new`] and set the fields.
#[derive(Debug)]
pub struct WorkerConfig {
    /// The worker's index (0-based). Names the thread `dvr-worker-N`; by the daemon's
    /// convention it is also the index of the worker's TX queue on every port.
    pub index: usize,
    /// The core to pin the thread to (`core_affinity` id); `None`: not pinned.
    pub core: Option<usize>,
    /// The RX queues the worker polls, in order, possibly of several ports. At least one.
    pub rx_queues: Vec<RxQueue>,
    /// One TX queue per egress port, in any order: the worker indexes them by their port id. A
    /// frame the engine forwards to a port without one here is dropped and counted.
    pub tx_queues: Vec<TxQueue>,
    /// Packets the control thread sends through this worker (see [`crate::InjectQueue`]).
    pub inject: Option<Arc<crate::InjectQueue>>,
    /// Packets per RX burst and per TX flush: one of [`BURST_SIZES`]. Default [`BURST_SIZE`].
    pub burst_size: usize,
    /// What to do when the RX queues are empty.
    pub idle: IdleMode,
    /// TSC ticks per second (`Eal::tsc_hz`): converts cycles to the engine's nanoseconds and
    /// sets the histogram publication period.
    pub tsc_hz: u64,
    /// The packet trace switch (see [`crate::TraceTap`]); `None`: the worker never traces.
    pub trace: Option<Arc<crate::TraceTap>>,
    /// Register the thread with EAL (the default), so that the per-lcore mempool caches serve
    /// it. DPDK turns its multi-process channel off for good once a thread registers, so a
    /// process whose ports secondary processes (`dpdk-dumpcap`) must reach runs its workers
    /// unregistered, and every mbuf they allocate or free goes to the pool's ring.
    pub register_with_eal: bool,
}

impl WorkerConfig {
    /// A worker with no queues, not pinned, [`BURST_SIZE`] packets per burst and the default
    /// [`IdleMode`].
    pub fn new(index: usize, tsc_hz: u64) -> WorkerConfig {
        WorkerConfig {
            index,
            core: None,
            rx_queues: Vec::new(),
            tx_queues: Vec::new(),
            inject: None,
            burst_size: BURST_SIZE,
            idle: IdleMode::default(),
            tsc_hz,
            trace: None,
            register_with_eal: true,
        }
    }

    /// Checks the configuration: burst size, TSC frequency, idle parameters, that the core
    /// exists, that there is an RX queue, that every port id fits the per-port tables and that
    /// no port has two TX queues. [`spawn`](crate::spawn) runs the same checks.
    pub fn validate(&self) -> Result<(), WorkerError> {
        if !BURST_SIZES.contains(&self.burst_size) {
            return Err(WorkerError::BurstSize {
                burst_size: self.burst_size,
            });
        }
        if self.tsc_hz == 0 {
            return Err(WorkerError::TscHz);
        }
        if let IdleMode::Adaptive(idle) = self.idle {
            if idle.sleep_min.is_zero() || idle.sleep_min > idle.sleep_max {
                return Err(WorkerError::IdleSleep {
                    sleep_min: idle.sleep_min,
                    sleep_max: idle.sleep_max,
                });
            }
        }
        if let Some(core) = self.core {
            check_core(core)?;
        }
        if self.rx_queues.is_empty() {
            return Err(WorkerError::NoRxQueue { index: self.index });
        }
        for rx in &self.rx_queues {
            check_port(router_port(rx.port()))?;
        }
        let mut seen = [false; MAX_PORTS];
        for tx in &self.tx_queues {
            let port = router_port(tx.port());
            check_port(port)?;
            let slot = &mut seen[usize::from(port)];
            if *slot {
                return Err(WorkerError::DuplicateTxPort { port });
            }
            *slot = true;
        }
        Ok(())
    }
}

/// A port id must index the per-port tables ([`MAX_PORTS`] entries).
fn check_port(port: PortId) -> Result<(), WorkerError> {
    if usize::from(port) >= MAX_PORTS {
        return Err(WorkerError::PortOutOfRange {
            port,
            max_ports: MAX_PORTS,
        });
    }
    Ok(())
}

/// The core must exist and be online. Not the calling thread's affinity: after EAL init the
/// main thread is pinned to the main lcore's core, and a worker may be pinned elsewhere.
fn check_core(core: usize) -> Result<(), WorkerError> {
    let available = online_cores();
    if available.contains(&core) {
        Ok(())
    } else {
        Err(WorkerError::NoSuchCore { core, available })
    }
}

/// The online CPUs (`/sys/devices/system/cpu/online`), or where that cannot be read, the
/// CPUs the calling thread may run on.
fn online_cores() -> Vec<usize> {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|list| parse_cpu_list(list.trim()))
        .unwrap_or_else(|| {
            core_affinity::get_core_ids()
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.id)
                .collect()
        })
}

/// Parses a kernel CPU list such as `0-3,6,8-9`.
fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cores = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                let (first, last) = (first.parse::<usize>().ok()?, last.parse::<usize>().ok()?);
                if first > last {
                    return None;
                }
                cores.extend(first..=last);
            }
            None => cores.push(part.parse().ok()?),
        }
    }
    Some(cores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(vec![0, 1, 2, 3, 6, 8, 9]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
        assert!(online_cores().contains(&0));
    }

    #[test]
    fn validation_without_queues() {
        let hz = 2_000_000_000;
        let config = WorkerConfig::new(7, hz);
        assert_eq!(config.burst_size, BURST_SIZE);
        assert_eq!(config.idle, IdleMode::Adaptive(AdaptiveIdle::DEFAULT));
        assert!(matches!(
            config.validate(),
            Err(WorkerError::NoRxQueue { index: 7 })
        ));

        for burst_size in [0, 3, 48, 65, 128] {
            let config = WorkerConfig {
                burst_size,
                ..WorkerConfig::new(0, hz)
            };
            let err = config.validate().unwrap_err();
            assert!(matches!(err, WorkerError::BurstSize { .. }), "{err}");
        }
        for burst_size in BURST_SIZES {
            let config = WorkerConfig {
                burst_size,
                ..WorkerConfig::new(0, hz)
            };
            assert!(matches!(
                config.validate(),
                Err(WorkerError::NoRxQueue { .. })
            ));
        }

        let err = WorkerConfig::new(0, 0).validate().unwrap_err();
        assert!(matches!(err, WorkerError::TscHz));

        let err = WorkerConfig {
            core: Some(100_000),
            ..WorkerConfig::new(0, hz)
        }
        .validate()
        .unwrap_err();
        assert!(matches!(err, WorkerError::NoSuchCore { core: 100_000, .. }));
        assert!(
            err.to_string().contains("core 100000 does not exist"),
            "{err}"
        );

        for (sleep_min, sleep_max) in [
            (Duration::ZERO, Duration::from_millis(1)),
            (Duration::from_millis(2), Duration::from_millis(1)),
        ] {
            let config = WorkerConfig {
                idle: IdleMode::Adaptive(AdaptiveIdle {
                    sleep_min,
                    sleep_max,
                    ..AdaptiveIdle::DEFAULT
                }),
                ..WorkerConfig::new(0, hz)
            };
            assert!(matches!(
                config.validate(),
                Err(WorkerError::IdleSleep { .. })
            ));
        }
        let poll = WorkerConfig {
            idle: IdleMode::Poll,
            core: Some(0),
            ..WorkerConfig::new(0, hz)
        };
        assert!(matches!(
            poll.validate(),
            Err(WorkerError::NoRxQueue { .. })
        ));
    }
}
