"""The pieces of the benchmark that talk to `ai-referee serve`: starting a server on a free
loopback port and waiting until its model is warm, the three kinds of upload the benchmark
times over raw sockets (a phrase streamed to `POST /stream` paced by the clock, a phrase sent to
`/stream` as fast as the socket takes it, and a whole video posted to `/analyze`), and a phrase
sent as the piste GUI streams it over the WebSocket on `GET /stream`, paced by the same clock.

Standard library only, but for the WebSocket phrase (the venv's `websockets`, imported when one
runs). Times are `time.perf_counter()` seconds.
"""
import collections
import ctypes
import http.client
import json
import os
import queue
import re
import secrets
import signal
import socket
import subprocess
import threading
import time

# How long a server may take to listen and to warm its model (2 busy CPU cores).
STARTUP_S = 300.0
# How long any one response may take to arrive.
RESPONSE_TIMEOUT_S = 900.0

_PR_SET_PDEATHSIG = 1

# The REFEREE_* variables a server keeps from the caller's environment: where its tools and
# libraries are (scripts/env.sh sets them), not how it runs.
LOCATIONS = ("REFEREE_FFMPEG", "REFEREE_FFPROBE", "REFEREE_OPENVINO_LIB")


def die_with_parent():
    """Runs in a child before exec: it gets SIGKILL if the driver dies, however it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class BenchError(RuntimeError):
    """A failure worth a clear one-line message."""


class Server:
    """One `ai-referee serve` on 127.0.0.1 and a free port, writing under `output_dir`.

    Its pid is written to `pid_dir` while it runs, so that the shell script's trap can kill it
    by id if the driver itself is killed; the process also dies with the driver (PDEATHSIG).
    """

    def __init__(self, binary, model, output_dir, pid_dir, extra_args=(), name="server", env=None):
        self.name = name
        self.output_dir = output_dir
        os.makedirs(output_dir, exist_ok=True)
        os.makedirs(pid_dir, exist_ok=True)
        cmd = [binary, "serve", "--host", "127.0.0.1", "--port", "0", "--model", model,
               "--output-dir", output_dir, "--log-level", "INFO", *extra_args]
        self.command = cmd
        self.binary_mtime = os.path.getmtime(binary)  # the build this server runs, should it be rebuilt meanwhile
        run_env = dict(os.environ if env is None else env)
        run_env.pop("RUST_LOG", None)  # would override --log-level and could hide the lines awaited
        for key in [k for k in run_env if k.startswith("REFEREE_") and k not in LOCATIONS]:
            run_env.pop(key)  # the flags say what a run is; a stray setting in the caller's shell must not change it
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=run_env, preexec_fn=die_with_parent)
        self.pid = self.proc.pid
        self._pid_file = os.path.join(pid_dir, f"server-{self.pid}")
        with open(self._pid_file, "w") as f:
            f.write(str(self.pid))
        self._lines = queue.Queue()
        self.log_tail = collections.deque(maxlen=60)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.addr = None
        self.health = None  # /health's JSON once it said the model is loaded

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = re.sub(r"\x1b\[[0-9;]*m", "", raw.decode("utf-8", "replace")).rstrip()
            self.log_tail.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_for(self, needle, deadline):
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchError(f"{self.name}: no {needle!r} on its stderr within {STARTUP_S:.0f} s; "
                                 f"its last lines:\n" + "\n".join(self.log_tail))
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                code = self.proc.wait()
                raise BenchError(f"{self.name} exited (status {code}) before {needle!r}; its last lines:\n"
                                 + "\n".join(self.log_tail))
            if needle in line:
                return line

    def start(self):
        """Waits for the listening line (its address) and for `model ready`, then checks that
        `/health` says the model is loaded. Returns self."""
        deadline = time.monotonic() + STARTUP_S
        line = self._wait_for("listening", deadline)
        m = re.search(r"addr=(\S+)", line)
        if not m:
            raise BenchError(f"{self.name}: no addr= in its listening line: {line!r}")
        host, _, port = m.group(1).rpartition(":")
        self.addr = (host.strip("[]"), int(port))
        self._wait_for("model ready", deadline)
        status, body = get_json(self.addr, "/health")
        if status != 200 or body.get("model_loaded") is not True:
            raise BenchError(f"{self.name}: /health after 'model ready' says {status} {body}")
        self.health = body
        return self

    def rss_mb(self):
        """VmRSS and VmHWM (peak) of the server process, MB (10^6 bytes)."""
        values = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) * 1024 / 1e6  # kB
        return values["VmRSS"], values["VmHWM"]

    def cpu_seconds(self):
        """CPU seconds the server and its reaped children have used so far (/proc/PID/stat)."""
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        # utime, stime, cutime, cstime: fields 14 to 17 of proc(5), the first after the name is 3
        return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        """SIGTERM, then SIGKILL if it has not gone within 10 s; reaps it and forgets its pid."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        try:
            os.unlink(self._pid_file)
        except FileNotFoundError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _connect(addr):
    sock = socket.create_connection(addr, timeout=RESPONSE_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _read_response(sock):
    """The whole response on `sock`: (status, headers dict lower-cased, body bytes)."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    body = response.read()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return response.status, headers, body


def get_json(addr, path):
    """`GET path` → (status, parsed JSON or the text)."""
    sock = _connect(addr)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\nConnection: close\r\n\r\n".encode())
        status, _, body = _read_response(sock)
    finally:
        sock.close()
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode("utf-8", "replace")


def _parse(body):
    try:
        return json.loads(body)
    except ValueError:
        return {"detail": body[:500].decode("utf-8", "replace")}


def _chunk(payload):
    return b"%x\r\n" % len(payload) + payload + b"\r\n"


def _boundary():
    return "bench-" + secrets.token_hex(12)


def _part_head(boundary, first, index, timestamp, length):
    # As the piste client writes them: the first part opens with the delimiter line, every later
    # one with the CRLF that completes the delimiter the previous part ended with.
    opening = f"--{boundary}\r\n" if first else "\r\n"
    return (f"{opening}Content-Type: image/jpeg\r\nContent-Length: {length}\r\n"
            f"X-Frame-Index: {index}\r\nX-Timestamp: {timestamp:.3f}\r\n\r\n").encode()


def frame_part(boundary, first, index, timestamp, jpeg):
    """One JPEG part, ended by the delimiter that closes it (so the server knows at once that
    the frame is whole)."""
    return _part_head(boundary, first, index, timestamp, len(jpeg)) + jpeg + f"\r\n--{boundary}".encode()


def signal_and_close(boundary, first, log):
    """The log as a `text/plain` part named `signal`, then the closing delimiter."""
    opening = f"--{boundary}\r\n" if first else "\r\n"
    head = (f"{opening}Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Disposition: inline; name=\"signal\"; filename=\"phrase.txt\"\r\n\r\n").encode()
    return head + log + f"\r\n--{boundary}--\r\n".encode()


class PacedStream:
    """A phrase to stream to `POST /stream` in real time, its request built beforehand: frame i
    goes out at `t0 + i / fps`, then (right after the last frame, as the recorder knows it as the
    phrase ends) the log and the closing boundary, then the end of the chunked body."""

    def __init__(self, addr, session, jpegs, fps, log):
        self.addr, self.session, self.fps = addr, session, fps
        boundary = _boundary()
        self.head = (f"POST /stream?session={session}&fps={fps:g} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
                     f"Content-Type: multipart/x-mixed-replace; boundary={boundary}\r\n"
                     f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
        self.chunks = [_chunk(frame_part(boundary, i == 0, i, i / fps, jpeg)) for i, jpeg in enumerate(jpegs)]
        self.tail = _chunk(signal_and_close(boundary, not jpegs, log)) + b"0\r\n\r\n"
        self.frames = len(jpegs)

    def run(self, t0=None):
        """Streams (starting at perf_counter time `t0`, default now) and waits for the answer.
        Returns {t_first, t_last, t_response, status, body}, and for the frames alone:
        t_first_frame (the first frame's write begun), t_last_frame (the last frame's written),
        t_carried (the same: the frames are carried once written) and behind_s (the most any
        frame went out after its time)."""
        sock = _connect(self.addr)
        try:
            pacer = Pacer(self.fps, t0)
            _sleep_until(pacer.t0)
            t_first = time.perf_counter()
            t_first_frame = t_last_frame = None
            try:
                sock.sendall(self.head)
                for i, chunk in pacer.each(self.chunks):
                    if i == 0:
                        t_first_frame = time.perf_counter()
                    sock.sendall(chunk)
                t_last_frame = time.perf_counter()
                sock.sendall(self.tail)
            except (BrokenPipeError, ConnectionResetError) as e:
                raise BenchError(f"stream {self.session}: the server closed the upload ({e}); "
                                 f"its answer: {_try_read(sock)}") from None
            t_last = time.perf_counter()
            status, _, body = _read_response(sock)
            t_response = time.perf_counter()
        finally:
            sock.close()
        return {"t_first": t_first, "t_last": t_last, "t_response": t_response, "status": status,
                "body": _parse(body), "t_first_frame": t_first_frame, "t_last_frame": t_last_frame,
                "t_carried": t_last_frame, "behind_s": pacer.behind_s}


def _sleep_until(t):
    while True:
        left = t - time.perf_counter()
        if left <= 0:
            return
        time.sleep(left)


class Pacer:
    """The capture clock of a phrase: frame i is due at `t0 + i / fps` (t0: perf_counter time,
    default now). `each` hands out the frames, each once its time has come (at once when the
    sender is already late: a write that blocked, an ack still awaited), and keeps in `behind_s`
    the most any frame was handed out after its time."""

    def __init__(self, fps, t0=None):
        self.fps = fps
        self.t0 = time.perf_counter() if t0 is None else t0
        self.behind_s = 0.0

    def each(self, frames):
        for i, frame in enumerate(frames):
            due = self.t0 + i / self.fps
            _sleep_until(due)
            self.behind_s = max(self.behind_s, time.perf_counter() - due)
            yield i, frame


def _try_read(sock):
    try:
        sock.settimeout(5)
        status, _, body = _read_response(sock)
        return f"{status} {body[:300].decode('utf-8', 'replace')}"
    except Exception as e:  # the answer is only for the message
        return f"none ({e.__class__.__name__})"


class FastStream:
    """A phrase of `count` frames (the JPEGs taken in turn) for `POST /stream` without a log, sent
    as fast as the socket takes it: the whole body is laid out beforehand as buffers (frames
    shared, only their small headers built per frame) and written with `sendmsg` in large
    chunked-encoding chunks of `group` frames each."""

    IOV_MAX = 1024

    def __init__(self, addr, session, jpegs, count, fps=15.0, group=64):
        self.addr, self.session, self.count = addr, session, count
        boundary = _boundary()
        self.head = (f"POST /stream?session={session}&fps={fps:g} HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
                     f"Content-Type: multipart/x-mixed-replace; boundary={boundary}\r\n"
                     f"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
        delimiter = f"\r\n--{boundary}".encode()
        self.writes = []  # each a list of buffers: one chunk of the chunked body
        self.body_bytes = 0  # the multipart body (what the chunks carry)
        self.jpeg_bytes = 0
        for start in range(0, count, group):
            buffers, size = [], 0
            for i in range(start, min(count, start + group)):
                jpeg = jpegs[i % len(jpegs)]
                head = _part_head(boundary, i == 0, i, i / fps, len(jpeg))
                buffers += [head, jpeg, delimiter]
                size += len(head) + len(jpeg) + len(delimiter)
                self.jpeg_bytes += len(jpeg)
            if start + group >= count:
                buffers.append(b"--\r\n")  # closes the body: no log part
                size += 4
            self.body_bytes += size
            self.writes.append([b"%x\r\n" % size, *buffers, b"\r\n"])
        self.writes.append([b"0\r\n\r\n"])

    @classmethod
    def _sendmsg_all(cls, sock, buffers):
        views = [memoryview(b) for b in buffers]
        at = 0
        while at < len(views):
            sent = sock.sendmsg(views[at:at + cls.IOV_MAX])
            while sent:
                if sent >= len(views[at]):
                    sent -= len(views[at])
                    at += 1
                else:
                    views[at] = views[at][sent:]
                    sent = 0

    def run(self):
        """Sends it all and reads the answer: {t_first, t_last, t_response, status, body}."""
        sock = _connect(self.addr)
        try:
            t_first = time.perf_counter()
            try:
                sock.sendall(self.head)
                for buffers in self.writes:
                    self._sendmsg_all(sock, buffers)
            except (BrokenPipeError, ConnectionResetError) as e:
                raise BenchError(f"upload {self.session}: the server closed it ({e}); "
                                 f"its answer: {_try_read(sock)}") from None
            t_last = time.perf_counter()
            status, _, body = _read_response(sock)
            t_response = time.perf_counter()
        finally:
            sock.close()
        return {"t_first": t_first, "t_last": t_last, "t_response": t_response, "status": status,
                "body": _parse(body)}


class AnalyzeUpload:
    """The legacy `POST /analyze`: a `multipart/form-data` body with the whole video as `video`
    and the log as `signal`, with a Content-Length, built beforehand and sent in one write."""

    def __init__(self, addr, video_path, log, log_name="phrase.txt"):
        self.addr = addr
        boundary = _boundary()
        with open(video_path, "rb") as f:
            video = f.read()
        name = os.path.basename(video_path)
        kind = "video/mp4" if name.lower().endswith(".mp4") else "video/x-msvideo"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"video\"; filename=\"{name}\"\r\n"
                f"Content-Type: {kind}\r\n\r\n").encode() + video
        body += (f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"signal\"; filename=\"{log_name}\"\r\n"
                 f"Content-Type: text/plain\r\n\r\n").encode() + log
        body += f"\r\n--{boundary}--\r\n".encode()
        head = (f"POST /analyze HTTP/1.1\r\nHost: {addr[0]}:{addr[1]}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
        self.request = head + body
        self.body_bytes = len(body)

    def run(self):
        """Posts it and waits for the answer: {t_first, t_last, t_response, status, body}."""
        sock = _connect(self.addr)
        try:
            t_first = time.perf_counter()
            try:
                sock.sendall(self.request)
            except (BrokenPipeError, ConnectionResetError) as e:
                raise BenchError(f"/analyze: the server closed the upload ({e}); its answer: {_try_read(sock)}") from None
            t_last = time.perf_counter()
            status, _, body = _read_response(sock)
            t_response = time.perf_counter()
        finally:
            sock.close()
        return {"t_first": t_first, "t_last": t_last, "t_response": t_response, "status": status,
                "body": _parse(body)}


class PisteSocket:
    """A phrase sent as the piste GUI streams it (shared/spec/piste.md): `GET /stream` upgraded
    to a WebSocket, `session_start` and its `session_started` before the phrase's clock starts,
    then per frame a JSON header and the JPEG as one binary message, each frame out on the clock
    (`Pacer`, as `PacedStream`'s) but never before the previous frame's `frame_ack` is in (the
    GUI's stop-and-wait), then `session_end`, the log as a `signal` header and one binary
    message, and the replies up to `process_complete` with the /analyze JSON."""

    # The GUI's own waits: per frame ack, for session_started, for the result.
    ACK_WITHIN, START_WITHIN, RESULT_WITHIN = 10.0, 30.0, 300.0

    def __init__(self, addr, session, jpegs, fps, log, size, log_name="phrase.txt"):
        self.url = f"ws://{addr[0]}:{addr[1]}/stream"
        self.session, self.jpegs, self.fps, self.log, self.log_name = session, jpegs, fps, log, log_name
        self.width, self.height = size
        self.frames = len(jpegs)

    def _reply(self, ws, wanted, within, or_error=False):
        """The next reply of type `wanted` (or an `error`, with `or_error`), answering pings and
        passing over the progress messages on the way; any other reply is a BenchError."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            try:
                message = ws.recv(timeout=max(0.0, left))
            except TimeoutError:
                raise BenchError(f"WebSocket {self.session}: no {wanted} within {within:.0f} s") from None
            if isinstance(message, bytes):
                raise BenchError(f"WebSocket {self.session}: a binary message while awaiting {wanted}")
            reply = json.loads(message)
            kind = reply.get("type")
            if kind == wanted or (or_error and kind == "error"):
                return reply
            if kind == "ping":
                ws.send(json.dumps({"type": "pong"}))
            elif kind not in ("pong", "process_start", "process_progress"):
                raise BenchError(f"WebSocket {self.session}: awaiting {wanted}, got {message[:600]}")

    def run(self, t0=None, verdict_required=True):
        """Connects, opens the session, streams (frame 0 at perf_counter time `t0`, default once
        the session is open) and waits for the verdict. Returns {t_first_frame (the first frame's
        header begun), t_last_frame (the last frame's JPEG sent), t_carried (its frame_ack
        received), t_response (process_complete received), behind_s (the most any frame went out
        after its time), ack_s (each frame's round trip, JPEG sent to ack received), status
        ("process_complete", or "error" when not `verdict_required`), body (its result)}."""
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        try:
            with connect(self.url, max_size=None, open_timeout=self.START_WITHIN, close_timeout=5) as ws:
                return self._phrase(ws, t0, verdict_required)
        except ConnectionClosed as e:
            raise BenchError(f"WebSocket {self.session}: the server closed the socket ({e})") from None

    def _phrase(self, ws, t0, verdict_required):
        s = self.session
        ws.send(json.dumps({"type": "session_start", "session_id": s, "fps": self.fps, "width": self.width,
                            "height": self.height, "expected_frames": self.frames, "video_format": "bgr24"}))
        self._reply(ws, "session_started", self.START_WITHIN)
        pacer = Pacer(self.fps, t0)
        epoch0 = time.time() + (pacer.t0 - time.perf_counter())  # the GUI stamps frames with its own clock
        ack_s = []
        t_first_frame = t_last_frame = t_carried = None
        for i, jpeg in pacer.each(self.jpegs):
            sent = time.perf_counter()
            if i == 0:
                t_first_frame = sent
            ws.send(json.dumps({"type": "frame", "session_id": s, "frame_number": i,
                                "timestamp": round(epoch0 + i / self.fps, 6), "encoding": "jpeg",
                                "quality": 85, "size": len(jpeg)}))
            ws.send(jpeg)
            t_last_frame = time.perf_counter()
            ack = self._reply(ws, "frame_ack", self.ACK_WITHIN)
            t_carried = time.perf_counter()
            if ack.get("frame_number") != i or ack.get("status") != "received":
                raise BenchError(f"WebSocket {s}: frame {i} acknowledged as {json.dumps(ack)[:300]}")
            ack_s.append(t_carried - t_last_frame)
        ws.send(json.dumps({"type": "session_end", "session_id": s, "total_frames": self.frames}))
        self._reply(ws, "session_ended", self.ACK_WITHIN)
        ws.send(json.dumps({"type": "signal", "session_id": s, "filename": self.log_name, "size": len(self.log)}))
        ws.send(self.log)
        self._reply(ws, "signal_ack", self.ACK_WITHIN)
        done = self._reply(ws, "process_complete", self.RESULT_WITHIN, or_error=not verdict_required)
        t_response = time.perf_counter()
        return {"t_first_frame": t_first_frame, "t_last_frame": t_last_frame, "t_carried": t_carried,
                "t_response": t_response, "behind_s": pacer.behind_s, "ack_s": ack_s,
                "status": done["type"], "body": done.get("result")}
