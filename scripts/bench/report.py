"""BENCHMARKS.md and the PASS/MISS lines, from the results that go into bench.json."""


def _num(value, digits):
    return "–" if value is None else f"{value:.{digits}f}"


def _row(label, fig, digits, unit=""):
    if not isinstance(fig, dict) or "median" not in fig:
        return f"| {label} | – | – | – | – |"
    runs = ", ".join(_num(v, digits) for v in fig["runs"])
    return (f"| {label} | **{_num(fig['median'], digits)}**{unit} | {_num(fig['min'], digits)} | "
            f"{_num(fig['max'], digits)} | {runs} |")


_HEAD = "| | median | min | max | runs |\n|---|---|---|---|---|"


def _failed(part):
    if isinstance(part, dict) and "error" in part:
        return f"**Not measured: the section failed:** `{part['error']}`\n"
    if part is None:
        return "Not run (`--only` left it out).\n"
    return None


def _cell(text, limit=160):
    """A message fit for one table cell: its first line, shortened, without pipes."""
    line = str(text).strip().splitlines()[0] if str(text).strip() else ""
    line = line.replace("|", "/")
    return line if len(line) <= limit else line[:limit - 1] + "…"


def goal_lines(results):
    lines = []
    for g in results["goals"]:
        shown = g["shown"] or "not measured"
        lines.append(f"{g['result']:7}  {g['goal']}: {shown}")
    return "\n".join(lines)


def _spread(fig, digits):
    if not isinstance(fig, dict) or "median" not in fig:
        return "–"
    return f"**{_num(fig['median'], digits)}** ({_num(fig['min'], digits)}–{_num(fig['max'], digits)})"


def _piste(p):
    out = ["", "## The piste GUI's WebSocket vs `POST /stream`", ""]
    failed = _failed(p)
    if failed:
        return out + [failed]
    out += ["| phrase | verdict after the last frame, s | frames/s carried | most behind the clock, s | "
            "frame ack round trip, ms |", "|---|---|---|---|---|"]
    for rate, frames in p["frames"].items():
        for transport, label in (("websocket", "WebSocket, stop-and-wait"), ("post", "`POST /stream`, chunked")):
            case = p[f"{transport}_{rate}"]
            out.append(f"| {label}, {rate[:-3]} fps ({frames} frames) | {_spread(case['verdict_s'], 2)} | "
                       f"{_spread(case['carried_fps'], 2)} | {_spread(case['behind_clock_s'], 3)} | "
                       f"{_spread(case.get('ack_ms'), 1)} |")
    loads = "; ".join(f"{k} {' '.join(f'{x:.2f}' for x in v)}" for k, v in p["load_average"].items())
    other = p["other_work"]
    commit = f"`{p['git_commit']}`" + (" with uncommitted changes" if p.get("git_dirty") else "")
    out += [
        "",
        "Each cell: the median of the runs (min–max); every run is in `bench.json` under `piste`.",
        "",
        f"- Phrase: {p['clip']}; log: {p['log']}; model: {p['model']}.",
        f"- WebSocket: {p['websocket']}.",
        f"- POST: {p['post']}.",
        f"- Pacing: {p['pacing']}. Order: {p['order']}.",
        f"- Measured, by the client: {p['measured']}.",
        f"- Server: {p['server']}.",
        f"- Measured {p['date']} at {commit} (binary built {p['binary_built']}); load average (1, 5, 15 min): "
        f"{loads}; other work on the machine during the runs: {other['cpu_seconds']:.0f} CPU-s, "
        f"{other['share_of_machine'] * 100:.0f}% of its capacity ({other['note']}).",
    ]
    return out


def markdown(r):
    m, sw = r["machine"], r["software"]
    commit = r["git_commit"] or "unknown"
    if r["git_dirty"]:
        commit += " (with uncommitted changes)"
    runs = (f"{'quick' if r['quick'] else 'full'}: {r['runs_per_figure']} run(s) per figure, "
            f"{r['pose_runs']} for pose")
    loads = r["load_average"]
    load_text = ", ".join(f"{k} {v[0]:.2f}" for k, v in loads.items())
    out = [
        "# Benchmarks",
        "",
        "Written by `scripts/bench.sh` (`--quick` for a short run); run it again rather than editing this file.",
        "Everything below ran in one run, side by side, on the machine described here.",
        "",
        "| | |",
        "|---|---|",
        f"| date (UTC) | {r['date']} |",
        f"| git commit | `{commit}` |",
        f"| command | `{r['command']}` |",
        f"| machine | {m['cpu_model']}, {m['cores']} cores ({m['cores_usable']} usable), {m['ram_gb']} GB RAM, "
        f"Linux {m['kernel']}, no GPU |",
        f"| software | Python {sw['python']}, torch {sw['torch']}, Ultralytics {sw['ultralytics']}"
        + (f", OpenVINO {sw['openvino']} (CPU default precision {sw.get('openvino_cpu_default_precision')})"
           if sw.get("openvino") else "")
        + (f", ONNX Runtime {sw['onnxruntime']}" if sw.get("onnxruntime") else "") + " |",
        f"| runs | {runs} |",
        f"| 1-minute load average | {load_text} (at the start and after each section: other work on the machine "
        "shows here and adds noise) |",
        f"| libtorch threads in the servers | {r['server_torch_threads']} (its default under this environment) |",
        f"| wall time | {r['total_seconds']:.0f} s |",
        f"| other work on the machine | "
        + (f"{r['other_work']['cpu_seconds']:.0f} CPU-s, {r['other_work']['share_of_machine'] * 100:.0f}% of its "
           "capacity during the run (about: busy time not this benchmark's, see bench.json) |"
           if r.get("other_work") else "– |"),
        "",
        "Run: `scripts/bench.sh` (5 runs per figure), `scripts/bench.sh --quick` (1 run per figure, 2 for pose, "
        "30 pose frames instead of the clip's 230; under 15 minutes on 2 cores) or `scripts/bench.sh --runs N`. "
        "It runs `scripts/setup.sh`, sources `scripts/env.sh` and builds with `cargo build --release` first; its "
        "servers listen on 127.0.0.1 only and are stopped when it ends.",
        "",
        "Each figure is the **median** of its runs, with the min, the max and every run; in `bench.json` each is "
        "`{\"median\", \"min\", \"max\", \"runs\": [...]}`. Ratios (pose speedup, stream/analyze) are taken run by "
        "run (the two sides of a run measured back to back) and then summarised the same way. The goals are "
        "checked on the medians.",
        "",
    ]
    other = r.get("other_work")
    if other and other["share_of_machine"] > 0.05:
        out += [f"**Other work shared the machine during this run:** {other['cpu_seconds']:.0f} CPU-seconds of "
                f"processes not this benchmark's, {other['share_of_machine'] * 100:.0f}% of its {m['cores_usable']} "
                "cores over the run. The figures carry that noise; compare runs made on a quiet machine.", ""]
    out += [
        "## Goals",
        "",
        "| goal (on the medians; ingest on the 10,000-frame upload) | measured | result |",
        "|---|---|---|",
    ]
    for g in r["goals"]:
        out.append(f"| {g['goal']} | {g['shown'] or '–'} | **{g['result']}** |")

    pose = r.get("pose")
    out += ["", "## Pose: ours vs Ultralytics' predict, CPU", ""]
    failed = _failed(pose)
    if failed:
        out.append(failed)
    else:
        t = pose["threads"]
        default = pose.get("default_path") or {}
        out += [
            _HEAD,
            _row(f"ours, default path ({default.get('name', '–')}), ms/frame", pose["ours_ms_per_frame"], 1),
        ]
        for name, path in (pose.get("paths") or {}).items():
            if "error" in path:
                out.append(f"| ours, {name}, ms/frame | failed: {_cell(path['error'])} | | | |")
            else:
                same = " (the default path's runs)" if default.get("key") == name else ""
                out.append(_row(f"ours, {name}: `{path['flags']}`{same}, ms/frame", path["ms_per_frame"], 1))
        peers = pose.get("peers") or {}
        labels = {"ultralytics_pt": "Ultralytics predict of the `.pt`",
                  "ultralytics_openvino": "Ultralytics predict of its OpenVINO export",
                  "ultralytics_onnx": "Ultralytics predict of its ONNX export"}
        if peers:
            for name, peer in peers.items():
                label = labels.get(name, name)
                if "inference_precision" in peer:
                    label += f" ({peer['inference_precision']})"
                if "error" in peer:
                    out.append(f"| {label}, ms/frame | failed: {_cell(peer['error'])} | | | |")
                else:
                    out.append(_row(f"{label}, ms/frame", peer["ms_per_frame"], 1))
        else:
            out.append(_row("Ultralytics predict of the `.pt`, ms/frame", pose["ultralytics_ms_per_frame"], 1))
        out.append(_row("speedup against the `.pt` (its ms / ours)", pose["speedup"], 2, "×"))
        if pose.get("speedup_vs_fastest_export"):
            out.append(_row(f"speedup against the fastest export, {pose['fastest_export']} (its ms / ours)",
                            pose["speedup_vs_fastest_export"], 2, "×"))
        own = pose.get("ultralytics_own_threads")
        if own:
            out += [
                _row(f"Ultralytics `.pt` with its own thread choice ({own['threads']}), ms/frame", own["ms_per_frame"], 1),
                _row("speedup against that", own["speedup"], 2, "×"),
            ]
        parity = pose.get("parity") or {}
        rows = [(name, against, p) for name, entry in parity.items() for against, p in entry.items()]
        rows += [(name, "vs_ultralytics_pt", peer["parity_vs_ultralytics_pt"])
                 for name, peer in peers.items() if "parity_vs_ultralytics_pt" in peer]
        if rows:
            out += ["", f"Parity (the bar: {pose.get('parity_bar', '')}):", "",
                    "| output | against | frames with another count | unmatched people | keypoints, max px | "
                    "p99 px | meets the bar |", "|---|---|---|---|---|---|---|"]
            for name, against, p in rows:
                out.append(f"| {name} | {against[3:]} | {p['frames_count_differs']} of {p['frames']} | "
                           f"{p['unmatched']} | {_num(p['keypoint_px_max'], 3)} | {_num(p['keypoint_px_p99'], 3)} | "
                           f"{'yes' if p['meets_bar'] else '**no**'} |")
        out += [
            "",
            f"- Frames: the first {pose['frames']} frames of `data/demo.mp4` scaled to {pose['frame_size']} by "
            "ffmpeg and stored as PNG, so all read the very same pixels; decoding is timed by none.",
            f"- Ours: {pose['ours']}."
            + (f" Default path: {default['name']} (\"{default['described_as']}\"), timed {default['timed']}."
               if default else ""),
            f"- Ultralytics: {pose['ultralytics']}."
            + (f" Exports: {pose['ultralytics_exports']}." if pose.get("ultralytics_exports") else ""),
            f"- Threads: {t['ours']} for ours, {t['ultralytics']} for Ultralytics"
            + (f", runtimes of the peers {', '.join(f'{k} {v}' for k, v in t['peers'].items())}" if t.get("peers") else "")
            + f" ({t['setting']}; {t['note']}).",
            f"- People found per frame (a check that both did the same work): ours {pose['people_per_frame']['ours']}, "
            f"Ultralytics {pose['people_per_frame']['ultralytics']}.",
        ]
        ov = peers.get("ultralytics_openvino") or {}
        if ov.get("inference_precision"):
            out.append(f"- Ultralytics runs its OpenVINO export at OpenVINO's default CPU precision, which here is "
                       f"**{ov['inference_precision']}** (it asks for none; OpenVINO picks bf16 on CPUs with "
                       "AVX512-BF16 or AMX), so that peer is not an f32 run.")
        if default.get("note"):
            out.append(f"- **Note:** {default['note']}.")

    v = r.get("verdict_after_last_byte")
    out += ["", "## Verdict after the last byte: `/stream` vs `/analyze`", ""]
    failed = _failed(v)
    if failed:
        out.append(failed)
    else:
        out += [
            _HEAD,
            _row("`/stream`, 15 fps as captured, s", v["stream_s"], 2),
            _row("`/analyze`, the whole clip, s", v["analyze_s"], 2),
            _row("ratio (stream / analyze)", v["ratio"], 3, "×"),
            _row("`/stream`, the clip at its own 30 fps, s", v["stream_30fps_s"], 2),
            _row("`/stream` 15 fps, as the server reports it, s", v["stream_server_reported_s"], 2),
        ]
        if v.get("stream_30fps_1280x720_s"):
            out.append(_row("`/stream`, the clip scaled to 1280×720 at 30 fps, s", v["stream_30fps_1280x720_s"], 2))
        out += [
            "",
            f"- Clip: {v['clip']}; log: {v['log']}; model: {v['model']}; "
            f"server with fisheye {'on (the production default)' if v['fisheye'] else 'off'}.",
            f"- `/stream`: {v['stream']}. At 30 fps: {v['stream_30fps']}."
            + (f" At 1280×720: {v['stream_30fps_1280x720']}." if v.get("stream_30fps_1280x720") else ""),
            f"- `/analyze`: {v['analyze']}.",
            f"- Measured: {v['measured']}, by the client.",
            "- One server for this section and the next, started once and warmed by a short untimed stream.",
        ]

    out += _piste(r.get("piste"))

    i = r.get("ingest")
    out += ["", "## Ingest: analysis off, loopback", ""]
    failed = _failed(i)
    if failed:
        out.append(failed)
    else:
        out += [
            _HEAD,
            _row("upload, MB/s (10,000 frames)", i["mb_per_s"], 0),
            _row("upload, frames/s (10,000 frames)", i["frames_per_s"], 0),
            _row("upload, MB/s (1,000 frames)", i["mb_per_s_1k"], 0),
            _row("server RSS after 1,000 frames, MB", i["rss_mb_1k"], 0),
            _row("server RSS after 10,000 frames, MB", i["rss_mb_10k"], 0),
            _row("server peak RSS, 1,000 frames, MB", i["peak_rss_mb_1k"], 0),
            _row("server peak RSS, 10,000 frames, MB", i["peak_rss_mb_10k"], 0),
            _row("server RSS once ready, MB", i["rss_mb_ready"], 0),
            "",
            f"- Server: {i['server']}.",
            f"- Upload: {i['upload']}; {i['bytes_1k'] / 1e6:.0f} MB for 1,000 frames, "
            f"{i['bytes_10k'] / 1e6:.0f} MB for 10,000.",
            f"- Measured: {i['measured']}.",
        ]
        if i.get("note"):
            out.append(f"- **Note:** {i['note']}.")

    c = r.get("concurrency")
    out += ["", "## Concurrent streams at capture rate", ""]
    failed = _failed(c)
    if failed:
        out.append(failed)
    else:
        out += ["| streams | analysed frames/s, all streams (median, min–max) | verdict after the last byte, s "
                "(median, min–max) |", "|---|---|---|"]
        for row in c:
            a, s = row["analysed_fps_total"], row["verdict_s"]
            out.append(f"| {row['streams']} | **{a['median']:.1f}** ({a['min']:.1f}–{a['max']:.1f}) | "
                       f"**{s['median']:.2f}** ({s['min']:.2f}–{s['max']:.2f}) |")
        out += [
            "",
            "- Each stream is the 15 fps phrase of the previous section (its own session id), all started at the "
            "same instant and paced by the clock; same server (fisheye on).",
            "- Analysed frames/s: the frames analysed by all streams over the seconds from the first byte of the "
            "first stream to the last verdict. Verdict: per run, the median over the streams of the seconds from a "
            "stream's last byte to its verdict.",
        ]

    t = r.get("triton")
    if t is not None:
        out += ["", "## The remote hop: pose local vs on Triton", ""]
        failed = _failed(t)
        if failed:
            out.append(failed)
        else:
            out += ["| pose | analysed frames/s, frames as fast as they go (median, min–max) | verdict after the last "
                    "byte at capture rate, s (median, min–max) |", "|---|---|---|"]
            for name in ("local", "triton_grpc", "triton_http"):
                a, v = t[name]["analysed_fps"], t[name]["verdict_s"]
                out.append(f"| {name} | **{a['median']:.1f}** ({a['min']:.1f}–{a['max']:.1f}) | "
                           f"**{v['median']:.2f}** ({v['min']:.2f}–{v['max']:.2f}) |")
            out += ["", f"- {t['server']}; Triton: {t['triton_server']}.", f"- Fast: {t['fast']}. Paced: {t['paced']}.",
                    f"- Measured {t['date']} at `{t['git_commit']}` (runs alternate between the three servers)."]

    out += ["", "## GPU", "", f"{r['gpu_note']}", ""]
    return "\n".join(out) + "\n"
