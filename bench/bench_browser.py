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
control lets it: fastfig renders on demand, when the tab has returned the credit of what it
was sent (the viewer returns it once per display frame, with the paint), WebAgg on its
one-frame-in-flight "draw" requests.
WebAgg cannot blit: its canvas has supports_blit = False, so FuncAnimation redraws fully.

What is counted is what a person sees: display refreshes (requestAnimationFrame ticks,
counted by an init script's own rAF loop in both pages) and, of those, the ticks in which
the figure's canvas changed ("painted"): fastfig's viewer paints at most once per tick and
counts its paints; on the WebAgg page the init script counts drawImage calls of the
figure's image (mpl.js draws each received frame with one drawImage, whenever it arrives,
so two frames in one refresh count as one painted tick). fastfig's viewer also reports the
packets it received and the ones it applied but never painted (dropped: a newer one came
before the next refresh). CPU time of the figure's process (matplotlib, server, bridge),
of the browser's processes, and of the whole machine over the window says who was busy.
Counting starts after a warm-up and runs for --seconds. Chromium is Debian's
/usr/bin/chromium at device pixel ratio 1, with a viewport larger than the figure.
"painted of 60" is painted refreshes / refreshes x 60: the share of display frames that
showed a new image, whatever rate the loaded machine let the page refresh at.
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

#: Both pages: count display refreshes and the refreshes in which the figure's canvas
#: changed. window.__paints() is the page's own paint counter (set per system below).
COUNT_TICKS = """
(() => {
  const t = window.__ticks = { ticks: 0, painted: 0, last: null, slow: 0, prev: null, t0: 0 };
  t.reset = () => { t.ticks = 0; t.painted = 0; t.slow = 0; t.t0 = t.prev; };
  t.read = () => ({ ticks: t.ticks, painted: t.painted, slow: t.slow,
                    seconds: (t.prev - t.t0) / 1000 });
  const tick = (now) => {
    let n = 0;
    try { n = window.__paints ? window.__paints() : 0; } catch (_) { n = 0; }
    if (t.last !== null) {
      t.ticks++;
      if (n !== t.last) t.painted++;
      if (now - t.prev > 25) t.slow++;   // a refresh missed: the main thread was busy
    }
    t.last = n;
    t.prev = now;
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
})();
"""

FASTFIG_PAINTS = """
window.__paints = () => {
  const v = window.fastfig && [...window.fastfig.viewers.values()][0];
  return v ? v.painted : 0;
};
"""

COUNT_WEBAGG_PAINTS = """
(() => {
  window.__painted = 0;
  const draw = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (image, ...rest) {
    if (image instanceof HTMLImageElement) window.__painted++;
    return draw.call(this, image, ...rest);
  };
  window.__paints = () => window.__painted;
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


def stop_child(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- measuring in the browser ---------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _children():
    """pid -> parent pid for every process."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    out[int(name)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    return out


def _tree(root, parents):
    pids, grew = {root}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in pids and p not in pids}
        pids |= more
        grew = bool(more)
    return pids


def _cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])   # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / _TICK


def _machine_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return (sum(v) - idle) / _TICK


class CpuWindow:
    """CPU seconds over a window: the figure's process tree, the browser (every other
    process under this one: playwright's driver and Chromium) and the whole machine."""

    def __init__(self, figure_pid):
        self.figure_pid = figure_pid

    def _sample(self):
        parents = _children()
        figure = _tree(self.figure_pid, parents)
        browser = _tree(os.getpid(), parents) - figure - {os.getpid()}
        return (time.monotonic(), _cpu_seconds(figure), _cpu_seconds(browser),
                _machine_busy())

    def start(self):
        self.t0 = self._sample()

    def stop(self):
        t1 = self._sample()
        wall = t1[0] - self.t0[0]
        figure, browser, machine = (t1[i] - self.t0[i] for i in (1, 2, 3))
        return {"cpu_figure": figure / wall, "cpu_browser": browser / wall,
                "cpu_others": max(0.0, machine - figure - browser) / wall,
                "loadavg": os.getloadavg()[0]}


#: The refresh counts and, on fastfig's page, the viewer's packet counters, read together.
READ_COUNTS = """() => {
  const out = { ticks: window.__ticks.read() };
  const v = window.fastfig && [...window.fastfig.viewers.values()][0];
  if (v) out.viewer = { received: v.received, dropped: v.dropped, rejected: v.rejected };
  return out;
}"""


def measure(browser, system, case, size, seconds, warmup):
    width, height = SIZES[size]
    proc, url = start_child(system, case, size)
    context = browser.new_context(viewport={"width": width + 200, "height": height + 300},
                                  device_scale_factor=1)
    try:
        page = context.new_page()
        page.add_init_script(COUNT_TICKS)
        page.add_init_script(FASTFIG_PAINTS if system == "fastfig" else COUNT_WEBAGG_PAINTS)
        deadline = time.monotonic() + 20
        while True:   # WebAgg's server may still be binding
            try:
                page.goto(url, timeout=10000)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        # (functions, not expression strings: the viewer's page forbids eval)
        page.wait_for_function("() => window.__paints() > 0", timeout=20000)
        time.sleep(warmup)
        cpu = CpuWindow(proc.pid)
        if system == "fastfig":
            page.evaluate("[...window.fastfig.viewers.values()][0].stats = "
                          "new (([...window.fastfig.viewers.values()][0].stats).constructor)"
                          f"({int(seconds * 1000)})")
        # The page's main thread: time in tasks and in scripts (Chromium's own counters).
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        main_thread = lambda: {m["name"]: m["value"] for m in  # noqa: E731
                               cdp.send("Performance.getMetrics")["metrics"]}
        page.evaluate("window.__ticks.reset()")
        c0, m0 = page.evaluate(READ_COUNTS), main_thread()
        cpu.start()
        time.sleep(seconds)
        c1, m1 = page.evaluate(READ_COUNTS), main_thread()
        result = {"system": system, "case": case, "size": size}
        result.update(cpu.stop())
        wall = m1["Timestamp"] - m0["Timestamp"]
        result.update(main_busy=(m1["TaskDuration"] - m0["TaskDuration"]) / wall,
                      main_script=(m1["ScriptDuration"] - m0["ScriptDuration"]) / wall)
        # rates over the page's own clock, from the first to the last refresh counted
        span = c1["ticks"]["seconds"] - c0["ticks"]["seconds"]
        ticks, painted = (c1["ticks"][k] - c0["ticks"][k] for k in ("ticks", "painted"))
        result.update(seconds=span, ticks=ticks, painted_ticks=painted,
                      slow_ticks=c1["ticks"]["slow"] - c0["ticks"]["slow"],
                      ticks_per_s=ticks / span, painted_fps=painted / span,
                      painted_share=painted / max(1, ticks))
        for k, v in (c1.get("viewer") or {}).items():
            if v is not None:
                result[f"{k}_fps"] = (v - c0["viewer"][k]) / span
        if system == "fastfig":
            r = page.evaluate("[...window.fastfig.viewers.values()][0].stats.report()")
            result.update(latency_ms=r["latencyMs"], decode_ms=r["decodeMs"],
                          round_trip_ms=r.get("roundTripMs"),
                          kbytes_per_s=r["bytesPerSecond"] / 1024, keyframes=r["keyframes"])
        return result
    finally:
        context.close()
        stop_child(proc)


def run(sizes, cases, seconds, warmup, repeat=1):
    from playwright.sync_api import sync_playwright

    from browser_helpers import launch, missing
    why = missing()
    if why:
        raise SystemExit(f"bench_browser: {why}")
    results = []
    with sync_playwright() as p:
        browser = launch(p)
        try:
            # Each pair side by side, pair after pair: the load of a shared machine drifts.
            for attempt in range(repeat):
                for size in sizes:
                    for case in cases:
                        for system in ("fastfig", "webagg"):
                            r = measure(browser, system, case, size, seconds, warmup)
                            r["run"] = attempt + 1
                            print("  " + line(r), flush=True)
                            results.append(r)
        finally:
            browser.close()
    return results


def line(r):
    """One result as a line of text."""
    text = (f"{r['system']:8s} {r['case']:10s} {r['size']:10s} painted {r['painted_ticks']:4d} "
            f"of {r['ticks']:4d} refreshes ({60 * r['painted_share']:4.1f} of 60, "
            f"{r['painted_fps']:5.1f}/s; {r['slow_ticks']} late)")
    if "received_fps" in r:
        text += (f" received {r['received_fps']:5.1f}/s dropped {r.get('dropped_fps', 0):5.1f}/s"
                 f" round trip {r.get('round_trip_ms') or 0:.1f} ms"
                 f" decode {r.get('decode_ms') or 0:.1f} ms latency {r.get('latency_ms') or 0:.1f} ms")
    return text + (f" | page main thread busy {r['main_busy']:.2f} (script {r['main_script']:.2f})"
                   f" | cpu figure {r['cpu_figure']:.2f} browser {r['cpu_browser']:.2f} "
                   f"others {r['cpu_others']:.2f} load {r['loadavg']:.1f}")


def per_cpu(r):
    """Frames painted per CPU second of the figure's process: what each side makes of the
    CPU it got, which a machine shared with other work hands out unevenly."""
    return r["painted_fps"] / r["cpu_figure"] if r["cpu_figure"] > 0 else float("nan")


def table(results):
    by = {(r["system"], r["case"], r["size"], r.get("run", 1)): r for r in results}
    lines = ["| case | size | fastfig painted of 60 refreshes | fastfig received / dropped per s "
             "| WebAgg painted of 60 | ratio | ratio per figure CPU second "
             "| fastfig round trip / latency (median) "
             "| CPU figure / browser / others (fastfig; WebAgg) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (system, case, size, attempt), r in by.items():
        if system != "fastfig":
            continue
        w = by.get(("webagg", case, size, attempt))
        wf = w["painted_fps"] if w else float("nan")
        ratio = r["painted_fps"] / wf if w and wf > 0 else float("inf")
        fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
        cpu = lambda x: f"{x['cpu_figure']:.2f} / {x['cpu_browser']:.2f} / {x['cpu_others']:.2f}"  # noqa: E731
        lines.append(
            f"| {case}{' (blit)' if case == 'line1' else ''} | {size} "
            f"| {60 * r['painted_share']:.1f} ({r['painted_fps']:.1f}/s, {r['ticks_per_s']:.0f} "
            f"refreshes/s) | {fmt(r.get('received_fps'))} / {fmt(r.get('dropped_fps'))} "
            f"| {60 * w['painted_share'] if w else float('nan'):.1f} ({wf:.1f}/s) | {ratio:.1f}x "
            f"| {per_cpu(r) / per_cpu(w) if w else float('nan'):.1f}x "
            f"| {fmt(r.get('round_trip_ms'))} / {fmt(r.get('latency_ms'))} ms "
            f"| {cpu(r)}; {cpu(w) if w else '-'} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1920x1080 only")
    parser.add_argument("--seconds", type=float, default=5.0, help="counting window")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before counting")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--repeat", type=int, default=1,
                        help="measure every pair this many times (a row each)")
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
    results = run(sizes, args.cases.split(","), args.seconds, args.warmup, args.repeat)
    print()
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
