//! The phrase pipeline: decoded frames go in one at a time (fisheye → letterbox → the pose
//! scheduler → tracker), and once the log is known, `finish` runs normalisation and both
//! engines' decisions (the legacy rules and `v2`, on the frames' own times) and writes the
//! workbook. Up to `in_flight` frames wait on the scheduler at once, so one phrase alone can
//! fill a batch. The corrected and overlay videos are written as frames pass (`/analyze`, the
//! legacy's way) or after the verdict from the stored frames (`/stream`: never on the pose
//! path). Nothing here knows HTTP.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use opencv::core::Mat;
use opencv::prelude::*;

use crate::analysis::artifacts::{draw_overlay, VideoOut};
use referee_engine::decision::{Decision, Engine};
use crate::analysis::fisheye::{Fisheye, FisheyeSettings};
use referee_engine::kinematics::{normalise, KinematicsError, Keypoints, Normalised};
use referee_engine::tracker::KEYPOINTS;
use crate::analysis::letterbox::letterbox;
use referee_pose::{PoseError, PoseScheduler, Ticket};
use referee_engine::signal::{self, SignalError, Touch};
use referee_engine::single_light;
use referee_engine::timeline::Timeline;
use referee_engine::choice::EngineChoice;
use referee_engine::frame_times::FrameTimes;
use referee_engine::signal::events::PhraseLog;
use referee_engine::v2::{self, V2Decision, V2Error};
use referee_engine::v3;
use referee_engine::tracker::{FrameTracks, Points, Tracker};
use referee_engine::workbook;
use referee_engine::signal::events::parse_events;
use referee_engine::signal::events::parse_log;

/// When the corrected and overlay videos are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoWriting {
    /// Frame by frame as they pass (the files are whole when the answer is).
    WhileAnalysing,
    /// Once the verdict is out, by [`VideoPlan::write`], from the stored frames.
    AfterVerdict,
}

/// What a phrase's pipeline writes and how it corrects frames.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Fisheye correction before pose (`None`: frames are used as they come).
    pub fisheye: Option<FisheyeSettings>,
    /// Write `<stem>_overlay.mp4` (tracked skeletons on the corrected frames).
    pub overlay: bool,
    /// Frame rate of the written videos.
    pub fps: f64,
    /// The artifact directory.
    pub dir: PathBuf,
    /// The stem of the artifact names (the uploaded video's stem).
    pub stem: String,
    /// Which engine's decision is the answer (both are always made).
    pub engine: EngineChoice,
    /// The phrase's true frame rate when it is known but its frames carry no times (`/stream`'s
    /// `?fps=`); with neither, `v2` spreads the frames over the log's recording span.
    pub frame_rate: Option<f64>,
    /// When the videos are written.
    pub videos: VideoWriting,
    /// Frames that may wait on the pose scheduler at once (at least 1).
    pub in_flight: usize,
}

/// A scoring-box log as the engines take it: a double touch as the legacy parses it, or a
/// single light; and the text (`v2` reads its own lines from it, never the referee's call).
#[derive(Debug, Clone)]
pub struct ScoringLog {
    /// What the lights say.
    pub touch: Touch,
    /// The log as received.
    pub text: String,
}

impl ScoringLog {
    /// Parses a log: a single light is the lit fencer's touch; a double touch the legacy rules
    /// refuse, or a log with no light, is refused.
    pub fn parse(text: &str) -> Result<ScoringLog, SignalError> {
        Ok(ScoringLog { touch: signal::read_touch(text)?, text: text.to_owned() })
    }

    /// When the last light came on (seconds on the log's clock), if a `HIT:` line says: the
    /// frames up to it are all a call needs.
    pub fn last_hit_time(&self) -> Option<f64> {
        signal::last_hit_time(&self.text)
    }
}

/// A phrase where nobody was tracked: every point missing, no c and no angle. Only a single
/// light is decided on it (the call never rests on the pose).
fn nobody_seen(frames: usize) -> Normalised {
    let rows = vec![[f64::NAN; KEYPOINTS]; frames];
    Normalised {
        normalisation_constant: f64::NAN,
        video_angle: String::new(),
        keypoints: Keypoints { left_x: rows.clone(), left_y: rows.clone(), right_x: rows.clone(), right_y: rows },
    }
}

/// Why a phrase could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// The pose model failed.
    #[error(transparent)]
    Pose(#[from] PoseError),
    /// No frame showed both fencers.
    #[error(transparent)]
    Kinematics(#[from] KinematicsError),
    /// The engine asked for cannot decide this phrase.
    #[error("the {engine} engine cannot decide this phrase: {reason}")]
    Undecidable {
        /// The engine.
        engine: &'static str,
        /// Why.
        reason: String,
    },
    /// OpenCV failed on a frame or a video file.
    #[error("video processing failed: {0}")]
    Video(String),
    /// Writing an artifact failed.
    #[error("cannot write {path}: {reason}")]
    Artifact {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

impl From<opencv::Error> for PipelineError {
    fn from(e: opencv::Error) -> Self {
        PipelineError::Video(e.to_string())
    }
}

/// The files a finished phrase left (absent when not written).
#[derive(Debug, Clone, Default)]
pub struct PipelineFiles {
    /// The fisheye-corrected video.
    pub corrected_video: Option<PathBuf>,
    /// The overlay video.
    pub overlay_video: Option<PathBuf>,
    /// The keypoints workbook.
    pub workbook: Option<PathBuf>,
}

/// A finished phrase.
#[derive(Debug, Clone)]
pub struct PhraseOutcome {
    /// The legacy rules' decision.
    pub decision: Decision,
    /// `v2`'s decision, or why it could not decide.
    pub v2: Result<V2Decision, String>,
    /// `v3`'s decision, or why it could not decide.
    pub v3: Result<V2Decision, String>,
    /// Which of the three is the answer.
    pub engine: EngineChoice,
    /// The phrase over time, for the piste view.
    pub timeline: Timeline,
    /// c, the video angle and the normalised keypoints.
    pub normalised: Normalised,
    /// Frames that went through pose.
    pub frames_processed: usize,
    /// What was written (videos named here are still to come when `pending_videos` is set).
    pub files: PipelineFiles,
    /// The videos still to write, when they are written after the verdict.
    pub pending_videos: Option<VideoPlan>,
}

/// The videos of a phrase whose frames have been analysed: the same frames again, corrected and
/// drawn with the tracks found the first time.
#[derive(Debug, Clone)]
pub struct VideoPlan {
    fisheye: Option<FisheyeSettings>,
    fps: f64,
    corrected: Option<PathBuf>,
    overlay: Option<PathBuf>,
    tracks: Vec<FrameTracks>,
}

impl VideoPlan {
    /// Writes the videos from the phrase's frames, given again in the order they were analysed
    /// (frames that could not be decoded then are left out now too). Each file appears whole,
    /// by rename, or not at all.
    pub fn write(&self, frames: impl Iterator<Item = Mat>) -> Result<PipelineFiles, PipelineError> {
        let mut fisheye: Option<Fisheye> = None;
        let (mut corrected_out, mut overlay_out) = (None, None);
        let mut written = 0;
        for (frame, tracks) in frames.zip(&self.tracks) {
            let corrected = match self.fisheye {
                Some(settings) => fisheye_for(&mut fisheye, settings, &frame)?.correct(&frame)?,
                None => frame,
            };
            let (w, h) = (corrected.cols(), corrected.rows());
            if let Some(path) = &self.corrected {
                let out = open_video(&mut corrected_out, path, self.fps, w, h)?;
                out.write(&corrected).map_err(|reason| PipelineError::Artifact { path: path.clone(), reason })?;
            }
            if let Some(path) = &self.overlay {
                let mut drawn = corrected;
                draw_overlay(&mut drawn, &slots_of(tracks))?;
                let out = open_video(&mut overlay_out, path, self.fps, w, h)?;
                out.write(&drawn).map_err(|reason| PipelineError::Artifact { path: path.clone(), reason })?;
            }
            written += 1;
        }
        if written != self.tracks.len() {
            return Err(PipelineError::Video(format!("{written} of {} frames could be read again for the videos", self.tracks.len())));
        }
        Ok(PipelineFiles { corrected_video: finish_video(corrected_out)?, overlay_video: finish_video(overlay_out)?, workbook: None })
    }
}

/// The fisheye correction for `frame`'s size: the one held, or a new one when the size changed.
fn fisheye_for<'a>(held: &'a mut Option<Fisheye>, settings: FisheyeSettings, frame: &Mat) -> Result<&'a Fisheye, PipelineError> {
    let (w, h) = (frame.cols(), frame.rows());
    if !held.as_ref().is_some_and(|f| f.fits(w, h)) {
        *held = Some(Fisheye::new(settings, w, h)?);
    }
    Ok(held.as_ref().expect("set above"))
}

fn slots_of(tracks: &FrameTracks) -> [Option<[[f32; 2]; 17]>; 2] {
    [tracks[0].as_ref().map(|s| s.keypoints), tracks[1].as_ref().map(|s| s.keypoints)]
}

fn finish_video(video: Option<VideoOut>) -> Result<Option<PathBuf>, PipelineError> {
    video.map(|v| v.finish().map_err(|reason| PipelineError::Artifact { path: PathBuf::from("video"), reason })).transpose()
}

/// A frame on its way through pose.
struct InFlight {
    corrected: Mat,
    ticket: Ticket,
    time: Option<f64>,
}

/// One phrase on its way through: push frames, then finish with the log.
pub struct PhrasePipeline {
    pose: Arc<PoseScheduler>,
    in_flight: VecDeque<InFlight>,
    options: PipelineOptions,
    fisheye: Option<Fisheye>,
    tracker: Option<Tracker>,
    frames: Vec<FrameTracks>,
    times: Vec<Option<f64>>,
    corrected: Option<VideoOut>,
    overlay: Option<VideoOut>,
    /// The latest analysed frame and its tracks, for the piste view (when overlays are drawn).
    latest: Option<(Mat, [Option<[[f32; 2]; 17]>; 2])>,
}

impl PhrasePipeline {
    /// A pipeline writing into `options.dir`.
    pub fn new(pose: Arc<PoseScheduler>, options: PipelineOptions) -> PhrasePipeline {
        PhrasePipeline {
            pose,
            in_flight: VecDeque::new(),
            options,
            fisheye: None,
            tracker: None,
            frames: Vec::new(),
            times: Vec::new(),
            corrected: None,
            overlay: None,
            latest: None,
        }
    }

    /// Frames through pose so far (frames still waiting on the scheduler not counted).
    pub fn frames_processed(&self) -> usize {
        self.frames.len()
    }

    /// The tracker's view of the frames so far.
    pub fn tracks(&self) -> &[FrameTracks] {
        &self.frames
    }

    /// Takes one decoded BGR frame: fisheye, letterbox, and into the pose scheduler; once more
    /// than `in_flight` frames wait there, the oldest is tracked (and written, when videos are
    /// written as frames pass). `time`: its presentation time in seconds, when known.
    pub fn push(&mut self, frame: &Mat, time: Option<f64>) -> Result<(), PipelineError> {
        let corrected = self.correct(frame)?;
        let (input, geometry) = letterbox(&corrected, self.pose.input_shape()).map_err(|e| PipelineError::Video(e.to_string()))?;
        let ticket = self.pose.submit(input, geometry);
        self.in_flight.push_back(InFlight { corrected, ticket, time });
        while self.in_flight.len() > self.options.in_flight.max(1) {
            self.track_oldest()?;
        }
        Ok(())
    }

    /// Tracks every frame still waiting on the scheduler.
    pub fn flush(&mut self) -> Result<(), PipelineError> {
        while !self.in_flight.is_empty() {
            self.track_oldest()?;
        }
        Ok(())
    }

    /// Frames handed to `push` and still waiting on the scheduler.
    pub fn waiting(&self) -> usize {
        self.in_flight.len()
    }

    fn track_oldest(&mut self) -> Result<(), PipelineError> {
        let Some(InFlight { corrected, ticket, time }) = self.in_flight.pop_front() else { return Ok(()) };
        let detections = ticket.wait()?;
        let points: Vec<Points> = detections.iter().map(|d| d.points()).collect();
        let (w, h) = (corrected.cols(), corrected.rows());
        let tracker = self.tracker.get_or_insert_with(|| Tracker::new(w as u32, h as u32));
        let tracks = tracker.push(&points);
        if self.options.overlay {
            let slots = slots_of(&tracks);
            if self.options.videos == VideoWriting::WhileAnalysing {
                let mut drawn = corrected.try_clone()?;
                draw_overlay(&mut drawn, &slots)?;
                let path = self.artifact("overlay.mp4");
                let fps = self.options.fps;
                let out = open_video(&mut self.overlay, &path, fps, w, h)?;
                out.write(&drawn).map_err(|reason| PipelineError::Artifact { path, reason })?;
            }
            self.latest = Some((corrected, slots));
        }
        self.frames.push(tracks);
        self.times.push(time);
        Ok(())
    }

    /// The latest analysed frame with both fencers' skeletons drawn, as a JPEG (none before the
    /// first frame, or when overlays are off).
    pub fn latest_view_jpeg(&self) -> Option<Vec<u8>> {
        let (frame, slots) = self.latest.as_ref()?;
        let mut drawn = frame.try_clone().ok()?;
        draw_overlay(&mut drawn, slots).ok()?;
        let mut jpeg = opencv::core::Vector::<u8>::new();
        let params = opencv::core::Vector::<i32>::from_slice(&[opencv::imgcodecs::IMWRITE_JPEG_QUALITY, 80]);
        opencv::imgcodecs::imencode(".jpg", &drawn, &mut jpeg, &params).ok()?.then(|| jpeg.to_vec())
    }

    /// The frames' times for `v2`: their own, when every frame has one and they increase (on
    /// the phrase's clock, as the protocol gives them: see `FrameTimes::from_stream_timestamps`),
    /// else the known rate; `None` leaves `v2` to spread them over the log's span.
    fn frame_times(&self) -> Option<FrameTimes> {
        let own: Option<Vec<f64>> = self.times.iter().copied().collect();
        if let Some(own) = own.filter(|t| !t.is_empty()) {
            if let Ok(times) = FrameTimes::from_stream_timestamps(own) {
                return Some(times);
            }
        }
        self.options.frame_rate.map(|fps| FrameTimes::from_rate(fps, self.times.len()))
    }

    fn correct(&mut self, frame: &Mat) -> Result<Mat, PipelineError> {
        let Some(settings) = self.options.fisheye else { return Ok(frame.clone()) };
        let fisheye = fisheye_for(&mut self.fisheye, settings, frame)?;
        let corrected = fisheye.correct(frame)?;
        let (cw, ch) = fisheye.output_size();
        if self.options.videos == VideoWriting::AfterVerdict {
            return Ok(corrected);
        }
        let path = self.artifact("corrected.mp4");
        let fps = self.options.fps;
        let out = open_video(&mut self.corrected, &path, fps, cw, ch)?;
        out.write(&corrected).map_err(|reason| PipelineError::Artifact { path, reason })?;
        Ok(corrected)
    }

    fn artifact(&self, suffix: &str) -> PathBuf {
        self.options.dir.join(format!("{}_{suffix}", self.options.stem))
    }

    /// Normalises, decides with every engine and writes the workbook; closes the videos.
    pub fn finish(mut self, log: &ScoringLog) -> Result<PhraseOutcome, PipelineError> {
        self.flush()?;
        let times = self.frame_times();
        let mut files = PipelineFiles::default();
        let mut pending_videos = None;
        match self.options.videos {
            VideoWriting::WhileAnalysing => {
                files.corrected_video = finish_video(self.corrected.take())?;
                files.overlay_video = finish_video(self.overlay.take())?;
            }
            VideoWriting::AfterVerdict => {
                let plan = VideoPlan {
                    fisheye: self.options.fisheye,
                    fps: self.options.fps,
                    corrected: self.options.fisheye.map(|_| self.artifact("corrected.mp4")),
                    overlay: self.options.overlay.then(|| self.artifact("overlay.mp4")),
                    tracks: self.frames.clone(),
                };
                files.corrected_video = plan.corrected.clone();
                files.overlay_video = plan.overlay.clone();
                pending_videos = (!self.frames.is_empty() && (plan.corrected.is_some() || plan.overlay.is_some())).then_some(plan);
            }
        }
        let normalised = match (normalise(&self.frames), &log.touch) {
            (Ok(normalised), _) => normalised,
            // A single light is the lit fencer's touch whoever the camera saw.
            (Err(_), Touch::Single(_)) => nobody_seen(self.frames.len()),
            (Err(e), Touch::Double(_)) => return Err(e.into()),
        };
        // v2 reads its own lines of the log; without times of their own the frames are placed
        // on the log's clock from its recording span (else at the legacy's 15 per second).
        let events = parse_events(&log.text).ok();
        let n = normalised.keypoints.frames();
        let times = match (times, &events) {
            (Some(times), _) => times,
            (None, Some(read)) => FrameTimes::estimate(n, read),
            (None, None) => FrameTimes::from_rate(signal::LOG_FPS, n),
        };
        let (decision, v2, v3) = match &log.touch {
            Touch::Double(phrase) => {
                let decision = Engine::Legacy.decide(&normalised.keypoints, phrase, Some(normalised.normalisation_constant));
                let read = parse_log(&log.text).map_err(|e| e.to_string());
                let by = |decide: fn(&Keypoints, &PhraseLog, &FrameTimes) -> Result<V2Decision, V2Error>| {
                    read.clone().and_then(|read| decide(&normalised.keypoints, &read, &times).map_err(|e| e.to_string()))
                };
                (decision, by(v2::decide), by(v3::decide))
            }
            Touch::Single(light) => {
                let lit = single_light::v2_decision(light, &times);
                (single_light::legacy_decision(light), Ok(lit.clone()), Ok(lit))
            }
        };
        let timeline = Timeline::new(&normalised.keypoints, times.times(), events.as_ref(), &decision);
        let engine = self.options.engine;
        let chosen = match engine {
            EngineChoice::Legacy => Ok(()),
            EngineChoice::V2 => v2.as_ref().map(|_| ()),
            EngineChoice::V3 => v3.as_ref().map(|_| ()),
        };
        if let Err(reason) = chosen {
            return Err(PipelineError::Undecidable { engine: engine.name(), reason: reason.clone() });
        }
        let book = self.options.dir.join(format!("{}_keypoints.xlsx", self.options.stem));
        workbook::write_workbook(&normalised.keypoints, &book)
            .map_err(|e| PipelineError::Artifact { path: book.clone(), reason: e.to_string() })?;
        files.workbook = Some(book);
        Ok(PhraseOutcome { decision, v2, v3, engine, timeline, normalised, frames_processed: self.frames.len(), files, pending_videos })
    }
}

fn open_video<'a>(slot: &'a mut Option<VideoOut>, path: &Path, fps: f64, w: i32, h: i32) -> Result<&'a mut VideoOut, PipelineError> {
    if slot.is_none() {
        *slot = Some(VideoOut::create(path, fps, w, h).map_err(|reason| PipelineError::Artifact { path: path.to_owned(), reason })?);
    }
    Ok(slot.as_mut().expect("set above"))
}
