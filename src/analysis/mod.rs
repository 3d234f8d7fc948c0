//! The phrase pipeline's glue: pose on frames, decoding, fisheye correction, letterboxing and
//! the artifacts. Nothing in here knows about HTTP.
//!
//! The engine (`signal`, `tracker`, `kinematics`, `decision`, `v2`, `timeline`, `workbook`) is
//! the `referee-engine` crate (pure functions over plain structs, no libtorch, no OpenCV), and
//! the model the `referee-pose` crate (it owns the tensors); both are used by their own names.
//! `letterbox`, `fisheye`, `frames` and `artifacts` are the OpenCV side; `pipeline` runs a
//! phrase through them all, and `answer` writes what it found.

pub mod answer;
pub mod artifacts;
pub mod fisheye;
pub mod frames;
pub mod letterbox;
pub mod pipeline;
