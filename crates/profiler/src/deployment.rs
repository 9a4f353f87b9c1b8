//! Dynamo `DynamoGraphDeployment` (DGD, `nvidia.com/v1alpha1`) manifests for
//! the recommended engines: the profiler's final output, in the shape Dynamo's
//! profiler writes as `config_with_planner.yaml` (a `planner-profile-data`
//! ConfigMap followed by the DGD).
//!
//! A base DGD (a built-in template or the user's own) is edited, never
//! rebuilt: fields this module does not know survive untouched, so a user's
//! probes, env, tolerations or extra services reach the output as written.
//! The prefill and decode workers get the chosen parallel mapping as their
//! backend's own flags, GPU limits (per node, with `multinode.nodeCount` for
//! engines wider than a node) and replica counts, and a Planner service is
//! added that reads the profiling data from the ConfigMap.

mod args;
mod flags;
mod templates;

pub use args::{shell_join, shell_quote};
pub use templates::DYNAMO_IMAGE_TAG;

use args::CommandLine;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use spec::{Backend, ParallelLayout};
use std::collections::BTreeMap;
use std::fmt;

/// Name of the ConfigMap holding the planner's profiling data.
pub const PROFILE_DATA_CONFIGMAP: &str = "planner-profile-data";
/// Where the ConfigMap is mounted in the planner (and mocker workers); the
/// planner's `--profile-results-dir` points here.
pub const PROFILE_DATA_MOUNT_PATH: &str = "/workspace/profiling_results";
/// ConfigMap key with the prefill interpolation (`prefill_isl`, ...).
pub const PREFILL_DATA_KEY: &str = "prefill_raw_data.json";
/// ConfigMap key with the decode interpolation (`x_kv_usage`, ...).
pub const DECODE_DATA_KEY: &str = "decode_raw_data.json";
pub const DGD_API_VERSION: &str = "nvidia.com/v1alpha1";
pub const DGD_KIND: &str = "DynamoGraphDeployment";
/// Service key of the planner added to every generated DGD.
pub const PLANNER_SERVICE: &str = "Planner";
/// Command of the simulated engine that stands in for real workers.
pub const MOCKER_COMMAND: [&str; 2] = ["slaprof", "mocker"];

const PLANNER_WORKING_DIR: &str = "/workspace/components/src/dynamo/planner";
const PLANNER_MODULE: &str = "dynamo.planner.planner_sla";

/// Which half of a disaggregated pair a worker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Prefill,
    Decode,
}

impl Role {
    pub const BOTH: [Role; 2] = [Role::Prefill, Role::Decode];

    /// The DGD `subComponentType` and the `--disaggregation-mode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Prefill => "prefill",
            Role::Decode => "decode",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a DGD could not be read or generated. Messages name the offending
/// value and what to change.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{what} is not valid YAML: {message}")]
    Yaml { what: String, message: String },
    #[error("not a DynamoGraphDeployment: {0}")]
    NotADgd(String),
    #[error("{0}")]
    WrongKind(String),
    #[error(
        "unsupported apiVersion '{found}': expected '{DGD_API_VERSION}' (a DGD whose services are under spec.services){hint}"
    )]
    WrongApiVersion { found: String, hint: String },
    #[error(
        "no {role} worker in the DGD: give one service `subComponentType: {role}` (services: {services})"
    )]
    MissingWorker { role: Role, services: String },
    #[error(
        "several {role} workers ({services}): keep exactly one service with `subComponentType: {role}`"
    )]
    DuplicateWorker { role: Role, services: String },
    #[error("service '{service}': {problem}")]
    BadService { service: String, problem: String },
    #[error(
        "the DGD has no Frontend: add a service named 'Frontend' (or one with `componentType: frontend`); the planner takes its image and dynamoNamespace from it"
    )]
    MissingFrontend,
    #[error(
        "the base DGD's {role} worker '{service}' runs {found}, but the plan is for backend '{expected}': use a base config for {expected} or set the backend to {found_backend}"
    )]
    BackendMismatch {
        role: Role,
        service: String,
        found: String,
        found_backend: String,
        expected: Backend,
    },
    #[error("cannot run {layout} on {backend} for the {role} engine: {reason}")]
    UnsupportedLayout {
        backend: Backend,
        role: Role,
        layout: String,
        reason: String,
    },
    #[error("invalid deployment plan: {0}")]
    InvalidPlan(String),
    #[error(
        "'{value}' is not a valid Kubernetes name for {what} (lowercase letters, digits and '-', at most 63 characters, starting and ending alphanumeric): use '{suggestion}'"
    )]
    InvalidName {
        what: String,
        value: String,
        suggestion: String,
    },
    #[error("cannot write YAML: {0}")]
    Serialize(String),
}

fn yaml_error(what: &str, e: serde_saphyr::Error) -> DeploymentError {
    let msg = e.to_string();
    DeploymentError::Yaml {
        what: what.to_string(),
        message: msg.strip_prefix("error: ").unwrap_or(&msg).to_string(),
    }
}

/// A model cache PVC holding pre-downloaded weights (DGDR
/// `deployment.modelCache`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelCache {
    pub pvc_name: String,
    /// Sub-path of the weights inside the PVC.
    pub pvc_path: String,
    /// Where the PVC is mounted in the containers.
    pub mount_path: String,
}

impl ModelCache {
    /// Where the weights are inside a container: `mountPath/pvcPath`.
    pub fn model_path(&self) -> String {
        let mount = self.mount_path.trim_end_matches('/');
        let sub = self.pvc_path.trim_start_matches('/');
        if sub.is_empty() {
            mount.to_string()
        } else {
            format!("{mount}/{sub}")
        }
    }
}

/// What to deploy: the recommended engines and how many of each, plus the
/// DGDR settings that reach the manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct DeploymentPlan {
    /// metadata.name override (else the base's name is kept).
    pub name: Option<String>,
    /// Hugging Face model id served.
    pub model: String,
    pub backend: Backend,
    pub prefill: ParallelLayout,
    pub decode: ParallelLayout,
    pub gpus_per_node: u32,
    pub prefill_replicas: u32,
    pub decode_replicas: u32,
    /// The SLA the planner scales for. ISL/OSL and the context length bound
    /// the profiling sweeps; Dynamo's planner takes no flag for them.
    pub isl: u32,
    pub osl: u32,
    pub ttft_ms: f64,
    pub itl_ms: f64,
    pub max_context_length: Option<u32>,
    /// DGDR `planner` section: `planner_<name>` keys become the planner's
    /// `--<name>` flags (underscores to dashes). `true` gives a bare switch;
    /// `false` and null are left out. Keys the profiler sets itself
    /// (backend, ttft, itl, namespace, engine GPU counts, profile-results-dir)
    /// are ignored, as in Dynamo.
    pub planner_args: BTreeMap<String, Value>,
    /// DGDR `deploymentOverrides.workersImage`: image of every service.
    pub workers_image: Option<String>,
    /// DGDR `deployment.modelCache`.
    pub model_cache: Option<ModelCache>,
    /// Labels added to metadata.labels (e.g. `dgdr.nvidia.com/name`).
    pub labels: BTreeMap<String, String>,
}

impl DeploymentPlan {
    /// A plan with one replica of each engine, 8 GPUs per node, the
    /// profiler's default SLA (ISL 3000, OSL 150, TTFT 200 ms, ITL 20 ms) and
    /// no DGDR extras.
    pub fn new(
        model: impl Into<String>,
        backend: Backend,
        prefill: ParallelLayout,
        decode: ParallelLayout,
    ) -> Self {
        DeploymentPlan {
            name: None,
            model: model.into(),
            backend,
            prefill,
            decode,
            gpus_per_node: 8,
            prefill_replicas: 1,
            decode_replicas: 1,
            isl: 3000,
            osl: 150,
            ttft_ms: 200.0,
            itl_ms: 20.0,
            max_context_length: None,
            planner_args: BTreeMap::new(),
            workers_image: None,
            model_cache: None,
            labels: BTreeMap::new(),
        }
    }

    pub fn layout(&self, role: Role) -> &ParallelLayout {
        match role {
            Role::Prefill => &self.prefill,
            Role::Decode => &self.decode,
        }
    }

    pub fn replicas(&self, role: Role) -> u32 {
        match role {
            Role::Prefill => self.prefill_replicas,
            Role::Decode => self.decode_replicas,
        }
    }

    /// Where workers load weights from: the model cache path, or the model id.
    fn model_path(&self) -> Option<String> {
        self.model_cache.as_ref().map(ModelCache::model_path)
    }

    fn validate(&self) -> Result<(), DeploymentError> {
        let bad = |m: String| Err(DeploymentError::InvalidPlan(m));
        if self.model.trim().is_empty() || self.model.chars().any(char::is_whitespace) {
            return bad(format!(
                "model '{}' must be a Hugging Face id such as Qwen/Qwen3-0.6B",
                self.model
            ));
        }
        if self.gpus_per_node == 0 {
            return bad("gpus_per_node is 0: set the GPUs of one node (e.g. 8)".into());
        }
        for role in Role::BOTH {
            let l = self.layout(role);
            if let Err(e) = l.check() {
                return bad(format!("{role} layout {l}: {e}"));
            }
            let gpus = l.num_gpus();
            if gpus > self.gpus_per_node && gpus % self.gpus_per_node != 0 {
                return bad(format!(
                    "the {role} engine needs {gpus} GPUs, which is more than one node of {} but not a whole \
                     number of nodes; a multi-node engine gets the same GPU count on every node, so use a \
                     multiple of {} GPUs",
                    self.gpus_per_node, self.gpus_per_node
                ));
            }
            if self.replicas(role) == 0 {
                return bad(format!(
                    "{role}_replicas is 0: deploy at least one {role} worker (the planner scales from there)"
                ));
            }
        }
        for (what, v) in [("ttft_ms", self.ttft_ms), ("itl_ms", self.itl_ms)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!(
                    "{what} is {v}: give a positive latency target in milliseconds"
                ));
            }
        }
        if let Some(n) = &self.name {
            check_k8s_name("metadata.name", n)?;
        }
        if let Some(img) = &self.workers_image {
            if img.trim().is_empty() || img.chars().any(char::is_whitespace) {
                return bad(format!("workers_image '{img}' is not an image reference"));
            }
        }
        if let Some(mc) = &self.model_cache {
            check_k8s_name("modelCache.pvcName", &mc.pvc_name)?;
            if !mc.mount_path.starts_with('/') {
                return bad(format!(
                    "modelCache.mountPath '{}' must be an absolute path such as /opt/model-cache",
                    mc.mount_path
                ));
            }
        }
        Ok(())
    }
}

/// True when `s` is a DNS-1123 label: what Kubernetes accepts for the
/// resources a DGD, ConfigMap or volume turns into.
pub fn is_k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The nearest DNS-1123 label to `s`: lowercased, other characters turned
/// into single dashes, trimmed to 63 characters (e.g. `Qwen/Qwen3-0.6B` ->
/// `qwen-qwen3-0-6b`).
pub fn k8s_name(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let mut out = out.trim_matches('-').to_string();
    out.truncate(63);
    let out = out.trim_end_matches('-').to_string();
    if out.is_empty() {
        "dynamo".to_string()
    } else {
        out
    }
}

fn check_k8s_name(what: &str, value: &str) -> Result<(), DeploymentError> {
    if is_k8s_name(value) {
        Ok(())
    } else {
        Err(DeploymentError::InvalidName {
            what: what.to_string(),
            value: value.to_string(),
            suggestion: k8s_name(value),
        })
    }
}

/// A `DynamoGraphDeployment` manifest: the whole YAML tree (so unknown fields
/// round-trip) with accessors for the parts the profiler reads. Every `Dgd`
/// has passed [`parse_dgd`]'s checks: right kind and apiVersion, a name, and
/// exactly one prefill and one decode worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Dgd {
    value: Value,
}

impl TryFrom<Value> for Dgd {
    type Error = DeploymentError;
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        validate_dgd(&value)?;
        Ok(Dgd { value })
    }
}

impl From<Dgd> for Value {
    fn from(d: Dgd) -> Value {
        d.value
    }
}

impl Dgd {
    pub fn as_value(&self) -> &Value {
        &self.value
    }

    pub fn into_value(self) -> Value {
        self.value
    }

    pub fn name(&self) -> Option<&str> {
        self.value.pointer("/metadata/name").and_then(Value::as_str)
    }

    /// metadata.labels as strings.
    pub fn labels(&self) -> BTreeMap<String, String> {
        self.value
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn services(&self) -> &Map<String, Value> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        self.value
            .pointer("/spec/services")
            .and_then(Value::as_object)
            .unwrap_or_else(|| EMPTY.get_or_init(Map::new))
    }

    /// Keys of spec.services, sorted.
    pub fn service_names(&self) -> Vec<&str> {
        self.services().keys().map(String::as_str).collect()
    }

    pub fn service(&self, name: &str) -> Option<&Value> {
        self.services().get(name)
    }

    /// The service key of the prefill or decode worker.
    pub fn worker_name(&self, role: Role) -> Option<&str> {
        let name = resolve_worker(self.services(), role).ok()?;
        self.services()
            .get_key_value(&name)
            .map(|(k, _)| k.as_str())
    }

    /// The Frontend service's key, if the DGD has one.
    pub fn frontend_name(&self) -> Option<&str> {
        let name = resolve_frontend(self.services())?;
        self.services()
            .get_key_value(&name)
            .map(|(k, _)| k.as_str())
    }

    /// The backend the workers run, read from their `python3 -m dynamo.<b>`.
    pub fn backend(&self) -> Option<Backend> {
        let w = self.worker_name(Role::Decode)?;
        match detect_engine(self.service(w)?) {
            Some(Engine::Dynamo(b)) => Some(b),
            _ => None,
        }
    }

    fn main_container(&self, service: &str) -> Option<&Map<String, Value>> {
        self.service(service)?
            .pointer("/extraPodSpec/mainContainer")?
            .as_object()
    }

    /// A service's main-container command, word by word.
    pub fn command(&self, service: &str) -> Vec<String> {
        let c = self.main_container(service);
        match c.and_then(|c| c.get("command")) {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        }
    }

    /// A service's main-container args as words (a `sh -c` script and
    /// multi-word entries are split).
    pub fn args(&self, service: &str) -> Vec<String> {
        self.main_container(service)
            .map(|c| CommandLine::from_container(c).words)
            .unwrap_or_default()
    }

    pub fn image(&self, service: &str) -> Option<&str> {
        self.main_container(service)?.get("image")?.as_str()
    }

    pub fn replicas(&self, service: &str) -> Option<u32> {
        as_u32(self.service(service)?.get("replicas")?)
    }

    /// resources.limits.gpu: GPUs per pod (per node for multi-node engines).
    pub fn gpu_limit(&self, service: &str) -> Option<u32> {
        as_u32(self.service(service)?.pointer("/resources/limits/gpu")?)
    }

    /// multinode.nodeCount, when the engine spans nodes.
    pub fn node_count(&self, service: &str) -> Option<u32> {
        as_u32(self.service(service)?.pointer("/multinode/nodeCount")?)
    }
}

fn as_u32(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn describe_services(services: &Map<String, Value>) -> String {
    if services.is_empty() {
        return "none".into();
    }
    services
        .iter()
        .map(|(name, s)| {
            let ct = s
                .get("componentType")
                .and_then(Value::as_str)
                .unwrap_or("-");
            let sct = s
                .get("subComponentType")
                .and_then(Value::as_str)
                .unwrap_or("-");
            format!("{name} [componentType {ct}, subComponentType {sct}]")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sub_component_type(s: &Value) -> Option<&str> {
    s.get("subComponentType")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
}

/// Finds the worker the way Dynamo's planner does: by `subComponentType`,
/// else by its default service names when those carry no type.
fn resolve_worker(services: &Map<String, Value>, role: Role) -> Result<String, DeploymentError> {
    let typed: Vec<&String> = services
        .iter()
        .filter(|(_, s)| sub_component_type(s) == Some(role.as_str()))
        .map(|(k, _)| k)
        .collect();
    match typed.as_slice() {
        [one] => return Ok((*one).clone()),
        [] => {}
        many => {
            return Err(DeploymentError::DuplicateWorker {
                role,
                services: many
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        }
    }
    for name in templates::fallback_worker_names(role) {
        if let Some(s) = services.get(*name) {
            if sub_component_type(s).is_none() {
                return Ok((*name).to_string());
            }
        }
    }
    Err(DeploymentError::MissingWorker {
        role,
        services: describe_services(services),
    })
}

fn component_type(s: &Value) -> Option<&str> {
    s.get("componentType").and_then(Value::as_str)
}

fn resolve_frontend(services: &Map<String, Value>) -> Option<String> {
    if services.contains_key("Frontend") {
        return Some("Frontend".into());
    }
    let typed: Vec<&String> = services
        .iter()
        .filter(|(_, s)| component_type(s) == Some("frontend"))
        .map(|(k, _)| k)
        .collect();
    match typed.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

/// What a worker container runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Engine {
    Dynamo(Backend),
    Mocker,
}

impl Engine {
    fn describe(self) -> String {
        match self {
            Engine::Dynamo(b) => format!("{} ({})", flags::worker_module(b), b),
            Engine::Mocker => "a mocker".into(),
        }
    }
}

fn detect_engine(service: &Value) -> Option<Engine> {
    let c = service
        .pointer("/extraPodSpec/mainContainer")?
        .as_object()?;
    let mut words: Vec<String> = match c.get("command") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    };
    words.extend(CommandLine::from_container(c).words);
    let module_is =
        |w: &str, m: &str| w == m || w.strip_prefix(m).is_some_and(|r| r.starts_with('.'));
    for (i, w) in words.iter().enumerate() {
        if module_is(w, "dynamo.mocker")
            || (w == "slaprof" && words.get(i + 1).map(String::as_str) == Some("mocker"))
        {
            return Some(Engine::Mocker);
        }
        for b in Backend::ALL {
            if module_is(w, flags::worker_module(b)) {
                return Some(Engine::Dynamo(b));
            }
        }
    }
    None
}

/// Infers the backend a DGD's workers run, if they name a Dynamo engine.
pub fn detect_backend(dgd: &Dgd) -> Option<Backend> {
    dgd.backend()
}

fn validate_dgd(v: &Value) -> Result<(), DeploymentError> {
    let obj = v.as_object().ok_or_else(|| {
        DeploymentError::NotADgd(format!(
            "the document is {}, expected a mapping with apiVersion, kind, metadata and spec",
            match v {
                Value::Null => "empty",
                Value::Array(_) => "a list",
                Value::String(_) => "a plain string",
                _ => "a scalar",
            }
        ))
    })?;
    let kind = obj.get("kind").and_then(Value::as_str).ok_or_else(|| {
        DeploymentError::NotADgd(format!(
            "no `kind` field; a DGD starts with `apiVersion: {DGD_API_VERSION}` and `kind: {DGD_KIND}`"
        ))
    })?;
    if kind != DGD_KIND {
        let hint = match kind {
            "DynamoGraphDeploymentRequest" => {
                " (a DGDR is the request the profiler reads; pass the DGD it should start from, e.g. the \
                 file its profilingConfig.configMapRef points at, or none to use the built-in template)"
            }
            "ConfigMap" => " (if this ConfigMap wraps a DGD, pass the DGD YAML stored in its data)",
            _ => "",
        };
        return Err(DeploymentError::WrongKind(format!(
            "kind is '{kind}', expected '{DGD_KIND}'{hint}"
        )));
    }
    let api = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api != DGD_API_VERSION {
        let hint = if api.starts_with("nvidia.com/") {
            "; newer API versions list spec.components instead of spec.services, convert to the v1alpha1 layout"
        } else if api.is_empty() {
            "; add `apiVersion: nvidia.com/v1alpha1`"
        } else {
            ""
        };
        return Err(DeploymentError::WrongApiVersion {
            found: api.to_string(),
            hint: hint.to_string(),
        });
    }
    if v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(DeploymentError::NotADgd(
            "metadata.name is missing: give the deployment a name".into(),
        ));
    }
    let services = v
        .pointer("/spec/services")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            DeploymentError::NotADgd(
                "spec.services is missing or not a mapping of service name to service".into(),
            )
        })?;
    for (name, s) in services {
        if !s.is_object() {
            return Err(DeploymentError::BadService {
                service: name.clone(),
                problem: "is not a mapping of service fields".into(),
            });
        }
    }
    let prefill = resolve_worker(services, Role::Prefill)?;
    let decode = resolve_worker(services, Role::Decode)?;
    if prefill == decode {
        return Err(DeploymentError::BadService {
            service: prefill,
            problem:
                "is used as both the prefill and the decode worker; a disaggregated DGD needs two"
                    .into(),
        });
    }
    Ok(())
}

/// The built-in disaggregated template for `backend`: a Frontend and one
/// prefill and one decode worker with one GPU each, serving Qwen/Qwen3-0.6B
/// from the Dynamo runtime image of that backend.
pub fn builtin_base(backend: Backend) -> Dgd {
    Dgd {
        value: templates::builtin(backend),
    }
}

/// Reads a DGD from YAML (or JSON). A multi-document file, such as a
/// previous `config_with_planner.yaml`, gives its DynamoGraphDeployment.
pub fn parse_dgd(yaml: &str) -> Result<Dgd, DeploymentError> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).map_err(|e| yaml_error("the DGD config", e))?;
    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
    let value = match docs.len() {
        0 => return Err(DeploymentError::NotADgd("the file is empty".into())),
        1 => docs.into_iter().next().unwrap_or_default(),
        n => {
            let mut dgds: Vec<Value> = docs
                .into_iter()
                .filter(|d| d.get("kind").and_then(Value::as_str) == Some(DGD_KIND))
                .collect();
            match dgds.len() {
                1 => dgds.pop().unwrap_or_default(),
                0 => {
                    return Err(DeploymentError::NotADgd(format!(
                        "none of the {n} YAML documents has kind {DGD_KIND}"
                    )))
                }
                k => {
                    return Err(DeploymentError::NotADgd(format!(
                        "{k} of the {n} YAML documents are {DGD_KIND}s; pass a file with one"
                    )))
                }
            }
        }
    };
    Dgd::try_from(value)
}

/// Serializes a DGD as YAML.
pub fn to_yaml(dgd: &Dgd) -> Result<String, DeploymentError> {
    serde_saphyr::to_string(dgd.as_value()).map_err(|e| DeploymentError::Serialize(e.to_string()))
}

/// The ConfigMap the planner reads its profiling data from: the prefill and
/// decode interpolations as JSON strings under `prefill_raw_data.json` and
/// `decode_raw_data.json`.
pub fn profile_data_configmap(prefill_json: &Value, decode_json: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": PROFILE_DATA_CONFIGMAP },
        "data": {
            PREFILL_DATA_KEY: prefill_json.to_string(),
            DECODE_DATA_KEY: decode_json.to_string(),
        }
    })
}

/// `config_with_planner.yaml`: the ConfigMap, then the DGD, as two YAML
/// documents so one `kubectl apply -f` creates the data before the planner
/// that mounts it.
pub fn config_with_planner_yaml(configmap: &Value, dgd: &Dgd) -> Result<String, DeploymentError> {
    if configmap.get("kind").and_then(Value::as_str) != Some("ConfigMap") {
        return Err(DeploymentError::InvalidPlan(
            "the first document must be the ConfigMap from profile_data_configmap()".into(),
        ));
    }
    serde_saphyr::to_string_multiple(&[configmap.clone(), dgd.as_value().clone()])
        .map_err(|e| DeploymentError::Serialize(e.to_string()))
}

/// The command of a Dynamo worker for `backend`: `python3 -m dynamo.<b>`.
pub fn worker_command(backend: Backend) -> Vec<String> {
    templates::worker_command(backend)
}

/// Arguments of a built-in template worker serving `model` with `layout`
/// (what [`generate`] writes for a built-in base, without a model cache).
pub fn worker_args(
    backend: Backend,
    layout: &ParallelLayout,
    role: Role,
    model: &str,
) -> Result<Vec<String>, DeploymentError> {
    let mut words = templates::template_args(backend, role);
    edit_worker_words(
        backend,
        &mut words,
        role,
        layout,
        model,
        None,
        layout.num_gpus().max(1),
    )
    .map_err(|reason| DeploymentError::UnsupportedLayout {
        backend,
        role,
        layout: layout.to_string(),
        reason,
    })?;
    Ok(words)
}

fn edit_worker_words(
    backend: Backend,
    words: &mut Vec<String>,
    role: Role,
    layout: &ParallelLayout,
    model: &str,
    model_path: Option<&str>,
    gpus_per_node: u32,
) -> Result<(), String> {
    flags::apply_model(backend, words, model, model_path);
    flags::apply_role(backend, words, role);
    flags::apply_layout(backend, words, layout, gpus_per_node)
}

/// The planner's arguments for `plan`: the SLA and backend, the DGDR's
/// `planner_*` settings (sorted), then the engine sizes and the mounted
/// profiling data.
pub fn planner_args(plan: &DeploymentPlan) -> Result<Vec<String>, DeploymentError> {
    planner_args_for(plan, plan.backend.as_str())
}

/// Flags the profiler decides itself; DGDR settings of the same name are
/// dropped, as Dynamo does.
const PLANNER_OWNED: [&str; 7] = [
    "backend",
    "ttft",
    "itl",
    "namespace",
    "prefill-engine-num-gpu",
    "decode-engine-num-gpu",
    "profile-results-dir",
];

fn planner_args_for(plan: &DeploymentPlan, backend: &str) -> Result<Vec<String>, DeploymentError> {
    let num = |v: f64| {
        serde_json::Number::from_f64(v)
            .map(|n| n.to_string())
            .unwrap_or_else(|| v.to_string())
    };
    let mut out = vec![
        format!("--backend={backend}"),
        format!("--itl={}", num(plan.itl_ms)),
        format!("--ttft={}", num(plan.ttft_ms)),
    ];
    let mut settings: BTreeMap<String, &Value> = BTreeMap::new();
    let kubernetes = Value::String("kubernetes".into());
    // The planner scales DGD services through the Kubernetes API.
    settings.insert("environment".into(), &kubernetes);
    for (key, value) in &plan.planner_args {
        let bare = key
            .strip_prefix("planner_")
            .or_else(|| key.strip_prefix("planner-"))
            .unwrap_or(key);
        let flag = bare.replace('_', "-");
        let valid = !flag.is_empty()
            && flag
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !flag.starts_with('-');
        if !valid {
            return Err(DeploymentError::InvalidPlan(format!(
                "planner setting '{key}' is not a planner flag name; use snake_case keys such as planner_min_endpoint"
            )));
        }
        if !PLANNER_OWNED.contains(&flag.as_str()) {
            settings.insert(flag, value);
        }
    }
    for (flag, value) in settings {
        match value {
            Value::Null | Value::Bool(false) => {}
            Value::Bool(true) => out.push(format!("--{flag}")),
            Value::String(s) => out.push(format!("--{flag}={s}")),
            Value::Number(n) => out.push(format!("--{flag}={n}")),
            other => out.push(format!("--{flag}={other}")),
        }
    }
    out.push(format!(
        "--prefill-engine-num-gpu={}",
        plan.prefill.num_gpus()
    ));
    out.push(format!(
        "--decode-engine-num-gpu={}",
        plan.decode.num_gpus()
    ));
    out.push(format!("--profile-results-dir={PROFILE_DATA_MOUNT_PATH}"));
    Ok(out)
}

/// The chosen engines as a DGD with a planner: `base` with its prefill and
/// decode workers set to the plan's mappings (backend flags, GPU limits,
/// `multinode.nodeCount` for engines wider than `gpus_per_node`, replicas),
/// the model and image overrides applied, and a Planner service that mounts
/// [`PROFILE_DATA_CONFIGMAP`] at [`PROFILE_DATA_MOUNT_PATH`].
pub fn generate(base: &Dgd, plan: &DeploymentPlan) -> Result<Dgd, DeploymentError> {
    build(base, plan, false)
}

/// As [`generate`], but the workers run the simulated engine
/// (`slaprof mocker`) on no GPU, reading the profiling data from the same
/// ConfigMap mounted in each worker. The planner scales them as
/// `--backend=mocker`, as Dynamo's mocker deployments do.
pub fn generate_mocker(base: &Dgd, plan: &DeploymentPlan) -> Result<Dgd, DeploymentError> {
    build(base, plan, true)
}

/// Gets `map[key]` as a mapping, creating it when absent or null.
fn child<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
    service: &str,
) -> Result<&'a mut Map<String, Value>, DeploymentError> {
    let slot = map.entry(key.to_string()).or_insert_with(|| json!({}));
    if slot.is_null() {
        *slot = json!({});
    }
    slot.as_object_mut()
        .ok_or_else(|| DeploymentError::BadService {
            service: service.to_string(),
            problem: format!("`{key}` must be a mapping"),
        })
}

/// Gets `map[key]` as a list, creating it when absent or null.
fn child_list<'a>(
    map: &'a mut Map<String, Value>,
    key: &str,
    service: &str,
) -> Result<&'a mut Vec<Value>, DeploymentError> {
    let slot = map.entry(key.to_string()).or_insert_with(|| json!([]));
    if slot.is_null() {
        *slot = json!([]);
    }
    slot.as_array_mut()
        .ok_or_else(|| DeploymentError::BadService {
            service: service.to_string(),
            problem: format!("`{key}` must be a list"),
        })
}

/// Adds `item` to a list of named entries, replacing one of the same name.
fn upsert_named(list: &mut Vec<Value>, item: Value) {
    let name = item.get("name").cloned();
    match list.iter_mut().find(|e| e.get("name") == name.as_ref()) {
        Some(slot) => *slot = item,
        None => list.push(item),
    }
}

fn services_mut(root: &mut Value) -> &mut Map<String, Value> {
    root.pointer_mut("/spec/services")
        .and_then(Value::as_object_mut)
        .expect("a Dgd always has spec.services")
}

fn service_mut<'a>(
    root: &'a mut Value,
    name: &str,
) -> Result<&'a mut Map<String, Value>, DeploymentError> {
    services_mut(root)
        .get_mut(name)
        .and_then(Value::as_object_mut)
        .ok_or_else(|| DeploymentError::BadService {
            service: name.to_string(),
            problem: "is not a mapping of service fields".into(),
        })
}

fn main_container_mut<'a>(
    svc: &'a mut Map<String, Value>,
    service: &str,
) -> Result<&'a mut Map<String, Value>, DeploymentError> {
    let pod = child(svc, "extraPodSpec", service)?;
    child(pod, "mainContainer", service)
}

/// Sets GPUs per pod in limits and requests (plus a cluster's custom
/// `rdma/ib` count when present, which Dynamo keeps equal to the GPUs).
fn set_gpus(svc: &mut Map<String, Value>, service: &str, gpus: u32) -> Result<(), DeploymentError> {
    let resources = child(svc, "resources", service)?;
    for side in ["limits", "requests"] {
        let m = child(resources, side, service)?;
        m.insert("gpu".into(), Value::String(gpus.to_string()));
        if let Some(Value::Object(custom)) = m.get_mut("custom") {
            if custom.contains_key("rdma/ib") {
                custom.insert("rdma/ib".into(), Value::String(gpus.to_string()));
            }
        }
    }
    Ok(())
}

fn build(base: &Dgd, plan: &DeploymentPlan, mocker: bool) -> Result<Dgd, DeploymentError> {
    plan.validate()?;
    let mut root = base.value.clone();
    let services = base.services();
    let frontend = resolve_frontend(services).ok_or(DeploymentError::MissingFrontend)?;
    let workers = [
        (Role::Prefill, resolve_worker(services, Role::Prefill)?),
        (Role::Decode, resolve_worker(services, Role::Decode)?),
    ];
    for (role, name) in &workers {
        match detect_engine(&services[name]) {
            Some(Engine::Dynamo(b)) if b != plan.backend => {
                return Err(DeploymentError::BackendMismatch {
                    role: *role,
                    service: name.clone(),
                    found: Engine::Dynamo(b).describe(),
                    found_backend: b.to_string(),
                    expected: plan.backend,
                })
            }
            Some(Engine::Mocker) if !mocker => {
                return Err(DeploymentError::BadService {
                    service: name.clone(),
                    problem: format!(
                        "runs a mocker, not a {} worker; start from a real-engine DGD (or the built-in template)",
                        plan.backend
                    ),
                })
            }
            _ => {}
        }
    }

    rename(&mut root, plan)?;
    if let Some(image) = &plan.workers_image {
        for (_, s) in services_mut(&mut root).iter_mut() {
            if let Some(Value::Object(c)) = s.pointer_mut("/extraPodSpec/mainContainer") {
                c.insert("image".into(), Value::String(image.clone()));
            }
        }
    }
    if let Some(mc) = &plan.model_cache {
        mount_model_cache(&mut root, mc, &frontend, &workers, &plan.model)?;
    }
    let model_path = plan.model_path();
    for (role, name) in &workers {
        let layout = plan.layout(*role);
        let svc = service_mut(&mut root, name)?;
        svc.insert("componentType".into(), "worker".into());
        svc.insert("subComponentType".into(), role.as_str().into());
        svc.insert("replicas".into(), plan.replicas(*role).into());
        let container = main_container_mut(svc, name)?;
        let mut cl = CommandLine::from_container(container);
        if cl.words.is_empty() {
            return Err(DeploymentError::BadService {
                service: name.clone(),
                problem: format!(
                    "has no extraPodSpec.mainContainer args to set the {role} engine's flags in; give it the \
                     `{}` command and its arguments",
                    flags::worker_module(plan.backend)
                ),
            });
        }
        edit_worker_words(
            plan.backend,
            &mut cl.words,
            *role,
            layout,
            &plan.model,
            model_path.as_deref(),
            plan.gpus_per_node,
        )
        .map_err(|reason| DeploymentError::UnsupportedLayout {
            backend: plan.backend,
            role: *role,
            layout: layout.to_string(),
            reason,
        })?;
        container.insert("args".into(), cl.to_args_value());
        let gpus = layout.num_gpus();
        if gpus > plan.gpus_per_node {
            let nodes = gpus.div_ceil(plan.gpus_per_node);
            child(svc, "multinode", name)?.insert("nodeCount".into(), nodes.into());
            set_gpus(svc, name, plan.gpus_per_node)?;
        } else {
            svc.remove("multinode");
            set_gpus(svc, name, gpus)?;
        }
    }

    let planner = planner_service(&root, plan, &frontend, &workers[1].1, mocker)?;
    let services = services_mut(&mut root);
    services.retain(|_, s| component_type(s) != Some("planner"));
    services.insert(PLANNER_SERVICE.into(), planner);

    if mocker {
        for (role, name) in &workers {
            to_mocker(&mut root, plan, *role, name, model_path.as_deref())?;
        }
    }
    Dgd::try_from(root)
}

/// Applies the name override and labels. Services whose dynamoNamespace was
/// the old name follow the rename, so two deployments made from one base do
/// not share a Dynamo namespace.
fn rename(root: &mut Value, plan: &DeploymentPlan) -> Result<(), DeploymentError> {
    let meta = root
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| DeploymentError::NotADgd("metadata must be a mapping".into()))?;
    let old = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let new = plan.name.clone().unwrap_or_else(|| old.clone());
    check_k8s_name("metadata.name", &new)?;
    meta.insert("name".into(), Value::String(new.clone()));
    if !plan.labels.is_empty() {
        let labels = child(meta, "labels", "metadata")?;
        for (k, v) in &plan.labels {
            labels.insert(k.clone(), Value::String(v.clone()));
        }
    }
    if new != old {
        for (_, s) in services_mut(root).iter_mut() {
            if s.get("dynamoNamespace").and_then(Value::as_str) == Some(old.as_str()) {
                s["dynamoNamespace"] = Value::String(new.clone());
            }
        }
    }
    Ok(())
}

/// Mounts a model-cache PVC the way Dynamo's profiler does: declared under
/// spec.pvcs (existing, not created), mounted in the Frontend and both
/// workers, and the Frontend told where the weights are.
fn mount_model_cache(
    root: &mut Value,
    mc: &ModelCache,
    frontend: &str,
    workers: &[(Role, String); 2],
    model: &str,
) -> Result<(), DeploymentError> {
    let spec = root
        .get_mut("spec")
        .and_then(Value::as_object_mut)
        .expect("a Dgd always has spec");
    upsert_named(
        child_list(spec, "pvcs", "spec")?,
        json!({ "name": mc.pvc_name, "create": false }),
    );
    let mount = json!({ "name": mc.pvc_name, "mountPoint": mc.mount_path });
    for name in std::iter::once(frontend).chain(workers.iter().map(|(_, n)| n.as_str())) {
        let svc = service_mut(root, name)?;
        upsert_named(child_list(svc, "volumeMounts", name)?, mount.clone());
    }
    let svc = service_mut(root, frontend)?;
    let c = main_container_mut(svc, frontend)?;
    let no_command = c
        .get("command")
        .is_none_or(|v| v.as_array().is_some_and(Vec::is_empty));
    let mut cl = CommandLine::from_container(c);
    if no_command && cl.words.is_empty() {
        // An empty container runs the operator's default frontend, which
        // would not know the path; spell the command out.
        c.insert(
            "command".into(),
            json!(["python3", "-m", "dynamo.frontend"]),
        );
    }
    args::set(&mut cl.words, "--model-name", model);
    args::set(&mut cl.words, "--model-path", &mc.model_path());
    c.insert("args".into(), cl.to_args_value());
    Ok(())
}

fn profile_data_volume() -> Value {
    json!({ "name": PROFILE_DATA_CONFIGMAP, "configMap": { "name": PROFILE_DATA_CONFIGMAP } })
}

fn profile_data_mount() -> Value {
    json!({ "name": PROFILE_DATA_CONFIGMAP, "mountPath": PROFILE_DATA_MOUNT_PATH, "readOnly": true })
}

/// The Planner service: Dynamo's SLA planner in the Frontend's image and
/// Dynamo namespace, with the profiling ConfigMap mounted read-only.
fn planner_service(
    root: &Value,
    plan: &DeploymentPlan,
    frontend: &str,
    decode: &str,
    mocker: bool,
) -> Result<Value, DeploymentError> {
    let services = root
        .pointer("/spec/services")
        .and_then(Value::as_object)
        .expect("a Dgd always has spec.services");
    let image_of = |name: &str| {
        services
            .get(name)?
            .pointer("/extraPodSpec/mainContainer/image")?
            .as_str()
            .map(String::from)
    };
    let image = plan
        .workers_image
        .clone()
        .or_else(|| image_of(frontend))
        .or_else(|| image_of(decode));
    let args = planner_args_for(
        plan,
        if mocker {
            "mocker"
        } else {
            plan.backend.as_str()
        },
    )?;
    let mut container = json!({
        "workingDir": PLANNER_WORKING_DIR,
        "command": ["python3", "-m", PLANNER_MODULE],
        "args": args,
        "volumeMounts": [profile_data_mount()],
    });
    if let Some(image) = image {
        container["image"] = Value::String(image);
    }
    let mut planner = json!({
        "componentType": "planner",
        "replicas": 1,
        "extraPodSpec": {
            "mainContainer": container,
            "volumes": [profile_data_volume()],
        }
    });
    // The operator injects DYN_NAMESPACE from dynamoNamespace; the planner
    // must share the Frontend's to see and scale its workers.
    if let Some(ns) = services
        .get(frontend)
        .and_then(|s| s.get("dynamoNamespace"))
        .and_then(Value::as_str)
    {
        planner["dynamoNamespace"] = Value::String(ns.to_string());
    }
    Ok(planner)
}

/// Swaps a generated worker's engine for `slaprof mocker`: no GPU, no
/// multi-node, the profiling ConfigMap mounted where it reads it.
fn to_mocker(
    root: &mut Value,
    plan: &DeploymentPlan,
    role: Role,
    name: &str,
    model_path: Option<&str>,
) -> Result<(), DeploymentError> {
    let svc = service_mut(root, name)?;
    svc.remove("multinode");
    set_gpus(svc, name, 0)?;
    let pod = child(svc, "extraPodSpec", name)?;
    upsert_named(child_list(pod, "volumes", name)?, profile_data_volume());
    let c = child(pod, "mainContainer", name)?;
    // The engine's working directory belongs to the runtime image, not ours.
    c.remove("workingDir");
    c.insert("command".into(), json!(MOCKER_COMMAND));
    c.insert(
        "args".into(),
        json!([
            "--profile-data",
            PROFILE_DATA_MOUNT_PATH,
            "--disaggregation-mode",
            role.as_str(),
            "--served-model-name",
            plan.model,
            "--model",
            model_path.unwrap_or(&plan.model),
            "--backend",
            plan.backend.as_str(),
        ]),
    );
    upsert_named(child_list(c, "volumeMounts", name)?, profile_data_mount());
    Ok(())
}
