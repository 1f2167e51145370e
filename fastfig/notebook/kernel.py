"""fastfig inside a Jupyter kernel: every shown figure becomes a FigureWidget in the cell's
output, with an image/png of it kept current under the output's display_id (a saved
notebook shows the figure where no kernel runs).

The runtime asks ``frontend()`` once; in an IPython kernel with anywidget installed it
gets a NotebookFrontend, which the backend calls when a figure is shown
(``show(canvas)``) and when a running cell hands control to the GUI
(``flush_events``/``start_event_loop``: plt.pause, canvas.flush_events). Everything runs
on the kernel's main thread, on its asyncio loop (runtime mode "host").

Which figures appear, once per cell each: figures shown (plt.show, fastfig.show, the
first plt.pause) that were never shown before; figures displayed explicitly
(``display(fig)`` or a figure as the cell's last expression), again each time; and, with
pyplot in interactive mode (``%matplotlib fastfig``), pyplot figures a cell created and
did not show, at its end, as the inline backend does.
"""

import logging
import time
import uuid
import weakref

log = logging.getLogger("fastfig.notebook")

#: The saved image/png follows the figure: after it was still for QUIET seconds, and at
#: least every MAX_AGE seconds while it keeps changing (each refresh re-renders the
#: output in the page, so not more often).
QUIET = 1.0
MAX_AGE = 10.0
#: How often the kernel looks whether an image/png is due (only while a figure changed).
PNG_POLL = 0.5


def frontend():
    """A NotebookFrontend when running in a Jupyter kernel that can show widgets, else None."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    if ip is None or getattr(ip, "kernel", None) is None:
        return None        # a terminal IPython or a script: fastfig's viewer as before
    try:
        import anywidget  # noqa: F401
    except ImportError:
        log.warning("fastfig: install fastfig[notebook] to see figures in the notebook")
        return None
    return NotebookFrontend(ip)


class _Shown:
    """One figure shown in the notebook: its widget and the outputs that show it."""

    __slots__ = ("widget", "display_ids", "png_seq", "png_at", "changed_at", "seq", "cell",
                 "by_caller")

    def __init__(self, widget, cell, by_caller=False):
        self.widget = widget
        self.by_caller = by_caller  # fastfig.widget(): displayed where its caller puts it
        self.display_ids = []
        self.png_seq = None         # (epoch, seq) of the image in the outputs' image/png
        self.png_at = 0.0
        self.changed_at = 0.0
        self.seq = None
        self.cell = cell


class NotebookFrontend:
    def __init__(self, ip):
        self.ip = ip
        self.shown = weakref.WeakKeyDictionary()   # canvas -> _Shown
        self.executing = False
        self.this_cell = set()      # ids of canvases shown in the running cell
        self.cell_id = None
        self._png_timer = None
        ip.events.register("pre_run_cell", self._pre_run_cell)
        ip.events.register("post_run_cell", self._post_run_cell)
        from matplotlib.figure import Figure
        ip.display_formatter.ipython_display_formatter.for_type(Figure, self._display_figure)

    # -- the backend's hooks -------------------------------------------------------------

    def show(self, canvas, explicit=False):
        """canvas is served: put it in the running cell's output unless it is there
        already, or (explicit=False) was shown in an earlier cell."""
        if id(canvas) in self.this_cell:
            return
        shown = self.shown.get(canvas)
        if shown is not None and not explicit and (shown.display_ids or shown.by_caller):
            return
        from IPython.display import display
        shown = self._live(canvas)
        display_id = uuid.uuid4().hex
        shown.display_ids.append(display_id)
        self.this_cell.add(id(canvas))
        display(self._bundle(canvas, shown, mark=True), raw=True,
                display_id=display_id, metadata=self._metadata(canvas))
        self._arm_png_timer()

    def leave_out(self, canvas):
        """fastfig.widget() is about to serve canvas: keep it out of this cell's output
        (its caller displays the widget)."""
        self.this_cell.add(id(canvas))

    def widget_for(self, canvas):
        """The widget for fastfig.widget() to return: the figure's own if it is shown
        already, else a new one that this frontend feeds (a running cell's loop,
        flush_events) but does not display unless asked (plt.show(), ``fig``)."""
        return self._live(canvas, by_caller=True).widget

    def _live(self, canvas, by_caller=False):
        """canvas's _Shown with a live widget: the one it has, or a new one (the figure's
        close then forgets it)."""
        shown = self.shown.get(canvas)
        if shown is None or shown.widget.comm is None:
            from .widget import FigureWidget
            shown = _Shown(FigureWidget(canvas), self.cell_id, by_caller)
            self.shown[canvas] = shown
            canvas.stream.on_close(lambda ref=weakref.ref(canvas): self._closed(ref()))
        return shown

    def flush_events(self, canvas):
        """A running cell hands control over (canvas.flush_events, plt.pause): show the
        figure if needed and send its pending change now, within the busy budget."""
        if canvas.stream is None:
            return
        if canvas not in self.shown:
            self.show(canvas)   # a figure being animated is meant to be seen
        shown = self.shown.get(canvas)
        frames = canvas.frame_loop
        if shown is None or frames is None or shown.widget.flow is None:
            return
        if self.executing:
            # What the page said meanwhile (credit, input) where its comm goes over a
            # subshell; then the pending change, which the loop would publish after the
            # cell, within the page's credit or the busy budget.
            shown.widget.page_messages.take()
            shown.widget.flow.busy_frame(frames.drain)
        self._changed(canvas, shown)

    def start_event_loop(self, canvas, timeout):
        """plt.pause(timeout) in a cell: the figure's pending change goes out, then the
        cell sleeps out the rest of the interval."""
        end = time.monotonic() + (timeout or 0)
        self.flush_events(canvas)
        left = end - time.monotonic()
        if left > 0:
            time.sleep(left)

    # -- IPython ---------------------------------------------------------------------------

    def _display_figure(self, fig):
        from ..mpl.api import canvas_of
        from ..mpl.backend import FigureCanvasFastfig
        if not (isinstance(fig.canvas, FigureCanvasFastfig) or _fastfig_backend()):
            # Another backend's figure (inline, ipympl): displayed as that backend does.
            formatter = self.ip.display_formatter.ipython_display_formatter
            own = formatter.pop(type(fig), None)
            try:
                from IPython.display import display
                display(fig)
            finally:
                if own is not None:
                    formatter.for_type(type(fig), own)
            return
        canvas = canvas_of(fig)
        canvas.serve()
        self.show(canvas, explicit=True)

    def _pre_run_cell(self, info=None):
        self.executing = True
        self.this_cell = set()
        self.cell_id = getattr(info, "cell_id", None)
        if self.cell_id is not None:
            # The cell runs again: the figures its last run made are done with (their
            # outputs are being cleared); free them, as closing their windows would.
            for canvas, shown in list(self.shown.items()):
                if shown.cell == self.cell_id:
                    _close_figure(canvas)

    def _post_run_cell(self, result=None):
        self.executing = False
        import matplotlib
        if matplotlib.is_interactive() and _fastfig_backend():
            from matplotlib import _pylab_helpers
            for manager in _pylab_helpers.Gcf.get_all_fig_managers():
                canvas = manager.canvas
                if canvas not in self.shown and canvas.figure.axes or \
                        canvas in self.shown and not self.shown[canvas].display_ids:
                    manager.show()
        for canvas, shown in list(self.shown.items()):
            # What pages said while the cell ran (a new view's join) is answered before
            # the cell's reply goes out, not after: its first image comes that much sooner.
            shown.widget.page_messages.take()
            if id(canvas) in self.this_cell:
                self._changed(canvas, shown)
                self._refresh_png(canvas, shown, force=True)
        self.this_cell = set()

    # -- the saved image ----------------------------------------------------------------------

    def _bundle(self, canvas, shown, mark=False):
        bundle = shown.widget._repr_mimebundle_()
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        bundle = dict(bundle or {})
        bundle["text/plain"] = f"<fastfig figure {canvas.stream.id}>"
        bundle["image/png"] = _png_b64(canvas)
        if mark:
            shown.png_seq = (canvas.stream.epoch, canvas.stream.seq)
            shown.png_at = time.monotonic()
        return bundle

    @staticmethod
    def _metadata(canvas):
        ratio = canvas.device_pixel_ratio or 1
        if ratio == 1:
            return None
        w, h = canvas.get_width_height(physical=True)
        return {"image/png": {"width": round(w / ratio), "height": round(h / ratio)}}

    def _changed(self, canvas, shown):
        """Note the figure's newest image (its image/png is due once it differs)."""
        stream = canvas.stream
        if stream is not None and (stream.epoch, stream.seq) != shown.seq:
            shown.seq = (stream.epoch, stream.seq)
            shown.changed_at = time.monotonic()

    def _arm_png_timer(self):
        # A cheap look every PNG_POLL seconds while any figure is shown; none after.
        if self._png_timer is None and self.shown:
            from ..mpl import runtime
            loop = runtime.get().loop
            if loop is not None:
                self._png_timer = loop.call_later(PNG_POLL, self._png_tick)

    def _png_tick(self):
        self._png_timer = None
        for canvas, shown in list(self.shown.items()):
            self._changed(canvas, shown)
            self._refresh_png(canvas, shown)
        self._arm_png_timer()

    def _png_timer_cancel(self):
        if self._png_timer is not None:
            self._png_timer.cancel()
            self._png_timer = None

    def _refresh_png(self, canvas, shown, force=False):
        """Update the outputs' image/png if the figure changed and it is due. True if
        nothing is left to do."""
        if canvas.stream is None or not shown.display_ids:
            return True
        if shown.png_seq == shown.seq:
            return True
        now = time.monotonic()
        if not force and now - shown.changed_at < QUIET and now - shown.png_at < MAX_AGE:
            return False
        if self.executing and not force:
            return False
        from IPython.display import update_display
        bundle = self._bundle(canvas, shown, mark=True)
        for display_id in shown.display_ids:
            update_display(bundle, raw=True, display_id=display_id,
                           metadata=self._metadata(canvas))
        return True

    def refresh(self, fig):
        """Update the saved image/png of fig's outputs now."""
        shown = self.shown.get(fig.canvas)
        if shown is not None:
            self._changed(fig.canvas, shown)
            shown.png_seq = None
            self._refresh_png(fig.canvas, shown, force=True)

    # -- lifecycle -----------------------------------------------------------------------------

    def _closed(self, canvas):
        shown = self.shown.pop(canvas, None) if canvas is not None else None
        if shown is not None:
            shown.widget.figure_closed()
        if not self.shown:
            self._png_timer_cancel()

    def widgets(self):
        """The live widgets (tests and leak checks)."""
        return [s.widget for s in self.shown.values() if s.widget.comm is not None]


def _close_figure(canvas):
    from matplotlib import _pylab_helpers
    manager = canvas.manager
    if manager is not None and _pylab_helpers.Gcf.has_fignum(manager.num) and \
            _pylab_helpers.Gcf.figs.get(manager.num) is manager:
        _pylab_helpers.Gcf.destroy(manager)
    else:
        canvas.stop_serving()


def _fastfig_backend():
    import matplotlib
    return "fastfig" in str(matplotlib.get_backend()).lower()


def _png_b64(canvas):
    import base64
    import numpy as np
    from ..codec import png
    image = np.asarray(canvas.buffer_rgba())
    h, w = image.shape[:2]
    scratch = np.empty(png.filtered_size(w, h), np.uint8)
    return base64.b64encode(png.encode(image, 0, 0, w, h, scratch, level=6)).decode("ascii")
