//! Fitting v3 on phrases with a referee's call: the advance speed, how recent an advance must be
//! and the counter-attack's weight from small grids (the most agreement; ties go to v2's values),
//! the ground tie-break's direction, then the confidence's calibration on the calls that gives.

use super::{Calibration, Rules, V3Params};
use crate::v2::{settle, GroundTie};
use crate::features::{self, FencerFeatures};
use crate::frame_times::FrameTimes;
use crate::kinematics::Keypoints;
use crate::side::Side;
use crate::signal::events::PhraseLog;
use crate::v2::{self, BladeContacts};

use super::calibration::Fitted;

/// Advance speeds tried (c per second).
pub const ADVANCE_SPEEDS: [f64; 5] = [0.2, 0.1, 0.15, 0.3, 0.4];
/// How recent an advance must be, tried (seconds).
pub const ADVANCE_RECENTS: [f64; 3] = [0.3, 0.2, 0.5];
/// Counter-attack weights tried (points).
pub const COUNTER_PENALTIES: [f64; 3] = [1.0, 0.0, 0.5];

/// A phrase with the referee's call, to fit on.
#[derive(Debug, Clone, Copy)]
pub struct Example<'a> {
    /// The normalised keypoints.
    pub keypoints: &'a Keypoints,
    /// The log's events.
    pub log: &'a PhraseLog,
    /// The frames' times (one per keypoints row).
    pub times: &'a FrameTimes,
    /// Who the referee gave the touch to.
    pub call: Side,
}

impl Example<'_> {
    /// Both fencers measured with these parameters' windows (`None`: times and frames disagree).
    fn measure(&self, params: &V3Params) -> Option<(FencerFeatures, FencerFeatures)> {
        features::measure_both(self.keypoints, self.times, self.log.first_light, &params.features()).ok()
    }

    /// The blade contacts around the first light.
    fn contacts(&self) -> BladeContacts {
        BladeContacts::read(self.log)
    }
}

/// The parameters that agree most with `examples`' calls (see the module's doc), for the rules
/// `v3` keeps. With no examples, v2's windows, the less-ground tie-break and a coin's confidence
/// everywhere.
pub fn fit(examples: &[Example]) -> V3Params {
    fit_rules(examples, super::KEPT)
}

/// [`fit`] for another set of rules (to measure what a rule adds).
pub fn fit_rules(examples: &[Example], rules: Rules) -> V3Params {
    let coin = Calibration { advance: [0.0, 0.0, 0.0], second_light: 0.5, ground: 0.5 };
    let mut best: Option<(usize, V3Params)> = None;
    for &advance_speed in &ADVANCE_SPEEDS {
        for &advance_recent_s in &ADVANCE_RECENTS {
            for &counter_penalty in &COUNTER_PENALTIES {
                let params = V3Params { advance_speed, advance_recent_s, counter_penalty, ground_tie: GroundTie::Less, rules, calibration: coin };
                let measured: Vec<_> = examples.iter().filter_map(|e| Some((e, e.measure(&params)?))).collect();
                for ground_tie in [GroundTie::Less, GroundTie::More] {
                    let how = V3Params { ground_tie, ..params }.settling();
                    let agree = measured.iter().filter(|(e, (l, r))| settle(l, r, e.log, &e.contacts(), &how).0 == e.call).count();
                    if best.as_ref().is_none_or(|(b, _)| agree > *b) {
                        best = Some((agree, V3Params { ground_tie, ..params }));
                    }
                }
            }
        }
    }
    let mut params = best.map_or(
        V3Params {
            advance_speed: v2::ADVANCE_SPEED,
            advance_recent_s: v2::ADVANCE_RECENT_S,
            counter_penalty: v2::COUNTER_PENALTY,
            ground_tie: GroundTie::Less,
            rules,
            calibration: coin,
        },
        |(_, p)| p,
    );
    let calls: Vec<Fitted> = examples
        .iter()
        .filter_map(|e| {
            let (l, r) = e.measure(&params)?;
            let contacts = e.contacts();
            let (winner, decided_by, _) = settle(&l, &r, e.log, &contacts, &params.settling());
            Some(Fitted { decided_by, margin: (l.score - r.score).abs(), blade: contacts.nearest.is_some(), agreed: winner == e.call })
        })
        .collect();
    params.calibration = Calibration::fit(&calls);
    params
}
