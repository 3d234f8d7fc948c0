#!/usr/bin/env bash
# How often the legacy's lossy fisheye round trip changes the winner on real footage.
#
# With fisheye on, the legacy corrected each frame, wrote the corrected video as mp4v, decoded that
# file again and ran pose on the decoded frames. We run pose on the corrected frames themselves
# (lossless) and write the same mp4v only as an artifact. This script posts data/demo.mp4 to
# /analyze with fisheye on (ours), then posts the corrected mp4v it wrote with fisheye off (what
# the legacy's pose saw), and decides both keypoint workbooks with each recorded phrase's log
# (tests/fixtures/phrases.jsonl): it prints how many of those decisions name another winner.
# Usage: scripts/fisheye-roundtrip.sh [VIDEO]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=/dev/null
. scripts/env.sh
VIDEO="${1:-data/demo.mp4}"
BIN=target/release/ai-referee
[ -x "$BIN" ] || cargo build --release --quiet
WORK="$(mktemp -d)"
SERVER_PID=""
stop_server() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""; fi; }
trap 'stop_server; rm -rf "$WORK"' EXIT

start_server() { # LOG ARGS...
  local log="$1"; shift
  "$BIN" serve --host 127.0.0.1 --port 0 --output-dir "$WORK/results" "$@" >"$log" 2>&1 &
  SERVER_PID=$!
  timeout 180 bash -c "until grep -q 'model ready' '$log'; do kill -0 $SERVER_PID 2>/dev/null || exit 1; sleep 0.2; done" \
    || { cat "$log" >&2; exit 1; }
  ADDR="$(grep -o 'addr=[0-9.:]*' "$log" | head -n1 | cut -d= -f2)"
}

python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["signal"])' tests/fixtures/phrases.jsonl >"$WORK/log.txt"
post() { # VIDEO OUT.json
  curl -sS -F "video=@$1" -F "signal=@$WORK/log.txt" -F save_overlay=false "http://$ADDR/analyze" >"$2"
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert "decision" in d, d' "$2"
}
start_server "$WORK/on.log" --fisheye-enabled true
post "$VIDEO" "$WORK/ours.json"
stop_server
CORRECTED="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["artifacts"]["corrected_video"])' "$WORK/ours.json")"
start_server "$WORK/off.log" --fisheye-enabled false
post "$CORRECTED" "$WORK/legacy.json"
stop_server

python3 - "$BIN" "$WORK" <<'PY'
import json, subprocess, sys
bin_, work = sys.argv[1], sys.argv[2]
books = {name: json.load(open(f"{work}/{name}.json"))["artifacts"]["excel"] for name in ("ours", "legacy")}
lines = [json.loads(l) for l in open("tests/fixtures/phrases.jsonl")]
differ, total, lefts = 0, 0, 0
for p in lines:
    log = f"{work}/{p['id']}.txt"
    open(log, "w").write(p["signal"])
    winners = {}
    for name, book in books.items():
        out = subprocess.run([bin_, "decide", "--signal", log, "--keypoints", book], capture_output=True, text=True)
        winners[name] = json.loads(out.stdout)["winner"] if out.returncode == 0 else None
    if None in winners.values():
        continue
    total += 1
    lefts += winners["ours"] == "left"
    differ += winners["ours"] != winners["legacy"]
import openpyxl
def sheet(path):
    wb = openpyxl.load_workbook(path, read_only=True)
    return {s: [[c for c in row[1:]] for row in wb[s].iter_rows(min_row=2, values_only=True)] for s in wb.sheetnames}
a, b = sheet(books["ours"]), sheet(books["legacy"])
diffs, nan_flips = [], 0
for s in a:
    for ra, rb in zip(a[s], b[s]):
        for x, y in zip(ra, rb):
            if (x is None) != (y is None):
                nan_flips += 1
            elif x is not None:
                diffs.append(abs(x - y))
diffs.sort()
print(f"fisheye round trip: {differ} of {total} logs give another winner (ours: {lefts} left, {total - lefts} right); "
      f"keypoints: median {diffs[len(diffs)//2]:.4f}, worst {diffs[-1]:.4f} normalised units, "
      f"{nan_flips} cells seen in one and not the other")
PY
