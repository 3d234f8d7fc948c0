"""A piste GUI's WebSocket client, written from the protocol table in shared/spec/piste.md only.

Modes (every message the server sends is printed as one JSON line on stdout, wrapped as
{"step": ..., "reply": ...}, so the Rust tests assert on exactly what came back):

  phrase URL --frames DIR --log FILE --session ID --fps F [--sessions N] [--live]
      The GUI's streaming mode: session_start, each JPEG of DIR (sorted) as a frame header and a
      binary message with a stop-and-wait ack, session_end, then the log as a signal header and a
      binary message, and the replies up to process_complete (or an error). With --sessions N the
      same socket carries N phrases one after another (ids ID, ID-2, ...). With --live the log's
      lines are sent as signal messages among the frames, each when the frames reach its time.
  errors URL --frames DIR --session ID
      Protocol misuse, one step at a time, then a close with the session left open.

The token, if any, comes from REFEREE_TOKEN and is sent as `Authorization: Bearer`, or as
`?token=` with --token-in-query.
"""

import argparse
import json
import os
import re
import sys
import time

from websockets.sync.client import connect

ACK_WITHIN = 10.0
START_WITHIN = 30.0
RESULT_WITHIN = 300.0


def say(step, reply):
    print(json.dumps({"step": step, "reply": reply}), flush=True)


def receive(ws, step, within):
    """The next control message (JSON text), answering pings on the way."""
    deadline = time.monotonic() + within
    while True:
        message = ws.recv(timeout=max(0.0, deadline - time.monotonic()))
        if isinstance(message, bytes):
            reply = {"type": "<binary>", "size": len(message)}
        else:
            reply = json.loads(message)
        if reply.get("type") == "ping":
            ws.send(json.dumps({"type": "pong"}))
            continue
        say(step, reply)
        return reply


def open_socket(url, token_in_query):
    url = re.sub(r"^http", "ws", url.rstrip("/")) + "/stream"
    headers = {}
    token = os.environ.get("REFEREE_TOKEN")
    if token and token_in_query:
        url += "?token=" + token
    elif token:
        headers["Authorization"] = "Bearer " + token
    return connect(url, additional_headers=headers, max_size=None, open_timeout=30)


def jpegs(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg")))
    return [open(os.path.join(folder, n), "rb").read() for n in names]


def timed_lines(text):
    """The log's lines, each with the time it was written (an untimed line: the last time seen)."""
    lines, now = [], 0.0
    for line in text.splitlines(keepends=True):
        found = re.search(r"(\d+\.\d+)s", line)
        if found and "|" in line:
            now = float(found.group(1))
        lines.append((now, line))
    return lines


def send_signal(ws, session, text, name="phrase.txt"):
    data = text.encode()
    ws.send(json.dumps({"type": "signal", "session_id": session, "filename": name, "size": len(data)}))
    ws.send(data)


class Replies:
    """Reads replies until the one a step waits for; the verdict may come at any time once the
    log is in (a live log's call comes before the last frames), so it is noted wherever it comes."""

    def __init__(self, ws):
        self.ws = ws
        self.finished = False

    def until(self, step, wanted, within):
        while True:
            reply = receive(self.ws, step, within)
            kind = reply.get("type")
            if kind in ("process_complete", "error"):
                self.finished = True
            if kind in wanted or kind == "error":
                return reply


def one_phrase(ws, session, frames, log_text, fps, live):
    replies = Replies(ws)
    ws.send(json.dumps({"type": "session_start", "session_id": session, "fps": fps, "width": 320,
                        "height": 240, "expected_frames": len(frames), "video_format": "bgr24",
                        "duration_seconds": len(frames) / fps}))
    if replies.until("session_start", ("session_started",), START_WITHIN).get("type") != "session_started":
        return
    pending = timed_lines(log_text) if live else []
    clock = time.time()
    for i, jpeg in enumerate(frames):
        ws.send(json.dumps({"type": "frame", "session_id": session, "frame_number": i,
                            "timestamp": clock + i / fps, "encoding": "jpeg", "quality": 85,
                            "size": len(jpeg)}))
        ws.send(jpeg)
        if replies.until("frame", ("frame_ack",), ACK_WITHIN).get("type") != "frame_ack":
            return
        # Live box events: every line whose time the frames have reached goes out now.
        due = [line for (t, line) in pending if t <= i / fps]
        pending = [(t, line) for (t, line) in pending if t > i / fps]
        if due:
            send_signal(ws, session, "".join(due))
            if replies.until("signal", ("signal_ack",), ACK_WITHIN).get("type") != "signal_ack":
                return
    ws.send(json.dumps({"type": "session_end", "session_id": session, "total_frames": len(frames)}))
    if replies.until("session_end", ("session_ended",), ACK_WITHIN).get("type") != "session_ended":
        return
    if not live or pending:
        send_signal(ws, session, "".join(line for (_, line) in pending) if live else log_text)
    if not replies.finished:
        replies.until("result", ("process_complete",), RESULT_WITHIN)


def phrase_mode(args):
    frames = jpegs(args.frames)
    log_text = open(args.log).read()
    with open_socket(args.url, args.token_in_query) as ws:
        for n in range(args.sessions):
            session = args.session if n == 0 else f"{args.session}-{n + 1}"
            one_phrase(ws, session, frames, log_text, args.fps, args.live)


def errors_mode(args):
    jpeg = jpegs(args.frames)[0]
    s = args.session
    with open_socket(args.url, args.token_in_query) as ws:
        ws.send(b"\xff\xd8 a JPEG with no header")
        receive(ws, "binary_first", ACK_WITHIN)
        ws.send("this is not JSON")
        receive(ws, "not_json", ACK_WITHIN)
        ws.send(json.dumps({"type": "frame", "session_id": s, "frame_number": 0, "timestamp": 0.0}))
        receive(ws, "frame_before_start", ACK_WITHIN)
        ws.send(json.dumps({"type": "ping"}))
        receive(ws, "ping", ACK_WITHIN)
        ws.send(json.dumps({"type": "session_start", "session_id": s, "width": 320, "height": 240}))
        receive(ws, "start_without_fps", ACK_WITHIN)
        ws.send(json.dumps({"type": "session_start", "session_id": "../etc", "fps": 15, "width": 320, "height": 240}))
        receive(ws, "start_bad_id", ACK_WITHIN)
        ws.send(json.dumps({"type": "session_start", "session_id": s, "fps": 15, "width": 320, "height": 240,
                            "expected_frames": None, "video_format": "bgr24"}))
        receive(ws, "start", START_WITHIN)
        for step in ("frame_0", "frame_0_again"):
            ws.send(json.dumps({"type": "frame", "session_id": s, "frame_number": 0, "timestamp": 1000.0,
                                "encoding": "jpeg", "quality": 85, "size": len(jpeg)}))
            ws.send(jpeg)
            receive(ws, step, ACK_WITHIN)
        ws.send(json.dumps({"type": "frame", "session_id": s, "frame_number": 1, "timestamp": 1000.1, "size": 10}))
        ws.send(b"12345")
        receive(ws, "size_mismatch", ACK_WITHIN)
        ws.send(json.dumps({"type": "frame", "session_id": s, "frame_number": 1, "timestamp": 1000.1}))
        ws.send(json.dumps({"type": "ping"}))
        receive(ws, "text_instead_of_binary", ACK_WITHIN)
        ws.send(json.dumps({"type": "frame", "session_id": "another", "frame_number": 1, "timestamp": 1000.1}))
        receive(ws, "other_session", ACK_WITHIN)
        ws.send(json.dumps({"type": "dance"}))
        receive(ws, "unknown_type", ACK_WITHIN)
        big = b"\xff\xd8" + bytes(120_000)
        ws.send(json.dumps({"type": "frame", "session_id": s, "frame_number": 1, "timestamp": 1000.1, "size": len(big)}))
        ws.send(big)
        receive(ws, "frame_too_large", ACK_WITHIN)
        ws.send(json.dumps({"type": "ping"}))
        receive(ws, "still_serving", ACK_WITHIN)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["phrase", "errors"])
    parser.add_argument("url")
    parser.add_argument("--frames", required=True)
    parser.add_argument("--log")
    parser.add_argument("--session", required=True)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--sessions", type=int, default=1)
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--token-in-query", action="store_true")
    args = parser.parse_args()
    if args.mode == "phrase":
        phrase_mode(args)
    else:
        errors_mode(args)


if __name__ == "__main__":
    sys.exit(main())
