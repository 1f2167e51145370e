"""Plain-numpy reference implementations of the kernels in fastfig/_encode.pyx.

Each function here says, as simply as numpy and Python allow, what its compiled namesake
computes; tests/test_encode_kernels.py holds the two together with property tests. Speed
does not matter here, clarity does: where the kernel is clever (memcmp row skips, early
exits, byte-by-byte little-endian words), the reference is plain.

Images are C-contiguous (H, W, 4) uint8 RGBA arrays; rectangles are (x, y, w, h).
"""

import numpy as np

FILTER_NONE, FILTER_SUB, FILTER_UP, FILTER_AVERAGE, FILTER_PAETH, FILTER_ADAPTIVE = range(6)

#: An RLE header word at or above this opens a literal stretch.
LITERAL = 0x80000000


def check_rect(img, x, y, w, h):
    """The kernels' rule for a usable rectangle: non-empty and inside the image."""
    H, W = img.shape[:2]
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > W or y + h > H:
        raise ValueError(f"rectangle {(x, y, w, h)} outside a {W}x{H} image")


def _pixels(img, x, y, w, h):
    """The rectangle's pixels as uint32 words in raster order (memory byte order)."""
    return np.ascontiguousarray(img[y:y + h, x:x + w]).view("<u4").reshape(-1)


# -- damage -------------------------------------------------------------------------------

def changed_mask(cur, prev, regions):
    """True where a pixel differs and lies inside one of the scan regions."""
    diff = (cur != prev).any(axis=2)
    inside = np.zeros(diff.shape, bool)
    for x, y, w, h in regions:
        inside[y:y + h, x:x + w] = True
    return diff & inside


def damage_cells(cur, prev, regions, cell):
    """The tight box (x0, y0, x1, y1), half-open, of the changed pixels of every cell with
    a change, as a dict keyed by (cell row, cell column)."""
    mask = changed_mask(cur, prev, regions)
    H, W = mask.shape
    boxes = {}
    for cy in range(0, -(-H // cell)):
        for cx in range(0, -(-W // cell)):
            sub = mask[cy * cell:(cy + 1) * cell, cx * cell:(cx + 1) * cell]
            if not sub.any():
                continue
            rows = np.flatnonzero(sub.any(axis=1))
            cols = np.flatnonzero(sub.any(axis=0))
            boxes[cy, cx] = (cx * cell + cols[0], cy * cell + rows[0],
                             cx * cell + cols[-1] + 1, cy * cell + rows[-1] + 1)
    return boxes


def _area(b):
    return (b[2] - b[0]) * (b[3] - b[1])


def _union(a, b):
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def damage(cur, prev, regions, cell, rect_cost):
    """The damage rectangles (x, y, w, h) in the kernel's order.

    The cells' tight boxes are merged under the cost model cost = pixels + rect_cost: left
    to right inside a row of cells, then each row's rectangles into the first rectangle
    above that still reaches the previous row of cells and whose union costs no more than
    the two apart; finally one bounding rectangle replaces them all when that is cheaper.
    """
    cells = damage_cells(cur, prev, regions, cell)
    ncy = -(-cur.shape[0] // cell)
    ncx = -(-cur.shape[1] // cell)

    def cheaper(a, b):
        return _area(_union(a, b)) <= _area(a) + _area(b) + rect_cost

    # out[:closed] can grow no more, out[closed:] are open (they reach the row above).
    out, closed = [], 0
    for cy in range(ncy):
        row = []
        for cx in range(ncx):
            box = cells.get((cy, cx))
            if box is None:
                continue
            if row and cheaper(row[-1], box):
                row[-1] = _union(row[-1], box)
            else:
                row.append(box)
        new = []
        for box in row:
            for j in range(closed, len(out)):
                if cheaper(out[j], box):
                    out[j] = _union(out[j], box)
                    break
            else:
                new.append(box)
        # Open rectangles that did not reach this row of cells are closed for good. The
        # kernel partitions them in place by swapping, which reorders the open ones; the
        # order decides which rectangle above a later box merges into, so keep it.
        m = closed
        for j in range(closed, len(out)):
            if out[j][3] <= cy * cell:
                out[m], out[j] = out[j], out[m]
                m += 1
        closed = m
        out += new
    rects = out
    if len(rects) > 1:
        bound = rects[0]
        for r in rects:
            bound = _union(bound, r)
        if _area(bound) + rect_cost <= sum(_area(r) + rect_cost for r in rects):
            rects = [bound]
    return [(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in rects]


def damage_union(rects, width, height, cell, rect_cost):
    """The kernel's damage_union: the damage() of a change that touches exactly the
    pixels of the given rectangles (x, y, w, h)."""
    prev = np.zeros((height, width, 4), np.uint8)
    cur = prev.copy()
    for x, y, w, h in rects:
        cur[y:y + h, x:x + w, 3] = 1
    return damage(cur, prev, [(0, 0, width, height)], cell, rect_cost)


# -- FILL -----------------------------------------------------------------------------------

def solid_color(img, x, y, w, h):
    """The rectangle's one colour as 4 bytes, or None if it has more than one."""
    check_rect(img, x, y, w, h)
    px = _pixels(img, x, y, w, h)
    return img[y, x].tobytes() if (px == px[0]).all() else None


def fill_rect(img, x, y, w, h, rgba):
    check_rect(img, x, y, w, h)
    img[y:y + h, x:x + w] = np.frombuffer(bytes(rgba), np.uint8)


def copy_rects(src, dst, rects, n):
    for x, y, w, h in rects[:n]:
        check_rect(src, x, y, w, h)
    for x, y, w, h in rects[:n]:
        dst[y:y + h, x:x + w] = src[y:y + h, x:x + w]


# -- PNG row filters ----------------------------------------------------------------------

def _sub(row):
    """Sub residuals of one row of 4*w bytes (left neighbour 4 bytes back, zero before)."""
    left = np.concatenate([np.zeros(4, np.uint8), row[:-4]])
    return row - left          # uint8 arithmetic wraps modulo 256


def _cost(residual):
    """Sum of |residual| with each byte read as a signed int8."""
    return int(np.abs(residual.view(np.int8).astype(np.int64)).sum())


def png_filter(img, x, y, w, h, mode):
    """The filtered scanlines of the rectangle (a filter byte, then 4*w bytes, per row).

    adaptive: per row, Up if the sum of |signed residual| of Up is no more than that of
    Sub, else Sub. The rectangle's first row has no row above: adaptive takes Sub there,
    and Up writes it as None."""
    check_rect(img, x, y, w, h)
    if mode not in (FILTER_NONE, FILTER_SUB, FILTER_UP, FILTER_ADAPTIVE):
        raise ValueError(f"unsupported filter mode {mode}")
    rect = np.ascontiguousarray(img[y:y + h, x:x + w]).reshape(h, 4 * w)
    out = []
    for r in range(h):
        row = rect[r]
        f = mode
        if f == FILTER_ADAPTIVE:
            if r == 0:
                f = FILTER_SUB
            else:
                f = FILTER_UP if _cost(row - rect[r - 1]) <= _cost(_sub(row)) else FILTER_SUB
        if f == FILTER_UP and r == 0:
            f = FILTER_NONE
        if f == FILTER_NONE:
            data = row
        elif f == FILTER_SUB:
            data = _sub(row)
        else:
            data = row - rect[r - 1]
        out.append(bytes([f]) + data.tobytes())
    return b"".join(out)


def png_filters_valid(data, w, h):
    stride = 4 * w + 1
    if w < 1 or h < 1 or len(data) != h * stride:
        return False
    return all(data[r * stride] <= FILTER_PAETH for r in range(h))


def _paeth(a, b, c):
    """RFC 2083 6.6 predictor, on int arrays of the 4 channels of one pixel."""
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def png_unfilter(data, w, h):
    """The (h, w, 4) image that the filtered scanlines data stand for; all five PNG filter
    types, with the row above the first and the pixel left of each row being zero."""
    if not png_filters_valid(data, w, h):
        raise ValueError("filtered data does not match the rectangle")
    stride = 4 * w + 1
    raw = np.frombuffer(bytes(data), np.uint8).reshape(h, stride)
    out = np.zeros((h, w, 4), np.int64)
    for r in range(h):
        f = raw[r, 0]
        src = raw[r, 1:].reshape(w, 4).astype(np.int64)
        above = out[r - 1] if r > 0 else np.zeros((w, 4), np.int64)
        if f == FILTER_NONE:
            out[r] = src
        elif f == FILTER_UP:
            out[r] = (src + above) % 256
        elif f == FILTER_SUB:
            out[r] = np.cumsum(src, axis=0) % 256
        else:
            zero = np.zeros(4, np.int64)
            for c in range(w):
                left = out[r, c - 1] if c > 0 else zero
                up_left = above[c - 1] if c > 0 else zero
                if f == FILTER_AVERAGE:
                    pred = (left + above[c]) // 2
                else:
                    pred = _paeth(left, above[c], up_left)
                out[r, c] = (src[c] + pred) % 256
    return out.astype(np.uint8)


# -- RLE ------------------------------------------------------------------------------------

def _word(v):
    return int(v).to_bytes(4, "little")


def rle_encode(img, x, y, w, h):
    """The RLE payload of the rectangle.

    Pixels are taken in raster order across row ends and grouped into maximal runs of one
    value. A run of 3 or more is a run (header word n, then the pixel); a run of 2 is a run
    unless a literal stretch is open, in which case its 2 pixels join the literal; a run of
    1 joins (or opens) a literal stretch (header word 2**31 + count, then the pixels)."""
    check_rect(img, x, y, w, h)
    px = _pixels(img, x, y, w, h)
    runs = []                              # (pixel, count), maximal
    start = 0
    for i in range(1, len(px) + 1):
        if i == len(px) or px[i] != px[start]:
            runs.append((px[start], i - start))
            start = i
    out = []
    literal = None                         # pixel words of the open literal stretch
    for value, n in runs:
        if n >= 3 or (n == 2 and literal is None):
            if literal is not None:
                out.append(_word(LITERAL + len(literal)) + b"".join(literal))
                literal = None
            out.append(_word(n) + _word(value))
        else:
            literal = (literal or []) + [_word(value)] * n
    if literal is not None:
        out.append(_word(LITERAL + len(literal)) + b"".join(literal))
    return b"".join(out)


def rle_items(data):
    """The (is_literal, count, pixel words) items of an RLE payload; ValueError where it is
    malformed: a length that is not a whole number of words, a zero count, or a header
    whose pixels run past the end."""
    data = bytes(data)
    if len(data) % 4:
        raise ValueError("RLE payload is not a whole number of words")
    pos = 0
    items = []
    while pos < len(data):
        hdr = int.from_bytes(data[pos:pos + 4], "little")
        pos += 4
        literal = hdr >= LITERAL
        n = hdr - LITERAL if literal else hdr
        size = 4 * n if literal else 4
        if n == 0:
            raise ValueError("RLE count of zero")
        if pos + size > len(data):
            raise ValueError("RLE item runs past the end")
        items.append((literal, n, data[pos:pos + size]))
        pos += size
    return items


def rle_valid(data, npix):
    try:
        items = rle_items(data)
    except ValueError:
        return False
    return sum(n for _, n, _ in items) == npix


def rle_decode(data, w, h):
    """The (h, w, 4) image an RLE payload of exactly w*h pixels stands for."""
    if not rle_valid(data, w * h):
        raise ValueError("malformed RLE payload for this rectangle")
    parts = []
    for literal, n, words in rle_items(data):
        parts.append(words if literal else words * n)
    return np.frombuffer(b"".join(parts), np.uint8).reshape(h, w, 4).copy()
