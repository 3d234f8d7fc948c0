//! One module per route family; each handler takes the request (and the shared state) and
//! returns a response or an [`ApiError`](crate::error::ApiError). The router is `server.rs`.

pub mod analyze;
pub mod form;
pub mod health;
pub mod sessions;
pub mod stream;
pub mod view;
pub mod websocket;

/// A request's body as handlers see it: hyper's, cut with an error when no byte has come for
/// the body idle timeout (tower-http's `RequestBodyTimeoutLayer`), and shared with the layer that
/// reads the rest of a refused body (`crate::linger`).
pub type RequestBody = tower_http::timeout::TimeoutBody<crate::linger::SharedBody<hyper::body::Incoming>>;
