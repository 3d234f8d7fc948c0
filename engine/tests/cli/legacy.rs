//! The legacy parity through the binary under test (`BINARY`: `referee-engine` here, `ai-referee`
//! from the root's `tests/engine_parity.rs`): `parse-signal`, `decide` (phrases, or a log and a
//! keypoints workbook) and `track` answer as the legacy did; a bad line gets an error line; a
//! file it cannot read stops it with status 1, a bad flag with clap's 2.

use std::process::Command;

use referee_engine::workbook;
use serde_json::Value;

use crate::common::{check, compare_error_or, diff, fixture_arg, json_lines, keypoints, lines, program, run_binary, TempDir};

#[test]
fn parse_signal_answers_as_the_legacy_parsed() {
    let want = lines("signals.jsonl");
    let got = json_lines(&run_binary(&["parse-signal", "--signals", &fixture_arg("signals.jsonl")]));
    let name = format!("signals ({} parse-signal)", program());
    check(&name, &got, &want, |g, w, out| compare_error_or(g, w, "phrase", "expected", 1e-9, out));
}

#[test]
fn decide_gives_the_legacy_decision() {
    let want = lines("phrases.jsonl");
    let got = json_lines(&run_binary(&["decide", "--phrases", &fixture_arg("phrases.jsonl")]));
    let name = format!("phrases ({} decide)", program());
    check(&name, &got, &want, |g, w, out| diff(&g["decision"], &w["legacy_decision"], 1e-9, "decision", out));
}

#[test]
fn tracks_and_normalisation_match_the_legacy() {
    let want = lines("tracks.jsonl");
    let got = json_lines(&run_binary(&["track", "--cases", &fixture_arg("tracks.jsonl")]));
    check(&format!("tracks ({} track)", program()), &got, &want, |g, w, out| match w.get("expected_error") {
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
        let got = run_binary(&["decide", "--signal", log.to_str().unwrap(), "--keypoints", book.to_str().unwrap(), "--normalisation-constant", &c]);
        let got: Value = serde_json::from_str(&got).unwrap();
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
    let got = json_lines(&run_binary(&["decide", "--phrases", path.to_str().unwrap()]));
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|l| l["error"].is_string()), "{got:?}");
    assert_eq!(got[0]["id"], "a");
    let got = json_lines(&run_binary(&["track", "--cases", path.to_str().unwrap()]));
    assert!(got.iter().all(|l| l["error"].is_string()));
}

#[test]
fn a_file_it_cannot_read_exits_1_and_a_bad_flag_exits_2() {
    let dir = TempDir::new("exit-status");
    let missing = dir.path().join("missing.jsonl");
    for command in [["decide", "--phrases"], ["parse-signal", "--signals"], ["track", "--cases"], ["evaluate", "--phrases"]] {
        let out = Command::new(crate::BINARY).args(command).arg(&missing).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{command:?}");
        assert!(out.stdout.is_empty(), "{command:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = format!("{}: cannot read {}: ", program(), missing.display());
        assert!(stderr.starts_with(&want), "{command:?}: {stderr}");
    }
    let out = Command::new(crate::BINARY).args(["decide", "--engine", "v4", "--phrases"]).arg(&missing).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown engine \"v4\" (available: legacy, v2, v3)"));
}
