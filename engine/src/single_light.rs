//! Single-light phrases. In sabre, a phrase that ends on one light is the lit fencer's touch:
//! there is no right of way to weigh, so neither engine looks at the pose for it. The legacy
//! service refused such phrases (`Not a double-touch phrase`); the service answers them here,
//! in each engine's own shape, while [`crate::signal::parse`] keeps the legacy's refusal.

use crate::decision::{BladeDetails, Decision, LungeDetected, SpeedComparison};
use crate::signal::SingleLight;
use crate::frame_times::FrameTimes;
use crate::side::Side;
use crate::features::FencerFeatures;
use crate::v2::{DecidedBy, V2Decision};

/// The lit fencer.
fn lit(light: &SingleLight) -> Side {
    if light.winner == Side::Left.name() {
        Side::Left
    } else {
        Side::Right
    }
}

/// The call in words, the same for both engines.
fn reason(light: &SingleLight) -> String {
    let side = lit(light);
    format!(
        "Single light: only {}'s light came on (Fencer 1: {}, Fencer 2: {}), so the touch is {}'s; there is no right of way to weigh",
        side.title(),
        light.fencer1,
        light.fencer2,
        side.title()
    )
}

/// The legacy engine's answer, in its shape: the winner and the reason; no pauses, no blade
/// analysis, and zero speeds (none of them was weighed).
pub fn legacy_decision(light: &SingleLight) -> Decision {
    Decision {
        winner: lit(light).name().to_owned(),
        reason: reason(light),
        left_pauses: Vec::new(),
        right_pauses: Vec::new(),
        blade_analysis: "none".to_owned(),
        blade_details: BladeDetails::NoContact {},
        speed_comparison: SpeedComparison { left_speed: 0.0, right_speed: 0.0, left_accel: 0.0, right_accel: 0.0 },
        lunge_detected: LungeDetected { left: false, right: false },
    }
}

/// `v2`'s answer: sure (confidence 1), settled by the single light, on the phrase's frame times.
pub fn v2_decision(light: &SingleLight, times: &FrameTimes) -> V2Decision {
    V2Decision {
        winner: lit(light).name().to_owned(),
        confidence: 1.0,
        uncertain: false,
        explanation: format!("{}.", reason(light)),
        doubts: Vec::new(),
        margin: 0.0,
        decided_by: DecidedBy::SingleLight,
        first_light: light.hit_time.unwrap_or(f64::NAN),
        last_frame_time: times.times().last().copied(),
        frame_rate: times.rate(),
        time_source: times.source(),
        blade_contact_before_s: None,
        last_contact_before_s: None,
        left: FencerFeatures::default(),
        right: FencerFeatures::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{read_touch, Touch};

    fn single(log: &str) -> SingleLight {
        match read_touch(log) {
            Ok(Touch::Single(light)) => light,
            other => panic!("not a single light: {other:?}"),
        }
    }

    const LOG: &str = " 0.000s | Phrase recording started\n 1.924s | HIT: Right scores on Left!\n\
         2.172s | Phrase recording ended\nScores -> Fencer 1: MISS, Fencer 2: HIT\nPhrase ended\n";

    #[test]
    fn both_engines_give_the_lit_fencer_the_touch_and_say_single_light() {
        let light = single(LOG);
        let legacy = legacy_decision(&light);
        assert_eq!(legacy.winner, "left", "Fencer 2 is the left of the picture");
        assert!(legacy.reason.starts_with("Single light: only Left's light"), "{}", legacy.reason);
        let v2 = v2_decision(&light, &FrameTimes::from_rate(30.0, 60));
        assert_eq!((v2.winner.as_str(), v2.decided_by, v2.uncertain), ("left", DecidedBy::SingleLight, false));
        assert!(v2.explanation.contains("Single light"), "{}", v2.explanation);
        assert_eq!(v2.first_light, 1.924);
        assert!(v2.doubts_with(&crate::v2::V2Params::default()).is_empty());
        let mirrored = single(&LOG.replace("Fencer 1: MISS, Fencer 2: HIT", "Fencer 1: HIT, Fencer 2: MISS"));
        assert_eq!(legacy_decision(&mirrored).winner, "right");
    }

    #[test]
    fn without_frames_the_call_stands() {
        let v2 = v2_decision(&single(LOG), &FrameTimes::from_rate(15.0, 0));
        assert_eq!((v2.winner.as_str(), v2.last_frame_time), ("left", None));
        assert!(!v2.uncertain);
    }
}
