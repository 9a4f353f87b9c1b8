//! The contract between the scheduler and the timing model.

/// What one engine step processes, aggregated so that its cost can be
/// evaluated in constant time whatever the batch size.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepBatch {
    /// New prompt tokens computed this step (sum of the prefill chunks).
    pub prefill_tokens: u32,
    /// Sequences contributing a prefill chunk.
    pub prefill_seqs: u32,
    /// Causal attention work of the prefill chunks, in query-key pairs:
    /// sum over chunks of `chunk * (past + (chunk + 1) / 2)`.
    pub prefill_attn_pairs: f64,
    /// Sum over chunks of the tokens already in the cache before the chunk
    /// (prefix-cache hits and earlier chunks), which the chunk must read.
    pub prefill_past_tokens: u64,
    /// Sequences generating one token.
    pub decode_seqs: u32,
    /// Sum of the KV lengths the decode sequences attend to.
    pub decode_kv_tokens: u64,
}

impl StepBatch {
    pub fn is_empty(&self) -> bool {
        self.prefill_tokens == 0 && self.decode_seqs == 0
    }

    /// The batch times `f`: sequence and token counts round up (part of a
    /// sequence is still a sequence to schedule), summed lengths truncate.
    /// Exact for whole-number factors.
    pub fn scaled(&self, f: f64) -> StepBatch {
        StepBatch {
            prefill_tokens: (self.prefill_tokens as f64 * f).ceil() as u32,
            prefill_seqs: (self.prefill_seqs as f64 * f).ceil() as u32,
            prefill_attn_pairs: self.prefill_attn_pairs * f,
            prefill_past_tokens: (self.prefill_past_tokens as f64 * f) as u64,
            decode_seqs: (self.decode_seqs as f64 * f).ceil() as u32,
            decode_kv_tokens: (self.decode_kv_tokens as f64 * f) as u64,
        }
    }

    /// Tokens that go through the GEMMs this step.
    pub fn total_tokens(&self) -> u32 {
        self.prefill_tokens + self.decode_seqs
    }
}

/// A timing model for one engine: the duration of a step in milliseconds.
pub trait StepTimer {
    fn step_ms(&self, batch: &StepBatch) -> f64;
}

impl<T: StepTimer + ?Sized> StepTimer for &T {
    fn step_ms(&self, batch: &StepBatch) -> f64 {
        (**self).step_ms(batch)
    }
}
