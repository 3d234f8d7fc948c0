//! The right-of-way decision on a double touch, behind an engine choice. `Engine::Legacy` is the
//! legacy service's rules, reproduced exactly: pauses and retreats, right of way, lunge (reported
//! only), speed, the blade contact, then the winner and the reason.

use serde::Serialize;

use crate::kinematics::{Keypoints, Row};
use crate::signal::{Phrase, LOG_FPS};

/// Front-ankle speed (normalised units per frame) under which a fencer counts as still.
const STILL: f64 = 0.03;
/// Back-ankle forward speed at or above which a frame is not a pause.
const BACK_ANKLE_PUSH: f64 = 0.05;
/// Front-ankle y variance at or above which a segment is not a pause.
const STEADY_Y_VARIANCE: f64 = 0.001;
/// Shortest pause, in frames.
const MIN_PAUSE_FRAMES: usize = 4;
/// Blade window: frames before and after the first contact.
const BLADE_BEFORE: i64 = 8;
const BLADE_AFTER: i64 = 3;
/// Blade movement (variance) above which the fencer with right of way keeps it.
const BLADE_ACTIVE: f64 = 0.1;
/// A fencer this many times faster than the other wins a phrase without right of way.
const SPEED_MARGIN: f64 = 1.2;

/// Which rules decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// The legacy service's rules, exactly.
    #[default]
    Legacy,
}

impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> Result<Engine, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "legacy" => Ok(Engine::Legacy),
            other => Err(format!("unknown engine {other:?} (available: legacy)")),
        }
    }
}

impl Engine {
    /// Decides the phrase from both fencers' normalised keypoints; `c` (pixels) is needed for
    /// the lunge flag only.
    pub fn decide(&self, keypoints: &Keypoints, phrase: &Phrase, c: Option<f64>) -> Decision {
        match self {
            Engine::Legacy => legacy_decision(keypoints, phrase, c),
        }
    }
}

/// A run of frames in which a fencer stood still or went back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pause {
    /// First frame.
    pub start_frame: usize,
    /// Last frame (inclusive).
    pub end_frame: usize,
    /// `start_frame / 15`.
    pub start_time: f64,
    /// `end_frame / 15`.
    pub end_time: f64,
    /// `(end_frame − start_frame) / 15`.
    pub duration: f64,
}

/// The blade analysis' numbers, in the legacy's shapes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum BladeDetails {
    /// No blade contact in the log: `{}`.
    NoContact {},
    /// The window around the contact is empty (the contact is after the video's end).
    InvalidWindow {
        /// `"invalid"`.
        analysis_window: String,
        /// The first contact's frame.
        contact_frame: i64,
        /// 0.
        left_variance: f64,
        /// 0.
        right_variance: f64,
        /// 0.
        samples_left: usize,
        /// 0.
        samples_right: usize,
    },
    /// The variances over the window.
    Window {
        /// `"frames a-b"`.
        analysis_window: String,
        /// The first contact's frame.
        contact_frame: i64,
        /// Sample variance of the left fencer's front wrist x.
        left_variance_x: f64,
        /// … and y.
        left_variance_y: f64,
        /// x + y.
        left_variance_total: f64,
        /// Sample variance of the right fencer's front wrist x.
        right_variance_x: f64,
        /// … and y.
        right_variance_y: f64,
        /// x + y.
        right_variance_total: f64,
        /// Frames where the left wrist was seen.
        samples_left: usize,
        /// Frames where the right wrist was seen.
        samples_right: usize,
        /// Right of way going into the analysis: `left`, `right` or `none`.
        current_right_of_way: String,
    },
}

/// Mean speed and acceleration of each front ankle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SpeedComparison {
    /// Left fencer's mean step.
    pub left_speed: f64,
    /// Right fencer's mean step.
    pub right_speed: f64,
    /// Left fencer's mean change of step.
    pub left_accel: f64,
    /// Right fencer's mean change of step.
    pub right_accel: f64,
}

/// Whether each fencer opened with a lunge (reported, not used).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LungeDetected {
    /// The left fencer.
    pub left: bool,
    /// The right fencer.
    pub right: bool,
}

/// The referee's decision, serialised with the legacy's field names and order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// `left` or `right`.
    pub winner: String,
    /// Why, in words.
    pub reason: String,
    /// The left fencer's pauses.
    pub left_pauses: Vec<Pause>,
    /// The right fencer's pauses.
    pub right_pauses: Vec<Pause>,
    /// `none`, `left` or `right`.
    pub blade_analysis: String,
    /// The blade analysis' numbers.
    pub blade_details: BladeDetails,
    /// Speeds and accelerations.
    pub speed_comparison: SpeedComparison,
    /// Lunge flags.
    pub lunge_detected: LungeDetected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Left => "left",
            Side::Right => "right",
        }
    }

    /// +1 when moving forward means increasing x (left fencer), −1 otherwise.
    fn direction(self) -> f64 {
        match self {
            Side::Left => 1.0,
            Side::Right => -1.0,
        }
    }
}

fn legacy_decision(k: &Keypoints, phrase: &Phrase, c: Option<f64>) -> Decision {
    let left_pauses = pauses(&k.left_x, &k.left_y, Side::Left);
    let right_pauses = pauses(&k.right_x, &k.right_y, Side::Right);
    let right_of_way = match (left_pauses.first(), right_pauses.first()) {
        (Some(_), None) => Some(Side::Right),
        (None, Some(_)) => Some(Side::Left),
        (Some(l), Some(r)) => Some(if l.start_time < r.start_time { Side::Right } else { Side::Left }),
        (None, None) => None,
    };
    let lunge = LungeDetected { left: lunge(&k.left_x, &k.left_y, c), right: lunge(&k.right_x, &k.right_y, c) };
    let (left_speed, left_accel) = speed(&k.left_x, &k.left_y);
    let (right_speed, right_accel) = speed(&k.right_x, &k.right_y);
    let speeds = SpeedComparison { left_speed, right_speed, left_accel, right_accel };
    let (blade_winner, blade_details) = blade(k, phrase, right_of_way);

    let (winner, reason) = match right_of_way {
        Some(side) => {
            let other = if side == Side::Left { &right_pauses } else { &left_pauses };
            let mut reason = format!("{} has right-of-way", capitalised(side));
            if let Some(first) = other.first() {
                let other_side = if side == Side::Left { "right" } else { "left" };
                reason.push_str(&format!(" (only {other_side} paused at {:.2}s)", first.start_time));
            }
            (side, reason)
        }
        None => match blade_winner {
            Some(side) => (side, format!("Blade analysis favors {}", side.name())),
            None if left_speed > SPEED_MARGIN * right_speed => (Side::Left, "Left had significantly higher speed".into()),
            None if right_speed > SPEED_MARGIN * left_speed => (Side::Right, "Right had significantly higher speed".into()),
            None => (Side::Right, "Simultaneous action, default to right".into()),
        },
    };
    Decision {
        winner: winner.name().into(),
        reason,
        left_pauses,
        right_pauses,
        blade_analysis: blade_winner.map_or("none", Side::name).into(),
        blade_details,
        speed_comparison: speeds,
        lunge_detected: lunge,
    }
}

fn capitalised(side: Side) -> &'static str {
    match side {
        Side::Left => "Left",
        Side::Right => "Right",
    }
}

/// Step between two values, 0 when either is NaN.
fn step(current: f64, previous: f64) -> f64 {
    if current.is_nan() || previous.is_nan() {
        0.0
    } else {
        current - previous
    }
}

/// The fencer's pauses over the whole phrase.
fn pauses(xs: &[Row], ys: &[Row], side: Side) -> Vec<Pause> {
    let n = xs.len();
    let d = side.direction();
    let front_x: Vec<f64> = xs.iter().map(|r| r[16]).collect();
    let back_x: Vec<f64> = xs.iter().map(|r| r[15]).collect();
    let front_y: Vec<f64> = ys.iter().map(|r| r[16]).collect();
    let velocity: Vec<f64> = (0..n).map(|i| if i == 0 { 0.0 } else { step(front_x[i], front_x[i - 1]) }).collect();
    let paused: Vec<bool> = (0..n).map(|i| i >= 1 && (velocity[i].abs() < STILL || velocity[i] * d < 0.0)).collect();

    let mut kept = Vec::new();
    for (start, end) in runs(&paused) {
        if end - start + 1 < MIN_PAUSE_FRAMES {
            continue;
        }
        let mean_speed = velocity[start..=end].iter().map(|v| v.abs()).sum::<f64>() / (end - start + 1) as f64;
        if mean_speed > STILL {
            kept.push((start, end)); // a retreat, kept whole
            continue;
        }
        let not_pushing: Vec<bool> = (0..n)
            .map(|i| {
                (start..=end).contains(&i) && {
                    let back = if i == 0 { 0.0 } else { step(back_x[i], back_x[i - 1]) };
                    back * d < BACK_ANKLE_PUSH
                }
            })
            .collect();
        for (s, e) in runs(&not_pushing) {
            if e - s + 1 < MIN_PAUSE_FRAMES {
                continue;
            }
            let seen: Vec<f64> = front_y[s..=e].iter().copied().filter(|v| !v.is_nan()).collect();
            if seen.len() >= 2 && population_variance(&seen) >= STEADY_Y_VARIANCE {
                continue;
            }
            kept.push((s, e));
        }
    }
    kept.into_iter()
        .map(|(s, e)| Pause {
            start_frame: s,
            end_frame: e,
            start_time: s as f64 / LOG_FPS,
            end_time: e as f64 / LOG_FPS,
            duration: (e - s) as f64 / LOG_FPS,
        })
        .collect()
}

/// Maximal runs of `true`, as inclusive `(first, last)` index pairs.
fn runs(flags: &[bool]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &f) in flags.iter().enumerate() {
        match (f, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, flags.len() - 1));
    }
    out
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

fn population_variance(values: &[f64]) -> f64 {
    let m = mean(values);
    values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / values.len() as f64
}

fn sample_variance(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let m = mean(values);
    values.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (values.len() - 1) as f64
}

/// Over the first 5 frames, the ankle gap × c: a lunge if its mean is at least 0.8 and it grew.
fn lunge(xs: &[Row], ys: &[Row], c: Option<f64>) -> bool {
    let Some(c) = c.filter(|c| !c.is_nan()) else { return false };
    if xs.len() <= 5 {
        return false;
    }
    let gaps: Vec<f64> = (0..5)
        .filter_map(|i| {
            let (fx, fy, bx, by) = (xs[i][16], ys[i][16], xs[i][15], ys[i][15]);
            if [fx, fy, bx, by].iter().any(|v| v.is_nan()) {
                None
            } else {
                Some((fx - bx).hypot(fy - by) * c)
            }
        })
        .collect();
    gaps.len() >= 2 && mean(&gaps) >= 0.8 && gaps[gaps.len() - 1] > gaps[0]
}

/// Mean front-ankle step between consecutive seen frames, and mean change of step.
fn speed(xs: &[Row], ys: &[Row]) -> (f64, f64) {
    let seen: Vec<(f64, f64)> = xs.iter().zip(ys).map(|(x, y)| (x[16], y[16])).filter(|(x, y)| !x.is_nan() && !y.is_nan()).collect();
    if seen.len() < 3 {
        return (0.0, 0.0);
    }
    let steps: Vec<f64> = seen.windows(2).map(|w| (w[1].0 - w[0].0).hypot(w[1].1 - w[0].1)).collect();
    let accels: Vec<f64> = steps.windows(2).map(|w| (w[1] - w[0]).abs()).collect();
    let avg = |v: &[f64]| if v.is_empty() { 0.0 } else { mean(v) };
    (avg(&steps), avg(&accels))
}

/// The blade analysis around the first contact: who moved their blade hand more.
fn blade(k: &Keypoints, phrase: &Phrase, right_of_way: Option<Side>) -> (Option<Side>, BladeDetails) {
    let Some(contact) = phrase.blade_contacts.first() else { return (None, BladeDetails::NoContact {}) };
    let f = contact.frame;
    let last = k.frames() as i64 - 1;
    // A log time of 10^18 s and more makes the frame i64::MAX (`frame_of` saturates): saturate
    // here too, so that such a contact is an invalid window instead of an overflow.
    let (start, end) = (f.saturating_sub(BLADE_BEFORE).max(0), f.saturating_add(BLADE_AFTER).min(last));
    if start >= end {
        let details = BladeDetails::InvalidWindow {
            analysis_window: "invalid".into(),
            contact_frame: f,
            left_variance: 0.0,
            right_variance: 0.0,
            samples_left: 0,
            samples_right: 0,
        };
        return (Some(Side::Right), details);
    }
    let window = start as usize..=end as usize;
    let wrist = |xs: &[Row], ys: &[Row], point: usize| -> (Vec<f64>, Vec<f64>) {
        window
            .clone()
            .map(|i| (xs[i][point], ys[i][point]))
            .filter(|(x, y)| !x.is_nan() && !y.is_nan())
            .unzip()
    };
    let (lx, ly) = wrist(&k.left_x, &k.left_y, 10);
    let (rx, ry) = wrist(&k.right_x, &k.right_y, 9);
    let (lvx, lvy, rvx, rvy) = (sample_variance(&lx), sample_variance(&ly), sample_variance(&rx), sample_variance(&ry));
    let (left_total, right_total) = (lvx + lvy, rvx + rvy);
    let winner = match right_of_way {
        None => {
            if left_total > right_total {
                Side::Left
            } else {
                Side::Right
            }
        }
        Some(Side::Left) => {
            if left_total > BLADE_ACTIVE {
                Side::Left
            } else {
                Side::Right
            }
        }
        Some(Side::Right) => {
            if right_total > BLADE_ACTIVE {
                Side::Right
            } else {
                Side::Left
            }
        }
    };
    let details = BladeDetails::Window {
        analysis_window: format!("frames {start}-{end}"),
        contact_frame: f,
        left_variance_x: lvx,
        left_variance_y: lvy,
        left_variance_total: left_total,
        right_variance_x: rvx,
        right_variance_y: rvy,
        right_variance_total: right_total,
        samples_left: lx.len(),
        samples_right: rx.len(),
        current_right_of_way: right_of_way.map_or("none", Side::name).into(),
    };
    (Some(winner), details)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::BladeContact;

    fn phrase(contacts: &[i64]) -> Phrase {
        Phrase {
            start_time: 0.0,
            start_frame: 0,
            simultaneous_hit_time: 1.0,
            simultaneous_hit_frame: 15,
            blade_contacts: contacts.iter().map(|&f| BladeContact { time: f as f64 / 15.0, frame: f }).collect(),
            lockout_start: None,
            declared_winner: "unknown".into(),
            fps: 15.0,
        }
    }

    /// A fencer whose front ankle is at `front[i]` (back ankle 1 behind), y steady.
    fn fencer(front: &[f64], side: Side) -> (Vec<Row>, Vec<Row>) {
        let d = side.direction();
        let xs = front.iter().map(|&x| {
            let mut r = [f64::NAN; 17];
            r[16] = x;
            r[15] = if x.is_nan() { f64::NAN } else { x - d };
            r[9] = x;
            r[10] = x;
            r
        });
        let ys = front.iter().map(|&x| {
            let mut r = [f64::NAN; 17];
            if !x.is_nan() {
                r[16] = 5.0;
                r[15] = 5.0;
                r[9] = 3.0;
                r[10] = 3.0;
            }
            r
        });
        (xs.collect(), ys.collect())
    }

    fn keypoints(left: &[f64], right: &[f64]) -> Keypoints {
        let (left_x, left_y) = fencer(left, Side::Left);
        let (right_x, right_y) = fencer(right, Side::Right);
        Keypoints { left_x, left_y, right_x, right_y }
    }

    fn advancing(n: usize, from: f64, step: f64) -> Vec<f64> {
        (0..n).map(|i| from + step * i as f64).collect()
    }

    #[test]
    fn a_blade_contact_at_the_last_frame_number_there_is_an_invalid_window() {
        // Fuzzing (scoring_log): a log line `99999999999999999999999.9s | Off-Target:
        // Blade-to-blade contact.` gives frame i64::MAX, and the window's end overflowed.
        let still = vec![1.0; 20];
        for frame in [i64::MAX, i64::MAX - 2] {
            let d = Engine::Legacy.decide(&keypoints(&still, &still), &phrase(&[frame]), Some(100.0));
            assert_eq!(d.blade_analysis, "right");
            assert!(matches!(d.blade_details, BladeDetails::InvalidWindow { contact_frame, .. } if contact_frame == frame));
        }
    }

    #[test]
    fn empty_and_all_nan_phrases_default_to_right() {
        let d = Engine::Legacy.decide(&Keypoints::default(), &phrase(&[]), None);
        assert_eq!((d.winner.as_str(), d.reason.as_str()), ("right", "Simultaneous action, default to right"));
        // All NaN: every velocity is 0, so both "pause" from frame 1 on, at the same time, and
        // the tie gives left the right of way, as the legacy rules do.
        let nan = vec![f64::NAN; 20];
        let d = Engine::Legacy.decide(&keypoints(&nan, &nan), &phrase(&[]), Some(100.0));
        assert_eq!((d.left_pauses[0].start_frame, d.left_pauses[0].end_frame), (1, 19));
        assert_eq!(d.speed_comparison.left_speed, 0.0);
        assert_eq!(d.reason, "Left has right-of-way (only right paused at 0.07s)");
    }

    #[test]
    fn nan_gaps_count_as_standing_still() {
        // A NaN gap gives velocity 0: four frames of it make a pause.
        let mut left = advancing(20, 1.0, 0.1);
        for v in &mut left[5..10] {
            *v = f64::NAN;
        }
        let right = advancing(20, 9.0, -0.1);
        let d = Engine::Legacy.decide(&keypoints(&left, &right), &phrase(&[]), None);
        assert_eq!(d.left_pauses.len(), 1);
        assert_eq!((d.left_pauses[0].start_frame, d.left_pauses[0].end_frame), (5, 10));
        assert_eq!(d.winner, "right");
        assert_eq!(d.reason, "Right has right-of-way (only left paused at 0.33s)");
    }

    #[test]
    fn runs_shorter_than_four_frames_are_not_pauses() {
        let mut left = advancing(20, 1.0, 0.1);
        let held = left[5];
        for v in &mut left[6..9] {
            *v = held;
        }
        let d = Engine::Legacy.decide(&keypoints(&left, &advancing(20, 9.0, -0.1)), &phrase(&[]), None);
        assert!(d.left_pauses.is_empty(), "{:?}", d.left_pauses);
    }

    #[test]
    fn a_retreat_is_kept_whole() {
        // Moving back fast for 6 frames: paused (vel·d < 0) with mean |vel| > 0.03.
        let mut left = advancing(10, 1.0, 0.1);
        left.extend(advancing(6, left[9] - 0.2, -0.2));
        let d = Engine::Legacy.decide(&keypoints(&left, &advancing(16, 9.0, -0.1)), &phrase(&[]), None);
        assert_eq!(d.left_pauses.len(), 1);
        assert_eq!((d.left_pauses[0].start_frame, d.left_pauses[0].end_frame), (10, 15));
    }

    #[test]
    fn equal_first_pause_starts_give_left_the_right_of_way() {
        let mut left = advancing(20, 1.0, 0.1);
        let mut right = advancing(20, 9.0, -0.1);
        for i in 8..14 {
            left[i] = left[7];
            right[i] = right[7];
        }
        let d = Engine::Legacy.decide(&keypoints(&left, &right), &phrase(&[]), None);
        assert_eq!(d.left_pauses[0].start_time, d.right_pauses[0].start_time);
        assert_eq!(d.winner, "left");
        assert_eq!(d.reason, "Left has right-of-way (only right paused at 0.53s)");
    }

    #[test]
    fn blade_ties_and_empty_windows_go_right() {
        let still = vec![2.0; 20];
        let k = keypoints(&still, &vec![6.0; 20]);
        // Both still throughout: both paused from frame 1 at the same time → left has right of
        // way; the blade analysis still runs and reports, with equal (zero) movement.
        let d = Engine::Legacy.decide(&k, &phrase(&[10]), None);
        assert_eq!(d.blade_analysis, "right");
        match &d.blade_details {
            BladeDetails::Window { analysis_window, samples_left, .. } => {
                assert_eq!(analysis_window, "frames 2-13");
                assert_eq!(*samples_left, 12);
            }
            other => panic!("{other:?}"),
        }
        let d = Engine::Legacy.decide(&k, &phrase(&[40]), None);
        assert_eq!(d.blade_analysis, "right");
        assert!(matches!(d.blade_details, BladeDetails::InvalidWindow { .. }));
        let json = serde_json::to_value(&Engine::Legacy.decide(&k, &phrase(&[]), None)).unwrap();
        assert_eq!(json["blade_details"], serde_json::json!({}));
    }

    #[test]
    fn speed_decides_without_right_of_way_or_blade() {
        let d = Engine::Legacy.decide(&keypoints(&advancing(20, 1.0, 0.2), &advancing(20, 9.0, -0.1)), &phrase(&[]), None);
        assert!(d.left_pauses.is_empty() && d.right_pauses.is_empty());
        assert!((d.speed_comparison.left_speed - 0.2).abs() < 1e-9);
        assert_eq!(d.reason, "Left had significantly higher speed");
    }

    #[test]
    fn nan_serialises_as_null() {
        let mut k = keypoints(&advancing(8, 1.0, 0.2), &advancing(8, 9.0, -0.2));
        k.left_y[3][16] = f64::NAN;
        let d = Engine::Legacy.decide(&k, &phrase(&[]), Some(f64::NAN));
        assert!(!d.lunge_detected.left, "no c, no lunge");
        let v = serde_json::to_value(SpeedComparison { left_speed: f64::NAN, right_speed: 0.0, left_accel: 0.0, right_accel: 0.0 }).unwrap();
        assert!(v["left_speed"].is_null());
    }
}
