#!/usr/bin/env bash
# Exports an Ultralytics pose checkpoint (e.g. yolo11x-pose.pt) to the TorchScript the server
# loads and checks its output.
#
# By default the export takes any input shape that is a multiple of 32 (Ultralytics'
# `dynamic=True`): the server then letterboxes each frame with minimal padding (1280x720 ->
# 640x384), exactly as Ultralytics' `predict` does for the `.pt`, so its detections equal the
# `.pt`'s. `--fixed` exports the classic 640x640 model instead (frames padded to the square; its
# detections differ from the `.pt`'s on non-square frames).
# Usage: scripts/export-model.sh [--fixed] WEIGHTS.pt [OUT.torchscript]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIXED=0
if [ "${1:-}" = "--fixed" ]; then FIXED=1; shift; fi
[ $# -ge 1 ] || { echo "usage: $0 [--fixed] WEIGHTS.pt [OUT.torchscript]" >&2; exit 2; }
WEIGHTS="$1"
OUT="${2:-${WEIGHTS%.pt}.torchscript}"
[ -f "$WEIGHTS" ] || { echo "export-model: $WEIGHTS does not exist" >&2; exit 2; }
[ -f "$ROOT/scripts/env.sh" ] || { echo "export-model: run scripts/setup.sh first" >&2; exit 1; }
# shellcheck source=/dev/null
. "$ROOT/scripts/env.sh"
python - "$WEIGHTS" "$OUT" "$FIXED" <<'PY'
import os, shutil, sys, tempfile
import torch
from ultralytics import YOLO

weights, out, fixed = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
# Ultralytics writes the export beside the weights: work on a copy so that two exports of the
# same weights (fixed and dynamic) never race for one file name.
work = tempfile.mkdtemp(prefix="export-model-")
copy = os.path.join(work, os.path.basename(weights))
shutil.copy(weights, copy)
model = YOLO(copy)
if model.task != "pose":
    sys.exit(f"export-model: {weights} is a {model.task} model, not a pose model")
exported = model.export(format="torchscript", imgsz=640, dynamic=not fixed, verbose=False)
shutil.move(exported, out + ".part")
os.replace(out + ".part", out)
shutil.rmtree(work, ignore_errors=True)

def shape(h, w):
    y = torch.jit.load(out)(torch.zeros(1, 3, h, w))
    y = y[0] if isinstance(y, (list, tuple)) else y
    return list(y.shape)

square = shape(640, 640)
if square[:2] != [1, 56]:
    sys.exit(f"export-model: {out} gives {square}, expected [1, 56, N]")
if not fixed and shape(384, 640) != [1, 56, 48 * 80 + 24 * 40 + 12 * 20]:
    sys.exit(f"export-model: {out} does not take a 640x384 input")
kind = "640x640 only" if fixed else "any multiple of 32"
print(f"export-model: wrote {out} (input {kind}; output {square} at 640x640)", file=sys.stderr)
PY
