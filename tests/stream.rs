//! `POST /stream` on the real server over real sockets: a phrase streamed while it is
//! "recorded" is analysed as it arrives and decided like the same frames posted to /analyze;
//! curl's chunked upload, ffmpeg's mpjpeg output (no closing boundary, log sent by PUT), the
//! same through nginx with the shipped config, a cut connection resumed without losing or
//! doubling a frame, boundary variants, and each error; the referee's own call on a phrase
//! (`PUT /sessions/{id}/call`) and the engines evaluated against it from the sessions directory.

mod common;

use common::Served;

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{frame_part, http_request, marker_server, marker_server_with, phrase, render, repo, shared_marker_server, signal_part, ChunkedUpload, Events, HttpResponse, Nginx, Rendered, TempDir};
use serde_json::{json, Value};

/// A whole phrase body with boundary `frame`: every frame, the log if `with_log`, the closing boundary.
fn whole_body(rendered: &Rendered, with_log: bool) -> Vec<u8> {
    let mut body: Vec<u8> = rendered.jpegs.iter().enumerate().flat_map(|(i, j)| frame_part("frame", i, j)).collect();
    if with_log {
        body.extend(signal_part("frame", &std::fs::read(&rendered.log).unwrap()));
    }
    body.extend_from_slice(b"--frame--\r\n");
    body
}

/// Sends the phrase's frames from index `from` on, its log and the closing boundary, and reads
/// the response.
fn finish_phrase(mut upload: ChunkedUpload, rendered: &Rendered, from: usize) -> HttpResponse {
    for (i, jpeg) in rendered.jpegs.iter().enumerate().skip(from) {
        upload.send(&frame_part("frame", i, jpeg));
    }
    upload.send(&signal_part("frame", &std::fs::read(&rendered.log).unwrap()));
    upload.send(b"--frame--\r\n");
    upload.finish()
}

/// The decision `/analyze` gives for the same pixels as the streamed JPEGs. The JPEGs are
/// decoded as `/stream` decodes them (OpenCV's imdecode, libjpeg) and posted as a lossless video
/// (FFV1, BGR): `/analyze` decodes videos with ffmpeg, as the legacy's opencv-python did, and
/// ffmpeg's own JPEG decoder gives other pixels than libjpeg's (by a level or two), so the .avi
/// of the same JPEGs would be compared on other pixels.
fn analyze_winner(base_url: &str, rendered: &Rendered) -> Value {
    use opencv::prelude::*;
    let video = rendered.avi.with_extension("lossless.mkv");
    let first = opencv::imgcodecs::imdecode(&opencv::core::Vector::<u8>::from_slice(&rendered.jpegs[0]), opencv::imgcodecs::IMREAD_COLOR).unwrap();
    let mut ffmpeg = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s"])
        .arg(format!("{}x{}", first.cols(), first.rows()))
        .args(["-r", "15", "-i", "-", "-c:v", "ffv1", "-pix_fmt", "bgr0"])
        .arg(&video)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = ffmpeg.stdin.take().unwrap();
    for jpeg in &rendered.jpegs {
        let image = opencv::imgcodecs::imdecode(&opencv::core::Vector::<u8>::from_slice(jpeg), opencv::imgcodecs::IMREAD_COLOR).unwrap();
        input.write_all(image.data_bytes().unwrap()).unwrap();
    }
    drop(input);
    assert!(ffmpeg.wait().unwrap().success());
    let out = Command::new("curl")
        .args(["-sS", "-F"])
        .arg(format!("video=@{}", video.display()))
        .arg("-F")
        .arg(format!("signal=@{}", rendered.log.display()))
        .args(["-F", "save_overlay=false"])
        .arg(format!("{base_url}/analyze"))
        .output()
        .unwrap();
    let body: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(body["decision"].is_object(), "{body}");
    assert_eq!(body["metadata"]["frames_processed"], rendered.jpegs.len());
    body["decision"].clone()
}

#[test]
fn frames_are_analysed_while_they_arrive_and_decided_as_by_analyze() {
    let out = TempDir::new("stream-live");
    let server = marker_server(&out.path().join("results"));
    let rendered = render(10, out.path());
    let n = rendered.jpegs.len();
    let mut upload = ChunkedUpload::start(server.addr, "/stream?session=live-1&fps=15", "multipart/x-mixed-replace; boundary=frame");
    upload.send(&frame_part("frame", 0, &rendered.jpegs[0]));
    let mut events = Events::open_when_known(server.addr, "live-1");
    for (i, jpeg) in rendered.jpegs.iter().enumerate().take(n / 2).skip(1) {
        upload.send(&frame_part("frame", i, jpeg));
    }
    // Half the phrase is in and the body is still open: pose is already at work.
    let seen = events.wait_for(|p| p["frames_analysed"].as_u64().unwrap() >= 1);
    assert_eq!(seen["state"], "receiving");
    let response = finish_phrase(upload, &rendered, n / 2);
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.header("x-session-id"), Some("live-1"));
    let body = response.json();
    let stream = &body["stream"];
    assert_eq!(stream["frames_received"], n);
    assert_eq!(stream["frames_analysed"], n);
    assert_eq!(stream["corrupt_frames"], 0);
    eprintln!("verdict {:.3} s after the last byte", stream["verdict_seconds_after_last_byte"].as_f64().unwrap());
    // The same frames through /analyze give the same decision.
    assert_eq!(body["decision"], analyze_winner(&server.url(), &rendered));
    // The session says so too, and its artifacts are served.
    let session = server.get("/sessions/live-1").json();
    assert_eq!(session["state"], "done");
    assert_eq!(session["result"]["decision"], body["decision"]);
    let mjpeg = server.get("/sessions/live-1/artifacts/frames.mjpeg");
    assert_eq!(mjpeg.status, 200);
    assert_eq!(mjpeg.body, rendered.jpegs.concat(), "frames.mjpeg is the frames, in order, once each");
    let saved = server.get("/sessions/live-1/artifacts/analysis_result.json").json();
    assert_eq!(saved, body);
    assert_eq!(server.get("/sessions/live-1/artifacts/..%2Fsecrets").status, 404);
    // The overlay video follows the verdict; asked for at once, it comes once written, whole.
    let overlay = server.get("/sessions/live-1/artifacts/frames_overlay.mp4");
    assert_eq!(overlay.status, 200);
    assert!(overlay.body.len() > 1000 && overlay.body.windows(4).any(|w| w == b"ftyp"), "an mp4");
    assert_eq!(server.get("/sessions/live-1").json()["videos_ready"], true);
    // Pose ran through the one scheduler, and nothing waits there now.
    let stats = server.get("/stats").json();
    assert!(stats["pose"]["stats"]["frames"].as_u64().unwrap() >= n as u64, "{stats}");
    assert_eq!(stats["pose"]["stats"]["backlog"], 0, "{stats}");
    assert_eq!(stats["pose"]["stats"]["failed_batches"], 0, "{stats}");
    // A finished session takes no more frames.
    let again = http_request(server.addr, "POST", "/stream?session=live-1", &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], b"--frame--\r\n");
    assert_eq!(again.status, 409);
}

#[test]
fn curl_streams_a_chunked_body() {
    let out = TempDir::new("stream-curl");
    let server = shared_marker_server();
    let rendered = render(14, out.path());
    let mut body = Vec::new();
    for (i, jpeg) in rendered.jpegs.iter().enumerate() {
        body.extend(frame_part("--curl", i, jpeg));
    }
    // Parts use `----curl`: the Content-Type gives the boundary with a leading `--`, quoted.
    body.extend(signal_part("--curl", &std::fs::read(&rendered.log).unwrap()));
    body.extend_from_slice(b"----curl--\r\n");
    let mut curl = Command::new("curl")
        .args(["-sS", "-X", "POST", "-T", "-", "-H", "Content-Type: multipart/x-mixed-replace; boundary=\"--curl\""])
        .arg(format!("{}/stream?session=curl-1", server.url()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    curl.stdin.take().unwrap().write_all(&body).unwrap();
    let output = curl.wait_with_output().unwrap();
    let reply: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)));
    assert_eq!(reply["stream"]["frames_received"], rendered.jpegs.len(), "{reply}");
    assert_eq!(reply["decision"]["winner"], phrase(14)["legacy_decision"]["winner"]);
}

/// `ffmpeg -i AVI -c:v copy -f mpjpeg -method POST [-content_type TYPE] URL`, as fast as it
/// goes (a camera's `-re` pacing proves nothing here: what is tested is what ffmpeg sends).
fn ffmpeg_upload(avi: &Path, url: &str, content_type: Option<&str>) -> Child {
    let mut ffmpeg = Command::new("ffmpeg");
    ffmpeg.args(["-loglevel", "error", "-i"]).arg(avi).args(["-c:v", "copy", "-f", "mpjpeg", "-method", "POST"]);
    if let Some(content_type) = content_type {
        ffmpeg.args(["-content_type", content_type]);
    }
    ffmpeg.arg(url).stdin(Stdio::null()).spawn().unwrap()
}

fn put_signal(addr: SocketAddr, id: &str, log: &Path) -> HttpResponse {
    http_request(addr, "PUT", &format!("/sessions/{id}/signal"), &[("Content-Type", "text/plain")], &std::fs::read(log).unwrap())
}

#[test]
fn ffmpeg_mpjpeg_then_the_log_by_put() {
    let out = TempDir::new("stream-ffmpeg");
    let server = shared_marker_server();
    let rendered = render(2, out.path());
    let mut ffmpeg = ffmpeg_upload(&rendered.avi, &format!("{}/stream?session=ff-1", server.url()), Some("multipart/x-mixed-replace;boundary=ffmpeg"));
    let mut events = Events::open_when_known(server.addr, "ff-1");
    events.wait_for(|p| p["frames_analysed"].as_u64().unwrap() >= 1 && p["state"] == "receiving");
    assert!(ffmpeg.wait().unwrap().success(), "ffmpeg's upload (no closing boundary) ends cleanly");
    let session = server.get("/sessions/ff-1").json();
    assert_eq!(session["frames_received"], rendered.jpegs.len());
    assert_eq!(session["signal_received"], false);
    let response = put_signal(server.addr, "ff-1", &rendered.log);
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.json()["decision"], analyze_winner(&server.url(), &rendered));
}

#[test]
fn a_stream_chooses_its_engine_by_query() {
    let out = TempDir::new("stream-engine");
    let server = shared_marker_server();
    let rendered = render(1, out.path());
    let post = |target: &str| server.request("POST", target, &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], &whole_body(&rendered, true));
    let answer = post("/stream?session=engine-v2&engine=v2");
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let answer = answer.json();
    assert_eq!(answer["engine"], "v2");
    assert_eq!(answer["decision"], answer["decisions"]["v2"]);
    assert!(answer["decision"]["explanation"].is_string(), "{answer}");
    assert_eq!(answer["decision"]["time_source"], "timestamps", "from each part's X-Timestamp");
    assert_eq!(answer["decisions"]["legacy"]["winner"], phrase(1)["legacy_decision"]["winner"]);
    // The server's default (legacy) without the query.
    let plain = post("/stream?session=engine-default").json();
    assert_eq!(plain["engine"], "legacy");
    assert_eq!(plain["decision"], plain["decisions"]["legacy"]);
    assert_eq!(plain["decisions"]["v2"], answer["decisions"]["v2"], "the same frames and times give the same v2 call");
    // (A small body: the server answers before reading it.)
    let unknown = server.request("POST", "/stream?session=engine-bad&engine=v4", &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], b"--frame--\r\n");
    assert_eq!(unknown.status, 400);
    assert!(unknown.json()["detail"].as_str().unwrap().contains("legacy, v2, v3"));
    assert_eq!(server.get("/sessions/engine-bad").status, 404, "no session is made for it");
}

#[test]
fn ffmpegs_natural_command_without_a_content_type_streams_too() {
    // `ffmpeg -f mpjpeg -method POST URL` sends no Content-Type; its body opens with --ffmpeg.
    let out = TempDir::new("stream-ffmpeg-plain");
    let server = shared_marker_server();
    let rendered = render(13, out.path());
    let mut ffmpeg = ffmpeg_upload(&rendered.avi, &format!("{}/stream?session=ff-plain", server.url()), None);
    assert!(ffmpeg.wait().unwrap().success(), "ffmpeg's upload without a Content-Type is taken");
    // ffmpeg exits once it has sent its body, without reading the answer: the upload is over
    // when the server has answered it (its access line; no request of this session came before).
    server.wait_for("session=ff-plain}: access: served status=202", Duration::from_secs(120));
    let session = server.get("/sessions/ff-plain").json();
    assert_eq!(session["frames_received"], rendered.jpegs.len(), "{session}");
    // Every frame stored byte for byte as ffmpeg sent it (the JPEGs of the .avi).
    let stored = server.get("/sessions/ff-plain/artifacts/frames.mjpeg").body;
    assert_eq!(stored, rendered.jpegs.concat());
    let response = put_signal(server.addr, "ff-plain", &rendered.log);
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.json()["decision"]["winner"], phrase(13)["legacy_decision"]["winner"]);
    // A body with no Content-Type that does not open with a boundary line: 400, saying what to send.
    let refused = http_request(server.addr, "POST", "/stream?session=ff-bad", &[], &b"this is not multipart at all\n".repeat(100));
    assert_eq!(refused.status, 400);
    assert!(refused.json()["detail"].as_str().unwrap().contains("boundary"), "{}", refused.json());
    assert_eq!(server.get("/sessions/ff-bad").status, 404, "no session is made for it");
}

#[test]
fn through_nginx_with_the_shipped_config() {
    let out = TempDir::new("stream-nginx");
    let server = shared_marker_server();
    let rendered = render(16, out.path());
    let shipped = std::fs::read_to_string(repo().join("deploy/nginx.conf")).unwrap();
    assert!(shipped.contains("proxy_request_buffering off") && shipped.contains("proxy_http_version 1.1"));
    let nginx = Nginx::start(server.addr, &out.path().join("nginx"));
    let proxy = nginx.addr;

    let n = rendered.jpegs.len();
    let mut upload = ChunkedUpload::start(proxy, "/stream?session=ng-1", "multipart/x-mixed-replace; boundary=frame");
    for (i, jpeg) in rendered.jpegs.iter().enumerate().take(n / 2) {
        upload.send(&frame_part("frame", i, jpeg));
    }
    // Through nginx, frames reach the server (and pose) before the body has ended.
    let mut events = Events::open_when_known(proxy, "ng-1");
    events.wait_for(|p| p["frames_analysed"].as_u64().unwrap() >= 1);
    let response = finish_phrase(upload, &rendered, n / 2);
    drop(nginx);
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.json()["stream"]["frames_received"], n);
    assert_eq!(response.json()["decision"]["winner"], phrase(16)["legacy_decision"]["winner"]);
}

#[test]
fn a_cut_connection_resumes_without_losing_or_doubling_frames() {
    let out = TempDir::new("stream-resume");
    let server = shared_marker_server();
    let rendered = render(63, out.path());
    let n = rendered.jpegs.len();
    let cut = n / 3;
    let mut upload = ChunkedUpload::start(server.addr, "/stream?session=cut-1", "multipart/x-mixed-replace; boundary=frame");
    for (i, jpeg) in rendered.jpegs.iter().enumerate().take(cut) {
        upload.send(&frame_part("frame", i, jpeg));
    }
    // Half of the next part, then the connection drops.
    let partial = frame_part("frame", cut, &rendered.jpegs[cut]);
    upload.send(&partial[..partial.len() / 2]);
    let mut events = Events::open_when_known(server.addr, "cut-1");
    drop(upload);
    let state = events.wait_for(|p| p["state"] == "interrupted");
    assert_eq!(state["frames_received"], cut, "whole frames kept, the cut one not");
    let next = state["next_frame_index"].as_u64().unwrap() as usize;
    assert_eq!(next, cut);

    // The client resumes a little earlier than needed: frames already held are skipped.
    let upload = ChunkedUpload::start(server.addr, "/stream?session=cut-1", "multipart/x-mixed-replace; boundary=frame");
    let response = finish_phrase(upload, &rendered, next - 2);
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.json()["stream"]["frames_received"], n);
    let mjpeg = server.get("/sessions/cut-1/artifacts/frames.mjpeg").body;
    assert_eq!(mjpeg, rendered.jpegs.concat(), "every frame once, in order");
    let index = String::from_utf8(server.get("/sessions/cut-1/artifacts/frames.idx").body).unwrap();
    let indexes: Vec<u64> = index.lines().map(|l| serde_json::from_str::<Value>(l).unwrap()["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..n as u64).collect::<Vec<_>>());
}

#[test]
fn boundary_variants_and_errors() {
    let out = TempDir::new("stream-errors");
    let server = shared_marker_server();
    let rendered = render(5, out.path());
    let post = |target: &str, content_type: &str, body: &[u8]| http_request(server.addr, "POST", target, &[("Content-Type", content_type)], body);
    let frames = |boundary: &str, k: usize| -> Vec<u8> {
        rendered.jpegs.iter().take(k).enumerate().flat_map(|(i, j)| frame_part(boundary, i, j)).collect()
    };

    // Quoted, `--`-prefixed, and no closing boundary at all: all read, no log yet → 202.
    for (id, content_type, boundary, closing) in [
        ("v-quoted", "multipart/x-mixed-replace; boundary=\"fr ame\"", "fr ame", true),
        ("v-dashes", "multipart/x-mixed-replace; boundary=--frame", "frame", true),
        ("v-open", "multipart/x-mixed-replace;boundary=frame", "frame", false),
        ("v-mixed", "multipart/mixed; boundary=frame", "frame", true),
    ] {
        let mut body = frames(boundary, 3);
        if closing {
            body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        }
        let r = post(&format!("/stream?session={id}"), content_type, &body);
        assert_eq!(r.status, 202, "{id}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["frames_received"], 3, "{id}");
    }

    let r = post("/stream?session=bad%20id", "multipart/x-mixed-replace; boundary=frame", b"");
    assert_eq!(r.status, 400);
    let r = post("/stream?session=e-type", "video/mjpeg", b"");
    assert_eq!(r.status, 415);
    let r = post("/stream?session=e-part", "multipart/x-mixed-replace; boundary=frame", b"--frame\r\nContent-Type: image/png\r\n\r\nPNG\r\n--frame--\r\n");
    assert_eq!(r.status, 415);
    let r = post("/stream?session=e-index", "multipart/x-mixed-replace; boundary=frame", b"--frame\r\nContent-Type: image/jpeg\r\nX-Frame-Index: one\r\n\r\nJ\r\n--frame--\r\n");
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].as_str().unwrap().contains("X-Frame-Index"));
    assert_eq!(server.get("/sessions/nope").status, 404);
    assert_eq!(put_signal(server.addr, "nope", &rendered.log).status, 404);

    // A log with no light: 422, saying which lights.
    let single = b" 0.000s | Phrase recording started\n 1.0s | HIT: Left scores on Right!\nScores -> Fencer 1: MISS, Fencer 2: MISS\n";
    let r = put_signal(server.addr, "v-quoted", &{
        let p = out.path().join("single.txt");
        std::fs::write(&p, single).unwrap();
        p
    });
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"], "No light: neither fencer hit (Fencer 1: MISS, Fencer 2: MISS)");

    // A corrupt JPEG is counted and skipped; the phrase is still decided.
    let mut body = Vec::new();
    for (i, jpeg) in rendered.jpegs.iter().enumerate() {
        body.extend(frame_part("frame", i, jpeg));
    }
    body.extend(frame_part("frame", rendered.jpegs.len(), b"\xFF\xD8 not really a jpeg \xFF\xD9"));
    body.extend(signal_part("frame", &std::fs::read(&rendered.log).unwrap()));
    body.extend_from_slice(b"--frame--\r\n");
    let r = post("/stream?session=corrupt-1", "multipart/x-mixed-replace; boundary=frame", &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"]["corrupt_frames"], 1);
    assert_eq!(r.json()["stream"]["frames_received"], rendered.jpegs.len() + 1);
}

#[test]
fn limits_answer_413_and_a_full_server_503() {
    let out = TempDir::new("stream-limits");
    let rendered = render(6, out.path());
    let largest = rendered.jpegs.iter().map(Vec::len).max().unwrap();
    let first_three: usize = rendered.jpegs.iter().take(3).map(Vec::len).sum();
    let (frame_limit, phrase_limit) = (largest + 16, first_three + 4096);
    let server = marker_server_with(
        &out.path().join("results"),
        &["--max-frame-bytes", &frame_limit.to_string(), "--max-phrase-bytes", &phrase_limit.to_string(), "--max-sessions", "1"],
    );
    let post = |target: &str, body: &[u8]| http_request(server.addr, "POST", target, &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], body);

    // One part over the part limit.
    let mut body = frame_part("frame", 0, &vec![0xFF; frame_limit + 1]);
    body.extend_from_slice(b"--frame--\r\n");
    let r = post("/stream?session=big-part", &body);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"].as_str().unwrap().contains(&frame_limit.to_string()));

    // A phrase over the phrase limit across two uploads: the limit is the session's, not the request's.
    let mut body: Vec<u8> = rendered.jpegs.iter().take(3).enumerate().flat_map(|(i, j)| frame_part("frame", i, j)).collect();
    body.extend_from_slice(b"--frame--\r\n");
    assert_eq!(post("/stream?session=big-phrase", &body).status, 202);
    let mut body = frame_part("frame", 3, &rendered.jpegs[3]);
    body.extend_from_slice(b"--frame--\r\n");
    let r = post("/stream?session=big-phrase", &body);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(server.get("/sessions/big-phrase").json()["frames_received"], 3, "the frame over the limit is not kept");

    // With one phrase uploading, a second is told to come back later.
    let mut upload = ChunkedUpload::start(server.addr, "/stream?session=first", "multipart/x-mixed-replace; boundary=frame");
    upload.send(&frame_part("frame", 0, &rendered.jpegs[0]));
    // (Its frame is not whole until the next delimiter comes: the session is known, and uploading.)
    Events::open_when_known(server.addr, "first").wait_for(|p| p["state"] == "receiving");
    let r = post("/stream?session=second", b"--frame--\r\n");
    assert_eq!(r.status, 503, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.header("retry-after").is_some());
    assert!(r.json()["detail"].is_string());
    // Once it is no longer uploading (here: it waits for its log), the slot is free again.
    upload.send(b"--frame--\r\n");
    assert_eq!(upload.finish().status, 202);
    assert_eq!(post("/stream?session=second", b"--frame--\r\n").status, 202);
}

#[test]
fn undecidable_phrases_answer_422() {
    let out = TempDir::new("stream-422");
    let server = shared_marker_server();
    let rendered = render(7, out.path());
    let log = std::fs::read(&rendered.log).unwrap();
    // Frames in which nobody stands.
    let mut body = Vec::new();
    for (i, jpeg) in common::black_jpegs(out.path(), 6).iter().enumerate() {
        body.extend(frame_part("frame", i, jpeg));
    }
    body.extend(signal_part("frame", &log));
    body.extend_from_slice(b"--frame--\r\n");
    let r = http_request(server.addr, "POST", "/stream?session=nobody", &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], &body);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["detail"], "No valid frame with keypoints for both tracks found in the video");
    let session = server.get("/sessions/nobody").json();
    assert_eq!(session["state"], "failed");
    assert_eq!(session["error"], "No valid frame with keypoints for both tracks found in the video");
    assert_eq!(session["result"], Value::Null);
    assert!(!server.output.join("sessions/nobody/analysis_result.json").exists(), "no result file for a failed phrase");

    // A log with no start line: 422 with the legacy's message, and the frames are kept for a better log.
    let mut body = frame_part("frame", 0, &rendered.jpegs[0]);
    body.extend(signal_part("frame", b" 1.0s | HIT: Left scores on Right!\nScores -> Fencer 1: HIT, Fencer 2: HIT\n"));
    body.extend_from_slice(b"--frame--\r\n");
    let r = http_request(server.addr, "POST", "/stream?session=no-start", &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], &body);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"].as_str().unwrap().contains("Could not find start time"), "{}", r.json());
    assert_eq!(server.get("/sessions/no-start").json()["frames_received"], 1);
}

#[test]
fn phrases_streamed_at_once_are_each_decided_as_alone() {
    let out = TempDir::new("stream-together");
    let server = marker_server(&out.path().join("results"));
    let bodies: Vec<Vec<u8>> = [37, 2, 5, 8].iter().map(|&n| whole_body(&render(n, out.path()), true)).collect();
    let post = |id: String, body: &[u8]| {
        let r = http_request(server.addr, "POST", &format!("/stream?session={id}"), &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], body);
        assert_eq!(r.status, 200, "{id}: {}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    let together: Vec<Value> = std::thread::scope(|scope| {
        let running: Vec<_> = bodies.iter().enumerate().map(|(k, body)| scope.spawn(move || post(format!("together-{k}"), body))).collect();
        running.into_iter().map(|t| t.join().unwrap()).collect()
    });
    for (k, body) in bodies.iter().enumerate() {
        let alone = post(format!("alone-{k}"), body);
        assert_eq!(together[k]["decision"], alone["decision"], "phrase {k}");
        assert_eq!(together[k]["stream"]["frames_analysed"], alone["stream"]["frames_analysed"]);
    }
    let stats = server.get("/stats").json();
    assert_eq!(stats["pose"]["stats"]["backlog"], 0, "{stats}");
}

#[test]
fn with_analysis_off_frames_are_stored_only() {
    let out = TempDir::new("stream-store-only");
    let server = marker_server_with(&out.path().join("results"), &["--analysis", "false"]);
    let rendered = render(45, out.path());
    let r = http_request(server.addr, "POST", "/stream?session=kept", &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], &whole_body(&rendered, true));
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let progress = r.json();
    assert_eq!(progress["frames_received"], rendered.jpegs.len());
    assert_eq!(progress["signal_received"], true);
    assert_eq!(progress["frames_analysed"], 0);
    assert_eq!(server.get("/sessions/kept/artifacts/frames.mjpeg").body, rendered.jpegs.concat());
    let stats = server.get("/stats").json();
    assert_eq!(stats["pose"]["stats"]["frames"], 0, "{stats}");
    assert_eq!(stats["analysis"]["enabled"], false);
}

#[test]
fn decided_sessions_do_not_keep_files_open() {
    let out = TempDir::new("stream-files");
    let server = marker_server(&out.path().join("results"));
    let rendered = render(8, out.path());
    let body = whole_body(&rendered, true);
    let post = |id: &str| {
        let r = http_request(server.addr, "POST", &format!("/stream?session={id}"), &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], &body);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        r.json()
    };
    let first = post("files-0");
    let before = server.open_files();
    for k in 1..=6 {
        post(&format!("files-{k}"));
    }
    let after = server.open_files();
    assert!(after < before + 6, "six more decided phrases left {} more files open", after - before);
    // A session that left memory is still there for whoever asks, and still refuses more frames.
    let again = server.get("/sessions/files-0").json();
    assert_eq!(again["state"], "done");
    assert_eq!(again["result"]["decision"], first["decision"]);
    let r = http_request(server.addr, "POST", "/stream?session=files-0", &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], b"--frame--\r\n");
    assert_eq!(r.status, 409);
}

#[test]
fn a_complete_upload_awaits_its_log_across_a_restart() {
    let out = TempDir::new("stream-restart-log");
    let results = out.path().join("results");
    let rendered = render(48, out.path());
    let n = rendered.jpegs.len();
    let body = whole_body(&rendered, false);
    let server = marker_server(&results);
    let r = http_request(server.addr, "POST", "/stream?session=later", &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], &body);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    drop(server); // killed before the log comes
    let server = marker_server(&results);
    let session = server.get("/sessions/later").json();
    assert_eq!(session["state"], "receiving", "all frames in, the log awaited: {session}");
    assert_eq!(session["frames_received"], n);
    let r = put_signal(server.addr, "later", &rendered.log);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"]["frames_analysed"], n);
    assert_eq!(r.json()["decision"]["winner"], phrase(48)["legacy_decision"]["winner"]);
}

#[test]
fn idle_undecided_sessions_leave_memory_and_resume_from_disk() {
    let out = TempDir::new("stream-idle");
    // Idle for 0 s: an undecided session nobody uploads to leaves memory at the next upload.
    let server = marker_server_with(&out.path().join("results"), &["--session-idle-seconds", "0"]);
    let rendered = render(10, out.path());
    let n = rendered.jpegs.len();
    let mut upload = ChunkedUpload::start(server.addr, "/stream?session=idle-a", "multipart/x-mixed-replace; boundary=frame");
    for (i, jpeg) in rendered.jpegs.iter().enumerate().take(n / 2) {
        upload.send(&frame_part("frame", i, jpeg));
    }
    let mut events = Events::open_when_known(server.addr, "idle-a");
    events.wait_for(|p| p["frames_analysed"].as_u64().unwrap() >= 1);
    drop(upload);
    let cut = events.wait_for(|p| p["state"] == "interrupted");
    let session_dir = out.path().join("results/sessions/idle-a");
    let holds_files = || server.open_paths().iter().any(|p| p.starts_with(&session_dir));
    // An interrupted phrase holds no file once its analysis has caught up, without waiting for
    // the idle sweep (3,000 abandoned uploads once held 6,000 files for 15 minutes) ...
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while holds_files() {
        assert!(std::time::Instant::now() < deadline, "the interrupted session still holds its files: {:?}", server.open_paths());
        // A paced poll (of an HTTP route or /proc): the server sends no event for this; the loop ends on what it observes.
        std::thread::sleep(common::POLL_PACE);
    }
    // ... and another phrase opening retires it from memory.
    let r = http_request(server.addr, "POST", "/stream?session=idle-b", &[("Content-Type", "multipart/x-mixed-replace; boundary=frame")], b"--frame--\r\n");
    assert_eq!(r.status, 202);
    assert!(!holds_files());
    // ... and the session is still there, from disk, and resumes to the verdict.
    let again = server.get("/sessions/idle-a").json();
    assert_eq!(again["frames_received"], cut["frames_received"]);
    assert_eq!(again["state"], "interrupted");
    let from = again["next_frame_index"].as_u64().unwrap() as usize;
    let upload = ChunkedUpload::start(server.addr, "/stream?session=idle-a", "multipart/x-mixed-replace; boundary=frame");
    let response = finish_phrase(upload, &rendered, from);
    assert_eq!(response.status, 200, "{}", String::from_utf8_lossy(&response.body));
    assert_eq!(response.json()["stream"]["frames_received"], n);
    assert_eq!(response.json()["stream"]["frames_analysed"], n);
    assert_eq!(response.json()["decision"]["winner"], phrase(10)["legacy_decision"]["winner"]);
}

#[test]
fn the_referees_call_is_kept_beside_the_phrase_and_the_engines_are_evaluated_against_it() {
    // The only test of this binary that gives a call: the shared server's sessions directory
    // holds one phrase with a call, this one.
    let out = TempDir::new("stream-call");
    let server = shared_marker_server();
    let n = 10; // a short recorded phrase the referee gave to the right
    let rendered = render(n, out.path());
    let call = phrase(n)["referee_call"].as_str().unwrap().to_owned();
    let put = |id: &str, body: &[u8]| server.request("PUT", &format!("/sessions/{id}/call"), &[("Content-Type", "text/plain")], body);

    // Half the phrase on a body left open: a call given while it uploads is stored.
    let half = rendered.jpegs.len() / 2;
    let mut upload = ChunkedUpload::start(server.addr, "/stream?session=called", "multipart/x-mixed-replace; boundary=frame");
    for (i, jpeg) in rendered.jpegs.iter().enumerate().take(half) {
        upload.send(&frame_part("frame", i, jpeg));
    }
    Events::open_when_known(server.addr, "called").wait_for(|p| p["frames_received"].as_u64() >= Some(1));
    let early = put("called", b"  Left\n");
    assert_eq!(early.status, 200, "{}", String::from_utf8_lossy(&early.body));
    let early = early.json();
    assert_eq!((&early["session"], &early["referee_call"]), (&json!("called"), &json!("left")));
    assert!(early["at"].as_str().unwrap().ends_with('Z'), "{early}");
    let uploading = server.get("/sessions/called").json();
    assert_eq!((&uploading["state"], &uploading["referee_call"]), (&json!("receiving"), &json!("left")), "{uploading}");

    // What is refused, each with a detail, leaving the stored call as it was.
    for bad in [&b"lefty"[..], b"", b"touch left", b"\xff\xfe"] {
        let refused = put("called", bad);
        assert_eq!(refused.status, 400, "{bad:?}");
        assert!(refused.json()["detail"].is_string(), "{bad:?}");
    }
    let too_big = put("called", &[b' '; 200]);
    assert_eq!(too_big.status, 413);
    assert!(too_big.json()["detail"].as_str().unwrap().contains("64 bytes"), "{}", too_big.json());
    let unknown = put("nobody-here", b"left");
    assert_eq!(unknown.status, 404);
    assert!(unknown.json()["detail"].is_string());
    assert_eq!(server.get("/sessions/called/call").status, 405, "the call is PUT, read with the session");
    assert_eq!(server.get("/sessions/called").json()["referee_call"], "left");

    // The rest of the phrase: decided; the referee's real call then replaces the first one.
    let answer = finish_phrase(upload, &rendered, half);
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(put("called", call.to_uppercase().as_bytes()).status, 200);
    let session = server.get("/sessions/called").json();
    assert_eq!((&session["state"], &session["referee_call"]), (&json!("done"), &json!(call)), "{session}");
    let listed = server.get("/sessions").json();
    let row = listed["sessions"].as_array().unwrap().iter().find(|s| s["session"] == "called").expect("listed").clone();
    assert_eq!(row["referee_call"], json!(call));
    let log = server.get("/sessions/called/artifacts/signal.txt").body;
    assert_eq!(log, std::fs::read(&rendered.log).unwrap(), "the log is the box's own, without the call");

    // Every engine evaluated against the call, re-deciding from the stored workbook and frame
    // times: one phrase, agreeing as the stored decision did, on the log's evening.
    let sessions = server.output.join("sessions");
    for engine in ["legacy", "v2", "v3"] {
        let run = Command::new(env!("CARGO_BIN_EXE_ai-referee")).args(["evaluate", "--engine", engine, "--sessions"]).arg(&sessions).output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let report: Value = serde_json::from_slice(&run.stdout).unwrap();
        assert_eq!(report["errors"], json!([]), "{report}");
        let overall = &report["in_sample"]["overall"];
        assert_eq!(overall["n"], 1, "{report}");
        let stored = &session["result"]["decisions"][engine]["winner"];
        assert!(stored.is_string(), "{session}");
        assert_eq!(overall["agree"], usize::from(*stored == json!(call)), "{engine}: stored {stored}, call {call}: {report}");
        let bands = report["in_sample"]["reliability"].as_array().unwrap();
        assert_eq!(bands.iter().map(|b| b["phrases"].as_u64().unwrap()).sum::<u64>(), 1, "{report}");
        let evenings = report["by_evening"]["evenings"].as_array().unwrap();
        assert_eq!(evenings.len(), 1, "{report}");
        assert_eq!(evenings[0][engine], overall["agree"], "{report}");
    }

    // The same rows exported as phrases.jsonl lines.
    let export = Command::new(env!("CARGO_BIN_EXE_ai-referee")).args(["export", "--sessions"]).arg(&sessions).output().unwrap();
    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    assert!(String::from_utf8_lossy(&export.stderr).starts_with("1 phrases with a referee call"), "{}", String::from_utf8_lossy(&export.stderr));
    let rows: Vec<Value> = String::from_utf8(export.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let keys: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["id", "signal", "normalisation_constant", "keypoints", "referee_call", "frame_times", "evening", "decisions"]);
    assert_eq!((&row["id"], &row["referee_call"]), (&json!("called"), &json!(call)));
    assert_eq!(row["signal"].as_str().unwrap().as_bytes(), log.as_slice());
    assert_eq!(row["normalisation_constant"], session["result"]["metadata"]["normalisation_constant"]);
    assert_eq!(row["keypoints"]["left_x"].as_array().unwrap().len(), rendered.jpegs.len());
    let times: Vec<f64> = row["frame_times"].as_array().unwrap().iter().map(|t| t.as_f64().unwrap()).collect();
    let sent: Vec<f64> = (0..rendered.jpegs.len()).map(|i| format!("{:.3}", i as f64 / 15.0).parse().unwrap()).collect();
    assert_eq!(times, sent, "the frames' own X-Timestamps");
    assert_eq!(row["evening"], phrase(n)["id"].as_str().unwrap()[..8], "the log's own date");
    assert_eq!(row["decisions"], session["result"]["decisions"]);
}
