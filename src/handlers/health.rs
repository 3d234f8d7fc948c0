//! `GET /health`: the legacy shape (`status`, `model_path`, `model_loaded`), plus how pose runs
//! and how much of it is waiting.

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::error::{json_response, ResponseBody};
use crate::state::AppState;

/// `GET /health`.
pub fn health(state: &AppState) -> Response<ResponseBody> {
    let pose = state.pose.get();
    let loaded = pose.is_some();
    let mut body = json!({
        "status": if loaded { "ok" } else { "model_not_loaded" },
        "model_path": state.config.model.display().to_string(),
        "model_loaded": loaded,
    });
    if let Some(pose) = pose {
        let settings = pose.settings();
        body["pose"] = json!({
            "backend": pose.describe(),
            "max_batch": settings.max_batch,
            "batch_wait_ms": settings.batch_wait.as_secs_f64() * 1e3,
            "stats": pose.stats(),
        });
    }
    body["analysis"] = json!({ "enabled": state.config.analysis, "sessions_in_memory": state.sessions.in_memory() });
    json_response(StatusCode::OK, &body)
}
