"""The websocket bridge: the browser's way into a fastfig server (PROTOCOL.md section 3).

A tornado application on the asyncio loop it is started on. It serves the viewer page and
its JavaScript modules and, per figure, a binary websocket: frame packets go to the
browser unchanged (one websocket message per frame), credit for the frames taken and
input events come back. Towards the server the bridge is an ordinary ZeroMQ client (PROTOCOL.md section 2)
connected to its control endpoint, whether the server runs in the same process (``fastfig
demo``, ``fastfig serve``, plt.show() under the fastfig backend: same loop, loopback or ipc
sockets) or in another one: one code path, and a bridge can front any server.

One session per figure serves every tab watching it (a Mirror, transport/mirror.py); each
tab is a consumer with its own credit (transport/session.py), so a slow tab skips to the
latest image and never slows the figure or the other tabs, and the server renders only as
fast as the fastest tab takes frames.

This module is the Bridge and its lifecycle, and what it knows per figure; the pieces:

- upstream.py: the ZeroMQ side (requests; frames, state and figure lists from the server);
- handlers.py: the HTTP side and the security checks (token, Host, Origin);
- socket.py: one tab's websocket.
"""

import asyncio
import json
import logging
import secrets
import urllib.parse

import tornado.httpserver
import tornado.netutil
import tornado.web

from ..transport import protocol as P
from ..transport import security
from ..transport.loopthread import start_loop_thread
from ..transport.session import DEFAULT_CREDIT
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
    tests on a trusted machine only). credit: frames a tab may hold untaken (its window).
    curve: a security.CurveClient when the server encrypts. The toolbar's download button
    asks the figure's owner (the fastfig backend saves with savefig in any format).

    ``await bridge.start()`` on a running loop, or ``bridge.start_thread()`` from
    synchronous code (a loop of its own in a daemon thread). The port (and so ``url``)
    is known once ``bind()`` has run, which both do first.
    """

    def __init__(self, address, *, host="127.0.0.1", port=0, token=None,
                 credit=DEFAULT_CREDIT, curve=None,
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
        self.credit = credit
        self.curve = curve
        self.title = title
        if not allow_remote and host not in LOOPBACK_HOSTS:
            raise security.InsecureAddress(
                f"refusing to serve the viewer on {host!r}: anyone on the network could "
                "reach it. Use 127.0.0.1 (and an SSH tunnel), or allow_remote=True.")
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

    def watch(self, figure_id):
        """The Mirror a new tab of figure_id is served from."""
        return self.upstream.mirror(figure_id)

    def viewer_closed(self, mirror):
        if not mirror.consumers and self.upstream is not None:
            self.upstream.unwatch(mirror.id)

    def figures_changed(self):
        message = json.dumps({"type": "figures", "figures": self.figure_list()})
        for sock in list(self.sockets):
            sock.send_text(message)

    def update_state(self, mirror, state):
        try:
            state = P.check_state(state)
        except P.ProtocolError as e:
            log.warning("bridge: bad state for %s: %s", mirror.id, e)
            return
        mirror.state.update(state)
        self._tell_viewers(mirror, {"type": "state", "state": state})

    def figure_closed(self, mirror):
        self._tell_viewers(mirror, {"type": "close", "figure": mirror.id})

    def _tell_viewers(self, mirror, msg):
        message = json.dumps(msg)
        for sock in list(self.sockets):
            if sock.mirror is mirror:
                sock.send_text(message)

    def broadcast_status(self):
        connected = bool(self.upstream and self.upstream.connected)
        message = json.dumps({"type": "status", "server": connected})
        for sock in list(self.sockets):
            sock.send_text(message)

    def stats(self, figure_id):
        """Server-side numbers for the stats panel, when the server is in this process."""
        stream = self.server.figures.get(figure_id) if self.server is not None else None
        if stream is None:
            return None
        s = stream.stats()
        return {k: s[k] for k in ("frames", "bytes", "seq", "encode_ms") if k in s}

