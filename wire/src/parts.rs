//! The streamed body of `POST /stream` (`multipart/x-mixed-replace`): the names its parts and
//! requests carry, a fresh boundary, and [`PartWriter`], which writes the frame parts and the log
//! part one at a time, as they become known. Writing only: the server's parser is its own.

use bytes::Bytes;

use crate::random::random_hex;

/// The body's media type, without its `boundary` parameter.
pub const STREAM_CONTENT_TYPE: &str = "multipart/x-mixed-replace";

/// The header naming the session: sent by the client (or `?session=`), answered by the server.
pub const SESSION_ID_HEADER: &str = "X-Session-Id";

/// A frame part's header: the frame's index in the phrase, from 0.
pub const FRAME_INDEX_HEADER: &str = "X-Frame-Index";

/// A frame part's header: seconds since the phrase started.
pub const TIMESTAMP_HEADER: &str = "X-Timestamp";

/// A frame part's `Content-Type`.
pub const FRAME_CONTENT_TYPE: &str = "image/jpeg";

/// The log part's `Content-Type`, as written here (the server takes any `text/plain`).
pub const SIGNAL_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The log part's name in its `Content-Disposition` (the server also takes `txt`).
pub const SIGNAL_PART_NAME: &str = "signal";

/// The file name the log part carries in its `Content-Disposition`.
pub const SIGNAL_FILENAME: &str = "signal.txt";

/// A fresh boundary, `referee-` and 128 random bits in hex: one no JPEG is likely to contain.
pub fn new_boundary() -> String {
    format!("referee-{}", random_hex())
}

/// Writes one body's parts in order: frames, then the log and the closing delimiter.
///
/// Each part goes out with the delimiter that ends it (`\r\n--boundary`), as ffmpeg's mpjpeg
/// does: a multipart reader only knows a part is whole once it sees that delimiter, so a frame
/// sent without it would wait at the server for the next frame (or the log) to arrive. The next
/// part then opens with the `\r\n` that finishes that delimiter's line; the first part opens with
/// the whole delimiter line.
#[derive(Debug, Clone)]
pub struct PartWriter {
    boundary: String,
    /// No part has been written yet.
    first: bool,
}

impl PartWriter {
    /// A writer for a new body, with a fresh boundary ([`new_boundary`]).
    pub fn new() -> Self {
        Self::with_boundary(new_boundary())
    }

    /// A writer for a new body with this boundary (no leading `--`).
    pub fn with_boundary(boundary: impl Into<String>) -> Self {
        Self { boundary: boundary.into(), first: true }
    }

    /// The boundary, without the leading `--`.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The request's `Content-Type`: `multipart/x-mixed-replace; boundary=<boundary>`.
    pub fn content_type(&self) -> String {
        format!("{STREAM_CONTENT_TYPE}; boundary={}", self.boundary)
    }

    /// One frame part: its headers (the JPEG's length, `index`, `timestamp` to the millisecond),
    /// the JPEG, and the delimiter that ends it.
    pub fn frame(&mut self, index: u64, timestamp: f64, jpeg: &[u8]) -> Bytes {
        let mut out = format!(
            "{}Content-Type: {FRAME_CONTENT_TYPE}\r\nContent-Length: {}\r\n{FRAME_INDEX_HEADER}: {index}\r\n{TIMESTAMP_HEADER}: {timestamp:.3}\r\n\r\n",
            self.opening(),
            jpeg.len()
        )
        .into_bytes();
        out.extend_from_slice(jpeg);
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(self.boundary.as_bytes());
        Bytes::from(out)
    }

    /// The log part and the closing delimiter: the end of the body, nothing may follow.
    pub fn signal_and_close(&mut self, log: &[u8]) -> Bytes {
        let mut out = format!(
            "{}Content-Type: {SIGNAL_CONTENT_TYPE}\r\nContent-Disposition: inline; name=\"{SIGNAL_PART_NAME}\"; filename=\"{SIGNAL_FILENAME}\"\r\n\r\n",
            self.opening()
        )
        .into_bytes();
        out.extend_from_slice(log);
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"--\r\n");
        Bytes::from(out)
    }

    /// What opens the next part: the first delimiter line, or the end of the delimiter that the
    /// part before already sent.
    fn opening(&mut self) -> String {
        if std::mem::replace(&mut self.first, false) {
            format!("--{}\r\n", self.boundary)
        } else {
            "\r\n".to_owned()
        }
    }
}

impl Default for PartWriter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn parts_are_well_formed_multipart_each_ended_at_once() {
        let mut parts = PartWriter::with_boundary("b");
        let body = [parts.frame(7, 0.4666, b"JPEG"), parts.frame(8, 0.5333, b"JPEG2"), parts.signal_and_close(b"log")].concat();
        let expected = "--b\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\nX-Frame-Index: 7\r\nX-Timestamp: 0.467\r\n\r\nJPEG\r\n\
            --b\r\nContent-Type: image/jpeg\r\nContent-Length: 5\r\nX-Frame-Index: 8\r\nX-Timestamp: 0.533\r\n\r\nJPEG2\r\n\
            --b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: inline; name=\"signal\"; filename=\"signal.txt\"\r\n\r\nlog\r\n\
            --b--\r\n";
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        let mut later = PartWriter::with_boundary("b");
        later.frame(0, 0.0, b"first");
        assert!(later.frame(0, 0.0, b"J").ends_with(b"J\r\n--b"), "a frame carries its closing delimiter");
        assert!(PartWriter::with_boundary("b").signal_and_close(b"log").starts_with(b"--b\r\nContent-Type: text/plain"));
    }

    #[test]
    fn a_frame_and_the_log_are_exactly_these_bytes() {
        let mut parts = PartWriter::with_boundary("referee-0123");
        let mut body = parts.frame(0, 0.0, b"\xff\xd8\xff\xe0jpeg\xff\xd9").to_vec();
        body.extend_from_slice(&parts.signal_and_close(b"0.000s | Phrase recording started\n"));
        let expected: &[u8] = b"--referee-0123\r\n\
            Content-Type: image/jpeg\r\n\
            Content-Length: 10\r\n\
            X-Frame-Index: 0\r\n\
            X-Timestamp: 0.000\r\n\
            \r\n\
            \xff\xd8\xff\xe0jpeg\xff\xd9\
            \r\n--referee-0123\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Disposition: inline; name=\"signal\"; filename=\"signal.txt\"\r\n\
            \r\n\
            0.000s | Phrase recording started\n\
            \r\n--referee-0123--\r\n";
        assert_eq!(body, expected, "{}", String::from_utf8_lossy(&body));
        assert_eq!(parts.content_type(), "multipart/x-mixed-replace; boundary=referee-0123");
    }

    #[test]
    fn the_written_body_parses_back_into_its_parts() {
        let mut parts = PartWriter::with_boundary("xyz");
        let body = [parts.frame(3, 1.25, b"AB\r\nCD"), parts.signal_and_close(b"the log")].concat();
        // A reader's view: split on the delimiter, drop the preamble (empty) and the epilogue.
        let text = String::from_utf8(body).unwrap();
        let pieces: Vec<&str> = text.split("--xyz").collect();
        assert_eq!(pieces.len(), 4, "{pieces:?}");
        assert_eq!(pieces[0], "");
        assert_eq!(pieces[3], "--\r\n", "the closing delimiter ends the body");
        let parse = |piece: &str| -> (Vec<(String, String)>, String) {
            let piece = piece.strip_prefix("\r\n").expect("the delimiter line ends in CRLF");
            let piece = piece.strip_suffix("\r\n").expect("the data is followed by CRLF");
            let (head, data) = piece.split_once("\r\n\r\n").expect("a blank line after the headers");
            let headers = head.split("\r\n").map(|l| l.split_once(": ").map(|(n, v)| (n.to_owned(), v.to_owned())).unwrap()).collect();
            (headers, data.to_owned())
        };
        let header = |headers: &[(String, String)], name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let (frame, jpeg) = parse(pieces[1]);
        assert_eq!(jpeg, "AB\r\nCD");
        assert_eq!(header(&frame, "Content-Type").as_deref(), Some(FRAME_CONTENT_TYPE));
        assert_eq!(header(&frame, "Content-Length").as_deref(), Some("6"));
        assert_eq!(header(&frame, FRAME_INDEX_HEADER).as_deref(), Some("3"));
        assert_eq!(header(&frame, TIMESTAMP_HEADER).as_deref(), Some("1.250"));
        let (signal, log) = parse(pieces[2]);
        assert_eq!(log, "the log");
        assert_eq!(header(&signal, "Content-Type").as_deref(), Some(SIGNAL_CONTENT_TYPE));
        assert!(header(&signal, "Content-Disposition").unwrap().contains("name=\"signal\""));
    }

    #[test]
    fn boundaries_are_fresh_and_safe_in_a_header() {
        let all: HashSet<String> = (0..1000).map(|_| new_boundary()).collect();
        assert_eq!(all.len(), 1000);
        let one = new_boundary();
        assert!(one.starts_with("referee-") && one.len() == "referee-".len() + 32, "{one}");
        assert!(one.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        assert_ne!(PartWriter::new().boundary(), PartWriter::new().boundary());
    }
}
