"""Transport benchmark (transport version 2, credits and rendering on demand): what the
README's Python client gets with its default arguments, and what the server pays.

    python bench/bench_transport.py               # all four, about 2.5 minutes
    python bench/bench_transport.py --quick       # 10 s windows instead of 60 s
    python bench/bench_transport.py --only readme,stall --json out.json

The server is a child process serving the reference scenario line1
(fastfig/scenarios.py) at 640x480 as a blitting FuncAnimation with interval 0, streamed
by ``fastfig.animate``: it renders as fast as consumers take frames, and only then.
Subscribers are child processes running the README snippet::

    with fastfig.Client(address) as client:
        for frame in client.frames(timeout=5): ...

with default arguments, either as fast as they can or taking 30 frames/s. Processes
follow one schedule of wall-clock times fixed by the driver, so windows line up without
talking. Server CPU is the server process's utime + stime (/proc) over a window.

1. readme: one subscriber for --seconds: frames/s and the longest gap between frames;
   the same through ``fastfig relay`` (--relay).
2. stall: two subscribers; the second stops reading for 4 s. The first's frame rate while
   it does vs the 4 s before; the time from its resume until it holds a frame rendered
   after the resume.
3. cpu30: server CPU with one subscriber taking 30 frames/s vs one taking all it can.
4. fanout: server CPU with 16 subscribers vs 1, each taking 30 frames/s.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


# -- children ------------------------------------------------------------------------------

def server_child(name, size, interval):
    from matplotlib.animation import FuncAnimation

    import fastfig
    from fastfig.scenarios import make

    fastfig.configure("tcp")
    sc = make(name, size)
    print(fastfig.get_server().address, flush=True)
    anim = FuncAnimation(sc.fig, sc.step, interval=interval, blit=True,
                         cache_frame_data=False)

    def report(*_):
        canvas = sc.fig.canvas
        out = dict(canvas._frames.stats()) if canvas._frames is not None else {}
        if canvas._stream is not None:
            out.update(canvas._stream.stats())
        print(json.dumps(out), flush=True)
    signal.signal(signal.SIGUSR1, report)   # the driver asks at a window's ends
    try:
        fastfig.animate(anim, block=True)
    except (KeyboardInterrupt, SystemExit):
        pass


def subscriber_child(address, clients, rate):
    """clients Client threads; rate: frames/s taken (0: all it can). Says "ready" once
    all have a first frame, then reads "start end stall_from stall_to" (wall clock;
    a stall window where the first client reads nothing, or 0 0) and reads frames from
    start to end. Prints one JSON list of per-client results."""
    import fastfig
    results = [None] * clients
    cs = [fastfig.Client(address) for _ in range(clients)]
    for c in cs:
        c.next_frame(30)
    print("ready", flush=True)
    start, end, stall_from, stall_to = map(float, sys.stdin.readline().split())

    def run(k, client):
        times, encoded = [], []
        stalls = k == 0 and stall_to > stall_from
        resumed_at = None
        current_after = None
        while time.time() < start:
            client.next_frame(0.05)
        next_at = time.time()
        for f in client.frames(timeout=5):
            now = time.time()
            if now >= end:
                break
            times.append(now)
            encoded.append(f.encoded_at)
            if resumed_at is not None and current_after is None and f.encoded_at >= resumed_at:
                current_after = now - resumed_at
            if stalls and resumed_at is None and now >= stall_from:
                time.sleep(max(0.0, stall_to - time.time()))   # reads nothing meanwhile
                resumed_at = time.time()
            if rate:
                next_at += 1.0 / rate
                time.sleep(max(0.0, next_at - time.time()))
        results[k] = {"times": times, "resume_to_current": current_after,
                      "stats": client.stats(), "last_error": repr(client.last_error),
                      "credits": client._inbox.stats.credits if client._inbox else None,
                      "unsent": client._inbox.stats.unsent if client._inbox else None}
    threads = [threading.Thread(target=run, args=(k, c)) for k, c in enumerate(cs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for c in cs:
        c.close()
    print(json.dumps(results), flush=True)


# -- the driver ------------------------------------------------------------------------------

def spawn(*args):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)


class ServerProcess:
    def __init__(self, name="line1", size="640x480", relay=False, interval=0):
        self.proc = spawn("_server", name, size, str(interval))
        self.address = self.proc.stdout.readline().strip()
        self.relay = None
        if relay:
            self.relay = subprocess.Popen(
                [sys.executable, "-m", "fastfig.cli", "relay", "--connect", self.address],
                stdout=subprocess.PIPE, text=True, cwd=ROOT)
            line = self.relay.stdout.readline()
            self.address = line.split(" -> ")[1].split()[0]

    def cpu(self):
        """Seconds of CPU the server process has used."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stats(self):
        """Its figure's frame loop and stream counters now."""
        self.proc.send_signal(signal.SIGUSR1)
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the server process ended")
            if line.startswith("{"):   # (fastfig prints what it serves, too)
                return json.loads(line)

    def close(self):
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait()
        self.proc.kill()
        self.proc.wait()


def subscribers(address, n, rate, per_process=4):
    """Subscriber processes, once all their clients hold a first frame."""
    procs = []
    while n > 0:
        k = min(per_process, n)
        procs.append(spawn("_sub", address, str(k), str(rate)))
        n -= k
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise RuntimeError("a subscriber process did not start")
    return procs


def schedule(procs, seconds, stall=None, first_seconds=None):
    """Start the subscribers' window now (plus a moment); stall=(from, to) in seconds
    into it, for the first process's first client, whose window may end earlier
    (first_seconds). Returns the window's start."""
    start = time.time() + 0.5
    for k, p in enumerate(procs):
        s0, s1 = (start + stall[0], start + stall[1]) if stall and k == 0 else (0, 0)
        end = start + (first_seconds if k == 0 and first_seconds else seconds)
        p.stdin.write(f"{start!r} {end!r} {s0!r} {s1!r}\n")
        p.stdin.flush()
    return start


def collect(procs):
    out = []
    for p in procs:
        line, _ = p.communicate(timeout=120)
        out += json.loads(line.strip().splitlines()[-1])
    return out


def fps_between(times, t0, t1):
    return sum(t0 <= t < t1 for t in times) / (t1 - t0)


def max_gap(times):
    return max((b - a for a, b in zip(times, times[1:])), default=None)


def cpu_window(server, t0, t1):
    """The server's CPU fraction and frames published per second from t0 to t1."""
    time.sleep(max(0.0, t0 - time.time()))
    c0, f0 = server.cpu(), server.stats()["frames"]
    time.sleep(max(0.0, t1 - time.time()))
    c1, f1 = server.cpu(), server.stats()["frames"]
    return (c1 - c0) / (t1 - t0), (f1 - f0) / (t1 - t0)


def readme(seconds, relay=False):
    server = ServerProcess(relay=relay)
    try:
        procs = subscribers(server.address, 1, 0)
        schedule(procs, seconds)
        (r,) = collect(procs)
    finally:
        server.close()
    times = r["times"]
    return {"relay": relay, "seconds": seconds, "fps": len(times) / seconds,
            "max_gap_s": max_gap(times), "frames": len(times), "gaps": r["stats"]["gaps"]}


def stall(window=4.0):
    """Windows of the other subscriber: both reading; the first stalled; both reading
    again; then the first gone (the other alone: a consumer that takes nothing should
    cost what one that is not there costs)."""
    server = ServerProcess()
    try:
        procs = subscribers(server.address, 1, 0) + subscribers(server.address, 1, 0)
        start = schedule(procs, 4 * window, stall=(window, 2 * window),
                         first_seconds=3 * window)
        staller, other = collect(procs)
    finally:
        server.close()
    t = other["times"]
    both = fps_between(t, start, start + window)
    during = fps_between(t, start + window, start + 2 * window)
    alone = fps_between(t, start + 3 * window + 0.5, start + 4 * window)
    return {"other_fps_both_reading": both, "other_fps_during_stall": during,
            "other_fps_alone": alone, "change_vs_both": during / both - 1,
            "change_vs_alone": during / alone - 1,
            "stalled_resume_to_current_s": staller["resume_to_current"],
            "stalled_received": staller["stats"]["received"]}


def cpu_at(rate, n, seconds, interval=0):
    server = ServerProcess(interval=interval)
    try:
        procs = subscribers(server.address, n, rate)
        start = schedule(procs, seconds + 2)
        cpu, frames = cpu_window(server, start + 1, start + 1 + seconds)
        results = collect(procs)
    finally:
        server.close()
    return {"rate": rate or "max", "subscribers": n, "server_cpu": cpu,
            "server_frames_per_s": frames,
            "client_fps": statistics.median(len(r["times"]) / (seconds + 2)
                                            for r in results)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 s instead of 60 s for readme")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--only", default="readme,stall,cpu30,fanout")
    ap.add_argument("--relay", action="store_true", help="readme also through fastfig relay")
    ap.add_argument("--repeat", type=int, default=3, help="runs of the stall measurement")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    seconds = args.seconds or (10.0 if args.quick else 60.0)
    only = set(args.only.split(","))
    out = {}
    if "readme" in only:
        out["readme"] = [readme(seconds)]
        if args.relay:
            out["readme"].append(readme(seconds, relay=True))
        for r in out["readme"]:
            print(f"readme{' via relay' if r['relay'] else ''}: {r['fps']:.0f} frames/s over "
                  f"{r['seconds']:.0f} s, longest gap {r['max_gap_s']:.3f} s, "
                  f"gaps {r['gaps']}", flush=True)
    if "stall" in only:
        # 4 s windows on a shared machine move by tens of per cent from run to run:
        # several runs, each reported, and the medians.
        runs = [stall() for _ in range(args.repeat)]
        out["stall_runs"] = runs
        s = out["stall"] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for r in runs:
            print(f"  run: {r['other_fps_during_stall']:.0f} stalled / "
                  f"{r['other_fps_both_reading']:.0f} both / {r['other_fps_alone']:.0f} alone, "
                  f"current after {r['stalled_resume_to_current_s']:.3f} s", flush=True)
        print(f"stall (medians): other subscriber {s['other_fps_during_stall']:.0f} frames/s while "
              f"one stalls, {s['other_fps_both_reading']:.0f} while both read "
              f"({100 * s['change_vs_both']:+.1f} %), {s['other_fps_alone']:.0f} alone "
              f"({100 * s['change_vs_alone']:+.1f} %); the stalled one holds a frame "
              f"rendered after it resumed {s['stalled_resume_to_current_s']:.3f} s after "
              "resuming", flush=True)
    window = min(seconds, 8.0)
    if "cpu30" in only:
        fast, slow = cpu_at(0, 1, window), cpu_at(30, 1, window)
        out["cpu30"] = {"max": fast, "30": slow, "ratio": slow["server_cpu"] / fast["server_cpu"]}
        print(f"cpu30: server CPU {100 * slow['server_cpu']:.0f} % at 30 frames/s "
              f"({slow['server_frames_per_s']:.0f} rendered/s) vs "
              f"{100 * fast['server_cpu']:.0f} % at {fast['client_fps']:.0f} frames/s "
              f"({fast['server_frames_per_s']:.0f} rendered/s): ratio "
              f"{out['cpu30']['ratio']:.2f}", flush=True)
    if "fanout" in only:
        # Subscribers each taking 30 frames/s of an unpaced animation (the server renders
        # for whichever wants a frame), and taking all they can of one paced at 60
        # frames/s (interval 16 ms: the same renders however many watch).
        for label, rate, interval in (("30fps", 30, 0), ("60fps", 0, 16)):
            one, many = cpu_at(rate, 1, window, interval), cpu_at(rate, 16, window, interval)
            r = out[f"fanout_{label}"] = {"1": one, "16": many,
                                          "ratio": many["server_cpu"] / one["server_cpu"]}
            print(f"fanout ({label}): server CPU {100 * many['server_cpu']:.0f} % with 16 "
                  f"subscribers vs {100 * one['server_cpu']:.0f} % with 1: ratio "
                  f"{r['ratio']:.2f}; server frames/s {many['server_frames_per_s']:.0f} vs "
                  f"{one['server_frames_per_s']:.0f}; median subscriber "
                  f"{many['client_fps']:.0f} vs {one['client_fps']:.0f} frames/s", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_server":
        server_child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_sub":
        subscriber_child(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
