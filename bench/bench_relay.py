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
2. stall: a client reads through a relay while a second one, --cycles times, is absent
   for 4 s, joins and reads for 4 s, then reads nothing for 4 s. The first's frame rate
   beside the stalled one vs alone (windows interleaved, which cancels a drift in the
   machine's load), and beside the reading one; the time from each resume until the
   stalled one holds a frame encoded after it. And what serving the first costs: the
   server's and the relay's CPU per frame it takes, alone and beside the stalled one.

   Beside a reading client the first often goes faster than alone: the server renders on
   demand, and two clients taking frames out of step make demand sooner than one.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")
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


def client_child(address, start, end):
    """One default Client reading from start to end (wall clock). Prints one JSON object."""
    import fastfig
    times = []
    with fastfig.Client(address) as client:
        while time.time() < start:
            client.next_frame(0.05)
        for f in client.frames(timeout=5):
            now = time.time()
            if now >= end:
                break
            times.append(now)
        stats = client.stats()
    print(json.dumps({"times": times, "gaps": stats.get("gaps"),
                      "received": stats.get("received")}), flush=True)


def staller_child(address, start, cycles):
    """The stalling client: time from start is cut in windows of STALL seconds, three per
    cycle: absent (not connected), reading, stalled (connected, reading nothing). After a
    stall it reads until it holds a frame encoded after its resume, then leaves."""
    import fastfig
    resumes, received = [], 0
    for k in range(cycles):
        t0 = start + 3 * k * STALL
        time.sleep(max(0.0, t0 + STALL - time.time()))
        with fastfig.Client(address) as client:
            for f in client.frames(timeout=5):
                if time.time() >= t0 + 2 * STALL:
                    break
            time.sleep(max(0.0, t0 + 3 * STALL - time.time()))   # reads nothing
            resumed = time.time()
            for f in client.frames(timeout=5):
                if f.encoded_at >= resumed:
                    resumes.append(time.time() - resumed)
                    break
            received += client.stats()["received"]
    print(json.dumps({"resume_to_current": resumes, "received": received}), flush=True)


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

    def cpu(self):
        """Seconds of CPU the server and the relay processes have used."""
        total = 0
        for proc in self.procs:
            with open(f"/proc/{proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / TICK

    def close(self):
        for proc in reversed(self.procs):
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def spawn_client(address, start, end):
    return spawn("_sub", address, repr(start), repr(end))


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


def stall(cycles):
    served = Served(relay=True)
    try:
        start = time.time() + SETTLE
        end = start + 3 * cycles * STALL
        staller = spawn("_staller", served.address, repr(start), str(cycles))
        other = spawn_client(served.address, start, end)
        cpu = []   # server + relay CPU seconds at each window's edge
        for k in range(3 * cycles + 1):
            time.sleep(max(0.0, start + k * STALL - time.time()))
            cpu.append(served.cpu())
        staller, other = result(staller), result(other)
    finally:
        served.close()
    windows = [fps_between(other["times"], start + k * STALL, start + (k + 1) * STALL)
               for k in range(3 * cycles)]
    alone, both, stalled = (sum(windows[i::3]) / cycles for i in range(3))
    # What serving the other client costs per frame it takes: CPU is disturbed by the
    # machine's load far less than a frame rate is.
    ms = [1000 * (cpu[k + 1] - cpu[k]) / max(1, w * STALL) for k, w in enumerate(windows)]
    ms_alone, ms_both, ms_stalled = (sum(ms[i::3]) / cycles for i in range(3))
    return {"other_fps_windows": windows, "other_fps_alone": alone,
            "other_fps_both_reading": both, "other_fps_one_stalled": stalled,
            "other_fps_change": stalled / alone - 1,
            "cpu_ms_per_frame_windows": ms, "cpu_ms_per_frame_alone": ms_alone,
            "cpu_ms_per_frame_one_stalled": ms_stalled, "cpu_ms_per_frame_both": ms_both,
            "cpu_per_frame_change": ms_stalled / ms_alone - 1,
            "stalled_resume_to_current_s": staller["resume_to_current"],
            "stalled_received": staller["received"]}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--only", default="readme,stall")
    ap.add_argument("--cycles", type=int, default=4, help="stall: read/stall cycles")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    out = {}
    if "readme" in only:
        out["readme"] = [readme(args.seconds, relay=False), readme(args.seconds, relay=True)]
        for r in out["readme"]:
            print(f"{'relay ' if r['relay'] else 'direct'}: {r['fps']:.0f} frames/s over "
                  f"{r['seconds']:.0f} s, longest gap {r['max_gap_s']:.3f} s, "
                  f"gaps {r['gaps']}", flush=True)
        direct, relayed = out["readme"]
        out["relay_vs_direct"] = relayed["fps"] / direct["fps"]
        print(f"relay / direct: {out['relay_vs_direct']:.2f}", flush=True)
    if "stall" in only:
        s = out["stall"] = stall(args.cycles)
        resumes = s["stalled_resume_to_current_s"]
        print(f"stall behind the relay ({args.cycles} cycles of {STALL:.0f} s windows): the "
              f"other client {s['other_fps_alone']:.0f} frames/s alone, "
              f"{s['other_fps_one_stalled']:.0f} beside a stalled one "
              f"({100 * s['other_fps_change']:+.1f} %), {s['other_fps_both_reading']:.0f} "
              f"beside a reading one; server + relay CPU per frame it takes "
              f"{s['cpu_ms_per_frame_alone']:.2f} ms alone, "
              f"{s['cpu_ms_per_frame_one_stalled']:.2f} ms beside the stalled one "
              f"({100 * s['cpu_per_frame_change']:+.1f} %); the stalled one current "
              f"{max(resumes) if resumes else float('nan'):.3f} s after resuming at worst "
              f"({len(resumes)} resumes)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_server":
        server_child()
    elif len(sys.argv) > 1 and sys.argv[1] == "_sub":
        client_child(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_staller":
        staller_child(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
