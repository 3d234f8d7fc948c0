#!/usr/bin/env bash
# The service end to end on this machine: sets up, builds, starts the server with the default
# pose model, shows /health, and stops it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
# shellcheck source=/dev/null
. scripts/env.sh
cargo build --release --workspace --quiet

WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() { [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT

REFEREE_HOST=127.0.0.1 REFEREE_PORT=0 REFEREE_OUTPUT_DIR="$WORK/results" \
  target/release/ai-referee serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Wait (at most 120 s) for the log to say the model is warm, or for the server to die.
if ! timeout 120 bash -c "until grep -q -e 'model ready' -e 'model not loaded' '$WORK/server.log'; do
       kill -0 $SERVER_PID 2>/dev/null || exit 1; sleep 0.2; done"; then
  echo "demo: the server did not come up:" >&2; cat "$WORK/server.log" >&2; exit 1
fi
ADDR="$(grep -o 'addr=[0-9.:]*' "$WORK/server.log" | head -n1 | cut -d= -f2)"
echo "demo: server log:"; sed 's/^/  /' "$WORK/server.log"
echo "demo: GET http://$ADDR/health"
curl -sS "http://$ADDR/health"; echo
