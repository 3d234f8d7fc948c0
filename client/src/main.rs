//! `referee-client`: the piste laptop's side of the AI referee. `stream` sends a phrase while it
//! is recorded (a camera, a video file or a folder of frames) and prints the verdict moments
//! after the last hit; `analyze` and `health` are the legacy uploader's commands.

mod error;
mod feed;
mod legacy;
mod live;
mod output;
mod progress;
mod signal;
mod source;
mod spool;
mod upload;
mod websocket;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use crate::error::{require_exists, ClientError};
use crate::feed::LogFeed;
use crate::signal::SignalSpec;
use crate::source::{CaptureOptions, SourceSpec};

/// Talks to an AI referee server.
#[derive(Debug, Parser)]
#[command(name = "referee-client", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The server's bearer token, when it wants one (its --token / REFEREE_TOKEN).
    #[arg(long, global = true, env = "REFEREE_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Ask the server whether it is up and its model loaded; prints the JSON.
    Health {
        /// The server's base URL, e.g. http://gpu-box:8080
        server: String,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Upload a recorded phrase whole to `POST /analyze` (the legacy uploader); prints the JSON.
    Analyze {
        /// The server's base URL.
        server: String,
        /// The phrase's video (.avi, .mp4, anything OpenCV reads).
        video: PathBuf,
        /// The scoring-box log.
        signal: PathBuf,
        /// Ask for the normalised keypoint arrays too.
        #[arg(long)]
        include_keypoints: bool,
        /// Do not render the overlay video.
        #[arg(long)]
        no_overlay: bool,
        /// Seconds to wait for the answer.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
    },
    /// Stream a phrase to `POST /stream` (or, with --websocket, over the piste GUI's WebSocket)
    /// while it is captured; prints the verdict.
    Stream(StreamArgs),
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["video", "camera", "frames"]))]
#[command(group = clap::ArgGroup::new("log").required(true).args(["signal", "signal_after", "signal_live"]))]
struct StreamArgs {
    /// The server's base URL.
    server: String,
    /// The scoring-box log: a file, or `-` to read it from standard input when the phrase ends.
    #[arg(long)]
    signal: Option<String>,
    /// A file the recorder writes when the phrase ends: frames stream meanwhile, the log is sent
    /// once the file is there and has stopped changing.
    #[arg(long)]
    signal_after: Option<PathBuf>,
    /// A log file to follow as the recorder writes it (it may appear later), as `tail -f` does:
    /// each new complete line is sent as it is written, among the frames, until the phrase's end
    /// (a `Phrase ended` line, or `Scores ->` after `Phrase recording ended`).
    #[arg(long, value_name = "FILE")]
    signal_live: Option<PathBuf>,
    /// Stream a video file.
    #[arg(long)]
    video: Option<PathBuf>,
    /// Stream a camera: its index (0, 1, …), or a device path or stream URL. Capture ends when
    /// a log sent later (`--signal -`, `--signal-after`) arrives or a followed one
    /// (`--signal-live`) reaches the phrase's end, at `--duration`, or when the camera stops.
    #[arg(long)]
    camera: Option<String>,
    /// Stream a folder of images in name order (JPEGs as they are).
    #[arg(long)]
    frames: Option<PathBuf>,
    /// Frame rate: of a folder (default 15) or a file (default its own); asked of a camera.
    #[arg(long, value_parser = positive)]
    fps: Option<f64>,
    /// Send a file or folder at its frame rate, as a camera would.
    #[arg(long)]
    realtime: bool,
    /// Stop after this many seconds of phrase.
    #[arg(long, value_parser = positive)]
    duration: Option<f64>,
    /// JPEG quality of the frames encoded here (video and camera frames).
    #[arg(long, default_value_t = 85, value_parser = clap::value_parser!(i32).range(1..=100))]
    jpeg_quality: i32,
    /// The session id (`[A-Za-z0-9_-]{1,64}`); one is made up if not given.
    #[arg(long, value_parser = session_id)]
    session: Option<String>,
    /// How many times a dropped upload is resumed before giving up (not with --websocket).
    #[arg(long, default_value_t = 5)]
    retries: u32,
    /// Seconds to wait for the verdict after the last byte.
    #[arg(long, default_value_t = 300.0, value_parser = positive)]
    timeout: f64,
    /// Speak the piste GUI's WebSocket protocol to `GET /stream` (ws:// or wss://, from the
    /// server URL) instead of the chunked `POST /stream`; a dropped connection is not resumed.
    #[arg(long)]
    websocket: bool,
    /// Print only the winner (`left` or `right`), no progress.
    #[arg(long, short)]
    quiet: bool,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("{text:?} is not a positive number")),
    }
}

fn session_id(text: &str) -> Result<String, String> {
    if referee_wire::valid_session_id(text) {
        Ok(text.to_owned())
    } else {
        Err("use 1 to 64 of A-Z a-z 0-9 _ -".into())
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // OpenCV's own warnings (GStreamer, V4L2 probing) would bury ours; every failure is reported
    // by this program in words. OPENCV_LOG_LEVEL, when set, still decides.
    if std::env::var_os("OPENCV_LOG_LEVEL").is_none() {
        let _ = opencv::core::set_log_level(opencv::core::LogLevel::LOG_LEVEL_SILENT);
    }
    let cli = Cli::parse();
    let token = cli.token.as_deref();
    let outcome = match cli.command {
        Command::Health { server, timeout } => legacy::health(&server, timeout, token).await.map(|v| println!("{}", output::pretty(v))),
        Command::Analyze { server, video, signal, include_keypoints, no_overlay, timeout } => {
            legacy::analyze(&server, &video, &signal, include_keypoints, !no_overlay, timeout, token)
                .await
                .map(|v| println!("{}", output::pretty(v)))
        }
        Command::Stream(args) => stream(args, token).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("referee-client: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// `stream`: capture into the spool, stream from it, print the verdict.
async fn stream(args: StreamArgs, token: Option<&str>) -> Result<(), ClientError> {
    let spec = match (&args.video, &args.camera, &args.frames) {
        (Some(video), _, _) => {
            require_exists(video, "video file")?;
            SourceSpec::Video(video.clone())
        }
        (_, Some(camera), _) => SourceSpec::Camera(camera.clone()),
        (_, _, Some(frames)) => {
            require_exists(frames, "frames folder")?;
            SourceSpec::Frames(frames.clone())
        }
        _ => unreachable!("clap requires one source"),
    };
    let file_name = |path: &std::path::Path| path.file_name().map_or_else(|| referee_wire::SIGNAL_FILENAME.to_owned(), |n| n.to_string_lossy().into_owned());
    let (signal_spec, log_name) = match (&args.signal, &args.signal_after, &args.signal_live) {
        (Some(arg), _, _) => {
            let spec = SignalSpec::from_arg(arg);
            if let SignalSpec::File(path) = &spec {
                require_exists(path, "signal file")?;
            }
            let name = match &spec {
                SignalSpec::File(path) => file_name(path),
                _ => referee_wire::SIGNAL_FILENAME.to_owned(),
            };
            (Some(spec), name)
        }
        (_, Some(path), _) => (Some(SignalSpec::After(path.clone())), file_name(path)),
        (_, _, Some(path)) => (None, file_name(path)),
        _ => unreachable!("clap requires a log"),
    };
    // A camera films until the phrase is over, which the log's arrival says (a log file given
    // at the start says nothing of the kind: then the camera runs to --duration or its end).
    let stop_on_log = matches!(spec, SourceSpec::Camera(_)) && !matches!(signal_spec, Some(SignalSpec::File(_)));
    let session = args.session.clone().unwrap_or_else(|| referee_wire::new_session_id_with_prefix("piste-"));
    let spool = Arc::new(spool::Spool::create(&session).map_err(|e| ClientError::Failed(format!("cannot make the frame spool: {e}")))?);
    let options = CaptureOptions { fps: args.fps, realtime: args.realtime, duration: args.duration, jpeg_quality: args.jpeg_quality };
    let capture = source::start(spec, options, spool.clone())?;
    let log = match (signal_spec, &args.signal_live) {
        (Some(spec), _) => LogFeed::Whole { log: signal::spawn(spec), filename: log_name },
        (None, Some(path)) => LogFeed::Live { log: live::follow(path.clone()), filename: log_name },
        (None, None) => unreachable!("clap requires a log"),
    };
    if stop_on_log {
        let (mut log, stop) = (log.clone(), capture.stop.clone());
        tokio::spawn(async move {
            log.settled().await;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        });
    }
    let progress = Arc::new(progress::Progress::new(capture.info.frames, args.quiet));
    if !args.quiet {
        let how = if args.websocket { " (WebSocket)" } else { "" };
        progress.note(&format!("session {session} → {}{how}", args.server));
    }
    let upload_options = upload::UploadOptions {
        server: args.server.clone(),
        session: session.clone(),
        fps: capture.info.fps,
        retries: args.retries,
        verdict_timeout: Duration::from_secs_f64(args.timeout),
    };
    let verdict = if args.websocket {
        websocket::stream_phrase(&upload_options, token, args.jpeg_quality, spool, log, progress.clone()).await
    } else {
        let client = legacy::http_client(None, token)?;
        upload::stream_phrase(&client, &upload_options, spool, log, progress.clone()).await
    };
    capture.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let captured = tokio::task::spawn_blocking(move || capture.thread.join()).await;
    let verdict = verdict.inspect_err(|_| progress.finish("upload failed"))?;
    progress.finish("streamed");
    if let Ok(Ok(Err(e))) = captured {
        progress.note(&format!("capture ended early: {e}"));
    }
    print_verdict(verdict, args.quiet);
    Ok(())
}

fn print_verdict(verdict: Value, quiet: bool) {
    if quiet {
        println!("{}", verdict["decision"]["winner"].as_str().unwrap_or("unknown"));
    } else {
        if let Some(after) = verdict["stream"]["verdict_seconds_after_last_byte"].as_f64() {
            eprintln!("referee-client: verdict {after:.2} s after the last byte");
        }
        println!("{}", output::pretty(verdict));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_log_flag_and_the_websocket_switch() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["referee-client", "stream", "http://h:8080", "--frames", "f"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Stream(args) => args,
                other => panic!("{other:?}"),
            })
        };
        let args = parse(&["--signal-live", "phrase.txt", "--websocket"]).unwrap();
        assert_eq!(args.signal_live.as_deref(), Some(std::path::Path::new("phrase.txt")));
        assert!(args.websocket);
        assert!(!parse(&["--signal", "p.txt"]).unwrap().websocket);
        assert!(parse(&["--signal-live", "a.txt", "--signal", "b.txt"]).is_err());
        assert!(parse(&["--signal-live", "a.txt", "--signal-after", "b.txt"]).is_err());
        assert!(parse(&[]).is_err(), "a log is required");
    }

    #[test]
    fn the_session_flag_takes_the_wire_rule_and_the_ids_made_here() {
        assert_eq!(session_id("phrase-01_A").as_deref(), Ok("phrase-01_A"));
        assert!(session_id("").is_err());
        assert!(session_id(&"a".repeat(65)).is_err());
        assert!(session_id("../etc").is_err());
        let made = referee_wire::new_session_id_with_prefix("piste-");
        assert!(made.starts_with("piste-") && session_id(&made).is_ok(), "{made}");
    }
}
