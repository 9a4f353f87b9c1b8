//! `slaprof mocker`: an OpenAI-compatible server whose engine is the serving
//! simulator's scheduler driven by the real clock (divided by a speedup), so
//! clients see the timing the performance model predicts.

pub mod engine;
pub mod faults;
pub mod metrics;
pub mod server;
pub mod timing;
pub mod tokenizer;
pub mod trace;
