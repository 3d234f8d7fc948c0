//! The `v2` referee engine: who had been advancing when the lights came on, on a true time axis.
//!
//! Beside the legacy rules (kept exact in `decision`), `v2` works in seconds, never in frames:
//! frame times come from the stream's timestamps, the video's rate, or (recorded phrases) the
//! standard rate that fits the frame count to the log's recording span, the last frame at its
//! end. It reads only the timed event lines of the scoring-box log (`0.000s | …`) and the
//! `Scores ->` line, never the referee's own call.
//!
//! The rule, per fencer, on the hips' forward position (gaps up to 0.4 s filled, Gaussian
//! smoothing of 0.06 s):
//! - `advance`: how long the fencer had been advancing without a break (hips forward faster
//!   than 0.2 c/s), for an advance still going in the last 0.3 s before the first light;
//! - `counter_attack`: the weapon arm already reaching forward (≥ 0.3 c past the front
//!   shoulder) 0.5 s before the light while the fencer was not advancing.
//!
//! score = advance / 0.5 s − 1 (counter-attack); the higher score wins. The ground gained in
//! the last second is reported and explained but does not decide: added to the score it cost
//! agreement (66.7% against 77.1% without, on the 96 recorded phrases), because it mostly
//! repeats the advance and, where the advances tie, points the wrong way. A dead heat (both
//! advancing since the video began, the simultaneous attack of most short phrases) goes to the
//! fencer whose light came second, and when the box gives both lights at once to the one who
//! gained less ground in the last second: how these referees called such phrases more often than
//! not (13 of the 20 with a light order, 8 of the 12 without; the old rule, the first light,
//! agreed 7 of 20). It is the weakest part of the rule, and a dead heat is never sure.
//!
//! The scoring box's blade contacts settle two kinds of call that the hips alone get wrong,
//! read from the log's clock only: a dead heat with a contact 0.08–0.11 s before the first light
//! (a beat: the fencer whose light came first took the blade and hit straight after) goes to
//! the first light; and when, after a contact in the last second, one fencer stopped advancing
//! while the other was still advancing at the light, the one who stopped parried and gets the
//! touch, whatever the advances. Both rules were read off the errors on the 96 recorded phrases
//! (they fire on 8 of them, 5 beats and 3 parries, and agree on all 8, where the rules before
//! agreed on none); they are fencing's own rules (a beat or a parry takes the right of way), but
//! how well they hold beyond those phrases is not yet known, and such calls are never sure. The
//! margin between the two scores gives the confidence; below a fitted margin, with a blade
//! contact in the last second (pose cannot see who parried), with too few frames or with a
//! fencer not seen, the call is marked uncertain. The rule is exactly symmetric (the same
//! function of each fencer's forward coordinate and light) and time-true (every window is in
//! seconds).

mod doubts;
mod explain;
pub mod fit;

use serde::Serialize;

pub use fit::{fit_beat_window, fit_sure_margin, SURE_MIN_CALLS, SURE_TARGET};
use crate::features::{self, FeatureRule, FencerFeatures};
use crate::frame_times::{FrameTimes, TimeSource, TimesError};
use crate::kinematics::Keypoints;
use crate::motion::AdvanceRule;
use crate::side::Side;
use crate::signal::events::{self, LogError, PhraseLog};

/// Forward hip speed (c per second) above which a fencer is advancing; below minus it, going back.
pub const ADVANCE_SPEED: f64 = 0.2;
/// A dip under `ADVANCE_SPEED` shorter than this (seconds) does not break an advance: a speed
/// grazing the line for a frame or two is not a stop, and the advance must not depend on
/// whether the frame rate happens to sample the dip.
pub const MIN_BREAK_S: f64 = 0.1;
/// An advance counts if it was still going this long before the first light (seconds).
pub const ADVANCE_RECENT_S: f64 = 0.3;
/// Window for the ground gained before the first light (seconds).
pub const GAIN_WINDOW_S: f64 = 1.0;
/// Window looked at for stops and steps back (seconds).
pub const STEP_BACK_WINDOW_S: f64 = 2.0;
/// How long before the first light the counter-attack check looks (seconds).
pub const COUNTER_LEAD_S: f64 = 0.5;
/// Arm reach (front wrist ahead of the front shoulder, in c) that counts as extended.
pub const COUNTER_REACH: f64 = 0.3;
/// Seconds of advance worth one point of score.
pub const ADVANCE_SCALE_S: f64 = 0.5;
/// Points taken from a fencer who counter-attacked.
pub const COUNTER_PENALTY: f64 = 1.0;
/// A blade contact this long before the first light (or up to the last light) makes the call doubtful.
pub const BLADE_WINDOW_S: f64 = 1.0;
/// With such a blade contact, the margin must be this many times the sure margin.
pub const BLADE_MARGIN_FACTOR: f64 = 2.0;
/// The last blade contact before the first light, this many seconds before it (at the least, at
/// the most), is a beat that opened the way for the hit that lit first: the blade travels from the
/// beat to the target in about a tenth of a second. Closer to the light it is the blades crossing
/// on the hits themselves; earlier, an exchange the hit did not follow straight from. In a dead
/// heat the fencer whose light came first after such a contact gets the touch (see [`DecidedBy::Beat`]).
pub const BEAT_WINDOW_S: (f64, f64) = (0.08, 0.11);
/// A fencer whose advance ended at least this long before the first light had stopped; a shorter
/// gap is the advance reaching the light (the crossing is interpolated between frames).
pub const PARRY_STOP_S: f64 = 0.05;
/// Fewer frames per second than this cannot show an advance.
pub const MIN_FPS: f64 = 8.0;
/// How v2 reads an advance off the forward speed.
pub const ADVANCE: AdvanceRule =
    AdvanceRule { speed: ADVANCE_SPEED, min_break_s: MIN_BREAK_S, recent_s: ADVANCE_RECENT_S, window_s: STEP_BACK_WINDOW_S };
/// What v2 measures of each fencer.
pub const FEATURES: FeatureRule = FeatureRule {
    advance: ADVANCE,
    gain_window_s: GAIN_WINDOW_S,
    counter_lead_s: COUNTER_LEAD_S,
    counter_reach: COUNTER_REACH,
    advance_scale_s: ADVANCE_SCALE_S,
    counter_penalty: COUNTER_PENALTY,
};
/// Score margin at or above which a call is sure: [`fit_sure_margin`] with `SURE_TARGET` on
/// the 96 recorded phrases with a call (frame times from [`FrameTimes::estimate`]) gives
/// 0.399 (a fifth of a second more advance, or a counter-attack); rounded. `ai-referee evaluate
/// --folds 0` reports how that fit does on phrases left out of it (fitted per fold: 0.33–0.40).
pub const DEFAULT_SURE_MARGIN: f64 = 0.4;
/// A phrase whose first light comes within this many seconds of the start is "short".
pub const SHORT_PHRASE_S: f64 = 2.0;

/// Why a phrase cannot be decided by `v2` (or `v3`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum V2Error {
    /// The log cannot be decided (no hit, or not both lights).
    #[error(transparent)]
    Log(#[from] LogError),
    /// Frame times that are not finite and increasing, or not one per frame.
    #[error("bad frame times: {0}")]
    BadTimes(String),
}

impl From<TimesError> for V2Error {
    fn from(err: TimesError) -> V2Error {
        V2Error::BadTimes(err.0)
    }
}


/// What settled the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecidedBy {
    /// The scores differ: the longer unbroken advance (less a counter-attack) wins.
    Advance,
    /// A dead heat on the scores: the fencer whose light came on second.
    SecondLight,
    /// A dead heat with both lights at once: the fencer who gained less ground in the last second.
    LessGround,
    /// A dead heat with a blade contact `BEAT_WINDOW_S` before the first light: the fencer whose
    /// light came first took the blade (a beat) and hit straight after (in the recorded phrases:
    /// 8 of the 9 with such a contact and a first light went to it, advance or not; the second-light
    /// rule called all five dead heats among them wrong).
    Beat,
    /// A blade contact in the last second, after which one fencer stopped advancing while the
    /// other was still advancing at the light: the one who stopped parried and the other came
    /// onto the parry, whoever advanced longer (3 of 3 in the recorded phrases).
    Parry,
    /// A dead heat with both lights at once: the fencer who gained more ground in the last second
    /// (`v3`, when its fit asks for that direction; `v2` never).
    MoreGround,
    /// Only one light came on: the touch is the lit fencer's, with no right of way to weigh
    /// (see `single_light`).
    SingleLight,
}


impl DecidedBy {
    /// True for the calls settled after the advances came out level (light order, ground, beat).
    pub fn is_dead_heat(self) -> bool {
        matches!(self, DecidedBy::SecondLight | DecidedBy::LessGround | DecidedBy::MoreGround | DecidedBy::Beat)
    }
}

/// `v2`'s call on a double touch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct V2Decision {
    /// `left` or `right`.
    pub winner: String,
    /// 0.5 (a coin flip) to 1.
    pub confidence: f64,
    /// True where this call should not be trusted (see `doubts`).
    pub uncertain: bool,
    /// The call in a referee's words.
    pub explanation: String,
    /// Why the call is uncertain (empty when sure).
    pub doubts: Vec<String>,
    /// Left score minus right score.
    pub margin: f64,
    /// What settled the call: the advance, or in a dead heat the light order or the ground.
    pub decided_by: DecidedBy,
    /// When the first light came on (seconds on the log's clock).
    pub first_light: f64,
    /// The last frame's time (seconds on the log's clock).
    pub last_frame_time: Option<f64>,
    /// Frames per second used.
    pub frame_rate: f64,
    /// Where the frame times came from.
    pub time_source: TimeSource,
    /// Seconds from the nearest blade contact to the first light (negative: after it), if one
    /// falls in the doubtful window.
    pub blade_contact_before_s: Option<f64>,
    /// Seconds from the last blade contact in the second up to the first light to it, if any.
    pub last_contact_before_s: Option<f64>,
    /// The left fencer's numbers.
    pub left: FencerFeatures,
    /// The right fencer's numbers.
    pub right: FencerFeatures,
}

/// What can be fitted: the margin at or above which a call is sure, and the beat window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct V2Params {
    /// Score margin for a sure call.
    pub sure_margin: f64,
    /// Seconds before the first light (least, most) for the last blade contact to be a beat
    /// (`None`: no beat settles a dead heat).
    pub beat_window: Option<(f64, f64)>,
}


impl Default for V2Params {
    fn default() -> V2Params {
        V2Params { sure_margin: DEFAULT_SURE_MARGIN, beat_window: Some(BEAT_WINDOW_S) }
    }
}

/// Decides a double touch with the default parameters.
pub fn decide(keypoints: &Keypoints, log: &PhraseLog, times: &FrameTimes) -> Result<V2Decision, V2Error> {
    decide_with(keypoints, log, times, &V2Params::default())
}

/// Parses the log (blind to the referee's call), estimates frame times from it when `times` is
/// `None`, and decides.
pub fn decide_log(keypoints: &Keypoints, log: &str, times: Option<FrameTimes>) -> Result<V2Decision, V2Error> {
    let log = events::parse_log(log)?;
    let times = times.unwrap_or_else(|| FrameTimes::estimate(keypoints.frames(), &log));
    decide(keypoints, &log, &times)
}

/// Decides a double touch with the given parameters.
pub fn decide_with(
    keypoints: &Keypoints,
    log: &PhraseLog,
    times: &FrameTimes,
    params: &V2Params,
) -> Result<V2Decision, V2Error> {
    let (left, right) = features::measure_both(keypoints, times, log.first_light, &FEATURES)?;
    let margin = left.score - right.score;
    // Seconds before the first light of each blade contact from a second before it to the last
    // light (negative: after the first light), and those at or before the first light.
    let contacts = BladeContacts::read(log);
    let how = Settling { second_light: true, beat_window: params.beat_window, parry: true, ground: GroundTie::Less };
    let (winner, decided_by, parry_contact) = settle(&left, &right, log, &contacts, &how);

    let confidence = 1.0 / (1.0 + (-margin.abs()).exp());
    let mut decision = V2Decision::unexplained(Settled { winner, decided_by, margin, confidence }, log, times, &contacts, left, right);
    decision.doubts = decision.doubts_with(params);
    decision.uncertain = !decision.doubts.is_empty();
    let settling_contact = match decided_by {
        DecidedBy::Parry => parry_contact,
        _ => contacts.last_before,
    };
    decision.explanation = explain::explain(winner, &decision, log.last_light - log.first_light, settling_contact);
    Ok(decision)
}

/// How a simultaneous attack with both lights at once is settled by the ground gained in the
/// last second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroundTie {
    /// The fencer who gained less ground.
    Less,
    /// The fencer who gained more ground.
    More,
}

/// Which rules settle a call beside the attack (the longer unbroken advance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settling {
    /// A dead heat with a light order goes to the second light.
    pub second_light: bool,
    /// A dead heat whose last blade contact came this long before the first light (least, most;
    /// seconds) goes to the first light (a beat); `None`: no beat.
    pub beat_window: Option<(f64, f64)>,
    /// After a blade contact, the fencer who stopped while the other came on gets the touch,
    /// whatever the advances (a parry).
    pub parry: bool,
    /// Both lights at once: to the fencer who gained less, or more, ground.
    pub ground: GroundTie,
}

/// Who gets the touch and what settled it, in order: a parry, the attack (the higher score), a
/// beat, the second light, the ground; and for a parry, the contact it followed (seconds
/// before the first light). Each rule is the same function of each fencer, so the call is
/// symmetric: right only when all is equal.
pub fn settle(
    left: &FencerFeatures,
    right: &FencerFeatures,
    log: &PhraseLog,
    contacts: &BladeContacts,
    how: &Settling,
) -> (Side, DecidedBy, Option<f64>) {
    let margin = left.score - right.score;
    let parry = if how.parry { parried(left, right, &contacts.before) } else { None };
    let beat = is_beat(contacts.last_before, how.beat_window);
    if let Some((parrier, contact)) = parry {
        (parrier, DecidedBy::Parry, Some(contact))
    } else if margin > 0.0 {
        (Side::Left, DecidedBy::Advance, None)
    } else if margin < 0.0 {
        (Side::Right, DecidedBy::Advance, None)
    } else if let (true, Some(first)) = (beat, log.first_light_side) {
        // A dead heat with a beat just before the lights: the one who hit first after it.
        (first, DecidedBy::Beat, None)
    } else if let (true, Some(first)) = (how.second_light, log.first_light_side) {
        // A dead heat (both advancing since the video began, as a rule): the second light.
        (first.other(), DecidedBy::SecondLight, None)
    } else {
        match how.ground {
            GroundTie::Less => (if left.gain_last_s < right.gain_last_s { Side::Left } else { Side::Right }, DecidedBy::LessGround, None),
            GroundTie::More => (if left.gain_last_s > right.gain_last_s { Side::Left } else { Side::Right }, DecidedBy::MoreGround, None),
        }
    }
}

/// The blade contacts around the first light, in seconds before it (negative: after it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BladeContacts {
    /// Those from `BLADE_WINDOW_S` before the first light to the last light.
    pub around: Vec<f64>,
    /// Those of them at or before the first light.
    pub before: Vec<f64>,
    /// The one nearest the first light, before or after.
    pub nearest: Option<f64>,
    /// The last one at or before the first light.
    pub last_before: Option<f64>,
}

impl BladeContacts {
    /// The log's contacts around its first light.
    pub fn read(log: &PhraseLog) -> BladeContacts {
        let hit = log.first_light;
        let around: Vec<f64> =
            log.blade_contacts.iter().filter(|&&b| b >= hit - BLADE_WINDOW_S && b <= log.last_light).map(|&b| hit - b).collect();
        let before: Vec<f64> = around.iter().copied().filter(|&c| c >= 0.0).collect();
        let nearest = around.iter().copied().min_by(|a, b| a.abs().total_cmp(&b.abs()));
        let last_before = before.iter().copied().min_by(f64::total_cmp);
        BladeContacts { around, before, nearest, last_before }
    }
}

/// Who won a call, what settled it, the score margin and the confidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settled {
    /// Who gets the touch.
    pub winner: Side,
    /// What settled it.
    pub decided_by: DecidedBy,
    /// Left score minus right score.
    pub margin: f64,
    /// The chance the call is right.
    pub confidence: f64,
}

impl V2Decision {
    /// A time-true call before its doubts and explanation are written.
    pub fn unexplained(
        settled: Settled,
        log: &PhraseLog,
        times: &FrameTimes,
        contacts: &BladeContacts,
        left: FencerFeatures,
        right: FencerFeatures,
    ) -> V2Decision {
        V2Decision {
            winner: settled.winner.name().into(),
            confidence: settled.confidence,
            uncertain: false,
            explanation: String::new(),
            doubts: Vec::new(),
            margin: settled.margin,
            decided_by: settled.decided_by,
            first_light: log.first_light,
            last_frame_time: times.times().last().copied(),
            frame_rate: times.rate(),
            time_source: times.source(),
            blade_contact_before_s: contacts.nearest,
            last_contact_before_s: contacts.last_before,
            left,
            right,
        }
    }
}

/// True when the last contact before the first light (seconds before it) falls in the beat window.
fn is_beat(last_contact_before_s: Option<f64>, window: Option<(f64, f64)>) -> bool {
    matches!((last_contact_before_s, window), (Some(c), Some((lo, hi))) if c >= lo && c <= hi)
}

/// The fencer who parried and the contact the stop followed (seconds before the first light): a
/// blade contact (`contacts_before`: seconds before the first light, within the last second), after
/// it this fencer's advance ended at least `PARRY_STOP_S` before the light, while the other's
/// advance went on to the light. `None` when not exactly one fits.
fn parried(left: &FencerFeatures, right: &FencerFeatures, contacts_before: &[f64]) -> Option<(Side, f64)> {
    let still_advancing = |f: &FencerFeatures| f.advance_s > 0.0 && f.stopped_before_s.is_some_and(|s| s < PARRY_STOP_S);
    // The latest contact before the fencer's stop, if the fencer stopped.
    let contact_before_stop = |f: &FencerFeatures| {
        let stop = f.stopped_before_s.filter(|&s| s >= PARRY_STOP_S)?;
        contacts_before.iter().copied().filter(|&c| c > stop).min_by(f64::total_cmp)
    };
    match (contact_before_stop(left), contact_before_stop(right)) {
        (Some(c), None) if still_advancing(right) => Some((Side::Left, c)),
        (None, Some(c)) if still_advancing(left) => Some((Side::Right, c)),
        _ => None,
    }
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::{FRONT_SHOULDER, WEAPON_WRIST};
    use crate::kinematics::Row;


    fn approx(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }









    fn row(hip: f64, shoulder: f64, wrist: f64) -> Row {
        let mut r = [f64::NAN; 17];
        r[11] = hip;
        r[12] = hip;
        r[FRONT_SHOULDER] = shoulder;
        r[WEAPON_WRIST] = wrist;
        r
    }

    /// Left advances for the whole phrase; right stands with the arm out (x grows to the right).
    fn phrase(fps: f64) -> (Keypoints, PhraseLog, FrameTimes) {
        let times = FrameTimes::from_rate(fps, (2.0 * fps) as usize);
        let mut k = Keypoints::default();
        for &s in times.times() {
            k.left_x.push(row(1.0 + s, 1.0 + s, 1.2 + s));
            k.left_y.push([1.0; 17]);
            k.right_x.push(row(8.0, 7.9, 7.4));
            k.right_y.push([1.0; 17]);
        }
        let log = PhraseLog {
            start: 0.0,
            end: Some(2.0),
            last_event: 2.0,
            first_light: 1.9,
            last_light: 1.95,
            first_light_side: None,
            blade_contacts: vec![],
        };
        (k, log, times)
    }

    #[test]
    fn the_advancing_fencer_wins_over_a_standing_counter_attack() {
        let (k, log, times) = phrase(30.0);
        let d = decide(&k, &log, &times).unwrap();
        assert_eq!(d.winner, "left");
        assert!(approx(d.left.advance_s, 1.9, 0.05), "{}", d.left.advance_s);
        assert!(approx(d.left.gain_last_s, 1.0, 0.02));
        assert!(d.right.counter_attack && !d.left.counter_attack);
        assert!(approx(d.right.arm_reach_early.unwrap(), 0.5, 1e-9));
        assert!(!d.uncertain, "{:?}", d.doubts);
        assert!(d.confidence > 0.9 && d.confidence < 1.0);
        assert!(d.explanation.starts_with("Left gets the touch. Left had been advancing for 1.9 s"), "{}", d.explanation);
        // A blade contact just before the lights makes a close call doubtful, not a clear one.
        let blade = PhraseLog { blade_contacts: vec![1.7], ..log.clone() };
        let strict = V2Params { sure_margin: d.margin.abs(), ..V2Params::default() };
        let b = decide_with(&k, &blade, &times, &strict).unwrap();
        assert!(b.uncertain && b.doubts.iter().any(|s| s.contains("blade")), "{:?}", b.doubts);
        assert_eq!(b.blade_contact_before_s.map(|s| (s * 10.0).round()), Some(2.0));
    }

    /// Both fencers advancing at 1 c/s for the whole phrase (`right_speed` for the right one),
    /// neither with the arm out: a dead heat on the advance.
    fn simultaneous(right_speed: f64, first_light_side: Option<Side>) -> (Keypoints, PhraseLog, FrameTimes) {
        let (mut k, log, times) = phrase(30.0);
        for (i, &s) in times.times().iter().enumerate() {
            k.left_x[i] = row(1.0 + s, 1.0 + s, 1.1 + s);
            k.right_x[i] = row(8.0 - right_speed * s, 8.0 - right_speed * s, 7.9 - right_speed * s);
        }
        (k, PhraseLog { first_light_side, ..log }, times)
    }

    #[test]
    fn a_dead_heat_goes_to_the_second_light_then_to_the_one_who_rushed_in_less() {
        let (k, log, times) = simultaneous(1.0, Some(Side::Left));
        let d = decide(&k, &log, &times).unwrap();
        assert_eq!((d.margin, d.decided_by, d.winner.as_str()), (0.0, DecidedBy::SecondLight, "right"));
        assert!(d.uncertain, "a dead heat is never sure");
        assert!(d.explanation.contains("so the call goes to Right, whose light came on second (0.05 s after Left's)"), "{}", d.explanation);
        let d = decide(&k, &PhraseLog { first_light_side: Some(Side::Right), ..log.clone() }, &times).unwrap();
        assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::SecondLight, "left"));
        // Both lights at once: the one who gained less ground in the last second.
        let (k, log, times) = simultaneous(1.5, None);
        let d = decide(&k, &log, &times).unwrap();
        assert_eq!((d.margin, d.decided_by, d.winner.as_str()), (0.0, DecidedBy::LessGround, "left"));
        assert!(d.right.gain_last_s > d.left.gain_last_s);
        assert!(d.explanation.contains("did not rush in as far"), "{}", d.explanation);
        // The ground alone never decides when the advances differ.
        let (mut k, log, times) = simultaneous(3.0, None);
        for (i, &s) in times.times().iter().enumerate() {
            if s < 0.5 {
                k.right_x[i] = row(8.0, 8.0, 7.9);
            } else {
                k.right_x[i] = row(8.0 - 3.0 * (s - 0.5), 8.0 - 3.0 * (s - 0.5), 7.9 - 3.0 * (s - 0.5));
            }
        }
        let d = decide(&k, &log, &times).unwrap();
        assert!(d.right.gain_last_s > 2.0 * d.left.gain_last_s, "{} vs {}", d.right.gain_last_s, d.left.gain_last_s);
        assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::Advance, "left"));
    }

    #[test]
    fn a_beat_just_before_the_lights_gives_a_dead_heat_to_the_first_light() {
        let (k, log, times) = simultaneous(1.0, Some(Side::Left));
        let beat = PhraseLog { blade_contacts: vec![0.4, log.first_light - 0.098], ..log.clone() };
        let d = decide(&k, &beat, &times).unwrap();
        assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::Beat, "left"));
        assert!(approx(d.last_contact_before_s.unwrap(), 0.098, 1e-9));
        assert!(d.explanation.contains("a blade contact 0.10 s before the lights was followed by Left's light first: Left took the blade (a beat)"), "{}", d.explanation);
        assert!(d.uncertain && !d.doubts.iter().any(|s| s.contains("who parried")), "{:?}", d.doubts);
        // Refitting the window moves only such dead heats.
        assert_eq!(d.settled_with(None), (Side::Right, DecidedBy::SecondLight));
        assert_eq!(d.settled_with(Some((0.09, 0.1))), (Side::Left, DecidedBy::Beat));
        // A contact on the hits themselves, or one long before, is no beat: the second light.
        for before in [0.03, 0.2] {
            let other = PhraseLog { blade_contacts: vec![log.first_light - before], ..log.clone() };
            let d = decide(&k, &other, &times).unwrap();
            assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::SecondLight, "right"), "contact {before} s before");
            assert_eq!(d.settled_with(Some((0.0, 0.3))), (Side::Left, DecidedBy::Beat));
        }
        // Without a light order there is no first light to give it to.
        let (k, log, times) = simultaneous(1.5, None);
        let d = decide(&k, &PhraseLog { blade_contacts: vec![log.first_light - 0.098], ..log }, &times).unwrap();
        assert_eq!(d.decided_by, DecidedBy::LessGround);
        assert_eq!(d.settled_with(None), (Side::Left, DecidedBy::LessGround));
    }

    #[test]
    fn the_beat_window_is_fitted_narrowest_and_only_when_the_calls_ask_for_it() {
        let (k, log, times) = simultaneous(1.0, Some(Side::Left));
        let beat = PhraseLog { blade_contacts: vec![log.first_light - 0.098], ..log.clone() };
        let d = decide(&k, &beat, &times).unwrap();
        let w = fit_beat_window(&[(&d, "left")]).unwrap();
        assert!(approx(w.0, 0.09, 1e-9) && approx(w.1, 0.1, 1e-9), "{w:?}");
        assert_eq!(fit_beat_window(&[(&d, "right")]), None, "the second light agrees: no window");
        assert_eq!(fit_beat_window(&[]), None);
    }

    #[test]
    fn a_fencer_who_stops_after_a_blade_contact_while_the_other_comes_on_parried() {
        // Right advances all phrase; left advances until 1.7 s and stands (the lights at 1.9 s).
        let (mut k, log, times) = simultaneous(1.0, None);
        for (i, &s) in times.times().iter().enumerate() {
            let x = 1.0 + s.min(1.7);
            k.left_x[i] = row(x, x, x + 0.1);
        }
        let plain = decide(&k, &log, &times).unwrap();
        assert_eq!((plain.decided_by, plain.winner.as_str()), (DecidedBy::Advance, "right"));
        let stop = plain.left.stopped_before_s.unwrap();
        assert!(stop > 0.1 && stop < 0.3, "stopped {stop} s before");

        let parry = PhraseLog { blade_contacts: vec![log.first_light - 0.35], ..log.clone() };
        let d = decide(&k, &parry, &times).unwrap();
        assert_eq!((d.decided_by, d.winner.as_str()), (DecidedBy::Parry, "left"));
        assert!(d.margin < 0.0, "right's advance was the longer: {}", d.margin);
        assert!(d.uncertain && d.doubts.iter().any(|s| s.contains("parry")), "{:?}", d.doubts);
        assert!(d.explanation.contains("The blades met 0.35 s before the lights, after which Left stopped"), "{}", d.explanation);
        assert!(d.explanation.contains("Left parried and Right came onto the parry"), "{}", d.explanation);
        assert_eq!(d.settled_with(None), (Side::Left, DecidedBy::Parry), "the beat window never moves a parry");

        // A contact after the stop, or a phrase where the other had stopped too, is no parry.
        let late = PhraseLog { blade_contacts: vec![log.first_light - 0.05], ..log.clone() };
        assert_eq!(decide(&k, &late, &times).unwrap().decided_by, DecidedBy::Advance);
        for (i, &s) in times.times().iter().enumerate() {
            let x = 8.0 - s.min(1.6);
            k.right_x[i] = row(x, x, x - 0.1);
        }
        assert_ne!(decide(&k, &parry, &times).unwrap().decided_by, DecidedBy::Parry);
    }

    #[test]
    fn mirroring_swaps_the_winner_exactly() {
        let (k, log, times) = phrase(15.0);
        let flip = |rows: &[Row]| rows.iter().map(|r| r.map(|v| -v)).collect::<Vec<Row>>();
        let m = Keypoints { left_x: flip(&k.right_x), left_y: k.right_y.clone(), right_x: flip(&k.left_x), right_y: k.left_y.clone() };
        let (a, b) = (decide(&k, &log, &times).unwrap(), decide(&m, &log, &times).unwrap());
        assert_eq!((a.winner.as_str(), b.winner.as_str()), ("left", "right"));
        assert_eq!(a.margin, -b.margin);
        assert_eq!(a.left, b.right);
    }

    #[test]
    fn missing_fencers_and_sparse_frames_are_doubts() {
        let (mut k, log, _) = phrase(30.0);
        let sparse = FrameTimes::from_timestamps((0..60).map(|i| i as f64 * 0.2).collect()).unwrap();
        assert!(decide(&k, &log, &sparse).unwrap().doubts.iter().any(|s| s.contains("frames per second")));
        let times = FrameTimes::from_rate(30.0, 60);
        for r in k.right_x.iter_mut().skip(35) {
            *r = [f64::NAN; 17];
        }
        let d = decide(&k, &log, &times).unwrap();
        assert!(d.uncertain && d.doubts.iter().any(|s| s.starts_with("Right seen in only")), "{:?}", d.doubts);
        assert!(decide(&k, &log, &FrameTimes::from_rate(30.0, 10)).is_err(), "one time per frame");
    }
}
