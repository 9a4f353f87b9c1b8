//! One profiling run end to end: plan, sweep, recommend, interpolate, and
//! the artifacts of each step as soon as it is done.

use crate::artifacts::{self as art, ArtifactError, Status};
use crate::deployment::{self, DeploymentError, DeploymentPlan, Dgd, ModelCache};
use crate::measure::Measurer;
use crate::plots::{self, PlotError};
use crate::profile::{
    self, DecodeChoice, DecodeInterpolation, DecodeResult, Miss, PrefillChoice,
    PrefillInterpolation, PrefillResult, ProfileError, SweepPlan,
};
use crate::progress::{Log, Progress};
use crate::settings::ProfileSettings;
use serde::Serialize;
use spec::{GpuSystem, ModelArch};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error("cannot read the base DGD {path}: {message}")]
    BaseConfig { path: PathBuf, message: String },
}

/// What a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub status: &'static str,
    /// Everything the run was asked for, after merging flags and files.
    pub settings: ProfileSettings,
    pub measured_by: String,
    pub model: String,
    pub system: String,
    pub backend: String,
    pub sla: Sla,
    pub plan: SweepPlan,
    pub prefill_sweep: Vec<PrefillResult>,
    pub decode_sweep: Vec<DecodeResult>,
    pub prefill: Option<PrefillChoice>,
    pub decode: Option<DecodeChoice>,
    /// Why the SLA cannot be met, when it cannot.
    pub failure: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefill_interpolation: Option<PrefillInterpolation>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_interpolation: Option<DecodeInterpolation>,
    /// Files written, relative to the output directory.
    pub outputs: Vec<String>,
    pub elapsed_s: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sla {
    pub isl: u32,
    pub osl: u32,
    pub ttft_ms: f64,
    pub itl_ms: f64,
}

/// Loads the base DGD (the user's `--config`, or the built-in template).
/// Done before anything is written so a bad file leaves no output behind.
pub fn load_base_dgd(settings: &ProfileSettings) -> Result<Dgd, RunError> {
    match &settings.base_config {
        None => Ok(deployment::builtin_base(settings.backend)),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| RunError::BaseConfig {
                path: path.clone(),
                message: e.to_string(),
            })?;
            deployment::parse_dgd(&text).map_err(|e| RunError::BaseConfig {
                path: path.clone(),
                message: e.to_string(),
            })
        }
    }
}

struct Outputs<'a> {
    dir: &'a Path,
    written: Vec<String>,
}

impl Outputs<'_> {
    fn path(&mut self, rel: &str) -> PathBuf {
        self.written.push(rel.to_string());
        self.dir.join(rel)
    }
}

/// Runs steps 3–5 and writes every artifact. `plan` and `base` come from
/// [`profile::plan`] and [`load_base_dgd`], checked before the output
/// directory is touched.
pub fn run(
    settings: &ProfileSettings,
    model: &ModelArch,
    system: &GpuSystem,
    plan: SweepPlan,
    base: &Dgd,
    measurer: &dyn Measurer,
    progress: &dyn Progress,
) -> Result<Report, RunError> {
    let started = Instant::now();
    let log = Log::new(progress);
    let dir = settings.output_dir.as_path();
    std::fs::create_dir_all(dir).map_err(|source| ArtifactError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut running = Status::new("running");
    running.message = "profiling".into();
    art::write_yaml(&dir.join(art::STATUS_FILE), &running)?;

    let mut report = Report {
        status: "running",
        settings: settings.clone(),
        measured_by: measurer.describe(),
        model: model.name.clone(),
        system: system.name.clone(),
        backend: settings.backend.to_string(),
        sla: Sla {
            isl: settings.isl,
            osl: settings.osl,
            ttft_ms: settings.ttft_ms,
            itl_ms: settings.itl_ms,
        },
        plan,
        prefill_sweep: Vec::new(),
        decode_sweep: Vec::new(),
        prefill: None,
        decode: None,
        failure: None,
        prefill_interpolation: None,
        decode_interpolation: None,
        outputs: Vec::new(),
        elapsed_s: 0.0,
    };
    let mut out = Outputs {
        dir,
        written: Vec::new(),
    };
    let result = steps(
        settings,
        &mut report,
        base,
        measurer,
        progress,
        &log,
        &mut out,
    );
    report.elapsed_s = started.elapsed().as_secs_f64();
    let mut status = match (&result, &report.failure) {
        (Err(e), _) => {
            log.error(e.to_string());
            report.status = "failed";
            let mut s = Status::new("failed");
            s.message = "profiling stopped by an error".into();
            s.error = e.to_string();
            s
        }
        (Ok(()), Some(why)) => {
            log.error(why.clone());
            report.status = "failed";
            let mut s = Status::new("failed");
            s.message = "no configuration meets the SLA".into();
            s.error = why.clone();
            s
        }
        (Ok(()), None) => {
            report.status = "success";
            let mut s = Status::new("success");
            s.message = format!(
                "prefill {} ({} GPUs), decode {} ({} GPUs)",
                report.prefill.as_ref().map_or("-", |p| &p.label),
                report.prefill.as_ref().map_or(0, |p| p.num_gpus),
                report.decode.as_ref().map_or("-", |d| &d.label),
                report.decode.as_ref().map_or(0, |d| d.num_gpus),
            );
            s
        }
    };
    log.info(format!(
        "finished in {:.3} s: {}",
        report.elapsed_s, report.status
    ));
    let results_path = out.path(art::RESULTS_FILE);
    let log_path = out.path(art::LOG_FILE);
    report.outputs = out.written.clone();
    art::write_json(&results_path, &report)?;
    art::write_atomic(&log_path, log.text().as_bytes())?;
    status.outputs = outputs_map(&report.outputs);
    // Last, so that "success" is only ever seen beside complete artifacts.
    art::write_yaml(&dir.join(art::STATUS_FILE), &status)?;
    result.map(|()| report)
}

fn outputs_map(files: &[String]) -> BTreeMap<String, String> {
    files
        .iter()
        .map(|f| {
            let key = Path::new(f)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = Path::new(f)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| !p.is_empty());
            let key = match parent {
                Some(p) => format!("{p}/{key}"),
                None => key,
            };
            (key, f.clone())
        })
        .collect()
}

fn steps(
    settings: &ProfileSettings,
    report: &mut Report,
    base: &Dgd,
    measurer: &dyn Measurer,
    progress: &dyn Progress,
    log: &Log,
    out: &mut Outputs,
) -> Result<(), RunError> {
    let plan = report.plan.clone();
    log.info(format!(
        "profiling {} on {} with {} (ISL {}, OSL {}, TTFT <= {} ms, ITL <= {} ms)",
        report.model,
        report.system,
        report.backend,
        settings.isl,
        settings.osl,
        settings.ttft_ms,
        settings.itl_ms
    ));
    log.info(format!("numbers from the {}", report.measured_by));
    log.info(format!(
        "sweep: GPU counts {:?} ({}), {} GPUs per node, candidates {}",
        plan.gpu_counts,
        plan.bounds_reason,
        plan.num_gpus_per_node,
        plan.candidates
            .iter()
            .map(|m| m.label())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for s in &plan.skipped {
        log.warn(format!("skipping {}: {}", s.mapping, s.reason));
    }

    report.prefill_sweep = profile::sweep_prefill(&plan, settings, measurer, progress, log)?;
    let points: Vec<plots::PrefillPoint> = report
        .prefill_sweep
        .iter()
        .map(|r| plots::PrefillPoint {
            label: r.label.clone(),
            num_gpus: r.num_gpus,
            ttft_ms: r.ttft_ms,
            thpt_per_gpu: r.thpt_per_gpu,
        })
        .collect();
    let prefill_choice = profile::recommend_prefill(&report.prefill_sweep, settings.ttft_ms);
    plots::prefill_performance(
        &out.path(art::PREFILL_PLOT),
        &points,
        settings.ttft_ms,
        prefill_choice.as_ref().ok().map(|c| c.index),
    )?;

    report.decode_sweep = profile::sweep_decode(&plan, settings, measurer, progress, log)?;
    let series: Vec<plots::DecodeSeries> = report
        .decode_sweep
        .iter()
        .map(|r| plots::DecodeSeries {
            label: r.label.clone(),
            num_gpus: r.num_gpus,
            points: r
                .points
                .iter()
                .map(|p| plots::DecodePoint {
                    in_flight: p.in_flight,
                    itl_ms: p.itl_ms,
                    thpt_per_gpu: p.thpt_per_gpu,
                })
                .collect(),
        })
        .collect();
    let decode_choice = profile::recommend_decode(&report.decode_sweep, settings.itl_ms);
    plots::decode_performance(
        &out.path(art::DECODE_PLOT),
        &series,
        settings.itl_ms,
        decode_choice.as_ref().ok().map(|c| c.index),
    )?;

    let misses: Vec<String> = [
        prefill_choice
            .as_ref()
            .err()
            .map(|m: &Miss| format!("prefill: {}", m.describe("TTFT", "--ttft"))),
        decode_choice
            .as_ref()
            .err()
            .map(|m: &Miss| format!("decode: {}", m.describe("ITL", "--itl"))),
    ]
    .into_iter()
    .flatten()
    .collect();
    report.prefill = prefill_choice.ok();
    report.decode = decode_choice.ok();
    if !misses.is_empty() {
        report.failure = Some(misses.join("\n"));
        return Ok(());
    }
    let (Some(pc), Some(dc)) = (report.prefill.clone(), report.decode.clone()) else {
        unreachable!("both choices exist when nothing missed");
    };
    log.info(format!(
        "suggested prefill mapping: {} on {} GPU(s) (TTFT {:.2} ms, {:.1} tokens/s/GPU)",
        pc.label, pc.num_gpus, pc.ttft_ms, pc.thpt_per_gpu
    ));
    log.info(format!(
        "suggested decode mapping: {} on {} GPU(s) (ITL {:.2} ms at {} requests in flight, {:.1} tokens/s/GPU)",
        dc.label, dc.num_gpus, dc.itl_ms, dc.in_flight, dc.thpt_per_gpu
    ));

    let pmap = report.prefill_sweep[pc.index].mapping;
    let dmap = report.decode_sweep[dc.index].mapping;
    let pi = profile::interpolate_prefill(&pmap, &plan, settings, measurer, progress, log)?;
    art::write_prefill_npz(
        &out.path(&format!("{}/{}", art::PREFILL_DIR, art::RAW_DATA)),
        &pi,
    )?;
    let isl_f: Vec<f64> = pi.prefill_isl.iter().map(|&v| f64::from(v)).collect();
    plots::prefill_ttft_interpolation(
        &out.path(&format!("{}/{}", art::PREFILL_DIR, art::PREFILL_TTFT_PLOT)),
        &isl_f,
        &pi.prefill_ttft,
        Some(settings.ttft_ms),
        Some(f64::from(settings.isl)),
    )?;
    plots::prefill_throughput_interpolation(
        &out.path(&format!("{}/{}", art::PREFILL_DIR, art::PREFILL_THPT_PLOT)),
        &isl_f,
        &pi.prefill_thpt_per_gpu,
    )?;

    let di = profile::interpolate_decode(&dmap, &plan, settings, measurer, progress, log)?;
    art::write_decode_npz(
        &out.path(&format!("{}/{}", art::DECODE_DIR, art::RAW_DATA)),
        &di,
    )?;
    plots::decode_itl_interpolation(
        &out.path(&format!("{}/{}", art::DECODE_DIR, art::DECODE_ITL_PLOT)),
        &di.x_kv_usage,
        &di.y_context_length,
        &di.z_itl,
        Some(settings.itl_ms),
    )?;
    plots::decode_throughput_interpolation(
        &out.path(&format!("{}/{}", art::DECODE_DIR, art::DECODE_THPT_PLOT)),
        &di.x_kv_usage,
        &di.y_context_length,
        &di.z_thpt_per_gpu,
    )?;

    let dplan = DeploymentPlan {
        name: settings.deployment_name.clone(),
        model: settings.model.clone(),
        backend: settings.backend,
        prefill: pmap.layout(),
        decode: dmap.layout(),
        gpus_per_node: plan.num_gpus_per_node,
        prefill_replicas: 1,
        decode_replicas: 1,
        isl: settings.isl,
        osl: settings.osl,
        ttft_ms: settings.ttft_ms,
        itl_ms: settings.itl_ms,
        max_context_length: settings.max_context_length,
        planner_args: settings.planner_args.clone(),
        workers_image: settings.workers_image.clone(),
        model_cache: settings.model_cache.as_ref().map(|m| ModelCache {
            pvc_name: m.pvc_name.clone(),
            pvc_path: m.pvc_path.clone(),
            mount_path: m.mount_path.clone(),
        }),
        labels: settings.labels.clone(),
    };
    let configmap =
        deployment::profile_data_configmap(&art::prefill_json(&pi), &art::decode_json(&di));
    let dgd = deployment::generate(base, &dplan)?;
    let text = deployment::config_with_planner_yaml(&configmap, &dgd)?;
    art::write_atomic(&out.path(art::CONFIG_WITH_PLANNER), text.as_bytes())?;
    let mocker = deployment::generate_mocker(base, &dplan)?;
    let text = deployment::config_with_planner_yaml(&configmap, &mocker)?;
    art::write_atomic(&out.path(art::MOCKER_CONFIG_WITH_PLANNER), text.as_bytes())?;
    log.info(format!(
        "wrote {} and {}{}",
        art::CONFIG_WITH_PLANNER,
        art::MOCKER_CONFIG_WITH_PLANNER,
        if settings.use_mocker {
            " (useMocker: apply the mocker one)"
        } else {
            ""
        }
    ));
    report.prefill_interpolation = Some(pi);
    report.decode_interpolation = Some(di);
    Ok(())
}
