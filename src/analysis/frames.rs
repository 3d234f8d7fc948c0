//! Decoded frames from what users point the tools at: an image, a video file, or a folder of
//! images taken in name order. Frames come one at a time (a video is never held whole).

use std::path::{Path, PathBuf};

use opencv::core::Mat;
use opencv::prelude::*;
use opencv::{imgcodecs, videoio};

/// Image file extensions a folder's frames may have.
const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "tif", "tiff"];

/// Why frames could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The path does not exist.
    #[error("{0} does not exist")]
    Missing(PathBuf),
    /// OpenCV could not open or decode it.
    #[error("cannot read {path}: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A folder without images.
    #[error("{0} holds no images (.jpg, .png, …)")]
    EmptyFolder(PathBuf),
}

/// One decoded frame and where it came from.
pub struct Frame {
    /// The file it came from (the image itself, or the video).
    pub source: PathBuf,
    /// Its index in the input: the video's frame number, or the image's place in the folder.
    pub index: usize,
    /// 8-bit BGR pixels.
    pub image: Mat,
}

/// Frames of one input, read lazily.
pub enum FrameSource {
    /// Image files, in order.
    Images {
        /// The files still to read, in order.
        files: std::vec::IntoIter<PathBuf>,
        /// Index of the next one.
        next: usize,
    },
    /// A video file decoded by OpenCV.
    Video {
        /// The file.
        path: PathBuf,
        /// The decoder.
        capture: videoio::VideoCapture,
        /// Index of the next frame.
        next: usize,
    },
}

impl FrameSource {
    /// Opens an image, a folder of images, or a video.
    pub fn open(path: &Path) -> Result<FrameSource, FrameError> {
        if !path.exists() {
            return Err(FrameError::Missing(path.to_owned()));
        }
        if path.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| FrameError::Unreadable { path: path.to_owned(), reason: e.to_string() })?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| is_image(p))
                .collect();
            if files.is_empty() {
                return Err(FrameError::EmptyFolder(path.to_owned()));
            }
            files.sort();
            return Ok(FrameSource::Images { files: files.into_iter(), next: 0 });
        }
        if is_image(path) {
            return Ok(FrameSource::Images { files: vec![path.to_owned()].into_iter(), next: 0 });
        }
        Ok(FrameSource::Video { path: path.to_owned(), capture: open_video(path)?, next: 0 })
    }
}

impl Iterator for FrameSource {
    type Item = Result<Frame, FrameError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            FrameSource::Images { files, next } => {
                let file = files.next()?;
                let index = *next;
                *next += 1;
                Some(read_image(&file).map(|image| Frame { source: file, index, image }))
            }
            FrameSource::Video { path, capture, next } => {
                let mut image = Mat::default();
                match capture.read(&mut image) {
                    Ok(true) if !image.empty() => {
                        let index = *next;
                        *next += 1;
                        Some(Ok(Frame { source: path.clone(), index, image }))
                    }
                    Ok(_) => None,
                    Err(e) => Some(Err(FrameError::Unreadable { path: path.clone(), reason: e.to_string() })),
                }
            }
        }
    }
}

/// Opens a video with OpenCV; an error when no backend can read it.
pub fn open_video(path: &Path) -> Result<videoio::VideoCapture, FrameError> {
    let unreadable = |reason: String| FrameError::Unreadable { path: path.to_owned(), reason };
    let name = path.to_str().ok_or_else(|| unreadable("path is not UTF-8".into()))?;
    // An MJPEG .avi goes to OpenCV's own MJPEG reader first: it decodes each JPEG as imdecode
    // does, so a phrase gives the same pixels whether it is uploaded whole or streamed as JPEGs.
    let is_avi = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("avi"));
    if is_avi {
        if let Ok(capture) = videoio::VideoCapture::from_file(name, videoio::CAP_OPENCV_MJPEG) {
            if capture.is_opened().unwrap_or(false) {
                return Ok(capture);
            }
        }
    }
    let capture = videoio::VideoCapture::from_file(name, videoio::CAP_ANY).map_err(|e| unreadable(e.to_string()))?;
    if !capture.is_opened().unwrap_or(false) {
        return Err(unreadable("OpenCV cannot open it as a video".into()));
    }
    Ok(capture)
}

/// Reads one image as 8-bit BGR.
pub fn read_image(path: &Path) -> Result<Mat, FrameError> {
    let unreadable = |reason: String| FrameError::Unreadable { path: path.to_owned(), reason };
    let name = path.to_str().ok_or_else(|| unreadable("path is not UTF-8".into()))?;
    let image = imgcodecs::imread(name, imgcodecs::IMREAD_COLOR).map_err(|e| unreadable(e.to_string()))?;
    if image.empty() {
        return Err(unreadable("not a decodable image".into()));
    }
    Ok(image)
}

fn is_image(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}
