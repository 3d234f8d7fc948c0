//! v3's confidence: the chance a referee agrees with the call, from what settled it.

use serde::Serialize;

use crate::v2::DecidedBy;

/// Calibrated confidence, fitted on phrases with a referee's call ([`Calibration::fit`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Calibration {
    /// Attacks: P(agree) = σ(a + b·|margin| + c·[blade contact in the last second]), `[a, b, c]`.
    pub advance: [f64; 3],
    /// Simultaneous attacks settled by the light order: the share that agreed.
    pub second_light: f64,
    /// Simultaneous attacks with both lights at once, settled by the ground: the share that agreed.
    pub ground: f64,
}

/// One fitted call: what settled it, its margin, a blade contact near the lights, and whether
/// the referee agreed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fitted {
    /// What settled the call.
    pub decided_by: DecidedBy,
    /// |left score − right score|.
    pub margin: f64,
    /// A blade contact from a second before the first light to the last light.
    pub blade: bool,
    /// The referee's call was this one.
    pub agreed: bool,
}

/// The most a fitted confidence says.
pub const MAX_CONFIDENCE: f64 = 0.99;

/// Ridge weight on the logistic fit's slopes (the intercept is free): keeps a fold with few or
/// separable attacks from fitting certainty.
const RIDGE: f64 = 1.0;

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl Calibration {
    /// The chance a referee agrees with a call settled by `decided_by` with this margin, never
    /// under one half (the call is the likelier side) and never over `MAX_CONFIDENCE` (96
    /// phrases cannot show more); a single light is the box's own call, 1.
    pub fn confidence(&self, decided_by: DecidedBy, margin: f64, blade: bool) -> f64 {
        let p = match decided_by {
            DecidedBy::SingleLight => return 1.0,
            DecidedBy::Advance | DecidedBy::Parry => {
                let [a, b, c] = self.advance;
                sigmoid(a + b * margin + if blade { c } else { 0.0 })
            }
            DecidedBy::SecondLight | DecidedBy::Beat => self.second_light,
            DecidedBy::LessGround | DecidedBy::MoreGround => self.ground,
        };
        p.clamp(0.5, MAX_CONFIDENCE)
    }

    /// Fits the calibration on decided calls: the attacks' logistic by Newton's method (ridge on
    /// the slopes), the simultaneous attacks' shares with one agreement and one disagreement
    /// added (a category never seen is a coin).
    pub fn fit(calls: &[Fitted]) -> Calibration {
        let share = |keep: &dyn Fn(DecidedBy) -> bool| {
            let (n, agreed) = calls
                .iter()
                .filter(|c| keep(c.decided_by))
                .fold((0usize, 0usize), |(n, a), c| (n + 1, a + usize::from(c.agreed)));
            (agreed as f64 + 1.0) / (n as f64 + 2.0)
        };
        let attacks: Vec<&Fitted> = calls.iter().filter(|c| c.decided_by == DecidedBy::Advance).collect();
        Calibration {
            advance: logistic(&attacks),
            second_light: share(&|d| d == DecidedBy::SecondLight),
            ground: share(&|d| matches!(d, DecidedBy::LessGround | DecidedBy::MoreGround)),
        }
    }
}

/// `[a, b, c]` of P(agree) = σ(a + b·margin + c·blade), maximum likelihood with the ridge.
fn logistic(calls: &[&Fitted]) -> [f64; 3] {
    let x = |c: &Fitted| [1.0, c.margin, if c.blade { 1.0 } else { 0.0 }];
    let mut w = [0.0f64; 3];
    for _ in 0..50 {
        let mut grad = [0.0; 3];
        let mut hess = [[0.0; 3]; 3];
        for c in calls {
            let xi = x(c);
            let p = sigmoid(xi.iter().zip(&w).map(|(a, b)| a * b).sum());
            let y = if c.agreed { 1.0 } else { 0.0 };
            for j in 0..3 {
                grad[j] += (p - y) * xi[j];
                for k in 0..3 {
                    hess[j][k] += p * (1.0 - p) * xi[j] * xi[k];
                }
            }
        }
        for j in 1..3 {
            grad[j] += RIDGE * w[j];
            hess[j][j] += RIDGE;
        }
        hess[0][0] += 1e-6;
        let Some(step) = solve3(hess, grad) else { break };
        let mut moved = 0.0f64;
        for j in 0..3 {
            w[j] -= step[j];
            moved = moved.max(step[j].abs());
        }
        if moved < 1e-9 {
            break;
        }
    }
    w
}

/// Solves a 3×3 system by Gaussian elimination with partial pivoting.
fn solve3(mut a: [[f64; 3]; 3], mut b: [f64; 3]) -> Option<[f64; 3]> {
    for col in 0..3 {
        let pivot = (col..3).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() < 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        for row in col + 1..3 {
            let f = a[row][col] / a[col][col];
            let pivot_row = a[col];
            for (cell, p) in a[row].iter_mut().zip(pivot_row).skip(col) {
                *cell -= f * p;
            }
            b[row] -= f * b[col];
        }
    }
    let mut x = [0.0; 3];
    for row in (0..3).rev() {
        let rest: f64 = (row + 1..3).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(decided_by: DecidedBy, margin: f64, blade: bool, agreed: bool) -> Fitted {
        Fitted { decided_by, margin, blade, agreed }
    }

    #[test]
    fn wider_margins_are_surer_and_shares_are_smoothed() {
        let mut calls = Vec::new();
        for i in 0..40 {
            let margin = f64::from(i) / 10.0;
            // Small margins agree half the time, large ones nearly always.
            calls.push(call(DecidedBy::Advance, margin, false, margin > 2.0 || i % 2 == 0));
        }
        calls.extend((0..8).map(|i| call(DecidedBy::SecondLight, 0.0, false, i < 6)));
        let c = Calibration::fit(&calls);
        assert!(c.advance[1] > 0.0, "{c:?}");
        assert!(c.confidence(DecidedBy::Advance, 3.5, false) > c.confidence(DecidedBy::Advance, 0.5, false));
        assert!((c.second_light - 7.0 / 10.0).abs() < 1e-12);
        assert!((c.ground - 0.5).abs() < 1e-12, "never seen: a coin");
        assert_eq!(c.confidence(DecidedBy::SingleLight, 0.0, false), 1.0);
        assert!(c.confidence(DecidedBy::Advance, 0.0, true) >= 0.5);
    }

    #[test]
    fn separable_attacks_do_not_fit_certainty() {
        let calls: Vec<Fitted> = (0..20).map(|i| call(DecidedBy::Advance, f64::from(i), false, i >= 3)).collect();
        let c = Calibration::fit(&calls);
        assert!(c.advance.iter().all(|w| w.is_finite()));
        assert!(c.confidence(DecidedBy::Advance, 19.0, false) < 1.0);
    }
}
