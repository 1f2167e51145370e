"""fastfig.Client: a Python frontend for one figure of a fastfig server.

It joins the figure over its one DEALER connection (PROTOCOL.md section 2) and receives
the figure's frames while it has credit; an Inbox (session.py) checks the chain and
returns one credit per frame the moment it is read. Frames read together are decoded in
order and merged: each yield is the newest image. A client that stops iterating stops
receiving (at most a credit window of frames waits for it) and, when it resumes, is sent
the newest image. Plain synchronous pyzmq: no event loop.
"""

from __future__ import annotations

import collections
import statistics
import time
import weakref
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import numpy as np
import zmq

from . import protocol as P
from . import security
from .session import DEFAULT_CREDIT, Buffer, Inbox, InboxStats
from ..codec.decoder import FrameDecoder
from ..codec.packet import Encoding
from ..errors import CloseError, ProtocolError, ServerError

__all__ = ["Client", "ClientFrame", "ServerError"]

#: Messages read in one go before the client hands out the image they built.
MAX_DRAIN = 256
#: Replies a client keeps while nobody asked for them (downloads).
MAX_DOWNLOADS = 4


@dataclass(frozen=True, slots=True)
class ClientFrame:
    """One reconstructed frame. ``image`` is a read-only view of the client's current
    image, updated in place when the generator advances: copy it to keep it. Times are
    seconds of the wall clock (time.time()); latency runs from the server's encode to the
    end of the decode (valid when both ends share a clock). ``skipped``: frames merged
    into this one unseen."""

    image: np.ndarray
    seq: int
    epoch: int
    keyframe: bool
    encoded_at: float
    received_at: float
    decoded_at: float
    nbytes: int
    skipped: int

    @property
    def latency(self) -> float:
        return self.decoded_at - self.encoded_at

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


class Client:
    """Receive one figure of the server at address (its control endpoint).

    figure: the figure id (default: the first figure, waiting up to timeout for one).
    accept: encodings this client decodes (default: all). curve: a security.CurveClient.
    credit: frames the server may send ahead of what this client has read (PROTOCOL.md,
    "Credits"). ping_interval, dead_after: liveness (seconds). Raises TimeoutError when
    the server does not answer within timeout seconds, ServerError when it has no such
    figure.
    """

    def __init__(self, address: str, figure: Optional[str] = None, *,
                 accept: Optional[Sequence[str]] = None, curve: Any = None,
                 timeout: float = 5.0, credit: int = DEFAULT_CREDIT,
                 ping_interval: float = 1.0, dead_after: float = 3.0,
                 name: str = "fastfig-python") -> None:
        self.address = address
        self.curve = curve
        self.credit = credit
        self.ping_interval = ping_interval
        self.dead_after = dead_after
        self.name = name
        self.accept = frozenset(Encoding.parse(e) for e in (accept or list(Encoding)))
        self.figure: Optional[str] = None
        self.state: dict[str, Any] = {}
        self.closed = False          # the figure was closed by the server
        self.server_id: Optional[str] = None
        self.last_error: Optional[Exception] = None
        self._figures: list[dict] = []
        self._figures_version = 0
        self._decoder = FrameDecoder()
        self._recorders: list = []       # Client.record: fed every packet applied
        self._inbox: Optional[Inbox] = None
        self._frame_header = b""
        self._downloads: collections.deque = collections.deque(maxlen=MAX_DOWNLOADS)
        self._fresh: Optional[tuple[bool, float, int]] = None  # keyframe, received, bytes
        self._skipped = 0
        self._last_heard = self._last_sent = time.monotonic()
        self._last_hello = 0.0
        self._stats = _Stats()
        self._ctx: Optional[zmq.Context] = zmq.Context()
        self._dealer = self._ctx.socket(zmq.DEALER)
        security.tune(self._dealer)
        # Credit bounds the frames queued here; replies and state are few.
        self._dealer.setsockopt(zmq.RCVHWM, 1000)
        self._dealer.setsockopt(zmq.SNDHWM, 64)
        # No ZMQ_IMMEDIATE: with it, a lost connection drops the messages received on it
        # and not yet read, so the last words of a server whose process ends (a figure's
        # close, the figure list) were lost when the client had not read them in time
        # (1 in 10 scripts that exit after their last figure closed). Without it,
        # requests made while no server answers wait in the queue (SNDHWM) for the next.
        self._dealer.setsockopt(zmq.IMMEDIATE, 0)
        if curve is not None:
            curve.apply(self._dealer)
        try:
            self._dealer.connect(address)
            self._handshake(figure, timeout)
        except BaseException:
            self._close_sockets()
            raise

    # -- connection ---------------------------------------------------------------------

    def _handshake(self, figure: Optional[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.server_id is None:
            now = time.monotonic()
            if now >= deadline:
                raise TimeoutError(f"no answer from a fastfig server at {self.address} "
                                   f"within {timeout} s")
            if self._hello():
                self._wait(min(deadline, now + 0.5), lambda: self.server_id)
            else:
                # The queue is full (a server that never answered): wait until the
                # connection takes it, not for the next retry half a second later.
                self._dealer.poll(int(1000 * min(deadline - now, 0.5)) + 1, zmq.POLLOUT)

        def present() -> bool:
            if figure is None:
                return bool(self._figures)
            return any(f.get("id") == str(figure) for f in self._figures)
        # Figure lists are pushed to every client that said hello when they change.
        while not present():
            if time.monotonic() >= deadline:
                raise ServerError(f"the server at {self.address} has "
                                  f"{'no figure' if figure is None else f'no figure {figure!r}'}",
                                  P.E_UNKNOWN_FIGURE)
            self._wait(min(deadline, time.monotonic() + 0.2), present)
        self.figure = P.check_figure_id(str(figure) if figure is not None
                                        else self._figures[0]["id"])
        info = self._figure_info()
        if info is not None:
            self._check_encodings(info)
        self._frame_header = P.frame_header(self.figure)
        # The inbox calls back through a weak reference: a Client dropped without close()
        # then goes at once, by reference counting, and closes its sockets (__del__). In a
        # reference cycle the garbage collector may finalize the zmq context before its
        # socket, and the context's term() then waits for that socket for ever.
        self._inbox = Inbox(self.figure, _weak_method(self._request), self._decoder.decode,
                            credit=self.credit)
        self._inbox.join()

    def _figure_info(self) -> Optional[dict]:
        return next((f for f in self._figures if f.get("id") == self.figure), None)

    def _check_encodings(self, info: dict) -> None:
        wanted: set = set()
        for name in info.get("encodings", []):
            try:
                wanted.add(Encoding.parse(name))
            except ValueError:
                wanted.add(name)
        if not wanted <= self.accept:
            raise ServerError(f"figure {self.figure!r} uses encodings "
                              f"{sorted(str(w) for w in wanted - self.accept)} this client "
                              "does not accept", "encoding")

    def _hello(self) -> bool:
        self._last_hello = time.monotonic()
        return self._request(P.HELLO, client=self.name,
                             accept=sorted(e.name.lower() for e in self.accept))

    def _request(self, type_: str, **fields: Any) -> bool:
        try:
            self._dealer.send_multipart([b"", P.header(type_, **fields)], zmq.NOBLOCK)
        except zmq.Again:
            return False   # the queue is full, no server has taken it: the liveness
                           # check says hello again
        self._last_sent = time.monotonic()
        return True

    # -- receiving -----------------------------------------------------------------------

    def _wait(self, deadline: float, done: Any) -> None:
        """Handle messages until done() or the deadline."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or not self._dealer.poll(round(left * 1000)):
                return
            self._drain()

    def _drain(self) -> None:
        """Read everything waiting, then return the credit of the frames read at once."""
        for _ in range(MAX_DRAIN):
            try:
                frames = self._dealer.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            self._on_message(frames)
        if self._inbox is not None:
            self._inbox.flush()

    def _on_message(self, frames: list) -> None:
        self._last_heard = time.monotonic()
        if (len(frames) == 3 and len(frames[0]) == 0 and self._inbox is not None
                and frames[1].bytes == self._frame_header):
            self._on_frame(frames[2].buffer)   # the hot path: no JSON
            return
        parts = [f.bytes for f in frames]
        try:
            _, body = P.split_envelope(parts)
            if not body:
                raise ProtocolError("message has no header")
            msg = P.parse_header(body[0])
        except ProtocolError as e:
            self._stats.errors += 1
            self.last_error = e
            return
        t = msg["type"]
        mine = msg.get("figure") == self.figure
        if t == P.WELCOME:
            self._on_welcome(msg)
        elif t == P.FIGURES:
            self._set_figures(msg.get("figures"))
        elif t == P.STATE and mine and isinstance(msg.get("state"), dict):
            self.state.update(msg["state"])
            for recorder in self._recorders:
                recorder.state(msg["state"])
        elif t == P.CLOSE and mine:
            self.closed = True
            for recorder in self._recorders:
                recorder.figure_closed()
        elif t == P.DOWNLOAD and mine and len(body) == 2:
            self._downloads.append((msg, body[1]))
        elif t == P.PONG:
            if msg.get("server_id") not in (None, self.server_id):
                self._hello()   # a new server answers at the address: start over
            elif (isinstance(msg.get("joined"), list) and self._inbox is not None
                  and self._inbox.joined and not self.closed
                  and self.figure not in msg["joined"]):
                self._inbox.join()   # the server forgot us (timed out): join again
        elif t == P.ERROR:
            self._on_error(msg)

    def _on_error(self, msg: dict) -> None:
        self._stats.errors += 1
        code = msg.get("code")
        self.last_error = ServerError(str(msg.get("message", "?")), code)
        if code == P.E_NOT_JOINED and self._inbox is not None and not self.closed:
            self._inbox.join()   # the server forgot us (it timed us out): join again
        elif code == P.E_UNKNOWN_FIGURE and self.figure is not None \
                and self._figure_info() is None:
            self.closed = True

    def _on_welcome(self, msg: dict) -> None:
        new_server = msg.get("server_id") != self.server_id
        self.server_id = msg.get("server_id")
        self._set_figures(msg.get("figures"))
        if new_server and self._inbox is not None and not self.closed:
            self._stats.restarts += 1
            self._inbox.join()

    def _set_figures(self, figures: Any) -> None:
        if isinstance(figures, list):
            self._figures = [f for f in figures if isinstance(f, dict) and "id" in f]
            self._figures_version += 1
            if self.figure is not None and self._figure_info() is None:
                self.closed = True   # the close message itself may have been missed

    def _on_frame(self, packet: Buffer) -> None:
        assert self._inbox is not None
        if self._inbox.receive(packet):
            for recorder in self._recorders:
                recorder.frame(packet, self._decoder.image)
            now = time.time()
            keyframe = self._inbox.last is not None and self._inbox.last.keyframe
            nbytes = len(packet)
            if self._fresh is not None:
                self._skipped += 1
                keyframe = keyframe or self._fresh[0]
                nbytes += self._fresh[2]
            self._fresh = (keyframe, now, nbytes)

    # -- the loop --------------------------------------------------------------------------

    def _pump(self, timeout: float) -> bool:
        """Handle messages until a new image is ready or timeout seconds pass. Everything
        already waiting is read before returning, so one yield covers all of it."""
        deadline = time.monotonic() + timeout
        while True:
            self._upkeep()
            if self._dealer.poll(0):
                self._drain()
            if self._fresh is not None or self.closed:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if self._dealer.poll(round(min(left, self.ping_interval) * 1000)):
                self._drain()

    def _upkeep(self) -> None:
        if self._inbox is not None:
            self._inbox.flush()   # a credit that could not be sent before
        now = time.monotonic()
        if now - self._last_heard > self.dead_after and now - self._last_hello > self.dead_after:
            self._hello()   # server silent: it may have restarted
        elif now - self._last_sent > self.ping_interval:
            self._request(P.PING, t=time.time())

    def frames(self, timeout: Optional[float] = None) -> Iterator[ClientFrame]:
        """Yield ClientFrames as new images arrive; stop when none arrives for timeout
        seconds (None: wait forever) or the figure is closed. Frames that arrive while the
        consumer is busy are merged: each yield is the newest image."""
        last = time.monotonic()
        while not self.closed:
            wait = 1.0 if timeout is None else max(0.0, last + timeout - time.monotonic())
            if self._pump(wait) and self._fresh is not None:
                last = time.monotonic()
                yield self._take()
            elif timeout is not None and time.monotonic() - last >= timeout:
                return

    def next_frame(self, timeout: float = 5.0) -> Optional[ClientFrame]:
        """The next new image, or None after timeout seconds (or once closed)."""
        if self._fresh is None:
            self._pump(timeout)
        return self._take() if self._fresh is not None else None

    def _take(self) -> ClientFrame:
        assert self._fresh is not None
        keyframe, received_at, nbytes = self._fresh
        skipped, self._skipped, self._fresh = self._skipped, 0, None
        dec = self._decoder
        assert dec.image is not None and dec.seq is not None and dec.epoch is not None
        frame = ClientFrame(dec.image, dec.seq, dec.epoch, keyframe, dec.timestamp_us / 1e6,
                            received_at, time.time(), nbytes, skipped)
        self._stats.frame(frame)
        return frame

    # -- API ---------------------------------------------------------------------------------

    @property
    def image(self) -> Optional[np.ndarray]:
        """The current image (read-only view, updated in place), or None."""
        return self._decoder.image

    @property
    def seq(self) -> Optional[int]:
        return self._decoder.seq

    def figures(self, timeout: float = 2.0) -> list[dict]:
        """The server's figures: [{"id", "title", "width", "height", "encodings"}], asked
        afresh (the last known list if the server does not answer within timeout)."""
        version = self._figures_version
        self._request(P.FIGURES)
        self._wait(time.monotonic() + timeout, lambda: self._figures_version != version)
        return list(self._figures)

    def send_event(self, type: str, **fields: Any) -> bool:
        """Send an input event to the figure (PROTOCOL.md section 2, "Input events"), e.g.
        send_event("button_press", x=10, y=20, button=1). Validated here first (raises
        ProtocolError). Returns False when it could not be queued (no server has taken
        the requests queued before it)."""
        event = P.check_event({"type": type, **fields})
        return self._request(P.EVENT, figure=self.figure, event=event)

    def timeline(self, action: str, **fields: Any) -> bool:
        """Drive the figure's animation timeline (PROTOCOL.md section 2, "Timeline"):
        timeline("play"), ("pause"), ("step", delta=-1), ("seek", index=10),
        ("speed", speed=2), ("direction", direction=-1). Validated here first (raises
        ProtocolError); a figure without a timeline, or a frame that cannot be shown,
        comes back as an error (``last_error``). Its position is ``timeline_state``."""
        return self.send_event("timeline", action=action, **fields)

    @property
    def timeline_state(self) -> Optional[dict]:
        """The figure's timeline state as last received ({"index", "length",
        "playing", "direction", "speed", "interval", "cached"}), or None for a figure
        without one; also ``state["timeline"]``."""
        return self.state.get("timeline")

    def download(self, format: str = "png", timeout: float = 10.0) -> bytes:
        """The figure saved in format (any savefig format: "png", "svg", "pdf", ...), as
        bytes, asked of the server with a toolbar download event. Raises TimeoutError."""
        self._downloads.clear()
        self.send_event("toolbar", name="download", format=format)
        self._wait(time.monotonic() + timeout, lambda: self._downloads)
        if not self._downloads:
            raise TimeoutError(f"no {format} download within {timeout} s")
        return bytes(self._downloads.popleft()[1])

    def record(self, path: Any, **options: Any) -> Any:
        """Record this figure's stream to a .ffrec file (RECORDING.md) from its next
        keyframe on: every packet this client applies, state changes, the close. Returns
        the Recorder (fastfig/recording/recorder.py; options are its checkpoint spacing);
        close it, or use it in a with-block, to write the index."""
        from ..recording.recorder import for_client
        recorder = for_client(self, path, **options)
        recorders = self._recorders     # (not self: a recorder keeps no client alive)
        recorders.append(recorder)
        recorder.on_close(lambda: recorders.remove(recorder))
        return recorder

    def resync(self) -> None:
        """Ask for a keyframe now (the image is rebuilt from it)."""
        if self._inbox is not None:
            self._inbox.resyncing = False
            self._inbox.resync()

    def stats(self, reset: bool = False) -> dict:
        """fps and bytes_per_s (since the start or the last reset), latency_median and
        latency_p95 (seconds, encode to decode), frames (images handed out), skipped
        (merged unseen), received (packets), keyframes, gaps (packets that did not
        follow: a resync was asked), stale, resyncs, restarts, errors, elapsed."""
        inbox = self._inbox.stats if self._inbox is not None else InboxStats()
        out = self._stats.report(inbox)
        if reset:
            self._stats = _Stats()
            if self._inbox is not None:
                self._inbox.stats = InboxStats()
        return out

    def close(self) -> None:
        """Say bye and release the sockets; safe to call twice. Raises CloseError when
        the sockets could not be released (after trying all)."""
        if self._ctx is None:
            return
        for recorder in list(self._recorders):
            recorder.close()        # its index written: the recording is whole
        if self.server_id is not None:
            self._request(P.BYE)
        errors = self._close_sockets()
        if errors:
            raise CloseError("the client", errors)

    def _close_sockets(self) -> list[BaseException]:
        errors: list[BaseException] = []
        if self._ctx is None:
            return errors
        for step in (lambda: self._dealer.close(linger=0), self._ctx.term):
            try:
                step()
            except Exception as e:
                errors.append(e)
        self._ctx = None
        return errors

    def __del__(self) -> None:
        # Dropped without close(): release the sockets (no bye: the server times the
        # client out), before the zmq objects' own finalizers warn and do it.
        try:
            self._close_sockets()
        except Exception:
            pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __iter__(self) -> Iterator[ClientFrame]:
        return self.frames()


class _Stats:
    def __init__(self) -> None:
        self.start = time.monotonic()
        self.frames = 0
        self.skipped = 0
        self.bytes = 0
        self.restarts = 0
        self.errors = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=4096)

    def frame(self, f: ClientFrame) -> None:
        self.frames += 1
        self.skipped += f.skipped
        self.bytes += f.nbytes
        self.latencies.append(f.latency)

    def report(self, inbox: InboxStats) -> dict:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        lat = sorted(self.latencies)
        return {"fps": self.frames / elapsed, "bytes_per_s": inbox.received_bytes / elapsed,
                "latency_median": statistics.median(lat) if lat else None,
                "latency_p95": lat[int(0.95 * (len(lat) - 1))] if lat else None,
                "frames": self.frames, "skipped": self.skipped, "received": inbox.received,
                "keyframes": inbox.keyframes, "gaps": inbox.gaps, "stale": inbox.stale,
                "resyncs": inbox.resyncs, "restarts": self.restarts,
                "errors": self.errors + inbox.errors, "elapsed": elapsed}


def _weak_method(method: Any) -> Any:
    """Call method through a weak reference to its object (False once it is gone)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any, **kwargs: Any) -> Any:
        bound = ref()
        return False if bound is None else bound(*args, **kwargs)
    return call
