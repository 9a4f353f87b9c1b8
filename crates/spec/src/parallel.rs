//! Parallel layouts of one engine (one worker).

use serde::{Deserialize, Serialize};
use std::fmt;

/// How one engine spreads a model over its GPUs, in the convention of
/// NVIDIA's AI Configurator: `tp` is the tensor-parallel size of the
/// attention block inside one attention data-parallel rank, `dp` the number
/// of such ranks, and the MoE layers use all `tp * dp` GPUs of a pipeline
/// stage split as `moe_tp * moe_ep`. GPUs per engine = `tp * dp * pp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParallelLayout {
    pub tp: u32,
    pub pp: u32,
    /// Attention data-parallel size (DP attention); 1 when off.
    pub dp: u32,
    pub moe_tp: u32,
    pub moe_ep: u32,
}

impl Default for ParallelLayout {
    fn default() -> Self {
        ParallelLayout::tp(1)
    }
}

impl ParallelLayout {
    /// Plain tensor parallelism over `n` GPUs; MoE layers sharded by TP too.
    pub fn tp(n: u32) -> Self {
        ParallelLayout {
            tp: n,
            pp: 1,
            dp: 1,
            moe_tp: n,
            moe_ep: 1,
        }
    }

    /// Tensor-parallel attention, expert-parallel MoE (TEP) over `n` GPUs.
    pub fn tep(n: u32) -> Self {
        ParallelLayout {
            tp: n,
            pp: 1,
            dp: 1,
            moe_tp: 1,
            moe_ep: n,
        }
    }

    /// Data-parallel attention, expert-parallel MoE (DEP) over `n` GPUs.
    pub fn dep(n: u32) -> Self {
        ParallelLayout {
            tp: 1,
            pp: 1,
            dp: n,
            moe_tp: 1,
            moe_ep: n,
        }
    }

    /// GPUs used by one engine.
    pub fn num_gpus(&self) -> u32 {
        self.tp * self.dp * self.pp
    }

    /// GPUs of one pipeline stage (the group MoE and dense layers span).
    pub fn stage_gpus(&self) -> u32 {
        self.tp * self.dp
    }

    /// The short name the profiler reports: TP, TEP or DEP.
    pub fn mapping_name(&self) -> &'static str {
        if self.dp > 1 {
            "DEP"
        } else if self.moe_ep > 1 {
            "TEP"
        } else {
            "TP"
        }
    }

    /// Checks that the sizes are consistent among themselves.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("tp", self.tp),
            ("pp", self.pp),
            ("dp", self.dp),
            ("moe_tp", self.moe_tp),
            ("moe_ep", self.moe_ep),
        ] {
            if v == 0 {
                return Err(format!("{name} must be at least 1, got 0"));
            }
        }
        if self.moe_tp * self.moe_ep != self.tp * self.dp {
            return Err(format!(
                "moe_tp {} x moe_ep {} must equal tp {} x dp {} (the GPUs of one pipeline stage)",
                self.moe_tp, self.moe_ep, self.tp, self.dp
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ParallelLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.mapping_name(), self.stage_gpus())?;
        if self.dp > 1 && self.tp > 1 {
            write!(f, "(attn tp{} dp{})", self.tp, self.dp)?;
        }
        if self.moe_ep > 1 && self.moe_tp > 1 {
            write!(f, "(moe tp{} ep{})", self.moe_tp, self.moe_ep)?;
        }
        if self.pp > 1 {
            write!(f, "-pp{}", self.pp)?;
        }
        Ok(())
    }
}
