//! `--signal-live`: the scoring-box log followed as the recorder writes it, as `tail -f` does.
//! The file may not exist yet; once it does, what is appended is read every [`POLL`] and each
//! new complete line goes out as soon as it is read (a partial last line waits for its newline).
//! Following stops at the phrase's end ([`PhraseEnd`]): the lines after it (interpretation, the
//! operator's confirmation, upload lines) never change the call.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;

/// How often the followed file is looked at when nothing new was in it.
pub const POLL: Duration = Duration::from_millis(50);

/// Spots the phrase's end in a log read line by line: a line containing `Phrase ended`, or a line
/// containing `Scores ->` after one containing `Phrase recording ended`.
#[derive(Debug, Default, Clone)]
pub struct PhraseEnd {
    recording_ended: bool,
}

impl PhraseEnd {
    /// Takes the log's next line; true when this line ends the phrase.
    pub fn ends_with(&mut self, line: &[u8]) -> bool {
        let has = |phrase: &str| line.windows(phrase.len()).any(|w| w == phrase.as_bytes());
        if has("Phrase ended") || (self.recording_ended && has("Scores ->")) {
            return true;
        }
        self.recording_ended |= has("Phrase recording ended");
        false
    }

    /// The lines of `batch` (whole lines) up to and including the one that ends the phrase, and
    /// whether one did; the whole batch when none does.
    pub fn take<'a>(&mut self, batch: &'a [u8]) -> (&'a [u8], bool) {
        let mut start = 0;
        for line in batch.split_inclusive(|b| *b == b'\n') {
            start += line.len();
            if self.ends_with(line) {
                return (&batch[..start], true);
            }
        }
        (batch, false)
    }
}

/// Reads what is appended to a file, in whole lines.
#[derive(Debug)]
pub struct LineFollower {
    path: PathBuf,
    file: Option<File>,
    /// Bytes read from the file so far.
    offset: u64,
    /// The last line read, still without its newline.
    partial: Vec<u8>,
}

impl LineFollower {
    /// Follows `path`, which need not exist yet.
    pub fn new(path: &Path) -> LineFollower {
        LineFollower { path: path.to_owned(), file: None, offset: 0, partial: Vec::new() }
    }

    /// The complete lines appended since the last call, newlines included: empty when there are
    /// none yet (or no file yet). A partial last line is held back until its newline is written.
    pub fn poll(&mut self) -> std::io::Result<Vec<u8>> {
        if self.file.is_none() {
            match File::open(&self.path) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(e) => return Err(e),
            }
        }
        let file = self.file.as_mut().expect("opened above");
        if file.metadata()?.len() < self.offset {
            return Err(std::io::Error::other("the file shrank while it was followed (rewritten, not appended to)"));
        }
        let read = file.read_to_end(&mut self.partial)?;
        self.offset += read as u64;
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Ok(Vec::new());
        };
        let rest = self.partial.split_off(last_newline + 1);
        Ok(std::mem::replace(&mut self.partial, rest))
    }
}

/// A followed log as far as it has been read.
#[derive(Debug, Clone, Default)]
pub struct LiveLog {
    /// Every complete line read so far, in order, up to the phrase's end.
    pub text: Bytes,
    /// The phrase's end is in `text`: nothing will be added.
    pub ended: bool,
    /// Why following stopped before the phrase's end.
    pub failure: Option<String>,
}

impl LiveLog {
    /// Whether the log will not change any more (ended, or failed).
    pub fn settled(&self) -> bool {
        self.ended || self.failure.is_some()
    }
}

/// Starts following `path` on its own thread; the receiver holds the log as far as it is read.
/// The thread ends at the phrase's end, on an error, or once every receiver is gone.
pub fn follow(path: PathBuf) -> watch::Receiver<LiveLog> {
    let (tx, rx) = watch::channel(LiveLog::default());
    let spawned = std::thread::Builder::new().name("signal-live".into()).spawn({
        let tx = tx.clone();
        move || run(&path, &tx)
    });
    if let Err(e) = spawned {
        tx.send_modify(|log| log.failure = Some(format!("cannot start following the log: {e}")));
    }
    rx
}

fn run(path: &Path, tx: &watch::Sender<LiveLog>) {
    let mut follower = LineFollower::new(path);
    let mut end = PhraseEnd::default();
    let mut text = Vec::new();
    while !tx.is_closed() {
        match follower.poll() {
            Ok(batch) if !batch.is_empty() => {
                let (kept, ended) = end.take(&batch);
                text.extend_from_slice(kept);
                let now = Bytes::copy_from_slice(&text);
                tx.send_modify(|log| {
                    log.text = now;
                    log.ended = ended;
                });
                if ended {
                    return;
                }
            }
            Ok(_) => std::thread::sleep(POLL),
            Err(e) => {
                let why = format!("cannot follow the log {}: {e}", path.display());
                tx.send_modify(|log| log.failure = Some(why));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("referee-client-live-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("phrase.txt")
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn the_phrase_ends_at_phrase_ended_or_at_scores_after_the_recording_ended() {
        let mut end = PhraseEnd::default();
        assert!(!end.ends_with(b" 0.000s | Phrase recording started\n"));
        assert!(!end.ends_with(b"Scores -> Fencer 1: HIT, Fencer 2: MISS\n"), "scores before the recording ended");
        assert!(!end.ends_with(b" 1.223s | HIT: Left scores on Right!\n"));
        assert!(!end.ends_with(b" 1.423s | Phrase recording ended\n"), "the recording's end is not the phrase's end");
        assert!(end.ends_with(b"Scores -> Fencer 1: HIT, Fencer 2: HIT\n"));
        assert!(PhraseEnd::default().ends_with(b"Phrase ended\n"));
        assert!(!PhraseEnd::default().ends_with(b"Phrase end\n"));
    }

    #[test]
    fn a_batch_is_cut_after_the_line_that_ends_the_phrase() {
        let mut end = PhraseEnd::default();
        let log = b"0.1s | Phrase recording ended\nScores -> Fencer 1: HIT, Fencer 2: HIT\nPhrase ended\nConfirmed\n";
        let (kept, ended) = end.take(log);
        assert!(ended);
        assert_eq!(kept, b"0.1s | Phrase recording ended\nScores -> Fencer 1: HIT, Fencer 2: HIT\n");
        let mut end = PhraseEnd::default();
        assert_eq!(end.take(b"a\nb\n"), (&b"a\nb\n"[..], false));
        // The state carries over batches.
        assert_eq!(end.take(b"x | Phrase recording ended\n"), (&b"x | Phrase recording ended\n"[..], false));
        assert_eq!(end.take(b"Scores -> 1\nmore\n"), (&b"Scores -> 1\n"[..], true));
    }

    #[test]
    fn the_follower_yields_whole_lines_as_they_are_appended() {
        let path = temp_path("steps");
        let mut follower = LineFollower::new(&path);
        assert!(follower.poll().unwrap().is_empty(), "no file yet");
        append(&path, b"");
        assert!(follower.poll().unwrap().is_empty(), "an empty file");
        append(&path, b" 0.000s | Phrase recording started\n 1.2");
        assert_eq!(follower.poll().unwrap(), b" 0.000s | Phrase recording started\n");
        assert!(follower.poll().unwrap().is_empty(), "the partial line is held back");
        append(&path, b"23s | HIT: Left scores on Right!");
        assert!(follower.poll().unwrap().is_empty(), "still no newline");
        append(&path, b"\n 1.300s | HIT: Right scores on Left!\n 1.4");
        assert_eq!(follower.poll().unwrap(), b" 1.223s | HIT: Left scores on Right!\n 1.300s | HIT: Right scores on Left!\n");
        append(&path, b"23s | Phrase recording ended\n");
        assert_eq!(follower.poll().unwrap(), b" 1.423s | Phrase recording ended\n");
        std::fs::write(&path, b"short\n").unwrap();
        assert!(follower.poll().is_err(), "a rewritten file is an error, not lines read twice");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }

    #[tokio::test]
    async fn a_log_written_later_is_followed_to_the_phrase_end() {
        let path = temp_path("thread");
        let mut log = follow(path.clone());
        assert!(log.borrow().text.is_empty());
        // Each step is appended once the one before has been read, so each is one batch.
        let steps: [&[u8]; 3] = [
            b" 0.000s | Phrase recording started\n 1.2",
            b"23s | HIT: Left scores on Right!\n 1.423s | Phrase recording ended\n",
            b"Scores -> Fencer 1: HIT, Fencer 2: HIT\nPhrase ended\nUploaded\n",
        ];
        let mut batches = Vec::new();
        let mut seen = 0;
        for step in steps {
            append(&path, step);
            let now = log.wait_for(|l| l.text.len() > seen || l.settled()).await.unwrap().clone();
            assert!(now.failure.is_none(), "{now:?}");
            batches.push(String::from_utf8(now.text[seen..].to_vec()).unwrap());
            seen = now.text.len();
        }
        assert_eq!(
            batches,
            [
                " 0.000s | Phrase recording started\n",
                " 1.223s | HIT: Left scores on Right!\n 1.423s | Phrase recording ended\n",
                "Scores -> Fencer 1: HIT, Fencer 2: HIT\n",
            ]
        );
        assert!(log.borrow().ended, "the follower stops at the phrase's end");
        std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
    }
}
