//! The mocker's engine: the serving simulator's scheduler
//! ([`perf_model::sim::Engine`]) driven by the real clock.
//!
//! One thread, the driver, owns the scheduler. Request handlers talk to it
//! over a channel: [`EngineHandle::submit`] queues a request and returns
//! a [`Generation`], a stream of token events; dropping the generation
//! aborts the request. The driver plans a step, asks the [`StepTimer`] how
//! long it takes, sleeps until `step start + duration / speedup`, then
//! delivers the step's tokens. Deadlines are absolute, each step starting
//! where the previous one was due to end, so the few microseconds of work
//! per step and the timer's wake-up slack do not add up into drift.
//! Requests arriving during a step join the waiting queue and are scheduled
//! from the next step, as in a real engine (with a short grace after steps
//! that finished requests, so closed-loop clients' follow-ups make the next
//! step as they do in the simulator: see `MAX_GRACE`).
//!
//! The driver is an OS thread rather than a tokio task because tokio's
//! timers tick in whole milliseconds: at a speedup, steps of a millisecond
//! or less would be delivered in bursts. A thread waiting on its command
//! channel with a timeout wakes within tens of microseconds of a deadline,
//! and keeps the driver's work off the runtime serving HTTP. Token events
//! still go out over tokio channels, which any thread may send on.
//!
//! Steps are taken one at a time even when the scheduler could fast-forward
//! a run of identical decode steps: streaming clients must see every token
//! at its own time.

mod prefix;

use crate::metrics::Metrics;
use crate::trace::{TraceError, TraceRecorder};
use perf_model::sim::{self, RequestSpec, SchedulerConfig, SimError, StepAction};
use perf_model::StepTimer;
use prefix::PrefixLru;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self as std_mpsc, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub use prefix::block_hashes;

/// Dynamo's disaggregation roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisaggMode {
    /// Prefill and decode on this engine.
    #[default]
    Agg,
    /// A prefill worker: every request computes its prompt, emits one token
    /// and finishes, whatever `max_tokens` it asked for.
    Prefill,
    /// A decode worker: the prompt's KV arrives computed and the first token
    /// was produced by the prefill worker, so it is delivered at once and
    /// the engine generates tokens 2..=`max_tokens`.
    Decode,
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub scheduler: SchedulerConfig,
    /// Real time runs this many times faster than simulated time.
    pub speedup: f64,
    pub mode: DisaggMode,
    /// Requests submitted but not yet scheduled beyond which `submit`
    /// answers [`SubmitError::Overloaded`].
    pub max_waiting: usize,
    /// Most prompt + output tokens of one request.
    pub max_model_len: u32,
}

impl EngineConfig {
    /// Speedup 1, aggregated, a waiting queue of 65,536 and a context as
    /// long as the KV pool.
    pub fn new(scheduler: SchedulerConfig) -> EngineConfig {
        EngineConfig {
            scheduler,
            speedup: 1.0,
            mode: DisaggMode::Agg,
            max_waiting: 65_536,
            max_model_len: scheduler.kv_capacity_tokens().min(u64::from(u32::MAX)) as u32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateRequest {
    pub prompt_tokens: Vec<u32>,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineEvent {
    /// Output token `index` (0 = first); `finished` on the last one.
    Token { index: u32, finished: bool },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("the engine is overloaded: {waiting} requests waiting")]
    Overloaded { waiting: usize },
    #[error("this model's maximum context length is {limit} tokens, but {prompt} prompt tokens and {max_tokens} output tokens were requested")]
    TooLong {
        prompt: u32,
        max_tokens: u32,
        limit: u32,
    },
    #[error("the engine is shutting down")]
    ShuttingDown,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Scheduler(#[from] SimError),
    #[error("speedup must be a positive finite number, got {0}")]
    InvalidSpeedup(f64),
    #[error("max_model_len must be at least 1")]
    InvalidMaxModelLen,
    #[error("starting the engine thread: {0}")]
    Spawn(std::io::Error),
}

/// What the driver and the handles share, without the command sender: the
/// driver ends when every handle and generation is gone.
struct Shared {
    next_id: AtomicU64,
    /// Submitted but not yet scheduled: the queue `max_waiting` bounds.
    /// Counted at submission so that a burst is bounded before the driver
    /// has seen it.
    waiting: AtomicUsize,
    closing: AtomicBool,
    metrics: Arc<Metrics>,
}

enum Cmd {
    Submit(Box<Submission>),
    Abort(u64),
    StartProfile {
        dir: PathBuf,
        reply: oneshot::Sender<Result<(), TraceError>>,
    },
    StopProfile {
        reply: oneshot::Sender<Result<TraceRecorder, TraceError>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

struct Submission {
    id: u64,
    prompt: u32,
    max_tokens: u32,
    hashes: Vec<u64>,
    tx: mpsc::UnboundedSender<EngineEvent>,
    submitted: Instant,
}

/// A client's handle on the engine; cheap to clone.
#[derive(Clone)]
pub struct EngineHandle {
    cmd: std_mpsc::Sender<Cmd>,
    shared: Arc<Shared>,
    cfg: Arc<EngineConfig>,
}

/// The tokens of one request as they are produced. Dropping it before the
/// last token aborts the request and frees its KV.
pub struct Generation {
    id: u64,
    rx: mpsc::UnboundedReceiver<EngineEvent>,
    cmd: std_mpsc::Sender<Cmd>,
    done: bool,
}

impl Generation {
    /// The engine's id for the request (its track in a profile trace).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The next token, or `None` after the last one (or if the engine
    /// stopped).
    pub async fn next(&mut self) -> Option<EngineEvent> {
        let ev = self.rx.recv().await;
        match ev {
            Some(EngineEvent::Token { finished: true, .. }) | None => self.done = true,
            _ => {}
        }
        ev
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.cmd.send(Cmd::Abort(self.id));
        }
    }
}

impl std::fmt::Debug for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation").field("id", &self.id).finish()
    }
}

/// Starts the engine's driver thread. Profiling calls need a tokio
/// runtime; submitting and streaming work from any async context.
pub fn spawn(
    cfg: EngineConfig,
    timer: Box<dyn StepTimer + Send + Sync>,
) -> Result<EngineHandle, EngineError> {
    if !(cfg.speedup.is_finite() && cfg.speedup > 0.0) {
        return Err(EngineError::InvalidSpeedup(cfg.speedup));
    }
    if cfg.max_model_len == 0 {
        return Err(EngineError::InvalidMaxModelLen);
    }
    let engine = sim::Engine::new(cfg.scheduler)?;
    let metrics = Arc::new(Metrics::new(cfg.scheduler.kv_capacity_tokens()));
    let shared = Arc::new(Shared {
        next_id: AtomicU64::new(1),
        waiting: AtomicUsize::new(0),
        closing: AtomicBool::new(false),
        metrics,
    });
    let (tx, rx) = std_mpsc::channel();
    let cfg = Arc::new(cfg);
    let driver = Driver {
        engine,
        timer,
        cfg: cfg.clone(),
        shared: shared.clone(),
        rx,
        live: HashMap::new(),
        prefix: PrefixLru::new(cfg.scheduler.num_kv_blocks as usize),
        trace: None,
        closing: false,
        shutdown_waiters: Vec::new(),
        actions: Vec::new(),
        idle_arrival: None,
        submissions: 0,
        preempted: Vec::new(),
        events: Vec::new(),
    };
    std::thread::Builder::new()
        .name("mocker-engine".into())
        .spawn(move || driver.run())
        .map_err(EngineError::Spawn)?;
    Ok(EngineHandle {
        cmd: tx,
        shared,
        cfg,
    })
}

impl EngineHandle {
    /// Queues a request. Fails at once, without queueing, when the request
    /// cannot fit, the queue is full or the engine is shutting down. A
    /// request for 0 tokens gets a generation that ends with no token.
    pub fn submit(&self, req: GenerateRequest) -> Result<Generation, SubmitError> {
        if self.shared.closing.load(Ordering::Acquire) {
            return Err(SubmitError::ShuttingDown);
        }
        let cfg = &*self.cfg;
        let prompt = u32::try_from(req.prompt_tokens.len()).unwrap_or(u32::MAX);
        let max_tokens = req.max_tokens;
        let too_long = |limit: u64| SubmitError::TooLong {
            prompt,
            max_tokens,
            limit: limit.min(u64::from(u32::MAX)) as u32,
        };
        if u64::from(prompt) + u64::from(max_tokens) > u64::from(cfg.max_model_len) {
            return Err(too_long(u64::from(cfg.max_model_len)));
        }
        // The scheduler refuses what could never fit its KV pool (or, with
        // chunked prefill off, its step budget); say so now rather than
        // dropping the request later.
        let sched = &cfg.scheduler;
        let out = engine_output_tokens(cfg.mode, max_tokens);
        let longest = u64::from(prompt.max(1)) + u64::from(out.max(1)) - 1;
        if longest > sched.kv_capacity_tokens() {
            return Err(too_long(sched.kv_capacity_tokens()));
        }
        if !sched.chunked_prefill
            && cfg.mode != DisaggMode::Decode
            && prompt > sched.max_num_batched_tokens
        {
            return Err(too_long(u64::from(sched.max_num_batched_tokens)));
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let generation = Generation {
            id,
            rx,
            cmd: self.cmd.clone(),
            done: max_tokens == 0,
        };
        if max_tokens == 0 {
            return Ok(generation);
        }
        let admitted = self
            .shared
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (w < cfg.max_waiting).then_some(w + 1)
            });
        if let Err(waiting) = admitted {
            return Err(SubmitError::Overloaded { waiting });
        }
        let hashes = if sched.enable_prefix_caching && cfg.mode != DisaggMode::Decode {
            block_hashes(&req.prompt_tokens, sched.block_size)
        } else {
            Vec::new()
        };
        let sub = Submission {
            id,
            prompt,
            max_tokens,
            hashes,
            tx,
            submitted: Instant::now(),
        };
        if self.cmd.send(Cmd::Submit(Box::new(sub))).is_err() {
            self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(SubmitError::ShuttingDown);
        }
        Ok(generation)
    }

    /// Tokens the KV pool holds.
    pub fn kv_capacity_tokens(&self) -> u64 {
        self.cfg.scheduler.kv_capacity_tokens()
    }

    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// Starts recording a trace to be written under `output_dir` (created
    /// if missing).
    pub async fn start_profile(&self, output_dir: PathBuf) -> Result<(), TraceError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::StartProfile {
                dir: output_dir,
                reply,
            })
            .map_err(|_| TraceError::EngineStopped)?;
        rx.await.map_err(|_| TraceError::EngineStopped)?
    }

    /// Stops recording and writes the trace; returns the file's path.
    pub async fn stop_profile(&self) -> Result<PathBuf, TraceError> {
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Cmd::StopProfile { reply })
            .map_err(|_| TraceError::EngineStopped)?;
        let recorder = rx.await.map_err(|_| TraceError::EngineStopped)??;
        // Serialising a long profile takes a while: keep it off the driver
        // and off the runtime's workers.
        let dir = recorder.dir().to_path_buf();
        tokio::task::spawn_blocking(move || recorder.write())
            .await
            .map_err(|e| TraceError::Io {
                path: dir,
                source: std::io::Error::other(e.to_string()),
            })?
    }

    /// Stops accepting requests, lets the in-flight ones finish, and
    /// returns when the driver has ended.
    pub async fn shutdown(&self) {
        self.shared.closing.store(true, Ordering::Release);
        let (reply, rx) = oneshot::channel();
        if self.cmd.send(Cmd::Shutdown { reply }).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Output tokens the scheduler generates for a request of `max_tokens`.
fn engine_output_tokens(mode: DisaggMode, max_tokens: u32) -> u32 {
    match mode {
        DisaggMode::Agg | DisaggMode::Decode => max_tokens,
        DisaggMode::Prefill => max_tokens.min(1),
    }
}

/// Lag behind the schedule that the driver catches up on by skipping
/// sleeps; beyond it (a stalled process) it starts afresh from now instead
/// of delivering a burst of late steps.
const MAX_CATCH_UP: Duration = Duration::from_millis(20);

/// The last stretch before a deadline that the driver waits out by
/// yielding rather than sleeping: Linux wakes a sleeping thread up to 50 µs
/// late (its default timer slack), 5 % of a 1 ms step.
const SPIN: Duration = Duration::from_micros(80);

/// After a step that finished requests, the driver waits up to a quarter of
/// that step's real duration, at most this long, for as many new requests
/// as finished before planning the next step. A closed-loop client sends its
/// next request the moment it reads the last token, and the simulator (zero
/// client latency) schedules it in the very next step; without the wait the
/// request would arrive microseconds after that step was planned and lose a
/// whole step of TTFT. The wait ends early once the follow-ups are in, and
/// costs no schedule time either way: the next step still starts when the
/// previous one was due to end.
const MAX_GRACE: Duration = Duration::from_millis(1);

struct Live {
    tx: mpsc::UnboundedSender<EngineEvent>,
    prompt: u32,
    emitted: u32,
    submitted: Instant,
    scheduled: Option<Instant>,
    first_token: Option<Instant>,
    last_token: Instant,
    hashes: Vec<u64>,
    /// Still counted in `Shared::waiting`.
    waiting: bool,
}

struct Driver {
    engine: sim::Engine,
    timer: Box<dyn StepTimer + Send + Sync>,
    cfg: Arc<EngineConfig>,
    shared: Arc<Shared>,
    rx: std_mpsc::Receiver<Cmd>,
    live: HashMap<u64, Live>,
    prefix: PrefixLru,
    trace: Option<TraceRecorder>,
    closing: bool,
    shutdown_waiters: Vec<oneshot::Sender<()>>,
    actions: Vec<StepAction>,
    // Reused per step so that steady state allocates nothing.
    preempted: Vec<u64>,
    events: Vec<sim::TokenEvent>,
    /// Submissions received, ever.
    submissions: u64,
    /// When the first request reached an idle engine.
    idle_arrival: Option<Instant>,
}

impl Driver {
    fn run(mut self) {
        let mut prev_deadline: Option<Instant> = None;
        let mut disconnected = false;
        // (until when, follow-ups still expected) after a step that
        // finished requests: see `MAX_GRACE`.
        let mut grace: Option<(Instant, u64)> = None;
        while !disconnected {
            while let Ok(cmd) = self.rx.try_recv() {
                self.handle(cmd);
            }
            if let Some((until, expected)) = grace.take() {
                let target = self.submissions + expected;
                while self.submissions < target {
                    let now = Instant::now();
                    if now >= until {
                        break;
                    }
                    match self.rx.recv_timeout(until - now) {
                        Ok(cmd) => self.handle(cmd),
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => {
                            disconnected = true;
                            break;
                        }
                    }
                }
            }
            self.update_gauges();
            if self.closing && self.live.is_empty() && self.engine.is_idle() {
                break;
            }
            let Some(step) = self.engine.plan_step() else {
                prev_deadline = None;
                match self.rx.recv() {
                    Ok(cmd) => self.handle(cmd),
                    Err(_) => disconnected = true,
                }
                continue;
            };
            let batch = step.batch;
            self.actions.clear();
            self.actions.extend_from_slice(step.actions);
            let mut preempted = std::mem::take(&mut self.preempted);
            preempted.clear();
            preempted.extend_from_slice(step.preempted);
            let sim_ms = self.timer.step_ms(&batch);
            let sim_ms = if sim_ms.is_finite() {
                sim_ms.max(0.0)
            } else {
                0.0
            };
            let now = Instant::now();
            // A step starts when the previous one was due to end or, after
            // the engine went idle, when its first request arrived (not
            // when this thread got round to it: the wake-up is this
            // process's overhead, not the engine's).
            let anchor = match (prev_deadline, self.idle_arrival.take()) {
                (Some(d), Some(a)) => Some(d.max(a)),
                (d, a) => d.or(a),
            };
            let start = match anchor {
                Some(d) if now.saturating_duration_since(d) <= MAX_CATCH_UP => d.min(now),
                _ => now,
            };
            self.note_scheduled(start, &preempted);
            let real_s = (sim_ms / 1e3 / self.cfg.speedup).min(1e6);
            let deadline = start + Duration::from_secs_f64(real_s);
            loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let left = deadline - now;
                if left <= SPIN {
                    // The kernel's timer slack would make us late; yield
                    // the core to others until the deadline instead.
                    while let Ok(cmd) = self.rx.try_recv() {
                        self.handle(cmd);
                    }
                    std::thread::yield_now();
                    continue;
                }
                match self.rx.recv_timeout(left - SPIN) {
                    Ok(cmd) => self.handle(cmd),
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => {
                        disconnected = true;
                        break;
                    }
                }
            }
            let end = Instant::now();
            let finished = self.dispatch(end);
            if finished > 0 {
                let wait = (end.saturating_duration_since(start) / 4).min(MAX_GRACE);
                grace = Some((end + wait, finished));
            }
            if let Some(t) = self.trace.as_mut() {
                let kind = match (batch.prefill_tokens > 0, batch.decode_seqs > 0) {
                    (true, true) => "mixed",
                    (true, false) => "prefill",
                    _ => "decode",
                };
                t.step(
                    start.max(t.started_at()),
                    end,
                    json!({
                        "batch": kind,
                        "prefill_tokens": batch.prefill_tokens,
                        "prefill_seqs": batch.prefill_seqs,
                        "decode_seqs": batch.decode_seqs,
                        "decode_kv_tokens": batch.decode_kv_tokens,
                        "num_requests": self.actions.len(),
                        "preempted": preempted.len(),
                        "running": self.engine.num_running(),
                        "waiting": self.engine.num_waiting(),
                        "kv_usage": self.engine.kv_usage(),
                        "simulated_ms": sim_ms,
                    }),
                );
            }
            self.preempted = preempted;
            prev_deadline = Some(deadline);
        }
        // Requests still live (the handles all went away) see their streams
        // end when `live` is dropped.
        self.update_gauges();
        for w in self.shutdown_waiters.drain(..) {
            let _ = w.send(());
        }
    }

    fn update_gauges(&self) {
        let m = &self.shared.metrics;
        m.num_requests_running.set(self.engine.num_running() as f64);
        m.num_requests_waiting.set(self.engine.num_waiting() as f64);
        m.kv_cache_usage.set(self.engine.kv_usage());
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Submit(s) => self.submit(*s),
            Cmd::Abort(id) => self.abort(id),
            Cmd::StartProfile { dir, reply } => {
                let r = match &self.trace {
                    Some(t) => Err(TraceError::AlreadyRunning {
                        dir: t.dir().to_path_buf(),
                    }),
                    None => TraceRecorder::start(dir).map(|t| self.trace = Some(t)),
                };
                let _ = reply.send(r);
            }
            Cmd::StopProfile { reply } => {
                let r = match self.trace.take() {
                    None => Err(TraceError::NotRunning),
                    Some(mut t) => {
                        let now = Instant::now();
                        let mut ids: Vec<u64> = self.live.keys().copied().collect();
                        ids.sort_unstable();
                        for id in ids {
                            record_phases(&mut t, id, &self.live[&id], now);
                        }
                        Ok(t)
                    }
                };
                let _ = reply.send(r);
            }
            Cmd::Shutdown { reply } => {
                self.closing = true;
                self.shutdown_waiters.push(reply);
            }
        }
    }

    fn submit(&mut self, s: Submission) {
        self.submissions += 1;
        if self.engine.is_idle() && self.idle_arrival.is_none() {
            self.idle_arrival = Some(s.submitted);
        }
        let cfg = self.cfg.clone();
        let bs = cfg.scheduler.block_size;
        let mut cached = 0u32;
        if !s.hashes.is_empty() {
            let blocks = self.prefix.lookup(&s.hashes);
            // What the scheduler will skip: whole blocks, never the last
            // prompt token (it must be computed to yield logits).
            cached = u32::try_from(blocks)
                .unwrap_or(u32::MAX)
                .saturating_mul(bs)
                .min(s.prompt.saturating_sub(1))
                / bs
                * bs;
            let m = &self.shared.metrics;
            m.prefix_cache_queries
                .fetch_add(u64::from(s.prompt), Ordering::Relaxed);
            m.prefix_cache_hits
                .fetch_add(u64::from(cached), Ordering::Relaxed);
        }
        let mut live = Live {
            tx: s.tx,
            prompt: s.prompt,
            emitted: 0,
            submitted: s.submitted,
            scheduled: None,
            first_token: None,
            last_token: s.submitted,
            hashes: s.hashes,
            waiting: true,
        };
        if cfg.mode == DisaggMode::Decode {
            // The prefill worker produced the first token.
            let now = Instant::now();
            let finished = s.max_tokens == 1;
            emit(&self.shared, &mut self.prefix, &mut live, now, finished);
            if finished {
                self.unwait(&mut live);
                return;
            }
        }
        let spec = RequestSpec {
            id: s.id,
            prompt_tokens: s.prompt.max(1),
            max_output_tokens: engine_output_tokens(cfg.mode, s.max_tokens),
            cached_prefix_tokens: cached,
            prefix: None,
            prefilled: cfg.mode == DisaggMode::Decode,
        };
        match self.engine.add_request(spec) {
            Ok(()) => {
                self.live.insert(s.id, live);
            }
            // `submit` checked what the scheduler checks; should it still
            // refuse, the client's stream ends without a token.
            Err(_) => self.unwait(&mut live),
        }
    }

    fn unwait(&self, live: &mut Live) {
        if std::mem::take(&mut live.waiting) {
            self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    fn abort(&mut self, id: u64) {
        self.engine.abort(id);
        if let Some(mut live) = self.live.remove(&id) {
            self.unwait(&mut live);
            self.shared
                .metrics
                .request_aborted
                .fetch_add(1, Ordering::Relaxed);
            if let Some(t) = self.trace.as_mut() {
                record_phases(t, id, &live, Instant::now());
            }
        }
    }

    /// Marks requests scheduled for the first time (leaving the bounded
    /// queue) and counts preemptions.
    fn note_scheduled(&mut self, now: Instant, preempted: &[u64]) {
        for a in &self.actions {
            if let Some(live) = self.live.get_mut(&a.id) {
                if live.scheduled.is_none() {
                    live.scheduled = Some(now);
                }
                if std::mem::take(&mut live.waiting) {
                    self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
                }
            }
        }
        if !preempted.is_empty() {
            self.shared
                .metrics
                .preemptions
                .fetch_add(preempted.len() as u64, Ordering::Relaxed);
            if let Some(t) = self.trace.as_mut() {
                for &id in preempted {
                    t.request_instant(id, "preempted", now);
                }
            }
        }
    }

    /// Finishes the planned step and delivers its tokens, stamped `now`.
    fn dispatch(&mut self, now: Instant) -> u64 {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        events.extend_from_slice(self.engine.finish_step());
        // Before the tokens go out, so a client that has seen a token reads
        // gauges at least as fresh as it.
        self.update_gauges();
        for ev in &events {
            let Some(live) = self.live.get_mut(&ev.id) else {
                continue;
            };
            emit(&self.shared, &mut self.prefix, live, now, ev.finished);
            if ev.finished {
                if let Some(live) = self.live.remove(&ev.id) {
                    if let Some(t) = self.trace.as_mut() {
                        record_phases(t, ev.id, &live, now);
                    }
                }
            }
        }
        let finished = events.iter().filter(|e| e.finished).count() as u64;
        self.events = events;
        finished
    }
}

/// Sends a request's next token and accounts for it.
fn emit(shared: &Shared, prefix: &mut PrefixLru, live: &mut Live, now: Instant, finished: bool) {
    let m = &shared.metrics;
    let index = live.emitted;
    // A closed receiver means the client left; its abort is on the way.
    let _ = live.tx.send(EngineEvent::Token { index, finished });
    live.emitted += 1;
    m.generation_tokens.fetch_add(1, Ordering::Relaxed);
    if index == 0 {
        live.first_token = Some(now);
        m.ttft
            .observe(now.saturating_duration_since(live.submitted).as_secs_f64());
        m.prompt_tokens
            .fetch_add(u64::from(live.prompt), Ordering::Relaxed);
        // Its prompt's blocks are now computed and reusable.
        if !live.hashes.is_empty() {
            prefix.insert(&std::mem::take(&mut live.hashes));
        }
    } else {
        let itl = now.saturating_duration_since(live.last_token).as_secs_f64();
        m.itl.observe(itl);
    }
    live.last_token = now;
    if finished {
        m.e2e
            .observe(now.saturating_duration_since(live.submitted).as_secs_f64());
        m.request_success.fetch_add(1, Ordering::Relaxed);
        if std::mem::take(&mut live.waiting) {
            shared.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// A request's phases up to `end`: queued until first scheduled, prefill
/// until its first token, decode until `end`.
fn record_phases(t: &mut TraceRecorder, id: u64, live: &Live, end: Instant) {
    let queued_end = live.scheduled.or(live.first_token).unwrap_or(end);
    t.request_phase(id, "queued", live.submitted, queued_end);
    if let Some(s) = live.scheduled {
        t.request_phase(id, "prefill", s, live.first_token.unwrap_or(end));
    }
    if let Some(f) = live.first_token {
        t.request_phase(id, "decode", f, end);
    }
}
