"""PNG files (fastfig/codec/png.py) against an independent implementation: Pillow reads every
PNG fastfig writes to the same pixels, and fastfig reads Pillow's PNGs, whichever of the
five row filters Pillow chose."""

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from fastfig import _encode

from fastfig.codec import png
from strategies import image_and_rect, make_pixels


def chunks(data):
    """The (type, body) chunks of a PNG file."""
    pos, out = 8, []
    while pos < len(data):
        (n,) = struct.unpack_from(">I", data, pos)
        out.append((data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]))
        pos += 12 + n
    return out


def read_with_fastfig(data, w, h):
    scanlines, reason = png.read_filtered(data, w, h)
    assert reason is None, reason
    out = np.zeros((h, w, 4), np.uint8)
    _encode.png_unfilter(scanlines, out, 0, 0, w, h)
    return out


def read_with_pillow(data):
    with Image.open(io.BytesIO(data)) as im:
        assert im.mode == "RGBA"
        return np.asarray(im.convert("RGBA")).copy()


def pillow_png(img, **save_args):
    buf = io.BytesIO()
    Image.fromarray(img, "RGBA").save(buf, "PNG", **save_args)
    return buf.getvalue()


@given(image_and_rect(), st.sampled_from(sorted(png.FILTERS)), st.integers(0, 9))
def test_pillow_reads_our_pngs(case, filter_name, level):
    img, (x, y, w, h) = case
    scratch = np.empty(png.filtered_size(w, h), np.uint8)
    data = png.encode(img, x, y, w, h, scratch, level=level, filter=filter_name)
    expected = img[y:y + h, x:x + w]
    assert np.array_equal(read_with_pillow(data), expected)
    assert np.array_equal(read_with_fastfig(data, w, h), expected)


def test_our_pngs_hold_exactly_the_chunks_a_browser_needs():
    img = make_pixels("gradient", 9, 4, 1)
    data = png.encode(img, 0, 0, 9, 4, np.empty(png.filtered_size(9, 4), np.uint8))
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert [kind for kind, _ in chunks(data)] == [b"IHDR", b"IDAT", b"IEND"]
    assert chunks(data)[0][1] == struct.pack(">IIBBBBB", 9, 4, 8, 6, 0, 0, 0)


# Images on which Pillow's optimizing encoder picks each of the five row filters.
PILLOW_IMAGES = [make_pixels(style, w, h, seed) for style in ("noise", "gradient", "runs")
                 for (w, h), seed in (((40, 30), 1), ((1, 17), 2), ((17, 1), 3), ((300, 200), 4))]


@pytest.mark.parametrize("save_args", [{}, {"optimize": True}, {"compress_level": 0},
                                       {"compress_level": 9}])
def test_we_read_pillow_pngs(save_args):
    for img in PILLOW_IMAGES:
        h, w = img.shape[:2]
        assert np.array_equal(read_with_fastfig(pillow_png(img, **save_args), w, h), img)


def test_pillow_pngs_cover_every_filter_type_and_split_idat():
    """The images above do exercise all five filters and multi-chunk image data."""
    types, most_idat = set(), 0
    for img in PILLOW_IMAGES:
        h, w = img.shape[:2]
        data = pillow_png(img, optimize=True)
        scanlines, _ = png.read_filtered(data, w, h)
        types |= set(scanlines[::4 * w + 1])
        most_idat = max(most_idat, sum(kind == b"IDAT" for kind, _ in chunks(data)))
    assert types == {0, 1, 2, 3, 4}
    assert most_idat > 1


def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_ancillary_chunks_are_skipped_and_split_idat_joined():
    img = make_pixels("noise", 5, 3, 9)
    raw = b"".join(b"\0" + img[r].tobytes() for r in range(3))
    stream = zlib.compress(raw)
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 5, 3, 8, 6, 0, 0, 0))
            + chunk(b"tEXt", b"Software\0test") + chunk(b"IDAT", stream[:7])
            + chunk(b"IDAT", b"") + chunk(b"IDAT", stream[7:]) + chunk(b"IEND", b""))
    assert np.array_equal(read_with_fastfig(data, 5, 3), img)


def test_filtered_size():
    assert png.filtered_size(3, 2) == 2 * 13
