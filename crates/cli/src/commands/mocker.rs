//! `slaprof mocker`: serve the OpenAI API from a simulated engine whose
//! timing comes from the performance model or from profiling data.

use crate::resolve;
use anyhow::{bail, Context};
use mocker::engine::{DisaggMode, EngineConfig};
use mocker::faults::FaultConfig;
use mocker::server::{AppState, ServerConfig};
use mocker::tokenizer::Tokenizer;
use perf_model::sim::SchedulerConfig;
use spec::model::QuantScheme;
use spec::{Backend, KvDtype, ParallelLayout, Precision};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq)]
enum ModeArg {
    Agg,
    Prefill,
    Decode,
}

#[derive(clap::Args)]
pub struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on; 0 picks a free one (printed on start).
    #[arg(long, default_value_t = 8000)]
    port: u16,
    /// Model name clients must send (default: --model, else "mocker").
    #[arg(long = "served-model-name")]
    served_model_name: Option<String>,

    /// The model: Hugging Face id (catalog or HF cache), a config.json, or a
    /// directory holding one. With --system, timing comes from the
    /// performance model; with --profile-data it names the served model and
    /// sets the context window when slaprof knows the model.
    #[arg(long)]
    model: Option<String>,
    /// GPU system for the performance model, e.g. h200_sxm.
    #[arg(long, conflicts_with = "profile_data")]
    system: Option<String>,
    /// Backend whose scheduler is imitated: vllm, sglang or trtllm.
    #[arg(long, default_value = "vllm")]
    backend: String,
    /// Tensor-parallel size.
    #[arg(long, default_value_t = 1)]
    tp: u32,
    /// Expert-parallel size (default: 1, or tp*dp with --dp).
    #[arg(long)]
    ep: Option<u32>,
    /// Attention data-parallel size.
    #[arg(long, default_value_t = 1)]
    dp: u32,
    /// Weight precision (default: the checkpoint's).
    #[arg(long)]
    precision: Option<String>,
    #[command(flatten)]
    sources: super::Sources,
    /// Timing from profiling data instead: a `slaprof profile` output
    /// directory or a mounted planner-profile-data ConfigMap.
    #[arg(long = "profile-data")]
    profile_data: Option<PathBuf>,

    /// Most running sequences (default: the backend's).
    #[arg(long = "max-num-seqs")]
    max_num_seqs: Option<u32>,
    /// Token budget of one step (default: the backend's).
    #[arg(long = "max-num-batched-tokens")]
    max_num_batched_tokens: Option<u32>,
    /// Tokens per KV block (default: the backend's); the pool keeps its size in tokens.
    #[arg(long = "block-size")]
    block_size: Option<u32>,
    /// KV blocks (default: from the memory model or the profiling data).
    #[arg(long = "num-gpu-blocks")]
    num_gpu_blocks: Option<u32>,
    /// Reuse KV of equal prompt prefixes (the default).
    #[arg(
        long = "enable-prefix-caching",
        overrides_with = "no_enable_prefix_caching"
    )]
    enable_prefix_caching: bool,
    /// Turn prefix caching off; the last of the two flags wins.
    #[arg(
        long = "no-enable-prefix-caching",
        overrides_with = "enable_prefix_caching"
    )]
    no_enable_prefix_caching: bool,
    /// Context window (default: the model's max_position_embeddings, else
    /// 32768; never more than the KV pool holds).
    #[arg(long = "max-model-len")]
    max_model_len: Option<u32>,
    /// Simulated time runs this many times faster than the wall clock.
    #[arg(long = "speedup-ratio", default_value_t = 1.0)]
    speedup_ratio: f64,
    /// Dynamo role: agg, prefill (one token, then finish) or decode (prompt arrives computed).
    #[arg(long = "disaggregation-mode", value_enum, default_value = "agg")]
    disaggregation_mode: ModeArg,
    /// tokenizer.json, a directory holding one, or a model id in the HF
    /// cache (default: the built-in word-piece rule).
    #[arg(long)]
    tokenizer: Option<String>,
    /// Requests allowed to wait for the engine; more are answered 503.
    #[arg(long = "max-waiting", default_value_t = 100_000)]
    max_waiting: usize,
    /// Output tokens of a chat request that names no max_tokens (at most).
    #[arg(long = "default-max-tokens", default_value_t = 1024)]
    default_max_tokens: u32,

    /// Fraction of generation requests answered 500.
    #[arg(long = "fault-error-rate", default_value_t = 0.0)]
    fault_error_rate: f64,
    /// Abort every stream after this many tokens.
    #[arg(long = "fault-cut-stream-after")]
    fault_cut_stream_after: Option<u32>,
    /// Delay before each request reaches the engine.
    #[arg(long = "fault-stall-ms", default_value_t = 0)]
    fault_stall_ms: u64,
    /// Bind the port only after this long.
    #[arg(long = "fault-slow-startup-ms", default_value_t = 0)]
    fault_slow_startup_ms: u64,
    /// Exit with status 3 before binding.
    #[arg(long = "fault-crash-at-startup")]
    fault_crash_at_startup: bool,
    /// Seed of the fault decisions (same seed, same requests fail).
    #[arg(long = "fault-seed", default_value_t = 0)]
    fault_seed: u64,
}

/// Exit status of `--fault-crash-at-startup`, distinct from usage errors (1/2).
const CRASH_EXIT: u8 = 3;

fn layout(tp: u32, ep: Option<u32>, dp: u32) -> anyhow::Result<ParallelLayout> {
    if tp == 0 || dp == 0 || ep == Some(0) {
        bail!("--tp, --ep and --dp must be at least 1");
    }
    let stage = tp * dp;
    let ep = ep.unwrap_or(if dp > 1 { stage } else { 1 });
    let l = ParallelLayout {
        tp,
        pp: 1,
        dp,
        moe_tp: (stage / ep).max(1),
        moe_ep: ep,
    };
    l.check().map_err(|e| anyhow::anyhow!("layout: {e}"))?;
    Ok(l)
}

type Timer = Box<dyn perf_model::StepTimer + Send + Sync>;

/// Timer, scheduler defaults and the default context window.
fn timing(a: &Args, backend: Backend) -> anyhow::Result<(Timer, SchedulerConfig, u32)> {
    if let Some(dir) = &a.profile_data {
        let data = mocker::timing::load_profile_data(dir)?;
        let timer = mocker::timing::ProfileDataTimer::new(&data);
        let sched = SchedulerConfig::preset(backend, timer.max_kv_tokens());
        // A deployment may name a model slaprof has no config for: the
        // profile data still times it, with a default window.
        let window = a
            .model
            .as_deref()
            .and_then(|m| resolve::resolve_model(m, &a.sources.model_configs).ok())
            .map_or(32_768, |m| m.max_position_embeddings);
        return Ok((Box::new(timer), sched, window));
    }
    let (Some(model), Some(system)) = (&a.model, &a.system) else {
        bail!(
            "give --model and --system (timing from the performance model) or --profile-data DIR"
        );
    };
    let model = resolve::resolve_model(model, &a.sources.model_configs)?;
    let system = resolve::resolve_system(system, &a.sources.systems()?)?;
    let mut quant = match &a.precision {
        Some(p) => QuantScheme::uniform(p.parse::<Precision>()?),
        None => model.native_quant,
    };
    // The same fp8-cache-with-fp8/fp4-weights rule as `estimate`.
    if quant.kv != KvDtype::Fp8 {
        quant.kv = quant.gemm.default_kv_dtype();
    }
    let cal = a.sources.calibration()?;
    let (timer, sched, _kv) = mocker::timing::perf_model_engine(
        &model,
        &system,
        backend,
        quant,
        layout(a.tp, a.ep, a.dp)?,
        &cal,
    )?;
    Ok((Box::new(timer), sched, model.max_position_embeddings))
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let faults = FaultConfig {
        error_rate: a.fault_error_rate,
        cut_stream_after: a.fault_cut_stream_after,
        stall_ms: a.fault_stall_ms,
        slow_startup_ms: a.fault_slow_startup_ms,
        crash_at_startup: a.fault_crash_at_startup,
        seed: a.fault_seed,
    };
    faults.validate().map_err(anyhow::Error::msg)?;
    if faults.crash_at_startup {
        eprintln!("slaprof mocker: crashing at start-up (--fault-crash-at-startup)");
        return Ok(ExitCode::from(CRASH_EXIT));
    }
    if !(a.speedup_ratio.is_finite() && a.speedup_ratio > 0.0) {
        bail!(
            "--speedup-ratio must be a positive number, got {}",
            a.speedup_ratio
        );
    }
    let backend: Backend = a.backend.parse()?;
    let (timer, mut sched, model_len) = timing(&a, backend)?;
    if let Some(v) = a.max_num_seqs {
        sched.max_num_seqs = v;
    }
    if let Some(v) = a.max_num_batched_tokens {
        sched.max_num_batched_tokens = v;
    }
    if let Some(v) = a.block_size {
        // Keep the pool's size in tokens when only the block size changes.
        let tokens = sched.kv_capacity_tokens();
        sched.block_size = v.max(1);
        sched.num_kv_blocks =
            u32::try_from(tokens / u64::from(sched.block_size)).unwrap_or(u32::MAX);
    }
    if let Some(v) = a.num_gpu_blocks {
        sched.num_kv_blocks = v;
    }
    sched.enable_prefix_caching = !a.no_enable_prefix_caching;
    sched
        .validate()
        .map_err(|e| anyhow::anyhow!("engine settings: {e}"))?;
    let kv_tokens = sched.kv_capacity_tokens();
    let max_model_len = a
        .max_model_len
        .unwrap_or(if model_len > 0 { model_len } else { 32_768 })
        .min(u32::try_from(kv_tokens).unwrap_or(u32::MAX));
    if max_model_len == 0 {
        bail!("the KV pool holds no tokens: raise --num-gpu-blocks");
    }
    let served = a
        .served_model_name
        .clone()
        .or_else(|| a.model.clone())
        .unwrap_or_else(|| "mocker".into());
    let tokenizer = Tokenizer::from_option(a.tokenizer.as_deref())?;
    let mode = match a.disaggregation_mode {
        ModeArg::Agg => DisaggMode::Agg,
        ModeArg::Prefill => DisaggMode::Prefill,
        ModeArg::Decode => DisaggMode::Decode,
    };
    let engine_cfg = EngineConfig {
        scheduler: sched,
        speedup: a.speedup_ratio,
        mode,
        max_waiting: a.max_waiting,
        max_model_len,
    };
    let mut server_cfg = ServerConfig::new(served.clone(), max_model_len);
    server_cfg.default_max_tokens = a.default_max_tokens.max(1);
    server_cfg.faults = faults.clone();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut shutdown = Box::pin(shutdown_signal()?);
        let engine = mocker::engine::spawn(engine_cfg, timer)
            .map_err(|e| anyhow::anyhow!("starting the engine: {e}"))?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}",
                mocker::metrics::log_line_kv_capacity(kv_tokens, max_model_len)
            )?;
            writeln!(
                out,
                "serving {served} ({}), speedup {}, {}",
                tokenizer.describe(),
                a.speedup_ratio,
                if faults.any_active() {
                    "faults injected"
                } else {
                    "no faults"
                }
            )?;
            out.flush()?;
        }
        if faults.slow_startup_ms > 0 {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(faults.slow_startup_ms)) => {},
                _ = &mut shutdown => {
                    engine.shutdown().await;
                    return anyhow::Ok(());
                }
            }
        }
        let listener = tokio::net::TcpListener::bind((a.host.as_str(), a.port))
            .await
            .with_context(|| format!("binding {}:{}", a.host, a.port))?;
        let addr = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "slaprof mocker listening on http://{addr}")?;
            out.flush()?;
        }
        let state = AppState::new(engine.clone(), tokenizer, server_cfg);
        axum::serve(
            mocker::server::low_latency_listener(listener),
            mocker::server::app(state),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving")?;
        engine.shutdown().await;
        let mut out = std::io::stdout().lock();
        writeln!(out, "slaprof mocker stopped")?;
        out.flush()?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGINT or SIGTERM; the server then stops accepting and waits
/// for in-flight responses (streams included) to finish. The handlers are
/// installed by this call, not on first poll, so a signal sent as soon as
/// the address is printed is not lost to the default action.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
