"""Standard zlib streams through isal when it is installed, through CPython's zlib
otherwise. Same format, at level 1 isal is 8.0-8.5x faster: 1.6 against 13.5 ms for a
1920x1080 RGBA frame of line1, 6.2 against 49.7 ms for heavy, with output 1-11 % smaller
(median of 7, 2026-12-03)."""

import types
import zlib as _stdlib_zlib
from typing import TYPE_CHECKING, Union

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

_zlib: types.ModuleType
try:
    from isal import isal_zlib as _zlib

    BACKEND = "isal"
    #: isal's levels run 0-3; its level 1 compares with zlib's 1-2 at a fraction of the time.
    MAX_LEVEL = 3
except ImportError:  # pragma: no cover - exercised where isal has no wheel
    _zlib = _stdlib_zlib
    BACKEND = "zlib"
    MAX_LEVEL = 9

# isal's crc32 is about 3.5x faster than zlib's on a 1.6 MB payload.
crc32 = getattr(_zlib, "crc32", _stdlib_zlib.crc32)
error = (_stdlib_zlib.error, getattr(_zlib, "error", _stdlib_zlib.error))


#: What deflate reads: any buffer of bytes (the PNG path passes numpy arrays).
_Bytes = Union[bytes, bytearray, memoryview, "NDArray[np.uint8]"]


def compress(data: _Bytes, level: int = 1) -> bytes:
    """A zlib stream (RFC 1950) of data."""
    return _zlib.compress(data, min(level, MAX_LEVEL))


def decompress_exact(data: _Bytes, size: int) -> bytes | None:
    """Inflate a zlib stream that must hold exactly size bytes; None if it is corrupt,
    longer or shorter. Never inflates more than size + 1 bytes (no decompression bomb)."""
    d = _zlib.decompressobj()
    try:
        out = d.decompress(data, size + 1)
    except error:
        return None
    if len(out) != size or not d.eof or d.unconsumed_tail or d.unused_data:
        return None
    return out
