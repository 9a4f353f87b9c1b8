//! The mocker's HTTP API over real HTTP on 127.0.0.1 (port 0), with an
//! engine driven by a fixed step time.

use mocker::engine::{spawn, EngineConfig, EngineHandle};
use mocker::faults::FaultConfig;
use mocker::server::{app, token_text, AppState, ServerConfig, RETRY_AFTER_SECS};
use mocker::tokenizer::{rule_encode, Tokenizer};
use perf_model::sim::SchedulerConfig;
use perf_model::{StepBatch, StepTimer};
use serde_json::{json, Value};
use spec::Backend;

const MODEL: &str = "test-model";
const MAX_MODEL_LEN: u32 = 4096;

struct Fixed(f64);

impl StepTimer for Fixed {
    fn step_ms(&self, _batch: &StepBatch) -> f64 {
        self.0
    }
}

struct Server {
    base: String,
    engine: EngineHandle,
    client: reqwest::Client,
}

struct Opts {
    step_ms: f64,
    speedup: f64,
    max_waiting: usize,
    max_num_seqs: u32,
    faults: FaultConfig,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            step_ms: 2.0,
            speedup: 20.0,
            max_waiting: 1000,
            max_num_seqs: 64,
            faults: FaultConfig::default(),
        }
    }
}

async fn start(o: Opts) -> Server {
    let mut sched = SchedulerConfig::preset(Backend::Vllm, 64 * 1024);
    sched.max_num_seqs = o.max_num_seqs;
    let mut cfg = EngineConfig::new(sched);
    cfg.speedup = o.speedup;
    cfg.max_waiting = o.max_waiting;
    cfg.max_model_len = MAX_MODEL_LEN;
    let engine = spawn(cfg, Box::new(Fixed(o.step_ms))).expect("engine starts");
    let mut scfg = ServerConfig::new(MODEL, MAX_MODEL_LEN);
    scfg.faults = o.faults;
    let state = AppState::new(engine.clone(), Tokenizer::Rule, scfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(mocker::server::low_latency_listener(listener), app(state))
            .await
            .unwrap()
    });
    Server {
        base: format!("http://{addr}"),
        engine,
        client: reqwest::Client::new(),
    }
}

impl Server {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap()
    }
}

/// The JSON payloads of an SSE body, and whether it ended with `[DONE]`.
fn sse_events(body: &str) -> (Vec<Value>, bool) {
    let mut events = Vec::new();
    let mut done = false;
    for frame in body.split("\n\n").filter(|f| !f.trim().is_empty()) {
        let data = frame.strip_prefix("data: ").expect("SSE data frame");
        assert!(!done, "nothing may follow [DONE]");
        if data == "[DONE]" {
            done = true;
        } else {
            events.push(serde_json::from_str(data).expect("chunk is JSON"));
        }
    }
    (events, done)
}

fn expected_text(n: u32) -> String {
    (0..n).map(token_text).collect()
}

async fn assert_error(resp: reqwest::Response, status: u16, kind: &str) -> Value {
    assert_eq!(resp.status().as_u16(), status);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"]["code"], status, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_and_health() {
    let s = start(Opts::default()).await;
    assert_eq!(s.get("/health").await.status(), 200);
    let v: Value = s.get("/v1/models").await.json().await.unwrap();
    assert_eq!(v["object"], "list");
    assert_eq!(v["data"][0]["id"], MODEL);
    assert_eq!(v["data"][0]["object"], "model");
    assert_eq!(v["data"][0]["max_model_len"], MAX_MODEL_LEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_non_streaming_counts_tokens() {
    let s = start(Opts::default()).await;
    let prompt = "The quick brown fox jumps over the lazy dog.";
    let r = s
        .post(
            "/v1/completions",
            json!({"model": MODEL, "prompt": prompt, "max_tokens": 7, "temperature": 0.7, "ignore_eos": true, "min_tokens": 7}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"], MODEL);
    assert_eq!(v["choices"][0]["text"], expected_text(7));
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let n = rule_encode(prompt).len() as u64;
    assert_eq!(v["usage"]["prompt_tokens"], n);
    assert_eq!(v["usage"]["completion_tokens"], 7);
    assert_eq!(v["usage"]["total_tokens"], n + 7);

    // No max_tokens: OpenAI's legacy default of 16.
    let v: Value = s
        .post("/v1/completions", json!({"prompt": "hi"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_token_ids_and_batches() {
    let s = start(Opts::default()).await;
    let v: Value = s
        .post(
            "/v1/completions",
            json!({"model": MODEL, "prompt": [[1, 2, 3], [4, 5]], "max_tokens": 3}),
        )
        .await
        .json()
        .await
        .unwrap();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 6);

    let v: Value = s
        .post(
            "/v1/completions",
            json!({"prompt": ["a b", "c d e"], "max_tokens": 2, "stream": true, "stream_options": {"include_usage": true}}),
        )
        .await
        .text()
        .await
        .map(|t| {
            let (events, done) = sse_events(&t);
            assert!(done);
            events.last().unwrap().clone()
        })
        .unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_streaming() {
    let s = start(Opts::default()).await;
    let r = s
        .post(
            "/v1/completions",
            json!({"model": MODEL, "prompt": "hello there", "max_tokens": 5, "stream": true,
                   "stream_options": {"include_usage": true}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (events, done) = sse_events(&r.text().await.unwrap());
    assert!(done);
    let tokens: Vec<&Value> = events
        .iter()
        .filter(|e| !e["choices"].as_array().unwrap().is_empty())
        .collect();
    assert_eq!(tokens.len(), 5, "one chunk per token");
    let text: String = tokens
        .iter()
        .map(|e| e["choices"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, expected_text(5));
    assert!(tokens[..4]
        .iter()
        .all(|e| e["choices"][0]["finish_reason"].is_null()));
    assert_eq!(tokens[4]["choices"][0]["finish_reason"], "length");
    let usage = &events.last().unwrap()["usage"];
    assert_eq!(usage["prompt_tokens"], rule_encode("hello there").len());
    assert_eq!(usage["completion_tokens"], 5);

    // Without include_usage, no usage chunk.
    let t = s
        .post(
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": 2, "stream": true}),
        )
        .await
        .text()
        .await
        .unwrap();
    let (events, done) = sse_events(&t);
    assert!(done);
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.get("usage").is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_non_streaming_and_streaming() {
    let s = start(Opts::default()).await;
    let messages = json!([
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Say hi"}]}
    ]);
    let prompt_tokens = Tokenizer::Rule
        .encode_chat([("system", "You are terse."), ("user", "Say hi")])
        .unwrap()
        .len();

    let v: Value = s
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": messages, "max_completion_tokens": 4}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    assert_eq!(v["choices"][0]["message"]["content"], expected_text(4));
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    assert_eq!(v["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(v["usage"]["completion_tokens"], 4);

    let t = s
        .post(
            "/v1/chat/completions",
            json!({"model": MODEL, "messages": messages, "max_tokens": 3, "stream": true,
                   "stream_options": {"include_usage": true}}),
        )
        .await
        .text()
        .await
        .unwrap();
    let (events, done) = sse_events(&t);
    assert!(done);
    assert_eq!(events.len(), 4, "3 token chunks and a usage chunk");
    assert!(events
        .iter()
        .all(|e| e["object"] == "chat.completion.chunk"));
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert!(events[1]["choices"][0]["delta"].get("role").is_none());
    let content: String = events[..3]
        .iter()
        .map(|e| e["choices"][0]["delta"]["content"].as_str().unwrap())
        .collect();
    assert_eq!(content, expected_text(3));
    assert_eq!(events[2]["choices"][0]["finish_reason"], "length");
    assert_eq!(events[3]["choices"].as_array().unwrap().len(), 0);
    assert_eq!(events[3]["usage"]["prompt_tokens"], prompt_tokens);
    assert_eq!(events[3]["usage"]["completion_tokens"], 3);
    assert_eq!(events[3]["usage"]["total_tokens"], prompt_tokens + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_have_vllm_names_and_kv_capacity() {
    let s = start(Opts::default()).await;
    let r = s
        .post(
            "/v1/completions",
            json!({"prompt": "a b c", "max_tokens": 4}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = s.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = r.text().await.unwrap();
    for name in [
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds",
        "vllm:inter_token_latency_seconds",
        "vllm:e2e_request_latency_seconds",
        "vllm:prompt_tokens_total",
        "vllm:generation_tokens_total",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    let cap = s.engine.kv_capacity_tokens();
    assert!(cap > 0);
    let line = text
        .lines()
        .find(|l| l.starts_with("slaprof:kv_cache_capacity_tokens{"))
        .expect("capacity gauge");
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert_eq!(value, cap as f64);
    assert!(line.contains(&format!("model_name=\"{MODEL}\"")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests() {
    let s = start(Opts::default()).await;
    // Malformed JSON.
    let r = s
        .client
        .post(format!("{}/v1/completions", s.base))
        .header("content-type", "application/json")
        .body("{\"prompt\": ")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "BadRequestError").await;

    for (path, body, param) in [
        ("/v1/completions", json!({"model": MODEL}), "prompt"),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": "many"}),
            "max_tokens",
        ),
        ("/v1/completions", json!({"prompt": "x", "n": 3}), "n"),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": 2, "min_tokens": 3}),
            "min_tokens",
        ),
        ("/v1/chat/completions", json!({"model": MODEL}), "messages"),
        (
            "/v1/chat/completions",
            json!({"messages": [{"content": "no role"}]}),
            "messages[0].role",
        ),
    ] {
        let v = assert_error(s.post(path, body).await, 400, "BadRequestError").await;
        assert_eq!(v["error"]["param"], param, "{v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(param),
            "{v}"
        );
    }

    // Unknown model: vLLM's 404.
    let v = assert_error(
        s.post("/v1/completions", json!({"model": "gpt-9", "prompt": "x"}))
            .await,
        404,
        "NotFoundError",
    )
    .await;
    assert_eq!(v["error"]["message"], "The model `gpt-9` does not exist.");
    assert_error(
        s.post(
            "/v1/chat/completions",
            json!({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}),
        )
        .await,
        404,
        "NotFoundError",
    )
    .await;

    // Prompt plus max_tokens over the context.
    let v = assert_error(
        s.post(
            "/v1/completions",
            json!({"prompt": [1, 2, 3], "max_tokens": MAX_MODEL_LEN}),
        )
        .await,
        400,
        "BadRequestError",
    )
    .await;
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("maximum context length is 4096 tokens") && msg.contains("4099"),
        "{msg}"
    );
    let long: Vec<u32> = vec![7; MAX_MODEL_LEN as usize + 1];
    assert_error(
        s.post("/v1/completions", json!({"prompt": long, "max_tokens": 1}))
            .await,
        400,
        "BadRequestError",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_503_with_retry_after() {
    // One running request at a time, slow steps, and room for one waiting.
    let s = start(Opts {
        step_ms: 20.0,
        speedup: 1.0,
        max_waiting: 1,
        max_num_seqs: 1,
        ..Opts::default()
    })
    .await;
    let s = std::sync::Arc::new(s);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.post(
                "/v1/completions",
                json!({"prompt": "load", "max_tokens": 10}),
            )
            .await
        }));
    }
    let (mut ok, mut busy) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status().as_u16() {
            200 => ok += 1,
            503 => {
                assert_eq!(
                    r.headers()["retry-after"].to_str().unwrap(),
                    RETRY_AFTER_SECS.to_string()
                );
                assert_error(r, 503, "ServiceUnavailableError").await;
                busy += 1;
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1 && busy >= 1, "ok {ok} busy {busy}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_error_rate_one_is_500() {
    let s = start(Opts {
        faults: FaultConfig {
            error_rate: 1.0,
            ..FaultConfig::default()
        },
        ..Opts::default()
    })
    .await;
    for path in ["/v1/completions", "/v1/chat/completions"] {
        let body =
            json!({"prompt": "x", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2});
        assert_error(s.post(path, body).await, 500, "InternalServerError").await;
    }
    // Only generation is affected.
    assert_eq!(s.get("/v1/models").await.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_cut_stream_and_stall() {
    use futures_util::StreamExt;
    let s = start(Opts {
        faults: FaultConfig {
            cut_stream_after: Some(3),
            stall_ms: 200,
            ..FaultConfig::default()
        },
        ..Opts::default()
    })
    .await;
    let t0 = std::time::Instant::now();
    let r = s
        .post(
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": 10, "stream": true}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let mut body = Vec::new();
    let mut stream = r.bytes_stream();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => body.extend_from_slice(&b),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(t0.elapsed() >= std::time::Duration::from_millis(200));
    assert!(failed, "the stream must end with a transport error");
    let text = String::from_utf8(body).unwrap();
    assert!(!text.contains("[DONE]"));
    assert_eq!(text.matches("data: ").count(), 3, "{text}");

    // Non-streamed answers are whole.
    let v: Value = s
        .post("/v1/completions", json!({"prompt": "x", "max_tokens": 10}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_stop_profile_writes_a_trace() {
    let s = start(Opts::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let r = s
        .post(
            "/engine/start_profile",
            json!({"output_dir": dir.path().to_str().unwrap()}),
        )
        .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = s
        .post(
            "/v1/completions",
            json!({"prompt": "profile me", "max_tokens": 4}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .post(format!("{}/engine/stop_profile", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let v: Value = serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    let events = v["traceEvents"]
        .as_array()
        .or_else(|| v.as_array())
        .expect("trace events");
    assert!(!events.is_empty());

    // Stopping twice is a client error.
    let r = s
        .client
        .post(format!("{}/engine/stop_profile", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}
