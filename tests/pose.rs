//! The pose pipeline against Ultralytics' own model as the legacy service ran it (`model(frame)`
//! → `results[0].keypoints.xy`, nothing masked: Ultralytics 8.4 keeps points under 0.5
//! visibility), on the real pretrained yolo11n-pose and a real two-person video (Sports2D's demo
//! clip, fetched by setup): every frame of the video against the `.pt` checkpoint the legacy
//! service ran, and stills through the fixed 640×640 export against Ultralytics running that
//! same export. The keypoints compared on our side are those the tracker takes.

mod common;

use std::path::Path;
use std::process::Command;

use referee_pose::{PoseDetection, KEYPOINTS};
use common::{default_model, fixed_model, pt_weights, repo, venv_python, TempDir};
use serde_json::Value;

fn demo_video() -> std::path::PathBuf {
    let video = repo().join("data/demo.mp4");
    assert!(video.is_file(), "{} is missing: run ./scripts/setup.sh first", video.display());
    video
}

/// Runs `ai-referee pose` with the default model and returns its JSON lines and its stderr.
fn ai_referee_pose(args: &[&str]) -> (Vec<Value>, String) {
    ai_referee_pose_with(&default_model(), args)
}

/// Runs `ai-referee pose` with `model` and returns its JSON lines and its stderr.
fn ai_referee_pose_with(model: &Path, args: &[&str]) -> (Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ai-referee"))
        .args(["pose", "--device", "cpu", "--model", model.to_str().unwrap()])
        .args(args)
        .output()
        .expect("run ai-referee pose");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "ai-referee pose failed:\n{stderr}");
    let lines = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (lines, stderr)
}

/// Our pose on every frame of the demo clip (batch 1), run once for the tests that read it.
fn demo_clip_poses() -> &'static (Vec<Value>, String) {
    static POSES: std::sync::OnceLock<(Vec<Value>, String)> = std::sync::OnceLock::new();
    POSES.get_or_init(|| ai_referee_pose(&[demo_video().to_str().unwrap()]))
}

/// Every 23rd frame of the demo video, saved losslessly (PNG) so that both sides decode the same
/// pixels.
fn demo_frames(dir: &Path) -> Vec<String> {
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(demo_video())
        .args(["-vf", "select=not(mod(n\\,23))", "-vsync", "0"])
        .arg(dir.join("frame%03d.png"))
        .status()
        .expect("run ffmpeg");
    assert!(status.success());
    let mut frames: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_owned())
        .collect();
    frames.sort();
    assert_eq!(frames.len(), 10);
    frames
}

fn close(a: &Value, b: &Value, tolerance: f64) -> bool {
    (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() <= tolerance
}

/// Ultralytics' `predict` with `model` (a `.pt` or an export) on `inputs` (images or videos):
/// its JSON lines and its timing line.
fn ultralytics_predict(model: &Path, inputs: &[String], dir: &Path) -> (Vec<Value>, String) {
    let reference_file = dir.join("ultralytics.jsonl");
    let mut python = Command::new(venv_python());
    python.arg(repo().join("tests/parity/ultralytics_pose.py")).arg(model).arg(&reference_file).args(inputs);
    let reference_run = python.output().expect("run Ultralytics");
    let reference_log = String::from_utf8_lossy(&reference_run.stderr).to_string();
    assert!(reference_run.status.success(), "Ultralytics failed:\n{reference_log}");
    let reference = std::fs::read_to_string(&reference_file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (reference, reference_log.lines().last().unwrap_or_default().to_owned())
}

/// What comparing our detections with Ultralytics' found.
#[derive(Debug, Default)]
struct Parity {
    /// People compared (the same number on both sides, frame by frame).
    people: usize,
    /// Worst difference of a box side or of a keypoint coordinate as the tracker takes it, px.
    worst_px: f64,
    /// Worst person score difference.
    worst_score: f64,
    /// Worst keypoint visibility difference (the value is kept, though no rule reads it).
    worst_visibility: f64,
    /// Keypoints in frame (x > 0 and y > 0) that Ultralytics scores under 0.5 visibility: the
    /// ones that releases before 8.4, and our `pose::VISIBLE` rule, used to zero.
    seen_under_half: usize,
    /// Keypoints at x ≤ 0 or y ≤ 0 (clipped to the frame's left or top edge): not seen, on both sides.
    invalid: usize,
}

/// Whether a keypoint counts as seen by the tracker (the legacy's rule: x > 0 and y > 0).
fn seen(x: f64, y: f64) -> bool {
    x > 0.0 && y > 0.0
}

/// Our detections against Ultralytics', frame by frame: the same number of people, boxes and
/// scores alike, and every keypoint as the tracker takes it (`PoseDetection::points`) where the
/// reference's `keypoints.xy` puts it, unmasked, seen and not seen at the same points.
fn compare_detections(ours: &[Value], reference: &[Value]) -> Parity {
    assert_eq!(reference.len(), ours.len(), "frames");
    let mut parity = Parity::default();
    let value = |v: &Value| v.as_f64().unwrap();
    for (frame, (mine, theirs)) in ours.iter().zip(reference).enumerate() {
        assert_eq!((&mine["width"], &mine["height"]), (&theirs["width"], &theirs["height"]));
        let (a, b) = (mine["detections"].as_array().unwrap(), theirs["detections"].as_array().unwrap());
        assert_eq!(a.len(), b.len(), "people on frame {frame} of {}", mine["source"]);
        for (d, e) in a.iter().zip(b) {
            parity.people += 1;
            parity.worst_score = parity.worst_score.max((value(&d["score"]) - value(&e["score"])).abs());
            for (p, q) in d["box"].as_array().unwrap().iter().zip(e["box"].as_array().unwrap()) {
                parity.worst_px = parity.worst_px.max((value(p) - value(q)).abs());
            }
            let detection: PoseDetection = serde_json::from_value(d.clone()).expect("our detection's JSON");
            let tracked = detection.points();
            let theirs = e["keypoints"].as_array().unwrap();
            assert_eq!(theirs.len(), KEYPOINTS);
            for (k, (p, q)) in tracked.iter().zip(theirs).enumerate() {
                let (x, y) = (f64::from(p[0]), f64::from(p[1]));
                let (rx, ry) = (value(&q[0]), value(&q[1]));
                assert_eq!(
                    seen(x, y),
                    seen(rx, ry),
                    "keypoint {k} on frame {frame}: ours ({x}, {y}) as the tracker takes it, Ultralytics' keypoints.xy ({rx}, {ry}), visibility {}",
                    q[2]
                );
                parity.worst_px = parity.worst_px.max((x - rx).abs()).max((y - ry).abs());
                parity.worst_visibility = parity.worst_visibility.max((f64::from(detection.keypoints[k][2]) - value(&q[2])).abs());
                if !seen(rx, ry) {
                    parity.invalid += 1;
                } else if value(&q[2]) < 0.5 {
                    parity.seen_under_half += 1;
                }
            }
        }
    }
    parity
}

#[test]
fn every_frame_of_the_real_video_matches_ultralytics_predict_of_the_pt() {
    // The legacy service: Ultralytics' model(frame) of the .pt on each frame, frames decoded by
    // opencv-python. Ours: the default (any-shape) export, frames decoded by ffmpeg, minimal
    // padding. Same people on every frame, keypoints as the tracker takes them within 0.05 px of
    // keypoints.xy, seen (x > 0 and y > 0) at the same points whatever their visibility.
    let dir = TempDir::new("pose-video-parity");
    let video = demo_video().to_str().unwrap().to_owned();
    let (reference, reference_log) = ultralytics_predict(&pt_weights(), &[video.clone()], dir.path());
    let (ours, our_log) = demo_clip_poses();
    eprintln!("{}\n{reference_log}", our_log.trim());
    assert_eq!(ours.len(), 230, "every frame of the demo clip");
    let Parity { people, worst_px, worst_score, worst_visibility, seen_under_half, invalid } = compare_detections(&ours, &reference);
    eprintln!(
        "video parity with the .pt: {people} people on 230 frames, worst {worst_px:.4} px, worst score {worst_score:.2e}, worst visibility {worst_visibility:.2e}; \
         {seen_under_half} keypoints in frame under 0.5 visibility (kept), {invalid} at x <= 0 or y <= 0"
    );
    assert!(worst_px <= 0.05, "worst keypoint or box difference {worst_px} px");
    assert!(worst_score <= 1e-4, "worst score difference {worst_score}");
    assert!(worst_visibility <= 1e-3, "worst visibility difference {worst_visibility}");
    assert!(people >= 300, "the real model should find people on the demo clip ({people})");
    // The clip has points that a visibility rule would drop: the comparison above tells it apart.
    assert!(seen_under_half > 0, "no keypoint under 0.5 visibility on the demo clip: the check cannot tell masking apart");
    // Frames carry their presentation time.
    assert_eq!(ours[0]["time"], 0.0);
    assert!((ours[30]["time"].as_f64().unwrap() - 1.0).abs() < 1e-9, "{}", ours[30]["time"]);
}

#[test]
fn other_frame_shapes_match_the_pt_too() {
    // Portrait (a phone on its side), 4:3 and an odd size: each gets its own minimal padding
    // (384×640, 640×480, 640×448) and still the .pt's detections. Lossless stills, so that both
    // sides read the same pixels.
    let dir = TempDir::new("pose-shapes");
    let mut stills = Vec::new();
    for (name, filter) in [("portrait", "transpose=1"), ("four-three", "crop=1200:900:300:50"), ("odd", "format=rgb24,crop=1001:667:400:200")] {
        let status = Command::new("ffmpeg")
            .args(["-loglevel", "error", "-y", "-i"])
            .arg(demo_video())
            .args(["-vf", &format!("select=not(mod(n\\,46)),{filter}"), "-vsync", "0"])
            .arg(dir.path().join(format!("{name}-%02d.png")))
            .status()
            .expect("run ffmpeg");
        assert!(status.success());
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        stills.push(entry.unwrap().path().to_str().unwrap().to_owned());
    }
    stills.sort();
    assert_eq!(stills.len(), 15);
    let (reference, _) = ultralytics_predict(&pt_weights(), &stills, dir.path());
    let (ours, _) = ai_referee_pose(&stills.iter().map(String::as_str).collect::<Vec<_>>());
    let sizes: std::collections::BTreeSet<(u64, u64)> = ours.iter().map(|l| (l["width"].as_u64().unwrap(), l["height"].as_u64().unwrap())).collect();
    assert_eq!(sizes.into_iter().collect::<Vec<_>>(), vec![(994, 1768), (1001, 667), (1200, 900)]);
    let Parity { people, worst_px, worst_score, seen_under_half, .. } = compare_detections(&ours, &reference);
    eprintln!("portrait, 4:3 and odd stills against the .pt: {people} people, worst {worst_px:.4} px, worst score {worst_score:.2e}, {seen_under_half} points under 0.5 visibility kept");
    assert!(worst_px <= 0.05, "worst keypoint or box difference {worst_px} px");
    assert!(people >= 10, "the real model should find people on the stills ({people})");
}

#[test]
fn the_fixed_640_export_still_matches_ultralytics_on_real_frames() {
    let dir = TempDir::new("pose-parity");
    let frames = demo_frames(dir.path());
    let (reference, reference_log) = ultralytics_predict(&fixed_model(), &frames, dir.path());
    let (ours, our_log) = ai_referee_pose_with(&fixed_model(), &frames.iter().map(String::as_str).collect::<Vec<_>>());
    eprintln!("{}\n{reference_log}", our_log.trim());

    assert_eq!(ours.len(), reference.len());
    let (mut people, mut worst_px, mut worst_score) = (0, 0f64, 0f64);
    for (mine, theirs) in ours.iter().zip(&reference) {
        assert_eq!(mine["width"], theirs["width"]);
        assert_eq!(mine["height"], theirs["height"]);
        let (a, b) = (mine["detections"].as_array().unwrap(), theirs["detections"].as_array().unwrap());
        assert_eq!(a.len(), b.len(), "detections on {}", mine["source"]);
        for (d, e) in a.iter().zip(b) {
            people += 1;
            assert!(close(&d["score"], &e["score"], 0.01), "score {} vs {}", d["score"], e["score"]);
            worst_score = worst_score.max((d["score"].as_f64().unwrap() - e["score"].as_f64().unwrap()).abs());
            for (p, q) in d["box"].as_array().unwrap().iter().zip(e["box"].as_array().unwrap()) {
                assert!(close(p, q, 1.0), "box {} vs {}", d["box"], e["box"]);
                worst_px = worst_px.max((p.as_f64().unwrap() - q.as_f64().unwrap()).abs());
            }
            let detection: PoseDetection = serde_json::from_value(d.clone()).expect("our detection's JSON");
            for ((p, q), tracked) in d["keypoints"].as_array().unwrap().iter().zip(e["keypoints"].as_array().unwrap()).zip(detection.points()) {
                assert!(close(&p[0], &q[0], 1.0) && close(&p[1], &q[1], 1.0), "keypoint {p} vs {q}");
                assert!(close(&p[2], &q[2], 0.01), "visibility {p} vs {q}");
                // What the tracker takes is keypoints.xy, whatever the visibility.
                assert!((f64::from(tracked[0]) - q[0].as_f64().unwrap()).abs() <= 1.0 && (f64::from(tracked[1]) - q[1].as_f64().unwrap()).abs() <= 1.0, "tracked {tracked:?} vs keypoints.xy {q}");
                worst_px = worst_px.max((p[0].as_f64().unwrap() - q[0].as_f64().unwrap()).abs());
                worst_px = worst_px.max((p[1].as_f64().unwrap() - q[1].as_f64().unwrap()).abs());
            }
        }
    }
    eprintln!("pose parity: {people} people on {} frames, worst {worst_px:.4} px, worst score {worst_score:.2e}", ours.len());
    assert!(people >= 10, "the real model should find people in the demo frames");
}

#[test]
fn batches_of_four_find_what_single_frames_find() {
    // Every 23rd frame, losslessly, four to a forward pass, against the whole clip's frames run
    // one at a time: the same people, within half a pixel.
    let dir = TempDir::new("pose-batches");
    let frames = demo_frames(dir.path());
    let mut args = vec!["--batch", "4"];
    args.extend(frames.iter().map(String::as_str));
    let (batched, log) = ai_referee_pose(&args);
    eprintln!("{}", log.trim());
    let single: Vec<Value> = demo_clip_poses().0.iter().step_by(23).cloned().collect();
    assert_eq!(batched.len(), single.len());
    let mut people = 0;
    for (b, s) in batched.iter().zip(&single) {
        let (bd, sd) = (b["detections"].as_array().unwrap(), s["detections"].as_array().unwrap());
        assert_eq!(bd.len(), sd.len(), "people on {} in a batch and alone", b["source"]);
        for (p, q) in bd.iter().zip(sd) {
            people += 1;
            for (x, y) in p["keypoints"].as_array().unwrap().iter().zip(q["keypoints"].as_array().unwrap()) {
                assert!(close(&x[0], &y[0], 0.5) && close(&x[1], &y[1], 0.5), "keypoint {x} batched vs {y} alone");
            }
        }
    }
    assert!(people >= 10, "{people} people on the batched frames");
}

#[test]
fn people_are_found_on_most_frames_of_the_real_video() {
    let (lines, _) = demo_clip_poses();
    assert_eq!(lines.len(), 230, "the demo clip has 230 frames");
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["frame"], i);
        assert_eq!((line["width"].as_u64(), line["height"].as_u64()), (Some(1768), Some(994)));
    }
    let with_person = lines.iter().filter(|l| !l["detections"].as_array().unwrap().is_empty()).count();
    let with_two = lines.iter().filter(|l| l["detections"].as_array().unwrap().len() >= 2).count();
    assert!(with_person * 10 >= 230 * 9, "people on only {with_person}/230 frames");
    assert!(with_two * 2 >= 230, "two people on only {with_two}/230 frames");
    // Best score first, boxes inside the frame, keypoints clipped to it.
    for line in lines {
        let dets = line["detections"].as_array().unwrap();
        for pair in dets.windows(2) {
            assert!(pair[0]["score"].as_f64() >= pair[1]["score"].as_f64());
        }
        for d in dets {
            let b: Vec<f64> = d["box"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            assert!(b[0] >= 0.0 && b[2] <= 1768.0 && b[1] >= 0.0 && b[3] <= 994.0 && b[0] <= b[2] && b[1] <= b[3]);
            assert!(d["score"].as_f64().unwrap() > 0.25);
            assert_eq!(d["keypoints"].as_array().unwrap().len(), 17);
        }
    }
}

#[test]
fn a_missing_input_fails_clearly() {
    let model = default_model();
    let out = Command::new(env!("CARGO_BIN_EXE_ai-referee"))
        .args(["pose", "--device", "cpu", "--model", model.to_str().unwrap(), "/nonexistent/clip.avi"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/clip.avi does not exist"));
}
