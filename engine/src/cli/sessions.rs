//! A server's stored sessions as phrases to evaluate: every session directory whose phrase has
//! a referee call, read back as a `phrases.jsonl` row (`evaluate --sessions`, `export`).

use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

/// Arguments of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// A server's sessions directory (`REFEREE_SESSIONS_DIR`).
    #[arg(long)]
    pub sessions: PathBuf,
}

/// The phrases stored under `dir` that have a referee call, as `phrases.jsonl` rows.
pub fn phrase_rows(dir: &Path) -> Result<Vec<Value>, String> {
    Err(format!("reading sessions from {} is not built yet", dir.display()))
}

/// `export`: the rows of [`phrase_rows`].
pub fn run_export(args: ExportArgs) -> Result<(), String> {
    phrase_rows(&args.sessions).map(|_| ())
}
