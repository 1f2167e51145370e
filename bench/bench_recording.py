"""Recording benchmark (RECORDING.md): what ``Client.record`` costs a client, what a
recording weighs, and how fast it seeks, at 1920x1080.

    python bench/bench_recording.py               # line1 and heavy, 8 windows of 5 s
    python bench/bench_recording.py --quick       # 2 s windows

The server is bench_transport's child process: the reference scenario as a blitting
FuncAnimation streamed by fastfig, rendering as fast as its consumer takes frames. One
default Client in this process takes every frame it can, in alternating windows without
and with a Recorder attached (the same client, server and run), so the two frame rates
are measured under the same load. Then the recordings are read back: bytes per frame
against raw RGBA, and the time of ``image(i)`` for random frames (each a seek: a
checkpoint or keyframe decoded, then the deltas after it).
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.bench_transport import ServerProcess  # noqa: E402


def take(client, seconds):
    """(frames per second the client takes over seconds, the client thread's CPU ms per
    frame): frames are packets applied; the CPU is what receiving, decoding and (with a
    recorder) writing cost this thread, whatever the server's pace."""
    before = client.stats()["received"]
    cpu = time.thread_time()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        client.next_frame(0.5)
    frames = client.stats()["received"] - before
    return frames / seconds, 1000 * (time.thread_time() - cpu) / max(frames, 1)


def run(name, size, windows, seconds, tmp):
    import fastfig
    from fastfig.recording.format import open_recording
    server = ServerProcess(name, size)
    paths = []
    plain, recording = [], []
    try:
        with fastfig.Client(server.address, timeout=30) as client:
            take(client, 1.0)                                   # warm up
            for k in range(windows):
                if k % 4 in (1, 2):                 # plain, rec, rec, plain, plain, ...
                    path = os.path.join(tmp, f"{name}-{k}.ffrec")
                    with client.record(path):
                        recording.append(take(client, seconds))
                    paths.append(path)
                else:
                    plain.append(take(client, seconds))
    finally:
        server.close()
    frames = nbytes = 0
    seeks = []
    for path in paths:
        with open_recording(path) as rec:
            frames += len(rec)
            nbytes += os.path.getsize(path)
            w, h = rec.meta["width"], rec.meta["height"]
            order = list(range(len(rec)))
            random.Random(0).shuffle(order)
            for i in order[:40]:
                rec._decoder = None                 # a seek, not the next frame
                t = time.perf_counter()
                rec.image(i)
                seeks.append(time.perf_counter() - t)
    checkpoint = _checkpoint_cost(paths[-1])
    raw = w * h * 4
    windows = {"plain": plain, "recording": recording}
    med = {k: statistics.median(fps for fps, _ in v) for k, v in windows.items()}
    cpu = {k: statistics.median(ms for _, ms in v) for k, v in windows.items()}
    return {"scenario": name, "size": size, "plain_fps": med["plain"],
            "recording_fps": med["recording"], "ratio": med["recording"] / med["plain"],
            "plain_cpu_ms": cpu["plain"], "recording_cpu_ms": cpu["recording"],
            "windows_plain": plain, "windows_recording": recording,
            "frames": frames, "bytes_per_frame": nbytes / frames,
            "raw_bytes_per_frame": raw, "raw_over_recorded": raw * frames / nbytes,
            "seek_median_ms": 1000 * statistics.median(seeks),
            "seek_max_ms": 1000 * max(seeks), "checkpoint_encode_ms": checkpoint}


def _checkpoint_cost(path):
    """Median ms of the recorder's keyframe encode of a recorded 1080p image."""
    from fastfig.recording.format import open_recording
    from fastfig.recording.recorder import Recorder, metadata
    with open_recording(path) as rec:
        image = rec.image(len(rec) - 1)
    with tempfile.TemporaryDirectory() as tmp:
        with Recorder(os.path.join(tmp, "x.ffrec"), metadata("1", 1, 1)) as recorder:
            times = []
            for _ in range(7):
                t = time.perf_counter()
                recorder.keyframe_of(image, 1, 1, 0)
                times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default="line1,heavy")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    seconds = 2.0 if args.quick else 5.0
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            r = run(name, "1920x1080", 8, seconds, tmp)
            results.append(r)
            print(f"{name} 1920x1080: client {r['plain_fps']:.1f} frames/s plain, "
                  f"{r['recording_fps']:.1f} recording (x{r['ratio']:.2f}); client CPU "
                  f"{r['plain_cpu_ms']:.2f} -> {r['recording_cpu_ms']:.2f} ms/frame; "
                  f"{r['bytes_per_frame'] / 1e3:.1f} KB/frame recorded vs "
                  f"{r['raw_bytes_per_frame'] / 1e6:.2f} MB raw (1/{r['raw_over_recorded']:.0f}); "
                  f"seek median {r['seek_median_ms']:.1f} ms (max {r['seek_max_ms']:.1f}); "
                  f"checkpoint encode {r['checkpoint_encode_ms']:.1f} ms", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
