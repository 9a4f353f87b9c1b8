//! slaprof's performance model: how long one engine step takes, how much
//! memory an engine needs, and a discrete-event serving simulator on an
//! injectable clock. Pure and deterministic: no I/O, no wall clock.

pub mod calibration;
pub mod engine;
pub mod predict;
pub mod probe;
pub mod silicon;
pub mod sim;
pub mod step;
pub mod timing;

pub use calibration::Calibration;
pub use engine::{ConfigError, EngineSpec, MemoryBreakdown};
pub use step::{StepBatch, StepTimer};
pub use timing::{StepBreakdown, StepCostModel};
