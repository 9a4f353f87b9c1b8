//! Turning a measured row (AI Configurator's silicon CSV layout) into the
//! serving configuration slaprof predicts.

use spec::model::QuantScheme;
use spec::workload::Arrival;
use spec::{
    Backend, KvDtype, ParallelLayout, Precision, ServingConfig, ServingMode, SiliconRow,
    WorkerGroup, Workload,
};

/// Why a row cannot be predicted.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum RowError {
    #[error("unsupported mode '{0}' (expected agg or disagg)")]
    Mode(String),
    #[error("{0}")]
    Backend(#[from] spec::backend::UnknownBackend),
    #[error("unknown quantization '{0}'")]
    Quant(String),
    #[error("missing or invalid column {0}")]
    Missing(&'static str),
    #[error("isl and osl must be positive, got isl={isl} osl={osl}")]
    Lengths { isl: f64, osl: f64 },
    #[error(
        "no client concurrency: batch_size is empty and no silicon_concurrency=N in the source"
    )]
    NoConcurrency,
}

fn quant_mode(s: &str) -> Result<Option<Precision>, RowError> {
    match s.trim() {
        "" => Ok(None),
        "fp8_block" => Ok(Some(Precision::Fp8Block)),
        "int4_wo" => Ok(Some(Precision::Int4Wo)),
        other => other
            .parse::<Precision>()
            .map(Some)
            .map_err(|_| RowError::Quant(other.to_string())),
    }
}

/// The quantization a row ran with. Empty columns mean the checkpoint's
/// 16-bit weights. The KV cache is fp8 wherever the GEMMs are fp8 or fp4:
/// that is what the benchmark recipes of all three backends enable.
pub fn row_quant(row: &SiliconRow) -> Result<QuantScheme, RowError> {
    let precision = quant_mode(&row.precision)?;
    let gemm = quant_mode(&row.gemm_quant_mode)?
        .or(precision)
        .unwrap_or(Precision::Bf16);
    let moe = quant_mode(&row.moe_quant_mode)?.unwrap_or(gemm);
    let kv = match gemm {
        Precision::Bf16 | Precision::Int4Wo => KvDtype::Bf16,
        _ => KvDtype::Fp8,
    };
    Ok(QuantScheme { gemm, moe, kv })
}

fn size(v: Option<f64>) -> Option<u32> {
    v.filter(|x| x.is_finite() && *x >= 1.0)
        .map(|x| x.round() as u32)
}

/// A layout from the five size columns. AI Configurator leaves MoE columns at
/// 0 or empty for dense models: those mean "same as the attention GPUs".
fn layout(
    tp: Option<f64>,
    pp: Option<f64>,
    dp: Option<f64>,
    moe_tp: Option<f64>,
    moe_ep: Option<f64>,
) -> Result<ParallelLayout, RowError> {
    let tp = size(tp).ok_or(RowError::Missing("tp_size"))?;
    let pp = size(pp).unwrap_or(1);
    let dp = size(dp).unwrap_or(1);
    let stage = tp * dp;
    let (moe_tp, moe_ep) = match (size(moe_tp), size(moe_ep)) {
        (Some(t), Some(e)) if t * e == stage => (t, e),
        (Some(t), _) if t == stage => (t, 1),
        (_, Some(e)) if e == stage => (1, e),
        (Some(t), None) if stage % t == 0 => (t, stage / t),
        (None, Some(e)) if stage % e == 0 => (stage / e, e),
        _ => (stage, 1),
    };
    Ok(ParallelLayout {
        tp,
        pp,
        dp,
        moe_tp,
        moe_ep,
    })
}

/// The serving configuration of a row. Disaggregated rows that do not record
/// worker counts get 0 ("size to the load", see
/// [`crate::predict::auto_disagg_workers`]).
pub fn row_config(row: &SiliconRow) -> Result<ServingConfig, RowError> {
    let backend: Backend = row.backend.parse()?;
    let quant = row_quant(row)?;
    if !(row.isl >= 1.0 && row.osl >= 1.0) {
        return Err(RowError::Lengths {
            isl: row.isl,
            osl: row.osl,
        });
    }
    let concurrency = row.concurrency().ok_or(RowError::NoConcurrency)?;
    let workload = Workload {
        isl: row.isl.round() as u32,
        osl: row.osl.round() as u32,
        arrival: Arrival::Concurrency(concurrency),
    };
    let mode = match row.mode.trim() {
        "agg" => ServingMode::Aggregated {
            workers: WorkerGroup {
                layout: layout(
                    row.tp_size,
                    row.pp_size,
                    row.attention_dp_size,
                    row.moe_tp_size,
                    row.moe_ep_size,
                )?,
                workers: 1,
                max_batch: None,
            },
        },
        "disagg" => ServingMode::Disaggregated {
            prefill: WorkerGroup {
                layout: layout(
                    row.prefill_tp_size,
                    row.prefill_pp_size,
                    row.prefill_attention_dp_size,
                    row.prefill_moe_tp_size,
                    row.prefill_moe_ep_size,
                )?,
                workers: size(row.prefill_num_workers).unwrap_or(0),
                max_batch: size(row.prefill_batch_size),
            },
            decode: WorkerGroup {
                layout: layout(
                    row.decode_tp_size,
                    row.decode_pp_size,
                    row.decode_attention_dp_size,
                    row.decode_moe_tp_size,
                    row.decode_moe_ep_size,
                )?,
                workers: size(row.decode_num_workers).unwrap_or(0),
                max_batch: size(row.decode_batch_size),
            },
        },
        other => return Err(RowError::Mode(other.to_string())),
    };
    Ok(ServingConfig {
        backend,
        quant,
        mode,
        workload,
    })
}
