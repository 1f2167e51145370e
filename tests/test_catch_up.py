"""Catch-up deltas (packet version 1.1, PROTOCOL.md 1.4): FrameEncoder.catch_up(base)
brings a decoder holding the image ``base`` to the current image in one delta, byte for
byte, for every base the encoder still remembers; the damage union kernel against its
numpy reference; the packet's bytes; and what a decoder, old or new, does with one."""

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from fastfig import Encoding, Frame, FrameDecoder, FrameEncoder, FrameError, FrameGap, Rect
from fastfig import _encode
from fastfig.codec.encoder import CATCH_UP_HISTORY
from fastfig.codec.packet import FLAG_BASE, HEADER_SIZE_BASE, pack, parse
from strategies import make_pixels, rects_in, sizes
from test_codec import repaint

NO_COST = -2**40     # a rect_cost at which no two boxes are ever merged


def holding(image, seq, epoch):
    """A decoder whose current image is image, numbered (epoch, seq)."""
    h, w = image.shape[:2]
    dec = FrameDecoder()
    dec.decode(pack(Frame(seq, epoch, True, w, h,
                          (Rect(0, 0, w, h, Encoding.RAW, image.tobytes()),))))
    return dec


def rejected(dec, packet, error=FrameGap):
    image, seq, epoch = dec.image.copy(), dec.seq, dec.epoch
    with pytest.raises(error):
        dec.decode(packet)
    assert dec.image.tobytes() == image.tobytes() and (dec.seq, dec.epoch) == (seq, epoch)


# -- the kernel -----------------------------------------------------------------------------

@st.composite
def union_case(draw):
    w, h = draw(sizes(48))
    rects = [draw(rects_in(w, h)) for _ in range(draw(st.integers(1, 12)))]
    cell = draw(st.sampled_from([1, 3, 8, 16, 64]))
    rect_cost = draw(st.sampled_from([NO_COST, 0, 16, 2048, 10**12]))
    return rects, w, h, cell, rect_cost


def run_union(rects, w, h, cell, rect_cost):
    out = np.full((-(-w // cell) * -(-h // cell), 4), -1, np.int32)
    table = np.array(rects + [(-9, -9, -9, -9)], np.int32)    # a row past n is not read
    n = _encode.damage_union(table, len(rects), w, h, cell, rect_cost, out)
    assert (out[n:] == -1).all()
    return [tuple(int(v) for v in r) for r in out[:n]]


@given(union_case())
def test_damage_union_equals_reference(case):
    assert run_union(*case) == ref.damage_union(*case)


@given(union_case())
def test_damage_union_covers_its_rectangles(case):
    rects, w, h, cell, rect_cost = case
    covered = np.zeros((h, w), bool)
    for x, y, rw, rh in run_union(*case):
        assert rw >= 1 and rh >= 1 and x + rw <= w and y + rh <= h
        covered[y:y + rh, x:x + rw] = True
    for x, y, rw, rh in rects:
        assert covered[y:y + rh, x:x + rw].all()


def test_damage_union_rejects_rectangles_outside_the_frame():
    out = np.empty((4, 4), np.int32)
    for bad in ((0, 0, 17, 1), (-1, 0, 1, 1), (0, 0, 0, 1), (15, 15, 2, 1)):
        with pytest.raises(ValueError):
            _encode.damage_union(np.array([bad], np.int32), 1, 16, 16, 8, 0, out)
    with pytest.raises(ValueError):                        # out smaller than the cell grid
        _encode.damage_union(np.array([(0, 0, 1, 1)], np.int32), 1, 17, 16, 8, 0, out)


# -- the encoder, against images held byte for byte -----------------------------------------

@st.composite
def histories(draw):
    """A stream of one size: (image, hint) steps, some unchanged, some hinted, and a few
    explicit keyframes, as a server's frame loop makes them."""
    w, h = draw(sizes(60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    img = make_pixels(draw(st.sampled_from(["noise", "palette", "runs"])), w, h,
                      int(rng.integers(2**32)))
    steps = [("frame", img, None)]
    for _ in range(draw(st.integers(1, 14))):
        action = draw(st.sampled_from(["change"] * 6 + ["same", "hinted", "keyframe"]))
        img = img.copy()
        changed = []
        if action != "same":
            for _ in range(draw(st.integers(1, 3))):
                rect = draw(rects_in(w, h))
                repaint(img, rect, draw(st.sampled_from(
                    ["transparent", "alpha", "pixel", "noise", "solid", "runs"])), rng)
                changed.append(rect)
        hint = [(x, y, rw, rh) for x, y, rw, rh in changed] if action == "hinted" else None
        steps.append(("keyframe" if action == "keyframe" else "frame", img, hint))
    return steps


@given(steps=histories(), cell=st.sampled_from([8, 16, 64]),
       rect_cost=st.sampled_from([0, 64, 4096]),
       encoding=st.sampled_from(["auto", "png", "rle", "raw"]))
def test_catch_up_from_every_remembered_image_gives_the_current_one(steps, cell, rect_cost,
                                                                     encoding):
    first = steps[0][1]
    enc = FrameEncoder(first.shape[1], first.shape[0], encoding, cell=cell,
                       rect_cost=rect_cost, epoch=3)
    held = {}              # seq -> the image a client holds after that frame
    since_keyframe = []    # the seqs a catch-up can start from
    for kind, img, hint in steps:
        frame = enc.keyframe(img) if kind == "keyframe" else enc.encode(img, hint=hint)
        if frame.keyframe:
            since_keyframe = []
        held[frame.seq] = enc.image.copy()
        if frame.seq not in since_keyframe:
            since_keyframe.append(frame.seq)
    current = enc.image.copy()
    for base, image in held.items():
        catch_up = enc.catch_up(base)
        if base not in since_keyframe:
            assert catch_up is None
            continue
        assert catch_up is not None and not catch_up.keyframe
        assert (catch_up.seq, catch_up.epoch, catch_up.base_seq) == (enc.seq, 3, base)
        assert catch_up.empty == (base == enc.seq)
        packet = bytes(catch_up)
        assert len(packet) == catch_up.nbytes
        dec = holding(image, base, 3)
        assert dec.decode(packet).tobytes() == current.tobytes()
        assert (dec.seq, dec.epoch) == (enc.seq, 3)
        # The same packet on any other image is a gap, and changes nothing.
        for other in set(held) - {base}:
            rejected(holding(held[other], other, 3), packet)
    assert enc.catch_up(enc.seq, epoch=4) is None
    assert enc.image.tobytes() == current.tobytes()          # catch_up changed nothing


def test_overlapping_damage_is_sent_once():
    # The same 40x30 box changes in each of 30 frames: catching up from 30 frames back
    # sends that box once, not 30 times.
    enc = FrameEncoder(200, 120, cell=16)
    img = make_pixels("gradient", 200, 120, 1)
    enc.encode(img)
    deltas = []
    for i in range(30):
        img = img.copy()
        img[40:70, 50:90] = make_pixels("noise", 40, 30, i)
        deltas.append(enc.encode(img))
    catch_up = enc.catch_up(1)
    assert [(r.x, r.y, r.w, r.h) for r in catch_up.rects] == [(50, 40, 40, 30)]
    assert catch_up.nbytes <= max(d.nbytes for d in deltas) + 4


def test_the_history_is_limited_and_a_keyframe_or_a_resize_ends_it():
    enc = FrameEncoder(16, 8, cell=8)
    img = make_pixels("noise", 16, 8, 0)
    enc.encode(img)
    assert enc.catch_up(0) is None                  # before the first keyframe
    for i in range(CATCH_UP_HISTORY + 5):
        img = img.copy()
        img[i % 8, i % 16, 0] ^= 0xFF
        enc.encode(img)
    assert enc.catch_up(enc.seq - CATCH_UP_HISTORY) is not None
    assert enc.catch_up(enc.seq - CATCH_UP_HISTORY - 1) is None
    assert enc.catch_up(enc.seq + 1) is None         # a seq from the future
    seq = enc.seq
    enc.keyframe(img)
    assert enc.catch_up(seq) is None and enc.catch_up(enc.seq).empty
    enc.encode(make_pixels("noise", 9, 9, 1))       # a new size, a new epoch
    assert enc.catch_up(enc.seq - 1) is None and enc.catch_up(enc.seq, epoch=enc.epoch).empty


def test_sequence_numbers_wrap():
    enc = FrameEncoder(16, 8)
    enc.seq = 2**32 - 3
    imgs = [make_pixels("noise", 16, 8, i) for i in range(5)]
    seqs = [enc.encode(img).seq for img in imgs]
    assert seqs == [2**32 - 2, 2**32 - 1, 0, 1, 2]
    catch_up = enc.catch_up(2**32 - 2)
    assert catch_up.base_seq == 2**32 - 2 and catch_up.seq == 2
    assert holding(imgs[0], 2**32 - 2, 0).decode(bytes(catch_up)).tobytes() == imgs[-1].tobytes()
    assert enc.catch_up(-2) is not None             # the same seq, before the mask


# -- the packet ------------------------------------------------------------------------------

def test_catch_up_packet_layout():
    frame = Frame(seq=9, epoch=0x0A0B0C0D, keyframe=False, width=37, height=23,
                  rects=(Rect(1, 2, 1, 1, Encoding.FILL, b"\1\2\3\4"),),
                  timestamp_us=0x1122334455667788, base_seq=0x01020304)
    packet = bytes(frame)
    assert packet[:12] == b"FFIG\x01\x01\x2c\x00" + b"\x02\0\0\0"    # 1.1, 44 bytes, BASE
    assert struct.unpack_from("<IIIII", packet, 12) == (0x0A0B0C0D, 9, 37, 23, 1)
    assert packet[40:44] == b"\x04\x03\x02\x01"
    assert len(packet) == frame.nbytes == 44 + 24 + 4
    assert parse(packet) == Frame(9, 0x0A0B0C0D, False, 37, 23, parse(packet).rects,
                                  0x1122334455667788, 0x01020304)
    # Keyframes and ordinary deltas are still written as 1.0.
    assert bytes(Frame(9, 1, False, 4, 4, ()))[4:8] == b"\x01\x00\x28\x00"


def test_a_keyframe_has_no_base():
    with pytest.raises(ValueError):
        pack(Frame(1, 0, True, 4, 4, (), base_seq=0))


def catch_up_packet(**header):
    packet = bytearray(pack(Frame(5, 0, False, 4, 4, (), base_seq=3)))
    for offset, value in header.items():
        struct.pack_into("<I" if offset != "size" else "<H", packet,
                         {"flags": 8, "size": 6}[offset], value)
    return bytes(packet)


@pytest.mark.parametrize("packet, message", [
    (catch_up_packet(flags=FLAG_BASE | 1), "keyframe with a base"),
    (catch_up_packet(size=40)[:40] + b"\0" * 4, "at least 44"),
])
def test_parse_rejects(packet, message):
    with pytest.raises(FrameError, match=message):
        parse(packet)


def test_a_base_flag_in_a_longer_header_is_read():
    # A later minor version may append more: the base stays at offset 40.
    packet = pack(Frame(5, 0, False, 4, 4, (), base_seq=3))
    longer = bytearray(packet[:40] + packet[40:44] + b"\xee" * 4)
    struct.pack_into("<H", longer, 6, 48)
    assert parse(bytes(longer)).base_seq == 3 and parse(bytes(longer)).seq == 5
    assert HEADER_SIZE_BASE == 44


def as_version_1_0(packet):
    """What a 1.0 reader makes of a packet: flag bit 1 is reserved there, so ignored;
    the header's tail is skipped."""
    packet = bytearray(packet)
    packet[8] &= ~FLAG_BASE
    return bytes(packet)


def test_a_1_0_reader_takes_a_catch_up_delta_for_a_gap():
    enc = FrameEncoder(20, 10, cell=8)
    imgs = [make_pixels("noise", 20, 10, i) for i in range(6)]
    for img in imgs:
        enc.encode(img)                                   # seqs 1..6
    old = as_version_1_0(bytes(enc.catch_up(2)))
    assert parse(old).base_seq is None
    rejected(holding(imgs[1], 2, 0), old)                  # 2 is not 6 - 1: a gap
    # From one frame behind it is an ordinary delta, right for a 1.0 reader too.
    one_behind = as_version_1_0(bytes(enc.catch_up(5)))
    assert holding(imgs[4], 5, 0).decode(one_behind).tobytes() == imgs[5].tobytes()


def test_a_catch_up_delta_of_another_epoch_or_size_is_a_gap():
    enc = FrameEncoder(20, 10, epoch=7)
    imgs = [make_pixels("noise", 20, 10, i) for i in range(3)]
    for img in imgs:
        enc.encode(img)
    packet = bytes(enc.catch_up(1))
    rejected(holding(imgs[0], 1, 8), packet)
    rejected(holding(make_pixels("noise", 21, 10, 0), 1, 7), packet)
    dec = FrameDecoder()
    with pytest.raises(FrameGap):                         # before any keyframe
        dec.decode(packet)
    # A lenient decoder applies it to whatever image of its size it holds.
    lenient = FrameDecoder(strict=False)
    lenient.decode(pack(Frame(1, 0, True, 20, 10,
                              (Rect(0, 0, 20, 10, Encoding.RAW, imgs[0].tobytes()),))))
    assert lenient.decode(packet).tobytes() == imgs[2].tobytes()
