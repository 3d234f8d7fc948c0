//! The streaming routes: `POST /stream` (one phrase per request, frames stored and analysed as
//! they arrive), `GET /sessions/{id}`, `PUT /sessions/{id}/signal`, `GET /sessions/{id}/events`
//! (server-sent events) and `GET /sessions/{id}/artifacts/{name}`.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::TryStreamExt;
use http_body_util::{BodyExt, BodyStream, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{header, Request, Response, StatusCode};
use serde_json::json;

use crate::analysis::fisheye::FisheyeSettings;
use crate::analysis::pipeline::PipelineOptions;
use crate::analysis::v2::EngineChoice;
use crate::error::{json_response, ApiError, ResponseBody};
use crate::mjpeg::{boundary_from_content_type, settle_boundary, sniff_boundary, Limits, MjpegStream, Part};
use crate::server::AppState;
use crate::session::{new_id, valid_id, Progress, Session, SessionState};

/// Largest log accepted by `PUT /sessions/{id}/signal`.
const MAX_SIGNAL_BYTES: usize = 1 << 20;

fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    req.uri().query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| v.to_owned())
    })
}

fn session_id(req: &Request<Incoming>) -> Result<String, ApiError> {
    let given = query_param(req, "session")
        .or_else(|| req.headers().get("x-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned));
    match given {
        Some(id) if valid_id(&id) => Ok(id),
        Some(id) => Err(ApiError::BadRequest(format!("invalid session id {id:?}: use 1 to 64 of A-Z a-z 0-9 _ -"))),
        None => Ok(new_id()),
    }
}

fn with_session(mut response: Response<ResponseBody>, id: &str) -> Response<ResponseBody> {
    if let Ok(v) = header::HeaderValue::from_str(id) {
        response.headers_mut().insert("x-session-id", v);
    }
    response
}

/// The answer once the verdict is made: 200 with the result, or the failure's status.
fn verdict_response(p: Progress) -> Result<Response<ResponseBody>, ApiError> {
    match (p.state, p.result, p.failure) {
        (SessionState::Done, Some(result), _) => Ok(json_response(StatusCode::OK, &result)),
        (_, _, Some(failure)) => Err(failure),
        (_, _, None) => Err(ApiError::Internal("the phrase could not be analysed".into())),
    }
}

/// What a session's pipeline runs with: the server's fisheye settings, the phrase's frame rate
/// (`?fps=`, else 15 for the written videos), and the engine (`?engine=`, else the server's).
fn pipeline_options(config: &crate::config::ServeConfig, fps: Option<f64>, engine: Option<EngineChoice>) -> PipelineOptions {
    PipelineOptions {
        fisheye: config.fisheye_enabled.then_some(FisheyeSettings { strength: config.fisheye_strength, balance: config.fisheye_balance }),
        overlay: true,
        fps: fps.unwrap_or(15.0),
        dir: config.output_dir.clone(),
        stem: "frames".into(),
        engine: engine.unwrap_or(config.engine),
        frame_rate: fps,
    }
}

/// `?engine=legacy|v2`, if given; 400 for another.
fn engine_param(req: &Request<Incoming>) -> Result<Option<EngineChoice>, ApiError> {
    query_param(req, "engine").map(|e| e.parse::<EngineChoice>().map_err(ApiError::BadRequest)).transpose()
}

/// `POST /stream`.
pub async fn post_stream(state: Arc<AppState>, req: Request<Incoming>) -> Result<Response<ResponseBody>, ApiError> {
    let id = session_id(&req)?;
    let result = receive(state, &id, req).await;
    Ok(with_session(result.unwrap_or_else(ApiError::into_response), &id))
}

async fn receive(state: Arc<AppState>, id: &str, req: Request<Incoming>) -> Result<Response<ResponseBody>, ApiError> {
    let model = state.ready_model()?;
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_owned();
    let config = &state.config;
    let fps = query_param(&req, "fps").and_then(|f| f.parse::<f64>().ok()).filter(|f| *f > 0.0 && f.is_finite());
    let engine = engine_param(&req)?;
    let body = Box::pin(BodyStream::new(req.into_body()).try_filter_map(|frame| async move { Ok(frame.into_data().ok()) }));
    // 415 or 400 before any session is made. Without a Content-Type (ffmpeg's `-method POST`
    // sends none) the body's first line must be a boundary.
    let (boundary, body) = if content_type.is_empty() {
        sniff_boundary(body).await?
    } else {
        boundary_from_content_type(&content_type)?;
        settle_boundary(&content_type, body).await?
    };
    let session = state.sessions.open_upload(id, model, pipeline_options(config, fps, engine))?;
    let mut guard = UploadGuard { session: session.clone(), open: true };
    let limits = Limits { max_part_bytes: config.max_frame_bytes, max_phrase_bytes: config.max_phrase_bytes, ..Limits::default() };
    let mut parts = MjpegStream::new(body, boundary, limits);
    let mut signal_error = None;
    let ended = loop {
        match parts.next_part().await {
            Ok(Some(Part::Frame { index, timestamp, bytes })) => {
                if let Err(e) = session.add_frame(index, timestamp, &bytes) {
                    break Err(e);
                }
            }
            Ok(Some(Part::Signal { text, .. })) => {
                if let Err(e) = session.set_signal(&text) {
                    signal_error = Some(e);
                }
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(ApiError::from(e)),
        }
    };
    session.end_upload(ended.is_ok());
    guard.open = false;
    if let Err(e) = &ended {
        tracing::warn!(session = %id, error = %e, "upload ended early; the session can be resumed");
    }
    ended?;
    if let Some(e) = signal_error {
        return Err(e);
    }
    answer_when_ready(&session).await
}

/// Marks the upload interrupted if the handler is dropped mid-body (the client went away and
/// hyper cancelled the request), so the session can be resumed.
struct UploadGuard {
    session: Arc<Session>,
    open: bool,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        if self.open {
            self.session.end_upload(false);
        }
    }
}

/// With the log in, waits for the verdict; without it, says what is awaited (202).
async fn answer_when_ready(session: &Session) -> Result<Response<ResponseBody>, ApiError> {
    if session.progress().signal_received {
        return verdict_response(session.verdict().await);
    }
    let body = serde_json::to_value(session.progress()).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(json_response(StatusCode::ACCEPTED, &body))
}

fn known(state: &AppState, id: &str) -> Result<Arc<Session>, ApiError> {
    state.sessions.get(id).ok_or_else(|| ApiError::NotFound(format!("no session {id:?}")))
}

/// `GET /sessions/{id}`.
pub fn get_session(state: &AppState, id: &str) -> Result<Response<ResponseBody>, ApiError> {
    let p = known(state, id)?.progress();
    Ok(json_response(StatusCode::OK, &serde_json::to_value(p).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `PUT /sessions/{id}/signal`: the log for a producer that cannot send a text part.
pub async fn put_signal(state: &AppState, id: &str, req: Request<Incoming>) -> Result<Response<ResponseBody>, ApiError> {
    let session = known(state, id)?;
    if matches!(session.progress().state, SessionState::Done | SessionState::Failed) {
        return Err(ApiError::Conflict(format!("session {id} is already complete")));
    }
    let bytes = Limited::new(req.into_body(), MAX_SIGNAL_BYTES)
        .collect()
        .await
        .map_err(|e| ApiError::PayloadTooLarge(format!("the log is over {MAX_SIGNAL_BYTES} bytes or was cut off: {e}")))?
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::BadRequest("the log is not UTF-8".into()))?;
    session.set_signal(&text)?;
    if session.upload_complete() {
        // A session reloaded after a restart has no worker yet: its frames are analysed now.
        let model = state.ready_model()?;
        session.ensure_worker(model, pipeline_options(&state.config, None, None))?;
        return verdict_response(session.verdict().await);
    }
    let p = session.progress();
    Ok(json_response(StatusCode::ACCEPTED, &serde_json::to_value(p).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `GET /sessions/{id}/events`: `progress` events as frames arrive and are analysed, then one
/// `verdict` (or `failed`) event, then the end of the stream.
pub fn events(state: &AppState, id: &str) -> Result<Response<ResponseBody>, ApiError> {
    let rx = known(state, id)?.subscribe();
    let stream = futures_util::stream::unfold((rx, false, false), |(mut rx, started, finished)| async move {
        if finished {
            return None;
        }
        if started && rx.changed().await.is_err() {
            return None;
        }
        let p = rx.borrow_and_update().clone();
        let (event, data, last) = match p.state {
            SessionState::Done => ("verdict", p.result.clone().unwrap_or_default(), true),
            SessionState::Failed => ("failed", json!({ "detail": p.failure.map(|e| e.to_string()) }), true),
            _ => ("progress", serde_json::to_value(Progress { result: None, ..p }).unwrap_or_default(), false),
        };
        let text = format!("event: {event}\ndata: {data}\n\n");
        Some((Ok::<_, std::io::Error>(Frame::data(Bytes::from(text))), (rx, true, last)))
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(StreamBody::new(stream).boxed_unsync())
        .expect("static headers"))
}

/// `GET /sessions/{id}/artifacts/{name}`: a file of the session's directory.
pub async fn artifact(state: &AppState, id: &str, name: &str) -> Result<Response<ResponseBody>, ApiError> {
    let session = known(state, id)?;
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        return Err(ApiError::NotFound(format!("no artifact {name:?}")));
    }
    let path = session.dir.join(name);
    let file = tokio::fs::File::open(&path).await.map_err(|_| ApiError::NotFound(format!("no artifact {name:?}")))?;
    let kind = match path.extension().and_then(|e| e.to_str()) {
        Some("json") => "application/json",
        Some("mp4") => "video/mp4",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("mjpeg") => "video/x-motion-jpeg",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 64 * 1024];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Frame::data(Bytes::from(buf))), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    Ok(Response::builder().header(header::CONTENT_TYPE, kind).body(StreamBody::new(chunks).boxed_unsync()).expect("static headers"))
}

