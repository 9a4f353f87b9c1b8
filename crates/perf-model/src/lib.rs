//! slaprof's performance model: how long one engine step takes, how much
//! memory an engine needs, and a discrete-event serving simulator on an
//! injectable clock. Pure and deterministic: no I/O, no wall clock.

pub mod sim;
pub mod step;

pub use step::{StepBatch, StepTimer};
