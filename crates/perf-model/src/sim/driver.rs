//! Virtual-time drivers: they own the clock, jump from event to event and
//! ask each engine's [`StepTimer`] how long its steps take.

use super::engine::{DecodeSpan, Engine, PrefixKey, RequestSpec, TokenKind};
use super::rng::{mix64, SplitMix64};
use super::stats::{Dist, LogHistogram, SimReport};
use super::{SchedulerConfig, SimError};
use crate::step::{StepBatch, StepTimer};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// How requests arrive.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Arrivals {
    /// `concurrency` clients, all sending at t = 0, each sending its next
    /// request the moment the previous one completes (no think time), as
    /// benchmark tools with a concurrency limit do.
    Closed { concurrency: u32 },
    /// Open loop: exponential inter-arrival gaps, first request at t = 0.
    Poisson { rate_per_s: f64 },
}

/// Requests share a prompt prefix (system prompt): request `i` starts with
/// the `tokens`-token prefix number `i % groups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedPrefix {
    pub tokens: u32,
    pub groups: u32,
}

/// The traffic of a simulated benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Workload {
    /// Prompt tokens per request.
    pub isl: u32,
    /// Output tokens per request.
    pub osl: u32,
    pub arrivals: Arrivals,
    /// Each request's ISL and OSL are scaled by a factor uniform in
    /// `[1 − j, 1 + j]` (seeded; 0 = fixed lengths).
    pub length_jitter: f64,
    pub shared_prefix: Option<SharedPrefix>,
    /// Prompt tokens of every request already in the prefix cache, as after
    /// a warm-up that sent the same prompts (needs prefix caching). Unlike
    /// `shared_prefix`, these hits are not subject to cache eviction.
    #[serde(default)]
    pub cached_prompt_tokens: u32,
}

impl Workload {
    pub fn closed(isl: u32, osl: u32, concurrency: u32) -> Workload {
        Workload {
            isl,
            osl,
            arrivals: Arrivals::Closed { concurrency },
            length_jitter: 0.0,
            shared_prefix: None,
            cached_prompt_tokens: 0,
        }
    }

    pub fn poisson(isl: u32, osl: u32, rate_per_s: f64) -> Workload {
        Workload {
            isl,
            osl,
            arrivals: Arrivals::Poisson { rate_per_s },
            length_jitter: 0.0,
            shared_prefix: None,
            cached_prompt_tokens: 0,
        }
    }

    pub fn from_spec(w: &spec::Workload) -> Workload {
        let arrivals = match w.arrival {
            spec::workload::Arrival::Concurrency(c) => Arrivals::Closed { concurrency: c },
            spec::workload::Arrival::RequestRate(r) => Arrivals::Poisson { rate_per_s: r },
        };
        Workload {
            isl: w.isl,
            osl: w.osl,
            arrivals,
            length_jitter: 0.0,
            shared_prefix: None,
            cached_prompt_tokens: 0,
        }
    }

    fn validate(&self) -> Result<(), SimError> {
        let bad = |m: &str| Err(SimError::InvalidWorkload(m.to_string()));
        if self.isl == 0 || self.osl == 0 {
            return bad("isl and osl must be at least 1");
        }
        match self.arrivals {
            Arrivals::Closed { concurrency: 0 } => return bad("concurrency must be at least 1"),
            Arrivals::Poisson { rate_per_s } if !(rate_per_s.is_finite() && rate_per_s > 0.0) => {
                return bad("request rate must be finite and positive")
            }
            _ => {}
        }
        if !(self.length_jitter.is_finite() && (0.0..1.0).contains(&self.length_jitter)) {
            return bad("length_jitter must be in [0, 1)");
        }
        if matches!(self.shared_prefix, Some(SharedPrefix { groups: 0, .. })) {
            return bad("shared_prefix.groups must be at least 1");
        }
        Ok(())
    }
}

/// How long and how faithfully to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SimOptions {
    /// Requests issued and completed, warmup included. `None`: for a closed
    /// loop max(10 × concurrency, 50), for Poisson arrivals 500.
    pub num_requests: Option<u32>,
    /// The first requests issued, left out of the statistics.
    pub warmup_requests: u32,
    /// Advance runs of identical decode steps at once (see module docs).
    pub fast_forward: bool,
    /// Simulated-time guard: a run that has not finished by then fails.
    pub max_sim_time_s: f64,
    /// Seeds Poisson arrivals, length jitter and prefix identities.
    pub seed: u64,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            num_requests: None,
            warmup_requests: 0,
            fast_forward: true,
            max_sim_time_s: 1e6,
            seed: 0,
        }
    }
}

impl SimOptions {
    /// The number of requests a run of `workload` issues.
    pub fn resolved_num_requests(&self, workload: &Workload) -> u32 {
        self.num_requests.unwrap_or(match workload.arrivals {
            Arrivals::Closed { concurrency } => concurrency.saturating_mul(10).max(50),
            Arrivals::Poisson { .. } => 500,
        })
    }
}

/// More requests than this are refused: per-request state is kept, and a
/// typo should not exhaust memory.
const MAX_REQUESTS: u32 = 50_000_000;

/// Time to move a prompt's KV from a prefill engine to a decode engine.
pub trait KvTransfer {
    fn transfer_ms(&self, prompt_tokens: u32) -> f64;
}

impl<F: Fn(u32) -> f64> KvTransfer for F {
    fn transfer_ms(&self, prompt_tokens: u32) -> f64 {
        self(prompt_tokens)
    }
}

/// One engine of a disaggregated deployment.
#[derive(Debug, Clone, Copy)]
pub struct EngineSetup<T> {
    pub config: SchedulerConfig,
    pub timer: T,
}

/// Simulates one engine serving `workload`.
pub fn run_aggregated<T: StepTimer>(
    config: &SchedulerConfig,
    timer: &T,
    workload: &Workload,
    opts: &SimOptions,
) -> Result<SimReport, SimError> {
    let nodes = vec![Node::new(*config, timer, Role::Aggregated)?];
    Sim::new(nodes, None, workload, opts)?.run()
}

/// Simulates prefill engines feeding decode engines.
///
/// A request goes to the prefill engine holding the fewest requests, whose
/// prefill produces its first token (TTFT ends there). Its KV is then
/// transferred for `transfer.transfer_ms(isl)` and it joins the decode
/// engine holding the fewest requests, which generates the other `osl − 1`
/// tokens. TPOT and the ITL of the second token are measured from the end
/// of the transfer, so they reflect decode speed and queueing, not the
/// transfer; E2E includes everything. The prefill engine releases the KV
/// when the prefill ends (the transfer does not hold its memory).
pub fn run_disaggregated<T: StepTimer, X: KvTransfer + ?Sized>(
    prefill: &[EngineSetup<T>],
    decode: &[EngineSetup<T>],
    transfer: &X,
    workload: &Workload,
    opts: &SimOptions,
) -> Result<SimReport, SimError> {
    if prefill.is_empty() || decode.is_empty() {
        return Err(SimError::InvalidOptions(
            "disaggregated serving needs at least one prefill and one decode engine".into(),
        ));
    }
    let mut nodes = Vec::with_capacity(prefill.len() + decode.len());
    for e in prefill {
        nodes.push(Node::new(e.config, &e.timer, Role::Prefill)?);
    }
    for e in decode {
        nodes.push(Node::new(e.config, &e.timer, Role::Decode)?);
    }
    let transfer = &|tokens: u32| transfer.transfer_ms(tokens);
    Sim::new(nodes, Some(transfer), workload, opts)?.run()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Aggregated,
    Prefill,
    Decode,
}

#[derive(Debug, Clone, Copy)]
enum Busy {
    Idle,
    Step {
        end: f64,
    },
    /// Fast-forwarded decode steps. Step durations are interpolated linearly
    /// between the first and the last (exact for a timer linear in the KV
    /// length), so the span lasts `steps × (t_first + t_last) / 2`.
    Span {
        span: DecodeSpan,
        start: f64,
        steps: u32,
        t_first: f64,
        t_last: f64,
        end: f64,
    },
}

impl Busy {
    fn end(&self) -> Option<f64> {
        match *self {
            Busy::Idle => None,
            Busy::Step { end } | Busy::Span { end, .. } => Some(end),
        }
    }
}

struct Node<'a, T> {
    engine: Engine,
    timer: &'a T,
    role: Role,
    busy: Busy,
}

impl<'a, T: StepTimer> Node<'a, T> {
    fn new(cfg: SchedulerConfig, timer: &'a T, role: Role) -> Result<Self, SimError> {
        Ok(Node {
            engine: Engine::new(cfg)?,
            timer,
            role,
            busy: Busy::Idle,
        })
    }
}

fn step_time<T: StepTimer>(timer: &T, batch: &StepBatch) -> Result<f64, SimError> {
    let ms = timer.step_ms(batch);
    if ms.is_finite() && ms >= 0.0 {
        Ok(ms)
    } else {
        Err(SimError::InvalidStepTime { ms })
    }
}

/// Per-request timeline, indexed by request id (issue order).
#[derive(Debug, Clone, Copy, Default)]
struct Track {
    arrival: f64,
    first: f64,
    /// When decoding can start: the first token, plus the KV transfer when
    /// disaggregated.
    decode_start: f64,
    last: f64,
    isl: u32,
    osl: u32,
}

/// A KV transfer in flight; ordered so the `BinaryHeap` pops the earliest.
#[derive(Debug, Clone, Copy)]
struct Transfer {
    at: f64,
    seq: u64,
    id: u32,
}

impl PartialEq for Transfer {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Transfer {}
impl PartialOrd for Transfer {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Transfer {
    fn cmp(&self, o: &Self) -> Ordering {
        o.at.total_cmp(&self.at).then(o.seq.cmp(&self.seq))
    }
}

enum Source {
    /// Arrival times of requests the clients will send (completions push).
    Closed(VecDeque<f64>),
    Poisson {
        rng: SplitMix64,
        rate_per_ms: f64,
        next: f64,
    },
}

/// Everything but the engines, so engine events can be handled while an
/// engine's event buffer is borrowed.
struct Book<'x> {
    workload: Workload,
    seed: u64,
    total: u32,
    warmup: u32,
    issued: u32,
    completed: u32,
    source: Source,
    transfer: Option<&'x dyn KvTransfer>,
    transfers: BinaryHeap<Transfer>,
    transfer_seq: u64,
    tracks: Vec<Track>,
    ttft: Vec<f64>,
    tpot: Vec<f64>,
    e2e: Vec<f64>,
    itl: LogHistogram,
    first_arrival: f64,
    last_done: f64,
    out_tokens: u64,
    in_tokens: u64,
}

struct Sim<'a, 'x, T> {
    nodes: Vec<Node<'a, T>>,
    book: Book<'x>,
    now: f64,
    max_ms: f64,
    fast_forward: bool,
}

impl<'a, 'x, T: StepTimer> Sim<'a, 'x, T> {
    fn new(
        nodes: Vec<Node<'a, T>>,
        transfer: Option<&'x dyn KvTransfer>,
        workload: &Workload,
        opts: &SimOptions,
    ) -> Result<Self, SimError> {
        workload.validate()?;
        let total = opts.resolved_num_requests(workload);
        if total > MAX_REQUESTS {
            return Err(SimError::InvalidOptions(format!(
                "num_requests above {MAX_REQUESTS}"
            )));
        }
        if total == 0 {
            return Err(SimError::InvalidOptions(
                "num_requests must be at least 1".into(),
            ));
        }
        if opts.warmup_requests >= total {
            return Err(SimError::InvalidOptions(
                "warmup_requests must be fewer than num_requests".into(),
            ));
        }
        if !(opts.max_sim_time_s.is_finite() && opts.max_sim_time_s > 0.0) {
            return Err(SimError::InvalidOptions(
                "max_sim_time_s must be finite and positive".into(),
            ));
        }
        let source = match workload.arrivals {
            Arrivals::Closed { concurrency } => {
                Source::Closed(std::iter::repeat_n(0.0, concurrency.min(total) as usize).collect())
            }
            Arrivals::Poisson { rate_per_s } => Source::Poisson {
                rng: SplitMix64::new(mix64(opts.seed ^ 0xA11_1BA1)),
                rate_per_ms: rate_per_s / 1000.0,
                next: 0.0,
            },
        };
        let measured = (total - opts.warmup_requests) as usize;
        Ok(Sim {
            nodes,
            book: Book {
                workload: *workload,
                seed: opts.seed,
                total,
                warmup: opts.warmup_requests,
                issued: 0,
                completed: 0,
                source,
                transfer,
                transfers: BinaryHeap::new(),
                transfer_seq: 0,
                tracks: vec![Track::default(); total as usize],
                ttft: Vec::with_capacity(measured),
                tpot: Vec::with_capacity(measured),
                e2e: Vec::with_capacity(measured),
                itl: LogHistogram::new(),
                first_arrival: f64::INFINITY,
                last_done: f64::NEG_INFINITY,
                out_tokens: 0,
                in_tokens: 0,
            },
            now: 0.0,
            max_ms: opts.max_sim_time_s * 1000.0,
            fast_forward: opts.fast_forward,
        })
    }

    fn run(mut self) -> Result<SimReport, SimError> {
        // Events at the same instant are handled in a fixed order: steps
        // ending, then arrivals and finished transfers, then idle engines
        // plan. A request arriving exactly when a step ends is thus seen by
        // the next step, as a real engine polling its queue would.
        while self.book.completed < self.book.total {
            let mut t = f64::INFINITY;
            for n in &self.nodes {
                if let Some(end) = n.busy.end() {
                    t = t.min(end);
                }
            }
            if let Some(a) = self.book.peek_arrival() {
                t = t.min(a);
            }
            if let Some(x) = self.book.transfers.peek() {
                t = t.min(x.at);
            }
            if !t.is_finite() {
                return Err(SimError::Stalled {
                    at_ms: self.now,
                    completed: self.book.completed,
                    outstanding: self.book.issued - self.book.completed,
                });
            }
            if t > self.max_ms {
                return Err(SimError::TimeLimit {
                    limit_s: self.max_ms / 1000.0,
                    completed: self.book.completed,
                    requested: self.book.total,
                });
            }
            self.now = t;
            for i in 0..self.nodes.len() {
                if self.nodes[i].busy.end().is_some_and(|e| e <= t) {
                    self.complete(i)?;
                }
            }
            while let Some(a) = self.book.peek_arrival().filter(|&a| a <= t) {
                self.book.pop_arrival();
                self.issue(a)?;
            }
            while let Some(x) = self.book.transfers.peek().copied().filter(|x| x.at <= t) {
                self.book.transfers.pop();
                self.deliver_to_decode(x.id, x.at)?;
            }
            for i in 0..self.nodes.len() {
                if matches!(self.nodes[i].busy, Busy::Idle) {
                    self.start(i)?;
                }
            }
        }
        Ok(self.report())
    }

    /// Sends the next request (arriving at `at`) to the least-loaded
    /// aggregated or prefill engine.
    fn issue(&mut self, at: f64) -> Result<(), SimError> {
        let b = &mut self.book;
        let id = b.issued;
        b.issued += 1;
        let w = b.workload;
        let isl = jittered(w.isl, w.length_jitter, b.seed, 2 * u64::from(id));
        let osl = jittered(w.osl, w.length_jitter, b.seed, 2 * u64::from(id) + 1);
        b.tracks[id as usize] = Track {
            arrival: at,
            isl,
            osl,
            ..Track::default()
        };
        let prefix = w.shared_prefix.filter(|p| p.tokens > 0).map(|p| PrefixKey {
            hash: mix64(b.seed ^ 0x005E_ED0F_9AE5 ^ mix64(u64::from(id % p.groups))),
            len: p.tokens.min(isl),
        });
        let Some(i) = self.least_loaded(|r| r != Role::Decode) else {
            return Err(SimError::InvalidOptions(
                "no engine accepts new requests".into(),
            ));
        };
        let max_out = if self.nodes[i].role == Role::Prefill {
            1
        } else {
            osl
        };
        let spec = RequestSpec {
            prefix,
            cached_prefix_tokens: w.cached_prompt_tokens.min(isl),
            ..RequestSpec::new(u64::from(id), isl, max_out)
        };
        self.deliver(i, spec, at)
    }

    fn deliver_to_decode(&mut self, id: u32, at: f64) -> Result<(), SimError> {
        let tr = self.book.tracks[id as usize];
        let Some(i) = self.least_loaded(|r| r == Role::Decode) else {
            return Err(SimError::InvalidOptions("no decode engine".into()));
        };
        let spec = RequestSpec {
            prefilled: true,
            ..RequestSpec::new(u64::from(id), tr.isl, tr.osl)
        };
        self.deliver(i, spec, at)
    }

    fn least_loaded(&self, accepts: impl Fn(Role) -> bool) -> Option<usize> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| accepts(n.role))
            .min_by_key(|(_, n)| n.engine.num_requests())
            .map(|(i, _)| i)
    }

    /// Queues a request on engine `i`. An engine in the middle of a
    /// fast-forwarded span stops it at the step during which the request
    /// arrives, exactly where single stepping would first see it.
    fn deliver(&mut self, i: usize, spec: RequestSpec, at: f64) -> Result<(), SimError> {
        let node = &mut self.nodes[i];
        node.engine.add_request(spec)?;
        if let Busy::Span {
            span,
            start,
            steps,
            t_first,
            t_last,
            end,
        } = node.busy
        {
            if end > at && steps > 1 {
                let timer = node.timer;
                let end_of = |j: u32| -> Result<(f64, f64), SimError> {
                    let tj = if j == steps {
                        t_last
                    } else {
                        step_time(timer, &span.batch(j))?
                    };
                    Ok((start + f64::from(j) * (t_first + tj) / 2.0, tj))
                };
                // Smallest j whose step ends at or after `at`.
                let (mut lo, mut hi) = (1u32, steps);
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if end_of(mid)?.0 >= at {
                        hi = mid;
                    } else {
                        lo = mid + 1;
                    }
                }
                let (new_end, tj) = end_of(lo)?;
                node.busy = Busy::Span {
                    span,
                    start,
                    steps: lo,
                    t_first,
                    t_last: tj,
                    end: new_end,
                };
            }
        }
        Ok(())
    }

    /// Engine `i`'s step (or span) has ended: hand its tokens out.
    fn complete(&mut self, i: usize) -> Result<(), SimError> {
        let node = &mut self.nodes[i];
        let role = node.role;
        let book = &mut self.book;
        match std::mem::replace(&mut node.busy, Busy::Idle) {
            Busy::Idle => {}
            Busy::Step { end } => {
                let mut gaps = GapRun::default();
                for ev in node.engine.finish_step() {
                    let id = ev.id as u32;
                    match ev.kind {
                        TokenKind::First => book.first_token(role, id, end)?,
                        TokenKind::Next => book.next_tokens(&mut gaps, id, end, end),
                    }
                    if ev.finished && role != Role::Prefill {
                        book.finish(id, end);
                    }
                }
                gaps.flush(&mut book.itl);
            }
            Busy::Span {
                span,
                start,
                steps,
                t_first,
                t_last,
                end,
            } => {
                let events = node.engine.advance_decode(&span, steps)?;
                // Step k of the span lasts t_first + (k−1)·d; every request
                // in it saw those gaps, except its first, which runs from
                // its previous token.
                let measured = events
                    .iter()
                    .filter(|e| e.id >= u64::from(book.warmup))
                    .count() as u64;
                if steps > 1 {
                    let d = (t_last - t_first) / f64::from(steps - 1);
                    for k in 1..steps {
                        book.itl.add_n(t_first + f64::from(k) * d, measured);
                    }
                }
                let first_end = start + t_first;
                let mut gaps = GapRun::default();
                for ev in events {
                    let id = ev.id as u32;
                    book.next_tokens(&mut gaps, id, first_end, end);
                    if ev.finished {
                        book.finish(id, end);
                    }
                }
                gaps.flush(&mut book.itl);
            }
        }
        Ok(())
    }

    /// Engine `i` is idle: start its next step, or a span of decode steps.
    fn start(&mut self, i: usize) -> Result<(), SimError> {
        let now = self.now;
        let node = &mut self.nodes[i];
        if self.fast_forward {
            if let Some(span) = node.engine.decode_span().filter(|s| s.steps >= 2) {
                let t_first = step_time(node.timer, &span.first)?;
                let t_last = step_time(node.timer, &span.batch(span.steps))?;
                node.busy = Busy::Span {
                    span,
                    start: now,
                    steps: span.steps,
                    t_first,
                    t_last,
                    end: now + f64::from(span.steps) * (t_first + t_last) / 2.0,
                };
                return Ok(());
            }
        }
        if let Some(step) = node.engine.plan_step() {
            let dt = step_time(node.timer, &step.batch)?;
            node.busy = Busy::Step { end: now + dt };
        }
        Ok(())
    }

    fn report(mut self) -> SimReport {
        let b = &mut self.book;
        let mut steps = 0;
        let mut preemptions = 0;
        let mut prefix_hit_tokens = 0;
        let (mut dec_seqs, mut dec_steps) = (0u64, 0u64);
        let mut kv_peak = 0f64;
        for n in &self.nodes {
            let s = n.engine.stats();
            steps += s.steps;
            preemptions += s.preemptions;
            prefix_hit_tokens += s.prefix_hit_tokens;
            if n.role != Role::Prefill {
                dec_seqs += s.decode_seqs;
                dec_steps += s.decode_steps;
            }
            let cap = f64::from(n.engine.config().num_kv_blocks);
            kv_peak = kv_peak.max(f64::from(s.peak_used_blocks) / cap);
        }
        let measured = b.completed - b.warmup;
        let duration_s = if b.last_done > b.first_arrival {
            (b.last_done - b.first_arrival) / 1000.0
        } else {
            0.0
        };
        let per_s = |x: f64| {
            if duration_s > 0.0 {
                x / duration_s
            } else {
                0.0
            }
        };
        SimReport {
            ttft: Dist::from_samples(&mut b.ttft),
            tpot: Dist::from_samples(&mut b.tpot),
            itl: b.itl.dist(),
            e2e: Dist::from_samples(&mut b.e2e),
            completed: b.completed,
            measured,
            duration_s,
            output_tokens_per_s: per_s(b.out_tokens as f64),
            input_tokens_per_s: per_s(b.in_tokens as f64),
            requests_per_s: per_s(f64::from(measured)),
            steps,
            preemptions,
            mean_batch: if dec_steps > 0 {
                dec_seqs as f64 / dec_steps as f64
            } else {
                0.0
            },
            kv_peak_usage: kv_peak,
            prefix_hit_tokens,
        }
    }
}

impl Book<'_> {
    fn peek_arrival(&self) -> Option<f64> {
        if self.issued >= self.total {
            return None;
        }
        match &self.source {
            Source::Closed(q) => q.front().copied(),
            Source::Poisson { next, .. } => Some(*next),
        }
    }

    fn pop_arrival(&mut self) {
        match &mut self.source {
            Source::Closed(q) => {
                q.pop_front();
            }
            Source::Poisson {
                rng,
                rate_per_ms,
                next,
            } => *next += rng.next_exp(*rate_per_ms),
        }
    }

    fn first_token(&mut self, role: Role, id: u32, at: f64) -> Result<(), SimError> {
        let tr = &mut self.tracks[id as usize];
        tr.first = at;
        tr.decode_start = at;
        tr.last = at;
        let (isl, osl) = (tr.isl, tr.osl);
        if role != Role::Prefill {
            return Ok(());
        }
        match self.transfer {
            Some(x) if osl > 1 => {
                let ms = x.transfer_ms(isl);
                if !(ms.is_finite() && ms >= 0.0) {
                    return Err(SimError::InvalidTransferTime { ms });
                }
                self.transfer_seq += 1;
                self.transfers.push(Transfer {
                    at: at + ms,
                    seq: self.transfer_seq,
                    id,
                });
                let tr = &mut self.tracks[id as usize];
                tr.decode_start = at + ms;
                tr.last = at + ms;
            }
            // A one-token request is done once prefilled.
            _ => self.finish(id, at),
        }
        Ok(())
    }

    /// A request's next token(s): the first of them at `first_at`, the last
    /// at `last_at` (the same for a single step; a span records its later
    /// gaps separately).
    #[inline]
    fn next_tokens(&mut self, gaps: &mut GapRun, id: u32, first_at: f64, last_at: f64) {
        let tr = &mut self.tracks[id as usize];
        let gap = first_at - tr.last;
        tr.last = last_at;
        if id >= self.warmup {
            gaps.push(gap, &mut self.itl);
        }
    }

    fn finish(&mut self, id: u32, at: f64) {
        self.completed += 1;
        if id >= self.warmup {
            let tr = self.tracks[id as usize];
            self.ttft.push(tr.first - tr.arrival);
            self.e2e.push(at - tr.arrival);
            if tr.osl > 1 {
                self.tpot
                    .push((at - tr.decode_start) / f64::from(tr.osl - 1));
            }
            self.first_arrival = self.first_arrival.min(tr.arrival);
            self.last_done = self.last_done.max(at);
            self.out_tokens += u64::from(tr.osl);
            self.in_tokens += u64::from(tr.isl);
        }
        if let Source::Closed(q) = &mut self.source {
            // The client sends its next request right away.
            q.push_back(at);
        }
    }
}

/// Consecutive equal inter-token gaps, recorded as one histogram update:
/// requests that decoded in the same two steps all saw the same gap.
#[derive(Debug, Clone, Copy, Default)]
struct GapRun {
    gap: f64,
    n: u64,
}

impl GapRun {
    #[inline]
    fn push(&mut self, gap: f64, itl: &mut LogHistogram) {
        if gap == self.gap {
            self.n += 1;
        } else {
            itl.add_n(self.gap, self.n);
            *self = GapRun { gap, n: 1 };
        }
    }

    fn flush(self, itl: &mut LogHistogram) {
        itl.add_n(self.gap, self.n);
    }
}

/// `base` scaled by a factor uniform in `[1 − j, 1 + j]` drawn from
/// `(seed, key)`, so a request's lengths do not depend on issue order.
fn jittered(base: u32, jitter: f64, seed: u64, key: u64) -> u32 {
    if jitter == 0.0 {
        return base;
    }
    let u = (mix64(seed ^ mix64(key)) >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
    let f = 1.0 + jitter * (2.0 * u - 1.0);
    (f64::from(base) * f)
        .round()
        .clamp(1.0, f64::from(u32::MAX / 4)) as u32
}
