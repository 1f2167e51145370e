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

A frame is usually encoded already: the packet that brought the viewers to it. When
that packet's rectangles cover nearly all the pixels in which the frame differs from the
base (an animation drawn whole, whose changing regions are the same each frame), the
packet itself is kept, with small keyframes of the few boxes it misses (a marker at an
axes' edge in the base and in neither of the last two frames): the base plus those
rectangles is the frame, and the same pixels are not deflated twice. A blitting
animation's delta only covers what moved since the frame before, and its frames are
kept as the box keyframes above. On loopback a packet's rectangles may be RAW (the
server's local settings), which trades memory for speed: heavy at 1920x1080 kept 2.82 MB
a frame instead of 1.44 (45 frames in the default bound instead of 88), and restored one
in 0.8 ms instead of 6.0.

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
from ..codec.decoder import checked_rects, write_rects
from ..codec.encoder import FrameEncoder
from ..codec.packet import parse
from ..errors import FrameError

#: Default bound of one figure's cache.
DEFAULT_MAX_BYTES = 128 * 1024 * 1024


Box = tuple[int, int, int, int]
#: One packet of a kept frame, and where its rectangles go: (dx, dy) added to them.
Part = tuple[bytes, int, int]
#: A kept frame: its box (where it differs from the base, as put() returned it), and the
#: packets that write it over the base.
Entry = tuple[Box, tuple[Part, ...]]
#: A viewer's packet is kept for a frame when the boxes it misses add up to at most
#: this share of its own area (more: the frame is encoded as one box instead).
MAX_MISSED = 0.25


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
        self._entries: dict[int, Entry] = {}
        self._base: Optional[NDArray[np.uint8]] = None
        self._encoders: dict[tuple[int, int], FrameEncoder] = {}
        self._rects = np.empty((0, 4), np.int32)
        self.shared = 0              # frames kept as the packet their viewers were sent

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, index: object) -> bool:
        return index in self._entries

    def put(self, index: int, rgba: NDArray[np.uint8], scan: Optional[Box] = None,
            playhead: Optional[int] = None, packet: Optional[bytes] = None) -> Optional[Box]:
        """Keep frame index, the image rgba (H, W, 4). scan: where it can differ from
        the frames before (a blitting animation's boxes; None: anywhere). packet: the
        frame packet whose rectangles hold rgba's pixels (the one that brought viewers
        to it), kept instead of a new encoding when they cover all that differs from
        the base. Frames of another size are dropped first. Then the frames farthest
        from playhead (default: index) go until the cache fits its bound, the new frame
        too if it alone exceeds it. Returns the box in which the frame differs from the
        base (see restore), or None when it was not kept."""
        h, w = rgba.shape[:2]
        if self._base is None or self._base.shape != rgba.shape:
            self.clear()
            if w * h * 4 > self.max_bytes:
                return None
            self._base = rgba.copy()
            self.nbytes = self._base.nbytes
            cell = 64
            self._rects = np.empty((-(-w // cell) * -(-h // cell), 4), np.int32)
        differs = self._differs(rgba, _clip(scan, w, h))
        entry = None if packet is None else self._packet_entry(rgba, packet, differs)
        if entry is None:
            entry = self._box_entry(rgba, _bounds(differs))
        else:
            self.shared += 1
        old = self._entries.pop(index, None)
        if old is not None:
            self.nbytes -= _size(old)
        self._entries[index] = entry
        self.nbytes += _size(entry)
        self._evict(index if playhead is None else playhead)
        return entry[0] if index in self._entries else None

    def _differs(self, rgba: NDArray[np.uint8], scan: Box) -> NDArray[np.int32]:
        """The rectangles (n, 4) in which rgba differs from the base, looked for in scan."""
        assert self._base is not None
        if not scan[2] or not scan[3]:
            return self._rects[:0]
        region = np.array([scan], np.int32)
        n = _encode.damage(np.ascontiguousarray(rgba), self._base, region, 64, 0,
                           self._rects)
        return self._rects[:n]

    def _box_entry(self, rgba: NDArray[np.uint8], box: Box) -> Entry:
        """The frame as a keyframe of the box in which it differs from the base."""
        if not (box[2] and box[3]):
            return box, ()
        return box, (self._keyframe(rgba, box),)

    def _keyframe(self, rgba: NDArray[np.uint8], box: Box) -> Part:
        x, y, bw, bh = box
        encoder = self._encoders.get((bw, bh))
        if encoder is None:
            encoder = self._encoders[(bw, bh)] = FrameEncoder(bw, bh)
        return bytes(encoder.keyframe(rgba[y:y + bh, x:x + bw])), x, y

    def _packet_entry(self, rgba: NDArray[np.uint8], packet: bytes,
                      differs: NDArray[np.int32]) -> Optional[Entry]:
        """The frame as the given packet and keyframes of the boxes of ``differs``
        (where it differs from the base) that the packet misses, or None when the
        packet is not of this image's size or misses too much."""
        try:
            frame = parse(packet)
        except FrameError:
            return None
        h, w = rgba.shape[:2]
        if (frame.width, frame.height) != (w, h) or not frame.rects:
            return None
        covers = [(r.x, r.y, r.w, r.h) for r in frame.rects]
        area = sum(r.w * r.h for r in frame.rects)
        bounds = _bounds(differs)
        if area > bounds[2] * bounds[3]:
            return None   # more than the box's keyframe would hold (a keyframe packet)
        assert self._base is not None
        missed = [m for m in (_missed((int(d[0]), int(d[1]), int(d[2]), int(d[3])), covers,
                                      rgba, self._base) for d in differs) if m]
        if sum(m[2] * m[3] for m in missed) > MAX_MISSED * area:
            return None
        parts = ((bytes(packet), 0, 0), *(self._keyframe(rgba, m) for m in missed))
        return _bounds(np.array(covers + missed, np.int64)), parts

    def _evict(self, playhead: int) -> None:
        while self.nbytes > self.max_bytes and self._entries:
            far = max(self._entries, key=lambda k: abs(k - playhead))
            self.nbytes -= _size(self._entries.pop(far))
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
        box, parts = entry
        if shown is None:
            np.copyto(out, base)
            changed = None
        else:
            _copy_box(base, out, shown)
            changed = _union(shown, box)
        for packet, dx, dy in parts:
            # Checked when it was made or sent; checked again, as any packet read back.
            write_rects(checked_rects(parse(packet)), out, dx, dy)
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


def _bounds(rects: NDArray[np.integer]) -> Box:
    """The bounding box of rectangles (n, 4); (0, 0, 0, 0) for none."""
    if not len(rects):
        return (0, 0, 0, 0)
    x0, y0 = int(rects[:, 0].min()), int(rects[:, 1].min())
    return (x0, y0, int((rects[:, 0] + rects[:, 2]).max()) - x0,
            int((rects[:, 1] + rects[:, 3]).max()) - y0)


def _size(entry: Entry) -> int:
    return sum(len(packet) for packet, _, _ in entry[1])


def _missed(box: Box, covers: list[Box], rgba: NDArray[np.uint8],
            base: NDArray[np.uint8]) -> Optional[Box]:
    """The bounding box of the pixels of box in which rgba differs from base and that
    none of the boxes covers holds, or None when there are none."""
    x, y, w, h = box
    if not (w and h):
        return None
    near = []
    for cx, cy, cw, ch in covers:
        if cx <= x and cy <= y and x + w <= cx + cw and y + h <= cy + ch:
            return None   # inside one: the usual case
        if cx < x + w and x < cx + cw and cy < y + h and y < cy + ch:
            near.append((cx, cy, cw, ch))
    out = (rgba[y:y + h, x:x + w] != base[y:y + h, x:x + w]).any(axis=2)
    for cx, cy, cw, ch in near:
        out[max(cy - y, 0):min(cy + ch - y, h), max(cx - x, 0):min(cx + cw - x, w)] = False
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    if not len(rows):
        return None
    return (x + int(cols[0]), y + int(rows[0]), int(cols[-1] - cols[0]) + 1,
            int(rows[-1] - rows[0]) + 1)


def _clip(box: Optional[Box], width: int, height: int) -> Box:
    if box is None:
        return 0, 0, width, height
    x, y, w, h = box
    x0, y0 = min(max(x, 0), width), min(max(y, 0), height)
    x1, y1 = min(max(x + w, 0), width), min(max(y + h, 0), height)
    return x0, y0, x1 - x0, y1 - y0
