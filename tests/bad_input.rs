//! The bad-input suite: each case against the real server over a socket, asserting the status,
//! the detail, that frames already received are all still there, and that the server then
//! decides a normal phrase.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::{form_body, http_request, marker_server_with, render, shared_marker_server, HttpResponse, Rendered, Served, TempDir};

const MIXED: &str = "multipart/x-mixed-replace; boundary=frame";

fn frame_part(index: u64, jpeg: &[u8]) -> Vec<u8> {
    let mut part = format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Index: {index}\r\n\r\n", jpeg.len()).into_bytes();
    part.extend_from_slice(jpeg);
    part.extend_from_slice(b"\r\n");
    part
}

fn log_part(log: &[u8]) -> Vec<u8> {
    let mut part = b"--frame\r\nContent-Type: text/plain\r\n\r\n".to_vec();
    part.extend_from_slice(log);
    part.extend_from_slice(b"\r\n");
    part
}

fn frames(rendered: &Rendered, range: std::ops::Range<usize>) -> Vec<u8> {
    range.flat_map(|i| frame_part(i as u64, &rendered.jpegs[i])).collect()
}

fn log_of(rendered: &Rendered) -> Vec<u8> {
    std::fs::read(&rendered.log).unwrap()
}

/// Starts a chunked `/stream` upload of session `id` and sends `first` as its first chunk; the
/// connection stays open for the rest.
fn open_upload(server: &impl Served, id: &str, first: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.address()).unwrap();
    let head = format!("POST /stream?session={id} HTTP/1.1\r\nHost: x\r\nContent-Type: {MIXED}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    write!(stream, "{:x}\r\n", first.len()).unwrap();
    stream.write_all(first).unwrap();
    stream.write_all(b"\r\n").unwrap();
    stream
}

fn post(server: &impl Served, id: &str, body: &[u8]) -> HttpResponse {
    http_request(server.address(), "POST", &format!("/stream?session={id}"), &[("Content-Type", MIXED)], body)
}

/// The status and the detail, which every error carries.
fn refused(r: &HttpResponse, status: u16, words: &str) {
    let text = String::from_utf8_lossy(&r.body);
    assert_eq!(r.status, status, "{text}");
    let detail = r.json()["detail"].as_str().unwrap_or_else(|| panic!("no detail in {text}")).to_owned();
    assert!(detail.contains(words), "detail {detail:?} should say {words:?}");
}

/// The session holds exactly these frames, byte for byte.
fn kept(server: &impl Served, id: &str, rendered: &Rendered, count: usize) {
    let session = server.get(&format!("/sessions/{id}")).json();
    assert_eq!(session["frames_received"], count, "{id}: {session}");
    let stored = server.get(&format!("/sessions/{id}/artifacts/frames.mjpeg")).body;
    assert_eq!(stored, rendered.jpegs[..count].concat(), "{id}: the stored frames are the ones sent");
}

fn decided(server: &impl Served, rendered: &Rendered, id: &str) -> serde_json::Value {
    let mut body = frames(rendered, 0..rendered.jpegs.len());
    body.extend(log_part(&log_of(rendered)));
    body.extend_from_slice(b"--frame--\r\n");
    let r = post(server, id, &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

#[test]
fn malformed_bodies_are_400_and_keep_what_came_before() {
    let out = TempDir::new("bad-malformed");
    let server = shared_marker_server();
    let rendered = render(14, out.path());

    // A part whose headers never end: the three frames before it are kept.
    let mut body = frames(&rendered, 0..3);
    body.extend_from_slice(b"--frame\r\nContent-Type: image/jpeg\r\nX-Frame-Index: 3\r\n");
    body.extend_from_slice(&[b'x'; 300 * 1024]);
    refused(&post(&server, "torn-headers", &body), 400, "");
    kept(&server, "torn-headers", &rendered, 3);

    // A part header that is not a header at all.
    let mut body = frames(&rendered, 0..2);
    body.extend_from_slice(b"--frame\r\nthis is no header\r\n\r\nabc\r\n--frame--\r\n");
    refused(&post(&server, "bad-header", &body), 400, "");
    kept(&server, "bad-header", &rendered, 2);

    // A body that ends mid-part, without the closing delimiter.
    let mut body = frames(&rendered, 0..2);
    body.extend_from_slice(&frame_part(2, &rendered.jpegs[2])[..100]);
    refused(&post(&server, "cut-short", &body), 400, "");
    kept(&server, "cut-short", &rendered, 2);

    // A multipart content type without its boundary.
    let r = http_request(server.addr, "POST", "/stream?session=no-boundary", &[("Content-Type", "multipart/x-mixed-replace")], &frames(&rendered, 0..1));
    refused(&r, 400, "boundary");
    // Not multipart at all.
    let r = http_request(server.addr, "POST", "/stream?session=json", &[("Content-Type", "application/json")], b"{}");
    refused(&r, 415, "");

    // LF-only line ends: multipart wants CRLF, and the answer says the body is not one.
    let mut body = Vec::new();
    for (i, jpeg) in rendered.jpegs.iter().enumerate() {
        body.extend(format!("--frame\nContent-Type: image/jpeg\nContent-Length: {}\nX-Frame-Index: {i}\n\n", jpeg.len()).into_bytes());
        body.extend_from_slice(jpeg);
        body.push(b'\n');
    }
    body.extend(b"--frame\nContent-Type: text/plain\n\n".iter());
    body.extend(log_of(&rendered));
    body.extend(b"\n--frame--\n".iter());
    refused(&post(&server, "lf-only", &body), 400, "multipart");

    decided(&server, &rendered, "after-malformed");
    // Every earlier session is intact and can still be resumed to its verdict.
    let mut rest = frames(&rendered, 3..rendered.jpegs.len());
    rest.extend(log_part(&log_of(&rendered)));
    rest.extend_from_slice(b"--frame--\r\n");
    let r = post(&server, "torn-headers", &rest);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"]["frames_analysed"], rendered.jpegs.len());
}

#[test]
fn parts_and_phrases_over_their_limits_are_413() {
    let out = TempDir::new("bad-limits");
    let rendered = render(4, out.path());
    let biggest = rendered.jpegs.iter().map(Vec::len).max().unwrap();
    let three: usize = rendered.jpegs[..3].iter().map(Vec::len).sum();
    let (part_limit, phrase_limit) = ((biggest + 1).to_string(), (three + 1).to_string());
    let server = marker_server_with(&out.path().join("results"), &["--max-frame-bytes", &part_limit, "--max-phrase-bytes", &phrase_limit]);

    let mut body = frames(&rendered, 0..2);
    body.extend(frame_part(2, &vec![0xAB; biggest + 100]));
    refused(&post(&server, "big-part", &body), 413, "");
    kept(&server, "big-part", &rendered, 2);

    // The limit counts what came over the wire (part headers too): two or three frames fit.
    let body = frames(&rendered, 0..5);
    refused(&post(&server, "big-phrase", &body), 413, "limit");
    let held = server.get("/sessions/big-phrase").json()["frames_received"].as_u64().unwrap() as usize;
    assert!((2..=3).contains(&held), "{held} frames held");
    kept(&server, "big-phrase", &rendered, held);
    drop(server);

    let server = marker_server_with(&out.path().join("results"), &[]);
    decided(&server, &rendered, "after-limits");
    kept(&server, "big-phrase", &rendered, held);
}

#[test]
fn bad_frames_bad_logs_and_bad_ids_get_clear_answers() {
    let out = TempDir::new("bad-content");
    let server = shared_marker_server();
    let rendered = render(5, out.path());
    let n = rendered.jpegs.len();

    // A corrupt JPEG among good ones is stored, skipped by the analysis, and counted.
    let mut body = frames(&rendered, 0..3);
    body.extend(frame_part(3, b"\xFF\xD8 this is not really a JPEG"));
    for i in 3..n {
        body.extend(frame_part(i as u64 + 1, &rendered.jpegs[i]));
    }
    body.extend(log_part(&log_of(&rendered)));
    body.extend_from_slice(b"--frame--\r\n");
    let r = post(&server, "one-corrupt", &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"]["corrupt_frames"], 1);
    assert_eq!(r.json()["stream"]["frames_received"], n + 1);
    assert_eq!(r.json()["stream"]["frames_analysed"], n + 1);

    // A JPEG whose header declares 30000 × 30000 is not decoded (nothing that big is allocated):
    // it is skipped as corrupt, and the phrase decided.
    let mut huge = rendered.jpegs[0].clone();
    let sof = (0..huge.len() - 1).find(|&i| huge[i] == 0xFF && huge[i + 1] == 0xC0).expect("a baseline frame header");
    huge[sof + 5..sof + 9].copy_from_slice(&[0x75, 0x30, 0x75, 0x30]);
    let mut body = frame_part(0, &huge);
    for i in 0..n {
        body.extend(frame_part(i as u64 + 1, &rendered.jpegs[i]));
    }
    body.extend(log_part(&log_of(&rendered)));
    body.extend_from_slice(b"--frame--\r\n");
    let r = post(&server, "huge-header", &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"]["corrupt_frames"], 1);

    // Zero frames and a log: nothing to decide on.
    let mut body = log_part(&log_of(&rendered));
    body.extend_from_slice(b"--frame--\r\n");
    let r = post(&server, "no-frames", &body);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"].is_string());

    // A log that is not text is refused (400), one that is text but no log too (422); neither is
    // kept, the frames are.
    let mut body = frames(&rendered, 0..2);
    body.extend(log_part(b"\x00\x01 garbage, not a scoring-box log \xFF"));
    body.extend_from_slice(b"--frame--\r\n");
    refused(&post(&server, "binary-log", &body), 400, "UTF-8");
    kept(&server, "binary-log", &rendered, 2);
    let mut body = frames(&rendered, 0..4);
    body.extend(log_part(b"garbage, not a scoring-box log"));
    body.extend_from_slice(b"--frame--\r\n");
    let r = post(&server, "garbage-log", &body);
    assert_eq!(r.status, 422, "{}", String::from_utf8_lossy(&r.body));
    kept(&server, "garbage-log", &rendered, 4);
    assert_eq!(server.get("/sessions/garbage-log").json()["signal_received"], false);

    // A log where neither fencer hit has no touch to call.
    let text = String::from_utf8(log_of(&rendered)).unwrap();
    assert!(text.contains("Fencer 1: HIT, Fencer 2: HIT"), "the fixture's log is a double touch: {text}");
    let no_hit = text.replace("Fencer 1: HIT, Fencer 2: HIT", "Fencer 1: MISS, Fencer 2: MISS");
    let r = http_request(server.addr, "PUT", "/sessions/garbage-log/signal", &[], no_hit.as_bytes());
    refused(&r, 422, "No light");
    kept(&server, "garbage-log", &rendered, 4);

    // Session ids that try to leave the sessions' directory.
    for id in ["..%2F..%2Fetc", "../x", "a%2Fb", "..", "x.y"] {
        let r = http_request(server.addr, "POST", &format!("/stream?session={id}"), &[("Content-Type", MIXED)], &frames(&rendered, 0..1));
        refused(&r, 400, "invalid session id");
    }
    assert_eq!(server.get("/sessions/..%2F..%2Fetc").status, 404);

    // A frame index of u64::MAX is stored (it is the sender's number) but nothing can follow it.
    let mut body = frame_part(u64::MAX - 1, &rendered.jpegs[0]);
    body.extend(frame_part(u64::MAX, &rendered.jpegs[1]));
    refused(&post(&server, "max-index", &body), 400, "too large");
    kept(&server, "max-index", &rendered, 1);

    // A second upload to a finished session.
    let first = decided(&server, &rendered, "finished");
    refused(&post(&server, "finished", &frames(&rendered, 0..2)), 409, "already complete");
    assert_eq!(server.get("/sessions/finished").json()["result"]["decision"], first["decision"]);
    kept(&server, "finished", &rendered, n);

    // Files in a session's directory that are not its listed artifacts are not served.
    std::fs::write(server.output.join("sessions/finished/notes.txt"), b"private").unwrap();
    assert_eq!(server.get("/sessions/finished/artifacts/notes.txt").status, 404);
    assert_eq!(server.get("/sessions/finished/artifacts/upload.complete").status, 404);
    assert_eq!(server.get("/sessions/finished/artifacts/timeline.json").status, 200);

    decided(&server, &rendered, "after-bad-content");
}

#[test]
fn the_seventeenth_phrase_at_once_is_503_and_the_sixteen_go_on() {
    let out = TempDir::new("bad-seventeen");
    // Uploads wait on each other here for longer than the default body idle time.
    let server = marker_server_with(&out.path().join("results"), &["--body-idle-seconds", "600"]);
    let rendered = render(49, out.path());
    let n = rendered.jpegs.len();
    let mut open: Vec<(TcpStream, String)> = Vec::new();
    for k in 0..16 {
        let id = format!("busy-{k}");
        open.push((open_upload(&server, &id, &frame_part(0, &rendered.jpegs[0])), id));
    }
    // Each of the sixteen is receiving (its session is open) before the seventeenth comes.
    for (_, id) in &open {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while server.get(&format!("/sessions/{id}")).status != 200 {
            assert!(std::time::Instant::now() < deadline, "{id} never opened");
            // A paced poll (of an HTTP route or /proc): the server sends no event for this; the loop ends on what it observes.
            std::thread::sleep(common::POLL_PACE);
        }
    }
    let r = post(&server, "seventeenth", &frames(&rendered, 0..1));
    refused(&r, 503, "streaming already");
    assert!(r.header("retry-after").is_some());
    // The sixteen finish, each to its verdict.
    let mut rest = frames(&rendered, 1..n);
    rest.extend(log_part(&log_of(&rendered)));
    rest.extend_from_slice(b"--frame--\r\n");
    let finishing: Vec<_> = open
        .into_iter()
        .map(|(mut stream, id)| {
            let rest = rest.clone();
            std::thread::spawn(move || {
                write!(stream, "{:x}\r\n", rest.len()).unwrap();
                stream.write_all(&rest).unwrap();
                stream.write_all(b"\r\n0\r\n\r\n").unwrap();
                let mut raw = Vec::new();
                std::io::Read::read_to_end(&mut stream, &mut raw).unwrap();
                (id, common::parse_response(&raw))
            })
        })
        .collect();
    for done in finishing {
        let (id, r) = done.join().unwrap();
        assert_eq!(r.status, 200, "{id}: {}", String::from_utf8_lossy(&r.body));
        assert_eq!(r.json()["stream"]["frames_analysed"], n, "{id}");
    }
    decided(&server, &rendered, "seventeenth");
}

#[test]
fn killed_mid_phrase_the_server_resumes_it_after_the_restart() {
    let out = TempDir::new("bad-kill9");
    let results = out.path().join("results");
    let rendered = render(7, out.path());
    let n = rendered.jpegs.len();
    let half = n / 2;
    let server = marker_server_with(&results, &[]);
    let stream = open_upload(&server, "killed", &frames(&rendered, 0..half));
    // A part is taken once the next delimiter shows it whole: the last one sent waits.
    common::Events::open_when_known(server.addr, "killed").wait_for(|p| p["frames_received"] == half - 1);
    drop(server); // SIGKILL, mid-phrase
    drop(stream);

    let server = marker_server_with(&results, &[]);
    let session = server.get("/sessions/killed").json();
    assert_eq!(session["state"], "interrupted", "{session}");
    assert_eq!(session["next_frame_index"], half - 1);
    kept(&server, "killed", &rendered, half - 1);
    let mut rest = frames(&rendered, half - 1..n);
    rest.extend(log_part(&log_of(&rendered)));
    rest.extend_from_slice(b"--frame--\r\n");
    let r = post(&server, "killed", &rest);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["stream"]["frames_analysed"], n);
    assert_eq!(r.json()["decision"]["winner"], common::phrase(7)["legacy_decision"]["winner"]);
}

#[test]
fn analyze_forms_have_limits_and_take_a_session_slot() {
    let out = TempDir::new("bad-analyze");
    let server = marker_server_with(&out.path().join("results"), &["--max-form-parts", "3", "--max-log-bytes", "4096", "--max-sessions", "1", "--body-idle-seconds", "600"]);
    let rendered = render(5, out.path());
    let (video, log) = (std::fs::read(&rendered.avi).unwrap(), log_of(&rendered));
    assert!(log.len() < 4096, "the fixture's log fits the limit");
    let analyze = |body: &[u8]| http_request(server.addr, "POST", "/analyze", &[("Content-Type", "multipart/form-data; boundary=XyZ")], body);

    let r = analyze(&form_body(&[("video", Some("p.avi"), None, &video), ("signal", Some("p.txt"), None, &log), ("a", None, None, b"1"), ("b", None, None, b"2")]));
    refused(&r, 413, "more than 3 parts");
    let long_log = [log.as_slice(), &vec![b'\n'; 4096]].concat();
    let r = analyze(&form_body(&[("video", Some("p.avi"), None, &video), ("signal", Some("p.txt"), None, &long_log)]));
    refused(&r, 413, "\"signal\" is over 4096 bytes");
    let r = analyze(&form_body(&[("video", Some("p.avi"), None, &video), ("signal", Some("p.txt"), None, &log), ("save_overlay", None, None, &vec![b'x'; 65 * 1024])]));
    refused(&r, 413, "\"save_overlay\" is over");

    // A streamed phrase holds the one slot: /analyze waits its turn with a 503.
    let mut held = open_upload(&server, "held", &frame_part(0, &rendered.jpegs[0]));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.get("/sessions/held").status != 200 {
        assert!(std::time::Instant::now() < deadline, "the held upload never opened");
        // A paced poll (of an HTTP route or /proc): the server sends no event for this; the loop ends on what it observes.
        std::thread::sleep(common::POLL_PACE);
    }
    // Refused before its video is read, the client still sending it reads the answer whole.
    let whole = form_body(&[("video", Some("p.avi"), None, &video), ("signal", Some("p.txt"), None, &log)]);
    assert!(whole.len() > 256 << 10, "a video bigger than the sockets' buffers: {} bytes", whole.len());
    refused(&analyze(&whole), 503, "streaming already");
    let small = form_body(&[("video", Some("p.avi"), None, b"not yet a video"), ("signal", Some("p.txt"), None, &log)]);
    // Once it ends, /analyze is served.
    held.write_all(b"0\r\n\r\n").unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let r = analyze(&small);
        if r.status != 503 {
            refused(&r, 415, "cannot read the video");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the slot was never freed");
        // A paced poll (of an HTTP route or /proc): the server sends no event for this; the loop ends on what it observes.
        std::thread::sleep(common::POLL_PACE);
    }
    let r = analyze(&whole);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["decision"]["winner"], common::phrase(5)["legacy_decision"]["winner"]);
}
