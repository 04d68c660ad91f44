//! The benchmark topology: addresses, MACs, sockets, and the configuration files of the
//! devices under test (dvrd's TOML, l3fwd's rule files).
//!
//! ```text
//!   generator port 0 (memif client) --> DUT port "in"  (memif server)  network BLUE 10.0.1.0/24
//!   generator port 1 (memif client) <-- DUT port "out" (memif server)  network RED  10.0.2.0/24
//! ```
//!
//! The generator sends from 10.0.1.5 (an instance on BLUE) to destinations across the route
//! set, addressed to BLUE's gateway MAC. Every route points at 10.0.2.2, an instance port on
//! RED whose MAC is the generator's port 1. On the DVR remote path, RED has no port on this
//! host: 10.0.2.2 lives on a peer host, the DUT's second port is the fabric, and every routed
//! packet leaves VXLAN-encapsulated toward the peer's VTEP (which the generator answers ARP
//! for). On the floating-IP path the sender has the floating IP [`FIP`], the router has no
//! route for the destinations (the outside), and the DUT's second port is the external port:
//! every packet is SNATed and leaves toward the external gateway (the generator's port 1,
//! resolved by ARP).

use std::fmt::Write as _;

use router_core::lpm::Prefix;

/// The generator's sending port (port 0).
pub const GEN_TX_MAC: &str = "02:00:00:00:0b:01";
/// The generator's receiving port (port 1).
pub const GEN_RX_MAC: &str = "02:00:00:00:0b:02";
/// BLUE's gateway MAC: the destination of every test frame.
pub const GW_BLUE_MAC: &str = "fa:16:3e:00:01:01";
/// RED's gateway MAC.
pub const GW_RED_MAC: &str = "fa:16:3e:00:02:01";
/// The source instance (the generator's port 0).
pub const SRC_IP: &str = "10.0.1.5";
/// The next hop of every route (the generator's port 1, or an instance on the peer host).
pub const NEXT_HOP_IP: &str = "10.0.2.2";
/// The next hop's MAC on the remote path (on the peer host: no port of the generator).
pub const REMOTE_NEXT_HOP_MAC: &str = "fa:16:3e:bb:02:02";
/// This host's DVR MAC and VTEP.
pub const DVR_MAC: &str = "fa:16:3f:00:00:0a";
/// This host's VTEP.
pub const VTEP: &str = "192.0.2.10";
/// The peer's DVR MAC.
pub const PEER_DVR_MAC: &str = "fa:16:3f:00:00:0b";
/// The peer's VTEP.
pub const PEER_VTEP: &str = "192.0.2.20";
/// MTU of the fabric port: room for a 1500-byte inner packet plus 50 bytes of VXLAN.
pub const FABRIC_MTU: u16 = 1600;
/// The sender's floating IP on the floating-IP path.
pub const FIP: &str = "203.0.113.10";
/// Folder of the memif sockets.
pub const SOCKET_DIR: &str = "/run/dvr-bench";

/// The memif socket of port `port` (0 or 1) of the device `dut`.
pub fn socket(dut: &str, port: usize) -> String {
    format!("{SOCKET_DIR}/{dut}-{port}.sock")
}

/// The server vdev of port `port` of the device `dut`.
pub fn server_vdev(dut: &str, port: usize) -> String {
    format!(
        "net_memif{port},role=server,socket={},id=0",
        socket(dut, port)
    )
}

/// The generator's client vdev for port `port` of the device `dut`; `zero_copy` (needs
/// hugepages) spares the generator one copy per packet each way, which about doubles the
/// rate it can offer over memif. The device's side (server) copies either way.
pub fn client_vdev(dut: &str, port: usize, zero_copy: bool) -> String {
    let mac = if port == 0 { GEN_TX_MAC } else { GEN_RX_MAC };
    format!(
        "net_memif{port},role=client,socket={},id=0,mac={mac}{}",
        socket(dut, port),
        if zero_copy { ",zero-copy=yes" } else { "" }
    )
}

/// How dvrd forwards in the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DvrdPath {
    /// Routing between two local ports.
    Local,
    /// Routing to instances on a peer host: VXLAN out of the fabric port.
    Remote,
    /// From an instance with a floating IP to the outside: SNAT out of the external port.
    FloatingIp,
}

impl DvrdPath {
    /// The name of the port the routed packets leave by.
    fn out_port(self) -> &'static str {
        match self {
            DvrdPath::Local => "out",
            DvrdPath::Remote => "fabric",
            DvrdPath::FloatingIp => "ext",
        }
    }
}

/// dvrd's configuration for `routes` (all via [`NEXT_HOP_IP`]).
pub fn dvrd_config(
    name: &str,
    path: DvrdPath,
    routes: &[Prefix],
    hugepages: bool,
    worker_core: usize,
    main_core: usize,
) -> String {
    let mut t = String::with_capacity(256 + routes.len() * 56);
    write_dataplane(&mut t, name, path, hugepages, worker_core, main_core);
    write_fabric(&mut t, path);
    write_router(&mut t, name);
    if path == DvrdPath::FloatingIp {
        // The destinations are the outside: no route, only the floating IP.
        let _ = write!(
            t,
            "\n[external]\naddress = \"203.0.113.21/24\"\ngateway = \"203.0.113.1\"\n\n\
             [[floating_ips]]\nip = \"{FIP}\"\nrouter = \"bench\"\nport = \"{SRC_IP}\"\n"
        );
        return t;
    }
    for p in routes {
        let _ = write!(
            t,
            "\n[[routers.routes]]\nprefix = \"{p}\"\nvia = \"{NEXT_HOP_IP}\"\n"
        );
    }
    t
}

/// `config` (from [`dvrd_config`]) with BLUE's gateway, the address of every test frame, at
/// `mac` instead of [`GW_BLUE_MAC`].
pub fn with_ingress_mac(config: &str, mac: &str) -> String {
    config.replace(
        &format!("mac = \"{GW_BLUE_MAC}\""),
        &format!("mac = \"{mac}\""),
    )
}

/// EAL, the worker and the two ports (the second one the fabric on the remote path).
fn write_dataplane(
    t: &mut String,
    name: &str,
    path: DvrdPath,
    hugepages: bool,
    worker_core: usize,
    main_core: usize,
) {
    let _ = write!(
        t,
        r#"# Generated by dvr-bench: dvrd as the device under test ({path:?} path).
[eal]
main_core = {main_core}
hugepages = {hugepages}
memory_mb = 128
file_prefix = "bench-{name}"
vdevs = ["{in_vdev}", "{out_vdev}"]

[dataplane]
idle = "poll"

[[workers]]
core = {worker_core}
rx = ["in", "{out_port}"]

[[ports]]
name = "in"
device = "net_memif0"

[[ports]]
name = "{out_port}"
device = "net_memif1"
{fabric}
"#,
        in_vdev = server_vdev(name, 0),
        out_vdev = server_vdev(name, 1),
        out_port = path.out_port(),
        fabric = match path {
            DvrdPath::Local => String::new(),
            DvrdPath::Remote => format!("fabric = true\nmtu = {FABRIC_MTU}\n"),
            DvrdPath::FloatingIp => "external = true\n".into(),
        },
    );
}

/// This host, the peer, the two networks and their instances: the next hop is on this host
/// (the generator's port 1) on the local path, on the peer on the remote path.
fn write_fabric(t: &mut String, path: DvrdPath) {
    let (red_ports, next_hop_mac, next_hop_host) = match path {
        DvrdPath::Local => ("\"out\"", GEN_RX_MAC, "bench"),
        DvrdPath::Remote | DvrdPath::FloatingIp => ("", REMOTE_NEXT_HOP_MAC, "peer"),
    };
    let _ = write!(
        t,
        r#"[host]
name = "bench"
dvr_mac = "{DVR_MAC}"
vtep = "{VTEP}"

[[peers]]
name = "peer"
dvr_mac = "{PEER_DVR_MAC}"
vtep = "{PEER_VTEP}"

[[networks]]
name = "blue"
vni = 1001
ports = ["in"]

[[networks]]
name = "red"
vni = 1002
ports = [{red_ports}]

[[instance_ports]]
network = "blue"
ip = "{SRC_IP}"
mac = "{GEN_TX_MAC}"
host = "bench"

[[instance_ports]]
network = "red"
ip = "{NEXT_HOP_IP}"
mac = "{next_hop_mac}"
host = "{next_hop_host}"
"#
    );
}

/// The control socket, the log level and the router with its two interfaces.
fn write_router(t: &mut String, name: &str) {
    let _ = write!(
        t,
        r#"
[control]
socket = "{SOCKET_DIR}/{name}.ctl"

[log]
level = "warn"

[[routers]]
name = "bench"
large = true

[[routers.interfaces]]
network = "blue"
address = "10.0.1.1/24"
mac = "{GW_BLUE_MAC}"

[[routers.interfaces]]
network = "red"
address = "10.0.2.1/24"
mac = "{GW_RED_MAC}"
"#
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_has_the_routes_and_the_right_egress() {
        let routes: Vec<Prefix> = vec!["198.18.1.0/24".parse().unwrap()];
        let local = dvrd_config("dvrd", DvrdPath::Local, &routes, true, 1, 0);
        assert!(local.contains("prefix = \"198.18.1.0/24\""));
        assert!(local.contains("rx = [\"in\", \"out\"]"));
        assert!(!local.contains("fabric = true"));
        let remote = dvrd_config("dvrd-vxlan", DvrdPath::Remote, &routes, false, 1, 0);
        assert!(remote.contains("fabric = true"));
        assert!(remote.contains("host = \"peer\""));
        assert!(remote.contains("hugepages = false"));
        assert!(client_vdev("dvrd", 1, false).contains(GEN_RX_MAC));
        let fip = dvrd_config("dvrd-fip", DvrdPath::FloatingIp, &routes, false, 1, 0);
        assert!(fip.contains("external = true") && fip.contains(FIP));
        assert!(!fip.contains("198.18.1.0/24"));
        assert!(client_vdev("dvrd", 0, true).ends_with(",zero-copy=yes"));
        let moved = with_ingress_mac(&local, "00:01:02:03:04:01");
        assert!(moved.contains("mac = \"00:01:02:03:04:01\"") && !moved.contains(GW_BLUE_MAC));
        assert!(moved.contains(GW_RED_MAC));
    }
}
