"""The frame packet: the bytes one frame occupies on the wire (PROTOCOL.md, "Frame
packet"). Packing and parsing only; what goes in a rectangle is the encoder's business.

All integers are little-endian. A packet is a 40-byte header (44 for a catch-up delta,
which appends its base_seq), a table of 24-byte rectangle entries, then the payloads in
table order, each padded with zeros to a multiple of 4 bytes so that every payload starts
4-byte aligned (a browser can view an RLE payload as a Uint32Array without copying).

The constants below are the wire format's numbers, declared here once; the viewer's
fastfig/web/static/packet.js repeats them and tests/test_packet_js.py holds the two equal.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, field
from typing import NamedTuple, Union

from ..errors import FrameError

MAGIC = b"FFIG"
VERSION_MAJOR = 1
#: The newest minor version this module reads and writes. Keyframes and ordinary deltas
#: are still written as 1.0 (their bytes did not change); only a catch-up delta, which a
#: 1.0 reader must not take for an ordinary one, is written as 1.1.
VERSION_MINOR = 1
#: Largest canvas side; keeps every pixel count below 2**31 (RLE counts are 31-bit).
MAX_SIDE = 32768

HEADER = struct.Struct("<4sBBHIIIIIIQ")
#: What version 1.1 appends to the header of a catch-up delta: base_seq.
HEADER_BASE = struct.Struct("<I")
RECT = struct.Struct("<IIIIB3xI")
HEADER_SIZE = HEADER.size
HEADER_SIZE_BASE = HEADER.size + HEADER_BASE.size
RECT_SIZE = RECT.size
assert HEADER_SIZE == 40 and HEADER_SIZE_BASE == 44 and RECT_SIZE == 24

#: Header flag bits.
FLAG_KEYFRAME = 1
#: A catch-up delta: it applies to the image base_seq (header offset 40), not seq - 1.
FLAG_BASE = 2


class Encoding(enum.IntEnum):
    """How a rectangle's pixels are coded; the value is the byte on the wire."""

    RAW = 0   # w*h*4 bytes of RGBA, row after row
    FILL = 1  # 4 bytes: one RGBA colour for the whole rectangle
    RLE = 2   # fastfig run-length words (PROTOCOL.md)
    PNG = 3   # a complete 8-bit RGBA PNG file of w x h pixels

    @classmethod
    def parse(cls, name: Union["Encoding", int, str]) -> "Encoding":
        """An Encoding from itself, its value or its lower-case name ("png")."""
        if isinstance(name, cls):
            return name
        if isinstance(name, int):
            return cls(name)
        try:
            return cls[str(name).upper()]
        except KeyError:
            raise ValueError(f"unknown encoding {name!r}; known: "
                             f"{', '.join(e.name.lower() for e in cls)}") from None


ALL_ENCODINGS = frozenset(Encoding)


@dataclass(frozen=True, slots=True)
class Rect:
    """One rectangle of a frame: where it goes and its encoded pixels."""

    x: int
    y: int
    w: int
    h: int
    encoding: Encoding
    #: bytes when encoded; a memoryview into the packet when parsed
    payload: Union[bytes, memoryview] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame of a figure's stream. ``bytes(frame)`` is its wire packet.

    A keyframe replaces the whole image (pixels its rectangles do not cover become
    transparent black); a delta changes only its rectangles of the image with sequence
    number ``seq - 1``. A delta with no rectangles carries the current ``seq`` and means
    "nothing changed". A catch-up delta (``base_seq`` not None) applies to the image
    ``base_seq`` of its epoch instead of ``seq - 1``; it carries every change since."""

    seq: int
    epoch: int
    keyframe: bool
    width: int
    height: int
    rects: tuple[Rect, ...]
    timestamp_us: int = 0
    base_seq: int | None = None

    @property
    def empty(self) -> bool:
        return not self.rects

    def __bytes__(self) -> bytes:
        return pack(self)

    @property
    def nbytes(self) -> int:
        """Length of the wire packet."""
        return (_header_size(self) + RECT.size * len(self.rects)
                + sum(_padded(len(r.payload)) for r in self.rects))

    def encodings(self) -> dict[str, int]:
        """How many rectangles use each encoding, by lower-case name."""
        counts: dict[str, int] = {}
        for r in self.rects:
            counts[r.encoding.name.lower()] = counts.get(r.encoding.name.lower(), 0) + 1
        return counts


def _padded(n: int) -> int:
    return (n + 3) & ~3


def _header_size(frame: Frame) -> int:
    return HEADER_SIZE if frame.base_seq is None else HEADER_SIZE_BASE


_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")


def pack(frame: Frame) -> bytes:
    """The wire packet of a frame: version 1.0 unless it is a catch-up delta (1.1)."""
    if frame.base_seq is None:
        minor, flags, tail = 0, FLAG_KEYFRAME if frame.keyframe else 0, b""
    elif frame.keyframe:
        raise ValueError("a keyframe has no base: it applies to any image")
    else:
        minor, flags, tail = 1, FLAG_BASE, HEADER_BASE.pack(frame.base_seq & 0xFFFFFFFF)
    header = HEADER.pack(MAGIC, VERSION_MAJOR, minor, _header_size(frame), flags,
                         frame.epoch & 0xFFFFFFFF, frame.seq & 0xFFFFFFFF,
                         frame.width, frame.height, len(frame.rects), frame.timestamp_us)
    parts: list[bytes | memoryview] = [header, tail]
    parts.extend(RECT.pack(r.x, r.y, r.w, r.h, r.encoding, len(r.payload)) for r in frame.rects)
    for r in frame.rects:
        parts.append(r.payload)
        parts.append(_PADDING[len(r.payload) & 3])
    return b"".join(parts)


def _fixed_length(enc: Encoding, w: int, h: int) -> int | None:
    """The payload length an encoding must have, or None where it varies."""
    if enc == Encoding.RAW:
        return w * h * 4
    if enc == Encoding.FILL:
        return 4
    return None


def parse(packet: Union[bytes, bytearray, memoryview]) -> Frame:
    """Parse and check the structure of a packet: header, version, sizes, rectangles
    inside the canvas, payload lengths. Payload contents (RLE words, PNG streams) are
    checked by the decoder. Raises FrameError; returns a Frame whose payloads are
    memoryviews into packet."""
    buf = memoryview(packet).cast("B")
    if len(buf) < HEADER.size:
        raise FrameError(f"packet of {len(buf)} bytes is shorter than the {HEADER.size}-byte header")
    (magic, major, _minor, header_size, flags, epoch, seq, width, height, nrects,
     timestamp_us) = HEADER.unpack_from(buf)
    if magic != MAGIC:
        raise FrameError(f"not a fastfig frame packet (magic {bytes(magic)!r})")
    if major != VERSION_MAJOR:
        raise FrameError(f"frame packet version {major}.{_minor} is not supported "
                         f"(this decoder reads version {VERSION_MAJOR}.x)")
    # A later minor version may append header fields: skip what we do not know.
    if header_size < HEADER.size or header_size % 4 or header_size > len(buf):
        raise FrameError(f"bad header size {header_size}")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise FrameError(f"canvas size {width}x{height} outside 1..{MAX_SIDE}")
    base_seq = None
    if flags & FLAG_BASE:
        if flags & FLAG_KEYFRAME:
            raise FrameError("a keyframe with a base (flags keyframe and base both set)")
        if header_size < HEADER_SIZE_BASE:
            raise FrameError(f"a catch-up delta needs a header of at least "
                             f"{HEADER_SIZE_BASE} bytes, not {header_size}")
        (base_seq,) = HEADER_BASE.unpack_from(buf, HEADER_SIZE)
    table_end = header_size + RECT.size * nrects
    if table_end > len(buf):
        raise FrameError(f"{nrects} rectangles do not fit in a {len(buf)}-byte packet")
    rects = []
    offset = table_end
    for i in range(nrects):
        x, y, w, h, enc, length = RECT.unpack_from(buf, header_size + RECT.size * i)
        if w < 1 or h < 1 or x + w > width or y + h > height:
            raise FrameError(f"rectangle {i} ({x}, {y}, {w}x{h}) is outside the "
                             f"{width}x{height} canvas")
        try:
            enc = Encoding(enc)
        except ValueError:
            raise FrameError(f"rectangle {i} has unknown encoding {enc}") from None
        expected = _fixed_length(enc, w, h)
        if expected is not None and length != expected:
            raise FrameError(f"rectangle {i} ({enc.name}) payload is {length} bytes, "
                             f"expected {expected}")
        end = offset + length
        if _padded(end) > len(buf):
            raise FrameError(f"rectangle {i} payload runs past the end of the packet")
        rects.append(Rect(x, y, w, h, enc, buf[offset:end]))
        offset = _padded(end)
    if offset != len(buf):
        raise FrameError(f"{len(buf) - offset} unexpected bytes after the last payload")
    return Frame(seq=seq, epoch=epoch, keyframe=bool(flags & FLAG_KEYFRAME),
                 width=width, height=height, rects=tuple(rects), timestamp_us=timestamp_us,
                 base_seq=base_seq)


class Peek(NamedTuple):
    """What a packet's header says about its place in the stream (see ``peek``)."""

    epoch: int
    seq: int
    keyframe: bool
    #: The seq of the image this packet applies to: None for a keyframe (it applies to
    #: any), seq - 1 for an ordinary delta, the header's base_seq for a catch-up delta.
    base_seq: int | None
    width: int
    height: int
    timestamp_us: int


def peek(data: Union[bytes, bytearray, memoryview]) -> Peek:
    """Read a packet's header only: the one header parser of the transport (client,
    server, bridge, relay), which route packets without decoding them. Checks the magic,
    the major version and the header's length; the rest is the decoder's to check.
    Raises FrameError."""
    if len(data) < HEADER_SIZE:
        raise FrameError(f"packet of {len(data)} bytes is shorter than the "
                         f"{HEADER_SIZE}-byte header")
    (magic, major, _minor, header_size, flags, epoch, seq, width, height, _nrects,
     timestamp_us) = HEADER.unpack_from(data)
    if magic != MAGIC or major != VERSION_MAJOR:
        raise FrameError(f"not a version {VERSION_MAJOR} fastfig frame packet")
    keyframe = bool(flags & FLAG_KEYFRAME)
    if keyframe:
        base: int | None = None
    elif flags & FLAG_BASE:
        if header_size < HEADER_SIZE_BASE or len(data) < HEADER_SIZE_BASE:
            raise FrameError("a catch-up delta without its base_seq")
        (base,) = HEADER_BASE.unpack_from(data, HEADER_SIZE)
    else:
        base = (seq - 1) & 0xFFFFFFFF
    return Peek(epoch, seq, keyframe, base, width, height, timestamp_us)
