//! `ai-referee`: the service and its command-line tools.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use ai_referee::config::{tracing_directive, ServeConfig};

/// The streaming AI referee for fencing.
#[derive(Debug, Parser)]
#[command(name = "ai-referee", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP service (settings from flags or the legacy REFEREE_* variables).
    Serve(ServeConfig),
    /// Run the pose model on images, videos or folders: one JSON line per frame.
    Pose(ai_referee::cli::pose::PoseArgs),
    /// Paint a recorded phrase's keypoints as markers (for the marker pose model).
    Render(ai_referee::cli::render::RenderArgs),
    /// The engine's tools: decide, parse-signal, track, evaluate (also in `referee-engine`).
    #[command(flatten)]
    Engine(referee_engine::cli::EngineCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Pose(args) => report(ai_referee::cli::pose::run(args)),
        Command::Render(args) => report(ai_referee::cli::render::run(args)),
        Command::Engine(command) => report(command.run()),
        Command::Serve(config) => {
            init_logging(&config.log_level);
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(err) => {
                    eprintln!("ai-referee: cannot start the async runtime: {err}");
                    return ExitCode::FAILURE;
                }
            };
            let served = runtime.block_on(ai_referee::server::serve(config));
            // serve() has joined its threads and waited out its tasks; what the runtime still
            // holds (a disk write stalled past the grace) is given a moment, then left.
            runtime.shutdown_timeout(RUNTIME_GRACE);
            match served {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!("{err}");
                    eprintln!("ai-referee: {err}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// How long the runtime's leftover blocking work may hold the exit once `serve` has returned.
const RUNTIME_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Exit status of a tool subcommand: its error on stderr and failure, or success.
fn report(result: Result<(), String>) -> ExitCode {
    referee_engine::cli::report("ai-referee", result)
}

/// Structured logs on stderr, filtered by `RUST_LOG` if set, else by the legacy level.
fn init_logging(level: &str) {
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new(tracing_directive(level)));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
