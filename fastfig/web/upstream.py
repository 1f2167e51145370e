"""The bridge's ZeroMQ side (PROTOCOL.md section 3.1): the bridge is an ordinary client of
a fastfig server, one DEALER to its control endpoint for requests and one SUB to its frame
endpoint for frames and state, shared by every figure and every tab.

It survives server restarts: a silent server is greeted again, and a new server id means
every figure starts over from a snapshot. What arrives is handed to the bridge's per-figure
feeds (fastfig/web/feed.py); nothing here knows about browsers.
"""

import asyncio
import logging
import time

import zmq
import zmq.asyncio

from ..errors import FrameError
from ..transport import protocol as P
from ..transport import security

log = logging.getLogger("fastfig.bridge")

#: Seconds between pings to the server; silent this long and the bridge says hello again.
PING_INTERVAL = 1.0
DEAD_AFTER = 3.0


class Upstream:
    """The bridge's ZeroMQ side: one DEALER for requests, one SUB for frames and state,
    shared by every figure. Survives server restarts: a silent server is greeted again,
    and a new server id means every figure starts over from a snapshot."""

    def __init__(self, bridge, address, curve=None):
        self.bridge = bridge
        self.address = address
        self.curve = curve
        self.server_id = None
        self.pub_address = None
        self.figures = []           # figure infos, as the server lists them
        self.topics = set()         # figure ids subscribed to
        self.connected = False
        self._ctx = zmq.asyncio.Context()
        self._sub = None
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
        try:
            self._dealer.disable_monitor()
        except zmq.ZMQError:
            pass
        for sock in (self._monitor, self._dealer, self._sub):
            if sock is not None:
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

    def subscribe(self, figure_id):
        if figure_id not in self.topics:
            self.topics.add(figure_id)
            if self._sub is not None:
                self._sub.setsockopt(zmq.SUBSCRIBE, P.topic(figure_id))

    def unsubscribe(self, figure_id):
        if figure_id in self.topics:
            self.topics.discard(figure_id)
            if self._sub is not None:
                self._sub.setsockopt(zmq.UNSUBSCRIBE, P.topic(figure_id))

    # -- replies ----------------------------------------------------------------------

    async def _read_dealer(self):
        while True:
            try:
                frames = await self._dealer.recv_multipart()
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError:
                return
            try:
                self._on_reply(frames)
            except Exception:
                log.exception("bridge: bad reply from the server")

    def _on_reply(self, frames):
        self._last_heard = time.monotonic()
        _, body = P.split_envelope(frames)
        if not body:
            return
        msg = P.parse_header(body[0])
        t = msg["type"]
        if t == P.WELCOME:
            self._on_welcome(msg)
        elif t == P.PONG:
            if msg.get("server_id") != self.server_id:
                self._hello()   # another server answers at this address
        elif t == P.FIGURES:
            self._set_figures(msg.get("figures"))
        elif t == P.SNAPSHOT:
            feed = self.bridge.feeds.get(msg.get("figure"))
            if feed is None:
                return
            if isinstance(msg.get("state"), dict):
                self.bridge.update_state(feed, msg["state"])
            try:
                feed.on_snapshot(body[1] if len(body) > 1 else None)
            except FrameError as e:
                log.warning("bridge: bad snapshot for %s: %s", feed.id, e)
        elif t == P.DOWNLOAD:
            waiting = self._downloads.get((msg.get("figure"), msg.get("format")), [])
            while waiting:
                fut = waiting.pop(0)
                if not fut.done():
                    fut.set_result((body[1] if len(body) > 1 else b"", msg.get("mime")))
                    break
        elif t == P.ERROR:
            if msg.get("code") == P.E_UNKNOWN_FIGURE:
                # A snapshot asked for a figure that is not (yet) there: ask again when
                # the figure list names it.
                for feed in self.bridge.feeds.values():
                    feed.snapshot_pending = False
            else:
                log.warning("bridge: server error: %s", msg.get("message"))

    def _on_welcome(self, msg):
        pub = msg.get("pub")
        if not isinstance(pub, str):
            return
        pub = security.reachable_endpoint(pub, self.address)
        restarted = self.server_id is not None and msg.get("server_id") != self.server_id
        self.server_id = msg.get("server_id")
        self.connected = True
        if pub != self.pub_address or self._sub is None:
            self.pub_address = pub
            self._connect_sub()
        self._set_figures(msg.get("figures"))
        self._welcomed.set()
        if restarted:
            log.info("bridge: the server at %s restarted", self.address)
            for feed in self.bridge.feeds.values():
                feed.on_restart()
        self.bridge.broadcast_status()

    def _connect_sub(self):
        if self._sub is not None:
            self._sub.close(linger=0)
        sub = self._ctx.socket(zmq.SUB)
        security.tune(sub, hwm=8)
        if self.curve is not None:
            self.curve.apply(sub)
        sub.setsockopt(zmq.SUBSCRIBE, P.SERVER_TOPIC)
        for figure_id in self.topics:
            sub.setsockopt(zmq.SUBSCRIBE, P.topic(figure_id))
        sub.connect(self.pub_address)
        self._sub = sub
        self._tasks.append(asyncio.ensure_future(self._read_sub(sub)))

    def _set_figures(self, figures):
        if not isinstance(figures, list):
            return
        self.figures = [f for f in figures if isinstance(f, dict) and isinstance(f.get("id"), str)]
        self.bridge.figures_changed()

    # -- publications -----------------------------------------------------------------

    async def _read_sub(self, sub):
        while sub is self._sub:
            try:
                frames = await sub.recv_multipart()
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError:
                return
            self._last_heard = time.monotonic()
            try:
                self._on_publication(frames)
            except Exception:
                log.exception("bridge: bad publication from the server")

    def _on_publication(self, frames):
        if len(frames) < 2:
            return
        topic, head = frames[0], frames[1]
        if head == P.FRAME_HEADER and len(frames) == 3:
            feed = self.bridge.feeds.get(_topic_figure(topic))
            if feed is not None:
                try:
                    feed.on_frame(frames[2])
                except FrameError as e:
                    log.warning("bridge: bad frame for %s: %s", feed.id, e)
            return
        msg = P.parse_header(head)
        if topic == P.SERVER_TOPIC:
            if msg["type"] == P.FIGURES:
                self._set_figures(msg.get("figures"))
            return
        feed = self.bridge.feeds.get(_topic_figure(topic))
        if feed is None:
            return
        if msg["type"] == P.STATE and isinstance(msg.get("state"), dict):
            self.bridge.update_state(feed, msg["state"])
        elif msg["type"] == P.SYNC:
            epoch, seq = msg.get("epoch"), msg.get("seq")
            if isinstance(epoch, int) and isinstance(seq, int):
                feed.on_sync(epoch, seq)
        elif msg["type"] == P.CLOSE:
            self.bridge.figure_closed(feed)

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
                self.connected = False
                self.bridge.broadcast_status()

    async def _keepalive(self):
        while True:
            await asyncio.sleep(PING_INTERVAL / 2)
            now = time.monotonic()
            if now - self._last_heard > DEAD_AFTER:
                if self.connected:
                    self.connected = False
                    self.bridge.broadcast_status()
                if now - self._last_hello > PING_INTERVAL:
                    self._hello()
            else:
                self.send(P.PING, t=time.time())
            for feed in list(self.bridge.feeds.values()):
                if not feed.viewers or now - feed.asked_at < 0.5:
                    continue
                if feed.snapshot_pending:
                    # Lost with a dead server, or the figure did not exist yet: ask again.
                    feed.snapshot_pending = False
                    feed.pump()
                elif feed.epoch is None:
                    # "Nothing published yet" and its first keyframe may have gone out
                    # before this bridge subscribed: ask until there is an image.
                    feed.want_snapshot()


def _topic_figure(topic):
    # b"fig/<id>/" -> "<id>"
    topic = bytes(topic)
    if topic.startswith(b"fig/") and topic.endswith(b"/"):
        return topic[4:-1].decode("ascii", "replace")
    return None


def _retrieve(fut):
    if not fut.cancelled():
        fut.exception()   # a send nobody waits for is not an error
