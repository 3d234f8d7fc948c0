//! Benchmark (prints numbers, asserts nothing): real footage at 1280×720 (Sports2D's demo clip,
//! scaled and re-encoded as h264, as a piste camera records), side by side in one run:
//! - decoding: the ffmpeg decoder (`referee-video`, the legacy's pixels) vs Debian's OpenCV
//!   `VideoCapture` (what `/analyze` used before), ms/frame;
//! - pose: letterbox + forward + NMS with the any-shape export and minimal padding (640×384) vs
//!   the fixed 640×640 export (what ran before), ms/frame, and Ultralytics' own `model(frame)` of
//!   the `.pt` on the same clip, frame by frame as the legacy ran it.
//! `cargo bench --bench real_footage` (needs scripts/setup.sh's models, video and venv).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use ai_referee::analysis::frames::bgr_mat;
use ai_referee::analysis::letterbox::letterbox;
use referee_pose::{DeviceChoice, PoseModel};
use opencv::core::Mat;
use opencv::prelude::*;
use opencv::videoio;
use referee_video::VideoDecoder;

/// Frames of the clip that pose runs on, per round.
const POSE_FRAMES: usize = 60;
const ROUNDS: usize = 3;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn decode_ffmpeg(clip: &Path) -> (usize, f64) {
    let start = Instant::now();
    let mut n = 0;
    for frame in VideoDecoder::open(clip).unwrap() {
        let frame = frame.unwrap();
        std::hint::black_box(bgr_mat(&frame).unwrap());
        n += 1;
    }
    (n, start.elapsed().as_secs_f64() * 1e3 / n as f64)
}

fn decode_opencv(clip: &Path) -> (usize, f64) {
    let start = Instant::now();
    let mut capture = videoio::VideoCapture::from_file(clip.to_str().unwrap(), videoio::CAP_ANY).unwrap();
    let mut image = Mat::default();
    let mut n = 0;
    while capture.read(&mut image).unwrap() && !image.empty() {
        n += 1;
    }
    (n, start.elapsed().as_secs_f64() * 1e3 / n as f64)
}

fn pose_ms(model: &PoseModel, frames: &[Mat]) -> f64 {
    let start = Instant::now();
    for frame in frames {
        let (input, geometry) = letterbox(frame, model.input_shape()).unwrap();
        std::hint::black_box(model.detect(&[input], &[geometry]).unwrap());
    }
    start.elapsed().as_secs_f64() * 1e3 / frames.len() as f64
}

fn main() {
    let dir = std::env::temp_dir().join(format!("bench-real-footage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = dir.join("demo-1280x720.mp4");
    let made = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(root().join("data/demo.mp4"))
        .args(["-vf", "scale=1280:720", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "20"])
        .arg(&clip)
        .status()
        .unwrap();
    assert!(made.success());

    let (mut ffmpeg, mut opencv) = (Vec::new(), Vec::new());
    let mut frames = 0;
    for _ in 0..ROUNDS {
        let (n, ms) = decode_ffmpeg(&clip);
        ffmpeg.push(ms);
        frames = n;
        opencv.push(decode_opencv(&clip).1);
    }
    println!("decode, 1280x720 h264, {frames} frames, median of {ROUNDS}:");
    println!("  ffmpeg (referee-video, legacy pixels)  {:6.2} ms/frame", median(ffmpeg));
    println!("  Debian OpenCV VideoCapture (before)    {:6.2} ms/frame", median(opencv));

    let images: Vec<Mat> = VideoDecoder::open(&clip).unwrap().take(POSE_FRAMES).map(|f| bgr_mat(&f.unwrap()).unwrap()).collect();
    let minimal = PoseModel::load(&root().join("models/yolo11n-pose.torchscript"), DeviceChoice::Cpu).unwrap();
    let fixed = PoseModel::load(&root().join("models/yolo11n-pose-640.torchscript"), DeviceChoice::Cpu).unwrap();
    minimal.warm_up(3).unwrap();
    fixed.warm_up(3).unwrap();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        a.push(pose_ms(&minimal, &images));
        b.push(pose_ms(&fixed, &images));
    }
    println!("pose (letterbox + forward + NMS), {POSE_FRAMES} frames of 1280x720, CPU, {} libtorch threads, median of {ROUNDS}:", tch::get_num_threads());
    println!("  any-shape export, 640x384 input (now)  {:6.1} ms/frame", median(a));
    println!("  fixed export, 640x640 input (before)   {:6.1} ms/frame", median(b));

    let python = root().join(".venv/bin/python");
    let out = Command::new(python)
        .arg(root().join("tests/parity/ultralytics_pose.py"))
        .arg(root().join("models/yolo11n-pose.pt"))
        .arg(dir.join("ultralytics.jsonl"))
        .arg(&clip)
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or_default().to_owned();
    println!("  Ultralytics model(frame) of the .pt (whole clip, opencv-python decode not timed): {}", line.trim_start_matches("ultralytics "));
    std::fs::remove_dir_all(&dir).ok();
}
