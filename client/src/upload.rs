//! One phrase streamed to `POST /stream` as a `multipart/x-mixed-replace` body built while the
//! frames are captured (`Body::wrap_stream`: one frame in memory at a time), each part with
//! `X-Frame-Index` and `X-Timestamp`, then the log and the closing boundary. When the connection
//! drops, the server is asked where the session stands (`GET /sessions/{id}`) and the upload
//! resumes from its next frame, up to a number of retries.

use std::sync::Arc;
use std::time::Duration;

use referee_wire::{PartWriter, SESSION_ID_HEADER};
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::error::ClientError;
use crate::progress::Progress;
use crate::signal::SignalState;
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

/// Where the body generator is.
enum Stage {
    Frames(u64),
    Signal,
    Done,
}

struct BodyState {
    stage: Stage,
    /// Writes the parts (and knows whether one has gone out yet).
    parts: PartWriter,
    spool: Arc<Spool>,
    captured: watch::Receiver<crate::spool::SpoolStatus>,
    signal: watch::Receiver<SignalState>,
    progress: Arc<Progress>,
    last_byte: Option<oneshot::Sender<()>>,
}

/// The body from frame `from` on: frames as they are captured, then the log once known.
fn body(state: BodyState) -> reqwest::Body {
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            match st.stage {
                Stage::Frames(i) => {
                    let status = match st.captured.wait_for(|s| s.frames > i || s.done).await {
                        Ok(s) => *s,
                        Err(_) => crate::spool::SpoolStatus { frames: 0, done: true },
                    };
                    if status.frames <= i {
                        st.stage = Stage::Signal;
                        continue;
                    }
                    let (jpeg, ts) = match st.spool.frame(i) {
                        Ok(f) => f,
                        Err(e) => return Some((Err(e), BodyState { stage: Stage::Done, ..st })),
                    };
                    let part = st.parts.frame(i, ts, &jpeg);
                    st.progress.sent(i, part.len());
                    st.stage = Stage::Frames(i + 1);
                    return Some((Ok(part), st));
                }
                Stage::Signal => {
                    let known = st.signal.wait_for(Option::is_some).await.ok().and_then(|s| s.clone());
                    st.stage = Stage::Done;
                    return match known {
                        Some(Ok(log)) => {
                            if let Some(tx) = st.last_byte.take() {
                                let _ = tx.send(());
                            }
                            Some((Ok(st.parts.signal_and_close(&log)), st))
                        }
                        // The log cannot be had: the upload stops here (the caller says why).
                        _ => Some((Err(std::io::Error::other("no log to send")), st)),
                    };
                }
                Stage::Done => return None,
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
    signal: watch::Receiver<SignalState>,
    progress: Arc<Progress>,
) -> Result<Value, ClientError> {
    let base = options.server.trim_end_matches('/');
    let url = format!("{base}/stream?session={}&fps={}", options.session, options.fps);
    let mut from = 0u64;
    let mut retry = 0u32;
    loop {
        let parts = PartWriter::new();
        let content_type = parts.content_type();
        let (last_byte_tx, last_byte_rx) = oneshot::channel();
        let state = BodyState {
            stage: Stage::Frames(from),
            parts,
            captured: spool.watch(),
            spool: spool.clone(),
            signal: signal.clone(),
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
        if let Some(Err(e)) = signal.borrow().as_ref() {
            return Err(ClientError::Failed(e.clone()));
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
            Lookup::Found(s) => from = s["next_frame_index"].as_u64().unwrap_or(0),
            Lookup::Unknown => from = 0,
            Lookup::Unanswered => {}
        }
        progress.note(&format!("{why}; resuming from frame {from} (retry {retry}/{})", options.retries));
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
    fn backoff_grows_then_stays() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(10), Duration::from_secs(8));
    }
}
