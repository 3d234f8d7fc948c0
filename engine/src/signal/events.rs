//! The log's timed events in seconds, for the engines that work on a true time axis (`v2`,
//! `v3`) and the timeline: read with the same line readers as the legacy's [`super::parse`],
//! blind to the referee's call.

use serde::Serialize;

use super::lines::{event_line, strip_referee_call, word_after};
use crate::side::Side;

/// Why a log's events cannot be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// No `HIT:` event line.
    #[error("no hit in the log")]
    NoHit,
    /// The box did not give both lights.
    #[error("Not a double-touch phrase (Fencer 1: {fencer1}, Fencer 2: {fencer2})")]
    NotDoubleTouch {
        /// Fencer 1 (the right fencer).
        fencer1: String,
        /// Fencer 2 (the left fencer).
        fencer2: String,
    },
}

/// What `v2` reads from the scoring-box log: event times in seconds on the log's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhraseLog {
    /// `Phrase recording started` (0 when the log has no such line).
    pub start: f64,
    /// `Phrase recording ended`, if the log says.
    pub end: Option<f64>,
    /// The last timed event.
    pub last_event: f64,
    /// The first `HIT:` line: when the lights came on.
    pub first_light: f64,
    /// The last `HIT:` line.
    pub last_light: f64,
    /// Whose light came on first, when the box says (`Left scores on Right` is the left's).
    pub first_light_side: Option<Side>,
    /// Blade-to-blade contacts.
    pub blade_contacts: Vec<f64>,
}


impl PhraseLog {
    /// Seconds from the start to the first light.
    pub fn time_to_hit(&self) -> f64 {
        self.first_light - self.start
    }

    /// The recording span: start to `Phrase recording ended` (or to the last event).
    pub fn span(&self) -> f64 {
        self.end.unwrap_or(self.last_event) - self.start
    }
}

/// Reads a scoring-box log: the timed event lines and the `Scores ->` line only, after
/// [`strip_referee_call`]. A log whose scores line does not give both fencers `HIT` is refused.
pub fn parse_log(text: &str) -> Result<PhraseLog, LogError> {
    read_log(text, true)
}

/// Reads a log's timed events as [`parse_log`] does, whatever its scores line says (a single
/// light's log too): for the timeline, never for a right-of-way call.
pub fn parse_events(text: &str) -> Result<PhraseLog, LogError> {
    read_log(text, false)
}


fn read_log(text: &str, double_touch_only: bool) -> Result<PhraseLog, LogError> {
    let text = strip_referee_call(text);
    let (mut start, mut end) = (None, None);
    let mut last_event = f64::NEG_INFINITY;
    let mut hits: Vec<(f64, Option<Side>)> = Vec::new();
    let mut blade_contacts = Vec::new();
    let mut scores = None;
    for line in text.lines() {
        if line.trim_start().starts_with("Scores ->") {
            scores = Some((word_after(line, "fencer 1:"), word_after(line, "fencer 2:")));
            continue;
        }
        let Some((t, event)) = event_line(line) else { continue };
        last_event = last_event.max(t);
        if event.contains("Phrase recording started") && start.is_none() {
            start = Some(t);
        } else if event.contains("Phrase recording ended") && end.is_none() {
            end = Some(t);
        } else if event.contains("Blade-to-blade contact") {
            blade_contacts.push(t);
        } else if event.contains("HIT:") {
            let side = if event.contains("Left scores") {
                Some(Side::Left)
            } else if event.contains("Right scores") {
                Some(Side::Right)
            } else {
                None
            };
            hits.push((t, side));
        }
    }
    if let (Some((f1, f2)), true) = (scores, double_touch_only) {
        if f1.as_deref() != Some("HIT") || f2.as_deref() != Some("HIT") {
            let show = |s: Option<String>| s.unwrap_or_else(|| "None".into());
            return Err(LogError::NotDoubleTouch { fencer1: show(f1), fencer2: show(f2) });
        }
    }
    let first_light = hits.iter().map(|h| h.0).fold(f64::INFINITY, f64::min);
    if !first_light.is_finite() {
        return Err(LogError::NoHit);
    }
    let last_light = hits.iter().map(|h| h.0).fold(f64::NEG_INFINITY, f64::max);
    let firsts: Vec<Side> = hits.iter().filter(|h| h.0 == first_light).filter_map(|h| h.1).collect();
    let first_light_side = match firsts.as_slice() {
        [one, rest @ ..] if rest.iter().all(|s| s == one) => Some(*one),
        _ => None,
    };
    Ok(PhraseLog {
        start: start.unwrap_or(0.0),
        end,
        last_event,
        first_light,
        last_light,
        first_light_side,
        blade_contacts,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::signal::lines::event_line;

    /// A recorded double touch with the referee's call after it.
    pub(crate) const LOG: &str = "Phrase 1 initialized at 2025-10-20 20:59:20\n\
        Recording started at 2025-10-20 20:59:20\n 0.000s | Phrase recording started\n\
         1.947s | Off-Target: Blade-to-blade contact.\n 3.345s | HIT: Left scores on Right!\n\
         3.368s | Lockout period started (0.200s window)\n 3.528s | HIT: Simultaneous valid hits!\n\
         4.000s | Phrase recording ended\nScores -> Fencer 1: HIT, Fencer 2: HIT\nPhrase ended\n\
        [2025-10-20 20:59:27] Interpretation -> Right Fencer: HIT, Left Fencer: HIT\n\
        [2025-10-20 20:59:27] Manual selection winner: Right Fencer (Green Lamp)\nWinner: Right\n";


    #[test]
    fn the_referee_call_is_stripped_and_never_read() {
        let stripped = strip_referee_call(LOG);
        assert!(!stripped.to_lowercase().contains("winner"));
        assert!(stripped.contains("3.528s | HIT: Simultaneous valid hits!\n"));
        assert!(stripped.contains("Scores -> Fencer 1: HIT, Fencer 2: HIT\n"));
        let a = parse_log(LOG).unwrap();
        assert_eq!(a, parse_log(&stripped).unwrap());
        assert_eq!(a, parse_log(&LOG.replace("winner: Right", "winner: Left")).unwrap());
    }

    #[test]
    fn the_log_gives_times_in_seconds() {
        let p = parse_log(LOG).unwrap();
        assert_eq!(p.start, 0.0);
        assert_eq!(p.end, Some(4.0));
        assert_eq!(p.first_light, 3.345);
        assert_eq!(p.last_light, 3.528);
        assert_eq!(p.first_light_side, Some(Side::Left));
        assert_eq!(p.blade_contacts, vec![1.947]);
        assert_eq!(p.span(), 4.0);
        let single = LOG.replace("Fencer 2: HIT", "Fencer 2: MISS");
        assert!(matches!(parse_log(&single), Err(LogError::NotDoubleTouch { .. })));
        assert_eq!(parse_log(" 0.000s | Phrase recording started\n"), Err(LogError::NoHit));
        assert_eq!(event_line(" 12.5s | x"), Some((12.5, "x")));
        assert_eq!(event_line("Lockout active (0.130s window)"), None);
    }
}
