//! The `slaprof` binary: parses arguments and hands each subcommand to its
//! module. All the work lives in the library crates.

mod commands;
mod resolve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "slaprof",
    version,
    about = "Find the cheapest way to serve an LLM within a TTFT/ITL SLA"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Predict TTFT, TPOT, throughput and memory of one serving configuration.
    Estimate(Box<commands::estimate::Args>),
    /// Compare the performance model against measured serving data.
    Validate(commands::validate::Args),
    /// Fit the performance model's efficiency figures to measured data.
    Calibrate(commands::calibrate::Args),
    /// Find the cheapest prefill and decode engines that meet a TTFT/ITL SLA.
    #[command(
        after_help = "Example (offline, no GPU):\n  slaprof profile --model Qwen/Qwen3-32B --backend trtllm --aic-system h200_sxm \\\n    --ttft 200 --itl 20 --isl 3000 --osl 150 --use-ai-configurator\n\nWrites the planner data (npz), plots, config_with_planner.yaml and\nprofiler_status.yaml to --output-dir. Exit status: 0 success, 1 bad input or\nerror (nothing written for bad input), 2 no configuration meets the SLA."
    )]
    Profile(Box<commands::profile::Args>),
    /// Serve the OpenAI API from a simulated engine with realistic timing.
    Mocker(Box<commands::mocker::Args>),
    /// List the built-in model catalog.
    Models(commands::models::Args),
    /// List the known GPU systems.
    Systems(commands::systems::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Estimate(a) => commands::estimate::run(*a),
        Command::Validate(a) => commands::validate::run(a),
        Command::Calibrate(a) => commands::calibrate::run(a),
        Command::Profile(a) => commands::profile::run(*a),
        Command::Mocker(a) => commands::mocker::run(*a),
        Command::Models(a) => commands::models::run(a),
        Command::Systems(a) => commands::systems::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
