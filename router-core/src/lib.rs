//! The forwarding engine of the distributed virtual router.
//!
//! Pure Rust: no DPDK, no `unsafe`, no clock (time is always an argument), no I/O. Workers hand
//! it bursts of packets as mutable byte buffers and get one [`engine::Verdict`] per packet back.
//! See `ARCHITECTURE.md` at the repository root for the contracts with the other crates.
#![forbid(unsafe_code)]

pub mod ids;

pub mod reason;

pub mod wire;

pub mod qsbr;

pub mod lpm;

pub mod table;

pub mod dataplane;

pub mod icmp_limit;

pub mod engine;

pub mod model;

pub mod control;
pub mod stats;

#[doc(hidden)]
pub mod testing;
