//! Real footage, as the legacy service saw it: streamed JPEG frames decode to the bytes
//! opencv-python's `imdecode` gives, and `/analyze` on the real demo clip (fisheye off) gives the
//! keypoints workbook that Ultralytics' `.pt` detections give through our tracker (which is at
//! legacy parity on the fixtures). Video decoding itself is checked against ffmpeg in
//! `video/tests/decode.rs`, pose per frame against the `.pt` in `tests/pose.rs`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ai_referee::analysis::frames::decode_jpeg;
use ai_referee::analysis::kinematics::{Keypoints, Row};
use ai_referee::analysis::workbook::read_workbook;
use common::{phrase, pt_weights, repo, venv_python, Server, TempDir};
use opencv::prelude::*;
use serde_json::{json, Value};

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

/// Ultralytics' predict of the `.pt` on the demo clip, as the `track` tool's input: per frame,
/// each detection's 17 points, those seen at visibility < 0.5 as (0, 0).
fn pt_detections_as_track_case(dir: &Path) -> Value {
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
    let detections: Vec<Value> = frames
        .iter()
        .map(|f| {
            f["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let points: Vec<Value> = d["keypoints"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| if p[2].as_f64().unwrap() < 0.5 { json!([0.0, 0.0]) } else { json!([p[0], p[1]]) })
                        .collect();
                    Value::Array(points)
                })
                .collect()
        })
        .collect();
    json!({"id": "demo", "frame_width": frames[0]["width"], "frame_height": frames[0]["height"], "detections": detections})
}

fn rows_close(name: &str, got: &[Row], want: &[Row], worst: &mut f64) {
    assert_eq!(got.len(), want.len(), "{name}: frames");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        for k in 0..g.len() {
            assert_eq!(g[k].is_nan(), w[k].is_nan(), "{name}[{i}][{k}]: {} vs {}", g[k], w[k]);
            if !g[k].is_nan() {
                *worst = worst.max((g[k] - w[k]).abs());
            }
        }
    }
}

#[test]
fn analyze_on_the_real_clip_gives_the_workbook_of_the_pt_detections() {
    let dir = TempDir::new("real-analyze");
    let case = pt_detections_as_track_case(dir.path());
    let cases = dir.path().join("cases.jsonl");
    std::fs::write(&cases, format!("{case}\n")).unwrap();
    let tracked = Command::new(env!("CARGO_BIN_EXE_ai-referee")).args(["track", "--cases"]).arg(&cases).output().unwrap();
    assert!(tracked.status.success(), "{}", String::from_utf8_lossy(&tracked.stderr));
    let answer: Value = serde_json::from_slice(&tracked.stdout).unwrap();
    assert!(answer.get("error").is_none(), "the .pt's detections are trackable: {answer}");
    let expected = &answer["normalised"];
    let expected_keypoints = Keypoints::from_json(expected.clone()).unwrap();

    let output = dir.path().join("results");
    let server = Server::start_ready(&["--fisheye-enabled", "false", "--output-dir", output.to_str().unwrap()], &[]);
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
    let c_expected = expected["normalisation_constant"].as_f64().unwrap();
    let c_got = body["metadata"]["normalisation_constant"].as_f64().unwrap();
    assert!((c_got - c_expected).abs() <= 1e-3 * c_expected, "c {c_got} vs {c_expected}");
    assert_eq!(body["metadata"]["video_angle"], expected["video_angle"]);

    let workbook = read_workbook(Path::new(body["artifacts"]["excel"].as_str().unwrap())).unwrap();
    let mut worst = 0f64;
    rows_close("left_x", &workbook.left_x, &expected_keypoints.left_x, &mut worst);
    rows_close("left_y", &workbook.left_y, &expected_keypoints.left_y, &mut worst);
    rows_close("right_x", &workbook.right_x, &expected_keypoints.right_x, &mut worst);
    rows_close("right_y", &workbook.right_y, &expected_keypoints.right_y, &mut worst);
    let seen = workbook.left_x.iter().flatten().filter(|v| !v.is_nan()).count();
    eprintln!("workbook of /analyze vs the .pt's detections through the tracker: {seen} left-x values seen, worst {worst:.2e} (normalised units), c {c_got:.3}");
    assert!(seen > 230 * 5, "the tracker should follow both people on the real clip ({seen} values)");
    assert!(worst <= 1e-3, "worst difference {worst}");
}
