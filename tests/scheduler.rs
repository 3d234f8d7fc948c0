//! The pose scheduler with the real model (the marker model, on real libtorch): frames of
//! several phrases submitted at once share batches, and every frame gets exactly the detections
//! a forward pass of its own gives.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ai_referee::analysis::frames::decode_jpeg;
use ai_referee::analysis::letterbox::letterbox;
use referee_pose::{DeviceChoice, PoseDetection, PoseModel, PoseScheduler, SchedulerSettings};
use common::{render, repo, TempDir};

fn same(a: &[PoseDetection], b: &[PoseDetection]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.keypoints.iter().flatten().zip(y.keypoints.iter().flatten()).all(|(p, q)| (p - q).abs() < 1e-3)
                && x.bbox.iter().zip(&y.bbox).all(|(p, q)| (p - q).abs() < 1e-3)
        })
}

#[test]
fn phrases_submitted_together_share_batches_and_each_frame_gets_its_own_detections() {
    let tmp = TempDir::new("scheduler");
    let rendered = render(0, tmp.path());
    let frames: Vec<_> = rendered.jpegs.iter().take(24).map(|j| decode_jpeg(j).expect("rendered frames decode")).collect();
    let model = Arc::new(PoseModel::load(&repo().join("models/marker-pose.torchscript"), DeviceChoice::Cpu).unwrap());
    let inputs: Vec<_> = frames.iter().map(|f| letterbox(f, model.input_shape()).unwrap()).collect();
    // Each frame alone, straight through the model: the reference.
    let reference: Vec<Vec<PoseDetection>> = inputs
        .iter()
        .map(|(t, g)| model.detect(&[t.shallow_clone()], &[*g]).unwrap().pop().unwrap())
        .collect();
    assert!(reference.iter().filter(|d| d.len() == 2).count() > 18, "the marker model finds both fencers");

    let settings = SchedulerSettings { max_batch: 8, batch_wait: Duration::from_millis(20), queue_capacity: 4 };
    let scheduler = Arc::new(PoseScheduler::start(model.clone(), settings).unwrap());
    // Four "phrases" at once, each submitting its frames in order, one in flight at a time.
    let phrases: Vec<_> = (0..4)
        .map(|_| {
            let scheduler = scheduler.clone();
            let own: Vec<_> = inputs.iter().map(|(t, g)| (t.copy(), *g)).collect();
            std::thread::spawn(move || own.into_iter().map(|(t, g)| scheduler.detect_one(t, g).unwrap()).collect::<Vec<_>>())
        })
        .collect();
    for phrase in phrases {
        let got = phrase.join().unwrap();
        assert_eq!(got.len(), reference.len());
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            assert!(same(g, r), "frame {i}: batched {g:?} vs alone {r:?}");
        }
    }
    let stats = scheduler.stats();
    assert_eq!(stats.frames, 4 * reference.len() as u64);
    assert_eq!(stats.backlog, 0);
    assert!(stats.largest_batch >= 2 && stats.largest_batch <= 8, "batches across phrases: {stats:?}");
    assert!(stats.batches < stats.frames, "fewer forward passes than frames: {stats:?}");
}
