//! The phrase as a picture's data: each fencer's forward speed over time, their pauses (the
//! legacy rules') and retreats (stepping back, as `v2` reads it), the first light and the blade
//! contacts, all in seconds on the log's clock. The piste view draws it; `timeline.json` holds it.
//! Pure: no OpenCV, no libtorch.

use serde::Serialize;

use crate::decision::{Decision, Pause};
use crate::kinematics::Keypoints;
use crate::motion::forward_speed;
use crate::side::Side;
use crate::signal::events::PhraseLog;
use crate::v2::ADVANCE_SPEED;

/// A stretch of time, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Span {
    /// When it began.
    pub start: f64,
    /// When it ended.
    pub end: f64,
}

/// What the timeline picture shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Timeline {
    /// Each frame's time (seconds on the log's clock).
    pub times: Vec<f64>,
    /// The left fencer's forward hip speed per frame (normalised units per second, positive
    /// towards the opponent); `null` where not seen.
    pub left_speed: Vec<Option<f64>>,
    /// The right fencer's, the same way.
    pub right_speed: Vec<Option<f64>>,
    /// The speed above which a fencer counts as advancing (and under minus it, as going back).
    pub advance_speed: f64,
    /// The legacy rules' pauses of the left fencer.
    pub left_pauses: Vec<Span>,
    /// The legacy rules' pauses of the right fencer.
    pub right_pauses: Vec<Span>,
    /// Where the left fencer was stepping back.
    pub left_retreats: Vec<Span>,
    /// Where the right fencer was stepping back.
    pub right_retreats: Vec<Span>,
    /// When the first light came on, if the log says.
    pub first_light: Option<f64>,
    /// Blade-to-blade contacts, as the box reported them.
    pub blade_contacts: Vec<f64>,
}

impl Timeline {
    /// The timeline of a decided phrase: its keypoints and frame times, the log as `v2` read it
    /// (when it could), and the legacy decision's pauses.
    pub fn new(keypoints: &Keypoints, times: &[f64], log: Option<&PhraseLog>, legacy: &Decision) -> Timeline {
        let left = forward_speed(keypoints, times, Side::Left);
        let right = forward_speed(keypoints, times, Side::Right);
        let seen = |v: &[f64]| v.iter().map(|s| s.is_finite().then_some(*s)).collect();
        let pauses = |p: &[Pause]| p.iter().filter_map(|p| span_of_frames(times, p.start_frame, p.end_frame)).collect();
        Timeline {
            times: times.to_vec(),
            left_speed: seen(&left),
            right_speed: seen(&right),
            advance_speed: ADVANCE_SPEED,
            left_pauses: pauses(&legacy.left_pauses),
            right_pauses: pauses(&legacy.right_pauses),
            left_retreats: retreats(times, &left),
            right_retreats: retreats(times, &right),
            first_light: log.map(|l| l.first_light),
            blade_contacts: log.map(|l| l.blade_contacts.clone()).unwrap_or_default(),
        }
    }
}

/// Frames `first..=last` as a span of time (`None` past the frames there are).
fn span_of_frames(times: &[f64], first: usize, last: usize) -> Option<Span> {
    Some(Span { start: *times.get(first)?, end: *times.get(last.min(times.len().saturating_sub(1)))? })
}

/// The runs of frames in which the speed is under minus the advance speed.
fn retreats(times: &[f64], speed: &[f64]) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut from = None;
    for (i, v) in speed.iter().enumerate() {
        match (*v < -ADVANCE_SPEED, from) {
            (true, None) => from = Some(i),
            (false, Some(start)) => {
                spans.push(Span { start: times[start], end: times[i - 1] });
                from = None;
            }
            _ => {}
        }
    }
    if let Some(start) = from {
        spans.push(Span { start: times[start], end: times[speed.len() - 1] });
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retreats_are_the_runs_under_minus_the_advance_speed() {
        let t: Vec<f64> = (0..8).map(|i| i as f64 * 0.1).collect();
        let v = [0.0, -0.5, -0.3, 0.1, f64::NAN, -1.0, -1.0, -0.9];
        let spans = retreats(&t, &v);
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].start, spans[0].end), (0.1, 0.2));
        assert_eq!((spans[1].start, spans[1].end), (t[5], t[7]));
    }

    #[test]
    fn pauses_become_times_and_stay_inside_the_frames() {
        let t = [0.0, 0.5, 1.0];
        assert_eq!(span_of_frames(&t, 1, 2), Some(Span { start: 0.5, end: 1.0 }));
        assert_eq!(span_of_frames(&t, 1, 9), Some(Span { start: 0.5, end: 1.0 }));
        assert_eq!(span_of_frames(&t, 5, 9), None);
    }
}
