//! Whole-deployment prediction: memory check, step model and simulator
//! wired together for aggregated or disaggregated serving.

use crate::calibration::Calibration;
use crate::engine::{ConfigError, EngineSpec, MemoryBreakdown};
use crate::sim::{
    self, Arrivals, Dist, EngineSetup, SchedulerConfig, SimError, SimOptions, SimReport,
};
use crate::step::{StepBatch, StepTimer};
use crate::timing::{StepBreakdown, StepCostModel};
use serde::Serialize;
use spec::model::QuantScheme;
use spec::workload::Arrival;
use spec::{
    Backend, GpuSystem, ModelArch, ParallelLayout, ServingConfig, ServingMode, WorkerGroup,
};

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum PredictError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Sim(#[from] SimError),
}

/// `engines` identical, load-balanced engines simulated as one: the merged
/// scheduler holds all their requests and each step costs what the busiest
/// engine's share (`ceil(n / engines)` of the `n` sequences) costs, exactly
/// as attention-DP ranks are treated inside one engine.
#[derive(Debug, Clone, Copy)]
pub struct MergedTimer<T> {
    pub inner: T,
    pub engines: f64,
}

impl<T: StepTimer> StepTimer for MergedTimer<T> {
    #[inline]
    fn step_ms(&self, b: &StepBatch) -> f64 {
        if self.engines <= 1.0 {
            return self.inner.step_ms(b);
        }
        let seqs = (b.prefill_seqs + b.decode_seqs) as f64;
        if seqs == 0.0 {
            return self.inner.step_ms(b);
        }
        let busiest = (seqs / self.engines).ceil();
        self.inner.step_ms(&b.scaled(busiest / seqs))
    }
}

fn merge_scheduler(s: &SchedulerConfig, engines: u32) -> SchedulerConfig {
    let mut out = *s;
    out.max_num_seqs = s.max_num_seqs.saturating_mul(engines);
    out.max_num_batched_tokens = s.max_num_batched_tokens.saturating_mul(engines);
    out.num_kv_blocks = s.num_kv_blocks.saturating_mul(engines);
    out
}

/// A timer that sees every simulated request as `k` identical real ones.
///
/// Step time depends only on batch totals (tokens, sequences, KV tokens,
/// attention pairs), all of which are extensive, so a closed loop of `C`
/// clients behaves like one of `C / k` clients whose requests each stand for
/// `k` real ones on an engine with `1 / k` of the capacity. That keeps the
/// simulation's cost bounded for benchmarks with thousands of clients; the
/// only approximation is the granularity of admission (groups of `k`).
#[derive(Debug, Clone, Copy)]
pub struct ScaledTimer<'a> {
    pub inner: &'a StepCostModel,
    pub k: f64,
}

impl StepTimer for ScaledTimer<'_> {
    #[inline]
    fn step_ms(&self, b: &StepBatch) -> f64 {
        if self.k == 1.0 {
            return self.inner.step_ms(b);
        }
        self.inner.step_ms(&b.scaled(self.k))
    }
}

fn scale_scheduler(s: &SchedulerConfig, k: u32) -> SchedulerConfig {
    let mut out = *s;
    out.max_num_seqs = (s.max_num_seqs / k).max(1);
    out.max_num_batched_tokens = (s.max_num_batched_tokens / k).max(1);
    out.num_kv_blocks = (s.num_kv_blocks / k).max(1);
    out
}

/// How to run the simulated benchmark.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictOptions {
    /// Requests per client of a closed loop (the benchmark's rounds).
    pub rounds: f64,
    /// Relative spread of request lengths (see `Calibration`).
    pub length_jitter: f64,
    /// Closed loops with more clients than this per engine are simulated
    /// with [`ScaledTimer`].
    pub max_simulated_clients: u32,
    pub fast_forward: bool,
    pub seed: u64,
}

impl PredictOptions {
    /// What benchmark tools do: every client starts at t = 0 and the first
    /// burst is part of the measurement.
    pub fn benchmark(cal: &Calibration) -> Self {
        PredictOptions {
            rounds: cal.benchmark_rounds,
            length_jitter: cal.benchmark_length_jitter.clamp(0.0, 0.9),
            max_simulated_clients: 256,
            fast_forward: true,
            seed: 0,
        }
    }
}

/// What a benchmark of the deployment would measure.
#[derive(Debug, Clone, Serialize)]
pub struct Prediction {
    /// Mean TTFT, ms.
    pub ttft_ms: f64,
    /// Mean time per output token after the first, ms.
    pub tpot_ms: f64,
    pub ttft: Dist,
    pub tpot: Dist,
    pub itl: Dist,
    pub e2e: Dist,
    pub output_tokens_per_s: f64,
    pub output_tokens_per_s_per_gpu: f64,
    /// 1000 / mean TPOT: the decode speed one user sees.
    pub tokens_per_s_per_user: f64,
    pub requests_per_s: f64,
    pub num_gpus: u32,
    /// Memory of each engine kind ("engine", or "prefill" and "decode").
    pub memory: Vec<(String, MemoryBreakdown)>,
    pub preemptions: u64,
    pub simulated_steps: u64,
    /// Where the time of two representative steps goes: one request's whole
    /// prompt alone, and a decode step at the simulated mean batch.
    pub prefill_step: StepBreakdown,
    pub decode_step: StepBreakdown,
}

/// One engine kind, ready to simulate.
pub struct PreparedEngine {
    pub spec: EngineSpec,
    pub memory: MemoryBreakdown,
    pub timer: StepCostModel,
    pub scheduler: SchedulerConfig,
}

/// Checks the layout and memory of one engine kind and builds its timer and
/// scheduler. DP-attention ranks are simulated as one scheduler with the
/// pooled KV cache and `dp` times the per-rank limits, because the step
/// model already spreads the batch over the ranks.
pub fn prepare_engine(
    model: &ModelArch,
    system: &GpuSystem,
    cfg: &ServingConfig,
    group: &WorkerGroup,
    cal: &Calibration,
) -> Result<PreparedEngine, PredictError> {
    let spec = EngineSpec::new(
        model.clone(),
        system.clone(),
        cfg.backend,
        cfg.quant,
        group.layout,
    )?;
    let memory = spec.memory()?;
    let timer = StepCostModel::with_calibration(&spec, cal)?;
    let mut scheduler = SchedulerConfig::preset(cfg.backend, memory.max_kv_tokens);
    let dp = group.layout.dp.max(1);
    scheduler.max_num_seqs = scheduler.max_num_seqs.saturating_mul(dp);
    scheduler.max_num_batched_tokens = scheduler.max_num_batched_tokens.saturating_mul(dp);
    if let Some(b) = group.max_batch {
        scheduler.max_num_seqs = b.saturating_mul(dp);
    }
    // A benchmark of fixed random prompts gets no prefix hits.
    scheduler.enable_prefix_caching = false;
    if scheduler.num_kv_blocks == 0 {
        return Err(ConfigError::KvTooSmall {
            model: model.name.clone(),
            system: system.name.clone(),
            tokens: memory.max_kv_tokens,
            needed: (cfg.workload.isl + cfg.workload.osl) as u64,
        }
        .into());
    }
    Ok(PreparedEngine {
        spec,
        memory,
        timer,
        scheduler,
    })
}

/// One engine of `layout` on its own, with the backend's scheduler
/// defaults: what the profiler measures and the mocker serves. A placeholder
/// one-token workload stands in, since no traffic is implied.
pub fn prepare_single_engine(
    model: &ModelArch,
    system: &GpuSystem,
    backend: Backend,
    quant: QuantScheme,
    layout: ParallelLayout,
    cal: &Calibration,
) -> Result<PreparedEngine, PredictError> {
    let group = WorkerGroup {
        layout,
        workers: 1,
        max_batch: None,
    };
    let cfg = ServingConfig {
        backend,
        quant,
        mode: ServingMode::Aggregated { workers: group },
        workload: spec::Workload {
            isl: 1,
            osl: 1,
            arrival: Arrival::Concurrency(1),
        },
    };
    prepare_engine(model, system, &cfg, &group, cal)
}

/// Seconds to move one request's KV cache from a prefill to a decode engine:
/// the whole model's cache for the prompt over the slower side's links.
fn kv_transfer_ms(prefill: &PreparedEngine, decode: &PreparedEngine, tokens: u32) -> f64 {
    let m = &prefill.spec.model;
    let per_token_layer = match m.mla {
        Some(mla) => {
            (mla.kv_lora_rank + mla.qk_rope_head_dim) as f64 * prefill.spec.quant.kv.bytes()
        }
        None => 2.0 * (m.num_kv_heads * m.head_dim) as f64 * prefill.spec.quant.kv.bytes(),
    };
    let bytes = tokens as f64 * per_token_layer * m.layers.full_attention as f64;
    let sys = &prefill.spec.system;
    let total_gpus = prefill.spec.layout.num_gpus() + decode.spec.layout.num_gpus();
    let per_gpu = if sys.within_nvlink(total_gpus) {
        sys.nvlink_gbps
    } else {
        sys.scaleout_gbps
    };
    let links = prefill
        .spec
        .layout
        .num_gpus()
        .min(decode.spec.layout.num_gpus()) as f64;
    // bytes / (GB/s * 1e6 bytes per ms), plus a fixed handshake
    0.5 + bytes / (per_gpu * 0.7 * links * 1e6)
}

/// The similarity factor for a closed loop of `clients` on `engines` engines.
fn scale_factor(clients: u32, engines: u32, opts: &PredictOptions) -> u32 {
    let per_engine = clients.div_ceil(engines.max(1));
    per_engine
        .div_ceil(opts.max_simulated_clients.max(1))
        .max(1)
}

/// Decode sequences per attention-DP rank an operator sizes a disaggregated
/// decode worker for (see [`auto_disagg_workers`]).
pub const DECODE_BATCH_PER_RANK: f64 = 512.0;

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

/// Delays every request's first token (and so its end) by `ms`.
fn shift_first_token(report: &mut SimReport, ms: f64) {
    for dist in [&mut report.ttft, &mut report.e2e] {
        if dist.count == 0 {
            continue;
        }
        dist.mean += ms;
        dist.min += ms;
        dist.max += ms;
        dist.p50 += ms;
        dist.p90 += ms;
        dist.p95 += ms;
        dist.p99 += ms;
    }
}

/// Worker counts for a disaggregated deployment whose counts are unknown
/// (`workers == 0`), sized as an operator would: enough decode workers to
/// hold every client's sequence in their KV cache and batch limits, and
/// enough prefill workers to keep up with the request throughput those
/// decode workers sustain.
pub fn auto_disagg_workers(
    p: &PreparedEngine,
    d: &PreparedEngine,
    cfg: &ServingConfig,
) -> (u32, u32) {
    let isl = cfg.workload.isl as f64;
    let osl = cfg.workload.osl as f64;
    let seq_cap = (d.memory.max_kv_tokens as f64 / (isl + osl)).floor();
    // Published disaggregated recipes keep decode batches to a few hundred per
    // attention rank: larger ones buy little throughput for much latency.
    let recipe = DECODE_BATCH_PER_RANK * d.spec.layout.dp as f64;
    let cap = seq_cap
        .min(d.scheduler.max_num_seqs as f64)
        .min(recipe)
        .max(1.0);
    let decode_step = |batch: f64| {
        d.timer.step_ms(&StepBatch {
            decode_seqs: batch.round().max(1.0) as u32,
            decode_kv_tokens: (batch.round().max(1.0) * (isl + osl / 2.0)) as u64,
            ..Default::default()
        })
    };
    let (decode_workers, req_per_s) = match cfg.workload.arrival {
        Arrival::Concurrency(c) => {
            let c = c as f64;
            let dw = (c / cap).ceil().max(1.0);
            let batch = c / dw;
            (dw, dw * batch / (osl * decode_step(batch) / 1e3))
        }
        Arrival::RequestRate(r) => {
            // Little's law with a decode-only latency estimate, refined once.
            let mut dw = 1.0;
            for _ in 0..2 {
                let batch = (r / dw * osl * decode_step(cap.min(8.0)) / 1e3).max(1.0);
                dw = (batch / cap).ceil().max(1.0);
            }
            (dw, r)
        }
    };
    let budget = p.scheduler.max_num_batched_tokens as f64;
    let tokens = budget.max(isl);
    let prefill_step = p.timer.step_ms(&StepBatch {
        prefill_tokens: tokens as u32,
        prefill_seqs: (tokens / isl).ceil() as u32,
        prefill_attn_pairs: tokens * (isl + 1.0) / 2.0,
        ..Default::default()
    });
    let prefill_tokens_per_s = tokens / (prefill_step / 1e3);
    let prefill_workers = (req_per_s * isl / prefill_tokens_per_s).ceil().max(1.0);
    (prefill_workers as u32, decode_workers as u32)
}

fn sim_workload(cfg: &ServingConfig, workers: u32, k: u32, opts: &PredictOptions) -> sim::Workload {
    let w = &cfg.workload;
    let arrivals = match w.arrival {
        Arrival::Concurrency(c) => Arrivals::Closed {
            concurrency: c.div_ceil(workers).div_ceil(k).max(1),
        },
        Arrival::RequestRate(r) => Arrivals::Poisson {
            rate_per_s: r / workers as f64,
        },
    };
    sim::Workload {
        isl: w.isl,
        osl: w.osl,
        arrivals,
        length_jitter: opts.length_jitter,
        shared_prefix: None,
        cached_prompt_tokens: 0,
    }
}

fn sim_options(workload: &sim::Workload, opts: &PredictOptions) -> SimOptions {
    let num_requests = match workload.arrivals {
        Arrivals::Closed { concurrency } => Some(
            ((concurrency as f64 * opts.rounds).ceil() as u32)
                .max(concurrency)
                .max(8),
        ),
        Arrivals::Poisson { .. } => None,
    };
    SimOptions {
        num_requests,
        warmup_requests: 0,
        fast_forward: opts.fast_forward,
        max_sim_time_s: 1e7,
        seed: opts.seed,
    }
}

/// Predicts what a benchmark of `cfg` would measure.
pub fn predict(
    model: &ModelArch,
    system: &GpuSystem,
    cfg: &ServingConfig,
    cal: &Calibration,
    opts: &PredictOptions,
) -> Result<Prediction, PredictError> {
    let total = cfg.workload.isl as u64 + cfg.workload.osl as u64;
    if total > model.max_position_embeddings as u64 {
        return Err(ConfigError::ContextTooLong {
            model: model.name.clone(),
            isl: cfg.workload.isl,
            osl: cfg.workload.osl,
            total,
            limit: model.max_position_embeddings,
        }
        .into());
    }
    let mut num_gpus = cfg.num_gpus();
    let isl = cfg.workload.isl;
    let osl = cfg.workload.osl;
    let mut breakdowns = (StepBreakdown::default(), StepBreakdown::default());
    let mut probe = |prefill: &StepCostModel, decode: &StepCostModel, mean_batch: f64| {
        let p = StepBatch {
            prefill_tokens: isl,
            prefill_seqs: 1,
            prefill_attn_pairs: isl as f64 * (isl as f64 + 1.0) / 2.0,
            ..Default::default()
        };
        let b = mean_batch.round().max(1.0);
        let d = StepBatch {
            decode_seqs: b as u32,
            decode_kv_tokens: (b * (isl as f64 + osl as f64 / 2.0)) as u64,
            ..Default::default()
        };
        breakdowns = (prefill.breakdown(&p), decode.breakdown(&d));
    };
    let (report, memory): (SimReport, Vec<(String, MemoryBreakdown)>) = match cfg.mode {
        ServingMode::Aggregated { workers } => {
            let e = prepare_engine(model, system, cfg, &workers, cal)?;
            // Replicas split the traffic evenly; one of them is simulated.
            let k = match cfg.workload.arrival {
                Arrival::Concurrency(c) => scale_factor(c, workers.workers, opts),
                Arrival::RequestRate(_) => 1,
            };
            let workload = sim_workload(cfg, workers.workers.max(1), k, opts);
            let timer = ScaledTimer {
                inner: &e.timer,
                k: k as f64,
            };
            let mut report = sim::run_aggregated(
                &scale_scheduler(&e.scheduler, k),
                &timer,
                &workload,
                &sim_options(&workload, opts),
            )?;
            let scale = workers.workers.max(1) as f64 * k as f64;
            probe(&e.timer, &e.timer, report.mean_batch * k as f64);
            report.output_tokens_per_s *= scale;
            report.input_tokens_per_s *= scale;
            report.requests_per_s *= scale;
            (report, vec![("engine".to_string(), e.memory)])
        }
        ServingMode::Disaggregated { prefill, decode } => {
            let p = prepare_engine(model, system, cfg, &prefill, cal)?;
            let d = prepare_engine(model, system, cfg, &decode, cal)?;
            let (mut prefill, mut decode) = (prefill, decode);
            if prefill.workers == 0 || decode.workers == 0 {
                let (pw, dw) = auto_disagg_workers(&p, &d, cfg);
                if prefill.workers == 0 {
                    prefill.workers = pw;
                }
                if decode.workers == 0 {
                    decode.workers = dw;
                }
            }
            // Symmetry: P prefill and D decode workers serving C clients
            // behave like P/g and D/g workers serving C/g, for g = gcd(P, D).
            let g = match cfg.workload.arrival {
                Arrival::Concurrency(_) => gcd(prefill.workers.max(1), decode.workers.max(1)),
                Arrival::RequestRate(_) => 1,
            };
            let k = match cfg.workload.arrival {
                Arrival::Concurrency(c) => scale_factor(c, 1, opts),
                Arrival::RequestRate(_) => 1,
            };
            // Prefill engines stay separate: one prompt is never split
            // between them, so their queues matter.
            let prefill_setups: Vec<_> = (0..(prefill.workers.max(1) / g))
                .map(|_| EngineSetup {
                    config: scale_scheduler(&p.scheduler, k),
                    timer: MergedTimer {
                        inner: ScaledTimer {
                            inner: &p.timer,
                            k: k as f64,
                        },
                        engines: 1.0,
                    },
                })
                .collect();
            // Decode engines share one merged scheduler (see `MergedTimer`).
            let decode_engines = decode.workers.max(1) / g;
            let decode_setups = vec![EngineSetup {
                config: merge_scheduler(&scale_scheduler(&d.scheduler, k), decode_engines),
                timer: MergedTimer {
                    inner: ScaledTimer {
                        inner: &d.timer,
                        k: k as f64,
                    },
                    engines: decode_engines as f64,
                },
            }];
            let workload = sim_workload(cfg, g, k, opts);
            let transfer = |tokens: u32| kv_transfer_ms(&p, &d, tokens);
            let mut report = sim::run_disaggregated(
                &prefill_setups,
                &decode_setups,
                &transfer,
                &workload,
                &sim_options(&workload, opts),
            )?;
            let scale = (k * g) as f64;
            report.output_tokens_per_s *= scale;
            report.input_tokens_per_s *= scale;
            report.requests_per_s *= scale;
            num_gpus = prefill.layout.num_gpus() * prefill.workers
                + decode.layout.num_gpus() * decode.workers;
            // The client sees its first token only once the decode worker has
            // the KV cache and has run (the simulator stops the clock at the
            // end of the prefill).
            let shift =
                kv_transfer_ms(&p, &d, isl) + cal.backend(cfg.backend).disagg_ttft_overhead_ms;
            shift_first_token(&mut report, shift);
            probe(&p.timer, &d.timer, report.mean_batch * k as f64);
            (
                report,
                vec![
                    ("prefill".to_string(), p.memory),
                    ("decode".to_string(), d.memory),
                ],
            )
        }
    };
    // What the client adds to every first token (API server, tokenization).
    let mut report = report;
    shift_first_token(&mut report, cal.backend(cfg.backend).ttft_overhead_ms);
    let tpot_ms = report.tpot.mean;
    Ok(Prediction {
        ttft_ms: report.ttft.mean,
        tpot_ms,
        ttft: report.ttft,
        tpot: report.tpot,
        itl: report.itl,
        e2e: report.e2e,
        output_tokens_per_s: report.output_tokens_per_s,
        output_tokens_per_s_per_gpu: report.output_tokens_per_s / num_gpus.max(1) as f64,
        tokens_per_s_per_user: if tpot_ms > 0.0 { 1000.0 / tpot_ms } else { 0.0 },
        requests_per_s: report.requests_per_s,
        num_gpus,
        memory,
        preemptions: report.preemptions,
        simulated_steps: report.steps,
        prefill_step: breakdowns.0,
        decode_step: breakdowns.1,
    })
}
