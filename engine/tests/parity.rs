//! The engine against the legacy's own outputs (tests/fixtures at the repository root, copied
//! from the recorded data): 200 scoring-box logs, 100 real phrases and 30 tracker sequences.
//! Labels, frames, counts and reasons must match exactly; numbers to a relative 1e-9 (1e-5 where
//! the legacy worked in float32: the tracker and normalisation). Checked through the library
//! here and through `referee-engine` in `cli` (the root's `tests/engine_parity.rs` runs the same
//! checks through `ai-referee`).

/// The fixtures folder (the repository root's).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures");
/// The binary under test.
const BINARY: &str = env!("CARGO_BIN_EXE_referee-engine");

mod common;
#[path = "cli/legacy.rs"]
mod cli;

use common::{check, compare_error_or, diff, keypoints, lines};
use referee_engine::decision::Engine;
use referee_engine::{signal, single_light};
use serde_json::{json, Value};

#[test]
fn signals_parse_as_the_legacy_parsed_them() {
    let want = lines("signals.jsonl");
    let got: Vec<Value> = want
        .iter()
        .map(|w| match signal::parse(w["signal"].as_str().unwrap()) {
            Ok(p) => json!({"id": w["id"], "phrase": p}),
            Err(e) => json!({"id": w["id"], "error": e.legacy_message("<path>")}),
        })
        .collect();
    check("signals (library)", &got, &want, |g, w, out| compare_error_or(g, w, "phrase", "expected", 1e-9, out));
}

#[test]
fn the_services_reading_keeps_every_double_touch_and_gives_each_real_single_light_to_the_lit_fencer() {
    let mut singles = 0;
    for w in lines("signals.jsonl") {
        let (id, text) = (&w["id"], w["signal"].as_str().unwrap());
        match (signal::parse(text), signal::read_touch(text)) {
            (Ok(phrase), Ok(signal::Touch::Double(read))) => assert_eq!(phrase, read, "{id}"),
            (Err(signal::SignalError::NotDoubleTouch { fencer1, fencer2 }), Ok(signal::Touch::Single(light))) => {
                singles += 1;
                // Fencer 1 is the right of the picture, as the legacy reads the box.
                let lit = match (fencer1.as_str(), fencer2.as_str()) {
                    ("HIT", f2) if f2 != "HIT" => "right",
                    (f1, "HIT") if f1 != "HIT" => "left",
                    other => panic!("{id}: not one light: {other:?}"),
                };
                assert_eq!(light.winner, lit, "{id}");
                assert!(light.hit_time.is_some(), "{id}: the real logs time their one hit");
                assert_eq!(single_light::legacy_decision(&light).winner, lit, "{id}");
            }
            (Err(refused), Err(again)) => assert_eq!(refused, again, "{id}: refused alike"),
            other => panic!("{id}: {other:?}"),
        }
    }
    assert_eq!(singles, 96, "the fixtures' 96 real single-light logs");
}

#[test]
fn phrases_get_the_legacy_decision() {
    let want = lines("phrases.jsonl");
    let got: Vec<Value> = want
        .iter()
        .map(|w| {
            let phrase = signal::parse(w["signal"].as_str().unwrap()).unwrap();
            let d = Engine::Legacy.decide(&keypoints(&w["keypoints"]), &phrase, w["normalisation_constant"].as_f64());
            json!({"id": w["id"], "decision": d})
        })
        .collect();
    check("phrases (library)", &got, &want, |g, w, out| diff(&g["decision"], &w["legacy_decision"], 1e-9, "decision", out));
}
