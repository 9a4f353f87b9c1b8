//! Fitted efficiency figures. The formulas in `timing` are physics (FLOPs,
//! bytes, messages); these numbers say how close to the datasheet each
//! backend's kernels get. They were fitted on public measured serving data
//! (see docs/perf-model.md for the procedure) and live in
//! `data/calibration.json` so a refit changes no code.

use serde::{Deserialize, Serialize};
use spec::Backend;
use std::sync::OnceLock;

/// How close one backend's kernels and runtime get to the hardware.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendCalibration {
    /// Fraction of the dense tensor-core peak large GEMMs reach (bf16/fp8).
    pub gemm_eff: f64,
    /// Same for fp4 GEMMs (younger kernels, more scale-factor work).
    pub fp4_gemm_eff: f64,
    /// Rows of padding a GEMM effectively pays for (tile and wave
    /// quantization): compute time is proportional to `m + gemm_m_pad`.
    pub gemm_m_pad: f64,
    /// Fraction of HBM bandwidth reached when streaming weights.
    pub mem_eff: f64,
    /// Grouped-GEMM (MoE) efficiency relative to dense GEMMs.
    pub moe_eff: f64,
    /// Fraction of the bf16 peak that prefill (flash) attention reaches.
    pub attn_eff: f64,
    /// Fraction of HBM bandwidth decode attention reaches reading the KV cache.
    pub decode_attn_eff: f64,
    /// Fraction of link bandwidth collectives reach.
    pub comm_eff: f64,
    /// Fixed latency of one collective inside the NVLink domain, microseconds.
    pub comm_latency_us: f64,
    /// Extra latency of a collective that crosses the scale-out network.
    pub scaleout_latency_us: f64,
    /// Fixed cost of one engine step (scheduling, sampling, host sync), ms.
    pub step_overhead_ms: f64,
    /// Launch cost per layer for steps that run without CUDA graphs
    /// (any step with prefill tokens), microseconds.
    pub layer_overhead_us: f64,
    /// Launch cost per layer for decode-only steps (CUDA graphs), microseconds.
    pub graph_layer_overhead_us: f64,
    /// Extra cost of an MoE layer in a step without CUDA graphs (router,
    /// top-k, token permutation and the grouped GEMM's host-side setup are
    /// many more kernels than a dense MLP), microseconds.
    #[serde(default)]
    pub moe_layer_overhead_us: f64,
    /// The same for decode-only steps replayed from CUDA graphs: each of an
    /// MoE layer's extra kernels still has a latency floor, microseconds.
    #[serde(default)]
    pub graph_moe_layer_overhead_us: f64,
    /// Host cost per sequence in the batch per step, microseconds.
    pub seq_overhead_us: f64,
    /// What every request's first token costs the client beyond the engine's
    /// work: HTTP, tokenization, queueing in the API server, the first
    /// streamed chunk, ms.
    #[serde(default)]
    pub ttft_overhead_ms: f64,
    /// What a disaggregated request's first token costs beyond the prefill
    /// and the KV transfer (routing, bootstrap handshake, the decode
    /// worker's first step), ms.
    pub disagg_ttft_overhead_ms: f64,
}

/// Per-GPU-generation corrections shared by all backends.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationCalibration {
    /// Multiplies every compute efficiency.
    pub compute_scale: f64,
    /// Multiplies every bandwidth efficiency.
    pub memory_scale: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Where the figures came from, for humans.
    pub source: String,
    pub trtllm: BackendCalibration,
    pub vllm: BackendCalibration,
    pub sglang: BackendCalibration,
    pub hopper: GenerationCalibration,
    pub blackwell: GenerationCalibration,
    pub blackwell_ultra: GenerationCalibration,
    pub ampere: GenerationCalibration,
    pub ada: GenerationCalibration,
    /// Simulated requests per client of a closed-loop benchmark (how many
    /// rounds the measurement tools ran).
    pub benchmark_rounds: f64,
    /// Relative spread of request lengths in a benchmark (uniform ±j). Real
    /// clients and engines never stay in perfect lockstep; this spread is
    /// what lets simulated closed-loop clients drift apart as real ones do.
    #[serde(default)]
    pub benchmark_length_jitter: f64,
}

impl Calibration {
    /// The figures shipped with slaprof.
    pub fn builtin() -> &'static Calibration {
        static CAL: OnceLock<Calibration> = OnceLock::new();
        CAL.get_or_init(|| {
            serde_json::from_str(include_str!("../data/calibration.json"))
                .expect("data/calibration.json is valid (checked by a unit test)")
        })
    }

    pub fn backend(&self, b: Backend) -> &BackendCalibration {
        match b {
            Backend::Trtllm => &self.trtllm,
            Backend::Vllm => &self.vllm,
            Backend::Sglang => &self.sglang,
        }
    }

    pub fn backend_mut(&mut self, b: Backend) -> &mut BackendCalibration {
        match b {
            Backend::Trtllm => &mut self.trtllm,
            Backend::Vllm => &mut self.vllm,
            Backend::Sglang => &mut self.sglang,
        }
    }

    pub fn generation(&self, name: &str) -> &GenerationCalibration {
        match name {
            "blackwell" => &self.blackwell,
            "blackwell_ultra" => &self.blackwell_ultra,
            "ampere" => &self.ampere,
            "ada" => &self.ada,
            _ => &self.hopper,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_calibration_parses_and_is_physical() {
        let c = Calibration::builtin();
        for b in Backend::ALL {
            let k = c.backend(b);
            for (name, v) in [
                ("gemm_eff", k.gemm_eff),
                ("fp4_gemm_eff", k.fp4_gemm_eff),
                ("mem_eff", k.mem_eff),
                ("attn_eff", k.attn_eff),
                ("decode_attn_eff", k.decode_attn_eff),
                ("comm_eff", k.comm_eff),
            ] {
                assert!(v > 0.0 && v <= 1.0, "{b} {name} = {v} is not a fraction");
            }
        }
    }
}
