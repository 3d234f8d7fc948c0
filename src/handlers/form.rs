//! The `/analyze` form (`multipart/form-data`), read as it arrives: file parts are streamed to
//! disk chunk by chunk (a video is never whole in memory), short text fields are kept.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::AsyncWriteExt;

use crate::error::ApiError;

/// Longest text field kept in memory.
const MAX_TEXT_FIELD: usize = 64 * 1024;

/// How much of a form is taken: more parts, or a bigger file part, is refused with 413 before it
/// is all read.
#[derive(Debug, Clone)]
pub struct FormLimits {
    /// Parts in the whole form.
    pub max_parts: usize,
    /// Bytes of each file part, by field name; other file fields get `other_file_bytes`.
    pub file_bytes: Vec<(&'static str, u64)>,
    /// Bytes of a file part under any other field name.
    pub other_file_bytes: u64,
}

impl FormLimits {
    fn for_file(&self, field: &str) -> u64 {
        self.file_bytes.iter().find(|(name, _)| *name == field).map_or(self.other_file_bytes, |(_, limit)| *limit)
    }
}

/// A file part saved to disk.
#[derive(Debug, Clone)]
pub struct SavedFile {
    /// The field name it came in.
    pub field: String,
    /// The client's file name (base name only), if it sent one.
    pub filename: Option<String>,
    /// Where it was written.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What a form held: its files (on disk) and its text fields.
#[derive(Debug, Default)]
pub struct Form {
    /// File parts, in arrival order.
    pub files: Vec<SavedFile>,
    /// Text parts, in arrival order.
    pub fields: Vec<(String, String)>,
}

impl Form {
    /// The first file sent under one of these field names.
    pub fn file(&self, names: &[&str]) -> Option<&SavedFile> {
        self.files.iter().find(|f| names.contains(&f.field.as_str()))
    }

    /// The first text field of this name.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The boundary of a `multipart/form-data` Content-Type, or a 400/415 saying what is wrong.
pub fn form_boundary(content_type: Option<&str>) -> Result<String, ApiError> {
    let content_type = content_type.ok_or_else(|| ApiError::UnsupportedMediaType("expected multipart/form-data".into()))?;
    multer::parse_boundary(content_type).map_err(|_| {
        if content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
            ApiError::BadRequest("multipart/form-data without a boundary".into())
        } else {
            ApiError::UnsupportedMediaType(format!("expected multipart/form-data, got {content_type}"))
        }
    })
}

/// Reads the whole form, writing each file part into `dir` (created if needed) under a name of
/// its own (`<index>-<field>`): callers move files where they belong once the form is complete.
pub async fn read_form<S, E>(body: S, boundary: String, dir: &Path, limits: &FormLimits) -> Result<Form, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
{
    tokio::fs::create_dir_all(dir).await?;
    let mut multipart = multer::Multipart::new(body, boundary);
    let mut form = Form::default();
    let mut index = 0usize;
    let mut parts = 0usize;
    while let Some(mut field) = multipart.next_field().await.map_err(malformed)? {
        parts += 1;
        if parts > limits.max_parts {
            return Err(ApiError::PayloadTooLarge(format!("the form has more than {} parts", limits.max_parts)));
        }
        let name = field.name().unwrap_or_default().to_owned();
        let filename = field.file_name().map(base_name);
        if filename.is_some() || field.content_type().is_some_and(|m| !m.essence_str().starts_with("text/")) {
            let path = dir.join(format!("{index}-{}", safe_component(&name)));
            index += 1;
            let mut file = tokio::fs::File::create(&path).await?;
            let mut bytes = 0u64;
            let limit = limits.for_file(&name);
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                bytes += chunk.len() as u64;
                if bytes > limit {
                    return Err(ApiError::PayloadTooLarge(format!("form file {name:?} is over {limit} bytes")));
                }
                file.write_all(&chunk).await?;
            }
            file.flush().await?;
            form.files.push(SavedFile { field: name, filename: filename.filter(|f| !f.is_empty()), path, bytes });
        } else {
            let mut text = Vec::new();
            while let Some(chunk) = field.chunk().await.map_err(malformed)? {
                if text.len() + chunk.len() > MAX_TEXT_FIELD {
                    return Err(ApiError::PayloadTooLarge(format!("form field {name:?} is over {MAX_TEXT_FIELD} bytes")));
                }
                text.extend_from_slice(&chunk);
            }
            form.fields.push((name, String::from_utf8_lossy(&text).into_owned()));
        }
    }
    Ok(form)
}

fn malformed(err: multer::Error) -> ApiError {
    ApiError::BadRequest(format!("malformed multipart body: {err}"))
}

/// The last path component of a client-supplied file name (never a path of ours).
pub fn base_name(name: &str) -> String {
    name.rsplit(['/', '\\']).next().unwrap_or_default().to_owned()
}

fn safe_component(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_file_names_lose_their_directories() {
        assert_eq!(base_name("../../etc/passwd"), "passwd");
        assert_eq!(base_name("C:\\clips\\phrase.avi"), "phrase.avi");
        assert_eq!(base_name("phrase.txt"), "phrase.txt");
    }

    #[tokio::test]
    async fn files_go_to_disk_and_fields_stay_in_memory() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"video\"; filename=\"dir/clip.avi\"\r\n\
                    Content-Type: video/x-msvideo\r\n\r\nVIDEO BYTES\r\n\
                    --b\r\nContent-Disposition: form-data; name=\"save_overlay\"\r\n\r\nfalse\r\n--b--\r\n";
        let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(body))]);
        let dir = std::env::temp_dir().join(format!("form-test-{}", std::process::id()));
        let limits = FormLimits { max_parts: 4, file_bytes: vec![("video", 11)], other_file_bytes: 0 };
        let form = read_form(stream, "b".into(), &dir, &limits).await.unwrap();
        let video = form.file(&["video"]).unwrap();
        assert_eq!(video.filename.as_deref(), Some("clip.avi"));
        assert_eq!(std::fs::read(&video.path).unwrap(), b"VIDEO BYTES");
        assert_eq!(form.field("save_overlay"), Some("false"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_file_over_its_limit_or_too_many_parts_is_413() {
        let part = |name: &str, body: &str| format!("--b\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"f\"\r\n\r\n{body}\r\n");
        let dir = std::env::temp_dir().join(format!("form-limits-{}", std::process::id()));
        let limits = FormLimits { max_parts: 2, file_bytes: vec![("signal", 4)], other_file_bytes: 100 };
        for (body, why) in [
            (format!("{}--b--\r\n", part("signal", "12345")), "over"),
            (format!("{}{}{}--b--\r\n", part("a", "1"), part("b", "2"), part("c", "3")), "parts"),
        ] {
            let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(body))]);
            match read_form(stream, "b".into(), &dir, &limits).await {
                Err(ApiError::PayloadTooLarge(detail)) => assert!(detail.contains(why), "{detail}"),
                other => panic!("expected 413 ({why}), got {other:?}"),
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
