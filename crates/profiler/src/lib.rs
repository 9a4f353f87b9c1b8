//! The SLA-driven profiler: sweep parallel mappings, recommend the prefill
//! and decode engines, interpolate them for the planner, and write the
//! artifacts Dynamo's tools read. Measurements come through a trait so the
//! same pipeline runs on the performance model or on real engines.

pub mod artifacts;
pub mod deployment;
pub mod measure;
pub mod plots;
pub mod profile;
pub mod progress;
pub mod run;
pub mod settings;
