//! `decide`, `parse-signal` and `track`: they live in the engine crate
//! (`referee_engine::cli::json_lines`); re-exported here so `ai_referee::cli::engine` paths keep working.

pub use referee_engine::cli::json_lines::{run_decide, run_parse_signal, run_track, DecideArgs, ParseSignalArgs, TrackArgs};
