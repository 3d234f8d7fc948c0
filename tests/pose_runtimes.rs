//! The pose runtimes against each other on real footage: OpenVINO at f32 (the CPU's default
//! when the IR is there) must find what libtorch finds, frame by frame, within 0.5 px, and so
//! decide every recorded phrase the same; bf16 is measured beside it and reported. Then how the
//! server says which runtime runs, and how it refuses a runtime it cannot have.
//!
//! Real parts throughout: the pretrained yolo11n-pose (TorchScript and its OpenVINO IR, both made
//! by `scripts/setup.sh`), the OpenVINO runtime from PyPI, and Sports2D's two-person clip scaled
//! by ffmpeg to 1280×720 (the piste's size).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{as_track_case, default_model, http_request, repo, serve_until_exit, track, Server, TempDir};
use serde_json::{json, Value};

/// The demo clip at 1280×720, encoded once (near-lossless) so that every run decodes the same
/// pixels.
fn clip_720p() -> &'static Path {
    static CLIP: OnceLock<(TempDir, PathBuf)> = OnceLock::new();
    &CLIP
        .get_or_init(|| {
            let dir = TempDir::new("runtimes-clip");
            let clip = dir.path().join("demo-1280x720.mp4");
            let demo = repo().join("data/demo.mp4");
            assert!(demo.is_file(), "{} is missing: run ./scripts/setup.sh first", demo.display());
            let status = Command::new("ffmpeg")
                .args(["-loglevel", "error", "-nostdin", "-y", "-i"])
                .arg(&demo)
                .args(["-vf", "scale=1280:720", "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p"])
                .arg(&clip)
                .status()
                .expect("run ffmpeg");
            assert!(status.success());
            (dir, clip)
        })
        .1
}

/// `ai-referee pose` on the 720p clip with these flags: its JSON lines and its stderr.
fn pose(flags: &[&str]) -> (Vec<Value>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ai-referee"))
        .args(["pose", "--device", "cpu", "--model", default_model().to_str().unwrap()])
        .args(flags)
        .arg(clip_720p())
        .env_remove("REFEREE_POSE_RUNTIME")
        .env_remove("REFEREE_POSE_PRECISION")
        .output()
        .expect("run ai-referee pose");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "ai-referee pose {flags:?} failed:\n{stderr}");
    let lines: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 230, "every frame of the clip");
    (lines, stderr)
}

/// libtorch f32 on the 720p clip, run once for the tests that compare with it.
fn libtorch_run() -> &'static (Vec<Value>, String) {
    static RUN: OnceLock<(Vec<Value>, String)> = OnceLock::new();
    RUN.get_or_init(|| pose(&["--pose-runtime", "libtorch"]))
}

/// OpenVINO f32 on the 720p clip, one frame at a time, run once for the tests that read it.
fn openvino_run() -> &'static (Vec<Value>, String) {
    static RUN: OnceLock<(Vec<Value>, String)> = OnceLock::new();
    RUN.get_or_init(|| pose(&["--pose-runtime", "openvino"]))
}

/// How far one run's detections are from another's.
#[derive(Debug, Default)]
struct Drift {
    /// Frames whose detection count differs.
    count_differs: usize,
    /// Detections compared (in frames of equal count, in order: best score first).
    detections: usize,
    /// The largest keypoint distance, pixels.
    worst_point: f64,
    /// The largest box-corner difference, pixels.
    worst_box: f64,
    /// Every keypoint distance, for percentiles.
    distances: Vec<f64>,
}

impl Drift {
    fn between(ours: &[Value], reference: &[Value]) -> Drift {
        let mut drift = Drift::default();
        for (a, b) in ours.iter().zip(reference) {
            let (a, b) = (a["detections"].as_array().unwrap(), b["detections"].as_array().unwrap());
            if a.len() != b.len() {
                drift.count_differs += 1;
                continue;
            }
            for (p, q) in a.iter().zip(b) {
                drift.detections += 1;
                for (u, v) in p["keypoints"].as_array().unwrap().iter().zip(q["keypoints"].as_array().unwrap()) {
                    let d = (u[0].as_f64().unwrap() - v[0].as_f64().unwrap()).hypot(u[1].as_f64().unwrap() - v[1].as_f64().unwrap());
                    drift.worst_point = drift.worst_point.max(d);
                    drift.distances.push(d);
                }
                for (u, v) in p["box"].as_array().unwrap().iter().zip(q["box"].as_array().unwrap()) {
                    drift.worst_box = drift.worst_box.max((u.as_f64().unwrap() - v.as_f64().unwrap()).abs());
                }
            }
        }
        drift.distances.sort_by(f64::total_cmp);
        drift
    }

    fn percentile(&self, p: f64) -> f64 {
        if self.distances.is_empty() {
            return 0.0;
        }
        self.distances[((self.distances.len() - 1) as f64 * p).round() as usize]
    }

    fn say(&self, name: &str) -> String {
        format!(
            "{name}: {} frames with another count, {} detections compared, keypoints worst {:.4} px (p99 {:.4}, median {:.4}), boxes worst {:.4} px",
            self.count_differs,
            self.detections,
            self.worst_point,
            self.percentile(0.99),
            self.percentile(0.5),
            self.worst_box
        )
    }
}

/// The clip's detections through the tracker (`ai-referee track`): the normalised keypoints.
fn tracked(frames: &[Value], dir: &Path, name: &str) -> Value {
    track(&as_track_case(frames, None), dir, name)["normalised"].clone()
}

/// Every recorded phrase's log decided on these tracks, by each engine: `{engine: [decision per
/// phrase]}`.
fn decisions(normalised: &Value, dir: &Path, name: &str) -> Vec<(String, Vec<Value>)> {
    // The 100 recorded phrases (the same as ../shared/data/phrases.jsonl).
    let phrases = repo().join("tests/fixtures/phrases.jsonl");
    let rows: Vec<Value> = std::fs::read_to_string(&phrases).unwrap().lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    let file = dir.join(format!("{name}-phrases.jsonl"));
    let mut text = String::new();
    for row in &rows {
        let line = json!({
            "id": row["id"],
            "signal": row["signal"],
            "keypoints": {
                "left_x": normalised["left_x"], "left_y": normalised["left_y"],
                "right_x": normalised["right_x"], "right_y": normalised["right_y"],
            },
            "normalisation_constant": normalised["normalisation_constant"].clone(),
        });
        text.push_str(&format!("{line}\n"));
    }
    std::fs::write(&file, text).unwrap();
    ["legacy", "v2", "v3"]
        .iter()
        .map(|engine| {
            let out = Command::new(env!("CARGO_BIN_EXE_ai-referee")).args(["decide", "--engine", engine, "--phrases"]).arg(&file).output().unwrap();
            assert!(out.status.success(), "decide --engine {engine}: {}", String::from_utf8_lossy(&out.stderr));
            let answers: Vec<Value> = String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(answers.len(), rows.len(), "one answer per phrase");
            assert_eq!(rows.len(), 100, "every recorded phrase");
            (engine.to_string(), answers)
        })
        .collect()
}

/// Whether two answers make the same call: the same winner (or error), the same reason (the
/// legacy rules), the same sureness and a confidence within 0.001 (v2, v3). The measurements
/// behind them (speeds, pauses' seconds) may move in their last digits with the keypoints.
fn same_call(a: &Value, b: &Value) -> bool {
    let (x, y) = (&a["decision"], &b["decision"]);
    let close = |k: &str| match (x[k].as_f64(), y[k].as_f64()) {
        (Some(p), Some(q)) => (p - q).abs() <= 1e-3,
        _ => x[k] == y[k],
    };
    a["error"] == b["error"] && x["winner"] == y["winner"] && x["reason"] == y["reason"] && x["uncertain"] == y["uncertain"] && close("confidence")
}

#[test]
fn openvino_f32_finds_what_libtorch_finds_and_decides_every_recorded_phrase_the_same() {
    let dir = TempDir::new("runtimes");
    let (libtorch, libtorch_said) = libtorch_run();
    let (openvino, openvino_said) = openvino_run();
    let (streams, streams_said) = pose(&["--batch", "4"]);
    assert!(libtorch_said.contains("on local cpu"), "{libtorch_said}");
    assert!(openvino_said.contains("on openvino cpu f32"), "{openvino_said}");
    assert!(streams_said.contains("on openvino cpu f32"), "with its IR beside the model, auto runs OpenVINO on a CPU: {streams_said}");

    let people: usize = libtorch.iter().map(|f| f["detections"].as_array().unwrap().len()).sum();
    assert!(people >= 230, "people on the real clip: {people}");
    for (name, run) in [("openvino f32", openvino), ("openvino f32 (auto), 4 frames at a time across its streams", &streams)] {
        let drift = Drift::between(run, libtorch);
        eprintln!("{}", drift.say(&format!("{name} vs libtorch f32")));
        assert_eq!(drift.count_differs, 0, "{name}: the same detections on every frame");
        assert!(drift.detections >= people, "{name}: every detection compared");
        assert!(drift.worst_point <= 0.5, "{name}: keypoints within 0.5 px ({:.4})", drift.worst_point);
        assert!(drift.worst_box <= 0.5, "{name}: boxes within 0.5 px ({:.4})", drift.worst_box);
    }

    // The same decisions on every recorded phrase's log, on the clip's tracks from either runtime.
    let reference = decisions(&tracked(libtorch, dir.path(), "libtorch"), dir.path(), "libtorch");
    let candidate = decisions(&tracked(openvino, dir.path(), "openvino"), dir.path(), "openvino");
    for ((engine, want), (_, got)) in reference.iter().zip(&candidate) {
        let differ = want.iter().zip(got).filter(|(a, b)| !same_call(a, b)).count();
        eprintln!("{engine}: {differ} of {} phrases decided otherwise on OpenVINO f32's tracks", want.len());
        assert_eq!(differ, 0, "{engine}: every recorded phrase decided the same");
    }
}

#[test]
fn bf16_is_measured_against_f32_and_said_to_be_bf16() {
    let dir = TempDir::new("runtimes-bf16");
    let (f32_run, _) = openvino_run();
    let (bf16_run, said) = pose(&["--pose-precision", "bf16"]);
    assert!(said.contains("on openvino cpu bf16"), "bf16 alone means OpenVINO: {said}");
    let drift = Drift::between(&bf16_run, f32_run);
    eprintln!("{}", drift.say("openvino bf16 vs f32"));
    assert!(drift.detections > 0, "bf16 finds people where f32 does");
    assert!(drift.worst_point > 0.0, "bf16 computes in another precision: its keypoints move");
    let reference = decisions(&tracked(f32_run, dir.path(), "f32"), dir.path(), "f32");
    let candidate = decisions(&tracked(&bf16_run, dir.path(), "bf16"), dir.path(), "bf16");
    for ((engine, want), (_, got)) in reference.iter().zip(&candidate) {
        let differ = want.iter().zip(got).filter(|(a, b)| !same_call(a, b)).count();
        eprintln!("bf16, {engine}: {differ} of {} phrases decided otherwise than on f32's tracks", want.len());
    }
}

#[test]
fn libtorch_cannot_run_bf16_and_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_ai-referee"))
        .args(["pose", "--device", "cpu", "--pose-runtime", "libtorch", "--pose-precision", "bf16", "--model", default_model().to_str().unwrap()])
        .arg(repo().join("tests/fixtures"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bf16 runs on OpenVINO only"), "{stderr}");
}

/// `/health` and `/stats` of a server started with these flags, once its model is ready.
fn health_and_stats(args: &[&str], envs: &[(&str, &str)]) -> (Value, Value, String) {
    let out = TempDir::new("runtimes-serve");
    let output = out.path().join("results");
    let mut all = vec!["--output-dir", output.to_str().unwrap()];
    all.extend_from_slice(args);
    let mut server = Server::start_ready(&all, envs);
    let health = http_request(server.addr, "GET", "/health", &[], b"").json();
    let stats = http_request(server.addr, "GET", "/stats", &[], b"").json();
    let (_, log) = server.terminate(Duration::from_secs(60));
    (health, stats, log)
}

#[test]
fn health_and_stats_say_which_runtime_and_precision_run_pose() {
    let (health, stats, _) = health_and_stats(&["--device", "cpu"], &[]);
    assert_eq!(health["status"], "ok");
    assert_eq!(health["pose_runtime"], "openvino", "the default on a CPU with the IR: {health}");
    assert_eq!(health["pose_precision"], "f32", "{health}");
    assert_eq!(stats["pose"]["path"]["runtime"], "openvino", "{stats}");
    assert_eq!(stats["pose"]["path"]["device"], "cpu", "{stats}");
    assert!(stats["pose"]["path"]["threads"].as_u64().unwrap() >= 1, "{stats}");

    let (health, stats, _) = health_and_stats(&["--device", "cpu"], &[("REFEREE_POSE_RUNTIME", "libtorch")]);
    assert_eq!(health["pose_runtime"], "libtorch", "REFEREE_POSE_RUNTIME: {health}");
    assert_eq!(stats["pose"]["path"]["precision"], "f32", "{stats}");

    // Without the runtime's library, auto says why and runs libtorch.
    let (health, _, log) = health_and_stats(&["--device", "cpu"], &[("REFEREE_OPENVINO_LIB", "/nonexistent/openvino")]);
    assert_eq!(health["pose_runtime"], "libtorch", "{health}");
    assert!(log.contains("pose on libtorch, not OpenVINO") && log.contains("the OpenVINO runtime cannot be loaded") && log.contains("/nonexistent/openvino"), "{log}");
}

#[test]
fn a_runtime_that_cannot_be_had_stops_the_server_with_the_reason() {
    let model = default_model();
    let model = model.to_str().unwrap();
    let cases: [(&[&str], &[(&str, &str)], &str); 3] = [
        (&["--model", model, "--pose-runtime", "openvino"], &[("REFEREE_OPENVINO_LIB", "/nonexistent/openvino")], "the OpenVINO runtime cannot be loaded: /nonexistent/openvino does not exist"),
        (&["--model", model, "--pose-runtime", "libtorch", "--pose-precision", "bf16"], &[], "bf16 runs on OpenVINO only"),
        (&["--model", "/nonexistent/model.torchscript", "--pose-runtime", "openvino"], &[], "/nonexistent/model_openvino_model/model.xml does not exist"),
    ];
    let out = TempDir::new("runtimes-refused");
    let output = out.path().join("results");
    for (args, envs, reason) in cases {
        let mut all = vec!["--device", "cpu", "--output-dir", output.to_str().unwrap()];
        all.extend_from_slice(args);
        let (status, log) = serve_until_exit(&all, envs, Duration::from_secs(120));
        assert!(!status.success(), "{args:?} must not serve");
        assert!(log.contains(reason), "{args:?}: {reason:?} in\n{log}");
    }
    // A value clap does not know is a usage error.
    let (status, log) = serve_until_exit(&["--pose-runtime", "tensorrt"], &[], Duration::from_secs(60));
    assert_eq!(status.code(), Some(2), "{log}");
}
