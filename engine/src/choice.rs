//! Which engine decides a phrase: the legacy rules (the `/analyze` contract), `v2` or `v3`.

use serde::Serialize;

/// Which engine decides: the legacy rules (the `/analyze` contract, `Engine::Legacy`), `v2` or
/// `v3`. Parsed from `legacy` / `v2` / `v3` (any case), as `--engine` and `REFEREE_ENGINE` take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EngineChoice {
    /// The legacy service's rules, exactly.
    #[default]
    Legacy,
    /// The `v2` engine.
    V2,
    /// The `v3` engine.
    V3,
}


impl EngineChoice {
    /// `legacy`, `v2` or `v3`.
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Legacy => "legacy",
            EngineChoice::V2 => "v2",
            EngineChoice::V3 => "v3",
        }
    }
}


impl std::str::FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<EngineChoice, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "legacy" => Ok(EngineChoice::Legacy),
            "v2" => Ok(EngineChoice::V2),
            "v3" => Ok(EngineChoice::V3),
            other => Err(format!("unknown engine {other:?} (available: legacy, v2, v3)")),
        }
    }
}
