//! Cost of the performance model itself.
//!
//! - `step/*`: one `StepCostModel::step_ms` evaluation of a mixed batch (a
//!   prefill chunk riding along with a full decode batch). Issue #2's target
//!   is under 2 µs per evaluation.
//! - `predict/*`: one whole `predict` of a typical silicon row, a closed-loop
//!   aggregated point at concurrency 64 (what `slaprof validate` does per row).
//!
//! Besides criterion's report, each case prints its mean from a plain timed
//! loop so the figure can be read off directly.

use criterion::{criterion_group, criterion_main, Criterion};
use perf_model::predict::{predict, PredictOptions};
use perf_model::silicon::row_config;
use perf_model::{Calibration, EngineSpec, StepBatch, StepCostModel, StepTimer};
use spec::{Backend, ParallelLayout, SiliconRow};
use std::hint::black_box;
use std::time::{Duration, Instant};

fn engine(model: &str, system: &str, backend: Backend, layout: ParallelLayout) -> EngineSpec {
    let m = spec::catalog::find(model).expect("catalog model");
    let s = spec::systems::find(system).expect("built-in system");
    let quant = m.native_quant;
    EngineSpec::new(m, s, backend, quant, layout).expect("valid layout")
}

/// A step of vLLM/TRT-LLM-style mixed batching: a 2048-token chunk of a
/// prompt with 1024 tokens already cached, plus 63 decodes around 3000
/// tokens of context.
fn mixed_batch() -> StepBatch {
    let chunk = 2048.0;
    let past = 1024.0;
    StepBatch {
        prefill_tokens: 2048,
        prefill_seqs: 1,
        prefill_attn_pairs: chunk * (past + (chunk + 1.0) / 2.0),
        prefill_past_tokens: 1024,
        decode_seqs: 63,
        decode_kv_tokens: 63 * 3000,
    }
}

/// Mean wall time of one call of `f`, in ns, over about `budget` after a
/// warm-up of a tenth of that.
fn ns_per_call<R>(budget: Duration, mut f: impl FnMut(u64) -> R) -> f64 {
    let mut run_for = |budget: Duration| {
        let t0 = Instant::now();
        let mut n = 0u64;
        let mut batch = 1u64;
        while t0.elapsed() < budget {
            for _ in 0..batch {
                black_box(f(n));
                n += 1;
            }
            batch = (batch * 2).min(1 << 14);
        }
        t0.elapsed().as_secs_f64() * 1e9 / n as f64
    };
    run_for(budget / 10);
    run_for(budget)
}

fn bench_step(c: &mut Criterion) {
    let cases = [
        (
            "qwen3_32b_h200_trtllm_tp2",
            engine(
                "Qwen/Qwen3-32B",
                "h200_sxm",
                Backend::Trtllm,
                ParallelLayout::tp(2),
            ),
        ),
        (
            "deepseek_v3_b200_sglang_dep8",
            engine(
                "deepseek-ai/DeepSeek-V3",
                "b200_sxm",
                Backend::Sglang,
                ParallelLayout::dep(8),
            ),
        ),
    ];
    let mut group = c.benchmark_group("step");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for (name, spec) in &cases {
        let model = StepCostModel::new(spec).expect("step model");
        let base = mixed_batch();
        // Vary the batch a little so nothing is hoisted out of the loop.
        let batch_of = |i: u64| StepBatch {
            decode_kv_tokens: base.decode_kv_tokens + (i & 1023),
            ..base
        };
        let ns = ns_per_call(Duration::from_millis(500), |i| {
            model.step_ms(black_box(&batch_of(i)))
        });
        println!(
            "step/{name}: {ns:.0} ns per step_ms evaluation ({:.3} ms step; target < 2000 ns)",
            model.step_ms(&base)
        );
        let mut i = 0u64;
        group.bench_function(*name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                model.step_ms(black_box(&batch_of(i)))
            })
        });
    }
    group.finish();
}

/// A typical measured row: Qwen3-32B on H100 with TensorRT-LLM, TP2,
/// 1024 in / 1024 out, 64 clients.
fn silicon_row() -> SiliconRow {
    SiliconRow {
        id: "bench_qwen3_32b_h100_trtllm_agg_1024x1024_c64_tp2".into(),
        backend: "trtllm".into(),
        model_path: "Qwen/Qwen3-32B".into(),
        system: "h100_sxm".into(),
        mode: "agg".into(),
        isl: 1024.0,
        osl: 1024.0,
        batch_size: Some(64.0),
        tp_size: Some(2.0),
        pp_size: Some(1.0),
        ..Default::default()
    }
}

fn bench_predict(c: &mut Criterion) {
    let row = silicon_row();
    let cfg = row_config(&row).expect("row maps to a serving config");
    let model = spec::catalog::find(&row.model_path).expect("catalog model");
    let system = spec::systems::find(&row.system).expect("built-in system");
    let cal = Calibration::builtin();
    let opts = PredictOptions::benchmark(cal);
    let run = || predict(&model, &system, &cfg, cal, &opts).expect("prediction");
    let p = run();
    let ns = ns_per_call(Duration::from_secs(2), |_| run());
    println!(
        "predict/{}: {:.1} us per prediction ({} simulated steps; TTFT {:.1} ms, TPOT {:.2} ms)",
        row.id,
        ns / 1e3,
        p.simulated_steps,
        p.ttft_ms,
        p.tpot_ms
    );
    let mut group = c.benchmark_group("predict");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    group.bench_function("qwen3_32b_h100_trtllm_tp2_c64", |b| {
        b.iter(|| black_box(run()))
    });
    group.finish();
}

criterion_group!(benches, bench_step, bench_predict);
criterion_main!(benches);
