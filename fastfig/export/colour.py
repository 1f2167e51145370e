"""RGBA frames to the yuv420p pictures a video encoder takes, converting only what moved.

An animation frame differs from the one before it in a few places (a line's old and new
path), so the converter keeps the last picture and converts only the rectangles in which
the RGBA image changed: fastfig's damage kernel finds them (about 1 ms at 1080p), numpy
converts their 2x2 pixel blocks in one gathered pass. A frame that changed nearly
everywhere (a keyframe, a moving image) goes through swscale whole.

Colour: BT.709 primaries, transfer and matrix, limited ("MPEG", 16-235) range, the tags
the encoder writes into the stream. Both paths use the same matrix (luma agrees to one
code value); chroma is the mean of each 2x2 block here, swscale's filter differs slightly
at sharp edges.
"""

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from .._encode import copy_rects, damage

#: Above this fraction of the frame changed, convert the whole frame with swscale.
WHOLE_FRAME = 0.25
#: Damage cells (pixels) and the per-rectangle cost (in pixels) used to merge them.
CELL = 32
RECT_COST = 256

# BT.709 limited range, in 16-bit fixed point: Y from one pixel, Cb/Cr from the sum of
# a 2x2 block's four pixels (hence the extra / 4).
_KR, _KB = 0.2126, 0.0722
_KG = 1 - _KR - _KB
_YS = 219 / 255 * 65536
_CS = 224 / 255 / 4 * 65536
_Y = tuple(int(round(k * _YS)) for k in (_KR, _KG, _KB))
_CB = tuple(int(round(k * _CS)) for k in (-_KR / (2 - 2 * _KB), -_KG / (2 - 2 * _KB), 0.5))
_CR = tuple(int(round(k * _CS)) for k in (0.5, -_KG / (2 - 2 * _KR), -_KB / (2 - 2 * _KR)))
_HALF = 1 << 15


def even_size(width, height):
    """4:2:0 needs even dimensions: the picture size for a width x height figure (one
    column or row is repeated at the edge when odd)."""
    return width + (width & 1), height + (height & 1)


class YUV420Converter:
    """Turns successive (H, W, 4) RGBA images into yuv420p VideoFrames, converting only
    the rectangles that changed since the previous call. ``stats`` counts frames converted
    whole and in part, and the fraction of pixels converted."""

    def __init__(self, width, height):
        self.width, self.height = width, height
        self.pw, self.ph = even_size(width, height)
        self._frame = None                      # the last picture (a yuv420p VideoFrame)
        self._prev = None                       # the RGBA image it was made from
        self._region = np.array([[0, 0, width, height]], np.int32)
        ncells = -(-width // CELL) * -(-height // CELL)
        self._rects = np.zeros((ncells, 4), np.int32)
        self._mask = np.zeros((self.ph // 2, self.pw // 2), bool)
        self.stats = {"whole": 0, "partial": 0, "unchanged": 0, "pixels": 0.0}

    def convert(self, rgba):
        """The yuv420p picture of rgba: a VideoFrame that this converter updates in place
        on later calls (call it once per frame, encode before the next call)."""
        if rgba.shape != (self.height, self.width, 4):
            raise ValueError(f"expected a {self.width}x{self.height} RGBA image, got "
                             f"{rgba.shape}")
        rgba = np.ascontiguousarray(rgba)
        n = 0
        if self._prev is not None:
            n = damage(rgba, self._prev, self._region, CELL, RECT_COST, self._rects)
            if n == 0:
                self.stats["unchanged"] += 1
                return self._frame
            rects = self._rects[:n]
            area = int((rects[:, 2].astype(np.int64) * rects[:, 3]).sum())
        if self._prev is None or area > WHOLE_FRAME * self.width * self.height:
            self._frame = self._whole(rgba)
            self._prev = rgba.copy()
            self.stats["whole"] += 1
            self.stats["pixels"] += 1.0
            return self._frame
        frame = self._frame
        # Copies the picture first only if the encoder still holds it (the GIF encoder
        # keeps the last frame; x264 and libvpx copy what they are given).
        frame.make_writable()
        self._partial(rgba, rects, frame)
        copy_rects(rgba, self._prev, self._rects, n)
        self._frame = frame
        self.stats["partial"] += 1
        self.stats["pixels"] += area / (self.width * self.height)
        return frame

    # -- whole frames: swscale -------------------------------------------------------------

    def _whole(self, rgba):
        if (self.pw, self.ph) != (self.width, self.height):
            rgba = np.pad(rgba, ((0, self.ph - self.height), (0, self.pw - self.width), (0, 0)),
                          mode="edge")
        src = av.VideoFrame.from_ndarray(rgba, format="rgba")
        # threads=1: the encoder already keeps the other cores busy.
        out = src.reformat(format="yuv420p", src_colorspace=Colorspace.ITU709,
                           dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG,
                           threads=1)
        _tag(out)
        return out

    # -- changed rectangles: numpy ---------------------------------------------------------

    def _partial(self, rgba, rects, frame):
        pw, ph = self.pw, self.ph
        # The 2x2 blocks the rectangles touch, marked on the block grid (overlaps once).
        mask = self._mask
        mask.fill(False)
        for x, y, w, h in rects.tolist():
            mask[y // 2:(y + h + 1) // 2, x // 2:(x + w + 1) // 2] = True
        blocks = np.flatnonzero(mask)
        by, bx = np.divmod(blocks, pw // 2)
        # Pixel coordinates of each block's four pixels, clamped at an odd edge (the
        # repeated column/row of even_size).
        x0, y0 = 2 * bx, 2 * by
        x1 = np.minimum(x0 + 1, self.width - 1)
        y1 = np.minimum(y0 + 1, self.height - 1)
        flat = rgba.view(np.uint32).reshape(-1)
        w = self.width
        px = [flat[y0 * w + x0], flat[y0 * w + x1], flat[y1 * w + x0], flat[y1 * w + x1]]
        chans = [p.view(np.uint8).reshape(-1, 4).astype(np.int32) for p in px]
        yplane, uplane, vplane = frame.planes
        ys = np.frombuffer(yplane, np.uint8)
        ystride = yplane.line_size
        for (dx, dy), c in zip(((0, 0), (1, 0), (0, 1), (1, 1)), chans):
            yv = (_Y[0] * c[:, 0] + _Y[1] * c[:, 1] + _Y[2] * c[:, 2] + (16 << 16) + _HALF) >> 16
            ys[(y0 + dy) * ystride + x0 + dx] = yv
        s = chans[0] + chans[1] + chans[2] + chans[3]
        cb = (_CB[0] * s[:, 0] + _CB[1] * s[:, 1] + _CB[2] * s[:, 2] + (128 << 16) + _HALF) >> 16
        cr = (_CR[0] * s[:, 0] + _CR[1] * s[:, 1] + _CR[2] * s[:, 2] + (128 << 16) + _HALF) >> 16
        np.frombuffer(uplane, np.uint8)[by * uplane.line_size + bx] = cb
        np.frombuffer(vplane, np.uint8)[by * vplane.line_size + bx] = cr


def _tag(frame):
    frame.colorspace = Colorspace.ITU709
    frame.color_range = ColorRange.MPEG
