"""One figure's stream on a server: its encoder, its state, its input events, and the
Outbox (transport/session.py) that hands its frames to consumers with credit.

A FigureStream knows its server only through the small StreamHost interface below (the
loop, whether the caller is on it, and "this figure closed"); the server knows a stream
through its public methods. publish, keyframe, set_state and close may be called from
any thread; attach, on_* registration and the Outbox from the server's loop.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import threading
import time
from typing import Any, Callable, Optional, Protocol, Sequence

import numpy as np

from . import protocol as P
from .session import DEFAULT_CREDIT, Buffer, Consumer, Outbox
from ..codec.encoder import FrameEncoder
from ..codec.packet import Frame
from ..errors import FigureClosed

log = logging.getLogger("fastfig.server")

#: Frames published from other threads and not yet offered on the loop: the publisher
#: waits beyond this, so a fast producer thread cannot queue images without bound.
MAX_PENDING = 4
#: Unread input events kept for get_event(); older ones are dropped first.
MAX_EVENTS = 1024

Handler = Callable[..., Any]
Box = tuple[int, int, int, int]


class StreamHost(Protocol):
    """What a FigureStream needs of its server."""

    loop: Optional[asyncio.AbstractEventLoop]

    def in_loop(self) -> bool: ...

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None: ...

    def figure_closed(self, stream: "FigureStream") -> None: ...

    def send_to(self, route: list[bytes], type_: str, *binary: bytes,
                **fields: Any) -> bool: ...


class FigureStream:
    """One figure's stream of frames: ``publish`` encodes an RGBA image once and offers
    the packet to every consumer (PROTOCOL.md section 2).

    Created by ``Server.add_figure``. Consumers: clients that ``join`` over ZeroMQ, and
    in-process ones through ``attach``."""

    def __init__(self, host: StreamHost, figure_id: str, width: int, height: int, *,
                 title: str = "", accept: Optional[Sequence[str]] = None,
                 encoding: str = "auto", epoch: Optional[int] = None,
                 **encoder_options: Any) -> None:
        self._host = host
        self.id = P.check_figure_id(figure_id)
        self.frame_header = P.frame_header(figure_id)
        # A random epoch per server run: a client that survives a server restart sees a
        # new epoch, never a stale chain that happens to continue.
        self.encoder = FrameEncoder(width, height, encoding, accept=accept,
                                    epoch=secrets.randbits(32) if epoch is None else epoch,
                                    **encoder_options)
        self.state: dict[str, Any] = {"title": str(title)}
        self.closed = False
        self.frames_published = 0
        self.bytes_published = 0
        self.encode_ms: Optional[float] = None
        self.snapshot_encodes = 0
        self.catch_up_encodes = 0
        self.events_received = 0
        self._lock = threading.Lock()          # guards the encoder across threads
        self._pending = threading.BoundedSemaphore(MAX_PENDING)
        self._snapshot_cache: Optional[tuple[int, int, bytes]] = None
        self._event_handlers: list[Handler] = []
        self._state_handlers: list[Handler] = []
        self._close_handlers: list[Handler] = []
        self._demand_handlers: list[Handler] = []
        self._events: collections.deque[dict] = collections.deque(maxlen=MAX_EVENTS)
        self._event_ready = threading.Condition()
        catch_up = self._catch_up if hasattr(self.encoder, "catch_up") else None
        self.outbox = Outbox(figure_id, snapshot=self._snapshot_of_newest,
                             catch_up=catch_up, on_demand=self._on_demand)
        #: The request envelope of the event being delivered (see reply()), else None.
        self.sender: Optional[list[bytes]] = None

    # -- publishing ---------------------------------------------------------------------

    @property
    def width(self) -> int:
        return self.encoder.width

    @property
    def height(self) -> int:
        return self.encoder.height

    @property
    def seq(self) -> int:
        return self.encoder.seq

    @property
    def epoch(self) -> int:
        return self.encoder.epoch

    def publish(self, rgba: Any, hint: Optional[Sequence[Box]] = None) -> Frame:
        """Encode rgba against what consumers hold and offer the packet to all of them.
        Returns the Frame (empty when nothing changed; empty frames are not sent).
        rgba may be reused by the caller as soon as this returns. Raises FigureClosed."""
        return self._publish(lambda: self.encoder.encode(rgba, hint))

    def keyframe(self, rgba: Any = None) -> Optional[Frame]:
        """Publish a keyframe (of rgba, or of the current image) to every consumer."""
        if rgba is None:
            with self._lock:
                image = self.encoder.image
                rgba = None if image is None else image.copy()
            if rgba is None:
                return None
        return self._publish(lambda: self.encoder.keyframe(rgba))

    def _publish(self, encode: Callable[[], Frame]) -> Frame:
        if self.closed:
            raise FigureClosed(f"figure {self.id!r} is closed")
        with self._lock:
            frame = self._timed(encode)
        if frame.empty:
            return frame
        packet = bytes(frame)
        if self._host.in_loop():
            self._offer(packet)
            return frame
        # Another thread: encoded here (the loop stays free), offered on the loop thread
        # (sockets are not thread-safe). The semaphore bounds packets waiting to go.
        loop = self._host.loop
        if loop is None:
            raise FigureClosed(f"figure {self.id!r}: the server is not running")
        self._pending.acquire()
        try:
            loop.call_soon_threadsafe(self._offer_pending, packet)
        except RuntimeError:
            self._pending.release()
            raise
        return frame

    def _timed(self, encode: Callable[[], Frame]) -> Frame:
        # The viewer's stats panel shows the encode time (a moving average, ms).
        start = time.perf_counter()
        frame = encode()
        ms = (time.perf_counter() - start) * 1000
        self.encode_ms = ms if self.encode_ms is None else 0.8 * self.encode_ms + 0.2 * ms
        return frame

    def _offer_pending(self, packet: bytes) -> None:
        self._pending.release()
        if not self.closed:
            self._offer(packet)

    def _offer(self, packet: bytes) -> None:
        self.frames_published += 1
        self.bytes_published += len(packet)
        self.outbox.offer(packet)

    def snapshot_packet(self) -> Optional[bytes]:
        """A keyframe of the encoder's current image at its current seq, encoded at most
        once per seq however many consumers need one; None before the first frame."""
        with self._lock:
            return self._snapshot_locked()

    def _snapshot_locked(self) -> Optional[bytes]:
        enc = self.encoder
        if enc.image is None:
            return None
        cached = self._snapshot_cache
        if cached is not None and cached[0] == enc.epoch and cached[1] == enc.seq:
            return cached[2]
        packet = bytes(enc.snapshot())
        self._snapshot_cache = (enc.epoch, enc.seq, packet)
        self.snapshot_encodes += 1
        return packet

    def _encoder_at_newest(self) -> bool:
        # Another thread may have encoded a frame whose packet is not offered yet: a
        # keyframe or catch-up made now would be of that image, ahead of the Outbox.
        return (self.encoder.epoch, self.encoder.seq) == self.outbox.newest

    def newest_packet(self) -> Optional[bytes]:
        """The packet that brought consumers to the newest image (a delta or a
        keyframe), or None: nothing offered yet, or a frame encoded on another thread
        is still on its way to the loop. Call on the loop's thread."""
        ring = self.outbox.ring   # its last packet is always the newest image's
        with self._lock:
            if not ring or not self._encoder_at_newest():
                return None
        data = ring[-1].data
        return data if isinstance(data, bytes) else bytes(data)

    def _snapshot_of_newest(self) -> Optional[bytes]:
        with self._lock:
            if not self._encoder_at_newest():
                return None   # the pending packet's offer will ask again
            return self._snapshot_locked()

    def _catch_up(self, base_seq: int) -> Optional[bytes]:
        with self._lock:
            if not self._encoder_at_newest():
                return None
            frame = self.encoder.catch_up(base_seq)
            if frame is None:
                return None
            self.catch_up_encodes += 1
            return bytes(frame)

    # -- consumers ----------------------------------------------------------------------

    def attach(self, send: Callable[[Buffer], object],
               credit: int = DEFAULT_CREDIT) -> Consumer:
        """An in-process consumer (e.g. a notebook widget), on the server's loop: send(
        packet) is called there with each packet for it; call ``consumer.grant(n)`` when
        n frames were taken, ``consumer.resync()`` after a rejected packet,
        ``consumer.close()`` when gone. Its first packet is a keyframe."""
        if self.closed:
            raise FigureClosed(f"figure {self.id!r} is closed")
        return self.outbox.attach(send, credit)

    @property
    def demand(self) -> bool:
        """Some consumer holds the newest image and has spare credit (Outbox.demand)."""
        return self.outbox.demand

    def pace(self, render_seconds: float) -> None:
        """A full render of the figure took render_seconds (Outbox.pace): a slow figure
        renders its next frame while the last one travels."""
        self.outbox.pace(render_seconds)

    def on_demand(self, handler: Handler) -> Handler:
        """Call handler() on the server's loop whenever a consumer becomes ready for a
        new frame: a render loop waiting for demand renders then."""
        self._demand_handlers.append(handler)
        return handler

    def _on_demand(self) -> None:
        for handler in self._demand_handlers:
            try:
                handler()
            except Exception:
                log.exception("demand handler of figure %s failed", self.id)

    # -- state --------------------------------------------------------------------------

    def set_state(self, **fields: Any) -> None:
        """Update figure state (title, cursor, message, navigate_mode, history, rubberband,
        capture_scroll): sent to joined consumers now, and to each one that joins."""
        fields = P.check_state(fields)
        self._host.run_soon(self._set_state, fields)

    def _set_state(self, fields: dict) -> None:
        if self.closed:
            return
        self.state.update(fields)
        for handler in self._state_handlers:
            try:
                handler(fields)
            except Exception:
                log.exception("state handler of figure %s failed", self.id)

    def on_state(self, handler: Handler) -> Handler:
        """Call handler(fields) on the server's loop with the state fields that changed."""
        self._state_handlers.append(handler)
        return handler

    def on_close(self, handler: Handler) -> Handler:
        """Call handler() on the server's loop once the figure is closed."""
        self._close_handlers.append(handler)
        return handler

    def info(self) -> dict:
        return {"id": self.id, "title": self.state.get("title", ""), "width": self.width,
                "height": self.height,
                "encodings": sorted(e.name.lower() for e in self.encoder.accept)}

    # -- input events -------------------------------------------------------------------

    def on_event(self, handler: Handler) -> Handler:
        """Call handler(event) on the server's loop for every valid input event (a dict
        with "type", the event's fields, "figure" and "client"). A coroutine function is
        scheduled as a task. Usable as a decorator."""
        self._event_handlers.append(handler)
        return handler

    def reply(self, sender: Optional[list[bytes]], type_: str, *binary: bytes,
              **fields: Any) -> None:
        """Send a message to one client only: sender is ``self.sender`` read inside an
        event handler (the client that sent the event), e.g. a download's bytes."""
        if sender is not None:
            host = self._host
            host.run_soon(lambda: host.send_to(sender, type_, *binary, figure=self.id,
                                               **fields))

    def get_event(self, timeout: Optional[float] = None) -> Optional[dict]:
        """The next input event from any thread, or None after timeout seconds. Events
        beyond the last 1024 unread ones are dropped, oldest first."""
        with self._event_ready:
            if not self._events:
                self._event_ready.wait(timeout)
            return self._events.popleft() if self._events else None

    def deliver(self, event: dict, sender: Optional[list[bytes]] = None) -> None:
        """An input event for this figure (validated), from the client at route sender:
        queued for get_event and passed to every on_event handler."""
        self.events_received += 1
        with self._event_ready:
            self._events.append(event)
            self._event_ready.notify()
        self.sender = sender
        try:
            for handler in self._event_handlers:
                try:
                    result = handler(event)
                    if asyncio.iscoroutine(result):
                        asyncio.ensure_future(result)
                except Exception:
                    log.exception("event handler of figure %s failed", self.id)
        finally:
            self.sender = None

    # -- the end ------------------------------------------------------------------------

    def stats(self) -> dict:
        out = self.outbox.stats()
        out.update(frames=self.frames_published, bytes=self.bytes_published,
                   snapshot_encodes=self.snapshot_encodes,
                   catch_up_encodes=self.catch_up_encodes, events=self.events_received,
                   seq=self.seq, epoch=self.epoch, encode_ms=self.encode_ms)
        return out

    def consumers(self) -> list[dict]:
        """Per consumer: its credit window, frames in flight, frames sent, keyframes and
        catch-ups among them, the image it last said it holds and the latency to it."""
        return [c.stats() for c in self.outbox.consumers]

    def close(self) -> None:
        """Tell consumers the figure is gone and forget it; safe to call twice, and after
        the server closed."""
        self._host.run_soon(self._close)

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for handler in self._close_handlers:
            try:
                handler()
            except Exception:
                log.exception("close handler of figure %s failed", self.id)
        self.outbox.close()
        self._host.figure_closed(self)
        self.encoder = _ClosedEncoder(self.encoder)  # type: ignore[assignment]  # frees the buffers
        self._snapshot_cache = None


class _ClosedEncoder:
    """Stands in for a closed stream's encoder: keeps the numbers, not the buffers."""

    image: Optional[np.ndarray] = None

    def __init__(self, encoder: FrameEncoder) -> None:
        self.width, self.height = encoder.width, encoder.height
        self.seq, self.epoch, self.accept = encoder.seq, encoder.epoch, encoder.accept

    def encode(self, *a: Any, **k: Any) -> Frame:
        raise FigureClosed("figure is closed")

    keyframe = encode
