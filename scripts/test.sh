#!/usr/bin/env bash
# Sets up (if needed), builds, and runs every test of the workspace.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
# shellcheck source=/dev/null
. scripts/env.sh

# The piste client must build without libtorch.
if cargo tree -p referee-client --edges normal,build | grep -i torch; then
  echo "test: referee-client depends on torch; it must not" >&2
  exit 1
fi
# The engine must build without libtorch and without OpenCV.
if cargo tree -p referee-engine --edges normal,build | grep -iE 'torch|opencv'; then
  echo "test: referee-engine depends on torch or OpenCV; it must not" >&2
  exit 1
fi
cargo build --release --workspace --all-targets
cargo test --release --workspace "$@"
