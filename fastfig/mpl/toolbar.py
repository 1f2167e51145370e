"""The toolbar: matplotlib's NavigationToolbar2 (home, back, forward, pan, zoom) with its
feedback sent to frontends as figure state instead of drawn in a window, and downloads
in every format savefig writes.

State fields (PROTOCOL.md section 2): ``message`` (the coordinates under the pointer),
``cursor`` (a CSS cursor name), ``rubberband`` ([x0, y0, x1, y1] in CSS pixels from the
top left, or None), ``navigate_mode`` ("PAN", "ZOOM" or None) and ``history``
({"back": bool, "forward": bool}).
"""

import io

from matplotlib import backend_tools
from matplotlib.backend_bases import NavigationToolbar2

ACTIONS = ("home", "back", "forward", "pan", "zoom")

CURSORS = {
    backend_tools.Cursors.HAND: "pointer",
    backend_tools.Cursors.POINTER: "default",
    backend_tools.Cursors.SELECT_REGION: "crosshair",
    backend_tools.Cursors.MOVE: "move",
    backend_tools.Cursors.WAIT: "wait",
    backend_tools.Cursors.RESIZE_HORIZONTAL: "ew-resize",
    backend_tools.Cursors.RESIZE_VERTICAL: "ns-resize",
}

MIME_TYPES = {
    "png": "image/png", "svg": "image/svg+xml", "svgz": "image/svg+xml",
    "pdf": "application/pdf", "eps": "application/postscript", "ps": "application/postscript",
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "tif": "image/tiff", "tiff": "image/tiff",
    "webp": "image/webp", "pgf": "text/x-pgf", "raw": "application/octet-stream",
    "rgba": "application/octet-stream",
}


class NavigationToolbarFastfig(NavigationToolbar2):
    """NavigationToolbar2 whose window is a frontend: everything it would show goes out
    as state of the canvas's figure (canvas.send_state)."""

    def __init__(self, canvas):
        self.message = ""
        super().__init__(canvas)

    def set_message(self, s):
        if s != self.message:
            self.message = s
            self.canvas.send_state(message=s)

    def draw_rubberband(self, event, x0, y0, x1, y1):
        ratio = self.canvas.device_pixel_ratio
        height = self.canvas.figure.bbox.height
        xs = sorted((x0 / ratio, x1 / ratio))
        ys = sorted(((height - y0) / ratio, (height - y1) / ratio))
        self.canvas.send_state(rubberband=[xs[0], ys[0], xs[1], ys[1]])

    def remove_rubberband(self):
        self.canvas.send_state(rubberband=None)

    def _send_mode(self):
        name = self.mode.name if self.mode else None
        self.canvas.send_state(navigate_mode=name if name in ("PAN", "ZOOM") else None)

    def pan(self, *args):
        super().pan(*args)
        self._send_mode()

    def zoom(self, *args):
        super().zoom(*args)
        self._send_mode()

    def set_history_buttons(self):
        stack = self._nav_stack
        self.canvas.send_state(history={"back": stack._pos > 0,
                                        "forward": stack._pos < len(stack) - 1})

    def save_figure(self, *args):
        # A frontend saves with a download request; there is no file dialog here.
        return None


def figure_bytes(figure, fmt="png"):
    """The figure saved as fmt, as bytes (savefig with the figure's own settings)."""
    buf = io.BytesIO()
    figure.savefig(buf, format=fmt)
    return buf.getvalue()
