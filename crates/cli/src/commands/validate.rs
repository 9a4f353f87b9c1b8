//! `slaprof validate silicon`: predict every row of a measured-serving CSV
//! and report how far the predictions land from the measurements.

use crate::resolve;
use anyhow::{bail, Context};
use perf_model::predict::{predict, PredictOptions};
use perf_model::silicon::row_config;
use perf_model::Calibration;
use rayon::prelude::*;
use spec::{GpuSystem, ModelArch, SiliconRow};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Rows in the layout of AI Configurator's silicon_sample.csv.
    Silicon(SiliconArgs),
}

#[derive(clap::Args)]
pub struct SiliconArgs {
    /// The measured CSV.
    file: PathBuf,
    /// Where to write `id,ttft_ms,tpot_ms,error`.
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    sources: super::Sources,
    /// Print the summary as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

/// One row's outcome.
pub struct RowResult {
    pub row: SiliconRow,
    pub prediction: Result<(f64, f64), String>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.what {
        What::Silicon(a) => silicon(a),
    }
}

/// Reads a silicon CSV, refusing files that lack the columns we need.
pub fn read_rows(path: &Path) -> anyhow::Result<Vec<SiliconRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("{} has no header line", path.display()))?
        .clone();
    for required in [
        "id",
        "backend",
        "model_path",
        "system",
        "mode",
        "isl",
        "osl",
    ] {
        if !headers.iter().any(|h| h == required) {
            bail!(
                "{} is not a silicon CSV: column '{required}' is missing (expected the columns of AI Configurator's silicon_sample.csv)",
                path.display()
            );
        }
    }
    let mut rows = Vec::new();
    for (i, rec) in reader.deserialize::<SiliconRow>().enumerate() {
        let row =
            rec.with_context(|| format!("{}: line {} is malformed", path.display(), i + 2))?;
        rows.push(row);
    }
    Ok(rows)
}

/// Predicts every row; rows that cannot be predicted carry the reason.
pub fn predict_rows(
    rows: Vec<SiliconRow>,
    model_dirs: &[PathBuf],
    extra_systems: &[GpuSystem],
    cal: &Calibration,
) -> Vec<RowResult> {
    let mut models: HashMap<String, Result<ModelArch, String>> = HashMap::new();
    let mut systems: HashMap<String, Result<GpuSystem, String>> = HashMap::new();
    for r in &rows {
        models.entry(r.model_path.clone()).or_insert_with(|| {
            resolve::resolve_model(&r.model_path, model_dirs).map_err(|e| format!("{e:#}"))
        });
        systems.entry(r.system.clone()).or_insert_with(|| {
            resolve::resolve_system(&r.system, extra_systems).map_err(|e| format!("{e:#}"))
        });
    }
    let opts = PredictOptions::benchmark(cal);
    // Profiling aid: SLAPROF_ROW_TIMES=1 prints each row's prediction time on
    // stderr, to find the configurations the simulator spends its time on.
    let trace_row_times = std::env::var_os("SLAPROF_ROW_TIMES").is_some();
    rows.into_par_iter()
        .map(|row| {
            let t0 = std::time::Instant::now();
            let prediction = (|| {
                let model = models[&row.model_path].as_ref().map_err(|e| e.clone())?;
                let system = systems[&row.system].as_ref().map_err(|e| e.clone())?;
                let cfg = row_config(&row).map_err(|e| e.to_string())?;
                let p = predict(model, system, &cfg, cal, &opts).map_err(|e| e.to_string())?;
                Ok((p.ttft_ms, p.tpot_ms))
            })();
            if trace_row_times {
                eprintln!("ROWTIME {} {:.4}", row.id, t0.elapsed().as_secs_f64());
            }
            RowResult { row, prediction }
        })
        .collect()
}

/// Error statistics of one group of rows, in percent.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ErrorStats {
    pub rows: usize,
    pub predicted: usize,
    pub coverage_pct: f64,
    pub ttft_mape: f64,
    pub ttft_median_ape: f64,
    pub ttft_p90_ape: f64,
    pub tpot_mape: f64,
    pub tpot_median_ape: f64,
    pub tpot_p90_ape: f64,
}

/// Mean, median and p90 of the errors; NaN (printed as "-") when there are none.
fn ape_stats(mut apes: Vec<f64>) -> (f64, f64, f64) {
    if apes.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let d = perf_model::sim::Dist::from_samples(&mut apes);
    (d.mean, d.p50, d.p90)
}

pub fn error_stats<'a>(results: impl Iterator<Item = &'a RowResult>) -> ErrorStats {
    let mut rows = 0;
    let mut ttft = Vec::new();
    let mut tpot = Vec::new();
    let mut predicted = 0;
    for r in results {
        rows += 1;
        if let Ok((pt, pp)) = r.prediction {
            predicted += 1;
            if let Some(m) = r.row.silicon_ttft_ms.filter(|m| *m > 0.0) {
                ttft.push(100.0 * (pt - m).abs() / m);
            }
            if let Some(m) = r.row.silicon_tpot_ms.filter(|m| *m > 0.0) {
                tpot.push(100.0 * (pp - m).abs() / m);
            }
        }
    }
    let (ttft_mape, ttft_median_ape, ttft_p90_ape) = ape_stats(ttft);
    let (tpot_mape, tpot_median_ape, tpot_p90_ape) = ape_stats(tpot);
    ErrorStats {
        rows,
        predicted,
        coverage_pct: if rows == 0 {
            0.0
        } else {
            100.0 * predicted as f64 / rows as f64
        },
        ttft_mape,
        ttft_median_ape,
        ttft_p90_ape,
        tpot_mape,
        tpot_median_ape,
        tpot_p90_ape,
    }
}

/// Summary over all rows and per partition.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    pub overall: ErrorStats,
    pub by_system: BTreeMap<String, ErrorStats>,
    pub by_backend: BTreeMap<String, ErrorStats>,
    pub by_mode: BTreeMap<String, ErrorStats>,
    pub by_system_backend_mode: BTreeMap<String, ErrorStats>,
}

pub fn summarize(results: &[RowResult]) -> Summary {
    let group = |key: &dyn Fn(&SiliconRow) -> String| {
        let mut keys: Vec<String> = results.iter().map(|r| key(&r.row)).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|k| {
                let s = error_stats(results.iter().filter(|r| key(&r.row) == k));
                (k, s)
            })
            .collect::<BTreeMap<_, _>>()
    };
    Summary {
        overall: error_stats(results.iter()),
        by_system: group(&|r| r.system.clone()),
        by_backend: group(&|r| r.backend.clone()),
        by_mode: group(&|r| r.mode.clone()),
        by_system_backend_mode: group(&|r| format!("{}/{}/{}", r.system, r.backend, r.mode)),
    }
}

fn write_predictions(path: &Path, results: &[RowResult]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // A temporary file beside the destination: the final rename is atomic,
    // and on any failure the guard deletes it, so nothing half-written stays.
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    {
        let mut w = csv::Writer::from_writer(tmp.as_file_mut());
        w.write_record(["id", "ttft_ms", "tpot_ms", "error"])?;
        for r in results {
            match &r.prediction {
                Ok((t, p)) => w.write_record([
                    r.row.id.as_str(),
                    &format!("{t:.3}"),
                    &format!("{p:.4}"),
                    "",
                ])?,
                Err(e) => w.write_record([r.row.id.as_str(), "", "", e.as_str()])?,
            }
        }
        w.flush()?;
    }
    tmp.persist(path)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {}", path.display(), e.error))?;
    Ok(())
}

fn fmt_pct(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.1}")
    }
}

fn print_table(
    out: &mut impl Write,
    title: &str,
    groups: &BTreeMap<String, ErrorStats>,
) -> std::io::Result<()> {
    writeln!(out, "\n{title}")?;
    writeln!(
        out,
        "  {:<28} {:>5} {:>6}  {:>7} {:>7} {:>7}  {:>7} {:>7} {:>7}",
        "", "rows", "cov%", "TTFT", "med", "p90", "TPOT", "med", "p90"
    )?;
    for (k, s) in groups {
        writeln!(
            out,
            "  {:<28} {:>5} {:>6.1}  {:>7} {:>7} {:>7}  {:>7} {:>7} {:>7}",
            k,
            s.rows,
            s.coverage_pct,
            fmt_pct(s.ttft_mape),
            fmt_pct(s.ttft_median_ape),
            fmt_pct(s.ttft_p90_ape),
            fmt_pct(s.tpot_mape),
            fmt_pct(s.tpot_median_ape),
            fmt_pct(s.tpot_p90_ape)
        )?;
    }
    Ok(())
}

fn silicon(a: SiliconArgs) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let extra_systems = a.sources.systems()?;
    let rows = read_rows(&a.file)?;
    if rows.is_empty() {
        bail!("{} has a header but no rows", a.file.display());
    }
    let cal = a.sources.calibration()?;
    let results = predict_rows(rows, &a.sources.model_configs, &extra_systems, &cal);
    if let Some(out) = &a.out {
        write_predictions(out, &results)?;
    }
    let summary = summarize(&results);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &summary)?;
        writeln!(out)?;
    } else {
        let mut overall = BTreeMap::new();
        overall.insert("all rows".to_string(), summary.overall.clone());
        writeln!(
            out,
            "absolute percentage error (%): mean (MAPE), median, p90"
        )?;
        print_table(&mut out, "overall", &overall)?;
        print_table(&mut out, "by system", &summary.by_system)?;
        print_table(&mut out, "by backend", &summary.by_backend)?;
        print_table(&mut out, "by mode", &summary.by_mode)?;
        print_table(
            &mut out,
            "by system/backend/mode",
            &summary.by_system_backend_mode,
        )?;
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        for r in &results {
            if let Err(e) = &r.prediction {
                *reasons.entry(e.clone()).or_default() += 1;
            }
        }
        if !reasons.is_empty() {
            writeln!(out, "\nunsupported rows:")?;
            for (reason, n) in reasons {
                writeln!(out, "  {n:>5}  {reason}")?;
            }
        }
        writeln!(
            out,
            "\n{} rows in {:.2} s",
            results.len(),
            started.elapsed().as_secs_f64()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
