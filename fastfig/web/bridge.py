"""The websocket bridge: the browser's way into a fastfig server (PROTOCOL.md section 3).

A tornado application on the asyncio loop it is started on. It serves the viewer page and
its JavaScript modules and, per figure, a binary websocket: frame packets go to the
browser unchanged (one websocket message per frame), acknowledgements and input events
come back. Towards the server the bridge is an ordinary ZeroMQ client (PROTOCOL.md section 2)
connected to its control endpoint, whether the server runs in the same process (``fastfig
demo``, ``fastfig serve``, plt.show() under the fastfig backend: same loop, loopback or ipc
sockets) or in another one: one code path, and a bridge can front any server.

One subscription per figure serves every tab watching it; each tab has its own flow
control (fastfig/feed.py), so a slow tab skips to the latest image and never slows the
figure or the other tabs.

Safe by default: it binds 127.0.0.1; every page, API call and websocket needs the random
token printed in the URL; the Host header must name this server and a websocket's Origin
must be this server's own, which defeats both DNS rebinding and cross-site websockets.
"""

import asyncio
import json
import logging
import mimetypes
import os
import secrets
import time
import urllib.parse

import tornado.httpserver
import tornado.netutil
import tornado.web
import tornado.websocket
import zmq
import zmq.asyncio

from ..transport import protocol as P
from ..transport import security
from ..errors import FrameError
from .feed import MAX_IN_FLIGHT, FigureFeed, ViewerQueue
from ..transport.loopthread import start_loop_thread

log = logging.getLogger("fastfig.bridge")

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
#: Messages from a browser are small JSON objects; anything bigger is refused.
MAX_MESSAGE = 64 * 1024
#: Seconds between pings to the server; silent this long and the bridge says hello again.
PING_INTERVAL = 1.0
DEAD_AFTER = 3.0
#: Seconds a download may take (savefig of a big figure as PDF is slow).
DOWNLOAD_TIMEOUT = 30.0
#: Formats offered by the toolbar's download button.
DOWNLOAD_FORMATS = ("png", "svg", "pdf", "eps", "jpg", "tiff", "webp", "rgba")
_CONTENT_TYPES = {"svg": "image/svg+xml", "svgz": "image/svg+xml", "pdf": "application/pdf",
                  "eps": "application/postscript", "ps": "application/postscript",
                  "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
                  "tif": "image/tiff", "tiff": "image/tiff", "webp": "image/webp",
                  "pgf": "text/plain", "raw": "application/octet-stream",
                  "rgba": "application/octet-stream"}
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class Failed(tornado.web.HTTPError):
    """An HTTP error whose body is a message for a person."""

    def __init__(self, status, message):
        super().__init__(status)
        self.message = message


class Refused(Failed):
    """A request without the right token, Host or Origin: 403 with a message that says
    which and what to do."""

    def __init__(self, message):
        super().__init__(403, message)


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


class Bridge:
    """Serve the browser viewer for the fastfig server whose control endpoint is
    ``address`` (or a Server / ServerThread, whose address is taken).

    host, port: where to listen (default 127.0.0.1 and a free port). token: the secret
    every request must carry (default: a fresh random one; "" disables the check, for
    tests on a trusted machine only). max_in_flight: frames a tab may have unacknowledged.
    curve: a security.CurveClient when the server encrypts. The toolbar's download button
    asks the figure's owner (the fastfig backend saves with savefig in any format).

    ``await bridge.start()`` on a running loop, or ``bridge.start_thread()`` from
    synchronous code (a loop of its own in a daemon thread). The port (and so ``url``)
    is known once ``bind()`` has run, which both do first.
    """

    def __init__(self, address, *, host="127.0.0.1", port=0, token=None,
                 max_in_flight=MAX_IN_FLIGHT, curve=None,
                 allow_remote=False, title="fastfig"):
        server = None
        if not isinstance(address, str):
            server = getattr(address, "server", address)
            address = server.address
        self.server = server
        self.address = address
        self.host = host
        self.port = port
        self.token = secrets.token_urlsafe(24) if token is None else token
        self.max_in_flight = max_in_flight
        self.curve = curve
        self.title = title
        if not allow_remote and host not in ("127.0.0.1", "localhost", "::1"):
            raise security.InsecureAddress(
                f"refusing to serve the viewer on {host!r}: anyone on the network could "
                "reach it. Use 127.0.0.1 (and an SSH tunnel), or allow_remote=True.")
        self.feeds = {}
        self.sockets = set()
        self.upstream = None
        self._http = None
        self._loop = None
        self._listening = None
        self._thread = None

    # -- lifecycle ----------------------------------------------------------------------

    def bind(self):
        """Take the listening port now (the URL is known from here on); idempotent."""
        if self._listening is None:
            self._listening = tornado.netutil.bind_sockets(self.port, self.host)
            self.port = self._listening[0].getsockname()[1]
        return self

    async def start(self, timeout=10.0, wait_for_server=True):
        """Connect to the server and serve. wait_for_server: first wait up to timeout
        seconds for the server to answer (TimeoutError otherwise); without it the page is
        served at once and shows "waiting for the server" until it answers."""
        self._loop = asyncio.get_running_loop()
        self.bind()
        self.upstream = Upstream(self, self.address, self.curve)
        try:
            await self.upstream.start(timeout if wait_for_server else 0)
        except BaseException:
            self.upstream.close()
            self.upstream = None
            for sock in self._listening:
                sock.close()
            raise
        app = tornado.web.Application(self._routes(), websocket_max_message_size=MAX_MESSAGE,
                                      websocket_ping_interval=10, websocket_ping_timeout=10,
                                      compress_response=False, xsrf_cookies=False)
        self._http = tornado.httpserver.HTTPServer(app, max_body_size=MAX_MESSAGE)
        self._http.add_sockets(self._listening)
        log.info("viewer on %s", self.url)
        return self

    def start_thread(self, timeout=10.0, wait_for_server=True):
        """Run the bridge on an event loop of its own in a daemon thread (how fastfig
        runs it next to matplotlib: a long draw on the figures' loop then never stalls
        the page, the websockets or the other figures). Returns once it serves."""
        self.bind()
        self._thread, _ = start_loop_thread(
            "fastfig-bridge", lambda: self.start(timeout, wait_for_server), self._close_now,
            timeout + 5)
        return self

    @classmethod
    def start_in(cls, server_thread, *args, timeout=10.0, **kwargs):
        """A bridge for a ServerThread, in a thread of its own."""
        return cls(server_thread, *args, **kwargs).start_thread(timeout)

    def close(self):
        """Stop listening and close every websocket. Call on the bridge's loop, or from
        another thread (it is then run there)."""
        if self._thread is not None:
            if self._thread.is_alive() and self._loop.is_running():
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
            return
        if self._loop is not None and not self._in_loop() and self._loop.is_running():
            done = asyncio.run_coroutine_threadsafe(self._aclose(), self._loop)
            try:
                done.result(10)
            except Exception:
                pass
            return
        self._close_now()

    async def _aclose(self):
        self._close_now()

    def _close_now(self):
        if self._http is not None:
            self._http.stop()
            self._http = None
        for sock in list(self.sockets):
            sock.close(1001, "the fastfig server is shutting down")
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None

    def _in_loop(self):
        try:
            return asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    @property
    def origin(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self):
        """The index page, token included: what a person opens."""
        return f"{self.origin}/?token={self.token}" if self.token else f"{self.origin}/"

    def figure_url(self, figure_id):
        query = f"?token={self.token}" if self.token else ""
        return f"{self.origin}/figure/{urllib.parse.quote(figure_id)}{query}"

    def _routes(self):
        kw = {"bridge": self}
        return [
            (r"/", PageHandler, kw),
            (r"/figure/([A-Za-z0-9_.-]{1,64})", PageHandler, kw),
            (r"/api/figures", FiguresHandler, kw),
            (r"/download/([A-Za-z0-9_.-]{1,64})\.([a-z]{2,5})", DownloadHandler, kw),
            (r"/ws/([A-Za-z0-9_.-]{1,64})", ViewerSocket, kw),
            (r"/favicon.ico", NoContent),
            (r"/static/(.*)", StaticHandler, {"path": STATIC, "bridge": self}),
        ]

    # -- checks ---------------------------------------------------------------------

    def check_request(self, request):
        """Raise Refused unless the request names this server and carries the token
        (and, when it has an Origin, comes from a page of this server)."""
        host = request.host or ""
        if self.host in ("127.0.0.1", "localhost", "::1"):
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in _LOOPBACK_NAMES:
                raise Refused(f"fastfig: refused: the Host header {host!r} does not name this "
                              "server. Open the URL the server printed.")
        origin = request.headers.get("Origin")
        if origin is not None and not self._same_origin(origin, host):
            raise Refused(f"fastfig: refused: requests from {origin!r} are not allowed; "
                          "only pages served by this fastfig server may connect.")
        if self.token:
            given = request.query_arguments.get("token", [b""])[-1].decode("utf-8", "replace")
            auth = request.headers.get("Authorization", "")
            if not given and auth.startswith("token "):
                given = auth[6:]
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                raise Refused("fastfig: refused: wrong or missing token. Open the URL with "
                              "the ?token=... the server printed when it started.")

    def _same_origin(self, origin, host):
        parsed = urllib.parse.urlsplit(origin)
        return parsed.scheme in ("http", "https") and parsed.netloc == host and bool(host)

    # -- figures ------------------------------------------------------------------------

    def figure_list(self):
        figures = self.upstream.figures if self.upstream else []
        out = []
        for info in figures:
            info = dict(info)
            info["url"] = f"/figure/{info['id']}"
            info["downloads"] = list(DOWNLOAD_FORMATS)
            out.append(info)
        return out

    def figure_info(self, figure_id):
        return next((f for f in self.figure_list() if f["id"] == figure_id), None)

    def feed(self, figure_id):
        feed = self.feeds.get(figure_id)
        if feed is None:
            feed = self.feeds[figure_id] = FigureFeed(figure_id)
            feed.asked_at = 0.0

            def request_snapshot(feed=feed):
                feed.asked_at = time.monotonic()
                if self.upstream is not None:
                    self.upstream.send(P.SNAPSHOT, figure=feed.id)
            feed.request_snapshot = request_snapshot
            feed.last_ack = None
        self.upstream.subscribe(figure_id)
        return feed

    def viewer_closed(self, feed):
        if not feed.viewers and self.upstream is not None:
            self.upstream.unsubscribe(feed.id)
            # Forget what it held: a later tab starts from a fresh snapshot anyway.
            self.feeds.pop(feed.id, None)

    def figures_changed(self):
        known = {f["id"] for f in self.upstream.figures}
        for feed in list(self.feeds.values()):
            if feed.id in known and feed.viewers and feed.epoch is None:
                feed.pump()   # the figure a tab waits for has appeared
        message = json.dumps({"type": "figures", "figures": self.figure_list()})
        for sock in list(self.sockets):
            sock.send_text(message)

    def update_state(self, feed, state):
        try:
            state = P.check_state(state)
        except P.ProtocolError as e:
            log.warning("bridge: bad state for %s: %s", feed.id, e)
            return
        feed.state.update(state)
        message = json.dumps({"type": "state", "state": state})
        for sock in list(self.sockets):
            if sock.feed is feed:
                sock.send_text(message)

    def figure_closed(self, feed):
        message = json.dumps({"type": "close", "figure": feed.id})
        for sock in list(self.sockets):
            if sock.feed is feed:
                sock.send_text(message)

    def broadcast_status(self):
        connected = bool(self.upstream and self.upstream.connected)
        message = json.dumps({"type": "status", "server": connected})
        for sock in list(self.sockets):
            sock.send_text(message)

    def forward_ack(self, feed, seq, epoch):
        """Tell the server the newest frame any tab has painted: its render loop paces
        itself on the fastest frontend, never on the slowest."""
        if epoch != feed.epoch:
            return
        last = feed.last_ack
        if last is not None and last[0] == epoch and not P.seq_newer(seq, last[1]):
            return
        feed.last_ack = (epoch, seq)
        self.upstream.send(P.ACK, figure=feed.id, seq=seq, epoch=epoch)

    def stats(self, figure_id):
        """Server-side numbers for the stats panel, when the server is in this process."""
        stream = self.server.figures.get(figure_id) if self.server is not None else None
        if stream is None:
            return None
        s = stream.stats()
        return {k: s[k] for k in ("frames", "bytes", "seq", "encode_ms") if k in s}


class _Base(tornado.web.RequestHandler):
    def initialize(self, bridge, **kwargs):
        self.bridge = bridge

    def prepare(self):
        self.bridge.check_request(self.request)
        self._headers_common()

    def _headers_common(self):
        # The token is in the URL: no Referer may carry it anywhere.
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        message = getattr(exc, "message", None) or f"fastfig: error {status_code}"
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(message + "\n")


class PageHandler(_Base):
    def get(self, figure_id=None):
        host = self.request.host
        self.set_header("Content-Security-Policy",
                        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                        f"connect-src 'self' ws://{host}; worker-src 'self' blob:; "
                        "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
        with open(os.path.join(STATIC, "index.html"), "rb") as f:
            page = f.read()
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)


class FiguresHandler(_Base):
    def get(self):
        self.set_header("Content-Type", "application/json")
        upstream = self.bridge.upstream
        self.finish(json.dumps({"figures": self.bridge.figure_list(),
                                "title": self.bridge.title,
                                "server": bool(upstream and upstream.connected)}))


class DownloadHandler(_Base):
    async def get(self, figure_id, fmt):
        if fmt not in P.DOWNLOAD_FORMATS:
            raise Failed(404, f"fastfig: unknown format {fmt!r}")
        if self.bridge.figure_info(figure_id) is None:
            raise Failed(404, f"fastfig: no figure {figure_id!r}")
        try:
            data, mime = await asyncio.wait_for(
                asyncio.shield(self.bridge.upstream.download(figure_id, fmt)), DOWNLOAD_TIMEOUT)
        except asyncio.TimeoutError:
            raise Failed(504, f"fastfig: figure {figure_id!r} did not answer the download "
                         f"request within {DOWNLOAD_TIMEOUT:.0f} s (figures served without "
                         "the fastfig backend may not save)") from None
        except ConnectionError as e:
            raise Failed(503, f"fastfig: {e}") from None
        self.set_header("Content-Type", mime if isinstance(mime, str) and "/" in mime
                        else _CONTENT_TYPES.get(fmt, "application/octet-stream"))
        self.set_header("Content-Disposition", f'attachment; filename="figure-{figure_id}.{fmt}"')
        self.finish(data)


class NoContent(tornado.web.RequestHandler):
    def get(self):
        self.set_status(204)


class StaticHandler(tornado.web.StaticFileHandler):
    """The viewer's JavaScript and CSS: public package files, so no token (a page could
    not pass one to an ES module import anyway); the Host check still applies."""

    def initialize(self, path, bridge, **kwargs):
        super().initialize(path, **kwargs)
        self.bridge = bridge

    def prepare(self):
        host = self.request.host or ""
        name = host.rsplit(":", 1)[0]
        if self.bridge.host in ("127.0.0.1", "localhost", "::1") and name not in _LOOPBACK_NAMES:
            raise tornado.web.HTTPError(403)
        self.set_header("X-Content-Type-Options", "nosniff")

    def get_content_type(self):
        if self.absolute_path.endswith(".js"):
            return "text/javascript; charset=utf-8"
        return mimetypes.guess_type(self.absolute_path)[0] or "application/octet-stream"

    def set_extra_headers(self, path):
        self.set_header("Cache-Control", "no-cache")


class ViewerSocket(tornado.websocket.WebSocketHandler):
    """One tab watching one figure: packets out, acknowledgements and events in."""

    def initialize(self, bridge):
        self.bridge = bridge
        self.feed = None
        self.queue = None
        self.bad_messages = 0

    def prepare(self):
        # Runs before the upgrade: a refused socket gets a plain 403 with the reason.
        self.bridge.check_request(self.request)

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish((getattr(exc, "message", None) or f"fastfig: error {status_code}") + "\n")

    def check_origin(self, origin):
        return True   # checked in prepare, with the token

    def get_compression_options(self):
        return None   # packets are compressed already

    def open(self, figure_id):
        bridge = self.bridge
        self.feed = bridge.feed(figure_id)
        self.queue = ViewerQueue(self.feed, self._send_packet, bridge.max_in_flight)
        bridge.sockets.add(self)
        upstream = bridge.upstream
        self.send_text(json.dumps({
            "type": "welcome", "v": P.VERSION, "figure": figure_id,
            "info": bridge.figure_info(figure_id), "state": self.feed.state,
            "max_in_flight": bridge.max_in_flight,
            "server": bool(upstream and upstream.connected),
            "downloads": list(DOWNLOAD_FORMATS)}))
        self.feed.attach(self.queue)

    def _send_packet(self, data):
        self._write(data, True)

    def send_text(self, text):
        self._write(text, False)

    def _write(self, message, binary):
        if self.ws_connection is None or self.ws_connection.is_closing():
            return
        try:
            fut = self.write_message(message, binary=binary)
        except tornado.websocket.WebSocketClosedError:
            return
        fut.add_done_callback(_retrieve)

    def on_message(self, message):
        if isinstance(message, bytes):
            self._bad("binary messages are not expected from a viewer")
            return
        try:
            msg = json.loads(message)
            if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
                raise ValueError("not a JSON object with a type")
        except ValueError as e:
            self._bad(f"malformed message: {e}")
            return
        t = msg["type"]
        if t == "ack":
            seq, epoch = msg.get("seq"), msg.get("epoch")
            if type(seq) is not int or type(epoch) is not int:
                self._bad("ack needs integer seq and epoch")
                return
            self.queue.on_ack(seq & 0xFFFFFFFF, epoch & 0xFFFFFFFF)
            if msg.get("ok", True):
                self.bridge.forward_ack(self.feed, seq, epoch)
        elif t == "event":
            try:
                event = P.check_event(msg.get("event"))
            except P.ProtocolError as e:
                self._bad(str(e))
                return
            self.bridge.upstream.send(P.EVENT, figure=self.feed.id, event=event)
        elif t == "snapshot":
            self.queue.resync()
        elif t == "stats":
            self.send_text(json.dumps({"type": "stats", "server": self.bridge.stats(self.feed.id),
                                       "tab": {"sent": self.queue.sent,
                                               "keyframes": self.queue.keyframes_sent}}))
        else:
            self._bad(f"unknown message type {t!r}")

    def _bad(self, message):
        self.bad_messages += 1
        self.send_text(json.dumps({"type": "error", "message": message[:300]}))
        if self.bad_messages > 100:
            self.close(1008, "too many invalid messages")

    def on_close(self):
        self.bridge.sockets.discard(self)
        if self.queue is not None:
            self.queue.close()
            self.bridge.viewer_closed(self.feed)


def _retrieve(fut):
    if not fut.cancelled():
        fut.exception()   # a tab that went away is not an error
