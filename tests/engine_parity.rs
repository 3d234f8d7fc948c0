//! The engine against the legacy's own outputs (tests/fixtures, copied from the recorded data):
//! 200 scoring-box logs, 100 real phrases and 30 tracker sequences. Labels, frames, counts and
//! reasons must match exactly; numbers to a relative 1e-9 (1e-5 where the legacy worked in
//! float32: the tracker and normalisation). Checked through the library and through the binary.

mod common;

use std::path::PathBuf;
use std::process::Command;

use ai_referee::analysis::decision::Engine;
use ai_referee::analysis::kinematics::Keypoints;
use ai_referee::analysis::signal;
use ai_referee::analysis::workbook;
use common::TempDir;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    common::repo().join("tests/fixtures").join(name)
}

fn lines(name: &str) -> Vec<Value> {
    std::fs::read_to_string(fixture(name)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Differences between `got` and `want`: same keys in the same order, same strings, booleans,
/// nulls and integers; floats within `tol` relative.
fn diff(got: &Value, want: &Value, tol: f64, path: &str, out: &mut Vec<String>) {
    match (got, want) {
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            if ka != kb {
                out.push(format!("{path}: keys {ka:?} vs {kb:?}"));
                return;
            }
            for (k, v) in a {
                diff(v, &b[k], tol, &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            if a.len() != b.len() {
                out.push(format!("{path}: {} items vs {}", a.len(), b.len()));
                return;
            }
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff(x, y, tol, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Number(a), Value::Number(b)) if a.is_f64() || b.is_f64() => {
            let (x, y) = (a.as_f64().unwrap(), b.as_f64().unwrap());
            if (x - y).abs() > tol * x.abs().max(y.abs()) {
                out.push(format!("{path}: {x} vs {y}"));
            }
        }
        _ if got != want => out.push(format!("{path}: {got} vs {want}")),
        _ => {}
    }
}

fn keypoints(v: &Value) -> Keypoints {
    Keypoints::from_json(v.clone()).unwrap()
}

/// Runs `ai-referee ARGS` and returns its JSON lines.
fn run_binary(args: &[&str]) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_ai-referee")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Compares answers with the fixture, line by line; prints and returns the mismatches.
fn check(name: &str, got: &[Value], want: &[Value], compare: impl Fn(&Value, &Value, &mut Vec<String>)) {
    assert_eq!(got.len(), want.len(), "{name}: one answer per line");
    let mut failures = Vec::new();
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["id"], w["id"]);
        let mut out = Vec::new();
        compare(g, w, &mut out);
        if !out.is_empty() {
            failures.push(format!("{}: {}", w["id"], out.iter().take(3).cloned().collect::<Vec<_>>().join("; ")));
        }
    }
    eprintln!("{name}: {}/{} match the legacy", want.len() - failures.len(), want.len());
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

fn compare_error_or(got: &Value, want: &Value, key: &str, expected_key: &str, tol: f64, out: &mut Vec<String>) {
    match want.get("expected_error") {
        Some(error) => diff(&got["error"], error, 0.0, "error", out),
        None if got.get("error").is_some() => out.push(format!("unexpected error {}", got["error"])),
        None => diff(&got[key], &want[expected_key], tol, key, out),
    }
}

#[test]
fn signals_parse_as_the_legacy_parsed_them() {
    let want = lines("signals.jsonl");
    // The library.
    let got: Vec<Value> = want
        .iter()
        .map(|w| match signal::parse(w["signal"].as_str().unwrap()) {
            Ok(p) => serde_json::json!({"id": w["id"], "phrase": p}),
            Err(e) => serde_json::json!({"id": w["id"], "error": e.legacy_message("<path>")}),
        })
        .collect();
    check("signals (library)", &got, &want, |g, w, out| compare_error_or(g, w, "phrase", "expected", 1e-9, out));
    // The binary.
    let got = run_binary(&["parse-signal", "--signals", fixture("signals.jsonl").to_str().unwrap()]);
    check("signals (ai-referee parse-signal)", &got, &want, |g, w, out| compare_error_or(g, w, "phrase", "expected", 1e-9, out));
}

#[test]
fn phrases_get_the_legacy_decision() {
    let want = lines("phrases.jsonl");
    let got: Vec<Value> = want
        .iter()
        .map(|w| {
            let phrase = signal::parse(w["signal"].as_str().unwrap()).unwrap();
            let d = Engine::Legacy.decide(&keypoints(&w["keypoints"]), &phrase, w["normalisation_constant"].as_f64());
            serde_json::json!({"id": w["id"], "decision": d})
        })
        .collect();
    let compare = |g: &Value, w: &Value, out: &mut Vec<String>| diff(&g["decision"], &w["legacy_decision"], 1e-9, "decision", out);
    check("phrases (library)", &got, &want, compare);
    let got = run_binary(&["decide", "--phrases", fixture("phrases.jsonl").to_str().unwrap()]);
    check("phrases (ai-referee decide)", &got, &want, compare);
}

#[test]
fn tracks_and_normalisation_match_the_legacy() {
    let want = lines("tracks.jsonl");
    let got = run_binary(&["track", "--cases", fixture("tracks.jsonl").to_str().unwrap()]);
    check("tracks (ai-referee track)", &got, &want, |g, w, out| match w.get("expected_error") {
        Some(error) => diff(&g["error"], error, 0.0, "error", out),
        None => {
            diff(&g["tracks"], &w["tracks"], 0.0, "tracks", out);
            diff(&g["normalised"], &w["expected"], 1e-5, "normalised", out);
        }
    });
}

#[test]
fn a_phrase_from_a_keypoints_workbook_gets_the_same_decision() {
    let dir = TempDir::new("workbook");
    for w in lines("phrases.jsonl").iter().step_by(17) {
        let book = dir.path().join("phrase_keypoints.xlsx");
        let log = dir.path().join("phrase.txt");
        workbook::write_workbook(&keypoints(&w["keypoints"]), &book).unwrap();
        std::fs::write(&log, w["signal"].as_str().unwrap()).unwrap();
        let c = w["normalisation_constant"].as_f64().unwrap().to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_ai-referee"))
            .args(["decide", "--signal", log.to_str().unwrap(), "--keypoints", book.to_str().unwrap()])
            .args(["--normalisation-constant", &c])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut errors = Vec::new();
        diff(&got, &w["legacy_decision"], 1e-9, "decision", &mut errors);
        assert!(errors.is_empty(), "{}: {errors:?}", w["id"]);
    }
}

#[test]
fn bad_lines_get_error_lines_not_a_crash() {
    let dir = TempDir::new("bad-lines");
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"id\": \"a\", \"signal\": 3}\nnot json\n{\"id\": \"b\", \"signal\": \"x\", \"keypoints\": {}}\n").unwrap();
    let got = run_binary(&["decide", "--phrases", path.to_str().unwrap()]);
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|l| l["error"].is_string()), "{got:?}");
    assert_eq!(got[0]["id"], "a");
    let got = run_binary(&["track", "--cases", path.to_str().unwrap()]);
    assert!(got.iter().all(|l| l["error"].is_string()));
}
