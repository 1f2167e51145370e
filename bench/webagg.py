"""matplotlib's own frame path, run on pre-rendered frames.

FigureCanvasWebAggCore.get_diff_image reads ``self.get_renderer().buffer_rgba()``, diffs it
against ``self._last_buff`` (pixels that did not change become 0), keeps a copy of the new
buffer and writes the result with Pillow's PNG encoder. The canvas below only replaces
get_renderer, so that the buffer it reads is a frame rendered beforehand: the diff, the
copy and the PNG are exactly matplotlib's code (checked against matplotlib 3.11).
"""

from matplotlib.backends.backend_webagg_core import FigureCanvasWebAggCore


class _Frame:
    """Stands in for the Agg renderer: only buffer_rgba() is read."""

    def __init__(self):
        self.rgba = None

    def buffer_rgba(self):
        return memoryview(self.rgba)   # what RendererAgg.buffer_rgba returns


class PrerenderedWebAggCanvas(FigureCanvasWebAggCore):
    """A WebAgg canvas whose renderer holds whatever frame was last given to diff()."""

    def __init__(self):
        super().__init__()           # a blank Figure and no manager: no events are sent
        self._frame = _Frame()

    def get_renderer(self):
        return self._frame

    def load(self, rgba):
        """Make rgba the current rendered frame, as canvas.draw() would (not timed)."""
        self._frame.rgba = rgba
        self._png_is_old = True
        self._force_full = False

    def diff(self):
        """The PNG WebAgg sends for the current frame: a diff against the last one."""
        return self.get_diff_image()

    @property
    def image_mode(self):
        return self._current_image_mode
