//! Scheduler behaviour a client can observe over HTTP: a repeated prompt
//! hits the prefix cache and gets its first token sooner, and KV pressure
//! preempts requests without losing any of them.

use mocker::engine::{spawn, EngineConfig};
use mocker::server::{app, AppState, ServerConfig};
use mocker::tokenizer::Tokenizer;
use perf_model::sim::SchedulerConfig;
use perf_model::{StepBatch, StepTimer};
use serde_json::{json, Value};
use spec::Backend;
use std::time::{Duration, Instant};

const MODEL: &str = "test-model";

/// Prefill costs 0.02 ms per token, decode 1 ms per step: a long prompt's
/// prefill dominates its TTFT, so skipping cached blocks shows.
struct Proportional;

impl StepTimer for Proportional {
    fn step_ms(&self, b: &StepBatch) -> f64 {
        1.0 + 0.02 * f64::from(b.prefill_tokens)
    }
}

struct Server {
    base: String,
    client: reqwest::Client,
}

async fn start(kv_tokens: u64, prefix_caching: bool) -> Server {
    let mut sched = SchedulerConfig::preset(Backend::Vllm, kv_tokens);
    sched.enable_prefix_caching = prefix_caching;
    let mut cfg = EngineConfig::new(sched);
    cfg.speedup = 2.0;
    cfg.max_model_len = 8192;
    let engine = spawn(cfg, Box::new(Proportional)).expect("engine starts");
    let state = AppState::new(engine, Tokenizer::Rule, ServerConfig::new(MODEL, 8192));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(mocker::server::low_latency_listener(listener), app(state))
            .await
            .unwrap()
    });
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
    }
}

impl Server {
    /// Streams a completion of `prompt` token ids; returns the time to the
    /// first chunk and the usage the server reported.
    async fn stream(&self, prompt: &[u32], max_tokens: u32) -> (Duration, Value) {
        let sent = Instant::now();
        let mut resp = self
            .client
            .post(format!("{}/v1/completions", self.base))
            .json(&json!({
                "model": MODEL, "prompt": prompt, "max_tokens": max_tokens,
                "stream": true, "stream_options": {"include_usage": true}
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let mut ttft = None;
        let mut body = String::new();
        while let Some(chunk) = resp.chunk().await.unwrap() {
            ttft.get_or_insert_with(|| sent.elapsed());
            body.push_str(&String::from_utf8_lossy(&chunk));
        }
        assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
        let usage = body
            .split("\n\n")
            .filter_map(|f| f.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str::<Value>(d).unwrap())
            .find(|v| !v["usage"].is_null())
            .map(|v| v["usage"].clone())
            .expect("usage chunk");
        (ttft.unwrap(), usage)
    }

    async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with(name) && !l.starts_with(&format!("{name}_")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }
}

fn prompt(seed: u32, len: u32) -> Vec<u32> {
    (0..len).map(|i| seed * 100_000 + i).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_prompt_hits_the_prefix_cache_and_starts_sooner() {
    let s = start(64 * 1024, true).await;
    let long = prompt(1, 4000);
    // 4000 prompt tokens: about 81 ms of prefill (41 ms at speedup 2).
    let (cold, usage) = s.stream(&long, 4).await;
    assert_eq!(usage["prompt_tokens"], 4000);
    let (warm, usage) = s.stream(&long, 4).await;
    assert_eq!(usage["prompt_tokens"], 4000);
    assert!(
        warm.as_secs_f64() < 0.5 * cold.as_secs_f64(),
        "cached prompt TTFT {warm:?} not well below the cold {cold:?}"
    );
    assert!(s.metric("vllm:prefix_cache_hits_total").await > 0.0);
    // A different prompt of the same length pays the full prefill again.
    let (other, _) = s.stream(&prompt(2, 4000), 4).await;
    assert!(other > warm * 2, "{other:?} vs {warm:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_prefix_caching_off_a_repeat_costs_the_same() {
    let s = start(64 * 1024, false).await;
    let long = prompt(3, 4000);
    let (cold, _) = s.stream(&long, 4).await;
    let (again, _) = s.stream(&long, 4).await;
    assert!(
        again.as_secs_f64() > 0.7 * cold.as_secs_f64(),
        "{again:?} vs {cold:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_pressure_preempts_but_every_request_completes() {
    // 1024 KV tokens; 8 requests of 100 + 120 tokens need 1760.
    let s = std::sync::Arc::new(start(1024, false).await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.stream(&prompt(10 + i, 100), 120).await
        }));
    }
    for t in tasks {
        let (_, usage) = t.await.unwrap();
        assert_eq!(usage["prompt_tokens"], 100);
        assert_eq!(usage["completion_tokens"], 120);
    }
    assert!(s.metric("vllm:num_preemptions_total").await >= 1.0);
    assert_eq!(s.metric("vllm:num_requests_running").await, 0.0);
}
