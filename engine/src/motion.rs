//! A fencer's motion on a true time axis: the hips' forward position with short gaps filled and
//! smoothed, its speed per second, the ground gained over a window, and the unbroken advance
//! going on at a moment. Shared by the engines; each says which windows and speeds it reads.

use crate::kinematics::{Keypoints, Row};
use crate::side::Side;

/// The hips, whose mean is the fencer's position.
const HIPS: [usize; 2] = [11, 12];

/// Longest run of missing frames filled by linear interpolation, in seconds.
pub const MAX_GAP_S: f64 = 0.4;
/// Standard deviation of the Gaussian smoothing, in seconds.
pub const SMOOTH_SIGMA_S: f64 = 0.06;

/// How an advance is read off the forward speed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdvanceRule {
    /// Forward hip speed (c per second) above which a fencer is advancing.
    pub speed: f64,
    /// A dip under `speed` shorter than this (seconds) does not break an advance.
    pub min_break_s: f64,
    /// An advance counts if it was still going this long before the moment (seconds).
    pub recent_s: f64,
    /// Stops further back than this (seconds) are not looked at.
    pub window_s: f64,
}

/// A fencer's forward hip speed per frame, in normalised units per second (positive: towards
/// the opponent), with gaps filled and smoothed exactly as the rule reads it; NaN where the hips
/// are not seen. `times` are the frames' times (one per row of `keypoints`).
pub fn forward_speed(keypoints: &Keypoints, times: &[f64], side: Side) -> Vec<f64> {
    let xs = match side {
        Side::Left => &keypoints.left_x,
        Side::Right => &keypoints.right_x,
    };
    hip_track(xs, times, side).2
}

/// The hips' forward coordinate as seen (NaN where not), then filled and smoothed: (raw,
/// position, speed per second).
pub fn hip_track(xs: &[Row], t: &[f64], side: Side) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let raw: Vec<f64> = xs.iter().map(|r| hips(r) * side.direction()).collect();
    let (position, speed) = local_linear(t, &fill_gaps(t, &raw, MAX_GAP_S), SMOOTH_SIGMA_S);
    (raw, position, speed)
}

/// Mean x of the hips seen (NaN when neither is).
fn hips(row: &Row) -> f64 {
    let seen: Vec<f64> = HIPS.iter().map(|&k| row[k]).filter(|v| !v.is_nan()).collect();
    if seen.is_empty() {
        f64::NAN
    } else {
        seen.iter().sum::<f64>() / seen.len() as f64
    }
}

/// Fills runs of NaN between two seen values by linear interpolation in time, when the two
/// seen frames are at most `max_gap` seconds apart. Ends are left missing.
pub fn fill_gaps(t: &[f64], x: &[f64], max_gap: f64) -> Vec<f64> {
    let mut out = x.to_vec();
    let seen: Vec<usize> = (0..x.len()).filter(|&i| !x[i].is_nan()).collect();
    for pair in seen.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if b > a + 1 && t[b] - t[a] <= max_gap {
            for (i, v) in out.iter_mut().enumerate().take(b).skip(a + 1) {
                let w = (t[i] - t[a]) / (t[b] - t[a]);
                *v = x[a] + w * (x[b] - x[a]);
            }
        }
    }
    out
}

/// Gaussian-weighted local linear fit over time (σ in seconds, cut at 3σ), over the values
/// seen: per frame the fitted value and slope (per second). A straight line comes back exactly,
/// at the ends too (where a plain moving average would bend it). A missing frame stays missing.
pub fn local_linear(t: &[f64], x: &[f64], sigma: f64) -> (Vec<f64>, Vec<f64>) {
    let n = x.len();
    let mut value = vec![f64::NAN; n];
    let mut slope = vec![f64::NAN; n];
    for i in 0..n {
        if x[i].is_nan() {
            continue;
        }
        let near = |j: &usize| (t[*j] - t[i]).abs() <= 3.0 * sigma;
        let lo = (0..=i).rev().take_while(near).last().unwrap_or(i);
        let (mut sw, mut st, mut sx, mut stt, mut stx) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for j in (lo..n).take_while(near) {
            if !x[j].is_nan() {
                let dt = t[j] - t[i];
                let w = (-0.5 * (dt / sigma).powi(2)).exp();
                sw += w;
                st += w * dt;
                sx += w * x[j];
                stt += w * dt * dt;
                stx += w * dt * x[j];
            }
        }
        let det = sw * stt - st * st;
        if det > 1e-12 * sw * sw * sigma * sigma {
            slope[i] = (sw * stx - st * sx) / det;
            value[i] = (sx - slope[i] * st) / sw;
        } else {
            value[i] = sx / sw;
        }
    }
    (value, slope)
}

/// x at time `at`, linearly between the frames around it (both seen); after the last frame,
/// the last value when it is at most `MAX_GAP_S` old.
pub fn value_at(t: &[f64], x: &[f64], at: f64) -> Option<f64> {
    let n = t.len();
    if n == 0 || at < t[0] {
        return None;
    }
    if at >= t[n - 1] {
        let v = x[n - 1];
        return (at - t[n - 1] <= MAX_GAP_S && !v.is_nan()).then_some(v);
    }
    let i = t.partition_point(|&ti| ti <= at) - 1;
    let (a, b) = (x[i], x[i + 1]);
    if a.is_nan() || b.is_nan() {
        return None;
    }
    Some(a + (at - t[i]) / (t[i + 1] - t[i]) * (b - a))
}

/// Forward movement over the `window` seconds before `hit` (from the first seen frame when the
/// window starts before it).
pub fn gain(t: &[f64], position: &[f64], hit: f64, window: f64) -> Option<f64> {
    let end = value_at(t, position, hit)?;
    let from = hit - window;
    let start = value_at(t, position, from).or_else(|| {
        (0..t.len()).find(|&i| t[i] >= from && t[i] <= hit && !position[i].is_nan()).map(|i| position[i])
    })?;
    Some(end - start)
}

/// Where the speed crosses `speed` between frames `a` and `b` (linear).
fn crossing(t: &[f64], v: &[f64], a: usize, b: usize, speed: f64) -> f64 {
    let (va, vb) = (v[a], v[b]);
    if va.is_nan() || vb.is_nan() || va == vb {
        return if va.is_nan() || va <= speed { t[b] } else { t[a] };
    }
    let w = ((speed - va) / (vb - va)).clamp(0.0, 1.0);
    t[a] + w * (t[b] - t[a])
}

/// (duration of the advance going on in the last `rule.recent_s` before `hit`, or 0; how long
/// before `hit` the latest advance within `rule.window_s` ended). `v`: forward speed per frame.
pub fn advance(t: &[f64], v: &[f64], hit: f64, rule: &AdvanceRule) -> (f64, Option<f64>) {
    let advancing = |i: usize| v[i] > rule.speed;
    let Some(end) = (0..t.len()).rev().filter(|&i| t[i] <= hit).find(|&i| advancing(i)) else {
        return (0.0, None);
    };
    let run_start = |mut i: usize| {
        while i > 0 && advancing(i - 1) {
            i -= 1;
        }
        i
    };
    let mut start = run_start(end);
    let mut began = if start == 0 { t[0] } else { crossing(t, v, start - 1, start, rule.speed) };
    // A dip under the speed shorter than `MIN_BREAK_S` is no break: bridge it to the advance before.
    while start > 0 {
        let Some(prev_end) = (0..start).rev().find(|&i| advancing(i)) else { break };
        if began - crossing(t, v, prev_end, prev_end + 1, rule.speed) >= rule.min_break_s {
            break;
        }
        start = run_start(prev_end);
        began = if start == 0 { t[0] } else { crossing(t, v, start - 1, start, rule.speed) };
    }
    // Still advancing at the next frame (after the light): the advance went on to the light.
    let ended = match end + 1 < t.len() {
        true if advancing(end + 1) => hit,
        true => crossing(t, v, end, end + 1, rule.speed).min(hit),
        false => t[end].min(hit),
    };
    let before = (hit - ended).max(0.0);
    if before > rule.window_s {
        return (0.0, None);
    }
    // The interpolated end, not the frame's time: the same at any frame rate.
    let duration = if before <= rule.recent_s { (ended - began).max(0.0) } else { 0.0 };
    (duration, Some(before))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2::ADVANCE;

    fn approx(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }


    #[test]
    fn gaps_are_filled_only_when_short() {
        let t: Vec<f64> = (0..10).map(|i| i as f64 * 0.1).collect();
        let mut x: Vec<f64> = t.iter().map(|&s| 2.0 * s).collect();
        x[2] = f64::NAN;
        x[3] = f64::NAN;
        x[5..=9].fill(f64::NAN);
        x[9] = 1.8;
        let f = fill_gaps(&t, &x, 0.4);
        assert!(approx(f[2], 0.4, 1e-12) && approx(f[3], 0.6, 1e-12));
        assert!(f[5].is_nan(), "a 0.5 s gap stays missing");
    }

    #[test]
    fn the_fit_keeps_a_line_and_speed_is_per_second() {
        for fps in [15.0, 30.0] {
            let t: Vec<f64> = (0..60).map(|i| i as f64 / fps).collect();
            let x: Vec<f64> = t.iter().map(|&s| 1.5 * s + 2.0).collect();
            let (s, v) = local_linear(&t, &x, SMOOTH_SIGMA_S);
            assert!(s.iter().zip(&x).all(|(a, b)| approx(*a, *b, 1e-9)), "a straight line is its own fit, ends too");
            assert!(v.iter().all(|&v| approx(v, 1.5, 1e-9)), "{fps} fps: {v:?}");
            let mut gappy = x.clone();
            gappy[10] = f64::NAN;
            let (s, v) = local_linear(&t, &gappy, SMOOTH_SIGMA_S);
            assert!(s[10].is_nan() && v[10].is_nan() && approx(v[11], 1.5, 1e-9));
        }
    }

    /// A fencer standing until `go`, then advancing at 1 c/s (left's forward is +x).
    fn walker(t: &[f64], go: f64) -> Vec<f64> {
        t.iter().map(|&s| if s < go { 0.0 } else { s - go }).collect()
    }

    #[test]
    fn advance_is_measured_in_seconds_at_any_rate() {
        for fps in [15.0, 30.0, 60.0] {
            let t: Vec<f64> = (0..(3.0 * fps) as usize).map(|i| i as f64 / fps).collect();
            let (_, v) = local_linear(&t, &walker(&t, 1.0), SMOOTH_SIGMA_S);
            let (dur, before) = advance(&t, &v, 2.9, &ADVANCE);
            assert!(approx(dur, 1.9, 0.1), "{fps} fps: advanced {dur}");
            assert_eq!(before, Some(0.0));
        }
        // Stopped at 1.8 s: no advance counts at 2.9 s, but the stop is reported.
        let t: Vec<f64> = (0..90).map(|i| i as f64 / 30.0).collect();
        let x: Vec<f64> = t.iter().map(|&s| s.clamp(1.0, 1.8)).collect();
        let (_, v) = local_linear(&t, &x, SMOOTH_SIGMA_S);
        let (dur, before) = advance(&t, &v, 2.9, &ADVANCE);
        assert_eq!(dur, 0.0);
        assert!(approx(before.unwrap(), 1.1, 0.1), "{before:?}");
        // A dip under the speed for a frame is no stop; one of 0.3 s is.
        let mut v = vec![1.0; 90];
        v[45] = 0.1;
        assert!(approx(advance(&t, &v, 2.9, &ADVANCE).0, 2.9, 1e-9));
        v[40..49].fill(0.1);
        assert!(approx(advance(&t, &v, 2.9, &ADVANCE).0, 2.9 - 49.0 / 30.0 + 0.1 / 0.9 / 30.0, 0.04), "{:?}", advance(&t, &v, 2.9, &ADVANCE));
    }

    #[test]
    fn an_advance_still_going_after_the_light_lasts_until_the_light() {
        // The light falls between two frames, both advancing: the advance goes on to the light,
        // whichever frame happens to come last before it (it used to stop at that frame).
        for (fps, hit) in [(15.0, 1.01), (15.0, 1.06), (30.0, 1.01), (30.0, 1.03)] {
            let t: Vec<f64> = (0..(2.0 * fps) as usize).map(|i| i as f64 / fps).collect();
            let v = vec![1.0; t.len()];
            assert_eq!(advance(&t, &v, hit, &ADVANCE), (hit, Some(0.0)), "{fps} fps, light at {hit}");
        }
    }
}
