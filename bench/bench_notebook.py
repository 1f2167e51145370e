"""Notebook benchmark: what a person sees of a moving line in JupyterLab, fastfig's widget
(``%matplotlib fastfig``) next to ipympl (``%matplotlib ipympl``), same page, same run.

    python bench/bench_notebook.py --rounds 3 --plot     # what bench/README.md reports
    python bench/bench_notebook.py --sizes 800x500 --seconds 5 --json nb.json

Each round measures every size with both backends, one after the other, so each ratio
compares runs minutes apart on the same machine; the summary gives medians over rounds
(and the median of the rounds' own fastfig/ipympl ratios) and the load average seen.
--plot writes bench/notebook_fps.png (visible frames/s and first-image latency).

For each backend and figure size, a fresh notebook (own kernel) runs:

- **first image**: a cell that makes the figure and calls plt.show(); the time from the
  cell finishing (its prompt gets its number) to the figure's canvas first showing
  pixels, both seen from the page's requestAnimationFrame loop.
- **visible frames/s**: a FuncAnimation (interval=1 ms unless --interval; blit=True: the
  same code for both; ipympl cannot blit and redraws fully) moving a sine line; once per
  display frame (rAF) the page reads one row of pixels across the middle of the figure's
  canvas and counts the frames in which it changed, over --seconds after a warm-up.
- **running cell**: a cell looping 3 s over set_ydata + draw_idle + flush_events; the
  distinct images the page showed while it ran (same rAF sampling).

JupyterLab serves on 127.0.0.1 (tests/notebook_helpers.py); Chromium is Debian's, at
device pixel ratio 1 in a viewport wide enough for a 1920 px figure (the left sidebar
closed), so neither backend scales the figure down.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import notebook_helpers as nh  # noqa: E402
from browser_helpers import launch  # noqa: E402

MAGIC = {"fastfig": "%matplotlib fastfig", "ipympl": "%matplotlib ipympl"}
# The figure's visible canvas in each backend's view.
CANVAS = {"fastfig": ".fastfig-figure canvas.fastfig-image",
          "ipympl": ".jupyter-matplotlib-canvas-div canvas"}

FIGURE = """import matplotlib.pyplot as plt, numpy as np
fig, ax = plt.subplots(figsize=({w} / 100, {h} / 100), dpi=100)
x = np.linspace(0, 4 * np.pi, 1000)
(line,) = ax.plot(x, np.sin(x))
plt.show()"""
ANIMATE = """from matplotlib.animation import FuncAnimation
anim = FuncAnimation(fig, lambda i: line.set_ydata(np.sin(x + i / 10)) or [line],
                     interval={interval}, blit=True, cache_frame_data=False)
fig.canvas.draw_idle()   # an animation starts at the figure's next draw (already drawn)"""
LOOP = """import time
line.set_animated(False)   # FuncAnimation(blit=True) left it out of full draws
end = time.monotonic() + 3
i = 0
while time.monotonic() < end:
    i += 1
    line.set_ydata(np.cos(x + i / 10))
    fig.canvas.draw_idle()
    fig.canvas.flush_events()"""

# Page side: one rAF loop; per tick, the middle row of the figure's canvas, hashed.
SAMPLER = """(selector) => {
    const s = window.ffBench = { changes: 0, ticks: 0, seen: new Set(), counting: false,
                                 firstPixels: null, cellDone: null, last: null };
    const row = () => {
        const c = document.querySelector(selector);
        if (!c || !c.width || !c.height) return null;
        const d = c.getContext("2d").getImageData(0, c.height >> 1, c.width, 1).data;
        let h = 2166136261, any = false;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i + 3]) any = true;
            h = Math.imul(h ^ d[i] ^ (d[i + 1] << 8) ^ (d[i + 2] << 16), 16777619);
        }
        return any ? h >>> 0 : null;
    };
    const tick = () => {
        const now = performance.now();
        const h = row();
        if (h !== null && s.firstPixels === null) s.firstPixels = now;
        if (s.cellDone === null && s.watchCell !== undefined) {
            const cell = window.jupyterapp.shell.currentWidget.content.widgets[s.watchCell];
            if (cell.model.executionCount !== null && !(cell.promptNode.textContent || "").includes("*")) s.cellDone = now;
        }
        if (s.counting) {
            s.ticks++;
            if (h !== null && h !== s.last) s.changes++;
            if (h !== null) s.seen.add(h);
        }
        if (h !== null) s.last = h;
        requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
}"""


def measure(page, lab, backend, w, h, seconds, interval=1):
    name = f"bench-{backend}-{w}x{h}-{time.monotonic_ns()}.ipynb"
    lab.write_notebook(name, [MAGIC[backend], FIGURE.format(w=w, h=h),
                              ANIMATE.format(interval=interval), LOOP])
    nh.open_notebook(page, lab, name)
    page.evaluate("() => { const app = window.jupyterapp;"
                  " if (!app.shell.leftCollapsed) app.commands.execute('application:toggle-left-area'); }")
    nh.run_cell(page, 0)
    page.evaluate(SAMPLER, CANVAS[backend])
    page.evaluate("() => { window.ffBench.watchCell = 1; }")
    nh.run_cell(page, 1)
    page.wait_for_function("() => window.ffBench.firstPixels !== null && window.ffBench.cellDone !== null",
                           timeout=30000)
    first_ms = page.evaluate("() => window.ffBench.firstPixels - window.ffBench.cellDone")
    canvas = page.evaluate(f"() => {{ const c = document.querySelector({json.dumps(CANVAS[backend])});"
                           " return [c.width, c.height]; }")

    nh.run_cell(page, 2)
    # Warm-up: the animation is seen moving, then gets a second to reach its pace.
    page.evaluate("() => { const s = window.ffBench; s.changes = 0; s.counting = true; }")
    try:
        page.wait_for_function("() => window.ffBench.changes >= 3", timeout=30000)
    except Exception:
        pass   # never moved: counted as such below
    page.wait_for_timeout(1000)
    page.evaluate("() => { const s = window.ffBench; s.changes = 0; s.ticks = 0; s.counting = true; }")
    t0 = time.monotonic()
    page.wait_for_timeout(seconds * 1000)
    stats = page.evaluate("() => { const s = window.ffBench; s.counting = false;"
                          " return [s.changes, s.ticks]; }")
    elapsed = time.monotonic() - t0
    nh.kernel_eval(page, "anim.event_source.stop()\n"
                         "fig.canvas.handle_event({'type': 'timeline', 'action': 'pause'})")
    page.wait_for_timeout(500)

    page.evaluate("() => { const s = window.ffBench; s.seen = new Set(); s.counting = true; }")
    nh.run_cell(page, 3, wait=False)
    try:
        nh.wait_cells_done(page, timeout=30000)
        distinct = page.evaluate("() => { const s = window.ffBench; s.counting = false;"
                                 " return s.seen.size; }")
    except Exception:
        distinct = None   # the 3 s loop did not finish within 30 s
    first_ms = max(first_ms, 0.0)   # < 0: shown while its cell was still running
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    return {"backend": backend, "size": f"{w}x{h}", "canvas": canvas,
            "visible_fps": stats[0] / elapsed, "display_fps": stats[1] / elapsed,
            "first_image_ms": first_ms, "running_cell_images": distinct}


TARGETS = {"800x500": 50, "1920x1080": 25}   # visible frames/s, issue 10
PLOT = os.path.join(HERE, "notebook_fps.png")


def median(values):
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def summarize(results, sizes, backends):
    """{(backend, size): medians} and, per size, the median of the rounds' ratios."""
    summary = {}
    for size in sizes:
        for backend in backends:
            runs = [r for r in results if r["backend"] == backend and r["size"] == size]
            if runs:
                summary[backend, size] = {
                    k: median(r[k] for r in runs)
                    for k in ("visible_fps", "display_fps", "first_image_ms", "running_cell_images")}
                summary[backend, size]["rounds"] = len(runs)
        ratios = []
        for rnd in sorted({r["round"] for r in results}):
            by = {r["backend"]: r for r in results if r["size"] == size and r["round"] == rnd}
            if "fastfig" in by and "ipympl" in by and by["ipympl"]["visible_fps"] > 0:
                ratios.append(by["fastfig"]["visible_fps"] / by["ipympl"]["visible_fps"])
        summary["ratio", size] = median(ratios)
    summary["stalls"] = {(r["backend"], r["size"]): 0 for r in results}
    for r in results:
        summary["stalls"][r["backend"], r["size"]] += r.get("stalls", 0)
    return summary


def table(summary, sizes, loads):
    """The markdown table bench/README.md shows."""
    def cell(backend, size, key, fmt):
        v = summary.get((backend, size), {}).get(key)
        return "-" if v is None else fmt.format(v)
    lines = ["| case | fastfig | ipympl | ratio | target |", "|---|---|---|---|---|"]
    for size in sizes:
        ratio = summary.get(("ratio", size))
        lines.append(f"| {size}, visible frames/s (display refreshes/s) | "
                     f"{cell('fastfig', size, 'visible_fps', '{:.1f}')} "
                     f"({cell('fastfig', size, 'display_fps', '{:.1f}')}) | "
                     f"{cell('ipympl', size, 'visible_fps', '{:.1f}')} "
                     f"({cell('ipympl', size, 'display_fps', '{:.1f}')}) | "
                     f"{'-' if ratio is None else f'{ratio:.1f}x'} | "
                     f">= {TARGETS.get(size, '-')}{', >= 3x' if size == '800x500' else ''} |")
    lines.append("| first image after the cell, " + " / ".join(sizes) + " | "
                 + " / ".join(cell("fastfig", s, "first_image_ms", "{:.0f}") for s in sizes)
                 + " ms | " + " / ".join(cell("ipympl", s, "first_image_ms", "{:.0f}") for s in sizes)
                 + " ms | | <= 300 ms |")
    lines.append("| images seen while a 3 s cell loop runs, " + " / ".join(sizes) + " | "
                 + " / ".join(cell("fastfig", s, "running_cell_images", "{:.0f}") for s in sizes)
                 + " | " + " / ".join(cell("ipympl", s, "running_cell_images", "{:.0f}") for s in sizes)
                 + " | | >= 20 |")
    stalls = summary.get("stalls", {})
    if any(stalls.values()):
        lines.append("\nAnimations that never moved and were measured again: " + ", ".join(
            f"{b} {size} {n}" for (b, size), n in sorted(stalls.items()) if n) + ".")
    lo, hi = min(loads), max(loads)
    lines.append(f"\nLoad average (1 min) during the run: {lo:.1f}-{hi:.1f}, "
                 f"median {median(loads):.1f}.")
    return "\n".join(lines)


def plot(results, summary, sizes, backends, path, loads):
    import matplotlib
    matplotlib.use("agg")
    import matplotlib.pyplot as plt
    colours = {"fastfig": "#1f77b4", "ipympl": "#ff7f0e"}
    fig, (fps_ax, lat_ax) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=100)
    width = 0.8 / len(backends)
    for i, backend in enumerate(backends):
        xs = [j + (i - (len(backends) - 1) / 2) * width for j in range(len(sizes))]
        for ax, key in ((fps_ax, "visible_fps"), (lat_ax, "first_image_ms")):
            meds = [summary.get((backend, s), {}).get(key) or 0 for s in sizes]
            ax.bar(xs, meds, width, color=colours.get(backend), label=backend)
            for x, s in zip(xs, sizes):   # each round's value
                runs = [r[key] for r in results if r["backend"] == backend and r["size"] == s]
                ax.plot([x] * len(runs), runs, "k.", markersize=4)
    for j, s in enumerate(sizes):
        if s in TARGETS:
            fps_ax.hlines(TARGETS[s], j - 0.45, j + 0.45, colors="k", linestyles="dashed")
        ratio = summary.get(("ratio", s))
        top = max((summary.get((b, s), {}).get("visible_fps") or 0) for b in backends)
        if ratio:
            fps_ax.annotate(f"{ratio:.1f}x ipympl", (j, top + 1), ha="center", va="bottom",
                            weight="bold")
    lat_ax.axhline(300, color="k", linestyle="dashed")
    for ax, title in ((fps_ax, "visible frames/s of a moving line (dashed: target)"),
                      (lat_ax, "first image after its cell, ms (dashed: 300 ms)")):
        ax.set_xticks(range(len(sizes)), sizes)
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=8)
    rounds = max((r["round"] for r in results), default=0) + 1
    fig.suptitle(f"JupyterLab + Chromium, median of {rounds} round(s) (dots: each round); "
                 f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="800x500,1920x1080")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--backends", default="fastfig,ipympl")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--interval", type=int, default=1,
                    help="the FuncAnimation's interval in ms (default 1: as fast as each "
                         "backend goes)")
    ap.add_argument("--retry-stalled", type=int, default=2, metavar="N",
                    help="measure a backend again, up to N times, when its animation never "
                         "moved (ipympl under JupyterLab 4.6 and ipykernel 7 sometimes "
                         "stalls: its page messages are handled on a subshell thread and "
                         "draw there while the animation's timer changes the figure on the "
                         "main thread); the stalls are counted in the table")
    ap.add_argument("--json")
    ap.add_argument("--plot", nargs="?", const=PLOT, help=f"write the plot (default {PLOT})")
    args = ap.parse_args(argv)
    sizes, backends = args.sizes.split(","), args.backends.split(",")
    from playwright.sync_api import sync_playwright
    results, loads = [], []
    with nh.lab_server() as lab, sync_playwright() as p:
        browser = launch(p)
        for rnd in range(args.rounds):
            for size in sizes:
                w, h = (int(v) for v in size.split("x"))
                for backend in backends:
                    stalls = 0
                    while True:
                        # A page of its own for each: nothing left running from the one
                        # before.
                        page = browser.new_page(viewport={"width": 2300, "height": 1400},
                                                device_scale_factor=1)
                        page.set_default_timeout(60000)
                        r = measure(page, lab, backend, w, h, args.seconds, args.interval)
                        page.close()
                        if r["visible_fps"] > 0 or stalls >= args.retry_stalled:
                            break
                        stalls += 1
                        print(f"round {rnd + 1} {backend:8s} {size:>10s}: the animation "
                              "never moved (a stall); measuring again", flush=True)
                    r["stalls"] = stalls
                    r["round"] = rnd
                    r["load"] = os.getloadavg()[0]
                    loads.append(r["load"])
                    results.append(r)
                    print(f"round {rnd + 1} {backend:8s} {r['size']:>10s} canvas "
                          f"{r['canvas'][0]}x{r['canvas'][1]}: "
                          f"{r['visible_fps']:5.1f} visible fps of {r['display_fps']:5.1f}, "
                          f"first image {r['first_image_ms']:6.0f} ms, "
                          f"running cell {r['running_cell_images']} images, "
                          f"load {r['load']:.1f}", flush=True)
        browser.close()
    summary = summarize(results, sizes, backends)
    print()
    print(table(summary, sizes, loads))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "loads": loads}, f, indent=1)
    if args.plot:
        plot(results, summary, sizes, backends, args.plot, loads)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
