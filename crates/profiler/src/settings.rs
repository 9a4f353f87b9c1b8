//! Command-line flags, a `profilingConfig.config` block and a DGDR merged
//! into one validated set of profiler settings. Precedence, lowest first:
//! the DGDR's `spec.profilingConfig.config`, then `--profile-config`, then
//! individual flags, as in the seed ("command-line flags override file
//! values").

use serde::Serialize;
use spec::dgdr::{Dgdr, ModelCacheSection, ProfilingConfig};
use spec::Backend;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the user passed on the command line; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct ProfileFlags {
    pub backend: Option<String>,
    pub config: Option<PathBuf>,
    pub model: Option<String>,
    pub ttft: Option<f64>,
    pub itl: Option<f64>,
    pub isl: Option<i64>,
    pub osl: Option<i64>,
    pub min_num_gpus: Option<i64>,
    pub max_num_gpus: Option<i64>,
    pub num_gpus_per_node: Option<i64>,
    pub use_ai_configurator: bool,
    pub aic_system: Option<String>,
    pub aic_hf_id: Option<String>,
    pub aic_backend_version: Option<String>,
    pub prefill_interpolation_granularity: Option<i64>,
    pub decode_interpolation_granularity: Option<i64>,
    pub max_context_length: Option<i64>,
    pub output_dir: Option<PathBuf>,
    pub dry_run: bool,
    pub pick_with_webui: bool,
}

/// Everything the profiler needs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileSettings {
    pub backend: Backend,
    /// The model as the deployment names it (HF id or path).
    pub model: String,
    /// The model the performance model looks up (`--aic-hf-id`, else `model`).
    pub perf_model_id: String,
    /// GPU system name (`--aic-system`, else `hardware.gpuType`).
    pub system: Option<String>,
    pub backend_version: Option<String>,
    pub isl: u32,
    pub osl: u32,
    pub ttft_ms: f64,
    pub itl_ms: f64,
    pub min_num_gpus: Option<u32>,
    pub max_num_gpus: Option<u32>,
    pub num_gpus_per_node: Option<u32>,
    pub simulate: bool,
    pub prefill_granularity: u32,
    pub decode_granularity: u32,
    pub max_context_length: Option<u32>,
    pub base_config: Option<PathBuf>,
    pub output_dir: PathBuf,
    pub dry_run: bool,
    pub planner_args: BTreeMap<String, serde_json::Value>,
    pub use_mocker: bool,
    pub model_cache: Option<ModelCacheSection>,
    pub workers_image: Option<String>,
    pub deployment_name: Option<String>,
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum SettingsError {
    #[error("missing {what}: pass {flag} or set {key} in the profiling config")]
    Missing {
        what: &'static str,
        flag: &'static str,
        key: &'static str,
    },
    #[error("invalid {flag} {value}: {fix}")]
    Invalid {
        flag: &'static str,
        value: String,
        fix: String,
    },
    #[error("--pick-with-webui is not available yet: the web UI arrives in a later release; drop the flag to let the profiler pick the highest throughput per GPU within the SLA")]
    WebUiUnavailable,
    #[error("online profiling (deploying real engines and measuring them) is not available yet; pass --use-ai-configurator (or --simulate, or sweep.useAiConfigurator: true) to profile offline with the performance model")]
    OnlineUnavailable,
}

fn invalid(flag: &'static str, value: impl ToString, fix: impl Into<String>) -> SettingsError {
    SettingsError::Invalid {
        flag,
        value: value.to_string(),
        fix: fix.into(),
    }
}

fn positive_u32(flag: &'static str, v: i64, what: &str) -> Result<u32, SettingsError> {
    if v < 1 || v > i64::from(u32::MAX) {
        return Err(invalid(
            flag,
            v,
            format!("{what} must be a whole number of at least 1"),
        ));
    }
    Ok(v as u32)
}

fn positive_ms(flag: &'static str, v: f64) -> Result<f64, SettingsError> {
    if !(v.is_finite() && v > 0.0) {
        return Err(invalid(
            flag,
            v,
            "a latency target must be a positive number of milliseconds",
        ));
    }
    Ok(v)
}

/// Merges the sources and checks every value.
pub fn resolve(
    flags: &ProfileFlags,
    dgdr: Option<&Dgdr>,
    profile_config: Option<&ProfilingConfig>,
) -> Result<ProfileSettings, SettingsError> {
    if flags.pick_with_webui {
        return Err(SettingsError::WebUiUnavailable);
    }
    let from_dgdr = dgdr.map(Dgdr::profiling_config).unwrap_or_default();
    let empty = ProfilingConfig::default();
    let given = profile_config.unwrap_or(&empty);
    // Section-wise: a later source's field wins when it is set.
    macro_rules! pick {
        ($flag:expr, $sec:ident . $field:ident) => {
            $flag
                .or_else(|| given.$sec.as_ref().and_then(|s| s.$field.clone()))
                .or_else(|| from_dgdr.$sec.as_ref().and_then(|s| s.$field.clone()))
        };
    }

    let backend_name = flags
        .backend
        .clone()
        .or_else(|| given.engine.as_ref().and_then(|e| e.backend.clone()))
        .or_else(|| from_dgdr.engine.as_ref().and_then(|e| e.backend.clone()))
        .or_else(|| dgdr.and_then(|d| d.spec.backend.clone()))
        .ok_or(SettingsError::Missing {
            what: "backend",
            flag: "--backend {vllm,sglang,trtllm}",
            key: "spec.backend (DGDR) or engine.backend",
        })?;
    let backend: Backend = backend_name.parse().map_err(|_| {
        invalid(
            "--backend",
            &backend_name,
            "use one of vllm, sglang, trtllm",
        )
    })?;

    let model = flags
        .model
        .clone()
        .or_else(|| given.deployment.as_ref().and_then(|d| d.model.clone()))
        .or_else(|| from_dgdr.deployment.as_ref().and_then(|d| d.model.clone()))
        .or_else(|| dgdr.and_then(|d| d.spec.model.clone()))
        .or_else(|| flags.aic_hf_id.clone())
        .ok_or(SettingsError::Missing {
            what: "model",
            flag: "--model ORG/NAME",
            key: "spec.model (DGDR) or deployment.model",
        })?;
    let aic_hf_id = pick!(flags.aic_hf_id.clone(), sweep.aic_hf_id);
    let perf_model_id = aic_hf_id.unwrap_or_else(|| model.clone());

    let isl = flags
        .isl
        .or_else(|| given.sla.as_ref().and_then(|s| s.isl.map(i64::from)))
        .or_else(|| from_dgdr.sla.as_ref().and_then(|s| s.isl.map(i64::from)))
        .ok_or(SettingsError::Missing {
            what: "input sequence length",
            flag: "--isl",
            key: "sla.isl",
        })?;
    let isl = positive_u32("--isl", isl, "ISL")?;
    let osl = flags
        .osl
        .or_else(|| given.sla.as_ref().and_then(|s| s.osl.map(i64::from)))
        .or_else(|| from_dgdr.sla.as_ref().and_then(|s| s.osl.map(i64::from)))
        .ok_or(SettingsError::Missing {
            what: "output sequence length",
            flag: "--osl",
            key: "sla.osl",
        })?;
    let osl = positive_u32("--osl", osl, "OSL")?;
    let ttft = pick!(flags.ttft, sla.ttft).ok_or(SettingsError::Missing {
        what: "TTFT target",
        flag: "--ttft MS",
        key: "sla.ttft",
    })?;
    let ttft_ms = positive_ms("--ttft", ttft)?;
    let itl = pick!(flags.itl, sla.itl).ok_or(SettingsError::Missing {
        what: "ITL target",
        flag: "--itl MS",
        key: "sla.itl",
    })?;
    let itl_ms = positive_ms("--itl", itl)?;

    let gpu_count = |flag: &'static str, v: Option<i64>| -> Result<Option<u32>, SettingsError> {
        v.map(|v| positive_u32(flag, v, "a GPU count")).transpose()
    };
    let hw = |f: fn(&spec::dgdr::HardwareSection) -> Option<u32>| {
        given
            .hardware
            .as_ref()
            .and_then(f)
            .or_else(|| from_dgdr.hardware.as_ref().and_then(f))
            .map(i64::from)
    };
    let min_num_gpus = gpu_count(
        "--min-num-gpus",
        flags
            .min_num_gpus
            .or_else(|| hw(|h| h.min_num_gpus_per_engine)),
    )?;
    let max_num_gpus = gpu_count(
        "--max-num-gpus",
        flags
            .max_num_gpus
            .or_else(|| hw(|h| h.max_num_gpus_per_engine)),
    )?;
    if let (Some(lo), Some(hi)) = (min_num_gpus, max_num_gpus) {
        if lo > hi {
            return Err(invalid(
                "--min-num-gpus",
                lo,
                format!("it exceeds --max-num-gpus {hi}; lower the minimum or raise the maximum"),
            ));
        }
    }
    let num_gpus_per_node = gpu_count(
        "--num-gpus-per-node",
        flags
            .num_gpus_per_node
            .or_else(|| hw(|h| h.num_gpus_per_node)),
    )?;

    let simulate = flags.use_ai_configurator
        || given
            .sweep
            .as_ref()
            .and_then(|s| s.use_ai_configurator)
            .or_else(|| from_dgdr.sweep.as_ref().and_then(|s| s.use_ai_configurator))
            .unwrap_or(false);
    let system = pick!(flags.aic_system.clone(), sweep.aic_system)
        .or_else(|| pick!(None::<String>, hardware.gpu_type));
    let backend_version = pick!(flags.aic_backend_version.clone(), sweep.aic_backend_version);

    let granularity = |flag: &'static str, v: Option<i64>, default: u32| match v {
        None => Ok(default),
        Some(v) if (2..=1000).contains(&v) => Ok(v as u32),
        Some(v) => Err(invalid(
            flag,
            v,
            "use a number of sample points from 2 to 1000",
        )),
    };
    let prefill_granularity = granularity(
        "--prefill-interpolation-granularity",
        flags
            .prefill_interpolation_granularity
            .or_else(|| pick!(None::<u32>, sweep.prefill_interpolation_granularity).map(i64::from)),
        16,
    )?;
    let decode_granularity = granularity(
        "--decode-interpolation-granularity",
        flags
            .decode_interpolation_granularity
            .or_else(|| pick!(None::<u32>, sweep.decode_interpolation_granularity).map(i64::from)),
        6,
    )?;
    let max_context_length = flags
        .max_context_length
        .or_else(|| pick!(None::<u32>, engine.max_context_length).map(i64::from))
        .map(|v| {
            if v <= 612 || v > i64::from(u32::MAX) {
                Err(invalid(
                    "--max-context-length",
                    v,
                    "it must exceed 612 tokens (the prefill sweep starts at 100 and leaves 512 for the chat template)",
                ))
            } else {
                Ok(v as u32)
            }
        })
        .transpose()?;
    if let Some(ctx) = max_context_length {
        if u64::from(isl) + u64::from(osl) > u64::from(ctx) {
            return Err(invalid(
                "--max-context-length",
                ctx,
                format!("ISL {isl} + OSL {osl} does not fit; raise it or shorten the requests"),
            ));
        }
    }

    let base_config = flags
        .config
        .clone()
        .or_else(|| pick!(None::<String>, engine.config).map(PathBuf::from));
    let planner_args = {
        let mut m = from_dgdr.planner.clone().unwrap_or_default();
        m.extend(given.planner.clone().unwrap_or_default());
        for key in m.keys() {
            if !key.starts_with("planner_") {
                return Err(invalid(
                    "planner",
                    key,
                    format!("planner arguments take the planner_ prefix, e.g. planner_{key}"),
                ));
            }
        }
        m
    };
    let model_cache = pick!(None::<ModelCacheSection>, deployment.model_cache);
    let overrides = dgdr.and_then(|d| d.spec.deployment_overrides.clone());
    let mut labels = BTreeMap::new();
    if let Some(d) = dgdr {
        if let Some(name) = d.name() {
            labels.insert("dgdr.nvidia.com/name".to_string(), name.to_string());
        }
        if let Some(ns) = d.metadata.get("namespace").and_then(|v| v.as_str()) {
            labels.insert("dgdr.nvidia.com/namespace".to_string(), ns.to_string());
        }
    }
    if let Some(extra) = overrides.as_ref().and_then(|o| o.labels.clone()) {
        labels.extend(extra);
    }
    let settings = ProfileSettings {
        backend,
        model,
        perf_model_id,
        system,
        backend_version,
        isl,
        osl,
        ttft_ms,
        itl_ms,
        min_num_gpus,
        max_num_gpus,
        num_gpus_per_node,
        simulate,
        prefill_granularity,
        decode_granularity,
        max_context_length,
        base_config,
        output_dir: flags
            .output_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("profiling_results")),
        dry_run: flags.dry_run,
        planner_args,
        use_mocker: dgdr.and_then(|d| d.spec.use_mocker).unwrap_or(false),
        model_cache,
        workers_image: overrides.as_ref().and_then(|o| o.workers_image.clone()),
        deployment_name: overrides.as_ref().and_then(|o| o.name.clone()),
        labels,
    };
    if !settings.simulate {
        return Err(SettingsError::OnlineUnavailable);
    }
    Ok(settings)
}
