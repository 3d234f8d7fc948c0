//! `POST /analyze`, the legacy drop-in: the form (`video`, `signal` or `txt`,
//! `include_keypoints`, `save_overlay`) streamed to disk, the video decoded frame by frame into
//! the phrase pipeline, and the legacy JSON (also saved as `analysis_result.json`).

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures_util::TryStreamExt;
use http_body_util::BodyStream;
use hyper::{header, Request, Response, StatusCode};
use tracing::{info, warn};

use crate::analysis::artifacts::{artifact_dir_name, carry_audio, create_artifact_dir, has_audio};
use crate::analysis::fisheye::FisheyeSettings;
use crate::analysis::frames::{bgr_mat, open_video, FrameError};
use crate::analysis::answer::{phrase_result, PhraseFiles};
use crate::analysis::pipeline::{PhraseOutcome, PhrasePipeline, PipelineOptions, ScoringLog, VideoWriting};
use referee_engine::choice::EngineChoice;
use referee_pose::PoseScheduler;
use crate::config::ServeConfig;
use crate::handlers::RequestBody;
use crate::error::{json_response, ApiError, ResponseBody};
use crate::handlers::form::{base_name, form_boundary, read_form, Form, FormLimits, SavedFile};

/// Where, under the output directory, a form is written while it arrives (removed once it is
/// read, and at start-up).
pub const STAGING: &str = ".incoming";

/// Frame rate assumed when a video does not say.
const DEFAULT_FPS: f64 = 15.0;

/// Handles `POST /analyze`.
pub async fn analyze(config: &ServeConfig, pose: Arc<PoseScheduler>, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let started = Instant::now();
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let boundary = form_boundary(content_type.as_deref())?;
    let staging = config.output_dir.join(STAGING).join(unique_name());
    let body = BodyStream::new(req.into_body()).try_filter_map(|frame| async move { Ok(frame.into_data().ok()) });
    let limits = FormLimits {
        max_parts: config.max_form_parts as usize,
        file_bytes: vec![("video", config.max_phrase_bytes), ("signal", config.max_log_bytes), ("txt", config.max_log_bytes)],
        other_file_bytes: config.max_frame_bytes,
    };
    let form = read_form(body, boundary, &staging, &limits).await;
    let result = match form {
        Ok(form) => accept(config, pose, form, started).await,
        Err(err) => Err(err),
    };
    let _ = tokio::fs::remove_dir_all(&staging).await;
    result
}

/// A name no other upload in this process has.
fn unique_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{}-{nanos}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn accept(config: &ServeConfig, pose: Arc<PoseScheduler>, form: Form, started: Instant) -> Result<Response<ResponseBody>, ApiError> {
    let video = form.file(&["video"]);
    let signal = form.file(&["signal", "txt"]);
    let missing: Vec<&str> = [("video", video.is_none()), ("signal", signal.is_none())]
        .iter()
        .filter(|(_, gone)| *gone)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::MissingFields(missing.iter().map(|s| s.to_string()).collect()));
    }
    let (video, signal) = (video.expect("checked"), signal.expect("checked"));
    let video_name = named(video, "Video file must have a filename")?;
    let signal_name = named(signal, "Signal file must have a filename")?;
    let include_keypoints = form_bool(&form, "include_keypoints", false)?;
    let save_overlay = form_bool(&form, "save_overlay", true)?;
    let engine = match form.field("engine") {
        Some(text) => text.parse::<EngineChoice>().map_err(ApiError::Unprocessable)?,
        None => config.engine,
    };

    let signal_text = String::from_utf8_lossy(&tokio::fs::read(&signal.path).await?).into_owned();
    let log = ScoringLog::parse(&signal_text).map_err(|e| ApiError::Unprocessable(e.to_string()))?;

    let dir = create_artifact_dir(&config.output_dir, &artifact_dir_name(&signal_name, SystemTime::now()))?;
    let video_path = dir.join(&video_name);
    let signal_path = dir.join(&signal_name);
    tokio::fs::rename(&video.path, &video_path).await?;
    tokio::fs::rename(&signal.path, &signal_path).await?;
    info!(dir = %dir.display(), video = %video_name, bytes = video.bytes, "analysing upload");

    let options = PipelineOptions {
        fisheye: config.fisheye_enabled.then_some(FisheyeSettings { strength: config.fisheye_strength, balance: config.fisheye_balance }),
        overlay: save_overlay,
        fps: DEFAULT_FPS,
        dir: dir.clone(),
        stem: stem_of(&video_name),
        engine,
        frame_rate: None,
        videos: VideoWriting::WhileAnalysing,
        in_flight: config.in_flight(),
    };
    let keep_audio = config.fisheye_keep_audio;
    let input = video_path.clone();
    metrics::counter!(crate::metrics::BYTES_RECEIVED).increment(video.bytes + signal.bytes);
    let outcome = tokio::task::spawn_blocking(move || analyse_video(pose, options, &input, &log, keep_audio))
        .await
        .map_err(|e| ApiError::Internal(format!("analysis task failed: {e}")))
        .and_then(|analysed| analysed);
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            crate::metrics::phrase_ended("analyze", if matches!(e, ApiError::Unprocessable(_)) { "undecidable" } else { "failed" });
            return Err(e);
        }
    };
    metrics::counter!(crate::metrics::FRAMES_ANALYSED).increment(outcome.frames_processed as u64);

    let files = PhraseFiles { dir, video: video_path, signal: signal_path };
    let body = phrase_result(&files, &outcome, include_keypoints, started, None)?;
    crate::metrics::decided("analyze", &body);
    Ok(json_response(StatusCode::OK, &body))
}

/// Decodes the video frame by frame into the pipeline (ffmpeg's pixels, as the legacy's
/// opencv-python read them), then decides.
fn analyse_video(pose: Arc<PoseScheduler>, mut options: PipelineOptions, video: &Path, log: &ScoringLog, keep_audio: bool) -> Result<PhraseOutcome, ApiError> {
    let unreadable = |e: FrameError| ApiError::UnsupportedMediaType(format!("cannot read the video: {e}"));
    let mut decoder = open_video(video).map_err(unreadable)?;
    if let Some(fps) = decoder.fps().filter(|f| f.is_finite() && *f > 0.0) {
        options.fps = fps;
    }
    let mut pipeline = PhrasePipeline::new(pose, options);
    for frame in decoder.by_ref() {
        let frame = frame.map_err(|e| unreadable(FrameError::Unreadable { path: video.to_owned(), reason: e.to_string() }))?;
        let image = bgr_mat(&frame).map_err(|e| ApiError::Internal(e.to_string()))?;
        pipeline.push(&image, Some(frame.time).filter(|t| t.is_finite()))?;
    }
    if pipeline.frames_processed() == 0 {
        return Err(ApiError::UnsupportedMediaType("the video has no frames ffmpeg can decode".into()));
    }
    let outcome = pipeline.finish(log)?;
    if let Some(corrected) = &outcome.files.corrected_video {
        if keep_audio && has_audio(video) {
            if let Err(e) = carry_audio(corrected, video) {
                warn!(%e, "corrected video kept without audio");
            }
        }
    }
    Ok(outcome)
}

fn named(file: &SavedFile, message: &str) -> Result<String, ApiError> {
    match file.filename.as_deref().map(base_name) {
        Some(name) if !name.is_empty() && name != "." && name != ".." => Ok(name),
        _ => Err(ApiError::BadRequest(message.into())),
    }
}

fn stem_of(name: &str) -> String {
    Path::new(name).file_stem().and_then(|s| s.to_str()).unwrap_or("video").to_owned()
}

/// A boolean form field as FastAPI reads one: true/false, 1/0, yes/no, on/off, t/f, y/n.
fn form_bool(form: &Form, name: &str, default: bool) -> Result<bool, ApiError> {
    let Some(text) = form.field(name) else { return Ok(default) };
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Ok(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Ok(false),
        other => Err(ApiError::Unprocessable(format!("{name} must be a boolean, got {other:?}"))),
    }
}
