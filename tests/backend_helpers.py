"""Shared pieces of the backend tests: one fastfig runtime per test session, its loop in
a thread of its own (so the tests' thread can be the frontend), and bounded waits."""

import time

import numpy as np
import pytest
from matplotlib.backend_bases import MouseButton, MouseEvent, NavigationToolbar2
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

import fastfig
from fastfig.mpl import runtime

TIMEOUT = 10.0


@pytest.fixture(scope="session")
def rt():
    """The process's fastfig runtime, serving on 127.0.0.1 from a loop thread."""
    r = runtime.get()
    if r.loop is None:
        r.address = "tcp"
        r.ensure_loop(mode="thread")
    r.ensure_server()
    assert r.mode == "thread"
    yield r


class Served:
    """A figure served by the runtime, and a Client subscribed to it."""

    def __init__(self, rt, fig, **client_options):
        self.rt = rt
        self.fig = fig
        self.stream = rt.call(lambda: fastfig.show(fig, block=False))
        self.canvas = fig.canvas
        self.client = fastfig.Client(rt.server.address, self.stream.id, timeout=TIMEOUT,
                                     **client_options)

    def call(self, fn, *args, **kwargs):
        return self.rt.call(fn, *args, **kwargs)

    def frame(self, until=None, timeout=TIMEOUT):
        """The next decoded frame (a copy) for which until(image) holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            f = self.client.next_frame(timeout=max(0.0, deadline - time.monotonic()))
            if f is not None and (until is None or until(f.image)):
                return f.image.copy()
        raise AssertionError("no matching frame within the timeout")

    def latest(self, settle=0.3):
        """The image once no new frame came for settle seconds."""
        image = None
        while True:
            f = self.client.next_frame(timeout=settle)
            if f is None:
                return image if image is not None else self.client.image.copy()
            image = f.image.copy()

    def events(self, *events):
        """Send events and wait until the figure has handled all of them."""
        start = self.stream.events_received
        for type_, fields in events:
            assert self.client.send_event(type_, **fields)
        wait_for(lambda: self.stream.events_received >= start + len(events))
        self.call(lambda: None)   # handlers run on the loop: let them finish

    def state(self, name, value, timeout=TIMEOUT):
        """Wait until the client has seen state name == value (value may be a predicate)."""
        ok = value if callable(value) else (lambda v: v == value)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self.client.state and ok(self.client.state[name]):
                return self.client.state[name]
            self.client.next_frame(timeout=0.05)
        raise AssertionError(f"state {name} is {self.client.state.get(name)!r}")

    def close(self):
        self.client.close()
        self.call(lambda: fastfig.close(self.fig))


def wait_for(predicate, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within the timeout")
        time.sleep(0.002)


def lines_figure(width=640, height=480, dpi=100):
    """line1's figure (fastfig/scenarios.py): 2x2 axes of a 1000-point sine."""
    fig = Figure(figsize=(width / dpi, height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    x = np.linspace(0, 4 * np.pi, 1000)
    lines = []
    for ax in fig.subplots(2, 2).flat:
        (line,) = ax.plot(x, np.sin(x))
        ax.grid(True)
        ax.set_ylim(-1.2, 1.2)
        lines.append(line)
    return fig, x, lines


def agg_render(fig):
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


class QtReference:
    """What Qt's backend would do with the same pointer input: matplotlib's own
    NavigationToolbar2 on an identical Agg figure, fed MouseEvents at the device
    coordinates Qt computes (x * ratio, height - y * ratio)."""

    def __init__(self, fig, ratio=1.0):
        self.fig = fig
        self.canvas = FigureCanvasAgg(fig)
        self.ratio = ratio
        self.toolbar = NavigationToolbar2(self.canvas)
        self.canvas.draw()

    def mouse(self, name, x, y, button=None, buttons=None, modifiers=()):
        X, Y = x * self.ratio, self.fig.bbox.height - y * self.ratio
        kwargs = {"modifiers": frozenset(modifiers)}
        if buttons is not None:
            kwargs["buttons"] = buttons
        MouseEvent(name, self.canvas, X, Y, button, **kwargs)._process()

    def drag(self, points, button=MouseButton.LEFT, modifiers=()):
        (x0, y0), *moves = points
        self.mouse("motion_notify_event", x0, y0, modifiers=modifiers)
        self.mouse("button_press_event", x0, y0, button, modifiers=modifiers)
        for x, y in moves:
            self.mouse("motion_notify_event", x, y, buttons={button}, modifiers=modifiers)
        x1, y1 = moves[-1]
        self.mouse("button_release_event", x1, y1, button, modifiers=modifiers)


def drag_events(points, button=1, modifiers=()):
    """The protocol events of a drag through points (CSS pixels)."""
    mods = {"modifiers": list(modifiers)} if modifiers else {}
    (x0, y0), *moves = points
    mask = {1: 1, 2: 4, 3: 2}[button]
    out = [("motion_notify", dict(x=x0, y=y0, buttons=0, **mods)),
           ("button_press", dict(x=x0, y=y0, button=button, buttons=mask, **mods))]
    out += [("motion_notify", dict(x=x, y=y, buttons=mask, **mods)) for x, y in moves]
    x1, y1 = moves[-1]
    out.append(("button_release", dict(x=x1, y=y1, button=button, buttons=0, **mods)))
    return out
