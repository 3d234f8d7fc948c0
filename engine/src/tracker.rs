//! The two-fencer tracker: slot 0 is the left fencer, slot 1 the right. It is fed one frame's
//! detections at a time (frames stream in), and says per frame which keypoints each slot holds.
//! The rules are the legacy's, including its float32 keypoints and integer boxes.

/// Keypoints per person (COCO).
pub const KEYPOINTS: usize = 17;
/// A person's keypoints in frame pixels; `[0, 0]` (or any non-positive coordinate) is "not seen".
pub type Points = [[f32; 2]; KEYPOINTS];
/// An integer box `[x1, y1, x2, y2]`.
pub type IntBox = [i64; 4];

/// Frames a slot may go unmatched before it is dropped for good.
pub const MAX_MISSES: u32 = 25;
/// A detection is matched to a slot only below this cost.
const MAX_COST: f64 = 2.0;
/// Torso keypoints (shoulders and hips) that give a slot's scale.
const TORSO: [usize; 4] = [5, 6, 11, 12];

/// What a slot holds on one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotFrame {
    /// Its keypoints (the matched detection's, or the last ones repeated).
    pub keypoints: Points,
    /// Their integer bounding box, when at least two are valid.
    pub bbox: Option<IntBox>,
}

/// Both slots on one frame: `[left, right]`, `None` before initialisation or once dropped.
pub type FrameTracks = [Option<SlotFrame>; 2];

/// Whether a keypoint was seen.
pub fn is_valid(p: [f32; 2]) -> bool {
    p[0] > 0.0 && p[1] > 0.0
}

/// Min/max of the valid points, truncated to integers; `None` with fewer than two.
pub fn keypoint_box(points: &Points) -> Option<IntBox> {
    let valid: Vec<[f32; 2]> = points.iter().copied().filter(|p| is_valid(*p)).collect();
    if valid.len() < 2 {
        return None;
    }
    let min_x = valid.iter().map(|p| p[0]).fold(f32::INFINITY, f32::min);
    let min_y = valid.iter().map(|p| p[1]).fold(f32::INFINITY, f32::min);
    let max_x = valid.iter().map(|p| p[0]).fold(f32::NEG_INFINITY, f32::max);
    let max_y = valid.iter().map(|p| p[1]).fold(f32::NEG_INFINITY, f32::max);
    Some([min_x as i64, min_y as i64, max_x as i64, max_y as i64])
}

/// Mean of the valid points (`(0, 0)` when none), in float32 as the legacy computed it.
pub fn centroid(points: &Points) -> [f32; 2] {
    let valid: Vec<[f32; 2]> = points.iter().copied().filter(|p| is_valid(*p)).collect();
    if valid.is_empty() {
        return [0.0, 0.0];
    }
    let n = valid.len() as f64;
    let sx: f64 = valid.iter().map(|p| f64::from(p[0])).sum();
    let sy: f64 = valid.iter().map(|p| f64::from(p[1])).sum();
    [(sx / n) as f32, (sy / n) as f32]
}

#[derive(Debug, Clone)]
struct Slot {
    keypoints: Points,
    bbox: Option<IntBox>,
    centroid: [f32; 2],
    previous_centroid: Option<[f32; 2]>,
    misses: u32,
}

impl Slot {
    fn new(points: &Points) -> Slot {
        Slot { keypoints: *points, bbox: keypoint_box(points), centroid: centroid(points), previous_centroid: None, misses: 0 }
    }

    fn take(&mut self, points: &Points) {
        self.previous_centroid = Some(self.centroid);
        self.keypoints = *points;
        self.bbox = keypoint_box(points);
        self.centroid = centroid(points);
        self.misses = 0;
    }

    fn report(&self) -> SlotFrame {
        SlotFrame { keypoints: self.keypoints, bbox: self.bbox }
    }
}

/// The tracker's state between frames.
#[derive(Debug, Clone)]
pub struct Tracker {
    width: f64,
    height: f64,
    initialised: bool,
    slots: [Option<Slot>; 2],
}

impl Tracker {
    /// A tracker for frames of `width`×`height` pixels.
    pub fn new(width: u32, height: u32) -> Tracker {
        Tracker { width: f64::from(width), height: f64::from(height), initialised: false, slots: [None, None] }
    }

    /// Feeds one frame's detections (in the model's order) and returns what each slot holds.
    pub fn push(&mut self, detections: &[Points]) -> FrameTracks {
        if !self.initialised {
            if detections.len() >= 2 {
                self.initialise(detections);
            }
        } else {
            self.follow(detections);
        }
        [self.slots[0].as_ref().map(Slot::report), self.slots[1].as_ref().map(Slot::report)]
    }

    fn initialise(&mut self, detections: &[Points]) {
        let left = self.ranked(detections, Side::Left);
        let right = self.ranked(detections, Side::Right);
        let right_best = right[0];
        let left_best = if left[0] == right_best { left[1] } else { left[0] };
        self.slots = [Some(Slot::new(&detections[left_best])), Some(Slot::new(&detections[right_best]))];
        self.initialised = true;
    }

    /// Detection indices, best first for `side` (a stable sort: ties keep the lower index).
    fn ranked(&self, detections: &[Points], side: Side) -> Vec<usize> {
        let scores: Vec<f64> = detections.iter().map(|d| self.side_score(d, side)).collect();
        let mut order: Vec<usize> = (0..detections.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        order
    }

    fn side_score(&self, points: &Points, side: Side) -> f64 {
        let [cx, cy] = centroid(points).map(f64::from);
        let (w, h) = (self.width, self.height);
        let margin_x = (0.06 * w).trunc();
        if cx < margin_x || cx > w - margin_x || cy < (0.12 * h).trunc() || cy > h - (0.20 * h).trunc() {
            return -1e9;
        }
        let z = (cx - w / 2.0).abs() / (0.22 * w);
        let on_side = match side {
            Side::Left => cx < w / 2.0,
            Side::Right => cx >= w / 2.0,
        };
        (-0.5 * z * z).exp() + if on_side { 1.0 } else { 0.0 }
    }

    fn follow(&mut self, detections: &[Points]) {
        for slot in self.slots.iter_mut().flatten() {
            slot.misses += 1;
        }
        let mut taken = vec![false; detections.len()];
        if !detections.is_empty() {
            for s in 0..2 {
                let Some(slot) = self.slots[s].as_ref() else { continue };
                let best = (0..detections.len())
                    .filter(|&d| !taken[d])
                    .map(|d| (d, self.cost(slot, &detections[d])))
                    .fold(None, |best: Option<(usize, f64)>, (d, c)| match best {
                        Some((_, bc)) if bc <= c => best,
                        _ => Some((d, c)),
                    });
                if let Some((d, cost)) = best {
                    if cost < MAX_COST {
                        taken[d] = true;
                        if let Some(slot) = self.slots[s].as_mut() {
                            slot.take(&detections[d]);
                        }
                    }
                }
            }
        }
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|s| s.misses > MAX_MISSES) {
                *slot = None;
            }
        }
    }

    /// 0.5 · keypoint distance + 0.3 · (1 − IoU) + 0.2 · motion.
    fn cost(&self, slot: &Slot, points: &Points) -> f64 {
        0.5 * keypoint_cost(&slot.keypoints, points) + 0.3 * box_cost(slot.bbox, keypoint_box(points)) + 0.2 * self.motion_cost(slot, points)
    }

    fn motion_cost(&self, slot: &Slot, points: &Points) -> f64 {
        let Some([x1, y1, x2, y2]) = keypoint_box(points) else { return 0.0 };
        let centre = [(x1 + x2) as f64 / 2.0, (y1 + y2) as f64 / 2.0];
        let c = slot.centroid.map(f64::from);
        let predicted = match slot.previous_centroid {
            Some(p) => [c[0] + (c[0] - f64::from(p[0])), c[1] + (c[1] - f64::from(p[1]))],
            None => c,
        };
        let diagonal = self.width.hypot(self.height);
        (centre[0] - predicted[0]).hypot(centre[1] - predicted[1]) / diagonal
    }
}

#[derive(Debug, Clone, Copy)]
enum Side {
    Left,
    Right,
}

/// Mean distance over keypoints valid in both, over the slot's torso scale (inf if none shared).
fn keypoint_cost(slot: &Points, det: &Points) -> f64 {
    let pairs: Vec<f64> = (0..KEYPOINTS)
        .filter(|&k| is_valid(slot[k]) && is_valid(det[k]))
        .map(|k| f64::from(slot[k][0] - det[k][0]).hypot(f64::from(slot[k][1] - det[k][1])))
        .collect();
    if pairs.is_empty() {
        return f64::INFINITY;
    }
    let mean = pairs.iter().sum::<f64>() / pairs.len() as f64;
    mean / torso_scale(slot)
}

/// Largest pairwise distance among the valid shoulders and hips; 1 with fewer than two.
fn torso_scale(points: &Points) -> f64 {
    let torso: Vec<[f64; 2]> = TORSO.iter().map(|&k| points[k]).filter(|p| is_valid(*p)).map(|p| p.map(f64::from)).collect();
    if torso.len() < 2 {
        return 1.0;
    }
    let mut largest = 0.0f64;
    for i in 0..torso.len() {
        for j in i + 1..torso.len() {
            largest = largest.max((torso[i][0] - torso[j][0]).hypot(torso[i][1] - torso[j][1]));
        }
    }
    largest
}

/// 1 − IoU of two integer boxes; 0.5 when either is missing.
fn box_cost(a: Option<IntBox>, b: Option<IntBox>) -> f64 {
    let (Some(a), Some(b)) = (a, b) else { return 0.5 };
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0);
    let inter = (iw * ih) as f64;
    let area = |r: IntBox| ((r[2] - r[0]) * (r[3] - r[1])) as f64;
    let union = area(a) + area(b) - inter;
    let iou = if union > 0.0 { inter / union } else { 0.0 };
    1.0 - iou
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A person standing at `x`, `y` (pixels), all 17 points valid around it.
    fn person(x: f32, y: f32) -> Points {
        let mut p = [[0.0; 2]; KEYPOINTS];
        for (k, point) in p.iter_mut().enumerate() {
            *point = [x + (k % 3) as f32 * 10.0, y + k as f32 * 12.0];
        }
        p
    }

    #[test]
    fn initialises_left_and_right_by_side() {
        let mut t = Tracker::new(1920, 1080);
        assert_eq!(t.push(&[person(1200.0, 400.0)]), [None, None], "one detection does not initialise");
        let frame = t.push(&[person(1200.0, 400.0), person(600.0, 400.0)]);
        assert_eq!(frame[0].as_ref().unwrap().keypoints, person(600.0, 400.0));
        assert_eq!(frame[1].as_ref().unwrap().keypoints, person(1200.0, 400.0));
    }

    #[test]
    fn equal_scores_go_to_the_lower_index() {
        // Both outside the safe zone: −1e9 for both sides, so ranks are by index.
        let mut t = Tracker::new(1920, 1080);
        let frame = t.push(&[person(10.0, 10.0), person(20.0, 10.0)]);
        // Right's best is detection 0 (lower index); left, whose best is also 0, takes its second.
        assert_eq!(frame[1].as_ref().unwrap().keypoints, person(10.0, 10.0));
        assert_eq!(frame[0].as_ref().unwrap().keypoints, person(20.0, 10.0));
    }

    #[test]
    fn a_slot_is_dropped_after_more_than_25_misses_and_never_comes_back() {
        let mut t = Tracker::new(1920, 1080);
        t.push(&[person(600.0, 400.0), person(1200.0, 400.0)]);
        for i in 1..=MAX_MISSES {
            let frame = t.push(&[]);
            assert!(frame[0].is_some() && frame[1].is_some(), "still held after {i} misses");
            assert_eq!(frame[0].as_ref().unwrap().keypoints, person(600.0, 400.0), "repeats its last keypoints");
        }
        assert_eq!(t.push(&[]), [None, None], "dropped at 26 misses");
        assert_eq!(t.push(&[person(600.0, 400.0), person(1200.0, 400.0)]), [None, None], "never re-initialised");
    }

    #[test]
    fn follows_a_moving_fencer() {
        let mut t = Tracker::new(1920, 1080);
        t.push(&[person(600.0, 400.0), person(1200.0, 400.0)]);
        let frame = t.push(&[person(1190.0, 400.0), person(610.0, 400.0)]);
        assert_eq!(frame[0].as_ref().unwrap().keypoints, person(610.0, 400.0));
        assert_eq!(frame[1].as_ref().unwrap().keypoints, person(1190.0, 400.0));
    }

    #[test]
    fn a_point_is_invalid_only_at_x_or_y_not_above_zero() {
        // Whatever the model's visibility was, only the coordinates decide (legacy spec §3).
        for p in [[0.0, 0.0], [0.0, 5.0], [5.0, 0.0], [-1.0, 5.0], [5.0, -0.5], [-3.0, -3.0]] {
            assert!(!is_valid(p), "{p:?} is not seen");
        }
        for p in [[0.001, 0.001], [1767.9, 993.9], [5.0, 5.0]] {
            assert!(is_valid(p), "{p:?} is seen");
        }
    }

    #[test]
    fn boxes_and_centroids_ignore_invalid_points() {
        let mut p = [[0.0; 2]; KEYPOINTS];
        p[0] = [10.7, 20.2];
        assert_eq!(keypoint_box(&p), None);
        p[1] = [30.2, 5.9];
        assert_eq!(keypoint_box(&p), Some([10, 5, 30, 20]));
        assert_eq!(centroid(&p), [20.45, 13.05]);
        assert_eq!(box_cost(None, Some([0, 0, 1, 1])), 0.5);
        assert!((box_cost(Some([0, 0, 10, 10]), Some([5, 0, 15, 10])) - (1.0 - 50.0 / 150.0)).abs() < 1e-12);
    }
}
