"""fastfig.codec.deflate: standard zlib streams out, and an inflate that insists on the exact
size it was promised."""

import tracemalloc
import zlib

import pytest

from fastfig.codec import deflate

DATA = bytes(range(256)) * 40 + b"\0" * 5000


@pytest.mark.parametrize("level", [0, 1, 2, 3, 6, 9])
def test_compress_makes_standard_zlib_streams(level):
    assert zlib.decompress(deflate.compress(DATA, level)) == DATA


def test_decompress_exact_reads_any_zlib_stream():
    for level in (0, 1, 9):
        assert deflate.decompress_exact(zlib.compress(DATA, level), len(DATA)) == DATA
    assert deflate.decompress_exact(deflate.compress(DATA), len(DATA)) == DATA


@pytest.mark.parametrize("stream, size", [
    (zlib.compress(DATA), len(DATA) - 1),                 # longer than promised
    (zlib.compress(DATA), len(DATA) + 1),                 # shorter
    (zlib.compress(DATA)[:-1], len(DATA)),                # truncated checksum
    (zlib.compress(DATA)[:-20], len(DATA)),               # truncated data
    (zlib.compress(DATA) + b"\0", len(DATA)),             # bytes after the stream
    (zlib.compress(DATA) + zlib.compress(DATA), len(DATA)),
    (b"\x78\x9c" + b"\xff" * 30, len(DATA)),              # garbage deflate
    (b"", 1),
    (b"\x78", 1),
    (zlib.compress(b"x")[:2] + b"\0" * 10, 1),
])
def test_decompress_exact_rejects(stream, size):
    assert deflate.decompress_exact(stream, size) is None


def test_corrupt_checksum_is_rejected():
    stream = bytearray(zlib.compress(DATA))
    stream[-1] ^= 1
    assert deflate.decompress_exact(bytes(stream), len(DATA)) is None


def test_crc32_is_the_png_crc():
    assert deflate.crc32(b"IEND") == 0xAE426082


def test_a_deflate_bomb_is_not_inflated_in_full():
    bomb = zlib.compress(bytes(20_000_000), 9)         # 20 MB of zeros in ~20 KB
    tracemalloc.start()
    try:
        assert deflate.decompress_exact(bomb, 1000) is None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
