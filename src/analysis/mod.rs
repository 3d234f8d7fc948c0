//! The phrase pipeline's glue: pose on frames, decoding, fisheye correction, letterboxing and
//! the artifacts. Nothing in here knows about HTTP.
//!
//! The engine modules (`signal`, `tracker`, `kinematics`, `decision`, `v2`, `timeline`,
//! `workbook`) live in the `referee-engine` crate (pure functions over plain structs, no
//! libtorch, no OpenCV) and are re-exported here, so `analysis::signal` and the like still name
//! them. `pose` (the `referee-pose` crate) owns the tensors; `letterbox`, `fisheye`, `frames` and `artifacts` are the
//! OpenCV side; `pipeline` runs a phrase through them all.

pub mod answer;
pub mod artifacts;
pub mod fisheye;
pub mod frames;
pub mod letterbox;
pub mod pipeline;
pub mod pose;

pub use referee_engine::{decision, kinematics, signal, single_light, timeline, tracker, v2, workbook};
