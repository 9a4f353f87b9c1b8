//! GPU systems: one GPU's datasheet figures plus how GPUs are wired together.

use serde::{Deserialize, Serialize};

/// A GPU system as published by its vendor. Dense (non-sparse) tensor-core
/// rates; bandwidths are per GPU and per direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuSystem {
    /// Identifier used on the command line, e.g. `h200_sxm`.
    pub name: String,
    /// Human name, e.g. "NVIDIA H200 SXM 141GB".
    pub description: String,
    /// Architecture generation: ampere, ada, hopper, blackwell, blackwell_ultra.
    pub generation: String,
    pub bf16_tflops: f64,
    /// 0 when the GPU has no fp8 tensor cores.
    pub fp8_tflops: f64,
    /// 0 when the GPU has no fp4 tensor cores.
    pub fp4_tflops: f64,
    pub hbm_gib: f64,
    /// HBM bandwidth in TB/s (1e12 bytes/s).
    pub hbm_tbps: f64,
    /// Scale-up (NVLink) bandwidth per GPU per direction, GB/s; PCIe when no NVLink.
    pub nvlink_gbps: f64,
    /// Scale-out (InfiniBand/Ethernet) bandwidth per GPU per direction, GB/s.
    pub scaleout_gbps: f64,
    pub gpus_per_node: u32,
    /// GPUs reachable over NVLink (72 for GB200/GB300 NVL72, else a node).
    pub nvlink_domain: u32,
    /// Streaming multiprocessors, used for wave quantization.
    pub sm_count: u32,
}

impl GpuSystem {
    /// Whether `n` GPUs of one engine talk over NVLink only.
    pub fn within_nvlink(&self, n: u32) -> bool {
        n <= self.nvlink_domain
    }
}
