//! The streamed phrase body: `multipart/x-mixed-replace` (also `multipart/mixed` and
//! `form-data`) parsed incrementally with multer into frame parts and the log part. A pure
//! parser over a byte stream: no disk, no tensors, no HTTP statuses (errors are typed; the server
//! maps them).
//!
//! Two things multer does not do by itself, done here:
//! - bounded read-ahead: multer pulls from its input while the input is ready, so on a fast
//!   socket it would buffer without limit. The input is gated: it yields at most `read_ahead`
//!   bytes beyond what the consumer has been handed (part data, plus a lower bound of each
//!   part's boundary and header bytes). When multer cannot go on with what it holds, the gate
//!   lets one more chunk in, so a low estimate can slow the parser but never stall it.
//! - a body without a closing boundary (what `ffmpeg -f mpjpeg` sends): when the input ends
//!   cleanly, a closing boundary is appended, so the last complete part ends the stream. A part
//!   that declared a Content-Length and got fewer bytes is reported as `Truncated`.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::Stream;

/// Limits on one phrase's body.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest part (a frame or the log), bytes.
    pub max_part_bytes: u64,
    /// Largest whole body, bytes.
    pub max_phrase_bytes: u64,
    /// Bytes the parser may read beyond what it has handed out.
    pub read_ahead: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_part_bytes: 16 << 20, max_phrase_bytes: 4 << 30, read_ahead: 256 << 10 }
    }
}

/// One part of the phrase.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// A JPEG frame.
    Frame {
        /// `X-Frame-Index`, if sent.
        index: Option<u64>,
        /// `X-Timestamp` (seconds since the phrase started), if sent.
        timestamp: Option<f64>,
        /// The JPEG bytes.
        bytes: Bytes,
    },
    /// The scoring-box log.
    Signal {
        /// Its text.
        text: String,
        /// The file name the client gave, if any.
        filename: Option<String>,
    },
}

/// Why the body could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MjpegError {
    /// The Content-Type is not a multipart type this route takes.
    #[error("unsupported content type {0:?}: send multipart/x-mixed-replace (or multipart/mixed, multipart/form-data)")]
    UnsupportedContentType(String),
    /// The Content-Type has no boundary.
    #[error("the multipart Content-Type has no boundary")]
    MissingBoundary,
    /// No Content-Type, and the body does not open with a boundary line to take it from.
    #[error("no Content-Type, and the body does not start with a multipart boundary line (--boundary): send multipart/x-mixed-replace; boundary=...")]
    NoBoundaryLine,
    /// A part is neither a JPEG frame nor the log.
    #[error("unsupported part type {0:?}: frames are image/jpeg, the log text/plain")]
    UnsupportedPart(String),
    /// A part header has a value that cannot be read.
    #[error("bad part header: {0}")]
    BadHeader(String),
    /// The body is not well-formed multipart.
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    /// A part is over the part limit.
    #[error("a part is over the {0}-byte limit")]
    PartTooLarge(u64),
    /// The body is over the phrase limit.
    #[error("the phrase is over the {0}-byte limit")]
    PhraseTooLarge(u64),
    /// The body stopped inside a part (fewer bytes than its Content-Length).
    #[error("the body ended inside a part")]
    Truncated,
    /// A frame part carried no bytes: no JPEG is empty.
    #[error("a frame part carried no bytes (an image/jpeg part must hold a JPEG)")]
    EmptyFrame,
    /// More empty parts with no headers than any sender's body closes with.
    #[error("more than {0} empty parts with no headers: not a phrase")]
    TooManyEmptyParts(usize),
    /// The connection failed while reading.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
}

/// The boundary of a multipart Content-Type: quoted or not, a leading `--` removed (see
/// [`settle_boundary`] for bodies that mean it).
pub fn boundary_from_content_type(content_type: &str) -> Result<String, MjpegError> {
    let declared = declared_boundary(content_type)?;
    Ok(declared.strip_prefix("--").filter(|b| !b.is_empty()).unwrap_or(&declared).to_owned())
}

/// The boundary exactly as declared (unquoted).
fn declared_boundary(content_type: &str) -> Result<String, MjpegError> {
    let mut pieces = content_type.split(';');
    let essence = pieces.next().unwrap_or_default().trim().to_ascii_lowercase();
    if !matches!(essence.as_str(), "multipart/x-mixed-replace" | "multipart/mixed" | "multipart/form-data") {
        return Err(MjpegError::UnsupportedContentType(content_type.to_owned()));
    }
    for param in pieces {
        let Some((name, value)) = param.split_once('=') else { continue };
        if name.trim().eq_ignore_ascii_case("boundary") {
            let value = value.trim().trim_matches('"');
            if value.is_empty() {
                return Err(MjpegError::MissingBoundary);
            }
            return Ok(value.to_owned());
        }
    }
    Err(MjpegError::MissingBoundary)
}

/// A body whose first bytes were read to settle its boundary, then the rest.
pub type PeekedBody<E> = Pin<Box<dyn Stream<Item = Result<Bytes, E>> + Send>>;

/// The boundary a body really uses. A declared `--x` means parts delimited by `----x` (RFC 2046),
/// but some cameras mean `--x`; the body's first line tells which. Returns it and the body, its
/// first bytes put back.
pub async fn settle_boundary<S, E>(content_type: &str, mut body: S) -> Result<(String, PeekedBody<E>), MjpegError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Send + 'static,
{
    use futures_util::StreamExt;
    let declared = declared_boundary(content_type)?;
    if !declared.starts_with("--") || declared.len() == 2 {
        return Ok((declared, Box::pin(body)));
    }
    let mut head = bytes::BytesMut::new();
    let mut failure = None;
    while head.len() < declared.len() + 6 {
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => {
                failure = Some(e);
                break;
            }
            None => break,
        }
    }
    let start = head.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(head.len());
    let as_declared = head[start..].starts_with(format!("--{declared}").as_bytes());
    let boundary = if as_declared { declared.clone() } else { declared[2..].to_owned() };
    let mut first: Vec<Result<Bytes, E>> = vec![Ok(head.freeze())];
    first.extend(failure.map(Err));
    Ok((boundary, Box::pin(futures_util::stream::iter(first).chain(body))))
}

/// The longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;
/// The longest first line [`sniff_boundary`] reads: `--`, the boundary, a little white space.
const MAX_BOUNDARY_LINE: usize = MAX_BOUNDARY + 4;
/// The most blank-line bytes [`sniff_boundary`] reads before the first line.
const MAX_BLANK_PREAMBLE: usize = 256;

/// The boundary of a body sent without a Content-Type, from its first line: `ffmpeg -f mpjpeg
/// -method POST` sends none, and its body opens with `--ffmpeg`. Returns it and the body, its
/// first bytes put back; [`MjpegError::NoBoundaryLine`] when the body does not open with one.
pub async fn sniff_boundary<S, E>(mut body: S) -> Result<(String, PeekedBody<E>), MjpegError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: Send + std::fmt::Display + 'static,
{
    use futures_util::StreamExt;
    let mut head = bytes::BytesMut::new();
    // Blank lines before the first delimiter are allowed (the preamble of a well-behaved body),
    // up to a point. The line is judged by its length, not by how much of it has arrived, so
    // the answer does not depend on how the body was cut.
    let line = loop {
        let start = head.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(head.len());
        if start > MAX_BLANK_PREAMBLE {
            return Err(MjpegError::NoBoundaryLine);
        }
        if let Some(end) = head[start..].iter().position(|b| *b == b'\n') {
            if end > MAX_BOUNDARY_LINE {
                return Err(MjpegError::NoBoundaryLine);
            }
            break head[start..start + end].to_vec();
        }
        if head.len() - start > MAX_BOUNDARY_LINE {
            return Err(MjpegError::NoBoundaryLine);
        }
        match body.next().await {
            Some(Ok(chunk)) => head.extend_from_slice(&chunk),
            Some(Err(e)) => return Err(MjpegError::Interrupted(e.to_string())),
            None => return Err(MjpegError::NoBoundaryLine),
        }
    };
    let boundary = boundary_of_line(&line).ok_or(MjpegError::NoBoundaryLine)?;
    Ok((boundary, Box::pin(futures_util::stream::iter(vec![Ok(head.freeze())]).chain(body))))
}

/// `--boundary` (trailing white space and CR allowed) → `boundary`, if it is one RFC 2046
/// allows: 1 to 70 of its characters, not ending in a space.
fn boundary_of_line(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?.trim_end();
    let boundary = text.strip_prefix("--")?;
    let allowed = |c: char| c.is_ascii_alphanumeric() || "'()+_,-./:=? ".contains(c);
    (!boundary.is_empty() && boundary.len() <= MAX_BOUNDARY && boundary.chars().all(allowed)).then(|| boundary.to_owned())
}

/// Shared between the gated input and the parser: how far the input may run ahead.
#[derive(Debug, Default)]
struct Gate {
    state: Mutex<GateState>,
}

#[derive(Debug, Default)]
struct GateState {
    fed: u64,
    limit: u64,
    stalled: bool,
    waker: Option<Waker>,
    error: Option<String>,
    /// Whether the client's bytes held a `--boundary` delimiter anywhere (an empty but
    /// well-formed body does; bytes that are not multipart at all do not).
    delimiter_seen: bool,
    /// The parser is reading a part's data (its headers are read; its end is not yet seen).
    in_part: bool,
    /// How many times the parser has handed something out (a part, data, a part's end): when
    /// it has not moved between two reads of the input, it needs more than it holds.
    steps: u64,
}

impl Gate {
    /// The consumer has been handed `consumed` bytes: the input may run up to `limit`.
    fn allow(&self, limit: u64) {
        let mut s = self.state.lock().expect("gate lock");
        s.limit = limit;
        s.steps += 1;
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

/// Where the body is after the client's last byte, one step a poll.
///
/// The end is never handed over in the same read as the bytes before it: multer, when it has not
/// found the first delimiter yet, reads once more and, if that read reached the end, gives up
/// without looking at what it just read ("incomplete multipart stream"), so a well-formed body
/// whose delimiter came with the end (a short first read, a preamble, or the closing added here)
/// was refused or not depending on how it was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The client's bytes are still coming.
    Reading,
    /// They have ended cleanly; the closing is next.
    Ended,
    /// The closing has been handed over; the end is next.
    Closed,
    /// The end (or the input's error) has been handed over.
    Done,
}

/// The body as multer sees it: gated, with a closing boundary added at a clean end.
struct GatedBody<S> {
    inner: Option<S>,
    gate: Arc<Gate>,
    boundary: String,
    ending: Ending,
    /// The parser's `steps` when the input was last read after its end.
    steps_at_end: Option<u64>,
    /// The body's last bytes, to see how it ended.
    tail: Vec<u8>,
    /// Where the body's first `--boundary` starts, once seen: multer takes that one as the first
    /// delimiter wherever it is, and later ones only after a CRLF.
    first_delimiter: Option<u64>,
}

impl<S> GatedBody<S> {
    /// The bytes that close the body after a clean end, if the client did not close it.
    fn closing(&self) -> Bytes {
        // ffmpeg ends each part with CRLF and the next delimiter line, so its body stops on an
        // opened part: give that one an empty header block and no data (skipped). But a
        // delimiter line is one only after a CRLF (or as the body's first delimiter), and only
        // between parts: `x\n--b\r\n` at the end is part data, and so is `--b\r\n` right after
        // a header block that ended in `\r\n--b\r\n\r\n`; closing those as an opened part
        // would add the CRLFs given here to the part's data.
        let delimiter_line = format!("--{}\r\n", self.boundary);
        let (fed, in_part) = {
            let gate = self.gate.state.lock().expect("gate lock");
            (gate.fed, gate.in_part)
        };
        let opened = !in_part
            && self.tail.ends_with(delimiter_line.as_bytes())
            && (self.tail.ends_with(format!("\r\n{delimiter_line}").as_bytes())
                || self.first_delimiter == fed.checked_sub(delimiter_line.len() as u64));
        let closing = if opened {
            format!("\r\n\r\n\r\n--{}--\r\n", self.boundary)
        } else if self.tail.ends_with(b"\r\n") {
            format!("--{}--\r\n", self.boundary)
        } else {
            format!("\r\n--{}--\r\n", self.boundary)
        };
        Bytes::from(closing)
    }
}

impl<S, E> Stream for GatedBody<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            // After the client's last byte, each step waits for a poll of its own (the stream
            // wakes itself): multer first parses what it holds, so that the closing is chosen
            // knowing whether a part's headers were read (see `closing`); and the end is never
            // handed over in the same read as the bytes before it (see `Ending`).
            return match this.ending {
                Ending::Ended => {
                    // Multer parses lazily, as the consumer asks: the closing is chosen only
                    // once it has parsed all it can (it read the input twice without handing
                    // anything out in between), so that `in_part` tells where the body ended.
                    let steps = this.gate.state.lock().expect("gate lock").steps;
                    if this.steps_at_end.replace(steps) != Some(steps) {
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    this.ending = Ending::Closed;
                    Poll::Ready(Some(Ok(this.closing())))
                }
                Ending::Closed => {
                    this.ending = Ending::Done;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                Ending::Reading | Ending::Done => Poll::Ready(None),
            };
        };
        {
            let mut s = this.gate.state.lock().expect("gate lock");
            if s.fed >= s.limit && !s.stalled {
                // Let multer work with what it holds; if it cannot yield anything, it polls
                // again (we wake it now) and gets one more chunk.
                s.stalled = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            s.stalled = false;
        }
        match Pin::new(inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                let mut gate = this.gate.state.lock().expect("gate lock");
                if this.first_delimiter.is_none() {
                    // The previous chunk's tail joins this one, so a delimiter split between
                    // chunks is seen too.
                    let needle = format!("--{}", this.boundary);
                    let mut window = this.tail.clone();
                    window.extend_from_slice(&chunk);
                    let window_start = gate.fed - this.tail.len() as u64;
                    this.first_delimiter = memchr::memmem::find(&window, needle.as_bytes()).map(|at| window_start + at as u64);
                    gate.delimiter_seen = this.first_delimiter.is_some();
                }
                drop(gate);
                this.tail.extend_from_slice(&chunk[chunk.len().saturating_sub(this.boundary.len() + 8)..]);
                let keep = this.boundary.len() + 8;
                if this.tail.len() > keep {
                    this.tail.drain(..this.tail.len() - keep);
                }
                this.gate.state.lock().expect("gate lock").fed += chunk.len() as u64;
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(e))) => {
                let message = e.to_string();
                this.gate.state.lock().expect("gate lock").error = Some(message.clone());
                this.inner = None;
                this.ending = Ending::Done;
                Poll::Ready(Some(Err(std::io::Error::other(message))))
            }
            Poll::Ready(None) => {
                this.inner = None;
                this.ending = Ending::Ended;
                this.steps_at_end = Some(this.gate.state.lock().expect("gate lock").steps);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What one multipart field was.
enum FieldRead {
    /// A frame or the log.
    Part(Part),
    /// An empty part with no headers (skipped).
    Empty,
    /// The end of the body.
    End,
}

/// The most empty header-less parts one body may hold. ffmpeg's body ends with one (its last
/// delimiter opens a part that the closing added here leaves empty); more are no sender's, and
/// a body of nothing else would otherwise be read to its end for nothing.
pub const MAX_EMPTY_PARTS: usize = 8;

/// The parts of one streamed phrase, read one at a time.
pub struct MjpegStream {
    multipart: multer::Multipart<'static>,
    gate: Arc<Gate>,
    limits: Limits,
    boundary_len: u64,
    bytes_read: u64,
    consumed: u64,
    /// Empty header-less parts skipped so far.
    empty_parts: usize,
}

impl MjpegStream {
    /// Reads `body`, a multipart body with this boundary.
    pub fn new<S, E>(body: S, boundary: String, limits: Limits) -> MjpegStream
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
        E: std::fmt::Display + 'static,
    {
        let gate = Arc::new(Gate::default());
        gate.allow(limits.read_ahead as u64);
        let boundary_len = boundary.len() as u64;
        let gated = GatedBody { inner: Some(body), gate: gate.clone(), boundary: boundary.clone(), ending: Ending::Reading, steps_at_end: None, tail: Vec::new(), first_delimiter: None };
        let constraints = multer::Constraints::new()
            .size_limit(multer::SizeLimit::new().whole_stream(limits.max_phrase_bytes).per_field(limits.max_part_bytes));
        let multipart = multer::Multipart::with_constraints(gated, boundary, constraints);
        MjpegStream { multipart, gate, limits, boundary_len, bytes_read: 0, consumed: 0, empty_parts: 0 }
    }

    /// Whether the body held a multipart delimiter of its boundary at all.
    pub fn saw_delimiter(&self) -> bool {
        self.gate.state.lock().expect("gate lock").delimiter_seen
    }

    /// Bytes of part data handed out so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next part, or `None` at the end of the phrase. Empty parts (an ffmpeg-shaped body's
    /// close) are skipped in a loop, never by recursion, so they cost no stack; past
    /// [`MAX_EMPTY_PARTS`] of them the body is refused.
    pub async fn next_part(&mut self) -> Result<Option<Part>, MjpegError> {
        loop {
            match self.read_field().await? {
                FieldRead::Part(part) => return Ok(Some(part)),
                FieldRead::End => return Ok(None),
                FieldRead::Empty => {
                    self.empty_parts += 1;
                    if self.empty_parts > MAX_EMPTY_PARTS {
                        return Err(MjpegError::TooManyEmptyParts(MAX_EMPTY_PARTS));
                    }
                }
            }
        }
    }

    /// Reads one multipart field.
    async fn read_field(&mut self) -> Result<FieldRead, MjpegError> {
        let field = self.multipart.next_field().await.map_err(|e| self.error(e))?;
        let Some(mut field) = field else { return Ok(FieldRead::End) };
        self.in_part(true);
        // A lower bound of the bytes before the data: `--boundary`, CRLF, each header as
        // `name:value` CRLF, the blank line, and the CRLF that will precede the next boundary.
        let headers: u64 = field.headers().iter().map(|(n, v)| (n.as_str().len() + v.len() + 3) as u64).sum();
        self.consume(2 + self.boundary_len + 2 + headers + 2 + 2);
        let content_type = field.content_type().map(|m| m.essence_str().to_ascii_lowercase());
        let name = field.name().map(str::to_owned);
        let filename = field.file_name().map(str::to_owned);
        let header = |name: &str| field.headers().get(name).and_then(|v| v.to_str().ok()).map(str::trim).map(str::to_owned);
        let declared_length = header("content-length");
        let index = header(crate::FRAME_INDEX_HEADER);
        let timestamp = header(crate::TIMESTAMP_HEADER);
        if field.headers().is_empty() {
            // The empty part that closes an ffmpeg-shaped body: nothing in it.
            let mut empty = true;
            while let Some(chunk) = field.chunk().await.map_err(|e| self.error(e))? {
                empty &= chunk.iter().all(|b| *b == b'\r' || *b == b'\n');
            }
            self.in_part(false);
            if empty {
                return Ok(FieldRead::Empty);
            }
            return Err(MjpegError::UnsupportedPart("none".into()));
        }
        let is_frame = matches!(content_type.as_deref(), Some("image/jpeg" | "image/jpg"));
        let is_signal = !is_frame
            && (content_type.as_deref().is_some_and(|t| t.starts_with("text/plain"))
                || matches!(name.as_deref(), Some("signal" | "txt")));
        if !is_frame && !is_signal {
            return Err(MjpegError::UnsupportedPart(content_type.unwrap_or_else(|| "none".into())));
        }
        let mut data = bytes::BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| self.error(e))? {
            data.extend_from_slice(&chunk);
            self.consume(chunk.len() as u64);
        }
        self.in_part(false);
        self.bytes_read += data.len() as u64;
        if let Some(declared) = declared_length {
            let declared: u64 = declared.parse().map_err(|_| MjpegError::BadHeader(format!("Content-Length {declared:?}")))?;
            if (data.len() as u64) < declared {
                return Err(MjpegError::Truncated);
            }
            if data.len() as u64 != declared {
                return Err(MjpegError::Malformed(format!("a part declared {declared} bytes and carried {}", data.len())));
            }
        }
        if is_signal {
            let text = String::from_utf8(data.to_vec()).map_err(|_| MjpegError::BadHeader("the log is not UTF-8".into()))?;
            return Ok(FieldRead::Part(Part::Signal { text, filename }));
        }
        let index = index
            .map(|v| v.parse::<u64>().map_err(|_| MjpegError::BadHeader(format!("X-Frame-Index {v:?}"))))
            .transpose()?;
        let timestamp = timestamp
            .map(|v| v.parse::<f64>().ok().filter(|t| t.is_finite()).ok_or_else(|| MjpegError::BadHeader(format!("X-Timestamp {v:?}"))))
            .transpose()?;
        if data.is_empty() {
            return Err(MjpegError::EmptyFrame);
        }
        Ok(FieldRead::Part(Part::Frame { index, timestamp, bytes: data.freeze() }))
    }

    /// The parser has read a part's headers (`true`) or seen its end (`false`).
    fn in_part(&self, in_part: bool) {
        let mut s = self.gate.state.lock().expect("gate lock");
        s.in_part = in_part;
        s.steps += 1;
    }

    /// The consumer has been handed `bytes` more: the input may run ahead of that by the window.
    fn consume(&mut self, bytes: u64) {
        self.consumed += bytes;
        self.gate.allow(self.consumed + self.limits.read_ahead as u64);
    }

    fn error(&self, err: multer::Error) -> MjpegError {
        if let Some(message) = self.gate.state.lock().expect("gate lock").error.clone() {
            return MjpegError::Interrupted(message);
        }
        match err {
            multer::Error::FieldSizeExceeded { .. } => MjpegError::PartTooLarge(self.limits.max_part_bytes),
            multer::Error::StreamSizeExceeded { .. } => MjpegError::PhraseTooLarge(self.limits.max_phrase_bytes),
            multer::Error::IncompleteFieldData { .. } | multer::Error::IncompleteHeaders => MjpegError::Truncated,
            other => MjpegError::Malformed(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// The body in chunks of `size` bytes, counting how many chunks the parser pulled.
    fn chunked(body: &[u8], size: usize, pulled: Arc<AtomicUsize>) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Unpin + Send {
        let chunks: Vec<Result<Bytes, std::io::Error>> = body.chunks(size).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        futures_util::stream::iter(chunks).inspect(move |_| {
            pulled.fetch_add(1, Ordering::SeqCst);
        })
    }

    use futures_util::StreamExt;

    fn frame_part(boundary: &str, index: Option<u64>, jpeg: &[u8]) -> Vec<u8> {
        let mut part = format!("--{boundary}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n", jpeg.len()).into_bytes();
        if let Some(i) = index {
            part.extend_from_slice(format!("X-Frame-Index: {i}\r\nX-Timestamp: {:.3}\r\n", i as f64 / 15.0).as_bytes());
        }
        part.extend_from_slice(b"\r\n");
        part.extend_from_slice(jpeg);
        part.extend_from_slice(b"\r\n");
        part
    }

    /// Reads every frame of `body` on a thread with a 256 KiB stack (a tokio worker has 2 MiB).
    fn frames_on_a_small_stack(body: Vec<u8>) -> Result<Vec<Bytes>, MjpegError> {
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
                runtime.block_on(async move {
                    let mut parts = MjpegStream::new(chunked(&body, 64 * 1024, Arc::default()), "frame".into(), Limits::default());
                    let mut frames = Vec::new();
                    while let Some(part) = parts.next_part().await? {
                        if let Part::Frame { bytes, .. } = part {
                            frames.push(bytes);
                        }
                    }
                    Ok(frames)
                })
            })
            .unwrap()
            .join()
            .expect("the parser ran within a 256 KiB stack")
    }

    #[test]
    fn empty_parts_cost_no_stack_and_past_a_few_the_body_is_refused() {
        // 100,000 header-less empty parts (about 1.5 MB) once overflowed a tokio worker's stack:
        // the parser awaited itself once per empty part. Now they are skipped in a loop, and a
        // body with more than MAX_EMPTY_PARTS of them is refused at the first one past it.
        // A header-less part that is not empty (its data starts at the next delimiter, which
        // lacks the CRLF before it) is refused as a part of no type.
        let no_type = MjpegError::UnsupportedPart("none".into());
        let shapes = [
            (&b"--frame\r\n\r\n\r\n\r\n"[..], MjpegError::TooManyEmptyParts(MAX_EMPTY_PARTS)),
            (b"--frame\r\n\r\n\r\n", no_type.clone()),
            (b"--frame\r\n\r\n", no_type),
        ];
        for (unit, refusal) in shapes {
            let mut body = unit.repeat(100_000);
            body.extend(frame_part("frame", Some(0), &jpeg(7)));
            body.extend_from_slice(b"--frame--\r\n");
            assert_eq!(frames_on_a_small_stack(body), Err(refusal), "{:?}", String::from_utf8_lossy(unit));
        }
        // As many as a sender may close with are skipped.
        let mut body = b"--frame\r\n\r\n\r\n\r\n".repeat(MAX_EMPTY_PARTS);
        body.extend(frame_part("frame", Some(0), &jpeg(7)));
        body.extend_from_slice(b"--frame--\r\n");
        assert_eq!(frames_on_a_small_stack(body), Ok(vec![Bytes::from(jpeg(7))]));
    }

    #[test]
    fn a_frame_part_with_no_bytes_is_refused() {
        let mut body = frame_part("frame", Some(0), &jpeg(1));
        body.extend_from_slice(&b"--frame\r\nContent-Type: image/jpeg\r\n\r\n\r\n".repeat(1_000_000));
        body.extend_from_slice(b"--frame--\r\n");
        assert_eq!(frames_on_a_small_stack(body), Err(MjpegError::EmptyFrame));
    }

    #[tokio::test]
    async fn a_body_without_content_type_gives_its_boundary_from_its_first_line() {
        // ffmpeg -f mpjpeg -method POST: no Content-Type, parts open with --ffmpeg, no close.
        let mut body = Vec::new();
        for i in 0..3u8 {
            body.extend(frame_part("ffmpeg", None, &jpeg(i)));
        }
        let pulled = Arc::new(AtomicUsize::new(0));
        let (boundary, stream) = sniff_boundary(chunked(&body, 5, pulled)).await.unwrap();
        assert_eq!(boundary, "ffmpeg");
        let mut parts = MjpegStream::new(stream, boundary, Limits::default());
        let mut frames = Vec::new();
        while let Some(part) = parts.next_part().await.unwrap() {
            if let Part::Frame { bytes, .. } = part {
                frames.push(bytes);
            }
        }
        assert_eq!(frames, vec![jpeg(0), jpeg(1), jpeg(2)], "every frame, whole, with the first bytes put back");
        // A preamble of blank lines, and a line with trailing white space.
        let (b, _) = sniff_boundary(chunked(b"\r\n--frame \r\nContent-Type: image/jpeg\r\n", 3, Arc::default())).await.unwrap();
        assert_eq!(b, "frame");
    }

    #[tokio::test]
    async fn a_sniffed_first_line_is_judged_whole_however_the_body_is_cut() {
        // Fuzzing (mjpeg_parts): `--x` and 130 CRs then LF was a boundary when the line came in
        // one read, and refused when it came in small ones (too long before its LF). Now the
        // line's length decides: over `--`, 70 and 4 bytes of white space it is refused.
        let mut long = b"--x".to_vec();
        long.extend([b'\r'; 130]);
        long.extend_from_slice(b"\nContent-Type: image/jpeg\r\n\r\n");
        let mut short = b"--x".to_vec();
        short.extend([b'\r'; 70]);
        short.extend_from_slice(b"\nContent-Type: image/jpeg\r\n\r\n");
        for chunk in [1, 5, 500] {
            let got = sniff_boundary(chunked(&long, chunk, Arc::default())).await.map(|(b, _)| b);
            assert!(matches!(got, Err(MjpegError::NoBoundaryLine)), "chunks of {chunk}: {got:?}");
            let got = sniff_boundary(chunked(&short, chunk, Arc::default())).await.map(|(b, _)| b);
            assert_eq!(got, Ok("x".to_owned()), "chunks of {chunk}");
        }
        // A preamble of blank lines is read up to a point, not without end.
        let mut blank = vec![b'\n'; 300];
        blank.extend_from_slice(b"--x\r\n");
        let got = sniff_boundary(chunked(&blank, 7, Arc::default())).await.map(|(b, _)| b);
        assert!(matches!(got, Err(MjpegError::NoBoundaryLine)), "{got:?}");
    }

    #[tokio::test]
    async fn a_body_without_content_type_or_boundary_line_is_refused() {
        for body in [&b"this is not multipart at all\n"[..], b"", b"--\r\n", &[b'-'; 200][..], &[b'x'; 500][..]] {
            let got = sniff_boundary(chunked(body, 7, Arc::default())).await.map(|(b, _)| b);
            assert!(matches!(got, Err(MjpegError::NoBoundaryLine)), "{:?}: {got:?}", String::from_utf8_lossy(body));
        }
    }

    fn jpeg(n: u8) -> Vec<u8> {
        let mut j = vec![0xFF, 0xD8];
        j.extend(std::iter::repeat(n).take(100 + n as usize));
        j.extend_from_slice(&[0xFF, 0xD9]);
        j
    }

    async fn parse_all(body: &[u8], boundary: &str, chunk: usize, limits: Limits) -> (Vec<Part>, Result<(), MjpegError>) {
        let mut stream = MjpegStream::new(chunked(body, chunk, Arc::default()), boundary.into(), limits);
        let mut parts = Vec::new();
        loop {
            match stream.next_part().await {
                Ok(Some(p)) => parts.push(p),
                Ok(None) => return (parts, Ok(())),
                Err(e) => return (parts, Err(e)),
            }
        }
    }

    fn phrase_body(boundary: &str, closing: bool) -> Vec<u8> {
        let mut body = Vec::new();
        for i in 0..3 {
            body.extend(frame_part(boundary, Some(i), &jpeg(i as u8)));
        }
        body.extend_from_slice(format!("--{boundary}\r\nContent-Type: text/plain\r\nContent-Disposition: inline; name=\"signal\"; filename=\"p.txt\"\r\n\r\n 0.000s | Phrase recording started\r\n").as_bytes());
        if closing {
            body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        }
        body
    }

    #[test]
    fn boundaries_come_from_the_content_type() {
        assert_eq!(boundary_from_content_type("multipart/x-mixed-replace; boundary=frame"), Ok("frame".into()));
        assert_eq!(boundary_from_content_type("multipart/x-mixed-replace;boundary=\"--frame\""), Ok("frame".into()));
        assert_eq!(boundary_from_content_type("Multipart/Mixed; charset=x; boundary=--ffmpeg"), Ok("ffmpeg".into()));
        assert_eq!(boundary_from_content_type("multipart/form-data; boundary=\"a b\""), Ok("a b".into()));
        assert_eq!(boundary_from_content_type("multipart/x-mixed-replace"), Err(MjpegError::MissingBoundary));
        assert_eq!(boundary_from_content_type("multipart/x-mixed-replace; boundary=\"\""), Err(MjpegError::MissingBoundary));
        assert!(matches!(boundary_from_content_type("video/avi"), Err(MjpegError::UnsupportedContentType(_))));
    }

    #[tokio::test]
    async fn frames_and_the_log_arrive_in_order_whatever_the_chunking() {
        for closing in [true, false] {
            let body = phrase_body("frame", closing);
            for chunk in [1, 7, body.len()] {
                let (parts, end) = parse_all(&body, "frame", chunk, Limits::default()).await;
                assert_eq!(end, Ok(()), "closing {closing}, chunk {chunk}");
                assert_eq!(parts.len(), 4);
                for (i, part) in parts[..3].iter().enumerate() {
                    let Part::Frame { index, timestamp, bytes } = part else { panic!("{part:?}") };
                    assert_eq!(*index, Some(i as u64));
                    assert_eq!(*timestamp, Some((i as f64 / 15.0 * 1000.0).round() / 1000.0));
                    assert_eq!(&bytes[..], &jpeg(i as u8)[..]);
                }
                // The CRLF before a boundary belongs to the boundary, not to the log.
                assert_eq!(parts[3], Part::Signal { text: " 0.000s | Phrase recording started".into(), filename: Some("p.txt".into()) });
            }
        }
    }

    #[tokio::test]
    async fn a_declared_leading_dash_pair_is_settled_by_the_body() {
        for (lines, expected) in [("----cam", "--cam"), ("--cam", "cam")] {
            let body = format!("{lines}\r\nContent-Type: image/jpeg\r\n\r\nJ\r\n{lines}--\r\n");
            let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(Bytes::from(body))]);
            let (boundary, body) = settle_boundary("multipart/x-mixed-replace; boundary=--cam", stream).await.unwrap();
            assert_eq!(boundary, expected);
            let mut parts = MjpegStream::new(body, boundary, Limits::default());
            assert!(matches!(parts.next_part().await, Ok(Some(Part::Frame { .. }))));
            assert_eq!(parts.next_part().await, Ok(None));
        }
    }

    #[tokio::test]
    async fn the_ffmpeg_shape_without_a_closing_boundary_ends_cleanly() {
        // What `ffmpeg -f mpjpeg` writes: lower-case header names, each part followed by CRLF
        // and the next delimiter line, no closing boundary.
        let mut body = b"--ffmpeg\r\n".to_vec();
        for i in 0..2u8 {
            let j = jpeg(i);
            body.extend_from_slice(format!("Content-type: image/jpeg\r\nContent-length: {}\r\n\r\n", j.len()).as_bytes());
            body.extend_from_slice(&j);
            body.extend_from_slice(b"\r\n--ffmpeg\r\n");
        }
        let (parts, end) = parse_all(&body, "ffmpeg", 5, Limits::default()).await;
        assert_eq!(end, Ok(()));
        assert_eq!(parts.len(), 2);
        assert!(matches!(&parts[1], Part::Frame { index: None, bytes, .. } if bytes[..] == jpeg(1)[..]));
    }

    #[tokio::test]
    async fn a_body_cut_inside_a_part_is_truncated_after_the_whole_frames() {
        let mut body = frame_part("b", Some(0), &jpeg(0));
        let second = frame_part("b", Some(1), &jpeg(1));
        body.extend_from_slice(&second[..second.len() - 40]);
        let (parts, end) = parse_all(&body, "b", 16, Limits::default()).await;
        assert_eq!(parts.len(), 1, "the complete frame is delivered");
        assert_eq!(end, Err(MjpegError::Truncated));
    }

    #[tokio::test]
    async fn limits_and_bad_parts_are_typed_errors() {
        let body = phrase_body("b", true);
        let small = Limits { max_part_bytes: 50, ..Limits::default() };
        assert!(matches!(parse_all(&body, "b", 64, small).await.1, Err(MjpegError::PartTooLarge(50))));
        let short = Limits { max_phrase_bytes: 300, ..Limits::default() };
        assert!(matches!(parse_all(&body, "b", 64, short).await.1, Err(MjpegError::PhraseTooLarge(300))));

        let bad_index = String::from_utf8(frame_part("b", Some(0), b"x")).unwrap().replace("X-Frame-Index: 0", "X-Frame-Index: first");
        assert!(matches!(parse_all(bad_index.as_bytes(), "b", 64, Limits::default()).await.1, Err(MjpegError::BadHeader(_))));
        let png = b"--b\r\nContent-Type: image/png\r\n\r\nPNG\r\n--b--\r\n";
        assert_eq!(parse_all(png, "b", 64, Limits::default()).await.1, Err(MjpegError::UnsupportedPart("image/png".into())));
    }

    /// A stream of these chunks that is not ready (and wakes itself) before each `None` item.
    struct Pausing(std::collections::VecDeque<Option<&'static [u8]>>);

    impl Stream for Pausing {
        type Item = Result<Bytes, std::io::Error>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            match self.0.pop_front() {
                Some(Some(chunk)) => Poll::Ready(Some(Ok(Bytes::from_static(chunk)))),
                Some(None) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(None),
            }
        }
    }

    #[tokio::test]
    async fn a_delimiter_that_arrives_with_the_end_of_the_body_is_found() {
        // Fuzzing (mjpeg_parts): when the first read held no delimiter and the next one reached
        // the end, multer refused the body as an incomplete stream, whatever that read held.
        let part = b"--b\r\nContent-Type: image/jpeg\r\n\r\nJ\r\n--b--\r\n";
        for (first, rest) in [(&b"-"[..], &part[1..]), (b"preamble\r\n", &part[..]), (b"", &part[..])] {
            let (first, rest): (&'static [u8], &'static [u8]) = (first, rest);
            let body = Pausing(vec![Some(first), None, Some(rest)].into());
            let mut parts = MjpegStream::new(body, "b".into(), Limits::default());
            assert!(matches!(parts.next_part().await, Ok(Some(Part::Frame { .. }))), "after {first:?}");
            assert_eq!(parts.next_part().await, Ok(None));
        }
        // No delimiter from the client at all: the closing one added here ends it, however cut.
        for limits in [Limits::default(), Limits { read_ahead: 4, ..Limits::default() }] {
            for chunk in [3, 1000] {
                let (parts, end) = parse_all(b"this is not multipart at all", "b", chunk, limits).await;
                assert_eq!((parts.len(), end), (0, Ok(())), "chunks of {chunk}, {limits:?}");
            }
        }
    }

    #[tokio::test]
    async fn a_delimiter_line_at_the_end_is_one_only_after_a_crlf_or_as_the_first() {
        // Fuzzing (mjpeg_parts): a body ending `x\n--b\r\n` was closed as if that line opened a
        // new part, and the CRLFs added to close it went into the frame's bytes; so was a body
        // whose last part's data (right after its header block) was `--b\r\n`.
        let data_after_lf = b"--b\r\nContent-Type: image/jpeg\r\n\r\nJPEG\x02\n--b\r\n";
        let data_after_headers = b"--b\r\nContent-Type: image/jpeg\r\n\r\nJ\r\n--b\r\nContent-Type: image/jpeg\r\n\r\n--b\r\n";
        for (body, last) in [(&data_after_lf[..], &b"JPEG\x02\n--b"[..]), (data_after_headers, b"--b")] {
            for chunk in [1, 5, body.len()] {
                let (parts, end) = parse_all(body, "b", chunk, Limits::default()).await;
                assert_eq!(end, Ok(()));
                let Some(Part::Frame { bytes, .. }) = parts.last() else { panic!("{parts:?}") };
                assert_eq!(&bytes[..], last, "chunks of {chunk}");
            }
        }
        // As the body's first delimiter (even after a preamble), the line opens an empty part.
        for body in [&b"--b\r\n"[..], b"\r\n--b\r\n", b"preamble--b\r\n"] {
            for chunk in [1, 3, body.len()] {
                assert_eq!(parse_all(body, "b", chunk, Limits::default()).await, (vec![], Ok(())), "{body:?} in chunks of {chunk}");
            }
        }
    }

    #[tokio::test]
    async fn read_ahead_stays_bounded() {
        let mut body = Vec::new();
        for i in 0..50u8 {
            body.extend(frame_part("b", Some(u64::from(i)), &jpeg(i)));
        }
        body.extend_from_slice(b"--b--\r\n");
        let pulled = Arc::new(AtomicUsize::new(0));
        let limits = Limits { read_ahead: 1024, ..Limits::default() };
        let chunk = 100;
        let mut stream = MjpegStream::new(chunked(&body, chunk, pulled.clone()), "b".into(), limits);
        let mut handed_out = 0usize;
        while let Some(part) = stream.next_part().await.unwrap() {
            let Part::Frame { bytes, .. } = part else { panic!() };
            handed_out += bytes.len() + 120; // the part's own headers and boundary
            let read = pulled.load(Ordering::SeqCst) * chunk;
            assert!(read <= handed_out + limits.read_ahead + 2 * chunk, "read {read} bytes, handed out {handed_out}");
        }
    }
}
