"""FrameCache: the frames of a timeline already seen, kept encoded with fastfig's own
codec and bounded by bytes, so that stepping back or scrubbing over them restores the
image at once instead of drawing it again.

Each frame is kept as one keyframe packet of the box in which it differs from the
cache's **base** (the first frame kept, held raw): an animation changes the same few
regions from frame to frame (a blitting one nothing outside its axes' boxes), so the
box is small and the rest of the image is the base's. Restoring frame i over frame j
writes the base into j's box, then i's packet into i's box, and only the union of the
two boxes changed: the frame loop is told that box, so the stream's encoder scans it
alone.

Why keyframes of boxes, not deltas with periodic keyframes: any frame is one decode
away, in any order (scrubbing jumps), and eviction drops single frames with no chain to
keep whole. Measured on a 2x2 line plot (bench/README.md, "Timeline").

Eviction drops the frame farthest from the playhead (not the least recently used): the
frames a user wants at once are the neighbours of the current one (step back, scrub
around it), and the frames kept then form one run around the playhead, which is what
the timeline's ``cached`` range reports.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import NDArray

from .. import _encode
from ..codec.decoder import FrameDecoder
from ..codec.encoder import FrameEncoder

#: Default bound of one figure's cache.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024


Box = tuple[int, int, int, int]


class FrameCache:
    """Encoded frames by index, at most max_bytes (the packets and the raw base image),
    all of one image size. The cache is only right while the figure is drawn the same
    way (same size, same view): clear() it when that changes."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.evicted = 0
        self._entries: dict[int, tuple[Box, bytes]] = {}
        self._base: Optional[NDArray[np.uint8]] = None
        self._encoders: dict[tuple[int, int], FrameEncoder] = {}
        self._decoder = FrameDecoder(strict=False)
        self._rects = np.empty((0, 4), np.int32)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, index: object) -> bool:
        return index in self._entries

    def put(self, index: int, rgba: NDArray[np.uint8], scan: Optional[Box] = None,
            playhead: Optional[int] = None) -> Optional[Box]:
        """Keep frame index, the image rgba (H, W, 4). scan: where it can differ from
        the frames before (a blitting animation's boxes; None: anywhere). Frames of
        another size are dropped first. Then the frames farthest from playhead (default:
        index) go until the cache fits its bound, the new frame too if it alone exceeds
        it. Returns the box in which the frame differs from the base (see restore), or
        None when it was not kept."""
        h, w = rgba.shape[:2]
        if self._base is None or self._base.shape != rgba.shape:
            self.clear()
            if w * h * 4 > self.max_bytes:
                return None
            self._base = rgba.copy()
            self.nbytes = self._base.nbytes
            cell = 64
            self._rects = np.empty((-(-w // cell) * -(-h // cell), 4), np.int32)
        box = self._differs(rgba, _clip(scan, w, h))
        x, y, bw, bh = box
        packet = b""
        if bw and bh:
            encoder = self._encoders.get((bw, bh))
            if encoder is None:
                encoder = self._encoders[(bw, bh)] = FrameEncoder(bw, bh)
            packet = bytes(encoder.keyframe(rgba[y:y + bh, x:x + bw]))
        old = self._entries.pop(index, None)
        if old is not None:
            self.nbytes -= len(old[1])
        self._entries[index] = (box, packet)
        self.nbytes += len(packet)
        self._evict(index if playhead is None else playhead)
        return box if index in self._entries else None

    def _differs(self, rgba: NDArray[np.uint8], scan: Box) -> Box:
        """The bounding box of where rgba differs from the base, looked for in scan."""
        assert self._base is not None
        if not scan[2] or not scan[3]:
            return (0, 0, 0, 0)
        region = np.array([scan], np.int32)
        n = _encode.damage(np.ascontiguousarray(rgba), self._base, region, 64, 0,
                           self._rects)
        if n == 0:
            return (0, 0, 0, 0)
        r = self._rects[:n]
        x0, y0 = int(r[:, 0].min()), int(r[:, 1].min())
        return (x0, y0, int((r[:, 0] + r[:, 2]).max()) - x0,
                int((r[:, 1] + r[:, 3]).max()) - y0)

    def _evict(self, playhead: int) -> None:
        while self.nbytes > self.max_bytes and self._entries:
            far = max(self._entries, key=lambda k: abs(k - playhead))
            self.nbytes -= len(self._entries.pop(far)[1])
            self.evicted += 1

    def restore(self, index: int, out: NDArray[np.uint8],
                shown: Optional[Box] = None) -> Optional[tuple[Box, Optional[Box]]]:
        """Write frame index into out, which holds a frame that differs from the base
        only inside the box shown (None: anywhere, or unknown). Returns (the frame's box
        as put() returned it, the box of out that changed: None for all of it), or None
        when the frame is not cached or out has another size."""
        entry = self._entries.get(index)
        base = self._base
        if entry is None or base is None or base.shape != out.shape:
            return None
        box, packet = entry
        if shown is None:
            np.copyto(out, base)
            changed = None
        else:
            _copy_box(base, out, shown)
            changed = _union(shown, box)
        if packet:
            x, y, w, h = box
            np.copyto(out[y:y + h, x:x + w], self._decoder.decode(packet))
        return box, changed

    def run(self, index: int) -> Optional[tuple[int, int]]:
        """The run of consecutive cached frames that holds index, or None."""
        if index not in self._entries:
            return None
        first = last = index
        while first - 1 in self._entries:
            first -= 1
        while last + 1 in self._entries:
            last += 1
        return first, last

    def clear(self) -> None:
        self._entries.clear()
        self._encoders.clear()
        self._base = None
        self.nbytes = 0


def _copy_box(src: NDArray[np.uint8], dst: NDArray[np.uint8], box: Box) -> None:
    x, y, w, h = box
    if w and h:
        np.copyto(dst[y:y + h, x:x + w], src[y:y + h, x:x + w])


def _union(a: Box, b: Box) -> Box:
    if not (a[2] and a[3]):
        return b
    if not (b[2] and b[3]):
        return a
    x0, y0 = min(a[0], b[0]), min(a[1], b[1])
    x1, y1 = max(a[0] + a[2], b[0] + b[2]), max(a[1] + a[3], b[1] + b[3])
    return (x0, y0, x1 - x0, y1 - y0)


def _clip(box: Optional[Box], width: int, height: int) -> Box:
    if box is None:
        return 0, 0, width, height
    x, y, w, h = box
    x0, y0 = min(max(x, 0), width), min(max(y, 0), height)
    x1, y1 = min(max(x + w, 0), width), min(max(y + h, 0), height)
    return x0, y0, x1 - x0, y1 - y0
