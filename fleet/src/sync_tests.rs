use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use router_core::model::{Change, ExternalSpec, Model};

use super::HostSync;
use crate::schema::{Key, Record};
use crate::state::{Event, FleetState};

fn put(key: &str, value: &str) -> Event {
    Event::Put {
        key: key.into(),
        value: value.as_bytes().to_vec(),
    }
}

fn del(key: &str) -> Event {
    Event::Delete { key: key.into() }
}

fn host_rec(i: u8) -> String {
    format!(r#"{{"dvr_mac": "fa:16:3f:00:00:{i:02x}", "vtep": "192.0.2.{i}"}}"#)
}

fn port_rec(mac: u8, host: &str) -> String {
    format!(r#"{{"mac": "fa:16:3e:00:00:{mac:02x}", "host": "{host}"}}"#)
}

/// Hosts a, b, c; router t1 joins blue and red, router t2 joins green.
fn fleet() -> Vec<Event> {
    vec![
        put("hosts/host-a", &host_rec(10)),
        put("hosts/host-b", &host_rec(20)),
        put("hosts/host-c", &host_rec(30)),
        put("networks/blue", r#"{"vni": 1001}"#),
        put("networks/red", r#"{"vni": 1002}"#),
        put("networks/green", r#"{"vni": 2001}"#),
        put("routers/t1", "{}"),
        put("routers/t2", "{}"),
        put(
            "interfaces/t1/blue",
            r#"{"address": "10.0.1.1/24", "mac": "fa:16:3e:01:01:01"}"#,
        ),
        put(
            "interfaces/t1/red",
            r#"{"address": "10.0.2.1/24", "mac": "fa:16:3e:01:02:01"}"#,
        ),
        put(
            "interfaces/t2/green",
            r#"{"address": "10.0.3.1/24", "mac": "fa:16:3e:01:03:01"}"#,
        ),
        put("routes/t1/0.0.0.0/0", r#"{"via": "10.0.1.254"}"#),
        put("ports/blue/10.0.1.254", &port_rec(0xfe, "host-c")),
        put("ports/blue/10.0.1.5", &port_rec(5, "host-a")),
        put("ports/red/10.0.2.8", &port_rec(8, "host-b")),
        put("ports/green/10.0.3.9", &port_rec(9, "host-c")),
    ]
}

fn host(name: &str) -> HostSync {
    let model = Model::new(vec!["blue".into(), "red".into(), "green".into()]);
    HostSync::new(name, model, BTreeMap::new())
}

/// A host with an external port on 203.0.113.0/24, set from its own file before the fleet.
fn host_external(name: &str) -> HostSync {
    let mut model = Model::new(vec!["blue".into(), "red".into(), "green".into()]);
    model.external_port = true;
    let external = ExternalSpec {
        address: "203.0.113.2/24".parse().unwrap(),
        gateway: "203.0.113.1".parse().unwrap(),
    };
    model.edit(&Change::SetExternal(external)).unwrap();
    HostSync::new(name, model, BTreeMap::new())
}

fn fip_rec(router: &str, port: &str) -> String {
    format!(r#"{{"router": "{router}", "port": "{port}"}}"#)
}

fn rejected(h: &HostSync) -> Vec<String> {
    h.rejected().keys().map(Key::path).collect()
}

fn names<T>(m: &BTreeMap<String, T>) -> Vec<&str> {
    m.keys().map(String::as_str).collect()
}

#[test]
fn a_host_programs_the_routers_of_its_ports_and_every_port_of_their_networks() {
    let mut a = host("host-a");
    let plan = a.revision(1, &fleet());
    assert!(a.rejected().is_empty(), "{:?}", a.rejected());
    assert!(matches!(plan.changes[0], Change::SetHost(_)));
    let m = a.model();
    assert_eq!(names(&m.routers), ["t1"]);
    assert_eq!(names(&m.networks), ["blue", "red"]);
    assert_eq!(names(&m.peers), ["host-b", "host-c"]);
    assert_eq!(
        m.ports.len(),
        3,
        "blue's and red's ports, wherever they run"
    );
    assert_eq!(m.routes.len(), 1);
    // A network attaches to the local port named like it.
    assert_eq!(m.networks["blue"].ports, ["blue"]);
}

#[test]
fn a_host_whose_name_sorts_last_sets_itself_before_its_peers() {
    let mut c = host("host-c");
    let plan = c.revision(1, &fleet());
    assert!(c.rejected().is_empty(), "{:?}", c.rejected());
    assert!(matches!(&plan.changes[0], Change::SetHost(h) if h.name == "host-c"));
    assert_eq!(names(&c.model().peers), ["host-a", "host-b"]);
}

#[test]
fn a_change_on_a_router_this_host_does_not_have_costs_nothing() {
    let mut a = host("host-a");
    a.revision(1, &fleet());
    let plan = a.revision(2, &[put("ports/green/10.0.3.10", &port_rec(10, "host-b"))]);
    assert!(plan.is_empty(), "{:?}", plan.changes);
    let plan = a.revision(3, &[put("ports/red/10.0.2.9", &port_rec(11, "host-c"))]);
    assert_eq!(plan.changes.len(), 1);
    assert!(matches!(&plan.changes[0], Change::AddPort { spec, .. } if spec.host == "host-c"));
}

#[test]
fn the_last_local_port_leaving_takes_the_router_away_in_an_order_the_model_accepts() {
    let mut a = host("host-a");
    a.revision(1, &fleet());
    // The instance moves from a to b: a keeps nothing of t1.
    let plan = a.revision(2, &[put("ports/blue/10.0.1.5", &port_rec(5, "host-b"))]);
    assert!(a.rejected().is_empty(), "{:?}", a.rejected());
    let m = a.model();
    assert!(m.routers.is_empty() && m.networks.is_empty() && m.ports.is_empty());
    assert!(m.interfaces.is_empty() && m.routes.is_empty());
    assert!(matches!(plan.changes[0], Change::DelPort { .. }));
    // And b, which now has a port of t1, gets all of it.
    let mut b = host("host-b");
    b.revision(1, &fleet());
    assert_eq!(names(&b.model().routers), ["t1"]);
}

#[test]
fn a_refused_record_is_reported_by_key_and_the_rest_applies() {
    let mut a = host("host-a");
    a.revision(1, &fleet());
    let plan = a.revision(
        2,
        &[
            put("ports/blue/10.0.1.6", &port_rec(5, "host-b")), // MAC of 10.0.1.5
            put("ports/blue/10.0.1.7", &port_rec(7, "host-nowhere")),
            put("ports/blue/10.0.1.8", &port_rec(8, "host-b")),
            put("ports/blue/10.0.1.9", "{bad json"),
        ],
    );
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    let rejected: Vec<String> = a.rejected().keys().map(|k| k.path()).collect();
    assert_eq!(rejected, ["ports/blue/10.0.1.6", "ports/blue/10.0.1.7"]);
    assert!(a.state().invalid.contains_key("ports/blue/10.0.1.9"));
    // The host appears: the port it names applies at once.
    let plan = a.revision(3, &[put("hosts/host-nowhere", &host_rec(40))]);
    assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
    assert_eq!(a.rejected().len(), 1);
}

#[test]
fn a_control_plane_refusal_is_undone_on_the_copy_and_the_rest_applies() {
    let mut a = host("host-a");
    let plan = a.revision(1, &fleet());
    let n = plan.changes.len();
    let last = plan.keys[n - 1].clone();
    let plan = a.refused(plan, n - 1, "table full".into());
    assert_eq!(plan.changes.len(), n - 1);
    assert_eq!(
        a.rejected().get(&last).map(String::as_str),
        Some("table full")
    );
}

#[test]
fn a_relist_touches_only_what_changed() {
    let mut a = host("host-a");
    a.revision(1, &fleet());
    let mut list: Vec<(String, Vec<u8>)> = fleet()
        .into_iter()
        .filter_map(|e| match e {
            Event::Put { key, value } => Some((key, value)),
            Event::Delete { .. } => None,
        })
        .filter(|(k, _)| k != "ports/red/10.0.2.8")
        .collect();
    list.push((
        "ports/red/10.0.2.20".into(),
        port_rec(20, "host-c").into_bytes(),
    ));
    let next = a.state().relisted(50, &list);
    let plan = a.reset(next);
    assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
    assert_eq!(a.state().revision, 50);
}

// The property: whatever the events, the incremental host holds exactly what the scheduling
// rule computed from scratch says it needs.

const HOSTS: [&str; 3] = ["host-a", "host-b", "host-c"];
const NETS: [(&str, &str, u8); 4] = [
    ("blue", "t1", 1),
    ("red", "t1", 2),
    ("green", "t2", 3),
    ("plain", "", 4),
];

fn op() -> impl Strategy<Value = Event> {
    let port = (0usize..4, 2u8..12, 0usize..3).prop_map(|(n, ip, h)| {
        let (net, _, sub) = NETS[n];
        put(
            &format!("ports/{net}/10.0.{sub}.{ip}"),
            &port_rec(sub * 16 + ip, HOSTS[h]),
        )
    });
    let unport = (0usize..4, 2u8..12).prop_map(|(n, ip)| {
        let (net, _, sub) = NETS[n];
        del(&format!("ports/{net}/10.0.{sub}.{ip}"))
    });
    let iface = (0usize..3, any::<bool>()).prop_map(|(n, on)| {
        let (net, r, sub) = NETS[n];
        let key = format!("interfaces/{r}/{net}");
        if on {
            put(
                &key,
                &format!(r#"{{"address": "10.0.{sub}.1/24", "mac": "fa:16:3e:01:0{sub}:01"}}"#),
            )
        } else {
            del(&key)
        }
    });
    prop_oneof![4 => port, 2 => unport, 1 => iface]
}

/// What host `me` needs, computed from scratch.
fn expected(a: &HostSync, me: &str) -> (BTreeSet<String>, BTreeSet<String>, usize) {
    use crate::schema::Record;
    let recs = &a.state().records;
    let mut local = BTreeSet::new();
    let mut ifaces = Vec::new();
    for r in recs.values() {
        match r {
            Record::Port(p) if p.host == me => {
                local.insert(p.network.clone());
            }
            Record::Interface(i) => ifaces.push((i.router.clone(), i.network.clone())),
            _ => {}
        }
    }
    let routers: BTreeSet<String> = ifaces
        .iter()
        .filter(|(_, n)| local.contains(n))
        .map(|(r, _)| r.clone())
        .collect();
    let mut networks = local.clone();
    for (r, n) in &ifaces {
        if routers.contains(r) {
            networks.insert(n.clone());
        }
    }
    let ports = recs
        .values()
        .filter(|r| matches!(r, Record::Port(p) if networks.contains(&p.network)))
        .count();
    (routers, networks, ports)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn incremental_scheduling_equals_the_rule_from_scratch(
        revisions in prop::collection::vec(prop::collection::vec(op(), 1..5), 1..40)
    ) {
        let mut base = fleet();
        // No routes: a route whose next hop's interface is deleted is refused, by design.
        base.retain(|e| ["ports/", "interfaces/", "routes/"].iter().all(|p| !e.key().starts_with(p)));
        base.push(put("networks/plain", r#"{"vni": 4001}"#));
        let mut a = host("host-a");
        a.revision(1, &base);
        for (i, events) in revisions.iter().enumerate() {
            a.revision(i as i64 + 2, events);
            // Only records the model may refuse: a port on a network without a local port.
            let refusable = a.rejected().keys().all(|k| k.kind() == "port");
            prop_assert!(refusable, "{:?}", a.rejected());
            let refused_ports = a.rejected().keys().filter(|k| k.kind() == "port").count();
            let (routers, networks, ports) = expected(&a, "host-a");
            let m = a.model();
            prop_assert_eq!(m.routers.keys().cloned().collect::<BTreeSet<_>>(), routers);
            prop_assert_eq!(m.networks.keys().cloned().collect::<BTreeSet<_>>(), networks);
            // A refused replacement leaves the old port in place: count each key once.
            let held = m
                .ports
                .keys()
                .filter(|k| !a.rejected().contains_key(&crate::Key::Port((*k).clone())))
                .count();
            prop_assert_eq!(held + refused_ports, ports);
        }
    }
}

#[test]
fn a_floating_ip_goes_to_the_hosts_of_its_router_and_only_there() {
    let mut a = host_external("host-a");
    let mut c = host_external("host-c");
    a.revision(1, &fleet());
    c.revision(1, &fleet());
    // t2 is on host-c alone (its only port, 10.0.3.9, runs there).
    let fip = [put("floating_ips/203.0.113.10", &fip_rec("t2", "10.0.3.9"))];
    assert!(a.revision(2, &fip).is_empty());
    assert!(a.model().floating_ips.is_empty() && a.rejected().is_empty());
    let plan = c.revision(2, &fip);
    assert!(c.rejected().is_empty(), "{:?}", c.rejected());
    assert!(
        matches!(&plan.changes[..], [Change::AddFloatingIp { spec, .. }] if spec.port.to_string() == "10.0.3.9")
    );
    let held = &c.model().floating_ips;
    assert!(held.values().all(|f| c.model().fip_port_is_local(f)));
    // Deleted, it goes from the host that had it.
    let plan = c.revision(3, &[del("floating_ips/203.0.113.10")]);
    assert!(matches!(&plan.changes[..], [Change::DelFloatingIp { .. }]));
    assert!(c.model().floating_ips.is_empty());
}

#[test]
fn a_floating_ip_this_host_cannot_carry_is_refused_by_key_and_the_rest_applies() {
    // host-a has no external network: the instance 10.0.1.5 runs on it.
    let mut a = host("host-a");
    a.revision(1, &fleet());
    let plan = a.revision(
        2,
        &[
            put("floating_ips/203.0.113.10", &fip_rec("t1", "10.0.1.5")),
            put("floating_ips/203.0.113.11", &fip_rec("t1", "10.0.2.8")),
        ],
    );
    assert_eq!(rejected(&a), ["floating_ips/203.0.113.10"]);
    assert!(a
        .rejected()
        .values()
        .all(|e| e.contains("no external network")));
    // The instance on host-b is host-b's business: host-a holds its floating IP.
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
    // host-c's external subnet is 203.0.113.0/24.
    let mut c = host_external("host-c");
    c.revision(1, &fleet());
    let plan = c.revision(
        2,
        &[
            put("floating_ips/198.51.100.7", &fip_rec("t2", "10.0.3.9")),
            put("ports/green/10.0.3.10", &port_rec(10, "host-b")),
        ],
    );
    assert_eq!(rejected(&c), ["floating_ips/198.51.100.7"]);
    let error = &c.rejected()[&Key::FloatingIp("198.51.100.7".parse().unwrap())];
    assert!(
        error.contains("outside the external subnet 203.0.113.0/24"),
        "{error}"
    );
    assert_eq!(plan.changes.len(), 1, "{:?}", plan.changes);
}

#[test]
fn a_floating_ip_follows_its_port_to_another_host() {
    let fip = put("floating_ips/203.0.113.10", &fip_rec("t2", "10.0.3.9"));
    let moved = [put("ports/green/10.0.3.9", &port_rec(9, "host-a"))];
    // host-a gains t2 with the port: the router whole, the floating IP last.
    let mut a = host_external("host-a");
    a.revision(1, &fleet());
    a.revision(2, std::slice::from_ref(&fip));
    let plan = a.revision(3, &moved);
    assert!(a.rejected().is_empty(), "{:?}", a.rejected());
    assert!(matches!(
        plan.changes.last(),
        Some(Change::AddFloatingIp { .. })
    ));
    assert!(plan
        .changes
        .iter()
        .any(|c| matches!(c, Change::AddRouter { .. })));
    let f = &a.model().floating_ips[&"203.0.113.10".parse().unwrap()];
    assert!(a.model().fip_port_is_local(f));
    // host-c loses t2: the floating IP goes before the port and the router.
    let mut c = host_external("host-c");
    c.revision(1, &fleet());
    c.revision(2, &[fip]);
    let plan = c.revision(3, &moved);
    assert!(c.rejected().is_empty(), "{:?}", c.rejected());
    assert!(matches!(plan.changes[0], Change::DelFloatingIp { .. }));
    assert!(plan
        .changes
        .iter()
        .any(|c| matches!(c, Change::DelRouter { .. })));
    assert!(c.model().floating_ips.is_empty());
    assert_eq!(names(&c.model().routers), ["t1"]);
}

#[test]
fn a_floating_ip_moved_off_a_port_deleted_in_the_same_revision_applies() {
    let mut c = host_external("host-c");
    c.revision(1, &fleet());
    c.revision(
        2,
        &[put("floating_ips/203.0.113.10", &fip_rec("t2", "10.0.3.9"))],
    );
    // One transaction: a new port, the floating IP moved to it, the old port deleted. The
    // deletion comes first by kind, and the model refuses it while the floating IP is there.
    let plan = c.revision(
        3,
        &[
            put("ports/green/10.0.3.10", &port_rec(10, "host-c")),
            put("floating_ips/203.0.113.10", &fip_rec("t2", "10.0.3.10")),
            del("ports/green/10.0.3.9"),
        ],
    );
    assert!(c.rejected().is_empty(), "{:?}", c.rejected());
    assert_eq!(plan.changes.len(), 3, "{:?}", plan.changes);
    let m = c.model();
    assert!(!m
        .ports
        .contains_key(&("green".into(), "10.0.3.9".parse().unwrap())));
    assert_eq!(
        m.floating_ips.values().next().unwrap().port.to_string(),
        "10.0.3.10"
    );
}

#[test]
fn a_refused_floating_ip_is_tried_again_when_its_port_applies() {
    let mut a = host_external("host-a");
    a.revision(1, &fleet());
    // Written around the writer: a port on an unknown host, and its floating IP.
    a.revision(
        2,
        &[
            put("ports/blue/10.0.1.7", &port_rec(7, "host-nowhere")),
            put("floating_ips/203.0.113.10", &fip_rec("t1", "10.0.1.7")),
        ],
    );
    assert_eq!(
        rejected(&a),
        ["ports/blue/10.0.1.7", "floating_ips/203.0.113.10"]
    );
    // A revision of ports only, on the floating IP's router.
    let plan = a.revision(3, &[put("ports/blue/10.0.1.7", &port_rec(7, "host-b"))]);
    assert!(a.rejected().is_empty(), "{:?}", a.rejected());
    assert_eq!(plan.changes.len(), 2, "{:?}", plan.changes);
}

#[test]
fn a_relist_and_a_snapshot_keep_the_external_network_and_the_floating_ips() {
    let mut c = host_external("host-c");
    let mut events = fleet();
    events.push(put("floating_ips/203.0.113.10", &fip_rec("t2", "10.0.3.9")));
    c.revision(1, &events);
    let external = c.model().external.clone();
    assert!(external.is_some() && c.model().floating_ips.len() == 1);
    let snapshot = crate::state::SnapshotFile::of("host-c", c.state()).state();
    let plan = c.reset(snapshot.clone());
    assert!(plan.is_empty(), "{:?}", plan.changes);
    // A restarted host: its file's external network, then the snapshot.
    let mut restarted = host_external("host-c");
    restarted.reset(snapshot);
    assert!(
        restarted.rejected().is_empty(),
        "{:?}",
        restarted.rejected()
    );
    for h in [&c, &restarted] {
        assert_eq!(h.model().external, external);
        assert_eq!(h.model().floating_ips.len(), 1);
    }
}

// The same property with floating IPs, on a store written through the writer's validation (as
// `dvrctl --etcd` writes it), for each host with an external network on 203.0.113.0/24.

const FIPS: [&str; 4] = [
    "203.0.113.10",
    "203.0.113.11",
    "203.0.113.12",
    "198.51.100.10",
];
/// The one floating IP outside the hosts' external subnet: every host of its router refuses it.
const FIP_OUTSIDE: &str = "198.51.100.10";

fn op_with_fips() -> impl Strategy<Value = Event> {
    let fip = (0usize..FIPS.len(), 0usize..3, 2u8..12).prop_map(|(f, n, ip)| {
        let (_, r, sub) = NETS[n];
        put(
            &format!("floating_ips/{}", FIPS[f]),
            &fip_rec(r, &format!("10.0.{sub}.{ip}")),
        )
    });
    let unfip = (0usize..FIPS.len()).prop_map(|f| del(&format!("floating_ips/{}", FIPS[f])));
    prop_oneof![6 => op(), 3 => fip, 1 => unfip]
}

/// Keeps the events the writer accepts against the fleet `model` (changing it).
fn written(model: &mut Model, events: &[Event]) -> Vec<Event> {
    let accepts = |model: &mut Model, e: &Event| {
        let Ok(key) = Key::parse(e.key()) else {
            return false;
        };
        let change = match e {
            Event::Put { value, .. } => match Record::parse(&key, value) {
                Ok(rec) => rec.upsert(),
                Err(_) => return false,
            },
            Event::Delete { .. } => key.delete(),
        };
        crate::writer::operations(model, &[change]).is_ok()
    };
    events
        .iter()
        .filter(|e| accepts(model, e))
        .cloned()
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn floating_ips_follow_their_routers_whatever_the_order_of_events(
        revisions in prop::collection::vec(prop::collection::vec(op_with_fips(), 1..6), 1..40)
    ) {
        let mut base = fleet();
        base.retain(|e| ["ports/", "interfaces/", "routes/"].iter().all(|p| !e.key().starts_with(p)));
        base.push(put("networks/plain", r#"{"vni": 4001}"#));
        let mut store = FleetState::default();
        for e in &base {
            store.apply(e);
        }
        let mut fleet_model = crate::writer::fleet_model(&store).0;
        let mut hosts: Vec<HostSync> = HOSTS.iter().map(|h| host_external(h)).collect();
        for h in &mut hosts {
            h.revision(1, &base);
        }
        for (i, events) in revisions.iter().enumerate() {
            let events = written(&mut fleet_model, events);
            for h in &mut hosts {
                h.revision(i as i64 + 2, &events);
                // The only refusals: a local port on a network without a local port, and
                // the floating IP outside the external subnet.
                let expected_refusal = |k: &Key| match k {
                    Key::Port((n, _)) => n == "plain",
                    Key::FloatingIp(ip) => ip.to_string() == FIP_OUTSIDE,
                    _ => false,
                };
                prop_assert!(h.rejected().keys().all(expected_refusal), "{}: {:?}", h.host(), h.rejected());
                let (routers, _, _) = expected(h, h.host());
                let fips: BTreeSet<Key> = h
                    .state()
                    .records
                    .iter()
                    .filter(|(_, r)| matches!(r, Record::FloatingIp(f) if routers.contains(&f.router)))
                    .map(|(k, _)| k.clone())
                    .collect();
                let m = h.model();
                let held: BTreeSet<Key> = m.floating_ips.keys().map(|ip| Key::FloatingIp(*ip)).collect();
                let refused: BTreeSet<Key> = h.rejected().keys().filter(|k| k.kind() == "floating IP").cloned().collect();
                prop_assert!(held.is_disjoint(&refused));
                prop_assert_eq!(held.union(&refused).cloned().collect::<BTreeSet<_>>(), fips);
                for f in m.floating_ips.values() {
                    prop_assert_eq!(Some(&Record::FloatingIp(f.clone())), h.state().records.get(&Key::FloatingIp(f.ip)));
                }
            }
        }
    }
}
