"""fastfig in a real marimo notebook, served by `marimo run` and driven by playwright in
Debian's Chromium: ``fastfig.widget(anim)`` as a cell's last expression shows the live
figure, the animation plays, and its timeline bar pauses and steps it; each image
paused on is exactly an Agg render of that frame.

marimo runs its cells on the loop of its own kernel (fastfig's runtime mode "host") and
closes every pyplot figure after each cell, which fastfig.widget survives."""

import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from browser_helpers import launch, missing as browser_missing
from transport_helpers import free_port

try:
    import marimo  # noqa: F401
    MARIMO = None
except ImportError as e:
    MARIMO = f"marimo is not installed ({e})"

pytestmark = pytest.mark.skipif(bool(browser_missing() or MARIMO),
                                reason=str(browser_missing() or MARIMO))

W, H = 400, 300

NOTEBOOK = textwrap.dedent('''
    import marimo

    app = marimo.App()


    @app.cell
    def _():
        import matplotlib.pyplot as plt
        import numpy as np
        from matplotlib.animation import FuncAnimation

        import fastfig

        fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
        x = np.linspace(0, 4 * np.pi, 500)
        (line,) = ax.plot(x, np.sin(x))
        anim = FuncAnimation(fig, lambda i: line.set_ydata(np.sin(x + i / 10)) or [line],
                             interval=20, blit=True, cache_frame_data=False)
        fastfig.widget(anim)
        return


    if __name__ == "__main__":
        app.run()
''')


def references():
    """Frame i of the notebook's animation as matplotlib's blit draws it: the figure
    without the animated line, the line drawn over it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(4, 3), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x = np.linspace(0, 4 * np.pi, 500)
    (line,) = ax.plot(x, np.sin(x))
    line.set_animated(True)
    canvas.draw()
    background = np.asarray(canvas.buffer_rgba()).copy()

    def frame(i):
        line.set_ydata(np.sin(x + i / 10))
        buffer = np.asarray(canvas.buffer_rgba())
        np.copyto(buffer, background)
        ax.draw_artist(line)
        return buffer.copy()
    return frame


@pytest.fixture
def marimo_app(tmp_path):
    path = tmp_path / "live.py"
    path.write_text(NOTEBOOK)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "marimo", "run", str(path), "--headless",
                             "--host", "127.0.0.1", "--port", str(port), "--no-token"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=tmp_path, env=dict(os.environ, MARIMO_SKIP_UPDATE_CHECK="1"))
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError("marimo did not start:\n" + proc.stdout.read())
            time.sleep(0.2)
    try:
        yield f"http://127.0.0.1:{port}/", proc
    finally:
        proc.terminate()
        try:
            out = proc.communicate(timeout=15)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            out = proc.communicate()[0]
        # What the kernel logged goes with a failure report.
        print(out[-4000:])


def canvas_rgba(page):
    data = page.locator("canvas.fastfig-image").evaluate(
        "(c) => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)")
    return np.array(data, dtype=np.uint8).reshape(H, W, 4)


def test_widget_plays_pauses_and_steps_in_marimo(marimo_app):
    url, proc = marimo_app
    from playwright.sync_api import sync_playwright
    frame = references()
    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900},
                                    device_scale_factor=1)
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url)
            canvas = page.locator("canvas.fastfig-image")
            canvas.wait_for(timeout=60000)
            page.wait_for_function(
                "(c) => c.width === %d && c.height === %d" % (W, H),
                arg=canvas.element_handle(), timeout=30000)

            # Playing: the page shows new images.
            seen = set()
            deadline = time.monotonic() + 20
            while len(seen) < 5 and time.monotonic() < deadline:
                seen.add(canvas_rgba(page).tobytes())
                page.wait_for_timeout(50)
            assert len(seen) >= 5, "the animation did not play"

            # Paused from the timeline bar: the image stays, and is Agg's frame i exactly.
            bar = page.locator("[data-timeline=togglePlay]")
            bar.click()
            index = page.locator(".fastfig-tl-index")

            def paused_index():
                before = index.inner_text()
                page.wait_for_timeout(300)
                return before if index.inner_text() == before else None
            shown = None
            deadline = time.monotonic() + 10
            while shown is None and time.monotonic() < deadline:
                shown = paused_index()
            assert shown is not None, "the index kept moving after pause"
            i = int(shown.split("/")[0].strip())
            assert np.array_equal(canvas_rgba(page), frame(i))

            # A step forward shows frame i + 1, drawn by the kernel for this page.
            page.locator("[data-timeline=stepForward]").click()
            deadline = time.monotonic() + 10
            while index.inner_text().split("/")[0].strip() != str(i + 1):
                assert time.monotonic() < deadline, "step forward did not reach the figure"
                page.wait_for_timeout(50)
            expected = frame(i + 1)
            deadline = time.monotonic() + 10
            while not np.array_equal(canvas_rgba(page), expected):
                assert time.monotonic() < deadline, "the page does not show frame i + 1"
                page.wait_for_timeout(50)
            assert not errors, errors
        finally:
            browser.close()
    assert proc.poll() is None, "marimo exited"
