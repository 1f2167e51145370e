"""Timeline latency: from a timeline event sent by a fastfig.Client to the frame it
asked for decoded by that Client, for frames restored from the timeline's cache and for
frames drawn again, and the cache's bytes per frame against a raw RGBA frame.

    python bench/timeline_latency.py                 # 800x600 and 1920x1080, blit on/off
    python bench/timeline_latency.py --sizes 800x600 --rounds 20 --json out.json

The figure: tests' line1 figure (2x2 axes of a 1000-point sine, one line moving), a
FuncAnimation with frames=60, served by the fastfig backend on the runtime's loop thread
in this process; the Client reads it over ZeroMQ on loopback. The animation plays its 60
frames once (each drawn once and cached), is paused, then:

- step back: ``step -1`` from frame 59 down, one at a time;
- seek: ``seek`` to a frame picked at random among those seen (never the current one);

each timed from just before the event is sent to the moment the Client has decoded the
new image (nothing else moves: the timeline is paused). Cached: frames restored from the
cache; re-rendered: the same with the cache bound set to 0 bytes, so each frame is drawn
again through the animation. Also timed on the figure's side: FrameCache.restore (decode
of the keyframe packet into the Agg buffer) and FrameCache.put (its encoding). Bytes per
frame: the cache's packets over the frames kept (it also holds one raw base image).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

N = 60


def run_case(rt, width, height, blit, cached, rounds):
    import fastfig
    from backend_helpers import lines_figure
    from matplotlib.animation import FuncAnimation

    fig, x, lines = lines_figure(width, height)

    def update(i):
        lines[0].set_ydata(np.sin(x + 0.1 * i))
        return lines[:1]

    anim = rt.call(lambda: FuncAnimation(fig, update, frames=N, interval=1, blit=blit,
                                         repeat=False))
    stream = rt.call(lambda: fastfig.show(fig, block=False))
    client = fastfig.Client(rt.server.address, stream.id, timeout=10)
    try:
        rt.call(lambda: fastfig.animate(anim, block=False))
        state = lambda: client.state.get("timeline") or {}  # noqa: E731
        deadline = time.monotonic() + 120
        while not (state().get("index") == N - 1 and not state().get("playing")):
            client.next_frame(timeout=0.5)
            if time.monotonic() > deadline:
                raise SystemExit("the animation did not reach its last frame")
        source = fig.canvas._timeline.source
        cache = source.cache
        out = {"size": f"{width}x{height}", "blit": blit, "cached": cached,
               "frames_cached": len(cache), "cache_bytes": cache.nbytes,
               # the cache holds its base image raw, once, and a packet per frame
               "bytes_per_frame": (cache.nbytes - width * height * 4) / max(len(cache), 1),
               "raw_bytes": width * height * 4}
        if not cached:
            rt.call(lambda: setattr(cache, "max_bytes", 0) or cache.clear())
        while client.next_frame(timeout=0.3) is not None:
            pass

        def timed(action, **fields):
            before = (source.draws, source.restores)
            t0 = time.perf_counter()
            client.timeline(action, **fields)
            if client.next_frame(timeout=10) is None:
                raise SystemExit(f"no frame after {action} {fields}")
            took = time.perf_counter() - t0
            kind = "draw" if source.draws > before[0] else "restore"
            return took, kind

        steps, kinds = [], set()
        for _ in range(min(rounds, N - 1)):
            took, kind = timed("step", delta=-1)
            steps.append(took)
            kinds.add(kind)
        rng = random.Random(1)
        seeks = []
        current = state()["index"]
        for _ in range(rounds):
            target = rng.choice([i for i in range(N) if i != current])
            took, kind = timed("seek", index=target)
            seeks.append(took)
            kinds.add(kind)
            current = target
        out["kinds"] = sorted(kinds)
        out.update(_stats("step_back", steps))
        out.update(_stats("seek", seeks))
        if cached:
            image = np.asarray(fig.canvas.buffer_rgba()).copy()
            target = np.empty_like(image)
            scan = source._scan

            def figure_side():
                t_put, t_restore = [], []
                for i in range(20):
                    t = time.perf_counter()
                    box = cache.put(1000 + i, image, scan, playhead=1000)
                    t_put.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    cache.restore(1000 + i, target, box)
                    t_restore.append(time.perf_counter() - t)
                for i in range(20):
                    cache._entries.pop(1000 + i, None)
                return t_put, t_restore
            t_put, t_restore = rt.call(figure_side)
            out["encode_ms"] = 1000 * statistics.median(t_put)
            out["restore_ms"] = 1000 * statistics.median(t_restore)
        return out
    finally:
        client.close()
        rt.call(lambda: fig.canvas._timeline and fig.canvas._timeline.close())
        rt.call(lambda: fastfig.close(fig))


def _stats(name, samples):
    ms = sorted(1000 * s for s in samples)
    return {f"{name}_median_ms": statistics.median(ms),
            f"{name}_p95_ms": ms[int(0.95 * (len(ms) - 1))]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["800x600", "1920x1080"])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    from fastfig.mpl import runtime
    rt = runtime.get()
    rt.configure(address="tcp", announce=False)
    rt.ensure_loop(mode="thread")
    rt.ensure_server()
    results = []
    print("| size | blit | frame from | step back median / p95 (ms) | seek median / p95 (ms) "
          "| cache bytes per frame (vs raw RGBA) |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        w, h = map(int, size.split("x"))
        for blit in (True, False):
            for cached in (True, False):
                r = run_case(rt, w, h, blit, cached, args.rounds)
                results.append(r)
                per = (f"{r['bytes_per_frame'] / 1e3:.1f} kB "
                       f"({r['raw_bytes'] / r['bytes_per_frame']:.0f}x smaller)"
                       if cached else "-")
                print(f"| {size} | {blit} | {'cache' if cached else 'drawn again'} "
                      f"| {r['step_back_median_ms']:.1f} / {r['step_back_p95_ms']:.1f} "
                      f"| {r['seek_median_ms']:.1f} / {r['seek_p95_ms']:.1f} | {per} |",
                      flush=True)
    for r in results:
        if r["cached"]:
            print(f"{r['size']} blit={r['blit']}: FrameCache.put {r['encode_ms']:.2f} ms, "
                  f"restore {r['restore_ms']:.2f} ms per frame (figure side)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    rt.close()


if __name__ == "__main__":
    main()
