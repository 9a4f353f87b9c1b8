//! The seed's five steps: hardware, sweep ranges, parallel-mapping sweep,
//! recommendation, and in-depth interpolation of the chosen engines.

use crate::measure::{EngineUnderTest, MeasureError, Measurer};
use crate::progress::{Log, Progress};
use crate::settings::ProfileSettings;
use rayon::prelude::*;
use serde::Serialize;
use spec::model::ModelFamily;
use spec::{GpuSystem, ModelArch, ParallelLayout};

/// Output tokens of each decode-interpolation request (the seed's 500: long
/// enough for a stable ITL, short enough to keep the context steady).
pub const DECODE_INTERPOLATION_OSL: u32 = 500;
/// Tokens the prefill interpolation leaves for a chat template and system
/// prompt below the context limit (the seed's 512).
pub const PREFILL_CONTEXT_HEADROOM: u32 = 512;
/// Shortest prompt of both interpolations.
pub const INTERPOLATION_START_ISL: u32 = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Prefill,
    Decode,
}

/// A parallel mapping as the seed names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Mapping {
    pub kind: MappingKind,
    pub num_gpus: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum MappingKind {
    #[serde(rename = "TP")]
    Tp,
    #[serde(rename = "TEP")]
    Tep,
    #[serde(rename = "DEP")]
    Dep,
}

impl Mapping {
    pub fn layout(&self) -> ParallelLayout {
        match self.kind {
            MappingKind::Tp => ParallelLayout::tp(self.num_gpus),
            MappingKind::Tep => ParallelLayout::tep(self.num_gpus),
            MappingKind::Dep => ParallelLayout::dep(self.num_gpus),
        }
    }

    /// `TP=4`, as the seed labels mappings.
    pub fn label(&self) -> String {
        let k = match self.kind {
            MappingKind::Tp => "TP",
            MappingKind::Tep => "TEP",
            MappingKind::Dep => "DEP",
        };
        format!("{k}={}", self.num_gpus)
    }

    /// Attention data-parallel ranks.
    pub fn attn_dp(&self) -> u32 {
        self.layout().dp
    }
}

/// Mappings the seed sweeps for a model family, in its order.
pub fn candidate_kinds(family: ModelFamily) -> &'static [MappingKind] {
    match family {
        ModelFamily::Dense => &[MappingKind::Tp],
        ModelFamily::MlaMoe => &[MappingKind::Tep, MappingKind::Dep],
        ModelFamily::GqaMoe => &[MappingKind::Tp, MappingKind::Tep, MappingKind::Dep],
    }
}

/// A mapping left out of the sweep, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub mapping: String,
    pub num_gpus: u32,
    pub reason: String,
}

/// Steps 1 and 2: the hardware and what will be swept.
#[derive(Debug, Clone, Serialize)]
pub struct SweepPlan {
    pub system: String,
    pub num_gpus_per_node: u32,
    pub min_num_gpus: u32,
    pub max_num_gpus: u32,
    /// Why the bounds are what they are.
    pub bounds_reason: String,
    pub gpu_counts: Vec<u32>,
    pub candidates: Vec<Mapping>,
    pub skipped: Vec<Skipped>,
    pub max_context_length: u32,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ProfileError {
    #[error("{0}")]
    Plan(String),
    #[error("measuring {mapping} failed: {error}")]
    Measure {
        mapping: String,
        error: MeasureError,
    },
}

fn is_power_of_two(n: u32) -> bool {
    n != 0 && n & (n - 1) == 0
}

/// Why `mapping` cannot serve `model`, checked as the seed does (heads, KV
/// heads and experts must divide) plus memory (weights and one request).
fn rejection(
    mapping: &Mapping,
    model: &ModelArch,
    measurer: &dyn Measurer,
    isl: u32,
    osl: u32,
) -> Option<String> {
    let l = mapping.layout();
    if model.num_heads % l.tp != 0 {
        return Some(format!(
            "tensor-parallel size {} does not divide the {} attention heads",
            l.tp, model.num_heads
        ));
    }
    if !model.is_mla() && model.num_kv_heads % l.tp != 0 {
        return Some(format!(
            "tensor-parallel size {} does not divide the {} KV heads",
            l.tp, model.num_kv_heads
        ));
    }
    if let Some(moe) = model.moe.filter(|_| model.is_moe()) {
        if moe.num_experts % l.moe_ep != 0 {
            return Some(format!(
                "expert-parallel size {} does not divide the {} experts",
                l.moe_ep, moe.num_experts
            ));
        }
    }
    match measurer.engine(l) {
        Err(e) => Some(e.to_string()),
        Ok(engine) => engine
            .require_request(isl, osl)
            .err()
            .map(|e| e.to_string()),
    }
}

/// Steps 1–2: GPUs per node, the GPU-count range and the candidate mappings.
pub fn plan(
    settings: &ProfileSettings,
    model: &ModelArch,
    system: &GpuSystem,
    measurer: &dyn Measurer,
) -> Result<SweepPlan, ProfileError> {
    let per_node = settings
        .num_gpus_per_node
        .unwrap_or(system.gpus_per_node)
        .max(1);
    let family = model.family();
    let (default_max, why_max) = match family {
        ModelFamily::Dense => (per_node, "one node for a dense model"),
        _ => (4 * per_node, "four nodes for an MoE model"),
    };
    let max = settings.max_num_gpus.unwrap_or(default_max);
    let max_context_length = settings
        .max_context_length
        .unwrap_or(model.max_position_embeddings)
        .min(model.max_position_embeddings);
    if u64::from(settings.isl) + u64::from(settings.osl) > u64::from(max_context_length) {
        return Err(ProfileError::Plan(format!(
            "ISL {} + OSL {} exceeds the {max_context_length}-token context of {}; shorten the requests",
            settings.isl, settings.osl, model.name
        )));
    }
    let counts_up_to_max: Vec<u32> = (0..31)
        .map(|i| 1u32 << i)
        .take_while(|&n| n <= max)
        .collect();
    let mut skipped = Vec::new();
    let mut candidates = Vec::new();
    let mut min_fit = None;
    for &n in &counts_up_to_max {
        if settings.min_num_gpus.is_some_and(|lo| n < lo) {
            continue;
        }
        let mut seen: Vec<ParallelLayout> = Vec::new();
        for &kind in candidate_kinds(family) {
            let m = Mapping { kind, num_gpus: n };
            // TP=1, TEP=1 and DEP=1 are the same engine: sweep it once.
            if seen.contains(&m.layout()) {
                continue;
            }
            seen.push(m.layout());
            match rejection(&m, model, measurer, settings.isl, settings.osl) {
                Some(reason) => skipped.push(Skipped {
                    mapping: m.label(),
                    num_gpus: n,
                    reason,
                }),
                None => {
                    min_fit.get_or_insert(n);
                    candidates.push(m);
                }
            }
        }
    }
    let Some(min_fit) = min_fit else {
        let reasons: Vec<String> = skipped
            .iter()
            .map(|s| format!("{}: {}", s.mapping, s.reason))
            .collect();
        let tried = if counts_up_to_max.is_empty() {
            "no power-of-two GPU count".to_string()
        } else {
            reasons.join("; ")
        };
        return Err(ProfileError::Plan(format!(
            "no parallel mapping of {} fits between {} and {max} GPUs per engine on {} ({tried}). \
             Raise --max-num-gpus, lower --min-num-gpus, use a smaller precision or a GPU with more memory",
            model.name,
            settings.min_num_gpus.unwrap_or(1),
            system.name
        )));
    };
    let min = settings.min_num_gpus.unwrap_or(min_fit);
    let gpu_counts: Vec<u32> = counts_up_to_max
        .iter()
        .copied()
        .filter(|&n| n >= min && is_power_of_two(n))
        .collect();
    // Below the smallest count that fits, every mapping fails for memory: say
    // so once rather than listing each.
    skipped.retain(|s| s.num_gpus >= min_fit || settings.min_num_gpus.is_some());
    let bounds_reason = format!(
        "min {} ({}), max {max} ({})",
        min,
        if settings.min_num_gpus.is_some() {
            "--min-num-gpus"
        } else {
            "smallest power of two whose engine holds the weights and one request"
        },
        if settings.max_num_gpus.is_some() {
            "--max-num-gpus"
        } else {
            why_max
        }
    );
    Ok(SweepPlan {
        system: system.name.clone(),
        num_gpus_per_node: per_node,
        min_num_gpus: min,
        max_num_gpus: max,
        bounds_reason,
        gpu_counts,
        candidates,
        skipped,
        max_context_length,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct PrefillResult {
    pub mapping: Mapping,
    pub label: String,
    pub num_gpus: u32,
    pub ttft_ms: f64,
    pub thpt_per_gpu: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DecodePoint {
    pub in_flight: u32,
    pub itl_ms: f64,
    pub thpt_per_gpu: f64,
    /// Share of the KV cache the requests hold at mid-generation.
    pub kv_usage: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecodeResult {
    pub mapping: Mapping,
    pub label: String,
    pub num_gpus: u32,
    pub max_kv_tokens: u64,
    pub max_concurrency: u32,
    pub points: Vec<DecodePoint>,
}

/// The seed's in-flight request counts for a decode sweep: multiples of the
/// attention-DP size (each rank gets the same share, as its round-robin
/// scheduler would give), `granularity` of them from one per rank up to the
/// engine's maximum.
pub fn num_request_range(attn_dp: u32, max_concurrency: u32, granularity: u32) -> Vec<u32> {
    let dp = attn_dp.max(1);
    let max_c = max_concurrency.min(perf_model::probe::DECODE_MAX_CONCURRENCY);
    let per_dp = max_c / dp;
    if per_dp == 0 {
        return Vec::new();
    }
    if per_dp < granularity {
        return (1..=per_dp).map(|i| i * dp).collect();
    }
    let step = f64::from(per_dp - 1) / f64::from(granularity.max(2) - 1);
    let mut out: Vec<u32> = (0..granularity)
        .map(|i| dp + (f64::from(i) * step) as u32 * dp)
        .collect();
    out.dedup();
    out
}

fn measure_err(m: &Mapping, error: MeasureError) -> ProfileError {
    ProfileError::Measure {
        mapping: m.label(),
        error,
    }
}

fn prefill_point(
    engine: &dyn EngineUnderTest,
    m: &Mapping,
    isl: u32,
) -> Result<(f64, f64), MeasureError> {
    let ttft = engine.prefill_ttft_ms(isl)?;
    let thpt = f64::from(isl) / ttft / f64::from(m.num_gpus) * 1000.0 * f64::from(m.attn_dp());
    Ok((ttft, thpt))
}

/// Runs `measure` on every item in parallel as one progress step, keeping
/// the items' order; `measure` returns its result and what to show.
fn measure_each<T: Sync, R: Send>(
    progress: &dyn Progress,
    step: &str,
    items: &[T],
    measure: impl Fn(&T) -> (R, String) + Sync,
) -> Vec<R> {
    progress.begin(step, items.len() as u64);
    let out = items
        .par_iter()
        .map(|item| {
            let (r, what) = measure(item);
            progress.advance(&what);
            r
        })
        .collect();
    progress.end();
    out
}

/// Share of the KV cache `n` requests hold at mid-generation, the seed's
/// `x_kv_usage`.
fn kv_usage(isl: u32, osl: u32, n: u32, max_kv_tokens: u64) -> f64 {
    (f64::from(isl) + f64::from(osl) / 2.0) * f64::from(n) / max_kv_tokens.max(1) as f64
}

/// Step 3, prefill: TTFT of each candidate at the target ISL.
pub fn sweep_prefill(
    plan: &SweepPlan,
    settings: &ProfileSettings,
    measurer: &dyn Measurer,
    progress: &dyn Progress,
    log: &Log,
) -> Result<Vec<PrefillResult>, ProfileError> {
    measure_each(progress, "prefill sweep", &plan.candidates, |m| {
        let r = (|| {
            let engine = measurer.engine(m.layout()).map_err(|e| measure_err(m, e))?;
            let (ttft, thpt) =
                prefill_point(engine.as_ref(), m, settings.isl).map_err(|e| measure_err(m, e))?;
            log.info(format!(
                "prefill {} on {} GPU(s): TTFT {ttft:.2} ms, {thpt:.1} tokens/s/GPU",
                m.label(),
                m.num_gpus
            ));
            Ok(PrefillResult {
                mapping: *m,
                label: m.label(),
                num_gpus: m.num_gpus,
                ttft_ms: ttft,
                thpt_per_gpu: thpt,
            })
        })();
        (r, m.label())
    })
    .into_iter()
    .collect()
}

/// Step 3, decode: ITL and throughput of each candidate from one in-flight
/// request up to what its KV cache holds.
pub fn sweep_decode(
    plan: &SweepPlan,
    settings: &ProfileSettings,
    measurer: &dyn Measurer,
    progress: &dyn Progress,
    log: &Log,
) -> Result<Vec<DecodeResult>, ProfileError> {
    let (isl, osl) = (settings.isl, settings.osl);
    measure_each(progress, "decode sweep", &plan.candidates, |m| {
        let r = (|| {
            let engine = measurer.engine(m.layout()).map_err(|e| measure_err(m, e))?;
            let max_kv = engine.max_kv_tokens();
            let max_c = engine.max_concurrency(isl, osl);
            let counts = num_request_range(m.attn_dp(), max_c, settings.decode_granularity);
            log.info(format!(
                "decode {}: {max_kv} KV tokens, up to {max_c} requests of {} tokens; sweeping {counts:?}",
                m.label(),
                isl + osl
            ));
            let mut points = Vec::with_capacity(counts.len());
            for n in counts {
                let s = engine.decode(isl, osl, n).map_err(|e| measure_err(m, e))?;
                points.push(DecodePoint {
                    in_flight: n,
                    itl_ms: s.itl_ms,
                    thpt_per_gpu: s.thpt_per_gpu,
                    kv_usage: kv_usage(isl, osl, n, max_kv),
                });
            }
            Ok(DecodeResult {
                mapping: *m,
                label: m.label(),
                num_gpus: m.num_gpus,
                max_kv_tokens: max_kv,
                max_concurrency: max_c,
                points,
            })
        })();
        (r, m.label())
    })
    .into_iter()
    .collect()
}

/// Step 4's result for one phase: the chosen configuration, or why none fits.
#[derive(Debug, Clone, Serialize)]
pub struct PrefillChoice {
    pub index: usize,
    pub label: String,
    pub num_gpus: u32,
    pub ttft_ms: f64,
    pub thpt_per_gpu: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecodeChoice {
    /// Index into the decode results.
    pub index: usize,
    pub label: String,
    pub num_gpus: u32,
    pub in_flight: u32,
    pub itl_ms: f64,
    pub thpt_per_gpu: f64,
    pub max_kv_tokens: u64,
}

/// What to tell a user whose SLA nothing meets.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub target_ms: f64,
    /// The closest configurations: (description, achieved ms).
    pub closest: Vec<(String, f64)>,
}

impl Miss {
    pub fn describe(&self, what: &str, flag: &str) -> String {
        let list: Vec<String> = self
            .closest
            .iter()
            .map(|(d, v)| {
                format!(
                    "{d} at {v:.1} ms ({:+.0}%)",
                    (v / self.target_ms - 1.0) * 100.0
                )
            })
            .collect();
        let best = self.closest.first().map(|c| c.1).unwrap_or(f64::NAN);
        format!(
            "no configuration meets {what} <= {:.1} ms; closest: {}. Relax {flag} to at least {:.1} ms, \
             allow more GPUs per engine (--max-num-gpus), or use a smaller or lower-precision model",
            self.target_ms,
            list.join(", "),
            best
        )
    }
}

/// Step 4, prefill: highest throughput per GPU with TTFT within target.
pub fn recommend_prefill(results: &[PrefillResult], ttft_ms: f64) -> Result<PrefillChoice, Miss> {
    let best = results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.ttft_ms <= ttft_ms)
        .max_by(|a, b| {
            a.1.thpt_per_gpu
                .total_cmp(&b.1.thpt_per_gpu)
                // Equal throughput: fewer GPUs per engine is cheaper to scale.
                .then(b.1.num_gpus.cmp(&a.1.num_gpus))
        });
    match best {
        Some((i, r)) => Ok(PrefillChoice {
            index: i,
            label: r.label.clone(),
            num_gpus: r.num_gpus,
            ttft_ms: r.ttft_ms,
            thpt_per_gpu: r.thpt_per_gpu,
        }),
        None => {
            let mut closest: Vec<(String, f64)> = results
                .iter()
                .map(|r| (format!("{} ({} GPUs)", r.label, r.num_gpus), r.ttft_ms))
                .collect();
            closest.sort_by(|a, b| a.1.total_cmp(&b.1));
            closest.truncate(3);
            Err(Miss {
                target_ms: ttft_ms,
                closest,
            })
        }
    }
}

/// Step 4, decode: highest throughput per GPU with ITL within target, over
/// every mapping and in-flight count.
pub fn recommend_decode(results: &[DecodeResult], itl_ms: f64) -> Result<DecodeChoice, Miss> {
    let mut best: Option<(usize, DecodePoint)> = None;
    for (i, r) in results.iter().enumerate() {
        for p in r.points.iter().filter(|p| p.itl_ms <= itl_ms) {
            let better = match &best {
                None => true,
                Some((bi, bp)) => {
                    p.thpt_per_gpu > bp.thpt_per_gpu
                        || (p.thpt_per_gpu == bp.thpt_per_gpu && r.num_gpus < results[*bi].num_gpus)
                }
            };
            if better {
                best = Some((i, *p));
            }
        }
    }
    match best {
        Some((i, p)) => Ok(DecodeChoice {
            index: i,
            label: results[i].label.clone(),
            num_gpus: results[i].num_gpus,
            in_flight: p.in_flight,
            itl_ms: p.itl_ms,
            thpt_per_gpu: p.thpt_per_gpu,
            max_kv_tokens: results[i].max_kv_tokens,
        }),
        None => {
            let mut closest: Vec<(String, f64)> = results
                .iter()
                .filter_map(|r| {
                    r.points
                        .iter()
                        .min_by(|a, b| a.itl_ms.total_cmp(&b.itl_ms))
                        .map(|p| {
                            (
                                format!(
                                    "{} ({} GPUs) with {} request(s) in flight",
                                    r.label, r.num_gpus, p.in_flight
                                ),
                                p.itl_ms,
                            )
                        })
                })
                .collect();
            closest.sort_by(|a, b| a.1.total_cmp(&b.1));
            closest.truncate(3);
            Err(Miss {
                target_ms: itl_ms,
                closest,
            })
        }
    }
}

/// Step 5, prefill: TTFT and throughput over ISL on the chosen engine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrefillInterpolation {
    pub mapping: String,
    pub num_gpus: u32,
    pub prefill_isl: Vec<u32>,
    pub prefill_ttft: Vec<f64>,
    pub prefill_thpt_per_gpu: Vec<f64>,
}

/// Step 5, decode: ITL and throughput over KV usage × context length.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DecodeInterpolation {
    pub mapping: String,
    pub num_gpus: u32,
    pub max_kv_tokens: u64,
    pub x_kv_usage: Vec<f64>,
    pub y_context_length: Vec<f64>,
    pub z_itl: Vec<f64>,
    pub z_thpt_per_gpu: Vec<f64>,
}

fn stepped(start: u32, end: u32, granularity: u32) -> Vec<u32> {
    if end <= start {
        return Vec::new();
    }
    let step = ((end - start) / granularity.max(1)).max(1);
    (start..end).step_by(step as usize).collect()
}

pub fn interpolate_prefill(
    mapping: &Mapping,
    plan: &SweepPlan,
    settings: &ProfileSettings,
    measurer: &dyn Measurer,
    progress: &dyn Progress,
    log: &Log,
) -> Result<PrefillInterpolation, ProfileError> {
    let ctx = plan
        .max_context_length
        .saturating_sub(PREFILL_CONTEXT_HEADROOM);
    if ctx <= INTERPOLATION_START_ISL {
        return Err(ProfileError::Plan(format!(
            "max context length {} is too small to interpolate prefill (needs more than {} tokens)",
            plan.max_context_length,
            INTERPOLATION_START_ISL + PREFILL_CONTEXT_HEADROOM
        )));
    }
    // The seed steps by (ctx - 100) / granularity from 100, below ctx.
    let isls = stepped(INTERPOLATION_START_ISL, ctx, settings.prefill_granularity);
    let engine = measurer
        .engine(mapping.layout())
        .map_err(|e| measure_err(mapping, e))?;
    let osl = perf_model::probe::PREFILL_BENCHMARK_OSL;
    let points = measure_each(progress, "prefill interpolation", &isls, |&isl| {
        let r = match engine.require_request(isl, osl) {
            Err(e) => {
                log.warn(format!("prefill interpolation skips ISL {isl}: {e}"));
                None
            }
            Ok(()) => match prefill_point(engine.as_ref(), mapping, isl) {
                Ok((ttft, thpt)) => Some((isl, ttft, thpt)),
                Err(e) => {
                    log.warn(format!("prefill interpolation failed at ISL {isl}: {e}"));
                    None
                }
            },
        };
        (r, format!("ISL {isl}"))
    });
    let mut out = PrefillInterpolation {
        mapping: mapping.label(),
        num_gpus: mapping.num_gpus,
        ..Default::default()
    };
    for (isl, ttft, thpt) in points.into_iter().flatten() {
        out.prefill_isl.push(isl);
        out.prefill_ttft.push(ttft);
        out.prefill_thpt_per_gpu.push(thpt);
    }
    if out.prefill_isl.len() < 3 {
        return Err(ProfileError::Plan(format!(
            "prefill interpolation of {} produced {} points; at least 3 are needed (is the KV cache too small for long prompts?)",
            mapping.label(),
            out.prefill_isl.len()
        )));
    }
    Ok(out)
}

pub fn interpolate_decode(
    mapping: &Mapping,
    plan: &SweepPlan,
    settings: &ProfileSettings,
    measurer: &dyn Measurer,
    progress: &dyn Progress,
    log: &Log,
) -> Result<DecodeInterpolation, ProfileError> {
    let osl = DECODE_INTERPOLATION_OSL;
    let engine = measurer
        .engine(mapping.layout())
        .map_err(|e| measure_err(mapping, e))?;
    let max_kv = engine.max_kv_tokens();
    let mut grid: Vec<(u32, u32)> = Vec::new();
    for isl in stepped(
        INTERPOLATION_START_ISL,
        plan.max_context_length.saturating_sub(osl),
        settings.decode_granularity,
    ) {
        let max_c = engine.max_concurrency(isl, osl);
        if max_c == 0 {
            log.warn(format!(
                "decode interpolation stops at ISL {isl}: {max_kv} KV tokens hold no request of {} tokens",
                isl + osl
            ));
            break;
        }
        for n in num_request_range(mapping.attn_dp(), max_c, settings.decode_granularity) {
            grid.push((isl, n));
        }
    }
    let samples = measure_each(progress, "decode interpolation", &grid, |&(isl, n)| {
        let r = match engine.decode(isl, osl, n) {
            Ok(s) => Some((isl, n, s.itl_ms, s.thpt_per_gpu)),
            Err(e) => {
                log.warn(format!(
                    "decode interpolation failed at ISL {isl}, {n} requests: {e}"
                ));
                None
            }
        };
        (r, format!("ISL {isl} x {n}"))
    });
    let mut out = DecodeInterpolation {
        mapping: mapping.label(),
        num_gpus: mapping.num_gpus,
        max_kv_tokens: max_kv,
        ..Default::default()
    };
    for (isl, n, itl, thpt) in samples.into_iter().flatten() {
        out.x_kv_usage.push(kv_usage(isl, osl, n, max_kv));
        out.y_context_length
            .push(f64::from(isl) + f64::from(osl) / 2.0);
        out.z_itl.push(itl);
        out.z_thpt_per_gpu.push(thpt);
    }
    if out.z_itl.is_empty() {
        return Err(ProfileError::Plan(format!(
            "decode interpolation of {} produced no points: its {max_kv}-token KV cache holds no {}-token request",
            mapping.label(),
            INTERPOLATION_START_ISL + osl
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_range_matches_the_seed() {
        // Fewer requests per rank than the granularity: every multiple.
        assert_eq!(num_request_range(1, 4, 6), vec![1, 2, 3, 4]);
        assert_eq!(num_request_range(4, 12, 6), vec![4, 8, 12]);
        // Otherwise `granularity` evenly spread multiples of the DP size.
        assert_eq!(num_request_range(1, 101, 6), vec![1, 21, 41, 61, 81, 101]);
        assert_eq!(num_request_range(8, 800, 3), vec![8, 400, 800]);
        assert!(num_request_range(8, 7, 6).is_empty());
        // Capped at the seed's 2000.
        assert_eq!(*num_request_range(1, 100_000, 6).last().unwrap(), 2000);
    }

    #[test]
    fn stepped_covers_the_range_like_python_range() {
        assert_eq!(stepped(100, 1000, 3), vec![100, 400, 700]);
        assert!(stepped(100, 100, 3).is_empty());
    }
}
