"""matplotlib's gallery through `fastfig serve`, against Agg: each example script runs
under `fastfig serve`; at every blocking plt.show() the first frame of each shown
figure is compared byte for byte with what Agg draws for the same script at the same
show(), then every figure is closed with matplotlib's 'q' key (as a person closes the
windows of a desktop backend), so the script goes on to its next show(). Examples with
an animation are checked for frames that keep changing instead.

    python bench/gallery.py PATH...            # example .py files or directories of them
    python bench/gallery.py ~/src/matplotlib/galleries/examples/event_handling

Needs a matplotlib source checkout (the gallery is not installed with matplotlib).
Prints one line per example and a summary: exact, differ (pixels), failed (the script
raised, hung or a figure never came), skipped (needs a GUI toolkit or input).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

from fastfig import Client

#: Runs a script under Agg, saving every open figure's RGBA buffer at each plt.show()
#: (as <dir>/<show>_<figure number>.npy) and closing them, as the windows would be.
AGG_RUNNER = r"""
import os, runpy, sys
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
out, script = sys.argv[1], sys.argv[2]
shows = [0]
def show(*args, **kwargs):
    for num in plt.get_fignums():
        fig = plt.figure(num)
        fig.canvas.draw()
        np.save(os.path.join(out, f"{shows[0]}_{num}.npy"), np.asarray(fig.canvas.buffer_rgba()))
    shows[0] += 1
    plt.close("all")
plt.show = show
sys.argv = [script]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
"""

SKIP_WORDS = ("ginput", "waitforbuttonpress", "sgskip", "_qt", "_tk", "_gtk", "_wx",
              "_sgskip", "embedding")


def agg_reference(script, out, timeout):
    subprocess.run([sys.executable, "-c", AGG_RUNNER, out, str(script)], timeout=timeout,
                   capture_output=True, check=True, cwd=os.path.dirname(script))
    shows = {}
    for name in os.listdir(out):
        show, num = name[:-4].split("_")
        shows.setdefault(int(show), {})[num] = np.load(os.path.join(out, name))
    return [shows[i] for i in sorted(shows)]


def first_frame(address, figure, timeout):
    with Client(address, figure, timeout=timeout) as c:
        f = c.next_frame(timeout=timeout)
        return None if f is None else f.image.copy()


def changing(address, figure, timeout, count=3):
    with Client(address, figure, timeout=timeout) as c:
        images = []
        deadline = time.monotonic() + timeout
        while len(images) < count and time.monotonic() < deadline:
            f = c.next_frame(timeout=timeout)
            if f is None:
                break
            if not images or not np.array_equal(images[-1], f.image):
                images.append(f.image.copy())
        return len(images) >= count


def close_all(address, figures, timeout):
    """Close each figure with matplotlib's 'q' key and wait until the server says it is
    closed (pyplot numbers the next show()'s figures as the old ones, so the figure list
    alone cannot tell a new figure 1 from the old one)."""
    for fid in figures:
        with Client(address, fid, timeout=timeout) as c:
            c.next_frame(timeout=timeout)
            c.send_event("key_press", key="q")
            deadline = time.monotonic() + timeout
            while not c.closed and time.monotonic() < deadline:
                c.next_frame(timeout=0.2)


def run_one(script, timeout=60):
    """(result, detail) for one example script."""
    text = script.read_text(errors="replace")
    if any(w in script.name for w in SKIP_WORDS) or "input(" in text:
        return "skipped", "needs a GUI toolkit or input"
    animated = "FuncAnimation" in text or "ArtistAnimation" in text
    with tempfile.TemporaryDirectory() as tmp:
        try:
            reference = [] if animated else agg_reference(script, tmp, timeout)
        except subprocess.SubprocessError as e:
            return "skipped", f"fails under Agg too: {type(e).__name__}"
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "serve", str(script),
                             "--no-viewer", "--address", "tcp"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=script.parent)
    try:
        line = proc.stdout.readline()
        if not line.startswith("fastfig: serving"):
            proc.wait(timeout)
            err = proc.stderr.read().strip().splitlines()
            if proc.returncode == 0 and not reference:
                return "exact", "no figure shown"
            return "failed", err[-1] if err else f"status {proc.returncode}"
        address = line.split(" on ")[1].split()[0]
        differ, shows = [], 0
        # One client watches the figure list throughout (lists are pushed to it).
        watcher = Client(address, timeout=timeout)
        figures = [f["id"] for f in watcher.figures()]
        while figures:
            if animated:
                if not changing(address, figures[0], timeout):
                    return "failed", f"figure {figures[0]}: no changing frames"
            elif shows < len(reference):
                for fid in figures:
                    image = first_frame(address, fid, timeout)
                    expected = reference[shows].get(fid)
                    if image is None:
                        return "failed", f"show {shows}: figure {fid} sent no frame"
                    if expected is None or image.shape != expected.shape:
                        differ.append(f"show {shows} figure {fid}: shape")
                    elif not np.array_equal(image, expected):
                        n = int((image != expected).any(axis=2).sum())
                        differ.append(f"show {shows} figure {fid}: {n} pixels")
            close_all(address, figures, timeout)
            shows += 1
            figures = _next_figures(watcher, proc, timeout)
        watcher.close()
        status = proc.wait(timeout)
        if status != 0:
            return "failed", f"status {status}: {proc.stderr.read().strip()[-200:]}"
        if not animated and shows < len(reference):
            return "failed", f"{shows} of {len(reference)} shows served"
        if differ:
            return "differ", "; ".join(differ)
        return ("animated" if animated else "exact"), f"{shows} show(s)"
    except (subprocess.TimeoutExpired, TimeoutError) as e:
        return "failed", f"hung: {e}"
    finally:
        proc.kill()
        proc.wait()


def _next_figures(watcher, proc, timeout):
    """The figures of the script's next show() (the closed ones are gone: close_all waited
    for that), or [] when the script ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return []
        try:
            figures = [f["id"] for f in watcher.figures()]
        except Exception:      # the server went away with the script
            return []
        if figures:
            # A script that ends after its last show() takes its server down meanwhile,
            # and figures() then gives the last list it knew (the closed figures): a
            # process that exits now had no next show().
            try:
                proc.wait(0.5)
                return []
            except subprocess.TimeoutExpired:
                return figures
        time.sleep(0.05)   # another process's figure list: nothing here to wait on
    raise TimeoutError("the next show() never came")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=pathlib.Path)
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    scripts = []
    for path in args.paths:
        scripts += sorted(path.glob("*.py")) if path.is_dir() else [path]
    results = {}
    for script in scripts:
        result, detail = run_one(script.resolve(), args.timeout)
        results[script.name] = (result, detail)
        print(f"{result:9} {script.name}: {detail}", flush=True)
    counts = {}
    for result, _ in results.values():
        counts[result] = counts.get(result, 0) + 1
    print("summary:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if not counts.get("failed") and not counts.get("differ") else 1


if __name__ == "__main__":
    sys.exit(main())
