"""The compiled kernels (fastfig/_encode.pyx) against their numpy references
(tests/reference.py), plus the properties the codec relies on."""

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import reference as ref
from fastfig import _encode
from strategies import images, image_and_rect, make_pixels, rects_in

FILTER_MODES = {"none": _encode.FILTER_NONE, "sub": _encode.FILTER_SUB,
                "up": _encode.FILTER_UP, "adaptive": _encode.FILTER_ADAPTIVE}
NO_COST = -2**40     # a rect_cost at which no two boxes are ever merged


def test_filter_constants_are_the_png_filter_types():
    assert [_encode.FILTER_NONE, _encode.FILTER_SUB, _encode.FILTER_UP,
            _encode.FILTER_AVERAGE, _encode.FILTER_PAETH] == [0, 1, 2, 3, 4]
    assert _encode.FILTER_ADAPTIVE == ref.FILTER_ADAPTIVE


def word(v):
    return int(v).to_bytes(4, "little")


# -- damage -------------------------------------------------------------------------------

@st.composite
def damage_case(draw, max_side=48):
    """prev and cur images (cur = prev with a few rectangles repainted), scan regions,
    cell size and rect cost."""
    prev = draw(images(max_side=max_side, styles=["palette", "solid", "noise"]))
    h, w = prev.shape[:2]
    cur = prev.copy()
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    for _ in range(draw(st.integers(0, 5))):
        if draw(st.booleans()):
            x, y, rw, rh = draw(rects_in(w, h))
        else:   # a single pixel: sparse changes are where merge decisions are close
            x, y, rw, rh = draw(st.integers(0, w - 1)), draw(st.integers(0, h - 1)), 1, 1
        mask = rng.random((rh, rw)) < draw(st.sampled_from([0.05, 0.5, 1.0]))
        # Change one channel only, sometimes just the alpha: any byte difference counts.
        channel = draw(st.integers(0, 3))
        cur[y:y + rh, x:x + rw, channel][mask] ^= np.uint8(draw(st.integers(1, 255)))
    if draw(st.booleans()):
        regions = [(0, 0, w, h)]
    else:
        regions = [draw(rects_in(w, h)) for _ in range(draw(st.integers(1, 3)))]
        if draw(st.booleans()):
            regions.append((draw(st.integers(0, w)), 0, 0, h))   # empty regions are allowed
    cell = draw(st.sampled_from([1, 2, 3, 8, 16, 64]))
    rect_cost = draw(st.sampled_from([NO_COST, 0, 1, 2, 4, 16, 2048, 10**12]))
    return cur, prev, np.array(regions, np.int32).reshape(-1, 4), cell, rect_cost


def run_damage(cur, prev, regions, cell, rect_cost):
    h, w = cur.shape[:2]
    out = np.full((-(-w // cell) * -(-h // cell), 4), -1, np.int32)
    n = _encode.damage(cur, prev, regions, cell, rect_cost, out)
    assert 0 <= n <= len(out)
    assert (out[n:] == -1).all()    # nothing written past the count
    return [tuple(int(v) for v in r) for r in out[:n]]


@given(damage_case())
def test_damage_rectangles_lie_in_the_frame_and_cover_every_change(case):
    cur, prev, regions, cell, rect_cost = case
    rects = run_damage(*case)
    h, w = cur.shape[:2]
    covered = np.zeros((h, w), bool)
    for x, y, rw, rh in rects:
        assert rw >= 1 and rh >= 1 and x >= 0 and y >= 0 and x + rw <= w and y + rh <= h
        covered[y:y + rh, x:x + rw] = True
    changed = ref.changed_mask(cur, prev, regions)
    assert not (changed & ~covered).any()
    assert (len(rects) == 0) == (not changed.any())


@given(damage_case())
def test_damage_equals_reference(case):
    assert run_damage(*case) == ref.damage(case[0], case[1], case[2].tolist(), case[3],
                                           case[4])


@given(damage_case())
def test_damage_cells_are_tight_boxes(case):
    """Without merging, the rectangles are exactly the cells' tight boxes."""
    cur, prev, regions, cell, _ = case
    rects = run_damage(cur, prev, regions, cell, NO_COST)
    cells = ref.damage_cells(cur, prev, regions.tolist(), cell)
    assert sorted(rects) == sorted((x0, y0, x1 - x0, y1 - y0)
                                   for x0, y0, x1, y1 in cells.values())


@given(damage_case())
def test_damage_merge_never_costs_more_than_the_cells(case):
    cur, prev, regions, cell, rect_cost = case
    assume(rect_cost >= 0)
    rects = run_damage(*case)
    cells = ref.damage_cells(cur, prev, regions.tolist(), cell).values()
    assert (sum(w * h + rect_cost for _, _, w, h in rects)
            <= sum((x1 - x0) * (y1 - y0) + rect_cost for x0, y0, x1, y1 in cells))


@given(damage_case())
def test_damage_with_a_huge_rect_cost_is_the_bounding_box(case):
    cur, prev, regions, cell, _ = case
    rects = run_damage(cur, prev, regions, cell, 10**12)
    ys, xs = np.nonzero(ref.changed_mask(cur, prev, regions))
    if len(xs) == 0:
        assert rects == []
    else:
        assert rects == [(xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)]


@given(damage_case())
def test_damage_scans_only_its_regions(case):
    """Changes outside the scan regions are invisible: the result is that of a full scan
    of a frame in which they were never made."""
    cur, prev, regions, cell, rect_cost = case
    h, w = cur.shape[:2]
    inside_only = prev.copy()
    for x, y, rw, rh in regions:
        inside_only[y:y + rh, x:x + rw] = cur[y:y + rh, x:x + rw]
    full = np.array([[0, 0, w, h]], np.int32)
    assert (run_damage(cur, prev, regions, cell, rect_cost)
            == run_damage(inside_only, prev, full, cell, rect_cost))


@given(images(max_side=48), st.sampled_from([1, 8, 64]))
def test_damage_of_identical_frames_is_empty(img, cell):
    h, w = img.shape[:2]
    assert run_damage(img, img.copy(), np.array([[0, 0, w, h]], np.int32), cell, 0) == []


def changes(w, h, *boxes):
    prev = np.zeros((h, w, 4), np.uint8)
    cur = prev.copy()
    for x, y, bw, bh in boxes:
        cur[y:y + bh, x:x + bw, 0] = 1
    return cur, prev


@pytest.mark.parametrize("w, h, boxes, cell, rect_cost, expected", [
    # Neighbours across a cell edge merge when the union costs no more.
    (16, 8, [(7, 0, 2, 1)], 8, 0, [(7, 0, 2, 1)]),
    (8, 16, [(3, 7, 1, 2)], 8, 0, [(3, 7, 1, 2)]),
    # Far apart they stay two.
    (16, 8, [(0, 0, 1, 1), (15, 7, 1, 1)], 8, 0, [(0, 0, 1, 1), (15, 7, 1, 1)]),
    (16, 8, [(0, 0, 1, 1), (15, 7, 1, 1)], 8, 125, [(0, 0, 1, 1), (15, 7, 1, 1)]),
    (16, 8, [(0, 0, 1, 1), (15, 7, 1, 1)], 8, 126, [(0, 0, 16, 8)]),   # a tie merges
    # Ties merge, along a row of cells and down a column, where the bounding box of
    # everything would not.
    (40, 8, [(0, 0, 1, 1), (15, 0, 1, 1), (39, 7, 1, 1)], 8, 14,
     [(0, 0, 16, 1), (39, 7, 1, 1)]),
    (40, 8, [(0, 0, 1, 1), (15, 0, 1, 1), (39, 7, 1, 1)], 8, 13,
     [(0, 0, 1, 1), (15, 0, 1, 1), (39, 7, 1, 1)]),
    (8, 40, [(0, 0, 1, 1), (0, 15, 1, 1), (7, 39, 1, 1)], 8, 14,
     [(0, 0, 1, 16), (7, 39, 1, 1)]),
    (8, 40, [(0, 0, 1, 1), (0, 15, 1, 1), (7, 39, 1, 1)], 8, 13,
     [(0, 0, 1, 1), (0, 15, 1, 1), (7, 39, 1, 1)]),
    # A rectangle that did not reach the previous row of cells is closed: nothing
    # below a gap merges into it.
    (20, 20, [(0, 0, 1, 1), (0, 2, 1, 1), (19, 19, 1, 1)], 1, 4,
     [(0, 0, 1, 1), (0, 2, 1, 1), (19, 19, 1, 1)]),
    # No pair merges, but the bounding box costs exactly the three apart: taken.
    (6, 4, [(0, 0, 2, 2), (4, 0, 2, 2), (0, 2, 6, 2)], 2, 2, [(0, 0, 6, 4)]),
    (6, 4, [(0, 0, 2, 2), (4, 0, 2, 2), (0, 2, 6, 2)], 2, 1,
     [(0, 0, 2, 2), (4, 0, 2, 2), (0, 2, 6, 2)]),
])
def test_damage_merge_examples(w, h, boxes, cell, rect_cost, expected):
    cur, prev = changes(w, h, *boxes)
    rects = run_damage(cur, prev, np.array([[0, 0, w, h]], np.int32), cell, rect_cost)
    assert sorted(rects) == sorted(expected)
    assert ref.damage(cur, prev, [(0, 0, w, h)], cell, rect_cost) == rects


def test_damage_finds_a_single_changed_byte_anywhere():
    prev = np.zeros((5, 7, 4), np.uint8)
    full = np.array([[0, 0, 7, 5]], np.int32)
    for y in range(5):
        for x in range(7):
            for c in range(4):
                cur = prev.copy()
                cur[y, x, c] = 1
                assert run_damage(cur, prev, full, 3, 0) == [(x, y, 1, 1)]


def test_damage_rejects_bad_arguments():
    img = np.zeros((10, 12, 4), np.uint8)
    full = np.array([[0, 0, 12, 10]], np.int32)
    out = np.zeros((4, 4), np.int32)            # 2 x 2 cells of 8
    with pytest.raises(ValueError):
        _encode.damage(img, np.zeros((10, 11, 4), np.uint8), full, 8, 0, out)
    with pytest.raises(ValueError):
        _encode.damage(img, img, full, 0, 0, out)
    with pytest.raises(ValueError):
        _encode.damage(img, img, full, 8, 0, np.zeros((3, 4), np.int32))   # too few rows
    with pytest.raises(ValueError):
        _encode.damage(img, img, np.zeros((1, 3), np.int32), 8, 0, out)
    for region in [(-1, 0, 1, 1), (0, -1, 1, 1), (0, 0, -1, 1), (0, 0, 1, -1),
                   (0, 0, 13, 10), (0, 0, 12, 11), (11, 0, 2, 1), (0, 9, 1, 2),
                   (2**31 - 1, 0, 2**31 - 1, 1)]:
        with pytest.raises(ValueError):
            _encode.damage(img, img, np.array([region], np.int32), 8, 0, out)
    with pytest.raises(ValueError):
        _encode.damage(np.zeros((10, 12, 3), np.uint8), np.zeros((10, 12, 3), np.uint8),
                       full, 8, 0, out)


# -- rectangle checks shared by every kernel ----------------------------------------------

BAD_RECTS = [(-1, 0, 1, 1), (0, -1, 1, 1), (0, 0, 0, 1), (0, 0, 1, 0), (0, 0, -1, 1),
             (0, 0, 6, 1), (0, 0, 1, 4), (5, 0, 1, 1), (0, 3, 1, 1), (4, 2, 2, 1),
             (2**31 - 1, 0, 2**31 - 1, 1)]


def call_kernel(name, img, rect):
    x, y, w, h = rect
    big = np.zeros(4096, np.uint8)
    if name == "solid_color":
        return _encode.solid_color(img, x, y, w, h)
    if name == "fill_rect":
        return _encode.fill_rect(img, x, y, w, h, b"\1\2\3\4")
    if name == "png_filter":
        return _encode.png_filter(img, x, y, w, h, _encode.FILTER_SUB, big)
    if name == "png_unfilter":
        return _encode.png_unfilter(bytes(max(h, 0) * (4 * max(w, 0) + 1)), img, x, y, w, h)
    if name == "rle_encode":
        return _encode.rle_encode(img, x, y, w, h, big)
    if name == "rle_decode":
        return _encode.rle_decode(word(max(w * h, 1)) + b"\1\2\3\4", img, x, y, w, h)
    if name == "copy_rects":
        return _encode.copy_rects(img.copy(), img, np.array([rect], np.int32), 1)
    raise AssertionError(name)


KERNELS = ["solid_color", "fill_rect", "png_filter", "png_unfilter", "rle_encode",
           "rle_decode", "copy_rects"]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("rect", BAD_RECTS)
def test_kernels_reject_rectangles_outside_the_image(kernel, rect):
    img = np.arange(5 * 3 * 4, dtype=np.uint8).reshape(3, 5, 4)
    before = img.copy()
    with pytest.raises(ValueError):
        call_kernel(kernel, img, rect)
    assert np.array_equal(img, before)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("channels", [1, 3, 5])
def test_kernels_reject_images_without_4_channels(kernel, channels):
    # Every kernel reads and writes 4 bytes per pixel: anything else would run past
    # the rows of the array.
    img = np.zeros((3, 5, channels), np.uint8)
    with pytest.raises(ValueError):
        call_kernel(kernel, img, (0, 0, 5, 3))


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernels_accept_the_whole_image(kernel):
    img = np.zeros((3, 5, 4), np.uint8)
    call_kernel(kernel, img, (0, 0, 5, 3))


# -- FILL and copies ----------------------------------------------------------------------

@given(image_and_rect(styles=["solid", "palette", "noise", "runs"]))
def test_solid_color_equals_reference(case):
    img, rect = case
    assert _encode.solid_color(img, *rect) == ref.solid_color(img, *rect)


@given(image_and_rect(), st.binary(min_size=4, max_size=4))
def test_solid_color_of_a_filled_rectangle(case, color):
    img, rect = case
    _encode.fill_rect(img, *rect, color)
    assert _encode.solid_color(img, *rect) == color


def test_solid_color_sees_a_difference_in_any_byte_and_pixel():
    for x in range(3):
        for c in range(4):
            img = np.zeros((2, 3, 4), np.uint8)
            img[1, x, c] = 255
            assert _encode.solid_color(img, 0, 0, 3, 2) is None
            assert _encode.solid_color(img, x, 1, 1, 1) == bytes(img[1, x])


@given(image_and_rect(), st.binary(min_size=4, max_size=4))
def test_fill_rect_equals_reference(case, color):
    img, rect = case
    expected = img.copy()
    ref.fill_rect(expected, *rect, color)
    _encode.fill_rect(img, *rect, color)
    assert np.array_equal(img, expected)


def test_fill_rect_needs_4_bytes():
    img = np.zeros((2, 2, 4), np.uint8)
    for color in (b"", b"\1\2\3", b"\1\2\3\4\5"):
        with pytest.raises(ValueError):
            _encode.fill_rect(img, 0, 0, 2, 2, color)
    assert not img.any()


@st.composite
def copy_case(draw):
    src = draw(images(max_side=40))
    h, w = src.shape[:2]
    dst = make_pixels("noise", w, h, draw(st.integers(0, 2**32 - 1)))
    rects = [draw(rects_in(w, h)) for _ in range(draw(st.integers(0, 4)))]
    n = draw(st.integers(0, len(rects)))
    return src, dst, np.array(rects, np.int32).reshape(-1, 4), n


@given(copy_case())
def test_copy_rects_equals_reference(case):
    src, dst, rects, n = case
    expected = dst.copy()
    ref.copy_rects(src, expected, rects.tolist(), n)
    _encode.copy_rects(src, dst, rects, n)
    assert np.array_equal(dst, expected)


def test_copy_rects_rejects_bad_arguments():
    src = np.ones((3, 4, 4), np.uint8)
    dst = np.zeros((3, 4, 4), np.uint8)
    rects = np.array([[0, 0, 4, 3]], np.int32)
    with pytest.raises(ValueError):
        _encode.copy_rects(src, np.zeros((3, 5, 4), np.uint8), rects, 1)
    with pytest.raises(ValueError):
        _encode.copy_rects(src, dst, rects, 2)         # more than the table holds
    with pytest.raises(ValueError):                     # a bad rectangle after a good one
        _encode.copy_rects(src, dst, np.array([[0, 0, 1, 1], [0, 0, 5, 1]], np.int32), 2)
    with pytest.raises(ValueError):
        _encode.copy_rects(src, np.zeros((3, 4, 3), np.uint8), rects, 1)
    assert not dst.any()
    _encode.copy_rects(src, dst, rects, 0)
    assert not dst.any()


# -- PNG row filters ----------------------------------------------------------------------

def run_filter(img, rect, mode):
    x, y, w, h = rect
    size = h * (4 * w + 1)
    out = np.full(size + 16, 0xA5, np.uint8)
    n = _encode.png_filter(img, x, y, w, h, mode, out)
    assert n == size
    assert (out[size:] == 0xA5).all()
    return out[:n].tobytes()


@pytest.mark.parametrize("mode", FILTER_MODES)
@given(case=image_and_rect())
def test_png_filter_equals_reference(mode, case):
    img, rect = case
    assert run_filter(img, rect, FILTER_MODES[mode]) == ref.png_filter(img, *rect,
                                                                       FILTER_MODES[mode])


@pytest.mark.parametrize("mode", FILTER_MODES)
@pytest.mark.parametrize("size", [(4097, 1), (1, 4097), (1, 1)])
@pytest.mark.parametrize("style", ["noise", "gradient"])
def test_png_filter_of_odd_sizes_equals_reference(mode, size, style):
    img = make_pixels(style, *size, seed=3)
    rect = (0, 0) + size
    assert run_filter(img, rect, FILTER_MODES[mode]) == ref.png_filter(img, *rect,
                                                                       FILTER_MODES[mode])


def test_png_filter_adaptive_picks_the_cheaper_filter():
    # Rows 1 and 2: a horizontal ramp repeated (Up gives zeros), then a constant row
    # under a ramp (Sub gives zeros past the first pixel, Up does not).
    img = np.zeros((3, 4, 4), np.uint8)
    img[0] = img[1] = np.arange(16).reshape(4, 4) * 10
    img[2] = 7
    data = run_filter(img, (0, 0, 4, 3), _encode.FILTER_ADAPTIVE)
    assert [data[r * 17] for r in range(3)] == [1, 2, 1]
    # On a tie Up wins.
    flat = np.zeros((2, 2, 4), np.uint8)
    assert run_filter(flat, (0, 0, 2, 2), _encode.FILTER_ADAPTIVE)[9] == 2


def test_png_filter_first_row_has_no_row_above():
    # A rectangle starting below the top of the image must not look at the row above it.
    img = np.full((3, 2, 4), 9, np.uint8)
    img[0] = 200
    data = run_filter(img, (0, 1, 2, 2), _encode.FILTER_UP)
    assert data[:9] == b"\0" + bytes([9] * 8)       # first row: None
    assert data[9:] == b"\2" + bytes(8)             # then Up, relative to row 1


def test_png_filter_rejects_bad_arguments():
    img = np.zeros((2, 3, 4), np.uint8)
    with pytest.raises(ValueError):
        _encode.png_filter(img, 0, 0, 3, 2, _encode.FILTER_NONE, np.zeros(25, np.uint8))
    for mode in (_encode.FILTER_AVERAGE, _encode.FILTER_PAETH, 6, -1):
        with pytest.raises(ValueError):
            _encode.png_filter(img, 0, 0, 3, 2, mode, np.zeros(26, np.uint8))


@st.composite
def filtered_case(draw, max_side=24):
    """An image, a rectangle, and arbitrary filtered scanlines for it with any of the five
    filter types on each row."""
    img, (x, y, w, h) = draw(image_and_rect(max_side=max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    stride = 4 * w + 1
    data = rng.integers(0, 256, h * stride, dtype=np.uint8)
    if draw(st.booleans()):
        data[:] = rng.integers(0, 3, h * stride)     # small residuals, like real data
    data[::stride] = [draw(st.integers(0, 4)) for _ in range(h)]
    return img, (x, y, w, h), data.tobytes()


@given(filtered_case())
def test_png_unfilter_equals_reference_for_all_filter_types(case):
    img, (x, y, w, h), data = case
    expected = img.copy()
    expected[y:y + h, x:x + w] = ref.png_unfilter(data, w, h)
    _encode.png_unfilter(data, img, x, y, w, h)
    assert np.array_equal(img, expected)


@pytest.mark.parametrize("size", [(4097, 1), (1, 4097), (3, 5)])
@pytest.mark.parametrize("filter_type", range(5))
def test_png_unfilter_of_each_filter_type_equals_reference(size, filter_type):
    w, h = size
    rng = np.random.default_rng(filter_type)
    data = rng.integers(0, 256, h * (4 * w + 1), dtype=np.uint8)
    data[::4 * w + 1] = filter_type
    img = np.zeros((h, w, 4), np.uint8)
    _encode.png_unfilter(data.tobytes(), img, 0, 0, w, h)
    assert np.array_equal(img, ref.png_unfilter(data.tobytes(), w, h))


@pytest.mark.parametrize("mode", FILTER_MODES)
@given(case=image_and_rect())
def test_png_filter_then_unfilter_round_trips(mode, case):
    img, (x, y, w, h) = case
    data = run_filter(img, (x, y, w, h), FILTER_MODES[mode])
    out = np.zeros((h, w, 4), np.uint8)
    _encode.png_unfilter(data, out, 0, 0, w, h)
    assert np.array_equal(out, img[y:y + h, x:x + w])


@given(filtered_case(), st.data())
def test_png_filters_valid_equals_reference(case, data):
    _, (_, _, w, h), good = case
    blob = bytearray(good)
    mutation = data.draw(st.sampled_from(["none", "type", "cut", "extend"]))
    if mutation == "type":
        row = data.draw(st.integers(0, h - 1))
        blob[row * (4 * w + 1)] = data.draw(st.integers(5, 255))
    elif mutation == "cut":
        del blob[data.draw(st.integers(0, len(blob) - 1)):]
    elif mutation == "extend":
        blob += b"\0" * data.draw(st.integers(1, 9))
    blob = bytes(blob)
    assert _encode.png_filters_valid(blob, w, h) == ref.png_filters_valid(blob, w, h)
    assert _encode.png_filters_valid(blob, w, h) == (mutation == "none")


def test_png_unfilter_rejects_bad_data_without_writing():
    img = np.full((2, 2, 4), 7, np.uint8)
    for data in (b"", bytes(17), bytes(19), b"\5" + bytes(8) + b"\0" + bytes(8),
                 b"\0" + bytes(8) + b"\xff" + bytes(8)):
        with pytest.raises(ValueError):
            _encode.png_unfilter(data, img, 0, 0, 2, 2)
        assert (img == 7).all()
    for w, h in ((0, 1), (1, 0)):
        assert not _encode.png_filters_valid(b"", w, h)


# -- RLE ------------------------------------------------------------------------------------

def rle(img, rect, cap=None):
    x, y, w, h = rect
    cap = 6 * w * h + 8 if cap is None else cap
    out = np.full(cap + 16, 0xA5, np.uint8)
    n = _encode.rle_encode(img, x, y, w, h, out[:cap])
    assert (out[cap:] == 0xA5).all()
    return None if n == -1 else out[:n].tobytes()


@given(image_and_rect(styles=["runs", "palette", "solid", "noise"]))
def test_rle_encode_equals_reference(case):
    img, rect = case
    assert rle(img, rect) == ref.rle_encode(img, *rect)


@pytest.mark.parametrize("size", [(4097, 1), (1, 4097)])
@pytest.mark.parametrize("style", ["runs", "palette", "solid", "noise"])
def test_rle_encode_of_long_lines_equals_reference(size, style):
    img = make_pixels(style, *size, seed=7)
    assert rle(img, (0, 0) + size) == ref.rle_encode(img, 0, 0, *size)


A, B, C, D, E = (bytes([i, 10 * i, 100 + i, 255 - i]) for i in range(1, 6))


def row_image(*pixels, w=None):
    w = len(pixels) if w is None else w
    return np.frombuffer(b"".join(pixels), np.uint8).reshape(-1, w, 4).copy()


@pytest.mark.parametrize("pixels, expected", [
    ([A], word(2**31 + 1) + A),
    ([A, A], word(2) + A),
    ([A, A, A], word(3) + A),
    ([A, B], word(2**31 + 2) + A + B),
    ([A, A, B], word(2) + A + word(2**31 + 1) + B),
    ([B, A, A], word(2**31 + 3) + B + A + A),                  # a 2-run joins an open literal
    ([B, A, A, A], word(2**31 + 1) + B + word(3) + A),         # a 3-run closes it
    ([A, A, B, B], word(2) + A + word(2) + B),
    ([A, A, A, B, C, D, D, E, E, E],
     word(3) + A + word(2**31 + 4) + B + C + D + D + word(3) + E),
])
def test_rle_encode_layout(pixels, expected):
    img = row_image(*pixels)
    assert rle(img, (0, 0, len(pixels), 1)) == expected
    assert ref.rle_encode(img, 0, 0, len(pixels), 1) == expected


def test_rle_runs_cross_row_ends():
    img = row_image(A, A, A, A, A, B, w=3)       # rows: A A A / A A B
    assert rle(img, (0, 0, 3, 2)) == word(5) + A + word(2**31 + 1) + B
    # Only the rectangle's pixels count, not the rest of each image row.
    img = row_image(A, A, C, A, A, C, w=3)
    assert rle(img, (0, 0, 2, 2)) == word(4) + A


def test_rle_pixels_are_bytes_in_memory_order():
    img = row_image(b"\x01\x02\x03\x04")
    assert rle(img, (0, 0, 1, 1)) == b"\x01\x00\x00\x80" + b"\x01\x02\x03\x04"


@given(image_and_rect(styles=["runs", "palette", "noise"]), st.data())
def test_rle_encode_gives_up_when_out_is_too_small(case, data):
    img, rect = case
    full = ref.rle_encode(img, *rect)
    cap = data.draw(st.integers(0, len(full) - 1))
    assert rle(img, rect, cap) is None
    assert rle(img, rect, len(full)) == full


@given(image_and_rect(styles=["runs", "palette", "solid", "noise"]))
def test_rle_round_trips(case):
    img, (x, y, w, h) = case
    data = rle(img, (x, y, w, h))
    assert _encode.rle_valid(data, w * h)
    out = np.zeros_like(img)
    _encode.rle_decode(data, out, x, y, w, h)
    assert np.array_equal(out[y:y + h, x:x + w], img[y:y + h, x:x + w])
    out[y:y + h, x:x + w] = 0
    assert not out.any()              # nothing written outside the rectangle


@st.composite
def rle_payload(draw, npix):
    """Any well-formed payload of npix pixels, not just what the encoder makes: runs of
    1 or 2, literals of any length, across row ends."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    parts, left = [], npix
    while left:
        n = draw(st.integers(1, min(left, max(9, npix // 8))))
        if draw(st.booleans()):
            parts.append(word(2**31 + n) + rng.integers(0, 256, 4 * n, dtype=np.uint8).tobytes())
        else:
            parts.append(word(n) + rng.integers(0, 256, 4, dtype=np.uint8).tobytes())
        left -= n
    return b"".join(parts)


@st.composite
def rle_decode_case(draw):
    img, rect = draw(image_and_rect(max_side=16))
    return img, rect, draw(rle_payload(rect[2] * rect[3]))


@given(rle_decode_case())
def test_rle_decode_equals_reference(case):
    img, (x, y, w, h), data = case
    expected = img.copy()
    expected[y:y + h, x:x + w] = ref.rle_decode(data, w, h)
    _encode.rle_decode(data, img, x, y, w, h)
    assert np.array_equal(img, expected)


@given(rle_decode_case(), st.data())
def test_rle_valid_equals_reference_on_damaged_payloads(case, data):
    _, (_, _, w, h), good = case
    blob = bytearray(good)
    for _ in range(data.draw(st.integers(0, 3))):
        kind = data.draw(st.sampled_from(["byte", "cut", "append", "header"]))
        if kind == "byte" and blob:
            blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
        elif kind == "cut" and blob:
            del blob[data.draw(st.integers(0, len(blob) - 1)):]
        elif kind == "append":
            blob += data.draw(st.binary(min_size=1, max_size=12))
        elif kind == "header":
            # A header word with a count chosen to be zero, too large or just right.
            n = data.draw(st.sampled_from([0, 1, w * h, w * h + 1, 2**31 - 1]))
            blob[0:0] = word(data.draw(st.sampled_from([0, 2**31])) + n)
    blob = bytes(blob)
    expected = ref.rle_valid(blob, w * h)
    assert _encode.rle_valid(blob, w * h) == expected
    img = np.full((h, w, 4), 0x5A, np.uint8)
    if expected:
        _encode.rle_decode(blob, img, 0, 0, w, h)
        assert np.array_equal(img, ref.rle_decode(blob, w, h))
    else:
        with pytest.raises(ValueError):
            _encode.rle_decode(blob, img, 0, 0, w, h)
        assert (img == 0x5A).all()


@pytest.mark.parametrize("payload, npix", [
    (word(4) + A, 4),                                  # good, for reference
    (b"", 1),                                          # empty
    (word(4) + A[:3], 4),                              # truncated pixel
    (word(4), 4),                                      # header without its pixel
    (word(2**31 + 2) + A, 2),                          # literal short of its pixels
    (word(4) + A + b"\0", 4),                          # not whole words
    (word(5) + A, 4),                                  # run overflows the rectangle
    (word(2**31 + 2) + A + B, 1),                      # literal overflows it
    (word(2) + A + word(2) + B, 3),                    # second item overflows
    (word(3) + A, 4),                                  # too short
    (word(0) + A + word(4) + A, 4),                    # zero-count run
    (word(2**31) + word(4) + A, 4),                    # zero-count literal
    (word(2**31 + 2**31 - 1) + A, 1),                  # huge literal count
    (word(2**31 - 1) + A, 4),                          # huge run count
    (word(4) + A + word(0) + A, 4),                    # zero count after a full image
])
def test_rle_valid_cases(payload, npix):
    good = payload == word(4) + A
    assert _encode.rle_valid(payload, npix) is good
    assert ref.rle_valid(payload, npix) is good
