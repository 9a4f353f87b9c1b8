//! Fault injection for reliability tests of clients (load generators,
//! routers, the profiler). Everything is off by default, and the decisions
//! are deterministic for a given `seed` and request order, so a failing test
//! can be replayed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Fraction of generation requests answered 500 (0 = none, 1 = all).
    pub error_rate: f64,
    /// A streamed response is cut (connection aborted, no `[DONE]`) after
    /// this many tokens. Non-streamed responses are not affected.
    pub cut_stream_after: Option<u32>,
    /// Added before a request reaches the engine, so it delays the first
    /// token (TTFT) without holding a batch slot.
    pub stall_ms: u64,
    /// The server binds its port only after this long.
    pub slow_startup_ms: u64,
    /// Exit non-zero before binding.
    pub crash_at_startup: bool,
    pub seed: u64,
}

impl FaultConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.error_rate) || self.error_rate.is_nan() {
            return Err(format!(
                "--fault-error-rate must be within [0, 1], got {}",
                self.error_rate
            ));
        }
        Ok(())
    }

    pub fn any_active(&self) -> bool {
        self.error_rate > 0.0
            || self.cut_stream_after.is_some()
            || self.stall_ms > 0
            || self.slow_startup_ms > 0
            || self.crash_at_startup
    }
}

/// Per-request fault decisions for a running server.
#[derive(Debug, Default)]
pub struct Faults {
    cfg: FaultConfig,
    requests: AtomicU64,
}

/// What happens to one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFaults {
    pub fail: bool,
    pub stall: Option<Duration>,
    pub cut_after: Option<u32>,
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Faults {
    pub fn new(cfg: FaultConfig) -> Self {
        Faults {
            cfg,
            requests: AtomicU64::new(0),
        }
    }

    pub fn config(&self) -> &FaultConfig {
        &self.cfg
    }

    /// Decides the faults of the next generation request: the n-th request
    /// fails when a hash of (seed, n) falls below the error rate.
    pub fn next_request(&self) -> RequestFaults {
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let fail = if self.cfg.error_rate >= 1.0 {
            true
        } else if self.cfg.error_rate <= 0.0 {
            false
        } else {
            let u = (splitmix64(self.cfg.seed ^ splitmix64(n)) >> 11) as f64 / (1u64 << 53) as f64;
            u < self.cfg.error_rate
        };
        RequestFaults {
            fail,
            stall: (self.cfg.stall_ms > 0).then(|| Duration::from_millis(self.cfg.stall_ms)),
            cut_after: self.cfg.cut_stream_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default() {
        let f = Faults::default();
        for _ in 0..100 {
            assert_eq!(f.next_request(), RequestFaults::default());
        }
        assert!(!FaultConfig::default().any_active());
    }

    #[test]
    fn error_rate_is_deterministic_and_close() {
        let cfg = FaultConfig {
            error_rate: 0.3,
            seed: 7,
            ..Default::default()
        };
        let run = || {
            let f = Faults::new(cfg.clone());
            (0..10_000)
                .map(|_| f.next_request().fail)
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let rate = a.iter().filter(|x| **x).count() as f64 / a.len() as f64;
        assert!((rate - 0.3).abs() < 0.02, "{rate}");
        assert!(FaultConfig {
            error_rate: 1.5,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
