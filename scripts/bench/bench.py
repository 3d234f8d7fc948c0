"""The benchmark driver behind `scripts/bench.sh`: pose (each of our paths vs Ultralytics'
predict of the `.pt` and of its own OpenVINO and ONNX exports, with the parity of their
detections), the verdict after the last byte (`/stream` vs `/analyze`, and a 1280x720 phrase at
30 fps), the piste GUI's WebSocket beside the
chunked `POST /stream`, ingest throughput and memory, and concurrent streams, measured in one
run on this machine. Writes `bench.json` and `BENCHMARKS.md` at the repository root.

Run it through `scripts/bench.sh [--quick]`, which sets up, builds and cleans up.
"""
import argparse
import collections
import datetime
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import referee  # noqa: E402
import report  # noqa: E402
from referee import BenchError, Server  # noqa: E402

T_START = time.monotonic()

# The server the verdict, concurrency and piste sections share: the production defaults
# (fisheye on, the default model).
ANALYSIS_SERVER_ARGS = ["--fisheye-enabled", "true"]

# What --only names.
SECTIONS = ("pose", "verdict", "piste", "ingest", "triton")

# A phrase as a section streams it: its JPEGs and the rate the clock sends them at.
Phrase = collections.namedtuple("Phrase", "jpegs fps")


def say(message):
    print(f"bench [{time.monotonic() - T_START:6.1f} s] {message}", file=sys.stderr, flush=True)


def figure(values, digits=4):
    """A measured figure: the median of the runs, their min and max, and every run."""
    values = [float(v) for v in values]
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": [round(v, digits) for v in values],
    }


def cpu_busy_seconds():
    """CPU seconds the whole machine has spent busy since boot (all cores, /proc/stat), interrupts
    left out (they may be charged to whichever process they interrupted, this benchmark's too)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, _irq, _softirq, steal = fields[:8]
    return (user + nice + system + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds():
    """CPU seconds of this driver and every process it started and has reaped (the servers, the
    pose runs, and what they started)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load_average():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


class Context:
    """What every section needs: paths, the settings of this run, the prepared inputs."""

    def __init__(self, args):
        self.root = os.path.abspath(args.root)
        self.work = os.path.abspath(args.work)
        self.quick = args.quick
        self.runs = args.runs or (1 if args.quick else 5)
        self.pose_runs = args.runs or (2 if args.quick else 5)
        self.machine_cores = len(os.sched_getaffinity(0))
        self.threads = args.threads or self.machine_cores
        self.binary = os.path.join(self.root, "target/release/ai-referee")
        self.model = os.path.join(self.root, "models/yolo11n-pose.torchscript")
        self.weights = os.path.join(self.root, "models/yolo11n-pose.pt")
        self.clip = os.path.join(self.root, "data/demo.mp4")
        self.python = sys.executable
        self.pid_dir = os.path.join(self.work, "pids")
        for path in (self.binary, self.model, self.weights, self.clip):
            if not os.path.isfile(path):
                raise BenchError(f"{path} is missing: scripts/bench.sh runs scripts/setup.sh and cargo build first")
        self.jpegs = None
        self.clip_fps = None
        self.log = None
        self.log_id = None

    def server(self, name, extra_args):
        out = os.path.join(self.work, name)
        return Server(self.binary, self.model, out, self.pid_dir, extra_args=extra_args, name=f"server '{name}'")

    def prepare(self):
        """The clip's frames as the piste client sends them (OpenCV JPEG, quality 85, at the
        clip's own size) and a real scoring-box log from the fixtures."""
        import cv2

        capture = cv2.VideoCapture(self.clip)
        self.clip_fps = capture.get(cv2.CAP_PROP_FPS)
        jpegs = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise BenchError("OpenCV could not encode a frame of the clip as JPEG")
            jpegs.append(data.tobytes())
            self.size = (image.shape[1], image.shape[0])
        capture.release()
        if len(jpegs) < 30:
            raise BenchError(f"{self.clip}: only {len(jpegs)} frames decoded")
        self.jpegs = jpegs
        with open(os.path.join(self.root, "tests/fixtures/signals.jsonl")) as f:
            for line in f:
                entry = json.loads(line)
                if not entry.get("expected_error"):  # a double touch: the whole pipeline runs
                    self.log = entry["signal"].encode()
                    self.log_id = entry["id"]
                    break
        if self.log is None:
            raise BenchError("no double-touch log in tests/fixtures/signals.jsonl")
        say(f"clip: {len(jpegs)} frames, {self.size[0]}x{self.size[1]}, {self.clip_fps:g} fps, "
            f"JPEG q85 {sum(map(len, jpegs)) / len(jpegs) / 1e3:.0f} kB/frame; log {self.log_id}")

    def scaled_jpegs(self, width, height):
        """The clip's frames scaled to width x height (OpenCV, INTER_AREA) and encoded as the piste
        client does (JPEG quality 85): the clip standing in for a camera at that size."""
        import cv2

        capture = cv2.VideoCapture(self.clip)
        jpegs = []
        while True:
            ok, image = capture.read()
            if not ok:
                break
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
            ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])
            if not ok:
                raise BenchError("OpenCV could not encode a scaled frame of the clip as JPEG")
            jpegs.append(data.tobytes())
        capture.release()
        if len(jpegs) != len(self.jpegs):
            raise BenchError(f"{self.clip}: {len(jpegs)} frames decoded this time, {len(self.jpegs)} before")
        return jpegs

    def phrases(self):
        """The phrase as the sections stream it on the clock: every other frame at half the clip's
        rate (15 fps, as the 2025 recordings), and every frame at the clip's own rate (30 fps)."""
        return Phrase(self.jpegs[::2], self.clip_fps / 2), Phrase(self.jpegs, self.clip_fps)

    def warm_up(self, addr, name="warm-up"):
        """A few frames to POST /stream, untimed: the first frames of a size and the first
        decision are slower."""
        referee.PacedStream(addr, name, self.phrases()[0].jpegs[:6], 1000.0, self.log).run()


# --- pose ----------------------------------------------------------------------------------------

# Our pose paths, timed by name: (name, flags of `ai-referee pose`). `openvino_f32_batch4` is the
# f32 path given four frames at a time, which it spreads over its streams, as the server's
# scheduler does with frames that queued up (a backlog); the others take one frame at a time.
OUR_PATHS = (("libtorch_f32", ["--pose-runtime", "libtorch", "--pose-precision", "f32"]),
             ("openvino_f32", ["--pose-runtime", "openvino", "--pose-precision", "f32"]),
             ("openvino_f32_batch4", ["--pose-runtime", "openvino", "--pose-precision", "f32", "--batch", "4"]),
             ("openvino_bf16", ["--pose-runtime", "openvino", "--pose-precision", "bf16"]))
# Ultralytics' predict of the checkpoint and of its own CPU exports of it (scripts/setup.sh makes
# them, at the 640x384 input a 1280x720 frame letterboxes to): (name, weights, environment).
# `ultralytics_openvino_f32` is its OpenVINO export compiled at f32, ours' default precision (its
# own predict takes OpenVINO's default, bf16 on CPUs that have it): for the same-precision figure,
# not one of the exports the goal names.
PEERS = (("ultralytics_pt", "models/yolo11n-pose.pt", {}),
         ("ultralytics_openvino", "models/peers/yolo11n-pose_openvino_model", {}),
         ("ultralytics_openvino_f32", "models/peers/yolo11n-pose_openvino_model", {"PEER_INFERENCE_PRECISION": "f32"}),
         ("ultralytics_onnx", "models/peers/yolo11n-pose.onnx", {}))
EXPORT_PEERS = ("ultralytics_openvino", "ultralytics_onnx")
# The parity bar: the same number of people in every frame, every keypoint within this.
PARITY_PX = 0.5
# `ai-referee pose`'s last stderr line: frames, ms/frame, and what ran them (after " on ").
POSE_LINE = re.compile(r"pose: (\d+) frames, ([0-9.]+) ms/frame.*? on (.+?)\s*$", re.M)


def torch_threads(env):
    """What libtorch's intra-op thread count is under `env` before anyone sets it: the venv's
    libtorch is the one `ai-referee` links (LIBTORCH_USE_PYTORCH), read under the same
    variables, and nothing in ai-referee sets a thread count."""
    out = subprocess.run([sys.executable, "-B", "-c", "import torch; print(torch.get_num_threads())"],
                         env=env, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def path_of(described):
    """The named path a `pose` line's " on ..." text describes: the runtime and the precision it
    names, libtorch and f32 where it names none (as a binary without --pose-runtime says it)."""
    text = described.lower()
    return ("openvino" if "openvino" in text else "libtorch") + ("_bf16" if "bf16" in text else "_f32")


def _box_iou(a, b):
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _nearest_rank(ordered, q):
    """The q-th percentile (0-100, nearest rank) of values already in ascending order."""
    if not ordered:
        return None
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def pose_parity(frames, reference):
    """How far one pose output is from another on the same frames, both as `ai-referee pose`
    prints them (one dict per frame, in frame order). In each frame the detections of `frames`,
    highest score first, each take the reference detection (not yet taken) whose box overlaps
    theirs most (IoU > 0); every keypoint of a matched pair counts, whatever its visibility."""
    if len(frames) != len(reference):
        raise BenchError(f"parity: {len(frames)} frames against {len(reference)}")
    differs, distances = [], []
    found = expected = matched = 0
    box_px = score_diff = 0.0
    for index, (ours, ref) in enumerate(zip(frames, reference)):
        a, b = os.path.basename(str(ours.get("source"))), os.path.basename(str(ref.get("source")))
        if a != b:
            raise BenchError(f"parity: frame {index} is {a} on one side and {b} on the other")
        mine = sorted(ours["detections"], key=lambda d: -d["score"])
        theirs = ref["detections"]
        found += len(mine)
        expected += len(theirs)
        if len(mine) != len(theirs):
            differs.append(index)
        taken = set()
        for det in mine:
            best, best_iou = None, 0.0
            for j, other in enumerate(theirs):
                if j not in taken:
                    iou = _box_iou(det["box"], other["box"])
                    if iou > best_iou:
                        best, best_iou = j, iou
            if best is None:
                continue
            taken.add(best)
            matched += 1
            other = theirs[best]
            distances += [math.hypot(p[0] - q[0], p[1] - q[1]) for p, q in zip(det["keypoints"], other["keypoints"])]
            box_px = max(box_px, max(abs(x - y) for x, y in zip(det["box"], other["box"])))
            score_diff = max(score_diff, abs(det["score"] - other["score"]))
    distances.sort()
    worst = distances[-1] if distances else 0.0

    def px(value):
        return None if value is None else round(value, 4)

    return {
        "frames": len(frames),
        "frames_count_differs": len(differs),
        "frames_count_differs_first": differs[:10],
        "detections": found,
        "reference_detections": expected,
        "matched": matched,
        "unmatched": (found - matched) + (expected - matched),
        "keypoint_px_max": px(worst),
        "keypoint_px_p99": px(_nearest_rank(distances, 99)),
        "keypoint_px_median": px(_nearest_rank(distances, 50)),
        "box_px_max": px(box_px),
        "score_max_diff": round(score_diff, 5),
        "meets_bar": not differs and found == matched == expected and worst <= PARITY_PX,
    }


def section_pose(ctx):
    frames_dir = os.path.join(ctx.work, "pose-frames")
    os.makedirs(frames_dir)
    count = 30 if ctx.quick else None
    cmd = ["ffmpeg", "-v", "error", "-nostdin", "-i", ctx.clip, "-vf", "scale=1280:720"]
    if count:
        cmd += ["-frames:v", str(count)]
    subprocess.run(cmd + [os.path.join(frames_dir, "frame_%05d.png")], check=True)
    names = sorted(os.listdir(frames_dir))
    frames = len(names)
    # One frame for the probes that say which path each set of flags runs.
    probe_dir = os.path.join(ctx.work, "pose-probe")
    os.makedirs(probe_dir)
    shutil.copy(os.path.join(frames_dir, names[0]), probe_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(ctx.threads), MKL_NUM_THREADS=str(ctx.threads))
    for key in [k for k in env if k.startswith("REFEREE_") and k not in referee.LOCATIONS]:
        env.pop(key)  # the flags say which path runs; a REFEREE_POSE_* in the caller's shell must not change it
    ours_threads = torch_threads(env)
    if ours_threads != ctx.threads:
        raise BenchError(f"libtorch takes {ours_threads} threads under OMP_NUM_THREADS={ctx.threads}")
    help_text = subprocess.run([ctx.binary, "pose", "--help"], capture_output=True, text=True).stdout
    has_paths = re.search(r"--pose-runtime\b", help_text) is not None
    script = os.path.join(ctx.root, "scripts/bench/ultralytics_pose.py")

    def ours(flags, folder=frames_dir, expected=frames):
        out = subprocess.run([ctx.binary, "pose", "--device", "cpu", "--model", ctx.model, *flags,
                              folder], env=env, capture_output=True, text=True, preexec_fn=referee.die_with_parent)
        lines = POSE_LINE.findall(out.stderr)
        what = " ".join(["ai-referee pose", *flags])
        if out.returncode != 0 or not lines:
            raise BenchError(f"{what} failed ({out.returncode}): {out.stderr[-800:]}")
        done, ms, described = lines[-1]
        if int(done) != expected:
            raise BenchError(f"{what} ran on {done} frames, not {expected}")
        output = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
        if len(output) != expected:
            raise BenchError(f"{what} printed {len(output)} frame lines for {expected} frames")
        return {"ms": float(ms), "described": described, "output": output,
                "people": sum(len(f["detections"]) for f in output) / expected}

    def theirs(weights, peer_env, dump=None):
        out = subprocess.run([ctx.python, "-B", script, weights, frames_dir, str(ctx.threads), *([dump] if dump else [])],
                             env=dict(env, **peer_env), capture_output=True, text=True, preexec_fn=referee.die_with_parent)
        if out.returncode != 0:
            raise BenchError(f"Ultralytics predict of {os.path.relpath(weights, ctx.root)} failed "
                             f"({out.returncode}): {out.stderr[-800:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["frames"] != frames:
            raise BenchError(f"Ultralytics ran on {result['frames']} frames, not {frames}")
        if dump:
            with open(dump) as f:
                result["output"] = [json.loads(line) for line in f if line.strip()]
        return result

    # Which path each set of flags runs, from one frame each: the named paths (where this binary
    # has them) and the default (no flags). The default is timed on its own only where no named
    # path describes itself the same way.
    candidates = list(OUR_PATHS) if has_paths else []
    paths, described, errors = {}, {}, {}
    for name, flags in candidates:
        try:
            described[name] = ours(flags, probe_dir, 1)["described"]
        except BenchError as e:
            say(f"pose: path {name} FAILED: {e}")
            errors[name] = str(e)
            continue
        if path_of(described[name]) != name.removesuffix("_batch4"):
            say(f"pose: path {name} says it ran on {described[name]!r}")
    default_described = ours([], probe_dir, 1)["described"]
    alias = next((name for name, _ in candidates if described.get(name) == default_described), None)
    default_key = alias or "default"
    say(f"pose: {frames} frames of 1280x720 (PNG, scaled by ffmpeg), {ctx.pose_runs} runs, {ctx.threads} threads "
        f"for all; the default path runs on {default_described!r}"
        + (f", as {alias} does: its runs stand for both" if alias else ""))

    timed = [("ours", name, flags) for name, flags in candidates if name in described]
    if alias is None:
        timed.append(("ours", "default", []))
    peers = {}
    for name, rel, peer_env in PEERS:
        path = os.path.join(ctx.root, rel)
        if os.path.exists(path):
            timed.append(("peer", name, (path, peer_env)))
        else:
            peers[name] = {"error": f"{rel} is missing: scripts/setup.sh exports it"}
    essential = {default_key, "ultralytics_pt"}

    ms, people, outputs, runtimes, seen = (collections.defaultdict(list), collections.defaultdict(list), {}, {},
                                           collections.defaultdict(set))
    pt_default_ms, pt_default_threads, pt_threads = [], set(), set()
    for run in range(ctx.pose_runs):
        # Alternate the order, so that a slow spell of the machine is shared.
        for kind, name, arg in (timed if run % 2 == 0 else timed[::-1]):
            if name in errors:
                continue
            try:
                if kind == "ours":
                    r = ours(arg)
                    seen[name].add(r["described"])
                else:
                    r = theirs(*arg, os.path.join(ctx.work, f"pose-{name}.jsonl") if run == 0 else None)
                    r["ms"], r["people"] = r["ms_per_frame"], r["people_per_frame"]
                    runtimes.setdefault(name, r["runtime"])
                    if name == "ultralytics_pt":
                        pt_default_ms.append(r["ms_per_frame_default_threads"])
                        pt_default_threads.add(r["default_threads"])
                        pt_threads.add(r["threads"])
            except BenchError as e:
                if name in essential:
                    raise
                say(f"pose: {name} FAILED: {e}")
                errors[name] = str(e)
                ms.pop(name, None)
                continue
            ms[name].append(r["ms"])
            people[name].append(r["people"])
            if run == 0:
                outputs[name] = r["output"]
        say(f"pose run {run + 1}/{ctx.pose_runs}: "
            + ", ".join(f"{name} {ms[name][-1]:.1f}" for _, name, _ in timed if name in ms) + " ms/frame")
    for name, texts in seen.items():
        if len(texts) > 1:
            raise BenchError(f"pose: {name} described its runs differently: {sorted(texts)}")

    ours_ms, pt_ms = ms[default_key], ms["ultralytics_pt"]

    def per_run(numerator, denominator):
        return figure([n / d for n, d in zip(numerator, denominator)], 3)

    for name, flags in candidates:
        if name in ms:
            paths[name] = {"ms_per_frame": figure(ms[name], 2), "flags": " ".join(flags),
                           "described_as": described[name], "people_per_frame": round(statistics.mean(people[name]), 3),
                           "speedup_vs_ultralytics_pt": per_run(pt_ms, ms[name])}
        else:
            paths[name] = {"error": errors.get(name, "not timed")}
    for name, rel, _ in PEERS:
        if name in ms:
            peers[name] = {"ms_per_frame": figure(ms[name], 2), "weights": rel,
                           "people_per_frame": round(statistics.mean(people[name]), 3),
                           "ours_speedup": per_run(ms[name], ours_ms), "runtime": runtimes[name]}
            if "inference_precision" in runtimes[name]:
                peers[name]["inference_precision"] = runtimes[name]["inference_precision"]
        elif name not in peers:
            peers[name] = {"error": errors.get(name, "not timed")}
    exports = [name for name in EXPORT_PEERS if name in ms]
    fastest = min(exports, key=lambda name: statistics.median(ms[name])) if exports else None

    # Parity, from the first run's output of each: every path against libtorch_f32 (the path the
    # server ran before the others) and against Ultralytics' predict of the .pt; the exports
    # against the .pt too.
    parity = {}
    for name in [name for name, _ in candidates if name in outputs and name in ms] + ([] if alias else ["default"]):
        entry = {}
        if name != "libtorch_f32" and "libtorch_f32" in outputs:
            entry["vs_libtorch_f32"] = pose_parity(outputs[name], outputs["libtorch_f32"])
        entry["vs_ultralytics_pt"] = pose_parity(outputs[name], outputs["ultralytics_pt"])
        parity[name] = entry
    for name in exports:
        if name in outputs:
            peers[name]["parity_vs_ultralytics_pt"] = pose_parity(outputs[name], outputs["ultralytics_pt"])

    return {
        "ours_ms_per_frame": figure(ours_ms, 2),
        "ultralytics_ms_per_frame": figure(pt_ms, 2),
        "speedup": per_run(pt_ms, ours_ms),
        "speedup_vs_fastest_export": per_run(ms[fastest], ours_ms) if fastest else None,
        "fastest_export": fastest,
        "ultralytics_own_threads": {
            "threads": sorted(pt_default_threads)[0] if len(pt_default_threads) == 1 else sorted(pt_default_threads),
            "ms_per_frame": figure(pt_default_ms, 2),
            "speedup": per_run(pt_default_ms, ours_ms),
            "note": "Ultralytics' predict of the .pt with the thread count it picks itself (min(8, cores - 1)), "
                    "as its users run it; the goal is judged on the same-threads figures above",
        },
        "default_path": {
            "key": default_key,
            "name": alias or path_of(default_described),
            "described_as": default_described,
            "timed": (f"not on its own: its stderr line reads as pose.paths.{alias}'s, whose runs stand for both"
                      if alias else "on its own runs (ai-referee pose with neither --pose-runtime nor --pose-precision)"),
            "note": None if has_paths else "this ai-referee has no --pose-runtime: its one path is the default, "
                                           "named from its stderr line",
        },
        "paths": paths,
        "peers": peers,
        "parity": parity,
        "parity_bar": f"the same number of people in every frame and every keypoint within {PARITY_PX} px; "
                      "matched by best box IoU (ours highest score first), all 17 keypoints of each match, "
                      "from the first run's output of each",
        "frames": frames,
        "frame_size": "1280x720",
        "threads": {
            "setting": f"OMP_NUM_THREADS={ctx.threads} and MKL_NUM_THREADS={ctx.threads} for every process",
            "ours": ours_threads,
            "ultralytics": sorted(pt_threads)[0] if len(pt_threads) == 1 else sorted(pt_threads),
            "peers": {name: runtimes[name].get("threads") for name in runtimes},
            "note": "ours: libtorch's intra-op threads under that environment (ai-referee sets none); "
                    "Ultralytics: torch.set_num_threads after its predictor is set up (its select_device "
                    "would otherwise use min(8, cores - 1)), checked after the timed frames; its exports' runtimes "
                    "(OpenVINO, ONNX Runtime) at the same count, read from them (see pose.peers.*.runtime)",
        },
        "ours": f"target/release/ai-referee pose --device cpu (letterbox + forward + NMS, {os.path.relpath(ctx.model, ctx.root)}"
                f"; the default path ran on {default_described})",
        "ultralytics": "YOLO('models/yolo11n-pose.pt').predict(image, device='cpu') per frame, "
                       "images already in memory (preprocess + inference + postprocess)",
        "ultralytics_exports": "the same predict of Ultralytics' own exports of the .pt at imgsz=(384, 640): "
                               "YOLO('models/peers/yolo11n-pose_openvino_model') on OpenVINO (at OpenVINO's default "
                               "CPU precision) and YOLO('models/peers/yolo11n-pose.onnx') on ONNX Runtime's CPU",
        "people_per_frame": {"ours": round(statistics.mean(people[default_key]), 3),
                             "ultralytics": round(statistics.mean(people["ultralytics_pt"]), 3)},
    }


# --- verdict after the last byte and concurrency (one server) -------------------------------------


def expect(result, status, what):
    if result["status"] != status:
        raise BenchError(f"{what}: answered {result['status']}, expected {status}: "
                         f"{json.dumps(result['body'])[:600]}")
    return result["body"]


def section_verdict(ctx, server):
    addr = server.addr
    half, full = ctx.phrases()
    jpegs15, jpegs30, fps = half.jpegs, full.jpegs, full.fps
    analyze = referee.AnalyzeUpload(addr, ctx.clip, ctx.log, log_name=f"{ctx.log_id}.txt")
    # The clip scaled to 1280x720 and streamed at its own rate: the stand-in for a real
    # 1280x720 phrase at 30 fps (fisheye on, as the server runs).
    width, height = 1280, 720
    jpegs720 = ctx.scaled_jpegs(width, height)
    ctx.warm_up(addr)
    # The first frames of a new size are slower too.
    referee.PacedStream(addr, "warm-up-720p", jpegs720[:6], 1000.0, ctx.log).run()
    stream15, stream30, analyzed, ratio, server15, analysed15, analysed30 = [], [], [], [], [], [], []
    stream720, server720, analysed720 = [], [], []
    winners = set()
    for run in range(ctx.runs):
        r15 = referee.PacedStream(addr, f"verdict15-{run}", jpegs15, fps / 2, ctx.log).run()
        b15 = expect(r15, 200, "/stream at 15 fps")
        r30 = referee.PacedStream(addr, f"verdict30-{run}", jpegs30, fps, ctx.log).run()
        b30 = expect(r30, 200, f"/stream at {fps:g} fps")
        r720 = referee.PacedStream(addr, f"verdict30-{width}x{height}-{run}", jpegs720, fps, ctx.log).run()
        b720 = expect(r720, 200, f"/stream of {width}x{height} at {fps:g} fps")
        ra = analyze.run()
        ba = expect(ra, 200, "/analyze")
        s15, s30, s720, sa = (r["t_response"] - r["t_last"] for r in (r15, r30, r720, ra))
        stream720.append(s720)
        server720.append(b720["stream"]["verdict_seconds_after_last_byte"])
        analysed720.append(b720["stream"]["frames_analysed"])
        stream15.append(s15)
        stream30.append(s30)
        analyzed.append(sa)
        ratio.append(s15 / sa)
        server15.append(b15["stream"]["verdict_seconds_after_last_byte"])
        analysed15.append(b15["stream"]["frames_analysed"])
        analysed30.append(b30["stream"]["frames_analysed"])
        winners.update(b["decision"]["winner"] for b in (b15, b30, b720, ba))
        say(f"verdict run {run + 1}/{ctx.runs}: /stream 15 fps {s15:.2f} s, {fps:g} fps {s30:.2f} s, "
            f"{width}x{height} at {fps:g} fps {s720:.2f} s, /analyze {sa:.2f} s after the last byte")
    if min(analysed15) != len(jpegs15) or min(analysed30) != len(jpegs30) or min(analysed720) != len(jpegs720):
        raise BenchError(f"not every frame was analysed: {analysed15} of {len(jpegs15)}, {analysed30} of "
                         f"{len(jpegs30)}, {analysed720} of {len(jpegs720)} ({width}x{height})")
    health = server.health if isinstance(server.health, dict) else {}
    server_pose = {k: health[k] for k in ("pose_runtime", "pose_precision") if k in health} or None
    return {
        "stream_s": figure(stream15),
        "analyze_s": figure(analyzed),
        "ratio": figure(ratio),
        "stream_30fps_s": figure(stream30),
        "stream_server_reported_s": figure(server15),
        "stream_30fps_1280x720_s": figure(stream720),
        "stream_30fps_1280x720_server_reported_s": figure(server720),
        "clip": f"data/demo.mp4, {len(jpegs30)} frames, {ctx.size[0]}x{ctx.size[1]}, {fps:g} fps",
        "stream": f"every other frame ({len(jpegs15)} JPEG parts, OpenCV quality 85, X-Frame-Index and "
                  f"X-Timestamp) at {fps / 2:g} fps by the clock to POST /stream?fps={fps / 2:g}, "
                  "the log part and closing boundary right after the last frame",
        "stream_30fps": f"all {len(jpegs30)} frames at {fps:g} fps to POST /stream?fps={fps:g}",
        "stream_30fps_1280x720": f"all {len(jpegs720)} frames scaled to {width}x{height} (OpenCV INTER_AREA, JPEG "
                                 f"quality 85, {sum(map(len, jpegs720)) / len(jpegs720) / 1e3:.0f} kB/frame) at "
                                 f"{fps:g} fps to POST /stream?fps={fps:g}: the issue's stand-in for a real "
                                 f"{width}x{height} phrase at {fps:g} fps",
        "analyze": "the whole data/demo.mp4 and the log as multipart/form-data (video, signal) to POST /analyze, "
                   "one write with Content-Length",
        "log": f"tests/fixtures/signals.jsonl {ctx.log_id}",
        "measured": "seconds from the last byte of the request sent to the whole response received",
        "fisheye": True,
        "server": f"ai-referee serve {' '.join(ANALYSIS_SERVER_ARGS)}, its other settings at their defaults",
        "model": "models/yolo11n-pose.torchscript (pretrained default)"
                 + (f", pose on {server_pose.get('pose_runtime')} {server_pose.get('pose_precision') or ''}".rstrip()
                    + " (the server's default path, from /health)" if server_pose else ""),
        "server_pose": server_pose,
        "winners_seen": sorted(winners),
    }


def section_concurrency(ctx, server):
    jpegs15, fps = ctx.phrases()[0]
    rows = []
    for streams in (1, 4, 8):
        totals, verdicts = [], []
        for run in range(ctx.runs):
            uploads = [referee.PacedStream(server.addr, f"conc{streams}-{run}-{j}", jpegs15, fps, ctx.log)
                       for j in range(streams)]
            results, errors = [None] * streams, []
            t0 = time.perf_counter() + 0.2  # every stream's first frame at the same instant

            def go(j):
                try:
                    results[j] = uploads[j].run(t0)
                except Exception as e:  # reported below, after the others end
                    errors.append(f"stream {j}: {e}")

            workers = [threading.Thread(target=go, args=(j,), daemon=True) for j in range(streams)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            if errors:
                raise BenchError("; ".join(errors))
            bodies = [expect(r, 200, f"{streams} streams") for r in results]
            analysed = sum(b["stream"]["frames_analysed"] for b in bodies)
            if analysed != streams * len(jpegs15):
                raise BenchError(f"{streams} streams: {analysed} frames analysed of {streams * len(jpegs15)}")
            span = max(r["t_response"] for r in results) - min(r["t_first"] for r in results)
            totals.append(analysed / span)
            verdicts.append(statistics.median(r["t_response"] - r["t_last"] for r in results))
            say(f"concurrency {streams} streams, run {run + 1}/{ctx.runs}: {totals[-1]:.1f} frames/s analysed, "
                f"verdict {verdicts[-1]:.2f} s after the last byte (median)")
        rows.append({"streams": streams, "analysed_fps_total": figure(totals, 3), "verdict_s": figure(verdicts)})
    return rows


# --- the piste GUI's WebSocket beside POST /stream (the analysis server) -------------------------


def section_piste(ctx, server):
    """The same phrase on the same server, streamed on the clock at 15 and at 30 fps, over the
    piste GUI's WebSocket (stop-and-wait: a frame goes only once the previous one's ack is in)
    and over the chunked POST /stream, the two measured back to back and in turns (which goes
    first alternates run by run), so that whatever else loads the machine falls on both."""
    addr = server.addr
    phrases = ctx.phrases()
    ctx.warm_up(addr, "piste-warm-up")
    # Six frames decide nothing (no frame with both fencers): the warm-up's answer is an error.
    referee.PisteSocket(addr, "piste-ws-warm-up", phrases[0].jpegs[:6], 1000.0, ctx.log, ctx.size).run(
        verdict_required=False)
    loads = {"start": load_average()}
    busy0, own0, server0, wall0 = cpu_busy_seconds(), own_cpu_seconds(), server.cpu_seconds(), time.monotonic()
    rows = {}
    winners = set()
    for run in range(ctx.runs):
        order = ("websocket", "post") if run % 2 == 0 else ("post", "websocket")
        for phrase in phrases:
            rate = f"{phrase.fps:g}fps"
            for transport in order:
                session = f"piste-{transport}-{rate}-{run}"
                if transport == "websocket":
                    upload = referee.PisteSocket(addr, session, phrase.jpegs, phrase.fps, ctx.log, ctx.size,
                                                 log_name=f"{ctx.log_id}.txt")
                    r = upload.run()
                    body = r["body"]
                else:
                    r = referee.PacedStream(addr, session, phrase.jpegs, phrase.fps, ctx.log).run()
                    body = expect(r, 200, f"POST /stream at {rate}")
                analysed = body.get("stream", {}).get("frames_analysed")
                if analysed != len(phrase.jpegs):
                    raise BenchError(f"{session}: {analysed} frames analysed of {len(phrase.jpegs)}")
                winners.add(body["decision"]["winner"])
                row = rows.setdefault(f"{transport}_{rate}", collections.defaultdict(list))
                row["verdict_s"].append(r["t_response"] - r["t_last_frame"])
                row["carried_fps"].append(len(phrase.jpegs) / (r["t_carried"] - r["t_first_frame"]))
                row["behind_clock_s"].append(r["behind_s"])
                if transport == "websocket":
                    row["ack_ms"].append(1000 * statistics.median(r["ack_s"]))
                say(f"piste run {run + 1}/{ctx.runs}, {transport} {rate}: verdict {row['verdict_s'][-1]:.2f} s "
                    f"after the last frame, {row['carried_fps'][-1]:.2f} frames/s carried, at most "
                    f"{r['behind_s']:.3f} s behind the clock"
                    + (f", ack {row['ack_ms'][-1]:.1f} ms (median)" if transport == "websocket" else ""))
        loads[f"run {run + 1}"] = load_average()
        say(f"piste run {run + 1}/{ctx.runs}: load average {' '.join(f'{x:.2f}' for x in loads[f'run {run + 1}'])}")
    wall = time.monotonic() - wall0
    others = (cpu_busy_seconds() - busy0) - (own_cpu_seconds() - own0) - (server.cpu_seconds() - server0)
    digits = {"verdict_s": 4, "carried_fps": 3, "behind_clock_s": 4, "ack_ms": 2}
    cases = {name: {key: figure(values, digits[key]) for key, values in row.items()} for name, row in rows.items()}
    binary_built = datetime.datetime.fromtimestamp(server.binary_mtime, datetime.timezone.utc)
    return {
        **{f"{t}_{p.fps:g}fps": cases[f"{t}_{p.fps:g}fps"] for p in phrases for t in ("websocket", "post")},
        "frames": {f"{p.fps:g}fps": len(p.jpegs) for p in phrases},
        "clip": f"data/demo.mp4, {len(ctx.jpegs)} frames, {ctx.size[0]}x{ctx.size[1]}, {ctx.clip_fps:g} fps: at "
                f"{phrases[0].fps:g} fps every other frame ({len(phrases[0].jpegs)}), at {phrases[1].fps:g} fps every "
                f"frame ({len(phrases[1].jpegs)}); OpenCV JPEG quality 85, the very frames of the verdict section",
        "log": f"tests/fixtures/signals.jsonl {ctx.log_id}",
        "websocket": "GET /stream upgraded (the venv's websockets sync client, TCP_NODELAY, a new socket per phrase): "
                     "session_start and session_started before the clock starts; per frame a JSON header and the "
                     "JPEG as one binary message, out on the clock but only once the previous frame_ack is in "
                     "(stop-and-wait, as the GUI); session_end, session_ended; the log as a signal header and a "
                     "binary message; signal_ack, process_start, process_complete",
        "post": "POST /stream?fps=F, chunked multipart, each frame part out on the clock, the log part and "
                "closing boundary right after the last frame (the verdict section's stream)",
        "pacing": "frame i due at t0 + i / fps by the same clock for both (frame 0 at t0); a frame whose "
                  "previous write or ack is not done goes at once when it is",
        "measured": "verdict_s: seconds from the last frame sent (its JPEG message, or its chunk written) to the "
                    "verdict received (process_complete, or the whole response); carried_fps: frames over the "
                    "seconds from the first frame sent to the last frame acked (WebSocket) or written (POST): "
                    "on time, n frames over (n - 1) / fps, a little over the rate; behind_clock_s: the most any "
                    "frame went out after its time; ack_ms: the median round trip of a frame's JPEG to its "
                    "frame_ack",
        "order": "per run: 15 fps then 30 fps, each WebSocket and POST back to back, the WebSocket first in even "
                 "runs (0, 2, ...) and the POST first in odd ones",
        "server": f"ai-referee serve {' '.join(ANALYSIS_SERVER_ARGS)}, its other settings at their defaults; one "
                  "server for the section (the verdict section's when both run), warmed by a short untimed "
                  "phrase over each transport",
        "model": "models/yolo11n-pose.torchscript (pretrained default)",
        "winners_seen": sorted(winners),
        "load_average": loads,
        "other_work": {"cpu_seconds": round(max(0.0, others), 1),
                       "share_of_machine": round(max(0.0, others) / (wall * ctx.machine_cores), 3),
                       "note": "over the timed runs: /proc/stat busy time less this driver's and the server's"},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git(ctx.root, "rev-parse", "HEAD") or None,
        "git_dirty": bool(git(ctx.root, "status", "--porcelain", "--untracked-files=no")),
        "binary_built": binary_built.isoformat(timespec="seconds"),
    }


# --- the remote hop: pose on Triton -----------------------------------------------------------


def section_triton(ctx):
    """The same phrase through a server with local pose and one with pose on a real Triton server
    (scripts/triton.sh: nvidia-pytriton's tritonserver, the same TorchScript, this machine's CPU),
    runs alternating: frames/s analysed when the frames come as fast as they can, and the verdict
    after the last byte when they come in real time."""
    port = free_port()
    state = os.path.join(ctx.work, "triton")
    env = dict(os.environ, TRITON_STATE_DIR=state)
    script = os.path.join(ctx.root, "scripts/triton.sh")
    started = subprocess.run([script, "start", ctx.model, str(port)], env=env, capture_output=True, text=True)
    if started.returncode != 0:
        raise BenchError(f"scripts/triton.sh start failed: {started.stderr.strip()[-400:]}")
    http_url = started.stdout.strip().splitlines()[-1]
    grpc_url = f"grpc://127.0.0.1:{port + 1}"
    jpegs15, fps = ctx.phrases()[0]
    rows = {}
    try:
        with ctx.server("triton-local", ["--fisheye-enabled", "false"]) as local, \
                ctx.server("triton-grpc", ["--fisheye-enabled", "false", "--pose-backend", "triton", "--triton-url", grpc_url]) as grpc, \
                ctx.server("triton-http", ["--fisheye-enabled", "false", "--pose-backend", "triton", "--triton-url", http_url]) as http:
            servers = {"local": local, "triton_grpc": grpc, "triton_http": http}
            for server in servers.values():
                server.start()
            for name, server in servers.items():
                ctx.warm_up(server.addr, f"{name}-warm-up")
            fast = {name: [] for name in servers}
            verdict = {name: [] for name in servers}
            winners = {name: set() for name in servers}
            for run in range(ctx.runs):
                for name, server in servers.items():
                    r = referee.PacedStream(server.addr, f"{name}-fast-{run}", jpegs15, 1000.0, ctx.log).run()
                    body = expect(r, 200, f"{name}: frames as fast as they go")
                    fast[name].append(body["stream"]["frames_analysed"] / (r["t_response"] - r["t_first"]))
                    r = referee.PacedStream(server.addr, f"{name}-paced-{run}", jpegs15, fps, ctx.log).run()
                    body = expect(r, 200, f"{name}: frames in real time")
                    verdict[name].append(r["t_response"] - r["t_last"])
                    winners[name].add(body["decision"]["winner"])
                    say(f"triton run {run + 1}/{ctx.runs}, {name}: {fast[name][-1]:.1f} frames/s, "
                        f"verdict {verdict[name][-1]:.2f} s after the last byte")
            for name in servers:
                rows[name] = {"analysed_fps": figure(fast[name], 3), "verdict_s": figure(verdict[name]),
                              "winners_seen": sorted(winners[name])}
    finally:
        subprocess.run([script, "stop"], env=env, capture_output=True)
    return {
        **rows,
        "triton_urls": [grpc_url, http_url],
        "server": "ai-referee serve --fisheye-enabled false: local pose, or --pose-backend triton over gRPC or HTTP",
        "triton_server": "scripts/triton.sh: nvidia-pytriton's tritonserver (Python backend, dynamic batching) serving "
                  "models/yolo11n-pose.torchscript on this machine's CPU, KServe v2 on loopback",
        "fast": f"{len(jpegs15)} frames sent at once to POST /stream: frames analysed per second, first byte to answer",
        "paced": f"the same {len(jpegs15)} frames at {fps:g} fps: seconds from the last byte to the answer",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": git(ctx.root, "rev-parse", "HEAD") or None,
    }


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- ingest ------------------------------------------------------------------------------------


def section_ingest(ctx):
    help_text = subprocess.run([ctx.binary, "serve", "--help"], capture_output=True, text=True).stdout
    analysis_flag = re.search(r"--analysis\b", help_text) is not None
    extra = ["--fisheye-enabled", "false"]
    if analysis_flag:
        extra += ["--analysis", "false"]
    else:
        say("ingest: this ai-referee has no --analysis flag yet: pose runs on the frames while they arrive")
    rows = {1000: [], 10000: []}
    for run in range(ctx.runs):
        for count in (1000, 10000):
            name = f"ingest-{count}-{run}"
            with ctx.server(name, extra) as server:
                server.start()
                rss_ready, _ = server.rss_mb()
                upload = referee.FastStream(server.addr, name, ctx.jpegs, count)
                result = upload.run()
                rss, peak = server.rss_mb()
            shutil.rmtree(server.output_dir, ignore_errors=True)
            body = expect(result, 202, f"{count}-frame upload without a log")
            if body.get("frames_received") != count:
                raise BenchError(f"{count}-frame upload: the server holds {body.get('frames_received')} frames")
            seconds = result["t_response"] - result["t_first"]
            rows[count].append({"mb_per_s": upload.body_bytes / 1e6 / seconds, "frames_per_s": count / seconds,
                                "rss_mb": rss, "peak_rss_mb": peak, "rss_ready_mb": rss_ready,
                                "bytes": upload.body_bytes})
            say(f"ingest run {run + 1}/{ctx.runs}, {count} frames ({upload.body_bytes / 1e6:.0f} MB): "
                f"{rows[count][-1]['mb_per_s']:.0f} MB/s, {count / seconds:.0f} frames/s, RSS {rss:.0f} MB "
                f"(peak {peak:.0f}, {rss_ready:.0f} when ready)")
    big, small = rows[10000], rows[1000]
    return {
        "mb_per_s": figure([r["mb_per_s"] for r in big], 1),
        "frames_per_s": figure([r["frames_per_s"] for r in big], 1),
        "rss_mb_1k": figure([r["rss_mb"] for r in small], 1),
        "rss_mb_10k": figure([r["rss_mb"] for r in big], 1),
        "mb_per_s_1k": figure([r["mb_per_s"] for r in small], 1),
        "frames_per_s_1k": figure([r["frames_per_s"] for r in small], 1),
        "peak_rss_mb_1k": figure([r["peak_rss_mb"] for r in small], 1),
        "peak_rss_mb_10k": figure([r["peak_rss_mb"] for r in big], 1),
        "rss_mb_ready": figure([r["rss_ready_mb"] for r in small + big], 1),
        "bytes_10k": big[0]["bytes"],
        "bytes_1k": small[0]["bytes"],
        "analysis_off": analysis_flag,
        "server": "ai-referee serve --fisheye-enabled false" + (" --analysis false" if analysis_flag else "")
                  + ", loopback, a fresh server for each upload",
        "upload": "one POST /stream, chunked, no log part (answered 202 with the session's progress); the clip's "
                  "JPEGs in turn, body laid out beforehand, written with sendmsg 64 frames per chunk",
        "measured": "MB/s and frames/s: multipart body bytes (10^6 per MB) and frames over the seconds from the "
                    "first byte sent to the 202 received; RSS: VmRSS of the server after the 202, on a fresh server "
                    "per phrase (peak: VmHWM)",
        "note": None if analysis_flag else
        "this build has no --analysis flag: the server ran pose on the frames while they arrived (the upload never "
        "waits for it, but it shares the CPU and its memory), so these are not the analysis-off figures",
    }


# --- goals ----------------------------------------------------------------------------------------


def goals(results):
    """Each goal with its value (from the medians) and PASS, MISS, or NOT RUN."""

    def med(value):
        return value["median"] if isinstance(value, dict) and "median" in value else None

    def part(name):
        value = results.get(name)
        return value if isinstance(value, dict) else {}

    def check(name, value, target, ok, shown):
        return {"goal": name, "value": None if value is None else round(value, 4), "target": target,
                "result": "NOT RUN" if value is None else ("PASS" if ok(value) else "MISS"), "shown": shown}

    pose = part("pose")
    speedup = med(pose.get("speedup"))
    vs_export = med(pose.get("speedup_vs_fastest_export"))
    fastest = pose.get("fastest_export")
    default_key = (pose.get("default_path") or {}).get("key")
    same = ((pose.get("parity") or {}).get(default_key) or {}).get("vs_ultralytics_pt") or {}
    parity_px = same.get("keypoint_px_max")
    ratio = med(part("verdict_after_last_byte").get("ratio"))
    verdict720 = med(part("verdict_after_last_byte").get("stream_30fps_1280x720_s"))
    mbps = med(part("ingest").get("mb_per_s"))
    rss1, rss10 = med(part("ingest").get("rss_mb_1k")), med(part("ingest").get("rss_mb_10k"))
    conc = results.get("concurrency")
    rows = {r["streams"]: r for r in conc} if isinstance(conc, list) else {}
    fps1 = med(rows.get(1, {}).get("analysed_fps_total"))
    fps4 = med(rows.get(4, {}).get("analysed_fps_total"))
    rss_ratio = rss10 / rss1 if rss1 and rss10 else None
    fps_ratio = fps4 / fps1 if fps1 and fps4 else None
    return [
        check("pose >= 1.5x Ultralytics' .pt predict", speedup, 1.5, lambda v: v >= 1.5,
              None if speedup is None else f"{speedup:.2f}x"),
        check("pose >= 1.0x Ultralytics' fastest export", vs_export, 1.0, lambda v: v >= 1.0,
              None if vs_export is None else f"{vs_export:.2f}x (against {fastest})"),
        check(f"pose parity with the .pt: same people per frame, keypoints <= {PARITY_PX} px", parity_px, PARITY_PX,
              lambda v: bool(same.get("meets_bar")),
              None if parity_px is None else f"max {parity_px:.3f} px, p99 {same['keypoint_px_p99'] or 0:.3f} px, "
              f"{same['frames_count_differs']} of {same['frames']} frames with another count ({default_key})"),
        check("stream verdict <= 0.1x /analyze's", ratio, 0.1, lambda v: v <= 0.1,
              None if ratio is None else f"{ratio:.3f}x"),
        check("1280x720 at 30 fps: verdict <= 1.0 s after the last byte", verdict720, 1.0, lambda v: v <= 1.0,
              None if verdict720 is None else f"{verdict720:.2f} s"),
        check("ingest >= 500 MB/s", mbps, 500, lambda v: v >= 500, None if mbps is None else f"{mbps:.0f} MB/s"),
        check("RSS 10k <= 1.5x RSS 1k", rss_ratio, 1.5, lambda v: v <= 1.5,
              None if rss_ratio is None else f"{rss_ratio:.2f}x ({rss10:.0f} / {rss1:.0f} MB)"),
        check("4 streams' analysed fps >= 0.9x one stream's", fps_ratio, 0.9, lambda v: v >= 0.9,
              None if fps_ratio is None else f"{fps_ratio:.2f}x ({fps4:.1f} / {fps1:.1f} frames/s)"),
    ]


# --- main ---------------------------------------------------------------------------------------


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown")
    mem_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return {"cpu_model": cpu, "cores": os.cpu_count(), "cores_usable": len(os.sched_getaffinity(0)),
            "ram_gb": round(mem_kb * 1024 / 1e9, 1), "kernel": platform.release(), "gpu": None}


def git(root, *args):
    return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True).stdout.strip()


def software():
    """Versions; Ultralytics' in a child process: importing it here would set OMP_NUM_THREADS=1 in
    this process's environment (its import does when the variable is unset), which the servers
    started later would inherit."""
    import torch

    def probe(code):
        out = subprocess.run([sys.executable, "-B", "-c", code], capture_output=True, text=True)
        return out.stdout.strip().splitlines()[-1] if out.returncode == 0 and out.stdout.strip() else None

    # OpenVINO's CPU precision when nothing asks for one (bf16 on a CPU with AVX512-BF16 or AMX):
    # what Ultralytics' OpenVINO export runs at.
    precision = probe("import openvino as ov; p = ov.Core().get_property('CPU', 'INFERENCE_PRECISION_HINT'); "
                      "print(p.get_type_name() if hasattr(p, 'get_type_name') else p)")
    return {"python": platform.python_version(), "torch": torch.__version__,
            "ultralytics": probe("import ultralytics; print(ultralytics.__version__)"),
            "openvino": probe("import openvino; print(openvino.__version__.split('-')[0])"),
            "onnxruntime": probe("import onnxruntime; print(onnxruntime.__version__)"),
            "openvino_cpu_default_precision": precision}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", required=True)
    parser.add_argument("--work", required=True, help="a scratch folder, emptied by the caller")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=0, help="runs per figure (default 5, --quick 1; pose 2)")
    parser.add_argument("--threads", type=int, default=0, help="pose threads for both (default: usable cores)")
    parser.add_argument("--command", default="scripts/bench.sh")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help="sections to run (pose, verdict (with concurrency), piste, ingest, triton); a subset "
                             "is merged into the bench.json there is")
    args = parser.parse_args()

    def stop(signum, _frame):
        raise SystemExit(128 + signum)  # unwinds through the servers' `with` blocks

    signal.signal(signal.SIGTERM, stop)
    ctx = Context(args)
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        raise BenchError(f"--only: no section {', '.join(sorted(unknown))} ({', '.join(SECTIONS)})")
    commit = git(ctx.root, "rev-parse", "HEAD")
    results = {
        "quick": ctx.quick,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit or None,
        "git_dirty": bool(git(ctx.root, "status", "--porcelain", "--untracked-files=no")),
        "command": args.command,
        "machine": machine(),
        "software": software(),
        "runs_per_figure": ctx.runs,
        "pose_runs": ctx.pose_runs,
        "figure_format": "{median, min, max, runs}: the median of the runs, their extremes, each run in order",
        "server_torch_threads": torch_threads(dict(os.environ)),
        "load_average": {"start": load_average()},
    }
    busy_start, own_start, wall_start = cpu_busy_seconds(), own_cpu_seconds(), time.monotonic()
    say(f"{'quick' if ctx.quick else 'full'} run: {ctx.runs} run(s) per figure ({ctx.pose_runs} for pose); "
        f"machine {results['machine']['cpu_model']}, {results['machine']['cores']} cores")
    ctx.prepare()
    failed = []

    def section(name, fn, *fn_args):
        say(f"--- {name}")
        started = time.monotonic()
        try:
            results[name] = fn(*fn_args)
        except Exception as e:
            message = str(e) if isinstance(e, BenchError) else f"{e.__class__.__name__}: {e}"
            say(f"{name} FAILED: {message}")
            results[name] = {"error": message}
            failed.append(name)
        results["load_average"][name] = load_average()
        results.setdefault("section_seconds", {})[name] = round(time.monotonic() - started, 1)

    if "pose" in only:
        section("pose", section_pose, ctx)
    on_analysis_server = [(name, fn) for flag, name, fn in (
        ("verdict", "verdict_after_last_byte", section_verdict),
        ("piste", "piste", section_piste),
        ("verdict", "concurrency", section_concurrency)) if flag in only]
    if on_analysis_server:
        say("--- starting the analysis server (fisheye on, default model)")
        try:
            with ctx.server("analysis", ANALYSIS_SERVER_ARGS) as server:
                server.start()
                for name, fn in on_analysis_server:
                    section(name, fn, ctx, server)
        except BenchError as e:
            say(f"the analysis server FAILED: {e}")
            for name, _ in on_analysis_server:
                if name not in results:
                    results[name] = {"error": str(e)}
                    failed.append(name)
    if "ingest" in only:
        section("ingest", section_ingest, ctx)
    if "triton" in only:
        section("triton", section_triton, ctx)
    # Every process this run started has been reaped by now, so its CPU time is in our own.
    wall = time.monotonic() - wall_start
    others = max(0.0, (cpu_busy_seconds() - busy_start) - (own_cpu_seconds() - own_start))
    results["other_work"] = {
        "cpu_seconds": round(others, 1),
        "share_of_machine": round(others / (wall * ctx.machine_cores), 3),
        "note": "about how much CPU time the machine spent on other work while this ran: /proc/stat busy time "
                "(user, nice, system, steal) minus this benchmark's own and its reaped children's; the kernel's "
                "own threads (writing files out, for one) count as other work",
    }
    results["gpu"] = None
    results["gpu_note"] = ("not measured: this machine has no GPU (the sections above ran on CPU). "
                           "A GPU section would run the same pose and stream measurements with --device cuda.")
    results["total_seconds"] = round(time.monotonic() - T_START, 1)
    everything = set(SECTIONS)
    existing = os.path.join(ctx.root, "bench.json")
    if not everything <= only and os.path.isfile(existing):
        # A partial run updates its own sections of the last full one.
        with open(existing) as f:
            merged = json.load(f)
        sections = {"pose": ["pose"], "verdict": ["verdict_after_last_byte", "concurrency"], "piste": ["piste"],
                    "ingest": ["ingest"], "triton": ["triton"]}
        for name in only & everything:
            for key in sections[name]:
                merged[key] = results.get(key)
                if key in results["load_average"]:
                    merged.setdefault("load_average", {})[key] = results["load_average"][key]
        merged.setdefault("section_seconds", {}).update(results.get("section_seconds", {}))
        merged["partial_runs"] = merged.get("partial_runs", []) + [{"sections": sorted(only), "date": results["date"],
                                                                    "git_commit": results["git_commit"],
                                                                    "load_average_start": results["load_average"]["start"]}]
        results = merged
    results["goals"] = goals(results)

    # Both written only once the report renders, so a failure leaves the last ones whole.
    text = report.markdown(results)
    with open(os.path.join(ctx.root, "bench.json"), "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    with open(os.path.join(ctx.root, "BENCHMARKS.md"), "w") as f:
        f.write(text)
    print(report.goal_lines(results))
    say(f"wrote bench.json and BENCHMARKS.md in {time.monotonic() - T_START:.0f} s")
    if failed:
        say(f"sections that failed: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        say(f"error: {e}")
        sys.exit(1)
