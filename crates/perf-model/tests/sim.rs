//! Serving simulator: hand-computable cases with hand-made step timers.

use perf_model::sim::{
    run_aggregated, run_disaggregated, ActionKind, Arrivals, Engine, EngineSetup, PrefixKey,
    RequestSpec, SchedPolicy, SchedulerConfig, SharedPrefix, SimError, SimOptions, SimReport,
    TokenKind, Workload,
};
use perf_model::{StepBatch, StepTimer};
use proptest::prelude::*;

/// Step time affine in every batch field: fast-forward is exact for it.
#[derive(Debug, Clone, Copy)]
struct Linear {
    base: f64,
    per_prefill_token: f64,
    per_decode_seq: f64,
    per_kv_token: f64,
}

impl StepTimer for Linear {
    fn step_ms(&self, b: &StepBatch) -> f64 {
        self.base
            + self.per_prefill_token * f64::from(b.prefill_tokens)
            + self.per_decode_seq * f64::from(b.decode_seqs)
            + self.per_kv_token * b.decode_kv_tokens as f64
    }
}

const LIN: Linear = Linear {
    base: 5.0,
    per_prefill_token: 0.01,
    per_decode_seq: 0.1,
    per_kv_token: 0.0001,
};

/// Prefill costs per token, decode a flat 10 ms.
const SIMPLE: Linear = Linear {
    base: 0.0,
    per_prefill_token: 0.01,
    per_decode_seq: 10.0,
    per_kv_token: 0.0,
};

fn cfg(policy: SchedPolicy) -> SchedulerConfig {
    SchedulerConfig {
        max_num_seqs: 256,
        max_num_batched_tokens: 8192,
        block_size: 16,
        num_kv_blocks: 100_000,
        chunked_prefill: true,
        policy,
        enable_prefix_caching: true,
        decode_reserve: perf_model::sim::ReserveRatio::NONE,
    }
}

fn opts(n: u32) -> SimOptions {
    SimOptions {
        num_requests: Some(n),
        ..SimOptions::default()
    }
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-12)
}

#[test]
fn lone_request_ttft_is_its_prefill_and_tpot_its_decode_step() {
    for policy in [
        SchedPolicy::Mixed,
        SchedPolicy::PrefillFirst,
        SchedPolicy::MixedNoEvict,
    ] {
        for ff in [false, true] {
            let o = SimOptions {
                fast_forward: ff,
                ..opts(1)
            };
            let r =
                run_aggregated(&cfg(policy), &SIMPLE, &Workload::closed(1000, 11, 1), &o).unwrap();
            assert!(
                close(r.ttft.mean, 10.0, 1e-12),
                "{policy:?} {}",
                r.ttft.mean
            );
            assert!(close(r.tpot.mean, 10.0, 1e-12));
            assert!(close(r.e2e.mean, 110.0, 1e-12));
            assert!(close(r.itl.p50, 10.0, 1e-12) && close(r.itl.max, 10.0, 1e-12));
            assert_eq!(r.itl.count, 10);
            assert_eq!(r.steps, 11);
            assert!(close(r.mean_batch, 1.0, 1e-12));
        }
    }
}

#[test]
fn chunks_of_a_long_prompt_add_up_to_its_ttft() {
    // 10 000 tokens with a 4096-token budget: 3 steps of 4096, 4096, 1808.
    let mut c = cfg(SchedPolicy::Mixed);
    c.max_num_batched_tokens = 4096;
    let t = Linear {
        base: 2.0,
        ..SIMPLE
    };
    let r = run_aggregated(&c, &t, &Workload::closed(10_000, 2, 1), &opts(1)).unwrap();
    assert!(
        close(r.ttft.mean, 3.0 * 2.0 + 100.0, 1e-12),
        "{}",
        r.ttft.mean
    );
    assert_eq!(r.steps, 4);
}

#[test]
fn chunked_prefill_batches_follow_the_contract() {
    for policy in [SchedPolicy::Mixed, SchedPolicy::PrefillFirst] {
        let mut c = cfg(policy);
        c.max_num_batched_tokens = 4096;
        let mut e = Engine::new(c).unwrap();
        e.add_request(RequestSpec::new(7, 10_000, 3)).unwrap();
        let mut chunks = Vec::new();
        loop {
            let step = e.plan_step().unwrap();
            let b = step.batch;
            assert_eq!(b.decode_seqs, 0);
            assert_eq!(b.prefill_seqs, 1);
            assert_eq!(step.actions.len(), 1);
            assert_eq!(step.actions[0].kind, ActionKind::Prefill);
            let (n, past) = (f64::from(b.prefill_tokens), b.prefill_past_tokens as f64);
            assert_eq!(b.prefill_attn_pairs, n * (past + (n + 1.0) / 2.0));
            chunks.push((b.prefill_tokens, b.prefill_past_tokens));
            let ev = e.finish_step().to_vec();
            if !ev.is_empty() {
                assert_eq!(ev[0].kind, TokenKind::First);
                break;
            }
        }
        assert_eq!(chunks, vec![(4096, 0), (4096, 4096), (1808, 8192)]);
        // Decodes attend to the whole context, the token being fed included.
        let b = e.plan_step().unwrap().batch;
        assert_eq!(
            (b.decode_seqs, b.decode_kv_tokens, b.prefill_tokens),
            (1, 10_001, 0)
        );
        assert_eq!(e.finish_step()[0].kind, TokenKind::Next);
        let b = e.plan_step().unwrap().batch;
        assert_eq!(b.decode_kv_tokens, 10_002);
        assert!(e.finish_step()[0].finished);
        assert!(e.is_idle() && e.used_blocks() == 0);
        assert!(e.plan_step().is_none());
    }
}

#[test]
fn mixed_puts_decodes_and_prefill_chunks_in_one_step_prefill_first_does_not() {
    let mut c = cfg(SchedPolicy::Mixed);
    c.max_num_batched_tokens = 1000;
    let mut e = Engine::new(c).unwrap();
    e.add_request(RequestSpec::new(1, 100, 50)).unwrap();
    e.plan_step().unwrap();
    e.finish_step();
    e.add_request(RequestSpec::new(2, 5000, 50)).unwrap();
    let b = e.plan_step().unwrap().batch;
    assert_eq!((b.decode_seqs, b.prefill_tokens), (1, 999));
    e.finish_step();

    let mut c = cfg(SchedPolicy::PrefillFirst);
    c.max_num_batched_tokens = 1000;
    let mut e = Engine::new(c).unwrap();
    e.add_request(RequestSpec::new(1, 100, 50)).unwrap();
    e.plan_step().unwrap();
    e.finish_step();
    e.add_request(RequestSpec::new(2, 5000, 50)).unwrap();
    for _ in 0..5 {
        let b = e.plan_step().unwrap().batch;
        assert_eq!((b.decode_seqs, b.prefill_tokens), (0, 1000));
        e.finish_step();
    }
    let b = e.plan_step().unwrap().batch;
    assert_eq!((b.decode_seqs, b.prefill_tokens), (2, 0));
}

#[test]
fn closed_loop_identical_requests_stay_in_lockstep_with_prefill_first() {
    let w = Workload::closed(512, 32, 4);
    for ff in [false, true] {
        let o = SimOptions {
            fast_forward: ff,
            ..opts(40)
        };
        let r = run_aggregated(&cfg(SchedPolicy::PrefillFirst), &LIN, &w, &o).unwrap();
        assert_eq!(r.completed, 40);
        // One 4-prompt prefill step and 31 decode steps of 4, ten times.
        assert_eq!(r.steps, 10 * 32);
        assert!(close(r.mean_batch, 4.0, 1e-12));
        assert!(close(r.ttft.min, r.ttft.max, 1e-12));
        assert!(close(r.e2e.min, r.e2e.max, 1e-9));
        let prefill = LIN.step_ms(&StepBatch {
            prefill_tokens: 2048,
            prefill_seqs: 4,
            ..StepBatch::default()
        });
        assert!(close(r.ttft.mean, prefill, 1e-12));
    }
}

#[test]
fn kv_pressure_preempts_under_mixed_but_not_no_evict() {
    // Each request peaks at 100 + 400 - 1 tokens = 32 blocks; 8 want 256.
    let w = Workload::closed(100, 400, 8);
    let mut c = cfg(SchedPolicy::Mixed);
    c.num_kv_blocks = 100;
    let mixed = run_aggregated(&c, &LIN, &w, &opts(32)).unwrap();
    assert!(mixed.preemptions > 0);
    assert_eq!(mixed.completed, 32);
    assert!(mixed.kv_peak_usage > 0.9);

    c.policy = SchedPolicy::MixedNoEvict;
    let no_evict = run_aggregated(&c, &LIN, &w, &opts(32)).unwrap();
    assert_eq!(no_evict.preemptions, 0);
    assert_eq!(no_evict.completed, 32);
    // 100 blocks hold three whole 32-block sequences.
    assert!(no_evict.mean_batch <= 3.0 + 1e-9, "{}", no_evict.mean_batch);
    assert!(mixed.mean_batch > no_evict.mean_batch);

    c.policy = SchedPolicy::PrefillFirst;
    c.decode_reserve = perf_model::sim::ReserveRatio::SGLANG;
    let sglang = run_aggregated(&c, &LIN, &w, &opts(32)).unwrap();
    assert_eq!(sglang.completed, 32);
}

#[test]
fn preempted_request_is_recomputed_and_finishes() {
    let mut c = cfg(SchedPolicy::Mixed);
    c.num_kv_blocks = 10;
    c.block_size = 4;
    let mut e = Engine::new(c).unwrap();
    // Two requests that fit alone (20 + 19 tokens < 40) but not together.
    e.add_request(RequestSpec::new(1, 16, 20)).unwrap();
    e.add_request(RequestSpec::new(2, 16, 20)).unwrap();
    let mut tokens = [0u32; 3];
    let mut firsts = [0u32; 3];
    let mut preempted = Vec::new();
    let mut steps = 0;
    while let Some(step) = e.plan_step() {
        preempted.extend_from_slice(step.preempted);
        steps += 1;
        assert!(steps < 1000);
        for ev in e.finish_step() {
            tokens[ev.id as usize] += 1;
            firsts[ev.id as usize] += u32::from(ev.kind == TokenKind::First);
        }
    }
    assert_eq!(preempted, vec![2]);
    assert_eq!(tokens, [0, 20, 20]);
    assert_eq!(firsts, [0, 1, 1]);
    assert_eq!(e.stats().preemptions, 1);
    assert!(e.is_idle() && e.used_blocks() == 0);
}

#[test]
fn prefix_caching_lowers_ttft() {
    let mut w = Workload::closed(4096, 8, 1);
    w.shared_prefix = Some(SharedPrefix {
        tokens: 3072,
        groups: 1,
    });
    let c = cfg(SchedPolicy::Mixed);
    let hit = run_aggregated(&c, &LIN, &w, &opts(10)).unwrap();
    let mut off = c;
    off.enable_prefix_caching = false;
    let miss = run_aggregated(&off, &LIN, &w, &opts(10)).unwrap();
    assert_eq!(hit.prefix_hit_tokens, 9 * 3072);
    assert_eq!(miss.prefix_hit_tokens, 0);
    assert!(hit.ttft.mean < 0.5 * miss.ttft.mean);
    assert!(close(hit.ttft.max, miss.ttft.max, 1e-12)); // the first one misses

    // A caller-supplied hit skips whole blocks and never the last token.
    let mut e = Engine::new(c).unwrap();
    e.add_request(RequestSpec {
        cached_prefix_tokens: 1000,
        ..RequestSpec::new(1, 1000, 4)
    })
    .unwrap();
    let b = e.plan_step().unwrap().batch;
    assert_eq!((b.prefill_tokens, b.prefill_past_tokens), (8, 992));
}

#[test]
fn prefix_cache_is_evicted_when_memory_is_needed() {
    let mut c = cfg(SchedPolicy::Mixed);
    c.num_kv_blocks = 64;
    c.block_size = 16;
    let mut e = Engine::new(c).unwrap();
    let key = PrefixKey { hash: 9, len: 512 };
    let run = |e: &mut Engine, id, prompt| {
        e.add_request(RequestSpec {
            prefix: Some(key),
            ..RequestSpec::new(id, prompt, 2)
        })
        .unwrap();
        while e.plan_step().is_some() {
            e.finish_step();
        }
    };
    run(&mut e, 1, 600);
    run(&mut e, 2, 600);
    assert_eq!(e.stats().prefix_hit_tokens, 512);
    // A request using the whole pool evicts the cached prefix...
    e.add_request(RequestSpec::new(3, 1000, 2)).unwrap();
    while e.plan_step().is_some() {
        e.finish_step();
    }
    run(&mut e, 4, 600);
    // ...so the next one misses.
    assert_eq!(e.stats().prefix_hit_tokens, 512);
}

#[test]
fn poisson_arrivals_are_reproducible() {
    let w = Workload {
        length_jitter: 0.2,
        ..Workload::poisson(1024, 64, 20.0)
    };
    let o = SimOptions {
        seed: 11,
        ..opts(200)
    };
    let c = cfg(SchedPolicy::Mixed);
    let a = run_aggregated(&c, &LIN, &w, &o).unwrap();
    let b = run_aggregated(&c, &LIN, &w, &o).unwrap();
    assert_eq!(a, b);
    let o2 = SimOptions { seed: 12, ..o };
    let d = run_aggregated(&c, &LIN, &w, &o2).unwrap();
    assert_ne!(a.ttft, d.ttft);
    // ~200 requests at 20/s take about 10 s.
    assert!((7.0..14.0).contains(&a.duration_s), "{}", a.duration_s);
    assert!(close(a.requests_per_s, 20.0, 0.3));
}

fn assert_agree(a: &SimReport, b: &SimReport, rel: f64) {
    assert_eq!(a.completed, b.completed);
    assert_eq!(a.preemptions, b.preemptions);
    for (x, y, what) in [
        (a.ttft.mean, b.ttft.mean, "ttft"),
        (a.ttft.p99, b.ttft.p99, "ttft p99"),
        (a.tpot.mean, b.tpot.mean, "tpot"),
        (a.tpot.p90, b.tpot.p90, "tpot p90"),
        (a.e2e.mean, b.e2e.mean, "e2e"),
        (a.itl.mean, b.itl.mean, "itl"),
        (a.duration_s, b.duration_s, "duration"),
        (a.output_tokens_per_s, b.output_tokens_per_s, "throughput"),
        (a.mean_batch, b.mean_batch, "batch"),
    ] {
        assert!(close(x, y, rel), "{what}: {x} vs {y}");
    }
    // ITL percentiles come from a histogram with buckets 0.8% wide: a gap
    // on a bucket edge may land on either side.
    for (x, y) in [(a.itl.p50, b.itl.p50), (a.itl.p99, b.itl.p99)] {
        assert!(close(x, y, rel.max(0.01)), "itl percentile: {x} vs {y}");
    }
    assert_eq!(a.itl.count, b.itl.count);
}

#[test]
fn fast_forward_agrees_with_single_stepping() {
    let slow = SimOptions {
        fast_forward: false,
        warmup_requests: 8,
        ..opts(160)
    };
    let fast = SimOptions {
        fast_forward: true,
        ..slow
    };
    let mut jittered = Workload::closed(1024, 128, 16);
    jittered.length_jitter = 0.3;
    let cases = [
        (SchedPolicy::Mixed, Workload::closed(1024, 256, 16)),
        (SchedPolicy::Mixed, jittered),
        (SchedPolicy::PrefillFirst, jittered),
        (SchedPolicy::MixedNoEvict, jittered),
        (SchedPolicy::Mixed, Workload::poisson(512, 128, 30.0)),
        (SchedPolicy::PrefillFirst, Workload::poisson(512, 128, 30.0)),
    ];
    for (policy, w) in cases {
        let c = cfg(policy);
        let a = run_aggregated(&c, &LIN, &w, &slow).unwrap();
        let b = run_aggregated(&c, &LIN, &w, &fast).unwrap();
        assert_eq!(a.steps, b.steps, "{policy:?} {w:?}");
        assert_agree(&a, &b, 0.005);
    }
    // Under KV pressure spans stop where blocks run out; preemption then
    // happens exactly as when single stepping.
    let mut c = cfg(SchedPolicy::Mixed);
    c.num_kv_blocks = 700;
    let w = Workload::closed(1024, 256, 16);
    let a = run_aggregated(&c, &LIN, &w, &slow).unwrap();
    let b = run_aggregated(&c, &LIN, &w, &fast).unwrap();
    assert!(a.preemptions > 0);
    assert_agree(&a, &b, 0.005);
}

#[test]
fn fast_forward_skips_most_plans() {
    // Not a timing test: a span must cover many steps at once, so the
    // engine sees far fewer plan/finish calls than steps.
    let mut e = Engine::new(cfg(SchedPolicy::Mixed)).unwrap();
    for id in 0..4 {
        e.add_request(RequestSpec::new(id, 100, 200)).unwrap();
    }
    e.plan_step().unwrap();
    assert_eq!(e.finish_step().len(), 4);
    let span = e.decode_span().unwrap();
    assert_eq!(span.steps, 199);
    assert_eq!(span.first.decode_kv_tokens, 4 * 101);
    assert_eq!(span.batch(199).decode_kv_tokens, 4 * (101 + 198));
    let ev = e.advance_decode(&span, 50).unwrap().to_vec();
    assert_eq!(ev.len(), 4);
    assert!(ev.iter().all(|e| !e.finished));
    assert_eq!(e.advance_decode(&span, 1), Err(SimError::StaleSpan));
    let span = e.decode_span().unwrap();
    assert_eq!(span.steps, 149);
    assert!(e
        .advance_decode(&span, 149)
        .unwrap()
        .iter()
        .all(|e| e.finished));
    assert_eq!(e.stats().steps, 200);
    assert!(e.is_idle() && e.used_blocks() == 0);
}

fn disagg(
    transfer_ms: f64,
    w: &Workload,
    o: &SimOptions,
    prefill: usize,
    decode: usize,
) -> SimReport {
    let setup = |policy| EngineSetup {
        config: cfg(policy),
        timer: SIMPLE,
    };
    let p = vec![setup(SchedPolicy::PrefillFirst); prefill];
    let d = vec![setup(SchedPolicy::Mixed); decode];
    run_disaggregated(&p, &d, &|_: u32| transfer_ms, w, o).unwrap()
}

#[test]
fn disaggregated_ttft_is_prefill_only_and_tpot_excludes_transfer() {
    let w = Workload::closed(2000, 21, 1);
    let r = disagg(30.0, &w, &opts(3), 1, 1);
    assert!(close(r.ttft.mean, 20.0, 1e-12), "{}", r.ttft.mean);
    assert!(close(r.tpot.mean, 10.0, 1e-12), "{}", r.tpot.mean);
    assert!(close(r.e2e.mean, 20.0 + 30.0 + 200.0, 1e-12));
    assert!(close(r.itl.max, 10.0, 1e-12));
    assert_eq!(r.completed, 3);
    // Prefill steps are not decode batches.
    assert!(close(r.mean_batch, 1.0, 1e-12));

    // One output token: done at the prefill engine, nothing transferred.
    let r = disagg(30.0, &Workload::closed(2000, 1, 1), &opts(3), 1, 1);
    assert!(close(r.e2e.mean, 20.0, 1e-12));
    assert_eq!(r.tpot.count, 0);
}

#[test]
fn disaggregated_spreads_load_and_fast_forward_agrees() {
    let mut w = Workload::closed(1024, 128, 32);
    w.length_jitter = 0.25;
    let slow = SimOptions {
        fast_forward: false,
        ..opts(256)
    };
    let fast = SimOptions {
        fast_forward: true,
        ..slow
    };
    let setup = |policy| EngineSetup {
        config: cfg(policy),
        timer: LIN,
    };
    let p = vec![setup(SchedPolicy::PrefillFirst); 2];
    let d = vec![setup(SchedPolicy::Mixed); 3];
    let xfer = |tokens: u32| 1.0 + f64::from(tokens) * 0.002;
    let a = run_disaggregated(&p, &d, &xfer, &w, &slow).unwrap();
    let b = run_disaggregated(&p, &d, &xfer, &w, &fast).unwrap();
    assert_eq!(a.steps, b.steps);
    assert_agree(&a, &b, 0.005);
    // 32 clients over 3 decode engines: about 32/3 per decode batch.
    assert!((8.0..11.0).contains(&a.mean_batch), "{}", a.mean_batch);
    let one = run_disaggregated(&p[..1], &d[..1], &xfer, &w, &slow).unwrap();
    assert!(one.output_tokens_per_s < a.output_tokens_per_s);
}

#[test]
fn request_larger_than_kv_is_an_error_not_a_hang() {
    let mut c = cfg(SchedPolicy::Mixed);
    c.num_kv_blocks = 10; // 160 tokens
    let r = run_aggregated(&c, &LIN, &Workload::closed(150, 20, 2), &opts(4));
    assert!(
        matches!(
            r,
            Err(SimError::RequestTooLarge {
                needed_blocks: 11,
                ..
            })
        ),
        "{r:?}"
    );
    c.policy = SchedPolicy::PrefillFirst;
    assert!(run_aggregated(&c, &LIN, &Workload::closed(150, 10, 2), &opts(4)).is_ok());

    c.chunked_prefill = false;
    c.num_kv_blocks = 1000;
    c.max_num_batched_tokens = 100;
    let r = run_aggregated(&c, &LIN, &Workload::closed(150, 10, 2), &opts(4));
    assert!(
        matches!(r, Err(SimError::PromptExceedsBudget { .. })),
        "{r:?}"
    );
}

#[test]
fn bad_inputs_are_errors() {
    let mut c = cfg(SchedPolicy::Mixed);
    c.block_size = 0;
    assert!(matches!(Engine::new(c), Err(SimError::InvalidConfig(_))));
    let c = cfg(SchedPolicy::Mixed);
    let w = Workload::closed(10, 10, 1);
    assert!(run_aggregated(&c, &LIN, &Workload::closed(0, 10, 1), &opts(1)).is_err());
    assert!(run_aggregated(&c, &LIN, &Workload::closed(10, 10, 0), &opts(1)).is_err());
    assert!(run_aggregated(&c, &LIN, &Workload::poisson(10, 10, 0.0), &opts(1)).is_err());
    let o = SimOptions {
        warmup_requests: 5,
        ..opts(5)
    };
    assert!(run_aggregated(&c, &LIN, &w, &o).is_err());
    let nan = Linear {
        base: f64::NAN,
        ..LIN
    };
    assert!(matches!(
        run_aggregated(&c, &nan, &w, &opts(1)),
        Err(SimError::InvalidStepTime { .. })
    ));
    let slow = Linear { base: 1e9, ..LIN };
    let o = SimOptions {
        max_sim_time_s: 3600.0,
        ..opts(1)
    };
    assert!(matches!(
        run_aggregated(&c, &slow, &w, &o),
        Err(SimError::TimeLimit { .. })
    ));
    let mut e = Engine::new(c).unwrap();
    assert!(e.add_request(RequestSpec::new(1, 0, 5)).is_err());
    assert!(e
        .add_request(RequestSpec {
            prefilled: true,
            ..RequestSpec::new(1, 10, 1)
        })
        .is_err());
    let p = [EngineSetup {
        config: c,
        timer: LIN,
    }];
    let neg = |_: u32| -1.0;
    assert!(matches!(
        run_disaggregated(&p, &p, &neg, &w, &opts(1)),
        Err(SimError::InvalidTransferTime { .. })
    ));
    assert!(run_disaggregated(&p, &[], &neg, &w, &opts(1)).is_err());
}

#[test]
fn abort_releases_the_request() {
    let mut e = Engine::new(cfg(SchedPolicy::Mixed)).unwrap();
    e.add_request(RequestSpec::new(1, 100, 10)).unwrap();
    e.add_request(RequestSpec::new(2, 100, 10)).unwrap();
    e.plan_step().unwrap();
    assert!(e.abort(1)); // mid-step: its token is dropped
    let ev = e.finish_step().to_vec();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].id, 2);
    assert!(e.abort(2));
    assert!(!e.abort(2));
    e.add_request(RequestSpec::new(3, 100, 10)).unwrap();
    assert!(e.abort(3));
    assert!(e.is_idle() && e.used_blocks() == 0);
    assert!(e.plan_step().is_none());
}

#[test]
fn max_num_seqs_caps_the_batch() {
    let mut c = cfg(SchedPolicy::Mixed);
    c.max_num_seqs = 4;
    let r = run_aggregated(&c, &LIN, &Workload::closed(128, 64, 10), &opts(40)).unwrap();
    assert!(r.mean_batch <= 4.0 + 1e-9);
    assert!(r.mean_batch > 3.0);
}

#[test]
fn presets_are_valid() {
    for b in spec::Backend::ALL {
        let c = SchedulerConfig::preset(b, 1_000_000);
        c.validate().unwrap();
        assert!(c.kv_capacity_tokens() <= 1_000_000);
        let r = run_aggregated(&c, &LIN, &Workload::closed(2048, 128, 64), &opts(128)).unwrap();
        assert_eq!(r.completed, 128);
    }
}

#[test]
fn spec_workload_converts() {
    let w = spec::Workload {
        isl: 100,
        osl: 10,
        arrival: spec::workload::Arrival::Concurrency(3),
    };
    assert_eq!(
        Workload::from_spec(&w).arrivals,
        Arrivals::Closed { concurrency: 3 }
    );
}

fn policy() -> impl Strategy<Value = SchedPolicy> {
    prop_oneof![
        Just(SchedPolicy::Mixed),
        Just(SchedPolicy::PrefillFirst),
        Just(SchedPolicy::MixedNoEvict),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn stats_are_sane(
        isl in 1u32..3000,
        osl in 1u32..300,
        conc in 1u32..40,
        poisson in any::<bool>(),
        rate in 0.5f64..50.0,
        policy in policy(),
        block_size in 1u32..64,
        budget in 64u32..4096,
        kv_tokens in 5000u32..200_000,
        ff in any::<bool>(),
        jitter in 0.0f64..0.5,
        seed in any::<u64>(),
        n in 1u32..60,
    ) {
        let c = SchedulerConfig {
            max_num_seqs: 64,
            max_num_batched_tokens: budget,
            block_size,
            num_kv_blocks: (kv_tokens / block_size).max(1),
            chunked_prefill: true,
            policy,
            enable_prefix_caching: true,
            decode_reserve: perf_model::sim::ReserveRatio::SGLANG,
        };
        let mut w = if poisson { Workload::poisson(isl, osl, rate) } else { Workload::closed(isl, osl, conc) };
        w.length_jitter = jitter;
        w.shared_prefix = Some(SharedPrefix { tokens: isl / 2, groups: 3 });
        let o = SimOptions { num_requests: Some(n), fast_forward: ff, seed, ..SimOptions::default() };
        match run_aggregated(&c, &LIN, &w, &o) {
            Ok(r) => {
                prop_assert_eq!(r.completed, n);
                prop_assert_eq!(r.measured, n);
                prop_assert!(r.ttft.min > 0.0);
                prop_assert_eq!(r.ttft.count, u64::from(n));
                for d in [r.ttft, r.tpot, r.itl, r.e2e] {
                    for x in [d.mean, d.std, d.min, d.max, d.p50, d.p90, d.p95, d.p99] {
                        prop_assert!(x.is_finite() && x >= 0.0);
                    }
                    prop_assert!(d.min <= d.p50 && d.p50 <= d.p99 && d.p99 <= d.max);
                }
                prop_assert!(r.e2e.min >= r.ttft.min);
                for x in [r.duration_s, r.output_tokens_per_s, r.requests_per_s, r.mean_batch, r.kv_peak_usage] {
                    prop_assert!(x.is_finite() && x >= 0.0);
                }
                prop_assert!(r.kv_peak_usage <= 1.0);
            }
            // Jittered lengths can exceed the KV pool; that must be the
            // reported reason.
            Err(SimError::RequestTooLarge { needed_blocks, capacity_blocks, .. }) => {
                prop_assert!(needed_blocks > capacity_blocks);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

#[test]
fn fast_forward_continues_while_a_backlog_waits_for_kv() {
    // Reservations admit 3 of 8 requests; the rest wait for a completion.
    let mut c = cfg(SchedPolicy::MixedNoEvict);
    c.num_kv_blocks = 100;
    let mut e = Engine::new(c).unwrap();
    for id in 0..8 {
        e.add_request(RequestSpec::new(id, 100, 400)).unwrap();
    }
    e.plan_step().unwrap();
    e.finish_step();
    assert_eq!((e.num_running(), e.num_waiting()), (3, 5));
    assert_eq!(e.decode_span().unwrap().steps, 399);

    // Same under vLLM's rule when the next prompt's blocks are not free...
    c.policy = SchedPolicy::Mixed;
    let mut e = Engine::new(c).unwrap();
    for id in 0..8 {
        e.add_request(RequestSpec::new(id, 1000, 40)).unwrap();
    }
    e.plan_step().unwrap();
    e.finish_step();
    assert_eq!((e.num_running(), e.num_waiting()), (1, 7));
    assert_eq!(e.decode_span().unwrap().steps, 39);
    // ...but a backlog held back only by the token budget goes next step.
    let mut c = cfg(SchedPolicy::Mixed);
    c.max_num_batched_tokens = 200;
    let mut e = Engine::new(c).unwrap();
    for id in 0..8 {
        e.add_request(RequestSpec::new(id, 100, 40)).unwrap();
    }
    e.plan_step().unwrap();
    e.finish_step();
    assert_eq!((e.num_running(), e.num_waiting()), (2, 6));
    assert!(e.decode_span().is_none());

    let w = Workload::closed(100, 400, 8);
    let c = SchedulerConfig {
        policy: SchedPolicy::MixedNoEvict,
        num_kv_blocks: 100,
        ..cfg(SchedPolicy::Mixed)
    };
    let slow = SimOptions {
        fast_forward: false,
        ..opts(40)
    };
    let fast = SimOptions {
        fast_forward: true,
        ..slow
    };
    let a = run_aggregated(&c, &LIN, &w, &slow).unwrap();
    let b = run_aggregated(&c, &LIN, &w, &fast).unwrap();
    assert_eq!(a.steps, b.steps);
    assert_agree(&a, &b, 0.005);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Fast-forward must not change the schedule, whatever the policy,
    /// memory pressure or arrival process.
    #[test]
    fn fast_forward_matches_single_stepping(
        isl in 1u32..2000,
        osl in 2u32..200,
        conc in 1u32..24,
        poisson in any::<bool>(),
        rate in 1.0f64..40.0,
        policy in policy(),
        block_size in prop_oneof![Just(1u32), Just(16), Just(32)],
        budget in 256u32..4096,
        kv_tokens in 8000u32..60_000,
        max_seqs in 1u32..32,
        jitter in 0.0f64..0.4,
        seed in any::<u64>(),
    ) {
        let c = SchedulerConfig {
            max_num_seqs: max_seqs,
            max_num_batched_tokens: budget,
            block_size,
            num_kv_blocks: kv_tokens / block_size,
            chunked_prefill: true,
            policy,
            enable_prefix_caching: true,
            decode_reserve: perf_model::sim::ReserveRatio::SGLANG,
        };
        let mut w = if poisson { Workload::poisson(isl, osl, rate) } else { Workload::closed(isl, osl, conc) };
        w.length_jitter = jitter;
        w.shared_prefix = Some(SharedPrefix { tokens: isl / 3, groups: 2 });
        let slow = SimOptions { num_requests: Some(48), fast_forward: false, seed, ..SimOptions::default() };
        let fast = SimOptions { fast_forward: true, ..slow };
        let a = run_aggregated(&c, &LIN, &w, &slow);
        let b = run_aggregated(&c, &LIN, &w, &fast);
        match (a, b) {
            (Ok(a), Ok(b)) => {
                prop_assert_eq!(a.steps, b.steps);
                assert_agree(&a, &b, 0.005);
            }
            (Err(x), Err(y)) => prop_assert_eq!(x, y),
            (a, b) => prop_assert!(false, "{a:?} vs {b:?}"),
        }
    }

    #[test]
    fn disaggregated_stats_are_sane(
        isl in 1u32..3000,
        osl in 1u32..200,
        conc in 1u32..40,
        prefill in 1usize..3,
        decode in 1usize..4,
        xfer in 0.0f64..50.0,
        ff in any::<bool>(),
        n in 1u32..80,
    ) {
        let setup = |policy| EngineSetup { config: cfg(policy), timer: LIN };
        let p = vec![setup(SchedPolicy::PrefillFirst); prefill];
        let d = vec![setup(SchedPolicy::Mixed); decode];
        let o = SimOptions { num_requests: Some(n), fast_forward: ff, ..SimOptions::default() };
        let r = run_disaggregated(&p, &d, &|t: u32| xfer + f64::from(t) * 1e-3, &Workload::closed(isl, osl, conc), &o).unwrap();
        prop_assert_eq!(r.completed, n);
        prop_assert!(r.ttft.min > 0.0);
        let min_xfer = if osl > 1 { xfer } else { 0.0 };
        prop_assert!(r.e2e.min >= r.ttft.min + min_xfer - 1e-9);
        for d in [r.ttft, r.tpot, r.itl, r.e2e] {
            for x in [d.mean, d.std, d.min, d.max, d.p50, d.p99] {
                prop_assert!(x.is_finite() && x >= 0.0);
            }
        }
        prop_assert_eq!(r.tpot.count, if osl > 1 { u64::from(n) } else { 0 });
        prop_assert_eq!(r.itl.count, u64::from(n) * u64::from(osl - 1));
    }
}
