//! The answer to a decided phrase, in the legacy service's shape (with every engine's calls and,
//! for streamed phrases, the stream's counters), saved as `analysis_result.json` before it is
//! returned, and the phrase's timeline beside it. Nothing here knows HTTP.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use referee_store::{write_atomically, write_durably};
use crate::analysis::pipeline::PhraseOutcome;
use referee_engine::choice::EngineChoice;

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

/// The answer to a decided phrase: the legacy service's keys in the legacy's order (the
/// contract its clients read), then ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhraseAnswer {
    /// The video as stored.
    pub input_video: String,
    /// The log as stored.
    pub input_signal: String,
    /// The call of the engine the answer is by (`engine`).
    pub decision: Value,
    /// The files written for the phrase.
    pub artifacts: Artifacts,
    /// What the analysis measured.
    pub metadata: Metadata,
    /// Where the files are.
    pub artifact_dir: String,
    /// Seconds from the request (or the stream's start) to the answer.
    pub wall_time_seconds: f64,
    /// Whose call `decision` is: `legacy`, `v2` or `v3`.
    pub engine: String,
    /// Every engine's call.
    pub decisions: Decisions,
    /// The normalised keypoints, when asked for (`include_keypoints`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keypoints: Option<Value>,
    /// A streamed phrase's counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamCounters>,
}

/// The files of a decided phrase, in the legacy's order; the optional ones only when written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Artifacts {
    /// The fisheye-corrected video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corrected_video: Option<String>,
    /// The keypoints workbook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub excel: Option<String>,
    /// The overlay video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis_video: Option<String>,
    /// The video to show: the overlay, else the corrected one, else the input.
    pub video: String,
    /// The log.
    pub signal: String,
    /// `analysis_result.json`.
    pub result_json: String,
    /// `timeline.json`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<String>,
}

impl Artifacts {
    /// Every file named, for serving them by name.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        [&self.corrected_video, &self.excel, &self.analysis_video, &self.timeline]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .chain([self.video.as_str(), self.signal.as_str(), self.result_json.as_str()])
    }
}

/// What the analysis measured, in the legacy's order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Metadata {
    /// `left`, `right` or `middle`.
    pub video_angle: String,
    /// c in pixels (`null` when nobody was seen).
    pub normalisation_constant: Option<f64>,
    /// Frames through pose.
    pub frames_processed: usize,
}

/// Every engine's call: the legacy's, v2's and v3's (`{"error": ...}` where one could not decide).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Decisions {
    /// The legacy rules' call.
    pub legacy: Value,
    /// v2's call.
    pub v2: Value,
    /// v3's call (absent from answers saved before v3).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub v3: Value,
}

/// A streamed phrase's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamCounters {
    /// The session id.
    pub session: String,
    /// Frames stored (every one the uploads brought, those after the call included).
    pub frames_received: u64,
    /// Frames through pose, corrupt ones included.
    pub frames_analysed: u64,
    /// Frames that were not decodable JPEGs.
    pub corrupt_frames: u64,
    /// Frame bytes stored.
    pub bytes: u64,
    /// Seconds the uploads took.
    pub upload_seconds: f64,
    /// Seconds from the last byte to the verdict.
    pub verdict_seconds_after_last_byte: f64,
    /// Frames stored after the call was made from a live log (they never change it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames_after_verdict: Option<u64>,
}

/// The legacy response (and `analysis_result.json`, written whole before it is returned).
/// `stream` adds the streaming route's counters.
pub fn phrase_result(files: &PhraseFiles, outcome: &PhraseOutcome, include_keypoints: bool, started: Instant, stream: Option<StreamCounters>) -> std::io::Result<Value> {
    let show = |p: &Path| p.display().to_string();
    let result_json = files.dir.join("analysis_result.json");
    let shown_video = outcome.files.overlay_video.as_ref().or(outcome.files.corrected_video.as_ref()).unwrap_or(&files.video);
    let timeline_json = files.dir.join("timeline.json");
    let timeline = serde_json::to_vec(&outcome.timeline)?;
    write_atomically(&timeline_json, &timeline)?;
    let artifacts = Artifacts {
        corrected_video: outcome.files.corrected_video.as_deref().map(show),
        excel: outcome.files.workbook.as_deref().map(show),
        analysis_video: outcome.files.overlay_video.as_deref().map(show),
        video: show(shown_video),
        signal: show(&files.signal),
        result_json: show(&result_json),
        timeline: Some(show(&timeline_json)),
    };
    let legacy = serde_json::to_value(&outcome.decision)?;
    let call = |decided: &Result<_, String>| -> serde_json::Result<Value> {
        match decided {
            Ok(d) => serde_json::to_value(d),
            Err(reason) => Ok(json!({ "error": reason })),
        }
    };
    let (v2, v3) = (call(&outcome.v2)?, call(&outcome.v3)?);
    let chosen = match outcome.engine {
        EngineChoice::Legacy => legacy.clone(),
        EngineChoice::V2 => v2.clone(),
        EngineChoice::V3 => v3.clone(),
    };
    let c = outcome.normalised.normalisation_constant;
    let answer = PhraseAnswer {
        input_video: show(&files.video),
        input_signal: show(&files.signal),
        decision: chosen,
        artifacts,
        metadata: Metadata {
            video_angle: outcome.normalised.video_angle.clone(),
            normalisation_constant: c.is_finite().then_some(c),
            frames_processed: outcome.frames_processed,
        },
        artifact_dir: show(&files.dir),
        wall_time_seconds: started.elapsed().as_secs_f64(),
        engine: outcome.engine.name().to_owned(),
        decisions: Decisions { legacy, v2, v3 },
        keypoints: if include_keypoints { Some(serde_json::to_value(&outcome.normalised.keypoints)?) } else { None },
        stream,
    };
    let bytes = serde_json::to_vec_pretty(&answer)?;
    // The verdict outlives a power cut once it is answered.
    write_durably(&result_json, &bytes)?;
    Ok(serde_json::to_value(&answer)?)
}
