//! `evaluate`: how often an engine agrees with the referee's recorded call, with the
//! call's own lines stripped from each log before deciding; overall, per phrase type, when sure,
//! with the reliability of its confidence; by evening for every engine (`by_evening.rs`); and (for
//! `v2`, `--folds`) cross-validated over what it fits, the sure margin and the beat window.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;
use serde_json::{json, Value};

use crate::choice::EngineChoice;
use crate::v2::{self, V2Decision, V2Params};
use crate::v3;

mod by_evening;

/// Phrases recorded at this many frames per second or more count as 30 fps ones.
const FPS30_FROM: f64 = 20.0;

/// Arguments of `evaluate` (`ai-referee evaluate`, `referee-engine evaluate`).
#[derive(Debug, Clone, Args)]
pub struct EvaluateArgs {
    /// JSON lines with `id`, `signal`, `keypoints` and `referee_call` (`left`, `right` or null);
    /// optional `normalisation_constant`, `frame_times` (seconds on the log's clock, one per
    /// frame) and `evening` (the session date that groups phrases for cross-validation).
    #[arg(long, required_unless_present = "sessions", conflicts_with = "sessions")]
    pub phrases: Option<PathBuf>,
    /// A server's sessions directory (`REFEREE_SESSIONS_DIR`): every stored phrase with a
    /// referee call (`PUT /sessions/{id}/call`), re-decided from its stored tracks.
    #[arg(long)]
    pub sessions: Option<PathBuf>,
    /// Which rules decide.
    #[arg(long, default_value = "v2")]
    pub engine: EngineChoice,
    /// Cross-validate v2's sure margin over this many folds (0: leave one out).
    #[arg(long)]
    pub folds: Option<usize>,
    /// Share of sure calls that must agree with the referee when fitting the sure margin.
    #[arg(long, default_value_t = v2::SURE_TARGET)]
    pub sure_target: f64,
    /// Also list every phrase (id, type, call, decision) in the table on stderr.
    #[arg(long)]
    pub per_phrase: bool,
}

/// One phrase's outcome.
#[derive(Debug, Clone)]
struct Outcome {
    id: Value,
    call: Option<String>,
    short: bool,
    fps30: bool,
    winner: String,
    /// The time-true engine's decision (none for the legacy engine).
    v2: Option<V2Decision>,
    /// The engine's confidence (the legacy's is always 1).
    confidence: f64,
    sure: bool,
}

impl Outcome {
    /// What settled the time-true engine's call (none for the legacy engine).
    fn decided_by(&self) -> Option<v2::DecidedBy> {
        self.v2.as_ref().map(|d| d.decided_by)
    }
}

/// Agreement figures over a set of phrases with a call.
#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    /// Phrases with a referee call.
    pub n: usize,
    /// Decisions equal to the call.
    pub agree: usize,
    /// agree / n.
    pub agreement: Option<f64>,
    /// Phrases marked sure.
    pub sure: usize,
    /// Sure decisions equal to the call.
    pub sure_agree: usize,
    /// sure_agree / sure.
    pub sure_accuracy: Option<f64>,
    /// sure / n.
    pub coverage: Option<f64>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn figures<'a>(outcomes: impl Iterator<Item = &'a Outcome>) -> Figures {
    let (mut n, mut agree, mut sure, mut sure_agree) = (0, 0, 0, 0);
    for o in outcomes {
        let Some(call) = &o.call else { continue };
        let ok = *call == o.winner;
        n += 1;
        agree += usize::from(ok);
        if o.sure {
            sure += 1;
            sure_agree += usize::from(ok);
        }
    }
    Figures {
        n,
        agree,
        agreement: ratio(agree, n),
        sure,
        sure_agree,
        sure_accuracy: ratio(sure_agree, sure),
        coverage: ratio(sure, n),
    }
}

/// Each phrase with a call: the engine's confidence and whether the referee agreed.
fn graded(outcomes: &[Outcome]) -> Vec<(f64, bool)> {
    outcomes.iter().filter_map(|o| Some((o.confidence, *o.call.as_ref()? == o.winner))).collect()
}

/// Overall and per type: short (first light within 2 s of the start) / long, 15 / 30 fps, and
/// for `v2` decided by the advance / a dead heat (settled by the lights, a beat or the ground) /
/// a parry.
fn report(outcomes: &[Outcome]) -> Value {
    json!({
        "overall": figures(outcomes.iter()),
        "reliability": by_evening::reliability(&graded(outcomes)),
        "by_type": {
            "short": figures(outcomes.iter().filter(|o| o.short)),
            "long": figures(outcomes.iter().filter(|o| !o.short)),
            "fps15": figures(outcomes.iter().filter(|o| !o.fps30)),
            "fps30": figures(outcomes.iter().filter(|o| o.fps30)),
            "advance": figures(outcomes.iter().filter(|o| o.decided_by() == Some(v2::DecidedBy::Advance))),
            "dead_heat": figures(outcomes.iter().filter(|o| o.decided_by().is_some_and(v2::DecidedBy::is_dead_heat))),
            "parry": figures(outcomes.iter().filter(|o| o.decided_by() == Some(v2::DecidedBy::Parry))),
            "second_light": figures(outcomes.iter().filter(|o| o.decided_by() == Some(v2::DecidedBy::SecondLight))),
            "ground": figures(outcomes.iter().filter(|o| matches!(o.decided_by(), Some(v2::DecidedBy::LessGround | v2::DecidedBy::MoreGround)))),
        }
    })
}

/// Decides one read phrase with `engine`.
fn outcome(p: &by_evening::Phrase, engine: EngineChoice) -> Result<Outcome, String> {
    let short = p.log.time_to_hit() <= v2::SHORT_PHRASE_S;
    let fps30 = p.times.rate() >= FPS30_FROM;
    let timed = |decided: Result<V2Decision, v2::V2Error>| decided.map(|d| (d.winner.clone(), d.confidence, !d.uncertain, Some(d))).map_err(|e| e.to_string());
    let (winner, confidence, sure, decision) = match engine {
        EngineChoice::Legacy => (p.legacy.clone()?, 1.0, true, None),
        EngineChoice::V2 => timed(v2::decide(&p.keypoints, &p.log, &p.times))?,
        EngineChoice::V3 => timed(v3::decide(&p.keypoints, &p.log, &p.times))?,
    };
    Ok(Outcome { id: p.id.clone(), call: p.call.map(|c| c.name().to_owned()), short, fps30, winner, v2: decision, confidence, sure })
}

/// What cross-validation fitted in each fold.
struct Fitted {
    sure_margins: Vec<f64>,
    beat_windows: Vec<Option<(f64, f64)>>,
}

/// `v2`'s fitted parts cross-validated: for each fold, the beat window and then the sure margin
/// are fitted on the other folds' phrases with a call, and settle this fold's dead heats and
/// which of its calls are sure. Folds are every k-th phrase (k = 0: one phrase per fold).
fn cross_validate(outcomes: &[Outcome], folds: usize, target: f64) -> (Vec<Outcome>, Fitted) {
    let n = outcomes.len();
    let k = if folds == 0 || folds > n { n } else { folds };
    let mut out = outcomes.to_vec();
    let mut fitted = Fitted { sure_margins: Vec::new(), beat_windows: Vec::new() };
    for fold in 0..k {
        let train: Vec<(&V2Decision, &str)> = outcomes
            .iter()
            .enumerate()
            .filter(|(i, _)| i % k != fold)
            .filter_map(|(_, o)| Some((o.v2.as_ref()?, o.call.as_deref()?)))
            .collect();
        let beat_window = v2::fit_beat_window(&train);
        let resettled: Vec<(V2Decision, bool)> = train
            .iter()
            .map(|&(d, call)| {
                let (winner, by) = d.settled_with(beat_window);
                (V2Decision { decided_by: by, ..d.clone() }, winner.name() == call)
            })
            .collect();
        let train: Vec<(&V2Decision, bool)> = resettled.iter().map(|(d, a)| (d, *a)).collect();
        let params = V2Params { sure_margin: v2::fit_sure_margin(&train, target), beat_window };
        fitted.sure_margins.push(params.sure_margin);
        fitted.beat_windows.push(beat_window);
        for (_, o) in out.iter_mut().enumerate().filter(|(i, _)| i % k == fold) {
            if let Some(d) = &mut o.v2 {
                let (winner, by) = d.settled_with(beat_window);
                d.decided_by = by;
                winner.name().clone_into(&mut o.winner);
                o.sure = d.doubts_with(&params).is_empty();
            }
        }
    }
    (out, fitted)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{:5.1}%", 100.0 * v))
}

/// The readable table for stderr.
fn table(title: &str, report: &Value) -> String {
    let mut s = format!("{title}\n  {:<12} {:>4} {:>9} {:>6} {:>9} {:>9}\n", "type", "n", "agreement", "sure", "sure acc", "coverage");
    let mut row = |name: &str, f: &Value| {
        let get = |k: &str| f[k].as_f64();
        s.push_str(&format!(
            "  {:<12} {:>4} {:>9} {:>6} {:>9} {:>9}\n",
            name,
            f["n"].as_u64().unwrap_or(0),
            pct(get("agreement")),
            f["sure"].as_u64().unwrap_or(0),
            pct(get("sure_accuracy")),
            pct(get("coverage"))
        ));
    };
    row("overall", &report["overall"]);
    for t in ["short", "long", "fps15", "fps30", "advance", "dead_heat", "parry", "second_light", "ground"] {
        if report["by_type"][t]["n"].as_u64() == Some(0) {
            continue;
        }
        row(t, &report["by_type"][t]);
    }
    s
}

/// The rows of a JSON-lines file (blank lines skipped).
pub fn read_rows(path: &Path) -> Result<Vec<Value>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        rows.push(serde_json::from_str(&line).map_err(|e| format!("line {} is not JSON: {e}", n + 1))?);
    }
    Ok(rows)
}

/// `evaluate`: JSON on stdout, a table on stderr.
pub fn run(args: EvaluateArgs) -> Result<(), String> {
    let rows = match (&args.phrases, &args.sessions) {
        (Some(path), _) => read_rows(path)?,
        (None, Some(dir)) => super::sessions::phrase_rows(dir)?,
        (None, None) => return Err("give --phrases or --sessions".into()),
    };
    let mut phrases = Vec::new();
    let mut outcomes = Vec::new();
    let mut errors = Vec::new();
    for value in &rows {
        match by_evening::Phrase::read(value).and_then(|p| Ok((outcome(&p, args.engine)?, p))) {
            Ok((o, p)) => {
                outcomes.push(o);
                phrases.push(p);
            }
            Err(e) => errors.push(json!({ "id": value.get("id"), "error": e })),
        }
    }
    let in_sample = report(&outcomes);
    let mut result = json!({
        "engine": args.engine.name(),
        "phrases": outcomes.len() + errors.len(),
        "decided": outcomes.len(),
        "referee_call_lines": "stripped before deciding",
    });
    if args.engine == EngineChoice::V3 {
        result["v3_params"] = json!(v3::SHIPPED);
    }
    if args.engine == EngineChoice::V2 {
        let all: Vec<(&V2Decision, bool)> =
            outcomes.iter().filter_map(|o| Some((o.v2.as_ref()?, *o.call.as_ref()? == o.winner))).collect();
        result["sure_margin"] = json!(V2Params::default().sure_margin);
        result["sure_margin_fitted_on_all"] = json!(v2::fit_sure_margin(&all, args.sure_target));
        result["sure_target"] = json!(args.sure_target);
    }
    result["in_sample"] = in_sample.clone();
    let mut text = table(&format!("{} on {} phrases (in sample)", args.engine.name(), outcomes.len()), &in_sample);
    let bands = by_evening::reliability(&graded(&outcomes));
    text.push_str(&by_evening::reliability_table(&format!("{} reliability (in sample)", args.engine.name()), &bands));
    if let (Some(folds), EngineChoice::V2) = (args.folds, args.engine) {
        let (cv, fitted) = cross_validate(&outcomes, folds, args.sure_target);
        let cv_report = report(&cv);
        let range = |xs: &mut dyn Iterator<Item = f64>| xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), m| (a.min(m), b.max(m)));
        let (lo, hi) = range(&mut fitted.sure_margins.iter().copied());
        let windows: Vec<(f64, f64)> = fitted.beat_windows.iter().flatten().copied().collect();
        let (wlo, _) = range(&mut windows.iter().map(|w| w.0));
        let (_, whi) = range(&mut windows.iter().map(|w| w.1));
        let none = fitted.beat_windows.len() - windows.len();
        text.push_str(&table(
            &format!(
                "cross-validated ({} folds; fitted per fold: sure margin {lo:.2}–{hi:.2}, beat window within {wlo:.2}–{whi:.2} s{})",
                fitted.sure_margins.len(),
                if none > 0 { format!(", none in {none}") } else { String::new() }
            ),
            &cv_report,
        ));
        result["cross_validated"] = json!({
            "folds": fitted.sure_margins.len(),
            "fitted": "per fold on the other folds: the beat window (which dead heats a blade contact settles), then the sure margin; the rest of the rule is fixed",
            "sure_margin_range": [lo, hi],
            "beat_windows": fitted.beat_windows,
            "figures": cv_report,
        });
    }
    let evenings = by_evening::evaluate(&phrases);
    text.push_str(&by_evening::table(&evenings));
    result["by_evening"] = serde_json::to_value(&evenings).map_err(|e| e.to_string())?;
    if args.per_phrase {
        for o in &outcomes {
            let (margin, doubts) = o.v2.as_ref().map_or((String::new(), String::new()), |d| (format!("{:+.2}", d.margin), d.doubts.join("; ")));
            text.push_str(&format!(
                "  {:<28} {:<5} {:<5} call {:<5} → {:<5} {} {:>6} {}\n",
                o.id.as_str().unwrap_or("?"),
                if o.short { "short" } else { "long" },
                if o.fps30 { "30fps" } else { "15fps" },
                o.call.as_deref().unwrap_or("-"),
                o.winner,
                if o.sure { "sure" } else { "    " },
                margin,
                doubts
            ));
        }
    }
    result["errors"] = json!(errors);
    eprint!("{text}");
    println!("{}", serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?);
    Ok(())
}
