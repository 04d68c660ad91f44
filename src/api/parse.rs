//! Parsing a request line: size, JSON, version, op, and every field checked by name, so that an
//! error says exactly what was wrong. Nothing here depends on the router's state; the model's
//! validation runs on the control thread.

use std::net::Ipv4Addr;
use std::time::Duration;

use router_core::lpm::Prefix;
use router_core::model::{
    Change, ExternalSpec, FloatingIpSpec, HostSpec, InstancePortSpec, InterfaceAddr, InterfaceSpec,
    MacAddr, NetworkSpec, PeerSpec, RouteSpec, RouterSpec,
};
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::{
    ApiError, ErrorCode, Request, TraceRequest, API_VERSION, BATCH_CHANGES_MAX, HIST_TICKS_MAX,
    REQUEST_BYTES_MAX, TRACE_TIMEOUT_MAX,
};

/// A request as described in `docs/api.md`: its name, its fields, whether it may be part of a
/// batch.
#[derive(Clone, Copy, Debug)]
pub struct OpInfo {
    pub name: &'static str,
    pub fields: &'static [&'static str],
    /// An add, delete or set: allowed in a batch.
    pub change: bool,
}

const fn op(name: &'static str, fields: &'static [&'static str], change: bool) -> OpInfo {
    OpInfo {
        name,
        fields,
        change,
    }
}

/// Every request.
pub const OPS: &[OpInfo] = &[
    op("version", &[], false),
    op("log.show", &[], false),
    op("log.set", &["level"], false),
    op("host.show", &[], false),
    op("host.set", &["name", "dvr_mac", "vtep"], true),
    op("peer.add", &["name", "dvr_mac", "vtep", "replace"], true),
    op("peer.del", &["name"], true),
    op("peer.list", &[], false),
    op("network.add", &["name", "vni", "ports", "replace"], true),
    op("network.del", &["name"], true),
    op("network.list", &[], false),
    op("router.add", &["name", "large", "replace"], true),
    op("router.del", &["name"], true),
    op("router.list", &[], false),
    op(
        "interface.add",
        &["router", "network", "address", "mac", "replace"],
        true,
    ),
    op("interface.del", &["router", "network"], true),
    op("interface.list", &["router"], false),
    op("route.add", &["router", "prefix", "via", "replace"], true),
    op("route.del", &["router", "prefix"], true),
    op("route.list", &["router"], false),
    op("route.lookup", &["router", "ip"], false),
    op(
        "port.add",
        &["network", "ip", "mac", "host", "port", "replace"],
        true,
    ),
    op("port.del", &["network", "ip"], true),
    op("port.list", &["network"], false),
    op("neigh.list", &["router"], false),
    op("external.set", &["address", "gateway"], true),
    op("external.del", &[], true),
    op("external.show", &[], false),
    op("fip.add", &["ip", "router", "port", "replace"], true),
    op("fip.del", &["ip"], true),
    op("fip.list", &["router"], false),
    op("batch", &["changes"], false),
    op("stats.show", &[], false),
    op("stats.reset", &[], false),
    op("hist.show", &["full", "ticks"], false),
    op("hist.reset", &[], false),
    op("icmp.set", &["rate_per_s", "burst"], false),
    op("fleet.show", &[], false),
    op("config.reload", &[], false),
    op(
        "trace",
        &["count", "timeout_ms", "port", "src", "dst", "protocol"],
        false,
    ),
];

/// The names of every request, for messages and help.
pub fn op_names() -> impl Iterator<Item = &'static str> {
    OPS.iter().map(|o| o.name)
}

/// Fields of the request envelope.
const ENVELOPE_FIELDS: &[&str] = &["v", "id", "op", "args"];
/// Fields of one change of a batch.
const CHANGE_FIELDS: &[&str] = &["op", "args"];
/// Packets a trace captures unless told.
const TRACE_COUNT_DEFAULT: u32 = 10;
const TRACE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
/// Points per half distance of a full distribution unless told.
const HIST_TICKS_DEFAULT: u32 = 5;

/// A parsed request line: the client's id (when it could be read) and the request or why it
/// was refused.
#[derive(Debug)]
pub struct Envelope {
    pub id: Option<u64>,
    pub request: Result<Request, ApiError>,
}

/// Parses one request line (without its newline).
pub fn parse(line: &[u8]) -> Envelope {
    let mut id = None;
    let request = parse_envelope(line, &mut id);
    Envelope { id, request }
}

fn parse_envelope(line: &[u8], id: &mut Option<u64>) -> Result<Request, ApiError> {
    if line.len() > REQUEST_BYTES_MAX {
        return Err(too_large(line.len()));
    }
    let text = std::str::from_utf8(line).map_err(|e| {
        ApiError::new(
            ErrorCode::Malformed,
            format!("the request is not UTF-8: {e}"),
        )
    })?;
    let mut top = match serde_json::from_str::<Object<'_>>(text) {
        Ok(o) => Fields {
            context: "request",
            items: o.0,
        },
        Err(e) => {
            return Err(ApiError::new(
                ErrorCode::Malformed,
                format!("the request is not one JSON object: {}", clean(&e)),
            ))
        }
    };
    top.check_known(ENVELOPE_FIELDS)?;
    *id = top.opt::<u64>("id")?;
    let unsupported =
        |message| ApiError::new(ErrorCode::UnsupportedVersion, message).for_field("v");
    match top.opt::<serde_json::Value>("v")? {
        Some(v) if v.as_u64() == Some(u64::from(API_VERSION)) => {}
        Some(v) => {
            return Err(unsupported(format!(
                "API version {v} is not supported (this daemon speaks version {API_VERSION})"
            )))
        }
        None => {
            return Err(unsupported(format!(
                "missing field `v`: every request names the API version ({API_VERSION})"
            )))
        }
    }
    let op: String = top.req("op")?;
    let args = top.raw("args");
    parse_op(&op, args)
}

fn too_large(len: usize) -> ApiError {
    ApiError::new(
        ErrorCode::TooLarge,
        format!("the request is {len} bytes: at most {REQUEST_BYTES_MAX} (split a large batch)"),
    )
}

fn op_info(op: &str) -> Result<&'static OpInfo, ApiError> {
    OPS.iter().find(|o| o.name == op).ok_or_else(|| {
        let ops = op_names().collect::<Vec<_>>().join(", ");
        let message = format!("unknown op `{op}` (expected one of: {ops})");
        ApiError::new(ErrorCode::UnknownOp, message).for_field("op")
    })
}

/// Parses the arguments of `op`.
fn parse_op(op: &str, args: Option<&RawValue>) -> Result<Request, ApiError> {
    let info = op_info(op)?;
    let mut f = Fields::of(info, args)?;
    if info.change {
        return Ok(Request::Change(change(info.name, &mut f)?));
    }
    let request = match info.name {
        "version" => Request::Version,
        "log.show" => Request::LogShow,
        "log.set" => {
            let level: String = f.req("level")?;
            if let Err(e) = tracing_subscriber::EnvFilter::try_new(&level) {
                return Err(ApiError::field(
                    "level",
                    format!("`{level}` is not a log filter: {e}"),
                ));
            }
            Request::LogSet { level }
        }
        "host.show" => Request::HostShow,
        "peer.list" => Request::PeerList,
        "network.list" => Request::NetworkList,
        "router.list" => Request::RouterList,
        "interface.list" => Request::InterfaceList {
            router: f.opt("router")?,
        },
        "route.list" => Request::RouteList {
            router: f.opt("router")?,
        },
        "route.lookup" => Request::RouteLookup {
            router: f.req("router")?,
            ip: f.req("ip")?,
        },
        "port.list" => Request::PortList {
            network: f.opt("network")?,
        },
        "neigh.list" => Request::NeighList {
            router: f.opt("router")?,
        },
        "external.show" => Request::ExternalShow,
        "fip.list" => Request::FipList {
            router: f.opt("router")?,
        },
        "batch" => Request::Batch(batch(&mut f)?),
        "stats.show" => Request::StatsShow,
        "fleet.show" => Request::FleetShow,
        "stats.reset" => Request::StatsReset,
        "hist.show" => {
            let full = f.opt("full")?.unwrap_or(false);
            let ticks = f.opt("ticks")?.unwrap_or(HIST_TICKS_DEFAULT);
            if !(1..=HIST_TICKS_MAX).contains(&ticks) {
                return Err(ApiError::field(
                    "ticks",
                    format!("{ticks} is not in 1..={HIST_TICKS_MAX}"),
                ));
            }
            Request::HistShow { full, ticks }
        }
        "hist.reset" => Request::HistReset,
        "config.reload" => Request::ConfigReload,
        "icmp.set" => Request::IcmpSet {
            rate_per_s: f.req("rate_per_s")?,
            burst: f.req("burst")?,
        },
        "trace" => Request::Trace(trace(&mut f)?),
        other => {
            return Err(ApiError::new(
                ErrorCode::Internal,
                format!("op `{other}` is listed but not handled"),
            ))
        }
    };
    Ok(request)
}

/// The change an add, delete or set op describes.
fn change(op: &str, f: &mut Fields<'_>) -> Result<Change, ApiError> {
    match op {
        "host.set" => Ok(Change::SetHost(host(f)?)),
        "peer.add" => add(f, peer, |spec, replace| Change::AddPeer { spec, replace }),
        "network.add" => add(f, network, |spec, replace| Change::AddNetwork {
            spec,
            replace,
        }),
        "router.add" => add(f, router, |spec, replace| Change::AddRouter {
            spec,
            replace,
        }),
        "interface.add" => add(f, interface, |spec, replace| Change::AddInterface {
            spec,
            replace,
        }),
        "route.add" => add(f, route, |spec, replace| Change::AddRoute { spec, replace }),
        "port.add" => add(f, port, |spec, replace| Change::AddPort { spec, replace }),
        "external.set" => Ok(Change::SetExternal(ExternalSpec {
            address: f.req::<InterfaceAddr>("address")?,
            gateway: f.req("gateway")?,
        })),
        "fip.add" => add(f, fip, |spec, replace| Change::AddFloatingIp {
            spec,
            replace,
        }),
        _ => deletion(op, f),
    }
}

/// An add: the object's fields read by `spec`, then `replace` (false when absent).
fn add<S>(
    f: &mut Fields<'_>,
    spec: fn(&mut Fields<'_>) -> Result<S, ApiError>,
    change: fn(S, bool) -> Change,
) -> Result<Change, ApiError> {
    let spec = spec(f)?;
    let replace = f.opt::<bool>("replace")?.unwrap_or_default();
    Ok(change(spec, replace))
}

/// The change a delete op describes.
fn deletion(op: &str, f: &mut Fields<'_>) -> Result<Change, ApiError> {
    let name = |f: &mut Fields<'_>| f.req::<String>("name");
    Ok(match op {
        "peer.del" => Change::DelPeer { name: name(f)? },
        "network.del" => Change::DelNetwork { name: name(f)? },
        "router.del" => Change::DelRouter { name: name(f)? },
        "interface.del" => Change::DelInterface {
            router: f.req("router")?,
            network: f.req("network")?,
        },
        "route.del" => Change::DelRoute {
            router: f.req("router")?,
            prefix: f.req::<Prefix>("prefix")?,
        },
        "port.del" => Change::DelPort {
            network: f.req("network")?,
            ip: f.req("ip")?,
        },
        "external.del" => Change::DelExternal,
        "fip.del" => Change::DelFloatingIp { ip: f.req("ip")? },
        other => {
            return Err(ApiError::new(
                ErrorCode::Internal,
                format!("change op `{other}` is listed but not handled"),
            ))
        }
    })
}

fn host(f: &mut Fields<'_>) -> Result<HostSpec, ApiError> {
    Ok(HostSpec {
        name: f.req("name")?,
        dvr_mac: mac(f, "dvr_mac")?,
        vtep: f.req("vtep")?,
    })
}

/// A peer has the fields of this host.
fn peer(f: &mut Fields<'_>) -> Result<PeerSpec, ApiError> {
    let HostSpec {
        name,
        dvr_mac,
        vtep,
    } = host(f)?;
    Ok(PeerSpec {
        name,
        dvr_mac,
        vtep,
    })
}

fn network(f: &mut Fields<'_>) -> Result<NetworkSpec, ApiError> {
    Ok(NetworkSpec {
        name: f.req("name")?,
        vni: f.req("vni")?,
        ports: f.opt("ports")?.unwrap_or_default(),
    })
}

fn router(f: &mut Fields<'_>) -> Result<RouterSpec, ApiError> {
    Ok(RouterSpec {
        name: f.req("name")?,
        large: f.opt("large")?.unwrap_or(false),
    })
}

fn interface(f: &mut Fields<'_>) -> Result<InterfaceSpec, ApiError> {
    Ok(InterfaceSpec {
        router: f.req("router")?,
        network: f.req("network")?,
        address: f.req::<InterfaceAddr>("address")?,
        mac: mac(f, "mac")?,
    })
}

fn route(f: &mut Fields<'_>) -> Result<RouteSpec, ApiError> {
    Ok(RouteSpec {
        router: f.req("router")?,
        prefix: f.req::<Prefix>("prefix")?,
        via: f.req("via")?,
    })
}

fn fip(f: &mut Fields<'_>) -> Result<FloatingIpSpec, ApiError> {
    Ok(FloatingIpSpec {
        ip: f.req("ip")?,
        router: f.req("router")?,
        port: f.req("port")?,
    })
}

fn port(f: &mut Fields<'_>) -> Result<InstancePortSpec, ApiError> {
    Ok(InstancePortSpec {
        network: f.req("network")?,
        ip: f.req("ip")?,
        mac: mac(f, "mac")?,
        host: f.req("host")?,
        port: f.opt("port")?,
    })
}

/// A MAC address field: any syntactically valid address parses; one that no interface,
/// instance or host may have (multicast, broadcast, all zeroes) is refused by name here.
fn mac(f: &mut Fields<'_>, name: &'static str) -> Result<MacAddr, ApiError> {
    let mac: MacAddr = f.req(name)?;
    if !mac.is_assignable() {
        let kind = if mac.to_u64() == 0 {
            "all zeroes"
        } else {
            "a multicast or broadcast address"
        };
        return Err(ApiError::field(
            name,
            format!("{mac} is {kind}: a unicast MAC address is required"),
        ));
    }
    Ok(mac)
}

fn batch(f: &mut Fields<'_>) -> Result<Vec<Change>, ApiError> {
    let Some(raw) = f.raw("changes") else {
        return Err(ApiError::field(
            "changes",
            "missing field `changes` (a list of {\"op\", \"args\"} objects)",
        ));
    };
    let items: Vec<&RawValue> = serde_json::from_str(raw.get()).map_err(|e| {
        ApiError::field(
            "changes",
            format!("expected a list of changes: {}", clean(&e)),
        )
    })?;
    if items.len() > BATCH_CHANGES_MAX {
        let message = format!(
            "the batch has {} changes: at most {BATCH_CHANGES_MAX}",
            items.len()
        );
        return Err(ApiError::new(ErrorCode::TooLarge, message).for_field("changes"));
    }
    let mut changes = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        changes.push(batch_item(item).map_err(|e| e.at(i))?);
    }
    Ok(changes)
}

fn batch_item(item: &RawValue) -> Result<Change, ApiError> {
    let mut f = match serde_json::from_str::<Object<'_>>(item.get()) {
        Ok(o) => Fields {
            context: "change",
            items: o.0,
        },
        Err(e) => {
            return Err(ApiError::field(
                "changes",
                format!("a change is an {{\"op\", \"args\"}} object: {}", clean(&e)),
            ))
        }
    };
    f.check_known(CHANGE_FIELDS)?;
    let op: String = f.req("op")?;
    let args = f.raw("args");
    let info = op_info(&op)?;
    if !info.change {
        return Err(ApiError::field(
            "op",
            format!("`{op}` is not a change: a batch holds adds, deletes and sets only"),
        ));
    }
    let mut fields = Fields::of(info, args)?;
    change(info.name, &mut fields)
}

fn trace(f: &mut Fields<'_>) -> Result<TraceRequest, ApiError> {
    let count: u32 = f.opt("count")?.unwrap_or(TRACE_COUNT_DEFAULT);
    if !(1..=lcore_workers::TRACE_PACKETS_MAX).contains(&count) {
        return Err(ApiError::field(
            "count",
            format!("{count} is not in 1..={}", lcore_workers::TRACE_PACKETS_MAX),
        ));
    }
    let timeout_ms: u64 = f.opt("timeout_ms")?.unwrap_or(TRACE_TIMEOUT_MS_DEFAULT);
    let max_ms = TRACE_TIMEOUT_MAX.as_millis();
    if timeout_ms == 0 || u128::from(timeout_ms) > max_ms {
        return Err(ApiError::field(
            "timeout_ms",
            format!("{timeout_ms} is not in 1..={max_ms}"),
        ));
    }
    let protocol = match f.opt::<serde_json::Value>("protocol")? {
        None => None,
        Some(v) => Some(protocol(&v)?),
    };
    Ok(TraceRequest {
        count,
        timeout: Duration::from_millis(timeout_ms),
        port: f.opt("port")?,
        src: f.opt::<Ipv4Addr>("src")?,
        dst: f.opt::<Ipv4Addr>("dst")?,
        protocol,
    })
}

/// An IPv4 protocol by name (`icmp`, `tcp`, `udp`) or number.
pub fn protocol(v: &serde_json::Value) -> Result<u8, ApiError> {
    let bad = || {
        ApiError::field(
            "protocol",
            format!("{v} is not a protocol (icmp, tcp, udp or a number 0..=255)"),
        )
    };
    match v {
        serde_json::Value::Number(n) => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(bad),
        serde_json::Value::String(s) => match s.as_str() {
            "icmp" => Ok(1),
            "tcp" => Ok(6),
            "udp" => Ok(17),
            other => other.parse().map_err(|_| bad()),
        },
        _ => Err(bad()),
    }
}

/// The fields of one JSON object, in order, their values left unparsed. A key given twice is
/// refused.
struct Object<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Object<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut items: Vec<(String, &'a RawValue)> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if items.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!(
                            "field `{key}` is given twice"
                        )));
                    }
                    let value: &'de RawValue = map.next_value()?;
                    items.push((key, value));
                }
                Ok(Object(items))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// The fields of an object being parsed: each is taken by name, with its type checked.
struct Fields<'a> {
    context: &'static str,
    items: Vec<(String, &'a RawValue)>,
}

impl<'a> Fields<'a> {
    /// The arguments of `info` (absent arguments are an empty object), unknown fields refused.
    fn of(info: &OpInfo, args: Option<&'a RawValue>) -> Result<Self, ApiError> {
        let items = match args {
            None => Vec::new(),
            Some(raw) if raw.get().trim() == "null" => Vec::new(),
            Some(raw) => {
                serde_json::from_str::<Object<'_>>(raw.get())
                    .map_err(|e| {
                        ApiError::field(
                            "args",
                            format!(
                                "the arguments of `{}` must be a JSON object: {}",
                                info.name,
                                clean(&e)
                            ),
                        )
                    })?
                    .0
            }
        };
        let f = Fields {
            context: info.name,
            items,
        };
        f.check_known(info.fields)?;
        Ok(f)
    }

    fn check_known(&self, known: &[&str]) -> Result<(), ApiError> {
        if let Some((k, _)) = self
            .items
            .iter()
            .find(|(k, _)| !known.contains(&k.as_str()))
        {
            let expected = if known.is_empty() {
                "it takes none".to_string()
            } else {
                format!("expected {}", known.join(", "))
            };
            return Err(ApiError::field(
                k.clone(),
                format!("unknown field `{k}` in {} ({expected})", self.context),
            ));
        }
        Ok(())
    }

    /// The raw value of `name`, taken out; `null` counts as absent.
    fn raw(&mut self, name: &str) -> Option<&'a RawValue> {
        let i = self.items.iter().position(|(k, _)| k == name)?;
        let (_, v) = self.items.swap_remove(i);
        (v.get().trim() != "null").then_some(v)
    }

    fn opt<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<Option<T>, ApiError> {
        let Some(raw) = self.raw(name) else {
            return Ok(None);
        };
        serde_json::from_str(raw.get()).map(Some).map_err(|e| {
            ApiError::field(
                name,
                format!("invalid `{name}` in {}: {}", self.context, clean(&e)),
            )
        })
    }

    fn req<T: DeserializeOwned>(&mut self, name: &'static str) -> Result<T, ApiError> {
        let context = self.context;
        self.opt(name)?
            .ok_or_else(|| ApiError::field(name, format!("missing field `{name}` in {context}")))
    }
}

/// A serde_json message without its " at line 1 column 42" suffix.
fn clean(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(line: &str) -> Result<Request, ApiError> {
        parse(line.as_bytes()).request
    }

    fn err(line: &str) -> ApiError {
        req(line).expect_err(line)
    }

    #[test]
    fn a_route_add() {
        let e = parse(br#"{"v":1,"id":7,"op":"route.add","args":{"router":"blue","prefix":"10.9.0.0/16","via":"10.0.2.254"}}"#);
        assert_eq!(e.id, Some(7));
        let Ok(Request::Change(Change::AddRoute { spec, replace })) = e.request else {
            panic!("{e:?}")
        };
        assert_eq!(spec.router, "blue");
        assert_eq!(spec.prefix.to_string(), "10.9.0.0/16");
        assert_eq!(spec.via, Ipv4Addr::new(10, 0, 2, 254));
        assert!(!replace);
        let Ok(Request::Change(Change::AddRoute { replace: true, .. })) = req(
            r#"{"v":1,"op":"route.add","args":{"router":"b","prefix":"0.0.0.0/0","via":"10.0.0.1","replace":true}}"#,
        ) else {
            panic!()
        };
    }

    #[test]
    fn every_change_op_parses() {
        let lines = [
            r#"{"op":"host.set","args":{"name":"a","dvr_mac":"fa:16:3f:00:00:0a","vtep":"192.0.2.10"}}"#,
            r#"{"op":"peer.add","args":{"name":"b","dvr_mac":"fa:16:3f:00:00:0b","vtep":"192.0.2.20"}}"#,
            r#"{"op":"peer.del","args":{"name":"b"}}"#,
            r#"{"op":"network.add","args":{"name":"blue","vni":1001,"ports":["blue"]}}"#,
            r#"{"op":"network.del","args":{"name":"blue"}}"#,
            r#"{"op":"router.add","args":{"name":"t1","large":true}}"#,
            r#"{"op":"router.del","args":{"name":"t1"}}"#,
            r#"{"op":"interface.add","args":{"router":"t1","network":"blue","address":"10.0.1.1/24","mac":"fa:16:3e:00:01:01"}}"#,
            r#"{"op":"interface.del","args":{"router":"t1","network":"blue"}}"#,
            r#"{"op":"route.del","args":{"router":"t1","prefix":"10.9.0.0/16"}}"#,
            r#"{"op":"port.add","args":{"network":"blue","ip":"10.0.1.5","mac":"fa:16:3e:aa:01:05","host":"a","port":"blue"}}"#,
            r#"{"op":"port.del","args":{"network":"blue","ip":"10.0.1.5"}}"#,
        ];
        let batch = format!(
            r#"{{"v":1,"op":"batch","args":{{"changes":[{}]}}}}"#,
            lines.join(",")
        );
        let Ok(Request::Batch(changes)) = req(&batch) else {
            panic!("{:?}", req(&batch))
        };
        assert_eq!(changes.len(), lines.len());
        assert!(
            matches!(changes[3], Change::AddNetwork { ref spec, replace: false } if spec.ports == ["blue"])
        );
        assert!(matches!(changes[5], Change::AddRouter { ref spec, .. } if spec.large));
        assert!(
            matches!(changes[10], Change::AddPort { ref spec, .. } if spec.port.as_deref() == Some("blue"))
        );
        for line in lines {
            let single = line.replacen('{', r#"{"v":1,"#, 1);
            assert!(matches!(req(&single), Ok(Request::Change(_))), "{single}");
        }
    }

    #[test]
    fn queries_parse_with_defaults() {
        assert_eq!(req(r#"{"v":1,"op":"stats.show"}"#), Ok(Request::StatsShow));
        assert_eq!(
            req(r#"{"v":1,"op":"stats.show","args":{}}"#),
            Ok(Request::StatsShow)
        );
        assert_eq!(
            req(r#"{"v":1,"op":"stats.show","args":null}"#),
            Ok(Request::StatsShow)
        );
        assert_eq!(
            req(r#"{"v":1,"op":"hist.show"}"#),
            Ok(Request::HistShow {
                full: false,
                ticks: 5
            })
        );
        assert_eq!(
            req(r#"{"v":1,"op":"route.list","args":{"router":null}}"#),
            Ok(Request::RouteList { router: None })
        );
        assert_eq!(
            req(r#"{"v":1,"op":"neigh.list","args":{"router":"t1"}}"#),
            Ok(Request::NeighList {
                router: Some("t1".into())
            })
        );
        let Ok(Request::Trace(t)) = req(
            r#"{"v":1,"op":"trace","args":{"count":3,"dst":"10.0.2.7","protocol":"icmp","port":"blue"}}"#,
        ) else {
            panic!()
        };
        assert_eq!(
            (t.count, t.protocol, t.port.as_deref()),
            (3, Some(1), Some("blue"))
        );
        assert_eq!(t.timeout, Duration::from_secs(10));
        let Ok(Request::Trace(t)) = req(r#"{"v":1,"op":"trace","args":{"protocol":17}}"#) else {
            panic!()
        };
        assert_eq!((t.count, t.protocol), (10, Some(17)));
        assert_eq!(
            req(r#"{"v":1,"op":"log.set","args":{"level":"debug"}}"#),
            Ok(Request::LogSet {
                level: "debug".into()
            })
        );
    }

    #[test]
    fn malformed_lines() {
        for line in [
            "",
            "{",
            "not json",
            "[1,2]",
            "42",
            r#"{"v":1,"op":"version"} trailing"#,
            "\"text\"",
        ] {
            assert_eq!(err(line).code, ErrorCode::Malformed, "{line:?}");
        }
        assert_eq!(
            parse(&[0xff, 0xfe]).request.unwrap_err().code,
            ErrorCode::Malformed
        );
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        let line = format!(r#"{{"v":1,"op":"version","args":{deep}}}"#);
        let e = err(&line);
        assert!(
            matches!(e.code, ErrorCode::Malformed | ErrorCode::InvalidArgument),
            "{e}"
        );
        let e = err(r#"{"v":1,"v":1,"op":"version"}"#);
        assert_eq!(e.code, ErrorCode::Malformed);
        assert!(e.message.contains("given twice"), "{e}");
    }

    #[test]
    fn version_is_required_and_checked() {
        let e = err(r#"{"op":"version"}"#);
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::UnsupportedVersion, Some("v"))
        );
        let e = err(r#"{"v":2,"op":"version"}"#);
        assert_eq!(e.code, ErrorCode::UnsupportedVersion);
        assert!(e.message.contains("version 2"), "{e}");
        assert_eq!(
            err(r#"{"v":"1","op":"version"}"#).code,
            ErrorCode::UnsupportedVersion
        );
    }

    #[test]
    fn unknown_op_and_fields_are_named() {
        let e = err(r#"{"v":1,"op":"route.frobnicate"}"#);
        assert_eq!(e.code, ErrorCode::UnknownOp);
        assert!(
            e.message.contains("route.frobnicate") && e.message.contains("route.add"),
            "{e}"
        );
        let e = err(
            r#"{"v":1,"op":"route.add","args":{"router":"b","prefix":"10.9.0.0/16","via":"10.0.2.254","metric":5}}"#,
        );
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidArgument, Some("metric"))
        );
        assert!(
            e.message.contains("unknown field `metric`") && e.message.contains("via"),
            "{e}"
        );
        let e = err(r#"{"v":1,"op":"version","extra":1}"#);
        assert_eq!(e.field.as_deref(), Some("extra"));
        let e = err(r#"{"v":1,"op":"stats.show","args":{"verbose":true}}"#);
        assert!(e.message.contains("takes none"), "{e}");
        let e = err(r#"{"v":1,"op":"route.add","args":{"router":"b","via":"10.0.2.254"}}"#);
        assert_eq!(e.field.as_deref(), Some("prefix"));
        assert!(e.message.contains("missing field `prefix`"), "{e}");
        let e = err(r#"{"v":1,"op":"route.add","args":[1]}"#);
        assert_eq!(e.field.as_deref(), Some("args"));
    }

    #[test]
    fn values_are_checked_by_field() {
        let e = err(
            r#"{"v":1,"op":"route.add","args":{"router":"b","prefix":"10.9.0.1/16","via":"10.0.2.254"}}"#,
        );
        assert_eq!(
            (e.code, e.field.as_deref()),
            (ErrorCode::InvalidArgument, Some("prefix"))
        );
        assert!(e.message.contains("host bits"), "{e}");
        let e = err(
            r#"{"v":1,"op":"route.add","args":{"router":"b","prefix":"10.9.0.0/16","via":"10.0.2"}}"#,
        );
        assert_eq!(e.field.as_deref(), Some("via"));
        let e = err(
            r#"{"v":1,"op":"port.add","args":{"network":"n","ip":"10.0.1.5","mac":"01:00:5e:00:00:01","host":"a"}}"#,
        );
        assert_eq!(e.field.as_deref(), Some("mac"));
        assert!(e.message.contains("multicast"), "{e}");
        let e = err(
            r#"{"v":1,"op":"port.add","args":{"network":"n","ip":"10.0.1.5","mac":"ff:ff:ff:ff:ff:ff","host":"a"}}"#,
        );
        assert_eq!(e.field.as_deref(), Some("mac"));
        let e = err(
            r#"{"v":1,"op":"interface.add","args":{"router":"r","network":"n","address":"10.0.1.1/24","mac":"00:00:00:00:00:00"}}"#,
        );
        assert!(e.message.contains("all zeroes"), "{e}");
        let e = err(
            r#"{"v":1,"op":"port.add","args":{"network":"n","ip":"10.0.1.5","mac":"fa:16:3e:zz:00:01","host":"a"}}"#,
        );
        assert_eq!(e.field.as_deref(), Some("mac"));
        let e = err(r#"{"v":1,"op":"network.add","args":{"name":"n","vni":"many"}}"#);
        assert_eq!(e.field.as_deref(), Some("vni"));
        let e = err(r#"{"v":1,"op":"network.add","args":{"name":"n","vni":-1}}"#);
        assert_eq!(e.field.as_deref(), Some("vni"));
        let e = err(
            r#"{"v":1,"op":"interface.add","args":{"router":"r","network":"n","address":"10.0.1.0/24","mac":"fa:16:3e:00:01:01"}}"#,
        );
        assert_eq!(e.field.as_deref(), Some("address"));
        assert_eq!(
            err(r#"{"v":1,"op":"hist.show","args":{"ticks":0}}"#)
                .field
                .as_deref(),
            Some("ticks")
        );
        assert_eq!(
            err(r#"{"v":1,"op":"trace","args":{"count":0}}"#)
                .field
                .as_deref(),
            Some("count")
        );
        assert_eq!(
            err(r#"{"v":1,"op":"trace","args":{"count":100000}}"#)
                .field
                .as_deref(),
            Some("count")
        );
        assert_eq!(
            err(r#"{"v":1,"op":"trace","args":{"timeout_ms":0}}"#)
                .field
                .as_deref(),
            Some("timeout_ms")
        );
        assert_eq!(
            err(r#"{"v":1,"op":"trace","args":{"protocol":"sctpx"}}"#)
                .field
                .as_deref(),
            Some("protocol")
        );
        assert_eq!(
            err(r#"{"v":1,"op":"trace","args":{"protocol":300}}"#)
                .field
                .as_deref(),
            Some("protocol")
        );
        assert_eq!(
            err(r#"{"v":1,"op":"log.set","args":{"level":"=[bad"}}"#)
                .field
                .as_deref(),
            Some("level")
        );
        assert_eq!(
            err(r#"{"v":1,"id":-3,"op":"version"}"#).field.as_deref(),
            Some("id")
        );
    }

    #[test]
    fn batches_are_checked_whole() {
        let e = err(
            r#"{"v":1,"op":"batch","args":{"changes":[{"op":"router.add","args":{"name":"a"}},{"op":"stats.show"}]}}"#,
        );
        assert_eq!((e.code, e.index), (ErrorCode::InvalidArgument, Some(1)));
        assert!(
            e.message.starts_with("change 1:") && e.message.contains("not a change"),
            "{e}"
        );
        let e = err(
            r#"{"v":1,"op":"batch","args":{"changes":[{"op":"router.add","args":{"name":"a","colour":1}}]}}"#,
        );
        assert_eq!((e.index, e.field.as_deref()), (Some(0), Some("colour")));
        let e = err(
            r#"{"v":1,"op":"batch","args":{"changes":[{"op":"router.add","args":{"name":"a"},"x":1}]}}"#,
        );
        assert_eq!(e.field.as_deref(), Some("x"));
        let e = err(r#"{"v":1,"op":"batch","args":{"changes":{"op":"router.add"}}}"#);
        assert_eq!(e.field.as_deref(), Some("changes"));
        assert_eq!(
            err(r#"{"v":1,"op":"batch"}"#).field.as_deref(),
            Some("changes")
        );
        assert_eq!(
            req(r#"{"v":1,"op":"batch","args":{"changes":[]}}"#),
            Ok(Request::Batch(vec![]))
        );
        let item = r#"{"op":"router.del","args":{"name":"a"}}"#;
        let many = vec![item; BATCH_CHANGES_MAX + 1].join(",");
        let e = err(&format!(
            r#"{{"v":1,"op":"batch","args":{{"changes":[{many}]}}}}"#
        ));
        assert_eq!(e.code, ErrorCode::TooLarge);
    }

    #[test]
    fn oversized_lines_are_refused_before_parsing() {
        let line = vec![b' '; REQUEST_BYTES_MAX + 1];
        assert_eq!(parse(&line).request.unwrap_err().code, ErrorCode::TooLarge);
    }

    #[test]
    fn every_op_is_handled() {
        for info in OPS {
            let line = format!(r#"{{"v":1,"op":"{}"}}"#, info.name);
            if let Err(e) = req(&line) {
                assert_ne!(e.code, ErrorCode::Internal, "{}: {e}", info.name);
                assert_ne!(e.code, ErrorCode::UnknownOp, "{}: {e}", info.name);
            }
        }
    }
}
