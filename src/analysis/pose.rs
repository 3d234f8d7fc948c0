//! The YOLO-pose model on libtorch: loading a TorchScript export, choosing the device, checking
//! that it is a 17-keypoint pose model, and warming it up.
//!
//! This module owns every tensor of the pose side and knows nothing of OpenCV or HTTP, so the
//! same code runs on a GPU machine that has libtorch alone.

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

/// How the model lays out its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputLayout {
    /// `[batch, 56, candidates]`: every anchor's box, score and keypoints; NMS is ours to do.
    Raw,
    /// `[batch, detections, 57]`: already filtered (Ultralytics' end-to-end export).
    EndToEnd,
}

/// Why a pose model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
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
}

/// A loaded, checked YOLO-pose TorchScript on its device.
pub struct PoseModel {
    module: CModule,
    device: Device,
    layout: OutputLayout,
    path: PathBuf,
}

impl std::fmt::Debug for PoseModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoseModel")
            .field("path", &self.path)
            .field("device", &self.device)
            .field("layout", &self.layout)
            .finish()
    }
}

impl PoseModel {
    /// Loads the TorchScript at `path` onto the chosen device and checks its output shape with
    /// one forward pass on a blank 640×640 image.
    pub fn load(path: &Path, choice: DeviceChoice) -> Result<PoseModel, PoseError> {
        if !path.is_file() {
            return Err(PoseError::Missing(path.to_owned()));
        }
        let device = choice.resolve()?;
        let mut module = CModule::load_on_device(path, device).map_err(|e| PoseError::NotTorchScript {
            path: path.to_owned(),
            reason: first_line(&e.to_string()),
        })?;
        module.set_eval();
        let mut model = PoseModel { module, device, layout: OutputLayout::Raw, path: path.to_owned() };
        let output = model.forward(&model.blank_batch(1))?;
        model.layout = match output.size().as_slice() {
            [1, c, n] if *c == RAW_CHANNELS && *n > 0 => OutputLayout::Raw,
            [1, _, v] if *v == END_TO_END_VALUES => OutputLayout::EndToEnd,
            shape => return Err(PoseError::NotPoseModel { path: path.to_owned(), shape: shape.to_vec() }),
        };
        Ok(model)
    }

    /// Runs `rounds` forward passes on blank input (libtorch's first few are slow) and returns
    /// the time of the last one, in milliseconds.
    pub fn warm_up(&self, rounds: usize) -> Result<f64, PoseError> {
        let input = self.blank_batch(1);
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

    /// The raw forward pass on a `[batch, 3, 640, 640]` float tensor in 0..1, RGB.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor, PoseError> {
        let input = input.to_device(self.device);
        let output = tch::no_grad(|| self.module.forward_is(&[IValue::Tensor(input)]))
            .map_err(|e| PoseError::Forward(first_line(&e.to_string())))?;
        first_tensor(output).ok_or_else(|| PoseError::Forward("the model returned no tensor".into()))
    }

    /// The device the model runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The output layout found at load time.
    pub fn layout(&self) -> OutputLayout {
        self.layout
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn blank_batch(&self, batch: i64) -> Tensor {
        Tensor::zeros([batch, 3, INPUT_SIZE, INPUT_SIZE], (Kind::Float, self.device))
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

/// libtorch errors carry a long C++ backtrace; the first line says what went wrong.
fn first_line(message: &str) -> String {
    message.lines().find(|l| !l.trim().is_empty()).unwrap_or(message).trim().to_owned()
}
