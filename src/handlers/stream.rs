//! `POST /stream`: one phrase per request, its frames stored and analysed as they arrive, the
//! verdict answered once the log is in (or 202 while it is awaited).

use std::sync::Arc;

use hyper::{header, Request, Response, StatusCode};

use crate::analysis::fisheye::FisheyeSettings;
use crate::analysis::pipeline::{PipelineOptions, VideoWriting};
use referee_engine::choice::EngineChoice;
use crate::handlers::{end_upload_in_background, on_disk, RequestBody};
use crate::error::{json_response, ApiError, ResponseBody};
use crate::mjpeg::PhraseBody;
use referee_wire::mjpeg::{Limits, Part};
use referee_store::PhraseChoices;
use crate::session::{new_session_id_with_prefix, valid_session_id, Analysis, Progress, Session, SessionState};
use crate::state::AppState;

/// A query parameter's value, percent-decoded (the route table's reader).
pub fn query_param(req: &Request<RequestBody>, name: &str) -> Option<String> {
    crate::routes::query_param(req.uri(), name)
}

fn session_id(req: &Request<RequestBody>) -> Result<String, ApiError> {
    let given = query_param(req, "session")
        .or_else(|| req.headers().get(referee_wire::SESSION_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned));
    match given {
        Some(id) if valid_session_id(&id) => Ok(id),
        Some(id) => Err(ApiError::BadRequest(format!("invalid session id {id:?}: use 1 to 64 of A-Z a-z 0-9 _ -"))),
        None => Ok(new_session_id_with_prefix("s")),
    }
}

fn with_session(mut response: Response<ResponseBody>, id: &str) -> Response<ResponseBody> {
    if let Ok(v) = header::HeaderValue::from_str(id) {
        response.headers_mut().insert(header::HeaderName::from_bytes(referee_wire::SESSION_ID_HEADER.as_bytes()).expect("a valid header name"), v);
    }
    response
}

/// The answer once the verdict is made: 200 with the result, or the failure's status.
pub fn verdict_response(p: Progress) -> Result<Response<ResponseBody>, ApiError> {
    match (p.state, p.result, p.failure) {
        (SessionState::Done, Some(result), _) => Ok(json_response(StatusCode::OK, &result)),
        (_, _, Some(failure)) => Err(failure.into()),
        (_, _, None) => Err(ApiError::Internal("the phrase could not be analysed".into())),
    }
}

/// What a session's pipeline runs with: the server's fisheye settings, the phrase's frame rate
/// (`?fps=`, else 15 for the written videos), and the engine (`?engine=`, else the server's);
/// its videos are written after the verdict, never on the way to it.
pub fn pipeline_options(config: &crate::config::ServeConfig, fps: Option<f64>, engine: Option<EngineChoice>) -> PipelineOptions {
    PipelineOptions {
        fisheye: config.fisheye_enabled.then_some(FisheyeSettings { strength: config.fisheye_strength, balance: config.fisheye_balance }),
        overlay: true,
        fps: fps.unwrap_or(15.0),
        dir: config.sessions_root(),
        stem: "frames".into(),
        engine: engine.unwrap_or(config.engine),
        frame_rate: fps,
        videos: VideoWriting::AfterVerdict,
        in_flight: config.in_flight(),
    }
}

/// What a session's pipeline runs with when it is decided again (after a restart, or a PUT of
/// the log): the choices its first upload stored, else the server's defaults.
pub fn stored_pipeline_options(config: &crate::config::ServeConfig, session: &Session) -> PipelineOptions {
    let (fps, engine) = stored_choices(session).unwrap_or_default();
    pipeline_options(config, fps, engine)
}

/// The frame rate and engine a session's first upload stored, if it stored any (a rate or an
/// engine that does not parse is left to the server's defaults).
fn stored_choices(session: &Session) -> Option<(Option<f64>, Option<EngineChoice>)> {
    let stored = PhraseChoices::read(&session.dir)?;
    Some((stored.fps.filter(usable_fps), stored.engine.and_then(|e| e.parse::<EngineChoice>().ok())))
}

/// A frame rate that can time frames: finite and positive.
fn usable_fps(fps: &f64) -> bool {
    *fps > 0.0 && fps.is_finite()
}

/// The phrase's choices: the ones its first upload stored (a resumed upload keeps them, as the
/// running analysis does), else this request's (`?fps=`, and `?engine=` or the server's engine),
/// stored now so that a restart decides the phrase the same way.
pub fn settle_choices(config: &crate::config::ServeConfig, session: &Session, fps: Option<f64>, engine: Option<EngineChoice>) -> (Option<f64>, Option<EngineChoice>) {
    if let Some(stored) = stored_choices(session) {
        return stored;
    }
    let engine = engine.unwrap_or(config.engine);
    let choices = PhraseChoices { engine: Some(engine.name().to_owned()), fps };
    if let Err(e) = choices.save(&session.dir) {
        // The phrase goes on: only a later re-decision would fall back to the server's defaults.
        tracing::warn!(session = %session.id, error = %e, "the phrase's choices could not be stored");
    }
    (fps, Some(engine))
}

/// `?engine=legacy|v2|v3`, if given; 400 for another.
pub fn engine_param(req: &Request<RequestBody>) -> Result<Option<EngineChoice>, ApiError> {
    query_param(req, "engine").map(|e| e.parse::<EngineChoice>().map_err(ApiError::BadRequest)).transpose()
}

/// `POST /stream`.
pub async fn post_stream(state: Arc<AppState>, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let id = session_id(&req)?;
    let result = receive(state, &id, req).await;
    Ok(with_session(result.unwrap_or_else(ApiError::into_response), &id))
}

async fn receive(state: Arc<AppState>, id: &str, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    // Without analysis, frames are stored only; with it, the model must be ready.
    let pose = if state.config.analysis { Some(state.ready_pose()?) } else { None };
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").trim().to_owned();
    let config = &state.config;
    let fps = query_param(&req, "fps").and_then(|f| f.parse::<f64>().ok()).filter(usable_fps);
    let engine = engine_param(&req)?;
    // 415 or 400 before any session is made.
    let limits = Limits { max_part_bytes: config.max_frame_bytes, max_phrase_bytes: config.max_phrase_bytes, ..Limits::default() };
    let mut body = PhraseBody::open(&content_type, req.into_body(), limits).await?;
    let boundary = body.boundary.clone();
    let parts = &mut body.parts;
    let (session, fps, engine) = {
        let (state, id) = (state.clone(), id.to_owned());
        on_disk(move || -> Result<_, ApiError> {
            let session = state.sessions.open_upload(&id, None)?;
            let (fps, engine) = settle_choices(&state.config, &session, fps, engine);
            Ok((session, fps, engine))
        })
        .await??
    };
    let mut guard = UploadGuard { session: session.clone(), open: true };
    if let Some(pose) = pose {
        session.start_analysis(Analysis { pose, options: pipeline_options(config, fps, engine) });
    }
    let mut signal_error = None;
    let mut parts_seen = 0usize;
    let ended = loop {
        let part = parts.next_part().await;
        if let Ok(Some(_)) = &part {
            parts_seen += 1;
        }
        match part {
            Ok(Some(Part::Frame { index, timestamp, bytes })) => {
                // One write in flight per upload: the next part is read once this one is stored.
                // Written where it is (the runtime hands this worker's other tasks to another
                // thread while it waits on the disk), not moved to the blocking pool frame by
                // frame: measured, a hop per frame cost two thirds of the ingest rate.
                if let Err(e) = tokio::task::block_in_place(|| session.add_frame(index, timestamp, bytes)) {
                    break Err(ApiError::from(e));
                }
            }
            // Each text part holds whole log lines: appended in order, read once the phrase's
            // end is in (then decided as soon as the frames reach the last light).
            Ok(Some(Part::Signal { text, .. })) => {
                let (session, max) = (session.clone(), config.max_log_bytes);
                match on_disk(move || session.append_signal(&text, max)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        signal_error.get_or_insert(ApiError::from(e));
                    }
                    Err(e) => {
                        signal_error.get_or_insert(e);
                    }
                }
            }
            // Bytes with no multipart delimiter at all are not a phrase (an empty but well-formed
            // body is: it opens or touches the session).
            Ok(None) if parts_seen == 0 && !parts.saw_delimiter() => {
                break Err(ApiError::BadRequest(format!("the body holds no multipart part: frames are JPEG parts between --{boundary} lines")))
            }
            Ok(None) => break Ok(()),
            Err(_) if body.went_quiet() => {
                break Err(ApiError::RequestTimeout(format!(
                    "no data came for {} s: the upload is cut; its {} frames are kept, post again with session {id} to resume",
                    config.body_idle_seconds,
                    session.progress().frames_received
                )))
            }
            Err(e) => break Err(ApiError::from(e)),
        }
    };
    let (settle, complete) = (ended.is_ok() && signal_error.is_none(), ended.is_ok());
    let ending = session.clone();
    let settled = on_disk(move || {
        // A log whose end lines never came is read as it is.
        let settled = if settle { ending.settle_log() } else { Ok(()) };
        ending.end_upload(complete);
        settled
    })
    .await;
    guard.open = false;
    match settled {
        Ok(Ok(())) => {}
        Ok(Err(e)) => signal_error = Some(ApiError::from(e)),
        Err(e) => signal_error = Some(e),
    }
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
            end_upload_in_background(self.session.clone());
        }
    }
}

/// With the log in, waits for the verdict; without it, says what is awaited (202).
async fn answer_when_ready(session: &Session) -> Result<Response<ResponseBody>, ApiError> {
    if session.progress().signal_received && session.analysed() {
        return verdict_response(session.verdict().await);
    }
    let body = serde_json::to_value(session.progress()).map_err(|e| ApiError::Internal(e.to_string()))?;
    // Stored, not analysed (`--analysis false`), or the log is still to come.
    Ok(json_response(StatusCode::ACCEPTED, &body))
}

