//! `v2` through the binary under test (`BINARY`: `referee-engine` here, `ai-referee` from the
//! root's `tests/engine_v2.rs`): `decide --engine v2` is blind to the referee's call, and
//! `evaluate`'s figures are those recomputed from `decide`'s output.

use serde_json::Value;

use crate::common::{fixture_arg, json_lines, keypoints, lines, opposite_call, run_binary, TempDir};
use referee_engine::signal::events::PhraseLog;
use referee_engine::signal::events::parse_log;
use referee_engine::signal::lines::strip_referee_call;

fn signal(p: &Value) -> &str {
    p["signal"].as_str().unwrap()
}

#[test]
fn the_binary_is_blind_to_the_call_too() {
    let all = lines("phrases.jsonl");
    let stripped: Vec<Value> = all
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p["signal"] = Value::String(opposite_call(&strip_referee_call(signal(&p))));
            p
        })
        .collect();
    let dir = TempDir::new("blind");
    let file = dir.json_lines("stripped.jsonl", &stripped);
    let original = run_binary(&["decide", "--engine", "v2", "--phrases", &fixture_arg("phrases.jsonl")]);
    let blind = run_binary(&["decide", "--engine", "v2", "--phrases", &file]);
    assert_eq!(original, blind);
    let lines = json_lines(&original);
    assert_eq!(lines.len(), all.len());
    for (line, p) in lines.iter().zip(&all) {
        assert_eq!(line["id"], p["id"]);
        let d = &line["decision"];
        assert!(d["winner"] == "left" || d["winner"] == "right", "{line}");
        let c = d["confidence"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&c), "{line}");
        assert!(d["uncertain"].is_boolean() && d["explanation"].as_str().unwrap().contains("gets the touch"));
        assert!(d["left"]["advance_s"].is_number() && d["right"]["gain_last_s"].is_number());
    }
}

/// Agreement figures recomputed from decisions: (n with a call, agree, sure, sure agree).
fn tally<'a>(rows: impl Iterator<Item = (&'a Value, &'a Value)>) -> (u64, u64, u64, u64) {
    let (mut n, mut agree, mut sure, mut sure_agree) = (0, 0, 0, 0);
    for (p, d) in rows {
        let Some(call) = p["referee_call"].as_str() else { continue };
        let ok = d["winner"].as_str() == Some(call);
        let is_sure = !d["uncertain"].as_bool().unwrap_or(false);
        n += 1;
        agree += u64::from(ok);
        sure += u64::from(is_sure);
        sure_agree += u64::from(ok && is_sure);
    }
    (n, agree, sure, sure_agree)
}

fn check_figures(got: &Value, want: (u64, u64, u64, u64), what: &str) {
    let (n, agree, sure, sure_agree) = want;
    assert_eq!(got["n"].as_u64(), Some(n), "{what}: {got}");
    assert_eq!(got["agree"].as_u64(), Some(agree), "{what}: {got}");
    assert_eq!(got["sure"].as_u64(), Some(sure), "{what}: {got}");
    assert_eq!(got["sure_agree"].as_u64(), Some(sure_agree), "{what}: {got}");
    assert!((got["agreement"].as_f64().unwrap() - agree as f64 / n as f64).abs() < 1e-12, "{what}");
    assert!((got["coverage"].as_f64().unwrap() - sure as f64 / n as f64).abs() < 1e-12, "{what}");
}

#[test]
fn evaluate_reports_what_decide_decides() {
    let all = lines("phrases.jsonl");
    let stripped: Vec<Value> = all
        .iter()
        .map(|p| {
            let mut p = p.clone();
            p["signal"] = Value::String(strip_referee_call(signal(&p)));
            p
        })
        .collect();
    let dir = TempDir::new("eval");
    let file = dir.json_lines("eval.jsonl", &stripped);
    let fixture = fixture_arg("phrases.jsonl");

    for engine in ["v2", "legacy"] {
        let decided = json_lines(&run_binary(&["decide", "--engine", engine, "--phrases", &file]));
        let decisions: Vec<&Value> = decided.iter().map(|l| &l["decision"]).collect();
        let report: Value = serde_json::from_str(&run_binary(&["evaluate", "--engine", engine, "--phrases", &fixture, "--folds", "5"])).unwrap();
        assert_eq!(report["engine"], engine);
        assert_eq!(report["decided"].as_u64(), Some(all.len() as u64), "{report}");
        let figures = &report["in_sample"];
        check_figures(&figures["overall"], tally(all.iter().zip(decisions.iter().copied())), engine);

        // Per type, from the log's times: short = first light within 2 s of the start;
        // 30 fps = frame count over the recording span of 20 or more.
        let typed = |keep: &dyn Fn(&PhraseLog, usize) -> bool| {
            tally(all.iter().zip(decisions.iter().copied()).filter(|(p, _)| {
                let log = parse_log(signal(p)).unwrap();
                keep(&log, keypoints(&p["keypoints"]).frames())
            }))
        };
        check_figures(&figures["by_type"]["short"], typed(&|l, _| l.time_to_hit() <= 2.0), engine);
        check_figures(&figures["by_type"]["long"], typed(&|l, _| l.time_to_hit() > 2.0), engine);
        check_figures(&figures["by_type"]["fps30"], typed(&|l, n| n as f64 / l.span() >= 20.0), engine);
        check_figures(&figures["by_type"]["fps15"], typed(&|l, n| (n as f64 / l.span()) < 20.0), engine);

        if engine == "legacy" {
            // The measurement: the legacy agrees with the referee on 51 of 96.
            assert_eq!(figures["overall"]["agree"].as_u64(), Some(51));
        } else {
            let cv = &report["cross_validated"];
            assert_eq!(cv["folds"].as_u64(), Some(5));
            // Per fold the beat window is refitted: it moves only dead heats settled by the lights.
            let windows = cv["beat_windows"].as_array().unwrap();
            assert_eq!(windows.len(), 5);
            for w in windows.iter().filter(|w| !w.is_null()) {
                let (lo, hi) = (w[0].as_f64().unwrap(), w[1].as_f64().unwrap());
                assert!((0.0..=hi).contains(&lo) && hi <= 0.3, "beat window {w}");
            }
            for kind in ["advance", "parry"] {
                assert_eq!(cv["figures"]["by_type"][kind]["agree"], figures["by_type"][kind]["agree"], "{kind} calls moved");
            }
            assert_eq!(cv["figures"]["overall"]["n"], figures["overall"]["n"]);
            let agreement = figures["overall"]["agreement"].as_f64().unwrap();
            assert!(agreement > 0.6, "v2 agrees on only {agreement}");
            // Decided by the advance, by a parry, or a dead heat settled by the lights, a beat or
            // the ground (never sure).
            let settled = |kinds: &[&str]| {
                tally(all.iter().zip(decisions.iter().copied()).filter(|(_, d)| kinds.iter().any(|k| d["decided_by"] == *k)))
            };
            check_figures(&figures["by_type"]["advance"], settled(&["advance"]), engine);
            check_figures(&figures["by_type"]["parry"], settled(&["parry"]), engine);
            check_figures(&figures["by_type"]["dead_heat"], settled(&["second_light", "less_ground", "beat"]), engine);
            assert_eq!(figures["by_type"]["dead_heat"]["sure"].as_u64(), Some(0));
            assert_eq!(figures["by_type"]["parry"]["sure"].as_u64(), Some(0));
            assert!(figures["by_type"]["dead_heat"]["n"].as_u64() > Some(0), "no dead heat among the phrases");
        }
    }
}
