//! What v2 fits on phrases with a referee's call: the sure margin and the beat window, and a
//! decided phrase re-settled under another window (for cross-validation).

use super::{is_beat, DecidedBy, V2Decision, V2Params, DEFAULT_SURE_MARGIN};
use crate::side::Side;

/// Least share of sure calls that must agree with the referee when fitting the sure margin
/// (0.92 was tried first: cross-validated, its sure calls agreed 89.6% of the time).
pub const SURE_TARGET: f64 = 0.95;
/// Fewest sure calls a fitted margin must leave.
pub const SURE_MIN_CALLS: usize = 10;

/// Fits the sure margin on decided phrases with the referee's call (`agrees`: the decision
/// matched it): the smallest margin at which the calls that would be sure agree at least
/// `target` (e.g. `SURE_TARGET`) of the time, over at least `SURE_MIN_CALLS` of them.
/// Without one, just above the largest margin seen (nothing sure).
pub fn fit_sure_margin(calls: &[(&V2Decision, bool)], target: f64) -> f64 {
    let mut candidates: Vec<f64> = calls.iter().map(|(d, _)| d.margin.abs()).collect();
    candidates.sort_by(f64::total_cmp);
    candidates.dedup();
    for &m in &candidates {
        let params = V2Params { sure_margin: m, ..V2Params::default() };
        let sure: Vec<bool> = calls.iter().filter(|(d, _)| d.doubts_with(&params).is_empty()).map(|&(_, a)| a).collect();
        if sure.len() >= SURE_MIN_CALLS && sure.iter().filter(|&&a| a).count() as f64 >= target * sure.len() as f64 {
            return m;
        }
    }
    candidates.last().copied().unwrap_or(DEFAULT_SURE_MARGIN) + f64::EPSILON
}

/// Fits the beat window on decided phrases with the referee's call (`calls`: the decision and
/// the call, `left`/`right`): of the windows from 0 to 0.3 s before the first light in 0.01 s
/// steps (and none), the one whose calls agree most often, the narrowest of those (then the
/// earliest): the rule is kept to as few phrases as the calls ask for.
pub fn fit_beat_window(calls: &[(&V2Decision, &str)]) -> Option<(f64, f64)> {
    let agree = |w: Option<(f64, f64)>| calls.iter().filter(|(d, call)| d.settled_with(w).0.name() == *call).count();
    let steps: Vec<f64> = (0..=30).map(|i| f64::from(i) / 100.0).collect();
    let windows = std::iter::once(None)
        .chain(steps.iter().flat_map(|&lo| steps.iter().filter(move |&&hi| hi >= lo).map(move |&hi| Some((lo, hi)))));
    let width = |w: Option<(f64, f64)>| w.map_or(-1.0, |(lo, hi)| hi - lo);
    let mut best: Option<(usize, Option<(f64, f64)>)> = None;
    for w in windows {
        let a = agree(w);
        let better = match best {
            None => true,
            Some((b, bw)) => a > b || (a == b && width(w) < width(bw) - 1e-9),
        };
        if better {
            best = Some((a, w));
        }
    }
    best.and_then(|(_, w)| w)
}


impl V2Decision {
    /// Who gets the touch, and why, had the beat window been `window`: only a dead heat settled by
    /// the lights (the second light or a beat) can change; everything else is as decided.
    /// Cross-validation refits the window with it.
    pub fn settled_with(&self, window: Option<(f64, f64)>) -> (Side, DecidedBy) {
        let winner = if self.winner == Side::Left.name() { Side::Left } else { Side::Right };
        let first_light = match self.decided_by {
            DecidedBy::Beat => winner,
            DecidedBy::SecondLight => winner.other(),
            other => return (winner, other),
        };
        match is_beat(self.last_contact_before_s, window) {
            true => (first_light, DecidedBy::Beat),
            false => (first_light.other(), DecidedBy::SecondLight),
        }
    }
}
