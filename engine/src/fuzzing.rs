//! The invariants the `scoring_log` fuzz target checks, here so that the stable-toolchain test
//! over the kept corpus (`tests/fuzz_corpus.rs`) checks exactly the same ones. Not an API: each
//! function panics when an invariant fails.

use crate::decision::Engine;
use crate::kinematics::{Keypoints, Row};
use crate::signal::{self, frame_of, Phrase, LOG_FPS};
use crate::timeline::Timeline;
use crate::tracker::KEYPOINTS;
use crate::frame_times::FrameTimes;
use crate::signal::events::{self, PhraseLog};
use crate::v2::{self, V2Decision, V2Error};
use crate::v3;

/// A referee's call line as the recorder writes it after the phrase.
const CALL: &str = "[2026-01-27 21:23:11] Confirmed result winner: Left Fencer (Red Lamp)";

/// Checks one fuzz input: the bytes as (lossy) UTF-8 text, and their longest valid UTF-8 prefix.
pub fn check_input(data: &[u8]) {
    check_text(&String::from_utf8_lossy(data), data);
    if let Err(e) = std::str::from_utf8(data) {
        let valid = std::str::from_utf8(&data[..e.valid_up_to()]).expect("the valid prefix");
        check_text(valid, data);
    }
}

/// A time-true engine's decision of a read phrase.
type TimedEngine = fn(&Keypoints, &PhraseLog, &FrameTimes) -> Result<V2Decision, V2Error>;

/// Both parsers on one log, and every engine on what they read from it.
fn check_text(text: &str, seed: &[u8]) {
    let legacy = signal::parse(text);
    assert_eq!(legacy, signal::parse(text), "signal::parse is not deterministic");
    let log = events::parse_log(text);
    assert_eq!(log, events::parse_log(text), "v2::parse_log is not deterministic");

    // A recorder writing CRLF line ends says the same.
    let crlf = text.replace('\n', "\r\n");
    assert_eq!(signal::parse(&crlf), legacy, "signal::parse reads CRLF line ends differently");
    assert_eq!(events::parse_log(&crlf), log, "v2::parse_log reads CRLF line ends differently");

    // The legacy finds its labels anywhere on a line (the legacy used `re.search`), so text
    // before them, ASCII or not, changes nothing.
    let prefixed: String = text.lines().flat_map(|l| ["İ · ", l, "\n"]).collect();
    assert_eq!(signal::parse(&prefixed), legacy, "signal::parse reads a line differently after a prefix");

    // A referee's call after the phrase changes the legacy's declared winner and nothing else;
    // v2 does not see it at all.
    let called = format!("{text}\n{CALL}\n");
    let expected = legacy.clone().map(|p| Phrase { declared_winner: "left".into(), ..p });
    assert_eq!(signal::parse(&called), expected, "a referee's call line changed more than the declared winner");
    assert_eq!(events::parse_log(&called), log, "v2::parse_log saw the referee's call");

    if let Ok(phrase) = &legacy {
        check_phrase(phrase);
    }
    if let Ok(log) = &log {
        check_phrase_log(log);
    }
    let keypoints = synthetic_keypoints(seed);
    if let Ok(phrase) = &legacy {
        let decision = Engine::Legacy.decide(&keypoints, phrase, Some(100.0));
        assert!(["left", "right"].contains(&decision.winner.as_str()), "legacy winner {:?}", decision.winner);
        let times = FrameTimes::from_rate(LOG_FPS, keypoints.frames());
        let timeline = Timeline::new(&keypoints, times.times(), log.as_ref().ok(), &decision);
        assert_eq!(timeline.times.len(), keypoints.frames());
        for span in timeline.left_pauses.iter().chain(&timeline.right_pauses) {
            assert!(span.start <= span.end, "a pause from {} to {}", span.start, span.end);
        }
    }
    if let Ok(log) = &log {
        let times = FrameTimes::estimate(keypoints.frames(), log);
        assert_eq!(times.len(), keypoints.frames(), "estimated times for every frame");
        let engines: [(&str, TimedEngine); 2] = [("v2", v2::decide), ("v3", v3::decide)];
        for (name, decide) in engines {
            let decision = decide(&keypoints, log, &times).expect("one time per frame decides");
            assert!(["left", "right"].contains(&decision.winner.as_str()), "{name} winner {:?}", decision.winner);
            assert!(!decision.confidence.is_nan(), "{name} confidence is NaN for {log:?}");
            assert!((0.5..=1.0).contains(&decision.confidence), "{name} confidence {}", decision.confidence);
            assert_eq!(decision.uncertain, !decision.doubts.is_empty());
        }
    }
}

/// What the legacy parser read is consistent with itself.
fn check_phrase(p: &Phrase) {
    let times = [p.start_time, p.simultaneous_hit_time].into_iter().chain(p.blade_contacts.iter().map(|b| b.time));
    for t in times.chain(p.lockout_start) {
        assert!(t >= 0.0, "a log time of {t}");
    }
    assert_eq!(p.start_frame, frame_of(p.start_time));
    assert_eq!(p.simultaneous_hit_frame, frame_of(p.simultaneous_hit_time));
    for b in &p.blade_contacts {
        assert_eq!(b.frame, frame_of(b.time));
    }
    assert!(["left", "right", "unknown"].contains(&p.declared_winner.as_str()), "declared {:?}", p.declared_winner);
    assert_eq!(p.fps, LOG_FPS);
}

/// What `v2` read is consistent with itself.
fn check_phrase_log(log: &PhraseLog) {
    assert!(log.first_light.is_finite(), "first light at {}", log.first_light);
    assert!(log.first_light <= log.last_light, "first light {} after the last {}", log.first_light, log.last_light);
    assert!(log.last_light <= log.last_event, "a light at {} after the last event {}", log.last_light, log.last_event);
    for t in [log.start, log.first_light, log.last_light, log.last_event].into_iter().chain(log.end).chain(log.blade_contacts.iter().copied()) {
        assert!(t >= 0.0, "a log time of {t}");
        assert!(t <= log.last_event, "{t} after the last event {}", log.last_event);
    }
}

/// A few frames of two fencers (0–60, with gaps), shaped by the input's bytes: the left one
/// advancing, the right one standing, both jittered.
fn synthetic_keypoints(seed: &[u8]) -> Keypoints {
    let n = seed.len() % 61;
    let byte = |i: usize| seed.get(i).copied().unwrap_or(0);
    let row = |i: usize, base: f64, step: f64| -> Row {
        let mut r = [f64::NAN; KEYPOINTS];
        for (k, v) in r.iter_mut().enumerate() {
            let b = byte(i * KEYPOINTS + k);
            if b % 11 != 0 {
                *v = base + step * i as f64 + f64::from(b) / 2550.0 + k as f64 * 0.01;
            }
        }
        r
    };
    Keypoints {
        left_x: (0..n).map(|i| row(i, 0.2, 0.02)).collect(),
        left_y: (0..n).map(|i| row(i + 1, 0.5, 0.0)).collect(),
        right_x: (0..n).map(|i| row(i + 2, 0.8, -0.005)).collect(),
        right_y: (0..n).map(|i| row(i + 3, 0.5, 0.0)).collect(),
    }
}
