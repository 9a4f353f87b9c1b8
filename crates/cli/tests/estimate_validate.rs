//! `slaprof estimate` and `slaprof validate silicon` end to end, including
//! what they say about bad input.

mod common;
use common::slaprof;
use predicates::prelude::*;
use std::path::{Path, PathBuf};

const QWEN_TP2: [&str; 16] = [
    "estimate",
    "--model",
    "Qwen/Qwen3-32B",
    "--system",
    "h200_sxm",
    "--backend",
    "trtllm",
    "--tp",
    "2",
    "--isl",
    "3000",
    "--osl",
    "150",
    "--concurrency",
    "8",
    "--json",
];

/// `QWEN_TP2` without `--json`.
fn qwen_tp2_human() -> &'static [&'static str] {
    &QWEN_TP2[..QWEN_TP2.len() - 1]
}

fn estimate_json(args: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let out = slaprof(tmp.path()).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "slaprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("estimate --json prints one JSON document")
}

fn positive(v: &serde_json::Value, what: &str) -> f64 {
    let x = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"));
    assert!(x.is_finite() && x > 0.0, "{what} = {x}");
    x
}

/// Memory roles of a prediction (`[["engine", {...}], ...]`).
fn memory_roles(doc: &serde_json::Value) -> Vec<String> {
    let mem = doc["prediction"]["memory"]
        .as_array()
        .expect("prediction.memory is a list");
    mem.iter()
        .map(|entry| {
            let role = entry[0].as_str().expect("memory entry names its role");
            positive(&entry[1]["weights_gib"], "weights_gib");
            positive(&entry[1]["kv_cache_gib"], "kv_cache_gib");
            assert!(entry[1]["max_kv_tokens"].as_u64().unwrap() > 0);
            role.to_string()
        })
        .collect()
}

// --------------------------------------------------------------- estimate ---

#[test]
fn estimate_dense_prints_latency_and_memory_tables() {
    let tmp = tempfile::tempdir().unwrap();
    slaprof(tmp.path())
        .args(qwen_tp2_human())
        .assert()
        .success()
        .stdout(predicate::str::contains("Qwen/Qwen3-32B on h200_sxm"))
        .stdout(predicate::str::contains("TP2"))
        .stdout(predicate::str::is_match(r"(?m)^TTFT\s+\d+\.\d+").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^TPOT\s+\d+\.\d+").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^memory\s+HBM GiB\s+weights").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^engine\s+140\.4\s+\d+\.\d").unwrap())
        .stderr(predicate::str::is_empty());
}

#[test]
fn estimate_json_has_positive_latencies_and_memory() {
    let doc = estimate_json(&QWEN_TP2);
    assert_eq!(doc["model"], "Qwen/Qwen3-32B");
    assert_eq!(doc["system"], "h200_sxm");
    assert_eq!(doc["config"]["backend"], "trtllm");
    assert_eq!(doc["config"]["workload"]["isl"], 3000);
    assert_eq!(doc["config"]["workload"]["osl"], 150);
    let p = &doc["prediction"];
    let ttft = positive(&p["ttft_ms"], "prediction.ttft_ms");
    let tpot = positive(&p["tpot_ms"], "prediction.tpot_ms");
    positive(&p["output_tokens_per_s"], "prediction.output_tokens_per_s");
    assert_eq!(p["num_gpus"], 2);
    // A 3000-token prefill is slower than one decode step.
    assert!(ttft > tpot, "TTFT {ttft} ms, TPOT {tpot} ms");
    assert_eq!(memory_roles(&doc), ["engine"]);
}

#[test]
fn estimate_disaggregated() {
    let args = [
        "estimate",
        "--model",
        "Qwen/Qwen3-32B",
        "--system",
        "h200_sxm",
        "--backend",
        "trtllm",
        "--mode",
        "disagg",
        "--prefill",
        "tp=2",
        "--decode",
        "tp=4",
        "--isl",
        "3000",
        "--osl",
        "150",
        "--concurrency",
        "16",
    ];
    let tmp = tempfile::tempdir().unwrap();
    slaprof(tmp.path())
        .args(args)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "disaggregated: prefill 1 x TP2, decode 1 x TP4",
        ))
        .stdout(predicate::str::contains("(6 GPUs)"))
        .stdout(predicate::str::is_match(r"(?m)^prefill\s+140\.4").unwrap())
        .stdout(predicate::str::is_match(r"(?m)^decode\s+140\.4").unwrap());

    let mut json = args.to_vec();
    json.push("--json");
    let doc = estimate_json(&json);
    positive(&doc["prediction"]["ttft_ms"], "ttft_ms");
    positive(&doc["prediction"]["tpot_ms"], "tpot_ms");
    assert_eq!(doc["prediction"]["num_gpus"], 6);
    assert_eq!(memory_roles(&doc), ["prefill", "decode"]);
    assert_eq!(doc["config"]["mode"]["mode"], "disaggregated");
    assert_eq!(doc["config"]["mode"]["prefill"]["layout"]["tp"], 2);
    assert_eq!(doc["config"]["mode"]["decode"]["layout"]["tp"], 4);
}

#[test]
fn estimate_moe_dep() {
    let args = [
        "estimate",
        "--model",
        "deepseek-ai/DeepSeek-V3",
        "--system",
        "b200_sxm",
        "--backend",
        "sglang",
        "--dp",
        "8",
        "--ep",
        "8",
        "--isl",
        "3000",
        "--osl",
        "150",
        "--concurrency",
        "64",
    ];
    let tmp = tempfile::tempdir().unwrap();
    slaprof(tmp.path())
        .args(args)
        .assert()
        .success()
        .stdout(predicate::str::contains("aggregated: 1 x DEP8"))
        .stdout(predicate::str::contains("(8 GPUs)"))
        .stdout(predicate::str::contains("fp8_block"));

    let mut json = args.to_vec();
    json.push("--json");
    let doc = estimate_json(&json);
    let layout = &doc["config"]["mode"]["workers"]["layout"];
    assert_eq!(
        (
            &layout["tp"],
            &layout["dp"],
            &layout["moe_tp"],
            &layout["moe_ep"]
        ),
        (&1.into(), &8.into(), &1.into(), &8.into())
    );
    assert_eq!(doc["prediction"]["num_gpus"], 8);
    positive(&doc["prediction"]["ttft_ms"], "ttft_ms");
    positive(&doc["prediction"]["tpot_ms"], "tpot_ms");
    assert_eq!(memory_roles(&doc), ["engine"]);
}

/// Runs `estimate` with `QWEN_TP2`'s flags, `replace`d, and checks it fails
/// cleanly with every `expected` fragment on stderr.
fn estimate_fails(replace: &[(&str, &str)], expected: &[&str]) {
    let mut args: Vec<&str> = qwen_tp2_human().to_vec();
    for (flag, value) in replace {
        let i = args
            .iter()
            .position(|a| a == flag)
            .unwrap_or_else(|| panic!("{flag} is one of the flags"));
        args[i + 1] = value;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = slaprof(tmp.path()).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "slaprof {args:?} succeeded:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked:\n{stderr}");
    assert!(
        stderr.starts_with("error: "),
        "{args:?}: unexpected stderr\n{stderr}"
    );
    for e in expected {
        assert!(
            stderr.contains(e),
            "{args:?}: stderr lacks {e:?}:\n{stderr}"
        );
    }
    assert!(out.stdout.is_empty(), "{args:?} printed a result");
}

#[test]
fn estimate_unknown_model_names_it() {
    estimate_fails(
        &[("--model", "acme/NoSuchModel-7B")],
        &["unknown model", "acme/NoSuchModel-7B", "slaprof models"],
    );
}

#[test]
fn estimate_unknown_system_names_it() {
    estimate_fails(
        &[("--system", "tpu_v5e")],
        &["unknown GPU system", "tpu_v5e", "h200_sxm"],
    );
}

#[test]
fn estimate_unknown_backend_names_it() {
    estimate_fails(
        &[("--backend", "tgi")],
        &["unknown backend", "tgi", "trtllm, vllm, sglang"],
    );
}

#[test]
fn estimate_tp_that_does_not_divide_the_heads() {
    estimate_fails(
        &[("--tp", "3")],
        &["tp 3", "64 attention heads", "Qwen3-32B"],
    );
}

#[test]
fn estimate_negative_isl() {
    estimate_fails(&[("--isl", "-5")], &["--isl", "-5"]);
}

#[test]
fn estimate_zero_osl() {
    estimate_fails(&[("--osl", "0")], &["--osl", "got 0"]);
}

#[test]
fn estimate_model_that_does_not_fit() {
    estimate_fails(
        &[
            ("--model", "deepseek-ai/DeepSeek-V3"),
            ("--system", "h100_sxm"),
            ("--tp", "1"),
        ],
        &["deepseek-ai/DeepSeek-V3 does not fit", "h100_sxm", "GiB"],
    );
}

#[test]
fn estimate_errors_are_not_repeated() {
    let mut args: Vec<&str> = qwen_tp2_human().to_vec();
    let i = args.iter().position(|a| *a == "--tp").unwrap();
    args[i + 1] = "3";
    let tmp = tempfile::tempdir().unwrap();
    let out = slaprof(tmp.path()).args(&args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("does not divide").count(), 1, "{stderr}");
}

// --------------------------------------------------------------- validate ---

const REFERENCE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/reference/silicon_calibration.csv"
);

/// The reference silicon CSV's header and rows, or None (with a note) when
/// the shared folder is not beside the repository.
fn reference() -> Option<(csv::StringRecord, Vec<csv::StringRecord>)> {
    let path = Path::new(REFERENCE);
    if !path.exists() {
        eprintln!(
            "note: {} is absent; skipping this validate test",
            path.display()
        );
        return None;
    }
    let mut r = csv::Reader::from_path(path).unwrap();
    let header = r.headers().unwrap().clone();
    let rows = r.records().map(Result::unwrap).collect();
    Some((header, rows))
}

fn col(header: &csv::StringRecord, name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("reference CSV has a {name} column"))
}

fn write_csv(path: &Path, header: &csv::StringRecord, rows: &[csv::StringRecord]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(header).unwrap();
    for r in rows {
        w.write_record(r).unwrap();
    }
    w.flush().unwrap();
}

/// The first `n` rows of each mode whose model is in the catalog.
fn sample_rows(header: &csv::StringRecord, rows: &[csv::StringRecord]) -> Vec<csv::StringRecord> {
    let (mode, model) = (col(header, "mode"), col(header, "model_path"));
    let mut out = Vec::new();
    for want in ["agg", "disagg"] {
        out.extend(
            rows.iter()
                .filter(|r| &r[mode] == want && spec::catalog::find(&r[model]).is_some())
                .take(3)
                .cloned(),
        );
    }
    assert_eq!(out.len(), 6);
    out
}

/// `id,ttft_ms,tpot_ms,error` records of a predictions file.
fn read_predictions(path: &Path) -> Vec<[String; 4]> {
    let mut r = csv::Reader::from_path(path).unwrap();
    assert_eq!(
        r.headers().unwrap().iter().collect::<Vec<_>>(),
        ["id", "ttft_ms", "tpot_ms", "error"]
    );
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            assert_eq!(rec.len(), 4, "{rec:?}");
            [0, 1, 2, 3].map(|i| rec[i].to_string())
        })
        .collect()
}

fn assert_predicted(p: &[String; 4]) {
    let t: f64 = p[1].parse().unwrap_or_else(|_| panic!("{p:?}: ttft"));
    let o: f64 = p[2].parse().unwrap_or_else(|_| panic!("{p:?}: tpot"));
    assert!(t > 0.0 && o > 0.0 && p[3].is_empty(), "{p:?}");
}

/// Files in `dir` other than `keep`.
fn stray_files(dir: &Path, keep: &[&Path]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(stray_files(&p, keep));
        } else if !keep.contains(&p.as_path()) {
            out.push(p);
        }
    }
    out
}

#[test]
fn validate_silicon_predicts_every_row() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let sample = sample_rows(&header, &rows);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.csv");
    let output = tmp.path().join("predictions.csv");
    write_csv(&input, &header, &sample);
    slaprof(tmp.path())
        .args(["validate", "silicon"])
        .arg(&input)
        .arg("--out")
        .arg(&output)
        .assert()
        .success()
        .stdout(predicate::str::contains("MAPE"))
        .stdout(predicate::str::is_match(r"(?m)^\s+all rows\s+6\s+").unwrap())
        .stdout(predicate::str::contains("by system/backend/mode"))
        .stdout(predicate::str::contains("6 rows in"));
    let preds = read_predictions(&output);
    let id = col(&header, "id");
    assert_eq!(
        preds.iter().map(|p| p[0].as_str()).collect::<Vec<_>>(),
        sample.iter().map(|r| &r[id]).collect::<Vec<_>>()
    );
    for p in &preds {
        assert_predicted(p);
    }
    assert!(stray_files(tmp.path(), &[&input, &output]).is_empty());
}

#[test]
fn validate_silicon_json_summary() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let sample = sample_rows(&header, &rows);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.csv");
    write_csv(&input, &header, &sample);
    let out = slaprof(tmp.path())
        .args(["validate", "silicon", "--json"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["overall"]["rows"], 6);
    assert_eq!(doc["overall"]["predicted"], 6);
    assert!(doc["overall"]["ttft_mape"].as_f64().unwrap() >= 0.0);
    assert!(doc["by_mode"]["agg"].is_object() && doc["by_mode"]["disagg"].is_object());
}

#[test]
fn validate_silicon_reports_an_unknown_model_in_its_row() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let (model, system, mode) = (
        col(&header, "model_path"),
        col(&header, "system"),
        col(&header, "mode"),
    );
    let good = rows
        .iter()
        .find(|r| &r[model] == "Qwen/Qwen3-32B" && &r[system] == "h100_sxm" && &r[mode] == "agg")
        .expect("a Qwen3-32B H100 row")
        .clone();
    let mut bad = good.clone();
    let fields: Vec<&str> = bad
        .iter()
        .enumerate()
        .map(|(i, f)| if i == model { "acme/NoSuchModel-1B" } else { f })
        .collect();
    bad = csv::StringRecord::from(fields);

    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.csv");
    let output = tmp.path().join("predictions.csv");
    write_csv(&input, &header, &[bad, good]);
    slaprof(tmp.path())
        .args(["validate", "silicon"])
        .arg(&input)
        .arg("--out")
        .arg(&output)
        .assert()
        .success()
        .stdout(predicate::str::contains("unsupported rows"))
        .stdout(predicate::str::contains("acme/NoSuchModel-1B"));
    let preds = read_predictions(&output);
    assert_eq!(preds.len(), 2);
    assert!(
        preds[0][1].is_empty() && preds[0][2].is_empty(),
        "{:?}",
        preds[0]
    );
    assert!(
        preds[0][3].contains("unknown model 'acme/NoSuchModel-1B'"),
        "{:?}",
        preds[0]
    );
    assert_predicted(&preds[1]);
}

/// Runs `validate silicon` on `file` and checks it fails cleanly with every
/// `expected` fragment on stderr.
fn validate_fails(tmp: &Path, file: &Path, extra: &[&str], expected: &[&str]) {
    let out = slaprof(tmp)
        .args(["validate", "silicon"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "validate {} succeeded:\n{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "panicked:\n{stderr}");
    assert!(stderr.starts_with("error: "), "unexpected stderr\n{stderr}");
    for e in expected {
        assert!(stderr.contains(e), "stderr lacks {e:?}:\n{stderr}");
    }
}

#[test]
fn validate_silicon_rejects_a_csv_without_a_required_column() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let drop = col(&header, "model_path");
    let without = |r: &csv::StringRecord| {
        csv::StringRecord::from(
            r.iter()
                .enumerate()
                .filter(|(i, _)| *i != drop)
                .map(|(_, f)| f)
                .collect::<Vec<_>>(),
        )
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("no_model.csv");
    let rows: Vec<_> = rows.iter().take(2).map(without).collect();
    write_csv(&input, &without(&header), &rows);
    validate_fails(
        tmp.path(),
        &input,
        &[],
        &["no_model.csv", "column 'model_path' is missing"],
    );
}

#[test]
fn validate_silicon_rejects_malformed_lines() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();

    // A line that is not a record of the header's columns.
    let garbage = tmp.path().join("garbage.csv");
    write_csv(&garbage, &header, &rows[..1]);
    let mut text = std::fs::read_to_string(&garbage).unwrap();
    text.push_str("this is not, a silicon row\n");
    std::fs::write(&garbage, text).unwrap();
    validate_fails(tmp.path(), &garbage, &[], &["garbage.csv", "line 3"]);

    // A record whose isl is not a number.
    let isl = col(&header, "isl");
    let bad: Vec<&str> = rows[0]
        .iter()
        .enumerate()
        .map(|(i, f)| if i == isl { "lots" } else { f })
        .collect();
    let not_number = tmp.path().join("not_number.csv");
    write_csv(
        &not_number,
        &header,
        &[rows[0].clone(), csv::StringRecord::from(bad)],
    );
    validate_fails(tmp.path(), &not_number, &[], &["not_number.csv", "line 3"]);

    // Only a header.
    let empty = tmp.path().join("empty.csv");
    write_csv(&empty, &header, &[]);
    validate_fails(tmp.path(), &empty, &[], &["empty.csv", "no rows"]);
}

#[test]
fn validate_silicon_names_a_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no_such_rows.csv");
    validate_fails(tmp.path(), &missing, &[], &["no_such_rows.csv"]);
}

#[test]
fn validate_silicon_out_into_a_missing_directory_leaves_nothing_behind() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let sample = sample_rows(&header, &rows);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.csv");
    write_csv(&input, &header, &sample);
    let out = tmp.path().join("no_such_dir").join("predictions.csv");
    validate_fails(
        tmp.path(),
        &input,
        &["--out", out.to_str().unwrap()],
        &["no_such_dir"],
    );
    assert!(!out.exists());
    assert!(!tmp.path().join("no_such_dir").exists());
    let stray = stray_files(tmp.path(), &[&input]);
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn validate_silicon_out_onto_a_directory_leaves_nothing_behind() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let sample = sample_rows(&header, &rows);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.csv");
    write_csv(&input, &header, &sample);
    let out = tmp.path().join("a_directory");
    std::fs::create_dir(&out).unwrap();
    validate_fails(
        tmp.path(),
        &input,
        &["--out", out.to_str().unwrap()],
        &["a_directory"],
    );
    let stray = stray_files(tmp.path(), &[&input]);
    assert!(stray.is_empty(), "left behind: {stray:?}");
}

#[test]
fn calibrate_writes_a_calibration_that_validate_and_estimate_use() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let sample = sample_rows(&header, &rows);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.csv");
    let cal = tmp.path().join("cal.json");
    write_csv(&input, &header, &sample);
    slaprof(tmp.path())
        .args(["calibrate", "silicon"])
        .arg(&input)
        .arg("--out")
        .arg(&cal)
        .args(["--sweeps", "1"])
        .assert()
        .success()
        .stdout(predicate::str::contains("fitted rows (6)"));
    let fitted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cal).unwrap()).unwrap();
    for b in ["trtllm", "vllm", "sglang"] {
        let eff = fitted[b]["gemm_eff"].as_f64().unwrap();
        assert!(eff > 0.0 && eff <= 1.0, "{b} gemm_eff {eff}");
    }
    slaprof(tmp.path())
        .args(["validate", "silicon"])
        .arg(&input)
        .arg("--calibration")
        .arg(&cal)
        .assert()
        .success()
        .stdout(predicate::str::contains("6 rows in"));
    let mut args: Vec<&str> = qwen_tp2_human().to_vec();
    args.push("--calibration");
    slaprof(tmp.path())
        .args(&args)
        .arg(&cal)
        .assert()
        .success()
        .stdout(predicate::str::contains("TTFT"));
}

#[test]
fn a_bad_calibration_file_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"trtllm": {"gemm_eff": 0.5}}"#).unwrap();
    let mut args: Vec<&str> = qwen_tp2_human().to_vec();
    args.push("--calibration");
    slaprof(tmp.path())
        .args(&args)
        .arg(&bad)
        .assert()
        .failure()
        .stderr(predicate::str::contains("bad.json"))
        .stderr(predicate::str::contains("panicked").not());
}

#[test]
fn estimate_finds_a_model_in_the_hugging_face_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let snapshot = tmp
        .path()
        .join("hub/models--acme--tiny-llama/snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    // A small Llama-style model described with the standard fields only.
    std::fs::write(
        snapshot.join("config.json"),
        r#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 2048,
            "num_hidden_layers": 16, "num_attention_heads": 32,
            "num_key_value_heads": 8, "intermediate_size": 8192,
            "vocab_size": 32000, "max_position_embeddings": 8192}"#,
    )
    .unwrap();
    let out = slaprof(tmp.path())
        .args([
            "estimate",
            "--model",
            "acme/tiny-llama",
            "--system",
            "h100_sxm",
            "--backend",
            "vllm",
            "--isl",
            "512",
            "--osl",
            "64",
            "--concurrency",
            "4",
            "--json",
        ])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let doc: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(doc["model"], "acme/tiny-llama");
    assert!(doc["prediction"]["ttft_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn estimate_requests_longer_than_the_context_window() {
    // Qwen3-32B's context is 40,960 tokens.
    estimate_fails(
        &[("--isl", "45000")],
        &["45000", "40960", "Qwen/Qwen3-32B", "shorten"],
    );
}

#[test]
fn estimate_warns_when_the_request_rate_overloads_the_deployment() {
    let tmp = tempfile::tempdir().unwrap();
    let mut args: Vec<&str> = qwen_tp2_human().to_vec();
    let i = args.iter().position(|a| *a == "--concurrency").unwrap();
    args[i] = "--request-rate";
    args[i + 1] = "500";
    slaprof(tmp.path())
        .args(&args)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "warning: the deployment completes",
        ))
        .stdout(predicate::str::contains("500 req/s arrive"));
    // A rate it can serve gets no warning.
    args[i + 1] = "0.5";
    slaprof(tmp.path())
        .args(&args)
        .assert()
        .success()
        .stdout(predicate::str::contains("warning").not());
}

#[test]
fn calibrate_complete_rows_only_leaves_out_disagg_rows_without_worker_counts() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let sample = sample_rows(&header, &rows);
    let (mode, pw, dw) = (
        col(&header, "mode"),
        col(&header, "prefill_num_workers"),
        col(&header, "decode_num_workers"),
    );
    let incomplete = sample
        .iter()
        .filter(|r| &r[mode] == "disagg" && (r[pw].is_empty() || r[dw].is_empty()))
        .count();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.csv");
    write_csv(&input, &header, &sample);
    slaprof(tmp.path())
        .args(["calibrate", "silicon"])
        .arg(&input)
        .arg("--out")
        .arg(tmp.path().join("cal.json"))
        .args(["--sweeps", "1", "--complete-rows-only"])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "fitted rows ({})",
            sample.len() - incomplete
        )));
}

#[test]
fn calibrate_with_no_sweeps_still_writes_its_starting_figures() {
    let Some((header, rows)) = reference() else {
        return;
    };
    let sample = sample_rows(&header, &rows);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("rows.csv");
    let cal = tmp.path().join("cal.json");
    write_csv(&input, &header, &sample);
    slaprof(tmp.path())
        .args(["calibrate", "silicon"])
        .arg(&input)
        .arg("--out")
        .arg(&cal)
        .args(["--sweeps", "0"])
        .assert()
        .success()
        .stdout(predicate::str::contains("wrote"));
    let fitted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cal).unwrap()).unwrap();
    assert!(fitted["trtllm"]["gemm_eff"].as_f64().unwrap() > 0.0);
    assert!(stray_files(tmp.path(), &[&input, &cal]).is_empty());
}
