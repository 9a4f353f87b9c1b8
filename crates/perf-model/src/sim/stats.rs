//! Latency distributions and the simulation report.
//!
//! Per-request metrics (a few per request) are kept exactly and sorted once;
//! inter-token latencies (one per token, millions per run) go into a
//! fixed-size log-linear histogram so recording a token never allocates.

use serde::{Deserialize, Serialize};

/// Summary of a latency distribution, in milliseconds. All zero when empty.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Dist {
    pub count: u64,
    pub mean: f64,
    /// Population standard deviation.
    pub std: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Dist {
    /// Exact summary; sorts `samples` in place. Percentiles interpolate
    /// linearly between order statistics, as numpy's default does, so they
    /// match what benchmark tools print.
    pub fn from_samples(samples: &mut [f64]) -> Dist {
        if samples.is_empty() {
            return Dist::default();
        }
        samples.sort_unstable_by(f64::total_cmp);
        let n = samples.len() as f64;
        let mean = samples.iter().sum::<f64>() / n;
        let var = samples.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
        let pct = |p: f64| {
            let pos = p / 100.0 * (n - 1.0);
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(samples.len() - 1);
            let frac = pos - lo as f64;
            samples[lo] + (samples[hi] - samples[lo]) * frac
        };
        Dist {
            count: samples.len() as u64,
            mean,
            std: var.sqrt(),
            min: samples[0],
            max: samples[samples.len() - 1],
            p50: pct(50.0),
            p90: pct(90.0),
            p95: pct(95.0),
            p99: pct(99.0),
        }
    }
}

/// Mantissa bits kept per bucket: 2^7 buckets per octave, so a bucket's
/// midpoint is within 0.4% of any value in it.
const SUB_BITS: u32 = 7;
/// Smallest resolved value 2^-20 ms (about 1 ns); smaller ones share the
/// first bucket.
const MIN_EXP: u64 = 1023 - 20;
/// Largest resolved value 2^24 ms (about 4.7 h); larger ones share the last.
const MAX_EXP: u64 = 1023 + 24;
const NUM_BUCKETS: usize = ((MAX_EXP - MIN_EXP) as usize) << SUB_BITS;

/// Log-linear histogram of non-negative values with exact count, mean,
/// standard deviation, min and max, and percentiles to within 0.4%.
#[derive(Debug, Clone)]
pub struct LogHistogram {
    counts: Vec<u64>,
    n: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Default for LogHistogram {
    fn default() -> Self {
        LogHistogram::new()
    }
}

impl LogHistogram {
    pub fn new() -> LogHistogram {
        LogHistogram {
            counts: vec![0; NUM_BUCKETS],
            n: 0,
            sum: 0.0,
            sum_sq: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    #[inline]
    fn bucket(v: f64) -> usize {
        // A positive f64's bits, shifted, are (exponent, top mantissa bits):
        // monotone in the value and logarithmically spaced, with no `ln`.
        if v.is_nan() || v <= 0.0 {
            return 0;
        }
        let key = v.to_bits() >> (52 - SUB_BITS);
        let base = MIN_EXP << SUB_BITS;
        (key.saturating_sub(base) as usize).min(NUM_BUCKETS - 1)
    }

    fn bucket_mid(i: usize) -> f64 {
        let base = MIN_EXP << SUB_BITS;
        let lo = f64::from_bits((base + i as u64) << (52 - SUB_BITS));
        let hi = f64::from_bits((base + i as u64 + 1) << (52 - SUB_BITS));
        0.5 * (lo + hi)
    }

    #[inline]
    pub fn add(&mut self, v: f64) {
        self.add_n(v, 1);
    }

    /// Records `count` occurrences of `v` (negative or NaN values are
    /// recorded as 0).
    #[inline]
    pub fn add_n(&mut self, v: f64, count: u64) {
        if count == 0 {
            return;
        }
        let v = if v > 0.0 { v } else { 0.0 };
        self.counts[Self::bucket(v)] += count;
        let c = count as f64;
        self.n += count;
        self.sum += v * c;
        self.sum_sq += v * v * c;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn count(&self) -> u64 {
        self.n
    }

    pub fn dist(&self) -> Dist {
        if self.n == 0 {
            return Dist::default();
        }
        let n = self.n as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        // One pass over the buckets for all four percentiles (ascending).
        const PS: [f64; 4] = [50.0, 90.0, 95.0, 99.0];
        let mut out = [self.max; 4];
        let mut next = 0;
        let mut seen = 0u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            while next < PS.len() && seen > (PS[next] / 100.0 * (n - 1.0)).floor() as u64 {
                out[next] = Self::bucket_mid(i).clamp(self.min, self.max);
                next += 1;
            }
            if next == PS.len() {
                break;
            }
        }
        Dist {
            count: self.n,
            mean,
            std: var.sqrt(),
            min: self.min,
            max: self.max,
            p50: out[0],
            p90: out[1],
            p95: out[2],
            p99: out[3],
        }
    }
}

/// What a simulated benchmark measured, over the non-warmup requests.
/// Latencies in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SimReport {
    /// Arrival to first token.
    pub ttft: Dist,
    /// Per request: decode time per output token after the first,
    /// `(last − first) / (osl − 1)`; requests with one output token have none.
    /// Disaggregated: the KV transfer is excluded (see `run_disaggregated`).
    pub tpot: Dist,
    /// Gaps between consecutive tokens of a request, every token.
    pub itl: Dist,
    /// Arrival to last token.
    pub e2e: Dist,
    /// Requests completed, warmup included.
    pub completed: u32,
    /// Requests the statistics cover (completed minus warmup).
    pub measured: u32,
    /// From the first measured arrival to the last measured completion.
    pub duration_s: f64,
    pub output_tokens_per_s: f64,
    pub input_tokens_per_s: f64,
    pub requests_per_s: f64,
    /// Engine steps over all engines, fast-forwarded ones included.
    pub steps: u64,
    pub preemptions: u64,
    /// Mean number of sequences in steps that decode (decode engines only
    /// when disaggregated).
    pub mean_batch: f64,
    /// Highest fraction of an engine's KV blocks in use (max over engines).
    pub kv_peak_usage: f64,
    /// Prompt tokens served from prefix caches.
    pub prefix_hit_tokens: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_percentiles_interpolate() {
        let mut v: Vec<f64> = (1..=101).map(f64::from).rev().collect();
        let d = Dist::from_samples(&mut v);
        assert_eq!(d.count, 101);
        assert_eq!(d.min, 1.0);
        assert_eq!(d.max, 101.0);
        assert_eq!(d.p50, 51.0);
        assert_eq!(d.p90, 91.0);
        assert!((d.p99 - 100.0).abs() < 1e-9);
        assert!((d.mean - 51.0).abs() < 1e-9);
    }

    #[test]
    fn empty_is_zero() {
        assert_eq!(Dist::from_samples(&mut []), Dist::default());
        assert_eq!(LogHistogram::new().dist(), Dist::default());
    }

    #[test]
    fn histogram_tracks_exact_samples() {
        let mut h = LogHistogram::new();
        let mut v = Vec::new();
        for i in 0..10_000u32 {
            let x = 0.5 + f64::from(i % 977) * 0.37;
            h.add(x);
            v.push(x);
        }
        let a = h.dist();
        let b = Dist::from_samples(&mut v);
        assert_eq!(a.count, b.count);
        assert!((a.mean - b.mean).abs() < 1e-9 * b.mean);
        assert!((a.std - b.std).abs() < 1e-6 * b.std);
        for (x, y) in [(a.p50, b.p50), (a.p90, b.p90), (a.p99, b.p99)] {
            assert!((x - y).abs() <= 0.01 * y, "{x} vs {y}");
        }
    }

    #[test]
    fn constant_values_are_exact_and_extremes_clamp() {
        let mut h = LogHistogram::new();
        h.add_n(12.5, 1000);
        let d = h.dist();
        assert_eq!((d.p50, d.p99, d.min, d.max), (12.5, 12.5, 12.5, 12.5));
        let mut h = LogHistogram::new();
        h.add(0.0);
        h.add(1e12);
        h.add(-3.0);
        let d = h.dist();
        assert_eq!((d.min, d.max), (0.0, 1e12));
        assert!(d.p50 >= 0.0 && d.p99 <= 1e12);
    }
}
