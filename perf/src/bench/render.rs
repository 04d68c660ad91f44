//! The markdown report of a run: an introduction (the plan and the machine), then one table
//! per figure (the maximum forwarding rate, or PDR and NDR; ratios; dvrd's workers; latency;
//! run quality), the problems met and the plots. Every table has one row per block (or per
//! block and device), written by [`row`] under a [`header`]; a block is a generator, a frame
//! size and a route table.

use std::fmt::Write as _;

use super::dut::DutKind;
use super::plan::{Method, Plan};
use super::results::{ratio_name, BlockSummary, DutSummary, RunResults, Spread, RATIOS};

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

/// A block in prose: `dvr-pktgen 64 B 1M routes`.
fn block_label(b: &BlockSummary) -> String {
    format!(
        "{} {} {} routes",
        b.generator,
        frame_label(&b.frame_size),
        routes_label(b.routes)
    )
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

/// The header of a table whose rows start with the block (and the device, if
/// `device_column`), then `cols`.
fn header(md: &mut String, device_column: bool, cols: &[String]) {
    let first = if device_column { "device | " } else { "" };
    let _ = writeln!(
        md,
        "| generator | frame | routes | {first}{} |",
        cols.join(" | ")
    );
    let _ = writeln!(
        md,
        "|---|---|---|{}{}",
        if device_column { "---|" } else { "" },
        "---|".repeat(cols.len())
    );
}

/// One row: the block, the device (if any), then `cells`.
fn row(md: &mut String, b: &BlockSummary, device: Option<DutKind>, cells: &[String]) {
    let device = device.map_or(String::new(), |k| format!("{k} | "));
    let _ = writeln!(
        md,
        "| {} | {} | {} | {device}{} |",
        b.generator,
        frame_label(&b.frame_size),
        routes_label(b.routes),
        cells.join(" | ")
    );
}

/// The rows of every block and every device of `duts` it measured, `cells` giving each row's
/// figures (no row where it gives none).
fn device_rows(
    md: &mut String,
    summary: &[BlockSummary],
    duts: &[DutKind],
    cells: impl Fn(&DutSummary) -> Option<Vec<String>>,
) {
    for b in summary {
        for &k in duts {
            if let Some(cells) = b.duts.get(&k).and_then(&cells) {
                row(md, b, Some(k), &cells);
            }
        }
    }
}

/// The markdown report (tables only; the prose lives in BENCHMARKS.md).
pub fn markdown(r: &RunResults, plot_names: &[String]) -> String {
    let mut md = String::new();
    let duts = duts_of(&r.summary);
    introduction(&mut md, r);
    let of = match r.plan.method {
        Method::Mfr => {
            mfr_table(&mut md, &r.summary, &duts);
            "MFR"
        }
        Method::Pdr => {
            rate_tables(&mut md, &r.summary, &duts);
            "PDR"
        }
    };
    ratio_table(&mut md, &r.summary, of);
    worker_table(&mut md, &r.summary);
    latency_table(&mut md, &r.summary, &r.plan.ladder, &duts, of);
    match r.plan.method {
        Method::Mfr => mfr_quality(&mut md, &r.summary, &r.plan, &duts),
        Method::Pdr => quality_section(&mut md, &r.summary, &r.plan, &duts),
    }
    problems(&mut md, r);
    if !plot_names.is_empty() {
        md.push('\n');
        for name in plot_names {
            let _ = writeln!(md, "![{name}]({name})");
        }
    }
    md
}

/// What was measured, on what, and a warning about real-time processes.
fn introduction(md: &mut String, r: &RunResults) {
    let m = &r.machine;
    let p = &r.plan;
    let how = match p.method {
        Method::Mfr => format!(
            "Maximum forwarding rate under overload (RFC 2889): the generator at full rate, \
             trials of {} s after {} s of warm-up, the forwarded rate counted every second and \
             the trial's figure the median of those per-second rates; {} flows",
            p.trial_s, p.warmup_s, p.flows
        ),
        Method::Pdr => format!(
            "Trials of {} s, search resolution {}%, PDR = loss at most {}%, {} flows",
            p.trial_s,
            p.resolution * 100.0,
            p.pdr_loss_ratio * 100.0,
            p.flows
        ),
    };
    let _ = writeln!(
        md,
        "Run `{}` of {} ({} mode, {:.0} min): {} rounds, interleaved, device order rotated each \
         round. {how}.\n",
        r.command,
        r.started,
        p.mode,
        r.duration_s / 60.0,
        p.rounds,
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
}

/// The PDR and the NDR of every device, one column each.
fn rate_tables(md: &mut String, summary: &[BlockSummary], duts: &[DutKind]) {
    let names: Vec<String> = duts.iter().map(|d| d.name().to_owned()).collect();
    for (title, pdr) in [
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
        header(md, false, &names);
        for b in summary {
            let cells: Vec<String> = duts
                .iter()
                .map(|k| b.duts.get(k).map_or("-".into(), |d| rate_cell(d, pdr)))
                .collect();
            row(md, b, None, &cells);
        }
        md.push('\n');
    }
}

/// A device's PDR (marked when the generator bounded it) or NDR.
fn rate_cell(d: &DutSummary, pdr: bool) -> String {
    let s = if pdr { &d.pdr_mpps } else { &d.ndr_mpps };
    let mark = if pdr && d.generator_limited_rounds > 0 {
        format!(" (gen-bound {}x)", d.generator_limited_rounds)
    } else {
        String::new()
    };
    format!("{}{mark}", spread(s, 2))
}

/// The maximum forwarding rate of every device, one column each, one row per block.
fn mfr_table(md: &mut String, summary: &[BlockSummary], duts: &[DutKind]) {
    let names: Vec<String> = duts.iter().map(|d| d.name().to_owned()).collect();
    let _ = writeln!(
        md,
        "#### Maximum forwarding rate, Mpps: median [min-max] over the rounds\n"
    );
    header(md, false, &names);
    for b in summary {
        let cells: Vec<String> = duts
            .iter()
            .map(|k| b.duts.get(k).map_or("-".into(), |d| spread(&d.mfr_mpps, 2)))
            .collect();
        row(md, b, None, &cells);
    }
    md.push('\n');
}

fn ratio_table(md: &mut String, summary: &[BlockSummary], of: &str) {
    let ratio_names: Vec<String> = RATIOS
        .iter()
        .map(|&(a, b)| ratio_name(a, b))
        .filter(|n| summary.iter().any(|b| b.ratios.contains_key(n)))
        .collect();
    let _ = writeln!(
        md,
        "#### {of} ratios within a round: median [min-max] over the rounds\n"
    );
    header(md, false, &ratio_names);
    for b in summary {
        let cells: Vec<String> = ratio_names
            .iter()
            .map(|n| spread(&b.ratios.get(n).cloned(), 2))
            .collect();
        row(md, b, None, &cells);
    }
    md.push('\n');
}

fn worker_table(md: &mut String, summary: &[BlockSummary]) {
    let _ = writeln!(
        md,
        "#### dvrd workers over the whole block (every trial of every round)\n"
    );
    let cols = ["busy cycles / packet", "empty-poll share", "packets"].map(String::from);
    header(md, true, &cols);
    let dvrd = [DutKind::Dvrd, DutKind::DvrdVxlan, DutKind::DvrdFip];
    device_rows(md, summary, &dvrd, |d| {
        d.workers.map(|w| {
            vec![
                format!("{:.0}", w.busy_cycles_per_packet),
                format!("{:.1}%", w.empty_poll_share * 100.0),
                w.rx_packets.to_string(),
            ]
        })
    });
    md.push('\n');
}

fn latency_table(
    md: &mut String,
    summary: &[BlockSummary],
    fractions: &[f64],
    duts: &[DutKind],
    of: &str,
) {
    let _ = writeln!(
        md,
        "#### Latency, us: p50 / p99 / p99.9 (medians over the rounds) at a fraction of each \
         device's own {of} (dvr-pktgen, paced; it stamps every packet)\n"
    );
    let cols: Vec<String> = fractions
        .iter()
        .map(|f| format!("{:.0}% of {of}", f * 100.0))
        .collect();
    header(md, true, &cols);
    let stamped: Vec<BlockSummary> = summary
        .iter()
        .filter(|b| b.duts.values().any(|d| !d.ladder.is_empty()))
        .cloned()
        .collect();
    device_rows(md, &stamped, duts, |d| {
        let cells = fractions
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
        Some(cells)
    });
    md.push('\n');
}

/// The background load, and per device the rounds and trials that counted.
fn quality_section(md: &mut String, summary: &[BlockSummary], p: &Plan, duts: &[DutKind]) {
    let _ = writeln!(
        md,
        "#### Run quality\n\nBackground load before each round (busy share of all CPUs with \
         every benchmark process frozen or idle; 0% on a quiet machine): {}. A trial is \
         *disturbed* when the device's worker or the generator waited more than {} us for a \
         CPU, or the generator fell more than {} us behind its schedule; disturbed trials are \
         repeated up to {} times.\n",
        background(summary),
        p.wait_limit_us,
        p.lag_limit_us,
        p.retries
    );
    let cols = [
        "rounds ok",
        "rounds with a PDR",
        "PDR bounded by the generator",
        "trials repeated (disturbed)",
        "counted trials still disturbed",
    ]
    .map(String::from);
    header(md, true, &cols);
    device_rows(md, summary, duts, |d| {
        Some(vec![
            format!("{}/{}", d.rounds_ok, p.rounds),
            format!("{}/{}", d.rounds_with_pdr, d.rounds_ok),
            d.generator_limited_rounds.to_string(),
            d.trials_repeated.to_string(),
            d.trials_disturbed.to_string(),
        ])
    });
}

/// The background load of every block before its rounds, in prose.
fn background(summary: &[BlockSummary]) -> String {
    summary
        .iter()
        .map(|b| {
            let busy = b.background_busy.as_ref().map_or("-".into(), |s| {
                format!(
                    "{:.0}% [{:.0}-{:.0}%]",
                    s.median * 100.0,
                    s.min * 100.0,
                    s.max * 100.0
                )
            });
            format!("{} {busy}", block_label(b))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The run quality of a maximum-forwarding-rate run: the background load, and per device the
/// offered load, how steady the per-second rates were within a trial, and the stalls.
fn mfr_quality(md: &mut String, summary: &[BlockSummary], p: &Plan, duts: &[DutKind]) {
    let _ = writeln!(
        md,
        "#### Run quality\n\nBackground load before each round (busy share of all CPUs with \
         every benchmark process frozen or idle; 0% on a quiet machine): {}. *Spread* is \
         (max - min) / median of a trial's per-second forwarded rates (0 for a steady trial); \
         the per-second range is the smallest and largest per-second rate of any round: a \
         stall of the virtual CPU shows as a low second. *Sent* is the median per-second rate \
         the generator's TX queue took (it offers more: it sends at full rate, and the device's \
         ring refuses the rest). A trial *waited* when the device's \
         worker and the generator together waited more than {} us for a CPU.\n",
        background(summary),
        p.wait_limit_us,
    );
    let cols = [
        "rounds ok",
        "sent, Mpps",
        "per-second spread",
        "per-second range, Mpps",
        "trials that waited",
    ]
    .map(String::from);
    header(md, true, &cols);
    device_rows(md, summary, duts, |d| {
        let range = d
            .per_second_range_mpps
            .map_or("-".into(), |(lo, hi)| format!("{lo:.2}-{hi:.2}"));
        Some(vec![
            format!("{}/{}", d.rounds_ok, p.rounds),
            spread(&d.offered_mpps, 2),
            spread(&d.per_second_spread, 2),
            range,
            d.trials_disturbed.to_string(),
        ])
    });
}

/// Every device that did not start or stopped, and every failed measurement.
fn problems(md: &mut String, r: &RunResults) {
    let mut errors = Vec::new();
    for (b, s) in r.blocks.iter().zip(&r.summary) {
        let block = block_label(s);
        for d in &b.duts {
            if let Some(e) = &d.error {
                errors.push(format!("{block}, {}: {e}", d.kind));
            }
        }
        for round in &b.rounds {
            for run in &round.runs {
                if let Some(e) = &run.error {
                    errors.push(format!("{block}, round {}, {}: {e}", round.round, run.kind));
                }
            }
        }
    }
    if !errors.is_empty() {
        let _ = writeln!(md, "\nProblems:\n");
        for e in errors {
            let _ = writeln!(md, "- {e}");
        }
    }
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
