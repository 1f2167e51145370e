"""Timeline benchmark: scrubbing back over seen frames in headless Chromium, each seek
timed from the input to the paint that shows its frame.

    python bench/bench_timeline.py                  # line1 and heavy, 1920x1080 and 800x600,
                                                    # cache on and off
    python bench/bench_timeline.py --scenarios line1 --sizes 800x600 --json timeline.json

Each case runs the figure in a process of its own, as a user's script would
(``matplotlib.use("fastfig")``, the browser bridge): a scenario of fastfig/scenarios.py as
a FuncAnimation with ``frames=150`` at 60 frames/s, blitting (line1: 2x2 sine panels, one
line moving, cheap to draw again; heavy: an imshow with a colour bar and a 10,000-point
scatter, 50-100 ms a frame), and one more animated artist: a 10x10 pixel square in the
corner of the first animated artist's axes whose colour encodes the frame index (red =
index % 256, green = index // 256), so the page knows which frame each paint shows by
reading one pixel of its canvas.

In the page: the animation plays past frame 120 (every frame drawn once and, with the
cache on, kept), the pause button is clicked, then the scrubber is moved back one frame
per display frame over the 100 frames before the paused one: in each requestAnimationFrame
callback one input event on the scrubber's range element (the viewer's timeline bar sends
the first seek of a display frame at once). For each seek: the time from the rAF
timestamp of the frame in which it was input to the rAF timestamp of the first paint
showing that frame, and that in display frames (a paint in the next display frame = one
frame: what "painted within one display frame" means here). A seek whose frame was never
painted (a later one overtook it) counts as not painted within one frame.

The baseline, in the same run: the same with the timeline's frame cache disabled
(``max_bytes=0``), so every seek draws its frame again through the animation.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

SIZES = {"1920x1080": (1920, 1080), "800x600": (800, 600)}
FRAMES = 150
PLAY_PAST = 120
SCRUB = 100
INTERVAL_MS = 1000 / 60
MARK = 10   # side of the index square, pixels


# -- the figure process ---------------------------------------------------------------------

def child(name, width, height, cached, port):
    import matplotlib
    matplotlib.use("fastfig")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation
    from matplotlib.patches import Rectangle

    from fastfig.mpl import animation, runtime
    from fastfig.scenarios import SCENARIOS

    # While paused (the seeks): time in Source.show() (a cache restore or a draw), and from
    # its start to the frame published (encoded and handed to the transport).
    show_ms, publish_ms = [], []

    class Timed(animation.AnimationSource):
        def __init__(self, canvas, anim, max_bytes=animation.DEFAULT_MAX_BYTES):
            super().__init__(canvas, anim, max_bytes=max_bytes if cached else 0)
            self.started = None
            stream, publish = canvas._stream, canvas._stream.publish

            def timed_publish(*args, **kwargs):
                frame = publish(*args, **kwargs)
                if self.started is not None:
                    publish_ms.append(1000 * (time.perf_counter() - self.started))
                    self.started = None
                return frame
            stream.publish = timed_publish

        def show(self, index):
            t = time.perf_counter()
            try:
                return super().show(index)
            finally:
                if not self.player.playing:
                    show_ms.append(1000 * (time.perf_counter() - t))
                    self.started = self.started or t
    animation.AnimationSource = Timed   # take_over() makes its source from here

    rt = runtime.get()
    rt.keep_serving = True
    rt.announce = lambda *a: None
    rt.ensure_loop(mode="script")
    rt.ensure_server()
    fig = plt.figure(figsize=(width / 100, height / 100), dpi=100)
    scenario = SCENARIOS[name](width, height, 100, figure=fig)
    ax = scenario.animated[0].axes
    fig.canvas.draw()
    x0, y0 = int(ax.bbox.x0) + 2, int(ax.bbox.y0) + 2
    mark = Rectangle((x0, y0), MARK, MARK, transform=None, antialiased=False,
                     edgecolor="none", facecolor="k")
    ax.add_artist(mark)

    def update(i):
        mark.set_facecolor(((i % 256) / 255, (i // 256) / 255, 0, 1))
        return [*scenario.step(i), mark]

    anim = FuncAnimation(fig, update, frames=FRAMES, interval=INTERVAL_MS, blit=True)
    bridge = rt.ensure_bridge(port=port)
    rt.loop.call_soon(lambda: plt.show(block=False))
    # the index pixel, in the image's rows from the top
    print("ready", bridge.figure_url(str(fig.number)) + "&fit=0", x0 + MARK // 2,
          height - (y0 + MARK // 2) - 1, flush=True)

    def stop(*_):
        print("shows", json.dumps([show_ms, publish_ms]), flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    try:
        rt.run()
    finally:
        del anim
        os._exit(0)


def start_child(name, size, cached):
    from transport_helpers import free_port
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", name, size,
                             "cached" if cached else "uncached", str(free_port())],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT)
    line = proc.stdout.readline().split()
    if not line or line[0] != "ready":
        proc.kill()
        raise RuntimeError(f"{size} did not start: {line!r}")
    return proc, line[1], int(line[2]), int(line[3])


# -- the page -----------------------------------------------------------------------------------

VIEWER = "[...window.fastfig.viewers.values()][0]"

#: One input on the scrubber per display frame, from `start` down `count` frames; resolves
#: with the inputs (index, rAF timestamp), the first paint showing each index and every rAF
#: timestamp, once the last index was painted or `patience` ms after the last input.
SCRUB_BACK = """async ([start, count, px, py, patience]) => {
  const v = %s;
  const ctx = v.canvas.getContext("2d");
  const shown = {};     // index -> rAF timestamp of its first paint
  const stamps = [];    // every display frame's rAF timestamp
  const inputs = [];     // [index, rAF timestamp, performance.now() of the input]
  const received = {};   // packet seq -> [performance.now() at arrival, bytes]
  const onPacket = v._onPacket.bind(v);
  v._onPacket = (buffer) => {   // (the packet header's seq is at byte 16, PROTOCOL.md 1.2)
    received[new DataView(buffer).getUint32(16, true)] = [performance.now(), buffer.byteLength];
    onPacket(buffer);
  };
  v.onpaint = (frame, now) => {
    const d = ctx.getImageData(px, py, 1, 1).data;
    const index = d[0] + 256 * d[1];
    if (inputs.length && !(index in shown)) shown[index] = [now, ...(received[frame.seq] || [])];
  };
  const range = v.timeline.rangeEl;
  await new Promise((resolve) => {
    const tick = (now) => {
      stamps.push(now);
      if (inputs.length < count) {
        const index = start - inputs.length;
        range.value = String(index);
        range.dispatchEvent(new Event("input", { bubbles: true }));
        inputs.push([index, now, performance.now()]);
      } else if ((start - count + 1) in shown || now - inputs[count - 1][1] > patience) {
        resolve();
        return;
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  v.onpaint = null;
  v._onPacket = onPacket;
  return { inputs, shown, stamps };
}""" % VIEWER


def measure(browser, name, size, cached):
    width, height = SIZES[size]
    proc, url, px, py = start_child(name, size, cached)
    context = browser.new_context(viewport={"width": width + 100, "height": height + 200},
                                  device_scale_factor=1)
    try:
        page = context.new_page()
        page.goto(url)
        t = f"{VIEWER}.state.timeline"
        page.wait_for_function(f"() => window.fastfig.viewers.size && {t} && "
                               f"{t}.index >= {PLAY_PAST}", timeout=300000, polling=50)
        page.locator('[data-timeline="togglePlay"]').click()
        page.wait_for_function(f"() => !{t}.playing", timeout=10000)
        paused = page.evaluate(f"() => {t}.index")
        start = paused - 1
        if cached:   # every frame to scrub over kept (the state says so), if they fit
            try:
                page.wait_for_function(f"() => {t}.cached && {t}.cached[0] <= "
                                       f"{start - SCRUB + 1} && {t}.cached[1] >= {start}",
                                       timeout=5000)
            except Exception:
                pass   # the cache's bound holds fewer: the rest is drawn again
        cached_range = page.evaluate(f"() => {t}.cached")
        # the paused frame painted: nothing of the playing is left in flight
        page.wait_for_function(
            f"""([px, py, want]) => {{ const d = {VIEWER}.canvas.getContext("2d")
                  .getImageData(px, py, 1, 1).data; return d[0] + 256 * d[1] === want; }}""",
            arg=[px, py, paused], timeout=10000)
        got = page.evaluate(SCRUB_BACK, [start, SCRUB, px, py, 3000])
        (got["show_ms"], got["publish_ms"]), proc = stop_child(proc), None
        got["cached"] = cached_range
        got["scrubbed"] = [start - SCRUB + 1, start]
        return summarize(name, size, cached, got)
    finally:
        context.close()
        if proc is not None:
            stop_child(proc)


def stop_child(proc):
    """Stop the figure's process; returns the times of its Source.show() while paused, and
    from each to the frame published."""
    proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=5)
    for text in out.splitlines():
        if text.startswith("shows "):
            return json.loads(text[6:])
    return [], []


def summarize(name, size, cached, got):
    stamps = got["stamps"]
    latencies, frames, trip, to_paint, sizes = [], [], [], [], []
    for index, t_in, t_sent in got["inputs"]:
        shown = got["shown"].get(str(index))
        if shown is None or shown[0] < t_in:
            frames.append(None)   # never painted: a later seek's frame came first
            continue
        t_paint = shown[0]
        latencies.append(t_paint - t_in)
        frames.append(sum(1 for s in stamps if t_in < s <= t_paint))
        if len(shown) == 3:
            trip.append(shown[1] - t_sent)      # seek sent -> its packet in the page
            to_paint.append(t_paint - shown[1])  # packet in -> the display frame painting it
            sizes.append(shown[2])
    n = len(got["inputs"])
    median = lambda v: statistics.median(v) if v else None  # noqa: E731
    return {"scenario": name, "size": size, "cache": cached, "seeks": n,
            "painted": len(latencies), "median_ms": median(latencies),
            "p95_ms": quantile(latencies, 0.95),
            "within_one_frame": sum(1 for f in frames if f is not None and f <= 1) / n,
            "frames_histogram": {str(k): frames.count(k) for k in sorted(
                {f for f in frames if f is not None})},
            "refresh_ms": statistics.median(b - a for a, b in zip(stamps, stamps[1:])),
            "trip_ms": median(trip), "packet_to_paint_ms": median(to_paint),
            "packet_kb": median(sizes) and median(sizes) / 1024,
            "show_ms": median(got["show_ms"]), "shows": len(got["show_ms"]),
            "publish_ms": median(got["publish_ms"]), "published": len(got["publish_ms"]),
            "scrubbed": got["scrubbed"], "cached": got["cached"]}


def quantile(values, q):
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def _ms(v):
    return "-" if v is None else f"{v:.1f}"


def line(r):
    return (f"{r['scenario']:6s} {r['size']:9s} cache {'on ' if r['cache'] else 'off'}: "
            f"{r['painted']}/{r['seeks']} seeks painted, input to paint median "
            f"{_ms(r['median_ms'])} ms p95 {_ms(r['p95_ms'])} ms, within one display frame "
            f"{100 * r['within_one_frame']:.0f}% (frames to paint {r['frames_histogram']}); "
            f"show() {_ms(r['show_ms'])} ms x{r['shows']}, to published "
            f"{_ms(r['publish_ms'])} ms x{r['published']}, seek to packet {_ms(r['trip_ms'])} ms, "
            f"packet {_ms(r['packet_kb'])} kB to paint {_ms(r['packet_to_paint_ms'])} ms; "
            f"refresh {r['refresh_ms']:.1f} ms; scrubbed {r['scrubbed']}, cached {r['cached']}")


def table(results):
    rows = ["| scenario | size | frame cache | seeks painted | input to paint, median / p95 "
            "(ms) | painted within one display frame | figure's show() per seek (ms) "
            "| show() to frame published (ms) | seek sent to packet in page (ms) "
            "| packet (kB) |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r['scenario']} | {r['size']} | {'on' if r['cache'] else 'off (baseline)'}"
                    f" | {r['painted']} of {r['seeks']} | {_ms(r['median_ms'])} / "
                    f"{_ms(r['p95_ms'])} | {100 * r['within_one_frame']:.0f}% "
                    f"| {_ms(r['show_ms'])} (x{r['shows']}) | {_ms(r['publish_ms'])} "
                    f"(x{r['published']}) | {_ms(r['trip_ms'])} "
                    f"| {_ms(r['packet_kb'])} |")
    return "\n".join(rows)


def run(scenarios, sizes, repeat=1):
    from playwright.sync_api import sync_playwright

    from browser_helpers import launch, missing
    why = missing()
    if why:
        raise SystemExit(f"bench_timeline: {why}")
    results = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            for _ in range(repeat):
                for name in scenarios:
                    for size in sizes:
                        for cached in (True, False):   # side by side: the load drifts
                            r = measure(browser, name, size, cached)
                            print("  " + line(r), flush=True)
                            results.append(r)
        finally:
            browser.close()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", default="line1,heavy")
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--child", nargs=4, metavar=("SCENARIO", "SIZE", "CACHE", "PORT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        name, size, cache, port = args.child
        child(name, *SIZES[size], cache == "cached", int(port))
        return 0
    results = run(args.scenarios.split(","), args.sizes.split(","), args.repeat)
    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
