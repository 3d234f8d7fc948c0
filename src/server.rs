//! The HTTP server: accepts connections, loads the model behind the pose scheduler, sets the
//! thread counts, and routes each request to its handler (`handlers/`). Handlers return
//! `Result<_, ApiError>`; statuses are decided in `error.rs`. Nothing imports this module back.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::{header, Method, Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tower::ServiceBuilder;
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::RequestBodyTimeoutLayer;
use tower_http::trace::TraceLayer;
use tower_http::validate_request::ValidateRequestHeaderLayer;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, error, info, warn};

use referee_pose::triton::TritonPose;
use referee_pose::{DeviceChoice, PoseBackend, PoseError, PoseRuntime, PoseScheduler, Precision, SchedulerSettings};
use crate::config::ServeConfig;
use crate::error::{ApiError, ResponseBody};
use crate::handlers::{analyze, health, sessions, stream, view, websocket, RequestBody};
use crate::layers::{CountResponsesLayer, SignInCookie, TokenCheck};
use crate::routes::{self, Route};
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
    Model(#[from] referee_pose::PoseError),
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

/// The request handling of one connection, as tower layers, outermost first: sensitive headers
/// kept out of logs, the request span and access log, the response counter, the body idle
/// timeout, the token check; then the router. (A macro: the stack's type cannot be named.)
macro_rules! service_for {
    ($state:expr, $peer:expr) => {{
        let state: Arc<AppState> = $state;
        let peer: SocketAddr = $peer;
        let body_idle = Duration::from_secs(state.config.body_idle_seconds);
        let token = TokenCheck::new(state.config.token.as_deref());
        TowerToHyperService::new(
            ServiceBuilder::new()
                .layer(SetSensitiveRequestHeadersLayer::new([header::AUTHORIZATION, header::COOKIE]))
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(crate::layers::request_span(peer))
                        .on_request(())
                        .on_response(crate::layers::access_log)
                        .on_body_chunk(())
                        .on_eos(())
                        .on_failure(()),
                )
                .layer(CountResponsesLayer)
                .layer(crate::linger::LingerLayer)
                .layer(RequestBodyTimeoutLayer::new(body_idle))
                .layer(ValidateRequestHeaderLayer::custom(token))
                .service_fn(move |req| handle(state.clone(), req)),
        )
    }};
}

/// Runs the service until Ctrl-C or SIGTERM (then shuts down gracefully, see `shut_down`); returns an error (and the caller exits non-zero)
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

    raise_open_file_limit();
    set_thread_counts(&config);
    crate::metrics::install();
    let pool = AnalysisPool::start(config.analysis_thread_count()).map_err(ServeError::Threads)?;
    info!(
        pose_threads = config.pose_thread_count(),
        analysis_threads = pool.threads(),
        max_batch = config.max_batch,
        batch_wait_ms = config.batch_wait_ms,
        analysis = config.analysis,
        "threads"
    );
    // Staging left by a crash mid-upload is no one's.
    let _ = std::fs::remove_dir_all(config.output_dir.join(crate::handlers::analyze::STAGING));
    let sessions = Sessions::new(config.sessions_root(), config.max_sessions as usize, config.max_phrase_bytes, Duration::from_secs(config.session_idle_seconds), pool)
        .with_min_free(config.min_free_bytes());
    info!(sessions_dir = %sessions.root().display(), min_free_mb = config.min_free_mb, retention_days = config.retention_days, "storage");
    let state = Arc::new(AppState { config, pose: OnceLock::new(), sessions, backend_reachable: std::sync::atomic::AtomicBool::new(false) });
    // Everything the server starts is owned here: tasks are tracked and told to stop by one
    // token, threads are joined at the end (see `shut_down` and `join_threads`).
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    spawn_housekeeping(state.clone(), &tasks, &stop);
    let (model_failed_tx, model_failed_rx) = oneshot::channel();
    let loader = spawn_model_loader(state.clone(), device, model_failed_tx, tasks.clone(), stop.clone());

    let connections = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections as usize));
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    tokio::pin!(model_failed_rx);
    let mut model_pending = true;
    // Accepts failed in a row (out of file descriptors, as a rule): backed off, logged once.
    let mut failed_accepts: u32 = 0;
    loop {
        tokio::select! {
            accepted = accept(&listener, &connections) => match accepted {
                Ok((stream, peer, permit)) => {
                    if failed_accepts > 0 {
                        info!(failed_accepts, "accepting connections again");
                        failed_accepts = 0;
                    }
                    keep_alive(&stream);
                    let header_timeout = Duration::from_secs(state.config.header_timeout_seconds);
                    // half_close: a client that shuts its side once the body is sent (ffmpeg does) still
                    // gets its phrase analysed rather than cancelled. The timer makes hyper enforce the
                    // header read timeout (without one it waits for headers forever).
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .half_close(true)
                        .serve_connection(TokioIo::new(stream), service_for!(state.clone(), peer))
                        // `GET /stream` may become the piste GUI's WebSocket.
                        .with_upgrades();
                    let stopping = stop.clone();
                    tasks.spawn(async move {
                        let open = metrics::gauge!(crate::metrics::OPEN_CONNECTIONS);
                        open.increment(1.0);
                        tokio::pin!(connection);
                        // At shutdown the request in progress is finished, then the connection closes.
                        let served = tokio::select! {
                            served = connection.as_mut() => served,
                            () = stopping.cancelled() => {
                                connection.as_mut().graceful_shutdown();
                                connection.await
                            }
                        };
                        if let Err(err) = served {
                            debug!(%peer, %err, "connection ended with an error");
                        }
                        open.decrement(1.0);
                        drop(permit);
                    });
                }
                Err(err) => {
                    if failed_accepts == 0 {
                        warn!(%err, "accept failed; trying again, backing off, until it works (one line per burst)");
                    }
                    failed_accepts = failed_accepts.saturating_add(1);
                    tokio::time::sleep(accept_backoff(failed_accepts)).await;
                }
            },
            failed = &mut model_failed_rx, if model_pending => {
                // The loader drops the sender once the model is in: only an error ends serving.
                model_pending = false;
                if let Ok(err) = failed {
                    stop.cancel();
                    join_threads(&state, loader).await;
                    return Err(err);
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    shut_down(&state, &stop, &tasks).await;
    join_threads(&state, loader).await;
    Ok(())
}

/// Joins every thread the server started, once its tasks are done: the model loader (it gives
/// up a Triton that never answered), the analysis pool (each thread after its turn) and the
/// pose scheduler (after the frames queued). Logged with what was joined.
async fn join_threads(state: &Arc<AppState>, loader: tokio::task::JoinHandle<()>) {
    let _ = loader.await;
    let state = state.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let analysis_threads = state.sessions.pool().stop();
        let scheduler = state.pose.get().is_some_and(|pose| pose.stop());
        (analysis_threads, scheduler)
    })
    .await;
    match joined {
        Ok((analysis_threads, scheduler)) => info!(analysis_threads, pose_scheduler = scheduler, "stopped: every thread joined"),
        Err(e) => warn!(%e, "stopping the threads failed"),
    }
}

/// How long, at most, connections get after the last phrase finished to send its answer.
const ANSWER_GRACE: Duration = Duration::from_secs(5);

/// After SIGTERM or Ctrl-C, with the listener closed: idle keep-alive connections are closed,
/// requests in progress go on, and running uploads and analyses get `--shutdown-grace-seconds`
/// to finish. What still runs then is left as it is on disk: an upload cut there is resumed by
/// its client, an analysis whose frames and log are all in is started again at the next start.
async fn shut_down(state: &AppState, stop: &CancellationToken, tasks: &TaskTracker) {
    let grace = Duration::from_secs(state.config.shutdown_grace_seconds);
    let busy = state.sessions.running();
    info!(busy_phrases = busy, grace_seconds = grace.as_secs(), "shutting down: no new connections; running phrases may finish");
    stop.cancel();
    let deadline = tokio::time::Instant::now() + grace;
    // Event streams and idle keep-alive connections never end by themselves: only phrases are
    // waited for (woken by their progress); the connections get what is left of the grace.
    let _ = tokio::time::timeout_at(deadline, state.sessions.until_none_running()).await;
    let left = state.sessions.running();
    // Their answers are on the way out: the connections get a little longer to write them
    // (an event stream on an undecided phrase would never end by itself). The housekeeping
    // tasks ended at the token.
    let answers_by = deadline.min(tokio::time::Instant::now() + ANSWER_GRACE);
    tasks.close();
    if tokio::time::timeout_at(answers_by, tasks.wait()).await.is_err() {
        info!(open_tasks = tasks.len(), "connections still open at the end of the grace are closed");
    }
    if left > 0 {
        warn!(unfinished = left, "shutdown grace over: unfinished phrases are kept on disk as interrupted, to resume after the restart");
    } else {
        info!("shut down cleanly: every running phrase finished");
    }
}

/// How often retention is applied when it is on.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// The timers: sessions nobody uses leave memory (every idle/2, between 0.5 and 30 s),
/// histograms are drained, and with `--retention-days`, old phrases leave the disk (hourly).
fn spawn_housekeeping(state: Arc<AppState>, tasks: &TaskTracker, stop: &CancellationToken) {
    let sweeper = state.clone();
    let stopping = stop.clone();
    tasks.spawn(async move {
        let idle = Duration::from_secs(sweeper.config.session_idle_seconds);
        let mut every = tokio::time::interval((idle / 2).clamp(Duration::from_millis(500), SWEEP_EVERY));
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stopping.cancelled() => return,
            }
            sweeper.sessions.sweep();
            crate::metrics::upkeep();
        }
    });
    if state.config.retention_days == 0 {
        return;
    }
    let stopping = stop.clone();
    tasks.spawn(async move {
        let age = Duration::from_secs(state.config.retention_days.saturating_mul(86_400));
        let mut every = tokio::time::interval(RETENTION_EVERY);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = stopping.cancelled() => return,
            }
            let state = state.clone();
            let removed = tokio::task::spawn_blocking(move || {
                let sessions = crate::disk::remove_older_than(state.sessions.root(), age, |id| state.sessions.holds(id));
                let sessions_dir_name = state.sessions.root().file_name().map(|n| n.to_owned());
                let results = crate::disk::remove_older_than(&state.config.output_dir, age, |name| {
                    // The sessions' own directory (when it sits in the output directory) is not an /analyze result.
                    Some(std::ffi::OsStr::new(name)) == sessions_dir_name.as_deref() && state.sessions.root().parent() == Some(state.config.output_dir.as_path())
                });
                sessions + results
            })
            .await
            .unwrap_or(0);
            if removed > 0 {
                info!(removed, "retention: old phrases removed");
            }
        }
    });
}

/// Loads and warms the model on a blocking thread (or, with `--pose-backend triton`, connects
/// to Triton, trying again until it answers) and starts the pose scheduler over it; reports
/// failure through `failed`.
fn spawn_model_loader(state: Arc<AppState>, device: DeviceChoice, failed: oneshot::Sender<ServeError>, tasks: TaskTracker, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let backend: Result<Arc<dyn PoseBackend>, PoseError> = if state.config.pose_backend == "triton" {
            match connect_triton(&state, &runtime, &tasks, &stop) {
                Some(backend) => Ok(backend),
                None => return,
            }
        } else {
            load_local(&state, device)
        };
        if stop.is_cancelled() {
            return;
        }
        let backend = match backend {
            Ok(backend) => backend,
            Err(err) => {
                error!(%err, "model not loaded");
                let _ = failed.send(err.into());
                return;
            }
        };
        let settings = SchedulerSettings {
            max_batch: state.config.max_batch as usize,
            batch_wait: Duration::from_millis(state.config.batch_wait_ms),
            ..SchedulerSettings::default()
        };
        match PoseScheduler::start(backend, settings) {
            Ok(scheduler) => {
                let scheduler = Arc::new(scheduler);
                // Set before saying so: whoever reads "model ready" must find /health ok.
                let _ = state.pose.set(scheduler.clone());
                info!(backend = %scheduler.describe(), "model ready");
                resume_undecided(&state, scheduler);
            }
            Err(err) => {
                error!(%err, "pose scheduler not started");
                let _ = failed.send(ServeError::Threads(err));
            }
        }
    })
}

/// The model in this process, on the runtime and precision asked for, loaded and warmed up.
fn load_local(state: &AppState, device: DeviceChoice) -> Result<Arc<dyn PoseBackend>, PoseError> {
    let runtime: PoseRuntime = state.config.pose_runtime.parse()?;
    let precision: Precision = state.config.pose_precision.parse()?;
    let local = referee_pose::load_local(&state.config.model, device, runtime, precision, WARM_UP_ROUNDS)?;
    if let Some(why) = &local.fallback {
        warn!(%why, "pose on libtorch, not OpenVINO");
    }
    let path = local.backend.pose_path();
    info!(runtime = path.runtime, precision = %path.precision, device = %path.device, threads = ?path.threads,
          warm_forward_ms = format!("{:.1}", local.warm_forward_ms), "local model loaded");
    Ok(local.backend)
}

/// How often Triton's readiness is checked (and, until it first answers, connection retried).
const TRITON_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Triton, once it answers: until then `/health` says `model_not_loaded` (Triton starting after
/// the service is normal in a deployment). Its readiness is then checked every few seconds by a
/// tracked task. `None` when the server stops first.
fn connect_triton(state: &Arc<AppState>, runtime: &tokio::runtime::Handle, tasks: &TaskTracker, stop: &CancellationToken) -> Option<Arc<dyn PoseBackend>> {
    let settings = state.config.triton();
    let backend = loop {
        match TritonPose::connect(settings.clone()) {
            Ok(backend) => break Arc::new(backend),
            Err(err) => {
                warn!(%err, url = %settings.url, "Triton not ready; trying again");
                // The pause ends early when the server stops.
                if runtime.block_on(tokio::time::timeout(TRITON_CHECK_EVERY, stop.cancelled())).is_ok() {
                    return None;
                }
            }
        }
    };
    state.backend_reachable.store(true, std::sync::atomic::Ordering::SeqCst);
    let (watched, watcher, stopping) = (backend.clone(), state.clone(), stop.clone());
    tasks.spawn_on(
        async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(TRITON_CHECK_EVERY) => {}
                    () = stopping.cancelled() => return,
                }
                let probe = watched.clone();
                let Ok(up) = tokio::task::spawn_blocking(move || probe.reachable()).await else { return };
                if watcher.backend_reachable.swap(up, std::sync::atomic::Ordering::SeqCst) != up {
                    if up { info!("Triton is reachable again") } else { warn!("Triton is not reachable") }
                }
            }
        },
        runtime,
    );
    Some(backend)
}

/// Starts again the phrases a stop interrupted while they were being decided (all frames and the
/// log on disk, no answer).
fn resume_undecided(state: &AppState, pose: Arc<PoseScheduler>) {
    if !state.config.analysis {
        return;
    }
    for id in state.sessions.undecided_on_disk() {
        if let Some(session) = state.sessions.get(&id) {
            info!(session = %id, "deciding a phrase the last stop interrupted");
            session.start_analysis(crate::session::Analysis { pose: pose.clone(), options: stream::stored_pipeline_options(&state.config, &session) });
        }
    }
}

/// The pause after `failed` accepts in a row: 1 ms, doubling, at most a second (an accept loop
/// that retried at once wrote 45,763 warnings in seconds when file descriptors ran out).
fn accept_backoff(failed: u32) -> Duration {
    Duration::from_millis(1u64 << failed.saturating_sub(1).min(10)).min(Duration::from_secs(1))
}

/// Raises the soft limit on open files to the hard one, as nginx and cargo do: a service
/// manager's default soft limit (1024) is far below what many pistes' sessions and connections
/// need, and the hard limit is the operator's real bound. Logged either way.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        warn!(err = %std::io::Error::last_os_error(), "cannot read the open-files limit");
        return;
    }
    let soft_before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        } else {
            warn!(err = %std::io::Error::last_os_error(), soft = soft_before, hard = limit.rlim_max, "cannot raise the open-files limit to its hard limit");
        }
    }
    info!(soft_before, soft = limit.rlim_cur, hard = limit.rlim_max, "open-files limit");
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

/// Routes one request through the route table (`crate::routes`): a path it lacks is 404, a
/// method its row lacks 405; every error becomes `{"detail": ...}` with its status.
async fn handle(state: Arc<AppState>, req: Request<RequestBody>) -> Result<Response<ResponseBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let sign_in = req.extensions().get::<SignInCookie>().cloned();
    let result = match routes::find(&path) {
        None => Err(ApiError::NotFound(format!("no route for {path}"))),
        Some(matched) if !matched.allows(req.method()) => Err(ApiError::MethodNotAllowed),
        Some(matched) => {
            let params: Vec<String> = matched.params.iter().map(|p| (*p).to_owned()).collect();
            dispatch(&state, matched.spec.route, &params, req).await
        }
    };
    let mut response = result.unwrap_or_else(ApiError::into_response);
    if let Some(SignInCookie(cookie)) = sign_in {
        response.headers_mut().append(hyper::header::SET_COOKIE, cookie);
    }
    Ok(response)
}

/// Runs a route's handler with the path's parameters (as many as its row has).
async fn dispatch(state: &Arc<AppState>, route: Route, params: &[String], req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let param = |i: usize| params.get(i).map(String::as_str).unwrap_or_default();
    match route {
        Route::Index => Ok(view::index()),
        Route::Asset => view::asset(param(0)),
        Route::Sessions => view::sessions(state).await,
        Route::SessionView => view::session_page(state, param(0)).await,
        Route::Health => Ok(health::health(state)),
        Route::Stats => Ok(health::stats(state)),
        Route::Metrics => Ok(health::metrics(state)),
        Route::Analyze => {
            // Counted with the streamed phrases against --max-sessions while it runs (the
            // free-space check reads the disk: on the blocking pool).
            let admitting = state.clone();
            let _slot = crate::handlers::on_disk(move || admitting.sessions.admit_analysis()).await??;
            analyze::analyze(&state.config, state.ready_pose()?, req).await
        }
        Route::Stream if req.method() == Method::POST => stream::post_stream(state.clone(), req).await,
        // `GET /stream` is only the piste GUI's WebSocket.
        Route::Stream if websocket::is_upgrade(&req) => websocket::upgrade(state.clone(), req),
        Route::Stream => Err(ApiError::MethodNotAllowed),
        Route::Session => sessions::get_session(state, param(0)).await,
        Route::SessionSignal => sessions::put_signal(state, param(0), req).await,
        Route::SessionCall => sessions::put_call(state, param(0), req).await,
        Route::SessionEvents => sessions::events(state, param(0)).await,
        Route::SessionArtifact => sessions::artifact(state, param(0), param(1)).await,
    }
}
