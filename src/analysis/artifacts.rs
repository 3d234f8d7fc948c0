//! What a phrase leaves on disk, as the legacy service left it: the artifact directory's name,
//! the overlay video (left fencer blue, right green, keypoints and the COCO skeleton), the
//! corrected video (with the input's audio carried over by ffmpeg), and files written whole or
//! not at all.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use opencv::core::{Mat, Point, Scalar, Size};
use opencv::prelude::*;
use opencv::{imgproc, videoio};

/// The 19 COCO skeleton lines, as pairs of keypoint indices (0-based).
pub const SKELETON: [(usize, usize); 19] = [
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
    (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
];
/// Overlay colours (BGR): slot 0 (left) blue, slot 1 (right) green.
const SLOT_COLOURS: [(f64, f64, f64); 2] = [(255.0, 0.0, 0.0), (0.0, 255.0, 0.0)];

/// The artifact directory's name: the signal file's stem with every character outside
/// `[A-Za-z0-9_-]` replaced by `_` (`phrase` if empty), then `_` and the UTC time
/// `%Y%m%dT%H%M%SZ`.
pub fn artifact_dir_name(signal_filename: &str, now: SystemTime) -> String {
    let stem = Path::new(signal_filename).file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    let mut safe: String = stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    if safe.is_empty() {
        safe = "phrase".into();
    }
    format!("{safe}_{}", utc_stamp(now))
}

/// Creates `<output>/<name>`; when it exists already (two phrases with the same log name in the
/// same second) a `-2`, `-3`, … suffix keeps them apart.
pub fn create_artifact_dir(output: &Path, name: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(output)?;
    for n in 1.. {
        let dir = if n == 1 { output.join(name) } else { output.join(format!("{name}-{n}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    unreachable!("the loop returns")
}

/// `%Y%m%dT%H%M%SZ` for a UTC instant.
pub fn utc_stamp(now: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = utc_fields(now);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// RFC 3339 (`2026-12-03T08:30:12Z`) for a UTC instant.
pub fn utc_rfc3339(at: SystemTime) -> String {
    let (y, m, d, hh, mm, ss) = utc_fields(at);
    format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
}

/// Year, month, day, hour, minute, second of a UTC instant.
fn utc_fields(at: SystemTime) -> (i64, u32, u32, u64, u64, u64) {
    let secs = at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}


/// An mp4 being written frame by frame (OpenCV, `mp4v`), under a temporary name until
/// [`VideoOut::finish`] renames it.
pub struct VideoOut {
    writer: videoio::VideoWriter,
    partial: PathBuf,
    path: PathBuf,
    frames: usize,
}

impl VideoOut {
    /// Opens `path` for frames of `width`×`height` at `fps`.
    pub fn create(path: &Path, fps: f64, width: i32, height: i32) -> Result<VideoOut, String> {
        let partial = path.with_extension("partial.mp4");
        let name = partial.to_str().ok_or("path is not UTF-8")?;
        let fourcc = videoio::VideoWriter::fourcc('m', 'p', '4', 'v').map_err(|e| e.to_string())?;
        let fps = if fps.is_finite() && fps > 0.0 { fps } else { 15.0 };
        let writer = videoio::VideoWriter::new(name, fourcc, fps, Size::new(width, height), true).map_err(|e| e.to_string())?;
        if !writer.is_opened().unwrap_or(false) {
            return Err(format!("OpenCV cannot write {}", partial.display()));
        }
        Ok(VideoOut { writer, partial, path: path.to_owned(), frames: 0 })
    }

    /// Appends one BGR frame.
    pub fn write(&mut self, frame: &Mat) -> Result<(), String> {
        self.writer.write(frame).map_err(|e| e.to_string())?;
        self.frames += 1;
        Ok(())
    }

    /// Closes the file and gives it its final name; returns that path.
    pub fn finish(mut self) -> Result<PathBuf, String> {
        self.writer.release().map_err(|e| e.to_string())?;
        std::fs::rename(&self.partial, &self.path).map_err(|e| e.to_string())?;
        Ok(self.path)
    }

    /// Frames written so far.
    pub fn frames(&self) -> usize {
        self.frames
    }
}

/// Draws the two tracked fencers on a frame: circles of radius 3 on valid keypoints and the 19
/// skeleton lines (thickness 2) between valid pairs; slot 0 blue, slot 1 green.
pub fn draw_overlay(frame: &mut Mat, slots: &[Option<[[f32; 2]; 17]>; 2]) -> opencv::Result<()> {
    for (slot, points) in slots.iter().enumerate() {
        let Some(points) = points else { continue };
        let (b, g, r) = SLOT_COLOURS[slot];
        let colour = Scalar::new(b, g, r, 0.0);
        let at = |k: usize| {
            let [x, y] = points[k];
            (x > 0.0 && y > 0.0).then(|| Point::new(x.round() as i32, y.round() as i32))
        };
        for &(a, c) in &SKELETON {
            if let (Some(p), Some(q)) = (at(a), at(c)) {
                imgproc::line(frame, p, q, colour, 2, imgproc::LINE_AA, 0)?;
            }
        }
        for k in 0..17 {
            if let Some(p) = at(k) {
                imgproc::circle(frame, p, 3, colour, -1, imgproc::LINE_AA, 0)?;
            }
        }
    }
    Ok(())
}

/// Whether ffprobe finds an audio stream in `video`.
pub fn has_audio(video: &Path) -> bool {
    Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a", "-show_entries", "stream=index", "-of", "csv=p=0"])
        .arg(video)
        .output()
        .map(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
        .unwrap_or(false)
}

/// Copies `source`'s audio into `video` (in place) with ffmpeg; the video stream is copied
/// as is. Returns an error message when ffmpeg fails (the silent video is kept).
pub fn carry_audio(video: &Path, source: &Path) -> Result<(), String> {
    let muxed = video.with_extension("audio.mp4");
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(video)
        .arg("-i")
        .arg(source)
        .args(["-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-shortest"])
        .arg(&muxed)
        .status()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !status.success() {
        let _ = std::fs::remove_file(&muxed);
        return Err(format!("ffmpeg could not copy the audio of {}", source.display()));
    }
    std::fs::rename(&muxed, video).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn directory_names_follow_the_legacy_rule() {
        let t = UNIX_EPOCH + Duration::from_secs(1_761_004_760); // 2025-10-20T23:59:20Z
        assert_eq!(artifact_dir_name("phrase 01.txt", t), "phrase_01_20251020T235920Z");
        assert_eq!(artifact_dir_name("é-log_2.txt", t), "_-log_2_20251020T235920Z");
        // A dot file has no suffix (as in Python's pathlib): its stem is the whole name.
        assert_eq!(artifact_dir_name(".txt", t), "_txt_20251020T235920Z");
        assert_eq!(artifact_dir_name("", t), "phrase_20251020T235920Z");
        assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)), "20000229T000000Z");
    }

    #[test]
    fn same_second_directories_do_not_collide() {
        let out = std::env::temp_dir().join(format!("artifacts-test-{}", std::process::id()));
        let a = create_artifact_dir(&out, "p_20250101T000000Z").unwrap();
        let b = create_artifact_dir(&out, "p_20250101T000000Z").unwrap();
        assert_ne!(a, b);
        assert!(b.to_str().unwrap().ends_with("-2"));
        std::fs::remove_dir_all(&out).unwrap();
    }
}
