//! Parallel layouts of one engine (one worker).

use serde::{Deserialize, Serialize};
use std::fmt;

/// How one engine spreads a model over its GPUs. GPUs = tp * pp for the
/// attention part, where `dp` (attention data parallel) splits the tp group
/// into independent attention replicas; MoE layers use `moe_tp * moe_ep` GPUs.
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
    /// Plain tensor parallelism; MoE layers sharded by tensor parallelism too.
    pub fn tp(tp: u32) -> Self {
        ParallelLayout {
            tp,
            pp: 1,
            dp: 1,
            moe_tp: tp,
            moe_ep: 1,
        }
    }

    /// Tensor-parallel attention, expert-parallel MoE (TEP).
    pub fn tep(n: u32) -> Self {
        ParallelLayout {
            tp: n,
            pp: 1,
            dp: 1,
            moe_tp: 1,
            moe_ep: n,
        }
    }

    /// Data-parallel attention, expert-parallel MoE (DEP).
    pub fn dep(n: u32) -> Self {
        ParallelLayout {
            tp: n,
            pp: 1,
            dp: n,
            moe_tp: 1,
            moe_ep: n,
        }
    }

    /// GPUs used by one engine.
    pub fn num_gpus(&self) -> u32 {
        self.tp * self.pp
    }

    /// Tensor-parallel degree of the attention block (each DP rank holds tp/dp).
    pub fn attn_tp(&self) -> u32 {
        (self.tp / self.dp.max(1)).max(1)
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
        if self.tp % self.dp != 0 {
            return Err(format!(
                "attention dp {} must divide tp {}",
                self.dp, self.tp
            ));
        }
        if self.moe_tp * self.moe_ep != self.tp {
            return Err(format!(
                "moe_tp {} x moe_ep {} must equal tp {}",
                self.moe_tp, self.moe_ep, self.tp
            ));
        }
        Ok(())
    }
}

impl fmt::Display for ParallelLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.mapping_name(), self.tp)?;
        if self.pp > 1 {
            write!(f, "-pp{}", self.pp)?;
        }
        if self.moe_ep > 1 && self.moe_tp > 1 {
            write!(f, "(moe tp{} ep{})", self.moe_tp, self.moe_ep)?;
        }
        Ok(())
    }
}
