//! The implementations of `ai-referee`'s tool subcommands (everything but `serve`).

pub mod engine;
pub mod evaluate;
pub mod pose;
pub mod render;
