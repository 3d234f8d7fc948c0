//! The scoring-box log (`signal`): one event a line, written by the recorder beside the piste.
//! Parsed as the legacy service parsed it, into the phrase the rules need; logs it refuses give
//! the legacy's messages.

use serde::Serialize;

pub mod events;
pub mod lines;

use lines::{line_time, referee_call, word_after};

/// Frames per second the legacy assumed for every log time.
pub const LOG_FPS: f64 = 15.0;

/// A blade-to-blade contact reported by the box.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BladeContact {
    /// Seconds since the phrase started recording.
    pub time: f64,
    /// `int(time × 15)`.
    pub frame: i64,
}

/// A double-touch phrase, as the rules read it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phrase {
    /// When recording started (seconds, on the log's clock).
    pub start_time: f64,
    /// `int(start_time × 15)`.
    pub start_frame: i64,
    /// When the box reported the simultaneous hit (or, without one, the first hit).
    pub simultaneous_hit_time: f64,
    /// `int(simultaneous_hit_time × 15)`.
    pub simultaneous_hit_frame: i64,
    /// Every blade-to-blade contact, in log order.
    pub blade_contacts: Vec<BladeContact>,
    /// When the lockout window started, if the log says.
    pub lockout_start: Option<f64>,
    /// The referee's call from the log: `left`, `right` or `unknown`.
    pub declared_winner: String,
    /// Always 15.
    pub fps: f64,
}

/// Why a log is not a phrase the referee can decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignalError {
    /// No `Phrase recording started` line.
    #[error("Could not find start time")]
    MissingStartTime,
    /// The lights were not both on.
    #[error("Not a double-touch phrase (Fencer 1: {fencer1}, Fencer 2: {fencer2})")]
    NotDoubleTouch {
        /// Fencer 1 (the right fencer): `HIT`, `MISS`, … or `None` when the log has no scores.
        fencer1: String,
        /// Fencer 2 (the left fencer).
        fencer2: String,
    },
    /// Both lights on, but no `HIT:` line to time them.
    #[error("Could not find any hit time")]
    MissingHit,
    /// The box gave no light at all: nobody's touch to call. Only [`read_touch`] says this;
    /// [`parse`] refuses such a log as the legacy did ([`SignalError::NotDoubleTouch`]).
    #[error("No light: neither fencer hit (Fencer 1: {fencer1}, Fencer 2: {fencer2})")]
    NoLight {
        /// Fencer 1 (the right fencer): `MISS`, …
        fencer1: String,
        /// Fencer 2 (the left fencer).
        fencer2: String,
    },
}

impl SignalError {
    /// The message the legacy service logged for this error about the file at `path`.
    pub fn legacy_message(&self, path: &str) -> String {
        match self {
            SignalError::MissingStartTime => format!("Could not find start time in {path}"),
            SignalError::NotDoubleTouch { .. } => format!("Skipping {path}: {self}"),
            SignalError::MissingHit => format!("{self} in {path}"),
            SignalError::NoLight { .. } => format!("Skipping {path}: {self}"),
        }
    }
}

/// Parses a scoring-box log.
pub fn parse(text: &str) -> Result<Phrase, SignalError> {
    let mut start = None;
    let mut simultaneous = None;
    let mut blade_contacts = Vec::new();
    let mut lockout_start = None;
    let mut hits = Vec::new();
    let mut scores: (Option<String>, Option<String>) = (None, None);
    let mut declared_winner = "unknown".to_owned();

    for line in text.lines() {
        let time = line_time(line);
        if let Some(t) = time {
            if line.contains("Phrase recording started") && start.is_none() {
                start = Some(t);
            }
            // A box that reports the double touch twice: the legacy kept the last line's time.
            if line.contains("Simultaneous valid hits") {
                simultaneous = Some(t);
            }
            if line.contains("Off-Target: Blade-to-blade contact") {
                blade_contacts.push(BladeContact { time: t, frame: frame_of(t) });
            }
            if line.contains("Lockout period started") && lockout_start.is_none() {
                lockout_start = Some(t);
            }
            if line.contains("HIT:") {
                hits.push(t);
            }
        }
        if line.contains("Scores ->") {
            scores = (word_after(line, "fencer 1:"), word_after(line, "fencer 2:"));
        }
        if let Some(call) = referee_call(line) {
            declared_winner = call;
        }
    }

    let start_time = start.ok_or(SignalError::MissingStartTime)?;
    let (fencer1, fencer2) = scores;
    if fencer1.as_deref() != Some("HIT") || fencer2.as_deref() != Some("HIT") {
        let show = |s: Option<String>| s.unwrap_or_else(|| "None".to_owned());
        return Err(SignalError::NotDoubleTouch { fencer1: show(fencer1), fencer2: show(fencer2) });
    }
    let simultaneous_hit_time = simultaneous.or_else(|| hits.first().copied()).ok_or(SignalError::MissingHit)?;
    Ok(Phrase {
        start_time,
        start_frame: frame_of(start_time),
        simultaneous_hit_time,
        simultaneous_hit_frame: frame_of(simultaneous_hit_time),
        blade_contacts,
        lockout_start,
        declared_winner,
        fps: LOG_FPS,
    })
}

/// A phrase that ended on one light: in sabre that light is the touch, with no right of way to
/// weigh.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SingleLight {
    /// The lit fencer, as the legacy reads the box (Fencer 1 is the right of the picture):
    /// `left` or `right`.
    pub winner: String,
    /// The first `HIT:` line's time (seconds, on the log's clock), if the log has one.
    pub hit_time: Option<f64>,
    /// Fencer 1's word on the `Scores ->` line.
    pub fencer1: String,
    /// Fencer 2's word.
    pub fencer2: String,
}

/// A phrase as the service takes it: a double touch for the right-of-way rules, or a single
/// light, which is the lit fencer's touch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Touch {
    /// Both lights: [`parse`]'s phrase.
    Double(Phrase),
    /// One light.
    Single(SingleLight),
}

/// Reads a log as the service takes it. A `Scores ->` line with exactly one `HIT` is a single
/// light; one with none is [`SignalError::NoLight`]; everything else is [`parse`], its refusals
/// included (a log with no scores line yet is still [`SignalError::NotDoubleTouch`]).
pub fn read_touch(text: &str) -> Result<Touch, SignalError> {
    let (fencer1, fencer2) = last_scores(text);
    let lit = |s: &Option<String>| s.as_deref() == Some("HIT");
    let show = |s: Option<String>| s.unwrap_or_else(|| "None".to_owned());
    match (lit(&fencer1), lit(&fencer2), fencer1.is_some() || fencer2.is_some()) {
        (true, true, _) | (false, false, false) => parse(text).map(Touch::Double),
        (false, false, true) => Err(SignalError::NoLight { fencer1: show(fencer1), fencer2: show(fencer2) }),
        (right_lit, _, _) => Ok(Touch::Single(SingleLight {
            winner: if right_lit { "right" } else { "left" }.to_owned(),
            hit_time: text.lines().filter(|l| l.contains("HIT:")).find_map(line_time),
            fencer1: show(fencer1),
            fencer2: show(fencer2),
        })),
    }
}

/// Fencer 1's and Fencer 2's words on the last `Scores ->` line, as [`parse`] reads them.
fn last_scores(text: &str) -> (Option<String>, Option<String>) {
    text.lines()
        .rfind(|line| line.contains("Scores ->"))
        .map_or((None, None), |line| (word_after(line, "fencer 1:"), word_after(line, "fencer 2:")))
}

/// Whether the log holds the phrase's end, as the recorder writes it: a `Phrase ended` line, or
/// a `Scores ->` line after `Phrase recording ended`. Lines a live box sends after that
/// (interpretation, the operator's confirmation) never change the call.
pub fn holds_phrase_end(text: &str) -> bool {
    let mut recording_ended = false;
    for line in text.lines() {
        if line.contains("Phrase ended") || (recording_ended && line.contains("Scores ->")) {
            return true;
        }
        recording_ended |= line.contains("Phrase recording ended");
    }
    false
}

/// The latest `HIT:` line's time: the frames up to it are what a call needs.
pub fn last_hit_time(text: &str) -> Option<f64> {
    text.lines().filter(|l| l.contains("HIT:")).filter_map(line_time).reduce(f64::max)
}

/// `int(time × 15)`: truncation, as the legacy converted log times to frames.
pub fn frame_of(time: f64) -> i64 {
    (time * LOG_FPS).trunc() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "Phrase 1 initialized at 2025-10-20 20:59:20\n\
        Recording started at 2025-10-20 20:59:20\n 0.000s | Phrase recording started\n\
         1.947s | Off-Target: Blade-to-blade contact.\n 3.345s | HIT: Left scores on Right!\n\
         3.368s | Lockout period started (0.200s window)\n 3.528s | HIT: Simultaneous valid hits!\n\
         3.570s | Phrase recording ended\nScores -> Fencer 1: HIT, Fencer 2: HIT\n\
        [2025-10-20 20:59:27] Manual selection winner: Right Fencer (Green Lamp)\n";

    #[test]
    fn parses_the_spec_example() {
        let p = parse(LOG).unwrap();
        assert_eq!(p.start_frame, 0);
        assert_eq!(p.simultaneous_hit_time, 3.528);
        assert_eq!(p.simultaneous_hit_frame, 52);
        assert_eq!(p.blade_contacts, vec![BladeContact { time: 1.947, frame: 29 }]);
        assert_eq!(p.lockout_start, Some(3.368));
        assert_eq!(p.declared_winner, "right");
    }

    #[test]
    fn without_a_simultaneous_line_the_first_hit_counts() {
        let log = LOG.replace(" 3.528s | HIT: Simultaneous valid hits!\n", "");
        assert_eq!(parse(&log).unwrap().simultaneous_hit_time, 3.345);
    }

    #[test]
    fn refusals_say_why() {
        let single = LOG.replace("Fencer 2: HIT", "Fencer 2: miss");
        let err = parse(&single).unwrap_err();
        assert_eq!(err.to_string(), "Not a double-touch phrase (Fencer 1: HIT, Fencer 2: MISS)");
        assert_eq!(
            err.legacy_message("<path>"),
            "Skipping <path>: Not a double-touch phrase (Fencer 1: HIT, Fencer 2: MISS)"
        );
        let no_start = LOG.replace("Phrase recording started", "Phrase began");
        assert_eq!(parse(&no_start).unwrap_err().legacy_message("x.txt"), "Could not find start time in x.txt");
        let no_scores = LOG.replace("Scores -> Fencer 1: HIT, Fencer 2: HIT\n", "");
        assert!(parse(&no_scores).unwrap_err().to_string().contains("Fencer 1: None"));
        let no_hits = LOG.replace("HIT: ", "hit ").replace("Simultaneous valid hits", "both");
        assert_eq!(parse(&no_hits).unwrap_err(), SignalError::MissingHit);
    }

    #[test]
    fn scores_are_read_whatever_comes_before_them_on_the_line() {
        // Fuzzing (scoring_log): upper-case non-ASCII letters before the label (`İ` lower-cases
        // to 3 bytes) shifted where the word after it was read: `HIT` came out as `IT`.
        for prefix in ["İİ ", "ẞ · ", "Ω "] {
            let log = LOG.replace("Scores ->", &format!("{prefix}Scores ->"));
            assert_eq!(parse(&log), parse(LOG), "after {prefix:?}");
        }
        assert_eq!(word_after("İ Fencer 1: hit,", "fencer 1:"), Some("HIT".into()));
    }

    #[test]
    fn one_light_is_the_lit_fencers_touch_and_parse_still_refuses_it() {
        let right = LOG.replace("Fencer 2: HIT", "Fencer 2: MISS");
        let Touch::Single(single) = read_touch(&right).unwrap() else { panic!("not a single light") };
        assert_eq!((single.winner.as_str(), single.hit_time), ("right", Some(3.345)));
        assert_eq!((single.fencer1.as_str(), single.fencer2.as_str()), ("HIT", "MISS"));
        assert!(matches!(parse(&right), Err(SignalError::NotDoubleTouch { .. })));
        let left = LOG.replace("Fencer 1: HIT", "Fencer 1: miss");
        assert!(matches!(read_touch(&left), Ok(Touch::Single(SingleLight { winner, .. })) if winner == "left"));
        // No hit line to time it: still the touch.
        let untimed = right.replace(" 3.345s | HIT: Left scores on Right!\n", "").replace(" 3.528s | HIT: Simultaneous valid hits!\n", "");
        assert!(matches!(read_touch(&untimed), Ok(Touch::Single(SingleLight { hit_time: None, .. }))));
        assert_eq!(read_touch(LOG), Ok(Touch::Double(parse(LOG).unwrap())));
    }

    #[test]
    fn no_light_and_no_scores_are_refused_saying_so() {
        let none = LOG.replace("Fencer 1: HIT, Fencer 2: HIT", "Fencer 1: MISS, Fencer 2: MISS");
        let err = read_touch(&none).unwrap_err();
        assert_eq!(err, SignalError::NoLight { fencer1: "MISS".into(), fencer2: "MISS".into() });
        assert!(err.to_string().starts_with("No light"), "{err}");
        let open = LOG.replace("Scores -> Fencer 1: HIT, Fencer 2: HIT\n", "");
        assert!(matches!(read_touch(&open), Err(SignalError::NotDoubleTouch { .. })));
    }

    #[test]
    fn the_phrase_ends_with_its_end_lines_only() {
        let upto = |needle: &str| &LOG[..LOG.find(needle).unwrap()];
        assert!(!holds_phrase_end(upto("Scores ->")));
        assert!(holds_phrase_end(LOG));
        // Scores before the recording ended are not the end; `Phrase ended` always is.
        assert!(!holds_phrase_end("Scores -> Fencer 1: HIT, Fencer 2: HIT\n 3.570s | Phrase recording ended\n"));
        assert!(holds_phrase_end(" 0.000s | Phrase recording started\nPhrase ended\n"));
        assert_eq!(last_hit_time(LOG), Some(3.528));
        assert_eq!(last_hit_time(upto(" 3.345s")), None);
    }

    #[test]
    fn times_follow_the_regex() {
        assert_eq!(line_time(" 12.5s | x"), Some(12.5));
        assert_eq!(line_time("Lockout active (0.130s window)"), Some(0.13));
        assert_eq!(line_time("v1.2.3s 4.5s"), Some(2.3));
        assert_eq!(line_time("12s 3.s 4.25s"), Some(4.25));
        assert_eq!(line_time("no time"), None);
    }
}
