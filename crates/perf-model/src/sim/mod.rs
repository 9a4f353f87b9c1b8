//! Discrete-event simulation of LLM serving engines.
//!
//! # Layers
//!
//! - [`Engine`] is the scheduler of one engine and nothing else: a waiting
//!   queue, the running requests and KV block accounting. It has no clock.
//!   A caller repeatedly takes [`Engine::plan_step`], lets the step's
//!   duration pass however it likes, and calls [`Engine::finish_step`] to
//!   learn which requests produced a token. The virtual-time drivers here
//!   jump time forward by [`StepTimer`](crate::StepTimer) durations; a
//!   real-time mock server can drive the same engine by sleeping for the
//!   duration instead, and call [`Engine::add_request`] / [`Engine::abort`]
//!   from its request handlers between steps.
//! - [`run_aggregated`] and [`run_disaggregated`] are virtual-time drivers:
//!   they generate a benchmark's traffic (closed loop or Poisson), route it
//!   to engines, and summarise what a benchmark client would measure in a
//!   [`SimReport`].
//!
//! # Scheduler semantics
//!
//! Token counting follows vLLM V1 for every policy: a request of prompt `P`
//! that has generated `g` tokens knows `P + g` tokens, of which `computed`
//! are in the KV cache. A step computes some of the missing ones; when none
//! are missing afterwards the request emits a token. A decode is therefore
//! just a one-token step of a request missing only its newest token, and a
//! preempted request (its KV dropped) recomputes prompt and output together,
//! emitting its next token, not a new first token, when done. KV is counted
//! in blocks of `block_size` tokens, `ceil(computed / block_size)` per
//! request; the final output token is never fed back, so a request peaks at
//! `P + max_output − 1` tokens. A request whose peak cannot fit the whole
//! pool is refused when added, because it would otherwise preempt itself
//! forever.
//!
//! - `Mixed` (vLLM V1): running requests first, in admission order, each
//!   getting its missing tokens (one for a decode) within the step's token
//!   budget; then waiting requests FCFS with the rest of the budget, the last
//!   one chunked. Decodes come first so that admitting prompts never stalls
//!   generation (TPOT stays flat while TTFT absorbs the load). Blocks are
//!   allocated on demand; when they run out the newest running request is
//!   preempted and requeued at the front, since it has the least work to
//!   lose, and nothing new is admitted in that step.
//! - `PrefillFirst` (SGLang): whenever a prompt can be admitted the step is
//!   prefill-only, because SGLang runs prefill and decode as separate
//!   batches and prioritises new prefills to keep the batch full; a prompt
//!   longer than `chunked_prefill_size` continues over consecutive prefill
//!   steps. Otherwise every running request decodes, uncapped by the prefill
//!   budget. Admission keeps `new_token_ratio` × (remaining outputs) free
//!   ([`ReserveRatio`]), decaying each decode step and reset when a decode
//!   step runs out of memory and retracts the newest request.
//! - `MixedNoEvict` (TensorRT-LLM `GUARANTEED_NO_EVICT`): steps are composed
//!   like `Mixed`, but a request is admitted only if blocks for its peak
//!   length can be reserved alongside every running request's peak, so
//!   memory can never run out mid-generation: no preemption, fewer
//!   concurrent requests.
//!
//! Prefix caching is content free: a [`RequestSpec`] names its shared
//! prefix by a hash and length ([`PrefixKey`]); when a request's prompt is
//! fully computed the prefix is remembered, and later requests with the same
//! hash skip those tokens (whole blocks, never the last prompt token). The
//! cache lives in free memory, so it is trimmed LRU-first to the free block
//! count after every allocation. A caller that models hits itself passes
//! `cached_prefix_tokens` instead.
//!
//! # Fast-forward
//!
//! With nothing waiting to be admitted and every running request decoding,
//! the next steps are identical but for KV lengths, each growing by one per
//! step. [`Engine::decode_span`] says how many such steps can run before
//! the first completion or before KV runs out (after which single steps
//! resume and preemption is handled exactly), and
//! [`Engine::advance_decode`] applies them at once. The driver charges the
//! span `k × (t_first + t_last) / 2`, exact when step time is linear in
//! `decode_kv_tokens`, and cuts a span short at the step during which a new
//! request reaches the engine. Steps are counted whether fast-forwarded or
//! not.

mod config;
mod driver;
mod engine;
mod error;
mod prefix;
mod rng;
mod stats;

pub use config::{ReserveRatio, SchedPolicy, SchedulerConfig};
pub use driver::{
    run_aggregated, run_disaggregated, Arrivals, EngineSetup, KvTransfer, SharedPrefix, SimOptions,
    Workload,
};
pub use engine::{
    ActionKind, DecodeSpan, Engine, EngineStats, PlannedStep, PrefixKey, RequestSpec, StepAction,
    TokenEvent, TokenKind,
};
pub use error::SimError;
pub use rng::SplitMix64;
pub use stats::{Dist, LogHistogram, SimReport};
