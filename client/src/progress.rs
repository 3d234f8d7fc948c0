//! What the piste sees while a phrase streams: a progress bar (frames, fps, bytes) on a
//! terminal, a plain line a second otherwise (logs, pipes), and notes such as a resumed upload.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is written.
const LINE_EVERY: Duration = Duration::from_secs(1);

struct Counts {
    frames: u64,
    bytes: u64,
    last_line: Instant,
}

/// Progress of one upload, shown on standard error.
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    counts: Mutex<Counts>,
    quiet: bool,
}

impl Progress {
    /// A bar (of `total` frames when known) on a terminal, plain lines elsewhere, nothing when quiet.
    pub fn new(total: Option<u64>, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{spinner} [{bar:30}] {pos}/{len} frames  {msg}"
            } else {
                "{spinner} {pos} frames  {msg}"
            };
            bar.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
            bar
        });
        let started = Instant::now();
        // The first plain line comes a second in, when the rate means something.
        Progress { bar, started, counts: Mutex::new(Counts { frames: 0, bytes: 0, last_line: started }), quiet }
    }

    fn summary(&self, c: &Counts) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        format!("{:.1} fps, {:.2} MB sent", c.frames as f64 / secs, c.bytes as f64 / 1e6)
    }

    /// Frame `index` went out, `bytes` long.
    pub fn sent(&self, index: u64, bytes: usize) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.frames = c.frames.max(index + 1);
        c.bytes += bytes as u64;
        let text = self.summary(&c);
        if let Some(bar) = &self.bar {
            bar.set_position(c.frames);
            bar.set_message(text);
        } else if !self.quiet && c.last_line.elapsed() >= LINE_EVERY {
            c.last_line = Instant::now();
            eprintln!("referee-client: {} frames, {text}", c.frames);
        }
    }

    /// A line for the user (above the bar on a terminal).
    pub fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("referee-client: {message}")),
            None if !self.quiet => eprintln!("referee-client: {message}"),
            None => {}
        }
    }

    /// The upload is over: the last counts, once.
    pub fn finish(&self, what: &str) {
        let c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let line = format!("{what}: {} frames in {:.1} s, {}", c.frames, self.started.elapsed().as_secs_f64(), self.summary(&c));
        match &self.bar {
            Some(bar) => bar.finish_with_message(line),
            None if !self.quiet => eprintln!("referee-client: {line}"),
            None => {}
        }
    }
}
