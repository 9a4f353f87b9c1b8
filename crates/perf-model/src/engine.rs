//! One engine (one serving worker): a model on a GPU system with a parallel
//! layout and a backend. Owns the memory model: weights, KV bytes per token
//! and KV capacity.

use spec::model::QuantScheme;
use spec::{Backend, GpuSystem, ModelArch, ParallelLayout, Precision};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Everything that decides the cost of one engine's steps.
#[derive(Debug, Clone)]
pub struct EngineSpec {
    pub model: ModelArch,
    pub system: GpuSystem,
    pub backend: Backend,
    pub quant: QuantScheme,
    pub layout: ParallelLayout,
}

/// Why a configuration cannot run.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("invalid parallel layout {layout}: {reason}")]
    Layout { layout: String, reason: String },
    #[error("tp {tp} does not divide the {heads} attention heads of {model}; pick a tp that divides {heads}")]
    HeadsNotDivisible { model: String, heads: u32, tp: u32 },
    #[error("moe_ep {ep} does not divide the {experts} experts of {model}; pick an expert-parallel size that divides {experts}")]
    ExpertsNotDivisible {
        model: String,
        experts: u32,
        ep: u32,
    },
    #[error("pp {pp} exceeds the {layers} layers of {model}")]
    TooManyStages { model: String, layers: u32, pp: u32 },
    #[error("{model} does not fit: {weights_gib:.1} GiB of weights per GPU, {usable_gib:.1} GiB usable on {system} ({backend} leaves room for activations); use more GPUs per engine or a smaller precision")]
    WeightsDoNotFit {
        model: String,
        system: String,
        backend: Backend,
        weights_gib: f64,
        usable_gib: f64,
    },
    #[error("{model} fits its weights on {system} but leaves room for only {tokens} KV tokens, fewer than one {needed}-token request; use more GPUs per engine")]
    KvTooSmall {
        model: String,
        system: String,
        tokens: u64,
        needed: u64,
    },
    #[error("ISL {isl} + OSL {osl} = {total} tokens exceeds the {limit}-token context of {model}; shorten the requests")]
    ContextTooLong {
        model: String,
        isl: u32,
        osl: u32,
        total: u64,
        limit: u32,
    },
    #[error("{system} has no {dtype} tensor cores and {backend} cannot emulate {precision} there")]
    PrecisionUnsupported {
        system: String,
        dtype: &'static str,
        precision: Precision,
        backend: Backend,
    },
}

/// Per-GPU memory of one engine.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MemoryBreakdown {
    /// HBM of one GPU.
    pub hbm_gib: f64,
    /// Weights held by the most loaded GPU.
    pub weights_gib: f64,
    /// Activations, workspace, CUDA graphs and the runtime's reserve.
    pub reserved_gib: f64,
    /// What is left for the KV cache on that GPU.
    pub kv_cache_gib: f64,
    /// KV bytes one token costs on each GPU that holds it.
    pub kv_bytes_per_token: f64,
    /// Tokens the whole engine can keep in its KV cache (all DP ranks).
    pub max_kv_tokens: u64,
}

impl EngineSpec {
    pub fn new(
        model: ModelArch,
        system: GpuSystem,
        backend: Backend,
        quant: QuantScheme,
        layout: ParallelLayout,
    ) -> Result<Self, ConfigError> {
        let spec = EngineSpec {
            model,
            system,
            backend,
            quant,
            layout,
        };
        spec.check_layout()?;
        Ok(spec)
    }

    fn check_layout(&self) -> Result<(), ConfigError> {
        let l = &self.layout;
        l.check().map_err(|reason| ConfigError::Layout {
            layout: l.to_string(),
            reason,
        })?;
        let m = &self.model;
        if m.num_heads % l.tp != 0 {
            return Err(ConfigError::HeadsNotDivisible {
                model: m.name.clone(),
                heads: m.num_heads,
                tp: l.tp,
            });
        }
        if let Some(moe) = m.moe.filter(|_| m.is_moe()) {
            if moe.num_experts % l.moe_ep != 0 {
                return Err(ConfigError::ExpertsNotDivisible {
                    model: m.name.clone(),
                    experts: moe.num_experts,
                    ep: l.moe_ep,
                });
            }
        }
        if l.pp > m.num_layers {
            return Err(ConfigError::TooManyStages {
                model: m.name.clone(),
                layers: m.num_layers,
                pp: l.pp,
            });
        }
        Ok(())
    }

    /// Layers held by one pipeline stage (the largest stage).
    pub fn layers_per_stage(&self) -> f64 {
        (self.model.num_layers as f64 / self.layout.pp as f64).ceil()
    }

    /// Fraction of the model's layers one stage holds.
    pub fn stage_fraction(&self) -> f64 {
        self.layers_per_stage() / self.model.num_layers as f64
    }

    /// KV heads one GPU stores for GQA attention: heads are split by TP, and
    /// replicated once TP exceeds the KV head count.
    pub fn kv_heads_per_gpu(&self) -> f64 {
        let kv = self.model.num_kv_heads.max(1) as f64;
        (kv / self.layout.tp as f64).max(1.0)
    }

    /// KV-cache bytes one token costs on one GPU, per full-attention layer
    /// (for MLA the compressed latent plus the rope key, replicated over TP).
    pub fn kv_bytes_per_token_layer(&self) -> f64 {
        let m = &self.model;
        let b = self.quant.kv.bytes();
        match m.mla {
            Some(mla) => {
                let mut bytes = (mla.kv_lora_rank + mla.qk_rope_head_dim) as f64 * b;
                if let Some(dsa) = m.sparse_attention {
                    // the indexer's fp8 keys plus one fp32 scale
                    bytes += dsa.index_head_dim as f64 + 4.0;
                }
                bytes
            }
            None => 2.0 * self.kv_heads_per_gpu() * m.head_dim as f64 * b,
        }
    }

    /// KV bytes per token per GPU summed over the layers of one stage whose
    /// cache grows with the context (full attention; sliding windows and
    /// linear-attention states are per-sequence constants).
    pub fn kv_bytes_per_token(&self) -> f64 {
        let m = &self.model;
        let growing = m.layers.full_attention as f64 * self.stage_fraction();
        growing * self.kv_bytes_per_token_layer()
    }

    /// Per-sequence KV bytes per GPU that do not grow with the context:
    /// sliding-window layers hold at most `window` tokens, linear-attention
    /// layers a fixed recurrent state.
    pub fn kv_bytes_per_sequence(&self) -> f64 {
        let m = &self.model;
        let f = self.stage_fraction();
        let mut bytes = 0.0;
        if let Some(w) = m.sliding_window {
            bytes +=
                m.layers.sliding_attention as f64 * f * w as f64 * self.kv_bytes_per_token_layer();
        }
        if let Some(la) = m.linear_attention {
            let heads = (la.num_value_heads as f64 / self.layout.tp as f64).max(1.0);
            // fp32 state (dk x dv per value head) plus the conv window in bf16
            let state = heads * la.key_head_dim as f64 * la.value_head_dim as f64 * 4.0;
            let conv_ch = (2 * la.num_key_heads * la.key_head_dim
                + la.num_value_heads * la.value_head_dim) as f64
                / self.layout.tp as f64;
            bytes += m.layers.linear_attention as f64
                * f
                * (state + conv_ch * la.conv_kernel as f64 * 2.0);
        }
        bytes
    }

    /// Parameter counts of one layer's blocks, unsharded.
    pub fn block_params(&self) -> BlockParams {
        let m = &self.model;
        let h = m.hidden_size as f64;
        let attn = match m.mla {
            Some(mla) => {
                let qk = (mla.qk_nope_head_dim + mla.qk_rope_head_dim) as f64;
                let nh = m.num_heads as f64;
                let q = match mla.q_lora_rank {
                    Some(r) => h * r as f64 + r as f64 * nh * qk,
                    None => h * nh * qk,
                };
                let kv_a = h * (mla.kv_lora_rank + mla.qk_rope_head_dim) as f64;
                let kv_b =
                    mla.kv_lora_rank as f64 * nh * (mla.qk_nope_head_dim + mla.v_head_dim) as f64;
                let o = nh * mla.v_head_dim as f64 * h;
                let idx = m
                    .sparse_attention
                    .map(|d| {
                        h * (d.index_n_heads * d.index_head_dim) as f64
                            + h * d.index_head_dim as f64
                    })
                    .unwrap_or(0.0);
                q + kv_a + kv_b + o + idx
            }
            None => {
                let q = h * (m.num_heads * m.head_dim) as f64;
                let kv = 2.0 * h * (m.num_kv_heads * m.head_dim) as f64;
                let gate = if m.attn_output_gate { q } else { 0.0 };
                q + kv + q + gate
            }
        };
        let linear_attn = m
            .linear_attention
            .map(|la| {
                let k = (la.num_key_heads * la.key_head_dim) as f64;
                let v = (la.num_value_heads * la.value_head_dim) as f64;
                // q, k, v, z (gate) projections, beta/alpha, output
                h * (2.0 * k + 2.0 * v + 2.0 * la.num_value_heads as f64) + v * h
            })
            .unwrap_or(0.0);
        let mats = if m.gated_mlp { 3.0 } else { 2.0 };
        let dense_mlp = mats * h * m.intermediate_size as f64;
        let (expert, shared, router) = match m.moe {
            Some(moe) => (
                mats * h * moe.expert_intermediate as f64,
                mats * h * moe.shared_intermediate as f64,
                h * moe.num_experts as f64,
            ),
            None => (0.0, 0.0, 0.0),
        };
        let lm_head = h * m.vocab_size as f64;
        BlockParams {
            attn,
            linear_attn,
            dense_mlp,
            expert,
            shared,
            router,
            lm_head,
        }
    }

    /// Bytes of weights held by the most loaded GPU.
    pub fn weight_bytes_per_gpu(&self) -> f64 {
        let m = &self.model;
        let l = &self.layout;
        let p = self.block_params();
        let f = self.stage_fraction();
        let stage = l.stage_gpus() as f64;
        let g = self.quant.gemm.weight_bytes();
        let full_attn = (m.layers.full_attention + m.layers.sliding_attention) as f64;
        let attn = full_attn * f * p.attn * g / l.tp as f64;
        let lin = m.layers.linear_attention as f64 * f * p.linear_attn * g / l.tp as f64;
        let dense = m.layers.dense_ffn as f64 * f * p.dense_mlp * g / stage;
        let moe_layers = m.layers.moe_ffn as f64 * f;
        let experts = m
            .moe
            .map(|moe| moe.num_experts as f64 * p.expert * self.quant.moe.weight_bytes() / stage)
            .unwrap_or(0.0);
        let shared = p.shared * g / stage + p.router * 2.0;
        let moe = moe_layers * (experts + shared);
        // embeddings and lm_head are vocab-parallel over the stage, kept in 16 bits;
        // the first and last stage hold them, which is the most loaded GPU.
        let emb = if m.tie_word_embeddings { 1.0 } else { 2.0 } * p.lm_head * 2.0 / stage;
        attn + lin + dense + moe + emb
    }

    /// Fraction of HBM the backend lets weights + KV cache take, and the
    /// fixed activation/workspace reserve it keeps besides, in GiB.
    /// vLLM: gpu_memory_utilization 0.9 of total, activations profiled out of it.
    /// SGLang: mem_fraction_static (~0.85-0.9 by GPU size) of total for weights + KV.
    /// TRT-LLM: kv_cache_free_gpu_memory_fraction 0.9 of what is free after weights
    /// and the runtime's buffers.
    fn memory_rules(&self) -> (f64, f64) {
        let hbm = self.system.hbm_gib;
        match self.backend {
            Backend::Vllm => (0.90, 1.5 + 0.01 * hbm),
            Backend::Sglang => {
                let frac = if hbm < 60.0 { 0.85 } else { 0.88 };
                (frac, 0.5)
            }
            Backend::Trtllm => (0.90, 2.0 + 0.01 * hbm),
        }
    }

    /// Memory breakdown, or why the engine cannot hold the model.
    pub fn memory(&self) -> Result<MemoryBreakdown, ConfigError> {
        let hbm = self.system.hbm_gib;
        let weights_gib = self.weight_bytes_per_gpu() / GIB;
        let (frac, reserve) = self.memory_rules();
        let (usable_for_weights, kv_gib) = match self.backend {
            Backend::Trtllm => {
                let free = hbm - weights_gib - reserve;
                (hbm - reserve, free * frac)
            }
            _ => {
                let budget = hbm * frac - reserve;
                (budget, budget - weights_gib)
            }
        };
        if weights_gib >= usable_for_weights || kv_gib <= 0.0 {
            return Err(ConfigError::WeightsDoNotFit {
                model: self.model.name.clone(),
                system: self.system.name.clone(),
                backend: self.backend,
                weights_gib,
                usable_gib: usable_for_weights.max(0.0),
            });
        }
        let per_token = self.kv_bytes_per_token().max(1.0);
        let tokens_per_rank = (kv_gib * GIB / per_token).floor();
        let max_kv_tokens = (tokens_per_rank * self.layout.dp as f64) as u64;
        Ok(MemoryBreakdown {
            hbm_gib: hbm,
            weights_gib,
            reserved_gib: hbm - weights_gib - kv_gib,
            kv_cache_gib: kv_gib,
            kv_bytes_per_token: per_token,
            max_kv_tokens,
        })
    }
}

/// Parameters of one layer's blocks (unsharded counts, not bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BlockParams {
    /// Softmax-attention projections (q, k, v, o, gates, MLA low-rank, DSA indexer).
    pub attn: f64,
    /// Linear-attention projections.
    pub linear_attn: f64,
    pub dense_mlp: f64,
    /// One routed expert.
    pub expert: f64,
    /// All shared experts together.
    pub shared: f64,
    pub router: f64,
    pub lm_head: f64,
}
