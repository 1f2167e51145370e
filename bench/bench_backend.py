"""End-to-end benchmark of the fastfig backend against matplotlib's WebAgg path.

    python -m bench.bench_backend [--seconds 3] [--quick]

fastfig: a FuncAnimation of a reference scenario (fastfig/scenarios.py) served by fastfig in a
child process (``fastfig.animate``, interval 0: as fast as the frontend takes frames), a
fastfig.Client here decoding every frame it receives and acknowledging each one; fps is
frames decoded per second of wall time. WebAgg: in this process, what matplotlib's
server does per frame for its browser: ``FigureCanvasWebAggCore.draw()`` then
``get_diff_image()`` (the transport is not even counted). Agg: a plain full draw, the
reference for the overhead columns ("+%" = frame time over Agg draw time, minus one).
Input latency: a pan drag on line1 at 1280x720, each motion event sent, then the updated
frame decoded; compared with the time of one full Agg draw of that figure.

Numbers are medians on a shared machine: read them as ratios measured side by side.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time


CASES = [("line1", "640x480", True), ("line1", "640x480", False),
         ("line1", "1920x1080", True), ("line1", "1920x1080", False),
         ("heavy", "640x480", False), ("heavy", "1920x1080", False)]


# -- child: the figure side ------------------------------------------------------------------

def child(kind, name, size, blit):
    from matplotlib.animation import FuncAnimation

    import fastfig
    from fastfig.scenarios import make

    fastfig.configure("tcp")
    sc = make(name, size)
    address = fastfig.get_server().address
    print(address, flush=True)
    try:
        if kind == "anim":
            anim = FuncAnimation(sc.fig, sc.step, interval=0, blit=blit,
                                 cache_frame_data=False)
            fastfig.animate(anim, block=True)
        else:
            fastfig.show(sc.fig, block=True)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        # What the figure side spent per frame, for the overhead columns.
        print(json.dumps(sc.fig.canvas._frames.stats()), flush=True)


def spawn(kind, name, size, blit=False):
    proc = subprocess.Popen([sys.executable, "-m", "bench.bench_backend", "--child", kind,
                             name, size, str(int(blit))], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return proc, proc.stdout.readline().strip()


# -- measurements ------------------------------------------------------------------------------

def agg_draw_ms(name, size, n=15):
    from fastfig.scenarios import make
    sc = make(name, size)
    sc.render(0)
    times = []
    for i in range(1, n + 1):
        sc.step(i)
        t = time.perf_counter()
        sc.canvas.draw()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def webagg_frame_ms(name, size, n=15):
    from matplotlib.backends.backend_webagg_core import FigureCanvasWebAggCore
    from fastfig.scenarios import make
    sc = make(name, size)
    canvas = FigureCanvasWebAggCore(sc.fig)
    canvas.manager = canvas.manager_class(canvas, 1)   # draw() refreshes through it
    canvas.draw()
    canvas.get_diff_image()
    times = []
    for i in range(1, n + 1):
        t = time.perf_counter()
        sc.step(i)
        canvas.draw()
        canvas.get_diff_image()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def fastfig_fps(name, size, blit, seconds):
    import fastfig
    proc, address = spawn("anim", name, size, blit)
    try:
        with fastfig.Client(address, "1", timeout=30) as c:
            warm = time.monotonic() + 1.0
            while time.monotonic() < warm:
                c.next_frame(timeout=5)
            c.stats(reset=True)
            start, frames = time.monotonic(), 0
            while time.monotonic() - start < seconds:
                if c.next_frame(timeout=5) is not None:
                    frames += 1
            elapsed = time.monotonic() - start
            stats = c.stats()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    server = json.loads(out.strip().splitlines()[-1])
    return frames / elapsed, stats, server


def pan_latency_ms(n=40):
    import fastfig
    proc, address = spawn("show", "line1", "1280x720")
    try:
        with fastfig.Client(address, "1", timeout=30) as c:
            c.next_frame(timeout=10)
            c.send_event("toolbar", name="pan")
            x, y = 300.0, 200.0
            c.send_event("motion_notify", x=x, y=y, buttons=0)
            c.send_event("button_press", x=x, y=y, button=1, buttons=1)
            while c.next_frame(timeout=0.3) is not None:
                pass
            latencies = []
            for i in range(n):
                x += 3
                y += 1 if i % 2 else -1
                t = time.perf_counter()
                c.send_event("motion_notify", x=x, y=y, buttons=1)
                f = c.next_frame(timeout=10)
                if f is None:
                    continue
                latencies.append(time.perf_counter() - t)
            c.send_event("button_release", x=x, y=y, button=1, buttons=0)
        return 1000 * statistics.median(latencies), len(latencies)
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--quick", action="store_true", help="640x480 cases only")
    p.add_argument("--json", action="store_true")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        kind, name, size, blit = args.child
        child(kind, name, size, blit == "1")
        return
    rows = []
    for name, size, blit in CASES:
        if args.quick and size != "640x480":
            continue
        agg = agg_draw_ms(name, size)
        web = webagg_frame_ms(name, size)
        fps, stats, server = fastfig_fps(name, size, blit, args.seconds)
        rows.append({"scenario": name, "size": size, "blit": blit, "agg_draw_ms": agg,
                     "webagg_frame_ms": web, "webagg_fps": 1000 / web, "fastfig_fps": fps,
                     "fastfig_frame_ms": 1000 / fps, "speedup": fps * web / 1000,
                     "fastfig_latency_ms": 1000 * (stats["latency_median"] or 0),
                     "gaps": stats["gaps"], "skipped": stats["skipped"],
                     "server_render_ms": server["render_ms"],
                     "server_publish_ms": server["publish_ms"]})
        print(f"{name} {size} blit={blit}: fastfig {fps:.1f} fps, WebAgg {1000 / web:.1f} fps "
              f"(x{rows[-1]['speedup']:.1f}); Agg draw {agg:.1f} ms, fastfig frame "
              f"{1000 / fps:.1f} ms ({100 * (1000 / fps / agg - 1):+.0f}%), WebAgg frame "
              f"{web:.1f} ms ({100 * (web / agg - 1):+.0f}%); figure side: render "
              f"{server['render_ms']:.1f} ms, publish "
              f"{server['publish_ms']:.2f} ms/frame = {100 * server['publish_ms'] / agg:.0f}% "
              f"of the Agg draw, WebAgg diff+PNG {100 * (web - agg) / agg:.0f}%", flush=True)
    latency, n = pan_latency_ms()
    draw720 = agg_draw_ms("line1", "1280x720")
    print(f"pan on line1 1280x720: event to decoded frame {latency:.1f} ms median over {n} "
          f"events; full Agg draw {draw720:.1f} ms (x{latency / draw720:.2f})", flush=True)
    if args.json:
        print(json.dumps({"cases": rows, "pan_latency_ms": latency,
                          "draw_1280x720_ms": draw720}, indent=1))


if __name__ == "__main__":
    main()
