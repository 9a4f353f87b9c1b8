//! `slaprof calibrate silicon`: fit the performance model's efficiency
//! figures to measured serving data, and check how well they generalise to
//! models left out of the fit.
//!
//! The formulas stay fixed; only the per-backend efficiencies and overheads,
//! the per-generation scales and the benchmark length move. The search is a
//! coordinate descent in log space on a robust objective: the mean of the
//! per-row absolute percentage errors (capped so a few pathological
//! measurements cannot dominate), averaged between the whole data set and
//! its system × backend × mode partitions so that small partitions count.

use super::validate::read_rows;
use crate::resolve;
use anyhow::{bail, Context};
use perf_model::calibration::BackendCalibration;
use perf_model::predict::{predict, PredictOptions};
use perf_model::silicon::row_config;
use perf_model::Calibration;
use rayon::prelude::*;
use spec::{Backend, GpuSystem, ModelArch, ServingConfig, SiliconRow};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Fit on rows in the layout of AI Configurator's silicon_sample.csv.
    Silicon(SiliconArgs),
}

#[derive(clap::Args)]
pub struct SiliconArgs {
    /// The measured CSV.
    file: PathBuf,
    /// Where to write the fitted calibration JSON.
    #[arg(long)]
    out: PathBuf,
    /// Start from this calibration instead of the built-in one.
    #[arg(long)]
    from: Option<PathBuf>,
    /// Leave rows of this model out of the fit and report the error on them
    /// (repeatable): a check that the figures generalise.
    #[arg(long = "hold-out")]
    hold_out: Vec<String>,
    /// Fit only on rows that describe their whole deployment: leave out
    /// disaggregated rows without worker counts, whose sizing slaprof has
    /// to assume (they are still reported).
    #[arg(long = "complete-rows-only")]
    complete_rows_only: bool,
    /// Coordinate-descent sweeps.
    #[arg(long, default_value_t = 6)]
    sweeps: u32,
    /// Extra folders of `ORG--NAME.json` model configs.
    #[arg(long = "model-configs")]
    model_configs: Vec<PathBuf>,
}

struct Prepared {
    row: SiliconRow,
    model: ModelArch,
    system: GpuSystem,
    cfg: ServingConfig,
    partition: String,
    backend: Backend,
    generation: String,
}

/// Per-row APE cap (percent): beyond this a measurement is more likely a
/// broken run than something the model should bend towards.
const APE_CAP: f64 = 300.0;

fn row_errors(p: &Prepared, cal: &Calibration) -> Option<(f64, f64)> {
    let pred = predict(
        &p.model,
        &p.system,
        &p.cfg,
        cal,
        &PredictOptions::benchmark(cal),
    )
    .ok()?;
    let ape = |pred: f64, meas: Option<f64>| match meas.filter(|m| *m > 0.0) {
        Some(m) if pred.is_finite() => (100.0 * (pred - m).abs() / m).min(APE_CAP),
        _ => f64::NAN,
    };
    Some((
        ape(pred.ttft_ms, p.row.silicon_ttft_ms),
        ape(pred.tpot_ms, p.row.silicon_tpot_ms),
    ))
}

/// Mean APE overall and per partition, blended; rows that fail count as the cap.
fn objective(rows: &[&Prepared], cal: &Calibration) -> (f64, f64, f64) {
    let errs: Vec<(String, f64, f64)> = rows
        .par_iter()
        .map(|p| {
            let (t, o) = row_errors(p, cal).unwrap_or((APE_CAP, APE_CAP));
            (p.partition.clone(), t, o)
        })
        .collect();
    let mut parts: BTreeMap<&str, (f64, f64, f64, f64)> = BTreeMap::new();
    let (mut st, mut nt, mut so, mut no) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for (part, t, o) in &errs {
        let e = parts.entry(part.as_str()).or_default();
        if t.is_finite() {
            st += t;
            nt += 1.0;
            e.0 += t;
            e.1 += 1.0;
        }
        if o.is_finite() {
            so += o;
            no += 1.0;
            e.2 += o;
            e.3 += 1.0;
        }
    }
    let ttft = st / nt.max(1.0);
    let tpot = so / no.max(1.0);
    let mut part_sum = 0.0;
    let mut part_n = 0.0;
    for (_, (a, b, c, d)) in parts {
        if b + d >= 20.0 {
            part_sum +=
                (a / b.max(1.0)).max(c / d.max(1.0)) + 0.5 * (a / b.max(1.0) + c / d.max(1.0));
            part_n += 1.0;
        }
    }
    let part_mean = if part_n > 0.0 {
        part_sum / part_n / 2.0
    } else {
        0.0
    };
    (0.5 * (ttft + tpot) / 2.0 + 0.5 * part_mean, ttft, tpot)
}

/// The knobs the search may turn: a name, which rows it touches, and a
/// reference into the calibration. Fractions stay in (0, 1].
#[derive(Clone, Copy)]
enum Knob {
    Backend(Backend, &'static str),
    Generation(&'static str, bool),
    Rounds,
    Jitter,
}

const BACKEND_FIELDS: [&str; 18] = [
    "gemm_eff",
    "fp4_gemm_eff",
    "gemm_m_pad",
    "mem_eff",
    "moe_eff",
    "attn_eff",
    "decode_attn_eff",
    "comm_eff",
    "comm_latency_us",
    "scaleout_latency_us",
    "step_overhead_ms",
    "layer_overhead_us",
    "graph_layer_overhead_us",
    "seq_overhead_us",
    "disagg_ttft_overhead_ms",
    "ttft_overhead_ms",
    "moe_layer_overhead_us",
    "graph_moe_layer_overhead_us",
];

fn field<'a>(b: &'a mut BackendCalibration, name: &str) -> (&'a mut f64, bool) {
    match name {
        "gemm_eff" => (&mut b.gemm_eff, true),
        "fp4_gemm_eff" => (&mut b.fp4_gemm_eff, true),
        "gemm_m_pad" => (&mut b.gemm_m_pad, false),
        "mem_eff" => (&mut b.mem_eff, true),
        "moe_eff" => (&mut b.moe_eff, true),
        "attn_eff" => (&mut b.attn_eff, true),
        "decode_attn_eff" => (&mut b.decode_attn_eff, true),
        "comm_eff" => (&mut b.comm_eff, true),
        "comm_latency_us" => (&mut b.comm_latency_us, false),
        "scaleout_latency_us" => (&mut b.scaleout_latency_us, false),
        "step_overhead_ms" => (&mut b.step_overhead_ms, false),
        "layer_overhead_us" => (&mut b.layer_overhead_us, false),
        "graph_layer_overhead_us" => (&mut b.graph_layer_overhead_us, false),
        "seq_overhead_us" => (&mut b.seq_overhead_us, false),
        "ttft_overhead_ms" => (&mut b.ttft_overhead_ms, false),
        "moe_layer_overhead_us" => (&mut b.moe_layer_overhead_us, false),
        "graph_moe_layer_overhead_us" => (&mut b.graph_moe_layer_overhead_us, false),
        _ => (&mut b.disagg_ttft_overhead_ms, false),
    }
}

fn apply(cal: &Calibration, knob: Knob, factor: f64) -> Calibration {
    let mut c = cal.clone();
    let (v, fraction) = match knob {
        Knob::Backend(b, name) => field(c.backend_mut(b), name),
        Knob::Generation(g, compute) => {
            let gen = match g {
                "blackwell" => &mut c.blackwell,
                "blackwell_ultra" => &mut c.blackwell_ultra,
                _ => &mut c.hopper,
            };
            if compute {
                (&mut gen.compute_scale, false)
            } else {
                (&mut gen.memory_scale, false)
            }
        }
        Knob::Rounds => (&mut c.benchmark_rounds, false),
        Knob::Jitter => (&mut c.benchmark_length_jitter, false),
    };
    *v = (*v * factor).max(1e-3);
    if fraction {
        *v = v.min(1.0);
    }
    c.benchmark_length_jitter = c.benchmark_length_jitter.min(0.9);
    c.benchmark_rounds = c.benchmark_rounds.max(1.0);
    c
}

fn knob_name(k: Knob) -> String {
    match k {
        Knob::Backend(b, n) => format!("{b}.{n}"),
        Knob::Generation(g, c) => {
            format!("{g}.{}", if c { "compute_scale" } else { "memory_scale" })
        }
        Knob::Rounds => "benchmark_rounds".into(),
        Knob::Jitter => "benchmark_length_jitter".into(),
    }
}

fn touches(k: Knob, p: &Prepared) -> bool {
    match k {
        Knob::Backend(b, _) => p.backend == b,
        Knob::Generation(g, _) => p.generation == g,
        Knob::Rounds | Knob::Jitter => true,
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let What::Silicon(a) = args.what;
    let mut cal = resolve::load_calibration(a.from.as_deref())?;
    let rows = read_rows(&a.file)?;
    let mut models: HashMap<String, Option<ModelArch>> = HashMap::new();
    let mut prepared = Vec::new();
    for row in rows {
        let model = models
            .entry(row.model_path.clone())
            .or_insert_with(|| resolve::resolve_model(&row.model_path, &a.model_configs).ok())
            .clone();
        let (Some(model), Ok(system), Ok(cfg)) = (
            model,
            resolve::resolve_system(&row.system, &[]),
            row_config(&row),
        ) else {
            continue;
        };
        let partition = format!("{}/{}/{}", row.system, row.backend, row.mode);
        prepared.push(Prepared {
            backend: cfg.backend,
            generation: system.generation.clone(),
            row,
            model,
            system,
            cfg,
            partition,
        });
    }
    let held_out = |p: &Prepared| {
        a.hold_out
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&p.row.model_path))
    };
    let incomplete = |p: &Prepared| {
        p.row.mode.trim() == "disagg"
            && (p.row.prefill_num_workers.is_none() || p.row.decode_num_workers.is_none())
    };
    let fit: Vec<&Prepared> = prepared
        .iter()
        .filter(|p| !(held_out(p) || a.complete_rows_only && incomplete(p)))
        .collect();
    let test: Vec<&Prepared> = prepared.iter().filter(|p| held_out(p)).collect();
    if fit.is_empty() {
        bail!("no rows left to fit on");
    }
    let mut knobs: Vec<Knob> = Vec::new();
    for b in Backend::ALL {
        for f in BACKEND_FIELDS.iter() {
            knobs.push(Knob::Backend(b, f));
        }
    }
    for g in ["blackwell", "blackwell_ultra"] {
        knobs.push(Knob::Generation(g, true));
        knobs.push(Knob::Generation(g, false));
    }
    knobs.push(Knob::Rounds);
    knobs.push(Knob::Jitter);
    // A multiplicative search cannot leave zero.
    cal.benchmark_length_jitter = cal.benchmark_length_jitter.max(0.02);
    for b in Backend::ALL {
        let k = cal.backend_mut(b);
        k.ttft_overhead_ms = k.ttft_overhead_ms.max(1.0);
        k.moe_layer_overhead_us = k.moe_layer_overhead_us.max(1.0);
        k.graph_moe_layer_overhead_us = k.graph_moe_layer_overhead_us.max(1.0);
    }

    let (start, mut ttft, mut tpot) = objective(&fit, &cal);
    eprintln!(
        "start: objective {start:.2} (TTFT MAPE {ttft:.1}%, TPOT MAPE {tpot:.1}%) on {} rows",
        fit.len()
    );
    let mut step: HashMap<String, f64> = knobs.iter().map(|k| (knob_name(*k), 1.5)).collect();
    for sweep in 0..a.sweeps {
        let mut improved = 0;
        for &k in &knobs {
            let name = knob_name(k);
            let s = step[&name];
            if s < 1.02 {
                continue;
            }
            let subset: Vec<&Prepared> = fit.iter().copied().filter(|p| touches(k, p)).collect();
            if subset.is_empty() {
                continue;
            }
            // Compare on the rows the knob touches: the rest cannot change.
            let base = objective(&subset, &cal).0;
            let mut accepted = false;
            for f in [s, 1.0 / s] {
                let c = apply(&cal, k, f);
                let v = objective(&subset, &c).0;
                if v < base - 1e-3 {
                    cal = c;
                    accepted = true;
                    improved += 1;
                    step.insert(name.clone(), (s * 1.2).min(3.0));
                    break;
                }
            }
            if !accepted {
                step.insert(name.clone(), s.sqrt());
            }
        }
        let (v, t, o) = objective(&fit, &cal);
        (ttft, tpot) = (t, o);
        eprintln!(
            "sweep {}: objective {v:.2} (TTFT MAPE {t:.1}%, TPOT MAPE {o:.1}%), {improved} moves",
            sweep + 1
        );
        // A checkpoint per sweep: long fits can be stopped and still used.
        write_calibration(&a.out, &cal, &a.file)?;
        if improved == 0 {
            break;
        }
    }
    if !test.is_empty() {
        let (_, t, o) = objective(&test, &cal);
        println!(
            "held-out models ({} rows): TTFT MAPE {t:.1}%, TPOT MAPE {o:.1}%",
            test.len()
        );
    }
    if a.sweeps == 0 {
        write_calibration(&a.out, &cal, &a.file)?;
    }
    println!(
        "fitted rows ({}): TTFT MAPE {ttft:.1}%, TPOT MAPE {tpot:.1}% (APE capped at {APE_CAP}%)",
        fit.len()
    );
    println!("wrote {}", a.out.display());
    Ok(ExitCode::SUCCESS)
}

fn write_calibration(
    path: &std::path::Path,
    cal: &Calibration,
    source: &std::path::Path,
) -> anyhow::Result<()> {
    let mut c = cal.clone();
    c.source = format!(
        "fitted by `slaprof calibrate silicon` on {}",
        source
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let text = serde_json::to_string_pretty(&c)? + "\n";
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    // Written beside the destination and renamed into place; the guard
    // deletes it on failure, so no half-written calibration is left.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}
