//! `dvr-bench icount`: runs every scenario of [`crate::icount`] under callgrind and reports
//! instructions per packet, optionally against a baseline.

use std::path::Path;
use std::process::Command;

use serde::{Deserialize, Serialize};

use super::machine::output;
use crate::icount::Scenario;

/// Instruction counts of one build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcountResults {
    /// `git describe --always --dirty`.
    pub commit: String,
    /// `valgrind --version`.
    pub valgrind: String,
    /// Per scenario.
    pub scenarios: Vec<IcountScenario>,
}

/// One scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IcountScenario {
    /// Its name.
    pub name: String,
    /// Frames counted.
    pub packets: u64,
    /// Instructions (`Ir`) inside `process_burst`, all frames.
    pub instructions: u64,
    /// Per frame.
    pub instructions_per_packet: f64,
}

/// Runs every scenario `iterations` bursts under callgrind.
pub fn measure(binary: &Path, iterations: usize) -> Result<IcountResults, String> {
    let out = std::env::temp_dir().join(format!("dvr-icount-{}.out", std::process::id()));
    let mut scenarios = Vec::new();
    for s in Scenario::ALL {
        let status = Command::new("valgrind")
            .arg("--tool=callgrind")
            .arg("--toggle-collect=*icount_measured_burst*")
            .arg(format!("--callgrind-out-file={}", out.display()))
            .arg(binary)
            .arg(s.name())
            .arg(iterations.to_string())
            .output()
            .map_err(|e| format!("valgrind: {e} (apt-get install valgrind)"))?;
        if !status.status.success() {
            return Err(format!(
                "{} under callgrind: {}",
                s.name(),
                String::from_utf8_lossy(&status.stderr)
            ));
        }
        let stdout = String::from_utf8_lossy(&status.stdout);
        let packets: u64 = stdout
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .ok_or(format!("{}: no packet count in {stdout:?}", s.name()))?;
        let text = std::fs::read_to_string(&out).map_err(|e| e.to_string())?;
        let instructions: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("totals:"))
            .and_then(|t| t.split_whitespace().next()?.parse().ok())
            .ok_or(format!("{}: no totals in the callgrind output", s.name()))?;
        if instructions == 0 {
            return Err(format!(
                "{}: nothing counted (is icount_measured_burst in the binary?)",
                s.name()
            ));
        }
        scenarios.push(IcountScenario {
            name: s.name().into(),
            packets,
            instructions,
            instructions_per_packet: instructions as f64 / packets as f64,
        });
    }
    let _ = std::fs::remove_file(&out);
    Ok(IcountResults {
        commit: output("git", &["describe", "--always", "--dirty"]),
        valgrind: output("valgrind", &["--version"]),
        scenarios,
    })
}

/// Scenarios that need more than `1 + tolerance` times the baseline's instructions.
pub fn regressions(now: &IcountResults, base: &IcountResults, tolerance: f64) -> Vec<String> {
    now.scenarios
        .iter()
        .filter_map(|s| {
            let b = base.scenarios.iter().find(|b| b.name == s.name)?;
            (s.instructions_per_packet > b.instructions_per_packet * (1.0 + tolerance)).then(|| {
                format!(
                    "{} {:.1} > {:.1}",
                    s.name, s.instructions_per_packet, b.instructions_per_packet
                )
            })
        })
        .collect()
}

/// A markdown table, with the change against `base` when given.
pub fn markdown(now: &IcountResults, base: Option<&IcountResults>) -> String {
    let mut md = format!(
        "Instructions per packet in `Engine::process_burst` (bursts of 32 64-byte frames; \
         callgrind, {}; commit {}):\n\n| scenario | instructions / packet |{}\n|---|---|{}\n",
        now.valgrind,
        now.commit,
        if base.is_some() {
            " baseline | change |"
        } else {
            ""
        },
        if base.is_some() { "---|---|" } else { "" },
    );
    for s in &now.scenarios {
        let extra = base
            .and_then(|b| b.scenarios.iter().find(|b| b.name == s.name))
            .map(|b| {
                format!(
                    " {:.1} | {:+.1}% |",
                    b.instructions_per_packet,
                    (s.instructions_per_packet / b.instructions_per_packet - 1.0) * 100.0
                )
            })
            .unwrap_or_default();
        md.push_str(&format!(
            "| {} | {:.1} |{extra}\n",
            s.name, s.instructions_per_packet
        ));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(v: f64) -> IcountResults {
        IcountResults {
            commit: String::new(),
            valgrind: String::new(),
            scenarios: vec![IcountScenario {
                name: "route-local".into(),
                packets: 100,
                instructions: (v * 100.0) as u64,
                instructions_per_packet: v,
            }],
        }
    }

    #[test]
    fn regressions_beyond_the_tolerance() {
        assert!(regressions(&results(101.0), &results(100.0), 0.02).is_empty());
        assert_eq!(regressions(&results(103.0), &results(100.0), 0.02).len(), 1);
        assert!(markdown(&results(103.0), Some(&results(100.0))).contains("+3.0%"));
    }
}
