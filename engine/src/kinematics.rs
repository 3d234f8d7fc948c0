//! From the tracker's frames to what the rules read: the normalisation constant c, the video
//! angle, and per frame each fencer's 17 points divided by c, with sides and left/right pairs
//! swapped so that 16 is always the front ankle (NaN where a point is missing). Float32, as the
//! legacy computed it.

use serde::{Deserialize, Serialize};

use crate::tracker::{is_valid, FrameTracks, IntBox, Points, KEYPOINTS};

/// Left/right keypoint pairs swapped to put the front one at the even index.
const PAIRS: [(usize, usize); 8] = [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)];
/// One fencer's bbox at least this many times the other's says the camera is on their side.
const ANGLE_RATIO: i64 = 175; // 1.75 × 100, compared in integers

/// One value per keypoint for one frame (NaN where missing).
pub type Row = [f64; KEYPOINTS];

/// Both fencers' normalised keypoints, one row per frame.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Keypoints {
    /// Left fencer, x / c.
    pub left_x: Vec<Row>,
    /// Left fencer, y / c.
    pub left_y: Vec<Row>,
    /// Right fencer, x / c.
    pub right_x: Vec<Row>,
    /// Right fencer, y / c.
    pub right_y: Vec<Row>,
}

impl Keypoints {
    /// Reads keypoints as the fixtures and the JSON lines tools carry them: `left_x`, `left_y`,
    /// `right_x`, `right_y`, each a list of frames of 17 numbers or `null` (NaN).
    pub fn from_json(value: serde_json::Value) -> Result<Keypoints, String> {
        #[derive(Deserialize)]
        struct Raw {
            left_x: Vec<Vec<Option<f64>>>,
            left_y: Vec<Vec<Option<f64>>>,
            right_x: Vec<Vec<Option<f64>>>,
            right_y: Vec<Vec<Option<f64>>>,
        }
        let raw: Raw = serde_json::from_value(value).map_err(|e| format!("bad keypoints: {e}"))?;
        let rows = |v: Vec<Vec<Option<f64>>>, name: &str| -> Result<Vec<Row>, String> {
            v.into_iter()
                .enumerate()
                .map(|(i, r)| {
                    if r.len() != KEYPOINTS {
                        return Err(format!("{name}[{i}] has {} values, expected {KEYPOINTS}", r.len()));
                    }
                    let mut row = [f64::NAN; KEYPOINTS];
                    for (k, v) in r.into_iter().enumerate() {
                        row[k] = v.unwrap_or(f64::NAN);
                    }
                    Ok(row)
                })
                .collect()
        };
        let k = Keypoints {
            left_x: rows(raw.left_x, "left_x")?,
            left_y: rows(raw.left_y, "left_y")?,
            right_x: rows(raw.right_x, "right_x")?,
            right_y: rows(raw.right_y, "right_y")?,
        };
        let n = k.left_x.len();
        if [k.left_y.len(), k.right_x.len(), k.right_y.len()].iter().any(|&m| m != n) {
            return Err("keypoint arrays have different numbers of frames".into());
        }
        Ok(k)
    }

    /// Number of frames.
    pub fn frames(&self) -> usize {
        self.left_x.len()
    }
}

/// What normalisation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Normalised {
    /// c, in pixels: a quarter of the gap between the two middle ankles of the first frame
    /// where both fencers' ankles are seen.
    pub normalisation_constant: f64,
    /// `left`, `right` or `middle`: which fencer looks bigger on that frame.
    pub video_angle: String,
    /// The normalised keypoints.
    #[serde(flatten)]
    pub keypoints: Keypoints,
}

/// Why a phrase cannot be normalised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KinematicsError {
    /// No frame shows both fencers' ankles.
    #[error("No valid frame with keypoints for both tracks found in the video")]
    NoBothFencers,
}

/// Normalises a phrase's tracked frames.
pub fn normalise(frames: &[FrameTracks]) -> Result<Normalised, KinematicsError> {
    let (c, angle) = frames.iter().find_map(reference_frame).ok_or(KinematicsError::NoBothFencers)?;
    let mut out = Keypoints::default();
    for frame in frames {
        let (left, right) = frame_rows(frame, c);
        out.left_x.push(left.0);
        out.left_y.push(left.1);
        out.right_x.push(right.0);
        out.right_y.push(right.1);
    }
    Ok(Normalised { normalisation_constant: f64::from(c), video_angle: angle.to_owned(), keypoints: out })
}

/// c and the video angle, if this frame has both fencers' ankles (x > 0).
fn reference_frame(frame: &FrameTracks) -> Option<(f32, &'static str)> {
    let [Some(a), Some(b)] = frame else { return None };
    let ankles = [a.keypoints[15][0], a.keypoints[16][0], b.keypoints[15][0], b.keypoints[16][0]];
    if ankles.iter().any(|&x| x <= 0.0) {
        return None;
    }
    let mut sorted = ankles;
    sorted.sort_by(|p, q| q.total_cmp(p));
    let c = (sorted[1] - sorted[2]).abs() / 4.0;
    let area = |b: Option<IntBox>| b.map(|[x1, y1, x2, y2]| (x2 - x1) * (y2 - y1)).unwrap_or(0);
    let (left, right) = (area(a.bbox), area(b.bbox));
    let angle = if left * 100 >= right * ANGLE_RATIO {
        "left"
    } else if right * 100 >= left * ANGLE_RATIO {
        "right"
    } else {
        "middle"
    };
    Some((c, angle))
}

type Xy = (Row, Row);

/// One frame's normalised rows `(left, right)`, each `(x, y)`.
fn frame_rows(frame: &FrameTracks, c: f32) -> (Xy, Xy) {
    let missing = ([f64::NAN; KEYPOINTS], [f64::NAN; KEYPOINTS]);
    let [Some(a), Some(b)] = frame else { return (missing, missing) };
    let (Some(box_a), Some(box_b)) = (a.bbox, b.bbox) else { return (missing, missing) };
    let centre = |r: IntBox| (r[0] + r[2]) as f64 / 2.0;
    let (mut left, mut right) = (a.keypoints, b.keypoints);
    if centre(box_a) > centre(box_b) {
        std::mem::swap(&mut left, &mut right);
    }
    for (odd, even) in PAIRS {
        if left[odd][0] > left[even][0] {
            left.swap(odd, even);
        }
        if right[odd][0] < right[even][0] {
            right.swap(odd, even);
        }
    }
    (scaled(&left, c), scaled(&right, c))
}

fn scaled(points: &Points, c: f32) -> Xy {
    let mut xs = [f64::NAN; KEYPOINTS];
    let mut ys = [f64::NAN; KEYPOINTS];
    for (k, &p) in points.iter().enumerate() {
        if is_valid(p) {
            xs[k] = f64::from(p[0] / c);
            ys[k] = f64::from(p[1] / c);
        }
    }
    (xs, ys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::{keypoint_box, SlotFrame};

    fn slot(x: f32, back_ankle: f32, front_ankle: f32) -> Option<SlotFrame> {
        let mut p = [[0.0; 2]; KEYPOINTS];
        for (k, point) in p.iter_mut().enumerate() {
            *point = [x + k as f32, 100.0 + k as f32 * 10.0];
        }
        p[15][0] = back_ankle;
        p[16][0] = front_ankle;
        Some(SlotFrame { keypoints: p, bbox: keypoint_box(&p) })
    }

    #[test]
    fn no_frame_with_both_ankles_is_an_error() {
        assert_eq!(normalise(&[]), Err(KinematicsError::NoBothFencers));
        assert_eq!(normalise(&[[slot(100.0, 90.0, 130.0), None]]), Err(KinematicsError::NoBothFencers));
        let mut no_ankle = slot(500.0, 490.0, 470.0);
        no_ankle.as_mut().unwrap().keypoints[15] = [0.0, 0.0];
        assert_eq!(normalise(&[[slot(100.0, 90.0, 130.0), no_ankle]]), Err(KinematicsError::NoBothFencers));
    }

    #[test]
    fn c_is_a_quarter_of_the_middle_ankle_gap_and_pairs_put_the_front_ankle_at_16() {
        // Ankles at 90, 130 (left) and 530, 490 (right): sorted 530, 490, 130, 90 → c = 360 / 4.
        let frames = [[None, None], [slot(100.0, 130.0, 90.0), slot(500.0, 490.0, 530.0)]];
        let n = normalise(&frames).unwrap();
        assert_eq!(n.normalisation_constant, 90.0);
        assert_eq!(n.video_angle, "middle");
        assert!(n.keypoints.left_x[0].iter().all(|v| v.is_nan()), "an untracked frame is all NaN");
        // Left fencer faces right: its front (16) ankle is the one further right.
        // Values are divided in float32, as the legacy divided them.
        assert_eq!(n.keypoints.left_x[1][16], f64::from(130f32 / 90f32));
        assert_eq!(n.keypoints.left_x[1][15], 1.0);
        // Right fencer faces left: its front ankle is the one further left.
        assert_eq!(n.keypoints.right_x[1][16], f64::from(490f32 / 90f32));
    }

    #[test]
    fn a_cell_is_nan_only_where_its_point_is_at_x_or_y_not_above_zero() {
        let mut left = slot(100.0, 130.0, 90.0);
        let points = &mut left.as_mut().unwrap().keypoints;
        points[0] = [101.0, 0.0]; // y = 0: not seen
        points[1] = [-2.0, 110.0]; // x < 0: not seen
        points[3] = [0.25, 0.5]; // tiny, but both > 0: seen
        let n = normalise(&[[left, slot(500.0, 490.0, 530.0)]]).unwrap();
        let k = &n.keypoints;
        assert!(k.left_x[0][0].is_nan() && k.left_y[0][0].is_nan());
        // Pair (1, 2) is not swapped for the left fencer (x[1] < x[2]): 1 stays the unseen one.
        assert!(k.left_x[0][1].is_nan() && k.left_y[0][1].is_nan());
        assert_eq!(k.left_x[0][3], f64::from(0.25f32 / 90f32));
        let nan = [&k.left_x, &k.left_y, &k.right_x, &k.right_y].iter().map(|r| r[0].iter().filter(|v| v.is_nan()).count()).sum::<usize>();
        assert_eq!(nan, 4, "two unseen points, x and y each: nothing else is NaN");
    }

    #[test]
    fn slots_swap_when_slot_zero_is_on_the_right() {
        let frames = [[slot(500.0, 490.0, 530.0), slot(100.0, 90.0, 130.0)]];
        let n = normalise(&frames).unwrap();
        assert!(n.keypoints.left_x[0][0] < n.keypoints.right_x[0][0]);
    }
}
