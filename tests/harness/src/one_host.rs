//! One host and two instances, no fabric: BLUE-A (10.0.1.5/24 on BLUE) and RED-A (10.0.2.7/24
//! on RED) of the DVR cloud ([`dvr`](crate::dvr)) on host A alone, with router `tenant1`
//! between them. The topology of the data-path, control API and harness tests; the
//! addresses, MACs and names are the cloud's, so that the two never disagree.

use crate::config::{DvrdConfig, InstancePortCfg, NetworkCfg, RouterCfg};
use crate::dvr::{NetworkDef, BLUE, BLUE_A, HOST_A, RED, RED_A, TENANT1};
use crate::net::Netns;
use crate::test_scope::Scope;
use crate::topo::Instance;

/// The instances `blue` (BLUE-A) and `red` (RED-A), their host ends in `host_ns` (None: the
/// root namespace, where a dvrd attaches to them).
pub fn instances(scope: &Scope, host_ns: Option<&Netns>) -> (Instance, Instance) {
    let blue = Instance::new_in(scope, BLUE.name, BLUE_A.spec(), host_ns);
    let red = Instance::new_in(scope, RED.name, RED_A.spec(), host_ns);
    (blue, red)
}

/// Host A with a port on each instance's host end (named after its network) and the networks
/// BLUE and RED, each with its port: no router, no instance port. What the control API tests
/// build on at run time.
pub fn ports_and_networks(blue: &Instance, red: &Instance) -> DvrdConfig {
    let network = |n: &NetworkDef| NetworkCfg::new(n.name, n.vni, &[n.name]);
    DvrdConfig::new(HOST_A.cfg())
        .port(blue.port(BLUE.name))
        .port(red.port(RED.name))
        .network(network(&BLUE))
        .network(network(&RED))
}

/// [`ports_and_networks`], router `tenant1` with a gateway on each network, and both instances
/// as local instance ports: host A routing between BLUE and RED.
pub fn routed_config(blue: &Instance, red: &Instance) -> DvrdConfig {
    let router = RouterCfg::new(TENANT1.name)
        .interface(BLUE.name, &BLUE.interface_address(), BLUE.gateway_mac)
        .interface(RED.name, &RED.interface_address(), RED.gateway_mac);
    let port = |net: &NetworkDef, inst: &Instance| {
        InstancePortCfg::new(net.name, inst.ip(), inst.mac(), HOST_A.name)
    };
    ports_and_networks(blue, red)
        .router(router)
        .instance_port(port(&BLUE, blue))
        .instance_port(port(&RED, red))
}
