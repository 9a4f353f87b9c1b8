//! Parameter counts of a [`ModelArch`], split by where the weights live so
//! that memory and bandwidth estimates can price each part at its own
//! precision.
//!
//! Small tensors (norms, biases, attention sinks, per-head decay constants of
//! linear attention, the shared-expert gate) are left out: together they are
//! well under 0.1% of any catalog model.

use crate::model::{AttentionKind, ModelArch};

/// Parameters of a model by component (whole model, not per GPU).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ParamBreakdown {
    /// Input embedding table.
    pub embedding: f64,
    /// Output projection; 0 when tied to the embedding table.
    pub lm_head: f64,
    /// Attention projections of all layers (GQA, MLA incl. the DSA indexer,
    /// linear attention, output gates).
    pub attention: f64,
    /// MLPs of the dense layers.
    pub dense_mlp: f64,
    /// All routed experts of all MoE layers.
    pub routed_experts: f64,
    /// The routed experts one token passes through (top_k per MoE layer).
    pub active_routed_experts: f64,
    /// Always-on shared experts.
    pub shared_experts: f64,
    /// Router (gate) projections.
    pub router: f64,
}

impl ParamBreakdown {
    pub fn total(&self) -> f64 {
        self.embedding
            + self.lm_head
            + self.attention
            + self.dense_mlp
            + self.routed_experts
            + self.shared_experts
            + self.router
    }
}

impl ModelArch {
    /// Parameters by component.
    pub fn param_breakdown(&self) -> ParamBreakdown {
        let h = f64::from(self.hidden_size);
        let l = &self.layers;
        let table = f64::from(self.vocab_size) * h;

        let softmax_layers = f64::from(l.full_attention + l.sliding_attention);
        let mut attention = softmax_layers * self.softmax_attention_params();
        if let Some(la) = &self.linear_attention {
            let k = f64::from(la.num_key_heads * la.key_head_dim);
            let v = f64::from(la.num_value_heads * la.value_head_dim);
            let nv = f64::from(la.num_value_heads);
            // in_proj_qkvz (q, k, v and the output gate z), in_proj_ba (per-head
            // beta and decay), the depthwise conv over q/k/v, out_proj.
            let per_layer = h * (2.0 * k + 2.0 * v)
                + h * 2.0 * nv
                + (2.0 * k + v) * f64::from(la.conv_kernel)
                + v * h;
            attention += f64::from(l.linear_attention) * per_layer;
        }

        let mlp_mats = if self.gated_mlp { 3.0 } else { 2.0 };
        let dense_mlp = f64::from(l.dense_ffn) * mlp_mats * h * f64::from(self.intermediate_size);

        let (mut routed, mut active_routed, mut shared, mut router) = (0.0, 0.0, 0.0, 0.0);
        if let Some(moe) = &self.moe {
            let n = f64::from(l.moe_ffn);
            // Experts are SwiGLU in every MoE family slaprof knows.
            let expert = 3.0 * h * f64::from(moe.expert_intermediate);
            routed = n * f64::from(moe.num_experts) * expert;
            active_routed = n * f64::from(moe.top_k) * expert;
            shared = n * 3.0 * h * f64::from(moe.shared_intermediate);
            router = n * h * f64::from(moe.num_experts);
        }

        ParamBreakdown {
            embedding: table,
            lm_head: if self.tie_word_embeddings { 0.0 } else { table },
            attention,
            dense_mlp,
            routed_experts: routed,
            active_routed_experts: active_routed,
            shared_experts: shared,
            router,
        }
    }

    /// Projections of one softmax-attention layer (full or sliding).
    fn softmax_attention_params(&self) -> f64 {
        let h = f64::from(self.hidden_size);
        let nh = f64::from(self.num_heads);
        match (self.attention, &self.mla) {
            (AttentionKind::Mla, Some(m)) => {
                let qk = f64::from(m.qk_nope_head_dim + m.qk_rope_head_dim);
                let q = match m.q_lora_rank {
                    Some(r) => h * f64::from(r) + f64::from(r) * nh * qk,
                    None => h * nh * qk,
                };
                let kv_a = h * f64::from(m.kv_lora_rank + m.qk_rope_head_dim);
                let kv_b =
                    f64::from(m.kv_lora_rank) * nh * f64::from(m.qk_nope_head_dim + m.v_head_dim);
                let o = nh * f64::from(m.v_head_dim) * h;
                let indexer = self.sparse_attention.map_or(0.0, |d| {
                    let q_in = m.q_lora_rank.map_or(h, f64::from);
                    let heads = f64::from(d.index_n_heads);
                    let dim = f64::from(d.index_head_dim);
                    // query projection, shared key projection, per-head weights.
                    q_in * heads * dim + h * dim + h * heads
                });
                q + kv_a + kv_b + o + indexer
            }
            _ => {
                let q_width = nh * f64::from(self.head_dim);
                let kv_width = f64::from(self.num_kv_heads * self.head_dim);
                let gate = if self.attn_output_gate {
                    h * q_width
                } else {
                    0.0
                };
                h * q_width + 2.0 * h * kv_width + q_width * h + gate
            }
        }
    }

    /// All parameters, excluding multi-token-prediction heads (which serving
    /// stacks load only for speculative decoding).
    pub fn total_params(&self) -> f64 {
        self.param_breakdown().total()
    }

    /// Parameters one token computes with: everything but the routed experts
    /// it is not sent to and the input embedding table (a row lookup, not a
    /// matrix multiply). The output projection counts even when tied. This is
    /// OpenAI's convention for gpt-oss; vendors that quote active parameters
    /// with the embedding table (Qwen) differ by [`Self::embedding_params`].
    pub fn active_params(&self) -> f64 {
        let b = self.param_breakdown();
        b.attention
            + b.dense_mlp
            + b.active_routed_experts
            + b.shared_experts
            + b.router
            + b.embedding // the output projection, tied or not
    }

    /// The input embedding table.
    pub fn embedding_params(&self) -> f64 {
        f64::from(self.vocab_size) * f64::from(self.hidden_size)
    }
}
