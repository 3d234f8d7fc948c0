//! `referee-engine`: the engine's command-line tools without the service, so without libtorch
//! or OpenCV. Same subcommands, flags, output and exit statuses as `ai-referee decide`,
//! `parse-signal`, `track` and `evaluate`.

use std::process::ExitCode;

use clap::Parser;

use referee_engine::cli::{report, EngineCommand};

/// The referee engine's tools, without the service.
#[derive(Debug, Parser)]
#[command(name = "referee-engine", version, about)]
struct Cli {
    #[command(subcommand)]
    command: EngineCommand,
}

fn main() -> ExitCode {
    report("referee-engine", Cli::parse().command.run())
}
