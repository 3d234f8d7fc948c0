//! A server's stored sessions as phrases to evaluate: every session directory whose phrase has
//! a referee call (`PUT /sessions/{id}/call`) and a decided result, read back as a
//! `phrases.jsonl` row (`evaluate --sessions`, `export`). Only reads: a server may be writing
//! the directory meanwhile.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use referee_store::{self as store, RefereeCall};
use serde_json::{json, Value};

use crate::workbook;

/// Arguments of `export`.
#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    /// A server's sessions directory (`REFEREE_SESSIONS_DIR`).
    #[arg(long)]
    pub sessions: PathBuf,
    /// Where to write the rows (JSON lines); standard output when not given.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Why a session with a referee call could not be read as a row.
#[derive(Debug, thiserror::Error)]
pub enum RowError {
    /// A file of the session could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The stored result is not the answer's JSON.
    #[error("{path} is not a stored answer: {reason}")]
    BadResult {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The keypoints workbook could not be read.
    #[error("the keypoints workbook {path}: {source}")]
    Workbook {
        /// The file.
        path: PathBuf,
        /// Why.
        source: workbook::WorkbookError,
    },
}

/// What a sessions directory gave: the rows, and the sessions with a call that could not be read.
#[derive(Debug)]
pub struct SessionRows {
    /// One row per decided session with a call, sorted by id.
    pub rows: Vec<Value>,
    /// Each session with a call whose files could not be read: its id and why.
    pub skipped: Vec<(String, RowError)>,
}

/// The rows of every session under `dir` with a referee call and a decided result, sorted by
/// id; and, apart, each session with a call that could not be read. Sessions without a call,
/// or not decided yet, are left out.
pub fn read_sessions(dir: &Path) -> Result<SessionRows, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read the sessions directory {}: {e}", dir.display()))?;
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().join(store::REFEREE_CALL).is_file())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .collect();
    ids.sort();
    let mut found = SessionRows { rows: Vec::new(), skipped: Vec::new() };
    for id in ids {
        match session_row(&dir.join(&id), &id) {
            Ok(Some(row)) => found.rows.push(row),
            Ok(None) => {}
            Err(e) => found.skipped.push((id, e)),
        }
    }
    Ok(found)
}

/// Reports each skipped session on stderr.
fn report_skipped(skipped: &[(String, RowError)]) {
    for (id, error) in skipped {
        eprintln!("session {id} skipped: {error}");
    }
}

/// The phrases stored under `dir` that have a referee call and a decided result, as
/// `phrases.jsonl` rows sorted by id; a session with a call whose files cannot be read is
/// reported on stderr and left out.
pub fn phrase_rows(dir: &Path) -> Result<Vec<Value>, String> {
    let found = read_sessions(dir)?;
    report_skipped(&found.skipped);
    Ok(found.rows)
}

/// One session's row: `id`, `signal`, `normalisation_constant`, `keypoints`, `referee_call`
/// (null for `none`), `frame_times` (when every frame in the workbook has a stored timestamp),
/// `evening` and the stored `decisions`. `None` when it has no call or is not decided.
fn session_row(dir: &Path, id: &str) -> Result<Option<Value>, RowError> {
    let io = |path: PathBuf| move |source| RowError::Io { path, source };
    let Some(call) = RefereeCall::read(dir).map_err(io(dir.join(store::REFEREE_CALL)))? else { return Ok(None) };
    let result_path = dir.join(store::RESULT);
    let result: Value = match std::fs::read(&result_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RowError::BadResult { path: result_path.clone(), reason: e.to_string() })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(RowError::Io { path: result_path, source: e }),
    };
    let signal = std::fs::read_to_string(dir.join(store::SIGNAL)).map_err(io(dir.join(store::SIGNAL)))?;
    let bad = |reason: &str| RowError::BadResult { path: result_path.clone(), reason: reason.to_owned() };
    let named = result["artifacts"]["excel"].as_str().ok_or_else(|| bad("no artifacts.excel (the keypoints workbook)"))?;
    let book = workbook_path(dir, Path::new(named));
    let keypoints = workbook::read_workbook(&book).map_err(|source| RowError::Workbook { path: book.clone(), source })?;
    let frames = store::read_index(dir).map_err(io(dir.join(store::INDEX)))?;
    let mut row = json!({
        "id": id,
        "signal": signal,
        "normalisation_constant": result["metadata"]["normalisation_constant"],
        // NaN (a point not seen) serialises as null, the shape `Keypoints::from_json` reads.
        "keypoints": serde_json::to_value(&keypoints).map_err(|e| bad(&e.to_string()))?,
        "referee_call": call.call.winner(),
    });
    let times: Option<Vec<f64>> = frames.iter().take(keypoints.frames()).map(|f| f.timestamp).collect();
    if let Some(times) = times.filter(|t| t.len() == keypoints.frames()) {
        row["frame_times"] = json!(times);
    }
    row["evening"] = json!(evening(&signal, &call));
    row["decisions"] = result["decisions"].clone();
    Ok(Some(row))
}

/// The workbook the answer names, found in the session's own directory (where the server wrote
/// it; the answer's path may be from before the directory was moved), else where it says.
fn workbook_path(dir: &Path, named: &Path) -> PathBuf {
    match named.file_name().map(|name| dir.join(name)) {
        Some(here) if here.is_file() => here,
        _ => named.to_owned(),
    }
}

/// The evening a phrase belongs to, `YYYYMMDD`: the date of the log's `Phrase N initialized at
/// YYYY-MM-DD …` line (the piste's own clock), else the date the call was given.
fn evening(signal: &str, call: &RefereeCall) -> Option<String> {
    let from_log = signal.lines().find_map(|line| {
        let (_, after) = line.split_once(" initialized at ")?;
        date(after.trim_start())
    });
    from_log.or_else(|| date(&call.at))
}

/// `YYYYMMDD` from a text starting `YYYY-MM-DD`.
fn date(text: &str) -> Option<String> {
    let day = text.get(..10)?;
    let digits: String = day.split('-').collect();
    let shaped = day.as_bytes()[4] == b'-' && day.as_bytes()[7] == b'-';
    (shaped && digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit())).then_some(digits)
}

/// `export`: the rows of [`phrase_rows`] as JSON lines, to `--out` or standard output, and
/// their count on stderr.
pub fn run_export(args: ExportArgs) -> Result<(), String> {
    let SessionRows { rows, skipped } = read_sessions(&args.sessions)?;
    report_skipped(&skipped);
    let mut text = String::new();
    for row in &rows {
        text.push_str(&serde_json::to_string(row).map_err(|e| e.to_string())?);
        text.push('\n');
    }
    match &args.out {
        Some(path) => std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes()).map_err(|e| format!("cannot write the rows: {e}"))?,
    }
    eprintln!("{} phrases with a referee call exported from {} ({} skipped: unreadable)", rows.len(), args.sessions.display(), skipped.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinematics::{Keypoints, Row};
    use referee_store::Call;

    const LOG: &str = "Phrase 7 initialized at 2026-12-05 19:40:02\n\
                       Recording started at 2026-12-05 19:40:02\n 0.001s | Phrase recording started\n\
                       \x20 0.800s | HIT: Left scores on Right!\n 0.850s | HIT: Simultaneous valid hits!\n\
                       \x20 0.900s | Phrase recording ended\nScores -> Fencer 1: HIT, Fencer 2: HIT\nPhrase ended\n";

    /// A temporary sessions directory, removed on drop.
    struct Dir(PathBuf);

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn keypoints(frames: usize) -> Keypoints {
        let row = |base: f64, i: usize| -> Row { std::array::from_fn(|k| if k == 3 { f64::NAN } else { base + i as f64 * 0.01 + k as f64 * 0.001 }) };
        Keypoints {
            left_x: (0..frames).map(|i| row(3.0, i)).collect(),
            left_y: (0..frames).map(|i| row(4.0, i)).collect(),
            right_x: (0..frames).map(|i| row(8.0, i)).collect(),
            right_y: (0..frames).map(|i| row(4.5, i)).collect(),
        }
    }

    /// A session as a server leaves it: frames with timestamps (`times`), the log, the workbook
    /// and the answer (when `decided`), and the call (when given).
    fn session(root: &Path, id: &str, times: &[Option<f64>], decided: bool, call: Option<Call>) -> PathBuf {
        let dir = root.join(id);
        let (mut frames, _) = store::FrameStore::open(&dir).unwrap();
        for (i, t) in times.iter().enumerate() {
            frames.append(i as u64, *t, b"\xFF\xD8jpeg\xFF\xD9").unwrap();
        }
        frames.close();
        frames.save_signal(LOG).unwrap();
        if decided {
            let book = dir.join("frames_keypoints.xlsx");
            workbook::write_workbook(&keypoints(3), &book).unwrap();
            let result = json!({
                "decision": {"winner": "left"},
                "artifacts": {"excel": book.to_str().unwrap(), "video": "", "signal": "", "result_json": ""},
                "metadata": {"video_angle": "middle", "normalisation_constant": 150.5, "frames_processed": 3},
                "engine": "legacy",
                "decisions": {"legacy": {"winner": "left"}, "v2": {"winner": "right"}},
            });
            store::write_durably(&dir.join(store::RESULT), result.to_string().as_bytes()).unwrap();
        }
        if let Some(call) = call {
            RefereeCall { call, at: "2026-12-06T21:00:00Z".into() }.save(&dir).unwrap();
        }
        dir
    }

    fn temp(tag: &str) -> Dir {
        let dir = std::env::temp_dir().join(format!("referee-engine-sessions-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }

    #[test]
    fn decided_sessions_with_a_call_become_rows_sorted_by_id() {
        let root = temp("rows");
        // Four frames stored, three in the workbook (the last came after the call).
        let times = [Some(0.0), Some(0.0667), Some(0.1333), Some(0.2)];
        session(&root.0, "piste-b", &times, true, Some(Call::Right));
        session(&root.0, "piste-a", &[Some(0.0), None, Some(0.1333)], true, Some(Call::NoTouch));
        session(&root.0, "no-call", &times, true, None);
        session(&root.0, "uploading", &times[..2], false, Some(Call::Left));
        let SessionRows { rows, skipped } = read_sessions(&root.0).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["piste-a", "piste-b"], "only decided phrases with a call, by id");
        let b = &rows[1];
        let keys: Vec<&str> = b.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["id", "signal", "normalisation_constant", "keypoints", "referee_call", "frame_times", "evening", "decisions"]);
        assert_eq!(b["signal"], LOG);
        assert_eq!(b["referee_call"], "right");
        assert_eq!(b["normalisation_constant"], 150.5);
        assert_eq!(b["frame_times"], json!([0.0, 0.0667, 0.1333]), "one per workbook frame");
        assert_eq!(b["evening"], "20261205", "the log's own date");
        assert_eq!(b["decisions"]["v2"]["winner"], "right");
        // The keypoints read back as the evaluator reads them, missing points as null.
        assert!(b["keypoints"]["left_x"][0][3].is_null());
        let back = Keypoints::from_json(b["keypoints"].clone()).unwrap();
        let want = keypoints(3);
        for (got, want) in [(&back.left_x, &want.left_x), (&back.right_y, &want.right_y)] {
            assert_eq!(got.len(), 3);
            for (g, w) in got.iter().flatten().zip(want.iter().flatten()) {
                assert!(g == w || (g.is_nan() && w.is_nan()), "{g} vs {w}");
            }
        }
        // No touch is a row without a winner; a frame without a time leaves the times out.
        let a = &rows[0];
        assert!(a["referee_call"].is_null());
        assert!(a.get("frame_times").is_none(), "{a}");
    }

    #[test]
    fn a_session_with_a_call_but_unreadable_files_is_reported_and_skipped() {
        let root = temp("errors");
        let times = [Some(0.0), Some(0.1), Some(0.2)];
        session(&root.0, "good", &times, true, Some(Call::Left));
        let torn = session(&root.0, "torn-result", &times, true, Some(Call::Left));
        std::fs::write(torn.join(store::RESULT), b"{\"decision\":").unwrap();
        let lost = session(&root.0, "lost-workbook", &times, true, Some(Call::Right));
        std::fs::remove_file(lost.join("frames_keypoints.xlsx")).unwrap();
        let bad_call = session(&root.0, "bad-call", &times, true, None);
        std::fs::write(bad_call.join(store::REFEREE_CALL), b"{\"call\":\"up\"}").unwrap();
        let SessionRows { rows, skipped: errors } = read_sessions(&root.0).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["id"], "good");
        assert_eq!(rows[0]["evening"], "20261205");
        let failed: Vec<&str> = errors.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(failed, ["bad-call", "lost-workbook", "torn-result"]);
        assert!(matches!(errors[1].1, RowError::Workbook { .. }), "{}", errors[1].1);
        assert!(matches!(errors[2].1, RowError::BadResult { .. }), "{}", errors[2].1);
        assert_eq!(phrase_rows(&root.0).unwrap(), rows, "phrase_rows reports and skips them");
        assert!(read_sessions(&root.0.join("nowhere")).is_err(), "a missing directory is an error");
    }

    #[test]
    fn export_writes_json_lines_that_evaluate_reads() {
        let root = temp("export");
        session(&root.0, "p1", &[Some(0.0), Some(0.1), Some(0.2)], true, Some(Call::Left));
        let out = root.0.join("rows.jsonl");
        run_export(ExportArgs { sessions: root.0.clone(), out: Some(out.clone()) }).unwrap();
        let rows = super::super::evaluate::read_rows(&out).unwrap();
        assert_eq!(rows, phrase_rows(&root.0).unwrap());
        assert_eq!(rows[0]["referee_call"], "left");
    }

    #[test]
    fn the_evening_is_the_logs_date_else_the_calls() {
        let call = RefereeCall { call: Call::Left, at: "2026-12-06T21:00:00Z".into() };
        assert_eq!(evening(LOG, &call).as_deref(), Some("20261205"));
        assert_eq!(evening("Scores -> Fencer 1: HIT\n", &call).as_deref(), Some("20261206"));
        assert_eq!(evening("Phrase 1 initialized at soon\n", &RefereeCall { at: "later".into(), ..call }), None);
    }
}
