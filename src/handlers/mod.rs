//! One module per route family; each handler takes the request (and the shared state) and
//! returns a response or an [`ApiError`](crate::error::ApiError). The router is `server.rs`.

pub mod analyze;
pub mod form;
pub mod health;
pub mod sessions;
pub mod stream;
pub mod view;
