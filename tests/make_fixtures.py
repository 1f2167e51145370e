"""Generate the golden frame packets in tests/fixtures/. Regenerate with

    python tests/make_fixtures.py

from the repository root, and only when the wire format changes on purpose (then
PROTOCOL.md's version changes with it): tests/test_fixtures.py fails whenever the encoder
stops producing these exact bytes.

The stream is one FrameEncoder fed small synthetic images (37x23, then 29x31), chosen so
that its packets exercise every encoding: a PNG keyframe, then deltas carried by FILL, RLE,
PNG and RAW, transparent pixels (alpha 0 with arbitrary colour, and partial alpha), two
rectangles in one frame, an unchanged frame, a size change (keyframe, new epoch), a delta
after it and a snapshot; then (version 1.1) two more deltas whose damage overlaps and a
catch-up delta from the snapshot's image over both. For each packet NAME there is NAME.bin
(the packet) and NAME.npy (the image after it, which is also the encoder's input).
manifest.json lists them in stream order with the encodings each uses, for a catch-up
delta the packet whose image it applies to ("base"; every other packet applies to the
image of the one before it), and the deflate library that made the PNG payloads.

Images are arithmetic patterns, not random draws, so they do not depend on numpy's
generators; the test re-encodes from the committed .npy files anyway.
"""

import json
import pathlib
import sys

import numpy as np

FIXTURES = pathlib.Path(__file__).with_name("fixtures")

#: Every frame's timestamp, in place of the clock (fastfig.codec.encoder._now_us).
TIMESTAMP_US = 1_700_000_000_123_456

#: FrameEncoder settings of the stream, all spelled out so that retuning the defaults
#: does not change the fixtures (only the format and the encoder's logic should).
SETTINGS = {"cell": 8, "rect_cost": 64, "level": 1, "png_filter": "adaptive",
            "keyframe_interval": 0, "epoch": 41}

WIDTH, HEIGHT = 37, 23


def pattern(w, h, a, b):
    """A deterministic image with plenty of variation (PNG compresses it, RLE cannot)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.int64)
    img = np.stack([x * a + y, y * b + 3 * x, (x * y) // 3 + a, 200 + (x + 2 * y) % 56], axis=-1)
    return (img % 256).astype(np.uint8)


def noise(w, h, seed):
    """Hash-like bytes that neither RLE nor deflate can shrink."""
    i = np.arange(w * h * 4, dtype=np.uint64) + np.uint64(seed * 1_000_003)
    v = (i * np.uint64(2654435761)) ^ (i >> np.uint64(3)) * np.uint64(40503)
    v ^= v >> np.uint64(13)
    return ((v * np.uint64(97)) >> np.uint64(7)).astype(np.uint8).reshape(h, w, 4)


def images():
    """(name, encodings the packet must use, image) of each encoded frame, in order."""
    img = pattern(WIDTH, HEIGHT, 5, 7)
    img[15:, 25:] = noise(12, 8, 1)
    img[15:, 25:, 3] = 0                      # fully transparent, colours kept
    img[0:3, :, 3] = (np.arange(WIDTH) * 7 % 256).astype(np.uint8)    # partial alpha
    yield "00_keyframe", {"png"}, img

    img = img.copy()
    img[2:8, 3:13] = (250, 128, 0, 255)
    yield "01_fill", {"fill"}, img

    img = img.copy()
    img[12:20, 2:32] = (0, 0, 0, 0)
    img[12:20:2, 2:32] = (30, 60, 90, 200)
    img[13, 10:12] = (1, 2, 3, 4)
    yield "02_rle", {"rle"}, img

    img = img.copy()
    img[3:23, 10:34] = pattern(24, 20, 9, 4)
    yield "03_png", {"png"}, img

    img = img.copy()
    img[0:5, 30:36] = noise(6, 5, 2)
    yield "04_raw", {"raw"}, img

    img = img.copy()
    img[0:4, 0:4] = (255, 255, 255, 0)       # same colour, now transparent
    img[20:23, 30:37, 3] = np.array([0, 1, 64, 128, 200, 254, 255], np.uint8)
    yield "05_transparent_two_rects", {"fill", "raw"}, img

    yield "06_unchanged", set(), img.copy()

    img = pattern(29, 31, 3, 11)
    img[::3, ::2, 3] = 0
    yield "07_resize_keyframe", {"png"}, img

    img = img.copy()
    img[10:14, 5:25] = (9, 8, 7, 6)
    img[30, 0] = (1, 1, 1, 1)
    yield "08_delta_after_resize", {"fill"}, img

    # (09_snapshot here: an action, not an image.) Two deltas painting overlapping boxes,
    # for the catch-up delta over both that follows them.
    img = img.copy()
    img[2:12, 3:20] = (40, 50, 60, 255)
    yield "10_delta", {"fill"}, img

    img = img.copy()
    img[6:16, 10:26] = (0, 0, 0, 0)
    img[6:16:3, 10:26] = (70, 80, 90, 100)
    yield "11_delta", {"rle"}, img


#: Packets that are actions on the encoder, not encodings of an image: the name of the
#: image packet each follows.
ACTIONS = {"09_snapshot": "08_delta_after_resize", "12_catch_up": "11_delta"}
#: The packet whose image a catch-up delta applies to.
BASES = {"12_catch_up": "09_snapshot"}


def encode_stream(frames):
    """The packets of the fixture stream for frames, a list of (name, image) in order,
    with the ACTIONS in their places: a list of (name, Frame). The caller makes the clock
    fixed."""
    from fastfig import FrameEncoder

    first = frames[0][1]
    enc = FrameEncoder(first.shape[1], first.shape[0], **SETTINGS)
    out = []
    seqs = {}
    for name, img in frames:
        out.append((name, enc.encode(img)))
        seqs[name] = enc.seq
        if ACTIONS.get("09_snapshot") == name:
            out.append(("09_snapshot", enc.snapshot()))
            seqs["09_snapshot"] = enc.seq
        if ACTIONS.get("12_catch_up") == name:
            out.append(("12_catch_up", enc.catch_up(seqs[BASES["12_catch_up"]])))
    return out


#: The golden recording (RECORDING.md), tests/fixtures/recording/golden.ffrec: the
#: packets above as a client applied them (it missed 10 and 11 and was sent the catch-up
#: from the snapshot's image), recorded with a checkpoint every 4 deltas (one after
#: 04_raw), state changes (the title at the start, a message before the resize), at
#: fixed times. expected.json lists its frames (each decodes to NAME.npy above).
RECORDING_DIR = FIXTURES / "recording"
RECORDING_FRAMES = ["00_keyframe", "01_fill", "02_rle", "03_png", "04_raw",
                    "05_transparent_two_rects", "06_unchanged", "07_resize_keyframe",
                    "08_delta_after_resize", "09_snapshot", "12_catch_up"]
RECORDING_STATES = {"00_keyframe": {"title": "golden"}, "07_resize_keyframe": {"message": "resized"}}
RECORDING_START = 1_700_000_000.25
#: Frame k's time: 40 ms apart, microseconds.
RECORDING_STEP_US = 40_000


def write_recording(path):
    """Write the golden recording to path from the packet and image fixtures (the test
    does the same and compares the bytes)."""
    from fastfig.recording.recorder import Recorder, metadata

    meta = metadata("golden", WIDTH, HEIGHT, title="golden", start=RECORDING_START,
                    fastfig="fixture", source="tests/make_fixtures.py")
    with Recorder(path, meta, checkpoint_frames=4, checkpoint_seconds=0,
                  clock=lambda: 0.0, background=False) as recorder:
        for k, name in enumerate(RECORDING_FRAMES):
            t = k * RECORDING_STEP_US / 1e6
            if name in RECORDING_STATES:
                recorder.state(RECORDING_STATES[name], t)
            recorder.frame((FIXTURES / f"{name}.bin").read_bytes(),
                           np.load(FIXTURES / f"{name}.npy"), t)
    return recorder


def make_recording():
    RECORDING_DIR.mkdir(exist_ok=True)
    recorder = write_recording(RECORDING_DIR / "golden.ffrec")
    expected = {"frames": RECORDING_FRAMES,
                "times_us": [k * RECORDING_STEP_US for k in range(len(RECORDING_FRAMES))],
                "checkpoints": recorder.checkpoints}
    (RECORDING_DIR / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def main():
    from fastfig.codec import deflate, encoder

    encoder._now_us = lambda: TIMESTAMP_US
    FIXTURES.mkdir(exist_ok=True)
    for old in [*FIXTURES.glob("*.bin"), *FIXTURES.glob("*.npy")]:
        old.unlink()
    frames = list(images())
    expected = {name: set(encs) for name, encs, _ in frames}
    result = {name: img for name, _, img in frames}
    result.update((action, result[after]) for action, after in ACTIONS.items())
    packets = encode_stream([(name, img) for name, _, img in frames])
    manifest = {"deflate": {"backend": deflate.BACKEND, "version": _deflate_version()},
                "timestamp_us": TIMESTAMP_US, "settings": SETTINGS, "packets": []}
    for name, frame in packets:
        encodings = set(frame.encodings())
        if name in expected and encodings != expected[name]:
            sys.exit(f"{name}: the encoder chose {sorted(encodings)}, the fixture is meant "
                     f"to exercise {sorted(expected[name])}; adjust its image")
        (FIXTURES / f"{name}.bin").write_bytes(bytes(frame))
        np.save(FIXTURES / f"{name}.npy", np.ascontiguousarray(result[name]))
        entry = {"name": name, "keyframe": frame.keyframe, "encodings": frame.encodings()}
        if name in BASES:
            entry["base"] = BASES[name]
        manifest["packets"].append(entry)
    (FIXTURES / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    total = sum(p.stat().st_size for p in FIXTURES.iterdir() if p.is_file())
    print(f"wrote {len(packets)} packets to {FIXTURES} ({total} bytes in all)")
    make_recording()
    print(f"wrote {RECORDING_DIR / 'golden.ffrec'}")


def _deflate_version():
    from fastfig.codec import deflate

    if deflate.BACKEND == "isal":
        import isal
        return isal.__version__
    import zlib
    return zlib.ZLIB_RUNTIME_VERSION


if __name__ == "__main__":
    main()
