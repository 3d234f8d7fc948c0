#!/usr/bin/env bash
# Exports an Ultralytics pose checkpoint (e.g. yolo11x-pose.pt) to the TorchScript the server
# loads, 640x640 input, output [1, 56, 8400], and checks that shape.
# Usage: scripts/export-model.sh WEIGHTS.pt [OUT.torchscript]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[ $# -ge 1 ] || { echo "usage: $0 WEIGHTS.pt [OUT.torchscript]" >&2; exit 2; }
WEIGHTS="$1"
OUT="${2:-${WEIGHTS%.pt}.torchscript}"
[ -f "$WEIGHTS" ] || { echo "export-model: $WEIGHTS does not exist" >&2; exit 2; }
[ -f "$ROOT/scripts/env.sh" ] || { echo "export-model: run scripts/setup.sh first" >&2; exit 1; }
# shellcheck source=/dev/null
. "$ROOT/scripts/env.sh"
python - "$WEIGHTS" "$OUT" <<'PY'
import shutil, sys
import torch
from ultralytics import YOLO

weights, out = sys.argv[1], sys.argv[2]
model = YOLO(weights)
if model.task != "pose":
    sys.exit(f"export-model: {weights} is a {model.task} model, not a pose model")
exported = model.export(format="torchscript", imgsz=640, verbose=False)
if exported != out:
    shutil.move(exported, out)
y = torch.jit.load(out)(torch.zeros(1, 3, 640, 640))
y = y[0] if isinstance(y, (list, tuple)) else y
if list(y.shape)[:2] != [1, 56]:
    sys.exit(f"export-model: {out} gives {list(y.shape)}, expected [1, 56, N]")
print(f"export-model: wrote {out} (output {list(y.shape)})", file=sys.stderr)
PY
