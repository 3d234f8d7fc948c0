//! Ultralytics' letterbox, on OpenCV: a BGR frame of any size becomes the model's 640×640 RGB
//! input, resized keeping its aspect with OpenCV's linear resize (torch's bilinear resize moves
//! keypoints by pixels) and padded with grey 114, centred as Ultralytics pads.
//!
//! The result is a `uint8` HWC tensor; [`crate::analysis::pose`] turns it into the network input
//! and maps detections back with the [`Letterbox`] geometry.

use opencv::core::{self, Mat, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;
use tch::{Kind, Tensor};

use crate::analysis::pose::{Letterbox, INPUT_SIZE};

/// Why a frame could not be letterboxed.
#[derive(Debug, thiserror::Error)]
pub enum LetterboxError {
    /// The frame is empty or not 8-bit, 3-channel BGR.
    #[error("frame is not an 8-bit BGR image ({0})")]
    BadFrame(String),
    /// OpenCV failed.
    #[error("OpenCV: {0}")]
    OpenCv(#[from] opencv::Error),
}

/// Letterboxes a BGR frame to 640×640 RGB; returns the `[640, 640, 3]` uint8 tensor and the
/// geometry that maps model coordinates back to the frame.
pub fn letterbox(frame: &Mat) -> Result<(Tensor, Letterbox), LetterboxError> {
    if frame.empty() || frame.typ() != core::CV_8UC3 {
        return Err(LetterboxError::BadFrame(format!("type {}, {}x{}", frame.typ(), frame.cols(), frame.rows())));
    }
    let geometry = Letterbox::new(frame.cols() as u32, frame.rows() as u32);
    let (new_w, new_h) = geometry.resized_size();
    let mut resized = Mat::default();
    let source = if (new_w, new_h) != (frame.cols(), frame.rows()) {
        imgproc::resize(frame, &mut resized, Size::new(new_w, new_h), 0.0, 0.0, imgproc::INTER_LINEAR)?;
        &resized
    } else {
        frame
    };
    let (top, bottom, left, right) = geometry.borders();
    let mut padded = Mat::default();
    core::copy_make_border(
        source,
        &mut padded,
        top,
        bottom,
        left,
        right,
        core::BORDER_CONSTANT,
        Scalar::all(114.0),
    )?;
    let mut rgb = Mat::default();
    imgproc::cvt_color_def(&padded, &mut rgb, imgproc::COLOR_BGR2RGB)?;
    let side = INPUT_SIZE as usize;
    debug_assert_eq!((rgb.rows() as usize, rgb.cols() as usize), (side, side));
    let bytes = rgb.data_bytes()?;
    let tensor = Tensor::from_data_size(bytes, &[INPUT_SIZE, INPUT_SIZE, 3], Kind::Uint8);
    Ok((tensor, geometry))
}
