//! The key space: what each key under `<prefix>config/` holds, typed with serde.
//!
//! A key names the object (`ports/blue/10.0.1.5`); its value holds the rest of the object as
//! JSON (`{"mac": "...", "host": "host-a"}`). [`Record::parse`] joins the two into the model's
//! spec, which the model validates when it is applied, exactly as a config file's or an API
//! request's. `docs/fleet.md` documents every key.

use std::fmt;
use std::net::Ipv4Addr;

use router_core::lpm::Prefix;
use router_core::model::{
    Change, FloatingIpSpec, HostSpec, InstancePortSpec, InterfaceAddr, InterfaceKey, InterfaceSpec,
    MacAddr, NetworkSpec, PeerSpec, PortKey, RouteKey, RouteSpec, RouterSpec,
};
use serde::{Deserialize, Serialize};

/// The default prefix of the whole key space.
pub const DEFAULT_PREFIX: &str = "/dvr/v1/";
/// Under the prefix: the routing records, which every host watches.
pub const CONFIG_DIR: &str = "config/";
/// Under the prefix: each host's status, under its lease.
pub const STATUS_DIR: &str = "status/";
/// Largest record value accepted; a larger one is reported and skipped unread.
pub const VALUE_BYTES_MAX: usize = 16 * 1024;
/// Longest key accepted (after the prefix).
pub const KEY_BYTES_MAX: usize = 512;

/// The key of a routing record, relative to `<prefix>config/`. Kinds sort in the order objects
/// depend on each other (a floating IP on its router and its port, last), which is the order a
/// model accepts them in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    Host(String),
    Network(String),
    Router(String),
    Interface(InterfaceKey),
    Route(RouteKey),
    Port(PortKey),
    FloatingIp(Ipv4Addr),
}

/// Why a key or a value is not a record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("key outside the schema: {0}")]
    Key(String),
    #[error("value is not a valid {kind} record: {reason}")]
    Value { kind: &'static str, reason: String },
    #[error("value of {0} bytes is over the limit of {VALUE_BYTES_MAX}")]
    TooLarge(usize),
}

/// Refuses a key segment that cannot be a name (the model checks names fully).
fn segment(s: &str, whole: &str) -> Result<String, RecordError> {
    if s.is_empty() || s.len() > 255 {
        return Err(RecordError::Key(whole.into()));
    }
    Ok(s.to_string())
}

impl Key {
    /// Parses a key relative to `<prefix>config/`.
    pub fn parse(rel: &str) -> Result<Key, RecordError> {
        let bad = || RecordError::Key(rel.to_string());
        if rel.len() > KEY_BYTES_MAX {
            return Err(bad());
        }
        let (kind, rest) = rel.split_once('/').ok_or_else(bad)?;
        let two = || -> Result<(String, String), RecordError> {
            let (a, b) = rest.split_once('/').ok_or_else(bad)?;
            Ok((segment(a, rel)?, b.to_string()))
        };
        let ip = |s: &str| s.parse::<Ipv4Addr>().map_err(|_| bad());
        Ok(match kind {
            "hosts" if !rest.contains('/') => Key::Host(segment(rest, rel)?),
            "networks" if !rest.contains('/') => Key::Network(segment(rest, rel)?),
            "routers" if !rest.contains('/') => Key::Router(segment(rest, rel)?),
            "interfaces" => {
                let (router, network) = two()?;
                if network.contains('/') {
                    return Err(bad());
                }
                Key::Interface((router, segment(&network, rel)?))
            }
            "routes" => {
                let (router, prefix) = two()?;
                let prefix = prefix.parse::<Prefix>().map_err(|_| bad())?;
                Key::Route((router, prefix))
            }
            "ports" => {
                let (network, addr) = two()?;
                Key::Port((network, ip(&addr)?))
            }
            "floating_ips" if !rest.contains('/') => Key::FloatingIp(ip(rest)?),
            _ => return Err(bad()),
        })
    }

    /// The key relative to `<prefix>config/`.
    pub fn path(&self) -> String {
        match self {
            Key::Host(n) => format!("hosts/{n}"),
            Key::Network(n) => format!("networks/{n}"),
            Key::Router(n) => format!("routers/{n}"),
            Key::Interface((r, n)) => format!("interfaces/{r}/{n}"),
            Key::Route((r, p)) => format!("routes/{r}/{p}"),
            Key::Port((n, ip)) => format!("ports/{n}/{ip}"),
            Key::FloatingIp(ip) => format!("floating_ips/{ip}"),
        }
    }

    /// The kind of object, as errors name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Key::Host(_) => "host",
            Key::Network(_) => "network",
            Key::Router(_) => "router",
            Key::Interface(_) => "interface",
            Key::Route(_) => "route",
            Key::Port(_) => "port",
            Key::FloatingIp(_) => "floating IP",
        }
    }

    /// The change that removes this object from a host's model (`Host`: the peer).
    pub fn delete(&self) -> Change {
        match self.clone() {
            Key::Host(name) => Change::DelPeer { name },
            Key::Network(name) => Change::DelNetwork { name },
            Key::Router(name) => Change::DelRouter { name },
            Key::Interface((router, network)) => Change::DelInterface { router, network },
            Key::Route((router, prefix)) => Change::DelRoute { router, prefix },
            Key::Port((network, ip)) => Change::DelPort { network, ip },
            Key::FloatingIp(ip) => Change::DelFloatingIp { ip },
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// `hosts/<name>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostValue {
    pub dvr_mac: MacAddr,
    pub vtep: Ipv4Addr,
}

/// `networks/<name>`. Which local ports a network attaches to is each host's own setting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkValue {
    pub vni: u32,
}

/// `routers/<name>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterValue {
    #[serde(default)]
    pub large: bool,
}

/// `interfaces/<router>/<network>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterfaceValue {
    pub address: InterfaceAddr,
    pub mac: MacAddr,
}

/// `routes/<router>/<prefix>`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteValue {
    pub via: Ipv4Addr,
}

/// `ports/<network>/<ip>`: an instance port (or a SNAT port) and the host it runs on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortValue {
    pub mac: MacAddr,
    pub host: String,
}

/// `floating_ips/<ip>`: the floating IP stands for the instance port with fixed IP `port` on
/// one of `router`'s networks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FloatingIpValue {
    pub router: String,
    pub port: Ipv4Addr,
}

/// One routing record: the model's spec of the object its key names. A host record is this
/// host's identity on that host and a peer on every other.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Host(HostSpec),
    Network(NetworkSpec),
    Router(RouterSpec),
    Interface(InterfaceSpec),
    Route(RouteSpec),
    Port(InstancePortSpec),
    FloatingIp(FloatingIpSpec),
}

fn value<T: for<'de> Deserialize<'de>>(kind: &'static str, bytes: &[u8]) -> Result<T, RecordError> {
    serde_json::from_slice(bytes).map_err(|e| RecordError::Value {
        kind,
        reason: e.to_string(),
    })
}

impl Record {
    /// Joins a key and its value into a record. Only the form is checked here; the model
    /// validates the object when a host applies it.
    pub fn parse(key: &Key, bytes: &[u8]) -> Result<Record, RecordError> {
        if bytes.len() > VALUE_BYTES_MAX {
            return Err(RecordError::TooLarge(bytes.len()));
        }
        let kind = key.kind();
        Ok(match key.clone() {
            Key::Host(name) => {
                let v: HostValue = value(kind, bytes)?;
                Record::Host(HostSpec {
                    name,
                    dvr_mac: v.dvr_mac,
                    vtep: v.vtep,
                })
            }
            Key::Network(name) => {
                let v: NetworkValue = value(kind, bytes)?;
                Record::Network(NetworkSpec {
                    name,
                    vni: v.vni,
                    ports: Vec::new(),
                })
            }
            Key::Router(name) => {
                let v: RouterValue = value(kind, bytes)?;
                Record::Router(RouterSpec {
                    name,
                    large: v.large,
                })
            }
            Key::Interface((router, network)) => {
                let v: InterfaceValue = value(kind, bytes)?;
                Record::Interface(InterfaceSpec {
                    router,
                    network,
                    address: v.address,
                    mac: v.mac,
                })
            }
            Key::Route((router, prefix)) => {
                let v: RouteValue = value(kind, bytes)?;
                Record::Route(RouteSpec {
                    router,
                    prefix,
                    via: v.via,
                })
            }
            Key::Port((network, ip)) => {
                let v: PortValue = value(kind, bytes)?;
                Record::Port(InstancePortSpec {
                    network,
                    ip,
                    mac: v.mac,
                    host: v.host,
                    port: None,
                })
            }
            Key::FloatingIp(ip) => {
                let v: FloatingIpValue = value(kind, bytes)?;
                Record::FloatingIp(FloatingIpSpec {
                    ip,
                    router: v.router,
                    port: v.port,
                })
            }
        })
    }

    /// The key this record is stored under.
    pub fn key(&self) -> Key {
        match self {
            Record::Host(h) => Key::Host(h.name.clone()),
            Record::Network(n) => Key::Network(n.name.clone()),
            Record::Router(r) => Key::Router(r.name.clone()),
            Record::Interface(i) => Key::Interface((i.router.clone(), i.network.clone())),
            Record::Route(r) => Key::Route((r.router.clone(), r.prefix)),
            Record::Port(p) => Key::Port((p.network.clone(), p.ip)),
            Record::FloatingIp(f) => Key::FloatingIp(f.ip),
        }
    }

    /// The value stored under the key, as JSON.
    pub fn value(&self) -> String {
        let json = match self {
            Record::Host(h) => serde_json::to_string(&HostValue {
                dvr_mac: h.dvr_mac,
                vtep: h.vtep,
            }),
            Record::Network(n) => serde_json::to_string(&NetworkValue { vni: n.vni }),
            Record::Router(r) => serde_json::to_string(&RouterValue { large: r.large }),
            Record::Interface(i) => serde_json::to_string(&InterfaceValue {
                address: i.address,
                mac: i.mac,
            }),
            Record::Route(r) => serde_json::to_string(&RouteValue { via: r.via }),
            Record::Port(p) => serde_json::to_string(&PortValue {
                mac: p.mac,
                host: p.host.clone(),
            }),
            Record::FloatingIp(f) => serde_json::to_string(&FloatingIpValue {
                router: f.router.clone(),
                port: f.port,
            }),
        };
        json.unwrap_or_default()
    }

    /// The change that puts this record into a host's model (a host record: as a peer).
    pub fn upsert(&self) -> Change {
        match self.clone() {
            Record::Host(h) => Change::AddPeer {
                spec: PeerSpec {
                    name: h.name,
                    dvr_mac: h.dvr_mac,
                    vtep: h.vtep,
                },
                replace: true,
            },
            Record::Network(spec) => Change::AddNetwork {
                spec,
                replace: true,
            },
            Record::Router(spec) => Change::AddRouter {
                spec,
                replace: true,
            },
            Record::Interface(spec) => Change::AddInterface {
                spec,
                replace: true,
            },
            Record::Route(spec) => Change::AddRoute {
                spec,
                replace: true,
            },
            Record::Port(spec) => Change::AddPort {
                spec,
                replace: true,
            },
            Record::FloatingIp(spec) => Change::AddFloatingIp {
                spec,
                replace: true,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_kind_round_trips() {
        for k in [
            "hosts/host-a",
            "networks/blue",
            "routers/tenant1",
            "interfaces/tenant1/blue",
            "routes/tenant1/0.0.0.0/0",
            "routes/tenant1/10.9.0.0/16",
            "ports/blue/10.0.1.5",
            "floating_ips/203.0.113.10",
        ] {
            assert_eq!(Key::parse(k).unwrap().path(), k);
        }
    }

    #[test]
    fn keys_outside_the_schema_are_refused() {
        for k in [
            "",
            "hosts",
            "hosts/",
            "hosts/a/b",
            "bogus/x",
            "ports/blue/10.0.1",
            "ports/blue",
            "routes/tenant1/10.9.0.0",
            "routes/tenant1/10.9.0.1/16",
            "interfaces/tenant1/blue/x",
            "fips/203.0.113.10",
            "floating_ips/",
            "floating_ips/203.0.113",
            "floating_ips/203.0.113.10/32",
            "floating_ips/tenant1",
        ] {
            assert!(Key::parse(k).is_err(), "{k}");
        }
        assert!(Key::parse(&format!("hosts/{}", "a".repeat(600))).is_err());
    }

    #[test]
    fn a_value_joins_its_key_into_the_models_spec() {
        let key = Key::parse("ports/blue/10.0.1.5").unwrap();
        let rec =
            Record::parse(&key, br#"{"mac": "fa:16:3e:aa:01:05", "host": "host-a"}"#).unwrap();
        let Record::Port(p) = &rec else {
            panic!("{rec:?}")
        };
        assert_eq!((p.network.as_str(), p.host.as_str()), ("blue", "host-a"));
        assert_eq!(rec.key(), key);
        assert_eq!(Record::parse(&key, rec.value().as_bytes()).unwrap(), rec);
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let key = Key::parse("ports/blue/10.0.1.5").unwrap();
        for v in [
            &br#"{"mac": "zz", "host": "a"}"#[..],
            br#"{"mac": "fa:16:3e:aa:01:05"}"#,
            br#"{"mac": "fa:16:3e:aa:01:05", "host": "a", "extra": 1}"#,
            b"{not json",
            b"",
        ] {
            let e = Record::parse(&key, v).unwrap_err();
            assert!(matches!(e, RecordError::Value { kind: "port", .. }), "{e}");
        }
        let huge = vec![b' '; VALUE_BYTES_MAX + 1];
        assert!(matches!(
            Record::parse(&key, &huge),
            Err(RecordError::TooLarge(_))
        ));
    }

    #[test]
    fn a_floating_ip_joins_its_address_from_the_key() {
        let key = Key::parse("floating_ips/203.0.113.10").unwrap();
        let rec = Record::parse(&key, br#"{"router": "tenant1", "port": "10.0.1.5"}"#).unwrap();
        let Record::FloatingIp(f) = &rec else {
            panic!("{rec:?}")
        };
        assert_eq!(f.ip, Ipv4Addr::new(203, 0, 113, 10));
        assert_eq!(
            (f.router.as_str(), f.port),
            ("tenant1", Ipv4Addr::new(10, 0, 1, 5))
        );
        assert_eq!(rec.key(), key);
        assert_eq!(Record::parse(&key, rec.value().as_bytes()).unwrap(), rec);
        assert!(matches!(
            rec.upsert(),
            Change::AddFloatingIp { replace: true, .. }
        ));
        assert_eq!(key.delete(), Change::DelFloatingIp { ip: f.ip });
    }

    #[test]
    fn bad_floating_ip_values_say_what_is_wrong() {
        let key = Key::parse("floating_ips/203.0.113.10").unwrap();
        for v in [
            &br#"{"router": "tenant1"}"#[..],
            br#"{"port": "10.0.1.5"}"#,
            br#"{"router": "tenant1", "port": "10.0.1"}"#,
            br#"{"router": "tenant1", "port": "10.0.1.5", "ip": "203.0.113.10"}"#,
            br#"{"router": 1, "port": "10.0.1.5"}"#,
            b"[]",
        ] {
            let e = Record::parse(&key, v).unwrap_err();
            assert!(
                matches!(
                    e,
                    RecordError::Value {
                        kind: "floating IP",
                        ..
                    }
                ),
                "{e}"
            );
        }
        let mut huge = br#"{"router": "tenant1", "port": "10.0.1.5"}"#.to_vec();
        huge.resize(VALUE_BYTES_MAX + 1, b' ');
        assert!(matches!(
            Record::parse(&key, &huge),
            Err(RecordError::TooLarge(_))
        ));
    }

    #[test]
    fn floating_ips_sort_after_the_ports_they_stand_for() {
        let fip = Key::parse("floating_ips/1.1.1.1").unwrap();
        for k in [
            "hosts/z",
            "routers/z",
            "interfaces/z/z",
            "ports/z/255.255.255.254",
        ] {
            assert!(Key::parse(k).unwrap() < fip, "{k}");
        }
    }
}
