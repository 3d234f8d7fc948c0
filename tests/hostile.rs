//! Flaky and hostile clients, against the real server over real sockets: each case asserts the
//! answer, that frames already received are all still there, and that the server then serves a
//! normal phrase.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{http_request, marker_server_with, parse_response, render, Rendered, Server, TempDir};
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
    let rendered = render(0, out.path());
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
    let rendered = render(0, out.path());
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
        loop {
            let session = server.get(&format!("/sessions/{id}")).json();
            if session["state"] == "interrupted" {
                assert_eq!(session["frames_received"], 1, "{id}: {session}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{id} never became interrupted: {session}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    // ...and, once idle, leaves memory by the server's own sweep (no other upload comes to trigger it).
    loop {
        let held = server.get("/stats").json()["analysis"]["sessions_in_memory"].as_u64().unwrap();
        if held == 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{held} sessions still in memory after 60 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(server.open_files() <= files + 2, "files open: {} before, {} after", files, server.open_files());
    assert!(server.threads() <= threads + 2, "threads: {} before, {} after", threads, server.threads());
    a_normal_phrase_is_decided(&server, &rendered, "after-vanish");
}
