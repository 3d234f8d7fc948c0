#!/usr/bin/env bash
# The service end to end on this machine: sets up, builds, then
#  1. serves the marker model, renders a recorded phrase as video, posts it to /analyze with curl
#     and prints the verdict beside the legacy's and the human referee's call; then streams the
#     same phrase to /stream with referee-client as a camera would (15 fps, frames analysed as
#     they arrive) and prints the verdict and how long after the last byte it came;
#  2. serves the pretrained yolo11n-pose, posts a real two-person video, and prints where its
#     overlay is and how many people the model found per frame.
# PHRASE_ID picks the recorded phrase (default: the first of tests/fixtures/phrases.jsonl).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
scripts/setup.sh
# shellcheck source=/dev/null
. scripts/env.sh
cargo build --release --workspace --quiet

BIN=target/release/ai-referee
PHRASES=tests/fixtures/phrases.jsonl
OUT="$ROOT/results/demo"
WORK="$(mktemp -d)"
SERVER_PID=""
stop_server() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi; }
trap 'stop_server; rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# start_server LOG ARGS...: starts `serve` on a free port, waits for the warm model, sets ADDR.
start_server() {
  local log="$1"; shift
  REFEREE_HOST=127.0.0.1 REFEREE_PORT=0 REFEREE_OUTPUT_DIR="$OUT" "$BIN" serve "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  if ! timeout 180 bash -c "until grep -q -e 'model ready' -e 'model not loaded' '$log'; do
         kill -0 $SERVER_PID 2>/dev/null || exit 1; sleep 0.2; done" || ! grep -q 'model ready' "$log"; then
    echo "demo: the server did not come up:" >&2; cat "$log" >&2; exit 1
  fi
  ADDR="$(grep -o 'addr=[0-9.:]*' "$log" | head -n1 | cut -d= -f2)"
  echo "demo: server at http://$ADDR: $(curl -sS "http://$ADDR/health")"
}

# 1. A recorded phrase, rendered and posted.
ID="${PHRASE_ID:-$(head -n1 "$PHRASES" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')}"
echo "demo: rendering recorded phrase $ID"
"$BIN" render --phrases "$PHRASES" --id "$ID" --out "$WORK/$ID.avi" --signal-out "$WORK/$ID.txt"
"$BIN" render --phrases "$PHRASES" --id "$ID" --out "$WORK/frames" 2>/dev/null
start_server "$WORK/marker.log" --model models/marker-pose.torchscript --fisheye-enabled false
curl -sS -F "video=@$WORK/$ID.avi;type=video/x-msvideo" -F "signal=@$WORK/$ID.txt;type=text/plain" \
  "http://$ADDR/analyze" >"$WORK/verdict.json"
echo "demo: streaming the same phrase to /stream with referee-client, at 15 fps as a camera would"
target/release/referee-client stream "http://$ADDR" --frames "$WORK/frames" --realtime --fps 15 \
  --signal "$WORK/$ID.txt" --session "demo-$(date +%s)" >"$WORK/streamed.json"
stop_server
python3 - "$WORK/verdict.json" "$PHRASES" "$ID" <<'PY'
import json, sys
verdict = json.load(open(sys.argv[1]))
if "decision" not in verdict:
    sys.exit(f"demo: /analyze failed: {verdict}")
phrase = next(p for p in map(json.loads, open(sys.argv[2])) if p["id"] == sys.argv[3])
d = verdict["decision"]
print(f"demo: verdict      {d['winner']:>5}  ({d['reason']})")
print(f"demo: legacy rules {phrase['legacy_decision']['winner']:>5}  ({phrase['legacy_decision']['reason']})")
print(f"demo: referee call {str(phrase['referee_call']):>5}")
print(f"demo: {verdict['metadata']['frames_processed']} frames in {verdict['wall_time_seconds']:.2f} s; artifacts in {verdict['artifact_dir']}")
PY
python3 - "$WORK/streamed.json" <<'PY'
import json, sys
streamed = json.load(open(sys.argv[1]))
if "decision" not in streamed:
    sys.exit(f"demo: /stream failed: {streamed}")
s = streamed["stream"]
print(f"demo: streamed     {streamed['decision']['winner']:>5}  ({streamed['decision']['reason']})")
print(f"demo: {s['frames_received']} frames uploaded in {s['upload_seconds']:.1f} s, {s['frames_analysed']} analysed; "
      f"verdict {s['verdict_seconds_after_last_byte']:.2f} s after the last byte")
PY

# 2. The pretrained model on a real video.
echo "demo: pretrained yolo11n-pose on data/demo.mp4 (Sports2D's clip, two people)"
start_server "$WORK/real.log"
curl -sS -F "video=@data/demo.mp4" -F "signal=@$WORK/$ID.txt" "http://$ADDR/analyze" >"$WORK/real.json"
stop_server
"$BIN" pose --model models/yolo11n-pose.torchscript data/demo.mp4 >"$WORK/pose.jsonl" 2>"$WORK/pose.log"
python3 - "$WORK/real.json" "$WORK/pose.jsonl" <<'PY'
import collections, json, sys
real = json.load(open(sys.argv[1]))
if "artifacts" not in real:
    sys.exit(f"demo: /analyze on the real video failed: {real}")
people = collections.Counter(len(json.loads(l)["detections"]) for l in open(sys.argv[2]))
print(f"demo: overlay video: {real['artifacts'].get('analysis_video')}")
print(f"demo: corrected video: {real['artifacts'].get('corrected_video')}")
print("demo: people found per frame: " + ", ".join(f"{n} people on {c} frames" for n, c in sorted(people.items())))
print(f"demo: {real['metadata']['frames_processed']} frames in {real['wall_time_seconds']:.1f} s")
PY
sed 's/^/demo: /' "$WORK/pose.log"
