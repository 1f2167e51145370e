"""FrameDecoder (fastfig/codec/decoder.py) facing packets off the network: whatever is wrong
with a packet, decode raises FrameError and the image, sequence number and epoch stay as
they were; no packet makes it raise anything else or crash."""

import struct
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastfig import Encoding, Frame, FrameDecoder, FrameEncoder, FrameError, Rect
from fastfig.codec.packet import pack
from strategies import make_pixels

W, H = 24, 16
SIGNATURE = b"\x89PNG\r\n\x1a\n"


def started_decoder():
    dec = FrameDecoder()
    dec.decode(bytes(FrameEncoder(W, H, epoch=3).encode(make_pixels("noise", W, H, 1))))
    return dec


def follow_up(dec, rects, *, keyframe=False, width=W, height=H):
    """The packet that would be the decoder's next frame, carrying rects."""
    return pack(Frame(seq=dec.seq + 1, epoch=dec.epoch, keyframe=keyframe, width=width,
                      height=height, rects=tuple(rects)))


def assert_rejected(dec, packet, match=None):
    image, state = dec.image.copy(), (dec.seq, dec.epoch, dec.size, dec.timestamp_us)
    with pytest.raises(FrameError, match=match):
        dec.decode(packet)
    assert dec.image.shape == image.shape and dec.image.tobytes() == image.tobytes()
    assert (dec.seq, dec.epoch, dec.size, dec.timestamp_us) == state


# -- PNG payloads made by hand (zlib and CRCs from the standard library) ---------------------

def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def ihdr(w, h, depth=8, color=6, compression=0, filter_method=0, interlace=0):
    return struct.pack(">IIBBBBB", w, h, depth, color, compression, filter_method, interlace)


def make_png(img, *, filters=None, stream=None, chunks=None, tail=b""):
    h, w = img.shape[:2]
    filters = [0] * h if filters is None else filters
    raw = b"".join(bytes([f]) + img[r].tobytes() for r, f in enumerate(filters))
    stream = zlib.compress(raw) if stream is None else stream
    if chunks is None:
        chunks = [(b"IHDR", ihdr(w, h)), (b"IDAT", stream), (b"IEND", b"")]
    return SIGNATURE + b"".join(chunk(k, b) for k, b in chunks) + tail


PATCH = make_pixels("palette", 5, 3, 2)          # the pixels of a 5 x 3 rectangle
PATCH_RAW = b"".join(b"\0" + PATCH[r].tobytes() for r in range(3))
GOOD_PNG = make_png(PATCH)


IDAT = (b"IDAT", zlib.compress(PATCH_RAW))
IEND = (b"IEND", b"")


def png_of(*chunks):
    return make_png(PATCH, chunks=list(chunks))


def with_ihdr(body):
    return png_of((b"IHDR", body), IDAT, IEND)


def flip(data, index):
    data = bytearray(data)
    data[index] ^= 0x01
    return bytes(data)


# name: (payload for a 5 x 3 rectangle, what the error message says)
BAD_PNGS = {
    "empty": (b"", "not a PNG"),
    "not a png": (b"GIF89a" + GOOD_PNG[6:], "not a PNG"),
    "signature only": (SIGNATURE, "before its IEND"),
    "truncated": (GOOD_PNG[:-1], "before its IEND"),
    "truncated more": (GOOD_PNG[:40], "before its IEND"),
    "bad IHDR crc": (flip(GOOD_PNG, 8 + 8 + 13), "fails its CRC"),
    "bad IDAT crc": (flip(GOOD_PNG, 8 + 25 + 8 + len(zlib.compress(PATCH_RAW))), "fails its CRC"),
    "bad IEND crc": (flip(GOOD_PNG, len(GOOD_PNG) - 1), "fails its CRC"),
    "crc over damaged body": (flip(GOOD_PNG, 8 + 25 + 8 + 3), "fails its CRC"),
    "IHDR width": (with_ihdr(ihdr(6, 3)), "is 6x3"),
    "IHDR height": (with_ihdr(ihdr(5, 2)), "is 5x2"),
    "IHDR 16-bit": (with_ihdr(ihdr(5, 3, depth=16)), "not 8-bit"),
    "IHDR RGB": (with_ihdr(ihdr(5, 3, color=2)), "not 8-bit"),
    "IHDR compression": (with_ihdr(ihdr(5, 3, compression=1)), "not 8-bit"),
    "IHDR filter method": (with_ihdr(ihdr(5, 3, filter_method=1)), "not 8-bit"),
    "IHDR interlaced": (with_ihdr(ihdr(5, 3, interlace=1)), "not 8-bit"),
    "IHDR short": (with_ihdr(ihdr(5, 3)[:12]), "start with IHDR"),
    "no IHDR first": (png_of(IDAT, (b"IHDR", ihdr(5, 3)), IEND), "start with IHDR"),
    "IHDR twice": (png_of((b"IHDR", ihdr(5, 3)), (b"IHDR", ihdr(5, 3)), IDAT, IEND),
                   "critical chunk"),
    "unknown critical chunk": (png_of((b"IHDR", ihdr(5, 3)), (b"PLTE", b"\0\0\0"), IDAT, IEND),
                               "critical chunk"),
    "no IDAT": (png_of((b"IHDR", ihdr(5, 3)), IEND), "corrupt or of the wrong size"),
    "no IEND": (png_of((b"IHDR", ihdr(5, 3)), IDAT), "before its IEND"),
    "data after IEND": (make_png(PATCH, tail=b"\0"), "after the PNG's IEND"),
    "chunk after IEND": (make_png(PATCH, tail=chunk(b"tEXt", b"a\0b")), "after the PNG's IEND"),
    "chunk length past the end": (GOOD_PNG[:33] + struct.pack(">I", 2**31) + GOOD_PNG[37:],
                                  "runs past the payload"),
    "corrupt deflate": (make_png(PATCH, stream=b"\x78\x9c" + b"\xff" * 20),
                        "corrupt or of the wrong size"),
    "deflate with bad adler32": (make_png(PATCH, stream=flip(zlib.compress(PATCH_RAW), -1)),
                                 "corrupt or of the wrong size"),
    "too little image data": (make_png(PATCH, stream=zlib.compress(PATCH_RAW[:-1])),
                              "corrupt or of the wrong size"),
    "too much image data": (make_png(PATCH, stream=zlib.compress(PATCH_RAW + b"\0")),
                            "corrupt or of the wrong size"),
    "data after the zlib stream": (make_png(PATCH, stream=zlib.compress(PATCH_RAW) + b"\0"),
                                   "corrupt or of the wrong size"),
    "filter type 5": (make_png(PATCH, filters=[0, 5, 0]), "unknown row filter"),
    "filter type 255": (make_png(PATCH, filters=[255, 0, 0]), "unknown row filter"),
}


def test_the_hand_made_png_is_good():
    dec = started_decoder()
    rect = Rect(3, 4, 5, 3, Encoding.PNG, GOOD_PNG)
    out = dec.decode(follow_up(dec, [rect]))
    assert out[4:7, 3:8].tobytes() == PATCH.tobytes()
    for f in range(5):         # and every filter type is read
        data = make_png(PATCH, filters=[f, f, f])
        dec.decode(follow_up(dec, [Rect(0, 0, 5, 3, Encoding.PNG, data)]))


A = b"\x10\x20\x30\x40"


def word(v):
    return struct.pack("<I", v)


BAD_RLE = {                       # for a 5 x 3 rectangle: 15 pixels
    "empty": b"",
    "overflows the rectangle": word(16) + A,
    "overflows by a literal": word(14) + A + word(2**31 + 2) + A + A,
    "short": word(14) + A,
    "zero count run": word(0) + A + word(15) + A,
    "zero count literal": word(2**31) + word(15) + A,
    "literal past the end": word(2**31 + 15) + A * 14,
    "run without its pixel": word(15),
    "not whole words": word(15) + A + b"\0\0",
}


@pytest.mark.parametrize("kind", ["delta", "keyframe", "keyframe of a new size"])
@pytest.mark.parametrize("name", sorted(BAD_PNGS))
def test_bad_png_payloads_are_rejected(name, kind):
    payload, reason = BAD_PNGS[name]
    check_bad_rect(Rect(3, 4, 5, 3, Encoding.PNG, payload), kind, reason)


@pytest.mark.parametrize("kind", ["delta", "keyframe", "keyframe of a new size"])
@pytest.mark.parametrize("name", sorted(BAD_RLE))
def test_bad_rle_payloads_are_rejected(name, kind):
    check_bad_rect(Rect(3, 4, 5, 3, Encoding.RLE, BAD_RLE[name]), kind, "malformed RLE")


def check_bad_rect(bad, kind, reason):
    dec = started_decoder()
    size = {"width": W + 1, "height": H + 2} if kind == "keyframe of a new size" else {}
    # A good rectangle ahead of the bad one must not be applied either.
    good = Rect(0, 0, W, H, Encoding.FILL, b"\1\2\3\4")
    for rects in ([bad], [good, bad]):
        assert_rejected(dec, follow_up(dec, rects, keyframe=kind != "delta", **size), reason)
    # The decoder is not wedged: the next good frame applies.
    dec.decode(follow_up(dec, [good]))
    assert (dec.image == (1, 2, 3, 4)).all()


def good_delta(dec):
    return follow_up(dec, [Rect(3, 4, 5, 3, Encoding.RLE, word(15) + A),
                           Rect(0, 0, 2, 1, Encoding.RAW, bytes(range(8)))])


def replace(packet, offset, data):
    return packet[:offset] + data + packet[offset + len(data):]


# Header and table damage to a good delta of two rectangles: RLE of 8 bytes, RAW of 8.
BAD_PACKETS = {
    "bad magic": lambda p: replace(p, 0, b"ffig"),
    "unknown major version": lambda p: replace(p, 4, b"\x02"),
    "major version 0": lambda p: replace(p, 4, b"\x00"),
    "truncated header": lambda p: p[:39],
    "header only": lambda p: p[:40],
    "truncated table": lambda p: p[:40 + 24 + 10],
    "header size past the end": lambda p: replace(p, 6, struct.pack("<H", 1000)),
    "zero width canvas": lambda p: replace(p, 20, word(0)),
    "rect outside canvas": lambda p: replace(p, 40, word(W - 4)),
    "rect below canvas": lambda p: replace(p, 44, word(H - 2)),
    "zero-size rect": lambda p: replace(p, 48, word(0)),
    "zero-height rect": lambda p: replace(p, 52, word(0)),
    "unknown encoding": lambda p: replace(p, 56, b"\x04"),
    "wrong RAW length": lambda p: replace(p, 64 + 20, word(12)),
    "FILL of the wrong length": lambda p: replace(p, 64 + 16, b"\x01"),
    "payload past the end": lambda p: replace(p, 40 + 20, word(400)),
    "trailing bytes": lambda p: p + b"\0\0\0\0",
    "one trailing byte": lambda p: p + b"\0",
    "missing payload": lambda p: p[:-8],
    "more rects than the table holds": lambda p: replace(p, 28, word(3)),
}


@pytest.mark.parametrize("name", sorted(BAD_PACKETS))
@pytest.mark.parametrize("keyframe", [False, True])
def test_bad_packets_are_rejected(name, keyframe):
    dec = started_decoder()
    good = good_delta(dec)
    if keyframe:
        good = replace(good, 8, word(1))
    dec_copy = started_decoder()
    dec_copy.decode(good)                    # the undamaged packet is fine
    assert_rejected(dec, BAD_PACKETS[name](good))
    dec.decode(good)
    assert dec.image.tobytes() == dec_copy.image.tobytes()


def test_a_rejected_keyframe_keeps_a_decoder_without_image_empty():
    dec = FrameDecoder()
    with pytest.raises(FrameError):
        dec.decode(pack(Frame(1, 0, True, 5, 3, (Rect(0, 0, 5, 3, Encoding.PNG,
                                                       BAD_PNGS["filter type 5"][0]),))))
    assert dec.image is None and dec.seq is None and dec.size is None


# -- fuzzing --------------------------------------------------------------------------------

def corpus():
    """A valid stream using every encoding, multi-rectangle deltas, an empty frame and a
    size change."""
    enc = FrameEncoder(40, 24, cell=8, rect_cost=0)
    img = make_pixels("gradient", 40, 24, 1)
    frames = [enc.encode(img)]
    steps = [(slice(0, 8), slice(0, 8), "solid"), (slice(8, 24), slice(16, 40), "gradient"),
             (slice(0, 4), slice(30, 40), "noise"), (slice(10, 20), slice(0, 30), "runs")]
    for i, (ys, xs, style) in enumerate(steps):
        img = img.copy()
        region = img[ys, xs]
        region[...] = make_pixels(style, region.shape[1], region.shape[0], i)
        img[0, 0] ^= 0xFF                     # and a second, distant rectangle
        frames.append(enc.encode(img))
    frames.append(enc.encode(img))            # empty
    frames.append(enc.encode(make_pixels("runs", 17, 9, 5)))
    return [bytes(f) for f in frames], frames


PACKETS, FRAMES = corpus()


def test_the_fuzzing_corpus_covers_every_encoding():
    seen = set()
    for f in FRAMES:
        seen |= set(f.encodings())
    assert seen == {"fill", "rle", "png", "raw"}
    assert any(f.empty for f in FRAMES) and any(len(f.rects) > 1 for f in FRAMES)


def decoder_before(i):
    dec = FrameDecoder()
    for p in PACKETS[:i]:
        dec.decode(p)
    return dec


def decode_or_reject(dec, packet):
    """decode succeeds or raises FrameError leaving the decoder as it was."""
    image = None if dec.image is None else dec.image.copy()
    state = (dec.seq, dec.epoch, dec.size)
    try:
        out = dec.decode(packet)
    except FrameError:
        assert (dec.seq, dec.epoch, dec.size) == state
        if image is None:
            assert dec.image is None
        else:
            assert dec.image.tobytes() == image.tobytes()
    else:
        assert out.shape == (dec.size[1], dec.size[0], 4)


@st.composite
def damaged_packets(draw):
    i = draw(st.integers(0, len(PACKETS) - 1))
    packet = bytearray(PACKETS[i])
    how = draw(st.sampled_from(["bytes", "bytes", "payload", "truncate", "extend", "garbage"]))
    if how in ("bytes", "payload"):
        start = 0 if how == "bytes" else min(40 + 24 * len(FRAMES[i].rects), len(packet) - 1)
        for _ in range(draw(st.integers(1, 8))):
            packet[draw(st.integers(start, len(packet) - 1))] = draw(st.integers(0, 255))
    elif how == "truncate":
        del packet[draw(st.integers(0, len(packet) - 1)):]
    elif how == "extend":
        packet += draw(st.binary(min_size=1, max_size=16))
    else:
        packet = draw(st.binary(max_size=200))
        if draw(st.booleans()):       # garbage behind a plausible header
            packet = PACKETS[i][:draw(st.integers(0, 64))] + packet
    return i, bytes(packet)


@given(damaged_packets())
def test_damaged_packets_decode_or_raise_frame_error(case):
    i, packet = case
    dec = decoder_before(i)
    decode_or_reject(dec, packet)
    # Whatever happened, a keyframe brings the decoder back.
    dec.decode(PACKETS[0])


@given(st.binary(max_size=300))
def test_garbage_on_a_fresh_decoder(packet):
    decode_or_reject(FrameDecoder(), packet)
