//! `GET /health`, exactly the legacy shape (`status`, `model_path`, `model_loaded`), `GET
//! /stats`: how pose runs (backend, batching, backlog) and what the analysis holds, and `GET
//! /metrics`, the same and more for Prometheus.

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
    // The legacy's three keys, then how pose runs once it does: the runtime and the precision.
    if let Some(path) = pose.map(|p| p.pose_path()) {
        body["pose_runtime"] = path.runtime.into();
        body["pose_precision"] = path.precision.to_string().into();
    }
    // Where pose runs elsewhere: which, and whether it answers.
    if state.config.pose_backend == "triton" {
        body["pose_backend"] = "triton".into();
        body["pose_backend_url"] = state.config.triton_url.clone().into();
        body["pose_backend_reachable"] = state.backend_reachable.load(std::sync::atomic::Ordering::SeqCst).into();
    }
    json_response(StatusCode::OK, &body)
}

/// `GET /stats`: `{"pose": {"backend", "path": {"runtime", "precision", "device", "threads"}, "max_batch", "batch_wait_ms", "stats": {"backlog", ...}}
/// | null, "analysis": {...}}`.
pub fn stats(state: &AppState) -> Response<ResponseBody> {
    let mut body = json!({ "pose": null });
    if let Some(pose) = state.pose.get() {
        let settings = pose.settings();
        body["pose"] = json!({
            "backend": pose.describe(),
            "path": pose.pose_path(),
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

/// `GET /metrics`: the Prometheus text exposition. The gauges of the present (phrases in memory by
/// state, the pose backlog and backend, free disk) are read now; counters and histograms are
/// recorded as things happen (see `crate::metrics`).
pub fn metrics(state: &AppState) -> Response<ResponseBody> {
    use crate::metrics as m;
    for (phrase_state, count) in state.sessions.count_by_state() {
        let label = serde_json::to_value(phrase_state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        metrics::gauge!(m::PHRASES_NOW, "state" => label).set(count as f64);
    }
    if let Some(pose) = state.pose.get() {
        metrics::gauge!(m::POSE_BACKLOG).set(pose.stats().backlog as f64);
        let backend = pose.describe().to_string();
        metrics::gauge!(m::POSE_BACKEND, "backend" => backend).set(1.0);
    }
    let reachable = state.config.pose_backend != "triton" || state.backend_reachable.load(std::sync::atomic::Ordering::SeqCst);
    metrics::gauge!(m::POSE_BACKEND_REACHABLE, "kind" => state.config.pose_backend.clone()).set(if reachable { 1.0 } else { 0.0 });
    if let Some(free) = crate::disk::free_bytes(&state.config.output_dir) {
        metrics::gauge!(m::DISK_FREE).set(free as f64);
    }
    m::upkeep();
    Response::builder()
        .status(StatusCode::OK)
        .header(hyper::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")
        .body(crate::error::full_body(m::render()))
        .expect("static status and header are valid")
}
