//! Fidelity: does the mocker, driven over real HTTP by streaming clients on
//! the same machine, deliver the TTFT and ITL the serving simulator predicts?
//!
//! The server (`mocker::server::app` on 127.0.0.1:0) runs in-process with the
//! performance model's timer for Qwen/Qwen3-8B on one H100 SXM (vLLM, TP1).
//! A closed loop of `c` clients (c = 1, 8, 64) sends streaming completions
//! with distinct token-id prompts; each client times TTFT (request sent to
//! the first SSE data chunk) and ITL (gaps between content chunks). The
//! medians are compared with `perf_model::sim::run_aggregated` for the same
//! scheduler, timer and closed-loop workload (all `c` requests arrive at
//! once at the start, like the benchmark's first burst), divided by the
//! speedup. Target: |error| within 3 % of the median.
//!
//! Run: `cargo bench -p mocker --bench fidelity`.

use futures_util::StreamExt;
use mocker::engine::{spawn, EngineConfig};
use mocker::server::{app, low_latency_listener, AppState, ServerConfig};
use mocker::tokenizer::Tokenizer;
use perf_model::calibration::Calibration;
use perf_model::sim::{run_aggregated, SchedulerConfig, SimOptions, Workload};
use perf_model::StepCostModel;
use spec::{Backend, KvDtype, ParallelLayout};
use std::time::Instant;

const MODEL: &str = "Qwen/Qwen3-8B";
const MAX_MODEL_LEN: u32 = 8192;
const ISL: u32 = 512;
const OSL: u32 = 64;
const TARGET_PCT: f64 = 3.0;

fn timer() -> (StepCostModel, SchedulerConfig) {
    let model = spec::catalog::find(MODEL).expect("model in the catalog");
    let system = spec::systems::find("h100_sxm").expect("system in the catalog");
    let mut quant = model.native_quant;
    if quant.kv != KvDtype::Fp8 {
        quant.kv = quant.gemm.default_kv_dtype();
    }
    let (t, s, _) = mocker::timing::perf_model_engine(
        &model,
        &system,
        Backend::Vllm,
        quant,
        ParallelLayout::tp(1),
        Calibration::builtin(),
    )
    .expect("performance model");
    (t, s)
}

fn median(mut v: Vec<f64>) -> f64 {
    assert!(!v.is_empty(), "no samples");
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Requests per client so that a cell runs a few seconds.
fn requests_per_client(speedup: f64, conc: u32) -> u32 {
    match (speedup >= 10.0, conc) {
        (false, 1) => 8,
        (false, 8) => 5,
        (false, _) => 3,
        (true, 1) => 40,
        (true, 8) => 16,
        (true, _) => 8,
    }
}

struct Cell {
    health_rtt_ms: f64,
    /// TTFT min / p50 / p90 / max, measured then simulated.
    ttft_spread: [[f64; 4]; 2],
    ttft_ms: f64,
    itl_ms: f64,
    sim_ttft_ms: f64,
    sim_itl_ms: f64,
    wall_s: f64,
    requests: u32,
}

async fn cell(speedup: f64, conc: u32) -> Cell {
    let (t, sched) = timer();
    let mut cfg = EngineConfig::new(sched);
    cfg.speedup = speedup;
    cfg.max_model_len = MAX_MODEL_LEN;
    let engine = spawn(cfg, Box::new(t)).expect("engine starts");
    let state = AppState::new(
        engine.clone(),
        Tokenizer::Rule,
        ServerConfig::new(MODEL, MAX_MODEL_LEN),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        axum::serve(low_latency_listener(listener), app(state))
            .await
            .unwrap()
    });
    let url = format!("http://{addr}/v1/completions");
    let per_client = requests_per_client(speedup, conc);
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(conc as usize)
        .build()
        .unwrap();
    // Warm the connection pool so no request of the run pays a TCP connect
    // the simulator does not model.
    let warm: Vec<_> = (0..conc)
        .map(|_| {
            let (client, url) = (client.clone(), format!("http://{addr}/health"));
            tokio::spawn(async move { client.get(url).send().await.unwrap().bytes().await })
        })
        .collect();
    for w in warm {
        w.await.unwrap().unwrap();
    }
    // The HTTP floor: a `GET /health` round trip on a warm connection.
    let mut rtt = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        client
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        rtt.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let health_rtt_ms = median(rtt);
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..conc)
        .map(|c| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let (mut ttft, mut itl) = (Vec::new(), Vec::new());
                // Bodies built up front: a client turns a finished request
                // into the next one as fast as it can, like the simulator's
                // closed loop (which does so in zero time).
                let bodies: Vec<Vec<u8>> = (0..per_client)
                    .map(|r| {
                        // Distinct first tokens: no prefix-cache hits, as in
                        // the simulator's workload.
                        let k = c * per_client + r;
                        let prompt: Vec<u32> =
                            (0..ISL).map(|i| 1 + (k * ISL + i) % 100_000).collect();
                        serde_json::to_vec(&serde_json::json!({
                            "model": MODEL,
                            "prompt": prompt,
                            "max_tokens": OSL,
                            "min_tokens": OSL,
                            "ignore_eos": true,
                            "stream": true,
                        }))
                        .unwrap()
                    })
                    .collect();
                for (r, body) in bodies.into_iter().enumerate() {
                    let sent = Instant::now();
                    let resp = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert!(resp.status().is_success(), "status {}", resp.status());
                    let mut stream = resp.bytes_stream();
                    let mut arrivals = Vec::with_capacity(OSL as usize);
                    let mut carry = Vec::new();
                    while let Some(chunk) = stream.next().await {
                        let now = Instant::now();
                        carry.extend_from_slice(&chunk.unwrap());
                        // Complete SSE events end with a blank line.
                        while let Some(end) = carry.windows(2).position(|w| w == b"\n\n") {
                            let event: Vec<u8> = carry.drain(..end + 2).collect();
                            if event.starts_with(b"data: ") && !event.starts_with(b"data: [DONE]") {
                                arrivals.push(now);
                            }
                        }
                    }
                    assert_eq!(arrivals.len(), OSL as usize, "content chunks");
                    if r == 0 {
                        // The first burst: left out here and in the
                        // simulator (its warmup), see `WARMUP`.
                        continue;
                    }
                    ttft.push((arrivals[0] - sent).as_secs_f64() * 1e3);
                    itl.extend(
                        arrivals
                            .windows(2)
                            .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3),
                    );
                }
                (ttft, itl)
            })
        })
        .collect();
    let (mut ttft, mut itl) = (Vec::new(), Vec::new());
    for t in tasks {
        let (a, b) = t.await.unwrap();
        ttft.extend(a);
        itl.extend(b);
    }
    let wall_s = t0.elapsed().as_secs_f64();
    server.abort();
    engine.shutdown().await;

    let (t, sched) = timer();
    let requests = conc * per_client;
    let sim = run_aggregated(
        &sched,
        &t,
        &Workload::closed(ISL, OSL, conc),
        &SimOptions {
            num_requests: Some(requests),
            warmup_requests: conc,
            fast_forward: false,
            ..Default::default()
        },
    )
    .expect("simulation");
    let mut sorted = ttft.clone();
    sorted.sort_by(f64::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    Cell {
        health_rtt_ms,
        ttft_spread: [
            [q(0.0), q(0.5), q(0.9), q(1.0)],
            [sim.ttft.min, sim.ttft.p50, sim.ttft.p90, sim.ttft.max].map(|v| v / speedup),
        ],
        ttft_ms: median(ttft),
        itl_ms: median(itl),
        sim_ttft_ms: sim.ttft.p50 / speedup,
        sim_itl_ms: sim.itl.p50 / speedup,
        wall_s,
        requests,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("fidelity: {MODEL} on h100_sxm, vllm tp1, ISL {ISL}, OSL {OSL}, streaming over HTTP; target |median error| <= {TARGET_PCT}%");
    let mut all_met = true;
    for speedup in [1.0, 10.0] {
        for conc in [1u32, 8, 64] {
            let c = rt.block_on(cell(speedup, conc));
            let [m, s] = c.ttft_spread;
            println!(
                "  speedup={speedup} concurrency={conc} TTFT min/p50/p90/max ms: measured {:.2}/{:.2}/{:.2}/{:.2}, simulated {:.2}/{:.2}/{:.2}/{:.2}; GET /health round trip {:.3} ms",
                m[0], m[1], m[2], m[3], s[0], s[1], s[2], s[3], c.health_rtt_ms
            );
            let e_ttft = (c.ttft_ms / c.sim_ttft_ms - 1.0) * 100.0;
            let e_itl = (c.itl_ms / c.sim_itl_ms - 1.0) * 100.0;
            for (what, measured, sim, err) in [
                ("TTFT", c.ttft_ms, c.sim_ttft_ms, e_ttft),
                ("ITL", c.itl_ms, c.sim_itl_ms, e_itl),
            ] {
                let met = err.abs() <= TARGET_PCT;
                all_met &= met;
                println!(
                    "FIGURE fidelity speedup={speedup} concurrency={conc} {what}: median {measured:.3} ms vs simulated {sim:.3} ms ({:+.3} ms), |error| {:.2}% (target <= {TARGET_PCT}%) {} [{} requests, {:.1} s]",
                    measured - sim,
                    err.abs(),
                    if met { "met" } else { "MISSED" },
                    c.requests,
                    c.wall_s,
                );
            }
        }
    }
    println!(
        "fidelity: {}",
        if all_met { "all met" } else { "some MISSED" }
    );
}
