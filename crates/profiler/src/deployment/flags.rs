//! Per-backend worker flags, following what Dynamo's profiler config
//! modifiers write for each parallel mapping (TP, TEP, DEP) and role.

use super::args::{add_switch, has, remove_switch, remove_valued, set, value_of};
use super::Role;
use serde_json::{Map, Value};
use spec::{Backend, ParallelLayout};

/// The Python module a Dynamo worker runs for `backend`.
pub(crate) fn worker_module(backend: Backend) -> &'static str {
    match backend {
        Backend::Vllm => "dynamo.vllm",
        Backend::Sglang => "dynamo.sglang",
        Backend::Trtllm => "dynamo.trtllm",
    }
}

/// The flag that names the weights to load. vLLM takes `--model` for both
/// the weights and (by default) the served name; SGLang and TensorRT-LLM
/// workers take `--model-path` plus `--served-model-name`.
pub(crate) fn model_path_flag(backend: Backend) -> &'static str {
    match backend {
        Backend::Vllm => "--model",
        Backend::Sglang | Backend::Trtllm => "--model-path",
    }
}

const SERVED_NAME: &str = "--served-model-name";

/// Points a worker at `model`, loading weights from `model_path` when a
/// model cache is mounted. Without a cache, a local path already in the base
/// (`/...` or `./...`) is kept, as Dynamo keeps a user's pre-downloaded
/// weights, and only the served name changes.
pub(crate) fn apply_model(
    backend: Backend,
    words: &mut Vec<String>,
    model: &str,
    model_path: Option<&str>,
) {
    let path_flag = model_path_flag(backend);
    let keeps_local = model_path.is_none()
        && value_of(words, path_flag).is_some_and(|p| p.starts_with('/') || p.starts_with('.'));
    if !keeps_local {
        set(words, path_flag, model_path.unwrap_or(model));
    }
    let loads = value_of(words, path_flag).unwrap_or_default();
    let needs_served_name = backend != Backend::Vllm || loads != model || has(words, SERVED_NAME);
    if needs_served_name {
        set(words, SERVED_NAME, model);
    }
}

/// Marks a worker as the prefill or the decode half of a disaggregated pair.
pub(crate) fn apply_role(backend: Backend, words: &mut Vec<String>, role: Role) {
    match backend {
        // dynamo.vllm of this era marks prefill workers with a switch and
        // runs decode by default; newer ones take --disaggregation-mode,
        // which is kept when the base already uses it.
        Backend::Vllm if has(words, "--disaggregation-mode") => {
            set(words, "--disaggregation-mode", role.as_str());
        }
        Backend::Vllm => match role {
            Role::Prefill => {
                remove_switch(words, "--is-decode-worker");
                add_switch(words, "--is-prefill-worker");
            }
            Role::Decode => remove_switch(words, "--is-prefill-worker"),
        },
        Backend::Sglang | Backend::Trtllm => {
            set(words, "--disaggregation-mode", role.as_str());
        }
    }
}

/// Why a layout cannot be expressed for a backend.
pub(crate) type LayoutError = String;

/// Writes the parallel layout into a worker's flags.
pub(crate) fn apply_layout(
    backend: Backend,
    words: &mut Vec<String>,
    layout: &ParallelLayout,
    gpus_per_node: u32,
) -> Result<(), LayoutError> {
    match backend {
        Backend::Vllm => vllm_layout(words, layout, gpus_per_node),
        Backend::Sglang => {
            sglang_layout(words, layout);
            Ok(())
        }
        Backend::Trtllm => trtllm_layout(words, layout),
    }
}

fn is_plain_tp(layout: &ParallelLayout) -> bool {
    layout.dp == 1 && layout.moe_ep == 1
}

/// vLLM: `--tensor-parallel-size` is the attention TP, `--data-parallel-size`
/// the attention DP ranks, and `--enable-expert-parallel` shards the experts
/// over all TP x DP GPUs (vLLM derives EP = TP x DP itself).
fn vllm_layout(
    words: &mut Vec<String>,
    l: &ParallelLayout,
    gpus_per_node: u32,
) -> Result<(), LayoutError> {
    if l.moe_ep > 1 && l.moe_tp > 1 {
        return Err(format!(
            "vLLM spreads experts over all TP x DP GPUs when expert parallelism is on, so MoE TP {} x EP {} \
             cannot be expressed; use moe_ep = tp x dp (TEP/DEP) or moe_ep = 1 (TP)",
            l.moe_tp, l.moe_ep
        ));
    }
    for alias in ["--tp", "-tp"] {
        remove_valued(words, alias);
    }
    set(words, "--tensor-parallel-size", &l.tp.to_string());
    for alias in ["--dp", "-dp"] {
        remove_valued(words, alias);
    }
    if is_plain_tp(l) {
        remove_valued(words, "--data-parallel-size");
        remove_valued(words, "--data-parallel-size-local");
        remove_switch(words, "--data-parallel-hybrid-lb");
        remove_switch(words, "--enable-expert-parallel");
    } else {
        set(words, "--data-parallel-size", &l.dp.to_string());
        // Hybrid load balancing only makes sense for a DP engine spanning
        // nodes, and only when the base asked for it.
        let spans_nodes = l.num_gpus() > gpus_per_node;
        if spans_nodes && l.dp > 1 && has(words, "--data-parallel-hybrid-lb") {
            let local = (gpus_per_node / l.tp.max(1)).max(1);
            set(words, "--data-parallel-size-local", &local.to_string());
        } else {
            remove_valued(words, "--data-parallel-size-local");
            remove_switch(words, "--data-parallel-hybrid-lb");
        }
        if l.moe_ep > 1 {
            add_switch(words, "--enable-expert-parallel");
        } else {
            remove_switch(words, "--enable-expert-parallel");
        }
    }
    remove_valued(words, "-pp");
    if l.pp > 1 {
        set(words, "--pipeline-parallel-size", &l.pp.to_string());
    } else {
        remove_valued(words, "--pipeline-parallel-size");
    }
    Ok(())
}

/// SGLang: `--tp` is the GPUs of one stage (attention TP x DP), `--dp` with
/// `--enable-dp-attention` splits attention into DP ranks, `--ep-size` is the
/// expert-parallel size (MoE TP is what is left of `--tp`).
fn sglang_layout(words: &mut Vec<String>, l: &ParallelLayout) {
    for alias in ["--tp-size", "--tensor-parallel-size"] {
        remove_valued(words, alias);
    }
    set(words, "--tp", &l.stage_gpus().to_string());
    for alias in ["--dp-size", "--data-parallel-size"] {
        remove_valued(words, alias);
    }
    if l.dp > 1 {
        set(words, "--dp", &l.dp.to_string());
        add_switch(words, "--enable-dp-attention");
    } else {
        remove_valued(words, "--dp");
        remove_switch(words, "--enable-dp-attention");
    }
    for alias in ["--ep", "--expert-parallel-size"] {
        remove_valued(words, alias);
    }
    if l.moe_ep > 1 {
        set(words, "--ep-size", &l.moe_ep.to_string());
    } else {
        remove_valued(words, "--ep-size");
    }
    remove_valued(words, "--pipeline-parallel-size");
    if l.pp > 1 {
        set(words, "--pp-size", &l.pp.to_string());
    } else {
        remove_valued(words, "--pp-size");
    }
}

pub(crate) const TRTLLM_OVERRIDE: &str = "--override-engine-args";

/// TensorRT-LLM takes parallelism as LLM-API fields in the
/// `--override-engine-args` JSON, merged over the `--extra-engine-args` YAML:
/// `tensor_parallel_size` counts every GPU of a stage, `enable_attention_dp`
/// turns it into attention DP ranks, and `moe_expert_parallel_size` /
/// `moe_tensor_parallel_size` split the experts.
fn trtllm_layout(words: &mut Vec<String>, l: &ParallelLayout) -> Result<(), LayoutError> {
    if l.dp > 1 && l.tp > 1 {
        return Err(format!(
            "TensorRT-LLM's attention DP gives every rank the whole attention block, so attention TP {} \
             with DP {} cannot be expressed; use tp = 1 with attention DP (DEP)",
            l.tp, l.dp
        ));
    }
    let mut over = match value_of(words, TRTLLM_OVERRIDE) {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(format!(
                    "{TRTLLM_OVERRIDE} must be a JSON object, got `{text}`; fix or remove it in the base config"
                ))
            }
        },
    };
    remove_valued(words, TRTLLM_OVERRIDE);
    over.insert("tensor_parallel_size".into(), l.stage_gpus().into());
    if is_plain_tp(l) {
        for k in [
            "moe_expert_parallel_size",
            "moe_tensor_parallel_size",
            "enable_attention_dp",
        ] {
            over.remove(k);
        }
    } else {
        over.insert("moe_expert_parallel_size".into(), l.moe_ep.into());
        over.insert("moe_tensor_parallel_size".into(), l.moe_tp.into());
        over.insert("enable_attention_dp".into(), (l.dp > 1).into());
        if l.dp == 1 {
            // The WIDEEP MoE backend needs attention DP; Dynamo drops it for TEP.
            if let Some(Value::Object(moe)) = over.get_mut("moe_config") {
                if moe.get("backend").and_then(Value::as_str) == Some("WIDEEP") {
                    moe.remove("backend");
                }
                if moe.is_empty() {
                    over.remove("moe_config");
                }
            }
        }
    }
    if l.pp > 1 {
        over.insert("pipeline_parallel_size".into(), l.pp.into());
    } else {
        over.remove("pipeline_parallel_size");
    }
    set(words, TRTLLM_OVERRIDE, &Value::Object(over).to_string());
    Ok(())
}
