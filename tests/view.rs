//! The piste view in a real browser (headless Chromium, installed by scripts/setup.sh): after a
//! phrase streamed by `referee-client`, the index and the session's page are loaded through the
//! shipped nginx config at its sub-path (`/referee/`), and what they show is checked in the DOM
//! the browser built: the session on the index with its winner, the verdict, both engines'
//! calls, the latest analysed frame and the timeline picture. The referee's call buttons are
//! clicked in the browser (driven over Chromium's DevTools protocol, a real mouse click at the
//! button) and the call stored is checked over HTTP and in the pages. Screenshots (phone and
//! laptop sizes) are kept under `target/tmp/view-screenshots/` to look at.

mod common;

use common::Served;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{http_request, marker_server, phrase, render, Nginx, TempDir};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

/// Headless Chromium's DOM of `url` once its scripts have run (virtual time lets fetches,
/// server-sent events and timers complete).
fn dom(url: &str, profile: &Path) -> String {
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=15000", "--window-size=1280,900"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--dump-dom", url])
        .output()
        .expect("run chromium (scripts/setup.sh installs Debian's chromium)");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A screenshot of `url` at `width`×`height`, kept in `dir`; returns its path.
fn screenshot(url: &str, profile: &Path, dir: &Path, name: &str, (width, height): (u32, u32)) -> PathBuf {
    let file = dir.join(name);
    let out = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=15000"])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let png = std::fs::read(&file).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "{} is not a real screenshot", file.display());
    file
}

/// Headless Chromium driven over its DevTools protocol (the remote-debugging WebSocket), for
/// what a DOM dump cannot do: click. Killed on drop.
struct Browser {
    child: Child,
    devtools: WebSocket<TcpStream>,
    /// The page's DevTools session (commands to the page carry it).
    page: String,
    next_id: u64,
    /// Events seen while waiting for answers (method names), in order.
    events: Vec<String>,
}

impl Browser {
    /// Starts Chromium and loads `url` in its page; returns once the page's load event fired.
    fn open(url: &str, profile: &Path) -> Browser {
        let mut child = Command::new("chromium")
            .args(["--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,900", "--remote-debugging-port=0"])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chromium (scripts/setup.sh installs Debian's chromium)");
        // It says where its DevTools listen on stderr, once they do.
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let address = lines
            .by_ref()
            .map_while(Result::ok)
            .find_map(|l| l.split_once("DevTools listening on ").map(|(_, a)| a.trim().to_owned()))
            .expect("chromium's DevTools address on its stderr");
        std::thread::spawn(move || lines.for_each(drop)); // drained, so chromium never blocks on it
        let host = address.trim_start_matches("ws://").split('/').next().unwrap().to_owned();
        let stream = TcpStream::connect(host.as_str()).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let (devtools, _) = tungstenite::client(address.as_str(), stream).expect("chromium's DevTools socket");
        let mut browser = Browser { child, devtools, page: String::new(), next_id: 0, events: Vec::new() };
        let targets = browser.call("Target.getTargets", json!({}));
        let target = targets["targetInfos"].as_array().unwrap().iter().find(|t| t["type"] == "page").expect("a page")["targetId"].clone();
        let attached = browser.call("Target.attachToTarget", json!({ "targetId": target, "flatten": true }));
        browser.page = attached["sessionId"].as_str().unwrap().to_owned();
        browser.call("Page.enable", json!({}));
        browser.call("Page.navigate", json!({ "url": url }));
        browser.wait_event("Page.loadEventFired");
        browser
    }

    /// Sends one command (to the page, once attached) and returns its result (panics with its
    /// error).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({ "id": id, "method": method, "params": params });
        if !self.page.is_empty() {
            command["sessionId"] = json!(self.page);
        }
        self.devtools.send(Message::text(command.to_string())).unwrap();
        loop {
            let message = self.next_message();
            if message["id"] == id {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return message["result"].clone();
            }
            if let Some(event) = message["method"].as_str() {
                self.events.push(event.to_owned());
            }
        }
    }

    /// The next JSON message from the browser.
    fn next_message(&mut self) -> Value {
        loop {
            if let Message::Text(text) = self.devtools.read().expect("DevTools answers") {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }

    /// Waits for an event (or finds it among those already seen).
    fn wait_event(&mut self, name: &str) {
        if let Some(at) = self.events.iter().position(|e| e == name) {
            self.events.drain(..=at);
            return;
        }
        while self.next_message()["method"] != name {}
    }

    /// The value of a script run in the page (a promise is awaited).
    fn eval(&mut self, script: &str) -> Value {
        let result = self.call("Runtime.evaluate", json!({ "expression": script, "awaitPromise": true, "returnByValue": true }));
        assert!(result.get("exceptionDetails").is_none(), "{script}: {result}");
        result["result"]["value"].clone()
    }

    /// Waits (on the page's own DOM changes, at most a minute) until `condition`, a script
    /// expression, is true.
    fn wait_until(&mut self, condition: &str) {
        let script = format!(
            "new Promise(function (resolve, reject) {{
               var ok = function () {{ return {condition}; }};
               if (ok()) return resolve(true);
               var seen = new MutationObserver(function () {{ if (ok()) {{ seen.disconnect(); resolve(true); }} }});
               seen.observe(document.documentElement, {{ subtree: true, childList: true, attributes: true, characterData: true }});
               setTimeout(function () {{ seen.disconnect(); reject(new Error('never true: ' + {condition:?})); }}, 60000);
             }})"
        );
        assert_eq!(self.eval(&script), json!(true));
    }

    /// Clicks the middle of the element `#{id}` with the mouse, as a referee's finger would.
    fn click(&mut self, id: &str) {
        let at = self.eval(&format!(
            "(function () {{ var e = document.getElementById('{id}'); e.scrollIntoView({{ block: 'center' }}); var r = e.getBoundingClientRect(); return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
        ));
        let (x, y) = (at[0].as_f64().unwrap(), at[1].as_f64().unwrap());
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call("Input.dispatchMouseEvent", json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// On a phrase's page (`view_url`, its session done), clicks each of `buttons` in turn and
/// waits until the page shows that call as stored (read back from `GET /sessions/{id}`).
fn click_calls(view_url: &str, profile: &Path, buttons: &[(&str, &str)]) {
    let mut browser = Browser::open(view_url, profile);
    browser.wait_until("document.getElementById('state').textContent === 'done'");
    for (button, call) in buttons {
        browser.click(button);
        browser.wait_until(&format!("document.getElementById('referee-call').getAttribute('data-call') === '{call}'"));
        assert_eq!(browser.eval(&format!("document.getElementById('{button}').getAttribute('aria-pressed')")), "true", "{button} is shown pressed");
    }
}

/// The text inside the first element with `id="{id}"` (tags stripped).
fn text_of(dom: &str, id: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap_or_else(|| panic!("no #{id} in the page"));
    let from = at + dom[at..].find('>').unwrap() + 1;
    let mut depth = 1i32;
    let (mut text, mut i) = (String::new(), from);
    let bytes = dom.as_bytes();
    while i < dom.len() && depth > 0 {
        if bytes[i] == b'<' {
            let end = i + dom[i..].find('>').unwrap();
            let tag = &dom[i + 1..end];
            if tag.starts_with('/') {
                depth -= 1;
            } else if !tag.ends_with('/') && !["img", "br", "input", "meta", "link", "hr"].iter().any(|v| tag.starts_with(v)) {
                depth += 1;
            }
            i = end + 1;
        } else {
            let next = dom[i..].find('<').map_or(dom.len(), |n| i + n);
            text.push_str(&dom[i..next]);
            i = next;
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_index_and_the_session_page_show_the_phrase_and_its_call() {
    let out = TempDir::new("view");
    let server = marker_server(&out.path().join("results"));
    let nginx = Nginx::start(server.addr, &out.path().join("nginx"));
    let rendered = render(2, out.path());
    // referee-client is the workspace's other binary, built beside ai-referee.
    let client = Path::new(env!("CARGO_BIN_EXE_ai-referee")).with_file_name("referee-client");
    let streamed = Command::new(client)
        .arg("stream")
        .arg(format!("http://{}/referee", nginx.addr))
        .arg("--frames")
        .arg(&rendered.frames)
        .args(["--fps", "15", "--session", "piste-3", "--quiet", "--signal"])
        .arg(&rendered.log)
        .output()
        .unwrap();
    assert!(streamed.status.success(), "{}", String::from_utf8_lossy(&streamed.stderr));
    let winner = phrase(2)["legacy_decision"]["winner"].as_str().unwrap().to_owned();
    assert_eq!(String::from_utf8_lossy(&streamed.stdout).trim(), winner);

    let base = format!("http://{}/referee/", nginx.addr);
    let profile = out.path().join("chromium-profile");
    // The index: the session, decided, with its winner.
    let index = dom(&base, &profile);
    let row_at = index.find("data-session=\"piste-3\"").unwrap_or_else(|| panic!("piste-3 is not on the index:\n{index}"));
    let row = &index[row_at..index[row_at..].find("</tr>").map_or(index.len(), |e| row_at + e)];
    assert!(row.to_lowercase().contains(&winner), "the index row shows the winner: {row}");
    assert!(row.contains("sessions/piste-3/view"), "the row links to the view: {row}");

    // The session's page: the verdict large, the three engines' calls, the frame and the timeline.
    let view_url = format!("{base}sessions/piste-3/view");
    let view = dom(&view_url, &profile);
    assert_eq!(text_of(&view, "winner"), winner.to_uppercase());
    assert!(text_of(&view, "engine").to_lowercase().contains("legacy"), "{}", text_of(&view, "engine"));
    let legacy_call = text_of(&view, "legacy-call");
    assert!(legacy_call.contains(phrase(2)["legacy_decision"]["reason"].as_str().unwrap()), "{legacy_call}");
    for card in ["v2-call", "v3-call"] {
        let call = text_of(&view, card);
        assert!(call.to_lowercase().contains("left") || call.to_lowercase().contains("right"), "{card}: {call}");
        assert!(call.contains("Confidence "), "{card}: {call}");
    }
    assert!(view.contains("id=\"latest-frame\""), "the latest analysed frame is shown");
    let timeline = &view[view.find("id=\"timeline\"").expect("the timeline picture")..];
    assert!(timeline.contains("speed left") && timeline.contains("speed right"), "both fencers' speeds are drawn");
    assert!(timeline.contains("class=\"hit"), "the hit is marked");
    for download in ["frames_overlay.mp4", "frames_keypoints.xlsx", "analysis_result.json"] {
        assert!(text_of(&view, "downloads").len() > 3 && view.contains(download), "a download link to {download}");
    }
    // What the page points at is there: the frame is a JPEG, the downloads are served.
    let frame = http_request(nginx.addr, "GET", "/referee/sessions/piste-3/artifacts/view.jpg", &[], b"");
    assert_eq!(frame.status, 200);
    assert!(frame.body.starts_with(&[0xFF, 0xD8]), "view.jpg is a JPEG");
    for download in ["frames_overlay.mp4", "frames_keypoints.xlsx", "analysis_result.json", "timeline.json"] {
        let got = http_request(nginx.addr, "GET", &format!("/referee/sessions/piste-3/artifacts/{download}"), &[], b"");
        assert_eq!(got.status, 200, "{download}");
    }

    // The referee's call: no call yet; a click on Left stores it, a click on No touch replaces
    // it, each read back by the page; then the server holds it, and both pages show it.
    let session = || http_request(nginx.addr, "GET", "/referee/sessions/piste-3", &[], b"").json();
    assert_eq!(session()["referee_call"], Value::Null, "no call before the referee gives one");
    assert_eq!(text_of(&view, "call-status"), "No call given yet.");
    click_calls(&view_url, &profile, &[("call-left", "left")]);
    assert_eq!(session()["referee_call"], "left", "the click stored the call");
    click_calls(&view_url, &profile, &[("call-none", "none")]);
    assert_eq!(session()["referee_call"], "none", "a second click replaces it");
    let stored = dom(&view_url, &profile);
    assert!(stored.contains("id=\"call-none\" class=\"call-button none pressed\" data-call=\"none\" aria-pressed=\"true\""), "the stored call is shown pressed:\n{stored}");
    assert!(stored.contains("aria-pressed=\"false\">Left</button>"), "Left is not pressed any more");
    assert_eq!(text_of(&stored, "call-status"), "Call stored: No touch.");
    let index = dom(&base, &profile);
    let row = &index[index.find("data-session=\"piste-3\"").unwrap()..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-call=\"none\"") && row.contains("no touch"), "the index shows the call: {row}");
    let stored_log = std::fs::read(out.path().join("results/sessions/piste-3/signal.txt")).unwrap();
    assert_eq!(stored_log, std::fs::read(&rendered.log).unwrap(), "the call is never written into the log");

    // Screenshots to look at, phone- and laptop-sized.
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("view-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    for (name, url, size) in [
        ("index-phone.png", base.as_str(), (390, 844)),
        ("session-phone.png", view_url.as_str(), (390, 3200)),
        ("index-laptop.png", base.as_str(), (1280, 800)),
        ("session-laptop.png", view_url.as_str(), (1280, 2300)),
    ] {
        let file = screenshot(url, &profile, &shots, name, size);
        eprintln!("screenshot: {}", file.display());
    }
    drop(nginx);
}

#[test]
fn the_pages_load_nothing_from_outside_and_unknown_sessions_are_404() {
    let out = TempDir::new("view-offline");
    let server = marker_server(&out.path().join("results"));
    let index = server.get("/");
    assert!(index.body == std::fs::read(common::repo().join("src/view/index.html")).unwrap(), "the index is the embedded page");
    assert_eq!(server.get("/assets/view.css").status, 200);
    for file in ["index.html", "session.html", "view.css"] {
        let text = std::fs::read_to_string(common::repo().join("src/view").join(file)).unwrap().to_lowercase();
        // No CDN, no web fonts, no absolute URLs: a venue may be offline, a proxy may add a
        // prefix. (SVG's namespace name is a name, not a fetch.)
        let text = text.replace("http://www.w3.org/2000/svg", "");
        for outside in ["http://", "https://", "//cdn", "@import", "@font-face", "src=\"/", "href=\"/", "fetch('/", "fetch(\"/"] {
            assert!(!text.contains(outside), "{file} refers to {outside:?}");
        }
    }
    let sessions = server.get("/sessions").json();
    assert_eq!(sessions["sessions"], serde_json::json!([]), "a new server lists no sessions");
    let missing = server.get("/sessions/nobody/view");
    assert_eq!(missing.status, 404);
    assert!(missing.json()["detail"].is_string());
}

#[test]
fn a_token_guards_everything_but_health_and_a_page_link_signs_the_browser_in() {
    let out = TempDir::new("view-token");
    let server = common::marker_server_with(&out.path().join("results"), &["--token", "s3cret"]);
    assert_eq!(server.get("/health").status, 200, "the health check stays open");
    for (method, path) in [("GET", "/"), ("GET", "/sessions"), ("GET", "/sessions/p1"), ("GET", "/sessions/p1/view"), ("POST", "/stream"), ("POST", "/analyze"), ("PUT", "/sessions/p1/signal"), ("PUT", "/sessions/p1/call")] {
        for headers in [vec![], vec![("Authorization", "Bearer s3cre")], vec![("Cookie", "referee_token=wrong")]] {
            let refused = server.request(method, path, &headers, b"");
            assert_eq!(refused.status, 401, "{method} {path} with {headers:?}");
            assert_eq!(refused.header("www-authenticate"), Some("Bearer"));
            assert!(refused.json()["detail"].as_str().unwrap().contains("token"), "{method} {path}");
        }
    }
    // The client with the token streams and gets its verdict; without it, 401 (exit 145, as
    // Python's sys.exit(401) left it).
    let rendered = render(5, out.path());
    let client = Path::new(env!("CARGO_BIN_EXE_ai-referee")).with_file_name("referee-client");
    let stream = |token: Option<&str>| {
        let mut command = Command::new(&client);
        command.arg("stream").arg(server.url()).arg("--frames").arg(&rendered.frames).args(["--fps", "15", "--session", "locked", "--quiet", "--retries", "0", "--signal"]).arg(&rendered.log);
        if let Some(token) = token {
            command.env("REFEREE_TOKEN", token);
        }
        command.output().unwrap()
    };
    let without = stream(None);
    assert_eq!(without.status.code(), Some(401 % 256), "{}", String::from_utf8_lossy(&without.stderr));
    let with = stream(Some("s3cret"));
    assert!(with.status.success(), "{}", String::from_utf8_lossy(&with.stderr));
    assert_eq!(String::from_utf8_lossy(&with.stdout).trim(), phrase(5)["legacy_decision"]["winner"].as_str().unwrap());
    // A link with ?token= signs the browser in: the page's own fetches then carry the cookie.
    let profile = out.path().join("chromium-profile");
    let index = dom(&format!("{}/?token=s3cret", server.url()), &profile);
    assert!(index.contains("data-session=\"locked\""), "the index lists the session once signed in:\n{index}");
    let view = dom(&format!("{}/sessions/locked/view?token=s3cret", server.url()), &profile);
    assert_eq!(text_of(&view, "winner"), phrase(5)["legacy_decision"]["winner"].as_str().unwrap().to_uppercase());
    // The page's call buttons carry the same sign-in: a click stores the call.
    click_calls(&format!("{}/sessions/locked/view?token=s3cret", server.url()), &profile, &[("call-right", "right")]);
    let locked = server.request("GET", "/sessions/locked", &[("Authorization", "Bearer s3cret")], b"").json();
    assert_eq!(locked["referee_call"], "right");
    let signed = server.request("GET", "/sessions?token=s3cret", &[], b"");
    assert!(signed.header("set-cookie").is_some_and(|c| c.starts_with("referee_token=s3cret;") && c.contains("HttpOnly")));
}

#[test]
fn the_views_data_follows_a_phrase_while_it_uploads() {
    use std::io::{Read, Write};
    let out = TempDir::new("view-live");
    let server = marker_server(&out.path().join("results"));
    let rendered = render(6, out.path());
    // Half the phrase sent on a chunked body that stays open.
    let mut upload = std::net::TcpStream::connect(server.addr).unwrap();
    let head = "POST /stream?session=live HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/x-mixed-replace; boundary=frame\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    upload.write_all(head.as_bytes()).unwrap();
    let mut send = |bytes: &[u8]| {
        write!(upload, "{:x}\r\n", bytes.len()).unwrap();
        upload.write_all(bytes).unwrap();
        upload.write_all(b"\r\n").unwrap();
    };
    let frame_part = |i: usize, jpeg: &[u8]| {
        let mut part = format!("--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Frame-Index: {i}\r\nX-Timestamp: {:.4}\r\n\r\n", jpeg.len(), i as f64 / 15.0).into_bytes();
        part.extend_from_slice(jpeg);
        part.extend_from_slice(b"\r\n");
        part
    };
    // The whole phrase as one body, sent in two pieces: the first half of the frames and the
    // delimiter that ends the last of them (a part is known whole when its delimiter comes), then
    // the rest once the first half is seen analysed.
    let half = rendered.jpegs.len() / 2;
    let mut body: Vec<u8> = rendered.jpegs.iter().enumerate().flat_map(|(i, jpeg)| frame_part(i, jpeg)).collect();
    let split = rendered.jpegs.iter().enumerate().take(half).map(|(i, jpeg)| frame_part(i, jpeg).len()).sum::<usize>() + "--frame".len();
    body.extend_from_slice(b"--frame\r\nContent-Type: text/plain\r\n\r\n");
    body.extend_from_slice(&std::fs::read(&rendered.log).unwrap());
    body.extend_from_slice(b"\r\n--frame--\r\n");
    send(&body[..split]);
    // What the page shows live, from the routes it reads: the session receiving with every frame
    // sent so far, pose at work on them (awaited on its events: pose runs on its own), and the
    // latest analysed frame with its skeletons. (Chromium cannot dump a page whose event stream is
    // still open, so the page itself is loaded once the phrase is decided, below.)
    let live = common::Events::open_when_known(server.addr, "live").wait_for(|p| p["frames_analysed"] == half);
    assert_eq!(live["state"], "receiving");
    assert_eq!(live["frames_received"], half);
    let frame = server.get("/sessions/live/artifacts/view.jpg");
    assert_eq!(frame.status, 200, "the latest analysed frame is there while the phrase uploads");
    assert!(frame.body.starts_with(&[0xFF, 0xD8]));
    let mut events = common::Events::open(server.addr, "live");
    let (kind, first) = events.next().expect("an event");
    assert_eq!((kind.as_str(), &first["state"]), ("progress", &serde_json::json!("receiving")), "{first}");
    // The rest of the phrase and the log: the page then shows the call.
    send(&body[split..]);
    upload.write_all(b"0\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    upload.read_to_end(&mut answer).unwrap();
    assert_eq!(common::parse_response(&answer).status, 200);
    let profile = out.path().join("chromium-profile");
    let done = dom(&format!("{}/sessions/live/view", server.url()), &profile);
    assert_eq!(text_of(&done, "winner"), phrase(6)["legacy_decision"]["winner"].as_str().unwrap().to_uppercase());
    assert_eq!(text_of(&done, "frames-analysed"), rendered.jpegs.len().to_string());
}
