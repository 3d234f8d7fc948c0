//! Streamed phrases ("sessions"). A session's frames are stored as they arrive ([`store`]: the
//! disk format, the source of truth), its registry admits and retires sessions ([`registry`]),
//! and a bounded pool of analysis threads runs each session's frames through the phrase
//! pipeline when there is work for it ([`worker`]): a session waiting for frames or for its log
//! costs no thread. Frames just received are analysed from memory; frames the analysis fell
//! behind on are read back from disk, so the upload never waits for pose and no frame is lost.
//! Nothing here knows HTTP: errors are typed, and the routes map them to statuses.

pub mod registry;
pub mod worker;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tracing::warn;

use crate::analysis::answer::StreamCounters;
use crate::analysis::pipeline::{PipelineOptions, ScoringLog};
use referee_engine::signal;
use referee_pose::PoseScheduler;
use referee_store::{self as store, FrameRecord, FrameStore, Stored};

pub use referee_wire::{new_session_id_with_prefix, valid_session_id};
pub use registry::Sessions;

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

/// Why a session's phrase could not be decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FailureKind {
    /// The phrase itself cannot be decided (no frame shows both fencers, the engine refuses).
    Undecidable,
    /// The server failed (storage, pose backend, a bug); the stored frames can be analysed again.
    Internal,
    /// A remote pose backend (Triton) could not be reached; the stored frames can be analysed
    /// again once it is back.
    Unavailable,
}

impl FailureKind {
    /// Its name as an outcome (metrics, logs): `undecidable` or `failed`.
    pub fn outcome(&self) -> &'static str {
        match self {
            FailureKind::Undecidable => "undecidable",
            FailureKind::Internal | FailureKind::Unavailable => "failed",
        }
    }
}

/// A failed phrase: its kind and what to tell the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong, broadly.
    pub kind: FailureKind,
    /// In words.
    pub message: String,
}

impl FailureKind {
    /// What kind of failure a pipeline error is: the one classification of pipeline errors,
    /// for streamed phrases and `/analyze` alike (`error.rs` maps each kind to its status).
    pub fn of(err: &crate::analysis::pipeline::PipelineError) -> FailureKind {
        use crate::analysis::pipeline::PipelineError as E;
        match err {
            E::Kinematics(_) | E::Undecidable { .. } => FailureKind::Undecidable,
            E::Pose(referee_pose::PoseError::Unavailable(_)) => FailureKind::Unavailable,
            _ => FailureKind::Internal,
        }
    }
}

impl From<crate::analysis::pipeline::PipelineError> for Failure {
    fn from(err: crate::analysis::pipeline::PipelineError) -> Self {
        use crate::analysis::pipeline::PipelineError as E;
        let kind = FailureKind::of(&err);
        let message = match (&err, &kind) {
            (_, FailureKind::Unavailable) => format!("{err}; the frames are kept: PUT the log again to decide the phrase once the backend is back"),
            (E::Pose(_), _) => format!("{err}; the frames are kept: PUT the log again (or restart the server) to decide the phrase"),
            _ => err.to_string(),
        };
        Failure { kind, message }
    }
}

/// Why a request on a session was refused.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The phrase is decided (or being decided): no more frames.
    #[error("session {0} is already complete")]
    AlreadyComplete(String),
    /// Another connection is uploading to it.
    #[error("session {0} is receiving on another connection")]
    ReceivingElsewhere(String),
    /// Too many phrases are uploading or being decided.
    #[error("{0} phrases are streaming already; try again shortly")]
    Busy(usize),
    /// The phrase's frames would pass the per-phrase limit.
    #[error("the phrase is over the {limit}-byte limit (frames held: {held})")]
    PhraseTooLarge {
        /// The limit in bytes.
        limit: u64,
        /// Frames stored so far.
        held: usize,
    },
    /// A frame the session cannot take as sent (its index).
    #[error("{0}")]
    BadFrame(String),
    /// The log is not one the rules can read.
    #[error("{0}")]
    BadLog(String),
    /// The log's lines would pass the per-phrase log limit (bytes).
    #[error("the log is over {0} bytes")]
    LogTooLarge(u64),
    /// Fewer bytes are free on the disk than the floor: no new phrase is started.
    #[error("the disk is nearly full ({free_mb} MB free, {floor_mb} MB must stay free): no new phrase is taken")]
    DiskFull {
        /// Megabytes free.
        free_mb: u64,
        /// The floor, megabytes.
        floor_mb: u64,
    },
    /// The session's files could not be written or read.
    #[error("storage: {0}")]
    Storage(#[from] std::io::Error),
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
    /// Whether the log is in (read, and ready for the call).
    pub signal_received: bool,
    /// Bytes of log held so far (live box events append to it): a client resuming a live log
    /// sends only what comes after them.
    pub signal_bytes: usize,
    /// Whether the corrected and overlay videos are written (they follow the verdict).
    pub videos_ready: bool,
    /// The verdict, once done.
    pub result: Option<Value>,
    /// Why it failed, if it did; shown as `"error": "<message>"`.
    #[serde(rename = "error", serialize_with = "failure_message")]
    pub failure: Option<Failure>,
}

fn failure_message<S: serde::Serializer>(failure: &Option<Failure>, serializer: S) -> Result<S::Ok, S::Error> {
    match failure {
        Some(f) => serializer.serialize_some(&f.message),
        None => serializer.serialize_none(),
    }
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
    /// The referee's own call (`left`, `right`, `none`), null when none was given.
    pub referee_call: Option<store::Call>,
}

impl SessionSummary {
    fn of(p: &Progress, updated: String, referee_call: Option<store::Call>) -> SessionSummary {
        let (winner, engine) = winner_and_engine(p.result.as_ref());
        SessionSummary {
            session: p.session.clone(),
            state: p.state,
            frames_received: p.frames_received,
            frames_analysed: Some(p.frames_analysed),
            winner,
            engine,
            updated,
            referee_call,
        }
    }

    /// From the files alone: the index's lines and the result, if any.
    fn on_disk(dir: &std::path::Path, session: String, updated: String, referee_call: Option<store::Call>) -> SessionSummary {
        let frames_received = store::stored_frame_count(dir);
        let result = store::stored_result(dir);
        let (winner, engine) = winner_and_engine(result.as_ref());
        let state = state_at_rest(result.is_some(), frames_received == 0 || dir.join(store::UPLOAD_COMPLETE).is_file());
        let frames_analysed = result.as_ref().map(|_| frames_received);
        SessionSummary { session, state, frames_received, frames_analysed, winner, engine, updated, referee_call }
    }
}

/// The referee's call stored in a session's directory, for showing it: one that cannot be read
/// is logged and shown as none given (the phrase's own progress matters more than it).
pub fn shown_call(id: &str, dir: &std::path::Path) -> Option<store::Call> {
    match store::RefereeCall::read(dir) {
        Ok(call) => call.map(|c| c.call),
        Err(e) => {
            warn!(session = %id, error = %e, "the referee's call cannot be read");
            None
        }
    }
}

/// The state of a session nobody is uploading to, from what its files hold.
fn state_at_rest(decided: bool, all_frames_in: bool) -> SessionState {
    match (decided, all_frames_in) {
        (true, _) => SessionState::Done,
        (false, true) => SessionState::Receiving, // nothing yet, or all frames in and the log awaited
        (false, false) => SessionState::Interrupted,
    }
}

fn winner_and_engine(result: Option<&Value>) -> (Option<String>, Option<String>) {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    match result {
        Some(r) => (text(&r["decision"]["winner"]), text(&r["engine"]).or(Some("legacy".to_owned()))),
        None => (None, None),
    }
}

/// Frames kept in memory after they are stored, for the analysis to take without reading them
/// back (about 3 MB of 1280×720 JPEGs); older ones are read from disk.
const RECENT_FRAMES: usize = 32;

/// How a session's frames are analysed, once it has been asked to be.
#[derive(Clone)]
pub struct Analysis {
    /// The pose scheduler every session shares.
    pub pose: Arc<PoseScheduler>,
    /// The pipeline's options for this phrase.
    pub options: PipelineOptions,
}

/// What a session holds under its lock: memory only. No file is read or written while it is
/// held, so a slow disk never stalls a request that only looks (progress, admission, listing).
struct Inner {
    frames: Vec<FrameRecord>,
    /// Frames just stored, by position in `frames`, still in memory.
    recent: VecDeque<(usize, Bytes)>,
    next_index: u64,
    /// The log as received so far (live box events append to it, part by part).
    log_text: String,
    /// Whether the current upload has sent log lines yet (its first part starts a new log when
    /// the stored one is already whole).
    log_appended: bool,
    /// The log, once it is whole and the rules can read it.
    phrase: Option<ScoringLog>,
    uploading: bool,
    upload_done: bool,
    started: Instant,
    upload_seconds: f64,
    last_byte: Instant,
    analysis: Option<Analysis>,
    progress: Progress,
}

/// One streamed phrase.
pub struct Session {
    /// Its id.
    pub id: String,
    /// `<output>/<id>`.
    pub dir: PathBuf,
    inner: Mutex<Inner>,
    /// Its files, under their own lock: held across each write, by the session's own upload,
    /// log and referee's call only. Taken before `inner` when both are needed, never while `inner` is held.
    files: Mutex<FrameStore>,
    progress: watch::Sender<Progress>,
    max_phrase_bytes: u64,
    /// The analysis's own state: the pipeline and where it is; taken by one pool thread at a time.
    work: Mutex<Option<worker::Work>>,
    /// On the pool's run queue or being run.
    scheduled: AtomicBool,
    /// Dropped from the registry: its analysis state is let go.
    retired: AtomicBool,
    /// The pool that runs its analysis, and itself, to be put on the pool's queue.
    pool: Arc<worker::AnalysisPool>,
    me: Weak<Session>,
}

impl Session {
    /// A session from its directory (created if new): the frames whose bytes are all on disk, the
    /// log if any, and the result if it was decided.
    pub fn open(id: &str, dir: PathBuf, max_phrase_bytes: u64, pool: Arc<worker::AnalysisPool>) -> Result<Arc<Session>, SessionError> {
        let (store, Stored { frames, repaired, signal, result, upload_complete }) = FrameStore::open(&dir)?;
        if repaired {
            warn!(session = %id, kept = frames.len(), "frame index cut off by a crash: repaired");
        }
        let next_index = frames.last().map_or(0, |r| r.index + 1);
        let bytes = frames.iter().map(|r| r.length).sum();
        let log_text = signal.unwrap_or_default();
        let phrase = (!log_text.is_empty()).then(|| ScoringLog::parse(&log_text).ok()).flatten();
        let state = state_at_rest(result.is_some(), frames.is_empty() || upload_complete);
        let progress = Progress {
            session: id.to_owned(),
            state,
            frames_received: frames.len(),
            frames_analysed: 0,
            next_frame_index: next_index,
            corrupt_frames: 0,
            bytes,
            signal_received: phrase.is_some(),
            signal_bytes: log_text.len(),
            videos_ready: result.is_some(),
            result,
            failure: None,
        };
        let now = Instant::now();
        let inner = Inner {
            frames,
            recent: VecDeque::new(),
            next_index,
            log_text,
            log_appended: false,
            phrase,
            uploading: false,
            upload_done: upload_complete,
            started: now,
            upload_seconds: 0.0,
            last_byte: now,
            analysis: None,
            progress: progress.clone(),
        };
        let (tx, _) = watch::channel(progress);
        Ok(Arc::new_cyclic(|me| Session {
            id: id.to_owned(),
            dir,
            inner: Mutex::new(inner),
            files: Mutex::new(store),
            progress: tx,
            max_phrase_bytes,
            work: Mutex::new(None),
            scheduled: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            pool,
            me: me.clone(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Its files: taken before `inner`, never while holding it.
    fn files(&self) -> MutexGuard<'_, FrameStore> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Claims the session for an upload, in memory (under the registry's lock); a session
    /// already done, or receiving on another connection, refuses. [`Session::open_for_upload`]
    /// then says so on disk.
    fn claim_upload(&self) -> Result<(), SessionError> {
        let mut inner = self.lock();
        match inner.progress.state {
            SessionState::Done | SessionState::Analysing | SessionState::Failed => return Err(SessionError::AlreadyComplete(self.id.clone())),
            _ if inner.uploading => return Err(SessionError::ReceivingElsewhere(self.id.clone())),
            _ => {}
        }
        inner.uploading = true;
        inner.log_appended = false;
        // More frames may come: the phrase is open again until this upload ends cleanly.
        inner.upload_done = false;
        inner.progress.state = SessionState::Receiving;
        self.publish(&inner);
        Ok(())
    }

    /// The claimed upload's disk side: the mark of a whole upload is taken away (more frames
    /// may come). When that fails, the claim is given back.
    fn open_for_upload(&self) -> Result<(), SessionError> {
        let unmarked = self.files().mark_upload_complete(false);
        if let Err(e) = unmarked {
            let mut inner = self.lock();
            inner.uploading = false;
            self.publish(&inner);
            return Err(e.into());
        }
        Ok(())
    }

    /// Stores one frame (skipped when a frame of that index is already held); returns whether
    /// it was new.
    pub fn add_frame(&self, index: Option<u64>, timestamp: Option<f64>, jpeg: Bytes) -> Result<bool, SessionError> {
        if jpeg.is_empty() {
            return Err(SessionError::BadFrame("a frame with no bytes: a frame is a JPEG".into()));
        }
        // The files' lock first: it orders this session's writes; `inner` is only looked at,
        // then let go while the bytes go to disk.
        let mut files = self.files();
        let (index, next_index) = {
            let inner = self.lock();
            let index = index.unwrap_or(inner.next_index);
            if index < inner.next_index {
                return Ok(false);
            }
            let Some(next_index) = index.checked_add(1) else {
                return Err(SessionError::BadFrame(format!("frame index {index} is too large: no frame may follow it")));
            };
            if inner.progress.bytes + jpeg.len() as u64 > self.max_phrase_bytes {
                return Err(SessionError::PhraseTooLarge { limit: self.max_phrase_bytes, held: inner.progress.frames_received });
            }
            (index, next_index)
        };
        let record = files.append(index, timestamp, &jpeg)?;
        let mut inner = self.lock();
        let position = inner.frames.len();
        inner.frames.push(record);
        if inner.analysis.is_some() {
            inner.recent.push_back((position, jpeg));
            while inner.recent.len() > RECENT_FRAMES {
                inner.recent.pop_front();
            }
        }
        inner.next_index = next_index;
        inner.last_byte = Instant::now();
        inner.progress.frames_received = inner.frames.len();
        inner.progress.next_frame_index = inner.next_index;
        inner.progress.bytes += record.length;
        metrics::counter!(crate::metrics::FRAMES_RECEIVED).increment(1);
        metrics::counter!(crate::metrics::BYTES_RECEIVED).increment(record.length);
        self.publish(&inner);
        drop(inner);
        drop(files);
        self.wake();
        Ok(true)
    }

    /// Stores the referee's own call on the phrase (`PUT /sessions/{id}/call`), durably and in
    /// place of any before, beside the log and never in it; whatever the phrase's state (a call
    /// may come while it uploads). Taken under the files' lock, which orders the session's writes.
    pub fn set_referee_call(&self, call: &store::RefereeCall) -> Result<(), SessionError> {
        let _files = self.files();
        call.save(&self.dir)?;
        Ok(())
    }

    /// Takes the log whole (`PUT /sessions/{id}/signal`); a log the rules refuse is refused
    /// and not kept.
    pub fn set_signal(&self, text: &str) -> Result<(), SessionError> {
        let phrase = ScoringLog::parse(text).map_err(|e| SessionError::BadLog(e.to_string()))?;
        let files = self.files();
        files.save_signal(text)?;
        let mut inner = self.lock();
        drop(files);
        inner.log_text = text.to_owned();
        inner.progress.signal_bytes = text.len();
        self.take_log(&mut inner, phrase);
        drop(inner);
        self.wake();
        Ok(())
    }

    /// Appends whole log lines as the box sends them (a `text/plain` part of an upload, a
    /// WebSocket `signal`). The log is read once it holds the phrase's end (see
    /// [`signal::holds_phrase_end`]); lines after that are kept and never change the call. The
    /// first lines of an upload start a new log when the stored one is already whole (a client
    /// sending its whole log again). Past `max_bytes` in all, the lines are refused.
    pub fn append_signal(&self, lines: &str, max_bytes: u64) -> Result<(), SessionError> {
        // The files' lock orders this session's log writes; the new log is made from what is
        // held, written with `inner` let go, then taken in.
        let files = self.files();
        let (starts_anew, text) = {
            let inner = self.lock();
            let starts_anew = !inner.log_appended && signal::holds_phrase_end(&inner.log_text);
            let held = if starts_anew { "" } else { inner.log_text.as_str() };
            let separator = usize::from(!held.is_empty() && !held.ends_with('\n'));
            if (held.len() + separator + lines.len()) as u64 > max_bytes {
                return Err(SessionError::LogTooLarge(max_bytes));
            }
            let mut text = held.to_owned();
            if separator == 1 {
                text.push('\n');
            }
            text.push_str(lines);
            (starts_anew, text)
        };
        files.save_signal(&text)?;
        let mut inner = self.lock();
        drop(files);
        if starts_anew {
            inner.phrase = None;
            inner.progress.signal_received = false;
        }
        inner.log_appended = true;
        inner.progress.signal_bytes = text.len();
        inner.log_text = text;
        inner.last_byte = Instant::now();
        if inner.phrase.is_some() || !signal::holds_phrase_end(&inner.log_text) {
            self.publish(&inner);
            return Ok(());
        }
        self.read_held_log(inner)
    }

    /// At an upload's end: a log whose end lines never came is read as it is (a client that
    /// sends its log in one part without them); one the rules refuse is refused.
    pub fn settle_log(&self) -> Result<(), SessionError> {
        let inner = self.lock();
        if inner.phrase.is_some() || inner.log_text.is_empty() {
            return Ok(());
        }
        self.read_held_log(inner)
    }

    /// Reads the log held so far for the call (refused as the rules refuse it), then lets the
    /// lock go and wakes the analysis.
    fn read_held_log(&self, mut inner: MutexGuard<'_, Inner>) -> Result<(), SessionError> {
        let phrase = ScoringLog::parse(&inner.log_text).map_err(|e| SessionError::BadLog(e.to_string()))?;
        self.take_log(&mut inner, phrase);
        drop(inner);
        self.wake();
        Ok(())
    }

    /// The log is read: kept and published (the caller wakes the analysis once the lock is let go).
    fn take_log(&self, inner: &mut Inner, phrase: ScoringLog) {
        inner.phrase = Some(phrase);
        inner.last_byte = Instant::now();
        inner.progress.signal_received = true;
        self.publish(inner);
    }

    /// Whether the phrase can be decided now: the log is read, and either every frame is in
    /// (the upload ended cleanly) or the frames reach the last light on the log's clock (a
    /// frame's own time, else its index over the phrase's frame rate), so that a live log
    /// gets its call while the camera's last frames are still coming.
    fn ready_to_decide(inner: &Inner) -> bool {
        let Some(log) = &inner.phrase else { return false };
        if inner.upload_done {
            return true;
        }
        let rate = inner.analysis.as_ref().and_then(|a| a.options.frame_rate);
        let last_frame_time = inner.frames.last().and_then(|r| r.timestamp.or_else(|| rate.map(|fps| r.index as f64 / fps)));
        matches!((log.last_hit_time(), last_frame_time), (Some(hit), Some(last)) if last >= hit)
    }

    /// The upload ended: cleanly (`complete`) or cut off.
    pub fn end_upload(&self, complete: bool) {
        // Everything the upload stored is made durable (frames, index, the directory's
        // entries) before the upload is said to be over; then a phrase nobody uploads to holds
        // no file: a resumed upload opens them again.
        let mut files = self.files();
        if let Err(e) = files.sync() {
            warn!(session = %self.id, error = %e, "cannot sync the stored frames to disk");
        }
        files.close();
        // Kept on disk, so that a log PUT after a restart still completes the phrase.
        let marked = if complete { files.mark_upload_complete(true) } else { Ok(()) };
        if let Err(e) = marked {
            warn!(session = %self.id, error = %e, "cannot mark the upload complete on disk");
        }
        let mut inner = self.lock();
        inner.uploading = false;
        let mut recount = None;
        if complete {
            inner.upload_done = true;
            inner.upload_seconds = inner.started.elapsed().as_secs_f64();
            if inner.progress.state == SessionState::Done {
                recount = self.count_frames_after_verdict(&mut inner);
            }
        } else if inner.progress.state == SessionState::Receiving {
            inner.progress.state = SessionState::Interrupted;
            metrics::counter!(crate::metrics::UPLOADS_INTERRUPTED).increment(1);
        }
        self.publish(&inner);
        drop(inner);
        if let Some(result) = recount {
            let written = serde_json::to_vec_pretty(&result).map_err(std::io::Error::other).and_then(|bytes| store::write_durably(&self.dir.join(store::RESULT), &bytes));
            if let Err(e) = written {
                warn!(session = %self.id, error = %e, "cannot store the answer's final frame counts");
            }
        }
        drop(files);
        self.wake();
    }

    /// A phrase decided from its live log before its upload ended: the answer's `stream` counts
    /// every frame and byte the upload brought, and `frames_after_verdict` those that came after
    /// the call (stored, never changing it). Returns the answer to write again as
    /// `analysis_result.json` (by the caller, with `inner` let go).
    fn count_frames_after_verdict(&self, inner: &mut Inner) -> Option<Value> {
        let (frames, bytes, seconds) = (inner.progress.frames_received as u64, inner.progress.bytes, inner.upload_seconds);
        let result = inner.progress.result.as_mut()?;
        let mut stream: StreamCounters = serde_json::from_value(result.get("stream")?.clone()).ok()?;
        let at_verdict = stream.frames_received;
        let already_after = stream.frames_after_verdict.unwrap_or(0);
        stream.frames_received = frames;
        stream.bytes = bytes;
        stream.upload_seconds = seconds;
        stream.frames_after_verdict = Some(already_after + frames.saturating_sub(at_verdict));
        result["stream"] = serde_json::to_value(stream).ok()?;
        Some(result.clone())
    }

    /// Whether its frames are being analysed (not so with `--analysis false`).
    pub fn analysed(&self) -> bool {
        self.lock().analysis.is_some()
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

    /// Whether stopping the server now would cut work in progress: an upload, or an analysis
    /// that has everything it needs (all frames and the log) and has not decided yet.
    pub fn running(&self) -> bool {
        let inner = self.lock();
        let deciding = inner.analysis.is_some() && inner.upload_done && inner.phrase.is_some();
        inner.uploading || inner.progress.state == SessionState::Analysing || (deciding && !matches!(inner.progress.state, SessionState::Done | SessionState::Failed))
    }

    /// Waits until stopping the server would cut nothing of it (see [`Session::running`]),
    /// woken by its own progress.
    pub async fn until_settled(&self) {
        let mut rx = self.subscribe();
        loop {
            rx.borrow_and_update();
            if !self.running() || rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Whether it has waited at least `idle` with no upload on it, undecided (interrupted, or
    /// awaiting its log).
    fn idle_for(&self, idle: std::time::Duration) -> bool {
        let inner = self.lock();
        !inner.uploading && matches!(inner.progress.state, SessionState::Receiving | SessionState::Interrupted) && inner.last_byte.elapsed() >= idle
    }

    /// Leaves the registry: its analysis state (pipeline, open files) is let go, now or when the
    /// pool thread running it lets go. Everything is on disk for a later reload.
    fn retire(&self) {
        self.retired.store(true, Ordering::SeqCst);
        if let Ok(mut work) = self.work.try_lock() {
            *work = None;
        }
    }

    /// Has its frames analysed (from the first stored one) by the pool, with `analysis`; a
    /// session that already has an analysis keeps it.
    pub fn start_analysis(self: &Arc<Self>, analysis: Analysis) {
        let mut inner = self.lock();
        if inner.analysis.is_none() {
            let options = PipelineOptions { dir: self.dir.clone(), stem: "frames".into(), ..analysis.options };
            inner.analysis = Some(Analysis { options, ..analysis });
        }
        drop(inner);
        self.wake();
    }

    /// Puts it on the analysis pool's run queue, if it has an analysis and is not there yet.
    fn wake(&self) {
        if self.lock().analysis.is_none() || self.scheduled.swap(true, Ordering::SeqCst) {
            return;
        }
        match self.me.upgrade() {
            Some(me) => self.pool.schedule(me),
            None => self.scheduled.store(false, Ordering::SeqCst),
        }
    }

    /// Waits until the verdict is made (or has failed).
    pub async fn verdict(&self) -> Progress {
        self.progress_when(|p| matches!(p.state, SessionState::Done | SessionState::Failed)).await
    }

    /// Waits until the videos that follow the verdict are written (or the phrase failed).
    pub async fn videos(&self) -> Progress {
        self.progress_when(|p| p.videos_ready || p.state == SessionState::Failed).await
    }

    /// The first progress that satisfies `reached` (the latest one if the session goes away).
    async fn progress_when(&self, reached: impl Fn(&Progress) -> bool) -> Progress {
        let mut rx = self.subscribe();
        loop {
            let p = rx.borrow_and_update().clone();
            if reached(&p) {
                return p;
            }
            if rx.changed().await.is_err() {
                return self.progress();
            }
        }
    }
}
