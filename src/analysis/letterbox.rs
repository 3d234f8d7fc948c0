//! Ultralytics' letterbox, on OpenCV: a BGR frame of any size becomes the model's RGB input,
//! resized keeping its aspect with OpenCV's linear resize (torch's bilinear resize moves
//! keypoints by pixels) and padded with grey 114, centred as Ultralytics pads: to 640×640 for a
//! fixed-shape export, or only to the next multiple of 32 (1280×720 → 640×384) for a model that
//! takes any shape, as Ultralytics' `predict` pads for a `.pt`.
//!
//! The result is a `uint8` HWC tensor; [`crate::analysis::pose`] turns it into the network input
//! and maps detections back with the [`Letterbox`] geometry.

use opencv::core::{self, Mat, Scalar, Size};
use opencv::imgproc;
use opencv::prelude::*;
use tch::{Kind, Tensor};

use referee_pose::{InputShape, Letterbox};

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

/// Letterboxes a BGR frame into RGB input of the model's kind (`shape`); returns the
/// `[input_height, input_width, 3]` uint8 tensor and the geometry that maps model coordinates
/// back to the frame.
pub fn letterbox(frame: &Mat, shape: InputShape) -> Result<(Tensor, Letterbox), LetterboxError> {
    if frame.empty() || frame.typ() != core::CV_8UC3 {
        return Err(LetterboxError::BadFrame(format!("type {}, {}x{}", frame.typ(), frame.cols(), frame.rows())));
    }
    let geometry = Letterbox::fit(frame.cols() as u32, frame.rows() as u32, shape);
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
    let (width, height) = geometry.input_size();
    debug_assert_eq!((i64::from(rgb.rows()), i64::from(rgb.cols())), (height, width));
    let bytes = rgb.data_bytes()?;
    let tensor = Tensor::from_data_size(bytes, &[height, width, 3], Kind::Uint8);
    Ok((tensor, geometry))
}
