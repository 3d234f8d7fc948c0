//! `referee-client` against the real server over real sockets: a rendered phrase streamed from a
//! video file, from a folder of JPEGs, paced as a camera, through the camera capture code (a
//! video file opened as the camera, since no camera exists here), with the log from standard
//! input or from a file written after the frames; the server killed and restarted mid-phrase
//! and the upload resumed to the same verdict; the legacy `analyze` and `health`; and its exit
//! codes (2 for a missing file, the HTTP status, 1 when the server cannot be reached).

mod common;

use common::Served;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use common::{marker_server, marker_server_with, phrase, render, shared_marker_server, Events, TempDir};
use serde_json::Value;

/// The client binary, built beside the server by the workspace build.
fn client_bin() -> PathBuf {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ai-referee")).with_file_name("referee-client");
    assert!(bin.is_file(), "{} is missing: build the workspace (cargo build --workspace)", bin.display());
    bin
}

fn client(args: &[&str]) -> Output {
    Command::new(client_bin()).args(args).stdin(Stdio::null()).output().expect("run referee-client")
}

fn verdict(out: &Output) -> Value {
    assert!(out.status.success(), "referee-client failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn winner(n: usize) -> Value {
    phrase(n)["legacy_decision"]["winner"].clone()
}

#[test]
fn streams_a_folder_a_video_file_and_a_camera() {
    let out = TempDir::new("client-sources");
    let server = shared_marker_server();
    let rendered = render(10, out.path());
    let n = rendered.jpegs.len();
    let (url, log) = (server.url(), rendered.log.to_str().unwrap().to_owned());

    // A folder of JPEGs: sent as they are, every frame once, in order.
    let v = verdict(&client(&["stream", &url, "--frames", rendered.frames.to_str().unwrap(), "--signal", &log, "--session", "c-folder"]));
    assert_eq!(v["stream"]["session"], "c-folder");
    assert_eq!(v["stream"]["frames_received"], n);
    assert_eq!(v["stream"]["frames_analysed"], n);
    assert_eq!(v["decision"]["winner"], winner(10));
    assert_eq!(server.get("/sessions/c-folder/artifacts/frames.mjpeg").body, rendered.jpegs.concat());

    // A video file, decoded and encoded again here.
    let v = verdict(&client(&["stream", &url, "--video", rendered.avi.to_str().unwrap(), "--signal", &log, "--jpeg-quality", "95"]));
    assert_eq!(v["stream"]["frames_received"], n);
    assert_eq!(v["decision"]["winner"], winner(10));

    // The camera capture code, on a video file opened as the camera; --quiet prints the winner only.
    let out = client(&["stream", &url, "--camera", rendered.avi.to_str().unwrap(), "--signal", &log, "--quiet", "--session", "c-camera"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), winner(10).as_str().unwrap());
    assert!(out.stderr.is_empty(), "quiet: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(server.get("/sessions/c-camera").json()["frames_received"], n);
}

#[test]
fn realtime_streams_while_recording_and_waits_for_the_log() {
    let out = TempDir::new("client-realtime");
    let server = marker_server(&out.path().join("results"));
    let rendered = render(7, out.path());
    let n = rendered.jpegs.len();
    let url = server.url();

    // Paced at 15 fps, the log piped on standard input once the phrase is over.
    let spawned = std::time::Instant::now();
    let mut child = Command::new(client_bin())
        .args(["stream", &url, "--frames", rendered.frames.to_str().unwrap(), "--realtime", "--fps", "15"])
        .args(["--signal", "-", "--session", "c-live"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut events = Events::open_when_known(server.addr, "c-live");
    // Pose is at work while the phrase is still being sent.
    let early = events.wait_for(|p| p["frames_analysed"].as_u64().unwrap() >= 1);
    assert_eq!(early["state"], "receiving");
    assert!(early["frames_received"].as_u64().unwrap() < n as u64, "{early}");
    // Every frame is in and the client still waits for the log.
    let all = events.wait_for(|p| p["frames_received"] == n);
    assert_eq!(all["signal_received"], false);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&std::fs::read(&rendered.log).unwrap()).unwrap();
    drop(stdin);
    let v = verdict(&child.wait_with_output().unwrap());
    let ran = spawned.elapsed().as_secs_f64();
    assert_eq!(v["stream"]["frames_received"], n);
    assert_eq!(v["decision"]["winner"], winner(7));
    // Paced: the last frame went out no sooner than the phrase's length after the client started.
    let phrase_seconds = (n - 1) as f64 / 15.0;
    assert!(ran >= phrase_seconds, "the client ran {ran:.2} s for a {phrase_seconds:.2} s phrase");

    // --signal-after: the log file appears once the frames are all in.
    let later = out.path().join("written-later.txt");
    let child = Command::new(client_bin())
        .args(["stream", &url, "--video", rendered.avi.to_str().unwrap(), "--signal-after", later.to_str().unwrap(), "--session", "c-after"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Events::open_when_known(server.addr, "c-after").wait_for(|p| p["frames_received"] == n);
    let part = out.path().join("written-later.part");
    std::fs::copy(&rendered.log, &part).unwrap();
    std::fs::rename(&part, &later).unwrap();
    let v = verdict(&child.wait_with_output().unwrap());
    assert_eq!(v["decision"]["winner"], winner(7));
}

#[test]
fn a_server_killed_mid_phrase_is_resumed_to_the_same_verdict() {
    let out = TempDir::new("client-restart");
    let results = out.path().join("results");
    let rendered = render(2, out.path());
    let n = rendered.jpegs.len();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().to_string();
    let mut server = marker_server_with(&results, &["--port", &port]);
    let child = Command::new(client_bin())
        .args(["stream", &server.url(), "--frames", rendered.frames.to_str().unwrap(), "--realtime", "--fps", "15"])
        .args(["--signal", rendered.log.to_str().unwrap(), "--session", "c-restart", "--retries", "30"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Events::open_when_known(server.addr, "c-restart").wait_for(|p| p["frames_received"].as_u64().unwrap() >= n as u64 / 3);
    drop(server); // SIGKILL, mid-phrase
    server = marker_server_with(&results, &["--port", &port]);
    let output = child.wait_with_output().unwrap();
    let v = verdict(&output);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("resuming from frame"), "{stderr}");
    assert_eq!(v["stream"]["frames_received"], n);
    assert_eq!(v["decision"]["winner"], winner(2));
    // Every frame on the server once, in order, across both servers' lives.
    assert_eq!(std::fs::read(results.join("sessions/c-restart/frames.mjpeg")).unwrap(), rendered.jpegs.concat());
    let index = std::fs::read_to_string(results.join("sessions/c-restart/frames.idx")).unwrap();
    let indexes: Vec<u64> = index.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..n as u64).collect::<Vec<_>>());
    // The same frames sent in one go give the same decision.
    let again = verdict(&client(&["stream", &server.url(), "--frames", rendered.frames.to_str().unwrap(), "--signal", rendered.log.to_str().unwrap()]));
    assert_eq!(again["decision"], v["decision"]);
}

#[test]
fn legacy_analyze_and_health_and_exit_codes() {
    let out = TempDir::new("client-legacy");
    let server = marker_server(&out.path().join("results"));
    let rendered = render(43, out.path());
    let (url, avi, log) = (server.url(), rendered.avi.to_str().unwrap().to_owned(), rendered.log.to_str().unwrap().to_owned());

    let health = client(&["health", &url]);
    let text = String::from_utf8(health.stdout.clone()).unwrap();
    assert!(health.status.success());
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["model_loaded"], true);
    let keys: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("  \"")).map(|l| l.split('"').next().unwrap()).collect();
    // The legacy's three keys, and which runtime and precision run pose.
    assert_eq!(keys, ["model_loaded", "model_path", "pose_precision", "pose_runtime", "status"], "sorted, indented by two:\n{text}");

    let analysed = client(&["analyze", &url, &avi, &log, "--no-overlay", "--include-keypoints"]);
    let v = verdict(&analysed);
    assert_eq!(v["decision"]["winner"], winner(43));
    assert!(v["artifacts"].get("analysis_video").is_none(), "--no-overlay: {}", v["artifacts"]);
    let text = String::from_utf8(analysed.stdout).unwrap();
    let top: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("  \"")).map(|l| l.split('"').next().unwrap()).collect();
    let mut sorted = top.clone();
    sorted.sort();
    assert_eq!(top, sorted);

    // A missing file: 2, before anything is sent.
    let missing = out.path().join("missing.avi");
    assert_eq!(client(&["analyze", &url, missing.to_str().unwrap(), &log]).status.code(), Some(2));
    assert_eq!(client(&["stream", &url, "--video", missing.to_str().unwrap(), "--signal", &log]).status.code(), Some(2));
    assert_eq!(client(&["stream", &url, "--video", &avi, "--signal", missing.to_str().unwrap()]).status.code(), Some(2));
    // An HTTP error: its status, as the legacy's sys.exit(status) left it (422 & 0xFF).
    let single = out.path().join("single.txt");
    std::fs::write(&single, " 0.000s | Phrase recording started\n 1.0s | HIT: Left scores on Right!\nScores -> Fencer 1: MISS, Fencer 2: MISS\n").unwrap();
    let refused = client(&["analyze", &url, &avi, single.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(422 & 0xFF));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("No light"));
    let refused = client(&["stream", &url, "--video", &avi, "--signal", single.to_str().unwrap(), "--retries", "0"]);
    assert_eq!(refused.status.code(), Some(422 & 0xFF), "{}", String::from_utf8_lossy(&refused.stderr));
    // No server there: 1, saying so.
    drop(server);
    let gone = client(&["health", &url]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("cannot reach"));
    let gone = client(&["stream", &url, "--video", &avi, "--signal", &log, "--retries", "1"]);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("after 1 retry"), "{}", String::from_utf8_lossy(&gone.stderr));
}


#[test]
fn the_token_goes_with_every_request_from_the_flag_or_the_environment() {
    let out = TempDir::new("client-token");
    let server = marker_server_with(&out.path().join("results"), &["--token", "s3cret"]);
    let rendered = render(55, out.path());
    let (url, frames, log) = (server.url(), rendered.frames.to_str().unwrap().to_owned(), rendered.log.to_str().unwrap().to_owned());
    let run = |args: &[&str], token: Option<&str>| {
        let mut command = Command::new(client_bin());
        command.args(args).stdin(Stdio::null()).env_remove("REFEREE_TOKEN");
        if let Some(token) = token {
            command.env("REFEREE_TOKEN", token);
        }
        command.output().expect("run referee-client")
    };

    // Without the token (or with a wrong one) the server refuses: 401, as the exit status's byte.
    for token in [None, Some("wrong")] {
        let refused = run(&["stream", &url, "--frames", &frames, "--signal", &log, "--retries", "0"], token);
        assert_eq!(refused.status.code(), Some(401 & 0xFF), "{}", String::from_utf8_lossy(&refused.stderr));
        assert!(String::from_utf8_lossy(&refused.stderr).contains("token"), "{}", String::from_utf8_lossy(&refused.stderr));
    }
    // The video is still being sent when the server refuses it; the client reads the refusal.
    let refused = run(&["analyze", &url, rendered.avi.to_str().unwrap(), &log], None);
    assert_eq!(refused.status.code(), Some(401 & 0xFF), "{}", String::from_utf8_lossy(&refused.stderr));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("token"), "{}", String::from_utf8_lossy(&refused.stderr));

    // With it, from --token or from REFEREE_TOKEN, the phrase is decided.
    let by_flag = verdict(&run(&["stream", &url, "--frames", &frames, "--signal", &log, "--token", "s3cret"], None));
    assert_eq!(by_flag["decision"]["winner"], winner(55));
    let by_env = verdict(&run(&["analyze", &url, rendered.avi.to_str().unwrap(), &log, "--no-overlay"], Some("s3cret")));
    assert_eq!(by_env["decision"]["winner"], winner(55));
}
