"""The mirror (fastfig/transport/mirror.py) the bridge and the relay serve their consumers
from, without sockets: a fake server (an Outbox over a FrameEncoder) and a fake network
(two queues delivered when the test says), consumers that are FrameDecoders. Credits flow
end to end: the server renders only while some consumer behind the mirror wants a frame."""

import collections

import numpy as np

from fastfig import FrameDecoder, FrameEncoder
from fastfig.codec.packet import peek
from fastfig.transport.mirror import Mirror
from fastfig.transport.session import DEFAULT_CREDIT, Outbox
from transport_helpers import frame_index, make_frame

W, H = 96, 64


class Server:
    """One figure served by an Outbox, as the real server does (without sockets)."""

    def __init__(self, epoch=7):
        self.encoder = FrameEncoder(W, H, epoch=epoch)
        self.outbox = Outbox("1", snapshot=lambda: bytes(self.encoder.snapshot()))
        self.i = 0
        self.consumer = None

    def render(self):
        """Render a frame if some consumer wants one (the frame loop's rule)."""
        if not self.outbox.demand:
            return False
        self.i += 1
        self.outbox.offer(bytes(self.encoder.encode(make_frame(self.i, W, H))))
        return True


class Net:
    """The mirror's connection to the server: requests up, frames down, each delivered
    in order when the test calls deliver()."""

    def __init__(self, server):
        self.server = server
        self.up = collections.deque()
        self.down = collections.deque()
        self.requests = collections.Counter()
        self.mirror = Mirror("1", self.request)

    def request(self, type_, **fields):
        self.up.append((type_, fields))
        self.requests[type_] += 1

    def deliver(self):
        while self.up or self.down:
            while self.up:
                type_, fields = self.up.popleft()
                s = self.server
                if type_ == "join":
                    if s.consumer is not None:
                        s.consumer.close()
                    s.consumer = s.outbox.attach(self.down.append, fields["credit"])
                elif type_ == "credit":
                    s.consumer.grant(fields["n"], fields.get("seq"), fields.get("epoch"))
                elif type_ == "resync":
                    s.consumer.resync()
                elif type_ == "leave":
                    s.consumer.close()
                    s.consumer = None
            while self.down:
                self.mirror.receive(self.down.popleft())


class Tab:
    """A consumer behind the mirror: decodes what it is sent, grants when told to."""

    def __init__(self, mirror, credit=DEFAULT_CREDIT):
        self.decoder = FrameDecoder()
        self.inbox = collections.deque()
        self.consumer = mirror.attach(self.inbox.append, credit)
        self.keyframes = 0
        self.taken = 0

    def take(self):
        n = 0
        while self.inbox:
            packet = self.inbox.popleft()
            self.decoder.decode(packet)     # FrameGap if the mirror broke the chain
            self.keyframes += peek(packet).keyframe
            n += 1
        self.taken += n
        if n:
            self.consumer.grant(n)
        return n

    @property
    def index(self):
        return frame_index(self.decoder.image)


def run(server, net, tabs, rounds):
    """Rounds of: the server renders if there is demand, the network delivers, the tabs
    that are taking take."""
    for _ in range(rounds):
        server.render()
        net.deliver()
        for tab in tabs:
            tab.take()
        net.deliver()


def test_a_consumer_behind_the_mirror_gets_every_image_byte_for_byte():
    server = Server()
    assert not server.render()    # nothing rendered until someone joins: no demand
    net = Net(server)
    tab = Tab(net.mirror)
    net.mirror.join()
    net.deliver()
    assert server.render()
    net.deliver()
    tab.take()
    for _ in range(50):
        run(server, net, [tab], 1)
        assert np.array_equal(tab.decoder.image, server.encoder.image)
    assert tab.index == server.i and tab.keyframes == 1
    assert net.requests["resync"] == 0


def test_the_server_renders_only_while_a_consumer_takes():
    server = Server()
    net = Net(server)
    tab = Tab(net.mirror)
    net.mirror.join()
    run(server, net, [tab], 20)
    rendered = server.i
    # The tab stops taking: within its window (and the mirror's), the server stops.
    for _ in range(20):
        server.render()
        net.deliver()
    assert server.i - rendered <= 2 * DEFAULT_CREDIT
    assert not server.outbox.demand
    stopped = server.i
    for _ in range(20):
        assert not server.render()
    assert server.i == stopped
    # It takes again: the server resumes, and the tab holds the newest image.
    run(server, net, [tab], 10)
    assert server.i > stopped
    assert np.array_equal(tab.decoder.image, server.encoder.image)


def test_a_stalled_consumer_costs_the_other_nothing_and_resumes_at_the_newest_image():
    server = Server()
    net = Net(server)
    live, stalled = Tab(net.mirror), Tab(net.mirror)
    net.mirror.join()
    run(server, net, [live, stalled], 5)
    before = live.taken
    run(server, net, [live], 100)          # stalled takes nothing for a while
    assert live.taken - before >= 100 - 1
    assert np.array_equal(live.decoder.image, server.encoder.image)
    assert len(stalled.inbox) <= DEFAULT_CREDIT
    # It resumes: it takes what it holds, then converges with one keyframe, no backlog.
    held = stalled.take()
    assert held <= DEFAULT_CREDIT
    run(server, net, [live, stalled], 3)
    assert np.array_equal(stalled.decoder.image, server.encoder.image)
    assert stalled.keyframes == 2 and stalled.taken - held <= 5 + 3
    # One keyframe was asked upstream for it, nothing for the live consumer.
    assert net.requests["resync"] == 1 and live.keyframes == 1


def test_a_late_consumer_starts_from_a_keyframe_made_upstream():
    server = Server()
    net = Net(server)
    first = Tab(net.mirror)
    net.mirror.join()
    run(server, net, [first], 20)
    late = Tab(net.mirror)
    assert not late.inbox                  # the mirror holds no keyframe of the newest
    net.deliver()
    run(server, net, [first, late], 2)
    assert late.keyframes == 1
    assert np.array_equal(late.decoder.image, server.encoder.image)
    assert server.outbox.snapshot_calls >= 1


def test_upstream_restart_starts_every_consumer_over_with_a_keyframe():
    server = Server(epoch=7)
    net = Net(server)
    tab = Tab(net.mirror)
    net.mirror.join()
    run(server, net, [tab], 10)
    # A new server (new epoch): what the mirror knew no longer holds.
    net.server = server = Server(epoch=8)
    net.up.clear()
    net.down.clear()
    net.mirror.restart()
    net.mirror.join()
    run(server, net, [tab], 5)
    assert peek(bytes(server.encoder.snapshot())).epoch == 8
    assert np.array_equal(tab.decoder.image, server.encoder.image)
    assert tab.keyframes == 2


def test_stale_packets_return_their_credit():
    """Deltas sent before a re-join arrive after it; the mirror drops them and gives their
    credit back, so upstream never waits for credit nobody holds."""
    server = Server()
    net = Net(server)
    tab = Tab(net.mirror)
    net.mirror.join()
    run(server, net, [tab], 5)
    server.render()
    stray = list(net.down)
    net.down.clear()
    net.mirror.join()             # e.g. a reconnection: the server starts us over
    for packet in stray:
        assert not net.mirror.receive(packet) or peek(packet).keyframe
    net.deliver()
    run(server, net, [tab], 5)
    assert np.array_equal(tab.decoder.image, server.encoder.image)


def test_a_pong_without_the_figure_means_join_again_unless_it_predates_the_join():
    server = Server()
    net = Net(server)
    net.mirror.join()
    joined_at = net.mirror.joined_at
    assert not net.mirror.forgotten({"t": joined_at - 1, "joined": []})   # ping before join
    assert not net.mirror.forgotten({"t": joined_at + 1, "joined": ["1"]})
    assert net.mirror.forgotten({"t": joined_at + 1, "joined": []})
    net.mirror.leave()
    assert not net.mirror.forgotten({"t": joined_at + 1, "joined": []})
