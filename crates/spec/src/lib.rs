//! The vocabulary every other slaprof crate speaks: model architectures, GPU
//! systems, numeric precisions, parallel layouts, serving backends, SLAs and
//! workloads. Pure data and validation: no I/O, no async.

pub mod backend;
pub mod catalog;
pub mod dgdr;
mod fuzzy;
pub mod hf;
pub mod measured;
pub mod model;
pub mod openai;
pub mod parallel;
mod params;
pub mod precision;
pub mod serving;
pub mod system;
pub mod systems;
pub mod workload;

pub use backend::Backend;
pub use hf::{parse_hf_checkpoint, parse_hf_config, parse_hf_quant_config, ModelConfigError};
pub use measured::SiliconRow;
pub use model::{AttentionKind, FfnKind, LayerCounts, ModelArch, MoeSpec};
pub use parallel::ParallelLayout;
pub use params::ParamBreakdown;
pub use precision::{ComputeDtype, KvDtype, Precision};
pub use serving::{ServingConfig, ServingMode, WorkerGroup};
pub use system::GpuSystem;
pub use workload::{Sla, Workload};
