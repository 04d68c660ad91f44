use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use router_core::model::{Change, Model};

use super::HostSync;
use crate::state::Event;

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
