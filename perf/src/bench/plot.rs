//! PNG plots of a run: throughput against route-table size, latency against load.
//!
//! Text needs a TrueType font, read at run time from the usual system paths (no font library
//! is linked); without one the plots are skipped and the markdown tables stand alone.

use std::path::Path;

use plotters::chart::MeshStyle;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::dut::DutKind;
use super::plan::GenKind;
use super::render::routes_label;
use super::results::{BlockSummary, LadderSummary};

/// Fonts tried, in order.
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/lato/Lato-Regular.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const FONT: &str = "sans-serif";

/// Registers the first font found; false when there is none.
pub fn load_font() -> bool {
    for path in FONTS {
        if let Ok(bytes) = std::fs::read(path) {
            // Registered fonts live as long as the process: leaked once.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_ok() {
                return true;
            }
        }
    }
    false
}

fn color(kind: DutKind) -> RGBColor {
    match kind {
        DutKind::TestpmdIo => RGBColor(120, 120, 120),
        DutKind::L3fwd => RGBColor(31, 119, 180),
        DutKind::Dvrd => RGBColor(214, 39, 40),
        DutKind::DvrdVxlan => RGBColor(255, 127, 14),
        DutKind::DvrdFip => RGBColor(44, 160, 44),
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// The (generator, frame size) pairs of the blocks, in order of first appearance.
fn frame_sizes(summary: &[BlockSummary]) -> Vec<(GenKind, &str)> {
    let mut sizes: Vec<(GenKind, &str)> = Vec::new();
    for b in summary {
        let key = (b.generator, b.frame_size.as_str());
        if !sizes.contains(&key) {
            sizes.push(key);
        }
    }
    sizes
}

/// A device's line, labelled with its name for the legend.
fn device_line<'a, CT>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    kind: DutKind,
    points: Vec<(f64, f64)>,
) -> Result<(), String>
where
    CT: CoordTranslate<From = (f64, f64)>,
{
    let c = color(kind);
    chart
        .draw_series(LineSeries::new(points, c.stroke_width(2)))
        .map_err(err)?
        .label(kind.name())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    Ok(())
}

/// The mesh with the axes' descriptions, labels in `font_size` (to add to, then draw).
fn axes<'a, 'b, X, Y>(
    chart: &'b mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    x_desc: &str,
    y_desc: &str,
    font_size: u32,
) -> MeshStyle<'a, 'b, X, Y, BitMapBackend<'a>>
where
    X: Ranged + ValueFormatter<X::ValueType>,
    Y: Ranged + ValueFormatter<Y::ValueType>,
{
    let mut mesh = chart.configure_mesh();
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, font_size));
    mesh
}

/// The legend of the device lines, at `position`.
fn legend<'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    font_size: u32,
    position: SeriesLabelPosition,
) -> Result<(), String> {
    chart
        .configure_series_labels()
        .label_font((FONT, font_size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
        .map_err(err)
}

/// The rate (maximum forwarding rate, or PDR; median, min-max bars) against route-table
/// size, one panel per generator and frame size.
pub fn throughput(path: &Path, summary: &[BlockSummary]) -> Result<(), String> {
    let sizes = frame_sizes(summary);
    let width = 560 * sizes.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((1, sizes.len().max(1)));
    for (panel, &(generator, size)) in panels.iter().zip(&sizes) {
        let mut blocks: Vec<&BlockSummary> = summary
            .iter()
            .filter(|b| b.frame_size == size && b.generator == generator)
            .collect();
        blocks.sort_by_key(|b| b.routes);
        throughput_panel(panel, generator, size, &blocks)?;
    }
    root.present().map_err(err)
}

/// One frame size's PDR against the route-table sizes of `blocks` (sorted by routes).
fn throughput_panel(
    panel: &DrawingArea<BitMapBackend<'_>, Shift>,
    generator: GenKind,
    size: &str,
    blocks: &[&BlockSummary],
) -> Result<(), String> {
    let n = blocks.len();
    let labels: Vec<String> = blocks.iter().map(|b| routes_label(b.routes)).collect();
    let ymax = blocks
        .iter()
        .flat_map(|b| b.duts.values())
        .filter_map(|d| d.rate_mpps().map(|s| s.max))
        .fold(1.0, f64::max)
        * 1.15;
    let figure = if blocks
        .iter()
        .any(|b| b.duts.values().any(|d| d.mfr_mpps.is_some()))
    {
        "MFR"
    } else {
        "PDR"
    };
    let title = if size == "imix" {
        format!("{figure}, {generator}, IMIX")
    } else {
        format!("{figure}, {generator}, {size}-byte frames")
    };
    let mut chart = ChartBuilder::on(panel)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..ymax)
        .map_err(err)?;
    let label_of = |v: &f64| {
        let i = v.round();
        if (v - i).abs() < 0.01 && i >= 0.0 && (i as usize) < labels.len() {
            labels[i as usize].clone()
        } else {
            String::new()
        }
    };
    axes(
        &mut chart,
        "routes in the table",
        "Mpps (median, min-max over rounds)",
        13,
    )
    .x_labels(n.max(1) * 2 + 1)
    .x_label_formatter(&label_of)
    .draw()
    .map_err(err)?;
    for kind in DutKind::ALL {
        let points: Vec<(f64, f64, f64, f64)> = blocks
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let s = b.duts.get(&kind)?.rate_mpps()?;
                Some((i as f64, s.median, s.min, s.max))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        device_line(
            &mut chart,
            kind,
            points.iter().map(|&(x, y, _, _)| (x, y)).collect(),
        )?;
        let c = color(kind);
        chart
            .draw_series(
                points
                    .iter()
                    .map(|&(x, y, lo, hi)| ErrorBar::new_vertical(x, lo, y, hi, c.filled(), 8)),
            )
            .map_err(err)?;
    }
    legend(&mut chart, 13, SeriesLabelPosition::LowerLeft)
}

/// Latency (p50 dashed-marker line, p99 solid) against the load, one panel per block.
pub fn latency(path: &Path, summary: &[BlockSummary]) -> Result<(), String> {
    // Only blocks with a ladder (testpmd stamps nothing).
    let summary: Vec<&BlockSummary> = summary
        .iter()
        .filter(|b| b.duts.values().any(|d| !d.ladder.is_empty()))
        .collect();
    let n = summary.len().max(1);
    let cols = n.min(3);
    let rows = n.div_ceil(cols);
    let root = BitMapBackend::new(path, (480 * cols as u32, 380 * rows as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((rows, cols));
    for (panel, b) in panels.iter().zip(summary) {
        latency_panel(panel, b)?;
    }
    root.present().map_err(err)
}

/// One block's latency ladder, every device (nothing when no device has one).
fn latency_panel(
    panel: &DrawingArea<BitMapBackend<'_>, Shift>,
    b: &BlockSummary,
) -> Result<(), String> {
    let values = b
        .duts
        .values()
        .flat_map(|d| d.ladder.iter())
        .flat_map(|l| [l.p50_us.median, l.p99_us.median]);
    let (lo, hi) = values
        .filter(|v| *v > 0.0)
        .fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 {
        return Ok(());
    }
    let title = format!(
        "latency, {} {} routes",
        if b.frame_size == "imix" {
            "IMIX".to_owned()
        } else {
            format!("{} B,", b.frame_size)
        },
        routes_label(b.routes)
    );
    let mut chart = ChartBuilder::on(panel)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..100f64, ((lo * 0.7)..(hi * 1.4)).log_scale())
        .map_err(err)?;
    axes(
        &mut chart,
        "load, % of the device's own PDR",
        "us (p99 line, p50 dots)",
        12,
    )
    .draw()
    .map_err(err)?;
    for kind in DutKind::ALL {
        let Some(d) = b.duts.get(&kind) else { continue };
        if d.ladder.is_empty() {
            continue;
        }
        let c = color(kind);
        let at = |us: fn(&LadderSummary) -> f64| -> Vec<(f64, f64)> {
            d.ladder
                .iter()
                .map(|l| (l.fraction * 100.0, us(l).max(lo)))
                .collect()
        };
        let p99 = at(|l| l.p99_us.median);
        let p50 = at(|l| l.p50_us.median);
        device_line(&mut chart, kind, p99.clone())?;
        chart
            .draw_series(p99.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(err)?;
        chart
            .draw_series(p50.iter().map(|&p| TriangleMarker::new(p, 4, c.filled())))
            .map_err(err)?;
    }
    legend(&mut chart, 12, SeriesLabelPosition::UpperLeft)
}
