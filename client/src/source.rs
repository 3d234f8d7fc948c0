//! Where a phrase's frames come from: a camera, a video file or a folder of images. Each is read
//! on its own thread, encoded to JPEG where needed and appended to the spool with the phrase
//! time it was taken at. OpenCV does the capture and the encoding; nothing here knows HTTP.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opencv::core::{Mat, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, videoio};
use referee_video::VideoDecoder;

use crate::error::ClientError;
use crate::spool::Spool;

/// Frame rate used when neither the source nor `--fps` gives one.
pub const DEFAULT_FPS: f64 = 15.0;

/// What to capture.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// A video file, read frame by frame.
    Video(PathBuf),
    /// A live capture: a camera index (`0`), or a device path or stream URL OpenCV opens.
    Camera(String),
    /// A folder of images, in name order (JPEGs sent as they are, others encoded).
    Frames(PathBuf),
}

/// How to capture.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// The frame rate: of a file or folder's phrase time, asked of a camera (and kept by
    /// dropping frames if it gives more).
    pub fps: Option<f64>,
    /// Send a file or folder at its frame rate, as a camera would (and pace a capture that
    /// comes faster than real time).
    pub realtime: bool,
    /// Stop after this many seconds of phrase.
    pub duration: Option<f64>,
    /// JPEG quality for frames that are encoded here (1–100).
    pub jpeg_quality: i32,
}

/// What the opened source says about itself.
#[derive(Debug, Clone, Copy)]
pub struct SourceInfo {
    /// Its frame rate.
    pub fps: f64,
    /// How many frames it will give, when known.
    pub frames: Option<u64>,
}

/// A capture started on its own thread.
pub struct Capture {
    /// What the source said when it was opened.
    pub info: SourceInfo,
    /// Set to end a live capture (the phrase is over).
    pub stop: Arc<AtomicBool>,
    /// The capture thread: why it ended early, if it did.
    pub thread: std::thread::JoinHandle<Result<(), ClientError>>,
}

/// Opens `spec` and starts capturing into `spool`; fails at once when it cannot be opened.
pub fn start(spec: SourceSpec, options: CaptureOptions, spool: Arc<Spool>) -> Result<Capture, ClientError> {
    let stop = Arc::new(AtomicBool::new(false));
    let (opened_tx, opened_rx) = std::sync::mpsc::channel();
    let stop_flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut source = match Source::open(&spec, &options) {
                Ok(s) => s,
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                    spool.finish();
                    return Ok(());
                }
            };
            let _ = opened_tx.send(Ok(source.info()));
            let ended = source.run(&options, &spool, &stop_flag);
            spool.finish();
            ended
        })
        .map_err(|e| ClientError::Failed(format!("cannot start the capture thread: {e}")))?;
    let info = opened_rx.recv().map_err(|_| ClientError::Failed("the capture thread stopped before opening its source".into()))??;
    Ok(Capture { info, stop, thread })
}

enum Source {
    /// A file, decoded by ffmpeg (the pixels the server's `/analyze` and the legacy decode);
    /// `asked`: the rate is the user's `--fps`, which relabels the frames' times.
    Video { decoder: VideoDecoder, fps: f64, asked: bool, frames: Option<u64> },
    Camera { capture: videoio::VideoCapture, fps: f64, decimate: bool },
    Frames { paths: Vec<PathBuf>, fps: f64 },
}

fn opencv_failed(what: &str) -> impl Fn(opencv::Error) -> ClientError + '_ {
    move |e| ClientError::Failed(format!("{what}: {e}"))
}

impl Source {
    fn open(spec: &SourceSpec, options: &CaptureOptions) -> Result<Source, ClientError> {
        match spec {
            SourceSpec::Video(path) => {
                let decoder = VideoDecoder::open(path).map_err(|e| ClientError::Failed(e.to_string()))?;
                let own = decoder.fps().filter(|f| f.is_finite() && *f > 0.0);
                let fps = options.fps.or(own).unwrap_or(DEFAULT_FPS);
                let mut frames = referee_video::frame_count(path);
                if let (Some(n), Some(d)) = (frames, options.duration) {
                    frames = Some(n.min((d * fps).ceil() as u64));
                }
                Ok(Source::Video { decoder, fps, asked: options.fps.is_some(), frames })
            }
            SourceSpec::Camera(name) => {
                let what = format!("cannot open the camera {name}");
                let mut capture = opened(
                    match name.parse::<i32>() {
                        Ok(index) => videoio::VideoCapture::new(index, videoio::CAP_ANY),
                        Err(_) => videoio::VideoCapture::from_file(name, videoio::CAP_ANY),
                    },
                    &what,
                )?;
                if let Some(fps) = options.fps {
                    // Cameras may ignore this; frames beyond the rate are dropped below.
                    let _ = capture.set(videoio::CAP_PROP_FPS, fps);
                }
                let fps = frame_rate(&capture, options.fps);
                Ok(Source::Camera { capture, fps, decimate: options.fps.is_some() })
            }
            SourceSpec::Frames(dir) => {
                let mut paths = image_files(dir)?;
                let fps = options.fps.unwrap_or(DEFAULT_FPS);
                if let Some(d) = options.duration {
                    paths.truncate((d * fps).ceil().max(0.0) as usize);
                }
                if paths.is_empty() {
                    return Err(ClientError::Failed(format!("no images (.jpg, .jpeg, .png, .bmp) in {}", dir.display())));
                }
                Ok(Source::Frames { paths, fps })
            }
        }
    }

    fn info(&self) -> SourceInfo {
        match self {
            Source::Video { fps, frames, .. } => SourceInfo { fps: *fps, frames: *frames },
            Source::Camera { fps, .. } => SourceInfo { fps: *fps, frames: None },
            Source::Frames { paths, fps } => SourceInfo { fps: *fps, frames: Some(paths.len() as u64) },
        }
    }

    /// Captures until the source ends, `duration` is reached, or `stop` is set.
    fn run(&mut self, options: &CaptureOptions, spool: &Spool, stop: &AtomicBool) -> Result<(), ClientError> {
        let stored = |jpeg: &[u8], ts: f64| spool.push(jpeg, ts).map_err(|e| ClientError::Failed(format!("cannot spool a frame to disk: {e}")));
        let started = Instant::now();
        let duration = options.duration.unwrap_or(f64::INFINITY);
        let mut image = Mat::default();
        match self {
            Source::Video { decoder, fps, asked, .. } => {
                let period = 1.0 / *fps;
                let mut first_time = None;
                for (i, frame) in decoder.by_ref().enumerate() {
                    let frame = frame.map_err(|e| ClientError::Failed(format!("cannot read a frame: {e}")))?;
                    // The frame's own time from the file, unless --fps relabels it.
                    let since_first = frame.time - *first_time.get_or_insert(frame.time);
                    let ts = if *asked || !since_first.is_finite() { i as f64 * period } else { since_first };
                    if ts >= duration || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    if options.realtime {
                        pace(started, ts);
                    }
                    let image = bgr_mat(&frame)?;
                    stored(&encode(&image, options.jpeg_quality)?, ts)?;
                }
            }
            Source::Camera { capture, fps, decimate } => {
                let period = 1.0 / *fps;
                let mut sent = 0u64;
                while !stop.load(Ordering::Relaxed) && started.elapsed().as_secs_f64() < duration {
                    if !read(capture, &mut image)? {
                        break;
                    }
                    if options.realtime {
                        pace(started, sent as f64 * period);
                    }
                    let ts = started.elapsed().as_secs_f64();
                    if *decimate && ts < sent as f64 * period {
                        continue; // the camera gives more frames than asked for
                    }
                    stored(&encode(&image, options.jpeg_quality)?, ts)?;
                    sent += 1;
                }
            }
            Source::Frames { paths, fps } => {
                let period = 1.0 / *fps;
                for (i, path) in paths.iter().enumerate() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let ts = i as f64 * period;
                    if options.realtime {
                        pace(started, ts);
                    }
                    stored(&image_as_jpeg(path, options.jpeg_quality)?, ts)?;
                }
            }
        }
        Ok(())
    }
}

/// A decoded video frame as an 8-bit BGR `Mat`.
fn bgr_mat(frame: &referee_video::Frame) -> Result<Mat, ClientError> {
    let wrap = || -> opencv::Result<Mat> { Mat::from_slice(&frame.bgr)?.reshape(3, frame.height as i32)?.try_clone() };
    wrap().map_err(opencv_failed("cannot wrap a decoded frame"))
}

/// A capture OpenCV made and could open; `what` says which, in the error.
fn opened(made: opencv::Result<videoio::VideoCapture>, what: &str) -> Result<videoio::VideoCapture, ClientError> {
    let capture = made.map_err(opencv_failed(what))?;
    if !capture.is_opened().map_err(opencv_failed(what))? {
        return Err(ClientError::Failed(format!("{what}: OpenCV cannot open it")));
    }
    Ok(capture)
}

/// The frame rate asked for, else the capture's own, else [`DEFAULT_FPS`].
fn frame_rate(capture: &videoio::VideoCapture, asked: Option<f64>) -> f64 {
    let own = capture.get(videoio::CAP_PROP_FPS).unwrap_or(0.0);
    asked.unwrap_or(if own.is_finite() && own > 0.0 { own } else { DEFAULT_FPS })
}

/// The next frame into `image`; false at the end of the source.
fn read(capture: &mut videoio::VideoCapture, image: &mut Mat) -> Result<bool, ClientError> {
    let got = capture.read(image).map_err(opencv_failed("cannot read a frame"))?;
    Ok(got && !image.empty())
}

/// Sleeps until `at` seconds after `started` (a camera's pace; nothing to wait for otherwise).
fn pace(started: Instant, at: f64) {
    let due = started + Duration::from_secs_f64(at);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

/// A frame as JPEG bytes at this quality.
pub fn encode(image: &Mat, quality: i32) -> Result<Vec<u8>, ClientError> {
    let mut buffer = Vector::<u8>::new();
    let params = Vector::<i32>::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]);
    let ok = imgcodecs::imencode(".jpg", image, &mut buffer, &params).map_err(opencv_failed("cannot encode a frame as JPEG"))?;
    if !ok {
        return Err(ClientError::Failed("OpenCV could not encode a frame as JPEG".into()));
    }
    Ok(buffer.to_vec())
}

/// A JPEG's width and height in pixels.
pub fn jpeg_size(jpeg: &[u8]) -> Result<(i32, i32), ClientError> {
    let image = imgcodecs::imdecode(&Vector::<u8>::from_slice(jpeg), imgcodecs::IMREAD_UNCHANGED).map_err(opencv_failed("cannot decode a frame"))?;
    if image.empty() {
        return Err(ClientError::Failed("a frame is not a JPEG OpenCV can decode".into()));
    }
    Ok((image.cols(), image.rows()))
}

/// A folder's images in name order.
fn image_files(dir: &Path) -> Result<Vec<PathBuf>, ClientError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ClientError::Failed(format!("cannot list {}: {e}", dir.display())))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
            p.is_file() && matches!(ext.as_str(), "jpg" | "jpeg" | "png" | "bmp")
        })
        .collect();
    paths.sort();
    Ok(paths)
}

/// A JPEG file's bytes as they are; any other image decoded and encoded.
fn image_as_jpeg(path: &Path, quality: i32) -> Result<Vec<u8>, ClientError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    if matches!(ext.as_str(), "jpg" | "jpeg") {
        return std::fs::read(path).map_err(|e| ClientError::Failed(format!("cannot read {}: {e}", path.display())));
    }
    let image = imgcodecs::imread(path, imgcodecs::IMREAD_COLOR).map_err(opencv_failed("cannot read an image"))?;
    if image.empty() {
        return Err(ClientError::Failed(format!("cannot decode the image {}", path.display())));
    }
    encode(&image, quality)
}
