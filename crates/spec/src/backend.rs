use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The inference engine whose scheduler and kernels are being modelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Trtllm,
    Vllm,
    Sglang,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Trtllm, Backend::Vllm, Backend::Sglang];

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Trtllm => "trtllm",
            Backend::Vllm => "vllm",
            Backend::Sglang => "sglang",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("unknown backend '{0}': expected one of trtllm, vllm, sglang")]
pub struct UnknownBackend(pub String);

impl FromStr for Backend {
    type Err = UnknownBackend;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "trtllm" | "tensorrt-llm" | "tensorrt_llm" | "trt-llm" => Ok(Backend::Trtllm),
            "vllm" => Ok(Backend::Vllm),
            "sglang" => Ok(Backend::Sglang),
            _ => Err(UnknownBackend(s.to_string())),
        }
    }
}
