//! The implementations of `ai-referee`'s tool subcommands (everything but `serve`): `pose` and
//! `render` here; `engine` (decide, parse-signal, track) and `evaluate` re-exported from the
//! engine crate, which runs them for `ai-referee` and for its own `referee-engine` binary.

pub mod engine;
pub mod evaluate;
pub mod pose;
pub mod render;
