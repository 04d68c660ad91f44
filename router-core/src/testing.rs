//! The two hosts of one DVR fabric that router-core's integration tests and perf's instruction
//! counts build their topologies on: `host-a` and `host-b`, each with its DVR MAC and VTEP.
//! Test support, not API: hidden from the docs, nothing in the data path uses it.

use std::net::Ipv4Addr;

use crate::model::{Change, HostSpec, PeerSpec};
use crate::wire::EthernetAddress;

/// Host A's DVR MAC.
pub const DVR_A: &str = "fa:16:3f:00:00:0a";
/// Host B's DVR MAC.
pub const DVR_B: &str = "fa:16:3f:00:00:0b";
/// Host A's VTEP.
pub const VTEP_A: &str = "192.0.2.10";
/// Host B's VTEP.
pub const VTEP_B: &str = "192.0.2.20";

/// The changes that make `me` (`host-a`, else `host-b`) this host and the other its peer.
pub fn host_and_peer(me: &str) -> [Change; 2] {
    let (my_mac, my_vtep, peer, peer_mac, peer_vtep) = if me == "host-a" {
        (DVR_A, VTEP_A, "host-b", DVR_B, VTEP_B)
    } else {
        (DVR_B, VTEP_B, "host-a", DVR_A, VTEP_A)
    };
    let mac = |s: &str| s.parse::<EthernetAddress>().expect("valid MAC").into();
    let ip = |s: &str| s.parse::<Ipv4Addr>().expect("valid address");
    [
        Change::SetHost(HostSpec {
            name: me.into(),
            dvr_mac: mac(my_mac),
            vtep: ip(my_vtep),
        }),
        Change::AddPeer {
            spec: PeerSpec {
                name: peer.into(),
                dvr_mac: mac(peer_mac),
                vtep: ip(peer_vtep),
            },
            replace: false,
        },
    ]
}
