#!/usr/bin/env bash
# Exports an Ultralytics pose checkpoint (e.g. yolo11x-pose.pt) to the TorchScript the server
# loads and checks its output.
#
# By default the export takes any input shape that is a multiple of 32 (Ultralytics'
# `dynamic=True`): the server then letterboxes each frame with minimal padding (1280x720 ->
# 640x384), exactly as Ultralytics' `predict` does for the `.pt`, so its detections equal the
# `.pt`'s. `--fixed` exports the classic 640x640 model instead (frames padded to the square; its
# detections differ from the `.pt`'s on non-square frames).
# `--openvino` exports the same network as an OpenVINO IR directory instead (any input shape, fp32
# weights), which `--pose-runtime openvino` (and `auto` on a CPU) runs: OUT defaults to
# WEIGHTS_openvino_model/, the directory the server looks for beside the TorchScript.
# Usage: scripts/export-model.sh [--fixed | --openvino] WEIGHTS.pt [OUT]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FIXED=0
FORMAT=torchscript
case "${1:-}" in
  --fixed) FIXED=1; shift ;;
  --openvino) FORMAT=openvino; shift ;;
esac
[ $# -ge 1 ] || { echo "usage: $0 [--fixed | --openvino] WEIGHTS.pt [OUT]" >&2; exit 2; }
WEIGHTS="$1"
if [ "$FORMAT" = openvino ]; then
  OUT="${2:-${WEIGHTS%.pt}_openvino_model}"
else
  OUT="${2:-${WEIGHTS%.pt}.torchscript}"
fi
[ -f "$WEIGHTS" ] || { echo "export-model: $WEIGHTS does not exist" >&2; exit 2; }
[ -f "$ROOT/scripts/env.sh" ] || { echo "export-model: run scripts/setup.sh first" >&2; exit 1; }
# shellcheck source=/dev/null
. "$ROOT/scripts/env.sh"
MODE=dynamic
[ "$FORMAT" = openvino ] && MODE=openvino
((FIXED)) && MODE=fixed
python - "$WEIGHTS" "$OUT" "$MODE" <<'PY'
import os, shutil, sys, tempfile
from ultralytics import YOLO

weights, out, mode = sys.argv[1], sys.argv[2].rstrip("/"), sys.argv[3]
# Ultralytics writes the export beside the weights: work on a copy so that two exports of the
# same weights (fixed, dynamic, OpenVINO) never race for one file name.
work = tempfile.mkdtemp(prefix="export-model-")
copy = os.path.join(work, os.path.basename(weights))
shutil.copy(weights, copy)
model = YOLO(copy)
if model.task != "pose":
    sys.exit(f"export-model: {weights} is a {model.task} model, not a pose model")
if mode == "openvino":
    # fp32 weights (half=False): the runtime's precision is chosen when the server compiles it.
    exported = model.export(format="openvino", imgsz=640, dynamic=True, half=False, verbose=False)
else:
    exported = model.export(format="torchscript", imgsz=640, dynamic=mode == "dynamic", verbose=False)
# Whole or not at all: the export lands beside its final name, then takes it.
shutil.rmtree(out + ".part", ignore_errors=True)
shutil.move(exported, out + ".part")
if os.path.isdir(out):
    shutil.rmtree(out)
os.replace(out + ".part", out)
shutil.rmtree(work, ignore_errors=True)
CELLS_640x384 = 48 * 80 + 24 * 40 + 12 * 20

if mode == "openvino":
    import numpy as np
    import openvino as ov

    # The IR's files take the weights' stem, as the server reads <dir>/<stem>.xml.
    stem = os.path.splitext(os.path.basename(weights))[0]
    xml = os.path.join(out, stem + ".xml")
    core = ov.Core()
    net = core.read_model(xml)
    for h, w, cells in ((640, 640, 8400), (384, 640, CELLS_640x384)):
        net.reshape([1, 3, h, w])
        y = core.compile_model(net, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(np.zeros((1, 3, h, w), np.float32))[0]
        if list(y.shape) != [1, 56, cells]:
            sys.exit(f"export-model: {xml} gives {list(y.shape)} for {w}x{h}, expected [1, 56, {cells}]")
    print(f"export-model: wrote {out}/ (OpenVINO IR {stem}.xml, any multiple of 32, fp32)", file=sys.stderr)
    sys.exit(0)

import torch


def shape(h, w):
    y = torch.jit.load(out)(torch.zeros(1, 3, h, w))
    y = y[0] if isinstance(y, (list, tuple)) else y
    return list(y.shape)


square = shape(640, 640)
if square[:2] != [1, 56]:
    sys.exit(f"export-model: {out} gives {square}, expected [1, 56, N]")
if mode == "dynamic" and shape(384, 640) != [1, 56, CELLS_640x384]:
    sys.exit(f"export-model: {out} does not take a 640x384 input")
kind = "640x640 only" if mode == "fixed" else "any multiple of 32"
print(f"export-model: wrote {out} (input {kind}; output {square} at 640x640)", file=sys.stderr)
PY
