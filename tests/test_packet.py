"""The frame packet (fastfig/codec/packet.py): its byte layout, and parse's rejection of
malformed packets with FrameError."""

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastfig import Encoding, Frame, FrameError, Rect
from fastfig.codec.packet import MAX_SIDE, pack, parse


def le32(v):
    return struct.pack("<I", v)


def header(*, magic=b"FFIG", major=1, minor=0, header_size=40, flags=0, epoch=0, seq=1,
           width=8, height=6, nrects=0, timestamp_us=0):
    """A packet header written field by field, independently of packet.HEADER."""
    return (magic + bytes([major, minor]) + struct.pack("<H", header_size)
            + b"".join(le32(v) for v in (flags, epoch, seq, width, height, nrects))
            + struct.pack("<Q", timestamp_us))


def entry(x, y, w, h, encoding, length):
    return b"".join(le32(v) for v in (x, y, w, h)) + bytes([encoding, 0, 0, 0]) + le32(length)


def test_header_layout():
    frame = Frame(seq=0x01020304, epoch=0x0A0B0C0D, keyframe=True, width=37, height=23,
                  rects=(), timestamp_us=0x1122334455667788)
    expected = (b"FFIG\x01\x00\x28\x00" + b"\x01\0\0\0" + b"\x0d\x0c\x0b\x0a"
                + b"\x04\x03\x02\x01" + b"\x25\0\0\0" + b"\x17\0\0\0" + b"\0\0\0\0"
                + b"\x88\x77\x66\x55\x44\x33\x22\x11")
    assert bytes(frame) == expected == header(flags=1, epoch=0x0A0B0C0D, seq=0x01020304,
                                              width=37, height=23,
                                              timestamp_us=0x1122334455667788)


def test_rect_table_and_padded_payloads():
    rects = (Rect(1, 2, 3, 1, Encoding.RLE, b"R" * 5),
             Rect(0, 0, 1, 1, Encoding.FILL, b"\1\2\3\4"),
             Rect(4, 0, 2, 2, Encoding.PNG, b"P" * 7),
             Rect(0, 5, 8, 1, Encoding.RAW, b"W" * 32))
    frame = Frame(seq=9, epoch=3, keyframe=False, width=8, height=6, rects=rects)
    expected = (header(epoch=3, seq=9, nrects=4)
                + entry(1, 2, 3, 1, 2, 5) + entry(0, 0, 1, 1, 1, 4)
                + entry(4, 0, 2, 2, 3, 7) + entry(0, 5, 8, 1, 0, 32)
                + b"R" * 5 + b"\0" * 3 + b"\1\2\3\4" + b"P" * 7 + b"\0" + b"W" * 32)
    assert bytes(frame) == expected
    assert frame.nbytes == len(expected)
    assert frame.encodings() == {"rle": 1, "fill": 1, "png": 1, "raw": 1}
    assert not frame.empty


def test_encoding_values_are_the_wire_bytes():
    assert [Encoding.RAW, Encoding.FILL, Encoding.RLE, Encoding.PNG] == [0, 1, 2, 3]


def test_encoding_parse():
    assert Encoding.parse("png") is Encoding.PNG
    assert Encoding.parse("RLE") is Encoding.RLE
    assert Encoding.parse(1) is Encoding.FILL
    assert Encoding.parse(Encoding.RAW) is Encoding.RAW
    for bad in ("jpeg", "", 7):
        with pytest.raises(ValueError):
            Encoding.parse(bad)


@st.composite
def frames(draw):
    width = draw(st.integers(1, 50))
    height = draw(st.integers(1, 50))
    rects = []
    for _ in range(draw(st.integers(0, 5))):
        x = draw(st.integers(0, width - 1))
        y = draw(st.integers(0, height - 1))
        w = draw(st.integers(1, width - x))
        h = draw(st.integers(1, height - y))
        enc = draw(st.sampled_from(Encoding))
        if enc == Encoding.RAW:
            payload = draw(st.binary(min_size=4 * w * h, max_size=4 * w * h))
        elif enc == Encoding.FILL:
            payload = draw(st.binary(min_size=4, max_size=4))
        else:
            payload = draw(st.binary(max_size=30))
        rects.append(Rect(x, y, w, h, enc, payload))
    return Frame(seq=draw(st.integers(0, 2**32 - 1)), epoch=draw(st.integers(0, 2**32 - 1)),
                 keyframe=draw(st.booleans()), width=width, height=height,
                 rects=tuple(rects), timestamp_us=draw(st.integers(0, 2**64 - 1)))


@given(frames(), st.sampled_from([bytes, bytearray, memoryview]))
def test_parse_inverts_pack(frame, kind):
    packet = pack(frame)
    assert len(packet) == frame.nbytes and len(packet) % 4 == 0
    parsed = parse(kind(packet))
    assert parsed == Frame(frame.seq, frame.epoch, frame.keyframe, frame.width,
                           frame.height, tuple(parsed.rects), frame.timestamp_us)
    assert [(r.x, r.y, r.w, r.h, r.encoding, bytes(r.payload)) for r in parsed.rects] == \
           [(r.x, r.y, r.w, r.h, r.encoding, r.payload) for r in frame.rects]
    assert pack(parsed) == packet


def test_payload_offsets_are_aligned():
    rects = tuple(Rect(0, 0, 1, 1, Encoding.RLE, bytes([65 + i]) * (i + 1)) for i in range(6))
    packet = pack(Frame(1, 0, False, 4, 4, rects))
    offset = 40 + 24 * len(rects)
    for r in rects:
        assert offset % 4 == 0 and packet[offset:offset + len(r.payload)] == r.payload
        offset += (len(r.payload) + 3) & ~3
    assert offset == len(packet)


def test_sequence_numbers_wrap():
    frame = Frame(seq=2**32 + 5, epoch=2**32 + 1, keyframe=False, width=1, height=1, rects=())
    parsed = parse(pack(frame))
    assert (parsed.seq, parsed.epoch) == (5, 1)


def test_a_later_minor_version_and_a_longer_header_are_read():
    packet = header(minor=7, header_size=48, nrects=1) + b"\xee" * 8 \
        + entry(0, 0, 1, 1, 1, 4) + b"\1\2\3\4"
    frame = parse(packet)
    assert len(frame.rects) == 1 and bytes(frame.rects[0].payload) == b"\1\2\3\4"


GOOD = header(nrects=1, width=8, height=6) + entry(0, 0, 2, 1, 0, 8) + b"\7" * 8


@pytest.mark.parametrize("packet, message", [
    (b"", "shorter"),
    (GOOD[:39], "shorter"),
    (b"FFIH" + GOOD[4:], "magic"),
    (b"\x89PNG" + GOOD[4:], "magic"),
    (header(major=2, nrects=1) + GOOD[40:], "version"),
    (header(major=0, nrects=1) + GOOD[40:], "version"),
    (header(header_size=36, nrects=1) + GOOD[40:], "header size"),
    (header(header_size=42, nrects=1) + GOOD[40:], "header size"),
    (header(header_size=4000, nrects=1) + GOOD[40:], "header size"),
    (header(width=0, nrects=1) + GOOD[40:], "canvas"),
    (header(height=0, nrects=1) + GOOD[40:], "canvas"),
    (header(width=MAX_SIDE + 1, nrects=1) + GOOD[40:], "canvas"),
    (header(nrects=1), "do not fit"),                                   # no table
    (header(nrects=1) + GOOD[40:63], "do not fit"),                     # truncated table
    (header(nrects=2**32 - 1) + GOOD[40:], "do not fit"),
    (header(nrects=1) + entry(7, 0, 2, 1, 0, 8) + b"\7" * 8, "outside"),
    (header(nrects=1) + entry(0, 5, 1, 2, 0, 8) + b"\7" * 8, "outside"),
    (header(nrects=1) + entry(2**32 - 1, 0, 2, 1, 0, 8) + b"\7" * 8, "outside"),
    (header(nrects=1) + entry(0, 0, 0, 1, 2, 0), "outside"),           # zero width
    (header(nrects=1) + entry(0, 0, 1, 0, 2, 0), "outside"),           # zero height
    (header(nrects=1) + entry(0, 0, 2, 1, 4, 8) + b"\7" * 8, "unknown encoding"),
    (header(nrects=1) + entry(0, 0, 2, 1, 255, 8) + b"\7" * 8, "unknown encoding"),
    (header(nrects=1) + entry(0, 0, 2, 1, 0, 4) + b"\7" * 4, "expected 8"),   # RAW
    (header(nrects=1) + entry(0, 0, 2, 1, 0, 12) + b"\7" * 12, "expected 8"),
    (header(nrects=1) + entry(0, 0, 2, 1, 1, 8) + b"\7" * 8, "expected 4"),   # FILL
    (header(nrects=1) + entry(0, 0, 2, 1, 1, 3) + b"\7" * 4, "expected 4"),
    (GOOD[:-1], "past the end"),
    (header(nrects=1) + entry(0, 0, 2, 1, 2, 9) + b"\7" * 9, "past the end"),   # no padding
    (header(nrects=1) + entry(0, 0, 2, 1, 3, 2**32 - 1) + b"\7" * 8, "past the end"),
    (GOOD + b"\0" * 4, "unexpected bytes"),
    (GOOD + b"\0", "unexpected bytes"),
    (header(nrects=0) + b"\0" * 4, "unexpected bytes"),
])
def test_parse_rejects(packet, message):
    with pytest.raises(FrameError, match=message):
        parse(packet)


def test_good_packet_of_the_rejection_table_parses():
    assert parse(GOOD).rects[0].payload.tobytes() == b"\7" * 8


def test_frame_error_is_a_value_error():
    assert issubclass(FrameError, ValueError)
