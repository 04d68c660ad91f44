//! End-to-end test harness: the real `dvrd` binary in network namespaces, driven with real
//! tools (ping, arping, tcpdump) and raw frames.
//!
//! Every test starts with `let s = scope!();`. The [`Scope`] names everything the test creates
//! after a short prefix derived from the test's path (Linux interface names have at most 15
//! characters), removes the leftovers of an earlier crashed run of the same test, keeps the
//! logs of every process under `target/tmp/e2e/<test file>/<test>/`, and prints them when the
//! test fails. Every resource is a guard whose `Drop` removes it, panicking test or not:
//! [`Netns`], [`Link`], [`Bridge`], [`Process`], [`Capture`], [`Dvrd`]; a final sweep by prefix
//! runs when the last guard of the scope is gone.
//!
//! Topology: an [`Instance`] is a namespace with one veth end inside (the instance's IP, MAC
//! and default route) and the other end in the root namespace, where `dvrd` attaches to it
//! with `net_af_packet`. A [`Fabric`] is a Linux bridge in its own namespace, with one veth per
//! host (the host's fabric port) or per kernel node (a SNAT node with a Linux vxlan device).
//! [`DvrdConfig`] describes a host's configuration in Rust and writes the TOML file.
//!
//! Each test file uses a part of this module; `dead_code` and `unused_imports` are allowed for
//! the rest.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod cmd;
pub mod config;
pub mod dvr;
pub mod dvrd;
pub mod frames;
pub mod net;
pub mod pcap;
pub mod process;
pub mod test_scope;
pub mod tools;
pub mod topo;

pub use self::cmd::{require_environment, run, run_ok, CmdOutput};
pub use self::config::{
    DvrdConfig, HostCfg, InstancePortCfg, InterfaceCfg, NetworkCfg, PeerCfg, PortCfg, RouteCfg,
    RouterCfg,
};
pub use self::dvrd::{Dvrd, DvrdExit, DvrdRun, Summary};
pub use self::frames::Mac;
pub use self::net::{Bridge, Link, Netns};
pub use self::pcap::PcapRecord;
pub use self::process::Process;
pub use self::test_scope::Scope;
pub use self::tools::{arping, inject_frames, ping, ArpingResult, Capture, PingOpts, PingResult};
pub use self::topo::{Fabric, FabricPort, Instance, InstanceSpec};

/// Creates the [`Scope`] of the calling test, named after the test function's path
/// (`e2e_datapath::routed_ping_between_local_instances`).
macro_rules! scope {
    () => {{
        fn here() {}
        fn name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        let name = name_of(here);
        $crate::support::Scope::new(name.strip_suffix("::here").unwrap_or(name))
    }};
}
pub(crate) use scope;
