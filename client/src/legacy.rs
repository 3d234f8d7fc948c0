//! The legacy uploader's commands, kept for the scripts that call it: `health` and the one-shot
//! `analyze` (the whole video and the log as `multipart/form-data` to `POST /analyze`).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::error::{require_exists, ClientError};

/// An HTTP client whose requests give up after `timeout` seconds and carry the server's bearer
/// `token`, if it wants one.
pub fn http_client(timeout: Option<f64>, token: Option<&str>) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
    if let Some(t) = timeout {
        builder = builder.timeout(Duration::from_secs_f64(t));
    }
    if let Some(token) = token {
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| ClientError::Failed("the token has characters a header cannot carry".into()))?;
        value.set_sensitive(true);
        builder = builder.default_headers(std::iter::once((reqwest::header::AUTHORIZATION, value)).collect());
    }
    builder.build().map_err(|e| ClientError::Failed(format!("cannot build the HTTP client: {e}")))
}

/// The JSON of a response: its body on success, an error with its status otherwise.
async fn json_answer(url: &str, sent: Result<reqwest::Response, reqwest::Error>) -> Result<Value, ClientError> {
    let response = sent.map_err(|e| ClientError::Failed(format!("cannot reach {url}: {e}")))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| ClientError::Failed(format!("the answer from {url} was cut off: {e}")))?;
    if !status.is_success() {
        return Err(ClientError::http(status.as_u16(), &text));
    }
    serde_json::from_str(&text).map_err(|e| ClientError::Failed(format!("the server's answer is not JSON ({e}): {text}")))
}

/// `GET /health`.
pub async fn health(server: &str, timeout: f64, token: Option<&str>) -> Result<Value, ClientError> {
    let url = format!("{}/health", server.trim_end_matches('/'));
    let client = http_client(Some(timeout), token)?;
    json_answer(&url, client.get(&url).send().await).await
}

/// The legacy uploader's MIME type for a video file.
fn video_mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("mp4") | Some("m4v") => "video/mp4",
        Some("mov") => "video/quicktime",
        Some("mkv") => "video/x-matroska",
        _ => "video/x-msvideo",
    }
}

/// A file as a form part, streamed from disk.
async fn file_part(path: &Path, mime: &str) -> Result<reqwest::multipart::Part, ClientError> {
    let file = tokio::fs::File::open(path).await.map_err(|e| ClientError::Failed(format!("cannot open {}: {e}", path.display())))?;
    let length = file.metadata().await.map_err(|e| ClientError::Failed(format!("cannot read {}: {e}", path.display())))?.len();
    let stream = tokio_util::io::ReaderStream::new(file);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "upload".into());
    reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), length)
        .file_name(name)
        .mime_str(mime)
        .map_err(|e| ClientError::Failed(format!("bad MIME type {mime}: {e}")))
}

/// `POST /analyze` with the video and the log; the legacy JSON.
pub async fn analyze(
    server: &str,
    video: &Path,
    signal: &Path,
    include_keypoints: bool,
    save_overlay: bool,
    timeout: f64,
    token: Option<&str>,
) -> Result<Value, ClientError> {
    require_exists(video, "video file")?;
    require_exists(signal, "signal file")?;
    let mut form = reqwest::multipart::Form::new()
        .part("video", file_part(video, video_mime(video)).await?)
        .part("signal", file_part(signal, "text/plain").await?);
    if include_keypoints {
        form = form.text("include_keypoints", "true");
    }
    if !save_overlay {
        form = form.text("save_overlay", "false");
    }
    let url = format!("{}/analyze", server.trim_end_matches('/'));
    let client = http_client(Some(timeout), token)?;
    json_answer(&url, client.post(&url).multipart(form).send().await).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn videos_are_typed_as_the_legacy_did() {
        assert_eq!(video_mime(Path::new("p.avi")), "video/x-msvideo");
        assert_eq!(video_mime(Path::new("p.MP4")), "video/mp4");
    }
}
