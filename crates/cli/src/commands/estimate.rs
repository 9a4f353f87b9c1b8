//! `slaprof estimate`: one serving configuration in, predicted latency,
//! throughput and memory out.

use crate::resolve;
use anyhow::{bail, Context};
use perf_model::predict::{predict, PredictOptions, Prediction};
use spec::model::QuantScheme;
use spec::workload::Arrival;
use spec::{
    Backend, KvDtype, ParallelLayout, Precision, ServingConfig, ServingMode, WorkerGroup, Workload,
};
use std::io::Write;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq)]
enum Mode {
    Agg,
    Disagg,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq)]
enum KvArg {
    Bf16,
    Fp8,
}

/// Parallel sizes of one engine kind, as flags with a common prefix.
#[derive(clap::Args, Debug, Clone)]
pub struct LayoutArgs {
    /// Tensor-parallel size of attention (per attention-DP rank).
    #[arg(long, default_value_t = 1)]
    tp: i64,
    /// Pipeline-parallel size.
    #[arg(long, default_value_t = 1)]
    pp: i64,
    /// Attention data-parallel size (DP attention).
    #[arg(long, default_value_t = 1)]
    dp: i64,
    /// Expert-parallel size of the MoE layers (default: 1, or tp*dp with --dp).
    #[arg(long)]
    ep: Option<i64>,
    /// Tensor-parallel size of the MoE layers (default: tp*dp/ep).
    #[arg(long = "moe-tp")]
    moe_tp: Option<i64>,
}

#[derive(clap::Args)]
pub struct Args {
    /// Hugging Face id (catalog or HF cache), a config.json, or a directory holding one.
    #[arg(long)]
    model: String,
    /// GPU system, e.g. h200_sxm (see `slaprof systems`).
    #[arg(long)]
    system: String,
    /// Inference backend: trtllm, vllm or sglang.
    #[arg(long)]
    backend: String,
    /// Weight precision; defaults to the checkpoint's (bf16, fp8, fp8_block, nvfp4, mxfp4, int4_wo).
    #[arg(long)]
    precision: Option<String>,
    /// KV-cache dtype; defaults to fp8 for fp8/fp4 weights, else bf16.
    #[arg(long = "kv-cache-dtype", value_enum)]
    kv_cache_dtype: Option<KvArg>,
    #[arg(long, value_enum, default_value = "agg")]
    mode: Mode,
    #[command(flatten)]
    layout: LayoutArgs,
    /// Aggregated workers (replicas).
    #[arg(long, default_value_t = 1)]
    workers: i64,
    /// Prefill engine layout for --mode disagg, e.g. "tp=4,ep=4,dp=1".
    #[arg(long = "prefill")]
    prefill: Option<String>,
    /// Decode engine layout for --mode disagg, e.g. "tp=1,dp=8,ep=8".
    #[arg(long = "decode")]
    decode: Option<String>,
    #[arg(long = "prefill-workers", default_value_t = 1)]
    prefill_workers: i64,
    #[arg(long = "decode-workers", default_value_t = 1)]
    decode_workers: i64,
    /// Cap on running sequences per worker (max_num_seqs / max_batch_size).
    #[arg(long = "max-batch")]
    max_batch: Option<i64>,
    /// Closed-loop client concurrency.
    #[arg(long, conflicts_with = "request_rate")]
    concurrency: Option<i64>,
    /// Poisson request rate (requests/s).
    #[arg(long = "request-rate")]
    request_rate: Option<f64>,
    /// Input sequence length (tokens).
    #[arg(long, allow_negative_numbers = true)]
    isl: i64,
    /// Output sequence length (tokens).
    #[arg(long, allow_negative_numbers = true)]
    osl: i64,
    #[command(flatten)]
    sources: super::Sources,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

fn positive(name: &str, v: i64) -> anyhow::Result<u32> {
    if v < 1 || v > u32::MAX as i64 {
        bail!("--{name} must be a positive whole number, got {v}");
    }
    Ok(v as u32)
}

fn build_layout(
    who: &str,
    tp: i64,
    pp: i64,
    dp: i64,
    ep: Option<i64>,
    moe_tp: Option<i64>,
) -> anyhow::Result<ParallelLayout> {
    let tp = positive(&format!("{who}tp"), tp)?;
    let pp = positive(&format!("{who}pp"), pp)?;
    let dp = positive(&format!("{who}dp"), dp)?;
    let stage = tp * dp;
    let ep = match ep {
        Some(e) => positive(&format!("{who}ep"), e)?,
        None => match moe_tp {
            Some(t) => stage / positive(&format!("{who}moe-tp"), t)?.max(1),
            None if dp > 1 => stage,
            None => 1,
        },
    };
    let moe_tp = match moe_tp {
        Some(t) => positive(&format!("{who}moe-tp"), t)?,
        None => (stage / ep.max(1)).max(1),
    };
    let l = ParallelLayout {
        tp,
        pp,
        dp,
        moe_tp,
        moe_ep: ep,
    };
    l.check().map_err(|e| anyhow::anyhow!("{who}layout: {e}"))?;
    Ok(l)
}

/// Parses "tp=4,ep=4,dp=1,pp=1,moe_tp=1".
fn parse_layout_spec(flag: &str, s: &str) -> anyhow::Result<ParallelLayout> {
    let (mut tp, mut pp, mut dp, mut ep, mut moe_tp) = (1i64, 1i64, 1i64, None, None);
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .with_context(|| format!("--{flag} '{s}': expected key=value pairs like tp=4,ep=4"))?;
        let v: i64 = v
            .trim()
            .parse()
            .with_context(|| format!("--{flag}: '{v}' is not a whole number"))?;
        match k.trim() {
            "tp" => tp = v,
            "pp" => pp = v,
            "dp" => dp = v,
            "ep" | "moe_ep" => ep = Some(v),
            "moe_tp" | "moe-tp" => moe_tp = Some(v),
            other => bail!("--{flag}: unknown key '{other}' (expected tp, pp, dp, ep, moe_tp)"),
        }
    }
    build_layout(&format!("{flag}-"), tp, pp, dp, ep, moe_tp)
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let backend: Backend = a.backend.parse()?;
    let extra_systems = a.sources.systems()?;
    let model = resolve::resolve_model(&a.model, &a.sources.model_configs)?;
    let system = resolve::resolve_system(&a.system, &extra_systems)?;
    let isl = positive("isl", a.isl)?;
    let osl = positive("osl", a.osl)?;
    let arrival = match (a.concurrency, a.request_rate) {
        (Some(c), None) => Arrival::Concurrency(positive("concurrency", c)?),
        (None, Some(r)) if r.is_finite() && r > 0.0 => Arrival::RequestRate(r),
        (None, Some(r)) => {
            bail!("--request-rate must be a positive number of requests per second, got {r}")
        }
        (None, None) => Arrival::Concurrency(1),
        (Some(_), Some(_)) => bail!("give either --concurrency or --request-rate, not both"),
    };
    let mut quant = match &a.precision {
        Some(p) => QuantScheme::uniform(p.parse::<Precision>()?),
        None => model.native_quant,
    };
    // Serving recipes run an fp8 cache with fp8/fp4 GEMMs (the same rule
    // `validate` applies to measured rows) unless the checkpoint says fp8.
    quant.kv = match a.kv_cache_dtype {
        Some(KvArg::Bf16) => KvDtype::Bf16,
        Some(KvArg::Fp8) => KvDtype::Fp8,
        None if quant.kv == KvDtype::Fp8 => KvDtype::Fp8,
        None => quant.gemm.default_kv_dtype(),
    };
    let max_batch = a.max_batch.map(|b| positive("max-batch", b)).transpose()?;
    let mode = match a.mode {
        Mode::Agg => {
            if a.prefill.is_some() || a.decode.is_some() {
                bail!("--prefill/--decode describe disaggregated engines: add --mode disagg");
            }
            let l = &a.layout;
            ServingMode::Aggregated {
                workers: WorkerGroup {
                    layout: build_layout("", l.tp, l.pp, l.dp, l.ep, l.moe_tp)?,
                    workers: positive("workers", a.workers)?,
                    max_batch,
                },
            }
        }
        Mode::Disagg => {
            let prefill = a
                .prefill
                .as_deref()
                .context("--mode disagg needs --prefill tp=..,ep=.. and --decode tp=..")?;
            let decode = a
                .decode
                .as_deref()
                .context("--mode disagg needs --decode tp=..,ep=..")?;
            ServingMode::Disaggregated {
                prefill: WorkerGroup {
                    layout: parse_layout_spec("prefill", prefill)?,
                    workers: positive("prefill-workers", a.prefill_workers)?,
                    max_batch: None,
                },
                decode: WorkerGroup {
                    layout: parse_layout_spec("decode", decode)?,
                    workers: positive("decode-workers", a.decode_workers)?,
                    max_batch,
                },
            }
        }
    };
    let cfg = ServingConfig {
        backend,
        quant,
        mode,
        workload: Workload { isl, osl, arrival },
    };
    let cal = a.sources.calibration()?;
    let p = predict(
        &model,
        &system,
        &cfg,
        &cal,
        &PredictOptions::benchmark(&cal),
    )?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if a.json {
        let doc = serde_json::json!({
            "model": model.name,
            "system": system.name,
            "config": cfg,
            "prediction": p,
        });
        serde_json::to_writer_pretty(&mut out, &doc)?;
        writeln!(out)?;
    } else {
        print_human(&mut out, &model.name, &system.name, &cfg, &p)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn print_human(
    out: &mut impl Write,
    model: &str,
    system: &str,
    cfg: &ServingConfig,
    p: &Prediction,
) -> std::io::Result<()> {
    let arrival = match cfg.workload.arrival {
        Arrival::Concurrency(c) => format!("concurrency {c}"),
        Arrival::RequestRate(r) => format!("{r} req/s (Poisson)"),
    };
    writeln!(
        out,
        "{model} on {system}, {} ({} GPUs)",
        cfg.backend, p.num_gpus
    )?;
    match cfg.mode {
        ServingMode::Aggregated { workers } => {
            writeln!(out, "aggregated: {} x {}", workers.workers, workers.layout)?
        }
        ServingMode::Disaggregated { prefill, decode } => writeln!(
            out,
            "disaggregated: prefill {} x {}, decode {} x {}",
            prefill.workers, prefill.layout, decode.workers, decode.layout
        )?,
    }
    writeln!(
        out,
        "weights {} / moe {} / kv {}; ISL {} OSL {}, {arrival}\n",
        cfg.quant.gemm, cfg.quant.moe, cfg.quant.kv, cfg.workload.isl, cfg.workload.osl
    )?;
    writeln!(
        out,
        "{:<18} {:>10} {:>10} {:>10} {:>10}",
        "latency (ms)", "mean", "p50", "p90", "p99"
    )?;
    for (name, d) in [
        ("TTFT", &p.ttft),
        ("TPOT", &p.tpot),
        ("ITL", &p.itl),
        ("request latency", &p.e2e),
    ] {
        writeln!(
            out,
            "{:<18} {:>10.2} {:>10.2} {:>10.2} {:>10.2}",
            name, d.mean, d.p50, d.p90, d.p99
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "output throughput   {:>10.1} tok/s",
        p.output_tokens_per_s
    )?;
    writeln!(
        out,
        "  per GPU           {:>10.1} tok/s/GPU",
        p.output_tokens_per_s_per_gpu
    )?;
    writeln!(
        out,
        "  per user          {:>10.1} tok/s/user",
        p.tokens_per_s_per_user
    )?;
    writeln!(out, "request throughput  {:>10.2} req/s", p.requests_per_s)?;
    if let Arrival::RequestRate(r) = cfg.workload.arrival {
        if p.requests_per_s < 0.95 * r {
            writeln!(
                out,
                "warning: the deployment completes {:.2} req/s but {r} req/s arrive: the queue grows without bound, add workers or GPUs",
                p.requests_per_s
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<22} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "step time (ms)", "GEMM", "attention", "comm", "overhead", "total"
    )?;
    for (name, b) in [
        (
            format!("prefill {} tokens", cfg.workload.isl),
            &p.prefill_step,
        ),
        ("decode, mean batch".to_string(), &p.decode_step),
    ] {
        writeln!(
            out,
            "{:<22} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
            name,
            b.gemm_ms,
            b.attention_ms,
            b.comm_ms,
            b.overhead_ms,
            b.total_ms()
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "{:<10} {:>9} {:>10} {:>10} {:>10} {:>14}",
        "memory", "HBM GiB", "weights", "reserved", "KV cache", "max KV tokens"
    )?;
    for (role, m) in &p.memory {
        writeln!(
            out,
            "{:<10} {:>9.1} {:>10.1} {:>10.1} {:>10.1} {:>14}",
            role, m.hbm_gib, m.weights_gib, m.reserved_gib, m.kv_cache_gib, m.max_kv_tokens
        )?;
    }
    Ok(())
}
