//! Streamed phrases ("sessions"): frames appended to `<output>/<id>/frames.mjpeg` as they
//! arrive, with an index (`frames.idx`: index, offset, length, timestamp), the log, and a worker
//! thread per session that reads each stored frame back, decodes it and runs it through the
//! phrase pipeline, so the upload never waits for pose and no frame is dropped when pose falls
//! behind (the worker catches up from disk). Memory per session: the index and the tracker.
//! Nothing here knows HTTP; `stream.rs` maps these errors to statuses.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use opencv::core::Mat;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::analysis::artifacts::write_atomically;
use crate::analysis::frames::decode_jpeg;
use crate::analysis::pipeline::{PhrasePipeline, PipelineOptions, ScoringLog};
use crate::analysis::pose::PoseModel;
use crate::analyze::{phrase_result, PhraseFiles};
use crate::error::ApiError;

/// Where a session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// An upload is coming in (or the log is awaited).
    Receiving,
    /// The connection dropped mid-phrase; post again with the same session to resume.
    Interrupted,
    /// All frames and the log are in; the verdict is being made.
    Analysing,
    /// The verdict is ready.
    Done,
    /// The phrase could not be decided (the reason is in `error`).
    Failed,
}

/// What `GET /sessions/{id}` and the events show.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The session id.
    pub session: String,
    /// Its state.
    pub state: SessionState,
    /// Frames stored.
    pub frames_received: usize,
    /// Frames through pose (corrupt ones included).
    pub frames_analysed: usize,
    /// The index the next new frame should have.
    pub next_frame_index: u64,
    /// Frames that were not decodable JPEGs (counted, skipped).
    pub corrupt_frames: usize,
    /// Frame bytes stored.
    pub bytes: u64,
    /// Whether the log is in.
    pub signal_received: bool,
    /// The verdict, once done.
    pub result: Option<Value>,
    /// Why it failed, if it did: with its kind (the status it is answered with); shown as
    /// `"error": "<message>"`.
    #[serde(rename = "error", serialize_with = "failure_message")]
    pub failure: Option<ApiError>,
}

fn failure_message<S: serde::Serializer>(failure: &Option<ApiError>, serializer: S) -> Result<S::Ok, S::Error> {
    match failure {
        Some(e) => serializer.serialize_some(&e.to_string()),
        None => serializer.serialize_none(),
    }
}

/// One stored frame.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
struct FrameRecord {
    index: u64,
    offset: u64,
    length: u64,
    timestamp: Option<f64>,
}

struct Inner {
    frames: Vec<FrameRecord>,
    next_index: u64,
    mjpeg: File,
    index_file: File,
    phrase: Option<ScoringLog>,
    uploading: bool,
    upload_done: bool,
    started: Instant,
    upload_seconds: f64,
    last_byte: Instant,
    progress: Progress,
}

/// A session in a line, for the piste view's index.
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    /// The session id.
    pub session: String,
    /// Its state.
    pub state: SessionState,
    /// Frames stored.
    pub frames_received: usize,
    /// Frames through pose (as many as stored once decided; unknown for a session at rest).
    pub frames_analysed: Option<usize>,
    /// The winner of the answer's decision, once decided.
    pub winner: Option<String>,
    /// Whose decision that is.
    pub engine: Option<String>,
    /// When its files last changed (RFC 3339, UTC).
    pub updated: String,
}

impl SessionSummary {
    fn of(p: &Progress, updated: String) -> SessionSummary {
        let (winner, engine) = winner_and_engine(p.result.as_ref());
        SessionSummary {
            session: p.session.clone(),
            state: p.state,
            frames_received: p.frames_received,
            frames_analysed: Some(p.frames_analysed),
            winner,
            engine,
            updated,
        }
    }

    /// From the files alone: the index's lines and the result, if any.
    fn on_disk(dir: &Path, session: String, updated: String) -> SessionSummary {
        let frames_received = std::fs::read(dir.join("frames.idx")).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0);
        let result: Option<Value> = std::fs::read(dir.join("analysis_result.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
        let (winner, engine) = winner_and_engine(result.as_ref());
        let state = match (&result, frames_received == 0 || dir.join(UPLOAD_COMPLETE).is_file()) {
            (Some(_), _) => SessionState::Done,
            (None, true) => SessionState::Receiving, // nothing yet, or all frames in and the log awaited
            (None, false) => SessionState::Interrupted,
        };
        let frames_analysed = result.as_ref().map(|_| frames_received);
        SessionSummary { session, state, frames_received, frames_analysed, winner, engine, updated }
    }
}

fn winner_and_engine(result: Option<&Value>) -> (Option<String>, Option<String>) {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match result {
        Some(r) => (text(&r["decision"]["winner"]), text(&r["engine"]).or(Some("legacy".to_owned()))),
        None => (None, None),
    }
}

/// One streamed phrase.
pub struct Session {
    /// Its id.
    pub id: String,
    /// `<output>/<id>`.
    pub dir: PathBuf,
    inner: Mutex<Inner>,
    wake_worker: Condvar,
    progress: watch::Sender<Progress>,
    max_phrase_bytes: u64,
    worker_started: std::sync::atomic::AtomicBool,
    /// Dropped from the registry: its worker ends once it has nothing left to do.
    retired: std::sync::atomic::AtomicBool,
}

/// The file whose presence says an upload of the session ended cleanly (all frames are in).
const UPLOAD_COMPLETE: &str = "upload.complete";

/// Whether `id` is a valid session id: `[A-Za-z0-9_-]{1,64}`.
pub fn valid_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A fresh session id.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    format!("s{now}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}

impl Session {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A snapshot of its progress.
    pub fn progress(&self) -> Progress {
        self.lock().progress.clone()
    }

    /// Follows its progress.
    pub fn subscribe(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    fn publish(&self, inner: &Inner) {
        self.progress.send_replace(inner.progress.clone());
    }

    /// Starts an upload; a session already done, or receiving on another connection, refuses.
    fn begin_upload(&self) -> Result<(), ApiError> {
        let mut inner = self.lock();
        match inner.progress.state {
            SessionState::Done | SessionState::Analysing | SessionState::Failed => {
                return Err(ApiError::Conflict(format!("session {} is already complete", self.id)))
            }
            _ if inner.uploading => return Err(ApiError::Conflict(format!("session {} is receiving on another connection", self.id))),
            _ => {}
        }
        inner.uploading = true;
        // More frames may come: the phrase is open again until this upload ends cleanly.
        inner.upload_done = false;
        let _ = std::fs::remove_file(self.dir.join(UPLOAD_COMPLETE));
        inner.progress.state = SessionState::Receiving;
        self.publish(&inner);
        Ok(())
    }

    /// Stores one frame (skipped when a frame of that index is already held); returns whether
    /// it was new.
    pub fn add_frame(&self, index: Option<u64>, timestamp: Option<f64>, jpeg: &[u8]) -> Result<bool, ApiError> {
        let mut inner = self.lock();
        let index = index.unwrap_or(inner.next_index);
        if index < inner.next_index {
            return Ok(false);
        }
        if inner.progress.bytes + jpeg.len() as u64 > self.max_phrase_bytes {
            return Err(ApiError::PayloadTooLarge(format!(
                "the phrase is over the {}-byte limit (frames held: {})",
                self.max_phrase_bytes, inner.progress.frames_received
            )));
        }
        let offset = inner.mjpeg.seek(SeekFrom::End(0))?;
        inner.mjpeg.write_all(jpeg)?;
        let record = FrameRecord { index, offset, length: jpeg.len() as u64, timestamp };
        let line = serde_json::to_string(&record).map_err(|e| ApiError::Internal(e.to_string()))?;
        writeln!(inner.index_file, "{line}")?;
        inner.frames.push(record);
        inner.next_index = index + 1;
        inner.last_byte = Instant::now();
        inner.progress.frames_received = inner.frames.len();
        inner.progress.next_frame_index = inner.next_index;
        inner.progress.bytes += jpeg.len() as u64;
        self.publish(&inner);
        drop(inner);
        self.wake_worker.notify_all();
        Ok(true)
    }

    /// Takes the log; a log the rules refuse is a 422 and is not kept.
    pub fn set_signal(&self, text: &str) -> Result<(), ApiError> {
        let phrase = ScoringLog::parse(text).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        std::fs::write(self.dir.join("signal.txt"), text)?;
        let mut inner = self.lock();
        inner.phrase = Some(phrase);
        inner.last_byte = Instant::now();
        inner.progress.signal_received = true;
        self.publish(&inner);
        drop(inner);
        self.wake_worker.notify_all();
        Ok(())
    }

    /// The upload ended: cleanly (`complete`) or cut off.
    pub fn end_upload(&self, complete: bool) {
        let mut inner = self.lock();
        inner.uploading = false;
        let _ = inner.mjpeg.flush();
        let _ = inner.index_file.flush();
        if complete {
            inner.upload_done = true;
            inner.upload_seconds = inner.started.elapsed().as_secs_f64();
            // Kept on disk, so that a log PUT after a restart still completes the phrase.
            if let Err(e) = std::fs::write(self.dir.join(UPLOAD_COMPLETE), b"") {
                warn!(session = %self.id, error = %e, "cannot mark the upload complete on disk");
            }
        } else if inner.progress.state == SessionState::Receiving {
            inner.progress.state = SessionState::Interrupted;
        }
        self.publish(&inner);
        drop(inner);
        self.wake_worker.notify_all();
    }

    /// Whether an upload has ended cleanly (all frames are in).
    pub fn upload_complete(&self) -> bool {
        self.lock().upload_done
    }

    /// Whether it holds a slot of the concurrent-session limit: a connection is uploading to it,
    /// or its verdict is being made. An interrupted session, or one awaiting its log, does not.
    fn busy(&self) -> bool {
        let inner = self.lock();
        inner.uploading || inner.progress.state == SessionState::Analysing
    }

    /// Whether it has waited at least `idle` with no upload on it, undecided (interrupted, or
    /// awaiting its log).
    fn idle_for(&self, idle: std::time::Duration) -> bool {
        let inner = self.lock();
        !inner.uploading
            && matches!(inner.progress.state, SessionState::Receiving | SessionState::Interrupted)
            && inner.last_byte.elapsed() >= idle
    }

    /// Leaves the registry: its worker stops once it has caught up, and the session's files close
    /// when the last holder lets go. Everything is on disk for a later reload.
    fn retire(&self) {
        // Set under the lock the worker checks it under, so its wake-up cannot be missed.
        let guard = self.lock();
        self.retired.store(true, std::sync::atomic::Ordering::SeqCst);
        drop(guard);
        self.wake_worker.notify_all();
    }

    /// Starts the session's pose worker unless it has one (a session reloaded from disk has none
    /// until an upload, or its log, needs it).
    pub fn ensure_worker(self: &Arc<Self>, model: Arc<PoseModel>, options: PipelineOptions) -> Result<(), ApiError> {
        if self.worker_started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let worker = self.clone();
        let options = PipelineOptions { dir: self.dir.clone(), stem: "frames".into(), ..options };
        let spawned = std::thread::Builder::new().name(format!("pose-{}", self.id)).spawn(move || run_worker(worker, model, options));
        if let Err(e) = spawned {
            self.worker_started.store(false, std::sync::atomic::Ordering::SeqCst);
            return Err(ApiError::Internal(format!("cannot start the session worker: {e}")));
        }
        Ok(())
    }

    /// Waits until the verdict is made (or has failed).
    pub async fn verdict(&self) -> Progress {
        let mut rx = self.subscribe();
        loop {
            let p = rx.borrow_and_update().clone();
            if matches!(p.state, SessionState::Done | SessionState::Failed) {
                return p;
            }
            if rx.changed().await.is_err() {
                return self.progress();
            }
        }
    }
}

/// All sessions of this server.
pub struct Sessions {
    output: PathBuf,
    open: Mutex<HashMap<String, Arc<Session>>>,
    max_busy: usize,
    max_phrase_bytes: u64,
    idle: std::time::Duration,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("output", &self.output).field("max_busy", &self.max_busy).finish_non_exhaustive()
    }
}

impl Sessions {
    /// Sessions under `output`: at most `max_busy` uploading or being decided at once, at most
    /// `max_phrase_bytes` of frames each; an undecided one left alone for `idle` leaves memory
    /// (its worker and files) and is reloaded from disk when it is asked for again.
    pub fn new(output: PathBuf, max_busy: usize, max_phrase_bytes: u64, idle: std::time::Duration) -> Sessions {
        Sessions { output, open: Mutex::new(HashMap::new()), max_busy, max_phrase_bytes, idle }
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The newest `limit` sessions, in memory or on disk (newest first, by the last change of
    /// their files), summed up for the piste view's index. Sessions on disk are read, not
    /// reloaded: listing opens no files for writing and starts nothing.
    pub fn list(&self, limit: usize) -> Vec<SessionSummary> {
        let Ok(entries) = std::fs::read_dir(&self.output) else { return Vec::new() };
        let mut found: Vec<(std::time::SystemTime, String)> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let id = e.file_name().to_str()?.to_owned();
                let dir = e.path();
                let changed = ["frames.idx", "signal.txt", "analysis_result.json"]
                    .iter()
                    .filter_map(|f| std::fs::metadata(dir.join(f)).and_then(|m| m.modified()).ok())
                    .max()?;
                (valid_id(&id) && dir.join("frames.idx").is_file()).then_some((changed, id))
            })
            .collect();
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        found.truncate(limit);
        let open = self.registry();
        found
            .into_iter()
            .map(|(changed, id)| {
                let updated = crate::analysis::artifacts::utc_rfc3339(changed);
                match open.get(&id) {
                    Some(session) => SessionSummary::of(&session.progress(), updated),
                    None => SessionSummary::on_disk(&self.output.join(&id), id, updated),
                }
            })
            .collect()
    }

    /// A session known to this server: in memory, or on disk from before a restart (reloaded,
    /// without a worker until an upload opens it).
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        if !valid_id(id) {
            return None;
        }
        let mut open = self.registry();
        if let Some(s) = open.get(id) {
            return Some(s.clone());
        }
        let dir = self.output.join(id);
        if !dir.join("frames.idx").is_file() && !dir.join("analysis_result.json").is_file() {
            return None;
        }
        let session = Arc::new(reload(id, &dir, self.max_phrase_bytes).ok()?);
        open.insert(id.to_owned(), session.clone());
        Some(session)
    }

    /// Opens the session `id` for an upload: created or reloaded from disk, marked receiving,
    /// its worker started if it has none. 503 when `max_busy` others are busy, 409 when it is
    /// complete or another connection is uploading to it.
    pub fn open_upload(&self, id: &str, model: Arc<PoseModel>, options: PipelineOptions) -> Result<Arc<Session>, ApiError> {
        let known = self.get(id);
        // Counted and claimed under the registry's lock, so two uploads cannot both take the last slot.
        let mut open = self.registry();
        // Sessions nobody is using leave memory (closing their files, ending their worker): decided
        // ones at once, undecided ones once idle. All they hold is on disk, where `get` finds it
        // again, so a server that runs all day keeps only what is live. Held means a handle beyond
        // the registry's and its worker's: a new one can only be had from the registry, under this lock.
        open.retain(|key, s| {
            let worker = usize::from(s.worker_started.load(std::sync::atomic::Ordering::SeqCst));
            if key == id || Arc::strong_count(s) > 1 + worker {
                return true;
            }
            let state = s.progress().state;
            if state == SessionState::Done && Arc::strong_count(s) == 1 {
                return false;
            }
            if s.idle_for(self.idle) {
                s.retire();
                return false;
            }
            true
        });
        let busy = open.values().filter(|s| s.id != id && s.busy()).count();
        if busy >= self.max_busy {
            return Err(ApiError::Unavailable(format!("{busy} phrases are streaming already; try again shortly")));
        }
        let session = match known {
            Some(s) => s,
            None => {
                let session = Arc::new(reload(id, &self.output.join(id), self.max_phrase_bytes)?);
                open.entry(id.to_owned()).or_insert(session).clone()
            }
        };
        session.begin_upload()?;
        drop(open);
        if let Err(e) = session.ensure_worker(model, options) {
            session.end_upload(false);
            return Err(e);
        }
        Ok(session)
    }
}


/// A session from its directory (created if new): the frames whose bytes are all on disk (a
/// record cut off by a crash is dropped and the index rewritten without it), the log if any,
/// and the result if it was decided.
fn reload(id: &str, dir: &Path, max_phrase_bytes: u64) -> Result<Session, ApiError> {
    std::fs::create_dir_all(dir)?;
    let mjpeg = OpenOptions::new().create(true).read(true).append(true).open(dir.join("frames.mjpeg"))?;
    let index_path = dir.join("frames.idx");
    let mut frames: Vec<FrameRecord> = Vec::new();
    let mut damaged = false;
    if let Ok(file) = File::open(&index_path) {
        let stored = mjpeg.metadata()?.len();
        for line in BufReader::new(file).lines() {
            match line.ok().and_then(|l| serde_json::from_str::<FrameRecord>(&l).ok()) {
                Some(r) if r.offset + r.length <= stored => frames.push(r),
                _ => {
                    damaged = true;
                    break;
                }
            }
        }
    }
    if damaged {
        let mut text = String::new();
        for r in &frames {
            text.push_str(&serde_json::to_string(r).map_err(|e| ApiError::Internal(e.to_string()))?);
            text.push('\n');
        }
        let part = dir.join("frames.idx.part");
        std::fs::write(&part, text)?;
        std::fs::rename(&part, &index_path)?;
        warn!(session = %id, kept = frames.len(), "frame index cut off by a crash: repaired");
    }
    let index_file = OpenOptions::new().create(true).append(true).open(&index_path)?;
    let next_index = frames.last().map_or(0, |r| r.index + 1);
    let bytes = frames.iter().map(|r| r.length).sum();
    let phrase = std::fs::read_to_string(dir.join("signal.txt")).ok().and_then(|t| ScoringLog::parse(&t).ok());
    let result: Option<Value> =
        std::fs::read(dir.join("analysis_result.json")).ok().and_then(|b| serde_json::from_slice(&b).ok());
    let upload_done = dir.join(UPLOAD_COMPLETE).is_file();
    let state = match (&result, frames.is_empty() || upload_done) {
        (Some(_), _) => SessionState::Done,
        (None, true) => SessionState::Receiving, // nothing yet, or all frames in and the log awaited
        (None, false) => SessionState::Interrupted,
    };
    let progress = Progress {
        session: id.to_owned(),
        state,
        frames_received: frames.len(),
        frames_analysed: 0,
        next_frame_index: next_index,
        corrupt_frames: 0,
        bytes,
        signal_received: phrase.is_some(),
        result,
        failure: None,
    };
    let now = Instant::now();
    let inner = Inner {
        frames,
        next_index,
        mjpeg,
        index_file,
        phrase,
        uploading: false,
        upload_done,
        started: now,
        upload_seconds: 0.0,
        last_byte: now,
        progress: progress.clone(),
    };
    let (tx, _) = watch::channel(progress);
    Ok(Session {
        id: id.to_owned(),
        dir: dir.to_owned(),
        inner: Mutex::new(inner),
        wake_worker: Condvar::new(),
        progress: tx,
        max_phrase_bytes,
        worker_started: std::sync::atomic::AtomicBool::new(false),
        retired: std::sync::atomic::AtomicBool::new(false),
    })
}

/// What the worker does next.
enum Work {
    Frame(FrameRecord),
    Finish(ScoringLog),
}

/// Reads stored frames back in order, runs them through the pipeline, and makes the verdict once
/// the upload is complete and the log is in.
fn run_worker(session: Arc<Session>, model: Arc<PoseModel>, options: PipelineOptions) {
    let mut pipeline = PhrasePipeline::new(model, options);
    let mut view_written: Option<Instant> = None;
    let mut reader = match File::open(session.dir.join("frames.mjpeg")) {
        Ok(f) => f,
        Err(e) => return fail(&session, ApiError::Internal(format!("cannot read the stored frames: {e}"))),
    };
    let mut next = 0usize;
    loop {
        let work = {
            let mut inner = session.lock();
            loop {
                if let Some(r) = inner.frames.get(next) {
                    break Work::Frame(*r);
                }
                if inner.upload_done {
                    if let Some(p) = inner.phrase.clone() {
                        inner.progress.state = SessionState::Analysing;
                        session.publish(&inner);
                        break Work::Finish(p);
                    }
                }
                if session.retired.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                inner = session.wake_worker.wait(inner).unwrap_or_else(|p| p.into_inner());
            }
        };
        match work {
            Work::Frame(record) => {
                next += 1;
                let decoded = read_frame(&mut reader, record);
                let mut inner_result = Ok(());
                match decoded {
                    Some(frame) => inner_result = pipeline.push(&frame, record.timestamp),
                    None => {
                        let mut inner = session.lock();
                        inner.progress.corrupt_frames += 1;
                        warn!(session = %session.id, index = record.index, "corrupt JPEG frame skipped");
                    }
                }
                if let Err(e) = inner_result {
                    return fail(&session, e.into());
                }
                if view_written.is_none_or(|at| at.elapsed() >= VIEW_EVERY) {
                    write_view(&session, &pipeline);
                    view_written = Some(Instant::now());
                }
                let mut inner = session.lock();
                inner.progress.frames_analysed += 1;
                session.publish(&inner);
            }
            Work::Finish(log) => {
                write_view(&session, &pipeline);
                let outcome = match pipeline.finish(&log) {
                    Ok(o) => o,
                    Err(e) => return fail(&session, e.into()),
                };
                let mut inner = session.lock();
                let stream = json!({
                    "session": session.id,
                    "frames_received": inner.progress.frames_received,
                    "frames_analysed": inner.progress.frames_analysed,
                    "corrupt_frames": inner.progress.corrupt_frames,
                    "bytes": inner.progress.bytes,
                    "upload_seconds": inner.upload_seconds,
                    "verdict_seconds_after_last_byte": inner.last_byte.elapsed().as_secs_f64(),
                });
                let files = PhraseFiles {
                    dir: session.dir.clone(),
                    video: session.dir.join("frames.mjpeg"),
                    signal: session.dir.join("signal.txt"),
                };
                match phrase_result(&files, &outcome, false, inner.started, Some(stream)) {
                    Ok(result) => {
                        info!(session = %session.id, winner = %outcome.decision.winner, "verdict");
                        inner.progress.result = Some(result);
                        inner.progress.state = SessionState::Done;
                    }
                    Err(e) => {
                        drop(inner);
                        return fail(&session, e);
                    }
                }
                session.publish(&inner);
                return;
            }
        }
    }
}

/// How often the piste view's latest frame (`view.jpg`) is written while frames are analysed.
const VIEW_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Writes the latest analysed frame with its skeletons as `view.jpg` (whole, by rename); a
/// failure costs the view a picture, never the phrase.
fn write_view(session: &Session, pipeline: &PhrasePipeline) {
    if let Some(jpeg) = pipeline.latest_view_jpeg() {
        if let Err(e) = write_atomically(&session.dir.join("view.jpg"), &jpeg) {
            warn!(session = %session.id, %e, "cannot write the view's latest frame");
        }
    }
}

fn read_frame(reader: &mut File, record: FrameRecord) -> Option<Mat> {
    let mut bytes = vec![0u8; record.length as usize];
    reader.seek(SeekFrom::Start(record.offset)).ok()?;
    reader.read_exact(&mut bytes).ok()?;
    decode_jpeg(&bytes)
}

fn fail(session: &Session, error: ApiError) {
    warn!(session = %session.id, %error, "phrase failed");
    let mut inner = session.lock();
    inner.progress.failure = Some(error);
    inner.progress.state = SessionState::Failed;
    session.publish(&inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_pattern() {
        assert!(valid_id("phrase-01_A"));
        assert!(valid_id(&"a".repeat(64)));
        assert!(!valid_id(""));
        assert!(!valid_id(&"a".repeat(65)));
        assert!(!valid_id("../etc"));
        assert!(!valid_id("a b"));
        assert!(valid_id(&new_id()));
    }

    #[test]
    fn a_crash_torn_index_is_repaired_on_reload_and_appends_go_on_cleanly() {
        let dir = std::env::temp_dir().join(format!("ai-referee-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Two whole frames, a third whose bytes were cut off, and a torn index line after them.
        std::fs::write(dir.join("frames.mjpeg"), b"AAAABBBBCC").unwrap();
        let records = "{\"index\":0,\"offset\":0,\"length\":4,\"timestamp\":0.0}\n\
                       {\"index\":1,\"offset\":4,\"length\":4,\"timestamp\":null}\n\
                       {\"index\":2,\"offset\":8,\"length\":4,\"timestamp\":0.1}\n{\"index\":3,\"off";
        std::fs::write(dir.join("frames.idx"), records).unwrap();
        let session = reload("r", &dir, 1 << 20).unwrap();
        let p = session.progress();
        assert_eq!((p.state, p.frames_received, p.next_frame_index, p.bytes), (SessionState::Interrupted, 2, 2, 8));
        assert!(!session.add_frame(Some(1), None, b"dup!").unwrap(), "held frames are skipped");
        assert!(session.add_frame(Some(2), Some(0.2), b"CCCC").unwrap());
        drop(session);
        let again = reload("r", &dir, 1 << 20).unwrap();
        assert_eq!(again.progress().frames_received, 3, "the index reads whole after the repair");
        assert_eq!(again.progress().next_frame_index, 3);
        // Over the phrase limit: refused, not stored.
        let small = reload("r", &dir, 13).unwrap();
        assert!(matches!(small.add_frame(None, None, b"DD"), Err(ApiError::PayloadTooLarge(_))));
        assert_eq!(small.progress().frames_received, 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
