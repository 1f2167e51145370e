"""Per-frame cost and size: fastfig against matplotlib's WebAgg, on the same pre-rendered
frames.

Each timed round is one delta frame, the next one of the forward-and-back walk over the
sequence (sequences.walk), so the median is the median frame. What a round times:
- fastfig: FrameEncoder.encode(frame) (damage scan, per-rectangle encoding, update of its
  previous image) and packing the frame into its wire packet, bytes(frame);
- webagg: FigureCanvasWebAggCore.get_diff_image(), matplotlib's diff and Pillow PNG;
- pillow_full: Image.fromarray(frame).save(BytesIO(), "png"), WebAgg's codec on a whole
  frame (what it sends on a refresh, a resize or any transparency);
- fastfig_keyframe: FrameEncoder.keyframe(frame) and its packet, fastfig's whole frame.
Handing the next frame over (and for WebAgg marking it new, as draw() does) happens in
the untimed setup. The keyframe that starts a chain is sent before the rounds begin.
Bytes per frame are the packet (fastfig) or PNG (WebAgg) lengths of the timed rounds.
"""

import io
import statistics
from collections import Counter

from PIL import Image

from fastfig import FrameEncoder

from .sequences import walk
from .webagg import PrerenderedWebAggCanvas

WARMUP = 2


def _run(benchmark, sequence, codec, target, summarize, load=None):
    """Time target(frame) over sequence.rounds rounds, one frame of the walk each.

    summarize(output) -> (bytes, details) runs in the untimed setup of the next round, so
    nothing but the codec's own work is timed and outputs are not kept alive. Returns the
    summaries of the timed rounds."""
    frames = sequence.frames
    order = walk(len(frames))
    pending, summaries = [], []

    def setup():
        while pending:
            summaries.append(summarize(pending.pop()))
        frame = frames[next(order)]
        if load is not None:
            load(frame)
        return (frame,), {}

    benchmark.group = f"{sequence.scenario} {sequence.size}"
    benchmark.pedantic(lambda frame: pending.append(target(frame)), setup=setup,
                       rounds=sequence.rounds, warmup_rounds=WARMUP)
    while pending:
        summaries.append(summarize(pending.pop()))
    summaries = summaries[-sequence.rounds:]          # warm-up rounds come first
    sizes = [nbytes for nbytes, _ in summaries]
    benchmark.extra_info.update(sequence.info(codec))
    benchmark.extra_info.update(bytes_per_frame=statistics.median(sizes),
                                bytes_mean=statistics.fmean(sizes),
                                bytes_min=min(sizes), bytes_max=max(sizes))
    return [details for _, details in summaries]


def test_fastfig(benchmark, sequence):
    encoder = FrameEncoder(sequence.width, sequence.height)
    encoder.encode(sequence.frames[0])
    npix = sequence.width * sequence.height

    def encode(frame):
        f = encoder.encode(frame)
        return f, bytes(f)

    def summarize(out):
        f, packet = out
        assert not f.keyframe and f.rects
        return len(packet), (f.encodings(), len(f.rects),
                             sum(r.w * r.h for r in f.rects) / npix)

    details = _run(benchmark, sequence, "fastfig", encode, summarize)
    encodings = Counter()
    for counts, _, _ in details:
        encodings.update(counts)
    benchmark.extra_info.update(
        encodings=dict(encodings),
        rects_per_frame=statistics.fmean(n for _, n, _ in details),
        damage_fraction=statistics.fmean(a for _, _, a in details))


def test_webagg(benchmark, sequence):
    canvas = PrerenderedWebAggCanvas()
    canvas.load(sequence.frames[0])
    canvas.diff()                       # the first image is a full one

    details = _run(benchmark, sequence, "webagg", lambda frame: canvas.diff(),
                   lambda png: (len(png), canvas.image_mode), load=canvas.load)
    # Every timed frame took the diff path, not a forced full image.
    assert set(details) == {"diff"}


def _pillow_png(frame):
    with io.BytesIO() as buf:
        Image.fromarray(frame).save(buf, "png")
        return buf.getvalue()


def test_pillow_full(benchmark, sequence):
    _run(benchmark, sequence, "pillow_full", _pillow_png, lambda png: (len(png), None))


def test_fastfig_keyframe(benchmark, sequence):
    encoder = FrameEncoder(sequence.width, sequence.height)

    def keyframe(frame):
        f = encoder.keyframe(frame)
        return f, bytes(f)

    details = _run(benchmark, sequence, "fastfig_keyframe", keyframe,
                   lambda out: (len(out[1]), out[0].encodings()))
    encodings = Counter()
    for counts in details:
        encodings.update(counts)
    benchmark.extra_info["encodings"] = dict(encodings)
