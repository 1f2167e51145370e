"""FrameCache: the frames of a timeline already seen, each kept as one keyframe packet of
fastfig's own codec, bounded by bytes, so that stepping back or scrubbing over them
restores the whole image at once instead of drawing it again.

Why keyframes, not deltas with periodic keyframes: any frame is one decode away, in any
order (scrubbing jumps), and eviction drops single frames with no chain to keep whole.
Measured on a 2x2 line plot (bench/README.md, "Timeline"): a keyframe is 77 kB at
800x600 (encoded in ~1.1 ms, restored in ~0.9 ms) and 163 kB at 1920x1080 (~3.8 ms,
~3.7 ms), 25x and 51x smaller than raw RGBA; deltas would be ~5x smaller again but a
frame k deltas past its keyframe costs k + 1 decodes to restore.

Eviction drops the frame farthest from the playhead (not the least recently used): the
frames a user wants at once are the neighbours of the current one (step back, scrub
around it), and the frames kept then form one run around the playhead, which is what
the timeline's ``cached`` range reports.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import NDArray

from ..codec.decoder import FrameDecoder
from ..codec.encoder import FrameEncoder

#: Default bound of one figure's cache.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024


Box = tuple[int, int, int, int]


class FrameCache:
    """Encoded frames by index, at most max_bytes of packets, all of one image size.

    A frame may be kept whole or only inside a box (x, y, w, h): a blitting animation
    changes nothing outside its axes' boxes, so the rest of the image is the same in
    every frame and need not be kept (smaller, and faster to encode and restore)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.evicted = 0
        self._entries: dict[int, tuple[Box, bytes]] = {}
        self._size: Optional[tuple[int, int]] = None
        self._encoders: dict[tuple[int, int], FrameEncoder] = {}
        self._decoder = FrameDecoder(strict=False)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, index: object) -> bool:
        return index in self._entries

    def put(self, index: int, rgba: NDArray[np.uint8], box: Optional[Box] = None,
            playhead: Optional[int] = None) -> None:
        """Keep frame index: the image rgba (H, W, 4), inside box only when given.
        Frames of another image size are dropped first. Then the frames farthest from
        playhead (default: index) go until the cache fits its bound (the new frame too,
        if it alone exceeds it)."""
        h, w = rgba.shape[:2]
        if self._size != (w, h):
            self.clear()
            self._size = (w, h)
        x, y, bw, bh = _clip(box, w, h)
        if bw == 0 or bh == 0:
            return
        encoder = self._encoders.get((bw, bh))
        if encoder is None:
            encoder = self._encoders[(bw, bh)] = FrameEncoder(bw, bh)
        packet = bytes(encoder.keyframe(rgba[y:y + bh, x:x + bw]))
        old = self._entries.pop(index, None)
        if old is not None:
            self.nbytes -= len(old[1])
        self._entries[index] = ((x, y, bw, bh), packet)
        self.nbytes += len(packet)
        self._evict(index if playhead is None else playhead)

    def _evict(self, playhead: int) -> None:
        while self.nbytes > self.max_bytes and self._entries:
            far = max(self._entries, key=lambda k: abs(k - playhead))
            self.nbytes -= len(self._entries.pop(far)[1])
            self.evicted += 1

    def restore(self, index: int, out: NDArray[np.uint8]) -> Optional[Box]:
        """Write frame index into out (an image of the cached size); returns the box
        written, or None when the frame is not cached or out has another size."""
        entry = self._entries.get(index)
        if entry is None or self._size != (out.shape[1], out.shape[0]):
            return None
        (x, y, w, h), packet = entry
        np.copyto(out[y:y + h, x:x + w], self._decoder.decode(packet))
        return x, y, w, h

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
        self.nbytes = 0


def _clip(box: Optional[Box], width: int, height: int) -> Box:
    if box is None:
        return 0, 0, width, height
    x, y, w, h = box
    x0, y0 = min(max(x, 0), width), min(max(y, 0), height)
    x1, y1 = min(max(x + w, 0), width), min(max(y + h, 0), height)
    return x0, y0, x1 - x0, y1 - y0
