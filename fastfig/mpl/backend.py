"""The fastfig matplotlib backend: ``matplotlib.use("fastfig")``, ``MPLBACKEND=fastfig``
or ``%matplotlib fastfig``.

The canvas renders with Agg and publishes the Agg buffer (read without copying) through
the figure's FrameLoop: ``draw()`` publishes the whole image (damage detection finds what
changed), ``draw_idle()`` is coalesced into one draw per loop iteration, and blitting
works: ``blit(bbox)`` and ``restore_region`` hand their boxes to the encoder as damage
hints, and all blits of one loop iteration (one animation step) make one frame. Timers
run on fastfig's asyncio loop and wait for the frame loop, so animations render no frame
that frontends would not take. Input events arrive from the server and become matplotlib
events on the same thread (events.py); the toolbar's feedback goes back as figure state.
"""

import logging
import weakref

import numpy as np
from matplotlib import _api, backend_bases, is_interactive
from matplotlib.backend_bases import FigureManagerBase, TimerBase, _Backend
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.transforms import Bbox

from . import animation
from . import events
from . import runtime
from .frameloop import FrameLoop, display_box
from .toolbar import ACTIONS, CURSORS, MIME_TYPES, NavigationToolbarFastfig, figure_bytes
from ..transport import protocol as P

log = logging.getLogger("fastfig.backend")


class TimerAsyncio(TimerBase):
    """A matplotlib timer on fastfig's loop. It keeps a fixed rate (a late tick does not
    shift the ones after it, and a loop that falls behind does not burst to catch up),
    and when its canvas is being served a tick waits until the previous frame went out."""

    def __init__(self, *args, **kwargs):
        self._handle = None
        self._due = None
        self._generation = 0
        self._canvas_ref = None
        # Once a timeline plays this timer's animation (animation.take_over), start and
        # stop play and pause it: Animation.pause()/resume(), event_source.stop() and a
        # blitting animation's stop/start around a resize keep meaning what they say.
        self.timeline = None
        super().__init__(*args, **kwargs)

    def _timer_start(self):
        self._cancel()
        rt = runtime.get()
        rt.ensure_loop()
        if self.timeline is not None:
            rt.call_soon(self.timeline.timer_started)
            return
        rt.call_soon(self._arm, self._generation, True)

    def _timer_stop(self):
        self._cancel()
        if self.timeline is not None:
            runtime.get().call_soon(self.timeline.timer_stopped)

    def _cancel(self):
        self._generation += 1
        handle, self._handle = self._handle, None
        if handle is not None:
            rt = runtime.get()
            if rt.in_loop_thread() or rt.mode == "script":
                handle.cancel()
            else:
                rt.loop.call_soon_threadsafe(handle.cancel)

    def _timer_set_interval(self):
        if self._handle is not None:
            self._timer_start()

    def _arm(self, generation, first=False):
        if generation != self._generation:
            return
        loop = runtime.get().loop
        now = loop.time()
        period = max(self.interval, 0) / 1000
        if first or self._due is None:
            self._due = now + period
        else:
            self._due = max(self._due + period, now)
        self._handle = loop.call_at(self._due, self._tick, generation)

    def _tick(self, generation):
        self._handle = None
        if generation != self._generation:
            return
        canvas = self._canvas_ref() if self._canvas_ref is not None else None
        frames = getattr(canvas, "_frames", None)
        if frames is not None and animation.take_over(canvas, self):
            return   # a FuncAnimation on a served canvas: its timeline plays it now
        if frames is not None and frames.busy:
            frames.when_idle(lambda: self._fire(generation))
        else:
            self._fire(generation)

    def _fire(self, generation):
        if generation != self._generation:
            return
        self._on_timer()
        if not self._single and generation == self._generation and self.callbacks:
            self._arm(generation)


class FigureCanvasFastfig(FigureCanvasAgg):
    """An Agg canvas whose frames stream to fastfig frontends."""

    manager_class = _api.classproperty(lambda cls: FigureManagerFastfig)
    _timer_cls = TimerAsyncio
    supports_blit = True
    # None: pyplot refuses a backend naming a framework on a machine without a display.
    # IPython's event loop integration is turned on by runtime.integrate_ipython instead.
    required_interactive_framework = None

    #: Target frame rate of figures on this canvas class (None: as fast as frontends take).
    fps = None

    def __init__(self, figure=None):
        super().__init__(figure)
        self._stream = None
        self._frames = None
        self._state = {}
        self._state_pending = {}
        self._pointer = events.PointerState()
        self._timeline = None       # the Player of the animation on this canvas, if any

    # -- serving --------------------------------------------------------------------------

    @property
    def stream(self):
        """The FigureStream while the figure is served, else None."""
        return self._stream

    @property
    def frame_loop(self):
        """The FrameLoop publishing the figure while it is served, else None."""
        return self._frames

    def serve(self, id=None, title=None, fps=None):
        """Publish this figure on the fastfig server (started on first use); idempotent.
        Returns the FigureStream."""
        rt = runtime.get()
        rt.ensure_server()
        stream = rt.call(self._serve, id, title, fps)
        if rt.mode in ("prompt", "thread"):
            rt.announce_once()   # at a prompt the figure is live from now on
        if rt.notebook:
            rt.notebook.show(self)   # in a Jupyter kernel: in the cell's output
        return stream

    def _serve(self, id, title, fps):
        if fps is not None:
            self.fps = fps
        if self._stream is not None:
            return self._stream
        rt = runtime.get()
        server = rt.server
        if id is None or str(id) in server.figures or not P.FIGURE_ID.match(str(id)):
            id = None
        if title is None:
            title = self.figure.get_label() or None   # None: "Figure <id>"
        FigureCanvasAgg.draw(self)
        height, width = self._image().shape[:2]
        stream = server.add_figure(id, width, height, title=title)
        if self.manager is None:
            # A figure from outside pyplot gets what pyplot would give it: the toolbar
            # and the key and mouse shortcuts of a manager (not registered with pyplot).
            FigureManagerFastfig(self, int(stream.id) if stream.id.isdigit() else 0)
        self._state["title"] = stream.state["title"]
        self._stream = stream
        fps = self.fps if self.fps is not None else rt.fps
        self._frames = FrameLoop(stream, self.draw, self._image, loop=rt.loop, fps=fps)
        stream.on_event(self._on_event)
        if self._state:
            stream.set_state(**self._state)
        self._frames.damaged(None)
        self._frames.publish_now()
        rt.figure_served(self)
        return stream

    def stop_serving(self):
        """End this figure's stream (subscribers are told it is closed) and free it; the
        figure can be served again later."""
        rt = runtime.get()
        if self._stream is None or rt.loop is None:
            return
        rt.call(self._stop_serving)

    def _stop_serving(self):
        stream, frames = self._stream, self._frames
        self._stream = self._frames = None
        if frames is not None:
            frames.close()
        if stream is not None:
            stream.close()
        runtime.get().figure_closed(self)

    def _image(self):
        return np.asarray(self.get_renderer().buffer_rgba())

    def send_state(self, **fields):
        """Figure state for frontends (title, cursor, message, rubberband, ...): sent now
        when served, kept for the next subscriber either way."""
        changed = {k: v for k, v in fields.items() if self._state.get(k, ...) != v}
        if not changed:
            return
        self._state.update(changed)
        if self._stream is not None:
            # One state message per loop iteration however many fields changed in it
            # (a pointer move changes the message and the rubberband): fewer, fuller
            # messages, and a burst of them is less likely to meet the PUB high-water mark.
            if not self._state_pending:
                runtime.get().loop.call_soon_threadsafe(self._flush_state)
            self._state_pending.update(changed)

    def _flush_state(self):
        pending, self._state_pending = self._state_pending, {}
        if pending and self._stream is not None:
            self._stream.set_state(**pending)

    # -- drawing ----------------------------------------------------------------------------

    def draw(self):
        super().draw()
        if self._frames is not None:
            self._frames.damaged(None)

    def draw_idle(self, *args, **kwargs):
        if self._frames is not None:
            self._frames.request_render()
            if self._timeline is not None:
                self._timeline.source.figure_changed()

    def blit(self, bbox=None):
        if self._frames is None:
            return
        if bbox is None:
            self._frames.damaged(None)
        else:
            self._frames.damaged(display_box(bbox, self.get_renderer().height))

    def copy_from_bbox(self, bbox):
        # Agg's region drops the column and row that bbox covers only partly at its
        # right and top edges, yet an artist clipped to bbox inks them: restoring such a
        # region never clears them, and a blitting animation leaves a trail there that
        # depends on the frames drawn before. Rounded outward, frame i is the same image
        # however it was reached (the timeline draws frames in any order).
        x0, y0, x1, y1 = bbox.extents
        return super().copy_from_bbox(Bbox.from_extents(
            np.floor(min(x0, x1)), np.floor(min(y0, y1)),
            np.ceil(max(x0, x1)), np.ceil(max(y0, y1))))

    def restore_region(self, region, bbox=None, xy=None):
        super().restore_region(region, bbox, xy)
        if self._frames is None:
            return
        if bbox is None and xy is None:
            x0, y0, x1, y1 = region.get_extents()   # pixels from the top left
            self._frames.damaged((x0, y0, x1 - x0, y1 - y0))
        else:
            self._frames.damaged(None)

    def new_timer(self, *args, **kwargs):
        timer = super().new_timer(*args, **kwargs)
        timer._canvas_ref = weakref.ref(self)
        return timer

    def flush_events(self):
        rt = runtime.get()
        if rt.notebook:
            rt.notebook.flush_events(self)
        elif rt.loop is not None and rt.can_block():
            rt.loop.run_until_complete(_yield())

    def start_event_loop(self, timeout=0):
        rt = runtime.get()
        if rt.notebook:
            return rt.notebook.start_event_loop(self, timeout)
        rt.ensure_loop()
        rt.run(timeout if timeout and timeout > 0 else None)

    def stop_event_loop(self):
        runtime.get().stop()

    def set_cursor(self, cursor):
        self.send_state(cursor=CURSORS.get(cursor, "default"))

    # -- input -------------------------------------------------------------------------------

    def _on_event(self, event):
        try:
            self.handle_event(event, sender=self._stream.sender if self._stream else None)
        except Exception:
            log.exception("handling %s on figure %s failed", event.get("type"),
                          self._stream.id if self._stream else "?")

    def handle_event(self, event, sender=None):
        """Apply one protocol input event (already validated) to this figure."""
        etype = event["type"]
        if etype == "resize":
            if events.resize(self, event["width"], event["height"],
                                event.get("device_pixel_ratio", 1)):
                self.draw_idle()
        elif etype == "toolbar":
            self._toolbar_action(event, sender)
        elif etype == "timeline":
            animation.timeline_event(self, event, sender)
        else:
            events.dispatch(self, event, self._pointer)

    def _toolbar_action(self, event, sender):
        name = event["name"]
        if name == "download":
            fmt = event.get("format", "png")
            data = figure_bytes(self.figure, fmt)
            if self._stream is not None:
                self._stream.reply(sender, P.DOWNLOAD, data, format=fmt,
                                   mime=MIME_TYPES.get(fmt, "application/octet-stream"))
            self.draw_idle()   # savefig may have drawn at another size; show the figure
        elif name == "close":
            self.close_figure()
        elif name in ACTIONS and self.toolbar is not None:
            getattr(self.toolbar, name)()

    def close_figure(self):
        """Close the figure as closing its window would (a viewer's close button): a
        pyplot figure is destroyed through pyplot (a blocking show() returns once all
        are), any other stops being served."""
        from matplotlib._pylab_helpers import Gcf
        if self.manager is not None and Gcf.figs.get(self.manager.num) is self.manager:
            Gcf.destroy(self.manager)          # what matplotlib's 'q' key does
        elif self.manager is not None:
            self.manager.destroy()


async def _yield():
    pass


class FigureManagerFastfig(FigureManagerBase):
    """A pyplot figure served by fastfig: shown means published under its number."""

    _toolbar2_class = NavigationToolbarFastfig

    def __init__(self, canvas, num):
        super().__init__(canvas, num)
        # At an interactive prompt a new pyplot figure shows at once, as a window would.
        if is_interactive():
            rt = runtime.get()
            rt.ensure_loop()
            if rt.mode in ("prompt", "thread"):
                self.show()

    def show(self):
        self.canvas.serve(id=str(self.num), title=self.get_window_title())

    def set_window_title(self, title):
        super().set_window_title(title)
        self.canvas.send_state(title=title)

    def resize(self, w, h):
        fig = self.canvas.figure
        fig.set_size_inches(w / fig.dpi, h / fig.dpi, forward=False)
        self.canvas.draw_idle()

    def destroy(self):
        events.close(self.canvas)
        self.canvas.stop_serving()

    @classmethod
    def start_main_loop(cls):
        """A blocking plt.show(): serve until every figure is closed (the viewer's
        close, the 'q' key, plt.close), as a desktop backend's show() returns once its
        windows are closed; Ctrl-C raises KeyboardInterrupt, SIGTERM SystemExit(0)."""
        runtime.get().run(until_closed=True)


@_Backend.export
class _BackendFastfig(_Backend):
    backend_version = "fastfig"
    FigureCanvas = FigureCanvasFastfig
    FigureManager = FigureManagerFastfig
    mainloop = FigureManagerFastfig.start_main_loop


runtime.integrate_ipython()   # in IPython's terminal, the prompt runs fastfig's loop

runtime.get().notebook   # in a Jupyter kernel, figures show in the notebook from now on

__all__ = ["FigureCanvasFastfig", "FigureManagerFastfig", "NavigationToolbarFastfig",
           "TimerAsyncio", "backend_bases"]
