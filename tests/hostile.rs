//! Flaky and hostile clients, against the real server over real sockets: each case asserts the
//! answer, that frames already received are all still there, and that the server then serves a
//! normal phrase.

mod common;

use common::Served;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{http_request, marker_server_with, parse_response, render, repo, Rendered, Server, TempDir};
use referee_wire::PartWriter;

const CONTENT_TYPE: &str = "Content-Type";

/// A phrase's whole body, frames then log, with its content type.
fn phrase_body(rendered: &Rendered) -> (String, Vec<u8>) {
    let mut parts = PartWriter::new();
    let mut body = Vec::new();
    for (i, jpeg) in rendered.jpegs.iter().enumerate() {
        body.extend_from_slice(&parts.frame(i as u64, i as f64 / 15.0, jpeg));
    }
    body.extend_from_slice(&parts.signal_and_close(&std::fs::read(&rendered.log).unwrap()));
    (parts.content_type(), body)
}

/// Posts a whole phrase and expects its verdict.
fn a_normal_phrase_is_decided(server: &Server, rendered: &Rendered, id: &str) {
    let (content_type, body) = phrase_body(rendered);
    let r = http_request(server.addr, "POST", &format!("/stream?session={id}"), &[(CONTENT_TYPE, &content_type)], &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["decision"]["winner"].is_string());
}

/// Reads until the server closes the connection (or answers and closes); returns what came.
/// The socket's read timeout is only a guard against a server that never does.
fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("the server kept the connection open ({e}); got {:?}", String::from_utf8_lossy(&got)),
        }
    }
}

fn chunk(stream: &mut TcpStream, bytes: &[u8]) {
    write!(stream, "{:x}\r\n", bytes.len()).unwrap();
    stream.write_all(bytes).unwrap();
    stream.write_all(b"\r\n").unwrap();
}

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).unwrap()
}

#[test]
fn half_sent_headers_are_cut_after_the_header_timeout() {
    let out = TempDir::new("hostile-headers");
    let server = marker_server_with(&out.path().join("results"), &["--header-timeout-seconds", "1"]);
    let mut slow = connect(server.addr);
    slow.write_all(format!("POST /stream HTTP/1.1\r\nHost: {}\r\nContent-Ty", server.addr).as_bytes()).unwrap();
    let answer = read_until_closed(&mut slow);
    assert!(answer.is_empty() || answer.starts_with(b"HTTP/1.1 408"), "{:?}", String::from_utf8_lossy(&answer));
    assert_eq!(server.get("/health").status, 200, "the server serves on");
}

#[test]
fn a_stalled_upload_is_interrupted_keeps_its_frames_and_frees_its_slot() {
    let out = TempDir::new("hostile-stall");
    let server = marker_server_with(&out.path().join("results"), &["--body-idle-seconds", "1", "--max-sessions", "1"]);
    let rendered = render(11, out.path());
    let mut parts = PartWriter::new();
    let mut stalled = connect(server.addr);
    let head = format!(
        "POST /stream?session=stalled HTTP/1.1\r\nHost: {}\r\n{CONTENT_TYPE}: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        server.addr,
        parts.content_type()
    );
    stalled.write_all(head.as_bytes()).unwrap();
    for (i, jpeg) in rendered.jpegs.iter().enumerate().take(3) {
        chunk(&mut stalled, &parts.frame(i as u64, i as f64 / 15.0, jpeg));
    }
    // The camera laptop goes quiet; the server gives up on the body and answers.
    let answer = parse_response(&read_until_closed(&mut stalled));
    assert_eq!(answer.status, 408, "{}", String::from_utf8_lossy(&answer.body));
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("no data came for 1 s") && detail.contains("3 frames are kept"), "{detail}");
    let session = server.get("/sessions/stalled").json();
    assert_eq!(session["state"], "interrupted", "{session}");
    assert_eq!(session["frames_received"], 3, "frames received before the stall are kept");
    let stored = server.get("/sessions/stalled/artifacts/frames.mjpeg").body;
    assert_eq!(stored, rendered.jpegs[..3].concat());
    // Its slot is free (one allowed): another phrase is decided, and the stalled one resumes.
    a_normal_phrase_is_decided(&server, &rendered, "after-stall");
    a_normal_phrase_is_decided(&server, &rendered, "stalled");
    let resumed = server.get("/sessions/stalled").json();
    assert_eq!(resumed["frames_received"], rendered.jpegs.len(), "resumed by index, no frame twice");
}

#[test]
fn a_body_with_no_multipart_part_is_400() {
    let out = TempDir::new("hostile-garbage");
    let server = marker_server_with(&out.path().join("results"), &[]);
    let garbage = "this is not multipart at all".repeat(100);
    let r = http_request(server.addr, "POST", "/stream?session=garbage", &[(CONTENT_TYPE, "multipart/x-mixed-replace; boundary=frame")], garbage.as_bytes());
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"].as_str().unwrap().contains("no multipart part"), "{}", String::from_utf8_lossy(&r.body));
    // An empty but well-formed body (the closing delimiter alone) is not garbage: it opens the
    // session and waits for frames and the log.
    let empty = http_request(server.addr, "POST", "/stream?session=empty", &[(CONTENT_TYPE, "multipart/x-mixed-replace; boundary=frame")], b"--frame--\r\n");
    assert_eq!(empty.status, 202, "{}", String::from_utf8_lossy(&empty.body));
    let rendered = render(2, out.path());
    a_normal_phrase_is_decided(&server, &rendered, "after-garbage");
}

#[test]
fn uploads_that_vanish_leave_no_threads_files_or_memory_behind() {
    let out = TempDir::new("hostile-vanish");
    let server = marker_server_with(&out.path().join("results"), &["--session-idle-seconds", "1"]);
    let rendered = render(11, out.path());
    a_normal_phrase_is_decided(&server, &rendered, "warm");
    let (files, threads) = (server.open_files(), server.threads());
    // One after another (at once, the 17th would rightly get 503), each kept, interrupted, with
    // its one frame, once the server has seen it go.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    for k in 0..40 {
        let mut parts = PartWriter::new();
        let mut gone = connect(server.addr);
        let id = format!("gone-{k}");
        let head = format!(
            "POST /stream?session={id} HTTP/1.1\r\nHost: {}\r\n{CONTENT_TYPE}: {}\r\nTransfer-Encoding: chunked\r\n\r\n",
            server.addr,
            parts.content_type()
        );
        gone.write_all(head.as_bytes()).unwrap();
        chunk(&mut gone, &parts.frame(0, 0.0, &rendered.jpegs[k % rendered.jpegs.len()]));
        drop(gone); // the laptop vanishes mid-phrase
        // Awaited on the session's events (its progress says when the cut is seen).
        let session = common::Events::open_when_known(server.addr, &id).wait_for(|p| p["state"] == "interrupted");
        assert_eq!(session["frames_received"], 1, "{id}: {session}");
        assert!(std::time::Instant::now() < deadline, "{id} became interrupted only after the deadline");
    }
    // ...and, once idle, leaves memory by the server's own sweep (no other upload comes to trigger it).
    loop {
        let held = server.get("/stats").json()["analysis"]["sessions_in_memory"].as_u64().unwrap();
        if held == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{held} sessions still in memory after 60 s");
        // A paced poll: the sweep logs nothing and sends no event when sessions leave memory;
        // /stats is the only view of it. The loop ends on what /stats says.
        std::thread::sleep(common::POLL_PACE);
    }
    assert!(server.open_files() <= files + 2, "files open: {} before, {} after", files, server.open_files());
    // Disk work runs on tokio's blocking pool, which keeps a few idle threads for 10 s after
    // use: a handful more than before is that pool, not a thread per vanished upload (40 here).
    assert!(server.threads() <= threads + 8, "threads: {} before, {} after", threads, server.threads());
    a_normal_phrase_is_decided(&server, &rendered, "after-vanish");
}

/// A white JPEG of the same size as `like`.
fn white_jpeg(like: &[u8], dir: &std::path::Path) -> Vec<u8> {
    let frame = dir.join("like.jpg");
    std::fs::write(&frame, like).unwrap();
    let probe = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v", "-show_entries", "stream=width,height", "-of", "csv=p=0"])
        .arg(&frame)
        .output()
        .unwrap();
    let size = String::from_utf8(probe.stdout).unwrap().trim().replace(',', "x");
    let white = dir.join("white.jpg");
    let status = std::process::Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", &format!("color=c=white:s={size}"), "-frames:v", "1", "-q:v", "2"])
        .arg(&white)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(white).unwrap()
}

#[test]
fn a_pose_failure_fails_its_phrase_frees_its_slot_and_a_restart_decides_it_from_disk() {
    // There is no GPU here to run out of memory: a stand-in, the marker model built with
    // `--fail-on-white`, raises libtorch's error as one would, on a batch holding a white frame.
    let out = TempDir::new("hostile-pose-failure");
    let results = out.path().join("results");
    let rendered = render(11, out.path());
    let mut frames = rendered.jpegs.clone();
    frames[5] = white_jpeg(&frames[5], out.path());
    let n = frames.len();
    let body = |frames: &[Vec<u8>]| {
        let mut parts = PartWriter::new();
        let mut body = Vec::new();
        for (i, jpeg) in frames.iter().enumerate() {
            body.extend_from_slice(&parts.frame(i as u64, i as f64 / 15.0, jpeg));
        }
        body.extend_from_slice(&parts.signal_and_close(&std::fs::read(&rendered.log).unwrap()));
        (parts.content_type(), body)
    };
    let post = |server: &Server, id: &str, frames: &[Vec<u8>]| {
        let (content_type, body) = body(frames);
        http_request(server.addr, "POST", &format!("/stream?session={id}"), &[(CONTENT_TYPE, &content_type)], &body)
    };

    let failing = repo().join("models/marker-pose-failing.torchscript");
    let args = ["--model", failing.to_str().unwrap(), "--fisheye-enabled", "false", "--output-dir", results.to_str().unwrap(), "--max-sessions", "1"];
    let mut server = Server::start(&args, &[]);
    server.wait_for("model ready", common::STARTUP);
    let r = post(&server, "oom", &frames);
    assert_eq!(r.status, 500, "{}", String::from_utf8_lossy(&r.body));
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("out of memory") && detail.contains("frames are kept"), "{detail}");
    let session = server.get("/sessions/oom").json();
    assert_eq!(session["state"], "failed", "{session}");
    assert_eq!(session["frames_received"], n, "{session}");
    assert_eq!(server.get("/sessions/oom/artifacts/frames.mjpeg").body, frames.concat(), "every frame is kept");
    // Its slot is free (one allowed) and the server serves on.
    a_normal_phrase_is_decided(&server, &rendered, "after-oom");
    let (status, log) = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "{log}");

    // With a pose model that works, the restart decides the failed phrase from its stored frames,
    // as the same frames posted afresh are decided.
    let server = marker_server_with(&results, &[]);
    let reference = post(&server, "reference", &frames);
    assert_eq!(reference.status, 200, "{}", String::from_utf8_lossy(&reference.body));
    let deadline = std::time::Instant::now() + common::STARTUP;
    let decided = loop {
        let session = server.get("/sessions/oom").json();
        if session["state"] == "done" {
            break session;
        }
        assert!(std::time::Instant::now() < deadline, "the failed phrase was not decided after the restart: {session}");
        // A paced poll of the route: the server logs the verdict just before the session says
        // so, and its events may still show the failure before the restart resumes it.
        std::thread::sleep(common::POLL_PACE);
    };
    assert_eq!(decided["result"]["stream"]["frames_analysed"], n, "{decided}");
    assert_eq!(decided["result"]["decision"], reference.json()["decision"], "{decided}");
}

#[test]
fn connections_over_the_cap_wait_for_a_free_slot() {
    let out = TempDir::new("hostile-connections");
    let server = marker_server_with(&out.path().join("results"), &["--max-connections", "2", "--header-timeout-seconds", "120"]);
    // Two clients hold their connections with half-sent headers.
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(server.addr);
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    // The kernel queues a third; the server takes it only when a slot frees, so it is not answered
    // while both are held (the read timeout is how long this test looks for a wrong answer).
    let mut third = connect(server.addr);
    third.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    third.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut byte = [0u8; 1];
    let early = third.read(&mut byte);
    assert!(matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)), "answered over the cap: {early:?}");
    // One holder goes away: the third is served.
    drop(held.pop());
    let answer = parse_response(&read_until_closed(&mut third));
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    drop(held);
    assert_eq!(server.get("/health").status, 200);
}
