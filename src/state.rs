//! What every request handler can see: the settings, the pose scheduler once the model is
//! loaded, and the streamed phrases.

use std::sync::{Arc, OnceLock};

use referee_pose::PoseScheduler;
use crate::config::ServeConfig;
use crate::error::ApiError;
use crate::session::Sessions;

/// The server's shared state.
#[derive(Debug)]
pub struct AppState {
    /// The settings the server was started with.
    pub config: ServeConfig,
    /// The pose scheduler, set once the model is loaded and warmed up.
    pub pose: OnceLock<Arc<PoseScheduler>>,
    /// Streamed phrases.
    pub sessions: Sessions,
    /// With `--pose-backend triton`: whether Triton answered its last readiness check (every
    /// few seconds).
    pub backend_reachable: std::sync::atomic::AtomicBool,
}

impl AppState {
    /// The pose scheduler, or 503 while the model is still loading.
    pub fn ready_pose(&self) -> Result<Arc<PoseScheduler>, ApiError> {
        self.pose.get().cloned().ok_or_else(|| ApiError::Unavailable("the pose model is still loading".into()))
    }
}
