"""The session layer (fastfig/transport/session.py) with a fake transport and no sleeps:
credits, demand, catch-up, resync, dead consumers, and the Inbox's chain checks. Images
are real (FrameEncoder/FrameDecoder): every image a consumer ends with must equal the
newest one byte for byte."""

import random

import numpy as np
import pytest

from fastfig import FrameDecoder, FrameEncoder
from fastfig.codec.packet import peek
from fastfig.errors import FrameError
from fastfig.transport.session import DEFAULT_CREDIT, Inbox, Outbox
from transport_helpers import make_frame

W, H = 96, 64


class Figure:
    """An encoder feeding an Outbox, as FigureStream does (without threads)."""

    def __init__(self, catch_up=True):
        self.encoder = FrameEncoder(W, H)
        self.images = {}
        self.snapshots = 0
        self.outbox = Outbox("1", snapshot=self.snapshot,
                             catch_up=self.catch_up if catch_up else None,
                             on_demand=self.on_demand)
        self.demand_calls = 0
        self.i = 0

    def snapshot(self):
        self.snapshots += 1
        return bytes(self.encoder.snapshot())

    def catch_up(self, base_seq):
        frame = self.encoder.catch_up(base_seq)
        return None if frame is None else bytes(frame)

    def on_demand(self):
        self.demand_calls += 1

    def publish(self):
        image = make_frame(self.i, W, H)
        self.i += 1
        frame = self.encoder.encode(image)
        self.images[frame.seq] = image
        self.outbox.offer(bytes(frame))
        return image


class Receiver:
    """A consumer's far end: keeps what it was sent until told to take it."""

    def __init__(self, figure, credit=DEFAULT_CREDIT):
        self.queue = []
        self.decoder = FrameDecoder()
        self.consumer = figure.outbox.attach(self.queue.append, credit)

    def take(self, n=None):
        """Decode n (default all) packets waiting, then grant their credit."""
        n = len(self.queue) if n is None else n
        taken = self.queue[:n]
        del self.queue[:n]
        for packet in taken:
            self.decoder.decode(packet)
        if taken:
            self.consumer.grant(len(taken), self.decoder.seq, self.decoder.epoch)
        return taken


def test_a_joiner_gets_a_keyframe_then_deltas():
    fig = Figure()
    fig.publish()
    fig.publish()
    r = Receiver(fig)
    assert len(r.queue) == 1 and peek(r.queue[0]).keyframe
    r.take()
    for _ in range(10):
        image = fig.publish()
        (packet,) = r.take()
        assert not peek(packet).keyframe
        assert np.array_equal(r.decoder.image, image)
    assert fig.snapshots == 1


def test_credit_bounds_what_is_sent_and_a_stalled_consumer_costs_nothing():
    fig = Figure()
    fig.publish()
    stalled, busy = Receiver(fig), Receiver(fig)
    stalled.take()
    busy.take()
    for _ in range(200):
        image = fig.publish()
        busy.take()
        assert np.array_equal(busy.decoder.image, image)
    # The stalled one was sent one frame for each credit it had, then nothing.
    assert len(stalled.queue) == DEFAULT_CREDIT
    assert stalled.consumer.in_flight == DEFAULT_CREDIT and stalled.consumer.credit == 0
    assert fig.outbox.catch_up_calls == 0 and fig.snapshots == 0   # (frame 1: a keyframe)
    # On resume it reads the few stale frames, and is sent one packet: the newest image.
    stalled.take()
    assert len(stalled.queue) == 1
    stalled.take()
    assert np.array_equal(stalled.decoder.image, image)
    # 196 frames behind: older than the encoder's damage history, so a keyframe.
    assert stalled.consumer.keyframes_sent == 2 and stalled.consumer.catch_ups_sent == 0
    # A few frames behind, a catch-up delta.
    for _ in range(10):
        image = fig.publish()
    stalled.take()
    stalled.take()
    assert np.array_equal(stalled.decoder.image, image)
    assert stalled.consumer.catch_ups_sent == 1


def test_resume_without_catch_up_gets_a_keyframe():
    fig = Figure(catch_up=False)
    fig.publish()
    r = Receiver(fig)
    r.take()
    for _ in range(20):
        image = fig.publish()
    r.take()
    assert len(r.queue) == 1 and peek(r.queue[0]).keyframe
    r.take()
    assert np.array_equal(r.decoder.image, image)


def test_a_short_lag_without_catch_up_replays_the_missed_deltas():
    fig = Figure(catch_up=False)
    fig.publish()
    r = Receiver(fig, credit=1)
    r.take()
    fig.publish()           # sent (credit 1)
    fig.publish()           # waits
    image = fig.publish()   # waits
    r.take()
    sent = r.take()
    sent += r.take()
    assert [peek(p).keyframe for p in sent] == [False, False]
    assert np.array_equal(r.decoder.image, image)


def test_catch_ups_are_shared_by_consumers_at_the_same_base():
    fig = Figure()
    fig.publish()
    receivers = [Receiver(fig, credit=1) for _ in range(5)]
    for r in receivers:
        r.take()
    for _ in range(3):
        fig.publish()
    for _ in range(10):
        image = fig.publish()
    for r in receivers:
        r.take()            # the stale frame they held credit for
        r.take()            # the catch-up
        assert np.array_equal(r.decoder.image, image)
    assert fig.outbox.catch_up_calls == 1


def test_demand_follows_consumers():
    fig = Figure()
    assert not fig.outbox.demand       # nobody watches: nothing to render for
    fig.publish()
    r = Receiver(fig)
    assert not fig.outbox.demand       # its keyframe is on the way
    calls = fig.demand_calls
    r.take()
    assert fig.outbox.demand and fig.demand_calls == calls + 1
    fig.publish()
    assert not fig.outbox.demand       # sent, not taken yet
    r.take()
    assert fig.outbox.demand
    r.consumer.close()
    assert not fig.outbox.demand and fig.outbox.consumers == []


def test_a_render_slower_than_the_round_trip_keeps_one_more_frame_in_flight():
    fig = Figure()
    fig.publish()
    r = Receiver(fig)
    r.take()
    fig.publish()
    r.take()                            # a round trip measured (offer to grant)
    trip = r.consumer.latency
    assert trip is not None
    fig.outbox.pace(trip / 2)           # renders quicker than the trip: one at a time
    fig.publish()
    assert not fig.outbox.demand
    r.take()
    fig.outbox.pace(trip + 10.0)        # renders slower than the trip: overlap them
    fig.publish()
    assert fig.outbox.demand            # one in flight, the next may render meanwhile
    fig.publish()
    assert not fig.outbox.demand        # two in flight: wait for a credit
    assert len(r.queue) == 2
    r.take()
    assert fig.outbox.demand
    fig.outbox.pace(0.0)
    fig.publish()
    assert not fig.outbox.demand


def test_resync_sends_a_keyframe_of_the_newest_image():
    fig = Figure()
    fig.publish()
    r = Receiver(fig)
    r.take()
    image = fig.publish()
    r.queue.clear()         # lost, say the decoder rejected it
    r.consumer.grant(1)
    r.consumer.resync()
    assert len(r.queue) == 1 and peek(r.queue[0]).keyframe
    r.take()
    assert np.array_equal(r.decoder.image, image)


def test_credits_never_go_negative_nor_past_the_window():
    rng = random.Random(7)
    fig = Figure()
    fig.publish()
    receivers = [Receiver(fig, credit=rng.randint(1, 6)) for _ in range(4)]
    for _ in range(500):
        action = rng.random()
        r = rng.choice(receivers)
        if action < 0.4:
            fig.publish()
        elif action < 0.7:
            r.take(rng.randint(0, len(r.queue)))
        elif action < 0.8:
            r.consumer.grant(rng.randint(0, 10))    # a confused or hostile peer
        elif action < 0.85:
            r.queue.clear()
            r.decoder = FrameDecoder()
            r.consumer.resync()
        for c in (x.consumer for x in receivers):
            assert 0 <= c.in_flight <= c.window and 0 <= c.credit <= c.window


def test_a_full_queue_keeps_the_credit_and_is_tried_again():
    fig = Figure()
    fig.publish()
    sent, full = [], [True]

    def send(packet):
        if full[0]:
            return False
        sent.append(packet)
    consumer = fig.outbox.attach(send)
    assert consumer.in_flight == 0 and consumer.base is None
    full[0] = False
    image = fig.publish()
    dec = FrameDecoder()
    dec.decode(sent[0])
    assert peek(sent[0]).keyframe and np.array_equal(dec.image, image)


def test_a_dead_consumer_is_forgotten():
    fig = Figure()
    fig.publish()
    r = Receiver(fig)
    r.consumer.close()
    fig.publish()
    assert r.queue[1:] == [] and fig.outbox.consumers == []
    r.consumer.grant(3)     # late messages of a closed consumer do nothing
    r.consumer.resync()
    assert len(r.queue) == 1


def test_a_failing_consumer_is_dropped_and_the_others_served():
    fig = Figure()
    fig.publish()

    def broken(packet):
        raise RuntimeError("a widget that fails")
    bad = fig.outbox.attach(broken)
    good = Receiver(fig)
    assert bad.closed and fig.outbox.consumers == [good.consumer]
    good.take()
    image = fig.publish()
    good.take()
    assert np.array_equal(good.decoder.image, image)


def test_snapshot_not_ready_waits_for_the_next_offer():
    # A mirror's keyframe comes later from upstream; so does a server's whose encoder is
    # ahead of the offers. The consumer waits and then gets it.
    enc = FrameEncoder(W, H)
    ready = []
    outbox = Outbox("1", snapshot=lambda: ready.pop() if ready else None)
    outbox.offer(bytes(enc.encode(make_frame(0, W, H))))
    outbox.offer(bytes(enc.encode(make_frame(1, W, H))))
    queue = []
    consumer = outbox.attach(queue.append)
    assert queue == [] and outbox.snapshot_calls == 1
    outbox.offer(bytes(enc.snapshot()))   # the keyframe of the newest image arrives
    assert len(queue) == 1 and peek(queue[0]).keyframe and consumer.base == outbox.newest


def test_bad_packets_are_refused():
    outbox = Outbox("1")
    with pytest.raises(FrameError):
        outbox.offer(b"not a packet at all, though long enough for a header........")


# -- the Inbox -------------------------------------------------------------------------


class Upstream:
    def __init__(self):
        self.sent = []

    def __call__(self, type_, **fields):
        self.sent.append((type_, fields))

    def of(self, type_):
        return [f for t, f in self.sent if t == type_]


def linked(fig, **options):
    """An Inbox wired to a consumer of fig through lists (messages in both directions
    are delivered when the test says so)."""
    up = Upstream()
    dec = FrameDecoder()
    inbox = Inbox("1", up, dec.decode, **options)
    inbox.join()
    (join,) = up.of("join")
    wire = []
    consumer = fig.outbox.attach(wire.append, join["credit"])
    return inbox, up, dec, wire, consumer


def deliver(inbox, up, wire, consumer):
    """Everything on the wire reaches the Inbox; its requests reach the consumer."""
    while wire or up.sent:
        packets, wire[:] = list(wire), []
        for p in packets:
            inbox.receive(p)
        inbox.flush()
        requests, up.sent[:] = list(up.sent), []
        for t, f in requests:
            if t == "credit":
                consumer.grant(f["n"], f.get("seq"), f.get("epoch"))
            elif t == "resync":
                consumer.resync()


def test_inbox_returns_a_credit_per_frame_in_one_message():
    fig = Figure()
    fig.publish()
    inbox, up, dec, wire, consumer = linked(fig)
    assert up.of("join") == [{"figure": "1", "credit": DEFAULT_CREDIT}]
    up.sent.clear()
    for _ in range(3):
        fig.publish()
    for p in list(wire):
        inbox.receive(p)
    wire.clear()
    inbox.flush()
    assert up.of("credit") == [{"figure": "1", "n": 4, "epoch": dec.epoch, "seq": dec.seq}]
    assert not inbox.flush()     # nothing more taken: nothing sent


def test_inbox_gap_asks_resync_once_and_recovers():
    fig = Figure()
    fig.publish()
    inbox, up, dec, wire, consumer = linked(fig)
    deliver(inbox, up, wire, consumer)
    fig.publish()
    wire.clear()                 # a lost frame
    consumer.grant(1)            # (its credit, so the consumer is sent the next one)
    for _ in range(2):
        image = fig.publish()
    for p in list(wire):
        inbox.receive(p)
    wire.clear()
    assert inbox.stats.gaps == 1 and len(up.of("resync")) == 1
    deliver(inbox, up, wire, consumer)
    assert np.array_equal(dec.image, image) and inbox.stats.resyncs == 1


def test_inbox_drops_stale_frames_and_counts_credit_for_them():
    fig = Figure()
    fig.publish()
    inbox, up, dec, wire, consumer = linked(fig)
    deliver(inbox, up, wire, consumer)
    inbox.resync()               # in flight: deltas sent before the resync took effect
    fig.publish()
    inbox.receive(wire.pop())
    assert inbox.stats.stale == 0 and inbox.stats.applied == 2   # it applied: fine
    up.sent.clear()
    fig.publish()
    stray = wire.pop()
    inbox.held = None            # as if the earlier frame had been lost
    inbox.resyncing = True
    assert not inbox.receive(stray) and inbox.stats.stale == 1
    inbox.flush()
    assert up.of("credit")[0]["n"] == 2


def test_inbox_without_auto_credit_returns_credit_when_taken():
    fig = Figure()
    fig.publish()
    inbox, up, dec, wire, consumer = linked(fig, auto_credit=False)
    inbox.receive(wire.pop())
    assert not inbox.flush()
    inbox.take()
    assert inbox.flush() and up.of("credit")[-1]["n"] == 1
