//! Benchmark (prints numbers, asserts nothing): the legacy and `v2` decisions on a 300-frame
//! phrase, and the tracker + normalisation on 300 frames of detections.
//! `cargo bench -p referee-engine --bench decision`.

use std::time::Instant;

use referee_engine::decision::Engine;
use referee_engine::kinematics::{normalise, Keypoints, Row};
use referee_engine::signal;
use referee_engine::tracker::{Points, Tracker};
use referee_engine::{v2, v3};
use referee_engine::frame_times::FrameTimes;
use referee_engine::signal::events::PhraseLog;
use referee_engine::signal::events::parse_log;
use serde_json::Value;

const FRAMES: usize = 300;

fn fixture(name: &str) -> Vec<Value> {
    let path = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures")).join(name);
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Repeats the rows until there are `FRAMES`.
fn stretched(rows: Vec<Row>) -> Vec<Row> {
    rows.into_iter().cycle().take(FRAMES).collect()
}

/// Times `f` over `rounds` runs; prints mean and median in microseconds.
fn time(label: &str, rounds: usize, mut f: impl FnMut()) {
    for _ in 0..rounds / 10 {
        f();
    }
    let mut samples: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let mean = samples.iter().sum::<f64>() / samples.len() as f64;
    println!("{label}: mean {mean:.1} µs, median {:.1} µs over {rounds} runs", samples[rounds / 2]);
}

fn main() {
    let phrases = fixture("phrases.jsonl");
    let p = phrases.iter().max_by_key(|p| p["keypoints"]["left_x"].as_array().unwrap().len()).unwrap();
    let k = Keypoints::from_json(p["keypoints"].clone()).unwrap();
    let keypoints = Keypoints {
        left_x: stretched(k.left_x),
        left_y: stretched(k.left_y),
        right_x: stretched(k.right_x),
        right_y: stretched(k.right_y),
    };
    let phrase = signal::parse(p["signal"].as_str().unwrap()).unwrap();
    let c = p["normalisation_constant"].as_f64();
    time(&format!("legacy decision, {FRAMES} frames"), 2000, || {
        std::hint::black_box(Engine::Legacy.decide(&keypoints, &phrase, c));
    });

    // v2 on the same frames at 30 fps, the first light moved into the video (10 s), so every
    // window (advance, ground, counter-attack, blade) is computed.
    let log = PhraseLog { first_light: 9.5, last_light: 9.6, ..parse_log(p["signal"].as_str().unwrap()).unwrap() };
    let times = FrameTimes::from_rate(30.0, FRAMES);
    time(&format!("v2 decision, {FRAMES} frames"), 2000, || {
        std::hint::black_box(v2::decide(&keypoints, &log, &times).unwrap());
    });
    time(&format!("v3 decision, {FRAMES} frames"), 2000, || {
        std::hint::black_box(v3::decide(&keypoints, &log, &times).unwrap());
    });

    let cases = fixture("tracks.jsonl");
    let case = &cases[0];
    let detections: Vec<Vec<Points>> = case["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|frame| frame.as_array().unwrap().iter().map(|d| serde_json::from_value(d.clone()).unwrap()).collect())
        .cycle()
        .take(FRAMES)
        .collect();
    let (w, h) = (case["frame_width"].as_u64().unwrap() as u32, case["frame_height"].as_u64().unwrap() as u32);
    time(&format!("tracker + normalisation, {FRAMES} frames"), 500, || {
        let mut tracker = Tracker::new(w, h);
        let frames: Vec<_> = detections.iter().map(|d| tracker.push(d)).collect();
        std::hint::black_box(normalise(&frames).ok());
    });
}
