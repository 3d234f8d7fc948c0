//! The streaming AI referee for fencing: a server that runs a pose model on each frame of a
//! phrase as it arrives and applies the right-of-way rules when the last hit is in.
//!
//! A frame's way through the crate: [`server`] (connections and the router, behind the tower
//! [`layers`]: token, request span and access log, response counts) → [`handlers`]
//! (one module per route family) → [`session`] (stored frames, admission, the analysis pool) →
//! [`analysis`] (fisheye, letterbox, the pose scheduler, tracker, decisions). [`state`] is what
//! handlers share, [`config`] the settings, [`error`] the one error type that knows HTTP
//! statuses (typed errors below it are mapped there), [`metrics`] the Prometheus names, [`disk`]
//! free space and retention. The pure engine is the `referee-engine` crate, the model (local or
//! on Triton) the `referee-pose` crate, the wire format shared with the client `referee-wire`,
//! the session files `referee-store`.

pub mod analysis;
pub mod auth;
pub mod cli;
pub mod config;
pub mod disk;
pub mod error;
pub mod handlers;
pub mod layers;
pub mod linger;
pub mod metrics;
pub mod mjpeg;
pub mod routes;
pub mod server;
pub mod session;
pub mod state;
