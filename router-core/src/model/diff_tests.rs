//! The diff against random pairs of models: applied to the first, it gives the second; a model
//! and itself differ in nothing; entries the two share are never touched.
//!
//! Random models are drawn from a small universe of names, addresses and MACs, so that the
//! pairs collide in every way the model checks (VNIs, VTEPs and MACs taken by another entry,
//! overlapping subnets, ports outside a changed subnet, floating IPs of deleted ports): each
//! model is a random list of changes applied in turn, the refused ones skipped. The running
//! model may be anything the API can reach that way; the target is what a configuration file
//! can describe: every entry valid when added to an empty model in the file's order.

use proptest::prelude::*;

use super::super::*;
use super::{keys, upsert};

const LOCAL_PORTS: [&str; 2] = ["eth0", "eth1"];

fn mac(last: u8) -> MacAddr {
    MacAddr(EthernetAddress([0xfa, 0x16, 0x3e, 0, 0, last]))
}

fn dvr_mac(last: u8) -> MacAddr {
    MacAddr(EthernetAddress([0xfa, 0x16, 0x3f, 0, 0, last]))
}

fn ip(c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, c, d)
}

fn name(kind: &str, i: u8) -> String {
    format!("{kind}{i}")
}

/// One change of the universe (always an add or a set with replace).
fn change() -> impl Strategy<Value = Change> {
    let host = (0u8..2, 0u8..3).prop_map(|(m, v)| {
        Change::SetHost(HostSpec {
            name: "h".into(),
            dvr_mac: dvr_mac(m),
            vtep: Ipv4Addr::new(192, 0, 2, v),
        })
    });
    let peer = (0u8..3, 0u8..4, 0u8..4).prop_map(|(n, m, v)| Change::AddPeer {
        spec: PeerSpec {
            name: name("p", n),
            dvr_mac: dvr_mac(m),
            vtep: Ipv4Addr::new(192, 0, 2, v),
        },
        replace: true,
    });
    // Ports: none, eth0, eth1 or both (bit i set: port i).
    let network = (0u8..3, 1u32..4, 0usize..4).prop_map(|(n, vni, bits)| Change::AddNetwork {
        spec: NetworkSpec {
            name: name("n", n),
            vni,
            ports: (0..LOCAL_PORTS.len())
                .filter(|i| bits & (1 << i) != 0)
                .map(|i| LOCAL_PORTS[i].to_string())
                .collect(),
        },
        replace: true,
    });
    let router = (0u8..2, any::<bool>()).prop_map(|(r, large)| Change::AddRouter {
        spec: RouterSpec {
            name: name("r", r),
            large,
        },
        replace: true,
    });
    let interface = (
        0u8..2,
        0u8..3,
        0u8..4,
        prop_oneof![Just(23u8), Just(24)],
        0u8..3,
    )
        .prop_map(|(r, n, c, len, m)| Change::AddInterface {
            spec: InterfaceSpec {
                router: name("r", r),
                network: name("n", n),
                address: InterfaceAddr { ip: ip(c, 1), len },
                mac: mac(m),
            },
            replace: true,
        });
    prop_oneof![host, peer, network, router, interface, leaf_change()]
}

/// Changes of the entries nothing else depends on much: ports, routes, external, floating IPs.
fn leaf_change() -> impl Strategy<Value = Change> {
    let hosts = prop_oneof![Just("h".to_string()), (0u8..3).prop_map(|n| name("p", n))];
    let port = (0u8..3, 0u8..4, 2u8..5, 10u8..14, hosts, any::<bool>()).prop_map(
        |(n, c, d, m, host, named)| Change::AddPort {
            spec: InstancePortSpec {
                network: name("n", n),
                ip: ip(c, d),
                mac: mac(m),
                host,
                port: named.then(|| "eth0".to_string()),
            },
            replace: true,
        },
    );
    let route = (0u8..2, 0u8..3, 0u8..4, 2u8..5).prop_map(|(r, p, c, d)| Change::AddRoute {
        spec: RouteSpec {
            router: name("r", r),
            prefix: Prefix::new(Ipv4Addr::new(172, 16, p, 0), 24).unwrap(),
            via: ip(c, d),
        },
        replace: true,
    });
    let external = (0u8..2).prop_map(|g| {
        Change::SetExternal(ExternalSpec {
            address: InterfaceAddr {
                ip: Ipv4Addr::new(203, 0, 113, 2),
                len: 24 + g,
            },
            gateway: Ipv4Addr::new(203, 0, 113, 1),
        })
    });
    let fip = (130u8..132, 0u8..2, 0u8..4, 2u8..5).prop_map(|(f, r, c, d)| Change::AddFloatingIp {
        spec: FloatingIpSpec {
            ip: Ipv4Addr::new(203, 0, 113, f),
            router: name("r", r),
            port: ip(c, d),
        },
        replace: true,
    });
    prop_oneof![port, route, external, fip]
}

fn empty() -> Model {
    let mut m = Model::new(LOCAL_PORTS.iter().map(|p| p.to_string()).collect());
    m.external_port = true;
    m
}

/// The model the changes build, each refused one skipped.
fn model() -> impl Strategy<Value = Model> {
    prop::collection::vec(change(), 0..80).prop_map(|changes| {
        let mut m = empty();
        for c in &changes {
            let _ = m.apply(c);
        }
        m
    })
}

/// What of `m` a configuration file can hold: its entries added in the file's order to an
/// empty model, those refused there left out.
fn as_file(m: &Model) -> Model {
    let mut out = empty();
    for key in keys(m) {
        if let Some(change) = upsert(m, &key, false) {
            let _ = out.apply(&change);
        }
    }
    out
}

/// Applies `changes` as one batch, as the control plane does.
fn applied(m: &Model, changes: &[Change]) -> Model {
    let mut out = m.clone();
    if let Err((i, e)) = out.apply_batch(changes) {
        panic!("change {i} ({:?}) refused: {e}", changes[i]);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_diff_takes_a_model_to_the_target(a in model(), b in model()) {
        let b = as_file(&b);
        let diff = a.diff(&b);
        let mut reached = applied(&a, &diff.changes);
        if b.host.is_none() {
            reached.host = None;
        }
        prop_assert_eq!(reached, b);
    }

    #[test]
    fn a_model_does_not_differ_from_itself(a in model()) {
        prop_assert_eq!(a.diff(&a), Diff::default());
    }
}

fn port(last: u8, host: &str) -> Change {
    Change::AddPort {
        spec: InstancePortSpec {
            network: "n0".into(),
            ip: ip(0, last),
            mac: mac(last),
            host: host.into(),
            port: None,
        },
        replace: false,
    }
}

/// Host h, network n0 on eth0, router r0 with an interface on it.
fn base() -> Vec<Change> {
    vec![
        Change::SetHost(HostSpec {
            name: "h".into(),
            dvr_mac: dvr_mac(1),
            vtep: Ipv4Addr::new(192, 0, 2, 1),
        }),
        Change::AddNetwork {
            spec: NetworkSpec {
                name: "n0".into(),
                vni: 1,
                ports: vec!["eth0".into()],
            },
            replace: false,
        },
        Change::AddRouter {
            spec: RouterSpec {
                name: "r0".into(),
                large: false,
            },
            replace: false,
        },
        Change::AddInterface {
            spec: InterfaceSpec {
                router: "r0".into(),
                network: "n0".into(),
                address: InterfaceAddr {
                    ip: ip(0, 1),
                    len: 24,
                },
                mac: mac(1),
            },
            replace: false,
        },
    ]
}

#[test]
fn shared_entries_are_left_alone_and_a_changed_port_is_replaced() {
    let mut a = empty();
    let mut changes = base();
    changes.extend([port(5, "h"), port(6, "h")]);
    a.apply_batch(&changes).unwrap();
    let mut b = empty();
    let mut changes = base();
    let Change::AddPort { mut spec, .. } = port(5, "h") else {
        unreachable!()
    };
    spec.mac = mac(9);
    changes.extend([
        Change::AddPort {
            spec: spec.clone(),
            replace: false,
        },
        port(7, "h"),
    ]);
    b.apply_batch(&changes).unwrap();
    let diff = a.diff(&b);
    assert_eq!((diff.added, diff.removed, diff.replaced), (1, 1, 1));
    assert_eq!(
        diff.changes,
        vec![
            Change::DelPort {
                network: "n0".into(),
                ip: ip(0, 6)
            },
            Change::AddPort {
                spec,
                replace: true
            },
            port(7, "h"),
        ]
    );
}

#[test]
fn networks_that_swap_vnis_are_deleted_and_added_again() {
    let network = |name: &str, vni, port: &str| Change::AddNetwork {
        spec: NetworkSpec {
            name: name.into(),
            vni,
            ports: vec![port.into()],
        },
        replace: false,
    };
    let mut a = empty();
    a.apply_batch(&[network("x", 1, "eth0"), network("y", 2, "eth1")])
        .unwrap();
    let mut b = empty();
    b.apply_batch(&[network("x", 2, "eth0"), network("y", 1, "eth1")])
        .unwrap();
    let diff = a.diff(&b);
    assert_eq!((diff.added, diff.removed, diff.replaced), (0, 0, 2));
    assert_eq!(diff.changes.len(), 4, "{:?}", diff.changes);
    assert_eq!(applied(&a, &diff.changes), b);
}
