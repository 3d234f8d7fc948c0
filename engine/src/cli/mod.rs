//! The engine's command-line tools, shared by `ai-referee` and `referee-engine`: the four
//! subcommands as one clap enum, and how a tool's result becomes the exit status. No I/O here
//! beyond what each tool reads and prints.

use std::process::ExitCode;

use clap::Subcommand;

pub mod evaluate;
pub mod json_lines;
pub mod sessions;

/// The engine's subcommands: `decide`, `parse-signal`, `track` and `evaluate`.
#[derive(Debug, Subcommand)]
pub enum EngineCommand {
    /// Decide phrases from normalised keypoints (JSON lines, or a log and a keypoints workbook).
    Decide(json_lines::DecideArgs),
    /// Parse scoring-box logs (JSON lines): the phrase, or the legacy's refusal.
    ParseSignal(json_lines::ParseSignalArgs),
    /// Run the tracker and normalisation on detection sequences (JSON lines).
    Track(json_lines::TrackArgs),
    /// Agreement of an engine with the referee's recorded calls (call lines stripped first).
    Evaluate(evaluate::EvaluateArgs),
    /// Write a sessions directory's phrases that have a referee call as `phrases.jsonl` rows.
    Export(sessions::ExportArgs),
}

impl EngineCommand {
    /// Runs the subcommand: its output on stdout, or the message that stopped it.
    pub fn run(self) -> Result<(), String> {
        match self {
            EngineCommand::Decide(args) => json_lines::run_decide(args),
            EngineCommand::ParseSignal(args) => json_lines::run_parse_signal(args),
            EngineCommand::Track(args) => json_lines::run_track(args),
            EngineCommand::Evaluate(args) => evaluate::run(args),
            EngineCommand::Export(args) => sessions::run_export(args),
        }
    }
}

/// Exit status of a tool subcommand: success, or its error on stderr as `PROGRAM: ERROR` and
/// failure (1). Usage errors never get here: clap reports them and exits with 2.
pub fn report(program: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{program}: {err}");
            ExitCode::FAILURE
        }
    }
}
