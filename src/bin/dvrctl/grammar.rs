//! The command grammar of `dvrctl`: `OBJECT VERB [ARGUMENT] [KEYWORD VALUE]...` in the
//! conventions of `ip`, turned into the control API's requests (one function per object).

use super::*;

/// Keyword arguments after the verb, `ip` style: `via 10.0.2.254 router tenant1 replace`.
pub(crate) struct Keywords<'a> {
    what: &'a str,
    words: Vec<&'a str>,
}

impl<'a> Keywords<'a> {
    fn new(what: &'a str, words: &'a [String]) -> Self {
        Keywords {
            what,
            words: words.iter().map(String::as_str).collect(),
        }
    }

    /// The value after `key`, taken out.
    fn opt(&mut self, key: &str) -> Result<Option<&'a str>, Failure> {
        let Some(i) = self.words.iter().position(|w| *w == key) else {
            return Ok(None);
        };
        let Some(value) = self.words.get(i + 1).copied() else {
            return Err(Failure::usage(format!(
                "{}: `{key}` needs a value",
                self.what
            )));
        };
        self.words.drain(i..=i + 1);
        Ok(Some(value))
    }

    fn req(&mut self, key: &str) -> Result<&'a str, Failure> {
        self.opt(key)?
            .ok_or_else(|| Failure::usage(format!("{}: `{key} VALUE` is required", self.what)))
    }

    /// Every value after `key` (a keyword that may repeat).
    fn all(&mut self, key: &str) -> Result<Vec<&'a str>, Failure> {
        let mut out = Vec::new();
        while let Some(v) = self.opt(key)? {
            out.push(v);
        }
        Ok(out)
    }

    /// True when the bare word `flag` is present, taken out.
    fn flag(&mut self, flag: &str) -> bool {
        let Some(i) = self.words.iter().position(|w| *w == flag) else {
            return false;
        };
        self.words.remove(i);
        true
    }

    /// The next positional word, taken out.
    fn positional(&mut self, name: &str) -> Result<&'a str, Failure> {
        if self.words.is_empty() {
            return Err(Failure::usage(format!("{}: {name} is required", self.what)));
        }
        Ok(self.words.remove(0))
    }

    /// Fails on anything left over.
    fn done(self) -> Result<(), Failure> {
        match self.words.first() {
            None => Ok(()),
            Some(w) => Err(Failure::usage(format!("{}: unexpected `{w}`", self.what))),
        }
    }
}

/// Splits the verb off, with a default for an empty command.
pub(crate) fn verb<'a>(w: &'a Words, default: &'a str) -> (&'a str, &'a [String]) {
    match w.words.split_first() {
        Some((v, rest)) => (v.as_str(), rest),
        None => (default, &[]),
    }
}

/// A JSON number from a word.
pub(crate) fn number(what: &str, key: &str, word: &str) -> Result<Value, Failure> {
    word.parse::<u64>()
        .map(Value::from)
        .map_err(|_| Failure::usage(format!("{what}: `{key}` takes a number, not `{word}`")))
}

/// The request a command asks for.
pub(crate) fn request(command: &Command) -> Result<Req, Failure> {
    match command {
        Command::Router(w) => router(w),
        Command::Network(w) => network(w),
        Command::Interface(w) => interface(w),
        Command::Route(w) => route(w),
        Command::Port(w) => port(w),
        Command::Fip(w) => fip(w),
        Command::External(w) => external(w),
        Command::Peer(w) => peer(w),
        Command::Host(w) => host(w),
        Command::Neigh(w) => neigh(w),
        Command::Stats(w) => simple(
            w,
            "stats",
            &[
                ("show", "stats.show"),
                ("list", "stats.show"),
                ("reset", "stats.reset"),
            ],
        ),
        Command::Hist { full, ticks, words } => hist(*full, *ticks, words),
        Command::Log(w) => log(w),
        Command::Icmp(w) => icmp(w),
        Command::Trace(w) => trace(w),
        Command::Version => Ok(req("version", Value::Null)),
        Command::Reload => Ok(req("config.reload", Value::Null)),
        Command::Fleet(w) => simple(
            w,
            "fleet",
            &[("status", "fleet.status"), ("show", "fleet.show")],
        ),
        Command::Call { op, args } => call(op, args.as_deref()),
        Command::Apply { .. } => Err(Failure::usage("apply is not a single request")),
    }
}

/// Parses `OBJECT VERB [ARGUMENT] [KEYWORD VALUE]...`: `build` turns the verb (`default` when
/// there is none) and the words after it into a request; a word it leaves is an error.
pub(crate) fn command(
    w: &Words,
    object: &str,
    default: &str,
    build: impl FnOnce(&str, &mut Keywords<'_>) -> Result<Req, Failure>,
) -> Result<Req, Failure> {
    let (v, rest) = verb(w, default);
    let mut k = Keywords::new(object, rest);
    let r = build(v, &mut k)?;
    k.done()?;
    Ok(r)
}

pub(crate) fn neigh(w: &Words) -> Result<Req, Failure> {
    command(w, "neigh", "show", |v, k| match v {
        "show" | "list" | "ls" => filtered(k, "neigh.list", "router"),
        "router" => {
            let name = k.positional("router NAME")?;
            Ok(req("neigh.list", json!({ "router": name })))
        }
        other => Err(unknown_verb("neigh", other, "show")),
    })
}

pub(crate) fn hist(full: bool, ticks: u32, words: &Words) -> Result<Req, Failure> {
    command(words, "hist", "show", |v, k| {
        let full = full || k.flag("full");
        match v {
            "show" => Ok(req("hist.show", json!({ "full": full, "ticks": ticks }))),
            "full" => Ok(req("hist.show", json!({ "full": true, "ticks": ticks }))),
            "reset" => Ok(req("hist.reset", Value::Null)),
            other => Err(unknown_verb("hist", other, "show, reset")),
        }
    })
}

pub(crate) fn log(w: &Words) -> Result<Req, Failure> {
    command(w, "log", "show", |v, k| match v {
        "show" => Ok(req("log.show", Value::Null)),
        "set" => Ok(req("log.set", json!({ "level": k.positional("LEVEL")? }))),
        other => Err(unknown_verb("log", other, "show, set")),
    })
}

pub(crate) fn icmp(w: &Words) -> Result<Req, Failure> {
    command(w, "icmp", "", |v, k| {
        if v != "set" {
            return Err(unknown_verb("icmp", v, "set"));
        }
        let rate = number("icmp", "rate", k.req("rate")?)?;
        let burst = number("icmp", "burst", k.req("burst")?)?;
        Ok(req(
            "icmp.set",
            json!({ "rate_per_s": rate, "burst": burst }),
        ))
    })
}

pub(crate) fn trace(w: &Words) -> Result<Req, Failure> {
    let mut k = Keywords::new("trace", &w.words);
    let mut args = json!({});
    if let Some(n) = k.opt("count")? {
        args["count"] = number("trace", "count", n)?;
    }
    if let Some(s) = k.opt("timeout")? {
        let secs: f64 = s
            .parse()
            .map_err(|_| Failure::usage(format!("trace: `timeout` takes seconds, not `{s}`")))?;
        args["timeout_ms"] = json!((secs * 1000.0).round() as u64);
    }
    for key in ["port", "src", "dst"] {
        args = with(args, key, k.opt(key)?);
    }
    if let Some(p) = k.opt("proto")?.or(k.opt("protocol")?) {
        args["protocol"] = p.parse::<u64>().map_or_else(|_| json!(p), Value::from);
    }
    k.done()?;
    Ok(req("trace", args))
}

/// Any request by its op, with its arguments as JSON.
pub(crate) fn call(op: &str, args: Option<&str>) -> Result<Req, Failure> {
    let info = dvr_router::api::OPS
        .iter()
        .find(|o| o.name == op)
        .ok_or_else(|| {
            Failure::usage(format!(
                "unknown op `{op}` (ops: {})",
                dvr_router::api::op_names().collect::<Vec<_>>().join(", ")
            ))
        })?;
    let args = match args {
        None => Value::Null,
        Some(a) => serde_json::from_str(a)
            .map_err(|e| Failure::usage(format!("call {op}: the arguments are not JSON: {e}")))?,
    };
    Ok(req(info.name, args))
}

pub(crate) fn unknown_verb(object: &str, verb: &str, expected: &str) -> Failure {
    Failure::usage(format!(
        "{object}: unknown command `{verb}` (expected {expected})"
    ))
}

/// Adds `key: value` to an object when the value is present.
pub(crate) fn with(mut args: Value, key: &str, value: Option<&str>) -> Value {
    if let (Some(v), Some(map)) = (value, args.as_object_mut()) {
        map.insert(key.to_string(), json!(v));
    }
    args
}

/// A command whose verbs take no arguments.
pub(crate) fn simple(
    w: &Words,
    what: &str,
    verbs: &[(&str, &'static str)],
) -> Result<Req, Failure> {
    let (v, rest) = verb(w, verbs[0].0);
    Keywords::new(what, rest).done()?;
    let op = verbs
        .iter()
        .find(|(name, _)| *name == v)
        .map(|(_, op)| *op)
        .ok_or_else(|| {
            unknown_verb(
                what,
                v,
                &verbs.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            )
        })?;
    Ok(req(op, Value::Null))
}

/// The request `op` with `args`, and `replace: true` when the bare word `replace` is given.
pub(crate) fn with_replace(mut args: Value, k: &mut Keywords<'_>, op: &'static str) -> Req {
    if k.flag("replace") {
        args["replace"] = json!(true);
    }
    req(op, args)
}

/// The positional argument of an object known by its name.
pub(crate) const NAME: Option<(&str, &str)> = Some(("name", "NAME"));

pub(crate) fn router(w: &Words) -> Result<Req, Failure> {
    named_object(w, "router", ["router.del", "router.list"], |k| {
        let mut args = take_args(k, NAME, &[])?;
        if k.flag("large") {
            args["large"] = json!(true);
        }
        Ok(with_replace(args, k, "router.add"))
    })
}

pub(crate) fn network(w: &Words) -> Result<Req, Failure> {
    named_object(w, "network", ["network.del", "network.list"], |k| {
        let mut args = take_args(k, NAME, &[])?;
        args["vni"] = number("network", "vni", k.req("vni")?)?;
        args["ports"] = json!(k.all("port")?);
        Ok(with_replace(args, k, "network.add"))
    })
}

/// The commands of an object known by its name: `add` (its request built by `add`),
/// `del NAME` and `list`, with `ops` the delete's and the listing's.
pub(crate) fn named_object(
    w: &Words,
    object: &str,
    [del, list]: [&'static str; 2],
    add: impl FnOnce(&mut Keywords<'_>) -> Result<Req, Failure>,
) -> Result<Req, Failure> {
    command(w, object, "list", |v, k| match v {
        "add" => add(k),
        "del" | "delete" => Ok(req(del, take_args(k, NAME, &[])?)),
        "list" | "show" | "ls" => Ok(req(list, Value::Null)),
        other => Err(unknown_verb(object, other, "add, del, list")),
    })
}

pub(crate) fn interface(w: &Words) -> Result<Req, Failure> {
    const KEY: &[(&str, &str)] = &[("router", "router"), ("network", "network")];
    const ADD: &[(&str, &str)] = &[
        ("router", "router"),
        ("network", "network"),
        ("address", "address"),
        ("mac", "mac"),
    ];
    command(w, "interface", "list", |v, k| match v {
        "add" => Ok(with_replace(take_args(k, None, ADD)?, k, "interface.add")),
        "del" | "delete" => Ok(req("interface.del", take_args(k, None, KEY)?)),
        "list" | "show" | "ls" => filtered(k, "interface.list", "router"),
        other => Err(unknown_verb("interface", other, "add, del, list")),
    })
}

pub(crate) fn route(w: &Words) -> Result<Req, Failure> {
    const PREFIX: Option<(&str, &str)> = Some(("prefix", "PREFIX"));
    const IN_ROUTER: &[(&str, &str)] = &[("router", "router")];
    command(w, "route", "list", |v, k| match v {
        "add" | "replace" => {
            let args = take_args(k, PREFIX, &[("via", "via"), ("router", "router")])?;
            let mut r = with_replace(args, k, "route.add");
            if v == "replace" {
                r.args["replace"] = json!(true);
            }
            Ok(r)
        }
        "del" | "delete" => Ok(req("route.del", take_args(k, PREFIX, IN_ROUTER)?)),
        "get" | "lookup" => {
            let args = take_args(k, Some(("ip", "IP")), IN_ROUTER)?;
            Ok(req("route.lookup", args))
        }
        "list" | "show" | "ls" => filtered(k, "route.list", "router"),
        other => Err(unknown_verb("route", other, "add, replace, del, list, get")),
    })
}

pub(crate) fn port(w: &Words) -> Result<Req, Failure> {
    const IP: Option<(&str, &str)> = Some(("ip", "IP"));
    const ADD: &[(&str, &str)] = &[("network", "network"), ("mac", "mac"), ("host", "host")];
    command(w, "port", "list", |v, k| match v {
        "add" => {
            let args = take_args(k, IP, ADD)?;
            let args = with(args, "port", k.opt("port")?);
            Ok(with_replace(args, k, "port.add"))
        }
        "del" | "delete" => Ok(req(
            "port.del",
            take_args(k, IP, &[("network", "network")])?,
        )),
        "list" | "show" | "ls" => filtered(k, "port.list", "network"),
        other => Err(unknown_verb("port", other, "add, del, list")),
    })
}

pub(crate) fn fip(w: &Words) -> Result<Req, Failure> {
    const IP: Option<(&str, &str)> = Some(("ip", "IP"));
    command(w, "fip", "list", |v, k| match v {
        "add" => {
            let args = take_args(k, IP, &[("port", "port"), ("router", "router")])?;
            Ok(with_replace(args, k, "fip.add"))
        }
        "del" | "delete" => Ok(req("fip.del", take_args(k, IP, &[])?)),
        "list" | "show" | "ls" => filtered(k, "fip.list", "router"),
        other => Err(unknown_verb("fip", other, "add, del, list")),
    })
}

pub(crate) fn external(w: &Words) -> Result<Req, Failure> {
    command(w, "external", "show", |v, k| match v {
        "set" => Ok(req(
            "external.set",
            take_args(k, None, &[("address", "address"), ("gateway", "gateway")])?,
        )),
        "del" | "delete" => Ok(req("external.del", Value::Null)),
        "show" => Ok(req("external.show", Value::Null)),
        other => Err(unknown_verb("external", other, "set, del, show")),
    })
}

/// The keywords of a peer and of this host: `mac` is the DVR MAC.
pub(crate) const HOST_KEYWORDS: &[(&str, &str)] = &[("mac", "dvr_mac"), ("vtep", "vtep")];

pub(crate) fn peer(w: &Words) -> Result<Req, Failure> {
    named_object(w, "peer", ["peer.del", "peer.list"], |k| {
        let args = take_args(k, NAME, HOST_KEYWORDS)?;
        Ok(with_replace(args, k, "peer.add"))
    })
}

pub(crate) fn host(w: &Words) -> Result<Req, Failure> {
    command(w, "host", "show", |v, k| match v {
        "set" => {
            let args = take_args(k, NAME, HOST_KEYWORDS)?;
            Ok(req("host.set", args))
        }
        "show" => Ok(req("host.show", Value::Null)),
        other => Err(unknown_verb("host", other, "set, show")),
    })
}

/// Takes the arguments of a request out of the words: the positional one first (its
/// argument name and how usage messages call it), then each required keyword (the keyword
/// and its argument name), in order, so that the first one missing is the one named.
pub(crate) fn take_args(
    k: &mut Keywords<'_>,
    positional: Option<(&str, &str)>,
    keywords: &[(&str, &str)],
) -> Result<Value, Failure> {
    let mut args = serde_json::Map::new();
    if let Some((name, usage)) = positional {
        args.insert(name.to_string(), json!(k.positional(usage)?));
    }
    for (keyword, name) in keywords {
        args.insert(name.to_string(), json!(k.req(keyword)?));
    }
    Ok(Value::Object(args))
}

/// A listing, of the objects of one `filter` (a router, a network) when that keyword is given.
pub(crate) fn filtered(
    k: &mut Keywords<'_>,
    op: &'static str,
    filter: &str,
) -> Result<Req, Failure> {
    Ok(req(op, with(json!({}), filter, k.opt(filter)?)))
}
