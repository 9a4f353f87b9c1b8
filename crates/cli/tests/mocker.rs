//! `slaprof mocker` as a process: start-up on port 0, a request, graceful
//! shutdown on SIGTERM during a stream, start-up faults, and (when Python
//! has the `openai` package) the official OpenAI client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

const MODEL: &str = "Qwen/Qwen3-0.6B";

/// A running mocker, killed on drop if a test fails before stopping it.
struct Mocker {
    child: Child,
    addr: String,
    _stdout: BufReader<ChildStdout>,
}

impl Drop for Mocker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn spawn(extra: &[&str]) -> Child {
    spawn_with(&["--model", MODEL, "--system", "h100_sxm"], extra, &[])
}

fn spawn_with(timing: &[&str], extra: &[&str], env: &[(&str, &std::path::Path)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_slaprof"))
        .args(["mocker", "--port", "0"])
        .args(timing)
        .args(extra)
        .envs(env.iter().map(|(k, v)| (*k, *v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn slaprof mocker")
}

fn start(extra: &[&str]) -> Mocker {
    wait_listening(spawn(extra))
}

fn wait_listening(mut child: Child) -> Mocker {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            panic!("mocker exited before listening: {err}");
        }
        if let Some(a) = line
            .trim()
            .strip_prefix("slaprof mocker listening on http://")
        {
            break a.to_string();
        }
    };
    Mocker {
        child,
        addr,
        _stdout: stdout,
    }
}

fn send_post(addr: &str, path: &str, body: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    s
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -TERM failed");
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let t0 = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        assert!(t0.elapsed() < within, "mocker did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn serves_a_request_and_drains_streams_on_sigterm() {
    let mut m = start(&[]);
    let (head, body) = post(
        &m.addr,
        "/v1/completions",
        &format!(r#"{{"model": "{MODEL}", "prompt": "hello world", "max_tokens": 3}}"#),
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(body.contains(r#""completion_tokens":3"#), "{body}");

    // A stream long enough (at speedup 1) to be in flight at SIGTERM.
    let mut s = send_post(
        &m.addr,
        "/v1/chat/completions",
        r#"{"messages": [{"role": "user", "content": "tell me a story"}], "max_tokens": 200, "stream": true}"#,
    );
    let mut first = [0u8; 512];
    let n = s.read(&mut first).unwrap();
    assert!(n > 0 && String::from_utf8_lossy(&first[..n]).contains("200 OK"));
    sigterm(&m.child);
    // The listener closes while the stream goes on.
    let t0 = Instant::now();
    while TcpStream::connect(&m.addr).is_ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "still accepting after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let body = String::from_utf8_lossy(&first[..n]).to_string() + &String::from_utf8_lossy(&rest);
    assert!(body.contains("data: [DONE]"), "stream cut short: {body}");
    assert_eq!(
        body.matches("\"finish_reason\":\"length\"").count(),
        1,
        "{body}"
    );
    assert_eq!(body.matches("data: {").count(), 200);
    let st = wait_exit(&mut m.child, Duration::from_secs(10));
    assert!(st.success(), "exit status {st}");
}

#[test]
fn crash_at_startup_exits_non_zero_without_binding() {
    let out = Command::new(env!("CARGO_BIN_EXE_slaprof"))
        .args([
            "mocker",
            "--port",
            "0",
            "--model",
            MODEL,
            "--system",
            "h100_sxm",
            "--fault-crash-at-startup",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(3));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("crash"));
}

#[test]
fn slow_startup_delays_binding_and_logs_kv_capacity() {
    let t0 = Instant::now();
    let mut child = spawn(&["--fault-slow-startup-ms", "600"]);
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    loop {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "{seen:?}");
        if line.starts_with("slaprof mocker listening on") {
            break;
        }
        seen.push(line);
    }
    assert!(t0.elapsed() >= Duration::from_millis(600));
    assert!(
        seen.iter().any(|l| l.starts_with("GPU KV cache size: ")),
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .any(|l| l.starts_with("Maximum concurrency for ")));
    sigterm(&child);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
}

#[test]
fn bad_arguments_are_refused() {
    let out = Command::new(env!("CARGO_BIN_EXE_slaprof"))
        .args(["mocker", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--profile-data"));
    let out = Command::new(env!("CARGO_BIN_EXE_slaprof"))
        .args([
            "mocker",
            "--port",
            "0",
            "--model",
            MODEL,
            "--system",
            "h100_sxm",
            "--fault-error-rate",
            "2",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// The body of an HTTP/1.1 `Connection: close` answer.
fn post(addr: &str, path: &str, body: &str) -> (String, String) {
    let mut s = send_post(addr, path, body);
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.to_string(), body.to_string())
}

/// A planner-profile-data ConfigMap's JSON pair in `root/profile`: a fixed
/// prefill curve and the given decode data.
fn write_profile_pair(root: &std::path::Path, decode_json: &str) -> std::path::PathBuf {
    let data = root.join("profile");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("prefill_raw_data.json"),
        r#"{"prefill_isl": [128, 1024, 4096], "prefill_ttft": [5.0, 20.0, 80.0]}"#,
    )
    .unwrap();
    std::fs::write(data.join("decode_raw_data.json"), decode_json).unwrap();
    data
}

#[test]
fn profile_data_and_a_cached_tokenizer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_profile_pair(
        tmp.path(),
        r#"{"max_kv_tokens": [50000], "x_kv_usage": [0.1, 0.9, 0.1, 0.9],
            "y_context_length": [1024, 1024, 4096, 4096], "z_itl": [2.0, 4.0, 3.0, 6.0]}"#,
    );
    // A word-level tokenizer in a Hugging Face cache layout.
    let snap = tmp.path().join("hub/models--acme--tiny/snapshots/0123");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::write(
        snap.join("tokenizer.json"),
        r#"{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
            "normalizer": null, "pre_tokenizer": {"type": "Whitespace"},
            "post_processor": null, "decoder": null,
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "hello": 1, "world": 2},
                      "unk_token": "[UNK]"}}"#,
    )
    .unwrap();
    let hub = tmp.path().join("hub");
    let child = spawn_with(
        &["--profile-data", data.to_str().unwrap()],
        &[
            "--tokenizer",
            "acme/tiny",
            "--served-model-name",
            "tiny",
            "--speedup-ratio",
            "50",
        ],
        &[("HF_HUB_CACHE", hub.as_path())],
    );
    let mut m = wait_listening(child);
    let (head, body) = post(
        &m.addr,
        "/v1/completions",
        r#"{"model": "tiny", "prompt": "hello world hello again", "max_tokens": 2}"#,
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    // Four words, each one token of the word-level vocabulary.
    assert!(body.contains(r#""prompt_tokens":4"#), "{body}");
    let (_, metrics) = {
        let mut s = TcpStream::connect(&m.addr).unwrap();
        write!(
            s,
            "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut r = String::new();
        s.read_to_string(&mut r).unwrap();
        let (h, b) = r.split_once("\r\n\r\n").unwrap();
        (h.to_string(), b.to_string())
    };
    // The KV pool is the profiled engine's.
    assert!(
        metrics.contains("slaprof:kv_cache_capacity_tokens{model_name=\"tiny\"} 50000"),
        "{metrics}"
    );
    sigterm(&m.child);
    assert!(wait_exit(&mut m.child, Duration::from_secs(10)).success());
}

const OPENAI_SCRIPT: &str = r#"
import sys, openai
client = openai.OpenAI(base_url=sys.argv[1] + "/v1", api_key="none")
model = sys.argv[2]
assert [m.id for m in client.models.list().data] == [model]

stream = client.chat.completions.create(
    model=model, messages=[{"role": "user", "content": "Hello there"}],
    max_tokens=5, stream=True, stream_options={"include_usage": True})
text, usage, finish = "", None, None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    for c in chunk.choices:
        text += c.delta.content or ""
        finish = c.finish_reason or finish
assert usage.completion_tokens == 5 and usage.prompt_tokens > 0, usage
assert usage.total_tokens == usage.prompt_tokens + 5
assert finish == "length" and len(text.split()) == 5, (finish, text)

c = client.completions.create(model=model, prompt="one two six", max_tokens=4)
assert c.usage.completion_tokens == 4 and c.usage.prompt_tokens == 3, c.usage
assert c.choices[0].finish_reason == "length"

stream = client.completions.create(model=model, prompt="one two", max_tokens=3, stream=True,
                                   stream_options={"include_usage": True})
chunks = list(stream)
assert sum(1 for ch in chunks if ch.choices) == 3
assert chunks[-1].usage.completion_tokens == 3

try:
    client.completions.create(model="nope", prompt="x", max_tokens=1)
    raise SystemExit("unknown model accepted")
except openai.NotFoundError:
    pass
try:
    client.completions.create(model=model, prompt="x", max_tokens=10**9)
    raise SystemExit("too long accepted")
except openai.BadRequestError:
    pass
print("openai client ok")
"#;

#[test]
fn official_openai_python_client() {
    let has_openai = Command::new("python3")
        .args(["-c", "import openai"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // `.ci/run` installs the client; a missing one is a setup error, not a pass.
    assert!(
        has_openai,
        "python3 with the `openai` package is needed: run .ci/run or pip install openai"
    );
    let mut m = start(&["--speedup-ratio", "10"]);
    let out = Command::new("python3")
        .args(["-c", OPENAI_SCRIPT, &format!("http://{}", m.addr), MODEL])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    sigterm(&m.child);
    assert!(wait_exit(&mut m.child, Duration::from_secs(10)).success());
}

/// The worker args of `deploy/mocker_disagg.yaml`, as a pod would run them,
/// with the mounted ConfigMap and the port replaced by local ones.
fn deploy_example_args(sub: &str, profile_dir: &std::path::Path) -> Vec<String> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/mocker_disagg.yaml");
    let doc: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let worker = doc["spec"]["services"]
        .as_object()
        .unwrap()
        .values()
        .find(|s| s["subComponentType"] == sub)
        .unwrap();
    let c = &worker["extraPodSpec"]["mainContainer"];
    assert_eq!(c["command"], serde_json::json!(["slaprof", "mocker"]));
    let mut args: Vec<String> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for (flag, value) in [
        ("--profile-data", profile_dir.to_str().unwrap()),
        ("--port", "0"),
        ("--host", "127.0.0.1"),
    ] {
        let i = args.iter().position(|a| a == flag).unwrap();
        args[i + 1] = value.to_string();
    }
    args
}

#[test]
fn the_deploy_example_workers_start_and_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let data = write_profile_pair(
        tmp.path(),
        r#"{"max_kv_tokens": 50000, "x_kv_usage": [0.1, 0.9], "y_context_length": [1024, 1024],
            "z_itl": [2.0, 4.0]}"#,
    );
    for (sub, completion_tokens) in [("prefill", 1), ("decode", 4)] {
        let args = deploy_example_args(sub, &data);
        let child = Command::new(env!("CARGO_BIN_EXE_slaprof"))
            .arg("mocker")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let m = wait_listening(child);
        let (_, body) = post(
            &m.addr,
            "/v1/completions",
            r#"{"model": "Qwen/Qwen3-32B", "prompt": "hello world", "max_tokens": 4}"#,
        );
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        // A prefill worker returns after the first token.
        assert_eq!(
            v["usage"]["completion_tokens"], completion_tokens,
            "{sub}: {body}"
        );
    }
}
