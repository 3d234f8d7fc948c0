"""Ultralytics' own pose model run the way the legacy service ran it, printed in `ai-referee pose`'s
JSON-lines shape.

Usage: python ultralytics_pose.py MODEL OUT.jsonl INPUT... ; MODEL a `.pt` checkpoint or an export,
each INPUT an image or a video. A video is read frame by frame with opencv-python's VideoCapture and
each frame goes through `model(frame)`, as the legacy did; an image through `model(path)`. Library
defaults (640, conf 0.25, IoU 0.7, max_det 300), CPU. The parity tests compare its output with ours.

Each detection's keypoints are `[x, y, visibility]` with x, y exactly as `results[0].keypoints.xy`
gives them and the visibility from `keypoints.conf`: nothing is masked here. Ultralytics 8.4 (the
release the field ran) does not zero points under 0.5 visibility either; older releases (8.0-8.3)
did, so the script refuses to run on them rather than give a masked reference.
"""
import json
import sys
import time

import cv2
import ultralytics
from ultralytics import YOLO

VIDEO = (".mp4", ".avi", ".mov", ".mkv", ".webm")

major, minor = (int(v) for v in ultralytics.__version__.split(".")[:2])
if (major, minor) < (8, 4):
    sys.exit(f"Ultralytics {ultralytics.__version__}: keypoints.xy of releases before 8.4 zeroes points under 0.5 visibility; the legacy ran 8.4")

model_path, out_path, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
out = open(out_path, "w")  # Ultralytics prints on stdout: keep our lines apart
model = YOLO(model_path, task="pose")
total, frames = 0.0, 0


def write(source, index, result):
    height, width = result.orig_shape
    boxes = result.boxes.xyxy.tolist()
    scores = result.boxes.conf.tolist()
    xy = result.keypoints.xy.tolist()
    conf = result.keypoints.conf.tolist() if result.keypoints.conf is not None else [[1.0] * len(p) for p in xy]
    keypoints = [[[x, y, v] for (x, y), v in zip(points, seen)] for points, seen in zip(xy, conf)]
    detections = [{"box": b, "score": s, "keypoints": k} for b, s, k in zip(boxes, scores, keypoints)]
    line = {"source": source, "frame": index, "width": width, "height": height, "detections": detections}
    print(json.dumps(line), file=out)


for path in inputs:
    if path.lower().endswith(VIDEO):
        capture = cv2.VideoCapture(path)
        if not capture.isOpened():
            sys.exit(f"cannot open {path}")
        index = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            start = time.perf_counter()
            result = model(frame, device="cpu", verbose=False)[0]
            total += time.perf_counter() - start
            write(path, index, result)
            index += 1
            frames += 1
        capture.release()
    else:
        start = time.perf_counter()
        result = model(path, device="cpu", verbose=False)[0]
        total += time.perf_counter() - start
        write(path, frames, result)
        frames += 1
out.close()
print(f"ultralytics {ultralytics.__version__}: {frames} frames, {total * 1e3 / max(frames, 1):.1f} ms/frame (model(frame))", file=sys.stderr)
