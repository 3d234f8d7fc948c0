//! Real footage, as the legacy service saw it: streamed JPEG frames decode to the bytes
//! opencv-python's `imdecode` gives, and `/analyze` on the real demo clip (fisheye off) gives the
//! keypoints workbook that Ultralytics' `.pt` detections give through our tracker (which is at
//! legacy parity on the fixtures), the detections taken as the legacy took them: `model(frame)`
//! → `results[0].keypoints.xy`, every point whatever its visibility (Ultralytics 8.4), so that a
//! cell is NaN only where a track is missing or a point sits at x ≤ 0 or y ≤ 0. Video decoding itself is checked against ffmpeg in
//! `video/tests/decode.rs`, pose per frame against the `.pt` in `tests/pose.rs`.

mod common;

use common::Served;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ai_referee::analysis::frames::decode_jpeg;
use referee_engine::kinematics::{Keypoints, Row};
use referee_engine::tracker::{is_valid, keypoint_box, Points, KEYPOINTS};
use referee_engine::workbook::read_workbook;
use common::{as_track_case, default_model, phrase, pt_weights, repo, track, venv_python, Server, TempDir};
use opencv::prelude::*;
use serde_json::Value;

fn demo_video() -> PathBuf {
    let video = repo().join("data/demo.mp4");
    assert!(video.is_file(), "{} is missing: run ./scripts/setup.sh first", video.display());
    video
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Decodes each JPEG with ours and with opencv-python; returns how many were compared.
fn assert_jpegs_decode_as_opencv_python(files: &[PathBuf]) -> usize {
    let mut python = Command::new(venv_python())
        .arg(repo().join("tests/parity/opencv_python_imdecode.py"))
        .args(files)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run opencv-python");
    let mut theirs = BufReader::new(python.stdout.take().unwrap());
    for file in files {
        let mine = decode_jpeg(&std::fs::read(file).unwrap()).unwrap_or_else(|| panic!("{} does not decode", file.display()));
        let mut header = String::new();
        theirs.read_line(&mut header).unwrap();
        let size: Vec<i32> = header.split_whitespace().map(|v| v.parse().unwrap()).collect();
        assert_eq!(size, vec![mine.cols(), mine.rows()], "{}", file.display());
        let mut bytes = vec![0u8; (size[0] * size[1] * 3) as usize];
        theirs.read_exact(&mut bytes).unwrap();
        assert!(mine.data_bytes().unwrap() == bytes.as_slice(), "{}: pixels differ from opencv-python's imdecode", file.display());
    }
    assert!(python.wait().unwrap().success());
    files.len()
}

#[test]
fn streamed_jpegs_decode_as_opencv_python_imdecode_bit_for_bit() {
    let dir = TempDir::new("jpeg-parity");
    // Every frame of the demo clip as ffmpeg's mpjpeg sends it from a camera (4:2:0)...
    let ffmpeg_jpegs = dir.path().join("ffmpeg");
    std::fs::create_dir_all(&ffmpeg_jpegs).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(demo_video())
        .args(["-c:v", "mjpeg", "-q:v", "3"])
        .arg(ffmpeg_jpegs.join("frame_%05d.jpg"))
        .status()
        .unwrap();
    assert!(status.success());
    // ...and every fifth as OpenCV encodes on a piste laptop (quality 85, 4:2:0, and 100, 4:4:4).
    let mut compared = assert_jpegs_decode_as_opencv_python(&sorted_files(&ffmpeg_jpegs));
    assert_eq!(compared, 230);
    for quality in ["85", "100"] {
        let encoded = dir.path().join(format!("opencv-{quality}"));
        std::fs::create_dir_all(&encoded).unwrap();
        let status = Command::new(venv_python())
            .arg(repo().join("tests/parity/opencv_python_imencode.py"))
            .arg(demo_video())
            .arg(&encoded)
            .args(["5", quality])
            .status()
            .unwrap();
        assert!(status.success());
        compared += assert_jpegs_decode_as_opencv_python(&sorted_files(&encoded));
    }
    eprintln!("{compared} JPEG frames of the demo clip decode to opencv-python's imdecode bytes");
    assert_eq!(compared, 230 + 46 + 46);
}

/// Ultralytics' `.pt` on every frame of the demo clip, as the legacy ran it (`model(frame)`,
/// `keypoints.xy` with each point's visibility beside it): its JSON lines.
fn pt_detections(dir: &Path) -> Vec<Value> {
    let reference = dir.join("ultralytics.jsonl");
    let run = Command::new(venv_python())
        .arg(repo().join("tests/parity/ultralytics_pose.py"))
        .arg(pt_weights())
        .arg(&reference)
        .arg(demo_video())
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let frames: Vec<Value> = std::fs::read_to_string(&reference).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(frames.len(), 230);
    frames
}

/// NaN cells of a workbook's four sheets (left x, left y, right x, right y).
fn nan_cells(k: &Keypoints) -> usize {
    [&k.left_x, &k.left_y, &k.right_x, &k.right_y].iter().map(|rows| rows.iter().flatten().filter(|v| v.is_nan()).count()).sum()
}

/// The NaN cells the legacy's rules allow, from the tracker's slots per frame: all 68 of a frame
/// where a slot is empty or has no box, else two (x and y) per point at x ≤ 0 or y ≤ 0.
fn nan_cells_allowed(tracks: &[Value]) -> usize {
    let points = |slot: &Value| -> Option<Points> { serde_json::from_value(slot.clone()).ok() };
    tracks
        .iter()
        .map(|frame| match (points(&frame[0]), points(&frame[1])) {
            (Some(a), Some(b)) if keypoint_box(&a).is_some() && keypoint_box(&b).is_some() => {
                2 * a.iter().chain(&b).filter(|p| !is_valid(**p)).count()
            }
            _ => 4 * KEYPOINTS,
        })
        .sum()
}

/// Every cell alike: NaN in both or a number in both, numbers within `worst`.
fn rows_close(name: &str, got: &[Row], want: &[Row], worst: &mut f64) {
    assert_eq!(got.len(), want.len(), "{name}: frames");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        for k in 0..g.len() {
            assert_eq!(g[k].is_nan(), w[k].is_nan(), "{name}[{i}][{k}]: ours {} vs the reference's {}", g[k], w[k]);
            if !g[k].is_nan() {
                *worst = worst.max((g[k] - w[k]).abs());
            }
        }
    }
}

#[test]
fn analyze_on_the_real_clip_gives_the_workbook_of_the_pt_detections() {
    let dir = TempDir::new("real-analyze");
    // The server loads and warms its model while Ultralytics makes the reference.
    let output = dir.path().join("results");
    let model = default_model();
    let mut server = Server::start(&["--model", model.to_str().unwrap(), "--fisheye-enabled", "false", "--output-dir", output.to_str().unwrap()], &[]);
    let frames = pt_detections(dir.path());
    let answer = track(&as_track_case(&frames, None), dir.path(), "reference");
    let expected = &answer["normalised"];
    let expected_keypoints = Keypoints::from_json(expected.clone()).unwrap();
    // The reference itself: NaN only where a track is missing or a point is at x ≤ 0 or y ≤ 0.
    let reference_nan = nan_cells(&expected_keypoints);
    assert_eq!(reference_nan, nan_cells_allowed(answer["tracks"].as_array().unwrap()), "the reference's NaN cells are only the legacy's");
    // What the old rule (points under 0.5 visibility zeroed) would have made of the same detections.
    let masked = track(&as_track_case(&frames, Some(0.5)), dir.path(), "masked");
    let masked_nan = nan_cells(&Keypoints::from_json(masked["normalised"].clone()).unwrap());

    server.wait_for("model ready", common::STARTUP);
    let log = dir.path().join("phrase.txt");
    std::fs::write(&log, phrase(0)["signal"].as_str().unwrap()).unwrap();
    let out = Command::new("curl")
        .args(["-sS", "-F"])
        .arg(format!("video=@{}", demo_video().display()))
        .arg("-F")
        .arg(format!("signal=@{}", log.display()))
        .args(["-F", "save_overlay=false", "-F", "include_keypoints=true"])
        .arg(format!("{}/analyze", server.url()))
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(body["metadata"]["frames_processed"], 230, "{body}");

    let workbook = read_workbook(Path::new(body["artifacts"]["excel"].as_str().unwrap())).unwrap();
    let ours_nan = nan_cells(&workbook);
    let cells = 4 * KEYPOINTS * workbook.frames();
    eprintln!(
        "workbook NaN cells of {cells}: ours (/analyze) {ours_nan}, the reference (keypoints.xy, unmasked) {reference_nan}; \
         the old visibility < 0.5 rule on the same detections: {masked_nan}"
    );
    assert!(masked_nan > reference_nan, "the demo clip should tell the visibility rule apart ({masked_nan} vs {reference_nan} NaN cells)");
    let mut worst = 0f64;
    rows_close("left_x", &workbook.left_x, &expected_keypoints.left_x, &mut worst);
    rows_close("left_y", &workbook.left_y, &expected_keypoints.left_y, &mut worst);
    rows_close("right_x", &workbook.right_x, &expected_keypoints.right_x, &mut worst);
    rows_close("right_y", &workbook.right_y, &expected_keypoints.right_y, &mut worst);
    assert_eq!(ours_nan, reference_nan, "NaN cells, ours vs the reference");

    let c_expected = expected["normalisation_constant"].as_f64().unwrap();
    let c_got = body["metadata"]["normalisation_constant"].as_f64().unwrap();
    assert!((c_got - c_expected).abs() <= 1e-3 * c_expected, "c {c_got} vs {c_expected}");
    assert_eq!(body["metadata"]["video_angle"], expected["video_angle"]);
    let seen = workbook.left_x.iter().flatten().filter(|v| !v.is_nan()).count();
    eprintln!("workbook of /analyze vs the .pt's detections through the tracker: {seen} left-x values seen, worst {worst:.2e} (normalised units), c {c_got:.3}");
    assert!(seen > 230 * 5, "the tracker should follow both people on the real clip ({seen} values)");
    assert!(worst <= 1e-3, "worst difference {worst}");
}
