#!/usr/bin/env bash
# A real Triton Inference Server on this machine, serving the pose TorchScript (CPU here, CUDA
# where there is one), for development and tests: PyPI's nvidia-pytriton ships `tritonserver`
# with its Python backend. It lives in its own venv (.venv-triton: pytriton pins numpy < 2, the
# main .venv has numpy 2), on Debian's Python 3.11, and borrows torch from .venv.
#
#   scripts/triton.sh start [MODEL] [HTTP_PORT]   starts it in the background, waits until the
#                                                 model is ready, prints its URL (http://…)
#   scripts/triton.sh stop                        stops it
#   scripts/triton.sh install                     only prepares .venv-triton
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV=.venv-triton
STATE="${TRITON_STATE_DIR:-$ROOT/target/triton}"

install() {
  [ -x .venv/bin/python ] || scripts/setup.sh >&2
  if [ ! -f "$VENV/.installed" ]; then
    echo "triton: preparing $VENV (nvidia-pytriton)" >&2
    # Debian's own Python 3.11: the Python backend's stub embeds a 3.11 older than pyenv's 3.11.7,
    # whose standard library it cannot run (multiprocessing calls RLock._recursion_count).
    [ -x "$VENV/bin/python" ] || /usr/bin/python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "nvidia-pytriton==0.7.0" >&2
    # torch comes from the main venv (after this venv's own packages, so its numpy 1.x wins).
    main_site="$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')"
    own_site="$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
    echo "$main_site" > "$own_site/zz-main-venv.pth"
    touch "$VENV/.installed"
  fi
}

case "${1:-start}" in
  install)
    install
    ;;
  start)
    install
    MODEL="${2:-models/yolo11n-pose.torchscript}"
    PORT="${3:-8000}"
    mkdir -p "$STATE"
    "$VENV/bin/python" scripts/triton/serve.py --model "$MODEL" --http-port "$PORT" \
      --grpc-port "$((PORT + 1))" --metrics-port "$((PORT + 2))" >"$STATE/triton.log" 2>&1 &
    echo $! > "$STATE/triton.pid"
    for _ in $(seq 1 600); do
      if grep -q "triton ready" "$STATE/triton.log"; then
        echo "http://127.0.0.1:$PORT"
        exit 0
      fi
      if ! kill -0 "$(cat "$STATE/triton.pid")" 2>/dev/null; then
        cat "$STATE/triton.log" >&2
        echo "triton: it stopped before it was ready" >&2
        exit 1
      fi
      sleep 0.5
    done
    echo "triton: not ready after 300 s; see $STATE/triton.log" >&2
    exit 1
    ;;
  stop)
    if [ -f "$STATE/triton.pid" ]; then
      kill "$(cat "$STATE/triton.pid")" 2>/dev/null || true
      rm -f "$STATE/triton.pid"
    fi
    ;;
  *)
    echo "usage: scripts/triton.sh start [MODEL] [HTTP_PORT] | stop | install" >&2
    exit 2
    ;;
esac
