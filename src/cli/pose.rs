//! `ai-referee pose`: the pose model on images, videos or folders, one JSON line per frame.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use crate::analysis::frames::{Frame, FrameSource};
use crate::analysis::letterbox::letterbox;
use referee_pose::{load_local, DeviceChoice, PoseRuntime, Precision};
use tch::Tensor;

/// Arguments of `ai-referee pose`.
#[derive(Debug, Clone, Args)]
pub struct PoseArgs {
    /// The YOLO-pose TorchScript.
    #[arg(long, env = "REFEREE_YOLO_MODEL", default_value = "models/yolo11n-pose.torchscript")]
    pub model: PathBuf,
    /// Where pose runs: auto, cpu or cuda.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Which runtime runs pose: `auto` (OpenVINO on a CPU when the model's IR is beside it, else
    /// libtorch), `libtorch` or `openvino`.
    #[arg(long, env = "REFEREE_POSE_RUNTIME", default_value = "auto")]
    pub pose_runtime: String,
    /// The number format: `f32` (the `.pt`'s own results) or `bf16` (OpenVINO on CPUs with
    /// AVX512-BF16 or AMX: faster, keypoints moved by about a pixel).
    #[arg(long, env = "REFEREE_POSE_PRECISION", default_value = "f32")]
    pub pose_precision: String,
    /// Frames per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Also save the letterboxed frames (`frames.ot`) and these detections (`reference.jsonl`)
    /// here, for `pose-bench` to replay on another device.
    #[arg(long)]
    pub save_tensors: Option<PathBuf>,
    /// Images, videos, or folders of images (taken in name order).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
}

/// Runs the model on every frame of every input and prints `{"source", "frame", "width",
/// "height", "detections"}` per frame on stdout; timings go to stderr.
pub fn run(args: PoseArgs) -> Result<(), String> {
    let device: DeviceChoice = args.device.parse().map_err(|e| format!("{e}"))?;
    let runtime: PoseRuntime = args.pose_runtime.parse().map_err(|e| format!("{e}"))?;
    let precision: Precision = args.pose_precision.parse().map_err(|e| format!("{e}"))?;
    let local = load_local(&args.model, device, runtime, precision, 2).map_err(|e| e.to_string())?;
    if let Some(why) = &local.fallback {
        eprintln!("pose: libtorch, not OpenVINO: {why}");
    }
    let model = local.backend;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let batch_size = args.batch.max(1);
    let (mut frames_done, mut seconds) = (0usize, 0f64);
    let mut saved = SavedFrames::default();
    for input in &args.inputs {
        let mut source = FrameSource::open(input).map_err(|e| e.to_string())?;
        loop {
            let batch: Vec<Frame> = source.by_ref().take(batch_size).collect::<Result<_, _>>().map_err(|e| e.to_string())?;
            if batch.is_empty() {
                break;
            }
            let start = Instant::now();
            let mut tensors = Vec::with_capacity(batch.len());
            let mut geometry = Vec::with_capacity(batch.len());
            for frame in &batch {
                let (t, g) = letterbox(&frame.image, model.input_shape()).map_err(|e| format!("{}: {e}", frame.source.display()))?;
                tensors.push(t);
                geometry.push(g);
            }
            let detections = model.detect(&tensors, &geometry).map_err(|e| e.to_string())?;
            if args.save_tensors.is_some() {
                saved.inputs.extend(tensors.iter().map(Tensor::shallow_clone));
                saved.sizes.extend(geometry.iter().map(|g| [i64::from(g.width), i64::from(g.height)]));
            }
            seconds += start.elapsed().as_secs_f64();
            frames_done += batch.len();
            for ((frame, geometry), detections) in batch.iter().zip(&geometry).zip(detections) {
                let line = serde_json::json!({
                    "source": frame.source.display().to_string(),
                    "frame": frame.index,
                    "time": frame.time,
                    "width": geometry.width,
                    "height": geometry.height,
                    "detections": detections,
                });
                writeln!(out, "{line}").map_err(|e| e.to_string())?;
                if args.save_tensors.is_some() {
                    saved.reference.push(line.to_string());
                }
            }
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    if let Some(dir) = &args.save_tensors {
        saved.write(dir)?;
    }
    if frames_done > 0 {
        eprintln!(
            "pose: {frames_done} frames, {:.1} ms/frame (letterbox + forward + NMS) on {}",
            seconds * 1e3 / frames_done as f64,
            model.describe()
        );
    }
    Ok(())
}

/// Letterboxed frames and their CPU detections, kept for `pose-bench`.
#[derive(Default)]
struct SavedFrames {
    inputs: Vec<Tensor>,
    sizes: Vec<[i64; 2]>,
    reference: Vec<String>,
}

impl SavedFrames {
    /// Writes `frames.ot` (`inputs`: uint8 `[N, input height, input width, 3]`, one shape for
    /// all, `sizes`: `[N, 2]` frame width, height) and `reference.jsonl`.
    fn write(&self, dir: &std::path::Path) -> Result<(), String> {
        if self.inputs.is_empty() {
            return Err("no frames to save".into());
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let inputs = Tensor::stack(&self.inputs, 0);
        let flat: Vec<i64> = self.sizes.iter().flatten().copied().collect();
        let sizes = Tensor::from_slice(&flat).view([-1, 2]);
        Tensor::save_multi(&[("inputs", &inputs), ("sizes", &sizes)], dir.join("frames.ot")).map_err(|e| e.to_string())?;
        let mut text = self.reference.join("\n");
        text.push('\n');
        std::fs::write(dir.join("reference.jsonl"), text).map_err(|e| e.to_string())
    }
}
