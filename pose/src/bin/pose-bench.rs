//! `pose-bench`: the tensor side of pose on its own (libtorch only, no OpenCV), so it runs on a
//! GPU machine that has no OpenCV. It loads frames letterboxed here (`ai-referee pose
//! --save-tensors DIR`), checks the detections on the chosen device against the CPU ones saved
//! beside them, and prints ms/frame at batch 1, 8 and 32; then, through the pose scheduler
//! (batches formed across phrases), ms/frame with 1, 4 and 16 phrases submitting at once.
//!
//! Usage: `pose-bench DIR [--model M] [--device auto|cpu|cuda] [--rounds N] [--max-batch B]
//! [--sessions 1,4,16]`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use std::sync::Arc;
use std::time::Duration;

use referee_pose::{DeviceChoice, Letterbox, PoseDetection, PoseModel, PoseScheduler, SchedulerSettings};
use serde_json::Value;
use tch::{Device, Tensor};

struct Args {
    dir: PathBuf,
    model: PathBuf,
    device: DeviceChoice,
    rounds: usize,
    max_batch: usize,
    sessions: Vec<usize>,
}

const USAGE: &str = "usage: pose-bench DIR [--model M] [--device auto|cpu|cuda] [--rounds N] [--max-batch B] [--sessions 1,4,16]";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut dir = None;
    let mut model = PathBuf::from("models/yolo11n-pose.torchscript");
    let mut device = DeviceChoice::Auto;
    let mut rounds = 5;
    let mut max_batch = 16;
    let mut sessions = vec![1, 4, 16];
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--model" => model = PathBuf::from(value("--model")?),
            "--device" => device = value("--device")?.parse().map_err(|e| format!("{e}"))?,
            "--rounds" => rounds = value("--rounds")?.parse().map_err(|_| "--rounds takes a number".to_owned())?,
            "--max-batch" => max_batch = value("--max-batch")?.parse().map_err(|_| "--max-batch takes a number".to_owned())?,
            "--sessions" => {
                sessions = value("--sessions")?
                    .split(',')
                    .map(|n| n.trim().parse::<usize>().map_err(|_| "--sessions takes numbers, e.g. 1,4,16".to_owned()))
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other if dir.is_none() && !other.starts_with('-') => dir = Some(PathBuf::from(other)),
            other => return Err(format!("unexpected argument {other:?}")),
        }
    }
    let dir = dir.ok_or(USAGE)?;
    Ok(Args { dir, model, device, rounds: rounds.max(1), max_batch: max_batch.max(1), sessions })
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("pose-bench: {e}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether the device's detections match the saved CPU ones.
fn run() -> Result<bool, String> {
    let args = parse_args()?;
    let saved = Tensor::load_multi(args.dir.join("frames.ot")).map_err(|e| format!("cannot load frames.ot: {e}"))?;
    let get = |name: &str| saved.iter().find(|(n, _)| n == name).map(|(_, t)| t.shallow_clone()).ok_or(format!("frames.ot has no {name}"));
    let (inputs, sizes) = (get("inputs")?, get("sizes")?);
    let n = inputs.size()[0] as usize;
    let frames: Vec<Tensor> = (0..n).map(|i| inputs.get(i as i64)).collect();
    // The saved inputs are one shape, `[N, height, width, 3]`: the square or the minimal one.
    let (input_height, input_width) = (inputs.size()[1] as u32, inputs.size()[2] as u32);
    let geometry: Vec<Letterbox> = (0..n)
        .map(|i| Letterbox {
            width: sizes.int64_value(&[i as i64, 0]) as u32,
            height: sizes.int64_value(&[i as i64, 1]) as u32,
            input_width,
            input_height,
        })
        .collect();
    let reference: Vec<Value> = std::fs::read_to_string(args.dir.join("reference.jsonl"))
        .map_err(|e| format!("cannot read reference.jsonl: {e}"))?
        .lines()
        .map(|l| serde_json::from_str(l).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    if reference.len() != n {
        return Err(format!("{n} frames but {} reference lines", reference.len()));
    }

    let model = PoseModel::load(&args.model, args.device).map_err(|e| e.to_string())?;
    model.warm_up(3).map_err(|e| e.to_string())?;
    println!("pose-bench: {} on {:?}, {n} frames", args.model.display(), model.device());

    // Parity with the CPU results saved beside the frames.
    let (mut worst_px, mut worst_score, mut ok) = (0f64, 0f64, true);
    for (i, frame) in frames.iter().enumerate() {
        let got = model.detect(std::slice::from_ref(frame), &geometry[i..=i]).map_err(|e| e.to_string())?.remove(0);
        let want: Vec<PoseDetection> = serde_json::from_value(reference[i]["detections"].clone()).map_err(|e| e.to_string())?;
        if got.len() != want.len() {
            println!("pose-bench: frame {i}: {} detections, the CPU found {}", got.len(), want.len());
            ok = false;
            continue;
        }
        for (g, w) in got.iter().zip(&want) {
            worst_score = worst_score.max(f64::from((g.score - w.score).abs()));
            for (a, b) in g.bbox.iter().zip(&w.bbox) {
                worst_px = worst_px.max(f64::from((a - b).abs()));
            }
            for (p, q) in g.keypoints.iter().zip(&w.keypoints) {
                worst_px = worst_px.max(f64::from((p[0] - q[0]).abs()).max(f64::from((p[1] - q[1]).abs())));
            }
        }
    }
    ok &= worst_px <= 1.0 && worst_score <= 0.01;
    println!(
        "pose-bench: parity with the CPU: worst {worst_px:.4} px, worst score {worst_score:.2e}: {}",
        if ok { "match" } else { "MISMATCH" }
    );

    // Speed at batch 1, 8 and 32 (frames repeated to fill a batch).
    for batch in [1usize, 8, 32] {
        let inputs: Vec<Tensor> = (0..batch).map(|i| frames[i % n].shallow_clone()).collect();
        let sizes: Vec<Letterbox> = (0..batch).map(|i| geometry[i % n]).collect();
        model.detect(&inputs, &sizes).map_err(|e| e.to_string())?;
        let start = Instant::now();
        for _ in 0..args.rounds {
            model.detect(&inputs, &sizes).map_err(|e| e.to_string())?;
        }
        let detect_ms = start.elapsed().as_secs_f64() * 1e3 / (args.rounds * batch) as f64;
        let stacked = Tensor::stack(&inputs, 0).to_device(model.device()).permute([0, 3, 1, 2]).to_kind(tch::Kind::Float) / 255.0;
        let start = Instant::now();
        for _ in 0..args.rounds {
            let out = model.forward(&stacked).map_err(|e| e.to_string())?;
            synchronise(model.device(), &out);
        }
        let forward_ms = start.elapsed().as_secs_f64() * 1e3 / (args.rounds * batch) as f64;
        println!("pose-bench: batch {batch:>2}: {forward_ms:.2} ms/frame forward, {detect_ms:.2} ms/frame with upload, decode and NMS");
    }

    // Through the scheduler: `sessions` phrases at once, each submitting its frames in order
    // with up to 4 in flight (as a session does), batches formed across them.
    let model = Arc::new(model);
    for &phrases in &args.sessions {
        let settings = SchedulerSettings { max_batch: args.max_batch, batch_wait: Duration::from_millis(2), ..SchedulerSettings::default() };
        let scheduler = Arc::new(PoseScheduler::start(model.clone(), settings).map_err(|e| e.to_string())?);
        let per_phrase = (args.rounds * 8).max(n);
        let start = Instant::now();
        let runners: Vec<_> = (0..phrases)
            .map(|p| {
                let scheduler = scheduler.clone();
                let own: Vec<(Tensor, Letterbox)> = (0..per_phrase).map(|i| (frames[(i + p) % n].copy(), geometry[(i + p) % n])).collect();
                std::thread::spawn(move || -> Result<(), String> {
                    let mut waiting = std::collections::VecDeque::new();
                    for (input, frame) in own {
                        waiting.push_back(scheduler.submit(input, frame));
                        if waiting.len() > 4 {
                            waiting.pop_front().expect("non-empty").wait().map_err(|e| e.to_string())?;
                        }
                    }
                    waiting.into_iter().try_for_each(|t| t.wait().map(|_| ()).map_err(|e| e.to_string()))
                })
            })
            .collect();
        for runner in runners {
            runner.join().map_err(|_| "a phrase thread panicked".to_owned())??;
        }
        let total = (phrases * per_phrase) as f64;
        let ms = start.elapsed().as_secs_f64() * 1e3 / total;
        let stats = scheduler.stats();
        println!(
            "pose-bench: scheduler, {phrases:>2} phrases: {ms:.2} ms/frame, {:.0} frames/s, mean batch {:.1}, largest {}",
            1e3 / ms,
            stats.mean_batch,
            stats.largest_batch
        );
    }
    Ok(ok)
}

/// Waits for the device's queued work (CUDA runs asynchronously).
fn synchronise(device: Device, out: &Tensor) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    } else {
        let _ = out.numel();
    }
}
