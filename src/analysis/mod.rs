//! The referee's analysis: pose on frames, the two-fencer tracker, normalisation, the
//! scoring-box log and the right-of-way decision. Nothing in here knows about HTTP.
//!
//! The engine modules (`signal`, `tracker`, `kinematics`, `decision`) are pure functions over
//! plain structs; `pose` owns the tensors; `letterbox`, `fisheye`, `frames` and `artifacts`
//! are the OpenCV side.

pub mod artifacts;
pub mod decision;
pub mod fisheye;
pub mod frames;
pub mod kinematics;
pub mod letterbox;
pub mod pipeline;
pub mod pose;
pub mod signal;
pub mod timeline;
pub mod tracker;
pub mod v2;
pub mod workbook;
