"""Transport benchmark: frames per second and latency delivered to Python clients, the
server's CPU per frame as subscribers are added, and the effect of one stalled subscriber.

    python bench/bench_transport.py               # the full matrix (a few minutes)
    python bench/bench_transport.py --quick       # 1920x1080 ipc only
    python bench/bench_transport.py --json out.json

Each configuration runs a server process (a synthetic source published as fast as the
server can encode it, or paced with --fps), optionally a relay process, and subscriber
processes each running several Client threads. Sources (1920x1080 or 640x480, about 5 %
of pixels changed per frame): "vline", a 2.5 %-wide solid line sweeping across a
background with grid rows; "sine", a thick sine curve spanning the width, whose damage
covers many cells and costs the encoder several times more; and the reference scenarios
"line1", "line4" and "heavy" (ANCHORS.md section 5), rendered by Agg before timing, in the
full matrix.
Server CPU is the server process's own CPU time (all its threads) over the measured
window, divided by the frames it published.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

SIZES = {"640x480": (640, 480), "1920x1080": (1920, 1080)}
REFERENCE = ("line1", "line4", "heavy")


def synthetic(name, w, h, n=16):
    if name in REFERENCE:
        # The reference scenarios (ANCHORS.md section 5), rendered by Agg once up front.
        from fastfig import scenarios
        return scenarios.make(name, (w, h)).frames(n)
    bg = np.full((h, w, 4), 255, np.uint8)
    bg[:: h // 8, :, :3] = 200
    frames = []
    if name == "vline":
        lw = max(4, int(0.025 * w))
        for i in range(n):
            img = bg.copy()
            x0 = (i * (lw + 7)) % (w - lw - 2)
            img[:, x0, :3] = img[:, x0 + lw + 1, :3] = (150, 190, 220)
            img[:, x0 + 1:x0 + lw + 1, :3] = (31, 119, 180)
            frames.append(img)
    else:
        t = max(2, int(0.025 * h))
        x = np.arange(w)
        for i in range(n):
            img = bg.copy()
            yc = (h / 2 + 0.35 * h * np.sin(2 * np.pi * (x / w * 2 + i / n))).astype(int)
            rows = np.clip(yc[None, :] + np.arange(-t // 2, t - t // 2)[:, None], 0, h - 1)
            img[rows, np.broadcast_to(x, rows.shape), :3] = (31, 119, 180)
            frames.append(img)
    return frames


# -- processes ----------------------------------------------------------------------------

def run_server(transport, source, size, fps):
    import asyncio

    from fastfig import Server
    w, h = SIZES[size]
    frames = synthetic(source, w, h)

    async def main():
        async with Server(transport) as server:
            stream = server.add_figure("1", w, h)
            stream.publish(frames[0])
            print("ready", server.address, flush=True)
            loop = asyncio.get_running_loop()
            running = asyncio.Event()
            stop = asyncio.Event()

            def on_stdin():
                line = sys.stdin.readline().strip()
                if line == "go":
                    running.set()
                elif line in ("stop", ""):
                    stop.set()
            loop.add_reader(sys.stdin.fileno(), on_stdin)
            i = 1
            # Warm up at the same rate until told to measure.
            period = 1 / fps if fps else 0
            measured = None
            next_at = time.monotonic()
            while not stop.is_set():
                if running.is_set() and measured is None:
                    measured = (time.process_time(), time.monotonic(), stream.frames_published)
                stream.publish(frames[i % len(frames)])
                i += 1
                if period:
                    next_at += period
                    await asyncio.sleep(max(0, next_at - time.monotonic()))
                else:
                    await asyncio.sleep(0)
            cpu0, t0, n0 = measured or (time.process_time(), time.monotonic(), stream.frames_published)
            n = stream.frames_published - n0
            print(json.dumps({"frames": n, "cpu": time.process_time() - cpu0,
                              "wall": time.monotonic() - t0,
                              "snapshot_encodes": stream.snapshot_encodes}), flush=True)
    asyncio.run(main())


def run_subscribers(address, n):
    from fastfig import Client
    clients = [Client(address, figure="1", timeout=10) for _ in range(n)]
    stop = threading.Event()

    def consume(c):
        for _ in c.frames(timeout=None):
            if stop.is_set():
                return
    threads = [threading.Thread(target=consume, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "go":
            for c in clients:
                c.stats(reset=True)
        elif line.strip() == "stop":
            stats = [c.stats() for c in clients]
            stop.set()
            print(json.dumps(stats), flush=True)
            break
    os._exit(0)   # clients are mid-iteration in their threads


def _spawn(*args):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _expect(proc, prefix):
    line = proc.stdout.readline()
    if not line.startswith(prefix):
        raise RuntimeError(f"child said {line!r}")
    return line.split()[1:] if prefix == "ready" else line


def measure(transport, source, size, subscribers, relay=False, stalled=False, fps=0,
            seconds=3.0, per_process=4):
    procs = []
    try:
        server = _spawn("_server", transport, source, size, str(fps))
        procs.append(server)
        address = _expect(server, "ready")[0]
        if relay:
            r = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "relay", "--connect",
                                  address, "--bind", transport], stdout=subprocess.PIPE,
                                 text=True)
            procs.append(r)
            address = r.stdout.readline().split(" -> ")[1].split()[0]
        subs = []
        left = subscribers
        while left:
            k = min(per_process, left)
            subs.append(_spawn("_subscribers", address, str(k)))
            left -= k
        procs += subs
        for s in subs:
            _expect(s, "ready")
        stalled_proc = None
        if stalled:
            stalled_proc = _spawn("_subscribers", address, "1")
            procs.append(stalled_proc)
            _expect(stalled_proc, "ready")
            os.kill(stalled_proc.pid, signal.SIGSTOP)   # it stops reading, mid-stream
        time.sleep(0.5)   # warm up
        for p in [server, *subs]:
            p.stdin.write("go\n")
            p.stdin.flush()
        time.sleep(seconds)
        for s in subs:
            s.stdin.write("stop\n")
            s.stdin.flush()
        client_stats = [st for s in subs for st in json.loads(s.stdout.readline())]
        server.stdin.write("stop\n")
        server.stdin.flush()
        server_stats = json.loads(server.stdout.readline())
    finally:
        for p in procs:
            try:
                os.kill(p.pid, signal.SIGCONT)
            except OSError:
                pass
            p.kill()
            p.wait()
    lat = [s["latency_median"] for s in client_stats if s["latency_median"] is not None]
    return {"transport": transport, "source": source, "size": size,
            "subscribers": subscribers, "relay": relay, "stalled": stalled,
            "server_fps": server_stats["frames"] / server_stats["wall"],
            "server_cpu_ms_per_frame": 1e3 * server_stats["cpu"] / max(server_stats["frames"], 1),
            "server_cpu_fraction": server_stats["cpu"] / server_stats["wall"],
            "client_fps_median": statistics.median(s["fps"] for s in client_stats),
            "client_fps_min": min(s["fps"] for s in client_stats),
            "latency_median_ms": 1e3 * statistics.median(lat) if lat else None,
            "latency_p95_ms": 1e3 * max(s["latency_p95"] or 0 for s in client_stats),
            "gaps": sum(s["gaps"] for s in client_stats),
            "snapshots": sum(s["snapshots"] for s in client_stats)}


def show(r):
    print(f"{r['size']:>9} {r['source']:>5} {r['transport']:>3} "
          f"{'relay' if r['relay'] else 'direct':>6} subs={r['subscribers']:>2}"
          f"{' +stalled' if r['stalled'] else '':9} server {r['server_fps']:6.0f} fps "
          f"{r['server_cpu_ms_per_frame']:5.2f} ms CPU/frame | client {r['client_fps_median']:6.0f} "
          f"fps (min {r['client_fps_min']:4.0f}), latency {r['latency_median_ms'] or 0:5.2f} ms "
          f"median, {r['latency_p95_ms']:6.2f} p95 | gaps {r['gaps']} snapshots {r['snapshots']}",
          flush=True)
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    results = []
    S = args.seconds

    # 1. Throughput and latency to one client (the headline target: 1080p over ipc).
    for source in ("vline", "sine"):
        results.append(show(measure("ipc", source, "1920x1080", 1, seconds=S)))
    # 2. The matrix: the reference scenarios x sizes x transports x subscribers x
    #    direct/relay, each published as fast as the server encodes it.
    if not args.quick:
        for source in ("line1", "heavy"):
            for size in SIZES:
                for transport in ("tcp", "ipc"):
                    for relay in (False, True):
                        for n in (1, 4, 16):
                            results.append(show(measure(transport, source, size, n,
                                                        relay=relay, seconds=S)))
    # 3. Server CPU per frame, 1 vs 16 subscribers, at a pace every client can follow.
    cpu = {n: show(measure("ipc", "vline", "1920x1080", n, fps=60, seconds=S))
           for n in (1, 16)}
    # 4. One stalled subscriber among 4 (paced so that the others are not CPU-starved).
    base = show(measure("ipc", "vline", "1920x1080", 4, fps=100, seconds=S))
    stalled = show(measure("ipc", "vline", "1920x1080", 4, fps=100, stalled=True, seconds=S))
    results += [*cpu.values(), base, stalled]

    head = results[0]
    summary = {
        "1080p_ipc_1_client_fps": head["client_fps_median"],
        "1080p_ipc_1_client_latency_median_ms": head["latency_median_ms"],
        "cpu_ratio_16_vs_1": cpu[16]["server_cpu_ms_per_frame"] / cpu[1]["server_cpu_ms_per_frame"],
        "stalled_fps_change": stalled["client_fps_median"] / base["client_fps_median"] - 1,
    }
    print("\nsummary:", json.dumps(summary, indent=1))
    print(f"targets: >= 500 fps: {summary['1080p_ipc_1_client_fps']:.0f}; latency < 5 ms: "
          f"{summary['1080p_ipc_1_client_latency_median_ms']:.2f}; CPU 16/1 < 2: "
          f"{summary['cpu_ratio_16_vs_1']:.2f}; stalled change < 10 %: "
          f"{100 * summary['stalled_fps_change']:+.1f} %")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "summary": summary}, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_server":
        run_server(sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_subscribers":
        run_subscribers(sys.argv[2], int(sys.argv[3]))
    else:
        main()
