//! The YOLO-pose model on libtorch. It lives in its own crate (`pose/`, `referee-pose`) so that
//! it and `pose-bench` build without OpenCV and run on a GPU machine that has libtorch alone;
//! re-exported here as part of the analysis.

pub use referee_pose::*;
