//! `dvrctl`: the command-line client of a running `dvrd`, in the conventions of `ip` and
//! `vppctl`: `dvrctl OBJECT VERB [ARGUMENT] [KEYWORD VALUE]...`, human tables by default,
//! `--json` for scripts, `-b FILE` to run many commands over one connection.
//!
//! Exit codes: 0 done; 1 the daemon refused the request; 2 the command line (or a batch file)
//! is wrong; 3 the daemon could not be reached or answered nonsense; 4 the request named an
//! object that does not exist.
#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use dvr_router::api::client::{Client, ClientError};
use dvr_router::api::view::{
    BatchApplied, HistSet, HistView, HostView, Interfaces, Lookup, Neighbors, NetworkView,
    Networks, Peers, Ports, RouterEntry, Routers, Routes, StatsView, TraceView, VersionInfo,
};
use dvr_router::api::{ErrorCode, REPLY_TIMEOUT};
use router_core::control::NeighborView;
use router_core::model::{InstancePortSpec, InterfaceSpec, PeerSpec, RouteSpec};
use serde_json::{json, Value};

/// Exit code: the daemon refused the request.
const EXIT_REFUSED: u8 = 1;
/// Exit code: the command line or a batch file is wrong.
const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon could not be reached, or its answer made no sense.
const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: the request named an object that does not exist.
const EXIT_NOT_FOUND: u8 = 4;

/// Control a running dvrd.
///
/// Commands follow `ip`: OBJECT VERB [ARGUMENT] [KEYWORD VALUE]..., e.g.
/// `dvrctl route add 10.9.0.0/16 via 10.0.2.254 router tenant1`.
/// Add and delete print nothing when they succeed. Exit codes: 0 done, 1 refused by the
/// daemon, 2 bad command line, 3 daemon unreachable, 4 no such object.
#[derive(Debug, Parser)]
#[command(name = "dvrctl", version, about, long_about = None, after_help = EXAMPLES)]
struct Cli {
    /// The daemon's control socket.
    #[arg(
        short,
        long,
        env = "DVRCTL_SOCKET",
        default_value = "/run/dvrd/dvrd.sock"
    )]
    socket: PathBuf,
    /// Print results as JSON (errors too, on stdout).
    #[arg(short, long, global = true)]
    json: bool,
    /// Seconds to wait for the daemon.
    #[arg(short, long, default_value_t = 60)]
    timeout: u64,
    /// Run the commands of FILE (one per line, `-` for stdin) one by one over one connection.
    #[arg(short, long, value_name = "FILE")]
    batch: Option<PathBuf>,
    /// With --batch: go on after a command fails.
    #[arg(short, long, requires = "batch")]
    force: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

const EXAMPLES: &str = "Examples:
  dvrctl router add tenant1
  dvrctl interface add router tenant1 network blue address 10.0.1.1/24 mac fa:16:3e:00:01:01
  dvrctl port add 10.0.1.5 network blue mac fa:16:3e:aa:01:05 host host-a
  dvrctl route add 10.9.0.0/16 via 10.0.2.254 router tenant1
  dvrctl route get 10.9.1.1 router tenant1
  dvrctl neigh
  dvrctl stats
  dvrctl hist --full
  dvrctl trace count 5 dst 10.0.2.7 proto icmp
  dvrctl apply changes.txt      (every add/del of the file in one atomic batch)
  dvrctl -b commands.txt        (every command of the file, one by one)";

#[derive(Debug, Subcommand)]
enum Command {
    /// Routers (VRFs): add NAME [large] [replace] | del NAME | list
    Router(Words),
    /// Tenant networks: add NAME vni N [port P]... [replace] | del NAME | list
    Network(Words),
    /// Router interfaces: add router R network N address A/L mac M [replace] | del router R network N | list [router R]
    #[command(alias = "iface")]
    Interface(Words),
    /// Routes: add PREFIX via IP router R [replace] | del PREFIX router R | list [router R] | get IP router R
    Route(Words),
    /// Instance ports (static neighbours): add IP network N mac M host H [port P] [replace] | del IP network N | list [network N]
    Port(Words),
    /// Peer hosts: add NAME mac M vtep IP [replace] | del NAME | list
    Peer(Words),
    /// This host: set NAME mac M vtep IP | show
    Host(Words),
    /// Neighbours, static and learned, with state and age: [show] [router R]
    #[command(alias = "neighbor", alias = "neighbour")]
    Neigh(Words),
    /// Counters (since the last reset): [show] | reset
    Stats(Words),
    /// Latency histograms (per burst, per packet): [show] [--full] | reset
    Hist {
        /// The full percentile distribution.
        #[arg(long)]
        full: bool,
        /// Steps per half distance of the full distribution.
        #[arg(long, default_value_t = 5)]
        ticks: u32,
        #[command(flatten)]
        words: Words,
    },
    /// Log filter: [show] | set LEVEL
    Log(Words),
    /// ICMP error rate limit: set rate N burst M
    Icmp(Words),
    /// Capture the next packets and show every decision: [count N] [port P] [src IP] [dst IP] [proto icmp|tcp|udp|N] [timeout SECONDS]
    Trace(Words),
    /// Apply every add/del/set command of FILE (`-` for stdin) as one atomic batch.
    Apply { file: PathBuf },
    /// The daemon's and the API's versions.
    Version,
    /// Send any request: OP [ARGS as a JSON object].
    Call { op: String, args: Option<String> },
}

/// The rest of a command: verb, argument and keyword-value pairs.
#[derive(Debug, Clone, Default, clap::Args)]
struct Words {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    words: Vec<String>,
}

/// A failed command: the message and the exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
    /// The daemon's error, for `--json`.
    error: Option<Value>,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Failure {
            code: EXIT_USAGE,
            message: message.into(),
            error: None,
        }
    }
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api(api) => Failure {
                code: if api.code == ErrorCode::NotFound {
                    EXIT_NOT_FOUND
                } else {
                    EXIT_REFUSED
                },
                message: api.to_string(),
                error: serde_json::to_value(&api).ok(),
            },
            other => Failure {
                code: EXIT_UNREACHABLE,
                message: other.to_string(),
                error: None,
            },
        }
    }
}

/// A request to send: op and arguments.
#[derive(Debug, Clone, PartialEq)]
struct Req {
    op: &'static str,
    args: Value,
}

fn req(op: &'static str, args: Value) -> Req {
    Req { op, args }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let timeout = Duration::from_secs(cli.timeout.max(1));
    let result = match (&cli.batch, &cli.command) {
        (Some(_), Some(_)) => Err(Failure::usage(
            "--batch runs the commands of a file: give no command with it",
        )),
        (Some(file), None) => run_batch_file(&cli, file, timeout),
        (None, Some(command)) => plan(command).and_then(|r| run_one(&cli, timeout, r)),
        (None, None) => Err(Failure::usage("no command (try --help)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            report(&cli, &f);
            ExitCode::from(f.code)
        }
    }
}

fn report(cli: &Cli, f: &Failure) {
    if cli.json {
        if let Some(e) = &f.error {
            println!("{}", json!({ "error": e }));
        }
    }
    eprintln!("dvrctl: {}", f.message);
}

fn connect(cli: &Cli, timeout: Duration) -> Result<Client, Failure> {
    Client::connect(&cli.socket, timeout).map_err(|e| Failure {
        code: EXIT_UNREACHABLE,
        message: format!("{e} (is dvrd running? the socket is set with --socket or DVRCTL_SOCKET)"),
        error: None,
    })
}

/// What a command does: a request, or the contents of a file as one batch.
#[derive(Debug)]
enum Plan {
    One(Req),
    Apply(PathBuf),
}

fn plan(command: &Command) -> Result<Plan, Failure> {
    match command {
        Command::Apply { file } => Ok(Plan::Apply(file.clone())),
        other => request(other).map(Plan::One),
    }
}

fn run_one(cli: &Cli, timeout: Duration, plan: Plan) -> Result<(), Failure> {
    let r = match plan {
        Plan::One(r) => r,
        Plan::Apply(file) => {
            let changes = changes_of_file(&file)?;
            req("batch", json!({ "changes": changes }))
        }
    };
    let mut client = connect(cli, timeout)?;
    if r.op == "trace" {
        // The daemon answers when the packets are in or at the trace's own timeout.
        let trace_ms = r
            .args
            .get("timeout_ms")
            .and_then(Value::as_u64)
            .unwrap_or(10_000);
        let _ = client.set_timeout(timeout + REPLY_TIMEOUT + Duration::from_millis(trace_ms));
    }
    let result = client.call(r.op, r.args.clone())?;
    print_result(cli, r.op, &result)
}

/// Runs the commands of a file one by one over one connection, like `ip -batch`.
fn run_batch_file(cli: &Cli, file: &Path, timeout: Duration) -> Result<(), Failure> {
    let lines = read_lines(file)?;
    let mut client = connect(cli, timeout)?;
    let mut parser = LineParser::new();
    let started = Instant::now();
    let (mut ok, mut first_failure) = (0usize, None);
    let mut sent = 0usize;
    for (n, line) in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        let outcome = parser
            .parse(&words)
            .map_err(|f| Failure {
                message: format!("{}:{n}: {}", file.display(), f.message),
                ..f
            })
            .and_then(|plan| match plan {
                Plan::One(r) => {
                    sent += 1;
                    let result = client.call(r.op, r.args).map_err(Failure::from)?;
                    print_result(cli, r.op, &result)
                }
                Plan::Apply(_) => Err(Failure::usage(format!(
                    "{}:{n}: `apply` cannot be used in a batch file",
                    file.display()
                ))),
            });
        match outcome {
            Ok(()) => ok += 1,
            Err(f) => {
                let f = Failure {
                    message: format!("line {n}: {}", f.message),
                    ..f
                };
                if !cli.force {
                    eprintln!("dvrctl: {sent} requests sent, {ok} done before the failure");
                    return Err(f);
                }
                report(cli, &f);
                first_failure.get_or_insert(f);
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = if elapsed > 0.0 {
        sent as f64 / elapsed
    } else {
        0.0
    };
    eprintln!("dvrctl: {sent} requests in {elapsed:.3} s ({rate:.0} per second), {ok} done");
    match first_failure {
        Some(f) => Err(Failure {
            message: format!("some commands failed, the first: {}", f.message),
            ..f
        }),
        None => Ok(()),
    }
}

/// The non-blank, non-comment lines of `file` (`-` for stdin), numbered from 1.
fn read_lines(file: &Path) -> Result<Vec<(usize, String)>, Failure> {
    let reader: Box<dyn BufRead> = if file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let f = std::fs::File::open(file)
            .map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
        Box::new(std::io::BufReader::new(f))
    };
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line.map_err(|e| Failure::usage(format!("{}: {e}", file.display())))?;
        let text = line.split('#').next().unwrap_or_default().trim();
        if !text.is_empty() {
            out.push((i + 1, text.to_string()));
        }
    }
    Ok(out)
}

/// The changes of a file of add/del/set commands, as batch items.
fn changes_of_file(file: &Path) -> Result<Vec<Value>, Failure> {
    let mut changes = Vec::new();
    let mut parser = LineParser::new();
    for (n, line) in read_lines(file)? {
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = |f: Failure| Failure {
            message: format!("{}:{n}: {}", file.display(), f.message),
            ..f
        };
        match parser.parse(&words).map_err(at)? {
            Plan::One(r) if is_change(r.op) => changes.push(json!({ "op": r.op, "args": r.args })),
            _ => {
                return Err(at(Failure::usage(format!(
                    "`{line}` is not an add, del or set command"
                ))))
            }
        }
    }
    Ok(changes)
}

fn is_change(op: &str) -> bool {
    dvr_router::api::OPS
        .iter()
        .any(|o| o.name == op && o.change)
}

/// The grammar of one command of a file: the command line's, without the options.
#[derive(Debug, Parser)]
#[command(name = "dvrctl")]
struct Line {
    #[command(subcommand)]
    command: Command,
}

/// Parses the commands of a file with the command line's grammar, built once (building it
/// costs far more than parsing one line with it).
struct LineParser {
    grammar: clap::Command,
}

impl LineParser {
    fn new() -> Self {
        LineParser {
            grammar: <Line as clap::CommandFactory>::command(),
        }
    }

    fn parse(&mut self, words: &[&str]) -> Result<Plan, Failure> {
        use clap::FromArgMatches as _;
        let argv = std::iter::once("dvrctl").chain(words.iter().copied());
        let usage = |e: clap::Error| {
            Failure::usage(e.to_string().lines().next().unwrap_or_default().to_string())
        };
        let matches = self.grammar.try_get_matches_from_mut(argv).map_err(usage)?;
        let line = Line::from_arg_matches(&matches).map_err(usage)?;
        plan(&line.command)
    }
}

/// Keyword arguments after the verb, `ip` style: `via 10.0.2.254 router tenant1 replace`.
struct Keywords<'a> {
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
fn verb<'a>(w: &'a Words, default: &'a str) -> (&'a str, &'a [String]) {
    match w.words.split_first() {
        Some((v, rest)) => (v.as_str(), rest),
        None => (default, &[]),
    }
}

/// A JSON number from a word.
fn number(what: &str, key: &str, word: &str) -> Result<Value, Failure> {
    word.parse::<u64>()
        .map(Value::from)
        .map_err(|_| Failure::usage(format!("{what}: `{key}` takes a number, not `{word}`")))
}

/// The request a command asks for.
fn request(command: &Command) -> Result<Req, Failure> {
    match command {
        Command::Router(w) => router(w),
        Command::Network(w) => network(w),
        Command::Interface(w) => interface(w),
        Command::Route(w) => route(w),
        Command::Port(w) => port(w),
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
        Command::Call { op, args } => call(op, args.as_deref()),
        Command::Apply { .. } => Err(Failure::usage("apply is not a single request")),
    }
}

/// Parses `OBJECT VERB [ARGUMENT] [KEYWORD VALUE]...`: `build` turns the verb (`default` when
/// there is none) and the words after it into a request; a word it leaves is an error.
fn command(
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

fn neigh(w: &Words) -> Result<Req, Failure> {
    command(w, "neigh", "show", |v, k| match v {
        "show" | "list" | "ls" => filtered(k, "neigh.list", "router"),
        "router" => {
            let name = k.positional("router NAME")?;
            Ok(req("neigh.list", json!({ "router": name })))
        }
        other => Err(unknown_verb("neigh", other, "show")),
    })
}

fn hist(full: bool, ticks: u32, words: &Words) -> Result<Req, Failure> {
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

fn log(w: &Words) -> Result<Req, Failure> {
    command(w, "log", "show", |v, k| match v {
        "show" => Ok(req("log.show", Value::Null)),
        "set" => Ok(req("log.set", json!({ "level": k.positional("LEVEL")? }))),
        other => Err(unknown_verb("log", other, "show, set")),
    })
}

fn icmp(w: &Words) -> Result<Req, Failure> {
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

fn trace(w: &Words) -> Result<Req, Failure> {
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
fn call(op: &str, args: Option<&str>) -> Result<Req, Failure> {
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

fn unknown_verb(object: &str, verb: &str, expected: &str) -> Failure {
    Failure::usage(format!(
        "{object}: unknown command `{verb}` (expected {expected})"
    ))
}

/// Adds `key: value` to an object when the value is present.
fn with(mut args: Value, key: &str, value: Option<&str>) -> Value {
    if let (Some(v), Some(map)) = (value, args.as_object_mut()) {
        map.insert(key.to_string(), json!(v));
    }
    args
}

/// A command whose verbs take no arguments.
fn simple(w: &Words, what: &str, verbs: &[(&str, &'static str)]) -> Result<Req, Failure> {
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
fn with_replace(mut args: Value, k: &mut Keywords<'_>, op: &'static str) -> Req {
    if k.flag("replace") {
        args["replace"] = json!(true);
    }
    req(op, args)
}

/// The positional argument of an object known by its name.
const NAME: Option<(&str, &str)> = Some(("name", "NAME"));

fn router(w: &Words) -> Result<Req, Failure> {
    named_object(w, "router", ["router.del", "router.list"], |k| {
        let mut args = take_args(k, NAME, &[])?;
        if k.flag("large") {
            args["large"] = json!(true);
        }
        Ok(with_replace(args, k, "router.add"))
    })
}

fn network(w: &Words) -> Result<Req, Failure> {
    named_object(w, "network", ["network.del", "network.list"], |k| {
        let mut args = take_args(k, NAME, &[])?;
        args["vni"] = number("network", "vni", k.req("vni")?)?;
        args["ports"] = json!(k.all("port")?);
        Ok(with_replace(args, k, "network.add"))
    })
}

/// The commands of an object known by its name: `add` (its request built by `add`),
/// `del NAME` and `list`, with `ops` the delete's and the listing's.
fn named_object(
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

fn interface(w: &Words) -> Result<Req, Failure> {
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

fn route(w: &Words) -> Result<Req, Failure> {
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

fn port(w: &Words) -> Result<Req, Failure> {
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

/// The keywords of a peer and of this host: `mac` is the DVR MAC.
const HOST_KEYWORDS: &[(&str, &str)] = &[("mac", "dvr_mac"), ("vtep", "vtep")];

fn peer(w: &Words) -> Result<Req, Failure> {
    named_object(w, "peer", ["peer.del", "peer.list"], |k| {
        let args = take_args(k, NAME, HOST_KEYWORDS)?;
        Ok(with_replace(args, k, "peer.add"))
    })
}

fn host(w: &Words) -> Result<Req, Failure> {
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
fn take_args(
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
fn filtered(k: &mut Keywords<'_>, op: &'static str, filter: &str) -> Result<Req, Failure> {
    Ok(req(op, with(json!({}), filter, k.opt(filter)?)))
}

// ---- output ----

fn parse_as<T: serde::de::DeserializeOwned>(op: &str, v: &Value) -> Result<T, Failure> {
    serde_json::from_value(v.clone()).map_err(|e| Failure {
        code: EXIT_UNREACHABLE,
        message: format!("unexpected result of {op}: {e}"),
        error: None,
    })
}

fn print_result(cli: &Cli, op: &str, v: &Value) -> Result<(), Failure> {
    if cli.json {
        println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        return Ok(());
    }
    let out = human(op, v)?;
    print!("{out}");
    Ok(())
}

/// The human rendering of a result.
fn human(op: &str, v: &Value) -> Result<String, Failure> {
    let mut o = String::new();
    let out = &mut o;
    match op {
        "router.list" => show_rows(out, op, v, |l: &Routers| &l.routers)?,
        "network.list" => show_rows(out, op, v, |l: &Networks| &l.networks)?,
        "interface.list" => show_rows(out, op, v, |l: &Interfaces| &l.interfaces)?,
        "route.list" => show_rows(out, op, v, |l: &Routes| &l.routes)?,
        "route.lookup" => show::<Lookup>(out, op, v)?,
        "port.list" => show_rows(out, op, v, |l: &Ports| &l.ports)?,
        "peer.list" => show_rows(out, op, v, |l: &Peers| &l.peers)?,
        "host.show" => show::<HostView>(out, op, v)?,
        "neigh.list" => show_rows(out, op, v, |l: &Neighbors| &l.neighbors)?,
        "stats.show" => show::<StatsView>(out, op, v)?,
        "hist.show" => show::<HistView>(out, op, v)?,
        "trace" => show::<TraceView>(out, op, v)?,
        "batch" => show::<BatchApplied>(out, op, v)?,
        "version" => show::<VersionInfo>(out, op, v)?,
        "log.show" | "log.set" => text_field(out, "log filter", v, "level"),
        "stats.reset" | "hist.reset" => text_field(out, "reset", v, "reset"),
        // Adds, deletes and sets: silent, like `ip`.
        _ if v.get("changed").is_some() => {}
        _ => {
            let _ = writeln!(o, "{}", serde_json::to_string_pretty(v).unwrap_or_default());
        }
    }
    Ok(o)
}

/// A result as people read it.
trait Human {
    fn human(&self, o: &mut String);
}

/// Reads the result of `op` as a `T` and writes it for people.
fn show<T: serde::de::DeserializeOwned + Human>(
    o: &mut String,
    op: &str,
    v: &Value,
) -> Result<(), Failure> {
    parse_as::<T>(op, v)?.human(o);
    Ok(())
}

/// `LABEL: VALUE` for the text field `key` of the result.
fn text_field(o: &mut String, label: &str, v: &Value, key: &str) {
    let value = v.get(key).and_then(Value::as_str).unwrap_or_default();
    let _ = writeln!(o, "{label}: {value}");
}

/// An object as one row of its listing's table.
trait Row {
    /// The names of the columns.
    const HEADER: &'static [&'static str];
    fn row(&self) -> Vec<String>;
}

/// Reads the listing that `op` answered and writes its objects as a table.
fn show_rows<L: serde::de::DeserializeOwned, T: Row>(
    o: &mut String,
    op: &str,
    v: &Value,
    objects: fn(&L) -> &[T],
) -> Result<(), Failure> {
    let listing: L = parse_as(op, v)?;
    table(o, T::HEADER, objects(&listing).iter().map(Row::row));
    Ok(())
}

impl Row for RouterEntry {
    const HEADER: &'static [&'static str] =
        &["router", "large", "interfaces", "routes", "prefixes"];

    fn row(&self) -> Vec<String> {
        let large = yes(self.large);
        cells(&[
            &self.name,
            &large,
            &self.interfaces,
            &self.routes,
            &self.prefixes,
        ])
    }
}

impl Row for NetworkView {
    const HEADER: &'static [&'static str] = &["network", "vni", "local ports", "router"];

    fn row(&self) -> Vec<String> {
        let (ports, router) = (list(&self.ports), or_dash(&self.router));
        cells(&[&self.name, &self.vni, &ports, &router])
    }
}

impl Row for InterfaceSpec {
    const HEADER: &'static [&'static str] = &["router", "network", "address", "mac"];

    fn row(&self) -> Vec<String> {
        cells(&[&self.router, &self.network, &self.address, &self.mac])
    }
}

impl Row for RouteSpec {
    const HEADER: &'static [&'static str] = &["router", "prefix", "via"];

    fn row(&self) -> Vec<String> {
        cells(&[&self.router, &self.prefix, &self.via])
    }
}

impl Row for InstancePortSpec {
    const HEADER: &'static [&'static str] = &["network", "ip", "mac", "host", "local port"];

    fn row(&self) -> Vec<String> {
        let port = or_dash(&self.port);
        cells(&[&self.network, &self.ip, &self.mac, &self.host, &port])
    }
}

impl Row for PeerSpec {
    const HEADER: &'static [&'static str] = &["peer", "dvr mac", "vtep"];

    fn row(&self) -> Vec<String> {
        cells(&[&self.name, &self.dvr_mac, &self.vtep])
    }
}

impl Row for NeighborView {
    const HEADER: &'static [&'static str] =
        &["router", "ip", "mac", "state", "where", "age", "routes"];

    fn row(&self) -> Vec<String> {
        let state = serde_json::to_value(self.state)
            .ok()
            .and_then(|s| s.as_str().map(str::to_string))
            .unwrap_or_default();
        let age = self
            .age_ms
            .map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0));
        let mac = or_dash(&self.mac);
        let (router, location) = (&self.router, &self.location);
        cells(&[router, &self.ip, &mac, &state, location, &age, &self.routes])
    }
}

/// The cells of a row, each as it displays.
fn cells(values: &[&dyn std::fmt::Display]) -> Vec<String> {
    values.iter().map(ToString::to_string).collect()
}

/// The value, or `-` when there is none.
fn or_dash(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "-".into())
}

impl Human for Lookup {
    fn human(&self, o: &mut String) {
        let nh = self
            .next_hop
            .map_or_else(String::new, |n| format!("next hop {n}: "));
        let _ = writeln!(o, "{} router {}: {nh}{}", self.ip, self.router, self.result);
    }
}

impl Human for HostView {
    fn human(&self, o: &mut String) {
        match &self.host {
            Some(h) => {
                let _ = writeln!(o, "host {} dvr mac {} vtep {}", h.name, h.dvr_mac, h.vtep);
            }
            None => o.push_str("host not set\n"),
        }
    }
}

impl Human for StatsView {
    fn human(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "counters over the last {:.1} s (since start or `dvrctl stats reset`)",
            self.since_reset_s
        );
        o.push_str(&self.snapshot.render());
        if let Some(t) = &self.snapshot.tables {
            let _ = writeln!(
                o,
                "tables: next hops {}/{}, l2 {}/{}, prefixes {}, tbl8 groups {}",
                t.next_hops_used,
                t.next_hops_capacity,
                t.l2_used,
                t.l2_capacity,
                t.routes,
                t.tbl8_used
            );
        }
    }
}

impl Human for BatchApplied {
    fn human(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "{} changes applied ({} changed, {} unchanged)",
            self.changes, self.changed, self.unchanged
        );
    }
}

impl Human for VersionInfo {
    fn human(&self, o: &mut String) {
        let _ = writeln!(
            o,
            "dvrctl {}, dvrd {}, API version {}",
            env!("CARGO_PKG_VERSION"),
            self.daemon,
            self.api
        );
    }
}

fn yes(b: bool) -> String {
    if b { "yes" } else { "no" }.to_string()
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(",")
    }
}

/// A table with a header, columns as wide as their widest cell.
fn table(o: &mut String, header: &[&str], rows: impl Iterator<Item = Vec<String>>) {
    let rows: Vec<Vec<String>> = rows.collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |o: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (c, w) in cells.zip(&widths) {
            let _ = write!(s, "{c:<w$}  ");
        }
        let _ = writeln!(o, "{}", s.trim_end());
    };
    line(o, &mut header.iter().copied());
    for r in &rows {
        line(o, &mut r.iter().map(String::as_str));
    }
}

impl Human for HistView {
    fn human(&self, o: &mut String) {
        render_hist(o, self);
    }
}

fn render_hist(o: &mut String, h: &HistView) {
    let _ = writeln!(o, "latency over the last {:.1} s (ns)", h.since_reset_s);
    let header = [
        "", "count", "min", "p50", "p90", "p99", "p99.9", "max", "mean",
    ];
    let mut rows = Vec::new();
    let mut add = |name: String, s: &HistSet| {
        for (kind, l) in [("burst", &s.burst), ("packet rx->tx", &s.residence)] {
            rows.push(vec![
                format!("{name} {kind}"),
                l.count.to_string(),
                l.min_ns.to_string(),
                l.p50_ns.to_string(),
                l.p90_ns.to_string(),
                l.p99_ns.to_string(),
                l.p999_ns.to_string(),
                l.max_ns.to_string(),
                format!("{:.0}", l.mean_ns),
            ]);
        }
    };
    add("all".into(), &h.merged);
    for w in &h.workers {
        add(format!("worker {}", w.worker), &w.hist);
    }
    table(o, &header, rows.into_iter());
    for (name, dist) in [
        ("per burst", &h.merged.burst_distribution),
        ("per packet rx->tx", &h.merged.residence_distribution),
    ] {
        if dist.is_empty() {
            continue;
        }
        let _ = writeln!(o, "\npercentile distribution, {name} (all workers):");
        let total: u64 = dist.iter().map(|q| q.count).sum();
        let mut cumulative = 0;
        let rows = dist.iter().map(|q| {
            cumulative += q.count;
            let inv = if q.quantile < 1.0 {
                format!("{:.2}", 1.0 / (1.0 - q.quantile))
            } else {
                "inf".into()
            };
            vec![
                q.value_ns.to_string(),
                format!("{:.6}", q.quantile),
                cumulative.to_string(),
                inv,
            ]
        });
        table(
            o,
            &[
                "value (ns)",
                "percentile",
                "total count",
                "1/(1-percentile)",
            ],
            rows,
        );
        let _ = writeln!(o, "total {total}");
    }
}

impl Human for TraceView {
    fn human(&self, o: &mut String) {
        render_trace(o, self);
    }
}

fn render_trace(o: &mut String, t: &TraceView) {
    for (i, p) in t.packets.iter().enumerate() {
        let _ = writeln!(
            o,
            "packet {} (port {}, {} bytes, worker {}, t={} ns)",
            i + 1,
            p.port,
            p.len,
            p.worker,
            p.time_ns
        );
        for s in &p.steps {
            let _ = writeln!(o, "  {s}");
        }
        if p.steps_lost > 0 {
            let _ = writeln!(o, "  ({} more steps not recorded)", p.steps_lost);
        }
        let _ = writeln!(o, "  => {}", p.verdict);
    }
    let _ = writeln!(
        o,
        "{} of {} packets captured{}{}",
        t.packets.len(),
        t.requested,
        if t.complete {
            ""
        } else {
            " before the timeout"
        },
        if t.lost > 0 {
            format!(", {} lost", t.lost)
        } else {
            String::new()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<Req, Failure> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match LineParser::new().parse(&words)? {
            Plan::One(r) => Ok(r),
            Plan::Apply(_) => panic!("apply"),
        }
    }

    #[test]
    fn ip_style_commands() {
        let r = parse("route add 10.9.0.0/16 via 10.0.2.254 router blue").unwrap();
        assert_eq!(
            r,
            req(
                "route.add",
                json!({"prefix": "10.9.0.0/16", "via": "10.0.2.254", "router": "blue"})
            )
        );
        let r = parse("route replace 10.9.0.0/16 router blue via 10.0.2.253").unwrap();
        assert_eq!(r.args["replace"], json!(true));
        assert_eq!(parse("route").unwrap(), req("route.list", json!({})));
        assert_eq!(
            parse("route list router blue").unwrap(),
            req("route.list", json!({"router": "blue"}))
        );
        assert_eq!(
            parse("route get 10.9.1.1 router blue").unwrap().op,
            "route.lookup"
        );
        let r = parse(
            "port add 10.0.1.5 network blue mac fa:16:3e:aa:01:05 host host-a port p0 replace",
        )
        .unwrap();
        assert_eq!(
            r,
            req(
                "port.add",
                json!({"ip": "10.0.1.5", "network": "blue", "mac": "fa:16:3e:aa:01:05", "host": "host-a", "port": "p0", "replace": true})
            )
        );
        assert_eq!(
            parse("port del 10.0.1.5 network blue").unwrap(),
            req("port.del", json!({"ip": "10.0.1.5", "network": "blue"}))
        );
        let r = parse("network add blue vni 1001 port p0 port p1").unwrap();
        assert_eq!(
            r.args,
            json!({"name": "blue", "vni": 1001, "ports": ["p0", "p1"]})
        );
        assert_eq!(
            parse("router add t1 large").unwrap().args,
            json!({"name": "t1", "large": true})
        );
        assert_eq!(parse("router").unwrap(), req("router.list", Value::Null));
        let r =
            parse("interface add router t1 network blue address 10.0.1.1/24 mac fa:16:3e:00:01:01")
                .unwrap();
        assert_eq!(r.op, "interface.add");
        assert_eq!(
            parse("peer add b mac fa:16:3f:00:00:0b vtep 192.0.2.20")
                .unwrap()
                .args["dvr_mac"],
            json!("fa:16:3f:00:00:0b")
        );
        assert_eq!(
            parse("host set a mac fa:16:3f:00:00:0a vtep 192.0.2.10")
                .unwrap()
                .op,
            "host.set"
        );
        assert_eq!(parse("neigh").unwrap(), req("neigh.list", json!({})));
        assert_eq!(
            parse("neigh show router t1").unwrap(),
            req("neigh.list", json!({"router": "t1"}))
        );
        assert_eq!(parse("stats").unwrap().op, "stats.show");
        assert_eq!(parse("stats reset").unwrap().op, "stats.reset");
        assert_eq!(parse("hist --full").unwrap().args["full"], json!(true));
        assert_eq!(parse("hist").unwrap().args["full"], json!(false));
        assert_eq!(parse("hist reset").unwrap().op, "hist.reset");
        assert_eq!(
            parse("log set debug").unwrap().args,
            json!({"level": "debug"})
        );
        assert_eq!(
            parse("icmp set rate 10 burst 5").unwrap().args,
            json!({"rate_per_s": 10, "burst": 5})
        );
        let r = parse("trace count 3 dst 10.0.2.7 proto icmp port blue timeout 2.5").unwrap();
        assert_eq!(
            r.args,
            json!({"count": 3, "dst": "10.0.2.7", "protocol": "icmp", "port": "blue", "timeout_ms": 2500})
        );
        assert_eq!(
            parse("trace proto 17").unwrap().args,
            json!({"protocol": 17})
        );
        assert_eq!(parse("call stats.show").unwrap().op, "stats.show");
        assert_eq!(
            parse(r#"call route.list {"router":"x"}"#).unwrap().args,
            json!({"router": "x"})
        );
    }

    #[test]
    fn usage_errors_name_the_problem() {
        for (line, needle) in [
            (
                "route add 10.9.0.0/16 via 10.0.2.254",
                "`router VALUE` is required",
            ),
            ("route add 10.9.0.0/16 via", "`via` needs a value"),
            (
                "route add 10.9.0.0/16 via 1.2.3.4 router b metric 5",
                "unexpected `metric`",
            ),
            ("route frob", "unknown command `frob`"),
            ("network add blue vni many", "takes a number"),
            ("port add", "IP is required"),
            ("call no.such.op", "unknown op"),
            ("call stats.show {", "not JSON"),
            ("icmp set rate 1", "`burst VALUE` is required"),
        ] {
            let f = parse(line).unwrap_err();
            assert_eq!(f.code, EXIT_USAGE, "{line}");
            assert!(f.message.contains(needle), "{line}: {}", f.message);
        }
        assert_eq!(
            LineParser::new().parse(&["frobnicate"]).unwrap_err().code,
            EXIT_USAGE
        );
    }

    #[test]
    fn api_errors_map_to_exit_codes() {
        let not_found =
            dvr_router::api::ApiError::new(ErrorCode::NotFound, "router `x` does not exist");
        assert_eq!(
            Failure::from(ClientError::Api(not_found)).code,
            EXIT_NOT_FOUND
        );
        let conflict = dvr_router::api::ApiError::new(ErrorCode::Conflict, "exists");
        assert_eq!(Failure::from(ClientError::Api(conflict)).code, EXIT_REFUSED);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(Failure::from(ClientError::Io(io)).code, EXIT_UNREACHABLE);
    }

    #[test]
    fn command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn tables_align() {
        let mut o = String::new();
        table(
            &mut o,
            &["a", "bb"],
            vec![vec!["xxx".to_string(), "y".to_string()]].into_iter(),
        );
        assert_eq!(o, "a    bb\nxxx  y\n");
    }
}
