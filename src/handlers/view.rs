//! The piste view: the pages a referee or a tournament director opens on a tablet, a phone or
//! the camera laptop. `GET /` lists the sessions (newest first, refreshed live), `GET
//! /sessions/{id}/view` follows one phrase (frames in and analysed, the latest analysed frame
//! with the skeletons, then the verdict, the three engines' calls, the timeline and the downloads).
//! The pages are embedded in the binary, use relative URLs only (so they work behind a proxy at
//! a sub-path) and load nothing from outside (a venue may be offline); their data comes from
//! the JSON routes.

use hyper::{header, Response, StatusCode};
use serde_json::json;

use crate::error::{full_body, json_response, ApiError, ResponseBody};
use std::sync::Arc;

use crate::state::AppState;

/// The sessions index.
const INDEX_HTML: &str = include_str!("../view/index.html");
/// One session's live view.
const SESSION_HTML: &str = include_str!("../view/session.html");
/// The pages' shared styles.
const VIEW_CSS: &str = include_str!("../view/view.css");
/// Sessions listed on the index.
const LISTED: usize = 100;

/// `GET /`.
pub fn index() -> Response<ResponseBody> {
    page("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /sessions/{id}/view` (404 for a session nobody knows).
pub async fn session_page(state: &Arc<AppState>, id: &str) -> Result<Response<ResponseBody>, ApiError> {
    crate::handlers::sessions::known(state, id).await?;
    Ok(page("text/html; charset=utf-8", SESSION_HTML))
}

/// `GET /assets/{name}`.
pub fn asset(name: &str) -> Result<Response<ResponseBody>, ApiError> {
    match name {
        "view.css" => Ok(page("text/css; charset=utf-8", VIEW_CSS)),
        other => Err(ApiError::NotFound(format!("no asset {other:?}"))),
    }
}

/// `GET /sessions`: `{"sessions": [...]}`, newest first (read on the blocking pool: it reads
/// up to [`LISTED`] directories).
pub async fn sessions(state: &Arc<AppState>) -> Result<Response<ResponseBody>, ApiError> {
    let held = state.clone();
    let listed = crate::handlers::on_disk(move || held.sessions.list(LISTED)).await?;
    Ok(json_response(StatusCode::OK, &json!({ "sessions": listed })))
}

fn page(kind: &'static str, text: &'static str) -> Response<ResponseBody> {
    Response::builder()
        .header(header::CONTENT_TYPE, kind)
        .header(header::CACHE_CONTROL, "no-cache")
        .body(full_body(bytes::Bytes::from_static(text.as_bytes())))
        .expect("static headers")
}
