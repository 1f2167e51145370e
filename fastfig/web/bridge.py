"""The websocket bridge: the browser's way into a fastfig server (PROTOCOL.md section 3).

A tornado application on the asyncio loop it is started on. It serves the viewer page and
its JavaScript modules and, per figure, a binary websocket: frame packets go to the
browser unchanged (one websocket message per frame), acknowledgements and input events
come back. Towards the server the bridge is an ordinary ZeroMQ client (PROTOCOL.md section 2)
connected to its control endpoint, whether the server runs in the same process (``fastfig
demo``, ``fastfig serve``, plt.show() under the fastfig backend: same loop, loopback or ipc
sockets) or in another one: one code path, and a bridge can front any server.

One subscription per figure serves every tab watching it; each tab has its own flow
control (fastfig/web/feed.py), so a slow tab skips to the latest image and never slows the
figure or the other tabs.

This module is the Bridge and its lifecycle, and what it knows per figure; the pieces:

- upstream.py: the ZeroMQ side (requests, frames and state from the server);
- handlers.py: the HTTP side and the security checks (token, Host, Origin);
- socket.py: one tab's websocket.
"""

import asyncio
import json
import logging
import secrets
import time
import urllib.parse

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..transport import protocol as P
from ..transport import security
from ..transport.loopthread import start_loop_thread
from .feed import MAX_IN_FLIGHT, FigureFeed
from .handlers import DOWNLOAD_FORMATS, LOOPBACK_HOSTS, check_request, routes
from .socket import ViewerSocket
from .upstream import Upstream

log = logging.getLogger("fastfig.bridge")

#: Messages from a browser are small JSON objects; anything bigger is refused.
MAX_MESSAGE = 64 * 1024



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
        if not allow_remote and host not in LOOPBACK_HOSTS:
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
        return routes(self, ViewerSocket)

    # -- checks ---------------------------------------------------------------------

    def check_request(self, request):
        """Raise handlers.Refused unless the request names this server and carries the
        token (and, when it has an Origin, comes from a page of this server)."""
        check_request(self, request)

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

