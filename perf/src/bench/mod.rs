//! The benchmark harness: `dvrd` against DPDK's l3fwd and testpmd, two generators, one run.
//!
//! - [`topo`]: addresses, sockets, dvrd's configuration.
//! - [`proc`]: child processes (own session, raised priority, SIGSTOP/SIGCONT).
//! - [`dut`]: how each device under test is started and what it reports.
//! - [`plan`]: the quick, full and smoke runs.
//! - [`run`]: the interleaved rounds.
//! - [`tgen`]: DPDK's testpmd (flowgen) as the outside generator.
//! - [`results`]: the results file and the medians and ratios over the rounds.
//! - [`machine`]: machine and build facts.
//! - [`icount`]: instructions per packet under callgrind (`dvr-bench icount`).
//! - [`render`], [`plot`]: markdown tables and PNG plots.
pub mod dut;
pub mod icount;
pub mod machine;
pub mod plan;
pub mod plot;
pub mod proc;
pub mod render;
pub mod results;
pub mod run;
pub mod tgen;
pub mod topo;
