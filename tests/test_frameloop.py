"""The frame loop without a network: coalescing, drop-not-queue, rendering on demand,
pacing, waiting timers, and wall-clock animations."""

import asyncio
import time

import numpy as np
import pytest
from matplotlib.animation import FuncAnimation
from matplotlib.transforms import Bbox

from fastfig.mpl.api import _keep_wallclock
from fastfig.mpl.frameloop import FrameLoop, display_box


class FakeStream:
    """A stream whose demand the test sets (as an Outbox would from its consumers)."""

    id = "fake"

    def __init__(self):
        self.published = []
        self.demand = True
        self.demand_handlers = []
        self.render_times = []

    def on_demand(self, handler):
        self.demand_handlers.append(handler)

    def publish(self, image, hint=None):
        self.published.append((image.copy(), hint))

    def pace(self, render_seconds):
        self.render_times.append(render_seconds)

    def want(self):
        """A consumer became ready for a frame."""
        self.demand = True
        for h in self.demand_handlers:
            h()


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def spin(loop, seconds=0.0):
    loop.run_until_complete(asyncio.sleep(seconds))
    loop.run_until_complete(asyncio.sleep(0))


def make(loop, **options):
    stream = FakeStream()
    image = np.zeros((4, 4, 4), np.uint8)
    renders = []

    def render():
        renders.append(1)
        image[...] += 1
        frames.damaged(None)
    frames = FrameLoop(stream, render, lambda: image, loop=loop, **options)
    return frames, stream, image, renders


def test_changes_of_one_iteration_make_one_frame(loop):
    frames, stream, image, _ = make(loop)
    frames.damaged((0, 0, 1, 1))
    frames.damaged((2, 2, 1, 1))
    spin(loop)
    assert len(stream.published) == 1
    assert stream.published[0][1] == [(0, 0, 1, 1), (2, 2, 1, 1)]
    frames.damaged((0, 0, 1, 1))
    frames.damaged(None)
    spin(loop)
    assert stream.published[1][1] is None


def test_draw_requests_coalesce_into_one_render(loop):
    frames, stream, image, renders = make(loop)
    for _ in range(5):
        frames.request_render()
    spin(loop)
    assert len(renders) == 1 and len(stream.published) == 1


def test_slow_frontend_gets_the_latest_state_not_a_queue(loop):
    frames, stream, image, renders = make(loop)
    stream.demand = False                # no consumer wants a frame now
    for value in (10, 20, 30):
        image[...] = value
        frames.damaged((0, 0, 4, 4))
        spin(loop)
    assert stream.published == [] and frames.busy
    stream.want()                        # the frontend took what it had
    spin(loop)
    assert len(stream.published) == 1
    assert (stream.published[0][0] == 30).all()
    assert stream.published[0][1] == [(0, 0, 4, 4)] * 3


def test_fps_paces_frames(loop):
    frames, stream, image, _ = make(loop, fps=20)
    frames.damaged(None)
    spin(loop)
    frames.damaged(None)
    spin(loop)
    assert len(stream.published) == 1 and frames.busy   # the second waits for its slot
    spin(loop, 0.1)
    assert len(stream.published) == 2


def test_fps_is_a_cadence_that_slow_frames_do_not_stretch(loop):
    # Each frame's render takes 10 of its 20 ms: frames still begin every 20 ms (the
    # period ran from the end of the last publish: 30 ms apart, 33 fps for 50).
    frames, stream, image, _ = make(loop, fps=50)
    frames._render = lambda: (time.sleep(0.01), frames.damaged(None))
    start = time.monotonic()
    while time.monotonic() - start < 0.5:
        frames.request_render()
        spin(loop, 0.002)
    assert len(stream.published) >= 20, len(stream.published)


def test_drain_publishes_the_pending_change_without_the_loop(loop):
    # A notebook cell holds the loop's thread: flush_events drains the frame loop.
    frames, stream, image, renders = make(loop)
    frames.request_render()
    frames.drain()
    assert len(renders) == 1 and len(stream.published) == 1 and not frames.busy
    done = []
    frames.when_idle(lambda: done.append(1))
    assert done == [1]
    frames.drain()          # nothing pending: nothing published
    assert len(stream.published) == 1


def test_renders_only_on_demand(loop):
    # An animation nobody takes frames of does not render; each demand renders once.
    frames, stream, image, renders = make(loop)
    stream.demand = False
    frames.request_render()
    spin(loop)
    assert renders == [] and stream.published == []
    for n in (1, 2, 3):
        stream.want()
        frames.request_render()
        spin(loop)
        stream.demand = False            # the frame went out: the consumer has it
        frames.request_render()
        spin(loop)
        assert len(renders) == n and len(stream.published) == n


def test_when_idle_waits_for_the_frame_to_go_out(loop):
    frames, stream, image, _ = make(loop)
    stream.demand = False
    frames.damaged(None)
    spin(loop)
    called = []
    frames.when_idle(lambda: called.append(1))
    assert called == []
    stream.want()
    spin(loop)
    assert called == [1]
    frames.when_idle(lambda: called.append(2))
    assert called == [1, 2]


def test_display_box_rounds_outward_and_flips():
    assert display_box(Bbox([[10.2, 20.7], [50.5, 60.0]]), 100) == (10, 40, 41, 40)


def test_wallclock_skips_late_frames():
    from matplotlib.figure import Figure
    fig = Figure()
    shown = []

    def update(i):
        shown.append(i)
        time.sleep(0.03)   # rendering slower than the 10 ms interval
        return []
    anim = FuncAnimation(fig, update, frames=range(1000), interval=10, cache_frame_data=False)
    anim._draw_was_started = True   # driven by hand here, never drawn
    _keep_wallclock(anim, 0.01)
    for _ in range(5):
        update(next(anim.frame_seq))
    assert shown[-5:] == sorted(shown[-5:])
    assert shown[-1] >= 8          # at least two frames skipped per step of 30 ms
