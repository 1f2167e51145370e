"""The bridge's ZeroMQ side (PROTOCOL.md section 3.1): the bridge is an ordinary client of
a fastfig server (section 2), one DEALER to its control endpoint shared by every figure
and every tab. Per figure a tab watches, one Mirror (transport/mirror.py): an Inbox that
joins the figure upstream with credit, feeding a local Outbox whose consumers are the
tabs. Credit flows end to end: the server sends the bridge a figure's frames only as fast
as its fastest tab takes them.

It survives server restarts: a silent server is greeted again, and a new server id means
every figure starts over from a keyframe. Nothing here knows about browsers; the Bridge
is told what changed (figures, state, close, status).
"""

import asyncio
import logging
import time

import zmq
import zmq.asyncio

from ..transport import protocol as P
from ..transport import security
from ..transport.mirror import Mirror, ponged, welcomed

log = logging.getLogger("fastfig.bridge")

#: Seconds between pings to the server; silent this long and the bridge says hello again.
PING_INTERVAL = 1.0
DEAD_AFTER = 3.0


class Upstream:
    """The bridge's connection to the server: requests, replies, and the frames, state and
    figure lists pushed to it."""

    def __init__(self, bridge, address, curve=None):
        self.bridge = bridge
        self.address = address
        self.curve = curve
        self.server_id = None
        self.figures = []           # figure infos, as the server lists them
        self.mirrors = {}           # figure id -> Mirror, while some tab watches it
        self._by_header = {}        # a figure's constant frame header -> its Mirror
        self.connected = False
        self._ctx = zmq.asyncio.Context()
        self._tasks = []
        self._last_heard = 0.0
        self._last_hello = 0.0
        self._dealer = self._ctx.socket(zmq.DEALER)
        security.tune(self._dealer)
        self._dealer.setsockopt(zmq.SNDHWM, 1000)
        self._dealer.setsockopt(zmq.RCVHWM, 1000)
        self._dealer.setsockopt(zmq.IMMEDIATE, 1)   # nothing queues for a dead server
        if curve is not None:
            curve.apply(self._dealer)
        # Connection events say at once when the server went away or came back (a
        # restart at the same address), instead of after seconds of silence.
        self._monitor = self._dealer.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self._dealer.connect(address)
        self._welcomed = asyncio.Event()
        self._downloads = {}        # (figure id, format) -> futures, oldest first

    async def start(self, timeout=10.0):
        self._tasks = [asyncio.ensure_future(self._read_dealer()),
                       asyncio.ensure_future(self._keepalive()),
                       asyncio.ensure_future(self._watch_connection())]
        deadline = time.monotonic() + timeout
        while not self._welcomed.is_set() and timeout:
            self._hello()
            try:
                await asyncio.wait_for(self._welcomed.wait(), 0.05)
            except asyncio.TimeoutError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no fastfig server answered at {self.address} "
                                       f"within {timeout} s") from None

    def close(self):
        for task in self._tasks:
            task.cancel()
        if self.connected:
            self.send(P.BYE)
        try:
            self._dealer.disable_monitor()
        except zmq.ZMQError:
            pass
        for sock in (self._monitor, self._dealer):
            sock.close(linger=0)
        self._ctx.term()

    # -- requests ---------------------------------------------------------------------

    def send(self, type_, **fields):
        try:
            fut = self._dealer.send_multipart([b"", P.header(type_, **fields)], zmq.NOBLOCK)
        except zmq.ZMQError:
            return False
        # zmq.asyncio reports a failed non-blocking send (no server: the keepalive greets
        # it when it is back) through the future, not by raising.
        if fut.done():
            return not fut.cancelled() and fut.exception() is None
        fut.add_done_callback(_retrieve)
        return True

    def _hello(self):
        self._last_hello = time.monotonic()
        self.send(P.HELLO, client="fastfig-bridge", accept=["raw", "fill", "rle", "png"])

    def download(self, figure_id, fmt):
        """A future of the figure saved as fmt: a toolbar download event, answered by the
        figure's owner with a download reply to this bridge (the sender)."""
        fut = asyncio.get_running_loop().create_future()
        if not self.send(P.EVENT, figure=figure_id,
                         event={"type": "toolbar", "name": "download", "format": fmt}):
            fut.set_exception(ConnectionError("the figure server is not reachable"))
            return fut
        # Replies carry the figure and format, not a request id; the server handles one
        # client's events in order, so the oldest request of the same kind is answered.
        self._downloads.setdefault((figure_id, fmt), []).append(fut)
        return fut

    # -- figures watched ----------------------------------------------------------------

    def mirror(self, figure_id):
        """The Mirror of a figure a tab is about to watch (joined upstream as soon as the
        server lists the figure)."""
        mirror = self.mirrors.get(figure_id)
        if mirror is None:
            mirror = self.mirrors[figure_id] = Mirror(figure_id, self.send)
            self._by_header[P.frame_header(figure_id)] = mirror
        return mirror

    def unwatch(self, figure_id):
        """No tab watches the figure any more: leave it upstream and forget it (a later
        tab starts from a fresh keyframe anyway)."""
        mirror = self.mirrors.pop(figure_id, None)
        if mirror is not None:
            self._by_header.pop(P.frame_header(figure_id), None)
            if mirror.joined:
                mirror.leave(tell=self.connected)

    def sync_joins(self):
        """Join every watched figure the server lists and is not joined (the figure
        appeared, a tab opened, the server was greeted again)."""
        if not self.connected:
            return
        listed = {f["id"] for f in self.figures}
        for mirror in self.mirrors.values():
            if mirror.consumers and mirror.id in listed and not mirror.joined:
                mirror.join()

    # -- what the server sends ------------------------------------------------------------

    async def _read_dealer(self):
        dealer = self._dealer
        while True:
            try:
                frames = await dealer.recv_multipart(copy=False)
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError:
                return
            self._last_heard = time.monotonic()
            try:
                self._on_message(frames)
            except Exception:
                log.exception("bridge: bad message from the server")

    def _on_message(self, frames):
        # [b"", header, binary...]: the hot path first, a frame by its constant header.
        if len(frames) == 3 and len(frames[0]) == 0:
            mirror = self._by_header.get(frames[1].bytes)
            if mirror is not None:
                if mirror.joined:
                    # bytes: tornado writes nothing else (and the ring keeps it anyway)
                    mirror.receive(frames[2].bytes)
                return
        frames = [f.bytes for f in frames]
        _, body = P.split_envelope(frames)
        if not body:
            return
        msg = P.parse_header(body[0])
        handler = self._handlers.get(msg["type"])
        if handler is not None:
            handler(self, msg, body[1:])

    def _on_welcome(self, msg, binary):
        restarted = self.server_id is not None and msg.get("server_id") != self.server_id
        self.server_id = msg.get("server_id")
        self.connected = True
        self._welcomed.set()
        if restarted:
            log.info("bridge: the server at %s restarted", self.address)
        welcomed(self.mirrors.values(), restarted)
        self._set_figures(msg.get("figures"))
        self.bridge.broadcast_status()

    def _on_pong(self, msg, binary):
        if msg.get("server_id") != self.server_id:
            self._hello()   # another server answers at this address
        else:
            ponged(self.mirrors.values(), msg)

    def _on_figures(self, msg, binary):
        self._set_figures(msg.get("figures"))

    def _set_figures(self, figures):
        if not isinstance(figures, list):
            return
        self.figures = [f for f in figures if isinstance(f, dict) and isinstance(f.get("id"), str)]
        listed = {f["id"] for f in self.figures}
        for mirror in self.mirrors.values():
            if mirror.joined and mirror.id not in listed:
                mirror.close()    # gone: joined again if a figure of that id comes back
        self.sync_joins()
        self.bridge.figures_changed()

    def _on_state(self, msg, binary):
        mirror = self.mirrors.get(msg.get("figure"))
        if mirror is not None and isinstance(msg.get("state"), dict):
            self.bridge.update_state(mirror, msg["state"])

    def _on_close(self, msg, binary):
        mirror = self.mirrors.get(msg.get("figure"))
        if mirror is not None:
            mirror.close()
            self.bridge.figure_closed(mirror)

    def _on_download(self, msg, binary):
        waiting = self._downloads.get((msg.get("figure"), msg.get("format")), [])
        while waiting:
            fut = waiting.pop(0)
            if not fut.done():
                fut.set_result((binary[0] if binary else b"", msg.get("mime")))
                break

    def _on_error(self, msg, binary):
        code = msg.get("code")
        if code == P.E_NOT_JOINED:
            # The server forgot this bridge (silent too long): greet it and join again.
            self._hello()
        elif code == P.E_UNKNOWN_FIGURE:
            # A join raced the figure's closing: joined again when it is listed.
            self.send(P.FIGURES)
        else:
            log.warning("bridge: server error: %s", msg.get("message"))

    _handlers = {P.WELCOME: _on_welcome, P.PONG: _on_pong, P.FIGURES: _on_figures,
                 P.STATE: _on_state, P.CLOSE: _on_close, P.DOWNLOAD: _on_download,
                 P.ERROR: _on_error}

    # -- liveness ---------------------------------------------------------------------

    async def _watch_connection(self):
        from zmq.utils.monitor import parse_monitor_message
        while True:
            try:
                event = parse_monitor_message(await self._monitor.recv_multipart())
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError:
                return
            if event["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                self._hello()      # a new server answers with another id: a restart
            elif event["event"] == zmq.EVENT_DISCONNECTED and self.connected:
                self._lost()

    def _lost(self):
        self.connected = False
        self.bridge.broadcast_status()

    async def _keepalive(self):
        while True:
            await asyncio.sleep(PING_INTERVAL / 2)
            now = time.monotonic()
            if now - self._last_heard > DEAD_AFTER:
                if self.connected:
                    self._lost()
                if now - self._last_hello > PING_INTERVAL:
                    self._hello()
            else:
                self.send(P.PING, t=time.time())


def _retrieve(fut):
    if not fut.cancelled():
        fut.exception()   # a send nobody waits for is not an error
