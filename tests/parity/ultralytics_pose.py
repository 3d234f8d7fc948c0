"""Ultralytics' own `predict`, printed in `ai-referee pose`'s JSON-lines shape.

Usage: python ultralytics_pose.py MODEL OUT.jsonl INPUT... ; MODEL a `.pt` checkpoint or an export,
each INPUT an image or a video (every frame, decoded by Ultralytics' own loader). Library defaults
(640, conf 0.25, IoU 0.7, max_det 300), CPU. The parity tests compare its output with ours.
"""
import json
import sys
import time

from ultralytics import YOLO

VIDEO = (".mp4", ".avi", ".mov", ".mkv", ".webm")

model_path, out_path, inputs = sys.argv[1], sys.argv[2], sys.argv[3:]
out = open(out_path, "w")  # Ultralytics prints on stdout: keep our lines apart
model = YOLO(model_path, task="pose")
total, frames = 0.0, 0


def write(source, index, result):
    height, width = result.orig_shape
    boxes = result.boxes.xyxy.tolist()
    scores = result.boxes.conf.tolist()
    keypoints = result.keypoints.data.tolist()
    detections = [{"box": b, "score": s, "keypoints": k} for b, s, k in zip(boxes, scores, keypoints)]
    line = {"source": source, "frame": index, "width": width, "height": height, "detections": detections}
    print(json.dumps(line), file=out)


for path in inputs:
    if path.lower().endswith(VIDEO):
        start = time.perf_counter()
        for index, result in enumerate(model.predict(path, device="cpu", verbose=False, stream=True)):
            write(path, index, result)
            frames += 1
        total += time.perf_counter() - start
    else:
        start = time.perf_counter()
        result = model.predict(path, device="cpu", verbose=False)[0]
        total += time.perf_counter() - start
        write(path, frames, result)
        frames += 1
out.close()
print(f"ultralytics: {frames} frames, {total * 1e3 / max(frames, 1):.1f} ms/frame (predict)", file=sys.stderr)
