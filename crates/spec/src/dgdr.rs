//! DynamoGraphDeploymentRequest (DGDR, `nvidia.com/v1alpha1`) and its
//! `profilingConfig.config` block: what a user asks the profiler for.
//!
//! Every section rejects unknown keys, so a typo such as `ttfy` fails loudly
//! instead of silently falling back to a default; [`explain_unknown_key`]
//! turns serde's message into one that names the nearest valid key.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `spec.profilingConfig.config`: the profiler's own settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProfilingConfig {
    #[serde(default)]
    pub sla: Option<SlaSection>,
    #[serde(default)]
    pub hardware: Option<HardwareSection>,
    #[serde(default)]
    pub sweep: Option<SweepSection>,
    /// Arguments for the SLA planner, `planner_`-prefixed as in the seed.
    #[serde(default)]
    pub planner: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub deployment: Option<DeploymentSection>,
    #[serde(default)]
    pub engine: Option<EngineSection>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SlaSection {
    pub isl: Option<u32>,
    pub osl: Option<u32>,
    /// Target time to first token, ms.
    pub ttft: Option<f64>,
    /// Target inter-token latency, ms.
    pub itl: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HardwareSection {
    pub min_num_gpus_per_engine: Option<u32>,
    pub max_num_gpus_per_engine: Option<u32>,
    pub num_gpus_per_node: Option<u32>,
    /// Informational in the seed; slaprof uses it as the system when no
    /// `aicSystem` is given.
    pub gpu_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SweepSection {
    pub use_ai_configurator: Option<bool>,
    pub aic_system: Option<String>,
    pub aic_hf_id: Option<String>,
    pub aic_backend_version: Option<String>,
    pub prefill_interpolation_granularity: Option<u32>,
    pub decode_interpolation_granularity: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentSection {
    pub model: Option<String>,
    pub model_cache: Option<ModelCacheSection>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ModelCacheSection {
    pub pvc_name: String,
    #[serde(default)]
    pub pvc_path: String,
    pub mount_path: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct EngineSection {
    pub backend: Option<String>,
    /// Path of the base DGD YAML.
    pub config: Option<String>,
    pub max_context_length: Option<u32>,
}

/// A whole DGDR document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Dgdr {
    pub api_version: String,
    pub kind: String,
    /// Kubernetes object metadata: free-form, only `name` is read.
    #[serde(default)]
    pub metadata: serde_json::Value,
    pub spec: DgdrSpec,
    /// Written by the operator; accepted and ignored on input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DgdrSpec {
    pub model: Option<String>,
    pub backend: Option<String>,
    pub use_mocker: Option<bool>,
    pub auto_apply: Option<bool>,
    pub enable_gpu_discovery: Option<bool>,
    pub profiling_config: Option<DgdrProfiling>,
    pub deployment_overrides: Option<DeploymentOverrides>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DgdrProfiling {
    pub profiler_image: Option<String>,
    pub config_map_ref: Option<ConfigMapRef>,
    pub config: Option<ProfilingConfig>,
    #[serde(rename = "outputPVC")]
    pub output_pvc: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConfigMapRef {
    pub name: String,
    #[serde(default)]
    pub key: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeploymentOverrides {
    pub workers_image: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
}

pub const DGDR_API_VERSION: &str = "nvidia.com/v1alpha1";
pub const DGDR_KIND: &str = "DynamoGraphDeploymentRequest";

impl Dgdr {
    /// Checks what serde cannot: the document is a DGDR of the right API.
    pub fn check_kind(&self) -> Result<(), String> {
        if self.kind != DGDR_KIND {
            return Err(format!("kind is '{}', expected '{DGDR_KIND}'", self.kind));
        }
        if self.api_version != DGDR_API_VERSION {
            return Err(format!(
                "apiVersion is '{}', expected '{DGDR_API_VERSION}'",
                self.api_version
            ));
        }
        Ok(())
    }

    pub fn name(&self) -> Option<&str> {
        self.metadata.get("name").and_then(|v| v.as_str())
    }

    /// The profiler settings block, empty when absent.
    pub fn profiling_config(&self) -> ProfilingConfig {
        self.spec
            .profiling_config
            .as_ref()
            .and_then(|p| p.config.clone())
            .unwrap_or_default()
    }
}

/// Every key of the DGDR vocabulary, for "did you mean" hints.
const KNOWN_KEYS: &[&str] = &[
    "sla",
    "hardware",
    "sweep",
    "planner",
    "deployment",
    "engine",
    "isl",
    "osl",
    "ttft",
    "itl",
    "minNumGpusPerEngine",
    "maxNumGpusPerEngine",
    "numGpusPerNode",
    "gpuType",
    "useAiConfigurator",
    "aicSystem",
    "aicHfId",
    "aicBackendVersion",
    "prefillInterpolationGranularity",
    "decodeInterpolationGranularity",
    "model",
    "modelCache",
    "pvcName",
    "pvcPath",
    "mountPath",
    "backend",
    "config",
    "maxContextLength",
    "apiVersion",
    "kind",
    "metadata",
    "spec",
    "status",
    "useMocker",
    "autoApply",
    "enableGpuDiscovery",
    "profilingConfig",
    "deploymentOverrides",
    "profilerImage",
    "configMapRef",
    "outputPVC",
    "name",
    "key",
    "workersImage",
    "namespace",
    "labels",
    "annotations",
];

/// Rewrites serde's "unknown field `x`, expected one of ..." so it leads
/// with the offending key and the nearest valid one. Other messages pass
/// through unchanged.
pub fn explain_unknown_key(message: &str) -> String {
    let Some(start) = message.find("unknown field `") else {
        return message.to_string();
    };
    let rest = &message[start + "unknown field `".len()..];
    let Some(end) = rest.find('`') else {
        return message.to_string();
    };
    let key = &rest[..end];
    // serde lists the valid keys of the section it was parsing (with or
    // without backticks, depending on the format crate); prefer those, since
    // a key valid elsewhere is still wrong here.
    let after = &rest[end + 1..];
    let list = after
        .find("expected one of ")
        .map(|i| &after[i + "expected one of ".len()..])
        .or_else(|| {
            after
                .find("expected ")
                .map(|i| &after[i + "expected ".len()..])
        })
        .unwrap_or("");
    let list = list.split('\n').next().unwrap_or("");
    let list = list.split(" at line").next().unwrap_or("");
    let expected: Vec<String> = list
        .split(',')
        .flat_map(|s| s.split(" or "))
        .map(|s| s.trim().trim_matches('`').trim().to_string())
        .filter(|s| !s.is_empty() && !s.contains(' '))
        .collect();
    let pool: Vec<String> = if expected.is_empty() {
        KNOWN_KEYS.iter().map(|s| s.to_string()).collect()
    } else {
        expected.clone()
    };
    let hint = crate::fuzzy::nearest(key, pool.iter().map(|k| (k.as_str(), vec![k.clone()])));
    let valid = if expected.is_empty() {
        String::new()
    } else {
        format!(" (valid keys here: {})", expected.join(", "))
    };
    match hint {
        Some(h) => format!("unknown key '{key}': did you mean '{h}'?{valid}\n{message}"),
        None => format!("unknown key '{key}'{valid}\n{message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_nearest_key() {
        let err = serde_json::from_str::<SlaSection>(r#"{"ttfy": 200}"#).unwrap_err();
        let msg = explain_unknown_key(&err.to_string());
        assert!(
            msg.starts_with("unknown key 'ttfy': did you mean 'ttft'?"),
            "{msg}"
        );
    }

    #[test]
    fn camel_case_sections_parse() {
        let cfg: ProfilingConfig = serde_json::from_str(
            r#"{"sla":{"isl":3000,"osl":150,"ttft":200,"itl":20},
                "hardware":{"minNumGpusPerEngine":2,"numGpusPerNode":8},
                "sweep":{"useAiConfigurator":true,"aicSystem":"h200_sxm"},
                "planner":{"planner_min_endpoint":2}}"#,
        )
        .unwrap();
        assert_eq!(cfg.sla.unwrap().isl, Some(3000));
        assert_eq!(cfg.hardware.unwrap().min_num_gpus_per_engine, Some(2));
        assert_eq!(cfg.sweep.unwrap().aic_system.as_deref(), Some("h200_sxm"));
        assert_eq!(cfg.planner.unwrap()["planner_min_endpoint"], 2);
    }
}
