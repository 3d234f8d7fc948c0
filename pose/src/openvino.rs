//! Pose on OpenVINO's CPU runtime: the same network as the TorchScript, exported as an OpenVINO
//! IR (`scripts/export-model.sh --openvino`), run by the runtime's C library, which is loaded when
//! the backend is made (never linked: a binary without OpenVINO beside it still runs libtorch).
//!
//! Frames are letterboxed and decoded exactly as for libtorch ([`crate::detect_in_batches`]'s
//! input, [`crate::decode`]): only the forward pass moves. Each input shape (the last few used)
//! is compiled once, in two forms: one request using every thread for a lone frame (latency),
//! and one request per stream for frames that queued up together (throughput), so that an idle
//! piste gets its frame back soonest and a backlog drains fastest.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use openvino::{Core, DeviceType, ElementType, InferRequest, Model, PartialShape, RwPropertyKey};
use tch::Tensor;

use crate::scheduler::PoseBackend;
use crate::{InputShape, Letterbox, OutputLayout, PoseDetection, PoseError, PosePath, Precision, RAW_CHANNELS};

/// Where the OpenVINO runtime's C library is: a directory holding `libopenvino_c.so*` (the PyPI
/// wheel's `openvino/libs`, which `scripts/setup.sh` writes into `scripts/env.sh`) or the file.
pub const LIBRARY_ENV: &str = "REFEREE_OPENVINO_LIB";

/// Loads the OpenVINO runtime's C library, once per process: from [`LIBRARY_ENV`] when set, else
/// where `openvino-finder` looks (its environment variables, `LD_LIBRARY_PATH`, the usual
/// install folders).
pub fn load_runtime() -> Result<(), PoseError> {
    let unavailable = |why: String| PoseError::Runtime(format!("the OpenVINO runtime cannot be loaded: {why}"));
    // Loaded once: later calls find it there.
    match std::env::var_os(LIBRARY_ENV).filter(|v| !v.is_empty()) {
        Some(path) => {
            let path = PathBuf::from(path);
            if !path.exists() {
                return Err(unavailable(format!("{} does not exist ({LIBRARY_ENV})", path.display())));
            }
            let file = if path.is_dir() { find_c_library(&path).ok_or_else(|| unavailable(format!("no libopenvino_c.so in {} ({LIBRARY_ENV})", path.display())))? } else { path };
            openvino_sys::library::load_from(file).map_err(unavailable)
        }
        None => openvino_sys::library::load().map_err(|e| unavailable(format!("{e} (set {LIBRARY_ENV}, or run scripts/setup.sh and . scripts/env.sh)"))),
    }
}

/// `libopenvino_c.so` or a versioned `libopenvino_c.so.N` in `dir`.
fn find_c_library(dir: &Path) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n == "libopenvino_c.so" || n.starts_with("libopenvino_c.so.")))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The OpenVINO IR that belongs to a TorchScript export: `models/yolo11n-pose.torchscript` →
/// `models/yolo11n-pose_openvino_model/yolo11n-pose.xml`, where `export-model.sh --openvino`
/// (and Ultralytics) put it. A path that is already an `.xml`, or an IR directory, is itself.
pub fn ir_for(model: &Path) -> PathBuf {
    if model.extension().is_some_and(|e| e == "xml") {
        return model.to_owned();
    }
    if model.is_dir() {
        let stem = model.file_name().and_then(|n| n.to_str()).unwrap_or("").trim_end_matches("_openvino_model").to_owned();
        return model.join(format!("{stem}.xml"));
    }
    let stem = model.file_stem().and_then(|n| n.to_str()).unwrap_or("model");
    model.with_file_name(format!("{stem}_openvino_model")).join(format!("{stem}.xml"))
}

/// Input shapes whose compiled forms are kept. Every frame size a client sends letterboxes to
/// one of some forty shapes, each compiled twice (tens of MB): only the most recently used are
/// kept, so memory follows the pistes served, not the sizes clients try.
const SHAPES_KEPT: usize = 4;

/// The values kept for the last `capacity` input shapes used, the most recent last.
struct RecentShapes<T> {
    kept: Vec<((i64, i64), T)>,
    capacity: usize,
}

impl<T> RecentShapes<T> {
    fn new(capacity: usize) -> RecentShapes<T> {
        RecentShapes { kept: Vec::new(), capacity: capacity.max(1) }
    }

    /// The value for `shape`, made by `make` if it is not kept; the least recently used goes
    /// when one more would pass the capacity.
    fn get_or_try_insert<E>(&mut self, shape: (i64, i64), make: impl FnOnce() -> Result<T, E>) -> Result<&mut T, E> {
        match self.kept.iter().position(|(s, _)| *s == shape) {
            Some(at) => {
                let entry = self.kept.remove(at);
                self.kept.push(entry);
            }
            None => {
                let value = make()?;
                if self.kept.len() == self.capacity {
                    self.kept.remove(0);
                }
                self.kept.push((shape, value));
            }
        }
        Ok(&mut self.kept.last_mut().expect("pushed above").1)
    }
}

/// One input shape's compiled forms.
struct Compiled {
    /// Every thread on one frame.
    latency: InferRequest,
    /// One request per stream, each stream with its share of the threads.
    streams: Vec<InferRequest>,
}

/// The OpenVINO backend: a pose IR on the CPU at the asked precision.
pub struct OpenVinoPose {
    core: Mutex<Core>,
    model: Mutex<Model>,
    xml: PathBuf,
    precision: Precision,
    threads: usize,
    compiled: Mutex<RecentShapes<Compiled>>,
}

impl std::fmt::Debug for OpenVinoPose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenVinoPose").field("xml", &self.xml).field("precision", &self.precision).field("threads", &self.threads).finish()
    }
}

/// An OpenVINO call's failure, told by the runtime's own reason where it left one.
fn ov_error(what: &str, err: impl std::fmt::Display) -> PoseError {
    let detail = openvino::get_last_error_message().unwrap_or_default();
    PoseError::Runtime(format!("OpenVINO: {what}: {}", reason(&format!("{err}\n{detail}"))))
}

/// The line of an OpenVINO error that says why: its messages wrap the reason in "Exception from
/// <file>" and "Check '...' failed at <file>" lines.
fn reason(text: &str) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty() && *l != ":").collect();
    let said = |l: &&str| !l.contains("Exception from ") && !(l.starts_with("Check '") && l.contains(" failed at "));
    lines.iter().find(|l| said(l)).or(lines.first()).map(|l| l.trim_start_matches("general error: ").to_owned()).unwrap_or_else(|| "no reason given".into())
}

/// How long one frame may take before the runtime is deemed stuck, in milliseconds.
const WAIT_LIMIT_MS: i64 = 600_000;

impl OpenVinoPose {
    /// Loads the runtime and the IR at `xml`, and compiles it for a 16:9 frame's input (checking
    /// that it is a 17-keypoint pose model that takes any stride-multiple shape) with `threads`
    /// threads at `precision`.
    pub fn load(xml: &Path, precision: Precision, threads: usize) -> Result<OpenVinoPose, PoseError> {
        if !xml.is_file() {
            return Err(PoseError::Missing(xml.to_owned()));
        }
        load_runtime()?;
        let mut core = Core::new().map_err(|e| PoseError::Runtime(format!("OpenVINO: no core: {e}")))?;
        let weights = xml.with_extension("bin");
        let model = core
            .read_model_from_file(&xml.to_string_lossy(), &weights.to_string_lossy())
            .map_err(|e| ov_error(&format!("cannot read {}", xml.display()), e))?;
        let backend = OpenVinoPose {
            core: Mutex::new(core),
            model: Mutex::new(model),
            xml: xml.to_owned(),
            precision,
            threads: threads.max(1),
            compiled: Mutex::new(RecentShapes::new(SHAPES_KEPT)),
        };
        let wide = Letterbox::fit(1280, 720, InputShape::Minimal);
        let (w, h) = wide.input_size();
        let cells = crate::anchors_for(wide);
        let output = backend.forward_one(&vec![0u8; (w * h * 3) as usize], (w, h))?;
        if output.len() as i64 != RAW_CHANNELS * cells {
            return Err(PoseError::NotPoseModel { path: xml.to_owned(), shape: vec![1, output.len() as i64 / cells.max(1), cells] });
        }
        Ok(backend)
    }

    /// Runs `rounds` forward passes on blank input of a 16:9 frame's shape, then as many through
    /// the streams, and returns the last lone pass's time in milliseconds.
    pub fn warm_up(&self, rounds: usize) -> Result<f64, PoseError> {
        let frame = Letterbox::fit(1280, 720, InputShape::Minimal);
        let (w, h) = frame.input_size();
        let blank = Tensor::zeros([h, w, 3], (tch::Kind::Uint8, tch::Device::Cpu));
        let mut last_ms = 0.0;
        for _ in 0..rounds.max(1) {
            let start = Instant::now();
            self.detect(std::slice::from_ref(&blank), &[frame])?;
            last_ms = start.elapsed().as_secs_f64() * 1e3;
        }
        let streams = self.with_compiled((w, h), |c| Ok(c.streams.len()))?;
        let batch: Vec<Tensor> = (0..streams).map(|_| blank.shallow_clone()).collect();
        self.detect(&batch, &vec![frame; streams])?;
        Ok(last_ms)
    }

    /// Runs `f` on the compiled forms for an input of `(width, height)`, compiling them first
    /// if this shape is not among the last few used.
    fn with_compiled<T>(&self, shape: (i64, i64), f: impl FnOnce(&mut Compiled) -> Result<T, PoseError>) -> Result<T, PoseError> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        f(compiled.get_or_try_insert(shape, || self.compile(shape))?)
    }

    /// Compiles the IR for one input shape, in both forms.
    fn compile(&self, (w, h): (i64, i64)) -> Result<Compiled, PoseError> {
        let mut model = self.model.lock().unwrap_or_else(|p| p.into_inner());
        let shape = PartialShape::new_static(4, &[1, 3, h, w]).map_err(|e| ov_error("shape", e))?;
        model.reshape_single_input(&shape).map_err(|e| ov_error(&format!("the IR does not take a {w}x{h} input"), e))?;
        let mut core = self.core.lock().unwrap_or_else(|p| p.into_inner());
        let precision = self.precision.to_string();
        let threads = self.threads.to_string();
        let set = |core: &mut Core, key: RwPropertyKey, value: &str| {
            core.set_property(&DeviceType::CPU, &key, value).map_err(|e| ov_error(&format!("CPU property {value}"), e))
        };
        set(&mut core, RwPropertyKey::HintInferencePrecision, &precision)?;
        set(&mut core, RwPropertyKey::InferenceNumThreads, &threads)?;
        // Unpinned: pose shares the cores with decoding and correcting frames, and a thread tied
        // to a core waits for it while the other is free (measured here: a 30 fps 720p phrase
        // decided 0.1 s sooner after the last byte on average, one frame at a time 1 ms faster).
        set(&mut core, RwPropertyKey::HintEnableCpuPinning, "NO")?;
        set(&mut core, RwPropertyKey::HintPerformanceMode, "LATENCY")?;
        set(&mut core, RwPropertyKey::NumStreams, "1")?;
        let mut latency = core.compile_model(&model, DeviceType::CPU).map_err(|e| ov_error("compile", e))?;
        let latency = latency.create_infer_request().map_err(|e| ov_error("infer request", e))?;
        // A stream per thread up to two threads, then one per two threads: each stream runs a
        // whole frame on its own threads, which on a small CPU beats splitting every layer.
        let stream_count = if self.threads <= 2 { self.threads } else { self.threads / 2 };
        set(&mut core, RwPropertyKey::HintPerformanceMode, "THROUGHPUT")?;
        set(&mut core, RwPropertyKey::NumStreams, &stream_count.to_string())?;
        let mut throughput = core.compile_model(&model, DeviceType::CPU).map_err(|e| ov_error("compile", e))?;
        let streams = (0..stream_count)
            .map(|_| throughput.create_infer_request().map_err(|e| ov_error("infer request", e)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Compiled { latency, streams })
    }

    /// One frame's raw output (`[56 × candidates]`, row-major) for a `[h, w, 3]` uint8 RGB input.
    fn forward_one(&self, rgb: &[u8], shape: (i64, i64)) -> Result<Vec<f32>, PoseError> {
        self.with_compiled(shape, |c| infer_alone(c, rgb, shape))
    }

    /// Several frames of one shape, spread over the streams: each round starts one frame per
    /// stream and waits for them all; a frame left over alone gets every thread.
    fn forward_many(&self, frames: &[Vec<u8>], shape: (i64, i64)) -> Result<Vec<Vec<f32>>, PoseError> {
        self.with_compiled(shape, |c| {
            let mut outputs = Vec::with_capacity(frames.len());
            for round in frames.chunks(c.streams.len()) {
                if let [alone] = round {
                    outputs.push(infer_alone(c, alone, shape)?);
                    continue;
                }
                for (request, rgb) in c.streams.iter_mut().zip(round) {
                    fill_input(request, rgb, shape)?;
                    request.infer_async().map_err(|e| ov_error("infer", e))?;
                }
                // Every started request is waited for, even after one fails, so that none runs
                // on while its input is rewritten.
                let mut failed = None;
                for request in c.streams.iter_mut().take(round.len()) {
                    match request.wait(WAIT_LIMIT_MS).map_err(|e| ov_error("infer", e)).and_then(|_| read_output(request)) {
                        Ok(output) => outputs.push(output),
                        Err(e) => failed = failed.or(Some(e)),
                    }
                }
                if let Some(e) = failed {
                    return Err(e);
                }
            }
            Ok(outputs)
        })
    }
}

/// One frame through the request that has every thread.
fn infer_alone(compiled: &mut Compiled, rgb: &[u8], shape: (i64, i64)) -> Result<Vec<f32>, PoseError> {
    fill_input(&mut compiled.latency, rgb, shape)?;
    compiled.latency.infer().map_err(|e| ov_error("infer", e))?;
    read_output(&compiled.latency)
}

/// Writes a `[h, w, 3]` uint8 RGB frame into the request's `[1, 3, h, w]` float input, in 0..1,
/// as libtorch's path computes it (`value as f32 / 255`).
fn fill_input(request: &mut InferRequest, rgb: &[u8], (w, h): (i64, i64)) -> Result<(), PoseError> {
    let plane = (w * h) as usize;
    if rgb.len() != plane * 3 {
        return Err(PoseError::Forward(format!("a {}-byte frame for a {w}x{h} input", rgb.len())));
    }
    let mut tensor = request.get_input_tensor().map_err(|e| ov_error("input tensor", e))?;
    let data = tensor.get_data_mut::<f32>().map_err(|e| ov_error("input tensor", e))?;
    if data.len() != plane * 3 {
        return Err(PoseError::Forward(format!("the compiled input holds {} values, not {}", data.len(), plane * 3)));
    }
    let (red, rest) = data.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    let unit = unit_values();
    for (((pixel, r), g), b) in rgb.chunks_exact(3).zip(red).zip(green).zip(blue) {
        *r = unit[usize::from(pixel[0])];
        *g = unit[usize::from(pixel[1])];
        *b = unit[usize::from(pixel[2])];
    }
    Ok(())
}

/// Every byte's value in 0..1 (`byte as f32 / 255`, the division libtorch's path does), looked
/// up rather than divided for each of a frame's 737,280 values.
fn unit_values() -> &'static [f32; 256] {
    static UNIT: std::sync::OnceLock<[f32; 256]> = std::sync::OnceLock::new();
    UNIT.get_or_init(|| std::array::from_fn(|v| v as f32 / 255.0))
}

/// The request's first output as floats.
fn read_output(request: &InferRequest) -> Result<Vec<f32>, PoseError> {
    let tensor = request.get_output_tensor_by_index(0).map_err(|e| ov_error("output tensor", e))?;
    if tensor.get_element_type().map_err(|e| ov_error("output tensor", e))? != ElementType::F32 {
        return Err(PoseError::Forward("the IR's output is not f32".into()));
    }
    Ok(tensor.get_data::<f32>().map_err(|e| ov_error("output tensor", e))?.to_vec())
}

impl PoseBackend for OpenVinoPose {
    fn input_shape(&self) -> InputShape {
        InputShape::Minimal
    }

    fn detect(&self, inputs: &[Tensor], frames: &[Letterbox]) -> Result<Vec<Vec<PoseDetection>>, PoseError> {
        assert_eq!(inputs.len(), frames.len(), "one geometry per input");
        let mut detections = Vec::with_capacity(inputs.len());
        for std::ops::Range { start, end } in crate::same_shape_runs(frames) {
            let shape = frames[start].input_size();
            let rgb: Vec<Vec<u8>> = inputs[start..end].iter().map(frame_bytes).collect();
            let outputs = if rgb.len() == 1 { vec![self.forward_one(&rgb[0], shape)?] } else { self.forward_many(&rgb, shape)? };
            for (output, frame) in outputs.iter().zip(&frames[start..end]) {
                detections.push(crate::decode_slice(OutputLayout::Raw, output, frame));
            }
        }
        Ok(detections)
    }

    fn describe(&self) -> String {
        format!("openvino cpu {}", self.precision)
    }

    fn pose_path(&self) -> PosePath {
        PosePath { runtime: "openvino", precision: self.precision, device: "cpu".into(), threads: Some(self.threads) }
    }
}

/// A letterboxed `[h, w, 3]` uint8 tensor's bytes.
fn frame_bytes(input: &Tensor) -> Vec<u8> {
    let input = input.to_device(tch::Device::Cpu).to_kind(tch::Kind::Uint8).contiguous();
    let n = input.numel();
    let mut bytes = vec![0u8; n];
    input.copy_data(&mut bytes, n);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_most_recently_used_shapes_are_kept() {
        let mut made = Vec::new();
        let mut shapes = RecentShapes::new(2);
        for shape in [(640, 384), (384, 640), (640, 384), (640, 640), (384, 640), (640, 384)] {
            let value = shapes.get_or_try_insert(shape, || -> Result<(i64, i64), ()> {
                made.push(shape);
                Ok(shape)
            });
            assert_eq!(*value.unwrap(), shape);
        }
        // 640x384 was used again before 640x640 came, so 384x640 went; then 640x384 went.
        assert_eq!(made, [(640, 384), (384, 640), (640, 640), (384, 640), (640, 384)]);
        assert_eq!(shapes.kept.len(), 2);
        // A shape that fails to be made is not kept.
        assert!(shapes.get_or_try_insert((32, 640), || Err::<(i64, i64), _>("no")).is_err());
        assert_eq!(shapes.kept.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [(384, 640), (640, 384)]);
    }

    #[test]
    fn an_openvino_error_is_told_by_its_reason() {
        let text = "general error: Exception from src/inference/src/cpp/infer_request.cpp:259:\nCheck 'timeout >= 0' failed at src/inference/src/dev/x.cpp:78:\nTimeout can't be less than 0.\n\n: Exception from y.cpp:259:";
        assert_eq!(reason(text), "Timeout can't be less than 0.");
        assert_eq!(reason("general error: out of memory"), "out of memory");
        assert_eq!(reason(""), "no reason given");
    }

    #[test]
    fn the_ir_of_a_torchscript_sits_beside_it_as_export_model_writes_it() {
        assert_eq!(ir_for(Path::new("models/yolo11n-pose.torchscript")), PathBuf::from("models/yolo11n-pose_openvino_model/yolo11n-pose.xml"));
        assert_eq!(ir_for(Path::new("/m/x.xml")), PathBuf::from("/m/x.xml"));
    }
}
