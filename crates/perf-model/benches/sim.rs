//! Simulated engine steps per second: C = 64 clients, ISL 1024, OSL 256,
//! a cheap linear step timer, with and without decode fast-forward.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use perf_model::sim::{run_aggregated, SchedPolicy, SchedulerConfig, SimOptions, Workload};
use perf_model::{StepBatch, StepTimer};
use spec::Backend;
use std::hint::black_box;
use std::time::{Duration, Instant};

struct Linear;

impl StepTimer for Linear {
    fn step_ms(&self, b: &StepBatch) -> f64 {
        4.0 + 0.02 * f64::from(b.prefill_tokens)
            + 0.05 * f64::from(b.decode_seqs)
            + 1e-4 * b.decode_kv_tokens as f64
    }
}

fn bench(c: &mut Criterion) {
    let workload = Workload::closed(1024, 256, 64);
    let mut group = c.benchmark_group("sim");
    group
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1));
    for (name, backend) in [("vllm", Backend::Vllm), ("sglang", Backend::Sglang)] {
        let cfg = SchedulerConfig::preset(backend, 1_000_000);
        assert!(matches!(
            cfg.policy,
            SchedPolicy::Mixed | SchedPolicy::PrefillFirst
        ));
        for ff in [false, true] {
            let opts = SimOptions {
                num_requests: Some(640),
                fast_forward: ff,
                ..SimOptions::default()
            };
            let run = || run_aggregated(&cfg, &Linear, &workload, &opts).unwrap();
            let report = run();
            // A plain timed loop as well, to print steps/s directly.
            let t0 = Instant::now();
            let mut iters = 0u32;
            while t0.elapsed() < Duration::from_millis(500) {
                black_box(run());
                iters += 1;
            }
            let secs = t0.elapsed().as_secs_f64();
            println!(
                "sim/{name}/fast_forward={ff}: {} steps per run (mean decode batch {:.1}), \
                 {:.2e} simulated steps/s, {:.0} runs/s",
                report.steps,
                report.mean_batch,
                report.steps as f64 * f64::from(iters) / secs,
                f64::from(iters) / secs,
            );
            group.throughput(Throughput::Elements(report.steps));
            group.bench_with_input(
                BenchmarkId::new(name, format!("fast_forward={ff}")),
                &ff,
                |b, _| b.iter(|| black_box(run())),
            );
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
