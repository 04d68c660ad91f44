//! The packet generator (`dvr-pktgen`) and the benchmark harness of `dvrd` against DPDK's
//! l3fwd and testpmd.
//!
//! - [`frame`]: frame sizes, header templates, the stamp in every payload, the receive parser.
//! - [`routes`]: the benchmark's route sets and the flows across them.
//! - [`seq`]: per-flow sequence tracking (loss, reordering, duplicates) in bounded memory.
//! - [`latency`]: per-packet latency in an HDR histogram.
//! - [`search`]: the NDR/PDR binary search.
//! - [`mfr`]: the maximum forwarding rate of a trial from per-second samples.
//! - [`sched`]: time the measured threads waited for a CPU (disturbed trials).
//! - [`gen`]: the DPDK generator loop.
//! - [`report`]: what the generator writes as JSON.
//! - [`icount`]: instructions per packet of the forwarding engine (callgrind).
//! - [`bench`]: the harness against l3fwd and testpmd.
#![forbid(unsafe_code)]

pub mod bench;
pub mod fleet_bench;
pub mod frame;
pub mod gen;
pub mod icount;
pub mod latency;
pub mod mfr;
pub mod report;
pub mod routes;
pub mod sched;
pub mod search;
pub mod seq;
