//! Pose on a real Triton Inference Server (PyPI's nvidia-pytriton: the `tritonserver` binary and
//! its Python backend, on this machine's CPU), serving the same TorchScript as the local
//! backend: the same phrase gives the same keypoints and the same verdict; Triton stopped
//! mid-phrase fails the phrase with 503 and keeps its frames, and once Triton is back the phrase
//! is decided.

mod common;

use common::Served;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{http_request, marker_server_listening, phrase, render, repo, Events, HttpResponse, Rendered, Server, TempDir, STARTUP};
use referee_wire::PartWriter;

/// A Triton server started by the repository's own script, stopped (SIGTERM) on drop.
struct Triton {
    child: Child,
    /// Its gRPC address (`grpc://…`).
    grpc: String,
    /// Its HTTP address.
    http: String,
}

impl Triton {
    fn start(port: u16) -> Triton {
        let install = Command::new(repo().join("scripts/triton.sh")).arg("install").status().unwrap();
        assert!(install.success(), "scripts/triton.sh install");
        let mut child = Command::new(repo().join(".venv-triton/bin/python"))
            .arg(repo().join("scripts/triton/serve.py"))
            .args(["--model", repo().join("models/marker-pose.torchscript").to_str().unwrap()])
            .args(["--http-port", &port.to_string(), "--grpc-port", &(port + 1).to_string(), "--metrics-port", &(port + 2).to_string(), "--threads", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Triton");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("triton ready") => break,
                Some(_) => continue,
                None => panic!("Triton stopped before it was ready"),
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Triton { child, grpc: format!("grpc://127.0.0.1:{}", port + 1), http: format!("http://127.0.0.1:{port}") }
    }

    fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Triton {
    fn drop(&mut self) {
        self.terminate();
    }
}

fn free_port() -> u16 {
    // Three consecutive ports (HTTP, gRPC, metrics): take one and hope the next two are free too,
    // as a bind failure would show at once.
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn analyze(server: &Server, rendered: &Rendered) -> HttpResponse {
    let video = std::fs::read(&rendered.avi).unwrap();
    let log = std::fs::read(&rendered.log).unwrap();
    let mut body = Vec::new();
    for (name, filename, bytes) in [("video", Some("phrase.avi"), video.as_slice()), ("signal", Some("phrase.txt"), log.as_slice()), ("include_keypoints", None, b"true".as_slice())] {
        body.extend_from_slice(b"--b\r\n");
        match filename {
            Some(f) => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n\r\n").as_bytes()),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--b--\r\n");
    http_request(server.addr, "POST", "/analyze", &[("Content-Type", "multipart/form-data; boundary=b")], &body)
}

#[test]
fn triton_gives_the_local_backends_detections_and_a_stop_mid_phrase_loses_nothing() {
    let out = TempDir::new("triton");
    let port = free_port();
    let triton = Triton::start(port);
    let rendered = render(18, out.path());
    let n = rendered.jpegs.len();
    let expected = phrase(18)["legacy_decision"]["winner"].clone();

    // The same video through the local backend and Triton (gRPC and HTTP): the same keypoints,
    // the same decision.
    // (Started together, so that their model loads and warm-ups overlap.)
    let mut local = marker_server_listening(&out.path().join("local"), &[]);
    let mut remote = marker_server_listening(&out.path().join("remote"), &["--pose-backend", "triton", "--triton-url", &triton.grpc, "--triton-retries", "1"]);
    let mut over_http = marker_server_listening(&out.path().join("http"), &["--pose-backend", "triton", "--triton-url", &triton.http]);
    for server in [&mut local, &mut remote, &mut over_http] {
        server.wait_for("model ready", STARTUP);
    }
    let health = remote.get("/health").json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["pose_backend"], "triton");
    assert_eq!(health["pose_backend_reachable"], true);
    let a = analyze(&local, &rendered);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let a = a.json();
    for (protocol, server) in [("gRPC", &remote), ("HTTP", &over_http)] {
        let b = analyze(server, &rendered);
        assert_eq!(b.status, 200, "{protocol}: {}", String::from_utf8_lossy(&b.body));
        let b = b.json();
        assert_eq!(a["decision"], b["decision"], "{protocol}");
        assert_eq!(a["metadata"]["frames_processed"], b["metadata"]["frames_processed"], "{protocol}");
        for series in ["left_x", "left_y", "right_x", "right_y"] {
            let (xs, ys) = (a["keypoints"][series].to_string(), b["keypoints"][series].to_string());
            assert_eq!(xs, ys, "{series}: the same keypoints through Triton over {protocol}");
        }
    }
    drop(over_http);
    let metrics = String::from_utf8(remote.get("/metrics").body).unwrap();
    assert!(metrics.contains("referee_pose_backend{backend=\"triton "), "{metrics}");
    assert!(metrics.contains("referee_pose_backend_reachable{kind=\"triton\"} 1"), "{metrics}");
    drop(local);

    // Triton stops mid-phrase: the phrase fails with 503 and a detail, its frames all kept.
    let mut parts = PartWriter::new();
    let first: Vec<u8> = (0..n / 2).flat_map(|i| parts.frame(i as u64, i as f64 / 15.0, &rendered.jpegs[i]).to_vec()).collect();
    let mut upload = std::net::TcpStream::connect(remote.addr).unwrap();
    let head = format!("POST /stream?session=cut-off HTTP/1.1\r\nHost: x\r\nContent-Type: {}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", parts.content_type(), first.len());
    std::io::Write::write_all(&mut upload, head.as_bytes()).unwrap();
    std::io::Write::write_all(&mut upload, &first).unwrap();
    std::io::Write::write_all(&mut upload, b"\r\n").unwrap();
    Events::open_when_known(remote.addr, "cut-off").wait_for(|p| p["frames_analysed"].as_u64().unwrap_or(0) >= 1);
    triton.stop();
    let mut rest: Vec<u8> = (n / 2..n).flat_map(|i| parts.frame(i as u64, i as f64 / 15.0, &rendered.jpegs[i]).to_vec()).collect();
    rest.extend_from_slice(&parts.signal_and_close(&std::fs::read(&rendered.log).unwrap()));
    std::io::Write::write_all(&mut upload, format!("{:x}\r\n", rest.len()).as_bytes()).unwrap();
    std::io::Write::write_all(&mut upload, &rest).unwrap();
    std::io::Write::write_all(&mut upload, b"\r\n0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut upload, &mut raw).unwrap();
    let answer = common::parse_response(&raw);
    assert_eq!(answer.status, 503, "{}", String::from_utf8_lossy(&answer.body));
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("unavailable") && detail.contains("frames are kept"), "{detail}");
    assert_eq!(remote.get("/sessions/cut-off").json()["frames_received"], n);
    let stored = remote.get("/sessions/cut-off/artifacts/frames.mjpeg").body;
    assert_eq!(stored, rendered.jpegs.concat(), "every frame stored");
    // The server's Triton check logs when what /health says changes: awaited there, then seen.
    remote.wait_for("Triton is not reachable", Duration::from_secs(120));
    assert_eq!(remote.get("/health").json()["pose_backend_reachable"], false);

    // Triton comes back on the same address: the phrase is decided from its stored frames.
    let triton = Triton::start(port);
    remote.wait_for("Triton is reachable again", Duration::from_secs(120));
    assert_eq!(remote.get("/health").json()["pose_backend_reachable"], true);
    let r = http_request(remote.addr, "PUT", "/sessions/cut-off/signal", &[], &std::fs::read(&rendered.log).unwrap());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["decision"]["winner"], expected);
    assert_eq!(r.json()["stream"]["frames_analysed"], n);
    drop(triton);
}
