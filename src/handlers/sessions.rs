//! The routes on one streamed phrase: `GET /sessions/{id}` (its progress), `PUT
//! /sessions/{id}/signal` (the log, for a producer that cannot send a text part), `PUT
//! /sessions/{id}/call` (the referee's own call), `GET /sessions/{id}/events` (server-sent
//! events) and `GET /sessions/{id}/artifacts/{name}`.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::Frame;
use hyper::{header, Request, Response, StatusCode};
use serde_json::json;

use crate::analysis::answer::Artifacts;
use crate::handlers::{on_disk, RequestBody};
use crate::error::{json_response, ApiError, ResponseBody};
use crate::handlers::stream::{stored_pipeline_options, verdict_response};
use crate::session::{shown_call, Analysis, Progress, Session, SessionState};
use crate::state::AppState;
use referee_store::{Call, RefereeCall};

/// The most bytes a call's body may have: `left`, `right` or `none`, with room for whitespace.
const CALL_BYTES: usize = 64;

/// The session `id`, in memory or rebuilt from its files (on the blocking pool); 404 if none.
pub async fn known(state: &Arc<AppState>, id: &str) -> Result<Arc<Session>, ApiError> {
    let (state, key) = (state.clone(), id.to_owned());
    on_disk(move || state.sessions.get(&key)).await?.ok_or_else(|| ApiError::NotFound(format!("no session {id:?}")))
}

/// What `GET /sessions/{id}` answers: the progress, then the referee's own call.
#[derive(serde::Serialize)]
struct SessionDetail {
    #[serde(flatten)]
    progress: Progress,
    /// `left`, `right` or `none`; null when no call was given.
    referee_call: Option<Call>,
}

/// `GET /sessions/{id}`: its progress and `referee_call`.
pub async fn get_session(state: &Arc<AppState>, id: &str) -> Result<Response<ResponseBody>, ApiError> {
    let (held, key) = (state.clone(), id.to_owned());
    let found = on_disk(move || held.sessions.get(&key).map(|s| (shown_call(&s.id, &s.dir), s))).await?;
    let (referee_call, session) = found.ok_or_else(|| ApiError::NotFound(format!("no session {id:?}")))?;
    let detail = SessionDetail { progress: session.progress(), referee_call };
    Ok(json_response(StatusCode::OK, &serde_json::to_value(detail).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `PUT /sessions/{id}/call`: the referee's own call on the phrase, `left`, `right` or `none`
/// (whitespace and case ignored), stored beside it in place of any before, whatever its state;
/// answered with `{"session", "referee_call", "at"}`.
pub async fn put_call(state: &Arc<AppState>, id: &str, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let session = known(state, id).await?;
    let limited = Limited::new(req.into_body(), CALL_BYTES).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            ApiError::PayloadTooLarge(format!("a call is at most {CALL_BYTES} bytes: send left, right or none"))
        } else {
            ApiError::BadRequest(format!("the call's body was cut off: {e}"))
        }
    })?;
    let bytes = limited.to_bytes();
    let text = std::str::from_utf8(&bytes).map_err(|_| ApiError::BadRequest("the call is not UTF-8: send left, right or none".into()))?;
    let call = RefereeCall { call: Call::parse(text)?, at: crate::analysis::artifacts::utc_rfc3339(std::time::SystemTime::now()) };
    let stored = call.clone();
    on_disk(move || session.set_referee_call(&stored)).await??;
    Ok(json_response(StatusCode::OK, &json!({ "session": id, "referee_call": call.call, "at": call.at })))
}

/// `PUT /sessions/{id}/signal`: the log for a producer that cannot send a text part; on a
/// failed session, a retry from its stored frames.
pub async fn put_signal(state: &Arc<AppState>, id: &str, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    // A failed phrase (a panic, a read error) is decided again from its stored frames.
    let (held, key) = (state.clone(), id.to_owned());
    let session = on_disk(move || held.sessions.retry(&key)).await?.ok_or_else(|| ApiError::NotFound(format!("no session {id:?}")))?;
    if session.progress().state == SessionState::Done {
        return Err(ApiError::Conflict(format!("session {id} is already complete")));
    }
    let limit = state.config.max_log_bytes as usize;
    let bytes = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| ApiError::PayloadTooLarge(format!("the log is over {limit} bytes or was cut off: {e}")))?
        .to_bytes();
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| ApiError::BadRequest("the log is not UTF-8".into()))?;
    let storing = session.clone();
    on_disk(move || storing.set_signal(&text)).await??;
    if session.upload_complete() && state.config.analysis {
        // A session rebuilt after a restart is not analysed yet: its frames are analysed now.
        let pose = state.ready_pose()?;
        session.start_analysis(Analysis { pose, options: stored_pipeline_options(&state.config, &session) });
        return verdict_response(session.verdict().await);
    }
    let p = session.progress();
    Ok(json_response(StatusCode::ACCEPTED, &serde_json::to_value(p).map_err(|e| ApiError::Internal(e.to_string()))?))
}

/// `GET /sessions/{id}/events`: `progress` events as frames arrive and are analysed, then one
/// `verdict` (or `failed`) event, then the end of the stream.
pub async fn events(state: &Arc<AppState>, id: &str) -> Result<Response<ResponseBody>, ApiError> {
    let rx = known(state, id).await?.subscribe();
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
            SessionState::Failed => ("failed", json!({ "detail": p.failure.map(|f| f.message) }), true),
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

/// The files every session serves: the stored frames, their index, the log, the answer and the
/// view's latest picture.
const STORED_FILES: [&str; 5] = [referee_store::FRAMES, referee_store::INDEX, referee_store::SIGNAL, referee_store::RESULT, "view.jpg"];

/// Whether `name` is one of the session's listed artifacts: a stored file, or a file the answer
/// names under `artifacts` (videos, workbook, timeline). Nothing else in the directory is served.
fn listed(progress: &Progress, name: &str) -> bool {
    if STORED_FILES.contains(&name) {
        return true;
    }
    let artifacts = progress.result.as_ref().and_then(|r| r.get("artifacts")).and_then(|a| serde_json::from_value::<Artifacts>(a.clone()).ok());
    artifacts.is_some_and(|files| files.paths().any(|path| std::path::Path::new(path).file_name().and_then(|f| f.to_str()) == Some(name)))
}

/// `GET /sessions/{id}/artifacts/{name}`: a file of the session's directory. The videos follow
/// the verdict: asked for before they are written, the answer waits for them.
pub async fn artifact(state: &Arc<AppState>, id: &str, name: &str) -> Result<Response<ResponseBody>, ApiError> {
    let session: Arc<Session> = known(state, id).await?;
    if !listed(&session.progress(), name) {
        return Err(ApiError::NotFound(format!("no artifact {name:?}")));
    }
    if name.ends_with(".mp4") && session.progress().state == SessionState::Done {
        session.videos().await;
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

