//! Service configuration: command-line flags, each also read from the legacy `REFEREE_*`
//! environment variable of the same meaning, gathered in one struct.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args};

/// Everything `ai-referee serve` needs, from flags or the legacy environment variables.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "REFEREE_HOST", default_value = "0.0.0.0")]
    pub host: String,

    /// Port to listen on (0 picks a free one; the chosen address is logged).
    #[arg(long, env = "REFEREE_PORT", default_value_t = 8080)]
    pub port: u16,

    /// The YOLO-pose TorchScript to load (an Ultralytics `export(format="torchscript")`).
    #[arg(long, env = "REFEREE_YOLO_MODEL", default_value = "models/yolo11n-pose.torchscript")]
    pub model: PathBuf,

    /// Where each phrase's artifact directory is created.
    #[arg(long, env = "REFEREE_OUTPUT_DIR", default_value = "results/processed_phrases")]
    pub output_dir: PathBuf,

    /// Where streamed phrases (`/stream` sessions) are kept, apart from `/analyze`'s artifact
    /// directories; default `<output-dir>/sessions`.
    #[arg(long, env = "REFEREE_SESSIONS_DIR")]
    pub sessions_dir: Option<PathBuf>,

    /// Megabytes that must stay free on the disk: below it new phrases get 507.
    #[arg(long, env = "REFEREE_MIN_FREE_MB", default_value_t = 512)]
    pub min_free_mb: u64,

    /// Days after which a phrase nothing has touched is removed from disk, streamed sessions and
    /// `/analyze` results alike (checked every hour); 0 keeps everything.
    #[arg(long, env = "REFEREE_RETENTION_DAYS", default_value_t = 0)]
    pub retention_days: u64,

    /// Seconds SIGTERM or Ctrl-C gives running analyses to finish; what is still running then is
    /// kept as `interrupted`, to be resumed after the restart.
    #[arg(long, env = "REFEREE_SHUTDOWN_GRACE_SECONDS", default_value_t = 30)]
    pub shutdown_grace_seconds: u64,

    /// Log level: ERROR, WARN, INFO, DEBUG or TRACE (any case), or a tracing filter directive.
    #[arg(long, env = "REFEREE_LOG_LEVEL", default_value = "INFO")]
    pub log_level: String,

    /// Where pose runs: `auto` (CUDA when present, else CPU), `cpu` or `cuda`.
    #[arg(long, env = "REFEREE_DEVICE", default_value = "auto")]
    pub device: String,

    /// Correct the fisheye lens before pose.
    #[arg(long, env = "REFEREE_FISHEYE_ENABLED", default_value = "true",
          value_parser = legacy_bool, action = ArgAction::Set)]
    pub fisheye_enabled: bool,

    /// Fisheye distortion coefficient k1 of the synthetic camera.
    #[arg(long, env = "REFEREE_FISHEYE_STRENGTH", default_value_t = -0.18, allow_negative_numbers = true)]
    pub fisheye_strength: f64,

    /// Balance passed to OpenCV's new-camera-matrix estimate (0 crops, 1 keeps every pixel).
    #[arg(long, env = "REFEREE_FISHEYE_BALANCE", default_value_t = 0.0, allow_negative_numbers = true)]
    pub fisheye_balance: f64,

    /// Copy the input's audio into the corrected video.
    #[arg(long, env = "REFEREE_FISHEYE_KEEP_AUDIO", default_value = "true",
          value_parser = legacy_bool, action = ArgAction::Set)]
    pub fisheye_keep_audio: bool,

    /// Log progress while correcting a video.
    #[arg(long, env = "REFEREE_FISHEYE_PROGRESS", default_value = "false",
          value_parser = legacy_bool, action = ArgAction::Set)]
    pub fisheye_progress: bool,

    /// Largest part of a streamed phrase (one JPEG frame or the log), bytes; larger gets 413.
    #[arg(long, env = "REFEREE_MAX_FRAME_BYTES", default_value_t = 16 << 20)]
    pub max_frame_bytes: u64,

    /// Largest scoring-box log, bytes (a streamed log part, `PUT /sessions/{id}/signal`, the
    /// `/analyze` signal file); larger gets 413. A phrase's log is a few KB.
    #[arg(long, env = "REFEREE_MAX_LOG_BYTES", default_value_t = 1 << 20)]
    pub max_log_bytes: u64,

    /// Parts an `/analyze` form may have (it needs two files and up to three short fields);
    /// more gets 413.
    #[arg(long, env = "REFEREE_MAX_FORM_PARTS", default_value_t = 16)]
    pub max_form_parts: u64,

    /// Largest streamed phrase, bytes (all its frames, over every resumed upload); larger gets 413.
    #[arg(long, env = "REFEREE_MAX_PHRASE_BYTES", default_value_t = 4 << 30)]
    pub max_phrase_bytes: u64,

    /// Phrases that may upload or be analysed at once; one more gets 503 with Retry-After.
    #[arg(long, env = "REFEREE_MAX_SESSIONS", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_sessions: u64,

    /// Seconds an undecided phrase (interrupted, or awaiting its log) may wait before it leaves
    /// memory; it stays on disk and is picked up again when resumed or asked for.
    #[arg(long, env = "REFEREE_SESSION_IDLE_SECONDS", default_value_t = 900)]
    pub session_idle_seconds: u64,

    /// Whose decision is the answer's `decision`: `legacy` (the drop-in's rules, exactly), `v2`
    /// or `v3`; all three are always under `decisions`. A request may choose (`engine` form field,
    /// `?engine=`).
    #[arg(long, env = "REFEREE_ENGINE", default_value = "legacy")]
    pub engine: referee_engine::choice::EngineChoice,

    /// Analyse streamed phrases (`false`: frames and logs are stored only, and an upload ends
    /// with 202 and the session's progress; for ingest-only front ends and benchmarks).
    #[arg(long, env = "REFEREE_ANALYSIS", default_value = "true",
          value_parser = legacy_bool, action = ArgAction::Set)]
    pub analysis: bool,

    /// Where pose runs: `local` (libtorch in this process, `--device`) or `triton` (a Triton
    /// Inference Server serving the same export, `--triton-url`).
    #[arg(long, env = "REFEREE_POSE_BACKEND", default_value = "local", value_parser = ["local", "triton"])]
    pub pose_backend: String,

    /// Which runtime runs local pose: `auto` (OpenVINO on a CPU when the model's IR,
    /// `<model>_openvino_model/`, and the runtime are there, else libtorch), `libtorch` or
    /// `openvino`.
    #[arg(long, env = "REFEREE_POSE_RUNTIME", default_value = "auto", value_parser = ["auto", "libtorch", "openvino"])]
    pub pose_runtime: String,

    /// The number format of local pose: `f32` (the `.pt`'s own results) or `bf16` (OpenVINO on
    /// CPUs with AVX512-BF16 or AMX: about twice as fast, keypoints moved by about a pixel).
    #[arg(long, env = "REFEREE_POSE_PRECISION", default_value = "f32", value_parser = ["f32", "bf16"])]
    pub pose_precision: String,

    /// Where Triton is, KServe v2 inference protocol: `grpc://host:8001` (gRPC) or
    /// `http://host:8000` (HTTP, binary tensors).
    #[arg(long, env = "REFEREE_TRITON_URL", default_value = "grpc://127.0.0.1:8001")]
    pub triton_url: String,

    /// The pose model's name in Triton's repository.
    #[arg(long, env = "REFEREE_TRITON_MODEL", default_value = "yolo_pose")]
    pub triton_model: String,

    /// The model version to ask for (none: Triton's version policy picks).
    #[arg(long, env = "REFEREE_TRITON_MODEL_VERSION")]
    pub triton_model_version: Option<String>,

    /// The model's input tensor name on Triton (`INPUT__0` for the stock `pytorch_libtorch`
    /// backend, as in `deploy/triton/`).
    #[arg(long, env = "REFEREE_TRITON_INPUT", default_value = referee_pose::triton::INPUT_NAME)]
    pub triton_input: String,

    /// The model's output tensor name on Triton (`OUTPUT__0` for `pytorch_libtorch`).
    #[arg(long, env = "REFEREE_TRITON_OUTPUT", default_value = referee_pose::triton::OUTPUT_NAME)]
    pub triton_output: String,

    /// Milliseconds one inference request to Triton may take.
    #[arg(long, env = "REFEREE_TRITON_TIMEOUT_MS", default_value_t = 10_000)]
    pub triton_timeout_ms: u64,

    /// Retries of a failed Triton request (backoff 200 ms, doubling); then the phrase fails
    /// with 503 and can be decided again from its stored frames.
    #[arg(long, env = "REFEREE_TRITON_RETRIES", default_value_t = 3)]
    pub triton_retries: u32,

    /// Most frames in one pose forward pass; the scheduler batches frames of every phrase.
    #[arg(long, env = "REFEREE_MAX_BATCH", default_value_t = 16,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_batch: u64,

    /// Milliseconds a pose batch waits for more frames once its first is in.
    #[arg(long, env = "REFEREE_BATCH_WAIT_MS", default_value_t = 2)]
    pub batch_wait_ms: u64,

    /// libtorch's intra-op threads for pose (0: one per core).
    #[arg(long, env = "REFEREE_POSE_THREADS", default_value_t = 0)]
    pub pose_threads: usize,

    /// Threads that decode, correct, letterbox and track the phrases' frames (0: one per core);
    /// OpenCV runs single-threaded inside each.
    #[arg(long, env = "REFEREE_ANALYSIS_THREADS", default_value_t = 0)]
    pub analysis_threads: usize,

    /// Seconds a client may take to send a request's headers; then the connection is closed.
    #[arg(long, env = "REFEREE_HEADER_TIMEOUT_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub header_timeout_seconds: u64,

    /// Seconds a request body may go without a byte (a stalled camera laptop); then the upload
    /// ends, a streamed phrase is kept as `interrupted` (resumable) and its slot is freed.
    #[arg(long, env = "REFEREE_BODY_IDLE_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub body_idle_seconds: u64,

    /// Connections held open at once; more wait in the kernel's queue until one closes.
    #[arg(long, env = "REFEREE_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,

    /// OpenCV's threads inside each analysis thread (decode, fisheye, letterbox); 0: OpenCV's
    /// own choice. One is the measured best here: the pool already runs phrases side by side.
    #[arg(long, env = "REFEREE_OPENCV_THREADS", default_value_t = 1)]
    pub opencv_threads: usize,

    /// A bearer token every route but `/health` then wants (header, `?token=`, or the cookie
    /// the query token sets); none by default.
    #[arg(long, env = "REFEREE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ServeConfig {
    /// Frames one phrase may have waiting on the pose scheduler at once: enough to fill a batch
    /// on a GPU with a few phrases, few enough to keep a phrase's memory small.
    pub fn in_flight(&self) -> usize {
        (self.max_batch as usize).clamp(1, 4)
    }

    /// libtorch's intra-op thread count: the flag, or one per core.
    pub fn pose_thread_count(&self) -> usize {
        if self.pose_threads > 0 { self.pose_threads } else { cores() }
    }

    /// The analysis pool's thread count: the flag, or one per core.
    pub fn analysis_thread_count(&self) -> usize {
        if self.analysis_threads > 0 { self.analysis_threads } else { cores() }
    }

    /// The Triton backend's settings from the flags.
    pub fn triton(&self) -> referee_pose::triton::TritonSettings {
        referee_pose::triton::TritonSettings {
            url: self.triton_url.clone(),
            model: self.triton_model.clone(),
            version: self.triton_model_version.clone().filter(|v| !v.is_empty()),
            input: self.triton_input.clone(),
            output: self.triton_output.clone(),
            timeout: std::time::Duration::from_millis(self.triton_timeout_ms),
            retries: self.triton_retries,
            backoff: std::time::Duration::from_millis(200),
        }
    }

    /// Where streamed sessions live: the flag, or `<output-dir>/sessions`.
    pub fn sessions_root(&self) -> PathBuf {
        self.sessions_dir.clone().unwrap_or_else(|| self.output_dir.join("sessions"))
    }

    /// The free-space floor in bytes.
    pub fn min_free_bytes(&self) -> u64 {
        self.min_free_mb.saturating_mul(1 << 20)
    }

    /// The socket address to bind, from `host` and `port`.
    pub fn bind_addr(&self) -> Result<SocketAddr, String> {
        let host = self.host.trim_matches(|c| c == '[' || c == ']');
        let ip: std::net::IpAddr = if host == "localhost" {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            host.parse().map_err(|_| format!("invalid host address {:?}", self.host))?
        };
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// The cores this process may use.
pub fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// The legacy service's boolean rule: `0`, `false`, `no` and `off` (any case, trimmed) are false,
/// anything else is true.
pub fn legacy_bool(value: &str) -> Result<bool, String> {
    let v = value.trim().to_ascii_lowercase();
    Ok(!matches!(v.as_str(), "0" | "false" | "no" | "off"))
}

/// Turns the legacy log level (`INFO`, `WARNING`, …) into a tracing filter directive.
pub fn tracing_directive(level: &str) -> String {
    match level.trim().to_ascii_uppercase().as_str() {
        "CRITICAL" | "FATAL" | "ERROR" => "error".into(),
        "WARNING" | "WARN" => "warn".into(),
        "INFO" => "info".into(),
        "DEBUG" => "debug".into(),
        "TRACE" | "NOTSET" => "trace".into(),
        _ => level.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_booleans() {
        for f in ["0", "false", "FALSE", "no", "Off", " off "] {
            assert_eq!(legacy_bool(f), Ok(false), "{f:?}");
        }
        for t in ["1", "true", "yes", "on", "", "anything"] {
            assert_eq!(legacy_bool(t), Ok(true), "{t:?}");
        }
    }

    #[test]
    fn log_levels() {
        assert_eq!(tracing_directive("INFO"), "info");
        assert_eq!(tracing_directive("warning"), "warn");
        assert_eq!(tracing_directive("ai_referee=debug"), "ai_referee=debug");
    }
}
