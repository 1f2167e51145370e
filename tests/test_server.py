"""The frame server (fastfig/transport/server.py) over real sockets: requests, malformed input,
topic isolation, snapshots, slow and killed subscribers, CURVE."""

import asyncio
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from fastfig import Client, Server
from fastfig.transport.client import ServerError
from fastfig.transport import protocol as P
from fastfig.transport import security
from transport_helpers import HERE, frame_index, make_frame, wait_for


@pytest.fixture(params=["tcp", "ipc"])
def server(request):
    srv = Server.run_in_thread(request.param)
    yield srv
    srv.close()


@pytest.fixture
def ctx():
    c = zmq.Context()
    yield c
    c.destroy(linger=0)


def dealer(ctx, address):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(address)
    return s


def request(sock, *frames, timeout=5.0):
    sock.send_multipart(list(frames))
    assert sock.poll(timeout * 1000), "no reply"
    reply = sock.recv_multipart()
    assert reply[0] == b""
    return json.loads(reply[1]), reply[2:]


def test_binds_loopback_and_private_ipc_dir(server):
    assert server.address.startswith(("tcp://127.0.0.1:", "ipc://"))
    if server.address.startswith("ipc://"):
        directory = os.path.dirname(server.address[6:])
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


def test_refuses_remote_bind_without_curve():
    with pytest.raises(security.InsecureAddress):
        Server.run_in_thread("tcp://0.0.0.0:*")


def test_hello_figures_snapshot(server, ctx):
    stream = server.add_figure("7", 160, 120, title="seven")
    s = dealer(ctx, server.address)
    msg, rest = request(s, b"", P.header("hello", client="raw", accept=["png", "rle"]))
    assert msg["type"] == "welcome" and msg["v"] == 1 and msg["pub"] == server.pub_address
    assert [f["id"] for f in msg["figures"]] == ["7"] and msg["figures"][0]["title"] == "seven"
    msg, rest = request(s, b"", P.header("snapshot", figure="7"))
    assert msg["type"] == "snapshot" and msg["seq"] is None and rest == []
    stream.publish(make_frame(3))
    msg, rest = request(s, b"", P.header("snapshot", figure="7"))
    assert msg["seq"] == stream.seq and msg["epoch"] == stream.epoch
    assert msg["state"]["title"] == "seven"
    from fastfig import FrameDecoder
    assert np.array_equal(FrameDecoder().decode(rest[0]), make_frame(3))
    msg, _ = request(s, b"", P.header("ping", t=5))
    assert msg == {"v": 1, "type": "pong", "t": 5, "server_id": server.server_id}


def test_snapshot_encoded_once_per_seq(server, ctx):
    stream = server.add_figure("1", 160, 120)
    stream.publish(make_frame(0))
    socks = [dealer(ctx, server.address) for _ in range(5)]
    for s in socks:
        msg, rest = request(s, b"", P.header("snapshot", figure="1"))
        assert rest
    assert stream.snapshot_encodes == 1 and stream.snapshots_sent == 5


@pytest.mark.parametrize("frames, code", [
    ([P.header("ping")], "malformed"),                              # no delimiter
    ([b""], "malformed"),                                           # no header
    ([b"", P.header("ping"), b"extra"], "malformed"),               # wrong frame count
    ([b"", b"not json"], "malformed"),
    ([b"", b"[1,2,3]"], "malformed"),
    ([b"", json.dumps({"v": 2, "type": "hello"}).encode()], "version"),
    ([b"", json.dumps({"v": 1, "type": "launch"}).encode()], "unknown_type"),
    ([b"", P.header("snapshot", figure="nope")], "unknown_figure"),
    ([b"", P.header("snapshot", figure="../../x")], "malformed"),
    ([b"", P.header("ack", figure="1", seq=-4)], "malformed"),
    ([b"", P.header("event", figure="1", event={"type": "scroll", "x": 1, "y": 1,
                                                "step": 1e300})], "invalid_event"),
    ([b"", P.header("event", figure="1", event={"type": "key_press", "key": "x" * 500})],
     "invalid_event"),
])
def test_malformed_requests_get_errors_and_server_keeps_serving(server, ctx, frames, code):
    stream = server.add_figure("1", 160, 120)
    events = []
    stream.on_event(events.append)
    s = dealer(ctx, server.address)
    s.send_multipart(frames)
    assert s.poll(5000)
    reply = s.recv_multipart()
    msg = json.loads(reply[-1])
    assert msg["type"] == "error" and msg["code"] == code, msg
    if code == "version":
        assert msg["versions"] == [1]
    # Still serving, and nothing bad reached the figure.
    msg, _ = request(s, b"", P.header("ping"))
    assert msg["type"] == "pong"
    assert events == []


def test_oversized_request_is_dropped(server, ctx):
    server.add_figure("1", 160, 120)
    big = dealer(ctx, server.address)
    big.send_multipart([b"", P.header("ping", pad="x" * (P.MAX_REQUEST_BYTES + 10))])
    assert not big.poll(500)   # the connection was dropped by MAXMSGSIZE: no reply
    msg, _ = request(dealer(ctx, server.address), b"", P.header("ping"))
    assert msg["type"] == "pong"


def test_random_bytes_on_the_port_are_refused(ctx):
    # tcp only: the ZAP domain must refuse a peer that does not speak ZMTP 3.
    srv = Server.run_in_thread("tcp")
    try:
        srv.add_figure("1", 160, 120).publish(make_frame(0))
        host, port = srv.address[6:].rsplit(":", 1)
        rng = np.random.default_rng(0)
        for endpoint_port in (int(port), int(srv.pub_address.rsplit(":", 1)[1])):
            for n in (1, 10, 64, 1000, 100_000):
                with socket.create_connection((host, endpoint_port), timeout=5) as raw:
                    try:
                        raw.sendall(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
                        raw.settimeout(0.2)
                        raw.recv(4096)
                    except OSError:
                        pass
            # Also a ZMTP 1.0-looking frame, which libzmq would otherwise accept.
            with socket.create_connection((host, endpoint_port), timeout=5) as raw:
                try:
                    raw.sendall(b"\x01\x00" + b"\x0a\x00" + b"\x00" * 9)
                except OSError:
                    pass
        time.sleep(0.3)
        assert srv.requests_handled == 0 and srv.requests_rejected == 0
        with Client(srv.address, timeout=5) as c:
            assert np.array_equal(c.next_frame(5).image, make_frame(0))
    finally:
        srv.close()


def test_topic_isolation(server, ctx):
    s1 = server.add_figure("1", 160, 120)
    s10 = server.add_figure("10", 160, 120)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, P.topic("1"))
    sub.connect(server.pub_address)
    time.sleep(0.2)   # let the subscription reach the server
    with Client(server.address, figure="1", timeout=5) as client:
        for i in range(20):
            s10.publish(make_frame(i, figure=10))
            s1.publish(make_frame(i, figure=1))
        s1.set_state(title="one")
        s10.set_state(title="ten")
        seen = set()
        for f in client.frames(timeout=2):
            assert np.array_equal(f.image, make_frame(frame_index(f.image), figure=1))
            seen.add(frame_index(f.image))
            if 19 in seen:
                break
        assert 19 in seen
        wait_for(lambda: client.state.get("title") == "one" or client.next_frame(0.05) and False,
                 timeout=5)
        assert client.state["title"] == "one"
    topics = set()
    while sub.poll(300):
        topics.add(sub.recv_multipart()[0])
    assert topics == {b"fig/1/"}


def test_events_reach_the_figure(server):
    stream = server.add_figure("1", 160, 120)
    stream.publish(make_frame(0))
    got = []
    done = threading.Event()

    async def async_handler(event):
        got.append(("async", event["type"]))
        done.set()
    stream.on_event(lambda e: got.append(e))
    stream.on_event(async_handler)
    with Client(server.address, timeout=5, name="tester") as c:
        c.send_event("button_press", x=10, y=20, button=1, modifiers=["ctrl", "shift"])
        c.send_event("key_press", key="ctrl+alt+left")
        with pytest.raises(P.ProtocolError):
            c.send_event("button_press", x=10, y=20, button=7)
        first = stream.get_event(timeout=5)
        second = stream.get_event(timeout=5)
    assert first == {"type": "button_press", "x": 10, "y": 20, "button": 1,
                     "modifiers": ["ctrl", "shift"], "figure": "1", "client": "tester"}
    assert second["key"] == "ctrl+alt+left"
    assert done.wait(5) and ("async", "button_press") in got


def test_acks_expose_flow(server):
    stream = server.add_figure("1", 160, 120)
    stream.publish(make_frame(0))
    with Client(server.address, timeout=5, ack_interval=0) as c:
        assert c.next_frame(5) is not None
        wait_for(lambda: stream.in_flight() == 0, timeout=5)
        stream.publish(make_frame(1))
        assert stream.in_flight() == 1
        c.next_frame(5)
        wait_for(lambda: stream.in_flight() == 0, timeout=5)
        (seq, epoch, latency), = stream.acks().values()
        assert seq == stream.seq and epoch == stream.epoch and latency >= 0


def test_close_figure_tells_subscribers(server):
    stream = server.add_figure("1", 160, 120)
    stream.publish(make_frame(0))
    with Client(server.address, timeout=5) as c:
        c.next_frame(5)
        time.sleep(0.3)   # a subscription takes effect a moment after connecting
        stream.close()
        assert list(c.frames(timeout=5)) == []
        assert c.closed
    with pytest.raises(ServerError):
        Client(server.address, figure="1", timeout=1)
    wait_for(lambda: "1" not in server.figures)
    with pytest.raises(RuntimeError):
        stream.publish(make_frame(1))


def test_async_api():
    async def main():
        async with Server("ipc") as server:
            stream = server.add_figure(None, 160, 120)
            assert stream.id == "1"
            stream.publish(make_frame(5))
            loop = asyncio.get_running_loop()
            image = await loop.run_in_executor(None, _first_image, server.address)
            return image
    assert np.array_equal(asyncio.run(asyncio.wait_for(main(), 20)), make_frame(5))


def _first_image(address):
    with Client(address, timeout=5) as c:
        return c.next_frame(5).image.copy()


def test_stalled_client_converges_and_others_keep_going(server):
    """One client stops reading for seconds: the other keeps receiving every frame in
    order; the stalled one then converges to the current image, not a backlog."""
    stream = server.add_source((make_frame(i, 320, 240) for i in range(100_000)), fps=100,
                               id="1")
    with Client(server.address, timeout=5) as stalled, Client(server.address, timeout=5) as busy:
        stalled.next_frame(5)
        start = busy.next_frame(5).seq
        t_end = time.monotonic() + 2.0
        n = 0
        while time.monotonic() < t_end:
            f = busy.next_frame(5)
            assert np.array_equal(f.image, make_frame(frame_index(f.image), 320, 240))
            n += 1
        assert n > 0 and busy.stats()["gaps"] == 0 and busy.seq != start
        # The stalled client resumes: it reaches the image being published now.
        target = stream.seq
        for f in stalled.frames(timeout=5):
            assert np.array_equal(f.image, make_frame(frame_index(f.image), 320, 240))
            if P.seq_newer(f.seq, target):
                break
        else:
            pytest.fail("stalled client did not catch up")
        st = stalled.stats()
        # It skipped the stale frames instead of decoding them all.
        assert st["frames"] < 50
    stream.close()


def test_sigkilled_client_does_not_disturb_server(server):
    stream = server.add_source((make_frame(i) for i in range(100_000)), fps=100, id="1")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from fastfig import Client\n"
            "c = Client(%r, timeout=5)\n"
            "print('ok', c.next_frame(5).seq, flush=True)\n"
            "import time; time.sleep(60)\n") % (HERE, server.address)
    with Client(server.address, timeout=5) as watcher:
        procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                  text=True) for _ in range(3)]
        try:
            for p in procs:
                assert p.stdout.readline().startswith("ok")
            wait_for(lambda: len(server.clients()) >= 4, timeout=5)
            for p in procs:
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
            before = stream.seq
            seen = 0
            for f in watcher.frames(timeout=5):
                assert np.array_equal(f.image, make_frame(frame_index(f.image)))
                seen += 1
                if P.seq_newer(f.seq, (before + 20) & 0xFFFFFFFF):
                    break
            assert seen and P.seq_newer(watcher.seq, before)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
    # Clients that vanish are forgotten after client_timeout; with a short one:
    server.server.client_timeout = 0.5
    wait_for(lambda: len(server.clients()) <= 1, timeout=5)


def test_curve(tmp_path):
    from fastfig.transport.security import CurveClient, CurveServer, make_keys
    make_keys(str(tmp_path), "server")
    make_keys(str(tmp_path), "alice")
    os.makedirs(tmp_path / "clients")   # only allowed clients' public keys go here
    shutil.copy(tmp_path / "alice.key", tmp_path / "clients" / "alice.key")
    make_keys(str(tmp_path), "mallory")
    curve = CurveServer.load(str(tmp_path / "server.key_secret"), str(tmp_path / "clients"))
    with Server.run_in_thread("tcp://0.0.0.0:*", curve=curve) as srv:
        srv.add_figure("1", 160, 120).publish(make_frame(4))
        address = "tcp://127.0.0.1:" + srv.address.rsplit(":", 1)[1]
        alice = CurveClient.load(str(tmp_path / "server.key"), str(tmp_path / "alice.key_secret"))
        with Client(address, curve=alice, timeout=5) as c:
            assert c.pub_address.startswith("tcp://127.0.0.1:")
            assert np.array_equal(c.next_frame(5).image, make_frame(4))
        mallory = CurveClient.load(str(tmp_path / "server.key"),
                                   str(tmp_path / "mallory.key_secret"))
        with pytest.raises(TimeoutError):
            Client(address, curve=mallory, timeout=1)
        with pytest.raises(TimeoutError):
            Client(address, timeout=1)   # no encryption at all


def test_whole_state_is_published_again_after_a_burst(server, ctx):
    # State shares the frames' high-water mark, so a burst can lose a message: the server
    # republishes the whole state once changes stop, and the last state message a
    # subscriber sees carries every field.
    stream = server.add_figure("1", 160, 120)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, P.topic("1"))
    sub.connect(server.pub_address)
    time.sleep(0.2)
    stream.set_state(title="burst")
    for i in range(30):
        stream.set_state(message=f"x={i}")
    stream.set_state(rubberband=None)
    states = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not sub.poll(100):
            if states and states[-1] == {"title": "burst", "message": "x=29", "rubberband": None}:
                break
            continue
        parts = sub.recv_multipart()
        msg = json.loads(parts[1])
        if msg["type"] == "state":
            states.append(msg["state"])
    assert states[-1] == {"title": "burst", "message": "x=29", "rubberband": None}


def test_closing_a_figure_after_the_server_is_quiet():
    # matplotlib closes its figures at interpreter exit, after fastfig's server is gone.
    srv = Server.run_in_thread("tcp")
    stream = srv.add_figure("1", 16, 16)
    stream.publish(make_frame(0, 16, 16))
    srv.close()
    stream.close()
    stream.set_state(title="late")


def test_local_servers_trade_bytes_for_decode_time():
    # Frames that stay on this machine use the local encoder settings; a server given
    # encoder_options={} sends the fewest bytes; per-figure options win over both.
    from fastfig.transport.server import LOCAL_ENCODER_OPTIONS
    with Server.run_in_thread("ipc") as srv:
        enc = srv.add_figure("1", 16, 16).encoder
        assert enc.png_max_ratio == LOCAL_ENCODER_OPTIONS["png_max_ratio"]
        assert enc.rle_max_ratio == LOCAL_ENCODER_OPTIONS["rle_max_ratio"]
        assert srv.add_figure("2", 16, 16, png_max_ratio=0.9).encoder.png_max_ratio == 0.9
    with Server.run_in_thread("tcp", encoder_options={}) as srv:
        assert srv.add_figure("1", 16, 16).encoder.png_max_ratio == 1.0
