"""RGBA frames to the yuv420p pictures a video encoder takes, converting only what moved.

An animation frame differs from the one before it in a few places (a line's old and new
path), so a picture keeps the RGBA image it was made from and converts only the
rectangles in which the image changed since: fastfig's damage kernel finds them (about
1 ms at 1080p), the ``rgba_to_yuv420`` kernel converts the 2x2 pixel blocks they touch.
A frame that changed nearly everywhere (the first, a moving image) is converted whole by
the same kernel, so every pixel of a video goes through one formula.

Colour: BT.709 primaries, transfer and matrix, limited ("MPEG", 16-235) range, the tags
the encoder writes into the stream. Chroma is the mean of each 2x2 block.

The converter hands out its pictures in turn from a small ring (``depth``), so an encoder
running in another thread can still read the picture of frame n while frame n + 1 is
converted into the next one; each picture is brought up to date from the RGBA image it
last held, its own damage.
"""

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from .._encode import copy_rects, damage, rgba_to_yuv420

#: Above this fraction of the frame changed, convert the whole frame (one rectangle
#: instead of many, and no bookkeeping of the old image's rectangles).
WHOLE_FRAME = 0.25
#: Damage cells (pixels) and the per-rectangle cost (in pixels) used to merge them.
CELL = 32
RECT_COST = 256


def bt709_limited():
    """The kernel's matrix for BT.709, limited range, in 16-bit fixed point: Y from one
    pixel, Cb/Cr from the sum of a 2x2 block's four pixels (hence the extra / 4)."""
    kr, kb = 0.2126, 0.0722
    kg = 1 - kr - kb
    ys, cs = 219 / 255 * 65536, 224 / 255 / 4 * 65536
    rows = [(kr, kg, kb),
            (-kr / (2 - 2 * kb), -kg / (2 - 2 * kb), 0.5),
            (0.5, -kg / (2 - 2 * kr), -kb / (2 - 2 * kr))]
    return np.array([round(k * (ys if i == 0 else cs)) for i, row in enumerate(rows)
                     for k in row], np.int32)


MATRIX = bt709_limited()


def even_size(width, height):
    """4:2:0 needs even dimensions: the picture size for a width x height figure (one
    column or row is repeated at the edge when odd)."""
    return width + (width & 1), height + (height & 1)


class _Slot:
    """One picture of the ring and the RGBA image it holds the conversion of."""

    def __init__(self, pw, ph):
        self.frame = av.VideoFrame(pw, ph, "yuv420p")
        _tag(self.frame)
        self.rgba = None


class YUV420Converter:
    """Turns successive (H, W, 4) RGBA images into yuv420p VideoFrames, converting only
    the rectangles that changed. ``stats`` counts frames converted whole and in part, and
    the fraction of pixels converted."""

    def __init__(self, width, height, depth=1):
        self.width, self.height = width, height
        self.pw, self.ph = even_size(width, height)
        self._slots = [_Slot(self.pw, self.ph) for _ in range(depth)]
        self._turn = 0
        self._whole_rect = np.array([[0, 0, width, height]], np.int32)
        ncells = -(-width // CELL) * -(-height // CELL)
        self._rects = np.zeros((ncells, 4), np.int32)
        self.stats = {"whole": 0, "partial": 0, "unchanged": 0, "pixels": 0.0}

    def convert(self, rgba):
        """The yuv420p picture of rgba: a VideoFrame of the ring, updated in place when
        its turn comes again, ``depth`` calls later (encode it before then)."""
        if rgba.shape != (self.height, self.width, 4):
            raise ValueError(f"expected a {self.width}x{self.height} RGBA image, got "
                             f"{rgba.shape}")
        rgba = np.ascontiguousarray(rgba)
        slot = self._slots[self._turn]
        self._turn = (self._turn + 1) % len(self._slots)
        frame = slot.frame
        # Copies the picture first only if the encoder still holds it (the GIF encoder
        # keeps the last frame; x264 and libvpx copy what they are given).
        frame.make_writable()
        if slot.rgba is None:
            n, rects, area = 1, self._whole_rect, self.width * self.height
        else:
            n = damage(rgba, slot.rgba, self._whole_rect, CELL, RECT_COST, self._rects)
            rects = self._rects
            area = int((rects[:n, 2].astype(np.int64) * rects[:n, 3]).sum())
        if n == 0:
            self.stats["unchanged"] += 1
            return frame
        whole = slot.rgba is None or area > WHOLE_FRAME * self.width * self.height
        if whole:
            n, rects, area = 1, self._whole_rect, self.width * self.height
        y, u, v = (_plane_array(p) for p in frame.planes)
        rgba_to_yuv420(rgba, y, u, v, rects, n, MATRIX)
        if slot.rgba is None:
            slot.rgba = rgba.copy()
        else:
            copy_rects(rgba, slot.rgba, rects, n)
        self.stats["whole" if whole else "partial"] += 1
        self.stats["pixels"] += area / (self.width * self.height)
        return frame


def _plane_array(plane):
    """A writable (rows, line_size) view of a VideoFrame plane's memory."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)


def _tag(frame):
    frame.colorspace = Colorspace.ITU709
    frame.color_range = ColorRange.MPEG
