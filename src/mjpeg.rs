//! A streamed phrase's request body, read as parts. The parser itself lives in `referee-wire`
//! (`referee_wire::mjpeg`, beside the writer of the same parts, built without libtorch or OpenCV
//! and fuzzed on its own); this is the server's side of it: the request's body and Content-Type
//! in, its boundary settled, the parts out, and a body cut by the idle timeout told apart from
//! one that ended badly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::TryStreamExt;
use http_body_util::BodyStream;
use referee_wire::mjpeg::{boundary_from_content_type, settle_boundary, sniff_boundary, Limits, MjpegError, MjpegStream};

use crate::handlers::RequestBody;

/// A request body opened as parts.
pub struct PhraseBody {
    /// The parts, one at a time.
    pub parts: MjpegStream,
    /// The boundary they are delimited by.
    pub boundary: String,
    stalled: Arc<AtomicBool>,
}

impl PhraseBody {
    /// Opens `body`, sent with `content_type` (empty when none came): the boundary comes from
    /// the Content-Type (settled against the body's first line, for cameras that mean `--x` by
    /// `--x`) or, without one (ffmpeg's `-method POST` sends none), from the body's first line.
    /// A refusal here (415, 400) comes before any session is made.
    pub async fn open(content_type: &str, body: RequestBody, limits: Limits) -> Result<PhraseBody, MjpegError> {
        let stalled = Arc::new(AtomicBool::new(false));
        let noticed = stalled.clone();
        // A body that goes quiet is cut by the body timeout layer; noted, so the answer says so.
        let body = Box::pin(
            BodyStream::new(body)
                .map_err(move |e| {
                    if e.is::<tower_http::timeout::TimeoutError>() {
                        noticed.store(true, Ordering::SeqCst);
                    }
                    e
                })
                .try_filter_map(|frame| async move { Ok(frame.into_data().ok()) }),
        );
        let (boundary, body) = if content_type.is_empty() {
            sniff_boundary(body).await?
        } else {
            boundary_from_content_type(content_type)?;
            settle_boundary(content_type, body).await?
        };
        let parts = MjpegStream::new(body, boundary.clone(), limits);
        Ok(PhraseBody { parts, boundary, stalled })
    }

    /// Whether the body was cut because no byte came for the idle timeout.
    pub fn went_quiet(&self) -> bool {
        self.stalled.load(Ordering::SeqCst)
    }
}
