//! The daemon's configuration file (TOML), read with the `config` crate, typed with serde.
//!
//! Every key may be overridden from the environment: `DVR_` + the key path in upper case with
//! `__` between levels, e.g. `DVR_EAL__FILE_PREFIX=dvrd-a` or `DVR_DATAPLANE__IDLE=poll`.
//! An invalid file is reported with the key, the value and what was expected, before any port
//! is touched. `dvrd.example.toml` at the repository root documents every key.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dpdk_bindings::PortConfig;
use lcore_workers::{AdaptiveIdle, IdleMode};
use router_core::control::{ControlConfig, NeighborConfig, PortSetup};
use router_core::lpm::Prefix;
use router_core::model::{
    Change, ExternalSpec, FloatingIpSpec, HostSpec, InstancePortSpec, InterfaceAddr, InterfaceSpec,
    MacAddr, NetworkSpec, PeerSpec, RouteSpec, RouterSpec,
};
use serde::Deserialize;

mod device_queues;

/// Most RX/TX descriptors per queue.
pub const DESCRIPTORS_MAX: u16 = 4096;

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConfig,
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    #[serde(default)]
    pub workers: Vec<WorkerSpec>,
    pub ports: Vec<PortSpec>,
    pub host: Option<HostSpec>,
    #[serde(default)]
    pub fabric: FabricConfig,
    #[serde(default)]
    pub peers: Vec<PeerSpec>,
    #[serde(default)]
    pub networks: Vec<NetworkSpec>,
    #[serde(default)]
    pub routers: Vec<RouterConfig>,
    #[serde(default)]
    pub instance_ports: Vec<InstancePortSpec>,
    /// This host on the external network (needs a port with `external = true`).
    pub external: Option<ExternalSpec>,
    #[serde(default)]
    pub floating_ips: Vec<FloatingIpSpec>,
    #[serde(default)]
    pub neighbor: NeighborConfig,
    #[serde(default)]
    pub icmp: IcmpConfig,
    #[serde(default)]
    pub tables: TablesConfig,
    #[serde(default)]
    pub control: ControlSettings,
    #[serde(default)]
    pub log: LogConfig,
    /// Fleet membership: the routing state comes from etcd.
    pub fleet: Option<FleetSettings>,
}

/// `[fleet]`: this host follows the fleet's key space in etcd. The file then keeps only what is
/// local (EAL, ports, workers, tables, timers); `host`, `peers`, `networks`, `routers` and
/// `instance_ports` come from the store.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetSettings {
    /// etcd client URLs (`http://10.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// The key space.
    #[serde(default = "default_fleet_prefix")]
    pub prefix: String,
    /// This host's name: `<prefix>config/hosts/<host>` holds its DVR MAC and VTEP.
    pub host: String,
    /// The local snapshot (default `/var/lib/dvrd/fleet-<host>.json`).
    pub snapshot: Option<PathBuf>,
    /// Seconds the host's status outlives it in the store.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_s: u64,
    /// Network -> the local ports it attaches to; by default a network attaches to the port
    /// named like it, if there is one.
    #[serde(default)]
    pub attach: std::collections::BTreeMap<String, Vec<String>>,
    /// TLS for `https://` endpoints.
    pub tls: Option<FleetTls>,
}

/// `[fleet.tls]`: PEM files.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetTls {
    /// The CA that signed etcd's server certificates.
    pub ca: PathBuf,
    /// This host's client certificate and key, for etcd's `--client-cert-auth`.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

impl FleetTls {
    /// The store's TLS settings.
    pub fn files(&self) -> dvr_fleet::store::TlsFiles {
        dvr_fleet::store::TlsFiles {
            ca: self.ca.clone(),
            identity: self.cert.clone().zip(self.key.clone()),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.cert.is_some() != self.key.is_some() {
            return Err(invalid(
                "fleet.tls",
                "`cert` and `key` go together: give both or neither",
            ));
        }
        for (key, path) in [
            ("fleet.tls.ca", Some(&self.ca)),
            ("fleet.tls.cert", self.cert.as_ref()),
            ("fleet.tls.key", self.key.as_ref()),
        ] {
            if let Some(p) = path {
                if let Err(e) = std::fs::metadata(p) {
                    return Err(invalid(key, format!("{}: {e}", p.display())));
                }
            }
        }
        Ok(())
    }
}

fn default_fleet_prefix() -> String {
    dvr_fleet::DEFAULT_PREFIX.to_string()
}

fn default_lease_ttl() -> u64 {
    10
}

impl FleetSettings {
    /// The snapshot file.
    pub fn snapshot_path(&self) -> PathBuf {
        self.snapshot
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("/var/lib/dvrd/fleet-{}.json", self.host)))
    }

    fn validate(&self, cfg: &Config) -> Result<(), ConfigError> {
        if self.endpoints.is_empty() {
            return Err(invalid(
                "fleet.endpoints",
                "empty: name at least one etcd URL",
            ));
        }
        for e in &self.endpoints {
            if !(e.starts_with("http://") || e.starts_with("https://")) || e.len() < 10 {
                return Err(invalid(
                    "fleet.endpoints",
                    format!("`{e}` is not an etcd URL (http://HOST:PORT)"),
                ));
            }
        }
        if let Some(tls) = &self.tls {
            tls.validate()?;
        } else if let Some(e) = self.endpoints.iter().find(|e| e.starts_with("https://")) {
            return Err(invalid(
                "fleet.tls",
                format!("`{e}` is https: give [fleet.tls] ca (and cert, key)"),
            ));
        }
        if !self.prefix.starts_with('/') {
            return Err(invalid(
                "fleet.prefix",
                format!("`{}` must start with `/`", self.prefix),
            ));
        }
        let name_ok = !self.host.is_empty()
            && self.host.len() <= router_core::model::NAME_LEN_MAX
            && self
                .host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !name_ok {
            return Err(invalid(
                "fleet.host",
                format!("`{}` is not a host name", self.host),
            ));
        }
        if !(2..=3600).contains(&self.lease_ttl_s) {
            return Err(invalid(
                "fleet.lease_ttl_s",
                format!("{} is not in 2..=3600", self.lease_ttl_s),
            ));
        }
        let local: Vec<&str> = cfg
            .ports
            .iter()
            .filter(|p| !p.fabric && !p.external)
            .map(|p| p.name.as_str())
            .collect();
        for (network, ports) in &self.attach {
            if let Some(p) = ports.iter().find(|p| !local.contains(&p.as_str())) {
                return Err(invalid(
                    format!("fleet.attach.{network}"),
                    format!("`{p}` is not a local (non-fabric) port of [[ports]]"),
                ));
            }
        }
        let managed = [
            ("host", cfg.host.is_some()),
            ("peers", !cfg.peers.is_empty()),
            ("networks", !cfg.networks.is_empty()),
            ("routers", !cfg.routers.is_empty()),
            ("instance_ports", !cfg.instance_ports.is_empty()),
            ("floating_ips", !cfg.floating_ips.is_empty()),
        ];
        if let Some((key, _)) = managed.iter().find(|(_, set)| *set) {
            return Err(invalid(
                *key,
                "with [fleet] the routing state comes from etcd: remove it from the file \
                 (write it with `dvrctl --etcd URLS ...`)",
            ));
        }
        Ok(())
    }
}

/// EAL settings.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EalConfig {
    /// The main lcore's CPU (the control thread).
    pub main_core: usize,
    /// Back the mempool with hugepages; without them EAL runs with `--no-huge` and
    /// `memory_mb` of ordinary memory.
    pub hugepages: bool,
    /// Memory EAL reserves, in MiB.
    pub memory_mb: u32,
    /// Keeps this process's runtime files apart from other DPDK processes'.
    pub file_prefix: String,
    /// Virtual devices to create (`--vdev`), e.g. `net_af_packet0,iface=veth0`. An af_packet
    /// device without `qpairs=` gets one queue pair per worker (see `device_queues`).
    pub vdevs: Vec<String>,
    /// Probe PCI devices (bare metal). Off for virtual devices only.
    pub pci: bool,
    /// Extra EAL arguments, passed as they are.
    pub extra_args: Vec<String>,
    /// DPDK's telemetry socket (`dpdk-telemetry.py`), with dvrd's own `/dvrd/...` commands.
    pub telemetry: bool,
    /// Let `dpdk-dumpcap` (a secondary process) capture the ports: needs hugepages and a
    /// shared configuration, and runs the workers without EAL lcore ids (see
    /// docs/operations.md: DPDK refuses secondary processes once a thread registers).
    pub capture: bool,
}

impl EalConfig {
    fn validate(&self, max_cpu: usize) -> Result<(), ConfigError> {
        if self.memory_mb < 64 {
            return Err(invalid(
                "eal.memory_mb",
                format!("{} MiB is too little (at least 64)", self.memory_mb),
            ));
        }
        if self.file_prefix.is_empty() || self.file_prefix.contains('/') {
            return Err(invalid(
                "eal.file_prefix",
                format!("`{}` is not a file name", self.file_prefix),
            ));
        }
        if self.capture && !self.shares_config() {
            return Err(invalid(
                "eal.capture",
                "needs a configuration that secondary processes can attach to: \
                 hugepages = true, and no --no-shconf or --in-memory in extra_args",
            ));
        }
        check_cpu("eal.main_core", self.main_core, max_cpu)
    }

    /// True unless EAL runs without a shared configuration (`--no-huge` implies
    /// `--no-shconf`; `--in-memory` implies both).
    fn shares_config(&self) -> bool {
        self.hugepages && dpdk_bindings::Eal::args_share_config(&self.extra_args)
    }
}

impl Default for EalConfig {
    fn default() -> Self {
        EalConfig {
            main_core: 0,
            hugepages: true,
            memory_mb: 512,
            file_prefix: "dvrd".into(),
            vdevs: Vec::new(),
            pci: false,
            extra_args: Vec::new(),
            telemetry: true,
            capture: false,
        }
    }
}

/// How a worker waits when there is no traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdleSetting {
    /// Spin: lowest latency, burns the core.
    Poll,
    /// Sleep after a run of empty polls, snap back on traffic.
    Adaptive,
}

impl<'de> Deserialize<'de> for IdleSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)?.as_str() {
            "poll" => Ok(IdleSetting::Poll),
            "adaptive" => Ok(IdleSetting::Adaptive),
            other => Err(serde::de::Error::custom(format!(
                "`{other}` is not an idle mode (expected \"poll\" or \"adaptive\")"
            ))),
        }
    }
}

impl From<IdleSetting> for IdleMode {
    fn from(idle: IdleSetting) -> Self {
        match idle {
            IdleSetting::Poll => IdleMode::Poll,
            IdleSetting::Adaptive => IdleMode::Adaptive(AdaptiveIdle::DEFAULT),
        }
    }
}

/// Data-path sizes.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    pub mbufs: u32,
    pub mbuf_cache: u32,
    /// Packets per RX burst: 1, 2, 4, 8, 16, 32 or 64.
    pub burst: usize,
    pub idle: IdleSetting,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Depth of the punt channel from workers to the control thread.
    pub punt_queue: usize,
}

impl DataplaneConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if !lcore_workers::BURST_SIZES.contains(&self.burst) {
            return Err(invalid(
                "dataplane.burst",
                format!(
                    "{} is not one of {:?}",
                    self.burst,
                    lcore_workers::BURST_SIZES
                ),
            ));
        }
        for (key, v) in [
            ("dataplane.rx_desc", self.rx_desc),
            ("dataplane.tx_desc", self.tx_desc),
        ] {
            if !(64..=DESCRIPTORS_MAX).contains(&v) || !v.is_power_of_two() {
                return Err(invalid(
                    key,
                    format!("{v} is not a power of two in 64..={DESCRIPTORS_MAX}"),
                ));
            }
        }
        if self.mbufs < 1024 {
            return Err(invalid(
                "dataplane.mbufs",
                format!("{} is too few (at least 1024)", self.mbufs),
            ));
        }
        if self.punt_queue == 0 {
            return Err(invalid("dataplane.punt_queue", "0: must be at least 1"));
        }
        Ok(())
    }
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            mbufs: 16383,
            mbuf_cache: 256,
            burst: 32,
            idle: IdleSetting::Adaptive,
            rx_desc: 1024,
            tx_desc: 1024,
            punt_queue: 1024,
        }
    }
}

impl DataplaneConfig {
    /// The device configuration of a port with these queues and this file's descriptor counts.
    pub fn port_config(&self, rx_queues: u16, tx_queues: u16) -> PortConfig {
        PortConfig {
            rx_queues,
            tx_queues,
            rx_desc: self.rx_desc,
            tx_desc: self.tx_desc,
            ..PortConfig::default()
        }
    }
}

/// A worker: the core it is pinned to and the ports it receives from (one RX queue each).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    pub core: usize,
    pub rx: Vec<String>,
}

/// A DPDK port.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortSpec {
    /// How networks and workers refer to it.
    pub name: String,
    /// The DPDK device name (`net_af_packet0`, `0000:3b:00.0`, ...).
    pub device: String,
    /// The underlay port (at most one).
    #[serde(default)]
    pub fabric: bool,
    /// The external (provider) network's port, where floating IPs live (at most one).
    #[serde(default)]
    pub external: bool,
    /// Largest IPv4 packet on the link.
    #[serde(default = "default_mtu")]
    pub mtu: u16,
}

fn default_mtu() -> u16 {
    1500
}

/// The underlay.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FabricConfig {
    /// The underlay gateway toward the peers' VTEPs when they are on other subnets.
    pub gateway: Option<Ipv4Addr>,
}

/// A router with its interfaces and routes.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    pub name: String,
    #[serde(default)]
    pub large: bool,
    #[serde(default)]
    pub interfaces: Vec<RouterInterface>,
    #[serde(default)]
    pub routes: Vec<RouterRoute>,
}

/// An item of one of a router's lists (`interfaces`, `routes`), added to that router.
trait RouterItem {
    fn add(&self, router: &str) -> Change;
}

impl RouterItem for RouterInterface {
    fn add(&self, router: &str) -> Change {
        let spec = InterfaceSpec {
            router: router.to_string(),
            network: self.network.clone(),
            address: self.address,
            mac: self.mac,
        };
        Change::AddInterface {
            spec,
            replace: false,
        }
    }
}

impl RouterItem for RouterRoute {
    fn add(&self, router: &str) -> Change {
        let spec = RouteSpec {
            router: router.to_string(),
            prefix: self.prefix,
            via: self.via,
        };
        Change::AddRoute {
            spec,
            replace: false,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterInterface {
    pub network: String,
    pub address: InterfaceAddr,
    pub mac: MacAddr,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterRoute {
    pub prefix: Prefix,
    pub via: Ipv4Addr,
}

/// ICMP error rate limits (RFC 1812 section 4.3.2.8): per router, and per source under it
/// (the defaults of the latter are Linux's per-destination limit, one a second after 6).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IcmpConfig {
    pub rate_per_s: u32,
    pub burst: u32,
    pub per_source_rate_per_s: u32,
    pub per_source_burst: u32,
}

impl Default for IcmpConfig {
    fn default() -> Self {
        IcmpConfig {
            rate_per_s: 1000,
            burst: 100,
            per_source_rate_per_s: router_core::icmp_limit::SOURCE_RATE_PER_S_DEFAULT,
            per_source_burst: router_core::icmp_limit::SOURCE_BURST_DEFAULT,
        }
    }
}

/// Table capacities, allocated at startup.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TablesConfig {
    pub next_hops: usize,
    pub l2_entries: usize,
    pub tbl8_groups_compact: u32,
    pub tbl8_groups_large: u32,
}

impl TablesConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let limits = [
            ("tables.next_hops", self.next_hops, 64),
            ("tables.l2_entries", self.l2_entries, 16),
        ];
        for (key, n, min) in limits {
            if n < min || n > (1 << 24) {
                return Err(invalid(key, format!("{n} is not in {min}..=16777216")));
            }
        }
        Ok(())
    }
}

impl Default for TablesConfig {
    fn default() -> Self {
        TablesConfig {
            next_hops: 1 << 18,
            l2_entries: 1 << 18,
            tbl8_groups_compact: 1024,
            tbl8_groups_large: 1 << 16,
        }
    }
}

/// The control API and metrics.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ControlSettings {
    /// The control API's Unix socket.
    pub socket: PathBuf,
    /// The Prometheus metrics endpoint (off when absent).
    pub metrics: Option<SocketAddr>,
}

impl Default for ControlSettings {
    fn default() -> Self {
        ControlSettings {
            socket: PathBuf::from("/run/dvrd/dvrd.sock"),
            metrics: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter: `info`, `debug`, `dvrd=debug,info`, ...
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

/// A configuration that cannot be used. The message names the key, the value and what was
/// expected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {message}")]
    Load { path: String, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

/// The `config` crate prints nested keys as `routers[0]interfaces[0]mac`; operators read
/// `routers[0].interfaces[0].mac`.
fn dotted_key_paths(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    let mut prev = ' ';
    for c in message.chars() {
        if prev == ']' && (c.is_ascii_alphabetic() || c == '_') {
            out.push('.');
        }
        out.push(c);
        prev = c;
    }
    out
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

/// CPUs are numbered from 0 up to (not including) this. Counted once, by the first
/// validation (at start, before EAL pins the main thread): both sources read the calling
/// thread's affinity, and a reload validates the file again on the pinned control thread.
fn cpu_count() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| {
        let cpus = std::thread::available_parallelism().map_or(1, usize::from);
        core_affinity::get_core_ids().map_or(cpus, |ids| {
            ids.iter().map(|c| c.id + 1).max().unwrap_or(cpus)
        })
    })
}

/// Refuses a CPU this machine does not have.
fn check_cpu(key: &str, cpu: usize, max_cpu: usize) -> Result<(), ConfigError> {
    if cpu >= max_cpu {
        return Err(invalid(
            key,
            format!("CPU {cpu} does not exist (this machine has {max_cpu})"),
        ));
    }
    Ok(())
}

/// Appends the change each of `items` makes, keyed `key[i]` by its place in the file.
fn keyed<T>(
    out: &mut Vec<(String, Change)>,
    key: &str,
    items: &[T],
    change: impl Fn(&T) -> Change,
) {
    let changes = items.iter().enumerate();
    out.extend(changes.map(|(i, item)| (format!("{key}[{i}]"), change(item))));
}

/// Appends the adds of one list of every router, keyed `routers[i].list[j]`.
fn per_router<T: RouterItem>(
    out: &mut Vec<(String, Change)>,
    routers: &[RouterConfig],
    list: &str,
    items: fn(&RouterConfig) -> &[T],
) {
    for (i, r) in routers.iter().enumerate() {
        let key = format!("routers[{i}].{list}");
        keyed(out, &key, items(r), |item| item.add(&r.name));
    }
}

impl Config {
    /// Reads `path` (TOML) with `DVR_...` environment overrides and validates it.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let err = |e: config::ConfigError| ConfigError::Load {
            path: path.display().to_string(),
            message: dotted_key_paths(&e.to_string()),
        };
        if !path.exists() {
            return Err(ConfigError::Load {
                path: path.display().to_string(),
                message: "no such file".into(),
            });
        }
        let source = config::Config::builder()
            .add_source(config::File::from(path).format(config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("DVR")
                    .prefix_separator("_")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("eal.vdevs")
                    .with_list_parse_key("eal.extra_args")
                    .try_parsing(true),
            )
            .build()
            .map_err(err)?;
        let cfg: Config = source.try_deserialize().map_err(err)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses a TOML string (no environment), for tests and the embedded demo topology.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let source = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<Config>())
            .map_err(|e| ConfigError::Load {
                path: "<inline>".into(),
                message: dotted_key_paths(&e.to_string()),
            })?;
        source.validate()?;
        Ok(source)
    }

    /// Checks what serde cannot: references between sections, limits, CPU numbers.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.dataplane.validate()?;
        let max_cpu = cpu_count();
        self.eal.validate(max_cpu)?;
        let names = self.validate_ports()?;
        self.validate_workers(&names, max_cpu)?;
        self.validate_vdev_queues()?;
        self.tables.validate()?;
        if let Some(f) = &self.fleet {
            f.validate(self)?;
        }
        // The routing state goes through the same validation as the control API.
        self.changes()?;
        Ok(())
    }

    /// Checks the ports; their names, for the workers' references.
    fn validate_ports(&self) -> Result<BTreeSet<&str>, ConfigError> {
        if self.ports.is_empty() {
            return Err(invalid("ports", "no port: at least one is needed"));
        }
        let mut names = BTreeSet::new();
        let mut devices = BTreeSet::new();
        for (i, p) in self.ports.iter().enumerate() {
            if p.name.is_empty() || !names.insert(p.name.as_str()) {
                return Err(invalid(
                    format!("ports[{i}].name"),
                    format!("`{}` is empty or used twice", p.name),
                ));
            }
            if !devices.insert(p.device.as_str()) {
                return Err(invalid(
                    format!("ports[{i}].device"),
                    format!("`{}` is used by two ports", p.device),
                ));
            }
            if !(576..=9000).contains(&p.mtu) {
                return Err(invalid(
                    format!("ports[{i}].mtu"),
                    format!("{} is not in 576..=9000", p.mtu),
                ));
            }
        }
        if self.ports.iter().filter(|p| p.fabric).count() > 1 {
            return Err(invalid("ports", "more than one port has `fabric = true`"));
        }
        if self.ports.iter().filter(|p| p.external).count() > 1 {
            return Err(invalid("ports", "more than one port has `external = true`"));
        }
        if let Some((i, _)) = self
            .ports
            .iter()
            .enumerate()
            .find(|(_, p)| p.fabric && p.external)
        {
            return Err(invalid(
                format!("ports[{i}]"),
                "a port is the fabric or the external port, not both",
            ));
        }
        Ok(names)
    }

    /// Checks the workers: real and distinct CPUs, and every port received from.
    fn validate_workers(&self, ports: &BTreeSet<&str>, max_cpu: usize) -> Result<(), ConfigError> {
        if self.workers.is_empty() {
            return Err(invalid("workers", "no worker: at least one is needed"));
        }
        let mut cores = BTreeSet::new();
        let mut polled = BTreeSet::new();
        for (i, w) in self.workers.iter().enumerate() {
            check_cpu(&format!("workers[{i}].core"), w.core, max_cpu)?;
            if !cores.insert(w.core) {
                return Err(invalid(
                    format!("workers[{i}].core"),
                    format!("CPU {} has two workers", w.core),
                ));
            }
            if w.rx.is_empty() {
                return Err(invalid(
                    format!("workers[{i}].rx"),
                    "empty: a worker receives from at least one port",
                ));
            }
            for name in &w.rx {
                if !ports.contains(name.as_str()) {
                    return Err(invalid(
                        format!("workers[{i}].rx"),
                        format!("`{name}` is no port"),
                    ));
                }
                polled.insert(name.as_str());
            }
        }
        match self
            .ports
            .iter()
            .find(|p| !polled.contains(p.name.as_str()))
        {
            Some(p) => Err(invalid(
                "workers",
                format!("no worker receives from port `{}`", p.name),
            )),
            None => Ok(()),
        }
    }

    /// The routing state as model changes, each with the key it came from.
    pub fn changes_with_keys(&self) -> Vec<(String, Change)> {
        let mut out = Vec::new();
        if let Some(h) = &self.host {
            out.push(("host".to_string(), Change::SetHost(h.clone())));
        }
        keyed(&mut out, "peers", &self.peers, |p| Change::AddPeer {
            spec: p.clone(),
            replace: false,
        });
        keyed(&mut out, "networks", &self.networks, |n| {
            Change::AddNetwork {
                spec: n.clone(),
                replace: false,
            }
        });
        keyed(&mut out, "routers", &self.routers, |r| Change::AddRouter {
            spec: RouterSpec {
                name: r.name.clone(),
                large: r.large,
            },
            replace: false,
        });
        per_router(&mut out, &self.routers, "interfaces", |r| &r.interfaces);
        keyed(&mut out, "instance_ports", &self.instance_ports, |p| {
            Change::AddPort {
                spec: p.clone(),
                replace: false,
            }
        });
        per_router(&mut out, &self.routers, "routes", |r| &r.routes);
        if let Some(e) = &self.external {
            out.push(("external".to_string(), Change::SetExternal(e.clone())));
        }
        keyed(&mut out, "floating_ips", &self.floating_ips, |f| {
            Change::AddFloatingIp {
                spec: f.clone(),
                replace: false,
            }
        });
        out
    }

    /// The routing state as model changes, validated all together against an empty model.
    pub fn changes(&self) -> Result<Vec<Change>, ConfigError> {
        let keyed = self.changes_with_keys();
        let ports = self
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.fabric || p.external));
        let mut model = router_core::model::Model::for_ports(ports);
        model.external_port = self.ports.iter().any(|p| p.external);
        for (key, change) in &keyed {
            model
                .apply(change)
                .map_err(|e| invalid(key.clone(), e.to_string()))?;
        }
        Ok(keyed.into_iter().map(|(_, c)| c).collect())
    }

    /// How many workers receive from port `name`: its number of RX queues.
    pub fn rx_queues_of(&self, name: &str) -> u16 {
        let polling = self
            .workers
            .iter()
            .filter(|w| w.rx.iter().any(|r| r == name));
        polling.count() as u16
    }

    /// The control plane's configuration: `ports` (indexed by DPDK port id) with this file's
    /// table capacities, ICMP rate limits, underlay gateway and neighbour timers.
    pub fn control_config(&self, ports: Vec<PortSetup>) -> ControlConfig {
        let mut c = ControlConfig::new(ports);
        c.next_hops = self.tables.next_hops;
        c.l2_entries = self.tables.l2_entries;
        c.tbl8_groups_compact = self.tables.tbl8_groups_compact;
        c.tbl8_groups_large = self.tables.tbl8_groups_large;
        c.icmp_rate_per_s = self.icmp.rate_per_s;
        c.icmp_burst = self.icmp.burst;
        c.icmp_per_source_rate_per_s = self.icmp.per_source_rate_per_s;
        c.icmp_per_source_burst = self.icmp.per_source_burst;
        c.fabric_gateway = self.fabric.gateway;
        c.neighbor = self.neighbor.clone();
        c
    }

    /// The EAL arguments.
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = vec!["dvrd".to_string()];
        // Only the main lcore is an EAL thread; workers register themselves on their cores.
        args.push("-l".into());
        args.push(self.eal.main_core.to_string());
        args.push(format!("--main-lcore={}", self.eal.main_core));
        args.push(format!("--file-prefix={}", self.eal.file_prefix));
        if !self.eal.hugepages {
            args.push("--no-huge".into());
            args.push("--no-shconf".into());
        }
        args.push("-m".into());
        args.push(self.eal.memory_mb.to_string());
        if !self.eal.pci {
            args.push("--no-pci".into());
        }
        if !self.eal.telemetry {
            args.push("--no-telemetry".into());
        }
        for v in self.vdevs_with_queues() {
            args.push(format!("--vdev={v}"));
        }
        args.extend(self.eal.extra_args.iter().cloned());
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid file with one port and one worker.
    pub(super) const MINIMAL: &str = r#"
[eal]
hugepages = false
vdevs = ["net_null0"]

[[ports]]
name = "blue"
device = "net_null0"

[[workers]]
core = 0
rx = ["blue"]
"#;

    #[test]
    fn a_fleet_member_keeps_only_local_settings_in_its_file() {
        let fleet = r#"
[fleet]
endpoints = ["http://127.0.0.1:2379"]
host = "host-a"
[fleet.attach]
green = ["blue"]
"#;
        let cfg = Config::from_toml(&format!("{MINIMAL}{fleet}")).unwrap();
        let f = cfg.fleet.as_ref().unwrap();
        assert_eq!(f.prefix, "/dvr/v1/");
        assert_eq!(
            f.snapshot_path(),
            Path::new("/var/lib/dvrd/fleet-host-a.json")
        );
        let with_networks = format!("{MINIMAL}\n[[networks]]\nname = \"blue\"\nvni = 7\n{fleet}");
        let e = Config::from_toml(&with_networks).unwrap_err().to_string();
        assert!(e.contains("networks") && e.contains("etcd"), "{e}");
        for (bad, key) in [
            (
                fleet.replace("http://127.0.0.1:2379", "127.0.0.1:2379"),
                "fleet.endpoints",
            ),
            (fleet.replace("host-a", "host a"), "fleet.host"),
            (
                fleet.replace("[\"blue\"]", "[\"nope\"]"),
                "fleet.attach.green",
            ),
        ] {
            let e = Config::from_toml(&format!("{MINIMAL}{bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{e}");
        }
    }

    #[test]
    fn a_fleet_member_keeps_its_external_network_in_its_file() {
        let file = r#"
[eal]
hugepages = false
vdevs = ["net_null0", "net_null1"]

[[ports]]
name = "blue"
device = "net_null0"

[[ports]]
name = "ext"
device = "net_null1"
external = true

[[workers]]
core = 0
rx = ["blue", "ext"]

[external]
address = "203.0.113.2/24"
gateway = "203.0.113.1"

[fleet]
endpoints = ["http://127.0.0.1:2379"]
host = "host-a"
"#;
        // The file's one change is this host's own external network, which the daemon applies
        // before it follows the fleet: the fleet's floating IPs are validated against it.
        let cfg = Config::from_toml(file).unwrap();
        let changes = cfg.changes().unwrap();
        assert!(
            matches!(&changes[..], [Change::SetExternal(e)] if e.gateway.to_string() == "203.0.113.1"),
            "{changes:?}"
        );
        let fip =
            "\n[[floating_ips]]\nip = \"203.0.113.10\"\nrouter = \"t1\"\nport = \"10.0.1.5\"\n";
        let e = Config::from_toml(&format!("{file}{fip}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("floating_ips") && e.contains("etcd"), "{e}");
    }

    #[test]
    fn example_file_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dvrd.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let cfg = Config::from_toml(&text).unwrap();
        assert!(!cfg.changes().unwrap().is_empty());
    }

    #[test]
    fn nested_key_paths_are_dotted() {
        assert_eq!(
            dotted_key_paths("invalid type for key `routers[0]interfaces[0]mac`"),
            "invalid type for key `routers[0].interfaces[0].mac`"
        );
        assert_eq!(dotted_key_paths("a[1] is [x]"), "a[1] is [x]");
    }

    #[test]
    fn minimal_file_gets_defaults() {
        let cfg = Config::from_toml(MINIMAL).unwrap();
        assert_eq!(cfg.dataplane.burst, 32);
        assert_eq!(cfg.dataplane.idle, IdleSetting::Adaptive);
        let args = cfg.eal_args();
        assert!(args.contains(&"--no-huge".to_string()));
        assert!(args.contains(&"--vdev=net_null0".to_string()));
        assert!(!args.contains(&"--no-telemetry".to_string()), "{args:?}");
    }

    #[test]
    fn capture_needs_a_shared_configuration() {
        let capture = MINIMAL.replace("[eal]\n", "[eal]\ncapture = true\n");
        let err = Config::from_toml(&capture).unwrap_err().to_string();
        assert!(
            err.contains("eal.capture") && err.contains("hugepages"),
            "{err}"
        );
        let with_hugepages = capture.replace("hugepages = false", "hugepages = true");
        assert!(Config::from_toml(&with_hugepages).unwrap().eal.capture);
    }

    #[test]
    fn telemetry_is_on_unless_the_file_turns_it_off() {
        let off = MINIMAL.replace("[eal]\n", "[eal]\ntelemetry = false\n");
        let args = Config::from_toml(&off).unwrap().eal_args();
        assert!(args.contains(&"--no-telemetry".to_string()), "{args:?}");
    }

    #[test]
    fn icmp_limits_default_to_linux_per_source_and_come_from_the_file() {
        let c = Config::from_toml(MINIMAL)
            .unwrap()
            .control_config(Vec::new());
        assert_eq!((c.icmp_rate_per_s, c.icmp_burst), (1000, 100));
        assert_eq!(
            (c.icmp_per_source_rate_per_s, c.icmp_per_source_burst),
            (1, 6)
        );
        let text = format!("{MINIMAL}\n[icmp]\nper_source_rate_per_s = 0\nper_source_burst = 3\n");
        let c = Config::from_toml(&text).unwrap().control_config(Vec::new());
        assert_eq!(
            (c.icmp_per_source_rate_per_s, c.icmp_per_source_burst),
            (0, 3)
        );
    }

    fn error_of(text: &str) -> String {
        Config::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_key_the_value_and_the_expectation() {
        let e = error_of(&MINIMAL.replace("core = 0", "core = 999"));
        assert!(e.contains("workers[0].core") && e.contains("999"), "{e}");
        let e = error_of(&format!("{MINIMAL}\n[dataplane]\nburst = 48\n"));
        assert!(e.contains("dataplane.burst") && e.contains("48"), "{e}");
        let e = error_of(&MINIMAL.replace("rx = [\"blue\"]", "rx = [\"green\"]"));
        assert!(e.contains("workers[0].rx") && e.contains("green"), "{e}");
        let e = error_of(&format!("{MINIMAL}\n[dataplane]\nidle = \"sometimes\"\n"));
        assert!(e.contains("sometimes") && e.contains("poll"), "{e}");
        let e = error_of(&format!("{MINIMAL}\nbogus = 1\n"));
        assert!(e.contains("bogus"), "{e}");
        let e = error_of(&format!(
            "{MINIMAL}\n[[networks]]\nname = \"n\"\nvni = 1\nports = [\"blue\"]\n[[routers]]\nname = \"r\"\n[[routers.interfaces]]\nnetwork = \"n\"\naddress = \"10.0.1.0/24\"\nmac = \"fa:16:3e:00:00:01\"\n"
        ));
        assert!(
            e.contains("10.0.1.0/24") && e.contains("host address"),
            "{e}"
        );
        let e = error_of(&format!(
            "{MINIMAL}\n[[networks]]\nname = \"n\"\nvni = 1\nports = [\"blue\"]\n[[routers]]\nname = \"r\"\n[[routers.interfaces]]\nnetwork = \"n\"\naddress = \"10.0.1.1/24\"\nmac = \"01:16:3e:00:00:01\"\n"
        ));
        assert!(
            e.contains("routers[0].interfaces[0]") && e.contains("unicast"),
            "{e}"
        );
    }

    /// MINIMAL with an external port (`ext`) polled by the worker.
    fn with_external_port(extra: &str) -> String {
        MINIMAL
            .replace(
                "vdevs = [\"net_null0\"]",
                "vdevs = [\"net_null0\", \"net_null1\"]",
            )
            .replace("rx = [\"blue\"]", "rx = [\"blue\", \"ext\"]")
            + "\n[[ports]]\nname = \"ext\"\ndevice = \"net_null1\"\nexternal = true\n"
            + extra
    }

    #[test]
    fn floating_ips_need_the_external_port_and_network() {
        let network = r#"
[host]
name = "a"
dvr_mac = "fa:16:3f:00:00:0a"
vtep = "192.0.2.10"
[[networks]]
name = "blue"
vni = 1
ports = ["blue"]
[[routers]]
name = "r"
[[routers.interfaces]]
network = "blue"
address = "10.0.1.1/24"
mac = "fa:16:3e:00:01:01"
[[instance_ports]]
network = "blue"
ip = "10.0.1.5"
mac = "fa:16:3e:aa:01:05"
host = "a"
[[floating_ips]]
ip = "203.0.113.10"
router = "r"
port = "10.0.1.5"
"#;
        let external = "\n[external]\naddress = \"203.0.113.21/24\"\ngateway = \"203.0.113.1\"\n";
        let cfg = Config::from_toml(&with_external_port(&format!("{network}{external}"))).unwrap();
        let changes = cfg.changes().unwrap();
        assert!(matches!(changes.last(), Some(Change::AddFloatingIp { .. })));
        // The instance is on this host: no external network, no floating IP.
        let e = error_of(&with_external_port(network));
        assert!(
            e.contains("floating_ips[0]") && e.contains("no external network"),
            "{e}"
        );
        // An external network needs an external port.
        let e = error_of(&format!("{MINIMAL}{external}"));
        assert!(e.contains("external") && e.contains("external port"), "{e}");
        let e = error_of(&with_external_port(&format!(
            "{network}{}",
            external.replace("203.0.113.1\"", "198.51.100.1\"")
        )));
        assert!(
            e.contains("external.gateway") && e.contains("outside"),
            "{e}"
        );
        let e = error_of(
            &with_external_port("").replace("external = true", "external = true\nfabric = true"),
        );
        assert!(e.contains("ports[1]") && e.contains("not both"), "{e}");
    }
}
