//! Lets a client that is still sending read the answer that refused it.
//!
//! A request refused before its body is read (a missing token, a full server, a body over a
//! limit) would otherwise be answered and the connection closed while the client is still
//! writing: the kernel then resets the connection, and the client sees "connection reset" or
//! "broken pipe" instead of the 401, 503 or 413 and its detail. As nginx's lingering close does,
//! the rest of such a body is read and thrown away first, within bounds (bytes and time), so a
//! live camera stream that never ends is answered all the same.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use hyper::header::{HeaderValue, EXPECT};
use hyper::{Request, Response, StatusCode};
use tower::{Layer, Service};

/// At most this much of a refused body is read before answering.
const LINGER_BYTES: u64 = 256 * 1024 * 1024;
/// And for at most this long.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Wraps a service so that its error answers are given once the client has finished sending (see
/// the module's documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct LingerLayer;

impl<S> Layer<S> for LingerLayer {
    type Service = Linger<S>;

    fn layer(&self, inner: S) -> Linger<S> {
        Linger { inner }
    }
}

/// The service `LingerLayer` makes.
#[derive(Debug, Clone)]
pub struct Linger<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for Linger<S>
where
    S: Service<Request<SharedBody<B>>, Response = Response<R>>,
    S::Future: Send + 'static,
    B: Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Send,
    R: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // A client that asked to be told before it sends the body sends none once refused.
        let waits_to_send = request.headers().get(EXPECT).is_some_and(|v| v == HeaderValue::from_static("100-continue"));
        let (parts, body) = request.into_parts();
        let body = SharedBody(Arc::new(Mutex::new(body)));
        let answered = self.inner.call(Request::from_parts(parts, body.clone()));
        Box::pin(async move {
            let response = answered.await?;
            let status = response.status();
            // A body that timed out will not be sent now; one that was read whole has no rest.
            if (status.is_client_error() || status.is_server_error()) && status != StatusCode::REQUEST_TIMEOUT && !waits_to_send && !body.is_end_stream() {
                let _ = tokio::time::timeout(LINGER_TIME, discard(body, LINGER_BYTES)).await;
            }
            Ok(response)
        })
    }
}

/// Reads and drops a body's frames until it ends, fails, or `limit` bytes have gone.
async fn discard<B: Body + Unpin>(mut body: SharedBody<B>, limit: u64) {
    let mut read = 0u64;
    while read < limit {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| bytes::Buf::remaining(d) as u64),
            Some(Err(_)) | None => return,
        }
    }
}

/// A request body the service reads and, once it has answered, this layer can read on.
#[derive(Debug)]
pub struct SharedBody<B>(Arc<Mutex<B>>);

impl<B> Clone for SharedBody<B> {
    fn clone(&self) -> Self {
        SharedBody(self.0.clone())
    }
}

impl<B> SharedBody<B> {
    fn inner(&self) -> std::sync::MutexGuard<'_, B> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<B: Body + Unpin> Body for SharedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut *self.inner()).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner().is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner().size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Full, StreamBody};

    #[tokio::test]
    async fn a_refused_body_is_read_to_its_end_before_the_answer() {
        let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..4).map(|_| Ok(Frame::data(Bytes::from_static(b"frame")))).collect();
        let body = StreamBody::new(futures_util::stream::iter(chunks));
        let seen = Arc::new(Mutex::new(None));
        let kept = seen.clone();
        let mut service = LingerLayer.layer(tower::service_fn(move |req: Request<SharedBody<StreamBody<_>>>| {
            *kept.lock().unwrap() = Some(req.into_body());
            async { Ok::<_, std::convert::Infallible>(Response::builder().status(401).body(Full::new(Bytes::new())).unwrap()) }
        }));
        let response = service.call(Request::new(body)).await.unwrap();
        assert_eq!(response.status(), 401);
        let rest = seen.lock().unwrap().take().unwrap();
        assert!(rest.is_end_stream() || rest.collect().await.unwrap().to_bytes().is_empty(), "the body was read to its end");
    }

    #[tokio::test]
    async fn an_accepted_body_is_left_alone() {
        let body = Full::new(Bytes::from_static(b"phrase"));
        let seen = Arc::new(Mutex::new(None));
        let kept = seen.clone();
        let mut service = LingerLayer.layer(tower::service_fn(move |req: Request<SharedBody<Full<Bytes>>>| {
            *kept.lock().unwrap() = Some(req.into_body());
            async { Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new()))) }
        }));
        assert_eq!(service.call(Request::new(body)).await.unwrap().status(), 200);
        let rest = seen.lock().unwrap().take().unwrap();
        assert_eq!(rest.collect().await.unwrap().to_bytes(), Bytes::from_static(b"phrase"));
    }
}
