//! Running the service for days: metrics, access logs, graceful shutdown and resume, a full
//! disk, the free-space floor, retention, and `/analyze` results kept apart from sessions. The
//! real server over real sockets; the full disk is a real (small) tmpfs.

mod common;

use common::Served;

use std::process::Command;
use std::time::Duration;

use common::{http_request, marker_server_with, render, HttpResponse, Rendered, Server, TempDir};
use referee_wire::PartWriter;

fn phrase_body(rendered: &Rendered) -> (String, Vec<u8>) {
    let mut parts = PartWriter::new();
    let mut body = Vec::new();
    for (i, jpeg) in rendered.jpegs.iter().enumerate() {
        body.extend_from_slice(&parts.frame(i as u64, i as f64 / 15.0, jpeg));
    }
    body.extend_from_slice(&parts.signal_and_close(&std::fs::read(&rendered.log).unwrap()));
    (parts.content_type(), body)
}

fn post_phrase(server: &Server, rendered: &Rendered, id: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let (content_type, body) = phrase_body(rendered);
    let mut all = vec![("Content-Type", content_type.as_str())];
    all.extend_from_slice(headers);
    http_request(server.addr, "POST", &format!("/stream?session={id}"), &all, &body)
}

/// The value of one sample line (`name{labels} value`) of a Prometheus text exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_count_what_happened_and_the_token_guards_all_but_health_and_metrics() {
    let out = TempDir::new("ops-metrics");
    let mut server = marker_server_with(&out.path().join("results"), &["--token", "s3cret"]);
    let rendered = render(62, out.path());
    let n = rendered.jpegs.len();
    assert_eq!(post_phrase(&server, &rendered, "no-token", &[]).status, 401);
    assert_eq!(server.get("/sessions/no-token").status, 401);
    let r = post_phrase(&server, &rendered, "m-1", &[("Authorization", "Bearer s3cret")]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let winner = r.json()["decision"]["winner"].as_str().unwrap().to_ascii_lowercase();
    assert_eq!(server.get("/health").status, 200, "/health is open");
    let scraped = server.get("/metrics");
    assert_eq!(scraped.status, 200, "/metrics is open");
    assert!(scraped.header("content-type").unwrap().starts_with("text/plain"));
    let text = String::from_utf8(scraped.body).unwrap();
    assert_eq!(sample(&text, "referee_frames_received_total"), Some(n as f64), "{text}");
    assert_eq!(sample(&text, "referee_frames_analysed_total"), Some(n as f64), "{text}");
    assert_eq!(sample(&text, &format!("referee_phrases_total{{route=\"stream\",outcome=\"{winner}\"}}")), Some(1.0), "{text}");
    assert_eq!(sample(&text, "referee_responses_total{route=\"/stream\",status=\"401\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "referee_responses_total{route=\"/stream\",status=\"200\"}"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "referee_responses_total{route=\"/sessions/{id}\",status=\"401\"}"), Some(1.0), "{text}");
    let pose_frames = sample(&text, "referee_pose_ms_per_frame_count").expect("the pose histogram");
    assert!(pose_frames >= n as f64, "{pose_frames} pose observations for {n} frames (and the warm-up)");
    assert_eq!(sample(&text, "referee_verdict_seconds_after_last_byte_count"), Some(1.0), "{text}");
    assert!(sample(&text, "referee_bytes_received_total").unwrap() >= rendered.jpegs.iter().map(Vec::len).sum::<usize>() as f64);
    assert!(text.contains("referee_phrases{state=\""), "phrases in memory by state: {text}");
    assert!(sample(&text, "referee_open_connections").unwrap() >= 1.0, "this scrape's own connection is open");
    assert!(text.contains("referee_pose_backlog") && text.contains("referee_disk_free_bytes"), "{text}");

    // One access-log line per request, in a span naming the session; the token never logged.
    let (_, log) = server.terminate(Duration::from_secs(60));
    let access: Vec<&str> = log.lines().filter(|l| l.contains("access") && l.contains("served")).collect();
    assert!(access.iter().any(|l| l.contains("session=m-1") && l.contains("status=200") && l.contains("path=/stream")), "{}", access.join("\n"));
    assert!(access.iter().any(|l| l.contains("session=no-token") && l.contains("status=401")), "{}", access.join("\n"));
    assert!(log.lines().filter(|l| l.contains("verdict")).all(|l| l.contains("session=m-1")), "{log}");
    assert!(!log.contains("s3cret"), "the token is never logged");
}

#[test]
fn sigterm_lets_running_phrases_finish_and_exits_0() {
    let out = TempDir::new("ops-sigterm");
    let results = out.path().join("results");
    let rendered = render(2, out.path());
    let n = rendered.jpegs.len();

    // An upload in progress when SIGTERM comes is let finish: its client gets the verdict.
    let mut server = marker_server_with(&results, &["--shutdown-grace-seconds", "60"]);
    let (content_type, body) = phrase_body(&rendered);
    let mut upload = std::net::TcpStream::connect(server.addr).unwrap();
    let head = format!("POST /stream?session=graceful HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
    std::io::Write::write_all(&mut upload, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut upload, &body[..body.len() / 2]).unwrap();
    common::Events::open_when_known(server.addr, "graceful").wait_for(|p| p["frames_received"].as_u64().unwrap_or(0) > 0);
    let finisher = std::thread::spawn(move || {
        std::io::Write::write_all(&mut upload, &body[body.len() / 2..]).unwrap();
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut upload, &mut raw).unwrap();
        common::parse_response(&raw)
    });
    let (status, log) = server.terminate(Duration::from_secs(120));
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("shutting down") && log.contains("shut down cleanly"), "{log}");
    let answer = finisher.join().unwrap();
    assert_eq!(answer.status, 200, "{}", String::from_utf8_lossy(&answer.body));
    assert_eq!(answer.json()["stream"]["frames_analysed"], n);

    // An upload that stalls past the grace is cut: exit 0 all the same, its frames kept, and the
    // phrase resumable after the restart.
    let mut server = marker_server_with(&results, &["--shutdown-grace-seconds", "1"]);
    let (content_type, body) = phrase_body(&rendered);
    let mut stalled = std::net::TcpStream::connect(server.addr).unwrap();
    let head = format!("POST /stream?session=stalled HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", body.len());
    std::io::Write::write_all(&mut stalled, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut stalled, &body[..body.len() / 2]).unwrap();
    let held = common::Events::open_when_known(server.addr, "stalled").wait_for(|p| p["frames_received"].as_u64().unwrap_or(0) > 0)["frames_received"].as_u64().unwrap();
    let (status, log) = server.terminate(Duration::from_secs(60));
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    assert!(log.contains("unfinished phrases are kept on disk as interrupted"), "{log}");
    drop(stalled);
    let server = marker_server_with(&results, &[]);
    let session = server.get("/sessions/stalled").json();
    assert_eq!(session["state"], "interrupted", "{session}");
    assert!(session["frames_received"].as_u64().unwrap() >= held, "{session}");
    drop(server);

    // A phrase whose frames and log were all in but that was not decided when the server
    // stopped is decided at the next start, by itself (stored only: `--analysis false`), with
    // the engine its upload asked for (`?engine=v2`), not the restarted server's default.
    let mut server = marker_server_with(&results, &["--analysis", "false"]);
    let (content_type, body) = phrase_body(&rendered);
    let r = http_request(server.addr, "POST", "/stream?session=undecided&engine=v2", &[("Content-Type", content_type.as_str())], &body);
    assert_eq!(r.status, 202, "{}", String::from_utf8_lossy(&r.body));
    let (status, _) = server.terminate(Duration::from_secs(60));
    assert!(status.success());
    let server = marker_server_with(&results, &[]);
    let mut events = common::Events::open(server.addr, "undecided");
    let verdict = loop {
        match events.next() {
            Some((event, data)) if event == "verdict" => break data,
            Some((event, data)) if event == "failed" => panic!("failed: {data}"),
            Some(_) => continue,
            None => panic!("the event stream ended without a verdict"),
        }
    };
    assert_eq!(verdict["stream"]["frames_analysed"], n);
    assert_eq!(verdict["engine"], "v2", "the upload's engine survives the restart");
    assert_eq!(verdict["decision"], verdict["decisions"]["v2"]);
    assert_eq!(verdict["decisions"]["legacy"]["winner"], common::phrase(2)["legacy_decision"]["winner"]);
}

/// A tmpfs of `size` mounted at `dir` for the test's life (this needs root, which CI has).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &std::path::Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"]).arg(dir).status().unwrap();
        assert!(status.success(), "mounting a {size} tmpfs at {} (the full-disk test needs root)", dir.display());
        SmallDisk(dir.to_owned())
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_507_keeps_the_stored_frames_and_the_floor_refuses_new_phrases() {
    let out = TempDir::new("ops-disk");
    let rendered = render(3, out.path());
    let one_frame = rendered.jpegs.iter().map(Vec::len).max().unwrap();
    let disk = SmallDisk::mount(&out.path().join("small"), "4m");
    let sessions = disk.0.join("sessions");
    let results = out.path().join("results");
    let server = marker_server_with(&results, &["--sessions-dir", sessions.to_str().unwrap(), "--min-free-mb", "0", "--session-idle-seconds", "1"]);
    // Frames until the 4 MB disk is full (a whole phrase and its videos fit in it).
    let mut parts = PartWriter::new();
    let mut body = Vec::new();
    let needed = (4 << 20) / one_frame * 2 + 4;
    for i in 0..needed {
        let jpeg = &rendered.jpegs[i % rendered.jpegs.len()];
        body.extend_from_slice(&parts.frame(i as u64, i as f64 / 15.0, jpeg));
    }
    let r = http_request(server.addr, "POST", "/stream?session=filler", &[("Content-Type", &parts.content_type())], &body);
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    let detail = r.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("disk is full") && detail.contains("kept"), "{detail}");
    // What was stored is whole and readable: the frames named by the index, byte for byte.
    let session = server.get("/sessions/filler").json();
    let held = session["frames_received"].as_u64().unwrap() as usize;
    assert!(held > 3, "{session}");
    let stored = server.get("/sessions/filler/artifacts/frames.mjpeg").body;
    let sent: Vec<u8> = (0..held).flat_map(|i| rendered.jpegs[i % rendered.jpegs.len()].clone()).collect();
    assert_eq!(stored[..sent.len()], sent[..], "the stored frames are the ones sent");
    // Room is made (once the idle session has left memory and closed its files, the space is
    // free); the server decides a normal phrase on the same disk.
    let filler = sessions.join("filler");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while server.open_paths().iter().any(|p| p.starts_with(&filler)) {
        assert!(std::time::Instant::now() < deadline, "the interrupted session still holds its files");
        // A paced poll (of an HTTP route or /proc): the server sends no event for this; the loop ends on what it observes.
        std::thread::sleep(common::POLL_PACE);
    }
    std::fs::remove_dir_all(&filler).unwrap();
    let r = post_phrase(&server, &rendered, "after-full", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    drop(server);

    // Below the floor, a new phrase (streamed or /analyze) is 507, and a decided one is still served.
    let server = marker_server_with(&results, &["--sessions-dir", sessions.to_str().unwrap(), "--min-free-mb", "100000000"]);
    let r = post_phrase(&server, &rendered, "over-floor", &[]);
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["detail"].as_str().unwrap().contains("nearly full"));
    let r = http_request(server.addr, "POST", "/analyze", &[("Content-Type", "multipart/form-data; boundary=b")], b"--b--\r\n");
    assert_eq!(r.status, 507, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(server.get("/sessions/after-full").json()["state"], "done");
}

#[test]
fn retention_removes_old_phrases_and_analyze_results_are_not_sessions() {
    let out = TempDir::new("ops-retention");
    let results = out.path().join("results");
    let rendered = render(61, out.path());
    // A decided session, and an /analyze-shaped result directory beside the sessions.
    let server = marker_server_with(&results, &[]);
    assert_eq!(post_phrase(&server, &rendered, "recent", &[]).status, 200);
    assert_eq!(post_phrase(&server, &rendered, "old", &[]).status, 200);
    drop(server);
    assert!(results.join("sessions/recent/analysis_result.json").is_file(), "sessions live under <output>/sessions");
    let analyze_dir = results.join("phrase_20250101T000000Z");
    std::fs::create_dir_all(&analyze_dir).unwrap();
    std::fs::copy(results.join("sessions/recent/analysis_result.json"), analyze_dir.join("analysis_result.json")).unwrap();
    std::fs::copy(&rendered.log, analyze_dir.join("phrase.txt")).unwrap();
    let fresh_result = results.join("fresh_20260101T000000Z");
    std::fs::create_dir_all(&fresh_result).unwrap();
    std::fs::write(fresh_result.join("analysis_result.json"), b"{}").unwrap();
    // An /analyze result is never a session: its files are not served as one.
    let server = marker_server_with(&results, &[]);
    assert_eq!(server.get("/sessions/phrase_20250101T000000Z").status, 404);
    assert_eq!(server.get("/sessions/phrase_20250101T000000Z/artifacts/phrase.txt").status, 404);
    drop(server);
    // Ten days old: the "old" session and the old result.
    for dir in [results.join("sessions/old"), analyze_dir.clone()] {
        let status = Command::new("sh").arg("-c").arg(format!("touch -d '10 days ago' '{0}' '{0}'/*", dir.display())).status().unwrap();
        assert!(status.success());
    }
    let mut server = marker_server_with(&results, &["--retention-days", "7"]);
    // The first sweep runs at start-up (possibly before the model is ready).
    if !server.log.iter().any(|l| l.contains("retention: old phrases removed")) {
        server.wait_for("retention: old phrases removed", Duration::from_secs(60));
    }
    assert!(!results.join("sessions/old").exists() && !analyze_dir.exists(), "ten-day-old phrases are removed");
    assert!(results.join("sessions/recent").is_dir() && fresh_result.is_dir(), "recent ones stay");
    assert_eq!(server.get("/sessions/recent").json()["state"], "done");
    assert_eq!(server.get("/sessions/old").status, 404);
}

#[test]
fn out_of_file_descriptors_the_accept_loop_backs_off_logs_once_and_recovers() {
    let out = TempDir::new("ops-open-files");
    let args = common::marker_args(out.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    // The soft limit is raised to the hard one at start, and said.
    let mut server = Server::start_under(&["prlimit", "--nofile=256:512"], &args, &[]);
    let line = server.wait_for("open-files limit", common::STARTUP);
    assert!(line.contains("soft_before=256") && line.contains("soft=512") && line.contains("hard=512"), "{line}");
    drop(server);

    // With 64 files in all, 100 idle connections run the process out of descriptors: accepting
    // fails, backs off and says so once; once they close, the server serves again.
    let mut server = Server::start_under(&["prlimit", "--nofile=64:64"], &args, &[]);
    server.wait_for("model ready", common::STARTUP);
    let held: Vec<std::net::TcpStream> = (0..100).map(|_| std::net::TcpStream::connect(server.addr).unwrap()).collect();
    server.wait_for("accept failed", Duration::from_secs(60));
    drop(held);
    let recovered = server.wait_for("accepting connections again", Duration::from_secs(60));
    assert_eq!(server.get("/health").status, 200);
    let failures: u64 = recovered.split_whitespace().find_map(|w| w.strip_prefix("failed_accepts=")).unwrap().parse().unwrap();
    assert!(failures >= 1, "{recovered}");
    let warned = server.log.iter().filter(|l| l.contains("accept failed")).count();
    assert_eq!(warned, 1, "one line for the burst of {failures} failed accepts:\n{}", server.log.join("\n"));
}

#[test]
fn uploads_that_send_a_frame_and_vanish_hold_no_file() {
    let out = TempDir::new("ops-vanished");
    let args = common::marker_args(out.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // The open-files limit a service manager gives by default.
    let mut server = Server::start_under(&["prlimit", "--nofile=1024:1024"], &args, &[]);
    server.wait_for("model ready", common::STARTUP);
    let at_start = server.open_files();
    // 3,000 phrases that send one frame (not a JPEG, so no pose runs) and vanish mid-body.
    let head = |id: usize| {
        format!("POST /stream?session=gone-{id} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\nTransfer-Encoding: chunked\r\n\r\n")
    };
    let part = b"--frame\r\nContent-Type: image/jpeg\r\nX-Frame-Index: 0\r\n\r\nnot a jpeg\r\n--frame\r\n";
    let chunk = [format!("{:x}\r\n", part.len()).into_bytes(), part.to_vec(), b"\r\n".to_vec()].concat();
    for id in 0..3000 {
        let mut socket = std::net::TcpStream::connect(server.addr).unwrap();
        std::io::Write::write_all(&mut socket, &[head(id).into_bytes(), chunk.clone()].concat()).unwrap();
        // The body stops mid-phrase; the answer (the upload cut, the phrase kept) is read, so
        // that each is admitted alone, as one piste after another.
        socket.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = Vec::new();
        std::io::Read::read_to_end(&mut socket, &mut answer).unwrap();
        assert_eq!(common::parse_response(&answer).status, 400, "{}", String::from_utf8_lossy(&answer));
    }
    let gone = server.get("/sessions/gone-2999").json();
    assert_eq!((gone["state"].as_str(), gone["frames_received"].as_u64()), (Some("interrupted"), Some(1)));
    let open = server.open_files();
    assert!(open <= at_start + 16, "{open} files open after 3,000 vanished uploads, {at_start} at the start");
    // A phrase sent right after is decided.
    let rendered = render(7, out.path());
    let r = post_phrase(&server, &rendered, "after", &[]);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["decision"]["winner"], common::phrase(7)["legacy_decision"]["winner"]);
    let stored = std::fs::read_dir(out.path().join("sessions")).unwrap().count();
    assert_eq!(stored, 3001, "every vanished phrase's frame is kept");
}
