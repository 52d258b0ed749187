//! The figures, as SVG strings: spectra per layer with one labelled curve
//! per head and the noise floor, and layer × head heatmaps.

use attention_svd::analysis::{HeadSummary, Stats};
use attention_svd::report::{PromptReport, Report};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::Failure;

/// Twelve colours that stay distinct and dark enough on white (Tableau's
/// palette with two darker additions); heads beyond twelve reuse them
/// dashed.
const PALETTE: [RGBColor; 12] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(90, 90, 90),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
];

fn plot_error(e: impl std::fmt::Display) -> Failure {
    Failure::output(format!("cannot draw the figure: {e}"))
}

fn ellipsize(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(max).collect::<String>())
    }
}

fn pick<'a>(report: &'a Report, name: Option<&str>) -> Result<&'a PromptReport, Failure> {
    match name {
        None => Ok(&report.prompts[0]),
        Some(n) => report.prompts.iter().find(|p| p.name == n).ok_or_else(|| {
            Failure::usage(format!(
                "--prompt {n}: no such prompt (the report has {})",
                report
                    .prompts
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }),
    }
}

/// Draws one head's curve with its head's colour (dashed past twelve heads).
fn draw_curve<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordusize, impl Ranged<ValueType = f64>>,
    >,
    points: Vec<(usize, f64)>,
    head: usize,
    label: bool,
) -> Result<(), Failure> {
    let color = PALETTE[head % PALETTE.len()];
    let style = color.stroke_width(2);
    let series = if head < PALETTE.len() {
        chart.draw_series(LineSeries::new(points, style))
    } else {
        chart.draw_series(DashedLineSeries::new(points, 6, 4, style))
    }
    .map_err(plot_error)?;
    if label {
        series.label(format!("head {head}")).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
        });
    }
    Ok(())
}

/// The spectra figure of one prompt: per layer, σᵢ/σ₁ on a log scale with
/// one curve per head and the noise floor (dashed), and below the
/// cumulative energy E(i) with the 0.99 line.
pub fn spectra(report: &Report, prompt: Option<&str>) -> Result<String, Failure> {
    let p = pick(report, prompt)?;
    let r = &p.spectra;
    let layers: Vec<usize> = r.layers.iter().map(|l| l.layer).collect();
    let [_, _, n, m] = r.shape;
    let k = n.min(m).max(2);
    let cols = layers.len().clamp(1, 3);
    let rows = layers.len().div_ceil(cols);
    let (w, h) = (470 * cols as u32, 2 * 320 * rows as u32 + 70);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let title = format!(
            "{} — `{}`, {n} tokens{}",
            report.model.name,
            p.name,
            p.text
                .as_ref()
                .map_or(String::new(), |t| format!(": \"{}\"", ellipsize(t, 60)))
        );
        let root = root
            .titled(&title, ("sans-serif", 20))
            .map_err(plot_error)?;
        let (top, bottom) = root.split_vertically((h - 50) / 2);
        let by_layer =
            |l: usize| -> Vec<&HeadSummary> { r.heads.iter().filter(|x| x.layer == l).collect() };
        // The y axis starts one decade below the smallest positive σᵢ/σ₁
        // (never below 1e-17).
        let smallest = r
            .heads
            .iter()
            .flat_map(|hd| hd.singular_values.iter().map(move |&x| x / hd.sigma_max))
            .filter(|&x| x > 0.0)
            .fold(1.0f64, f64::min);
        let floor = 10f64.powf(smallest.log10().floor() - 1.0).max(1e-17);
        for (i, area) in top
            .split_evenly((rows, cols))
            .iter()
            .enumerate()
            .take(layers.len())
        {
            let l = layers[i];
            let heads = by_layer(l);
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("layer {l}: σᵢ/σ₁ (dashed: noise floor)"),
                    ("sans-serif", 15),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(52)
                .build_cartesian_2d(1..k, (floor..1.5f64).log_scale())
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("i")
                .y_label_formatter(&|y| format!("{y:.0e}"))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(plot_error)?;
            for hd in &heads {
                let s = &hd.singular_values;
                let pts = s
                    .iter()
                    .enumerate()
                    .map(|(j, &x)| (j + 1, (x / s[0]).max(floor)))
                    .collect();
                draw_curve(&mut chart, pts, hd.head, i == 0)?;
            }
            let noise: Vec<f64> = heads
                .iter()
                .map(|hd| hd.noise_floor / hd.sigma_max)
                .collect();
            if let Ok(nf) = Stats::of(&noise) {
                chart
                    .draw_series(DashedLineSeries::new(
                        [(1, nf.median.max(floor)), (k, nf.median.max(floor))],
                        5,
                        4,
                        BLACK.stroke_width(1),
                    ))
                    .map_err(plot_error)?;
            }
            if i == 0 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .label_font(("sans-serif", 11))
                    .draw()
                    .map_err(plot_error)?;
            }
        }
        for (i, area) in bottom
            .split_evenly((rows, cols))
            .iter()
            .enumerate()
            .take(layers.len())
        {
            let l = layers[i];
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("layer {l}: energy E(i) (line: 0.99)"),
                    ("sans-serif", 15),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(52)
                .build_cartesian_2d(1..k, 0.0..1.02f64)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("i")
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(plot_error)?;
            for hd in by_layer(l) {
                let s = &hd.singular_values;
                let total: f64 = s.iter().map(|x| x * x).sum();
                let mut acc = 0.0;
                let pts = s
                    .iter()
                    .enumerate()
                    .map(|(j, x)| {
                        acc += x * x;
                        (j + 1, if total > 0.0 { acc / total } else { 1.0 })
                    })
                    .collect();
                draw_curve(&mut chart, pts, hd.head, false)?;
            }
            chart
                .draw_series(LineSeries::new(
                    [(1, 0.99), (k, 0.99)],
                    BLACK.stroke_width(1),
                ))
                .map_err(plot_error)?;
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// Viridis, by linear interpolation between nine of its colours.
fn viridis(t: f64) -> RGBColor {
    const STOPS: [(u8, u8, u8); 9] = [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ];
    let t = t.clamp(0.0, 1.0) * (STOPS.len() - 1) as f64;
    let (i, f) = (t.floor() as usize, t - t.floor());
    let (a, b) = (STOPS[i], STOPS[(i + 1).min(STOPS.len() - 1)]);
    let mix = |x: u8, y: u8| (f64::from(x) + f * (f64::from(y) - f64::from(x))).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// One heatmap panel: `values[layer][head]` with their numbers written in.
fn heat_panel(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    title: &str,
    layers: &[usize],
    heads: &[usize],
    values: &[Vec<f64>],
    digits: usize,
) -> Result<(), Failure> {
    let flat: Vec<f64> = values.iter().flatten().copied().collect();
    let (lo, hi) = flat
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (main, bar) = area.split_horizontally(area.dim_in_pixel().0 - 90);
    let mut chart = ChartBuilder::on(&main)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(44)
        .build_cartesian_2d(
            (0..heads.len().saturating_sub(1)).into_segmented(),
            (0..layers.len().saturating_sub(1)).into_segmented(),
        )
        .map_err(plot_error)?;
    // Segmented axes put each label at the centre of its cell.
    let label = |v: &SegmentValue<usize>, names: &[usize]| match v {
        SegmentValue::CenterOf(i) => names.get(*i).map_or(String::new(), |n| n.to_string()),
        _ => String::new(),
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("head")
        .y_desc("layer")
        .label_style(("sans-serif", 13))
        .x_labels(heads.len().min(32))
        .y_labels(layers.len().min(48))
        .x_label_formatter(&|x| label(x, heads))
        .y_label_formatter(&|y| label(y, layers))
        .draw()
        .map_err(plot_error)?;
    for (li, row) in values.iter().enumerate() {
        for (hi_, &v) in row.iter().enumerate() {
            let t = (v - lo) / span;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(hi_), SegmentValue::Exact(li)),
                        (SegmentValue::Exact(hi_ + 1), SegmentValue::Exact(li + 1)),
                    ],
                    viridis(t).filled(),
                )))
                .map_err(plot_error)?;
            if heads.len() <= 24 && layers.len() <= 40 {
                let ink = if t > 0.6 { BLACK } else { WHITE };
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("{v:.d$}", d = digits),
                        (SegmentValue::CenterOf(hi_), SegmentValue::CenterOf(li)),
                        ("sans-serif", 11)
                            .into_font()
                            .color(&ink)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))
                    .map_err(plot_error)?;
            }
        }
    }
    // The colour bar.
    let mut cb = ChartBuilder::on(&bar)
        .margin_top(40)
        .margin_bottom(42)
        .margin_right(10)
        .y_label_area_size(62)
        .build_cartesian_2d(0..1, lo..lo + span)
        .map_err(plot_error)?;
    cb.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(6)
        .label_style(("sans-serif", 12))
        .y_label_formatter(&|y| format!("{y:.d$}", d = digits))
        .draw()
        .map_err(plot_error)?;
    let steps = 64;
    cb.draw_series((0..steps).map(|i| {
        let a = lo + span * i as f64 / steps as f64;
        let b = lo + span * (i + 1) as f64 / steps as f64;
        Rectangle::new(
            [(0, a), (1, b)],
            viridis(i as f64 / (steps - 1) as f64).filled(),
        )
    }))
    .map_err(plot_error)?;
    Ok(())
}

/// Layer × head heatmaps of the effective rank and of r99/k (medians over
/// prompts for a population).
pub fn heatmap(report: &Report) -> Result<String, Failure> {
    let first = &report.prompts[0].spectra;
    let layers: Vec<usize> = first.layers.iter().map(|l| l.layer).collect();
    let mut heads: Vec<usize> = first.heads.iter().map(|h| h.head).collect();
    heads.sort_unstable();
    heads.dedup();
    let median_over_prompts = |layer: usize, head: usize, f: fn(&HeadSummary) -> f64| {
        let v: Vec<f64> = report
            .prompts
            .iter()
            .filter_map(|p| p.spectra.head(layer, head).map(f))
            .collect();
        Stats::of(&v).map_or(f64::NAN, |s| s.median)
    };
    let grid = |f: fn(&HeadSummary) -> f64| -> Vec<Vec<f64>> {
        layers
            .iter()
            .map(|&l| {
                heads
                    .iter()
                    .map(|&h| median_over_prompts(l, h, f))
                    .collect()
            })
            .collect()
    };
    let erank = grid(|h| h.effective_rank);
    let r99 = grid(|h| h.energy_rank_99 as f64 / h.n.min(h.m) as f64);
    let cell = 38u32;
    let panel_w = (heads.len() as u32 * cell + 160).max(420);
    let (w, h) = (2 * panel_w, layers.len() as u32 * cell + 140);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let prompts = report.prompts.len();
        let title = format!(
            "{}: {}",
            report.model.name,
            if prompts == 1 {
                format!("`{}`", report.prompts[0].name)
            } else {
                format!("median over {prompts} prompts")
            }
        );
        let root = root
            .titled(&title, ("sans-serif", 20))
            .map_err(plot_error)?;
        let (left, right) = root.split_horizontally(panel_w);
        heat_panel(&left, "effective rank", &layers, &heads, &erank, 1)?;
        heat_panel(
            &right,
            "r99 / k (share of directions for 99 % energy)",
            &layers,
            &heads,
            &r99,
            2,
        )?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// One colour per compression method, in `Method::ALL` order.
fn method_color(m: attention_svd::compression::Method) -> RGBColor {
    use attention_svd::compression::Method;
    match m {
        Method::KeyOnly => PALETTE[0],
        Method::KqSvd => PALETTE[3],
        Method::Values => PALETTE[2],
        Method::KeysAndValues => PALETTE[4],
        Method::AttentionTruncation => PALETTE[7],
    }
}

/// The compression figure: per layer, the held-out fidelity against the
/// rank r, one curve per method (the median over the layer's heads, with
/// a band from the least to the most faithful head), on a log scale with
/// the target dashed. The metric is the output error when the target
/// bounds it, else the mean total variation.
pub fn compression(
    r: &attention_svd::compression::ModelCompression,
    title: &str,
) -> Result<String, Failure> {
    use attention_svd::compression::Point;
    let use_output = r.target.output_error.is_some() || r.target.mean_tv.is_none();
    let (metric, bound): (fn(&Point) -> f64, f64) = if use_output {
        (|p| p.output_error, r.target.output_error.unwrap_or(0.01))
    } else {
        (|p| p.tv_mean, r.target.mean_tv.unwrap_or(0.01))
    };
    let layers: Vec<usize> = r.layers.iter().map(|l| l.layer).collect();
    let top_rank = r
        .heads
        .iter()
        .flat_map(|h| h.curves.iter().map(|c| c.held_out.points.len()))
        .max()
        .unwrap_or(1)
        .max(2);
    // Per (layer, method): per r the (min, median, max) over heads.
    let band = |layer: usize, mi: usize| -> Vec<(usize, f64, f64, f64)> {
        let curves: Vec<&[Point]> = r
            .heads
            .iter()
            .filter(|h| h.layer == layer)
            .filter_map(|h| h.curves.get(mi).map(|c| c.held_out.points.as_slice()))
            .collect();
        let len = curves.iter().map(|c| c.len()).min().unwrap_or(0);
        (0..len)
            .filter_map(|i| {
                let v: Vec<f64> = curves.iter().map(|c| metric(&c[i])).collect();
                let s = Stats::of(&v).ok()?;
                Some((curves[0][i].rank, s.min, s.median, s.max))
            })
            .collect()
    };
    // The scale follows the ranks below full: at r = d the key methods
    // are exact up to rounding, which would squeeze the rest into a
    // sliver; those points are drawn at the bottom edge.
    let positive = r
        .heads
        .iter()
        .flat_map(|h| {
            h.curves.iter().flat_map(|c| {
                let p = &c.held_out.points;
                p[..p.len().saturating_sub(1)].iter().map(metric)
            })
        })
        .filter(|&x| x > 0.0);
    let smallest = positive.clone().fold(bound, f64::min);
    let largest = positive.fold(bound, f64::max);
    let floor = 10f64.powf(smallest.log10().floor() - 1.0).max(1e-17);
    let ceil = 10f64.powf(largest.log10().ceil()).max(floor * 10.0);
    let clamp = |x: f64| x.clamp(floor, ceil);
    let cols = layers.len().clamp(1, 3);
    let rows = layers.len().div_ceil(cols).max(1);
    let (w, h) = (470 * cols as u32, 340 * rows as u32 + 50);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let root = root.titled(title, ("sans-serif", 18)).map_err(plot_error)?;
        let what = if use_output {
            "output error"
        } else {
            "mean TV"
        };
        for (i, area) in root
            .split_evenly((rows, cols))
            .iter()
            .enumerate()
            .take(layers.len())
        {
            let l = layers[i];
            let mut chart = ChartBuilder::on(area)
                .caption(
                    format!("layer {l}: held-out {what} (dashed: target {bound})"),
                    ("sans-serif", 14),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(52)
                .build_cartesian_2d(1..top_rank, (floor..ceil).log_scale())
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("r")
                .y_label_formatter(&|y| format!("{y:.0e}"))
                .light_line_style(RGBColor(235, 235, 235))
                .draw()
                .map_err(plot_error)?;
            for (mi, &method) in r.methods.iter().enumerate() {
                let b = band(l, mi);
                if b.is_empty() {
                    continue;
                }
                let color = method_color(method);
                let mut outline: Vec<(usize, f64)> =
                    b.iter().map(|&(x, lo, _, _)| (x, clamp(lo))).collect();
                outline.extend(b.iter().rev().map(|&(x, _, _, hi)| (x, clamp(hi))));
                chart
                    .draw_series(std::iter::once(Polygon::new(outline, color.mix(0.12))))
                    .map_err(plot_error)?;
                let series = chart
                    .draw_series(LineSeries::new(
                        b.iter().map(|&(x, _, med, _)| (x, clamp(med))),
                        color.stroke_width(2),
                    ))
                    .map_err(plot_error)?;
                if i == 0 {
                    series.label(method.name()).legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                }
            }
            chart
                .draw_series(DashedLineSeries::new(
                    [(1, bound), (top_rank, bound)],
                    5,
                    4,
                    BLACK.stroke_width(1),
                ))
                .map_err(plot_error)?;
            if i == 0 {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::LowerLeft)
                    .background_style(WHITE.mix(0.85))
                    .border_style(RGBColor(180, 180, 180))
                    .label_font(("sans-serif", 11))
                    .draw()
                    .map_err(plot_error)?;
            }
        }
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}
