"""Writes a multipart/x-mixed-replace phrase body on stdout, paced like a camera: the JPEGs of a
folder (name order) at --fps, each with X-Frame-Index and X-Timestamp, then the log as a
text/plain part and the closing boundary. Pipe it to curl:
  python3 scripts/stream-frames.py FRAMES_DIR LOG.txt --fps 15 | curl -X POST -T - \\
    -H 'Content-Type: multipart/x-mixed-replace; boundary=frame' 'http://host:8080/stream?session=p1'
"""
import argparse
import os
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("frames")
parser.add_argument("signal")
parser.add_argument("--fps", type=float, default=15.0)
parser.add_argument("--limit", type=int, default=0, help="send at most this many frames")
args = parser.parse_args()

out = sys.stdout.buffer
names = sorted(n for n in os.listdir(args.frames) if n.lower().endswith((".jpg", ".jpeg")))
if args.limit:
    names = names[: args.limit]
start = time.monotonic()
for i, name in enumerate(names):
    due = start + i / args.fps
    time.sleep(max(0.0, due - time.monotonic()))
    with open(os.path.join(args.frames, name), "rb") as f:
        jpeg = f.read()
    head = f"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\nX-Frame-Index: {i}\r\nX-Timestamp: {i / args.fps:.3f}\r\n\r\n"
    out.write(head.encode() + jpeg + b"\r\n")
    out.flush()
with open(args.signal, "rb") as f:
    log = f.read()
out.write(b'--frame\r\nContent-Type: text/plain\r\nContent-Disposition: inline; name="signal"; filename="phrase.txt"\r\n\r\n' + log + b"\r\n--frame--\r\n")
out.flush()
