//! Decoded frames from what users point the tools at: an image, a video file, or a folder of
//! images taken in name order. Frames come one at a time (a video is never held whole).
//!
//! Videos are decoded by `referee-video` (the ffmpeg program), so their pixels are those the
//! legacy service ran pose on (opencv-python's `VideoCapture`, which equals ffmpeg's bgr24);
//! Debian's OpenCV decodes h264 to other colours. Images are read by OpenCV, as `imread`.

use std::path::{Path, PathBuf};

use opencv::core::Mat;
use opencv::imgcodecs;
use opencv::prelude::*;
use referee_video::VideoDecoder;

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
    /// A video frame's presentation time in seconds (`None` for images).
    pub time: Option<f64>,
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
    /// A video file, decoded by ffmpeg.
    Video(VideoDecoder),
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
        Ok(FrameSource::Video(open_video(path)?))
    }

    /// A video's frame rate (frames per second), when it says; `None` for images.
    pub fn fps(&self) -> Option<f64> {
        match self {
            FrameSource::Video(decoder) => decoder.fps(),
            FrameSource::Images { .. } => None,
        }
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
                Some(read_image(&file).map(|image| Frame { source: file, index, time: None, image }))
            }
            FrameSource::Video(decoder) => {
                let path = decoder.path().to_owned();
                let unreadable = |reason: String| FrameError::Unreadable { path: path.clone(), reason };
                Some(match decoder.next()? {
                    Ok(frame) => bgr_mat(&frame).map_err(|e| unreadable(e.to_string())).map(|image| Frame {
                        source: path.clone(),
                        index: frame.index,
                        time: Some(frame.time),
                        image,
                    }),
                    Err(e) => Err(unreadable(e.to_string())),
                })
            }
        }
    }
}

/// Starts decoding a video with ffmpeg; an error when it is missing or not a video ffmpeg reads.
pub fn open_video(path: &Path) -> Result<VideoDecoder, FrameError> {
    VideoDecoder::open(path).map_err(|e| match e {
        referee_video::VideoError::Missing(p) => FrameError::Missing(p),
        referee_video::VideoError::Unreadable { reason, .. } => FrameError::Unreadable { path: path.to_owned(), reason },
        other => FrameError::Unreadable { path: path.to_owned(), reason: other.to_string() },
    })
}

/// A decoded video frame as an 8-bit BGR `Mat` (one copy of its pixels).
pub fn bgr_mat(frame: &referee_video::Frame) -> opencv::Result<Mat> {
    let flat = Mat::from_slice(&frame.bgr)?;
    flat.reshape(3, frame.height as i32)?.try_clone()
}

/// Decodes a streamed JPEG frame to 8-bit BGR as opencv-python's `cv2.imdecode(buf,
/// cv2.IMREAD_COLOR)` does (both are libjpeg-turbo with OpenCV's settings: checked bit for bit on
/// the demo clip's frames); `None` for bytes that are not a decodable image.
pub fn decode_jpeg(bytes: &[u8]) -> Option<Mat> {
    // A header that declares a huge picture would have OpenCV allocate it before finding the
    // data short: such a frame is refused unread, as a corrupt one is.
    match jpeg_size(bytes) {
        Some((width, height)) if u64::from(width) * u64::from(height) <= MAX_FRAME_PIXELS => {}
        _ => return None,
    }
    let buffer = opencv::core::Vector::<u8>::from_slice(bytes);
    let image = imgcodecs::imdecode(&buffer, imgcodecs::IMREAD_COLOR).ok()?;
    (!image.empty()).then_some(image)
}

/// Most pixels a streamed frame may have (8K UHD and a margin); a camera sends far fewer.
pub const MAX_FRAME_PIXELS: u64 = 8192 * 8192;

/// The width and height a JPEG's frame header (SOF) declares, read without decoding; `None`
/// when the bytes are not a JPEG or end before the header.
pub fn jpeg_size(bytes: &[u8]) -> Option<(u16, u16)> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut at = 2;
    loop {
        // Markers may be preceded by any number of 0xFF fill bytes.
        while *bytes.get(at)? == 0xFF && *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *bytes.get(at)? != 0xFF {
            return None;
        }
        let marker = *bytes.get(at + 1)?;
        if marker == 0xD8 || (0xD0..=0xD7).contains(&marker) || marker == 0x01 {
            at += 2; // markers without a length
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            return None; // scan data or the end before any frame header
        }
        let length = usize::from(u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]));
        let is_frame_header = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_frame_header {
            let height = u16::from_be_bytes([*bytes.get(at + 5)?, *bytes.get(at + 6)?]);
            let width = u16::from_be_bytes([*bytes.get(at + 7)?, *bytes.get(at + 8)?]);
            return Some((width, height));
        }
        if length < 2 {
            return None;
        }
        at += 2 + length;
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jpeg_headers_are_read_and_huge_ones_refused_unread() {
        let mut jpeg = opencv::core::Vector::<u8>::new();
        let image = Mat::new_rows_cols_with_default(48, 64, opencv::core::CV_8UC3, opencv::core::Scalar::all(90.0)).unwrap();
        imgcodecs::imencode(".jpg", &image, &mut jpeg, &opencv::core::Vector::new()).unwrap();
        let mut jpeg = jpeg.to_vec();
        assert_eq!(jpeg_size(&jpeg), Some((64, 48)));
        assert!(decode_jpeg(&jpeg).is_some());
        let sof = (0..jpeg.len() - 1).find(|&i| jpeg[i] == 0xFF && jpeg[i + 1] == 0xC0).expect("a baseline frame header");
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0x75, 0x30, 0x75, 0x30]); // 30000 × 30000
        assert_eq!(jpeg_size(&jpeg), Some((30000, 30000)));
        assert!(decode_jpeg(&jpeg).is_none());
        assert_eq!(jpeg_size(b"not a jpeg"), None);
        assert_eq!(jpeg_size(&[0xFF, 0xD8, 0xFF]), None);
    }
}
