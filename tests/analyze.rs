//! `POST /analyze`, the legacy drop-in, on the real server over real sockets: recorded phrases
//! rendered as marker videos and posted with curl give the legacy's winner; the legacy client's
//! exact upload works; the artifacts open; every error has its status and `{"detail"}`; and the
//! pretrained model analyses a real two-person video.

mod common;

use common::Served;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::{form_body, repo, shared_marker_server, venv_python, Server, TempDir, STARTUP};
use serde_json::Value;

fn phrases() -> Vec<Value> {
    std::fs::read_to_string(repo().join("tests/fixtures/phrases.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Renders a recorded phrase to `dir/<id>.avi` and its log to `dir/<id>.txt`.
fn render(id: &str, dir: &Path) -> (PathBuf, PathBuf) {
    let (video, log) = (dir.join(format!("{id}.avi")), dir.join(format!("{id}.txt")));
    let out = Command::new(env!("CARGO_BIN_EXE_ai-referee"))
        .args(["render", "--phrases", repo().join("tests/fixtures/phrases.jsonl").to_str().unwrap(), "--id", id])
        .args(["--out", video.to_str().unwrap(), "--signal-out", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "render {id}: {}", String::from_utf8_lossy(&out.stderr));
    (video, log)
}

/// `curl -F` upload; returns (status, JSON body).
fn curl_analyze(base_url: &str, fields: &[String]) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}"]);
    for f in fields {
        cmd.arg("-F").arg(f);
    }
    let out = cmd.arg(format!("{base_url}/analyze")).output().expect("run curl");
    assert!(out.status.success(), "curl: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

fn frame_count(video: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(video)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// The legacy rules' branch that decided a phrase: its reason without the numbers (the pause
/// time), so "Left has right-of-way (only right paused at 0.07s)" is "Left has right-of-way".
fn branch(reason: &str) -> &str {
    reason.split(" (").next().unwrap()
}

/// The branches of the legacy rules that the recorded phrases reach: right of way (by a pause
/// or a retreat) to either side, the blade contact, either fencer's speed, and the default.
/// (No recorded phrase reaches "Blade analysis favors right"; single lights, which have no
/// pose in the call, are in `bad_uploads_get_a_status_and_a_detail`.)
const BRANCHES: [&str; 6] = [
    "Left has right-of-way",
    "Right has right-of-way",
    "Blade analysis favors left",
    "Left had significantly higher speed",
    "Right had significantly higher speed",
    "Simultaneous action, default to right",
];

#[test]
fn recorded_phrases_get_the_legacy_winner_end_to_end() {
    // The engine's parity over every recorded phrase runs in process (tests/engine_parity.rs);
    // here, one phrase of each branch of the legacy rules goes the whole way: rendered, posted
    // with curl, decoded, pose, tracker, decision. Each must give the legacy's winner, by the
    // same branch. The phrase is the branch's shortest (the first in file order among equals):
    // a phrase's length proves nothing more here.
    let out = TempDir::new("analyze-branches");
    let server = shared_marker_server();
    let url = server.url();
    let phrases = phrases();
    let frames = |phrase: &Value| phrase["keypoints"]["left_x"].as_array().unwrap().len();
    let mut picked: Vec<(&str, &Value)> = Vec::new();
    for phrase in &phrases {
        let b = branch(phrase["legacy_decision"]["reason"].as_str().unwrap());
        match picked.iter_mut().find(|(seen, _)| *seen == b) {
            Some(entry) if frames(phrase) < frames(entry.1) => entry.1 = phrase,
            Some(_) => {}
            None => picked.push((b, phrase)),
        }
    }
    let mut covered: Vec<&str> = picked.iter().map(|(b, _)| *b).collect();
    covered.sort();
    let mut expected = BRANCHES.to_vec();
    expected.sort();
    assert_eq!(covered, expected, "the recorded phrases no longer reach the same branches of the legacy rules");
    let queue = Mutex::new(picked.clone());
    let results = Mutex::new(Vec::new());
    // Two at a time: rendering and analysis share the machine's two cores.
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let Some((b, phrase)) = queue.lock().unwrap().pop() else { break };
                let id = phrase["id"].as_str().unwrap();
                let (video, rendered_log) = render(id, out.path());
                // Its own log name: the server is shared, and the result directory is named
                // after the log (another test posts phrase 0 too).
                let log = out.path().join(format!("branch-{id}.txt"));
                std::fs::rename(&rendered_log, &log).unwrap();
                let (status, body) = curl_analyze(&url, &[
                    format!("video=@{}", video.display()),
                    format!("signal=@{}", log.display()),
                    "save_overlay=false".into(),
                ]);
                assert_eq!(status, 200, "{id}: {body}");
                let frames = phrase["keypoints"]["left_x"].as_array().unwrap().len() as u64;
                assert_eq!(body["metadata"]["frames_processed"], frames, "{id}: every frame analysed");
                results.lock().unwrap().push((b, id.to_owned(), body["decision"].clone(), phrase["legacy_decision"].clone()));
            });
        }
    });
    let results = results.into_inner().unwrap();
    assert_eq!(results.len(), BRANCHES.len());
    for (b, id, decision, legacy) in &results {
        eprintln!("{b}: {id} gives {} ({}), legacy {}", decision["winner"], decision["reason"], legacy["winner"]);
    }
    let misses: Vec<String> = results
        .iter()
        .filter(|(b, _, decision, legacy)| decision["winner"] != legacy["winner"] || branch(decision["reason"].as_str().unwrap()) != *b)
        .map(|(b, id, decision, legacy)| format!("{id} ({b}): {} ({}) vs legacy {} ({})", decision["winner"], decision["reason"], legacy["winner"], legacy["reason"]))
        .collect();
    assert!(misses.is_empty(), "end to end, not the legacy's call:\n{}", misses.join("\n"));
}

#[test]
fn a_curl_upload_answers_in_the_legacy_shape_with_its_artifacts() {
    let out = TempDir::new("analyze-shape");
    let server = shared_marker_server();
    let url = server.url();
    // A short phrase (15 frames): the answer's shape and artifacts do not depend on its length.
    let phrase = &phrases()[10];
    let id = phrase["id"].as_str().unwrap();
    let (video, log) = render(id, out.path());
    let (status, body) = curl_analyze(&url, &[
        format!("video=@{};type=video/x-msvideo", video.display()),
        format!("signal=@{};type=text/plain", log.display()),
        "include_keypoints=true".into(),
    ]);
    assert_eq!(status, 200, "{body}");
    let keys: Vec<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
    // The legacy's keys in the legacy's order, then ours: whose call `decision` is and both calls.
    assert_eq!(keys, ["input_video", "input_signal", "decision", "artifacts", "metadata", "artifact_dir", "wall_time_seconds", "engine", "decisions", "keypoints"]);
    assert_eq!(body["engine"], "legacy");
    assert_eq!(body["decisions"]["legacy"], body["decision"]);
    let decision_keys: Vec<&str> = body["decision"].as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(decision_keys, ["winner", "reason", "left_pauses", "right_pauses", "blade_analysis", "blade_details", "speed_comparison", "lunge_detected"]);
    let frames = phrase["keypoints"]["left_x"].as_array().unwrap().len();
    assert_eq!(body["metadata"]["frames_processed"], frames);
    assert_eq!(body["keypoints"]["left_x"].as_array().unwrap().len(), frames);
    // Rendering keeps the phrase's geometry: c comes back scaled by 1280/1920.
    let c = body["metadata"]["normalisation_constant"].as_f64().unwrap();
    let expected_c = phrase["normalisation_constant"].as_f64().unwrap() * 2.0 / 3.0;
    assert!((c - expected_c).abs() < 0.01 * expected_c, "c {c} vs {expected_c}");

    // The artifact dir: <output>/<signal stem>_<UTC stamp>/ with the uploads under their names.
    let dir = PathBuf::from(body["artifact_dir"].as_str().unwrap());
    let name = dir.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with(&format!("{}_", id)) && name.ends_with('Z'), "{name}");
    assert_eq!(body["input_video"], dir.join(format!("{id}.avi")).to_str().unwrap());
    assert_eq!(std::fs::read(dir.join(format!("{id}.avi"))).unwrap(), std::fs::read(&video).unwrap());
    let artifacts = body["artifacts"].as_object().unwrap();
    assert!(artifacts.get("corrected_video").is_none(), "fisheye is off");
    let overlay = PathBuf::from(artifacts["analysis_video"].as_str().unwrap());
    assert_eq!(artifacts["video"], artifacts["analysis_video"]);
    assert_eq!(frame_count(&overlay), frames as u64, "the overlay has every frame");
    let book = referee_engine::workbook::read_workbook(Path::new(artifacts["excel"].as_str().unwrap())).unwrap();
    assert_eq!(book.frames(), frames);
    let timeline: Value = serde_json::from_slice(&std::fs::read(artifacts["timeline"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(timeline["times"].as_array().unwrap().len(), frames, "the piste view's timeline has every frame");
    let saved: Value = serde_json::from_slice(&std::fs::read(artifacts["result_json"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(saved, body, "analysis_result.json is the response");
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().file_name().to_string_lossy().contains("partial")));
}

#[test]
fn the_legacy_client_upload_and_the_recorder_field_name_work() {
    let out = TempDir::new("analyze-legacy");
    let server = shared_marker_server();
    let url = server.url();
    // A short phrase (14 frames): what is tested is the upload.
    let id = phrases()[14]["id"].as_str().unwrap().to_owned();
    let (video, log) = render(&id, out.path());
    // Exactly what the legacy CLI sends, with Python requests.
    let script = r#"
import json, sys, requests
url, video, signal = sys.argv[1:4]
with open(video, "rb") as v, open(signal, "rb") as s:
    files = {"video": (video.split("/")[-1], v, "video/x-msvideo"), "signal": (signal.split("/")[-1], s, "text/plain")}
    r = requests.post(url + "/analyze", files=files, data={"save_overlay": "false"}, timeout=300)
print(json.dumps({"status": r.status_code, "body": r.json()}))
"#;
    let run = Command::new(venv_python())
        .args(["-c", script, &server.url(), video.to_str().unwrap(), log.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let reply: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(reply["status"], 200, "{reply}");
    let artifacts = &reply["body"]["artifacts"];
    assert!(artifacts.get("analysis_video").is_none(), "save_overlay=false writes no overlay");
    assert_eq!(artifacts["video"], reply["body"]["input_video"], "no overlay, no fisheye: the upload itself");

    // The newer recorder names the log part `txt`.
    let (status, body) = curl_analyze(&url, &[format!("video=@{}", video.display()), format!("txt=@{}", log.display())]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["decision"]["winner"], reply["body"]["decision"]["winner"]);
}

#[test]
fn bad_uploads_get_a_status_and_a_detail() {
    let out = TempDir::new("analyze-errors");
    let server = shared_marker_server();
    let phrase = &phrases()[2];
    let (video, log) = render(phrase["id"].as_str().unwrap(), out.path());
    let video_bytes = std::fs::read(&video).unwrap();
    let log_bytes = std::fs::read(&log).unwrap();
    let form = [("Content-Type", "multipart/form-data; boundary=XyZ")];
    let post = |parts: &[(&str, Option<&str>, Option<&str>, &[u8])]| server.request("POST", "/analyze", &form, &form_body(parts));

    let r = post(&[("video", Some("clip.avi"), Some("video/x-msvideo"), &video_bytes)]);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["loc"], serde_json::json!(["body", "signal"]));

    let r = post(&[("video", Some(""), Some("video/x-msvideo"), &video_bytes), ("signal", Some("p.txt"), Some("text/plain"), &log_bytes)]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["detail"], "Video file must have a filename");
    let r = post(&[("video", Some("clip.avi"), Some("video/x-msvideo"), &video_bytes), ("signal", Some(""), Some("text/plain"), &log_bytes)]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["detail"], "Signal file must have a filename");

    // A single light is the lit fencer's touch (Fencer 1 is the right); no light at all is 422.
    let single = "Phrase 1\n 0.000s | Phrase recording started\n 1.0s | HIT: Right scores on Left!\nScores -> Fencer 1: HIT, Fencer 2: MISS\n";
    let r = post(&[("video", Some("clip.avi"), None, &video_bytes), ("signal", Some("p.txt"), None, single.as_bytes())]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["decision"]["winner"], "right");
    let none = single.replace("Fencer 1: HIT", "Fencer 1: MISS");
    let r = post(&[("video", Some("clip.avi"), None, &video_bytes), ("signal", Some("p.txt"), None, none.as_bytes())]);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"], "No light: neither fencer hit (Fencer 1: MISS, Fencer 2: MISS)");

    let r = post(&[("video", Some("notes.avi"), None, b"this is not a video"), ("signal", Some("p.txt"), None, &log_bytes)]);
    assert_eq!(r.status, 415, "{:?}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"].as_str().unwrap().contains("cannot read the video"));

    // A real video in which the marker model finds nobody: no frame shows both fencers. (Its
    // first 10 frames, cut by ffmpeg: the whole clip would prove nothing more.)
    let cut = out.path().join("demo-10.mp4");
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-i"])
        .arg(repo().join("data/demo.mp4"))
        .args(["-frames:v", "10", "-an"])
        .arg(&cut)
        .status()
        .unwrap();
    assert!(status.success());
    let real = std::fs::read(&cut).unwrap();
    let r = post(&[("video", Some("demo.mp4"), None, &real), ("signal", Some("p.txt"), None, &log_bytes)]);
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"], "No valid frame with keypoints for both tracks found in the video");

    let r = post(&[("video", Some("clip.avi"), None, &video_bytes), ("signal", Some("p.txt"), None, &log_bytes), ("save_overlay", None, None, b"maybe")]);
    assert_eq!(r.status, 422);

    let r = server.request("POST", "/analyze", &[("Content-Type", "application/json")], b"{}");
    assert_eq!(r.status, 415);
    assert!(r.json()["detail"].is_string());
    let r = server.request("POST", "/analyze", &form, b"--XyZ\r\nContent-Disposition: form-data; name=\"video\"; filename=\"a\"\r\n\r\ntruncated");
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].as_str().unwrap().contains("multipart"));
    assert_eq!(server.get("/analyze").status, 405);
}

#[test]
fn the_pretrained_model_analyses_a_real_two_person_video() {
    let out = TempDir::new("analyze-real");
    let mut server = Server::start_ready(&["--output-dir", out.path().join("results").to_str().unwrap()], &[]);
    let url = server.url();
    let log = out.path().join("double.txt");
    let phrase = &phrases()[0];
    std::fs::write(&log, phrase["signal"].as_str().unwrap()).unwrap();
    let (status, body) = curl_analyze(&url, &[
        format!("video=@{}", repo().join("data/demo.mp4").display()),
        format!("signal=@{}", log.display()),
        "include_keypoints=true".into(),
    ]);
    assert_eq!(status, 200, "{body}\n{}", server.log.join("\n"));
    assert_eq!(body["metadata"]["frames_processed"], 230);
    assert!(body["metadata"]["normalisation_constant"].as_f64().unwrap() > 0.0);
    // Both fencers tracked: each side has its ankles on most frames.
    for side in ["left_x", "right_x"] {
        let seen = body["keypoints"][side].as_array().unwrap().iter().filter(|row| row[16].is_number()).count();
        assert!(seen * 10 >= 230 * 6, "{side}: front ankle on only {seen}/230 frames");
    }
    let artifacts = &body["artifacts"];
    let corrected = PathBuf::from(artifacts["corrected_video"].as_str().unwrap());
    assert_eq!(frame_count(&corrected), 230);
    let streams = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0"])
        .arg(&corrected)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&streams.stdout).contains("audio"), "the input's audio is carried over");
    assert_eq!(frame_count(Path::new(artifacts["analysis_video"].as_str().unwrap())), 230);
    server.wait_for("analysing upload", STARTUP);
}
