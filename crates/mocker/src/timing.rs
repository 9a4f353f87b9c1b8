//! Step timers for the mocker's engine: the performance model, or
//! interpolated profiling data (what `slaprof profile` and Dynamo's profiler
//! write, and what the planner reads from its ConfigMap).

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::NpzReader;
use perf_model::calibration::Calibration;
use perf_model::predict::{prepare_single_engine, PredictError};
use perf_model::sim::SchedulerConfig;
use perf_model::{StepBatch, StepCostModel, StepTimer};
use spec::model::QuantScheme;
use spec::{Backend, GpuSystem, ModelArch, ParallelLayout};
use std::path::{Path, PathBuf};

/// The performance model's timer and scheduler for one engine, plus its KV
/// capacity in tokens (from the memory model). Prefix caching is switched on
/// because the mocker serves arbitrary prompts (the benchmark presets turn it
/// off for random ones); the caller may override any knob.
///
/// The calibration's fixed TTFT overhead (HTTP, tokenisation) is not part of
/// the step timer and so is not reproduced.
pub fn perf_model_engine(
    model: &ModelArch,
    system: &GpuSystem,
    backend: Backend,
    quant: QuantScheme,
    layout: ParallelLayout,
    cal: &Calibration,
) -> Result<(StepCostModel, SchedulerConfig, u64), PredictError> {
    let engine = prepare_single_engine(model, system, backend, quant, layout, cal)?;
    let mut scheduler = engine.scheduler;
    scheduler.enable_prefix_caching = true;
    let kv_tokens = scheduler.kv_capacity_tokens();
    Ok((engine.timer, scheduler, kv_tokens))
}

/// Why profiling data could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TimingError {
    #[error("no profiling data in {dir}: expected selected_prefill_interpolation/raw_data.npz and selected_decode_interpolation/raw_data.npz, or prefill_raw_data.json and decode_raw_data.json")]
    NotFound { dir: PathBuf },
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: missing key `{key}`")]
    MissingKey { path: PathBuf, key: &'static str },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Profiling data of one deployment: prefill TTFT over ISL, decode ITL over
/// KV usage and context length. Times in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileData {
    pub prefill_isl: Vec<f64>,
    pub prefill_ttft_ms: Vec<f64>,
    pub prefill_thpt_per_gpu: Vec<f64>,
    pub max_kv_tokens: u64,
    pub x_kv_usage: Vec<f64>,
    pub y_context_length: Vec<f64>,
    pub z_itl_ms: Vec<f64>,
    pub z_thpt_per_gpu: Vec<f64>,
    /// The prefill and decode files read, for messages.
    pub prefill_path: PathBuf,
    pub decode_path: PathBuf,
}

const PREFILL_NPZ: &str = "selected_prefill_interpolation/raw_data.npz";
const DECODE_NPZ: &str = "selected_decode_interpolation/raw_data.npz";
const PREFILL_JSON: &str = "prefill_raw_data.json";
const DECODE_JSON: &str = "decode_raw_data.json";

/// Reads profiling data from `dir`: the profiler's `raw_data.npz` pair if
/// present, else the planner ConfigMap's JSON pair.
pub fn load_profile_data(dir: &Path) -> Result<ProfileData, TimingError> {
    let (pn, dn) = (dir.join(PREFILL_NPZ), dir.join(DECODE_NPZ));
    if pn.is_file() && dn.is_file() {
        let mut p = Npz::open(&pn)?;
        let mut d = Npz::open(&dn)?;
        let max_kv = d.array("max_kv_tokens")?;
        return finish(ProfileData {
            prefill_isl: p.array("prefill_isl")?,
            prefill_ttft_ms: p.array("prefill_ttft")?,
            prefill_thpt_per_gpu: p.optional("prefill_thpt_per_gpu")?,
            max_kv_tokens: first_as_u64(&dn, &max_kv)?,
            x_kv_usage: d.array("x_kv_usage")?,
            y_context_length: d.array("y_context_length")?,
            z_itl_ms: d.array("z_itl")?,
            z_thpt_per_gpu: d.optional("z_thpt_per_gpu")?,
            prefill_path: pn,
            decode_path: dn,
        });
    }
    let (pj, dj) = (dir.join(PREFILL_JSON), dir.join(DECODE_JSON));
    if pj.is_file() && dj.is_file() {
        let p = read_json(&pj)?;
        let d = read_json(&dj)?;
        let max_kv = match d.get("max_kv_tokens") {
            None => {
                return Err(TimingError::MissingKey {
                    path: dj,
                    key: "max_kv_tokens",
                })
            }
            // A plain integer as Dynamo writes it; a one-element list too,
            // mirroring the npz layout.
            Some(serde_json::Value::Array(a)) => a.first().and_then(|v| v.as_f64()),
            Some(v) => v.as_f64(),
        }
        .ok_or_else(|| TimingError::Invalid {
            path: dj.clone(),
            message: "`max_kv_tokens` is not a number".into(),
        })?;
        return finish(ProfileData {
            prefill_isl: json_array(&pj, &p, "prefill_isl")?,
            prefill_ttft_ms: json_array(&pj, &p, "prefill_ttft")?,
            prefill_thpt_per_gpu: json_optional(&pj, &p, "prefill_thpt_per_gpu")?,
            max_kv_tokens: first_as_u64(&dj, &[max_kv])?,
            x_kv_usage: json_array(&dj, &d, "x_kv_usage")?,
            y_context_length: json_array(&dj, &d, "y_context_length")?,
            z_itl_ms: json_array(&dj, &d, "z_itl")?,
            z_thpt_per_gpu: json_optional(&dj, &d, "z_thpt_per_gpu")?,
            prefill_path: pj,
            decode_path: dj,
        });
    }
    Err(TimingError::NotFound {
        dir: dir.to_path_buf(),
    })
}

fn first_as_u64(path: &Path, v: &[f64]) -> Result<u64, TimingError> {
    match v.first() {
        Some(&x) if x.is_finite() && x >= 1.0 => Ok(x as u64),
        _ => Err(TimingError::Invalid {
            path: path.to_path_buf(),
            message: "`max_kv_tokens` must be a positive number".into(),
        }),
    }
}

/// Checks shapes and values once so that the timer never meets NaN.
fn finish(d: ProfileData) -> Result<ProfileData, TimingError> {
    let bad = |path: &Path, message: String| {
        Err(TimingError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    };
    let (pp, dp) = (&d.prefill_path, &d.decode_path);
    if d.prefill_isl.is_empty() || d.prefill_isl.len() != d.prefill_ttft_ms.len() {
        return bad(
            pp,
            format!(
                "`prefill_isl` ({}) and `prefill_ttft` ({}) must be non-empty and of equal length",
                d.prefill_isl.len(),
                d.prefill_ttft_ms.len()
            ),
        );
    }
    let n = d.x_kv_usage.len();
    if n == 0 || d.y_context_length.len() != n || d.z_itl_ms.len() != n {
        return bad(
            dp,
            format!(
                "`x_kv_usage` ({n}), `y_context_length` ({}) and `z_itl` ({}) must be non-empty and of equal length",
                d.y_context_length.len(),
                d.z_itl_ms.len()
            ),
        );
    }
    let finite = |v: &[f64]| v.iter().all(|x| x.is_finite() && *x >= 0.0);
    if !finite(&d.prefill_isl) || !finite(&d.prefill_ttft_ms) {
        return bad(pp, "prefill values must be finite and non-negative".into());
    }
    if !finite(&d.x_kv_usage) || !finite(&d.y_context_length) || !finite(&d.z_itl_ms) {
        return bad(dp, "decode values must be finite and non-negative".into());
    }
    Ok(d)
}

struct Npz<'a> {
    path: &'a Path,
    reader: NpzReader<std::fs::File>,
}

impl<'a> Npz<'a> {
    fn open(path: &'a Path) -> Result<Self, TimingError> {
        let f = std::fs::File::open(path).map_err(|source| TimingError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let reader = NpzReader::new(f).map_err(|e| TimingError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Npz { path, reader })
    }

    fn optional(&mut self, key: &'static str) -> Result<Vec<f64>, TimingError> {
        match self.array(key) {
            Err(TimingError::MissingKey { .. }) => Ok(Vec::new()),
            r => r,
        }
    }

    /// An array of any numeric dtype NumPy is likely to have written
    /// (profilers store ISLs as integers, times as floats), flattened.
    fn array(&mut self, key: &'static str) -> Result<Vec<f64>, TimingError> {
        let names = self.reader.names().map_err(|e| TimingError::Parse {
            path: self.path.to_path_buf(),
            message: e.to_string(),
        })?;
        if !names.iter().any(|n| n == key) {
            return Err(TimingError::MissingKey {
                path: self.path.to_path_buf(),
                key,
            });
        }
        macro_rules! try_dtype {
            ($t:ty) => {
                if let Ok(a) = self.reader.by_name::<_, IxDyn>(key) {
                    let a: ArrayD<$t> = a;
                    #[allow(clippy::unnecessary_cast)]
                    return Ok(a.iter().map(|&x| x as f64).collect());
                }
            };
        }
        try_dtype!(f64);
        try_dtype!(i64);
        try_dtype!(f32);
        try_dtype!(i32);
        try_dtype!(u64);
        try_dtype!(u32);
        Err(TimingError::Parse {
            path: self.path.to_path_buf(),
            message: format!("`{key}` is not a numeric array"),
        })
    }
}

fn read_json(path: &Path) -> Result<serde_json::Value, TimingError> {
    let text = std::fs::read_to_string(path).map_err(|source| TimingError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| TimingError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

fn json_optional(
    path: &Path,
    v: &serde_json::Value,
    key: &'static str,
) -> Result<Vec<f64>, TimingError> {
    match json_array(path, v, key) {
        Err(TimingError::MissingKey { .. }) => Ok(Vec::new()),
        r => r,
    }
}

fn json_array(
    path: &Path,
    v: &serde_json::Value,
    key: &'static str,
) -> Result<Vec<f64>, TimingError> {
    let arr = v
        .get(key)
        .ok_or_else(|| TimingError::MissingKey {
            path: path.to_path_buf(),
            key,
        })?
        .as_array()
        .ok_or_else(|| TimingError::Invalid {
            path: path.to_path_buf(),
            message: format!("`{key}` is not an array"),
        })?;
    arr.iter()
        .map(|x| {
            x.as_f64().ok_or_else(|| TimingError::Invalid {
                path: path.to_path_buf(),
                message: format!("`{key}` holds a non-number: {x}"),
            })
        })
        .collect()
}

/// Step times from profiling data.
///
/// **Prefill.** The step's chunks are costed as one virtual sequence: with
/// `T` new tokens and `P` tokens already cached (summed over the chunks) the
/// step costs `ttft(P + T) - ttft(P)`, with `ttft(0) = 0` and `ttft`
/// piecewise linear over the profiled ISLs (linear extrapolation through
/// the origin below the first point, along the last segment above the last).
/// A lone prompt therefore costs exactly its profiled TTFT however the
/// scheduler chunks it (the differences telescope), and a step batching
/// several prompts pays the fixed per-step part of the TTFT once, not once
/// per prompt; the price is that cross-prompt attention is over-counted, a
/// small term at the lengths profiled.
///
/// **Decode.** The profiled ITL is the whole step time of a decode-only
/// batch at KV usage `x` and mean context length `y`, so a step with decode
/// sequences costs `itl(x, y)` with `x = decode_kv_tokens / max_kv_tokens`
/// and `y = decode_kv_tokens / decode_seqs`. The profiler samples rows of
/// constant context length (one ISL each) across concurrencies, so the
/// points are grouped into rows by `y`; a query interpolates linearly in `x`
/// within the two rows bracketing `y` (clamped to each row's range) and then
/// linearly in `y` between them (clamped to the outermost rows). This is
/// exact on every profiled point, monotone where the data are, and needs no
/// rescaling of the axes, which inverse-distance weighting would (usage is
/// in 0..1, lengths in thousands) while flattening the curve towards local
/// averages.
///
/// A mixed step pays both parts.
#[derive(Debug, Clone)]
pub struct ProfileDataTimer {
    /// (isl, ttft ms), sorted by isl, distinct isls, starting at (0, 0).
    prefill: Vec<(f64, f64)>,
    /// Rows of constant context length, sorted by length; each row's
    /// (kv usage, itl ms) sorted by usage.
    rows: Vec<(f64, Vec<(f64, f64)>)>,
    max_kv_tokens: u64,
}

impl ProfileDataTimer {
    pub fn new(data: &ProfileData) -> ProfileDataTimer {
        let mut prefill: Vec<(f64, f64)> = data
            .prefill_isl
            .iter()
            .zip(&data.prefill_ttft_ms)
            .map(|(&i, &t)| (i, t))
            .filter(|&(i, _)| i > 0.0)
            .collect();
        prefill.sort_by(|a, b| a.0.total_cmp(&b.0));
        prefill.dedup_by(|b, a| a.0 == b.0);
        prefill.insert(0, (0.0, 0.0));

        let mut pts: Vec<(f64, f64, f64)> = (0..data.z_itl_ms.len())
            .map(|i| {
                (
                    data.y_context_length[i],
                    data.x_kv_usage[i],
                    data.z_itl_ms[i],
                )
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
        let mut rows: Vec<(f64, Vec<(f64, f64)>)> = Vec::new();
        for (y, x, z) in pts {
            match rows.last_mut() {
                // Context lengths are integers written as floats; a relative
                // tolerance keeps float noise from splitting a row.
                Some((ry, row)) if (y - *ry).abs() <= 1e-9 * ry.abs().max(1.0) => {
                    if row.last().is_some_and(|l| l.0 == x) {
                        continue;
                    }
                    row.push((x, z));
                }
                _ => rows.push((y, vec![(x, z)])),
            }
        }
        ProfileDataTimer {
            prefill,
            rows,
            max_kv_tokens: data.max_kv_tokens,
        }
    }

    /// KV capacity of the profiled engine, in tokens: the mocker's KV pool.
    pub fn max_kv_tokens(&self) -> u64 {
        self.max_kv_tokens
    }

    /// Interpolated TTFT (ms) of a lone prompt of `isl` tokens.
    pub fn ttft_ms(&self, isl: f64) -> f64 {
        let p = &self.prefill;
        if isl <= 0.0 {
            return 0.0;
        }
        // The first point is the synthetic origin, so there is always a
        // segment; past the end extrapolate along the last one.
        if p.len() == 1 {
            return 0.0;
        }
        let i = p.partition_point(|&(x, _)| x < isl).clamp(1, p.len() - 1);
        let ((x0, y0), (x1, y1)) = (p[i - 1], p[i]);
        (y0 + (y1 - y0) * (isl - x0) / (x1 - x0)).max(0.0)
    }

    /// Interpolated decode step time (ms) at KV usage `x` and mean context
    /// length `y`.
    pub fn itl_ms(&self, x: f64, y: f64) -> f64 {
        let rows = &self.rows;
        let i = rows.partition_point(|r| r.0 < y);
        if i == 0 {
            return lerp_row(&rows[0].1, x);
        }
        if i == rows.len() {
            return lerp_row(&rows[i - 1].1, x);
        }
        let (y0, r0) = (&rows[i - 1].0, &rows[i - 1].1);
        let (y1, r1) = (&rows[i].0, &rows[i].1);
        let (z0, z1) = (lerp_row(r0, x), lerp_row(r1, x));
        z0 + (z1 - z0) * (y - y0) / (y1 - y0)
    }
}

/// Linear interpolation over sorted `(x, z)` points, clamped at the ends.
fn lerp_row(row: &[(f64, f64)], x: f64) -> f64 {
    let i = row.partition_point(|&(rx, _)| rx < x);
    if i == 0 {
        return row[0].1;
    }
    if i == row.len() {
        return row[i - 1].1;
    }
    let ((x0, z0), (x1, z1)) = (row[i - 1], row[i]);
    z0 + (z1 - z0) * (x - x0) / (x1 - x0)
}

impl StepTimer for ProfileDataTimer {
    fn step_ms(&self, b: &StepBatch) -> f64 {
        let mut ms = 0.0;
        if b.prefill_tokens > 0 {
            let past = b.prefill_past_tokens as f64;
            ms += (self.ttft_ms(past + f64::from(b.prefill_tokens)) - self.ttft_ms(past)).max(0.0);
        }
        if b.decode_seqs > 0 {
            let kv = b.decode_kv_tokens as f64;
            let usage = kv / self.max_kv_tokens as f64;
            ms += self.itl_ms(usage, kv / f64::from(b.decode_seqs));
        }
        ms
    }
}
