//! Prompt token counting: a real Hugging Face tokenizer when one is named,
//! otherwise a deterministic rule, so `usage.prompt_tokens` is stable and
//! equal prompts (and equal prefixes) get equal token ids for the prefix
//! cache.
//!
//! The rule (used without `--tokenizer`):
//! - text is split into words (maximal runs of alphanumeric characters) and
//!   single punctuation/symbol characters; whitespace only separates;
//! - a word longer than 4 characters becomes pieces of 4 characters (the
//!   last one shorter), roughly the 4-characters-per-token of BPE on English;
//! - a piece's id is a 64-bit FNV-1a hash of its text folded into
//!   `[RULE_ID_BASE, RULE_ID_BASE + RULE_VOCAB)`.
//!
//! Chat messages are rendered with one fixed template whichever tokenizer is
//! used (a real model's Jinja chat template is not evaluated):
//! `<|ROLE|>\nCONTENT\n` per message, then `<|assistant|>\n`.
//! With the rule, `<|`, `ROLE`, `|>` count as tokens like any other text.

use std::path::{Path, PathBuf};

/// Size of the rule's id space.
pub const RULE_VOCAB: u32 = 100_000;
/// First rule id, above the special tokens of common vocabularies.
pub const RULE_ID_BASE: u32 = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot load tokenizer {path}: {message}")]
    Load { path: PathBuf, message: String },
    #[error(
        "tokenizer '{0}' not found: not a tokenizer.json file, not a directory holding one, \
         and not a model id with a tokenizer.json in the Hugging Face cache ({1})"
    )]
    NotFound(String, String),
    #[error("tokenizing failed: {0}")]
    Encode(String),
}

pub enum Tokenizer {
    Hf {
        name: String,
        inner: Box<tokenizers::Tokenizer>,
    },
    Rule,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// The Hugging Face hub cache, as `huggingface_hub` finds it.
fn hf_hub_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("HF_HUB_CACHE") {
        return Some(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("HF_HOME") {
        return Some(PathBuf::from(d).join("hub"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
}

/// `snapshots/*/tokenizer.json` of `models--ORG--NAME`, newest first.
fn find_in_hub(hub: &Path, model_id: &str) -> Option<PathBuf> {
    let dir = hub
        .join(format!("models--{}", model_id.replace('/', "--")))
        .join("snapshots");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path().join("tokenizer.json"))
        .filter(|p| p.is_file())
        .map(|p| {
            let t = std::fs::metadata(&p)
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (t, p)
        })
        .collect();
    found.sort();
    found.pop().map(|(_, p)| p)
}

impl Tokenizer {
    /// `spec`: a `tokenizer.json` file, a directory holding one, or a model
    /// id (`ORG/NAME`) whose `tokenizer.json` is in the Hugging Face cache
    /// (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub fn from_spec(spec: &str) -> Result<Tokenizer, TokenizerError> {
        let path = Path::new(spec);
        let file = if path.is_file() {
            Some(path.to_path_buf())
        } else if path.is_dir() {
            Some(path.join("tokenizer.json")).filter(|p| p.is_file())
        } else {
            hf_hub_dir().and_then(|hub| find_in_hub(&hub, spec))
        };
        let Some(file) = file else {
            let hub = hf_hub_dir()
                .map(|h| h.display().to_string())
                .unwrap_or_else(|| "no cache directory".into());
            return Err(TokenizerError::NotFound(spec.to_string(), hub));
        };
        let inner = tokenizers::Tokenizer::from_file(&file).map_err(|e| TokenizerError::Load {
            path: file.clone(),
            message: e.to_string(),
        })?;
        Ok(Tokenizer::Hf {
            name: spec.to_string(),
            inner: Box::new(inner),
        })
    }

    /// `None`: the documented rule.
    pub fn from_option(spec: Option<&str>) -> Result<Tokenizer, TokenizerError> {
        spec.map_or(Ok(Tokenizer::Rule), Tokenizer::from_spec)
    }

    pub fn describe(&self) -> String {
        match self {
            Tokenizer::Hf { name, .. } => format!("tokenizer {name}"),
            Tokenizer::Rule => "the built-in word-piece rule (no --tokenizer)".into(),
        }
    }

    /// Token ids of a completion prompt (special tokens such as BOS added,
    /// as vLLM does for `/v1/completions`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        match self {
            Tokenizer::Hf { inner, .. } => inner
                .encode(text, true)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| TokenizerError::Encode(e.to_string())),
            Tokenizer::Rule => Ok(rule_encode(text)),
        }
    }

    /// Token ids of a chat conversation rendered with the module's template.
    /// The template carries its own markers, so no special tokens are added.
    pub fn encode_chat<'a>(
        &self,
        messages: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Vec<u32>, TokenizerError> {
        let text = render_chat(messages);
        match self {
            Tokenizer::Hf { inner, .. } => inner
                .encode(text, false)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| TokenizerError::Encode(e.to_string())),
            Tokenizer::Rule => Ok(rule_encode(&text)),
        }
    }
}

/// The chat template (see the module docs).
pub fn render_chat<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut out = String::new();
    for (role, content) in messages {
        out.push_str("<|");
        out.push_str(role);
        out.push_str("|>\n");
        out.push_str(content);
        out.push('\n');
    }
    out.push_str("<|assistant|>\n");
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn piece_id(piece: &str) -> u32 {
    RULE_ID_BASE + (fnv1a(piece.as_bytes()) % RULE_VOCAB as u64) as u32
}

fn push_word(ids: &mut Vec<u32>, word: &str) {
    let mut start = 0;
    for (n, (i, c)) in word.char_indices().enumerate() {
        let end = i + c.len_utf8();
        if (n + 1) % 4 == 0 || end == word.len() {
            ids.push(piece_id(&word[start..end]));
            start = end;
        }
    }
}

/// The rule tokenizer (see the module docs).
pub fn rule_encode(text: &str) -> Vec<u32> {
    let mut ids = Vec::with_capacity(text.len() / 4 + 1);
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            word_start.get_or_insert(i);
            continue;
        }
        if let Some(s) = word_start.take() {
            push_word(&mut ids, &text[s..i]);
        }
        if !c.is_whitespace() {
            ids.push(piece_id(&text[i..i + c.len_utf8()]));
        }
    }
    if let Some(s) = word_start {
        push_word(&mut ids, &text[s..]);
    }
    ids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_counts() {
        assert_eq!(rule_encode("").len(), 0);
        assert_eq!(rule_encode("hello").len(), 2); // hell + o
        assert_eq!(rule_encode("the cat, sat.").len(), 5);
        assert_eq!(rule_encode("abcd").len(), 1);
        assert_eq!(rule_encode("héllo wörld").len(), 4);
        // Equal prefixes give equal ids.
        let a = rule_encode("one two three four");
        let b = rule_encode("one two three five");
        assert_eq!(a[..3], b[..3]);
        assert!(a
            .iter()
            .all(|&id| (RULE_ID_BASE..RULE_ID_BASE + RULE_VOCAB).contains(&id)));
    }

    #[test]
    fn chat_template() {
        let t = render_chat([("user", "hi")]);
        assert_eq!(t, "<|user|>\nhi\n<|assistant|>\n");
        let n = Tokenizer::Rule.encode_chat([("user", "hi")]).unwrap().len();
        // < | user | > hi < | assi stan t | >
        assert_eq!(n, 13);
    }

    #[test]
    fn hf_tokenizer_from_file_dir_and_cache() {
        // A tiny word-level tokenizer.json, the format the `tokenizers` crate reads.
        let json = r#"{
          "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
          "normalizer": null,
          "pre_tokenizer": {"type": "Whitespace"},
          "post_processor": null, "decoder": null,
          "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2}, "unk_token": "[UNK]"}
        }"#;
        let tmp = tempfile::tempdir().unwrap();
        let snap = tmp.path().join("hub/models--org--tiny/snapshots/abc");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::write(snap.join("tokenizer.json"), json).unwrap();
        let file = snap.join("tokenizer.json");
        let t = Tokenizer::from_spec(file.to_str().unwrap()).unwrap();
        assert_eq!(t.encode("hello world foo").unwrap(), vec![1, 2, 0]);
        let t = Tokenizer::from_spec(snap.to_str().unwrap()).unwrap();
        assert_eq!(t.encode("hello").unwrap(), vec![1]);
        assert_eq!(
            find_in_hub(&tmp.path().join("hub"), "org/tiny").as_deref(),
            Some(file.as_path())
        );
        assert!(matches!(
            Tokenizer::from_spec("no/such-model-anywhere"),
            Err(TokenizerError::NotFound(..))
        ));
    }
}
