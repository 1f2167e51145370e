"""Browser benchmark: frames painted per second in headless Chromium, fastfig's viewer next
to matplotlib's own WebAgg page, for the same figure in the same browser in the same run.

    python bench/bench_browser.py                 # line1 (blitting) and heavy, 1280x720 and 1920x1080
    python bench/bench_browser.py --quick         # 1920x1080 only
    python bench/bench_browser.py --seconds 8 --json browser.json

Each case runs the figure in a process of its own, as a user's script would:
``matplotlib.use("fastfig")`` (the fastfig backend, its frame loop and the browser bridge)
or ``matplotlib.use("webagg")`` (matplotlib's WebAgg server), with the same pyplot code
(fastfig/demo.py: line1 = 2x2 sine panels, one line moving, FuncAnimation(blit=True);
heavy = imshow + colour bar + 10,000-point scatter, FuncAnimation(blit=False); heavy-blit =
the same with blit=True, the same script for both backends). The
animation asks for a frame every millisecond, so each side runs as fast as its own flow
control lets it: fastfig paces the figure on the browser's acknowledgements (a frame is
acknowledged after it is painted), WebAgg on its one-frame-in-flight "draw" requests.
WebAgg cannot blit: its canvas has supports_blit = False, so FuncAnimation redraws fully.

Painted frames are counted in the page: fastfig's viewer counts frames applied to its
canvas; on the WebAgg page an init script counts drawImage calls of the figure's image
on its canvas (mpl.js draws each received frame with one drawImage). Counting starts after
a warm-up and runs for --seconds. Chromium is Debian's /usr/bin/chromium at device pixel
ratio 1, with a viewport larger than the figure.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

SIZES = {"1280x720": (1280, 720), "1920x1080": (1920, 1080)}
#: Animation intervals, the same for both: each side's own flow control sets the pace
#: (fastfig's timer waits for its frame loop, which waits for the browser's
#: acknowledgements; WebAgg draws when its page asks). Measured on line1 1920x1080, WebAgg
#: paints fastest at 1 ms (5.96 fps vs 4.95 at 10 ms and 3.95 at 30 ms).
FASTFIG_INTERVAL_MS = float(os.environ.get("FASTFIG_BENCH_INTERVAL_MS", 1))
WEBAGG_INTERVAL_MS = float(os.environ.get("WEBAGG_BENCH_INTERVAL_MS", 1))
CASES = ("line1", "heavy", "heavy-blit")

COUNT_WEBAGG_PAINTS = """
(() => {
  window.__painted = 0;
  const draw = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (image, ...rest) {
    if (image instanceof HTMLImageElement) window.__painted++;
    return draw.call(this, image, ...rest);
  };
})();
"""


# -- the figure processes -----------------------------------------------------------------

def _figure(plt, case, width, height, interval_ms):
    from fastfig import demo
    if case == "line1":
        return demo.line_animation(plt, width, height, interval_ms=interval_ms)
    return demo.heavy_animation(plt, width, height, interval_ms=interval_ms,
                                blit=case == "heavy-blit")


def child_fastfig(case, width, height, port):
    import matplotlib
    matplotlib.use("fastfig")
    import matplotlib.pyplot as plt

    from fastfig.mpl import runtime
    rt = runtime.get()
    rt.keep_serving = True
    rt.announce = lambda *a: None
    rt.ensure_loop(mode="script")
    rt.ensure_server()
    fig, anim = _figure(plt, case, width, height, FASTFIG_INTERVAL_MS)
    bridge = rt.ensure_bridge(port=port)
    rt.loop.call_soon(lambda: plt.show(block=False))   # served once the loop runs
    print("ready", bridge.figure_url(str(fig.number)) + "&fit=0", flush=True)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        rt.run()
    finally:
        os._exit(0)


def child_webagg(case, width, height, port):
    import matplotlib
    matplotlib.use("webagg")
    matplotlib.rcParams.update({"webagg.open_in_browser": False, "webagg.port": port,
                                "webagg.port_retries": 1, "webagg.address": "127.0.0.1"})
    import matplotlib.pyplot as plt
    fig, anim = _figure(plt, case, width, height, WEBAGG_INTERVAL_MS)
    print("ready", f"http://127.0.0.1:{port}/{fig.number}", flush=True)
    signal.signal(signal.SIGTERM, lambda *a: os._exit(0))
    plt.show()


def start_child(system, case, size):
    from transport_helpers import free_port
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", system,
                             case, size, str(port)], stdout=subprocess.PIPE, text=True,
                            cwd=ROOT)
    line = proc.stdout.readline()
    if not line.startswith("ready"):
        proc.kill()
        raise RuntimeError(f"{system} {case} {size} did not start: {line!r}")
    return proc, line.split()[1]


# -- measuring in the browser ---------------------------------------------------------------

def painted(page, system):
    if system == "fastfig":
        return page.evaluate("[...window.fastfig.viewers.values()][0].painted")
    return page.evaluate("window.__painted")


def measure(browser, system, case, size, seconds, warmup):
    width, height = SIZES[size]
    proc, url = start_child(system, case, size)
    context = browser.new_context(viewport={"width": width + 200, "height": height + 300},
                                  device_scale_factor=1)
    try:
        page = context.new_page()
        if system == "webagg":
            page.add_init_script(COUNT_WEBAGG_PAINTS)
        deadline = time.monotonic() + 20
        while True:   # WebAgg's server may still be binding
            try:
                page.goto(url, timeout=10000)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        if system == "fastfig":
            # (functions, not expression strings: the viewer's page forbids eval)
            page.wait_for_function("() => window.fastfig && window.fastfig.viewers.size && "
                                   "[...window.fastfig.viewers.values()][0].painted > 0",
                                   timeout=20000)
        else:
            page.wait_for_function("() => window.__painted > 0", timeout=20000)
        time.sleep(warmup)
        n0, t0 = painted(page, system), time.monotonic()
        if system == "fastfig":
            page.evaluate("[...window.fastfig.viewers.values()][0].stats = "
                          "new (([...window.fastfig.viewers.values()][0].stats).constructor)"
                          f"({int(seconds * 1000)})")
        time.sleep(seconds)
        n1, t1 = painted(page, system), time.monotonic()
        result = {"system": system, "case": case, "size": size,
                  "painted_fps": (n1 - n0) / (t1 - t0), "painted": n1 - n0,
                  "seconds": t1 - t0}
        if system == "fastfig":
            r = page.evaluate("[...window.fastfig.viewers.values()][0].stats.report()")
            result.update(latency_ms=r["latencyMs"], decode_ms=r["decodeMs"],
                          kbytes_per_s=r["bytesPerSecond"] / 1024, keyframes=r["keyframes"])
        return result
    finally:
        context.close()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def run(sizes, cases, seconds, warmup):
    from playwright.sync_api import sync_playwright

    from browser_helpers import launch, missing
    why = missing()
    if why:
        raise SystemExit(f"bench_browser: {why}")
    results = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            for size in sizes:
                for case in cases:
                    for system in ("fastfig", "webagg"):
                        r = measure(browser, system, case, size, seconds, warmup)
                        print(f"  {system:8s} {case:6s} {size:10s} {r['painted_fps']:7.1f} "
                              "painted fps", flush=True)
                        results.append(r)
        finally:
            browser.close()
    return results


def table(results):
    by = {(r["system"], r["case"], r["size"]): r for r in results}
    lines = ["| case | size | fastfig painted fps | WebAgg painted fps | ratio | fastfig latency "
             "(median) | fastfig decode (median) | fastfig KB/s |",
             "|---|---|---|---|---|---|---|---|"]
    for (system, case, size), r in by.items():
        if system != "fastfig":
            continue
        w = by.get(("webagg", case, size))
        wf = w["painted_fps"] if w else float("nan")
        ratio = r["painted_fps"] / wf if w and wf > 0 else float("inf")
        fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
        lines.append(f"| {case}{' (blit)' if case == 'line1' else ''} | {size} | "
                     f"{r['painted_fps']:.1f} | {wf:.1f} | {ratio:.1f}x | "
                     f"{fmt(r.get('latency_ms'))} ms | {fmt(r.get('decode_ms'), 2)} ms | "
                     f"{fmt(r.get('kbytes_per_s'), 0)} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1920x1080 only")
    parser.add_argument("--seconds", type=float, default=5.0, help="counting window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before counting")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--child", nargs=4, metavar=("SYSTEM", "CASE", "SIZE", "PORT"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        system, case, size, port = args.child
        w, h = SIZES[size]
        (child_fastfig if system == "fastfig" else child_webagg)(case, w, h, int(port))
        return 0
    sizes = ["1920x1080"] if args.quick else list(SIZES)
    results = run(sizes, args.cases.split(","), args.seconds, args.warmup)
    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
