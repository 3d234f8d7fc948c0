//! Cross-validation by evening: each session date's phrases decided by a `v3` fitted on the
//! other evenings only, beside the legacy rules, the advance-only baseline and `v2` as shipped,
//! with 95% intervals, the rules' firing counts and the reliability of the confidence.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::decision::Engine;
use crate::frame_times::FrameTimes;
use crate::kinematics::Keypoints;
use crate::motion;
use crate::side::Side;
use crate::signal::{self, events, lines};
use crate::v2::{self, DecidedBy, V2Decision};
use crate::v3::{self, fit, Rules, V3Params};

/// The advance-only baseline's window: whoever's hips moved further forward in the half second
/// before the first light. Fixed, never fitted.
pub const BASELINE_WINDOW_S: f64 = 0.5;

/// A phrase read for evaluation: the log blind to the call, frame times, and the legacy's call.
#[derive(Debug, Clone)]
pub struct Phrase {
    /// The row's `id`.
    pub id: Value,
    /// The session date that groups phrases (`evening`, else the id's leading `YYYYMMDD`).
    pub evening: String,
    /// The referee's call, if any.
    pub call: Option<Side>,
    /// Normalised keypoints.
    pub keypoints: Keypoints,
    /// The log's events.
    pub log: events::PhraseLog,
    /// One time per frame: the row's `frame_times`, else estimated from the log.
    pub times: FrameTimes,
    /// The legacy rules' winner, or why they could not decide.
    pub legacy: Result<String, String>,
}

impl Phrase {
    /// Reads a `phrases.jsonl` row, stripping the referee's call from its log first.
    pub fn read(row: &Value) -> Result<Phrase, String> {
        let id = row.get("id").cloned().unwrap_or(Value::Null);
        let log = row.get("signal").and_then(Value::as_str).ok_or("no signal")?;
        let log = lines::strip_referee_call(log);
        let keypoints = Keypoints::from_json(row.get("keypoints").cloned().ok_or("no keypoints")?)?;
        let call = match row.get("referee_call").and_then(Value::as_str) {
            Some("left") => Some(Side::Left),
            Some("right") => Some(Side::Right),
            _ => None,
        };
        let parsed = events::parse_log(&log).map_err(|e| e.to_string())?;
        let times = match row.get("frame_times").and_then(Value::as_array) {
            Some(times) => {
                let times: Option<Vec<f64>> = times.iter().map(Value::as_f64).collect();
                FrameTimes::from_stream_timestamps(times.ok_or("frame_times must be numbers")?).map_err(|e| e.to_string())?
            }
            None => FrameTimes::estimate(keypoints.frames(), &parsed),
        };
        let c = row.get("normalisation_constant").and_then(Value::as_f64);
        let legacy = signal::parse(&log).map(|phrase| Engine::Legacy.decide(&keypoints, &phrase, c).winner).map_err(|e| e.to_string());
        let evening = match row.get("evening").and_then(Value::as_str) {
            Some(e) => e.to_owned(),
            None => id.as_str().and_then(|s| s.get(..8)).filter(|d| d.bytes().all(|b| b.is_ascii_digit())).unwrap_or("unknown").to_owned(),
        };
        Ok(Phrase { id, evening, call, keypoints, log: parsed, times, legacy })
    }

    fn example(&self) -> Option<fit::Example<'_>> {
        Some(fit::Example { keypoints: &self.keypoints, log: &self.log, times: &self.times, call: self.call? })
    }

    /// The advance-only baseline: who gained more ground in the last `BASELINE_WINDOW_S`.
    fn advance_only(&self) -> Option<Side> {
        let t = self.times.times();
        let gain = |side: Side, xs| {
            let (_, position, _) = motion::hip_track(xs, t, side);
            motion::gain(t, &position, self.log.first_light, BASELINE_WINDOW_S)
        };
        let (l, r) = (gain(Side::Left, &self.keypoints.left_x)?, gain(Side::Right, &self.keypoints.right_x)?);
        Some(if l > r { Side::Left } else { Side::Right })
    }
}

/// Agreement over phrases with a call, with its 95% interval (Wilson).
#[derive(Debug, Clone, Serialize)]
pub struct Agreement {
    /// Phrases with a call.
    pub n: usize,
    /// Calls agreed with.
    pub agree: usize,
    /// agree / n.
    pub agreement: Option<f64>,
    /// 95% interval of the agreement.
    pub ci95: Option<[f64; 2]>,
}

impl Agreement {
    fn of(agree: usize, n: usize) -> Agreement {
        Agreement { n, agree, agreement: (n > 0).then(|| agree as f64 / n as f64), ci95: wilson(agree, n) }
    }
}

/// Wilson's 95% interval for `k` of `n`.
pub fn wilson(k: usize, n: usize) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    let (z, n, p) = (1.96f64, n as f64, k as f64 / n as f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    Some([(centre - half).max(0.0), (centre + half).min(1.0)])
}

/// One evening's agreements (phrases with a call).
#[derive(Debug, Clone, Serialize)]
pub struct EveningRow {
    /// The session date.
    pub evening: String,
    /// Phrases with a call.
    pub n: usize,
    /// Agreed with by the legacy rules.
    pub legacy: usize,
    /// By the advance-only baseline.
    pub advance_only: usize,
    /// By v2 as shipped.
    pub v2: usize,
    /// By v3 fitted on the other evenings.
    pub v3: usize,
}

/// How often a rule settled a call, on how many evenings, and how often the referee agreed.
#[derive(Debug, Clone, Serialize)]
pub struct RuleRow {
    /// What settled the call.
    pub rule: DecidedBy,
    /// Phrases it settled.
    pub phrases: usize,
    /// Evenings those came from.
    pub evenings: usize,
    /// Agreement on them.
    pub agreement: Agreement,
}

/// Calls marked sure.
#[derive(Debug, Clone, Serialize)]
pub struct Sure {
    /// Phrases with a call.
    pub n: usize,
    /// Marked sure.
    pub sure: usize,
    /// Sure and agreed.
    pub sure_agree: usize,
    /// sure_agree / sure, with its interval.
    pub accuracy: Agreement,
    /// sure / n.
    pub coverage: Option<f64>,
}

impl Sure {
    fn of(calls: &[(bool, bool)]) -> Sure {
        let sure = calls.iter().filter(|c| c.0).count();
        let sure_agree = calls.iter().filter(|c| c.0 && c.1).count();
        let n = calls.len();
        Sure { n, sure, sure_agree, accuracy: Agreement::of(sure_agree, sure), coverage: (n > 0).then(|| sure as f64 / n as f64) }
    }
}

/// One confidence band: phrases, mean confidence, observed agreement.
#[derive(Debug, Clone, Serialize)]
pub struct Band {
    /// Lowest confidence in the band.
    pub from: f64,
    /// Highest (exclusive, but for the last band).
    pub to: f64,
    /// Phrases in it.
    pub phrases: usize,
    /// Their mean confidence.
    pub predicted: Option<f64>,
    /// How often the referee agreed.
    pub observed: Option<f64>,
}

/// The reliability table of `(confidence, agreed)` pairs in bands of a tenth from one half.
pub fn reliability(calls: &[(f64, bool)]) -> Vec<Band> {
    let edges = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
    edges
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let last = i == edges.len() - 2;
            let inside: Vec<&(f64, bool)> = calls.iter().filter(|(c, _)| *c >= w[0] && (*c < w[1] || (last && *c <= w[1]))).collect();
            let n = inside.len();
            Band {
                from: w[0],
                to: w[1],
                phrases: n,
                predicted: (n > 0).then(|| inside.iter().map(|c| c.0).sum::<f64>() / n as f64),
                observed: (n > 0).then(|| inside.iter().filter(|c| c.1).count() as f64 / n as f64),
            }
        })
        .collect()
}

/// What one fold fitted.
#[derive(Debug, Clone, Serialize)]
pub struct Fold {
    /// The evening left out.
    pub evening: String,
    /// v3 fitted on the others.
    pub params: V3Params,
}

/// The by-evening evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct ByEvening {
    /// How the figures were made.
    pub method: &'static str,
    /// Per evening.
    pub evenings: Vec<EveningRow>,
    /// Overall, per engine: `legacy`, `advance_only`, `v2`, `v3`.
    pub overall: BTreeMap<&'static str, Agreement>,
    /// v3's sure calls, cross-validated.
    pub v3_sure: Sure,
    /// v2's sure calls (its margin was fitted on the recorded phrases: in sample there).
    pub v2_sure: Sure,
    /// v3's confidence against agreement, cross-validated.
    pub reliability: Vec<Band>,
    /// What settled v3's calls, cross-validated.
    pub v3_rules: Vec<RuleRow>,
    /// What settled v2's calls.
    pub v2_rules: Vec<RuleRow>,
    /// v3 fitted on every phrase with a call (what `v3::SHIPPED` holds for the recorded phrases).
    pub v3_fitted_on_all: V3Params,
    /// What each fold fitted.
    pub folds: Vec<Fold>,
    /// v3 with each kept rule taken away and each dropped one put back, by evening.
    pub ablations: Vec<Ablation>,
}

/// The calls as pairs of references.
fn refs<'a>(calls: &'a [(&'a Phrase, V2Decision)]) -> Vec<(&'a Phrase, &'a V2Decision)> {
    calls.iter().map(|(p, d)| (*p, d)).collect()
}

fn rule_rows(calls: &[(&Phrase, &V2Decision)]) -> Vec<RuleRow> {
    type Calls<'a> = Vec<(&'a Phrase, &'a V2Decision)>;
    let mut by_rule: BTreeMap<String, (DecidedBy, Calls)> = BTreeMap::new();
    for &(p, d) in calls {
        by_rule.entry(format!("{:?}", d.decided_by)).or_insert((d.decided_by, Vec::new())).1.push((p, d));
    }
    by_rule
        .into_values()
        .map(|(rule, calls)| {
            let evenings: BTreeSet<&str> = calls.iter().map(|(p, _)| p.evening.as_str()).collect();
            let agree = calls.iter().filter(|(p, d)| p.call.map(Side::name) == Some(d.winner.as_str())).count();
            RuleRow { rule, phrases: calls.len(), evenings: evenings.len(), agreement: Agreement::of(agree, calls.len()) }
        })
        .collect()
}

/// v3 with `rules`, fitted on every evening but `evening`.
fn fit_without(called: &[&Phrase], evening: &str, rules: Rules) -> V3Params {
    let train: Vec<fit::Example> = called.iter().filter(|p| p.evening != evening).filter_map(|p| p.example()).collect();
    fit::fit_rules(&train, rules)
}

/// What one set of rules does by evening: agreement and sure calls, every fit inside the folds.
#[derive(Debug, Clone, Serialize)]
pub struct Ablation {
    /// The rules, in words.
    pub variant: &'static str,
    /// Which rules.
    pub rules: Rules,
    /// Agreement with the referee, cross-validated by evening.
    pub agreement: Agreement,
    /// Its sure calls.
    pub sure: Sure,
}

/// The rule sets `evaluate` compares with v3's own: each kept rule taken away, each dropped one
/// put back.
const VARIANTS: [(&str, Rules); 5] = [
    ("v3 as kept: the attack, the second light, the ground", v3::KEPT),
    ("without the second light (light-order ties to the ground)", Rules { second_light: false, ..v3::KEPT }),
    ("with v2's beat (its window read off these phrases)", Rules { beat: true, ..v3::KEPT }),
    ("with v2's parry", Rules { parry: true, ..v3::KEPT }),
    ("with v2's beat and parry", Rules { beat: true, parry: true, ..v3::KEPT }),
];

/// v3 with `rules` by evening, fitted without each evening: (sure, agreed) per decided phrase.
fn cross_validated(called: &[&Phrase], evenings: &BTreeSet<&str>, rules: Rules) -> Vec<(bool, bool)> {
    let mut graded = Vec::new();
    for &evening in evenings {
        let params = fit_without(called, evening, rules);
        for p in called.iter().filter(|p| p.evening == evening) {
            if let Ok(d) = v3::decide_with(&p.keypoints, &p.log, &p.times, &params) {
                graded.push((!d.uncertain, p.call.map(Side::name) == Some(d.winner.as_str())));
            }
        }
    }
    graded
}

/// Every variant of [`VARIANTS`] cross-validated by evening; `kept`: v3's own calls (sure,
/// agreed), already cross-validated, so its rules are not fitted again.
fn ablations(called: &[&Phrase], evenings: &BTreeSet<&str>, kept: &[(bool, bool)]) -> Vec<Ablation> {
    VARIANTS
        .iter()
        .map(|&(variant, rules)| {
            let graded = if rules == v3::KEPT { kept.to_vec() } else { cross_validated(called, evenings, rules) };
            let agree = graded.iter().filter(|g| g.1).count();
            Ablation { variant, rules, agreement: Agreement::of(agree, called.len()), sure: Sure::of(&graded) }
        })
        .collect()
}

/// Evaluates the phrases with a call by evening (see the module's doc).
pub fn evaluate(phrases: &[Phrase]) -> ByEvening {
    let called: Vec<&Phrase> = phrases.iter().filter(|p| p.call.is_some()).collect();
    let evenings: BTreeSet<&str> = called.iter().map(|p| p.evening.as_str()).collect();
    let mut rows = Vec::new();
    let mut folds = Vec::new();
    let mut v3_calls: Vec<(&Phrase, V2Decision)> = Vec::new();
    let mut v2_calls: Vec<(&Phrase, V2Decision)> = Vec::new();
    let mut totals = [0usize; 4];
    for &evening in &evenings {
        let params = fit_without(&called, evening, v3::KEPT);
        folds.push(Fold { evening: evening.to_owned(), params });
        let mut row = EveningRow { evening: evening.to_owned(), n: 0, legacy: 0, advance_only: 0, v2: 0, v3: 0 };
        for p in called.iter().filter(|p| p.evening == evening) {
            let call = p.call.map(Side::name);
            let agrees = |w: Option<&str>| usize::from(w.is_some() && w == call);
            row.n += 1;
            row.legacy += agrees(p.legacy.as_deref().ok());
            row.advance_only += agrees(p.advance_only().map(Side::name));
            if let Ok(d) = v2::decide(&p.keypoints, &p.log, &p.times) {
                row.v2 += agrees(Some(&d.winner));
                v2_calls.push((p, d));
            }
            if let Ok(d) = v3::decide_with(&p.keypoints, &p.log, &p.times, &params) {
                row.v3 += agrees(Some(&d.winner));
                v3_calls.push((p, d));
            }
        }
        for (t, v) in totals.iter_mut().zip([row.legacy, row.advance_only, row.v2, row.v3]) {
            *t += v;
        }
        rows.push(row);
    }
    let n = called.len();
    let overall = ["legacy", "advance_only", "v2", "v3"].into_iter().zip(totals).map(|(k, a)| (k, Agreement::of(a, n))).collect();
    let graded = |calls: &[(&Phrase, V2Decision)]| -> Vec<(bool, bool)> {
        calls.iter().map(|(p, d)| (!d.uncertain, p.call.map(Side::name) == Some(d.winner.as_str()))).collect()
    };
    let v3_graded = graded(&v3_calls);
    let all: Vec<fit::Example> = called.iter().filter_map(|p| p.example()).collect();
    ByEvening {
        method: "leave one evening (session date) out: v3's windows, tie-break and calibration fitted on the other evenings only; legacy, advance-only (hips' ground in the last 0.5 s, unfitted) and v2 as shipped (its rules were read off the recorded phrases, so on those it is in sample); 95% Wilson intervals",
        evenings: rows,
        overall,
        v3_sure: Sure::of(&v3_graded),
        v2_sure: Sure::of(&graded(&v2_calls)),
        reliability: reliability(
            &v3_calls.iter().map(|(p, d)| (d.confidence, p.call.map(Side::name) == Some(d.winner.as_str()))).collect::<Vec<_>>(),
        ),
        v3_rules: rule_rows(&refs(&v3_calls)),
        v2_rules: rule_rows(&refs(&v2_calls)),
        v3_fitted_on_all: fit::fit(&all),
        ablations: ablations(&called, &evenings, &v3_graded),
        folds,
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("     -".into(), |v| format!("{:5.1}%", 100.0 * v))
}

fn ci(a: &Agreement) -> String {
    a.ci95.map_or(String::new(), |[lo, hi]| format!(" [{:.0}–{:.0}%]", 100.0 * lo, 100.0 * hi))
}

/// The readable tables for stderr.
pub fn table(b: &ByEvening) -> String {
    let mut s = format!("by evening ({}):\n  {:<9} {:>4} {:>7} {:>13} {:>7} {:>7}\n", b.method, "evening", "n", "legacy", "advance-only", "v2", "v3");
    for r in &b.evenings {
        s.push_str(&format!("  {:<9} {:>4} {:>7} {:>13} {:>7} {:>7}\n", r.evening, r.n, r.legacy, r.advance_only, r.v2, r.v3));
    }
    for (k, a) in &b.overall {
        s.push_str(&format!("  {:<13} {:>3}/{:<3} {}{}\n", k, a.agree, a.n, pct(a.agreement), ci(a)));
    }
    for (name, sure) in [("v3 sure", &b.v3_sure), ("v2 sure", &b.v2_sure)] {
        s.push_str(&format!(
            "  {name}: {}/{} right {}{} at coverage {}\n",
            sure.sure_agree,
            sure.sure,
            pct(sure.accuracy.agreement),
            ci(&sure.accuracy),
            pct(sure.coverage)
        ));
    }
    for (name, rules) in [("v3", &b.v3_rules), ("v2", &b.v2_rules)] {
        s.push_str(&format!("  {name}'s rules:"));
        for r in rules {
            s.push_str(&format!(" {:?} {}/{} ({} evenings);", r.rule, r.agreement.agree, r.phrases, r.evenings));
        }
        s.push('\n');
    }
    s.push_str("  v3's rules, each taken away or put back (by evening):\n");
    for a in &b.ablations {
        s.push_str(&format!(
            "    {:<58} {:>3}/{:<3} {}{}; sure {}/{} at {}\n",
            a.variant,
            a.agreement.agree,
            a.agreement.n,
            pct(a.agreement.agreement),
            ci(&a.agreement),
            a.sure.sure_agree,
            a.sure.sure,
            pct(a.sure.coverage)
        ));
    }
    s.push_str(&reliability_table("v3 reliability (cross-validated)", &b.reliability));
    s
}

/// A reliability table as text.
pub fn reliability_table(title: &str, bands: &[Band]) -> String {
    let mut s = format!("{title}:\n  {:<9} {:>8} {:>9} {:>8}\n", "band", "phrases", "predicted", "observed");
    for band in bands {
        s.push_str(&format!("  {:.1}–{:.1}   {:>8} {:>9} {:>8}\n", band.from, band.to, band.phrases, pct(band.predicted), pct(band.observed)));
    }
    s
}
