"""The session layer: credit flow control between one figure's frames and its consumers
(PROTOCOL.md section 2, "Credits"). No sockets and no clocks in the correctness path, so
all of it is tested with fake transports.

Server side (and a relay's or bridge's local mirror of a figure):

- An **Outbox** is one figure's outgoing stream: the newest image's (epoch, seq), a ring of
  recent packets, and the consumers. ``offer(packet)`` hands it each new packet.
- A **Consumer** is one receiver of the figure (a client's connection, a browser tab, a
  notebook widget). It holds a credit window: the frames it may have received and not yet
  taken. It is sent something only while it has spare credit, and then only what brings it
  to the newest image: holding the newest, nothing (it creates *demand*); one frame
  behind, the newest delta; further behind, a catch-up delta from the image it holds to
  the newest (``catch_up``) or a keyframe of the newest (``snapshot``). Never a backlog:
  a consumer that stops taking frames costs nothing and resumes at the newest image.

Consumer side:

- An **Inbox** is a consumer's end of the session: it joins, checks that each packet
  continues the chain it holds (a gap asks for ``resync``), hands packets on (to a
  decoder, or to a local Outbox mirror) and returns one credit per frame taken.

Everything here runs on one thread (the server's loop); sequence numbers wrap at 2**32.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Callable, Optional, Protocol, Union

from ..codec.packet import Peek, peek
from ..errors import FrameError, FrameGap

log = logging.getLogger("fastfig.session")

#: Frames a consumer may hold unread by default (``join``'s ``credit``): enough to keep a
#: frame in flight while the consumer decodes the one before, few enough that a consumer
#: that stops reading has at most this many stale frames waiting when it resumes.
DEFAULT_CREDIT = 4
#: Largest credit window a consumer may ask for.
MAX_CREDIT = 64
#: A consumer holding the newest image creates demand (for a render) while fewer than
#: this many frames sent to it are untaken. Rendering ahead to fill the whole window would
#: only make frames that the consumer merges unseen: with 4, a client taking 30 frames/s
#: drains 4 frames per take and the server renders 120 a second instead of 30.
DEMAND_IN_FLIGHT = 1
#: ... except where a render takes longer than a consumer's round trip (offer to credit):
#: there the consumer is idle while the figure renders and the figure idle while the
#: frame travels, so one more frame may be in flight (``Outbox.pace``). heavy at 1920x1080
#: in Chromium: a ~190 ms draw and a ~60 ms trip left the figure idle a quarter of the time.
SLOW_RENDER_IN_FLIGHT = 2
#: Packets an Outbox remembers. A consumer a few frames behind is brought up by replaying
#: them when no catch-up delta can be made (a relay's mirror has no encoder).
RING = 8
#: Without catch_up, a consumer at most this many frames behind is sent the deltas it
#: missed (small, and at hand); one further behind is sent a keyframe instead.
MAX_REPLAY = 3
#: Offer times remembered for the latency that ``credit`` messages report.
LATENCY_HISTORY = 256

Buffer = Union[bytes, bytearray, memoryview]
#: (epoch, seq) of an image.
Image = tuple[int, int]


def _newer(a: int, b: int) -> bool:
    """Sequence number a comes after b (32-bit serial number arithmetic)."""
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


def _lag(newer: int, older: int) -> int:
    return (newer - older) & 0xFFFFFFFF


class Packet:
    """A frame packet and what its header says (codec.packet.peek)."""

    __slots__ = ("head", "data")

    def __init__(self, data: Buffer, head: Optional[Peek] = None) -> None:
        self.head = peek(data) if head is None else head
        self.data = data

    @property
    def image(self) -> Image:
        return (self.head.epoch, self.head.seq)

    def applies_to(self, held: Optional[Image]) -> bool:
        """True when a consumer holding image ``held`` can apply this packet."""
        h = self.head
        if h.keyframe:
            return True
        return held is not None and held[0] == h.epoch and held[1] == h.base_seq


class Consumer:
    """One receiver of a figure's frames (made by ``Outbox.attach``).

    ``send(packet)`` is called with each packet for it, on the Outbox's thread; it may
    return False when the packet could not be sent now (a full queue): the consumer then
    keeps its credit and is tried again at the next offer or grant. The receiver calls
    ``grant(n)`` when it has taken n frames (decoded, painted or passed on), ``resync()``
    when it lost its chain (it rejected a packet), ``close()`` when it is gone.

    Attributes: ``window`` (the credit it asked for), ``in_flight`` (frames sent and not
    yet granted back: 0 <= in_flight <= window), ``base`` ((epoch, seq) it holds once it
    has applied everything sent, None before the first keyframe), ``held`` (the newest
    image it reported in ``grant``), ``latency`` (seconds from offer to that grant).
    """

    def __init__(self, outbox: "Outbox", send: Callable[[Buffer], object],
                 credit: int = DEFAULT_CREDIT) -> None:
        if not 1 <= credit <= MAX_CREDIT:
            raise ValueError(f"credit must be 1..{MAX_CREDIT}, not {credit}")
        self.outbox = outbox
        self.send = send
        self.window = credit
        self.in_flight = 0
        self.base: Optional[Image] = None
        self.held: Optional[Image] = None
        self.latency: Optional[float] = None
        self.closed = False
        self.sent = 0
        self.keyframes_sent = 0
        self.catch_ups_sent = 0
        self.granted = 0

    @property
    def credit(self) -> int:
        """Frames it can still be sent."""
        return self.window - self.in_flight

    @property
    def current(self) -> bool:
        """It holds (or has been sent) the newest image."""
        newest = self.outbox.newest
        return newest is None or self.base == newest

    @property
    def hungry(self) -> bool:
        """It holds the newest image and has taken (nearly) every frame sent: a new
        frame would be sent and taken at once."""
        return (not self.closed and self.credit > 0
                and self.in_flight < self.outbox.ahead and self.current)

    def grant(self, n: int = 1, seq: Optional[int] = None, epoch: Optional[int] = None) -> None:
        """n frames were taken: n credits back (never more than the window). seq/epoch:
        the newest image the receiver holds, for the latency statistics."""
        if self.closed or n < 0:
            return
        self.granted += n
        self.in_flight = max(0, self.in_flight - n)
        if seq is not None:
            if epoch is None:
                epoch = self.base[0] if self.base is not None else 0
            self.held = (epoch, seq)
            offered = self.outbox._offered_at.get(self.held)
            if offered is not None:
                self.latency = time.monotonic() - offered
        self.outbox._pump(self)

    def resync(self) -> None:
        """The receiver lost its chain: its next packet is a keyframe (or a delta from
        nothing it could hold). Frames in flight keep their credit until granted."""
        if self.closed:
            return
        self.base = None
        self.outbox._pump(self)

    def close(self) -> None:
        """The receiver is gone: forget it (and its credit)."""
        if not self.closed:
            self.closed = True
            self.outbox._detach(self)

    def stats(self) -> dict:
        return {"window": self.window, "in_flight": self.in_flight, "sent": self.sent,
                "keyframes": self.keyframes_sent, "catch_ups": self.catch_ups_sent,
                "granted": self.granted, "held": self.held, "latency": self.latency}


class Outbox:
    """One figure's outgoing frames and their consumers.

    snapshot(): a keyframe packet of the newest image (the one last offered), or None
    when none can be made now; one will then be offered later (a server whose encoder is
    ahead of the packets offered so far, a mirror that asked upstream with ``resync``).
    Called at most once per newest image, its result shared by all consumers.
    catch_up(base_seq): a delta packet from the image base_seq of the newest epoch to the
    newest image, or None (too old: a keyframe is sent instead). Results are shared by
    consumers at the same base.
    on_demand(): called when a consumer becomes hungry (holds the newest image and has
    spare credit): a render loop waiting for demand renders now (see ``demand``).

    Runs on one thread; ``offer`` and the Consumer methods must be called on it.
    """

    def __init__(self, figure_id: str, *,
                 snapshot: Optional[Callable[[], Optional[Buffer]]] = None,
                 catch_up: Optional[Callable[[int], Optional[Buffer]]] = None,
                 on_demand: Optional[Callable[[], None]] = None,
                 ring: int = RING) -> None:
        self.id = figure_id
        self.snapshot = snapshot
        self.catch_up = catch_up
        self.on_demand = on_demand
        self.consumers: list[Consumer] = []
        #: Frames a consumer holding the newest image may have in flight and still
        #: create demand (DEMAND_IN_FLIGHT, or SLOW_RENDER_IN_FLIGHT after ``pace``).
        self.ahead = DEMAND_IN_FLIGHT
        self.newest: Optional[Image] = None
        self.ring: collections.deque[Packet] = collections.deque(maxlen=ring)
        self.offered = 0
        self.snapshot_calls = 0
        self.catch_up_calls = 0
        self._keyframe: Optional[Packet] = None   # a keyframe of the newest image
        self._keyframe_asked = False              # snapshot() said None for this image
        self._catch_ups: dict[int, Optional[Packet]] = {}   # base seq -> packet, newest
        self._offered_at: collections.OrderedDict[Image, float] = collections.OrderedDict()
        self._pumping = False

    # -- input ----------------------------------------------------------------------------

    def offer(self, packet: Buffer) -> None:
        """The newest frame of the figure (a delta from the previous one, or a keyframe).
        A keyframe of the image already newest (a snapshot arriving) is kept as that
        image's keyframe for consumers that need one. Raises FrameError for a packet
        whose header is not one."""
        p = packet if isinstance(packet, Packet) else Packet(packet)
        if p.image == self.newest:
            if p.head.keyframe:
                self._keyframe = p
                self._keyframe_asked = False
                self.pump()
            return
        self.newest = p.image
        self.offered += 1
        if self.ring and self.ring[-1].head.epoch != p.head.epoch:
            self.ring.clear()
        self.ring.append(p)
        self._keyframe = p if p.head.keyframe else None
        self._keyframe_asked = False
        self._catch_ups.clear()
        times = self._offered_at
        times[p.image] = time.monotonic()
        if len(times) > LATENCY_HISTORY:
            times.popitem(last=False)
        self.pump()

    def reset(self) -> None:
        """Nothing known still holds (a mirror's upstream restarted): forget the images;
        every consumer is sent a keyframe of the next image offered."""
        self.newest = None
        self.ring.clear()
        self._keyframe = None
        self._keyframe_asked = False
        self._catch_ups.clear()
        for c in self.consumers:
            c.base = None

    # -- consumers ------------------------------------------------------------------------

    def attach(self, send: Callable[[Buffer], object],
               credit: int = DEFAULT_CREDIT) -> Consumer:
        """A new consumer; its first packet is a keyframe of the newest image, sent now if
        it can be. See Consumer for ``send``."""
        consumer = Consumer(self, send, credit)
        self.consumers.append(consumer)
        self._pump(consumer)
        return consumer

    def _detach(self, consumer: Consumer) -> None:
        if consumer in self.consumers:
            self.consumers.remove(consumer)

    def close(self) -> None:
        """Forget every consumer (the figure is gone)."""
        for c in list(self.consumers):
            c.close()

    def pace(self, render_seconds: float) -> None:
        """A full render of the figure took render_seconds: when that is longer than the
        quickest consumer's last round trip, let consumers ask for the next frame while
        one is still in flight, so renders overlap the trips instead of waiting for them.
        Pacing only: what each consumer is sent is decided by its credit as ever."""
        trips = [c.latency for c in self.consumers if c.latency is not None]
        slow = bool(trips) and render_seconds > min(trips)
        self.ahead = SLOW_RENDER_IN_FLIGHT if slow else DEMAND_IN_FLIGHT

    @property
    def demand(self) -> bool:
        """Some consumer holds the newest image, has spare credit and has taken what it
        was sent (``ahead``): a new frame would be sent and taken at once. A
        render loop renders only then."""
        return any(c.hungry for c in self.consumers)

    def pump(self) -> None:
        """Send each consumer what it can take now."""
        for consumer in list(self.consumers):
            self._pump(consumer)

    def _pump(self, consumer: Consumer) -> None:
        while not consumer.closed and consumer.credit > 0:
            if consumer.current:
                break
            packet = self._next_for(consumer.base)
            if packet is None:
                return   # waiting for a keyframe to be offered
            try:
                sent = consumer.send(packet.data)
            except Exception:
                # One broken receiver (an in-process widget's callback, say) must not
                # stop the figure for everyone: it is dropped, the others served.
                log.exception("consumer of figure %s failed; dropped", self.id)
                consumer.close()
                return
            if sent is False:
                return   # queue full: tried again at the next offer or grant
            consumer.base = packet.image
            consumer.in_flight += 1
            consumer.sent += 1
            if packet.head.keyframe:
                consumer.keyframes_sent += 1
            elif packet.head.base_seq != ((packet.head.seq - 1) & 0xFFFFFFFF):
                consumer.catch_ups_sent += 1
        if consumer.hungry and self.on_demand is not None:
            self.on_demand()

    def _next_for(self, base: Optional[Image]) -> Optional[Packet]:
        """The packet that brings a consumer holding ``base`` closest to the newest image."""
        newest = self.newest
        assert newest is not None
        last = self.ring[-1] if self.ring else None
        if last is not None and last.image == newest and not last.head.keyframe \
                and last.applies_to(base):
            return last                                   # one behind: the new delta
        if base is not None and base[0] == newest[0] and _newer(newest[1], base[1]):
            if self.catch_up is not None:
                packet = self._catch_up(base[1])
                if packet is not None:
                    return packet                         # behind: one delta to newest
            elif _lag(newest[1], base[1]) <= MAX_REPLAY:
                for p in self.ring:                       # replay a short chain
                    if p.applies_to(base) and not p.head.keyframe:
                        return p
        return self._snapshot()                           # a keyframe of the newest

    def _catch_up(self, base_seq: int) -> Optional[Packet]:
        if base_seq in self._catch_ups:
            return self._catch_ups[base_seq]
        self.catch_up_calls += 1
        data = self.catch_up(base_seq) if self.catch_up is not None else None
        packet = None
        if data is not None:
            packet = Packet(data)
            if packet.image != self.newest or not packet.applies_to((self.newest[0], base_seq)):
                raise FrameError(f"catch_up({base_seq}) gave {packet.image}, a packet that "
                                 f"does not lead to the newest image {self.newest}")
        self._catch_ups[base_seq] = packet
        return packet

    def _snapshot(self) -> Optional[Packet]:
        if self._keyframe is not None:
            return self._keyframe
        if self._keyframe_asked or self.snapshot is None:
            return None
        self._keyframe_asked = True
        self.snapshot_calls += 1
        data = self.snapshot()
        if data is None:
            return None   # offered later
        packet = Packet(data)
        if not packet.head.keyframe or packet.image != self.newest:
            raise FrameError(f"snapshot() gave {packet.image}, not a keyframe of the newest "
                             f"image {self.newest}")
        self._keyframe = packet
        return packet

    def stats(self) -> dict:
        return {"offered": self.offered, "consumers": len(self.consumers),
                "snapshots": self.snapshot_calls, "catch_ups": self.catch_up_calls,
                "demand": self.demand}


# -- the consumer side ----------------------------------------------------------------------


class Upstream(Protocol):
    """How an Inbox talks to the server: ``send(type_, **fields)`` sends one request
    (``join``, ``credit``, ``resync``, ``leave``) for the Inbox's figure. It returns False
    when the request could not be sent (a credit is then sent with the next flush)."""

    def __call__(self, type_: str, **fields: object) -> object: ...


class Inbox:
    """A consumer's end of one figure's session, without I/O.

    send(type_, **fields): sends a request upstream (fields include ``figure``).
    apply(packet): takes a packet that continues the chain (decodes it, or offers it to a
    local Outbox mirror); may raise FrameError to reject it (then a resync is asked).
    credit: the window asked for in ``join``. auto_credit: return credit as soon as a
    frame is received (``flush`` still batches the messages); a relay's or bridge's
    mirror passes False and calls ``take(n)`` when its own consumers want frames.

    Call ``join()`` once connected (and again after the server restarted), ``receive``
    for each ``frame`` message, ``flush()`` once everything waiting was received (one
    ``credit`` message for all of it).
    """

    def __init__(self, figure_id: str, send: Upstream, apply: Callable[[Buffer], object],
                 *, credit: int = DEFAULT_CREDIT, auto_credit: bool = True) -> None:
        if not 1 <= credit <= MAX_CREDIT:
            raise ValueError(f"credit must be 1..{MAX_CREDIT}, not {credit}")
        self.figure = figure_id
        self._send = send
        self._apply = apply
        self.credit = credit
        self.auto_credit = auto_credit
        self.held: Optional[Image] = None      # the image the receiver holds
        self.resyncing = False                 # a resync is outstanding
        self.joined = False
        self.last: Optional[Peek] = None       # header of the last packet applied
        self._untaken = 0      # received, not yet taken (auto_credit False)
        self._taken = 0        # taken, credit not yet returned
        self.stats = InboxStats()

    def join(self) -> None:
        """Start (or restart, after a server restart) receiving: the first packet is a
        keyframe."""
        self.held = None
        self.resyncing = True   # until that keyframe arrives, deltas are strays
        self._untaken = self._taken = 0
        self.joined = True
        self.stats.joins += 1
        self._send("join", figure=self.figure, credit=self.credit)

    def leave(self) -> None:
        if self.joined:
            self.joined = False
            self._send("leave", figure=self.figure)

    def receive(self, data: Buffer) -> bool:
        """A ``frame`` message's packet. Returns True when it was applied. Every packet
        received counts as a frame to return credit for, applied or not."""
        st = self.stats
        st.received += 1
        st.received_bytes += len(data)
        if self.auto_credit:
            self._taken += 1
        else:
            self._untaken += 1
        try:
            head = peek(data)
        except FrameError:
            st.errors += 1
            self.resync()
            return False
        held = self.held
        if not head.keyframe and (held is None or held[0] != head.epoch
                                  or held[1] != head.base_seq):
            if self.resyncing or (held is not None and held[0] == head.epoch
                                  and not _newer(head.seq, held[1])):
                st.stale += 1    # sent before our resync (or join) took effect
                return False
            st.gaps += 1
            self.resync()
            return False
        try:
            self._apply(data)
        except FrameGap:
            st.gaps += 1
            self.resync()
            return False
        except FrameError:
            st.errors += 1
            self.resync()
            return False
        self.held = (head.epoch, head.seq)
        self.last = head
        self.resyncing = False
        st.applied += 1
        st.keyframes += head.keyframe
        if head.timestamp_us:
            st.latencies.append(time.time() - head.timestamp_us / 1e6)
        return True

    def resync(self) -> None:
        """Ask for a keyframe (once until one arrives): the chain is broken."""
        if not self.resyncing:
            self.resyncing = True
            self.stats.resyncs += 1
            self._send("resync", figure=self.figure)

    def take(self, n: Optional[int] = None) -> None:
        """n (default: all) received frames were taken (auto_credit False)."""
        n = self._untaken if n is None else min(n, self._untaken)
        self._untaken -= n
        self._taken += n

    def flush(self) -> bool:
        """Return the credit of the frames taken since the last flush, in one message.
        Returns True when one was sent."""
        if not self._taken or not self.joined:
            return False
        fields: dict[str, object] = {"figure": self.figure, "n": self._taken}
        if self.held is not None:
            fields["epoch"], fields["seq"] = self.held
        if self._send("credit", **fields) is False:
            # Not sent (no connection at the moment): a lost credit would stall the
            # figure for this consumer, so it goes with the next flush.
            self.stats.unsent += 1
            return False
        self._taken = 0
        self.stats.credits += 1
        return True


class InboxStats:
    """What an Inbox counted: received (packets), received_bytes, applied, keyframes,
    gaps (a packet that did not follow: resync asked), stale (packets sent before a
    resync took effect, dropped), errors (rejected packets), resyncs, joins, credits
    (messages sent), unsent (credit messages that could not be sent: retried),
    latencies (seconds from encode to apply, same-clock peers)."""

    def __init__(self) -> None:
        self.start = time.monotonic()
        self.received = 0
        self.received_bytes = 0
        self.applied = 0
        self.keyframes = 0
        self.gaps = 0
        self.stale = 0
        self.errors = 0
        self.resyncs = 0
        self.joins = 0
        self.credits = 0
        self.unsent = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=4096)
