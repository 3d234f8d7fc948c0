#!/usr/bin/env bash
# One benchmark run on this machine, side by side: pose (ours vs Ultralytics' predict), the verdict
# after the last byte (/stream vs /analyze), the piste GUI's WebSocket beside POST /stream, ingest
# throughput and memory, concurrent streams, and the remote hop (pose local vs on a real Triton
# server, scripts/triton.sh).
# Writes BENCHMARKS.md and bench.json at the repository root and prints PASS/MISS per goal.
#
#   scripts/bench.sh            5 runs per figure (about half an hour on 2 cores)
#   scripts/bench.sh --quick    1 run per figure, 2 for pose (under 15 minutes on 2 cores)
#   scripts/bench.sh --runs N   N runs per figure
#   scripts/bench.sh --only piste   only these sections (pose,verdict,piste,ingest,triton),
#                               merged into the bench.json there is
#   scripts/bench.sh --no-build     skip setup and the build: time the binary there is
#
# Sets up (scripts/setup.sh) and builds (cargo build --release) first, as scripts/test.sh does,
# unless --no-build. The servers it starts listen on 127.0.0.1 only and are stopped, and its
# scratch folder removed, on exit, however it exits.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { echo "bench: $*" >&2; }

usage() { sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
DRIVER_ARGS=()
BUILD=1
COMMAND="scripts/bench.sh${*:+ $*}"
while (($#)); do
  case "$1" in
    --quick) DRIVER_ARGS+=(--quick) ;;
    --runs)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || { say "--runs wants a positive number"; exit 2; }
      DRIVER_ARGS+=(--runs "$2"); shift ;;
    --only)
      [[ "${2:-}" =~ ^(pose|verdict|piste|ingest|triton)(,(pose|verdict|piste|ingest|triton))*$ ]] \
        || { say "--only wants sections: pose,verdict,piste,ingest,triton"; exit 2; }
      DRIVER_ARGS+=(--only "$2"); shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) usage; exit 0 ;;
    *) say "unknown argument: $1"; usage >&2; exit 2 ;;
  esac
  shift
done

if ((BUILD)); then
  scripts/setup.sh
fi
[ -f scripts/env.sh ] || { say "no scripts/env.sh: run scripts/setup.sh (or drop --no-build)"; exit 1; }
# shellcheck source=/dev/null
. scripts/env.sh
if ((BUILD)); then
  say "building (cargo build --release)"
  cargo build --release
else
  [ -x target/release/ai-referee ] || { say "--no-build: target/release/ai-referee is missing"; exit 1; }
  say "--no-build: timing the target/release/ai-referee there is, built $(date -u -r target/release/ai-referee '+%Y-%m-%d %H:%M:%S UTC')"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ai-referee-bench.XXXXXX")"
DRIVER_PID=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$DRIVER_PID" ] && kill -0 "$DRIVER_PID" 2>/dev/null; then
    kill -TERM "$DRIVER_PID" 2>/dev/null || true
    wait "$DRIVER_PID" 2>/dev/null || true
  fi
  # The driver records each server's pid while it runs; any left (the driver killed outright) go
  # now, by id, once checked to be an ai-referee still.
  local file pid
  for file in "$WORK"/pids/server-*; do
    [ -e "$file" ] || continue
    pid="$(cat "$file")"
    if [[ "$pid" =~ ^[0-9]+$ ]] && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'ai-referee serve'; then
      say "stopping server $pid"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "scratch folder $WORK"
# In the background and awaited, so that a signal to this script reaches the trap at once.
.venv/bin/python -B scripts/bench/bench.py --root "$ROOT" --work "$WORK" --command "$COMMAND" \
  ${DRIVER_ARGS[@]+"${DRIVER_ARGS[@]}"} &
DRIVER_PID=$!
status=0
wait "$DRIVER_PID" || status=$?
DRIVER_PID=""
exit "$status"
