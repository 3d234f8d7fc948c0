//! The service's Prometheus metrics (`GET /metrics`): every name in one place, recorded through
//! the `metrics` facade where the event happens (an upload, a pool thread, the pose scheduler),
//! rendered in the Prometheus text format by `metrics-exporter-prometheus`.
//!
//! Counters and histograms are recorded as things happen; the gauges that describe the present
//! (phrases in memory by state, the pose backlog, free disk) are read when scraped.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use referee_pose::scheduler::POSE_MS_PER_FRAME;

/// Phrases that ended, by `route` (`stream`, `analyze`) and `outcome` (`left`, `right`,
/// `undecidable`, `failed`).
pub const PHRASES: &str = "referee_phrases_total";
/// Phrases held in memory now, by `state` (as `GET /sessions/{id}` names it).
pub const PHRASES_NOW: &str = "referee_phrases";
/// Uploads cut off before their end (the session is kept as `interrupted`).
pub const UPLOADS_INTERRUPTED: &str = "referee_uploads_interrupted_total";
/// Frames stored, as they arrive.
pub const FRAMES_RECEIVED: &str = "referee_frames_received_total";
/// Frames run through pose and the tracker.
pub const FRAMES_ANALYSED: &str = "referee_frames_analysed_total";
/// Frames that were not a decodable JPEG (skipped).
pub const FRAMES_CORRUPT: &str = "referee_frames_corrupt_total";
/// Request body bytes taken in (frames, logs, `/analyze` files).
pub const BYTES_RECEIVED: &str = "referee_bytes_received_total";
/// Frames waiting on the pose scheduler now.
pub const POSE_BACKLOG: &str = "referee_pose_backlog";
/// 1 for the pose backend in use (label `backend`), once the model is loaded.
pub const POSE_BACKEND: &str = "referee_pose_backend";
/// 1 when the pose backend (label `kind`: `local`, `triton`) answers, 0 when it does not.
pub const POSE_BACKEND_REACHABLE: &str = "referee_pose_backend_reachable";
/// Seconds from a phrase's last byte (frame or log) to its verdict.
pub const VERDICT_SECONDS: &str = "referee_verdict_seconds_after_last_byte";
/// Responses, by `route` (the route's pattern) and `status`.
pub const RESPONSES: &str = "referee_responses_total";
/// Client connections open now.
pub const OPEN_CONNECTIONS: &str = "referee_open_connections";
/// Piste WebSockets open now (`GET /stream` upgraded; no longer counted as connections).
pub const WEBSOCKETS_OPEN: &str = "referee_websockets_open";
/// `error` messages sent on piste WebSockets, by `code` (the protocol's error code).
pub const WEBSOCKET_ERRORS: &str = "referee_websocket_errors_total";
/// Bytes free on the disk that holds the phrases.
pub const DISK_FREE: &str = "referee_disk_free_bytes";

/// Bucket bounds of the pose histogram, milliseconds per frame (a GPU batch to a slow CPU).
const POSE_MS_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];
/// Bucket bounds of the verdict histogram, seconds.
const VERDICT_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder for this process (once; later calls return the same
/// handle). `None` when another recorder was installed first: metrics are then not served.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(POSE_MS_PER_FRAME.into()), POSE_MS_BUCKETS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Full(VERDICT_SECONDS.into()), VERDICT_BUCKETS));
            let handle = builder.and_then(|b| b.install_recorder());
            match handle {
                Ok(h) => {
                    describe();
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(%e, "metrics recorder not installed; /metrics will be empty");
                    None
                }
            }
        })
        .as_ref()
}

/// The text exposition of every metric recorded so far.
pub fn render() -> String {
    HANDLE.get().and_then(Option::as_ref).map(PrometheusHandle::render).unwrap_or_default()
}

/// Drains histogram data held between scrapes; run now and then.
pub fn upkeep() {
    if let Some(handle) = HANDLE.get().and_then(Option::as_ref) {
        handle.run_upkeep();
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(PHRASES, "Phrases that ended, by route and outcome (left, right, undecidable, failed).");
    describe_gauge!(PHRASES_NOW, "Phrases held in memory now, by state.");
    describe_counter!(UPLOADS_INTERRUPTED, "Uploads cut off before their end.");
    describe_counter!(FRAMES_RECEIVED, "Frames stored as they arrived.");
    describe_counter!(FRAMES_ANALYSED, "Frames run through pose and the tracker.");
    describe_counter!(FRAMES_CORRUPT, "Frames that were not a decodable JPEG.");
    describe_counter!(BYTES_RECEIVED, Unit::Bytes, "Request body bytes taken in.");
    describe_gauge!(POSE_BACKLOG, "Frames waiting on the pose scheduler.");
    describe_gauge!(POSE_BACKEND, "1 for the pose backend in use.");
    describe_gauge!(POSE_BACKEND_REACHABLE, "1 when the pose backend answers.");
    describe_histogram!(POSE_MS_PER_FRAME, Unit::Milliseconds, "Pose backend time per frame (a batch's time over its frames).");
    describe_histogram!(VERDICT_SECONDS, Unit::Seconds, "Seconds from a phrase's last byte to its verdict.");
    describe_counter!(RESPONSES, "Responses by route and status.");
    describe_gauge!(OPEN_CONNECTIONS, "Client connections open now.");
    describe_gauge!(DISK_FREE, Unit::Bytes, "Bytes free on the disk that holds the phrases.");
}

/// A phrase ended: its route and outcome are counted.
pub fn phrase_ended(route: &'static str, outcome: &str) {
    metrics::counter!(PHRASES, "route" => route, "outcome" => outcome.to_ascii_lowercase()).increment(1);
}

/// The outcome of a decided phrase: the winner of the answer's `decision`.
pub fn decided(route: &'static str, answer: &serde_json::Value) {
    phrase_ended(route, answer.pointer("/decision/winner").and_then(|w| w.as_str()).unwrap_or("unknown"));
}
