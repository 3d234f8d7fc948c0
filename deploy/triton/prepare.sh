#!/usr/bin/env bash
# Puts the pose TorchScript into the Triton model repository (as 1/model.pt). The export is the
# one the service loads (scripts/setup.sh makes it; weights are Ultralytics', AGPL-3.0).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MODEL="${1:-$HERE/../../models/yolo11n-pose.torchscript}"
[ -f "$MODEL" ] || { echo "prepare: no $MODEL (run scripts/setup.sh, or pass the export's path)" >&2; exit 1; }
cp "$MODEL" "$HERE/model_repository/yolo_pose/1/model.pt"
echo "model repository ready: $HERE/model_repository"
