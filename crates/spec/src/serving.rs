//! A serving deployment: one or more engines of a backend, aggregated or
//! disaggregated, with the traffic they serve.

use crate::model::QuantScheme;
use crate::parallel::ParallelLayout;
use crate::workload::Workload;
use crate::Backend;
use serde::{Deserialize, Serialize};

/// Engines of one kind.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WorkerGroup {
    pub layout: ParallelLayout,
    pub workers: u32,
    /// Cap on running sequences per worker (max_num_seqs / max_batch_size);
    /// None lets the backend's default and the KV cache decide.
    pub max_batch: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum ServingMode {
    /// Every worker prefills and decodes.
    Aggregated { workers: WorkerGroup },
    /// Prefill workers hand their KV cache to decode workers.
    Disaggregated {
        prefill: WorkerGroup,
        decode: WorkerGroup,
    },
}

/// Everything a serving prediction needs besides the model and GPU system.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServingConfig {
    pub backend: Backend,
    pub quant: QuantScheme,
    pub mode: ServingMode,
    pub workload: Workload,
}

impl ServingConfig {
    /// GPUs the whole deployment uses.
    pub fn num_gpus(&self) -> u32 {
        match self.mode {
            ServingMode::Aggregated { workers } => workers.layout.num_gpus() * workers.workers,
            ServingMode::Disaggregated { prefill, decode } => {
                prefill.layout.num_gpus() * prefill.workers
                    + decode.layout.num_gpus() * decode.workers
            }
        }
    }
}
