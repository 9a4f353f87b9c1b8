//! Files the profiler leaves in `--output-dir`, under the seed's names so
//! Dynamo's planner and tools read them unchanged. Every file is written to a
//! temporary name beside it and renamed, so a reader never sees half a file.

use crate::profile::{DecodeInterpolation, PrefillInterpolation};
use ndarray::Array1;
use ndarray_npy::NpzWriter;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const STATUS_FILE: &str = "profiler_status.yaml";
pub const LOG_FILE: &str = "profile_sla.log";
pub const RESULTS_FILE: &str = "profile_results.json";
pub const PREFILL_PLOT: &str = "prefill_performance.png";
pub const DECODE_PLOT: &str = "decode_performance.png";
pub const PREFILL_DIR: &str = "selected_prefill_interpolation";
pub const DECODE_DIR: &str = "selected_decode_interpolation";
pub const RAW_DATA: &str = "raw_data.npz";
pub const PREFILL_TTFT_PLOT: &str = "prefill_ttft_interpolation.png";
pub const PREFILL_THPT_PLOT: &str = "prefill_throughput_interpolation.png";
/// The seed's spelling.
pub const DECODE_ITL_PLOT: &str = "decode_itl_interplation.png";
pub const DECODE_THPT_PLOT: &str = "decode_throughput_interpolation.png";
pub const CONFIG_WITH_PLANNER: &str = "config_with_planner.yaml";
pub const MOCKER_CONFIG_WITH_PLANNER: &str = "mocker_config_with_planner.yaml";

#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {message}")]
    Encode { path: PathBuf, message: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ArtifactError + '_ {
    move |source| ArtifactError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes through a temporary file in the same directory, then renames.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ArtifactError> {
    with_temp(path, |f| f.write_all(bytes).map_err(io_err(path)))
}

fn with_temp(
    path: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> Result<(), ArtifactError>,
) -> Result<(), ArtifactError> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    let dir = dir.unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".slaprof-")
        .tempfile_in(dir)
        .map_err(io_err(path))?;
    fill(tmp.as_file_mut())?;
    tmp.as_file().sync_all().map_err(io_err(path))?;
    tmp.persist(path).map_err(|e| ArtifactError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

pub fn write_json(path: &Path, value: &impl Serialize) -> Result<(), ArtifactError> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| ArtifactError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

pub fn write_yaml(path: &Path, value: &impl Serialize) -> Result<(), ArtifactError> {
    let text = serde_saphyr::to_string(value).map_err(|e| ArtifactError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    write_atomic(path, text.as_bytes())
}

/// `profiler_status.yaml`, in the fields Dynamo's status checker reads.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub status: &'static str,
    pub timestamp: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub outputs: std::collections::BTreeMap<String, String>,
}

impl Status {
    pub fn new(status: &'static str) -> Self {
        Status {
            status,
            timestamp: crate::progress::timestamp(),
            message: String::new(),
            error: String::new(),
            outputs: Default::default(),
        }
    }
}

fn npz_error(path: &Path) -> impl FnOnce(ndarray_npy::WriteNpzError) -> ArtifactError + '_ {
    move |e| ArtifactError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// `selected_prefill_interpolation/raw_data.npz`.
pub fn write_prefill_npz(path: &Path, p: &PrefillInterpolation) -> Result<(), ArtifactError> {
    with_temp(path, |f| {
        let mut npz = NpzWriter::new(f);
        let isl: Array1<i64> = p.prefill_isl.iter().map(|&v| i64::from(v)).collect();
        npz.add_array("prefill_isl", &isl)
            .map_err(npz_error(path))?;
        npz.add_array("prefill_ttft", &Array1::from(p.prefill_ttft.clone()))
            .map_err(npz_error(path))?;
        npz.add_array(
            "prefill_thpt_per_gpu",
            &Array1::from(p.prefill_thpt_per_gpu.clone()),
        )
        .map_err(npz_error(path))?;
        npz.finish().map_err(npz_error(path))?;
        Ok(())
    })
}

/// `selected_decode_interpolation/raw_data.npz`.
pub fn write_decode_npz(path: &Path, d: &DecodeInterpolation) -> Result<(), ArtifactError> {
    with_temp(path, |f| {
        let mut npz = NpzWriter::new(f);
        let arrays = [
            ("x_kv_usage", &d.x_kv_usage),
            ("y_context_length", &d.y_context_length),
            ("z_itl", &d.z_itl),
            ("z_thpt_per_gpu", &d.z_thpt_per_gpu),
        ];
        for (name, values) in arrays {
            npz.add_array(name, &Array1::from(values.clone()))
                .map_err(npz_error(path))?;
        }
        let max_kv: Array1<i64> = Array1::from(vec![d.max_kv_tokens as i64]);
        npz.add_array("max_kv_tokens", &max_kv)
            .map_err(npz_error(path))?;
        npz.finish().map_err(npz_error(path))?;
        Ok(())
    })
}

/// The planner ConfigMap's `prefill_raw_data.json`.
pub fn prefill_json(p: &PrefillInterpolation) -> serde_json::Value {
    serde_json::json!({
        "prefill_isl": p.prefill_isl,
        "prefill_ttft": p.prefill_ttft,
        "prefill_thpt_per_gpu": p.prefill_thpt_per_gpu,
    })
}

/// The planner ConfigMap's `decode_raw_data.json` (`max_kv_tokens` a plain
/// integer there, as Dynamo writes it).
pub fn decode_json(d: &DecodeInterpolation) -> serde_json::Value {
    serde_json::json!({
        "x_kv_usage": d.x_kv_usage,
        "y_context_length": d.y_context_length,
        "z_itl": d.z_itl,
        "z_thpt_per_gpu": d.z_thpt_per_gpu,
        "max_kv_tokens": d.max_kv_tokens,
    })
}
