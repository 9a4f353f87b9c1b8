//! Step latency: the duration of one engine step from its batch shape.
//!
//! A step is a forward pass over every layer for all tokens in the batch. Its
//! time is the sum of GEMMs, attention, communication and host overhead on
//! the most loaded GPU. Everything that does not depend on the batch is
//! folded into coefficients once, in [`StepCostModel::new`], so evaluating a
//! step is a few dozen floating-point operations. docs/perf-model.md gives
//! every formula with its derivation.

use crate::calibration::{BackendCalibration, Calibration};
use crate::engine::{ConfigError, EngineSpec};
use crate::step::{StepBatch, StepTimer};
use spec::{ComputeDtype, GpuSystem, Precision};

/// Roofline combination of a compute time and a memory time. A p-norm rather
/// than a hard max: real kernels overlap the two imperfectly near the ridge.
#[inline]
fn roofline(compute: f64, memory: f64) -> f64 {
    const P: f64 = 4.0;
    if compute <= 0.0 {
        return memory;
    }
    if memory <= 0.0 {
        return compute;
    }
    let (hi, lo) = if compute > memory {
        (compute, memory)
    } else {
        (memory, compute)
    };
    let r = lo / hi;
    hi * (1.0 + r * r * r * r).powf(1.0 / P)
}

/// The tensor-core rate (FLOP/ms) a GEMM in `precision` runs at on `system`:
/// where the GPU lacks the precision's math, kernels dequantize to the next
/// wider type it has (fp4 → fp8 → bf16).
fn gemm_peak_flops_per_ms(system: &GpuSystem, precision: Precision) -> (f64, ComputeDtype) {
    let tf = |t: f64| t * 1e12 / 1e3;
    match precision.compute_dtype() {
        ComputeDtype::Fp4 if system.fp4_tflops > 0.0 => (tf(system.fp4_tflops), ComputeDtype::Fp4),
        ComputeDtype::Fp4 | ComputeDtype::Fp8 if system.fp8_tflops > 0.0 => {
            (tf(system.fp8_tflops), ComputeDtype::Fp8)
        }
        _ => (tf(system.bf16_tflops), ComputeDtype::Bf16),
    }
}

/// A GEMM family folded to four numbers: time = roofline(
/// (flops_per_token * m + pad_flops) / rate, bytes / bw).
#[derive(Debug, Clone, Copy, Default)]
struct GemmGroup {
    /// ms of compute per token through the group.
    ms_per_token: f64,
    /// ms of compute the tile padding costs (independent of m).
    pad_ms: f64,
    /// ms to stream the group's weights once.
    weight_ms: f64,
}

impl GemmGroup {
    #[inline]
    fn time(&self, tokens: f64) -> f64 {
        if tokens <= 0.0 {
            return 0.0;
        }
        roofline(self.ms_per_token * tokens + self.pad_ms, self.weight_ms)
    }
}

/// Precomputed cost coefficients of one engine. Implements [`StepTimer`].
#[derive(Debug, Clone)]
pub struct StepCostModel {
    dp: f64,
    /// Attention projections, per DP rank, m = tokens / dp.
    attn_proj: GemmGroup,
    /// Dense MLPs and shared experts over the whole stage, m = all tokens.
    dense: GemmGroup,
    /// Routed experts: compute per token and per touched expert.
    moe_ms_per_token: f64,
    moe_pad_ms_per_expert: f64,
    moe_weight_ms_per_expert: f64,
    experts_local: f64,
    /// Probability a given expert is *not* chosen by one token.
    expert_miss: f64,
    /// lm_head over the tokens that produce logits.
    lm_head: GemmGroup,
    /// Prefill attention ms per query-key pair (all layers, one DP rank).
    prefill_attn_ms_per_pair: f64,
    /// Window (sliding layers) and top-k (sparse attention) cap pairs per token.
    sliding_ms_per_pair: f64,
    sliding_window: f64,
    sparse_ms_per_pair: f64,
    sparse_topk: f64,
    /// Indexer work of sparse attention per pair (never capped).
    indexer_ms_per_pair: f64,
    /// Decode attention: ms per KV token read (memory) and per pair (compute).
    decode_mem_ms_per_token: f64,
    decode_flop_ms_per_token: f64,
    sliding_decode_ms_per_token: f64,
    sparse_decode_ms_per_token: f64,
    /// Linear-attention layers: ms per sequence (state traffic) and per token.
    linear_ms_per_seq: f64,
    linear_ms_per_token: f64,
    /// Collectives: fixed ms per step and ms per token of the DP rank.
    comm_fixed_ms: f64,
    comm_ms_per_token: f64,
    /// Host and launch overhead.
    step_overhead_ms: f64,
    eager_layers_ms: f64,
    graph_layers_ms: f64,
    seq_overhead_ms: f64,
}

impl StepCostModel {
    /// Builds the coefficients with the shipped calibration.
    pub fn new(spec: &EngineSpec) -> Result<Self, ConfigError> {
        Self::with_calibration(spec, Calibration::builtin())
    }

    pub fn with_calibration(spec: &EngineSpec, cal: &Calibration) -> Result<Self, ConfigError> {
        let k: &BackendCalibration = cal.backend(spec.backend);
        let gen = cal.generation(&spec.system.generation);
        let m = &spec.model;
        let l = &spec.layout;
        let sys = &spec.system;
        let p = spec.block_params();

        let tp = l.tp as f64;
        let stage = l.stage_gpus() as f64;
        let layers = m.num_layers as f64;
        let bw = sys.hbm_tbps * 1e12 / 1e3 * k.mem_eff * gen.memory_scale; // bytes/ms
        let eff = |dtype: ComputeDtype| {
            let e = if dtype == ComputeDtype::Fp4 {
                k.fp4_gemm_eff
            } else {
                k.gemm_eff
            };
            e * gen.compute_scale
        };

        // --- attention projections (per DP rank, sharded by tp) ---
        let (gemm_rate, gemm_dtype) = gemm_peak_flops_per_ms(sys, spec.quant.gemm);
        let gemm_rate = gemm_rate * eff(gemm_dtype);
        let gbytes = spec.quant.gemm.weight_bytes();
        let softmax_layers = (m.layers.full_attention + m.layers.sliding_attention) as f64;
        let proj_params =
            (softmax_layers * p.attn + m.layers.linear_attention as f64 * p.linear_attn) / tp;
        let attn_proj = GemmGroup {
            ms_per_token: 2.0 * proj_params / gemm_rate,
            pad_ms: 2.0 * proj_params * k.gemm_m_pad / gemm_rate,
            weight_ms: proj_params * gbytes / bw,
        };

        // --- dense MLP layers and shared experts (whole stage) ---
        let dense_params =
            (m.layers.dense_ffn as f64 * p.dense_mlp + m.layers.moe_ffn as f64 * p.shared) / stage;
        let dense = GemmGroup {
            ms_per_token: 2.0 * dense_params / gemm_rate,
            pad_ms: 2.0 * dense_params * k.gemm_m_pad / gemm_rate,
            weight_ms: dense_params * gbytes / bw,
        };

        // --- routed experts ---
        let (moe_rate, moe_dtype) = gemm_peak_flops_per_ms(sys, spec.quant.moe);
        let moe_rate = moe_rate * eff(moe_dtype) * k.moe_eff;
        let (
            moe_ms_per_token,
            moe_pad_ms_per_expert,
            moe_weight_ms_per_expert,
            experts_local,
            expert_miss,
        ) = match m.moe.filter(|_| m.is_moe()) {
            Some(moe) => {
                let moe_layers = m.layers.moe_ffn as f64;
                let shard = p.expert / l.moe_tp as f64;
                let e_local = moe.num_experts as f64 / l.moe_ep as f64;
                (
                    // tokens*topk assignments spread over ep ranks
                    2.0 * moe_layers * shard * moe.top_k as f64 / l.moe_ep as f64 / moe_rate,
                    2.0 * moe_layers * shard * k.gemm_m_pad / moe_rate,
                    moe_layers * shard * spec.quant.moe.weight_bytes() / bw,
                    e_local,
                    1.0 - moe.top_k as f64 / moe.num_experts as f64,
                )
            }
            None => (0.0, 0.0, 0.0, 0.0, 1.0),
        };

        // --- lm_head (vocab parallel over the stage, 16-bit) ---
        let lm_params = p.lm_head / stage;
        let bf16_rate = sys.bf16_tflops * 1e9 * k.gemm_eff * gen.compute_scale; // FLOP/ms
        let lm_head = GemmGroup {
            ms_per_token: 2.0 * lm_params / bf16_rate,
            pad_ms: 2.0 * lm_params * k.gemm_m_pad / bf16_rate,
            weight_ms: lm_params * 2.0 / bw,
        };

        // --- attention ---
        let heads_local = m.num_heads as f64 / tp;
        let attn_rate = sys.bf16_tflops * 1e9 * k.attn_eff * gen.compute_scale;
        let (qk_dim, v_dim) = match m.mla {
            Some(mla) => (
                (mla.qk_nope_head_dim + mla.qk_rope_head_dim) as f64,
                mla.v_head_dim as f64,
            ),
            None => (m.head_dim as f64, m.head_dim as f64),
        };
        let flops_per_pair_layer = 2.0 * heads_local * (qk_dim + v_dim);
        let full_layers = m.layers.full_attention as f64;
        let sliding_layers = m.layers.sliding_attention as f64;
        let (dense_full, sparse_full) = if m.sparse_attention.is_some() {
            (0.0, full_layers)
        } else {
            (full_layers, 0.0)
        };
        let prefill_attn_ms_per_pair = dense_full * flops_per_pair_layer / attn_rate;
        let sliding_ms_per_pair = sliding_layers * flops_per_pair_layer / attn_rate;
        let sparse_ms_per_pair = sparse_full * flops_per_pair_layer / attn_rate;
        let (indexer_ms_per_pair, sparse_topk) = match m.sparse_attention {
            Some(d) => {
                let fp8_rate =
                    sys.fp8_tflops.max(sys.bf16_tflops) * 1e9 * k.attn_eff * gen.compute_scale;
                (
                    full_layers * 2.0 * (d.index_n_heads * d.index_head_dim) as f64 / fp8_rate,
                    d.index_topk as f64,
                )
            }
            None => (0.0, f64::INFINITY),
        };

        let kv_layer_bytes = spec.kv_bytes_per_token_layer();
        let dec_bw = sys.hbm_tbps * 1e9 * k.decode_attn_eff * gen.memory_scale;
        let decode_mem_ms_per_token = dense_full * kv_layer_bytes / dec_bw;
        let sparse_decode_ms_per_token = sparse_full * kv_layer_bytes / dec_bw;
        let sliding_decode_ms_per_token = sliding_layers * kv_layer_bytes / dec_bw;
        // MLA decode runs absorbed: every cached latent meets every local
        // head twice (scores and values) at the latent width.
        let decode_flops_per_token = match m.mla {
            Some(mla) => {
                2.0 * heads_local * (2.0 * mla.kv_lora_rank as f64 + mla.qk_rope_head_dim as f64)
            }
            None => 2.0 * heads_local * 2.0 * m.head_dim as f64,
        };
        let decode_flop_ms_per_token = full_layers * decode_flops_per_token / attn_rate;

        let (linear_ms_per_seq, linear_ms_per_token) = match m.linear_attention {
            Some(la) => {
                let heads = (la.num_value_heads as f64 / tp).max(1.0);
                let state = heads * la.key_head_dim as f64 * la.value_head_dim as f64 * 4.0;
                let nl = m.layers.linear_attention as f64;
                (
                    nl * 2.0 * state / dec_bw,
                    // chunked delta rule: ~6 dk*dv products per token and head
                    nl * 6.0 * 2.0 * heads * (la.key_head_dim * la.value_head_dim) as f64
                        / attn_rate,
                )
            }
            None => (0.0, 0.0),
        };

        // --- communication ---
        // Collectives run over NVLink inside the NVLink domain and over the
        // scale-out network beyond it. Both phases of a hierarchical
        // collective are paid one after the other.
        let nvl = sys.nvlink_gbps * 1e6 * k.comm_eff; // bytes/ms
        let ib = sys.scaleout_gbps * 1e6 * k.comm_eff;
        let h = m.hidden_size as f64;
        let domain = sys.nvlink_domain.max(1) as f64;
        let mut comm_fixed_ms = 0.0;
        let mut comm_ms_per_token = 0.0;
        // Ring/tree all-reduce of `bytes` per token over `g` GPUs.
        let mut all_reduce = |g: f64, bytes: f64| {
            if g <= 1.0 {
                return;
            }
            let local = g.min(domain);
            let nodes = (g / domain).ceil();
            comm_fixed_ms += layers * k.comm_latency_us / 1e3;
            comm_ms_per_token += layers * 2.0 * (local - 1.0) / local * bytes / nvl;
            if nodes > 1.0 {
                comm_fixed_ms += layers * k.scaleout_latency_us / 1e3;
                comm_ms_per_token += layers * 2.0 * (nodes - 1.0) / nodes * bytes / local / ib;
            }
        };
        // attention output, bf16, over the attention TP group
        all_reduce(tp, h * 2.0);
        if stage > 1.0 {
            if l.dp > 1 {
                // DEP: all-to-all dispatch (fp8) and combine (bf16) of each
                // token's top-k copies. Across nodes a token is sent once per
                // remote node holding one of its experts (DeepEP-style dedup).
                let topk = m.moe.map(|x| x.top_k as f64).unwrap_or(1.0);
                let local = stage.min(domain);
                let nodes = (stage / domain).ceil();
                // The TP ranks of one attention replica share its tokens, so
                // each GPU dispatches 1/tp of them.
                comm_fixed_ms += layers * 2.0 * k.comm_latency_us / 1e3;
                comm_ms_per_token += layers * (local - 1.0) / local * topk * h * 3.0 / nvl / tp;
                if nodes > 1.0 {
                    comm_fixed_ms += layers * 2.0 * k.scaleout_latency_us / 1e3;
                    let remote = topk.min(nodes - 1.0) * (nodes - 1.0) / nodes;
                    comm_ms_per_token += layers * remote * h * 3.0 / ib / tp;
                }
            } else {
                // TP/TEP: all-reduce after the MLP/MoE block
                all_reduce(stage, h * 2.0);
            }
        }

        Ok(StepCostModel {
            dp: l.dp as f64,
            attn_proj,
            dense,
            moe_ms_per_token,
            moe_pad_ms_per_expert,
            moe_weight_ms_per_expert,
            experts_local,
            expert_miss,
            lm_head,
            prefill_attn_ms_per_pair,
            sliding_ms_per_pair,
            sliding_window: m.sliding_window.map(|w| w as f64).unwrap_or(f64::INFINITY),
            sparse_ms_per_pair,
            sparse_topk,
            indexer_ms_per_pair,
            decode_mem_ms_per_token,
            decode_flop_ms_per_token,
            sliding_decode_ms_per_token,
            sparse_decode_ms_per_token,
            linear_ms_per_seq,
            linear_ms_per_token,
            comm_fixed_ms,
            comm_ms_per_token,
            step_overhead_ms: k.step_overhead_ms,
            eager_layers_ms: (layers * k.layer_overhead_us
                + m.layers.moe_ffn as f64 * k.moe_layer_overhead_us)
                / 1e3,
            graph_layers_ms: (layers * k.graph_layer_overhead_us
                + m.layers.moe_ffn as f64 * k.graph_moe_layer_overhead_us)
                / 1e3,
            seq_overhead_ms: k.seq_overhead_us / 1e3,
        })
    }

    /// The parts of one step's time, in ms, for reports and tests.
    pub fn breakdown(&self, b: &StepBatch) -> StepBreakdown {
        if b.is_empty() {
            return StepBreakdown::default();
        }
        let t = b.total_tokens() as f64;
        let seqs = (b.prefill_seqs + b.decode_seqs) as f64;
        // DP ranks split the batch by sequence; the busiest rank holds the
        // ceiling share of the sequences, and everyone waits for it.
        let seqs_rank = (seqs / self.dp).ceil();
        let share = if seqs > 0.0 { seqs_rank / seqs } else { 1.0 };
        // Multiply before dividing: whole numbers stay exact, so the ceiling
        // never rounds 11.000000000000002 up to 12.
        let t_rank = if seqs > 0.0 {
            (t * seqs_rank / seqs).ceil()
        } else {
            t
        };

        let mut gemm = self.attn_proj.time(t_rank) + self.dense.time(t) + self.lm_head.time(seqs);
        if self.experts_local > 0.0 {
            let touched = self.experts_local * (1.0 - self.expert_miss.powf(t));
            gemm += roofline(
                self.moe_ms_per_token * t + self.moe_pad_ms_per_expert * touched,
                self.moe_weight_ms_per_expert * touched,
            );
        }

        let pairs = b.prefill_attn_pairs * share;
        let p_tokens = b.prefill_tokens as f64 * share;
        let mut attention = pairs * self.prefill_attn_ms_per_pair
            + pairs.min(p_tokens * self.sliding_window) * self.sliding_ms_per_pair
            + pairs.min(p_tokens * self.sparse_topk) * self.sparse_ms_per_pair
            + pairs * self.indexer_ms_per_pair;
        let kv = (b.decode_kv_tokens + b.prefill_past_tokens) as f64 * share;
        let d_seqs = b.decode_seqs as f64 * share;
        let capped_sparse = kv.min(d_seqs.max(1.0) * self.sparse_topk);
        attention += roofline(
            kv * self.decode_flop_ms_per_token,
            kv * self.decode_mem_ms_per_token + capped_sparse * self.sparse_decode_ms_per_token,
        );
        attention += kv.min(d_seqs * self.sliding_window) * self.sliding_decode_ms_per_token;
        attention += seqs_rank * self.linear_ms_per_seq + p_tokens * self.linear_ms_per_token;

        let comm = self.comm_fixed_ms + t_rank * self.comm_ms_per_token;
        let layers = if b.prefill_tokens > 0 {
            self.eager_layers_ms
        } else {
            self.graph_layers_ms
        };
        let overhead = self.step_overhead_ms + layers + seqs_rank * self.seq_overhead_ms;
        StepBreakdown {
            gemm_ms: gemm,
            attention_ms: attention,
            comm_ms: comm,
            overhead_ms: overhead,
        }
    }
}

/// Where one step's time goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct StepBreakdown {
    pub gemm_ms: f64,
    pub attention_ms: f64,
    pub comm_ms: f64,
    pub overhead_ms: f64,
}

impl StepBreakdown {
    pub fn total_ms(&self) -> f64 {
        self.gemm_ms + self.attention_ms + self.comm_ms + self.overhead_ms
    }
}

impl StepTimer for StepCostModel {
    #[inline]
    fn step_ms(&self, batch: &StepBatch) -> f64 {
        self.breakdown(batch).total_ms()
    }
}
