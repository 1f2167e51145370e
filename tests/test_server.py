"""The frame server (fastfig/transport/server.py) over real sockets: requests, malformed
input, joining, credits, figure isolation, slow and killed consumers, CURVE."""

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

import numpy as np
import pytest
import zmq

from fastfig import Client, FrameDecoder, Server, ServerError
from fastfig.errors import FigureClosed, ProtocolError
from fastfig.transport import protocol as P
from fastfig.transport import security
from fastfig.transport.session import DEFAULT_CREDIT
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


def receive(sock, timeout=5.0):
    assert sock.poll(timeout * 1000), "nothing received"
    reply = sock.recv_multipart()
    assert reply[0] == b""
    return json.loads(reply[1]), reply[2:]


def request(sock, type_, timeout=5.0, **fields):
    sock.send_multipart([b"", P.header(type_, **fields)])
    return receive(sock, timeout)


def test_binds_loopback_and_private_ipc_dir(server):
    assert server.address.startswith(("tcp://127.0.0.1:", "ipc://"))
    if server.address.startswith("ipc://"):
        directory = os.path.dirname(server.address[6:])
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700


def test_refuses_remote_bind_without_curve():
    with pytest.raises(security.InsecureAddress):
        Server.run_in_thread("tcp://0.0.0.0:*")


def test_hello_join_credit_ping(server, ctx):
    stream = server.add_figure("7", 160, 120, title="seven")
    s = dealer(ctx, server.address)
    msg, rest = request(s, "hello", client="raw", accept=["png", "rle"])
    assert msg["type"] == "welcome" and msg["v"] == 2 and "pub" not in msg
    assert [f["id"] for f in msg["figures"]] == ["7"] and msg["figures"][0]["title"] == "seven"
    # Joining before the first frame: the whole state, then the first frame when it comes.
    msg, rest = request(s, "join", figure="7")
    assert msg == {"v": 2, "type": "state", "figure": "7", "state": {"title": "seven"}}
    assert not s.poll(100)
    stream.publish(make_frame(3))
    msg, rest = receive(s)
    assert msg == {"v": 2, "type": "frame", "figure": "7"}
    dec = FrameDecoder()
    assert np.array_equal(dec.decode(rest[0]), make_frame(3))
    # One frame per credit; none beyond the window.
    for i in range(4, 4 + DEFAULT_CREDIT + 3):
        stream.publish(make_frame(i))
    wait_for(lambda: stream.stats()["offered"] == 1 + DEFAULT_CREDIT + 3)
    got = []
    while s.poll(200):
        got.append(s.recv_multipart()[-1])
    assert len(got) == DEFAULT_CREDIT - 1
    for packet in got:
        dec.decode(packet)
    s.send_multipart([b"", P.header("credit", figure="7", n=len(got) + 1, seq=dec.seq,
                                    epoch=dec.epoch)])
    msg, rest = receive(s)            # the rest, in one catch-up delta
    dec.decode(rest[0])
    assert np.array_equal(dec.image, make_frame(3 + DEFAULT_CREDIT + 3))
    msg, _ = request(s, "ping", t=5)
    assert msg == {"v": 2, "type": "pong", "t": 5, "server_id": server.server_id,
                   "joined": ["7"]}


def test_joiners_share_one_keyframe_encode(server, ctx):
    stream = server.add_figure("1", 160, 120)
    stream.publish(make_frame(0))
    stream.publish(make_frame(1))
    for _ in range(5):
        s = dealer(ctx, server.address)
        request(s, "join", figure="1")                    # state
        msg, rest = receive(s)
        assert np.array_equal(FrameDecoder().decode(rest[0]), make_frame(1))
    assert stream.snapshot_encodes == 1


@pytest.mark.parametrize("frames, code", [
    ([P.header("ping")], "malformed"),                              # no delimiter
    ([b""], "malformed"),                                           # no header
    ([b"", P.header("ping"), b"extra"], "malformed"),               # wrong frame count
    ([b"", b"not json"], "malformed"),
    ([b"", b"[1,2,3]"], "malformed"),
    ([b"", json.dumps({"v": 1, "type": "hello"}).encode()], "version"),
    ([b"", json.dumps({"v": 2, "type": "launch"}).encode()], "unknown_type"),
    ([b"", json.dumps({"v": 2, "type": "snapshot", "figure": "1"}).encode()], "unknown_type"),
    ([b"", P.header("join", figure="nope")], "unknown_figure"),
    ([b"", P.header("join", figure="../../x")], "malformed"),
    ([b"", P.header("join", figure="1", credit=0)], "malformed"),
    ([b"", P.header("join", figure="1", credit=10_000)], "malformed"),
    ([b"", P.header("join", figure="1", credit=2.5)], "malformed"),
    ([b"", P.header("credit", figure="1", n=-4)], "malformed"),
    ([b"", P.header("credit", figure="1", n=1)], "not_joined"),
    ([b"", P.header("resync", figure="1")], "not_joined"),
    ([b"", P.header("event", figure="1", event={"type": "scroll", "x": 1, "y": 1,
                                                "step": 1e300})], "invalid_event"),
    ([b"", P.header("event", figure="1", event={"type": "key_press", "key": "x" * 500})],
     "invalid_event"),
])
def test_malformed_requests_get_errors_and_server_keeps_serving(server, ctx, frames, code):
    stream = server.add_figure("1", 160, 120)
    stream.publish(make_frame(0))
    events = []
    stream.on_event(events.append)
    with Client(server.address, timeout=5) as watcher:
        watcher.next_frame(5)
        s = dealer(ctx, server.address)
        s.send_multipart(frames)
        assert s.poll(5000)
        msg = json.loads(s.recv_multipart()[-1])
        assert msg["type"] == "error" and msg["code"] == code, msg
        if code == "version":
            assert msg["versions"] == [2]
        # Still serving, the sender and everyone else; nothing bad reached the figure.
        msg, _ = request(s, "ping")
        assert msg["type"] == "pong"
        stream.publish(make_frame(1))
        assert np.array_equal(watcher.next_frame(5).image, make_frame(1))
    assert events == []


def test_oversized_request_is_dropped(server, ctx):
    server.add_figure("1", 160, 120)
    big = dealer(ctx, server.address)
    big.send_multipart([b"", P.header("ping", pad="x" * (P.MAX_REQUEST_BYTES + 10))])
    assert not big.poll(500)   # the connection was dropped by MAXMSGSIZE: no reply
    msg, _ = request(dealer(ctx, server.address), "ping")
    assert msg["type"] == "pong"


def test_random_bytes_on_the_port_are_refused():
    # tcp only: the ZAP domain must refuse a peer that does not speak ZMTP 3.
    with Server.run_in_thread("tcp") as srv:
        srv.add_figure("1", 160, 120).publish(make_frame(0))
        host, port = srv.address[6:].rsplit(":", 1)
        rng = np.random.default_rng(0)
        for n in (1, 10, 64, 1000, 100_000):
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                try:
                    raw.sendall(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
                    raw.settimeout(0.2)
                    raw.recv(4096)
                except OSError:
                    pass
        # Also a ZMTP 1.0-looking frame, which libzmq would otherwise accept.
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            try:
                raw.sendall(b"\x01\x00" + b"\x0a\x00" + b"\x00" * 9)
            except OSError:
                pass
        with Client(srv.address, timeout=5) as c:
            assert np.array_equal(c.next_frame(5).image, make_frame(0))
        assert srv.requests_rejected == 0


def test_a_client_receives_only_the_figures_it_joined(server, ctx):
    s1 = server.add_figure("1", 160, 120)
    s10 = server.add_figure("10", 160, 120)
    raw = dealer(ctx, server.address)
    request(raw, "join", figure="1")
    with Client(server.address, figure="1", timeout=5) as client:
        for i in range(20):
            s10.publish(make_frame(i, figure=10))
            s1.publish(make_frame(i, figure=1))
        s1.set_state(title="one")
        s10.set_state(title="ten")
        seen = set()
        for f in client.frames(timeout=5):
            assert np.array_equal(f.image, make_frame(frame_index(f.image), figure=1))
            seen.add(frame_index(f.image))
            if 19 in seen:
                break
        assert 19 in seen
        wait_for(lambda: client.next_frame(0.05) or client.state.get("title") == "one")
    figures = set()
    while raw.poll(300):
        figures.add(json.loads(raw.recv_multipart()[1]).get("figure"))
    assert figures == {"1"}


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
        with pytest.raises(ProtocolError):
            c.send_event("button_press", x=10, y=20, button=7)
        first = stream.get_event(timeout=5)
        second = stream.get_event(timeout=5)
    assert first == {"type": "button_press", "x": 10, "y": 20, "button": 1,
                     "modifiers": ["ctrl", "shift"], "figure": "1", "client": "tester"}
    assert second["key"] == "ctrl+alt+left"
    assert done.wait(5) and ("async", "button_press") in got


def test_consumers_report_what_they_hold(server):
    stream = server.add_figure("1", 160, 120)
    stream.publish(make_frame(0))
    with Client(server.address, timeout=5) as c:
        assert c.next_frame(5) is not None
        stream.publish(make_frame(1))
        f = c.next_frame(5)
        c.next_frame(0.2)   # the credit goes back when the client reads again
        wait_for(lambda: server.call(stream.consumers)[0]["held"] == (f.epoch, f.seq))
        (consumer,) = server.call(stream.consumers)
        assert consumer["window"] == DEFAULT_CREDIT and consumer["in_flight"] == 0
        assert consumer["latency"] >= 0
    wait_for(lambda: server.call(stream.consumers) == [])   # bye forgets it


def test_close_figure_tells_consumers(server):
    stream = server.add_figure("1", 160, 120)
    stream.publish(make_frame(0))
    with Client(server.address, timeout=5) as c:
        c.next_frame(5)
        stream.close()
        assert list(c.frames(timeout=5)) == []
        assert c.closed
    with pytest.raises(ServerError):
        Client(server.address, figure="1", timeout=1)
    wait_for(lambda: "1" not in server.figures)
    with pytest.raises(FigureClosed):
        stream.publish(make_frame(1))


def test_async_api():
    async def main():
        async with Server("ipc") as server:
            stream = server.add_figure(None, 160, 120)
            assert stream.id == "1"
            stream.publish(make_frame(5))
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, _first_image, server.address)
    assert np.array_equal(asyncio.run(asyncio.wait_for(main(), 20)), make_frame(5))


def _first_image(address):
    with Client(address, timeout=5) as c:
        return c.next_frame(5).image.copy()


def test_a_source_renders_only_on_demand(server):
    made = []

    def frames():
        for i in range(100_000):
            made.append(i)
            yield make_frame(i)
    stream = server.add_source(frames(), id="1")
    with Client(server.address, timeout=5) as c:
        for _ in range(20):
            f = c.next_frame(5)
            assert np.array_equal(f.image, make_frame(frame_index(f.image)))
        # One frame made per frame the client read (and the one being sent), not as many
        # as the loop could make.
        assert len(made) <= c.stats()["received"] + 2
    # The client is gone: its consumer with it, and with it the demand.
    wait_for(lambda: server.call(lambda: not stream.demand and not stream.consumers()))


def test_stalled_client_converges_and_others_keep_going(server):
    """One client stops reading: the other keeps receiving; the stalled one, when it
    resumes, is sent the newest image, not a backlog."""
    stream = server.add_source((make_frame(i, 320, 240) for i in range(100_000)), id="1")
    with Client(server.address, timeout=5) as stalled, Client(server.address, timeout=5) as busy:
        stalled.next_frame(5)
        start = busy.next_frame(5).seq
        for _ in range(300):
            f = busy.next_frame(5)
            assert np.array_equal(f.image, make_frame(frame_index(f.image), 320, 240))
        assert busy.stats()["gaps"] == 0 and busy.seq != start
        # The stalled one was sent no more than its credit while it did not read.
        (st,) = [c for c in server.call(stream.consumers) if c["in_flight"] == DEFAULT_CREDIT]
        assert st["sent"] <= 1 + DEFAULT_CREDIT
        target = stream.seq
        # It reads the few stale frames (merged into one image), then the newest image
        # comes in one packet.
        for n, f in enumerate(stalled.frames(timeout=5), 1):
            assert np.array_equal(f.image, make_frame(frame_index(f.image), 320, 240))
            if not P.seq_newer(target, f.seq):
                break
        # Received: its first keyframe, the stale frames its credit allowed, the newest
        # image, and perhaps one frame made since (its demand now makes frames again).
        assert n <= 2 and stalled.stats()["received"] <= 3 + DEFAULT_CREDIT
    stream.close()


def test_sigkilled_clients_are_forgotten(server):
    stream = server.add_source((make_frame(i) for i in range(100_000)), id="1")
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
            for _ in range(50):
                f = watcher.next_frame(5)
                assert np.array_equal(f.image, make_frame(frame_index(f.image)))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        # Clients that vanish are forgotten after client_timeout (here a short one),
        # or as soon as a send finds them gone; their consumers go with them. The
        # watcher goes on reading (its credits say it is alive): a watcher silent for
        # the timeout would be forgotten too, in the same sweep as the dead ones.
        server.server.client_timeout = 0.5

        def only_the_watcher_left():
            watcher.next_frame(0.01)
            return len(server.call(stream.consumers)) == 1
        wait_for(only_the_watcher_left, timeout=10)


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
            assert np.array_equal(c.next_frame(5).image, make_frame(4))
        mallory = CurveClient.load(str(tmp_path / "server.key"),
                                   str(tmp_path / "mallory.key_secret"))
        with pytest.raises(TimeoutError):
            Client(address, curve=mallory, timeout=1)
        with pytest.raises(TimeoutError):
            Client(address, timeout=1)   # no encryption at all


def test_state_reaches_joined_consumers_in_order(server, ctx):
    stream = server.add_figure("1", 160, 120)
    s = dealer(ctx, server.address)
    request(s, "join", figure="1")
    stream.set_state(title="burst")
    for i in range(30):
        stream.set_state(message=f"x={i}")
    stream.set_state(rubberband=None)
    states = []
    while not states or states[-1] != {"rubberband": None}:
        msg, _ = receive(s)
        states.append(msg["state"])
    assert states[0] == {"title": "burst"} and len(states) == 32
    # A joiner is sent the whole state.
    msg, _ = request(dealer(ctx, server.address), "join", figure="1")
    assert msg["state"] == {"title": "burst", "message": "x=29", "rubberband": None}


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


def test_dispatch_is_one_handler_per_request_type():
    assert set(Server()._handlers) == P.REQUEST_TYPES
