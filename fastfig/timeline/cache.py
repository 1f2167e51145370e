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


class FrameCache:
    """Encoded frames by index, at most max_bytes of packets (all of one image size)."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.evicted = 0
        self._packets: dict[int, bytes] = {}
        self._size: Optional[tuple[int, int]] = None
        self._encoder: Optional[FrameEncoder] = None
        self._decoder = FrameDecoder(strict=False)

    def __len__(self) -> int:
        return len(self._packets)

    def __contains__(self, index: object) -> bool:
        return index in self._packets

    def put(self, index: int, rgba: NDArray[np.uint8], playhead: Optional[int] = None) -> None:
        """Keep frame index, the image rgba (H, W, 4); frames of another size are
        dropped first. Then frames farthest from playhead (default: index) go until the
        cache fits its bound (the new frame too, if it alone exceeds it)."""
        h, w = rgba.shape[:2]
        if self._size != (w, h):
            self.clear()
            self._size = (w, h)
            self._encoder = FrameEncoder(w, h)
        assert self._encoder is not None
        packet = bytes(self._encoder.keyframe(rgba))
        old = self._packets.pop(index, None)
        if old is not None:
            self.nbytes -= len(old)
        self._packets[index] = packet
        self.nbytes += len(packet)
        self._evict(index if playhead is None else playhead)

    def _evict(self, playhead: int) -> None:
        while self.nbytes > self.max_bytes and self._packets:
            far = max(self._packets, key=lambda k: abs(k - playhead))
            self.nbytes -= len(self._packets.pop(far))
            self.evicted += 1

    def restore(self, index: int, out: NDArray[np.uint8]) -> bool:
        """Write frame index into out (an image of the cached size); False when it is
        not cached or out has another size."""
        packet = self._packets.get(index)
        if packet is None or self._size != (out.shape[1], out.shape[0]):
            return False
        image = self._decoder.decode(packet)
        np.copyto(out, image)
        return True

    def run(self, index: int) -> Optional[tuple[int, int]]:
        """The run of consecutive cached frames that holds index, or None."""
        if index not in self._packets:
            return None
        first = last = index
        while first - 1 in self._packets:
            first -= 1
        while last + 1 in self._packets:
            last += 1
        return first, last

    def clear(self) -> None:
        self._packets.clear()
        self.nbytes = 0
