"""Recordings (.ffrec, RECORDING.md): the golden file, a live stream recorded from a real
server while a live client watches, truncation and corruption at every byte, seeking,
and the export of recordings to video and of animations to recordings."""

import json
import os
import pathlib
import random
import shutil
import threading

import numpy as np
import pytest

import make_fixtures
from fastfig import Client, Server
from fastfig.codec.packet import peek
from fastfig.recording.format import (
    CHECKPOINT, FRAME, INDEX, RECORD, STATE, RecordingError, open_recording)
from transport_helpers import frame_index, make_frame, wait_for

FIXTURES = pathlib.Path(__file__).with_name("fixtures")
GOLDEN = FIXTURES / "recording" / "golden.ffrec"
EXPECTED = json.loads((FIXTURES / "recording" / "expected.json").read_text())


def expected_image(name):
    return np.load(FIXTURES / f"{name}.npy")


# -- the golden recording ----------------------------------------------------------------


def test_the_golden_recording_decodes_to_its_expected_frames():
    with open_recording(GOLDEN) as rec:
        assert rec.damage is None and len(rec) == len(EXPECTED["frames"])
        assert rec.meta["figure"] == "golden" and rec.meta["format"] == "1.0"
        assert (rec.meta["width"], rec.meta["height"]) == (make_fixtures.WIDTH,
                                                           make_fixtures.HEIGHT)
        assert list(rec.times * 1e6) == pytest.approx(EXPECTED["times_us"])
        frames = [(t, img.copy()) for t, img in rec]
        assert len(frames) == len(EXPECTED["frames"])
        for (t, img), name in zip(frames, EXPECTED["frames"]):
            assert img.tobytes() == expected_image(name).tobytes(), name
            # The frame records are the packets as they were applied, byte for byte.
        for i, name in enumerate(EXPECTED["frames"]):
            assert rec.packet(i) == (FIXTURES / f"{name}.bin").read_bytes()
        assert [s[2] for s in rec.states] == [{"title": "golden"}, {"message": "resized"}]
        assert [s[0] for s in rec.states] == [0, EXPECTED["frames"].index("07_resize_keyframe")]
        # Seeking: every frame alone, in a shuffled order, from a checkpoint or keyframe.
        order = list(range(len(rec)))
        random.Random(3).shuffle(order)
        for i in order:
            assert rec.image(i).tobytes() == frames[i][1].tobytes()
    assert open_recording(GOLDEN, verify=True).damage is None


def test_the_golden_recording_holds_a_checkpoint_that_stands_for_its_frame():
    kinds = [kind for kind, _offset, _payload in records(GOLDEN.read_bytes())]
    assert kinds.count(CHECKPOINT) == EXPECTED["checkpoints"] == 1
    assert kinds.count(FRAME) == len(EXPECTED["frames"]) and kinds[-1] == INDEX
    assert STATE in kinds
    with open_recording(GOLDEN) as rec:
        marks = dict(rec._marks)
        checkpoint_frame = next(f for f, o in rec._marks
                                if records_at(GOLDEN.read_bytes(), o) == CHECKPOINT)
        assert checkpoint_frame == 4 and 0 in marks
        # Seeking to frame 5 starts at the checkpoint of frame 4, not the keyframe 0.
        rec.image(5)
        assert rec._at == 5


def test_the_writer_reproduces_the_golden_recording_byte_for_byte(tmp_path):
    make_fixtures.write_recording(tmp_path / "again.ffrec")
    assert (tmp_path / "again.ffrec").read_bytes() == GOLDEN.read_bytes()


def records(data):
    """(kind, offset, payload length) of each record of a whole file."""
    out = []
    offset = 16
    end = len(data) - 16
    while offset < end:
        length, kind = RECORD.unpack_from(data, offset)[:2]
        out.append((kind, offset, length))
        offset += RECORD.size + length
    return out


def records_at(data, offset):
    return RECORD.unpack_from(data, offset)[1]


# -- truncation and corruption -----------------------------------------------------------


def places(data, stride=11):
    """Byte offsets to cut or flip at: every byte of the file header, of each record's
    header, at each payload's ends and of the trailer, and every stride-th byte between
    (every byte of the whole file took ~40 s on CI's 2 cores, for no more cases)."""
    out = set(range(0, 16)) | set(range(len(data) - 17, len(data) + 1))
    for _kind, offset, length in records(data):
        out |= set(range(offset - 1, offset + RECORD.size + 2))
        end = offset + RECORD.size + length
        out |= {end - 2, end - 1}
    out |= set(range(0, len(data), stride))
    return sorted(p for p in out if 0 <= p <= len(data))


def whole_frames_before(data, cut):
    return sum(1 for kind, offset, length in records(data)
               if kind == FRAME and offset + RECORD.size + length <= cut)


def test_a_recording_cut_anywhere_opens_and_plays_every_whole_frame(tmp_path):
    data = GOLDEN.read_bytes()
    expected = [expected_image(n).tobytes() for n in EXPECTED["frames"]]
    # A cut between records leaves every record whole: only the index is missing.
    boundaries = {offset for _kind, offset, _length in records(data)[1:]}
    path = tmp_path / "cut.ffrec"
    for cut in places(data):
        path.write_bytes(data[:cut])
        with open_recording(path) as rec:
            frames = [img.tobytes() for _, img in rec]      # never raises
            whole = whole_frames_before(data, cut)
            assert frames == expected[:whole], cut
            if cut == len(data):
                assert rec.damage is None
                continue
            damage = rec.damage
            assert damage is not None and damage.frames == whole, cut
            assert damage.kind == ("unclosed" if cut in boundaries else "truncated"), cut
            assert damage.offset <= cut
            message = str(damage)
            assert f"{whole} whole frame" in message and damage.kind in message
            if cut < 16:
                assert "header" in message
            with pytest.raises(RecordingError):
                list(rec.frames(strict=True))


def test_a_flipped_byte_is_caught_by_the_crc(tmp_path):
    data = bytearray(GOLDEN.read_bytes())
    expected = [expected_image(n).tobytes() for n in EXPECTED["frames"]]
    path = tmp_path / "flipped.ffrec"
    trailer = len(data) - 16
    for at in places(data)[:-1]:
        data[at] ^= 0x10
        path.write_bytes(data)
        data[at] ^= 0x10
        if at < 8 or 8 <= at < 10:           # the magic or the major version
            with pytest.raises(RecordingError):
                open_recording(path)
            continue
        for verify in (False, True):
            with open_recording(path, verify=verify) as rec:
                frames = [img.tobytes() for _, img in rec]
                assert frames == expected[:len(frames)], at
                if at < 12 or at >= trailer:
                    # The minor version; the trailer (it only points at the index, whose
                    # own CRC holds, or the file is scanned): the data is whole.
                    assert frames == expected and rec.damage is None, at
                    continue
                if verify:
                    assert rec.damage is not None and rec.damage.kind in (
                        "corrupt", "truncated"), at
                    assert len(frames) == rec.damage.frames, at
                elif len(frames) < len(expected):
                    assert rec.damage is not None, at


def test_a_recording_without_its_index_is_scanned_and_said_unclosed(tmp_path):
    data = GOLDEN.read_bytes()
    index_at = records(data)[-1][1]
    (tmp_path / "open.ffrec").write_bytes(data[:index_at])
    with open_recording(tmp_path / "open.ffrec") as rec:
        assert len(rec) == len(EXPECTED["frames"]) and rec.damage.kind == "unclosed"
        assert "not closed" in str(rec.damage)
        assert rec.image(len(rec) - 1).tobytes() == expected_image("12_catch_up").tobytes()


def test_not_a_recording(tmp_path):
    (tmp_path / "x.ffrec").write_bytes(b"hello world, not a recording")
    with pytest.raises(RecordingError, match="not a fastfig recording"):
        open_recording(tmp_path / "x.ffrec")


# -- recording a live stream ---------------------------------------------------------------


class Watcher(threading.Thread):
    """A live default Client iterating its frames in a thread, keeping each image by
    (epoch, seq), until it has seen frame ``last`` (pixel (0, 0) names it)."""

    def __init__(self, address, last, record=None, **options):
        super().__init__(daemon=True)
        self.client = Client(address, **options)
        self.recorder = self.client.record(record) if record else None
        self.last = last
        self.seen = {}
        self.done = threading.Event()
        self.start()

    def run(self):
        try:
            for f in self.client.frames(timeout=20):
                self.seen[(f.epoch, f.seq)] = f.image.copy()
                if frame_index(f.image) >= self.last and f.width == SIZES[-1][0]:
                    break
        finally:
            self.client.close()       # closes the recorder: its index is written
            self.done.set()


SIZES = [(160, 120), (200, 100)]
FRAMES = 160


def publish_known_frames(stream):
    """FRAMES known images, the last 40 at another size (a resize: keyframe, new epoch),
    each published once the stream's consumers want one; returns them by index."""
    images = {}
    wanted = threading.Event()
    stream.on_demand(wanted.set)
    for i in range(FRAMES):
        w, h = SIZES[0] if i < FRAMES - 40 else SIZES[1]
        images[i] = make_frame(i, w, h)
        stream.publish(images[i])
        wanted.wait(0.05)            # a slow consumer skips frames: that is fine too
        wanted.clear()
    return images


def test_a_live_stream_records_exactly_the_frames_the_live_clients_decoded(tmp_path):
    path = tmp_path / "live.ffrec"
    with Server.run_in_thread() as server:
        stream = server.add_figure("live", *SIZES[0], title="Live")
        stream.publish(make_frame(0, *SIZES[0]))
        recorder_client = Watcher(server.address, FRAMES - 1, record=path)
        live = Watcher(server.address, FRAMES - 1)
        wait_for(lambda: recorder_client.seen and live.seen)
        recorder = recorder_client.recorder
        recorder.checkpoint_frames = 16        # several checkpoints in a short run
        images = publish_known_frames(stream)
        assert recorder_client.done.wait(30) and live.done.wait(30)
    assert recorder.closed
    with open_recording(path) as rec:
        assert rec.damage is None and rec.meta["figure"] == "live"
        assert rec.meta["title"] == "Live" and rec.meta["source"].startswith("tcp://")
        assert len(rec) >= 40
        heads = [peek(rec.packet(i)) for i in range(len(rec))]
        assert heads[0].keyframe
        decoded = [img.copy() for _, img in rec]
        assert len(decoded) == len(rec)
        # Every recorded frame is a published image, in publishing order.
        indexes = [frame_index(img) for img in decoded]
        assert indexes == sorted(indexes) and indexes[-1] == FRAMES - 1
        for img, k in zip(decoded, indexes):
            assert img.tobytes() == images.get(k, make_frame(0, *SIZES[0])).tobytes()
        # The recording client's own images, and the other live client's, are the
        # recorded ones byte for byte.
        by_seq = {(h.epoch, h.seq): img for h, img in zip(heads, decoded)}
        for seen in (recorder_client.seen, live.seen):
            common = [key for key in seen if key in by_seq]
            assert len(common) >= min(len(seen), 20)
            for key in common:
                assert seen[key].tobytes() == by_seq[key].tobytes()
        assert len({(img.shape[1], img.shape[0]) for img in decoded}) == 2
        assert recorder.checkpoints >= 2
        # Seeking: random frames equal the sequential decode.
        for i in random.Random(1).sample(range(len(rec)), min(30, len(rec))):
            assert rec.image(i).tobytes() == decoded[i].tobytes()


def test_recording_a_client_that_already_holds_an_image_starts_with_a_keyframe(tmp_path):
    with Server.run_in_thread() as server:
        stream = server.add_figure("1", 64, 48)
        stream.publish(make_frame(0, 64, 48))
        with Client(server.address) as client:
            assert client.next_frame(5) is not None
            stream.publish(make_frame(1, 64, 48))
            assert client.next_frame(5) is not None
            with client.record(tmp_path / "mid.ffrec") as recorder:
                # It asked for a keyframe: the image held, whole.
                wait_for(lambda: (client.next_frame(0.1), recorder.frames >= 1)[1])
                stream.publish(make_frame(2, 64, 48))
                wait_for(lambda: (client.next_frame(0.1), recorder.frames >= 2)[1])
            stream.publish(make_frame(3, 64, 48))    # after the recorder closed
            client.next_frame(1)
    with open_recording(tmp_path / "mid.ffrec") as rec:
        assert rec.damage is None and peek(rec.packet(0)).keyframe
        assert [frame_index(img) for _, img in rec][-1] == 2
        assert rec.image(0).tobytes() == make_frame(1, 64, 48).tobytes()


def test_a_closed_figure_is_recorded_and_ends_the_recording(tmp_path):
    with Server.run_in_thread() as server:
        stream = server.add_figure("1", 32, 32)
        stream.publish(make_frame(0, 32, 32))
        client = Client(server.address)
        recorder = client.record(tmp_path / "closed.ffrec")
        assert client.next_frame(5) is not None
        stream.close()
        wait_for(lambda: (client.next_frame(0.05), client.closed)[1])
        client.close()
    assert recorder.closed
    with open_recording(tmp_path / "closed.ffrec") as rec:
        assert rec.figure_closed and rec.damage is None and len(rec) == 1


# -- export ---------------------------------------------------------------------------


def test_a_recording_exports_to_mp4_with_every_frame(tmp_path):
    av = pytest.importorskip("av")
    import fastfig
    from fastfig.export.recording import recording_fps
    src = tmp_path / "live.ffrec"
    shutil.copy(GOLDEN, src)
    # The golden changes size at frame 7: a video keeps the first size.
    result = fastfig.export(str(src), tmp_path / "out.mp4", quiet=True)
    assert result.frames == len(EXPECTED["frames"]) and result.fps == pytest.approx(25)
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        assert len(decoded) == len(EXPECTED["frames"])
        assert stream.average_rate == 25
    assert recording_fps([0, 0.1, 0.2]) == pytest.approx(10)


def test_an_animation_exports_to_a_recording_of_its_exact_frames(tmp_path):
    pytest.importorskip("av")
    import fastfig
    from fastfig.export.render import FrameRenderer
    from test_export import load, write_script
    script = write_script(tmp_path / "anim.py", w=320, h=200, frames=14)
    result = fastfig.export(str(script), tmp_path / "anim.ffrec", quiet=True)
    assert result.frames == 14 and result.fps == 25
    ref = load(script)["anim"]
    renderer = FrameRenderer(ref)
    try:
        expected = [rgba.tobytes() for _, rgba in renderer.frames(0, 14)]
    finally:
        renderer.close()
    with open_recording(tmp_path / "anim.ffrec") as rec:
        assert rec.damage is None and len(rec) == 14
        assert rec.meta["title"] == "anim.py" and rec.meta["fps"] == 25
        assert list(rec.times) == pytest.approx([i / 25 for i in range(14)])
        assert [img.tobytes() for _, img in rec] == expected
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".part")]


def test_fastfig_export_of_a_recording_on_the_command_line(tmp_path):
    av = pytest.importorskip("av")
    import subprocess
    import sys

    def export(*args):
        return subprocess.run([sys.executable, "-c", "import sys; from fastfig.cli import "
                               "main; sys.exit(main())", "export", *args, "--quiet"],
                              capture_output=True, text=True, timeout=60)
    done = export(str(GOLDEN), str(tmp_path / "out.webm"), "--fps", "5")
    assert done.returncode == 0, done.stderr
    with av.open(str(tmp_path / "out.webm")) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(EXPECTED["frames"])
    refused = export(str(GOLDEN), str(tmp_path / "again.ffrec"))
    assert refused.returncode == 2 and "is a recording already" in refused.stderr
    (tmp_path / "bad.ffrec").write_bytes(b"nothing")
    refused = export(str(tmp_path / "bad.ffrec"), str(tmp_path / "out.mp4"))
    assert refused.returncode == 2 and "not a fastfig recording" in refused.stderr
