//! The implementations of `ai-referee`'s tool subcommands (everything but `serve`): `pose` and
//! `render` here; the engine's (decide, parse-signal, track, evaluate) are the engine crate's
//! (`referee_engine::cli`), which runs them for `ai-referee` and for its own `referee-engine`
//! binary.

pub mod pose;
pub mod render;
