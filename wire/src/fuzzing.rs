//! The invariants the `mjpeg_parts` fuzz target checks, here so that the stable-toolchain test
//! over the kept corpus (`tests/fuzz_corpus.rs`) checks exactly the same ones. Not an API: each
//! function panics when an invariant fails.
//!
//! One input is laid out as:
//! - byte 0, the mode: bits 0–1 where the boundary comes from (0: `b`, 1: the Content-Type line
//!   that opens the rest, through [`settle_boundary`], 2: the body's first line, through
//!   [`sniff_boundary`], 3: `frame`), bit 2 whether the input fails after its last chunk, bits
//!   3–4 which [`LIMITS`] apply;
//! - byte 1: `k`, the number of chunk bytes (0–7) that follow; the body is cut into chunks of
//!   their sizes (the low 7 bits + 1), in turn, and where a byte's top bit is set the input is
//!   not ready (as a socket with nothing yet) before that chunk (`k` = 0: one chunk);
//! - bit 5 of the mode: the body repeats. Two more bytes (little-endian) times 16 say how many
//!   times the rest is laid end to end (up to [`MAX_REPEATED_BODY`] bytes in all), with the phrase
//!   limit raised to hold it and its chunks 4096 times larger: a few bytes reach 100,000 parts and more (empty ones, header-less
//!   ones, frames), the bodies that once overflowed the stack;
//! - the rest: the body (in mode 1, a Content-Type line first).

use std::collections::VecDeque;
use std::future::Future;
use std::mem::discriminant;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::mjpeg::{
    boundary_from_content_type, settle_boundary, sniff_boundary, Limits, MjpegError, MjpegStream, Part, PeekedBody,
};

/// The limits the fuzzer picks from: small, so that limits are hit at every size of input.
pub const LIMITS: [Limits; 4] = [
    Limits { max_part_bytes: 64, max_phrase_bytes: 1024, read_ahead: 16 },
    Limits { max_part_bytes: 300, max_phrase_bytes: 4096, read_ahead: 100 },
    Limits { max_part_bytes: 16, max_phrase_bytes: 256, read_ahead: 1 },
    Limits { max_part_bytes: 1 << 20, max_phrase_bytes: 1 << 20, read_ahead: 256 << 10 },
];

/// The longest body a repeating input expands to.
pub const MAX_REPEATED_BODY: usize = 2 << 20;

/// How much bigger a repeated body's chunks are than the input's chunk bytes say.
const REPEATED_CHUNK_SCALE: usize = 4096;

/// Parts whose bytes are looked for in the body (the first ones; a repeated body has many).
const PARTS_LOOKED_FOR: usize = 64;

/// What one parse gave: the parts, then how it ended.
type Outcome = (Vec<Part>, Result<(), MjpegError>);

/// Checks one fuzz input (see the module's documentation for its layout).
pub fn check_input(data: &[u8]) {
    check_content_type(data);
    let [mode, k, rest @ ..] = data else { return };
    let k = usize::from(*k % 8).min(rest.len());
    let (sizes, rest) = rest.split_at(k);
    let sizes: Vec<(usize, bool)> = sizes.iter().map(|&s| (usize::from(s & 0x7f) + 1, s & 0x80 != 0)).collect();
    let fails = mode & 4 != 0;
    let mut limits = LIMITS[usize::from(mode >> 3) & 3];
    let repeated;
    let (rest, sizes) = if mode & 0x20 != 0 {
        let [lo, hi, unit @ ..] = rest else { return };
        if unit.is_empty() {
            return;
        }
        let times = usize::from(u16::from_le_bytes([*lo, *hi])) * 16;
        repeated = unit.repeat(times.min(MAX_REPEATED_BODY / unit.len()).max(1));
        limits.max_phrase_bytes = limits.max_phrase_bytes.max(2 * MAX_REPEATED_BODY as u64);
        // Chunks scaled up with the body (4 KiB to 512 KiB), as a socket delivers a big one;
        // small chunks are the other inputs' business.
        (&repeated[..], sizes.iter().map(|&(size, pause)| (size * REPEATED_CHUNK_SCALE, pause)).collect())
    } else {
        (rest, sizes)
    };
    match mode & 3 {
        0 => check_body(rest, "b", &sizes, fails, limits),
        1 => {
            let line_end = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let content_type = String::from_utf8_lossy(&rest[..line_end]).into_owned();
            let body = rest.get(line_end + 1..).unwrap_or_default();
            check_settled(&content_type, body, &sizes, fails, limits);
        }
        2 => check_sniffed(rest, &sizes, fails, limits),
        _ => check_body(rest, "frame", &sizes, fails, limits),
    }
}

/// The whole input as a Content-Type: a boundary taken from it is never empty and is in it.
fn check_content_type(data: &[u8]) {
    let content_type = String::from_utf8_lossy(data);
    if let Ok(boundary) = boundary_from_content_type(&content_type) {
        assert!(!boundary.is_empty(), "an empty boundary from {content_type:?}");
        assert!(content_type.contains(&boundary), "boundary {boundary:?} is not in {content_type:?}");
    }
}

/// A body as it arrives: chunks, with moments where nothing is ready (the stream wakes itself).
struct Arriving(VecDeque<Option<Result<Bytes, String>>>);

impl Stream for Arriving {
    type Item = Result<Bytes, String>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.0.pop_front() {
            Some(Some(chunk)) => Poll::Ready(Some(chunk)),
            Some(None) => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Ready(None),
        }
    }
}

/// The body as a stream of chunks of the given sizes, in turn (each after a pause where asked),
/// failing after them if `fails`.
fn chunked(body: &[u8], sizes: &[(usize, bool)], fails: bool) -> Arriving {
    let mut items = VecDeque::new();
    let mut at = 0;
    for &(size, pause) in sizes.iter().cycle() {
        if at >= body.len() {
            break;
        }
        if pause {
            items.push_back(None);
        }
        let end = (at + size).min(body.len());
        items.push_back(Some(Ok(Bytes::copy_from_slice(&body[at..end]))));
        at = end;
    }
    if sizes.is_empty() && !body.is_empty() {
        items.push_back(Some(Ok(Bytes::copy_from_slice(body))));
    }
    if fails {
        items.push_back(Some(Err("connection reset".to_owned())));
    }
    Arriving(items)
}

/// Runs a future to its end on this thread. Nothing the parser waits on is outside it, so it
/// must finish within `max_polls` polls: more is a parser that spins.
fn run<F: Future>(future: F, max_polls: usize) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..max_polls {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the parser did not finish within {max_polls} polls");
}

/// A generous bound on the polls a body of `len` bytes may need (a few per chunk and part).
fn poll_budget(len: usize) -> usize {
    1_000 + 16 * len
}

/// Parses a body with this boundary, chunked as given, and checks what came out.
fn check_body(body: &[u8], boundary: &str, sizes: &[(usize, bool)], fails: bool, limits: Limits) {
    let outcome = parse(chunked(body, sizes, fails), boundary, body, limits);
    if fails {
        // A failing input ends in any error; only the invariants of one parse hold.
        return;
    }
    // However the body is cut, it says the same.
    let whole = parse(chunked(body, &[], false), boundary, body, limits);
    assert_same(&outcome, &whole, &format!("the chunking ({sizes:?})"));
}

/// Two parses of the same bytes said the same: the same parts and the same kind of ending. A
/// body over the phrase limit may be refused at a different part (the limit counts bytes as
/// they arrive, so a bigger chunk trips it sooner): those are exempt.
fn assert_same(a: &Outcome, b: &Outcome, what: &str) {
    let too_large = |o: &Outcome| matches!(o.1, Err(MjpegError::PhraseTooLarge(_)));
    if too_large(a) || too_large(b) {
        return;
    }
    assert_eq!(a.0, b.0, "the parts depend on {what}");
    assert_eq!(a.1.as_ref().map_err(discriminant), b.1.as_ref().map_err(discriminant), "the ending depends on {what}: {:?} vs {:?}", a.1, b.1);
}

/// Reads every part of `input` (whose bytes, as the client sent them, are `body`), checking each.
fn parse<S>(input: S, boundary: &str, body: &[u8], limits: Limits) -> Outcome
where
    S: Stream<Item = Result<Bytes, String>> + Send + Unpin + 'static,
{
    let mut stream = MjpegStream::new(input, boundary.to_owned(), limits);
    run(
        async {
            let mut parts = Vec::new();
            let mut handed_out = 0u64;
            let end = loop {
                match stream.next_part().await {
                    Ok(Some(part)) => {
                        let data: &[u8] = match &part {
                            Part::Frame { bytes, .. } => bytes,
                            Part::Signal { text, .. } => text.as_bytes(),
                        };
                        assert!(data.len() as u64 <= limits.max_part_bytes, "a part of {} bytes passed the {limits:?}", data.len());
                        if parts.len() < PARTS_LOOKED_FOR {
                            assert!(memchr::memmem::find(body, data).is_some(), "a part's bytes are not in the body: {part:?}");
                        }
                        if let Part::Frame { timestamp: Some(t), .. } = &part {
                            assert!(t.is_finite(), "a frame with timestamp {t}");
                        }
                        assert!(stream.saw_delimiter(), "a part from a body without a delimiter: {part:?}");
                        handed_out += data.len() as u64;
                        parts.push(part);
                    }
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e),
                }
            };
            assert!(handed_out <= body.len() as u64, "{handed_out} bytes of parts from a body of {}", body.len());
            assert!(handed_out <= stream.bytes_read(), "{handed_out} bytes handed out, {} counted", stream.bytes_read());
            assert!(stream.bytes_read() <= body.len() as u64, "{} bytes counted of a body of {}", stream.bytes_read(), body.len());
            assert!(handed_out <= limits.max_phrase_bytes, "{handed_out} bytes of parts passed the {limits:?}");
            (parts, end)
        },
        poll_budget(body.len()),
    )
}

/// Drains a peeked body back into bytes (stopping at its error, if any).
fn drain<E>(body: PeekedBody<E>, budget: usize) -> (Vec<u8>, bool) {
    run(
        async move {
            let mut body = body;
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                match chunk {
                    Ok(chunk) => bytes.extend_from_slice(&chunk),
                    Err(_) => return (bytes, true),
                }
            }
            (bytes, false)
        },
        budget,
    )
}

/// Settles the boundary of a body declared with `content_type`, then parses it.
fn check_settled(content_type: &str, body: &[u8], sizes: &[(usize, bool)], fails: bool, limits: Limits) {
    let budget = poll_budget(body.len());
    let settled = run(settle_boundary(content_type, chunked(body, sizes, fails)), budget);
    let declared = boundary_from_content_type(content_type);
    let (boundary, peeked) = match settled {
        Err(e) => {
            assert_eq!(Err(e), declared.map(|_| ()), "settle_boundary and boundary_from_content_type disagree on {content_type:?}");
            return;
        }
        Ok(settled) => settled,
    };
    let declared = declared.unwrap_or_else(|e| panic!("settled {boundary:?} from {content_type:?}, which has none: {e}"));
    assert!(
        boundary == declared || boundary == format!("--{declared}"),
        "settled {boundary:?} from {content_type:?} (declared {declared:?})"
    );
    // The bytes read to settle it are all put back, in order.
    let (back, failed) = drain(peeked, budget);
    assert_eq!(back, body, "settle_boundary lost or changed bytes");
    assert_eq!(failed, fails, "settle_boundary lost the body's error");
    let (again, peeked) = run(settle_boundary(content_type, chunked(body, sizes, fails)), budget).expect("settled once");
    assert_eq!(again, boundary, "settle_boundary is not deterministic");
    let outcome = parse(peeked, &boundary, body, limits);
    if !fails {
        // Chunked the same as a body read without settling.
        let direct = parse(chunked(body, sizes, false), &boundary, body, limits);
        assert_same(&outcome, &direct, "settling the boundary first");
    }
}

/// Sniffs the boundary from the body's first line, then parses it.
fn check_sniffed(body: &[u8], sizes: &[(usize, bool)], fails: bool, limits: Limits) {
    let budget = poll_budget(body.len());
    let sniffed = run(sniff_boundary(chunked(body, sizes, fails)), budget);
    let whole = run(sniff_boundary(chunked(body, &[], fails)), budget);
    let (boundary, peeked) = match sniffed {
        Err(e) => {
            if !fails {
                assert_eq!(Some(e), whole.err(), "sniff_boundary depends on the chunking ({sizes:?})");
            }
            return;
        }
        Ok(sniffed) => sniffed,
    };
    if !fails {
        assert_eq!(whole.as_ref().map(|w| w.0.as_str()).ok(), Some(boundary.as_str()), "sniff_boundary depends on the chunking ({sizes:?})");
    }
    assert!((1..=70).contains(&boundary.len()), "sniffed a boundary of {} bytes", boundary.len());
    let start = body.iter().position(|b| *b != b'\r' && *b != b'\n').unwrap_or(body.len());
    assert!(body[start..].starts_with(format!("--{boundary}").as_bytes()), "sniffed {boundary:?}, not the first line");
    let (back, failed) = drain(peeked, budget);
    assert_eq!(back, body, "sniff_boundary lost or changed bytes");
    assert_eq!(failed, fails, "sniff_boundary lost the body's error");
    let (_, peeked) = run(sniff_boundary(chunked(body, sizes, fails)), budget).expect("sniffed once");
    let outcome = parse(peeked, &boundary, body, limits);
    if !fails {
        let direct = parse(chunked(body, sizes, false), &boundary, body, limits);
        assert_same(&outcome, &direct, "sniffing the boundary first");
    }
}
