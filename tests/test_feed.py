"""Per-tab flow control of the websocket bridge (fastfig/web/feed.py), without sockets: tabs
are FrameDecoders fed by a fake transport, snapshots come from the encoder."""

import random

import numpy as np
import pytest

from fastfig import FrameDecoder, FrameEncoder, FrameGap
from fastfig.web.feed import MAX_LAG, RING, FigureFeed, ViewerQueue, peek
from transport_helpers import frame_index, make_frame


class Source:
    """A figure's stream as the bridge sees it: packets from an encoder, snapshots on
    request (answered when the test says so, like a real round trip)."""

    def __init__(self, width=96, height=64):
        self.encoder = FrameEncoder(width, height, epoch=7)
        self.i = 0
        self.asked = 0
        self.feed = FigureFeed("1", self._ask)

    def _ask(self):
        self.asked += 1

    def publish(self, image=None):
        self.i += 1
        frame = self.encoder.encode(make_frame(self.i, 96, 64) if image is None else image)
        if not frame.empty:
            self.feed.on_frame(bytes(frame))
        return frame

    def answer_snapshot(self):
        self.feed.on_snapshot(bytes(self.encoder.snapshot()))


class Tab:
    """A browser tab: decodes what it is sent; acks when told to."""

    def __init__(self, feed, max_in_flight=2):
        self.decoder = FrameDecoder()
        self.received = []
        self.queue = ViewerQueue(feed, self.received.append, max_in_flight)
        feed.attach(self.queue)
        self.applied = 0
        self.keyframes = 0

    def ack_all(self):
        while self.received:
            packet = self.received.pop(0)
            p = peek(packet)
            self.decoder.decode(packet)   # raises FrameGap if the feed sent a broken chain
            self.applied += 1
            self.keyframes += p.keyframe
            self.queue.on_ack(p.seq, p.epoch)

    @property
    def index(self):
        return frame_index(self.decoder.image)


def test_first_keyframe_on_the_topic_serves_a_tab_directly():
    src = Source()
    src.publish()
    tab = Tab(src.feed)
    tab.ack_all()
    assert tab.index == 1 and src.asked == 0


def test_new_tab_starts_from_a_snapshot_then_follows_deltas():
    src = Source()
    for _ in range(MAX_LAG + 3):
        src.publish()
    tab = Tab(src.feed)
    assert src.asked == 1 and tab.received == []
    src.answer_snapshot()
    tab.ack_all()
    assert tab.index == src.i and tab.keyframes == 1
    for _ in range(20):
        src.publish()
        tab.ack_all()
        assert tab.index == src.i
    assert tab.keyframes == 1 and src.asked == 1


def test_at_most_max_in_flight_unacknowledged():
    src = Source()
    src.publish()
    src.answer_snapshot()
    tab = Tab(src.feed, max_in_flight=2)
    for _ in range(5):
        src.publish()
    assert len(tab.received) == 2 and tab.queue.in_flight == 2


def test_tab_a_little_behind_replays_deltas_from_the_ring():
    src = Source()
    src.publish()
    src.answer_snapshot()
    tab = Tab(src.feed, max_in_flight=1)
    tab.ack_all()
    asked = src.asked
    for _ in range(MAX_LAG - 1):
        src.publish()
    for _ in range(MAX_LAG):
        tab.ack_all()
    assert tab.index == src.i and tab.keyframes == 1 and src.asked == asked


def test_tab_far_behind_gets_a_keyframe_of_the_latest_image():
    src = Source()
    src.publish()
    src.answer_snapshot()
    tab = Tab(src.feed, max_in_flight=1)
    tab.ack_all()
    for _ in range(3 * RING):
        src.publish()
    asked = src.asked
    tab.ack_all()            # the one frame it was sent
    assert src.asked == asked + 1, "no snapshot asked for a tab that fell far behind"
    src.answer_snapshot()
    tab.ack_all()
    assert tab.index == src.i and tab.keyframes == 2
    assert tab.applied == 3  # first keyframe, one delta, the catch-up keyframe: no replay


def test_a_stalled_tab_does_not_slow_another():
    src = Source()
    src.publish()
    src.answer_snapshot()
    stalled, live = Tab(src.feed), Tab(src.feed)
    for _ in range(50):
        src.publish()
        live.ack_all()
        assert live.index == src.i
    assert len(stalled.received) == 2
    # Shown again: it converges to the latest image with one keyframe.
    stalled.ack_all()
    src.answer_snapshot()
    stalled.ack_all()
    assert stalled.index == src.i


def test_snapshot_overtaken_by_a_newer_delta():
    src = Source()
    src.publish()
    tab = Tab(src.feed)
    snapshot = bytes(src.encoder.snapshot())    # taken at frame 1 ...
    src.publish()                               # ... frame 2 arrives on the topic first
    src.feed.on_snapshot(snapshot)
    tab.ack_all()
    assert tab.index == 2


def test_new_epoch_keyframe_on_the_topic_restarts_every_tab():
    src = Source()
    src.publish()
    src.answer_snapshot()
    tab = Tab(src.feed)
    tab.ack_all()
    src.encoder.keyframe(np.zeros((50, 70, 4), np.uint8) + 200)   # a resize: new epoch
    src.feed.on_frame(bytes(src.encoder.snapshot()))
    tab.ack_all()
    assert tab.decoder.image.shape == (50, 70, 4)


def test_restart_forgets_everything_and_asks_again():
    src = Source()
    src.publish()
    src.answer_snapshot()
    tab = Tab(src.feed)
    tab.ack_all()
    asked = src.asked
    src.feed.on_restart()
    assert src.asked == asked + 1 and tab.queue.base is None
    other = Source()   # the new server's stream: another epoch
    other.feed = src.feed
    other.feed.request_snapshot = other._ask
    other.publish()
    other.publish()
    other.answer_snapshot()
    tab.ack_all()
    assert tab.index == 2


def test_resync_after_a_rejected_packet():
    src = Source()
    src.publish()
    src.answer_snapshot()
    tab = Tab(src.feed)
    tab.ack_all()
    src.publish()
    tab.received.clear()          # the tab failed to apply it
    tab.queue.on_ack(0, 0)
    tab.queue.resync()
    src.answer_snapshot()
    tab.ack_all()
    assert tab.index == src.i


@pytest.mark.parametrize("seed", range(6))
def test_random_ack_timing_always_converges(seed):
    rng = random.Random(seed)
    src = Source()
    src.publish()
    tabs = [Tab(src.feed, max_in_flight=rng.choice([1, 2, 3])) for _ in range(3)]
    for step in range(300):
        r = rng.random()
        if r < 0.5:
            src.publish()
        elif r < 0.6 and src.feed.snapshot_pending:
            src.answer_snapshot()
        else:
            tab = rng.choice(tabs)
            if tab.received:
                packet = tab.received.pop(0)
                p = peek(packet)
                tab.decoder.decode(packet)
                tab.queue.on_ack(p.seq, p.epoch)
    # Everything settles: every tab shows the newest image.
    for _ in range(50):
        if src.feed.snapshot_pending:
            src.answer_snapshot()
        for tab in tabs:
            tab.ack_all()
    for tab in tabs:
        assert tab.index == src.i


def test_a_gap_on_the_topic_is_repaired_with_a_snapshot():
    src = Source()
    src.publish()
    src.answer_snapshot()
    tab = Tab(src.feed)
    tab.ack_all()
    src.encoder.encode(make_frame(99, 96, 64))   # lost at the high-water mark
    src.i = 99
    src.publish()
    tab.ack_all()
    assert src.feed.snapshot_pending
    src.answer_snapshot()
    tab.ack_all()
    assert tab.index == 100


def test_decoder_would_catch_a_broken_chain():
    # The helper itself must be able to fail: a delta out of order raises.
    enc = FrameEncoder(96, 64)
    first = bytes(enc.encode(make_frame(1, 96, 64)))
    enc.encode(make_frame(2, 96, 64))
    third = bytes(enc.encode(make_frame(3, 96, 64)))
    dec = FrameDecoder()
    dec.decode(first)
    with pytest.raises(FrameGap):
        dec.decode(third)


def test_a_frame_lost_before_the_subscription_took_is_fetched_after_the_sync():
    # The join's snapshot was made, then a frame went out before the bridge's
    # subscription took; the figure then stays still. The server's sync message names
    # that frame: the feed asks for a snapshot, and the tab ends on the last image.
    src = Source()
    src.publish()
    tab = Tab(src.feed)
    src.feed.want_snapshot()
    answer = bytes(src.encoder.snapshot())          # made before the lost frame
    lost = src.encoder.encode(make_frame(2, 96, 64))  # never reaches the feed
    src.feed.on_sync(lost.epoch, lost.seq)            # the sync overtakes the answer
    src.feed.on_snapshot(answer)
    tab.ack_all()
    assert tab.index == 1 and src.feed.snapshot_pending   # asked again
    src.answer_snapshot()
    tab.ack_all()
    assert tab.index == 2


def test_a_sync_for_what_the_feed_has_asks_for_nothing():
    src = Source()
    frame = src.publish()
    src.feed.on_sync(frame.epoch, frame.seq)
    assert not src.feed.snapshot_pending and src.asked == 0
