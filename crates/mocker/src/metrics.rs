//! The engine's Prometheus metrics under vLLM's names, so dashboards, the
//! planner and profilers written for vLLM read the mocker unchanged.
//!
//! Latencies are real elapsed seconds as a client sees them (not simulated
//! time), measured by the engine's driver when it dispatches each token.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// vLLM's TTFT buckets.
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
];
/// vLLM's per-token buckets with three finer ones in front: at a speedup the
/// mocker's ITLs fall well under vLLM's first bucket of 10 ms.
const ITL_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
    5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
/// vLLM's end-to-end buckets with finer ones in front, for the same reason.
const E2E_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
    60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0,
];

/// A lock-free Prometheus histogram (one writer in practice: the driver).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// Per bucket (not cumulative), plus one for +Inf.
    counts: Vec<AtomicU64>,
    sum_bits: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Self {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_bits: AtomicU64::new(0f64.to_bits()),
        }
    }

    pub fn observe(&self, v: f64) {
        let i = self.bounds.partition_point(|&b| b < v);
        self.counts[i].fetch_add(1, Relaxed);
        let _ = self.sum_bits.fetch_update(Relaxed, Relaxed, |b| {
            Some((f64::from_bits(b) + v).to_bits())
        });
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum_bits.load(Relaxed))
    }

    fn render(&self, out: &mut String, name: &str, help: &str, labels: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut acc = 0u64;
        for (i, b) in self.bounds.iter().enumerate() {
            acc += self.counts[i].load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b:?}\"}} {acc}");
        }
        acc += self.counts[self.bounds.len()].load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {acc}");
        let _ = writeln!(out, "{name}_sum{{{labels}}} {:?}", self.sum());
        let _ = writeln!(out, "{name}_count{{{labels}}} {acc}");
    }
}

/// A float gauge stored as bits so it can be shared without a lock.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Relaxed);
    }
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Relaxed))
    }
}

/// Counters, gauges and histograms of one engine.
#[derive(Debug)]
pub struct Metrics {
    pub num_requests_running: Gauge,
    pub num_requests_waiting: Gauge,
    /// Fraction (0..1) of KV blocks held by requests.
    pub kv_cache_usage: Gauge,
    pub kv_capacity_tokens: Gauge,
    pub prompt_tokens: AtomicU64,
    pub generation_tokens: AtomicU64,
    /// Requests that generated all their tokens.
    pub request_success: AtomicU64,
    /// Requests dropped by their client before finishing.
    pub request_aborted: AtomicU64,
    pub preemptions: AtomicU64,
    /// Prompt tokens looked up in the prefix cache, and those found.
    pub prefix_cache_queries: AtomicU64,
    pub prefix_cache_hits: AtomicU64,
    pub ttft: Histogram,
    pub itl: Histogram,
    pub e2e: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(0)
    }
}

impl Metrics {
    pub fn new(kv_capacity_tokens: u64) -> Metrics {
        let m = Metrics {
            num_requests_running: Gauge::default(),
            num_requests_waiting: Gauge::default(),
            kv_cache_usage: Gauge::default(),
            kv_capacity_tokens: Gauge::default(),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            request_success: AtomicU64::new(0),
            request_aborted: AtomicU64::new(0),
            preemptions: AtomicU64::new(0),
            prefix_cache_queries: AtomicU64::new(0),
            prefix_cache_hits: AtomicU64::new(0),
            ttft: Histogram::new(TTFT_BUCKETS),
            itl: Histogram::new(ITL_BUCKETS),
            e2e: Histogram::new(E2E_BUCKETS),
        };
        m.kv_capacity_tokens.set(kv_capacity_tokens as f64);
        m
    }

    /// The Prometheus text exposition (format 0.0.4), every sample labelled
    /// `model_name`.
    pub fn prometheus_text(&self, model_name: &str) -> String {
        let escaped = model_name
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let labels = format!("model_name=\"{escaped}\"");
        let mut out = String::with_capacity(8192);
        let gauge = |out: &mut String, name: &str, help: &str, v: f64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name}{{{labels}}} {v:?}");
        };
        gauge(
            &mut out,
            "vllm:num_requests_running",
            "Number of requests in model execution batches.",
            self.num_requests_running.get(),
        );
        gauge(
            &mut out,
            "vllm:num_requests_waiting",
            "Number of requests waiting to be processed.",
            self.num_requests_waiting.get(),
        );
        let usage = self.kv_cache_usage.get();
        gauge(
            &mut out,
            "vllm:gpu_cache_usage_perc",
            "GPU KV-cache usage. 1 means 100 percent usage.",
            usage,
        );
        gauge(
            &mut out,
            "vllm:kv_cache_usage_perc",
            "KV-cache usage. 1 means 100 percent usage.",
            usage,
        );
        gauge(
            &mut out,
            "slaprof:kv_cache_capacity_tokens",
            "The engine's KV-cache capacity in tokens (vLLM's \"GPU KV cache size\").",
            self.kv_capacity_tokens.get(),
        );
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
        };
        counter(
            &mut out,
            "vllm:prompt_tokens_total",
            "Number of prefill tokens processed.",
            self.prompt_tokens.load(Relaxed),
        );
        counter(
            &mut out,
            "vllm:generation_tokens_total",
            "Number of generation tokens processed.",
            self.generation_tokens.load(Relaxed),
        );
        counter(
            &mut out,
            "vllm:num_preemptions_total",
            "Cumulative number of preemption from the engine.",
            self.preemptions.load(Relaxed),
        );
        counter(
            &mut out,
            "vllm:prefix_cache_queries_total",
            "Prefix cache queries, in terms of number of queried tokens.",
            self.prefix_cache_queries.load(Relaxed),
        );
        counter(
            &mut out,
            "vllm:prefix_cache_hits_total",
            "Prefix cache hits, in terms of number of cached tokens.",
            self.prefix_cache_hits.load(Relaxed),
        );
        let name = "vllm:request_success_total";
        let _ = writeln!(
            out,
            "# HELP {name} Count of successfully processed requests."
        );
        let _ = writeln!(out, "# TYPE {name} counter");
        for (reason, v) in [
            ("length", self.request_success.load(Relaxed)),
            ("abort", self.request_aborted.load(Relaxed)),
        ] {
            let _ = writeln!(out, "{name}{{{labels},finished_reason=\"{reason}\"}} {v}");
        }
        self.ttft.render(
            &mut out,
            "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds.",
            &labels,
        );
        self.itl.render(
            &mut out,
            "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds.",
            &labels,
        );
        self.itl.render(
            &mut out,
            "vllm:time_per_output_token_seconds",
            "Histogram of time per output token in seconds.",
            &labels,
        );
        self.e2e.render(
            &mut out,
            "vllm:e2e_request_latency_seconds",
            "Histogram of end to end request latency in seconds.",
            &labels,
        );
        out
    }
}

/// `1234567` as `1,234,567`, as vLLM's logs print counts.
fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// vLLM's two start-up lines about KV capacity, which profilers and
/// operators grep for:
/// `GPU KV cache size: 123,456 tokens` and
/// `Maximum concurrency for 4,096 tokens per request: 30.14x`.
pub fn log_line_kv_capacity(tokens: u64, max_model_len: u32) -> String {
    let conc = tokens as f64 / f64::from(max_model_len.max(1));
    format!(
        "GPU KV cache size: {} tokens\nMaximum concurrency for {} tokens per request: {:.2}x",
        thousands(tokens),
        thousands(u64::from(max_model_len)),
        conc
    )
}
