//! The answer to a decided phrase, in the legacy service's shape (with both engines' calls and,
//! for streamed phrases, the stream's counters), saved as `analysis_result.json` before it is
//! returned, and the phrase's timeline beside it. Nothing here knows HTTP.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};

use referee_store::{write_atomically, write_durably};
use crate::analysis::pipeline::PhraseOutcome;
use crate::analysis::v2::EngineChoice;

/// Where a finished phrase's files are, for the response.
#[derive(Debug, Clone)]
pub struct PhraseFiles {
    /// The artifact directory.
    pub dir: PathBuf,
    /// The uploaded (or stored) video.
    pub video: PathBuf,
    /// The stored log.
    pub signal: PathBuf,
}

/// The legacy response (and `analysis_result.json`, written whole before it is returned).
/// `stream` adds the streaming route's counters.
pub fn phrase_result(files: &PhraseFiles, outcome: &PhraseOutcome, include_keypoints: bool, started: Instant, stream: Option<Value>) -> std::io::Result<Value> {
    let show = |p: &Path| p.display().to_string();
    let result_json = files.dir.join("analysis_result.json");
    let mut artifacts = serde_json::Map::new();
    if let Some(p) = &outcome.files.corrected_video {
        artifacts.insert("corrected_video".into(), show(p).into());
    }
    if let Some(p) = &outcome.files.workbook {
        artifacts.insert("excel".into(), show(p).into());
    }
    if let Some(p) = &outcome.files.overlay_video {
        artifacts.insert("analysis_video".into(), show(p).into());
    }
    let shown_video = outcome.files.overlay_video.as_ref().or(outcome.files.corrected_video.as_ref()).unwrap_or(&files.video);
    artifacts.insert("video".into(), show(shown_video).into());
    artifacts.insert("signal".into(), show(&files.signal).into());
    artifacts.insert("result_json".into(), show(&result_json).into());
    let timeline_json = files.dir.join("timeline.json");
    let timeline = serde_json::to_vec(&outcome.timeline)?;
    write_atomically(&timeline_json, &timeline)?;
    artifacts.insert("timeline".into(), show(&timeline_json).into());
    let legacy = serde_json::to_value(&outcome.decision)?;
    let v2 = match &outcome.v2 {
        Ok(d) => serde_json::to_value(d)?,
        Err(reason) => json!({ "error": reason }),
    };
    let chosen = match outcome.engine {
        EngineChoice::Legacy => legacy.clone(),
        EngineChoice::V2 => v2.clone(),
    };
    let mut body = json!({
        "input_video": show(&files.video),
        "input_signal": show(&files.signal),
        "decision": chosen,
        "artifacts": artifacts,
        "metadata": {
            "video_angle": outcome.normalised.video_angle,
            "normalisation_constant": outcome.normalised.normalisation_constant,
            "frames_processed": outcome.frames_processed,
        },
        "artifact_dir": show(&files.dir),
        "wall_time_seconds": started.elapsed().as_secs_f64(),
        "engine": outcome.engine.name(),
        "decisions": { "legacy": legacy, "v2": v2 },
    });
    if include_keypoints {
        body["keypoints"] = serde_json::to_value(&outcome.normalised.keypoints)?;
    }
    if let Some(stream) = stream {
        body["stream"] = stream;
    }
    let bytes = serde_json::to_vec_pretty(&body)?;
    // The verdict outlives a power cut once it is answered.
    write_durably(&result_json, &bytes)?;
    Ok(body)
}

