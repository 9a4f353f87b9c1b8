//! Capacity of `slaprof mocker` on this machine, client and server together:
//!
//! (a) completed streamed requests per second, ISL 128 / OSL 16, with the
//!     clock sped up (1e6) so the engine is never the limit; target >= 5,000.
//! (b) memory of the server process (VmRSS, VmHWM from /proc) while 10,000
//!     streams are open at once (long outputs at speedup 1); target 1 GiB.
//!
//! The server is the release binary run as a child process
//! (`slaprof mocker --port 0 ...`): `$SLAPROF_BIN`, else `slaprof` next to
//! this benchmark's `deps/` folder (build it with `cargo build --release
//! -p slaprof`). The client is reqwest (hyper) in this process.
//!
//! Run: `cargo build --release -p slaprof && cargo bench -p mocker --bench capacity`.

use futures_util::StreamExt;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MODEL: &str = "Qwen/Qwen3-8B";
const TARGET_RPS: f64 = 5000.0;
const STREAMS: usize = 10_000;
const TARGET_MIB: f64 = 1024.0;

fn slaprof_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SLAPROF_BIN") {
        return p.into();
    }
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("slaprof");
    assert!(
        bin.exists(),
        "{} missing: run `cargo build --release -p slaprof` or set SLAPROF_BIN",
        bin.display()
    );
    bin
}

/// Raises this process's open-file limit to its hard limit (the server
/// child inherits it).
fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(slaprof_bin())
            .args([
                "mocker",
                "--port",
                "0",
                "--model",
                MODEL,
                "--system",
                "h100_sxm",
                "--backend",
                "vllm",
            ])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start slaprof mocker");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("the server exited before listening")
                .unwrap();
            if let Some(url) = line.split("listening on ").nth(1) {
                break url.trim().to_string();
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    /// (VmRSS, VmHWM) in MiB.
    fn memory_mib(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
                / 1024.0
        };
        (field("VmRSS:"), field("VmHWM:"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM (graceful), then make sure.
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn body(k: u32, isl: u32, osl: u32) -> Vec<u8> {
    let prompt: Vec<u32> = (0..isl).map(|i| 1 + (k * isl + i) % 100_000).collect();
    serde_json::to_vec(&serde_json::json!({
        "model": MODEL,
        "prompt": prompt,
        "max_tokens": osl,
        "ignore_eos": true,
        "stream": true,
    }))
    .unwrap()
}

/// Reads a streamed completion to its end; returns how many data events
/// it held (content chunks plus `[DONE]`).
async fn drain(resp: reqwest::Response) -> usize {
    let mut n = 0;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("stream");
        n += chunk.windows(6).filter(|w| w == b"data: ").count();
    }
    n
}

async fn throughput(rt_secs: f64) -> (f64, usize) {
    let server = Server::start(&[
        "--speedup-ratio",
        "1000000",
        "--max-num-seqs",
        "1024",
        "--max-num-batched-tokens",
        "131072",
        "--max-waiting",
        "100000",
    ]);
    let url = format!("{}/v1/completions", server.base);
    let conns = 128;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(conns)
        .build()
        .unwrap();
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..1024).map(|k| body(k, 128, 16)).collect());
    let done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(rt_secs);
    let run = |warm: bool| {
        let tasks: Vec<_> = (0..conns)
            .map(|c| {
                let (client, url, bodies, done) =
                    (client.clone(), url.clone(), bodies.clone(), done.clone());
                tokio::spawn(async move {
                    let mut k = c;
                    loop {
                        if warm && k >= conns * 4 || !warm && Instant::now() >= deadline {
                            break;
                        }
                        let resp = client
                            .post(&url)
                            .header("content-type", "application/json")
                            .body(bodies[k % bodies.len()].clone())
                            .send()
                            .await
                            .expect("request");
                        assert!(resp.status().is_success(), "status {}", resp.status());
                        assert_eq!(drain(resp).await, 17, "16 tokens and [DONE]");
                        if !warm {
                            done.fetch_add(1, Ordering::Relaxed);
                        }
                        k += conns;
                    }
                })
            })
            .collect::<Vec<_>>();
        async move {
            for t in tasks {
                t.await.unwrap();
            }
        }
    };
    run(true).await;
    let t0 = Instant::now();
    let deadline_run = run(false);
    deadline_run.await;
    let secs = t0.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    drop(server);
    (n as f64 / secs, n)
}

async fn open_streams() -> (usize, f64, f64, f64) {
    let osl = 4000u32;
    let blocks = (STREAMS as u64 * u64::from(128 + osl)).div_ceil(16) + 1024;
    let blocks = blocks.to_string();
    let server = Server::start(&[
        "--speedup-ratio",
        "1",
        "--max-num-seqs",
        "16384",
        "--max-num-batched-tokens",
        "65536",
        "--num-gpu-blocks",
        &blocks,
        "--max-waiting",
        "100000",
        "--max-model-len",
        "8192",
    ]);
    let idle = server.memory_mib().0;
    let url = format!("{}/v1/completions", server.base);
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut tasks = Vec::with_capacity(STREAMS);
    for k in 0..STREAMS {
        let (client, url, open, stop) = (client.clone(), url.clone(), open.clone(), stop.clone());
        let b = body(k as u32, 128, osl);
        tasks.push(tokio::spawn(async move {
            let resp = match client
                .post(&url)
                .header("content-type", "application/json")
                .body(b)
                .send()
                .await
            {
                Ok(r) if r.status().is_success() => r,
                _ => return,
            };
            let mut stream = resp.bytes_stream();
            // Open once the first token arrived.
            if let Some(Ok(_)) = stream.next().await {
                open.fetch_add(1, Ordering::Relaxed);
            }
            let notified = stop.notified();
            tokio::pin!(notified);
            loop {
                tokio::select! {
                    _ = &mut notified => break,
                    c = stream.next() => if !matches!(c, Some(Ok(_))) { break },
                }
            }
        }));
        if k % 500 == 499 {
            // Pace the connects a little so the listen backlog never drops.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let t0 = Instant::now();
    while open.load(Ordering::Relaxed) < STREAMS && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the streams run a while with all of them open.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = open.load(Ordering::Relaxed);
    let (rss, hwm) = server.memory_mib();
    stop.notify_waiters();
    for t in tasks {
        t.abort();
    }
    drop(server);
    (n, idle, rss, hwm)
}

fn main() {
    let fds = raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "capacity: slaprof mocker ({MODEL}, h100_sxm, vllm) as a child process, client in this process, {} cores, fd limit {fds}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let (rps, n) = rt.block_on(throughput(5.0));
    println!(
        "FIGURE capacity streamed requests/s (ISL 128, OSL 16, speedup 1e6): {rps:.0} req/s [{n} requests] (target >= {TARGET_RPS:.0}) {}",
        if rps >= TARGET_RPS { "met" } else { "MISSED" }
    );
    if fds < STREAMS as u64 + 256 {
        println!(
            "FIGURE capacity open streams: skipped, fd limit {fds} < {} (raise `ulimit -n`) MISSED",
            STREAMS + 256
        );
        return;
    }
    let (open, idle, rss, hwm) = rt.block_on(open_streams());
    let met = open >= STREAMS && hwm <= TARGET_MIB;
    println!(
        "FIGURE capacity {open} concurrent open streams: server VmRSS {rss:.1} MiB, VmHWM {hwm:.1} MiB (idle {idle:.1} MiB) (target {STREAMS} streams within {TARGET_MIB:.0} MiB) {}",
        if met { "met" } else { "MISSED" }
    );
}
