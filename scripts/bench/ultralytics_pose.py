"""Ultralytics' own `predict` of a `.pt` on a folder of images, timed per frame, as the legacy
service ran it (library defaults: 640, conf 0.25, IoU 0.7, max_det 300, CPU).

Usage: python ultralytics_pose.py WEIGHTS.pt FRAMES_DIR THREADS
Prints one JSON line on stdout: {"ms_per_frame", "frames", "people_per_frame", "threads",
"threads_at_import", "default_threads", "ms_per_frame_default_threads"} (the last two: the same
frames first timed with the thread count Ultralytics picks for itself).

The images are read into memory first (OpenCV, BGR, as Ultralytics reads them), so decoding is
not timed, as `ai-referee pose` does not time it. Threads: Ultralytics' `select_device("cpu")`
sets torch to min(8, cores - 1) threads when its predictor is first set up (1 on a 2-core
machine), so the thread count asked for is set after the warm-up predictions, and checked to be
still in force after the timed ones.
"""
import json
import os
import sys
import time

weights, frames_dir, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])

import cv2  # noqa: E402
import torch  # noqa: E402

threads_at_import = torch.get_num_threads()
from ultralytics import YOLO  # noqa: E402

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
# First with the thread count Ultralytics chose itself, as its users run it.
default_threads = torch.get_num_threads()
start = time.perf_counter()
for image in images:
    model.predict(image, device="cpu", verbose=False)
default_seconds = time.perf_counter() - start
torch.set_num_threads(threads)

people = 0
start = time.perf_counter()
for image in images:
    result = model.predict(image, device="cpu", verbose=False)[0]
    people += len(result.boxes)
seconds = time.perf_counter() - start
if torch.get_num_threads() != threads:
    sys.exit(f"ultralytics_pose: torch ran with {torch.get_num_threads()} threads, not {threads}")
print(json.dumps({
    "ms_per_frame": seconds * 1e3 / len(images),
    "frames": len(images),
    "people_per_frame": people / len(images),
    "threads": torch.get_num_threads(),
    "threads_at_import": threads_at_import,
    "default_threads": default_threads,
    "ms_per_frame_default_threads": default_seconds * 1e3 / len(images),
}))
