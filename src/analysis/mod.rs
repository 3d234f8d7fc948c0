//! The referee's analysis: pose on frames, the two-fencer tracker, normalisation, the
//! scoring-box log and the right-of-way decision. Nothing in here knows about HTTP.

pub mod artifacts;
pub mod fisheye;
pub mod frames;
pub mod letterbox;
pub mod pose;
