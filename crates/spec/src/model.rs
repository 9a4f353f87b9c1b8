//! Transformer architectures as the performance model sees them: only the
//! dimensions that decide FLOPs, bytes and communication.

use crate::precision::{KvDtype, Precision};
use serde::{Deserialize, Serialize};

/// How a model's attention stores its KV cache and spends its FLOPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// Multi-head / grouped-query attention (Llama, Qwen, Mixtral, gpt-oss).
    Gqa,
    /// Multi-head latent attention (DeepSeek-V3/R1, Kimi-K2, GLM-5).
    Mla,
}

/// The feed-forward block of the MoE layers (dense layers are plain MLPs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FfnKind {
    Dense,
    Moe,
}

/// Multi-head latent attention dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlaSpec {
    /// None when queries are projected directly (DeepSeek-V2-Lite style).
    pub q_lora_rank: Option<u32>,
    pub kv_lora_rank: u32,
    pub qk_nope_head_dim: u32,
    pub qk_rope_head_dim: u32,
    pub v_head_dim: u32,
}

/// Linear-attention (Gated DeltaNet) layers as used by Qwen3.5/Qwen3-Next:
/// a fixed-size recurrent state per sequence instead of a growing KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearAttnSpec {
    pub num_key_heads: u32,
    pub num_value_heads: u32,
    pub key_head_dim: u32,
    pub value_head_dim: u32,
    pub conv_kernel: u32,
}

/// DeepSeek sparse attention (DSA, GLM-5 / DeepSeek-V3.2): a lightweight
/// indexer picks `index_topk` past tokens that each query attends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SparseAttnSpec {
    pub index_topk: u32,
    pub index_n_heads: u32,
    pub index_head_dim: u32,
}

/// Mixture-of-experts dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MoeSpec {
    /// Routed experts.
    pub num_experts: u32,
    /// Routed experts each token activates.
    pub top_k: u32,
    /// Intermediate size of one routed expert.
    pub expert_intermediate: u32,
    /// Total intermediate size of the always-on shared experts (0 when none).
    pub shared_intermediate: u32,
}

/// How many layers of each kind the model has. Attention kinds add up to
/// `num_layers`, and so do FFN kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LayerCounts {
    pub full_attention: u32,
    pub sliding_attention: u32,
    pub linear_attention: u32,
    pub dense_ffn: u32,
    pub moe_ffn: u32,
}

/// Which parts of a checkpoint a quantization applies to.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantScheme {
    /// Attention projections and dense MLPs (and shared experts).
    pub gemm: Precision,
    /// Routed experts.
    pub moe: Precision,
    /// KV cache.
    pub kv: KvDtype,
}

impl QuantScheme {
    pub fn uniform(p: Precision) -> Self {
        QuantScheme {
            gemm: p,
            moe: p,
            kv: p.default_kv_dtype(),
        }
    }
}

/// A decoder-only transformer, reduced to what decides its cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArch {
    /// Hugging Face id, e.g. `Qwen/Qwen3-32B`.
    pub name: String,
    /// The `architectures[0]` entry of config.json, e.g. `LlamaForCausalLM`.
    pub architecture: String,
    pub hidden_size: u32,
    pub num_layers: u32,
    pub vocab_size: u32,
    pub tie_word_embeddings: bool,
    pub attention: AttentionKind,
    /// Query heads.
    pub num_heads: u32,
    /// KV heads (equal to `num_heads` for MHA and for MLA, whose cache is shared latent).
    pub num_kv_heads: u32,
    /// Per-head dimension of q/k/v for GQA models.
    pub head_dim: u32,
    pub mla: Option<MlaSpec>,
    /// Window of the sliding-attention layers (tokens).
    pub sliding_window: Option<u32>,
    pub linear_attention: Option<LinearAttnSpec>,
    pub sparse_attention: Option<SparseAttnSpec>,
    /// Attention output is gated by an extra projection of width num_heads*head_dim (Qwen3.5).
    pub attn_output_gate: bool,
    pub layers: LayerCounts,
    /// Intermediate size of the dense MLP layers.
    pub intermediate_size: u32,
    /// Gated (SwiGLU: gate, up, down) vs plain (up, down) MLP.
    pub gated_mlp: bool,
    pub moe: Option<MoeSpec>,
    /// The precision the checkpoint ships in.
    pub native_quant: QuantScheme,
    pub max_position_embeddings: u32,
}

impl ModelArch {
    pub fn is_moe(&self) -> bool {
        self.moe.is_some() && self.layers.moe_ffn > 0
    }

    pub fn is_mla(&self) -> bool {
        self.attention == AttentionKind::Mla
    }

    /// The profiler's family, which decides the parallel mappings swept.
    pub fn family(&self) -> ModelFamily {
        match (self.is_moe(), self.is_mla()) {
            (true, true) => ModelFamily::MlaMoe,
            (true, false) => ModelFamily::GqaMoe,
            _ => ModelFamily::Dense,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelFamily {
    Dense,
    GqaMoe,
    MlaMoe,
}
