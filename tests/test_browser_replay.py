"""A replay in the browser viewer (headless Chromium): the recorded frames painted pixel
for pixel, and the viewer's timeline bar driving the replay (step, step back, play)."""

import pytest

from browser_helpers import canvas_rgba, checked_page, missing, wait_viewer
from fastfig.recording.format import open_recording
from fastfig.recording.replay import Replay
from test_replay import make_recording
from transport_helpers import make_frame

REASON = missing()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"browser tests: {REASON}")


def opaque_frame(i, width, height):
    """make_frame(i), opaque: a canvas keeps no colour under alpha 0, and pixel (0, 0)
    (red + 256 green = i) names the frame."""
    img = make_frame(i, width, height)
    img[0, 0, 3] = 255
    return img


@pytest.fixture
def page(browser):
    yield from checked_page(browser, 800, 600, 10000)


def test_the_viewer_shows_a_replay_and_its_timeline_bar_drives_it(tmp_path, page):
    src = make_recording(tmp_path / "rec.ffrec", frames=20, image=opaque_frame)
    rec = open_recording(src)
    with Replay(src, play=False) as replay:
        page.goto(replay.bridge.figure_url("rec") + "&fit=0")
        wait_viewer(page, "rec", "v.painted > 0 && v.timeline.shown")
        bar = page.locator('section[data-figure="rec"] .ff-timeline')

        def painted(i):
            wait_viewer(page, "rec", f"v.timeline.state.index === {i}")
            page.wait_for_function(
                "(i) => { const v = window.fastfig.viewers.get('rec');"
                " const d = v.canvas.getContext('2d').getImageData(0, 0, 1, 1).data;"
                " return d[0] + 256 * d[1] === i; }", arg=i)
            rgba, _ = canvas_rgba(page, "rec")
            assert rgba.tobytes() == rec.image(i).tobytes()

        painted(0)
        for _ in range(3):
            bar.locator('[data-timeline="stepForward"]').click()
        painted(3)
        bar.locator('[data-timeline="stepBack"]').click()
        painted(2)
        bar.locator('[data-timeline="togglePlay"]').click()     # plays to the end
        painted(19)
