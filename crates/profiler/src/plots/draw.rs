//! Shared rendering machinery for the profiler's plots: canvas, fonts, axis
//! ranges, tick formatting, a legend panel, collision-aware labels and the
//! atomic PNG writer.

use std::error::Error;
use std::io::{BufWriter, Write};
use std::path::Path;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::{fonts, Canvas};
use super::PlotError;

pub(crate) const WIDTH: u32 = 1000;
pub(crate) const HEIGHT: u32 = 700;
const TITLE_STRIP: u32 = 72;
const LEGEND_WIDTH: u32 = 235;

pub(crate) type DrawResult<T> = Result<T, Box<dyn Error>>;
pub(crate) type Area<'b> = DrawingArea<Canvas<'b>, Shift>;
pub(crate) type Chart<'a, 'b> =
    ChartContext<'a, Canvas<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

pub(crate) const TEXT: RGBColor = RGBColor(33, 33, 33);
pub(crate) const MUTED: RGBColor = RGBColor(96, 96, 96);
pub(crate) const SLA_RED: RGBColor = RGBColor(214, 39, 40);
pub(crate) const CHOSEN: RGBColor = RGBColor(0, 150, 60);
pub(crate) const MARKER_ISL: RGBColor = RGBColor(118, 72, 170);
const GRID_MAJOR: RGBColor = RGBColor(214, 214, 214);
const GRID_MINOR: RGBColor = RGBColor(238, 238, 238);
const AXIS: RGBColor = RGBColor(80, 80, 80);

/// Categorical colours (matplotlib's tab10 without its red, which is kept
/// for SLA targets so a target line is never mistaken for a series).
pub(crate) const PALETTE: [RGBColor; 9] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

pub(crate) fn palette(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Ordered colour ramp (viridis anchors, stopping short of its yellow end,
/// which is unreadable on white) so that an ordered quantity such as context
/// length reads as ordered.
pub(crate) fn ramp(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 6] = [
        (68.0, 1.0, 84.0),
        (65.0, 68.0, 135.0),
        (42.0, 120.0, 142.0),
        (34.0, 168.0, 132.0),
        (122.0, 209.0, 81.0),
        (189.0, 200.0, 38.0),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let pos = t * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |x: f64, y: f64| (x + (y - x) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

pub(crate) fn font(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Normal)
}

pub(crate) fn bold(size: f64) -> FontDesc<'static> {
    FontDesc::new(FontFamily::SansSerif, size, FontStyle::Bold)
}

/// Renders into an in-memory RGB buffer and writes it as a PNG atomically.
/// Encoding ourselves (rather than through plotters' `image` encoder) keeps
/// the `image` crate out of the build and lets us pick fast compression.
pub(crate) fn render_png(
    path: &Path,
    draw: impl FnOnce(&Area<'_>) -> DrawResult<()>,
) -> Result<(), PlotError> {
    let draw_err = |message: String| PlotError::Draw {
        path: path.to_path_buf(),
        message,
    };
    let fonts = fonts().map_err(draw_err)?;
    let mut buf = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = Canvas::new(&mut buf, (WIDTH, HEIGHT), fonts).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
        draw(&root).map_err(|e| draw_err(e.to_string()))?;
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    write_png_atomic(path, &buf)
}

fn write_png_atomic(path: &Path, rgb: &[u8]) -> Result<(), PlotError> {
    let io_err = |source: std::io::Error| PlotError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plot".into());
    // Same directory as the target so the final rename cannot cross
    // filesystems; the temp file is removed on drop if anything fails.
    let prefix = format!(".{file_name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // tempfile defaults to 0600; an artifact others read should not be.
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let tmp = builder.tempfile_in(dir).map_err(io_err)?;
    {
        let mut out = BufWriter::new(tmp.as_file());
        let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        // Adaptive filtering halves the file (~100 vs ~200 KB) but is most of
        // the encode time, and dominates unoptimised test builds; `Up` is the
        // cheap filter that still compresses a flat-colour plot well.
        enc.set_filter(png::Filter::Up);
        let encode_err = |e: png::EncodingError| match e {
            png::EncodingError::IoError(source) => io_err(source),
            other => PlotError::Draw {
                path: path.to_path_buf(),
                message: format!("PNG encoding failed: {other}"),
            },
        };
        let mut writer = enc.write_header().map_err(encode_err)?;
        writer.write_image_data(rgb).map_err(encode_err)?;
        writer.finish().map_err(encode_err)?;
        out.flush().map_err(io_err)?;
    }
    tmp.persist(path).map_err(|e| io_err(e.error))?;
    Ok(())
}

/// The three regions every plot uses: a title strip, the chart, and a legend
/// column beside the chart (so the legend can never hide data).
pub(crate) struct Frame<'b> {
    pub chart: Area<'b>,
    pub legend: Area<'b>,
}

pub(crate) fn frame<'b>(root: &Area<'b>, title: &str, subtitle: &str) -> DrawResult<Frame<'b>> {
    let (strip, body) = root.split_vertically(TITLE_STRIP);
    let centre = (WIDTH / 2) as i32;
    strip.draw(&Text::new(
        title.to_string(),
        (centre, 12),
        bold(24.0)
            .color(&TEXT)
            .pos(Pos::new(HPos::Center, VPos::Top)),
    ))?;
    if !subtitle.is_empty() {
        let text = fit_text(subtitle, &font(15.0), WIDTH as i32 - 40)?;
        strip.draw(&Text::new(
            text,
            (centre, 44),
            font(15.0)
                .color(&MUTED)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))?;
    }
    let (chart, legend) = body.split_horizontally(WIDTH - LEGEND_WIDTH);
    Ok(Frame { chart, legend })
}

/// Shortens `text` with an ellipsis until it fits `max_w` pixels.
pub(crate) fn fit_text(text: &str, style: &FontDesc<'_>, max_w: i32) -> DrawResult<String> {
    if text_width(text, style)? <= max_w {
        return Ok(text.to_string());
    }
    let mut chars: Vec<char> = text.chars().collect();
    while !chars.is_empty() {
        chars.pop();
        let candidate: String = chars.iter().collect::<String>() + "…";
        if text_width(&candidate, style)? <= max_w {
            return Ok(candidate);
        }
    }
    Ok(String::new())
}

pub(crate) fn text_width(text: &str, style: &FontDesc<'_>) -> DrawResult<i32> {
    let (w, _) = fonts()?.measure(text, style.get_size(), style.get_style());
    Ok(w as i32)
}

/// Whether a value can be plotted. Beyond ±1e300 the padded axis span
/// overflows to infinity and plotters' pixel mapping overflows `i32`, and
/// no real measurement is that large, so such values count as missing.
pub(crate) fn usable(v: f64) -> bool {
    v.is_finite() && v.abs() <= 1e300
}

/// Axis range over the usable values plus `extra` (targets that must stay
/// visible), padded so nothing sits on the frame. Degenerate and absurd
/// inputs still yield a drawable range.
pub(crate) fn axis_range(
    values: impl IntoIterator<Item = f64>,
    extra: &[f64],
    from_zero: bool,
) -> (f64, f64) {
    let mut lo = f64::INFINITY;
    let mut hi = f64::NEG_INFINITY;
    for v in values.into_iter().chain(extra.iter().copied()) {
        if usable(v) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
    }
    if lo > hi {
        return (0.0, 1.0);
    }
    if from_zero {
        lo = lo.min(0.0);
        hi = hi.max(0.0);
    }
    if hi - lo <= hi.abs().max(lo.abs()) * 1e-9 {
        let pad = (hi.abs() * 0.1).max(1.0);
        return if from_zero && lo >= 0.0 {
            (0.0, hi + pad)
        } else {
            (lo - pad, hi + pad)
        };
    }
    let pad = (hi - lo) * 0.08;
    let lo = if from_zero && lo >= 0.0 {
        0.0
    } else {
        lo - pad
    };
    (lo, hi + pad)
}

#[derive(Clone, Copy)]
pub(crate) enum TickFmt {
    Plain,
    /// Whole numbers only (GPU counts); fractional key points stay blank
    /// rather than repeat a rounded label.
    Integer,
    /// Fraction 0..1 shown as a percentage.
    Percent,
}

pub(crate) fn fmt_tick(v: f64, range: (f64, f64), kind: TickFmt) -> String {
    let span = (range.1 - range.0).abs();
    let out = match kind {
        TickFmt::Integer => {
            if (v - v.round()).abs() > 1e-6 {
                return String::new();
            }
            format!("{:.0}", v)
        }
        TickFmt::Percent => {
            let step = span * 100.0 / 10.0;
            let decimals = decimals_for(step);
            format!("{:.*}%", decimals, v * 100.0)
        }
        TickFmt::Plain => {
            let mag = range.0.abs().max(range.1.abs());
            if mag >= 1e12 {
                format!("{:.1e}", v)
            } else {
                let (div, suffix) = if mag >= 1e7 {
                    (1e6, "M")
                } else if mag >= 1e4 {
                    (1e3, "k")
                } else {
                    (1.0, "")
                };
                let decimals = decimals_for(span / div / 10.0);
                format!("{:.*}{}", decimals, v / div, suffix)
            }
        }
    };
    if v == 0.0 || (span > 0.0 && v.abs() < span * 1e-9) {
        return if matches!(kind, TickFmt::Percent) {
            "0%".into()
        } else {
            "0".into()
        };
    }
    out
}

fn decimals_for(step: f64) -> usize {
    if !(step.is_finite() && step > 0.0) || step >= 1.0 {
        0
    } else {
        ((-step.log10()).ceil() as usize).min(6)
    }
}

/// A value for prose (legend, labels): about three significant digits,
/// thousands separators for large numbers.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let a = v.abs();
    if a >= 1e15 {
        format!("{:.2e}", v)
    } else if a >= 1000.0 {
        group_thousands(v.round() as i64)
    } else if a >= 100.0 {
        format!("{:.0}", v)
    } else if a == 0.0 {
        "0".into()
    } else {
        let decimals = (2 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{:.*}", decimals, v);
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    }
}

fn group_thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub(crate) struct Axes<'s> {
    pub x: (f64, f64),
    pub y: (f64, f64),
    pub x_desc: &'s str,
    pub y_desc: &'s str,
    pub x_fmt: TickFmt,
    pub y_fmt: TickFmt,
}

pub(crate) fn build_chart<'a, 'b>(
    area: &'a Area<'b>,
    axes: &Axes<'_>,
) -> DrawResult<Chart<'a, 'b>> {
    let chart = ChartBuilder::on(area)
        .margin_top(8)
        .margin_right(22)
        .margin_left(8)
        .margin_bottom(4)
        .x_label_area_size(50)
        .y_label_area_size(86)
        .build_cartesian_2d(axes.x.0..axes.x.1, axes.y.0..axes.y.1)?;
    Ok(chart)
}

pub(crate) fn draw_mesh(chart: &mut Chart<'_, '_>, axes: &Axes<'_>) -> DrawResult<()> {
    let (xr, yr, xk, yk) = (axes.x, axes.y, axes.x_fmt, axes.y_fmt);
    let x_formatter = move |v: &f64| fmt_tick(*v, xr, xk);
    let y_formatter = move |v: &f64| fmt_tick(*v, yr, yk);
    chart
        .configure_mesh()
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .x_labels(10)
        .y_labels(9)
        .max_light_lines(4)
        .label_style(font(14.0).color(&TEXT))
        .axis_desc_style(font(16.0).color(&TEXT))
        .bold_line_style(GRID_MAJOR)
        .light_line_style(GRID_MINOR)
        .axis_style(AXIS)
        .x_label_formatter(&x_formatter)
        .y_label_formatter(&y_formatter)
        .draw()?;
    Ok(())
}

/// Message in the middle of an empty chart, so an empty artifact explains
/// itself instead of looking broken.
pub(crate) fn no_data(root: &Area<'_>, chart: &Chart<'_, '_>, message: &str) -> DrawResult<()> {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let centre = ((xs.start + xs.end) / 2, (ys.start + ys.end) / 2);
    root.draw(&Text::new(
        message.to_string(),
        centre,
        bold(20.0)
            .color(&MUTED)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))?;
    Ok(())
}

/// A dashed target or marker line with its label.
pub(crate) struct TargetLine {
    pub at: f64,
    pub vertical: bool,
    pub text: String,
    pub color: RGBColor,
}

/// Draws every target line before any of their labels, so a later line
/// never crosses an earlier label; other labels then keep off the lines.
pub(crate) fn draw_targets(
    root: &Area<'_>,
    chart: &mut Chart<'_, '_>,
    labels: &mut Labeler,
    targets: &[TargetLine],
) -> DrawResult<()> {
    let (xs, ys) = chart.plotting_area().get_pixel_range();
    let (x0, y0) = (chart.x_range().start, chart.y_range().start);
    let mut anchors = Vec::with_capacity(targets.len());
    for t in targets {
        if t.vertical {
            dashed_vline(chart, t.at, t.color)?;
            let x = chart.backend_coord(&(t.at, y0)).0;
            labels.reserve_vline(x);
            anchors.push(((x, ys.start), Side::VLineTop));
        } else {
            dashed_hline(chart, t.at, t.color)?;
            let y = chart.backend_coord(&(x0, t.at)).1;
            labels.reserve_hline(y);
            anchors.push(((xs.end - 4, y), Side::HLineEnd));
        }
    }
    for (t, (anchor, side)) in targets.iter().zip(anchors) {
        labels.place(root, &t.text, anchor, side, &bold(14.0), t.color, true)?;
    }
    Ok(())
}

fn dashed_hline(chart: &mut Chart<'_, '_>, y: f64, color: RGBColor) -> DrawResult<()> {
    let (x0, x1) = (chart.x_range().start, chart.x_range().end);
    chart.draw_series(DashedLineSeries::new(
        vec![(x0, y), (x1, y)],
        12,
        7,
        color.stroke_width(2),
    ))?;
    Ok(())
}

fn dashed_vline(chart: &mut Chart<'_, '_>, x: f64, color: RGBColor) -> DrawResult<()> {
    let (y0, y1) = (chart.y_range().start, chart.y_range().end);
    chart.draw_series(DashedLineSeries::new(
        vec![(x, y0), (x, y1)],
        12,
        7,
        color.stroke_width(2),
    ))?;
    Ok(())
}

#[derive(Clone, Copy)]
pub(crate) enum Swatch {
    Dashed(RGBColor),
    LineMarker {
        color: RGBColor,
        width: u32,
    },
    Marker {
        color: RGBColor,
        filled: bool,
    },
    Ring(RGBColor),
    /// A shaded region, drawn as the region's tint.
    Fill(RGBColor),
    None,
}

pub(crate) struct LegendEntry {
    pub swatch: Swatch,
    pub text: String,
    pub bold: bool,
}

impl LegendEntry {
    pub fn new(swatch: Swatch, text: impl Into<String>) -> Self {
        Self {
            swatch,
            text: text.into(),
            bold: false,
        }
    }

    pub fn bold(mut self) -> Self {
        self.bold = true;
        self
    }
}

pub(crate) fn draw_legend(
    area: &Area<'_>,
    heading: &str,
    entries: &[LegendEntry],
) -> DrawResult<()> {
    const ROW: i32 = 25;
    const SWATCH_W: i32 = 30;
    let (w, h) = area.dim_in_pixel();
    let (w, h) = (w as i32, h as i32);
    let left = 6;
    let text_left = left + SWATCH_W + 10;
    let max_text = w - text_left - 8;
    let mut y = 14;
    if !heading.is_empty() {
        let text = fit_text(heading, &bold(15.0), w - left - 8)?;
        area.draw(&Text::new(text, (left, y), bold(15.0).color(&TEXT)))?;
        y += ROW + 4;
    }
    for (i, entry) in entries.iter().enumerate() {
        if y + ROW > h - 10 && i + 1 < entries.len() {
            let more = format!("+{} more", entries.len() - i);
            area.draw(&Text::new(more, (text_left, y), font(14.0).color(&MUTED)))?;
            break;
        }
        let mid = y + 8;
        draw_swatch(area, entry.swatch, (left, mid), SWATCH_W)?;
        let style = if entry.bold { bold(14.0) } else { font(14.0) };
        let text_x = if matches!(entry.swatch, Swatch::None) {
            left
        } else {
            text_left
        };
        let text = fit_text(&entry.text, &style, max_text + (text_left - text_x))?;
        area.draw(&Text::new(text, (text_x, y), style.color(&TEXT)))?;
        y += ROW;
    }
    Ok(())
}

fn draw_swatch(area: &Area<'_>, swatch: Swatch, (x, mid): (i32, i32), w: i32) -> DrawResult<()> {
    let centre = (x + w / 2, mid);
    match swatch {
        Swatch::Dashed(color) => {
            area.draw(&DashedPathElement::new(
                vec![(x, mid), (x + w, mid)],
                8,
                4,
                color.stroke_width(2),
            ))?;
        }
        Swatch::LineMarker { color, width } => {
            area.draw(&PathElement::new(
                vec![(x, mid), (x + w, mid)],
                color.stroke_width(width),
            ))?;
            area.draw(&Circle::new(centre, 4, color.filled()))?;
        }
        Swatch::Marker { color, filled } => {
            let style = if filled {
                color.filled()
            } else {
                color.stroke_width(2)
            };
            area.draw(&Circle::new(centre, 5, style))?;
        }
        Swatch::Ring(color) => {
            area.draw(&Circle::new(centre, 9, color.stroke_width(3)))?;
        }
        Swatch::Fill(color) => {
            area.draw(&Rectangle::new(
                [(x, mid - 7), (x + w, mid + 7)],
                color.mix(0.12).filled(),
            ))?;
        }
        Swatch::None => {}
    }
    Ok(())
}

type Rect = (i32, i32, i32, i32);

/// Places short labels next to chart features in pixel space, trying a few
/// spots around each anchor and skipping ones that would overlap earlier
/// labels, markers or the frame, so crowded sweeps stay legible.
pub(crate) struct Labeler {
    taken: Vec<Rect>,
    /// Series polylines, in pixels: labels avoid crossing them when they
    /// can, but may when nothing else is free.
    segments: Vec<((f64, f64), (f64, f64))>,
    bounds: Rect,
}

pub(crate) enum Side {
    /// Around a point marker whose drawn radius is `clearance` pixels.
    Point { clearance: i32 },
    /// Along a horizontal line ending at the anchor (label sits at its right end).
    HLineEnd,
    /// Beside a vertical line, near its top.
    VLineTop,
}

impl Labeler {
    pub fn new(chart: &Chart<'_, '_>) -> Self {
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        Self {
            taken: Vec::new(),
            segments: Vec::new(),
            bounds: (xs.start + 2, ys.start + 2, xs.end - 2, ys.end - 2),
        }
    }

    /// Keeps labels off a horizontal line at pixel row `y` (target lines),
    /// except the line's own forced label.
    pub fn reserve_hline(&mut self, y: i32) {
        self.taken
            .push((self.bounds.0, y - 2, self.bounds.2, y + 2));
    }

    /// Keeps labels off a vertical line at pixel column `x`.
    pub fn reserve_vline(&mut self, x: i32) {
        self.taken
            .push((x - 2, self.bounds.1, x + 2, self.bounds.3));
    }

    /// Reserves the space of a data marker.
    pub fn reserve_point(&mut self, (x, y): (i32, i32), radius: i32) {
        self.taken
            .push((x - radius, y - radius, x + radius, y + radius));
    }

    /// Reserves a series line through pixel points `pts`.
    pub fn reserve_polyline(&mut self, pts: impl IntoIterator<Item = (i32, i32)>) {
        let pts: Vec<(f64, f64)> = pts
            .into_iter()
            .map(|(x, y)| (f64::from(x), f64::from(y)))
            .collect();
        self.segments.extend(pts.windows(2).map(|w| (w[0], w[1])));
    }

    fn clear_of_lines(&self, r: Rect) -> bool {
        !self
            .segments
            .iter()
            .any(|&(a, b)| segment_hits_rect(a, b, r))
    }

    fn free(&self, r: Rect) -> bool {
        let b = self.bounds;
        r.0 >= b.0
            && r.1 >= b.1
            && r.2 <= b.2
            && r.3 <= b.3
            && self
                .taken
                .iter()
                .all(|t| r.2 <= t.0 || r.0 >= t.2 || r.3 <= t.1 || r.1 >= t.3)
    }

    /// Draws `text` near `anchor` if a free spot exists; returns whether it did.
    #[allow(clippy::too_many_arguments)]
    pub fn place(
        &mut self,
        root: &Area<'_>,
        text: &str,
        anchor: (i32, i32),
        side: Side,
        style: &FontDesc<'_>,
        color: RGBColor,
        force: bool,
    ) -> DrawResult<bool> {
        let size = style.get_size();
        let w = text_width(text, style)?;
        let h = size.ceil() as i32;
        let (ax, ay) = anchor;
        let candidates: Vec<(i32, i32)> = match side {
            Side::Point { clearance } => {
                let gap = clearance + 2;
                vec![
                    (ax + gap, ay - h - 2),
                    (ax + gap, ay + 2),
                    (ax - w - gap, ay - h - 2),
                    (ax - w - gap, ay + 2),
                    (ax - w / 2, ay - h - gap - 2),
                    (ax - w / 2, ay + gap + 2),
                    (ax + gap, ay - h / 2),
                    (ax - w - gap, ay - h / 2),
                ]
            }
            Side::HLineEnd => vec![
                (ax - w - 6, ay - h - 5),
                (ax - w - 6, ay + 5),
                (ax - w - 160, ay - h - 5),
                (ax - w - 160, ay + 5),
            ],
            Side::VLineTop => vec![
                (ax + 6, ay + 6),
                (ax - w - 6, ay + 6),
                (ax + 6, ay + 6 + h + 4),
                (ax - w - 6, ay + 6 + h + 4),
            ],
        };
        let rects: Vec<Rect> = candidates
            .iter()
            .map(|&(x, y)| (x, y, x + w, y + h))
            .collect();
        let mut chosen = rects
            .iter()
            .copied()
            .find(|&r| self.free(r) && self.clear_of_lines(r))
            .or_else(|| rects.iter().copied().find(|&r| self.free(r)));
        if chosen.is_none() && force {
            // Keep mandatory labels (targets) readable even when crowded:
            // first spot, pulled inside the frame.
            let (x, y) = candidates[0];
            let b = self.bounds;
            let x = x.clamp(b.0, (b.2 - w).max(b.0));
            let y = y.clamp(b.1, (b.3 - h).max(b.1));
            chosen = Some((x, y, x + w, y + h));
        }
        let Some(r) = chosen else {
            return Ok(false);
        };
        // A translucent white backing keeps labels legible where they
        // cross gridlines or series lines.
        root.draw(&Rectangle::new(
            [(r.0 - 2, r.1 - 1), (r.2 + 2, r.3)],
            WHITE.mix(0.8).filled(),
        ))?;
        root.draw(&Text::new(
            text.to_string(),
            (r.0, r.1),
            style.color(&color),
        ))?;
        self.taken.push(r);
        Ok(true)
    }
}

/// Liang–Barsky clip test: does segment a-b pass through rectangle `r`?
fn segment_hits_rect(a: (f64, f64), b: (f64, f64), r: Rect) -> bool {
    let (x0, y0, x1, y1) = (
        f64::from(r.0),
        f64::from(r.1),
        f64::from(r.2),
        f64::from(r.3),
    );
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let mut t0 = 0.0f64;
    let mut t1 = 1.0f64;
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return false;
            }
        } else {
            let t = q / p;
            if p < 0.0 {
                if t > t1 {
                    return false;
                }
                t0 = t0.max(t);
            } else {
                if t < t0 {
                    return false;
                }
                t1 = t1.min(t);
            }
        }
    }
    t0 <= t1
}
