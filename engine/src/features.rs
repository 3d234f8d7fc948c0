//! What the time-true engines measure of each fencer at the first light: the unbroken advance,
//! stops and steps back, the ground gained, the arm already out, how much of the last second
//! the fencer was seen; and the score the advance gives. Each engine says with which windows.

use serde::Serialize;

use crate::frame_times::{FrameTimes, TimesError};
use crate::kinematics::{Keypoints, Row};
use crate::motion::{self, AdvanceRule};
use crate::side::Side;

/// The front (nearer the opponent) shoulder after the legacy's side swap.
pub const FRONT_SHOULDER: usize = 6;
/// The weapon hand: point 10, the wrist nearer the opponent after the side swap.
///
/// The legacy's pair swap puts, for each left/right pair, the point nearer the opponent at the
/// even index for *both* fencers (larger x for the left fencer, smaller x for the right one).
/// So 10 is always the front wrist and 9 the back one. The weapon arm is the one held and
/// extended towards the opponent; the free hand is kept behind (foil, épée) or on the hip
/// (sabre), so the front wrist is the weapon hand whichever hand the fencer holds it in. The
/// legacy's blade check reads point 9 for the right fencer: that is the right fencer's back,
/// unarmed hand. The time-true engines read point 10 for both.
pub const WEAPON_WRIST: usize = 10;

/// The windows, speeds and weights a fencer's numbers are read with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FeatureRule {
    /// How an advance is read off the hips' forward speed.
    pub advance: AdvanceRule,
    /// Window for the ground gained before the first light (seconds).
    pub gain_window_s: f64,
    /// How long before the first light the counter-attack check looks (seconds).
    pub counter_lead_s: f64,
    /// Arm reach (front wrist ahead of the front shoulder, in c) that counts as extended.
    pub counter_reach: f64,
    /// Seconds of advance worth one point of score.
    pub advance_scale_s: f64,
    /// Points taken from a fencer who counter-attacked.
    pub counter_penalty: f64,
}

/// The numbers behind one fencer's part of the call (positions in c, times in seconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FencerFeatures {
    /// How long the fencer had been advancing without a break, for an advance still going
    /// 0.3 s before the first light (0 if none).
    pub advance_s: f64,
    /// How long before the first light the fencer's last advance ended (0: still advancing;
    /// `None`: no advance in the last 2 s).
    pub stopped_before_s: Option<f64>,
    /// How long before the first light the fencer was last going back, within 2 s (`None`: not).
    pub stepped_back_before_s: Option<f64>,
    /// Hips' forward movement over the last second before the first light (c).
    pub gain_last_s: f64,
    /// Forward reach of the weapon wrist past the front shoulder 0.5 s before the first light (c).
    pub arm_reach_early: Option<f64>,
    /// Arm already reaching 0.5 s before the first light while not advancing.
    pub counter_attack: bool,
    /// Fraction of frames in the last second before the first light where the hips were seen.
    pub seen_last_s: f64,
    /// advance / 0.5 s − 1 for a counter-attack.
    pub score: f64,
}

/// Both fencers' numbers (left, right) at the first light `hit`, as `rule` reads them; refused
/// unless there is one time per frame.
pub fn measure_both(keypoints: &Keypoints, times: &FrameTimes, hit: f64, rule: &FeatureRule) -> Result<(FencerFeatures, FencerFeatures), TimesError> {
    if times.len() != keypoints.frames() {
        return Err(TimesError(format!("{} times for {} frames", times.len(), keypoints.frames())));
    }
    let t = times.times();
    Ok((measure(&keypoints.left_x, t, hit, Side::Left, rule), measure(&keypoints.right_x, t, hit, Side::Right, rule)))
}

/// One fencer's numbers from the x rows, the frame times and the first light's time, as `rule` reads them.
pub fn measure(xs: &[Row], t: &[f64], hit: f64, side: Side, rule: &FeatureRule) -> FencerFeatures {
    let d = side.direction();
    let (raw_hips, position, speed) = motion::hip_track(xs, t, side);
    let reach_raw: Vec<f64> = xs.iter().map(|r| (r[WEAPON_WRIST] - r[FRONT_SHOULDER]) * d).collect();
    let (reach, _) = motion::local_linear(t, &motion::fill_gaps(t, &reach_raw, motion::MAX_GAP_S), motion::SMOOTH_SIGMA_S);

    let (advance_s, stopped_before_s) = motion::advance(t, &speed, hit, &rule.advance);
    let stepped_back_before_s = (0..t.len())
        .rev()
        .filter(|&i| t[i] <= hit && t[i] >= hit - rule.advance.window_s)
        .find(|&i| speed[i] < -rule.advance.speed)
        .map(|i| hit - t[i]);
    let gain_last_s = motion::gain(t, &position, hit, rule.gain_window_s).unwrap_or(0.0);
    let early = hit - rule.counter_lead_s;
    let arm_reach_early = if t.first().is_some_and(|&t0| early >= t0) { motion::value_at(t, &reach, early) } else { None };
    let speed_early = motion::value_at(t, &speed, early);
    let counter_attack = matches!((arm_reach_early, speed_early), (Some(r), Some(v)) if r >= rule.counter_reach && v <= rule.advance.speed);
    let window: Vec<usize> = (0..t.len()).filter(|&i| t[i] <= hit && t[i] > hit - rule.gain_window_s).collect();
    let seen_last_s = if window.is_empty() {
        0.0
    } else {
        window.iter().filter(|&&i| !raw_hips[i].is_nan()).count() as f64 / window.len() as f64
    };
    let score = advance_s / rule.advance_scale_s - if counter_attack { rule.counter_penalty } else { 0.0 };
    FencerFeatures {
        advance_s,
        stopped_before_s,
        stepped_back_before_s,
        gain_last_s,
        arm_reach_early,
        counter_attack,
        seen_last_s,
        score,
    }
}
