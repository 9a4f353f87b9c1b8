//! DGD generation: built-in templates, per-backend worker flags for TP, TEP
//! and DEP, multi-node engines, the planner service and its ConfigMap, user
//! base configs, mocker deployments and the errors users see.

use profiler::deployment::{
    builtin_base, config_with_planner_yaml, generate, generate_mocker, is_k8s_name, parse_dgd,
    planner_args, profile_data_configmap, to_yaml, worker_args, worker_command, DeploymentError,
    DeploymentPlan, Dgd, ModelCache, Role, PROFILE_DATA_CONFIGMAP, PROFILE_DATA_MOUNT_PATH,
};
use serde_json::{json, Value};
use spec::{Backend, ParallelLayout};

const MODEL: &str = "Qwen/Qwen3-32B";
const MOE: &str = "deepseek-ai/DeepSeek-R1";

fn s(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn plan(
    backend: Backend,
    model: &str,
    prefill: ParallelLayout,
    decode: ParallelLayout,
) -> DeploymentPlan {
    DeploymentPlan::new(model, backend, prefill, decode)
}

fn worker(dgd: &Dgd, role: Role) -> String {
    dgd.worker_name(role).expect("worker present").to_string()
}

/// Args of a generated worker, and its parsed `--override-engine-args`.
fn trtllm_override(args: &[String]) -> (Vec<String>, Value) {
    let i = args
        .iter()
        .position(|a| a == "--override-engine-args")
        .expect("override present");
    let json: Value = serde_json::from_str(&args[i + 1]).unwrap();
    let mut rest = args.to_vec();
    rest.drain(i..i + 2);
    (rest, json)
}

fn gen(p: &DeploymentPlan) -> Dgd {
    generate(&builtin_base(p.backend), p).unwrap()
}

#[test]
fn builtin_templates_are_valid_disaggregated_dgds() {
    for b in Backend::ALL {
        let dgd = builtin_base(b);
        let name = dgd.name().unwrap();
        assert_eq!(name, format!("{}-disagg", b.as_str()));
        assert!(is_k8s_name(name));
        assert_eq!(dgd.frontend_name(), Some("Frontend"));
        assert_eq!(dgd.backend(), Some(b));
        let v = dgd.as_value();
        assert_eq!(v["apiVersion"], "nvidia.com/v1alpha1");
        assert_eq!(v["kind"], "DynamoGraphDeployment");
        assert_eq!(
            v["spec"]["services"]["Frontend"]["componentType"],
            "frontend"
        );
        for role in Role::BOTH {
            let w = worker(&dgd, role);
            let svc = dgd.service(&w).unwrap();
            assert_eq!(svc["componentType"], "worker");
            assert_eq!(svc["subComponentType"], role.as_str());
            assert_eq!(svc["envFromSecret"], "hf-token-secret");
            assert_eq!(dgd.gpu_limit(&w), Some(1));
            assert_eq!(dgd.replicas(&w), Some(1));
            assert_eq!(dgd.command(&w), worker_command(b));
            assert_eq!(dgd.image(&w), dgd.image("Frontend"));
            let args = dgd.args(&w);
            match b {
                Backend::Vllm => {
                    assert_eq!(&args[..2], &s(&["--model", "Qwen/Qwen3-0.6B"])[..]);
                    assert_eq!(
                        args.contains(&"--is-prefill-worker".to_string()),
                        role == Role::Prefill
                    );
                }
                _ => {
                    assert_eq!(&args[..2], &s(&["--model-path", "Qwen/Qwen3-0.6B"])[..]);
                    assert!(args
                        .windows(2)
                        .any(|p| p == s(&["--served-model-name", "Qwen/Qwen3-0.6B"])));
                    assert!(args
                        .windows(2)
                        .any(|p| p == s(&["--disaggregation-mode", role.as_str()])));
                }
            }
        }
        // A template survives YAML unchanged.
        assert_eq!(parse_dgd(&to_yaml(&dgd).unwrap()).unwrap(), dgd);
    }
    assert_eq!(
        builtin_base(Backend::Sglang).worker_name(Role::Prefill),
        Some("prefill")
    );
    assert_eq!(
        builtin_base(Backend::Trtllm).worker_name(Role::Decode),
        Some("TRTLLMDecodeWorker")
    );
    assert_eq!(
        builtin_base(Backend::Vllm).worker_name(Role::Prefill),
        Some("VllmPrefillWorker")
    );
}

#[test]
fn vllm_tensor_parallel() {
    let mut p = plan(
        Backend::Vllm,
        MODEL,
        ParallelLayout::tp(2),
        ParallelLayout::tp(4),
    );
    p.prefill_replicas = 3;
    p.decode_replicas = 2;
    let dgd = gen(&p);
    let (pw, dw) = (worker(&dgd, Role::Prefill), worker(&dgd, Role::Decode));
    assert_eq!(
        dgd.args(&pw),
        s(&[
            "--model",
            MODEL,
            "--is-prefill-worker",
            "--tensor-parallel-size",
            "2"
        ])
    );
    assert_eq!(
        dgd.args(&dw),
        s(&["--model", MODEL, "--tensor-parallel-size", "4"])
    );
    assert_eq!((dgd.gpu_limit(&pw), dgd.gpu_limit(&dw)), (Some(2), Some(4)));
    assert_eq!((dgd.replicas(&pw), dgd.replicas(&dw)), (Some(3), Some(2)));
    assert_eq!(
        dgd.service(&dw).unwrap()["resources"]["requests"]["gpu"],
        "4"
    );
    assert_eq!(dgd.node_count(&pw), None);
    assert_eq!(dgd.node_count(&dw), None);
}

#[test]
fn vllm_tep_and_multinode_dep() {
    let p = plan(
        Backend::Vllm,
        MOE,
        ParallelLayout::tep(8),
        ParallelLayout::dep(16),
    );
    let dgd = gen(&p);
    let (pw, dw) = (worker(&dgd, Role::Prefill), worker(&dgd, Role::Decode));
    assert_eq!(
        dgd.args(&pw),
        s(&[
            "--model",
            MOE,
            "--is-prefill-worker",
            "--tensor-parallel-size",
            "8",
            "--data-parallel-size",
            "1",
            "--enable-expert-parallel"
        ])
    );
    assert_eq!(
        dgd.args(&dw),
        s(&[
            "--model",
            MOE,
            "--tensor-parallel-size",
            "1",
            "--data-parallel-size",
            "16",
            "--enable-expert-parallel"
        ])
    );
    assert_eq!((dgd.gpu_limit(&pw), dgd.node_count(&pw)), (Some(8), None));
    // 16 GPUs on 8-GPU nodes: two nodes with 8 GPUs each.
    assert_eq!(
        (dgd.gpu_limit(&dw), dgd.node_count(&dw)),
        (Some(8), Some(2))
    );
}

#[test]
fn sglang_tp_tep_dep() {
    let common = |role: Role| {
        s(&[
            "--page-size",
            "16",
            "--tp",
            "X",
            "--trust-remote-code",
            "--skip-tokenizer-init",
            "--disaggregation-mode",
            role.as_str(),
            "--disaggregation-transfer-backend",
            "nixl",
            "--disaggregation-bootstrap-port",
            "12345",
            "--host",
            "0.0.0.0",
        ])
    };
    let expect = |role: Role, tp: &str, extra: &[&str]| {
        let mut a = s(&["--model-path", MOE, "--served-model-name", MOE]);
        let mut c = common(role);
        c[3] = tp.to_string();
        a.extend(c);
        a.extend(s(extra));
        a
    };

    let dgd = gen(&plan(
        Backend::Sglang,
        MOE,
        ParallelLayout::tp(4),
        ParallelLayout::tp(8),
    ));
    assert_eq!(dgd.args("prefill"), expect(Role::Prefill, "4", &[]));
    assert_eq!(dgd.args("decode"), expect(Role::Decode, "8", &[]));

    let mut p = plan(
        Backend::Sglang,
        MOE,
        ParallelLayout::tep(16),
        ParallelLayout::dep(32),
    );
    p.gpus_per_node = 8;
    let dgd = gen(&p);
    assert_eq!(
        dgd.args("prefill"),
        expect(Role::Prefill, "16", &["--ep-size", "16"])
    );
    assert_eq!(
        dgd.args("decode"),
        expect(
            Role::Decode,
            "32",
            &["--dp", "32", "--enable-dp-attention", "--ep-size", "32"]
        )
    );
    assert_eq!(
        (dgd.gpu_limit("prefill"), dgd.node_count("prefill")),
        (Some(8), Some(2))
    );
    assert_eq!(
        (dgd.gpu_limit("decode"), dgd.node_count("decode")),
        (Some(8), Some(4))
    );

    // Going back from DEP to TP drops the DP-attention and EP flags.
    let dep = generate(&builtin_base(Backend::Sglang), &p).unwrap();
    let back = generate(
        &dep,
        &plan(
            Backend::Sglang,
            MOE,
            ParallelLayout::tp(2),
            ParallelLayout::tp(2),
        ),
    )
    .unwrap();
    assert_eq!(back.args("decode"), expect(Role::Decode, "2", &[]));
    assert_eq!(back.node_count("decode"), None);
    assert_eq!(back.gpu_limit("decode"), Some(2));
}

#[test]
fn trtllm_tp_tep_dep_via_override_engine_args() {
    let base_args = |role: Role| {
        s(&[
            "--model-path",
            MOE,
            "--served-model-name",
            MOE,
            "--extra-engine-args",
            &format!("./examples/backends/trtllm/engine_configs/qwen3/{role}.yaml"),
            "--disaggregation-mode",
            role.as_str(),
        ])
    };
    let dgd = gen(&plan(
        Backend::Trtllm,
        MOE,
        ParallelLayout::tp(1),
        ParallelLayout::tp(2),
    ));
    let (rest, over) = trtllm_override(&dgd.args("TRTLLMDecodeWorker"));
    assert_eq!(rest, base_args(Role::Decode));
    assert_eq!(over, json!({"tensor_parallel_size": 2}));
    assert_eq!(dgd.gpu_limit("TRTLLMDecodeWorker"), Some(2));
    // The override goes last, as Dynamo appends it.
    let args = dgd.args("TRTLLMPrefillWorker");
    assert_eq!(args[args.len() - 2], "--override-engine-args");

    let dgd = gen(&plan(
        Backend::Trtllm,
        MOE,
        ParallelLayout::tep(8),
        ParallelLayout::dep(16),
    ));
    let (rest, over) = trtllm_override(&dgd.args("TRTLLMPrefillWorker"));
    assert_eq!(rest, base_args(Role::Prefill));
    assert_eq!(
        over,
        json!({"tensor_parallel_size": 8, "moe_expert_parallel_size": 8, "moe_tensor_parallel_size": 1,
               "enable_attention_dp": false})
    );
    let (_, over) = trtllm_override(&dgd.args("TRTLLMDecodeWorker"));
    assert_eq!(
        over,
        json!({"tensor_parallel_size": 16, "moe_expert_parallel_size": 16, "moe_tensor_parallel_size": 1,
               "enable_attention_dp": true})
    );
    assert_eq!(dgd.node_count("TRTLLMDecodeWorker"), Some(2));
    assert_eq!(dgd.gpu_limit("TRTLLMDecodeWorker"), Some(8));
}

#[test]
fn trtllm_keeps_user_overrides_and_drops_wideep_for_tep() {
    let mut base = builtin_base(Backend::Trtllm).into_value();
    let args = base["spec"]["services"]["TRTLLMPrefillWorker"]["extraPodSpec"]["mainContainer"]
        ["args"]
        .as_array_mut()
        .unwrap();
    args.push("--override-engine-args".into());
    args.push(r#"{"max_num_tokens": 8192, "moe_config": {"backend": "WIDEEP"}}"#.into());
    let base = Dgd::try_from(base).unwrap();
    let dgd = generate(
        &base,
        &plan(
            Backend::Trtllm,
            MOE,
            ParallelLayout::tep(4),
            ParallelLayout::tp(4),
        ),
    )
    .unwrap();
    let (_, over) = trtllm_override(&dgd.args("TRTLLMPrefillWorker"));
    assert_eq!(over["max_num_tokens"], 8192);
    assert!(over.get("moe_config").is_none());
    assert_eq!(over["moe_expert_parallel_size"], 4);
}

#[test]
fn planner_service_mounts_profile_data() {
    let mut p = plan(
        Backend::Vllm,
        MODEL,
        ParallelLayout::tp(2),
        ParallelLayout::tp(4),
    );
    p.ttft_ms = 200.0;
    p.itl_ms = 20.0;
    p.planner_args
        .insert("planner_min_endpoint".into(), json!(2));
    p.planner_args
        .insert("planner_adjustment_interval".into(), json!(60));
    p.planner_args
        .insert("planner_load_predictor".into(), json!("linear"));
    p.planner_args
        .insert("planner_no_correction".into(), json!(true));
    p.planner_args
        .insert("planner_no_operation".into(), json!(false));
    // Set by the profiler itself; a DGDR value must not fight it.
    p.planner_args.insert("planner_ttft".into(), json!(999));
    let dgd = gen(&p);
    let planner = dgd.service("Planner").expect("planner service");
    assert_eq!(planner["componentType"], "planner");
    assert_eq!(planner["replicas"], 1);
    assert_eq!(planner["dynamoNamespace"], "vllm-disagg");
    assert_eq!(dgd.image("Planner"), dgd.image("Frontend"));
    assert_eq!(
        dgd.command("Planner"),
        s(&["python3", "-m", "dynamo.planner.planner_sla"])
    );
    let expected = s(&[
        "--backend=vllm",
        "--itl=20.0",
        "--ttft=200.0",
        "--adjustment-interval=60",
        "--environment=kubernetes",
        "--load-predictor=linear",
        "--min-endpoint=2",
        "--no-correction",
        "--prefill-engine-num-gpu=2",
        "--decode-engine-num-gpu=4",
        "--profile-results-dir=/workspace/profiling_results",
    ]);
    assert_eq!(dgd.args("Planner"), expected);
    assert_eq!(planner_args(&p).unwrap(), expected);
    let pod = &planner["extraPodSpec"];
    assert_eq!(
        pod["volumes"],
        json!([{"name": PROFILE_DATA_CONFIGMAP, "configMap": {"name": PROFILE_DATA_CONFIGMAP}}])
    );
    assert_eq!(
        pod["mainContainer"]["volumeMounts"],
        json!([{"name": PROFILE_DATA_CONFIGMAP, "mountPath": PROFILE_DATA_MOUNT_PATH, "readOnly": true}])
    );
}

const USER_BASE: &str = r#"
# A user's own disaggregated config with fields slaprof does not model.
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata:
  name: my-llm
  annotations:
    team: inference
spec:
  envs:
    - name: DYN_LOG
      value: debug
  services:
    Frontend:
      dynamoNamespace: my-llm
      componentType: frontend
      replicas: 2
      extraPodSpec:
        mainContainer:
          image: registry.example.com/vllm-runtime:custom
          args: ["python3 -m dynamo.frontend --http-port 8000"]
    Planner:
      dynamoNamespace: my-llm
      componentType: planner
      replicas: 1
      pvc:
        create: false
        name: planner-pvc
        mountPoint: /data
    MyPrefill:
      dynamoNamespace: my-llm
      componentType: worker
      subComponentType: prefill
      envFromSecret: my-hf-secret
      livenessProbe:
        exec:
          command: [/bin/sh, -c, "exit 0"]
        periodSeconds: 60
      sharedMemory:
        size: 80Gi
      resources:
        requests:
          cpu: "32"
          memory: 40Gi
          gpu: "1"
        limits:
          gpu: "1"
          custom:
            rdma/ib: "1"
      extraPodSpec:
        tolerations:
          - key: nvidia.com/gpu
            operator: Exists
        mainContainer:
          image: registry.example.com/vllm-runtime:custom
          workingDir: /workspace/components/backends/vllm
          command: [/bin/sh, -c]
          args:
            - "python3 -m dynamo.vllm --model Qwen/Qwen3-0.6B --enforce-eager --is-prefill-worker 2>&1 | tee /tmp/vllm.log"
    MyDecode:
      dynamoNamespace: my-llm
      componentType: worker
      subComponentType: decode
      replicas: 1
      resources:
        limits:
          gpu: 1
      extraPodSpec:
        mainContainer:
          image: registry.example.com/vllm-runtime:custom
          command: [python3, -m, dynamo.vllm]
          args: [--model, Qwen/Qwen3-0.6B, --block-size, "64", --gpu-memory-utilization, "0.9"]
    Router:
      componentType: router
      someFutureField: {a: [1, 2]}
"#;

#[test]
fn user_base_keeps_unknown_fields_and_shell_form() {
    let base = parse_dgd(USER_BASE).unwrap();
    assert_eq!(base.worker_name(Role::Prefill), Some("MyPrefill"));
    assert_eq!(base.backend(), Some(Backend::Vllm));
    let mut p = plan(
        Backend::Vllm,
        MODEL,
        ParallelLayout::tp(2),
        ParallelLayout::tp(4),
    );
    p.prefill_replicas = 2;
    let dgd = generate(&base, &p).unwrap();
    let v = dgd.as_value();
    let b = base.as_value();
    assert_eq!(v["metadata"]["annotations"], b["metadata"]["annotations"]);
    assert_eq!(v["spec"]["envs"], b["spec"]["envs"]);
    assert_eq!(
        v["spec"]["services"]["Router"],
        b["spec"]["services"]["Router"]
    );
    assert_eq!(
        v["spec"]["services"]["Frontend"],
        b["spec"]["services"]["Frontend"]
    );
    let pre = &v["spec"]["services"]["MyPrefill"];
    let pre_base = &b["spec"]["services"]["MyPrefill"];
    for key in [
        "livenessProbe",
        "sharedMemory",
        "envFromSecret",
        "dynamoNamespace",
    ] {
        assert_eq!(pre[key], pre_base[key], "{key}");
    }
    assert_eq!(
        pre["extraPodSpec"]["tolerations"],
        pre_base["extraPodSpec"]["tolerations"]
    );
    assert_eq!(pre["resources"]["requests"]["cpu"], "32");
    assert_eq!(pre["resources"]["requests"]["gpu"], "2");
    assert_eq!(pre["resources"]["limits"]["custom"]["rdma/ib"], "2");
    assert_eq!(pre["replicas"], 2);
    // The sh -c script stays one string, new flags before the redirection.
    assert_eq!(
        pre["extraPodSpec"]["mainContainer"]["args"],
        json!([format!(
            "python3 -m dynamo.vllm --model {MODEL} --enforce-eager --is-prefill-worker \
             --tensor-parallel-size 2 2>&1 | tee /tmp/vllm.log"
        )])
    );
    assert_eq!(
        dgd.args("MyDecode"),
        s(&[
            "--model",
            MODEL,
            "--block-size",
            "64",
            "--gpu-memory-utilization",
            "0.9",
            "--tensor-parallel-size",
            "4"
        ])
    );
    assert_eq!(dgd.gpu_limit("MyDecode"), Some(4));
    // The old PVC-based planner is replaced by the ConfigMap one.
    let planner = dgd.service("Planner").unwrap();
    assert!(planner.get("pvc").is_none());
    assert_eq!(planner["dynamoNamespace"], "my-llm");
    assert_eq!(
        dgd.image("Planner"),
        Some("registry.example.com/vllm-runtime:custom")
    );
    assert_eq!(
        dgd.service_names(),
        vec!["Frontend", "MyDecode", "MyPrefill", "Planner", "Router"]
    );

    // And it all survives a trip through YAML.
    let text = to_yaml(&dgd).unwrap();
    assert_eq!(parse_dgd(&text).unwrap(), dgd);
}

#[test]
fn workers_found_by_default_names_without_sub_component_type() {
    let yaml = r#"
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: old-style}
spec:
  services:
    Frontend: {componentType: frontend}
    VllmPrefillWorker:
      componentType: worker
      extraPodSpec: {mainContainer: {command: [python3], args: [-m, dynamo.vllm, --model, x, --is-prefill-worker]}}
    VllmDecodeWorker:
      componentType: worker
      extraPodSpec: {mainContainer: {command: [python3], args: [-m, dynamo.vllm, --model, x]}}
"#;
    let base = parse_dgd(yaml).unwrap();
    assert_eq!(base.worker_name(Role::Decode), Some("VllmDecodeWorker"));
    let dgd = generate(
        &base,
        &plan(
            Backend::Vllm,
            MODEL,
            ParallelLayout::tp(1),
            ParallelLayout::tp(2),
        ),
    )
    .unwrap();
    // Typed now, so the planner finds them by subComponentType.
    assert_eq!(
        dgd.service("VllmDecodeWorker").unwrap()["subComponentType"],
        "decode"
    );
    assert_eq!(
        dgd.args("VllmDecodeWorker"),
        s(&[
            "-m",
            "dynamo.vllm",
            "--model",
            MODEL,
            "--tensor-parallel-size",
            "2"
        ])
    );
    // No image anywhere: the planner leaves it to the operator's default.
    assert!(dgd.image("Planner").is_none());
}

fn err(yaml: &str) -> String {
    parse_dgd(yaml).unwrap_err().to_string()
}

#[test]
fn parse_errors_name_the_problem() {
    let e = err(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nspec:\n  services: [a\n",
    );
    assert!(e.contains("not valid YAML") && e.contains("line 4"), "{e}");

    let e = err("apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeploymentRequest\nmetadata: {name: x}\n");
    assert!(
        e.contains("'DynamoGraphDeploymentRequest'") && e.contains("configMapRef"),
        "{e}"
    );

    let e = err("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n");
    assert!(e.contains("kind is 'Deployment'"), "{e}");

    let e =
        err("apiVersion: nvidia.com/v1beta1\nkind: DynamoGraphDeployment\nmetadata: {name: x}\n");
    assert!(
        e.contains("nvidia.com/v1beta1") && e.contains("spec.services"),
        "{e}"
    );

    let e = err("- just\n- a list\n");
    assert!(
        e.contains("not a DynamoGraphDeployment") && e.contains("a list"),
        "{e}"
    );

    assert!(err("").contains("empty"));

    let e = err(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: x}\nspec:\n  services:\n    \
         Frontend: {componentType: frontend}\n    p: {componentType: worker, subComponentType: prefill}\n",
    );
    assert!(
        e.contains("no decode worker") && e.contains("subComponentType: decode"),
        "{e}"
    );

    let e = err(
        "apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: x}\nspec:\n  services:\n    \
         a: {subComponentType: prefill}\n    b: {subComponentType: prefill}\n    c: {subComponentType: decode}\n",
    );
    assert!(e.contains("several prefill workers (a, b)"), "{e}");

    let e =
        err("apiVersion: nvidia.com/v1alpha1\nkind: DynamoGraphDeployment\nmetadata: {name: x}\n");
    assert!(e.contains("spec.services"), "{e}");
}

#[test]
fn multi_document_input_gives_its_dgd() {
    let dgd = gen(&plan(
        Backend::Vllm,
        MODEL,
        ParallelLayout::tp(1),
        ParallelLayout::tp(1),
    ));
    let cm = profile_data_configmap(&json!({"prefill_isl": [1]}), &json!({"max_kv_tokens": 1}));
    let text = config_with_planner_yaml(&cm, &dgd).unwrap();
    assert_eq!(parse_dgd(&text).unwrap(), dgd);
}

#[test]
fn generate_errors_name_the_fix() {
    let base = builtin_base(Backend::Vllm);
    let e = generate(
        &base,
        &plan(
            Backend::Sglang,
            MODEL,
            ParallelLayout::tp(1),
            ParallelLayout::tp(1),
        ),
    )
    .unwrap_err();
    assert!(matches!(e, DeploymentError::BackendMismatch { .. }), "{e}");
    assert!(
        e.to_string().contains("dynamo.vllm") && e.to_string().contains("sglang"),
        "{e}"
    );

    // 12 GPUs on 8-GPU nodes would become 2 x 8 = 16 GPUs.
    let e = generate(
        &base,
        &plan(
            Backend::Vllm,
            MODEL,
            ParallelLayout::tp(1),
            ParallelLayout::dep(12),
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("12 GPUs") && e.contains("multiple of 8"), "{e}");

    let mixed = ParallelLayout {
        tp: 4,
        pp: 1,
        dp: 1,
        moe_tp: 2,
        moe_ep: 2,
    };
    let e = generate(
        &base,
        &plan(Backend::Vllm, MOE, mixed, ParallelLayout::tp(1)),
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            DeploymentError::UnsupportedLayout {
                role: Role::Prefill,
                ..
            }
        ),
        "{e}"
    );
    // SGLang can split experts that way.
    assert!(generate(
        &builtin_base(Backend::Sglang),
        &plan(Backend::Sglang, MOE, mixed, ParallelLayout::tp(1))
    )
    .is_ok());

    let mut p = plan(
        Backend::Vllm,
        MODEL,
        ParallelLayout::tp(1),
        ParallelLayout::tp(1),
    );
    p.name = Some("My_Deployment".into());
    let e = generate(&base, &p).unwrap_err().to_string();
    assert!(
        e.contains("'My_Deployment'") && e.contains("use 'my-deployment'"),
        "{e}"
    );

    let mut p = plan(
        Backend::Vllm,
        MODEL,
        ParallelLayout::tp(1),
        ParallelLayout::tp(1),
    );
    p.decode_replicas = 0;
    assert!(generate(&base, &p)
        .unwrap_err()
        .to_string()
        .contains("decode_replicas"));

    let mut p = plan(
        Backend::Vllm,
        MODEL,
        ParallelLayout::tp(1),
        ParallelLayout::tp(1),
    );
    p.planner_args.insert("planner_Bad Key".into(), json!(1));
    assert!(generate(&base, &p)
        .unwrap_err()
        .to_string()
        .contains("planner_Bad Key"));

    let frontless = r#"
apiVersion: nvidia.com/v1alpha1
kind: DynamoGraphDeployment
metadata: {name: x}
spec:
  services:
    p: {subComponentType: prefill, extraPodSpec: {mainContainer: {args: [--model, x]}}}
    d: {subComponentType: decode, extraPodSpec: {mainContainer: {args: [--model, x]}}}
"#;
    let e = generate(
        &parse_dgd(frontless).unwrap(),
        &plan(
            Backend::Vllm,
            MODEL,
            ParallelLayout::tp(1),
            ParallelLayout::tp(1),
        ),
    )
    .unwrap_err();
    assert!(matches!(e, DeploymentError::MissingFrontend));
}

#[test]
fn names_labels_and_namespaces() {
    let mut p = plan(
        Backend::Sglang,
        MODEL,
        ParallelLayout::tp(1),
        ParallelLayout::tp(1),
    );
    p.name = Some("sla-online".into());
    p.labels
        .insert("dgdr.nvidia.com/name".into(), "sla-online".into());
    p.labels
        .insert("dgdr.nvidia.com/namespace".into(), "team-a".into());
    let dgd = gen(&p);
    assert_eq!(dgd.name(), Some("sla-online"));
    assert_eq!(dgd.labels()["dgdr.nvidia.com/name"], "sla-online");
    assert_eq!(dgd.labels()["dgdr.nvidia.com/namespace"], "team-a");
    for svc in dgd.service_names() {
        assert_eq!(
            dgd.service(svc).unwrap()["dynamoNamespace"],
            "sla-online",
            "{svc}"
        );
    }
}

#[test]
fn config_with_planner_is_configmap_then_dgd() {
    let prefill = json!({"prefill_isl": [100, 2000], "prefill_ttft": [10.5, 90.0], "prefill_thpt_per_gpu": [5000.0, 9000.0]});
    let decode = json!({"x_kv_usage": [0.1], "y_context_length": [350.0], "z_itl": [10.6], "z_thpt_per_gpu": [47.2],
                        "max_kv_tokens": 502272});
    let cm = profile_data_configmap(&prefill, &decode);
    let dgd = gen(&plan(
        Backend::Trtllm,
        MODEL,
        ParallelLayout::tp(1),
        ParallelLayout::tp(2),
    ));
    let text = config_with_planner_yaml(&cm, &dgd).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    assert_eq!(docs.len(), 2);
    assert_eq!(docs[0]["kind"], "ConfigMap");
    assert_eq!(docs[0]["apiVersion"], "v1");
    assert_eq!(docs[0]["metadata"]["name"], PROFILE_DATA_CONFIGMAP);
    assert!(is_k8s_name(PROFILE_DATA_CONFIGMAP));
    let data = &docs[0]["data"];
    let p: Value = serde_json::from_str(data["prefill_raw_data.json"].as_str().unwrap()).unwrap();
    let d: Value = serde_json::from_str(data["decode_raw_data.json"].as_str().unwrap()).unwrap();
    assert_eq!((p, d), (prefill, decode));
    assert_eq!(docs[1]["kind"], "DynamoGraphDeployment");
    assert_eq!(&docs[1], dgd.as_value());
    // GPU counts stay strings, as Kubernetes quantities in Dynamo's samples.
    assert_eq!(
        docs[1]["spec"]["services"]["TRTLLMDecodeWorker"]["resources"]["limits"]["gpu"],
        "2"
    );
    assert!(is_k8s_name(dgd.name().unwrap()));
}

#[test]
fn mocker_workers_simulate_on_no_gpu() {
    let mut p = plan(
        Backend::Trtllm,
        MODEL,
        ParallelLayout::tp(2),
        ParallelLayout::dep(16),
    );
    p.workers_image = Some("example.com/slaprof:1".into());
    let dgd = generate_mocker(&builtin_base(Backend::Trtllm), &p).unwrap();
    for role in Role::BOTH {
        let w = worker(&dgd, role);
        assert_eq!(dgd.command(&w), s(&["slaprof", "mocker"]));
        assert_eq!(
            dgd.args(&w),
            s(&[
                "--profile-data",
                PROFILE_DATA_MOUNT_PATH,
                "--disaggregation-mode",
                role.as_str(),
                "--served-model-name",
                MODEL,
                "--model",
                MODEL,
                "--backend",
                "trtllm"
            ])
        );
        assert_eq!(dgd.gpu_limit(&w), Some(0));
        assert_eq!(dgd.node_count(&w), None);
        assert_eq!(dgd.image(&w), Some("example.com/slaprof:1"));
        let pod = &dgd.service(&w).unwrap()["extraPodSpec"];
        assert_eq!(
            pod["volumes"][0]["configMap"]["name"],
            PROFILE_DATA_CONFIGMAP
        );
        assert_eq!(
            pod["mainContainer"]["volumeMounts"][0]["mountPath"],
            PROFILE_DATA_MOUNT_PATH
        );
        assert_eq!(dgd.replicas(&w), Some(1));
    }
    let args = dgd.args("Planner");
    assert_eq!(args[0], "--backend=mocker");
    // The planner still sizes engines as the real deployment would.
    assert!(args.contains(&"--decode-engine-num-gpu=16".to_string()));
    // A mocker DGD can be regenerated (e.g. with other replica counts).
    assert!(generate_mocker(&dgd, &p).is_ok());
    // But it is no base for a real deployment.
    assert!(generate(&dgd, &p)
        .unwrap_err()
        .to_string()
        .contains("mocker"));
}

#[test]
fn model_cache_and_workers_image() {
    for b in Backend::ALL {
        let mut p = plan(b, MOE, ParallelLayout::tp(8), ParallelLayout::tp(8));
        p.workers_image = Some(format!("nvcr.io/nvidia/ai-dynamo/{b}-runtime:9.9.9"));
        p.model_cache = Some(ModelCache {
            pvc_name: "model-cache".into(),
            pvc_path: "deepseek-r1".into(),
            mount_path: "/opt/model-cache".into(),
        });
        let dgd = gen(&p);
        let v = dgd.as_value();
        assert_eq!(
            v["spec"]["pvcs"],
            json!([{"name": "model-cache", "create": false}])
        );
        for svc in dgd.service_names() {
            assert_eq!(dgd.image(svc), p.workers_image.as_deref(), "{svc}");
        }
        let frontend = &v["spec"]["services"]["Frontend"];
        assert_eq!(
            frontend["volumeMounts"],
            json!([{"name": "model-cache", "mountPoint": "/opt/model-cache"}])
        );
        assert_eq!(
            dgd.command("Frontend"),
            s(&["python3", "-m", "dynamo.frontend"])
        );
        assert_eq!(
            dgd.args("Frontend"),
            s(&[
                "--model-name",
                MOE,
                "--model-path",
                "/opt/model-cache/deepseek-r1"
            ])
        );
        for role in Role::BOTH {
            let w = worker(&dgd, role);
            let args = dgd.args(&w);
            let flag = if b == Backend::Vllm {
                "--model"
            } else {
                "--model-path"
            };
            assert!(
                args.windows(2)
                    .any(|a| a == s(&[flag, "/opt/model-cache/deepseek-r1"])),
                "{b} {args:?}"
            );
            assert!(
                args.windows(2)
                    .any(|a| a == s(&["--served-model-name", MOE])),
                "{b} {args:?}"
            );
            assert_eq!(
                dgd.service(&w).unwrap()["volumeMounts"][0]["name"],
                "model-cache"
            );
        }
    }
}

#[test]
fn worker_args_match_generated_workers() {
    let cases = [
        (Backend::Vllm, ParallelLayout::tp(2), ParallelLayout::tp(4)),
        (
            Backend::Sglang,
            ParallelLayout::tep(8),
            ParallelLayout::dep(8),
        ),
        (
            Backend::Trtllm,
            ParallelLayout::tep(4),
            ParallelLayout::dep(8),
        ),
    ];
    for (b, pre, dec) in cases {
        let dgd = gen(&plan(b, MOE, pre, dec));
        for (role, l) in [(Role::Prefill, pre), (Role::Decode, dec)] {
            assert_eq!(
                worker_args(b, &l, role, MOE).unwrap(),
                dgd.args(&worker(&dgd, role)),
                "{b} {role}"
            );
        }
    }
}

#[test]
fn dgd_deserializes_only_when_valid() {
    let v = builtin_base(Backend::Vllm).into_value();
    let back: Dgd = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(back.into_value(), v);
    let mut broken = v;
    broken["kind"] = json!("Deployment");
    assert!(serde_json::from_value::<Dgd>(broken).is_err());
}

/// Keys the DGDR samples may use: the subset of the DGDR spec slaprof reads.
fn allowed(path: &str) -> bool {
    const KEYS: &[&str] = &[
        "apiVersion",
        "kind",
        "metadata",
        "metadata.name",
        "spec",
        "spec.model",
        "spec.backend",
        "spec.useMocker",
        "spec.autoApply",
        "spec.enableGpuDiscovery",
        "spec.deploymentOverrides",
        "spec.deploymentOverrides.workersImage",
        "spec.profilingConfig",
        "spec.profilingConfig.profilerImage",
        "spec.profilingConfig.outputPVC",
        "spec.profilingConfig.configMapRef",
        "spec.profilingConfig.configMapRef.name",
        "spec.profilingConfig.configMapRef.key",
        "spec.profilingConfig.config",
        "spec.profilingConfig.config.sla",
        "spec.profilingConfig.config.sla.isl",
        "spec.profilingConfig.config.sla.osl",
        "spec.profilingConfig.config.sla.ttft",
        "spec.profilingConfig.config.sla.itl",
        "spec.profilingConfig.config.hardware",
        "spec.profilingConfig.config.hardware.minNumGpusPerEngine",
        "spec.profilingConfig.config.hardware.maxNumGpusPerEngine",
        "spec.profilingConfig.config.hardware.numGpusPerNode",
        "spec.profilingConfig.config.hardware.gpuType",
        "spec.profilingConfig.config.sweep",
        "spec.profilingConfig.config.sweep.useAiConfigurator",
        "spec.profilingConfig.config.sweep.aicSystem",
        "spec.profilingConfig.config.sweep.aicHfId",
        "spec.profilingConfig.config.sweep.aicBackendVersion",
        "spec.profilingConfig.config.sweep.prefillInterpolationGranularity",
        "spec.profilingConfig.config.sweep.decodeInterpolationGranularity",
        "spec.profilingConfig.config.planner",
        "spec.profilingConfig.config.deployment",
        "spec.profilingConfig.config.deployment.modelCache",
        "spec.profilingConfig.config.deployment.modelCache.pvcName",
        "spec.profilingConfig.config.deployment.modelCache.pvcPath",
        "spec.profilingConfig.config.deployment.modelCache.mountPath",
    ];
    KEYS.contains(&path) || path.starts_with("spec.profilingConfig.config.planner.planner_")
}

fn check_keys(v: &Value, path: &str, file: &str) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            assert!(allowed(&p), "{file}: unexpected key {p}");
            check_keys(child, &p, file);
        }
    }
}

#[test]
fn dgdr_samples_use_only_known_keys() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy");
    let expect = [
        ("profile_sla_dgdr.yaml", "vllm", false),
        ("profile_sla_aic_dgdr.yaml", "trtllm", true),
        ("profile_sla_moe_dgdr.yaml", "sglang", false),
        ("mocker_dgdr.yaml", "trtllm", true),
    ];
    for (file, backend, aic) in expect {
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        let v: Value = serde_saphyr::from_str(&text).unwrap();
        check_keys(&v, "", file);
        assert_eq!(v["kind"], "DynamoGraphDeploymentRequest", "{file}");
        assert_eq!(v["apiVersion"], "nvidia.com/v1alpha1", "{file}");
        assert!(
            is_k8s_name(v["metadata"]["name"].as_str().unwrap()),
            "{file}"
        );
        assert_eq!(v["spec"]["backend"], backend, "{file}");
        let cfg = &v["spec"]["profilingConfig"]["config"];
        assert_eq!(cfg["sweep"]["useAiConfigurator"], aic, "{file}");
        for k in ["isl", "osl", "ttft", "itl"] {
            assert!(cfg["sla"][k].is_number(), "{file}: sla.{k}");
        }
        assert!(
            v["spec"]["profilingConfig"]["profilerImage"].is_string(),
            "{file}"
        );
    }
}

#[test]
fn trtllm_attention_dp_needs_attention_tp_one() {
    let dp_with_tp = ParallelLayout {
        tp: 2,
        pp: 1,
        dp: 4,
        moe_tp: 1,
        moe_ep: 8,
    };
    let e = worker_args(Backend::Trtllm, &dp_with_tp, Role::Decode, MOE).unwrap_err();
    assert!(
        matches!(e, DeploymentError::UnsupportedLayout { .. }),
        "{e}"
    );
    // SGLang and vLLM run attention TP inside each DP rank.
    let sg = worker_args(Backend::Sglang, &dp_with_tp, Role::Decode, MOE).unwrap();
    assert!(
        sg.windows(2).any(|w| w == s(&["--tp", "8"]))
            && sg.windows(2).any(|w| w == s(&["--dp", "4"]))
    );
    let vl = worker_args(Backend::Vllm, &dp_with_tp, Role::Decode, MOE).unwrap();
    assert_eq!(
        &vl[2..],
        &s(&[
            "--tensor-parallel-size",
            "2",
            "--data-parallel-size",
            "4",
            "--enable-expert-parallel"
        ])[..]
    );
}

#[test]
fn local_model_path_in_base_is_kept() {
    let mut v = builtin_base(Backend::Sglang).into_value();
    v["spec"]["services"]["decode"]["extraPodSpec"]["mainContainer"]["args"][1] =
        json!("/models/r1");
    let base = Dgd::try_from(v).unwrap();
    let dgd = generate(
        &base,
        &plan(
            Backend::Sglang,
            MOE,
            ParallelLayout::tp(1),
            ParallelLayout::tp(1),
        ),
    )
    .unwrap();
    assert_eq!(
        &dgd.args("decode")[..4],
        &s(&["--model-path", "/models/r1", "--served-model-name", MOE])[..]
    );
    assert_eq!(
        &dgd.args("prefill")[..4],
        &s(&["--model-path", MOE, "--served-model-name", MOE])[..]
    );
}
