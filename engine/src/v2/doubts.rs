//! Why a v2 call should not be trusted: a close margin, a dead heat, a blade contact pose cannot
//! read, too few frames, a fencer not seen.

use super::{DecidedBy, V2Decision, V2Params, BLADE_MARGIN_FACTOR, MIN_FPS};
use crate::motion::MAX_GAP_S;
use crate::side::Side;

impl V2Decision {
    /// Why this call would be uncertain under `params` (empty: sure). `decide_with` fills
    /// `doubts` and `uncertain` from it; cross-validation calls it again with other margins.
    pub fn doubts_with(&self, params: &V2Params) -> Vec<String> {
        let mut doubts = Vec::new();
        if self.decided_by == DecidedBy::SingleLight {
            // The box's one light is the call: nothing the pose or the frames show can doubt it.
            return doubts;
        }
        let margin = self.margin.abs();
        match self.decided_by {
            DecidedBy::Advance if margin < params.sure_margin => {
                doubts.push(format!("the two actions are close (margin {margin:.2}, sure from {:.2})", params.sure_margin));
            }
            DecidedBy::Advance | DecidedBy::SingleLight => {}
            DecidedBy::Parry => doubts.push("settled by a parry read from the blade contact and the stop: pose cannot see the blades".into()),
            DecidedBy::SecondLight | DecidedBy::LessGround | DecidedBy::MoreGround | DecidedBy::Beat => {
                doubts.push("the advances are level: a dead heat, settled by the lights, a beat or the ground".into());
            }
        }
        let read_the_blade = matches!(self.decided_by, DecidedBy::Beat | DecidedBy::Parry);
        if let (Some(before), false) = (self.blade_contact_before_s, read_the_blade) {
            if margin < BLADE_MARGIN_FACTOR * params.sure_margin {
                let when = if before >= 0.0 { format!("{before:.1} s before") } else { format!("{:.1} s after", -before) };
                doubts.push(format!("blade contact {when} the lights: pose alone cannot tell who parried"));
            }
        }
        doubts.extend(self.video_doubts());
        doubts
    }

    /// What the video cannot show, whatever the rule: under `MIN_FPS` frames per second, a
    /// fencer seen in under half of the last second, a video that ends before the lights.
    pub fn video_doubts(&self) -> Vec<String> {
        let mut doubts = Vec::new();
        if self.frame_rate.is_nan() || self.frame_rate < MIN_FPS {
            doubts.push(format!("only {:.1} frames per second over the recording", self.frame_rate));
        }
        for (side, f) in [(Side::Left, &self.left), (Side::Right, &self.right)] {
            if f.seen_last_s < 0.5 {
                doubts.push(format!("{} seen in only {:.0}% of the last second", side.title(), 100.0 * f.seen_last_s));
            }
        }
        match self.last_frame_time {
            Some(last) if self.first_light - last > MAX_GAP_S => {
                doubts.push(format!("the video ends {:.1} s before the lights", self.first_light - last));
            }
            None => doubts.push("no frames".into()),
            _ => {}
        }
        doubts
    }
}
