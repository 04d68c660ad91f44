//! Validation of every object kind, and the undo of a refused batch.

use super::*;

/// Adds network `name` with `vni`, attached to local `ports`.
/// Host a with peer b, networks blue and red, and router r with an interface on blue.
pub(crate) fn base_changes() -> Vec<Change> {
    vec![
        Change::SetHost(HostSpec {
            name: "a".into(),
            dvr_mac: mac("fa:16:3f:00:00:0a"),
            vtep: "192.0.2.10".parse().unwrap(),
        }),
        Change::AddPeer {
            spec: PeerSpec {
                name: "b".into(),
                dvr_mac: mac("fa:16:3f:00:00:0b"),
                vtep: "192.0.2.20".parse().unwrap(),
            },
            replace: false,
        },
        network("blue", 10, &["p-blue"]),
        network("red", 20, &["p-red"]),
        Change::AddRouter {
            spec: RouterSpec {
                name: "r".into(),
                large: false,
            },
            replace: false,
        },
        add_iface("blue", "10.0.1.1/24", "fa:16:3e:00:01:01"),
    ]
}

/// Adds an interface of router r.
pub(crate) fn add_iface(network: &str, address: &str, m: &str) -> Change {
    Change::AddInterface {
        spec: iface(network, address, m),
        replace: false,
    }
}

pub(crate) fn network(name: &str, vni: u32, ports: &[&str]) -> Change {
    Change::AddNetwork {
        spec: NetworkSpec {
            name: name.into(),
            vni,
            ports: ports.iter().map(|p| p.to_string()).collect(),
        },
        replace: false,
    }
}

pub(crate) fn mac(s: &str) -> MacAddr {
    s.parse().unwrap()
}

fn base() -> Model {
    let mut m = Model::new(vec![
        "p-blue".into(),
        "p-red".into(),
        "p-two-a".into(),
        "p-two-b".into(),
    ]);
    for c in &base_changes() {
        m.apply(c).unwrap();
    }
    m
}

pub(crate) fn iface(network: &str, address: &str, m: &str) -> InterfaceSpec {
    InterfaceSpec {
        router: "r".into(),
        network: network.into(),
        address: address.parse().unwrap(),
        mac: mac(m),
    }
}

pub(crate) fn port(network: &str, ip: &str, m: &str, host: &str) -> Change {
    Change::AddPort {
        spec: InstancePortSpec {
            network: network.into(),
            ip: ip.parse().unwrap(),
            mac: mac(m),
            host: host.into(),
            port: None,
        },
        replace: false,
    }
}

fn refused(m: &mut Model, c: Change) -> String {
    let before = m.clone();
    let e = m.apply(&c).unwrap_err().to_string();
    assert_eq!(*m, before, "a refused change changed the model");
    e
}

#[test]
fn adds_are_idempotent_and_conflicts_need_replace() {
    let mut m = base();
    let c = port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "a");
    assert_eq!(m.apply(&c), Ok(Applied::Changed));
    assert_eq!(m.apply(&c), Ok(Applied::Unchanged));
    let other = port("blue", "10.0.1.5", "fa:16:3e:00:00:06", "a");
    assert!(refused(&mut m, other.clone()).contains("already exists"));
    let Change::AddPort { spec, .. } = other else {
        unreachable!()
    };
    assert_eq!(
        m.apply(&Change::AddPort {
            spec,
            replace: true
        }),
        Ok(Applied::Changed)
    );
}

#[test]
fn bad_requests_are_refused_with_a_reason() {
    let mut m = base();
    let e = refused(
        &mut m,
        add_iface("red", "10.0.1.129/25", "fa:16:3e:00:02:01"),
    );
    assert!(e.contains("overlaps"), "{e}");
    let e = refused(&mut m, add_iface("red", "10.0.2.1/24", "01:00:5e:00:00:01"));
    assert!(e.contains("unicast"), "{e}");
    let e = refused(&mut m, port("blue", "10.0.9.5", "fa:16:3e:00:00:05", "a"));
    assert!(e.contains("outside 10.0.1.0/24"), "{e}");
    let e = refused(
        &mut m,
        port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "nowhere"),
    );
    assert!(e.contains("host `nowhere` does not exist"), "{e}");
    let e = refused(&mut m, port("blue", "10.0.1.1", "fa:16:3e:00:00:05", "a"));
    assert!(e.contains("gateway"), "{e}");
    let e = refused(&mut m, port("blue", "10.0.1.6", "fa:16:3f:00:00:99", "a"));
    assert!(e.contains("DVR MAC range"), "{e}");
    let e = refused(&mut m, port("green", "10.0.1.6", "fa:16:3e:00:00:06", "a"));
    assert!(e.contains("network `green` does not exist"), "{e}");
    let route = |router: &str, prefix: &str, via: &str| Change::AddRoute {
        spec: RouteSpec {
            router: router.into(),
            prefix: prefix.parse().unwrap(),
            via: via.parse().unwrap(),
        },
        replace: false,
    };
    let e = refused(&mut m, route("r", "10.9.0.0/16", "10.0.7.1"));
    assert!(e.contains("not on a subnet"), "{e}");
    let e = refused(&mut m, route("r", "10.9.0.0/16", "10.0.1.1"));
    assert!(e.contains("own address"), "{e}");
    let e = refused(&mut m, route("x", "10.9.0.0/16", "10.0.1.9"));
    assert!(e.contains("router `x` does not exist"), "{e}");
    assert!("10.9.0.1/16".parse::<Prefix>().is_err(), "host bits set");
    let e = refused(&mut m, network("dup", 10, &[]));
    assert!(e.contains("VNI"), "{e}");
    let e = refused(&mut m, network("n2", 30, &["p-blue"]));
    assert!(e.contains("p-blue"), "{e}");
    let e = refused(
        &mut m,
        Change::AddPeer {
            spec: PeerSpec {
                name: "c".into(),
                dvr_mac: mac("fa:16:3f:00:00:0b"),
                vtep: "192.0.2.30".parse().unwrap(),
            },
            replace: false,
        },
    );
    assert!(e.contains("b"), "{e}");
}

#[test]
fn deletes_respect_dependencies() {
    let mut m = base();
    m.apply(&port("blue", "10.0.1.254", "fa:16:3e:00:00:fe", "b"))
        .unwrap();
    m.apply(&Change::AddRoute {
        spec: RouteSpec {
            router: "r".into(),
            prefix: "0.0.0.0/0".parse().unwrap(),
            via: "10.0.1.254".parse().unwrap(),
        },
        replace: false,
    })
    .unwrap();
    let e = refused(
        &mut m,
        Change::DelInterface {
            router: "r".into(),
            network: "blue".into(),
        },
    );
    assert!(e.contains("route 0.0.0.0/0"), "{e}");
    let e = refused(&mut m, Change::DelPeer { name: "b".into() });
    assert!(e.contains("in use"), "{e}");
    let e = refused(&mut m, Change::DelRouter { name: "r".into() });
    assert!(e.contains("in use"), "{e}");
    let e = refused(
        &mut m,
        Change::DelPort {
            network: "blue".into(),
            ip: "10.0.1.99".parse().unwrap(),
        },
    );
    assert!(e.contains("does not exist"), "{e}");
    m.apply(&Change::DelRoute {
        router: "r".into(),
        prefix: "0.0.0.0/0".parse().unwrap(),
    })
    .unwrap();
    m.apply(&Change::DelInterface {
        router: "r".into(),
        network: "blue".into(),
    })
    .unwrap();
}

#[test]
fn a_batch_is_all_or_nothing() {
    let mut m = base();
    let before = m.clone();
    let batch = [
        port("blue", "10.0.1.5", "fa:16:3e:00:00:05", "a"),
        port("blue", "10.0.1.6", "ff:ff:ff:ff:ff:ff", "a"),
    ];
    let (i, e) = m.apply_batch(&batch).unwrap_err();
    assert_eq!(i, 1);
    assert!(e.to_string().contains("unicast"));
    assert_eq!(m, before);
    assert_eq!(m.apply_batch(&batch[..1]).unwrap(), vec![Applied::Changed]);
}

#[test]
fn interface_addresses_parse_strictly() {
    for bad in [
        "10.0.1.0/24",
        "10.0.1.255/24",
        "10.0.1.1",
        "10.0.1.1/31",
        "10.0.1.1/x",
        "224.0.0.1/24",
    ] {
        assert!(bad.parse::<InterfaceAddr>().is_err(), "{bad}");
    }
    let a: InterfaceAddr = "10.0.1.1/24".parse().unwrap();
    assert_eq!(a.subnet().to_string(), "10.0.1.0/24");
    assert_eq!(a.broadcast().to_string(), "10.0.1.255");
}
