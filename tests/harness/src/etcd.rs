//! A real single-member etcd for the fleet tests: started on loopback (and, for a namespace
//! that other namespaces reach over a management network, on more addresses), driven with
//! `etcdctl` the way an operator would, killed and restarted on the same data folder to show
//! what hosts do while the store is away.
//!
//! The data folder is `etcd-data/` in the test's folder, so that the scope's sweep finds a
//! leftover etcd of a crashed run by its command line; the guard removes it when dropped. The
//! log is `etcd.stderr` there, next to the other processes' (a restart's gets the next
//! unique label, `etcd-2.stderr`...).
//!
//! Ports: the client port and the peer port above it are derived from the scope's prefix and
//! the test process's id, below Linux's ephemeral range; when one is taken the next pair is
//! tried ([`BIND_ATTEMPTS`] in all). A restart reuses the same pair: the hosts know the URL.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cmd::{command_line, output_of, which, CmdOutput};
use crate::net::Netns;
use crate::process::{describe, Process};
use crate::test_scope::{tail, Scope};

/// How long etcd gets to answer a health check after it was started.
pub const ETCD_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Port pairs tried before giving up on a start.
pub const BIND_ATTEMPTS: u32 = 8;
/// The lowest client port handed out; the pairs stay below Linux's ephemeral range (32768).
pub const PORT_MIN: u16 = 20000;
/// Port pairs between [`PORT_MIN`] and the ephemeral range.
const PORT_PAIRS: u32 = 6000;
/// Each `etcdctl` call: how long to dial, how long the request may take.
const CTL_DIAL_TIMEOUT: &str = "--dial-timeout=2s";
const CTL_COMMAND_TIMEOUT: &str = "--command-timeout=5s";
/// Between two health checks while waiting for etcd.
const READY_POLL: Duration = Duration::from_millis(100);
/// Raft timers of a member that is alone: elected at once, back quickly after a restart.
const HEARTBEAT_MS: &str = "50";
const ELECTION_MS: &str = "500";
/// What etcd (zap logger) logs once it serves clients on a listener.
const READY_MESSAGE: &str = "serving client traffic";
/// The etcd member name.
const MEMBER: &str = "e2e";

/// One operation of a transaction ([`Etcd::txn`]).
#[derive(Debug, Clone)]
pub enum TxnOp {
    Put(String, String),
    Del(String),
}

impl TxnOp {
    pub fn put(key: &str, value: &str) -> TxnOp {
        TxnOp::Put(key.to_string(), value.to_string())
    }

    pub fn del(key: &str) -> TxnOp {
        TxnOp::Del(key.to_string())
    }

    /// The line of `etcdctl txn`'s input: the value as one double-quoted argument.
    fn line(&self) -> String {
        match self {
            TxnOp::Put(k, v) => format!("put {} {}", quoted(k), quoted(v)),
            TxnOp::Del(k) => format!("del {}", quoted(k)),
        }
    }
}

/// A double-quoted argument of an `etcdctl txn` line.
fn quoted(text: &str) -> String {
    assert!(
        !text.contains('\n'),
        "an etcdctl txn line cannot hold a newline: {text:?}"
    );
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A running etcd (or one killed on purpose, until [`restart`](Etcd::restart)). Dropping it
/// kills it and removes its data folder.
#[derive(Debug)]
pub struct Etcd {
    scope: Scope,
    /// `etcd`, or `etcd-2`... for a second one in the scope: its logs and data folder.
    label: String,
    /// The namespace it runs in (None: the root namespace); etcdctl runs there too.
    netns: Option<String>,
    /// Addresses it serves clients on besides 127.0.0.1.
    also_on: Vec<Ipv4Addr>,
    data_dir: PathBuf,
    client_port: u16,
    peer_port: u16,
    process: Option<Process>,
    /// Processes started so far (the first is logged as the label, restarts after it).
    starts: u32,
    /// Serving clients over TLS, with client certificates required.
    tls: Option<TlsCerts>,
}

/// The PEM files of a TLS etcd: a CA, the server's certificate (for 127.0.0.1) and a client
/// certificate, all signed by the CA; made with `openssl` in the scope's folder.
#[derive(Debug, Clone)]
pub struct TlsCerts {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl TlsCerts {
    /// A new CA and its two certificates under `scope`'s folder.
    pub fn make(scope: &Scope) -> TlsCerts {
        let f = |name: &str| scope.file(name);
        let openssl = |args: &[&str]| {
            let out = output_of(Command::new("openssl").args(args));
            assert!(out.success(), "openssl: {out:?}");
        };
        let path = |p: &Path| p.to_string_lossy().into_owned();
        let (ca, ca_key) = (f("tls-ca.pem"), f("tls-ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=dvr-test-ca",
            "-keyout",
            &path(&ca_key),
            "-out",
            &path(&ca),
        ]);
        let ext = f("tls.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap_or_else(|e| panic!("{}: {e}", ext.display()));
        let signed = |name: &str| {
            let (cert, key, csr) = (
                f(&format!("tls-{name}.pem")),
                f(&format!("tls-{name}.key")),
                f(&format!("tls-{name}.csr")),
            );
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &path(&key),
                "-out",
                &path(&csr),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                &path(&csr),
                "-CA",
                &path(&ca),
                "-CAkey",
                &path(&ca_key),
                "-CAcreateserial",
                "-extfile",
                &path(&ext),
                "-out",
                &path(&cert),
            ]);
            (cert, key)
        };
        let (server_cert, server_key) = signed("server");
        let (client_cert, client_key) = signed("client");
        TlsCerts {
            ca,
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}

impl Etcd {
    /// Starts etcd in the root namespace on 127.0.0.1 and waits until it answers.
    pub fn start(scope: &Scope) -> Etcd {
        Etcd::start_in(scope, None, &[])
    }

    /// Starts etcd in `netns` (None: the root namespace), serving clients on 127.0.0.1 and on
    /// every address of `also_on` (addresses of that namespace), and waits until it answers.
    pub fn start_in(scope: &Scope, netns: Option<&Netns>, also_on: &[Ipv4Addr]) -> Etcd {
        Etcd::launch(scope, netns, also_on, None)
    }

    /// Starts etcd on 127.0.0.1 serving clients over TLS only, with client certificates
    /// required (`--client-cert-auth`); its own etcdctl calls use the client certificate.
    pub fn start_tls(scope: &Scope) -> Etcd {
        Etcd::launch(scope, None, &[], Some(TlsCerts::make(scope)))
    }

    fn launch(
        scope: &Scope,
        netns: Option<&Netns>,
        also_on: &[Ipv4Addr],
        tls: Option<TlsCerts>,
    ) -> Etcd {
        require_tools();
        let label = scope.unique_label("etcd");
        let mut etcd = Etcd {
            scope: scope.clone(),
            data_dir: scope.file(&format!("{label}-data")),
            label,
            netns: netns.map(|n| n.name().to_string()),
            also_on: also_on.to_vec(),
            client_port: 0,
            peer_port: 0,
            process: None,
            starts: 0,
            tls,
        };
        etcd.bind_and_start();
        etcd
    }

    /// The TLS files, when it serves TLS.
    pub fn tls(&self) -> Option<&TlsCerts> {
        self.tls.as_ref()
    }

    fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Finds a free port pair and starts on it.
    fn bind_and_start(&mut self) {
        let scope = &self.scope.clone();
        let etcd = self;
        let mut failures = Vec::new();
        for attempt in 0..BIND_ATTEMPTS {
            let (client, peer) = port_pair(scope, attempt);
            etcd.client_port = client;
            etcd.peer_port = peer;
            // A first start that failed may have left a member with other URLs behind.
            remove_dir(&etcd.data_dir);
            etcd.spawn();
            match etcd.try_wait_ready(ETCD_READY_TIMEOUT) {
                Ok(()) => return,
                Err(e) if e.contains("address already in use") => {
                    failures.push(format!("ports {client}/{peer}: in use"));
                    etcd.kill();
                }
                Err(e) => panic!("etcd did not start: {e}"),
            }
        }
        panic!(
            "etcd found no free port pair in {BIND_ATTEMPTS} attempts: {}",
            failures.join("; ")
        );
    }

    /// The client URL on loopback: what etcdctl in etcd's namespace uses.
    pub fn endpoint(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.client_port)
    }

    /// The client URL on `addr` (one of the addresses given to [`start_in`](Self::start_in)):
    /// what a process in another namespace uses.
    pub fn endpoint_on(&self, addr: Ipv4Addr) -> String {
        assert!(
            addr.is_loopback() || self.also_on.contains(&addr),
            "etcd does not serve clients on {addr}"
        );
        format!("{}://{addr}:{}", self.scheme(), self.client_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    pub fn peer_port(&self) -> u16 {
        self.peer_port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The namespace etcd runs in (None: the root namespace).
    pub fn netns(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Starts the process on the current ports and data folder; does not wait.
    fn spawn(&mut self) {
        let client_urls: Vec<String> = std::iter::once(Ipv4Addr::LOCALHOST)
            .chain(self.also_on.iter().copied())
            .map(|a| format!("{}://{a}:{}", self.scheme(), self.client_port))
            .collect();
        let client_urls = client_urls.join(",");
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let mut cmd = self.command("etcd");
        cmd.args(["--name", MEMBER, "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client_urls])
            .args(["--advertise-client-urls", &client_urls])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("{MEMBER}={peer_url}")])
            .args(["--initial-cluster-state", "new"])
            .args(["--max-txn-ops", "10000"])
            .args(["--max-request-bytes", "10485760"])
            .args(["--heartbeat-interval", HEARTBEAT_MS])
            .args(["--election-timeout", ELECTION_MS])
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        if let Some(t) = &self.tls {
            cmd.arg("--cert-file")
                .arg(&t.server_cert)
                .arg("--key-file")
                .arg(&t.server_key)
                .arg("--trusted-ca-file")
                .arg(&t.ca)
                .arg("--client-cert-auth");
        }
        let process = if self.starts == 0 {
            Process::spawn_labelled(&self.scope, self.label.clone(), cmd)
        } else {
            Process::spawn(&self.scope, &format!("{}-restart", self.label), cmd)
        };
        self.starts += 1;
        self.process = Some(process);
    }

    /// `program` in etcd's namespace (or the root namespace), with no `ETCDCTL_*` variable
    /// inherited from the test's environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, program]);
                c
            }
            None => Command::new(program),
        };
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("ETCDCTL_") {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    /// Waits until etcd answers a health check; panics with its log when it exits first or
    /// takes longer than [`ETCD_READY_TIMEOUT`].
    pub fn wait_ready(&mut self) {
        if let Err(e) = self.try_wait_ready(ETCD_READY_TIMEOUT) {
            panic!("etcd is not ready: {e}");
        }
    }

    fn try_wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let start = Instant::now();
        loop {
            let p = self
                .process
                .as_mut()
                .ok_or_else(|| "etcd is not running (killed)".to_string())?;
            let stderr_path = p.stderr_path().to_path_buf();
            if let Some(status) = p.try_wait() {
                return Err(format!(
                    "etcd exited ({}) on ports {}/{}\n--- stderr\n{}",
                    describe(status),
                    self.client_port,
                    self.peer_port,
                    tail(&stderr_path, 40)
                ));
            }
            // Ours, not another etcd that holds the port: it says so in its own log.
            let serving = p.stderr().contains(READY_MESSAGE);
            if serving && self.ctl(&["endpoint", "health"]).success() {
                if !self.scope.is_quiet() {
                    eprintln!(
                        "[e2e] etcd ready on port {} after {:?}",
                        self.client_port,
                        start.elapsed()
                    );
                }
                return Ok(());
            }
            if start.elapsed() >= timeout {
                return Err(format!(
                    "no healthy answer on {} within {timeout:?}\n--- stderr\n{}",
                    self.endpoint(),
                    tail(&stderr_path, 40)
                ));
            }
            std::thread::sleep(READY_POLL);
        }
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.process
            .as_mut()
            .is_some_and(|p| p.try_wait().is_none())
    }

    /// SIGKILL, as a crash or a power cut would stop it; the data folder stays.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.stop_with("KILL", Duration::from_secs(5));
        }
    }

    /// Starts it again on the same ports and data folder (killing it first if it runs) and
    /// waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready();
    }

    /// Runs `etcdctl --endpoints ENDPOINT ARGS...` (API v3) in etcd's namespace; its output,
    /// whatever the exit code.
    pub fn ctl(&self, args: &[&str]) -> CmdOutput {
        output_of(&mut self.ctl_command(args))
    }

    /// [`ctl`](Self::ctl) with `input` on stdin.
    pub fn ctl_with_input(&self, args: &[&str], input: &[u8]) -> CmdOutput {
        let mut cmd = self.ctl_command(args);
        let line = command_line(&cmd);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run `{line}`: {e}"));
        {
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin
                .write_all(input)
                .unwrap_or_else(|e| panic!("`{line}`: writing stdin: {e}"));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("`{line}`: {e}"));
        CmdOutput {
            command: line,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ctl_command(&self, args: &[&str]) -> Command {
        let mut cmd = self.command("etcdctl");
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", &self.endpoint()])
            .args([CTL_DIAL_TIMEOUT, CTL_COMMAND_TIMEOUT]);
        if let Some(t) = &self.tls {
            cmd.arg("--cacert")
                .arg(&t.ca)
                .arg("--cert")
                .arg(&t.client_cert)
                .arg("--key")
                .arg(&t.client_key);
        }
        cmd.args(args);
        cmd
    }

    /// [`ctl`](Self::ctl); panics unless it exits with 0, returns stdout.
    pub fn ctl_ok(&self, args: &[&str]) -> String {
        self.ctl(args).ok().stdout
    }

    /// [`ctl`](Self::ctl) with `-w json`, parsed.
    fn ctl_json(&self, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-w", "json"]);
        parse_json(&self.ctl(&full).ok())
    }

    /// Puts `value` at `key` (the value goes through stdin: it may be larger than an argument
    /// can be); returns the revision of the write.
    pub fn put(&self, key: &str, value: &str) -> i64 {
        let out = self
            .ctl_with_input(&["put", key, "-w", "json"], value.as_bytes())
            .ok();
        header_revision(&parse_json(&out))
    }

    /// The value at `key`, if there is one.
    pub fn get(&self, key: &str) -> Option<String> {
        let v = self.ctl_json(&["get", key]);
        let kv = v["kvs"].as_array()?.first()?;
        Some(text_of(&kv["value"]))
    }

    /// The value at `key` parsed as JSON; panics when it is no JSON.
    pub fn get_json(&self, key: &str) -> Option<Value> {
        let text = self.get(key)?;
        Some(
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("etcd {key}: not JSON ({e}): {text}")),
        )
    }

    /// Every key under `prefix` with its value, in key order.
    pub fn get_prefix(&self, prefix: &str) -> Vec<(String, String)> {
        let v = self.ctl_json(&["get", prefix, "--prefix"]);
        v["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| (text_of(&kv["key"]), text_of(&kv["value"])))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The revision of the last write to `key`, if it exists.
    pub fn mod_revision(&self, key: &str) -> Option<i64> {
        let v = self.ctl_json(&["get", key]);
        v["kvs"].as_array()?.first()?["mod_revision"].as_i64()
    }

    /// The lease `key` is attached to (0: none), if the key exists.
    pub fn lease(&self, key: &str) -> Option<i64> {
        let v = self.ctl_json(&["get", key]);
        let kv = v["kvs"].as_array()?.first()?;
        Some(kv["lease"].as_i64().unwrap_or(0))
    }

    /// Deletes `key`; returns how many keys went (0 or 1) and the store's revision after.
    pub fn del(&self, key: &str) -> (u64, i64) {
        let v = self.ctl_json(&["del", key]);
        (v["deleted"].as_u64().unwrap_or(0), header_revision(&v))
    }

    /// Applies `ops` in one transaction (`etcdctl txn`, no conditions); returns its revision.
    pub fn txn(&self, ops: &[TxnOp]) -> i64 {
        let mut input = String::from("\n");
        for op in ops {
            input.push_str(&op.line());
            input.push('\n');
        }
        // End of the success operations, then no failure operations.
        input.push_str("\n\n");
        let out = self
            .ctl_with_input(&["txn", "-w", "json"], input.as_bytes())
            .ok();
        let v = parse_json(&out);
        assert_eq!(v["succeeded"], Value::Bool(true), "txn failed: {out}");
        header_revision(&v)
    }

    /// The store's current revision.
    pub fn revision(&self) -> i64 {
        header_revision(&self.ctl_json(&["get", "/", "--prefix", "--keys-only", "--limit", "1"]))
    }

    /// Compacts the history up to `rev` and waits until the space is reclaimed: a watch or a
    /// read at an older revision fails with "required revision has been compacted".
    pub fn compact(&self, rev: i64) {
        self.ctl_ok(&["compaction", "--physical", &rev.to_string()]);
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
        remove_dir(&self.data_dir);
    }
}

/// The etcd tools and their Debian packages.
const TOOLS: [(&str, &str); 2] = [("etcd", "etcd-server"), ("etcdctl", "etcd-client")];

/// Fails the test (never skips it) when etcd or etcdctl is missing.
fn require_tools() {
    let missing: Vec<String> = TOOLS
        .iter()
        .filter(|(tool, _)| which(tool).is_none())
        .map(|(tool, package)| format!("`{tool}` is not on PATH (Debian package {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "the fleet tests need a real etcd: {}; run `sudo scripts/install-deps.sh`",
        missing.join(", ")
    );
}

/// The client and peer ports of attempt `attempt` for `scope`: from the scope's prefix and the
/// process id, so that concurrent test processes start apart.
pub fn port_pair(scope: &Scope, attempt: u32) -> (u16, u16) {
    let seed = scope.prefix().bytes().fold(std::process::id(), |h, b| {
        h.wrapping_mul(31).wrapping_add(u32::from(b))
    });
    let pair = (seed.wrapping_add(attempt.wrapping_mul(7919))) % PORT_PAIRS;
    let client = PORT_MIN + u16::try_from(pair * 2).expect("below the ephemeral range");
    (client, client + 1)
}

fn remove_dir(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot remove {}: {e}", dir.display()),
    }
}

fn parse_json(out: &CmdOutput) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// `header.revision` of an etcdctl JSON answer.
fn header_revision(v: &Value) -> i64 {
    v["header"]["revision"]
        .as_i64()
        .unwrap_or_else(|| panic!("no header.revision in {v}"))
}

/// A key or value of etcdctl's JSON output (base64) as text.
fn text_of(v: &Value) -> String {
    let b64 = v.as_str().unwrap_or_default();
    let bytes = base64_decode(b64).unwrap_or_else(|| panic!("not base64: {b64}"));
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Standard base64 with padding (RFC 4648 section 4), as etcdctl writes bytes in JSON.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    }
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= sextet(*c)? << (18 - 6 * i);
        }
        let produced = chunk.len() - 1;
        out.extend_from_slice(&n.to_be_bytes()[1..1 + produced]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_etcdctl_output() {
        assert_eq!(base64_decode("L2E=").unwrap(), b"/a");
        assert_eq!(base64_decode("eyJ4IjoxfQ==").unwrap(), br#"{"x":1}"#);
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
        assert!(base64_decode("a").is_none());
        assert!(base64_decode("a*==").is_none());
    }

    #[test]
    fn txn_lines_quote_json() {
        assert_eq!(
            TxnOp::put("/k", r#"{"mac": "x\y"}"#).line(),
            r#"put "/k" "{\"mac\": \"x\\y\"}""#
        );
        assert_eq!(TxnOp::del("/k").line(), r#"del "/k""#);
    }
}
