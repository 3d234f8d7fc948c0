//! The YOLO-pose model on libtorch: loading a TorchScript export, choosing the device, checking
//! that it is a 17-keypoint pose model, warming it up, and turning its output into detections
//! (decode, NMS, mapping back to frame pixels) exactly as Ultralytics' `predict` does.
//!
//! This module owns every tensor of the pose side and knows nothing of OpenCV or HTTP, so the
//! same code runs on a GPU machine that has libtorch alone.

pub mod local;
pub mod openvino;
pub mod scheduler;
pub mod triton;

pub use local::{load_local, LocalPose, PoseRuntime};
pub use scheduler::{PoseBackend, PoseScheduler, SchedulerSettings, SchedulerStats, Ticket};

use std::path::{Path, PathBuf};
use std::time::Instant;

use tch::{CModule, Device, IValue, Kind, Tensor};

/// COCO keypoints per person.
pub const KEYPOINTS: usize = 17;
/// Side of the square network input, as Ultralytics exports by default.
pub const INPUT_SIZE: i64 = 640;
/// Channels per candidate in the raw export: box (4), score (1), keypoints (17 × x, y, visibility).
pub const RAW_CHANNELS: i64 = 4 + 1 + 3 * KEYPOINTS as i64;
/// Values per detection in the end-to-end export: box (4), score, class, keypoints (17 × 3).
pub const END_TO_END_VALUES: i64 = 6 + 3 * KEYPOINTS as i64;

/// Ultralytics' default confidence threshold: candidates must score strictly above it.
pub const CONFIDENCE: f32 = 0.25;
/// Ultralytics' default NMS threshold: a box overlapping a better one by more is dropped.
pub const NMS_IOU: f32 = 0.7;
/// Ultralytics' default cap on detections per frame.
pub const MAX_DETECTIONS: usize = 300;
/// Ultralytics' cap on candidates entering NMS.
const MAX_NMS_CANDIDATES: usize = 30_000;

/// One person found in a frame, in the frame's pixels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoseDetection {
    /// `[x1, y1, x2, y2]`, clipped to the frame.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// The model's confidence that this is a person.
    pub score: f32,
    /// COCO keypoints `[x, y, visibility]`, clipped to the frame. The visibility is the model's
    /// own value, kept for whoever reads it; nothing in the referee masks a point for it.
    pub keypoints: [[f32; 3]; KEYPOINTS],
}

impl PoseDetection {
    /// The keypoints as the tracker takes them: `[x, y]` of every point, as Ultralytics'
    /// `keypoints.xy` gives them (8.4 no longer zeroes points under 0.5 visibility, and the
    /// legacy service ran 8.4). A point is "not seen" only where it sits at x ≤ 0 or y ≤ 0
    /// (the tracker's rule), which clipping to the frame gives a point found off its left or top.
    pub fn points(&self) -> [[f32; 2]; KEYPOINTS] {
        self.keypoints.map(|[x, y, _]| [x, y])
    }
}

/// The input shapes a model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputShape {
    /// Only `INPUT_SIZE`² (a fixed-shape export, e.g. Ultralytics' default `imgsz=640`): frames
    /// are padded to the square.
    Square,
    /// Any multiple of the stride (an export made with `dynamic=True`): frames are padded only
    /// to the next multiple of [`STRIDE`], as Ultralytics' `predict` pads for a `.pt` model
    /// (1280×720 → 640×384), which is what makes its detections equal the `.pt`'s.
    Minimal,
}

/// The largest stride of a YOLO model: minimal padding rounds each side up to a multiple of it.
pub const STRIDE: u32 = 32;

/// How a frame was fitted into the model input, as Ultralytics letterboxes: scaled to fit
/// `INPUT_SIZE` keeping its aspect (each side rounded), then padded evenly, to the square or
/// to the next multiple of the stride.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Letterbox {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Model input width in pixels.
    pub input_width: u32,
    /// Model input height in pixels.
    pub input_height: u32,
}

impl Letterbox {
    /// The geometry for a frame of this size in the square `INPUT_SIZE`² input.
    pub fn new(width: u32, height: u32) -> Letterbox {
        Letterbox::fit(width, height, InputShape::Square)
    }

    /// The geometry for a frame of this size in an input of the given kind.
    pub fn fit(width: u32, height: u32, shape: InputShape) -> Letterbox {
        let side = INPUT_SIZE as u32;
        let mut lb = Letterbox { width, height, input_width: side, input_height: side };
        if shape == InputShape::Minimal {
            let (w, h) = lb.resized_size();
            // Ultralytics' `auto`: the padding is what is left over modulo the stride.
            lb.input_width = w as u32 + (side - w as u32) % STRIDE;
            lb.input_height = h as u32 + (side - h as u32) % STRIDE;
        }
        lb
    }

    /// The model input's `(width, height)`.
    pub fn input_size(&self) -> (i64, i64) {
        (i64::from(self.input_width), i64::from(self.input_height))
    }

    /// The frame's size once scaled, before padding: `(width, height)`.
    pub fn resized_size(&self) -> (i32, i32) {
        let side = INPUT_SIZE as f64;
        let gain = (side / self.height as f64).min(side / self.width as f64);
        let w = round_half_even(self.width as f64 * gain).max(1.0);
        let h = round_half_even(self.height as f64 * gain).max(1.0);
        (w as i32, h as i32)
    }

    /// Padding `(top, bottom, left, right)` in pixels around the scaled frame.
    pub fn borders(&self) -> (i32, i32, i32, i32) {
        let (w, h) = self.resized_size();
        let dw = (self.input_width as f64 - w as f64) / 2.0;
        let dh = (self.input_height as f64 - h as f64) / 2.0;
        let r = |v: f64| round_half_even(v) as i32;
        (r(dh - 0.1), r(dh + 0.1), r(dw - 0.1), r(dw + 0.1))
    }

    /// Maps a point of the model input back to frame pixels (unclipped), as Ultralytics'
    /// `scale_boxes`/`scale_coords` do: the gain and padding found again from the input shape.
    fn to_frame(&self, x: f32, y: f32) -> (f32, f32) {
        let (in_w, in_h) = (self.input_width as f64, self.input_height as f64);
        let (w0, h0) = (self.width as f64, self.height as f64);
        let gain = (in_h / h0).min(in_w / w0);
        let new_w = round_half_even(w0 * gain).max(1.0);
        let new_h = round_half_even(h0 * gain).max(1.0);
        let pad_x = round_half_even((in_w - new_w) / 2.0 - 0.1) as f32;
        let pad_y = round_half_even((in_h - new_h) / 2.0 - 0.1) as f32;
        let gain_x = (new_w / w0) as f32;
        let gain_y = (new_h / h0) as f32;
        ((x - pad_x) / gain_x, (y - pad_y) / gain_y)
    }

    fn clip(&self, x: f32, y: f32) -> (f32, f32) {
        (x.clamp(0.0, self.width as f32), y.clamp(0.0, self.height as f32))
    }
}

/// Python's `round`: halves go to the even neighbour.
fn round_half_even(v: f64) -> f64 {
    let r = v.round();
    if (v - v.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - v.signum()
    } else {
        r
    }
}

/// Where the model should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA when libtorch sees a GPU, else CPU.
    Auto,
    /// Always the CPU.
    Cpu,
    /// The first CUDA device; an error where there is none.
    Cuda,
}

impl std::str::FromStr for DeviceChoice {
    type Err = PoseError;
    fn from_str(s: &str) -> Result<Self, PoseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            other => Err(PoseError::Device(format!("unknown device {other:?} (use auto, cpu or cuda)"))),
        }
    }
}

impl DeviceChoice {
    /// The libtorch device this choice resolves to on this machine.
    pub fn resolve(self) -> Result<Device, PoseError> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => Err(PoseError::Device("CUDA was asked for but libtorch sees no GPU".into())),
        }
    }
}

/// The number format pose computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats: the `.pt`'s own results (the default).
    #[default]
    F32,
    /// bfloat16 where the CPU has it (AVX512-BF16, AMX): about twice as fast on such a CPU, and
    /// keypoints that move by around a pixel, so never chosen unless asked for.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = PoseError;
    fn from_str(s: &str) -> Result<Self, PoseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f32" | "fp32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(PoseError::Device(format!("unknown pose precision {other:?} (use f32 or bf16)"))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
        })
    }
}

/// Which way pose runs, for logs, `/health` and `/stats`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PosePath {
    /// `libtorch`, `openvino` or `triton`.
    pub runtime: &'static str,
    /// The number format.
    pub precision: Precision,
    /// `cpu`, `cuda:0`, or the remote server's address.
    pub device: String,
    /// The CPU threads the forward pass uses, where this process runs it on a CPU.
    pub threads: Option<usize>,
}

impl serde::Serialize for Precision {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// How the model lays out its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// `[batch, 56, candidates]`: every anchor's box, score and keypoints; NMS is ours to do.
    Raw,
    /// `[batch, detections, 57]`: already filtered (Ultralytics' end-to-end export).
    EndToEnd,
}

/// Why a pose model could not be loaded or run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PoseError {
    /// The model file does not exist.
    #[error("model file {0} does not exist (run ./scripts/setup.sh, or point REFEREE_YOLO_MODEL at a TorchScript export)")]
    Missing(PathBuf),
    /// libtorch could not read the file as TorchScript.
    #[error("{path} is not a loadable TorchScript module: {reason}")]
    NotTorchScript {
        /// The file.
        path: PathBuf,
        /// libtorch's first line.
        reason: String,
    },
    /// The module runs but its output is not that of a 17-keypoint YOLO pose model.
    #[error("{path} is not a YOLO pose model: its output is {shape:?}, expected [1, 56, N] or [1, N, 57]")]
    NotPoseModel {
        /// The file.
        path: PathBuf,
        /// The output shape it gave for a 640×640 input.
        shape: Vec<i64>,
    },
    /// A device was asked for that is not there.
    #[error("{0}")]
    Device(String),
    /// A forward pass failed.
    #[error("forward pass failed: {0}")]
    Forward(String),
    /// A remote pose backend (Triton) cannot be reached or does not answer in time.
    #[error("the pose backend is unavailable: {0}")]
    Unavailable(String),
    /// A pose runtime (OpenVINO) cannot be loaded, or failed in a call.
    #[error("{0}")]
    Runtime(String),
}

/// A loaded, checked YOLO-pose TorchScript on its device.
pub struct PoseModel {
    module: CModule,
    device: Device,
    layout: OutputLayout,
    input: InputShape,
    path: PathBuf,
}

impl std::fmt::Debug for PoseModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoseModel")
            .field("path", &self.path)
            .field("device", &self.device)
            .field("layout", &self.layout)
            .field("input", &self.input)
            .finish()
    }
}

impl PoseModel {
    /// Loads the TorchScript at `path` onto the chosen device, checks its output shape with one
    /// forward pass on a blank 640×640 image, and finds with a second, on a 640×384 one, whether
    /// it takes any stride-multiple shape (then frames get Ultralytics' minimal padding).
    pub fn load(path: &Path, choice: DeviceChoice) -> Result<PoseModel, PoseError> {
        if !path.is_file() {
            return Err(PoseError::Missing(path.to_owned()));
        }
        let device = choice.resolve()?;
        let mut module = CModule::load_on_device(path, device).map_err(|e| PoseError::NotTorchScript {
            path: path.to_owned(),
            reason: what_failed(&e.to_string()),
        })?;
        module.set_eval();
        let mut model = PoseModel { module, device, layout: OutputLayout::Raw, input: InputShape::Square, path: path.to_owned() };
        let (layout, input) = probe(|batch| model.forward(batch), device).map_err(|e| match e {
            Probed::Shape(shape) => PoseError::NotPoseModel { path: path.to_owned(), shape },
            Probed::Failed(e) => e,
        })?;
        model.layout = layout;
        model.input = input;
        Ok(model)
    }

    /// The shapes this model takes.
    pub fn input_shape(&self) -> InputShape {
        self.input
    }

    /// How a frame of this size is fitted into this model's input.
    pub fn letterbox_for(&self, width: u32, height: u32) -> Letterbox {
        Letterbox::fit(width, height, self.input)
    }

    /// Runs `rounds` forward passes on blank input (libtorch's first few are slow), at the input
    /// shape of a 16:9 frame, and returns the time of the last one, in milliseconds.
    pub fn warm_up(&self, rounds: usize) -> Result<f64, PoseError> {
        self.warm_up_for(rounds, self.letterbox_for(1280, 720))
    }

    /// Runs `rounds` forward passes on blank input of `frame`'s input shape and returns the time
    /// of the last one, in milliseconds.
    pub fn warm_up_for(&self, rounds: usize, frame: Letterbox) -> Result<f64, PoseError> {
        let input = blank_batch(1, frame, self.device);
        let mut last_ms = 0.0;
        for _ in 0..rounds.max(1) {
            let start = Instant::now();
            let out = self.forward(&input)?;
            // Copying one value back waits for asynchronous (CUDA) work to finish.
            let _ = out.flatten(0, -1).double_value(&[0]);
            last_ms = start.elapsed().as_secs_f64() * 1e3;
        }
        Ok(last_ms)
    }

    /// Finds people in a batch of letterboxed frames: `inputs` are `[input_height, input_width,
    /// 3]` uint8 RGB tensors (see `letterbox`), `frames` their geometry, in the same order. Frames
    /// of one input shape go through one forward pass. Per frame, the detections best score
    /// first, as Ultralytics' `predict` gives them with its defaults.
    pub fn detect(&self, inputs: &[Tensor], frames: &[Letterbox]) -> Result<Vec<Vec<PoseDetection>>, PoseError> {
        detect_in_batches(inputs, frames, self.layout, |batch| self.forward(&batch.to_device(self.device)))
    }

    /// The raw forward pass on a `[batch, 3, height, width]` float tensor in 0..1, RGB.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor, PoseError> {
        let input = input.to_device(self.device);
        let output = tch::no_grad(|| self.module.forward_is(&[IValue::Tensor(input)]))
            .map_err(|e| PoseError::Forward(what_failed(&e.to_string())))?;
        first_tensor(output).ok_or_else(|| PoseError::Forward("the model returned no tensor".into()))
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The device as logs and `/stats` name it: `cpu`, `cuda:0`.
    pub fn device_name(&self) -> String {
        match self.device {
            Device::Cpu => "cpu".to_owned(),
            Device::Cuda(i) => format!("cuda:{i}"),
            other => format!("{other:?}").to_lowercase(),
        }
    }

    /// The output layout found at load time.
    pub fn layout(&self) -> OutputLayout {
        self.layout
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

}

/// Why probing a model's output failed: a shape that is not a pose model's, or the forward pass.
#[derive(Debug)]
pub enum Probed {
    /// The output shape it gave for a blank 640×640 input.
    Shape(Vec<i64>),
    /// The forward pass itself failed.
    Failed(PoseError),
}

/// Finds how a pose model (local or remote, through `forward`) lays out its output, from one
/// forward pass on a blank 640×640 image, and whether it takes any stride-multiple shape, from a
/// second on a 640×384 one (then frames get Ultralytics' minimal padding).
pub fn probe(forward: impl Fn(&Tensor) -> Result<Tensor, PoseError>, device: Device) -> Result<(OutputLayout, InputShape), Probed> {
    let output = forward(&blank_batch(1, Letterbox::new(1, 1), device)).map_err(Probed::Failed)?;
    let layout = match output.size().as_slice() {
        [1, c, n] if *c == RAW_CHANNELS && *n > 0 => OutputLayout::Raw,
        [1, _, v] if *v == END_TO_END_VALUES => OutputLayout::EndToEnd,
        shape => return Err(Probed::Shape(shape.to_vec())),
    };
    // A fixed-shape export fails on (or mis-sizes) another shape; a dynamic one gives one
    // candidate per cell of each stride's grid.
    let wide = Letterbox::fit(1280, 720, InputShape::Minimal);
    let cells = anchors_for(wide);
    let input = match forward(&blank_batch(1, wide, device)).map(|out| out.size()) {
        Ok(shape) => match (layout, shape.as_slice()) {
            (OutputLayout::Raw, [1, _, n]) if *n == cells => InputShape::Minimal,
            (OutputLayout::EndToEnd, [1, _, v]) if *v == END_TO_END_VALUES => InputShape::Minimal,
            _ => InputShape::Square,
        },
        Err(_) => InputShape::Square,
    };
    Ok((layout, input))
}

/// Runs letterboxed frames through `forward` and decodes each frame's detections: `inputs` are
/// `[input_height, input_width, 3]` uint8 RGB tensors, `frames` their geometry, in the same
/// order. Frames of one input shape go through one forward pass of a `[batch, 3, h, w]` float
/// tensor in 0..1.
pub fn detect_in_batches(inputs: &[Tensor], frames: &[Letterbox], layout: OutputLayout, forward: impl Fn(&Tensor) -> Result<Tensor, PoseError>) -> Result<Vec<Vec<PoseDetection>>, PoseError> {
    assert_eq!(inputs.len(), frames.len(), "one geometry per input");
    let mut detections = Vec::with_capacity(inputs.len());
    for std::ops::Range { start, end } in same_shape_runs(frames) {
        let batch = Tensor::stack(&inputs[start..end], 0).permute([0, 3, 1, 2]).to_kind(Kind::Float) / 255.0;
        let output = forward(&batch)?;
        if output.size().first() != Some(&((end - start) as i64)) {
            return Err(PoseError::Forward(format!("{} frames in, an output of shape {:?} back", end - start, output.size())));
        }
        for (i, frame) in frames[start..end].iter().enumerate() {
            detections.push(decode(layout, &output.get(i as i64), frame));
        }
    }
    Ok(detections)
}

/// The frames' index ranges, in order, each of frames of one input shape: what one forward pass
/// takes.
pub(crate) fn same_shape_runs(frames: &[Letterbox]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let shape = frames.get(start)?.input_size();
        let end = start + frames[start..].iter().take_while(|f| f.input_size() == shape).count();
        let run = start..end;
        start = end;
        Some(run)
    })
}

/// The candidates a raw output has for `frame`'s input: one per cell of each stride's grid.
pub(crate) fn anchors_for(frame: Letterbox) -> i64 {
    let (w, h) = frame.input_size();
    [8, 16, 32].iter().map(|s| (w / s) * (h / s)).sum()
}

/// A blank `[batch, 3, h, w]` input of `frame`'s input shape.
fn blank_batch(batch: i64, frame: Letterbox, device: Device) -> Tensor {
    let (w, h) = frame.input_size();
    Tensor::zeros([batch, 3, h, w], (Kind::Float, device))
}

/// One frame's output → its detections in frame pixels. An output on the CPU is read into memory
/// whole and decoded there; one on a GPU is filtered there first, so that only the candidates
/// come back.
pub(crate) fn decode(layout: OutputLayout, output: &Tensor, frame: &Letterbox) -> Vec<PoseDetection> {
    if output.device() == Device::Cpu {
        let output = output.to_kind(Kind::Float).contiguous();
        let n = output.numel();
        let mut flat = vec![0f32; n];
        output.copy_data(&mut flat, n);
        return decode_slice(layout, &flat, frame);
    }
    // Rows of [x1|cx, y1|cy, x2|w, y2|h, score, (class,) 51 keypoint values].
    let rows = match layout {
        OutputLayout::Raw => output.transpose(0, 1),
        OutputLayout::EndToEnd => output.shallow_clone(),
    };
    let keep = rows.select(1, SCORE).gt(CONFIDENCE as f64);
    let rows = rows.index_select(0, &keep.nonzero().squeeze_dim(1)).to_kind(Kind::Float).to_device(Device::Cpu).contiguous();
    let n = rows.size()[0] as usize;
    let width = rows.size()[1] as usize;
    let mut flat = vec![0f32; n * width];
    rows.copy_data(&mut flat, n * width);
    let candidates = flat.chunks_exact(width).map(|row| candidate(layout, |c| row[c])).collect();
    finish(layout, candidates, frame)
}

/// The score's place among a candidate's values.
const SCORE: i64 = 4;

/// One frame's output as floats in memory → its detections in frame pixels: `[56 × N]`
/// channel-major (raw) or `[N × 57]` (end-to-end), as the model lays it out.
pub(crate) fn decode_slice(layout: OutputLayout, output: &[f32], frame: &Letterbox) -> Vec<PoseDetection> {
    let score = SCORE as usize;
    let candidates = match layout {
        OutputLayout::Raw => {
            let n = output.len() / RAW_CHANNELS as usize;
            let value = |channel: usize, anchor: usize| output[channel * n + anchor];
            // In anchor order, as the model gives them: the sort below is stable.
            (0..n).filter(|&a| value(score, a) > CONFIDENCE).map(|a| candidate(layout, |c| value(c, a))).collect()
        }
        OutputLayout::EndToEnd => output
            .chunks_exact(END_TO_END_VALUES as usize)
            .filter(|row| row[score] > CONFIDENCE)
            .map(|row| candidate(layout, |c| row[c]))
            .collect(),
    };
    finish(layout, candidates, frame)
}

/// One candidate from its values (`value(i)`: the i-th of box, score, (class,) keypoints), in
/// model-input pixels.
fn candidate(layout: OutputLayout, value: impl Fn(usize) -> f32) -> PoseDetection {
    let bbox = match layout {
        OutputLayout::Raw => {
            let (cx, cy, w, h) = (value(0), value(1), value(2), value(3));
            [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]
        }
        OutputLayout::EndToEnd => [value(0), value(1), value(2), value(3)],
    };
    let keypoint_start = match layout {
        OutputLayout::Raw => 5,
        OutputLayout::EndToEnd => 6,
    };
    let mut keypoints = [[0f32; 3]; KEYPOINTS];
    for (k, point) in keypoints.iter_mut().enumerate() {
        let base = keypoint_start + 3 * k;
        *point = [value(base), value(base + 1), value(base + 2)];
    }
    PoseDetection { bbox, score: value(SCORE as usize), keypoints }
}

/// Candidates (in the model's order) → the frame's detections: best first, NMS (raw output),
/// capped, mapped back to frame pixels and clipped.
fn finish(layout: OutputLayout, mut candidates: Vec<PoseDetection>, frame: &Letterbox) -> Vec<PoseDetection> {
    // Best first; a stable sort keeps the model's order among equal scores.
    candidates.sort_by(|a, b| b.score.total_cmp(&a.score));
    candidates.truncate(MAX_NMS_CANDIDATES);
    let mut kept = match layout {
        OutputLayout::Raw => non_max_suppression(candidates, NMS_IOU),
        OutputLayout::EndToEnd => candidates,
    };
    kept.truncate(MAX_DETECTIONS);
    for det in &mut kept {
        let (x1, y1) = frame.to_frame(det.bbox[0], det.bbox[1]);
        let (x2, y2) = frame.to_frame(det.bbox[2], det.bbox[3]);
        let (x1, y1) = frame.clip(x1, y1);
        let (x2, y2) = frame.clip(x2, y2);
        det.bbox = [x1, y1, x2, y2];
        for point in &mut det.keypoints {
            let (x, y) = frame.to_frame(point[0], point[1]);
            let (x, y) = frame.clip(x, y);
            point[0] = x;
            point[1] = y;
        }
    }
    kept
}

/// Greedy NMS over candidates sorted best first: a box is dropped when it overlaps a kept one
/// by an IoU above `threshold` (torchvision's rule).
fn non_max_suppression(sorted: Vec<PoseDetection>, threshold: f32) -> Vec<PoseDetection> {
    let mut kept: Vec<PoseDetection> = Vec::new();
    for candidate in sorted {
        if kept.iter().all(|k| iou(&k.bbox, &candidate.bbox) <= threshold) {
            kept.push(candidate);
        }
    }
    kept
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// The first tensor of a module's output: the tensor itself, or the first of a tuple or list.
fn first_tensor(value: IValue) -> Option<Tensor> {
    match value {
        IValue::Tensor(t) => Some(t),
        IValue::Tuple(items) | IValue::GenericList(items) => items.into_iter().find_map(first_tensor),
        IValue::TensorList(mut ts) if !ts.is_empty() => Some(ts.swap_remove(0)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_libtorch_error_is_told_by_the_line_that_says_what_failed() {
        let cpp = "CUDA out of memory. Tried to allocate 2.00 GiB\nException raised from malloc at c10/cuda/CUDACachingAllocator.cpp:1\nframe #0: ...";
        assert_eq!(super::what_failed(cpp), "CUDA out of memory. Tried to allocate 2.00 GiB");
        let scripted = "The following operation failed in the TorchScript interpreter.\nTraceback of TorchScript (most recent call last):\n  File \"code/__torch__.py\", line 14, in forward\n\nbuiltins.RuntimeError: CUDA out of memory\n";
        assert_eq!(super::what_failed(scripted), "builtins.RuntimeError: CUDA out of memory");
        assert_eq!(super::what_failed("  \n"), "");
    }

    use super::*;

    #[test]
    fn python_rounding() {
        assert_eq!(round_half_even(0.5), 0.0);
        assert_eq!(round_half_even(1.5), 2.0);
        assert_eq!(round_half_even(2.5), 2.0);
        assert_eq!(round_half_even(2.4), 2.0);
        assert_eq!(round_half_even(139.9), 140.0);
    }

    #[test]
    fn letterbox_geometry_matches_ultralytics() {
        // 1768×994 (the demo clip): gain 640/1768, scaled to 640×360, 140 px above and below.
        let lb = Letterbox::new(1768, 994);
        assert_eq!(lb.resized_size(), (640, 360));
        assert_eq!(lb.borders(), (140, 140, 0, 0));
        // 1280×720 → 640×360; a tall frame pads left and right.
        assert_eq!(Letterbox::new(1280, 720).borders(), (140, 140, 0, 0));
        let tall = Letterbox::new(480, 640);
        assert_eq!(tall.resized_size(), (480, 640));
        assert_eq!(tall.borders(), (0, 0, 80, 80));
        // An odd padding splits as Ultralytics splits it: 641-wide gap → 0.5 rounds down on top.
        let odd = Letterbox::new(640, 639);
        assert_eq!(odd.borders(), (0, 1, 0, 0));
        let (x, y) = lb.to_frame(320.0, 320.0);
        assert!((x - 884.0).abs() < 1e-3 && (y - 497.0).abs() < 0.01, "{x} {y}");
    }

    #[test]
    fn minimal_padding_matches_ultralytics_auto_letterbox() {
        // 1280×720 → 640×360 scaled, padded to 640×384: 12 px above and below.
        let wide = Letterbox::fit(1280, 720, InputShape::Minimal);
        assert_eq!(wide.input_size(), (640, 384));
        assert_eq!(wide.borders(), (12, 12, 0, 0));
        // The demo clip, 1768×994, the same input.
        assert_eq!(Letterbox::fit(1768, 994, InputShape::Minimal).input_size(), (640, 384));
        // Portrait, 4:3 (no padding at all) and an odd frame.
        let tall = Letterbox::fit(720, 1280, InputShape::Minimal);
        assert_eq!((tall.input_size(), tall.borders()), ((384, 640), (0, 0, 12, 12)));
        assert_eq!(Letterbox::fit(640, 480, InputShape::Minimal).borders(), (0, 0, 0, 0));
        let odd = Letterbox::fit(1767, 993, InputShape::Minimal);
        assert_eq!(odd.resized_size(), (640, 360));
        assert_eq!(odd.input_size(), (640, 384));
        // A point maps back through the padding: the input's centre is the frame's centre.
        let (x, y) = wide.to_frame(320.0, 192.0);
        assert!((x - 640.0).abs() < 1e-3 && (y - 360.0).abs() < 1e-3, "{x} {y}");
        // A square frame needs no padding either way.
        assert_eq!(Letterbox::fit(800, 800, InputShape::Minimal), Letterbox::new(800, 800));
    }

    #[test]
    fn nms_drops_overlaps_above_the_threshold_only() {
        let det = |score: f32, bbox: [f32; 4]| PoseDetection { bbox, score, keypoints: [[0.0; 3]; KEYPOINTS] };
        let kept = non_max_suppression(
            vec![
                det(0.9, [0.0, 0.0, 10.0, 10.0]),
                det(0.8, [1.0, 0.0, 11.0, 10.0]), // IoU 0.818: dropped
                det(0.7, [0.0, 0.0, 10.0, 7.0]),  // IoU 0.7 exactly: kept
                det(0.6, [50.0, 50.0, 60.0, 60.0]),
            ],
            0.7,
        );
        let scores: Vec<f32> = kept.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.6]);
    }

    #[test]
    fn low_visibility_keypoints_are_kept_as_keypoints_xy_gives_them() {
        let mut keypoints = [[10.0, 20.0, 0.9]; KEYPOINTS];
        keypoints[3] = [30.0, 40.0, 0.49];
        keypoints[4] = [31.5, 41.25, 0.0];
        keypoints[5] = [0.0, 12.0, 0.01]; // clipped to the frame's left edge: x = 0
        let det = PoseDetection { bbox: [0.0; 4], score: 0.9, keypoints };
        let points = det.points();
        assert_eq!(points[0], [10.0, 20.0]);
        assert_eq!(points[3], [30.0, 40.0], "visibility 0.49 is not a reason to drop a point");
        assert_eq!(points[4], [31.5, 41.25], "nor is visibility 0");
        assert_eq!(points[5], [0.0, 12.0], "coordinates pass through untouched");
        // The visibility itself stays available.
        assert_eq!(det.keypoints[3][2], 0.49);
    }
}

/// What went wrong, from a libtorch error. A C++ error says it on its first line, before its
/// backtrace; an error raised inside a TorchScript model (a CUDA out-of-memory in one of its ops,
/// say) starts with "The following operation failed in the TorchScript interpreter." and says it
/// on its last line, after the model's traceback.
fn what_failed(message: &str) -> String {
    let mut lines = message.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or(message.trim());
    match lines.next_back() {
        Some(last) if first.contains("TorchScript interpreter") => last.to_owned(),
        _ => first.to_owned(),
    }
}
