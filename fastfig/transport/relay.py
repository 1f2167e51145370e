"""fastfig.Relay: fans one server out to many clients, or to other machines.

To the server the relay is one client (PROTOCOL.md section 2): per figure some downstream
client joined, one Mirror (mirror.py), an Inbox joined with credit feeding a local Outbox.
To its downstream clients it is a server: a ROUTER speaking the same protocol, each
client's join a Consumer of that Outbox. Credit flows end to end: the relay returns a
frame's credit upstream only when one of its clients wants another frame, so it never
buffers a backlog, a stalled client costs nothing, and the server renders only as fast as
the fastest client behind the relay takes frames. A client behind the relay that needs a
keyframe gets one made by the server (the mirror asks upstream with ``resync``).

Requests the relay does not serve itself (input events, and so downloads) are forwarded
upstream with their route: the server's replies come back along it (the envelope rule of
section 2), so the figure's owner answers the client that asked.

One thread runs the relay, polling both sockets; the session objects are sans-IO.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

import zmq
from zmq.auth.thread import ThreadAuthenticator

from . import protocol as P
from . import security
from .mirror import Mirror, ponged, welcomed
from .session import DEFAULT_CREDIT, Consumer
from ..errors import ProtocolError

log = logging.getLogger("fastfig.relay")

#: A downstream client not heard from for this long (it pings every second) is forgotten,
#: with its consumers and their credit (as the server does).
CLIENT_TIMEOUT = 10.0
#: Seconds between pings upstream; silent this long and the relay says hello again.
PING_INTERVAL = 1.0
DEAD_AFTER = 3.0
#: Messages read from one socket before looking at the other.
BATCH = 256
#: Packets at least this big are sent without copying.
ZERO_COPY_MIN = 64 * 1024
#: Messages queued to one downstream client before sends to it fail (credit bounds the
#: frames; this bounds state and replies to a client that reads nothing).
SEND_HWM = 1000


class _Client:
    """A downstream peer of the relay's ROUTER, by route."""

    __slots__ = ("route", "hello", "joined", "last_seen")

    def __init__(self, route: list, now: float) -> None:
        self.route = route          # the envelope, delimiter included
        self.hello = False
        self.joined: dict[str, Consumer] = {}
        self.last_seen = now


class Relay:
    """Relay the server whose control endpoint is ``connect``.

    bind: the relay's control endpoint, the address its clients connect to (default:
    tcp://127.0.0.1 on a free port; "ipc" for a private ipc directory). curve: a
    security.CurveServer for the relay's bound socket; upstream_curve: a
    security.CurveClient to reach an encrypted server. credit: the window the relay asks
    upstream per figure. Starts at once (TimeoutError when no server answers within
    timeout seconds); ``close()`` stops.
    """

    def __init__(self, connect: str, bind: Optional[str] = None, *, curve: Any = None,
                 upstream_curve: Any = None, allow_remote: bool = False,
                 timeout: float = 5.0, credit: int = DEFAULT_CREDIT) -> None:
        self.upstream = connect
        self.credit = credit
        self.server_id: Optional[str] = None
        self.address: Optional[str] = None
        self.figures: list[dict] = []
        self.mirrors: dict[str, Mirror] = {}
        self._by_header: dict[bytes, Mirror] = {}
        self._welcome: dict = {}
        self._clients: dict[tuple, _Client] = {}
        self._doomed: set[tuple] = set()
        self._ctx: Optional[zmq.Context] = zmq.Context()
        self._auth: Optional[ThreadAuthenticator] = None
        self._thread: Optional[threading.Thread] = None
        self._ipc_dir: Optional[str] = None
        self._last_heard = self._last_sent = self._last_hello = time.monotonic()
        self._handlers = {
            P.HELLO: self._on_hello, P.FIGURES: self._on_figures, P.JOIN: self._on_join,
            P.CREDIT: self._on_credit, P.RESYNC: self._on_resync, P.LEAVE: self._on_leave,
            P.EVENT: self._forward, P.PING: self._on_ping, P.BYE: self._on_bye}
        assert set(self._handlers) == P.REQUEST_TYPES
        self._upstream_handlers = {
            P.WELCOME: self._up_welcome, P.FIGURES: self._up_figures, P.STATE: self._up_state,
            P.CLOSE: self._up_close, P.PONG: self._up_pong, P.ERROR: self._up_error}
        try:
            self._setup(connect, bind, curve, upstream_curve, allow_remote, timeout)
        except BaseException:
            self._shutdown_sockets()
            raise

    # -- lifecycle ----------------------------------------------------------------------

    def _setup(self, connect, bind, curve, upstream_curve, allow_remote, timeout):
        ctx = self._ctx
        if bind in (None, "tcp"):
            bind = "tcp://127.0.0.1:*"
        elif bind == "ipc":
            self._ipc_dir = security.private_ipc_dir()
            bind = f"ipc://{self._ipc_dir}/ctl"
        security.check_bind(bind, curve=curve is not None, allow_remote=allow_remote)
        self._auth = ThreadAuthenticator(ctx)
        self._auth.start()
        security.configure_authenticator(self._auth, curve)

        backend = self._backend = ctx.socket(zmq.DEALER)
        security.tune(backend)
        backend.setsockopt(zmq.RCVHWM, SEND_HWM)
        backend.setsockopt(zmq.SNDHWM, SEND_HWM)
        backend.setsockopt(zmq.IMMEDIATE, 1)   # nothing queues for a dead server
        if upstream_curve is not None:
            upstream_curve.apply(backend)
        backend.connect(connect)

        frontend = self._frontend = ctx.socket(zmq.ROUTER)
        frontend.setsockopt(zmq.ZAP_DOMAIN, security.ZAP_DOMAIN.encode())
        if curve is not None:
            curve.apply(frontend)
        security.tune(frontend, maxmsgsize=P.MAX_REQUEST_BYTES)
        frontend.setsockopt(zmq.RCVHWM, SEND_HWM)
        frontend.setsockopt(zmq.SNDHWM, SEND_HWM)
        # A frame that could not be sent must not count against the client's credit.
        frontend.setsockopt(zmq.ROUTER_MANDATORY, 1)

        self._greet(timeout)
        frontend.bind(bind)
        self.address = frontend.getsockopt_string(zmq.LAST_ENDPOINT)
        self._stop, stop_peer = self._pair()
        self._thread = threading.Thread(target=self._run, args=(stop_peer,),
                                        name="fastfig-relay", daemon=True)
        self._thread.start()

    def _pair(self):
        """Two ends of an inproc pipe: close() tells the loop to stop through it."""
        a, b = self._ctx.socket(zmq.PAIR), self._ctx.socket(zmq.PAIR)
        for sock in (a, b):
            sock.setsockopt(zmq.LINGER, 0)
        b.bind(f"inproc://fastfig-relay-stop-{id(self)}")
        a.connect(f"inproc://fastfig-relay-stop-{id(self)}")
        return a, b

    def _greet(self, timeout):
        """Wait for the server's welcome (before serving anyone)."""
        deadline = time.monotonic() + timeout
        while self.server_id is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no fastfig server answered at {self.upstream}")
            self._hello()
            if self._backend.poll(min(500, max(1, left * 1000))):
                frames = self._backend.recv_multipart(copy=False)
                msg = self._upstream_message(frames)
                if msg is not None and msg["type"] == P.ERROR:
                    raise RuntimeError(f"server refused the relay: {msg.get('message')}")

    def close(self) -> None:
        if self._thread is not None:
            try:
                self._stop.send(b"stop")
            except zmq.ZMQError:
                pass
            self._thread.join(timeout=5)
        self._shutdown_sockets()

    def _shutdown_sockets(self):
        if self._ctx is None:
            return
        if self._auth is not None:
            self._auth.stop()
        self._ctx.destroy(linger=0)
        self._ctx = None
        if self._ipc_dir is not None:
            import shutil
            shutil.rmtree(self._ipc_dir, ignore_errors=True)

    def __enter__(self) -> "Relay":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def wait(self) -> None:
        """Block until the relay stops (for the command line)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    # -- the loop ---------------------------------------------------------------------------

    def _run(self, stop):
        frontend, backend = self._frontend, self._backend
        poller = zmq.Poller()
        for sock in (frontend, backend, stop):
            poller.register(sock, zmq.POLLIN)
        while True:
            try:
                events = dict(poller.poll(int(PING_INTERVAL * 500)))
            except zmq.ZMQError:
                return
            if stop in events:
                return
            try:
                if backend in events:
                    self._drain(backend, self._upstream_message)
                if frontend in events:
                    self._drain(frontend, self._request)
                self._upkeep()
            except zmq.ContextTerminated:
                return
            except Exception:
                log.exception("relay: message handling failed")

    def _drain(self, sock, handle):
        for _ in range(BATCH):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            handle(frames)
            if self._doomed:
                for key in self._doomed:
                    self._forget(key)
                self._doomed.clear()

    def _upkeep(self):
        now = time.monotonic()
        if now - self._last_heard > DEAD_AFTER:
            if now - self._last_hello > PING_INTERVAL:
                self._hello()
        elif now - self._last_sent > PING_INTERVAL:
            self._up(P.PING, t=time.time())
        cutoff = now - CLIENT_TIMEOUT
        for key in [k for k, c in self._clients.items() if c.last_seen < cutoff]:
            self._forget(key)

    # -- upstream -----------------------------------------------------------------------------

    def _up(self, type_: str, **fields: Any) -> bool:
        """Send one request of the relay's own to the server."""
        try:
            self._backend.send_multipart([b"", P.header(type_, **fields)], zmq.NOBLOCK)
        except zmq.Again:
            return False   # no server connected: the keepalive greets it when it is back
        self._last_sent = time.monotonic()
        return True

    def _hello(self):
        self._last_hello = time.monotonic()
        self._up(P.HELLO, client="fastfig-relay")

    def _upstream_message(self, frames):
        self._last_heard = time.monotonic()
        if len(frames[0]) != 0:
            # A reply routed to one of our clients (a download, an error): pass it on.
            self._send_raw(frames)
            return None
        if len(frames) == 3:
            mirror = self._by_header.get(frames[1].bytes)
            if mirror is not None:        # the hot path: a frame, by its constant header
                if mirror.joined:
                    mirror.receive(frames[2].buffer)
                return None
        try:
            if len(frames) < 2:
                raise ProtocolError("message without a header")
            raw = frames[1].bytes
            msg = P.parse_header(raw)
        except ProtocolError as e:
            log.warning("relay: bad message from the server: %s", e)
            return None
        handler = self._upstream_handlers.get(msg["type"])
        if handler is not None:
            handler(msg, raw)
        return msg

    def _up_welcome(self, msg, raw):
        restarted = self.server_id is not None and msg.get("server_id") != self.server_id
        self.server_id = msg.get("server_id")
        self._welcome = {k: v for k, v in msg.items() if k not in ("v", "type", "figures")}
        welcomed(self.mirrors.values(), restarted)
        self._set_figures(msg.get("figures"))

    def _up_pong(self, msg, raw):
        if msg.get("server_id") != self.server_id:
            self._hello()   # another server answers at this address
        else:
            ponged(self.mirrors.values(), msg)

    def _up_figures(self, msg, raw):
        self._set_figures(msg.get("figures"))
        for client in self._clients.values():
            if client.hello:
                self._send(client.route, raw)

    def _set_figures(self, figures):
        if not isinstance(figures, list):
            return
        self.figures = [f for f in figures if isinstance(f, dict) and isinstance(f.get("id"), str)]
        listed = {f["id"] for f in self.figures}
        for mirror in list(self.mirrors.values()):
            if mirror.id not in listed:
                self._figure_gone(mirror.id)
            elif mirror.consumers and not mirror.joined:
                mirror.join()

    def _up_state(self, msg, raw):
        mirror = self.mirrors.get(msg.get("figure"))
        if mirror is not None and isinstance(msg.get("state"), dict):
            mirror.state.update(msg["state"])
            self._push_joined(mirror.id, raw)

    def _up_close(self, msg, raw):
        if msg.get("figure") in self.mirrors:
            self._push_joined(msg["figure"], raw)
            self._figure_gone(msg["figure"])

    def _up_error(self, msg, raw):
        code = msg.get("code")
        if code == P.E_NOT_JOINED:
            self._hello()      # the server forgot the relay: greeted again, it joins again
        elif code == P.E_UNKNOWN_FIGURE:
            self._up(P.FIGURES)   # a join raced a close: the list says which
        else:
            log.warning("relay: server error: %s", msg.get("message"))

    def _figure_gone(self, figure_id):
        mirror = self.mirrors.pop(figure_id, None)
        if mirror is None:
            return
        self._by_header.pop(P.frame_header(figure_id), None)
        mirror.close()
        for client in self._clients.values():
            consumer = client.joined.pop(figure_id, None)
            if consumer is not None:
                consumer.close()

    # -- downstream -----------------------------------------------------------------------------

    def _send(self, route, header, *binary) -> bool:
        big = bool(binary) and len(binary[-1]) >= ZERO_COPY_MIN
        try:
            self._frontend.send_multipart([*route, header, *binary], zmq.NOBLOCK, copy=not big)
        except zmq.Again:
            return False          # the client's queue is full: tried again later
        except zmq.ZMQError as e:
            if e.errno == zmq.EHOSTUNREACH:
                self._doomed.add(tuple(route[:-1]))   # gone: forgotten after this message
            return False
        return True

    def _send_raw(self, frames):
        try:
            self._frontend.send_multipart(frames, zmq.NOBLOCK, copy=False)
        except zmq.ZMQError:
            pass   # the client went away or is full: it asks again

    def _push_joined(self, figure_id, raw):
        for client in self._clients.values():
            if figure_id in client.joined:
                self._send(client.route, raw)

    def _request(self, frames):
        frames = [f.bytes for f in frames]
        try:
            envelope, body = P.split_envelope(frames)
        except ProtocolError as e:
            self._reject([frames[0], b""], e)
            return
        try:
            if len(body) != 1:
                raise ProtocolError(f"request has {len(body)} frames after the envelope; "
                                    "one header frame expected")
            msg = P.parse_header(body[0], P.MAX_REQUEST_BYTES)
            fields = P.check_request(msg, {f["id"] for f in self.figures})
        except ProtocolError as e:
            self._reject(envelope, e)
            return
        key = tuple(envelope[:-1])
        client = self._clients.get(key)
        now = time.monotonic()
        if client is None:
            client = self._clients[key] = _Client(envelope, now)
        client.last_seen = now
        try:
            self._handlers[msg["type"]](client, fields, body[0])
        except ProtocolError as e:
            self._reject(envelope, e)

    def _reject(self, envelope, error):
        fields: dict[str, Any] = {"code": error.code, "message": str(error)[:500]}
        if error.code == P.E_VERSION:
            fields["versions"] = list(P.SUPPORTED_VERSIONS)
        self._send(envelope, P.header(P.ERROR, **fields))

    def _on_hello(self, client, fields, raw):
        client.hello = True
        self._send(client.route, P.header(P.WELCOME, **self._welcome, figures=self.figures))

    def _on_figures(self, client, fields, raw):
        self._send(client.route, P.header(P.FIGURES, figures=self.figures))

    def _on_join(self, client, fields, raw):
        figure_id = fields["figure"]
        old = client.joined.pop(figure_id, None)
        if old is not None:
            old.close()   # joining again starts afresh
        mirror = self.mirrors.get(figure_id)
        if mirror is None:
            mirror = self.mirrors[figure_id] = Mirror(figure_id, self._up, credit=self.credit)
            self._by_header[P.frame_header(figure_id)] = mirror
        # The whole state known first; the server's own (sent when the relay joins) follows.
        self._send(client.route, P.header(P.STATE, figure=figure_id, state=mirror.state))
        route, header = client.route, P.frame_header(figure_id)
        client.joined[figure_id] = mirror.attach(
            lambda packet: self._send(route, header, packet), fields["credit"])
        if not mirror.joined:
            mirror.join()

    def _consumer(self, client, figure_id) -> Consumer:
        consumer = client.joined.get(figure_id)
        if consumer is None:
            raise ProtocolError(f"figure {figure_id!r} was not joined", P.E_NOT_JOINED)
        return consumer

    def _on_credit(self, client, fields, raw):
        self._consumer(client, fields["figure"]).grant(fields["n"], fields["seq"],
                                                       fields["epoch"])

    def _on_resync(self, client, fields, raw):
        self._consumer(client, fields["figure"]).resync()

    def _on_leave(self, client, fields, raw):
        consumer = client.joined.pop(fields["figure"], None)
        if consumer is not None:
            consumer.close()
            self._unwatch_if_idle(fields["figure"])

    def _on_ping(self, client, fields, raw):
        self._send(client.route, P.header(P.PONG, t=fields["t"], server_id=self.server_id,
                                          joined=sorted(client.joined)))
        # A frame a full queue refused is sent again now, even if the figure is still.
        for consumer in client.joined.values():
            consumer.outbox.pump()

    def _on_bye(self, client, fields, raw):
        self._forget(tuple(client.route[:-1]))

    def _forward(self, client, fields, raw):
        """A request the figure's owner answers (an event; a download is one): upstream,
        with the client's route, so the reply comes back to it."""
        try:
            self._backend.send_multipart([*client.route, raw], zmq.NOBLOCK)
        except zmq.Again:
            pass   # the server is unreachable: the client's request is lost, as direct

    def _forget(self, key):
        client = self._clients.pop(key, None)
        if client is None:
            return
        for figure_id, consumer in client.joined.items():
            consumer.close()
            self._unwatch_if_idle(figure_id)
        client.joined.clear()

    def _unwatch_if_idle(self, figure_id):
        """Nobody behind the relay watches the figure: leave it upstream."""
        mirror = self.mirrors.get(figure_id)
        if mirror is not None and not mirror.consumers:
            del self.mirrors[figure_id]
            self._by_header.pop(P.frame_header(figure_id), None)
            if mirror.joined:
                mirror.leave()

    def stats(self) -> dict:
        """Per figure watched, what its mirror received and sent (for tests, diagnostics)."""
        return {"clients": len(self._clients),
                "figures": {fid: dict(m.stats(), sent=[c.sent for c in list(m.consumers)])
                            for fid, m in list(self.mirrors.items())}}
