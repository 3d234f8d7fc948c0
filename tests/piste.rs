//! The piste as it is (`shared/spec/piste.md`): single-light phrases are the lit fencer's touch
//! on `/stream` and `/analyze`; the piste GUI's WebSocket protocol, spoken by a Python client
//! written from the spec's table (directly, through the shipped nginx config at `/` and
//! `/referee/`, with the token, and with its errors); and live box events, the log's lines sent
//! as parts among a stream's frames, decided while the body is still open.

mod common;

use common::Served;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{black_jpegs, form_body, frame_part, signal_part, http_request, marker_server, marker_server_with, phrase, render, repo, shared_marker_server, venv_python, ChunkedUpload, Events, Nginx, Rendered, TempDir};
use serde_json::Value;

const MIXED: &str = "multipart/x-mixed-replace; boundary=frame";

fn whole_body(rendered: &Rendered, log: &str) -> Vec<u8> {
    let mut body: Vec<u8> = rendered.jpegs.iter().enumerate().flat_map(|(i, j)| frame_part("frame", i, j)).collect();
    body.extend(signal_part("frame", log));
    body.extend_from_slice(b"--frame--\r\n");
    body
}

/// The lit fencer of a single-light log, read here from its `Scores ->` line as the box means
/// it: Fencer 1 is the right of the picture.
fn lit_fencer(log: &str) -> &'static str {
    let scores = log.lines().rfind(|l| l.contains("Scores ->")).expect("a scores line");
    match (scores.contains("Fencer 1: HIT"), scores.contains("Fencer 2: HIT")) {
        (true, false) => "right",
        (false, true) => "left",
        other => panic!("not a single light: {other:?} in {scores}"),
    }
}

/// Real single-light logs from the field (`tests/fixtures/signals.jsonl`): the first whose lit
/// fencer is on each side.
fn real_single_light_logs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/signals.jsonl")).unwrap();
    let singles: Vec<(String, String)> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|row| row["expected_error"].as_str().is_some_and(|e| e.contains("Not a double-touch")))
        .map(|row| (row["id"].as_str().unwrap().to_owned(), row["signal"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(singles.len(), 96, "the fixtures hold 96 real single-light logs");
    let first = |side: &str| singles.iter().find(|(_, log)| lit_fencer(log) == side).cloned().unwrap();
    vec![first("left"), first("right")]
}

#[test]
fn single_light_phrases_are_the_lit_fencers_touch_on_stream_and_analyze() {
    let out = TempDir::new("piste-single");
    let server = shared_marker_server();
    let rendered = render(7, out.path());
    let video = std::fs::read(&rendered.avi).unwrap();
    for (n, (id, log)) in real_single_light_logs().into_iter().enumerate() {
        let lit = lit_fencer(&log);
        let session = format!("single-{n}");
        let r = http_request(server.addr, "POST", &format!("/stream?session={session}&engine=v2"), &[("Content-Type", MIXED)], &whole_body(&rendered, &log));
        assert_eq!(r.status, 200, "{id}: {}", String::from_utf8_lossy(&r.body));
        let answer = r.json();
        assert_eq!(answer["decision"]["winner"], lit, "{id}");
        assert_eq!(answer["decisions"]["legacy"]["winner"], lit, "{id}");
        assert_eq!(answer["decisions"]["v2"]["decided_by"], "single_light", "{id}");
        assert_eq!(answer["decisions"]["v2"]["uncertain"], false, "{id}");
        assert!(answer["decisions"]["v2"]["explanation"].as_str().unwrap().contains("Single light"), "{answer}");
        assert!(answer["decisions"]["legacy"]["reason"].as_str().unwrap().starts_with("Single light"), "{answer}");
        // The artifacts and the page as for any phrase: pose and tracking still ran.
        assert_eq!(answer["metadata"]["frames_processed"], rendered.jpegs.len() as u64);
        for name in ["frames_keypoints.xlsx", "timeline.json", "analysis_result.json"] {
            assert_eq!(server.get(&format!("/sessions/{session}/artifacts/{name}")).status, 200, "{name}");
        }
        assert_eq!(server.get(&format!("/sessions/{session}/view")).status, 200);

        let form = [("Content-Type", "multipart/form-data; boundary=XyZ")];
        let body = form_body(&[("video", Some("clip.avi"), Some("video/x-msvideo"), &video), ("signal", Some("p.txt"), Some("text/plain"), log.as_bytes())]);
        let r = server.request("POST", "/analyze", &form, &body);
        assert_eq!(r.status, 200, "{id}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["decision"]["winner"], lit, "{id}");
        assert!(r.json()["decision"]["reason"].as_str().unwrap().starts_with("Single light"));
    }

    // Nobody in the picture (black frames): a single light is still that touch...
    let (_, log) = real_single_light_logs().remove(0);
    let black = black_jpegs(out.path(), 4);
    let mut body: Vec<u8> = black.iter().enumerate().flat_map(|(i, j)| frame_part("frame", i, j)).collect();
    body.extend(signal_part("frame", &log));
    body.extend_from_slice(b"--frame--\r\n");
    let r = http_request(server.addr, "POST", "/stream?session=nobody-single", &[("Content-Type", MIXED)], &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["decision"]["winner"], lit_fencer(&log));
    assert_eq!(r.json()["metadata"]["normalisation_constant"], Value::Null);

    // ...while a log with no light at all is 422, saying so.
    let none = log.replace("HIT", "MISS");
    let mut body: Vec<u8> = frame_part("frame", 0, &black[0]);
    body.extend(signal_part("frame", &none));
    body.extend_from_slice(b"--frame--\r\n");
    let r = http_request(server.addr, "POST", "/stream?session=no-light", &[("Content-Type", MIXED)], &body);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"].as_str().unwrap().starts_with("No light"), "{}", r.json());
}

/// Runs the Python client written from the spec; returns its (step, reply) lines.
fn ws_client(mode: &str, base_url: &str, args: &[&str], token: Option<&str>) -> (bool, Vec<(String, Value)>) {
    let mut command = Command::new(venv_python());
    command.arg(repo().join("tests/parity/piste_ws_client.py")).args([mode, base_url]).args(args);
    if let Some(token) = token {
        command.env("REFEREE_TOKEN", token);
    }
    let out = command.output().unwrap();
    let replies = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["step"].as_str().unwrap().to_owned(), v["reply"].clone())
        })
        .collect();
    if !out.status.success() {
        eprintln!("piste_ws_client.py {mode}: {}", String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), replies)
}

fn of_type<'a>(replies: &'a [(String, Value)], kind: &str) -> Vec<&'a Value> {
    replies.iter().filter(|(_, r)| r["type"] == kind).map(|(_, r)| r).collect()
}

/// Streams rendered phrase `rendered` as the GUI does over `base_url`; returns the replies.
fn gui_phrase(base_url: &str, rendered: &Rendered, session: &str, extra: &[&str], token: Option<&str>) -> Vec<(String, Value)> {
    let mut args = vec!["--frames", rendered.frames.to_str().unwrap(), "--log", rendered.log.to_str().unwrap(), "--session", session];
    args.extend_from_slice(extra);
    let (ok, replies) = ws_client("phrase", base_url, &args, token);
    assert!(ok, "the client failed; replies: {replies:?}");
    replies
}

#[test]
fn the_piste_guis_websocket_streams_phrases_one_after_another_on_one_socket() {
    let out = TempDir::new("piste-ws");
    let server = shared_marker_server();
    let rendered = render(7, out.path());
    let fixture = phrase(7);
    let replies = gui_phrase(&server.url(), &rendered, "gui-a", &["--sessions", "2"], None);
    let complete = of_type(&replies, "process_complete");
    assert_eq!(complete.len(), 2, "{replies:?}");
    assert!(of_type(&replies, "error").is_empty(), "{replies:?}");
    for (done, id) in complete.iter().zip(["gui-a", "gui-a-2"]) {
        assert_eq!(done["session_id"], id);
        assert_eq!(done["result"]["decision"]["winner"], fixture["legacy_decision"]["winner"], "the legacy rules' winner");
        assert_eq!(done["result"]["stream"]["frames_received"], rendered.jpegs.len() as u64);
        // The same session space as HTTP.
        let session = server.get(&format!("/sessions/{id}")).json();
        assert_eq!(session["state"], "done");
        assert_eq!(session["result"]["decision"], done["result"]["decision"]);
    }
    let acks = of_type(&replies, "frame_ack");
    assert_eq!(acks.len(), 2 * rendered.jpegs.len());
    assert!(acks.iter().all(|a| a["status"] == "received"));
    for kind in ["session_started", "session_ended", "signal_ack", "process_start"] {
        assert_eq!(of_type(&replies, kind).len(), 2, "{kind}: {replies:?}");
    }
    let ended = of_type(&replies, "session_ended")[0];
    assert_eq!(ended["validation"]["frames_received"], rendered.jpegs.len() as u64);
    assert_eq!(ended["validation"]["complete"], true);
}

#[test]
fn websocket_errors_are_messages_with_the_specs_codes_and_the_phrase_resumes_over_http() {
    let out = TempDir::new("piste-ws-errors");
    let server = marker_server_with(&out.path().join("results"), &["--max-frame-bytes", "100000"]);
    let rendered = render(7, out.path());
    let (ok, replies) = ws_client("errors", &server.url(), &["--frames", rendered.frames.to_str().unwrap(), "--session", "broken"], None);
    assert!(ok, "{replies:?}");
    let reply = |step: &str| replies.iter().find(|(s, _)| s == step).map(|(_, r)| r.clone()).unwrap_or_else(|| panic!("no reply to {step}: {replies:?}"));
    let code = |step: &str| {
        let r = reply(step);
        assert_eq!(r["type"], "error", "{step}: {r}");
        assert!(r["error_message"].as_str().is_some_and(|m| !m.is_empty()), "{step}: {r}");
        assert_eq!(r["recoverable"], true, "{step}: {r}");
        r["error_code"].as_str().unwrap().to_owned()
    };
    assert_eq!(code("binary_first"), "PROTOCOL_ERROR");
    assert_eq!(code("not_json"), "INVALID_MESSAGE");
    assert_eq!(code("frame_before_start"), "NO_ACTIVE_SESSION");
    assert_eq!(reply("ping")["type"], "pong");
    assert_eq!(code("start_without_fps"), "INVALID_MESSAGE");
    assert_eq!(code("start_bad_id"), "SESSION_START_FAILED");
    assert_eq!(reply("start")["type"], "session_started");
    assert_eq!(reply("frame_0")["status"], "received");
    assert_eq!(reply("frame_0_again")["status"], "duplicate");
    assert_eq!(code("size_mismatch"), "INVALID_MESSAGE");
    assert_eq!(code("text_instead_of_binary"), "PROTOCOL_ERROR");
    assert_eq!(code("other_session"), "NO_ACTIVE_SESSION");
    assert_eq!(code("unknown_type"), "INVALID_MESSAGE");
    // The limits of the HTTP routes, with the status POST /stream gives.
    assert_eq!(code("frame_too_large"), "FRAME_PROCESSING_FAILED");
    assert_eq!(reply("frame_too_large")["status"], 413);
    assert_eq!(reply("still_serving")["type"], "pong");

    // The socket closed with the phrase open: it waits, interrupted, and resumes over HTTP.
    let mut events = Events::open(server.addr, "broken");
    let left = events.wait_for(|p| p["state"] == "interrupted");
    assert_eq!(left["frames_received"], 1);
    let mut body: Vec<u8> = rendered.jpegs.iter().enumerate().skip(1).flat_map(|(i, j)| frame_part("frame", i, j)).collect();
    body.extend(signal_part("frame", &std::fs::read_to_string(&rendered.log).unwrap()));
    body.extend_from_slice(b"--frame--\r\n");
    let r = http_request(server.addr, "POST", "/stream?session=broken", &[("Content-Type", MIXED)], &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"]["frames_received"], rendered.jpegs.len() as u64);
    assert_eq!(r.json()["decision"]["winner"], phrase(7)["legacy_decision"]["winner"]);
}

#[test]
fn the_websocket_goes_through_the_shipped_nginx_config_and_keeps_the_token() {
    let out = TempDir::new("piste-ws-nginx");
    let server = marker_server_with(&out.path().join("results"), &["--token", "s3cret"]);
    let nginx = Nginx::start(server.addr, &out.path().join("nginx"));
    let rendered = render(7, out.path());
    let winner = phrase(7)["legacy_decision"]["winner"].clone();
    let base = format!("http://{}", nginx.addr);
    for (prefix, session, query) in [("", "via-root", false), ("/referee", "via-sub-path", true)] {
        let extra: &[&str] = if query { &["--token-in-query"] } else { &[] };
        let replies = gui_phrase(&format!("{base}{prefix}"), &rendered, session, extra, Some("s3cret"));
        let complete = of_type(&replies, "process_complete");
        assert_eq!(complete.len(), 1, "{prefix}: {replies:?}");
        assert_eq!(complete[0]["result"]["decision"]["winner"], winner);
    }
    // Without the token the handshake is refused (401) and nothing is stored.
    let (ok, replies) = ws_client("phrase", &base, &["--frames", rendered.frames.to_str().unwrap(), "--log", rendered.log.to_str().unwrap(), "--session", "no-token"], None);
    assert!(!ok && replies.is_empty(), "{replies:?}");
    let r = http_request(server.addr, "GET", "/sessions/no-token", &[("Authorization", "Bearer s3cret")], b"");
    assert_eq!(r.status, 404);
}

/// A part as a live sender writes it: its headers and body, then at once the delimiter that
/// ends it (as MJPEG streamers do), so that the server has the whole part without waiting for
/// the next one. The body opens with the first delimiter; its last part ends with `--frame--`.
fn live_part(part: Vec<u8>) -> Vec<u8> {
    let mut live = part.strip_prefix(b"--frame\r\n".as_slice()).expect("a part").to_vec();
    live.extend_from_slice(b"--frame\r\n");
    live
}

/// The log's lines, each with the time it was written (untimed lines: the last time before them).
fn timed_lines(log: &str) -> Vec<(f64, String)> {
    let mut now = 0.0;
    log.lines()
        .map(|line| {
            if let Some((time, _)) = line.trim_start().split_once("s |") {
                now = time.trim().parse().unwrap_or(now);
            }
            (now, format!("{line}\n"))
        })
        .collect()
}

#[test]
fn live_box_events_decide_the_phrase_while_its_body_is_still_open() {
    let out = TempDir::new("piste-live");
    let server = marker_server(&out.path().join("results"));
    // A phrase whose frames run on well past its last light.
    let rendered = render(72, out.path());
    let log = std::fs::read_to_string(&rendered.log).unwrap();
    let end_of_phrase = log.find("Phrase ended").expect("the recorder's end line") + "Phrase ended\n".len();
    let (live, after) = log.split_at(end_of_phrase);
    let mut lines = timed_lines(live).into_iter().peekable();
    let mut upload = ChunkedUpload::start(server.addr, "/stream?session=live&fps=15", MIXED);
    upload.send(b"--frame\r\n");
    upload.send(&live_part(frame_part("frame", 0, &rendered.jpegs[0])));
    let mut events = Events::open_when_known(server.addr, "live");
    let mut sent = 1;
    let mut last_line_at = None;
    // Frames in their order (at index / 15 s on the phrase's clock), each line of the box as soon
    // as the frames reach its time. Each frame goes once the one before is analysed: a box whose
    // pose keeps up with the camera, so that what is timed below is the call itself.
    while lines.peek().is_some() {
        let analysed = sent as u64;
        events.wait_for(|p| p["frames_analysed"].as_u64().is_some_and(|n| n >= analysed));
        upload.send(&live_part(frame_part("frame", sent, &rendered.jpegs[sent])));
        let now = sent as f64 / 15.0;
        let mut due = String::new();
        while let Some((_, line)) = lines.next_if(|(t, _)| *t <= now) {
            due.push_str(&line);
        }
        if !due.is_empty() {
            upload.send(&live_part(signal_part("frame", &due)));
            last_line_at = Some(Instant::now());
        }
        sent += 1;
        assert!(sent < rendered.jpegs.len(), "the frames ran out before the log's end");
    }
    let decided = loop {
        match events.next() {
            Some((event, data)) if event == "verdict" => break data,
            Some(_) => {}
            None => panic!("the event stream ended without a verdict"),
        }
    };
    let waited = last_line_at.unwrap().elapsed();
    assert!(waited <= Duration::from_millis(1500), "the verdict came {waited:?} after the last line");
    // GET shows it too, with the body still open.
    let session = server.get("/sessions/live").json();
    assert_eq!(session["state"], "done");
    let winner = session["result"]["decision"]["winner"].clone();
    assert_eq!(decided["decision"]["winner"], winner);
    assert_eq!(session["result"]["stream"]["frames_received"], sent as u64);

    // The camera's last frames and the operator's lines come after the call: stored, counted,
    // and never changing it.
    for i in sent..rendered.jpegs.len() {
        upload.send(&live_part(frame_part("frame", i, &rendered.jpegs[i])));
    }
    // The last part is ended by the closing delimiter.
    let mut last = signal_part("frame", after).split_off("--frame\r\n".len());
    last.extend_from_slice(b"--frame--\r\n");
    upload.send(&last);
    let r = upload.finish();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let answer = r.json();
    assert_eq!(answer["decision"]["winner"], winner);
    assert_eq!(answer["stream"]["frames_received"], rendered.jpegs.len() as u64);
    assert_eq!(answer["stream"]["frames_after_verdict"], (rendered.jpegs.len() - sent) as u64);
    let stored: Value = serde_json::from_slice(&std::fs::read(out.path().join("results/sessions/live/analysis_result.json")).unwrap()).unwrap();
    assert_eq!(stored["stream"], answer["stream"]);
    let kept = std::fs::read_to_string(out.path().join("results/sessions/live/signal.txt")).unwrap();
    assert_eq!(kept, log, "every line is kept, in order");
}

/// The client binary, built beside the server by the workspace build.
fn client_bin() -> std::path::PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ai-referee")).with_file_name("referee-client");
    assert!(bin.is_file(), "{} is missing: build the workspace (cargo build --workspace)", bin.display());
    bin
}

fn client_verdict(out: std::process::Output) -> Value {
    assert!(out.status.success(), "referee-client failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn referee_client_streams_over_the_websocket_and_follows_a_live_log() {
    let out = TempDir::new("piste-client");
    let server = shared_marker_server();
    let rendered = render(72, out.path());
    let winner = phrase(72)["legacy_decision"]["winner"].clone();
    let frames = rendered.frames.to_str().unwrap().to_owned();
    let url = server.url();

    // The GUI's protocol from Rust: the same verdict as the legacy rules give.
    let ws = Command::new(client_bin())
        .args(["stream", &url, "--frames", &frames, "--signal", rendered.log.to_str().unwrap(), "--websocket", "--session", "client-ws"])
        .output()
        .unwrap();
    let answer = client_verdict(ws);
    assert_eq!(answer["decision"]["winner"], winner);
    assert_eq!(answer["stream"]["frames_received"], rendered.jpegs.len() as u64);
    assert_eq!(server.get("/sessions/client-ws").json()["state"], "done");

    // A log the recorder writes as the phrase goes, followed as `tail -f` does, over HTTP and
    // over the WebSocket: its end lines are written once every frame is in, so the call is the
    // whole phrase's.
    let log = std::fs::read_to_string(&rendered.log).unwrap();
    // The phrase's end: the scores after the recording ended (here before `Phrase ended`).
    let recording_ended = log.find("Phrase recording ended").unwrap();
    let scores = recording_ended + log[recording_ended..].find("Scores ->").unwrap();
    let end = scores + log[scores..].find('\n').unwrap() + 1;
    assert!(end <= log.find("Phrase ended").unwrap());
    let half = log.find("HIT:").unwrap();
    for (session, websocket) in [("live-http", false), ("live-ws", true)] {
        let file = out.path().join(format!("{session}.txt"));
        std::fs::write(&file, &log[..half]).unwrap();
        let mut command = Command::new(client_bin());
        command.args(["stream", &url, "--frames", &frames, "--signal-live", file.to_str().unwrap(), "--session", session]);
        if websocket {
            command.arg("--websocket");
        }
        let child = command.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        let mut events = Events::open_when_known(server.addr, session);
        let n = rendered.jpegs.len() as u64;
        let seen = events.wait_for(|p| p["frames_received"] == n);
        assert_eq!(seen["signal_received"], false, "the log's end is not written yet");
        // The recorder writes the rest, and goes on after the phrase's end (never sent).
        let mut writer = std::fs::OpenOptions::new().append(true).open(&file).unwrap();
        writer.write_all(log[half..].as_bytes()).unwrap();
        drop(writer);
        let answer = client_verdict(child.wait_with_output().unwrap());
        assert_eq!(answer["decision"]["winner"], winner, "{session}");
        let stored = std::fs::read_to_string(server.output.join(format!("sessions/{session}/signal.txt"))).unwrap();
        assert_eq!(stored, log[..end], "{session}: every line up to the phrase's end, once, in order");
        assert_eq!(server.get(&format!("/sessions/{session}")).json()["signal_bytes"], end as u64);
    }
}
