"""The viewer in a real headless Chromium (Debian's /usr/bin/chromium under playwright):
pixels, animation, refusals and a server restart. Interaction through the fastfig
backend (pan, zoom, keys, downloads, resizing) is in test_browser_interaction.py.

Every wait is bounded; the tests skip, saying why, only when playwright or Chromium is
missing (CI installs both).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from browser_helpers import (canvas_rgba, checked_page, missing, served_viewer, viewer_value,
                             wait_viewer)
from fastfig import Encoding
from fastfig.scenarios import make
from transport_helpers import HERE, free_port, make_frame

REASON = missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser tests: {REASON}")


@pytest.fixture
def page(browser):
    yield from checked_page(browser, 1400, 1000)


@pytest.fixture
def served():
    yield from served_viewer()


def transparent_figure(width, height):
    fig = Figure(figsize=(width / 100, height / 100), dpi=100, facecolor="none")
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_facecolor((0.2, 0.4, 0.8, 0.5))
    ax.plot([0, 1, 2], [0, 2, 1], lw=3)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())


@pytest.mark.parametrize("png_decoder", ["ImageDecoder", "createImageBitmap"])
def test_canvas_pixels_equal_the_server_image(served, page, png_decoder):
    """Opaque figures (matplotlib's default white facecolor) must come out of the canvas
    exactly as the server holds them, for every encoding and both PNG decoders (WebCodecs'
    ImageDecoder, and createImageBitmap where it is missing). The canvas stores
    premultiplied alpha, so a half-transparent pixel cannot round-trip exactly: for the
    transparent figure the alpha channel must match everywhere and the colour wherever
    alpha is 255."""
    server, bridge = served
    if png_decoder == "createImageBitmap":
        page.add_init_script("delete window.ImageDecoder;")
    figures = {}
    used = set()
    rendered = {name: make(name, "640x480").frames(3) for name in ("line1", "heavy")}
    for fid, scenario, encoding in (("line1", "line1", "auto"), ("heavy-png", "heavy", "png"),
                                    ("heavy-rle", "heavy", "rle"), ("heavy-raw", "heavy", "raw")):
        stream = server.add_figure(fid, 640, 480, encoding=encoding)
        for image in rendered[scenario]:
            frame = stream.publish(image)
            used.update(r.encoding for r in frame.rects)
        figures[fid] = stream
    blocks = server.add_figure("fill", 256, 192)
    image = np.full((192, 256, 4), 255, np.uint8)
    blocks.publish(image)
    image[64:128, 64:160] = (200, 30, 30, 255)        # one solid rectangle changes
    used.update(r.encoding for r in blocks.publish(image).rects)
    figures["fill"] = blocks
    see_through = server.add_figure("transparent", 400, 300)
    see_through.publish(transparent_figure(400, 300))
    figures["transparent"] = see_through
    assert used == set(Encoding), f"the figures exercise only {used}"

    page.goto(bridge.url)
    assert page.evaluate("window.fastfig.pngDecoder") == png_decoder
    for fid, stream in figures.items():
        wait_viewer(page, fid, f"v.display.paintedSeq === {stream.seq}")
    assert page.evaluate("window.devicePixelRatio") == 1
    for fid, stream in figures.items():
        shown, seq = canvas_rgba(page, fid)
        expected = stream.encoder.image
        assert seq == stream.seq
        assert shown.shape == expected.shape, fid
        if fid == "transparent":
            assert np.array_equal(shown[..., 3], expected[..., 3])
            opaque = expected[..., 3] == 255
            assert opaque.any() and np.array_equal(shown[opaque], expected[opaque])
        else:
            assert (expected[..., 3] == 255).all()
            diff = np.argwhere((shown != expected).any(axis=2))
            assert len(diff) == 0, f"{fid}: {len(diff)} pixels differ, first at {diff[:3]}"


#: Counts display refreshes in the page with a rAF loop of its own, and records the rAF
#: timestamp of each paint of the viewer (every rAF callback of one display frame gets the
#: same timestamp).
COUNT_REFRESHES = """
(() => {
  window.__refreshes = 0;
  const tick = () => { window.__refreshes++; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
})();
"""


def test_paints_once_per_display_frame_and_shows_the_newest_image(served, page):
    """A burst of frames, published faster than any display refreshes: the viewer applies
    every packet it gets, paints at most once per animation frame, and the canvas ends up
    equal to the server's image byte for byte. Its counters add up: every packet received
    was painted, dropped (applied, then replaced before a refresh) or rejected."""
    server, bridge = served
    stream = server.add_figure("burst", 640, 480)
    frames = make("line1", "640x480").frames(60)
    stream.publish(frames[0])
    page.add_init_script(COUNT_REFRESHES)
    page.goto(bridge.figure_url("burst"))
    wait_viewer(page, "burst", f"v.display.paintedSeq === {stream.seq}")
    page.evaluate("""() => {
      const v = window.fastfig.viewers.get("burst");
      window.__paintTimes = [];
      window.__refreshes0 = window.__refreshes;
      window.__counts0 = v.counts();
      v.onpaint = (frame, now) => window.__paintTimes.push(now);
    }""")
    for image in frames[1:] + frames[::-1]:
        stream.publish(image)
    wait_viewer(page, "burst", f"v.display.paintedSeq === {stream.seq} && v.pending === 0")
    got = page.evaluate("""() => {
      const v = window.fastfig.viewers.get("burst");
      return { times: window.__paintTimes, refreshes: window.__refreshes - window.__refreshes0,
               before: window.__counts0, after: v.counts(), report: v.stats.report() };
    }""")
    shown, seq = canvas_rgba(page, "burst")
    assert seq == stream.seq
    assert np.array_equal(shown, stream.encoder.image)

    times = got["times"]
    assert times, "no paint after the burst"
    assert len(set(times)) == len(times), "two paints in one animation frame"
    paints = got["after"]["painted"] - got["before"]["painted"]
    assert paints == len(times)
    assert paints <= got["refreshes"] + 1   # (our loop may run just before the first paint)
    for c in (got["before"], got["after"]):
        assert c["received"] == c["painted"] + c["dropped"] + c["rejected"] + c["pending"], c
    after = got["after"]
    assert after["pending"] == 0 and after["rejected"] == 0
    assert after["applied"] == after["painted"] + after["dropped"]
    assert after["received"] > got["before"]["received"]
    r = got["report"]
    assert r["painted"] == after["painted"] and r["dropped"] == after["dropped"]
    assert r["received"] == after["received"]
    for key in ("paintedFps", "receivedFps", "droppedFps"):
        assert r[key] >= 0
    # The stats panel says the three apart.
    page.locator('section[data-figure="burst"] [data-tool="stats"]').click()
    text = page.locator('section[data-figure="burst"] .ff-statsline').inner_text()
    assert "painted" in text and "received" in text and "dropped" in text


def test_animation_advances(served, page):
    server, bridge = served
    stream = server.add_source((make_frame(i, 320, 240) for i in range(100000)), fps=30,
                               id="anim")
    page.goto(bridge.figure_url("anim"))
    wait_viewer(page, "anim", "v.painted > 0")
    first = viewer_value(page, "anim", "v.painted")
    time.sleep(1.0)
    wait_viewer(page, "anim", f"v.painted >= {first + 10}")
    shown, seq = canvas_rgba(page, "anim")
    assert seq > 10
    # The canvas shows the frame the server published as that seq (add_source publishes
    # frame i as seq i + 1). Row 0 holds the frame's number with alpha 0, which a canvas
    # cannot keep (premultiplied): it is left out.
    assert np.array_equal(shown[1:], make_frame(seq - 1, 320, 240)[1:])
    stream.close()


def test_wrong_token_is_refused_with_a_message(served, page):
    server, bridge = served
    server.add_figure("1", 100, 100).publish(make_frame(0, 100, 100))
    response = page.goto(f"{bridge.origin}/?token=wrong")
    assert response.status == 403
    assert "wrong or missing token" in page.content()
    response = page.goto(f"{bridge.origin}/figure/1")
    assert response.status == 403


def test_foreign_origin_cannot_open_a_websocket(served, page):
    """A page of another site that knows (or guesses) the token still cannot connect."""
    server, bridge = served
    server.add_figure("1", 100, 100).publish(make_frame(0, 100, 100))
    page.route("http://evil.example/", lambda route: route.fulfill(
        status=200, content_type="text/html", body="<html><body>evil</body></html>"))
    page.goto("http://evil.example/")
    result = page.evaluate("""(url) => new Promise((resolve) => {
        const ws = new WebSocket(url);
        ws.binaryType = "arraybuffer";
        ws.onopen = () => resolve("open");
        ws.onmessage = () => resolve("message");
        ws.onclose = (e) => resolve("closed " + e.code);
        setTimeout(() => resolve("timeout"), 5000);
    })""", f"ws://127.0.0.1:{bridge.port}/ws/1?token={bridge.token}")
    assert result.startswith("closed"), result
    assert not bridge.sockets


def test_page_survives_a_server_restart(page):
    port, token = free_port(), "restart-test-token-0123456789"
    script = os.path.join(HERE, "browser_helpers.py")

    def start():
        proc = subprocess.Popen([sys.executable, script, str(port), token],
                                stdout=subprocess.PIPE, text=True)
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        return proc

    proc = start()
    try:
        page.goto(f"http://127.0.0.1:{port}/figure/1?token={token}")
        wait_viewer(page, "1", "v.painted > 5")
        epoch = viewer_value(page, "1", "v.image.epoch")
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
        wait_viewer(page, "1", "!v.connected")
        assert viewer_value(page, "1", "v.veil.hidden") is False
        painted = viewer_value(page, "1", "v.painted")
        proc = start()
        wait_viewer(page, "1", f"v.connected && v.painted > {painted + 5}", timeout=15000)
        assert viewer_value(page, "1", "v.image.epoch") != epoch
        assert viewer_value(page, "1", "v.veil.hidden") is True
    finally:
        proc.kill()
        proc.wait(5)
