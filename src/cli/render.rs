//! `ai-referee render`: paints a recorded phrase (normalised keypoints, no video) as coloured
//! markers, as an MJPEG .avi or a folder of JPEGs, for the marker pose model
//! (`scripts/make-marker-model.py`) to find again. It lets the recorded phrases run through the
//! whole pipeline (decode → pose → tracker → decision) and the streaming route.
//!
//! The code, shared with the marker model: fencer f (0 left, 1 right), keypoint k, c = k + 1:
//! red = (c / 4) · 255 / 4, green = (c mod 4) · 255 / 3, blue = 255 · f, on black.

use std::path::{Path, PathBuf};

use clap::Args;
use opencv::core::{self, Mat, Point, Scalar, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc, videoio};
use serde::Deserialize;

/// Keypoints drawn last, so that a marker that overlaps them never hides the points the rules
/// read (wrists 9, 10 and ankles 15, 16).
const DRAW_ORDER: [usize; 17] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 9, 10, 15, 16];
/// Marker radius at 720 lines; scaled with the frame height.
const MARKER_RADIUS_720P: f64 = 6.0;
/// Fractional bits for sub-pixel marker centres.
const SHIFT: i32 = 4;

/// Arguments of `ai-referee render`.
#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    /// JSON lines shaped like phrases.jsonl (`id`, `keypoints`, `normalisation_constant`, `signal`).
    #[arg(long)]
    pub phrases: PathBuf,
    /// The phrase to paint.
    #[arg(long)]
    pub id: String,
    /// An .avi (MJPEG), an .mp4, or a folder for JPEGs named so that they sort in frame order.
    #[arg(long)]
    pub out: PathBuf,
    /// Frames per second of the video.
    #[arg(long, default_value_t = 15.0)]
    pub fps: f64,
    /// Frame size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720", value_parser = parse_size)]
    pub size: (i32, i32),
    /// Size of the frames the keypoints were measured on, WIDTHxHEIGHT; the phrase is scaled
    /// from it to `--size` (normalised keypoints do not change under scaling).
    #[arg(long, default_value = "1920x1080", value_parser = parse_size)]
    pub source_size: (i32, i32),
    /// JPEG quality of the frames.
    #[arg(long, default_value_t = 95)]
    pub quality: i32,
    /// Also write the phrase's scoring-box log here.
    #[arg(long)]
    pub signal_out: Option<PathBuf>,
}

#[derive(Deserialize)]
struct RecordedPhrase {
    id: String,
    signal: String,
    normalisation_constant: f64,
    keypoints: RecordedKeypoints,
}

#[derive(Deserialize)]
struct RecordedKeypoints {
    left_x: Vec<Vec<Option<f64>>>,
    left_y: Vec<Vec<Option<f64>>>,
    right_x: Vec<Vec<Option<f64>>>,
    right_y: Vec<Vec<Option<f64>>>,
}

/// The marker colour (BGR) of keypoint `k` of fencer `fencer` (0 left, 1 right).
pub fn marker_colour(fencer: usize, k: usize) -> Scalar {
    let c = (k + 1) as f64;
    let red = ((c / 4.0).floor() * 255.0 / 4.0).round();
    let green = ((c % 4.0) * 255.0 / 3.0).round();
    let blue = 255.0 * fencer as f64;
    Scalar::new(blue, green, red, 0.0)
}

fn parse_size(text: &str) -> Result<(i32, i32), String> {
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(|| format!("{text:?} is not WIDTHxHEIGHT"))?;
    let w: i32 = w.trim().parse().map_err(|_| format!("bad width in {text:?}"))?;
    let h: i32 = h.trim().parse().map_err(|_| format!("bad height in {text:?}"))?;
    if w < 16 || h < 16 {
        return Err(format!("{text:?} is too small"));
    }
    Ok((w, h))
}

/// Paints the phrase and writes the video or the frames.
pub fn run(args: RenderArgs) -> Result<(), String> {
    let phrase = find_phrase(&args.phrases, &args.id)?;
    let (width, height) = args.size;
    let scale = (width as f64 / args.source_size.0 as f64).min(height as f64 / args.source_size.1 as f64);
    let pixels_per_unit = phrase.normalisation_constant * scale;
    let radius = MARKER_RADIUS_720P * height as f64 / 720.0;
    let mut sink = FrameSink::create(&args.out, args.fps, Size::new(width, height), args.quality)?;
    let k = &phrase.keypoints;
    let frames = k.left_x.len();
    for i in 0..frames {
        let mut frame = Mat::new_rows_cols_with_default(height, width, core::CV_8UC3, Scalar::all(0.0))
            .map_err(|e| e.to_string())?;
        let sides = [(&k.left_x, &k.left_y), (&k.right_x, &k.right_y)];
        for (fencer, (xs, ys)) in sides.iter().enumerate() {
            let (Some(xs), Some(ys)) = (xs.get(i), ys.get(i)) else { continue };
            for &kp in &DRAW_ORDER {
                let (Some(Some(x)), Some(Some(y))) = (xs.get(kp), ys.get(kp)) else { continue };
                if !(x.is_finite() && y.is_finite()) {
                    continue;
                }
                let one = f64::from(1 << SHIFT);
                let centre = Point::new((x * pixels_per_unit * one).round() as i32, (y * pixels_per_unit * one).round() as i32);
                imgproc::circle(&mut frame, centre, (radius * one).round() as i32, marker_colour(fencer, kp), -1, imgproc::LINE_AA, SHIFT)
                    .map_err(|e| e.to_string())?;
            }
        }
        sink.write(&frame, i)?;
    }
    sink.finish()?;
    if let Some(path) = &args.signal_out {
        std::fs::write(path, &phrase.signal).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    eprintln!("render: {} frames of {} to {}", frames, phrase.id, args.out.display());
    Ok(())
}

fn find_phrase(path: &Path, id: &str) -> Result<RecordedPhrase, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let value: serde_json::Value =
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        if value.get("id").and_then(|v| v.as_str()) == Some(id) {
            return serde_json::from_value(value).map_err(|e| format!("{}:{}: {e}", path.display(), n + 1));
        }
    }
    Err(format!("no phrase {id:?} in {}", path.display()))
}

/// Where rendered frames go: a video writer or a folder of JPEGs.
enum FrameSink {
    Video(videoio::VideoWriter),
    Folder(PathBuf, Vector<i32>),
}

impl FrameSink {
    fn create(out: &Path, fps: f64, size: Size, quality: i32) -> Result<FrameSink, String> {
        let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("avi") | Some("mp4") => {
                if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                }
                let name = out.to_str().ok_or("output path is not UTF-8")?;
                let writer = if ext.as_deref() == Some("avi") {
                    // OpenCV's own MJPEG writer, whose quality we control.
                    let fourcc = videoio::VideoWriter::fourcc('M', 'J', 'P', 'G').map_err(|e| e.to_string())?;
                    let mut w = videoio::VideoWriter::new_with_backend(name, videoio::CAP_OPENCV_MJPEG, fourcc, fps, size, true)
                        .map_err(|e| e.to_string())?;
                    let _ = w.set(videoio::VIDEOWRITER_PROP_QUALITY, quality as f64);
                    w
                } else {
                    let fourcc = videoio::VideoWriter::fourcc('m', 'p', '4', 'v').map_err(|e| e.to_string())?;
                    videoio::VideoWriter::new(name, fourcc, fps, size, true).map_err(|e| e.to_string())?
                };
                if !writer.is_opened().unwrap_or(false) {
                    return Err(format!("OpenCV cannot write {}", out.display()));
                }
                Ok(FrameSink::Video(writer))
            }
            Some(other) => Err(format!("cannot render to .{other}: use .avi, .mp4 or a folder")),
            None => {
                std::fs::create_dir_all(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
                let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]);
                Ok(FrameSink::Folder(out.to_owned(), params))
            }
        }
    }

    fn write(&mut self, frame: &Mat, index: usize) -> Result<(), String> {
        match self {
            FrameSink::Video(writer) => writer.write(frame).map_err(|e| e.to_string()),
            FrameSink::Folder(dir, params) => {
                let path = dir.join(format!("frame_{index:05}.jpg"));
                let ok = imgcodecs::imwrite(path.to_str().ok_or("path is not UTF-8")?, frame, params).map_err(|e| e.to_string())?;
                if ok {
                    Ok(())
                } else {
                    Err(format!("cannot write {}", path.display()))
                }
            }
        }
    }

    fn finish(self) -> Result<(), String> {
        if let FrameSink::Video(mut writer) = self {
            writer.release().map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_codes_are_distinct_and_never_black_or_grey() {
        let mut seen = std::collections::HashSet::new();
        for fencer in 0..2 {
            for k in 0..17 {
                let c = marker_colour(fencer, k);
                let key = (c[0] as i32, c[1] as i32, c[2] as i32);
                assert!(seen.insert(key), "duplicate colour {key:?}");
                assert_ne!(key, (0, 0, 0));
            }
        }
        assert_eq!(marker_colour(0, 15), Scalar::new(0.0, 0.0, 255.0, 0.0));
        assert_eq!(marker_colour(1, 2), Scalar::new(255.0, 255.0, 0.0, 0.0));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert!(parse_size("1280").is_err());
        assert!(parse_size("8x8").is_err());
    }
}
