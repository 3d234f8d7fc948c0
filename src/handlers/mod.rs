//! One module per route family; each handler takes the request (and the shared state) and
//! returns a response or an [`ApiError`](crate::error::ApiError). The router is `server.rs`.

pub mod analyze;
pub mod form;
pub mod health;
pub mod sessions;
pub mod stream;
pub mod view;
pub mod websocket;

/// A request's body as handlers see it: hyper's, cut with an error when no byte has come for
/// the body idle timeout (tower-http's `RequestBodyTimeoutLayer`), and shared with the layer that
/// reads the rest of a refused body (`crate::linger`).
pub type RequestBody = tower_http::timeout::TimeoutBody<crate::linger::SharedBody<hyper::body::Incoming>>;

/// Runs work that reads or writes files (a session's frames, log and mark; a rebuild from disk;
/// a listing) on tokio's blocking pool, so that no runtime worker waits on the disk: one slow
/// disk stalls its own phrase, never the other pistes, `/health` or `/metrics`.
pub async fn on_disk<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, crate::error::ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(|e| crate::error::ApiError::Internal(format!("a storage task ended abnormally: {e}")))
}

/// Ends an upload from a `Drop` (the client went away): on the blocking pool when a runtime is
/// there, as [`on_disk`] does, else here.
pub fn end_upload_in_background(session: std::sync::Arc<crate::session::Session>) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(move || session.end_upload(false));
        }
        Err(_) => session.end_upload(false),
    }
}
