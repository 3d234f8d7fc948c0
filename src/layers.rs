//! What wraps every request on its way to the router, as tower layers: the bearer-token check
//! (tower-http's request validation, our constant-time comparison), the per-request span that
//! carries the session id and the access-log line (tower-http's trace layer), and the response
//! counter for `/metrics` (ours: no layer counts by route).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::header::HeaderValue;
use hyper::{Request, Response};
use tower::{Layer, Service};
use tracing::Span;

use crate::error::ResponseBody;

/// The `Set-Cookie` value a request that signed in with `?token=` gets back (a request
/// extension, put in the response by the router).
#[derive(Debug, Clone)]
pub struct SignInCookie(pub HeaderValue);

/// The token check for tower-http's `ValidateRequestHeaderLayer::custom`: every route but the
/// open ones (the route table's `open`, `crate::routes`) wants the token when one is set.
#[derive(Debug, Clone)]
pub struct TokenCheck {
    expected: Option<std::sync::Arc<str>>,
}

impl TokenCheck {
    /// Wants `token` where one is given; lets everything through otherwise.
    pub fn new(token: Option<&str>) -> TokenCheck {
        TokenCheck { expected: token.map(std::sync::Arc::from) }
    }
}

impl<B> tower_http::validate_request::ValidateRequest<B> for TokenCheck {
    type ResponseBody = ResponseBody;

    fn validate(&mut self, request: &mut Request<B>) -> Result<(), Response<ResponseBody>> {
        let Some(expected) = self.expected.as_deref() else { return Ok(()) };
        if crate::routes::is_open(request.uri().path()) {
            return Ok(());
        }
        match crate::auth::check(request.headers(), request.uri(), expected) {
            Ok(Some(cookie)) => {
                request.extensions_mut().insert(SignInCookie(cookie));
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => Err(e.into_response()),
        }
    }
}


/// The session a request is about, when it names one: `?session=`, `X-Session-Id`, or the
/// `/sessions/{id}` path.
pub fn session_of<B>(request: &Request<B>) -> Option<String> {
    let from_query = crate::routes::query_param(request.uri(), "session");
    let from_header = request.headers().get(referee_wire::SESSION_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let from_path = request.uri().path().strip_prefix("/sessions/").and_then(|rest| rest.split('/').next()).filter(|s| !s.is_empty()).map(str::to_owned);
    from_query.or(from_header).or(from_path).filter(|id| referee_wire::valid_session_id(id))
}

/// The span every log line about a request is written in: method, path (never the query: it
/// may hold the token), the peer, and the session when the request names one.
pub fn request_span<B>(peer: std::net::SocketAddr) -> impl Fn(&Request<B>) -> Span + Clone {
    move |request: &Request<B>| match session_of(request) {
        Some(session) => tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), %peer, %session),
        None => tracing::info_span!("request", method = %request.method(), path = %request.uri().path(), %peer),
    }
}

/// The access-log line, one per request, in the request's span.
pub fn access_log<B>(response: &Response<B>, latency: Duration, _span: &Span) {
    tracing::info!(target: "access", status = response.status().as_u16(), ms = format!("{:.1}", latency.as_secs_f64() * 1e3), "served");
}

/// Counts every response by route and status (`referee_responses_total`).
#[derive(Debug, Clone, Copy, Default)]
pub struct CountResponsesLayer;

impl<S> Layer<S> for CountResponsesLayer {
    type Service = CountResponses<S>;

    fn layer(&self, inner: S) -> CountResponses<S> {
        CountResponses { inner }
    }
}

/// The service `CountResponsesLayer` makes.
#[derive(Debug, Clone)]
pub struct CountResponses<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for CountResponses<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<R>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = crate::routes::label_of(request.uri().path());
        let answered = self.inner.call(request);
        Box::pin(async move {
            let response = answered.await?;
            metrics::counter!(crate::metrics::RESPONSES, "route" => route, "status" => response.status().as_u16().to_string()).increment(1);
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_named_from_the_query_the_header_or_the_path() {
        let request = |uri: &str| Request::builder().uri(uri).body(()).unwrap();
        assert_eq!(session_of(&request("/stream?fps=30&session=piste-4")).as_deref(), Some("piste-4"));
        assert_eq!(session_of(&request("/sessions/piste-5/events?token=x")).as_deref(), Some("piste-5"));
        assert_eq!(session_of(&request("/sessions/..%2F/events")), None);
        assert_eq!(session_of(&request("/health")), None);
    }
}
