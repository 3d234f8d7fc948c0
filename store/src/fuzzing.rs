//! The invariants the `session_reload` fuzz target checks, here so that the stable-toolchain
//! test over the kept corpus (`tests/fuzz_corpus.rs`) checks exactly the same ones. Not an API:
//! each function panics when an invariant fails.
//!
//! One input is laid out as:
//! - byte 0, which files exist besides the index: bit 0 `signal.txt`, bit 1
//!   `analysis_result.json`, bit 2 `upload.complete`, bit 3 no `frames.mjpeg`, bit 4 no
//!   `frames.idx`;
//! - bytes 1–2: the length of `frames.mjpeg` (little-endian, cut to what the input has), then
//!   its bytes;
//! - with bit 0, one length byte and the log's bytes; with bit 1, one length byte and the
//!   answer's bytes;
//! - the rest: `frames.idx`.

use std::path::{Path, PathBuf};

use crate::{stored_frame_count, stored_result, FrameReader, FrameRecord, FrameStore, FRAMES, INDEX, RESULT, SIGNAL, UPLOAD_COMPLETE};

/// The frame appended after the reload.
const NEW_FRAME: &[u8] = b"\xFF\xD8fuzz\xFF\xD9";

/// What one input writes into the session's directory.
struct Files<'a> {
    frames: Option<&'a [u8]>,
    index: Option<&'a [u8]>,
    signal: Option<&'a [u8]>,
    result: Option<&'a [u8]>,
    upload_complete: bool,
}

/// Splits an input into its files (see the module's documentation).
fn files(data: &[u8]) -> Files<'_> {
    let mut rest = data;
    let mut take = |n: usize| {
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        head
    };
    let flags = take(1).first().copied().unwrap_or(0);
    let len = take(2);
    let frames_len = usize::from(len.first().copied().unwrap_or(0)) | usize::from(len.get(1).copied().unwrap_or(0)) << 8;
    let frames = take(frames_len);
    let mut optional = |bit: u8| {
        (flags & bit != 0).then(|| {
            let n = take(1).first().copied().unwrap_or(0);
            take(usize::from(n))
        })
    };
    let signal = optional(1);
    let result = optional(2);
    Files {
        frames: (flags & 8 == 0).then_some(frames),
        index: (flags & 16 == 0).then_some(rest),
        signal,
        result,
        upload_complete: flags & 4 != 0,
    }
}

/// A directory of this process and thread, emptied.
fn fresh_dir() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let dir = std::env::temp_dir().join(format!("referee-store-fuzz-{}-{thread}", std::process::id()));
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("cannot empty {}: {e}", dir.display()),
        _ => {}
    }
    std::fs::create_dir_all(&dir).expect("a fresh directory");
    dir
}

/// Checks one fuzz input: the files it lays out, reloaded as a restarted server reloads them.
pub fn check_input(data: &[u8]) {
    let files = files(data);
    let dir = fresh_dir();
    check_reload(&dir, &files);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lines of the index as it was written, each parsed (`None`: not a record).
fn written_records(index: &[u8]) -> Vec<Option<FrameRecord>> {
    index
        .split_inclusive(|&b| b == b'\n')
        .map(|line| std::str::from_utf8(line).ok().and_then(|l| serde_json::from_str(l.trim_end_matches(['\n', '\r'])).ok()))
        .collect()
}

fn check_reload(dir: &Path, files: &Files<'_>) {
    let write = |name: &str, bytes: Option<&[u8]>| {
        if let Some(bytes) = bytes {
            std::fs::write(dir.join(name), bytes).expect("write a session file");
        }
    };
    write(FRAMES, files.frames);
    write(INDEX, files.index);
    write(SIGNAL, files.signal);
    write(RESULT, files.result);
    write(UPLOAD_COMPLETE, files.upload_complete.then_some(&b""[..]));

    let (mut store, stored) = FrameStore::open(dir).expect("a session's files always reopen");
    let frames_file = files.frames.unwrap_or_default();

    // Every record names bytes that are in the frames file, and reads back as those bytes.
    let mut reader = FrameReader::open(dir).expect("the frames file exists after open");
    for r in &stored.frames {
        let end = r.offset.checked_add(r.length).expect("a record whose end overflows");
        assert!(end <= frames_file.len() as u64, "record {r:?} past the {} bytes of frames", frames_file.len());
        let bytes = reader.read(r).expect("a kept record reads back");
        assert_eq!(bytes, &frames_file[r.offset as usize..end as usize], "record {r:?} read other bytes");
    }

    // The frames kept are the longest run of the index's first lines that are records of bytes
    // on disk; the first line after them is not one.
    let written = written_records(files.index.unwrap_or_default());
    for (i, r) in stored.frames.iter().enumerate() {
        assert_eq!(written.get(i).copied().flatten().as_ref(), Some(r), "kept frame {i} is not the index's line {i}");
    }
    if let Some(next) = written.get(stored.frames.len()) {
        let whole = next.is_some_and(|r| r.offset.checked_add(r.length).is_some_and(|end| end <= frames_file.len() as u64));
        assert!(!whole, "line {} of the index was a good record, but was cut: {next:?}", stored.frames.len());
    }
    // Repaired: lines were cut, or the last line kept had lost its newline.
    let index = files.index.unwrap_or_default();
    let rewritten = written.len() != stored.frames.len() || !(index.is_empty() || index.ends_with(b"\n"));
    assert_eq!(stored.repaired, rewritten, "repaired {}, yet the index needed {}", stored.repaired, rewritten);

    // The other files, as written.
    let utf8 = files.signal.and_then(|s| std::str::from_utf8(s).ok());
    assert_eq!(stored.signal.as_deref(), utf8, "the log read back");
    let json = files.result.and_then(|r| serde_json::from_slice::<serde_json::Value>(r).ok());
    assert_eq!(stored.result, json, "the answer read back");
    assert_eq!(stored_result(dir), json, "stored_result");
    assert_eq!(stored.upload_complete, files.upload_complete, "upload.complete");

    // The listing counts what a reload keeps, and a second reload keeps it all, unrepaired.
    assert_eq!(stored_frame_count(dir), stored.frames.len(), "stored_frame_count after a reload");
    drop(store);
    let (again_store, again) = FrameStore::open(dir).expect("reopen");
    assert_eq!(again.frames, stored.frames, "a second reload kept other frames");
    assert!(!again.repaired, "a repaired index needed repairing again");
    store = again_store;

    // A frame appended after the reload comes back after the old ones.
    let next_index = stored.frames.last().map_or(0, |r| r.index.saturating_add(1));
    let record = store.append(next_index, Some(0.5), NEW_FRAME).expect("append");
    assert_eq!(record.offset, frames_file.len() as u64, "a new frame starts after every stored byte");
    store.flush();
    drop(store);
    let (store, after) = FrameStore::open(dir).expect("reopen after append");
    assert!(!after.repaired, "an append left the index torn");
    let mut expected = stored.frames.clone();
    expected.push(record);
    assert_eq!(after.frames, expected, "old frames plus the new one");
    assert_eq!(stored_frame_count(dir), expected.len(), "stored_frame_count after an append");
    let mut reader = FrameReader::open(dir).expect("frames");
    assert_eq!(reader.read(&record).expect("read the new frame"), NEW_FRAME);
    for r in &stored.frames {
        assert_eq!(reader.read(r).expect("read an old frame"), &frames_file[r.offset as usize..(r.offset + r.length) as usize]);
    }

    // The log and the upload mark, saved through the store, are what a reload sees.
    store.save_signal("fuzz log").expect("save the log");
    store.mark_upload_complete(!files.upload_complete).expect("mark the upload");
    drop(store);
    let (_, last) = FrameStore::open(dir).expect("reopen after saving the log");
    assert_eq!(last.signal.as_deref(), Some("fuzz log"));
    assert_eq!(last.upload_complete, !files.upload_complete);
    assert_eq!(last.frames, expected);
}
