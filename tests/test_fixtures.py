"""The golden packets in tests/fixtures/ (made by tests/make_fixtures.py): they decode to
the committed images byte for byte, and the encoder still produces them, so any change of
the wire format or the encoder's choices shows up here."""

import json
import pathlib
import struct

import numpy as np
import pytest

import make_fixtures
from fastfig import Encoding, FrameDecoder, FrameGap
from fastfig.codec import deflate, encoder, png
from fastfig.codec.packet import parse

FIXTURES = pathlib.Path(__file__).with_name("fixtures")
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
NAMES = [p["name"] for p in MANIFEST["packets"]]
#: Catch-up deltas (version 1.1): name -> the packet whose image each applies to.
BASES = {p["name"]: p["base"] for p in MANIFEST["packets"] if "base" in p}


def packet(name):
    return (FIXTURES / f"{name}.bin").read_bytes()


def image(name):
    return np.load(FIXTURES / f"{name}.npy")


def test_the_fixture_set_is_complete_and_small():
    # (The golden recording, RECORDING.md, lives in recording/: tests/test_recording.py.)
    files = {p.name for p in FIXTURES.iterdir() if p.is_file()}
    assert files == {"manifest.json"} | {f"{n}.{ext}" for n in NAMES for ext in ("bin", "npy")}
    assert sum(p.stat().st_size for p in FIXTURES.iterdir() if p.is_file()) < 100_000


def test_the_fixtures_exercise_the_format():
    frames = [parse(packet(n)) for n in NAMES]
    assert {e for f in frames for e in f.encodings()} == {"fill", "rle", "png", "raw"}
    assert frames[0].keyframe and any(f.empty for f in frames)
    assert BASES == make_fixtures.BASES
    assert [n for n, f in zip(NAMES, frames) if f.base_seq is not None] == list(BASES)
    for name, base in BASES.items():
        assert parse(packet(name)).base_seq == parse(packet(base)).seq
        assert parse(packet(name)).seq != parse(packet(base)).seq + 1     # a real catch-up
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
        if name in BASES:
            # Applies to its base's image: a decoder that followed the stream is past it.
            with pytest.raises(FrameGap):
                dec.decode(packet(name))
            continue
        out = dec.decode(packet(name))
        expected = image(name)
        assert out.shape == expected.shape and out.tobytes() == expected.tobytes(), name


def test_a_catch_up_fixture_applies_to_the_image_of_its_base():
    for name, base in BASES.items():
        dec = FrameDecoder()
        assert dec.decode(packet(base)).tobytes() == image(base).tobytes()
        assert dec.decode(packet(name)).tobytes() == image(name).tobytes()


def test_the_snapshot_fixture_decodes_alone():
    assert FrameDecoder().decode(packet("09_snapshot")).tobytes() == image("09_snapshot").tobytes()


def reencoded(monkeypatch):
    monkeypatch.setattr(encoder, "_now_us", lambda: MANIFEST["timestamp_us"])
    # The inputs are the committed images: the snapshot is an action, not a frame.
    frames = [(name, image(name)) for name in NAMES if name not in make_fixtures.ACTIONS]
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
    (header_size,) = struct.unpack_from("<H", data, 6)
    return data[:header_size], rects


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
    made = [n for n in NAMES if n not in make_fixtures.ACTIONS]
    for (name, _, img), committed in zip(make_fixtures.images(), made, strict=True):
        assert name == committed and img.tobytes() == image(name).tobytes()
