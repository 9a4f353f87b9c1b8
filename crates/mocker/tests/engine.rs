//! The mocker's engine on a real clock, its metrics, traces and timers.

use mocker::engine::{
    self, DisaggMode, EngineConfig, EngineEvent, EngineHandle, GenerateRequest, Generation,
    SubmitError,
};
use mocker::metrics::log_line_kv_capacity;
use mocker::timing::{load_profile_data, ProfileDataTimer, TimingError};
use mocker::trace::TraceError;
use perf_model::sim::{ReserveRatio, SchedPolicy, SchedulerConfig};
use perf_model::{StepBatch, StepTimer};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// `base` ms per step plus `per_prefill_token` ms per prompt token computed.
struct LinearTimer {
    base: f64,
    per_prefill_token: f64,
}

impl StepTimer for LinearTimer {
    fn step_ms(&self, b: &StepBatch) -> f64 {
        self.base + self.per_prefill_token * f64::from(b.prefill_tokens)
    }
}

fn sched(num_kv_blocks: u32) -> SchedulerConfig {
    SchedulerConfig {
        max_num_seqs: 64,
        max_num_batched_tokens: 2048,
        block_size: 16,
        num_kv_blocks,
        chunked_prefill: true,
        policy: SchedPolicy::Mixed,
        enable_prefix_caching: true,
        decode_reserve: ReserveRatio::NONE,
    }
}

fn start(cfg: EngineConfig, base: f64, per_prefill_token: f64) -> EngineHandle {
    engine::spawn(
        cfg,
        Box::new(LinearTimer {
            base,
            per_prefill_token,
        }),
    )
    .expect("engine starts")
}

fn request(prompt: u32, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        prompt_tokens: (0..prompt).collect(),
        max_tokens,
    }
}

/// Reads a generation to its end: arrival time of every event.
async fn collect(mut g: Generation) -> Vec<(EngineEvent, Instant)> {
    let mut out = Vec::new();
    while let Some(ev) = g.next().await {
        out.push((ev, Instant::now()));
    }
    out
}

fn assert_complete(events: &[(EngineEvent, Instant)], n: u32) {
    assert_eq!(events.len(), n as usize);
    for (i, (ev, _)) in events.iter().enumerate() {
        let last = i + 1 == n as usize;
        assert_eq!(
            *ev,
            EngineEvent::Token {
                index: i as u32,
                finished: last
            }
        );
    }
}

#[tokio::test]
async fn streams_every_token_at_the_step_rate() {
    let mut cfg = EngineConfig::new(sched(1024));
    cfg.speedup = 10.0;
    // 50 ms simulated = 5 ms real per step.
    let h = start(cfg, 50.0, 0.0);
    let t0 = Instant::now();
    let events = collect(h.submit(request(100, 41)).unwrap()).await;
    assert_complete(&events, 41);
    let ttft = events[0].1 - t0;
    assert!(
        ttft >= Duration::from_millis(5) && ttft < Duration::from_millis(15),
        "ttft {ttft:?}"
    );
    let itl = (events[40].1 - events[0].1).as_secs_f64() / 40.0;
    assert!((itl - 0.005).abs() < 0.005 * 0.04, "mean itl {itl}");
    let m = h.metrics();
    assert_eq!(m.generation_tokens.load(Ordering::Relaxed), 41);
    assert_eq!(m.prompt_tokens.load(Ordering::Relaxed), 100);
    assert_eq!(m.request_success.load(Ordering::Relaxed), 1);
    assert_eq!(m.ttft.count(), 1);
    assert_eq!(m.itl.count(), 40);
    assert!((m.itl.sum() / 40.0 - 0.005).abs() < 0.005 * 0.04);
}

#[tokio::test]
async fn repeated_prompt_hits_the_prefix_cache() {
    let mut cfg = EngineConfig::new(sched(1024));
    cfg.speedup = 10.0;
    // A 512-token prompt costs 257 ms simulated (26 ms real) uncached.
    let h = start(cfg, 1.0, 0.5);
    let ttft = |events: &[(EngineEvent, Instant)], t0: Instant| events[0].1 - t0;
    let t0 = Instant::now();
    let cold = collect(h.submit(request(512, 2)).unwrap()).await;
    let cold = ttft(&cold, t0);
    let t0 = Instant::now();
    let warm = collect(h.submit(request(512, 2)).unwrap()).await;
    let warm = ttft(&warm, t0);
    assert!(cold >= Duration::from_millis(25), "cold {cold:?}");
    assert!(warm * 3 < cold, "warm {warm:?} vs cold {cold:?}");
    // The last prompt token is always computed: 31 of 32 blocks hit.
    let m = h.metrics();
    assert_eq!(m.prefix_cache_hits.load(Ordering::Relaxed), 496);
    assert_eq!(m.prefix_cache_queries.load(Ordering::Relaxed), 1024);
}

#[tokio::test]
async fn no_prefix_hit_without_prefix_caching() {
    let mut s = sched(1024);
    s.enable_prefix_caching = false;
    let mut cfg = EngineConfig::new(s);
    cfg.speedup = 1000.0;
    let h = start(cfg, 1.0, 0.5);
    for _ in 0..2 {
        collect(h.submit(request(512, 2)).unwrap()).await;
    }
    assert_eq!(h.metrics().prefix_cache_hits.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn refuses_beyond_the_waiting_bound_and_too_long_requests() {
    let mut s = sched(1024);
    // One request runs at a time, so the ones behind it stay waiting.
    s.max_num_seqs = 1;
    let mut cfg = EngineConfig::new(s);
    cfg.max_waiting = 2;
    cfg.max_model_len = 100;
    cfg.speedup = 1000.0;
    let h = start(cfg, 10.0, 0.0);
    let mut first = h.submit(request(10, 90)).unwrap();
    first.next().await.unwrap();
    let a = h.submit(request(10, 5)).unwrap();
    let b = h.submit(request(10, 5)).unwrap();
    match h.submit(request(10, 5)) {
        Err(SubmitError::Overloaded { waiting: 2 }) => {}
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert_eq!(
        h.submit(request(90, 20)).unwrap_err(),
        SubmitError::TooLong {
            prompt: 90,
            max_tokens: 20,
            limit: 100
        }
    );
    drop(first);
    assert_complete(&collect(a).await, 5);
    assert_complete(&collect(b).await, 5);
    // Scheduled requests leave the bounded queue.
    assert_complete(&collect(h.submit(request(10, 5)).unwrap()).await, 5);
}

#[tokio::test]
async fn request_that_can_never_fit_the_kv_pool_is_too_long() {
    let mut cfg = EngineConfig::new(sched(4));
    cfg.max_model_len = 1000;
    let h = start(cfg, 1.0, 0.0);
    assert!(matches!(
        h.submit(request(60, 10)),
        Err(SubmitError::TooLong { limit: 64, .. })
    ));
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(2), "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn dropping_a_generation_aborts_it() {
    let mut cfg = EngineConfig::new(sched(1024));
    cfg.speedup = 10.0;
    let h = start(cfg, 10.0, 0.0);
    let mut g = h.submit(request(64, 10_000)).unwrap();
    assert!(g.next().await.is_some());
    let m = h.metrics();
    assert_eq!(m.num_requests_running.get(), 1.0);
    assert!(m.kv_cache_usage.get() > 0.0);
    drop(g);
    eventually("running back to 0", || {
        m.num_requests_running.get() == 0.0 && m.kv_cache_usage.get() == 0.0
    })
    .await;
    assert_eq!(m.request_aborted.load(Ordering::Relaxed), 1);
    assert_eq!(m.request_success.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn preempts_under_kv_pressure_and_still_completes() {
    // 8 blocks of 16 tokens; each request peaks at 4 blocks, so 4 of them
    // cannot all keep running.
    let mut cfg = EngineConfig::new(sched(8));
    // 1 ms steps: all four arrive long before the first could finish.
    cfg.speedup = 10.0;
    let h = start(cfg, 10.0, 0.0);
    let gens: Vec<Generation> = (0..4)
        .map(|i| {
            h.submit(GenerateRequest {
                prompt_tokens: (0..20).map(|t| t + 100 * i).collect(),
                max_tokens: 40,
            })
            .unwrap()
        })
        .collect();
    for g in gens {
        assert_complete(&collect(g).await, 40);
    }
    let m = h.metrics();
    assert!(m.preemptions.load(Ordering::Relaxed) > 0);
    assert!(h
        .metrics()
        .prometheus_text("m")
        .contains("vllm:num_preemptions_total{model_name=\"m\"} "));
}

#[tokio::test]
async fn shutdown_finishes_in_flight_and_rejects_new() {
    let mut cfg = EngineConfig::new(sched(1024));
    cfg.speedup = 100.0;
    let h = start(cfg, 10.0, 0.0);
    let reader = tokio::spawn(collect(h.submit(request(32, 20)).unwrap()));
    h.shutdown().await;
    assert_eq!(
        h.submit(request(32, 20)).unwrap_err(),
        SubmitError::ShuttingDown
    );
    assert_complete(&reader.await.unwrap(), 20);
    // The driver has ended: profiling is refused.
    assert!(matches!(
        h.start_profile(std::env::temp_dir()).await,
        Err(TraceError::EngineStopped)
    ));
}

#[tokio::test]
async fn disaggregated_roles() {
    let mut cfg = EngineConfig::new(sched(1024));
    cfg.speedup = 100.0;
    cfg.mode = DisaggMode::Prefill;
    let h = start(cfg.clone(), 10.0, 0.0);
    assert_complete(&collect(h.submit(request(32, 20)).unwrap()).await, 1);

    cfg.mode = DisaggMode::Decode;
    // A prompt cost that would show if a decode worker prefilled.
    let h = start(cfg, 10.0, 100.0);
    let t0 = Instant::now();
    let events = collect(h.submit(request(32, 5)).unwrap()).await;
    assert_complete(&events, 5);
    assert!(events[0].1 - t0 < Duration::from_millis(5));
    assert!(events[4].1 - t0 < Duration::from_millis(20));
    assert_complete(&collect(h.submit(request(32, 1)).unwrap()).await, 1);
}

#[tokio::test]
async fn zero_tokens_ends_at_once() {
    let h = start(EngineConfig::new(sched(64)), 1.0, 0.0);
    assert!(collect(h.submit(request(8, 0)).unwrap()).await.is_empty());
}

#[tokio::test]
async fn profile_writes_a_chrome_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = EngineConfig::new(sched(1024));
    cfg.speedup = 10.0;
    let h = start(cfg, 10.0, 0.0);
    assert!(matches!(
        h.stop_profile().await,
        Err(TraceError::NotRunning)
    ));
    let out = dir.path().join("traces");
    h.start_profile(out.clone()).await.unwrap();
    assert!(matches!(
        h.start_profile(out.clone()).await,
        Err(TraceError::AlreadyRunning { .. })
    ));
    let a = h.submit(request(40, 6)).unwrap();
    let id = a.id();
    let b = h.submit(request(40, 6)).unwrap();
    collect(a).await;
    collect(b).await;
    let path = h.stop_profile().await.unwrap();
    assert_eq!(path.parent().unwrap(), out);
    let name = path.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("slaprof-trace-") && name.ends_with(".trace.json"));
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["displayTimeUnit"], "ms");
    let events = doc["traceEvents"].as_array().unwrap();
    let slices: Vec<&serde_json::Value> = events.iter().filter(|e| e["ph"] == "X").collect();
    let steps: Vec<_> = slices.iter().filter(|e| e["name"] == "step").collect();
    // 6 steps if both prompts make the first one, more if the second
    // request reaches the engine later.
    assert!(steps.len() >= 6, "{} steps", steps.len());
    let arg = |s: &serde_json::Value, k: &str| s["args"][k].as_u64().unwrap();
    assert_eq!(
        steps.iter().map(|s| arg(s, "prefill_tokens")).sum::<u64>(),
        80
    );
    assert_eq!(steps.iter().map(|s| arg(s, "decode_seqs")).sum::<u64>(), 10);
    let last = steps.last().unwrap();
    assert_eq!(last["args"]["batch"], "decode");
    assert!(arg(last, "num_requests") >= 1);
    assert!((last["args"]["simulated_ms"].as_f64().unwrap() - 10.0).abs() < 1e-9);
    for phase in ["queued", "prefill", "decode"] {
        assert!(
            slices
                .iter()
                .any(|e| e["tid"] == id && e["name"] == phase && e["dur"].as_f64().is_some()),
            "no {phase} slice for request {id}"
        );
    }
    // Nothing half-written is left behind.
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

#[tokio::test]
async fn metrics_use_vllm_names() {
    let mut cfg = EngineConfig::new(sched(1024));
    cfg.speedup = 1000.0;
    let h = start(cfg, 1.0, 0.0);
    assert_eq!(h.kv_capacity_tokens(), 16 * 1024);
    collect(h.submit(request(16, 3)).unwrap()).await;
    let text = h.metrics().prometheus_text("org/model");
    for name in [
        "vllm:num_requests_running{model_name=\"org/model\"} 0.0",
        "vllm:num_requests_waiting{",
        "vllm:gpu_cache_usage_perc{",
        "vllm:kv_cache_usage_perc{",
        "vllm:prompt_tokens_total{model_name=\"org/model\"} 16",
        "vllm:generation_tokens_total{model_name=\"org/model\"} 3",
        "vllm:request_success_total{model_name=\"org/model\",finished_reason=\"length\"} 1",
        "vllm:num_preemptions_total{",
        "vllm:time_to_first_token_seconds_bucket{model_name=\"org/model\",le=\"+Inf\"} 1",
        "vllm:time_to_first_token_seconds_count{model_name=\"org/model\"} 1",
        "vllm:inter_token_latency_seconds_sum{",
        "vllm:time_per_output_token_seconds_count{model_name=\"org/model\"} 2",
        "vllm:e2e_request_latency_seconds_bucket{",
        "slaprof:kv_cache_capacity_tokens{model_name=\"org/model\"} 16384.0",
        "# HELP slaprof:kv_cache_capacity_tokens The engine's KV-cache capacity in tokens",
        "# TYPE vllm:time_to_first_token_seconds histogram",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}

#[test]
fn kv_capacity_log_lines_read_like_vllm() {
    let s = log_line_kv_capacity(123_456, 4096);
    assert!(s.contains("GPU KV cache size: 123,456 tokens"), "{s}");
    assert!(
        s.contains("Maximum concurrency for 4,096 tokens per request: 30.14x"),
        "{s}"
    );
    assert!(log_line_kv_capacity(999, 1000).contains("size: 999 tokens"));
}

fn write_json_pair(dir: &std::path::Path, decode: serde_json::Value) {
    let prefill = serde_json::json!({
        "prefill_isl": [100, 1000],
        "prefill_ttft": [20.0, 110.0],
        "prefill_thpt_per_gpu": [5000.0, 9000.0],
    });
    std::fs::write(dir.join("prefill_raw_data.json"), prefill.to_string()).unwrap();
    std::fs::write(dir.join("decode_raw_data.json"), decode.to_string()).unwrap();
}

fn decode_json() -> serde_json::Value {
    serde_json::json!({
        "x_kv_usage": [0.1, 0.5, 0.1, 0.5],
        "y_context_length": [1000, 1000, 3000, 3000],
        "z_itl": [10.0, 20.0, 14.0, 30.0],
        "z_thpt_per_gpu": [1.0, 2.0, 3.0, 4.0],
        "max_kv_tokens": 100000,
    })
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn profile_data_timer_interpolates() {
    let dir = tempfile::tempdir().unwrap();
    write_json_pair(dir.path(), decode_json());
    let data = load_profile_data(dir.path()).unwrap();
    let t = ProfileDataTimer::new(&data);
    assert_eq!(t.max_kv_tokens(), 100_000);
    assert!(close(t.ttft_ms(550.0), 65.0));
    // Through the origin below the first point, along the last segment
    // above the last.
    assert!(close(t.ttft_ms(50.0), 10.0));
    assert!(close(t.ttft_ms(2000.0), 210.0));
    let prefill = |tokens: u32, past: u64| StepBatch {
        prefill_tokens: tokens,
        prefill_seqs: 1,
        prefill_past_tokens: past,
        ..StepBatch::default()
    };
    assert!(close(t.step_ms(&prefill(1000, 0)), 110.0));
    // Chunks of one prompt add up to its TTFT.
    let chunked = t.step_ms(&prefill(500, 0)) + t.step_ms(&prefill(500, 500));
    assert!(close(chunked, 110.0));

    // Between the rows y = 1000 and y = 3000 at usage 0.3: 15 and 22.
    assert!(close(t.itl_ms(0.3, 2000.0), 18.5));
    assert!(close(t.itl_ms(0.9, 5000.0), 30.0));
    assert!(close(t.itl_ms(0.0, 10.0), 10.0));
    // 15 sequences of mean context 2000 hold 30% of the 100k-token pool.
    let decode = StepBatch {
        decode_seqs: 15,
        decode_kv_tokens: 30_000,
        ..StepBatch::default()
    };
    assert!(close(t.step_ms(&decode), 18.5));
    let mixed = StepBatch {
        prefill_tokens: 1000,
        prefill_seqs: 1,
        ..decode
    };
    assert!(close(t.step_ms(&mixed), 128.5));
}

#[test]
fn profile_data_errors_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    match load_profile_data(dir.path()) {
        Err(TimingError::NotFound { .. }) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    let mut d = decode_json();
    d.as_object_mut().unwrap().remove("z_itl");
    write_json_pair(dir.path(), d);
    let err = load_profile_data(dir.path()).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, TimingError::MissingKey { key: "z_itl", .. }),
        "{msg}"
    );
    assert!(
        msg.contains("decode_raw_data.json") && msg.contains("z_itl"),
        "{msg}"
    );

    let mut d = decode_json();
    d.as_object_mut().unwrap().remove("max_kv_tokens");
    write_json_pair(dir.path(), d);
    assert!(matches!(
        load_profile_data(dir.path()),
        Err(TimingError::MissingKey {
            key: "max_kv_tokens",
            ..
        })
    ));
}

#[test]
fn profile_data_reads_the_profilers_npz_pair() {
    use ndarray::Array1;
    use ndarray_npy::NpzWriter;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("selected_prefill_interpolation");
    let d = dir.path().join("selected_decode_interpolation");
    std::fs::create_dir_all(&p).unwrap();
    std::fs::create_dir_all(&d).unwrap();
    let mut w = NpzWriter::new(std::fs::File::create(p.join("raw_data.npz")).unwrap());
    w.add_array("prefill_isl", &Array1::from(vec![100i64, 1000]))
        .unwrap();
    w.add_array("prefill_ttft", &Array1::from(vec![20.0f64, 110.0]))
        .unwrap();
    w.finish().unwrap();
    let mut w = NpzWriter::new(std::fs::File::create(d.join("raw_data.npz")).unwrap());
    for (k, v) in [
        ("x_kv_usage", vec![0.1, 0.5, 0.1, 0.5]),
        ("y_context_length", vec![1000.0, 1000.0, 3000.0, 3000.0]),
        ("z_itl", vec![10.0, 20.0, 14.0, 30.0]),
    ] {
        w.add_array(k, &Array1::from(v)).unwrap();
    }
    w.add_array("max_kv_tokens", &Array1::from(vec![100_000i64]))
        .unwrap();
    w.finish().unwrap();
    // The npz pair wins over a JSON pair in the same directory.
    let mut other = decode_json();
    other["max_kv_tokens"] = serde_json::json!(5);
    write_json_pair(dir.path(), other);

    let data = load_profile_data(dir.path()).unwrap();
    assert_eq!(data.max_kv_tokens, 100_000);
    assert_eq!(data.prefill_isl, vec![100.0, 1000.0]);
    let t = ProfileDataTimer::new(&data);
    assert!(close(t.itl_ms(0.3, 2000.0), 18.5));
    assert!(close(t.ttft_ms(550.0), 65.0));
}
