"""Streaming without the backend: ``fastfig.show(fig)`` serves any matplotlib figure and
``fastfig.animate(anim)`` any animation, whatever backend pyplot uses.

The figure gets a fastfig canvas (an Agg canvas, so a figure made with ``Figure()`` or
under Agg keeps drawing exactly as before); a figure shown in a GUI window is moved off
that window's canvas. Both calls block like ``plt.show()`` in a script unless
``block=False`` (or when an asyncio loop already runs, as in Jupyter).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import runtime
from .backend import FigureCanvasFastfig

if TYPE_CHECKING:
    from matplotlib.animation import Animation
    from matplotlib.figure import Figure

    from ..transport.server import Server
    from ..transport.stream import FigureStream


def configure(address: str | None = None, **server_options: Any) -> None:
    """Where to serve (as Server's address: "tcp", "ipc", "tcp://127.0.0.1:5555", ...),
    before the first figure is served."""
    runtime.configure(address=address, server_options=server_options)


def get_server() -> Server:
    """The fastfig Server of this process (started if needed); ``.address`` is the
    endpoint to give ``fastfig.Client``."""
    return runtime.get().ensure_server()


def canvas_of(fig: Figure) -> FigureCanvasFastfig:
    """fig's fastfig canvas, attaching one if the figure has another kind."""
    canvas = fig.canvas
    if isinstance(canvas, FigureCanvasFastfig):
        return canvas
    return FigureCanvasFastfig(fig)


def show(fig: Figure, *, id: str | None = None, title: str | None = None,
         fps: float | None = None, block: bool | None = None) -> FigureStream:
    """Serve fig; returns its FigureStream (``stream.id`` is the figure id to subscribe
    to). fps: target frame rate (None: as fast as frontends take frames). block: run the
    loop until the figure is closed, Ctrl-C or SIGTERM (default: in scripts)."""
    canvas = canvas_of(fig)
    stream = canvas.serve(id=id, title=title, fps=fps)
    _maybe_block(block)
    return stream


def animate(anim: Animation, *, id: str | None = None, title: str | None = None,
            fps: float | None = None, wallclock: bool = False,
            block: bool | None = None) -> FigureStream:
    """Serve a matplotlib Animation (FuncAnimation, ...). Its frames are rendered on
    fastfig's loop, as fast as its interval and the frontends allow (fps caps the frame
    rate). wallclock=True keeps it on time: when frames cannot be rendered or taken fast
    enough, frames are skipped so that frame n shows at n * interval."""
    fig = anim._fig  # type: ignore[attr-defined]  # matplotlib has no public accessor
    canvas = canvas_of(fig)
    interval = anim._interval if hasattr(anim, "_interval") else 200
    old = anim.event_source
    timer = canvas.new_timer(interval=interval)
    if old is not None:
        was_running = bool(getattr(old, "callbacks", None))
        for func, args, kwargs in list(getattr(old, "callbacks", [])):
            timer.add_callback(func, *args, **kwargs)
        old.stop()
        anim.event_source = timer
        if was_running:
            timer.start()
    if wallclock:
        _keep_wallclock(anim, interval / 1000)
    stream = canvas.serve(id=id, title=title, fps=fps)
    _maybe_block(block)
    return stream


def widget(fig: Figure | Animation, *, title: str | None = None,
           fps: float | None = None) -> Any:
    """A live view of a figure, or of an animation's figure, as a notebook widget
    (anywidget; ``pip install "fastfig[notebook]"``), for notebooks where ``%matplotlib
    fastfig`` does not apply: in marimo, make it a cell's last expression (or wrap it:
    ``mo.ui.anywidget(...)``). The figure is served as by show(), an animation as by
    animate() (its timer moves to fastfig's loop, so it plays whatever backend made it).
    Under marimo a pyplot figure is also taken off pyplot's list of figures: marimo
    closes every pyplot figure after each cell runs, which would end this one's stream
    (and matplotlib then drops its canvas). In Jupyter it behaves as any ipywidget: it
    shows where it is displayed (a cell's last expression, a VBox), and the figure is
    not also put in the cell's output."""
    from matplotlib.animation import Animation

    from ..notebook.widget import FigureWidget
    figure = fig._fig if isinstance(fig, Animation) else fig  # type: ignore[attr-defined]
    # In Jupyter the widget is shown where it is displayed, as any ipywidget, not also
    # in the cell's output as a served figure is.
    notebook = runtime.get().notebook
    if notebook is not None:
        notebook.leave_out(canvas_of(figure))
    if isinstance(fig, Animation):
        animate(fig, title=title, fps=fps, block=False)
    else:
        show(fig, title=title, fps=fps, block=False)
    if _in_marimo():
        from matplotlib._pylab_helpers import Gcf
        for num, manager in list(Gcf.figs.items()):
            if manager.canvas.figure is figure:
                del Gcf.figs[num]
    if notebook is not None:
        return notebook.widget_for(figure.canvas)
    return FigureWidget(figure.canvas)


def _in_marimo() -> bool:
    import sys
    marimo = sys.modules.get("marimo")
    try:
        return bool(marimo is not None and marimo.running_in_notebook())
    except Exception:   # an older marimo, or one half imported
        return False


def close(fig: Figure) -> None:
    """Stop serving fig (subscribers are told); it can be shown again."""
    canvas = fig.canvas
    if isinstance(canvas, FigureCanvasFastfig):
        canvas.stop_serving()


def _maybe_block(block):
    rt = runtime.get()
    if block is None:
        # A script blocks; a prompt (IPython's, whose loop this thread also owns) goes on.
        block = rt.can_block() and rt.mode == "script"
    if block:
        from .backend import FigureManagerFastfig
        FigureManagerFastfig.start_main_loop()


def _keep_wallclock(anim, period):
    """Make anim's frame sequence skip frames that are already late."""
    import time
    make = anim.new_frame_seq

    def on_time():
        frames = make()
        start = None
        produced = 0
        while True:
            now = time.monotonic()
            if start is None:
                start = now
            due = int((now - start) / period) if period > 0 else produced
            try:
                while produced < due:      # late: drop the frames that were due before now
                    next(frames)
                    produced += 1
                item = next(frames)
            except StopIteration:
                return
            produced += 1
            yield item

    anim.new_frame_seq = on_time
    anim.frame_seq = on_time()
