"""FrameEncoder and FrameDecoder together: every frame a stream carries rebuilds the
encoder's input exactly, and the stream's bookkeeping (keyframes, epochs, sequence
numbers, gaps) is what a client relies on."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fastfig import Encoding, Frame, FrameDecoder, FrameEncoder, FrameError, FrameGap, Rect
from fastfig.codec import encoder as encoder_module
from fastfig.scenarios import make
from strategies import ALPHAS, make_pixels, rects_in, sizes

#: (encoding, accept) pairs a server may be configured with.
CONFIGS = [
    ("auto", None), ("png", None), ("rle", None), ("raw", None),
    ("auto", {"png", "fill"}), ("auto", {"rle"}), ("auto", {"raw"}), ("auto", {"png"}),
    ("auto", {"rle", "raw"}), ("auto", {"fill", "raw"}), ("auto", {"fill", "rle", "png"}),
    ("png", {"png"}), ("rle", {"rle", "fill"}),
]


def accepted(accept):
    return set(Encoding) if accept is None else {Encoding.parse(e) for e in accept}


# -- a random stream ------------------------------------------------------------------------

def repaint(img, rect, kind, rng):
    """Change the rectangle of img in place in one of several ways."""
    x, y, w, h = rect
    region = img[y:y + h, x:x + w]
    if kind == "transparent":
        # Fully transparent pixels whose RGB still differs: "unchanged" must not be
        # confused with alpha 0.
        region[...] = rng.integers(0, 256, region.shape, dtype=np.uint8)
        region[..., 3] = 0
    elif kind == "alpha":
        region[..., 3] = rng.choice(ALPHAS, region.shape[:2])
    elif kind == "pixel":
        region[rng.integers(0, h), rng.integers(0, w), rng.integers(0, 4)] ^= 0x80
    else:
        region[...] = make_pixels(kind, w, h, int(rng.integers(2**32)))


@st.composite
def streams(draw, max_side=70):
    """A list of (image, hint) steps: the frames of a stream and, for some, a hint that
    covers every change since the previous frame."""
    w, h = draw(sizes(max_side))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    img = make_pixels(draw(st.sampled_from(["noise", "palette", "runs", "solid"])), w, h,
                      int(rng.integers(2**32)))
    steps = [(img, None)]
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["change", "change", "change", "same", "resize",
                                       "hinted"]))
        if action == "resize":
            w, h = draw(sizes(max_side))
            img = make_pixels(draw(st.sampled_from(["noise", "runs", "gradient"])), w, h,
                              int(rng.integers(2**32)))
            steps.append((img, None))
            continue
        img = img.copy()
        changed = []
        if action != "same":
            for _ in range(draw(st.integers(1, 4))):
                rect = draw(rects_in(w, h))
                kind = draw(st.sampled_from(["transparent", "alpha", "pixel", "noise",
                                             "palette", "runs", "solid", "gradient"]))
                repaint(img, rect, kind, rng)
                changed.append(rect)
        hint = None
        if action == "hinted":
            # Boxes reaching past the frame are clipped by the encoder.
            hint = [(x - 1, y, rw + 2, rh + 5) for x, y, rw, rh in changed] or [(0, 0, 1, 1)]
        steps.append((img, hint))
    return steps


@pytest.mark.parametrize("encoding, accept", CONFIGS)
@given(steps=streams(), cell=st.sampled_from([8, 16, 64]),
       rect_cost=st.sampled_from([0, 64, 2048]),
       png_filter=st.sampled_from(["adaptive", "up", "sub", "none"]))
def test_every_frame_round_trips_exactly(encoding, accept, steps, cell, rect_cost,
                                         png_filter):
    first = steps[0][0]
    enc = FrameEncoder(first.shape[1], first.shape[0], encoding, accept=accept, cell=cell,
                       rect_cost=rect_cost, png_filter=png_filter)
    dec = FrameDecoder()
    allowed = accepted(accept)
    prev = prev_epoch = None
    for img, hint in steps:
        frame = enc.encode(img, hint=hint)
        packet = bytes(frame)
        assert len(packet) == frame.nbytes
        out = dec.decode(packet)
        assert out.shape == img.shape and out.tobytes() == img.tobytes()
        assert enc.image.tobytes() == img.tobytes()
        assert {r.encoding for r in frame.rects} <= allowed
        if encoding != "auto":
            assert {r.encoding for r in frame.rects} <= {Encoding.parse(encoding)}
        new_size = prev is None or prev.shape != img.shape
        assert frame.keyframe == new_size
        assert frame.empty == (not new_size and np.array_equal(prev, img))
        assert (frame.width, frame.height) == (img.shape[1], img.shape[0])
        assert (dec.seq, dec.epoch) == (frame.seq, frame.epoch) == (enc.seq, enc.epoch)
        if prev is not None:
            # A new size starts a new epoch; otherwise the epoch stays.
            assert frame.epoch == (prev_epoch + 1 if new_size else prev_epoch)
        prev, prev_epoch = img, frame.epoch


def test_keyframe_on_the_first_frame_and_on_a_size_change():
    enc = FrameEncoder(20, 10, epoch=7)
    a = make_pixels("noise", 20, 10, 1)
    f1 = enc.encode(a)
    assert f1.keyframe and f1.seq == 1 and f1.epoch == 7
    assert len(f1.rects) == 1 and (f1.rects[0].x, f1.rects[0].y, f1.rects[0].w,
                                   f1.rects[0].h) == (0, 0, 20, 10)
    b = a.copy()
    b[3, 4] = 0
    f2 = enc.encode(b)
    assert not f2.keyframe and (f2.seq, f2.epoch) == (2, 7)
    f3 = enc.encode(make_pixels("noise", 11, 13, 2))
    assert f3.keyframe and f3.epoch == 8 and (f3.width, f3.height) == (11, 13)
    assert (enc.width, enc.height) == (11, 13)
    dec = FrameDecoder()
    for f in (f1, f2, f3):
        dec.decode(bytes(f))
    assert dec.size == (11, 13) and dec.epoch == 8


def test_a_keyframe_replaces_the_whole_image():
    # Pixels a keyframe's rectangles leave out are transparent black, whatever was there.
    enc = FrameEncoder(6, 4)
    dec = FrameDecoder()
    dec.decode(bytes(enc.encode(make_pixels("noise", 6, 4, 3))))
    partial = Frame(seq=enc.seq + 1, epoch=enc.epoch, keyframe=True, width=6, height=4,
                    rects=(Rect(2, 1, 1, 1, Encoding.FILL, b"\x09\x09\x09\x09"),))
    img = np.zeros((4, 6, 4), np.uint8)
    img[1, 2] = 9
    assert dec.decode(bytes(partial)).tobytes() == img.tobytes()
    # Also when the keyframe changes the size.
    resized = Frame(seq=1, epoch=9, keyframe=True, width=3, height=2, rects=())
    assert dec.decode(bytes(resized)).tobytes() == bytes(3 * 2 * 4)


def test_hint_restricts_damage():
    enc = FrameEncoder(64, 48, cell=8)
    dec = FrameDecoder()
    a = make_pixels("palette", 64, 48, 4)
    dec.decode(bytes(enc.encode(a)))
    b = a.copy()
    b[5:9, 5:9] ^= 0xFF           # inside the hint
    b[40:44, 50:60] ^= 0xFF       # outside: the caller promised nothing changed there
    frame = enc.encode(b, hint=(0, 0, 16, 16))
    assert frame.rects
    for r in frame.rects:
        assert r.x + r.w <= 16 and r.y + r.h <= 16
    out = dec.decode(bytes(frame))
    expected = a.copy()
    expected[5:9, 5:9] = b[5:9, 5:9]
    assert out.tobytes() == expected.tobytes() == enc.image.tobytes()
    # Without a hint the rest arrives with the next frame.
    assert dec.decode(bytes(enc.encode(b))).tobytes() == b.tobytes()


def test_several_hint_boxes_and_boxes_outside_the_frame():
    enc = FrameEncoder(30, 20, cell=8)
    a = make_pixels("noise", 30, 20, 5)
    enc.encode(a)
    b = a.copy()
    b[0, 0] ^= 1
    b[19, 29] ^= 1
    frame = enc.encode(b, hint=[(-5, -5, 6, 6), (29, 19, 10, 10), (100, 100, 5, 5)])
    covered = {(x, y) for r in frame.rects for x in range(r.x, r.x + r.w)
               for y in range(r.y, r.y + r.h)}
    assert {(0, 0), (29, 19)} <= covered
    assert enc.image.tobytes() == b.tobytes()
    assert enc.encode(b, hint=[(100, 100, 5, 5)]).empty


def test_unchanged_frame_is_empty_with_the_current_seq():
    enc = FrameEncoder(9, 7)
    dec = FrameDecoder()
    a = make_pixels("noise", 9, 7, 6)
    dec.decode(bytes(enc.encode(a)))
    b = a.copy()
    b[2, 2, 3] ^= 1
    dec.decode(bytes(enc.encode(b)))
    empty = enc.encode(b.copy())
    assert empty.empty and not empty.keyframe
    assert empty.seq == enc.seq == 2 and empty.epoch == enc.epoch
    assert len(bytes(empty)) == 40
    before = dec.image.copy()
    for _ in range(2):                         # accepted, and again
        assert dec.decode(bytes(empty)).tobytes() == before.tobytes()
    assert dec.seq == 2
    c = b.copy()
    c[0, 0] ^= 1
    frame = enc.encode(c)
    assert frame.seq == 3
    assert dec.decode(bytes(frame)).tobytes() == c.tobytes()


def test_snapshot_lets_a_late_client_continue():
    enc = FrameEncoder(33, 17, cell=8)
    early = FrameDecoder()
    imgs = [make_pixels("runs", 33, 17, i) for i in range(4)]
    for img in imgs:
        early.decode(bytes(enc.encode(img)))
    seq, epoch = enc.seq, enc.epoch
    snap = enc.snapshot()
    assert snap.keyframe and snap.seq == seq and snap.epoch == epoch
    assert (enc.seq, enc.epoch) == (seq, epoch)          # no state changed
    late = FrameDecoder()
    assert late.decode(bytes(snap)).tobytes() == imgs[-1].tobytes()
    nxt = imgs[-1].copy()
    nxt[10:12, 3:30] = (1, 2, 3, 0)
    delta = enc.encode(nxt)
    assert not delta.keyframe and delta.seq == seq + 1
    for dec in (early, late):
        assert dec.decode(bytes(delta)).tobytes() == nxt.tobytes()


def test_snapshot_before_any_frame_is_an_error():
    with pytest.raises(RuntimeError):
        FrameEncoder(4, 4).snapshot()


def stream_of(n, w=12, h=8, **kwargs):
    """n frames of a stream in which every frame changes, and the images."""
    enc = FrameEncoder(w, h, **kwargs)
    imgs = [make_pixels("noise", w, h, i) for i in range(n)]
    return [enc.encode(img) for img in imgs], imgs


def assert_rejected(dec, packet, error=FrameGap):
    image, seq, epoch = dec.image.copy(), dec.seq, dec.epoch
    with pytest.raises(error) as info:
        dec.decode(packet)
    assert dec.image.tobytes() == image.tobytes()
    assert (dec.seq, dec.epoch) == (seq, epoch)
    return info.value


def test_frame_gap_on_a_skipped_seq():
    frames, imgs = stream_of(4)
    dec = FrameDecoder()
    dec.decode(bytes(frames[0]))
    dec.decode(bytes(frames[1]))
    gap = assert_rejected(dec, bytes(frames[3]))
    assert isinstance(gap, FrameError) and isinstance(gap, ValueError)
    assert (gap.expected_seq, gap.seq) == (3, 4)
    # Replaying an old delta is a gap too.
    assert_rejected(dec, bytes(frames[1]))
    dec.decode(bytes(frames[2]))
    assert dec.decode(bytes(frames[3])).tobytes() == imgs[3].tobytes()


def test_frame_gap_on_a_delta_before_any_keyframe():
    frames, _ = stream_of(2)
    dec = FrameDecoder()
    with pytest.raises(FrameGap):
        dec.decode(bytes(frames[1]))
    assert dec.image is None and dec.seq is None


def test_frame_gap_on_another_epoch():
    frames, _ = stream_of(2)
    other, _ = stream_of(2, epoch=5)
    dec = FrameDecoder()
    dec.decode(bytes(frames[0]))
    assert_rejected(dec, bytes(other[1]))
    # A keyframe of the other epoch is taken, then its deltas follow.
    dec.decode(bytes(other[0]))
    dec.decode(bytes(other[1]))
    assert dec.epoch == 5


def test_frame_gap_on_another_size():
    frames, _ = stream_of(2, w=12, h=8)
    other, _ = stream_of(2, w=12, h=9)
    dec = FrameDecoder()
    dec.decode(bytes(frames[0]))
    assert_rejected(dec, bytes(other[1]))
    # Not even a lenient decoder applies a delta of another size.
    lenient = FrameDecoder(strict=False)
    lenient.decode(bytes(frames[0]))
    assert_rejected(lenient, bytes(other[1]))


def test_lenient_decoder_applies_deltas_out_of_order():
    frames, imgs = stream_of(3)
    dec = FrameDecoder(strict=False)
    dec.decode(bytes(frames[0]))
    assert dec.decode(bytes(frames[2])).tobytes() == imgs[2].tobytes()
    assert dec.seq == 3


def test_keyframe_interval():
    frames, imgs = stream_of(8, keyframe_interval=3)
    assert [f.keyframe for f in frames] == [True, False, False] * 2 + [True, False]
    assert [f.seq for f in frames] == list(range(1, 9))
    assert len({f.epoch for f in frames}) == 1
    # A client joining at any keyframe follows from there.
    for start in (0, 3, 6):
        dec = FrameDecoder()
        for f, img in zip(frames[start:], imgs[start:]):
            assert dec.decode(bytes(f)).tobytes() == img.tobytes()


def test_keyframe_interval_one_makes_every_frame_a_keyframe():
    frames, _ = stream_of(3, keyframe_interval=1)
    assert all(f.keyframe for f in frames)


def test_explicit_keyframe_continues_the_sequence():
    enc = FrameEncoder(5, 5)
    a = make_pixels("noise", 5, 5, 1)
    enc.encode(a)
    k = enc.keyframe(a)
    assert k.keyframe and k.seq == 2 and k.epoch == 0
    b = a.copy()
    b[0, 0] ^= 1
    dec = FrameDecoder()
    dec.decode(bytes(k))
    assert dec.decode(bytes(enc.encode(b))).tobytes() == b.tobytes()


def encode_change(region, *, w=64, h=64, encoding="auto", accept=None):
    """The delta that paints region (an (rh, rw, 4) array) at (8, 8) of a zero image."""
    enc = FrameEncoder(w, h, encoding, accept=accept)
    dec = FrameDecoder()
    base = np.zeros((h, w, 4), np.uint8)
    dec.decode(bytes(enc.encode(base)))
    img = base.copy()
    img[8:8 + region.shape[0], 8:8 + region.shape[1]] = region
    frame = enc.encode(img)
    assert dec.decode(bytes(frame)).tobytes() == img.tobytes()
    return frame


def test_auto_encoding_choices():
    solid = np.full((20, 30, 4), (10, 20, 30, 40), np.uint8)
    assert encode_change(solid).encodings() == {"fill": 1}
    # Long runs: 8 bytes per 100-pixel row, 2 % of the raw size.
    stripes = np.zeros((20, 100, 4), np.uint8)
    stripes[::2] = (200, 0, 0, 255)
    assert encode_change(stripes, w=128).encodings() == {"rle": 1}
    assert encode_change(make_pixels("gradient", 40, 40, 1)).encodings() == {"png": 1}
    noise = make_pixels("noise", 30, 20, 1)
    assert encode_change(noise).encodings() == {"raw": 1}
    # Without raw, noise still goes somewhere the client reads.
    assert encode_change(noise, accept={"png", "fill"}).encodings() == {"png": 1}
    assert encode_change(noise, accept={"rle"}).encodings() == {"rle": 1}


@pytest.mark.parametrize("accept", [{"png", "fill"}, {"png"}, {"rle"}, {"raw"}, {"fill", "raw"}])
@pytest.mark.parametrize("size", [(1, 1), (2, 3), (15, 16), (16, 16)])
def test_small_rectangles_use_an_accepted_encoding(accept, size):
    # Below the size at which PNG is preferred, the encoder must still use what the
    # client accepts.
    region = make_pixels("noise", *size, 1)
    frame = encode_change(region, accept=accept)
    assert {r.encoding for r in frame.rects} <= accepted(accept)
    solid = np.full(size[::-1] + (4,), 3, np.uint8)
    frame = encode_change(solid, accept=accept)
    assert {r.encoding for r in frame.rects} <= accepted(accept)
    if Encoding.FILL in accepted(accept):
        assert frame.encodings() == {"fill": 1}


@pytest.mark.parametrize("encoding", ["png", "rle", "raw"])
def test_fixed_encoding_is_used_for_every_rectangle(encoding):
    solid = np.full((20, 30, 4), 5, np.uint8)
    assert encode_change(solid, encoding=encoding).encodings() == {encoding: 1}


def test_encoder_rejects_bad_settings():
    for kwargs in ({"encoding": "fill"}, {"encoding": "jpeg"},
                   {"encoding": "png", "accept": {"rle"}}, {"accept": {"fill"}},
                   {"accept": set()}, {"accept": {"gif"}}, {"cell": 4},
                   {"png_filter": "paeth"}):
        with pytest.raises(ValueError):
            FrameEncoder(8, 8, **kwargs)
    for w, h in ((0, 8), (8, 0), (32769, 1)):
        with pytest.raises(ValueError):
            FrameEncoder(w, h)


def test_encoder_reads_buffers_and_rejects_wrong_ones():
    img = make_pixels("noise", 7, 5, 1)
    for rgba in (img, memoryview(img), img.tobytes(), bytearray(img.tobytes()),
                 np.asfortranarray(img), img.reshape(-1)):
        enc = FrameEncoder(7, 5)
        assert FrameDecoder().decode(bytes(enc.encode(rgba))).tobytes() == img.tobytes()
    enc = FrameEncoder(7, 5)
    with pytest.raises(TypeError):
        enc.encode(img.astype(np.uint16))
    with pytest.raises(ValueError):
        enc.encode(img[..., :3])
    with pytest.raises(ValueError):
        enc.encode(img.tobytes()[:-4])
    with pytest.raises(ValueError):
        enc.encode(np.zeros((0, 5, 4), np.uint8))


def test_encoder_does_not_keep_a_reference_to_the_caller_buffer():
    enc = FrameEncoder(6, 6)
    img = make_pixels("noise", 6, 6, 1)
    enc.encode(img)
    kept = img.copy()
    img[...] = 0               # the canvas redraws into the same buffer
    assert enc.image.tobytes() == kept.tobytes()
    frame = enc.encode(img)
    assert FrameDecoder().decode(bytes(enc.snapshot())).tobytes() == img.tobytes()
    assert not frame.keyframe


# -- real figures ---------------------------------------------------------------------------

def round_trip_scenario(scenario, n, **kwargs):
    enc = FrameEncoder(scenario.width, scenario.height, **kwargs)
    dec = FrameDecoder()
    nbytes = []
    for i in range(n):
        scenario.step(i)
        scenario.canvas.draw()
        rgba = scenario.canvas.buffer_rgba()        # a memoryview, passed as it is
        frame = enc.encode(rgba)
        assert frame.keyframe == (i == 0)
        out = dec.decode(bytes(frame))
        assert out.tobytes() == bytes(rgba)
        nbytes.append(frame.nbytes)
    return nbytes


@pytest.mark.parametrize("name", ["line1", "line4", "heavy"])
def test_scenarios_round_trip(name):
    nbytes = round_trip_scenario(make(name, "640x480"), 6)
    assert all(n > 40 for n in nbytes[1:])       # every frame changes something


def test_line1_at_1080p_round_trips_and_deltas_are_small():
    nbytes = round_trip_scenario(make("line1", "1920x1080"), 5)
    # One of four subplots moves: the deltas carry a fraction of the keyframe.
    assert max(nbytes[1:]) < nbytes[0] / 2


@pytest.mark.parametrize("encoding", ["rle", "raw"])
def test_line4_round_trips_with_fixed_encodings(encoding):
    round_trip_scenario(make("line4", (320, 240)), 4, encoding=encoding)


def test_transparent_figure_round_trips():
    fig = Figure(figsize=(3.2, 2.4), dpi=100)
    canvas = FigureCanvasAgg(fig)
    fig.patch.set_alpha(0)
    ax = fig.add_subplot()
    ax.patch.set_alpha(0)
    x = np.linspace(0, 6, 200)
    (line,) = ax.plot(x, np.sin(x), lw=3, alpha=0.6)
    enc = FrameEncoder(320, 240)
    dec = FrameDecoder()
    for i in range(5):
        line.set_ydata(np.sin(x + 0.3 * i))
        canvas.draw()
        img = np.asarray(canvas.buffer_rgba())
        alpha = img[..., 3]
        assert (alpha == 0).any() and ((alpha > 0) & (alpha < 255)).any()
        assert dec.decode(bytes(enc.encode(img))).tobytes() == img.tobytes()


def test_now_us_is_the_timestamp(monkeypatch):
    monkeypatch.setattr(encoder_module, "_now_us", lambda: 123456789)
    frames, _ = stream_of(2)
    assert [f.timestamp_us for f in frames] == [123456789] * 2
    dec = FrameDecoder()
    dec.decode(bytes(frames[0]))
    assert dec.timestamp_us == 123456789


def test_png_max_ratio_sends_poorly_compressing_rectangles_raw():
    # A gradient PNG-compresses well; blurred noise only to about half: with
    # png_max_ratio=0.25 the first stays PNG and the second goes RAW, and both decode.
    gradient = make_pixels("gradient", 40, 40, 3)
    assert encode_change(gradient, w=64).encodings() == {"png": 1}
    rng = np.random.default_rng(5)
    half = (rng.integers(0, 16, (300, 300, 4)) * 8).astype(np.uint8)
    half[..., 3] = 255

    def change(**options):
        enc = FrameEncoder(320, 320, **options)
        dec = FrameDecoder()
        base = np.zeros((320, 320, 4), np.uint8)
        dec.decode(bytes(enc.encode(base)))
        img = base.copy()
        img[10:310, 10:310] = half
        frame = enc.encode(img)
        assert dec.decode(bytes(frame)).tobytes() == img.tobytes()
        return frame

    assert change().encodings() == {"png": 1}
    frame = change(png_max_ratio=0.25)
    assert frame.encodings() == {"raw": 1}


def test_png_probe_skips_the_deflate_of_rectangles_that_go_raw(monkeypatch):
    # Noise of 300x300 pixels is above PNG_PROBE_PIXELS: the probe deflates a sample and
    # the full PNG is never made.
    from fastfig.codec import png as png_module
    calls = []
    real = png_module.encode
    monkeypatch.setattr(png_module, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    noise = make_pixels("noise", 300, 300, 9)
    enc = FrameEncoder(300, 300, png_max_ratio=0.5)
    frame = enc.encode(noise)
    assert frame.encodings() == {"raw": 1}
    assert calls == []
    assert FrameDecoder().decode(bytes(frame)).tobytes() == noise.tobytes()


def probe_fooling_frames(n, h=256, w=300, seed=4):
    """Frames of noise (incompressible) except flat rows where the probe samples them
    (the four bands of h // 32 rows at the top, a third, two thirds and the bottom): the
    probe sees a flat sample, the whole deflates to far over a quarter of raw. Every
    pixel changes from one frame to the next, so each delta is one whole-frame rect."""
    rng = np.random.default_rng(seed)
    band = h // 32
    out = []
    for i in range(n):
        img = rng.integers(0, 256, (h, w, 4), np.uint8)
        for k in range(4):
            y = (h - band) * k // 3
            img[y:y + band] = (250 - i % 2, 250, 250, 255)
        out.append(img)
    return out


def test_a_region_whose_png_went_raw_is_not_deflated_again_for_a_while(monkeypatch):
    """The probe is fooled every frame, the PNG made and dropped for RAW: after one
    such frame the region goes RAW at once for PNG_RETRY_FRAMES frames, then a PNG is
    tried again (content may have changed). Every frame decodes exactly."""
    from fastfig.codec import png as png_module
    calls = []
    real = png_module.encode
    monkeypatch.setattr(png_module, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    retry = encoder_module.PNG_RETRY_FRAMES
    frames = probe_fooling_frames(retry + 3)
    enc = FrameEncoder(300, 256, png_max_ratio=0.25)
    dec = FrameDecoder()
    dec.decode(bytes(enc.keyframe(np.zeros((256, 300, 4), np.uint8))))
    attempts = []
    for img in frames:
        before = len(calls)
        frame = enc.encode(img)
        assert frame.encodings() == {"raw": 1}
        assert dec.decode(bytes(frame)).tobytes() == img.tobytes()
        attempts.append(len(calls) - before)
    assert attempts == [1] + [0] * retry + [1, 0]


def test_a_region_that_became_compressible_is_png_again_after_the_wait():
    retry = encoder_module.PNG_RETRY_FRAMES
    enc = FrameEncoder(300, 256, png_max_ratio=0.25)
    dec = FrameDecoder()
    dec.decode(bytes(enc.keyframe(np.zeros((256, 300, 4), np.uint8))))
    dec.decode(bytes(enc.encode(probe_fooling_frames(1)[0])))
    # A small random tile repeated: runs of one pixel (no RLE), a PNG of ~1 % of raw.
    tile = np.random.default_rng(2).integers(0, 250, (4, 7, 4), np.uint8)
    kinds = []
    for i in range(retry + 1):
        img = np.ascontiguousarray(np.tile(tile + i % 2, (64, 43, 1))[:256, :300])
        frame = enc.encode(img)
        assert dec.decode(bytes(frame)).tobytes() == img.tobytes()
        kinds.append(frame.encodings())
    assert kinds[-1] == {"png": 1} and {"raw": 1} in kinds[:-1]


def test_rle_max_ratio_prefers_rle_to_png():
    # Runs of 1..6 pixels: RLE is well over 3 % of raw (PNG wins by default) but under
    # half of it.
    runs = make_pixels("runs", 60, 40, 2)
    assert encode_change(runs, w=80, h=64).encodings() == {"png": 1}
    enc = FrameEncoder(80, 64, rle_max_ratio=0.5)
    dec = FrameDecoder()
    base = np.zeros((64, 80, 4), np.uint8)
    dec.decode(bytes(enc.encode(base)))
    img = base.copy()
    img[8:48, 8:68] = runs
    frame = enc.encode(img)
    assert frame.encodings() == {"rle": 1}
    assert dec.decode(bytes(frame)).tobytes() == img.tobytes()
