"""Drawing an Animation's frames for a video, the way ``Animation.save`` would, blitting
where that gives the same pixels.

``Animation.save`` redraws the whole figure for every frame. With ``blit=True`` the frame
function names the artists it moves; everything else is the same from frame to frame, so
the renderer draws the figure once without them (the background) and makes each frame by
copying the whole background back and drawing only those artists. The whole background,
not each axes' box: a box rounded to whole pixels can leave a partly covered edge column
holding the previous frame's line.

A blitted frame equals a full render only while the frame function changes nothing but
the artists it returns and they are drawn over everything they overlap, so the renderer
draws the background again when anything else changed (the figure went stale: animated
artists do not make it stale), and every ``check_every`` frames it also renders the frame
in full and compares the bytes: on a difference it renders in full from then on.
"""

import itertools

import numpy as np
from matplotlib import colors as mcolors
from matplotlib.backends.backend_agg import FigureCanvasAgg

from .errors import ExportError

#: Compare a blitted frame with a full render this often (and at the first frame).
CHECK_EVERY = 30
#: Count an animation whose length nobody gave by iterating at most this many frames.
MAX_COUNT = 100_000


def frame_count(anim, frames=None):
    """How many frames to export: ``frames`` (at most the animation's length), else the
    animation's length (FuncAnimation's frames= or save_count=)."""
    known = getattr(anim, "_save_count", None)
    if known is None and hasattr(anim, "_framedata"):        # ArtistAnimation
        known = len(anim._framedata)
    if known is None and frames is None:
        if getattr(anim, "_iter_gen", None) is itertools.count:
            raise ExportError("the animation has no end (FuncAnimation without frames= "
                              "or save_count=): say how many frames to export (frames=N, "
                              "--frames N)")
        known = sum(1 for _ in itertools.islice(anim.new_saved_frame_seq(), MAX_COUNT + 1))
        if known > MAX_COUNT:
            raise ExportError(f"the animation's frame sequence has more than {MAX_COUNT} "
                              "items: say how many frames to export (frames=N)")
    if frames is not None:
        if frames < 1:
            raise ExportError(f"frames must be at least 1, not {frames}")
        return frames if known is None else min(frames, known)
    if known < 1:
        raise ExportError("the animation has no frames")
    return known


def default_fps(anim):
    """Animation.save's default: one frame per interval."""
    interval = getattr(anim, "_interval", 200) or 200
    return 1000.0 / interval


class FrameRenderer:
    """Renders frames start..stop-1 of anim on a private Agg canvas. Frames are taken in
    increasing order; the frame function also runs for the frames skipped, so that an
    animation that accumulates state draws the same frame n as an uninterrupted save."""

    def __init__(self, anim, check_every=CHECK_EVERY):
        self.anim = anim
        self.fig = anim._fig
        self.check_every = check_every
        self.blit = bool(getattr(anim, "_blit", False))
        self.stats = {"blitted": 0, "full": 0, "checks": 0, "backgrounds": 0,
                      "blit_mismatch": None}
        self._old_canvas = self.fig.canvas
        self._old_facecolor = None
        # Draw on a canvas of our own, flagged as saving: a served or on-screen figure is
        # left alone, the animation's draw_event hook does not restart it, and axes draw
        # their animated artists in full renders (as in Animation.save).
        self.canvas = FigureCanvasAgg(self.fig)
        self.canvas._is_saving = True
        self._composite_facecolor()
        anim._init_draw()
        self._seq = anim.new_saved_frame_seq()
        self.next = 0                 # index of the next frame data
        self._renderer = None
        self._buf = None
        self._bg = None
        self._bg_artists = None
        self._since_check = None      # frames since the last check (None: check next)

    def close(self):
        """Give the figure its own canvas back."""
        if self._old_facecolor is not None:
            self.fig.set_facecolor(self._old_facecolor)
        self.fig.set_canvas(self._old_canvas)

    def _composite_facecolor(self):
        # A video has no alpha: like Animation.save, a transparent figure background is
        # composited onto white.
        r, g, b, a = mcolors.to_rgba(self.fig.get_facecolor())
        if a < 1:
            self._old_facecolor = self.fig.get_facecolor()
            self.fig.set_facecolor((a * r + 1 - a, a * g + 1 - a, a * b + 1 - a, 1.0))

    @property
    def size(self):
        """(width, height) in pixels of the frames."""
        if self._renderer is None:
            self.canvas.draw()
            self._bind()
        return self._buf.shape[1], self._buf.shape[0]

    def _bind(self):
        self._renderer = self.canvas.get_renderer()
        self._buf = np.asarray(self._renderer.buffer_rgba())

    def frames(self, start, stop):
        """Yield (index, rgba) for frames start..stop-1; rgba is the canvas's buffer
        (valid until the next frame)."""
        if start < self.next:
            raise ValueError(f"frame {start} is behind this renderer (at {self.next})")
        while self.next < start:                      # replay: state, no drawing
            self.anim._draw_frame(self._data())
            self.next += 1
        self._since_check = None
        while self.next < stop:
            data = self._data()
            self.anim._draw_frame(data)
            yield self.next, self._draw()
            self.next += 1

    def _data(self):
        try:
            return next(self._seq)
        except StopIteration:
            raise ExportError(f"the animation's frame sequence ended at frame "
                              f"{self.next}") from None

    def _draw(self):
        artists = getattr(self.anim, "_drawn_artists", None) or []
        if not self.blit or not artists:
            return self._full()
        if (self._bg is None or self.fig.stale or self._bg_artists != artists
                or self.canvas.get_renderer() is not self._renderer):
            self._background(artists)
        np.copyto(self._buf, self._bg)
        for a in artists:
            (a.axes or self.fig).draw_artist(a)
        self.stats["blitted"] += 1
        if self._since_check is None or self._since_check + 1 >= self.check_every:
            self._check()
        else:
            self._since_check += 1
        return self._buf

    def _full(self):
        self.canvas.draw()
        self._bind_checked()
        self.stats["full"] += 1
        return self._buf

    def _bind_checked(self):
        renderer = self.canvas.get_renderer()
        if self._renderer is None:
            self._bind()
        elif renderer is not self._renderer:
            raise ExportError("the figure changed size during the animation; a video "
                              "keeps one size")

    def _background(self, artists):
        hidden = [a for a in artists if a.get_visible()]
        for a in hidden:
            a.set_visible(False)
        try:
            self.canvas.draw()
        finally:
            for a in hidden:
                a.set_visible(True)
        self._bind_checked()
        self._bg = self._buf.copy()
        self._bg_artists = list(artists)
        self.stats["backgrounds"] += 1

    def _check(self):
        self._since_check = 0
        self.stats["checks"] += 1
        blitted = self._buf.copy()
        self.canvas.draw()          # the full render; the buffer now holds it
        if not np.array_equal(blitted, self._buf):
            self.blit = False
            self.stats["blit_mismatch"] = self.next
