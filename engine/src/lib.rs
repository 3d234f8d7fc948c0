//! The pure referee engine: from a phrase's scoring-box log and each frame's detections to the
//! right-of-way call. Plain structs in, plain structs out; no libtorch, no OpenCV, no HTTP, so
//! it builds and tests in seconds. The service (`ai-referee`) feeds it frames as they arrive;
//! the `referee-engine` binary runs its tools ([`cli`]) without the service.
//!
//! A phrase's way through the crate:
//! - [`tracker`]: the two-fencer tracker, fed one frame's detections at a time.
//! - [`kinematics`]: the tracker's frames normalised (c, sides, front/back pairs).
//! - [`signal`]: the scoring-box log, the one parser every engine reads it with: as the legacy
//!   parsed it ([`signal::parse`]), and its timed events in seconds ([`signal::events`]).
//! - [`frame_times`]: each frame's time on the log's clock.
//! - [`motion`]: the hips' forward position, speed, ground gained and unbroken advance, in seconds.
//! - [`decision`]: the legacy right-of-way rules, exactly.
//! - [`v2`]: who had been advancing when the lights came on, on a true time axis.
//! - [`v3`]: v2's attack kept to what holds on evenings it was not fitted on, with a calibrated
//!   confidence.
//! - [`single_light`]: every engine's answer to a phrase only one light ended.
//! - [`choice`]: which engine decides; [`side`]: the two fencers.
//! - [`timeline`]: speeds, pauses, retreats and lights in seconds, for the piste view.
//! - [`workbook`]: the legacy keypoints workbook (.xlsx), written and read back.
#![warn(missing_docs)]

pub mod choice;
pub mod cli;
pub mod decision;
pub mod features;
pub mod frame_times;
#[doc(hidden)]
pub mod fuzzing;
pub mod kinematics;
pub mod motion;
pub mod side;
pub mod signal;
pub mod single_light;
pub mod timeline;
pub mod tracker;
pub mod v2;
pub mod v3;
pub mod workbook;
