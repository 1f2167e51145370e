"""PNG files of frame rectangles, written straight from the frame buffer: our own row
filter (Cython), deflate through fastfig.deflate, and the three chunks a browser needs.
Skipping Pillow's per-row filter search and its level-6 zlib is most of the speed-up
(bench/README.md, the codec against Pillow). The reader accepts any 8-bit RGBA
non-interlaced PNG, which is every PNG fastfig writes; it is strict, as its input comes
off the network."""

from __future__ import annotations

import struct
from typing import Union

import numpy as np
from numpy.typing import NDArray

from .. import _encode
from . import deflate

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR = struct.Struct(">IIBBBBB")
_CHUNK_HEAD = struct.Struct(">I4s")

FILTERS = {
    "none": _encode.FILTER_NONE,
    "sub": _encode.FILTER_SUB,
    "up": _encode.FILTER_UP,
    "adaptive": _encode.FILTER_ADAPTIVE,
}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return b"".join((struct.pack(">I", len(data)), kind, data,
                     struct.pack(">I", deflate.crc32(data, deflate.crc32(kind)))))


_IEND = _chunk(b"IEND", b"")


def filtered_size(w: int, h: int) -> int:
    """Bytes of filtered scanlines of a w x h RGBA image."""
    return h * (4 * w + 1)


def encode(img: NDArray[np.uint8], x: int, y: int, w: int, h: int,
           scratch: NDArray[np.uint8], *, level: int = 1, filter: str = "adaptive") -> bytes:
    """A PNG file of the rectangle (x, y, w, h) of the RGBA image img. scratch is a
    caller-owned uint8 buffer of at least filtered_size(w, h) bytes, reused across
    frames."""
    n = _encode.png_filter(img, x, y, w, h, FILTERS[filter], scratch)
    idat = deflate.compress(scratch[:n], level)
    return b"".join((SIGNATURE, _chunk(b"IHDR", _IHDR.pack(w, h, 8, 6, 0, 0, 0)),
                     _chunk(b"IDAT", idat), _IEND))


def read_filtered(data: Union[bytes, memoryview], w: int,
                  h: int) -> tuple[bytes, None] | tuple[None, str]:
    """The filtered scanlines inside a PNG file that must be a w x h 8-bit RGBA image,
    checked (chunk order, CRCs, header fields, exact inflated size, filter types) so that
    _encode.png_unfilter can write them without failing. Returns None if anything is off,
    with the reason as the second item: (scanlines, None) or (None, reason)."""
    data = memoryview(data)
    if bytes(data[:8]) != SIGNATURE:
        return None, "not a PNG file"
    pos = 8
    idat = []
    seen_header = False
    while True:
        if pos + 12 > len(data):
            return None, "PNG ends before its IEND chunk"
        length, kind = _CHUNK_HEAD.unpack_from(data, pos)
        body = data[pos + 8:pos + 8 + length]
        if length > len(data) - pos - 12:
            return None, "PNG chunk runs past the payload"
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        if crc != deflate.crc32(body, deflate.crc32(kind)):
            return None, f"PNG chunk {kind!r} fails its CRC"
        pos += 12 + length
        if not seen_header:
            if kind != b"IHDR" or length != _IHDR.size:
                return None, "PNG does not start with IHDR"
            pw, ph, depth, color, compression, filt, interlace = _IHDR.unpack(body)
            if (pw, ph) != (w, h):
                return None, f"PNG is {pw}x{ph}, its rectangle {w}x{h}"
            if (depth, color, compression, filt, interlace) != (8, 6, 0, 0, 0):
                return None, "PNG is not 8-bit non-interlaced RGBA"
            seen_header = True
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        elif kind[0] & 0x20 == 0:  # an unknown critical chunk cannot be skipped
            return None, f"PNG has an unknown critical chunk {bytes(kind)!r}"
    if pos != len(data):
        return None, "bytes after the PNG's IEND chunk"
    stream = idat[0] if len(idat) == 1 else b"".join(idat)
    scanlines = deflate.decompress_exact(stream, filtered_size(w, h))
    if scanlines is None:
        return None, "PNG image data is corrupt or of the wrong size"
    if not _encode.png_filters_valid(scanlines, w, h):
        return None, "PNG has an unknown row filter"
    return scanlines, None
