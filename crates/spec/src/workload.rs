//! Service-level targets and the traffic they must hold under.

use serde::{Deserialize, Serialize};

/// Latency targets, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sla {
    pub ttft_ms: f64,
    pub itl_ms: f64,
}

/// Fixed-length requests arriving either from a closed loop of `concurrency`
/// clients or as a Poisson stream at `request_rate` per second.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    pub isl: u32,
    pub osl: u32,
    pub arrival: Arrival,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrival {
    Concurrency(u32),
    RequestRate(f64),
}
