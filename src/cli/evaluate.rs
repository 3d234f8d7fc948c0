//! `evaluate`: it lives in the engine crate (`referee_engine::cli::evaluate`); re-exported here
//! so `ai_referee::cli::evaluate` paths keep working.

pub use referee_engine::cli::evaluate::{run, EvaluateArgs, Figures};
