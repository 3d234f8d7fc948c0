//! What a phrase's upload sends next, in order, whatever carries it (the HTTP body or the
//! WebSocket): the captured frames from the spool as they come, the moment the frames are over,
//! and the log: whole once known, after the frames, or (`--signal-live`) its new lines among the
//! frames as the recorder writes them.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::watch;

use crate::error::ClientError;
use crate::live::LiveLog;
use crate::signal::SignalState;
use crate::spool::{Spool, SpoolStatus};

/// How the log reaches the server.
#[derive(Debug, Clone)]
pub enum LogFeed {
    /// Whole, once known: sent after the last frame.
    Whole {
        /// The log once known.
        log: watch::Receiver<SignalState>,
        /// The name it is sent under.
        filename: String,
    },
    /// Followed as the recorder writes it: its new lines are sent among the frames.
    Live {
        /// The log as far as it is read.
        log: watch::Receiver<LiveLog>,
        /// The followed file's name, sent with each batch of lines.
        filename: String,
    },
}

impl LogFeed {
    /// The name the log is sent under.
    pub fn filename(&self) -> &str {
        match self {
            LogFeed::Whole { filename, .. } | LogFeed::Live { filename, .. } => filename,
        }
    }

    /// Why the log cannot be had, once that is known.
    pub fn failure(&self) -> Option<String> {
        match self {
            LogFeed::Whole { log, .. } => log.borrow().as_ref().and_then(|got| got.as_ref().err().cloned()),
            LogFeed::Live { log, .. } => log.borrow().failure.clone(),
        }
    }

    /// Returns once the log is known to its end (a live log: the phrase's end read), or known to
    /// be unobtainable: the phrase is over.
    pub async fn settled(&mut self) {
        let _ = match self {
            LogFeed::Whole { log, .. } => log.wait_for(Option::is_some).await.map(|_| ()),
            LogFeed::Live { log, .. } => log.wait_for(LiveLog::settled).await.map(|_| ()),
        };
    }
}

/// The next thing to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A captured frame.
    Frame {
        /// Its index in the phrase, from 0.
        index: u64,
        /// Its JPEG bytes.
        jpeg: Vec<u8>,
        /// Seconds since the phrase started (as captured; the spool's time).
        timestamp: f64,
    },
    /// The frames are over: every captured frame has been handed out. Comes once, before
    /// [`Next::Log`] or [`Next::End`].
    FramesEnded,
    /// New whole lines of a live log.
    Lines(Bytes),
    /// The whole log, after the frames: the last thing to send.
    Log(Bytes),
    /// A live log has been sent to the phrase's end, and the frames are over: nothing more.
    End,
}

/// Hands out a phrase's frames and log in the order they are to be sent.
pub struct Feed {
    spool: Arc<Spool>,
    captured: watch::Receiver<SpoolStatus>,
    log: LogFeed,
    next_frame: u64,
    /// Bytes of a live log handed out so far (its start, for a resumed upload that has the rest).
    log_sent: usize,
    /// Live lines wait until something else has been handed out (a frame, or the frames' end).
    lines_wait_for_a_frame: bool,
    handed_out: bool,
    frames_ended: bool,
    finished: bool,
}

impl Feed {
    /// A feed from frame `from_frame` and (a live log) from byte `log_from`. With
    /// `lines_wait_for_a_frame`, live lines are held until the first frame has been handed out
    /// (or the frames are over).
    pub fn new(spool: Arc<Spool>, log: LogFeed, from_frame: u64, log_from: usize, lines_wait_for_a_frame: bool) -> Feed {
        Feed {
            captured: spool.watch(),
            spool,
            log,
            next_frame: from_frame,
            log_sent: log_from,
            lines_wait_for_a_frame,
            handed_out: false,
            frames_ended: false,
            finished: false,
        }
    }

    /// Frames handed out so far, counted from 0 (all of them, once the frames are over).
    pub fn frames_sent(&self) -> u64 {
        self.next_frame
    }

    /// Bytes of a live log handed out so far.
    pub fn log_sent(&self) -> usize {
        self.log_sent
    }

    /// The next thing to send, once there is one; an error when the log cannot be had or a
    /// frame cannot be read back. Cancel-safe: nothing is handed out unless it is returned.
    pub async fn next(&mut self) -> Result<Next, ClientError> {
        let mut log_open = true;
        loop {
            if self.finished {
                return Ok(Next::End);
            }
            let status = *self.captured.borrow_and_update();
            let frame_ready = status.frames > self.next_frame;
            let frames_over = !frame_ready && status.done;
            // The log as it stands: a whole log once known, or a live log's lines so far.
            let (whole, live) = match &mut self.log {
                LogFeed::Whole { log, .. } => (log.borrow_and_update().clone(), None),
                LogFeed::Live { log, .. } => (None, Some(log.borrow_and_update().clone())),
            };
            if let Some(why) = whole.as_ref().and_then(|w| w.as_ref().err()).or(live.as_ref().and_then(|l| l.failure.as_ref())) {
                return Err(ClientError::Failed(why.clone()));
            }
            // New live lines go first: they are what the call waits for.
            if let Some(now) = &live {
                let may_send_lines = self.handed_out || !self.lines_wait_for_a_frame;
                if now.text.len() > self.log_sent && may_send_lines {
                    let lines = now.text.slice(self.log_sent..);
                    self.log_sent = now.text.len();
                    self.handed_out = true;
                    return Ok(Next::Lines(lines));
                }
            }
            if frame_ready {
                return self.take_frame();
            }
            if frames_over && !self.frames_ended {
                self.frames_ended = true;
                self.handed_out = true;
                return Ok(Next::FramesEnded);
            }
            if frames_over {
                if let Some(Ok(text)) = whole {
                    self.finished = true;
                    return Ok(Next::Log(text));
                }
                if live.is_some_and(|now| now.ended && now.text.len() <= self.log_sent) {
                    self.finished = true;
                    return Ok(Next::End);
                }
            }
            // Nothing to send yet: wait for a frame or for the log to change.
            if !log_open && !self.log_is_settled() {
                return Err(ClientError::Failed("the log's source stopped before the log was complete".into()));
            }
            let (captured, log) = (&mut self.captured, &mut self.log);
            let log_changed = async move {
                match log {
                    LogFeed::Whole { log, .. } => log.changed().await,
                    LogFeed::Live { log, .. } => log.changed().await,
                }
            };
            tokio::select! {
                changed = captured.changed() => {
                    if changed.is_err() {
                        return Err(ClientError::Failed("the capture went away".into()));
                    }
                }
                // A closed channel: the log's source has said its last word.
                changed = log_changed, if log_open => log_open = changed.is_ok(),
            }
        }
    }

    fn log_is_settled(&self) -> bool {
        match &self.log {
            LogFeed::Whole { log, .. } => log.borrow().is_some(),
            LogFeed::Live { log, .. } => log.borrow().settled(),
        }
    }

    fn take_frame(&mut self) -> Result<Next, ClientError> {
        let index = self.next_frame;
        let (jpeg, timestamp) =
            self.spool.frame(index).map_err(|e| ClientError::Failed(format!("cannot read frame {index} back from the spool: {e}")))?;
        self.next_frame += 1;
        self.handed_out = true;
        Ok(Next::Frame { index, jpeg, timestamp })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn live(text: &'static [u8], ended: bool) -> LiveLog {
        LiveLog { text: Bytes::from_static(text), ended, failure: None }
    }

    #[tokio::test]
    async fn a_whole_log_follows_the_frames() {
        let spool = Arc::new(Spool::create("feed-whole").unwrap());
        let (tx, rx) = watch::channel(None);
        let mut feed = Feed::new(spool.clone(), LogFeed::Whole { log: rx, filename: "p.txt".into() }, 0, 0, false);
        spool.push(b"f0", 0.0).unwrap();
        tx.send(Some(Ok(Bytes::from_static(b"log\n")))).unwrap();
        assert_eq!(feed.next().await.unwrap(), Next::Frame { index: 0, jpeg: b"f0".to_vec(), timestamp: 0.0 });
        spool.push(b"f1", 0.5).unwrap();
        spool.finish();
        assert_eq!(feed.next().await.unwrap(), Next::Frame { index: 1, jpeg: b"f1".to_vec(), timestamp: 0.5 });
        assert_eq!(feed.next().await.unwrap(), Next::FramesEnded);
        assert_eq!(feed.next().await.unwrap(), Next::Log(Bytes::from_static(b"log\n")));
        assert_eq!(feed.next().await.unwrap(), Next::End);
    }

    #[tokio::test]
    async fn live_lines_go_between_frames_and_the_feed_ends_with_the_phrase() {
        let spool = Arc::new(Spool::create("feed-live").unwrap());
        let (tx, rx) = watch::channel(live(b"start\n", false));
        let mut feed = Feed::new(spool.clone(), LogFeed::Live { log: rx, filename: "p.txt".into() }, 0, 0, true);
        // Held back until a frame has gone: an HTTP body opens with a frame.
        assert_eq!(feed.next().now_or_never().map(|n| n.unwrap()), None, "lines wait for the first frame");
        spool.push(b"f0", 0.0).unwrap();
        assert!(matches!(feed.next().await.unwrap(), Next::Frame { index: 0, .. }));
        assert_eq!(feed.next().await.unwrap(), Next::Lines(Bytes::from_static(b"start\n")));
        tx.send(live(b"start\nhit\nPhrase ended\n", true)).unwrap();
        spool.push(b"f1", 0.1).unwrap();
        assert_eq!(feed.next().await.unwrap(), Next::Lines(Bytes::from_static(b"hit\nPhrase ended\n")), "lines before the next frame");
        assert!(matches!(feed.next().await.unwrap(), Next::Frame { index: 1, .. }));
        spool.finish();
        assert_eq!(feed.next().await.unwrap(), Next::FramesEnded);
        assert_eq!(feed.next().await.unwrap(), Next::End);
        assert_eq!(feed.log_sent(), b"start\nhit\nPhrase ended\n".len());
    }

    #[tokio::test]
    async fn a_resumed_feed_sends_only_the_lines_the_server_lacks() {
        let spool = Arc::new(Spool::create("feed-resume").unwrap());
        spool.finish();
        let (_tx, rx) = watch::channel(live(b"one\ntwo\nPhrase ended\n", true));
        let mut feed = Feed::new(spool, LogFeed::Live { log: rx, filename: "p.txt".into() }, 0, 4, true);
        assert_eq!(feed.next().await.unwrap(), Next::FramesEnded);
        assert_eq!(feed.next().await.unwrap(), Next::Lines(Bytes::from_static(b"two\nPhrase ended\n")));
        assert_eq!(feed.next().await.unwrap(), Next::End);
    }

    #[tokio::test]
    async fn a_log_that_cannot_be_had_is_an_error() {
        let spool = Arc::new(Spool::create("feed-fail").unwrap());
        spool.finish();
        let (_tx, rx) = watch::channel(LiveLog { failure: Some("gone".into()), ..LiveLog::default() });
        let mut feed = Feed::new(spool, LogFeed::Live { log: rx, filename: "p.txt".into() }, 0, 0, false);
        assert_eq!(feed.next().await.unwrap_err().to_string(), "gone");
        let spool = Arc::new(Spool::create("feed-fail-whole").unwrap());
        spool.push(b"f0", 0.0).unwrap();
        let (_tx, rx) = watch::channel(Some(Err("the log on standard input is empty".to_owned())));
        let mut feed = Feed::new(spool, LogFeed::Whole { log: rx, filename: "p.txt".into() }, 0, 0, false);
        assert_eq!(feed.next().await.unwrap_err().to_string(), "the log on standard input is empty", "no frame goes once the log is known lost");
    }
}
