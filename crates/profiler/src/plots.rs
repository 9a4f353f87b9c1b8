//! PNG plots of the profiler's measurements, named and laid out like the
//! artifacts Dynamo's `profile_sla` writes (see the Profiler Guide's "Output
//! Performance Plots").
//!
//! Rendering is pure Rust: plotters' bitmap backend with an embedded DejaVu
//! Sans font through ab_glyph, so plots look the same on a machine with no
//! system fonts. Every file is written atomically. Non-finite values are
//! skipped rather than rejected, because a partial sweep is still worth
//! looking at; only inconsistent inputs (length mismatches, a chosen index
//! that does not exist) are errors.

mod canvas;
mod draw;

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use draw::{
    axis_range, bold, build_chart, draw_legend, draw_mesh, draw_targets, fmt_num, font, frame,
    no_data, palette, ramp, render_png, usable, Axes, Chart, DrawResult, Labeler, LegendEntry,
    Side, Swatch, TargetLine, TickFmt, CHOSEN, MARKER_ISL, MUTED, SLA_RED,
};

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("writing plot {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rendering plot {}: {message}", path.display())]
    Draw { path: PathBuf, message: String },
    #[error("{plot}: {detail}")]
    LengthMismatch { plot: &'static str, detail: String },
    #[error("{plot}: chosen index {index} is out of range for {len} entries")]
    ChosenOutOfRange {
        plot: &'static str,
        index: usize,
        len: usize,
    },
}

/// One parallel mapping's prefill measurement (TTFT at batch 1 at the target ISL).
#[derive(Debug, Clone, PartialEq)]
pub struct PrefillPoint {
    /// Mapping name, e.g. "TP2" or "DEP8".
    pub label: String,
    pub num_gpus: u32,
    pub ttft_ms: f64,
    /// Prefill tokens/s/GPU.
    pub thpt_per_gpu: f64,
}

/// One mapping's decode sweep over in-flight request counts.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodeSeries {
    pub label: String,
    pub num_gpus: u32,
    pub points: Vec<DecodePoint>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodePoint {
    pub in_flight: u32,
    pub itl_ms: f64,
    /// Output tokens/s/GPU.
    pub thpt_per_gpu: f64,
}

fn plottable(v: f64) -> Option<f64> {
    usable(v).then_some(v)
}

/// "1 point", "3 points".
fn count(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

fn check_chosen(plot: &'static str, chosen: Option<usize>, len: usize) -> Result<(), PlotError> {
    match chosen {
        Some(index) if index >= len => Err(PlotError::ChosenOutOfRange { plot, index, len }),
        _ => Ok(()),
    }
}

fn check_len(plot: &'static str, names: [&str; 2], a: usize, b: usize) -> Result<(), PlotError> {
    if a == b {
        Ok(())
    } else {
        Err(PlotError::LengthMismatch {
            plot,
            detail: format!("{} has {a} values but {} has {b}", names[0], names[1]),
        })
    }
}

fn px(chart: &Chart<'_, '_>, x: f64, y: f64) -> (i32, i32) {
    chart.backend_coord(&(x, y))
}

/// Mapping family from a label ("TP2" -> "TP", "DEP8" -> "DEP"), so the
/// plot can join the sizes of one strategy with a line without zigzagging
/// between strategies that share a GPU count.
fn family(label: &str) -> String {
    let prefix: String = label.chars().take_while(|c| c.is_alphabetic()).collect();
    if prefix.is_empty() {
        "other".into()
    } else {
        prefix.to_uppercase()
    }
}

/// `prefill_performance.png`: TTFT at batch 1 against GPUs per engine, one
/// labelled marker per mapping, the TTFT target, and the chosen mapping ringed.
pub fn prefill_performance(
    path: &Path,
    points: &[PrefillPoint],
    ttft_target_ms: f64,
    chosen: Option<usize>,
) -> Result<(), PlotError> {
    const PLOT: &str = "prefill_performance";
    check_chosen(PLOT, chosen, points.len())?;
    let target = plottable(ttft_target_ms);
    let valid: Vec<(usize, &PrefillPoint)> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| usable(p.ttft_ms))
        .collect();
    let chosen = chosen.filter(|&i| usable(points[i].ttft_ms));
    let max_gpus = valid.iter().map(|(_, p)| p.num_gpus).max().unwrap_or(1) as f64;
    let axes = Axes {
        x: (0.0, max_gpus + (max_gpus * 0.12).max(1.0)),
        y: axis_range(
            valid.iter().map(|(_, p)| p.ttft_ms),
            target.as_slice(),
            true,
        ),
        x_desc: "GPUs per prefill engine",
        y_desc: "TTFT at batch size 1 (ms)",
        x_fmt: TickFmt::Integer,
        y_fmt: TickFmt::Plain,
    };

    let mut families: Vec<(String, Vec<(usize, &PrefillPoint)>)> = Vec::new();
    for &(i, p) in &valid {
        let name = family(&p.label);
        match families.iter_mut().find(|(n, _)| *n == name) {
            Some((_, members)) => members.push((i, p)),
            None => families.push((name, vec![(i, p)])),
        }
    }
    for (_, members) in &mut families {
        members.sort_by(|a, b| {
            a.1.num_gpus
                .cmp(&b.1.num_gpus)
                .then(a.1.ttft_ms.total_cmp(&b.1.ttft_ms))
        });
    }

    let mut subtitle = format!("{} measured", count(valid.len(), "parallel mapping"));
    if let Some(t) = target {
        subtitle += &format!("; TTFT target {} ms", fmt_num(t));
    }
    if let Some(i) = chosen {
        subtitle += &format!("; chosen {}", points[i].label);
    }

    render_png(path, |root| {
        let f = frame(root, "Prefill performance by parallel mapping", &subtitle)?;
        let mut chart = build_chart(&f.chart, &axes)?;
        draw_mesh(&mut chart, &axes)?;
        let mut labels = Labeler::new(&chart);
        let mut legend = Vec::new();

        for (fi, (name, members)) in families.iter().enumerate() {
            let color = palette(fi);
            if members.len() >= 2 {
                let line = members
                    .iter()
                    .map(|(_, p)| (f64::from(p.num_gpus), p.ttft_ms));
                chart.draw_series(LineSeries::new(
                    line.clone(),
                    color.mix(0.6).stroke_width(2),
                ))?;
                labels.reserve_polyline(line.map(|(x, y)| px(&chart, x, y)));
            }
            for (_, p) in members {
                let meets = target.is_none_or(|t| p.ttft_ms <= t);
                let style = if meets {
                    color.filled()
                } else {
                    WHITE.filled()
                };
                let at = (f64::from(p.num_gpus), p.ttft_ms);
                chart.draw_series(std::iter::once(Circle::new(at, 6, style)))?;
                if !meets {
                    chart.draw_series(std::iter::once(Circle::new(
                        at,
                        6,
                        color.stroke_width(2),
                    )))?;
                }
                labels.reserve_point(px(&chart, at.0, at.1), 8);
            }
            legend.push(line_marker(color, &format!("{name} mappings")));
        }

        if let Some(i) = chosen {
            let p = &points[i];
            let at = (f64::from(p.num_gpus), p.ttft_ms);
            chart.draw_series(std::iter::once(Circle::new(at, 12, CHOSEN.stroke_width(3))))?;
            labels.reserve_point(px(&chart, at.0, at.1), 14);
        }

        if let Some(t) = target {
            draw_targets(
                root,
                &mut chart,
                &mut labels,
                &[TargetLine {
                    at: t,
                    vertical: false,
                    text: format!("TTFT target: {} ms", fmt_num(t)),
                    color: SLA_RED,
                }],
            )?;
        }

        // Chosen first so it gets the best spot when labels compete.
        let order = chosen
            .into_iter()
            .chain(valid.iter().map(|(i, _)| *i).filter(|&i| Some(i) != chosen));
        for i in order {
            let p = &points[i];
            let anchor = px(&chart, f64::from(p.num_gpus), p.ttft_ms);
            let is_chosen = Some(i) == chosen;
            let style = if is_chosen { bold(14.0) } else { font(13.0) };
            let color = if is_chosen {
                CHOSEN
            } else {
                RGBColor(40, 40, 40)
            };
            let long = match plottable(p.thpt_per_gpu) {
                Some(t) => format!("{} · {} tok/s/GPU", p.label, fmt_num(t)),
                None => p.label.clone(),
            };
            let side = || Side::Point {
                clearance: if is_chosen { 13 } else { 7 },
            };
            if !labels.place(root, &long, anchor, side(), &style, color, false)? {
                labels.place(root, &p.label, anchor, side(), &style, color, is_chosen)?;
            }
        }

        if valid.is_empty() {
            no_data(root, &chart, "No prefill measurements")?;
        }

        if let Some(t) = target {
            legend.push(LegendEntry::new(
                Swatch::Dashed(SLA_RED),
                format!("TTFT target ({} ms)", fmt_num(t)),
            ));
            legend.push(LegendEntry::new(
                Swatch::Marker {
                    color: MUTED,
                    filled: true,
                },
                "meets TTFT target",
            ));
            legend.push(LegendEntry::new(
                Swatch::Marker {
                    color: MUTED,
                    filled: false,
                },
                "misses TTFT target",
            ));
        }
        if let Some(i) = chosen {
            let p = &points[i];
            legend.push(
                LegendEntry::new(
                    Swatch::Ring(CHOSEN),
                    format!(
                        "chosen: {} ({})",
                        p.label,
                        count(p.num_gpus as usize, "GPU")
                    ),
                )
                .bold(),
            );
        }
        legend.push(LegendEntry::new(Swatch::None, "labels: mapping · prefill"));
        legend.push(LegendEntry::new(Swatch::None, "throughput per GPU"));
        draw_legend(&f.legend, "Parallel mapping", &legend)
    })
}

fn line_marker(color: RGBColor, text: &str) -> LegendEntry {
    LegendEntry::new(Swatch::LineMarker { color, width: 2 }, text)
}

/// Indices to annotate along a sweep: the ends and a few in between, so the
/// in-flight scale is readable without burying the curve in numbers.
fn annotated_indices(n: usize) -> Vec<usize> {
    const MAX: usize = 5;
    if n <= MAX {
        return (0..n).collect();
    }
    let mut idx: Vec<usize> = (0..MAX)
        .map(|k| ((k * (n - 1)) as f64 / (MAX - 1) as f64).round() as usize)
        .collect();
    idx.dedup();
    idx
}

/// `decode_performance.png`: output throughput per GPU against ITL, one
/// line per mapping as in-flight requests grow, the ITL target, and the
/// chosen mapping drawn heavier.
pub fn decode_performance(
    path: &Path,
    series: &[DecodeSeries],
    itl_target_ms: f64,
    chosen: Option<usize>,
) -> Result<(), PlotError> {
    const PLOT: &str = "decode_performance";
    check_chosen(PLOT, chosen, series.len())?;
    let target = plottable(itl_target_ms);
    let cleaned: Vec<Vec<DecodePoint>> = series
        .iter()
        .map(|s| {
            let mut pts: Vec<DecodePoint> = s
                .points
                .iter()
                .copied()
                .filter(|p| usable(p.itl_ms) && usable(p.thpt_per_gpu))
                .collect();
            pts.sort_by(|a, b| {
                a.in_flight
                    .cmp(&b.in_flight)
                    .then(a.itl_ms.total_cmp(&b.itl_ms))
            });
            pts
        })
        .collect();
    let all = || cleaned.iter().flatten();
    let axes = Axes {
        x: axis_range(all().map(|p| p.itl_ms), target.as_slice(), true),
        y: axis_range(all().map(|p| p.thpt_per_gpu), &[], true),
        x_desc: "Inter-token latency, ITL (ms)",
        y_desc: "Decode throughput (tokens/s/GPU)",
        x_fmt: TickFmt::Plain,
        y_fmt: TickFmt::Plain,
    };
    let has_data = all().next().is_some();

    let mut subtitle = "Throughput per GPU vs ITL as requests in flight grow".to_string();
    if let Some(t) = target {
        subtitle += &format!("; ITL target {} ms", fmt_num(t));
    }
    if let Some(i) = chosen {
        subtitle += &format!("; chosen {}", series[i].label);
    }

    render_png(path, |root| {
        let f = frame(root, "Decode performance by parallel mapping", &subtitle)?;
        let mut chart = build_chart(&f.chart, &axes)?;
        if let Some(t) = target.filter(|&t| t < axes.x.1) {
            // Shade the region that violates the SLA before the grid, so the
            // gridlines stay visible on top of it.
            chart.draw_series(std::iter::once(Rectangle::new(
                [(t.max(axes.x.0), axes.y.0), (axes.x.1, axes.y.1)],
                SLA_RED.mix(0.07).filled(),
            )))?;
        }
        draw_mesh(&mut chart, &axes)?;
        let mut labels = Labeler::new(&chart);

        // Chosen last so its line sits on top.
        let order: Vec<usize> = (0..series.len())
            .filter(|&i| Some(i) != chosen)
            .chain(chosen)
            .collect();
        for &i in &order {
            let pts = &cleaned[i];
            let color = palette(i);
            let is_chosen = Some(i) == chosen;
            let (width, radius) = if is_chosen { (4, 5) } else { (2, 4) };
            chart.draw_series(LineSeries::new(
                pts.iter().map(|p| (p.itl_ms, p.thpt_per_gpu)),
                color.stroke_width(width),
            ))?;
            labels.reserve_polyline(pts.iter().map(|p| px(&chart, p.itl_ms, p.thpt_per_gpu)));
            chart.draw_series(
                pts.iter()
                    .map(|p| Circle::new((p.itl_ms, p.thpt_per_gpu), radius, color.filled())),
            )?;
            for p in pts {
                labels.reserve_point(px(&chart, p.itl_ms, p.thpt_per_gpu), radius + 1);
            }
        }

        if let Some(t) = target {
            draw_targets(
                root,
                &mut chart,
                &mut labels,
                &[TargetLine {
                    at: t,
                    vertical: true,
                    text: format!("ITL target: {} ms", fmt_num(t)),
                    color: SLA_RED,
                }],
            )?;
        }

        for &i in order.iter().rev() {
            let pts = &cleaned[i];
            let color = palette(i);
            for k in annotated_indices(pts.len()) {
                let p = pts[k];
                labels.place(
                    root,
                    &p.in_flight.to_string(),
                    px(&chart, p.itl_ms, p.thpt_per_gpu),
                    Side::Point { clearance: 5 },
                    &font(12.0),
                    color,
                    false,
                )?;
            }
        }

        if !has_data {
            no_data(root, &chart, "No decode measurements")?;
        }

        let mut legend: Vec<LegendEntry> = series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let is_chosen = Some(i) == chosen;
                let text = format!(
                    "{} · {}{}",
                    s.label,
                    count(s.num_gpus as usize, "GPU"),
                    if is_chosen { " (chosen)" } else { "" }
                );
                let entry = LegendEntry::new(
                    Swatch::LineMarker {
                        color: palette(i),
                        width: if is_chosen { 4 } else { 2 },
                    },
                    text,
                );
                if is_chosen {
                    entry.bold()
                } else {
                    entry
                }
            })
            .collect();
        if let Some(t) = target {
            legend.push(LegendEntry::new(
                Swatch::Dashed(SLA_RED),
                format!("ITL target ({} ms)", fmt_num(t)),
            ));
            legend.push(LegendEntry::new(Swatch::Fill(SLA_RED), "above ITL target"));
        }
        legend.push(LegendEntry::new(Swatch::None, "numbers on points:"));
        legend.push(LegendEntry::new(Swatch::None, "requests in flight"));
        draw_legend(&f.legend, "Parallel mapping", &legend)
    })
}

/// Finite (x, y) pairs sorted by x.
fn clean_pairs(xs: &[f64], ys: &[f64]) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = xs
        .iter()
        .zip(ys)
        .map(|(&x, &y)| (x, y))
        .filter(|(x, y)| usable(*x) && usable(*y))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    pts
}

/// Piecewise-linear value at `x`, only inside the measured span: the plot
/// should not imply an extrapolation the profiler did not make.
fn interpolate(pts: &[(f64, f64)], x: f64) -> Option<f64> {
    let first = pts.first()?;
    let last = pts.last()?;
    if x < first.0 || x > last.0 {
        return None;
    }
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x >= x0 && x <= x1 {
            if x1 == x0 {
                return Some(y0);
            }
            return plottable(y0 + (y1 - y0) * (x - x0) / (x1 - x0));
        }
    }
    (pts.len() == 1).then_some(first.1)
}

fn draw_measured(
    chart: &mut Chart<'_, '_>,
    labels: &mut Labeler,
    pts: &[(f64, f64)],
    color: RGBColor,
) -> DrawResult<()> {
    chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
    labels.reserve_polyline(pts.iter().map(|&(x, y)| px(chart, x, y)));
    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    for &(x, y) in pts {
        labels.reserve_point(px(chart, x, y), 5);
    }
    Ok(())
}

const SERIES_BLUE: RGBColor = RGBColor(31, 119, 180);
const SERIES_GREEN: RGBColor = RGBColor(44, 160, 44);

/// `selected_prefill_interpolation/prefill_ttft_interpolation.png`: TTFT
/// against ISL for the selected prefill engine.
pub fn prefill_ttft_interpolation(
    path: &Path,
    isl: &[f64],
    ttft_ms: &[f64],
    ttft_target_ms: Option<f64>,
    target_isl: Option<f64>,
) -> Result<(), PlotError> {
    const PLOT: &str = "prefill_ttft_interpolation";
    check_len(PLOT, ["isl", "ttft_ms"], isl.len(), ttft_ms.len())?;
    let pts = clean_pairs(isl, ttft_ms);
    let target = ttft_target_ms.and_then(plottable);
    let target_isl = target_isl.and_then(plottable);
    let at_target = target_isl.and_then(|x| interpolate(&pts, x));
    let axes = Axes {
        x: axis_range(pts.iter().map(|p| p.0), target_isl.as_slice(), true),
        y: axis_range(pts.iter().map(|p| p.1), target.as_slice(), true),
        x_desc: "Input sequence length, ISL (tokens)",
        y_desc: "TTFT (ms)",
        x_fmt: TickFmt::Plain,
        y_fmt: TickFmt::Plain,
    };
    let mut subtitle = format!(
        "Selected prefill engine, {}",
        count(pts.len(), "measured ISL")
    );
    if let Some(t) = target {
        subtitle += &format!("; TTFT target {} ms", fmt_num(t));
    }
    if let Some(x) = target_isl {
        subtitle += &format!("; target ISL {} tokens", fmt_num(x));
    }

    render_png(path, |root| {
        let f = frame(root, "Prefill TTFT vs input sequence length", &subtitle)?;
        let mut chart = build_chart(&f.chart, &axes)?;
        draw_mesh(&mut chart, &axes)?;
        let mut labels = Labeler::new(&chart);
        draw_measured(&mut chart, &mut labels, &pts, SERIES_BLUE)?;
        let mut legend = vec![line_marker(SERIES_BLUE, "measured TTFT (batch 1)")];

        if let (Some(x), Some(y)) = (target_isl, at_target) {
            chart.draw_series(std::iter::once(Circle::new((x, y), 7, MARKER_ISL.filled())))?;
            labels.reserve_point(px(&chart, x, y), 8);
        }
        let mut targets = Vec::new();
        if let Some(t) = target {
            targets.push(TargetLine {
                at: t,
                vertical: false,
                text: format!("TTFT target: {} ms", fmt_num(t)),
                color: SLA_RED,
            });
            legend.push(LegendEntry::new(
                Swatch::Dashed(SLA_RED),
                format!("TTFT target ({} ms)", fmt_num(t)),
            ));
        }
        if let Some(x) = target_isl {
            targets.push(TargetLine {
                at: x,
                vertical: true,
                text: format!("target ISL: {} tokens", fmt_num(x)),
                color: MARKER_ISL,
            });
            legend.push(LegendEntry::new(
                Swatch::Dashed(MARKER_ISL),
                format!("target ISL ({} tokens)", fmt_num(x)),
            ));
        }
        draw_targets(root, &mut chart, &mut labels, &targets)?;
        if let (Some(x), Some(y)) = (target_isl, at_target) {
            let anchor = px(&chart, x, y);
            labels.place(
                root,
                &format!("≈ {} ms", fmt_num(y)),
                anchor,
                Side::Point { clearance: 8 },
                &bold(14.0),
                MARKER_ISL,
                false,
            )?;
            legend.push(LegendEntry::new(
                Swatch::Marker {
                    color: MARKER_ISL,
                    filled: true,
                },
                format!("at target ISL: {} ms", fmt_num(y)),
            ));
        }
        if pts.is_empty() {
            no_data(root, &chart, "No prefill interpolation data")?;
        }
        draw_legend(&f.legend, "Legend", &legend)
    })
}

/// `selected_prefill_interpolation/prefill_throughput_interpolation.png`:
/// prefill throughput per GPU against ISL.
pub fn prefill_throughput_interpolation(
    path: &Path,
    isl: &[f64],
    thpt_per_gpu: &[f64],
) -> Result<(), PlotError> {
    const PLOT: &str = "prefill_throughput_interpolation";
    check_len(PLOT, ["isl", "thpt_per_gpu"], isl.len(), thpt_per_gpu.len())?;
    let pts = clean_pairs(isl, thpt_per_gpu);
    let axes = Axes {
        x: axis_range(pts.iter().map(|p| p.0), &[], true),
        y: axis_range(pts.iter().map(|p| p.1), &[], true),
        x_desc: "Input sequence length, ISL (tokens)",
        y_desc: "Prefill throughput (tokens/s/GPU)",
        x_fmt: TickFmt::Plain,
        y_fmt: TickFmt::Plain,
    };
    let subtitle = format!(
        "Selected prefill engine, {}",
        count(pts.len(), "measured ISL")
    );
    render_png(path, |root| {
        let f = frame(
            root,
            "Prefill throughput vs input sequence length",
            &subtitle,
        )?;
        let mut chart = build_chart(&f.chart, &axes)?;
        draw_mesh(&mut chart, &axes)?;
        let mut labels = Labeler::new(&chart);
        draw_measured(&mut chart, &mut labels, &pts, SERIES_GREEN)?;
        if pts.is_empty() {
            no_data(root, &chart, "No prefill interpolation data")?;
        }
        draw_legend(
            &f.legend,
            "Legend",
            &[line_marker(SERIES_GREEN, "measured throughput")],
        )
    })
}

/// `selected_decode_interpolation/decode_itl_interplation.png` (Dynamo's
/// spelling): ITL over KV-cache usage, one line per context length.
pub fn decode_itl_interpolation(
    path: &Path,
    x_kv_usage: &[f64],
    y_context_length: &[f64],
    z_itl_ms: &[f64],
    itl_target_ms: Option<f64>,
) -> Result<(), PlotError> {
    decode_grid(
        path,
        &GridPlot {
            plot: "decode_itl_interpolation",
            title: "Decode ITL vs KV-cache usage and context length",
            z_name: "z_itl_ms",
            z_desc: "Inter-token latency, ITL (ms)",
            target_name: "ITL target",
        },
        x_kv_usage,
        y_context_length,
        z_itl_ms,
        itl_target_ms.and_then(plottable),
    )
}

/// `selected_decode_interpolation/decode_throughput_interpolation.png`:
/// decode throughput per GPU over the same grid.
pub fn decode_throughput_interpolation(
    path: &Path,
    x_kv_usage: &[f64],
    y_context_length: &[f64],
    z_thpt_per_gpu: &[f64],
) -> Result<(), PlotError> {
    decode_grid(
        path,
        &GridPlot {
            plot: "decode_throughput_interpolation",
            title: "Decode throughput vs KV-cache usage and context length",
            z_name: "z_thpt_per_gpu",
            z_desc: "Decode throughput (tokens/s/GPU)",
            target_name: "target",
        },
        x_kv_usage,
        y_context_length,
        z_thpt_per_gpu,
        None,
    )
}

struct GridPlot {
    plot: &'static str,
    title: &'static str,
    z_name: &'static str,
    z_desc: &'static str,
    target_name: &'static str,
}

struct CtxGroup {
    label: String,
    /// (KV usage, z) sorted by KV usage.
    pts: Vec<(f64, f64)>,
    /// Binned groups mix context lengths, so joining them would draw a
    /// zigzag that means nothing.
    join: bool,
}

/// More distinct context lengths than this are binned: a legend and a
/// colour ramp stop being readable past about ten lines.
const MAX_CTX_LINES: usize = 10;
const CTX_BINS: usize = 8;

fn group_by_context(triples: &[(f64, f64, f64)]) -> Vec<CtxGroup> {
    let mut by_ctx: Vec<(f64, f64, f64)> = triples.to_vec();
    by_ctx.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.total_cmp(&b.0)));
    // Distinct context lengths, merging float noise.
    let mut distinct: Vec<Vec<(f64, f64, f64)>> = Vec::new();
    for t in by_ctx {
        match distinct.last_mut() {
            Some(g) if (t.1 - g[0].1).abs() <= g[0].1.abs().max(1.0) * 1e-9 => g.push(t),
            _ => distinct.push(vec![t]),
        }
    }
    let finish = |g: Vec<(f64, f64, f64)>, label: String, join: bool| {
        let mut pts: Vec<(f64, f64)> = g.iter().map(|t| (t.0, t.2)).collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        CtxGroup { label, pts, join }
    };
    if distinct.len() <= MAX_CTX_LINES {
        return distinct
            .into_iter()
            .map(|g| {
                let label = format!("{} tokens", fmt_num(g[0].1));
                finish(g, label, true)
            })
            .collect();
    }
    let n = distinct.len();
    (0..CTX_BINS)
        .filter_map(|b| {
            let (start, end) = (b * n / CTX_BINS, (b + 1) * n / CTX_BINS);
            let chunk = &distinct[start..end];
            let lo = chunk.first()?[0].1;
            let hi = chunk.last()?[0].1;
            let label = format!("{}–{} tokens", fmt_num(lo), fmt_num(hi));
            Some(finish(chunk.concat(), label, false))
        })
        .collect()
}

fn decode_grid(
    path: &Path,
    spec: &GridPlot,
    x: &[f64],
    y: &[f64],
    z: &[f64],
    target: Option<f64>,
) -> Result<(), PlotError> {
    check_len(
        spec.plot,
        ["x_kv_usage", "y_context_length"],
        x.len(),
        y.len(),
    )?;
    check_len(spec.plot, ["x_kv_usage", spec.z_name], x.len(), z.len())?;
    let triples: Vec<(f64, f64, f64)> = x
        .iter()
        .zip(y)
        .zip(z)
        .map(|((&a, &b), &c)| (a, b, c))
        .filter(|(a, b, c)| usable(*a) && usable(*b) && usable(*c))
        .collect();
    let groups = group_by_context(&triples);
    // Usage is a fraction of capacity: frame 0..100% tightly instead of the
    // generic 8% padding, widening only if the data leaves it.
    let kv_min = triples.iter().map(|t| t.0).fold(0.0, f64::min);
    let kv_max = triples.iter().map(|t| t.0).fold(1.0, f64::max);
    let kv_pad = (kv_max - kv_min) * 0.03;
    let x_range = (kv_min - kv_pad, kv_max + kv_pad);
    let axes = Axes {
        x: x_range,
        y: axis_range(triples.iter().map(|t| t.2), target.as_slice(), true),
        x_desc: "KV-cache usage (% of capacity)",
        y_desc: spec.z_desc,
        x_fmt: TickFmt::Percent,
        y_fmt: TickFmt::Plain,
    };
    let mut subtitle = if groups.iter().all(|g| g.join) {
        format!(
            "{}, {}; one line per context length",
            count(triples.len(), "point"),
            count(groups.len(), "context length"),
        )
    } else {
        format!(
            "{}; context lengths binned into {} ranges",
            count(triples.len(), "point"),
            groups.len()
        )
    };
    if let Some(t) = target {
        subtitle += &format!("; {} {} ms", spec.target_name, fmt_num(t));
    }

    render_png(path, |root| {
        let f = frame(root, spec.title, &subtitle)?;
        let mut chart = build_chart(&f.chart, &axes)?;
        draw_mesh(&mut chart, &axes)?;
        let mut labels = Labeler::new(&chart);
        let mut legend = Vec::new();
        let n = groups.len();
        for (i, g) in groups.iter().enumerate() {
            let color = ramp(if n > 1 {
                i as f64 / (n - 1) as f64
            } else {
                0.0
            });
            if g.join && g.pts.len() >= 2 {
                chart.draw_series(LineSeries::new(
                    g.pts.iter().copied(),
                    color.stroke_width(2),
                ))?;
            }
            chart.draw_series(g.pts.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
            for &(a, b) in &g.pts {
                labels.reserve_point(px(&chart, a, b), 5);
            }
            legend.push(if g.join {
                line_marker(color, &g.label)
            } else {
                LegendEntry::new(
                    Swatch::Marker {
                        color,
                        filled: true,
                    },
                    g.label.clone(),
                )
            });
        }
        if let Some(t) = target {
            draw_targets(
                root,
                &mut chart,
                &mut labels,
                &[TargetLine {
                    at: t,
                    vertical: false,
                    text: format!("{}: {} ms", spec.target_name, fmt_num(t)),
                    color: SLA_RED,
                }],
            )?;
            legend.push(LegendEntry::new(
                Swatch::Dashed(SLA_RED),
                format!("{} ({} ms)", spec.target_name, fmt_num(t)),
            ));
        }
        if triples.is_empty() {
            no_data(root, &chart, "No decode interpolation data")?;
        }
        draw_legend(&f.legend, "Context length", &legend)
    })
}
