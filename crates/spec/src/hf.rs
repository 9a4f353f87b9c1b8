//! Reading Hugging Face `config.json` (and NVIDIA ModelOpt
//! `hf_quant_config.json`) text into a [`ModelArch`].
//!
//! The parser keys on which fields a config has rather than on architecture
//! names, so that new checkpoints of a known family (and unknown
//! architectures that use the standard field names) parse without code
//! changes: `kv_lora_rank` means MLA, `linear_num_key_heads` means Gated
//! DeltaNet layers, `index_topk` means DeepSeek sparse attention, an expert
//! count means MoE. Multimodal wrappers (Qwen3.5, Kimi-K2.5) keep the language
//! model under `text_config`, which is used whenever present.

use crate::model::{
    AttentionKind, LayerCounts, LinearAttnSpec, MlaSpec, ModelArch, MoeSpec, QuantScheme,
    SparseAttnSpec,
};
use crate::precision::{KvDtype, Precision};
use serde_json::{Map, Value};

/// How a user can get past a config the parser cannot use.
const HOW_TO_SUPPLY: &str = "pass --model /path/to/dir-with-config.json \
(a directory holding the model's complete Hugging Face config.json) or --model /path/to/config.json";

/// Why a config could not be turned into a [`ModelArch`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelConfigError {
    #[error("{name}: config is not valid JSON ({message}); {how}", how = HOW_TO_SUPPLY)]
    InvalidJson { name: String, message: String },

    #[error("{name}: config must be a JSON object; {how}", how = HOW_TO_SUPPLY)]
    NotAnObject { name: String },

    #[error(
        "{name} (architecture {architecture}): config.json has no '{field}', which slaprof needs; {how}",
        how = HOW_TO_SUPPLY
    )]
    MissingField {
        name: String,
        architecture: String,
        field: String,
    },

    #[error("{name} (architecture {architecture}): field '{field}' {problem}")]
    InvalidField {
        name: String,
        architecture: String,
        field: String,
        problem: String,
    },

    #[error("{name} (architecture {architecture}): unsupported quantization: {detail}")]
    UnsupportedQuantization {
        name: String,
        architecture: String,
        detail: String,
    },

    #[error("hf_quant_config.json: {0}")]
    InvalidQuantConfig(String),
}

type Result<T> = std::result::Result<T, ModelConfigError>;

/// Parses the text of a Hugging Face `config.json` for the model called `name`
/// (normally its Hugging Face id).
///
/// The native precision comes from `quantization_config` only; use
/// [`parse_hf_checkpoint`] to also take a ModelOpt `hf_quant_config.json` and
/// the checkpoint name into account. When the config states no context length,
/// `max_position_embeddings` is `u32::MAX` (unknown, so nothing is rejected
/// for being too long).
pub fn parse_hf_config(name: &str, json: &str) -> Result<ModelArch> {
    let root: Value = serde_json::from_str(json).map_err(|e| ModelConfigError::InvalidJson {
        name: name.to_string(),
        message: e.to_string(),
    })?;
    let root = root
        .as_object()
        .ok_or_else(|| ModelConfigError::NotAnObject {
            name: name.to_string(),
        })?;
    Cfg::new(name, root).parse()
}

/// Parses a checkpoint: its `config.json`, its `hf_quant_config.json` when it
/// ships one, and, failing any quantization metadata that agrees with it, the
/// precision its name advertises.
///
/// The name hint exists because re-published checkpoints (NVIDIA's `-NVFP4`,
/// `-FP8` repos) sometimes carry their precision only in `hf_quant_config.json`
/// or keep the base model's stale `quantization_config`; when that file is
/// missing the name is the best evidence left.
pub fn parse_hf_checkpoint(
    name: &str,
    config_json: &str,
    hf_quant_config_json: Option<&str>,
) -> Result<ModelArch> {
    let mut arch = parse_hf_config(name, config_json)?;
    match hf_quant_config_json {
        Some(q) => {
            let q = parse_hf_quant_config(q)?;
            arch.native_quant = q.refine(arch.native_quant);
        }
        None => {
            if let Some(p) = precision_hint_from_name(name) {
                arch.native_quant = apply_name_hint(arch.native_quant, p);
            }
        }
    }
    Ok(arch)
}

/// The precision a checkpoint name advertises by a trailing tag such as
/// `-FP8`, `-NVFP4` or `-FP4` (`nvidia/DeepSeek-R1-NVFP4`, `Qwen/Qwen3-32B-FP8`).
pub fn precision_hint_from_name(name: &str) -> Option<Precision> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let upper = base.to_ascii_uppercase();
    // Tags sit among '-'/'_'-separated words; look at each so "FP8" inside a
    // longer word (unlikely, but cheap to avoid) does not count.
    let mut hint = None;
    for word in upper.split(['-', '_', '.']) {
        match word {
            "NVFP4" | "FP4" => hint = Some(Precision::Nvfp4),
            "MXFP4" => hint = Some(Precision::Mxfp4),
            "FP8" => hint = Some(Precision::Fp8),
            _ => {}
        }
    }
    hint
}

fn apply_name_hint(q: QuantScheme, hint: Precision) -> QuantScheme {
    let same_family = |p: Precision| match hint {
        Precision::Fp8 | Precision::Fp8Block => matches!(p, Precision::Fp8 | Precision::Fp8Block),
        other => p == other,
    };
    match hint {
        // gpt-oss style: only the experts are in fp4.
        Precision::Mxfp4 if !same_family(q.moe) => QuantScheme {
            moe: Precision::Mxfp4,
            ..q
        },
        Precision::Mxfp4 => q,
        _ if same_family(q.moe) || same_family(q.gemm) => q,
        _ => QuantScheme {
            gemm: hint,
            moe: hint,
            kv: q.kv,
        },
    }
}

/// What an NVIDIA ModelOpt `hf_quant_config.json` says about a checkpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct HfQuantConfig {
    /// Weight precision of the quantized linear layers (None: not quantized).
    pub weights: Option<Precision>,
    /// KV-cache dtype, when the file sets one.
    pub kv: Option<KvDtype>,
    /// The attention projections are excluded from quantization.
    pub attention_excluded: bool,
}

impl HfQuantConfig {
    /// Applies this file on top of what `config.json` said.
    pub fn refine(&self, base: QuantScheme) -> QuantScheme {
        let mut q = base;
        if let Some(p) = self.weights {
            q.moe = p;
            if !self.attention_excluded {
                q.gemm = p;
            }
        }
        if let Some(kv) = self.kv {
            q.kv = kv;
        }
        q
    }
}

/// Parses an NVIDIA `hf_quant_config.json`
/// (`{"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8", ...}}`).
pub fn parse_hf_quant_config(json: &str) -> Result<HfQuantConfig> {
    let root: Value = serde_json::from_str(json)
        .map_err(|e| ModelConfigError::InvalidQuantConfig(format!("not valid JSON: {e}")))?;
    let obj = root
        .get("quantization")
        .or(Some(&root))
        .and_then(Value::as_object)
        .ok_or_else(|| ModelConfigError::InvalidQuantConfig("expected a JSON object".into()))?;
    let weights = match obj.get("quant_algo") {
        None | Some(Value::Null) => None,
        Some(Value::String(algo)) => Some(modelopt_algo(algo).ok_or_else(|| {
            ModelConfigError::InvalidQuantConfig(format!(
                "unsupported quant_algo '{algo}' (supported: FP8, FP8_BLOCK, NVFP4, MXFP4, W4A16_AWQ)"
            ))
        })?),
        Some(other) => {
            return Err(ModelConfigError::InvalidQuantConfig(format!(
                "quant_algo must be a string, got {other}"
            )))
        }
    };
    let kv = modelopt_kv(obj.get("kv_cache_quant_algo"));
    let attention_excluded = mentions_attention(obj.get("exclude_modules"));
    Ok(HfQuantConfig {
        weights,
        kv,
        attention_excluded,
    })
}

fn modelopt_algo(algo: &str) -> Option<Precision> {
    match algo.trim().to_ascii_uppercase().as_str() {
        "FP8" | "FP8_PER_CHANNEL_PER_TOKEN" => Some(Precision::Fp8),
        "FP8_BLOCK" | "FP8_BLOCKWISE" | "FP8_PB_WO" => Some(Precision::Fp8Block),
        "NVFP4" | "NVFP4_AWQ" => Some(Precision::Nvfp4),
        "MXFP4" => Some(Precision::Mxfp4),
        "W4A16_AWQ" | "INT4_AWQ" | "W4A8_AWQ" => Some(Precision::Int4Wo),
        _ => None,
    }
}

fn modelopt_kv(v: Option<&Value>) -> Option<KvDtype> {
    let algo = v.and_then(Value::as_str)?.to_ascii_uppercase();
    // KvDtype has no 4-bit cache; an NVFP4 cache is priced as the nearest
    // quantized one rather than as bf16.
    (algo.contains("FP8") || algo.contains("FP4")).then_some(KvDtype::Fp8)
}

/// Whether a list of excluded/ignored module patterns covers the attention
/// projections (`model.layers.*.self_attn`, `re:.*self_attn.*`).
fn mentions_attention(list: Option<&Value>) -> bool {
    list.and_then(Value::as_array).is_some_and(|items| {
        items.iter().filter_map(Value::as_str).any(|s| {
            let s = s.to_ascii_lowercase();
            // Norms are never quantized, and "post_attention_layernorm" would
            // otherwise read as attention.
            !s.contains("norm")
                && (s.contains("self_attn") || s.contains(".attn") || s.contains("attention"))
        })
    })
}

/// A config being parsed: the language-model part (`text`) and the wrapper
/// (`root`, the same object for plain causal LMs).
struct Cfg<'a> {
    name: &'a str,
    architecture: String,
    root: &'a Map<String, Value>,
    text: &'a Map<String, Value>,
}

impl<'a> Cfg<'a> {
    fn new(name: &'a str, root: &'a Map<String, Value>) -> Self {
        let text = match root.get("text_config") {
            Some(Value::Object(t)) => t,
            _ => root,
        };
        let first_arch = |m: &Map<String, Value>| {
            m.get("architectures")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let architecture = first_arch(root)
            .or_else(|| first_arch(text))
            .or_else(|| {
                root.get("model_type")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "unknown".to_string());
        Cfg {
            name,
            architecture,
            root,
            text,
        }
    }

    /// A key of the language model, falling back to the wrapper (Qwen3.5
    /// keeps `tie_word_embeddings` outside `text_config`).
    fn get(&self, key: &str) -> Option<&'a Value> {
        match self.text.get(key) {
            Some(Value::Null) | None => match self.root.get(key) {
                Some(Value::Null) | None => None,
                v => v,
            },
            v => v,
        }
    }

    fn invalid(&self, field: &str, problem: impl Into<String>) -> ModelConfigError {
        ModelConfigError::InvalidField {
            name: self.name.to_string(),
            architecture: self.architecture.clone(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    fn missing(&self, field: &str) -> ModelConfigError {
        ModelConfigError::MissingField {
            name: self.name.to_string(),
            architecture: self.architecture.clone(),
            field: field.to_string(),
        }
    }

    /// The first of `keys` present, as a non-negative integer. Integral floats
    /// (`4096.0`) are accepted since some exporters write them.
    fn opt_u32(&self, keys: &[&str]) -> Result<Option<u32>> {
        for key in keys {
            if let Some(v) = self.get(key) {
                let n = match v {
                    Value::Number(n) => n.as_u64().or_else(|| {
                        n.as_f64()
                            .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                            .map(|f| f as u64)
                    }),
                    _ => None,
                };
                return match n.and_then(|n| u32::try_from(n).ok()) {
                    Some(n) => Ok(Some(n)),
                    None => {
                        Err(self.invalid(key, format!("must be a non-negative integer, got {v}")))
                    }
                };
            }
        }
        Ok(None)
    }

    /// Like [`Self::opt_u32`], but absent is an error naming `keys[0]`.
    fn req_u32(&self, keys: &[&str]) -> Result<u32> {
        self.opt_u32(keys)?.ok_or_else(|| self.missing(keys[0]))
    }

    /// Like [`Self::req_u32`], and zero is an error too.
    fn req_positive(&self, keys: &[&str]) -> Result<u32> {
        let n = self.req_u32(keys)?;
        if n == 0 {
            return Err(self.invalid(keys[0], "must be at least 1, got 0"));
        }
        Ok(n)
    }

    fn opt_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    fn model_type(&self) -> String {
        self.text
            .get("model_type")
            .or_else(|| self.root.get("model_type"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    }

    fn parse(&self) -> Result<ModelArch> {
        let hidden_size = self.req_positive(&["hidden_size", "d_model", "n_embd"])?;
        let num_layers = self.req_positive(&["num_hidden_layers", "n_layer", "num_layers"])?;
        let vocab_size = self.req_positive(&["vocab_size", "padded_vocab_size"])?;
        let num_heads = self.req_positive(&["num_attention_heads", "n_head"])?;
        let model_type = self.model_type();
        // transformers omits keys equal to PretrainedConfig's defaults when
        // saving, and that default is tied.
        let tie_word_embeddings = self.opt_bool("tie_word_embeddings").unwrap_or(true);

        let mla = self.parse_mla()?;
        let linear_attention = self.parse_linear_attention()?;
        let sparse_attention = self.parse_sparse_attention()?;

        let (attention, num_kv_heads, head_dim) = match &mla {
            Some(m) => (
                AttentionKind::Mla,
                num_heads,
                m.qk_nope_head_dim + m.qk_rope_head_dim,
            ),
            None => {
                let kv = match self.opt_u32(&[
                    "num_key_value_heads",
                    "num_kv_heads",
                    "multi_query_group_num",
                ])? {
                    Some(0) => {
                        return Err(self.invalid("num_key_value_heads", "must be at least 1, got 0"))
                    }
                    Some(kv) => kv,
                    None if self.opt_bool("multi_query") == Some(true) => 1,
                    None => num_heads,
                };
                if num_heads % kv != 0 {
                    return Err(self.invalid(
                        "num_key_value_heads",
                        format!("({kv}) must divide num_attention_heads ({num_heads})"),
                    ));
                }
                let head_dim = match self.opt_u32(&["head_dim"])? {
                    Some(0) | None => hidden_size / num_heads,
                    Some(d) => d,
                };
                if head_dim == 0 {
                    return Err(self.invalid(
                        "num_attention_heads",
                        format!("({num_heads}) exceeds hidden_size ({hidden_size}) and no head_dim is given"),
                    ));
                }
                (AttentionKind::Gqa, kv, head_dim)
            }
        };

        let (attn_counts, sliding_window) =
            self.parse_attention_layers(num_layers, linear_attention.is_some())?;
        let (moe, moe_layers) = self.parse_moe(num_layers, &model_type)?;
        let moe_ffn = moe_layers.iter().filter(|m| **m).count() as u32;
        let dense_ffn = num_layers - moe_ffn;
        let layers = LayerCounts {
            dense_ffn,
            moe_ffn,
            ..attn_counts
        };

        let intermediate_size = if model_type.starts_with("llama4") {
            self.opt_u32(&["intermediate_size_mlp", "intermediate_size"])?
        } else {
            self.opt_u32(&["intermediate_size", "ffn_hidden_size", "n_inner"])?
        };
        let intermediate_size = match intermediate_size {
            Some(i) => i,
            // GPT-2 style configs leave n_inner null meaning 4 * hidden.
            None if dense_ffn > 0
                && matches!(model_type.as_str(), "gpt2" | "gpt_bigcode" | "gptj") =>
            {
                4 * hidden_size
            }
            None if dense_ffn > 0 => return Err(self.missing("intermediate_size")),
            None => 0,
        };

        let attn_output_gate = self.opt_bool("attn_output_gate").unwrap_or(false);
        let gated_mlp = !NON_GATED_MODEL_TYPES.contains(&model_type.as_str());
        let native_quant = self.parse_native_quant()?;
        let max_position_embeddings = self
            .opt_u32(&[
                "max_position_embeddings",
                "max_sequence_length",
                "seq_length",
                "n_positions",
            ])?
            .unwrap_or(u32::MAX);

        let arch = ModelArch {
            name: self.name.to_string(),
            architecture: self.architecture.clone(),
            hidden_size,
            num_layers,
            vocab_size,
            tie_word_embeddings,
            attention,
            num_heads,
            num_kv_heads,
            head_dim,
            mla,
            sliding_window,
            linear_attention,
            sparse_attention,
            attn_output_gate,
            layers,
            intermediate_size,
            gated_mlp,
            moe,
            native_quant,
            max_position_embeddings,
        };
        self.check_layer_sums(&arch)?;
        Ok(arch)
    }

    fn parse_mla(&self) -> Result<Option<MlaSpec>> {
        let Some(kv_lora_rank) = self.opt_u32(&["kv_lora_rank"])? else {
            return Ok(None);
        };
        Ok(Some(MlaSpec {
            q_lora_rank: self.opt_u32(&["q_lora_rank"])?.filter(|r| *r > 0),
            kv_lora_rank,
            qk_nope_head_dim: self.req_u32(&["qk_nope_head_dim"])?,
            qk_rope_head_dim: self.req_u32(&["qk_rope_head_dim"])?,
            v_head_dim: self.req_positive(&["v_head_dim"])?,
        }))
    }

    fn parse_linear_attention(&self) -> Result<Option<LinearAttnSpec>> {
        let Some(num_key_heads) = self.opt_u32(&["linear_num_key_heads"])? else {
            return Ok(None);
        };
        Ok(Some(LinearAttnSpec {
            num_key_heads,
            num_value_heads: self.req_positive(&["linear_num_value_heads"])?,
            key_head_dim: self.req_positive(&["linear_key_head_dim"])?,
            value_head_dim: self.req_positive(&["linear_value_head_dim"])?,
            // Qwen3-Next/3.5 use a width-4 causal conv; older exports omit it.
            conv_kernel: self.opt_u32(&["linear_conv_kernel_dim"])?.unwrap_or(4),
        }))
    }

    fn parse_sparse_attention(&self) -> Result<Option<SparseAttnSpec>> {
        let Some(index_topk) = self.opt_u32(&["index_topk"])? else {
            return Ok(None);
        };
        Ok(Some(SparseAttnSpec {
            index_topk,
            index_n_heads: self.req_positive(&["index_n_heads"])?,
            index_head_dim: self.req_positive(&["index_head_dim"])?,
        }))
    }

    /// Attention kind of every layer, and the sliding window when some layers
    /// use one.
    fn parse_attention_layers(
        &self,
        n: u32,
        has_linear: bool,
    ) -> Result<(LayerCounts, Option<u32>)> {
        let mut c = LayerCounts::default();
        let window = self.opt_u32(&["sliding_window"])?.filter(|w| *w > 0);
        if let Some(types) = self.get("layer_types") {
            let types = types
                .as_array()
                .ok_or_else(|| self.invalid("layer_types", "must be a list of strings"))?;
            if types.len() != n as usize {
                return Err(self.invalid(
                    "layer_types",
                    format!("has {} entries but num_hidden_layers is {n}", types.len()),
                ));
            }
            for t in types {
                let t = t.as_str().ok_or_else(|| {
                    self.invalid("layer_types", format!("entries must be strings, got {t}"))
                })?;
                match t {
                    "full_attention" | "attention" | "global_attention" => c.full_attention += 1,
                    "sliding_attention" | "sliding_window_attention" | "chunked_attention" | "local_attention" => {
                        c.sliding_attention += 1
                    }
                    "linear_attention" => c.linear_attention += 1,
                    other => {
                        return Err(self.invalid(
                            "layer_types",
                            format!(
                                "contains '{other}'; known kinds are full_attention, sliding_attention, linear_attention"
                            ),
                        ))
                    }
                }
            }
            if c.sliding_attention > 0 && window.is_none() {
                return Err(self.missing("sliding_window"));
            }
            if c.linear_attention > 0 && !has_linear {
                return Err(self.missing("linear_num_key_heads"));
            }
        } else if has_linear {
            // Qwen3-Next style: every `interval`-th layer is full attention.
            let interval = self
                .opt_u32(&["full_attention_interval"])?
                .unwrap_or(4)
                .max(1);
            c.full_attention = n / interval;
            c.linear_attention = n - c.full_attention;
        } else if let Some(w) = window.filter(|_| self.sliding_window_in_use()) {
            let max_pos = self
                .opt_u32(&["max_position_embeddings"])?
                .unwrap_or(u32::MAX);
            if w >= max_pos {
                // A window as long as the context is plain full attention.
                c.full_attention = n;
            } else if let Some(p) = self
                .opt_u32(&["sliding_window_pattern"])?
                .filter(|p| *p > 0)
            {
                // Gemma 2/3: every p-th layer is global.
                c.full_attention = n / p;
                c.sliding_attention = n - c.full_attention;
            } else if self.opt_bool("use_sliding_window") == Some(true) {
                // Qwen2: layers from max_window_layers on use the window.
                let from = self.opt_u32(&["max_window_layers"])?.unwrap_or(0).min(n);
                c.full_attention = from;
                c.sliding_attention = n - from;
            } else {
                // Mistral-7B: every layer slides.
                c.sliding_attention = n;
            }
        } else {
            c.full_attention = n;
        }
        let window = if c.sliding_attention > 0 {
            window
        } else {
            None
        };
        Ok((c, window))
    }

    /// Qwen2/3 configs carry a `sliding_window` value but switch it off with
    /// `use_sliding_window: false`; Mistral has no switch.
    fn sliding_window_in_use(&self) -> bool {
        self.opt_bool("use_sliding_window").unwrap_or(true)
    }

    /// The MoE dimensions and which layers are MoE.
    fn parse_moe(&self, n: u32, model_type: &str) -> Result<(Option<MoeSpec>, Vec<bool>)> {
        let experts = self.opt_u32(&[
            "n_routed_experts",
            "num_local_experts",
            "num_experts",
            "moe_num_experts",
        ])?;
        let num_experts = match experts {
            Some(e) if e > 0 => e,
            _ => return Ok((None, vec![false; n as usize])),
        };
        let top_k = self.req_positive(&[
            "num_experts_per_tok",
            "experts_per_token",
            "moe_top_k",
            "moe_topk",
        ])?;
        if top_k > num_experts {
            return Err(self.invalid(
                "num_experts_per_tok",
                format!("({top_k}) exceeds the number of experts ({num_experts})"),
            ));
        }
        let is_llama4 = model_type.starts_with("llama4");
        let expert_intermediate = if is_llama4 {
            self.req_positive(&["intermediate_size"])?
        } else {
            self.req_positive(&["moe_intermediate_size", "intermediate_size"])?
        };
        let shared_intermediate =
            if let Some(s) = self.opt_u32(&["shared_expert_intermediate_size"])? {
                s
            } else if let Some(k) = self.opt_u32(&["n_shared_experts", "num_shared_experts"])? {
                k * expert_intermediate
            } else if is_llama4 {
                // Llama 4 has one always-on shared expert the size of a routed one.
                expert_intermediate
            } else {
                0
            };

        let mlp_only: Vec<u64> = match self.get("mlp_only_layers") {
            Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).collect(),
            _ => Vec::new(),
        };
        let first_dense = self.opt_u32(&["first_k_dense_replace"])?;
        let freq = self.opt_u32(&["moe_layer_freq"])?.unwrap_or(1).max(1);
        let sparse_step = self.opt_u32(&["decoder_sparse_step", "interleave_moe_layer_step"])?;
        let layers = (0..n)
            .map(|i| {
                if mlp_only.contains(&u64::from(i)) {
                    false
                } else if let Some(k) = first_dense {
                    i >= k && i % freq == 0
                } else if let Some(step) = sparse_step.filter(|s| *s > 0) {
                    (i + 1) % step == 0
                } else {
                    true
                }
            })
            .collect();
        Ok((
            Some(MoeSpec {
                num_experts,
                top_k,
                expert_intermediate,
                shared_intermediate,
            }),
            layers,
        ))
    }

    fn parse_native_quant(&self) -> Result<QuantScheme> {
        let bf16 = QuantScheme {
            gemm: Precision::Bf16,
            moe: Precision::Bf16,
            kv: KvDtype::Bf16,
        };
        let Some(qc) = self.get("quantization_config") else {
            return Ok(bf16);
        };
        let qc = qc
            .as_object()
            .ok_or_else(|| self.invalid("quantization_config", "must be an object"))?;
        let method = qc
            .get("quant_method")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase();
        let unsupported = |detail: String| ModelConfigError::UnsupportedQuantization {
            name: self.name.to_string(),
            architecture: self.architecture.clone(),
            detail,
        };
        let excluded_attn = mentions_attention(qc.get("modules_to_not_convert"))
            || mentions_attention(qc.get("ignore"))
            || mentions_attention(qc.get("exclude_modules"));
        let kv = match qc.get("kv_cache_scheme") {
            Some(Value::Object(s)) if s.get("num_bits").and_then(Value::as_u64) == Some(8) => {
                KvDtype::Fp8
            }
            _ => modelopt_kv(qc.get("kv_cache_quant_algo")).unwrap_or(KvDtype::Bf16),
        };
        let scheme = |p: Precision| QuantScheme {
            gemm: if excluded_attn { Precision::Bf16 } else { p },
            moe: p,
            kv,
        };
        match method.as_str() {
            "fp8" | "fbgemm_fp8" => {
                let block = qc.get("weight_block_size").is_some_and(|v| !v.is_null());
                Ok(scheme(if block { Precision::Fp8Block } else { Precision::Fp8 }))
            }
            // MXFP4 in transformers only ever covers the experts.
            "mxfp4" => Ok(QuantScheme {
                gemm: Precision::Bf16,
                moe: Precision::Mxfp4,
                kv,
            }),
            "compressed-tensors" => {
                let p = compressed_tensors_precision(qc).map_err(unsupported)?;
                Ok(scheme(p))
            }
            "modelopt" => {
                let algo = qc.get("quant_algo").and_then(Value::as_str).unwrap_or("");
                let p = modelopt_algo(algo).ok_or_else(|| {
                    unsupported(format!("modelopt quant_algo '{algo}' (supported: FP8, FP8_BLOCK, NVFP4, MXFP4, W4A16_AWQ)"))
                })?;
                Ok(scheme(p))
            }
            "awq" | "gptq" | "awq_marlin" | "gptq_marlin" | "auto-round" => {
                let bits = qc.get("bits").or_else(|| qc.get("w_bit")).and_then(Value::as_u64);
                match bits {
                    Some(4) | None => Ok(scheme(Precision::Int4Wo)),
                    Some(b) => Err(unsupported(format!("{method} with {b}-bit weights (only 4-bit is modelled)"))),
                }
            }
            "" => Err(unsupported("quantization_config has no quant_method".into())),
            other => Err(unsupported(format!(
                "quant_method '{other}' (supported: fp8, mxfp4, compressed-tensors, modelopt, awq, gptq)"
            ))),
        }
    }

    fn check_layer_sums(&self, a: &ModelArch) -> Result<()> {
        let l = &a.layers;
        let attn = l.full_attention + l.sliding_attention + l.linear_attention;
        let ffn = l.dense_ffn + l.moe_ffn;
        if attn != a.num_layers || ffn != a.num_layers {
            return Err(self.invalid(
                "num_hidden_layers",
                format!(
                    "({}) disagrees with the per-layer description ({attn} attention layers, {ffn} FFN layers)",
                    a.num_layers
                ),
            ));
        }
        Ok(())
    }
}

/// Model types whose MLP is up/down only (no gate projection).
const NON_GATED_MODEL_TYPES: &[&str] = &[
    "gpt2",
    "gpt_bigcode",
    "gptj",
    "gpt_neox",
    "falcon",
    "starcoder2",
    "phi",
    "opt",
    "bloom",
    "mpt",
    "codegen",
];

/// The weight precision of a `compressed-tensors` checkpoint, from its
/// quantization groups.
fn compressed_tensors_precision(qc: &Map<String, Value>) -> std::result::Result<Precision, String> {
    let groups = qc
        .get("config_groups")
        .and_then(Value::as_object)
        .ok_or_else(|| "compressed-tensors config without config_groups".to_string())?;
    let mut found = None;
    for (group, g) in groups {
        let Some(w) = g.get("weights").and_then(Value::as_object) else {
            continue;
        };
        let bits = w.get("num_bits").and_then(Value::as_u64);
        let kind = w.get("type").and_then(Value::as_str).unwrap_or("int");
        let strategy = w.get("strategy").and_then(Value::as_str).unwrap_or("");
        let has_activations = g.get("input_activations").is_some_and(|a| !a.is_null());
        let p = match (kind, bits) {
            ("int", Some(4)) if !has_activations => Precision::Int4Wo,
            ("float", Some(8)) if strategy == "block" => Precision::Fp8Block,
            ("float", Some(8)) => Precision::Fp8,
            ("float", Some(4)) => Precision::Nvfp4,
            (kind, bits) => {
                return Err(format!(
                    "compressed-tensors group '{group}' stores {} {kind} weights{}, which slaprof does not model",
                    bits.map(|b| format!("{b}-bit")).unwrap_or_else(|| "unknown-width".into()),
                    if has_activations { " with quantized activations" } else { "" }
                ))
            }
        };
        found = Some(p);
    }
    found.ok_or_else(|| "compressed-tensors config_groups has no weight scheme".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelFamily;
    use std::path::PathBuf;

    fn reference_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/model_configs")
    }

    /// The reference config of `file_stem`, or None (with a note) when the
    /// shared reference folder is not present in this checkout.
    fn reference(file_stem: &str) -> Option<ModelArch> {
        let dir = reference_dir();
        let path = dir.join(format!("{file_stem}.json"));
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipping: {} not found", path.display());
            return None;
        };
        let quant =
            std::fs::read_to_string(dir.join(format!("{file_stem}.hf_quant_config.json"))).ok();
        let name = file_stem.replacen("--", "/", 1);
        Some(parse_hf_checkpoint(&name, &text, quant.as_deref()).expect("reference config parses"))
    }

    fn within(actual: f64, expected: f64, tol: f64) -> bool {
        ((actual - expected) / expected).abs() <= tol
    }

    #[test]
    fn every_reference_config_parses() {
        let dir = reference_dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipping: reference folder {} not found", dir.display());
            return;
        };
        let mut n = 0;
        for e in entries.flatten() {
            let file = e.file_name().to_string_lossy().to_string();
            if !file.ends_with(".json") || file.ends_with(".hf_quant_config.json") {
                continue;
            }
            let stem = file.trim_end_matches(".json");
            let text = std::fs::read_to_string(e.path()).unwrap();
            let a = parse_hf_config(stem, &text).unwrap_or_else(|err| panic!("{file}: {err}"));
            let l = a.layers;
            assert_eq!(
                l.full_attention + l.sliding_attention + l.linear_attention,
                a.num_layers,
                "{file}"
            );
            assert_eq!(l.dense_ffn + l.moe_ffn, a.num_layers, "{file}");
            assert!(a.total_params() > 1e8, "{file}");
            n += 1;
        }
        assert!(n >= 20, "only {n} reference configs found");
    }

    #[test]
    fn llama_dense_dims() {
        let json = r#"{"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":4096,
            "intermediate_size":14336,"num_attention_heads":32,"num_hidden_layers":32,"num_key_value_heads":8,
            "vocab_size":128256,"max_position_embeddings":131072,"tie_word_embeddings":false,"torch_dtype":"bfloat16"}"#;
        let a = parse_hf_config("meta-llama/Llama-3.1-8B", json).unwrap();
        assert_eq!(a.head_dim, 128);
        assert_eq!(a.num_kv_heads, 8);
        assert_eq!(a.family(), ModelFamily::Dense);
        assert_eq!(a.layers.full_attention, 32);
        assert_eq!(a.layers.dense_ffn, 32);
        assert!(a.gated_mlp);
        assert_eq!(a.native_quant, QuantScheme::uniform(Precision::Bf16));
        assert!(
            within(a.total_params(), 8.03e9, 0.03),
            "{}",
            a.total_params()
        );
    }

    #[test]
    fn qwen3_32b() {
        let Some(a) = reference("Qwen--Qwen3-32B") else {
            return;
        };
        assert_eq!(
            (
                a.hidden_size,
                a.num_layers,
                a.num_heads,
                a.num_kv_heads,
                a.head_dim
            ),
            (5120, 64, 64, 8, 128)
        );
        assert!(
            within(a.total_params(), 32.8e9, 0.03),
            "{}",
            a.total_params()
        );
        assert_eq!(a.sliding_window, None);
        let fp8 = reference("Qwen--Qwen3-32B-FP8").unwrap();
        assert_eq!(fp8.native_quant.gemm, Precision::Fp8Block);
        assert_eq!(fp8.native_quant.kv, KvDtype::Bf16);
    }

    #[test]
    fn deepseek_v3() {
        let Some(a) = reference("deepseek-ai--DeepSeek-V3") else {
            return;
        };
        assert_eq!(a.family(), ModelFamily::MlaMoe);
        let mla = a.mla.unwrap();
        assert_eq!(
            (mla.q_lora_rank, mla.kv_lora_rank, mla.qk_rope_head_dim),
            (Some(1536), 512, 64)
        );
        assert_eq!(a.head_dim, 192);
        assert_eq!((a.layers.dense_ffn, a.layers.moe_ffn), (3, 58));
        let moe = a.moe.unwrap();
        assert_eq!(
            (
                moe.num_experts,
                moe.top_k,
                moe.expert_intermediate,
                moe.shared_intermediate
            ),
            (256, 8, 2048, 2048)
        );
        assert_eq!(a.native_quant.gemm, Precision::Fp8Block);
        assert_eq!(a.native_quant.moe, Precision::Fp8Block);
        assert!(
            within(a.total_params(), 671e9, 0.03),
            "{}",
            a.total_params()
        );
        assert!(
            within(a.active_params(), 37e9, 0.03),
            "{}",
            a.active_params()
        );
    }

    #[test]
    fn mixtral_8x7b() {
        let Some(a) = reference("mistralai--Mixtral-8x7B-v0.1") else {
            return;
        };
        assert_eq!(a.family(), ModelFamily::GqaMoe);
        assert_eq!(a.layers.moe_ffn, 32);
        let moe = a.moe.unwrap();
        assert_eq!(
            (moe.num_experts, moe.top_k, moe.expert_intermediate),
            (8, 2, 14336)
        );
        assert!(
            within(a.total_params(), 46.7e9, 0.03),
            "{}",
            a.total_params()
        );
        assert!(
            within(a.active_params(), 12.9e9, 0.03),
            "{}",
            a.active_params()
        );
    }

    #[test]
    fn gpt_oss_120b() {
        let Some(a) = reference("openai--gpt-oss-120b") else {
            return;
        };
        assert_eq!(
            (a.layers.sliding_attention, a.layers.full_attention),
            (18, 18)
        );
        assert_eq!(a.sliding_window, Some(128));
        assert_eq!(a.moe.unwrap().top_k, 4);
        assert_eq!(a.native_quant.gemm, Precision::Bf16);
        assert_eq!(a.native_quant.moe, Precision::Mxfp4);
        assert!(
            within(a.total_params(), 117e9, 0.03),
            "{}",
            a.total_params()
        );
        // OpenAI's 5.1B counts the unembedding but not the embedding table,
        // which is what active_params() counts.
        assert!(
            within(a.active_params(), 5.1e9, 0.03),
            "{}",
            a.active_params()
        );
    }

    #[test]
    fn qwen3_30b_a3b() {
        let Some(a) = reference("Qwen--Qwen3-30B-A3B") else {
            return;
        };
        assert_eq!(a.layers.moe_ffn, 48);
        assert!(
            within(a.total_params(), 30.5e9, 0.03),
            "{}",
            a.total_params()
        );
        // Qwen's "3.3B activated" includes the input embedding table.
        let qwen_active = a.active_params() + a.embedding_params();
        assert!(within(qwen_active, 3.3e9, 0.03), "{qwen_active}");
        let fp8 = reference("Qwen--Qwen3-30B-A3B-FP8").unwrap();
        // The FP8 file excludes routers and norms, not attention.
        assert_eq!(fp8.native_quant.gemm, Precision::Fp8Block);
    }

    #[test]
    fn qwen35_hybrid() {
        let Some(a) = reference("Qwen--Qwen3.5-397B-A17B") else {
            return;
        };
        assert_eq!(a.architecture, "Qwen3_5MoeForConditionalGeneration");
        assert_eq!(
            (a.layers.linear_attention, a.layers.full_attention),
            (45, 15)
        );
        assert!(a.attn_output_gate);
        let la = a.linear_attention.unwrap();
        assert_eq!(
            (
                la.num_key_heads,
                la.num_value_heads,
                la.key_head_dim,
                la.conv_kernel
            ),
            (16, 64, 128, 4)
        );
        let moe = a.moe.unwrap();
        assert_eq!(
            (moe.num_experts, moe.top_k, moe.shared_intermediate),
            (512, 10, 1024)
        );
        assert!(
            within(a.total_params(), 396e9, 0.03),
            "{}",
            a.total_params()
        );
        let dense = reference("Qwen--Qwen3.5-27B").unwrap();
        assert_eq!(dense.family(), ModelFamily::Dense);
        assert_eq!(
            (dense.layers.linear_attention, dense.layers.full_attention),
            (48, 16)
        );
    }

    #[test]
    fn glm5_and_kimi() {
        let Some(g) = reference("zai-org--GLM-5") else {
            return;
        };
        let dsa = g.sparse_attention.unwrap();
        assert_eq!(
            (dsa.index_topk, dsa.index_n_heads, dsa.index_head_dim),
            (2048, 32, 128)
        );
        assert_eq!(g.head_dim, 256);
        assert_eq!((g.layers.dense_ffn, g.layers.moe_ffn), (3, 75));
        assert!(
            within(g.total_params(), 744e9, 0.03),
            "{}",
            g.total_params()
        );

        let k = reference("moonshotai--Kimi-K2.5").unwrap();
        assert_eq!(k.architecture, "KimiK25ForConditionalGeneration");
        assert_eq!(k.family(), ModelFamily::MlaMoe);
        assert_eq!((k.layers.dense_ffn, k.layers.moe_ffn), (1, 60));
        assert_eq!(k.moe.unwrap().num_experts, 384);
        assert_eq!(k.native_quant.gemm, Precision::Bf16);
        assert_eq!(k.native_quant.moe, Precision::Int4Wo);
        assert!(
            within(k.total_params(), 1.03e12, 0.03),
            "{}",
            k.total_params()
        );
    }

    #[test]
    fn nvidia_quant_files() {
        let Some(a) = reference("nvidia--Llama-3.1-70B-Instruct-FP8") else {
            return;
        };
        assert_eq!(
            a.native_quant,
            QuantScheme {
                gemm: Precision::Fp8,
                moe: Precision::Fp8,
                kv: KvDtype::Fp8
            }
        );
        // No hf_quant_config.json in the reference folder: the name decides,
        // overriding the base model's stale fp8 quantization_config.
        let r1 = reference("nvidia--DeepSeek-R1-NVFP4").unwrap();
        assert_eq!(r1.native_quant.moe, Precision::Nvfp4);
        let q = reference("nvidia--Qwen3-32B-NVFP4").unwrap();
        assert_eq!(q.native_quant.gemm, Precision::Nvfp4);
    }

    #[test]
    fn hf_quant_config_refines() {
        let q = parse_hf_quant_config(
            r#"{"producer":{"name":"modelopt"},"quantization":{"quant_algo":"NVFP4","kv_cache_quant_algo":"FP8",
            "exclude_modules":["lm_head","model.layers.*.self_attn*"]}}"#,
        )
        .unwrap();
        assert_eq!(q.weights, Some(Precision::Nvfp4));
        assert!(q.attention_excluded);
        let r = q.refine(QuantScheme::uniform(Precision::Bf16));
        assert_eq!(
            (r.gemm, r.moe, r.kv),
            (Precision::Bf16, Precision::Nvfp4, KvDtype::Fp8)
        );
        let err = parse_hf_quant_config(r#"{"quantization":{"quant_algo":"INT3"}}"#).unwrap_err();
        assert!(err.to_string().contains("INT3"));
    }

    #[test]
    fn missing_field_names_field_and_architecture() {
        let json = r#"{"architectures":["FooForCausalLM"],"hidden_size":1024,"num_hidden_layers":4,
            "num_attention_heads":8,"intermediate_size":4096}"#;
        let err = parse_hf_config("acme/foo", json).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("vocab_size"), "{msg}");
        assert!(msg.contains("FooForCausalLM"), "{msg}");
        assert!(msg.contains("--model"), "{msg}");
    }

    #[test]
    fn unknown_architecture_with_standard_fields_is_dense() {
        let json = r#"{"architectures":["BrandNewForCausalLM"],"hidden_size":2048,"num_hidden_layers":24,
            "num_attention_heads":16,"intermediate_size":8192,"vocab_size":50000}"#;
        let a = parse_hf_config("acme/new", json).unwrap();
        assert_eq!(a.family(), ModelFamily::Dense);
        assert_eq!((a.num_kv_heads, a.head_dim), (16, 128));
        assert_eq!(a.max_position_embeddings, u32::MAX);
        assert_eq!(a.layers.full_attention, 24);
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            parse_hf_config("x", "not json"),
            Err(ModelConfigError::InvalidJson { .. })
        ));
        assert!(matches!(
            parse_hf_config("x", "[1,2]"),
            Err(ModelConfigError::NotAnObject { .. })
        ));
        let neg = r#"{"hidden_size":-1,"num_hidden_layers":2,"num_attention_heads":2,"intermediate_size":8,"vocab_size":8}"#;
        assert!(parse_hf_config("x", neg)
            .unwrap_err()
            .to_string()
            .contains("hidden_size"));
        let zero_heads = r#"{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":0,"intermediate_size":8,"vocab_size":8}"#;
        assert!(parse_hf_config("x", zero_heads).is_err());
        let bad_types = r#"{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":2,"intermediate_size":8,
            "vocab_size":8,"layer_types":["full_attention"]}"#;
        assert!(parse_hf_config("x", bad_types)
            .unwrap_err()
            .to_string()
            .contains("layer_types"));
        let odd_quant = r#"{"hidden_size":64,"num_hidden_layers":2,"num_attention_heads":2,"intermediate_size":8,
            "vocab_size":8,"quantization_config":{"quant_method":"bitsandbytes"}}"#;
        assert!(parse_hf_config("x", odd_quant)
            .unwrap_err()
            .to_string()
            .contains("bitsandbytes"));
    }

    #[test]
    fn mistral_sliding_window_and_qwen_switch() {
        let base = |extra: &str| {
            format!(
                r#"{{"hidden_size":4096,"num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,
                "intermediate_size":14336,"vocab_size":32000,"max_position_embeddings":32768{extra}}}"#
            )
        };
        let m = parse_hf_config("mistral", &base(r#","sliding_window":4096"#)).unwrap();
        assert_eq!(
            (m.layers.sliding_attention, m.sliding_window),
            (32, Some(4096))
        );
        let q = parse_hf_config(
            "qwen2",
            &base(r#","sliding_window":4096,"use_sliding_window":false"#),
        )
        .unwrap();
        assert_eq!((q.layers.full_attention, q.sliding_window), (32, None));
    }

    #[test]
    fn name_hint() {
        assert_eq!(
            precision_hint_from_name("nvidia/DeepSeek-R1-NVFP4"),
            Some(Precision::Nvfp4)
        );
        assert_eq!(
            precision_hint_from_name("Qwen/Qwen3-32B-FP8"),
            Some(Precision::Fp8)
        );
        assert_eq!(precision_hint_from_name("Qwen/Qwen3-32B"), None);
        // Agreeing metadata is kept as is (block scales stay block scales).
        let q = apply_name_hint(QuantScheme::uniform(Precision::Fp8Block), Precision::Fp8);
        assert_eq!(q.gemm, Precision::Fp8Block);
    }
}
