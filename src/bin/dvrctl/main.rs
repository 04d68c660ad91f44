//! `dvrctl`: the command-line client of a running `dvrd`, in the conventions of `ip` and
//! `vppctl`: `dvrctl OBJECT VERB [ARGUMENT] [KEYWORD VALUE]...`, human tables by default,
//! `--json` for scripts, `-b FILE` to run many commands over one connection.
//!
//! Exit codes: 0 done; 1 the daemon refused the request; 2 the command line (or a batch file)
//! is wrong; 3 the daemon could not be reached or answered nonsense; 4 the request named an
//! object that does not exist.
#![forbid(unsafe_code)]

mod grammar;
mod output;

use std::fmt::Write as _;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use self::grammar::*;
use self::output::*;
use clap::{Parser, Subcommand};
use dvr_router::api::client::{Client, ClientError};
use dvr_router::api::fleet::FleetClient;
use dvr_router::api::view::{
    BatchApplied, ExternalView, Fips, HistSet, HistView, HostView, Interfaces, Lookup, Neighbors,
    NetworkView, Networks, Peers, Ports, ReloadView, RouterEntry, Routers, Routes, StatsView,
    TraceView, VersionInfo,
};
use dvr_router::api::{ApiError, ErrorCode, REPLY_TIMEOUT};
use router_core::control::NeighborView;
use router_core::model::{InstancePortSpec, InterfaceSpec, PeerSpec, RouteSpec};
use serde_json::{json, Value};

/// Exit code: the daemon refused the request.
pub(crate) const EXIT_REFUSED: u8 = 1;
/// Exit code: the command line or a batch file is wrong.
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit code: the daemon could not be reached, or its answer made no sense.
pub(crate) const EXIT_UNREACHABLE: u8 = 3;
/// Exit code: the request named an object that does not exist.
pub(crate) const EXIT_NOT_FOUND: u8 = 4;

/// Control a running dvrd.
///
/// Commands follow `ip`: OBJECT VERB [ARGUMENT] [KEYWORD VALUE]..., e.g.
/// `dvrctl route add 10.9.0.0/16 via 10.0.2.254 router tenant1`.
/// Add and delete print nothing when they succeed. Exit codes: 0 done, 1 refused by the
/// daemon, 2 bad command line, 3 daemon unreachable, 4 no such object.
#[derive(Debug, Parser)]
#[command(name = "dvrctl", version, about, long_about = None, after_help = EXAMPLES)]
pub(crate) struct Cli {
    /// The daemon's control socket.
    #[arg(
        short,
        long,
        env = "DVRCTL_SOCKET",
        default_value = "/run/dvrd/dvrd.sock"
    )]
    socket: PathBuf,
    /// Talk to the fleet's etcd instead of one dvrd: comma-separated endpoints
    /// (`http://127.0.0.1:2379`). Adds and deletes are validated against the whole fleet and
    /// written as one transaction; listings read the fleet's records.
    #[arg(long, env = "DVRCTL_ETCD", value_name = "URLS")]
    etcd: Option<String>,
    /// With --etcd: the fleet's key space.
    #[arg(long, env = "DVRCTL_PREFIX", default_value = dvr_fleet::DEFAULT_PREFIX)]
    prefix: String,
    /// With --etcd on https://: the CA of etcd's certificates (PEM).
    #[arg(long, env = "DVRCTL_ETCD_CA", value_name = "FILE")]
    etcd_ca: Option<PathBuf>,
    /// With --etcd-ca: this client's certificate (PEM), for etcd's --client-cert-auth.
    #[arg(
        long,
        env = "DVRCTL_ETCD_CERT",
        value_name = "FILE",
        requires = "etcd_key"
    )]
    etcd_cert: Option<PathBuf>,
    /// With --etcd-cert: its key (PEM).
    #[arg(
        long,
        env = "DVRCTL_ETCD_KEY",
        value_name = "FILE",
        requires = "etcd_cert"
    )]
    etcd_key: Option<PathBuf>,
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

pub(crate) const EXAMPLES: &str = "Examples:
  dvrctl router add tenant1
  dvrctl interface add router tenant1 network blue address 10.0.1.1/24 mac fa:16:3e:00:01:01
  dvrctl port add 10.0.1.5 network blue mac fa:16:3e:aa:01:05 host host-a
  dvrctl route add 10.9.0.0/16 via 10.0.2.254 router tenant1
  dvrctl route get 10.9.1.1 router tenant1
  dvrctl neigh
  dvrctl stats
  dvrctl hist --full
  dvrctl trace count 5 dst 10.0.2.7 proto icmp
  dvrctl reload                 (re-read dvrd's configuration file, as SIGHUP does)
  dvrctl apply changes.txt      (every add/del of the file in one atomic batch)
  dvrctl -b commands.txt        (every command of the file, one by one)
  dvrctl --etcd http://127.0.0.1:2379 port add 10.0.1.5 network blue mac fa:16:3e:aa:01:05 host host-a
  dvrctl --etcd http://127.0.0.1:2379 fleet status";

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
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
    /// Floating IPs: add IP port FIXED_IP router R [replace] | del IP | list [router R]
    #[command(alias = "floating-ip")]
    Fip(Words),
    /// This host on the external network: set address A/L gateway IP | del | show
    External(Words),
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
    /// Apply every add/del/set command of FILE (`-` for stdin) as one atomic batch (with
    /// --etcd: one etcd transaction).
    Apply { file: PathBuf },
    /// The fleet: status (with --etcd: every host, the revision it applied, its lag and
    /// errors) | show (one host's membership, from its dvrd)
    Fleet(Words),
    /// Re-read dvrd's configuration file and apply it, as SIGHUP does; prints what changed
    /// (refused, and nothing changed, when the file is invalid).
    Reload,
    /// The daemon's and the API's versions.
    Version,
    /// Send any request: OP [ARGS as a JSON object].
    Call { op: String, args: Option<String> },
}

/// The rest of a command: verb, argument and keyword-value pairs.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct Words {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    words: Vec<String>,
}

/// A failed command: the message and the exit code.
#[derive(Debug)]
pub(crate) struct Failure {
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
pub(crate) struct Req {
    op: &'static str,
    args: Value,
}

pub(crate) fn req(op: &'static str, args: Value) -> Req {
    Req { op, args }
}

pub(crate) fn main() -> ExitCode {
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

pub(crate) fn report(cli: &Cli, f: &Failure) {
    if cli.json {
        if let Some(e) = &f.error {
            println!("{}", json!({ "error": e }));
        }
    }
    eprintln!("dvrctl: {}", f.message);
}

/// Who answers: one daemon, or the fleet's store.
pub(crate) enum Backend {
    Daemon(Client),
    Fleet(Box<FleetClient>),
}

impl Backend {
    pub(crate) fn call(&mut self, op: &str, args: Value) -> Result<Value, ClientError> {
        match (self, op) {
            (Backend::Fleet(f), "fleet.status") => {
                serde_json::to_value(f.status()?).map_err(|e| ClientError::Protocol(e.to_string()))
            }
            (Backend::Fleet(f), _) => f.call(op, args),
            (Backend::Daemon(_), "fleet.status") => Err(ClientError::Api(ApiError::new(
                ErrorCode::UnknownOp,
                "`fleet status` reads the fleet's store: give --etcd URLS (or DVRCTL_ETCD)",
            ))),
            (Backend::Daemon(c), _) => c.call(op, args),
        }
    }
}

pub(crate) fn connect(cli: &Cli, timeout: Duration) -> Result<Backend, Failure> {
    if let Some(urls) = &cli.etcd {
        let endpoints = urls.split(',').map(|u| u.trim().to_string()).collect();
        let tls = cli.etcd_ca.clone().map(|ca| dvr_fleet::store::TlsFiles {
            ca,
            identity: cli.etcd_cert.clone().zip(cli.etcd_key.clone()),
        });
        let timeout = timeout.min(Duration::from_secs(10));
        return FleetClient::connect(endpoints, &cli.prefix, tls, timeout)
            .map(|f| Backend::Fleet(Box::new(f)))
            .map_err(|e| Failure {
                code: EXIT_UNREACHABLE,
                message: format!("{e} (the fleet's etcd is set with --etcd or DVRCTL_ETCD)"),
                error: None,
            });
    }
    Client::connect(&cli.socket, timeout)
        .map(Backend::Daemon)
        .map_err(|e| Failure {
            code: EXIT_UNREACHABLE,
            message: format!(
                "{e} (is dvrd running? the socket is set with --socket or DVRCTL_SOCKET)"
            ),
            error: None,
        })
}

/// What a command does: a request, or the contents of a file as one batch.
#[derive(Debug)]
pub(crate) enum Plan {
    One(Req),
    Apply(PathBuf),
}

pub(crate) fn plan(command: &Command) -> Result<Plan, Failure> {
    match command {
        Command::Apply { file } => Ok(Plan::Apply(file.clone())),
        other => request(other).map(Plan::One),
    }
}

pub(crate) fn run_one(cli: &Cli, timeout: Duration, plan: Plan) -> Result<(), Failure> {
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
        if let Backend::Daemon(c) = &mut client {
            let _ = c.set_timeout(timeout + REPLY_TIMEOUT + Duration::from_millis(trace_ms));
        }
    }
    let result = client.call(r.op, r.args.clone())?;
    print_result(cli, r.op, &result)
}

/// Runs the commands of a file one by one over one connection, like `ip -batch`.
pub(crate) fn run_batch_file(cli: &Cli, file: &Path, timeout: Duration) -> Result<(), Failure> {
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
pub(crate) fn read_lines(file: &Path) -> Result<Vec<(usize, String)>, Failure> {
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
pub(crate) fn changes_of_file(file: &Path) -> Result<Vec<Value>, Failure> {
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

pub(crate) fn is_change(op: &str) -> bool {
    dvr_router::api::OPS
        .iter()
        .any(|o| o.name == op && o.change)
}

/// The grammar of one command of a file: the command line's, without the options.
#[derive(Debug, Parser)]
#[command(name = "dvrctl")]
pub(crate) struct Line {
    #[command(subcommand)]
    command: Command,
}

/// Parses the commands of a file with the command line's grammar, built once (building it
/// costs far more than parsing one line with it).
pub(crate) struct LineParser {
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
        assert_eq!(parse("reload").unwrap(), req("config.reload", Value::Null));
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
