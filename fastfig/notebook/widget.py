"""The notebook widget of one served figure (anywidget; the page side is widget.js).

Frames go to the page as custom comm messages whose one binary buffer is the frame packet
(base64 in the message only for a page that said its frontend drops buffers), so they are
never widget state: nothing is synced back or saved with the notebook. Figure state
(title, cursor, message, navigation mode, rubberband) is small and goes in the ``state``
trait. The page's messages: join, leave, credit, resync, event (validated like the ZeroMQ
protocol's), download, base64.
"""

import base64
import functools
import json
import logging
import re
import secrets
import time
import weakref
from pathlib import Path

import anywidget
import traitlets

from . import flow
from ..mpl.toolbar import MIME_TYPES, figure_bytes
from ..transport import protocol as P

log = logging.getLogger("fastfig.notebook")

_HERE = Path(__file__).parent
_STATIC = _HERE.parent / "web" / "static"
#: A timeline's moving index waits this long (s) for a frame message to carry it before
#: it goes alone, and the state trait takes it at least every TRAIT_EVERY seconds.
STATE_DELAY = 0.05
TRAIT_EVERY = 1.0
#: The viewer's modules the widget imports, shipped inside its one ES module.
SHARED_MODULES = ("packet.js", "events.js", "display.js", "timeline.js", "dom.js")


_IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*)(["'])\./([\w.-]+\.js)\1""")


@functools.lru_cache(maxsize=None)
def esm():
    """widget.js with the sources of the viewer's modules it imports (and theirs) put in,
    verbatim; the page loads each as a module of its own (widget.js: moduleUrl)."""
    sources = {}
    todo = list(SHARED_MODULES)
    while todo:
        name = todo.pop()
        if name not in sources:
            sources[name] = (_STATIC / name).read_text(encoding="utf-8")
            todo.extend(m.group(2) for m in _IMPORT.finditer(sources[name]))
    text = (_HERE / "widget.js").read_text(encoding="utf-8")
    return text.replace("__FASTFIG_SOURCES__", json.dumps(sources), 1)


CSS = (_HERE / "widget.css").read_text(encoding="utf-8")


class FigureWidget(anywidget.AnyWidget):
    """A live view of a served figure (its canvas must be a FigureCanvasFastfig)."""

    _esm = traitlets.Unicode(esm()).tag(sync=True)
    _css = traitlets.Unicode(CSS).tag(sync=True)
    uid = traitlets.Unicode().tag(sync=True)
    figure_id = traitlets.Unicode().tag(sync=True)
    state = traitlets.Dict().tag(sync=True)
    formats = traitlets.List(traitlets.Unicode()).tag(sync=True)
    device_pixel_ratio = traitlets.Float(1.0).tag(sync=True)

    def __init__(self, canvas, **kwargs):
        stream = canvas.stream
        if stream is None:
            raise ValueError("the figure is not served: call canvas.serve() first")
        formats = sorted(canvas.get_supported_filetypes())
        if "png" in formats:
            formats.remove("png")
            formats.insert(0, "png")
        super().__init__(uid=secrets.token_hex(8), figure_id=stream.id,
                         state=dict(stream.state), formats=formats,
                         device_pixel_ratio=float(canvas.device_pixel_ratio), **kwargs)
        self.canvas = canvas
        self.stream = stream
        self.base64 = False
        self.frames_sent = 0
        self._riding = {}            # state changes for the next frame message to carry
        self._trait_behind = None    # the timeline state the trait does not hold yet
        self._trait_at = 0.0
        self._state_timer = None
        from ..mpl import runtime
        rt = runtime.get()
        self.flow = flow.ViewFlow(stream, self._send_packet, rt.loop)
        self.page_messages = flow.PageMessages(self._handle_logged, rt.loop, rt.thread_id)
        frames = canvas.frame_loop
        if frames is not None and frames.fps is None:
            # Frames rendered back to back when credit returns travel together and land
            # in one display frame; spaced at the display's rate, each can be seen.
            frames.fps = flow.DISPLAY_FPS
        stream.on_state(_weak(self._figure_state_changed))
        self.on_msg(self._on_page)

    # -- kernel -> page -----------------------------------------------------------------

    def _send_packet(self, packet):
        if self.comm is None:
            return
        self.frames_sent += 1
        msg = {"type": "frame"}
        if self._riding:
            msg["state"], self._riding = self._riding, {}
        if self.base64:
            self.send({**msg, "b64": base64.b64encode(packet).decode("ascii")})
        else:
            self.send(msg, [packet])

    def _figure_state_changed(self, fields):
        """Figure state changed: synced to the pages at once, except a playing
        timeline's new index, which rides on the next frame message (a state message of
        its own per frame would double the messages the page handles)."""
        if self.comm is None:
            return
        timeline = fields.get("timeline")
        if set(fields) == {"timeline"} and self._only_index_moved(timeline):
            self._riding["timeline"] = self._trait_behind = timeline
            if self._state_timer is None:
                self._state_timer = self.flow.loop.call_later(STATE_DELAY, self._state_later)
            return
        self._sync_state(fields)
        ratio = float(self.canvas.device_pixel_ratio)
        if ratio != self.device_pixel_ratio:
            self.device_pixel_ratio = ratio

    def _only_index_moved(self, timeline):
        old = self._trait_behind or self.state.get("timeline")
        if not isinstance(old, dict) or not isinstance(timeline, dict):
            return False
        return all(timeline.get(k) == v for k, v in old.items() if k not in ("index", "cached"))

    def _state_later(self):
        # The trait (what a view shown anew starts from) follows the timeline that rode
        # on frames at most every TRAIT_EVERY seconds; a change no frame carried within
        # STATE_DELAY goes as the trait then.
        self._state_timer = None
        if self._trait_behind is None or self.comm is None:
            return
        wait = TRAIT_EVERY - (time.monotonic() - self._trait_at)
        if self._riding or wait <= 0:
            self._sync_state({})
        else:
            self._state_timer = self.flow.loop.call_later(wait, self._state_later)

    def _sync_state(self, fields):
        if self._state_timer is not None:
            self._state_timer.cancel()
            self._state_timer = None
        state = dict(self.state)
        if self._trait_behind is not None:
            state["timeline"] = self._trait_behind
        state.update(fields)
        self._riding = {}
        self._trait_behind = None
        self._trait_at = time.monotonic()
        if state != self.state:
            self.state = state

    # -- page -> kernel -----------------------------------------------------------------

    def _on_page(self, _widget, msg, buffers):
        # On a kernel subshell's thread where the page's comm goes over one (flow.py).
        self.page_messages.receive(msg)

    def _handle_logged(self, msg):
        try:
            self._handle(msg)
        except P.ProtocolError as e:
            log.warning("figure %s: %s", self.stream.id, e)
        except Exception:
            log.exception("figure %s: handling %r failed", self.stream.id, msg)

    def _handle(self, msg):
        if not isinstance(msg, dict):
            raise P.ProtocolError("a page message is a JSON object")
        kind = msg.get("type")
        if kind == "credit":
            n = msg.get("n")
            if not isinstance(n, int) or not 0 < n <= 1024:
                raise P.ProtocolError(f"bad credit {n!r}")
            seq, epoch = msg.get("seq"), msg.get("epoch")
            if not (isinstance(seq, int) and isinstance(epoch, int)):
                seq = epoch = None
            self.flow.credit(n, msg.get("instance"), seq, epoch)
        elif kind == "join":
            self.flow.join(msg.get("instance"))
        elif kind == "leave":
            self.flow.leave(msg.get("instance"))
        elif kind == "resync":
            self.flow.resync()
        elif kind == "event":
            event = P.check_event(msg.get("event"))
            self.canvas.handle_event(event)
            if event["type"] == "resize":
                self._figure_state_changed({})
        elif kind == "download":
            self._download(msg.get("format"))
        elif kind == "base64":
            self.base64 = True
            self.flow.resync()
        else:
            raise P.ProtocolError(f"unknown page message {kind!r}")

    def _download(self, fmt):
        if fmt not in self.formats:
            self.send({"type": "download", "format": str(fmt)[:16],
                       "error": f"cannot save as {fmt!r}"})
            return
        try:
            data = figure_bytes(self.canvas.figure, fmt)
        except Exception as e:
            self.send({"type": "download", "format": fmt, "error": str(e)[:300]})
            return
        finally:
            self.canvas.draw_idle()   # savefig may have drawn at another size
        reply = {"type": "download", "format": fmt, "name": f"figure-{self.stream.id}",
                 "mime": MIME_TYPES.get(fmt, "application/octet-stream")}
        if self.base64:
            self.send({**reply, "b64": base64.b64encode(data).decode("ascii")})
        else:
            self.send(reply, [data])

    # -- lifecycle ------------------------------------------------------------------------

    def figure_closed(self):
        """The figure is no longer served: tell the pages, free everything."""
        if self.comm is not None:
            self.send({"type": "closed"})
        self.close()

    def close(self):
        if self.flow is not None:
            self.flow.close()
        if getattr(self, "_state_timer", None) is not None:
            self._state_timer.cancel()
            self._state_timer = None
        layout = getattr(self, "layout", None)   # DOMWidget's own child widget
        super().close()
        if layout is not None:
            layout.close()


def _weak(method):
    """A handler calling method while its object lives (stream handlers are never
    removed, and must not keep a closed widget alive)."""
    ref = weakref.WeakMethod(method)

    def call(*args):
        m = ref()
        if m is not None:
            m(*args)
    return call
