"""The notebook widget's flow control (fastfig/notebook/flow.py) without a notebook: a real
encoder and Outbox, a fake page that decodes what it is sent and returns credit when told,
a fake loop whose call_soon runs when the test says (the kernel's loop between messages)
and a clock the test moves. The page must always end on the newest image, byte for byte."""

import numpy as np

from fastfig import FrameDecoder, FrameEncoder
from fastfig.notebook import flow
from fastfig.transport.session import Outbox
from backend_helpers import rt  # noqa: F401  (the fixture)
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


# -- the widget's page messages, as ipykernel delivers them ----------------------------------

def _served_widget(rt):
    """A FigureWidget (anywidget, a comm without a kernel) of a served line figure, its
    packets recorded as (seq, packet) instead of going to a page."""
    import pytest
    pytest.importorskip("anywidget")
    from matplotlib.figure import Figure
    import fastfig
    from fastfig.notebook.widget import FigureWidget
    fig = Figure(figsize=(2, 1.5), dpi=50)
    ax = fig.add_subplot()
    (line,) = ax.plot(np.linspace(0, 1, 50), np.zeros(50))
    rt.call(lambda: fastfig.show(fig, block=False))
    widget = rt.call(lambda: FigureWidget(fig.canvas))
    return fig, line, widget


def test_credit_handled_on_a_subshell_thread_during_a_send_sends_no_packet_twice(rt):
    """ipykernel 7 runs the comm of a page that talks over a kernel subshell (JupyterLab
    4.6) on that subshell's thread. A credit arriving there while the loop's thread was
    in the middle of sending a packet used to reach the Outbox at once, which sent the
    same packet again: "delta N does not follow frame N" in the page, then a keyframe."""
    import threading
    from fastfig.codec.packet import peek
    from backend_helpers import wait_for
    fig, line, widget = _served_widget(rt)
    sent = []
    credited = [1]

    def send(content, buffers=None):
        if content.get("type") != "frame":
            return
        sent.append(bytes(buffers[0]))
        n = len(sent) - 1 - credited[0]
        if threading.get_ident() == rt.thread_id and n > 0:
            # the page's credit for the packets before, handled on another thread while
            # this one is still sending (the kernel's subshell thread)
            credited[0] += n
            other = threading.Thread(target=widget._on_page, args=(
                widget, {"type": "credit", "n": n, "instance": "page"}, []))
            other.start()
            other.join()

    widget.send = send
    widget._on_page(widget, {"type": "join", "instance": "page"}, [])
    wait_for(lambda: len(sent) >= 1)
    widget._on_page(widget, {"type": "credit", "n": 1, "instance": "page"}, [])
    for i in range(30):
        rt.call(lambda i=i: (line.set_ydata(np.sin(np.linspace(0, 3, 50) + i)),
                             fig.canvas.draw_idle()))
        wait_for(lambda i=i: len(sent) >= i + 2)
    seqs = [peek(p).seq for p in sent]
    assert len(seqs) == len(set(seqs)), f"packets sent twice: {seqs}"
    decoder = FrameDecoder()
    for p in sent:
        image = decoder.decode(p)     # raises FrameGap on a packet that does not follow
    assert np.array_equal(image, np.asarray(fig.canvas.buffer_rgba()))
    assert widget.page_messages.handed_over >= 29
    rt.call(widget.close)
    rt.call(fig.canvas.stop_serving)


def test_base64_frames_decode_to_the_same_images_as_binary_ones(rt):
    """A page whose frontend drops binary buffers says so ("base64"): it is sent a
    keyframe of the newest image, then every packet base64 in the message, the same
    bytes as the binary ones."""
    import base64
    from fastfig.codec.packet import peek
    from backend_helpers import wait_for
    fig, line, widget = _served_widget(rt)
    messages = []
    widget.send = lambda content, buffers=None: messages.append((content, buffers))
    widget._on_page(widget, {"type": "join", "instance": "page"}, [])
    wait_for(lambda: len(messages) >= 1)
    assert messages[0][1] and "b64" not in messages[0][0]           # binary at first
    widget._on_page(widget, {"type": "base64"}, [])

    def packets():
        return [base64.b64decode(m["b64"]) for m, b in messages if "b64" in m]

    for i in range(5):
        widget._on_page(widget, {"type": "credit", "n": 1, "instance": "page"}, [])
        rt.call(lambda i=i: (line.set_ydata(np.cos(np.linspace(0, 3, 50) * i)),
                             fig.canvas.draw_idle()))
        wait_for(lambda i=i: len(packets()) >= i + 1)
    wait_for(lambda: peek(packets()[-1]).seq == fig.canvas.stream.seq)
    assert all(b is None for m, b in messages if "b64" in m)
    assert peek(packets()[0]).keyframe
    decoder = FrameDecoder()
    for packet in packets():
        image = decoder.decode(packet)
    assert np.array_equal(image, np.asarray(fig.canvas.buffer_rgba()))
    rt.call(widget.close)
    rt.call(fig.canvas.stop_serving)
