//! Finding model configs (local paths, config directories, the Hugging Face
//! cache, the built-in catalog) and GPU systems (built-in or from YAML).

use anyhow::{bail, Context};
use serde::Deserialize;
use spec::{catalog, hf, systems, GpuSystem, ModelArch};
use std::path::{Path, PathBuf};

/// How to get a model slaprof does not know, appended to "unknown model" errors.
const HOW_TO_SUPPLY: &str = "pass --model /path/to/dir-with-config.json \
(a directory holding its Hugging Face config.json) or --model /path/to/config.json, \
or download it into the Hugging Face cache (huggingface-cli download ORG/NAME config.json)";

/// Resolves `spec` to a model architecture, trying in order:
/// 1. an existing path: a directory with `config.json` (and optionally
///    `hf_quant_config.json`), a Hugging Face cache `models--ORG--NAME`
///    directory, or a `.json` config file (with `NAME.hf_quant_config.json`
///    beside it);
/// 2. `ORG--NAME.json` (plus `ORG--NAME.hf_quant_config.json`) in one of
///    `extra_config_dirs`;
/// 3. the Hugging Face cache (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
///    `~/.cache/huggingface/hub`);
/// 4. the built-in catalog.
pub fn resolve_model(spec: &str, extra_config_dirs: &[PathBuf]) -> anyhow::Result<ModelArch> {
    let trimmed = spec.trim();
    if trimmed.is_empty() {
        bail!("empty model name; name a model or {HOW_TO_SUPPLY}");
    }
    let path = expand_home(trimmed);
    if path.exists() {
        return load_from_path(&path);
    }
    if looks_like_path(trimmed) {
        bail!(
            "model path {} does not exist; {HOW_TO_SUPPLY}",
            path.display()
        );
    }

    let query = ModelQuery::new(trimmed);
    for dir in extra_config_dirs {
        if let Some((name, config)) = find_in_config_dir(dir, &query)? {
            return load_config_file(&name, &config, &quant_file_beside(&config));
        }
    }
    if let Some(hub) = hf_hub_dir() {
        if let Some((name, snapshot)) = find_in_hf_cache(&hub, &query)? {
            return load_config_file(
                &name,
                &snapshot.join("config.json"),
                &snapshot.join("hf_quant_config.json"),
            );
        }
    }
    if let Some(m) = catalog::find(trimmed) {
        return Ok(m);
    }

    let mut msg = format!("unknown model '{trimmed}': not a local path");
    if !extra_config_dirs.is_empty() {
        let dirs: Vec<_> = extra_config_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        msg += &format!(", not in the config directories ({})", dirs.join(", "));
    }
    match hf_hub_dir() {
        Some(hub) => msg += &format!(", not in the Hugging Face cache ({})", hub.display()),
        None => msg += ", no Hugging Face cache found",
    }
    msg += ", and not in the built-in catalog (see `slaprof models`)";
    if let Some(s) = catalog::suggest(trimmed) {
        msg += &format!(". Did you mean '{s}'?");
    } else {
        msg += ".";
    }
    bail!("{msg} To use a model slaprof does not know, {HOW_TO_SUPPLY}.")
}

/// Resolves a GPU system name: systems from `extra` (user files) first, then
/// the built-ins and their aliases.
pub fn resolve_system(name: &str, extra: &[GpuSystem]) -> anyhow::Result<GpuSystem> {
    if let Some(s) = systems::find_in(name, extra) {
        return Ok(s);
    }
    let known: Vec<&str> = extra
        .iter()
        .chain(systems::all())
        .map(|s| s.name.as_str())
        .collect();
    let hint = systems::suggest_with(name, extra)
        .map(|s| format!(" Did you mean '{s}'?"))
        .unwrap_or_default();
    bail!(
        "unknown GPU system '{name}'.{hint} Known systems: {}. Define others in a YAML file \
         and pass it with --systems-file FILE (`slaprof systems --json` prints the fields).",
        known.join(", ")
    )
}

/// The shapes a systems file may take: one system, a list, or `systems: [...]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemsFile {
    systems: Vec<GpuSystem>,
}

/// Loads user-defined GPU systems from a YAML (or JSON) file holding one
/// system mapping, a list of them, or a mapping with a `systems:` list.
/// Unknown keys are errors that name the key.
pub fn load_systems_file(path: &Path) -> anyhow::Result<Vec<GpuSystem>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading systems file {}", path.display()))?;
    let ctx = || format!("in systems file {}", path.display());
    // Look at the document's shape first, then deserialize the typed form
    // from the text itself so errors carry YAML line numbers.
    let shape: serde_json::Value = serde_saphyr::from_str(&text)
        .map_err(yaml_error)
        .with_context(ctx)?;
    let list: Vec<GpuSystem> = match &shape {
        serde_json::Value::Array(_) => serde_saphyr::from_str(&text),
        serde_json::Value::Object(m) if m.contains_key("systems") => {
            serde_saphyr::from_str::<SystemsFile>(&text).map(|f| f.systems)
        }
        serde_json::Value::Object(_) => serde_saphyr::from_str::<GpuSystem>(&text).map(|s| vec![s]),
        _ => bail!(
            "{}: expected a GPU system mapping, a list of them, or `systems:` with a list",
            ctx()
        ),
    }
    .map_err(yaml_error)
    .with_context(ctx)?;
    for s in &list {
        systems::check(s).with_context(ctx)?;
    }
    for (i, s) in list.iter().enumerate() {
        if list[..i]
            .iter()
            .any(|o| o.name.eq_ignore_ascii_case(&s.name))
        {
            bail!("{}: system '{}' is defined twice", ctx(), s.name);
        }
    }
    Ok(list)
}

/// serde-saphyr messages start with their own "error: ", which would repeat
/// the one `main` prints.
fn yaml_error(e: serde_saphyr::Error) -> anyhow::Error {
    let msg = e.to_string();
    anyhow::anyhow!("{}", msg.strip_prefix("error: ").unwrap_or(&msg))
}

/// Loads every `--systems-file`, in order.
pub fn load_systems_files(paths: &[PathBuf]) -> anyhow::Result<Vec<GpuSystem>> {
    let mut all = Vec::new();
    for p in paths {
        all.extend(load_systems_file(p)?);
    }
    Ok(all)
}

/// A model id as typed: `ORG/NAME`, `ORG--NAME` or a bare `NAME`.
struct ModelQuery {
    /// Lower-cased `org/name`, or `name` when no organisation was given.
    key: String,
    has_org: bool,
}

impl ModelQuery {
    fn new(spec: &str) -> Self {
        let s = spec.trim().trim_matches('/');
        let s = if s.contains('/') {
            s.to_string()
        } else {
            s.replacen("--", "/", 1)
        };
        ModelQuery {
            has_org: s.contains('/'),
            key: s.to_ascii_lowercase(),
        }
    }

    /// Whether the id `org/name` (any case) is the one asked for.
    fn matches(&self, id: &str) -> bool {
        let id = id.to_ascii_lowercase();
        if self.has_org {
            id == self.key
        } else {
            id.rsplit('/').next() == Some(self.key.as_str())
        }
    }
}

/// `ORG--NAME` → `ORG/NAME`.
fn id_from_file_stem(stem: &str) -> String {
    stem.replacen("--", "/", 1)
}

/// The single entry of `candidates` that matches, if exactly one does (a
/// bare name published by two organisations is ambiguous).
fn unique<T>(mut candidates: Vec<T>) -> Option<T> {
    if candidates.len() == 1 {
        candidates.pop()
    } else {
        None
    }
}

fn find_in_config_dir(dir: &Path, q: &ModelQuery) -> anyhow::Result<Option<(String, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading model config directory {}", dir.display()))
        }
    };
    let mut hits = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        let path = e.path();
        // ORG--NAME.json, or a directory ORG--NAME/ holding config.json.
        let stem = if let Some(stem) = file.strip_suffix(".json") {
            if stem.ends_with(".hf_quant_config") {
                continue;
            }
            stem.to_string()
        } else if path.join("config.json").is_file() {
            file.clone()
        } else {
            continue;
        };
        let id = id_from_file_stem(&stem);
        if q.matches(&id) {
            let config = if path.is_dir() {
                path.join("config.json")
            } else {
                path
            };
            hits.push((id, config));
        }
    }
    hits.sort();
    Ok(if q.has_org {
        hits.into_iter().next()
    } else {
        unique(hits)
    })
}

/// `X.json` → `X.hf_quant_config.json`; `config.json` → `hf_quant_config.json`.
fn quant_file_beside(config: &Path) -> PathBuf {
    let file = config.file_name().and_then(|f| f.to_str()).unwrap_or("");
    if file == "config.json" {
        return config.with_file_name("hf_quant_config.json");
    }
    let stem = file.strip_suffix(".json").unwrap_or(file);
    config.with_file_name(format!("{stem}.hf_quant_config.json"))
}

fn load_config_file(name: &str, config: &Path, quant: &Path) -> anyhow::Result<ModelArch> {
    let text = std::fs::read_to_string(config)
        .with_context(|| format!("reading model config {}", config.display()))?;
    let quant_text = if quant.is_file() {
        Some(
            std::fs::read_to_string(quant)
                .with_context(|| format!("reading {}", quant.display()))?,
        )
    } else {
        None
    };
    hf::parse_hf_checkpoint(name, &text, quant_text.as_deref())
        .with_context(|| format!("parsing {}", config.display()))
}

fn load_from_path(path: &Path) -> anyhow::Result<ModelArch> {
    if path.is_dir() {
        let config = path.join("config.json");
        if config.is_file() {
            return load_config_file(
                &name_for_dir(path),
                &config,
                &path.join("hf_quant_config.json"),
            );
        }
        // A Hugging Face cache entry (models--ORG--NAME) rather than a snapshot.
        if let Some(snapshot) = best_snapshot(path)? {
            return load_config_file(
                &name_for_dir(path),
                &snapshot.join("config.json"),
                &snapshot.join("hf_quant_config.json"),
            );
        }
        bail!(
            "directory {} has no config.json; {HOW_TO_SUPPLY}",
            path.display()
        );
    }
    let file = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let name = if file == "config.json" {
        path.parent()
            .map(name_for_dir)
            .unwrap_or_else(|| "model".into())
    } else {
        id_from_file_stem(file.strip_suffix(".json").unwrap_or(file))
    };
    load_config_file(&name, path, &quant_file_beside(path))
}

/// A model name for a local directory: `ORG/NAME` for Hugging Face cache
/// entries and their snapshots, else the directory's own name.
fn name_for_dir(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    for d in dir.ancestors().take(3) {
        if let Some(rest) = d
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_prefix("models--"))
        {
            return id_from_file_stem(rest);
        }
    }
    dir.file_name()
        .and_then(|f| f.to_str())
        .map(id_from_file_stem)
        .unwrap_or_else(|| "model".into())
}

fn expand_home(s: &str) -> PathBuf {
    match s.strip_prefix("~/") {
        Some(rest) => home_dir().map_or_else(|| PathBuf::from(s), |h| h.join(rest)),
        None => PathBuf::from(s),
    }
}

fn looks_like_path(s: &str) -> bool {
    s.starts_with('.')
        || s.starts_with('/')
        || s.starts_with('~')
        || s.contains('\\')
        || s.to_ascii_lowercase().ends_with(".json")
        || s.matches('/').count() > 1
}

fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn env_path(key: &str) -> Option<PathBuf> {
    std::env::var_os(key)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The Hugging Face hub cache directory, as `huggingface_hub` picks it.
fn hf_hub_dir() -> Option<PathBuf> {
    if let Some(p) = env_path("HF_HUB_CACHE").or_else(|| env_path("HUGGINGFACE_HUB_CACHE")) {
        return Some(p);
    }
    if let Some(home) = env_path("HF_HOME") {
        return Some(home.join("hub"));
    }
    let cache = env_path("XDG_CACHE_HOME").or_else(|| home_dir().map(|h| h.join(".cache")))?;
    Some(cache.join("huggingface").join("hub"))
}

fn find_in_hf_cache(hub: &Path, q: &ModelQuery) -> anyhow::Result<Option<(String, PathBuf)>> {
    let Ok(entries) = std::fs::read_dir(hub) else {
        return Ok(None); // no cache yet is normal
    };
    let mut hits = Vec::new();
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().to_string();
        let Some(rest) = file.strip_prefix("models--") else {
            continue;
        };
        let id = id_from_file_stem(rest);
        if q.matches(&id) {
            if let Some(snapshot) = best_snapshot(&e.path())? {
                hits.push((id, snapshot));
            }
        }
    }
    hits.sort();
    Ok(if q.has_org {
        hits.into_iter().next()
    } else {
        unique(hits)
    })
}

/// The snapshot of a cache entry to read: the one `refs/main` points at, else
/// the most recently modified one that has a config.json.
fn best_snapshot(model_dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let snapshots = model_dir.join("snapshots");
    if let Ok(main) = std::fs::read_to_string(model_dir.join("refs").join("main")) {
        let s = snapshots.join(main.trim());
        if s.join("config.json").is_file() {
            return Ok(Some(s));
        }
    }
    let Ok(entries) = std::fs::read_dir(&snapshots) else {
        return Ok(None);
    };
    let newest = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("config.json").is_file())
        .max_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    Ok(newest)
}

/// The calibration to predict with: a fitted file from `slaprof calibrate`,
/// or the figures shipped with slaprof.
pub fn load_calibration(path: Option<&Path>) -> anyhow::Result<perf_model::Calibration> {
    match path {
        None => Ok(perf_model::Calibration::builtin().clone()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read calibration file {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a calibration file written by `slaprof calibrate`",
                    p.display()
                )
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":256,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":512,"vocab_size":1000,
        "tie_word_embeddings":false}"#;

    #[test]
    fn query_forms() {
        let q = ModelQuery::new("Qwen--Qwen3-32B");
        assert!(q.matches("qwen/qwen3-32b"));
        let bare = ModelQuery::new("Qwen3-32B");
        assert!(bare.matches("Qwen/Qwen3-32B") && !bare.matches("Qwen/Qwen3-32B-FP8"));
    }

    #[test]
    fn quant_file_names() {
        assert_eq!(
            quant_file_beside(Path::new("/d/nvidia--X-FP8.json")),
            PathBuf::from("/d/nvidia--X-FP8.hf_quant_config.json")
        );
        assert_eq!(
            quant_file_beside(Path::new("/d/config.json")),
            PathBuf::from("/d/hf_quant_config.json")
        );
    }

    #[test]
    fn config_dir_and_paths() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("acme--tiny-FP8.json"), TINY).unwrap();
        std::fs::write(
            dir.path().join("acme--tiny-FP8.hf_quant_config.json"),
            r#"{"quantization":{"quant_algo":"FP8","kv_cache_quant_algo":"FP8"}}"#,
        )
        .unwrap();
        let dirs = vec![dir.path().to_path_buf()];
        let m = resolve_model("ACME/Tiny-fp8", &dirs).unwrap();
        assert_eq!(m.name, "acme/tiny-FP8");
        assert_eq!(m.native_quant.kv, spec::KvDtype::Fp8);
        let by_path = resolve_model(
            dir.path().join("acme--tiny-FP8.json").to_str().unwrap(),
            &[],
        )
        .unwrap();
        assert_eq!(by_path, m);

        let model_dir = dir.path().join("my-model");
        std::fs::create_dir(&model_dir).unwrap();
        std::fs::write(model_dir.join("config.json"), TINY).unwrap();
        let m = resolve_model(model_dir.to_str().unwrap(), &[]).unwrap();
        assert_eq!((m.name.as_str(), m.hidden_size), ("my-model", 256));
    }

    #[test]
    fn hf_cache_layout() {
        let hub = tempfile::tempdir().unwrap();
        let model = hub.path().join("models--acme--tiny");
        let snap = model.join("snapshots").join("abc123");
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(model.join("refs")).unwrap();
        std::fs::write(model.join("refs").join("main"), "abc123\n").unwrap();
        std::fs::write(snap.join("config.json"), TINY).unwrap();
        let (id, found) = find_in_hf_cache(hub.path(), &ModelQuery::new("acme/tiny"))
            .unwrap()
            .unwrap();
        assert_eq!((id.as_str(), found), ("acme/tiny", snap.clone()));
        // The cache entry directory itself also works as a path.
        let m = resolve_model(model.to_str().unwrap(), &[]).unwrap();
        assert_eq!(m.name, "acme/tiny");
    }

    #[test]
    fn unknown_model_error_helps() {
        let err = resolve_model("Qwen/Qwen3-33B", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("Qwen/Qwen3-33B"), "{err}");
        assert!(err.contains("Did you mean 'Qwen/Qwen3-32B'"), "{err}");
        assert!(
            err.contains("--model /path/to/dir-with-config.json"),
            "{err}"
        );
        let err = resolve_model("./nope/config.json", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

    #[test]
    fn catalog_fallback() {
        let m = resolve_model("qwen/qwen3-32b", &[]).unwrap();
        assert_eq!(m.name, "Qwen/Qwen3-32B");
    }

    #[test]
    fn systems_resolve_with_hint() {
        assert_eq!(resolve_system("H200", &[]).unwrap().name, "h200_sxm");
        let err = resolve_system("h20", &[]).unwrap_err().to_string();
        assert!(err.contains("Did you mean 'h200_sxm'"), "{err}");
        assert!(err.contains("--systems-file"), "{err}");
    }

    #[test]
    fn systems_file_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let one = "name: my_gpu\ndescription: test\ngeneration: hopper\nbf16_tflops: 100\nfp8_tflops: 200\n\
                   fp4_tflops: 0\nhbm_gib: 40\nhbm_tbps: 1.5\nnvlink_gbps: 100\nscaleout_gbps: 25\n\
                   gpus_per_node: 4\nnvlink_domain: 4\nsm_count: 80\n";
        let p = dir.path().join("one.yaml");
        std::fs::write(&p, one).unwrap();
        assert_eq!(load_systems_file(&p).unwrap()[0].name, "my_gpu");

        let indented: String = one.lines().map(|l| format!("    {l}\n")).collect();
        let list = format!("systems:\n  - {}", indented.trim_start());
        let p = dir.path().join("list.yaml");
        std::fs::write(&p, &list).unwrap();
        assert_eq!(load_systems_file(&p).unwrap().len(), 1);

        let p = dir.path().join("bad.yaml");
        std::fs::write(&p, format!("{one}hbm_bandwidth: 3\n")).unwrap();
        let err = format!("{:#}", load_systems_file(&p).unwrap_err());
        assert!(err.contains("hbm_bandwidth"), "{err}");

        let p = dir.path().join("zero.yaml");
        std::fs::write(&p, one.replace("hbm_tbps: 1.5", "hbm_tbps: 0")).unwrap();
        let err = format!("{:#}", load_systems_file(&p).unwrap_err());
        assert!(err.contains("hbm_tbps"), "{err}");
    }
}
