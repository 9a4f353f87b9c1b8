//! One engine measured the way the SLA profiler measures a real one: prefill
//! TTFT from a lone prompt (or the seed's burst for attention-DP engines),
//! decode ITL and throughput from a fixed number of in-flight requests whose
//! prompts were warmed into the prefix cache. The simulator stands in for the
//! deployed engine; the procedures are those of Dynamo's `profile_sla`.

use crate::calibration::Calibration;
use crate::engine::{ConfigError, MemoryBreakdown};
use crate::predict::{prepare_single_engine, PredictError, PreparedEngine};
use crate::sim::{self, Arrivals, SimOptions, Workload};
use spec::model::QuantScheme;
use spec::{Backend, GpuSystem, ModelArch, ParallelLayout};

/// Tokens a prefill profiling engine may batch per attention rank: large
/// enough that a profiled prompt is not chunked (the seed's 32768).
pub const PREFILL_MAX_NUM_TOKENS: u32 = 32768;
/// Requests per attention-DP rank in the seed's DEP prefill burst.
pub const ATTN_DP_NUM_REQ_RATIO: u32 = 4;
/// Output tokens of a prefill measurement (only the first one matters).
pub const PREFILL_BENCHMARK_OSL: u32 = 5;
/// Most in-flight requests the seed's decode sweep drives.
pub const DECODE_MAX_CONCURRENCY: u32 = 2000;

/// What a decode benchmark of one engine reports.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct DecodeSample {
    /// Mean inter-token latency (time per output token after the first), ms.
    pub itl_ms: f64,
    /// Output tokens per second of the whole engine.
    pub output_tokens_per_s: f64,
    pub thpt_per_gpu: f64,
    pub preemptions: u64,
}

/// A configured engine ready to be measured.
pub struct EngineProbe {
    engine: PreparedEngine,
    ttft_overhead_ms: f64,
}

impl EngineProbe {
    /// Checks that the layout suits the model and that its weights fit;
    /// fails with the reason otherwise.
    pub fn new(
        model: &ModelArch,
        system: &GpuSystem,
        backend: Backend,
        quant: QuantScheme,
        layout: ParallelLayout,
        cal: &Calibration,
    ) -> Result<EngineProbe, PredictError> {
        let engine = prepare_single_engine(model, system, backend, quant, layout, cal)?;
        Ok(EngineProbe {
            engine,
            ttft_overhead_ms: cal.backend(backend).ttft_overhead_ms,
        })
    }

    /// Fails unless one attention rank can hold a whole request of
    /// `isl + osl` tokens (each rank keeps its requests in its own share).
    pub fn require_request(&self, isl: u32, osl: u32) -> Result<(), ConfigError> {
        let needed = u64::from(isl) + u64::from(osl);
        let per_rank = self.max_kv_tokens() / u64::from(self.engine.spec.layout.dp.max(1));
        if per_rank < needed {
            return Err(ConfigError::KvTooSmall {
                model: self.engine.spec.model.name.clone(),
                system: self.engine.spec.system.name.clone(),
                tokens: per_rank,
                needed,
            });
        }
        Ok(())
    }

    pub fn memory(&self) -> &MemoryBreakdown {
        &self.engine.memory
    }

    pub fn layout(&self) -> ParallelLayout {
        self.engine.spec.layout
    }

    pub fn num_gpus(&self) -> u32 {
        self.engine.spec.layout.num_gpus()
    }

    /// KV tokens the engine holds, all attention ranks together.
    pub fn max_kv_tokens(&self) -> u64 {
        self.engine.scheduler.kv_capacity_tokens()
    }

    /// The most requests of `isl + osl` tokens the engine runs at once: KV
    /// capacity, the scheduler's sequence limit and the seed's cap.
    pub fn max_concurrency(&self, isl: u32, osl: u32) -> u32 {
        let by_kv = self.max_kv_tokens() / (u64::from(isl) + u64::from(osl)).max(1);
        by_kv
            .min(u64::from(self.engine.scheduler.max_num_seqs))
            .min(u64::from(DECODE_MAX_CONCURRENCY)) as u32
    }

    /// TTFT (ms) of an `isl`-token prompt with nothing cached. TP and TEP
    /// engines get one request; attention-DP engines get a burst of
    /// `dp × 4` requests with batches of at most `dp` prompts, and the TTFT
    /// is the burst's slowest first token over 4, as in the seed.
    pub fn prefill_ttft_ms(&self, isl: u32) -> Result<f64, PredictError> {
        let dp = self.engine.spec.layout.dp.max(1);
        let mut sched = self.engine.scheduler;
        sched.max_num_seqs = dp;
        sched.max_num_batched_tokens = PREFILL_MAX_NUM_TOKENS.saturating_mul(dp);
        sched.enable_prefix_caching = false;
        let ratio = if dp > 1 { ATTN_DP_NUM_REQ_RATIO } else { 1 };
        let burst = dp * ratio;
        let workload = Workload::closed(isl, PREFILL_BENCHMARK_OSL, burst);
        let opts = SimOptions {
            num_requests: Some(burst),
            ..SimOptions::default()
        };
        let report = sim::run_aggregated(&sched, &self.engine.timer, &workload, &opts)?;
        let ttft = if dp > 1 {
            report.ttft.max / f64::from(ratio)
        } else {
            report.ttft.mean
        };
        Ok(ttft + self.ttft_overhead_ms)
    }

    /// ITL and throughput with `in_flight` requests of `isl`/`osl` tokens
    /// running together, their prompts already in the prefix cache (the
    /// seed warms the engine with the same prompts first), so the ITL is not
    /// inflated by piggy-backed prefills.
    pub fn decode(&self, isl: u32, osl: u32, in_flight: u32) -> Result<DecodeSample, PredictError> {
        let n = in_flight.max(1);
        let mut sched = self.engine.scheduler;
        sched.enable_prefix_caching = true;
        let workload = Workload {
            isl,
            osl,
            arrivals: Arrivals::Closed { concurrency: n },
            length_jitter: 0.0,
            shared_prefix: None,
            cached_prompt_tokens: isl,
        };
        let opts = SimOptions {
            num_requests: Some(n),
            ..SimOptions::default()
        };
        let report = sim::run_aggregated(&sched, &self.engine.timer, &workload, &opts)?;
        let gpus = f64::from(self.num_gpus().max(1));
        Ok(DecodeSample {
            itl_ms: report.tpot.mean,
            output_tokens_per_s: report.output_tokens_per_s,
            thpt_per_gpu: report.output_tokens_per_s / gpus,
            preemptions: report.preemptions,
        })
    }
}
