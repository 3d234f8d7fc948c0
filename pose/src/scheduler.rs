//! One pose scheduler for every phrase: it owns the backend (the model), takes letterboxed
//! frames from every session (and `/analyze`) through one bounded queue, forms batches across
//! them (up to `max_batch` frames, waiting at most `batch_wait` for a batch to fill once its
//! first frame is in), runs each batch once, and hands every frame its detections through its
//! own [`Ticket`]. A full queue makes submitters wait (back-pressure): no frame is ever dropped.
//!
//! The backend is a trait, so a remote one (Triton's KServe v2 protocol) can replace the local
//! libtorch model without the sessions noticing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tch::Tensor;

use crate::{InputShape, Letterbox, PoseDetection, PoseError, PoseModel, PosePath, Precision};

/// What runs pose on a batch of letterboxed frames.
pub trait PoseBackend: Send + Sync + 'static {
    /// The input shapes the backend takes (how frames are to be letterboxed).
    fn input_shape(&self) -> InputShape;
    /// Detections for each frame of the batch, in order: `inputs` are `[height, width, 3]`
    /// uint8 RGB tensors, `frames` their geometry.
    fn detect(&self, inputs: &[Tensor], frames: &[Letterbox]) -> Result<Vec<Vec<PoseDetection>>, PoseError>;
    /// A short name for logs and `/health` (e.g. `local cpu`).
    fn describe(&self) -> String;
    /// Which runtime, precision and device run pose.
    fn pose_path(&self) -> PosePath;
}

impl PoseBackend for PoseModel {
    fn input_shape(&self) -> InputShape {
        PoseModel::input_shape(self)
    }

    fn detect(&self, inputs: &[Tensor], frames: &[Letterbox]) -> Result<Vec<Vec<PoseDetection>>, PoseError> {
        PoseModel::detect(self, inputs, frames)
    }

    fn describe(&self) -> String {
        format!("local {}", self.device_name())
    }

    fn pose_path(&self) -> PosePath {
        let threads = (self.device() == tch::Device::Cpu).then(|| tch::get_num_threads().max(1) as usize);
        PosePath { runtime: "libtorch", precision: Precision::F32, device: self.device_name(), threads }
    }
}

/// How batches are formed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SchedulerSettings {
    /// Most frames in one forward pass.
    pub max_batch: usize,
    /// How long a batch waits for more frames once its first one is in.
    pub batch_wait: Duration,
    /// Frames that may wait in the queue before submitters are made to wait.
    pub queue_capacity: usize,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        SchedulerSettings { max_batch: 16, batch_wait: Duration::from_millis(2), queue_capacity: 256 }
    }
}

/// Counters of the scheduler's work, for `/health`, `/metrics` and benchmarks.
#[derive(Debug, Default)]
pub struct SchedulerCounters {
    queued: AtomicUsize,
    frames: AtomicU64,
    batches: AtomicU64,
    largest_batch: AtomicUsize,
    busy_micros: AtomicU64,
    failed_batches: AtomicU64,
}

/// A snapshot of [`SchedulerCounters`].
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SchedulerStats {
    /// Frames submitted and not yet run (the pose backlog).
    pub backlog: usize,
    /// Frames run so far.
    pub frames: u64,
    /// Batches run so far.
    pub batches: u64,
    /// The most frames one batch held.
    pub largest_batch: usize,
    /// Mean frames per batch.
    pub mean_batch: f64,
    /// Mean milliseconds of backend time per frame.
    pub ms_per_frame: f64,
    /// Batches whose backend call failed (their frames got the error).
    pub failed_batches: u64,
}

/// One frame waiting for pose.
struct Job {
    input: Tensor,
    frame: Letterbox,
    reply: SyncSender<Result<Vec<PoseDetection>, PoseError>>,
}

/// What the batching thread is sent: a frame, or the word to stop.
enum Queued {
    Frame(Job),
    Stop,
}

/// Where a submitted frame's detections arrive.
#[derive(Debug)]
pub struct Ticket {
    reply: Receiver<Result<Vec<PoseDetection>, PoseError>>,
}

impl Ticket {
    /// Waits for the frame's detections.
    pub fn wait(self) -> Result<Vec<PoseDetection>, PoseError> {
        self.reply.recv().unwrap_or_else(|_| Err(PoseError::Forward("the pose scheduler stopped".into())))
    }
}

/// The scheduler: cheap to share (`Arc`); the batching thread ends at [`PoseScheduler::stop`]
/// or when the last handle is dropped.
pub struct PoseScheduler {
    queue: SyncSender<Queued>,
    thread: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
    input_shape: InputShape,
    description: String,
    path: PosePath,
    settings: SchedulerSettings,
    counters: Arc<SchedulerCounters>,
}

impl std::fmt::Debug for PoseScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoseScheduler").field("backend", &self.description).field("settings", &self.settings).finish()
    }
}

impl PoseScheduler {
    /// Starts the batching thread over `backend`.
    pub fn start(backend: Arc<dyn PoseBackend>, settings: SchedulerSettings) -> std::io::Result<PoseScheduler> {
        let settings = SchedulerSettings {
            max_batch: settings.max_batch.max(1),
            queue_capacity: settings.queue_capacity.max(1),
            ..settings
        };
        let (queue, jobs) = mpsc::sync_channel(settings.queue_capacity);
        let counters = Arc::new(SchedulerCounters::default());
        let (input_shape, description, path) = (backend.input_shape(), backend.describe(), backend.pose_path());
        let worker_counters = counters.clone();
        let thread = std::thread::Builder::new()
            .name("pose-scheduler".into())
            .spawn(move || run_batches(backend, jobs, settings, &worker_counters))?;
        Ok(PoseScheduler { queue, thread: std::sync::Mutex::new(Some(thread)), input_shape, description, path, settings, counters })
    }

    /// Stops the batching thread once the frames queued before this call are answered, and
    /// joins it (the backend, and so the model, is let go with it). Frames submitted later get
    /// "the pose scheduler stopped". Returns whether this call joined the thread (a second call,
    /// or a scheduler whose thread already ended, joins nothing).
    pub fn stop(&self) -> bool {
        let Some(thread) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() else { return false };
        let _ = self.queue.send(Queued::Stop);
        thread.join().is_ok()
    }

    /// The input shapes the backend takes.
    pub fn input_shape(&self) -> InputShape {
        self.input_shape
    }

    /// How `width`×`height` frames are fitted into the backend's input.
    pub fn letterbox_for(&self, width: u32, height: u32) -> Letterbox {
        Letterbox::fit(width, height, self.input_shape)
    }

    /// The backend, in a few words.
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// Which runtime, precision and device the backend runs pose on.
    pub fn pose_path(&self) -> &PosePath {
        &self.path
    }

    /// How batches are formed.
    pub fn settings(&self) -> SchedulerSettings {
        self.settings
    }

    /// Queues one letterboxed frame; waits while the queue is full.
    pub fn submit(&self, input: Tensor, frame: Letterbox) -> Ticket {
        let (reply, receiver) = mpsc::sync_channel(1);
        self.counters.queued.fetch_add(1, Ordering::SeqCst);
        let job = Queued::Frame(Job { input, frame, reply });
        let sent = match self.queue.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job)) => self.queue.send(job).map_err(|e| e.0),
            Err(TrySendError::Disconnected(job)) => Err(job),
        };
        if let Err(Queued::Frame(job)) = sent {
            self.counters.queued.fetch_sub(1, Ordering::SeqCst);
            let _ = job.reply.send(Err(PoseError::Forward("the pose scheduler stopped".into())));
        }
        Ticket { reply: receiver }
    }

    /// Runs one frame and waits for its detections.
    pub fn detect_one(&self, input: Tensor, frame: Letterbox) -> Result<Vec<PoseDetection>, PoseError> {
        self.submit(input, frame).wait()
    }

    /// What the scheduler has done so far.
    pub fn stats(&self) -> SchedulerStats {
        let c = &self.counters;
        let frames = c.frames.load(Ordering::SeqCst);
        let batches = c.batches.load(Ordering::SeqCst);
        let per = |x: f64, n: u64| if n == 0 { 0.0 } else { x / n as f64 };
        SchedulerStats {
            backlog: c.queued.load(Ordering::SeqCst),
            frames,
            batches,
            largest_batch: c.largest_batch.load(Ordering::SeqCst),
            mean_batch: per(frames as f64, batches),
            ms_per_frame: per(c.busy_micros.load(Ordering::SeqCst) as f64 / 1e3, frames),
            failed_batches: c.failed_batches.load(Ordering::SeqCst),
        }
    }
}

/// The batching loop: one batch at a time, until it is told to stop or every handle is gone.
fn run_batches(backend: Arc<dyn PoseBackend>, jobs: Receiver<Queued>, settings: SchedulerSettings, counters: &SchedulerCounters) {
    let mut stopping = false;
    while !stopping {
        let Ok(Queued::Frame(first)) = jobs.recv() else { return };
        let mut batch = vec![first];
        let deadline = Instant::now() + settings.batch_wait;
        while batch.len() < settings.max_batch {
            // Whatever is already queued joins at once; then wait out the rest of the window.
            let next = match jobs.try_recv() {
                Ok(queued) => queued,
                Err(_) => match jobs.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(queued) => queued,
                    Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
                },
            };
            match next {
                Queued::Frame(job) => batch.push(job),
                Queued::Stop => {
                    stopping = true;
                    break;
                }
            }
        }
        run_batch(backend.as_ref(), batch, counters);
    }
}

/// The histogram (Prometheus, through the `metrics` facade) of backend milliseconds per frame:
/// each batch records its time shared out over its frames.
pub const POSE_MS_PER_FRAME: &str = "referee_pose_ms_per_frame";

/// Runs one batch (frames of one input shape side by side, so each shape is one forward pass)
/// and answers every frame. A backend that fails or panics fails this batch's frames only.
fn run_batch(backend: &dyn PoseBackend, mut batch: Vec<Job>, counters: &SchedulerCounters) {
    counters.queued.fetch_sub(batch.len(), Ordering::SeqCst);
    batch.sort_by_key(|job| job.frame.input_size());
    let inputs: Vec<Tensor> = batch.iter().map(|job| job.input.shallow_clone()).collect();
    let frames: Vec<Letterbox> = batch.iter().map(|job| job.frame).collect();
    let started = Instant::now();
    let outcome = catch_unwind(AssertUnwindSafe(|| backend.detect(&inputs, &frames)))
        .unwrap_or_else(|panic| Err(PoseError::Forward(format!("the pose backend panicked: {}", panic_message(&panic)))));
    let took = started.elapsed();
    counters.busy_micros.fetch_add(took.as_micros() as u64, Ordering::SeqCst);
    metrics::histogram!(POSE_MS_PER_FRAME).record_many(took.as_secs_f64() * 1e3 / batch.len() as f64, batch.len());
    counters.frames.fetch_add(batch.len() as u64, Ordering::SeqCst);
    counters.batches.fetch_add(1, Ordering::SeqCst);
    counters.largest_batch.fetch_max(batch.len(), Ordering::SeqCst);
    match outcome {
        Ok(detections) if detections.len() == batch.len() => {
            for (job, found) in batch.into_iter().zip(detections) {
                let _ = job.reply.send(Ok(found));
            }
        }
        Ok(detections) => {
            let reason = format!("the pose backend answered {} frames of {}", detections.len(), batch.len());
            fail_batch(batch, PoseError::Forward(reason), counters)
        }
        Err(err) => fail_batch(batch, err, counters),
    }
}

/// Answers every frame of a failed batch with the backend's error.
fn fail_batch(batch: Vec<Job>, error: PoseError, counters: &SchedulerCounters) {
    counters.failed_batches.fetch_add(1, Ordering::SeqCst);
    for job in batch {
        let _ = job.reply.send(Err(error.clone()));
    }
}

/// A panic's message, when it carried one as text.
pub fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stand-in backend for the batching logic alone (the real model is exercised in
    /// `tests/scheduler.rs`): it records the batches it is given and answers each frame with one
    /// detection whose score is the frame's first pixel, so answers can be traced to their frames.
    struct Recorder {
        batches: Mutex<Vec<usize>>,
        gate: Mutex<()>,
        panic_on: Option<u8>,
    }

    impl PoseBackend for Recorder {
        fn input_shape(&self) -> InputShape {
            InputShape::Minimal
        }
        fn detect(&self, inputs: &[Tensor], _frames: &[Letterbox]) -> Result<Vec<Vec<PoseDetection>>, PoseError> {
            let _held = self.gate.lock().unwrap_or_else(|p| p.into_inner());
            self.batches.lock().unwrap().push(inputs.len());
            inputs
                .iter()
                .map(|t| {
                    let first = t.flatten(0, -1).int64_value(&[0]) as u8;
                    if Some(first) == self.panic_on {
                        panic!("frame {first} breaks the backend");
                    }
                    Ok(vec![PoseDetection { bbox: [0.0; 4], score: f32::from(first), keypoints: [[0.0; 3]; crate::KEYPOINTS] }])
                })
                .collect()
        }
        fn describe(&self) -> String {
            "recorder".into()
        }
        fn pose_path(&self) -> crate::PosePath {
            crate::PosePath { runtime: "recorder", precision: crate::Precision::F32, device: "test".into(), threads: None }
        }
    }

    fn frame(value: u8) -> (Tensor, Letterbox) {
        (Tensor::full([32, 32, 3], i64::from(value), (tch::Kind::Uint8, tch::Device::Cpu)), Letterbox::fit(32, 32, InputShape::Minimal))
    }

    #[test]
    fn frames_queued_together_share_a_batch_and_each_gets_its_own_answer() {
        let backend = Arc::new(Recorder { batches: Mutex::new(Vec::new()), gate: Mutex::new(()), panic_on: None });
        let settings = SchedulerSettings { max_batch: 8, batch_wait: Duration::from_millis(300), queue_capacity: 64 };
        // Hold the backend so the first frame's batch blocks and the other 16 pile up behind it.
        let held = backend.gate.lock().unwrap();
        let scheduler = PoseScheduler::start(backend.clone(), settings).unwrap();
        let tickets: Vec<(u8, Ticket)> = (0..17u8).map(|v| {
            let (t, l) = frame(v);
            (v, scheduler.submit(t, l))
        }).collect();
        drop(held);
        for (value, ticket) in tickets {
            let found = ticket.wait().unwrap();
            assert_eq!(found[0].score, f32::from(value), "each frame gets its own detections");
        }
        let batches = backend.batches.lock().unwrap().clone();
        assert_eq!(batches.iter().sum::<usize>(), 17);
        assert!(batches.iter().all(|&b| b <= 8), "never over max_batch: {batches:?}");
        assert!(batches.iter().any(|&b| b == 8), "a full queue fills whole batches: {batches:?}");
        let stats = scheduler.stats();
        assert_eq!((stats.frames, stats.backlog, stats.largest_batch), (17, 0, 8));
    }

    #[test]
    fn a_panicking_backend_fails_its_batch_and_the_scheduler_serves_on() {
        let backend = Arc::new(Recorder { batches: Mutex::new(Vec::new()), gate: Mutex::new(()), panic_on: Some(7) });
        let settings = SchedulerSettings { max_batch: 1, batch_wait: Duration::ZERO, queue_capacity: 4 };
        let scheduler = PoseScheduler::start(backend, settings).unwrap();
        let (t, l) = frame(7);
        let err = scheduler.detect_one(t, l).unwrap_err();
        assert!(err.to_string().contains("panicked"), "{err}");
        let (t, l) = frame(3);
        assert_eq!(scheduler.detect_one(t, l).unwrap()[0].score, 3.0);
        assert_eq!(scheduler.stats().failed_batches, 1);
    }
}
