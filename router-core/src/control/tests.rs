//! Unit tests of the control plane: each object's add, replace and delete, refusals, and the
//! undo of batches that fail part-way, checked against everything the tables and the control
//! state hold.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::*;
use crate::dataplane::{l2_key, L2Location};
use crate::lpm::{LpmError, Prefix};
use crate::model::tests::{
    add_iface as iface, base_changes, iface as iface_spec, mac, network, port,
};
use crate::model::{HostSpec, InstancePortSpec, NetworkSpec, PeerSpec, RouteSpec, RouterSpec};
use crate::table::{AtomicMapError, NextHopKind};

const PORT_BLUE: PortId = PortId::new(1);

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn config() -> ControlConfig {
    let port = |name: &str, last: u8, fabric| PortSetup {
        name: name.into(),
        mac: EthernetAddress([2, 0, 0, 0, 0, last]),
        mtu: 1500,
        fabric,
        external: false,
    };
    let mut cfg = ControlConfig::new(vec![
        port("fabric", 1, true),
        port("p-blue", 2, false),
        port("p-red", 3, false),
    ]);
    cfg.next_hops = 64;
    cfg.l2_entries = 16;
    cfg.tbl8_groups_compact = 8;
    cfg
}

fn port_spec(network: &str, addr: &str, m: &str, host: &str) -> InstancePortSpec {
    InstancePortSpec {
        network: network.into(),
        ip: ip(addr),
        mac: mac(m),
        host: host.into(),
        port: None,
    }
}

/// Instance ports 10.0.1.i on blue, on this host.
fn blue_ports(range: std::ops::Range<u8>) -> Vec<Change> {
    range
        .map(|i| {
            port(
                "blue",
                &format!("10.0.1.{i}"),
                &format!("fa:16:3e:00:00:{i:02x}"),
                "a",
            )
        })
        .collect()
}

fn route(prefix: &str, via: &str) -> Change {
    Change::AddRoute {
        spec: RouteSpec {
            router: "r".into(),
            prefix: prefix.parse().unwrap(),
            via: ip(via),
        },
        replace: false,
    }
}

fn peer_spec(name: &str, last: u8, vtep: &str) -> PeerSpec {
    PeerSpec {
        name: name.into(),
        dvr_mac: mac(&format!("fa:16:3f:00:00:{last:02x}")),
        vtep: ip(vtep),
    }
}

/// Host a with peer b, networks blue and red, router r with an interface on blue.
fn base_with(cfg: ControlConfig) -> ControlPlane {
    base_on(cfg, Arc::new(Qsbr::new(4)))
}

fn base_on(cfg: ControlConfig, qsbr: Arc<Qsbr>) -> ControlPlane {
    let mut cp = ControlPlane::new(cfg, qsbr).unwrap();
    cp.apply_batch(&base_changes()).unwrap();
    cp
}

fn base() -> ControlPlane {
    base_with(config())
}

/// Addresses the tests route or attach, looked up in every snapshot.
const PROBES: [&str; 12] = [
    "10.0.1.1",
    "10.0.1.5",
    "10.0.1.6",
    "10.0.1.7",
    "10.0.1.254",
    "10.0.1.255",
    "10.0.2.1",
    "10.0.2.5",
    "10.0.3.1",
    "20.1.0.1",
    "20.2.0.1",
    "8.8.8.8",
];

/// Everything a change can touch: the model, the tables (every next-hop slot, L2 entries, LPM
/// lookups, the published topology) and the control plane's own counters and owners.
#[derive(Debug, PartialEq)]
struct Snapshot {
    model: Model,
    usage: TableUsage,
    neighbors: Vec<NeighborView>,
    lookups: Vec<Option<NextHopId>>,
    slots: Vec<(u64, IfaceId, Option<NextHopOwner>)>,
    l2: Vec<(u64, u64)>,
    /// L2 deletes not yet reused: an entry written and taken back leaves one.
    l2_tombstones: usize,
    topology: String,
    control: String,
}

fn snapshot(cp: &ControlPlane) -> Snapshot {
    let lookups = PROBES
        .iter()
        .map(|a| cp.lookup("r", ip(a)).flatten())
        .collect();
    let table = &cp.dp.next_hops;
    let slots = (0..table.capacity() as u32)
        .filter_map(NextHopId::new)
        .map(|i| {
            let nh = table.get(i);
            (nh.state.raw(), nh.iface, cp.next_hop_owner(i))
        })
        .collect();
    let l2 = cp
        .model
        .ports
        .values()
        .chain(extra_ports().iter())
        .filter_map(|p| {
            let key = l2_key(cp.network_id(&p.network)?, p.mac.to_u64());
            Some((key, cp.dp.l2.get(key)?))
        })
        .collect();
    let mut owners: Vec<_> = cp.tables.owners.iter().collect();
    owners.sort_by_key(|(nh, _)| **nh);
    let mut neighbors: Vec<_> = cp.neighbors.entries.iter().collect();
    neighbors.sort_by_key(|(k, _)| **k);
    let mut underlay: Vec<_> = cp.neighbors.underlay.iter().collect();
    underlay.sort_by_key(|(k, _)| **k);
    Snapshot {
        model: cp.model.clone(),
        usage: cp.table_usage(),
        neighbors: cp.neighbors(0),
        lookups,
        slots,
        l2,
        l2_tombstones: cp.tables.l2.tombstones(),
        topology: format!("{:?}", topology_view(cp)),
        control: format!(
            "{:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?}",
            owners, neighbors, underlay, cp.flood, cp.networks, cp.ifaces, cp.peers, cp.ids
        ),
    }
}

/// The published topology without its LPM handles (compared by routes instead).
fn topology_view(cp: &ControlPlane) -> impl std::fmt::Debug {
    let t = cp.dp.topology.load();
    (
        t.host,
        t.ports.clone(),
        t.networks.clone(),
        t.ifaces.clone(),
        t.peers.clone(),
        t.routers.iter().map(Option::is_some).collect::<Vec<_>>(),
    )
}

/// Ports some tests add, so that their L2 entries are checked too once they are gone.
fn extra_ports() -> Vec<InstancePortSpec> {
    (5..=20)
        .map(|i| {
            port_spec(
                "blue",
                &format!("10.0.1.{i}"),
                &format!("fa:16:3e:00:00:{i:02x}"),
                "a",
            )
        })
        .collect()
}

/// A snapshot once freed slots and groups are back (no reader holds a grace period here).
fn settled(cp: &mut ControlPlane) -> Snapshot {
    cp.reclaim();
    snapshot(cp)
}

/// Checks that what a test added and deleted again left the model, the table usage, the
/// neighbours and the routes as they were.
fn assert_back_to(cp: &mut ControlPlane, before: &Snapshot) {
    let after = settled(cp);
    assert_eq!(after.model, before.model);
    assert_eq!(after.usage, before.usage);
    assert_eq!(after.neighbors, before.neighbors);
    assert_eq!(after.lookups, before.lookups);
}

fn owner_at(cp: &ControlPlane, addr: &str) -> Option<NextHopOwner> {
    cp.next_hop_owner(cp.lookup("r", ip(addr))??)
}

#[test]
fn routers_are_added_replaced_and_deleted() {
    let mut cp = base();
    let before = snapshot(&cp);
    let r2 = RouterSpec {
        name: "r2".into(),
        large: false,
    };
    let add = Change::AddRouter {
        spec: r2.clone(),
        replace: false,
    };
    assert_eq!(cp.apply(&add), Ok(Applied::Changed));
    assert_eq!(cp.apply(&add), Ok(Applied::Unchanged));
    let id = cp.router_id("r2").unwrap();
    assert!(cp.dp.topology.load().router(id).is_some());
    let e = cp
        .apply(&Change::AddRouter {
            spec: RouterSpec { large: true, ..r2 },
            replace: true,
        })
        .unwrap_err();
    assert!(e.to_string().contains("layout"), "{e}");
    cp.apply(&Change::DelRouter { name: "r2".into() }).unwrap();
    assert!(cp.router_id("r2").is_none());
    assert!(cp.dp.topology.load().router(id).is_none());
    assert_back_to(&mut cp, &before);
}

#[test]
fn networks_are_added_replaced_and_deleted() {
    let mut cp = base();
    let before = snapshot(&cp);
    cp.apply(&network("green", 30, &[])).unwrap();
    let id = cp.network_id("green").unwrap();
    assert_eq!(cp.dp.topology.load().vni_to_network.get(30), Some(id));
    cp.apply(&Change::AddNetwork {
        spec: NetworkSpec {
            name: "green".into(),
            vni: 31,
            ports: vec![],
        },
        replace: true,
    })
    .unwrap();
    let t = cp.dp.topology.load();
    assert_eq!(t.vni_to_network.get(31), Some(id));
    assert_eq!(t.vni_to_network.get(30), None);
    cp.apply(&Change::DelNetwork {
        name: "green".into(),
    })
    .unwrap();
    assert!(cp.network_id("green").is_none());
    assert_back_to(&mut cp, &before);
}

#[test]
fn interfaces_are_added_replaced_and_deleted() {
    let mut cp = base();
    let before = snapshot(&cp);
    cp.apply(&iface("red", "10.0.2.1/24", "fa:16:3e:00:02:01"))
        .unwrap();
    assert!(matches!(
        owner_at(&cp, "10.0.2.1"),
        Some(NextHopOwner::Local(_))
    ));
    assert!(matches!(
        owner_at(&cp, "10.0.2.5"),
        Some(NextHopOwner::Connected(_))
    ));
    cp.apply(&Change::AddInterface {
        spec: iface_spec("red", "10.0.3.1/24", "fa:16:3e:00:02:01"),
        replace: true,
    })
    .unwrap();
    assert!(matches!(
        owner_at(&cp, "10.0.3.1"),
        Some(NextHopOwner::Local(_))
    ));
    assert_eq!(cp.lookup("r", ip("10.0.2.1")), Some(None));
    cp.apply(&Change::DelInterface {
        router: "r".into(),
        network: "red".into(),
    })
    .unwrap();
    assert_eq!(cp.lookup("r", ip("10.0.3.1")), Some(None));
    assert_back_to(&mut cp, &before);
}

#[test]
fn routes_are_added_replaced_and_deleted() {
    let mut cp = base();
    cp.apply_batch(&[
        port("blue", "10.0.1.254", "fa:16:3e:00:00:fe", "b"),
        port("blue", "10.0.1.253", "fa:16:3e:00:00:fd", "b"),
    ])
    .unwrap();
    let before = snapshot(&cp);
    let gateway = |addr: &str| NextHopOwner::Neighbor {
        router: cp.router_id("r").unwrap(),
        ip: u32::from(ip(addr)),
    };
    let (via_254, via_253) = (gateway("10.0.1.254"), gateway("10.0.1.253"));
    cp.apply(&route("0.0.0.0/0", "10.0.1.254")).unwrap();
    assert_eq!(owner_at(&cp, "8.8.8.8"), Some(via_254));
    let Change::AddRoute { spec, .. } = route("0.0.0.0/0", "10.0.1.253") else {
        unreachable!()
    };
    cp.apply(&Change::AddRoute {
        spec,
        replace: true,
    })
    .unwrap();
    assert_eq!(owner_at(&cp, "8.8.8.8"), Some(via_253));
    cp.apply(&Change::DelRoute {
        router: "r".into(),
        prefix: Prefix::DEFAULT,
    })
    .unwrap();
    assert_eq!(cp.lookup("r", ip("8.8.8.8")), Some(None));
    assert_eq!(settled(&mut cp), before);
}

#[test]
fn ports_are_added_replaced_and_deleted() {
    let mut cp = base();
    let before = snapshot(&cp);
    let blue = cp.network_id("blue").unwrap();
    let key = |m: &str| l2_key(blue, mac(m).to_u64());
    cp.apply(&port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "a"))
        .unwrap();
    assert_eq!(
        cp.dp.l2.get(key("fa:16:3e:00:00:05")),
        Some(L2Location::Local(PORT_BLUE).encode())
    );
    let nh = cp.lookup("r", ip("10.0.1.5")).unwrap().unwrap();
    assert_eq!(cp.dp.next_hops.get(nh).state.kind(), NextHopKind::Local);
    assert_eq!(cp.neighbors(0)[0].state, NeighborState::Permanent);
    // On a peer now, with another MAC.
    cp.apply(&Change::AddPort {
        spec: port_spec("blue", "10.0.1.5", "fa:16:3e:00:00:55", "b"),
        replace: true,
    })
    .unwrap();
    assert_eq!(cp.dp.l2.get(key("fa:16:3e:00:00:05")), None);
    let peer = cp.peers["b"].id;
    assert_eq!(
        cp.dp.l2.get(key("fa:16:3e:00:00:55")),
        Some(L2Location::Remote(peer).encode())
    );
    let t = cp.dp.topology.load();
    assert_eq!(t.network(blue).unwrap().flood_peers, vec![peer]);
    cp.apply(&Change::DelPort {
        network: "blue".into(),
        ip: ip("10.0.1.5"),
    })
    .unwrap();
    assert!(cp
        .dp
        .topology
        .load()
        .network(blue)
        .unwrap()
        .flood_peers
        .is_empty());
    assert_back_to(&mut cp, &before);
}

#[test]
fn peers_are_added_replaced_and_deleted() {
    let mut cp = base();
    let before = snapshot(&cp);
    cp.apply(&Change::AddPeer {
        spec: peer_spec("c", 0x0c, "192.0.2.30"),
        replace: false,
    })
    .unwrap();
    let t = cp.dp.topology.load();
    let id = t.vtep_to_peer.get(u64::from(u32::from(ip("192.0.2.30"))));
    assert_eq!(id, Some(cp.peers["c"].id));
    assert_eq!(
        cp.table_usage().next_hops_used,
        before.usage.next_hops_used + 1
    );
    cp.apply(&Change::AddPeer {
        spec: peer_spec("c", 0x0c, "192.0.2.31"),
        replace: true,
    })
    .unwrap();
    let underlay: Vec<_> = cp.neighbors.underlay.keys().copied().collect();
    assert!(underlay.contains(&u32::from(ip("192.0.2.31"))));
    assert!(!underlay.contains(&u32::from(ip("192.0.2.30"))));
    cp.apply(&Change::DelPeer { name: "c".into() }).unwrap();
    assert_back_to(&mut cp, &before);
}

#[test]
fn conflicts_need_replace_and_change_nothing() {
    let mut cp = base();
    cp.apply(&port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "a"))
        .unwrap();
    let before = snapshot(&cp);
    let e = cp
        .apply(&port("blue", "10.0.1.5", "fa:16:3e:00:00:06", "a"))
        .unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    let e = cp.apply(&network("blue", 11, &["p-blue"])).unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(snapshot(&cp), before);
}

#[test]
fn objects_in_use_are_not_deleted() {
    let mut cp = base();
    cp.apply_batch(&[
        port("blue", "10.0.1.254", "fa:16:3e:00:00:fe", "b"),
        route("0.0.0.0/0", "10.0.1.254"),
    ])
    .unwrap();
    let before = snapshot(&cp);
    let refusals = [
        (
            Change::DelNetwork {
                name: "blue".into(),
            },
            "interface",
        ),
        (Change::DelRouter { name: "r".into() }, "in use"),
        (
            Change::DelInterface {
                router: "r".into(),
                network: "blue".into(),
            },
            "route 0.0.0.0/0",
        ),
        (Change::DelPeer { name: "b".into() }, "in use"),
    ];
    for (change, why) in refusals {
        let e = cp.apply(&change).unwrap_err();
        assert!(
            matches!(e, ApplyError::Model(ModelError::InUse { .. })),
            "{e}"
        );
        assert!(e.to_string().contains(why), "{e}");
        assert_eq!(snapshot(&cp), before, "{change:?} changed something");
    }
}

/// Applies a batch that must fail at `index`, with a reader looking up `watched` all along;
/// checks that everything is as before and the reader never saw any of it routed.
fn assert_refused_unseen(
    cp: &mut ControlPlane,
    batch: &[Change],
    index: usize,
    watched: &[&str],
) -> ApplyError {
    let before = snapshot(cp);
    let lpm = Arc::clone(cp.routers["r"].lpm.lpm());
    let seen_before: Vec<_> = watched
        .iter()
        .map(|a| lpm.lookup(u32::from(ip(a))))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = Arc::clone(&stop);
        let addrs: Vec<u32> = watched.iter().map(|a| u32::from(ip(a))).collect();
        std::thread::spawn(move || {
            let mut changed = false;
            while !stop.load(Ordering::Relaxed) {
                let now: Vec<_> = addrs.iter().map(|&a| lpm.lookup(a)).collect();
                changed |= now != seen_before;
            }
            changed
        })
    };
    let (i, e) = cp.apply_batch(batch).unwrap_err();
    stop.store(true, Ordering::Relaxed);
    assert!(!reader.join().unwrap(), "a reader saw part of the batch");
    assert_eq!(i, index, "{e}");
    assert_eq!(snapshot(cp), before);
    e
}

#[test]
fn a_batch_that_fills_the_next_hop_table_is_refused_before_any_write() {
    let mut cfg = config();
    // Slot 0 is never used; the base topology takes one per interface slot and one underlay.
    cfg.next_hops = 9;
    let mut cp = base_with(cfg);
    let free = cp.tables.next_hops.available();
    assert_eq!(free, 4);
    let batch: Vec<_> = blue_ports(5..10);
    let e = assert_refused_unseen(&mut cp, &batch, 4, &["10.0.1.5", "10.0.1.6", "10.0.1.7"]);
    assert!(matches!(e, ApplyError::NextHops(_)), "{e}");
    // Exactly what fits goes in.
    cp.apply_batch(&batch[..4]).unwrap();
    assert_eq!(cp.tables.next_hops.available(), 0);
}

#[test]
fn a_batch_that_exhausts_tbl8_groups_is_refused_before_any_write() {
    let mut cfg = config();
    cfg.tbl8_groups_compact = 4;
    let mut cp = base_with(cfg);
    cp.apply(&port("blue", "10.0.1.254", "fa:16:3e:00:00:fe", "b"))
        .unwrap();
    // The interface's /32s and the port's share two groups: 10.0/16 and 10.0.1/24.
    assert_eq!(cp.table_usage().tbl8_used, 2);
    // Each /32 in another /16 takes two more.
    let batch = [
        route("20.1.0.1/32", "10.0.1.254"),
        route("20.2.0.1/32", "10.0.1.254"),
    ];
    let e = assert_refused_unseen(&mut cp, &batch, 1, &["20.1.0.1", "20.2.0.1"]);
    assert!(
        matches!(
            e,
            ApplyError::Lpm {
                source: LpmError::Tbl8Exhausted { .. },
                ..
            }
        ),
        "{e}"
    );
    cp.apply(&batch[0]).unwrap();
    assert_eq!(cp.table_usage().tbl8_used, 4);
}

#[test]
fn a_batch_that_fills_the_l2_table_is_refused_before_any_write() {
    let mut cfg = config();
    cfg.l2_entries = 8;
    let mut cp = base_with(cfg);
    let ports: Vec<_> = (5..=13)
        .map(|i| {
            port(
                "red",
                &format!("10.0.2.{i}"),
                &format!("fa:16:3e:00:02:{i:02x}"),
                "a",
            )
        })
        .collect();
    let e = assert_refused_unseen(&mut cp, &ports, 8, &[]);
    assert!(
        matches!(e, ApplyError::L2(AtomicMapError::Full { .. })),
        "{e}"
    );
}

#[test]
fn a_conflict_after_good_changes_undoes_them_all() {
    let mut cp = base();
    let batch = [
        port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "a"),
        port("blue", "10.0.1.6", "fa:16:3e:00:00:06", "b"),
        iface("red", "10.0.2.1/24", "fa:16:3e:00:02:01"),
        Change::AddPeer {
            spec: peer_spec("c", 0x0c, "192.0.2.30"),
            replace: false,
        },
        // Port 10.0.1.5 again, with another MAC and no replace.
        port("blue", "10.0.1.5", "fa:16:3e:00:00:99", "a"),
    ];
    let e = assert_refused_unseen(&mut cp, &batch, 4, &["10.0.1.5", "10.0.1.6", "10.0.2.1"]);
    assert!(
        matches!(e, ApplyError::Model(ModelError::Conflict { .. })),
        "{e}"
    );
}

#[test]
fn a_failed_first_host_is_undone_too() {
    let mut cp = ControlPlane::new(config(), Arc::new(Qsbr::new(4))).unwrap();
    let host = Change::SetHost(HostSpec {
        name: "a".into(),
        dvr_mac: mac("fa:16:3f:00:00:0a"),
        vtep: ip("192.0.2.10"),
    });
    let (i, _) = cp
        .apply_batch(&[host, network("blue", 0, &[])])
        .unwrap_err();
    assert_eq!(i, 1);
    assert!(cp.host().is_none());
    assert!(cp.dp.topology.load().host.is_none());
}

/// Programming can still fail after the capacity check when a worker holds a grace period
/// past the writer's wait: the slot a deleted port freed is counted on but never comes back.
/// The changes already programmed are undone from their snapshots.
#[test]
fn programming_that_fails_after_the_check_is_undone_from_the_snapshots() {
    let mut cfg = config();
    cfg.next_hops = 9;
    let qsbr = Arc::new(Qsbr::new(4));
    let mut cp = base_on(cfg, Arc::clone(&qsbr));
    let fill: Vec<_> = blue_ports(5..9);
    cp.apply_batch(&fill).unwrap();
    // A worker comes online and stops reporting: the next freed slot stays retired.
    let _stuck = qsbr.register().unwrap();
    cp.apply(&Change::DelPort {
        network: "blue".into(),
        ip: ip("10.0.1.8"),
    })
    .unwrap();
    assert_eq!(cp.tables.next_hops.available(), 1);
    let batch = [
        // Red has no router: an L2 entry only, programmed first.
        port("red", "10.0.2.5", "fa:16:3e:00:02:05", "b"),
        port("blue", "10.0.1.9", "fa:16:3e:00:00:09", "a"),
    ];
    let before = snapshot(&cp);
    let (i, e) = cp.apply_batch(&batch).unwrap_err();
    assert_eq!(i, 1);
    assert!(matches!(e, ApplyError::NextHops(_)), "{e}");
    let after = snapshot(&cp);
    assert_eq!(after.model, before.model);
    assert_eq!(after.usage, before.usage);
    assert_eq!(after.slots, before.slots);
    assert_eq!(after.lookups, before.lookups);
    assert_eq!(after.topology, before.topology);
    let red = cp.network_id("red").unwrap();
    let key = l2_key(red, mac("fa:16:3e:00:02:05").to_u64());
    assert_eq!(cp.dp.l2.get(key), None);
    assert!(cp.flood.is_empty());
}

/// The next hop of the unresolved gateway `via` of a new default route.
fn pending_gateway(cp: &mut ControlPlane, via: &str) -> NextHopId {
    cp.apply(&route("0.0.0.0/0", via)).unwrap();
    let nh = cp.lookup("r", ip("8.8.8.8")).unwrap().unwrap();
    assert_eq!(cp.dp.next_hops.get(nh).state.kind(), NextHopKind::Pending);
    nh
}

#[test]
fn held_packets_are_told_when_their_neighbour_resolves() {
    let mut cp = base();
    let nh = pending_gateway(&mut cp, "10.0.1.254");
    cp.neighbors.waits.wait(nh);
    assert!(cp.hold_events().is_empty());
    // The gateway turns out to be an instance port: its slot now says where it is.
    cp.apply(&port("blue", "10.0.1.254", "fa:16:3e:00:00:fe", "b"))
        .unwrap();
    assert_eq!(cp.hold_events(), vec![HoldEvent::Resolved(nh)]);
    assert!(cp.hold_events().is_empty(), "reported once");
}

#[test]
fn held_packets_are_told_when_resolution_fails_or_the_next_hop_goes() {
    let mut cp = base();
    let nh = pending_gateway(&mut cp, "10.0.1.254");
    let asker = cp
        .asker_for(cp.ifaces[&("r".into(), "blue".into())].id)
        .unwrap();
    cp.neighbors
        .resolver
        .start(nh, u32::from(ip("10.0.1.254")), asker, 0);
    cp.neighbors.waits.wait(nh);
    let second = 1_000_000_000;
    for t in 1..=3 {
        cp.tick(t * second);
    }
    assert_eq!(cp.hold_events(), vec![HoldEvent::Failed(nh)]);
    cp.neighbors.waits.wait(nh);
    cp.apply(&Change::DelRoute {
        router: "r".into(),
        prefix: Prefix::DEFAULT,
    })
    .unwrap();
    assert_eq!(cp.hold_events(), vec![HoldEvent::Forgotten(nh)]);
}
