//! `slaprof models` and `slaprof systems` end to end.

mod common;
use common::slaprof;
use predicates::prelude::*;

const MY_GPU: &str = "\
name: my_gpu
description: Test accelerator
generation: hopper
bf16_tflops: 500
fp8_tflops: 1000
fp4_tflops: 0
hbm_gib: 96
hbm_tbps: 4.0
nvlink_gbps: 450
scaleout_gbps: 50
gpus_per_node: 8
nvlink_domain: 8
sm_count: 120
";

#[test]
fn models_lists_the_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    slaprof(tmp.path())
        .arg("models")
        .assert()
        .success()
        .stdout(predicate::str::contains("Qwen/Qwen3-32B"))
        .stdout(predicate::str::contains("deepseek-ai/DeepSeek-V3"))
        .stdout(predicate::str::contains("mla_moe"));
}

#[test]
fn models_json_parses() {
    let tmp = tempfile::tempdir().unwrap();
    let out = slaprof(tmp.path())
        .args(["models", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let list = v.as_array().unwrap();
    assert!(list.len() >= 30, "{} models", list.len());
    let ds = list
        .iter()
        .find(|m| m["name"] == "deepseek-ai/DeepSeek-V3")
        .unwrap();
    assert_eq!(ds["family"], "mla_moe");
    assert_eq!(ds["mla"]["kv_lora_rank"], 512);
    let total = ds["total_params"].as_f64().unwrap();
    assert!((total / 671e9 - 1.0).abs() < 0.03, "{total}");
}

#[test]
fn models_resolves_a_local_config_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-model");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures":["SomethingNewForCausalLM"],"hidden_size":512,"num_hidden_layers":4,
            "num_attention_heads":8,"intermediate_size":2048,"vocab_size":32000}"#,
    )
    .unwrap();
    slaprof(tmp.path())
        .arg("models")
        .arg(&dir)
        .assert()
        .success()
        .stdout(predicate::str::contains("SomethingNewForCausalLM"))
        .stdout(predicate::str::contains("dense"));
}

#[test]
fn unknown_model_suggests_and_explains() {
    let tmp = tempfile::tempdir().unwrap();
    slaprof(tmp.path())
        .args(["models", "Qwen/Qwen3-33B"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("Qwen/Qwen3-33B"))
        .stderr(predicate::str::contains("Did you mean 'Qwen/Qwen3-32B'"))
        .stderr(predicate::str::contains("config.json"));
}

#[test]
fn config_missing_a_field_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("acme--broken.json");
    std::fs::write(
        &file,
        r#"{"architectures":["BrokenForCausalLM"],"hidden_size":512,"num_hidden_layers":4,"vocab_size":100}"#,
    )
    .unwrap();
    slaprof(tmp.path())
        .args(["models", "--model-configs"])
        .arg(tmp.path())
        .arg("acme/broken")
        .assert()
        .failure()
        .stderr(predicate::str::contains("num_attention_heads"))
        .stderr(predicate::str::contains("BrokenForCausalLM"));
}

#[test]
fn systems_lists_builtins() {
    let tmp = tempfile::tempdir().unwrap();
    slaprof(tmp.path())
        .arg("systems")
        .assert()
        .success()
        .stdout(predicate::str::contains("h200_sxm"))
        .stdout(predicate::str::contains("gb200"));
    let out = slaprof(tmp.path())
        .args(["systems", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "b200_sxm"));
}

#[test]
fn systems_loads_a_user_yaml_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("mine.yaml");
    std::fs::write(&file, MY_GPU).unwrap();
    slaprof(tmp.path())
        .args(["systems", "--systems-file"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("my_gpu"))
        .stdout(predicate::str::contains("h100_sxm"));
    // And it resolves by name.
    slaprof(tmp.path())
        .args(["systems", "MY_GPU", "--json", "--systems-file"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("\"sm_count\": 120"));
}

#[test]
fn systems_json_round_trips_through_a_systems_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = slaprof(tmp.path())
        .args(["systems", "h100", "--json"])
        .output()
        .unwrap();
    let file = tmp.path().join("dump.yaml");
    std::fs::write(&file, &out.stdout).unwrap();
    slaprof(tmp.path())
        .args(["systems", "--systems-file"])
        .arg(&file)
        .assert()
        .success()
        .stdout(predicate::str::contains("file"));
}

#[test]
fn systems_file_with_unknown_key_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.yaml");
    std::fs::write(&file, format!("{MY_GPU}hbm_bandwidth_tbps: 4.0\n")).unwrap();
    slaprof(tmp.path())
        .args(["systems", "--systems-file"])
        .arg(&file)
        .assert()
        .failure()
        .stderr(predicate::str::contains("hbm_bandwidth_tbps"));
}

#[test]
fn unknown_system_suggests() {
    let tmp = tempfile::tempdir().unwrap();
    slaprof(tmp.path())
        .args(["systems", "h20"])
        .assert()
        .failure()
        .stderr(predicate::str::contains("Did you mean 'h200_sxm'"));
}
