//! One phrase over the piste GUI's WebSocket protocol (`--websocket`): `GET /stream` upgraded,
//! JSON control messages as text and each JPEG or log as one binary message after its header.
//! As the GUI: `session_start` → `session_started`; each frame → its `frame_ack` (stop and wait);
//! `session_end` → `session_ended`; the log as `signal` → `signal_ack`, `process_start`, any
//! `process_progress`, then `process_complete`, whose `result` is the verdict. With
//! `--signal-live` the log's new lines go as `signal` messages between frames (after the previous
//! frame's ack); `session_end` goes once the frames are over and the phrase's end is sent, and
//! `process_complete` is awaited after it. A call that comes earlier (the server may decide from
//! a live log while frames still come) is kept and shown once the phrase is all sent, as over
//! HTTP. Pings are answered, and a ping goes every [`PING_EVERY`] while nothing else is sent.
//!
//! A frame's `timestamp` is the one `POST /stream` sends as `X-Timestamp`: seconds since the
//! phrase started, as captured (the GUI's own clock is seconds since the epoch), so the same
//! frames give the same JSON through either route. The connection is not resumed when it drops.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{header, HeaderValue};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::error::ClientError;
use crate::feed::{Feed, LogFeed, Next};
use crate::progress::Progress;
use crate::spool::Spool;
use crate::upload::UploadOptions;

/// How long the handshake may take.
pub const CONNECT_WITHIN: Duration = Duration::from_secs(10);
/// How long `session_started` (and `session_ended`) may take.
pub const SESSION_REPLY_WITHIN: Duration = Duration::from_secs(30);
/// How long a frame's `frame_ack` may take.
pub const FRAME_ACK_WITHIN: Duration = Duration::from_secs(10);
/// How often a `ping` goes while the client waits and sends nothing else.
pub const PING_EVERY: Duration = Duration::from_secs(20);

/// The WebSocket URL of a server's `/stream`: `http` becomes `ws`, `https` `wss` (`ws` and `wss`
/// stay), and a path prefix is kept (`http://host/referee` → `ws://host/referee/stream`).
pub fn stream_url(server: &str) -> Result<String, ClientError> {
    let bad = |why: &str| ClientError::Failed(format!("the server URL {server:?} {why}"));
    let (scheme, rest) = server.trim().split_once("://").ok_or_else(|| bad("has no scheme (http:// or https://)"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(bad("is neither http:// nor https://")),
    };
    if rest.contains(['?', '#']) {
        return Err(bad("has a query or fragment; give the base URL"));
    }
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(bad("has no host"));
    }
    Ok(format!("{scheme}://{rest}/stream"))
}

/// What a wait ended on.
enum Waited<T> {
    /// The work waited on finished.
    Done(T),
    /// A message from the server (not a ping, pong or error: those are dealt with).
    Reply(Value),
}

/// The open socket, and what the wait for each reply needs.
struct Channel {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// When the client last sent anything (the next ping is due [`PING_EVERY`] after).
    last_sent: Instant,
    /// The verdict, once `process_complete` has come (a live log's call may come before the
    /// frames are all sent; they are still sent, and the session ended, before it is shown).
    verdict: Option<Value>,
    progress: Arc<Progress>,
}

impl Channel {
    /// Opens `url`, with the bearer `token` on the handshake when given.
    async fn connect(url: &str, token: Option<&str>, progress: Arc<Progress>) -> Result<Channel, ClientError> {
        let mut request = url.into_client_request().map_err(|e| ClientError::Failed(format!("bad WebSocket URL {url}: {e}")))?;
        if let Some(token) = token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| ClientError::Failed("the token has characters a header cannot carry".into()))?;
            value.set_sensitive(true);
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let connected = tokio::time::timeout(CONNECT_WITHIN, tokio_tungstenite::connect_async(request)).await;
        let socket = match connected {
            Err(_) => return Err(ClientError::Failed(format!("cannot reach {url}: no handshake within {} s", CONNECT_WITHIN.as_secs()))),
            // Refused on the handshake (401, 404, 503, …): the status and detail, as over HTTP.
            Ok(Err(tungstenite::Error::Http(response))) => {
                let body = response.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default();
                return Err(ClientError::http(response.status().as_u16(), &body));
            }
            Ok(Err(e)) => return Err(ClientError::Failed(format!("cannot open the WebSocket {url}: {e}"))),
            Ok(Ok((socket, _))) => socket,
        };
        Ok(Channel { socket, last_sent: Instant::now(), verdict: None, progress })
    }

    async fn send(&mut self, message: Message) -> Result<(), ClientError> {
        self.socket.send(message).await.map_err(|e| ClientError::Failed(format!("the connection broke while sending: {e}")))?;
        self.last_sent = Instant::now();
        Ok(())
    }

    async fn send_json(&mut self, value: &Value) -> Result<(), ClientError> {
        self.send(Message::text(value.to_string())).await
    }

    /// A JSON header and its payload as one binary message.
    async fn send_with_payload(&mut self, header: &Value, payload: Bytes) -> Result<(), ClientError> {
        self.send_json(header).await?;
        self.send(Message::Binary(payload)).await
    }

    /// Polls `work` while serving the socket: pings answered, a ping sent when one is due, an
    /// `error` message or a closed socket an error, and an error naming `awaiting` once `limit`
    /// (a deadline and the time it allowed) has passed. Ends when `work` is done or another
    /// message comes.
    async fn wait<F: Future>(
        &mut self,
        mut work: Pin<&mut F>,
        limit: Option<(Instant, Duration)>,
        awaiting: &str,
    ) -> Result<Waited<F::Output>, ClientError> {
        loop {
            let ping_due = self.last_sent + PING_EVERY;
            let incoming = tokio::select! {
                incoming = self.socket.next() => incoming,
                done = work.as_mut() => return Ok(Waited::Done(done)),
                () = tokio::time::sleep_until(ping_due) => {
                    self.send_json(&json!({"type": "ping"})).await?;
                    continue;
                }
                () = sleep_until_some(limit.map(|(deadline, _)| deadline)) => {
                    let allowed = limit.map_or(0.0, |(_, allowed)| allowed.as_secs_f64());
                    return Err(ClientError::Failed(format!("the server sent no {awaiting} within {allowed} s")));
                }
            };
            let text = match incoming {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let why = frame.map(|f| format!(" ({} {})", f.code, f.reason)).unwrap_or_default();
                    return Err(ClientError::Failed(format!("the server closed the connection{why} while the client awaited {awaiting}")));
                }
                // Binary, and the socket's own pings (answered by tungstenite).
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(ClientError::Failed(format!("the connection broke while the client awaited {awaiting}: {e}"))),
                None => return Err(ClientError::Failed(format!("the server closed the connection while the client awaited {awaiting}"))),
            };
            let message: Value = serde_json::from_str(&text)
                .map_err(|e| ClientError::Failed(format!("the server sent a message that is not JSON ({e}): {}", text.as_str())))?;
            match message["type"].as_str() {
                Some("ping") => self.send_json(&json!({"type": "pong"})).await?,
                Some("pong") => {}
                Some("error") => return Err(server_error(&message)),
                _ => return Ok(Waited::Reply(message)),
            }
        }
    }

    /// Takes a message that was not the one awaited: the verdict is kept, progress shown, and
    /// acknowledgements that need no answer (`signal_ack`, `process_start`, …) pass.
    fn aside(&mut self, message: &Value) -> Result<(), ClientError> {
        match message["type"].as_str() {
            Some("process_complete") if self.verdict.is_none() => {
                self.verdict = Some(verdict(message)?);
                self.progress.note("the server has made its call; sending the rest of the phrase");
            }
            Some("process_progress") => {
                if let Some(said) = message["message"].as_str().or(message["stage"].as_str()) {
                    self.progress.note(&format!("server: {said}"));
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Runs `work` to its end while serving the socket.
    async fn meanwhile<F: Future>(&mut self, work: F, awaiting: &str) -> Result<F::Output, ClientError> {
        let mut work = std::pin::pin!(work);
        loop {
            match self.wait(work.as_mut(), None, awaiting).await? {
                Waited::Done(done) => return Ok(done),
                Waited::Reply(message) => self.aside(&message)?,
            }
        }
    }

    /// The message of type `want` that `fits`, within `limit`.
    async fn expect(&mut self, want: &str, limit: Duration, fits: impl Fn(&Value) -> bool) -> Result<Value, ClientError> {
        let deadline = Instant::now() + limit;
        let mut never = std::pin::pin!(std::future::pending::<()>());
        loop {
            let Waited::Reply(message) = self.wait(never.as_mut(), Some((deadline, limit)), want).await? else {
                unreachable!("pending never ends")
            };
            if message["type"] == want && fits(&message) {
                return Ok(message);
            }
            self.aside(&message)?;
        }
    }

    /// The verdict: kept if it has come, else `process_complete` within `limit`.
    async fn verdict(&mut self, limit: Duration) -> Result<Value, ClientError> {
        if let Some(result) = self.verdict.take() {
            return Ok(result);
        }
        verdict(&self.expect("process_complete", limit, |_| true).await?)
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The client error for an `error` message.
fn server_error(message: &Value) -> ClientError {
    let text = |key: &str| message[key].as_str().map(str::to_owned);
    ClientError::Server {
        code: text("error_code").unwrap_or_else(|| "UNKNOWN".into()),
        message: text("error_message").unwrap_or_else(|| message.to_string()),
        status: message["status"].as_u64().and_then(|s| u16::try_from(s).ok()).filter(|s| (100..600).contains(s)),
    }
}

/// The verdict in a `process_complete` message.
fn verdict(message: &Value) -> Result<Value, ClientError> {
    match &message["result"] {
        result @ Value::Object(_) => Ok(result.clone()),
        _ => Err(ClientError::Failed(format!("the server's process_complete has no result: {message}"))),
    }
}

/// The first frame's width and height (session_start carries them), once captured.
async fn first_frame_size(spool: &Spool) -> Result<(i32, i32), ClientError> {
    let mut captured = spool.watch();
    let status = *captured.wait_for(|s| s.frames > 0 || s.done).await.map_err(|_| ClientError::Failed("the capture went away".into()))?;
    if status.frames == 0 {
        return Err(ClientError::Failed("the source gave no frame: nothing to stream".into()));
    }
    let (jpeg, _) = spool.frame(0).map_err(|e| ClientError::Failed(format!("cannot read the first frame back from the spool: {e}")))?;
    crate::source::jpeg_size(&jpeg)
}

/// Streams the phrase over the WebSocket and returns the verdict JSON.
pub async fn stream_phrase(
    options: &UploadOptions,
    token: Option<&str>,
    jpeg_quality: i32,
    spool: Arc<Spool>,
    log: LogFeed,
    progress: Arc<Progress>,
) -> Result<Value, ClientError> {
    let url = stream_url(&options.server)?;
    let mut channel = Channel::connect(&url, token, progress.clone()).await?;
    let verdict = run(&mut channel, options, jpeg_quality, spool, log).await;
    if verdict.is_ok() {
        let _ = channel.socket.close(None).await;
    }
    verdict
}

/// The protocol, step by step, to the verdict.
async fn run(channel: &mut Channel, options: &UploadOptions, jpeg_quality: i32, spool: Arc<Spool>, log: LogFeed) -> Result<Value, ClientError> {
    let session = options.session.as_str();
    let (width, height) = channel.meanwhile(first_frame_size(&spool), "the first frame").await??;
    channel
        .send_json(&json!({
            "type": "session_start", "session_id": session, "fps": options.fps, "width": width, "height": height,
            "expected_frames": null, "video_format": "bgr24",
        }))
        .await?;
    channel.expect("session_started", SESSION_REPLY_WITHIN, |_| true).await?;
    let filename = log.filename().to_owned();
    let live = matches!(log, LogFeed::Live { .. });
    let mut feed = Feed::new(spool, log, 0, 0, false);
    loop {
        match channel.meanwhile(feed.next(), "the next frame or log line").await?? {
            Next::Frame { index, jpeg, timestamp } => {
                let size = jpeg.len();
                let header = json!({
                    "type": "frame", "session_id": session, "frame_number": index, "timestamp": to_millisecond(timestamp),
                    "encoding": "jpeg", "quality": jpeg_quality, "size": size,
                });
                channel.send_with_payload(&header, Bytes::from(jpeg)).await?;
                channel.progress.sent(index, size);
                let ack = channel.expect("frame_ack", FRAME_ACK_WITHIN, |m| m["frame_number"].as_u64() == Some(index)).await?;
                match ack["status"].as_str() {
                    Some("received" | "duplicate") => {}
                    other => {
                        return Err(ClientError::Failed(format!("the server did not take frame {index}: status {}", other.unwrap_or("missing"))))
                    }
                }
            }
            Next::Lines(lines) => {
                let header = json!({"type": "signal", "session_id": session, "filename": filename, "size": lines.len()});
                channel.send_with_payload(&header, lines).await?;
            }
            // A whole log follows session_end, as the GUI sends it. A live log's end comes
            // first: session_end tells the server the log, too, is all in.
            Next::FramesEnded if live => {}
            Next::FramesEnded | Next::End => {
                channel.send_json(&json!({"type": "session_end", "session_id": session, "total_frames": feed.frames_sent()})).await?;
                channel.expect("session_ended", SESSION_REPLY_WITHIN, |_| true).await?;
                if live {
                    return channel.verdict(options.verdict_timeout).await;
                }
            }
            Next::Log(log) => {
                let header = json!({"type": "signal", "session_id": session, "filename": filename, "size": log.len()});
                channel.send_with_payload(&header, log).await?;
                return channel.verdict(options.verdict_timeout).await;
            }
        }
    }
}

/// Seconds to the millisecond, as `X-Timestamp` carries them.
fn to_millisecond(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::LiveLog;
    use opencv::core::{Mat, Scalar, CV_8UC3};
    use std::sync::Mutex;
    use tokio::sync::watch;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    type ServerSocket = WebSocketStream<TcpStream>;

    /// A 16×8 JPEG.
    fn jpeg() -> Vec<u8> {
        let image = Mat::new_rows_cols_with_default(8, 16, CV_8UC3, Scalar::all(90.0)).unwrap();
        crate::source::encode(&image, 85).unwrap()
    }

    fn options(port: u16) -> UploadOptions {
        UploadOptions {
            server: format!("http://127.0.0.1:{port}/referee/"),
            session: "piste-s1".into(),
            fps: 15.0,
            retries: 0,
            verdict_timeout: Duration::from_secs(30),
        }
    }

    /// A one-connection server on a free port; `script` plays the server's side. The handshake's
    /// path and Authorization header are kept.
    #[allow(clippy::result_large_err)] // tungstenite's handshake callback returns its own error type
    async fn serve<F, Fut>(script: F) -> (u16, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>)
    where
        F: FnOnce(ServerSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let kept = seen.clone();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let socket = tokio_tungstenite::accept_hdr_async(tcp, move |req: &Request, res: Response| {
                let auth = req.headers().get("authorization").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
                kept.lock().unwrap().extend([req.uri().path().to_owned(), auth]);
                Ok(res)
            })
            .await
            .unwrap();
            script(socket).await;
        });
        (port, seen, task)
    }

    async fn text(ws: &mut ServerSocket) -> Value {
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
                Message::Binary(_) => panic!("a binary message where a JSON one was due"),
                _ => {}
            }
        }
    }

    async fn binary(ws: &mut ServerSocket) -> Bytes {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(b) => b,
            other => panic!("{other:?} where the payload was due"),
        }
    }

    async fn reply(ws: &mut ServerSocket, value: Value) {
        ws.send(Message::text(value.to_string())).await.unwrap();
    }

    #[tokio::test]
    async fn a_phrase_goes_as_the_gui_sends_it_and_the_verdict_comes_back() {
        let spool = Arc::new(Spool::create("ws-whole").unwrap());
        let frame = jpeg();
        spool.push(&frame, 0.0).unwrap();
        spool.push(&frame, 1.0 / 15.0).unwrap();
        spool.finish();
        let (_log_tx, log_rx) = watch::channel(Some(Ok(Bytes::from_static(b"log\n"))));
        let log = LogFeed::Whole { log: log_rx, filename: "phrase01.txt".into() };
        let size = frame.len();
        let (port, seen, server) = serve(move |mut ws| async move {
            let start = text(&mut ws).await;
            assert_eq!(
                start,
                json!({"type": "session_start", "session_id": "piste-s1", "fps": 15.0, "width": 16, "height": 8,
                       "expected_frames": null, "video_format": "bgr24"})
            );
            reply(&mut ws, json!({"type": "ping"})).await;
            assert_eq!(text(&mut ws).await, json!({"type": "pong"}), "a ping is answered");
            reply(&mut ws, json!({"type": "session_started", "session_id": "piste-s1"})).await;
            for (i, timestamp) in [(0u64, 0.0), (1, 0.067)] {
                let header = text(&mut ws).await;
                assert_eq!(
                    header,
                    json!({"type": "frame", "session_id": "piste-s1", "frame_number": i, "timestamp": timestamp,
                           "encoding": "jpeg", "quality": 85, "size": size})
                );
                assert_eq!(binary(&mut ws).await.len(), size);
                let status = if i == 0 { "received" } else { "duplicate" };
                reply(&mut ws, json!({"type": "frame_ack", "session_id": "piste-s1", "frame_number": i, "status": status})).await;
            }
            assert_eq!(text(&mut ws).await, json!({"type": "session_end", "session_id": "piste-s1", "total_frames": 2}));
            reply(&mut ws, json!({"type": "session_ended", "session_id": "piste-s1", "validation": {}})).await;
            assert_eq!(text(&mut ws).await, json!({"type": "signal", "session_id": "piste-s1", "filename": "phrase01.txt", "size": 4}));
            assert_eq!(binary(&mut ws).await, Bytes::from_static(b"log\n"));
            for kind in ["signal_ack", "process_start", "process_progress"] {
                reply(&mut ws, json!({"type": kind, "session_id": "piste-s1", "status": "received"})).await;
            }
            reply(&mut ws, json!({"type": "process_complete", "session_id": "piste-s1", "result": {"decision": {"winner": "right"}}})).await;
            // The client closes once it has the verdict.
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Close(_) = message {
                    break;
                }
            }
        })
        .await;
        let progress = Arc::new(Progress::new(None, true));
        let verdict = stream_phrase(&options(port), Some("secret"), 85, spool, log, progress).await.unwrap();
        assert_eq!(verdict, json!({"decision": {"winner": "right"}}));
        server.await.unwrap();
        assert_eq!(*seen.lock().unwrap(), ["/referee/stream", "Bearer secret"]);
    }

    /// A live phrase of one frame; with `early_call`, the server sends its call after the
    /// first lines, before the frame.
    async fn live_phrase(early_call: bool) {
        let spool = Arc::new(Spool::create(if early_call { "ws-live-early" } else { "ws-live" }).unwrap());
        spool.push(&jpeg(), 0.0).unwrap();
        let (log_tx, log_rx) = watch::channel(LiveLog { text: Bytes::from_static(b"start\n"), ..LiveLog::default() });
        let log = LogFeed::Live { log: log_rx, filename: "phrase01.txt".into() };
        let server_spool = spool.clone();
        let call = json!({"type": "process_complete", "session_id": "piste-s1", "result": {"decision": {"winner": "left"}}});
        let (port, _, server) = serve(move |mut ws| async move {
            assert_eq!(text(&mut ws).await["type"], "session_start");
            reply(&mut ws, json!({"type": "session_started", "session_id": "piste-s1"})).await;
            let signal = text(&mut ws).await;
            assert_eq!(signal, json!({"type": "signal", "session_id": "piste-s1", "filename": "phrase01.txt", "size": 6}));
            assert_eq!(binary(&mut ws).await, Bytes::from_static(b"start\n"));
            reply(&mut ws, json!({"type": "signal_ack", "session_id": "piste-s1", "status": "received"})).await;
            if early_call {
                reply(&mut ws, call.clone()).await;
            }
            assert_eq!(text(&mut ws).await["frame_number"], 0);
            binary(&mut ws).await;
            // The phrase ends before the ack: the client sends the new lines after it.
            log_tx.send_modify(|l| {
                l.text = Bytes::from_static(b"start\nPhrase ended\n");
                l.ended = true;
            });
            server_spool.finish();
            reply(&mut ws, json!({"type": "frame_ack", "session_id": "piste-s1", "frame_number": 0, "status": "received"})).await;
            assert_eq!(text(&mut ws).await["size"], 13);
            assert_eq!(binary(&mut ws).await, Bytes::from_static(b"Phrase ended\n"));
            reply(&mut ws, json!({"type": "signal_ack", "session_id": "piste-s1", "status": "received"})).await;
            assert_eq!(text(&mut ws).await, json!({"type": "session_end", "session_id": "piste-s1", "total_frames": 1}));
            reply(&mut ws, json!({"type": "session_ended", "session_id": "piste-s1"})).await;
            if !early_call {
                reply(&mut ws, call).await;
            }
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let progress = Arc::new(Progress::new(None, true));
        let verdict = stream_phrase(&options(port), None, 85, spool, log, progress).await.unwrap();
        assert_eq!(verdict["decision"]["winner"], "left");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn live_lines_go_between_frames_and_the_call_follows_session_end() {
        live_phrase(false).await;
    }

    #[tokio::test]
    async fn an_early_call_on_a_live_log_is_kept_until_the_phrase_is_all_sent() {
        live_phrase(true).await;
    }

    #[tokio::test]
    async fn an_error_message_ends_the_stream_with_its_code() {
        let spool = Arc::new(Spool::create("ws-error").unwrap());
        spool.push(&jpeg(), 0.0).unwrap();
        let (_log_tx, log_rx) = watch::channel(None);
        let log = LogFeed::Whole { log: log_rx, filename: "p.txt".into() };
        let (port, _, server) = serve(|mut ws| async move {
            text(&mut ws).await;
            let error = json!({"type": "error", "session_id": "piste-s1", "error_code": "SESSION_START_FAILED",
                               "error_message": "at the session limit", "recoverable": true});
            reply(&mut ws, error).await;
            while let Some(Ok(_)) = ws.next().await {}
        })
        .await;
        let progress = Arc::new(Progress::new(None, true));
        let err = stream_phrase(&options(port), None, 85, spool, log, progress).await.unwrap_err();
        assert_eq!(err.to_string(), "the server reports SESSION_START_FAILED: at the session limit");
        server.await.unwrap();
    }

    #[test]
    fn the_stream_url_follows_the_server_url() {
        assert_eq!(stream_url("http://gpu-box:8080").unwrap(), "ws://gpu-box:8080/stream");
        assert_eq!(stream_url("http://gpu-box:8080/").unwrap(), "ws://gpu-box:8080/stream");
        assert_eq!(stream_url("https://site.example/referee").unwrap(), "wss://site.example/referee/stream");
        assert_eq!(stream_url("http://host/a/b/").unwrap(), "ws://host/a/b/stream");
        assert_eq!(stream_url("HTTPS://host").unwrap(), "wss://host/stream");
        assert_eq!(stream_url("ws://host:1").unwrap(), "ws://host:1/stream");
        assert!(stream_url("gpu-box:8080").is_err());
        assert!(stream_url("ftp://host").is_err());
        assert!(stream_url("http://").is_err());
        assert!(stream_url("http://host/?x=1").is_err());
    }

    #[test]
    fn an_error_message_becomes_a_client_error_with_its_code_and_message() {
        let e = server_error(&json!({"type": "error", "session_id": "s", "error_code": "NO_ACTIVE_SESSION", "error_message": "no session", "recoverable": false}));
        assert_eq!(e.to_string(), "the server reports NO_ACTIVE_SESSION: no session");
        assert_eq!(e.exit_code(), 1);
        let e = server_error(&json!({"type": "error", "error_code": "PROCESSING_FAILED", "error_message": "Not a double-touch phrase", "status": 422}));
        assert_eq!(e.exit_code(), 166, "an HTTP status given is the exit code, as over HTTP");
    }

    #[test]
    fn the_verdict_is_the_result_of_process_complete() {
        let result = json!({"decision": {"winner": "left"}});
        assert_eq!(verdict(&json!({"type": "process_complete", "session_id": "s", "result": result})).unwrap(), result);
        assert!(verdict(&json!({"type": "process_complete"})).is_err());
    }
}
