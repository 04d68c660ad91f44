//! End-to-end test harness: the real `dvrd` binary in network namespaces, driven with real
//! tools (ping, arping, tcpdump) and raw frames. The end-to-end tests of the root package
//! (`tests/e2e_*.rs`) use it as a dev-dependency, and the demo (`dvr-demo`, this crate's
//! binary) is built on it; nothing shipped depends on it.
//!
//! Every test starts with `let s = scope!();`. The [`Scope`] names everything the test creates
//! after a short prefix derived from the test's path (Linux interface names have at most 15
//! characters), removes the leftovers of an earlier crashed run of the same test, keeps the
//! logs of every process under `target/tmp/e2e/<test file>/<test>/`, and prints them when the
//! test fails. Every resource is a guard whose `Drop` removes it, panicking test or not:
//! [`Netns`], [`Link`], [`Bridge`], [`Process`], [`Capture`], [`Dvrd`]; a final sweep by prefix
//! runs when the last guard of the scope is gone.
//!
//! The macro also records where Cargo put the binaries under test and the test's scratch
//! folder ([`BuildPaths`]): Cargo tells only the test crate, at its compile time, so the
//! macro reads them where it is expanded. Outside `cargo test` (the demo) the binaries are
//! found next to the running executable and the logs go under the system's temporary folder.
//!
//! Topology: an [`Instance`] is a namespace with one veth end inside (the instance's IP, MAC
//! and default route) and the other end in the root namespace, where `dvrd` attaches to it
//! with `net_af_packet`. A [`Fabric`] is a Linux bridge in its own namespace, with one veth per
//! host (the host's fabric port) or per kernel node (a SNAT node with a Linux vxlan device).
//! [`DvrdConfig`] describes a host's configuration in Rust and writes the TOML file; [`dvr`]
//! is the three-host cloud of the DVR tests and the demo. [`checks`] holds the assertions the
//! test files share (echoes in captures, routed packets). [`Etcd`] is a real single-member
//! etcd; [`fleet`] is the three-host cloud again, each dvrd holding only its local settings
//! and reading everything else from that etcd. [`container`] builds what is shipped, the Debian
//! package and the container image that installs it, and runs dvrd in a container.
//! [`dashboard`] checks the Grafana dashboard's queries against an exposition of `/metrics`.

pub mod checks;
pub mod cmd;
pub mod config;
pub mod container;
pub mod dashboard;
pub mod dvr;
pub mod dvrctl;
pub mod dvrd;
pub mod etcd;
pub mod external;
pub mod fleet;
pub mod flows;
pub mod frames;
pub mod net;
pub mod one_host;
pub mod pcap;
pub mod process;
pub mod test_scope;
pub mod tools;
pub mod topo;

pub use self::cmd::{require_environment, run, run_ok, CmdOutput};
pub use self::config::{
    DvrdConfig, ExternalCfg, FleetCfg, FloatingIpCfg, HostCfg, InstancePortCfg, InterfaceCfg,
    NetworkCfg, PeerCfg, PortCfg, RouteCfg, RouterCfg,
};
pub use self::dvrctl::Dvrctl;
pub use self::dvrd::{Dvrd, DvrdExit, DvrdRun, Summary};
pub use self::etcd::{Etcd, TxnOp};
pub use self::frames::Mac;
pub use self::net::{Bridge, Link, Netns};
pub use self::pcap::PcapRecord;
pub use self::process::Process;
pub use self::test_scope::{BuildPaths, Scope};
pub use self::tools::{arping, inject_frames, ping, ArpingResult, Capture, PingOpts, PingResult};
pub use self::topo::{Fabric, FabricPort, Instance, InstanceSpec};

/// The [`BuildPaths`] Cargo gave the crate that expands this macro: the test's scratch folder
/// and the binaries of the package under test (each `None` outside an integration test).
#[macro_export]
macro_rules! build_paths {
    () => {
        $crate::BuildPaths {
            tmp_dir: option_env!("CARGO_TARGET_TMPDIR"),
            dvrd: option_env!("CARGO_BIN_EXE_dvrd"),
            dvrctl: option_env!("CARGO_BIN_EXE_dvrctl"),
        }
    };
}

/// Creates the [`Scope`] of the calling test, named after the test function's path
/// (`e2e_datapath::routed_ping_between_local_instances`).
#[macro_export]
macro_rules! scope {
    () => {{
        fn here() {}
        fn name_of<T>(_: T) -> &'static str {
            std::any::type_name::<T>()
        }
        let name = name_of(here);
        $crate::Scope::new(
            name.strip_suffix("::here").unwrap_or(name),
            $crate::build_paths!(),
        )
    }};
}
