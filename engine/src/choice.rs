//! Which engine decides a phrase: the legacy rules (the `/analyze` contract), `v2` or `v3`.

use serde::Serialize;

/// Which engine decides: the legacy rules (the `/analyze` contract, `Engine::Legacy`) or `v2`.
/// Parsed from `legacy` / `v2` (any case), as `--engine` and `REFEREE_ENGINE` take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// The legacy service's rules, exactly.
    #[default]
    Legacy,
    /// This module's engine.
    V2,
}


impl EngineChoice {
    /// `legacy` or `v2`.
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Legacy => "legacy",
            EngineChoice::V2 => "v2",
        }
    }
}


impl std::str::FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<EngineChoice, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "legacy" => Ok(EngineChoice::Legacy),
            "v2" => Ok(EngineChoice::V2),
            other => Err(format!("unknown engine {other:?} (available: legacy, v2)")),
        }
    }
}
