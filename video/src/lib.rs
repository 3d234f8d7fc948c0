//! Video files decoded to 8-bit BGR frames, the same bytes as
//! `ffmpeg -i FILE -f rawvideo -pix_fmt bgr24 -` writes (which are also what opencv-python's
//! `VideoCapture` reads, and what the legacy service ran pose on), with each frame's timestamp
//! and the stream's frame rate.
//!
//! The decoder is the `ffmpeg` program, run as a streaming subprocess: frames come one at a time
//! through a pipe (a video is never held whole), and its `showinfo` filter reports each frame's
//! size and presentation time on stderr, which a reader thread turns into [`FrameInfo`]s. Debian's
//! OpenCV links the same libraries but converts colours differently (up to 24 levels apart on
//! BT.709 h264), so the ffmpeg program itself is the reference, not a re-implementation of it.
//! Rotated videos come out upright and odd sizes whole, as ffmpeg gives them.
//!
//! Nothing here knows OpenCV or libtorch: the server wraps frames in `Mat`s, the client too.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;

/// The program run to decode; `REFEREE_FFMPEG` names another.
pub const FFMPEG_ENV: &str = "REFEREE_FFMPEG";
/// The program asked for a container's frame count; `REFEREE_FFPROBE` names another.
pub const FFPROBE_ENV: &str = "REFEREE_FFPROBE";

/// Why a video could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    /// The file does not exist.
    #[error("{0} does not exist")]
    Missing(PathBuf),
    /// The decoder program could not be started.
    #[error("cannot run {program} to decode video ({reason}); install ffmpeg or set {FFMPEG_ENV}")]
    NoDecoder {
        /// The program.
        program: String,
        /// Why it did not start.
        reason: String,
    },
    /// ffmpeg could not open or decode the file as a video.
    #[error("cannot decode {path} as a video: {reason}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// ffmpeg's own words.
        reason: String,
    },
}

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Its place in the video, from 0.
    pub index: usize,
    /// Presentation time in seconds, as ffmpeg reports it (the first frame is usually 0).
    pub time: f64,
    /// Width in pixels (after rotation).
    pub width: u32,
    /// Height in pixels (after rotation).
    pub height: u32,
    /// `height × width × 3` bytes, rows top to bottom, pixels blue, green, red.
    pub bgr: Vec<u8>,
}

/// What `showinfo` said about one frame, ahead of its pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
struct FrameInfo {
    pts: i64,
    width: u32,
    height: u32,
}

/// What the reader thread passes on from ffmpeg's stderr.
enum Event {
    /// The filter graph's input: its time base (seconds per `pts` tick) and frame rate (once,
    /// before any frame).
    Config { time_base: Option<f64>, fps: Option<f64> },
    /// A frame's size and time (its pixels follow on stdout).
    Frame(FrameInfo),
}

/// Frames of one video file, decoded lazily by an `ffmpeg` subprocess.
pub struct VideoDecoder {
    path: PathBuf,
    child: Child,
    pixels: ChildStdout,
    events: mpsc::Receiver<Event>,
    stderr_tail: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    fps: Option<f64>,
    time_base: f64,
    next: usize,
    failed: bool,
}

impl std::fmt::Debug for VideoDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoDecoder").field("path", &self.path).field("fps", &self.fps).field("next", &self.next).finish()
    }
}

impl VideoDecoder {
    /// Starts decoding the first video stream of `path`. Fails when the file is missing or
    /// ffmpeg finds no decodable video in it.
    pub fn open(path: &Path) -> Result<VideoDecoder, VideoError> {
        if !path.is_file() {
            return Err(VideoError::Missing(path.to_owned()));
        }
        let program = std::env::var(FFMPEG_ENV).unwrap_or_else(|_| "ffmpeg".into());
        let mut child = Command::new(&program)
            .args(["-hide_banner", "-nostdin", "-nostats", "-loglevel", "info", "-i"])
            .arg(path)
            // The first video stream, every decoded frame once (no rate conversion), the
            // showinfo line before each frame, each frame flushed to the pipe whole.
            .args(["-map", "0:v:0", "-vf", "showinfo=checksum=0", "-fps_mode", "passthrough"])
            .args(["-f", "rawvideo", "-pix_fmt", "bgr24", "-flush_packets", "1", "-"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| VideoError::NoDecoder { program: program.clone(), reason: e.to_string() })?;
        let pixels = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        let (sender, events) = mpsc::channel();
        let stderr_tail = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let tail = stderr_tail.clone();
        let reader = std::thread::Builder::new()
            .name("ffmpeg-stderr".into())
            .spawn(move || read_stderr(stderr, sender, tail))
            .map_err(|e| VideoError::NoDecoder { program: program.clone(), reason: e.to_string() })?;
        let mut decoder = VideoDecoder {
            path: path.to_owned(),
            child,
            pixels,
            events,
            stderr_tail,
            reader: Some(reader),
            fps: None,
            time_base: f64::NAN,
            next: 0,
            failed: false,
        };
        match decoder.events.recv() {
            Ok(Event::Config { time_base, fps }) => {
                decoder.fps = fps;
                decoder.time_base = time_base.unwrap_or(f64::NAN);
            }
            Ok(Event::Frame(_)) => unreachable!("showinfo reports its configuration before any frame"),
            Err(_) => return Err(decoder.failure("ffmpeg found no video stream it can decode")),
        }
        Ok(decoder)
    }

    /// The stream's frame rate as ffmpeg guesses it (frames per second), if it knows one.
    pub fn fps(&self) -> Option<f64> {
        self.fps
    }

    /// The file being decoded.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The error for a decode that stopped: ffmpeg's last words, or `fallback`.
    fn failure(&mut self, fallback: &str) -> VideoError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let tail = self.stderr_tail.lock().map(|t| t.clone()).unwrap_or_default();
        let reason = ffmpeg_reason(&tail).unwrap_or_else(|| fallback.to_owned());
        VideoError::Unreadable { path: self.path.clone(), reason }
    }

    fn read_frame(&mut self, info: FrameInfo) -> Result<Frame, VideoError> {
        let len = info.width as usize * info.height as usize * 3;
        let mut bgr = vec![0u8; len];
        self.pixels
            .read_exact(&mut bgr)
            .map_err(|_| self.failure(&format!("the decoder stopped inside frame {}", self.next)))?;
        // pts × time base: exact where showinfo's printed `pts_time` keeps six digits.
        let time = if info.pts == i64::MIN { f64::NAN } else { info.pts as f64 * self.time_base };
        let frame = Frame { index: self.next, time, width: info.width, height: info.height, bgr };
        self.next += 1;
        Ok(frame)
    }

    /// After the last frame: a decoder that exited with an error fails the video, so a file
    /// cut short is not taken as a short phrase.
    fn finish(&mut self) -> Option<VideoError> {
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        match self.child.wait() {
            Ok(status) if status.success() => {
                if self.next == 0 {
                    Some(self.failure("the video has no frames"))
                } else {
                    None
                }
            }
            Ok(status) => Some(self.failure(&format!("ffmpeg exited with {status}"))),
            Err(e) => Some(self.failure(&e.to_string())),
        }
    }
}

impl Iterator for VideoDecoder {
    type Item = Result<Frame, VideoError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let outcome = loop {
            match self.events.recv() {
                Ok(Event::Frame(info)) => break Some(self.read_frame(info)),
                Ok(Event::Config { .. }) => continue,
                Err(_) => break self.finish().map(Err),
            }
        };
        if matches!(outcome, Some(Err(_)) | None) {
            self.failed = true;
        }
        outcome
    }
}

impl Drop for VideoDecoder {
    fn drop(&mut self) {
        // A consumer that stops early leaves no decoder running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The number of frames the container declares for its first video stream (`ffprobe`'s
/// `nb_frames`), when it declares one: for progress bars, never for decisions.
pub fn frame_count(path: &Path) -> Option<u64> {
    let program = std::env::var(FFPROBE_ENV).unwrap_or_else(|_| "ffprobe".into());
    let out = Command::new(program)
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=nb_frames", "-of", "csv=p=0"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim().trim_end_matches(',').parse().ok().filter(|n| *n > 0)
}

/// How many of ffmpeg's last stderr lines are kept for an error message.
const TAIL_LINES: usize = 8;

/// Reads ffmpeg's stderr: the `showinfo` lines become events, the rest is kept (last few) for
/// error messages.
fn read_stderr(stderr: std::process::ChildStderr, events: mpsc::Sender<Event>, tail: std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match lines.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        let event = if text.contains("Parsed_showinfo") {
            if let Some(info) = parse_frame_line(text) {
                Some(Event::Frame(info))
            } else if text.contains("config in") {
                Some(Event::Config { time_base: parse_config_ratio(text, "time_base:"), fps: parse_config_ratio(text, "frame_rate:") })
            } else {
                None
            }
        } else {
            if let Ok(mut kept) = tail.lock() {
                kept.push(text.to_owned());
                if kept.len() > TAIL_LINES {
                    kept.remove(0);
                }
            }
            None
        };
        if let Some(event) = event {
            if events.send(event).is_err() {
                return;
            }
        }
    }
}

/// The value after `key` in a showinfo line (`n:   0 pts_time:1.5 s:1768x994 …`).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(at) = line[from..].find(key) {
        let start = from + at;
        // Match whole keys only: ` s:` must not match inside `pts:`.
        if start == 0 || line.as_bytes()[start - 1] == b' ' {
            return line[start + key.len()..].split_whitespace().next();
        }
        from = start + key.len();
    }
    None
}

/// A frame line: its presentation time (in time-base ticks) and size.
fn parse_frame_line(line: &str) -> Option<FrameInfo> {
    let pts = field(line, "pts:")?;
    let size = field(line, "s:")?;
    let (w, h) = size.split_once('x')?;
    // A frame without a timestamp (`NOPTS`) gets NaN.
    let pts = pts.parse::<i64>().unwrap_or(i64::MIN);
    Some(FrameInfo { pts, width: w.parse().ok()?, height: h.parse().ok()? })
}

/// A ratio of the config line: `config in time_base: 1/15360, frame_rate: 30/1` gives 1/15360
/// for `time_base:` and 30 for `frame_rate:`; `0/0` gives none.
fn parse_config_ratio(line: &str, key: &str) -> Option<f64> {
    let rate = line.split(key).nth(1)?.trim();
    let rate = rate.split(|c: char| c == ',' || c.is_whitespace()).next()?;
    let (num, den) = rate.split_once('/')?;
    let (num, den): (f64, f64) = (num.parse().ok()?, den.parse().ok()?);
    (num > 0.0 && den > 0.0).then(|| num / den)
}

/// ffmpeg's own explanation among its last lines: the last line that is not chatter.
fn ffmpeg_reason(tail: &[String]) -> Option<String> {
    tail.iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| !l.is_empty() && !l.starts_with("Stream mapping") && !l.starts_with("Press ") && !l.starts_with("Output #"))
        .map(|l| match l.split_once("] ") {
            Some((prefix, rest)) if prefix.starts_with('[') => rest.to_owned(),
            _ => l.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lines_give_time_and_size() {
        let line = "[Parsed_showinfo_0 @ 0x55a7] n:  12 pts:   6144 pts_time:0.4     pos:  3600 fmt:yuv420p sar:0/1 s:1767x993 i:P iskey:0 type:P";
        assert_eq!(parse_frame_line(line), Some(FrameInfo { pts: 6144, width: 1767, height: 993 }));
        assert_eq!(parse_frame_line("[Parsed_showinfo_0 @ 0x1] config in time_base: 1/15360, frame_rate: 30/1"), None);
    }

    #[test]
    fn config_lines_give_the_time_base_and_rate() {
        let line = "[Parsed_showinfo_0 @ 0x55a7] config in time_base: 1/15360, frame_rate: 30000/1001";
        assert!((parse_config_ratio(line, "frame_rate:").unwrap() - 29.97).abs() < 1e-3);
        assert_eq!(parse_config_ratio(line, "time_base:"), Some(1.0 / 15360.0));
        assert_eq!(parse_config_ratio("[Parsed_showinfo_0 @ 0x1] config in time_base: 1/25, frame_rate: 0/0", "frame_rate:"), None);
    }

    #[test]
    fn keys_match_whole_words_only() {
        assert_eq!(field("pts:   5 pts_time:1 s:2x2", "s:"), Some("2x2"));
        assert_eq!(field("n:   7 pts:5", "n:"), Some("7"));
    }

    #[test]
    fn the_reason_is_ffmpegs_last_word() {
        let tail = vec!["[in#0 @ 0x1] Error opening input: Invalid data found when processing input".to_owned(), "".to_owned()];
        assert_eq!(ffmpeg_reason(&tail).as_deref(), Some("Error opening input: Invalid data found when processing input"));
    }
}
