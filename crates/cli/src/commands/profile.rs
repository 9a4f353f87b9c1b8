//! `slaprof profile`: the SLA-driven profiler (the seed's `profile_sla`).
//! Flags and files → settings → plan → sweep → artifacts → summary table.

use crate::resolve;
use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use profiler::measure::{Measurer, SimulatedMeasurer};
use profiler::profile::{self, SweepPlan};
use profiler::progress::Progress;
use profiler::run::{self, Report};
use profiler::settings::{self, ProfileFlags, ProfileSettings};
use spec::dgdr::{explain_unknown_key, Dgdr, ProfilingConfig};
use spec::model::QuantScheme;
use spec::{KvDtype, Precision};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

/// Exit status when the sweep ran but nothing meets the SLA.
const EXIT_SLA_UNMET: u8 = 2;

#[derive(clap::Args)]
pub struct Args {
    /// Inference backend: vllm, sglang or trtllm.
    #[arg(long)]
    backend: Option<String>,
    /// Base DynamoGraphDeployment YAML (default: a built-in disaggregated template).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Model served: Hugging Face id, config.json or a directory holding one.
    #[arg(long)]
    model: Option<String>,
    /// Target time to first token, ms.
    #[arg(long, allow_negative_numbers = true)]
    ttft: Option<f64>,
    /// Target inter-token latency, ms.
    #[arg(long, allow_negative_numbers = true)]
    itl: Option<f64>,
    /// Average input sequence length (tokens).
    #[arg(long, allow_negative_numbers = true)]
    isl: Option<i64>,
    /// Average output sequence length (tokens).
    #[arg(long, allow_negative_numbers = true)]
    osl: Option<i64>,
    /// Fewest GPUs per engine (default: the fewest that hold the model).
    #[arg(long = "min-num-gpus", allow_negative_numbers = true)]
    min_num_gpus: Option<i64>,
    /// Most GPUs per engine (default: 8 = one node for dense models, four nodes for MoE).
    #[arg(long = "max-num-gpus", allow_negative_numbers = true)]
    max_num_gpus: Option<i64>,
    /// GPUs per node (default: the system's).
    #[arg(long = "num-gpus-per-node", allow_negative_numbers = true)]
    num_gpus_per_node: Option<i64>,
    /// Profile offline with the performance model and simulator.
    #[arg(long = "use-ai-configurator", alias = "simulate")]
    use_ai_configurator: bool,
    /// GPU system to simulate, e.g. h200_sxm (see `slaprof systems`).
    #[arg(long = "aic-system")]
    aic_system: Option<String>,
    /// Model id the performance model uses (default: --model).
    #[arg(long = "aic-hf-id")]
    aic_hf_id: Option<String>,
    /// Backend version simulated (recorded in the results).
    #[arg(long = "aic-backend-version")]
    aic_backend_version: Option<String>,
    /// Points of the prefill TTFT-vs-ISL interpolation.
    #[arg(
        long = "prefill-interpolation-granularity",
        allow_negative_numbers = true
    )]
    prefill_interpolation_granularity: Option<i64>,
    /// Points per axis of the decode ITL interpolation.
    #[arg(
        long = "decode-interpolation-granularity",
        allow_negative_numbers = true
    )]
    decode_interpolation_granularity: Option<i64>,
    /// Cap on the context length swept (default: the model's).
    #[arg(long = "max-context-length", allow_negative_numbers = true)]
    max_context_length: Option<i64>,
    /// Where the artifacts go.
    #[arg(long = "output-dir", default_value = "profiling_results")]
    output_dir: PathBuf,
    /// Resolve everything and print the sweep plan; measure and write nothing.
    #[arg(long = "dry-run")]
    dry_run: bool,
    /// Print every log line while profiling.
    #[arg(long)]
    verbose: bool,
    /// Pick the configuration in the web UI (not available yet).
    #[arg(long = "pick-with-webui")]
    pick_with_webui: bool,
    /// Port of the web UI (with --pick-with-webui).
    #[arg(long = "webui-port", default_value_t = 8000)]
    webui_port: u16,
    /// The DGDR `profilingConfig.config` block: a YAML/JSON file, or inline JSON.
    #[arg(long = "profile-config")]
    profile_config: Option<String>,
    /// A whole DynamoGraphDeploymentRequest YAML.
    #[arg(long)]
    dgdr: Option<PathBuf>,
    /// Weight precision override (bf16, fp8, fp8_block, nvfp4, mxfp4, int4_wo).
    #[arg(long)]
    precision: Option<String>,
    #[command(flatten)]
    sources: super::Sources,
}

fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> anyhow::Result<T> {
    serde_saphyr::from_str(text)
        .map_err(|e| anyhow::anyhow!("{what}: {}", explain_unknown_key(&e.to_string())))
}

fn load_profile_config(arg: &str) -> anyhow::Result<ProfilingConfig> {
    let trimmed = arg.trim_start();
    if trimmed.starts_with('{') {
        return parse_yaml(trimmed, "--profile-config (inline)");
    }
    let path = Path::new(arg);
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --profile-config {}", path.display()))?;
    parse_yaml(&text, &format!("--profile-config {}", path.display()))
}

fn load_dgdr(path: &Path) -> anyhow::Result<Dgdr> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --dgdr {}", path.display()))?;
    let dgdr: Dgdr = parse_yaml(&text, &format!("--dgdr {}", path.display()))?;
    dgdr.check_kind()
        .map_err(|e| anyhow::anyhow!("--dgdr {}: {e}", path.display()))?;
    Ok(dgdr)
}

/// Progress bars on a terminal; one line per finished step otherwise.
struct Bars {
    bar: Mutex<Option<ProgressBar>>,
    verbose: bool,
    tty: bool,
}

impl Progress for Bars {
    fn begin(&self, step: &str, total: u64) {
        let bar = if self.tty {
            let b = ProgressBar::new(total);
            b.set_style(
                ProgressStyle::with_template("{prefix:>22} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(step.to_string());
            b
        } else {
            let b = ProgressBar::hidden();
            b.set_length(total);
            b.set_prefix(step.to_string());
            b
        };
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = Some(bar);
    }

    fn advance(&self, what: &str) {
        if let Some(b) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            b.set_message(what.to_string());
            b.inc(1);
        }
    }

    fn end(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            if self.tty {
                b.finish_with_message("done");
            } else {
                eprintln!("{}: {} measurements done", b.prefix(), b.position());
            }
        }
    }

    fn line(&self, line: &str) {
        if self.verbose {
            match &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let dgdr = a.dgdr.as_deref().map(load_dgdr).transpose()?;
    let profile_config = a
        .profile_config
        .as_deref()
        .map(load_profile_config)
        .transpose()?;
    let flags = ProfileFlags {
        backend: a.backend.clone(),
        config: a.config.clone(),
        model: a.model.clone(),
        ttft: a.ttft,
        itl: a.itl,
        isl: a.isl,
        osl: a.osl,
        min_num_gpus: a.min_num_gpus,
        max_num_gpus: a.max_num_gpus,
        num_gpus_per_node: a.num_gpus_per_node,
        use_ai_configurator: a.use_ai_configurator,
        aic_system: a.aic_system.clone(),
        aic_hf_id: a.aic_hf_id.clone(),
        aic_backend_version: a.aic_backend_version.clone(),
        prefill_interpolation_granularity: a.prefill_interpolation_granularity,
        decode_interpolation_granularity: a.decode_interpolation_granularity,
        max_context_length: a.max_context_length,
        output_dir: Some(a.output_dir.clone()),
        dry_run: a.dry_run,
        pick_with_webui: a.pick_with_webui,
    };
    let settings = settings::resolve(&flags, dgdr.as_ref(), profile_config.as_ref())?;
    let Some(system_name) = settings.system.clone() else {
        bail!(
            "missing GPU system: pass --aic-system (e.g. h200_sxm; see `slaprof systems`) or set \
             sweep.aicSystem or hardware.gpuType in the profiling config"
        );
    };
    let system = resolve::resolve_system(&system_name, &a.sources.systems()?)?;
    let model = resolve::resolve_model(&settings.perf_model_id, &a.sources.model_configs)?;
    let mut quant = match &a.precision {
        Some(p) => QuantScheme::uniform(p.parse::<Precision>()?),
        None => model.native_quant,
    };
    if quant.kv != KvDtype::Fp8 {
        quant.kv = quant.gemm.default_kv_dtype();
    }
    let measurer = SimulatedMeasurer {
        model: model.clone(),
        system: system.clone(),
        backend: settings.backend,
        quant,
        calibration: a.sources.calibration()?,
    };
    let plan = profile::plan(&settings, &model, &system, &measurer)?;
    // Read the base DGD before writing anything: a bad file leaves no output.
    let base = run::load_base_dgd(&settings)?;
    if settings.dry_run {
        print_plan(&settings, &plan, &measurer.describe())?;
        return Ok(ExitCode::SUCCESS);
    }
    let progress = Bars {
        bar: Mutex::new(None),
        verbose: a.verbose,
        tty: std::io::stderr().is_terminal(),
    };
    let report = run::run(
        &settings, &model, &system, plan, &base, &measurer, &progress,
    )?;
    print_report(&settings, &report)?;
    if let Some(why) = &report.failure {
        eprintln!("error: {why}");
        eprintln!(
            "sweep artifacts are in {} (status: failed)",
            settings.output_dir.display()
        );
        return Ok(ExitCode::from(EXIT_SLA_UNMET));
    }
    Ok(ExitCode::SUCCESS)
}

fn print_plan(s: &ProfileSettings, plan: &SweepPlan, source: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "dry run: nothing is measured or written")?;
    writeln!(out, "numbers would come from the {source}")?;
    writeln!(
        out,
        "SLA: ISL {} OSL {}, TTFT <= {} ms, ITL <= {} ms",
        s.isl, s.osl, s.ttft_ms, s.itl_ms
    )?;
    writeln!(
        out,
        "GPU counts per engine: {:?} ({}); {} GPUs per node; context up to {} tokens",
        plan.gpu_counts, plan.bounds_reason, plan.num_gpus_per_node, plan.max_context_length
    )?;
    for m in &plan.candidates {
        writeln!(out, "  sweep  {:<8} {:>3} GPUs", m.label(), m.num_gpus)?;
    }
    for k in &plan.skipped {
        writeln!(
            out,
            "  skip   {:<8} {:>3} GPUs  {}",
            k.mapping, k.num_gpus, k.reason
        )?;
    }
    writeln!(out, "output would go to {}", s.output_dir.display())?;
    Ok(())
}

fn print_report(s: &ProfileSettings, r: &Report) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} on {} with {}: ISL {} OSL {}, TTFT <= {} ms, ITL <= {} ms",
        r.model, r.system, r.backend, s.isl, s.osl, s.ttft_ms, s.itl_ms
    )?;
    writeln!(out)?;
    writeln!(out, "Prefill sweep (TTFT at ISL {})", s.isl)?;
    writeln!(
        out,
        "  {:<8} {:>5} {:>10} {:>12}  ",
        "mapping", "GPUs", "TTFT ms", "tok/s/GPU"
    )?;
    for (i, p) in r.prefill_sweep.iter().enumerate() {
        let mark = match &r.prefill {
            Some(c) if c.index == i => "  <- chosen",
            _ if p.ttft_ms > s.ttft_ms => "  misses TTFT",
            _ => "",
        };
        writeln!(
            out,
            "  {:<8} {:>5} {:>10.1} {:>12.0}{mark}",
            p.label, p.num_gpus, p.ttft_ms, p.thpt_per_gpu
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Decode sweep (best point within ITL per mapping)")?;
    writeln!(
        out,
        "  {:<8} {:>5} {:>10} {:>10} {:>8} {:>12}",
        "mapping", "GPUs", "KV tokens", "in flight", "ITL ms", "tok/s/GPU"
    )?;
    for (i, d) in r.decode_sweep.iter().enumerate() {
        let best = d
            .points
            .iter()
            .filter(|p| p.itl_ms <= s.itl_ms)
            .max_by(|a, b| a.thpt_per_gpu.total_cmp(&b.thpt_per_gpu));
        let mark = match &r.decode {
            Some(c) if c.index == i => "  <- chosen",
            _ => "",
        };
        match best {
            Some(p) => writeln!(
                out,
                "  {:<8} {:>5} {:>10} {:>10} {:>8.2} {:>12.0}{mark}",
                d.label, d.num_gpus, d.max_kv_tokens, p.in_flight, p.itl_ms, p.thpt_per_gpu
            )?,
            None => {
                let fastest = d
                    .points
                    .iter()
                    .map(|p| p.itl_ms)
                    .fold(f64::INFINITY, f64::min);
                writeln!(
                    out,
                    "  {:<8} {:>5} {:>10} {:>10} {:>8.2} {:>12}  misses ITL",
                    d.label, d.num_gpus, d.max_kv_tokens, "-", fastest, "-"
                )?
            }
        }
    }
    writeln!(out)?;
    if let (Some(p), Some(d)) = (&r.prefill, &r.decode) {
        writeln!(out, "Recommendation")?;
        writeln!(
            out,
            "  prefill  {} on {} GPU(s): TTFT {:.1} ms, {:.0} tokens/s/GPU",
            p.label, p.num_gpus, p.ttft_ms, p.thpt_per_gpu
        )?;
        writeln!(
            out,
            "  decode   {} on {} GPU(s): ITL {:.2} ms at {} requests in flight, {:.0} tokens/s/GPU",
            d.label, d.num_gpus, d.itl_ms, d.in_flight, d.thpt_per_gpu
        )?;
    }
    writeln!(
        out,
        "\n{} files in {} ({:.2} s)",
        r.outputs.len() + 1,
        s.output_dir.display(),
        r.elapsed_s
    )?;
    Ok(())
}
