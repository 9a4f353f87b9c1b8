//! `slaprof systems`: the built-in GPU systems plus any defined in YAML files.

use super::models::{render_table, write_stdout};
use crate::resolve::{load_systems_files, resolve_system};
use spec::{systems, GpuSystem};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Show only these systems (names or aliases such as h200, gb200_nvl72).
    #[arg(value_name = "SYSTEM")]
    systems: Vec<String>,

    /// YAML file defining more GPU systems (repeatable): one system mapping, a
    /// list of them, or `systems:` with a list. Fields are those of
    /// `slaprof systems --json`; a system named like a built-in replaces it.
    #[arg(long = "systems-file", value_name = "FILE")]
    systems_files: Vec<PathBuf>,

    /// Print JSON instead of a table (loadable again with --systems-file).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let user = load_systems_files(&args.systems_files)?;
    let shown: Vec<(GpuSystem, &str)> = if args.systems.is_empty() {
        // User definitions replace built-ins of the same name.
        let overridden = |s: &GpuSystem| user.iter().any(|u| u.name.eq_ignore_ascii_case(&s.name));
        systems::all()
            .iter()
            .filter(|s| !overridden(s))
            .map(|s| (s.clone(), "builtin"))
            .chain(user.iter().map(|s| (s.clone(), "file")))
            .collect()
    } else {
        args.systems
            .iter()
            .map(|n| {
                let s = resolve_system(n, &user)?;
                let from_file = user.iter().any(|u| u.name == s.name);
                Ok((s, if from_file { "file" } else { "builtin" }))
            })
            .collect::<anyhow::Result<_>>()?
    };

    let out = if args.json {
        let list: Vec<&GpuSystem> = shown.iter().map(|(s, _)| s).collect();
        serde_json::to_string_pretty(&list)? + "\n"
    } else {
        systems_table(&shown)
    };
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn systems_table(list: &[(GpuSystem, &str)]) -> String {
    let headers = [
        "NAME",
        "GENERATION",
        "BF16_TFLOPS",
        "FP8_TFLOPS",
        "FP4_TFLOPS",
        "HBM_GIB",
        "HBM_TB/S",
        "NVLINK_GB/S",
        "SCALEOUT_GB/S",
        "GPUS/NODE",
        "NVLINK_DOMAIN",
        "SMS",
        "SOURCE",
    ];
    let rate = |v: f64| {
        if v > 0.0 {
            format!("{v:.0}")
        } else {
            "-".into()
        }
    };
    let rows = list
        .iter()
        .map(|(s, source)| {
            vec![
                s.name.clone(),
                s.generation.clone(),
                rate(s.bf16_tflops),
                rate(s.fp8_tflops),
                rate(s.fp4_tflops),
                format!("{:.1}", s.hbm_gib),
                format!("{:.2}", s.hbm_tbps),
                format!("{:.0}", s.nvlink_gbps),
                format!("{:.0}", s.scaleout_gbps),
                s.gpus_per_node.to_string(),
                s.nvlink_domain.to_string(),
                s.sm_count.to_string(),
                source.to_string(),
            ]
        })
        .collect();
    let mut numeric = [true; 13];
    numeric[0] = false;
    numeric[1] = false;
    numeric[12] = false;
    render_table(&headers, rows, &numeric)
}
