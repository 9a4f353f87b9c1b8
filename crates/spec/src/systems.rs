//! The built-in GPU systems, with published datasheet figures.
//!
//! Conventions (the [`GpuSystem`] fields document the units):
//! - Tensor-core rates are dense (NVIDIA datasheets quote fp8/fp4 and, for
//!   Blackwell, bf16 "with sparsity"; those are halved here).
//! - `hbm_gib` is the capacity the driver reports (`nvidia-smi` total MiB /
//!   1024), not the marketed GB, because that is what a serving engine can
//!   allocate from. Where no `nvidia-smi` figure was at hand the value is
//!   scaled from the marketed size like its sibling part, marked "estimate".
//! - Bandwidths are per GPU per direction: NVLink 4 is 900 GB/s bidirectional
//!   (450 each way), NVLink 5 1.8 TB/s (900 each way).
//!
//! Sources:
//! - H100 SXM: "NVIDIA H100 Tensor Core GPU" datasheet (SXM column):
//!   989 TFLOPS bf16 / 1979 fp8 dense, 3.35 TB/s, NVLink 900 GB/s; 132 SMs
//!   ("NVIDIA H100 Tensor Core GPU Architecture" whitepaper); nvidia-smi 81559 MiB.
//! - H200 SXM: "NVIDIA H200 Tensor Core GPU" datasheet: same compute as H100
//!   SXM, 141 GB at 4.8 TB/s; nvidia-smi 143771 MiB.
//! - B200: "NVIDIA HGX B200" / DGX B200 datasheets, per GPU = HGX figure / 8:
//!   bf16 2.25, fp8 4.5, fp4 9 PFLOPS dense, 8 TB/s, NVLink 5 1.8 TB/s; 148 SMs
//!   (CUDA device query); nvidia-smi 183359 MiB. DGX B200 has one ConnectX-7
//!   400 Gb/s NIC per GPU (50 GB/s).
//! - B300: "NVIDIA HGX B300" datasheet: bf16 2.25, fp8 4.5, fp4 13.5 PFLOPS
//!   dense per GPU, 288 GB HBM3e at 8 TB/s, ConnectX-8 800 Gb/s (100 GB/s);
//!   160 SMs per "Inside NVIDIA Blackwell Ultra" (NVIDIA technical blog).
//!   268 GiB is an estimate (B200's driver-visible share of its 192 GB).
//! - GB200: "NVIDIA GB200 NVL72" datasheet / 72: bf16 2.5, fp8 5, fp4 10
//!   PFLOPS dense, 186 GB at 8 TB/s, NVLink 5 across 72 GPUs, 4 GPUs per
//!   compute tray, ConnectX-7 400 Gb/s per GPU; nvidia-smi 189471 MiB.
//! - GB300: "NVIDIA GB300 NVL72" datasheet / 72: bf16 2.5, fp8 5, fp4 15
//!   PFLOPS dense, 279 GB at 8 TB/s, ConnectX-8 800 Gb/s per GPU; 160 SMs
//!   (Blackwell Ultra blog); 277 GiB is an estimate.
//! - A100 SXM 80GB: "NVIDIA A100 Tensor Core GPU" datasheet: 312 TFLOPS bf16
//!   dense, 2.039 TB/s, NVLink 3 600 GB/s; 108 SMs (Ampere whitepaper);
//!   nvidia-smi 81920 MiB. DGX A100 has one 200 Gb/s HDR NIC per GPU (25 GB/s).
//! - L40S: "NVIDIA L40S" datasheet: 362 TFLOPS bf16, 733 fp8 dense, 48 GB
//!   GDDR6 at 864 GB/s, PCIe Gen4 x16 (32 GB/s each way), no NVLink; 142 SMs
//!   (Ada whitepaper, AD102); nvidia-smi 46068 MiB. 25 GB/s assumes a
//!   200 Gb/s NIC per GPU.

use crate::fuzzy;
use crate::system::GpuSystem;
use std::sync::OnceLock;

#[allow(clippy::too_many_arguments)]
fn sys(
    name: &str,
    description: &str,
    generation: &str,
    [bf16, fp8, fp4]: [f64; 3],
    hbm_gib: f64,
    hbm_tbps: f64,
    [nvlink_gbps, scaleout_gbps]: [f64; 2],
    [gpus_per_node, nvlink_domain, sm_count]: [u32; 3],
) -> GpuSystem {
    GpuSystem {
        name: name.into(),
        description: description.into(),
        generation: generation.into(),
        bf16_tflops: bf16,
        fp8_tflops: fp8,
        fp4_tflops: fp4,
        hbm_gib,
        hbm_tbps,
        nvlink_gbps,
        scaleout_gbps,
        gpus_per_node,
        nvlink_domain,
        sm_count,
    }
}

#[rustfmt::skip]
fn builtin() -> Vec<GpuSystem> {
    vec![
        sys("h100_sxm", "NVIDIA H100 SXM 80GB (HGX H100)", "hopper",
            [989.0, 1979.0, 0.0], 79.6, 3.35, [450.0, 50.0], [8, 8, 132]),
        sys("h200_sxm", "NVIDIA H200 SXM 141GB (HGX H200)", "hopper",
            [989.0, 1979.0, 0.0], 140.4, 4.8, [450.0, 50.0], [8, 8, 132]),
        sys("b200_sxm", "NVIDIA B200 SXM 180GB (HGX B200)", "blackwell",
            [2250.0, 4500.0, 9000.0], 179.1, 8.0, [900.0, 50.0], [8, 8, 148]),
        sys("b300_sxm", "NVIDIA B300 SXM 288GB (HGX B300)", "blackwell_ultra",
            [2250.0, 4500.0, 13500.0], 268.0, 8.0, [900.0, 100.0], [8, 8, 160]),
        sys("gb200", "NVIDIA GB200 NVL72 (186GB per GPU)", "blackwell",
            [2500.0, 5000.0, 10000.0], 185.0, 8.0, [900.0, 50.0], [4, 72, 148]),
        sys("gb300", "NVIDIA GB300 NVL72 (279GB per GPU)", "blackwell_ultra",
            [2500.0, 5000.0, 15000.0], 277.0, 8.0, [900.0, 100.0], [4, 72, 160]),
        sys("a100_sxm", "NVIDIA A100 SXM 80GB (HGX A100)", "ampere",
            [312.0, 0.0, 0.0], 80.0, 2.039, [300.0, 25.0], [8, 8, 108]),
        sys("l40s", "NVIDIA L40S 48GB PCIe", "ada",
            [362.0, 733.0, 0.0], 45.0, 0.864, [32.0, 25.0], [8, 1, 142]),
    ]
}

/// Other spellings users type for the built-in systems.
const ALIASES: &[(&str, &str)] = &[
    ("h100", "h100_sxm"),
    ("h100_sxm5", "h100_sxm"),
    ("h100_80gb", "h100_sxm"),
    ("hgx_h100", "h100_sxm"),
    ("dgx_h100", "h100_sxm"),
    ("h200", "h200_sxm"),
    ("hgx_h200", "h200_sxm"),
    ("dgx_h200", "h200_sxm"),
    ("b200", "b200_sxm"),
    ("hgx_b200", "b200_sxm"),
    ("dgx_b200", "b200_sxm"),
    ("b300", "b300_sxm"),
    ("hgx_b300", "b300_sxm"),
    ("dgx_b300", "b300_sxm"),
    ("gb200_sxm", "gb200"),
    ("gb200_nvl72", "gb200"),
    ("gb200_nvl", "gb200"),
    ("gb300_sxm", "gb300"),
    ("gb300_nvl72", "gb300"),
    ("a100", "a100_sxm"),
    ("a100_80gb", "a100_sxm"),
    ("a100_sxm4", "a100_sxm"),
    ("a100_sxm_80gb", "a100_sxm"),
    ("l40s_pcie", "l40s"),
    ("l40s_48gb", "l40s"),
];

/// Every built-in system, in table order.
pub fn all() -> &'static [GpuSystem] {
    static ALL: OnceLock<Vec<GpuSystem>> = OnceLock::new();
    ALL.get_or_init(builtin)
}

/// Lower case, `-`/space as `_`, without a leading `nvidia_`.
fn normalize(name: &str) -> String {
    let n: String = name
        .trim()
        .chars()
        .map(|c| match c {
            '-' | ' ' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    n.strip_prefix("nvidia_").map(str::to_string).unwrap_or(n)
}

/// A built-in system by name or alias, case-insensitively (`H200`,
/// `h200_sxm`, `gb200_nvl72`, `nvidia-b200`).
pub fn find(name: &str) -> Option<GpuSystem> {
    let n = normalize(name);
    let canonical = ALIASES
        .iter()
        .find(|(alias, _)| *alias == n)
        .map_or(n.as_str(), |(_, c)| c);
    all().iter().find(|s| s.name == canonical).cloned()
}

/// A system by name: a user-defined one from `extra` first (so a file can
/// override a built-in), then the built-ins with their aliases.
pub fn find_in(name: &str, extra: &[GpuSystem]) -> Option<GpuSystem> {
    let n = normalize(name);
    extra
        .iter()
        .rev() // the last definition of a name wins, as in a config overlay
        .find(|s| normalize(&s.name) == n)
        .cloned()
        .or_else(|| find(name))
}

/// The built-in system name closest to `name`, for "did you mean" hints.
pub fn suggest(name: &str) -> Option<String> {
    suggest_with(name, &[])
}

/// Like [`suggest`], also considering `extra` (user-defined) systems.
pub fn suggest_with(name: &str, extra: &[GpuSystem]) -> Option<String> {
    let n = normalize(name);
    let user = extra
        .iter()
        .map(|s| (s.name.as_str(), vec![normalize(&s.name)]));
    let builtin = all().iter().map(|s| {
        let mut keys = vec![s.name.clone()];
        keys.extend(
            ALIASES
                .iter()
                .filter(|(_, c)| *c == s.name)
                .map(|(a, _)| a.to_string()),
        );
        (s.name.as_str(), keys)
    });
    fuzzy::nearest(&n, user.chain(builtin))
}

/// A system figure that cannot be right.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("GPU system '{system}': {field} {problem}")]
pub struct InvalidSystem {
    pub system: String,
    pub field: &'static str,
    pub problem: String,
}

/// Checks a (typically user-supplied) system for values that would make the
/// performance model divide by zero or go negative.
pub fn check(s: &GpuSystem) -> Result<(), InvalidSystem> {
    let err = |field, problem: String| InvalidSystem {
        system: s.name.clone(),
        field,
        problem,
    };
    if s.name.trim().is_empty() {
        return Err(err("name", "must not be empty".into()));
    }
    for (field, v) in [
        ("bf16_tflops", s.bf16_tflops),
        ("hbm_gib", s.hbm_gib),
        ("hbm_tbps", s.hbm_tbps),
        ("nvlink_gbps", s.nvlink_gbps),
        ("scaleout_gbps", s.scaleout_gbps),
    ] {
        if !(v.is_finite() && v > 0.0) {
            return Err(err(field, format!("must be a positive number, got {v}")));
        }
    }
    for (field, v) in [("fp8_tflops", s.fp8_tflops), ("fp4_tflops", s.fp4_tflops)] {
        if !(v.is_finite() && v >= 0.0) {
            return Err(err(
                field,
                format!("must be 0 (unsupported) or positive, got {v}"),
            ));
        }
    }
    for (field, v) in [
        ("gpus_per_node", s.gpus_per_node),
        ("nvlink_domain", s.nvlink_domain),
        ("sm_count", s.sm_count),
    ] {
        if v == 0 {
            return Err(err(field, "must be at least 1, got 0".into()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_unique() {
        let mut names: Vec<_> = all().iter().map(|s| s.name.as_str()).collect();
        for s in all() {
            check(s).unwrap();
            assert!(
                s.fp8_tflops == 0.0 || s.fp8_tflops >= s.bf16_tflops,
                "{}",
                s.name
            );
        }
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all().len());
        for (alias, canonical) in ALIASES {
            assert_eq!(
                find(alias).map(|s| s.name).as_deref(),
                Some(*canonical),
                "{alias}"
            );
        }
    }

    #[test]
    fn names_used_by_the_calibration_data_resolve() {
        for n in [
            "h100_sxm", "h200_sxm", "b200_sxm", "b300_sxm", "gb200", "gb300",
        ] {
            assert_eq!(find(n).unwrap().name, n);
        }
        assert_eq!(find("H200").unwrap().name, "h200_sxm");
        assert_eq!(find("NVIDIA-B200").unwrap().name, "b200_sxm");
        assert_eq!(find("GB200_SXM").unwrap().name, "gb200");
        assert!(find("tpu_v5p").is_none());
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("h20").as_deref(), Some("h200_sxm"));
        assert_eq!(suggest("gb2000").as_deref(), Some("gb200"));
        assert_eq!(suggest("completely-different"), None);
    }

    #[test]
    fn user_systems_take_precedence() {
        let mut mine = find("h100").unwrap();
        mine.hbm_gib = 94.0;
        let extra = vec![mine];
        assert_eq!(find_in("H100-SXM", &extra).unwrap().hbm_gib, 94.0);
        assert_eq!(find_in("h200", &extra).unwrap().name, "h200_sxm");
        let mut odd = find("h100").unwrap();
        odd.name = "my_cluster_gpu".into();
        assert_eq!(
            suggest_with("my_clster_gpu", &[odd]).as_deref(),
            Some("my_cluster_gpu")
        );
    }

    #[test]
    fn check_rejects_nonsense() {
        let mut s = find("h100").unwrap();
        s.hbm_tbps = 0.0;
        assert_eq!(check(&s).unwrap_err().field, "hbm_tbps");
        let mut s = find("h100").unwrap();
        s.sm_count = 0;
        assert!(check(&s).unwrap_err().to_string().contains("sm_count"));
    }
}
