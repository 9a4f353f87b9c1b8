//! Built-in disaggregated DGD templates, one per backend, in the shape of
//! the `deploy/disagg.yaml` examples Dynamo ships with each backend: a
//! Frontend, a prefill worker and a decode worker with one GPU each, serving
//! a small default model until a plan points them at another.

use super::flags::{model_path_flag, worker_module};
use super::Role;
use serde_json::{json, Value};
use spec::Backend;

/// Release tag of the Dynamo runtime images the built-in templates use.
pub const DYNAMO_IMAGE_TAG: &str = "0.7.0";

/// Model the templates serve until a plan sets one.
pub(crate) const TEMPLATE_MODEL: &str = "Qwen/Qwen3-0.6B";

/// Secret with the Hugging Face token, mounted as env into workers.
pub(crate) const HF_TOKEN_SECRET: &str = "hf-token-secret";

pub(crate) fn runtime_image(backend: Backend) -> String {
    let repo = match backend {
        Backend::Vllm => "vllm-runtime",
        Backend::Sglang => "sglang-runtime",
        Backend::Trtllm => "tensorrtllm-runtime",
    };
    format!("nvcr.io/nvidia/ai-dynamo/{repo}:{DYNAMO_IMAGE_TAG}")
}

/// Service keys Dynamo's planner looks for when a worker carries no
/// `subComponentType` (its per-backend defaults, plus older spellings).
pub(crate) fn fallback_worker_names(role: Role) -> &'static [&'static str] {
    match role {
        Role::Prefill => &[
            "VllmPrefillWorker",
            "TRTLLMPrefillWorker",
            "SGLangPrefillWorker",
            "prefill",
        ],
        Role::Decode => &[
            "VllmDecodeWorker",
            "TRTLLMDecodeWorker",
            "SGLangDecodeWorker",
            "decode",
        ],
    }
}

/// The service key a built-in template gives a worker.
pub(crate) fn worker_service_name(backend: Backend, role: Role) -> &'static str {
    match (backend, role) {
        (Backend::Vllm, Role::Prefill) => "VllmPrefillWorker",
        (Backend::Vllm, Role::Decode) => "VllmDecodeWorker",
        // SGLang's planner names are short so Grove's generated resource
        // names stay under the Kubernetes length limit.
        (Backend::Sglang, Role::Prefill) => "prefill",
        (Backend::Sglang, Role::Decode) => "decode",
        (Backend::Trtllm, Role::Prefill) => "TRTLLMPrefillWorker",
        (Backend::Trtllm, Role::Decode) => "TRTLLMDecodeWorker",
    }
}

/// Working directory of a worker container in the runtime image.
fn working_dir(backend: Backend) -> &'static str {
    match backend {
        Backend::Vllm => "/workspace/examples/backends/vllm",
        Backend::Sglang => "/workspace/examples/backends/sglang",
        // The engine-config paths below are relative to the repo root.
        Backend::Trtllm => "/workspace/",
    }
}

/// Arguments of a template worker, before any plan is applied.
pub(crate) fn template_args(backend: Backend, role: Role) -> Vec<String> {
    let m = TEMPLATE_MODEL;
    let mut a: Vec<String> = vec![model_path_flag(backend).into(), m.into()];
    match backend {
        Backend::Vllm => {
            if role == Role::Prefill {
                a.push("--is-prefill-worker".into());
            }
        }
        Backend::Sglang => {
            for w in [
                "--served-model-name",
                m,
                "--page-size",
                "16",
                "--tp",
                "1",
                "--trust-remote-code",
                "--skip-tokenizer-init",
                "--disaggregation-mode",
                role.as_str(),
                // NIXL moves the KV cache from prefill to decode GPUs.
                "--disaggregation-transfer-backend",
                "nixl",
                "--disaggregation-bootstrap-port",
                "12345",
                "--host",
                "0.0.0.0",
            ] {
                a.push(w.into());
            }
        }
        Backend::Trtllm => {
            let engine_yaml = format!(
                "./examples/backends/trtllm/engine_configs/qwen3/{}.yaml",
                role.as_str()
            );
            for w in [
                "--served-model-name",
                m,
                "--extra-engine-args",
                &engine_yaml,
                "--disaggregation-mode",
                role.as_str(),
            ] {
                a.push(w.into());
            }
        }
    }
    a
}

pub(crate) fn worker_command(backend: Backend) -> Vec<String> {
    vec!["python3".into(), "-m".into(), worker_module(backend).into()]
}

fn worker(backend: Backend, role: Role, namespace: &str) -> Value {
    json!({
        "dynamoNamespace": namespace,
        "envFromSecret": HF_TOKEN_SECRET,
        "componentType": "worker",
        "subComponentType": role.as_str(),
        "replicas": 1,
        "resources": { "limits": { "gpu": "1" } },
        "extraPodSpec": {
            "mainContainer": {
                "image": runtime_image(backend),
                "workingDir": working_dir(backend),
                "command": worker_command(backend),
                "args": template_args(backend, role),
            }
        }
    })
}

pub(crate) fn builtin(backend: Backend) -> Value {
    let name = format!("{}-disagg", backend.as_str());
    let mut services = serde_json::Map::new();
    services.insert(
        "Frontend".into(),
        json!({
            "dynamoNamespace": name,
            "componentType": "frontend",
            "replicas": 1,
            "extraPodSpec": { "mainContainer": { "image": runtime_image(backend) } }
        }),
    );
    for role in [Role::Prefill, Role::Decode] {
        services.insert(
            worker_service_name(backend, role).into(),
            worker(backend, role, &name),
        );
    }
    json!({
        "apiVersion": super::DGD_API_VERSION,
        "kind": super::DGD_KIND,
        "metadata": { "name": name },
        "spec": { "services": services }
    })
}
