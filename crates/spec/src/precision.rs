use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How the weights of the big linear layers are stored and multiplied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 16-bit weights and activations (bf16 or fp16).
    Bf16,
    /// fp8 e4m3 weights with per-tensor scales, fp8 tensor-core math.
    Fp8,
    /// fp8 e4m3 weights with 128x128 block scales (DeepSeek style).
    Fp8Block,
    /// NVIDIA fp4 (e2m1 + fp8 scale per 16 values), fp4 tensor-core math where the GPU has it.
    Nvfp4,
    /// OCP microscaling fp4 (e2m1 + e8m0 scale per 32 values), as shipped by gpt-oss.
    Mxfp4,
    /// 4-bit integer weights with 16-bit activations (weight-only, e.g. Kimi-K2 int4 QAT).
    Int4Wo,
}

/// The tensor-core data type the GEMMs run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ComputeDtype {
    Bf16,
    Fp8,
    Fp4,
}

/// The data type of the KV cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvDtype {
    Bf16,
    Fp8,
}

impl fmt::Display for KvDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KvDtype::Bf16 => "bf16",
            KvDtype::Fp8 => "fp8",
        })
    }
}

impl KvDtype {
    pub fn bytes(self) -> f64 {
        match self {
            KvDtype::Bf16 => 2.0,
            KvDtype::Fp8 => 1.0,
        }
    }
}

impl Precision {
    pub const ALL: [Precision; 6] = [
        Precision::Bf16,
        Precision::Fp8,
        Precision::Fp8Block,
        Precision::Nvfp4,
        Precision::Mxfp4,
        Precision::Int4Wo,
    ];

    /// Bytes per weight including the scale factors.
    pub fn weight_bytes(self) -> f64 {
        match self {
            Precision::Bf16 => 2.0,
            Precision::Fp8 => 1.0,
            // one fp32 scale per 128x128 block
            Precision::Fp8Block => 1.0 + 4.0 / (128.0 * 128.0),
            // 4 bits + one fp8 scale per 16 values
            Precision::Nvfp4 => 0.5 + 1.0 / 16.0,
            // 4 bits + one e8m0 scale per 32 values
            Precision::Mxfp4 => 0.5 + 1.0 / 32.0,
            // 4 bits + one bf16 scale per group of 32 values
            Precision::Int4Wo => 0.5 + 2.0 / 32.0,
        }
    }

    /// The math the GEMMs use on a GPU that supports every dtype.
    pub fn compute_dtype(self) -> ComputeDtype {
        match self {
            Precision::Bf16 | Precision::Int4Wo => ComputeDtype::Bf16,
            Precision::Fp8 | Precision::Fp8Block => ComputeDtype::Fp8,
            Precision::Nvfp4 | Precision::Mxfp4 => ComputeDtype::Fp4,
        }
    }

    /// The KV-cache dtype serving stacks pick by default for this precision:
    /// quantized checkpoints are served with an fp8 cache.
    pub fn default_kv_dtype(self) -> KvDtype {
        match self {
            Precision::Bf16 | Precision::Int4Wo => KvDtype::Bf16,
            _ => KvDtype::Fp8,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Bf16 => "bf16",
            Precision::Fp8 => "fp8",
            Precision::Fp8Block => "fp8_block",
            Precision::Nvfp4 => "nvfp4",
            Precision::Mxfp4 => "mxfp4",
            Precision::Int4Wo => "int4_wo",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("unknown precision '{0}': expected one of bf16, fp16, fp8, fp8_block, nvfp4 (fp4), mxfp4, int4 (int4_wo)")]
pub struct UnknownPrecision(pub String);

impl FromStr for Precision {
    type Err = UnknownPrecision;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bf16" | "fp16" | "bfloat16" | "float16" | "half" | "auto" => Ok(Precision::Bf16),
            "fp8" | "float8" | "fp8_e4m3" | "e4m3" | "w8a8_fp8" => Ok(Precision::Fp8),
            "fp8_block" | "fp8-block" | "fp8_blockwise" => Ok(Precision::Fp8Block),
            "nvfp4" | "fp4" | "w4a4_nvfp4" => Ok(Precision::Nvfp4),
            "mxfp4" | "w4a16_mxfp4" => Ok(Precision::Mxfp4),
            "int4" | "int4_wo" | "w4a16" | "int4_awq" | "awq" | "gptq" => Ok(Precision::Int4Wo),
            _ => Err(UnknownPrecision(s.to_string())),
        }
    }
}
