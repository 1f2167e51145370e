"""The frame server: figures in, frame packets out to every frontend over ZeroMQ.

One ROUTER socket, the control endpoint (PROTOCOL.md section 2). Everything for a client
travels on its one connection: its requests and their replies, and what is pushed to it:
the frames of the figures it joined (while it has credit), their state, their close, and
the figure list. Each frame is encoded once; a figure's Outbox (session.py) decides what
each consumer is sent, so a slow consumer skips to the newest image instead of slowing
the render loop or anyone else, and a consumer that stops reading costs nothing.

The server runs on one asyncio loop (zmq.asyncio) so that a render loop, timers and a
websocket bridge can share it; ``Server.run_in_thread()`` gives scripts a synchronous
handle, and ``FigureStream.publish`` may be called from any thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import threading
import time
from typing import Any, Callable, Iterable, Optional

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from . import protocol as P
from . import security
from .clients import CLIENT_TIMEOUT, ClientEntry, ClientTable
from .loopthread import ServerThread, call_in_loop
from .session import Consumer
from .stream import FigureStream
from ..codec.encoder import as_rgba
from ..codec.packet import ALL_ENCODINGS
from ..errors import CloseError, ProtocolError

__all__ = ["Server", "ServerThread", "FigureStream", "call_in_loop", "LOCAL_ENCODER_OPTIONS"]

log = logging.getLogger("fastfig.server")

#: Encoder settings of a server whose frames stay on this machine (loopback or ipc, the
#: default): bytes cost next to nothing there, while a browser decodes a PNG about ten
#: times slower than raw pixels, so content that PNG cannot halve (images, noise) goes RAW.
#: RLE is likewise taken up to a quarter of the raw size. In headless Chromium at 1920x1080
#: (bench/bench_browser.py, two runs on an idle machine) the median decode went from 37 to
#: 1.1 ms per heavy frame and from 3.7 to 1.8 ms per line1 frame, and line1's painted rate
#: from 135 to 159 fps, for about 2x the bytes on loopback.
LOCAL_ENCODER_OPTIONS = {"png_max_ratio": 0.25, "rle_max_ratio": 0.25}
#: Packets at least this big are sent without copying (pyzmq: faster above ~64 KB).
ZERO_COPY_MIN = 64 * 1024
#: Messages queued to one client before sends to it fail (and are retried, for frames).
#: Credit bounds the frames queued (64 per figure at most), so this only stops a client
#: that reads nothing at all from growing the server's memory with state messages.
SEND_HWM = 1000
_MORE = int(zmq.NOBLOCK | zmq.SNDMORE)
_LAST = int(zmq.NOBLOCK)
_EVENTS, _POLLIN = int(zmq.EVENTS), int(zmq.POLLIN)
#: Requests handled in one go before the loop runs other callbacks (render, timers).
MAX_BATCH = 64


class Server:
    """A fastfig frame server.

    address: the control (ROUTER) endpoint clients connect to: None or "tcp" for
    tcp://127.0.0.1 on a free port, "ipc" for a socket in a fresh private directory, or
    an endpoint ("tcp://127.0.0.1:5555", "ipc:///path/ctl"). curve: a
    security.CurveServer to encrypt and authenticate; allow_remote: bind a non-loopback
    address without CURVE. encoder_options: defaults for every figure's FrameEncoder
    (None: LOCAL_ENCODER_OPTIONS when the endpoint is loopback or ipc and no CURVE is
    used, the encoder's own defaults otherwise; pass {} to always send the fewest bytes,
    e.g. behind a relay to other machines).

    Use ``async with Server() as server`` (or ``await server.start()``) on a running loop,
    or ``Server.run_in_thread()`` from synchronous code.
    """

    def __init__(self, address: Optional[str] = None, *, curve: Any = None,
                 allow_remote: bool = False, client_timeout: float = CLIENT_TIMEOUT,
                 encoder_options: Optional[dict] = None) -> None:
        self._requested = address
        self._encoder_options = encoder_options
        self.curve = curve
        self.allow_remote = allow_remote
        self.server_id = secrets.token_hex(8)
        self.address: Optional[str] = None
        self.figures: dict[str, FigureStream] = {}
        self.requests_handled = 0
        self.requests_rejected = 0
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.client_table = ClientTable(client_timeout)
        self._loop_thread: Optional[int] = None
        self._tasks: list[asyncio.Future] = []
        self._ipc_dir: Optional[str] = None
        self._ctx: Optional[zmq.asyncio.Context] = None
        self._auth: Optional[AsyncioAuthenticator] = None
        self._router: Any = None
        self._next_id = 1
        self._closed = False
        self._drain_scheduled = False
        # The request dispatch: one handler per request type (after validation).
        self._handlers: dict[str, Callable[[ClientEntry, dict], None]] = {
            P.HELLO: self._on_hello, P.FIGURES: self._on_figures, P.JOIN: self._on_join,
            P.CREDIT: self._on_credit, P.RESYNC: self._on_resync, P.LEAVE: self._on_leave,
            P.EVENT: self._on_event, P.PING: self._on_ping, P.BYE: self._on_bye}
        assert set(self._handlers) == P.REQUEST_TYPES

    # -- lifecycle ----------------------------------------------------------------------

    async def __aenter__(self) -> "Server":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()

    async def start(self) -> "Server":
        self.loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        address = self._endpoint(self._requested)
        security.check_bind(address, curve=self.curve is not None,
                            allow_remote=self.allow_remote)
        self._ctx = zmq.asyncio.Context()
        self._auth = AsyncioAuthenticator(self._ctx)
        self._auth.start()
        security.configure_authenticator(self._auth, self.curve)
        # A plain socket on the asyncio context: the loop watches its file descriptor
        # (_on_readable) and every receive and send is non-blocking, so a request or a
        # frame costs no future and no callback (with 16 consumers at 30 frames/s the
        # per-message futures of zmq.asyncio cost more CPU than the frames).
        router: zmq.Socket = zmq.Context.shadow(self._ctx.underlying).socket(zmq.ROUTER)
        router.setsockopt(zmq.ZAP_DOMAIN, security.ZAP_DOMAIN.encode())
        if self.curve is not None:
            self.curve.apply(router)
        security.tune(router, maxmsgsize=P.MAX_REQUEST_BYTES)
        router.setsockopt(zmq.RCVHWM, 1000)
        router.setsockopt(zmq.SNDHWM, SEND_HWM)
        # A send to a full or vanished peer fails instead of vanishing silently: a frame
        # that was not sent must not be counted against the consumer's credit.
        router.setsockopt(zmq.ROUTER_MANDATORY, 1)
        self._router = router
        try:
            router.bind(address)
            self.address = router.getsockopt_string(zmq.LAST_ENDPOINT)
        except Exception:
            self._teardown()
            raise
        self.loop.add_reader(int(router.getsockopt(zmq.FD)), self._on_readable)
        self._drain_soon()   # ZMQ_FD is edge-triggered: look once before the first edge
        self._tasks = [asyncio.ensure_future(self._housekeeping())]
        if self._encoder_options is None:
            local = self.curve is None and security.is_loopback(self.address)
            self._encoder_options = dict(LOCAL_ENCODER_OPTIONS) if local else {}
        log.info("serving on %s", self.address)
        return self

    def _endpoint(self, address: Optional[str]) -> str:
        if address in (None, "tcp"):
            return "tcp://127.0.0.1:*"
        if address == "ipc":
            self._ipc_dir = security.private_ipc_dir()
            return f"ipc://{self._ipc_dir}/ctl"
        return str(address)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop serving; safe to call twice. Clients are not told (they find out by
        heartbeat), since a restart should look the same to them as a crash. Raises
        CloseError listing what could not be released (after releasing the rest)."""
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        errors = self._teardown()
        if errors:
            raise CloseError("the server", errors)

    def _teardown(self) -> list[BaseException]:
        errors: list[BaseException] = []

        def attempt(fn: Callable[..., Any], *args: Any) -> None:
            try:
                fn(*args)
            except Exception as e:
                errors.append(e)
        if self._router is not None:
            if self.loop is not None and not self.loop.is_closed():
                attempt(self.loop.remove_reader, int(self._router.getsockopt(zmq.FD)))
            attempt(self._router.close, 0)
        if self._auth is not None:
            attempt(self._auth.stop)
        if self._ctx is not None:
            attempt(self._ctx.term)
        if self._ipc_dir is not None:
            for name in os.listdir(self._ipc_dir):
                attempt(os.unlink, os.path.join(self._ipc_dir, name))
            attempt(os.rmdir, self._ipc_dir)
        return errors

    @classmethod
    def run_in_thread(cls, *args: Any, **kwargs: Any) -> "ServerThread":
        """Start a server on its own event loop in a daemon thread; returns a
        ServerThread (synchronous handle)."""
        return ServerThread(cls(*args, **kwargs))   # (loopthread.py)

    # -- figures -------------------------------------------------------------------------

    def add_figure(self, id: Optional[str] = None, width: int = 640, height: int = 480, *,
                   title: Optional[str] = None, accept: Any = None, encoding: str = "auto",
                   **encoder_options: Any) -> FigureStream:
        """A new FigureStream of width x height pixels. id: a short ASCII name
        ([A-Za-z0-9_.-]{1,64}), by default the next free number like matplotlib's."""
        if not self.in_loop():
            return self.call(self.add_figure, id, width, height, title=title,
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
                              **{**(self._encoder_options or {}), **encoder_options})
        stream.on_state(lambda fields: self._push_joined(stream, P.STATE, state=fields))
        self.figures[id] = stream
        self._announce_figures()
        return stream

    def add_source(self, frames: Iterable[Any], *, fps: Optional[float] = None,
                   id: Optional[str] = None, title: Optional[str] = None,
                   hint: Any = None) -> FigureStream:
        """Serve any iterable of RGBA frames ((H, W, 4) uint8 arrays or buffers) as a
        figure: each item is published as it comes, paced at fps when given, and only
        while some consumer wants a frame (demand). The size is taken from the first
        item; the stream stays open when the iterable ends. Returns the FigureStream; its
        ``source_task`` finishes with the iterable."""
        if not self.in_loop():
            return self.call(self.add_source, frames, fps=fps, id=id, title=title,
                             hint=hint)
        it = iter(frames)
        first = as_rgba(next(it))
        stream = self.add_figure(id, first.shape[1], first.shape[0], title=title)
        stream.publish(first)
        task = asyncio.ensure_future(self._pump_source(stream, it, fps, hint))
        stream.source_task = task   # type: ignore[attr-defined]
        self._tasks.append(task)
        return stream

    async def _pump_source(self, stream: FigureStream, it: Any, fps: Optional[float],
                           hint: Any) -> None:
        period = 1.0 / fps if fps else 0.0
        next_at = time.monotonic()
        wanted = asyncio.Event()
        stream.on_demand(wanted.set)
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
            while not stream.demand and not stream.closed:
                wanted.clear()
                await wanted.wait()
            if not stream.closed:
                stream.publish(rgba, hint)

    def figure_closed(self, stream: FigureStream) -> None:
        """A stream closed (StreamHost): tell its consumers' clients, announce the list."""
        if self.figures.get(stream.id) is not stream:
            return
        self._push_joined(stream, P.CLOSE)
        for client in self.client_table:
            client.joined.pop(stream.id, None)
        del self.figures[stream.id]
        self._announce_figures()

    def _figure_list(self) -> list[dict]:
        return [s.info() for s in self.figures.values()]

    def _announce_figures(self) -> None:
        header = P.header(P.FIGURES, figures=self._figure_list())
        for client in self.client_table:
            if client.hello:
                self._send(client.route, header)

    def _push_joined(self, stream: FigureStream, type_: str, **fields: Any) -> None:
        header = P.header(type_, figure=stream.id, **fields)
        for client in self.client_table:
            if stream.id in client.joined:
                self._send(client.route, header)

    # -- sending -------------------------------------------------------------------------

    def _send(self, route: list[bytes], header: bytes, *binary: Any) -> bool:
        """Send without blocking; False when the peer is full or gone (see ROUTER_MANDATORY)."""
        if self._closed:
            return False   # figures closed after the server (e.g. by matplotlib at exit)
        big = bool(binary) and len(binary[-1]) >= ZERO_COPY_MIN
        sock = self._router
        try:
            # Part by part with plain int flags: send_multipart's enum arithmetic costs
            # more than the send itself for small frames. A full or unknown peer fails
            # on the first part (ROUTER_MANDATORY); the rest of a message then follows.
            for part in route:
                sock.send(part, _MORE)
            if binary:
                sock.send(header, _MORE)
                for part in binary[:-1]:
                    sock.send(part, _MORE)
                sock.send(binary[-1], _LAST, copy=not big)
            else:
                sock.send(header, _LAST)
            return True
        except zmq.Again:
            return False
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                # The peer is gone: forget it (not now: we may be inside its Outbox's pump).
                self.loop.call_soon(self.client_table.forget,  # type: ignore[union-attr]
                                    tuple(route[:-1]))
            return False
        finally:
            # Any operation on the socket may consume the edge of ZMQ_FD that announces
            # a request: look for one after this send too.
            if sock.getsockopt(_EVENTS) & _POLLIN:
                self._drain_soon()

    def send_to(self, route: list[bytes], type_: str, *binary: bytes, **fields: Any) -> bool:
        """Send one message to the client at route (StreamHost; e.g. a download)."""
        return self._send(route, P.header(type_, **fields), *binary)

    # -- requests -------------------------------------------------------------------------

    def _drain_soon(self) -> None:
        if not self._drain_scheduled and not self._closed:
            self._drain_scheduled = True
            self.loop.call_soon(self._on_readable)   # type: ignore[union-attr]

    def _on_readable(self) -> None:
        """Handle the requests waiting (a bounded batch, so frames go out in between)."""
        self._drain_scheduled = False
        router = self._router
        for _ in range(MAX_BATCH):
            if self._closed:
                return
            try:
                frames = router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as e:
                if e.errno in (zmq.ETERM, zmq.ENOTSOCK):
                    return
                log.warning("receive failed: %s", e)
                continue
            try:
                self._handle(frames)
            except Exception:
                log.exception("request handling failed")
        self._drain_soon()   # more waiting: after whatever else the loop has to do

    def _handle(self, frames: list[bytes]) -> None:
        # frames[0] is always the ROUTER's identity frame of the peer.
        try:
            envelope, body = P.split_envelope(frames)
        except ProtocolError:
            # No delimiter: reply to the peer anyway so that a wrong client learns why.
            envelope, body = [frames[0], b""], frames[1:]
            self._reject(envelope, ProtocolError("request has no empty delimiter frame"))
            return
        try:
            if not body:
                raise ProtocolError("request has no header frame")
            msg = P.parse_header(body[0], P.MAX_REQUEST_BYTES)
            fields = P.check_request(msg, self.figures)
            if len(body) != 1:
                raise ProtocolError(f"request {msg['type']!r} has {len(body) - 1} "
                                    "unexpected binary frame(s)")
        except ProtocolError as e:
            self._reject(envelope, e)
            return
        self.requests_handled += 1
        client = self.client_table.touch(envelope)
        try:
            self._handlers[msg["type"]](client, fields)
        except ProtocolError as e:
            self._reject(envelope, e)

    def _reject(self, envelope: list[bytes], error: ProtocolError) -> None:
        self.requests_rejected += 1
        fields: dict[str, Any] = {"code": error.code, "message": str(error)[:500]}
        if error.code == P.E_VERSION:
            fields["versions"] = list(P.SUPPORTED_VERSIONS)
        self._send(envelope, P.header(P.ERROR, **fields))

    def _on_hello(self, client: ClientEntry, fields: dict) -> None:
        client.name = fields["client"]
        client.accept = fields["accept"]
        client.hello = True
        self._send(client.route, P.header(
            P.WELCOME, minor=P.MINOR, server="fastfig", server_id=self.server_id,
            versions=list(P.SUPPORTED_VERSIONS),
            encodings=sorted(e.name.lower() for e in ALL_ENCODINGS),
            heartbeat_ms=security.HEARTBEAT_IVL_MS, figures=self._figure_list()))

    def _on_figures(self, client: ClientEntry, fields: dict) -> None:
        self._send(client.route, P.header(P.FIGURES, figures=self._figure_list()))

    def _on_join(self, client: ClientEntry, fields: dict) -> None:
        stream = self.figures[fields["figure"]]
        old = client.joined.pop(stream.id, None)
        if old is not None:
            old.close()   # joining again (say after a reconnect) starts afresh
        # The whole state first, so that the first frame finds it in place.
        self._send(client.route, P.header(P.STATE, figure=stream.id, state=stream.state))
        route, header = client.route, stream.frame_header
        client.joined[stream.id] = stream.attach(
            lambda packet: self._send(route, header, packet), fields["credit"])

    def _joined(self, client: ClientEntry, figure: str) -> Consumer:
        consumer = client.joined.get(figure)
        if consumer is None:
            raise ProtocolError(f"figure {figure!r} was not joined", P.E_NOT_JOINED)
        return consumer

    def _on_credit(self, client: ClientEntry, fields: dict) -> None:
        self._joined(client, fields["figure"]).grant(fields["n"], fields["seq"],
                                                     fields["epoch"])

    def _on_resync(self, client: ClientEntry, fields: dict) -> None:
        self._joined(client, fields["figure"]).resync()

    def _on_leave(self, client: ClientEntry, fields: dict) -> None:
        consumer = client.joined.pop(fields["figure"], None)
        if consumer is not None:
            consumer.close()

    def _on_event(self, client: ClientEntry, fields: dict) -> None:
        event = dict(fields["event"], figure=fields["figure"], client=client.name)
        self.figures[fields["figure"]].deliver(event, client.route)

    def _on_ping(self, client: ClientEntry, fields: dict) -> None:
        # "joined" lets a client that this server forgot (timed out) find out and join
        # again, even when it has no credit to return that would be refused.
        self._send(client.route, P.header(P.PONG, t=fields["t"], server_id=self.server_id,
                                          joined=sorted(client.joined)))
        # A frame a full queue refused is sent again now, even if the figure is still.
        for consumer in client.joined.values():
            consumer.outbox.pump()

    def _on_bye(self, client: ClientEntry, fields: dict) -> None:
        self.client_table.forget(client.key)

    # -- clients --------------------------------------------------------------------------

    @property
    def client_timeout(self) -> float:
        """Seconds after which a silent client is forgotten (with its consumers)."""
        return self.client_table.timeout

    @client_timeout.setter
    def client_timeout(self, seconds: float) -> None:
        self.client_table.timeout = seconds

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            self.client_table.expire()

    def clients(self) -> list[str]:
        """Names of the clients heard from recently."""
        return [c.name for c in self.client_table]

    # -- threads ---------------------------------------------------------------------------

    def in_loop(self) -> bool:
        """The caller runs on the server's loop thread (StreamHost)."""
        return threading.get_ident() == self._loop_thread

    def run_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run fn(*args) on the loop: now when called there (StreamHost)."""
        if self._closed or self.loop is None:
            return   # after close the loop may be gone; there is nobody to send to
        if self.in_loop():
            fn(*args)
        else:
            self.loop.call_soon_threadsafe(fn, *args)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run fn on the loop thread and wait for its result."""
        if self.in_loop():
            return fn(*args, **kwargs)
        if self.loop is None:
            raise RuntimeError("the server is not started")
        return call_in_loop(self.loop, fn, *args, **kwargs)
