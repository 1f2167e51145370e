"""Notebook benchmark: what a person sees of a moving line in JupyterLab, fastfig's widget
(``%matplotlib fastfig``) next to ipympl (``%matplotlib ipympl``), same page, same run.

    python bench/bench_notebook.py                  # 800x500 and 1920x1080
    python bench/bench_notebook.py --sizes 800x500 --seconds 5 --json nb.json

For each backend and figure size, a fresh notebook (own kernel) runs:

- **first image**: a cell that makes the figure and calls plt.show(); the time from the
  cell finishing (its prompt gets its number) to the figure's canvas first showing
  pixels, both seen from the page's requestAnimationFrame loop.
- **visible frames/s**: a FuncAnimation (interval=1 ms, blit=True: the same code for
  both; ipympl cannot blit and redraws fully) moving a sine line; once per display frame
  (rAF) the page reads one row of pixels across the middle of the figure's canvas and
  counts the frames in which it changed, over --seconds after a warm-up.
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
                     interval=1, blit=True, cache_frame_data=False)
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


def measure(page, lab, backend, w, h, seconds):
    name = f"bench-{backend}-{w}x{h}.ipynb"
    lab.write_notebook(name, [MAGIC[backend], FIGURE.format(w=w, h=h), ANIMATE, LOOP])
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
    nh.kernel_eval(page, "anim.event_source.stop()")
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


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="800x500,1920x1080")
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--backends", default="fastfig,ipympl")
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    results = []
    with nh.lab_server() as lab, sync_playwright() as p:
        browser = launch(p)
        for size in args.sizes.split(","):
            w, h = (int(v) for v in size.split("x"))
            for backend in args.backends.split(","):
                # A page of its own for each: nothing left running from the one before.
                page = browser.new_page(viewport={"width": 2300, "height": 1400},
                                        device_scale_factor=1)
                page.set_default_timeout(60000)
                r = measure(page, lab, backend, w, h, args.seconds)
                page.close()
                results.append(r)
                print(f"{backend:8s} {r['size']:>10s} canvas {r['canvas'][0]}x{r['canvas'][1]}: "
                      f"{r['visible_fps']:5.1f} visible fps of {r['display_fps']:5.1f}, "
                      f"first image {r['first_image_ms']:6.0f} ms, "
                      f"running cell {r['running_cell_images']} images, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        browser.close()
    for size in args.sizes.split(","):
        by = {r["backend"]: r for r in results if r["size"] == size}
        if "fastfig" in by and "ipympl" in by and by["ipympl"]["visible_fps"] > 0:
            print(f"{size}: fastfig/ipympl visible fps = "
                  f"{by['fastfig']['visible_fps'] / by['ipympl']['visible_fps']:.1f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
