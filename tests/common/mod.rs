//! Helpers shared by the integration tests: the real `ai-referee` binary started on an
//! ephemeral port, and a minimal HTTP/1.1 client over a real TCP socket.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default pose model that `scripts/setup.sh` exports.
pub fn default_model() -> PathBuf {
    let model = repo().join("models/yolo11n-pose.torchscript");
    assert!(model.is_file(), "{} is missing: run ./scripts/setup.sh first", model.display());
    model
}

/// The classic fixed-shape export (640×640 only), which frames reach padded to the square.
pub fn fixed_model() -> PathBuf {
    let model = repo().join("models/yolo11n-pose-640.torchscript");
    assert!(model.is_file(), "{} is missing: run ./scripts/setup.sh first", model.display());
    model
}

/// Ultralytics' own checkpoint, which the legacy service predicted with.
pub fn pt_weights() -> PathBuf {
    let weights = repo().join("models/yolo11n-pose.pt");
    assert!(weights.is_file(), "{} is missing: run ./scripts/setup.sh first", weights.display());
    weights
}

/// The venv's Python, which has torch and Ultralytics.
pub fn venv_python() -> PathBuf {
    let python = repo().join(".venv/bin/python");
    assert!(python.is_file(), "{} is missing: run ./scripts/setup.sh first", python.display());
    python
}

/// A running `ai-referee serve`, killed on drop; its stderr lines arrive on a channel.
pub struct Server {
    child: Child,
    lines: Receiver<String>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
    /// Where it listens.
    pub addr: SocketAddr,
}

/// The pace of the few polls left (an HTTP endpoint or `/proc` where the server sends no
/// event): it only spaces the asks; every such loop ends on what it observes.
pub const POLL_PACE: Duration = Duration::from_millis(5);

/// How long a server may take to log what we wait for (model load and warm-up on 2 CPU cores).
pub const STARTUP: Duration = Duration::from_secs(180);

impl Server {
    /// Starts `ai-referee serve` with these extra arguments and environment variables, on
    /// 127.0.0.1 and a free port unless they say otherwise, and waits for it to listen.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Server {
        Server::start_under(&[], args, envs)
    }

    /// The same, run through `wrapper` (a command and its arguments, e.g. `prlimit --nofile=64`).
    pub fn start_under(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut child = spawn_serve(wrapper, args, envs);
        let lines = stderr_lines(&mut child);
        let mut server = Server { child, lines, log: Vec::new(), addr: "0.0.0.0:0".parse().unwrap() };
        let line = server.wait_for("listening", STARTUP);
        let addr = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("addr="))
            .unwrap_or_else(|| panic!("no addr= in {line:?}"));
        server.addr = addr.parse().expect("a socket address");
        server
    }

    /// Starts the server with the default model and waits until the model is warm.
    pub fn start_ready(args: &[&str], envs: &[(&str, &str)]) -> Server {
        let model = default_model();
        let mut all = vec!["--model", model.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut server = Server::start(&all, envs);
        server.wait_for("model ready", STARTUP);
        server
    }

    /// Blocks until a stderr line contains `needle`; panics (with the log) when the server exits
    /// or `timeout` passes first.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!("no {needle:?} within {timeout:?}; log:\n{}", self.log.join("\n")),
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("server exited before {needle:?}; log:\n{}", self.log.join("\n"))
                }
            }
        }
    }

    /// The files the server process has open (Linux).
    pub fn open_paths(&self) -> Vec<PathBuf> {
        let fds = std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).expect("the server's /proc entry");
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).collect()
    }

    /// How many files and sockets the server process has open (Linux).
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).expect("the server's /proc entry").count()
    }

    /// How many threads the server process has (Linux).
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id())).expect("the server's /proc entry").count()
    }
}

impl Server {
    /// Sends SIGTERM and waits (at most `timeout`) for the process to exit; returns its status
    /// and every stderr line it wrote.
    pub fn terminate(&mut self, timeout: Duration) -> (ExitStatus, String) {
        // SAFETY: kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) }, 0, "SIGTERM sent");
        let deadline = Instant::now() + timeout;
        loop {
            match self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => self.log.push(line),
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("serve still running {timeout:?} after SIGTERM; log:\n{}", self.log.join("\n")),
            }
        }
        (self.child.wait().expect("wait for serve"), self.log.join("\n"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ai-referee serve` to its end and returns its exit status and everything it wrote on
/// stderr (for configurations that must make it stop).
pub fn serve_until_exit(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> (ExitStatus, String) {
    let mut child = spawn_serve(&[], args, envs);
    let lines = stderr_lines(&mut child);
    let deadline = Instant::now() + timeout;
    let mut log = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => log.push(line),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                panic!("serve still running after {timeout:?}; log:\n{}", log.join("\n"));
            }
        }
    }
    let status = child.wait().expect("wait for serve");
    (status, log.join("\n"))
}

fn spawn_serve(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Child {
    serve_command(wrapper, args, envs).spawn().expect("start ai-referee serve")
}

fn serve_command(wrapper: &[&str], args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut cmd = match wrapper.split_first() {
        Some((program, wrapper_args)) => {
            let mut cmd = Command::new(program);
            cmd.args(wrapper_args).arg("--").arg(env!("CARGO_BIN_EXE_ai-referee"));
            cmd
        }
        None => Command::new(env!("CARGO_BIN_EXE_ai-referee")),
    };
    cmd.arg("serve")
        .env_remove("RUST_LOG")
        .env("REFEREE_HOST", "127.0.0.1")
        .env("REFEREE_PORT", "0")
        .envs(envs.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

fn stderr_lines(child: &mut Child) -> Receiver<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-cased) and values.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body parsed as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), the whole response read back.
pub fn http_request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("transfer-encoding")) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

/// Parses a whole raw HTTP response.
pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a header block");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("status");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else { break };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
    out
}

/// A `multipart/form-data` body (boundary `XyZ`) from (name, filename, content type, bytes) parts.
pub fn form_body(parts: &[(&str, Option<&str>, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, content_type, bytes) in parts {
        body.extend_from_slice(b"--XyZ\r\n");
        let disposition = match filename {
            Some(f) => format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\n"),
            None => format!("Content-Disposition: form-data; name=\"{name}\"\r\n"),
        };
        body.extend_from_slice(disposition.as_bytes());
        if let Some(ct) = content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--XyZ--\r\n");
    body
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system's temp dir.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ai-referee-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server with the marker model and no fisheye, writing under `output`.
pub fn marker_server(output: &Path) -> Server {
    marker_server_with(output, &[])
}

/// The same with more `serve` flags, once its model is warm.
pub fn marker_server_with(output: &Path, extra: &[&str]) -> Server {
    let mut server = marker_server_listening(output, extra);
    server.wait_for("model ready", STARTUP);
    server
}

/// The same once it listens, its model still loading and warming up (`wait_for("model ready")`
/// before posting): several servers' warm-ups then overlap.
pub fn marker_server_listening(output: &Path, extra: &[&str]) -> Server {
    let mut args = marker_args(output);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>(), &[])
}

/// The `serve` flags of a marker-model server without fisheye, writing under `output`.
pub fn marker_args(output: &Path) -> Vec<String> {
    let model = repo().join("models/marker-pose.torchscript");
    ["--model", model.to_str().unwrap(), "--fisheye-enabled", "false", "--output-dir", output.to_str().unwrap()].map(str::to_owned).to_vec()
}

/// Fixture phrase `n` of `tests/fixtures/phrases.jsonl`.
pub fn phrase(n: usize) -> Value {
    let text = std::fs::read_to_string(repo().join("tests/fixtures/phrases.jsonl")).unwrap();
    serde_json::from_str(text.lines().nth(n).unwrap()).unwrap()
}

/// A recorded phrase rendered as a folder of JPEGs, those same JPEGs muxed unchanged into an
/// MJPEG .avi (so /analyze decodes the very same frames), and its log.
pub struct Rendered {
    /// The frames, in order.
    pub jpegs: Vec<Vec<u8>>,
    /// The folder they are in (`frame_%05d.jpg`).
    pub frames: PathBuf,
    /// The same JPEGs in an MJPEG .avi at 15 fps.
    pub avi: PathBuf,
    /// The phrase's log.
    pub log: PathBuf,
}

/// Renders fixture phrase `n` under `dir`.
pub fn render(n: usize, dir: &Path) -> Rendered {
    let id = phrase(n)["id"].as_str().unwrap().to_owned();
    let frames = dir.join(format!("{id}-frames"));
    let log = dir.join(format!("{id}.txt"));
    let out = Command::new(env!("CARGO_BIN_EXE_ai-referee"))
        .args(["render", "--phrases", repo().join("tests/fixtures/phrases.jsonl").to_str().unwrap(), "--id", &id])
        .args(["--out", frames.to_str().unwrap(), "--signal-out", log.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let avi = dir.join(format!("{id}.avi"));
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-framerate", "15", "-i"])
        .arg(frames.join("frame_%05d.jpg"))
        .args(["-c:v", "copy"])
        .arg(&avi)
        .status()
        .unwrap();
    assert!(status.success());
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&frames).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    Rendered { jpegs: paths.iter().map(|p| std::fs::read(p).unwrap()).collect(), frames, avi, log }
}

/// `n` black 320×240 JPEGs (frames in which nobody stands), made by ffmpeg under `dir`.
pub fn black_jpegs(dir: &Path, n: usize) -> Vec<Vec<u8>> {
    let blank = dir.join("blank");
    std::fs::create_dir_all(&blank).unwrap();
    let status = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y", "-f", "lavfi", "-i", "color=black:s=320x240", "-frames:v", &n.to_string()])
        .arg(blank.join("f_%04d.jpg"))
        .status()
        .unwrap();
    assert!(status.success());
    (1..=n).map(|i| std::fs::read(blank.join(format!("f_{i:04}.jpg"))).unwrap()).collect()
}

/// A frame part of a streamed body with `boundary`: index `index`, timed at index / 15 s.
pub fn frame_part(boundary: &str, index: usize, jpeg: &[u8]) -> Vec<u8> {
    let mut part = format!(
        "--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Index: {index}\r\nX-Timestamp: {:.3}\r\n\r\n",
        jpeg.len(),
        index as f64 / 15.0
    )
    .into_bytes();
    part.extend_from_slice(jpeg);
    part.extend_from_slice(b"\r\n");
    part
}

/// A log part (`text/plain`, named `signal`) of a streamed body with `boundary`.
pub fn signal_part(boundary: &str, log: impl AsRef<[u8]>) -> Vec<u8> {
    let mut part = format!("--{boundary}\r\nContent-Type: text/plain\r\nContent-Disposition: inline; name=\"signal\"; filename=\"phrase.txt\"\r\n\r\n").into_bytes();
    part.extend_from_slice(log.as_ref());
    part.extend_from_slice(b"\r\n");
    part
}

/// A chunked POST written piece by piece on a raw socket.
pub struct ChunkedUpload {
    stream: TcpStream,
}

impl ChunkedUpload {
    /// Sends the request's head (`Transfer-Encoding: chunked`, `Connection: close`).
    pub fn start(addr: SocketAddr, target: &str, content_type: &str) -> ChunkedUpload {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(600))).unwrap();
        let head = format!("POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        ChunkedUpload { stream }
    }

    /// Sends `bytes` as one chunk, at once (nothing for no bytes: an empty chunk ends a body).
    pub fn send(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() {
            write!(self.stream, "{:x}\r\n", bytes.len()).unwrap();
            self.stream.write_all(bytes).unwrap();
            self.stream.write_all(b"\r\n").unwrap();
            self.stream.flush().unwrap();
        }
    }

    /// Ends the body and reads the response.
    pub fn finish(mut self) -> HttpResponse {
        self.stream.write_all(b"0\r\n\r\n").unwrap();
        let mut raw = Vec::new();
        self.stream.read_to_end(&mut raw).unwrap();
        parse_response(&raw)
    }
}

/// Server-sent events of a session, read as they come.
pub struct Events {
    lines: std::io::Lines<BufReader<TcpStream>>,
}

impl Events {
    /// Opens the events of a session the server knows.
    pub fn open(addr: SocketAddr, id: &str) -> Events {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
        // HTTP/1.0: the event stream comes back unchunked (delimited by the close), so lines are
        // never split by chunk framing, whatever a proxy in between does.
        write!(stream, "GET /sessions/{id}/events HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        Events { lines: BufReader::new(stream).lines() }
    }

    /// The next event's name and data.
    pub fn next(&mut self) -> Option<(String, Value)> {
        let mut name = None;
        for line in self.lines.by_ref() {
            let line = line.ok()?;
            if let Some(n) = line.strip_prefix("event: ") {
                name = Some(n.to_owned());
            } else if let Some(data) = line.strip_prefix("data: ") {
                return Some((name.take().unwrap_or_default(), serde_json::from_str(data).unwrap()));
            }
        }
        None
    }

    /// Waits for a progress event that satisfies `want`; panics if the stream ends first.
    pub fn wait_for(&mut self, want: impl Fn(&Value) -> bool) -> Value {
        let mut seen = Vec::new();
        while let Some((name, data)) = self.next() {
            if name == "progress" && want(&data) {
                return data;
            }
            seen.push(format!("{name}: {data}"));
        }
        panic!("the event stream ended before the awaited progress; events:\n{}", seen.join("\n"));
    }

    /// Opens the events of a session that a concurrent upload is creating.
    pub fn open_when_known(addr: SocketAddr, id: &str) -> Events {
        // Polled: the server says nothing (no log line, no event) when a session comes into
        // being, and its events route is 404 until then, so asking is the only way. The pause
        // between asks only paces the poll (a tight loop of requests would take the cores the
        // server needs); the loop ends on what the server answers, bounded by a deadline.
        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if http_request(addr, "GET", &format!("/sessions/{id}"), &[], b"").status == 200 {
                return Events::open(addr, id);
            }
            std::thread::sleep(POLL_PACE);
        }
        panic!("session {id} never appeared within {STARTUP:?}");
    }
}


/// The shipped `deploy/nginx.conf` running in front of a server, on a free loopback port;
/// stopped (SIGTERM, so that the master stops its workers) on drop.
pub struct Nginx {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl Nginx {
    /// Starts nginx with the shipped config pointed at `upstream`, its files under `prefix`.
    pub fn start(upstream: SocketAddr, prefix: &Path) -> Nginx {
        Nginx::start_replicas(&[upstream], prefix)
    }

    /// The same in front of several replicas (the shipped upstream's one server line becomes one
    /// per replica).
    pub fn start_replicas(upstreams: &[SocketAddr], prefix: &Path) -> Nginx {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        std::fs::create_dir_all(prefix.join("logs")).unwrap();
        let shipped = std::fs::read_to_string(repo().join("deploy/nginx.conf")).unwrap();
        let servers: Vec<String> = upstreams.iter().map(|u| format!("server {u};")).collect();
        let mut conf = shipped.replace("server 127.0.0.1:8080;", &servers.join("\n        ")).replace("listen 8000;", &format!("listen 127.0.0.1:{port};"));
        conf = format!("user root;\npid {0}/nginx.pid;\nerror_log {0}/logs/error.log;\n{conf}", prefix.display());
        conf = conf.replace("http {", &format!("http {{\n    access_log off;\n    client_body_temp_path {0}/body;\n    proxy_temp_path {0}/proxy;", prefix.display()));
        std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .args(["-p", prefix.to_str().unwrap(), "-c", prefix.join("nginx.conf").to_str().unwrap(), "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run nginx");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(POLL_PACE); // nginx logs nothing we read: its port answering is the sign
        }
        Nginx { child, addr }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}


/// A server shared by every test of one test binary that asks for it by the same name: started
/// once (one model load and warm-up for the binary instead of one per test), never stopped by a
/// test. It dies with the test process (`PR_SET_PDEATHSIG`, set for the thread that started it,
/// which lives as long as the process). Tests that share one must use their own session ids and
/// must not assert on server-wide state (open files, the pose backlog, totals in `/stats`).
pub struct SharedServer {
    /// Every stderr line so far, and whether the server has exited; signalled on each line.
    log: std::sync::Arc<(std::sync::Mutex<(Vec<String>, bool)>, std::sync::Condvar)>,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its `--output-dir` (under Cargo's target tmp dir, emptied when the server starts).
    pub output: PathBuf,
}

impl SharedServer {
    /// Blocks until a stderr line (any since the server started: the log is shared, nothing is
    /// consumed) contains `needle`, and returns the first such line; panics with the log when the
    /// server exits or `timeout` passes first. Tests sharing a server wait for lines that carry
    /// their own session ids.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, signal) = &*self.log;
        let mut log = lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut from = 0;
        loop {
            if let Some(line) = log.0[from..].iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            from = log.0.len();
            assert!(!log.1, "the shared server exited before {needle:?}; log:\n{}", log.0.join("\n"));
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {needle:?} within {timeout:?}; log:\n{}", log.0.join("\n"));
            log = signal.wait_timeout(log, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Every stderr line so far.
    pub fn log(&self) -> String {
        self.log.0.lock().unwrap_or_else(|e| e.into_inner()).0.join("\n")
    }
}

/// Starts (once per `name` and test binary) a server with `args` and waits for `ready` in its
/// log (`"listening"` or `"model ready"`); `args` gets `--output-dir` appended.
pub fn shared_server(name: &'static str, args: &[&str], ready: &'static str) -> &'static SharedServer {
    use std::collections::HashMap;
    use std::sync::{Arc, Condvar, Mutex, OnceLock};
    static SERVERS: OnceLock<Mutex<HashMap<&'static str, &'static OnceLock<SharedServer>>>> = OnceLock::new();
    let cell: &'static OnceLock<SharedServer> = *SERVERS.get_or_init(Default::default).lock().unwrap().entry(name).or_insert_with(|| Box::leak(Box::new(OnceLock::new())));
    cell.get_or_init(|| {
        let output = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("shared-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&output);
        std::fs::create_dir_all(&output).unwrap();
        let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        all.extend(["--output-dir".to_owned(), output.to_str().unwrap().to_owned()]);
        let log = Arc::new((Mutex::new((Vec::<String>::new(), false)), Condvar::new()));
        let (tx, rx) = channel();
        let lines_log = Arc::clone(&log);
        // The thread that spawns the child stays for the life of the process (it reads the
        // child's stderr, then waits for it), so the child's parent-death signal fires only
        // when the test process ends.
        std::thread::Builder::new()
            .name(format!("shared-server-{name}"))
            .spawn(move || {
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                let mut cmd = serve_command(&[], &refs, &[]);
                // SAFETY: prctl(2) in the forked child before exec; async-signal-safe.
                unsafe {
                    use std::os::unix::process::CommandExt;
                    cmd.pre_exec(|| {
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
                let mut child = cmd.spawn().expect("start ai-referee serve");
                tx.send(child.id()).unwrap();
                let stderr = child.stderr.take().expect("piped stderr");
                let (lock, signal) = &*lines_log;
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    lock.lock().unwrap_or_else(|e| e.into_inner()).0.push(line);
                    signal.notify_all();
                }
                let _ = child.wait();
                lock.lock().unwrap_or_else(|e| e.into_inner()).1 = true;
                signal.notify_all();
                loop {
                    std::thread::park();
                }
            })
            .unwrap();
        rx.recv().expect("ai-referee serve started");
        let mut server = SharedServer { log, addr: "0.0.0.0:0".parse().unwrap(), output };
        let line = server.wait_for("listening", STARTUP);
        let addr = line.split_whitespace().find_map(|w| w.strip_prefix("addr=")).unwrap_or_else(|| panic!("no addr= in {line:?}"));
        server.addr = addr.parse().expect("a socket address");
        if ready != "listening" {
            server.wait_for(ready, STARTUP);
        }
        server
    })
}

/// The marker-model server without fisheye (as [`marker_server`]), shared by the tests of a
/// binary that use it; its output directory is `.output`.
pub fn shared_marker_server() -> &'static SharedServer {
    let model = repo().join("models/marker-pose.torchscript");
    shared_server("marker", &["--model", model.to_str().unwrap(), "--fisheye-enabled", "false"], "model ready")
}

/// Requests to a server, whether a test's own ([`Server`]) or shared ([`SharedServer`]): the one
/// implementation of `request`, `get` and `url` for both.
pub trait Served {
    /// Where it listens.
    fn address(&self) -> SocketAddr;
    /// The server's base URL.
    fn url(&self) -> String {
        format!("http://{}", self.address())
    }
    /// Sends one request and returns the response.
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
        http_request(self.address(), method, path, headers, body)
    }
    /// `GET path`.
    fn get(&self, path: &str) -> HttpResponse {
        self.request("GET", path, &[], b"")
    }
}

impl Served for Server {
    fn address(&self) -> SocketAddr {
        self.addr
    }
}

impl Served for SharedServer {
    fn address(&self) -> SocketAddr {
        self.addr
    }
}

impl<T: Served + ?Sized> Served for &T {
    fn address(&self) -> SocketAddr {
        (**self).address()
    }
}

/// The detections as the `track` tool's input: per frame, each detection's 17 points as
/// `keypoints.xy` gives them. With `masked_under`, points under that visibility become (0, 0),
/// as Ultralytics before 8.4 (and our old `pose::VISIBLE`) did: only to show what that rule costs.
pub fn as_track_case(frames: &[Value], masked_under: Option<f64>) -> Value {
    let detections: Vec<Value> = frames
        .iter()
        .map(|f| {
            f["detections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let points: Vec<Value> = d["keypoints"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| match masked_under {
                            Some(threshold) if p[2].as_f64().unwrap() < threshold => json!([0.0, 0.0]),
                            _ => json!([p[0], p[1]]),
                        })
                        .collect();
                    Value::Array(points)
                })
                .collect()
        })
        .collect();
    json!({"id": "demo", "frame_width": frames[0]["width"], "frame_height": frames[0]["height"], "detections": detections})
}

/// Runs `ai-referee track` on one case (written to `dir/<name>.jsonl`): its answer (`tracks`,
/// `normalised`).
pub fn track(case: &Value, dir: &Path, name: &str) -> Value {
    let cases = dir.join(format!("{name}.jsonl"));
    std::fs::write(&cases, format!("{case}\n")).unwrap();
    let tracked = Command::new(env!("CARGO_BIN_EXE_ai-referee")).args(["track", "--cases"]).arg(&cases).output().unwrap();
    assert!(tracked.status.success(), "{}", String::from_utf8_lossy(&tracked.stderr));
    let answer: Value = serde_json::from_slice(&tracked.stdout).unwrap();
    assert!(answer.get("error").is_none(), "{name}'s detections are trackable: {answer}");
    answer
}
