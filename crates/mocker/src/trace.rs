//! Runtime profiling in the manner of SGLang's `/start_profile`: while a
//! profile runs, the engine records one slice per step on an "engine" track
//! and each request's phases on a track of its own, written as Chrome
//! trace-event JSON (opens in Perfetto and chrome://tracing).

use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Track (thread id) of the engine's steps; requests use their id, which
/// starts at 1.
pub const ENGINE_TID: u64 = 0;
const PID: u64 = 1;
/// Beyond this a profile keeps counting but stops recording, so a forgotten
/// profile cannot exhaust memory (about 200 bytes an event).
const MAX_EVENTS: usize = 2_000_000;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("a profile is already running (writing to {dir})")]
    AlreadyRunning { dir: PathBuf },
    #[error("no profile is running")]
    NotRunning,
    #[error("the engine has stopped")]
    EngineStopped,
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Events recorded between start and stop.
#[derive(Debug)]
pub struct TraceRecorder {
    dir: PathBuf,
    start: Instant,
    start_unix_ms: u128,
    events: Vec<Value>,
    named: HashSet<u64>,
    dropped: u64,
}

impl TraceRecorder {
    /// Starts recording; creates `dir` now so that a bad path fails the
    /// start request rather than, much later, the stop.
    pub fn start(dir: PathBuf) -> Result<TraceRecorder, TraceError> {
        std::fs::create_dir_all(&dir).map_err(|source| TraceError::Io {
            path: dir.clone(),
            source,
        })?;
        let start_unix_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let mut t = TraceRecorder {
            dir,
            start: Instant::now(),
            start_unix_ms,
            events: Vec::new(),
            named: HashSet::new(),
            dropped: 0,
        };
        t.events.push(json!({
            "ph": "M", "name": "process_name", "pid": PID, "tid": ENGINE_TID,
            "args": {"name": "slaprof mocker"},
        }));
        t.name_track(ENGINE_TID, "engine".to_string());
        Ok(t)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// When recording began: request phases that started earlier are
    /// clipped to it.
    pub fn started_at(&self) -> Instant {
        self.start
    }

    fn us(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64() * 1e6
    }

    fn push(&mut self, e: Value) {
        if self.events.len() < MAX_EVENTS {
            self.events.push(e);
        } else {
            self.dropped += 1;
        }
    }

    fn name_track(&mut self, tid: u64, name: String) {
        if self.named.insert(tid) {
            self.push(json!({
                "ph": "M", "name": "thread_name", "pid": PID, "tid": tid,
                "args": {"name": name},
            }));
            self.push(json!({
                "ph": "M", "name": "thread_sort_index", "pid": PID, "tid": tid,
                "args": {"sort_index": tid},
            }));
        }
    }

    /// One engine step from `start` to `end` (real time).
    pub fn step(&mut self, start: Instant, end: Instant, args: Value) {
        let (ts, dur) = (self.us(start), self.us(end) - self.us(start));
        self.push(json!({
            "ph": "X", "name": "step", "cat": "engine", "pid": PID, "tid": ENGINE_TID,
            "ts": ts, "dur": dur, "args": args,
        }));
    }

    /// A phase of request `id` from `from` to `to`, clipped to the profile.
    pub fn request_phase(&mut self, id: u64, name: &'static str, from: Instant, to: Instant) {
        if to < self.start {
            return;
        }
        self.name_track(id, format!("request {id}"));
        let ts = self.us(from);
        let dur = (self.us(to) - ts).max(0.0);
        self.push(json!({
            "ph": "X", "name": name, "cat": "request", "pid": PID, "tid": id,
            "ts": ts, "dur": dur,
        }));
    }

    /// A point event on request `id`'s track (e.g. a preemption).
    pub fn request_instant(&mut self, id: u64, name: &'static str, at: Instant) {
        self.name_track(id, format!("request {id}"));
        let ts = self.us(at);
        self.push(json!({
            "ph": "i", "s": "t", "name": name, "cat": "request", "pid": PID, "tid": id, "ts": ts,
        }));
    }

    /// Writes `<dir>/slaprof-trace-<unix-ms>.trace.json` through a temporary
    /// file and a rename, so a reader never sees half a trace. Blocking: run
    /// it off the engine's driver.
    pub fn write(self) -> Result<PathBuf, TraceError> {
        let path = self
            .dir
            .join(format!("slaprof-trace-{}.trace.json", self.start_unix_ms));
        let tmp = self.dir.join(format!(
            ".slaprof-trace-{}.trace.json.tmp",
            self.start_unix_ms
        ));
        let io = |p: &Path| {
            let p = p.to_path_buf();
            move |source| TraceError::Io { path: p, source }
        };
        let doc = json!({
            "traceEvents": self.events,
            "displayTimeUnit": "ms",
            "otherData": {
                "generator": "slaprof mocker",
                "start_unix_ms": self.start_unix_ms as u64,
                "dropped_events": self.dropped,
            },
        });
        {
            let f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
            let mut w = std::io::BufWriter::new(f);
            serde_json::to_writer(&mut w, &doc)
                .map_err(std::io::Error::from)
                .map_err(io(&tmp))?;
            w.flush().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        Ok(path)
    }
}
