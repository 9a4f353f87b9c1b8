//! The built-in model catalog, so that `--model Qwen/Qwen3-32B` works offline.
//!
//! The entries live in `data/catalog.json` as serialized [`ModelArch`] values
//! (our own format: only the dimensions slaprof uses). The file is generated
//! by the ignored test `catalog::generate::regenerate` from the Hugging Face
//! configs in `shared/reference/model_configs` plus a table of published
//! dimensions for models outside that folder; a non-ignored test checks that
//! the committed file still matches what the generator produces. To add a
//! model, extend `generate::extra_models` and run
//! `cargo test -p spec regenerate -- --ignored`.

use crate::fuzzy;
use crate::model::ModelArch;
use std::sync::OnceLock;

const CATALOG_JSON: &str = include_str!("../data/catalog.json");

/// Every catalog model, ordered by id.
pub fn all() -> &'static [ModelArch] {
    static ALL: OnceLock<Vec<ModelArch>> = OnceLock::new();
    ALL.get_or_init(|| {
        // The file is compiled in and checked by the tests below, so a parse
        // failure is a build defect rather than bad user input.
        serde_json::from_str(CATALOG_JSON).expect("data/catalog.json is a list of ModelArch")
    })
}

/// Lower-cased Hugging Face id from the forms users type: `ORG/NAME`,
/// `ORG--NAME` (the cache/file-name form), or a huggingface.co URL.
fn normalize(name: &str) -> String {
    let mut n = name.trim();
    for prefix in [
        "https://huggingface.co/",
        "http://huggingface.co/",
        "huggingface.co/",
        "hf.co/",
    ] {
        if let Some(rest) = n.strip_prefix(prefix) {
            n = rest;
        }
    }
    let n = n.trim_matches('/');
    let n = if n.contains('/') {
        n.to_string()
    } else {
        n.replacen("--", "/", 1)
    };
    n.to_ascii_lowercase()
}

/// A catalog model by Hugging Face id, case-insensitively. Also accepts the
/// `ORG--NAME` form and, when only one organisation publishes it, the bare
/// `NAME` (`Qwen3-32B`).
pub fn find(name: &str) -> Option<ModelArch> {
    find_ref(name).cloned()
}

/// Like [`find`], without cloning.
pub fn find_ref(name: &str) -> Option<&'static ModelArch> {
    let n = normalize(name);
    if n.is_empty() {
        return None;
    }
    if let Some(m) = all().iter().find(|m| m.name.to_ascii_lowercase() == n) {
        return Some(m);
    }
    if n.contains('/') {
        return None;
    }
    let mut bare = all()
        .iter()
        .filter(|m| bare_name(&m.name).eq_ignore_ascii_case(&n));
    match (bare.next(), bare.next()) {
        (Some(m), None) => Some(m),
        _ => None,
    }
}

fn bare_name(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or(id)
}

/// The catalog id closest to `name`, for "did you mean" hints.
pub fn suggest(name: &str) -> Option<String> {
    let n = normalize(name);
    let bare_query = bare_name(&n).to_string();
    let with_org = n.contains('/');
    fuzzy::nearest(
        if with_org { &n } else { &bare_query },
        all().iter().map(|m| {
            let key = if with_org {
                m.name.clone()
            } else {
                bare_name(&m.name).to_string()
            };
            (m.name.as_str(), vec![key])
        }),
    )
}

#[cfg(test)]
mod generate {
    //! Builds the catalog. Run `cargo test -p spec regenerate -- --ignored`
    //! to rewrite `data/catalog.json`.

    use super::*;
    use crate::hf::parse_hf_checkpoint;
    use serde_json::{json, Value};
    use std::path::PathBuf;

    fn reference_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/model_configs")
    }

    fn catalog_path() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("data/catalog.json")
    }

    fn fp8_block() -> Value {
        json!({"quant_method": "fp8", "weight_block_size": [128, 128]})
    }

    #[allow(clippy::too_many_arguments)]
    fn dense(
        arch: &str,
        hidden: u32,
        layers: u32,
        heads: u32,
        kv: u32,
        head_dim: u32,
        inter: u32,
        vocab: u32,
        tied: bool,
        max_pos: u32,
    ) -> Value {
        json!({
            "architectures": [arch], "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": head_dim,
            "intermediate_size": inter, "vocab_size": vocab, "tie_word_embeddings": tied,
            "max_position_embeddings": max_pos
        })
    }

    fn llama(hidden: u32, layers: u32, heads: u32, inter: u32) -> Value {
        dense(
            "LlamaForCausalLM",
            hidden,
            layers,
            heads,
            8,
            128,
            inter,
            128_256,
            false,
            131_072,
        )
    }

    fn with(mut v: Value, extra: Value) -> Value {
        if let (Value::Object(base), Value::Object(extra)) = (&mut v, extra) {
            base.extend(extra);
        }
        v
    }

    /// DeepSeek-V3 layout: MLA, 3 dense layers, 256 experts + 1 shared.
    fn deepseek_v3() -> Value {
        json!({
            "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3",
            "hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048,
            "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
            "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8,
            "first_k_dense_replace": 3, "moe_layer_freq": 1, "kv_lora_rank": 512,
            "q_lora_rank": 1536, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
            "v_head_dim": 128, "vocab_size": 129280, "max_position_embeddings": 163840,
            "tie_word_embeddings": false, "quantization_config": fp8_block()
        })
    }

    /// Kimi K2: the DeepSeek-V3 layout with 64 heads, 384 experts, 1 dense layer.
    fn kimi_k2(max_pos: u32) -> Value {
        with(
            deepseek_v3(),
            json!({
                "num_attention_heads": 64, "num_key_value_heads": 64, "n_routed_experts": 384,
                "first_k_dense_replace": 1, "vocab_size": 163840, "max_position_embeddings": max_pos
            }),
        )
    }

    fn qwen3_235b() -> Value {
        json!({
            "architectures": ["Qwen3MoeForCausalLM"], "model_type": "qwen3_moe",
            "hidden_size": 4096, "num_hidden_layers": 94, "num_attention_heads": 64,
            "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 12288,
            "moe_intermediate_size": 1536, "num_experts": 128, "num_experts_per_tok": 8,
            "decoder_sparse_step": 1, "mlp_only_layers": [], "vocab_size": 151936,
            "tie_word_embeddings": false, "max_position_embeddings": 40960
        })
    }

    /// Published dimensions of catalog models without a reference config
    /// (model cards and the architecture each family shares).
    fn extra_models() -> Vec<(&'static str, Value)> {
        let qwen3 = |hidden, layers, heads, inter, tied| {
            dense(
                "Qwen3ForCausalLM",
                hidden,
                layers,
                heads,
                8,
                128,
                inter,
                151_936,
                tied,
                40_960,
            )
        };
        let mixtral_8x7b = json!({
            "architectures": ["MixtralForCausalLM"], "hidden_size": 4096, "num_hidden_layers": 32,
            "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
            "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000,
            "tie_word_embeddings": false, "max_position_embeddings": 32768
        });
        let kimi_int4 = json!({"quantization_config": {
            "quant_method": "compressed-tensors",
            "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": null,
                "weights": {"num_bits": 4, "type": "int", "strategy": "group", "group_size": 32}}},
            "ignore": ["lm_head", "re:.*self_attn.*", "re:.*shared_experts.*",
                       "re:.*mlp\\.(gate|up|gate_up|down)_proj.*"]
        }});
        vec![
            ("meta-llama/Llama-3.1-8B", llama(4096, 32, 32, 14336)),
            (
                "meta-llama/Llama-3.1-70B-Instruct",
                llama(8192, 80, 64, 28672),
            ),
            (
                "meta-llama/Llama-3.3-70B-Instruct",
                llama(8192, 80, 64, 28672),
            ),
            ("meta-llama/Llama-3.1-405B", llama(16384, 126, 128, 53248)),
            (
                "meta-llama/Llama-3.1-405B-Instruct",
                llama(16384, 126, 128, 53248),
            ),
            ("Qwen/Qwen3-4B", qwen3(2560, 36, 32, 9728, true)),
            ("Qwen/Qwen3-14B", qwen3(5120, 40, 40, 17408, false)),
            ("Qwen/Qwen3-235B-A22B", qwen3_235b()),
            (
                "Qwen/Qwen3-235B-A22B-FP8",
                with(qwen3_235b(), json!({"quantization_config": fp8_block()})),
            ),
            ("mistralai/Mixtral-8x7B-Instruct-v0.1", mixtral_8x7b),
            ("deepseek-ai/DeepSeek-V3-0324", deepseek_v3()),
            ("deepseek-ai/DeepSeek-V3.1", deepseek_v3()),
            ("deepseek-ai/DeepSeek-R1-0528", deepseek_v3()),
            ("moonshotai/Kimi-K2-Instruct", kimi_k2(131072)),
            (
                "moonshotai/Kimi-K2-Thinking",
                with(kimi_k2(262144), kimi_int4),
            ),
        ]
    }

    /// The catalog as the generator builds it, or None without the reference
    /// folder.
    pub(super) fn build() -> Option<Vec<ModelArch>> {
        let dir = reference_dir();
        let entries = std::fs::read_dir(&dir).ok()?;
        let mut models = Vec::new();
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().to_string();
            let Some(stem) = file.strip_suffix(".json") else {
                continue;
            };
            if stem.ends_with(".hf_quant_config") {
                continue;
            }
            let id = stem.replacen("--", "/", 1);
            let config = std::fs::read_to_string(e.path()).unwrap();
            let quant =
                std::fs::read_to_string(dir.join(format!("{stem}.hf_quant_config.json"))).ok();
            models.push(parse_hf_checkpoint(&id, &config, quant.as_deref()).unwrap());
        }
        for (id, config) in extra_models() {
            assert!(
                !models.iter().any(|m| m.name == id),
                "{id} is in the reference folder; drop it from extra_models"
            );
            models.push(parse_hf_checkpoint(id, &config.to_string(), None).unwrap());
        }
        models.sort_by_key(|m| m.name.to_ascii_lowercase());
        Some(models)
    }

    #[test]
    #[ignore = "rewrites data/catalog.json"]
    fn regenerate() {
        let models = build().expect("shared/reference/model_configs is needed to regenerate");
        let mut text = serde_json::to_string_pretty(&models).unwrap();
        text.push('\n');
        std::fs::write(catalog_path(), text).unwrap();
    }

    #[test]
    fn committed_catalog_matches_generator() {
        let Some(models) = build() else {
            eprintln!("skipping: {} not found", reference_dir().display());
            return;
        };
        let committed = all();
        for m in &models {
            let c = committed.iter().find(|c| c.name == m.name);
            assert_eq!(c, Some(m), "{} differs; run the regenerate test", m.name);
        }
        assert_eq!(models.len(), committed.len(), "run the regenerate test");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelFamily;

    #[test]
    fn required_models_are_present() {
        for id in [
            "meta-llama/Llama-3.1-8B",
            "meta-llama/Llama-3.1-70B",
            "Qwen/Qwen3-0.6B",
            "Qwen/Qwen3-1.7B",
            "Qwen/Qwen3-4B",
            "Qwen/Qwen3-8B",
            "Qwen/Qwen3-14B",
            "Qwen/Qwen3-32B",
            "Qwen/Qwen3-30B-A3B",
            "Qwen/Qwen3-235B-A22B",
            "mistralai/Mixtral-8x7B-v0.1",
            "deepseek-ai/DeepSeek-V3",
            "deepseek-ai/DeepSeek-R1",
            "openai/gpt-oss-120b",
            "zai-org/GLM-5",
            "moonshotai/Kimi-K2.5",
            "Qwen/Qwen3.5-397B-A17B",
            "nvidia/DeepSeek-R1-NVFP4",
        ] {
            let m = find(id).unwrap_or_else(|| panic!("{id} missing from the catalog"));
            assert_eq!(m.name, id);
            let l = m.layers;
            assert_eq!(
                l.full_attention + l.sliding_attention + l.linear_attention,
                m.num_layers
            );
            assert_eq!(l.dense_ffn + l.moe_ffn, m.num_layers);
        }
    }

    #[test]
    fn lookup_forms() {
        assert_eq!(find("qwen/qwen3-32b").unwrap().name, "Qwen/Qwen3-32B");
        assert_eq!(find("Qwen--Qwen3-32B").unwrap().name, "Qwen/Qwen3-32B");
        assert_eq!(
            find("https://huggingface.co/Qwen/Qwen3-32B/").unwrap().name,
            "Qwen/Qwen3-32B"
        );
        assert_eq!(find("Qwen3-32B").unwrap().name, "Qwen/Qwen3-32B");
        // Published by two organisations: ambiguous without one.
        assert!(find("GLM-5").is_none());
        assert!(find("").is_none());
        assert!(find("acme/none").is_none());
    }

    #[test]
    fn published_dims_of_extra_models() {
        let q4 = find("Qwen/Qwen3-4B").unwrap();
        assert!(q4.tie_word_embeddings);
        assert!(
            ((q4.total_params() - 4.02e9) / 4.02e9).abs() < 0.03,
            "{}",
            q4.total_params()
        );
        let q14 = find("Qwen/Qwen3-14B").unwrap();
        assert!(
            ((q14.total_params() - 14.8e9) / 14.8e9).abs() < 0.03,
            "{}",
            q14.total_params()
        );
        let big = find("Qwen/Qwen3-235B-A22B").unwrap();
        assert_eq!(big.family(), ModelFamily::GqaMoe);
        assert!(
            ((big.total_params() - 235e9) / 235e9).abs() < 0.03,
            "{}",
            big.total_params()
        );
        let l8 = find("meta-llama/Llama-3.1-8B").unwrap();
        assert!(((l8.total_params() - 8.03e9) / 8.03e9).abs() < 0.03);
        let k2 = find("moonshotai/Kimi-K2-Instruct").unwrap();
        assert!(
            ((k2.total_params() - 1.03e12) / 1.03e12).abs() < 0.03,
            "{}",
            k2.total_params()
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("Qwen/Qwen3-33B").as_deref(), Some("Qwen/Qwen3-32B"));
        assert_eq!(
            suggest("deepseek-v3").as_deref(),
            Some("deepseek-ai/DeepSeek-V3")
        );
        assert_eq!(
            suggest("llama-3.1-8b").as_deref(),
            Some("meta-llama/Llama-3.1-8B")
        );
        assert_eq!(suggest("zzzzzzzzzzzzzzzzzzzz"), None);
    }
}
