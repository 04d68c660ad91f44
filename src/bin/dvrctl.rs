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
    BatchApplied, HistSet, HistView, HostView, Interfaces, Lookup, Neighbors, Networks, Peers,
    Ports, Routers, Routes, StatsView, TraceView, VersionInfo,
};
use dvr_router::api::{ErrorCode, REPLY_TIMEOUT};
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
        Command::Neigh(w) => {
            let (v, rest) = verb(w, "show");
            let mut k = Keywords::new("neigh", rest);
            let r = match v {
                "show" | "list" | "ls" => {
                    req("neigh.list", with(json!({}), "router", k.opt("router")?))
                }
                "router" => {
                    let name = k.positional("router NAME")?;
                    req("neigh.list", json!({ "router": name }))
                }
                other => return Err(unknown_verb("neigh", other, "show")),
            };
            k.done()?;
            Ok(r)
        }
        Command::Stats(w) => simple(
            w,
            "stats",
            &[
                ("show", "stats.show"),
                ("list", "stats.show"),
                ("reset", "stats.reset"),
            ],
        ),
        Command::Hist { full, ticks, words } => {
            let (v, rest) = verb(words, "show");
            let mut k = Keywords::new("hist", rest);
            let full = *full || k.flag("full");
            let r = match v {
                "show" => req("hist.show", json!({ "full": full, "ticks": ticks })),
                "full" => req("hist.show", json!({ "full": true, "ticks": ticks })),
                "reset" => req("hist.reset", Value::Null),
                other => return Err(unknown_verb("hist", other, "show, reset")),
            };
            k.done()?;
            Ok(r)
        }
        Command::Log(w) => {
            let (v, rest) = verb(w, "show");
            let mut k = Keywords::new("log", rest);
            let r = match v {
                "show" => req("log.show", Value::Null),
                "set" => req("log.set", json!({ "level": k.positional("LEVEL")? })),
                other => return Err(unknown_verb("log", other, "show, set")),
            };
            k.done()?;
            Ok(r)
        }
        Command::Icmp(w) => {
            let (v, rest) = verb(w, "");
            let mut k = Keywords::new("icmp", rest);
            if v != "set" {
                return Err(unknown_verb("icmp", v, "set"));
            }
            let rate = number("icmp", "rate", k.req("rate")?)?;
            let burst = number("icmp", "burst", k.req("burst")?)?;
            k.done()?;
            Ok(req(
                "icmp.set",
                json!({ "rate_per_s": rate, "burst": burst }),
            ))
        }
        Command::Trace(w) => {
            let mut k = Keywords::new("trace", &w.words);
            let mut args = json!({});
            if let Some(n) = k.opt("count")? {
                args["count"] = number("trace", "count", n)?;
            }
            if let Some(s) = k.opt("timeout")? {
                let secs: f64 = s.parse().map_err(|_| {
                    Failure::usage(format!("trace: `timeout` takes seconds, not `{s}`"))
                })?;
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
        Command::Version => Ok(req("version", Value::Null)),
        Command::Call { op, args } => {
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
                Some(a) => serde_json::from_str(a).map_err(|e| {
                    Failure::usage(format!("call {op}: the arguments are not JSON: {e}"))
                })?,
            };
            Ok(req(info.name, args))
        }
        Command::Apply { .. } => Err(Failure::usage("apply is not a single request")),
    }
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

fn replace(args: &mut Value, k: &mut Keywords<'_>) {
    if k.flag("replace") {
        args["replace"] = json!(true);
    }
}

fn router(w: &Words) -> Result<Req, Failure> {
    let (v, rest) = verb(w, "list");
    let mut k = Keywords::new("router", rest);
    let r = match v {
        "add" => {
            let mut args = json!({ "name": k.positional("NAME")? });
            if k.flag("large") {
                args["large"] = json!(true);
            }
            replace(&mut args, &mut k);
            req("router.add", args)
        }
        "del" | "delete" => req("router.del", json!({ "name": k.positional("NAME")? })),
        "list" | "show" | "ls" => req("router.list", Value::Null),
        other => return Err(unknown_verb("router", other, "add, del, list")),
    };
    k.done()?;
    Ok(r)
}

fn network(w: &Words) -> Result<Req, Failure> {
    let (v, rest) = verb(w, "list");
    let mut k = Keywords::new("network", rest);
    let r = match v {
        "add" => {
            let name = k.positional("NAME")?;
            let vni = number("network", "vni", k.req("vni")?)?;
            let ports = k.all("port")?;
            let mut args = json!({ "name": name, "vni": vni, "ports": ports });
            replace(&mut args, &mut k);
            req("network.add", args)
        }
        "del" | "delete" => req("network.del", json!({ "name": k.positional("NAME")? })),
        "list" | "show" | "ls" => req("network.list", Value::Null),
        other => return Err(unknown_verb("network", other, "add, del, list")),
    };
    k.done()?;
    Ok(r)
}

fn interface(w: &Words) -> Result<Req, Failure> {
    let (v, rest) = verb(w, "list");
    let mut k = Keywords::new("interface", rest);
    let r = match v {
        "add" => {
            let mut args = json!({
                "router": k.req("router")?,
                "network": k.req("network")?,
                "address": k.req("address")?,
                "mac": k.req("mac")?,
            });
            replace(&mut args, &mut k);
            req("interface.add", args)
        }
        "del" | "delete" => req(
            "interface.del",
            json!({ "router": k.req("router")?, "network": k.req("network")? }),
        ),
        "list" | "show" | "ls" => req(
            "interface.list",
            with(json!({}), "router", k.opt("router")?),
        ),
        other => return Err(unknown_verb("interface", other, "add, del, list")),
    };
    k.done()?;
    Ok(r)
}

fn route(w: &Words) -> Result<Req, Failure> {
    let (v, rest) = verb(w, "list");
    let mut k = Keywords::new("route", rest);
    let r = match v {
        "add" | "replace" => {
            let prefix = k.positional("PREFIX")?;
            let mut args =
                json!({ "prefix": prefix, "via": k.req("via")?, "router": k.req("router")? });
            replace(&mut args, &mut k);
            if v == "replace" {
                args["replace"] = json!(true);
            }
            req("route.add", args)
        }
        "del" | "delete" => {
            let prefix = k.positional("PREFIX")?;
            req(
                "route.del",
                json!({ "prefix": prefix, "router": k.req("router")? }),
            )
        }
        "get" | "lookup" => {
            let ip = k.positional("IP")?;
            req(
                "route.lookup",
                json!({ "ip": ip, "router": k.req("router")? }),
            )
        }
        "list" | "show" | "ls" => req("route.list", with(json!({}), "router", k.opt("router")?)),
        other => return Err(unknown_verb("route", other, "add, replace, del, list, get")),
    };
    k.done()?;
    Ok(r)
}

fn port(w: &Words) -> Result<Req, Failure> {
    let (v, rest) = verb(w, "list");
    let mut k = Keywords::new("port", rest);
    let r = match v {
        "add" => {
            let ip = k.positional("IP")?;
            let mut args = json!({
                "ip": ip,
                "network": k.req("network")?,
                "mac": k.req("mac")?,
                "host": k.req("host")?,
            });
            args = with(args, "port", k.opt("port")?);
            replace(&mut args, &mut k);
            req("port.add", args)
        }
        "del" | "delete" => {
            let ip = k.positional("IP")?;
            req(
                "port.del",
                json!({ "ip": ip, "network": k.req("network")? }),
            )
        }
        "list" | "show" | "ls" => req("port.list", with(json!({}), "network", k.opt("network")?)),
        other => return Err(unknown_verb("port", other, "add, del, list")),
    };
    k.done()?;
    Ok(r)
}

fn peer(w: &Words) -> Result<Req, Failure> {
    let (v, rest) = verb(w, "list");
    let mut k = Keywords::new("peer", rest);
    let r = match v {
        "add" => {
            let name = k.positional("NAME")?;
            let mut args =
                json!({ "name": name, "dvr_mac": k.req("mac")?, "vtep": k.req("vtep")? });
            replace(&mut args, &mut k);
            req("peer.add", args)
        }
        "del" | "delete" => req("peer.del", json!({ "name": k.positional("NAME")? })),
        "list" | "show" | "ls" => req("peer.list", Value::Null),
        other => return Err(unknown_verb("peer", other, "add, del, list")),
    };
    k.done()?;
    Ok(r)
}

fn host(w: &Words) -> Result<Req, Failure> {
    let (v, rest) = verb(w, "show");
    let mut k = Keywords::new("host", rest);
    let r = match v {
        "set" => {
            let name = k.positional("NAME")?;
            req(
                "host.set",
                json!({ "name": name, "dvr_mac": k.req("mac")?, "vtep": k.req("vtep")? }),
            )
        }
        "show" => req("host.show", Value::Null),
        other => return Err(unknown_verb("host", other, "set, show")),
    };
    k.done()?;
    Ok(r)
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
    match op {
        "router.list" => {
            let r: Routers = parse_as(op, v)?;
            let rows = r.routers.iter().map(|r| {
                vec![
                    r.name.clone(),
                    yes(r.large),
                    r.interfaces.to_string(),
                    r.routes.to_string(),
                    r.prefixes.to_string(),
                ]
            });
            table(
                &mut o,
                &["router", "large", "interfaces", "routes", "prefixes"],
                rows,
            );
        }
        "network.list" => {
            let n: Networks = parse_as(op, v)?;
            let rows = n.networks.iter().map(|n| {
                vec![
                    n.name.clone(),
                    n.vni.to_string(),
                    list(&n.ports),
                    n.router.clone().unwrap_or_else(|| "-".into()),
                ]
            });
            table(&mut o, &["network", "vni", "local ports", "router"], rows);
        }
        "interface.list" => {
            let i: Interfaces = parse_as(op, v)?;
            let rows = i.interfaces.iter().map(|i| {
                vec![
                    i.router.clone(),
                    i.network.clone(),
                    i.address.to_string(),
                    i.mac.to_string(),
                ]
            });
            table(&mut o, &["router", "network", "address", "mac"], rows);
        }
        "route.list" => {
            let r: Routes = parse_as(op, v)?;
            let rows = r
                .routes
                .iter()
                .map(|r| vec![r.router.clone(), r.prefix.to_string(), r.via.to_string()]);
            table(&mut o, &["router", "prefix", "via"], rows);
        }
        "route.lookup" => {
            let l: Lookup = parse_as(op, v)?;
            let nh = l
                .next_hop
                .map_or_else(String::new, |n| format!("next hop {n}: "));
            let _ = writeln!(o, "{} router {}: {nh}{}", l.ip, l.router, l.result);
        }
        "port.list" => {
            let p: Ports = parse_as(op, v)?;
            let rows = p.ports.iter().map(|p| {
                vec![
                    p.network.clone(),
                    p.ip.to_string(),
                    p.mac.to_string(),
                    p.host.clone(),
                    p.port.clone().unwrap_or_else(|| "-".into()),
                ]
            });
            table(
                &mut o,
                &["network", "ip", "mac", "host", "local port"],
                rows,
            );
        }
        "peer.list" => {
            let p: Peers = parse_as(op, v)?;
            let rows = p
                .peers
                .iter()
                .map(|p| vec![p.name.clone(), p.dvr_mac.to_string(), p.vtep.to_string()]);
            table(&mut o, &["peer", "dvr mac", "vtep"], rows);
        }
        "host.show" => {
            let h: HostView = parse_as(op, v)?;
            match h.host {
                Some(h) => {
                    let _ = writeln!(o, "host {} dvr mac {} vtep {}", h.name, h.dvr_mac, h.vtep);
                }
                None => o.push_str("host not set\n"),
            }
        }
        "neigh.list" => {
            let n: Neighbors = parse_as(op, v)?;
            let rows = n.neighbors.iter().map(|n| {
                vec![
                    n.router.clone(),
                    n.ip.to_string(),
                    n.mac.clone().unwrap_or_else(|| "-".into()),
                    serde_json::to_value(n.state)
                        .ok()
                        .and_then(|s| s.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    n.location.clone(),
                    n.age_ms
                        .map_or_else(|| "-".into(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
                    n.routes.to_string(),
                ]
            });
            table(
                &mut o,
                &["router", "ip", "mac", "state", "where", "age", "routes"],
                rows,
            );
        }
        "stats.show" => {
            let s: StatsView = parse_as(op, v)?;
            let _ = writeln!(
                o,
                "counters over the last {:.1} s (since start or `dvrctl stats reset`)",
                s.since_reset_s
            );
            o.push_str(&s.snapshot.render());
            if let Some(t) = s.snapshot.tables {
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
        "hist.show" => hist(&mut o, &parse_as::<HistView>(op, v)?),
        "trace" => trace(&mut o, &parse_as::<TraceView>(op, v)?),
        "batch" => {
            let b: BatchApplied = parse_as(op, v)?;
            let _ = writeln!(
                o,
                "{} changes applied ({} changed, {} unchanged)",
                b.changes, b.changed, b.unchanged
            );
        }
        "version" => {
            let info: VersionInfo = parse_as(op, v)?;
            let _ = writeln!(
                o,
                "dvrctl {}, dvrd {}, API version {}",
                env!("CARGO_PKG_VERSION"),
                info.daemon,
                info.api
            );
        }
        "log.show" | "log.set" => {
            let _ = writeln!(
                o,
                "log filter: {}",
                v.get("level").and_then(Value::as_str).unwrap_or_default()
            );
        }
        "stats.reset" | "hist.reset" => {
            let _ = writeln!(
                o,
                "reset: {}",
                v.get("reset").and_then(Value::as_str).unwrap_or_default()
            );
        }
        // Adds, deletes and sets: silent, like `ip`.
        _ if v.get("changed").is_some() => {}
        _ => {
            let _ = writeln!(o, "{}", serde_json::to_string_pretty(v).unwrap_or_default());
        }
    }
    Ok(o)
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

fn hist(o: &mut String, h: &HistView) {
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

fn trace(o: &mut String, t: &TraceView) {
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
