# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
# cython: cdivision=True, nonecheck=False, embedsignature=True
"""Compiled kernels of the frame codec: damage detection, PNG row filters, run-length
coding, solid-fill detection and rectangle copies; and the RGBA to YUV 4:2:0 conversion
of video export.

Only kernels live here. Which encoding a rectangle gets, when a keyframe is sent and the
packet layout are policy, kept in plain Python (encoder.py, decoder.py, packet.py).

Every kernel works on C-contiguous (height, width, 4) uint8 RGBA images through typed
memoryviews, runs without the GIL, and writes into memory its caller owns: no per-frame
full-size allocation happens here. Callers validate rectangles before calling (they are
trusted here, like indices in numpy's own C loops); the decoders' *_check kernels exist so
that untrusted payloads are validated before anything is written.

Multi-byte integers of the wire format (RLE run headers) are little-endian and read and
written byte by byte, so the kernels are correct on any host.
"""

from libc.stdint cimport uint8_t, uint32_t, int32_t, int64_t
from libc.string cimport memcmp, memcpy, memset
from libc.stdlib cimport malloc, free

cdef extern from *:
    """
    /* Unaligned-safe pixel loads: the compiler turns these memcpy calls into plain moves. */
    static inline uint32_t ff_load32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
    static inline void ff_store32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
    """
    uint32_t ff_load32(const uint8_t *p) noexcept nogil
    void ff_store32(uint8_t *p, uint32_t v) noexcept nogil


# --------------------------------------------------------------------------------------
# Damage: which rectangles changed between the previous frame and this one
# --------------------------------------------------------------------------------------

cdef struct Box:
    int64_t x0, y0, x1, y1      # half-open pixel bounds: [x0, x1) x [y0, y1)

cdef inline int64_t box_area(Box b) noexcept nogil:
    return (b.x1 - b.x0) * (b.y1 - b.y0)

cdef inline Box box_union(Box a, Box b) noexcept nogil:
    cdef Box u
    u.x0 = a.x0 if a.x0 < b.x0 else b.x0
    u.y0 = a.y0 if a.y0 < b.y0 else b.y0
    u.x1 = a.x1 if a.x1 > b.x1 else b.x1
    u.y1 = a.y1 if a.y1 > b.y1 else b.y1
    return u


cdef void scan_box(const uint8_t[:, :, ::1] cur, const uint8_t[:, :, ::1] prev,
                   int64_t bx, int64_t by, int64_t bw, int64_t bh,
                   int64_t cell, int64_t ncx, Box *cells) noexcept nogil:
    """Grow each cell's tight box with the changed pixels of one scan region."""
    cdef int64_t y, cx, sx, ex, p, row_bytes = bw * 4
    cdef const uint8_t *rc
    cdef const uint8_t *rp
    cdef Box *c
    for y in range(by, by + bh):
        rc = &cur[y, 0, 0]
        rp = &prev[y, 0, 0]
        # Whole-row compare first: in animation frames most rows are unchanged and
        # memcmp runs at memory speed.
        if memcmp(rc + bx * 4, rp + bx * 4, row_bytes) == 0:
            continue
        for cx in range(bx // cell, (bx + bw - 1) // cell + 1):
            sx = cx * cell
            if sx < bx:
                sx = bx
            ex = (cx + 1) * cell
            if ex > bx + bw:
                ex = bx + bw
            if memcmp(rc + sx * 4, rp + sx * 4, (ex - sx) * 4) == 0:
                continue
            c = &cells[(y // cell) * ncx + cx]
            if c.y0 > y:
                c.y0 = y
            if c.y1 < y + 1:
                c.y1 = y + 1
            # The segment differs somewhere; only look for changes that widen the box.
            p = sx
            while p < c.x0 and p < ex:
                if ff_load32(rc + p * 4) != ff_load32(rp + p * 4):
                    c.x0 = p
                    break
                p += 1
            p = ex - 1
            while p >= c.x1 and p >= sx:
                if ff_load32(rc + p * 4) != ff_load32(rp + p * 4):
                    c.x1 = p + 1
                    break
                p -= 1


cdef int64_t merge_cells(Box *cells, int64_t ncx, int64_t ncy, int64_t cell,
                         int64_t rect_cost, Box *out) noexcept nogil:
    """Merge dirty cells' tight boxes into few rectangles with the cost model
    cost(rect) = pixels + rect_cost; returns how many rectangles were written to out.

    First left to right inside a row of cells, then each row's rectangles into the open
    ones above (those that reach the previous row of cells). A merge is taken when the
    union costs no more than the two parts kept apart. out[0:closed] holds rectangles that
    can grow no more, out[closed:row_start] the open ones, out[row_start:n] the new row."""
    cdef int64_t cy, cx, i, j, m, n = 0, row_start, closed = 0
    cdef Box cur, u, t
    cdef Box *c
    cdef bint have
    for cy in range(ncy):
        row_start = n
        have = False
        for cx in range(ncx):
            c = &cells[cy * ncx + cx]
            if c.x1 == 0:
                continue
            if not have:
                cur = c[0]
                have = True
                continue
            u = box_union(cur, c[0])
            if box_area(u) <= box_area(cur) + box_area(c[0]) + rect_cost:
                cur = u
            else:
                out[n] = cur
                n += 1
                cur = c[0]
        if have:
            out[n] = cur
            n += 1
        for i in range(row_start, n):
            for j in range(closed, row_start):
                u = box_union(out[j], out[i])
                if box_area(u) <= box_area(out[j]) + box_area(out[i]) + rect_cost:
                    out[j] = u
                    out[i].x1 = 0           # folded into out[j]
                    break
        # Open rectangles that did not grow into this row are closed for good.
        m = closed
        for j in range(closed, row_start):
            if out[j].y1 <= cy * cell:
                t = out[m]
                out[m] = out[j]
                out[j] = t
                m += 1
        closed = m
        j = row_start
        for i in range(row_start, n):
            if out[i].x1 != 0:
                out[j] = out[i]
                j += 1
        n = j
    return n


def damage(const uint8_t[:, :, ::1] cur not None, const uint8_t[:, :, ::1] prev not None,
           const int32_t[:, ::1] regions not None, int cell, int64_t rect_cost,
           int32_t[:, ::1] out not None):
    """Find the rectangles in which ``cur`` differs from ``prev``.

    regions: (k, 4) int32 boxes x, y, w, h to scan, inside the frame (the whole frame, or
    the caller's hint). Each cell of ``cell`` pixels with a change is shrunk to the tight
    box of its changed pixels, then neighbours are merged where the union costs no more
    (cost = pixels + rect_cost), and a single bounding rectangle replaces them all when
    that is cheaper. Writes x, y, w, h rows into ``out`` (capacity: one row per cell) and
    returns their count; 0 for identical frames.
    """
    cdef int64_t H = cur.shape[0], W = cur.shape[1]
    if prev.shape[0] != H or prev.shape[1] != W or cur.shape[2] != 4 or prev.shape[2] != 4:
        raise ValueError("cur and prev must be (H, W, 4) images of the same size")
    if cell < 1:
        raise ValueError("cell must be positive")
    if regions.shape[1] != 4:
        raise ValueError("regions must have shape (k, 4)")
    cdef int64_t ncx = (W + cell - 1) // cell, ncy = (H + cell - 1) // cell
    if out.shape[0] < ncx * ncy or out.shape[1] != 4:
        raise ValueError("out must have shape (at least one row per cell, 4)")
    cdef int64_t k, i, n
    for k in range(regions.shape[0]):
        if (regions[k, 0] < 0 or regions[k, 1] < 0 or regions[k, 2] < 0 or regions[k, 3] < 0
                or regions[k, 0] + <int64_t>regions[k, 2] > W
                or regions[k, 1] + <int64_t>regions[k, 3] > H):
            raise ValueError("scan region outside the frame")
    if H == 0 or W == 0:
        return 0
    cdef Box *cells = <Box *>malloc(ncx * ncy * 2 * sizeof(Box))
    if cells == NULL:
        raise MemoryError()
    cdef Box *rects = cells + ncx * ncy
    with nogil:
        for i in range(ncx * ncy):
            # An empty cell has x0 beyond any column and x1 == 0.
            cells[i].x0 = W
            cells[i].y0 = H
            cells[i].x1 = 0
            cells[i].y1 = 0
        for k in range(regions.shape[0]):
            if regions[k, 2] > 0 and regions[k, 3] > 0:
                scan_box(cur, prev, regions[k, 0], regions[k, 1], regions[k, 2],
                         regions[k, 3], cell, ncx, cells)
        n = merge_and_write(cells, ncx, ncy, cell, rect_cost, rects, out)
    free(cells)
    return n


cdef int64_t merge_and_write(Box *cells, int64_t ncx, int64_t ncy, int64_t cell,
                             int64_t rect_cost, Box *rects, int32_t[:, ::1] out) noexcept nogil:
    """Merge the cells' tight boxes (merge_cells), take one bounding rectangle instead
    when that is cheaper, and write x, y, w, h rows to out; returns their count."""
    cdef int64_t i, total, n = merge_cells(cells, ncx, ncy, cell, rect_cost, rects)
    cdef Box bound
    if n > 1:
        total = 0
        bound = rects[0]
        for i in range(n):
            total += box_area(rects[i]) + rect_cost
            bound = box_union(bound, rects[i])
        if box_area(bound) + rect_cost <= total:
            rects[0] = bound
            n = 1
    for i in range(n):
        out[i, 0] = <int32_t>rects[i].x0
        out[i, 1] = <int32_t>rects[i].y0
        out[i, 2] = <int32_t>(rects[i].x1 - rects[i].x0)
        out[i, 3] = <int32_t>(rects[i].y1 - rects[i].y0)
    return n


def damage_union(const int32_t[:, ::1] rects not None, Py_ssize_t n, int width, int height,
                 int cell, int64_t rect_cost, int32_t[:, ::1] out not None):
    """The damage of several frames as one, for a catch-up delta.

    rects[:n]: rectangles x, y, w, h inside a width x height frame (the damage of each
    frame, in any order, overlapping). Each is cut on the grid of ``cell`` pixels, every
    cell it touches grows to the tight box of what covers it, and the cells are merged
    as in damage(), so that a pixel changed by several frames is sent once. Writes x, y,
    w, h rows into ``out`` (capacity: one row per cell) and returns their count.
    """
    if cell < 1 or width < 1 or height < 1:
        raise ValueError("cell and the frame size must be positive")
    if n > rects.shape[0] or rects.shape[1] != 4:
        raise ValueError("rects must have shape (at least n, 4)")
    cdef int64_t ncx = (width + cell - 1) // cell, ncy = (height + cell - 1) // cell
    if out.shape[0] < ncx * ncy or out.shape[1] != 4:
        raise ValueError("out must have shape (at least one row per cell, 4)")
    cdef Py_ssize_t k
    for k in range(n):
        if (rects[k, 0] < 0 or rects[k, 1] < 0 or rects[k, 2] < 1 or rects[k, 3] < 1
                or rects[k, 0] + <int64_t>rects[k, 2] > width
                or rects[k, 1] + <int64_t>rects[k, 3] > height):
            raise ValueError("rectangle outside the frame")
    cdef Box *cells = <Box *>malloc(ncx * ncy * 2 * sizeof(Box))
    if cells == NULL:
        raise MemoryError()
    cdef Box *merged = cells + ncx * ncy
    cdef int64_t i, cx, cy, x0, y0, x1, y1, result
    cdef Box *c
    with nogil:
        for i in range(ncx * ncy):
            cells[i].x0 = width
            cells[i].y0 = height
            cells[i].x1 = 0
            cells[i].y1 = 0
        for k in range(n):
            for cy in range(rects[k, 1] // cell, (rects[k, 1] + rects[k, 3] - 1) // cell + 1):
                y0 = cy * cell if cy * cell > rects[k, 1] else rects[k, 1]
                y1 = (cy + 1) * cell
                if y1 > rects[k, 1] + rects[k, 3]:
                    y1 = rects[k, 1] + rects[k, 3]
                for cx in range(rects[k, 0] // cell, (rects[k, 0] + rects[k, 2] - 1) // cell + 1):
                    x0 = cx * cell if cx * cell > rects[k, 0] else rects[k, 0]
                    x1 = (cx + 1) * cell
                    if x1 > rects[k, 0] + rects[k, 2]:
                        x1 = rects[k, 0] + rects[k, 2]
                    c = &cells[cy * ncx + cx]
                    if c.x0 > x0:
                        c.x0 = x0
                    if c.y0 > y0:
                        c.y0 = y0
                    if c.x1 < x1:
                        c.x1 = x1
                    if c.y1 < y1:
                        c.y1 = y1
        result = merge_and_write(cells, ncx, ncy, cell, rect_cost, merged, out)
    free(cells)
    return result


def copy_rects(const uint8_t[:, :, ::1] src not None, uint8_t[:, :, ::1] dst not None,
               const int32_t[:, ::1] rects not None, Py_ssize_t n):
    """Copy the first n rectangles (x, y, w, h) from src to dst (same size): how the
    encoder keeps its previous frame equal to what clients hold without a full copy."""
    if (src.shape[0] != dst.shape[0] or src.shape[1] != dst.shape[1]
            or src.shape[2] != 4 or dst.shape[2] != 4):
        raise ValueError("src and dst must be (H, W, 4) images of the same size")
    if n > rects.shape[0]:
        raise ValueError("n exceeds the rectangle table")
    cdef Py_ssize_t i, y
    for i in range(n):
        check_rect(src, rects[i, 0], rects[i, 1], rects[i, 2], rects[i, 3])
    with nogil:
        for i in range(n):
            for y in range(rects[i, 1], rects[i, 1] + rects[i, 3]):
                memcpy(&dst[y, rects[i, 0], 0], &src[y, rects[i, 0], 0], rects[i, 2] * 4)


cdef inline int check_rect(const uint8_t[:, :, ::1] img, int64_t x, int64_t y,
                           int64_t w, int64_t h) except -1:
    # The kernels step 4 bytes per pixel: another channel count would run past the rows.
    if img.shape[2] != 4:
        raise ValueError(f"images are (H, W, 4) RGBA, not {img.shape[2]} channels")
    if x < 0 or y < 0 or w < 1 or h < 1 or x + w > img.shape[1] or y + h > img.shape[0]:
        raise ValueError(f"rectangle {(x, y, w, h)} outside a {img.shape[1]}x{img.shape[0]} image")
    return 0


# --------------------------------------------------------------------------------------
# YUV 4:2:0: RGBA pictures to the planes a video encoder takes
# --------------------------------------------------------------------------------------

def rgba_to_yuv420(const uint8_t[:, :, ::1] rgba not None, uint8_t[:, ::1] y_plane not None,
                   uint8_t[:, ::1] u_plane not None, uint8_t[:, ::1] v_plane not None,
                   const int32_t[:, ::1] rects not None, Py_ssize_t n,
                   const int32_t[::1] matrix not None):
    """Convert the 2x2 pixel blocks that the first n rectangles (x, y, w, h) of rgba touch
    into the Y, U and V planes of a 4:2:0 picture (alpha is ignored).

    matrix: 9 int32 coefficients in 16-bit fixed point, rows Y, Cb, Cr over (R, G, B),
    offsets and range included by the caller: Y = (row . rgb + (16 << 16) + (1 << 15)) >> 16
    for each pixel, Cb and Cr the same with 128 over the sum of the block's four pixels (a
    Cb/Cr row is scaled by 1/4 for it). A block past an odd right or bottom edge repeats
    the last column or row; the planes hold the picture rounded up to even sides.
    """
    cdef int64_t H = rgba.shape[0], W = rgba.shape[1]
    if rgba.shape[2] != 4:
        raise ValueError(f"images are (H, W, 4) RGBA, not {rgba.shape[2]} channels")
    cdef int64_t bw = (W + 1) // 2, bh = (H + 1) // 2
    if (y_plane.shape[0] < 2 * bh or y_plane.shape[1] < 2 * bw or u_plane.shape[0] < bh
            or u_plane.shape[1] < bw or v_plane.shape[0] < bh or v_plane.shape[1] < bw):
        raise ValueError("planes too small for the picture")
    if matrix.shape[0] != 9:
        raise ValueError("matrix must hold 9 coefficients")
    if n > rects.shape[0] or rects.shape[1] != 4:
        raise ValueError("n exceeds the rectangle table, or rows are not (x, y, w, h)")
    cdef Py_ssize_t i
    for i in range(n):
        check_rect(rgba, rects[i, 0], rects[i, 1], rects[i, 2], rects[i, 3])
    cdef int32_t m[9]
    for i in range(9):
        m[i] = matrix[i]
    cdef int64_t bx, by, bx0, bx1, by0, by1, x0, x1, y0, y1
    cdef int32_t r, g, b, sr, sg, sb
    cdef const uint8_t *p
    cdef int32_t YOFF = (16 << 16) + (1 << 15), COFF = (128 << 16) + (1 << 15)
    with nogil:
        for i in range(n):
            bx0 = rects[i, 0] // 2
            bx1 = (rects[i, 0] + rects[i, 2] + 1) // 2
            by0 = rects[i, 1] // 2
            by1 = (rects[i, 1] + rects[i, 3] + 1) // 2
            for by in range(by0, by1):
                y0 = 2 * by
                y1 = y0 + 1 if y0 + 1 < H else H - 1
                for bx in range(bx0, bx1):
                    x0 = 2 * bx
                    x1 = x0 + 1 if x0 + 1 < W else W - 1
                    p = &rgba[y0, x0, 0]
                    r = p[0]; g = p[1]; b = p[2]
                    sr = r; sg = g; sb = b
                    y_plane[y0, x0] = <uint8_t>((m[0] * r + m[1] * g + m[2] * b + YOFF) >> 16)
                    p = &rgba[y0, x1, 0]
                    r = p[0]; g = p[1]; b = p[2]
                    sr += r; sg += g; sb += b
                    y_plane[y0, x0 + 1] = <uint8_t>((m[0] * r + m[1] * g + m[2] * b + YOFF) >> 16)
                    p = &rgba[y1, x0, 0]
                    r = p[0]; g = p[1]; b = p[2]
                    sr += r; sg += g; sb += b
                    y_plane[y0 + 1, x0] = <uint8_t>((m[0] * r + m[1] * g + m[2] * b + YOFF) >> 16)
                    p = &rgba[y1, x1, 0]
                    r = p[0]; g = p[1]; b = p[2]
                    sr += r; sg += g; sb += b
                    y_plane[y0 + 1, x0 + 1] = <uint8_t>(
                        (m[0] * r + m[1] * g + m[2] * b + YOFF) >> 16)
                    u_plane[by, bx] = <uint8_t>((m[3] * sr + m[4] * sg + m[5] * sb + COFF) >> 16)
                    v_plane[by, bx] = <uint8_t>((m[6] * sr + m[7] * sg + m[8] * sb + COFF) >> 16)


# --------------------------------------------------------------------------------------
# FILL: solid rectangles
# --------------------------------------------------------------------------------------

def solid_color(const uint8_t[:, :, ::1] img not None, int x, int y, int w, int h):
    """The rectangle's single RGBA colour as 4 bytes, or None if it has two colours."""
    check_rect(img, x, y, w, h)
    cdef uint32_t first = ff_load32(&img[y, x, 0])
    cdef Py_ssize_t r, c
    cdef bint solid = True
    cdef const uint8_t *row
    with nogil:
        for r in range(y, y + h):
            row = &img[r, x, 0]
            for c in range(w):
                if ff_load32(row + c * 4) != first:
                    solid = False
                    break
            if not solid:
                break
    if not solid:
        return None
    return bytes(img[y, x, :])


def fill_rect(uint8_t[:, :, ::1] img not None, int x, int y, int w, int h,
              const uint8_t[::1] rgba not None):
    """Paint the rectangle with one RGBA colour (4 bytes)."""
    check_rect(img, x, y, w, h)
    if rgba.shape[0] != 4:
        raise ValueError("a FILL colour is 4 bytes")
    cdef uint32_t px = ff_load32(&rgba[0])
    cdef Py_ssize_t r, c
    cdef uint8_t *row
    with nogil:
        for r in range(y, y + h):
            row = &img[r, x, 0]
            for c in range(w):
                ff_store32(row + c * 4, px)


# --------------------------------------------------------------------------------------
# PNG row filters (RFC 2083 section 6, 4 bytes per pixel)
# --------------------------------------------------------------------------------------

cdef enum:
    F_NONE = 0
    F_SUB = 1
    F_UP = 2
    F_AVERAGE = 3
    F_PAETH = 4
    F_ADAPTIVE = 5       # per row, the cheaper of Sub and Up (not a PNG filter type)

FILTER_NONE = F_NONE
FILTER_SUB = F_SUB
FILTER_UP = F_UP
FILTER_AVERAGE = F_AVERAGE
FILTER_PAETH = F_PAETH
FILTER_ADAPTIVE = F_ADAPTIVE


cdef inline int64_t sad_sub(const uint8_t *row, int64_t n) noexcept nogil:
    cdef int64_t i, s = 0
    cdef int v
    for i in range(n):
        v = <uint8_t>(row[i] - (row[i - 4] if i >= 4 else 0))
        s += v if v < 128 else 256 - v
    return s


cdef inline int64_t sad_up(const uint8_t *row, const uint8_t *above, int64_t n) noexcept nogil:
    cdef int64_t i, s = 0
    cdef int v
    for i in range(n):
        v = <uint8_t>(row[i] - above[i])
        s += v if v < 128 else 256 - v
    return s


def png_filter(const uint8_t[:, :, ::1] img not None, int x, int y, int w, int h,
               int mode, uint8_t[::1] out not None):
    """Write the filtered scanlines of a rectangle (a filter byte then 4*w bytes per row)
    into out, as the data a PNG's IDAT deflates. mode: F_NONE, F_SUB, F_UP
    or F_ADAPTIVE. The first row has no row above it inside the rectangle, so Up
    there is None. Returns the number of bytes written, h * (1 + 4*w)."""
    check_rect(img, x, y, w, h)
    cdef int64_t n = 4 * <int64_t>w, stride = n + 1, r, i
    if out.shape[0] < h * stride:
        raise ValueError("out is too small for the filtered rectangle")
    if mode not in (F_NONE, F_SUB, F_UP, F_ADAPTIVE):
        raise ValueError(f"unsupported filter mode {mode}")
    cdef const uint8_t *row
    cdef const uint8_t *above
    cdef uint8_t *dst
    cdef int f
    with nogil:
        for r in range(h):
            row = &img[y + r, x, 0]
            above = &img[y + r - 1, x, 0] if r > 0 else NULL
            dst = &out[r * stride]
            f = mode
            if f == F_ADAPTIVE:
                if above == NULL:
                    f = F_SUB
                else:
                    f = F_UP if sad_up(row, above, n) <= sad_sub(row, n) else F_SUB
            if f == F_UP and above == NULL:
                f = F_NONE
            dst[0] = <uint8_t>f
            dst += 1
            if f == F_NONE:
                memcpy(dst, row, n)
            elif f == F_SUB:
                for i in range(4):
                    dst[i] = row[i]
                for i in range(4, n):
                    dst[i] = <uint8_t>(row[i] - row[i - 4])
            else:
                for i in range(n):
                    dst[i] = <uint8_t>(row[i] - above[i])
    return h * stride


def png_filters_valid(const uint8_t[::1] data not None, int w, int h):
    """True when data is exactly h filtered scanlines of 4*w bytes with known filter
    types: checked before png_unfilter writes anything."""
    cdef int64_t stride = 4 * <int64_t>w + 1, r
    if w < 1 or h < 1 or data.shape[0] != h * stride:
        return False
    for r in range(h):
        if data[r * stride] > F_PAETH:
            return False
    return True


cdef inline uint8_t paeth(int a, int b, int c) noexcept nogil:
    cdef int p = a + b - c
    cdef int pa = p - a if p > a else a - p
    cdef int pb = p - b if p > b else b - p
    cdef int pc = p - c if p > c else c - p
    if pa <= pb and pa <= pc:
        return <uint8_t>a
    if pb <= pc:
        return <uint8_t>b
    return <uint8_t>c


def png_unfilter(const uint8_t[::1] data not None, uint8_t[:, :, ::1] img not None,
                 int x, int y, int w, int h):
    """Reverse the row filters of data (validated by png_filters_valid) straight into the
    rectangle of img. Handles all five PNG filter types."""
    check_rect(img, x, y, w, h)
    if not png_filters_valid(data, w, h):
        raise ValueError("filtered data does not match the rectangle")
    cdef int64_t n = 4 * <int64_t>w, stride = n + 1, r, i
    cdef const uint8_t *src
    cdef uint8_t *row
    cdef const uint8_t *above
    cdef int f
    with nogil:
        for r in range(h):
            src = &data[r * stride]
            f = src[0]
            src += 1
            row = &img[y + r, x, 0]
            above = &img[y + r - 1, x, 0] if r > 0 else NULL
            if above == NULL:
                # Above the first row is zero: Up becomes None, Average halves Sub and
                # Paeth predicts from the left only.
                if f == F_UP:
                    f = F_NONE
                elif f == F_PAETH:
                    f = F_SUB
            if f == F_NONE:
                memcpy(row, src, n)
            elif f == F_SUB:
                for i in range(4):
                    row[i] = src[i]
                for i in range(4, n):
                    row[i] = <uint8_t>(src[i] + row[i - 4])
            elif f == F_UP:
                for i in range(n):
                    row[i] = <uint8_t>(src[i] + above[i])
            elif f == F_AVERAGE:
                for i in range(n):
                    row[i] = <uint8_t>(src[i] + (((row[i - 4] if i >= 4 else 0)
                                                  + (above[i] if above != NULL else 0)) >> 1))
            else:
                for i in range(4):
                    row[i] = <uint8_t>(src[i] + above[i])
                for i in range(4, n):
                    row[i] = <uint8_t>(src[i] + paeth(row[i - 4], above[i], above[i - 4]))


# --------------------------------------------------------------------------------------
# RLE: runs of one pixel and literal stretches, as little-endian 32-bit words
# --------------------------------------------------------------------------------------
#
# The rectangle's pixels are taken in raster order (rows joined end to end). A header word
# h < 2**31 is a run: the next word is one RGBA pixel repeated h times. h >= 2**31 opens a
# literal stretch of h - 2**31 pixels, which follow as words. Counts are never zero. A
# browser decodes it with Uint32Array.fill and .set; pixels are the 4 RGBA bytes as they
# lie in memory, so no byte swapping is needed anywhere.

cdef enum:
    MIN_RUN_IN_LITERAL = 3   # a run of 2 inside a literal stretch costs as much as its 2 pixels
cdef uint32_t LITERAL = 0x80000000u

cdef inline void put_le32(uint8_t *p, uint32_t v) noexcept nogil:
    p[0] = v & 0xff
    p[1] = (v >> 8) & 0xff
    p[2] = (v >> 16) & 0xff
    p[3] = v >> 24

cdef inline uint32_t get_le32(const uint8_t *p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24)


cdef struct RleWriter:
    uint8_t *out
    int64_t cap, pos, lit_hdr, lit_n


cdef inline bint rle_put(RleWriter *wr, uint32_t px, int64_t n) noexcept nogil:
    """Append a maximal run of n equal pixels; False when out is full."""
    cdef int64_t j
    if n >= MIN_RUN_IN_LITERAL or (n == 2 and wr.lit_hdr < 0):
        if wr.lit_hdr >= 0:
            put_le32(wr.out + wr.lit_hdr, LITERAL | <uint32_t>wr.lit_n)
            wr.lit_hdr = -1
        if wr.pos + 8 > wr.cap:
            return False
        put_le32(wr.out + wr.pos, <uint32_t>n)
        ff_store32(wr.out + wr.pos + 4, px)
        wr.pos += 8
        return True
    if wr.lit_hdr < 0:
        if wr.pos + 4 > wr.cap:
            return False
        wr.lit_hdr = wr.pos
        wr.lit_n = 0
        wr.pos += 4
    if wr.pos + 4 * n > wr.cap:
        return False
    for j in range(n):
        ff_store32(wr.out + wr.pos, px)
        wr.pos += 4
    wr.lit_n += n
    return True


def rle_encode(const uint8_t[:, :, ::1] img not None, int x, int y, int w, int h,
               uint8_t[::1] out not None):
    """Run-length encode a rectangle into out. Returns the number of bytes written, or -1
    as soon as the encoding would not fit in out: callers pass a buffer as large as they
    are willing to spend, so a rectangle that RLE does not suit is given up early.
    Runs above 2**31 - 1 pixels are split."""
    check_rect(img, x, y, w, h)
    cdef RleWriter wr
    wr.out = &out[0] if out.shape[0] > 0 else NULL
    wr.cap = out.shape[0]
    wr.pos = 0
    wr.lit_hdr = -1
    wr.lit_n = 0
    cdef int64_t r, c, run_n = 0
    cdef uint32_t p, run_px = 0
    cdef const uint8_t *row
    cdef bint ok = True
    with nogil:
        for r in range(h):
            row = &img[y + r, x, 0]
            for c in range(w):
                p = ff_load32(row + 4 * c)
                if run_n > 0 and p == run_px and run_n < 0x7fffffff:
                    run_n += 1
                    continue
                if run_n > 0 and not rle_put(&wr, run_px, run_n):
                    ok = False
                    break
                run_px = p
                run_n = 1
            if not ok:
                break
        if ok:
            ok = rle_put(&wr, run_px, run_n)
        if ok and wr.lit_hdr >= 0:
            put_le32(wr.out + wr.lit_hdr, LITERAL | <uint32_t>wr.lit_n)
    return wr.pos if ok else -1


def rle_valid(const uint8_t[::1] data not None, int64_t npix):
    """True when data is a well-formed RLE payload of exactly npix pixels."""
    cdef int64_t pos = 0, size = data.shape[0], done = 0, n
    cdef uint32_t hdr
    if size % 4 != 0:
        return False
    while pos < size:
        hdr = get_le32(&data[pos])
        pos += 4
        if hdr & LITERAL:
            n = hdr & ~LITERAL
            if n == 0 or pos + 4 * n > size:
                return False
            pos += 4 * n
        else:
            n = hdr
            if n == 0 or pos + 4 > size:
                return False
            pos += 4
        done += n
        if done > npix:
            return False
    return done == npix


def rle_decode(const uint8_t[::1] data not None, uint8_t[:, :, ::1] img not None,
               int x, int y, int w, int h):
    """Decode an RLE payload straight into the rectangle of img."""
    check_rect(img, x, y, w, h)
    if not rle_valid(data, <int64_t>w * h):
        raise ValueError("malformed RLE payload for this rectangle")
    cdef int64_t pos = 0, size = data.shape[0], row = 0, col = 0, n, k, i
    cdef uint32_t hdr, px
    cdef bint literal
    cdef uint8_t *dst
    with nogil:
        while pos < size:
            hdr = get_le32(&data[pos])
            pos += 4
            literal = (hdr & LITERAL) != 0
            n = hdr & ~LITERAL
            if not literal:
                px = ff_load32(&data[pos])
                pos += 4
            while n > 0:
                k = w - col
                if k > n:
                    k = n
                dst = &img[y + row, x + col, 0]
                if literal:
                    memcpy(dst, &data[pos], k * 4)
                    pos += k * 4
                else:
                    for i in range(k):
                        ff_store32(dst + i * 4, px)
                n -= k
                col += k
                if col == w:
                    col = 0
                    row += 1
