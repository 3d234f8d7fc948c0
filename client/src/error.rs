//! The client's one error type and its exit codes, the legacy uploader's: 2 when a file is
//! missing, the HTTP status on an HTTP error (as the legacy's `sys.exit(status)`, so modulo 256),
//! 1 for anything else (a WebSocket `error` message that names an HTTP status exits with it).

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A file or folder named on the command line does not exist.
    #[error("{0}")]
    MissingFile(String),
    /// The server answered with an error status.
    #[error("HTTP {status}: {detail}")]
    Http {
        /// The status code.
        status: u16,
        /// The server's `detail`, or its whole body when it has none.
        detail: String,
    },
    /// The server sent an `error` message on the WebSocket.
    #[error("the server reports {code}: {message}")]
    Server {
        /// Its `error_code` (`PROTOCOL_ERROR`, `PROCESSING_FAILED`, …).
        code: String,
        /// Its `error_message`.
        message: String,
        /// The HTTP status the same failure has on `POST /stream`, when the message gives one
        /// (`status`): the exit code then follows it.
        status: Option<u16>,
    },
    /// Anything else: the server unreachable, a video that cannot be read, a log never written.
    #[error("{0}")]
    Failed(String),
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::MissingFile(_) => 2,
            ClientError::Http { status, .. } => (status % 256) as u8,
            ClientError::Server { status: Some(status), .. } => (status % 256) as u8,
            ClientError::Server { status: None, .. } | ClientError::Failed(_) => 1,
        }
    }

    /// An HTTP error from a response's status and body: the `detail` when the body has one.
    pub fn http(status: u16, body: &str) -> ClientError {
        let detail = serde_json::from_str::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("detail").cloned())
            .map(|d| match d {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .unwrap_or_else(|| body.trim().to_owned());
        ClientError::Http { status, detail }
    }
}

/// Fails with `MissingFile` unless `path` exists.
pub fn require_exists(path: &std::path::Path, what: &str) -> Result<(), ClientError> {
    if path.exists() {
        Ok(())
    } else {
        Err(ClientError::MissingFile(format!("{what} not found: {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_legacy_uploader() {
        assert_eq!(ClientError::MissingFile("x".into()).exit_code(), 2);
        assert_eq!(ClientError::Failed("x".into()).exit_code(), 1);
        // Python's sys.exit(422) leaves 422 & 0xFF.
        assert_eq!(ClientError::http(422, "{}").exit_code(), 166);
        assert_eq!(ClientError::http(500, "").exit_code(), 244);
        let server = |status| ClientError::Server { code: "PROCESSING_FAILED".into(), message: "m".into(), status };
        assert_eq!(server(None).exit_code(), 1);
        assert_eq!(server(Some(422)).exit_code(), 166);
    }

    #[test]
    fn http_errors_carry_the_detail() {
        let e = ClientError::http(422, r#"{"detail": "Not a double-touch phrase"}"#);
        assert_eq!(e.to_string(), "HTTP 422: Not a double-touch phrase");
        let e = ClientError::http(502, "Bad Gateway\n");
        assert_eq!(e.to_string(), "HTTP 502: Bad Gateway");
    }
}
