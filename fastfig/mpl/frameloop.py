"""The frame loop of one figure: decides when a changed figure becomes a frame.

Changes arrive as damage (a blit's box, a full draw, or a request to draw later); the loop
publishes the figure's current image once per loop iteration, however many changes came
in, and only when a consumer would take it at once (the stream's *demand*: some consumer
holds the newest image and has credit, transport/session.py), and at most ``fps`` frames
per second. The stream calls back when demand appears, so nothing polls. While it waits
it keeps a dirty flag and the union of the damage, never a queue of images, so a slow
frontend gets the latest state, not a backlog. Code that produces frames (animation
timers) waits for the loop with ``when_idle``, so an animation watched at 30 frames/s
renders about 30 times a second, and one nobody watches does not render.

Everything here runs on the loop's thread; ``request_render`` is also safe from others.
"""

import asyncio
import logging
import threading
import time

import numpy as np

log = logging.getLogger("fastfig.frameloop")

#: More damage boxes than this in one frame are merged into their bounding box.
MAX_BOXES = 16


class FrameLoop:
    """Publishes the frames of one FigureStream.

    stream: a FigureStream (``publish``, ``demand``, ``on_demand``).
    render(): draws the figure (a full draw) and is called for ``request_render``.
    image(): the current RGBA image as an (H, W, 4) uint8 array, read without copying.
    fps: target frame rate (None: as fast as frontends take frames).
    """

    def __init__(self, stream, render, image, *, loop=None, fps=None):
        self.stream = stream
        self._render = render
        self._image = image
        self.loop = loop or asyncio.get_event_loop()
        self._thread = threading.get_ident()
        self.fps = fps
        self.frames = 0              # frames published
        self.renders = 0             # renders done for request_render
        self.dropped = 0             # changes merged into a later frame while waiting
        self.render_seconds = 0.0    # time in render() (full draws asked by request_render)
        self.publish_seconds = 0.0   # time in publish (damage, encoding, sending)
        self._render_wanted = False
        self._dirty = False
        self._boxes = []             # damage since the last frame; None: the whole image
        self._scheduled = False
        self._retry = None
        self._due = 0.0              # when the next frame may begin (fps)
        self._idle_callbacks = []
        self._closed = False
        stream.on_demand(self._on_demand)

    # -- changes in ------------------------------------------------------------------------

    def request_render(self):
        """Draw and publish the figure later (coalesced: draw_idle)."""
        if threading.get_ident() != self._thread:
            self.loop.call_soon_threadsafe(self.request_render)
            return
        if self._render_wanted or self._dirty:
            self.dropped += 1
        self._render_wanted = True
        self._schedule()

    def damaged(self, box=None):
        """The image changed inside box (x, y, w, h, top-left pixels), or everywhere
        (None): publish it at the next opportunity."""
        if self._dirty and self._boxes is None and box is not None:
            pass    # already publishing the whole image
        elif box is None:
            self._boxes = None
        else:
            if not self._dirty:
                self._boxes = []
            if self._boxes is not None:
                self._boxes.append(box)
                if len(self._boxes) > MAX_BOXES:
                    self._boxes = [_union(self._boxes)]
        self._dirty = True
        self._schedule()

    @property
    def busy(self):
        """True while a change waits to be published."""
        return self._dirty or self._render_wanted

    def when_idle(self, callback):
        """Call callback() once nothing waits to be published (now if nothing does)."""
        if not self.busy:
            callback()
        else:
            self._idle_callbacks.append(callback)

    # -- the loop ----------------------------------------------------------------------------

    def _schedule(self):
        if not self._scheduled and not self._closed:
            self._scheduled = True
            self.loop.call_soon(self._run)

    def _on_demand(self):
        # A consumer wants a frame: go now, unless the fps timer is what we wait for.
        if self.busy and self._retry is None:
            self._schedule()

    def _run(self):
        self._scheduled = False
        if self._closed:
            return
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if not self.busy:
            self._run_idle()
            return
        if not self.stream.demand:
            return   # _on_demand schedules the loop again
        wait = self._wait()
        if wait is not None:
            self._retry = self.loop.call_later(wait, self._schedule)
            return
        self._frame_begins()
        try:
            self._render_and_publish()
        except Exception:
            log.exception("rendering or publishing figure %s failed", self.stream.id)
            self._dirty = self._render_wanted = False
        self._run_idle()

    def _render_and_publish(self):
        if self._render_wanted:
            self._render_wanted = False
            self.renders += 1
            t = time.perf_counter()
            self._render()        # a full draw: marks the whole image damaged
            took = time.perf_counter() - t
            self.render_seconds += took
            self.stream.pace(took)
        if self._dirty:
            self.publish_now()

    def drain(self):
        """Render and publish what is pending now, then run the callbacks waiting for
        the loop to be idle: for a caller that holds the loop's thread and will not let
        the loop run soon (a notebook cell's loop calling flush_events). Nothing is
        published if nothing changed; the fps limit and demand are the caller's to
        respect."""
        if self._closed:
            return
        if self.busy:
            self._frame_begins()
            self._render_and_publish()
        self._run_idle()

    def publish_now(self):
        """Publish the current image with the damage collected so far."""
        boxes, self._boxes, self._dirty = self._boxes, [], False
        if boxes is not None and not boxes:
            return None
        t = time.perf_counter()
        image = self._image()
        frame = self.stream.publish(image, None if boxes is None else boxes)
        self.publish_seconds += time.perf_counter() - t
        if frame is not None and not frame.empty:
            self.frames += 1
        return frame

    def _wait(self):
        """Seconds to wait for the fps limit before the next frame, or None to go now."""
        if self.fps:
            left = self._due - time.monotonic()
            if left > 0:
                return left
        return None

    def _frame_begins(self):
        # fps is a cadence: the next frame is due one period after this one was due,
        # not after this one's render and publish ended, nor after the loop woke up late
        # (each stretched every period: 60 fps gave 50). A late frame does not make the
        # next one follow at once (half a period at least), and one later than a whole
        # period starts the cadence anew.
        if self.fps:
            now = time.monotonic()
            period = 1.0 / self.fps
            base = self._due if now - self._due < period else now
            self._due = max(base + period, now + period / 2)

    def _run_idle(self):
        while self._idle_callbacks and not self.busy:
            callbacks, self._idle_callbacks = self._idle_callbacks, []
            for cb in callbacks:
                try:
                    cb()
                except Exception:
                    log.exception("frame loop callback failed")

    def stats(self):
        """frames, renders, dropped, and mean milliseconds per render and per publish."""
        return {"frames": self.frames, "renders": self.renders, "dropped": self.dropped,
                "render_ms": 1000 * self.render_seconds / max(self.renders, 1),
                "publish_ms": 1000 * self.publish_seconds / max(self.frames, 1)}

    def close(self):
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        self._idle_callbacks.clear()


def _union(boxes):
    b = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    x0, y0 = b[:, 0].min(), b[:, 1].min()
    x1, y1 = (b[:, 0] + b[:, 2]).max(), (b[:, 1] + b[:, 3]).max()
    return (int(x0), int(y0), int(x1 - x0), int(y1 - y0))


def display_box(bbox, height):
    """A matplotlib display-space Bbox (origin bottom left) as (x, y, w, h) in pixels
    from the top left, rounded outward."""
    x0, y0, x1, y1 = bbox.extents
    left, right = int(np.floor(min(x0, x1))), int(np.ceil(max(x0, x1)))
    top, bottom = int(np.floor(height - max(y0, y1))), int(np.ceil(height - min(y0, y1)))
    return (left, top, max(right - left, 0), max(bottom - top, 0))
