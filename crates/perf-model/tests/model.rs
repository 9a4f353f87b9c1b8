//! The memory and step-latency formulas against cases computed by hand.
//!
//! Every timing test runs with an "ideal" calibration: every efficiency is
//! 1, every overhead, padding and latency 0, so the expected figures follow
//! from the datasheet numbers and the documented formulas alone and do not
//! move when the fitted figures in `data/calibration.json` are retuned.

use perf_model::{Calibration, ConfigError, EngineSpec, StepBatch, StepCostModel, StepTimer};
use spec::model::QuantScheme;
use spec::{Backend, GpuSystem, KvDtype, ModelArch, ParallelLayout, Precision};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The shipped calibration with every backend and generation figure replaced
/// by its ideal value.
fn ideal_calibration() -> Calibration {
    let mut cal = Calibration::builtin().clone();
    for b in Backend::ALL {
        let k = cal.backend_mut(b);
        k.gemm_eff = 1.0;
        k.fp4_gemm_eff = 1.0;
        k.gemm_m_pad = 0.0;
        k.mem_eff = 1.0;
        k.moe_eff = 1.0;
        k.attn_eff = 1.0;
        k.decode_attn_eff = 1.0;
        k.comm_eff = 1.0;
        k.comm_latency_us = 0.0;
        k.scaleout_latency_us = 0.0;
        k.step_overhead_ms = 0.0;
        k.layer_overhead_us = 0.0;
        k.graph_layer_overhead_us = 0.0;
        k.seq_overhead_us = 0.0;
        k.disagg_ttft_overhead_ms = 0.0;
    }
    for g in [
        &mut cal.hopper,
        &mut cal.blackwell,
        &mut cal.blackwell_ultra,
        &mut cal.ampere,
        &mut cal.ada,
    ] {
        g.compute_scale = 1.0;
        g.memory_scale = 1.0;
    }
    cal
}

fn model(name: &str) -> ModelArch {
    spec::catalog::find(name).unwrap_or_else(|| panic!("{name} is in the catalog"))
}

fn system(name: &str) -> GpuSystem {
    spec::systems::find(name).unwrap_or_else(|| panic!("{name} is a built-in system"))
}

fn engine(m: &str, s: &str, backend: Backend, layout: ParallelLayout) -> EngineSpec {
    let m = model(m);
    let quant = m.native_quant;
    EngineSpec::new(m, system(s), backend, quant, layout).expect("valid layout")
}

fn assert_close(what: &str, got: f64, want: f64, rel: f64) {
    let err = (got - want).abs() / want.abs();
    assert!(
        err <= rel,
        "{what}: got {got}, expected {want} (relative error {err:.2e} > {rel:.0e})"
    );
}

const LLAMA_8B: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// Llama-3.1-8B's dimensions from its config.json, to compute by hand.
struct Llama8b;

impl Llama8b {
    const HIDDEN: f64 = 4096.0;
    const LAYERS: f64 = 32.0;
    const HEADS: f64 = 32.0;
    const KV_HEADS: f64 = 8.0;
    const HEAD_DIM: f64 = 128.0;
    const INTERMEDIATE: f64 = 14336.0;
    const VOCAB: f64 = 128256.0;

    /// q, k, v, o projections of one layer.
    fn attn_params() -> f64 {
        let h = Self::HIDDEN;
        let q = h * Self::HEADS * Self::HEAD_DIM;
        let kv = 2.0 * h * Self::KV_HEADS * Self::HEAD_DIM;
        q + kv + q
    }

    /// gate, up and down projections of one layer.
    fn mlp_params() -> f64 {
        3.0 * Self::HIDDEN * Self::INTERMEDIATE
    }

    /// Every decoder layer (no embeddings).
    fn body_params() -> f64 {
        Self::LAYERS * (Self::attn_params() + Self::mlp_params())
    }

    /// One vocab x hidden table (the input embedding or the untied lm_head).
    fn table_params() -> f64 {
        Self::VOCAB * Self::HIDDEN
    }

    fn check_catalog(m: &ModelArch) {
        assert_eq!(m.hidden_size as f64, Self::HIDDEN);
        assert_eq!(m.num_layers as f64, Self::LAYERS);
        assert_eq!(m.num_heads as f64, Self::HEADS);
        assert_eq!(m.num_kv_heads as f64, Self::KV_HEADS);
        assert_eq!(m.head_dim as f64, Self::HEAD_DIM);
        assert_eq!(m.intermediate_size as f64, Self::INTERMEDIATE);
        assert_eq!(m.vocab_size as f64, Self::VOCAB);
        assert!(!m.tie_word_embeddings);
        assert!(m.gated_mlp);
        assert_eq!(m.native_quant, QuantScheme::uniform(Precision::Bf16));
    }
}

// ---------------------------------------------------------------- memory ---

#[test]
fn llama_8b_bf16_weights_are_16_gb_and_halve_on_tp2() {
    let m = model(LLAMA_8B);
    Llama8b::check_catalog(&m);
    let total_params = Llama8b::body_params() + 2.0 * Llama8b::table_params();
    // The published size: 8.03 B parameters.
    assert_close("Llama-3.1-8B parameters", total_params, 8.03e9, 0.01);
    assert_close(
        "catalog parameter count",
        m.total_params(),
        total_params,
        1e-9,
    );

    let tp1 = engine(LLAMA_8B, "h100_sxm", Backend::Vllm, ParallelLayout::tp(1));
    let tp2 = engine(LLAMA_8B, "h100_sxm", Backend::Vllm, ParallelLayout::tp(2));
    let w1 = tp1.weight_bytes_per_gpu();
    let w2 = tp2.weight_bytes_per_gpu();
    // ~16 GB: every parameter in 2 bytes on the single GPU.
    assert_close("TP1 weight bytes", w1, total_params * 2.0, 0.02);
    assert!((15.5e9..16.5e9).contains(&w1), "TP1 weights {w1} bytes");
    // A dense model shards every matrix, embeddings included, over TP.
    assert_close("TP2 weight bytes", w2, w1 / 2.0, 1e-9);

    let mem1 = tp1.memory().unwrap();
    let mem2 = tp2.memory().unwrap();
    assert_close("TP1 weights GiB", mem1.weights_gib, w1 / GIB, 1e-12);
    assert_close("TP2 weights GiB", mem2.weights_gib, w2 / GIB, 1e-12);
    assert!(mem2.kv_cache_gib > mem1.kv_cache_gib);
}

#[test]
fn gqa_kv_bytes_per_token_split_over_tp_then_replicated() {
    // Llama-3.1-8B: 8 KV heads of 128, 32 layers, bf16 cache.
    let per_token = |tp: u32| {
        let e = engine(LLAMA_8B, "h200_sxm", Backend::Vllm, ParallelLayout::tp(tp));
        assert_eq!(
            e.memory().unwrap().kv_bytes_per_token,
            e.kv_bytes_per_token()
        );
        e.kv_bytes_per_token()
    };
    let full = 2.0 * 8.0 * 128.0 * 32.0 * 2.0;
    assert_eq!(full, 131_072.0);
    assert_eq!(per_token(1), full);
    assert_eq!(per_token(2), full / 2.0);
    assert_eq!(per_token(4), full / 4.0);
    assert_eq!(per_token(8), full / 8.0);
    // 16 GPUs for 8 KV heads: each GPU keeps one whole head (replicated).
    assert_eq!(per_token(16), full / 8.0);

    // Qwen3-30B-A3B: 4 KV heads of 128, 48 layers; TP8 replicates each head twice.
    let qwen = |tp: u32| {
        engine(
            "Qwen/Qwen3-30B-A3B",
            "h100_sxm",
            Backend::Sglang,
            ParallelLayout::tp(tp),
        )
        .kv_bytes_per_token()
    };
    let one_head = 2.0 * 128.0 * 48.0 * 2.0;
    assert_eq!(qwen(1), 4.0 * one_head);
    assert_eq!(qwen(2), 2.0 * one_head);
    assert_eq!(qwen(4), one_head);
    assert_eq!(qwen(8), one_head);

    // An fp8 cache halves it.
    let mut e = engine(LLAMA_8B, "h200_sxm", Backend::Vllm, ParallelLayout::tp(1));
    e.quant.kv = KvDtype::Fp8;
    assert_eq!(e.kv_bytes_per_token(), full / 2.0);
}

#[test]
fn mla_kv_bytes_per_token_are_the_latent_and_not_split_over_tp() {
    let m = model("deepseek-ai/DeepSeek-V3");
    let mla = m.mla.expect("DeepSeek-V3 uses MLA");
    assert_eq!((mla.kv_lora_rank, mla.qk_rope_head_dim), (512, 64));
    assert!(m.sparse_attention.is_none());
    assert_eq!(m.layers.full_attention, 61);
    let want = (512.0 + 64.0) * 61.0 * 2.0;
    for layout in [
        ParallelLayout::tp(1),
        ParallelLayout::tp(8),
        ParallelLayout::tep(8),
        ParallelLayout::dep(8),
    ] {
        let e = engine(
            "deepseek-ai/DeepSeek-V3",
            "b200_sxm",
            Backend::Sglang,
            layout,
        );
        assert_eq!(e.quant.kv, KvDtype::Bf16);
        assert_eq!(e.kv_bytes_per_token(), want, "{layout}");
        let mut fp8 = e.clone();
        fp8.quant.kv = KvDtype::Fp8;
        assert_eq!(fp8.kv_bytes_per_token(), want / 2.0, "{layout} fp8 cache");
    }
}

#[test]
fn max_kv_tokens_is_cache_over_bytes_per_token_times_dp() {
    for (m, s, backend, layout) in [
        (LLAMA_8B, "h100_sxm", Backend::Vllm, ParallelLayout::tp(1)),
        (
            "Qwen/Qwen3-32B",
            "h200_sxm",
            Backend::Trtllm,
            ParallelLayout::tp(2),
        ),
        (
            "deepseek-ai/DeepSeek-V3",
            "h200_sxm",
            Backend::Sglang,
            ParallelLayout::dep(8),
        ),
        (
            "deepseek-ai/DeepSeek-V3",
            "b200_sxm",
            Backend::Trtllm,
            ParallelLayout::dep(8),
        ),
    ] {
        let e = engine(m, s, backend, layout);
        let mem = e.memory().unwrap();
        let per_rank = (mem.kv_cache_gib * GIB / mem.kv_bytes_per_token).floor();
        assert_eq!(
            mem.max_kv_tokens,
            (per_rank * layout.dp as f64) as u64,
            "{m} {s} {backend} {layout}"
        );
        // The pieces add up to the GPU's memory.
        assert_close(
            "weights + reserved + KV",
            mem.weights_gib + mem.reserved_gib + mem.kv_cache_gib,
            mem.hbm_gib,
            1e-12,
        );
        assert!(mem.kv_cache_gib > 0.0 && mem.reserved_gib > 0.0);
    }
}

#[test]
fn deepseek_v3_does_not_fit_one_h100() {
    let e = engine(
        "deepseek-ai/DeepSeek-V3",
        "h100_sxm",
        Backend::Sglang,
        ParallelLayout::tp(1),
    );
    match e.memory() {
        Err(ConfigError::WeightsDoNotFit {
            weights_gib,
            usable_gib,
            ..
        }) => {
            // ~671 B parameters in fp8.
            assert!(weights_gib > 600.0, "{weights_gib} GiB");
            assert!(usable_gib < 80.0, "{usable_gib} GiB");
        }
        other => panic!("expected WeightsDoNotFit, got {other:?}"),
    }
    // Eight H200s hold it.
    let dep8 = engine(
        "deepseek-ai/DeepSeek-V3",
        "h200_sxm",
        Backend::Sglang,
        ParallelLayout::dep(8),
    );
    assert!(dep8.memory().is_ok());
}

// ---------------------------------------------------------------- layout ---

#[test]
fn engine_spec_rejects_tp_that_does_not_divide_the_heads() {
    let m = model("Qwen/Qwen3-32B");
    assert_eq!(m.num_heads, 64);
    let err = EngineSpec::new(
        m.clone(),
        system("h200_sxm"),
        Backend::Trtllm,
        m.native_quant,
        ParallelLayout::tp(3),
    )
    .unwrap_err();
    assert_eq!(
        err,
        ConfigError::HeadsNotDivisible {
            model: "Qwen/Qwen3-32B".into(),
            heads: 64,
            tp: 3,
        }
    );
    let text = err.to_string();
    assert!(text.contains("tp 3") && text.contains("64"), "{text}");
}

#[test]
fn engine_spec_rejects_ep_that_does_not_divide_the_experts() {
    // Mixtral: 32 heads (TP16 is fine for attention), 8 experts.
    let m = model("mistralai/Mixtral-8x7B-Instruct-v0.1");
    let err = EngineSpec::new(
        m.clone(),
        system("h100_sxm"),
        Backend::Vllm,
        m.native_quant,
        ParallelLayout::tep(16),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::ExpertsNotDivisible {
                experts: 8,
                ep: 16,
                ..
            }
        ),
        "{err:?}"
    );

    // DeepSeek-V3: 256 experts over 3 expert-parallel ranks.
    let m = model("deepseek-ai/DeepSeek-V3");
    let err = EngineSpec::new(
        m.clone(),
        system("h200_sxm"),
        Backend::Sglang,
        m.native_quant,
        ParallelLayout::dep(3),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::ExpertsNotDivisible {
                experts: 256,
                ep: 3,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("256"), "{err}");
}

#[test]
fn engine_spec_rejects_inconsistent_layouts() {
    let m = model(LLAMA_8B);
    let mut bad = ParallelLayout::tp(2);
    bad.moe_tp = 1; // 1 x 1 != 2 x 1
    let err = EngineSpec::new(
        m.clone(),
        system("h100_sxm"),
        Backend::Vllm,
        m.native_quant,
        bad,
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Layout { .. }), "{err:?}");

    let mut zero = ParallelLayout::tp(1);
    zero.pp = 0;
    let err = EngineSpec::new(
        m.clone(),
        system("h100_sxm"),
        Backend::Vllm,
        m.native_quant,
        zero,
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Layout { .. }), "{err:?}");

    let mut deep = ParallelLayout::tp(1);
    deep.pp = 33;
    let err = EngineSpec::new(
        m.clone(),
        system("h100_sxm"),
        Backend::Vllm,
        m.native_quant,
        deep,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::TooManyStages {
                layers: 32,
                pp: 33,
                ..
            }
        ),
        "{err:?}"
    );
}

// ---------------------------------------------------------------- timing ---

/// H100 SXM datasheet figures, per millisecond.
const H100_BYTES_PER_MS: f64 = 3.35e12 / 1e3;
const H100_BF16_FLOP_PER_MS: f64 = 989e12 / 1e3;
const H100_NVLINK_BYTES_PER_MS: f64 = 450e9 / 1e3;

#[test]
fn single_sequence_decode_is_weight_streaming() {
    let cal = ideal_calibration();
    let e = engine(LLAMA_8B, "h100_sxm", Backend::Trtllm, ParallelLayout::tp(1));
    let sys = system("h100_sxm");
    assert_eq!(sys.hbm_tbps * 1e12 / 1e3, H100_BYTES_PER_MS);
    let t = StepCostModel::with_calibration(&e, &cal).unwrap();
    let context = 1000u64;
    let batch = StepBatch {
        decode_seqs: 1,
        decode_kv_tokens: context,
        ..Default::default()
    };
    let step = t.step_ms(&batch);

    // A decode step reads every layer's weights and the lm_head once (the
    // input embedding is a row lookup), plus the sequence's KV cache.
    let streamed = (Llama8b::body_params() + Llama8b::table_params()) * 2.0;
    let kv = context as f64 * 2.0 * 8.0 * 128.0 * 32.0 * 2.0;
    let memory_ms = (streamed + kv) / H100_BYTES_PER_MS;
    // One token's FLOPs are 1/1000 of the memory time: the roofline's blend
    // changes nothing at this precision.
    assert_close("1-sequence decode step", step, memory_ms, 1e-3);
    // About 4.8 ms for ~16 GB at 3.35 TB/s.
    assert!((4.4..5.0).contains(&step), "{step} ms");
    // And within the weights' share of the whole footprint / bandwidth.
    assert_close(
        "weight bytes / HBM bandwidth",
        step,
        e.weight_bytes_per_gpu() / H100_BYTES_PER_MS,
        0.08,
    );

    let b = t.breakdown(&batch);
    assert_eq!(b.comm_ms, 0.0);
    assert_eq!(b.overhead_ms, 0.0);
    assert_close(
        "decode attention",
        b.attention_ms,
        kv / H100_BYTES_PER_MS,
        1e-3,
    );
}

#[test]
fn long_prefill_is_compute_bound_plus_attention() {
    let cal = ideal_calibration();
    let e = engine(LLAMA_8B, "h100_sxm", Backend::Vllm, ParallelLayout::tp(1));
    let t = StepCostModel::with_calibration(&e, &cal).unwrap();
    let n = 8192.0;
    let pairs = n * (n + 1.0) / 2.0;
    let batch = StepBatch {
        prefill_tokens: 8192,
        prefill_seqs: 1,
        prefill_attn_pairs: pairs,
        ..Default::default()
    };
    let b = t.breakdown(&batch);

    // GEMMs: 2 FLOPs per parameter per token through every layer; the
    // lm_head runs on the one token that samples, so it only streams its
    // weights.
    let body_ms = 2.0 * Llama8b::body_params() * n / H100_BF16_FLOP_PER_MS;
    let lm_head_ms = Llama8b::table_params() * 2.0 / H100_BYTES_PER_MS;
    assert_close("prefill GEMMs", b.gemm_ms, body_ms + lm_head_ms, 1e-3);
    // ~ 2 x 7.0 B x 8192 / 989 TFLOPS = 116 ms.
    assert!((105.0..130.0).contains(&b.gemm_ms), "{} ms", b.gemm_ms);

    // Causal attention: QK^T and PV, 2 FLOPs per multiply-add, over all
    // heads and layers for n(n+1)/2 query-key pairs.
    let attn_flops = pairs * 2.0 * 32.0 * (128.0 + 128.0) * 32.0;
    let attn_ms = attn_flops / H100_BF16_FLOP_PER_MS;
    assert_close("prefill attention", b.attention_ms, attn_ms, 1e-9);
    assert_eq!(b.comm_ms, 0.0);
    assert_eq!(b.overhead_ms, 0.0);

    let step = t.step_ms(&batch);
    assert_close("prefill step", step, body_ms + lm_head_ms + attn_ms, 1e-3);
    // The brief's form: 2 x params x tokens / peak + attention, with the
    // input embedding (a lookup) and the sampled-only lm_head left out.
    let active_body = e.model.active_params() - Llama8b::table_params();
    assert_close(
        "2 x params x tokens / peak + attention",
        step,
        2.0 * active_body * n / H100_BF16_FLOP_PER_MS + attn_ms,
        0.01,
    );
}

/// A Llama-3.1-8B TP2 prefill of 8192 tokens and its hand-computed
/// all-reduce time: a ring all-reduce of a bf16 hidden vector per token over
/// 2 GPUs moves 2 (g-1)/g x 8 KiB, after attention and after the MLP of
/// every layer, each collective also paying the fixed latency.
fn tp2_prefill(cal: &Calibration) -> (perf_model::StepBreakdown, f64) {
    let e = engine(LLAMA_8B, "h100_sxm", Backend::Vllm, ParallelLayout::tp(2));
    let t = StepCostModel::with_calibration(&e, cal).unwrap();
    let n = 8192.0;
    let batch = StepBatch {
        prefill_tokens: 8192,
        prefill_seqs: 1,
        prefill_attn_pairs: n * (n + 1.0) / 2.0,
        ..Default::default()
    };
    let collectives = 2.0 * Llama8b::LAYERS;
    let gpus: f64 = 2.0;
    let per_token = 2.0 * (gpus - 1.0) / gpus * Llama8b::HIDDEN * 2.0;
    let latency_ms = cal.vllm.comm_latency_us / 1e3;
    let want = collectives * (latency_ms + per_token * n / H100_NVLINK_BYTES_PER_MS);
    (t.breakdown(&batch), want)
}

#[test]
fn tp2_prefill_pays_two_all_reduces_per_layer() {
    let mut cal = ideal_calibration();
    cal.vllm.comm_latency_us = 1.0;
    let (b, want) = tp2_prefill(&cal);
    assert_close("TP2 all-reduce time", b.comm_ms, want, 1e-9);
    // ~ 64 x 8 KiB x 8192 / 450 GB/s = 9.5 ms, plus 64 us of latency.
    assert!((9.0..10.0).contains(&b.comm_ms), "{} ms", b.comm_ms);

    // Compute halves against TP1.
    let tp1 = engine(LLAMA_8B, "h100_sxm", Backend::Vllm, ParallelLayout::tp(1));
    let n = 8192.0;
    let batch = StepBatch {
        prefill_tokens: 8192,
        prefill_seqs: 1,
        prefill_attn_pairs: n * (n + 1.0) / 2.0,
        ..Default::default()
    };
    let b1 = StepCostModel::with_calibration(&tp1, &cal)
        .unwrap()
        .breakdown(&batch);
    assert_eq!(b1.comm_ms, 0.0);
    assert_close("TP2 attention", b.attention_ms, b1.attention_ms / 2.0, 1e-9);
    assert_close("TP2 GEMMs", b.gemm_ms, b1.gemm_ms / 2.0, 1e-3);
}

#[test]
fn collectives_cost_bandwidth_even_with_zero_latency() {
    let cal = ideal_calibration();
    assert_eq!(cal.vllm.comm_latency_us, 0.0);
    let (b, want) = tp2_prefill(&cal);
    assert_close("TP2 all-reduce time, zero latency", b.comm_ms, want, 1e-9);
}

#[test]
fn busiest_dp_rank_gets_the_ceiling_share_exactly() {
    // 167 decodes over 16 DP ranks: the busiest rank runs 11, as with 176.
    let mut cal = ideal_calibration();
    cal.sglang.comm_latency_us = 1.0;
    let e = engine(
        "Qwen/Qwen3-30B-A3B",
        "a100_sxm",
        Backend::Sglang,
        ParallelLayout::dep(16),
    );
    let t = StepCostModel::with_calibration(&e, &cal).unwrap();
    let decode = |seqs: u32| StepBatch {
        decode_seqs: seqs,
        decode_kv_tokens: seqs as u64,
        ..Default::default()
    };
    let (b167, b176) = (t.breakdown(&decode(167)), t.breakdown(&decode(176)));
    assert_eq!(b167.comm_ms, b176.comm_ms);
    // With the shipped figures the error made 168 sequences faster than 167.
    let shipped = StepCostModel::new(&e).unwrap();
    assert!(shipped.step_ms(&decode(168)) > shipped.step_ms(&decode(167)));
}
