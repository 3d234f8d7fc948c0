//! The streaming AI referee for fencing: a server that runs a pose model on each frame of a
//! phrase as it arrives and applies the right-of-way rules when the last hit is in.
//!
//! A frame's way through the crate: [`server`] (routes) → [`analysis`] (pose, tracker,
//! normalisation, decision). [`config`] holds the settings, [`error`] the one error type that
//! knows HTTP statuses.

pub mod analysis;
pub mod analyze;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod form;
pub mod mjpeg;
pub mod server;
pub mod session;
pub mod stream;
pub mod view;
