//! The `v3` referee engine: v2's reading of the phrase (who had been advancing, unbroken, when
//! the lights came on, on a true time axis), kept to the rules that hold on evenings they were
//! not fitted on, with a confidence that is the chance a referee agrees.
//!
//! Built by cross-validating by evening (leave one session date out, everything fitted inside
//! the folds; `evaluate` prints the tables). What stayed:
//! - **the attack**: the fencer whose unbroken advance had lasted longer when the lights came on
//!   (less a counter-attack: the arm out early while not advancing) gets the touch. The advance
//!   speed, how recent the advance must be and the counter-attack's weight are fitted;
//! - **a simultaneous attack with a light order**: the fencer whose light came second (the one who
//!   hit first arrived on the other's attack);
//! - **a simultaneous attack with both lights at once**: the ground gained in the last second
//!   settles it, in the direction the fitting phrases ask for; it is close to a coin.
//!
//! What went: v2's beat and parry rules, which fire on 5 and 3 of the 96 recorded phrases
//! (fewer than the 10 phrases from 3 evenings a rule must fire on to be measured at all) and whose
//! parry agreed 5 of 11 on phrases held out from this project.
//!
//! `confidence` is calibrated: for an attack, a logistic fit of agreement on the score margin and
//! on a blade contact in the last second; for a simultaneous attack, the share of such calls that
//! agreed (with one agreement and one disagreement added). `uncertain` is false only from
//! [`SURE_AT`], where by-evening cross-validation puts such calls at 90% agreement or more, and
//! never with too few frames, a fencer not seen or a video that ends early.

mod calibration;
mod explain;
pub mod fit;

use serde::Serialize;

pub use calibration::Calibration;
use crate::features::{self, FeatureRule};
use crate::frame_times::FrameTimes;
use crate::kinematics::Keypoints;
use crate::signal::events::{self, PhraseLog};
use crate::v2::{settle, BladeContacts, DecidedBy, GroundTie, Settled, Settling, V2Decision, V2Error, BEAT_WINDOW_S};

/// Calibrated confidence from which a call is sure.
pub const SURE_AT: f64 = 0.9;

/// Which rules settle a call beside the attack: those `v3` keeps, and those it dropped, for
/// measuring what each adds by evening (`evaluate`'s `ablations`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rules {
    /// A simultaneous attack with a light order goes to the second light (else to the ground).
    pub second_light: bool,
    /// v2's beat: a simultaneous attack with a blade contact `v2::BEAT_WINDOW_S` before the first
    /// light goes to the first light.
    pub beat: bool,
    /// v2's parry: after a blade contact in the last second, the fencer who stopped while the
    /// other came on gets the touch, whatever the advances.
    pub parry: bool,
}

/// The rules `v3` keeps.
pub const KEPT: Rules = Rules { second_light: true, beat: false, parry: false };

/// Everything v3 fits: how the fencers are measured, the ground tie-break's direction, and the
/// confidence's calibration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct V3Params {
    /// Advance speed (c/s) above which a fencer is advancing.
    pub advance_speed: f64,
    /// An advance counts if still going this long before the first light (seconds).
    pub advance_recent_s: f64,
    /// Points taken from a fencer who counter-attacked.
    pub counter_penalty: f64,
    /// Direction of the ground tie-break.
    pub ground_tie: GroundTie,
    /// The rules beside the attack (never fitted: [`KEPT`] unless measuring another set).
    pub rules: Rules,
    /// Confidence from what settled the call.
    pub calibration: Calibration,
}

impl V3Params {
    /// How these parameters settle a call beside the attack.
    pub fn settling(&self) -> Settling {
        Settling {
            second_light: self.rules.second_light,
            beat_window: self.rules.beat.then_some(BEAT_WINDOW_S),
            parry: self.rules.parry,
            ground: self.ground_tie,
        }
    }

    /// The fencers' measuring rule these parameters give (v2's windows otherwise).
    pub fn features(&self) -> FeatureRule {
        let mut rule = crate::v2::FEATURES;
        rule.advance.speed = self.advance_speed;
        rule.advance.recent_s = self.advance_recent_s;
        rule.counter_penalty = self.counter_penalty;
        rule
    }
}

/// The parameters `v3` ships with: [`fit::fit`] on the 96 recorded phrases with a referee's call
/// (`../shared/data/phrases.jsonl`, frame times estimated from each log); `evaluate --engine v3`
/// refits them on its phrases and prints both, and how the fit does on evenings left out of it.
pub const SHIPPED: V3Params = V3Params {
    advance_speed: 0.2,
    advance_recent_s: 0.3,
    counter_penalty: 1.0,
    ground_tie: GroundTie::Less,
    rules: KEPT,
    calibration: Calibration {
        advance: [0.5107708450550241, 1.0287826093467338, -0.4621233073503426],
        second_light: 0.6363636363636364,
        ground: 0.6428571428571429,
    },
};

/// Decides a double touch with the shipped parameters.
pub fn decide(keypoints: &Keypoints, log: &PhraseLog, times: &FrameTimes) -> Result<V2Decision, V2Error> {
    decide_with(keypoints, log, times, &SHIPPED)
}

/// Parses the log (blind to the referee's call), estimates frame times from it when `times` is
/// `None`, and decides.
pub fn decide_log(keypoints: &Keypoints, log: &str, times: Option<FrameTimes>) -> Result<V2Decision, V2Error> {
    let log = events::parse_log(log)?;
    let times = times.unwrap_or_else(|| FrameTimes::estimate(keypoints.frames(), &log));
    decide(keypoints, &log, &times)
}

/// Decides a double touch with the given parameters.
pub fn decide_with(keypoints: &Keypoints, log: &PhraseLog, times: &FrameTimes, params: &V3Params) -> Result<V2Decision, V2Error> {
    let (left, right) = features::measure_both(keypoints, times, log.first_light, &params.features())?;
    let margin = left.score - right.score;
    let contacts = BladeContacts::read(log);
    let (winner, decided_by, _) = settle(&left, &right, log, &contacts, &params.settling());
    let confidence = params.calibration.confidence(decided_by, margin.abs(), contacts.nearest.is_some());
    let mut decision = V2Decision::unexplained(Settled { winner, decided_by, margin, confidence }, log, times, &contacts, left, right);
    decision.doubts = doubts(&decision);
    decision.uncertain = !decision.doubts.is_empty();
    decision.explanation = explain::explain(winner, &decision, log.last_light - log.first_light);
    Ok(decision)
}

/// Why a v3 call should not be trusted (empty: sure).
pub fn doubts(decision: &V2Decision) -> Vec<String> {
    let mut doubts = Vec::new();
    if decision.decided_by == DecidedBy::SingleLight {
        return doubts;
    }
    if decision.confidence < SURE_AT {
        doubts.push(format!(
            "calls like this agree with referees about {:.0}% of the time on evenings left out of the fit (sure from {:.0}%)",
            100.0 * decision.confidence,
            100.0 * SURE_AT
        ));
    }
    doubts.extend(decision.video_doubts());
    doubts
}
