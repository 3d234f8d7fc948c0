//! `GET /stream` upgraded to a WebSocket: the piste GUI's streaming protocol
//! (`shared/spec/piste.md`). Control messages are JSON text frames; a frame's JPEG and the log
//! each come as one binary frame right after their JSON header. Frames go into the same session
//! store as `POST /stream`'s, analysed as they come, in the same session-id space: a phrase begun
//! here can be resumed, or get its log by `PUT`, over HTTP. The verdict goes out as
//! `process_complete` as soon as the log is read and the frames reach the last light. Every
//! failure is an `error` message with the spec's codes before any close; one socket may carry
//! phrase after phrase.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use hyper::{header, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;
use tracing::{debug, info, warn};

use referee_engine::choice::EngineChoice;
use crate::error::{full_body, ApiError, ResponseBody};
use crate::handlers::stream::{engine_param, pipeline_options, settle_choices};
use crate::handlers::RequestBody;
use crate::session::{valid_session_id, Analysis, Session, SessionError, SessionState};
use crate::state::AppState;

/// Whether a request asks to be upgraded to a WebSocket.
pub fn is_upgrade(req: &Request<RequestBody>) -> bool {
    req.headers().get(header::UPGRADE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Answers the handshake (101) and serves the socket on a task of its own; a handshake that is
/// not a WebSocket version 13 one gets 400, and 503 while the model is still loading.
pub fn upgrade(state: Arc<AppState>, mut req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let headers = req.headers();
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")));
    if !connection_upgrade {
        return Err(ApiError::BadRequest("a WebSocket handshake needs `Connection: Upgrade`".into()));
    }
    if headers.get(header::SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(ApiError::BadRequest("only WebSocket version 13 is spoken (Sec-WebSocket-Version: 13)".into()));
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).map(|k| derive_accept_key(k.as_bytes())) else {
        return Err(ApiError::BadRequest("a WebSocket handshake needs Sec-WebSocket-Key".into()));
    };
    let engine = engine_param(&req)?;
    if state.config.analysis {
        state.ready_pose()?;
    }
    let upgraded = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgraded.await {
            Ok(io) => {
                let limit = state.config.max_frame_bytes.max(state.config.max_log_bytes) as usize + CONTROL_BYTES;
                let config = WebSocketConfig::default().max_message_size(Some(limit)).max_frame_size(Some(limit));
                let socket = WebSocketStream::from_raw_socket(TokioIo::new(io), Role::Server, Some(config)).await;
                serve(state, socket, engine).await;
            }
            Err(e) => debug!(%e, "WebSocket upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_ACCEPT, key)
        .body(full_body(Bytes::new()))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Room above the largest frame or log for a message's own framing.
const CONTROL_BYTES: usize = 64 * 1024;
/// Messages waiting to be written to one socket; the reader waits when they are all taken.
const OUTBOX: usize = 64;
/// A socket with no phrase open is closed after this many body idle timeouts of silence (the
/// GUI pings every 20 s, so only a vanished one is closed).
const IDLE_SOCKET_FACTOR: u32 = 10;

/// The spec's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    /// A message out of order (a binary frame with no header before it, a header where its
    /// payload was due), or a socket gone quiet.
    Protocol,
    /// A message that is not JSON, lacks a required field, or names another session.
    InvalidMessage,
    /// The session could not be opened (busy, already decided, a bad id, storage).
    SessionStartFailed,
    /// A frame or a log with no session open.
    NoActiveSession,
    /// A frame the session could not take (too large, storage).
    FrameProcessingFailed,
    /// The phrase could not be decided (a log the rules refuse, no fencers, the pose backend).
    ProcessingFailed,
}

impl Code {
    fn name(self) -> &'static str {
        match self {
            Code::Protocol => "PROTOCOL_ERROR",
            Code::InvalidMessage => "INVALID_MESSAGE",
            Code::SessionStartFailed => "SESSION_START_FAILED",
            Code::NoActiveSession => "NO_ACTIVE_SESSION",
            Code::FrameProcessingFailed => "FRAME_PROCESSING_FAILED",
            Code::ProcessingFailed => "PROCESSING_FAILED",
        }
    }
}

/// An `error` message to send: its code, words, whether the socket goes on, and the HTTP
/// status the same failure gets on `POST /stream` (for clients that exit with it).
#[derive(Debug)]
struct ProtocolError {
    code: Code,
    message: String,
    recoverable: bool,
    status: Option<u16>,
}

impl ProtocolError {
    fn new(code: Code, message: impl Into<String>) -> ProtocolError {
        ProtocolError { code, message: message.into(), recoverable: true, status: None }
    }

    /// The socket is closed after it.
    fn fatal(mut self) -> ProtocolError {
        self.recoverable = false;
        self
    }

    /// From a session's refusal: its words, and the status `POST /stream` answers it with.
    fn of_session(code: Code, err: SessionError) -> ProtocolError {
        let message = err.to_string();
        ProtocolError { status: Some(ApiError::from(err).status().as_u16()), ..ProtocolError::new(code, message) }
    }
}

/// The binary frame the last header announced.
#[derive(Debug)]
enum Awaited {
    Frame { number: u64, timestamp: Option<f64>, size: Option<u64> },
    Signal { size: Option<u64> },
}

/// The phrase open on this socket.
struct Phrase {
    session: Arc<Session>,
    /// The session's frame rate (from `session_start`).
    fps: f64,
    /// The client's clock at the phrase's t = 0: frame times are its timestamps less this.
    clock_zero: Option<f64>,
    /// `session_end` came (or the frames were all in some other way).
    upload_open: bool,
    /// Waits for the verdict and sends `process_complete`, once the log is read.
    verdict: Option<JoinHandle<()>>,
}

impl Phrase {
    /// Whether the socket may start another phrase: its verdict went out (or it failed), or its
    /// frames are all in (`session_end`) and the client moves on without waiting for it (the
    /// verdict is still made, and shown over HTTP).
    fn finished(&self) -> bool {
        !self.upload_open || self.verdict.as_ref().is_some_and(JoinHandle::is_finished)
    }
}

impl Drop for Phrase {
    fn drop(&mut self) {
        // The socket went away mid-upload: the phrase waits, interrupted, to be resumed.
        if self.upload_open {
            crate::handlers::end_upload_in_background(self.session.clone());
        }
        if let Some(verdict) = &self.verdict {
            verdict.abort();
        }
    }
}

/// One socket's protocol state.
struct Piste {
    state: Arc<AppState>,
    engine: Option<EngineChoice>,
    outbox: mpsc::Sender<Message>,
    phrase: Option<Phrase>,
    awaited: Option<Awaited>,
}

/// Serves one socket until the client closes it, goes quiet, or breaks the protocol beyond repair.
async fn serve<S>(state: Arc<AppState>, socket: WebSocketStream<S>, engine: Option<EngineChoice>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut incoming) = socket.split();
    let (outbox, mut outgoing) = mpsc::channel::<Message>(OUTBOX);
    let writer = tokio::spawn(async move {
        while let Some(message) = outgoing.recv().await {
            let closing = matches!(message, Message::Close(_));
            if sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let idle = Duration::from_secs(state.config.body_idle_seconds);
    let open = metrics::gauge!(crate::metrics::WEBSOCKETS_OPEN);
    open.increment(1.0);
    let mut piste = Piste { state, engine, outbox, phrase: None, awaited: None };
    loop {
        let uploading = piste.phrase.as_ref().is_some_and(|p| p.upload_open);
        let wait = if uploading { idle } else { idle * IDLE_SOCKET_FACTOR };
        let message = match tokio::time::timeout(wait, incoming.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => {
                // Over the size limit, or bytes that are not WebSocket frames: said, then closed.
                piste.send_error(ProtocolError::new(Code::Protocol, format!("unreadable message: {e}")).fatal()).await;
                break;
            }
            Ok(None) => break,
            Err(_) if uploading => {
                let message = format!(
                    "no message for {} s: the upload is cut; its frames are kept, start the session again to resume",
                    idle.as_secs()
                );
                piste.send_error(ProtocolError::new(Code::Protocol, message).fatal()).await;
                break;
            }
            Err(_) => break,
        };
        let handled = match message {
            Message::Text(text) => piste.on_text(text.as_str()).await,
            Message::Binary(bytes) => piste.on_binary(bytes).await,
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
            Message::Close(_) => break,
        };
        if let Err(error) = handled {
            let fatal = !error.recoverable;
            piste.send_error(error).await;
            if fatal {
                break;
            }
        }
    }
    let close = CloseFrame { code: CloseCode::Normal, reason: "".into() };
    let _ = piste.outbox.send(Message::Close(Some(close))).await;
    // Dropping the phrase marks an open upload interrupted.
    drop(piste);
    let _ = writer.await;
    open.decrement(1.0);
}

/// A JSON message's field, when it is a string.
fn text_field<'a>(message: &'a Value, key: &str) -> Option<&'a str> {
    message.get(key).and_then(Value::as_str)
}

/// A required field's value, or `INVALID_MESSAGE` naming it and what it should be.
fn required<T>(value: Option<T>, key: &str, kind: &str) -> Result<T, ProtocolError> {
    value.ok_or_else(|| ProtocolError::new(Code::InvalidMessage, format!("`{key}` is required ({kind})")))
}

impl Piste {
    async fn send(&self, message: Value) {
        let _ = self.outbox.send(Message::text(message.to_string())).await;
    }

    async fn send_error(&self, error: ProtocolError) {
        let session = self.phrase.as_ref().map(|p| p.session.id.clone());
        if !error.recoverable {
            debug!(code = error.code.name(), message = %error.message, "WebSocket closed on an error");
        }
        metrics::counter!(crate::metrics::WEBSOCKET_ERRORS, "code" => error.code.name()).increment(1);
        self.send(json!({
            "type": "error",
            "session_id": session,
            "error_code": error.code.name(),
            "error_message": error.message,
            "recoverable": error.recoverable,
            "status": error.status,
        }))
        .await;
    }

    async fn on_text(&mut self, text: &str) -> Result<(), ProtocolError> {
        if let Some(awaited) = self.awaited.take() {
            let what = match awaited {
                Awaited::Frame { number, .. } => format!("frame {number}'s JPEG"),
                Awaited::Signal { .. } => "the log".to_owned(),
            };
            return Err(ProtocolError::new(Code::Protocol, format!("a binary message with {what} was due after its header; the header is dropped")));
        }
        let message: Value = serde_json::from_str(text).map_err(|e| ProtocolError::new(Code::InvalidMessage, format!("not JSON: {e}")))?;
        let kind = required(text_field(&message, "type"), "type", "a string")?.to_owned();
        match kind.as_str() {
            "ping" => {
                self.send(json!({ "type": "pong" })).await;
                Ok(())
            }
            "pong" => Ok(()),
            "session_start" => self.start(&message).await,
            "frame" => {
                self.open_phrase(&message)?;
                let number = required(message.get("frame_number").and_then(Value::as_u64), "frame_number", "an integer from 0")?;
                let timestamp = required(message.get("timestamp").and_then(Value::as_f64), "timestamp", "seconds")?;
                self.awaited = Some(Awaited::Frame { number, timestamp: Some(timestamp), size: message.get("size").and_then(Value::as_u64) });
                Ok(())
            }
            "signal" => {
                self.open_phrase(&message)?;
                self.awaited = Some(Awaited::Signal { size: message.get("size").and_then(Value::as_u64) });
                Ok(())
            }
            "session_end" => self.end(&message).await,
            other => Err(ProtocolError::new(Code::InvalidMessage, format!("unknown message type {other:?}"))),
        }
    }

    /// The phrase a `frame`, `signal` or `session_end` names: the one open on this socket.
    fn open_phrase(&self, message: &Value) -> Result<&Phrase, ProtocolError> {
        let named = text_field(message, "session_id");
        match &self.phrase {
            Some(phrase) if named.is_none_or(|id| id == phrase.session.id) => Ok(phrase),
            Some(phrase) => Err(ProtocolError::new(Code::NoActiveSession, format!("session {} is open on this socket, not {:?}", phrase.session.id, named.unwrap_or("")))),
            None => Err(ProtocolError::new(Code::NoActiveSession, "no session is open: send session_start first")),
        }
    }

    async fn start(&mut self, message: &Value) -> Result<(), ProtocolError> {
        let id = required(text_field(message, "session_id"), "session_id", "a string")?.to_owned();
        let fps = required(message.get("fps").and_then(Value::as_f64), "fps", "frames per second")?;
        let width = required(message.get("width").and_then(Value::as_u64), "width", "pixels")?;
        let height = required(message.get("height").and_then(Value::as_u64), "height", "pixels")?;
        if !(fps > 0.0 && fps.is_finite()) || width == 0 || height == 0 {
            return Err(ProtocolError::new(Code::InvalidMessage, format!("fps, width and height must be positive (got {fps}, {width}, {height})")));
        }
        let start_failed = |message: String| ProtocolError::new(Code::SessionStartFailed, message);
        if !valid_session_id(&id) {
            return Err(start_failed(format!("invalid session id {id:?}: use 1 to 64 of A-Z a-z 0-9 _ -")));
        }
        match &self.phrase {
            Some(open) if open.session.id != id && !open.finished() => {
                return Err(start_failed(format!("session {} is still open on this socket: send its session_end first", open.session.id)));
            }
            _ => {}
        }
        // The phrase open before (finished, or the same one started again) is let go first.
        self.phrase = None;
        let engine = match text_field(message, "engine") {
            Some(name) => Some(name.parse::<EngineChoice>().map_err(|e| ProtocolError::new(Code::InvalidMessage, e))?),
            None => self.engine,
        };
        let state = self.state.clone();
        let opened = tokio::task::spawn_blocking(move || -> Result<(Arc<Session>, Option<Analysis>), ProtocolError> {
            let pose = if state.config.analysis { Some(state.ready_pose().map_err(|_| start_failed("the pose model is still loading".into()))?) } else { None };
            // Busy, already decided, receiving elsewhere: the client may try again (or another id).
            let session = state.sessions.open_upload(&id, None).map_err(|e| ProtocolError::of_session(Code::SessionStartFailed, e))?;
            let (fps, engine) = settle_choices(&state.config, &session, Some(fps), engine);
            let analysis = pose.map(|pose| Analysis { pose, options: pipeline_options(&state.config, fps, engine) });
            Ok((session, analysis))
        })
        .await
        .map_err(|e| ProtocolError::new(Code::SessionStartFailed, format!("the session could not be opened: {e}")))??;
        let (session, analysis) = opened;
        if let Some(analysis) = analysis {
            session.start_analysis(analysis);
        }
        info!(session = %session.id, fps, width, height, "WebSocket phrase started");
        let id = session.id.clone();
        let started = session.progress();
        self.phrase = Some(Phrase { session, fps, clock_zero: None, upload_open: true, verdict: None });
        self.send(json!({
            "type": "session_started",
            "session_id": id,
            "next_frame_index": started.next_frame_index,
        }))
        .await;
        Ok(())
    }

    async fn on_binary(&mut self, bytes: Bytes) -> Result<(), ProtocolError> {
        let Some(awaited) = self.awaited.take() else {
            return Err(ProtocolError::new(Code::Protocol, "a binary message with no frame or signal header before it"));
        };
        let size = match &awaited {
            Awaited::Frame { size, .. } | Awaited::Signal { size } => *size,
        };
        if let Some(size) = size.filter(|&s| s != bytes.len() as u64) {
            return Err(ProtocolError::new(Code::InvalidMessage, format!("the header said {size} bytes, {} came", bytes.len())));
        }
        match awaited {
            Awaited::Frame { number, timestamp, .. } => self.frame(number, timestamp, bytes).await,
            Awaited::Signal { .. } => self.signal(bytes).await,
        }
    }

    async fn frame(&mut self, number: u64, timestamp: Option<f64>, jpeg: Bytes) -> Result<(), ProtocolError> {
        let Some(phrase) = self.phrase.as_mut() else {
            return Err(ProtocolError::new(Code::NoActiveSession, "no session is open: send session_start first"));
        };
        if !phrase.upload_open {
            return Err(ProtocolError::new(Code::FrameProcessingFailed, format!("session {} has ended: no more frames", phrase.session.id)));
        }
        // The client's clock (seconds since the epoch, as the GUI stamps frames) is put on the
        // phrase's: its first frame sits at frame_number / fps.
        let time = timestamp.map(|t| {
            let zero = *phrase.clock_zero.get_or_insert(t - number as f64 / phrase.fps);
            t - zero
        });
        let session = phrase.session.clone();
        let max_frame = self.state.config.max_frame_bytes;
        if jpeg.len() as u64 > max_frame {
            let message = format!("frame {number} is over the {max_frame}-byte limit (--max-frame-bytes)");
            return Err(ProtocolError { status: Some(StatusCode::PAYLOAD_TOO_LARGE.as_u16()), ..ProtocolError::new(Code::FrameProcessingFailed, message) });
        }
        let added = tokio::task::spawn_blocking(move || session.add_frame(Some(number), time, jpeg))
            .await
            .map_err(|e| ProtocolError::new(Code::FrameProcessingFailed, e.to_string()))?;
        let status = match added {
            Ok(true) => "received",
            Ok(false) => "duplicate",
            Err(e) => {
                let fatal = matches!(e, SessionError::PhraseTooLarge { .. } | SessionError::Storage(_));
                let error = ProtocolError::of_session(Code::FrameProcessingFailed, e);
                return Err(if fatal { error.fatal() } else { error });
            }
        };
        let id = &self.phrase.as_ref().expect("open above").session.id;
        self.send(json!({ "type": "frame_ack", "session_id": id, "frame_number": number, "status": status })).await;
        Ok(())
    }

    async fn signal(&mut self, bytes: Bytes) -> Result<(), ProtocolError> {
        let Some(phrase) = self.phrase.as_ref() else {
            return Err(ProtocolError::new(Code::NoActiveSession, "no session is open: send session_start first"));
        };
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (session, ended, max) = (phrase.session.clone(), !phrase.upload_open, self.state.config.max_log_bytes);
        let appended = tokio::task::spawn_blocking(move || {
            session.append_signal(&text, max)?;
            // With every frame in, a log without its end lines is read as it is.
            if ended {
                session.settle_log()?;
            }
            Ok::<_, SessionError>(())
        })
        .await
        .map_err(|e| ProtocolError::new(Code::ProcessingFailed, e.to_string()))?;
        let id = phrase.session.id.clone();
        match appended {
            Ok(()) => {}
            Err(e @ SessionError::LogTooLarge(_)) => return Err(ProtocolError::of_session(Code::InvalidMessage, e)),
            Err(e) => return Err(ProtocolError::of_session(Code::ProcessingFailed, e)),
        }
        self.send(json!({ "type": "signal_ack", "session_id": id, "status": "received" })).await;
        self.await_verdict().await;
        Ok(())
    }

    async fn end(&mut self, message: &Value) -> Result<(), ProtocolError> {
        self.open_phrase(message)?;
        let expected = message.get("total_frames").and_then(Value::as_u64);
        let phrase = self.phrase.as_mut().expect("checked above");
        if phrase.upload_open {
            phrase.upload_open = false;
            let session = phrase.session.clone();
            let settled = tokio::task::spawn_blocking(move || {
                let settled = session.settle_log();
                session.end_upload(true);
                settled
            })
            .await
            .map_err(|e| ProtocolError::new(Code::ProcessingFailed, e.to_string()))?;
            if let Err(e) = settled {
                return Err(ProtocolError::of_session(Code::ProcessingFailed, e));
            }
        }
        let progress = phrase.session.progress();
        let received = progress.frames_received as u64;
        let id = phrase.session.id.clone();
        self.send(json!({
            "type": "session_ended",
            "session_id": id,
            "validation": {
                "frames_received": received,
                "expected_frames": expected,
                "complete": expected.is_none_or(|n| n == received),
                "next_frame_index": progress.next_frame_index,
            },
        }))
        .await;
        self.await_verdict().await;
        Ok(())
    }

    /// Once the log is read: `process_start`, then (on a task of its own, so that frames, pings
    /// and late log lines are still served) `process_complete` with the answer, or an error.
    async fn await_verdict(&mut self) {
        let Some(phrase) = self.phrase.as_mut() else { return };
        if phrase.verdict.is_some() || !phrase.session.progress().signal_received || !phrase.session.analysed() {
            return;
        }
        let (session, outbox) = (phrase.session.clone(), self.outbox.clone());
        let id = session.id.clone();
        let _ = outbox.send(Message::text(json!({ "type": "process_start", "session_id": id }).to_string())).await;
        phrase.verdict = Some(tokio::spawn(async move {
            let verdict = session.verdict().await;
            let message = match (verdict.state, verdict.result, verdict.failure) {
                (SessionState::Done, Some(result), _) => json!({ "type": "process_complete", "session_id": id, "result": result }),
                (_, _, failure) => {
                    // The status POST /stream answers the same failure with.
                    let error = failure.map_or_else(|| ApiError::Internal("the phrase could not be analysed".into()), ApiError::from);
                    let (status, message) = (error.status().as_u16(), error.to_string());
                    warn!(session = %id, %message, "WebSocket phrase failed");
                    metrics::counter!(crate::metrics::WEBSOCKET_ERRORS, "code" => Code::ProcessingFailed.name()).increment(1);
                    json!({ "type": "error", "session_id": id, "error_code": Code::ProcessingFailed.name(), "error_message": message, "recoverable": true, "status": status })
                }
            };
            let _ = outbox.send(Message::text(message.to_string())).await;
        }));
    }
}
