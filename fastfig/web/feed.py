"""Per-tab flow control for the websocket bridge (PROTOCOL.md section 3, "Flow control").

A FigureFeed is one figure as the bridge receives it from the server: the last few frame
packets (a ring), the last snapshot, the figure's state. A ViewerQueue is one browser tab
watching it: it sends packets only while fewer than ``max_in_flight`` wait for the tab's
acknowledgement, so a tab can never be buried under frames it has not painted.

Deltas cannot be skipped, so a tab that falls behind cannot simply be given the newest
packet. A tab that is a few frames behind replays them from the ring (cheap: deltas are
small); a tab further behind, or one whose next delta has left the ring, gets a keyframe of
the current image (a server snapshot, encoded once per sequence number however many tabs
ask) and continues from there. A slow tab therefore converges to the latest image and
costs the others nothing: the feed never waits for any tab.

No sockets here: the bridge gives each ViewerQueue a ``send(packet)`` callable and the feed
a ``request_snapshot()`` callable, which keeps this logic testable without a browser.
"""

import collections
from dataclasses import dataclass

from ..errors import FrameError
from ..codec.packet import FLAG_KEYFRAME, HEADER as PACKET_HEADER
from ..transport.protocol import seq_newer

#: Packets a feed remembers for tabs that are a little behind.
RING = 16
#: A tab further behind than this many frames is brought up to date by a keyframe
#: instead of a replay.
MAX_LAG = 6
#: Frames sent to a tab and not yet acknowledged (painted) beyond which it is sent nothing.
MAX_IN_FLIGHT = 2


@dataclass(frozen=True, slots=True)
class Packet:
    epoch: int
    seq: int
    keyframe: bool
    data: bytes


def peek(data):
    """A Packet from the header of a frame packet (the rest is the browser's to check)."""
    if len(data) < PACKET_HEADER.size or bytes(data[:4]) != b"FFIG":
        raise FrameError("not a frame packet")
    head = PACKET_HEADER.unpack_from(data)
    return Packet(head[5], head[6], bool(head[4] & FLAG_KEYFRAME), data)


def _lag(newer, older):
    return (newer - older) & 0xFFFFFFFF


class FigureFeed:
    """What the bridge knows of one figure's stream, shared by the tabs watching it."""

    def __init__(self, figure_id, request_snapshot=None):
        self.id = figure_id
        self.request_snapshot = request_snapshot or (lambda: None)
        self.ring = collections.deque(maxlen=RING)
        self.snapshot = None         # Packet of the last snapshot reply (a keyframe)
        self.epoch = None            # epoch and seq of the newest image known
        self.seq = None
        self.state = {}
        self.info = {}
        self.viewers = []
        self.snapshot_pending = False
        self.sync = None             # (epoch, seq) of a sync message not yet checked
        self.frames_received = 0
        self.snapshots_received = 0

    # -- input from the server --------------------------------------------------------

    def on_frame(self, data):
        """A frame packet published by the server."""
        packet = peek(data)
        if (not packet.keyframe and packet.epoch == self.epoch and self.seq is not None
                and not seq_newer(packet.seq, self.seq)):
            return   # already covered by a snapshot that overtook it
        self.frames_received += 1
        self.sync = None   # published after the sync: a missing link shows up in next_for
        self.ring.append(packet)
        self.epoch, self.seq = packet.epoch, packet.seq
        if packet.keyframe:
            self.snapshot_pending = False   # as good as the snapshot being awaited
        self.pump()

    def on_snapshot(self, data):
        """A snapshot reply's packet (None: the figure has no image yet)."""
        self.snapshot_pending = False
        if data is None:
            return
        packet = peek(data)
        self.snapshots_received += 1
        if not packet.keyframe:
            raise FrameError("a snapshot must be a keyframe")
        self.snapshot = packet
        if self.epoch != packet.epoch or self.seq is None or seq_newer(packet.seq, self.seq):
            # Newer than anything on the topic (or of an epoch the topic has not shown
            # yet): it is the current image.
            self.epoch, self.seq = packet.epoch, packet.seq
        self._check_sync()
        self.pump()

    def on_sync(self, epoch, seq):
        """The server saw the bridge's subscription; its newest frame then was (epoch,
        seq). Frames published before the subscription took never arrive: if the newest
        image known is older, only a snapshot asked from now on brings it (a figure that
        then stays still would otherwise never show its last frame)."""
        self.sync = (epoch, seq)
        self._check_sync()

    def _check_sync(self):
        if self.sync is None or self.snapshot_pending:
            return   # checked again when the outstanding snapshot is in
        epoch, seq = self.sync
        self.sync = None
        if self.epoch == epoch and self.seq is not None and not seq_newer(seq, self.seq):
            return
        self.want_snapshot()

    def on_restart(self):
        """The server restarted (or the bridge lost it): nothing known still holds."""
        self.ring.clear()
        self.snapshot = None
        self.epoch = self.seq = None
        self.snapshot_pending = False
        for viewer in self.viewers:
            viewer.base = None
        if self.viewers:
            self.want_snapshot()

    # -- tabs -------------------------------------------------------------------------

    def attach(self, viewer):
        self.viewers.append(viewer)
        viewer.pump()

    def detach(self, viewer):
        if viewer in self.viewers:
            self.viewers.remove(viewer)

    def pump(self):
        for viewer in list(self.viewers):
            viewer.pump()

    def want_snapshot(self):
        if not self.snapshot_pending:
            self.snapshot_pending = True
            self.request_snapshot()

    # -- what a tab gets next ---------------------------------------------------------

    def next_for(self, base):
        """The packet that brings a tab holding image ``base`` ((epoch, seq) or None)
        closer to the newest image, or None (up to date, or waiting for a snapshot)."""
        if self.epoch is None:
            if base is None:
                self.want_snapshot()
            return None
        if base == (self.epoch, self.seq):
            return None
        if base is not None and base[0] == self.epoch and _lag(self.seq, base[1]) <= MAX_LAG:
            wanted = (base[1] + 1) & 0xFFFFFFFF
            for packet in self.ring:
                if packet.epoch == base[0] and packet.seq == wanted:
                    return packet
        # Too far behind, a broken chain, another epoch or nothing yet: start again from
        # the newest keyframe that is close enough to the newest image.
        best = None
        for packet in (*self.ring, self.snapshot):
            if (packet is not None and packet.keyframe and packet.epoch == self.epoch
                    and _lag(self.seq, packet.seq) <= MAX_LAG
                    and (best is None or seq_newer(packet.seq, best.seq))):
                best = packet
        if best is not None and (base is None or base[0] != best.epoch
                                 or seq_newer(best.seq, base[1])):
            return best
        self.want_snapshot()
        return None


class ViewerQueue:
    """One tab's view of a feed: what it holds, what it has not acknowledged yet."""

    def __init__(self, feed, send, max_in_flight=MAX_IN_FLIGHT):
        self.feed = feed
        self.send = send
        self.max_in_flight = max_in_flight
        self.base = None        # (epoch, seq) the tab holds once it has applied all sent
        self.in_flight = 0
        self.sent = 0
        self.keyframes_sent = 0
        self.acked = None       # (epoch, seq) of the last acknowledged frame
        self.closed = False

    def pump(self):
        while not self.closed and self.in_flight < self.max_in_flight:
            packet = self.feed.next_for(self.base)
            if packet is None:
                return
            self.base = (packet.epoch, packet.seq)
            self.in_flight += 1
            self.sent += 1
            self.keyframes_sent += packet.keyframe
            self.send(packet.data)

    def on_ack(self, seq, epoch):
        """The tab has painted (or rejected) one frame."""
        self.in_flight = max(0, self.in_flight - 1)
        self.acked = (epoch, seq)
        self.pump()

    def resync(self):
        """The tab lost its chain (it rejected a packet): its next frame is a keyframe."""
        self.base = None
        self.pump()

    def close(self):
        self.closed = True
        self.feed.detach(self)
