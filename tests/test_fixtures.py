"""The golden packets in tests/fixtures/ (made by tests/make_fixtures.py): they decode to
the committed images byte for byte, and the encoder still produces them, so any change of
the wire format or the encoder's choices shows up here."""

import json
import pathlib
import struct

import numpy as np
import pytest

import make_fixtures
from fastfig import Encoding, FrameDecoder
from fastfig.codec import deflate, encoder, png
from fastfig.codec.packet import parse

FIXTURES = pathlib.Path(__file__).with_name("fixtures")
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
NAMES = [p["name"] for p in MANIFEST["packets"]]


def packet(name):
    return (FIXTURES / f"{name}.bin").read_bytes()


def image(name):
    return np.load(FIXTURES / f"{name}.npy")


def test_the_fixture_set_is_complete_and_small():
    files = {p.name for p in FIXTURES.iterdir()}
    assert files == {"manifest.json"} | {f"{n}.{ext}" for n in NAMES for ext in ("bin", "npy")}
    assert sum(p.stat().st_size for p in FIXTURES.iterdir()) < 100_000


def test_the_fixtures_exercise_the_format():
    frames = [parse(packet(n)) for n in NAMES]
    assert {e for f in frames for e in f.encodings()} == {"fill", "rle", "png", "raw"}
    assert frames[0].keyframe and any(f.empty for f in frames)
    assert any(len(f.rects) > 1 for f in frames)
    sizes = {(f.width, f.height) for f in frames}
    assert len(sizes) == 2 and len({f.epoch for f in frames}) == 2
    alphas = np.concatenate([image(n)[..., 3].ravel() for n in NAMES])
    assert (alphas == 0).any() and ((alphas > 0) & (alphas < 255)).any()
    for f, entry in zip(frames, MANIFEST["packets"]):
        assert f.encodings() == entry["encodings"] and f.keyframe == entry["keyframe"]
        assert f.timestamp_us == MANIFEST["timestamp_us"]


def test_the_fixtures_decode_in_order_to_the_committed_images():
    dec = FrameDecoder()
    for name in NAMES:
        out = dec.decode(packet(name))
        expected = image(name)
        assert out.shape == expected.shape and out.tobytes() == expected.tobytes(), name


def test_the_snapshot_fixture_decodes_alone():
    assert FrameDecoder().decode(packet(NAMES[-1])).tobytes() == image(NAMES[-1]).tobytes()


def reencoded(monkeypatch):
    monkeypatch.setattr(encoder, "_now_us", lambda: MANIFEST["timestamp_us"])
    # The inputs are the committed images: the snapshot is an action, not a frame.
    frames = [(name, image(name)) for name in NAMES if name != "09_snapshot"]
    return dict((name, bytes(frame)) for name, frame in make_fixtures.encode_stream(frames))


def canonical(data):
    """A packet's header and rectangles, with each PNG payload replaced by its chunk
    types, header and inflated scanlines: what stays the same whichever deflate library
    compressed it."""
    frame = parse(data)
    rects = []
    for r in frame.rects:
        payload = bytes(r.payload)
        if r.encoding == Encoding.PNG:
            kinds, pos = [], 8
            while pos < len(payload):
                (n,) = struct.unpack_from(">I", payload, pos)
                kinds.append(payload[pos + 4:pos + 8])
                pos += 12 + n
            scanlines, reason = png.read_filtered(payload, r.w, r.h)
            assert reason is None
            payload = (tuple(kinds), payload[8:33], bytes(scanlines))
        rects.append((r.x, r.y, r.w, r.h, r.encoding, payload))
    return data[:40], rects


def test_the_encoder_still_makes_the_same_frames(monkeypatch):
    new = reencoded(monkeypatch)
    assert list(new) == NAMES
    for name in NAMES:
        assert canonical(new[name]) == canonical(packet(name)), name


def test_the_encoder_still_makes_the_same_bytes(monkeypatch):
    made_with = MANIFEST["deflate"]
    if (deflate.BACKEND, make_fixtures._deflate_version()) != (made_with["backend"],
                                                               made_with["version"]):
        pytest.skip(f"PNG payloads were deflated by {made_with}; here by {deflate.BACKEND}")
    new = reencoded(monkeypatch)
    for name in NAMES:
        assert new[name] == packet(name), name


def test_the_generator_still_makes_the_committed_images():
    for (name, _, img), committed in zip(make_fixtures.images(), NAMES):
        assert name == committed and img.tobytes() == image(name).tobytes()
