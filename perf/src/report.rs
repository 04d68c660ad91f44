//! What the generator reports: one trial, a search, a whole run (the JSON of `--json`).

use serde::{Deserialize, Serialize};

use crate::latency::LatencySummary;
use crate::mfr::Sample;
use crate::search::{SearchConfig, SearchResult};

/// The result of one trial at one offered rate.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrialReport {
    /// Trial number (as in the stamps).
    pub trial: u16,
    /// Offered rate, packets per second, all TX ports together.
    pub rate_pps: f64,
    /// Length of the send schedule, seconds (shorter than asked when aborted).
    pub duration_s: f64,
    /// Packets the schedule offered (sent or not).
    pub offered: u64,
    /// Packets the TX queues took.
    pub sent: u64,
    /// Packets the TX queues did not take (the device under test did not drain its ring):
    /// counted as lost, like a NIC's missed packets.
    pub tx_refused: u64,
    /// Packets not built for want of mbufs (counted as lost; a generator problem).
    pub alloc_failed: u64,
    /// Test packets of this trial received (duplicates included).
    pub received: u64,
    /// Of which came VXLAN-encapsulated.
    pub received_vxlan: u64,
    /// Offered packets never received: `offered - distinct received`.
    pub lost: u64,
    /// `lost / offered`.
    pub loss_ratio: f64,
    /// Packets that arrived behind a later packet of their flow.
    pub reordered: u64,
    /// Packets received more than once.
    pub duplicated: u64,
    /// Packets too far behind their flow to tell reordered from duplicated.
    pub late: u64,
    /// Test packets of an earlier trial that arrived during this one (ignored).
    pub stale: u64,
    /// Frames that were not test packets (ARP requests excluded).
    pub foreign: u64,
    /// ARP requests answered.
    pub arp_replies: u64,
    /// Test packets received per second of the time the sending took.
    pub rx_pps: f64,
    /// Received test traffic in Gbit/s of Ethernet frames (FCS included, no preamble or gap).
    pub rx_gbps: f64,
    /// Packets per second the TX side actually handed out (offered / time to the last send).
    pub tx_pps_achieved: f64,
    /// Longest time a packet waited past its scheduled send time, nanoseconds.
    pub tx_lag_max_ns: f64,
    /// How late the last packet was sent, nanoseconds.
    pub tx_lag_end_ns: f64,
    /// Time the device's watched threads spent waiting for a CPU during the trial, ns.
    pub device_wait_ns: u64,
    /// Time the generator's thread spent waiting for a CPU during the trial, ns.
    pub generator_wait_ns: u64,
    /// The generator fell behind its schedule for good: the trial says nothing about the device.
    pub generator_limited: bool,
    /// The generator fell so far behind that it stopped the trial early (generator-limited).
    pub aborted: bool,
    /// The generator was held up at some point (lag above the limit), or the watched threads
    /// waited for a CPU longer than the limit: the trial measured the machine's other work as
    /// much as the device. Such trials are repeated.
    pub disturbed: bool,
    /// Latency of every received packet from its scheduled send time.
    pub latency: LatencySummary,
    /// The same after HdrHistogram's closed-loop correction at the offered interval (`None`
    /// when too costly to compute: latencies of seconds).
    pub latency_record_corrected: Option<LatencySummary>,
    /// Distinct test packets received so far, sampled about every second while sending.
    #[serde(default)]
    pub rx_samples: Vec<Sample>,
    /// Packets the TX queues took so far, at the same moments.
    #[serde(default)]
    pub tx_samples: Vec<Sample>,
}

/// One point of the latency ladder: a trial at a fraction of the PDR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LadderPoint {
    /// Fraction of the PDR.
    pub fraction: f64,
    /// The trial.
    pub trial: TrialReport,
}

/// A search and its trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchReport {
    /// How it searched.
    pub config: SearchConfig,
    /// What it found.
    pub result: SearchResult,
    /// Trials repeated because the generator was disturbed.
    pub trials_repeated: usize,
    /// Every trial that counted, in order.
    pub trials: Vec<TrialReport>,
}

/// One port of the generator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortReport {
    /// The EAL vdev argument.
    pub vdev: String,
    /// The DPDK device name.
    pub device: String,
    /// Its MAC.
    pub mac: String,
    /// Whether the generator sends on it.
    pub tx: bool,
}

/// A whole run of the generator (`--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// `dvr-pktgen`.
    pub tool: String,
    /// Crate version.
    pub version: String,
    /// DPDK's version string.
    pub dpdk: String,
    /// TSC frequency, Hz.
    pub tsc_hz: u64,
    /// The command line.
    pub command: Vec<String>,
    /// Frame size (`64`, ..., `imix`).
    pub frame_size: String,
    /// Mean frame size, bytes (FCS included).
    pub frame_bytes_mean: f64,
    /// Number of flows.
    pub flows: usize,
    /// Routes the destinations were picked across.
    pub routes: usize,
    /// The ports.
    pub ports: Vec<PortReport>,
    /// Seconds from start until the first test packet came back.
    pub ready_s: f64,
    /// Fixed-rate trials (`--rate`).
    pub trials: Vec<TrialReport>,
    /// The search (`--search`).
    pub search: Option<SearchReport>,
    /// The latency ladder (`--ladder`).
    pub ladder: Vec<LadderPoint>,
    /// The maximum-forwarding-rate trial (`--mfr`): full rate, per-second samples.
    #[serde(default)]
    pub mfr: Option<TrialReport>,
    /// Mbufs of the generator's pool in use after the measurement, ports still open (the
    /// driver's posted RX buffers in zero-copy mode, otherwise 0).
    pub mbufs_in_use_after: u32,
    /// Mbufs of the generator's pool still in use after the ports were closed (0 in copy
    /// mode unless something leaked; also 0 in `--serve` reports, written before the ports
    /// close).
    pub mbufs_in_use_at_exit: u32,
    /// Most mbufs the driver itself may hold at exit (memif zero-copy; 0 in copy mode): in
    /// use above this is a leak.
    pub mbufs_driver_hold_max: u32,
    /// The run was stopped by a signal.
    pub interrupted: bool,
    /// Why the measurement failed.
    pub error: Option<String>,
}
