"""FrameEncoder: turns successive RGBA images of a figure into keyframes and deltas.

The policy lives here, the work in _encode: damage detection finds the changed
rectangles, each rectangle gets the encoding that is cheapest for it, and the encoder's
copy of the previous image (what every client now holds) is updated inside those
rectangles only. Buffers are allocated when the size changes, never per frame.
"""

from __future__ import annotations

import collections
import time
from typing import Any, Iterable, Sequence, Union

import numpy as np
from numpy.typing import NDArray

from .. import _encode
from . import deflate, png
from .packet import ALL_ENCODINGS, MAX_SIDE, Encoding, Frame, Rect

#: Rectangles smaller than this are not worth a PNG's ~60 bytes of framing and the cost
#: of a deflate call; RLE or RAW carry them.
PNG_MIN_PIXELS = 256
#: RLE is taken over PNG when it is at most this fraction of the raw size: it encodes and
#: decodes several times faster than PNG, so it only has to be compact, not the smallest.
#: At 0.10 a 1080p line-plot keyframe went RLE at 3.4x the bytes of its PNG; at 0.03 RLE
#: keeps the flat rectangles (backgrounds, bars) and the attempt is given up early elsewhere.
RLE_MAX_RATIO = 0.03


#: Rectangles this big are probed before a PNG is made: four bands of rows (1/8 of the
#: rectangle) are deflated, and when they already exceed png_max_ratio (with this margin)
#: the PNG is not attempted. Images and noise that end up RAW then cost a copy, not a
#: full deflate thrown away.
PNG_PROBE_PIXELS = 65536
PNG_PROBE_MARGIN = 1.15
#: A region whose PNG came out over png_max_ratio is sent RAW without a new attempt (nor
#: a probe) for this many frames: an animation redraws the same regions with the same
#: kind of content, and a sample can misjudge them frame after frame. heavy's scatter at
#: 1920x1080 samples at 0.25 of raw and deflates to 0.28: with a 0.25 bound every frame
#: made a 3.6 ms PNG only to send RAW.
PNG_RETRY_FRAMES = 30
#: Regions remembered at most (PNG_RETRY_FRAMES); more and the memory starts over.
PNG_MEMORY = 256

#: How many recent deltas' damage the encoder remembers for catch_up(): a consumer up to
#: this many frames behind gets the union of their damage instead of a keyframe.
CATCH_UP_HISTORY = 64

Image = NDArray[np.uint8]
#: A box (x, y, w, h) or several, in pixels from the top left.
Hint = Union[Sequence[int], Sequence[Sequence[int]], NDArray[Any]]


def as_rgba(rgba: Any, width: int | None = None, height: int | None = None) -> Image:
    """A C-contiguous (H, W, 4) uint8 view of rgba, without copying where possible.

    rgba is a numpy array, ``canvas.buffer_rgba()`` or any buffer; a flat buffer needs
    width and height."""
    if isinstance(rgba, (bytes, bytearray)):
        rgba = memoryview(rgba)  # np.asarray(bytes) would make one string, not bytes
    arr = np.asarray(rgba)
    if arr.dtype != np.uint8:
        raise TypeError(f"RGBA frames are uint8, not {arr.dtype}")
    if arr.ndim != 3:
        if width is None or height is None or arr.size != width * height * 4:
            raise ValueError(f"cannot read a {width}x{height} RGBA frame from a buffer "
                             f"of shape {arr.shape}")
        arr = arr.reshape(height, width, 4)
    if arr.shape[2] != 4:
        raise ValueError(f"RGBA frames have 4 channels, not {arr.shape[2]}")
    if not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr)
    return arr


def _check_size(width: int, height: int) -> None:
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"frame size {width}x{height} outside 1..{MAX_SIDE}")


class FrameEncoder:
    """Encode a stream of RGBA frames of one figure.

    encoding: "auto" picks per rectangle among the accepted encodings (FILL for a solid
    rectangle, RLE where runs make it compact, PNG otherwise, RAW if nothing is smaller);
    or one of "png", "rle", "raw" for every rectangle.
    accept: the encodings every client of this stream can decode (default: all).
    cell: side of the damage cells in pixels; rect_cost: the per-rectangle cost, in
    pixels, of the damage merge; level: deflate level; png_filter: "none", "up", "sub" or
    "adaptive" (with isal's fast deflate, unfiltered rows of plots came out both smaller
    and faster than filtered ones on every reference scenario); png_max_ratio: a PNG is
    sent only when it is at most this fraction of the raw size, RAW otherwise (1.0 sends
    the fewest bytes; where bytes are cheap, as on loopback, 0.5 spares a browser the
    PNG decode of content that barely compresses, ~10x the cost of raw pixels); keyframe_interval: also send a keyframe every N frames (0: only on
    the first frame, a size change or keyframe()).
    """

    def __init__(self, width: int, height: int, encoding: Union[str, Encoding] = "auto", *,
                 accept: Iterable[Union[str, int, Encoding]] | None = None, cell: int = 64,
                 rect_cost: int = 4096, level: int = 1, png_filter: str = "none",
                 png_max_ratio: float = 1.0, rle_max_ratio: float | None = None,
                 keyframe_interval: int = 0, epoch: int = 0) -> None:
        _check_size(width, height)
        self.accept = frozenset(ALL_ENCODINGS if accept is None
                                else (Encoding.parse(e) for e in accept))
        self.encoding: Encoding | None
        if encoding == "auto":
            self.encoding = None
            if not self.accept - {Encoding.FILL}:
                raise ValueError("accepted encodings must include one of raw, rle, png")
        else:
            self.encoding = Encoding.parse(encoding)
            if self.encoding == Encoding.FILL:
                raise ValueError("fill only carries solid rectangles; use auto")
            if self.encoding not in self.accept:
                raise ValueError(f"encoding {encoding!r} is not among the accepted ones")
        if png_filter not in png.FILTERS:
            raise ValueError(f"png_filter must be one of {sorted(png.FILTERS)}")
        if cell < 8:
            raise ValueError("cell must be at least 8 pixels")
        self.cell = int(cell)
        self.rect_cost = int(rect_cost)
        self.level = int(level)
        self.png_filter = png_filter
        if not 0 < png_max_ratio <= 1:
            raise ValueError("png_max_ratio must be in (0, 1]")
        self.png_max_ratio = float(png_max_ratio)
        if rle_max_ratio is None:
            rle_max_ratio = RLE_MAX_RATIO
        if not 0 <= rle_max_ratio <= 1:
            raise ValueError("rle_max_ratio must be in [0, 1]")
        self.rle_max_ratio = float(rle_max_ratio)
        self.keyframe_interval = int(keyframe_interval)
        self.epoch = int(epoch) & 0xFFFFFFFF
        self.seq = 0
        self._prev: Image | None = None
        self._prev_view: Image | None = None
        self._since_keyframe = 0
        # The damage of the latest deltas, oldest first: (seq, rects) with rects an (n, 4)
        # array. _history_floor is the oldest seq a catch-up can start from: the last
        # keyframe's, or the seq before the oldest remembered delta.
        self._history: collections.deque[tuple[int, NDArray[np.int32]]] = \
            collections.deque(maxlen=CATCH_UP_HISTORY)
        self._history_floor = 0
        # Regions (cell-aligned bounds) whose PNG exceeded png_max_ratio: frames left
        # before the next attempt.
        self._png_failed: dict[tuple[int, int, int, int], int] = {}
        self._allocate(width, height)

    @property
    def width(self) -> int:
        return self._width

    @property
    def height(self) -> int:
        return self._height

    @property
    def image(self) -> Image | None:
        """What clients hold after the last frame (read-only), or None before the first."""
        return None if self._prev is None else self._prev_view

    def _allocate(self, width: int, height: int) -> None:
        self._width, self._height = width, height
        ncells = -(-width // self.cell) * -(-height // self.cell)
        self._rects = np.empty((ncells, 4), np.int32)
        self._full = np.array([[0, 0, width, height]], np.int32)
        # Big enough for the filtered scanlines of the whole frame, and so for any RLE
        # attempt (which is given up past the raw size).
        self._scratch = np.empty(png.filtered_size(width, height), np.uint8)

    # -- public API -----------------------------------------------------------------

    def encode(self, rgba: Any, hint: Hint | None = None) -> Frame:
        """The frame that brings clients from the previous image to rgba.

        hint: an optional box (x, y, w, h) or sequence of boxes, in pixels from the top
        left, outside which the caller guarantees nothing changed (for example a blit
        region); only those boxes are scanned. A first frame or a size change gives a
        keyframe."""
        img = as_rgba(rgba, self._width, self._height)
        h, w = img.shape[:2]
        if self._prev is None or (w, h) != (self._width, self._height):
            return self.keyframe(img)
        if self.keyframe_interval and self._since_keyframe + 1 >= self.keyframe_interval:
            return self.keyframe(img)
        regions = self._full if hint is None else self._hint_regions(hint)
        n = _encode.damage(img, self._prev, regions, self.cell, self.rect_cost, self._rects)
        if n == 0:
            return Frame(self.seq, self.epoch, False, w, h, (), _now_us())
        rects = tuple(self._encode_rect(img, *map(int, self._rects[i])) for i in range(n))
        _encode.copy_rects(img, self._prev, self._rects, n)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self._since_keyframe += 1
        if len(self._history) == CATCH_UP_HISTORY:
            self._history_floor = self._history[0][0]
        self._history.append((self.seq, self._rects[:n].copy()))
        return Frame(self.seq, self.epoch, False, w, h, rects, _now_us())

    def keyframe(self, rgba: Any) -> Frame:
        """A keyframe of rgba, starting a new chain of deltas. A new size also starts a
        new epoch."""
        img = as_rgba(rgba, self._width, self._height)
        h, w = img.shape[:2]
        _check_size(w, h)
        if (w, h) != (self._width, self._height):
            self._allocate(w, h)
            self._prev = None
            self.epoch = (self.epoch + 1) & 0xFFFFFFFF
        if self._prev is None:
            self._prev = np.empty((h, w, 4), np.uint8)
            self._prev_view = self._prev.view()
            self._prev_view.flags.writeable = False
        np.copyto(self._prev, img)
        self.seq = (self.seq + 1) & 0xFFFFFFFF
        self._since_keyframe = 0
        # The damage before a keyframe says nothing about what it changed.
        self._history.clear()
        self._history_floor = self.seq
        return self._keyframe_of(self._prev, self.seq)

    def snapshot(self) -> Frame:
        """A keyframe of what clients hold now, with the current sequence number, for a
        client joining late: the deltas that follow apply to it. Changes no state."""
        if self._prev is None:
            raise RuntimeError("no frame has been encoded yet")
        return self._keyframe_of(self._prev, self.seq)

    def catch_up(self, base_seq: int, epoch: int | None = None) -> Frame | None:
        """A catch-up delta (PROTOCOL.md 1.4) from the image ``base_seq`` to what clients
        hold now: the union of the damage of frames base_seq+1 .. seq, taken from the
        current image and numbered seq, for a consumer that missed those frames. None
        when that image is not among the last CATCH_UP_HISTORY frames since the last
        keyframe, or belongs to another epoch than ``epoch`` (when given): then the
        caller sends a snapshot(). Changes no state and caches nothing; like snapshot(),
        it reads the encoder's buffers, so it must not run while encode() does."""
        if self._prev is None or (epoch is not None and epoch & 0xFFFFFFFF != self.epoch):
            return None
        base_seq &= 0xFFFFFFFF
        behind = (self.seq - base_seq) & 0xFFFFFFFF
        if behind > (self.seq - self._history_floor) & 0xFFFFFFFF:
            return None
        w, h = self._width, self._height
        rects: tuple[Rect, ...] = ()
        if behind:
            damage = [r for _, r in list(self._history)[len(self._history) - behind:]]
            union = np.concatenate(damage) if len(damage) > 1 else damage[0]
            n = _encode.damage_union(np.ascontiguousarray(union), len(union), w, h,
                                     self.cell, self.rect_cost, self._rects)
            img = self._prev
            rects = tuple(self._encode_rect(img, *map(int, self._rects[i])) for i in range(n))
        return Frame(self.seq, self.epoch, False, w, h, rects, _now_us(), base_seq=base_seq)

    # -- policy ---------------------------------------------------------------------

    def _keyframe_of(self, img: Image, seq: int) -> Frame:
        h, w = img.shape[:2]
        return Frame(seq, self.epoch, True, w, h, (self._encode_rect(img, 0, 0, w, h),),
                     _now_us())

    def _hint_regions(self, hint: Hint) -> NDArray[np.int32]:
        boxes = np.asarray(hint, dtype=np.int64).reshape(-1, 4)
        x0 = np.clip(boxes[:, 0], 0, self._width)
        y0 = np.clip(boxes[:, 1], 0, self._height)
        x1 = np.clip(boxes[:, 0] + boxes[:, 2], 0, self._width)
        y1 = np.clip(boxes[:, 1] + boxes[:, 3], 0, self._height)
        return np.ascontiguousarray(
            np.stack([x0, y0, np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)], axis=1),
            dtype=np.int32)

    def _encode_rect(self, img: Image, x: int, y: int, w: int, h: int) -> Rect:
        accept = self.accept
        if self.encoding is not None:
            return Rect(x, y, w, h, self.encoding, self._encode_as(self.encoding, img, x, y, w, h))
        if Encoding.FILL in accept:
            color = _encode.solid_color(img, x, y, w, h)
            if color is not None:
                return Rect(x, y, w, h, Encoding.FILL, color)
        raw_size = 4 * w * h
        # Small rectangles go to RLE or RAW, unless the client reads neither.
        use_png = Encoding.PNG in accept and (
            w * h >= PNG_MIN_PIXELS or not accept & {Encoding.RLE, Encoding.RAW})
        rle = None
        if Encoding.RLE in accept:
            # Given up as soon as it grows past what would make it worth taking.
            budget = int(raw_size * self.rle_max_ratio) if use_png else raw_size
            n = _encode.rle_encode(img, x, y, w, h, self._scratch[:budget])
            if n >= 0:
                rle = self._scratch[:n].tobytes()
                if use_png or Encoding.RAW not in accept or n < raw_size:
                    return Rect(x, y, w, h, Encoding.RLE, rle)
        region = None
        if use_png and Encoding.RAW in accept and w * h >= PNG_PROBE_PIXELS and h >= 64:
            cell = self.cell
            region = (x // cell, y // cell, (x + w) // cell, (y + h) // cell)
            use_png = not self._png_failed_lately(region) and \
                not self._png_hopeless(img, x, y, w, h)
        if use_png:
            data = png.encode(img, x, y, w, h, self._scratch, level=self.level,
                              filter=self.png_filter)
            if len(data) < raw_size * self.png_max_ratio or Encoding.RAW not in accept:
                return Rect(x, y, w, h, Encoding.PNG, data)
            if region is not None:
                if len(self._png_failed) >= PNG_MEMORY:
                    self._png_failed.clear()
                self._png_failed[region] = PNG_RETRY_FRAMES
        if Encoding.RAW in accept:
            return Rect(x, y, w, h, Encoding.RAW, img[y:y + h, x:x + w].tobytes())
        if rle is None:  # only RLE (and FILL) accepted and RLE did not fit the budget
            return Rect(x, y, w, h, Encoding.RLE, self._encode_as(Encoding.RLE, img, x, y, w, h))
        return Rect(x, y, w, h, Encoding.RLE, rle)

    def _png_failed_lately(self, region: tuple[int, int, int, int]) -> bool:
        """True (and one frame fewer to wait) while the region's last PNG exceeded
        png_max_ratio less than PNG_RETRY_FRAMES frames ago."""
        left = self._png_failed.get(region)
        if left is None:
            return False
        if left <= 1:
            del self._png_failed[region]
        else:
            self._png_failed[region] = left - 1
        return True

    def _png_hopeless(self, img: Image, x: int, y: int, w: int, h: int) -> bool:
        """True when a sample of the rectangle says its PNG would not be worth sending."""
        band = h // 32
        sampled = packed = 0
        for k in range(4):
            n = _encode.png_filter(img, x, y + (h - band) * k // 3, w, band,
                                   png.FILTERS[self.png_filter], self._scratch)
            packed += len(deflate.compress(self._scratch[:n], self.level))
            sampled += n
        return packed > sampled * self.png_max_ratio * PNG_PROBE_MARGIN

    def _encode_as(self, enc: Encoding, img: Image, x: int, y: int, w: int, h: int) -> bytes:
        if enc == Encoding.PNG:
            return png.encode(img, x, y, w, h, self._scratch, level=self.level,
                              filter=self.png_filter)
        if enc == Encoding.RAW:
            return img[y:y + h, x:x + w].tobytes()
        # RLE of the worst pattern is under 1.5x the raw size plus a word.
        out = self._scratch if len(self._scratch) >= 6 * w * h + 8 else np.empty(6 * w * h + 8, np.uint8)
        n = _encode.rle_encode(img, x, y, w, h, out)
        return out[:n].tobytes()


def _now_us() -> int:
    return time.time_ns() // 1000
