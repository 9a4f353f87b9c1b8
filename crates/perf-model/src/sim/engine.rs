//! The steppable scheduler of one engine. It never reads a clock: the caller
//! asks for the next step, spends however long the step takes (virtual or
//! real time), then reports it done and receives the tokens it produced.

use super::config::{SchedPolicy, SchedulerConfig};
use super::prefix::PrefixCache;
use super::SimError;
use crate::step::StepBatch;
use std::collections::VecDeque;

/// Identifies a shared prompt prefix (e.g. a system prompt) without its
/// contents: requests with the same `hash` share their first `len` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrefixKey {
    pub hash: u64,
    pub len: u32,
}

/// A request handed to an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestSpec {
    /// Caller's identifier, echoed in events; must be unique among the
    /// engine's live requests.
    pub id: u64,
    pub prompt_tokens: u32,
    /// Output tokens to generate, counting the first one.
    pub max_output_tokens: u32,
    /// Prompt tokens the caller knows are already cached (its own prefix
    /// cache model); honoured only with `enable_prefix_caching`.
    pub cached_prefix_tokens: u32,
    /// Prefix looked up in (and later published to) the engine's own cache.
    pub prefix: Option<PrefixKey>,
    /// Disaggregated decode worker: the prompt's KV arrives computed and the
    /// first output token was already produced elsewhere, so this engine
    /// generates tokens 2..=`max_output_tokens`.
    pub prefilled: bool,
}

impl RequestSpec {
    pub fn new(id: u64, prompt_tokens: u32, max_output_tokens: u32) -> Self {
        RequestSpec {
            id,
            prompt_tokens,
            max_output_tokens,
            cached_prefix_tokens: 0,
            prefix: None,
            prefilled: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// A chunk of prompt (or of a preempted sequence being recomputed).
    Prefill,
    /// One new token of a request whose context is fully cached.
    Decode,
}

/// What one request does in a planned step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepAction {
    pub id: u64,
    pub kind: ActionKind,
    /// Tokens computed: the chunk length, or 1 for a decode.
    pub tokens: u32,
    /// Tokens already in the cache before this step.
    pub past_tokens: u32,
    slot: u32,
}

/// The step the engine will run next. Borrowed from the engine so planning
/// allocates nothing; drop it before calling [`Engine::finish_step`].
#[derive(Debug, Clone, Copy)]
pub struct PlannedStep<'a> {
    pub batch: StepBatch,
    pub actions: &'a [StepAction],
    /// Requests evicted while planning this step; they wait to be recomputed.
    pub preempted: &'a [u64],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    First,
    Next,
}

/// A request produced a token at the end of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent {
    pub id: u64,
    pub kind: TokenKind,
    /// This was the request's last token; the engine has released it.
    pub finished: bool,
}

/// A run of decode-only steps over an unchanging set of requests, which
/// differ only in the KV lengths they attend to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeSpan {
    /// Steps that can run without a completion, admission or preemption in
    /// between; the last one may complete requests.
    pub steps: u32,
    /// The batch of the span's first step.
    pub first: StepBatch,
    epoch: u64,
}

impl DecodeSpan {
    /// The batch of step `i` (1-based) of the span: every sequence's KV has
    /// grown by one token per earlier step.
    pub fn batch(&self, i: u32) -> StepBatch {
        let grown = u64::from(i.saturating_sub(1)) * u64::from(self.first.decode_seqs);
        StepBatch {
            decode_kv_tokens: self.first.decode_kv_tokens + grown,
            ..self.first
        }
    }
}

/// Counters over an engine's lifetime.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EngineStats {
    /// Steps run, fast-forwarded ones included.
    pub steps: u64,
    /// Steps with at least one decode.
    pub decode_steps: u64,
    /// Sum of the decode batch sizes of those steps.
    pub decode_seqs: u64,
    pub prefill_tokens: u64,
    pub preemptions: u64,
    /// Prompt tokens skipped thanks to the prefix cache.
    pub prefix_hit_tokens: u64,
    pub peak_used_blocks: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Waiting,
    Running,
}

#[derive(Debug, Clone, Copy)]
struct Req {
    id: u64,
    prompt: u32,
    max_out: u32,
    generated: u32,
    /// Tokens whose KV is in the cache.
    computed: u32,
    blocks: u32,
    /// Blocks of the longest sequence it can reach (prompt + max output - 1:
    /// the last token is never fed back).
    full_blocks: u32,
    cached_prefix: u32,
    prefix: Option<PrefixKey>,
    prefix_published: bool,
    /// Holds a pin on its prefix's cache entry while running.
    prefix_pinned: bool,
    state: SlotState,
}

impl Req {
    /// Tokens known: prompt plus generated.
    #[inline]
    fn seq_len(&self) -> u32 {
        self.prompt + self.generated
    }

    /// Only the newest token is missing from the cache.
    #[inline]
    fn decode_ready(&self) -> bool {
        self.generated > 0 && self.computed + 1 == self.seq_len()
    }

    #[inline]
    fn remaining_out(&self) -> u64 {
        u64::from(self.max_out - self.generated)
    }
}

#[inline]
fn ceil_div(a: u32, b: u32) -> u32 {
    a.div_ceil(b)
}

/// Sequences longer than this are refused, which keeps every token sum of a
/// request in `u32` without checks in the hot loops.
const MAX_SEQ_TOKENS: u64 = (u32::MAX / 2) as u64;

/// Scheduler state of one engine: waiting queue, running requests and KV
/// block accounting. See the module docs for the policies.
#[derive(Debug, Clone)]
pub struct Engine {
    cfg: SchedulerConfig,
    slots: Vec<Req>,
    free_slots: Vec<u32>,
    waiting: VecDeque<u32>,
    /// In admission order: the last one is the newest, the one preempted.
    running: Vec<u32>,
    used_blocks: u32,
    /// `MixedNoEvict`: blocks promised to running requests' whole sequences.
    reserved_blocks: u64,
    /// Sum over running requests of the output tokens they may still emit.
    remaining_out: u64,
    reserve_ratio: f64,
    prefix: PrefixCache,
    // Reused buffers: planning and finishing allocate nothing once warm.
    actions: Vec<StepAction>,
    preempted: Vec<u64>,
    events: Vec<TokenEvent>,
    batch: StepBatch,
    planned: bool,
    /// Bumped whenever the running set changes, so a stale span is refused.
    epoch: u64,
    stats: EngineStats,
}

impl Engine {
    pub fn new(cfg: SchedulerConfig) -> Result<Engine, SimError> {
        cfg.validate()?;
        Ok(Engine {
            cfg,
            slots: Vec::new(),
            free_slots: Vec::new(),
            waiting: VecDeque::new(),
            running: Vec::new(),
            used_blocks: 0,
            reserved_blocks: 0,
            remaining_out: 0,
            reserve_ratio: cfg.decode_reserve.init,
            prefix: PrefixCache::default(),
            actions: Vec::new(),
            preempted: Vec::new(),
            events: Vec::new(),
            batch: StepBatch::default(),
            planned: false,
            epoch: 0,
            stats: EngineStats::default(),
        })
    }

    pub fn config(&self) -> &SchedulerConfig {
        &self.cfg
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn num_running(&self) -> usize {
        self.running.len()
    }

    pub fn num_waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Requests the engine holds, running or waiting: the load a router
    /// balances.
    pub fn num_requests(&self) -> usize {
        self.running.len() + self.waiting.len()
    }

    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    pub fn used_blocks(&self) -> u32 {
        self.used_blocks
    }

    /// Fraction of KV blocks held by requests.
    pub fn kv_usage(&self) -> f64 {
        f64::from(self.used_blocks) / f64::from(self.cfg.num_kv_blocks)
    }

    /// Queues a request. Refuses requests that could never be served by this
    /// configuration rather than letting them wait forever.
    pub fn add_request(&mut self, spec: RequestSpec) -> Result<(), SimError> {
        let id = spec.id;
        let invalid = |reason| Err(SimError::InvalidRequest { id, reason });
        if spec.prompt_tokens == 0 {
            return invalid("prompt_tokens must be at least 1");
        }
        if spec.max_output_tokens == 0 {
            return invalid("max_output_tokens must be at least 1");
        }
        if spec.prefilled && spec.max_output_tokens < 2 {
            return invalid("a prefilled request needs max_output_tokens >= 2: its first token came from the prefill engine");
        }
        let longest = u64::from(spec.prompt_tokens) + u64::from(spec.max_output_tokens) - 1;
        if longest > MAX_SEQ_TOKENS {
            return invalid("sequence longer than 2^31 tokens");
        }
        let bs = u64::from(self.cfg.block_size);
        let full_blocks = longest.div_ceil(bs);
        if full_blocks > u64::from(self.cfg.num_kv_blocks) {
            return Err(SimError::RequestTooLarge {
                id,
                tokens: longest,
                needed_blocks: full_blocks,
                capacity_blocks: u64::from(self.cfg.num_kv_blocks),
            });
        }
        if !self.cfg.chunked_prefill
            && !spec.prefilled
            && spec.prompt_tokens > self.cfg.max_num_batched_tokens
        {
            return Err(SimError::PromptExceedsBudget {
                id,
                prompt_tokens: spec.prompt_tokens,
                budget: self.cfg.max_num_batched_tokens,
            });
        }
        let req = Req {
            id,
            prompt: spec.prompt_tokens,
            max_out: spec.max_output_tokens,
            generated: u32::from(spec.prefilled),
            computed: if spec.prefilled {
                spec.prompt_tokens
            } else {
                0
            },
            blocks: 0,
            full_blocks: full_blocks as u32,
            cached_prefix: spec.cached_prefix_tokens,
            prefix: spec.prefix,
            // A prefilled request's prefix lives on the prefill engine.
            prefix_published: spec.prefilled,
            prefix_pinned: false,
            state: SlotState::Waiting,
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s as usize] = req;
                s
            }
            None => {
                self.slots.push(req);
                (self.slots.len() - 1) as u32
            }
        };
        self.waiting.push_back(slot);
        Ok(())
    }

    /// Removes a request wherever it is and frees its KV. Returns whether it
    /// was found. If it is part of the planned step its token is dropped.
    pub fn abort(&mut self, id: u64) -> bool {
        if let Some(pos) = self
            .waiting
            .iter()
            .position(|&s| self.slots[s as usize].id == id)
        {
            if let Some(s) = self.waiting.remove(pos) {
                self.release(s);
            }
            return true;
        }
        if let Some(pos) = self
            .running
            .iter()
            .position(|&s| self.slots[s as usize].id == id)
        {
            let s = self.running.remove(pos);
            self.leave_running(s);
            self.release(s);
            self.epoch += 1;
            return true;
        }
        false
    }

    /// Plans the next step, or `None` when there is nothing to run. Calling
    /// it again before [`finish_step`](Self::finish_step) returns the same
    /// step without rescheduling.
    pub fn plan_step(&mut self) -> Option<PlannedStep<'_>> {
        if !self.planned {
            self.actions.clear();
            self.preempted.clear();
            self.batch = StepBatch::default();
            match self.cfg.policy {
                SchedPolicy::Mixed | SchedPolicy::MixedNoEvict => self.plan_mixed(),
                SchedPolicy::PrefillFirst => self.plan_prefill_first(),
            }
            self.after_allocation();
            if self.actions.is_empty() {
                return None;
            }
            self.planned = true;
        }
        Some(PlannedStep {
            batch: self.batch,
            actions: &self.actions,
            preempted: &self.preempted,
        })
    }

    /// Completes the planned step: caches the computed tokens and reports
    /// the tokens produced. Empty when no step was planned.
    pub fn finish_step(&mut self) -> &[TokenEvent] {
        self.events.clear();
        if !self.planned {
            return &self.events;
        }
        self.planned = false;
        self.stats.steps += 1;
        self.stats.prefill_tokens += u64::from(self.batch.prefill_tokens);
        if self.batch.decode_seqs > 0 {
            self.stats.decode_steps += 1;
            self.stats.decode_seqs += u64::from(self.batch.decode_seqs);
            self.decay_reserve(1);
        }
        let bs = self.cfg.block_size;
        let caching = self.cfg.enable_prefix_caching;
        let mut emitted = 0u64;
        let mut any_finished = false;
        self.events.reserve(self.actions.len());
        for a in &self.actions {
            let r = &mut self.slots[a.slot as usize];
            if r.state != SlotState::Running || r.id != a.id {
                continue; // aborted while the step ran
            }
            r.computed += a.tokens;
            if r.computed < r.seq_len() {
                continue; // an intermediate prefill chunk emits nothing
            }
            if !r.prefix_published {
                r.prefix_published = true;
                if let (true, Some(p)) = (caching, r.prefix) {
                    let blocks = p.len.min(r.prompt) / bs;
                    let pin = !r.prefix_pinned;
                    r.prefix_pinned |= self.prefix.publish(p.hash, blocks, pin);
                }
            }
            r.generated += 1;
            emitted += 1;
            let finished = r.generated >= r.max_out;
            any_finished |= finished;
            self.events.push(TokenEvent {
                id: r.id,
                kind: if r.generated == 1 {
                    TokenKind::First
                } else {
                    TokenKind::Next
                },
                finished,
            });
        }
        self.remaining_out -= emitted;
        if any_finished {
            self.release_finished();
        }
        &self.events
    }

    /// Drops running requests that emitted their last token, keeping the
    /// others in admission order.
    fn release_finished(&mut self) {
        let no_evict = self.cfg.policy == SchedPolicy::MixedNoEvict;
        let mut kept = 0;
        for i in 0..self.running.len() {
            let s = self.running[i];
            let r = &mut self.slots[s as usize];
            if r.generated < r.max_out {
                self.running[kept] = s;
                kept += 1;
                continue;
            }
            if let (true, Some(p)) = (r.prefix_pinned, r.prefix) {
                r.prefix_pinned = false;
                self.prefix.unpin(p.hash);
            }
            self.used_blocks -= r.blocks;
            if no_evict {
                self.reserved_blocks -= u64::from(r.full_blocks);
            }
            r.blocks = 0;
            r.state = SlotState::Free;
            self.free_slots.push(s);
        }
        self.running.truncate(kept);
        self.epoch += 1;
    }

    /// The decode-only run the engine would go through from here if nothing
    /// arrived, or `None` when the next step is not a plain decode step
    /// (prefill pending, admission possible, KV about to run out).
    pub fn decode_span(&self) -> Option<DecodeSpan> {
        if self.planned || self.running.is_empty() {
            return None;
        }
        let n = self.running.len();
        if !self.waiting.is_empty()
            && n < self.cfg.max_num_seqs as usize
            && !self.head_blocked_during_decode(n as u32)
        {
            return None; // the next step may admit
        }
        if self.cfg.policy != SchedPolicy::PrefillFirst
            && n > self.cfg.max_num_batched_tokens as usize
        {
            return None; // not every request decodes every step
        }
        let mut steps = u32::MAX;
        let mut kv = 0u64;
        for &s in &self.running {
            let r = &self.slots[s as usize];
            if !r.decode_ready() {
                return None;
            }
            steps = steps.min(r.max_out - r.generated);
            kv += u64::from(r.seq_len());
        }
        let free = self.cfg.num_kv_blocks - self.used_blocks;
        if self.extra_blocks(steps) > u64::from(free) {
            if self.extra_blocks(1) > u64::from(free) {
                return None; // the very next step preempts
            }
            // Largest run whose block growth still fits: extra_blocks grows
            // with the run length, so bisect.
            let (mut lo, mut hi) = (1u32, steps);
            while hi - lo > 1 {
                let mid = lo + (hi - lo) / 2;
                if self.extra_blocks(mid) <= u64::from(free) {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            steps = lo;
        }
        Some(DecodeSpan {
            steps,
            first: StepBatch {
                decode_seqs: n as u32,
                decode_kv_tokens: kv,
                ..StepBatch::default()
            },
            epoch: self.epoch,
        })
    }

    /// Whether the head of the waiting queue certainly cannot be admitted
    /// while `n` running requests keep decoding: admission needs budget and
    /// blocks, and decode steps only consume blocks. Only decided where the
    /// admission rule does not loosen over time (no decaying reserve ratio);
    /// otherwise reports `false` and the caller single-steps. This is what
    /// keeps fast-forward working when a backlog waits on KV memory, e.g.
    /// under `MixedNoEvict` reservations.
    fn head_blocked_during_decode(&self, n: u32) -> bool {
        let Some(&s) = self.waiting.front() else {
            return true;
        };
        let r = &self.slots[s as usize];
        let free = self.cfg.num_kv_blocks - self.used_blocks;
        match self.cfg.policy {
            SchedPolicy::PrefillFirst => return false,
            SchedPolicy::Mixed if self.reserve_ratio > 0.0 => return false,
            SchedPolicy::MixedNoEvict
                if self.reserved_blocks + u64::from(r.full_blocks)
                    > u64::from(self.cfg.num_kv_blocks) =>
            {
                return true
            }
            _ => {}
        }
        let budget = self.cfg.max_num_batched_tokens.saturating_sub(n);
        let need = r.seq_len() - r.computed;
        if budget == 0 || (!self.cfg.chunked_prefill && need > budget) {
            return true;
        }
        // A prefix hit could only raise the blocks of the first chunk (the
        // model allocates hit blocks too), so the no-hit case is the least.
        let least = ceil_div(r.computed + need.min(budget), self.cfg.block_size);
        least > free
    }

    /// Runs the first `steps` steps of `span` at once. Every running request
    /// emits `steps` tokens; each gets one event (kind `Next`) standing for
    /// all of them, flagged `finished` if the last was its final token.
    pub fn advance_decode(
        &mut self,
        span: &DecodeSpan,
        steps: u32,
    ) -> Result<&[TokenEvent], SimError> {
        // The epoch catches spans outlived by this engine's changes; the scan
        // (cheap next to the steps it saves) catches a span from another
        // engine, which would otherwise overrun requests' output budgets.
        if span.epoch != self.epoch
            || self.planned
            || span.first.decode_seqs as usize != self.running.len()
            || self.running.iter().any(|&s| {
                let r = &self.slots[s as usize];
                !r.decode_ready() || r.max_out - r.generated < steps.min(span.steps)
            })
        {
            return Err(SimError::StaleSpan);
        }
        if steps == 0 || steps > span.steps {
            return Err(SimError::InvalidOptions(format!(
                "advance_decode: {steps} steps requested from a span of {}",
                span.steps
            )));
        }
        self.events.clear();
        let bs = self.cfg.block_size;
        let n = self.running.len() as u64;
        let mut grown = 0u32;
        for &s in &self.running {
            let r = &mut self.slots[s as usize];
            r.generated += steps;
            r.computed += steps;
            let blocks = ceil_div(r.computed, bs);
            grown += blocks - r.blocks;
            r.blocks = blocks;
        }
        self.used_blocks += grown;
        self.stats.peak_used_blocks = self.stats.peak_used_blocks.max(self.used_blocks);
        self.stats.steps += u64::from(steps);
        self.stats.decode_steps += u64::from(steps);
        self.stats.decode_seqs += n * u64::from(steps);
        self.remaining_out -= n * u64::from(steps);
        self.decay_reserve(steps);
        let mut any_finished = false;
        self.events.reserve(self.running.len());
        for &s in &self.running {
            let r = &self.slots[s as usize];
            let finished = r.generated >= r.max_out;
            any_finished |= finished;
            self.events.push(TokenEvent {
                id: r.id,
                kind: TokenKind::Next,
                finished,
            });
        }
        if any_finished {
            self.release_finished();
        }
        self.epoch += 1;
        self.after_allocation();
        Ok(&self.events)
    }

    /// Blocks the running requests need on top of what they hold after
    /// `steps` more decode steps.
    fn extra_blocks(&self, steps: u32) -> u64 {
        let bs = self.cfg.block_size;
        self.running
            .iter()
            .map(|&s| {
                let r = &self.slots[s as usize];
                u64::from(ceil_div(r.computed + steps, bs) - r.blocks)
            })
            .sum()
    }

    /// vLLM V1 / TensorRT-LLM inflight batching.
    fn plan_mixed(&mut self) {
        let mut budget = self.cfg.max_num_batched_tokens;
        // Running requests in admission order: decodes, then at most one
        // partially prefilled request (the newest, since its chunk used up
        // the budget when it was admitted).
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let s = self.running[i];
            let r = &self.slots[s as usize];
            let n = (r.seq_len() - r.computed).min(budget);
            if !self.alloc_or_preempt(s, n) {
                break;
            }
            self.push_action(s, n);
            budget -= n;
            i += 1;
        }
        // vLLM admits nothing in a step that had to preempt: memory is short.
        if self.preempted.is_empty() {
            self.admit_waiting(&mut budget);
        }
    }

    /// SGLang: prefill-only steps take priority; decode when none can run.
    fn plan_prefill_first(&mut self) {
        let mut budget = self.cfg.max_num_batched_tokens;
        // Continue a chunked prefill before admitting anything new.
        let mut i = 0;
        while i < self.running.len() && budget > 0 {
            let s = self.running[i];
            let r = &self.slots[s as usize];
            if r.decode_ready() {
                i += 1;
                continue;
            }
            let n = (r.seq_len() - r.computed).min(budget);
            if !self.alloc_or_preempt(s, n) {
                break;
            }
            self.push_action(s, n);
            budget -= n;
            i += 1;
        }
        if self.preempted.is_empty() {
            self.admit_waiting(&mut budget);
        }
        if !self.actions.is_empty() {
            return;
        }
        // Decode step: every running request, not capped by the prefill
        // budget; retract the newest when a new block is not available.
        let mut i = 0;
        while i < self.running.len() {
            let s = self.running[i];
            if !self.slots[s as usize].decode_ready() {
                i += 1;
                continue;
            }
            if !self.alloc_or_preempt(s, 1) {
                break;
            }
            self.push_action(s, 1);
            i += 1;
        }
    }

    /// Admits waiting requests in FCFS order while the budget, the running
    /// cap and KV allow. Stops at the first that does not fit so that a
    /// large request is not overtaken forever by smaller ones.
    fn admit_waiting(&mut self, budget: &mut u32) {
        let prefill_first = self.cfg.policy == SchedPolicy::PrefillFirst;
        while let Some(&s) = self.waiting.front() {
            if self.running.len() >= self.cfg.max_num_seqs as usize {
                break;
            }
            let r = self.slots[s as usize];
            let ready = r.decode_ready();
            // SGLang's decode-ready arrivals (disaggregated decode side)
            // join the running batch without a prefill step.
            let (start, n) = if ready && prefill_first {
                (r.computed, 0)
            } else {
                if *budget == 0 {
                    break;
                }
                let start = if r.computed > 0 {
                    r.computed
                } else {
                    self.prefix_hit(&r)
                };
                let need = r.seq_len() - start;
                let n = if need <= *budget || self.cfg.chunked_prefill {
                    need.min(*budget)
                } else if *budget == self.cfg.max_num_batched_tokens {
                    // Only a recompute after preemption (prompt plus output)
                    // can outgrow an unchunked budget; let it run alone
                    // rather than never.
                    need
                } else {
                    break;
                };
                (start, n)
            };
            let target = ceil_div(start + n, self.cfg.block_size);
            if !self.can_admit(&r, target) {
                break;
            }
            self.waiting.pop_front();
            let mut pinned = false;
            if start > r.computed {
                self.stats.prefix_hit_tokens += u64::from(start - r.computed);
                // The hit's blocks are in use now: keep them from eviction.
                if let Some(p) = r.prefix {
                    pinned = self.prefix.pin(p.hash);
                }
            }
            let r = &mut self.slots[s as usize];
            r.prefix_pinned = pinned;
            r.computed = start;
            r.blocks = target;
            r.state = SlotState::Running;
            self.used_blocks += target;
            if self.cfg.policy == SchedPolicy::MixedNoEvict {
                self.reserved_blocks += u64::from(r.full_blocks);
            }
            self.remaining_out += r.remaining_out();
            self.running.push(s);
            self.epoch += 1;
            if n > 0 {
                self.push_action(s, n);
                *budget = budget.saturating_sub(n);
            }
        }
    }

    fn can_admit(&self, r: &Req, target_blocks: u32) -> bool {
        let free = self.cfg.num_kv_blocks - self.used_blocks;
        if target_blocks > free {
            return false;
        }
        match self.cfg.policy {
            SchedPolicy::MixedNoEvict => {
                self.reserved_blocks + u64::from(r.full_blocks) <= u64::from(self.cfg.num_kv_blocks)
            }
            _ if self.running.is_empty() || self.reserve_ratio <= 0.0 => true,
            _ => {
                // Keep room for a share of every running request's (and
                // this one's) future tokens, so admission does not simply
                // trade into retractions a few steps later.
                let tokens = self.reserve_ratio * (self.remaining_out + r.remaining_out()) as f64;
                let reserve = (tokens / f64::from(self.cfg.block_size)).ceil();
                f64::from(target_blocks) + reserve <= f64::from(free)
            }
        }
    }

    /// Prompt tokens that can be skipped; whole blocks only, and never the
    /// whole sequence: the last token must be computed to yield logits.
    fn prefix_hit(&mut self, r: &Req) -> u32 {
        if !self.cfg.enable_prefix_caching {
            return 0;
        }
        let bs = self.cfg.block_size;
        let mut hit = r.cached_prefix.min(r.prompt);
        if let Some(p) = r.prefix {
            let cached = self.prefix.lookup(p.hash).saturating_mul(bs);
            hit = hit.max(cached.min(p.len).min(r.prompt));
        }
        hit.min(r.seq_len() - 1) / bs * bs
    }

    /// Grows `s`'s allocation to cover `n` more tokens, preempting the newest
    /// running requests until it fits. Returns false if `s` itself had to go.
    #[inline]
    fn alloc_or_preempt(&mut self, s: u32, n: u32) -> bool {
        let bs = self.cfg.block_size;
        let r = &self.slots[s as usize];
        // Most steps stay within the blocks already held: no division.
        if u64::from(r.computed + n) <= u64::from(r.blocks) * u64::from(bs) {
            return true;
        }
        let extra = ceil_div(r.computed + n, bs) - r.blocks;
        if extra <= self.cfg.num_kv_blocks - self.used_blocks {
            self.slots[s as usize].blocks += extra;
            self.used_blocks += extra;
            return true;
        }
        self.preempt_for(s, extra)
    }

    #[cold]
    fn preempt_for(&mut self, s: u32, extra: u32) -> bool {
        loop {
            let Some(victim) = self.running.pop() else {
                return false;
            };
            self.preempt(victim);
            if victim == s {
                return false;
            }
            if extra <= self.cfg.num_kv_blocks - self.used_blocks {
                self.slots[s as usize].blocks += extra;
                self.used_blocks += extra;
                return true;
            }
        }
    }

    /// Frees a running request's KV and requeues it at the front to be
    /// recomputed (prompt and generated tokens) when memory allows.
    fn preempt(&mut self, s: u32) {
        self.leave_running(s);
        let r = &mut self.slots[s as usize];
        r.computed = 0;
        r.state = SlotState::Waiting;
        self.waiting.push_front(s);
        self.preempted.push(r.id);
        self.stats.preemptions += 1;
        self.reserve_ratio = self.cfg.decode_reserve.init;
        self.epoch += 1;
    }

    /// Accounting for a request leaving the running set (not the list).
    fn leave_running(&mut self, s: u32) {
        let r = &mut self.slots[s as usize];
        self.used_blocks -= r.blocks;
        r.blocks = 0;
        if let (true, Some(p)) = (r.prefix_pinned, r.prefix) {
            r.prefix_pinned = false;
            self.prefix.unpin(p.hash);
        }
        if self.cfg.policy == SchedPolicy::MixedNoEvict {
            self.reserved_blocks -= u64::from(r.full_blocks);
        }
        self.remaining_out -= r.remaining_out();
    }

    fn release(&mut self, s: u32) {
        self.slots[s as usize].state = SlotState::Free;
        self.free_slots.push(s);
    }

    #[inline]
    fn push_action(&mut self, s: u32, n: u32) {
        let r = &self.slots[s as usize];
        let past = r.computed;
        let kind = if n == 1 && r.decode_ready() {
            self.batch.decode_seqs += 1;
            self.batch.decode_kv_tokens += u64::from(past + 1);
            ActionKind::Decode
        } else {
            let (c, p) = (f64::from(n), f64::from(past));
            self.batch.prefill_tokens += n;
            self.batch.prefill_seqs += 1;
            self.batch.prefill_attn_pairs += c * (p + (c + 1.0) / 2.0);
            self.batch.prefill_past_tokens += u64::from(past);
            ActionKind::Prefill
        };
        self.actions.push(StepAction {
            id: r.id,
            kind,
            tokens: n,
            past_tokens: past,
            slot: s,
        });
    }

    fn decay_reserve(&mut self, steps: u32) {
        let d = self.cfg.decode_reserve;
        if self.reserve_ratio > d.min {
            self.reserve_ratio =
                (self.reserve_ratio - d.decay_per_step * f64::from(steps)).max(d.min);
        }
    }

    fn after_allocation(&mut self) {
        self.stats.peak_used_blocks = self.stats.peak_used_blocks.max(self.used_blocks);
        self.prefix
            .shrink_to(u64::from(self.cfg.num_kv_blocks - self.used_blocks));
    }
}
