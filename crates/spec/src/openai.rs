//! OpenAI wire types for `/v1/completions`, `/v1/chat/completions` and
//! `/v1/models`, with the request validation an OpenAI-compatible server
//! (vLLM in particular) applies. No I/O: the mocker's server and any client
//! in the workspace share these.
//!
//! Requests are parsed field by field from a `serde_json::Value` rather than
//! by one derived `Deserialize`, so that a bad field is reported by name (an
//! OpenAI error's `param`), which serde's own messages do not do for type
//! errors. Unknown fields are accepted and ignored, as vLLM does; sampling
//! knobs (`temperature`, `top_p`, `stop`, `seed`, ...) are accepted and
//! ignored because the mocker's output does not depend on them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `max_tokens` a completion request gets when it names none: OpenAI's and
/// vLLM's legacy-completions default.
pub const COMPLETIONS_DEFAULT_MAX_TOKENS: u32 = 16;

/// A request the server must refuse with 400, naming the bad field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub message: String,
    pub param: Option<String>,
}

impl RequestError {
    fn field(param: &str, message: impl Into<String>) -> Self {
        RequestError {
            message: message.into(),
            param: Some(param.to_string()),
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RequestError {}

/// `prompt` of `/v1/completions`: text, a batch of texts, token ids, or a
/// batch of token-id lists. Each entry of a batch is a separate choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenBatch(Vec<Vec<u32>>),
}

/// One prompt of a (possibly batched) completion request.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput<'a> {
    Text(&'a str),
    Tokens(&'a [u32]),
}

impl Prompt {
    /// The prompts of the batch, in choice order.
    pub fn inputs(&self) -> Vec<PromptInput<'_>> {
        match self {
            Prompt::Text(t) => vec![PromptInput::Text(t)],
            Prompt::Texts(ts) => ts.iter().map(|t| PromptInput::Text(t)).collect(),
            Prompt::Tokens(ids) => vec![PromptInput::Tokens(ids)],
            Prompt::TokenBatch(b) => b.iter().map(|ids| PromptInput::Tokens(ids)).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The fields shared by both generation endpoints.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenerationParams {
    /// `None` means the server chooses (see the endpoint's default).
    pub max_tokens: Option<u32>,
    pub min_tokens: u32,
    pub ignore_eos: bool,
    pub stream: bool,
    pub include_usage: bool,
    pub n: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    /// `None`: the server's (first) served model, as vLLM allows.
    pub model: Option<String>,
    pub prompt: Prompt,
    pub params: GenerationParams,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    /// The message's text: a string, or the `text` parts of a content-part
    /// array joined with newlines. Non-text parts are refused.
    pub content: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletionRequest {
    pub model: Option<String>,
    pub messages: Vec<ChatMessage>,
    pub params: GenerationParams,
}

fn object(v: &Value) -> Result<&Map<String, Value>, RequestError> {
    v.as_object().ok_or_else(|| RequestError {
        message: "request body must be a JSON object".into(),
        param: None,
    })
}

/// A field that may be absent or `null` (both mean "not given").
fn opt<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn opt_u32(obj: &Map<String, Value>, name: &str) -> Result<Option<u32>, RequestError> {
    match opt(obj, name) {
        None => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                RequestError::field(
                    name,
                    format!("`{name}` must be a non-negative integer, got {v}"),
                )
            }),
    }
}

fn opt_bool(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, RequestError> {
    match opt(obj, name) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(RequestError::field(
            name,
            format!("`{name}` must be a boolean, got {v}"),
        )),
    }
}

fn opt_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, RequestError> {
    match opt(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(RequestError::field(
            name,
            format!("`{name}` must be a string, got {v}"),
        )),
    }
}

/// Numbers that are accepted for compatibility and otherwise ignored still
/// have to be numbers, as a real server would insist.
fn check_numbers(obj: &Map<String, Value>, names: &[&str]) -> Result<(), RequestError> {
    for name in names {
        if let Some(v) = opt(obj, name) {
            if !v.is_number() {
                return Err(RequestError::field(
                    name,
                    format!("`{name}` must be a number, got {v}"),
                ));
            }
        }
    }
    Ok(())
}

fn generation_params(
    obj: &Map<String, Value>,
    max_tokens_fields: &[&str],
) -> Result<GenerationParams, RequestError> {
    check_numbers(
        obj,
        &[
            "temperature",
            "top_p",
            "top_k",
            "min_p",
            "presence_penalty",
            "frequency_penalty",
            "repetition_penalty",
            "seed",
        ],
    )?;
    let mut max_tokens = None;
    for name in max_tokens_fields {
        if let Some(m) = opt_u32(obj, name)? {
            if m == 0 {
                return Err(RequestError::field(
                    name,
                    format!("`{name}` must be at least 1, got 0"),
                ));
            }
            max_tokens.get_or_insert(m);
        }
    }
    let min_tokens = opt_u32(obj, "min_tokens")?.unwrap_or(0);
    if let Some(m) = max_tokens {
        if min_tokens > m {
            return Err(RequestError::field(
                "min_tokens",
                format!(
                    "`min_tokens` ({min_tokens}) must be less than or equal to `max_tokens` ({m})"
                ),
            ));
        }
    }
    let n = opt_u32(obj, "n")?.unwrap_or(1);
    if n != 1 {
        return Err(RequestError::field(
            "n",
            format!("`n` must be 1 (the mocker generates one choice per prompt), got {n}"),
        ));
    }
    let stream = opt_bool(obj, "stream")?.unwrap_or(false);
    let include_usage = match opt(obj, "stream_options") {
        None => false,
        Some(Value::Object(o)) => {
            if !stream {
                return Err(RequestError::field(
                    "stream_options",
                    "`stream_options` can only be set when `stream` is true",
                ));
            }
            opt_bool(o, "include_usage")
                .map_err(|_| {
                    RequestError::field(
                        "stream_options.include_usage",
                        "`stream_options.include_usage` must be a boolean",
                    )
                })?
                .unwrap_or(false)
        }
        Some(v) => {
            return Err(RequestError::field(
                "stream_options",
                format!("`stream_options` must be an object, got {v}"),
            ))
        }
    };
    Ok(GenerationParams {
        max_tokens,
        min_tokens,
        ignore_eos: opt_bool(obj, "ignore_eos")?.unwrap_or(false),
        stream,
        include_usage,
        n,
    })
}

fn token_list(v: &Value) -> Option<Vec<u32>> {
    v.as_array()?
        .iter()
        .map(|t| t.as_u64().and_then(|n| u32::try_from(n).ok()))
        .collect()
}

fn parse_prompt(v: Option<&Value>) -> Result<Prompt, RequestError> {
    let bad = || {
        RequestError::field(
            "prompt",
            "`prompt` must be a string, a list of strings, a list of token ids or a list of token-id lists",
        )
    };
    let v = v.ok_or_else(|| RequestError::field("prompt", "`prompt` is required"))?;
    let prompt = match v {
        Value::String(s) => Prompt::Text(s.clone()),
        Value::Array(items) if items.is_empty() => {
            return Err(RequestError::field("prompt", "`prompt` must not be empty"))
        }
        Value::Array(items) => match &items[0] {
            Value::String(_) => Prompt::Texts(
                items
                    .iter()
                    .map(|i| i.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(bad)?,
            ),
            Value::Number(_) => Prompt::Tokens(token_list(v).ok_or_else(bad)?),
            Value::Array(_) => {
                let batch: Vec<Vec<u32>> = items
                    .iter()
                    .map(token_list)
                    .collect::<Option<_>>()
                    .ok_or_else(bad)?;
                if batch.iter().any(Vec::is_empty) {
                    return Err(RequestError::field("prompt", "`prompt` must not be empty"));
                }
                Prompt::TokenBatch(batch)
            }
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    Ok(prompt)
}

impl CompletionRequest {
    pub fn from_value(v: &Value) -> Result<Self, RequestError> {
        let obj = object(v)?;
        Ok(CompletionRequest {
            model: opt_string(obj, "model")?,
            prompt: parse_prompt(opt(obj, "prompt"))?,
            params: generation_params(obj, &["max_tokens"])?,
        })
    }
}

fn parse_content(i: usize, v: Option<&Value>) -> Result<String, RequestError> {
    let param = format!("messages[{i}].content");
    match v {
        // Assistant turns with tool calls carry no content.
        None => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str);
                let text = part.get("text").and_then(Value::as_str);
                match (kind, text) {
                    (Some("text"), Some(t)) => texts.push(t),
                    (Some(other), _) if other != "text" => {
                        return Err(RequestError::field(
                            &format!("{param}[{j}].type"),
                            format!("content part type `{other}` is not supported (only `text`)"),
                        ))
                    }
                    _ => {
                        return Err(RequestError::field(
                            &format!("{param}[{j}]"),
                            "a content part must be {\"type\": \"text\", \"text\": string}",
                        ))
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        Some(other) => Err(RequestError::field(
            &param,
            format!("`{param}` must be a string or a list of content parts, got {other}"),
        )),
    }
}

impl ChatCompletionRequest {
    pub fn from_value(v: &Value) -> Result<Self, RequestError> {
        let obj = object(v)?;
        let messages = match opt(obj, "messages") {
            None => return Err(RequestError::field("messages", "`messages` is required")),
            Some(Value::Array(ms)) if ms.is_empty() => {
                return Err(RequestError::field(
                    "messages",
                    "`messages` must not be empty",
                ))
            }
            Some(Value::Array(ms)) => ms
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
                        RequestError::field(
                            &format!("messages[{i}].role"),
                            format!("`messages[{i}].role` must be a string"),
                        )
                    })?;
                    Ok(ChatMessage {
                        role: role.to_string(),
                        content: parse_content(i, m.get("content").filter(|c| !c.is_null()))?,
                    })
                })
                .collect::<Result<Vec<_>, RequestError>>()?,
            Some(other) => {
                return Err(RequestError::field(
                    "messages",
                    format!("`messages` must be a list, got {other}"),
                ))
            }
        };
        Ok(ChatCompletionRequest {
            model: opt_string(obj, "model")?,
            messages,
            // The newer name wins over the deprecated one when both are set.
            params: generation_params(obj, &["max_completion_tokens", "max_tokens"])?,
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn new(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub logprobs: Option<Value>,
    pub finish_reason: Option<String>,
}

/// A `/v1/completions` body, or one streamed chunk of it (same shape; a
/// usage-only chunk has no choices).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionResponse {
    pub id: String,
    /// `text_completion`.
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChoice {
    pub index: u32,
    pub message: AssistantMessage,
    pub logprobs: Option<Value>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionResponse {
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatDelta {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatChunkChoice {
    pub index: u32,
    pub delta: ChatDelta,
    pub logprobs: Option<Value>,
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChatChunkChoice>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    pub id: String,
    /// `model`.
    pub object: String,
    pub created: u64,
    pub owned_by: String,
    pub root: String,
    pub parent: Option<String>,
    pub max_model_len: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    pub object: String,
    pub data: Vec<ModelCard>,
}

/// The body of every error answer: `{"error": {...}}`, with vLLM's
/// conventions: `type` names the HTTP error class (`BadRequestError`,
/// `NotFoundError`, ...) and `code` is the HTTP status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: ErrorInfo,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: u16,
}

impl ErrorResponse {
    pub fn new(status: u16, message: impl Into<String>, param: Option<String>) -> Self {
        let kind = match status {
            400 => "BadRequestError",
            401 => "AuthenticationError",
            404 => "NotFoundError",
            413 => "RequestTooLargeError",
            429 => "RateLimitError",
            503 => "ServiceUnavailableError",
            s if s >= 500 => "InternalServerError",
            _ => "BadRequestError",
        };
        ErrorResponse {
            error: ErrorInfo {
                message: message.into(),
                kind: kind.to_string(),
                param,
                code: status,
            },
        }
    }

    /// vLLM's wording for a model name it does not serve.
    pub fn model_not_found(model: &str) -> Self {
        ErrorResponse::new(
            404,
            format!("The model `{model}` does not exist."),
            Some("model".into()),
        )
    }

    /// vLLM's wording for a prompt plus output over the context window.
    pub fn context_too_long(limit: u32, prompt: u32, max_tokens: u32) -> Self {
        let total = prompt as u64 + max_tokens as u64;
        ErrorResponse::new(
            400,
            format!(
                "This model's maximum context length is {limit} tokens. However, you requested \
                 {total} tokens ({prompt} in the messages, {max_tokens} in the completion). \
                 Please reduce the length of the messages or completion."
            ),
            Some("max_tokens".into()),
        )
    }
}

impl From<RequestError> for ErrorResponse {
    fn from(e: RequestError) -> Self {
        ErrorResponse::new(400, e.message, e.param)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn prompt_shapes() {
        for (v, n) in [
            (json!("hi"), 1),
            (json!(["a", "b"]), 2),
            (json!([1, 2, 3]), 1),
            (json!([[1, 2], [3]]), 2),
        ] {
            let r = CompletionRequest::from_value(&json!({"model": "m", "prompt": v})).unwrap();
            assert_eq!(r.prompt.inputs().len(), n);
        }
        let e = CompletionRequest::from_value(&json!({"prompt": [true]})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("prompt"));
        let e = CompletionRequest::from_value(&json!({"model": "m"})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("prompt"));
    }

    #[test]
    fn bad_fields_are_named() {
        let e = CompletionRequest::from_value(&json!({"prompt": "x", "max_tokens": "ten"}))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("max_tokens"));
        assert!(e.message.contains("max_tokens"));
        let e = CompletionRequest::from_value(&json!({"prompt": "x", "n": 2})).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("n"));
        let e = CompletionRequest::from_value(
            &json!({"prompt": "x", "max_tokens": 4, "min_tokens": 5}),
        )
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("min_tokens"));
        let e = CompletionRequest::from_value(&json!({"prompt": "x", "temperature": "hot"}))
            .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("temperature"));
    }

    #[test]
    fn chat_content_parts_and_max_completion_tokens() {
        let r = ChatCompletionRequest::from_value(&json!({
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
            ],
            "max_tokens": 9,
            "max_completion_tokens": 5,
            "stream": true,
            "stream_options": {"include_usage": true}
        }))
        .unwrap();
        assert_eq!(r.messages[1].content, "a\nb");
        assert_eq!(r.params.max_tokens, Some(5));
        assert!(r.params.stream && r.params.include_usage);
        let e = ChatCompletionRequest::from_value(&json!({
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]
        }))
        .unwrap_err();
        assert_eq!(e.param.as_deref(), Some("messages[0].content[0].type"));
    }

    #[test]
    fn error_body_shape() {
        let v = serde_json::to_value(ErrorResponse::model_not_found("x")).unwrap();
        assert_eq!(v["error"]["type"], "NotFoundError");
        assert_eq!(v["error"]["code"], 404);
        assert_eq!(v["error"]["message"], "The model `x` does not exist.");
    }
}
