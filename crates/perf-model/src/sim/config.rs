//! Scheduler knobs and per-backend presets.

use super::SimError;
use serde::{Deserialize, Serialize};
use spec::Backend;

/// How an engine composes a step out of running and waiting requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchedPolicy {
    /// vLLM V1: decodes first, the rest of the token budget goes to prefill
    /// chunks; KV is allocated on demand and the newest request is preempted
    /// (and later recomputed) when blocks run out.
    Mixed,
    /// SGLang: a prefill-only step whenever waiting work can be admitted,
    /// otherwise a decode-only step of every running request.
    PrefillFirst,
    /// TensorRT-LLM inflight batching with `GUARANTEED_NO_EVICT`: composed
    /// like `Mixed`, but a request is admitted only if KV for its whole
    /// sequence (prompt + max output) can be reserved, so nothing is evicted.
    MixedNoEvict,
}

/// The share of running requests' remaining output that admission keeps
/// free, SGLang's `new_token_ratio`: it starts conservative, decays every
/// decode step while memory holds, and jumps back after a retraction.
/// `NONE` (all zero) admits greedily, as vLLM does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReserveRatio {
    pub init: f64,
    pub min: f64,
    /// Subtracted from the ratio after every decode step, down to `min`.
    pub decay_per_step: f64,
}

impl ReserveRatio {
    pub const NONE: ReserveRatio = ReserveRatio {
        init: 0.0,
        min: 0.0,
        decay_per_step: 0.0,
    };

    /// SGLang's defaults: 0.7 decaying to 0.7 × 0.14 over 600 steps.
    pub const SGLANG: ReserveRatio = ReserveRatio {
        init: 0.7,
        min: 0.098,
        decay_per_step: (0.7 - 0.098) / 600.0,
    };
}

/// The scheduler of one engine (one data-parallel replica).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// Most requests running (holding KV) at once.
    pub max_num_seqs: u32,
    /// Token budget of one step: prefill chunk tokens plus one per decode
    /// (`PrefillFirst` applies it to prefill steps only, as SGLang's
    /// `chunked_prefill_size`; its decode steps are not token-capped).
    pub max_num_batched_tokens: u32,
    /// Tokens per KV block (SGLang's page size is 1).
    pub block_size: u32,
    /// KV blocks available for sequences.
    pub num_kv_blocks: u32,
    /// Whether a prompt longer than the remaining budget may be split over
    /// several steps; without it the prompt must fit in one step.
    pub chunked_prefill: bool,
    pub policy: SchedPolicy,
    /// Whether prompt prefixes are reused across requests (see the module
    /// docs for the content-free model).
    pub enable_prefix_caching: bool,
    /// Admission headroom kept for running requests' future tokens.
    /// Ignored by `MixedNoEvict`, which reserves whole sequences.
    pub decode_reserve: ReserveRatio,
}

impl SchedulerConfig {
    /// The serving defaults of `backend` on a ≥ 70 GiB GPU, with a KV pool
    /// of `kv_capacity_tokens` tokens (rounded down to whole blocks).
    ///
    /// - vLLM V1 (`vllm serve`): 1024 seqs, 8192 batched tokens, 16-token
    ///   blocks, chunked prefill and prefix caching on.
    /// - SGLang: `chunked_prefill_size` 8192, page size 1, radix cache on,
    ///   2048 running requests (SGLang derives it from memory; 2048 is the
    ///   floor of its usual range), decaying `new_token_ratio` reservation.
    /// - TensorRT-LLM (`trtllm-serve`): `max_batch_size` 2048,
    ///   `max_num_tokens` 8192, 32-token blocks, chunked context and block
    ///   reuse on, `GUARANTEED_NO_EVICT`.
    pub fn preset(backend: Backend, kv_capacity_tokens: u64) -> SchedulerConfig {
        let (max_num_seqs, block_size, policy, reserve) = match backend {
            Backend::Vllm => (1024, 16, SchedPolicy::Mixed, ReserveRatio::NONE),
            Backend::Sglang => (2048, 1, SchedPolicy::PrefillFirst, ReserveRatio::SGLANG),
            Backend::Trtllm => (2048, 32, SchedPolicy::MixedNoEvict, ReserveRatio::NONE),
        };
        let blocks = (kv_capacity_tokens / u64::from(block_size)).min(u64::from(u32::MAX));
        SchedulerConfig {
            max_num_seqs,
            max_num_batched_tokens: 8192,
            block_size,
            num_kv_blocks: blocks as u32,
            chunked_prefill: true,
            policy,
            enable_prefix_caching: true,
            decode_reserve: reserve,
        }
    }

    /// Tokens the KV pool holds.
    pub fn kv_capacity_tokens(&self) -> u64 {
        u64::from(self.num_kv_blocks) * u64::from(self.block_size)
    }

    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |what: &str| Err(SimError::InvalidConfig(what.to_string()));
        if self.max_num_seqs == 0 {
            return bad("max_num_seqs must be at least 1");
        }
        if self.max_num_batched_tokens == 0 {
            return bad("max_num_batched_tokens must be at least 1");
        }
        if self.block_size == 0 {
            return bad("block_size must be at least 1");
        }
        if self.num_kv_blocks == 0 {
            return bad("num_kv_blocks must be at least 1");
        }
        let r = self.decode_reserve;
        let ok = |x: f64| x.is_finite() && x >= 0.0;
        if !(ok(r.init) && ok(r.min) && ok(r.decay_per_step)) || r.min > r.init {
            return bad("decode_reserve must be finite, non-negative, with min <= init");
        }
        Ok(())
    }
}
