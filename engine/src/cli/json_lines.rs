//! The engine's JSON-lines tools, one JSON line out per line in: `decide` (phrases, or one
//! phrase from a log and a keypoints workbook; `--engine legacy`, `v2` or `v3`), `parse-signal` and
//! `track`. A bad line gives an `error` line, never a stop.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::decision::Engine;
use crate::kinematics::{normalise, Keypoints};
use crate::signal;
use crate::tracker::{Points, Tracker};
use crate::choice::EngineChoice;
use crate::frame_times::FrameTimes;
use crate::{v2, v3};
use crate::workbook;

/// Arguments of `decide` (`ai-referee decide`, `referee-engine decide`).
#[derive(Debug, Clone, Args)]
pub struct DecideArgs {
    /// JSON lines with `id`, `signal`, `keypoints` and `normalisation_constant`.
    #[arg(long, conflicts_with_all = ["signal", "keypoints"], required_unless_present_all = ["signal", "keypoints"])]
    pub phrases: Option<PathBuf>,
    /// A scoring-box log (with --keypoints).
    #[arg(long, requires = "keypoints")]
    pub signal: Option<PathBuf>,
    /// A legacy keypoints workbook (.xlsx; with --signal).
    #[arg(long, requires = "signal")]
    pub keypoints: Option<PathBuf>,
    /// c in pixels, for the lunge flag (with --keypoints).
    #[arg(long)]
    pub normalisation_constant: Option<f64>,
    /// The video's frame rate, for `v2` with --keypoints (default: frame count over the log's span).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Which rules decide: `legacy` (the `/analyze` contract) or `v2`.
    #[arg(long, default_value = "legacy")]
    pub engine: EngineChoice,
}

/// Arguments of `parse-signal` (`ai-referee parse-signal`, `referee-engine parse-signal`).
#[derive(Debug, Clone, Args)]
pub struct ParseSignalArgs {
    /// JSON lines with `id` and `signal`.
    #[arg(long)]
    pub signals: PathBuf,
}

/// Arguments of `track` (`ai-referee track`, `referee-engine track`).
#[derive(Debug, Clone, Args)]
pub struct TrackArgs {
    /// JSON lines with `id`, `frame_width`, `frame_height` and `detections`.
    #[arg(long)]
    pub cases: PathBuf,
}

#[derive(Debug, Deserialize)]
struct PhraseLine {
    signal: String,
    keypoints: Value,
    normalisation_constant: Option<f64>,
    /// `v2`: each frame's time in seconds on the log's clock.
    #[serde(default)]
    frame_times: Option<Vec<f64>>,
    /// `v2`: the video's frame rate (when no `frame_times`).
    #[serde(default)]
    fps: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct SignalLine {
    signal: String,
}

#[derive(Debug, Deserialize)]
struct TrackLine {
    frame_width: u32,
    frame_height: u32,
    detections: Vec<Vec<Vec<[f32; 2]>>>,
}

/// `decide`: a decision per phrase line, or one from `--signal` and `--keypoints`.
pub fn run_decide(args: DecideArgs) -> Result<(), String> {
    if let Some(phrases) = &args.phrases {
        let engine = args.engine;
        return for_each_line(phrases, |line| {
            let p: PhraseLine = serde_json::from_value(line).map_err(|e| format!("bad phrase line: {e}"))?;
            let keypoints = Keypoints::from_json(p.keypoints)?;
            if engine != EngineChoice::Legacy {
                let times = match (p.frame_times, p.fps) {
                    (Some(times), _) => Some(FrameTimes::from_timestamps(times).map_err(|e| e.to_string())?),
                    (None, Some(fps)) => Some(FrameTimes::from_rate(fps, keypoints.frames())),
                    (None, None) => None,
                };
                let decision = match engine {
                    EngineChoice::V3 => v3::decide_log(&keypoints, &p.signal, times),
                    _ => v2::decide_log(&keypoints, &p.signal, times),
                };
                return Ok(json!({ "decision": decision.map_err(|e| e.to_string())? }));
            }
            let phrase = signal::parse(&p.signal).map_err(|e| e.to_string())?;
            let decision = Engine::Legacy.decide(&keypoints, &phrase, p.normalisation_constant);
            Ok(json!({ "decision": decision }))
        });
    }
    let (Some(log), Some(book)) = (&args.signal, &args.keypoints) else {
        return Err("give --phrases FILE, or --signal LOG --keypoints WORKBOOK".into());
    };
    let text = std::fs::read_to_string(log).map_err(|e| format!("cannot read {}: {e}", log.display()))?;
    let keypoints = workbook::read_workbook(book).map_err(|e| e.to_string())?;
    let decision = match args.engine {
        EngineChoice::Legacy => {
            let phrase = signal::parse(&text).map_err(|e| e.legacy_message(&log.display().to_string()))?;
            serde_json::to_string_pretty(&Engine::Legacy.decide(&keypoints, &phrase, args.normalisation_constant))
        }
        EngineChoice::V2 => {
            let times = args.fps.map(|fps| FrameTimes::from_rate(fps, keypoints.frames()));
            serde_json::to_string_pretty(&v2::decide_log(&keypoints, &text, times).map_err(|e| e.to_string())?)
        }
        EngineChoice::V3 => {
            let times = args.fps.map(|fps| FrameTimes::from_rate(fps, keypoints.frames()));
            serde_json::to_string_pretty(&v3::decide_log(&keypoints, &text, times).map_err(|e| e.to_string())?)
        }
    };
    println!("{}", decision.map_err(|e| e.to_string())?);
    Ok(())
}

/// `parse-signal`: the parsed phrase per line, or the legacy's message (path shown as `<path>`).
pub fn run_parse_signal(args: ParseSignalArgs) -> Result<(), String> {
    for_each_line(&args.signals, |line| {
        let s: SignalLine = serde_json::from_value(line).map_err(|e| format!("bad signal line: {e}"))?;
        let phrase = signal::parse(&s.signal).map_err(|e| e.legacy_message("<path>"))?;
        Ok(json!({ "phrase": phrase }))
    })
}

/// `track`: the tracker's slots per frame and the normalised arrays, per case.
pub fn run_track(args: TrackArgs) -> Result<(), String> {
    for_each_line(&args.cases, |line| {
        let case: TrackLine = serde_json::from_value(line).map_err(|e| format!("bad track case: {e}"))?;
        let mut tracker = Tracker::new(case.frame_width, case.frame_height);
        let mut frames = Vec::with_capacity(case.detections.len());
        for (i, dets) in case.detections.iter().enumerate() {
            let points: Vec<Points> = dets
                .iter()
                .map(|d| d.as_slice().try_into().map_err(|_| format!("frame {i}: a detection has {} points, expected 17", d.len())))
                .collect::<Result<_, _>>()?;
            frames.push(tracker.push(&points));
        }
        let tracks: Vec<Value> = frames
            .iter()
            .map(|f| json!([f[0].as_ref().map(|s| s.keypoints), f[1].as_ref().map(|s| s.keypoints)]))
            .collect();
        let normalised = normalise(&frames).map_err(|e| e.to_string())?;
        Ok(json!({ "tracks": tracks, "normalised": normalised }))
    })
}

/// Reads JSON lines from `path`, writes `{"id", ...answer}` or `{"id", "error"}` per line.
fn for_each_line(path: &PathBuf, mut answer: impl FnMut(Value) -> Result<Value, String>) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match serde_json::from_str::<Value>(&line) {
            Ok(value) => {
                let id = value.get("id").cloned().unwrap_or(Value::Null);
                match answer(value) {
                    Ok(Value::Object(fields)) => {
                        let mut obj = serde_json::Map::new();
                        obj.insert("id".into(), id);
                        obj.extend(fields);
                        Value::Object(obj)
                    }
                    Ok(other) => json!({ "id": id, "result": other }),
                    Err(error) => json!({ "id": id, "error": error }),
                }
            }
            Err(e) => json!({ "id": null, "error": format!("line {} is not JSON: {e}", n + 1) }),
        };
        writeln!(out, "{reply}").map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())
}
