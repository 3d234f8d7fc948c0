//! `GET /health`, exactly the legacy shape (`status`, `model_path`, `model_loaded`), and `GET
//! /stats`: how pose runs (backend, batching, backlog) and what the analysis holds.

use hyper::{Response, StatusCode};
use serde_json::json;

use crate::error::{json_response, ResponseBody};
use crate::state::AppState;

/// `GET /health`.
pub fn health(state: &AppState) -> Response<ResponseBody> {
    let pose = state.pose.get();
    let loaded = pose.is_some();
    let body = json!({
        "status": if loaded { "ok" } else { "model_not_loaded" },
        "model_path": state.config.model.display().to_string(),
        "model_loaded": loaded,
    });
    json_response(StatusCode::OK, &body)
}

/// `GET /stats`: `{"pose": {"backend", "max_batch", "batch_wait_ms", "stats": {"backlog", ...}}
/// | null, "analysis": {...}}`.
pub fn stats(state: &AppState) -> Response<ResponseBody> {
    let mut body = json!({ "pose": null });
    if let Some(pose) = state.pose.get() {
        let settings = pose.settings();
        body["pose"] = json!({
            "backend": pose.describe(),
            "max_batch": settings.max_batch,
            "batch_wait_ms": settings.batch_wait.as_secs_f64() * 1e3,
            "stats": pose.stats(),
        });
    }
    body["analysis"] = json!({
        "enabled": state.config.analysis,
        "threads": state.sessions.pool().threads(),
        "sessions_waiting_for_a_thread": state.sessions.pool().waiting(),
        "sessions_in_memory": state.sessions.in_memory(),
    });
    json_response(StatusCode::OK, &body)
}
