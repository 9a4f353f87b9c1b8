//! The plot artifacts: valid PNGs with visible text, robust to the inputs a
//! partial or odd sweep produces, and written atomically.

use std::fs;
use std::path::{Path, PathBuf};

use profiler::plots::{self, DecodePoint, DecodeSeries, PlotError, PrefillPoint};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
const SLA_RED: [u8; 3] = [214, 39, 40];

struct Image {
    width: u32,
    height: u32,
    rgb: Vec<u8>,
}

impl Image {
    fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = ((y * self.width + x) * 3) as usize;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Pixels in the rectangle that are clearly darker than the white
    /// background (anti-aliased glyph edges count only when solid enough).
    fn ink(&self, x0: u32, y0: u32, x1: u32, y1: u32) -> usize {
        (y0..y1)
            .flat_map(|y| (x0..x1).map(move |x| (x, y)))
            .filter(|&(x, y)| self.pixel(x, y).iter().any(|&c| c < 160))
            .count()
    }

    fn count_color(&self, color: [u8; 3]) -> usize {
        self.rgb.chunks_exact(3).filter(|p| **p == color).count()
    }
}

fn read_png(path: &Path) -> Image {
    let bytes = fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    assert_eq!(bytes[..8], PNG_SIGNATURE, "{} is not a PNG", path.display());
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("PNG header decodes");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("PNG data decodes");
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    Image {
        width: info.width,
        height: info.height,
        rgb: buf,
    }
}

/// Asserts the common look: 1000x700, a rendered title, axis text and a
/// legend. Text is checked as ink in regions only text occupies, which is
/// what fails when a font is missing or not registered.
fn assert_plot(path: &Path) -> Image {
    let img = read_png(path);
    assert_eq!((img.width, img.height), (1000, 700), "{}", path.display());
    let title = img.ink(0, 0, 1000, 40);
    assert!(title > 300, "title strip has only {title} dark pixels");
    let subtitle = img.ink(0, 42, 1000, 66);
    assert!(subtitle > 100, "subtitle has only {subtitle} dark pixels");
    // Rotated y-axis title, left of the tick labels.
    let y_desc = img.ink(0, 150, 30, 600);
    assert!(y_desc > 100, "y-axis title has only {y_desc} dark pixels");
    // x-axis title, below the tick labels.
    let x_desc = img.ink(150, 670, 700, 700);
    assert!(x_desc > 100, "x-axis title has only {x_desc} dark pixels");
    let legend = img.ink(770, 80, 1000, 110);
    assert!(legend > 100, "legend heading has only {legend} dark pixels");
    img
}

fn prefill_points() -> Vec<PrefillPoint> {
    [
        ("TP1", 1, 420.0, 9800.0),
        ("TP2", 2, 188.0, 8900.0),
        ("TP4", 4, 128.0, 7800.0),
        ("DEP4", 4, 151.0, 7000.0),
        ("TP8", 8, 79.0, 6100.0),
    ]
    .iter()
    .map(|&(label, num_gpus, ttft_ms, thpt_per_gpu)| PrefillPoint {
        label: label.into(),
        num_gpus,
        ttft_ms,
        thpt_per_gpu,
    })
    .collect()
}

fn decode_series() -> Vec<DecodeSeries> {
    [("TP1", 1u32), ("TP2", 2), ("TP4", 4)]
        .iter()
        .map(|&(label, num_gpus)| DecodeSeries {
            label: label.into(),
            num_gpus,
            points: [1u32, 4, 16, 64, 256]
                .iter()
                .map(|&n| {
                    let itl_ms = 10.0 / f64::from(num_gpus) + 0.05 * f64::from(n);
                    DecodePoint {
                        in_flight: n,
                        itl_ms,
                        thpt_per_gpu: f64::from(n) * 1000.0 / itl_ms / f64::from(num_gpus),
                    }
                })
                .collect(),
        })
        .collect()
}

/// (kv usage, context length, itl ms, tokens/s/GPU) on a 4 x 5 grid.
fn decode_grid() -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let (mut x, mut y, mut itl, mut thpt) = (vec![], vec![], vec![], vec![]);
    for ctx in [1024.0, 4096.0, 16384.0, 65536.0] {
        for k in 1..=5 {
            let u = f64::from(k) * 0.19;
            x.push(u);
            y.push(ctx);
            itl.push(6.0 + 20.0 * u + ctx / 8000.0);
            thpt.push(u * 1e8 / ctx / (6.0 + 20.0 * u));
        }
    }
    (x, y, itl, thpt)
}

fn out(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

#[test]
fn prefill_performance_renders_target_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "prefill_performance.png");
    plots::prefill_performance(&path, &prefill_points(), 200.0, Some(1)).unwrap();
    let img = assert_plot(&path);
    assert!(
        img.count_color(SLA_RED) > 300,
        "the TTFT target line should be drawn in red"
    );
}

#[test]
fn decode_performance_renders_target_and_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "decode_performance.png");
    plots::decode_performance(&path, &decode_series(), 15.0, Some(2)).unwrap();
    let img = assert_plot(&path);
    assert!(img.count_color(SLA_RED) > 300, "ITL target line missing");
}

#[test]
fn prefill_interpolation_plots_render() {
    let dir = tempfile::tempdir().unwrap();
    let isl: Vec<f64> = (1..=8).map(|i| f64::from(i) * 2000.0).collect();
    let ttft: Vec<f64> = isl.iter().map(|x| 20.0 + 0.02 * x).collect();
    let thpt: Vec<f64> = isl.iter().map(|x| 9000.0 * x / (x + 800.0)).collect();

    let path = out(&dir, "prefill_ttft_interpolation.png");
    plots::prefill_ttft_interpolation(&path, &isl, &ttft, Some(200.0), Some(3000.0)).unwrap();
    let img = assert_plot(&path);
    assert!(img.count_color(SLA_RED) > 300, "TTFT target line missing");

    let path = out(&dir, "prefill_throughput_interpolation.png");
    plots::prefill_throughput_interpolation(&path, &isl, &thpt).unwrap();
    let img = assert_plot(&path);
    assert_eq!(img.count_color(SLA_RED), 0, "no target on this plot");
}

#[test]
fn decode_interpolation_plots_render() {
    let dir = tempfile::tempdir().unwrap();
    let (x, y, itl, thpt) = decode_grid();

    let path = out(&dir, "decode_itl_interplation.png");
    plots::decode_itl_interpolation(&path, &x, &y, &itl, Some(20.0)).unwrap();
    let img = assert_plot(&path);
    assert!(img.count_color(SLA_RED) > 300, "ITL target line missing");

    let path = out(&dir, "decode_throughput_interpolation.png");
    plots::decode_throughput_interpolation(&path, &x, &y, &thpt).unwrap();
    assert_plot(&path);
}

#[test]
fn target_outside_data_is_kept_in_range() {
    // A target far above every measurement must still be drawn, not
    // clipped away by a range fitted to the data alone.
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "p.png");
    let isl = [1000.0, 2000.0];
    plots::prefill_ttft_interpolation(&path, &isl, &[10.0, 20.0], Some(5000.0), Some(64000.0))
        .unwrap();
    assert!(read_png(&path).count_color(SLA_RED) > 300);
    let path = out(&dir, "d.png");
    plots::decode_performance(&path, &decode_series(), 1e4, None).unwrap();
    assert!(read_png(&path).count_color(SLA_RED) > 300);
}

#[test]
fn many_context_lengths_are_binned_not_crammed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut x, mut y, mut z) = (vec![], vec![], vec![]);
    for c in 0..40 {
        for k in 0..3 {
            x.push(f64::from(k) / 2.0);
            y.push(f64::from(c) * 512.0 + 0.5);
            z.push(f64::from(c + k));
        }
    }
    let path = out(&dir, "grid.png");
    plots::decode_itl_interpolation(&path, &x, &y, &z, Some(10.0)).unwrap();
    assert_plot(&path);
}

/// Values a partial or broken sweep can produce.
const NASTY: [f64; 9] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    0.0,
    -5.0,
    1e-300,
    1e300,
    f64::MAX,
    f64::MIN_POSITIVE,
];

#[test]
fn empty_inputs_still_write_a_plot() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| out(&dir, name);
    plots::prefill_performance(&p("a.png"), &[], 200.0, None).unwrap();
    plots::decode_performance(&p("b.png"), &[], 20.0, None).unwrap();
    let empty_series = DecodeSeries {
        label: "TP1".into(),
        num_gpus: 1,
        points: vec![],
    };
    plots::decode_performance(&p("c.png"), &[empty_series], 20.0, Some(0)).unwrap();
    plots::prefill_ttft_interpolation(&p("d.png"), &[], &[], None, None).unwrap();
    plots::prefill_ttft_interpolation(&p("e.png"), &[], &[], Some(200.0), Some(3000.0)).unwrap();
    plots::prefill_throughput_interpolation(&p("f.png"), &[], &[]).unwrap();
    plots::decode_itl_interpolation(&p("g.png"), &[], &[], &[], Some(20.0)).unwrap();
    plots::decode_throughput_interpolation(&p("h.png"), &[], &[], &[]).unwrap();
    for name in ["a", "b", "c", "d", "e", "f", "g", "h"] {
        assert_plot(&p(&format!("{name}.png")));
    }
}

#[test]
fn single_points_and_flat_data_render() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| out(&dir, name);
    let one = &prefill_points()[..1];
    plots::prefill_performance(&p("a.png"), one, 200.0, Some(0)).unwrap();
    let flat = DecodeSeries {
        label: "TP2".into(),
        num_gpus: 2,
        points: vec![
            DecodePoint {
                in_flight: 8,
                itl_ms: 12.0,
                thpt_per_gpu: 500.0,
            };
            3
        ],
    };
    plots::decode_performance(&p("b.png"), &[flat], 12.0, Some(0)).unwrap();
    plots::prefill_ttft_interpolation(&p("c.png"), &[4096.0], &[80.0], Some(80.0), Some(4096.0))
        .unwrap();
    plots::prefill_throughput_interpolation(&p("d.png"), &[7.0, 7.0, 7.0], &[3.0, 3.0, 3.0])
        .unwrap();
    plots::decode_itl_interpolation(&p("e.png"), &[0.5], &[2048.0], &[9.0], Some(9.0)).unwrap();
    plots::decode_throughput_interpolation(&p("f.png"), &[0.0; 4], &[0.0; 4], &[0.0; 4]).unwrap();
    for name in ["a", "b", "c", "d", "e", "f"] {
        assert_plot(&p(&format!("{name}.png")));
    }
}

#[test]
fn non_finite_and_extreme_values_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "x.png");
    let good = [1.0, 2.0, 3.0];
    for &bad in &NASTY {
        let mixed = [1.0, bad, 3.0];
        let points: Vec<PrefillPoint> = prefill_points()
            .into_iter()
            .enumerate()
            .map(|(i, mut p)| {
                if i % 2 == 0 {
                    p.ttft_ms = bad;
                } else {
                    p.thpt_per_gpu = bad;
                }
                p
            })
            .collect();
        plots::prefill_performance(&path, &points, bad, Some(0)).unwrap();
        plots::prefill_performance(&path, &points, 200.0, Some(1)).unwrap();

        let mut series = decode_series();
        series[0].points[1].itl_ms = bad;
        series[1].points[2].thpt_per_gpu = bad;
        series[2].points[0].in_flight = u32::MAX;
        plots::decode_performance(&path, &series, bad, Some(1)).unwrap();

        plots::prefill_ttft_interpolation(&path, &mixed, &good, Some(bad), Some(bad)).unwrap();
        plots::prefill_ttft_interpolation(&path, &good, &mixed, Some(bad), Some(2.0)).unwrap();
        plots::prefill_throughput_interpolation(&path, &mixed, &[bad; 3]).unwrap();
        plots::decode_itl_interpolation(&path, &mixed, &good, &mixed, Some(bad)).unwrap();
        plots::decode_throughput_interpolation(&path, &good, &mixed, &[bad, 1.0, bad]).unwrap();
    }
    assert_plot(&path);
}

#[test]
fn mismatched_lengths_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "x.png");
    let is_mismatch = |r: Result<(), PlotError>| matches!(r, Err(PlotError::LengthMismatch { .. }));
    assert!(is_mismatch(plots::prefill_ttft_interpolation(
        &path,
        &[1.0, 2.0],
        &[1.0],
        None,
        None
    )));
    assert!(is_mismatch(plots::prefill_throughput_interpolation(
        &path,
        &[1.0],
        &[]
    )));
    assert!(is_mismatch(plots::decode_itl_interpolation(
        &path,
        &[0.1, 0.2],
        &[1.0],
        &[1.0, 2.0],
        None
    )));
    assert!(is_mismatch(plots::decode_throughput_interpolation(
        &path,
        &[0.1, 0.2],
        &[1.0, 2.0],
        &[1.0],
    )));
    assert!(!path.exists(), "nothing is written for rejected input");
}

#[test]
fn chosen_index_out_of_range_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "x.png");
    let err = plots::prefill_performance(&path, &prefill_points(), 200.0, Some(99)).unwrap_err();
    assert!(
        matches!(err, PlotError::ChosenOutOfRange { index: 99, .. }),
        "{err}"
    );
    let err = plots::decode_performance(&path, &[], 20.0, Some(0)).unwrap_err();
    assert!(matches!(err, PlotError::ChosenOutOfRange { .. }), "{err}");
}

#[test]
fn missing_directory_error_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/dir/prefill_performance.png");
    let err = plots::prefill_performance(&path, &prefill_points(), 200.0, None).unwrap_err();
    assert!(matches!(err, PlotError::Io { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "error should name {}: {message}",
        path.display()
    );
}

#[test]
fn writes_are_atomic_and_leave_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "prefill_performance.png");
    fs::write(&path, b"old contents").unwrap();
    plots::prefill_performance(&path, &prefill_points(), 200.0, None).unwrap();
    assert_plot(&path);

    // A directory in the way makes the final rename fail: the error names
    // the path and the half-done temp file is cleaned up.
    let blocked = out(&dir, "blocked.png");
    fs::create_dir(&blocked).unwrap();
    fs::write(blocked.join("keep"), b"x").unwrap();
    let err = plots::decode_performance(&blocked, &decode_series(), 20.0, None).unwrap_err();
    assert!(err.to_string().contains("blocked.png"), "{err}");

    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["blocked.png", "prefill_performance.png"]);
}
