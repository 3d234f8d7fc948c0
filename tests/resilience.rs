//! The sound core on the real server over real sockets: bodies built to exhaust the parser get a
//! 4xx and the server serves on; one phrase whose disk writes are stalled (a real kernel-level
//! stall: its frames file is a FIFO nobody reads) stalls nobody else; `kill -9` at moments of a
//! phrase's life, then a restart, loses no decided phrase and no frame the server acknowledged.

mod common;

use common::Served;

use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{frame_part, marker_server, phrase, render, signal_part, ChunkedUpload, Events, Server, TempDir};
use serde_json::Value;

const BOUNDARY: &str = "frame";
const CONTENT_TYPE: &str = "multipart/x-mixed-replace; boundary=frame";

/// POSTs the file `body` to `/stream` with curl; a server that hangs fails the test at 120 s.
fn curl_stream(server: &Server, body: &Path) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "120", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-H", "Content-Type: multipart/x-mixed-replace; boundary=b", "--data-binary"])
        .arg(format!("@{}", body.display()))
        .arg(format!("{}/stream", server.url()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (json, code) = text.rsplit_once('\n').unwrap_or_else(|| panic!("curl: {text} {}", String::from_utf8_lossy(&out.stderr)));
    (code.trim().parse().unwrap_or(0), serde_json::from_str(json).unwrap_or(Value::Null))
}

/// GETs `path` with curl within `--max-time 60`: a handler stalled behind a lock fails the test
/// instead of hanging it. Returns the status and the body.
fn curl_get(server: &Server, path: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "-o", "-", "-w", "\n%{http_code}"])
        .arg(format!("{}{path}", server.url()))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

/// Streams rendered phrase `n` whole (frames as fast as they go, then its log) and returns the
/// answer.
fn stream_phrase(server: &Server, rendered: &common::Rendered, id: &str) -> common::HttpResponse {
    let mut upload = ChunkedUpload::start(server.addr, &format!("/stream?session={id}&fps=15"), CONTENT_TYPE);
    for (i, jpeg) in rendered.jpegs.iter().enumerate() {
        upload.send(&frame_part(BOUNDARY, i, jpeg));
    }
    upload.send(&signal_part(BOUNDARY, std::fs::read(&rendered.log).unwrap()));
    upload.send(format!("--{BOUNDARY}--\r\n").as_bytes());
    upload.finish()
}

#[test]
fn bodies_of_endless_empty_or_headerless_parts_get_a_4xx_and_the_server_serves_on() {
    let out = TempDir::new("resilience-parts");
    let server = marker_server(&out.path().join("results"));
    let bodies: [(&str, Vec<u8>); 4] = [
        ("100,000 header-less parts (--b CRLF CRLF)", b"--b\r\n\r\n".repeat(100_000)),
        ("100,000 header-less empty parts (--b CRLF CRLF CRLF CRLF)", b"--b\r\n\r\n\r\n\r\n".repeat(100_000)),
        ("1,000,000 header-less empty parts", b"--b\r\n\r\n\r\n\r\n".repeat(1_000_000)),
        ("1,000,000 empty image/jpeg parts", b"--b\r\nContent-Type: image/jpeg\r\n\r\n\r\n".repeat(1_000_000)),
    ];
    for (what, body) in bodies {
        let file = out.path().join("body");
        std::fs::write(&file, &body).unwrap();
        let (status, answer) = curl_stream(&server, &file);
        assert!((400..500).contains(&status), "{what}: {status} {answer}");
        assert!(answer["detail"].is_string(), "{what}: {answer}");
        let (health, _) = curl_get(&server, "/health");
        assert_eq!(health, 200, "{what}: the server serves on");
    }
    // No frame of them was kept, and a real phrase is decided right after.
    let rendered = render(1, out.path());
    let answer = stream_phrase(&server, &rendered, "after-the-flood");
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["decision"]["winner"], phrase(1)["legacy_decision"]["winner"]);
    let stored: usize = std::fs::read_dir(out.path().join("results/sessions"))
        .unwrap()
        .map(|e| referee_store::stored_frame_count(&e.unwrap().path()))
        .sum();
    assert_eq!(stored, rendered.jpegs.len(), "only the real phrase's frames are stored");
}

/// A FIFO at `path` whose pipe holds one page, opened here for reading (not read): whoever
/// writes more than a page into it blocks in the kernel until this side reads.
fn stalled_fifo(path: &Path) -> std::fs::File {
    let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o644) }, 0, "mkfifo: {}", std::io::Error::last_os_error());
    // Non-blocking open: a FIFO's reader would otherwise wait for its writer.
    // SAFETY: a valid path; the descriptor is owned by the File made from it.
    let fd = unsafe { libc::open(name.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
    assert!(fd >= 0, "open the FIFO: {}", std::io::Error::last_os_error());
    // SAFETY: fd is an open pipe.
    let size = unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, 4096) };
    assert!(size >= 4096, "F_SETPIPE_SZ: {}", std::io::Error::last_os_error());
    // Reads block from here on (the drain at the end waits for the writer's bytes).
    // SAFETY: fd is open; clearing O_NONBLOCK only changes how reads wait.
    unsafe { libc::fcntl(fd, libc::F_SETFL, 0) };
    // SAFETY: fd is open and owned by nobody else.
    unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) }
}

/// Waits (poll(2), no timer loop) until the FIFO holds bytes: the writer is in its write.
fn wait_until_written(fifo: &std::fs::File, within: Duration) {
    let mut fds = libc::pollfd { fd: std::os::fd::AsRawFd::as_raw_fd(fifo), events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut fds, 1, within.as_millis() as i32) };
    assert_eq!(ready, 1, "the server never wrote to the stalled phrase's frames");
}

#[test]
fn a_phrase_whose_disk_writes_stall_stalls_no_one_else() {
    let out = TempDir::new("resilience-stall");
    let results = out.path().join("results");
    let server = marker_server(&results);
    // The stalled phrase's frames file is a FIFO with a one-page pipe that nobody reads: the
    // server's first write of a 16 KiB frame into it blocks in the kernel, as on a dead disk.
    let stalled_dir = results.join("sessions/stalled");
    std::fs::create_dir_all(&stalled_dir).unwrap();
    let mut fifo = stalled_fifo(&stalled_dir.join("frames.mjpeg"));
    let big_frame: Vec<u8> = std::iter::once([0xFF, 0xD8]).flatten().chain((0..16_384u32).map(|i| (i % 251) as u8)).collect();
    let mut stalled = ChunkedUpload::start(server.addr, "/stream?session=stalled", CONTENT_TYPE);
    stalled.send(&frame_part(BOUNDARY, 0, &big_frame));
    stalled.send(&frame_part(BOUNDARY, 1, &big_frame));
    wait_until_written(&fifo, Duration::from_secs(120));

    // Everything else goes on: the health check, the metrics, the index, the stalled phrase's
    // own progress, and another piste's whole phrase to its verdict.
    for path in ["/health", "/metrics", "/stats", "/sessions", "/sessions/stalled"] {
        let (status, body) = curl_get(&server, path);
        assert_eq!(status, 200, "{path} while a phrase's disk is stalled: {body}");
    }
    let (_, progress) = curl_get(&server, "/sessions/stalled");
    let progress: Value = serde_json::from_str(&progress).unwrap();
    assert_eq!(progress["frames_received"], 0, "the first frame is still in its write");
    let rendered = render(3, out.path());
    let answer = stream_phrase(&server, &rendered, "other-piste");
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["decision"]["winner"], phrase(3)["legacy_decision"]["winner"]);

    // The disk comes back: the stalled phrase's frames are all stored, none lost.
    let drain = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        fifo.read_to_end(&mut bytes).unwrap();
        bytes
    });
    stalled.send(format!("--{BOUNDARY}--\r\n").as_bytes());
    let reply = stalled.finish();
    assert_eq!(reply.status, 202, "{}", String::from_utf8_lossy(&reply.body));
    assert_eq!(reply.json()["frames_received"], 2);
    let written = drain.join().unwrap();
    assert_eq!(written.len(), 2 * big_frame.len(), "both frames reached the file");
}

/// SIGKILL (a dropped `Server` is killed with it) and reaped.
fn kill_9(server: Server) {
    drop(server);
}

#[test]
fn kill_9_at_any_moment_then_a_restart_loses_no_decided_phrase_and_no_stored_frame() {
    let out = TempDir::new("resilience-kill");
    let results: PathBuf = out.path().join("results");
    let decided = render(4, out.path());
    let cut = render(2, out.path());

    // A decided phrase, then a kill right after its answer.
    let server = marker_server(&results);
    let answer = stream_phrase(&server, &decided, "decided");
    assert_eq!(answer.status, 200);
    let verdict = answer.json();
    kill_9(server);

    // A phrase cut by kills mid-upload, three times over: each time, every frame the server had
    // said it stored (its events) is there after the restart, and the upload resumes from there.
    let stops = [cut.jpegs.len() / 4, cut.jpegs.len() / 2, 3 * cut.jpegs.len() / 4];
    let mut next = 0usize;
    for stop in stops {
        let server = marker_server(&results);
        let known = curl_get(&server, "/sessions/decided");
        assert_eq!(known.0, 200);
        let known: Value = serde_json::from_str(&known.1).unwrap();
        assert_eq!(known["state"], "done", "the decided phrase is still decided");
        assert_eq!(known["result"]["decision"], verdict["decision"]);
        if next > 0 {
            let (_, p) = curl_get(&server, "/sessions/cut");
            let p: Value = serde_json::from_str(&p).unwrap();
            assert!(p["frames_received"].as_u64().unwrap() as usize >= next, "frames acknowledged before the kill are kept: {p}");
            next = p["next_frame_index"].as_u64().unwrap() as usize;
        }
        let mut upload = ChunkedUpload::start(server.addr, "/stream?session=cut&fps=15", CONTENT_TYPE);
        upload.send(&frame_part(BOUNDARY, next, &cut.jpegs[next]));
        let mut events = Events::open_when_known(server.addr, "cut");
        for i in next + 1..stop {
            upload.send(&frame_part(BOUNDARY, i, &cut.jpegs[i]));
        }
        // A part ends at the next delimiter: the last one sent is not stored yet.
        events.wait_for(|p| p["frames_received"].as_u64() == Some(stop as u64 - 1));
        next = stop - 1;
        kill_9(server);
        drop(upload);
    }
    // The last restart: the rest of the phrase and its log, and the verdict of the whole.
    let server = marker_server(&results);
    let (_, p) = curl_get(&server, "/sessions/cut");
    let p: Value = serde_json::from_str(&p).unwrap();
    assert!(p["frames_received"].as_u64().unwrap() as usize >= next, "{p}");
    let resume_at = p["next_frame_index"].as_u64().unwrap() as usize;
    let mut upload = ChunkedUpload::start(server.addr, "/stream?session=cut&fps=15", CONTENT_TYPE);
    for (i, jpeg) in cut.jpegs.iter().enumerate().skip(resume_at) {
        upload.send(&frame_part(BOUNDARY, i, jpeg));
    }
    upload.send(&signal_part(BOUNDARY, std::fs::read(&cut.log).unwrap()));
    upload.send(format!("--{BOUNDARY}--\r\n").as_bytes());
    let answer = upload.finish();
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    let answer = answer.json();
    assert_eq!(answer["stream"]["frames_received"], cut.jpegs.len(), "every frame of the phrase, over four servers");
    assert_eq!(answer["metadata"]["frames_processed"], cut.jpegs.len());
    assert_eq!(answer["decision"]["winner"], phrase(2)["legacy_decision"]["winner"]);
}

#[test]
fn sigterm_exits_0_with_every_thread_joined_even_with_an_upload_and_an_event_stream_open() {
    let out = TempDir::new("resilience-term");
    let mut server = common::marker_server_with(&out.path().join("results"), &["--shutdown-grace-seconds", "1"]);
    let jpegs = common::black_jpegs(out.path(), 2);
    // An upload that stops sending (the grace cuts it), and an event stream that never ends by
    // itself.
    let mut upload = ChunkedUpload::start(server.addr, "/stream?session=open", CONTENT_TYPE);
    upload.send(&frame_part(BOUNDARY, 0, &jpegs[0]));
    upload.send(&frame_part(BOUNDARY, 1, &jpegs[1]));
    let mut events = Events::open_when_known(server.addr, "open");
    events.wait_for(|p| p["frames_received"] == 1);
    let (status, log) = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    let joined = log.lines().find(|l| l.contains("stopped: every thread joined")).unwrap_or_else(|| panic!("{log}"));
    assert!(joined.contains("pose_scheduler=true"), "{joined}");
    assert!(!joined.contains("analysis_threads=0"), "{joined}");
    drop(upload);
}

#[test]
fn kill_9_while_the_verdict_is_being_made_then_a_restart_decides_it() {
    let out = TempDir::new("resilience-kill-deciding");
    let results = out.path().join("results");
    let rendered = render(5, out.path());
    let server = marker_server(&results);
    // The whole phrase and its log, sent without waiting for the answer.
    let mut body = Vec::new();
    for (i, jpeg) in rendered.jpegs.iter().enumerate() {
        body.extend(frame_part(BOUNDARY, i, jpeg));
    }
    body.extend(signal_part(BOUNDARY, std::fs::read(&rendered.log).unwrap()));
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    let mut upload = std::net::TcpStream::connect(server.addr).unwrap();
    let head = format!("POST /stream?session=deciding HTTP/1.1\r\nHost: x\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {}\r\n\r\n", body.len());
    std::io::Write::write_all(&mut upload, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut upload, &body).unwrap();
    // Killed once every frame and the log are in and the call is being made (or, on a fast
    // machine, just made).
    let mut events = Events::open_when_known(server.addr, "deciding");
    let mut seen = Vec::new();
    while let Some((name, data)) = events.next() {
        seen.push(name.clone());
        if name == "verdict" || data["state"] == "analysing" {
            break;
        }
    }
    assert!(seen.last().is_some_and(|n| n == "verdict" || n == "progress"), "{seen:?}");
    kill_9(server);
    drop(upload);
    // After the restart the phrase is decided, by itself, with the legacy winner.
    let server = marker_server(&results);
    let mut events = Events::open(server.addr, "deciding");
    let verdict = loop {
        match events.next() {
            Some((name, data)) if name == "verdict" => break data,
            Some((name, data)) if name == "failed" => panic!("the phrase failed after the restart: {data}"),
            Some(_) => {}
            None => panic!("the event stream ended without a verdict"),
        }
    };
    assert_eq!(verdict["decision"]["winner"], phrase(5)["legacy_decision"]["winner"]);
    assert_eq!(verdict["metadata"]["frames_processed"], rendered.jpegs.len());
}
