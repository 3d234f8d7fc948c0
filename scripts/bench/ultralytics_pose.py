"""Ultralytics' own `predict` on a folder of images, timed per frame, as its users run it (library
defaults: 640, conf 0.25, IoU 0.7, max_det 300, CPU): of the `.pt` (as the legacy service ran
it), or of one of Ultralytics' own exports of it (an OpenVINO IR directory `*_openvino_model/`
or an `.onnx`), which Ultralytics runs on OpenVINO or ONNX Runtime.

Usage: python ultralytics_pose.py WEIGHTS FRAMES_DIR THREADS [DETECTIONS.jsonl]
Prints one JSON line on stdout: {"ms_per_frame", "frames", "people_per_frame", "threads",
"threads_at_import", "default_threads", "ms_per_frame_default_threads", "format", "runtime"}.
For the `.pt`, `default_threads` and `ms_per_frame_default_threads` are the same frames first
timed with the thread count Ultralytics picks for itself; for an export they are the runtime's
own default thread count and null (no such pass). With PEER_INFERENCE_PRECISION set (f32, bf16),
an OpenVINO export is compiled at that precision instead of OpenVINO's default. `runtime` says what ran the network: its
name and version, the threads it ran with and would have taken by itself, whether the count was
set here, and (OpenVINO) the inference precision it compiled for.
With DETECTIONS.jsonl, also writes each frame's detections there, one JSON line per frame in the
shape `ai-referee pose` prints ({"frame", "source", "width", "height", "detections": [{"box":
[x1, y1, x2, y2], "score", "keypoints": [[x, y, visibility] x 17]}]}, frame pixels), taken from
the timed pass (the results are only kept during it; read out after the clock stops).

The images are read into memory first (OpenCV, BGR, as Ultralytics reads them), so decoding is
not timed, as `ai-referee pose` does not time it. Threads: Ultralytics' `select_device("cpu")`
sets torch to min(8, cores - 1) threads when its predictor is first set up (1 on a 2-core
machine), so the thread count asked for is set after the warm-up predictions, and checked to be
still in force after the timed ones; torch does the pre- and post-processing of every format
(and the network of the `.pt`). An export's network runs on its runtime's own threads: OpenVINO's
count is read from the compiled model, ONNX Runtime takes one per physical core by default; where
that differs from THREADS the network is set up again with THREADS (OpenVINO: compiled again with
Ultralytics' own configuration plus INFERENCE_NUM_THREADS; ONNX Runtime: a new CPU session with
intra_op_num_threads), so that all run at the same threads.
"""
import json
import os
import sys
import time

if len(sys.argv) not in (4, 5):
    sys.exit("usage: ultralytics_pose.py WEIGHTS FRAMES_DIR THREADS [DETECTIONS.jsonl]")
weights, frames_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
dump_path = sys.argv[4] if len(sys.argv) == 5 else None

import cv2  # noqa: E402
import torch  # noqa: E402

threads_at_import = torch.get_num_threads()
from ultralytics import YOLO  # noqa: E402


def physical_cores():
    """Distinct (package, core) pairs among the CPUs this process may run on: what ONNX Runtime
    sizes its default thread pool by."""
    allowed = os.sched_getaffinity(0)
    cores, cpu, package = set(), None, "0"
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "processor":
                cpu = int(value)
            elif key == "physical id":
                package = value
            elif key == "core id" and cpu in allowed:
                cores.add((package, value))
    return len(cores) or len(allowed)


def export_format(path):
    if path.endswith(".onnx"):
        return "onnx"
    if os.path.isdir(path) and path.rstrip("/").endswith("_openvino_model"):
        return "openvino"
    if path.endswith(".pt"):
        return "pt"
    sys.exit(f"ultralytics_pose: {path}: not a .pt, an .onnx or an *_openvino_model directory")


def pin_runtime_threads(backend, fmt):
    """The export's runtime at THREADS threads (see the module's doc); returns what it reports."""
    if fmt == "openvino":
        import openvino as ov

        compiled = backend.ov_compiled_model
        default = int(compiled.get_property("INFERENCE_NUM_THREADS"))
        pinned = default != threads
        # PEER_INFERENCE_PRECISION (the bench's same-precision peer): compiled again at that
        # precision, Ultralytics' configuration otherwise kept.
        asked_precision = os.environ.get("PEER_INFERENCE_PRECISION")
        if pinned or asked_precision:
            config = dict(backend.compile_model.keywords.get("config") or {})
            config["INFERENCE_NUM_THREADS"] = threads
            if asked_precision:
                config["INFERENCE_PRECISION_HINT"] = asked_precision
            xml = weights if os.path.isfile(weights) else next(
                os.path.join(weights, n) for n in sorted(os.listdir(weights)) if n.endswith(".xml"))
            backend.ov_compiled_model = backend.compile_model(ov.Core().read_model(xml), config=config)
            compiled = backend.ov_compiled_model
        precision = compiled.get_property("INFERENCE_PRECISION_HINT")
        return {"name": "openvino", "version": ov.__version__.split("-")[0],
                "device": ",".join(compiled.get_property("EXECUTION_DEVICES")),
                "performance_hint": str(compiled.get_property("PERFORMANCE_HINT")),
                "inference_precision": precision.get_type_name() if hasattr(precision, "get_type_name")
                else str(precision),
                "threads": int(compiled.get_property("INFERENCE_NUM_THREADS")),
                "default_threads": default, "threads_set_here": pinned}
    if fmt == "onnx":
        import onnxruntime

        default = physical_cores()
        pinned = default != threads
        if pinned:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            backend.session = onnxruntime.InferenceSession(weights, options,
                                                           providers=backend.session.get_providers())
        return {"name": "onnxruntime", "version": onnxruntime.__version__,
                "providers": backend.session.get_providers(), "threads": threads,
                "default_threads": default, "threads_set_here": pinned,
                "note": "ONNX Runtime reports no thread count: its default is one per physical core "
                        "(counted here from /proc/cpuinfo); set explicitly only where that differs"}
    return {"name": "torch", "version": torch.__version__, "threads": threads}


def detections_line(index, name, result):
    height, width = result.orig_shape
    boxes = result.boxes.xyxy.tolist()
    scores = result.boxes.conf.tolist()
    points = result.keypoints.data.tolist() if result.keypoints is not None else [[] for _ in boxes]
    return {"frame": index, "source": name, "width": width, "height": height,
            "detections": [{"box": box, "score": score, "keypoints": kpts}
                           for box, score, kpts in zip(boxes, scores, points)]}


fmt = export_format(weights)
names = sorted(n for n in os.listdir(frames_dir) if n.lower().endswith((".png", ".jpg", ".jpeg")))
if not names:
    sys.exit(f"ultralytics_pose: no images in {frames_dir}")
images = []
for name in names:
    image = cv2.imread(os.path.join(frames_dir, name), cv2.IMREAD_COLOR)
    if image is None:
        sys.exit(f"ultralytics_pose: cannot read {name}")
    images.append(image)

model = YOLO(weights, task="pose")
for image in images[:3]:  # warm-up: sets up the predictor (and its thread count), first passes
    model.predict(image, device="cpu", verbose=False)
default_threads = torch.get_num_threads()
default_ms = None
if fmt == "pt":
    # First with the thread count Ultralytics chose itself, as its users run it.
    start = time.perf_counter()
    for image in images:
        model.predict(image, device="cpu", verbose=False)
    default_ms = (time.perf_counter() - start) * 1e3 / len(images)
torch.set_num_threads(threads)
runtime = pin_runtime_threads(model.predictor.model.backend, fmt)
if fmt != "pt":
    default_threads = runtime["default_threads"]
    for image in images[:3]:  # a runtime set up again runs its first passes here, not in the timed ones
        model.predict(image, device="cpu", verbose=False)

people = 0
kept = [] if dump_path else None
start = time.perf_counter()
for image in images:
    result = model.predict(image, device="cpu", verbose=False)[0]
    people += len(result.boxes)
    if kept is not None:
        kept.append(result)
seconds = time.perf_counter() - start
if torch.get_num_threads() != threads:
    sys.exit(f"ultralytics_pose: torch ran with {torch.get_num_threads()} threads, not {threads}")
if dump_path:
    with open(dump_path, "w") as f:
        for index, (name, result) in enumerate(zip(names, kept)):
            f.write(json.dumps(detections_line(index, name, result)) + "\n")
print(json.dumps({
    "ms_per_frame": seconds * 1e3 / len(images),
    "frames": len(images),
    "people_per_frame": people / len(images),
    "threads": torch.get_num_threads(),
    "threads_at_import": threads_at_import,
    "default_threads": default_threads,
    "ms_per_frame_default_threads": default_ms,
    "format": fmt,
    "runtime": runtime,
}))
