"""Ultralytics' own CPU exports of a pose checkpoint, the peers `scripts/bench.sh` times beside ours:
its OpenVINO export and its ONNX export, both at the 640x384 input a 1280x720 frame letterboxes
to (as the issue's anchors were measured), each exported as a CPU user of Ultralytics would, with
one `export` call and its defaults otherwise.

Usage: python export_peers.py WEIGHTS.pt OUT_DIR
Writes OUT_DIR/<stem>_openvino_model/ and OUT_DIR/<stem>.onnx (atomically: each appears whole or
not at all). Run by scripts/setup.sh.
"""
import os
import shutil
import sys
import tempfile

from ultralytics import YOLO

weights, out_dir = sys.argv[1], sys.argv[2]
stem = os.path.splitext(os.path.basename(weights))[0]
os.makedirs(out_dir, exist_ok=True)
for fmt, name in (("openvino", f"{stem}_openvino_model"), ("onnx", f"{stem}.onnx")):
    target = os.path.join(out_dir, name)
    if os.path.exists(target):
        continue
    # Ultralytics writes beside the weights: a copy in a scratch folder keeps models/ clean.
    work = tempfile.mkdtemp(prefix="export-peers-")
    copy = os.path.join(work, os.path.basename(weights))
    shutil.copy(weights, copy)
    exported = YOLO(copy).export(format=fmt, imgsz=(384, 640), verbose=False)
    shutil.move(exported, target + ".part")
    os.replace(target + ".part", target)
    shutil.rmtree(work, ignore_errors=True)
    print(f"export_peers: wrote {target}", file=sys.stderr)
