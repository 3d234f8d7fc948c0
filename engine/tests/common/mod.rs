//! Helpers shared by the engine's tests and by the root's CLI checks that include them: the
//! fixtures, a JSON diff with a tolerance, running the binary under test, temporary directories.
//!
//! The including test target defines, at its root, `FIXTURES` (the `tests/fixtures` folder) and
//! `BINARY` (the program that answers `decide`, `parse-signal`, `track` and `evaluate`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use referee_engine::kinematics::{Keypoints, Row};
use referee_engine::signal::lines::{is_referee_call_line, strip_referee_call};
use serde_json::Value;

/// The fixture file `name`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(crate::FIXTURES).join(name)
}

/// The fixture file `name` as a string, for command lines.
pub fn fixture_arg(name: &str) -> String {
    fixture(name).to_str().unwrap().to_owned()
}

/// The fixture file `name`'s JSON lines.
pub fn lines(name: &str) -> Vec<Value> {
    json_lines(&std::fs::read_to_string(fixture(name)).unwrap())
}

/// JSON lines parsed.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A phrase line's keypoints (or any keypoints object).
pub fn keypoints(v: &Value) -> Keypoints {
    Keypoints::from_json(v.clone()).unwrap()
}

/// Runs `BINARY ARGS`, which must succeed; returns its stdout.
pub fn run_binary(args: &[&str]) -> String {
    let out = Command::new(crate::BINARY).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// The program's name as it reports errors (`ai-referee`, `referee-engine`).
pub fn program() -> String {
    Path::new(crate::BINARY).file_stem().unwrap().to_str().unwrap().to_owned()
}

/// Differences between `got` and `want`: same keys in the same order, same strings, booleans,
/// nulls and integers; floats within `tol` relative.
pub fn diff(got: &Value, want: &Value, tol: f64, path: &str, out: &mut Vec<String>) {
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

/// Compares answers with the fixture, line by line; prints the count that match and fails
/// with the mismatches.
pub fn check(name: &str, got: &[Value], want: &[Value], compare: impl Fn(&Value, &Value, &mut Vec<String>)) {
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

/// `got[key]` against `want[expected_key]`, or `got["error"]` against `want["expected_error"]`
/// where the legacy refused.
pub fn compare_error_or(got: &Value, want: &Value, key: &str, expected_key: &str, tol: f64, out: &mut Vec<String>) {
    match want.get("expected_error") {
        Some(error) => diff(&got["error"], error, 0.0, "error", out),
        None if got.get("error").is_some() => out.push(format!("unexpected error {}", got["error"])),
        None => diff(&got[key], &want[expected_key], tol, key, out),
    }
}

/// The log with the referee's call turned to the other fencer, in every way the logs write it.
pub fn opposite_call(log: &str) -> String {
    log.lines()
        .map(|l| {
            if is_referee_call_line(l) {
                l.replace("Left", "\u{0}").replace("Right", "Left").replace('\u{0}', "Right")
                    .replace("left", "\u{0}").replace("right", "left").replace('\u{0}', "right")
                    .replace("Red", "\u{0}").replace("Green", "Red").replace('\u{0}', "Green")
            } else {
                l.to_owned()
            }
        })
        .flat_map(|l| [l, "\n".to_owned()])
        .collect()
}

/// A fresh directory under the system's temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory named after `tag`, this process and a counter.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("referee-engine-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `lines` as JSON lines to the file `name` in here; returns its path as a string.
    pub fn json_lines(&self, name: &str, lines: &[Value]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// x → −x and the fencers swapped (the right fencer becomes the left one, front still at 16).
pub fn mirrored(k: &Keypoints, flip: impl Fn(f64) -> f64) -> Keypoints {
    let f = |rows: &[Row]| rows.iter().map(|r| r.map(&flip)).collect::<Vec<Row>>();
    Keypoints { left_x: f(&k.right_x), left_y: k.right_y.clone(), right_x: f(&k.left_x), right_y: k.left_y.clone() }
}

/// The log as the box would have written the mirrored phrase: lights and fencers swapped.
pub fn mirrored_log(log: &str) -> String {
    let log = strip_referee_call(log);
    let swapped = log
        .replace("Left scores on Right", "\u{0}")
        .replace("Right scores on Left", "Left scores on Right")
        .replace('\u{0}', "Right scores on Left");
    swapped
        .lines()
        .map(|l| match l.strip_prefix("Scores -> Fencer 1: ") {
            Some(rest) => {
                let (f1, f2) = rest.split_once(", Fencer 2: ").unwrap();
                format!("Scores -> Fencer 1: {f2}, Fencer 2: {f1}\n")
            }
            None => format!("{l}\n"),
        })
        .collect()
}

/// The phrase at twice its frame rate: a new frame halfway between each pair, by linear
/// interpolation (missing where either neighbour is), with the halfway times.
pub fn doubled(k: &Keypoints, times: &[f64]) -> (Keypoints, Vec<f64>) {
    let n = times.len();
    let mid = |a: &Row, b: &Row| -> Row { std::array::from_fn(|i| 0.5 * (a[i] + b[i])) };
    let up = |rows: &[Row]| -> Vec<Row> {
        (0..2 * n - 1).map(|j| if j % 2 == 0 { rows[j / 2] } else { mid(&rows[j / 2], &rows[j / 2 + 1]) }).collect()
    };
    let t = (0..2 * n - 1).map(|j| if j % 2 == 0 { times[j / 2] } else { 0.5 * (times[j / 2] + times[j / 2 + 1]) }).collect();
    (Keypoints { left_x: up(&k.left_x), left_y: up(&k.left_y), right_x: up(&k.right_x), right_y: up(&k.right_y) }, t)
}
