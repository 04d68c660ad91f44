//! Configuration reload: SIGHUP (`systemctl reload`) or the API's `config.reload` re-reads the
//! file dvrd was started with and makes the running routing state equal to the file's.
//!
//! The file is read and validated exactly as at start ([`Config::load`], the same messages);
//! its routing state becomes a model on the running host's ports, and [`Model::diff`] gives
//! the changes from the running model to it. They are applied as one batch through
//! [`ControlPlane::apply_batch`], like an API batch: all or nothing, and what both share is
//! never rewritten, so the flows it carries do not notice. A file that does not load, a
//! routing state the model refuses, or a batch the tables cannot hold is refused: the log
//! and the API's answer say why, and nothing changes.
//!
//! The file wins over the API: objects added at run time that the file does not have are
//! removed, those it has are put back as it says. What cannot change while dvrd runs (EAL,
//! ports, workers, data-plane sizes, table capacities, the control socket and metrics
//! address, the neighbour timers, the per-source ICMP limit, `[fleet]`) is named in the log
//! as needing a restart and left as it is; the rest is still applied. Of the other settings,
//! the router-wide ICMP limit (`[icmp] rate_per_s`, `burst`) and the log filter (`[log]
//! level`, unless `DVR_LOG` overrides it) change at once. On a fleet member the routing state
//! follows the fleet's store and the reload leaves it alone; its file's `[external]` is the
//! fleet's starting point too, so a change of it needs a restart as well.
//!
//! The signal handler only sets a flag (async-signal-safe); the control thread's loop polls it
//! between turns and reloads there, the one writer of the tables.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use router_core::model::{Diff, Model};
use tracing::{info, warn};

use super::control_thread::ControlThread;
use super::{Daemon, DaemonError};
use crate::api::view::{ReloadCounts, ReloadView};
use crate::api::{ApiError, ErrorCode};
use crate::config::{Config, IcmpConfig};

/// The configuration in force and where it came from.
pub(super) struct Reload {
    /// The file dvrd was started with (`None`: started from a configuration in memory).
    path: Option<PathBuf>,
    /// What is in force: the file at start, with what each reload applied.
    config: Config,
    /// Set by SIGHUP.
    requested: Arc<AtomicBool>,
    pub(super) counts: ReloadCounts,
}

impl Reload {
    /// Reloads `path` on SIGHUP; `config` is what dvrd started with.
    pub(super) fn new(path: Option<PathBuf>, config: Config) -> Result<Reload, DaemonError> {
        let requested = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&requested))
            .map_err(|e| DaemonError::Other(format!("signal handler: {e}")))?;
        Ok(Reload {
            path,
            config,
            requested,
            counts: ReloadCounts::default(),
        })
    }

    /// True once after each SIGHUP.
    pub(super) fn take_request(&self) -> bool {
        self.requested.swap(false, Ordering::Relaxed)
    }
}

/// What a valid file changes, before anything is applied.
struct Plan {
    file: Config,
    diff: Diff,
    settings: Vec<String>,
    needs_restart: Vec<String>,
}

impl ControlThread {
    /// Re-reads the configuration file and applies it; logs one line either way and counts it.
    pub(super) fn reload(&mut self, daemon: &Daemon) -> Result<ReloadView, ApiError> {
        let fleet = daemon.fleet.is_some();
        let outcome = self
            .plan_reload(fleet)
            .and_then(|plan| self.apply_reload(plan, fleet));
        match &outcome {
            Ok(view) => {
                self.reload.counts.applied += 1;
                if view.needs_restart.is_empty() {
                    info!("{}", view.summary);
                } else {
                    warn!("{}", view.summary);
                }
            }
            Err(e) => {
                self.reload.counts.refused += 1;
                warn!("reload refused, nothing changed: {}", e.message);
            }
        }
        outcome
    }

    /// Reads and validates the file and works out what it changes.
    fn plan_reload(&self, fleet: bool) -> Result<Plan, ApiError> {
        let path = self.reload.path.as_ref().ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidConfig,
                "dvrd was started without a configuration file: nothing to reload",
            )
        })?;
        let file = Config::load(path).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidConfig,
                format!("invalid configuration: {e}"),
            )
        })?;
        let running = &self.reload.config;
        let mut needs_restart = restart_keys(running, &file);
        let diff = if fleet {
            if file.external != running.external {
                needs_restart.push("external".into());
            }
            Diff::default()
        } else {
            self.cp.model().diff(&target_model(self.cp.model(), &file)?)
        };
        Ok(Plan {
            settings: runtime_settings(running, &file),
            file,
            diff,
            needs_restart,
        })
    }

    /// Applies the plan's batch, then its runtime settings; keeps what is now in force.
    fn apply_reload(&mut self, plan: Plan, fleet: bool) -> Result<ReloadView, ApiError> {
        let Plan {
            file,
            diff,
            settings,
            needs_restart,
        } = plan;
        self.cp.apply_batch(&diff.changes).map_err(|(i, e)| {
            ApiError::new(
                ErrorCode::InvalidConfig,
                format!("the routing state does not apply (change {i} of the reload): {e}"),
            )
        })?;
        self.settle_holds();
        let running = &mut self.reload.config;
        if settings.iter().any(|s| s.starts_with("icmp.")) {
            self.cp.set_icmp_rate(file.icmp.rate_per_s, file.icmp.burst);
        }
        if settings.iter().any(|s| s == "log.level") {
            if let Err(e) = crate::logging::set_level(&file.log.level) {
                warn!("reload: [log] level: {e}");
            }
        }
        take_reloadable(running, &file, !fleet);
        let mut view = ReloadView {
            changes: diff.changes.len(),
            added: diff.added,
            removed: diff.removed,
            replaced: diff.replaced,
            settings,
            needs_restart,
            fleet,
            summary: String::new(),
        };
        view.summary = summary(&view);
        Ok(view)
    }
}

/// The file's routing state as a model of this host: its ports, with the file's objects
/// validated in the file's order, as at start.
fn target_model(running: &Model, file: &Config) -> Result<Model, ApiError> {
    let mut target = running.without_objects();
    for (key, change) in file.changes_with_keys() {
        target.apply(&change).map_err(|e| {
            ApiError::new(ErrorCode::InvalidConfig, format!("{key}: {e}")).for_field(key)
        })?;
    }
    Ok(target)
}

/// `running` with the file's routing state (when it owns it) and runtime settings.
fn take_reloadable(running: &mut Config, file: &Config, routing: bool) {
    if routing {
        running.host.clone_from(&file.host);
        running.peers.clone_from(&file.peers);
        running.networks.clone_from(&file.networks);
        running.routers.clone_from(&file.routers);
        running.instance_ports.clone_from(&file.instance_ports);
        running.external.clone_from(&file.external);
        running.floating_ips.clone_from(&file.floating_ips);
    }
    running.icmp.rate_per_s = file.icmp.rate_per_s;
    running.icmp.burst = file.icmp.burst;
    if log_level_from_file() {
        running.log.level.clone_from(&file.log.level);
    }
}

/// The log filter follows the file unless `DVR_LOG` set it.
fn log_level_from_file() -> bool {
    std::env::var_os("DVR_LOG").is_none()
}

/// The runtime settings the file changes.
fn runtime_settings(running: &Config, file: &Config) -> Vec<String> {
    let mut out = Vec::new();
    if running.icmp.rate_per_s != file.icmp.rate_per_s {
        out.push("icmp.rate_per_s".to_string());
    }
    if running.icmp.burst != file.icmp.burst {
        out.push("icmp.burst".to_string());
    }
    if running.log.level != file.log.level && log_level_from_file() {
        out.push("log.level".to_string());
    }
    out
}

/// Pushes `section.field` for each named field that differs between `$a` and `$b`, or
/// `section` when the section differs in a field not named.
macro_rules! changed_fields {
    ($out:ident, $a:expr, $b:expr, $section:literal: $($field:ident),+) => {{
        let named = $out.len();
        $(
            if $a.$field != $b.$field {
                $out.push(concat!($section, ".", stringify!($field)).to_string());
            }
        )+
        if $out.len() == named && $a != $b {
            $out.push($section.to_string());
        }
    }};
}

/// The keys `file` changes that take effect only at a restart.
fn restart_keys(running: &Config, file: &Config) -> Vec<String> {
    let (a, b) = (running, file);
    let mut out = Vec::new();
    changed_fields!(out, a.eal, b.eal, "eal":
        main_core, hugepages, memory_mb, file_prefix, vdevs, pci, telemetry, capture, extra_args);
    changed_fields!(out, a.dataplane, b.dataplane, "dataplane":
        mbufs, mbuf_cache, burst, idle, rx_desc, tx_desc, punt_queue);
    for (key, changed) in [
        ("ports", a.ports != b.ports),
        ("workers", a.workers != b.workers),
    ] {
        if changed {
            out.push(key.to_string());
        }
    }
    changed_fields!(out, a.tables, b.tables, "tables":
        next_hops, l2_entries, tbl8_groups_compact, tbl8_groups_large);
    changed_fields!(out, a.control, b.control, "control": socket, metrics);
    changed_fields!(out, a.fabric, b.fabric, "fabric": gateway);
    changed_fields!(out, a.neighbor, b.neighbor, "neighbor":
        reachable_ms, retrans_ms, probes_max, failed_ms, stale_ms, hold_max);
    // The router-wide ICMP limit is a runtime setting; the per-source one is not.
    let icmp = IcmpConfig {
        rate_per_s: a.icmp.rate_per_s,
        burst: a.icmp.burst,
        ..b.icmp.clone()
    };
    changed_fields!(out, a.icmp, icmp, "icmp": per_source_rate_per_s, per_source_burst);
    if a.fleet != b.fleet {
        out.push("fleet".to_string());
    }
    // A section added to the file format later, not named above. (A log filter that
    // `DVR_LOG` overrides is not the file's to change, now or at a restart.)
    let mut rest = a.clone();
    take_reloadable(&mut rest, b, true);
    rest.log.level.clone_from(&b.log.level);
    if out.is_empty() && rest != *b {
        out.push("other settings".to_string());
    }
    out
}

/// The line a reload logs.
fn summary(v: &ReloadView) -> String {
    let mut s = if v.fleet {
        "reload: routing state left to the fleet".to_string()
    } else {
        format!(
            "reload: applied {} changes (+{} -{} ~{})",
            v.changes, v.added, v.removed, v.replaced
        )
    };
    if !v.settings.is_empty() {
        s.push_str(&format!("; settings: {}", v.settings.join(", ")));
    }
    if !v.needs_restart.is_empty() {
        s.push_str(&format!("; needs restart: {}", v.needs_restart.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Config {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dvrd.example.toml");
        Config::from_toml(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn settings_that_need_a_restart_are_named_by_key() {
        let a = example();
        assert!(restart_keys(&a, &a).is_empty());
        let mut b = a.clone();
        b.eal.memory_mb += 64;
        b.tables.next_hops *= 2;
        b.neighbor.retrans_ms += 1;
        b.ports[0].mtu = 9000;
        b.icmp.rate_per_s += 1;
        b.routers.clear();
        assert_eq!(
            restart_keys(&a, &b),
            [
                "eal.memory_mb",
                "ports",
                "tables.next_hops",
                "neighbor.retrans_ms"
            ]
        );
        assert_eq!(runtime_settings(&a, &b), ["icmp.rate_per_s"]);
    }

    #[test]
    fn the_summary_counts_the_changes_and_names_the_keys() {
        let mut v = ReloadView {
            changes: 3,
            added: 2,
            removed: 1,
            ..ReloadView::default()
        };
        assert_eq!(summary(&v), "reload: applied 3 changes (+2 -1 ~0)");
        v.needs_restart = vec!["eal.memory_mb".into(), "ports".into()];
        v.settings = vec!["icmp.burst".into()];
        assert_eq!(
            summary(&v),
            "reload: applied 3 changes (+2 -1 ~0); settings: icmp.burst; \
             needs restart: eal.memory_mb, ports"
        );
    }

    #[test]
    fn the_file_model_is_validated_with_the_keys_of_the_file() {
        let cfg = example();
        let ports = cfg
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.fabric || p.external));
        let mut running = Model::for_ports(ports);
        running.external_port = cfg.ports.iter().any(|p| p.external);
        let target = target_model(&running, &cfg).unwrap();
        assert_eq!(running.diff(&target).added, cfg.changes().unwrap().len());
        let mut bad = cfg.clone();
        bad.routers[0].routes[0].via = "192.0.2.99".parse().unwrap();
        let e = target_model(&running, &bad).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert!(e.message.starts_with("routers[0].routes[0]: "), "{e}");
    }
}
