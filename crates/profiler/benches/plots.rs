//! Render time of each profiler plot on sweep-sized inputs.
//!
//! `cargo bench -p profiler --bench plots`; set `PLOTS_OUT=<dir>` to keep the
//! PNGs for a look. Plain `Instant` timing: the profile command's budget is
//! about whole milliseconds, not nanosecond noise.

use std::path::Path;
use std::time::Instant;

use profiler::plots::{self, DecodePoint, DecodeSeries, PlotError, PrefillPoint};

const RUNS: u32 = 20;

struct Inputs {
    prefill: Vec<PrefillPoint>,
    decode: Vec<DecodeSeries>,
    isl: Vec<f64>,
    ttft: Vec<f64>,
    prefill_thpt: Vec<f64>,
    kv: Vec<f64>,
    ctx: Vec<f64>,
    itl: Vec<f64>,
    decode_thpt: Vec<f64>,
}

fn inputs() -> Inputs {
    let prefill = [
        ("TP1", 1, 420.0, 9800.0),
        ("TP2", 2, 188.0, 8900.0),
        ("TP4", 4, 128.0, 7800.0),
        ("TP8", 8, 79.0, 6100.0),
        ("DEP4", 4, 151.0, 7000.0),
        ("DEP8", 8, 96.0, 5200.0),
    ]
    .iter()
    .map(|&(label, num_gpus, ttft_ms, thpt_per_gpu)| PrefillPoint {
        label: label.into(),
        num_gpus,
        ttft_ms,
        thpt_per_gpu,
    })
    .collect();
    let decode = [
        ("TP1", 1u32, 1.0),
        ("TP2", 2, 1.0),
        ("TP4", 4, 1.0),
        ("TP8", 8, 1.0),
        ("DEP8", 8, 0.55),
    ]
    .iter()
    .map(|&(label, num_gpus, slope)| {
        let base = 14.0 / f64::from(num_gpus).sqrt();
        DecodeSeries {
            label: label.into(),
            num_gpus,
            points: [1u32, 2, 4, 8, 16, 32, 64, 128, 256]
                .iter()
                .map(|&n| {
                    let itl_ms = base + 0.09 * slope * f64::from(n) / f64::from(num_gpus);
                    DecodePoint {
                        in_flight: n,
                        itl_ms,
                        thpt_per_gpu: f64::from(n) * 1000.0 / itl_ms / f64::from(num_gpus),
                    }
                })
                .collect(),
        }
    })
    .collect();
    let isl: Vec<f64> = (1..=16).map(|i| f64::from(i) * 1000.0).collect();
    let ttft = isl.iter().map(|x| 18.0 + 0.03 * x + 2e-6 * x * x).collect();
    let prefill_thpt = isl.iter().map(|x| 9000.0 * x / (x + 800.0)).collect();
    let (mut kv, mut ctx, mut itl, mut decode_thpt) = (vec![], vec![], vec![], vec![]);
    for c in [1024.0, 2048.0, 4096.0, 8192.0, 16384.0, 32768.0] {
        for k in 1..=10 {
            let u = f64::from(k) / 10.0 - 0.05;
            let l = 6.0 + 22.0 * u + c / 4000.0;
            kv.push(u);
            ctx.push(c);
            itl.push(l);
            decode_thpt.push(u * 180_000.0 / c * 1000.0 / l);
        }
    }
    Inputs {
        prefill,
        decode,
        isl,
        ttft,
        prefill_thpt,
        kv,
        ctx,
        itl,
        decode_thpt,
    }
}

type Plot<'a> = (&'a str, Box<dyn Fn(&Path) -> Result<(), PlotError> + 'a>);

fn main() {
    let keep = std::env::var_os("PLOTS_OUT");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = keep.as_deref().map(Path::new).unwrap_or(tmp.path());
    std::fs::create_dir_all(dir).expect("output dir");
    let d = inputs();
    let plots: Vec<Plot<'_>> = vec![
        (
            "prefill_performance",
            Box::new(|p| plots::prefill_performance(p, &d.prefill, 200.0, Some(1))),
        ),
        (
            "decode_performance",
            Box::new(|p| plots::decode_performance(p, &d.decode, 20.0, Some(2))),
        ),
        (
            "prefill_ttft_interpolation",
            Box::new(|p| {
                plots::prefill_ttft_interpolation(p, &d.isl, &d.ttft, Some(200.0), Some(3000.0))
            }),
        ),
        (
            "prefill_throughput_interpolation",
            Box::new(|p| plots::prefill_throughput_interpolation(p, &d.isl, &d.prefill_thpt)),
        ),
        (
            "decode_itl_interplation",
            Box::new(|p| plots::decode_itl_interpolation(p, &d.kv, &d.ctx, &d.itl, Some(20.0))),
        ),
        (
            "decode_throughput_interpolation",
            Box::new(|p| plots::decode_throughput_interpolation(p, &d.kv, &d.ctx, &d.decode_thpt)),
        ),
    ];

    let mut total = 0.0;
    for (name, plot) in &plots {
        let path = dir.join(format!("{name}.png"));
        // The first render also registers the font; keep it out of the mean.
        let first = Instant::now();
        plot(&path).expect("plot renders");
        let first_ms = first.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        for _ in 0..RUNS {
            plot(&path).expect("plot renders");
        }
        let ms = start.elapsed().as_secs_f64() * 1e3 / f64::from(RUNS);
        total += ms;
        println!("{name:<34} {ms:7.2} ms/plot (first {first_ms:.2} ms)");
    }
    println!("{:<34} {total:7.2} ms for all six", "total");
}
