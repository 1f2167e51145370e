"""Interaction through the viewer in a real headless Chromium, with figures served by the
fastfig backend: pan and zoom with the toolbar (the axes limits on the server end as Qt's
would for the same pointer input), a key press reaching an mpl_connect handler, downloads
in PNG and SVG, resizing the page resizes the figure, and ``fastfig demo`` end to end.
"""

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.figure import Figure

import fastfig
from backend_helpers import QtReference, rt, wait_for  # noqa: F401 (rt is a fixture)
from browser_helpers import checked_page, missing, viewer_value, wait_viewer

REASON = missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser tests: {REASON}")
TIMEOUT = 10000


@pytest.fixture
def page(browser):
    yield from checked_page(browser, 1000, 800, TIMEOUT, accept_downloads=True)


@pytest.fixture
def bridge(rt):  # noqa: F811
    return rt.ensure_bridge()


def plot_figure(width=640, height=480):
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    ax = fig.add_subplot()
    x = np.linspace(0, 10, 200)
    ax.plot(x, np.sin(x))
    ax.set_xlim(0, 10)
    ax.set_ylim(-1.5, 1.5)
    return fig, ax


class Shown:
    """A figure served by the runtime and open in the page, alone, at its own size."""

    def __init__(self, rt, bridge, page, fig, fit=False):  # noqa: F811
        self.rt, self.page, self.fig = rt, page, fig
        self.stream = rt.call(lambda: fastfig.show(fig, block=False))
        self.id = self.stream.id
        self.events = []
        self.stream.on_event(self.events.append)
        url = bridge.figure_url(self.id) + ("" if fit else "&fit=0")
        page.goto(url)
        wait_viewer(page, self.id, "v.painted > 0 && v.connected")
        self.overlay = page.locator(f'section[data-figure="{self.id}"] .ff-overlay')

    def call(self, fn):
        return self.rt.call(fn)

    def tool(self, name):
        self.page.locator(f'section[data-figure="{self.id}"] [data-tool="{name}"]').click()

    def at(self, x, y):
        """Viewport coordinates of CSS pixel (x, y) of the figure."""
        box = self.overlay.bounding_box()
        return box["x"] + x, box["y"] + y

    def drag(self, start, end, steps=8, button="left"):
        m = self.page.mouse
        m.move(*self.at(*start))
        m.down(button=button)
        m.move(*self.at(*end), steps=steps)
        m.up(button=button)

    def pointer_events(self, *types):
        return [e for e in self.events if e["type"] in types]

    def close(self):
        self.rt.call(lambda: fastfig.close(self.fig))


def qt_limits(kind, fig_events):
    """The axes limits Qt's toolbar gives for the same press/motion/release events."""
    fig, ax = plot_figure()
    ref = QtReference(fig)
    getattr(ref.toolbar, kind)()
    for e in fig_events:
        name = {"button_press": "button_press_event", "button_release": "button_release_event",
                "motion_notify": "motion_notify_event"}[e["type"]]
        held = {1} if e["type"] == "motion_notify" and e.get("buttons", 0) & 1 else None
        from matplotlib.backend_bases import MouseButton
        ref.mouse(name, e["x"], e["y"], MouseButton(e["button"]) if "button" in e else None,
                  buttons={MouseButton.LEFT} if held else None)
    return ax.get_xlim(), ax.get_ylim()


def test_pan_drag_changes_the_axes_limits(rt, bridge, page):  # noqa: F811
    fig, ax = plot_figure()
    s = Shown(rt, bridge, page, fig)
    try:
        s.tool("pan")
        wait_viewer(page, s.id, "v.state.navigate_mode === 'PAN'")
        assert "ff-active" in page.locator(
            f'section[data-figure="{s.id}"] [data-tool="pan"]').get_attribute("class")
        before = s.call(ax.get_xlim), s.call(ax.get_ylim)
        s.drag((300, 250), (200, 200))
        wait_for(lambda: s.pointer_events("button_release"))
        s.call(lambda: None)
        after = s.call(ax.get_xlim), s.call(ax.get_ylim)
        assert after[0][0] > before[0][0] and after[1][0] < before[1][0]   # right and down
        drag = s.pointer_events("button_press", "motion_notify", "button_release")
        assert after == qt_limits("pan", drag)
        # The new view reaches the page.
        seq = s.stream.seq
        wait_viewer(page, s.id, f"v.image.seq >= {seq}")
        assert viewer_value(page, s.id, "v.state.history && v.state.history.back") is True
    finally:
        s.close()


def test_zoom_rubberband(rt, bridge, page):  # noqa: F811
    fig, ax = plot_figure()
    s = Shown(rt, bridge, page, fig)
    try:
        s.tool("zoom")
        wait_viewer(page, s.id, "v.state.navigate_mode === 'ZOOM'")
        m = page.mouse
        m.move(*s.at(200, 150))
        m.down()
        m.move(*s.at(400, 300), steps=6)
        # While dragging, the band is drawn in the browser from the figure's state.
        wait_viewer(page, s.id, "v.state.rubberband && v.state.rubberband[2] >= 399")
        band = viewer_value(page, s.id, "v.state.rubberband")
        assert band[0] == pytest.approx(200, abs=1) and band[1] == pytest.approx(150, abs=1)
        drawn = page.evaluate(f"""() => {{
            const o = document.querySelector('section[data-figure="{s.id}"] .ff-overlay');
            const d = o.getContext('2d').getImageData(0, 0, o.width, o.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }}""")
        assert drawn > 400          # the dashed outline of a 200x150 box
        m.up()
        wait_viewer(page, s.id, "v.state.rubberband === null")
        s.call(lambda: None)
        xlim, ylim = s.call(ax.get_xlim), s.call(ax.get_ylim)
        assert 0 < xlim[0] < xlim[1] < 10 and -1.5 < ylim[0] < ylim[1] < 1.5
        drag = s.pointer_events("button_press", "motion_notify", "button_release")
        assert (xlim, ylim) == qt_limits("zoom", drag)
        # Home undoes it.
        s.tool("home")
        wait_for(lambda: s.call(ax.get_xlim) == (0.0, 10.0))
    finally:
        s.close()


def test_key_press_reaches_mpl_connect(rt, bridge, page):  # noqa: F811
    fig, ax = plot_figure(320, 240)
    keys = []
    fig.canvas.mpl_connect("key_press_event", lambda e: keys.append(e.key))
    s = Shown(rt, bridge, page, fig)
    try:
        page.locator(f'section[data-figure="{s.id}"] .ff-overlay').click()
        page.keyboard.press("a")
        page.keyboard.press("Shift+B")
        page.keyboard.press("Control+Alt+k")
        page.keyboard.press("ArrowLeft")
        # Modifier keys arrive as key presses of their own ("shift", ...): wait for the
        # four keys that are not, however many of those came first.
        named = lambda: [k for k in keys if k not in ("shift", "control", "alt")]  # noqa: E731
        wait_for(lambda: len(named()) >= 4)
        assert named() == ["a", "B", "ctrl+alt+k", "left"]
    finally:
        s.close()


@pytest.mark.parametrize("fmt,magic", [("png", b"\x89PNG\r\n\x1a\n"), ("svg", b"<svg")])
def test_download_button(rt, bridge, page, fmt, magic):  # noqa: F811
    fig, ax = plot_figure(320, 240)
    s = Shown(rt, bridge, page, fig)
    try:
        page.locator(f'section[data-figure="{s.id}"] select.ff-format').select_option(fmt)
        with page.expect_download() as info:
            s.tool("download")
        download = info.value
        assert download.suggested_filename == f"figure-{s.id}.{fmt}"
        data = open(download.path(), "rb").read()
        if fmt == "png":
            assert data.startswith(magic)
            from PIL import Image
            import io
            assert Image.open(io.BytesIO(data)).size == (320, 240)
        else:
            assert magic in data[:400] and data.rstrip().endswith(b"</svg>")
    finally:
        s.close()


def test_resizing_the_page_resizes_the_figure(rt, bridge, page):  # noqa: F811
    fig, ax = plot_figure()
    s = Shown(rt, bridge, page, fig, fit=True)
    try:
        def stage():
            return page.evaluate(f"""() => {{
                const st = document.querySelector('section[data-figure="{s.id}"] .ff-stage');
                return [st.clientWidth, st.clientHeight]; }}""")
        w, h = stage()
        wait_for(lambda: tuple(s.call(fig.canvas.get_width_height)) == (w, h))
        page.set_viewport_size({"width": 700, "height": 520})
        wait_for(lambda: stage()[0] < w)
        w2, h2 = stage()
        wait_for(lambda: tuple(s.call(fig.canvas.get_width_height)) == (w2, h2))
        wait_viewer(page, s.id, f"v.canvas.width === {w2} && v.canvas.height === {h2}")
    finally:
        s.close()


def test_fastfig_demo_end_to_end(page):
    proc = subprocess.Popen([sys.executable, "-m", "fastfig.cli", "demo", "--size", "480x300"],
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        lines = [proc.stdout.readline(), proc.stdout.readline()]
        url = lines[1].strip()
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/\?token=[\w-]{20,}", url), lines
        page.goto(url)
        for fid in ("1", "2", "3"):
            wait_viewer(page, fid, "v.painted > 0", timeout=20000)
        first = viewer_value(page, "1", "v.painted")
        wait_viewer(page, "1", f"v.painted > {first + 5}")     # the animation runs
        titles = page.locator(".ff-title").all_inner_texts()
        assert any("blitting" in t for t in titles) and any("slider" in t for t in titles)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
