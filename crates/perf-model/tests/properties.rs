//! Properties of the step model, the memory model and `predict` over a
//! handful of catalog models, every built-in system, every backend and a
//! range of parallel layouts.

use perf_model::predict::{predict, PredictError, PredictOptions, Prediction};
use perf_model::{Calibration, EngineSpec, StepBatch, StepCostModel, StepTimer};
use proptest::prelude::*;
use proptest::sample::select;
use spec::workload::Arrival;
use spec::{Backend, ParallelLayout, ServingConfig, ServingMode, WorkerGroup, Workload};
use std::sync::LazyLock;

const MODELS: [&str; 6] = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen3-32B",
    "Qwen/Qwen3-30B-A3B",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "deepseek-ai/DeepSeek-V3",
    "openai/gpt-oss-120b",
];

fn layouts() -> Vec<ParallelLayout> {
    let l = |tp, pp, dp, moe_tp, moe_ep| ParallelLayout {
        tp,
        pp,
        dp,
        moe_tp,
        moe_ep,
    };
    vec![
        ParallelLayout::tp(1),
        ParallelLayout::tp(2),
        ParallelLayout::tp(4),
        ParallelLayout::tp(8),
        ParallelLayout::tp(16),
        ParallelLayout::tep(4),
        ParallelLayout::tep(8),
        ParallelLayout::dep(2),
        ParallelLayout::dep(4),
        ParallelLayout::dep(8),
        ParallelLayout::dep(16),
        l(2, 2, 1, 2, 1),
        l(4, 2, 1, 1, 4),
        l(2, 1, 4, 1, 8),
        l(8, 1, 1, 2, 4),
    ]
}

/// One engine: a model on a system with a backend and layout that
/// `EngineSpec::new` accepts.
#[derive(Debug, Clone)]
struct Setup {
    model: &'static str,
    system: &'static str,
    backend: Backend,
    layout: ParallelLayout,
}

impl Setup {
    fn spec(&self) -> EngineSpec {
        spec_for(self.model, self.system, self.backend, self.layout)
            .expect("setups are valid layouts")
    }

    fn same_engine_kind(&self, other: &Setup) -> bool {
        self.model == other.model && self.system == other.system && self.backend == other.backend
    }
}

fn spec_for(
    model: &str,
    system: &str,
    backend: Backend,
    layout: ParallelLayout,
) -> Result<EngineSpec, perf_model::ConfigError> {
    let m = spec::catalog::find(model).expect("catalog model");
    let s = spec::systems::find(system).expect("built-in system");
    let quant = m.native_quant;
    EngineSpec::new(m, s, backend, quant, layout)
}

/// Every valid (model, system, backend, layout) combination with whether
/// its memory check passes.
static SETUPS: LazyLock<Vec<(Setup, bool)>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for model in MODELS {
        for sys in spec::systems::all() {
            let system: &'static str = sys.name.as_str();
            for backend in Backend::ALL {
                for layout in layouts() {
                    if let Ok(e) = spec_for(model, system, backend, layout) {
                        let fits = e.memory().is_ok();
                        out.push((
                            Setup {
                                model,
                                system,
                                backend,
                                layout,
                            },
                            fits,
                        ));
                    }
                }
            }
        }
    }
    out
});

fn setups(fits: Option<bool>) -> Vec<Setup> {
    let v: Vec<Setup> = SETUPS
        .iter()
        .filter(|(_, f)| fits.is_none_or(|want| *f == want))
        .map(|(s, _)| s.clone())
        .collect();
    assert!(v.len() > 20, "only {} setups for {fits:?}", v.len());
    v
}

fn valid() -> impl Strategy<Value = Setup> {
    select(setups(None))
}

fn feasible() -> impl Strategy<Value = Setup> {
    select(setups(Some(true)))
}

fn infeasible() -> impl Strategy<Value = Setup> {
    select(setups(Some(false)))
}

fn cal() -> &'static Calibration {
    Calibration::builtin()
}

fn options() -> PredictOptions {
    PredictOptions::benchmark(cal())
}

fn agg(setup: &Setup, workers: u32, workload: Workload) -> ServingConfig {
    let m = spec::catalog::find_ref(setup.model).unwrap();
    ServingConfig {
        backend: setup.backend,
        quant: m.native_quant,
        mode: ServingMode::Aggregated {
            workers: WorkerGroup {
                layout: setup.layout,
                workers,
                max_batch: None,
            },
        },
        workload,
    }
}

fn disagg(
    setup: &Setup,
    prefill: (ParallelLayout, u32),
    decode: (ParallelLayout, u32),
    workload: Workload,
) -> ServingConfig {
    let m = spec::catalog::find_ref(setup.model).unwrap();
    let group = |(layout, workers)| WorkerGroup {
        layout,
        workers,
        max_batch: None,
    };
    ServingConfig {
        backend: setup.backend,
        quant: m.native_quant,
        mode: ServingMode::Disaggregated {
            prefill: group(prefill),
            decode: group(decode),
        },
        workload,
    }
}

fn run(setup: &Setup, cfg: &ServingConfig) -> Result<Prediction, PredictError> {
    let m = spec::catalog::find_ref(setup.model).unwrap();
    let s = spec::systems::find(setup.system).unwrap();
    predict(m, &s, cfg, cal(), &options())
}

fn decode(seqs: u32, context: u64) -> StepBatch {
    StepBatch {
        decode_seqs: seqs,
        decode_kv_tokens: seqs as u64 * context,
        ..Default::default()
    }
}

fn prefill(tokens: u32, past: u64) -> StepBatch {
    let n = tokens as f64;
    StepBatch {
        prefill_tokens: tokens,
        prefill_seqs: 1,
        prefill_attn_pairs: n * (past as f64 + (n + 1.0) / 2.0),
        prefill_past_tokens: past,
        ..Default::default()
    }
}

/// The failures a configuration that fits its weights may still meet: a KV
/// pool too small for one request of the workload.
fn kv_too_small(e: &PredictError) -> bool {
    matches!(
        e,
        PredictError::Config(perf_model::ConfigError::KvTooSmall { .. })
            | PredictError::Sim(perf_model::sim::SimError::RequestTooLarge { .. })
    )
}

/// 64 cases per property, or `PROPTEST_CASES` for a longer hunt.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

fn finite_positive(what: &str, v: f64) -> Result<(), TestCaseError> {
    prop_assert!(v.is_finite() && v > 0.0, "{what} = {v}");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// (a) More sequences at the same context cost more time.
    #[test]
    fn decode_step_grows_with_batch(
        s in valid(),
        seqs in 1u32..512,
        more in 1u32..256,
        context in 1u64..32_768,
    ) {
        let t = StepCostModel::new(&s.spec()).unwrap();
        let small = t.step_ms(&decode(seqs, context));
        let large = t.step_ms(&decode(seqs + more, context));
        finite_positive("decode step", small)?;
        prop_assert!(
            large > small,
            "{s:?}: {} seqs x {context} ctx = {small} ms, {} seqs = {large} ms",
            seqs, seqs + more
        );
    }

    /// (a) A longer prefill chunk (with the same cached past) costs more time.
    #[test]
    fn prefill_step_grows_with_tokens(
        s in valid(),
        tokens in 1u32..16_384,
        more in 1u32..4096,
        past in prop_oneof![Just(0u64), 1u64..32_768],
    ) {
        let t = StepCostModel::new(&s.spec()).unwrap();
        let small = t.step_ms(&prefill(tokens, past));
        let large = t.step_ms(&prefill(tokens + more, past));
        finite_positive("prefill step", small)?;
        prop_assert!(
            large > small,
            "{s:?}: {tokens} tokens after {past} = {small} ms, {} tokens = {large} ms",
            tokens + more
        );
    }

    /// (b) One client alone: a longer prompt never comes back faster.
    /// `more` starts at 10 so that every request stays strictly longer even
    /// under the benchmark's length jitter (each request's length is the
    /// workload's scaled by the same factor >= 0.1 in both runs, rounded).
    #[test]
    fn ttft_grows_with_isl(
        s in feasible(),
        isl in 1u32..12_000,
        more in 10u32..4000,
        osl in 2u32..32,
    ) {
        let at = |isl| {
            let cfg = agg(&s, 1, Workload { isl, osl, arrival: Arrival::Concurrency(1) });
            run(&s, &cfg)
        };
        // Every setup here fits its weights; a KV pool too small for the
        // longer request is the only acceptable failure.
        let (short, long) = match (at(isl), at(isl + more)) {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                prop_assert!(
                    a.as_ref().err().is_none_or(kv_too_small)
                        && b.as_ref().err().is_none_or(kv_too_small),
                    "{s:?}: {:?} / {:?}", a.err(), b.err()
                );
                return Ok(());
            }
        };
        finite_positive("TTFT", short.ttft_ms)?;
        prop_assert!(
            long.ttft_ms > short.ttft_ms,
            "{s:?} osl {osl}: ISL {isl} -> TTFT {} ms, ISL {} -> TTFT {} ms",
            short.ttft_ms, isl + more, long.ttft_ms
        );
    }

    /// (c) Splitting attention over more GPUs never adds weights to a GPU.
    #[test]
    fn more_tp_never_raises_weights_per_gpu(
        model in select(MODELS.to_vec()),
        system in select(vec!["h100_sxm", "b200_sxm", "gb200", "l40s"]),
        backend in select(Backend::ALL.to_vec()),
        tp in select(vec![1u32, 2, 4, 8]),
        factor in select(vec![2u32, 4, 8]),
        dp in select(vec![1u32, 2, 4]),
        pp in select(vec![1u32, 2, 4]),
        expert_parallel in any::<bool>(),
    ) {
        let layout = |tp: u32| {
            let stage = tp * dp;
            let (moe_tp, moe_ep) = if expert_parallel { (1, stage) } else { (stage, 1) };
            ParallelLayout { tp, pp, dp, moe_tp, moe_ep }
        };
        let (small, large) = (layout(tp), layout(tp * factor));
        let (Ok(a), Ok(b)) = (
            spec_for(model, system, backend, small),
            spec_for(model, system, backend, large),
        ) else {
            // tp does not divide the heads or ep the experts: nothing to compare.
            return Ok(());
        };
        let (wa, wb) = (a.weight_bytes_per_gpu(), b.weight_bytes_per_gpu());
        finite_positive("weights per GPU", wb)?;
        prop_assert!(
            wb <= wa * (1.0 + 1e-12),
            "{model}: {small} holds {wa} bytes per GPU, {large} holds {wb}"
        );
        if let (Ok(ma), Ok(mb)) = (a.memory(), b.memory()) {
            prop_assert!(mb.weights_gib <= ma.weights_gib * (1.0 + 1e-12));
            prop_assert!(mb.kv_cache_gib >= ma.kv_cache_gib * (1.0 - 1e-12));
        }
    }

    /// (d) A configuration whose memory check fails is never predicted, in
    /// either role of a disaggregated deployment.
    #[test]
    fn configs_that_do_not_fit_are_never_predicted(
        s in infeasible(),
        other in select(layouts()),
        role in 0u8..3,
        isl in 1u32..8192,
        osl in 1u32..1024,
        concurrency in 1u32..256,
    ) {
        let mem_err = s.spec().memory().expect_err("infeasible setup");
        let w = Workload { isl, osl, arrival: Arrival::Concurrency(concurrency) };
        let cfg = match role {
            0 => agg(&s, 1, w),
            1 => disagg(&s, (s.layout, 1), (other, 1), w),
            _ => disagg(&s, (other, 1), (s.layout, 1), w),
        };
        match run(&s, &cfg) {
            Ok(p) => {
                return Err(TestCaseError::fail(format!(
                    "{s:?} role {role} with {other}: memory() says {mem_err} but predict \
                     returned TTFT {} ms, TPOT {} ms",
                    p.ttft_ms, p.tpot_ms
                )))
            }
            Err(e) => {
                if role == 0 {
                    prop_assert_eq!(e, PredictError::Config(mem_err));
                }
            }
        }
    }

    /// (e) Whatever fits predicts finite, positive figures.
    #[test]
    fn predictions_are_finite_and_positive(
        s in feasible(),
        pick in any::<prop::sample::Index>(),
        disaggregated in any::<bool>(),
        workers in 0u32..3,
        isl in 1u32..8192,
        osl in 2u32..512,
        concurrency in 1u32..128,
    ) {
        let w = Workload { isl, osl, arrival: Arrival::Concurrency(concurrency) };
        let cfg = if disaggregated {
            // A decode engine of the same model, system and backend that fits too.
            let partners: Vec<Setup> = SETUPS
                .iter()
                .filter(|(o, fits)| *fits && o.same_engine_kind(&s))
                .map(|(o, _)| o.clone())
                .collect();
            let d = pick.get(&partners);
            disagg(&s, (s.layout, workers), (d.layout, workers), w)
        } else {
            agg(&s, workers.max(1), w)
        };
        let p = match run(&s, &cfg) {
            Ok(p) => p,
            Err(e) if kv_too_small(&e) => return Ok(()),
            Err(e) => return Err(TestCaseError::fail(format!("{s:?} {cfg:?}: {e}"))),
        };
        for (what, v) in [
            ("ttft_ms", p.ttft_ms),
            ("tpot_ms", p.tpot_ms),
            ("ttft p99", p.ttft.p99),
            ("tpot p50", p.tpot.p50),
            ("itl mean", p.itl.mean),
            ("e2e mean", p.e2e.mean),
            ("output tok/s", p.output_tokens_per_s),
            ("output tok/s/GPU", p.output_tokens_per_s_per_gpu),
            ("tok/s/user", p.tokens_per_s_per_user),
            ("req/s", p.requests_per_s),
            ("prefill step", p.prefill_step.total_ms()),
            ("decode step", p.decode_step.total_ms()),
        ] {
            prop_assert!(v.is_finite() && v > 0.0, "{s:?} {cfg:?}: {what} = {v}");
        }
        prop_assert!(p.num_gpus >= s.layout.num_gpus());
        prop_assert!(p.e2e.mean >= p.ttft_ms);
        prop_assert!(!p.memory.is_empty());
        for (role, m) in &p.memory {
            for (what, v) in [
                ("weights", m.weights_gib),
                ("reserved", m.reserved_gib),
                ("kv cache", m.kv_cache_gib),
                ("kv bytes per token", m.kv_bytes_per_token),
            ] {
                prop_assert!(v.is_finite() && v > 0.0, "{s:?} {role}: {what} = {v}");
            }
            prop_assert!(m.max_kv_tokens > 0, "{s:?} {role}");
        }
    }
}
