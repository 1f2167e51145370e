"""The frame server: figures in, frame packets out to every frontend over ZeroMQ.

Two sockets (PROTOCOL.md section 2): an XPUB that publishes each figure's frames and state
under its topic, and a ROUTER that answers requests (hello, figure list, snapshot, ack,
event, ping). Each frame is encoded once and the same packet goes to every subscriber.
The XPUB never blocks: a subscriber whose queue is full (a few frames) loses frames, sees
a gap in sequence numbers and asks for a snapshot, so a slow frontend skips to the latest
image instead of slowing the render loop or anyone else.

The server runs on one asyncio loop (zmq.asyncio) so that a render loop, timers and a
websocket bridge can share it; ``Server.run_in_thread()`` gives scripts a synchronous
handle, and ``FigureStream.publish`` may be called from any thread.
"""

import asyncio
import collections
import concurrent.futures
import logging
import os
import secrets
import threading
import time

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from . import protocol as P
from . import security
from ..codec.encoder import FrameEncoder, as_rgba
from .loopthread import start_loop_thread
from ..codec.packet import ALL_ENCODINGS

log = logging.getLogger("fastfig.server")

#: Frames a subscriber may have queued at the server (XPUB SNDHWM) before it loses some.
DEFAULT_HWM = 4
#: Encoder settings of a server whose frames stay on this machine (loopback or ipc, the
#: default): bytes cost next to nothing there, while a browser decodes a PNG about ten
#: times slower than raw pixels, so content that PNG cannot halve (images, noise) goes RAW.
#: RLE is likewise taken up to a quarter of the raw size. In headless Chromium at 1920x1080
#: (bench/bench_browser.py, two runs on an idle machine) the median decode went from 37 to
#: 1.1 ms per heavy frame and from 3.7 to 1.8 ms per line1 frame, and line1's painted rate
#: from 135 to 159 fps, for about 2x the bytes on loopback.
LOCAL_ENCODER_OPTIONS = {"png_max_ratio": 0.25, "rle_max_ratio": 0.25}
#: State messages share the frames' high-water mark, so one can be lost in a burst; the
#: whole state is published again this long after the last change, so every subscriber
#: converges on it (a stale rubberband or status message would otherwise stay).
STATE_REFRESH = 0.25
#: How often new subscriptions are looked for (each is answered with a sync message).
SUBSCRIPTION_POLL = 0.05
#: A client not heard from for this long (it pings every second) is forgotten.
CLIENT_TIMEOUT = 10.0
#: Bound on remembered clients, so that a flood of identities cannot grow memory.
MAX_CLIENTS = 4096
#: Packets at least this big are sent without copying (pyzmq: faster above ~64 KB).
ZERO_COPY_MIN = 64 * 1024
#: Frames published from other threads and not yet sent: the publisher waits beyond this.
MAX_PENDING = 4


class _Client:
    __slots__ = ("name", "accept", "last_seen", "acks")

    def __init__(self, now):
        self.name = "?"
        self.accept = None
        self.last_seen = now
        self.acks = {}   # figure id -> (seq, epoch, seconds from publish to ack)


class FigureStream:
    """One figure's stream of frames: ``publish`` encodes an RGBA image once and sends the
    packet to every subscriber of the figure's topic.

    Created by ``Server.add_figure``. publish, keyframe, set_state and close may be called
    from the server's loop or from any other thread."""

    def __init__(self, server, figure_id, width, height, *, title="", accept=None,
                 encoding="auto", epoch=None, **encoder_options):
        self.server = server
        self.id = figure_id
        self.topic = P.topic(figure_id)
        # A random epoch per server run: a client that survives a server restart sees a
        # new epoch, never a stale chain that happens to continue.
        self.encoder = FrameEncoder(width, height, encoding, accept=accept,
                                    epoch=secrets.randbits(32) if epoch is None else epoch,
                                    **encoder_options)
        self.state = {"title": str(title)}
        self.closed = False
        self._state_refresh = None
        self._sent = None   # (epoch, seq) of the newest frame published
        self.frames_published = 0
        self.bytes_published = 0
        self.encode_ms = None
        self.snapshots_sent = 0
        self.snapshot_encodes = 0
        self.events_received = 0
        self._lock = threading.Lock()          # guards the encoder across threads
        self._pending = threading.BoundedSemaphore(MAX_PENDING)
        self._snapshot_cache = None            # (epoch, seq, packet)
        self._published_at = collections.OrderedDict()   # seq -> monotonic time
        self._handlers = []
        self._events = collections.deque(maxlen=1024)
        self._event_ready = threading.Condition()
        self._ack_handlers = []
        #: The request envelope of the event being delivered (see reply()), else None.
        self.sender = None

    # -- publishing ---------------------------------------------------------------------

    @property
    def width(self):
        return self.encoder.width

    @property
    def height(self):
        return self.encoder.height

    @property
    def seq(self):
        return self.encoder.seq

    @property
    def epoch(self):
        return self.encoder.epoch

    def publish(self, rgba, hint=None):
        """Encode rgba against what clients hold and publish the result to all of them.
        Returns the Frame, or None when nothing changed (empty frames are not sent).
        rgba may be reused by the caller as soon as this returns."""
        return self._publish(lambda: self.encoder.encode(rgba, hint))

    def keyframe(self, rgba=None):
        """Publish a keyframe to everyone (of rgba, or of the current image)."""
        if rgba is None:
            with self._lock:
                image = self.encoder.image
                rgba = None if image is None else image.copy()
            if rgba is None:
                return None
        return self._publish(lambda: self.encoder.keyframe(rgba))

    def _publish(self, encode):
        if self.closed:
            raise RuntimeError(f"figure {self.id!r} is closed")
        if self.server._in_loop():
            with self._lock:
                frame = self._timed(encode)
            if not frame.empty:
                self._send_frame(frame.seq, bytes(frame))
            return frame
        # Another thread: encode here (the loop stays free), send on the loop thread
        # (sockets are not thread-safe). The semaphore bounds packets waiting to be sent.
        with self._lock:
            frame = self._timed(encode)
        if frame.empty:
            return frame
        packet = bytes(frame)
        self._pending.acquire()
        try:
            self.server._loop.call_soon_threadsafe(self._send_pending, frame.seq, packet)
        except RuntimeError:
            self._pending.release()
            raise
        return frame

    def _timed(self, encode):
        # The viewer's stats panel shows the encode time (a moving average, ms).
        start = time.perf_counter()
        frame = encode()
        ms = (time.perf_counter() - start) * 1000
        self.encode_ms = ms if self.encode_ms is None else 0.8 * self.encode_ms + 0.2 * ms
        return frame

    def _send_pending(self, seq, packet):
        self._pending.release()
        if not self.closed:
            self._send_frame(seq, packet)

    def _send_frame(self, seq, packet):
        self.server._send_pub([self.topic, P.FRAME_HEADER, packet])
        self._sent = (int.from_bytes(packet[12:16], "little"), seq)   # (epoch, seq)
        self.frames_published += 1
        self.bytes_published += len(packet)
        times = self._published_at
        times[seq] = time.monotonic()
        if len(times) > 256:
            times.popitem(last=False)

    def snapshot_packet(self):
        """The packet a late joiner starts from: a keyframe of the current image at the
        current seq, encoded at most once per seq however many clients ask."""
        with self._lock:
            enc = self.encoder
            if enc.image is None:
                return None
            cached = self._snapshot_cache
            if cached is not None and cached[0] == enc.epoch and cached[1] == enc.seq:
                return cached[2]
            frame = enc.snapshot()
            packet = bytes(frame)
            self._snapshot_cache = (frame.epoch, frame.seq, packet)
            self.snapshot_encodes += 1
            return packet

    # -- state --------------------------------------------------------------------------

    def set_state(self, **fields):
        """Update figure state (title, cursor, message, navigate_mode, history, rubberband,
        capture_scroll): published to subscribers now, and given to late joiners."""
        fields = P.check_state(fields)
        self.server._run_soon(self._set_state, fields)

    def _set_state(self, fields):
        if self.closed:
            return
        self.state.update(fields)
        self.server._send_pub([self.topic, P.header(P.STATE, state=fields)])
        if self._state_refresh is not None:
            self._state_refresh.cancel()
        # The server's loop, which need not be running yet (a script's figures are
        # served before plt.show() runs the loop).
        self._state_refresh = self.server._loop.call_later(STATE_REFRESH, self._refresh_state)

    def _publish_sync(self):
        if self.closed:
            return
        epoch, seq = self._sent if self._sent is not None else (None, None)
        self.server._send_pub([self.topic, P.header(P.SYNC, figure=self.id, seq=seq,
                                                      epoch=epoch)])

    def _refresh_state(self):
        self._state_refresh = None
        if not self.closed:
            self.server._send_pub([self.topic, P.header(P.STATE, state=self.state)])

    def info(self):
        return {"id": self.id, "title": self.state.get("title", ""), "width": self.width,
                "height": self.height,
                "encodings": sorted(e.name.lower() for e in self.encoder.accept)}

    # -- input events -------------------------------------------------------------------

    def on_event(self, handler):
        """Call handler(event) on the server's loop for every valid input event (a dict
        with "type", the event's fields, "figure" and "client"). A coroutine function is
        scheduled as a task. Usable as a decorator."""
        self._handlers.append(handler)
        return handler

    def on_ack(self, handler):
        """Call handler() on the server's loop whenever a client acknowledges a frame of
        this figure: a render loop waiting for in_flight() to drop resumes at once."""
        self._ack_handlers.append(handler)
        return handler

    def reply(self, sender, type_, *binary, **fields):
        """Send a message to one client only: sender is ``self.sender`` read inside an
        event handler (the client that sent the event), e.g. a download's bytes."""
        if sender is not None:
            self.server._run_soon(lambda: self.server._reply(sender, type_, *binary,
                                                             figure=self.id, **fields))

    def get_event(self, timeout=None):
        """The next input event from any thread, or None after timeout seconds. Events
        beyond the last 1024 unread ones are dropped, oldest first."""
        with self._event_ready:
            if not self._events:
                self._event_ready.wait(timeout)
            return self._events.popleft() if self._events else None

    def _deliver(self, event):
        self.events_received += 1
        with self._event_ready:
            self._events.append(event)
            self._event_ready.notify()
        for handler in self._handlers:
            try:
                result = handler(event)
                if asyncio.iscoroutine(result):
                    asyncio.ensure_future(result)
            except Exception:
                log.exception("event handler of figure %s failed", self.id)

    # -- flow -------------------------------------------------------------------------------

    def acks(self):
        """Per client (by name and route): (last acknowledged seq, epoch, seconds from
        publish to acknowledgement)."""
        out = {}
        for key, client in self.server._clients.items():
            if self.id in client.acks:
                out[(client.name, key)] = client.acks[self.id]
        return out

    def in_flight(self):
        """Frames published beyond the fastest acknowledging client's last ack (None when
        no client acknowledges): a render loop can pace itself on it."""
        best = None
        for seq, epoch, _ in self.acks().values():
            if epoch == self.epoch:
                lag = (self.seq - seq) & 0xFFFFFFFF
                best = lag if best is None else min(best, lag)
        return best

    def stats(self):
        return {"frames": self.frames_published, "bytes": self.bytes_published,
                "snapshots": self.snapshots_sent, "snapshot_encodes": self.snapshot_encodes,
                "events": self.events_received, "seq": self.seq, "epoch": self.epoch,
                "in_flight": self.in_flight(), "encode_ms": self.encode_ms}

    def close(self):
        """Tell subscribers the figure is gone and forget it."""
        self.server._run_soon(self.server._remove_figure, self)


class Server:
    """A fastfig frame server.

    address: the control (ROUTER) endpoint clients connect to: None or "tcp" for
    tcp://127.0.0.1 on a free port, "ipc" for a socket in a fresh private directory, or
    an endpoint ("tcp://127.0.0.1:5555", "ipc:///path/ctl"). pub_address: the XPUB
    endpoint (default: next to the control endpoint). curve: a security.CurveServer to
    encrypt and authenticate; allow_remote: bind a non-loopback address without CURVE.
    hwm: frames queued per subscriber before it loses frames. encoder_options: defaults
    for every figure's FrameEncoder (None: LOCAL_ENCODER_OPTIONS when both endpoints are
    loopback or ipc and no CURVE is used, the encoder's own defaults otherwise; pass {} to
    always send the fewest bytes, e.g. behind a relay to other machines).

    Use ``async with Server() as server`` (or ``await server.start()``) on a running loop,
    or ``Server.run_in_thread()`` from synchronous code.
    """

    def __init__(self, address=None, *, pub_address=None, curve=None, allow_remote=False,
                 hwm=DEFAULT_HWM, client_timeout=CLIENT_TIMEOUT, sndbuf=None,
                 encoder_options=None):
        self._requested = (address, pub_address)
        self._encoder_options = encoder_options
        self.curve = curve
        self.allow_remote = allow_remote
        self.hwm = hwm
        self.client_timeout = client_timeout
        self.sndbuf = sndbuf
        self.server_id = secrets.token_hex(8)
        self.address = None
        self.pub_address = None
        self.figures = {}
        self.requests_handled = 0
        self.requests_rejected = 0
        self._clients = collections.OrderedDict()
        self._loop = None
        self._loop_thread = None
        self._tasks = []
        self._ipc_dir = None
        self._ctx = None
        self._auth = None
        self._next_id = 1
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        self.close()

    async def start(self):
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        address, pub_address = self._endpoints(*self._requested)
        for a in (address, pub_address):
            security.check_bind(a, curve=self.curve is not None, allow_remote=self.allow_remote)
        self._ctx = zmq.asyncio.Context()
        self._auth = AsyncioAuthenticator(self._ctx)
        self._auth.start()
        security.configure_authenticator(self._auth, self.curve)
        router = self._ctx.socket(zmq.ROUTER)
        # The XPUB is only ever used without blocking, so a plain socket on the same
        # context serves: no futures on the hot path, no edge-triggered fd to share.
        pub = zmq.Context.shadow(self._ctx.underlying).socket(zmq.XPUB)
        for sock in (router, pub):
            sock.setsockopt(zmq.ZAP_DOMAIN, security.ZAP_DOMAIN.encode())
            if self.curve is not None:
                self.curve.apply(sock)
        security.tune(router, maxmsgsize=P.MAX_REQUEST_BYTES)
        router.setsockopt(zmq.RCVHWM, 1000)
        router.setsockopt(zmq.SNDHWM, 16)  # replies beyond this to one client are dropped
        security.tune(pub, hwm=self.hwm)
        # Every subscription, not only a topic's first, is answered with a sync message.
        pub.setsockopt(zmq.XPUB_VERBOSE, 1)
        if self.sndbuf:
            pub.setsockopt(zmq.SNDBUF, self.sndbuf)
        self._router, self._pub = router, pub
        try:
            self.address = self._bind(router, address)
            self.pub_address = self._bind(pub, pub_address)
        except Exception:
            self._teardown()
            raise
        self._tasks = [asyncio.ensure_future(self._serve_requests()),
                       asyncio.ensure_future(self._housekeeping()),
                       asyncio.ensure_future(self._watch_subscriptions())]
        if self._encoder_options is None:
            local = (self.curve is None and security.is_loopback(self.address)
                     and security.is_loopback(self.pub_address))
            self._encoder_options = dict(LOCAL_ENCODER_OPTIONS) if local else {}
        log.info("serving on %s (frames on %s)", self.address, self.pub_address)
        return self

    def _endpoints(self, address, pub_address):
        if address in (None, "tcp"):
            address = "tcp://127.0.0.1:*"
        elif address == "ipc":
            self._ipc_dir = security.private_ipc_dir()
            address = f"ipc://{self._ipc_dir}/ctl"
        if pub_address is None:
            if address.startswith("ipc://"):
                pub_address = address + "-pub"
            elif address.startswith("tcp://"):
                pub_address = f"tcp://{address[6:].rsplit(':', 1)[0]}:*"
            else:
                pub_address = address + "-pub"
        return address, pub_address

    @staticmethod
    def _bind(sock, address):
        sock.bind(address)
        return sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self):
        """Stop serving; safe to call twice. Subscribers are not told (they find out by
        heartbeat), since a restart should look the same to them as a crash."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        self._teardown()

    def _teardown(self):
        for sock in (getattr(self, "_router", None), getattr(self, "_pub", None)):
            if sock is not None:
                sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
        if self._ctx is not None:
            self._ctx.term()
        if self._ipc_dir is not None:
            for name in os.listdir(self._ipc_dir):
                try:
                    os.unlink(os.path.join(self._ipc_dir, name))
                except OSError:
                    pass
            try:
                os.rmdir(self._ipc_dir)
            except OSError:
                pass

    @classmethod
    def run_in_thread(cls, *args, **kwargs):
        """Start a server on its own event loop in a daemon thread; returns a
        ServerThread (synchronous handle)."""
        return ServerThread(cls(*args, **kwargs))

    # -- figures -------------------------------------------------------------------------

    def add_figure(self, id=None, width=640, height=480, *, title=None, accept=None,
                   encoding="auto", **encoder_options):
        """A new FigureStream of width x height pixels. id: a short ASCII name
        ([A-Za-z0-9_.-]{1,64}), by default the next free number like matplotlib's."""
        if not self._in_loop():
            return self._call(self.add_figure, id, width, height, title=title,
                              accept=accept, encoding=encoding, **encoder_options)
        if id is None:
            while str(self._next_id) in self.figures:
                self._next_id += 1
            id = str(self._next_id)
        id = P.check_figure_id(str(id))
        if id in self.figures:
            raise ValueError(f"figure {id!r} already exists")
        stream = FigureStream(self, id, width, height,
                              title=f"Figure {id}" if title is None else title,
                              accept=accept, encoding=encoding,
                              **{**self._encoder_options, **encoder_options})
        self.figures[id] = stream
        self._announce_figures()
        return stream

    def add_source(self, frames, *, fps=None, id=None, title=None, hint=None):
        """Serve any iterable of RGBA frames ((H, W, 4) uint8 arrays or buffers) as a
        figure: each item is published as it comes, paced at fps when given. The size is
        taken from the first item; the stream stays open when the iterable ends. Returns
        the FigureStream; its ``source_task`` finishes with the iterable."""
        if not self._in_loop():
            return self._call(self.add_source, frames, fps=fps, id=id, title=title, hint=hint)
        it = iter(frames)
        first = as_rgba(next(it))
        stream = self.add_figure(id, first.shape[1], first.shape[0], title=title)
        stream.publish(first)
        stream.source_task = asyncio.ensure_future(self._pump_source(stream, it, fps, hint))
        self._tasks.append(stream.source_task)
        return stream

    async def _pump_source(self, stream, it, fps, hint):
        period = 1.0 / fps if fps else 0.0
        next_at = time.monotonic()
        for rgba in it:
            if stream.closed:
                return
            if period:
                next_at += period
                delay = next_at - time.monotonic()
                if delay < -period:   # fell behind: do not burst to catch up
                    next_at = time.monotonic()
                await asyncio.sleep(max(delay, 0))
            else:
                await asyncio.sleep(0)   # let requests in between frames
            stream.publish(rgba, hint)

    def _remove_figure(self, stream):
        if stream.closed:
            return
        stream.closed = True
        if stream._state_refresh is not None:
            stream._state_refresh.cancel()
        self._send_pub([stream.topic, P.header(P.CLOSE, figure=stream.id)])
        self.figures.pop(stream.id, None)
        stream.encoder = _ClosedEncoder(stream.encoder)   # frees the buffers
        stream._snapshot_cache = None
        self._announce_figures()

    def _figure_list(self):
        return [s.info() for s in self.figures.values()]

    def _announce_figures(self):
        self._send_pub([P.SERVER_TOPIC, P.header(P.FIGURES, figures=self._figure_list())])

    # -- sockets ---------------------------------------------------------------------------

    def _send_pub(self, parts):
        if self._closed:
            return   # figures closed after the server (e.g. by matplotlib at exit)
        last = parts[-1]
        try:
            self._pub.send_multipart(parts, zmq.NOBLOCK, copy=len(last) < ZERO_COPY_MIN)
        except zmq.Again:
            pass   # XPUB drops at the HWM by itself; Again is the same outcome

    def _reply(self, envelope, type_, *binary, **fields):
        parts = [*envelope, P.header(type_, **fields), *binary]
        big = bool(binary) and len(binary[-1]) >= ZERO_COPY_MIN
        try:
            # ROUTER drops, never blocks, for a peer that is gone or full.
            fut = self._router.send_multipart(parts, flags=zmq.NOBLOCK, copy=not big)
        except zmq.ZMQError:
            return
        if fut.done() and not fut.cancelled():
            fut.exception()   # mark retrieved: a dropped reply is not an error

    def _drain_subscriptions(self):
        """Answer new subscriptions to a figure with a sync message. A joiner's snapshot
        may be made before its subscription reaches the XPUB, and frames published in
        between never reach it; the sync, published once the subscription is in place,
        names the newest frame sent, so the joiner can tell it missed some."""
        joined = set()
        try:
            while True:
                msg = self._pub.recv(zmq.NOBLOCK)
                if msg[:5] == b"\x01fig/":      # b"\x01" + topic: a subscription
                    joined.add(msg[1:])
        except zmq.Again:
            pass
        for topic in joined:
            stream = self.figures.get(topic[4:-1].decode("ascii", "replace"))
            if stream is not None and stream.topic == topic:
                stream._publish_sync()

    async def _watch_subscriptions(self):
        while True:
            await asyncio.sleep(SUBSCRIPTION_POLL)
            self._drain_subscriptions()

    async def _serve_requests(self):
        router = self._router
        while True:
            try:
                frames = await router.recv_multipart()
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError as e:
                if e.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.warning("receive failed: %s", e)
                continue
            try:
                self._handle(frames)
            except Exception:
                log.exception("request handling failed")

    def _handle(self, frames):
        # frames[0] is always the ROUTER's identity frame of the peer.
        try:
            envelope, body = P.split_envelope(frames)
        except P.ProtocolError:
            # No delimiter: reply to the peer anyway so that a wrong client learns why.
            envelope, body = [frames[0], b""], frames[1:]
            self._reject(envelope, P.ProtocolError("request has no empty delimiter frame"))
            return
        key = tuple(envelope[:-1])
        try:
            if not body:
                raise P.ProtocolError("request has no header frame")
            msg = P.parse_header(body[0], P.MAX_REQUEST_BYTES)
            fields = P.check_request(msg, self.figures)
            if len(body) != 1:
                raise P.ProtocolError(f"request {msg['type']!r} has {len(body) - 1} "
                                      "unexpected binary frame(s)")
        except P.ProtocolError as e:
            self._reject(envelope, e)
            return
        self.requests_handled += 1
        client = self._touch(key)
        t = msg["type"]
        if t == P.HELLO:
            client.name = fields["client"]
            client.accept = fields["accept"]
            self._reply(envelope, P.WELCOME, minor=P.MINOR, server="fastfig",
                        server_id=self.server_id, pub=self.pub_address,
                        versions=list(P.SUPPORTED_VERSIONS),
                        encodings=sorted(e.name.lower() for e in ALL_ENCODINGS),
                        heartbeat_ms=security.HEARTBEAT_IVL_MS,
                        figures=self._figure_list())
        elif t == P.FIGURES:
            self._reply(envelope, P.FIGURES, figures=self._figure_list())
        elif t == P.SNAPSHOT:
            self._snapshot(envelope, self.figures[fields["figure"]])
        elif t == P.ACK:
            stream = self.figures[fields["figure"]]
            sent = stream._published_at.get(fields["seq"])
            client.acks[stream.id] = (fields["seq"], fields["epoch"],
                                      None if sent is None else time.monotonic() - sent)
            for handler in stream._ack_handlers:
                try:
                    handler()
                except Exception:
                    log.exception("ack handler of figure %s failed", stream.id)
        elif t == P.EVENT:
            event = dict(fields["event"], figure=fields["figure"], client=client.name)
            stream = self.figures[fields["figure"]]
            stream.sender = envelope
            try:
                stream._deliver(event)
            finally:
                stream.sender = None
        elif t == P.PING:
            self._reply(envelope, P.PONG, t=fields["t"], server_id=self.server_id)
        elif t == P.BYE:
            self._clients.pop(key, None)

    def _snapshot(self, envelope, stream):
        packet = stream.snapshot_packet()
        if packet is None:
            # Nothing published yet: the first frame will be a keyframe on the topic.
            self._reply(envelope, P.SNAPSHOT, figure=stream.id, seq=None,
                        state=stream.state)
            return
        stream.snapshots_sent += 1
        self._reply(envelope, P.SNAPSHOT, packet, figure=stream.id, seq=stream.seq,
                    epoch=stream.epoch, state=stream.state)

    def _reject(self, envelope, error):
        self.requests_rejected += 1
        fields = {"code": error.code, "message": str(error)[:500]}
        if error.code == P.E_VERSION:
            fields["versions"] = list(P.SUPPORTED_VERSIONS)
        self._reply(envelope, P.ERROR, **fields)

    def _touch(self, key):
        now = time.monotonic()
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = _Client(now)
            if len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            client.last_seen = now
            self._clients.move_to_end(key)
        return client

    async def _housekeeping(self):
        while True:
            await asyncio.sleep(0.5)
            cutoff = time.monotonic() - self.client_timeout
            while self._clients:
                key, client = next(iter(self._clients.items()))
                if client.last_seen >= cutoff:
                    break
                del self._clients[key]

    def clients(self):
        """Names of the clients heard from recently."""
        return [c.name for c in self._clients.values()]

    # -- threads ---------------------------------------------------------------------------

    def _in_loop(self):
        return threading.get_ident() == self._loop_thread

    def _run_soon(self, fn, *args):
        if self._closed:
            return   # after close the loop may be gone; there is nobody to send to
        if self._in_loop():
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _call(self, fn, *args, **kwargs):
        """Run fn on the loop thread and wait for its result."""
        return call_in_loop(self._loop, fn, *args, **kwargs)


def call_in_loop(loop, fn, *args, timeout=30, **kwargs):
    """Run fn(*args, **kwargs) on loop, which runs in another thread, and return its
    result (or raise its exception) here."""
    done = concurrent.futures.Future()

    def run():
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as e:
            done.set_exception(e)

    loop.call_soon_threadsafe(run)
    return done.result(timeout=timeout)


class _ClosedEncoder:
    """Stands in for a closed stream's encoder: keeps the numbers, not the buffers."""

    def __init__(self, encoder):
        self.width, self.height = encoder.width, encoder.height
        self.seq, self.epoch, self.accept = encoder.seq, encoder.epoch, encoder.accept
        self.image = None

    def encode(self, *a, **k):
        raise RuntimeError("figure is closed")

    keyframe = encode


class ServerThread:
    """A Server on an event loop of its own in a daemon thread, for synchronous code.
    Attributes of the Server are reachable through it; add_figure and add_source run on
    the loop; FigureStream methods are thread-safe."""

    def __init__(self, server):
        self.server = server
        self._thread, self.loop = start_loop_thread("fastfig-server", server.start,
                                                    server.close)

    def __getattr__(self, name):
        return getattr(self.server, name)

    def add_figure(self, *args, **kwargs):
        return self.server._call(self.server.add_figure, *args, **kwargs)

    def add_source(self, *args, **kwargs):
        return self.server._call(self.server.add_source, *args, **kwargs)

    def call(self, fn, *args, **kwargs):
        """Run fn(*args, **kwargs) on the server's loop and return its result."""
        return self.server._call(fn, *args, **kwargs)

    def close(self):
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
