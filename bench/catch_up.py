"""What a consumer that fell behind costs: a catch-up delta (FrameEncoder.catch_up) from
the image it holds, against the keyframe (snapshot) it would get otherwise, of the same
image in the same run.

    python -m bench.catch_up line1 1920x1080 --behind 2 8 30

The scenario's frames are rendered first (never timed) and encoded in order; at the
last frame, for each distance d, catch_up(seq - d) and snapshot() are each timed
--repeat times, interleaved (the machine is shared and noisy, so the ratio of two
measurements taken side by side is what to read, not either time alone). Every catch-up
packet is applied to a decoder holding the image d frames back, and must give the
current image byte for byte.
"""

import argparse
import statistics
import time

from fastfig import Encoding, Frame, FrameDecoder, FrameEncoder, Rect

from . import sequences


def held(image, seq, epoch):
    h, w = image.shape[:2]
    dec = FrameDecoder()
    dec.decode(bytes(Frame(seq, epoch, True, w, h,
                           (Rect(0, 0, w, h, Encoding.RAW, image.tobytes()),))))
    return dec


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - start) * 1000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", nargs="?", default="line1", choices=sequences.SCENARIOS)
    parser.add_argument("size", nargs="?", default="1920x1080")
    parser.add_argument("--behind", type=int, nargs="+", default=[2, 8, 30])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    n = max(args.behind) + 2
    frames = sequences.render(args.scenario, args.size, n)
    h, w = frames[0].shape[:2]
    enc = FrameEncoder(w, h)
    images = {}
    deltas = {}
    for img in frames:
        frame = enc.encode(img)
        images[frame.seq] = enc.image.copy()
        deltas[frame.seq] = frame.nbytes
    print(f"{args.scenario} {w}x{h}: catch-up delta vs keyframe of the same image "
          f"(median of {args.repeat}, interleaved)")
    print(f"{'behind':>6} {'catch-up B':>11} {'keyframe B':>11} {'bytes':>6} "
          f"{'sum of deltas B':>15} {'catch-up ms':>11} {'keyframe ms':>11} {'time':>6} rects")
    for d in args.behind:
        base = enc.seq - d
        up_ms, key_ms = [], []
        for _ in range(args.repeat):
            catch_up, ms = timed(lambda: enc.catch_up(base))
            up_ms.append(ms)
            keyframe, ms = timed(enc.snapshot)
            key_ms.append(ms)
        packet = bytes(catch_up)
        out = held(images[base], base, enc.epoch).decode(packet)
        assert out.tobytes() == enc.image.tobytes(), f"catch-up from {base} is wrong"
        missed = sum(deltas[s] for s in range(base + 1, enc.seq + 1))
        up, key = statistics.median(up_ms), statistics.median(key_ms)
        print(f"{d:>6} {len(packet):>11,} {keyframe.nbytes:>11,} "
              f"{len(packet) / keyframe.nbytes:>6.2f} {missed:>15,} {up:>11.2f} {key:>11.2f} "
              f"{up / key:>6.2f} {len(catch_up.rects)}")


if __name__ == "__main__":
    main()
