//! `slaprof models`: the built-in catalog, or the models given on the command
//! line as slaprof resolves them.

use crate::resolve::resolve_model;
use serde::Serialize;
use spec::model::ModelFamily;
use spec::{catalog, AttentionKind, ModelArch};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Show these models instead of the whole catalog: catalog or Hugging Face
    /// ids (ORG/NAME), or paths to a config.json or a directory holding one.
    #[arg(value_name = "MODEL")]
    models: Vec<String>,

    /// Directory of ORG--NAME.json Hugging Face configs to search before the
    /// Hugging Face cache and the catalog (repeatable).
    #[arg(long = "model-configs", alias = "model-config-dir", value_name = "DIR")]
    model_config_dirs: Vec<PathBuf>,

    /// Print JSON (the full architecture of each model) instead of a table.
    #[arg(long)]
    json: bool,
}

/// A model as `--json` prints it: every architecture field plus the derived
/// figures the table shows.
#[derive(Serialize)]
struct ModelJson<'a> {
    #[serde(flatten)]
    arch: &'a ModelArch,
    family: ModelFamily,
    total_params: f64,
    active_params: f64,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let resolved: Vec<ModelArch>;
    let models: &[ModelArch] = if args.models.is_empty() {
        catalog::all()
    } else {
        resolved = args
            .models
            .iter()
            .map(|m| resolve_model(m, &args.model_config_dirs))
            .collect::<anyhow::Result<_>>()?;
        &resolved
    };

    let out = if args.json {
        let rows: Vec<ModelJson> = models
            .iter()
            .map(|m| ModelJson {
                arch: m,
                family: m.family(),
                total_params: m.total_params(),
                active_params: m.active_params(),
            })
            .collect();
        serde_json::to_string_pretty(&rows)? + "\n"
    } else {
        model_table(models)
    };
    write_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn model_table(models: &[ModelArch]) -> String {
    let headers = [
        "ID",
        "ARCHITECTURE",
        "FAMILY",
        "ATTENTION",
        "TOTAL_B",
        "ACTIVE_B",
        "LAYERS",
        "HIDDEN",
        "HEADS/KV",
        "EXPERTS",
        "WEIGHTS",
        "KV",
    ];
    let rows = models
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                m.architecture.clone(),
                family_name(m.family()).to_string(),
                attention_label(m),
                billions(m.total_params()),
                billions(m.active_params()),
                m.num_layers.to_string(),
                m.hidden_size.to_string(),
                format!("{}/{}", m.num_heads, m.num_kv_heads),
                experts_label(m),
                weights_label(m),
                format!("{:?}", m.native_quant.kv).to_ascii_lowercase(),
            ]
        })
        .collect();
    let numeric = [
        false, false, false, false, true, true, true, true, true, false, false, false,
    ];
    render_table(&headers, rows, &numeric)
}

fn family_name(f: ModelFamily) -> &'static str {
    match f {
        ModelFamily::Dense => "dense",
        ModelFamily::GqaMoe => "gqa_moe",
        ModelFamily::MlaMoe => "mla_moe",
    }
}

/// Attention kind plus the variations that change its cost.
fn attention_label(m: &ModelArch) -> String {
    let mut s = match m.attention {
        AttentionKind::Gqa => "gqa".to_string(),
        AttentionKind::Mla => "mla".to_string(),
    };
    if m.sparse_attention.is_some() {
        s += "+dsa";
    }
    if m.layers.sliding_attention > 0 {
        s += &format!("+swa{}", m.sliding_window.unwrap_or(0));
    }
    if m.layers.linear_attention > 0 {
        s += "+linear";
    }
    s
}

fn experts_label(m: &ModelArch) -> String {
    match &m.moe {
        Some(moe) if m.is_moe() => {
            let shared = if moe.shared_intermediate > 0 {
                "+s"
            } else {
                ""
            };
            format!("{}{shared} top{}", moe.num_experts, moe.top_k)
        }
        _ => "-".into(),
    }
}

/// `fp8` when uniform, else `gemm/moe` (gpt-oss: `bf16/mxfp4`).
fn weights_label(m: &ModelArch) -> String {
    let q = m.native_quant;
    if q.gemm == q.moe || !m.is_moe() {
        q.gemm.to_string()
    } else {
        format!("{}/{}", q.gemm, q.moe)
    }
}

fn billions(n: f64) -> String {
    let b = n / 1e9;
    if b < 10.0 {
        format!("{b:.2}")
    } else {
        format!("{b:.1}")
    }
}

/// Plain aligned text table: columns padded to their widest cell, numeric
/// columns right-aligned.
pub(crate) fn render_table(headers: &[&str], rows: Vec<Vec<String>>, numeric: &[bool]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = w.saturating_sub(cell.chars().count());
            if numeric.get(i).copied().unwrap_or(false) {
                s.push_str(&" ".repeat(pad));
                s.push_str(cell);
            } else {
                s.push_str(cell);
                s.push_str(&" ".repeat(pad));
            }
        }
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(headers.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// Writes to stdout; a closed pipe (`slaprof models | head`) is not an error.
pub(crate) fn write_stdout(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = render_table(
            &["A", "NUM"],
            vec![
                vec!["long-name".into(), "1".into()],
                vec!["x".into(), "100".into()],
            ],
            &[false, true],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "A          NUM");
        assert_eq!(lines[1], "long-name    1");
        assert_eq!(lines[2], "x          100");
    }

    #[test]
    fn labels() {
        let oss = catalog::find("openai/gpt-oss-120b").unwrap();
        assert_eq!(weights_label(&oss), "bf16/mxfp4");
        assert_eq!(attention_label(&oss), "gqa+swa128");
        assert_eq!(experts_label(&oss), "128 top4");
        let ds = catalog::find("deepseek-ai/DeepSeek-V3").unwrap();
        assert_eq!(experts_label(&ds), "256+s top8");
        assert_eq!(billions(ds.total_params()), "671.0");
    }
}
