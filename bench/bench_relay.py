"""Relay benchmark: the README's Python client with default arguments through
``fastfig relay`` (transport version 2), next to the same client connected directly, in
one run.

    python bench/bench_relay.py                 # 60 s windows, about 3 minutes
    python bench/bench_relay.py --seconds 10    # shorter windows
    python bench/bench_relay.py --json out.json

The server is a child process serving the reference scenario line1 (fastfig/scenarios.py)
at 640x480 as a blitting FuncAnimation with interval 0, streamed by ``fastfig.animate``:
it renders as fast as its consumers take frames, and only then. The relay is the command
``fastfig relay --connect ADDRESS`` in a process of its own. Clients are child
processes running::

    with fastfig.Client(address) as client:
        for frame in client.frames(timeout=5): ...

1. direct, relay: one client for --seconds, connected to the server, then to a relay
   in front of a fresh server: frames/s, the longest gap between frames, and the ratio
   relay / direct.
2. stall: two clients through one relay; the first stops reading for 4 s. The other's
   frame rate while it does vs the 4 s before, and the time from the first's resume until
   it holds a frame encoded after the resume.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SETTLE = 3.0   # seconds for processes to start and join before a window begins
STALL = 4.0


# -- children ------------------------------------------------------------------------------

def server_child():
    from matplotlib.animation import FuncAnimation

    import fastfig
    from fastfig.scenarios import make

    fastfig.configure("tcp")
    sc = make("line1", "640x480")
    print(fastfig.get_server().address, flush=True)
    anim = FuncAnimation(sc.fig, sc.step, interval=0, blit=True, cache_frame_data=False)
    try:
        fastfig.animate(anim, block=True)
    except (KeyboardInterrupt, SystemExit):
        pass


def client_child(address, start, end, stall_from, stall_to):
    """One default Client reading from start to end (wall clock), reading nothing between
    stall_from and stall_to (0, 0: no stall). Prints one JSON object."""
    import fastfig
    times, resumed_at, current_after = [], None, None
    with fastfig.Client(address) as client:
        while time.time() < start:
            client.next_frame(0.05)
        for f in client.frames(timeout=5):
            now = time.time()
            if now >= end:
                break
            times.append(now)
            if resumed_at is not None and current_after is None and f.encoded_at >= resumed_at:
                current_after = now - resumed_at
            if stall_to > stall_from and resumed_at is None and now >= stall_from:
                time.sleep(max(0.0, stall_to - time.time()))   # reads nothing meanwhile
                resumed_at = time.time()
        stats = client.stats()
    print(json.dumps({"times": times, "resume_to_current": current_after,
                      "gaps": stats.get("gaps"), "received": stats.get("received")}),
          flush=True)


# -- the driver ------------------------------------------------------------------------------

def spawn(*args):
    return subprocess.Popen([sys.executable, os.path.abspath(__file__), *args],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)


class Served:
    """A server process, and a relay process in front of it when relay is true."""

    def __init__(self, relay):
        self.procs = [spawn("_server")]
        self.address = self.procs[0].stdout.readline().strip()
        if relay:
            proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "relay",
                                     "--connect", self.address],
                                    stdout=subprocess.PIPE, text=True, cwd=ROOT)
            self.procs.append(proc)
            self.address = proc.stdout.readline().split(" -> ")[1].split()[0]

    def close(self):
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def spawn_client(address, start, end, stall=(0.0, 0.0)):
    return spawn("_sub", address, repr(start), repr(end), repr(stall[0]), repr(stall[1]))


def result(proc):
    out, _ = proc.communicate(timeout=180)
    return json.loads(out.strip().splitlines()[-1])


def fps_between(times, t0, t1):
    return sum(t0 <= t < t1 for t in times) / (t1 - t0)


def max_gap(times):
    return max((b - a for a, b in zip(times, times[1:])), default=None)


def readme(seconds, relay):
    served = Served(relay)
    try:
        start = time.time() + SETTLE
        r = result(spawn_client(served.address, start, start + seconds))
    finally:
        served.close()
    times = r["times"]
    return {"relay": relay, "seconds": seconds, "fps": len(times) / seconds,
            "max_gap_s": max_gap(times), "frames": len(times), "gaps": r["gaps"]}


def stall():
    served = Served(relay=True)
    try:
        start = time.time() + SETTLE
        t_stall, t_resume, end = start + STALL, start + 2 * STALL, start + 3 * STALL
        staller = spawn_client(served.address, start, end, (t_stall, t_resume))
        other = spawn_client(served.address, start, end)
        staller, other = result(staller), result(other)
    finally:
        served.close()
    before = fps_between(other["times"], start, t_stall)
    during = fps_between(other["times"], t_stall, t_resume)
    return {"other_fps_before": before, "other_fps_during_stall": during,
            "other_fps_change": during / before - 1,
            "stalled_resume_to_current_s": staller["resume_to_current"],
            "stalled_received": staller["received"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    out = {"readme": [readme(args.seconds, relay=False), readme(args.seconds, relay=True)]}
    for r in out["readme"]:
        print(f"{'relay ' if r['relay'] else 'direct'}: {r['fps']:.0f} frames/s over "
              f"{r['seconds']:.0f} s, longest gap {r['max_gap_s']:.3f} s, gaps {r['gaps']}",
              flush=True)
    direct, relayed = out["readme"]
    out["relay_vs_direct"] = relayed["fps"] / direct["fps"]
    print(f"relay / direct: {out['relay_vs_direct']:.2f}", flush=True)
    s = out["stall"] = stall()
    print(f"stall behind the relay: other client {s['other_fps_before']:.0f} -> "
          f"{s['other_fps_during_stall']:.0f} frames/s ({100 * s['other_fps_change']:+.1f} %); "
          f"stalled one current {s['stalled_resume_to_current_s']:.3f} s after resuming, "
          f"{s['stalled_received']} frames received in all", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_server":
        server_child()
    elif len(sys.argv) > 1 and sys.argv[1] == "_sub":
        client_child(sys.argv[2], *map(float, sys.argv[3:7]))
    else:
        main()
