"""Steady-state encoding allocates no full-frame buffer per frame (STYLE.md practice 3).

tracemalloc sees numpy's array data as well as Python objects, so the peak of traced
memory during one call bounds what that call allocated, temporaries included. A control
test checks that the same measurement does see a frame-sized copy.
"""

import tracemalloc

import numpy as np
import pytest

from fastfig import FrameEncoder, scenarios

WIDTH, HEIGHT = 1920, 1080
FRAME_BYTES = WIDTH * HEIGHT * 4          # 8.3 MB


@pytest.fixture(scope="module")
def line1_frames():
    return scenarios.make("line1", (WIDTH, HEIGHT)).frames(8)


def _peak_of(fn, *args):
    """Bytes allocated at the peak of one call, above what was allocated before it."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = fn(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, result


def test_delta_encode_allocates_well_under_one_frame(line1_frames):
    encoder = FrameEncoder(WIDTH, HEIGHT)
    encoder.encode(line1_frames[0])              # keyframe: allocates the encoder's copy
    for frame in line1_frames[1:3]:              # warm-up
        encoder.encode(frame)
    for frame in line1_frames[3:]:
        # Encoding and packing: everything a server does with a frame.
        peak, packet = _peak_of(lambda f: bytes(encoder.encode(f)), frame)
        assert len(packet) > 1000                # a real delta, not an empty frame
        assert peak < FRAME_BYTES / 4, f"a delta allocated {peak:,} bytes at its peak"


def test_measurement_sees_a_full_frame_copy(line1_frames):
    peak, copy = _peak_of(np.copy, line1_frames[0])
    assert copy.nbytes == FRAME_BYTES
    assert peak >= FRAME_BYTES
