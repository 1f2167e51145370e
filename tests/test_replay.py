"""Replay of recordings through a real server (RECORDING.md section 5), the timeline
controls on a replay, and the `fastfig record` / `fastfig replay` commands."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from fastfig import Client, FrameEncoder, Server
from fastfig.recording.format import open_recording
from fastfig.recording.recorder import Recorder, metadata
from fastfig.recording.replay import Replay
from transport_helpers import frame_index, make_frame, wait_for

W, H = 96, 64


def make_recording(path, frames=30, step=0.05, checkpoint_frames=8, image=make_frame):
    """A recording of image(0..frames-1, W, H), step seconds apart."""
    enc = FrameEncoder(W, H)
    with Recorder(path, metadata("rec", W, H, title="Recorded"), clock=lambda: 0.0,
                  checkpoint_frames=checkpoint_frames) as recorder:
        for i in range(frames):
            recorder.frame(bytes(enc.encode(image(i, W, H))), enc.image, t=i * step)
    return path


def distinct(images):
    """The images in order without repeats (an unchanged image is not sent again)."""
    out = []
    for img in images:
        if not out or out[-1] != img:
            out.append(img)
    return out


def watch_to_the_end(replay, client):
    wait_for(lambda: (client.next_frame(0.05), replay.finished.is_set())[1], timeout=30)
    while client.next_frame(0.2) is not None:     # what was still on its way
        pass


def test_a_replay_gives_a_default_client_the_recorded_frames_byte_for_byte(tmp_path):
    src = make_recording(tmp_path / "src.ffrec")
    with Replay(src, viewer=False, speed=4) as replay:
        client = Client(replay.address)
        again = client.record(tmp_path / "again.ffrec")
        start = time.monotonic()
        watch_to_the_end(replay, client)
        elapsed = time.monotonic() - start
        assert client.state["title"] == "Recorded"
        assert client.timeline_state["length"] == 30
        assert client.timeline_state["playing"] is False
        client.close()
    assert again.closed
    with open_recording(src) as a, open_recording(tmp_path / "again.ffrec") as b:
        recorded = [img.tobytes() for _, img in a]
        replayed = [img.tobytes() for _, img in b]
        assert distinct(replayed) == distinct(recorded) and len(distinct(recorded)) == 30
        # Paced by the recorded times over the speed: 29 gaps of 50 ms / 4.
        assert elapsed >= 0.9 * a.duration / 4


def test_a_replay_of_the_golden_recording_resizes_as_it_did(tmp_path):
    """Transparent pixels, a catch-up delta, a resize (a new epoch) replayed exactly."""
    golden = os.path.join(os.path.dirname(__file__), "fixtures", "recording", "golden.ffrec")
    with Replay(golden, viewer=False, speed=20) as replay:
        client = Client(replay.address)
        again = client.record(tmp_path / "again.ffrec")
        watch_to_the_end(replay, client)
        assert client.state["title"] == "golden" and client.state["message"] == "resized"
        client.close()
    assert again.closed
    with open_recording(golden) as a, open_recording(tmp_path / "again.ffrec") as b:
        recorded = [img.tobytes() for _, img in a]
        replayed = [img.tobytes() for _, img in b]
        assert distinct(replayed) == distinct(recorded)
        assert len({img.shape for _, img in b.frames()}) == 2


def test_the_timeline_controls_work_on_a_replay(tmp_path):
    src = make_recording(tmp_path / "src.ffrec", frames=40)
    rec = open_recording(src)
    with Replay(src, viewer=False, play=False) as replay, Client(replay.address) as client:
        def shows(i):
            wait_for(lambda: (client.next_frame(0.05), client.image is not None
                              and client.image.tobytes() == rec.image(i).tobytes())[1])
            wait_for(lambda: (client.next_frame(0.02),
                              client.timeline_state["index"] == i)[1])
        shows(0)
        assert client.timeline_state["cached"] == [0, 39]
        assert client.timeline_state["interval"] == pytest.approx(50)
        client.timeline("seek", index=27)
        shows(27)
        client.timeline("step", delta=-5)
        shows(22)
        client.timeline("seek", index=10_000)          # past the end: the last frame
        shows(39)
        client.timeline("direction", direction=-1)
        client.timeline("speed", speed=20)
        client.timeline("play")
        wait_for(lambda: (client.next_frame(0.05), client.timeline_state["index"] < 30)[1])
        client.timeline("pause")
        wait_for(lambda: (client.next_frame(0.05),
                          client.timeline_state["playing"] is False)[1])
        i = client.timeline_state["index"]
        shows(i)
        assert frame_index(client.image) == i


def test_a_truncated_recording_replays_up_to_the_cut(tmp_path):
    src = make_recording(tmp_path / "src.ffrec")
    data = src.read_bytes()
    with open_recording(src) as whole:
        cut_at = int(whole._offsets[20]) + 30       # inside frame 20's record
    cut = tmp_path / "cut.ffrec"
    cut.write_bytes(data[:cut_at])
    with Replay(cut, viewer=False, speed=20) as replay, Client(replay.address) as client:
        assert len(replay.recording) == 20 and replay.recording.damage.kind == "truncated"
        seen = []
        wait_for(lambda: (seen.append(client.next_frame(0.05)),
                          replay.finished.is_set())[1], timeout=30)
        while (f := client.next_frame(0.2)) is not None:
            seen.append(f)
        assert frame_index(client.image) == 19
        assert client.image.tobytes() == make_frame(19, W, H).tobytes()


def test_a_replay_serves_the_browser_viewer(tmp_path):
    src = make_recording(tmp_path / "src.ffrec", frames=3)
    with Replay(src) as replay:
        with urllib.request.urlopen(replay.url, timeout=10) as page:
            assert page.status == 200 and b"<html" in page.read().lower()


# -- the command line ---------------------------------------------------------------------


def fastfig(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-c", "import sys; from fastfig.cli import "
                             "main; sys.exit(main())", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


class Publisher(threading.Thread):
    """A server publishing make_frame(i) every 10 ms until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.server = Server.run_in_thread()
        self.stream = self.server.add_figure("7", W, H, title="Published")
        self.stop = threading.Event()
        self.start()

    def run(self):
        i = 0
        while not self.stop.wait(0.01):
            self.stream.publish(make_frame(i, W, H))
            i += 1

    def close(self):
        self.stop.set()
        self.join()
        self.server.close()


def check_recorded(path):
    with open_recording(path) as rec:
        assert rec.damage is None and rec.meta["figure"] == "7" and len(rec) >= 3
        indexes = [frame_index(img) for _, img in rec]
        assert indexes == sorted(indexes)
        for i in (0, len(rec) - 1):
            assert rec.image(i).tobytes() == make_frame(indexes[i], W, H).tobytes()


def test_fastfig_record_for_a_duration(tmp_path):
    pub = Publisher()
    try:
        proc = fastfig("record", pub.server.address, str(tmp_path / "out.ffrec"),
                       "--figure", "7", "--duration", "1")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert "recording figure 7" in out and "frames" in out
    finally:
        pub.close()
    check_recorded(tmp_path / "out.ffrec")


def test_fastfig_record_ends_cleanly_on_ctrl_c(tmp_path):
    pub = Publisher()
    out_path = tmp_path / "out.ffrec"
    try:
        proc = fastfig("record", pub.server.address, str(out_path))
        assert "recording figure 7" in proc.stdout.readline()
        wait_for(lambda: out_path.exists() and out_path.stat().st_size > 4000)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in err, err
    finally:
        pub.close()
    check_recorded(out_path)


def test_fastfig_replay_serves_the_recording_until_ctrl_c(tmp_path):
    src = make_recording(tmp_path / "src.ffrec", frames=10, step=0.01)
    proc = fastfig("replay", str(src), "--speed", "2", "--loop")
    try:
        first = proc.stdout.readline()
        assert "10 frames" in first, first + proc.stderr.read()
        address = re.search(r"served on (\S+) ", first).group(1)
        assert "open the viewer" in proc.stdout.readline()
        assert proc.stdout.readline().startswith("http://127.0.0.1:")
        with Client(address) as client:
            seen = set()
            wait_for(lambda: (f := client.next_frame(0.1)) is not None
                     and seen.add(frame_index(f.image)) is None and len(seen) == 10)
            assert client.image.tobytes() == make_frame(frame_index(client.image),
                                                        W, H).tobytes()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args, message", [
    (["record", "tcp://nowhere", "x.ffrec"], "argument address"),
    (["record", "tcp://127.0.0.1:99999", "x.ffrec"], "argument address: port"),
    (["record", "tcp://127.0.0.1:5", "x.mp4"], "argument out: 'x.mp4' must end in .ffrec"),
    (["record", "tcp://127.0.0.1:5", "/no/such/dir/x.ffrec"], "argument out: the directory"),
    (["record", "tcp://127.0.0.1:5", "x.ffrec", "--duration", "0"], "argument --duration"),
    (["record", "tcp://127.0.0.1:5", "x.ffrec", "--figure", "a b"], "argument --figure"),
    (["replay", "missing.ffrec"], "argument recording: no such file"),
    (["replay", "NOTREC"], "argument recording: "),
    (["replay", "REC", "--speed", "50"], "argument --speed: must be 0.05..20"),
    (["replay", "REC", "--speed", "fast"], "argument --speed"),
    (["replay", "REC", "--port", "0"], "argument --port"),
    (["replay", "REC", "--address", "tcp://10.1.2.3:5555"], "argument --address"),
])
def test_bad_input_is_refused_naming_the_flag_with_status_2(tmp_path, args, message):
    src = make_recording(tmp_path / "rec.ffrec", frames=2)
    (tmp_path / "not.ffrec").write_bytes(b"plain text")
    args = [{"REC": str(src), "NOTREC": str(tmp_path / "not.ffrec")}.get(a, a) for a in args]
    proc = fastfig(*args, cwd=tmp_path)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and message in err, err
    assert "Traceback" not in err


def test_a_record_of_an_absent_figure_names_the_flag(tmp_path):
    pub = Publisher()
    try:
        proc = fastfig("record", pub.server.address, str(tmp_path / "x.ffrec"), "--figure",
                       "nope", "--timeout", "1")
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 2 and "argument --figure" in err and "nope" in err, err
        assert not os.path.exists(tmp_path / "x.ffrec")
    finally:
        pub.close()
