"""Ultralytics' own `predict` on images, printed in `ai-referee pose`'s JSON-lines shape.

Usage: python ultralytics_pose.py MODEL.torchscript OUT.jsonl IMAGE... ; library defaults (640, conf 0.25,
IoU 0.7, max_det 300), CPU. The parity test compares its output with ours on the same files.
"""
import json
import sys
import time

from ultralytics import YOLO

model_path, out_path, images = sys.argv[1], sys.argv[2], sys.argv[3:]
out = open(out_path, "w")  # Ultralytics prints on stdout: keep our lines apart
model = YOLO(model_path, task="pose")
total = 0.0
for i, path in enumerate(images):
    start = time.perf_counter()
    result = model.predict(path, device="cpu", verbose=False)[0]
    total += time.perf_counter() - start
    height, width = result.orig_shape
    boxes = result.boxes.xyxy.tolist()
    scores = result.boxes.conf.tolist()
    keypoints = result.keypoints.data.tolist()
    detections = [{"box": b, "score": s, "keypoints": k} for b, s, k in zip(boxes, scores, keypoints)]
    print(json.dumps({"source": path, "frame": i, "width": width, "height": height, "detections": detections}), file=out)
out.close()
print(f"ultralytics: {len(images)} frames, {total * 1e3 / max(len(images), 1):.1f} ms/frame (predict)", file=sys.stderr)
