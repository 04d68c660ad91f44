//! The markdown report of a run.

use std::fmt::Write as _;

use super::dut::DutKind;
use super::results::{ratio_name, BlockSummary, RunResults, Spread, RATIOS};

/// Formats a route count: 1, 20k, 1M.
pub fn routes_label(routes: usize) -> String {
    if routes >= 1_000_000 && routes % 1_000_000 == 0 {
        format!("{}M", routes / 1_000_000)
    } else if routes >= 1000 && routes % 1000 == 0 {
        format!("{}k", routes / 1000)
    } else {
        routes.to_string()
    }
}

fn frame_label(size: &str) -> String {
    if size == "imix" {
        "IMIX".into()
    } else {
        format!("{size} B")
    }
}

fn spread(s: &Option<Spread>, digits: usize) -> String {
    match s {
        Some(s) => format!("{:.d$} [{:.d$}-{:.d$}]", s.median, s.min, s.max, d = digits),
        None => "-".into(),
    }
}

fn duts_of(summary: &[BlockSummary]) -> Vec<DutKind> {
    DutKind::ALL
        .into_iter()
        .filter(|k| summary.iter().any(|b| b.duts.contains_key(k)))
        .collect()
}

/// The markdown report (tables only; the prose lives in BENCHMARKS.md).
pub fn markdown(r: &RunResults, plot_names: &[String]) -> String {
    let mut md = String::new();
    let m = &r.machine;
    let p = &r.plan;
    let duts = duts_of(&r.summary);
    let _ = writeln!(
        md,
        "Run `{}` of {} ({} mode, {:.0} min): {} rounds, interleaved, device order rotated each \
         round. Trials of {} s, search resolution {}%, PDR = loss at most {}%, {} flows.\n",
        r.command,
        r.started,
        p.mode,
        r.duration_s / 60.0,
        p.rounds,
        p.trial_s,
        p.resolution * 100.0,
        p.pdr_loss_ratio * 100.0,
        p.flows
    );
    let _ = writeln!(
        md,
        "Machine: {} x {}, kernel {}, DPDK {}, {}; hugepages {} ({} x 2 MiB reserved); load \
         average {:.2} at start, {:.2} at end; priority boost {}; commit {}. Build: {}. \
         Placement: device worker on CPU {}, device main lcore on CPU {}, generator on CPU {}.\n",
        m.nproc,
        m.cpu_model,
        m.kernel,
        m.dpdk,
        m.rustc,
        if m.hugepages_used { "used" } else { "not used" },
        m.hugepages_total,
        m.load_start,
        m.load_end,
        if m.priority_boost { "on" } else { "off" },
        m.commit,
        m.build_flags,
        r.placement.worker_core,
        r.placement.main_core,
        r.placement.generator_core,
    );

    if !m.realtime_processes.is_empty() {
        let _ = writeln!(
            md,
            "**Real-time processes were running** (they preempt every normal process on their \
             CPUs, the benchmark's included): {}.\n",
            m.realtime_processes.join("; ")
        );
    }
    let header = |md: &mut String, first: &str, cols: &[String]| {
        let _ = writeln!(md, "| frame | routes | {first}{} |", cols.join(" | "));
        let _ = writeln!(
            md,
            "|---|---|{}{}",
            if first.is_empty() { "" } else { "---|" },
            "---|".repeat(cols.len())
        );
    };
    let names: Vec<String> = duts.iter().map(|d| d.name().to_owned()).collect();

    for (title, pick) in [
        (
            "PDR (loss <= 0.5%), Mpps: median [min-max] over the rounds",
            true,
        ),
        (
            "NDR (no loss), Mpps: median [min-max] over the rounds",
            false,
        ),
    ] {
        let _ = writeln!(md, "#### {title}\n");
        header(&mut md, "", &names);
        for b in &r.summary {
            let cells: Vec<String> = duts
                .iter()
                .map(|k| match b.duts.get(k) {
                    Some(d) => {
                        let s = if pick { &d.pdr_mpps } else { &d.ndr_mpps };
                        let mark = if pick && d.generator_limited_rounds > 0 {
                            format!(" (gen-bound {}x)", d.generator_limited_rounds)
                        } else {
                            String::new()
                        };
                        format!("{}{mark}", spread(s, 2))
                    }
                    None => "-".into(),
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} |",
                frame_label(&b.frame_size),
                routes_label(b.routes),
                cells.join(" | ")
            );
        }
        md.push('\n');
    }

    let ratio_names: Vec<String> = RATIOS.iter().map(|&(a, b)| ratio_name(a, b)).collect();
    let _ = writeln!(
        md,
        "#### PDR ratios within a round: median [min-max] over the rounds\n"
    );
    header(&mut md, "", &ratio_names);
    for b in &r.summary {
        let cells: Vec<String> = ratio_names
            .iter()
            .map(|n| spread(&b.ratios.get(n).cloned(), 2))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            frame_label(&b.frame_size),
            routes_label(b.routes),
            cells.join(" | ")
        );
    }
    md.push('\n');

    let _ = writeln!(
        md,
        "#### dvrd workers over the whole block (every trial of every round)\n"
    );
    header(
        &mut md,
        "device | ",
        &[
            "busy cycles / packet".into(),
            "empty-poll share".into(),
            "packets".into(),
        ],
    );
    for b in &r.summary {
        for k in [DutKind::Dvrd, DutKind::DvrdVxlan] {
            if let Some(w) = b.duts.get(&k).and_then(|d| d.workers) {
                let _ = writeln!(
                    md,
                    "| {} | {} | {k} | {:.0} | {:.1}% | {} |",
                    frame_label(&b.frame_size),
                    routes_label(b.routes),
                    w.busy_cycles_per_packet,
                    w.empty_poll_share * 100.0,
                    w.rx_packets
                );
            }
        }
    }
    md.push('\n');

    let fractions: Vec<f64> = p.ladder.clone();
    let _ = writeln!(
        md,
        "#### Latency, us: p50 / p99 / p99.9 (medians over the rounds) at a fraction of each \
         device's own PDR\n"
    );
    let cols: Vec<String> = fractions
        .iter()
        .map(|f| format!("{:.0}% of PDR", f * 100.0))
        .collect();
    header(&mut md, "device | ", &cols);
    for b in &r.summary {
        for k in &duts {
            let Some(d) = b.duts.get(k) else { continue };
            let cells: Vec<String> = fractions
                .iter()
                .map(|f| {
                    d.ladder
                        .iter()
                        .find(|l| (l.fraction - f).abs() < 1e-9)
                        .map_or("-".into(), |l| {
                            format!(
                                "{:.1} / {:.1} / {:.1}",
                                l.p50_us.median, l.p99_us.median, l.p999_us.median
                            )
                        })
                })
                .collect();
            let _ = writeln!(
                md,
                "| {} | {} | {k} | {} |",
                frame_label(&b.frame_size),
                routes_label(b.routes),
                cells.join(" | ")
            );
        }
    }
    md.push('\n');

    let _ = writeln!(
        md,
        "#### Run quality\n\nBackground load before each round (busy share of all CPUs with \
         every benchmark process frozen or idle; 0% on a quiet machine): {}. A trial is \
         *disturbed* when the device's worker or the generator waited more than {} us for a \
         CPU, or the generator fell more than {} us behind its schedule; disturbed trials are \
         repeated up to {} times.\n",
        r.summary
            .iter()
            .map(|b| format!(
                "{} {} routes {}",
                frame_label(&b.frame_size),
                routes_label(b.routes),
                b.background_busy.as_ref().map_or("-".into(), |s| format!(
                    "{:.0}% [{:.0}-{:.0}%]",
                    s.median * 100.0,
                    s.min * 100.0,
                    s.max * 100.0
                ))
            ))
            .collect::<Vec<_>>()
            .join(", "),
        p.wait_limit_us,
        p.lag_limit_us,
        p.retries
    );
    header(
        &mut md,
        "device | ",
        &[
            "rounds ok".into(),
            "rounds with a PDR".into(),
            "PDR bounded by the generator".into(),
            "trials repeated (disturbed)".into(),
            "counted trials still disturbed".into(),
        ],
    );
    for b in &r.summary {
        for k in &duts {
            let Some(d) = b.duts.get(k) else { continue };
            let _ = writeln!(
                md,
                "| {} | {} | {k} | {}/{} | {}/{} | {} | {} | {} |",
                frame_label(&b.frame_size),
                routes_label(b.routes),
                d.rounds_ok,
                p.rounds,
                d.rounds_with_pdr,
                d.rounds_ok,
                d.generator_limited_rounds,
                d.trials_repeated,
                d.trials_disturbed
            );
        }
    }
    let errors: Vec<String> = r
        .blocks
        .iter()
        .flat_map(|b| {
            b.duts
                .iter()
                .filter_map(move |d| {
                    d.error.as_ref().map(|e| {
                        format!(
                            "{} {} routes, {}: {e}",
                            frame_label(&b.frame_size),
                            routes_label(b.routes),
                            d.kind
                        )
                    })
                })
                .chain(b.rounds.iter().flat_map(move |round| {
                    round.runs.iter().filter_map(move |run| {
                        run.error.as_ref().map(|e| {
                            format!(
                                "{} {} routes, round {}, {}: {e}",
                                frame_label(&b.frame_size),
                                routes_label(b.routes),
                                round.round,
                                run.kind
                            )
                        })
                    })
                }))
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\nProblems:\n");
        for e in errors {
            let _ = writeln!(md, "- {e}");
        }
    }
    if !plot_names.is_empty() {
        md.push('\n');
        for name in plot_names {
            let _ = writeln!(md, "![{name}]({name})");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(routes_label(1), "1");
        assert_eq!(routes_label(20_000), "20k");
        assert_eq!(routes_label(1_000_000), "1M");
        assert_eq!(routes_label(1500), "1500");
        assert_eq!(frame_label("imix"), "IMIX");
    }
}
