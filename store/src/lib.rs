//! A session's files: the frames as they arrived (`frames.mjpeg`, JPEGs back to back), their
//! index (`frames.idx`, one JSON line per frame: index, offset, length, timestamp), the log
//! (`signal.txt`), the mark of a whole upload (`upload.complete`), the client's choices for the
//! phrase (`choices.json`), the answer (`analysis_result.json`) and the referee's own call
//! (`referee_call.json`, never written into the log). The files are the source of truth: a
//! session is rebuilt from them after a restart, and an index line torn by a crash is cut away,
//! with the frames before it kept.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

#[doc(hidden)]
pub mod fuzzing;

/// The frames, back to back.
pub const FRAMES: &str = "frames.mjpeg";
/// One line per stored frame.
pub const INDEX: &str = "frames.idx";
/// The scoring-box log.
pub const SIGNAL: &str = "signal.txt";
/// Present once an upload of the session ended cleanly (all frames are in).
pub const UPLOAD_COMPLETE: &str = "upload.complete";
/// The answer, once decided.
pub const RESULT: &str = "analysis_result.json";
/// What the phrase's first upload chose (engine, frame rate), for deciding it again later.
pub const CHOICES: &str = "choices.json";
/// The referee's own call on the phrase (`PUT /sessions/{id}/call`), beside the log, not in it.
pub const REFEREE_CALL: &str = "referee_call.json";

/// What a phrase's first upload chose, kept beside its frames so that a phrase decided after a
/// restart or a failure is decided as its client asked, not by the server's defaults of the day.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhraseChoices {
    /// The engine whose call is the answer's `decision` (`legacy`, `v2`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// The phrase's frame rate (`?fps=`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fps: Option<f64>,
}

impl PhraseChoices {
    /// The choices stored in `dir`: `None` when there are none (or they cannot be read: a
    /// phrase from before they were kept is decided with the server's defaults).
    pub fn read(dir: &Path) -> Option<PhraseChoices> {
        std::fs::read(dir.join(CHOICES)).ok().and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Stores them in `dir`, atomically.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).expect("choices always serialise");
        write_durably(&dir.join(CHOICES), &json)
    }
}

/// A referee's call on a phrase: the touch to the left or the right fencer, or no touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Call {
    /// Touch to the left fencer.
    #[serde(rename = "left")]
    Left,
    /// Touch to the right fencer.
    #[serde(rename = "right")]
    Right,
    /// No touch given.
    #[serde(rename = "none")]
    NoTouch,
}

/// A text that is not a call (`left`, `right` or `none`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownCall(pub String);

impl std::fmt::Display for UnknownCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} is not a call: send left, right or none", self.0)
    }
}

impl std::error::Error for UnknownCall {}

impl Call {
    /// Reads `left`, `right` or `none`, whitespace around it and case ignored.
    pub fn parse(text: &str) -> Result<Call, UnknownCall> {
        match text.trim().to_ascii_lowercase().as_str() {
            "left" => Ok(Call::Left),
            "right" => Ok(Call::Right),
            "none" => Ok(Call::NoTouch),
            _ => Err(UnknownCall(text.trim().chars().take(32).collect())),
        }
    }

    /// Its name: `left`, `right` or `none`.
    pub fn name(self) -> &'static str {
        match self {
            Call::Left => "left",
            Call::Right => "right",
            Call::NoTouch => "none",
        }
    }

    /// The fencer it gives the touch to (`left`, `right`), none for no touch.
    pub fn winner(self) -> Option<&'static str> {
        (self != Call::NoTouch).then(|| self.name())
    }
}

/// The referee's call as stored in a session's directory ([`REFEREE_CALL`]):
/// `{"call": "left", "at": "2026-12-06T20:58:49Z"}`. A new call replaces the old one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefereeCall {
    /// The call.
    pub call: Call,
    /// When it was given (RFC 3339, UTC).
    pub at: String,
}

impl RefereeCall {
    /// The call stored in `dir`: `Ok(None)` when none was given; an error when the file cannot
    /// be read or is not a call (`InvalidData`).
    pub fn read(dir: &Path) -> std::io::Result<Option<RefereeCall>> {
        match std::fs::read(dir.join(REFEREE_CALL)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not a call: {e}", REFEREE_CALL))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores it in `dir`, durably, in place of any call before.
    pub fn save(&self, dir: &Path) -> std::io::Result<()> {
        let json = serde_json::to_vec(self).expect("a call always serialises");
        write_durably(&dir.join(REFEREE_CALL), &json)
    }
}

/// One stored frame.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FrameRecord {
    /// The frame's index in the phrase (the sender's `X-Frame-Index`, or the next one).
    pub index: u64,
    /// Where its bytes start in `frames.mjpeg`.
    pub offset: u64,
    /// How many bytes it has.
    pub length: u64,
    /// Its presentation time in seconds, when the sender gave one.
    pub timestamp: Option<f64>,
}

/// What a session's directory held when it was opened.
#[derive(Debug)]
pub struct Stored {
    /// The frames whose bytes are all on disk, in order.
    pub frames: Vec<FrameRecord>,
    /// Whether a torn index was cut back to its whole lines.
    pub repaired: bool,
    /// The log, if one was stored.
    pub signal: Option<String>,
    /// The answer, if the phrase was decided.
    pub result: Option<Value>,
    /// Whether an upload ended cleanly.
    pub upload_complete: bool,
}

/// The appending side of a session's frames. Its two files are open only while frames come:
/// [`FrameStore::close`] lets them go (a phrase nobody uploads to holds no file), and the next
/// append opens them again.
#[derive(Debug)]
pub struct FrameStore {
    dir: PathBuf,
    files: Option<AppendFiles>,
    end: u64,
}

/// The frames and the index, open for appending.
#[derive(Debug)]
struct AppendFiles {
    frames: File,
    index: File,
}

impl AppendFiles {
    fn open(dir: &Path) -> std::io::Result<AppendFiles> {
        Ok(AppendFiles {
            frames: OpenOptions::new().create(true).append(true).open(dir.join(FRAMES))?,
            index: OpenOptions::new().create(true).append(true).open(dir.join(INDEX))?,
        })
    }
}

impl FrameStore {
    /// Opens (creating) the directory's files and reads what they hold; a torn index line (a
    /// crash mid-write, a full disk) and any frame whose bytes are not all there are cut away, and
    /// the index rewritten whole, so that appends go on cleanly.
    pub fn open(dir: &Path) -> std::io::Result<(FrameStore, Stored)> {
        std::fs::create_dir_all(dir)?;
        let stored_bytes = OpenOptions::new().create(true).append(true).open(dir.join(FRAMES))?.metadata()?.len();
        let index_path = dir.join(INDEX);
        let mut frames: Vec<FrameRecord> = Vec::new();
        let mut repaired = false;
        if let Ok(index) = std::fs::read(&index_path) {
            for line in index.split_inclusive(|&b| b == b'\n') {
                let record = std::str::from_utf8(line).ok().and_then(|l| serde_json::from_str::<FrameRecord>(l).ok());
                match record {
                    Some(r) if r.offset.checked_add(r.length).is_some_and(|end| end <= stored_bytes) => {
                        frames.push(r);
                        // A whole record that lost only its newline (a crash between the two):
                        // kept, and the index rewritten, or the next append would join its line.
                        repaired |= !line.ends_with(b"\n");
                    }
                    _ => {
                        repaired = true;
                        break;
                    }
                }
            }
        }
        if repaired {
            let mut text = String::new();
            for r in &frames {
                text.push_str(&record_line(r));
            }
            let part = dir.join("frames.idx.part");
            std::fs::write(&part, text)?;
            std::fs::rename(&part, &index_path)?;
        }
        let stored = Stored {
            frames,
            repaired,
            signal: std::fs::read_to_string(dir.join(SIGNAL)).ok(),
            result: std::fs::read(dir.join(RESULT)).ok().and_then(|b| serde_json::from_slice(&b).ok()),
            upload_complete: dir.join(UPLOAD_COMPLETE).is_file(),
        };
        // The files are opened for appending by the first append (after any repair: the
        // rewritten index is a new file); a session only looked at holds none.
        let store = FrameStore { dir: dir.to_owned(), files: None, end: stored_bytes };
        Ok((store, stored))
    }

    /// Appends one frame's bytes, then its index line; returns its record. When a write fails
    /// (a full disk), what was stored before stays readable: the index only ever names bytes
    /// that are on disk.
    pub fn append(&mut self, index: u64, timestamp: Option<f64>, jpeg: &[u8]) -> std::io::Result<FrameRecord> {
        let files = match self.files.as_mut() {
            Some(files) => files,
            None => {
                let files = AppendFiles::open(&self.dir)?;
                // Bytes a failed write left past the last indexed frame stay where they are.
                self.end = self.end.max(files.frames.metadata()?.len());
                self.files.insert(files)
            }
        };
        let offset = self.end;
        if let Err(e) = files.frames.write_all(jpeg) {
            // Whatever part of the frame got out is past every indexed byte; the next frame starts
            // after it.
            self.end = files.frames.seek(SeekFrom::End(0)).unwrap_or(self.end);
            return Err(e);
        }
        self.end = offset + jpeg.len() as u64;
        let record = FrameRecord { index, offset, length: jpeg.len() as u64, timestamp };
        files.index.write_all(record_line(&record).as_bytes())?;
        Ok(record)
    }

    /// Makes what is stored durable: both files' bytes on the disk, and the directory's entries
    /// (the files themselves, a rewritten index), so that a power cut keeps every frame the
    /// index names. Called when an upload ends; costs one sync of each.
    pub fn sync(&mut self) -> std::io::Result<()> {
        if let Some(files) = self.files.as_mut() {
            files.frames.sync_data()?;
            files.index.sync_data()?;
        }
        sync_dir(&self.dir)
    }

    /// Pushes both files' buffered bytes to the operating system.
    pub fn flush(&mut self) {
        if let Some(files) = self.files.as_mut() {
            let _ = files.frames.flush();
            let _ = files.index.flush();
        }
    }

    /// Lets both files go until the next append (an upload ended or was cut).
    pub fn close(&mut self) {
        self.flush();
        self.files = None;
    }

    /// Whether its files are open now.
    pub fn is_open(&self) -> bool {
        self.files.is_some()
    }

    /// Marks (or unmarks) the upload as whole.
    pub fn mark_upload_complete(&self, complete: bool) -> std::io::Result<()> {
        let path = self.dir.join(UPLOAD_COMPLETE);
        if complete {
            std::fs::write(path, b"")?;
            sync_dir(&self.dir)
        } else {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }

    /// Stores the log, durably.
    pub fn save_signal(&self, text: &str) -> std::io::Result<()> {
        write_durably(&self.dir.join(SIGNAL), text.as_bytes())
    }
}

fn record_line(record: &FrameRecord) -> String {
    let mut line = serde_json::to_string(record).expect("a frame record always serialises");
    line.push('\n');
    line
}

/// Reads stored frames back.
#[derive(Debug)]
pub struct FrameReader {
    file: File,
}

impl FrameReader {
    /// Opens the directory's frames for reading.
    pub fn open(dir: &Path) -> std::io::Result<FrameReader> {
        Ok(FrameReader { file: File::open(dir.join(FRAMES))? })
    }

    /// One frame's bytes; an error is a storage failure (never a corrupt frame).
    pub fn read(&mut self, record: &FrameRecord) -> std::io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; record.length as usize];
        self.file.seek(SeekFrom::Start(record.offset))?;
        self.file.read_exact(&mut bytes)?;
        Ok(bytes)
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a reader never sees a
/// half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// [`write_atomically`], and durably: the new bytes are synced before the rename and the
/// directory after it, so that after a power cut the file is the old one or the new one, whole.
/// For what must outlive a crash of the machine (a verdict, a log, a phrase's choices).
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

/// Syncs a directory's entries (files created, renamed or removed in it) to the disk.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The number of whole lines of a directory's index (for listing without opening).
pub fn stored_frame_count(dir: &Path) -> usize {
    std::fs::read(dir.join(INDEX)).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0)
}

/// The frames a directory's index names, read without changing anything (no repair: an
/// exporter may read a session a server is writing): every whole record up to the first line
/// that is not one.
pub fn read_index(dir: &Path) -> std::io::Result<Vec<FrameRecord>> {
    let index = std::fs::read(dir.join(INDEX))?;
    Ok(index
        .split_inclusive(|&b| b == b'\n')
        .map_while(|line| line.ends_with(b"\n").then(|| serde_json::from_slice::<FrameRecord>(line).ok()).flatten())
        .collect())
}

/// The answer stored in a directory, if any.
pub fn stored_result(dir: &Path) -> Option<Value> {
    std::fs::read(dir.join(RESULT)).ok().and_then(|b| serde_json::from_slice(&b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_are_kept_and_read_back() {
        let dir = std::env::temp_dir().join(format!("referee-store-choices-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(PhraseChoices::read(&dir), None, "none stored yet");
        let chosen = PhraseChoices { engine: Some("v2".into()), fps: Some(30.0) };
        chosen.save(&dir).unwrap();
        assert_eq!(PhraseChoices::read(&dir), Some(chosen));
        std::fs::write(dir.join(CHOICES), b"{\"engine\": \"v2\"").unwrap();
        assert_eq!(PhraseChoices::read(&dir), None, "a torn file is no choice");
        PhraseChoices::default().save(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(CHOICES)).unwrap(), "{}");
        std::fs::remove_dir_all(&dir).unwrap();
    }


    #[test]
    fn a_call_is_parsed_kept_replaced_and_read_back() {
        assert_eq!(Call::parse(" Left\n"), Ok(Call::Left));
        assert_eq!(Call::parse("RIGHT"), Ok(Call::Right));
        assert_eq!(Call::parse("none"), Ok(Call::NoTouch));
        for bad in ["", "lefty", "no touch", "1"] {
            assert!(Call::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Call::parse("middle").unwrap_err().to_string().contains("left, right or none"));
        assert_eq!((Call::Left.winner(), Call::NoTouch.winner()), (Some("left"), None));
        let dir = std::env::temp_dir().join(format!("referee-store-call-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(RefereeCall::read(&dir).unwrap(), None, "none given yet");
        let first = RefereeCall { call: Call::Right, at: "2026-12-06T20:00:00Z".into() };
        first.save(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join(REFEREE_CALL)).unwrap(), r#"{"call":"right","at":"2026-12-06T20:00:00Z"}"#);
        let second = RefereeCall { call: Call::NoTouch, at: "2026-12-06T20:00:05Z".into() };
        second.save(&dir).unwrap();
        assert_eq!(RefereeCall::read(&dir).unwrap(), Some(second), "a second call replaces the first");
        assert!(!dir.join(SIGNAL).exists(), "the call is never written into the log");
        std::fs::write(dir.join(REFEREE_CALL), b"{\"call\": \"up\"}").unwrap();
        assert_eq!(RefereeCall::read(&dir).unwrap_err().kind(), std::io::ErrorKind::InvalidData);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_index_is_read_without_repairing_it() {
        let dir = std::env::temp_dir().join(format!("referee-store-read-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let torn = "{\"index\":0,\"offset\":0,\"length\":4,\"timestamp\":0.0}\n{\"index\":1,\"offset\":4,\"length\":4,\"timestamp\":null}\n{\"index\":2,\"off";
        std::fs::write(dir.join(INDEX), torn).unwrap();
        let frames = read_index(&dir).unwrap();
        assert_eq!(frames.iter().map(|r| (r.index, r.timestamp)).collect::<Vec<_>>(), [(0, Some(0.0)), (1, None)]);
        assert_eq!(std::fs::read_to_string(dir.join(INDEX)).unwrap(), torn, "left as it was");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read_index(&dir).is_err(), "no index is an error");
    }

    #[test]
    fn a_closed_store_holds_no_file_and_the_next_append_opens_them_again() {
        let dir = std::env::temp_dir().join(format!("referee-store-close-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut store, _) = FrameStore::open(&dir).unwrap();
        store.append(0, Some(0.0), b"AAAA").unwrap();
        store.close();
        assert!(!store.is_open());
        let second = store.append(1, None, b"BB").unwrap();
        assert!(store.is_open());
        assert_eq!((second.offset, second.length), (4, 2), "appends go on where the frames end");
        store.close();
        let (_, stored) = FrameStore::open(&dir).unwrap();
        assert_eq!(stored.frames.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(std::fs::read(dir.join(FRAMES)).unwrap(), b"AAAABB");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_index_is_cut_to_its_whole_lines_and_appends_go_on() {
        let dir = std::env::temp_dir().join(format!("ai-referee-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Two whole frames, a third whose bytes were cut off, and a torn line after them.
        std::fs::write(dir.join(FRAMES), b"AAAABBBBCC").unwrap();
        let records = "{\"index\":0,\"offset\":0,\"length\":4,\"timestamp\":0.0}\n\
                       {\"index\":1,\"offset\":4,\"length\":4,\"timestamp\":null}\n\
                       {\"index\":2,\"offset\":8,\"length\":4,\"timestamp\":0.1}\n{\"index\":3,\"off";
        std::fs::write(dir.join(INDEX), records).unwrap();
        let (mut store, stored) = FrameStore::open(&dir).unwrap();
        assert!(stored.repaired);
        assert_eq!(stored.frames.len(), 2);
        // The cut-off bytes of frame 2 stay in the file; a new frame goes after them.
        let r = store.append(2, Some(0.2), b"CCCC").unwrap();
        assert_eq!((r.offset, r.length), (10, 4));
        store.flush();
        drop(store);
        let (_, again) = FrameStore::open(&dir).unwrap();
        assert!(!again.repaired);
        assert_eq!(again.frames.len(), 3);
        let mut reader = FrameReader::open(&dir).unwrap();
        assert_eq!(reader.read(&again.frames[2]).unwrap(), b"CCCC");
        assert_eq!(reader.read(&again.frames[0]).unwrap(), b"AAAA");
        assert_eq!(stored_frame_count(&dir), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_last_line_that_lost_only_its_newline_is_kept_and_appends_go_on() {
        // Fuzzing (session_reload): an index whose last record lacked its newline was read as
        // whole and left as it was, so the next append joined that line; the reload after it cut
        // both frames, and stored_frame_count counted one frame fewer than a reload kept.
        let dir = std::env::temp_dir().join(format!("ai-referee-store-newline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FRAMES), b"AAAABBBB").unwrap();
        let records = "{\"index\":0,\"offset\":0,\"length\":4,\"timestamp\":0.0}\n\
                       {\"index\":1,\"offset\":4,\"length\":4,\"timestamp\":null}";
        std::fs::write(dir.join(INDEX), records).unwrap();
        let (mut store, stored) = FrameStore::open(&dir).unwrap();
        assert!(stored.repaired);
        assert_eq!(stored.frames.len(), 2);
        assert_eq!(stored_frame_count(&dir), 2);
        store.append(2, None, b"CCCC").unwrap();
        store.flush();
        drop(store);
        let (_, again) = FrameStore::open(&dir).unwrap();
        assert!(!again.repaired);
        assert_eq!(again.frames.iter().map(|r| r.index).collect::<Vec<_>>(), [0, 1, 2]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_index_line_naming_bytes_past_the_end_is_cut() {
        let dir = std::env::temp_dir().join(format!("ai-referee-store-overflow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FRAMES), b"AAAA").unwrap();
        let line = format!("{{\"index\":0,\"offset\":{},\"length\":4,\"timestamp\":null}}\n", u64::MAX - 1);
        std::fs::write(dir.join(INDEX), line).unwrap();
        let (_, stored) = FrameStore::open(&dir).unwrap();
        assert!(stored.repaired && stored.frames.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
