//! v3's call in a referee's words: the rule that decided, what the pose showed, how sure.

use crate::features::FencerFeatures;
use crate::side::Side;
use crate::v2::{DecidedBy, V2Decision};

/// What one fencer was doing when the lights came on.
fn doing(side: Side, f: &FencerFeatures) -> String {
    let mut s = match f.stopped_before_s {
        Some(b) if f.advance_s >= 0.005 && b < 0.05 => format!("{} had been advancing for {:.2} s", side.title(), f.advance_s),
        Some(b) if f.advance_s >= 0.005 => format!("{} advanced for {:.2} s and stopped {:.1} s before the lights", side.title(), f.advance_s, b),
        Some(b) if f.advance_s > 0.0 && b < 0.05 => format!("{} had only just started advancing", side.title()),
        Some(b) => format!("{} had stopped advancing {:.1} s before the lights", side.title(), b),
        None => format!("{} was not advancing", side.title()),
    };
    if f.counter_attack {
        s.push_str(", arm already out while not advancing (a counter-attack)");
    }
    s
}

/// "Left gets the touch: the attack. Left had been advancing for 0.9 s …; Right … Confidence 84%."
pub(super) fn explain(winner: Side, decision: &V2Decision, lights_apart: f64) -> String {
    let (w, l) = match winner {
        Side::Left => (&decision.left, &decision.right),
        Side::Right => (&decision.right, &decision.left),
    };
    let rule = match decision.decided_by {
        DecidedBy::Advance | DecidedBy::Parry => "the attack (the longer unbroken advance into the lights)".to_owned(),
        DecidedBy::SecondLight | DecidedBy::Beat => {
            format!("a simultaneous attack, settled by the light order: {}'s light came second, {lights_apart:.2} s after", winner.title())
        }
        DecidedBy::LessGround => "a simultaneous attack with both lights at once, settled by the ground: less ground gained in the last second".to_owned(),
        DecidedBy::MoreGround => "a simultaneous attack with both lights at once, settled by the ground: more ground gained in the last second".to_owned(),
        DecidedBy::SingleLight => "the only light".to_owned(),
    };
    let pct = |g: f64| 100.0 * g / 4.0;
    let mut text = format!(
        "{} gets the touch: {rule}. {}; {}. In the last second {} gained {:.0}% of the opening distance, {} {:.0}%. Confidence {:.0}%.",
        winner.title(),
        doing(winner, w),
        doing(winner.other(), l),
        winner.title(),
        pct(w.gain_last_s),
        winner.other().title(),
        pct(l.gain_last_s),
        100.0 * decision.confidence
    );
    if let Some(before) = decision.blade_contact_before_s {
        let when = if before >= 0.0 { format!("{before:.2} s before") } else { format!("{:.2} s after", -before) };
        text.push_str(&format!(" The blades met {when} the lights."));
    }
    if !decision.doubts.is_empty() {
        text.push_str(&format!(" Not sure: {}.", decision.doubts.join("; ")));
    }
    text
}
