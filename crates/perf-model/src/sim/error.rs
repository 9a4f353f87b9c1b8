//! The one error type of the simulator, so that callers handle a single enum
//! whichever layer (configuration, engine, driver) rejected the input.

/// Why a simulation (or an engine call) could not proceed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimError {
    #[error("invalid scheduler configuration: {0}")]
    InvalidConfig(String),

    #[error("invalid request {id}: {reason}")]
    InvalidRequest { id: u64, reason: &'static str },

    /// The request could never be served by this engine, however long it
    /// waited: admitting it would loop forever, so it is refused up front.
    #[error(
        "request {id} needs {needed_blocks} KV blocks ({tokens} tokens) \
         but the engine has only {capacity_blocks}"
    )]
    RequestTooLarge {
        id: u64,
        tokens: u64,
        needed_blocks: u64,
        capacity_blocks: u64,
    },

    /// Without chunked prefill a prompt must fit in one step's token budget.
    #[error(
        "request {id}: prompt of {prompt_tokens} tokens exceeds the step budget of \
         {budget} tokens and chunked prefill is off"
    )]
    PromptExceedsBudget {
        id: u64,
        prompt_tokens: u32,
        budget: u32,
    },

    /// A [`DecodeSpan`](super::DecodeSpan) was applied after the running
    /// set changed (a step, admission, abort or completion since).
    #[error("decode span is stale: the engine changed since it was computed")]
    StaleSpan,

    #[error("invalid workload: {0}")]
    InvalidWorkload(String),

    #[error("invalid simulation options: {0}")]
    InvalidOptions(String),

    #[error("step timer returned {ms} ms, expected a finite non-negative duration")]
    InvalidStepTime { ms: f64 },

    #[error("KV transfer time of {ms} ms, expected a finite non-negative duration")]
    InvalidTransferTime { ms: f64 },

    /// Work is outstanding but no engine can schedule anything and nothing
    /// else is pending: without this the driver would spin forever.
    #[error("simulation stalled at {at_ms} ms with {completed} requests completed and {outstanding} outstanding")]
    Stalled {
        at_ms: f64,
        completed: u32,
        outstanding: u32,
    },

    #[error("simulated time exceeded the limit of {limit_s} s with {completed} of {requested} requests completed")]
    TimeLimit {
        limit_s: f64,
        completed: u32,
        requested: u32,
    },
}
