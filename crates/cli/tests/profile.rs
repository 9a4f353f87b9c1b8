//! `slaprof profile` end to end through the binary: the seed's example, the
//! three model families, the sample DGDRs, an SLA nothing meets, bad input,
//! and the npz files read back with numpy.

mod common;
use common::slaprof;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const SEED_EXAMPLE: [&str; 16] = [
    "profile",
    "--model",
    "Qwen/Qwen3-32B",
    "--backend",
    "trtllm",
    "--aic-system",
    "h200_sxm",
    "--ttft",
    "200",
    "--itl",
    "20",
    "--isl",
    "3000",
    "--osl",
    "150",
    "--use-ai-configurator",
];

const ARTIFACTS: [&str; 13] = [
    "selected_prefill_interpolation/raw_data.npz",
    "selected_decode_interpolation/raw_data.npz",
    "prefill_performance.png",
    "decode_performance.png",
    "selected_prefill_interpolation/prefill_ttft_interpolation.png",
    "selected_prefill_interpolation/prefill_throughput_interpolation.png",
    "selected_decode_interpolation/decode_itl_interplation.png",
    "selected_decode_interpolation/decode_throughput_interpolation.png",
    "config_with_planner.yaml",
    "mocker_config_with_planner.yaml",
    "profiler_status.yaml",
    "profile_sla.log",
    "profile_results.json",
];

fn results(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("profile_results.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn status(dir: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(dir.join("profiler_status.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn yaml_docs(path: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple(&text).unwrap()
}

/// Reads both npz files with numpy and reports what the planner would see.
fn numpy_summary(dir: &Path) -> serde_json::Value {
    let script = r#"
import json, sys
import numpy as np
d = sys.argv[1]
p = np.load(d + "/selected_prefill_interpolation/raw_data.npz")
q = np.load(d + "/selected_decode_interpolation/raw_data.npz")
out = {
  "prefill_keys": sorted(p.files),
  "decode_keys": sorted(q.files),
  "prefill_isl": p["prefill_isl"].tolist(),
  "prefill_ttft": p["prefill_ttft"].tolist(),
  "prefill_thpt": p["prefill_thpt_per_gpu"].tolist(),
  "isl_dtype": str(p["prefill_isl"].dtype),
  "max_kv_tokens": q["max_kv_tokens"].tolist(),
  "max_kv_dtype": str(q["max_kv_tokens"].dtype),
  "x": q["x_kv_usage"].tolist(),
  "y": q["y_context_length"].tolist(),
  "z_itl": q["z_itl"].tolist(),
  "z_thpt": q["z_thpt_per_gpu"].tolist(),
}
print(json.dumps(out))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir)
        .output()
        .expect("python3 runs (the README's test command installs numpy)");
    assert!(
        out.status.success(),
        "numpy could not read the npz files: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn seed_example_writes_every_artifact_with_physical_numbers() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let assert = slaprof(cache.path())
        .args(SEED_EXAMPLE)
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("Recommendation"))
        .stdout(predicate::str::contains("<- chosen"));
    let stdout = String::from_utf8_lossy(&assert.get_output().stdout).to_string();
    for f in ARTIFACTS {
        assert!(dir.join(f).is_file(), "missing {f}\n{stdout}");
    }
    assert_eq!(status(&dir)["status"], "success");
    let r = results(&dir);
    assert_eq!(r["status"], "success");
    // Dense model: TP only, one node.
    for p in r["prefill_sweep"].as_array().unwrap() {
        assert!(p["label"].as_str().unwrap().starts_with("TP="), "{p}");
    }
    let prefill = &r["prefill"];
    let decode = &r["decode"];
    assert!(prefill["ttft_ms"].as_f64().unwrap() <= 200.0);
    assert!(decode["itl_ms"].as_f64().unwrap() <= 20.0);
    // The choice is the best throughput per GPU among those within the SLA.
    let best_prefill = r["prefill_sweep"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["ttft_ms"].as_f64().unwrap() <= 200.0)
        .map(|p| p["thpt_per_gpu"].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert_eq!(prefill["thpt_per_gpu"].as_f64().unwrap(), best_prefill);

    let np = numpy_summary(&dir);
    assert_eq!(
        np["prefill_keys"],
        serde_json::json!(["prefill_isl", "prefill_thpt_per_gpu", "prefill_ttft"])
    );
    assert_eq!(
        np["decode_keys"],
        serde_json::json!([
            "max_kv_tokens",
            "x_kv_usage",
            "y_context_length",
            "z_itl",
            "z_thpt_per_gpu"
        ])
    );
    assert_eq!(np["isl_dtype"], "int64");
    assert_eq!(np["max_kv_dtype"], "int64");
    let isl = floats(&np["prefill_isl"]);
    let ttft = floats(&np["prefill_ttft"]);
    assert!(isl.len() >= 10, "{isl:?}");
    assert_eq!(isl.len(), ttft.len());
    assert_eq!(isl.len(), floats(&np["prefill_thpt"]).len());
    assert!(
        isl.windows(2).all(|w| w[1] > w[0]),
        "ISL not increasing: {isl:?}"
    );
    assert!(
        ttft.windows(2).all(|w| w[1] > w[0]),
        "TTFT does not grow with ISL: {ttft:?}"
    );
    assert_eq!(isl[0], 100.0);
    // Qwen3-32B: 40960-token context, the seed's 512 of headroom.
    assert!(*isl.last().unwrap() < 40960.0 - 512.0);

    let max_kv = np["max_kv_tokens"].as_array().unwrap();
    assert_eq!(max_kv.len(), 1);
    let max_kv = max_kv[0].as_f64().unwrap();
    let (x, y, z) = (floats(&np["x"]), floats(&np["y"]), floats(&np["z_itl"]));
    assert!(x.len() >= 12, "{x:?}");
    assert_eq!(x.len(), y.len());
    assert_eq!(x.len(), z.len());
    assert_eq!(x.len(), floats(&np["z_thpt"]).len());
    // The grid never asks for more KV than the engine has.
    for (xi, yi) in x.iter().zip(&y) {
        assert!(*xi > 0.0 && *xi <= 1.0, "kv usage {xi}");
        assert!(yi * (xi * max_kv / yi).round() <= max_kv * 1.0001);
    }
    // At each context length, ITL grows with KV usage.
    let mut contexts: Vec<f64> = y.clone();
    contexts.dedup();
    assert!(contexts.len() >= 3, "{contexts:?}");
    for c in contexts {
        let mut pts: Vec<(f64, f64)> = x
            .iter()
            .zip(&y)
            .zip(&z)
            .filter(|((_, yi), _)| **yi == c)
            .map(|((xi, _), zi)| (*xi, *zi))
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        if pts.len() >= 2 {
            assert!(
                pts.last().unwrap().1 > pts[0].1,
                "ITL does not grow with KV usage at context {c}: {pts:?}"
            );
        }
    }

    // The planner ConfigMap carries the same arrays as the npz files.
    let docs = yaml_docs(&dir.join("config_with_planner.yaml"));
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["kind"], "ConfigMap");
    assert_eq!(docs[0]["metadata"]["name"], "planner-profile-data");
    let prefill_json: serde_json::Value =
        serde_json::from_str(docs[0]["data"]["prefill_raw_data.json"].as_str().unwrap()).unwrap();
    assert_eq!(floats(&prefill_json["prefill_ttft"]), ttft);
    let decode_json: serde_json::Value =
        serde_json::from_str(docs[0]["data"]["decode_raw_data.json"].as_str().unwrap()).unwrap();
    assert_eq!(decode_json["max_kv_tokens"].as_f64().unwrap(), max_kv);
    assert_eq!(floats(&decode_json["z_itl"]), z);
    assert_eq!(docs[1]["kind"], "DynamoGraphDeployment");
    let services = docs[1]["spec"]["services"].as_object().unwrap();
    assert!(services.values().any(|s| s["componentType"] == "planner"));
    let mocker = yaml_docs(&dir.join("mocker_config_with_planner.yaml"));
    assert_eq!(mocker[1]["kind"], "DynamoGraphDeployment");
    let mocker_text = std::fs::read_to_string(dir.join("mocker_config_with_planner.yaml")).unwrap();
    assert!(mocker_text.contains("mocker"));
}

fn worker_args(dgd: &serde_json::Value, sub: &str) -> String {
    let services = dgd["spec"]["services"].as_object().unwrap();
    let worker = services
        .values()
        .find(|s| s["subComponentType"] == sub)
        .unwrap_or_else(|| panic!("no {sub} worker in {dgd}"));
    let c = &worker["extraPodSpec"]["mainContainer"];
    let mut parts: Vec<String> = Vec::new();
    for key in ["command", "args"] {
        if let Some(a) = c[key].as_array() {
            parts.extend(a.iter().map(|v| v.as_str().unwrap_or_default().to_string()));
        }
    }
    parts.join(" ")
}

#[test]
fn mla_moe_sweeps_tep_and_dep_on_sglang() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    slaprof(cache.path())
        .args([
            "profile",
            "--model",
            "deepseek-ai/DeepSeek-V3",
            "--backend",
            "sglang",
            "--aic-system",
            "h200_sxm",
            "--ttft",
            "2000",
            "--itl",
            "60",
            "--isl",
            "4000",
            "--osl",
            "500",
            "--simulate",
            "--max-num-gpus",
            "16",
            "--decode-interpolation-granularity",
            "3",
            "--prefill-interpolation-granularity",
            "6",
        ])
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .success();
    let r = results(&dir);
    let labels: Vec<String> = r["prefill_sweep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap().to_string())
        .collect();
    assert!(labels.iter().any(|l| l.starts_with("TEP=")), "{labels:?}");
    assert!(labels.iter().any(|l| l.starts_with("DEP=")), "{labels:?}");
    assert!(labels.iter().all(|l| !l.starts_with("TP=")), "{labels:?}");
    // DeepSeek-V3 in fp8 needs more than one H200.
    assert!(r["plan"]["min_num_gpus"].as_u64().unwrap() >= 8);
    let docs = yaml_docs(&dir.join("config_with_planner.yaml"));
    let prefill = worker_args(&docs[1], "prefill");
    let decode = worker_args(&docs[1], "decode");
    assert!(prefill.contains("dynamo.sglang"), "{prefill}");
    assert!(prefill.contains("prefill"), "{prefill}");
    assert!(decode.contains("decode"), "{decode}");
    let chosen = r["decode"]["label"].as_str().unwrap();
    if chosen.starts_with("DEP=") {
        assert!(decode.contains("--enable-dp-attention"), "{decode}");
    }
}

#[test]
fn gqa_moe_sweeps_tp_tep_and_dep_on_vllm() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    slaprof(cache.path())
        .args([
            "profile",
            "--model",
            "Qwen/Qwen3-30B-A3B",
            "--backend",
            "vllm",
            "--aic-system",
            "h100_sxm",
            "--ttft",
            "300",
            "--itl",
            "25",
            "--isl",
            "2000",
            "--osl",
            "200",
            "--use-ai-configurator",
            "--max-num-gpus",
            "4",
            "--decode-interpolation-granularity",
            "3",
        ])
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .success();
    let r = results(&dir);
    let labels: Vec<String> = r["decode_sweep"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap().to_string())
        .collect();
    for kind in ["TP=", "TEP=", "DEP="] {
        assert!(labels.iter().any(|l| l.starts_with(kind)), "{labels:?}");
    }
    // TP=1, TEP=1 and DEP=1 are one engine: swept once.
    assert_eq!(labels.iter().filter(|l| l.ends_with("=1")).count(), 1);
    let docs = yaml_docs(&dir.join("config_with_planner.yaml"));
    assert!(worker_args(&docs[1], "prefill").contains("dynamo.vllm"));
}

#[test]
fn dense_model_on_blackwell_with_vllm() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    slaprof(cache.path())
        .args([
            "profile",
            "--model",
            "meta-llama/Llama-3.1-70B",
            "--backend",
            "vllm",
            "--aic-system",
            "b200_sxm",
            "--ttft",
            "500",
            "--itl",
            "30",
            "--isl",
            "8000",
            "--osl",
            "1000",
            "--use-ai-configurator",
            "--max-context-length",
            "32768",
        ])
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .success();
    let r = results(&dir);
    assert_eq!(r["plan"]["max_context_length"], 32768);
    let tp = r["decode"]["num_gpus"].as_u64().unwrap();
    let docs = yaml_docs(&dir.join("config_with_planner.yaml"));
    let decode = worker_args(&docs[1], "decode");
    assert!(
        decode.contains(&format!("--tensor-parallel-size {tp}")),
        "{decode}"
    );
}

#[test]
fn sample_dgdrs_run() {
    let root = repo_root();
    for (sample, extra) in [
        ("profile_sla_aic_dgdr.yaml", vec![]),
        // The online sample profiles real engines; offline it runs once
        // told to simulate, on the system the flag names.
        (
            "profile_sla_dgdr.yaml",
            vec!["--use-ai-configurator", "--aic-system", "h100_sxm"],
        ),
        (
            "profile_sla_moe_dgdr.yaml",
            vec!["--use-ai-configurator", "--aic-system", "h200_sxm"],
        ),
        ("mocker_dgdr.yaml", vec![]),
    ] {
        let cache = tempfile::tempdir().unwrap();
        let work = tempfile::tempdir().unwrap();
        let dir = work.path().join("out");
        let out = slaprof(cache.path())
            .arg("profile")
            .arg("--dgdr")
            .arg(root.join("deploy").join(sample))
            .args(&extra)
            .args(["--decode-interpolation-granularity", "3"])
            .arg("--output-dir")
            .arg(&dir)
            .output()
            .unwrap();
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(2),
            "{sample}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let st = status(&dir);
        assert_eq!(
            st["status"],
            if code == Some(0) { "success" } else { "failed" },
            "{sample}"
        );
        assert!(dir.join("profile_results.json").is_file(), "{sample}");
    }
}

#[test]
fn the_online_sample_alone_explains_that_online_profiling_is_not_available() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    slaprof(cache.path())
        .arg("profile")
        .arg("--dgdr")
        .arg(repo_root().join("deploy/profile_sla_dgdr.yaml"))
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .failure()
        .stderr(predicate::str::contains("--use-ai-configurator"));
    assert!(!dir.exists());
}

#[test]
fn an_sla_nothing_meets_exits_2_with_the_closest_configurations() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let mut args = SEED_EXAMPLE.to_vec();
    let ttft = args.iter().position(|a| *a == "--ttft").unwrap();
    args[ttft + 1] = "5";
    slaprof(cache.path())
        .args(&args)
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no configuration meets TTFT <= 5.0 ms",
        ))
        .stderr(predicate::str::contains("closest: TP="))
        .stderr(predicate::str::contains("Relax --ttft"));
    assert_eq!(status(&dir)["status"], "failed");
    assert!(status(&dir)["error"].as_str().unwrap().contains("TTFT"));
    // The sweep is kept; nothing to deploy is written.
    assert!(dir.join("prefill_performance.png").is_file());
    assert!(dir.join("decode_performance.png").is_file());
    assert_eq!(results(&dir)["status"], "failed");
    assert!(!dir.join("config_with_planner.yaml").exists());
    assert!(!dir.join("selected_prefill_interpolation").exists());
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    slaprof(cache.path())
        .args(SEED_EXAMPLE)
        .arg("--dry-run")
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("sweep  TP=1"))
        .stdout(predicate::str::contains("sweep  TP=8"));
    assert!(!dir.exists());
}

#[test]
fn bad_input_fails_clearly_and_leaves_no_output() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let bad_yaml = work.path().join("bad.yaml");
    std::fs::write(
        &bad_yaml,
        "apiVersion: nvidia.com/v1alpha1\nkind: [unclosed\n",
    )
    .unwrap();
    let typo = work.path().join("typo.yaml");
    std::fs::write(
        &typo,
        "sla:\n  isl: 3000\n  osl: 150\n  ttfy: 200\n  itl: 20\n",
    )
    .unwrap();
    let replace = |flag: &str, value: &str| {
        let mut a: Vec<String> = SEED_EXAMPLE.iter().map(|s| s.to_string()).collect();
        let i = a.iter().position(|x| x == flag).unwrap();
        a[i + 1] = value.to_string();
        a
    };
    let with = |extra: &[&str]| {
        let mut a: Vec<String> = SEED_EXAMPLE.iter().map(|s| s.to_string()).collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (replace("--ttft", "-5"), "--ttft -5"),
        (replace("--itl", "0"), "--itl 0"),
        (replace("--isl", "-1"), "--isl -1"),
        (
            with(&["--min-num-gpus", "8", "--max-num-gpus", "2"]),
            "exceeds --max-num-gpus 2",
        ),
        (
            replace("--backend", "tensorflow"),
            "invalid --backend tensorflow: use one of vllm, sglang, trtllm",
        ),
        (
            replace("--aic-system", "tpu_v5"),
            "unknown GPU system 'tpu_v5'",
        ),
        (replace("--model", "nobody/NoSuchModel-7B"), "unknown model"),
        (with(&["--dgdr", bad_yaml.to_str().unwrap()]), "--dgdr"),
        (
            with(&["--profile-config", typo.to_str().unwrap()]),
            "unknown key 'ttfy': did you mean 'ttft'?",
        ),
        (
            with(&["--profile-config", r#"{"sweep": {"aicSytem": "h200_sxm"}}"#]),
            "did you mean 'aicSystem'?",
        ),
        (with(&["--pick-with-webui"]), "not available yet"),
        (
            with(&[
                "--config",
                work.path().join("missing.yaml").to_str().unwrap(),
            ]),
            "missing.yaml",
        ),
        (with(&["--config", bad_yaml.to_str().unwrap()]), "bad.yaml"),
        (
            {
                let mut a = replace("--model", "deepseek-ai/DeepSeek-V3");
                a.extend(["--max-num-gpus".to_string(), "1".to_string()]);
                a
            },
            "no parallel mapping",
        ),
    ];
    for (args, needle) in cases {
        let dir = work.path().join("out");
        let out = slaprof(cache.path())
            .args(&args)
            .arg("--output-dir")
            .arg(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected '{needle}' in {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(!dir.exists(), "{args:?} left {}", dir.display());
    }
}

#[test]
fn flags_override_the_dgdr_and_the_dgdr_fills_the_rest() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    slaprof(cache.path())
        .arg("profile")
        .arg("--dgdr")
        .arg(repo_root().join("deploy/mocker_dgdr.yaml"))
        .args(["--itl", "25", "--max-num-gpus", "4"])
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .success();
    let r = results(&dir);
    // From the flags.
    assert_eq!(r["sla"]["itl_ms"], 25.0);
    assert_eq!(r["plan"]["max_num_gpus"], 4);
    // From the DGDR.
    assert_eq!(r["sla"]["ttft_ms"], 500.0);
    assert_eq!(r["sla"]["isl"], 3000);
    assert_eq!(r["backend"], "trtllm");
    let docs = yaml_docs(&dir.join("config_with_planner.yaml"));
    let dgd = &docs[1];
    assert_eq!(
        dgd["metadata"]["labels"]["dgdr.nvidia.com/name"],
        "sla-mocker"
    );
    let planner = dgd["spec"]["services"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["componentType"] == "planner")
        .unwrap();
    let args = planner["extraPodSpec"]["mainContainer"]["args"].to_string();
    assert!(args.contains("--load-predictor=arima"), "{args}");
    assert!(args.contains("--itl=25"), "{args}");
    // useMocker: the mocker manifest runs slaprof's simulated engine.
    let mocker = yaml_docs(&dir.join("mocker_config_with_planner.yaml"));
    let worker = mocker[1]["spec"]["services"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["subComponentType"] == "decode")
        .unwrap()
        .clone();
    let text = worker.to_string();
    assert!(text.contains("mocker"), "{text}");
    assert!(text.contains("my-registry/slaprof:my-tag"), "{text}");
}

#[test]
fn a_user_base_dgd_keeps_its_own_fields() {
    let cache = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("out");
    let base = work.path().join("disagg.yaml");
    std::fs::write(
        &base,
        r#"apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: my-llm
spec:
  services:
    Frontend:
      componentType: frontend
      dynamoNamespace: my-llm
      replicas: 1
      extraPodSpec:
        mainContainer:
          image: registry.example.com/dynamo/vllm-runtime:custom
          command: ["python3", "-m", "dynamo.frontend"]
        tolerations:
          - key: dedicated
            value: llm
    VllmDecodeWorker:
      componentType: worker
      subComponentType: decode
      dynamoNamespace: my-llm
      replicas: 1
      envFromSecret: hf-token-secret
      resources:
        limits:
          gpu: "1"
      extraPodSpec:
        mainContainer:
          image: registry.example.com/dynamo/vllm-runtime:custom
          workingDir: /workspace
          command: ["python3", "-m", "dynamo.vllm"]
          args: ["--model", "Qwen/Qwen3-8B", "--gpu-memory-utilization", "0.85"]
    VllmPrefillWorker:
      componentType: worker
      subComponentType: prefill
      dynamoNamespace: my-llm
      replicas: 1
      envFromSecret: hf-token-secret
      resources:
        limits:
          gpu: "1"
      extraPodSpec:
        mainContainer:
          image: registry.example.com/dynamo/vllm-runtime:custom
          workingDir: /workspace
          command: ["python3", "-m", "dynamo.vllm"]
          args: ["--model", "Qwen/Qwen3-8B", "--is-prefill-worker", "--gpu-memory-utilization", "0.85"]
"#,
    )
    .unwrap();
    slaprof(cache.path())
        .args([
            "profile",
            "--model",
            "Qwen/Qwen3-8B",
            "--backend",
            "vllm",
            "--aic-system",
            "h100_sxm",
            "--ttft",
            "150",
            "--itl",
            "10",
            "--isl",
            "2000",
            "--osl",
            "300",
            "--simulate",
            "--decode-interpolation-granularity",
            "3",
        ])
        .arg("--config")
        .arg(&base)
        .arg("--output-dir")
        .arg(&dir)
        .assert()
        .success();
    let docs = yaml_docs(&dir.join("config_with_planner.yaml"));
    let dgd = &docs[1];
    assert_eq!(dgd["metadata"]["name"], "my-llm");
    let services = &dgd["spec"]["services"];
    assert_eq!(
        services["Frontend"]["extraPodSpec"]["tolerations"][0]["key"],
        "dedicated"
    );
    let decode = worker_args(dgd, "decode");
    assert!(decode.contains("--gpu-memory-utilization 0.85"), "{decode}");
    let gpus = results(&dir)["decode"]["num_gpus"].as_u64().unwrap();
    assert!(
        decode.contains(&format!("--tensor-parallel-size {gpus}")),
        "{decode}"
    );
    assert_eq!(
        services["VllmDecodeWorker"]["extraPodSpec"]["mainContainer"]["image"],
        "registry.example.com/dynamo/vllm-runtime:custom"
    );
}
