"""Hypothesis strategies shared by the test files: RGBA images and rectangles in them.

Pixel contents come from a numpy generator seeded by a drawn integer (drawing tens of
thousands of bytes one by one through hypothesis would be slow); the shape, the style of
content and the rectangles are drawn by hypothesis itself, so they shrink.
"""

import numpy as np
from hypothesis import strategies as st

#: Degenerate sizes (width, height) every kernel and codec path must handle: single
#: pixels, single rows and columns longer than any internal block of 4096.
ODD_SIZES = [(1, 1), (2, 1), (1, 2), (4097, 1), (1, 4097)]

#: Alpha values that matter: fully transparent (its RGB still has to survive), partial,
#: opaque.
ALPHAS = [0, 1, 128, 254, 255]

STYLES = ["noise", "palette", "runs", "solid", "gradient"]


def sizes(max_side=40):
    return st.one_of(st.sampled_from(ODD_SIZES),
                     st.tuples(st.integers(1, max_side), st.integers(1, max_side)))


def palette(rng, k):
    """k random RGBA colours whose alphas include 0 and partial values."""
    colors = rng.integers(0, 256, (k, 4), dtype=np.uint8)
    colors[:, 3] = rng.choice(ALPHAS, k)
    return colors


def make_pixels(style, w, h, seed):
    """An (h, w, 4) uint8 image in one of STYLES; deterministic in its arguments."""
    rng = np.random.default_rng(seed)
    if style == "noise":
        img = rng.integers(0, 256, (h, w, 4), dtype=np.uint8)
        # Some fully transparent pixels with arbitrary RGB.
        img[..., 3][rng.random((h, w)) < 0.2] = 0
        return img
    if style == "solid":
        return np.broadcast_to(palette(rng, 1)[0], (h, w, 4)).copy()
    if style == "gradient":
        y, x = np.mgrid[0:h, 0:w]
        a, b = rng.integers(1, 7, 2)
        img = np.stack([x * a, y * b, x + y, 255 - (x * b) % 256], axis=-1)
        return (img % 256).astype(np.uint8)
    colors = palette(rng, int(rng.integers(1, 5)))
    if style == "palette":
        return colors[rng.integers(0, len(colors), (h, w))]
    # "runs": raster-order runs of random lengths 1..6, crossing row ends.
    n = w * h
    lengths = rng.integers(1, 7, n)
    values = rng.integers(0, len(colors), n)
    idx = np.repeat(values, lengths)[:n]
    return colors[idx].reshape(h, w, 4)


@st.composite
def images(draw, size=None, max_side=40, styles=STYLES):
    """A C-contiguous (H, W, 4) uint8 image."""
    w, h = draw(sizes(max_side)) if size is None else size
    style = draw(st.sampled_from(styles))
    seed = draw(st.integers(0, 2**32 - 1))
    return make_pixels(style, w, h, seed)


@st.composite
def rects_in(draw, w, h):
    """A non-empty rectangle (x, y, w, h) inside a w x h image, often touching its
    edges or covering it all."""
    x = draw(st.integers(0, w - 1))
    y = draw(st.integers(0, h - 1))
    rw = draw(st.one_of(st.just(w - x), st.just(1), st.integers(1, w - x)))
    rh = draw(st.one_of(st.just(h - y), st.just(1), st.integers(1, h - y)))
    return x, y, rw, rh


@st.composite
def image_and_rect(draw, max_side=40, styles=STYLES):
    img = draw(images(max_side=max_side, styles=styles))
    return img, draw(rects_in(img.shape[1], img.shape[0]))
