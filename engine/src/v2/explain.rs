//! v2's call in a referee's words.

use super::{DecidedBy, V2Decision};
use crate::features::FencerFeatures;
use crate::side::Side;

/// "Left had been advancing for 0.9 s when the lights came on; Right stopped advancing 0.4 s
/// before and stepped back 0.2 s before.", and what settled a dead heat or a parry (`lights_apart`:
/// seconds from the first light to the last; `contact_before`: the blade contact that settled it,
/// seconds before the first light).
pub(super) fn explain(winner: Side, decision: &V2Decision, lights_apart: f64, contact_before: Option<f64>) -> String {
    let (left, right, doubts) = (&decision.left, &decision.right, &decision.doubts);
    let part = |side: Side, f: &FencerFeatures| -> String {
        let mut s = match f.stopped_before_s {
            Some(b) if f.advance_s > 0.0 && b < 0.05 => {
                format!("{} had been advancing for {:.1} s when the lights came on", side.title(), f.advance_s)
            }
            Some(b) if f.advance_s > 0.0 => {
                format!("{} advanced for {:.1} s and stopped {:.1} s before the lights", side.title(), f.advance_s, b)
            }
            Some(b) => format!("{} stopped advancing {:.1} s before the lights", side.title(), b),
            None => format!("{} was not advancing", side.title()),
        };
        if let Some(b) = f.stepped_back_before_s {
            s.push_str(&format!(" and stepped back {b:.1} s before"));
        }
        if f.counter_attack {
            s.push_str(", with the arm already out and not advancing (a counter-attack)");
        }
        s
    };
    // Ground in percent of the opening distance between the front feet (4 c).
    let pct = |g: f64| 100.0 * g / 4.0;
    let (first, second) = match winner {
        Side::Left => ((Side::Left, left), (Side::Right, right)),
        Side::Right => ((Side::Right, right), (Side::Left, left)),
    };
    let mut text = format!(
        "{} gets the touch. {}; {}. In the last second {} gained {:.0}% of the opening distance, {} {:.0}%.",
        winner.title(),
        part(first.0, first.1),
        part(second.0, second.1),
        first.0.title(),
        pct(first.1.gain_last_s),
        second.0.title(),
        pct(second.1.gain_last_s),
    );
    match decision.decided_by {
        DecidedBy::Advance | DecidedBy::SingleLight => {}
        DecidedBy::Parry => {
            let stop = first.1.stopped_before_s.unwrap_or(f64::NAN);
            text.push_str(&format!(
                " The blades met {:.2} s before the lights, after which {} stopped ({stop:.2} s before them) while {} kept coming: {} parried and {} came onto the parry, so the call goes to {}.",
                contact_before.unwrap_or(f64::NAN),
                winner.title(),
                second.0.title(),
                winner.title(),
                second.0.title(),
                winner.title()
            ));
        }
        DecidedBy::Beat => text.push_str(&format!(
            " The advances are level, and a blade contact {:.2} s before the lights was followed by {}'s light first: {} took the blade (a beat) and hit straight after, so the call goes to {}.",
            contact_before.unwrap_or(f64::NAN),
            winner.title(),
            winner.title(),
            winner.title()
        )),
        DecidedBy::SecondLight => text.push_str(&format!(
            " The advances are level (a simultaneous attack), so the call goes to {}, whose light came on second ({:.2} s after {}'s).",
            winner.title(),
            lights_apart,
            second.0.title()
        )),
        DecidedBy::MoreGround => text.push_str(&format!(
            " The advances are level and both lights came on together, so the call goes to {}, who gained more ground.",
            winner.title()
        )),
        DecidedBy::LessGround => text.push_str(&format!(
            " The advances are level and both lights came on together, so the call goes to {}, who did not rush in as far.",
            winner.title()
        )),
    }
    if !doubts.is_empty() {
        text.push_str(&format!(" Not sure: {}.", doubts.join("; ")));
    }
    text
}
