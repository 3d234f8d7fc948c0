//! Pose in this process: which runtime runs the model (libtorch or OpenVINO), chosen from the
//! device, what is installed and what was asked for, loaded and warmed up.

use std::path::Path;
use std::sync::Arc;

use crate::openvino::{ir_for, OpenVinoPose};
use crate::scheduler::PoseBackend;
use crate::{DeviceChoice, PoseError, PoseModel, Precision};

/// Which runtime runs pose in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoseRuntime {
    /// OpenVINO when pose runs on the CPU and the model's IR and the runtime are there (it gives
    /// the TorchScript's detections faster), else libtorch.
    #[default]
    Auto,
    /// libtorch, on the CPU or CUDA.
    Libtorch,
    /// OpenVINO on the CPU: the model's IR (`scripts/export-model.sh --openvino`), or an error.
    OpenVino,
}

impl std::str::FromStr for PoseRuntime {
    type Err = PoseError;
    fn from_str(s: &str) -> Result<Self, PoseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(PoseRuntime::Auto),
            "libtorch" | "torch" => Ok(PoseRuntime::Libtorch),
            "openvino" => Ok(PoseRuntime::OpenVino),
            other => Err(PoseError::Device(format!("unknown pose runtime {other:?} (use auto, libtorch or openvino)"))),
        }
    }
}

/// A loaded, warmed-up local backend, and why it is the one it is.
pub struct LocalPose {
    /// The backend.
    pub backend: Arc<dyn PoseBackend>,
    /// The last warm-up pass, in milliseconds.
    pub warm_forward_ms: f64,
    /// Why `auto` did not take OpenVINO, where it did not (for the log).
    pub fallback: Option<String>,
}

/// Loads the model at `model` (a TorchScript; its IR beside it for OpenVINO) with the runtime
/// asked for, and warms it up with `warm_up_rounds` passes. `bf16` runs on OpenVINO only: with
/// libtorch it is an error, and `auto` with `bf16` means OpenVINO.
pub fn load_local(model: &Path, device: DeviceChoice, runtime: PoseRuntime, precision: Precision, warm_up_rounds: usize) -> Result<LocalPose, PoseError> {
    let on_cpu = || device.resolve().map(|d| d == tch::Device::Cpu);
    let threads = tch::get_num_threads().max(1) as usize;
    let openvino = |fallback: Option<String>| -> Result<LocalPose, PoseError> {
        let backend = OpenVinoPose::load(&ir_for(model), precision, threads)?;
        let warm_forward_ms = backend.warm_up(warm_up_rounds)?;
        Ok(LocalPose { backend: Arc::new(backend), warm_forward_ms, fallback })
    };
    let libtorch = |fallback: Option<String>| -> Result<LocalPose, PoseError> {
        if precision != Precision::F32 {
            return Err(PoseError::Device(format!("pose precision {precision} runs on OpenVINO only (--pose-runtime openvino)")));
        }
        let backend = PoseModel::load(model, device)?;
        let warm_forward_ms = backend.warm_up(warm_up_rounds)?;
        Ok(LocalPose { backend: Arc::new(backend), warm_forward_ms, fallback })
    };
    match runtime {
        PoseRuntime::Libtorch => libtorch(None),
        PoseRuntime::OpenVino => {
            if !on_cpu()? {
                return Err(PoseError::Device("OpenVINO runs pose on the CPU only (--device cpu, or --pose-runtime libtorch)".into()));
            }
            openvino(None)
        }
        PoseRuntime::Auto if precision != Precision::F32 => openvino(None),
        PoseRuntime::Auto => {
            if !on_cpu()? {
                return libtorch(None);
            }
            let ir = ir_for(model);
            if !ir.is_file() {
                return libtorch(Some(format!("no OpenVINO IR at {} (scripts/export-model.sh --openvino)", ir.display())));
            }
            match openvino(None) {
                Ok(local) => Ok(local),
                Err(PoseError::Runtime(why)) => libtorch(Some(why)),
                Err(other) => Err(other),
            }
        }
    }
}
