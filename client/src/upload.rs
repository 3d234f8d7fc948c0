//! One phrase streamed to `POST /stream` as a `multipart/x-mixed-replace` body built while the
//! frames are captured (`Body::wrap_stream`: one frame in memory at a time), each part with
//! `X-Frame-Index` and `X-Timestamp`, then the log and the closing boundary; a live log's new
//! lines (`--signal-live`) go as `text/plain` parts among the frames. When the connection drops,
//! the server is asked where the session stands (`GET /sessions/{id}`) and the upload resumes from
//! its next frame, up to a number of retries.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use referee_wire::{PartWriter, SESSION_ID_HEADER, SIGNAL_PART_NAME};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::error::ClientError;
use crate::feed::{Feed, LogFeed, Next};
use crate::progress::Progress;
use crate::spool::Spool;

/// Where and how to stream.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// The server's base URL.
    pub server: String,
    /// The session id (the server's name for this phrase; resumes use it).
    pub session: String,
    /// The phrase's frame rate, passed on as `?fps=`.
    pub fps: f64,
    /// Resumes allowed after a dropped connection (or a busy server) before giving up.
    pub retries: u32,
    /// Seconds to wait for the verdict once the last byte is sent.
    pub verdict_timeout: Duration,
}

struct BodyState {
    feed: Feed,
    /// Writes the frame parts and the whole log's part (and knows the boundary).
    parts: PartWriter,
    /// A part has been written: the next one opens with the end of its delimiter line.
    opened: bool,
    /// The closing delimiter has been written: nothing may follow.
    closed: bool,
    /// The live log's file name, for its parts.
    log_filename: String,
    /// How far the bodies so far have carried a live log, for a resume.
    log_written: Arc<AtomicUsize>,
    progress: Arc<Progress>,
    last_byte: Option<oneshot::Sender<()>>,
}

impl BodyState {
    /// The bytes for the feed's next item; `None` once the body is closed.
    fn bytes_for(&mut self, next: Next) -> Option<Bytes> {
        if self.closed {
            return None;
        }
        let bytes = match next {
            Next::Frame { index, jpeg, timestamp } => {
                let part = self.parts.frame(index, timestamp, &jpeg);
                self.progress.sent(index, part.len());
                part
            }
            Next::FramesEnded => return Some(Bytes::new()),
            Next::Lines(lines) => {
                self.log_written.fetch_max(self.feed.log_sent(), Ordering::Relaxed);
                lines_part(self.parts.boundary(), self.opened, &self.log_filename, &lines)
            }
            Next::Log(log) => {
                self.closed = true;
                self.parts.signal_and_close(&log)
            }
            Next::End => {
                self.closed = true;
                closing(self.parts.boundary(), self.opened)
            }
        };
        if self.closed {
            if let Some(tx) = self.last_byte.take() {
                let _ = tx.send(());
            }
        }
        self.opened = true;
        Some(bytes)
    }
}

/// A live log's new lines as a `text/plain` part, ended by its delimiter as the frame parts are.
fn lines_part(boundary: &str, opened: bool, filename: &str, lines: &[u8]) -> Bytes {
    let opening = if opened { "\r\n".to_owned() } else { format!("--{boundary}\r\n") };
    let filename: String = filename.chars().map(|c| if c == '"' || c == '\\' || c.is_control() { '_' } else { c }).collect();
    let mut out = format!(
        "{opening}Content-Type: text/plain\r\nContent-Disposition: inline; name=\"{SIGNAL_PART_NAME}\"; filename=\"{filename}\"\r\n\r\n"
    )
    .into_bytes();
    out.extend_from_slice(lines);
    out.extend_from_slice(b"\r\n--");
    out.extend_from_slice(boundary.as_bytes());
    Bytes::from(out)
}

/// The end of a body whose parts each ended with their delimiter: `--` makes the last one the
/// closing delimiter (a body with no part is the closing delimiter alone).
fn closing(boundary: &str, opened: bool) -> Bytes {
    if opened {
        Bytes::from_static(b"--\r\n")
    } else {
        Bytes::from(format!("--{boundary}--\r\n"))
    }
}

/// The body: what the feed hands out, as parts, until the closing delimiter.
fn body(state: BodyState) -> reqwest::Body {
    let stream = futures_util::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            match st.feed.next().await {
                Ok(next) => match st.bytes_for(next) {
                    Some(bytes) if bytes.is_empty() => continue,
                    Some(bytes) => return Some((Ok(bytes), Some(st))),
                    None => return None,
                },
                // The log cannot be had, or a frame read back: the upload stops here (the caller
                // says why).
                Err(e) => return Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// What one POST ended in.
enum Attempt {
    /// The verdict (200).
    Verdict(Value),
    /// Worth another try: the connection dropped, or the server was busy for this long.
    Retry { why: String, after: Option<Duration> },
}

/// Streams the phrase and returns the verdict JSON.
pub async fn stream_phrase(
    client: &reqwest::Client,
    options: &UploadOptions,
    spool: Arc<Spool>,
    log: LogFeed,
    progress: Arc<Progress>,
) -> Result<Value, ClientError> {
    let base = options.server.trim_end_matches('/');
    let url = format!("{base}/stream?session={}&fps={}", options.session, options.fps);
    let mut from = 0u64;
    // Where a live log's lines start in this body, and how far the bodies so far have carried it.
    let mut log_from = 0usize;
    let log_written = Arc::new(AtomicUsize::new(0));
    let mut retry = 0u32;
    loop {
        let parts = PartWriter::new();
        let content_type = parts.content_type();
        let (last_byte_tx, last_byte_rx) = oneshot::channel();
        let state = BodyState {
            // Live lines wait for the body's first frame: the part writer opens the body.
            feed: Feed::new(spool.clone(), log.clone(), from, log_from, true),
            parts,
            opened: false,
            closed: false,
            log_filename: log.filename().to_owned(),
            log_written: log_written.clone(),
            progress: progress.clone(),
            last_byte: Some(last_byte_tx),
        };
        let request = client
            .post(&url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .header(SESSION_ID_HEADER, &options.session)
            .body(body(state));
        let attempt = async {
            let response = request.send().await;
            let response = match response {
                Ok(r) => r,
                Err(e) => return Ok(Attempt::Retry { why: describe(&e), after: None }),
            };
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(Duration::from_secs_f64);
            let text = match response.text().await {
                Ok(t) => t,
                Err(e) => return Ok(Attempt::Retry { why: describe(&e), after: None }),
            };
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                return Ok(Attempt::Retry { why: ClientError::http(503, &text).to_string(), after: retry_after });
            }
            if status == reqwest::StatusCode::ACCEPTED {
                return Err(ClientError::Failed(format!("the server still awaits the log: {text}")));
            }
            if !status.is_success() {
                return Err(ClientError::http(status.as_u16(), &text));
            }
            serde_json::from_str(&text)
                .map(Attempt::Verdict)
                .map_err(|e| ClientError::Failed(format!("the server's answer is not JSON ({e}): {text}")))
        };
        let timeout = options.verdict_timeout;
        let outcome = tokio::select! {
            outcome = attempt => outcome?,
            () = async {
                if last_byte_rx.await.is_ok() {
                    tokio::time::sleep(timeout).await;
                } else {
                    std::future::pending::<()>().await;
                }
            } => {
                return Err(ClientError::Failed(format!("no verdict within {} s of the last byte", timeout.as_secs_f64())));
            }
        };
        let (why, after) = match outcome {
            Attempt::Verdict(v) => return Ok(v),
            Attempt::Retry { why, after } => (why, after),
        };
        if let Some(why) = log.failure() {
            return Err(ClientError::Failed(why));
        }
        // A server that refuses the upload outright (a missing or wrong token) may answer before
        // reading the body and close, which the client sees as a broken connection: ask it.
        session_state(client, base, &options.session).await?;
        if retry >= options.retries {
            let tries = if options.retries == 1 { "retry" } else { "retries" };
            return Err(ClientError::Failed(format!("upload failed after {} {tries}: {why}", options.retries)));
        }
        retry += 1;
        tokio::time::sleep(after.unwrap_or_else(|| backoff(retry))).await;
        match session_state(client, base, &options.session).await? {
            Lookup::Found(s) if s["state"] == "done" && s["result"].is_object() => {
                progress.note("the server had already decided the phrase");
                return Ok(s["result"].clone());
            }
            Lookup::Found(s) if s["state"] == "failed" => {
                let detail = s["error"].as_str().unwrap_or("the phrase could not be analysed").to_owned();
                return Err(ClientError::Failed(format!("the server could not decide the phrase: {detail}")));
            }
            Lookup::Found(s) => {
                from = s["next_frame_index"].as_u64().unwrap_or(0);
                log_from = live_log_resume(&s, log_written.load(Ordering::Relaxed));
            }
            Lookup::Unknown => (from, log_from) = (0, 0),
            Lookup::Unanswered => log_from = 0,
        }
        let lines = if matches!(log, LogFeed::Live { .. }) { format!(", live log from byte {log_from}") } else { String::new() };
        progress.note(&format!("{why}; resuming from frame {from}{lines} (retry {retry}/{})", options.retries));
    }
}

/// Where a resumed body starts a live log, given what the server says of the session and how far
/// the bodies so far have carried the log: the server's own count of the log's bytes
/// (`signal_bytes`) when it gives one; past everything sent when it holds the log whole
/// (`signal_received`); else from the start. When unsure, lines go again: a line twice never
/// hides the phrase's end, a line lost could (and a server holding the log whole takes a log
/// sent again from its start in its place).
fn live_log_resume(session: &Value, written: usize) -> usize {
    match session["signal_bytes"].as_u64() {
        Some(held) => (held as usize).min(written),
        None if session["signal_received"] == true => written,
        None => 0,
    }
}

/// Seconds to wait before retry `n` (1, 2, 4, … at most 8).
fn backoff(n: u32) -> Duration {
    Duration::from_secs_f64((0.5 * 2f64.powi(n as i32)).min(8.0))
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    format!("connection lost ({text})")
}

/// What `GET /sessions/{id}` says of a session.
enum Lookup {
    /// The server has it (its JSON).
    Found(Value),
    /// The server does not know it (404): resend from the start.
    Unknown,
    /// No usable answer (unreachable, busy): resend from where we were; the server skips what it
    /// holds.
    Unanswered,
}

/// `GET /sessions/{id}`; an error only when the server refuses this client (401, 403), which no
/// retry mends.
async fn session_state(client: &reqwest::Client, base: &str, id: &str) -> Result<Lookup, ClientError> {
    let Ok(response) = client.get(format!("{base}/sessions/{id}")).timeout(Duration::from_secs(10)).send().await else {
        return Ok(Lookup::Unanswered);
    };
    let status = response.status();
    if matches!(status, reqwest::StatusCode::UNAUTHORIZED | reqwest::StatusCode::FORBIDDEN) {
        let text = response.text().await.unwrap_or_default();
        return Err(ClientError::http(status.as_u16(), &text));
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return Ok(Lookup::Unknown);
    }
    match (status.is_success(), response.json::<Value>().await) {
        (true, Ok(session)) => Ok(Lookup::Found(session)),
        _ => Ok(Lookup::Unanswered),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_lines_are_text_parts_among_the_frames() {
        let mut parts = PartWriter::with_boundary("b");
        let body = [
            parts.frame(0, 0.0, b"JPEG"),
            lines_part("b", true, "phrase\"01\".txt", b"0.000s | Phrase recording started\n"),
            parts.frame(1, 0.0667, b"JPEG2"),
            lines_part("b", true, "phrase01.txt", b"Phrase ended\n"),
            closing("b", true),
        ]
        .concat();
        let text = String::from_utf8(body).unwrap();
        let pieces: Vec<&str> = text.split("\r\n--b").collect();
        assert_eq!(pieces.len(), 5, "{text}");
        assert!(pieces[0].starts_with("--b\r\nContent-Type: image/jpeg\r\n"), "{}", pieces[0]);
        assert_eq!(
            pieces[1],
            "\r\nContent-Type: text/plain\r\nContent-Disposition: inline; name=\"signal\"; filename=\"phrase_01_.txt\"\r\n\r\n0.000s | Phrase recording started\n"
        );
        assert!(pieces[2].starts_with("\r\nContent-Type: image/jpeg\r\n") && pieces[2].ends_with("JPEG2"), "{}", pieces[2]);
        assert!(pieces[3].ends_with("filename=\"phrase01.txt\"\r\n\r\nPhrase ended\n"), "{}", pieces[3]);
        assert_eq!(pieces[4], "--\r\n", "the last part's delimiter becomes the closing one");
    }

    #[test]
    fn a_body_of_lines_alone_opens_and_closes_itself() {
        let body = [lines_part("b", false, "p.txt", b"Phrase ended\n"), closing("b", true)].concat();
        assert!(body.starts_with(b"--b\r\nContent-Type: text/plain\r\n"));
        assert!(body.ends_with(b"Phrase ended\n\r\n--b--\r\n"));
        assert_eq!(closing("b", false), Bytes::from_static(b"--b--\r\n"));
    }

    #[test]
    fn a_resumed_live_log_starts_where_the_server_stopped_or_resends_when_unsure() {
        let found = |v: Value| live_log_resume(&v, 30);
        assert_eq!(found(serde_json::json!({"signal_bytes": 20, "signal_received": false})), 20);
        assert_eq!(found(serde_json::json!({"signal_bytes": 99})), 30, "never past what was sent");
        assert_eq!(found(serde_json::json!({"signal_received": true})), 30, "the server holds it whole");
        assert_eq!(found(serde_json::json!({"signal_received": false})), 0, "unsure: all of it again");
        assert_eq!(found(serde_json::json!({})), 0);
    }

    #[test]
    fn backoff_grows_then_stays() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(10), Duration::from_secs(8));
    }
}
