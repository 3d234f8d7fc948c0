//! The analysis pool: a fixed number of threads that run sessions' frames through their phrase
//! pipelines. A session is put on the pool's run queue when it has work (a frame stored, its log
//! in, its upload ended); a thread takes it, runs a bounded turn (so every live phrase gets its
//! share), and lets it go. Pose itself runs on the shared scheduler, batched across sessions;
//! the pool does the light per-frame work (JPEG decode, fisheye, letterbox, tracking). The
//! videos that follow a verdict are written by one more thread at a lower OS priority, so on a
//! box without a GPU they take the cores only when no phrase's frames need them.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use opencv::core::Mat;
use tracing::{info, warn};

use referee_store::{FrameReader, FrameRecord};
use super::{Failure, FailureKind, Session, SessionState};
use crate::analysis::answer::{phrase_result, PhraseFiles, StreamCounters};
use referee_store::write_atomically;
use crate::analysis::frames::decode_jpeg;
use crate::analysis::pipeline::{PhrasePipeline, ScoringLog, VideoPlan};
use referee_pose::scheduler::panic_message;

/// Frames a session may run in one turn before others get theirs.
const FRAMES_PER_TURN: usize = 16;
/// The nice value of the video thread where the kernel refuses it the idle class (0 is normal;
/// higher yields to the analysis and pose).
const VIDEO_NICENESS: i32 = 19;
/// How often the piste view's latest frame (`view.jpg`) is written while frames are analysed.
const VIEW_EVERY: Duration = Duration::from_millis(500);

/// A session's analysis as it goes: its pipeline and the next stored frame to take.
pub(super) struct Work {
    pipeline: PhrasePipeline,
    reader: Option<FrameReader>,
    next: usize,
    corrupt: usize,
    view_written: Option<Instant>,
    ended: bool,
}

/// The threads that run sessions' analyses.
pub struct AnalysisPool {
    queue: Mutex<VecDeque<Arc<Session>>>,
    ready: Condvar,
    threads: usize,
    videos: Mutex<VecDeque<(Arc<Session>, VideoPlan)>>,
    videos_ready: Condvar,
    /// Set by [`AnalysisPool::stop`]: the threads end once their turn is over.
    stopping: AtomicBool,
    /// The threads, joined by [`AnalysisPool::stop`].
    handles: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for AnalysisPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnalysisPool").field("threads", &self.threads).finish_non_exhaustive()
    }
}

impl AnalysisPool {
    /// Starts `threads` analysis threads (at least one).
    pub fn start(threads: usize) -> std::io::Result<Arc<AnalysisPool>> {
        let pool = Arc::new(AnalysisPool {
            queue: Mutex::new(VecDeque::new()),
            ready: Condvar::new(),
            threads: threads.max(1),
            videos: Mutex::new(VecDeque::new()),
            videos_ready: Condvar::new(),
            stopping: AtomicBool::new(false),
            handles: Mutex::new(Vec::new()),
        });
        let mut handles = Vec::new();
        for n in 0..pool.threads {
            let runner = pool.clone();
            handles.push(std::thread::Builder::new().name(format!("analysis-{n}")).spawn(move || runner.run())?);
        }
        let writer = pool.clone();
        handles.push(std::thread::Builder::new().name("videos".into()).spawn(move || writer.write_videos())?);
        *pool.handles.lock().unwrap_or_else(|p| p.into_inner()) = handles;
        Ok(pool)
    }

    /// Stops the pool: each thread ends when its turn (at most [`FRAMES_PER_TURN`] frames) or
    /// the video it is writing is done; phrases still queued stay on disk as they are, and are
    /// taken up again after a restart. Blocks until every thread has ended; returns how many.
    pub fn stop(&self) -> usize {
        self.stopping.store(true, Ordering::SeqCst);
        {
            // Taken so that no thread is between its check and its wait.
            let _queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
            self.ready.notify_all();
        }
        {
            let _videos = self.videos.lock().unwrap_or_else(|p| p.into_inner());
            self.videos_ready.notify_all();
        }
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        let joined = handles.len();
        for handle in handles {
            if handle.join().is_err() {
                warn!("an analysis thread ended in a panic");
            }
        }
        joined
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Queues a decided phrase's videos for the video thread.
    fn queue_videos(&self, session: Arc<Session>, plan: VideoPlan) {
        self.videos.lock().unwrap_or_else(|p| p.into_inner()).push_back((session, plan));
        self.videos_ready.notify_one();
    }

    /// The video thread: lowers its own priority, then writes queued videos one phrase at a time.
    fn write_videos(&self) {
        // Videos are artifacts, written when the cores have nothing else to do: in the idle
        // class, even nice 10 took a tenth of a 2-core box from the next phrase's pose, enough
        // to put a 30 fps phrase behind. On Linux a thread is a task: 0 names the calling thread.
        let idle = libc::sched_param { sched_priority: 0 };
        // SAFETY: sched_setscheduler reads the parameter struct, which outlives the call.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &idle) } != 0 {
            // SAFETY: setpriority only reads its integer arguments.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, VIDEO_NICENESS) } != 0 {
                warn!("cannot lower the video thread's priority; videos compete with analysis");
            }
        }
        loop {
            let (session, plan) = {
                let mut queue = self.videos.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if self.stopping() {
                        return;
                    }
                    if let Some(job) = queue.pop_front() {
                        break job;
                    }
                    queue = self.videos_ready.wait(queue).unwrap_or_else(|p| p.into_inner());
                }
            };
            let written = catch_unwind(AssertUnwindSafe(|| write_phrase_videos(&session, &plan)));
            if written.is_err() {
                warn!(session = %session.id, "writing the videos failed unexpectedly; the verdict stands");
            }
            let mut inner = session.lock();
            inner.progress.videos_ready = true;
            session.publish(&inner);
        }
    }

    /// Its thread count.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Sessions waiting for a thread.
    pub fn waiting(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Queues a session (its `scheduled` flag already set by the caller).
    pub(super) fn schedule(&self, session: Arc<Session>) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push_back(session);
        self.ready.notify_one();
    }

    fn run(&self) {
        loop {
            let session = {
                let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                loop {
                    if self.stopping() {
                        return;
                    }
                    if let Some(s) = queue.pop_front() {
                        break s;
                    }
                    queue = self.ready.wait(queue).unwrap_or_else(|p| p.into_inner());
                }
            };
            let turn = catch_unwind(AssertUnwindSafe(|| run_turn(&session))).unwrap_or_else(|panic| {
                *session.work.lock().unwrap_or_else(|p| p.into_inner()) = None;
                let message = format!("the analysis failed unexpectedly ({}); the stored frames are kept", panic_message(&panic));
                fail(&session, Failure { kind: FailureKind::Internal, message });
                Turn::Ended
            });
            match turn {
                Turn::More => self.schedule(session),
                Turn::Idle | Turn::Ended => {
                    session.scheduled.store(false, Ordering::SeqCst);
                    // Work that came while the turn ended would have found it still scheduled.
                    if turn == Turn::Idle && has_work(&session) {
                        session.wake();
                    }
                }
            }
        }
    }
}

/// How a turn ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// Its budget is spent with frames left: back on the queue.
    More,
    /// Nothing to do until more frames, the log or the upload's end come.
    Idle,
    /// Decided, failed, or retired: nothing more, ever.
    Ended,
}

/// What the session's analysis does next.
enum Step {
    Frame(FrameRecord, Option<Bytes>),
    Finish(ScoringLog),
    Wait,
}

fn has_work(session: &Session) -> bool {
    let inner = session.lock();
    let next = session.work.try_lock().ok().and_then(|w| w.as_ref().map(|w| (w.next, w.ended)));
    match next {
        Some((_, true)) => false,
        Some((next, false)) => inner.frames.len() > next || Session::ready_to_decide(&inner),
        None => inner.analysis.is_some() && !matches!(inner.progress.state, SessionState::Done | SessionState::Failed),
    }
}

fn run_turn(session: &Arc<Session>) -> Turn {
    let mut slot = session.work.lock().unwrap_or_else(|p| p.into_inner());
    if session.retired.load(Ordering::SeqCst) {
        *slot = None;
        return Turn::Ended;
    }
    if slot.is_none() {
        let Some(analysis) = session.lock().analysis.clone() else { return Turn::Ended };
        if matches!(session.progress().state, SessionState::Done | SessionState::Failed) {
            return Turn::Ended;
        }
        let pipeline = PhrasePipeline::new(analysis.pose, analysis.options);
        *slot = Some(Work { pipeline, reader: None, next: 0, corrupt: 0, view_written: None, ended: false });
    }
    let work = slot.as_mut().expect("set above");
    if work.ended {
        return Turn::Ended;
    }
    for _ in 0..FRAMES_PER_TURN {
        let step = {
            let mut inner = session.lock();
            if let Some(record) = inner.frames.get(work.next).copied() {
                while inner.recent.front().is_some_and(|(position, _)| *position < work.next) {
                    inner.recent.pop_front();
                }
                let held = match inner.recent.front() {
                    Some((position, _)) if *position == work.next => inner.recent.pop_front().map(|(_, bytes)| bytes),
                    _ => None,
                };
                Step::Frame(record, held)
            } else if let (true, Some(log)) = (Session::ready_to_decide(&inner), inner.phrase.clone()) {
                inner.progress.state = SessionState::Analysing;
                session.publish(&inner);
                Step::Finish(log)
            } else {
                Step::Wait
            }
        };
        match step {
            Step::Frame(record, held) => {
                if let Err(failure) = analyse_frame(session, work, record, held) {
                    work.ended = true;
                    fail(session, failure);
                    return Turn::Ended;
                }
            }
            Step::Finish(log) => {
                work.ended = true;
                let Some(Work { pipeline, .. }) = slot.take() else { return Turn::Ended };
                finish(session, pipeline, &log);
                return Turn::Ended;
            }
            Step::Wait => {
                if let Err(e) = work.pipeline.flush() {
                    work.ended = true;
                    fail(session, e.into());
                    return Turn::Ended;
                }
                // A waiting phrase holds no file; catching up from disk opens it again.
                work.reader = None;
                publish_analysed(session, work);
                return Turn::Idle;
            }
        }
    }
    Turn::More
}

/// One stored frame: from memory when it was just received, else read back; decoded and
/// pushed through the pipeline. A frame that is not a JPEG is counted and skipped; a frame that
/// cannot be read back is a storage failure and fails the phrase.
fn analyse_frame(session: &Session, work: &mut Work, record: FrameRecord, held: Option<Bytes>) -> Result<(), Failure> {
    work.next += 1;
    let bytes: Vec<u8> = match held {
        Some(bytes) => bytes.to_vec(),
        None => {
            let reader = match work.reader.as_mut() {
                Some(r) => r,
                None => work.reader.insert(FrameReader::open(&session.dir).map_err(storage_failure)?),
            };
            reader.read(&record).map_err(storage_failure)?
        }
    };
    match decode_jpeg(&bytes) {
        Some(frame) => {
            work.pipeline.push(&frame, record.timestamp).map_err(Failure::from)?;
            metrics::counter!(crate::metrics::FRAMES_ANALYSED).increment(1);
        }
        None => {
            work.corrupt += 1;
            metrics::counter!(crate::metrics::FRAMES_CORRUPT).increment(1);
            // One line for the first, then one each time the count gains a digit: a client
            // sending a million bad frames does not write a million lines.
            if is_power_of_ten(work.corrupt) {
                warn!(session = %session.id, index = record.index, corrupt_frames = work.corrupt, "corrupt JPEG frame skipped (logged at 1, 10, 100, … of them)");
            }
        }
    }
    if work.view_written.is_none_or(|at| at.elapsed() >= VIEW_EVERY) {
        write_view(session, &work.pipeline);
        work.view_written = Some(Instant::now());
    }
    publish_analysed(session, work);
    Ok(())
}

/// 1, 10, 100, …
fn is_power_of_ten(mut n: usize) -> bool {
    while n >= 10 && n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

fn storage_failure(e: std::io::Error) -> Failure {
    Failure { kind: FailureKind::Internal, message: format!("cannot read the stored frames: {e}") }
}

fn publish_analysed(session: &Session, work: &Work) {
    let mut inner = session.lock();
    inner.progress.corrupt_frames = work.corrupt;
    inner.progress.frames_analysed = work.corrupt + work.pipeline.frames_processed();
    session.publish(&inner);
}

/// Decides the phrase, publishes the verdict, then writes the videos that follow it.
fn finish(session: &Session, pipeline: PhrasePipeline, log: &ScoringLog) {
    write_view(session, &pipeline);
    let outcome = match pipeline.finish(log) {
        Ok(o) => o,
        Err(e) => return fail(session, e.into()),
    };
    let (stream, started) = {
        let mut inner = session.lock();
        inner.progress.frames_analysed = inner.progress.corrupt_frames + outcome.frames_processed;
        let stream = StreamCounters {
            session: session.id.clone(),
            frames_received: inner.progress.frames_received as u64,
            frames_analysed: inner.progress.frames_analysed as u64,
            corrupt_frames: inner.progress.corrupt_frames as u64,
            bytes: inner.progress.bytes,
            upload_seconds: inner.upload_seconds,
            verdict_seconds_after_last_byte: inner.last_byte.elapsed().as_secs_f64(),
            frames_after_verdict: None,
        };
        (stream, inner.started)
    };
    let files = PhraseFiles { dir: session.dir.clone(), video: session.dir.join(referee_store::FRAMES), signal: session.dir.join(referee_store::SIGNAL) };
    let after_last_byte = stream.verdict_seconds_after_last_byte;
    match phrase_result(&files, &outcome, false, started, Some(stream)) {
        Ok(result) => {
            info!(session = %session.id, winner = %outcome.decision.winner, "verdict");
            crate::metrics::decided("stream", &result);
            metrics::histogram!(crate::metrics::VERDICT_SECONDS).record(after_last_byte);
            let mut inner = session.lock();
            inner.progress.result = Some(result);
            inner.progress.state = SessionState::Done;
            inner.progress.videos_ready = outcome.pending_videos.is_none();
            session.publish(&inner);
        }
        Err(e) => return fail(session, Failure { kind: FailureKind::Internal, message: format!("cannot write the result: {e}") }),
    }
    if let (Some(plan), Some(me)) = (outcome.pending_videos, session.me.upgrade()) {
        session.pool.queue_videos(me, plan);
    }
}

/// Writes a decided phrase's videos from its stored frames; a failure is logged and costs the
/// videos only.
fn write_phrase_videos(session: &Session, plan: &VideoPlan) {
    let started = Instant::now();
    let written = stored_frames(session).and_then(|frames| plan.write(frames).map_err(|e| e.to_string()));
    match written {
        Ok(_) => info!(session = %session.id, seconds = format!("{:.2}", started.elapsed().as_secs_f64()), "videos written"),
        Err(e) => warn!(session = %session.id, error = %e, "the videos could not be written; the verdict stands"),
    }
}

/// The session's decodable frames, in order, read back from disk.
fn stored_frames(session: &Session) -> Result<impl Iterator<Item = Mat>, String> {
    let records = session.lock().frames.clone();
    let mut reader = FrameReader::open(&session.dir).map_err(|e| e.to_string())?;
    Ok(records.into_iter().filter_map(move |r| reader.read(&r).ok().and_then(|b| decode_jpeg(&b))))
}

/// Writes the latest analysed frame with its skeletons as `view.jpg` (whole, by rename); a
/// failure costs the view a picture, never the phrase.
fn write_view(session: &Session, pipeline: &PhrasePipeline) {
    if let Some(jpeg) = pipeline.latest_view_jpeg() {
        if let Err(e) = write_atomically(&session.dir.join("view.jpg"), &jpeg) {
            warn!(session = %session.id, %e, "cannot write the view's latest frame");
        }
    }
}

fn fail(session: &Session, failure: Failure) {
    warn!(session = %session.id, error = %failure.message, "phrase failed");
    crate::metrics::phrase_ended("stream", failure.kind.outcome());
    let mut inner = session.lock();
    inner.progress.failure = Some(failure);
    inner.progress.state = SessionState::Failed;
    inner.progress.videos_ready = true;
    session.publish(&inner);
}
