"""FrameDecoder: rebuilds a figure's image from its frame packets, for Python clients.

Every packet is checked in full before a single pixel is written, so a rejected packet
(FrameError) leaves the current image as it was; then the rectangles are decoded straight
into the image by the _encode kernels.
"""

from __future__ import annotations

from typing import Union

import numpy as np
from numpy.typing import NDArray

from .. import _encode
from . import png
from ..errors import FrameError, FrameGap
from .packet import ALL_ENCODINGS, Encoding, Frame, Rect, parse

Image = NDArray[np.uint8]


class FrameDecoder:
    """Apply frame packets to a current image.

    strict: a delta must follow the current image (same epoch and size, sequence number
    one more than the current one, or for a catch-up delta its base_seq the current one)
    or FrameGap is raised; with strict=False deltas are applied to whatever image is
    there, which is only right when no packet can be lost.
    """

    def __init__(self, *, strict: bool = True) -> None:
        self.strict = strict
        self._image: Image | None = None
        self._view: Image | None = None
        self.seq: int | None = None
        self.epoch: int | None = None
        self.timestamp_us = 0
        #: The encodings this decoder reads, for negotiation with a server.
        self.accept = ALL_ENCODINGS

    @property
    def image(self) -> Image | None:
        """The current image, a read-only (H, W, 4) uint8 array updated in place by the
        next decode (copy it to keep it), or None before the first keyframe."""
        return self._view

    @property
    def size(self) -> tuple[int, int] | None:
        return None if self._image is None else (self._image.shape[1], self._image.shape[0])

    def decode(self, packet: Union[bytes, bytearray, memoryview]) -> Image:
        """Apply one packet and return the current image (see ``image``)."""
        frame = parse(packet)
        if not frame.keyframe:
            self._check_follows(frame)
        work = checked_rects(frame)
        # Nothing below can fail: all payloads were checked.
        if frame.keyframe:
            if self._image is None or self.size != (frame.width, frame.height):
                self._image = np.zeros((frame.height, frame.width, 4), np.uint8)
                self._view = self._image.view()
                self._view.flags.writeable = False
            else:
                self._image.fill(0)
        assert self._image is not None and self._view is not None   # a keyframe made it
        write_rects(work, self._image)
        self.seq, self.epoch, self.timestamp_us = frame.seq, frame.epoch, frame.timestamp_us
        return self._view

    def _check_follows(self, frame: Frame) -> None:
        if self._image is None or self.seq is None:
            raise FrameGap(f"delta {frame.seq} before any keyframe", seq=frame.seq)
        if self.strict:
            if frame.epoch != self.epoch:
                raise FrameGap(f"delta of epoch {frame.epoch} on an image of epoch "
                               f"{self.epoch}", expected_seq=None, seq=frame.seq)
            expected = (self.seq + 1) & 0xFFFFFFFF
            if frame.base_seq is not None:
                # A catch-up delta applies to its base image only (PROTOCOL.md 1.4).
                if frame.base_seq != self.seq:
                    raise FrameGap(f"catch-up delta {frame.seq} from frame {frame.base_seq} "
                                   f"on frame {self.seq}", seq=frame.seq)
            elif frame.seq != expected and not (frame.empty and frame.seq == self.seq):
                raise FrameGap(f"delta {frame.seq} does not follow frame {self.seq}",
                               expected_seq=expected, seq=frame.seq)
        size = self.size
        if size != (frame.width, frame.height):
            raise FrameGap(f"delta of size {frame.width}x{frame.height} on an image of "
                           f"size {size[0] if size else 0}x{size[1] if size else 0}",
                           seq=frame.seq)


def checked_rects(frame: Frame) -> list[tuple[Rect, Union[bytes, memoryview]]]:
    """Check every rectangle's payload of a parsed frame (FrameError for the first bad
    one); returns (rect, the data its kernel writes) pairs for write_rects."""
    return [_checked(i, r) for i, r in enumerate(frame.rects)]


def write_rects(work: list[tuple[Rect, Union[bytes, memoryview]]], img: Image,
                dx: int = 0, dy: int = 0) -> None:
    """Write checked rectangles into img (H, W, 4, C-contiguous), each moved by (dx, dy):
    the frame's rectangles must lie inside img once moved. Cannot fail on checked data."""
    for r, data in work:
        x, y = r.x + dx, r.y + dy
        if r.encoding == Encoding.FILL:
            _encode.fill_rect(img, x, y, r.w, r.h, data)
        elif r.encoding == Encoding.RLE:
            _encode.rle_decode(data, img, x, y, r.w, r.h)
        elif r.encoding == Encoding.PNG:
            _encode.png_unfilter(data, img, x, y, r.w, r.h)
        else:
            img[y:y + r.h, x:x + r.w] = np.frombuffer(data, np.uint8).reshape(r.h, r.w, 4)


def _checked(i: int, r: Rect) -> tuple[Rect, Union[bytes, memoryview]]:
    """Check one rectangle's payload; return it with the data its kernel writes."""
    data = r.payload
    if r.encoding == Encoding.RLE:
        if not _encode.rle_valid(data, r.w * r.h):
            raise FrameError(f"rectangle {i}: malformed RLE payload")
    elif r.encoding == Encoding.PNG:
        scanlines, reason = png.read_filtered(data, r.w, r.h)
        if scanlines is None:
            raise FrameError(f"rectangle {i}: {reason}")
        return r, scanlines
    return r, data
