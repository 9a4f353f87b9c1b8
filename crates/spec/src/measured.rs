//! Measured serving points in the column layout of AI Configurator's
//! `silicon_sample.csv`: one row per benchmark run of one deployment.

use serde::{Deserialize, Serialize};

/// One measured row. Layout columns are optional because aggregated rows
/// leave the disaggregated ones empty and vice versa.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct SiliconRow {
    pub id: String,
    #[serde(default)]
    pub silicon_data_source: String,
    pub backend: String,
    #[serde(default)]
    pub backend_version: String,
    pub model_path: String,
    pub system: String,
    #[serde(default)]
    pub precision: String,
    pub mode: String,
    pub isl: f64,
    pub osl: f64,
    #[serde(default)]
    pub gemm_quant_mode: String,
    #[serde(default)]
    pub moe_quant_mode: String,
    pub batch_size: Option<f64>,
    pub tp_size: Option<f64>,
    pub pp_size: Option<f64>,
    pub attention_dp_size: Option<f64>,
    pub moe_tp_size: Option<f64>,
    pub moe_ep_size: Option<f64>,
    pub prefill_batch_size: Option<f64>,
    pub prefill_num_workers: Option<f64>,
    pub prefill_tp_size: Option<f64>,
    pub prefill_pp_size: Option<f64>,
    pub prefill_attention_dp_size: Option<f64>,
    pub prefill_moe_tp_size: Option<f64>,
    pub prefill_moe_ep_size: Option<f64>,
    pub decode_batch_size: Option<f64>,
    pub decode_num_workers: Option<f64>,
    pub decode_tp_size: Option<f64>,
    pub decode_pp_size: Option<f64>,
    pub decode_attention_dp_size: Option<f64>,
    pub decode_moe_tp_size: Option<f64>,
    pub decode_moe_ep_size: Option<f64>,
    pub silicon_ttft_ms: Option<f64>,
    pub silicon_tpot_ms: Option<f64>,
}

impl SiliconRow {
    /// Client concurrency: `batch_size` for aggregated rows, the
    /// `silicon_concurrency=N` note of the source (or the `_cN_` part of the
    /// id) for disaggregated rows.
    pub fn concurrency(&self) -> Option<u32> {
        if let Some(b) = self.batch_size.filter(|b| *b >= 1.0) {
            return Some(b.round() as u32);
        }
        let from_source = self
            .silicon_data_source
            .split(';')
            .filter_map(|part| part.trim().strip_prefix("silicon_concurrency="))
            .find_map(|v| v.trim().parse::<u32>().ok());
        from_source.or_else(|| {
            self.id
                .split('_')
                .filter_map(|part| part.strip_prefix('c'))
                .find_map(|v| v.parse::<u32>().ok().filter(|n| *n > 0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_comes_from_batch_size_source_or_id() {
        let mut r = SiliconRow {
            batch_size: Some(16.0),
            ..Default::default()
        };
        assert_eq!(r.concurrency(), Some(16));
        r.batch_size = None;
        r.silicon_data_source = "db; silicon_concurrency=450; x".into();
        assert_eq!(r.concurrency(), Some(450));
        r.silicon_data_source.clear();
        r.id = "dsr1_gb200_sglang_fp4_disagg_8192x1024_c8_cfg481".into();
        assert_eq!(r.concurrency(), Some(8));
        r.id = "no_concurrency_here".into();
        assert_eq!(r.concurrency(), None);
    }
}
