"""The notebook widget's flow control (fastfig/notebook/flow.py) without a notebook: a real
encoder and Outbox, a fake page that decodes what it is sent and returns credit when told,
a fake loop whose call_soon runs when the test says (the kernel's loop between messages)
and a clock the test moves. The page must always end on the newest image, byte for byte."""

import numpy as np

from fastfig import FrameDecoder, FrameEncoder
from fastfig.notebook import flow
from fastfig.transport.session import Outbox
from transport_helpers import make_frame

W, H = 96, 64


class Stream:
    """What ViewFlow uses of a FigureStream: attach, closed; plus publish for the test."""

    def __init__(self):
        self.encoder = FrameEncoder(W, H)
        self.outbox = Outbox("1", snapshot=lambda: bytes(self.encoder.snapshot()),
                             catch_up=self._catch_up)
        self.closed = False
        self.i = 0
        self.image = None
        self.publish()

    def _catch_up(self, base):
        frame = self.encoder.catch_up(base)
        return None if frame is None else bytes(frame)

    def attach(self, send, credit):
        return self.outbox.attach(send, credit)

    def publish(self):
        self.image = make_frame(self.i, W, H)
        self.i += 1
        self.outbox.offer(bytes(self.encoder.encode(self.image)))


class Loop:
    def __init__(self):
        self.ready = []

    def call_soon(self, fn, *args):
        handle = Handle(fn, args)
        self.ready.append(handle)
        return handle

    def run(self):
        while self.ready:
            h = self.ready.pop(0)
            if not h.cancelled:
                h.fn(*h.args)


class Handle:
    def __init__(self, fn, args):
        self.fn, self.args, self.cancelled = fn, args, False

    def cancel(self):
        self.cancelled = True


class Page:
    """Receives packets (the comm), applies them when told, returns one credit each."""

    def __init__(self):
        self.inbox = []
        self.decoder = FrameDecoder()
        self.image = None
        self.taken = 0

    def take(self, view):
        n = len(self.inbox)
        for packet in self.inbox:
            self.image = self.decoder.decode(packet)
        self.inbox.clear()
        if n:
            view.credit(n, "page")
        return n


def make(window=4, busy_fps=30):
    stream, loop, page = Stream(), Loop(), Page()
    view = flow.ViewFlow(stream, page.inbox.append, loop, window=window, busy_fps=busy_fps)
    page.inbox.clear()   # sent before the page listened: lost
    view.join("page")
    loop.run()
    return stream, loop, page, view


def test_at_most_a_window_waits_for_the_page_and_the_page_ends_on_the_newest_image():
    stream, loop, page, view = make(window=4)
    for _ in range(20):            # the page takes nothing: the figure keeps changing
        stream.publish()
        loop.run()
    assert len(page.inbox) == 4    # the keyframe and three deltas; the rest waits
    assert view.in_flight == 4
    page.take(view)
    loop.run()
    page.take(view)                # what brings it to the newest image (a catch-up)
    assert np.array_equal(page.image, stream.image)
    assert view.in_flight == 0


def test_demand_follows_the_pages_room():
    stream, loop, page, view = make(window=2)
    assert stream.outbox.demand      # the page holds the newest image and has room
    stream.publish()
    loop.run()
    stream.publish()
    loop.run()
    assert view.in_flight == 2 and not stream.outbox.demand   # full: nothing renders
    page.take(view)
    loop.run()
    assert stream.outbox.demand


def test_a_busy_kernel_lends_credit_at_the_budget_and_is_repaid(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(flow.time, "monotonic", lambda: now[0])
    stream, loop, page, view = make(window=2, busy_fps=10)
    published = []

    def publish():
        stream.publish()
        published.append(stream.i)

    # No credit comes back and the loop never runs while the cell runs.
    for step in range(30):
        now[0] += 0.02
        view.busy_frame(publish)
    # 0.6 s at 10 frames/s lent: about 6 frames beyond the window; every one was sent.
    assert 2 + 5 <= len(page.inbox) <= 2 + 6
    assert view.debt == len(page.inbox) - 2
    # The cell ends: the page's credits repay the loan first.
    page.take(view)
    loop.run()
    assert view.debt == 0 and view.in_flight <= 1
    page.take(view)
    assert np.array_equal(page.image, stream.image)


def test_shown_in_the_running_cell_the_page_gets_keyframes_until_it_joins(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(flow.time, "monotonic", lambda: now[0])
    stream, loop, page = Stream(), Loop(), Page()
    view = flow.ViewFlow(stream, page.inbox.append, loop, window=4, busy_fps=30)
    keyframes = 0
    for step in range(40):
        now[0] += 0.05
        before = len(page.inbox)
        view.busy_frame(stream.publish)
        keyframes += sum(p[8] & 1 for p in page.inbox[before:])
    assert keyframes >= 3               # one every BLIND_KEYFRAME seconds (2 s here)


def test_leave_stops_frames_and_join_starts_again_from_a_keyframe():
    stream, loop, page, view = make(window=4)
    page.take(view)
    view.leave("page")
    stream.publish()
    loop.run()
    assert page.inbox == [] and not stream.outbox.demand
    view.join("page")
    loop.run()
    assert len(page.inbox) == 1 and page.inbox[0][8] & 1   # a keyframe of the newest
    page.take(view)
    assert np.array_equal(page.image, stream.image)


def test_credit_from_another_page_than_the_last_to_join_is_ignored():
    stream, loop, page, view = make(window=2)
    stream.publish()
    loop.run()
    view.credit(5, "other tab")
    assert view.in_flight == 2
