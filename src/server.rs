//! The HTTP server: accepts connections, loads the model behind the pose scheduler, sets the
//! thread counts, and routes each request to its handler (`handlers/`). Handlers return
//! `Result<_, ApiError>`; statuses are decided in `error.rs`. Nothing imports this module back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::{Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};

use crate::analysis::pose::{DeviceChoice, PoseModel, PoseScheduler, SchedulerSettings};
use crate::config::ServeConfig;
use crate::error::{ApiError, ResponseBody};
use crate::handlers::{analyze, health, sessions, stream, view, RequestBody};
use crate::session::worker::AnalysisPool;
use crate::session::Sessions;
use crate::state::AppState;

/// Why `serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration cannot be used.
    #[error("configuration: {0}")]
    Config(String),
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The pose model could not be loaded or warmed up.
    #[error("pose model: {0}")]
    Model(#[from] crate::analysis::pose::PoseError),
    /// A thread could not be started.
    #[error("cannot start threads: {0}")]
    Threads(std::io::Error),
}

/// How often, at most, sessions nobody uses are looked for and retired (more often when the
/// idle time allowed is shorter).
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The one place thread counts are set: libtorch's intra-op threads for pose (the scheduler's
/// forward passes), one inter-op thread, and OpenCV's (by default single-threaded inside each
/// analysis thread: the pool gives the parallelism). Measured in the README.
fn set_thread_counts(config: &ServeConfig) {
    tch::set_num_threads(config.pose_thread_count() as i32);
    tch::set_num_interop_threads(1);
    let opencv = if config.opencv_threads == 0 { -1 } else { config.opencv_threads as i32 };
    if let Err(e) = opencv::core::set_num_threads(opencv) {
        warn!(%e, "cannot set OpenCV's thread count");
    }
}

/// Number of blank forward passes run before the model is reported ready.
const WARM_UP_ROUNDS: usize = 3;

/// Runs the service until Ctrl-C or SIGTERM; returns an error (and the caller exits non-zero)
/// when the socket cannot be opened or the model cannot be loaded.
pub async fn serve(config: ServeConfig) -> Result<(), ServeError> {
    let addr = config.bind_addr().map_err(ServeError::Config)?;
    let device: DeviceChoice = config.device.parse()?;
    let listener = TcpListener::bind(addr).await.map_err(|source| ServeError::Bind { addr, source })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind { addr, source })?;
    info!(addr = %local, model = %config.model.display(), "listening");
    info!(
        output_dir = %config.output_dir.display(),
        device = %config.device,
        fisheye_enabled = config.fisheye_enabled,
        fisheye_strength = config.fisheye_strength,
        fisheye_balance = config.fisheye_balance,
        fisheye_keep_audio = config.fisheye_keep_audio,
        "configuration"
    );

    set_thread_counts(&config);
    let pool = AnalysisPool::start(config.analysis_thread_count()).map_err(ServeError::Threads)?;
    info!(
        pose_threads = config.pose_thread_count(),
        analysis_threads = pool.threads(),
        max_batch = config.max_batch,
        batch_wait_ms = config.batch_wait_ms,
        analysis = config.analysis,
        "threads"
    );
    let sessions = Sessions::new(config.output_dir.clone(), config.max_sessions as usize, config.max_phrase_bytes, Duration::from_secs(config.session_idle_seconds), pool);
    let state = Arc::new(AppState { config, pose: OnceLock::new(), sessions });
    let sweeper = state.clone();
    tokio::spawn(async move {
        let idle = Duration::from_secs(sweeper.config.session_idle_seconds);
        let mut every = tokio::time::interval((idle / 2).clamp(Duration::from_millis(500), SWEEP_EVERY));
        loop {
            every.tick().await;
            sweeper.sessions.sweep();
        }
    });
    let (model_failed_tx, model_failed_rx) = oneshot::channel();
    spawn_model_loader(state.clone(), device, model_failed_tx);

    // The request handling as tower layers: tower-http cuts a body that goes quiet; routing,
    // the token and the handlers are ours.
    let body_idle = Duration::from_secs(state.config.body_idle_seconds);
    let router_state = state.clone();
    let service = TowerToHyperService::new(
        ServiceBuilder::new()
            .layer(RequestBodyTimeoutLayer::new(body_idle))
            .service_fn(move |req| handle(router_state.clone(), req)),
    );
    let connections = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections as usize));

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    tokio::pin!(model_failed_rx);
    let mut model_pending = true;
    loop {
        tokio::select! {
            accepted = accept(&listener, &connections) => match accepted {
                Ok((stream, peer, permit)) => {
                    keep_alive(&stream);
                    let service = service.clone();
                    let header_timeout = Duration::from_secs(state.config.header_timeout_seconds);
                    tokio::spawn(async move {
                        // half_close: a client that shuts its side once the body is sent (ffmpeg does) still
                        // gets its phrase analysed rather than cancelled. The timer makes hyper enforce the
                        // header read timeout (without one it waits for headers forever).
                        let served = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(header_timeout)
                            .half_close(true)
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                        if let Err(err) = served {
                            debug!(%peer, %err, "connection ended with an error");
                        }
                        drop(permit);
                    });
                }
                Err(err) => warn!(%err, "accept failed"),
            },
            failed = &mut model_failed_rx, if model_pending => {
                // The loader drops the sender once the model is in: only an error ends serving.
                model_pending = false;
                if let Ok(err) = failed {
                    return Err(err);
                }
            }
            () = &mut shutdown => {
                info!("shutting down");
                return Ok(());
            }
        }
    }
}

/// Loads and warms the model on a blocking thread and starts the pose scheduler over it;
/// reports failure through `failed`.
fn spawn_model_loader(state: Arc<AppState>, device: DeviceChoice, failed: oneshot::Sender<ServeError>) {
    tokio::task::spawn_blocking(move || {
        let path = state.config.model.clone();
        let loaded = PoseModel::load(&path, device).and_then(|model| {
            let ms = model.warm_up(WARM_UP_ROUNDS)?;
            Ok((model, ms))
        });
        match loaded {
            Ok((model, ms)) => {
                let (device, layout) = (model.device(), model.layout());
                let settings = SchedulerSettings {
                    max_batch: state.config.max_batch as usize,
                    batch_wait: Duration::from_millis(state.config.batch_wait_ms),
                    ..SchedulerSettings::default()
                };
                match PoseScheduler::start(Arc::new(model), settings) {
                    Ok(scheduler) => {
                        // Set before saying so: whoever reads "model ready" must find /health ok.
                        let _ = state.pose.set(Arc::new(scheduler));
                        info!(?device, ?layout, warm_forward_ms = format!("{ms:.1}"), "model ready");
                    }
                    Err(err) => {
                        error!(%err, "pose scheduler not started");
                        let _ = failed.send(ServeError::Threads(err));
                    }
                }
            }
            Err(err) => {
                error!(%err, "model not loaded");
                let _ = failed.send(err.into());
            }
        }
    });
}

/// Waits for a free connection slot, then for a connection.
async fn accept(listener: &TcpListener, slots: &Arc<tokio::sync::Semaphore>) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let permit = slots.clone().acquire_owned().await.map_err(std::io::Error::other)?;
    let (stream, peer) = listener.accept().await?;
    Ok((stream, peer, permit))
}

/// How long a connection may be silent before the kernel starts probing that its peer is there.
const KEEPALIVE_AFTER: Duration = Duration::from_secs(60);

/// TCP keepalive, so a camera laptop that vanished (Wi-Fi gone, lid shut) is found out even
/// when no timeout of ours is running.
fn keep_alive(stream: &tokio::net::TcpStream) {
    let keepalive = socket2::TcpKeepalive::new().with_time(KEEPALIVE_AFTER);
    if let Err(e) = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        debug!(%e, "cannot set TCP keepalive");
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

/// Routes one request; every error becomes `{"detail": ...}` with its status.
async fn handle(state: Arc<AppState>, req: Request<RequestBody>) -> Result<Response<ResponseBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let method = req.method().clone();
    let mut sign_in = None;
    if let Some(expected) = state.config.token.as_deref().filter(|_| !crate::auth::is_open(&segments)) {
        match crate::auth::check(req.headers(), req.uri(), expected) {
            Ok(cookie) => sign_in = cookie,
            Err(e) => return Ok(e.into_response()),
        }
    }
    let result = match (&method, segments.as_slice()) {
        (&Method::GET, [""]) => Ok(view::index()),
        (&Method::GET, ["assets", name]) => view::asset(name),
        (&Method::GET, ["sessions"]) => Ok(view::sessions(&state)),
        (&Method::GET, ["sessions", id, "view"]) => view::session_page(&state, id),
        (&Method::GET, ["health"]) => Ok(health::health(&state)),
        (&Method::GET, ["stats"]) => Ok(health::stats(&state)),
        (&Method::POST, ["analyze"]) => {
            async {
                // Counted with the streamed phrases against --max-sessions while it runs.
                let _slot = state.sessions.admit_analysis()?;
                analyze::analyze(&state.config, state.ready_pose()?, req).await
            }
            .await
        }
        (&Method::POST, ["stream"]) => stream::post_stream(state.clone(), req).await,
        (&Method::GET, ["sessions", id]) => sessions::get_session(&state, id),
        (&Method::PUT, ["sessions", id, "signal"]) => sessions::put_signal(&state, id, req).await,
        (&Method::GET, ["sessions", id, "events"]) => sessions::events(&state, id),
        (&Method::GET, ["sessions", id, "artifacts", name]) => sessions::artifact(&state, id, name).await,
        (
            _,
            [""] | ["assets", _] | ["health"] | ["stats"] | ["analyze"] | ["stream"] | ["sessions"] | ["sessions", _] | ["sessions", _, "signal" | "events" | "view"] | ["sessions", _, "artifacts", _],
        ) => {
            Err(ApiError::MethodNotAllowed)
        }
        _ => Err(ApiError::NotFound(format!("no route for {path}"))),
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    if let Some(cookie) = sign_in {
        response.headers_mut().append(hyper::header::SET_COOKIE, cookie);
    }
    Ok(response)
}
