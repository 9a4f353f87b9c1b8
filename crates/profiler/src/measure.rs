//! Where the numbers come from. The profiler asks a [`Measurer`] to bring up
//! an engine with a given parallel mapping and measures it through
//! [`EngineUnderTest`]; the simulated measurer answers from the performance
//! model, a future online one from deployed engines and the load generator.

use perf_model::probe::{DecodeSample, EngineProbe};
use perf_model::Calibration;
use spec::model::QuantScheme;
use spec::{Backend, GpuSystem, ModelArch, ParallelLayout};

/// Why an engine could not be brought up or measured.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{0}")]
pub struct MeasureError(pub String);

/// One engine, up and ready for benchmarks. Measurements may be requested
/// from several threads; an engine that cannot serve them concurrently (a
/// real deployment) serialises them itself.
pub trait EngineUnderTest: Sync {
    fn num_gpus(&self) -> u32;
    /// KV tokens the engine holds (all attention ranks).
    fn max_kv_tokens(&self) -> u64;
    /// The most `isl + osl` requests it runs at once.
    fn max_concurrency(&self, isl: u32, osl: u32) -> u32;
    /// Fails unless one request of `isl + osl` tokens fits one rank.
    fn require_request(&self, isl: u32, osl: u32) -> Result<(), MeasureError>;
    /// The seed's prefill TTFT measurement, ms.
    fn prefill_ttft_ms(&self, isl: u32) -> Result<f64, MeasureError>;
    /// The seed's decode measurement at `in_flight` requests.
    fn decode(&self, isl: u32, osl: u32, in_flight: u32) -> Result<DecodeSample, MeasureError>;
}

/// Brings up engines.
pub trait Measurer: Sync {
    /// Where the numbers come from, for logs and results.
    fn describe(&self) -> String;
    fn engine(&self, layout: ParallelLayout)
        -> Result<Box<dyn EngineUnderTest + '_>, MeasureError>;
}

/// Engines simulated by the performance model (the seed's AI Configurator
/// mode, for every backend).
pub struct SimulatedMeasurer {
    pub model: ModelArch,
    pub system: GpuSystem,
    pub backend: Backend,
    pub quant: QuantScheme,
    pub calibration: Calibration,
}

struct SimulatedEngine(EngineProbe);

fn err(e: impl std::fmt::Display) -> MeasureError {
    MeasureError(e.to_string())
}

impl EngineUnderTest for SimulatedEngine {
    fn num_gpus(&self) -> u32 {
        self.0.num_gpus()
    }
    fn max_kv_tokens(&self) -> u64 {
        self.0.max_kv_tokens()
    }
    fn max_concurrency(&self, isl: u32, osl: u32) -> u32 {
        self.0.max_concurrency(isl, osl)
    }
    fn require_request(&self, isl: u32, osl: u32) -> Result<(), MeasureError> {
        self.0.require_request(isl, osl).map_err(err)
    }
    fn prefill_ttft_ms(&self, isl: u32) -> Result<f64, MeasureError> {
        self.0.prefill_ttft_ms(isl).map_err(err)
    }
    fn decode(&self, isl: u32, osl: u32, in_flight: u32) -> Result<DecodeSample, MeasureError> {
        self.0.decode(isl, osl, in_flight).map_err(err)
    }
}

impl Measurer for SimulatedMeasurer {
    fn describe(&self) -> String {
        format!(
            "performance model ({} on {}, {}, weights {} / experts {} / KV {})",
            self.model.name,
            self.system.name,
            self.backend,
            self.quant.gemm,
            self.quant.moe,
            self.quant.kv
        )
    }

    fn engine(
        &self,
        layout: ParallelLayout,
    ) -> Result<Box<dyn EngineUnderTest + '_>, MeasureError> {
        let probe = EngineProbe::new(
            &self.model,
            &self.system,
            self.backend,
            self.quant,
            layout,
            &self.calibration,
        )
        .map_err(err)?;
        Ok(Box::new(SimulatedEngine(probe)))
    }
}
