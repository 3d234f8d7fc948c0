//! The `v3` engine on the 100 recorded phrases (tests/fixtures/phrases.jsonl at the repository
//! root): its shipped parameters are its fit on those phrases, it is blind to the referee's call
//! lines and symmetric under mirroring, its confidence decides what is sure, and it uses only the
//! rules the by-evening cross-validation kept. `cli` checks `evaluate`'s by-evening tables through
//! `referee-engine`; the root's `tests/engine_v2.rs` runs those through `ai-referee`.

/// The fixtures folder (the repository root's).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");
/// The binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_referee-engine");

mod common;
#[path = "cli/v3.rs"]
mod cli;

use common::{doubled, keypoints, lines, mirrored, mirrored_log, opposite_call};
use referee_engine::frame_times::FrameTimes;
use referee_engine::kinematics::Keypoints;
use referee_engine::side::Side;
use referee_engine::signal::events::{parse_log, PhraseLog};
use referee_engine::v2::{DecidedBy, V2Decision};
use referee_engine::v3::{self, fit, V3Params, SURE_AT};
use serde_json::Value;

fn signal(p: &Value) -> &str {
    p["signal"].as_str().unwrap()
}

fn decide(k: &Keypoints, log: &str) -> V2Decision {
    v3::decide_log(k, log, None).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

fn same_params(a: &V3Params, b: &V3Params) -> bool {
    let (ca, cb) = (&a.calibration, &b.calibration);
    a.advance_speed == b.advance_speed
        && a.advance_recent_s == b.advance_recent_s
        && a.counter_penalty == b.counter_penalty
        && a.ground_tie == b.ground_tie
        && a.rules == b.rules
        && ca.advance.iter().zip(&cb.advance).all(|(x, y)| close(*x, *y))
        && close(ca.second_light, cb.second_light)
        && close(ca.ground, cb.ground)
}

#[test]
fn the_shipped_parameters_are_the_fit_on_the_recorded_phrases() {
    let phrases = lines("phrases.jsonl");
    let read: Vec<(Keypoints, PhraseLog, FrameTimes, Side)> = phrases
        .iter()
        .filter_map(|p| {
            let call = match p["referee_call"].as_str()? {
                "left" => Side::Left,
                _ => Side::Right,
            };
            let k = keypoints(&p["keypoints"]);
            let log = parse_log(signal(p)).unwrap();
            let times = FrameTimes::estimate(k.frames(), &log);
            Some((k, log, times, call))
        })
        .collect();
    assert_eq!(read.len(), 96);
    let examples: Vec<fit::Example> =
        read.iter().map(|(keypoints, log, times, call)| fit::Example { keypoints, log, times, call: *call }).collect();
    let fitted = fit::fit(&examples);
    assert!(same_params(&fitted, &v3::SHIPPED), "refit {fitted:?}\nshipped {:?}", v3::SHIPPED);
    // Fitted on nothing: v2's windows and a coin everywhere, so nothing is sure.
    let empty = fit::fit(&[]);
    assert_eq!(empty.calibration.second_light, 0.5);
    assert_eq!(empty.calibration.advance, [0.0; 3]);
}

#[test]
fn blind_to_the_call_symmetric_and_sure_only_from_the_calibrated_confidence() {
    let mut rules = std::collections::BTreeMap::new();
    for p in lines("phrases.jsonl") {
        let k = keypoints(&p["keypoints"]);
        let log = signal(&p);
        let a = decide(&k, log);
        let want = serde_json::to_value(&a).unwrap();
        assert_eq!(serde_json::to_value(decide(&k, &opposite_call(log))).unwrap(), want, "{}: opposite call", p["id"]);
        let b = decide(&mirrored(&k, |x| -x), &mirrored_log(log));
        assert_ne!(a.winner, b.winner, "{}: mirrored", p["id"]);
        assert_eq!(a.margin, -b.margin, "{}", p["id"]);
        assert_eq!((a.confidence, a.uncertain), (b.confidence, b.uncertain), "{}", p["id"]);

        assert!((0.5..1.0).contains(&a.confidence), "{}: {}", p["id"], a.confidence);
        assert_eq!(a.uncertain, !v3::doubts(&a).is_empty());
        if a.confidence < SURE_AT {
            assert!(a.uncertain, "{}: sure at {}", p["id"], a.confidence);
        }
        assert!(!matches!(a.decided_by, DecidedBy::Beat | DecidedBy::Parry), "{}: a rule v3 dropped", p["id"]);
        assert!(a.explanation.starts_with(&format!("{} gets the touch: ", if a.winner == "left" { "Left" } else { "Right" })), "{}", a.explanation);
        assert!(a.explanation.contains(&format!("Confidence {:.0}%", 100.0 * a.confidence)), "{}", a.explanation);
        *rules.entry(format!("{:?}", a.decided_by)).or_insert(0) += 1;
    }
    // Every rule v3 keeps settles some of the recorded phrases.
    assert_eq!(rules.keys().cloned().collect::<Vec<_>>(), ["Advance", "LessGround", "SecondLight"], "{rules:?}");
}

/// Time-true: at twice the frame rate (a frame interpolated between each pair) the same winner on
/// at least 97 of the 100 phrases, and a sure call never changes.
#[test]
fn resampling_to_twice_the_rate_keeps_the_call() {
    let all = lines("phrases.jsonl");
    let mut same = 0;
    let mut problems = Vec::new();
    for p in &all {
        let k = keypoints(&p["keypoints"]);
        let log = parse_log(signal(p)).unwrap();
        let times = FrameTimes::estimate(k.frames(), &log);
        let a = v3::decide(&k, &log, &times).unwrap();
        let (k2, t2) = doubled(&k, times.times());
        let b = v3::decide(&k2, &log, &FrameTimes::from_timestamps(t2).unwrap()).unwrap();
        if a.winner == b.winner {
            same += 1;
        } else if !a.uncertain || !b.uncertain {
            problems.push(format!("{}: a sure call changed ({} → {})", p["id"], a.margin, b.margin));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(same >= 97, "same winner on only {same} of {}", all.len());
}
