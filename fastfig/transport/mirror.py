"""A figure watched through an upstream session and served again to local consumers: the
bridge's tabs, a relay's downstream clients (PROTOCOL.md section 2, "Relay", and section 3).

A Mirror is an Inbox (the consumer end of the upstream session) feeding an Outbox (the
local consumers' session), and the rule that ties their credits together end to end:

- A frame received from upstream is *taken* (its credit returned upstream) when the
  Outbox has demand again: some local consumer holds the newest image and could take
  another. So upstream sends a mirror frames only as fast as its fastest consumer takes
  them, a mirror never buffers a backlog, and a figure nobody downstream is taking costs
  the server nothing (its render loop sees no demand).
- The Outbox has no encoder: a consumer too far behind for a replay of the ring needs a
  keyframe, which the mirror asks upstream for with ``resync`` (the server encodes it at
  most once per image); the keyframe, when it arrives, is offered like any frame and kept
  as the newest image's keyframe. Asking releases the frames held, so the server has the
  credit to send it.
- A packet the Inbox did not apply (stale after a resync, or broken) is no use to anyone:
  its credit goes back at once.

Sans-IO like the session layer: ``send(type_, **fields)`` carries the Inbox's requests
upstream; the owner calls ``receive(packet)`` for each ``frame`` message of the figure.
One thread, the owner's loop.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable

from .session import DEFAULT_CREDIT, Buffer, Consumer, Inbox, Outbox, Upstream


class Mirror:
    """One upstream figure and its local consumers.

    send: sends one request upstream (``join``, ``credit``, ``resync``, ``leave``).
    credit: the window asked upstream (``join``'s ``credit``).

    The owner calls ``join()`` when the figure should be received (a first consumer, the
    figure listed, the server (re)started) and ``leave()`` when not; ``restart()`` when
    the upstream server restarted (nothing known still holds); ``receive(packet)`` for
    each frame. Consumers come with ``attach(send, credit)`` (see session.Outbox).
    ``state`` is the figure's state as upstream reported it, kept for late consumers.
    """

    def __init__(self, figure_id: str, send: Upstream, *, credit: int = DEFAULT_CREDIT) -> None:
        self.id = figure_id
        self.outbox = Outbox(figure_id, snapshot=self._ask_keyframe, on_demand=self._release)
        self.inbox = Inbox(figure_id, send, self.outbox.offer, credit=credit,
                           auto_credit=False)
        self.state: dict = {}
        self.keyframes_asked = 0
        self._keyframe_pending = False   # a resync is out and its keyframe not yet in
        self.joined_at = 0.0                 # time.time() of the last join sent

    # -- upstream ---------------------------------------------------------------------------

    @property
    def joined(self) -> bool:
        return self.inbox.joined

    def join(self) -> None:
        """Start receiving (again): the first packet upstream sends is a keyframe."""
        self._keyframe_pending = True
        self.joined_at = time.time()
        self.inbox.join()

    def forgotten(self, pong: dict) -> bool:
        """A ``pong`` says upstream forgot this join: its ``joined`` lacks the figure
        although the ping it answers was sent after the join."""
        joined, t = pong.get("joined"), pong.get("t")
        return (self.inbox.joined and isinstance(joined, list) and self.id not in joined
                and isinstance(t, (int, float)) and t > self.joined_at)

    def leave(self, tell: bool = True) -> None:
        """Stop receiving. tell=False: the upstream already forgot (the figure closed, the
        server went away), so no ``leave`` is sent."""
        if tell:
            self.inbox.leave()
        self.inbox.joined = False

    def restart(self) -> None:
        """The upstream server restarted: its images and our joins are gone. Consumers are
        sent a keyframe of the next image once ``join()`` is called again."""
        self.inbox.joined = False
        self._keyframe_pending = False
        self.outbox.reset()

    def receive(self, packet: Buffer) -> bool:
        """A ``frame`` message's packet from upstream. Returns True when it was applied
        (offered to the local consumers)."""
        keyframes = self.inbox.stats.keyframes
        if self.inbox.receive(packet):
            if self.inbox.stats.keyframes != keyframes:
                self._keyframe_pending = False
            return True
        self._release()   # dropped: nobody holds it, its credit goes back
        return False

    def _release(self) -> None:
        self.inbox.take()
        self.inbox.flush()

    def _ask_keyframe(self) -> None:
        # Called by the Outbox at most once per newest image, when a consumer needs a
        # keyframe: upstream makes it. The frames held are released so that upstream has
        # the credit to send it.
        if not self._keyframe_pending and self.inbox.joined:
            # Once per keyframe: the deltas upstream sent before it saw the resync still
            # arrive (and apply), and each makes a newer image the Outbox asks about again.
            self._keyframe_pending = True
            self.keyframes_asked += 1
            self.inbox.resync()
        self._release()
        return None

    # -- local consumers --------------------------------------------------------------------

    def attach(self, send: Callable[[Buffer], object], credit: int = DEFAULT_CREDIT) -> Consumer:
        return self.outbox.attach(send, credit)

    @property
    def consumers(self) -> list[Consumer]:
        return self.outbox.consumers

    @property
    def newest(self):
        return self.outbox.newest

    def close(self) -> None:
        """The figure is gone upstream: forget its consumers' state (not the consumers:
        their owners close them)."""
        self.leave(tell=False)
        self.outbox.reset()

    def stats(self) -> dict:
        st = self.inbox.stats
        return {"received": st.received, "applied": st.applied, "keyframes": st.keyframes,
                "gaps": st.gaps, "stale": st.stale, "resyncs": st.resyncs,
                "keyframes_asked": self.keyframes_asked, **self.outbox.stats()}


def welcomed(mirrors: Iterable[Mirror], restarted: bool) -> None:
    """Upstream said ``welcome``, which follows a (re)connection: it may have forgotten our
    joins (or, restarted, everything). Each mirror joins again, from a keyframe."""
    for mirror in mirrors:
        if restarted:
            mirror.restart()
        else:
            mirror.leave(tell=False)


def ponged(mirrors: Iterable[Mirror], pong: dict) -> None:
    """Upstream answered a ping: a mirror whose join it forgot (we were silent too long)
    joins again."""
    for mirror in mirrors:
        if mirror.forgotten(pong):
            mirror.join()
