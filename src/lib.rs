//! The appliance: the `dvrd` daemon (configuration, DPDK setup, control thread) and what
//! `dvrctl` shares with it.
#![forbid(unsafe_code)]

pub mod api;
pub mod config;
pub mod daemon;
pub mod logging;
pub mod metrics;
pub mod stats;
