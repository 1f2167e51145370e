"""The damage scan of an unchanged 1920x1080 frame against copying one frame.

An idle figure is the common case of a live stream, and the scan is the part of a frame
fastfig pays for even when nothing is sent: it should cost about what moving the frame's
bytes once does. Compared: _encode.damage over the whole frame, exactly as
FrameEncoder.encode calls it (same cell size, cost and buffers); the whole
FrameEncoder.encode of an unchanged frame (scan plus Python); np.copyto of one frame.
The frames are two separate buffers with equal content, so nothing short-circuits.
"""

import numpy as np
import pytest

from fastfig import FrameEncoder, _encode

from .sequences import render

ROUNDS, ITERATIONS = 100, 5
SIZE = "1920x1080"


@pytest.fixture(scope="module")
def frame_pair():
    frame = render("line1", SIZE, 1)[0]
    return frame, frame.copy()


def _bench(benchmark, name, fn, *args):
    benchmark.group = f"identical frames {SIZE}"
    benchmark.extra_info.update(codec=name, size=SIZE)
    return benchmark.pedantic(fn, args=args, rounds=ROUNDS, iterations=ITERATIONS,
                              warmup_rounds=3)


def test_damage_scan(benchmark, frame_pair):
    cur, prev = frame_pair
    h, w = cur.shape[:2]
    encoder = FrameEncoder(w, h)      # its scan parameters and preallocated tables
    n = _bench(benchmark, "damage", _encode.damage, cur, prev, encoder._full,
               encoder.cell, encoder.rect_cost, encoder._rects)
    assert n == 0


def test_encode_unchanged(benchmark, frame_pair):
    cur, prev = frame_pair
    h, w = cur.shape[:2]
    encoder = FrameEncoder(w, h)
    encoder.encode(prev)
    frame = _bench(benchmark, "encode_unchanged", encoder.encode, cur)
    assert frame.empty


def test_copyto(benchmark, frame_pair):
    cur, prev = frame_pair
    dst = np.empty_like(cur)
    _bench(benchmark, "copyto", np.copyto, dst, cur)
    assert np.array_equal(dst, prev)
