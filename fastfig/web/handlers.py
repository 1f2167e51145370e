"""The bridge's HTTP side (PROTOCOL.md sections 3.2 and 3.3): the checks every request
passes (token, Host, Origin) and the handlers of the page, the figure list, downloads and
the viewer's static modules.

Safe by default: every page, API call and websocket needs the random token printed in the
URL; the Host header must name this server and a websocket's Origin must be this server's
own, which defeats both DNS rebinding and cross-site websockets.
"""

import asyncio
import json
import mimetypes
import os
import secrets
import urllib.parse

import tornado.web

from ..transport import protocol as P

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
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
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
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


def check_request(bridge, request):
    """Raise Refused unless the request names this server and carries the bridge's token
    (and, when it has an Origin, comes from a page of this server)."""
    host = request.host or ""
    if bridge.host in LOOPBACK_HOSTS:
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name not in _LOOPBACK_NAMES:
            raise Refused(f"fastfig: refused: the Host header {host!r} does not name this "
                          "server. Open the URL the server printed.")
    origin = request.headers.get("Origin")
    if origin is not None and not _same_origin(origin, host):
        raise Refused(f"fastfig: refused: requests from {origin!r} are not allowed; "
                      "only pages served by this fastfig server may connect.")
    if bridge.token:
        given = request.query_arguments.get("token", [b""])[-1].decode("utf-8", "replace")
        auth = request.headers.get("Authorization", "")
        if not given and auth.startswith("token "):
            given = auth[6:]
        if not secrets.compare_digest(given.encode(), bridge.token.encode()):
            raise Refused("fastfig: refused: wrong or missing token. Open the URL with "
                          "the ?token=... the server printed when it started.")


def _same_origin(origin, host):
    parsed = urllib.parse.urlsplit(origin)
    return parsed.scheme in ("http", "https") and parsed.netloc == host and bool(host)


def plain_error(handler, status_code, exc_info):
    """Send an error as one line of text for a person (a refusal says what to do)."""
    exc = (exc_info or (None, None))[1]
    message = getattr(exc, "message", None) or f"fastfig: error {status_code}"
    handler.set_header("Content-Type", "text/plain; charset=utf-8")
    handler.finish(message + "\n")


class _Base(tornado.web.RequestHandler):
    """Every page and API call: checked (token, Host, Origin), never cached, never
    leaking its URL (the token) in a Referer."""

    def initialize(self, bridge, **kwargs):
        self.bridge = bridge

    def prepare(self):
        check_request(self.bridge, self.request)
        self._headers_common()

    def _headers_common(self):
        # The token is in the URL: no Referer may carry it anywhere.
        self.set_header("Referrer-Policy", "no-referrer")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")

    def write_error(self, status_code, **kwargs):
        plain_error(self, status_code, kwargs.get("exc_info"))


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
        if self.bridge.host in LOOPBACK_HOSTS and name not in _LOOPBACK_NAMES:
            raise tornado.web.HTTPError(403)
        self.set_header("X-Content-Type-Options", "nosniff")

    def get_content_type(self):
        if self.absolute_path.endswith(".js"):
            return "text/javascript; charset=utf-8"
        return mimetypes.guess_type(self.absolute_path)[0] or "application/octet-stream"

    def set_extra_headers(self, path):
        self.set_header("Cache-Control", "no-cache")



def routes(bridge, socket_handler):
    """The bridge's URL map (PROTOCOL.md section 3.3)."""
    kw = {"bridge": bridge}
    return [
        (r"/", PageHandler, kw),
        (r"/figure/([A-Za-z0-9_.-]{1,64})", PageHandler, kw),
        (r"/api/figures", FiguresHandler, kw),
        (r"/download/([A-Za-z0-9_.-]{1,64})\.([a-z]{2,5})", DownloadHandler, kw),
        (r"/ws/([A-Za-z0-9_.-]{1,64})", socket_handler, kw),
        (r"/favicon.ico", NoContent),
        (r"/static/(.*)", StaticHandler, {"path": STATIC, "bridge": bridge}),
    ]
