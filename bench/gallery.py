"""matplotlib's gallery through `fastfig serve`, against Agg: each example script runs
under `fastfig serve`; at every blocking plt.show() the first frame of each shown
figure is compared byte for byte with what Agg draws for the same script at the same
show(), then every figure is closed with matplotlib's 'q' key (as a person closes the
windows of a desktop backend), so the script goes on to its next show(). Examples with
an animation are checked for frames that keep changing instead. With --interact (the
event_handling folder in a sweep), the first show's first figure also gets INPUT (the
pointer moved, dragged, clicked, scrolled, keys typed) through the protocol, and the
images the script's callbacks leave are compared with Agg's after the same matplotlib
events.

    python bench/gallery.py PATH...            # example .py files or directories of them
    python bench/gallery.py --interact ~/src/matplotlib/galleries/examples/event_handling
    python bench/gallery.py --sweep ~/src/matplotlib/galleries/examples

--sweep runs the documented selection (SWEEP): the first files, in sorted order, of four
static sections (60 examples), and the whole animation and event_handling folders.
Needs a matplotlib source checkout or sdist (the gallery is not installed with
matplotlib). Prints one line per example and a summary: exact, differ (pixels), animated,
failed (the script raised, hung or a figure never came), skipped (needs a GUI toolkit or
input, or fails under Agg too).
"""

import argparse
import collections
import json
import os
import pathlib
import queue
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from fastfig import Client, ServerError

#: The documented sweep: (folder, how many of its examples in sorted order; None: all).
SWEEP = (("lines_bars_and_markers", 25), ("images_contours_and_fields", 15),
         ("subplots_axes_and_figures", 12), ("text_labels_and_annotations", 8),
         ("animation", None), ("event_handling", None))
#: Folders whose examples get INPUT in a sweep.
INTERACTIVE_FOLDERS = ("event_handling",)

#: What a person does to an event-handling example: (protocol event type, position as
#: fractions of the figure's width and height from its top left or None (the pointer
#: stays), fields). No key of matplotlib's default keymap (they differ with a toolbar),
#: no 'q' (it closes the figure).
INPUT = (
    ("figure_enter", 0.5, 0.5, {}),
    ("motion_notify", 0.3, 0.3, {}),
    ("motion_notify", 0.5, 0.5, {}),
    ("motion_notify", 0.55, 0.45, {}),
    ("button_press", 0.5, 0.5, {"button": 1}),
    ("motion_notify", 0.55, 0.55, {"buttons": 1}),
    ("motion_notify", 0.6, 0.6, {"buttons": 1}),
    ("button_release", 0.6, 0.6, {"button": 1}),
    ("button_press", 0.4, 0.6, {"button": 3}),
    ("button_release", 0.4, 0.6, {"button": 3}),
    ("scroll", 0.5, 0.5, {"step": 1}),
    ("scroll", 0.5, 0.5, {"step": -1}),
    ("scroll", 0.5, 0.5, {"step": 1}),
    ("key_press", None, None, {"key": "t"}),
    ("key_release", None, None, {"key": "t"}),
    ("key_press", None, None, {"key": "n"}),
    ("key_release", None, None, {"key": "n"}),
    ("key_press", None, None, {"key": "x"}),
    ("key_release", None, None, {"key": "x"}),
    ("key_press", None, None, {"key": "up"}),
    ("key_release", None, None, {"key": "up"}),
    ("motion_notify", 0.45, 0.55, {}),
)

#: Runs a script under Agg, saving every open figure's RGBA buffer at each plt.show()
#: (as <dir>/<show>_<figure number>.npy) and closing them, as the windows would be. Given
#: INPUT (json), the first show's first figure then gets it as matplotlib events, made here
#: independently of fastfig's translation, and the buffers are saved again (as
#: <dir>/input_<figure number>.npy), as the script's callbacks left them: Agg's draw_idle
#: draws at once, so nothing is drawn again (a blitting example keeps its blits). Then
#: each is drawn once more (<dir>/redrawn_<n>.npy): a desktop backend's draw_idle, and
#: fastfig's, draws after the callback that asked, not inside it, so a callback that
#: changes the figure after its draw_idle (lasso_demo's Lasso removes its line after
#: calling back) is seen as drawn then.
AGG_RUNNER = r"""
import json, os, runpy, sys, traceback
import matplotlib
matplotlib.use("agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backend_bases import KeyEvent, LocationEvent, MouseButton, MouseEvent
out, script, given = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
shows = [0]
def interact(canvas):
    height, width = canvas.get_renderer().height, canvas.get_renderer().width
    held, x, y = set(), 0, 0
    for etype, fx, fy, fields in given:
        if fx is not None:
            x, y = round(fx * width), canvas.figure.bbox.height - round(fy * height)
        if etype in ("button_press", "button_release"):
            button = MouseButton(fields["button"])
            (held.add if etype == "button_press" else held.discard)(button)
            MouseEvent(etype + "_event", canvas, x, y, button)._process()
        elif etype == "motion_notify":
            MouseEvent("motion_notify_event", canvas, x, y, buttons=set(held))._process()
        elif etype == "scroll":
            MouseEvent("scroll_event", canvas, x, y, step=fields["step"])._process()
        elif etype in ("figure_enter", "figure_leave"):
            LocationEvent(etype + "_event", canvas, x, y)._process()
        else:
            KeyEvent(etype + "_event", canvas, fields["key"], x, y)._process()
def show(*args, **kwargs):
    nums = plt.get_fignums()
    for num in nums:
        fig = plt.figure(num)
        fig.canvas.draw()
        np.save(os.path.join(out, f"{shows[0]}_{num}.npy"), np.asarray(fig.canvas.buffer_rgba()))
    if given and shows[0] == 0 and nums:
        try:
            interact(plt.figure(nums[0]).canvas)
        except Exception:
            with open(os.path.join(out, "input_error.txt"), "w") as f:
                f.write(traceback.format_exc())
        for num in plt.get_fignums():
            canvas = plt.figure(num).canvas
            np.save(os.path.join(out, f"input_{num}.npy"), np.asarray(canvas.buffer_rgba()))
            canvas.draw()
            np.save(os.path.join(out, f"redrawn_{num}.npy"), np.asarray(canvas.buffer_rgba()))
    shows[0] += 1
    plt.close("all")
plt.show = show
sys.argv = [script]
sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
runpy.run_path(script, run_name="__main__")
"""

SKIP_WORDS = ("ginput", "waitforbuttonpress", "sgskip", "_qt", "_tk", "_gtk", "_wx",
              "_sgskip", "embedding")


class Reference:
    """What Agg draws for a script: shows[i][figure] at each show(), after_input[figure]
    once the first show's first figure got INPUT, input_error (a traceback) if it raised."""

    def __init__(self, script, out, timeout, interact):
        given = json.dumps(INPUT if interact else [])
        subprocess.run([sys.executable, "-c", AGG_RUNNER, out, str(script), given],
                       timeout=timeout, capture_output=True, check=True,
                       cwd=os.path.dirname(script))
        shows, self.after_input, self.input_error = {}, {}, None
        self.redrawn = {}
        for name in os.listdir(out):
            stem, ext = os.path.splitext(name)
            if ext == ".txt":
                self.input_error = pathlib.Path(out, name).read_text().strip()
                continue
            show, num = stem.split("_")
            image = np.load(os.path.join(out, name))
            if show == "input":
                self.after_input[num] = image
            elif show == "redrawn":
                self.redrawn[num] = image
            else:
                shows.setdefault(int(show), {})[num] = image
        self.shows = [shows[i] for i in sorted(shows)]


def agg_repeats(script, reference, timeout, interact):
    """Whether Agg draws the same images for the script again: if not, the script itself
    draws differently from run to run, and a difference says nothing about fastfig."""
    with tempfile.TemporaryDirectory() as tmp:
        again = Reference(script, tmp, timeout, interact)
    same = lambda a, b: a.keys() == b.keys() and all(  # noqa: E731
        np.array_equal(a[k], b[k]) for k in a)
    return (len(again.shows) == len(reference.shows)
            and all(same(a, b) for a, b in zip(again.shows, reference.shows))
            and same(again.after_input, reference.after_input))


class Output:
    """A served script's stdout and stderr, read in threads as they come: a script that
    prints on every event (resample.py) must never block on a full pipe, and its own
    output may come before fastfig's "serving" line."""

    def __init__(self, proc):
        self._announced = queue.Queue()
        self.stderr = collections.deque(maxlen=200)
        threading.Thread(target=self._read_stdout, args=(proc.stdout,), daemon=True).start()
        self._err = threading.Thread(target=self.stderr.extend, args=(proc.stderr,),
                                     daemon=True)
        self._err.start()

    def _read_stdout(self, stream):
        for line in stream:
            if line.startswith("fastfig: serving"):
                self._announced.put(line)
        self._announced.put(None)   # the process ended

    def address(self, timeout):
        """The server's address once the script serves, None if it ended without."""
        try:
            line = self._announced.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"nothing served within {timeout} s") from None
        return None if line is None else line.split(" on ")[1].split()[0]

    def error_text(self):
        self._err.join(timeout=5)
        return "".join(self.stderr).strip()


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


def settled_image(client, quiet=1.0, limit=5.0):
    """The client's image once no new frame came for quiet seconds (at most limit seconds:
    a timer may redraw for ever), and whether it settled."""
    deadline = time.monotonic() + limit
    for _ in client.frames(timeout=quiet):
        if time.monotonic() > deadline:
            return client.image.copy(), False
    return client.image.copy(), True


def give_input(address, figures, timeout):
    """Send INPUT to figures[0] and return {figure: image} once the callbacks' drawing has
    settled, and the figures that kept changing."""
    with Client(address, figures[0], timeout=timeout) as c:
        first = c.next_frame(timeout=timeout)
        if first is None:
            raise TimeoutError(f"figure {figures[0]} sent no frame")
        height, width = first.image.shape[:2]
        for etype, fx, fy, fields in INPUT:
            position = {} if fx is None else {"x": round(fx * width), "y": round(fy * height)}
            c.send_event(etype, **position, **fields)
        # A figure list asked after the events is answered after they were handled
        # (one socket, in order): what they drew is on its way.
        c.figures(timeout=timeout)
        images, restless = {}, []
        images[figures[0]], settled = settled_image(c)
        if not settled:
            restless.append(figures[0])
    for fid in figures[1:]:
        with Client(address, fid, timeout=timeout) as c:
            c.next_frame(timeout=timeout)
            images[fid], settled = settled_image(c)
            if not settled:
                restless.append(fid)
    return images, restless


def close_all(address, figures, timeout, proc):
    """Close each figure with matplotlib's 'q' key and wait until the server says it is
    closed (pyplot numbers the next show()'s figures as the old ones, so the figure list
    alone cannot tell a new figure 1 from the old one), or the script ended: a script
    that exits right after its last figure closed may take the close message with it
    (seen 4 times in 40 on the loaded machine)."""
    for fid in figures:
        if proc.poll() is not None:
            return
        try:
            with Client(address, fid, timeout=timeout) as c:
                c.next_frame(timeout=timeout)
                c.send_event("key_press", key="q")
                deadline = time.monotonic() + timeout
                while not c.closed and proc.poll() is None and time.monotonic() < deadline:
                    c.next_frame(timeout=0.2)
        except TimeoutError:
            if proc.poll() is None:
                raise
            return                # the script ended meanwhile, and its server with it


def compare(label, image, expected, differ):
    if expected is None or image.shape != expected.shape:
        differ.append(f"{label}: shape")
    elif not np.array_equal(image, expected):
        n = int((image != expected).any(axis=2).sum())
        differ.append(f"{label}: {n} pixels")


def run_one(script, timeout=60, interact=False):
    """(result, detail) for one example script."""
    text = script.read_text(errors="replace")
    if any(w in script.name for w in SKIP_WORDS) or "input(" in text:
        return "skipped", "needs a GUI toolkit or input"
    # (the animation folder's plt.pause loops are animations too)
    animated = ("FuncAnimation" in text or "ArtistAnimation" in text
                or script.parent.name == "animation")
    interact = interact and not animated
    with tempfile.TemporaryDirectory() as tmp:
        try:
            reference = None if animated else Reference(script, tmp, timeout, interact)
        except subprocess.SubprocessError as e:
            return "skipped", f"fails under Agg too: {type(e).__name__}"
    shown = reference.shows if reference is not None else []
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "serve", str(script),
                             "--no-viewer", "--address", "tcp"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=script.parent)
    output = Output(proc)
    try:
        address = output.address(timeout)
        if address is None:
            proc.wait(timeout)
            err = output.error_text().splitlines()
            if proc.returncode == 0 and not shown:
                return "exact", "no figure shown"
            return "failed", err[-1] if err else f"status {proc.returncode}"
        differ, notes, shows = [], [], 0
        figures = _next_figures(address, proc, timeout)
        while figures:
            if animated:
                if not changing(address, figures[0], timeout):
                    return "failed", f"figure {figures[0]}: no changing frames"
            elif shows < len(shown):
                for fid in figures:
                    image = first_frame(address, fid, timeout)
                    if image is None:
                        return "failed", f"show {shows}: figure {fid} sent no frame"
                    compare(f"show {shows} figure {fid}", image, shown[shows].get(fid),
                            differ)
                if interact and shows == 0:
                    images, restless = give_input(address, figures, timeout)
                    for fid, image in images.items():
                        redrawn = reference.redrawn.get(fid)
                        if (redrawn is not None and np.array_equal(image, redrawn)
                                and not np.array_equal(image, reference.after_input.get(fid))):
                            notes.append(f"figure {fid} after input equals Agg's once drawn "
                                         "after the callbacks (Agg's draw_idle draws inside them)")
                            continue
                        compare(f"figure {fid} after input", image,
                                reference.after_input.get(fid), differ)
                    if restless:
                        notes.append(f"figure(s) {', '.join(restless)} kept changing")
                    moved = [fid for fid, image in reference.after_input.items()
                             if not np.array_equal(image, shown[0].get(fid))]
                    notes.append(f"input changed figure(s) {', '.join(moved)}" if moved
                                 else "input changed no image")
            close_all(address, figures, timeout, proc)
            shows += 1
            figures = _next_figures(address, proc, timeout)
        status = proc.wait(timeout)
        err = output.error_text()
        if status != 0:
            return "failed", f"status {status}: {err[-200:]}"
        if "Traceback" in err:
            agg = " (raises under Agg too)" if reference and reference.input_error else ""
            return "failed", f"traceback{agg}: {err.splitlines()[-1][:200]}"
        if not animated and shows < len(shown):
            return "failed", f"{shows} of {len(shown)} shows served"
        detail = f"{shows} show(s)" + "".join(f", {n}" for n in notes)
        if differ:
            if not agg_repeats(script, reference, timeout, interact):
                detail += ", Agg differs from itself in a second run (unseeded random, clock)"
            return "differ", f"{detail}; " + "; ".join(differ)
        return ("animated" if animated else "exact"), detail
    except (subprocess.TimeoutExpired, TimeoutError) as e:
        return "failed", f"hung: {e}"
    except ServerError as e:     # a figure listed was gone when joined
        return "failed", f"{type(e).__name__}: {e}"
    finally:
        proc.kill()
        proc.wait()


def _next_figures(address, proc, timeout):
    """The figures of the script's next show() (the closed ones are gone: close_all waited
    for that), or [] when the script ended. Each look is a new client's: its figure list
    is no older than its hello, where a long-lived client's answer may be a list pushed
    before it asked (naming a figure closed since)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return []
        try:
            with Client(address, timeout=1.0) as c:
                return [f["id"] for f in c.figures(timeout=1.0)]
        except (TimeoutError, ServerError):
            # No figure yet, or no answer: the script works towards its next show()
            # (its loop, and so the server, runs only while it shows), or it is ending.
            pass
    raise TimeoutError("the next show() never came")


def sweep(examples):
    """(script, interact) of the documented sweep (SWEEP) in a galleries/examples folder."""
    out = []
    for folder, count in SWEEP:
        scripts = sorted((examples / folder).glob("*.py"))[:count]
        if not scripts:
            raise SystemExit(f"{examples / folder}: no examples (not a galleries/examples?)")
        out += [(s, folder in INTERACTIVE_FOLDERS) for s in scripts]
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=pathlib.Path)
    parser.add_argument("--sweep", type=pathlib.Path, metavar="EXAMPLES",
                        help="run SWEEP from this galleries/examples folder")
    parser.add_argument("--interact", action="store_true",
                        help="give the PATHS' examples INPUT and compare the result")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--retry", action="store_true",
                        help="run a failed example once more (reported with both results)")
    args = parser.parse_args(argv)
    scripts = sweep(args.sweep) if args.sweep else []
    for path in args.paths:
        found = sorted(path.glob("*.py")) if path.is_dir() else [path]
        scripts += [(s, args.interact) for s in found]
    results = {}
    for script, interact in scripts:
        started = time.monotonic()
        script = script.resolve()
        result, detail = run_one(script, args.timeout, interact)
        if result == "failed" and args.retry:
            # On a machine shared with other work a step can miss its time limit: say so.
            again, again_detail = run_one(script, args.timeout, interact)
            if again != "failed":
                result, detail = again, f"{again_detail} (second try; first: {detail})"
        results[f"{script.parent.name}/{script.name}"] = (result, detail)
        print(f"{result:9} {script.parent.name}/{script.name} "
              f"({time.monotonic() - started:.1f} s, load {os.getloadavg()[0]:.1f}): {detail}",
              flush=True)
    counts = {}
    for result, _ in results.values():
        counts[result] = counts.get(result, 0) + 1
    print("summary:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if not counts.get("failed") and not counts.get("differ") else 1


if __name__ == "__main__":
    sys.exit(main())
