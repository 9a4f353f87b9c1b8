//! The OpenAI-compatible HTTP front of the mocker: `/v1/models`,
//! `/v1/completions`, `/v1/chat/completions` (streamed as SSE or not),
//! `/health`, `/metrics` and SGLang-style `/engine/{start,stop}_profile`.
//!
//! Behaviour a client may notice:
//! - The mocker never emits EOS: every choice generates exactly its
//!   `max_tokens` (`finish_reason` is `"length"`), so `min_tokens` and
//!   `ignore_eos` are accepted (and `min_tokens <= max_tokens` checked) but
//!   change nothing.
//! - Without `max_tokens`, a completion gets 16 tokens (OpenAI's and vLLM's
//!   legacy default) and a chat completion gets the context left after the
//!   prompt, capped at [`ServerConfig::default_max_tokens`] (vLLM gives the
//!   whole rest of the context, which at speedup 1 can run for minutes).
//! - The text of output token `i` is a word chosen from `i` alone
//!   ([`token_text`]), so content is stable across runs.
//! - Streams send one chunk per token. A chat stream's first chunk carries
//!   `role: "assistant"` together with the first token (rather than an
//!   empty role-only chunk first), so clients that time the first chunk
//!   measure the real TTFT. The last token's chunk carries
//!   `finish_reason`; then a usage chunk when `stream_options.include_usage`,
//!   then `data: [DONE]`.
//! - Errors use vLLM's body `{"error": {"message", "type", "param", "code"}}`:
//!   an unknown model is 404 `NotFoundError` ("The model `x` does not
//!   exist."), bad JSON or fields and prompts over the context are 400,
//!   a full waiting queue is 503 with `Retry-After`.

use crate::engine::{EngineEvent, EngineHandle, GenerateRequest, Generation, SubmitError};
use crate::faults::{FaultConfig, Faults, RequestFaults};
use crate::tokenizer::Tokenizer;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use serde::Serialize;
use serde_json::Value;
use spec::openai::{
    AssistantMessage, ChatChoice, ChatChunkChoice, ChatCompletionChunk, ChatCompletionRequest,
    ChatCompletionResponse, ChatDelta, CompletionChoice, CompletionRequest, CompletionResponse,
    ErrorResponse, GenerationParams, ModelCard, ModelList, PromptInput, Usage,
    COMPLETIONS_DEFAULT_MAX_TOKENS,
};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds a client is told to wait after a 503 for a full queue.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Requests (prompts of a few hundred thousand tokens as text or id lists)
/// are allowed well beyond axum's 2 MB default.
const BODY_LIMIT_BYTES: usize = 64 << 20;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub served_model_name: String,
    /// Context window: prompt plus output tokens of one request.
    pub max_model_len: u32,
    /// Cap on a chat request's output when it names no `max_tokens`.
    pub default_max_tokens: u32,
    pub faults: FaultConfig,
}

impl ServerConfig {
    pub fn new(served_model_name: impl Into<String>, max_model_len: u32) -> Self {
        ServerConfig {
            served_model_name: served_model_name.into(),
            max_model_len,
            default_max_tokens: 1024,
            faults: FaultConfig::default(),
        }
    }
}

/// Everything the handlers share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    engine: EngineHandle,
    tokenizer: Tokenizer,
    cfg: ServerConfig,
    faults: Faults,
    created: u64,
    next_id: AtomicU64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl AppState {
    pub fn new(engine: EngineHandle, tokenizer: Tokenizer, cfg: ServerConfig) -> Self {
        AppState(Arc::new(Inner {
            engine,
            tokenizer,
            faults: Faults::new(cfg.faults.clone()),
            cfg,
            created: unix_now(),
            next_id: AtomicU64::new(0),
        }))
    }

    pub fn engine(&self) -> &EngineHandle {
        &self.0.engine
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.cfg
    }
}

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/engine/start_profile", post(start_profile))
        .route("/engine/stop_profile", post(stop_profile))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}

/// An error answer: status plus OpenAI body (and `Retry-After` for 503).
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorResponse,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError {
            status,
            body: ErrorResponse::new(status.as_u16(), message, param.map(str::to_string)),
        }
    }

    fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message, param)
    }
}

impl From<ErrorResponse> for ApiError {
    fn from(body: ErrorResponse) -> Self {
        ApiError {
            status: StatusCode::from_u16(body.error.code).unwrap_or(StatusCode::BAD_REQUEST),
            body,
        }
    }
}

impl From<spec::openai::RequestError> for ApiError {
    fn from(e: spec::openai::RequestError) -> Self {
        ErrorResponse::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, axum::Json(self.body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        resp
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("malformed JSON request body: {e}"), None))
}

/// Words every common tokenizer keeps whole (with their leading space).
const WORDS: [&str; 32] = [
    " the", " of", " and", " to", " in", " is", " that", " for", " it", " as", " with", " was",
    " on", " be", " at", " by", " this", " had", " not", " are", " but", " from", " or", " have",
    " an", " they", " which", " one", " you", " were", " all", " we",
];

/// The text of output token `index` (stable: a function of the index only).
pub fn token_text(index: u32) -> &'static str {
    WORDS[(index.wrapping_mul(7).wrapping_add(index / 32) % WORDS.len() as u32) as usize]
}

async fn models(State(s): State<AppState>) -> axum::Json<ModelList> {
    let name = &s.0.cfg.served_model_name;
    axum::Json(ModelList {
        object: "list".into(),
        data: vec![ModelCard {
            id: name.clone(),
            object: "model".into(),
            created: s.0.created,
            owned_by: "slaprof".into(),
            root: name.clone(),
            parent: None,
            max_model_len: s.0.cfg.max_model_len,
        }],
    })
}

async fn health() -> StatusCode {
    StatusCode::OK
}

async fn metrics(State(s): State<AppState>) -> Response {
    let text =
        s.0.engine
            .metrics()
            .prometheus_text(&s.0.cfg.served_model_name);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn start_profile(State(s): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let dir = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match parse_json(&body)? {
            Value::Object(o) => match o.get("output_dir") {
                None | Some(Value::Null) => None,
                Some(Value::String(d)) => Some(PathBuf::from(d)),
                Some(_) => {
                    return Err(ApiError::bad_request(
                        "`output_dir` must be a string",
                        Some("output_dir"),
                    ))
                }
            },
            _ => return Err(ApiError::bad_request("body must be a JSON object", None)),
        }
    };
    // SGLang's default when no directory is given.
    let dir = dir.unwrap_or_else(std::env::temp_dir);
    s.0.engine
        .start_profile(dir)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string(), None))?;
    Ok("Start profiling.\n".into_response())
}

async fn stop_profile(State(s): State<AppState>) -> Result<Response, ApiError> {
    let path =
        s.0.engine
            .stop_profile()
            .await
            .map_err(|e| ApiError::bad_request(e.to_string(), None))?;
    Ok(format!("Stop profiling. Trace written to {}\n", path.display()).into_response())
}

/// Which endpoint a generation answers, for the shape of its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

/// A validated generation: one prompt per choice.
struct Job {
    kind: Kind,
    model: String,
    /// Moved into the engine on submission; `prompt_lens` stays for usage.
    prompts: Vec<Vec<u32>>,
    prompt_lens: Vec<u64>,
    max_tokens: Vec<u32>,
    params: GenerationParams,
}

impl AppState {
    fn check_model(&self, model: Option<&str>) -> Result<String, ApiError> {
        let served = &self.0.cfg.served_model_name;
        match model {
            None => Ok(served.clone()),
            Some(m) if m == served => Ok(served.clone()),
            Some(m) => Err(ErrorResponse::model_not_found(m).into()),
        }
    }

    fn job(
        &self,
        kind: Kind,
        model: String,
        prompts: Vec<Vec<u32>>,
        params: GenerationParams,
    ) -> Result<Job, ApiError> {
        let limit = self.0.cfg.max_model_len;
        let mut max_tokens = Vec::with_capacity(prompts.len());
        for p in &prompts {
            if p.is_empty() {
                return Err(ApiError::bad_request(
                    "The prompt cannot be empty.",
                    Some("prompt"),
                ));
            }
            let plen = u32::try_from(p.len()).unwrap_or(u32::MAX);
            let left = limit.saturating_sub(plen);
            let m = match (params.max_tokens, kind) {
                (Some(m), _) => m,
                (None, Kind::Completion) => COMPLETIONS_DEFAULT_MAX_TOKENS,
                (None, Kind::Chat) => left.min(self.0.cfg.default_max_tokens).max(1),
            };
            if plen as u64 + m as u64 > limit as u64 {
                return Err(ErrorResponse::context_too_long(limit, plen, m).into());
            }
            if params.min_tokens > m {
                return Err(ApiError::bad_request(
                    format!(
                        "`min_tokens` ({}) must be less than or equal to `max_tokens` ({m})",
                        params.min_tokens
                    ),
                    Some("min_tokens"),
                ));
            }
            max_tokens.push(m);
        }
        Ok(Job {
            kind,
            model,
            prompt_lens: prompts.iter().map(|p| p.len() as u64).collect(),
            prompts,
            max_tokens,
            params,
        })
    }

    fn tokenize_error(e: crate::tokenizer::TokenizerError) -> ApiError {
        ApiError::bad_request(e.to_string(), Some("prompt"))
    }

    fn completion_job(&self, body: &[u8]) -> Result<Job, ApiError> {
        let req = CompletionRequest::from_value(&parse_json(body)?)?;
        let model = self.check_model(req.model.as_deref())?;
        let prompts = req
            .prompt
            .inputs()
            .into_iter()
            .map(|p| match p {
                PromptInput::Text(t) => self.0.tokenizer.encode(t),
                PromptInput::Tokens(ids) => Ok(ids.to_vec()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(Self::tokenize_error)?;
        self.job(Kind::Completion, model, prompts, req.params)
    }

    fn chat_job(&self, body: &[u8]) -> Result<Job, ApiError> {
        let req = ChatCompletionRequest::from_value(&parse_json(body)?)?;
        let model = self.check_model(req.model.as_deref())?;
        let ids = self
            .0
            .tokenizer
            .encode_chat(
                req.messages
                    .iter()
                    .map(|m| (m.role.as_str(), m.content.as_str())),
            )
            .map_err(Self::tokenize_error)?;
        self.job(Kind::Chat, model, vec![ids], req.params)
    }

    fn submit(&self, job: &mut Job) -> Result<Vec<Generation>, ApiError> {
        let prompts = std::mem::take(&mut job.prompts);
        let mut gens = Vec::with_capacity(prompts.len());
        for (p, &m) in prompts.into_iter().zip(&job.max_tokens) {
            let req = GenerateRequest {
                prompt_tokens: p,
                max_tokens: m,
            };
            // An error drops the generations already submitted, which
            // aborts them in the engine.
            let g = self.0.engine.submit(req).map_err(|e| match e {
                SubmitError::Overloaded { waiting } => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("The server is overloaded ({waiting} requests waiting); retry later."),
                    None,
                ),
                SubmitError::TooLong {
                    prompt,
                    max_tokens,
                    limit,
                } => ErrorResponse::context_too_long(limit, prompt, max_tokens).into(),
                SubmitError::ShuttingDown => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server is shutting down.",
                    None,
                ),
            })?;
            gens.push(g);
        }
        Ok(gens)
    }

    async fn run(&self, job: Result<Job, ApiError>) -> Response {
        let mut job = match job {
            Ok(j) => j,
            Err(e) => return e.into_response(),
        };
        let faults = self.0.faults.next_request();
        if faults.fail {
            return ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Injected fault (--fault-error-rate).",
                None,
            )
            .into_response();
        }
        if let Some(d) = faults.stall {
            tokio::time::sleep(d).await;
        }
        let gens = match self.submit(&mut job) {
            Ok(g) => g,
            Err(e) => return e.into_response(),
        };
        let n = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let id = match job.kind {
            Kind::Completion => format!("cmpl-{n:016x}"),
            Kind::Chat => format!("chatcmpl-{n:016x}"),
        };
        let meta = Meta {
            id,
            created: unix_now(),
            model: job.model.clone(),
            kind: job.kind,
        };
        if job.params.stream {
            stream_response(meta, job, gens, faults)
        } else {
            whole_response(meta, job, gens).await
        }
    }
}

async fn completions(State(s): State<AppState>, body: Bytes) -> Response {
    let job = s.completion_job(&body);
    s.run(job).await
}

async fn chat_completions(State(s): State<AppState>, body: Bytes) -> Response {
    let job = s.chat_job(&body);
    s.run(job).await
}

struct Meta {
    id: String,
    created: u64,
    model: String,
    kind: Kind,
}

/// Tokens one choice received, and whether the engine finished it.
#[derive(Default, Clone)]
struct ChoiceState {
    tokens: u32,
    finished: bool,
}

fn finish_reason(c: &ChoiceState) -> &'static str {
    // The engine ended a choice early only when it was aborted (shutdown).
    if c.finished {
        "length"
    } else {
        "abort"
    }
}

fn usage(job: &Job, choices: &[ChoiceState]) -> Usage {
    Usage::new(
        job.prompt_lens.iter().sum(),
        choices.iter().map(|c| c.tokens as u64).sum(),
    )
}

async fn whole_response(meta: Meta, job: Job, gens: Vec<Generation>) -> Response {
    let mut states = vec![ChoiceState::default(); gens.len()];
    let mut texts = vec![String::new(); gens.len()];
    for (i, mut g) in gens.into_iter().enumerate() {
        while let Some(EngineEvent::Token { index, finished }) = g.next().await {
            texts[i].push_str(token_text(index));
            states[i].tokens += 1;
            if finished {
                states[i].finished = true;
                break;
            }
        }
    }
    let usage = usage(&job, &states);
    match meta.kind {
        Kind::Completion => axum::Json(CompletionResponse {
            id: meta.id,
            object: "text_completion".into(),
            created: meta.created,
            model: meta.model,
            choices: texts
                .into_iter()
                .zip(&states)
                .enumerate()
                .map(|(i, (text, st))| CompletionChoice {
                    index: i as u32,
                    text,
                    logprobs: None,
                    finish_reason: Some(finish_reason(st).into()),
                })
                .collect(),
            usage: Some(usage),
        })
        .into_response(),
        Kind::Chat => axum::Json(ChatCompletionResponse {
            id: meta.id,
            object: "chat.completion".into(),
            created: meta.created,
            model: meta.model,
            choices: texts
                .into_iter()
                .zip(&states)
                .enumerate()
                .map(|(i, (content, st))| ChatChoice {
                    index: i as u32,
                    message: AssistantMessage {
                        role: "assistant".into(),
                        content,
                    },
                    logprobs: None,
                    finish_reason: Some(finish_reason(st).into()),
                })
                .collect(),
            usage,
        })
        .into_response(),
    }
}

fn sse<T: Serialize>(v: &T) -> Bytes {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut out, v).expect("response types serialize");
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

impl Meta {
    /// The chunk of one choice: a token's text (with the role on a chat
    /// choice's first token), or only a finish reason.
    fn chunk(&self, index: u32, text: &str, first: bool, finish: Option<&str>) -> Bytes {
        match self.kind {
            Kind::Completion => sse(&CompletionResponse {
                id: self.id.clone(),
                object: "text_completion".into(),
                created: self.created,
                model: self.model.clone(),
                choices: vec![CompletionChoice {
                    index,
                    text: text.into(),
                    logprobs: None,
                    finish_reason: finish.map(str::to_string),
                }],
                usage: None,
            }),
            Kind::Chat => sse(&ChatCompletionChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".into(),
                created: self.created,
                model: self.model.clone(),
                choices: vec![ChatChunkChoice {
                    index,
                    delta: ChatDelta {
                        role: first.then(|| "assistant".to_string()),
                        content: Some(text.into()),
                    },
                    logprobs: None,
                    finish_reason: finish.map(str::to_string),
                }],
                usage: None,
            }),
        }
    }

    fn usage_chunk(&self, usage: Usage) -> Bytes {
        match self.kind {
            Kind::Completion => sse(&CompletionResponse {
                id: self.id.clone(),
                object: "text_completion".into(),
                created: self.created,
                model: self.model.clone(),
                choices: vec![],
                usage: Some(usage),
            }),
            Kind::Chat => sse(&ChatCompletionChunk {
                id: self.id.clone(),
                object: "chat.completion.chunk".into(),
                created: self.created,
                model: self.model.clone(),
                choices: vec![],
                usage: Some(usage),
            }),
        }
    }
}

type Frame = Result<Bytes, std::io::Error>;

/// Streams the choices as SSE. A task drives the generations and feeds the
/// body through a channel; when the client goes away the channel closes,
/// the task ends and dropping the generations aborts them in the engine.
fn stream_response(meta: Meta, job: Job, gens: Vec<Generation>, faults: RequestFaults) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Frame>(16);
    tokio::spawn(async move {
        let mut states = vec![ChoiceState::default(); gens.len()];
        let per_choice = gens.into_iter().enumerate().map(|(i, g)| {
            futures_util::stream::unfold(g, move |mut g| async move {
                g.next().await.map(|ev| ((i, ev), g))
            })
            .boxed()
        });
        let mut events = futures_util::stream::select_all(per_choice);
        let mut sent = 0u32;
        while let Some((i, EngineEvent::Token { index, finished })) = events.next().await {
            let st = &mut states[i];
            let first = st.tokens == 0;
            st.tokens += 1;
            st.finished |= finished;
            let finish = finished.then_some("length");
            if tx
                .send(Ok(meta.chunk(i as u32, token_text(index), first, finish)))
                .await
                .is_err()
            {
                return;
            }
            sent += 1;
            if faults.cut_after.is_some_and(|n| sent >= n) {
                // Let the tokens already sent reach the client first: an
                // error frame aborts the connection, dropping whatever hyper
                // still buffers.
                while tx.capacity() < tx.max_capacity() {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                let cut = std::io::Error::other("stream cut by --fault-cut-stream-after");
                let _ = tx.send(Err(cut)).await;
                return;
            }
        }
        drop(events);
        for (i, st) in states.iter().enumerate() {
            if !st.finished
                && tx
                    .send(Ok(meta.chunk(
                        i as u32,
                        "",
                        st.tokens == 0,
                        Some(finish_reason(st)),
                    )))
                    .await
                    .is_err()
            {
                return;
            }
        }
        if job.params.include_usage {
            let _ = tx.send(Ok(meta.usage_chunk(usage(&job, &states)))).await;
        }
        let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The listener the mocker serves on. Every token is one small SSE frame:
/// with Nagle's algorithm on, a frame written while the previous one is
/// unacknowledged waits for the client's delayed ACK (about 40 ms), which
/// would add that to TTFT and ITL. Real engines' servers disable it too.
pub fn low_latency_listener(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|tcp| {
        // Best effort: a socket that refuses still serves, only slower.
        let _ = tcp.set_nodelay(true);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_text_is_stable_and_varied() {
        assert_eq!(token_text(0), token_text(0));
        let distinct: std::collections::HashSet<_> = (0..32).map(token_text).collect();
        assert!(distinct.len() > 16);
    }
}
