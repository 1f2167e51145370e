"""Where FrameEncoder's time goes, part by part, on a reference scenario.

    python -m bench.breakdown line1 1920x1080
    python -m bench.breakdown heavy 1920x1080 --set png_filter=up --set rect_cost=8192
    python -m bench.breakdown line4 1920x1080 --const RLE_MAX_RATIO=0.05 --keyframes

The encoder runs unmodified. For the instrumented pass the modules it calls (_encode,
png, deflate) are swapped, inside fastfig.codec.encoder and fastfig.codec.png only, for stand-ins
that time each call. "python" is the rest of encode() (policy, Rect and Frame objects,
slicing) plus the stand-ins' own overhead of about a microsecond a call: an
uninstrumented pass first gives the real total, and the difference is printed.
--set passes FrameEncoder keyword arguments; --const overrides encoder module constants
(RLE_MAX_RATIO, PNG_MIN_PIXELS) for this process only, to try policy changes without
editing the encoder.
"""

import argparse
import statistics
import sys
import time
from collections import Counter, defaultdict
from contextlib import contextmanager

import fastfig.codec.encoder as encoder_module
import fastfig.codec.png as png_module
from fastfig import FrameEncoder

from . import sequences

CLOCKS = {"perf_counter": time.perf_counter_ns, "thread_time": time.thread_time_ns}

#: (label, module holding the reference, attribute, function names to time).
PARTS = (
    ("damage", encoder_module, "_encode", ("damage",)),
    ("fill check", encoder_module, "_encode", ("solid_color",)),
    ("rle", encoder_module, "_encode", ("rle_encode",)),
    ("copy rects", encoder_module, "_encode", ("copy_rects",)),
    ("png filter", png_module, "_encode", ("png_filter",)),
    ("deflate", png_module, "deflate", ("compress",)),
    ("png total", encoder_module, "png", ("encode",)),
)


class _Timed:
    """Stands in for a module: the named functions add their time to totals[label]."""

    def __init__(self, module, wrapped):
        self._module = module
        for name, fn in wrapped.items():
            setattr(self, name, fn)

    def __getattr__(self, name):
        return getattr(self._module, name)


@contextmanager
def instrumented(clock):
    totals, calls, misses = defaultdict(int), Counter(), Counter()

    def timed(label, fn):
        def call(*args, **kwargs):
            t = clock()
            try:
                result = fn(*args, **kwargs)
            finally:
                totals[label] += clock() - t
                calls[label] += 1
            if label == "rle" and result < 0:
                misses[label] += 1         # given up past its budget
            return result
        return call

    wrappers = defaultdict(dict)
    for label, holder, attr, names in PARTS:
        for name in names:
            wrappers[holder, attr][name] = timed(label, getattr(getattr(holder, attr), name))
    saved = {}
    for (holder, attr), fns in wrappers.items():
        saved[holder, attr] = getattr(holder, attr)
        setattr(holder, attr, _Timed(saved[holder, attr], fns))
    def reset():
        for counter in (totals, calls, misses):
            counter.clear()

    try:
        yield totals, calls, misses, reset
    finally:
        for (holder, attr), module in saved.items():
            setattr(holder, attr, module)


@contextmanager
def constants(overrides):
    saved = {name: getattr(encoder_module, name) for name in overrides}
    for name, value in overrides.items():
        setattr(encoder_module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(encoder_module, name, value)


def _value(text):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _pairs(items):
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected NAME=VALUE, got {item!r}")
        out[key] = _value(value)
    return out


def run(frames, rounds, kwargs, keyframes, clock, started=None):
    """Encode rounds frames of the walk; per-frame totals (ns) and the frames. started()
    is called once the first keyframe, which is not timed, has been sent."""
    h, w = frames[0].shape[:2]
    enc = FrameEncoder(w, h, **kwargs)
    enc.encode(frames[0])
    if started is not None:
        started()
    order = sequences.walk(len(frames))
    step = enc.keyframe if keyframes else enc.encode
    totals, out = [], []
    for _ in range(rounds):
        frame = frames[next(order)]
        t = clock()
        f = step(frame)
        totals.append(clock() - t)
        t = clock()
        packet = bytes(f)
        out.append((f, len(packet), clock() - t))
    return totals, out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.breakdown", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sequences.SCENARIOS)
    parser.add_argument("size", nargs="?", default="1920x1080")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--keyframes", action="store_true",
                        help="time keyframes of each frame instead of deltas")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="FrameEncoder keyword argument (cell, rect_cost, level, "
                             "png_filter, encoding)")
    parser.add_argument("--const", action="append", default=[], metavar="NAME=VALUE",
                        help="fastfig.codec.encoder constant (RLE_MAX_RATIO, PNG_MIN_PIXELS)")
    parser.add_argument("--timer", choices=sorted(CLOCKS), default="perf_counter",
                        help="perf_counter (default) costs ~0.06 us a read here, "
                             "thread_time ~0.7 us, which inflates the small parts")
    args = parser.parse_args(argv)

    kwargs, consts = _pairs(args.set), _pairs(args.const)
    for name in consts:
        if not hasattr(encoder_module, name):
            raise SystemExit(f"fastfig.codec.encoder has no constant {name}")
    clock = CLOCKS[args.timer]
    frames = sequences.render(args.scenario, args.size, args.frames)
    rounds = max(1, args.cycles) * sequences.cycle_length(len(frames))

    with constants(consts):
        bare, out = run(frames, rounds, kwargs, args.keyframes, clock)
        with instrumented(clock) as (parts, calls, misses, reset):
            timed, _ = run(frames, rounds, kwargs, args.keyframes, clock, reset)

    ms = lambda ns: ns / rounds / 1e6
    total = sum(timed)
    png_inner = parts["png filter"] + parts["deflate"]
    rows = [(label, parts[label], calls[label]) for label in
            ("damage", "fill check", "rle", "png filter", "deflate")]
    rows.append(("png framing (crc, join)", parts["png total"] - png_inner, calls["png total"]))
    rows.append(("copy rects", parts["copy rects"], calls["copy rects"]))
    kernels = sum(parts[k] for k in ("damage", "fill check", "rle", "png total", "copy rects"))
    rows.append(("python (policy, objects)", total - kernels, rounds))

    npix = frames[0].shape[0] * frames[0].shape[1]
    encodings = Counter()
    for f, _, _ in out:
        encodings.update(f.encodings())
    what = "keyframe" if args.keyframes else "delta"
    print(f"{args.scenario} {args.size}, {rounds} {what}s of {len(frames)} frames, "
          f"timer {args.timer}" + "".join(f", {k}={v}" for k, v in {**kwargs, **consts}.items()))
    print(f"encode median {statistics.median(bare) / 1e6:.3f} ms, mean "
          f"{ms(sum(bare)):.3f} ms (instrumented: mean {ms(total):.3f} ms, "
          f"{ms(total - sum(bare)):+.3f} ms of timing overhead and noise); "
          f"packing bytes(frame) mean {ms(sum(p for _, _, p in out)):.3f} ms")
    covered = statistics.fmean(sum(r.w * r.h for r in f.rects) / npix for f, _, _ in out)
    print(f"bytes/frame median {statistics.median(n for _, n, _ in out):,.0f}; rects/frame "
          f"{statistics.fmean(len(f.rects) for f, _, _ in out):.1f}; damage "
          f"{100 * covered:.1f}% of the frame; encodings/frame "
          + " ".join(f"{e} {n / rounds:.1f}" for e, n in encodings.most_common()))
    if calls["rle"]:
        print(f"rle attempts/frame {calls['rle'] / rounds:.1f}, given up "
              f"{misses['rle'] / rounds:.1f}")
    print()
    width = max(len(r[0]) for r in rows)
    print(f"{'part':<{width}}  ms/frame  % of encode  calls/frame")
    for label, ns, n in rows:
        print(f"{label:<{width}}  {ms(ns):8.3f}  {100 * ns / total:10.1f}%  {n / rounds:11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
